//! The shapes of the unlock credentials a record carries (homed-spec §1.3): security tokens'
//! public halves at the top level (`pkcs11TokenUri`, `fido2HmacCredential`) and their secret
//! halves in `privileged` (`pkcs11EncryptedKey`, `fido2HmacSalt`, `recoveryKey`). systemd reads
//! every entry's fields as mandatory and refuses the whole record when one is malformed; so do
//! we, at load time, so that no unlock code ever meets a half entry.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::RecordError;

/// The longest FIDO2 credential id accepted, in bytes. Authenticators make ids of a few
/// hundred bytes at most; a longer one is an attack on the daemon's memory, not a key.
pub const FIDO2_CREDENTIAL_ID_MAX: usize = 4096;
/// The longest token-encrypted key accepted, in bytes (RSA-16384 ciphertext is 2048).
const ENCRYPTED_KEY_MAX: usize = 8192;

fn entries<'a>(value: &'a Value, what: &str) -> Result<&'a [Value], RecordError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| RecordError::field(what, "must be an array"))
}

fn entry<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, RecordError> {
    value
        .as_object()
        .ok_or_else(|| RecordError::field(what, "must be a JSON object"))
}

fn text<'a>(map: &'a Map<String, Value>, key: &str, what: &str) -> Result<&'a str, RecordError> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(RecordError::field(
            format!("{what}.{key}"),
            "must be a string",
        )),
        None => Err(RecordError::field(format!("{what}.{key}"), "is required")),
    }
}

fn pkcs11_uri(uri: &str, what: &str) -> Result<(), RecordError> {
    if uri.starts_with("pkcs11:") {
        Ok(())
    } else {
        Err(RecordError::field(what, "must be a PKCS#11 URI (pkcs11:…)"))
    }
}

/// Base64 of 1..=`most` bytes.
fn base64_of(value: &str, most: usize, what: &str) -> Result<(), RecordError> {
    // Four characters carry three bytes: refuse what is too long before decoding it.
    if value.len() > most.div_ceil(3) * 4 + 4 {
        return Err(RecordError::field(
            what,
            format!("is longer than {most} bytes"),
        ));
    }
    match base64::engine::general_purpose::STANDARD.decode(value) {
        Ok(bytes) if bytes.is_empty() => Err(RecordError::field(what, "is empty")),
        Ok(bytes) if bytes.len() > most => Err(RecordError::field(
            what,
            format!("is longer than {most} bytes"),
        )),
        Ok(_) => Ok(()),
        Err(_) => Err(RecordError::field(what, "must be Base64")),
    }
}

fn optional_bool(map: &Map<String, Value>, key: &str, what: &str) -> Result<(), RecordError> {
    match map.get(key) {
        None | Some(Value::Null | Value::Bool(_)) => Ok(()),
        Some(_) => Err(RecordError::field(
            format!("{what}.{key}"),
            "must be a boolean",
        )),
    }
}

/// Checks the top-level `pkcs11TokenUri` and `fido2HmacCredential` of a record or a
/// `perMachine` entry (`prefix` names where, for the message).
pub(super) fn check_public(json: &Map<String, Value>, prefix: &str) -> Result<(), RecordError> {
    if let Some(uris) = json.get("pkcs11TokenUri") {
        let what = format!("{prefix}pkcs11TokenUri");
        for (i, uri) in entries(uris, &what)?.iter().enumerate() {
            let at = format!("{what}[{i}]");
            pkcs11_uri(
                uri.as_str()
                    .ok_or_else(|| RecordError::field(&at, "must be a string"))?,
                &at,
            )?;
        }
    }
    if let Some(ids) = json.get("fido2HmacCredential") {
        let what = format!("{prefix}fido2HmacCredential");
        for (i, id) in entries(ids, &what)?.iter().enumerate() {
            let at = format!("{what}[{i}]");
            let id = id
                .as_str()
                .ok_or_else(|| RecordError::field(&at, "must be a string"))?;
            base64_of(id, FIDO2_CREDENTIAL_ID_MAX, &at)?;
        }
    }
    Ok(())
}

