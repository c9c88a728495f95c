//! Who the user is and whether they may log in: name, state, disposition, changes, login and
//! password state, ids and groups.

use std::fmt::Write as _;

use serde_json::Value;

use super::*;

/// From "User name" to "Aux. Groups".
pub(super) fn who(o: &mut String, r: &Ctx<'_>) {
    let (v, f, now, user, shell, hashes, incomplete, red, green, yellow, bold, normal) = (
        r.v,
        &r.f,
        r.now,
        r.user,
        &r.shell,
        &r.hashes,
        r.incomplete,
        r.colors.red,
        r.colors.green,
        r.colors.yellow,
        r.colors.bold,
        r.colors.normal,
    );
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
    } else if next_try(f).is_some_and(|t| t > now) {
        let _ = writeln!(o, "    Login OK: {red}no{normal} (ratelimit)");
    } else {
        let _ = writeln!(o, "    Login OK: {green}yes{normal}");
    }

    use homed_shared::record::policy::PasswordState;
    match password_state(f) {
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
}
