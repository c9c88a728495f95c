//! Where the home lives and how much room it has: mount and LUKS settings, sizes, and the
//! free-space policy.

use std::fmt::Write as _;

use serde_json::Value;

use super::*;

/// From "Access Mode" to "Disk Ceiling".
pub(super) fn storage(o: &mut String, r: &Ctx<'_>) {
    let (v, f, storage, red, yellow, normal) = (
        r.v,
        &r.f,
        r.storage,
        r.colors.red,
        r.colors.yellow,
        r.colors.normal,
    );
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
}

/// Cache dropping, auto-resize and rebalancing.
pub(super) fn space_policy(o: &mut String, r: &Ctx<'_>) {
    let (v, f, storage) = (r.v, &r.f, r.storage);
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
}
