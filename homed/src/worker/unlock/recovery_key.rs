//! Recovery keys open their own keyslot, whose passphrase is the key's canonical form (lower
//! case, dashed): a key typed in another form is handed on in that form too.

use homed_shared::UserRecord;
use homed_shared::password::recovery_key;
use homed_shared::record::Secret;
use homed_storage::StorageError;
use secrecy::{ExposeSecret as _, SecretString};

use super::Unlocker;

pub struct RecoveryKey;

impl Unlocker for RecoveryKey {
    fn passphrases(
        &self,
        record: Option<&UserRecord>,
        secret: &Secret,
    ) -> Result<Vec<SecretString>, StorageError> {
        let has_keys = record.is_some_and(|r| {
            r.json()
                .get("privileged")
                .and_then(|p| p.get("recoveryKey"))
                .is_some_and(|keys| keys.is_array())
        });
        if !has_keys {
            return Ok(Vec::new());
        }
        // The password unlocker hands on every password as typed; only the forms that differ
        // from it are new here.
        Ok(secret
            .passwords()
            .iter()
            .filter_map(|typed| {
                recovery_key::normalize(typed)
                    .filter(|canonical| canonical.expose_secret() != typed.expose_secret())
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use homed_shared::RecordOrigin;
    use serde_json::json;

    use super::*;

    const KEY: &str = "veehvicu-ningglid-ejbjcldv-tgjtlhdb-vrrjkuec-nrujncni-errgehdf-ugnflgfn";

    fn passphrases(record: &UserRecord, typed: &[&str]) -> Vec<String> {
        let secret = Secret::with_passwords(
            typed
                .iter()
                .map(|t| SecretString::from((*t).to_owned()))
                .collect(),
        );
        RecoveryKey
            .passphrases(Some(record), &secret)
            .unwrap()
            .iter()
            .map(|p| p.expose_secret().to_owned())
            .collect()
    }

    #[test]
    fn a_key_typed_in_another_form_opens_with_its_canonical_form() {
        let with_key = UserRecord::from_value(
            json!({"userName": "rk", "privileged": {"recoveryKey": [{"type": "modhex64", "hashedPassword": "x"}]}}),
            RecordOrigin::Host,
        )
        .unwrap();
        let upper = KEY.to_uppercase().replace('-', "");
        assert_eq!(passphrases(&with_key, &["pw", &upper]), [KEY]);
        // The canonical form itself is already handed on by the password unlocker.
        assert!(passphrases(&with_key, &[KEY]).is_empty());
        let without =
            UserRecord::from_value(json!({"userName": "rk"}), RecordOrigin::Host).unwrap();
        assert!(passphrases(&without, &[&upper]).is_empty());
    }
}
