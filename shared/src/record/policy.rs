//! The account rules a record's fields imply, computed once for the PAM module, homectl and the
//! daemon: the state of the password (`user_record_test_password_change_required`) and the
//! login rate limit (`user_record_ratelimit_try` and `_next_try`). Unset time fields, and
//! systemd's "infinity" (`u64::MAX`), both mean "no such rule".

use super::RecordView;

/// The state of the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordState {
    /// No change needed, and changing is allowed.
    Fine,
    /// The administrator asked for a change (`passwordChangeNow`).
    ChangeNow,
    /// Expired, and may be changed.
    Expired,
    /// Expired (or inactive), and may not be changed.
    ExpiredUnchangeable,
    /// Expires soon.
    ExpiresSoon,
    /// Expiry is configured but the last change is unknown.
    NoChangeTimestamp,
    /// Nothing needed, and changing is not allowed now.
    NotChangeable,
    /// The last change is in the future: the clock is likely wrong.
    ClockWrong,
}

fn set(v: Option<u64>) -> Option<u64> {
    v.filter(|&v| v != u64::MAX)
}

/// The state of the password of `view` at `now` (µs since the epoch).
pub fn password_state(view: &RecordView<'_>, now: u64) -> PasswordState {
    if view.password_change_now() {
        return PasswordState::ChangeNow;
    }
    let last = set(view.last_password_change_usec());
    let min = set(view.password_change_min_usec());
    let max = set(view.password_change_max_usec());
    let warn = set(view.password_change_warn_usec());
    let inactive = set(view.password_change_inactive_usec());

    if last.is_some_and(|l| l > now) && (min.is_some() || max.is_some() || inactive.is_some()) {
        return PasswordState::ClockWrong;
    }
    let permitted = match min {
        None => true,
        Some(min) => match last {
            None => return PasswordState::NoChangeTimestamp,
            Some(last) => last
                .checked_add(min)
                .filter(|&t| t != u64::MAX)
                .is_some_and(|t| now >= t),
        },
    };
    if let Some(max) = max {
        let Some(last) = last else {
            return PasswordState::NoChangeTimestamp;
        };
        if let Some(before) = last.checked_add(max).filter(|&t| t != u64::MAX) {
            if let Some(end) = inactive
                .and_then(|i| before.checked_add(i))
                .filter(|&t| t != u64::MAX)
                && now >= end
            {
                return PasswordState::ExpiredUnchangeable;
            }
            if now >= before {
                return if permitted {
                    PasswordState::Expired
                } else {
                    PasswordState::ExpiredUnchangeable
                };
            }
            if warn.is_some_and(|w| before < w || now >= before - w) {
                return if permitted {
                    PasswordState::ExpiresSoon
                } else {
                    PasswordState::NotChangeable
                };
            }
        }
    }
    if permitted {
        PasswordState::Fine
    } else {
        PasswordState::NotChangeable
    }
}

/// When the next login is allowed: `None` when the rate-limit data is missing or from the
/// future, `Some(0)` for right away.
pub fn ratelimit_next_try(view: &RecordView<'_>, now: u64) -> Option<u64> {
    let begin = view.status("rateLimitBeginUSec")?.as_u64()?;
    let count = view.status("rateLimitCount")?.as_u64()?;
    if begin > now {
        return None;
    }
    if count < view.rate_limit_burst() {
        return Some(0);
    }
    Some(begin.saturating_add(view.rate_limit_interval_usec()))
}

/// The outcome of counting one more login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitTry {
    /// Allowed: the window's start and the attempts in it, this one included.
    Allowed { begin: u64, count: u64 },
    /// Refused: the burst is used up for this long yet (µs).
    Refused { retry_in: u64 },
}

