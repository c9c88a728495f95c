//! Times, time spans and sizes, printed and parsed the way systemd's tools do.

use crate::sys;

pub const USEC_PER_SEC: u64 = 1_000_000;
const USEC_PER_MINUTE: u64 = 60 * USEC_PER_SEC;
const USEC_PER_HOUR: u64 = 60 * USEC_PER_MINUTE;
const USEC_PER_DAY: u64 = 24 * USEC_PER_HOUR;
const USEC_PER_WEEK: u64 = 7 * USEC_PER_DAY;
const USEC_PER_MONTH: u64 = 2_629_800 * USEC_PER_SEC;
const USEC_PER_YEAR: u64 = 31_557_600 * USEC_PER_SEC;

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// The current time in µs since the epoch.
pub fn now_usec() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `Fri 2026-11-27 10:19:24 UTC`: week day, local date and time, zone abbreviation.
pub fn format_timestamp(usec: u64) -> String {
    // Years past 9999 are not formatted (systemd's USEC_TIMESTAMP_FORMATTABLE_MAX).
    if usec > 253_402_214_399_999_999 {
        return "--- XXXX-XX-XX XX:XX:XX".into();
    }
    let Some(t) = sys::local_time((usec / USEC_PER_SEC) as i64, false) else {
        return "n/a".into();
    };
    let mut s = format!(
        "{} {:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        WEEKDAYS[t.weekday as usize % 7],
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second
    );
    if !t.zone.is_empty() {
        s.push(' ');
        s.push_str(&t.zone);
    }
    s
}

/// A time span such as `1min`, `90d` or `1h 30min`; `accuracy` drops smaller units.
pub fn format_timespan(mut t: u64, accuracy: u64) -> String {
    const TABLE: [(&str, u64); 9] = [
        ("y", USEC_PER_YEAR),
        ("month", USEC_PER_MONTH),
        ("w", USEC_PER_WEEK),
        ("d", USEC_PER_DAY),
        ("h", USEC_PER_HOUR),
        ("min", USEC_PER_MINUTE),
        ("s", USEC_PER_SEC),
        ("ms", 1000),
        ("us", 1),
    ];
    if t == u64::MAX {
        return "infinity".into();
    }
    if t == 0 {
        return "0".into();
    }
    let mut out = String::new();
    let mut something = false;
    for (suffix, unit) in TABLE {
        if t == 0 || (t < accuracy && something) {
            break;
        }
        if t < unit {
            continue;
        }
        let a = t / unit;
        let mut b = t % unit;
        let sep = if out.is_empty() { "" } else { " " };
        if t < USEC_PER_MINUTE && b > 0 {
            let mut digits: i32 = 0;
            let mut cc = unit;
            while cc > 1 {
                digits += 1;
                cc /= 10;
            }
            let mut cc = accuracy;
            while cc > 1 {
                b /= 10;
                digits -= 1;
                cc /= 10;
            }
            if digits > 0 {
                let width = usize::try_from(digits).unwrap_or(0);
                out.push_str(&format!("{sep}{a}.{b:0width$}{suffix}"));
                break;
            }
        }
        out.push_str(&format!("{sep}{a}{suffix}"));
        t = b;
        something = true;
    }
    out
}

/// Sizes in powers of 1024 with one decimal: `11.7G`, `5.0M`, `512B`.
pub fn format_bytes(t: u64) -> String {
    const TABLE: [(&str, u64); 6] = [
        ("E", 1 << 60),
        ("P", 1 << 50),
        ("T", 1 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ];
    for (i, (suffix, factor)) in TABLE.iter().enumerate() {
        if t >= *factor {
            let decimal = if i + 1 < TABLE.len() {
                (t / TABLE[i + 1].1 * 10 / 1024) % 10
            } else {
                ((u128::from(t) * 10 / u128::from(*factor)) % 10) as u64
            };
            return format!("{}.{}{}", t / factor, decimal, suffix);
        }
    }
    format!("{t}B")
}

/// Parses a time span: `90d`, `1h 30min`, `5s`, `500ms`; a bare number is seconds.
pub fn parse_timespan(s: &str) -> Result<u64, String> {
    const UNITS: [(&str, u64); 29] = [
        ("seconds", USEC_PER_SEC),
        ("second", USEC_PER_SEC),
        ("sec", USEC_PER_SEC),
        ("s", USEC_PER_SEC),
        ("minutes", USEC_PER_MINUTE),
        ("minute", USEC_PER_MINUTE),
        ("min", USEC_PER_MINUTE),
        ("months", USEC_PER_MONTH),
        ("month", USEC_PER_MONTH),
        ("M", USEC_PER_MONTH),
        ("msec", 1000),
        ("ms", 1000),
        ("m", USEC_PER_MINUTE),
        ("hours", USEC_PER_HOUR),
        ("hour", USEC_PER_HOUR),
        ("hr", USEC_PER_HOUR),
        ("h", USEC_PER_HOUR),
        ("days", USEC_PER_DAY),
        ("day", USEC_PER_DAY),
        ("d", USEC_PER_DAY),
        ("weeks", USEC_PER_WEEK),
        ("week", USEC_PER_WEEK),
        ("w", USEC_PER_WEEK),
        ("years", USEC_PER_YEAR),
        ("year", USEC_PER_YEAR),
        ("y", USEC_PER_YEAR),
        ("usec", 1),
        ("us", 1),
        ("µs", 1),
    ];
    let s = s.trim();
    if s == "infinity" {
        return Ok(u64::MAX);
    }
    let bad = || format!("invalid time span: {s}");
    let mut rest = s;
    let mut total: u64 = 0;
    let mut any = false;
    while !rest.trim_start().is_empty() {
        rest = rest.trim_start();
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..end];
        if number.is_empty() {
            return Err(bad());
        }
        rest = rest[end..].trim_start();
        let uend = rest
            .find(|c: char| c.is_ascii_digit() || c.is_whitespace() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..uend];
        rest = &rest[uend..];
        let factor = if unit.is_empty() {
            USEC_PER_SEC
        } else {
            UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, f)| *f)
                .ok_or_else(bad)?
        };
        let value: f64 = number.parse().map_err(|_| bad())?;
        let usec = value * factor as f64;
        if !usec.is_finite() || usec >= u64::MAX as f64 {
            return Err(bad());
        }
        total = total.checked_add(usec as u64).ok_or_else(bad)?;
        any = true;
    }
    if !any {
        return Err(bad());
    }
    Ok(total)
}

