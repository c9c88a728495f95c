//! `pam_homed.so`: logging in through login, sshd, su or a display manager acquires the user's
//! home from homed (or systemd-homed) over D-Bus, keeps it referenced for the session and
//! releases it at the end (homed-spec §5).
//!
//! The exported `pam_sm_*` functions come from pam-bindings' `pam_hooks!`; each hook runs inside
//! our own `catch_unwind`, so that a panic becomes `PAM_SYSTEM_ERR` with nothing printed (the
//! bindings' own catch would answer PAM_ABORT after the default hook printed into the host's
//! stderr). Each hook parses its options and runs the logic of `flow.rs` inside one
//! `zbus::block_on`, with a bus connection created and dropped inside it, so that no thread
//! outlives the call. Nothing is written to stdout or stderr: logs go to syslog through
//! `pam_syslog`, and messages for the user through the PAM conversation.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod account;
pub mod bus;
pub mod code;
mod ffi;
pub mod flow;
pub mod handle;
pub mod home;
pub mod ops;
pub mod options;

use std::ffi::CStr;

use pam::constants::{PamFlag, PamResultCode};
use pam::module::{PamHandle, PamHooks};

use crate::bus::SystemBus;
use crate::code::Code;
use crate::flow::Hook;
use crate::handle::LibPam;
use crate::ops::{PamOps, Priority};
use crate::options::Options;

/// Which PAM entry point runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Authenticate,
    Account,
    OpenSession,
    CloseSession,
    ChangePassword(u32),
}

/// Reads the options of one call: `$SYSTEMD_HOME_SUSPEND` from the PAM environment, then the
/// process's (through secure_getenv), then the module arguments, which win.
pub fn options_for<P: PamOps>(pam: &mut P, args: &[&CStr]) -> Options {
    let env = pam
        .getenv("SYSTEMD_HOME_SUSPEND")
        .or_else(|| pam.secure_env("SYSTEMD_HOME_SUSPEND"));
    let (options, unknown) = Options::parse(env.as_deref(), args.iter().copied());
    for arg in unknown {
        pam.log(
            Priority::Warning,
            &format!("Unknown parameter '{arg}', ignoring."),
        );
    }
    options
}

/// Runs one entry point's logic against a daemon.
pub async fn run_entry<P: PamOps, H: home::HomeService>(
    pam: &mut P,
    home: &H,
    options: Options,
    entry: Entry,
) -> Code {
    let mut hook = Hook::new(pam, home, options);
    match entry {
        Entry::Authenticate => hook.authenticate().await,
        Entry::Account => hook.account().await,
        Entry::OpenSession => hook.open_session().await,
        Entry::CloseSession => hook.close_session().await,
        Entry::ChangePassword(flags) => hook.change_password(flags).await,
    }
}

/// The module argument that makes a hook panic, in test builds only.
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
    #[cfg(debug_assertions)]
    #[allow(clippy::panic)]
    if args
        .iter()
        .any(|a| a.to_bytes() == TEST_PANIC_ARG.as_bytes())
    {
        panic!("forced panic in {entry:?} (test builds)");
    }
    let mut pam = LibPam::new(pamh);
    let options = options_for(&mut pam, args);
    zbus::block_on(async {
        // Created and dropped in here: the connection's work never moves to a helper thread.
        let bus = SystemBus::new();
        let code = run_entry(&mut pam, &bus, options, entry).await;
        drop(bus);
        code
    })
    .to_pam()
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
