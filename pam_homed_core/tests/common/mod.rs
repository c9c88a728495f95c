//! A scripted PAM handle and a scripted home daemon. Each holds the steps a test expects, in
//! order; a step that comes out of order fails the test at once, and one that never came fails
//! it when the fake is dropped.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;

use pam_homed_core::code::Code;
use pam_homed_core::home::{HomeError, HomeService};
use pam_homed_core::ops::{CachedRecord, PamOps, Password, Priority};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// One exchange with the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conv {
    /// An echo-off prompt with this text, answered with `Some(answer)`, or failing (`None`).
    Prompt(&'static str, Option<&'static str>),
    /// An error message with this text.
    Error(String),
    /// An informational message with this text.
    Info(String),
    /// `pam_get_authtok_noverify`/`_verify` with this prompt, answered so.
    NewToken(&'static str, Option<&'static str>),
}

pub struct FakePam {
    pub user: String,
    pub authtok: Option<Zeroizing<String>>,
    pub old_authtok: Option<Zeroizing<String>>,
    pub script: VecDeque<Conv>,
    pub records: HashMap<String, CachedRecord>,
    pub shared_records: HashMap<String, String>,
    pub fds: HashMap<String, OwnedFd>,
    pub env: HashMap<String, String>,
    pub logs: RefCell<Vec<(Priority, String)>>,
}

impl FakePam {
    pub fn new(user: &str, script: impl IntoIterator<Item = Conv>) -> FakePam {
        FakePam {
            user: user.to_owned(),
            authtok: None,
            old_authtok: None,
            script: script.into_iter().collect(),
            records: HashMap::new(),
            shared_records: HashMap::new(),
            fds: HashMap::new(),
            env: HashMap::new(),
            logs: RefCell::new(Vec::new()),
        }
    }

    pub fn expect(&mut self, steps: impl IntoIterator<Item = Conv>) {
        self.script.extend(steps);
    }

    fn next(&mut self, got: Conv) -> Conv {
        let Some(want) = self.script.pop_front() else {
            panic!("unexpected conversation step {got:?}: the script is done");
        };
        want
    }

    pub fn logged(&self, needle: &str) -> bool {
        self.logs.borrow().iter().any(|(_, l)| l.contains(needle))
    }
}

impl Drop for FakePam {
    fn drop(&mut self) {
        if !std::thread::panicking() && !self.script.is_empty() {
            panic!("conversation steps never happened: {:?}", self.script);
        }
    }
}

fn secret(s: &str) -> Password {
    SecretString::from(s.to_owned())
}

impl PamOps for FakePam {
    fn user(&mut self) -> Result<String, Code> {
        Ok(self.user.clone())
    }

    fn authtok(&self) -> Result<Option<Password>, Code> {
        Ok(self.authtok.as_ref().map(|t| secret(t)))
    }

    fn old_authtok(&self) -> Result<Option<Password>, Code> {
        Ok(self.old_authtok.as_ref().map(|t| secret(t)))
    }

    fn set_authtok(&mut self, token: &Password) -> Result<(), Code> {
        let mut copy = Zeroizing::new(String::with_capacity(token.expose_secret().len()));
        copy.push_str(token.expose_secret());
        self.authtok = Some(copy);
        Ok(())
    }

    fn prompt_secret(&mut self, prompt: &str) -> Result<Option<Password>, Code> {
        match self.next(Conv::Prompt("?", None)) {
            Conv::Prompt(text, answer) => {
                assert_eq!(text, prompt, "a different prompt was shown");
                match answer {
                    Some(a) => Ok(Some(secret(a))),
                    None => Err(Code::PAM_CONV_ERR),
                }
            }
            other => panic!("expected {other:?}, got the prompt {prompt:?}"),
        }
    }

    fn error_message(&mut self, text: &str) {
        match self.next(Conv::Error(text.to_owned())) {
            Conv::Error(want) => assert_eq!(want, text),
            other => panic!("expected {other:?}, got the error message {text:?}"),
        }
    }

    fn info_message(&mut self, text: &str) {
        match self.next(Conv::Info(text.to_owned())) {
            Conv::Info(want) => assert_eq!(want, text),
            other => panic!("expected {other:?}, got the message {text:?}"),
        }
    }

    fn new_authtok_noverify(&mut self, prompt: &str) -> Result<Option<Password>, Code> {
        match self.next(Conv::NewToken("?", None)) {
            Conv::NewToken(text, answer) => {
                assert_eq!(text, prompt);
                if let Some(a) = answer {
                    self.authtok = Some(Zeroizing::new(a.to_owned()));
                }
                Ok(answer.map(secret))
            }
            other => panic!("expected {other:?}, got a new-token prompt {prompt:?}"),
        }
    }

    fn new_authtok_verify(&mut self, prompt: &str) -> Result<Option<Password>, Code> {
        match self.next(Conv::NewToken("?", None)) {
            Conv::NewToken(text, answer) => {
                assert_eq!(text, prompt);
                // Compared in place: a copy here would be a stray plaintext of the test's own.
                if answer != self.authtok.as_ref().map(|t| t.as_str()) {
                    return Err(Code::PAM_AUTHTOK_RECOVERY_ERR);
                }
                Ok(answer.map(secret))
            }
            other => panic!("expected {other:?}, got a verify prompt {prompt:?}"),
        }
    }

    fn cached_record(&self, user: &str) -> Result<CachedRecord, Code> {
        Ok(self
            .records
            .get(user)
            .cloned()
            .unwrap_or(CachedRecord::Missing))
    }

