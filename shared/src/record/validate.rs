//! What homed accepts as a home (homed-spec §1.9): the name, the UID, the disposition, the
//! storage. Each refusal names the field and the rule.

use super::{HOMED_SERVICE, RecordError, RecordView, Storage, names};

/// The range homed allocates UIDs from.
pub const HOME_UID_MIN: u32 = 60001;
pub const HOME_UID_MAX: u32 = 60513;

/// Debian's compile-time names of the overflow user and group.
const NOBODY_NAMES: [&str; 3] = ["nobody", "nogroup", "nfsnobody"];

/// Checks a record against homed's rules for homes it manages (`user_record_is_supported`,
/// `suitable_user_name`, `suitable_home_record`). `require_uid` is false for records a client
/// sends before a UID has been allocated.
pub fn check_suitable_for_homed(
    view: &RecordView<'_>,
    require_uid: bool,
) -> Result<(), RecordError> {
    let name = view.user_name();
    if !names::is_valid_strict(name) {
        return Err(RecordError::field(
            "userName",
            "must start with a letter or '_', contain only letters, digits, '_' and '-', and be at most 31 characters",
        ));
    }
    if name == "root" || NOBODY_NAMES.contains(&name) {
        return Err(RecordError::field(
            "userName",
            "must not name root or the nobody user",
        ));
    }
    if name.starts_with("systemd-") || name.starts_with('_') {
        return Err(RecordError::field(
            "userName",
            "must not start with \"systemd-\" or '_', which are reserved for system users",
        ));
    }
    if let Some(realm) = view.record().realm()
        && (realm.is_empty() || realm == "." || realm.ends_with('.') || realm.contains(".."))
    {
        return Err(RecordError::field(
            "realm",
            "must be a normalized DNS domain name",
        ));
    }
    match view.get("disposition").and_then(|d| d.as_str()) {
        None | Some("regular") => {}
        Some(_) => {
            return Err(RecordError::field(
                "disposition",
                "must be \"regular\" for a home",
            ));
        }
    }
    if let Some(storage) = view.storage_name() {
        match Storage::parse(storage) {
            Some(
                Storage::Luks
                | Storage::Directory
                | Storage::Subvolume
                | Storage::Fscrypt
                | Storage::Cifs,
            ) => {}
            _ => {
                return Err(RecordError::field(
                    "storage",
                    "must be one of luks, directory, subvolume, fscrypt or cifs",
                ));
            }
        }
    }
    if let Some(service) = view.service()
        && service != HOMED_SERVICE
    {
        return Err(RecordError::field(
            "service",
            format!("must be unset or \"{HOMED_SERVICE}\""),
        ));
    }
    if view.get("blobDirectory").is_some() {
        return Err(RecordError::field(
            "blobDirectory",
            "must not be supplied by clients",
        ));
    }
    if view
        .record()
        .json()
        .contains_key("__systemd_homework_internal_blob_fdmap")
    {
        return Err(RecordError::field(
            "__systemd_homework_internal_blob_fdmap",
            "is internal and must not be supplied",
        ));
    }
    let uid = view.get("uid").and_then(|v| v.as_u64());
    match uid {
        None if require_uid => return Err(RecordError::field("uid", "is required")),
        None => {}
        Some(uid) => check_uid("uid", uid)?,
    }
    if let Some(gid) = view.get("gid").and_then(|v| v.as_u64()) {
        check_uid("gid", gid)?;
        if Some(gid) != uid {
            return Err(RecordError::field(
                "gid",
                "must equal uid (the per-user group)",
            ));
        }
    }
    Ok(())
}

fn check_uid(field: &str, id: u64) -> Result<(), RecordError> {
    let rule = match id {
        0..=999 => "must not be a system ID (0-999)",
        60578..=60705 => "must not be in the greeter range (60578-60705)",
        61184..=65519 => "must not be in the dynamic range (61184-65519)",
        65534 | 65535 => "must not be the nobody ID or an invalid ID",
        id if id >= u64::from(u32::MAX) => "must be below 4294967295",
        _ => return Ok(()),
    };
    Err(RecordError::field(field, rule))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{MachineContext, RecordOrigin, UserRecord};

    fn check(json: &str) -> Result<(), RecordError> {
        let r = UserRecord::parse(json.as_bytes(), RecordOrigin::Request)?;
        let m = MachineContext::new("3d1219c7c4c5404aaa1f6d2a48adfda4", None);
        check_suitable_for_homed(&r.view(&m), true)
    }

    fn rule_for(json: &str) -> (String, String) {
        match check(json).unwrap_err() {
            RecordError::InvalidField { field, rule } => (field, rule),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn accepts_a_plain_home() {
        check(r#"{"userName":"alice","uid":60100,"gid":60100,"disposition":"regular","storage":"directory"}"#)
            .unwrap();
    }

    #[test]
    fn refusals_name_field_and_rule() {
        assert_eq!(rule_for(r#"{"userName":"root","uid":60100}"#).0, "userName");
        assert_eq!(
            rule_for(r#"{"userName":"systemd-x","uid":60100}"#).0,
            "userName"
        );
        assert_eq!(rule_for(r#"{"userName":"a.b","uid":60100}"#).0, "userName");
        assert_eq!(
            rule_for(r#"{"userName":"u","uid":500}"#),
            ("uid".into(), "must not be a system ID (0-999)".into())
        );
        assert_eq!(rule_for(r#"{"userName":"u","uid":61200}"#).0, "uid");
        assert_eq!(rule_for(r#"{"userName":"u","uid":60600}"#).0, "uid");
        assert_eq!(
            rule_for(r#"{"userName":"u"}"#),
            ("uid".into(), "is required".into())
        );
        assert_eq!(
            rule_for(r#"{"userName":"u","uid":60100,"gid":60101}"#).0,
            "gid"
        );
        assert_eq!(
            rule_for(r#"{"userName":"u","uid":60100,"disposition":"system"}"#).0,
            "disposition"
        );
        assert_eq!(
            rule_for(r#"{"userName":"u","uid":60100,"storage":"classic"}"#).0,
            "storage"
        );
        assert_eq!(
            rule_for(r#"{"userName":"u","uid":60100,"storage":"tape"}"#).0,
            "storage"
        );
        assert_eq!(
            rule_for(r#"{"userName":"u","uid":60100,"service":"x"}"#).0,
            "service"
        );
        assert_eq!(
            rule_for(r#"{"userName":"u","uid":60100,"blobDirectory":"/x"}"#).0,
            "blobDirectory"
        );
    }
}
