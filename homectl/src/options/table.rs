//! Every option homectl knows, once: its long and short names, and what it does. The parser
//! (getopt_long's rules) and `--help`'s prefix matching read this table; nothing else spells an
//! option's name.

use super::actions as act;
use super::values::Value::{self, *};
use super::{Options, Section};

/// What applying an option returns: text to print instead of running (help, version), or an
/// error for the user.
pub(super) type Applied = Result<Option<String>, String>;

pub(super) struct Opt {
    /// None for the short options that have no long form (`-j`, `-P`, `-E`).
    pub long: Option<&'static str>,
    pub short: Option<char>,
    pub does: Does,
}

pub(super) enum Does {
    /// Takes no argument.
    Flag(fn(&mut Options) -> Applied),
    /// One record field: an empty value drops it, any other is checked, converted and set.
    Field(Section, &'static str, Value),
    /// A value with rules of its own.
    Run(fn(&mut Options, &str) -> Applied),
    /// Known to systemd's homectl, refused here with a clear message.
    Unsupported,
}

impl Opt {
    pub fn takes_argument(&self) -> bool {
        !matches!(self.does, Does::Flag(_))
    }

    pub fn name(&self) -> String {
        match (self.long, self.short) {
            (Some(long), _) => format!("--{long}"),
            (None, Some(c)) => format!("-{c}"),
            (None, None) => String::new(),
        }
    }
}

const fn long(name: &'static str, does: Does) -> Opt {
    Opt {
        long: Some(name),
        short: None,
        does,
    }
}

const fn both(name: &'static str, c: char, does: Does) -> Opt {
    Opt {
        long: Some(name),
        short: Some(c),
        does,
    }
}

const fn short(c: char, does: Does) -> Opt {
    Opt {
        long: None,
        short: Some(c),
        does,
    }
}

const fn extra(field: &'static str, value: Value) -> Does {
    Does::Field(Section::Extra, field, value)
}

const fn machine(field: &'static str, value: Value) -> Does {
    Does::Field(Section::ThisMachine, field, value)
}

const fn privileged(field: &'static str, value: Value) -> Does {
    Does::Field(Section::Privileged, field, value)
}

use Does::{Flag, Run, Unsupported};

pub(super) const OPTIONS: &[Opt] = &[
    both("help", 'h', Flag(act::help)),
    long("version", Flag(act::version)),
    long("no-pager", Flag(act::no_pager)),
    long("no-legend", Flag(act::no_legend)),
    long("no-ask-password", Flag(act::no_ask_password)),
    both("host", 'H', Unsupported),
    both("machine", 'M', Unsupported),
    both("identity", 'I', Run(act::identity)),
    both("real-name", 'c', extra("realName", Gecos)),
    long("comment", extra("realName", Gecos)),
    long("realm", extra("realm", Realm)),
    long("email-address", extra("emailAddress", Text)),
    long("location", extra("location", Text)),
    long("password-hint", privileged("passwordHint", Text)),
    long("icon-name", extra("iconName", Text)),
    both("home-dir", 'd', extra("homeDirectory", HomeDir)),
    both("uid", 'u', extra("uid", Uid)),
    both("member-of", 'G', Run(act::member_of)),
    long("groups", Run(act::member_of)),
    both("skel", 'k', machine("skeletonDirectory", Path)),
    both("shell", 's', extra("shell", Shell)),
    long("setenv", Run(act::setenv)),
    long("timezone", extra("timeZone", TimeZone)),
    long("language", Run(act::language)),
    long("locked", extra("locked", Bool)),
    long("not-before", extra("notBeforeUSec", Timestamp)),
    long("not-after", extra("notAfterUSec", Timestamp)),
    both("expiredate", 'e', extra("notAfterUSec", Timestamp)),
    long("ssh-authorized-keys", Run(act::ssh_authorized_keys)),
    long("disk-size", Run(act::disk_size)),
    long("access-mode", extra("accessMode", Mode)),
    long("umask", extra("umask", Mode)),
    long("nice", extra("niceLevel", Nice)),
    long("rlimit", Run(act::rlimit)),
    long("tasks-max", extra("tasksMax", Count)),
    long("memory-high", machine("memoryHigh", Size)),
    long("memory-max", machine("memoryMax", Size)),
    long("cpu-weight", extra("cpuWeight", Weight)),
    long("io-weight", extra("ioWeight", Weight)),
    long("storage", machine("storage", Word)),
    long("image-path", machine("imagePath", Path)),
    long("fs-type", machine("fileSystemType", Word)),
    long("luks-discard", extra("luksDiscard", Bool)),
    long("luks-offline-discard", extra("luksOfflineDiscard", Bool)),
    long("luks-cipher", extra("luksCipher", Word)),
    long("luks-cipher-mode", extra("luksCipherMode", Word)),
    long("luks-volume-key-size", extra("luksVolumeKeySize", Count)),
    long("luks-pbkdf-type", extra("luksPbkdfType", Word)),
    long(
        "luks-pbkdf-hash-algorithm",
        extra("luksPbkdfHashAlgorithm", Word),
    ),
    long(
        "luks-pbkdf-time-cost",
        extra("luksPbkdfTimeCostUSec", Timespan),
    ),
    long(
        "luks-pbkdf-memory-cost",
        machine("luksPbkdfMemoryCost", Size),
    ),
    long(
        "luks-pbkdf-parallel-threads",
        extra("luksPbkdfParallelThreads", Count),
    ),
    long("luks-sector-size", extra("luksSectorSize", SectorSize)),
    long(
        "luks-extra-mount-options",
        extra("luksExtraMountOptions", Text),
    ),
    long("nosuid", extra("mountNoSuid", Bool)),
    long("nodev", extra("mountNoDevices", Bool)),
    long("noexec", extra("mountNoExecute", Bool)),
    long("cifs-user-name", extra("cifsUserName", Text)),
    long("cifs-domain", extra("cifsDomain", Text)),
    long("cifs-service", extra("cifsService", Text)),
    long(
        "cifs-extra-mount-options",
        extra("cifsExtraMountOptions", Text),
    ),
    long(
        "rate-limit-interval",
        extra("rateLimitIntervalUSec", Timespan),
    ),
    long("rate-limit-burst", extra("rateLimitBurst", Count)),
    long("stop-delay", extra("stopDelayUSec", Timespan)),
    long("kill-processes", extra("killProcesses", Bool)),
    long(
        "enforce-password-policy",
        extra("enforcePasswordPolicy", Bool),
    ),
    short('P', Flag(act::no_password_policy)),
    long("password-change-now", extra("passwordChangeNow", Bool)),
    long(
        "password-change-min",
        extra("passwordChangeMinUSec", Timespan),
    ),
    long(
        "password-change-max",
        extra("passwordChangeMaxUSec", Timespan),
    ),
    long(
        "password-change-warn",
        extra("passwordChangeWarnUSec", Timespan),
    ),
    long(
        "password-change-inactive",
        extra("passwordChangeInactiveUSec", Timespan),
    ),
    long("auto-login", extra("autoLogin", Bool)),
    long("json", Run(act::json)),
    short('j', Flag(act::json_auto)),
    long("export-format", Run(act::export_format)),
    short('E', Flag(act::export_less)),
    long("pkcs11-token-uri", Run(act::pkcs11_token_uri)),
    long("fido2-credential-algorithm", Unsupported),
    long("fido2-device", Unsupported),
    long("fido2-with-client-pin", Unsupported),
    long("fido2-with-user-presence", Unsupported),
    long("fido2-with-user-verification", Unsupported),
    long("recovery-key", Run(act::recovery_key)),
    long("and-resize", Run(act::and_resize)),
    long("and-change-password", Run(act::and_change_password)),
    long("drop-caches", extra("dropCaches", Bool)),
    long("auto-resize-mode", extra("autoResizeMode", ResizeMode)),
    long("rebalance-weight", Run(act::rebalance_weight)),
];

/// The option `--name`, or the one long option `name` is a prefix of.
pub(super) fn find_long(name: &str) -> Result<&'static Opt, String> {
    let named = |o: &&Opt| o.long.is_some_and(|l| l == name);
    if let Some(exact) = OPTIONS.iter().find(named) {
        return Ok(exact);
    }
    let matches: Vec<&Opt> = OPTIONS
        .iter()
        .filter(|o| o.long.is_some_and(|l| l.starts_with(name)))
        .collect();
    match matches.as_slice() {
        [one] if !name.is_empty() => Ok(one),
        [] => Err(format!("homectl: unrecognized option '--{name}'")),
        _ => Err(format!("homectl: option '--{name}' is ambiguous")),
    }
}

pub(super) fn find_short(c: char) -> Option<&'static Opt> {
    OPTIONS.iter().find(|o| o.short == Some(c))
}
