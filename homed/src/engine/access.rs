//! Who may do what (DESIGN contract 3, v252's table), and the rules every record must pass
//! before the daemon acts on it.

use homed_shared::UserRecord;
use homed_shared::record::check_suitable_for_homed;

use crate::engine::{Caller, Engine, EngineError, EngineResult, Home};

/// Which object a call came through, where v252's rules differ by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `org.freedesktop.home1.Manager`, naming the home.
    Manager,
    /// The home's own `org.freedesktop.home1.Home` object.
    HomeObject,
}

/// AcquireHome: any caller through the Manager (the secret decides), root alone through a
/// Home object, as in v252.
pub(crate) fn authorize_acquire(caller: Caller, via: Via) -> EngineResult<()> {
    match via {
        Via::Manager => Ok(()),
        Via::HomeObject => Engine::require_root(caller),
    }
}

impl Engine {
    /// The rules every record must pass once this machine's binding is applied, wherever it
    /// came from (a client, a found home's own record, a newer embedded copy): homed's rules for
    /// the name, disposition and IDs (no system or special UID), and a home directory directly
    /// in the home root, so that no signer decides where root mounts a user's tree.
    pub(crate) fn check_resolved(&self, record: &UserRecord) -> EngineResult<()> {
        let view = record.view(&self.machine);
        check_suitable_for_homed(&view, true).map_err(|e| {
            EngineError::InvalidArgs(format!(
                "Refusing to manage the record of {}: {e}",
                record.user_name()
            ))
        })?;
        let dir = self.home_directory(record);
        let expected = format!("{}/{}", self.paths.home_root, record.user_name());
        if dir != expected {
            return Err(EngineError::InvalidArgs(format!(
                "Refusing to manage the record of {}: its home directory is {dir}, not {expected}",
                record.user_name()
            )));
        }
        Ok(())
    }

    /// Whether `home`'s record may be handed out to NSS and userdb clients.
    pub fn servable(&self, home: &Home) -> bool {
        self.check_resolved(&self.record(home)).is_ok()
    }

    /// Whether `caller` may see the privileged section of `home`.
    pub fn trusted_caller(&self, home: &Home, caller: Caller) -> bool {
        caller.is_root() || self.uid_of(home) == Some(caller.uid)
    }

    pub(crate) fn require_root(caller: Caller) -> EngineResult<()> {
        if caller.is_root() {
            Ok(())
        } else {
            Err(EngineError::AccessDenied("Access denied".into()))
        }
    }

    pub(crate) fn require_root_or_owner(&self, home: &Home, caller: Caller) -> EngineResult<()> {
        if self.trusted_caller(home, caller) {
            Ok(())
        } else {
            Err(EngineError::AccessDenied("Access denied".into()))
        }
    }
}
