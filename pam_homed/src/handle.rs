//! `PamOps` on a real libpam handle: pam-bindings for the user, items and conversation, and
//! `ffi.rs` for the rest.

use std::os::fd::OwnedFd;

use pam::constants::{PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_TEXT_INFO};

use pam_homed_core::code::Code;

use crate::from_pam;
use pam::conv::Conv;
use pam::items::{AuthTok, OldAuthTok};
use pam::module::PamHandle;
use secrecy::SecretString;

use crate::ffi::{Raw, RawData};
use pam_homed_core::ops::{CachedRecord, PamOps, Password, Priority};

/// Data keys, per user name, because sudo changes the user within one handle (homed-spec §5.1).
pub fn record_key(user: &str) -> String {
    format!("systemd-home-user-record-{user}")
}
pub fn shared_record_key(user: &str) -> String {
    format!("systemd-user-record-{user}")
}
pub fn fd_key(user: &str) -> String {
    format!("systemd-home-fd-{user}")
}

/// Copies PAM-owned bytes into a zeroizing string without a second copy.
fn password_from(bytes: &[u8]) -> Password {
    SecretString::from(String::from_utf8_lossy(bytes).into_owned())
}

pub struct LibPam<'a> {
    raw: Raw<'a>,
}

impl<'a> LibPam<'a> {
    pub fn new(pamh: &'a mut PamHandle) -> Self {
        LibPam { raw: Raw(pamh) }
    }

    fn send(&self, style: libc::c_int, text: &str) -> Result<Option<Password>, Code> {
        let conv = self
            .raw
            .0
            .get_item::<Conv>()
            .map_err(from_pam)?
            .ok_or(Code::PAM_CONV_ERR)?;
        let answer = conv.send(style, text).map_err(from_pam)?;
        Ok(answer.map(|bytes| password_from(bytes.as_bytes())))
    }
}

impl PamOps for LibPam<'_> {
    fn user(&mut self) -> Result<String, Code> {
        self.raw.0.get_user(None).map_err(from_pam)
    }

    fn authtok(&self) -> Result<Option<Password>, Code> {
        Ok(self
            .raw
            .0
            .get_item::<AuthTok>()
            .map_err(from_pam)?
            .map(|t| password_from(t.as_bytes())))
    }

    fn old_authtok(&self) -> Result<Option<Password>, Code> {
        Ok(self
            .raw
            .0
            .get_item::<OldAuthTok>()
            .map_err(from_pam)?
            .map(|t| password_from(t.as_bytes())))
    }

    fn set_authtok(&mut self, token: &Password) -> Result<(), Code> {
        use secrecy::ExposeSecret;
        self.raw.set_authtok(token.expose_secret())
    }

    fn prompt_secret(&mut self, prompt: &str) -> Result<Option<Password>, Code> {
        self.send(PAM_PROMPT_ECHO_OFF, prompt)
    }

    fn error_message(&mut self, text: &str) {
        let _ = self.send(PAM_ERROR_MSG, text);
    }

    fn info_message(&mut self, text: &str) {
        let _ = self.send(PAM_TEXT_INFO, text);
    }

    fn new_authtok_noverify(&mut self, prompt: &str) -> Result<Option<Password>, Code> {
        Ok(self
            .raw
            .get_new_authtok(prompt, false)?
            .map(|t| password_from(t.as_bytes())))
    }

    fn new_authtok_verify(&mut self, prompt: &str) -> Result<Option<Password>, Code> {
        Ok(self
            .raw
            .get_new_authtok(prompt, true)?
            .map(|t| password_from(t.as_bytes())))
    }

    fn cached_record(&self, user: &str) -> Result<CachedRecord, Code> {
        Ok(match self.raw.get_cstring(&record_key(user))? {
            RawData::Missing => CachedRecord::Missing,
            RawData::NotHomed => CachedRecord::NotHomed,
            RawData::CString(json) => CachedRecord::Json(json),
        })
    }

    fn cache_record(&mut self, user: &str, json: &str) -> Result<(), Code> {
        self.raw.set_cstring(&record_key(user), json)?;
        self.raw.set_cstring(&shared_record_key(user), json)
    }

    fn cache_not_homed(&mut self, user: &str) -> Result<(), Code> {
        self.raw.set_not_homed(&record_key(user))
    }

    fn forget_record(&mut self, user: &str) -> Result<(), Code> {
        self.raw.remove(&record_key(user))?;
        self.raw.remove(&shared_record_key(user))
    }

    fn has_home_fd(&self, user: &str) -> Result<bool, Code> {
        self.raw.has_fd(&fd_key(user))
    }

    fn keep_home_fd(&mut self, user: &str, fd: OwnedFd) -> Result<(), Code> {
        self.raw.set_fd(&fd_key(user), fd)
    }

    fn drop_home_fd(&mut self, user: &str) -> Result<bool, Code> {
        let key = fd_key(user);
        if !self.raw.has_fd(&key)? {
            return Ok(false);
        }
        self.raw.remove(&key)?;
        Ok(true)
    }

    fn getenv(&mut self, name: &str) -> Option<String> {
        self.raw.getenv(name)
    }

    fn putenv(&mut self, name: &str, value: &str) -> Result<(), Code> {
        self.raw.putenv(name, value)
    }

    fn secure_env(&self, name: &str) -> Option<String> {
        homed_shared::env::secure_var(name)
    }

    fn log(&self, priority: Priority, text: &str) {
        self.raw.syslog(priority.as_raw(), text);
    }
}
