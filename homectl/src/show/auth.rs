//! Authentication: counters and rate limit, password policy, and the credentials the record holds.

use std::fmt::Write as _;

use serde_json::Value;

use super::*;

/// From "Good Auth." to "Pas. Ch. Now".
pub(super) fn authentication(o: &mut String, r: &Ctx<'_>) {
    let (v, f, now, storage, red, normal) =
        (r.v, &r.f, r.now, r.storage, r.colors.red, r.colors.normal);
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
    if let Some(t) = next_try(f) {
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
}

/// SSH keys, tokens, recovery keys, passwords and the local signature.
pub(super) fn credentials(o: &mut String, r: &Ctx<'_>) {
    let (v, f, hashes, yellow, normal) = (r.v, &r.f, &r.hashes, r.colors.yellow, r.colors.normal);
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
}
