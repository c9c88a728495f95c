//! The resolved record and its signature: what the files hold and how a reader checks them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use crate::json::{parse_strict, to_canonical_string};
use crate::record::{HOMED_SERVICE, RecordOrigin, RecordView, UserRecord};
use crate::signing::{PublicKey, SigningKey};

/// Sections that never appear in a published record: everything machine-specific is folded into
/// the top level, so the signature covers all of it.
const FOLDED_SECTIONS: [&str; 6] = [
    "perMachine",
    "binding",
    "status",
    "signature",
    "secret",
    "privileged",
];

/// Why a record cannot be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the record of {0} has no UID on this machine")]
    NoUid(String),
    #[error("{0} is not a user name that can be published")]
    BadName(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The record as this machine sees it, with every effective value at the top level: perMachine
/// and binding applied, `uid`, `gid` and `homeDirectory` explicit, `service` set. The privileged
/// section is kept; [`public_part`] drops it.
pub fn resolve(view: &RecordView<'_>) -> Result<UserRecord, PublishError> {
    let record = view.record();
    let name = record.user_name().to_owned();
    let uid = view
        .uid()
        .ok_or_else(|| PublishError::NoUid(name.clone()))?;
    let mut keys: Vec<&str> = record.json().keys().map(String::as_str).collect();
    if let Some(entries) = record.json().get("perMachine").and_then(Value::as_array) {
        for entry in entries.iter().filter_map(Value::as_object) {
            keys.extend(entry.keys().map(String::as_str));
        }
    }
    if let Some(binding) = view.binding() {
        keys.extend(binding.keys().map(String::as_str));
    }
    let mut json = Map::new();
    for key in keys {
        if FOLDED_SECTIONS.contains(&key) || key.starts_with("match") {
            continue;
        }
        if let Some(value) = view.get(key) {
            json.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(privileged) = record.json().get("privileged") {
        json.insert("privileged".into(), privileged.clone());
    }
    json.insert("uid".into(), Value::from(uid));
    json.insert("gid".into(), Value::from(view.gid().unwrap_or(uid)));
    json.insert("homeDirectory".into(), Value::String(view.home_directory()));
    json.insert("service".into(), Value::String(HOMED_SERVICE.into()));
    UserRecord::from_value(Value::Object(json), RecordOrigin::Host)
        .map_err(|_| PublishError::BadName(name))
}

/// The resolved record without its privileged section.
pub fn public_part(resolved: &UserRecord) -> UserRecord {
    resolved.without_privileged().0
}

/// The file text of a published record: signed with `key`, canonical compact JSON, one line.
/// The signature entry carries only `data`, so that every byte of the file is covered either by
/// the signature or by the canonical-form check.
pub fn signed_text(record: &UserRecord, key: &SigningKey) -> String {
    let mut record = record.clone();
    record.json_mut().remove("signature");
    let signature = key.sign(record.signed_text().as_bytes());
    let mut entry = Map::new();
    entry.insert("data".into(), Value::String(BASE64.encode(signature)));
    record
        .json_mut()
        .insert("signature".into(), Value::Array(vec![Value::Object(entry)]));
    let mut text = to_canonical_string(&record.into_value());
    text.push('\n');
    text
}

/// Checks the text of a published record: canonical form, one signature made by `key` over
/// everything else, the resolved shape and `service`. Returns the record without its signature.
pub fn verify_text(text: &[u8], key: &PublicKey) -> Option<UserRecord> {
    let body = text.strip_suffix(b"\n")?;
    let value = parse_strict(body).ok()?;
    if to_canonical_string(&value).as_bytes() != body {
        return None;
    }
    let Value::Object(mut json) = value else {
        return None;
    };
    let Some(Value::Array(signatures)) = json.remove("signature") else {
        return None;
    };
    let [Value::Object(entry)] = signatures.as_slice() else {
        return None;
    };
    if entry.len() != 1 {
        return None;
    }
    let data = BASE64.decode(entry.get("data")?.as_str()?).ok()?;
    if ["perMachine", "binding", "status", "secret"]
        .iter()
        .any(|s| json.contains_key(*s))
    {
        return None;
    }
    if json.get("service").and_then(Value::as_str) != Some(HOMED_SERVICE) {
        return None;
    }
    // What was signed: the record without `signature` (none of the other unsigned sections is
    // present, as checked above), in canonical form — the same text as
    // `UserRecord::signed_text`, written once instead of from a copy.
    let value = Value::Object(json);
    if !key.verify(to_canonical_string(&value).as_bytes(), &data) {
        return None;
    }
    UserRecord::from_value(value, RecordOrigin::Host).ok()
}
