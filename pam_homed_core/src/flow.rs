//! The hooks' logic (homed-spec §5.2–5.4), generic over the PAM handle and the home daemon:
//! record lookup with its caches, the `AcquireHome`/`RefHome` loop with its prompts, the account
//! checks, session open and close, and the password change.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::code::Code;
use homed_shared::record::names::is_valid_strict;
use homed_shared::record::{MachineContext, RecordOrigin, Secret, UserRecord};
use secrecy::ExposeSecret;

use crate::account;
use crate::home::{HomeError, HomeService, names};
use crate::ops::{CachedRecord, PamOps, Password, Priority};
use crate::options::Options;

/// `PAM_PRELIM_CHECK` and `PAM_UPDATE_AUTHTOK` (not in pam-bindings' constants).
pub const PAM_PRELIM_CHECK: u32 = 0x4000;
pub const PAM_UPDATE_AUTHTOK: u32 = 0x2000;

use Code::*;

/// Whether the record names a security token (PKCS#11 or FIDO2) that could authenticate
/// without a password. The privileged section may be missing (the module runs as the user in a
/// screen locker), but the public fields name the tokens too.
pub fn may_use_token(record: &UserRecord) -> bool {
    let json = record.json();
    let public = ["pkcs11TokenUri", "fido2HmacCredential"];
    let privileged = ["pkcs11EncryptedKey", "fido2HmacSalt"];
    let in_machine_entries = |field: &str| {
        json.get("perMachine")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|entries| entries.iter().any(|e| e.get(field).is_some()))
    };
    public
        .iter()
        .any(|f| json.get(*f).is_some() || in_machine_entries(f))
        || privileged
            .iter()
            .any(|f| json.get("privileged").and_then(|p| p.get(*f)).is_some())
}

/// One hook call: the handle, the daemon and the module's options.
pub struct Hook<'a, P: PamOps, H: HomeService> {
    pub pam: &'a mut P,
    pub home: &'a H,
    pub options: Options,
}

