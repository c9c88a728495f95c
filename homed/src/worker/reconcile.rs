//! The one reconcile of a home's record copies (homed-spec §3.1), for every backend: the host
//! record, the copy in the image's header where the backend keeps one, and `~/.identity`.
//! Copies only move forward: an older copy is overwritten with the newer one, never the other
//! way round. A copy newer than the host record is adopted here, once: when a trusted key
//! signed it and the secret opens it, every location gets it and the daemon takes it as its
//! host record after a signature check of its own; otherwise the activation is refused.

use homed_shared::signing::TrustedKeys;
use homed_shared::{MachineContext, RecordOrigin, UserRecord};
use homed_storage::StorageError;
use secrecy::SecretString;
use serde_json::Value;

use super::backend::CopyWrites;

/// The copies an activation found inside the home.
pub struct Found<'a> {
    pub header: Option<&'a UserRecord>,
    pub identity: Option<&'a [u8]>,
}

/// What to do: write `target` where `writes` says; `adopted` is set when `target` is a newer
/// embedded copy the daemon is to take as its host record.
#[derive(Debug)]
pub struct Plan {
    pub target: UserRecord,
    pub writes: CopyWrites,
    pub adopted: bool,
}

#[cfg(test)]
thread_local! {
    /// The password hash checks this thread ran, for tests that count them.
    pub static HASH_CHECKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn last_change(record: &UserRecord) -> u64 {
    record
        .json()
        .get("lastChangeUSec")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Decides the reconcile of `found` against the host record.
pub fn plan(
    (host, machine): (&UserRecord, &MachineContext),
    found: Found<'_>,
    passwords: impl FnOnce() -> Result<Vec<SecretString>, StorageError>,
    keys: &TrustedKeys,
) -> Result<Plan, StorageError> {
    let same_user = |r: &UserRecord| r.user_name() == host.user_name() && r.realm() == host.realm();
    if let Some(header) = found.header
        && !same_user(header)
    {
        return Err(StorageError::new(
            libc::EUCLEAN,
            "the record in the LUKS header belongs to another user",
        ));
    }
    let identity = match found.identity {
        None => None,
        Some(bytes) => {
            let r = UserRecord::parse(bytes, RecordOrigin::Embedded).map_err(|e| {
                StorageError::new(
                    libc::EBADMSG,
                    format!("the home's .identity is not a valid embedded record: {e}"),
                )
            })?;
            if !same_user(&r) {
                return Err(StorageError::new(
                    libc::EUCLEAN,
                    "the home's .identity belongs to another user",
                ));
            }
            Some(r)
        }
    };
    let newest = [found.header, identity.as_ref()]
        .into_iter()
        .flatten()
        .filter(|r| last_change(r) > last_change(host))
        .max_by_key(|r| last_change(r));
    let (target, adopted) = match newest {
        Some(r) => {
            check_adoptable(r, machine, &passwords()?, keys)?;
            (r.embedded_copy(), true)
        }
        None => (host.embedded_copy(), false),
    };
    let text = target.to_compact_string();
    let writes = CopyWrites {
        header: found.header.is_some_and(|h| h.to_compact_string() != text),
        identity: identity
            .as_ref()
            .is_none_or(|r| r.to_compact_string() != text),
    };
    Ok(Plan {
        target,
        writes,
        adopted,
    })
}

/// A newer copy is taken only when a trusted key signed it and one of `passwords` matches one
/// of its password hashes (a security token's among them) or recovery keys: one hash check for
/// this copy, the only one it gets.
fn check_adoptable(
    record: &UserRecord,
    machine: &MachineContext,
    passwords: &[SecretString],
    keys: &TrustedKeys,
) -> Result<(), StorageError> {
    if !matches!(keys.verdict(record), Ok(v) if v.is_trusted()) {
        return Err(StorageError::new(
            libc::EKEYREJECTED,
            "a newer record inside the home is not signed by a trusted key",
        ));
    }
    #[cfg(test)]
    HASH_CHECKS.with(|n| n.set(n.get() + 1));
    let view = record.view(machine);
    // A token's password opens the copy through its entry's hash, as in 252.
    let mut hashes = view.hashed_passwords();
    hashes.extend(view.device_password_hashes());
    let opens = homed_shared::password::secret_matches(passwords, &hashes, &view.recovery_keys());
    if !opens {
        return Err(StorageError::new(
            libc::ENOKEY,
            "the password does not open the newer record inside the home",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use homed_shared::password::hash_password;
    use homed_shared::signing::{SigningKey, sign_record};
    use serde_json::json;

    const MID: &str = "0123456789abcdef0123456789abcdef";

    fn record(change: u64, name: &str, key: &SigningKey) -> UserRecord {
        let hash = hash_password(&SecretString::from("pw-1".to_owned())).unwrap();
        let mut r = UserRecord::from_value(
            json!({
                "userName": "ruser",
                "disposition": "regular",
                "realName": name,
                "lastChangeUSec": change,
                "privileged": {"hashedPassword": [hash]},
            }),
            RecordOrigin::Embedded,
        )
        .unwrap();
        sign_record(&mut r, key);
        r
    }

    fn trusting(key: &SigningKey) -> TrustedKeys {
        TrustedKeys::new(None, vec![("peer.public".into(), key.public_key())])
    }

    #[test]
    fn a_newer_copy_is_adopted_after_one_hash_check_and_written_where_behind() {
        let key = SigningKey::generate().unwrap();
        let keys = trusting(&key);
        let machine = MachineContext::new(MID, None);
        let host = record(1, "Old", &key);
        let header = record(1, "Old", &key).embedded_copy();
        let identity = record(2, "New", &key).to_pretty_string();
        let before = HASH_CHECKS.with(std::cell::Cell::get);
        let plan = plan(
            (&host, &machine),
            Found {
                header: Some(&header),
                identity: Some(identity.as_bytes()),
            },
            || Ok(vec![SecretString::from("pw-1".to_owned())]),
            &keys,
        )
        .unwrap();
        let after = HASH_CHECKS.with(std::cell::Cell::get);
        assert_eq!(after - before, 1);
        assert!(plan.adopted);
        assert_eq!(plan.target.json()["realName"], "New");
        assert_eq!(
            plan.writes,
            CopyWrites {
                header: true,
                identity: false
            }
        );
    }

    #[test]
    fn an_older_copy_is_brought_forward_without_a_hash_check() {
        let key = SigningKey::generate().unwrap();
        let keys = trusting(&key);
        let machine = MachineContext::new(MID, None);
        let host = record(5, "Host", &key);
        let identity = record(4, "Older", &key).to_pretty_string();
        let plan = plan(
            (&host, &machine),
            Found {
                header: None,
                identity: Some(identity.as_bytes()),
            },
            || unreachable!("the credentials were asked for a copy that is not adopted"),
            &keys,
        )
        .unwrap();
        assert!(!plan.adopted);
        assert_eq!(plan.target.json()["realName"], "Host");
        assert!(plan.writes.identity && !plan.writes.header);
    }

    #[test]
    fn a_newer_copy_is_adopted_with_the_password_a_token_gave() {
        let key = SigningKey::generate().unwrap();
        let keys = trusting(&key);
        let machine = MachineContext::new(MID, None);
        let host = record(1, "Old", &key);
        let token_hash = hash_password(&SecretString::from("token-secret".to_owned())).unwrap();
        let mut newer = record(2, "New", &key);
        newer.json_mut().insert(
            "privileged".into(),
            json!({"hashedPassword": [], "pkcs11EncryptedKey": [
                {"uri": "pkcs11:token=t", "data": "AAEC", "hashedPassword": token_hash}]}),
        );
        sign_record(&mut newer, &key);
        let identity = newer.to_pretty_string();
        let found = || Found {
            header: None,
            identity: Some(identity.as_bytes()),
        };
        let plan = plan(
            (&host, &machine),
            found(),
            || Ok(vec![SecretString::from("token-secret".to_owned())]),
            &keys,
        )
        .unwrap();
        assert!(plan.adopted);
        let err = plan_err(&host, &machine, found(), &keys);
        assert_eq!(err.errno, libc::ENOKEY);
    }

    fn plan_err(
        host: &UserRecord,
        machine: &MachineContext,
        found: Found<'_>,
        keys: &TrustedKeys,
    ) -> StorageError {
        plan(
            (host, machine),
            found,
            || Ok(vec![SecretString::from("not-the-token".to_owned())]),
            keys,
        )
        .unwrap_err()
    }

    #[test]
    fn a_newer_copy_the_password_does_not_open_is_refused() {
        let key = SigningKey::generate().unwrap();
        let keys = trusting(&key);
        let machine = MachineContext::new(MID, None);
        let host = record(1, "Old", &key);
        let identity = record(2, "New", &key).to_pretty_string();
        let err = plan(
            (&host, &machine),
            Found {
                header: None,
                identity: Some(identity.as_bytes()),
            },
            || Ok(vec![SecretString::from("wrong".to_owned())]),
            &keys,
        )
        .unwrap_err();
        assert_eq!(err.errno, libc::ENOKEY);
    }
}
