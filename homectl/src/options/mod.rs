//! Command line parsing with getopt_long's rules (options and arguments in any order, `--`,
//! `--opt=value` and `--opt value`, bundled short flags, unique prefixes of long options), and
//! the record changes the property options ask for, kept in the order they were given.

use homed_shared::record::names;

use crate::ojson::OJson;
use crate::units;

/// How `inspect` and `list` print.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum JsonMode {
    Off,
    Pretty,
    Short,
    /// `-j`: pretty on a terminal, short otherwise.
    Auto,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ExportFormat {
    Full,
    Stripped,
    Minimal,
}

/// The record edits the property options describe (systemd's arg_identity_extra & co).
#[derive(Default, Debug)]
pub struct IdentityChanges {
    pub extra: OJson,
    pub this_machine: OJson,
    pub privileged: OJson,
    pub filter: Vec<String>,
    /// `--rlimit=NAME=…` values, as `{"RLIMIT_NAME": {"cur": …, "max": …}}`.
    pub rlimits: OJson,
    /// `--rlimit=NAME=` removals.
    pub filter_rlimits: Vec<String>,
}

impl IdentityChanges {
    fn drop_field(&mut self, field: &str) {
        if !self.filter.iter().any(|f| f == field) {
            self.filter.push(field.to_owned());
        }
        self.extra.remove(field);
        self.this_machine.remove(field);
        self.privileged.remove(field);
    }

    pub fn specified(&self) -> bool {
        !self.extra.is_blank_object()
            || !self.this_machine.is_blank_object()
            || !self.privileged.is_blank_object()
            || !self.rlimits.is_blank_object()
            || !self.filter.is_empty()
            || !self.filter_rlimits.is_empty()
    }
}

#[derive(Debug)]
pub struct Options {
    pub no_pager: bool,
    pub legend: bool,
    pub ask_password: bool,
    pub identity: Option<String>,
    pub json: JsonMode,
    pub export_format: ExportFormat,
    pub changes: IdentityChanges,
    pub disk_size: Option<u64>,
    /// `--disk-size=` was given as a percentage.
    pub disk_size_relative: bool,
    pub and_resize: bool,
    pub and_change_password: bool,
    pub args: Vec<String>,
}

/// What parsing asks main to do.
pub enum Parsed {
    Run(Box<Options>),
    /// Print this and exit successfully (help, version).
    Print(String),
}

#[derive(Clone, Copy, PartialEq)]
enum Arg {
    None,
    Required,
}

