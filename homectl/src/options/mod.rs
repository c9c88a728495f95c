//! Command line parsing with getopt_long's rules (options and arguments in any order, `--`,
//! `--opt=value` and `--opt value`, bundled short flags, unique prefixes of long options), and
//! the record changes the property options ask for, kept in the order they were given. The
//! options themselves are one table (`table.rs`).

mod actions;
mod table;
mod values;

pub use values::{parse_boolean, parse_permyriad};

use crate::ojson::OJson;
use table::{Does, Opt};

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

/// The part of the record an option's field goes to.
#[derive(Clone, Copy)]
pub(crate) enum Section {
    /// The record's regular fields.
    Extra,
    /// The `perMachine` entry for this machine.
    ThisMachine,
    /// The `privileged` section.
    Privileged,
}

impl IdentityChanges {
    fn section_mut(&mut self, section: Section) -> &mut OJson {
        match section {
            Section::Extra => &mut self.extra,
            Section::ThisMachine => &mut self.this_machine,
            Section::Privileged => &mut self.privileged,
        }
    }

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
    /// `--recovery-key=yes`: create generates a recovery key.
    pub recovery_key: bool,
    /// `--pkcs11-token-uri=`: given at all (the old tokens are replaced), and the URIs.
    pub pkcs11_given: bool,
    pub pkcs11_token_uris: Vec<String>,
    pub args: Vec<String>,
}

/// What parsing asks main to do.
pub enum Parsed {
    Run(Box<Options>),
    /// Print this and exit successfully (help, version).
    Print(String),
}

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
        recovery_key: false,
        pkcs11_given: false,
        pkcs11_token_uris: Vec::new(),
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
        let mut found: Vec<(&'static Opt, String)> = Vec::new();
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let opt = table::find_long(name)?;
            let name = opt.name();
            let value = match (opt.takes_argument(), inline) {
                (false, Some(_)) => {
                    return Err(format!(
                        "homectl: option '{name}' doesn't allow an argument"
                    ));
                }
                (false, None) => String::new(),
                (true, Some(v)) => v,
                (true, None) => {
                    let v = argv
                        .get(i)
                        .ok_or_else(|| format!("homectl: option '{name}' requires an argument"))?;
                    i += 1;
                    v.clone()
                }
            };
            found.push((opt, value));
        } else if a.len() > 1 && a.starts_with('-') {
            let chars: Vec<char> = a[1..].chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                k += 1;
                let opt = table::find_short(c)
                    .ok_or_else(|| format!("homectl: invalid option -- '{c}'"))?;
                if opt.takes_argument() {
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
                    found.push((opt, value));
                    break;
                }
                found.push((opt, String::new()));
            }
        } else {
            o.args.push(a.clone());
            continue;
        }
        for (opt, value) in found {
            if let Some(done) = apply(&mut o, opt, &value)? {
                return Ok(Parsed::Print(done));
            }
        }
    }
    if o.disk_size.is_some() || o.disk_size_relative {
        o.and_resize = true;
    }
    Ok(Parsed::Run(Box::new(o)))
}

/// Applies one option. Returns text to print instead of running (help, version).
fn apply(o: &mut Options, opt: &Opt, v: &str) -> table::Applied {
    match &opt.does {
        Does::Flag(run) => run(o),
        Does::Run(run) => run(o, v),
        Does::Field(section, field, kind) => {
            if v.is_empty() {
                o.changes.drop_field(field);
            } else {
                let value = kind.parse(field, v)?;
                o.changes.section_mut(*section).set(field, value);
            }
            Ok(None)
        }
        Does::Unsupported => Err(format!("{} is not supported by this homectl.", opt.name())),
    }
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

    #[test]
    fn every_option_is_in_the_table_once() {
        let mut longs: Vec<&str> = table::OPTIONS.iter().filter_map(|o| o.long).collect();
        let mut shorts: Vec<char> = table::OPTIONS.iter().filter_map(|o| o.short).collect();
        let (nl, ns) = (longs.len(), shorts.len());
        longs.sort_unstable();
        longs.dedup();
        shorts.sort_unstable();
        shorts.dedup();
        assert_eq!(
            (longs.len(), shorts.len()),
            (nl, ns),
            "a name is in the table twice"
        );
        // Everything --help offers is in the table, with the short name it shows.
        for line in crate::help::text().lines() {
            // Option lines are indented by 2 or 5; deeper lines continue a description.
            if line.len() - line.trim_start().len() > 5 {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let (short, long) = match words.as_slice() {
                [s, l, ..] if s.len() == 2 && s.starts_with('-') && l.starts_with("--") => {
                    (s.chars().nth(1), *l)
                }
                [l, ..] if l.starts_with("--") => (None, *l),
                _ => continue,
            };
            let name = long[2..].split(['=', '[']).next().unwrap();
            let opt = table::find_long(name).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(opt.long, Some(name), "{line}");
            if short.is_some() {
                assert_eq!(opt.short, short, "{line}");
            }
        }
    }

    #[test]
    fn flags_unsupported_options_and_booleans() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse(&argv(&["--no-legend=1"])).err().unwrap(),
            "homectl: option '--no-legend' doesn't allow an argument"
        );
        assert_eq!(
            parse(&argv(&["-H", "host"])).err().unwrap(),
            "--host is not supported by this homectl."
        );
        assert_eq!(
            parse(&argv(&["--fido2-dev=auto"])).err().unwrap(),
            "--fido2-device is not supported by this homectl."
        );
        assert_eq!(
            parse(&argv(&["--and-resize=maybe"])).err().unwrap(),
            "Failed to parse --and-resize= argument: maybe"
        );
        assert!(!run(&["--and-resize=no"]).and_resize);
        assert!(run(&["--and-change-password=yes"]).and_change_password);
        assert!(run(&["--recovery-key=yes"]).recovery_key);
        assert!(!run(&["--recovery-key=no"]).recovery_key);
        let o = run(&["-P", "--nosuid=off", "--umask=077", "--storage=luks"]);
        assert_eq!(
            o.changes.extra.to_compact(),
            r#"{"enforcePasswordPolicy":false,"mountNoSuid":false,"umask":63}"#
        );
        assert_eq!(o.changes.this_machine.to_compact(), r#"{"storage":"luks"}"#);
        assert!(parse(&argv(&["--storage=a'b"])).is_err());
        assert!(parse(&argv(&["--luks-sector-size=1000"])).is_err());
    }
}
