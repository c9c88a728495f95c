//! JSON user records (homed-spec §1): parsing with the section rules of each origin, the
//! per-machine view, and the canonical text signatures cover.

mod credentials;
mod error;
mod fields;
mod machine;
pub mod names;
pub mod policy;
mod secret;
mod validate;
mod view;
pub use credentials::FIDO2_CREDENTIAL_ID_MAX;

use serde_json::{Map, Value};

pub use error::RecordError;
pub use fields::{BINDING_FIELDS, PER_MACHINE_FORBIDDEN_FIELDS};
pub use machine::{MachineContext, is_machine_id};
pub use secret::Secret;
pub use validate::{HOME_UID_MAX, HOME_UID_MIN, check_suitable_for_homed};
pub use view::{Disposition, RecordView, Storage, home_root};

use crate::json::{parse_strict, to_canonical_string, to_pretty_string};

/// The service name homed puts in every record it serves.
pub const HOMED_SERVICE: &str = "io.systemd.Home";

/// Where a record came from, which decides the sections it may carry (homed-spec §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOrigin {
    /// `~/.identity` or the LUKS header token: no `binding`, `status` or `secret`.
    Embedded,
    /// A host record (`/var/lib/systemd/home/NAME.identity`) or a record served over IPC:
    /// everything but `secret`.
    Host,
    /// A record a client sends to create or update a home: `secret` allowed, no `binding`
    /// or `status`.
    Request,
}

impl RecordOrigin {
    fn describe(self) -> &'static str {
        match self {
            RecordOrigin::Embedded => "an embedded record",
            RecordOrigin::Host => "a host record",
            RecordOrigin::Request => "a record sent by a client",
        }
    }

    fn refuses(self, section: &str) -> bool {
        match self {
            RecordOrigin::Embedded => matches!(section, "binding" | "status" | "secret"),
            RecordOrigin::Host => section == "secret",
            RecordOrigin::Request => matches!(section, "binding" | "status"),
        }
    }
}

/// Sections that are never part of the signed text.
const UNSIGNED_SECTIONS: [&str; 4] = ["secret", "binding", "status", "signature"];

/// A parsed user record. The JSON is kept whole, unknown fields included, because the signature
/// covers them: a record must survive a round trip byte for byte.
#[derive(Clone, PartialEq)]
pub struct UserRecord {
    json: Map<String, Value>,
}

// Hand-written so that a record carrying a `secret` section never prints it.
impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("userName", &self.user_name())
            .field("has_secret", &self.json.contains_key("secret"))
            .finish_non_exhaustive()
    }
}

impl UserRecord {
    /// Parses and checks a record from its JSON text.
    pub fn parse(bytes: &[u8], origin: RecordOrigin) -> Result<Self, RecordError> {
        Self::from_value(parse_strict(bytes)?, origin)
    }

    /// Checks a record already in memory (for example one that arrived inside a varlink reply).
    pub fn from_value(value: Value, origin: RecordOrigin) -> Result<Self, RecordError> {
        let Value::Object(json) = value else {
            return Err(RecordError::Malformed(
                "a user record must be a JSON object".into(),
            ));
        };
        for section in ["secret", "binding", "status"] {
            if json.contains_key(section) && origin.refuses(section) {
                return Err(RecordError::SectionNotAllowed {
                    section: match section {
                        "secret" => "secret",
                        "binding" => "binding",
                        _ => "status",
                    },
                    context: origin.describe(),
                });
            }
        }
        fields::check_record(&json)?;
        Ok(UserRecord { json })
    }

    /// The record's `userName`; parsing guarantees it is there and valid.
    pub fn user_name(&self) -> &str {
        self.json
            .get("userName")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The record's `realm`, if any.
    pub fn realm(&self) -> Option<&str> {
        self.json.get("realm").and_then(Value::as_str)
    }

    /// The whole JSON object.
    pub fn json(&self) -> &Map<String, Value> {
        &self.json
    }

    /// Mutable access for code that builds or updates records; call [`UserRecord::recheck`]
    /// afterwards if the change came from outside.
    pub fn json_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.json
    }

