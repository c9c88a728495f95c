//! The local signing key and the trusted keys: signing and checking records.

use homed_shared::UserRecord;
use homed_shared::signing::{TrustVerdict, sign_record};

use crate::engine::{Engine, EngineError, EngineResult, lock};

impl Engine {
    pub(crate) fn ensure_local_key(&self) -> EngineResult<()> {
        let mut keys = lock(&self.keys);
        if keys.local().is_none() {
            let key = self.store.create_signing_key().map_err(|e| {
                EngineError::NoPrivateKey(format!("Can't create the local signing key: {e}"))
            })?;
            keys.set_local(key);
        }
        Ok(())
    }

    /// Signs `record` with the local key, creating the key on first need.
    pub(crate) fn sign_locally(&self, record: &mut UserRecord) -> EngineResult<()> {
        self.ensure_local_key()?;
        let keys = lock(&self.keys);
        let Some(key) = keys.local() else {
            return Err(EngineError::NoPrivateKey("No private key".into()));
        };
        sign_record(record, key);
        Ok(())
    }

    /// Signs an unsigned record, or checks the signature of a signed one; returns whether the
    /// result is signed by the local key alone.
    pub(crate) fn sign_or_check(&self, record: &mut UserRecord) -> EngineResult<bool> {
        let verdict = lock(&self.keys)
            .verdict(record)
            .map_err(|e| EngineError::BadSignature(e.to_string()))?;
        match verdict {
            TrustVerdict::Unsigned => {
                self.sign_locally(record)?;
                Ok(true)
            }
            TrustVerdict::SignedExclusive => Ok(true),
            TrustVerdict::Signed | TrustVerdict::Foreign => Ok(false),
            TrustVerdict::NoKey => Err(EngineError::BadSignature(format!(
                "User record of {} is not signed by any known key, refusing.",
                record.user_name()
            ))),
        }
    }
}
