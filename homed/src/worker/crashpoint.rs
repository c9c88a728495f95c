//! Kill points for tests (debug builds only): with `HOMED_TEST_KILL_AT` set to a step's name,
//! the process that reaches the step kills itself with SIGKILL, as a crash or a power cut
//! there would. The daemon and the worker share the steps.

/// The environment variable that names the step to die at.
pub const TEST_KILL_VAR: &str = "HOMED_TEST_KILL_AT";

/// The steps of a password change whose keys live in the storage, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChangeStep {
    BeforeNewKeyslot,
    AfterNewKeyslot,
    /// In the daemon: the new host record is saved.
    AfterHostRecord,
    AfterOldKeyslotRemoved,
    AfterHeaderRecord,
    AfterIdentity,
}

impl KeyChangeStep {
    pub fn name(self) -> &'static str {
        match self {
            KeyChangeStep::BeforeNewKeyslot => "before-new-keyslot",
            KeyChangeStep::AfterNewKeyslot => "after-new-keyslot",
            KeyChangeStep::AfterHostRecord => "after-host-record",
            KeyChangeStep::AfterOldKeyslotRemoved => "after-old-keyslot-removed",
            KeyChangeStep::AfterHeaderRecord => "after-header-record",
            KeyChangeStep::AfterIdentity => "after-identity",
        }
    }
}

/// Kills this process at `step` when the test hook asks for it; does nothing in release builds.
pub fn reached(step: KeyChangeStep) {
    if cfg!(debug_assertions) && std::env::var_os(TEST_KILL_VAR).is_some_and(|v| v == step.name()) {
        eprintln!("{TEST_KILL_VAR}: killed at {}", step.name());
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