fn now_usec() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl<'a, P: PamOps, H: HomeService> Hook<'a, P, H> {
    pub fn new(pam: &'a mut P, home: &'a H, options: Options) -> Self {
        Hook { pam, home, options }
    }

    fn debug(&self, text: &str) {
        if self.options.debug {
            self.pam.log(Priority::Debug, text);
        }
    }

    /// Logs `text` at `priority` and returns `code`.
    fn fail(&self, priority: Priority, code: Code, text: &str) -> Code {
        self.pam.log(priority, text);
        code
    }

    fn user_name(&mut self) -> Result<String, Code> {
        match self.pam.user() {
            Ok(user) if !user.is_empty() => Ok(user),
            Ok(_) => Err(self.fail(Priority::Err, PAM_SERVICE_ERR, "User name not set.")),
            Err(code) => Err(self.fail(
                Priority::Err,
                code,
                &format!("Failed to get user name: {code:?}"),
            )),
        }
    }

    /// The user's record from homed, through the per-user caches (§5.2).
    pub async fn user_record(&mut self, user: &str) -> Result<UserRecord, Code> {
        // Users homed never manages, and names it would refuse: no IPC at all.
        if user == "root" || user == "nobody" || !is_valid_strict(user) {
            return Err(PAM_USER_UNKNOWN);
        }
        let json = match self.pam.cached_record(user)? {
            CachedRecord::NotHomed => return Err(PAM_USER_UNKNOWN),
            CachedRecord::Json(json) => json,
            CachedRecord::Missing => match self.home.user_record(user).await {
                Ok(json) => {
                    self.pam.cache_record(user, &json)?;
                    json
                }
                Err(e) if e.is_no_daemon() || e.is(names::NO_SUCH_HOME) => {
                    self.debug(&format!("Not a user managed by homed: {e}"));
                    self.pam.cache_not_homed(user)?;
                    return Err(PAM_USER_UNKNOWN);
                }
                Err(e) => {
                    return Err(self.fail(
                        Priority::Err,
                        PAM_SERVICE_ERR,
                        &format!("Failed to query user record: {e}"),
                    ));
                }
            },
        };
        let record = UserRecord::parse(json.as_bytes(), RecordOrigin::Host).map_err(|e| {
            self.fail(
                Priority::Err,
                PAM_SERVICE_ERR,
                &format!("Failed to load user record: {e}"),
            )
        })?;
        if record.user_name() != user {
            return Err(self.fail(
                Priority::Err,
                PAM_SERVICE_ERR,
                "Acquired user record does not match user name.",
            ));
        }
        Ok(record)
    }

    /// Turns one of homed's refusals into a prompt, a message or a final code (the table of
    /// §5.3). `PAM_SUCCESS` means: the secret was extended, ask homed again.
    fn handle_error(&mut self, user: &str, secret: &mut Secret, e: &HomeError) -> Code {
        let name = e.name().unwrap_or_default();
        match name {
            names::HOME_ABSENT => {
                self.pam.error_message(&format!(
                    "Home of user {user} is currently absent, please plug in the necessary storage device or backing file system."
                ));
                self.fail(
                    Priority::Err,
                    PAM_PERM_DENIED,
                    &format!("Failed to acquire home for user {user}: {e}"),
                )
            }
            names::AUTHENTICATION_LIMIT_HIT => {
                self.pam.error_message(&format!(
                    "Too frequent login attempts for user {user}, try again later."
                ));
                self.fail(
                    Priority::Err,
                    PAM_MAXTRIES,
                    &format!("Failed to acquire home for user {user}: {e}"),
                )
            }
            names::BAD_PASSWORD => self.ask_again(
                secret,
                "Password: ",
                &format!(
                    "Password incorrect or not sufficient for authentication of user {user}."
                ),
                "Sorry, try again: ",
            ),
            names::BAD_RECOVERY_KEY => self.ask_again(
                secret,
                "Recovery key: ",
                &format!(
                    "Password/recovery key incorrect or not sufficient for authentication of user {user}."
                ),
                "Sorry, reenter recovery key: ",
            ),
            names::BAD_PASSWORD_AND_NO_TOKEN => {
                if secret.passwords().is_empty() {
                    self.pam
                        .error_message(&format!("Security token of user {user} not inserted."));
                } else {
                    self.pam.error_message(&format!(
                        "Password incorrect or not sufficient, and configured security token of user {user} not inserted."
                    ));
                }
                let answer = self.pam.prompt_secret("Try again with password: ");
                self.take_password(answer, secret)
            }
            names::TOKEN_PIN_NEEDED => {
                let answer = self.pam.prompt_secret("Security token PIN: ");
                self.take_pin(answer, secret)
            }
            names::TOKEN_PROTECTED_AUTHENTICATION_PATH_NEEDED => {
                self.pam.info_message(&format!(
                    "Please authenticate physically on security token of user {user}."
                ));
                secret.permit("pkcs11ProtectedAuthenticationPathPermitted");
                PAM_SUCCESS
            }
            names::TOKEN_USER_PRESENCE_NEEDED => {
                self.pam.info_message(&format!(
                    "Please confirm presence on security token of user {user}."
                ));
                secret.permit("fido2UserPresencePermitted");
                PAM_SUCCESS
            }
            names::TOKEN_USER_VERIFICATION_NEEDED => {
                self.pam.info_message(&format!(
                    "Please verify user on security token of user {user}."
                ));
                secret.permit("fido2UserVerificationPermitted");
                PAM_SUCCESS
            }
            names::TOKEN_PIN_LOCKED => {
                self.pam.error_message(
                    "Security token PIN is locked, please unlock it first. (Hint: Removal and re-insertion might suffice.)",
                );
                self.fail(
                    Priority::Err,
                    PAM_SERVICE_ERR,
                    &format!("Failed to acquire home for user {user}: {e}"),
                )
            }
            names::BAD_PIN | names::BAD_PIN_FEW_TRIES_LEFT | names::BAD_PIN_ONE_TRY_LEFT => {
                let hint = match name {
                    names::BAD_PIN_FEW_TRIES_LEFT => " (Only a few tries left!)",
                    names::BAD_PIN_ONE_TRY_LEFT => " (Only one try left!)",
                    _ => "",
                };
                self.pam.error_message(&format!(
                    "Security token PIN incorrect for user {user}.{hint}"
                ));
                let answer = self.pam.prompt_secret("Sorry, retry security token PIN: ");
                self.take_pin(answer, secret)
            }
            _ => self.fail(
                Priority::Err,
                PAM_SERVICE_ERR,
                &format!("Failed to acquire home for user {user}: {e}"),
            ),
        }
    }

    /// Asks for a first password, or after a refusal says so and asks for one more; the
    /// answer goes in front of the earlier ones.
    fn ask_again(
        &mut self,
        secret: &mut Secret,
        first_prompt: &str,
        refused: &str,
        retry_prompt: &str,
    ) -> Code {
        let answer = if secret.passwords().is_empty() {
            self.pam.prompt_secret(first_prompt)
        } else {
            self.pam.error_message(refused);
            self.pam.prompt_secret(retry_prompt)
        };
        self.take_password(answer, secret)
    }

    fn take_password(
        &mut self,
        answer: Result<Option<Password>, Code>,
        secret: &mut Secret,
    ) -> Code {
        match answer {
            Err(_) => PAM_CONV_ERR,
            Ok(None) => {
                self.debug("Password request aborted.");
                PAM_AUTHTOK_ERR
            }
            Ok(Some(p)) if p.expose_secret().is_empty() => {
                self.debug("Password request aborted.");
                PAM_AUTHTOK_ERR
            }
            Ok(Some(p)) => {
                secret.prepend_password(p);
                PAM_SUCCESS
            }
        }
    }

    fn take_pin(&mut self, answer: Result<Option<Password>, Code>, secret: &mut Secret) -> Code {
        match answer {
            Err(_) => PAM_CONV_ERR,
            Ok(Some(p)) if !p.expose_secret().is_empty() => {
                secret.set_token_pin(p);
                PAM_SUCCESS
            }
            Ok(_) => {
                self.debug("PIN request aborted.");
                PAM_AUTHTOK_ERR
            }
        }
    }

    /// Makes sure this handle holds a reference to the user's home (§5.3): `RefHome` if it is
    /// already active and `must_authenticate` is false, else `AcquireHome` with the passwords
    /// gathered so far, asking for more as homed demands.
    pub async fn acquire_home(&mut self, must_authenticate: bool) -> Code {
        let user = match self.user_name() {
            Ok(u) => u,
            Err(code) => return code,
        };
        match self.pam.has_home_fd(&user) {
            Ok(true) => return PAM_SUCCESS,
            Ok(false) => {}
            Err(code) => return code,
        }
        let record = match self.user_record(&user).await {
            Ok(r) => r,
            Err(code) => return code,
        };
        let user = record.user_name().to_owned();
        let suspend = self.options.please_suspend;
        let mut do_auth = must_authenticate;
        let mut secret: Option<Secret> = None;
        let mut home_not_active = false;
        let mut home_locked = false;
        let mut attempts = 0u32;

        let fd = loop {
            if do_auth && secret.is_none() {
                // A token handed over by an earlier module is the first guess; without one,
                // start empty: a security token may suffice, and homed says what is missing.
                let mut first = Secret::default();
                match self.pam.authtok() {
                    Ok(Some(token)) if !token.expose_secret().is_empty() => {
                        first.prepend_password(token)
                    }
                    Ok(_) => {}
                    Err(code) => {
                        return self.fail(
                            Priority::Err,
                            code,
                            &format!("Failed to get cached password: {code:?}"),
                        );
                    }
                }
                secret = Some(first);
            }
            let result = match (&secret, do_auth) {
                // Without a password, only a security token could authenticate. For a record
                // with none, homed's answer is certain (BadPassword), so the module gives it
                // itself: the user sees the same prompts, homed counts no failed attempt, and
                // systemd-homed 252 gets no failed activation whose closed reference could
                // deactivate the home again right after the real one (seen with its module).
                (Some(s), true) if s.is_empty() && !may_use_token(&record) => Err(
                    HomeError::named(names::BAD_PASSWORD, "no password given yet"),
                ),
                (Some(s), true) => {
                    let json = s.to_json();
                    self.home.acquire(&user, &json, suspend).await
                }
                _ => self.home.reference(&user, suspend).await,
            };
            match result {
                Ok(fd) => break fd,
                Err(e) if e.is(names::HOME_NOT_ACTIVE) || e.is(names::HOME_BUSY) => {
                    home_not_active = true;
                    do_auth = true;
                }
                Err(e) if e.is(names::HOME_LOCKED) => {
                    home_locked = true;
                    do_auth = true;
                }
                Err(e) => {
                    let secret = secret.get_or_insert_with(Secret::default);
                    let code = self.handle_error(&user, secret, &e);
                    if code == PAM_CONV_ERR {
                        // sshd's account and session hooks, cron, services: nobody to ask.
                        if home_not_active {
                            self.pam.error_message(&format!(
                                "Home of user {user} is currently not active, please log in locally first."
                            ));
                        }
                        if home_locked {
                            self.pam.error_message(&format!(
                                "Home of user {user} is currently locked, please unlock locally first."
                            ));
                        }
                        if must_authenticate || home_not_active || home_locked {
                            self.pam
                                .log(Priority::Err, "Failed to prompt for password/prompt.");
                        }
                        return if home_not_active || home_locked {
                            PAM_PERM_DENIED
                        } else {
                            PAM_CONV_ERR
                        };
                    }
                    if code != PAM_SUCCESS {
                        return code;
                    }
                }
            }
            attempts += 1;
            if attempts >= self.options.retries {
                self.pam.error_message(&format!(
                    "Too many unsuccessful login attempts for user {user}, refusing."
                ));
                return self.fail(
                    Priority::Err,
                    PAM_MAXTRIES,
                    &format!(
                        "Failed to acquire home for user {user} due to too many unsuccessful login attempts."
                    ),
                );
            }
        };

        // The reference must not leak into the user's shell: a CLOEXEC copy at fd 3 or above
        // (std's try_clone is fcntl(F_DUPFD_CLOEXEC, 3)).
        let fd = match fd.try_clone() {
            Ok(copy) => copy,
            Err(e) => {
                return self.fail(
                    Priority::Err,
                    PAM_SYSTEM_ERR,
                    &format!("Failed to duplicate the home reference: {e}"),
                );
            }
        };
        // Later modules may want the password, but only during authentication.
        if must_authenticate
            && let Some(first) = secret.as_ref().and_then(|s| s.passwords().first())
            && let Err(code) = self.pam.set_authtok(first)
        {
            return self.fail(
                Priority::Err,
                code,
                &format!("Failed to set PAM auth token: {code:?}"),
            );
        }
        if let Err(code) = self.pam.keep_home_fd(&user, fd) {
            return self.fail(
                Priority::Err,
                code,
                &format!("Failed to keep the home reference: {code:?}"),
            );
        }
        if do_auth {
            // An activation may have brought a newer record out of the home: fetch it again.
            if let Err(code) = self.pam.forget_record(&user) {
                return code;
            }
        }
        self.pam.log(
            Priority::Notice,
            &format!("Home for user {user} successfully acquired."),
        );
        PAM_SUCCESS
    }

    /// `pam_sm_authenticate`.
    pub async fn authenticate(&mut self) -> Code {
        self.debug("pam_homed authenticating");
        self.acquire_home(true).await
    }

    /// `pam_sm_acct_mgmt`.
    pub async fn account(&mut self) -> Code {
        self.debug("pam_homed account management");
        let code = self.acquire_home(false).await;
        if code != PAM_SUCCESS {
            return code;
        }
        let user = match self.user_name() {
            Ok(u) => u,
            Err(code) => return code,
        };
        let record = match self.user_record(&user).await {
            Ok(r) => r,
            Err(code) => return code,
        };
        let machine =
            MachineContext::local().unwrap_or_else(|_| MachineContext::new(String::new(), None));
        let verdict = account::check(&record.view(&machine), now_usec());
        if let Some(log) = &verdict.log {
            self.pam.log(Priority::Warning, log);
        }
        if let Some(message) = &verdict.message {
            self.pam.error_message(message);
        }
        verdict.code
    }

    /// `pam_sm_open_session`.
    pub async fn open_session(&mut self) -> Code {
        self.debug("pam_homed session start");
        let code = self.acquire_home(false).await;
        if code == PAM_USER_UNKNOWN {
            // Not ours: nothing to do for this session.
            return PAM_SUCCESS;
        }
        if code != PAM_SUCCESS {
            return code;
        }
        if let Err(code) = self.pam.putenv("SYSTEMD_HOME", "1") {
            return self.fail(
                Priority::Err,
                code,
                &format!("Failed to set PAM environment variable $SYSTEMD_HOME: {code:?}"),
            );
        }
        let suspend = if self.options.please_suspend {
            "1"
        } else {
            "0"
        };
        if let Err(code) = self.pam.putenv("SYSTEMD_HOME_SUSPEND", suspend) {
            return self.fail(
                Priority::Err,
                code,
                &format!("Failed to set PAM environment variable $SYSTEMD_HOME_SUSPEND: {code:?}"),
            );
        }
        PAM_SUCCESS
    }

    /// `pam_sm_close_session`.
    pub async fn close_session(&mut self) -> Code {
        self.debug("pam_homed session end");
        let user = match self.user_name() {
            Ok(u) => u,
            Err(code) => return code,
        };
        // Our reference goes first, so that ReleaseHome can deactivate.
        match self.pam.drop_home_fd(&user) {
            Ok(true) => {}
            Ok(false) => return PAM_SUCCESS,
            Err(code) => {
                self.pam.log(
                    Priority::Err,
                    &format!("Failed to release PAM home reference, ignoring: {code:?}"),
                );
            }
        }
        match self.home.release(&user).await {
            Ok(()) => PAM_SUCCESS,
            Err(e) if e.is(names::HOME_BUSY) => {
                self.pam.log(
                    Priority::Notice,
                    &format!("Not deactivating home directory of {user}, as it is still used."),
                );
                PAM_SUCCESS
            }
            Err(e) => self.fail(
                Priority::Err,
                PAM_SESSION_ERR,
                &format!("Failed to release user home: {e}"),
            ),
        }
    }

    /// `pam_sm_chauthtok`.
    pub async fn change_password(&mut self, flags: u32) -> Code {
        self.debug("pam_homed password change");
        let user = match self.user_name() {
            Ok(u) => u,
            Err(code) => return code,
        };
        let record = match self.user_record(&user).await {
            Ok(r) => r,
            Err(code) => return code,
        };
        let user = record.user_name().to_owned();
        let old = match self.pam.old_authtok() {
            Ok(t) => t.filter(|t| !t.expose_secret().is_empty()),
            Err(code) => return code,
        };
        let mut new = match self.pam.authtok() {
            Ok(t) => t.filter(|t| !t.expose_secret().is_empty()),
            Err(code) => return code,
        };
        if new.is_none() {
            match self.pam.new_authtok_noverify("New password: ") {
                Ok(Some(t)) if !t.expose_secret().is_empty() => {}
                Ok(_) => {
                    self.debug("Password request aborted.");
                    return PAM_AUTHTOK_ERR;
                }
                Err(code) => {
                    return self.fail(
                        Priority::Err,
                        code,
                        &format!("Failed to get new password: {code:?}"),
                    );
                }
            }
            // Lower case: PAM puts "Retype " in front.
            match self.pam.new_authtok_verify("new password: ") {
                Ok(Some(t)) if !t.expose_secret().is_empty() => new = Some(t),
                Ok(_) => return PAM_AUTHTOK_ERR,
                Err(code) => {
                    return self.fail(
                        Priority::Err,
                        code,
                        &format!("Failed to get password again: {code:?}"),
                    );
                }
            }
        }
        if flags & PAM_PRELIM_CHECK != 0 {
            return PAM_SUCCESS;
        }
        let Some(new) = new else {
            return PAM_AUTHTOK_ERR;
        };
        let new_secret = Secret::with_passwords(vec![new]);
        let mut old_secret = Secret::with_passwords(old.into_iter().collect());
        let new_json = new_secret.to_json();
        for _ in 0..self.options.retries {
            let old_json = old_secret.to_json();
            match self.home.change_password(&user, &new_json, &old_json).await {
                Ok(()) => {
                    self.pam.log(
                        Priority::Notice,
                        &format!("Successfully changed password for user {user}."),
                    );
                    return PAM_SUCCESS;
                }
                Err(e) => {
                    let code = self.handle_error(&user, &mut old_secret, &e);
                    if code == PAM_CONV_ERR {
                        return self.fail(
                            Priority::Err,
                            PAM_CONV_ERR,
                            "Failed to prompt for password/prompt.",
                        );
                    }
                    if code != PAM_SUCCESS {
                        return code;
                    }
                }
            }
        }
        self.fail(
            Priority::Err,
            PAM_MAXTRIES,
            &format!("Failed to change password for user {user}: too many attempts."),
        )
    }
}
