//! How option values are read: the kinds of record field values the table names, and the value
//! syntaxes systemd's homectl accepts (booleans, relative sizes, resource limits, modes, paths).

use crate::ojson::OJson;
use crate::units;

/// The kind of one record field's value, with the checks systemd's homectl makes on it.
#[derive(Clone, Copy)]
pub(super) enum Value {
    /// Any text.
    Text,
    /// Text without control characters, quotes or backslashes (storage, file system, ciphers).
    Word,
    /// A [`Value::Word`] that names an auto-resize mode.
    ResizeMode,
    /// A GECOS field: no `:` and no control characters.
    Gecos,
    /// An absolute path (a relative one is taken from the current directory).
    Path,
    /// A [`Value::Path`] that can be a home directory.
    HomeDir,
    /// A DNS domain.
    Realm,
    /// An absolute path usable as a login shell.
    Shell,
    /// A zone under /usr/share/zoneinfo.
    TimeZone,
    Nice,
    Uid,
    Bool,
    /// An octal mode (`0700`).
    Mode,
    Count,
    /// A LUKS sector size: a power of two from 512 to 4096.
    SectorSize,
    /// A cgroup weight, 1…10000.
    Weight,
    /// Bytes, with an optional K/M/G/T suffix.
    Size,
    /// A time span (`90d`), in µs.
    Timespan,
    /// A point in time, in µs since the epoch.
    Timestamp,
}

impl Value {
    /// Checks `v` and converts it for the record field `field`; errors are systemd's wording.
    pub(super) fn parse(self, field: &str, v: &str) -> Result<OJson, String> {
        let parameter = || format!("Failed to parse {field} parameter: {v}");
        let invalid = || format!("Failed to parse {field} parameter: Invalid argument");
        Ok(match self {
            Value::Text => OJson::string(v),
            Value::Word | Value::ResizeMode => {
                if v.chars()
                    .any(|c| c.is_control() || c == '\'' || c == '"' || c == '\\')
                {
                    return Err(format!("Parameter for {field} field not valid: {v}"));
                }
                if matches!(self, Value::ResizeMode)
                    && !matches!(v, "off" | "grow" | "shrink-and-grow")
                {
                    return Err(format!("Failed to parse --auto-resize-mode= argument: {v}"));
                }
                OJson::string(v)
            }
            Value::Gecos => {
                if v.contains(':') || v.chars().any(char::is_control) {
                    return Err(format!("Real name '{v}' not a valid GECOS field."));
                }
                OJson::string(v)
            }
            Value::Path => OJson::string(absolute(v)?),
            Value::HomeDir => {
                let dir = absolute(v)?;
                if dir == "/" || dir.split('/').any(|c| c == ".." || c == ".") || dir.contains(':')
                {
                    return Err(format!("Home directory '{dir}' not valid."));
                }
                OJson::string(dir)
            }
            Value::Realm => {
                if v.starts_with('.') || v.ends_with('.') || v.contains("..") || v.contains(' ') {
                    return Err(format!("Realm '{v}' is not a valid DNS domain."));
                }
                OJson::string(v)
            }
            Value::Shell => {
                if !v.starts_with('/') || v.contains(':') || v.chars().any(char::is_control) {
                    return Err(format!("Shell '{v}' not valid."));
                }
                OJson::string(v)
            }
            Value::TimeZone => {
                let valid = !v.starts_with('/')
                    && !v.contains("..")
                    && std::path::Path::new("/usr/share/zoneinfo")
                        .join(v)
                        .is_file();
                if !valid {
                    return Err(format!("Timezone '{v}' is not valid."));
                }
                OJson::string(v)
            }
            Value::Nice => {
                let n: i64 = v
                    .parse()
                    .ok()
                    .filter(|n| (-20..=19).contains(n))
                    .ok_or_else(|| format!("Failed to parse nice level: {v}"))?;
                OJson::signed(n)
            }
            Value::Uid => OJson::unsigned(u64::from(parse_uid(v)?)),
            Value::Bool => OJson::Bool(
                parse_boolean(v)
                    .ok_or_else(|| format!("Failed to parse {field} boolean: Invalid argument"))?,
            ),
            Value::Mode => OJson::unsigned(
                parse_mode(v).ok_or_else(|| format!("Access mode '{v}' not valid."))?,
            ),
            Value::Count | Value::SectorSize | Value::Weight => {
                let n: u64 = v.parse().map_err(|_| parameter())?;
                if matches!(self, Value::SectorSize) {
                    if !(512..=4096).contains(&n) {
                        return Err(format!("Sector size not between 512 and 4096: {v}"));
                    }
                    if !n.is_power_of_two() {
                        return Err(format!("Sector size not power of 2: {v}"));
                    }
                }
                if matches!(self, Value::Weight) && !(1..=10000).contains(&n) {
                    return Err(format!("Weight {n} is out of valid weight range."));
                }
                OJson::unsigned(n)
            }
            Value::Size => OJson::unsigned(units::parse_size(v).map_err(|_| parameter())?),
            Value::Timespan => OJson::unsigned(units::parse_timespan(v).map_err(|_| invalid())?),
            Value::Timestamp => OJson::unsigned(units::parse_timestamp(v).map_err(|_| invalid())?),
        })
    }
}

