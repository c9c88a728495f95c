//! The account checks of the account hook (homed-spec §5.4): is the record blocked, is the user
//! rate limited, must the password be changed. Pure functions of a record and "now", so that
//! every branch is tested without a clock or a daemon.

use crate::code::Code;
use homed_shared::record::RecordView;

const USEC_PER_SEC: u64 = 1_000_000;

/// What the account hook tells the user and returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Shown as `PAM_ERROR_MSG`, if any.
    pub message: Option<String>,
    /// Logged with `pam_syslog` (warning), if any.
    pub log: Option<String>,
    pub code: Code,
}

impl Verdict {
    fn ok() -> Verdict {
        Verdict {
            message: None,
            log: None,
            code: Code::PAM_SUCCESS,
        }
    }

    fn refuse(message: &str, code: Code) -> Verdict {
        Verdict {
            message: Some(message.to_owned()),
            log: None,
            code,
        }
    }
}

/// Why a record blocks access (`user_record_test_blocked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    Locked,
    NotYetValid,
    NoLongerValid,
    FromTheFuture,
}

pub fn test_blocked(view: &RecordView<'_>, now: u64) -> Option<Blocked> {
    if view.locked() {
        return Some(Blocked::Locked);
    }
    if view.not_before_usec().is_some_and(|t| now < t) {
        return Some(Blocked::NotYetValid);
    }
    if view.not_after_usec().is_some_and(|t| now > t) {
        return Some(Blocked::NoLongerValid);
    }
    if view.last_change_usec().is_some_and(|t| t > now) {
        return Some(Blocked::FromTheFuture);
    }
    None
}

pub use homed_shared::record::policy::{
    PasswordState, password_state as test_password_change, ratelimit_next_try,
};

/// A time span the way systemd prints it to seconds' accuracy: "1min 5s", "2h", "59s".
pub fn format_timespan(usec: u64) -> String {
    const UNITS: [(&str, u64); 7] = [
        ("y", 31_557_600),
        ("month", 2_629_800),
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3_600),
        ("min", 60),
        ("s", 1),
    ];
    // Rounded up to whole seconds: "try again in 0s" would be wrong.
    let mut secs = usec.div_ceil(USEC_PER_SEC);
    if secs == 0 {
        return "0".to_owned();
    }
    let mut parts = Vec::new();
    for (name, size) in UNITS {
        if secs >= size {
            parts.push(format!("{}{name}", secs / size));
            secs %= size;
        }
    }
    parts.join(" ")
}

/// Every check, in the order pam_systemd_home runs them.
pub fn check(view: &RecordView<'_>, now: u64) -> Verdict {
    use Code::*;
    match test_blocked(view, now) {
        Some(Blocked::Locked) => {
            return Verdict::refuse(
                "User record is blocked, prohibiting access.",
                PAM_ACCT_EXPIRED,
            );
        }
        Some(Blocked::NotYetValid) => {
            return Verdict::refuse(
                "User record is not valid yet, prohibiting access.",
                PAM_ACCT_EXPIRED,
            );
        }
        Some(Blocked::NoLongerValid) => {
            return Verdict::refuse(
                "User record is not valid anymore, prohibiting access.",
                PAM_ACCT_EXPIRED,
            );
        }
        Some(Blocked::FromTheFuture) => {
            return Verdict {
                message: None,
                log: Some(
                    "User record was last changed in the future, system clock likely wrong."
                        .to_owned(),
                ),
                code: PAM_SUCCESS,
            }
            .then(check_rest(view, now));
        }
        None => {}
    }
    check_rest(view, now)
}

impl Verdict {
    /// Keeps this verdict's log line in front of a later verdict.
    fn then(self, next: Verdict) -> Verdict {
        Verdict {
            log: self.log.or(next.log),
            ..next
        }
    }
}

