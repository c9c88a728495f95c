//! What `pam_homed.so` does (homed-spec §5), as a library: the hooks' logic in `flow.rs`, over
//! two traits, [`ops::PamOps`] (the PAM handle) and [`home::HomeService`] (the home daemon).
//! The module itself (`pam_homed/`) is a thin shell that implements `PamOps` over libpam and
//! exports the `pam_sm_*` functions; the tests here drive the logic with scripted fakes.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod account;
pub mod bus;
pub mod code;
pub mod flow;
pub mod home;
pub mod ops;
pub mod options;

use std::ffi::CStr;

use crate::code::Code;
use crate::flow::Hook;
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