const LONG: &[(&str, Arg)] = &[
    ("help", Arg::None),
    ("version", Arg::None),
    ("no-pager", Arg::None),
    ("no-legend", Arg::None),
    ("no-ask-password", Arg::None),
    ("host", Arg::Required),
    ("machine", Arg::Required),
    ("identity", Arg::Required),
    ("real-name", Arg::Required),
    ("comment", Arg::Required),
    ("realm", Arg::Required),
    ("email-address", Arg::Required),
    ("location", Arg::Required),
    ("password-hint", Arg::Required),
    ("icon-name", Arg::Required),
    ("home-dir", Arg::Required),
    ("uid", Arg::Required),
    ("member-of", Arg::Required),
    ("groups", Arg::Required),
    ("skel", Arg::Required),
    ("shell", Arg::Required),
    ("setenv", Arg::Required),
    ("timezone", Arg::Required),
    ("language", Arg::Required),
    ("locked", Arg::Required),
    ("not-before", Arg::Required),
    ("not-after", Arg::Required),
    ("expiredate", Arg::Required),
    ("ssh-authorized-keys", Arg::Required),
    ("disk-size", Arg::Required),
    ("access-mode", Arg::Required),
    ("umask", Arg::Required),
    ("nice", Arg::Required),
    ("rlimit", Arg::Required),
    ("tasks-max", Arg::Required),
    ("memory-high", Arg::Required),
    ("memory-max", Arg::Required),
    ("cpu-weight", Arg::Required),
    ("io-weight", Arg::Required),
    ("storage", Arg::Required),
    ("image-path", Arg::Required),
    ("fs-type", Arg::Required),
    ("luks-discard", Arg::Required),
    ("luks-offline-discard", Arg::Required),
    ("luks-cipher", Arg::Required),
    ("luks-cipher-mode", Arg::Required),
    ("luks-volume-key-size", Arg::Required),
    ("luks-pbkdf-type", Arg::Required),
    ("luks-pbkdf-hash-algorithm", Arg::Required),
    ("luks-pbkdf-time-cost", Arg::Required),
    ("luks-pbkdf-memory-cost", Arg::Required),
    ("luks-pbkdf-parallel-threads", Arg::Required),
    ("luks-sector-size", Arg::Required),
    ("luks-extra-mount-options", Arg::Required),
    ("nosuid", Arg::Required),
    ("nodev", Arg::Required),
    ("noexec", Arg::Required),
    ("cifs-user-name", Arg::Required),
    ("cifs-domain", Arg::Required),
    ("cifs-service", Arg::Required),
    ("cifs-extra-mount-options", Arg::Required),
    ("rate-limit-interval", Arg::Required),
    ("rate-limit-burst", Arg::Required),
    ("stop-delay", Arg::Required),
    ("kill-processes", Arg::Required),
    ("enforce-password-policy", Arg::Required),
    ("password-change-now", Arg::Required),
    ("password-change-min", Arg::Required),
    ("password-change-max", Arg::Required),
    ("password-change-warn", Arg::Required),
    ("password-change-inactive", Arg::Required),
    ("auto-login", Arg::Required),
    ("json", Arg::Required),
    ("export-format", Arg::Required),
    ("pkcs11-token-uri", Arg::Required),
    ("fido2-credential-algorithm", Arg::Required),
    ("fido2-device", Arg::Required),
    ("fido2-with-client-pin", Arg::Required),
    ("fido2-with-user-presence", Arg::Required),
    ("fido2-with-user-verification", Arg::Required),
    ("recovery-key", Arg::Required),
    ("and-resize", Arg::Required),
    ("and-change-password", Arg::Required),
    ("drop-caches", Arg::Required),
    ("auto-resize-mode", Arg::Required),
    ("rebalance-weight", Arg::Required),
];

fn short_to_long(c: char) -> Option<(&'static str, Arg)> {
    Some(match c {
        'h' => ("help", Arg::None),
        'H' => ("host", Arg::Required),
        'M' => ("machine", Arg::Required),
        'I' => ("identity", Arg::Required),
        'c' => ("real-name", Arg::Required),
        'd' => ("home-dir", Arg::Required),
        'u' => ("uid", Arg::Required),
        'k' => ("skel", Arg::Required),
        's' => ("shell", Arg::Required),
        'e' => ("expiredate", Arg::Required),
        'G' => ("member-of", Arg::Required),
        'j' => ("-j", Arg::None),
        'P' => ("-P", Arg::None),
        'E' => ("-E", Arg::None),
        _ => return None,
    })
}

