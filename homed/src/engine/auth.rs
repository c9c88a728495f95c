//! Checking a secret: the rate limit, the password hash check (off the async threads), the
//! counters (one host-record write per attempt) and the bad-password delay. Every method that
//! checks a secret goes through here, fixation included.

use homed_shared::UserRecord;
use homed_shared::password::secret_matches;
use homed_shared::record::Secret;
use homed_shared::record::policy;
use secrecy::ExposeSecret as _;
use serde_json::{Map, Value, json};

use crate::engine::{BAD_PASSWORD_DELAY, Engine, EngineError, EngineResult, Home, now_usec};
use crate::worker::proto::WorkRequest;

/// A failure that must cost the bad-password delay before it is reported.
pub(crate) struct Delayed(pub(crate) EngineError);

pub(crate) enum AuthError {
    Now(EngineError),
    Delayed(Delayed),
}

impl From<EngineError> for AuthError {
    fn from(e: EngineError) -> Self {
        AuthError::Now(e)
    }
}

/// A rate-limit count not yet saved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateLimitCount {
    begin: u64,
    count: u64,
}

impl RateLimitCount {
    pub(crate) fn apply(self, status: &mut Map<String, Value>) {
        status.insert("rateLimitBeginUSec".into(), json!(self.begin));
        status.insert("rateLimitCount".into(), json!(self.count));
    }
}

/// Counts one checked secret in a status section.
pub(crate) fn count_outcome(status: &mut Map<String, Value>, good: bool) {
    let (counter, last) = if good {
        ("goodAuthenticationCounter", "lastGoodAuthenticationUSec")
    } else {
        ("badAuthenticationCounter", "lastBadAuthenticationUSec")
    };
    let n = status.get(counter).and_then(Value::as_u64).unwrap_or(0);
    status.insert(counter.into(), json!(n + 1));
    status.insert(last.into(), json!(now_usec()));
}

/// Copies of a secret's passwords (still zeroizing) for work on a blocking thread.
pub(crate) fn owned_passwords(secret: &Secret) -> Vec<secrecy::SecretString> {
    secret
        .passwords()
        .iter()
        .map(|p| secrecy::SecretString::from(p.expose_secret().to_owned()))
        .collect()
}

/// Turns an authentication failure into the error to report, after the delay when one is due.
pub(crate) async fn reported<T>(result: Result<T, AuthError>) -> EngineResult<T> {
    match result {
        Ok(value) => Ok(value),
        Err(AuthError::Now(e)) => Err(e),
        Err(AuthError::Delayed(Delayed(e))) => {
            tokio::time::sleep(BAD_PASSWORD_DELAY).await;
            Err(e)
        }
    }
}

/// [`reported`], with the home's operation (`guard`) held until any delay is over: failed
/// guesses at one home take their turn, however many callers send them at once.
pub(crate) async fn reported_holding<T, G>(
    guard: G,
    result: Result<T, AuthError>,
) -> EngineResult<T> {
    let result = reported(result).await;
    drop(guard);
    result
}

impl Engine {
    /// How many password hash checks the engine ran since start.
    #[cfg(test)]
    pub fn hash_checks(&self) -> usize {
        self.hash_checks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// homed's rate limit: `rateLimitBurst` attempts per `rateLimitIntervalUSec`, counted in the
    /// host record so that a restart does not reset it. Returns the new count, to be saved
    /// with the attempt's outcome in one write; the attempt that uses up the burst is saved
    /// before it is allowed (a restart must not forget it), and refused when that fails.
    pub(crate) fn ratelimit(&self, home: &Home) -> EngineResult<RateLimitCount> {
        let record = self.record(home);
        let view = record.view(&self.machine);
        let burst = view.rate_limit_burst();
        let (begin, count) = match policy::ratelimit_try(&view, now_usec()) {
            policy::RateLimitTry::Allowed { begin, count } => (begin, count),
            policy::RateLimitTry::Refused { retry_in } => {
                return Err(EngineError::AuthenticationLimitHit(format!(
                    "Too many login attempts, please try again in {}s!",
                    retry_in.div_ceil(1_000_000)
                )));
            }
        };
        let pending = RateLimitCount { begin, count };
        if count >= burst {
            let saved = self.update_status(home, |s| pending.apply(s));
            if !saved {
                return Err(EngineError::AuthenticationLimitHit(
                    "Too many login attempts, and the attempt could not be recorded; please try again later.".into(),
                ));
            }
        }
        Ok(pending)
    }

    /// Saves an attempt: its rate-limit count and, when it checked a secret, its outcome.
    pub(crate) fn record_attempt(
        &self,
        home: &Home,
        pending: RateLimitCount,
        outcome: Option<bool>,
    ) {
        let _ = self.update_status(home, |s| {
            pending.apply(s);
            if let Some(good) = outcome {
                count_outcome(s, good);
            }
        });
    }

    /// Checks `secret` against `record`'s hashes, off the async threads (yescrypt is slow on
    /// purpose).
    pub(crate) async fn verify(
        &self,
        record: &UserRecord,
        secret: &Secret,
    ) -> Result<(), AuthError> {
        let user = record.user_name();
        let view = record.view(&self.machine);
        let hashes: Vec<String> = view
            .hashed_passwords()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let recovery_keys: Vec<(String, String)> = view
            .recovery_keys()
            .into_iter()
            .map(|(kind, hash)| (kind.to_owned(), hash.to_owned()))
            .collect();
        let devices = view.has_device_credentials();
        if hashes.is_empty() && recovery_keys.is_empty() && !devices {
            return Err(AuthError::Now(EngineError::HomeCantAuthenticate(format!(
                "Home {user} has no password or other authentication mechanism defined."
            ))));
        }
        let bad = EngineError::BadPassword(format!(
            "Password for home {user} is incorrect or not sufficient for authentication."
        ));
        let typed = !secret.passwords().is_empty();
        if typed {
            let passwords = owned_passwords(secret);
            self.hash_checks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let ok = tokio::task::spawn_blocking(move || {
                secret_matches(&passwords, &hashes, &recovery_keys)
            })
            .await
            .unwrap_or(false);
            if ok {
                return Ok(());
            }
        }
        if devices {
            // The credentials that need a device are checked by a worker, which talks to the
            // device (the daemon loads no token library).
            let request = WorkRequest::AuthenticateDevices(self.spec(record));
            return match self.work(user, request, Some(secret)).await {
                Ok(_) => Ok(()),
                Err(e) if typed && e.is_bad_password() => Err(AuthError::Delayed(Delayed(e))),
                Err(EngineError::BadPassword(_)) if !typed => Err(AuthError::Now(bad)),
                Err(e) => Err(AuthError::Now(e)),
            };
        }
        if typed {
            Err(AuthError::Delayed(Delayed(bad)))
        } else {
            Err(AuthError::Now(bad))
        }
    }

    /// Rate limit, then the secret against the host record; saves the count and the outcome
    /// in one write of the host record.
    pub(crate) async fn authenticate_locked(
        &self,
        home: &Home,
        secret: &Secret,
    ) -> Result<(), AuthError> {
        let pending = self.ratelimit(home)?;
        let record = self.record(home);
        let result = self.verify(&record, secret).await;
        let outcome = match &result {
            Ok(()) => Some(true),
            Err(AuthError::Delayed(_)) => Some(false),
            // A token's refusal (PIN needed, bad PIN) is not a bad password.
            Err(AuthError::Now(e)) if !secret.passwords().is_empty() && !e.is_token_refusal() => {
                Some(false)
            }
            Err(_) => None,
        };
        self.record_attempt(home, pending, outcome);
        result
    }
}
