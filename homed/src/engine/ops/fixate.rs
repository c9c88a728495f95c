//! Fixation: a found home's own record becomes its host record.

use homed_shared::record::Secret;
use homed_shared::signing::TrustVerdict;
use homed_shared::{RecordOrigin, UserRecord};
use serde_json::Value;

use crate::engine::{
    AuthError, Caller, Delayed, Engine, EngineError, EngineResult, Home, Operation,
    PERSISTED_STATUS, RateLimitCount, count_outcome, lock, reported_holding,
};
use crate::worker::proto::WorkRequest;

impl Engine {
    /// Makes an unfixated home's own record the host record (homed's fixation), once its
    /// signature is trusted and the secret opens it: a directory home's `.identity`, or a LUKS
    /// image's header record, which the worker reads without activating the image, together
    /// with the binding values the image holds. Nothing is written unless every check passes.
    /// The caller holds the operation lock.
    pub(crate) async fn fixate_locked(
        &self,
        home: &Home,
        secret: &Secret,
    ) -> Result<(), AuthError> {
        // A found home is guarded like any other: its own record's password is checked only
        // within the rate limit (counted in memory until the home has a host record). The
        // check is the authentication of the call that fixates: it is not repeated.
        let pending = self.ratelimit(home)?;
        let result = self.fixate_checked(home, secret, pending).await;
        if let Err(e) = &result {
            let outcome = matches!(e, AuthError::Delayed(_)).then_some(false);
            self.record_attempt(home, pending, outcome);
        }
        result
    }

    /// Fixation within the rate limit; on success the new host record carries the attempt.
    pub(crate) async fn fixate_checked(
        &self,
        home: &Home,
        secret: &Secret,
        pending: RateLimitCount,
    ) -> Result<(), AuthError> {
        let synthesized = self.record(home);
        self.storage_type(&synthesized)?;
        self.set_transient(home, Some(Operation::Fixating));
        let request = WorkRequest::Inspect(self.spec(&synthesized));
        let reply = self.work(&home.name, request, Some(secret)).await;
        self.set_transient(home, None);
        let reply = match reply {
            Ok(output) => output.reply,
            Err(e @ EngineError::BadPassword(_)) => return Err(AuthError::Delayed(Delayed(e))),
            Err(e) => return Err(e.into()),
        };
        let text = reply.identity.as_deref().unwrap_or("");
        let embedded = UserRecord::parse(text.as_bytes(), RecordOrigin::Embedded).map_err(|e| {
            EngineError::BadSignature(format!(
                "The record inside home {} is unusable: {e}",
                home.name
            ))
        })?;
        if embedded.user_name() != home.name || embedded.realm() != synthesized.realm() {
            return Err(EngineError::RecordMismatch(format!(
                "The record inside home {} is for another user.",
                home.name
            ))
            .into());
        }
        let verdict = lock(&self.keys).verdict(&embedded);
        let signed_locally = match verdict {
            Ok(TrustVerdict::SignedExclusive) => true,
            Ok(TrustVerdict::Signed | TrustVerdict::Foreign) => false,
            _ => {
                return Err(EngineError::BadSignature(format!(
                    "The record inside home {} is not signed by a trusted key.",
                    home.name
                ))
                .into());
            }
        };
        self.verify(&embedded, secret).await?;
        let mut record = embedded;
        let mut binding = synthesized
            .json()
            .get("binding")
            .and_then(|b| b.get(&self.machine.machine_id))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(found) = &reply.binding {
            for (k, v) in found {
                binding.insert(k.clone(), v.clone());
            }
        }
        record.set_binding(&self.machine.machine_id, binding);
        self.check_resolved(&record)?;
        let mut status = self.status_of(&synthesized);
        status.retain(|k, _| PERSISTED_STATUS.contains(&k.as_str()));
        pending.apply(&mut status);
        count_outcome(&mut status, true);
        record.set_status(&self.machine.machine_id, status);
        {
            let mut d = lock(&home.data);
            d.unfixated = false;
            d.signed_locally = signed_locally;
        }
        if let Err(e) = self.save_record(home, record) {
            let mut d = lock(&home.data);
            d.unfixated = true;
            d.record = synthesized;
            return Err(e.into());
        }
        eprintln!("{}: fixated", home.name);
        self.publish(home);
        Ok(())
    }

    /// FixateHome (root only).
    pub async fn fixate(&self, caller: Caller, name: &str, secret: &Secret) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let guard = self.begin(&home).await?;
        let result = async {
            if !self.is_unfixated(&home) {
                return Err(AuthError::Now(EngineError::HomeAlreadyFixated(format!(
                    "Home {} is already fixated.",
                    home.name
                ))));
            }
            self.fixate_locked(&home, secret).await
        }
        .await;
        reported_holding(guard, result).await
    }
}
