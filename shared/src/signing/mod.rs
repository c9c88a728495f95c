//! Ed25519 signatures over user records and the trust decision (homed-spec §2).

mod keys;
mod trust;

pub use keys::{KeyError, PublicKey, SigningKey};
pub use trust::{KEY_DIRECTORIES, TrustVerdict, TrustedKeys};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use crate::record::{RecordError, UserRecord};

/// How a record's signatures relate to one key (`user_record_verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    /// At least one entry verifies with the key and none fails.
    SignedExclusive,
    /// At least one entry verifies and at least one does not.
    Signed,
    /// No entry verifies.
    Foreign,
    /// The record has no signature.
    Unsigned,
}

/// Signs `record` with `key`, replacing any earlier signatures (homed keeps exactly one).
pub fn sign_record(record: &mut UserRecord, key: &SigningKey) {
    let signature = key.sign(record.signed_text().as_bytes());
    let mut entry = Map::new();
    entry.insert("data".into(), Value::String(BASE64.encode(signature)));
    entry.insert("key".into(), Value::String(key.public_key().to_pem()));
    record
        .json_mut()
        .insert("signature".into(), Value::Array(vec![Value::Object(entry)]));
}

/// Checks every signature of `record` against `key`. The `key` strings embedded in the record
/// are informational only and never decide trust.
pub fn check_signature(
    record: &UserRecord,
    key: &PublicKey,
) -> Result<SignatureCheck, RecordError> {
    let Some(entries) = record.signatures().filter(|s| !s.is_empty()) else {
        return Ok(SignatureCheck::Unsigned);
    };
    let text = record.signed_text();
    let (mut good, mut bad) = (0usize, 0usize);
    for (i, entry) in entries.iter().enumerate() {
        let data =
            entry
                .get("data")
                .and_then(Value::as_str)
                .ok_or_else(|| RecordError::InvalidField {
                    field: format!("signature[{i}].data"),
                    rule: "is required and must be a string".into(),
                })?;
        let verified = BASE64
            .decode(data)
            .ok()
            .is_some_and(|sig| key.verify(text.as_bytes(), &sig));
        if verified {
            good += 1;
        } else {
            bad += 1;
        }
    }
    Ok(match (good, bad) {
        (0, _) => SignatureCheck::Foreign,
        (_, 0) => SignatureCheck::SignedExclusive,
        _ => SignatureCheck::Signed,
    })
}
