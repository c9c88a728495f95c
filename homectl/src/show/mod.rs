//! The human-readable form of `homectl inspect`, field for field as systemd 252 prints it.

use std::fmt::Write as _;

use homed_shared::record::RecordView;
use serde_json::Value;

use crate::color;
use crate::units::{USEC_PER_SEC, format_bytes, format_timespan, format_timestamp, now_usec};
use crate::userdb;

const NOLOGIN_SHELLS: [&str; 8] = [
    "/bin/nologin",
    "/sbin/nologin",
    "/usr/bin/nologin",
    "/usr/sbin/nologin",
    "/bin/false",
    "/usr/bin/false",
    "/sbin/false",
    "/usr/sbin/false",
];

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

struct Fields<'a> {
    v: &'a RecordView<'a>,
}

impl<'a> Fields<'a> {
    fn u64(&self, field: &str) -> Option<u64> {
        self.v.get(field).and_then(Value::as_u64)
    }
    fn str(&self, field: &str) -> Option<&'a str> {
        self.v.get(field).and_then(Value::as_str)
    }
    fn bool(&self, field: &str) -> Option<bool> {
        self.v.get(field).and_then(Value::as_bool)
    }
    /// A field the status section may override (it is read last).
    fn status_u64(&self, field: &str) -> Option<u64> {
        self.v
            .status(field)
            .and_then(Value::as_u64)
            .or_else(|| self.u64(field))
    }
    fn status_str(&self, field: &str) -> Option<&'a str> {
        self.v
            .status(field)
            .and_then(Value::as_str)
            .or_else(|| self.str(field))
    }
    fn strings(&self, value: Option<&'a Value>) -> Vec<&'a str> {
        value
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
}

/// When the next login is possible: None if unknown, Some(0) for right away.
fn next_try(f: &Fields<'_>) -> Option<u64> {
    homed_shared::record::policy::ratelimit_next_try(f.v, now_usec())
}

fn password_state(f: &Fields<'_>) -> homed_shared::record::policy::PasswordState {
    homed_shared::record::policy::password_state(f.v, now_usec())
}

/// The text `homectl inspect` prints for a record (without JSON).
pub fn render(v: &RecordView<'_>, incomplete: bool) -> String {
    let f = Fields { v };
    let mut o = String::new();
    let user = v.user_name();
    let name_and_realm = match v.record().realm() {
        Some(realm) => format!("{user}@{realm}"),
        None => user.to_owned(),
    };
    let _ = writeln!(o, "   User name: {name_and_realm}");
    if let Some(state) = v.status("state").and_then(Value::as_str) {
        match color::for_state(state) {
            Some(c) if color::enabled() => {
                let _ = writeln!(o, "       State: {c}{state}{}", color::normal());
            }
            _ => {
                let _ = writeln!(o, "       State: {state}");
            }
        }
    }
    let disposition = f.str("disposition").map(str::to_owned).or_else(|| {
        v.disposition()
            .map(|d| format!("{d:?}").to_ascii_lowercase())
    });
    let _ = writeln!(
        o,
        " Disposition: {}",
        disposition.as_deref().unwrap_or("(null)")
    );
    let now = now_usec();
    let last_change = f.u64("lastChangeUSec");
    if let Some(t) = last_change {
        let _ = writeln!(o, " Last Change: {}", format_timestamp(t));
        if t > now {
            let _ = writeln!(
                o,
                "              {}Modification time lies in the future, system clock wrong?{}",
                color::highlight_yellow(),
                color::normal()
            );
        }
    }
    if let Some(t) = f.u64("lastPasswordChangeUSec")
        && Some(t) != last_change
    {
        let _ = writeln!(o, " Last Passw.: {}", format_timestamp(t));
    }

    let shell = v.shell();
    let (red, green, yellow, bold, normal) = (
        color::highlight_red(),
        color::highlight_green(),
        color::highlight_yellow(),
        color::highlight(),
        color::normal(),
    );
    if f.bool("locked") == Some(true) {
        let _ = writeln!(o, "    Login OK: {red}no{normal} (record is locked)");
    } else if f.u64("notBeforeUSec").is_some_and(|t| now < t) {
        let _ = writeln!(o, "    Login OK: {red}no{normal} (record not valid yet))");
    } else if f.u64("notAfterUSec").is_some_and(|t| now > t) {
        let _ = writeln!(
            o,
            "    Login OK: {red}no{normal} (record not valid anymore))"
        );
    } else if NOLOGIN_SHELLS.contains(&shell.as_str()) {
        let _ = writeln!(o, "    Login OK: {red}no{normal} (nologin shell)");
    } else if next_try(&f).is_some_and(|t| t > now) {
        let _ = writeln!(o, "    Login OK: {red}no{normal} (ratelimit)");
    } else {
        let _ = writeln!(o, "    Login OK: {green}yes{normal}");
    }

    let hashes = v.hashed_passwords();
    use homed_shared::record::policy::PasswordState;
    match password_state(&f) {
        PasswordState::ChangeNow => {
            let _ = writeln!(o, " Password OK: {yellow}change now{normal}");
        }
        PasswordState::Expired => {
            let _ = writeln!(o, " Password OK: {yellow}expired{normal} (change now!)");
        }
        PasswordState::ExpiredUnchangeable => {
            let _ = writeln!(o, " Password OK: {red}expired{normal} (for good)");
        }
        PasswordState::ExpiresSoon => {
            let _ = writeln!(o, " Password OK: {yellow}expires soon{normal}");
        }
        PasswordState::NoChangeTimestamp => {
            let _ = writeln!(o, " Password OK: {red}no timestamp{normal}");
        }
        PasswordState::NotChangeable => {
            let _ = writeln!(o, " Password OK: {yellow}change not permitted{normal}");
        }
        PasswordState::ClockWrong => {
            let _ = writeln!(
                o,
                " Password OK: {yellow}last password change in future{normal}"
            );
        }
        PasswordState::Fine => {
            if hashes.is_empty() {
                if !incomplete {
                    let _ = writeln!(o, " Password OK: {bold}no{normal} (none set)");
                }
            } else if hashes.contains(&"") {
                let _ = writeln!(o, " Password OK: {red}no{normal} (empty set)");
            } else if hashes.iter().any(|h| h.starts_with('$')) {
                let _ = writeln!(o, " Password OK: {green}yes{normal}");
            } else {
                let _ = writeln!(o, " Password OK: {bold}no{normal} (locked)");
            }
        }
    }

    let uid = v.uid();
    if let Some(uid) = uid {
        let _ = writeln!(o, "         UID: {uid}");
    }
    match f.u64("gid").and_then(|g| u32::try_from(g).ok()) {
        Some(gid) => match userdb::group_name(gid) {
            Ok(name) => {
                let _ = writeln!(o, "         GID: {gid} ({name})");
            }
            Err(why) => {
                let _ = writeln!(o, "         GID: {gid} (unresolvable: {why})");
            }
        },
        None => {
            if let Some(uid) = uid {
                let _ = writeln!(o, "         GID: {uid}");
            }
        }
    }
    let mut prefix = " Aux. Groups:";
    for group in userdb::memberships(user) {
        let _ = writeln!(o, "{prefix} {group}");
        prefix = "             ";
    }

    if let Some(real) = f.str("realName")
        && real != user
    {
        let _ = writeln!(o, "   Real Name: {real}");
    }
    let home = v.home_directory();
    let _ = writeln!(o, "   Directory: {home}");
    let storage = f.str("storage").unwrap_or("classic");
    let note = match storage {
        "luks" => " (strong encryption)",
        "fscrypt" => " (weak encryption)",
        "directory" | "subvolume" => " (no encryption)",
        _ => "",
    };
    let _ = writeln!(o, "     Storage: {storage}{note}");
    let image = v.image_path().unwrap_or_else(|| home.clone());
    if image != home {
        let _ = writeln!(o, "  Image Path: {image}");
    }
    let removable = v
        .status("removable")
        .and_then(Value::as_bool)
        .or_else(|| f.bool("removable"))
        .or_else(|| {
            f.str("storage")
                .filter(|s| *s != "classic")
                .map(|s| s == "luks" && image.starts_with("/dev/"))
        });
    if let Some(b) = removable {
        let _ = writeln!(o, "   Removable: {}", yes_no(b));
    }
    let _ = writeln!(o, "       Shell: {shell}");
    for (label, value) in [
        ("       Email", f.str("emailAddress")),
        ("    Location", f.str("location")),
        (
            " Passw. Hint",
            v.privileged("passwordHint").and_then(Value::as_str),
        ),
        ("   Icon Name", f.str("iconName")),
        ("   Time Zone", f.str("timeZone")),
        ("    Language", f.str("preferredLanguage")),
    ] {
        if let Some(value) = value {
            let _ = writeln!(o, "{label}: {value}");
        }
    }
    let mut prefix = " Environment:";
    for e in f.strings(v.get("environment")) {
        let _ = writeln!(o, "{prefix} {e}");
        prefix = "             ";
    }
    if let Some(b) = f.bool("locked") {
        let _ = writeln!(o, "      Locked: {}", yes_no(b));
    }
    if let Some(t) = f.u64("notBeforeUSec") {
        let _ = writeln!(o, "  Not Before: {}", format_timestamp(t));
    }
    if let Some(t) = f.u64("notAfterUSec") {
        let _ = writeln!(o, "   Not After: {}", format_timestamp(t));
    }
    if let Some(m) = f.u64("umask") {
        let _ = writeln!(o, "       UMask: 0{m:03o}");
    }
    if let Some(n) = v.get("niceLevel").and_then(Value::as_i64) {
        let _ = writeln!(o, "        Nice: {n}");
    }
    if let Some(limits) = v.get("resourceLimits").and_then(Value::as_object) {
        // In the kernel's order of resources, as systemd lists them.
        const ORDER: [&str; 16] = [
            "CPU",
            "FSIZE",
            "DATA",
            "STACK",
            "CORE",
            "RSS",
            "NPROC",
            "NOFILE",
            "MEMLOCK",
            "AS",
            "LOCKS",
            "SIGPENDING",
            "MSGQUEUE",
            "NICE",
            "RTPRIO",
            "RTTIME",
        ];
        let ordered = ORDER.iter().filter_map(|r| {
            let name = format!("RLIMIT_{r}");
            limits.get(&name).map(|l| (name, l))
        });
        for (name, limit) in ordered {
            let num = |k: &str| {
                limit
                    .get(k)
                    .and_then(Value::as_u64)
                    .unwrap_or(u64::MAX)
                    .to_string()
            };
            let _ = writeln!(o, "       Limit: {name}={}:{}", num("cur"), num("max"));
        }
    }
    if let Some(n) = f.u64("tasksMax") {
        let _ = writeln!(o, "   Tasks Max: {n}");
    }
    if let Some(n) = f.u64("memoryHigh") {
        let _ = writeln!(o, " Memory High: {}", format_bytes(n));
    }
    if let Some(n) = f.u64("memoryMax") {
        let _ = writeln!(o, "  Memory Max: {}", format_bytes(n));
    }
    match f.u64("cpuWeight") {
        Some(0) => o.push_str("  CPU Weight: idle\n"),
        Some(n) => {
            let _ = writeln!(o, "  CPU Weight: {n}");
        }
        None => {}
    }
    if let Some(n) = f.u64("ioWeight") {
        let _ = writeln!(o, "   IO Weight: {n}");
    }
    if let Some(mode) = f.status_u64("accessMode") {
        let _ = writeln!(o, " Access Mode: 0{mode:03o}");
    }
    if storage == "luks" {
        let _ = writeln!(
            o,
            "LUKS Discard: online={} offline={}",
            yes_no(f.bool("luksDiscard").unwrap_or(false)),
            yes_no(f.bool("luksOfflineDiscard").unwrap_or(true))
        );
        for (label, field) in [
            ("   LUKS UUID", "luksUuid"),
            ("   Part UUID", "partitionUuid"),
            ("     FS UUID", "fileSystemUuid"),
        ] {
            if let Some(u) = f.str(field) {
                let _ = writeln!(o, "{label}: {u}");
            }
        }
        if f.status_str("fileSystemType").is_some() {
            let _ = writeln!(
                o,
                " File System: {}",
                f.status_str("fileSystemType").unwrap_or("btrfs")
            );
        }
        for (label, field) in [
            ("LUKS MntOpts", "luksExtraMountOptions"),
            (" LUKS Cipher", "luksCipher"),
            (" Cipher Mode", "luksCipherMode"),
        ] {
            if let Some(s) = f.str(field) {
                let _ = writeln!(o, "{label}: {s}");
            }
        }
        if let Some(n) = f.u64("luksVolumeKeySize") {
            let _ = writeln!(o, "  Volume Key: {}bit", n * 8);
        }
        if let Some(s) = f.str("luksPbkdfType") {
            let _ = writeln!(o, "  PBKDF Type: {s}");
        }
        if let Some(s) = f.str("luksPbkdfHashAlgorithm") {
            let _ = writeln!(o, "  PBKDF Hash: {s}");
        }
        if let Some(n) = f.u64("luksPbkdfTimeCostUSec") {
            let _ = writeln!(o, "  PBKDF Time: {}", format_timespan(n, 0));
        }
        if let Some(n) = f.u64("luksPbkdfMemoryCost") {
            let _ = writeln!(o, " PBKDF Bytes: {}", format_bytes(n));
        }
        if let Some(n) = f.u64("luksPbkdfParallelThreads") {
            let _ = writeln!(o, "PBKDF Thread: {n}");
        }
        if let Some(n) = f.u64("luksSectorSize") {
            let _ = writeln!(o, " Sector Size: {n}");
        }
    } else if storage == "cifs" {
        if let Some(s) = f.str("cifsService") {
            let _ = writeln!(o, "CIFS Service: {s}");
        }
        if let Some(s) = f.str("cifsExtraMountOptions") {
            let _ = writeln!(o, "CIFS MntOpts: {s}");
        }
    }
    if let Some(s) = f.str("cifsUserName") {
        let _ = writeln!(o, "   CIFS User: {s}");
    }
    if let Some(s) = f.str("cifsDomain") {
        let _ = writeln!(o, " CIFS Domain: {s}");
    }
    if storage != "classic" {
        let _ = writeln!(
            o,
            " Mount Flags: {} {} {}",
            if v.mount_no_suid() { "nosuid" } else { "suid" },
            if v.mount_no_devices() { "nodev" } else { "dev" },
            if v.mount_no_execute() {
                "noexec"
            } else {
                "exec"
            }
        );
    }
    if let Some(s) = f.str("skeletonDirectory") {
        let _ = writeln!(o, "  Skel. Dir.: {s}");
    }
    let disk_size = f.status_u64("diskSize");
    if let Some(size) = disk_size {
        let _ = writeln!(o, "   Disk Size: {}", format_bytes(size));
    }
    if let Some(usage) = v.status("diskUsage").and_then(Value::as_u64) {
        match disk_size.filter(|s| *s > 0) {
            Some(size) => {
                let permille = (u128::from(usage) * 1000).div_ceil(u128::from(size));
                let _ = writeln!(
                    o,
                    "  Disk Usage: {} (= {}.{}%)",
                    format_bytes(usage),
                    permille / 10,
                    permille % 10
                );
            }
            None => {
                let _ = writeln!(o, "  Disk Usage: {}", format_bytes(usage));
            }
        }
    }
    if let Some(free) = v.status("diskFree").and_then(Value::as_u64) {
        match disk_size.filter(|s| *s > 0) {
            Some(size) => {
                let permille = u128::from(free) * 1000 / u128::from(size);
                let (on, off) = if permille <= 100 && free < 1 << 30 {
                    (red, normal)
                } else if permille <= 250 && free < 2 << 30 {
                    (yellow, normal)
                } else {
                    ("", "")
                };
                let _ = writeln!(
                    o,
                    "   Disk Free: {on}{} (= {}.{}%){off}",
                    format_bytes(free),
                    permille / 10,
                    permille % 10
                );
            }
            None => {
                let _ = writeln!(o, "   Disk Free: {}", format_bytes(free));
            }
        }
    }
    if let Some(n) = v.status("diskFloor").and_then(Value::as_u64) {
        let _ = writeln!(o, "  Disk Floor: {}", format_bytes(n));
    }
    if let Some(n) = v.status("diskCeiling").and_then(Value::as_u64) {
        let _ = writeln!(o, "Disk Ceiling: {}", format_bytes(n));
    }
    let status_u64 = |field: &str| v.status(field).and_then(Value::as_u64);
    if let Some(n) = status_u64("goodAuthenticationCounter") {
        let _ = writeln!(o, "  Good Auth.: {n}");
    }
    if let Some(t) = status_u64("lastGoodAuthenticationUSec") {
        let _ = writeln!(o, "   Last Good: {}", format_timestamp(t));
    }
    if let Some(n) = status_u64("badAuthenticationCounter") {
        let _ = writeln!(o, "   Bad Auth.: {n}");
    }
    if let Some(t) = status_u64("lastBadAuthenticationUSec") {
        let _ = writeln!(o, "    Last Bad: {}", format_timestamp(t));
    }
    if let Some(t) = next_try(&f) {
        if t <= now {
            o.push_str("    Next Try: anytime\n");
        } else {
            let _ = writeln!(
                o,
                "    Next Try: {red}in {}{normal}",
                format_timespan(t - now, USEC_PER_SEC)
            );
        }
    }
    if storage != "classic" {
        let _ = writeln!(
            o,
            " Auth. Limit: {} attempts per {}",
            v.rate_limit_burst(),
            format_timespan(v.rate_limit_interval_usec(), 0)
        );
    }
    if let Some(b) = f.bool("enforcePasswordPolicy") {
        let _ = writeln!(o, " Passwd Pol.: {}", yes_no(b));
    }
    let min = f.u64("passwordChangeMinUSec");
    let max = f.u64("passwordChangeMaxUSec");
    let warn = f.u64("passwordChangeWarnUSec");
    let inactive = f.u64("passwordChangeInactiveUSec");
    if min.is_some() || max.is_some() || warn.is_some() || inactive.is_some() {
        o.push_str(" Passwd Chg.:");
        if let Some(t) = min {
            let _ = write!(o, " min {}", format_timespan(t, 0));
            if max.is_some() {
                o.push_str(" …");
            }
        }
        if let Some(t) = max {
            let _ = write!(o, " max {}", format_timespan(t, 0));
        }
        if let Some(t) = warn {
            let _ = write!(o, "/warn {}", format_timespan(t, 0));
        }
        if let Some(t) = inactive {
            let _ = write!(o, "/inactive {}", format_timespan(t, 0));
        }
        o.push('\n');
    }
    if let Some(b) = f.bool("passwordChangeNow") {
        let _ = writeln!(o, "Pas. Ch. Now: {}", yes_no(b));
    }
    let drop_caches = f.bool("dropCaches");
    if drop_caches.is_some() || storage == "fscrypt" {
        let _ = writeln!(
            o,
            " Drop Caches: {}",
            yes_no(drop_caches.unwrap_or(storage == "fscrypt"))
        );
    }
    if let Some(s) = f.str("autoResizeMode") {
        let _ = writeln!(o, " Auto Resize: {s}");
    }
    match v.get("rebalanceWeight") {
        Some(Value::Bool(false)) | Some(Value::Number(_))
            if f.u64("rebalanceWeight").unwrap_or(0) == 0 =>
        {
            o.push_str("   Rebalance: off\n");
        }
        Some(Value::Number(n)) => {
            let _ = writeln!(o, "   Rebalance: weight {n}");
        }
        Some(Value::Bool(true)) | Some(Value::Null) => o.push_str("   Rebalance: weight 100\n"),
        _ => {}
    }
    let keys = f.strings(v.privileged("sshAuthorizedKeys"));
    if !keys.is_empty() {
        let _ = writeln!(o, "SSH Pub. Key: {}", keys.len());
    }
    let mut prefix = "PKCS11 Token:";
    for uri in f.strings(v.get("pkcs11TokenUri")) {
        let _ = writeln!(o, "{prefix} {uri}");
        prefix = "             ";
    }
    let fido = f.strings(v.get("fido2HmacCredential"));
    if !fido.is_empty() {
        let _ = writeln!(o, " FIDO2 Token: {}", fido.len());
    }
    let recovery = f.strings(v.get("recoveryKeyType"));
    if !recovery.is_empty() {
        let _ = writeln!(o, "Recovery Key: {}", recovery.len());
    }
    if hashes.is_empty() {
        let regular = f.str("disposition").map_or(
            v.disposition() == Some(homed_shared::record::Disposition::Regular),
            |d| d == "regular",
        );
        let on = if regular { yellow } else { normal };
        let _ = writeln!(o, "   Passwords: {on}none{normal}");
    } else {
        let _ = writeln!(o, "   Passwords: {}", hashes.len());
    }
    if let Some(b) = v.status("signedLocally").and_then(Value::as_bool) {
        let _ = writeln!(o, "  Local Sig.: {}", yes_no(b));
    }
    if let Some(t) = f.u64("stopDelayUSec") {
        let _ = writeln!(o, "  Stop Delay: {}", format_timespan(t, 0));
    }
    if let Some(b) = f.bool("autoLogin") {
        let _ = writeln!(o, "Autom. Login: {}", yes_no(b));
    }
    if let Some(b) = f.bool("killProcesses") {
        let _ = writeln!(o, "  Kill Proc.: {}", yes_no(b));
    }
    if let Some(s) = f.status_str("service") {
        let _ = writeln!(o, "     Service: {s}");
    }
    o
}
