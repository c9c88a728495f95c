//! From the user's secret to the passphrases that open a home's keys. Each kind of credential
//! is one [`Unlocker`]; the worker asks each in turn, so that a token or a recovery key is one
//! more file here and nothing else changes.

mod password;
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
}

const UNLOCKERS: [&dyn Unlocker; 2] = [&password::Password, &recovery_key::RecoveryKey];

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
