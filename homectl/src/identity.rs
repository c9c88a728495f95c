//! Building the record `create` and `update` send, step by step as systemd's homectl does, so
//! that the daemon receives the same JSON (same fields, same order) from either homectl.

use homed_shared::record::Secret;
use zeroize::Zeroizing;

use crate::ojson::OJson;
use crate::options::IdentityChanges;
use crate::units::now_usec;

/// Applies the command line's changes: filtered fields dropped, new values merged, per-machine
/// values put into a `perMachine` entry matching this machine, privileged values into
/// `privileged`.
pub fn apply_changes(v: &mut OJson, ch: &IdentityChanges, machine_id: &str) -> Result<(), String> {
    if !matches!(v, OJson::Object(_)) {
        *v = OJson::object();
    }
    v.filter(&ch.filter);
    v.merge(&ch.extra);
    let mid = OJson::string(machine_id);
    if !ch.this_machine.is_blank_object() || !ch.filter.is_empty() {
        let per_machine = match v.get("perMachine") {
            Some(OJson::Array(entries)) => {
                let mut kept = Vec::new();
                let mut add = OJson::object();
                for entry in entries {
                    if !matches!(entry, OJson::Object(_)) {
                        return Err("perMachine entry is not an object, refusing.".into());
                    }
                    if entry.get("matchMachineId") == Some(&mid) {
                        add.merge(entry);
                    } else {
                        kept.push(entry.clone());
                    }
                }
                add.filter(&ch.filter);
                add.merge(&ch.this_machine);
                if !ch.filter_rlimits.is_empty() || !ch.rlimits.is_blank_object() {
                    let mut limits = add.get("resourceLimits").cloned().unwrap_or_default();
                    limits.filter(&ch.filter_rlimits);
                    limits.merge(&ch.rlimits);
                    if limits.is_blank_object() {
                        add.remove("resourceLimits");
                    } else {
                        add.set("resourceLimits", limits);
                    }
                }
                if !add.is_blank_object() {
                    add.set("matchMachineId", mid.clone());
                    kept.push(add);
                }
                OJson::Array(kept)
            }
            Some(_) => return Err("perMachine field is not an array, refusing.".into()),
            None => {
                let mut item = OJson::object();
                item.merge(&ch.this_machine);
                if !ch.rlimits.is_blank_object() {
                    item.set("resourceLimits", ch.rlimits.clone());
                }
                item.set("matchMachineId", mid.clone());
                OJson::Array(vec![item])
            }
        };
        v.set("perMachine", per_machine);
    }
    if !ch.privileged.is_blank_object() || !ch.filter.is_empty() {
        let mut privileged = v.get("privileged").cloned().unwrap_or_else(OJson::object);
        privileged.filter(&ch.filter);
        privileged.merge(&ch.privileged);
        if privileged.is_blank_object() {
            v.remove("privileged");
        } else {
            v.set("privileged", privileged);
        }
    }
    // Only filtered here: new limits go into this machine's perMachine entry above.
    if !ch.filter_rlimits.is_empty() {
        let mut limits = v.get("resourceLimits").cloned().unwrap_or_default();
        limits.filter(&ch.filter_rlimits);
        if limits.is_blank_object() {
            v.remove("resourceLimits");
        } else {
            v.set("resourceLimits", limits);
        }
    }
    Ok(())
}

/// Sets `lastChangeUSec` (and `lastPasswordChangeUSec`): when missing, or always when
/// `overwrite` is set, refusing timestamps from the future.
pub fn update_last_change(
    v: &mut OJson,
    with_password: bool,
    overwrite: bool,
) -> Result<(), String> {
    let now = now_usec();
    let fields: &[&str] = if with_password {
        &["lastChangeUSec", "lastPasswordChangeUSec"]
    } else {
        &["lastChangeUSec"]
    };
    for field in fields {
        match v.get(field) {
            Some(existing) if !overwrite => {
                let _ = existing;
                continue;
            }
            Some(existing) => {
                let t = existing.as_u64().ok_or_else(|| {
                    format!("{field} field is not an unsigned integer, refusing.")
                })?;
                if t >= now {
                    return Err(format!("{field} is from the future, can't update."));
                }
            }
            None => {}
        }
        v.set(field, OJson::unsigned(now));
    }
    Ok(())
}

/// The text of a record with its secret section, in memory that is wiped after use.
pub fn with_secret(record: &OJson, secret: &Secret) -> Zeroizing<String> {
    let compact = record.to_compact();
    if secret.is_empty() {
        return Zeroizing::new(compact);
    }
    let body = compact.strip_suffix('}').unwrap_or(&compact);
    let secret_json = secret.to_json();
    let mut out = Zeroizing::new(String::with_capacity(body.len() + secret_json.len() + 16));
    out.push_str(body);
    if body != "{" {
        out.push(',');
    }
    out.push_str("\"secret\":");
    out.push_str(&secret_json);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MID: &str = "3d1219c7c4c5404aaa1f6d2a48adfda4";

    #[test]
    fn per_machine_entry_as_homectl_writes_it() {
        let mut ch = IdentityChanges::default();
        ch.extra.set("realName", OJson::string("T"));
        ch.this_machine.set("storage", OJson::string("directory"));
        let mut v = OJson::object();
        apply_changes(&mut v, &ch, MID).unwrap();
        assert_eq!(
            v.to_compact(),
            format!(
                r#"{{"realName":"T","perMachine":[{{"storage":"directory","matchMachineId":"{MID}"}}]}}"#
            )
        );
        // Updating replaces this machine's entry and keeps others.
        let mut v = OJson::parse(&format!(
            r#"{{"perMachine":[{{"matchMachineId":"{MID}","diskSize":5}},{{"matchHostname":"x","shell":"/bin/sh"}}]}}"#
        ))
        .unwrap();
        apply_changes(&mut v, &ch, MID).unwrap();
        assert_eq!(
            v.get("perMachine").unwrap().to_compact(),
            format!(
                r#"[{{"matchHostname":"x","shell":"/bin/sh"}},{{"diskSize":5,"storage":"directory","matchMachineId":"{MID}"}}]"#
            )
        );
    }

    #[test]
    fn last_change_refuses_the_future() {
        let mut v = OJson::parse(r#"{"lastChangeUSec":99999999999999999}"#).unwrap();
        assert!(update_last_change(&mut v, false, true).is_err());
        update_last_change(&mut v, true, false).unwrap();
        assert!(v.get("lastPasswordChangeUSec").is_some());
    }

    #[test]
    fn secret_goes_last() {
        let v = OJson::parse(r#"{"userName":"a"}"#).unwrap();
        let s = Secret::parse(br#"{"password":["p"]}"#).unwrap();
        assert_eq!(
            with_secret(&v, &s).as_str(),
            r#"{"userName":"a","secret":{"password":["p"]}}"#
        );
    }
}
