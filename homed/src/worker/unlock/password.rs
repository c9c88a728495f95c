//! Passwords open a home as they are given.

use homed_shared::UserRecord;
use homed_shared::record::Secret;
use homed_storage::StorageError;
use secrecy::{ExposeSecret as _, SecretString};

use super::Unlocker;

pub struct Password;

impl Unlocker for Password {
    fn passphrases(
        &self,
        _record: Option<&UserRecord>,
        secret: &Secret,
    ) -> Result<Vec<SecretString>, StorageError> {
        Ok(secret
            .passwords()
            .iter()
            .map(|p| SecretString::from(p.expose_secret().to_owned()))
            .collect())
    }
}
