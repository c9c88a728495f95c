//! From the user's secret to the passphrases that open a home's keys. Each kind of credential
//! is one [`Unlocker`]; the worker asks each in turn, so that a token or a recovery key is one
//! more file here and nothing else changes.

mod password;
mod pkcs11;
mod recovery_key;

use homed_shared::UserRecord;
use homed_shared::record::Secret;
use homed_storage::StorageError;
use secrecy::SecretString;

/// One kind of credential.
pub trait Unlocker {
    /// The passphrases `secret` yields for a home with `record` (none when the secret holds
    /// nothing of this kind).
    fn passphrases(
        &self,
        record: Option<&UserRecord>,
        secret: &Secret,
    ) -> Result<Vec<SecretString>, StorageError>;

    /// For a kind that needs a device (a security token): `None` when `record` has no
    /// credential of this kind or the device gave no answer; otherwise whether the secret,
    /// with the device, yields a password the record's entry accepts. Kinds without a device
    /// are checked by the daemon against the record's hashes and keep the default.
    fn authenticate_device(
        &self,
        _record: &UserRecord,
        _secret: &Secret,
    ) -> Option<Result<(), StorageError>> {
        None
    }
}

const UNLOCKERS: [&dyn Unlocker; 3] = [
    &password::Password,
    &recovery_key::RecoveryKey,
    &pkcs11::Pkcs11,
];

/// How interesting a failure is when several credentials failed, most interesting first
/// (homed 252's order in `user_record_authenticate`).
fn rank(errno: i32) -> usize {
    const ORDER: [i32; 12] = [
        libc::EUCLEAN,
        libc::ETOOMANYREFS,
        libc::ENOLCK,
        libc::EOWNERDEAD,
        libc::ENOSTR,
        libc::ERFKILL,
        libc::EMEDIUMTYPE,
        libc::ENOCSI,
        libc::ENOANO,
        libc::EBADSLT,
        libc::ENOKEY,
        libc::EREMOTEIO,
    ];
    ORDER
        .iter()
        .position(|&e| e == errno)
        .unwrap_or(ORDER.len())
}

/// Checks `secret` with every credential kind that needs a device: done when one of them
/// accepts it; otherwise the most interesting failure, or a bad password when none applied.
pub fn authenticate_devices(record: &UserRecord, secret: &Secret) -> Result<(), StorageError> {
    let mut errors = Vec::new();
    for unlocker in UNLOCKERS {
        match unlocker.authenticate_device(record, secret) {
            Some(Ok(())) => return Ok(()),
            Some(Err(e)) => errors.push(e),
            None => {}
        }
    }
    errors.sort_by_key(|e| rank(e.errno));
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Err(StorageError::new(
            libc::ENOKEY,
            "No credential that needs a device accepts the secret.",
        )),
    }
}

/// Every passphrase the secret yields, in the order the unlockers come.
pub fn passphrases(
    record: Option<&UserRecord>,
    secret: &Secret,
) -> Result<Vec<SecretString>, StorageError> {
    let mut all = Vec::new();
    for unlocker in UNLOCKERS {
        all.extend(unlocker.passphrases(record, secret)?);
    }
    Ok(all)
}