fn check_rest(view: &RecordView<'_>, now: u64) -> Verdict {
    use Code::*;
    if let Some(next) = ratelimit_next_try(view, now)
        && next > now
    {
        return Verdict::refuse(
            &format!(
                "Too many logins, try again in {}.",
                format_timespan(next - now)
            ),
            PAM_MAXTRIES,
        );
    }
    match test_password_change(view, now) {
        PasswordState::ChangeNow => {
            Verdict::refuse("Password change required.", PAM_NEW_AUTHTOK_REQD)
        }
        PasswordState::Expired => {
            Verdict::refuse("Password expired, change required.", PAM_NEW_AUTHTOK_REQD)
        }
        PasswordState::ExpiredUnchangeable => Verdict::refuse(
            "Password is expired, but can't change, refusing login.",
            PAM_AUTHTOK_EXPIRED,
        ),
        PasswordState::ExpiresSoon => Verdict {
            message: Some("Password will expire soon, please change.".to_owned()),
            log: None,
            code: PAM_SUCCESS,
        },
        PasswordState::ClockWrong => Verdict {
            message: None,
            log: Some(
                "Couldn't check if password change is required, last change is in the future, system clock likely wrong."
                    .to_owned(),
            ),
            code: PAM_SUCCESS,
        },
        PasswordState::NotChangeable | PasswordState::Fine => Verdict::ok(),
        PasswordState::NoChangeTimestamp => Verdict::refuse(
            "Password is expired, but can't change, refusing login.",
            PAM_AUTHTOK_EXPIRED,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use homed_shared::record::{MachineContext, RecordOrigin, UserRecord};

    const MID: &str = "3d1219c7c4c5404aaa1f6d2a48adfda4";
    const NOW: u64 = 1_800_000_000_000_000;
    const DAY: u64 = 86_400 * USEC_PER_SEC;

    fn verdict(extra: serde_json::Value) -> Verdict {
        let mut json = serde_json::json!({"userName": "tuser", "disposition": "regular"});
        if let (Some(base), Some(extra)) = (json.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        let record = UserRecord::from_value(json, RecordOrigin::Host).unwrap();
        let machine = MachineContext::new(MID, None);
        check(&record.view(&machine), NOW)
    }

    fn code_and_message(v: &Verdict) -> (Code, Option<&str>) {
        (v.code, v.message.as_deref())
    }

    #[test]
    fn a_plain_record_passes() {
        assert_eq!(
            code_and_message(&verdict(serde_json::json!({}))),
            (Code::PAM_SUCCESS, None)
        );
    }

    #[test]
    fn blocked_records() {
        use Code::PAM_ACCT_EXPIRED;
        let cases = [
            (
                serde_json::json!({"locked": true}),
                "User record is blocked, prohibiting access.",
            ),
            (
                serde_json::json!({"notBeforeUSec": NOW + DAY}),
                "User record is not valid yet, prohibiting access.",
            ),
            (
                serde_json::json!({"notAfterUSec": NOW - DAY}),
                "User record is not valid anymore, prohibiting access.",
            ),
        ];
        for (extra, message) in cases {
            let v = verdict(extra);
            assert_eq!(code_and_message(&v), (PAM_ACCT_EXPIRED, Some(message)));
        }
        // A record from the future is only logged.
        let v = verdict(serde_json::json!({"lastChangeUSec": NOW + DAY}));
        assert_eq!(v.code, Code::PAM_SUCCESS);
        assert!(v.log.is_some());
    }

    #[test]
    fn rate_limit() {
        let status = |count: u64, begin: u64| {
            serde_json::json!({
                "rateLimitBurst": 2,
                "status": {MID: {"rateLimitBeginUSec": begin, "rateLimitCount": count}}
            })
        };
        let v = verdict(status(2, NOW - 10 * USEC_PER_SEC));
        assert_eq!(
            code_and_message(&v),
            (
                Code::PAM_MAXTRIES,
                Some("Too many logins, try again in 50s.")
            )
        );
        assert_eq!(
            verdict(status(1, NOW - 10 * USEC_PER_SEC)).code,
            Code::PAM_SUCCESS
        );
        assert_eq!(
            verdict(status(5, NOW - 100 * USEC_PER_SEC)).code,
            Code::PAM_SUCCESS
        );
    }

    #[test]
    fn password_changes() {
        let v = verdict(serde_json::json!({"passwordChangeNow": true}));
        assert_eq!(
            code_and_message(&v),
            (
                Code::PAM_NEW_AUTHTOK_REQD,
                Some("Password change required.")
            )
        );
        let v = verdict(serde_json::json!({
            "lastPasswordChangeUSec": NOW - 100 * DAY, "passwordChangeMaxUSec": 90 * DAY}));
        assert_eq!(
            code_and_message(&v),
            (
                Code::PAM_NEW_AUTHTOK_REQD,
                Some("Password expired, change required.")
            )
        );
        let v = verdict(serde_json::json!({
            "lastPasswordChangeUSec": NOW - 100 * DAY, "passwordChangeMaxUSec": 90 * DAY,
            "passwordChangeInactiveUSec": 5 * DAY}));
        assert_eq!(v.code, Code::PAM_AUTHTOK_EXPIRED);
        let v = verdict(serde_json::json!({
            "lastPasswordChangeUSec": NOW - 88 * DAY, "passwordChangeMaxUSec": 90 * DAY,
            "passwordChangeWarnUSec": 7 * DAY}));
        assert_eq!(
            code_and_message(&v),
            (
                Code::PAM_SUCCESS,
                Some("Password will expire soon, please change.")
            )
        );
        let v = verdict(serde_json::json!({"passwordChangeMinUSec": DAY}));
        assert_eq!(v.code, Code::PAM_AUTHTOK_EXPIRED);
    }

    #[test]
    fn timespans() {
        assert_eq!(format_timespan(50 * USEC_PER_SEC), "50s");
        assert_eq!(format_timespan(90 * USEC_PER_SEC), "1min 30s");
        assert_eq!(format_timespan(1), "1s");
        assert_eq!(format_timespan(3_600 * USEC_PER_SEC), "1h");
    }
}
