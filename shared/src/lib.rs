//! The core of homed: user records, their signatures and trust, password hashes, and the
//! classic account entries records map to.
//!
//! Everything here is shared by the daemon, the CLI and the PAM and NSS modules, so it never
//! panics on bad input, never prints, and keeps secrets in zeroizing types.

pub mod atomic_file;
pub mod env;
pub mod json;
pub mod nss;
pub mod password;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod proto;
pub mod publish;
pub mod record;
pub mod signing;
pub mod varlink;
pub mod wait;

pub use record::{MachineContext, RecordError, RecordOrigin, UserRecord};
