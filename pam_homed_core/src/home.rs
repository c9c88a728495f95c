//! What the module asks of the home daemon (homed-spec §4.2): the five Manager methods a PAM
//! module uses. `bus.rs` implements it over D-Bus; unit tests use a scripted fake.

use std::fmt;
use std::os::fd::OwnedFd;

/// Error names homed answers with (homed-spec §4.7), as the module tells them apart.
pub mod names {
    pub use homed_shared::proto::errors::*;
    /// The bus's own answers when nobody owns `org.freedesktop.home1`.
    pub const SERVICE_UNKNOWN: &str = "org.freedesktop.DBus.Error.ServiceUnknown";
    pub const NAME_HAS_NO_OWNER: &str = "org.freedesktop.DBus.Error.NameHasNoOwner";
}

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeError {
    /// The system bus could not be reached at all.
    NoBus(String),
    /// The daemon (or the bus on its behalf) answered with a D-Bus error.
    Named { name: String, message: String },
    /// The call went wrong in another way (a malformed reply, a time-out).
    Other(String),
}

impl HomeError {
    pub fn named(name: &str, message: &str) -> HomeError {
        HomeError::Named {
            name: name.to_owned(),
            message: message.to_owned(),
        }
    }

    /// The D-Bus error name, if the daemon gave one.
    pub fn name(&self) -> Option<&str> {
        match self {
            HomeError::Named { name, .. } => Some(name),
            _ => None,
        }
    }

    pub fn is(&self, wanted: &str) -> bool {
        self.name() == Some(wanted)
    }

    /// No home daemon on the bus: the user is simply not one of its users.
    pub fn is_no_daemon(&self) -> bool {
        self.is(names::SERVICE_UNKNOWN) || self.is(names::NAME_HAS_NO_OWNER)
    }
}

impl fmt::Display for HomeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HomeError::NoBus(why) => write!(f, "cannot reach the system bus: {why}"),
            HomeError::Named { name, message } if message.is_empty() => f.write_str(name),
            HomeError::Named { name, message } => write!(f, "{name}: {message}"),
            HomeError::Other(why) => f.write_str(why),
        }
    }
}

/// The Manager methods the module calls. Secrets are the wire form of homed-spec §4.4 (the inner
/// object, e.g. `{"password":["…"]}`).
#[allow(async_fn_in_trait)]
pub trait HomeService {
    /// `GetUserRecordByName`: the record's JSON.
    async fn user_record(&self, user: &str) -> Result<String, HomeError>;
    /// `AcquireHome`: authenticate and activate (or unlock), returning a reference fd.
    async fn acquire(&self, user: &str, secret: &str, suspend: bool) -> Result<OwnedFd, HomeError>;
    /// `RefHome`: a reference fd to an active home, without authentication (root only).
    async fn reference(&self, user: &str, suspend: bool) -> Result<OwnedFd, HomeError>;
    /// `ReleaseHome`: deactivate if nobody else holds a reference.
    async fn release(&self, user: &str) -> Result<(), HomeError>;
    /// `ChangePasswordHome`.
    async fn change_password(
        &self,
        user: &str,
        new_secret: &str,
        old_secret: &str,
    ) -> Result<(), HomeError>;
}