/// A UID a regular user may have: not a system, dynamic or nobody UID.
fn parse_uid(v: &str) -> Result<u32, String> {
    let uid: u32 = v
        .parse()
        .ok()
        .filter(|u| *u != u32::MAX && *u != 65535)
        .ok_or_else(|| format!("Failed to parse UID '{v}'."))?;
    if uid <= 999 {
        return Err(format!("UID {uid} is in system range, refusing."));
    }
    if (61184..=65519).contains(&uid) {
        return Err(format!("UID {uid} is in dynamic range, refusing."));
    }
    if uid == 65534 {
        return Err(format!("UID {uid} is nobody UID, refusing."));
    }
    Ok(uid)
}

/// Parses a boolean as systemd does (yes/no, true/false, on/off, 1/0, y/n, t/f).
pub fn parse_boolean(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

/// A percentage (`20%`, `12.5%`, `12.25%`), per mille (`125‰`, `12.5‰`) or per myriad
/// (`1250‱`) as parts of 10000. None if `s` has none of these suffixes.
pub fn parse_permyriad(s: &str) -> Option<Result<u64, String>> {
    let (number, scale, decimals) = if let Some(n) = s.strip_suffix('%') {
        (n, 100u64, 2usize)
    } else if let Some(n) = s.strip_suffix('‰') {
        (n, 10, 1)
    } else if let Some(n) = s.strip_suffix('‱') {
        (n, 1, 0)
    } else {
        return None;
    };
    let bad = || format!("Failed to parse disk size parameter: {s}");
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > decimals
        || (number.contains('.') && fraction.is_empty())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Some(Err(bad()));
    }
    let result = (|| {
        let whole: u64 = whole.parse().ok()?;
        let mut frac: u64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().ok()?
        };
        for _ in fraction.len()..decimals {
            frac *= 10;
        }
        let value = whole.checked_mul(scale)?.checked_add(frac)?;
        (value <= 10000).then_some(value)
    })();
    Some(result.ok_or_else(bad))
}

#[derive(Clone, Copy)]
pub(super) enum RlimitValue {
    Count,
    Size,
    Seconds,
    Usec,
    Nice,
}

/// The resource `name` (`NOFILE` or `RLIMIT_NOFILE`) and how its values are written.
pub(super) fn rlimit_kind(name: &str) -> Option<(&'static str, RlimitValue)> {
    use RlimitValue::*;
    const TABLE: [(&str, RlimitValue); 16] = [
        ("CPU", Seconds),
        ("FSIZE", Size),
        ("DATA", Size),
        ("STACK", Size),
        ("CORE", Size),
        ("RSS", Size),
        ("NPROC", Count),
        ("NOFILE", Count),
        ("MEMLOCK", Size),
        ("AS", Size),
        ("LOCKS", Count),
        ("SIGPENDING", Count),
        ("MSGQUEUE", Size),
        ("NICE", Nice),
        ("RTPRIO", Count),
        ("RTTIME", Usec),
    ];
    let bare = name.strip_prefix("RLIMIT_").unwrap_or(name);
    TABLE.iter().find(|(n, _)| *n == bare).copied()
}

/// One limit value; None is "infinity".
fn parse_rlimit_one(kind: RlimitValue, s: &str) -> Option<Option<u64>> {
    if s == "infinity" {
        return Some(None);
    }
    let v = match kind {
        RlimitValue::Count => s.parse::<u64>().ok()?,
        RlimitValue::Size => units::parse_size(s).ok()?,
        RlimitValue::Seconds => {
            let t = units::parse_timespan(s).ok()?;
            if t == u64::MAX {
                return Some(None);
            }
            t.div_ceil(units::USEC_PER_SEC)
        }
        RlimitValue::Usec => {
            let t = if s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse::<u64>().ok()?
            } else {
                units::parse_timespan(s).ok()?
            };
            if t == u64::MAX {
                return Some(None);
            }
            t
        }
        RlimitValue::Nice => {
            if let Some(p) = s.strip_prefix('+') {
                let n: u64 = p.parse().ok()?;
                if n >= 20 {
                    return None;
                }
                20 - n
            } else if let Some(m) = s.strip_prefix('-') {
                let n: u64 = m.parse().ok()?;
                if n > 20 {
                    return None;
                }
                20 + n
            } else {
                let n: u64 = s.parse().ok()?;
                if n > 40 {
                    return None;
                }
                n
            }
        }
    };
    (v != u64::MAX).then_some(Some(v))
}

/// `SOFT[:HARD]`: both the same when only one is given; the soft limit may not exceed the hard.
pub(super) fn parse_rlimit(kind: RlimitValue, s: &str) -> Option<(Option<u64>, Option<u64>)> {
    let (soft, hard) = match s.split_once(':') {
        Some((soft, hard)) => (parse_rlimit_one(kind, soft)?, parse_rlimit_one(kind, hard)?),
        None => {
            let v = parse_rlimit_one(kind, s)?;
            (v, v)
        }
    };
    let bigger = match (soft, hard) {
        (None, Some(_)) => true,
        (Some(a), Some(b)) => a > b,
        _ => false,
    };
    (!bigger).then_some((soft, hard))
}

fn parse_mode(s: &str) -> Option<u64> {
    let v = u64::from_str_radix(s, 8).ok()?;
    (v <= 0o7777).then_some(v)
}

/// `p` made absolute against the current directory, without trailing slashes.
fn absolute(p: &str) -> Result<String, String> {
    let path = if p.starts_with('/') {
        std::path::PathBuf::from(p)
    } else {
        std::env::current_dir()
            .map_err(|e| format!("Failed to get current directory: {e}"))?
            .join(p)
    };
    let mut s = path.to_string_lossy().into_owned();
    while s.len() > 1 && s.ends_with('/') {
        s.pop();
    }
    Ok(s)
}