    /// Runs the load checks again after an edit.
    pub fn recheck(&self, origin: RecordOrigin) -> Result<(), RecordError> {
        Self::from_value(Value::Object(self.json.clone()), origin).map(|_| ())
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.json)
    }

    pub fn to_value(&self) -> Value {
        Value::Object(self.json.clone())
    }

    /// Compact text with sorted keys (all sections kept).
    pub fn to_compact_string(&self) -> String {
        to_canonical_string(&Value::Object(self.json.clone()))
    }

    /// Tab-indented text with a final newline, as homed writes `.identity` files.
    pub fn to_pretty_string(&self) -> String {
        let mut text = to_pretty_string(&Value::Object(self.json.clone()));
        text.push('\n');
        text
    }

    /// The exact bytes the signature covers (homed-spec §2.1): the record without `secret`,
    /// `binding`, `status` and `signature`, keys sorted, compact.
    pub fn signed_text(&self) -> String {
        let mut stripped = self.json.clone();
        for section in UNSIGNED_SECTIONS {
            stripped.remove(section);
        }
        to_canonical_string(&Value::Object(stripped))
    }

    /// The copy that lives inside the home (`~/.identity`, LUKS token): regular, privileged,
    /// perMachine and signature only.
    pub fn embedded_copy(&self) -> UserRecord {
        let mut json = self.json.clone();
        for section in ["secret", "binding", "status"] {
            json.remove(section);
        }
        UserRecord { json }
    }

    /// The record as an unprivileged caller may see it: without the privileged section and the
    /// secret. Returns whether anything was removed (homed's `incomplete`).
    pub fn without_privileged(&self) -> (UserRecord, bool) {
        let mut json = self.json.clone();
        json.remove("secret");
        let removed = json.remove("privileged").is_some();
        (UserRecord { json }, removed)
    }

    /// Takes the `secret` section out of the record.
    pub fn take_secret(&mut self) -> Result<Option<Secret>, RecordError> {
        match self.json.remove("secret") {
            None => Ok(None),
            Some(value) => Secret::from_value(value).map(Some),
        }
    }

    /// The record as seen on `machine`: `perMachine`, `binding` and `status` applied.
    pub fn view<'a>(&'a self, machine: &'a MachineContext) -> RecordView<'a> {
        RecordView::new(self, machine)
    }

    /// The `signature` array, if present.
    pub fn signatures(&self) -> Option<&Vec<Value>> {
        self.json.get("signature").and_then(Value::as_array)
    }

    /// True when the record has no `signature` entries.
    pub fn is_unsigned(&self) -> bool {
        self.signatures().is_none_or(|s| s.is_empty())
    }

    /// Sets `binding[machine_id]`, replacing what was there.
    pub fn set_binding(&mut self, machine_id: &str, binding: Map<String, Value>) {
        let section = self
            .json
            .entry("binding")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(map) = section {
            map.insert(machine_id.to_owned(), Value::Object(binding));
        }
    }

    /// Sets `diskSize` for `machine_id` as systemd-homed's resize does: in the `perMachine`
    /// entry that names exactly this machine (the last such one, as long as no broader
    /// entry for it follows), else in a new entry `{"matchMachineId": [ID]}` at the end.
    pub fn set_disk_size_for(&mut self, machine_id: &str, size: u64) {
        let exact = |m: &Value| match m {
            Value::String(s) => s.eq_ignore_ascii_case(machine_id),
            Value::Array(a) => {
                a.len() == 1
                    && a[0]
                        .as_str()
                        .is_some_and(|s| s.eq_ignore_ascii_case(machine_id))
            }
            _ => false,
        };
        let entries = match self.json.get_mut("perMachine") {
            Some(Value::Array(entries)) => entries,
            _ => {
                self.json
                    .insert("perMachine".into(), Value::Array(Vec::new()));
                match self.json.get_mut("perMachine") {
                    Some(Value::Array(entries)) => entries,
                    _ => return,
                }
            }
        };
        let mut at = None;
        for (i, entry) in entries.iter().enumerate() {
            match entry.get("matchMachineId") {
                None => at = None,
                Some(m) if exact(m) => at = Some(i),
                Some(m) if view::any_matches(Some(m), Some(machine_id)) == Some(true) => at = None,
                Some(_) => {}
            }
        }
        let i = at.unwrap_or_else(|| {
            let mut entry = Map::new();
            entry.insert(
                "matchMachineId".into(),
                Value::Array(vec![Value::String(machine_id.to_owned())]),
            );
            entries.push(Value::Object(entry));
            entries.len() - 1
        });
        if let Some(Value::Object(entry)) = entries.get_mut(i) {
            entry.insert("diskSize".into(), Value::from(size));
        }
    }

    /// Sets `status[machine_id]`, replacing what was there.
    pub fn set_status(&mut self, machine_id: &str, status: Map<String, Value>) {
        let section = self
            .json
            .entry("status")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(map) = section {
            map.insert(machine_id.to_owned(), Value::Object(status));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_follow_origin() {
        let with = |s: &str| format!(r#"{{"userName":"u","{s}":{{}}}}"#);
        for s in ["binding", "status", "secret"] {
            assert!(UserRecord::parse(with(s).as_bytes(), RecordOrigin::Embedded).is_err());
        }
        assert!(UserRecord::parse(with("binding").as_bytes(), RecordOrigin::Host).is_ok());
        let err = UserRecord::parse(with("secret").as_bytes(), RecordOrigin::Host).unwrap_err();
        assert_eq!(
            err.to_string(),
            "user record carries a \"secret\" section, which is not allowed in a host record"
        );
        assert!(UserRecord::parse(with("secret").as_bytes(), RecordOrigin::Request).is_ok());
        assert!(UserRecord::parse(with("status").as_bytes(), RecordOrigin::Request).is_err());
    }

    #[test]
    fn refuses_non_objects_and_missing_names() {
        assert!(matches!(
            UserRecord::parse(b"[1]", RecordOrigin::Host),
            Err(RecordError::Malformed(_))
        ));
        let err = UserRecord::parse(b"{}", RecordOrigin::Host).unwrap_err();
        assert!(err.to_string().contains("userName"), "{err}");
    }

    #[test]
    fn debug_never_prints_secrets() {
        let r = UserRecord::parse(
            br#"{"userName":"u","secret":{"password":["hunter2"]}}"#,
            RecordOrigin::Request,
        )
        .unwrap();
        assert!(!format!("{r:?}").contains("hunter2"));
    }

    #[test]
    fn disk_size_goes_into_this_machines_own_entry_as_252_puts_it() {
        const MID: &str = "3d1219c7c4c5404aaa1f6d2a48adfda4";
        let sized = |json: &str| {
            let mut r = UserRecord::parse(json.as_bytes(), RecordOrigin::Host).unwrap();
            r.set_disk_size_for(MID, 128);
            serde_json::to_value(r.json()).unwrap()["perMachine"].clone()
        };
        // No entries: a new one naming this machine.
        assert_eq!(
            sized(r#"{"userName":"u"}"#),
            serde_json::json!([{"matchMachineId": [MID], "diskSize": 128}])
        );
        // The exact entry is updated in place, others kept.
        let exact = format!(
            r#"{{"userName":"u","perMachine":[{{"matchHostname":"x","shell":"/bin/x"}},{{"matchMachineId":"{MID}","diskSize":64,"storage":"subvolume"}}]}}"#
        );
        assert_eq!(
            sized(&exact),
            serde_json::json!([
                {"matchHostname": "x", "shell": "/bin/x"},
                {"matchMachineId": MID, "diskSize": 128, "storage": "subvolume"}
            ])
        );
        // An entry without a machine ID after it might override it: as 252, a new entry.
        let later = format!(
            r#"{{"userName":"u","perMachine":[{{"matchMachineId":"{MID}","diskSize":64}},{{"matchHostname":"x"}}]}}"#
        );
        assert_eq!(
            sized(&later)[2],
            serde_json::json!({"matchMachineId": [MID], "diskSize": 128})
        );
        // A broader entry after the exact one would override it: a new entry goes last.
        let broader = format!(
            r#"{{"userName":"u","perMachine":[{{"matchMachineId":"{MID}","diskSize":64}},{{"matchMachineId":["{MID}","0123456789abcdef0123456789abcdef"],"diskSize":32}}]}}"#
        );
        let entries = sized(&broader);
        assert_eq!(entries[0]["diskSize"], 64);
        assert_eq!(entries[1]["diskSize"], 32);
        assert_eq!(
            entries[2],
            serde_json::json!({"matchMachineId": [MID], "diskSize": 128})
        );
    }
}
