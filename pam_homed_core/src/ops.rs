//! The seam between the module's logic and libpam: everything the hooks need from the PAM
//! handle (user, tokens, conversation, module data, environment, syslog). The real handle
//! implements it in `handle.rs`; unit tests drive the logic with a scripted fake.

use std::os::fd::OwnedFd;

use crate::code::Code;
use secrecy::SecretString;

/// A password or PIN as the module holds it: zeroized when dropped, never printed.
pub type Password = SecretString;

/// syslog priorities the module uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Err,
    Warning,
    Notice,
    Debug,
}

impl Priority {
    pub fn as_raw(self) -> libc::c_int {
        match self {
            Priority::Err => libc::LOG_ERR,
            Priority::Warning => libc::LOG_WARNING,
            Priority::Notice => libc::LOG_NOTICE,
            Priority::Debug => libc::LOG_DEBUG,
        }
    }
}

/// What the per-user record cache (`systemd-home-user-record-NAME`) holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CachedRecord {
    /// Nothing cached yet: ask homed.
    Missing,
    /// homed said earlier that it does not manage this user.
    NotHomed,
    /// The record's JSON as homed returned it.
    Json(String),
}

/// Everything the hooks use of a PAM handle.
pub trait PamOps {
    /// `PAM_USER`, asking through the conversation if the application did not set it.
    fn user(&mut self) -> Result<String, Code>;

    /// `PAM_AUTHTOK`, copied into zeroizing memory.
    fn authtok(&self) -> Result<Option<Password>, Code>;
    /// `PAM_OLDAUTHTOK`, copied into zeroizing memory.
    fn old_authtok(&self) -> Result<Option<Password>, Code>;
    /// Sets `PAM_AUTHTOK` for the modules after this one.
    fn set_authtok(&mut self, token: &Password) -> Result<(), Code>;

    /// Asks the user through the conversation, echo off. `Err` when the conversation fails.
    fn prompt_secret(&mut self, prompt: &str) -> Result<Option<Password>, Code>;
    /// Shows an error message (`PAM_ERROR_MSG`); quiet if the conversation fails.
    fn error_message(&mut self, text: &str);
    /// Shows an informational message (`PAM_TEXT_INFO`); quiet if the conversation fails.
    fn info_message(&mut self, text: &str);
    /// `pam_get_authtok_noverify`: asks for a new token and stores it as `PAM_AUTHTOK`.
    fn new_authtok_noverify(&mut self, prompt: &str) -> Result<Option<Password>, Code>;
    /// `pam_get_authtok_verify`: asks for the new token again and checks that both match.
    fn new_authtok_verify(&mut self, prompt: &str) -> Result<Option<Password>, Code>;

    /// The record cache for `user`.
    fn cached_record(&self, user: &str) -> Result<CachedRecord, Code>;
    /// Stores the record under both `systemd-home-user-record-NAME` and, as a NUL-terminated
    /// string for pam_systemd, `systemd-user-record-NAME`.
    fn cache_record(&mut self, user: &str, json: &str) -> Result<(), Code>;
    /// Remembers that homed does not manage `user` (the negative cache).
    fn cache_not_homed(&mut self, user: &str) -> Result<(), Code>;
    /// Drops both cached copies of the record (after an activation the record may be newer).
    fn forget_record(&mut self, user: &str) -> Result<(), Code>;

    /// Whether `systemd-home-fd-NAME` holds a reference.
    fn has_home_fd(&self, user: &str) -> Result<bool, Code>;
    /// Keeps the reference fd (already CLOEXEC and ≥ 3) until the session closes.
    fn keep_home_fd(&mut self, user: &str, fd: OwnedFd) -> Result<(), Code>;
    /// Closes the kept reference fd; `Ok(false)` if there was none.
    fn drop_home_fd(&mut self, user: &str) -> Result<bool, Code>;

    /// `pam_getenv`.
    fn getenv(&mut self, name: &str) -> Option<String>;
    /// `pam_putenv("NAME=VALUE")`.
    fn putenv(&mut self, name: &str, value: &str) -> Result<(), Code>;
    /// The process environment, read with `secure_getenv`.
    fn secure_env(&self, name: &str) -> Option<String>;

    /// `pam_syslog`.
    fn log(&self, priority: Priority, text: &str);
}
