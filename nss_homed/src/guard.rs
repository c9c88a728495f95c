//! When the module must stay out of the way: the daemon's own lookups, callers that bypass the
//! homed userdb service, and lookups the module makes itself.

use std::cell::Cell;
use std::ffi::{CStr, c_char};

use homed_shared::env::secure_var;
use homed_shared::record::HOMED_SERVICE;

/// Set by the daemon for itself: the module answers nothing at all, so the daemon's own
/// `getpwnam` conflict checks never see its published users or reach its socket.
pub const BYPASS_VAR: &str = "HOMED_BYPASS_NSS";

/// systemd's switch: `1`/`true`/`yes` skips every userdb service, otherwise it is a colon list
/// of service names to skip.
pub const SYSTEMD_BYPASS_VAR: &str = "SYSTEMD_BYPASS_USERDB";

fn truthy(v: &str) -> bool {
    matches!(v, "1" | "yes" | "y" | "true" | "t" | "on")
}

unsafe extern "C" {
    fn secure_getenv(name: *const c_char) -> *mut c_char;
}

/// The module answers nothing (`HOMED_BYPASS_NSS` set to a true value). Asked on every lookup,
/// so the value is looked at in place rather than copied.
pub fn module_bypassed() -> bool {
    const NAME: &CStr = c"HOMED_BYPASS_NSS";
    // SAFETY: `NAME` is a NUL-terminated static string; secure_getenv only reads it.
    let value = unsafe { secure_getenv(NAME.as_ptr()) };
    if value.is_null() {
        return false;
    }
    // SAFETY: a non-NULL result points to a NUL-terminated string in the environment block,
    // read here at once.
    let value = unsafe { CStr::from_ptr(value) };
    value.to_str().is_ok_and(truthy)
}

/// The homed varlink socket must not be touched: `HOMED_BYPASS_NSS`, or
/// `SYSTEMD_BYPASS_USERDB` naming `io.systemd.Home` (or all services).
pub fn socket_bypassed() -> bool {
    if module_bypassed() {
        return true;
    }
    secure_var(SYSTEMD_BYPASS_VAR)
        .is_some_and(|v| truthy(&v) || v.split(':').any(|s| s == HOMED_SERVICE))
}

thread_local! {
    static BLOCKED: Cell<u32> = const { Cell::new(0) };
}

/// While alive, lookups on this thread that reach the module get NOTFOUND at once. Used around
/// the module's own calls into NSS (resolving foreign group names in initgroups).
pub struct Block(());

impl Block {
    pub fn new() -> Block {
        BLOCKED.with(|b| b.set(b.get().saturating_add(1)));
        Block(())
    }
}

impl Default for Block {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        BLOCKED.with(|b| b.set(b.get().saturating_sub(1)));
    }
}

/// True inside a [`Block`] on this thread.
pub fn blocked() -> bool {
    BLOCKED.with(|b| b.get() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bypass_variable_name_matches() {
        assert_eq!(BYPASS_VAR.as_bytes(), b"HOMED_BYPASS_NSS");
    }

    #[test]
    fn block_nests() {
        assert!(!blocked());
        let a = Block::new();
        let b = Block::new();
        drop(a);
        assert!(blocked());
        drop(b);
        assert!(!blocked());
    }
}