/// Checks the credential entries of a `privileged` section.
pub(super) fn check_privileged(privileged: &Map<String, Value>) -> Result<(), RecordError> {
    if let Some(keys) = privileged.get("pkcs11EncryptedKey") {
        let what = "privileged.pkcs11EncryptedKey";
        for (i, value) in entries(keys, what)?.iter().enumerate() {
            let at = format!("{what}[{i}]");
            let e = entry(value, &at)?;
            pkcs11_uri(text(e, "uri", &at)?, &format!("{at}.uri"))?;
            base64_of(
                text(e, "data", &at)?,
                ENCRYPTED_KEY_MAX,
                &format!("{at}.data"),
            )?;
            text(e, "hashedPassword", &at)?;
        }
    }
    if let Some(salts) = privileged.get("fido2HmacSalt") {
        let what = "privileged.fido2HmacSalt";
        for (i, value) in entries(salts, what)?.iter().enumerate() {
            let at = format!("{what}[{i}]");
            let e = entry(value, &at)?;
            base64_of(
                text(e, "credential", &at)?,
                FIDO2_CREDENTIAL_ID_MAX,
                &format!("{at}.credential"),
            )?;
            base64_of(text(e, "salt", &at)?, 1024, &format!("{at}.salt"))?;
            text(e, "hashedPassword", &at)?;
            for flag in ["up", "uv", "clientPin"] {
                optional_bool(e, flag, &at)?;
            }
        }
    }
    if let Some(keys) = privileged.get("recoveryKey") {
        let what = "privileged.recoveryKey";
        for (i, value) in entries(keys, what)?.iter().enumerate() {
            let at = format!("{what}[{i}]");
            let e = entry(value, &at)?;
            text(e, "type", &at)?;
            text(e, "hashedPassword", &at)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn privileged(v: Value) -> Result<(), RecordError> {
        check_privileged(v.as_object().unwrap())
    }

    #[test]
    fn well_formed_entries_pass() {
        privileged(json!({
            "pkcs11EncryptedKey": [{"uri": "pkcs11:token=t", "data": "AAEC", "hashedPassword": "$y$x"}],
            "fido2HmacSalt": [{"credential": "AAEC", "salt": "AAEC", "hashedPassword": "$y$x", "up": true, "uv": null}],
            "recoveryKey": [{"type": "modhex64", "hashedPassword": "$y$x"}],
        }))
        .unwrap();
        check_public(
            json!({"pkcs11TokenUri": ["pkcs11:token=t"], "fido2HmacCredential": ["AAEC"]})
                .as_object()
                .unwrap(),
            "",
        )
        .unwrap();
    }

    #[test]
    fn each_malformed_entry_is_named() {
        let cases = [
            (
                json!({"pkcs11EncryptedKey": {}}),
                "field \"privileged.pkcs11EncryptedKey\" must be an array",
            ),
            (
                json!({"pkcs11EncryptedKey": [{"uri": "pkcs11:", "hashedPassword": "$y$x"}]}),
                "field \"privileged.pkcs11EncryptedKey[0].data\" is required",
            ),
            (
                json!({"pkcs11EncryptedKey": [{"uri": "file:/x", "data": "AA==", "hashedPassword": "h"}]}),
                "field \"privileged.pkcs11EncryptedKey[0].uri\" must be a PKCS#11 URI",
            ),
            (
                json!({"pkcs11EncryptedKey": [{"uri": "pkcs11:", "data": "*not base64*", "hashedPassword": "h"}]}),
                "field \"privileged.pkcs11EncryptedKey[0].data\" must be Base64",
            ),
            (
                json!({"fido2HmacSalt": [{"credential": "AA==", "salt": "AA==", "hashedPassword": "h", "up": "yes"}]}),
                "field \"privileged.fido2HmacSalt[0].up\" must be a boolean",
            ),
            (
                json!({"fido2HmacSalt": [{"credential": "AA==", "hashedPassword": "h"}]}),
                "field \"privileged.fido2HmacSalt[0].salt\" is required",
            ),
            (
                json!({"recoveryKey": [{"hashedPassword": "h"}]}),
                "field \"privileged.recoveryKey[0].type\" is required",
            ),
            (
                json!({"recoveryKey": ["h"]}),
                "field \"privileged.recoveryKey[0]\" must be a JSON object",
            ),
        ];
        for (value, want) in cases {
            let e = privileged(value.clone()).unwrap_err().to_string();
            assert!(e.contains(want), "{value}: {e}");
        }
    }

    #[test]
    fn a_megabyte_credential_id_is_refused_without_decoding_it() {
        let huge = "A".repeat(1 << 20);
        let e = check_public(
            json!({"fido2HmacCredential": [huge]}).as_object().unwrap(),
            "",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("field \"fido2HmacCredential[0]\" is longer than 4096 bytes"),
            "{e}"
        );
        let ok = base64::engine::general_purpose::STANDARD.encode([7u8; FIDO2_CREDENTIAL_ID_MAX]);
        base64_of(&ok, FIDO2_CREDENTIAL_ID_MAX, "x").unwrap();
    }
}