/// Parses a size with an optional 1024-based suffix: `64M`, `1.5G`, `4096`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size: {s}");
    let t = s.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(end);
    let factor: u64 = match suffix.trim() {
        "" | "B" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        "P" => 1 << 50,
        "E" => 1 << 60,
        _ => return Err(bad()),
    };
    if number.is_empty() {
        return Err(bad());
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    let bytes = value * factor as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Parses a point in time: `@SECONDS`, `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS]` (local time, or
/// UTC with a trailing ` UTC`), `now`, `today`, `tomorrow`, `yesterday`.
pub fn parse_timestamp(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid timestamp: {s}");
    let s = s.trim();
    if let Some(secs) = s.strip_prefix('@') {
        let v: f64 = secs.parse().map_err(|_| bad())?;
        if !(0.0..1e12).contains(&v) {
            return Err(bad());
        }
        return Ok((v * USEC_PER_SEC as f64) as u64);
    }
    let now = now_usec();
    let (text, utc) = match s.strip_suffix(" UTC") {
        Some(t) => (t.trim(), true),
        None => (s, false),
    };
    let day_offset = match text {
        "now" => return Ok(now),
        "today" => Some(0i64),
        "yesterday" => Some(-1),
        "tomorrow" => Some(1),
        _ => None,
    };
    let (year, month, day, hour, minute, second) = if let Some(offset) = day_offset {
        let t = sys::local_time((now / USEC_PER_SEC) as i64, utc).ok_or_else(bad)?;
        let midnight = sys::make_time(t.year, t.month, t.day, 0, 0, 0, utc).ok_or_else(bad)?;
        let target = midnight + offset * 86_400;
        return u64::try_from(target)
            .map(|t| t * USEC_PER_SEC)
            .map_err(|_| bad());
    } else {
        let (date, time) = match text.split_once(' ') {
            Some((d, t)) => (d, Some(t.trim())),
            None => (text, None),
        };
        let mut d = date.split('-');
        let year: i32 = d.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let month: u32 = d.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let day: u32 = d.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        if d.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return Err(bad());
        }
        let (hour, minute, second) = match time {
            None => (0, 0, 0),
            Some(t) => {
                let parts: Vec<&str> = t.split(':').collect();
                if !(2..=3).contains(&parts.len()) {
                    return Err(bad());
                }
                let p = |i: usize| -> Result<u32, String> {
                    parts.get(i).map_or(Ok(0), |v| v.parse().map_err(|_| bad()))
                };
                (p(0)?, p(1)?, p(2)?)
            }
        };
        if hour > 23 || minute > 59 || second > 60 {
            return Err(bad());
        }
        (year, month, day, hour, minute, second)
    };
    let t = sys::make_time(year, month, day, hour, minute, second, utc).ok_or_else(bad)?;
    u64::try_from(t)
        .map(|t| t * USEC_PER_SEC)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!(format_timespan(60 * USEC_PER_SEC, 0), "1min");
        assert_eq!(format_timespan(90 * USEC_PER_DAY, 0), "2month 4w 1d 3h");
        assert_eq!(format_timespan(5_500_000, 0), "5.500000s");
        assert_eq!(format_timespan(5_500_000, USEC_PER_SEC), "5s");
        assert_eq!(format_timespan(3 * USEC_PER_DAY + 1, 0), "3d 1us");
        assert_eq!(parse_timespan("90d").unwrap(), 90 * USEC_PER_DAY);
        assert_eq!(parse_timespan("1h 30min").unwrap(), 90 * USEC_PER_MINUTE);
        assert_eq!(parse_timespan("5").unwrap(), 5 * USEC_PER_SEC);
        assert!(parse_timespan("5 parsecs").is_err());
    }

    #[test]
    fn bytes() {
        assert_eq!(format_bytes(12_638_253_056), "11.7G");
        assert_eq!(format_bytes(5_242_880), "5.0M");
        assert_eq!(format_bytes(5_497_558_138_880), "5.0T");
        assert_eq!(format_bytes(100), "100B");
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1.5K").unwrap(), 1536);
        assert!(parse_size("12Q").is_err());
    }

    #[test]
    fn timestamps() {
        let t = parse_timestamp("2030-01-01 UTC").unwrap();
        assert_eq!(t, 1_893_456_000 * USEC_PER_SEC);
        assert_eq!(parse_timestamp("@1893456000").unwrap(), t);
        assert!(parse_timestamp("2030-13-01").is_err());
    }
}
