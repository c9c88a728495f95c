//! Where secrets come from: `$PASSWORD`, `$NEWPASSWORD` and `$PIN` (read once, then removed
//! from the environment so that no child sees them), or a prompt on the terminal without echo.
//!
//! Unlike systemd's homectl, which waits for a password agent forever when standard input is
//! not a terminal, this homectl fails at once with a clear message in that case.

use std::io::{BufRead as _, Write as _};
use std::os::fd::AsFd as _;

use homed_shared::record::Secret;
use nix::sys::termios::{self, LocalFlags, SetArg};
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

/// The secrets handed over in the environment, each usable once (as systemd's homectl does).
#[derive(Default)]
pub struct EnvSecrets {
    password: Option<SecretString>,
    new_password: Option<SecretString>,
    pin: Option<SecretString>,
}

impl EnvSecrets {
    /// Takes `$PASSWORD`, `$NEWPASSWORD` and `$PIN` out of the environment. Call before any
    /// thread starts.
    pub fn take_from_environment() -> EnvSecrets {
        fn take(name: &str) -> Option<SecretString> {
            let value = std::env::var_os(name)?;
            // SAFETY: called at the start of main, before homectl starts any thread, so nothing
            // reads the environment concurrently.
            unsafe { std::env::remove_var(name) };
            let value = Zeroizing::new(value.into_string().ok()?);
            Some(SecretString::from(value.as_str().to_owned()))
        }
        EnvSecrets {
            password: take("PASSWORD"),
            new_password: take("NEWPASSWORD"),
            pin: take("PIN"),
        }
    }

    pub fn take_password(&mut self) -> Option<SecretString> {
        self.password.take()
    }

    pub fn take_pin(&mut self) -> Option<SecretString> {
        self.pin.take()
    }

    pub fn take_new_password(&mut self) -> Option<SecretString> {
        self.new_password.take()
    }

    /// The secret homectl sends first: `$PASSWORD` and `$PIN` if given, else nothing.
    pub fn passed_secret(&mut self) -> Secret {
        // Token PINs are only settable through the wire form, so start from that.
        let mut secret = match self.pin.take() {
            Some(pin) => {
                let quoted =
                    Zeroizing::new(serde_json::to_string(pin.expose_secret()).unwrap_or_default());
                let text = Zeroizing::new(format!("{{\"tokenPin\":[{}]}}", quoted.as_str()));
                Secret::parse(text.as_bytes()).unwrap_or_default()
            }
            None => Secret::default(),
        };
        if let Some(pw) = self.password.take() {
            secret.prepend_password(pw);
        }
        secret
    }
}

/// True when standard input is a terminal, where homectl may prompt.
pub fn can_prompt() -> bool {
    nix::unistd::isatty(std::io::stdin().as_fd()).unwrap_or(false)
}

/// Asks `question` on the terminal with echo off.
pub fn prompt(question: &str) -> Result<SecretString, String> {
    if !can_prompt() {
        return Err(format!(
            "Cannot ask \"{question}\": standard input is not a terminal. Pass the password in $PASSWORD (or a new one in $NEWPASSWORD), or run homectl on a terminal."
        ));
    }
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| format!("Failed to open terminal: {e}"))?;
    let old =
        termios::tcgetattr(tty.as_fd()).map_err(|e| format!("Failed to get terminal mode: {e}"))?;
    let mut quiet = old.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ICANON);
    termios::tcsetattr(tty.as_fd(), SetArg::TCSADRAIN, &quiet)
        .map_err(|e| format!("Failed to set terminal mode: {e}"))?;
    let mut out = &tty;
    let _ = write!(out, "{question} ");
    let _ = out.flush();
    let mut line = Zeroizing::new(String::new());
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    let _ = termios::tcsetattr(tty.as_fd(), SetArg::TCSADRAIN, &old);
    let _ = writeln!(out);
    match read {
        Ok(0) => Err("Failed to acquire password: end of input".into()),
        Ok(_) => {
            let trimmed = line.trim_end_matches(['\n', '\r']);
            Ok(SecretString::from(trimmed.to_owned()))
        }
        Err(e) => Err(format!("Failed to read password: {e}")),
    }
}

/// Asks for a new password twice until both agree (four rounds at most, as systemd's homectl).
pub fn prompt_new_password(user: &str) -> Result<SecretString, String> {
    for _ in 0..4 {
        let first = prompt(&format!("Please enter new password for user {user}:"))?;
        let second = prompt(&format!(
            "Please enter new password for user {user} (repeat):"
        ))?;
        if first.expose_secret() == second.expose_secret() {
            return Ok(first);
        }
        crate::log::error("Password didn't match, try again.");
    }
    Err("Too many attempts, giving up.".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passed_secret_has_password_and_pin_once() {
        let mut env = EnvSecrets {
            password: Some(SecretString::from("pw \"1\"".to_owned())),
            new_password: None,
            pin: Some(SecretString::from("1234".to_owned())),
        };
        let first = env.passed_secret();
        assert_eq!(
            first.to_json().as_str(),
            r#"{"password":["pw \"1\""],"tokenPin":["1234"]}"#
        );
        assert!(env.passed_secret().is_empty(), "each is used once");
    }
}
