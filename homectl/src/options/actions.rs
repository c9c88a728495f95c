//! The options whose values follow rules of their own: lists that grow (groups, environment,
//! SSH keys), resource limits, disk sizes, output modes and the flags of the run itself.

use homed_shared::record::names;

use super::table::Applied;
use super::values::{parse_boolean, parse_permyriad, parse_rlimit, rlimit_kind};
use super::{ExportFormat, JsonMode, Options};
use crate::ojson::OJson;
use crate::units;

const VERSION: &str = env!("CARGO_PKG_VERSION");

pub(super) fn help(_: &mut Options) -> Applied {
    Ok(Some(crate::help::text()))
}

pub(super) fn version(_: &mut Options) -> Applied {
    Ok(Some(format!("homectl (homed) {VERSION}\n")))
}

pub(super) fn no_pager(o: &mut Options) -> Applied {
    o.no_pager = true;
    Ok(None)
}

pub(super) fn no_legend(o: &mut Options) -> Applied {
    o.legend = false;
    Ok(None)
}

pub(super) fn no_ask_password(o: &mut Options) -> Applied {
    o.ask_password = false;
    Ok(None)
}

pub(super) fn identity(o: &mut Options, v: &str) -> Applied {
    o.identity = Some(v.to_owned());
    Ok(None)
}

/// `-P`: do not enforce the password policy.
pub(super) fn no_password_policy(o: &mut Options) -> Applied {
    o.changes
        .extra
        .set("enforcePasswordPolicy", OJson::Bool(false));
    Ok(None)
}