fn find_long(name: &str) -> Result<(&'static str, Arg), String> {
    if let Some(exact) = LONG.iter().find(|(n, _)| *n == name) {
        return Ok(*exact);
    }
    let matches: Vec<_> = LONG.iter().filter(|(n, _)| n.starts_with(name)).collect();
    match matches.as_slice() {
        [one] => Ok(**one),
        [] => Err(format!("homectl: unrecognized option '--{name}'")),
        _ => Err(format!("homectl: option '--{name}' is ambiguous")),
    }
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
enum RlimitValue {
    Count,
    Size,
    Seconds,
    Usec,
    Nice,
}

/// The resource `name` (`NOFILE` or `RLIMIT_NOFILE`) and how its values are written.
fn rlimit_kind(name: &str) -> Option<(&'static str, RlimitValue)> {
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
fn parse_rlimit(kind: RlimitValue, s: &str) -> Option<(Option<u64>, Option<u64>)> {
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

const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn parse(argv: &[String]) -> Result<Parsed, String> {
    let mut o = Options {
        no_pager: false,
        legend: true,
        ask_password: true,
        identity: None,
        json: JsonMode::Off,
        export_format: ExportFormat::Full,
        changes: IdentityChanges::default(),
        disk_size: None,
        disk_size_relative: false,
        and_resize: false,
        and_change_password: false,
        args: Vec::new(),
    };
    let mut i = 0;
    while i < argv.len() {
        let a = &argv[i];
        i += 1;
        if a == "--" {
            o.args.extend(argv[i..].iter().cloned());
            break;
        }
        let mut found: Vec<(&'static str, Option<String>)> = Vec::new();
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let (name, kind) = find_long(name)?;
            let value = match (kind, inline) {
                (Arg::None, Some(_)) => {
                    return Err(format!(
                        "homectl: option '--{name}' doesn't allow an argument"
                    ));
                }
                (Arg::None, None) => None,
                (Arg::Required, Some(v)) => Some(v),
                (Arg::Required, None) => {
                    let v = argv.get(i).ok_or_else(|| {
                        format!("homectl: option '--{name}' requires an argument")
                    })?;
                    i += 1;
                    Some(v.clone())
                }
            };
            found.push((name, value));
        } else if a.len() > 1 && a.starts_with('-') {
            let chars: Vec<char> = a[1..].chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                k += 1;
                let (name, kind) =
                    short_to_long(c).ok_or_else(|| format!("homectl: invalid option -- '{c}'"))?;
                if kind == Arg::Required {
                    let rest: String = chars[k..].iter().collect();
                    let value = if !rest.is_empty() {
                        rest
                    } else {
                        let v = argv.get(i).ok_or_else(|| {
                            format!("homectl: option requires an argument -- '{c}'")
                        })?;
                        i += 1;
                        v.clone()
                    };
                    found.push((name, Some(value)));
                    break;
                }
                found.push((name, None));
            }
        } else {
            o.args.push(a.clone());
            continue;
        }
        for (name, value) in found {
            if let Some(done) = apply(&mut o, name, value.unwrap_or_default())? {
                return Ok(Parsed::Print(done));
            }
        }
    }
    if o.disk_size.is_some() || o.disk_size_relative {
        o.and_resize = true;
    }
    Ok(Parsed::Run(Box::new(o)))
}

fn set_str(target: &mut OJson, field: &str, v: &str) {
    target.set(field, OJson::string(v));
}

/// Applies one option. Returns text to print instead of running (help, version).
fn apply(o: &mut Options, name: &str, v: String) -> Result<Option<String>, String> {
    let ch = &mut o.changes;
    let empty = v.is_empty();
    macro_rules! drop_if_empty {
        ($field:expr) => {
            if empty {
                ch.drop_field($field);
                return Ok(None);
            }
        };
    }
    match name {
        "help" => return Ok(Some(crate::help::text())),
        "version" => return Ok(Some(format!("homectl (homed) {VERSION}\n"))),
        "no-pager" => o.no_pager = true,
        "no-legend" => o.legend = false,
        "no-ask-password" => o.ask_password = false,
        "offline"
        | "host"
        | "machine"
        | "pkcs11-token-uri"
        | "fido2-device"
        | "fido2-credential-algorithm"
        | "fido2-with-client-pin"
        | "fido2-with-user-presence"
        | "fido2-with-user-verification"
        | "recovery-key" => {
            return Err(format!("--{name} is not supported by this homectl."));
        }
        "identity" => o.identity = Some(v),
        "rlimit" => {
            if empty {
                ch.drop_field("resourceLimits");
                ch.filter_rlimits.clear();
                ch.rlimits = OJson::Null;
                return Ok(None);
            }
            let (name, value) = v
                .split_once('=')
                .ok_or_else(|| format!("Can't parse resource limit assignment: {v}"))?;
            let kind =
                rlimit_kind(name).ok_or_else(|| format!("Unknown resource limit type: {name}"))?;
            if value.is_empty() {
                ch.filter_rlimits.push(kind.0.to_owned());
                ch.rlimits.remove(name);
                return Ok(None);
            }
            let (cur, max) = parse_rlimit(kind.1, value)
                .ok_or_else(|| format!("Failed to parse resource limit value: {value}"))?;
            let number = |n: Option<u64>| n.map_or(OJson::Null, OJson::unsigned);
            ch.rlimits.set(
                &format!("RLIMIT_{}", kind.0),
                OJson::Object(vec![
                    ("cur".into(), number(cur)),
                    ("max".into(), number(max)),
                ]),
            );
        }
        "real-name" | "comment" => {
            drop_if_empty!("realName");
            if v.contains(':') || v.chars().any(char::is_control) {
                return Err(format!("Real name '{v}' not a valid GECOS field."));
            }
            set_str(&mut ch.extra, "realName", &v);
        }
        "home-dir" => {
            drop_if_empty!("homeDirectory");
            let dir = absolute(&v)?;
            if dir == "/" || dir.split('/').any(|c| c == ".." || c == ".") || dir.contains(':') {
                return Err(format!("Home directory '{dir}' not valid."));
            }
            set_str(&mut ch.extra, "homeDirectory", &dir);
        }
        "realm" => {
            drop_if_empty!("realm");
            if v.starts_with('.') || v.ends_with('.') || v.contains("..") || v.contains(' ') {
                return Err(format!("Realm '{v}' is not a valid DNS domain."));
            }
            set_str(&mut ch.extra, "realm", &v);
        }
        "email-address"
        | "location"
        | "icon-name"
        | "cifs-user-name"
        | "cifs-domain"
        | "cifs-extra-mount-options"
        | "luks-extra-mount-options"
        | "cifs-service" => {
            let field = match name {
                "email-address" => "emailAddress",
                "location" => "location",
                "icon-name" => "iconName",
                "cifs-user-name" => "cifsUserName",
                "cifs-domain" => "cifsDomain",
                "cifs-extra-mount-options" => "cifsExtraMountOptions",
                "cifs-service" => "cifsService",
                _ => "luksExtraMountOptions",
            };
            drop_if_empty!(field);
            set_str(&mut ch.extra, field, &v);
        }
        "password-hint" => {
            drop_if_empty!("passwordHint");
            set_str(&mut ch.privileged, "passwordHint", &v);
        }
        "nice" => {
            drop_if_empty!("niceLevel");
            let n: i64 = v
                .parse()
                .ok()
                .filter(|n| (-20..=19).contains(n))
                .ok_or_else(|| format!("Failed to parse nice level: {v}"))?;
            ch.extra.set("niceLevel", OJson::signed(n));
        }
        "uid" => {
            drop_if_empty!("uid");
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
            ch.extra.set("uid", OJson::unsigned(u64::from(uid)));
        }
        "skel" | "image-path" => {
            let field = if name == "skel" {
                "skeletonDirectory"
            } else {
                "imagePath"
            };
            drop_if_empty!(field);
            let path = absolute(&v)?;
            set_str(&mut ch.this_machine, field, &path);
        }
        "shell" => {
            drop_if_empty!("shell");
            if !v.starts_with('/') || v.contains(':') || v.chars().any(char::is_control) {
                return Err(format!("Shell '{v}' not valid."));
            }
            set_str(&mut ch.extra, "shell", &v);
        }
        "setenv" => {
            drop_if_empty!("environment");
            let mut list: Vec<String> = match ch.extra.get("environment") {
                Some(OJson::Array(items)) => items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            let assignment = if v.contains('=') {
                v.clone()
            } else {
                match std::env::var(&v) {
                    Ok(val) => format!("{v}={val}"),
                    Err(_) => return Ok(None),
                }
            };
            let key = assignment.split('=').next().unwrap_or_default().to_owned();
            list.retain(|e| e.split('=').next() != Some(key.as_str()));
            list.push(assignment);
            list.sort();
            ch.extra.set("environment", OJson::strings(&list));
        }
        "timezone" => {
            drop_if_empty!("timeZone");
            let valid = !v.starts_with('/')
                && !v.contains("..")
                && std::path::Path::new("/usr/share/zoneinfo")
                    .join(&v)
                    .is_file();
            if !valid {
                return Err(format!("Timezone '{v}' is not valid."));
            }
            set_str(&mut ch.extra, "timeZone", &v);
        }
        "language" => {
            drop_if_empty!("language");
            if v.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/')
            {
                return Err(format!("Locale '{v}' is not valid."));
            }
            set_str(&mut ch.extra, "preferredLanguage", &v);
        }
        "nosuid"
        | "nodev"
        | "noexec"
        | "locked"
        | "kill-processes"
        | "enforce-password-policy"
        | "auto-login"
        | "password-change-now"
        | "luks-discard"
        | "luks-offline-discard"
        | "drop-caches" => {
            let field = match name {
                "locked" => "locked",
                "nosuid" => "mountNoSuid",
                "nodev" => "mountNoDevices",
                "noexec" => "mountNoExecute",
                "kill-processes" => "killProcesses",
                "enforce-password-policy" => "enforcePasswordPolicy",
                "auto-login" => "autoLogin",
                "password-change-now" => "passwordChangeNow",
                "luks-discard" => "luksDiscard",
                "luks-offline-discard" => "luksOfflineDiscard",
                _ => "dropCaches",
            };
            drop_if_empty!(field);
            let b = parse_boolean(&v)
                .ok_or_else(|| format!("Failed to parse {field} boolean: Invalid argument"))?;
            ch.extra.set(field, OJson::Bool(b));
        }
        "-P" => ch.extra.set("enforcePasswordPolicy", OJson::Bool(false)),
        "disk-size" => {
            if empty {
                for f in ["diskSize", "diskSizeRelative", "rebalanceWeight"] {
                    ch.drop_field(f);
                }
                o.disk_size = None;
                o.disk_size_relative = false;
                return Ok(None);
            }
            if let Some(permyriad) = parse_permyriad(&v) {
                let permyriad = permyriad?;
                // A fraction of the available space, scaled so that 100% is 2³²−1.
                let scaled = (permyriad * u64::from(u32::MAX) + 5000) / 10000;
                ch.drop_field("diskSize");
                ch.filter.retain(|f| f != "diskSizeRelative");
                ch.this_machine
                    .set("diskSizeRelative", OJson::unsigned(scaled));
                ch.this_machine.set("rebalanceWeight", OJson::unsigned(0));
                o.disk_size = None;
                o.disk_size_relative = true;
                return Ok(None);
            }
            let size = match v.as_str() {
                "min" => 0,
                "max" => u64::MAX - 1,
                _ => units::parse_size(&v)
                    .map_err(|_| format!("Failed to parse disk size parameter: {v}"))?,
            };
            ch.drop_field("diskSizeRelative");
            ch.filter.retain(|f| f != "diskSize");
            ch.this_machine.set("diskSize", OJson::unsigned(size));
            ch.this_machine.set("rebalanceWeight", OJson::unsigned(0));
            o.disk_size = Some(size);
            o.disk_size_relative = false;
        }
        "access-mode" | "umask" => {
            let field = if name == "umask" {
                "umask"
            } else {
                "accessMode"
            };
            drop_if_empty!(field);
            let mode = parse_mode(&v).ok_or_else(|| format!("Access mode '{v}' not valid."))?;
            ch.extra.set(field, OJson::unsigned(mode));
        }
        "luks-volume-key-size"
        | "luks-pbkdf-parallel-threads"
        | "rate-limit-burst"
        | "tasks-max"
        | "luks-sector-size"
        | "cpu-weight"
        | "io-weight" => {
            let field = match name {
                "luks-volume-key-size" => "luksVolumeKeySize",
                "luks-pbkdf-parallel-threads" => "luksPbkdfParallelThreads",
                "rate-limit-burst" => "rateLimitBurst",
                "tasks-max" => "tasksMax",
                "luks-sector-size" => "luksSectorSize",
                "cpu-weight" => "cpuWeight",
                _ => "ioWeight",
            };
            drop_if_empty!(field);
            let n: u64 = v
                .parse()
                .map_err(|_| format!("Failed to parse {field} parameter: {v}"))?;
            if name == "luks-sector-size" && !(512..=4096).contains(&n) {
                return Err(format!("Sector size not between 512 and 4096: {v}"));
            }
            if name == "luks-sector-size" && !n.is_power_of_two() {
                return Err(format!("Sector size not power of 2: {v}"));
            }
            if matches!(name, "cpu-weight" | "io-weight") && !(1..=10000).contains(&n) {
                return Err(format!("Weight {n} is out of valid weight range."));
            }
            ch.extra.set(field, OJson::unsigned(n));
        }
        "memory-high" | "memory-max" | "luks-pbkdf-memory-cost" => {
            let field = match name {
                "memory-high" => "memoryHigh",
                "memory-max" => "memoryMax",
                _ => "luksPbkdfMemoryCost",
            };
            drop_if_empty!(field);
            let n = units::parse_size(&v)
                .map_err(|_| format!("Failed to parse {field} parameter: {v}"))?;
            ch.this_machine.set(field, OJson::unsigned(n));
        }
        "ssh-authorized-keys" => {
            drop_if_empty!("sshAuthorizedKeys");
            let mut add = Vec::new();
            if let Some(path) = v.strip_prefix('@') {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("Failed to open '{path}': {e}"))?;
                add.extend(
                    text.lines()
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_owned),
                );
            } else {
                if v.chars().any(char::is_control) {
                    return Err("Authorized key contains control characters, refusing.".into());
                }
                if v.starts_with('#') {
                    return Err("Specified key is a comment?".into());
                }
                add.push(v.clone());
            }
            let mut list: Vec<String> = match ch.privileged.get("sshAuthorizedKeys") {
                Some(OJson::Array(items)) => items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            list.extend(add);
            ch.privileged
                .set("sshAuthorizedKeys", OJson::strings(&list));
        }
        "not-before" | "not-after" | "expiredate" => {
            let field = if name == "not-before" {
                "notBeforeUSec"
            } else {
                "notAfterUSec"
            };
            drop_if_empty!(field);
            let t = units::parse_timestamp(&v)
                .map_err(|_| format!("Failed to parse {field} parameter: Invalid argument"))?;
            ch.extra.set(field, OJson::unsigned(t));
        }
        "password-change-min"
        | "password-change-max"
        | "password-change-warn"
        | "password-change-inactive"
        | "luks-pbkdf-time-cost"
        | "rate-limit-interval"
        | "stop-delay" => {
            let field = match name {
                "password-change-min" => "passwordChangeMinUSec",
                "password-change-max" => "passwordChangeMaxUSec",
                "password-change-warn" => "passwordChangeWarnUSec",
                "password-change-inactive" => "passwordChangeInactiveUSec",
                "luks-pbkdf-time-cost" => "luksPbkdfTimeCostUSec",
                "rate-limit-interval" => "rateLimitIntervalUSec",
                _ => "stopDelayUSec",
            };
            drop_if_empty!(field);
            let t = units::parse_timespan(&v)
                .map_err(|_| format!("Failed to parse {field} parameter: Invalid argument"))?;
            ch.extra.set(field, OJson::unsigned(t));
        }
        "storage"
        | "fs-type"
        | "luks-cipher"
        | "luks-cipher-mode"
        | "luks-pbkdf-type"
        | "luks-pbkdf-hash-algorithm"
        | "auto-resize-mode" => {
            let field = match name {
                "storage" => "storage",
                "fs-type" => "fileSystemType",
                "luks-cipher" => "luksCipher",
                "luks-cipher-mode" => "luksCipherMode",
                "luks-pbkdf-type" => "luksPbkdfType",
                "auto-resize-mode" => "autoResizeMode",
                _ => "luksPbkdfHashAlgorithm",
            };
            drop_if_empty!(field);
            if v.chars()
                .any(|c| c.is_control() || c == '\'' || c == '"' || c == '\\')
            {
                return Err(format!("Parameter for {field} field not valid: {v}"));
            }
            if name == "auto-resize-mode"
                && !matches!(v.as_str(), "off" | "grow" | "shrink-and-grow")
            {
                return Err(format!("Failed to parse --auto-resize-mode= argument: {v}"));
            }
            let target = if matches!(name, "storage" | "fs-type") {
                &mut ch.this_machine
            } else {
                &mut ch.extra
            };
            set_str(target, field, &v);
        }
        "member-of" | "groups" => {
            drop_if_empty!("memberOf");
            let mut list: Vec<String> = match ch.extra.get("memberOf") {
                Some(OJson::Array(items)) => items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            for word in v.split(',').filter(|w| !w.is_empty()) {
                if !names::is_valid_strict(word) {
                    return Err(format!("Invalid group name {word}."));
                }
                list.push(word.to_owned());
                list.sort();
                list.dedup();
            }
            ch.extra.set("memberOf", OJson::strings(&list));
        }
        "rebalance-weight" => {
            ch.drop_field("rebalanceWeight");
            if empty {
                return Ok(None);
            }
            let w: u64 = if v == "off" {
                0
            } else {
                let w: u64 = v
                    .parse()
                    .map_err(|_| format!("Failed to parse --rebalance-weight= argument: {v}"))?;
                if !(1..=10000).contains(&w) {
                    return Err(format!(
                        "Rebalancing weight out of valid range 1…10000: {v}"
                    ));
                }
                w
            };
            ch.extra.set("rebalanceWeight", OJson::unsigned(w));
        }
        "-j" => o.json = JsonMode::Auto,
        "json" => {
            o.json = match v.as_str() {
                "pretty" => JsonMode::Pretty,
                "short" => JsonMode::Short,
                "off" => JsonMode::Off,
                "help" => return Ok(Some("short\npretty\noff\n".into())),
                _ => return Err(format!("Unknown argument to --json= switch: {v}")),
            }
        }
        "-E" => {
            o.export_format = match o.export_format {
                ExportFormat::Full => ExportFormat::Stripped,
                ExportFormat::Stripped => ExportFormat::Minimal,
                ExportFormat::Minimal => {
                    return Err("Specifying -E more than twice is not supported.".into());
                }
            };
            if o.json == JsonMode::Off {
                o.json = JsonMode::Auto;
            }
        }
        "export-format" => {
            o.export_format = match v.as_str() {
                "full" => ExportFormat::Full,
                "stripped" => ExportFormat::Stripped,
                "minimal" => ExportFormat::Minimal,
                "help" => return Ok(Some("full\nstripped\nminimal\n".into())),
                // systemd's homectl 252 ignores values it does not know.
                _ => o.export_format,
            }
        }
        "and-resize" => o.and_resize = true,
        "and-change-password" => o.and_change_password = true,
        other => return Err(format!("homectl: unrecognized option '--{other}'")),
    }
    Ok(None)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&argv).unwrap() {
            Parsed::Run(o) => *o,
            Parsed::Print(_) => panic!("printed"),
        }
    }

    #[test]
    fn options_anywhere_and_in_order() {
        let o = run(&[
            "create",
            "bob",
            "--uid=60100",
            "-c",
            "Bob B",
            "-G",
            "wheel,adm",
            "--storage",
            "directory",
            "-Pj",
        ]);
        assert_eq!(o.args, ["create", "bob"]);
        assert_eq!(
            o.changes.extra.to_compact(),
            r#"{"uid":60100,"realName":"Bob B","memberOf":["adm","wheel"],"enforcePasswordPolicy":false}"#
        );
        assert_eq!(
            o.changes.this_machine.to_compact(),
            r#"{"storage":"directory"}"#
        );
        assert_eq!(o.json, JsonMode::Auto);
    }

    #[test]
    fn resource_limits() {
        let o = run(&[
            "--rlimit=NOFILE=1024:4096",
            "--rlimit=RLIMIT_CORE=infinity",
            "--rlimit=CPU=90s",
            "--rlimit=NICE=-5",
        ]);
        assert_eq!(
            o.changes.rlimits.to_compact(),
            r#"{"RLIMIT_NOFILE":{"cur":1024,"max":4096},"RLIMIT_CORE":{"cur":null,"max":null},"RLIMIT_CPU":{"cur":90,"max":90},"RLIMIT_NICE":{"cur":25,"max":25}}"#
        );
        let argv = |a: &str| vec![a.to_owned()];
        for bad in [
            "--rlimit=core=1",
            "--rlimit=NOFILE=5:4",
            "--rlimit=NOFILE",
            "--rlimit=AS=x",
        ] {
            assert!(parse(&argv(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_sizes() {
        let p = |s: &str| parse_permyriad(s).map(|r| r.ok());
        assert_eq!(p("20%"), Some(Some(2000)));
        assert_eq!(p("12.25%"), Some(Some(1225)));
        assert_eq!(p("12.5‰"), Some(Some(125)));
        assert_eq!(p("1250‱"), Some(Some(1250)));
        assert_eq!(p("101%"), Some(None));
        assert_eq!(p("1.234%"), Some(None));
        assert_eq!(p("5G"), None);
    }

    #[test]
    fn empty_values_drop_fields_and_errors_are_clear() {
        let o = run(&["update", "bob", "--real-name=X", "--real-name="]);
        assert!(o.changes.extra.get("realName").is_none());
        assert_eq!(o.changes.filter, ["realName"]);
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(parse(&argv(&["--uid=100"])).is_err());
        assert!(parse(&argv(&["--bogus"])).is_err());
        assert!(parse(&argv(&["--shell"])).is_err());
        let o = run(&["--password-change-max=90d", "--not-after=2030-01-01 UTC"]);
        assert_eq!(
            o.changes.extra.to_compact(),
            r#"{"passwordChangeMaxUSec":7776000000000,"notAfterUSec":1893456000000000}"#
        );
    }
}
