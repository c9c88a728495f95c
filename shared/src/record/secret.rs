//! The `secret` section: passwords and token PINs a client hands to homed (homed-spec §1.7,
//! §4.4). Held in zeroizing memory and never printed.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

use super::RecordError;
use crate::json::parse_strict;

/// Plaintext credentials. `Debug` shows only how many there are.
#[derive(Default)]
pub struct Secret {
    passwords: Vec<SecretString>,
    token_pins: Vec<SecretString>,
    flags: Map<String, Value>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Secret {{ passwords: {} redacted, token_pins: {} redacted }}",
            self.passwords.len(),
            self.token_pins.len()
        )
    }
}

const FLAG_FIELDS: [&str; 3] = [
    "pkcs11ProtectedAuthenticationPathPermitted",
    "fido2UserPresencePermitted",
    "fido2UserVerificationPermitted",
];

/// Moves a string into a secret without leaving a stray copy behind: the copy is made with
/// exact capacity (so boxing it does not reallocate) and the original is wiped.
fn take_secret(mut s: String) -> SecretString {
    let secret = SecretString::from(s.as_str().to_owned());
    s.zeroize();
    secret
}

/// The most passwords (and, separately, token PINs) one secret may carry. Every one of them is
/// tried against every hash while the home's operation is held, and the rate limit counts a
/// call once: PAM clients send the few guesses of one login (pam_homed at most `retries`),
/// never more than this.
pub const MAX_SECRET_ENTRIES: usize = 16;

fn take_strings(value: Value, field: &str) -> Result<Vec<SecretString>, RecordError> {
    let Value::Array(items) = value else {
        return Err(RecordError::field(
            format!("secret.{field}"),
            "must be an array of strings",
        ));
    };
    if items.len() > MAX_SECRET_ENTRIES {
        return Err(RecordError::field(
            format!("secret.{field}"),
            format!("must hold at most {MAX_SECRET_ENTRIES} entries"),
        ));
    }
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => Ok(take_secret(s)),
            _ => Err(RecordError::field(
                format!("secret.{field}"),
                "must be an array of strings",
            )),
        })
        .collect()
}

impl Secret {
    /// Parses the wire form: the inner object, e.g. `{"password":["…"]}`.
    pub fn parse(text: &[u8]) -> Result<Secret, RecordError> {
        Secret::from_value(parse_strict(text)?)
    }

    pub fn from_value(value: Value) -> Result<Secret, RecordError> {
        let Value::Object(map) = value else {
            return Err(RecordError::field("secret", "must be a JSON object"));
        };
        let mut secret = Secret::default();
        for (key, value) in map {
            match key.as_str() {
                "password" => secret.passwords = take_strings(value, "password")?,
                // pkcs11Pin is the legacy name of tokenPin.
                "tokenPin" | "pkcs11Pin" => {
                    secret.token_pins.extend(take_strings(value, &key)?);
                    if secret.token_pins.len() > MAX_SECRET_ENTRIES {
                        return Err(RecordError::field(
                            "secret.tokenPin",
                            format!("must hold at most {MAX_SECRET_ENTRIES} entries"),
                        ));
                    }
                }
                k if FLAG_FIELDS.contains(&k) => {
                    if !value.is_boolean() {
                        return Err(RecordError::field(
                            format!("secret.{k}"),
                            "must be a boolean",
                        ));
                    }
                    secret.flags.insert(key, value);
                }
                _ => {}
            }
        }
        Ok(secret)
    }

    pub fn with_passwords(passwords: Vec<SecretString>) -> Secret {
        Secret {
            passwords,
            ..Secret::default()
        }
    }

    pub fn passwords(&self) -> &[SecretString] {
        &self.passwords
    }

    pub fn token_pins(&self) -> &[SecretString] {
        &self.token_pins
    }

    /// PAM puts each new guess in front of the earlier ones.
    pub fn prepend_password(&mut self, password: SecretString) {
        self.passwords.insert(0, password);
    }

    /// A token PIN replaces the earlier ones (PAM asks for one PIN at a time).
    pub fn set_token_pin(&mut self, pin: SecretString) {
        self.token_pins = vec![pin];
    }

    /// Sets one of the permission flags (`pkcs11ProtectedAuthenticationPathPermitted`,
    /// `fido2UserPresencePermitted`, `fido2UserVerificationPermitted`); other names are ignored.
    pub fn permit(&mut self, flag: &str) {
        if FLAG_FIELDS.contains(&flag) {
            self.flags.insert(flag.to_owned(), Value::Bool(true));
        }
    }

    /// Whether one of the permission flags is set to true.
    pub fn permitted(&self, flag: &str) -> bool {
        self.flags
            .get(flag)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn is_empty(&self) -> bool {
        self.passwords.is_empty() && self.token_pins.is_empty() && self.flags.is_empty()
    }

    /// The wire form, in zeroizing memory.
    pub fn to_json(&self) -> Zeroizing<String> {
        fn push_list(out: &mut String, name: &str, items: &[SecretString]) {
            out.push('"');
            out.push_str(name);
            out.push_str("\":[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let quoted =
                    Zeroizing::new(serde_json::to_string(item.expose_secret()).unwrap_or_default());
                out.push_str(&quoted);
            }
            out.push(']');
        }
        let capacity = 64
            + self
                .passwords
                .iter()
                .chain(&self.token_pins)
                .map(|p| p.expose_secret().len() * 6 + 3)
                .sum::<usize>();
        // Reserved up front so that the buffer never reallocates and leaves copies behind.
        let mut out = Zeroizing::new(String::with_capacity(capacity));
        out.push('{');
        let mut first = true;
        for (name, items) in [
            ("password", &self.passwords),
            ("tokenPin", &self.token_pins),
        ] {
            if items.is_empty() {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            push_list(&mut out, name, items);
        }
        for (key, value) in &self.flags {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&format!("\"{key}\":{value}"));
        }
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_redaction() {
        let mut s = Secret::parse(
            br#"{"password":["one","t\"wo"],"pkcs11Pin":["1234"],"fido2UserPresencePermitted":true}"#,
        )
        .unwrap();
        s.prepend_password(SecretString::from("zero".to_owned()));
        assert_eq!(s.passwords().len(), 3);
        assert_eq!(s.passwords()[0].expose_secret(), "zero");
        let json = s.to_json();
        let back = Secret::parse(json.as_bytes()).unwrap();
        assert_eq!(back.passwords()[2].expose_secret(), "t\"wo");
        assert_eq!(back.token_pins()[0].expose_secret(), "1234");
        assert!(json.contains("\"fido2UserPresencePermitted\":true"));
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("zero") && !shown.contains("1234"),
            "{shown}"
        );
    }

    #[test]
    fn refuses_wrong_types() {
        assert!(Secret::parse(br#"{"password":"x"}"#).is_err());
        assert!(Secret::parse(br#"{"password":[1]}"#).is_err());
        assert!(Secret::parse(br#"[]"#).is_err());
    }
}
