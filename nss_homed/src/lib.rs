//! `libnss_homed.so.2`: passwd, group, shadow, gshadow and initgroups for homed's users.
//!
//! The exports (one FFI module) are thin: they call [`lookup`], which asks the records the daemon
//! publishes (signed by the machine key, see `homed_shared::publish`) and then homed's varlink
//! socket, the way systemd-homed is reached. No thread, no D-Bus, no runtime: every answer is
//! computed on the calling thread, and a call to the socket is bounded by one second.
//!
//! All exports are written by hand rather than with the `libnss` crate: its macros abort the host
//! on a panic, put `gr_mem` at an unaligned address and use the wrong integer types for
//! `initgroups_dyn`, and once those three are fixed little of it is left.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod enumerate;
mod ffi;
pub mod guard;
pub mod lookup;
pub mod nsswitch;

/// In debug builds and builds with the `test-hooks` feature, looking up this name panics inside
/// the lookup, so tests can check that the panic is caught. Release builds have no such hook.
#[cfg(any(feature = "test-hooks", debug_assertions))]
pub const TEST_PANIC_NAME: &str = "nss-homed-test-panic";
