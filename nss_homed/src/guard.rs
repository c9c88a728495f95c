//! When the module must stay out of the way: the daemon's own lookups, callers that bypass the
//! homed userdb service, and lookups the module makes itself.

use std::cell::Cell;

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

/// The module answers nothing (`HOMED_BYPASS_NSS` set to a true value).
pub fn module_bypassed() -> bool {
    secure_var(BYPASS_VAR).is_some_and(|v| truthy(&v))
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