fn string_list(value: Option<&OJson>) -> Vec<String> {
    match value {
        Some(OJson::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// `--member-of=a,b`: adds to the groups already given, sorted and without duplicates.
pub(super) fn member_of(o: &mut Options, v: &str) -> Applied {
    let ch = &mut o.changes;
    if v.is_empty() {
        ch.drop_field("memberOf");
        return Ok(None);
    }
    let mut list = string_list(ch.extra.get("memberOf"));
    for word in v.split(',').filter(|w| !w.is_empty()) {
        if !names::is_valid_strict(word) {
            return Err(format!("Invalid group name {word}."));
        }
        list.push(word.to_owned());
        list.sort();
        list.dedup();
    }
    ch.extra.set("memberOf", OJson::strings(&list));
    Ok(None)
}

/// `--setenv=NAME=VALUE` replaces NAME; a bare `NAME` takes the value from homectl's own
/// environment and is ignored if it has none.
pub(super) fn setenv(o: &mut Options, v: &str) -> Applied {
    let ch = &mut o.changes;
    if v.is_empty() {
        ch.drop_field("environment");
        return Ok(None);
    }
    let mut list = string_list(ch.extra.get("environment"));
    let assignment = if v.contains('=') {
        v.to_owned()
    } else {
        match std::env::var(v) {
            Ok(val) => format!("{v}={val}"),
            Err(_) => return Ok(None),
        }
    };
    let key = assignment.split('=').next().unwrap_or_default().to_owned();
    list.retain(|e| e.split('=').next() != Some(key.as_str()));
    list.push(assignment);
    list.sort();
    ch.extra.set("environment", OJson::strings(&list));
    Ok(None)
}

/// `--language=`: sets preferredLanguage; an empty value drops "language", as systemd's
/// homectl 252 does.
pub(super) fn language(o: &mut Options, v: &str) -> Applied {
    let ch = &mut o.changes;
    if v.is_empty() {
        ch.drop_field("language");
        return Ok(None);
    }
    if v.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(format!("Locale '{v}' is not valid."));
    }
    ch.extra.set("preferredLanguage", OJson::string(v));
    Ok(None)
}

/// `--ssh-authorized-keys=KEY` or `=@FILE`: adds to the keys already given.
pub(super) fn ssh_authorized_keys(o: &mut Options, v: &str) -> Applied {
    let ch = &mut o.changes;
    if v.is_empty() {
        ch.drop_field("sshAuthorizedKeys");
        return Ok(None);
    }
    let mut add = Vec::new();
    if let Some(path) = v.strip_prefix('@') {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("Failed to open '{path}': {e}"))?;
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
        add.push(v.to_owned());
    }
    let mut list = string_list(ch.privileged.get("sshAuthorizedKeys"));
    list.extend(add);
    ch.privileged
        .set("sshAuthorizedKeys", OJson::strings(&list));
    Ok(None)
}

/// `--rlimit=NAME=SOFT[:HARD]`; `NAME=` removes one limit, an empty value all of them.
pub(super) fn rlimit(o: &mut Options, v: &str) -> Applied {
    let ch = &mut o.changes;
    if v.is_empty() {
        ch.drop_field("resourceLimits");
        ch.filter_rlimits.clear();
        ch.rlimits = OJson::Null;
        return Ok(None);
    }
    let (name, value) = v
        .split_once('=')
        .ok_or_else(|| format!("Can't parse resource limit assignment: {v}"))?;
    let kind = rlimit_kind(name).ok_or_else(|| format!("Unknown resource limit type: {name}"))?;
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
    Ok(None)
}

/// `--disk-size=`: bytes, `min`, `max`, or a share of the free space (`20%`); either kind
/// replaces the other and turns rebalancing off.
pub(super) fn disk_size(o: &mut Options, v: &str) -> Applied {
    let ch = &mut o.changes;
    if v.is_empty() {
        for f in ["diskSize", "diskSizeRelative", "rebalanceWeight"] {
            ch.drop_field(f);
        }
        o.disk_size = None;
        o.disk_size_relative = false;
        return Ok(None);
    }
    if let Some(permyriad) = parse_permyriad(v) {
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
    let size = match v {
        "min" => 0,
        "max" => u64::MAX - 1,
        _ => {
            units::parse_size(v).map_err(|_| format!("Failed to parse disk size parameter: {v}"))?
        }
    };
    ch.drop_field("diskSizeRelative");
    ch.filter.retain(|f| f != "diskSize");
    ch.this_machine.set("diskSize", OJson::unsigned(size));
    ch.this_machine.set("rebalanceWeight", OJson::unsigned(0));
    o.disk_size = Some(size);
    o.disk_size_relative = false;
    Ok(None)
}

/// `--rebalance-weight=`: `off` or 1…10000.
pub(super) fn rebalance_weight(o: &mut Options, v: &str) -> Applied {
    let ch = &mut o.changes;
    ch.drop_field("rebalanceWeight");
    if v.is_empty() {
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
    Ok(None)
}

/// `-j`: pretty on a terminal, short otherwise.
pub(super) fn json_auto(o: &mut Options) -> Applied {
    o.json = JsonMode::Auto;
    Ok(None)
}

pub(super) fn json(o: &mut Options, v: &str) -> Applied {
    o.json = match v {
        "pretty" => JsonMode::Pretty,
        "short" => JsonMode::Short,
        "off" => JsonMode::Off,
        "help" => return Ok(Some("short\npretty\noff\n".into())),
        _ => return Err(format!("Unknown argument to --json= switch: {v}")),
    };
    Ok(None)
}

/// `-E`: once strips the record, twice leaves the minimal one; implies `-j`.
pub(super) fn export_less(o: &mut Options) -> Applied {
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
    Ok(None)
}

pub(super) fn export_format(o: &mut Options, v: &str) -> Applied {
    o.export_format = match v {
        "full" => ExportFormat::Full,
        "stripped" => ExportFormat::Stripped,
        "minimal" => ExportFormat::Minimal,
        "help" => return Ok(Some("full\nstripped\nminimal\n".into())),
        // systemd's homectl 252 ignores values it does not know.
        _ => o.export_format,
    };
    Ok(None)
}

fn boolean_argument(option: &str, v: &str) -> Result<bool, String> {
    parse_boolean(v).ok_or_else(|| format!("Failed to parse --{option}= argument: {v}"))
}

pub(super) fn and_resize(o: &mut Options, v: &str) -> Applied {
    o.and_resize = boolean_argument("and-resize", v)?;
    Ok(None)
}

/// `--pkcs11-token-uri=URI|auto|list`; empty forgets the URIs given so far.
pub(super) fn pkcs11_token_uri(o: &mut Options, v: &str) -> Applied {
    o.pkcs11_given = true;
    let uri = match v {
        "" => {
            o.pkcs11_token_uris.clear();
            return Ok(None);
        }
        "list" => return crate::pkcs11::list().map(Some),
        "auto" => crate::pkcs11::auto()?,
        uri if crate::pkcs11::valid_uri(uri) => uri.to_owned(),
        uri => return Err(format!("Not a valid PKCS#11 URI: {uri}")),
    };
    if !o.pkcs11_token_uris.contains(&uri) {
        o.pkcs11_token_uris.push(uri);
    }
    Ok(None)
}

pub(super) fn recovery_key(o: &mut Options, v: &str) -> Applied {
    o.recovery_key = boolean_argument("recovery-key", v)?;
    Ok(None)
}

pub(super) fn and_change_password(o: &mut Options, v: &str) -> Applied {
    o.and_change_password = boolean_argument("and-change-password", v)?;
    Ok(None)
}
