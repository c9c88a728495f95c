//! Type checks for the sections and the fields this project reads, applied at load time so that
//! accessors can trust what they find.

use serde_json::{Map, Value};

use super::{RecordError, names};

/// Fields a `binding` entry may hold (homed-spec §1.5).
pub const BINDING_FIELDS: [&str; 13] = [
    "blobDirectory",
    "imagePath",
    "homeDirectory",
    "partitionUuid",
    "luksUuid",
    "fileSystemUuid",
    "uid",
    "gid",
    "storage",
    "fileSystemType",
    "luksCipher",
    "luksCipherMode",
    "luksVolumeKeySize",
];

/// Regular fields a `perMachine` entry may not override (homed-spec §1.4).
pub const PER_MACHINE_FORBIDDEN_FIELDS: [&str; 13] = [
    "userName",
    "realm",
    "aliases",
    "uuid",
    "realName",
    "emailAddress",
    "birthDate",
    "disposition",
    "lastChangeUSec",
    "lastPasswordChangeUSec",
    "homeDirectory",
    "service",
    "recoveryKeyType",
];

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Unsigned,
    Uid,
    Strings,
    AbsolutePath,
    Mode,
}

/// Known fields and the type each must have wherever it appears.
fn kind_of(field: &str) -> Option<Kind> {
    use Kind::*;
    Some(match field {
        "realName"
        | "emailAddress"
        | "iconName"
        | "location"
        | "disposition"
        | "service"
        | "storage"
        | "fileSystemType"
        | "timeZone"
        | "preferredLanguage"
        | "realm"
        | "partitionUuid"
        | "luksUuid"
        | "fileSystemUuid"
        | "luksCipher"
        | "luksCipherMode"
        | "luksPbkdfHashAlgorithm"
        | "luksPbkdfType"
        | "passwordHint" => Str,
        "locked"
        | "passwordChangeNow"
        | "enforcePasswordPolicy"
        | "mountNoDevices"
        | "mountNoSuid"
        | "mountNoExecute"
        | "autoLogin"
        | "luksDiscard"
        | "luksOfflineDiscard"
        | "dropCaches"
        | "killProcesses" => Bool,
        "lastChangeUSec"
        | "lastPasswordChangeUSec"
        | "notBeforeUSec"
        | "notAfterUSec"
        | "passwordChangeMinUSec"
        | "passwordChangeMaxUSec"
        | "passwordChangeWarnUSec"
        | "passwordChangeInactiveUSec"
        | "rateLimitIntervalUSec"
        | "rateLimitBurst"
        | "diskSize"
        | "luksVolumeKeySize"
        | "luksPbkdfTimeCostUSec"
        | "luksPbkdfMemoryCost"
        | "luksPbkdfParallelThreads"
        | "luksSectorSize" => Unsigned,
        "uid" | "gid" => Uid,
        "memberOf" | "hashedPassword" | "environment" | "aliases" => Strings,
        "homeDirectory" | "imagePath" | "shell" | "skeletonDirectory" => AbsolutePath,
        "accessMode" | "umask" => Mode,
        _ => return None,
    })
}

fn check_field(field: &str, value: &Value) -> Result<(), RecordError> {
    let Some(kind) = kind_of(field) else {
        return Ok(());
    };
    let fail = |rule: &str| Err(RecordError::field(field, rule));
    match kind {
        Kind::Str if !value.is_string() => fail("must be a string"),
        Kind::Bool if !value.is_boolean() => fail("must be a boolean"),
        Kind::Unsigned if !value.is_u64() => fail("must be an unsigned integer"),
        Kind::Uid => match value.as_u64() {
            // 65535 and 2^32-1 are the invalid markers of the 16- and 32-bit ABIs.
            Some(n) if n < u64::from(u32::MAX) && n != 65535 => Ok(()),
            _ => fail("must be an integer between 0 and 4294967294, other than 65535"),
        },
        Kind::Strings => match value.as_array() {
            Some(items) if items.iter().all(Value::is_string) => Ok(()),
            _ => fail("must be an array of strings"),
        },
        Kind::AbsolutePath => match value.as_str() {
            Some(p) if p.starts_with('/') && !p.chars().any(char::is_control) => Ok(()),
            _ => fail("must be an absolute path without control characters"),
        },
        Kind::Mode => match value.as_u64() {
            Some(n) if n <= 0o7777 => Ok(()),
            _ => fail("must be a file mode between 0 and 07777"),
        },
        _ => Ok(()),
    }
}

