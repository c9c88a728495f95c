//! The account's settings: directory, storage kind, shell, contact fields, validity, resource
//! limits and the session's behaviour.

use std::fmt::Write as _;

use serde_json::Value;

use super::*;

/// From "Real Name" to "Nice".
pub(super) fn settings(o: &mut String, r: &Ctx<'_>) {
    let (v, f, user, storage, shell) = (r.v, &r.f, r.user, r.storage, &r.shell);
    if let Some(real) = f.str("realName")
        && real != user
    {
        let _ = writeln!(o, "   Real Name: {real}");
    }
    let home = v.home_directory();
    let _ = writeln!(o, "   Directory: {home}");
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
}

/// Resource limits and cgroup settings.
pub(super) fn resources(o: &mut String, r: &Ctx<'_>) {
    let (v, f) = (r.v, &r.f);
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
}

/// How sessions end and start.
pub(super) fn session(o: &mut String, r: &Ctx<'_>) {
    let f = &r.f;
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
}