    fn cache_record(&mut self, user: &str, json: &str) -> Result<(), Code> {
        self.records
            .insert(user.to_owned(), CachedRecord::Json(json.to_owned()));
        self.shared_records.insert(user.to_owned(), json.to_owned());
        Ok(())
    }

    fn cache_not_homed(&mut self, user: &str) -> Result<(), Code> {
        self.records.insert(user.to_owned(), CachedRecord::NotHomed);
        Ok(())
    }

    fn forget_record(&mut self, user: &str) -> Result<(), Code> {
        self.records.remove(user);
        self.shared_records.remove(user);
        Ok(())
    }

    fn has_home_fd(&self, user: &str) -> Result<bool, Code> {
        Ok(self.fds.contains_key(user))
    }

    fn keep_home_fd(&mut self, user: &str, fd: OwnedFd) -> Result<(), Code> {
        self.fds.insert(user.to_owned(), fd);
        Ok(())
    }

    fn drop_home_fd(&mut self, user: &str) -> Result<bool, Code> {
        Ok(self.fds.remove(user).is_some())
    }

    fn getenv(&mut self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    fn putenv(&mut self, name: &str, value: &str) -> Result<(), Code> {
        self.env.insert(name.to_owned(), value.to_owned());
        Ok(())
    }

    fn secure_env(&self, _: &str) -> Option<String> {
        None
    }

    fn log(&self, priority: Priority, text: &str) {
        self.logs.borrow_mut().push((priority, text.to_owned()));
    }
}

/// One call the daemon expects, with its answer. Secrets are compared as the JSON text the
/// module sends.
#[derive(Debug)]
pub enum Call {
    UserRecord(&'static str, Result<String, HomeError>),
    Acquire(&'static str, &'static str, Result<(), HomeError>),
    Ref(&'static str, Result<(), HomeError>),
    Release(&'static str, Result<(), HomeError>),
    ChangePassword(
        &'static str,
        &'static str,
        &'static str,
        Result<(), HomeError>,
    ),
}

#[derive(Default)]
pub struct FakeHome {
    script: RefCell<VecDeque<Call>>,
    /// The read ends of the pipes whose write ends were handed out as references.
    pub readers: RefCell<Vec<std::io::PipeReader>>,
}

impl FakeHome {
    pub fn new(script: impl IntoIterator<Item = Call>) -> FakeHome {
        FakeHome {
            script: RefCell::new(script.into_iter().collect()),
            readers: RefCell::new(Vec::new()),
        }
    }

    pub fn expect(&self, calls: impl IntoIterator<Item = Call>) {
        self.script.borrow_mut().extend(calls);
    }

    fn next(&self, what: &str) -> Call {
        self.script
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| panic!("unexpected call {what}: the script is done"))
    }

    fn reference(&self) -> OwnedFd {
        let (reader, writer) = std::io::pipe().unwrap();
        self.readers.borrow_mut().push(reader);
        OwnedFd::from(writer)
    }
}

impl Drop for FakeHome {
    fn drop(&mut self) {
        if !std::thread::panicking() && !self.script.borrow().is_empty() {
            panic!("calls never made: {:?}", self.script.borrow());
        }
    }
}

impl HomeService for FakeHome {
    async fn user_record(&self, user: &str) -> Result<String, HomeError> {
        match self.next(&format!("GetUserRecordByName({user})")) {
            Call::UserRecord(want, answer) => {
                assert_eq!(want, user);
                answer
            }
            other => panic!("expected {other:?}, got GetUserRecordByName({user})"),
        }
    }

    async fn acquire(&self, user: &str, secret: &str, _: bool) -> Result<OwnedFd, HomeError> {
        match self.next(&format!("AcquireHome({user})")) {
            Call::Acquire(want, want_secret, answer) => {
                assert_eq!(want, user);
                assert!(secret == want_secret, "AcquireHome got another secret");
                answer.map(|()| self.reference())
            }
            other => panic!("expected {other:?}, got AcquireHome({user})"),
        }
    }

    async fn reference(&self, user: &str, _: bool) -> Result<OwnedFd, HomeError> {
        match self.next(&format!("RefHome({user})")) {
            Call::Ref(want, answer) => {
                assert_eq!(want, user);
                answer.map(|()| self.reference())
            }
            other => panic!("expected {other:?}, got RefHome({user})"),
        }
    }

    async fn release(&self, user: &str) -> Result<(), HomeError> {
        match self.next(&format!("ReleaseHome({user})")) {
            Call::Release(want, answer) => {
                assert_eq!(want, user);
                answer
            }
            other => panic!("expected {other:?}, got ReleaseHome({user})"),
        }
    }

    async fn change_password(
        &self,
        user: &str,
        new_secret: &str,
        old_secret: &str,
    ) -> Result<(), HomeError> {
        match self.next(&format!("ChangePasswordHome({user})")) {
            Call::ChangePassword(want, want_new, want_old, answer) => {
                assert_eq!(want, user);
                assert!(new_secret == want_new, "another new secret");
                assert!(old_secret == want_old, "another old secret");
                answer
            }
            other => panic!("expected {other:?}, got ChangePasswordHome({user})"),
        }
    }
}

pub fn record(user: &str, extra: &str) -> String {
    format!(r#"{{"userName":"{user}","disposition":"regular","uid":60100{extra}}}"#)
}

pub fn err(name: &str) -> HomeError {
    HomeError::named(name, "")
}