fn check_object_fields(map: &Map<String, Value>, prefix: &str) -> Result<(), RecordError> {
    for (key, value) in map {
        check_field(key, value).map_err(|e| match e {
            RecordError::InvalidField { field, rule } => {
                RecordError::field(format!("{prefix}{field}"), rule)
            }
            other => other,
        })?;
    }
    Ok(())
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, RecordError> {
    value
        .as_object()
        .ok_or_else(|| RecordError::field(what, "must be a JSON object"))
}

fn check_string_or_strings(value: &Value, what: &str) -> Result<(), RecordError> {
    let ok = value.is_string()
        || value
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string));
    if ok {
        Ok(())
    } else {
        Err(RecordError::field(
            what,
            "must be a string or an array of strings",
        ))
    }
}

/// Checks a whole record object: `userName`, the sections' shapes and the known fields.
pub(super) fn check_record(json: &Map<String, Value>) -> Result<(), RecordError> {
    let name = match json.get("userName") {
        Some(Value::String(name)) => name,
        Some(_) => return Err(RecordError::field("userName", "must be a string")),
        None => return Err(RecordError::field("userName", "is required")),
    };
    if let Some(rule) = names::relaxed_violation(name) {
        return Err(RecordError::field("userName", rule));
    }
    if let Some(Value::Array(members)) = json.get("memberOf") {
        for group in members.iter().filter_map(Value::as_str) {
            if let Some(rule) = names::relaxed_violation(group) {
                return Err(RecordError::field(
                    "memberOf",
                    format!("entry \"{group}\" {rule}"),
                ));
            }
        }
    }
    check_object_fields(json, "")?;
    super::credentials::check_public(json, "")?;

    if let Some(privileged) = json.get("privileged") {
        let privileged = object(privileged, "privileged")?;
        check_object_fields(privileged, "privileged.")?;
        super::credentials::check_privileged(privileged)?;
    }
    if let Some(per_machine) = json.get("perMachine") {
        let entries = per_machine
            .as_array()
            .ok_or_else(|| RecordError::field("perMachine", "must be an array of objects"))?;
        for (i, entry) in entries.iter().enumerate() {
            let what = format!("perMachine[{i}]");
            let entry = object(entry, &what)?;
            for key in [
                "matchMachineId",
                "matchNotMachineId",
                "matchHostname",
                "matchNotHostname",
            ] {
                if let Some(v) = entry.get(key) {
                    check_string_or_strings(v, &format!("{what}.{key}"))?;
                }
            }
            if let Some(key) = PER_MACHINE_FORBIDDEN_FIELDS
                .iter()
                .find(|k| entry.contains_key(**k))
            {
                return Err(RecordError::field(
                    format!("{what}.{key}"),
                    "may not be set per machine",
                ));
            }
            check_object_fields(entry, &format!("{what}."))?;
            super::credentials::check_public(entry, &format!("{what}."))?;
        }
    }
    for section in ["binding", "status"] {
        if let Some(value) = json.get(section) {
            for (machine, entry) in object(value, section)? {
                let what = format!("{section}.{machine}");
                let entry = object(entry, &what)?;
                if section == "binding" {
                    check_object_fields(entry, &format!("{what}."))?;
                }
            }
        }
    }
    if let Some(signature) = json.get("signature") {
        let entries = signature
            .as_array()
            .ok_or_else(|| RecordError::field("signature", "must be an array"))?;
        for (i, entry) in entries.iter().enumerate() {
            let entry = object(entry, &format!("signature[{i}]"))?;
            if !entry.get("data").is_some_and(Value::is_string) {
                return Err(RecordError::field(
                    format!("signature[{i}].data"),
                    "is required and must be a string",
                ));
            }
        }
    }
    if let Some(secret) = json.get("secret") {
        object(secret, "secret")?;
    }
    Ok(())
}
