//! `pam_homed.so`: logging in through login, sshd, su or a display manager acquires the user's
//! home from homed (or systemd-homed) over D-Bus, keeps it referenced for the session and
//! releases it at the end (homed-spec §5).
//!
//! This crate is the shell: the logic is `pam_homed_core`, over the `PamOps` trait that
//! `handle.rs` implements with libpam. The exported `pam_sm_*` functions come from
//! pam-bindings' `pam_hooks!`; each hook runs inside
//! our own `catch_unwind`, so that a panic becomes `PAM_SYSTEM_ERR` with nothing printed (the
//! bindings' own catch would answer PAM_ABORT after the default hook printed into the host's
//! stderr). Each hook parses its options and runs the logic of the core's `flow.rs` inside one
//! `zbus::block_on`, with a bus connection created and dropped inside it, so that no thread
//! outlives the call. Nothing is written to stdout or stderr: logs go to syslog through
//! `pam_syslog`, and messages for the user through the PAM conversation.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod ffi;
mod handle;

use std::ffi::CStr;

use pam::constants::{PamFlag, PamResultCode};
use pam::module::{PamHandle, PamHooks};
use pam_homed_core::bus::SystemBus;
use pam_homed_core::code::Code;
use pam_homed_core::{Entry, options_for, run_entry};

use crate::handle::LibPam;

/// For pam-bindings' hooks.
fn to_pam(code: Code) -> PamResultCode {
    PamResultCode::try_from(code.as_raw()).unwrap_or(PamResultCode::PAM_SYSTEM_ERR)
}

/// From pam-bindings' calls.
fn from_pam(code: PamResultCode) -> Code {
    Code::from_raw(code as std::ffi::c_int)
}

/// The module argument that makes a hook panic, in test builds only (debug, or the `test-hooks`
/// feature).
pub const TEST_PANIC_ARG: &str = "test-panic";

/// This library carries its own copy of std, so the hook covers only panics inside the module:
/// they must not print into the host's stderr.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

/// Runs one hook; a panic inside it is reported as `PAM_SYSTEM_ERR`.
fn run(pamh: &mut PamHandle, args: &[&CStr], entry: Entry) -> PamResultCode {
    quiet_panics();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_hook(pamh, args, entry)))
        .unwrap_or(PamResultCode::PAM_SYSTEM_ERR)
}

fn run_hook(pamh: &mut PamHandle, args: &[&CStr], entry: Entry) -> PamResultCode {
    #[cfg(any(debug_assertions, feature = "test-hooks"))]
    #[allow(clippy::panic)]
    if args
        .iter()
        .any(|a| a.to_bytes() == TEST_PANIC_ARG.as_bytes())
    {
        panic!("forced panic in {entry:?} (test builds)");
    }
    let mut pam = LibPam::new(pamh);
    let options = options_for(&mut pam, args);
    to_pam(zbus::block_on(async {
        // Created and dropped in here: the connection's work never moves to a helper thread.
        let bus = SystemBus::new();
        let code = run_entry(&mut pam, &bus, options, entry).await;
        drop(bus);
        code
    }))
}

struct PamHomed;
pam::pam_hooks!(PamHomed);

impl PamHooks for PamHomed {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        run(pamh, &args, Entry::Authenticate)
    }

    fn sm_setcred(_: &mut PamHandle, _: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        PamResultCode::PAM_SUCCESS
    }

    fn acct_mgmt(pamh: &mut PamHandle, args: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        run(pamh, &args, Entry::Account)
    }

    fn sm_open_session(pamh: &mut PamHandle, args: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        run(pamh, &args, Entry::OpenSession)
    }

    fn sm_close_session(pamh: &mut PamHandle, args: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        run(pamh, &args, Entry::CloseSession)
    }

    fn sm_chauthtok(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        run(pamh, &args, Entry::ChangePassword(flags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_values_round_trip() {
        for (i, code) in pam_homed_core::code::ALL.iter().enumerate() {
            assert_eq!(code.as_raw() as usize, i);
            assert_eq!(Code::from_raw(code.as_raw()), *code);
            assert_eq!(Code::from_raw(to_pam(*code) as std::ffi::c_int), *code);
        }
        assert_eq!(Code::from_raw(-1), Code::PAM_SYSTEM_ERR);
        assert_eq!(Code::from_raw(99), Code::PAM_SYSTEM_ERR);
    }
}