/// Counts one more attempt at `now` against `rateLimitBurst` attempts per
/// `rateLimitIntervalUSec`; a window that has passed, or one that starts in the future (a clock
/// set back), starts afresh.
pub fn ratelimit_try(view: &RecordView<'_>, now: u64) -> RateLimitTry {
    let interval = view.rate_limit_interval_usec();
    let burst = view.rate_limit_burst();
    let begin = view.status("rateLimitBeginUSec").and_then(|v| v.as_u64());
    let count = view
        .status("rateLimitCount")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    match begin {
        Some(b) if b <= now && b.saturating_add(interval) > now => {
            if count < burst {
                RateLimitTry::Allowed {
                    begin: b,
                    count: count + 1,
                }
            } else {
                RateLimitTry::Refused {
                    retry_in: b.saturating_add(interval).saturating_sub(now),
                }
            }
        }
        _ => RateLimitTry::Allowed {
            begin: now,
            count: 1,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MachineContext, RecordOrigin, UserRecord};
    use serde_json::json;

    const DAY: u64 = 86_400_000_000;
    const NOW: u64 = 1_800_000_000_000_000;

    fn state(fields: serde_json::Value) -> PasswordState {
        let mut record = json!({"userName": "p", "disposition": "regular"});
        for (k, v) in fields.as_object().unwrap() {
            record[k] = v.clone();
        }
        let r = UserRecord::from_value(record, RecordOrigin::Host).unwrap();
        password_state(&r.view(&MachineContext::new("m", None)), NOW)
    }

    #[test]
    fn password_states_as_systemd_computes_them() {
        use PasswordState::*;
        assert_eq!(state(json!({})), Fine);
        assert_eq!(state(json!({"passwordChangeNow": true})), ChangeNow);
        let last = NOW - 10 * DAY;
        assert_eq!(
            state(json!({"passwordChangeMaxUSec": DAY})),
            NoChangeTimestamp
        );
        let expired = json!({"lastPasswordChangeUSec": last, "passwordChangeMaxUSec": 5 * DAY});
        assert_eq!(state(expired), Expired);
        let inactive = json!({"lastPasswordChangeUSec": last, "passwordChangeMaxUSec": 5 * DAY,
                              "passwordChangeInactiveUSec": DAY});
        assert_eq!(state(inactive), ExpiredUnchangeable);
        let soon = json!({"lastPasswordChangeUSec": last, "passwordChangeMaxUSec": 11 * DAY,
                          "passwordChangeWarnUSec": 2 * DAY});
        assert_eq!(state(soon), ExpiresSoon);
        let too_early = json!({"lastPasswordChangeUSec": last, "passwordChangeMinUSec": 20 * DAY});
        assert_eq!(state(too_early), NotChangeable);
        let future = json!({"lastPasswordChangeUSec": NOW + DAY, "passwordChangeMaxUSec": DAY});
        assert_eq!(state(future), ClockWrong);
        // systemd's infinity is no rule at all.
        let infinite = json!({"lastPasswordChangeUSec": last, "passwordChangeMinUSec": u64::MAX});
        assert_eq!(state(infinite), Fine);
    }

    #[test]
    fn the_rate_limit_counts_within_its_window_and_starts_afresh_after_it() {
        let with = |status: serde_json::Value| {
            let mut r = UserRecord::from_value(
                json!({"userName": "p", "disposition": "regular", "rateLimitBurst": 2,
                       "rateLimitIntervalUSec": 60_000_000u64}),
                RecordOrigin::Host,
            )
            .unwrap();
            r.set_status("m", status.as_object().unwrap().clone());
            r
        };
        let m = MachineContext::new("m", None);
        let fresh = with(json!({}));
        assert_eq!(
            ratelimit_try(&fresh.view(&m), NOW),
            RateLimitTry::Allowed {
                begin: NOW,
                count: 1
            }
        );
        let used = with(json!({"rateLimitBeginUSec": NOW - 1_000_000, "rateLimitCount": 2}));
        assert_eq!(
            ratelimit_try(&used.view(&m), NOW),
            RateLimitTry::Refused {
                retry_in: 59_000_000
            }
        );
        assert_eq!(
            ratelimit_next_try(&used.view(&m), NOW),
            Some(NOW + 59_000_000)
        );
        assert_eq!(
            ratelimit_try(&used.view(&m), NOW + 60_000_000),
            RateLimitTry::Allowed {
                begin: NOW + 60_000_000,
                count: 1
            }
        );
        let future = with(json!({"rateLimitBeginUSec": NOW + 1, "rateLimitCount": 2}));
        assert_eq!(ratelimit_next_try(&future.view(&m), NOW), None);
        assert!(matches!(
            ratelimit_try(&future.view(&m), NOW),
            RateLimitTry::Allowed { count: 1, .. }
        ));
    }
}
