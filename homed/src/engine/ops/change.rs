//! Changing a home: its record (update) and its passwords, with one order of steps for every
//! backend.

use homed_shared::UserRecord;
use homed_shared::password::hash_password;
use homed_shared::record::{Secret, check_suitable_for_homed};
use secrecy::ExposeSecret as _;
use serde_json::{Map, Value, json};

use crate::engine::{
    AuthError, Caller, Delayed, Engine, EngineError, EngineResult, Home, MAX_NEW_PASSWORDS,
    Operation, lock, now_usec, owned_passwords, reported_holding,
};
use crate::worker::backend::{DISK_SIZE_MAX, DISK_SIZE_MIN};
use crate::worker::crashpoint;
use crate::worker::crashpoint::KeyChangeStep;
use crate::worker::proto::{AddKeys, ResizeArgs, RetireKeys, WorkRequest};

impl Engine {
    /// Writes the embedded copy of the host record into the home.
    pub(crate) async fn propagate(&self, home: &Home) -> EngineResult<()> {
        let record = self.record(home);
        self.ids(&record)?;
        if !self.storage_present(&record, self.is_active(home)) {
            return Ok(());
        }
        self.work(
            &home.name,
            WorkRequest::WriteIdentity(self.spec(&record)),
            None,
        )
        .await
        .map(|_| ())
    }

    /// Makes `record` the home's: saved as its host record, published, and its embedded copy
    /// written into the home.
    pub(crate) async fn install_record(&self, home: &Home, record: UserRecord) -> EngineResult<()> {
        self.save_record(home, record)?;
        self.publish(home);
        self.propagate(home).await
    }

    /// ChangePasswordHome.
    pub async fn change_password(
        &self,
        caller: Caller,
        name: &str,
        new_secret: &Secret,
        old_secret: &Secret,
    ) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        self.require_root_or_owner(&home, caller)?;
        let guard = self.begin(&home).await?;
        let result = async {
            if !lock(&home.data).signed_locally {
                return Err(AuthError::Now(EngineError::RecordSigned(format!(
                    "Home {} is signed and cannot be modified locally.",
                    home.name
                ))));
            }
            if lock(&home.data).locked {
                return Err(AuthError::Now(EngineError::HomeLocked(format!(
                    "Home {} is currently locked.",
                    home.name
                ))));
            }
            let keyed = self.capabilities(&home).keyed;
            if keyed {
                self.check_keyed_passwd_possible(&home)?;
            }
            self.authenticate_locked(&home, old_secret).await?;
            if new_secret.passwords().is_empty() {
                return self.propagate(&home).await.map_err(AuthError::Now);
            }
            // Each new password becomes a hash that every later login checks: a change sets a
            // few at most, and hashing (slow on purpose) runs off the engine's threads.
            if new_secret.passwords().len() > MAX_NEW_PASSWORDS {
                return Err(AuthError::Now(EngineError::InvalidArgs(format!(
                    "At most {MAX_NEW_PASSWORDS} new passwords may be set at once."
                ))));
            }
            let mut record = self.record(&home);
            let new_passwords = owned_passwords(new_secret);
            let hashed = tokio::task::spawn_blocking(move || {
                new_passwords
                    .iter()
                    .map(|p| hash_password(p).map(Value::String))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| AuthError::Now(EngineError::Failed(format!("hashing failed: {e}"))))?;
            let hashes = hashed.map_err(|e| {
                AuthError::Now(EngineError::InvalidArgs(format!(
                    "Failed to hash password: {e}"
                )))
            })?;
            let previous = record.view(&self.machine).last_change_usec().unwrap_or(0);
            let now = now_usec().max(previous + 1);
            {
                let json = record.json_mut();
                let privileged = json
                    .entry("privileged")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(p) = privileged {
                    p.insert("hashedPassword".into(), Value::Array(hashes));
                }
                json.insert("lastChangeUSec".into(), json!(now));
                json.insert("lastPasswordChangeUSec".into(), json!(now));
            }
            self.sign_locally(&mut record)?;
            if keyed {
                return self
                    .change_keyed_passwords(&home, record, new_secret, old_secret)
                    .await;
            }
            self.install_record(&home, record).await?;
            Ok(())
        }
        .await;
        reported_holding(guard, result).await
    }

    /// A password change of a keyed home rebuilds the keys from the new passwords alone:
    /// refused where the record has keys of other kinds (security tokens, recovery keys) that
    /// it would drop.
    pub(crate) fn check_keyed_passwd_possible(&self, home: &Home) -> EngineResult<()> {
        let record = self.record(home);
        let privileged = record.json().get("privileged");
        for field in ["pkcs11EncryptedKey", "fido2HmacSalt", "recoveryKey"] {
            let used = privileged
                .and_then(|p| p.get(field))
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            if used {
                return Err(EngineError::NotSupported(format!(
                    "Home {} has {field} keyslots, which a password change by this daemon would drop; refusing.",
                    home.name
                )));
            }
        }
        Ok(())
    }

    /// The password change of a home whose keys live in its storage (a LUKS home's keyslots),
    /// ordered so that one password opens the home at every step: keyslots for the new passwords beside the old ones (worker), the new host record
    /// (here), then the old keyslots wiped and the new record written into the header token
    /// and `~/.identity` (worker). Interrupted before the host record is saved, the old
    /// password opens the home; after it, the new one, and the next activation brings the
    /// header token and `~/.identity` up to the host record. The caller holds the operation
    /// lock, has checked `old_secret` and signed `record`.
    pub(crate) async fn change_keyed_passwords(
        &self,
        home: &Home,
        record: UserRecord,
        new_secret: &Secret,
        old_secret: &Secret,
    ) -> Result<(), AuthError> {
        let current = self.record(home);
        let active = self.is_active(home);
        self.ids(&record)?;
        self.set_transient(
            home,
            Some(if active {
                Operation::PasswdWhileActive
            } else {
                Operation::Passwd
            }),
        );
        let result = async {
            let both = Secret::with_passwords(
                new_secret
                    .passwords()
                    .iter()
                    .chain(old_secret.passwords())
                    .map(|p| secrecy::SecretString::from(p.expose_secret().to_owned()))
                    .collect(),
            );
            let mut spec = self.spec(&current);
            spec.active = active;
            let request = WorkRequest::AddKeys(AddKeys {
                spec,
                new_passwords: new_secret.passwords().len(),
            });
            let slots = match self.work(&home.name, request, Some(&both)).await {
                Err(e @ EngineError::BadPassword(_)) => return Err(AuthError::Delayed(Delayed(e))),
                other => other?.reply,
            };
            drop(both);
            self.save_record(home, record)?;
            self.publish(home);
            crashpoint::reached(KeyChangeStep::AfterHostRecord);
            let saved = self.record(home);
            let mut spec = self.spec(&saved);
            spec.active = active;
            let request = WorkRequest::RetireKeys(RetireKeys {
                spec,
                old_keyslots: slots.old_keyslots.unwrap_or_default(),
                new_keyslots: slots.new_keyslots.unwrap_or_default(),
            });
            self.work(&home.name, request, Some(new_secret))
                .await
                .map_err(|e| {
                    EngineError::Failed(format!(
                        "The password of home {} is changed, but finishing the change inside the home failed (the next activation brings its copies of the record up to date): {e}",
                        home.name
                    ))
                })?;
            Ok(())
        }
        .await;
        self.set_transient(home, None);
        result
    }

    /// UpdateHome: a newer record for an existing home; v252 asks for the secret too.
    /// Through a Home object the record must be that home's (`for_home`).
    pub async fn update(
        &self,
        caller: Caller,
        text: &str,
        for_home: Option<&str>,
    ) -> EngineResult<()> {
        let (mut incoming, secret) = Self::parse_request(text)?;
        if for_home.is_some_and(|name| name != incoming.user_name()) {
            return Err(EngineError::RecordMismatch(
                "User record to update is for a different user, refusing.".into(),
            ));
        }
        let home = self.find(incoming.user_name(), caller)?;
        Self::require_root(caller)?;
        check_suitable_for_homed(&incoming.view(&self.machine), false).map_err(|e| {
            EngineError::InvalidArgs(format!("Refusing to manage this user record: {e}"))
        })?;
        let guard = self.begin(&home).await?;
        let result = async {
            let current = self.record(&home);
            if incoming.realm() != current.realm() {
                return Err(AuthError::Now(EngineError::RecordMismatch(
                    "Home record different from current record, refusing.".into(),
                )));
            }
            let (old_lc, new_lc) = (
                current.view(&self.machine).last_change_usec(),
                incoming.view(&self.machine).last_change_usec(),
            );
            if new_lc < old_lc {
                return Err(AuthError::Now(EngineError::RecordDowngrade(
                    "Home record older than current record, refusing.".into(),
                )));
            }
            if new_lc == old_lc && incoming.signed_text() != current.signed_text() {
                return Err(AuthError::Now(EngineError::RecordMismatch(
                    "Home record different but timestamp remained the same, refusing.".into(),
                )));
            }
            let signed_locally = if incoming.is_unsigned() {
                if !lock(&home.data).signed_locally {
                    return Err(AuthError::Now(EngineError::RecordSigned(format!(
                        "Home {} is signed and cannot be modified locally.",
                        home.name
                    ))));
                }
                self.sign_locally(&mut incoming)?;
                true
            } else {
                self.sign_or_check(&mut incoming)?
            };
            self.authenticate_locked(&home, &secret).await?;
            for section in ["binding", "status"] {
                if let Some(v) = current.json().get(section) {
                    incoming.json_mut().insert(section.into(), v.clone());
                }
            }
            self.save_record(&home, incoming)?;
            lock(&home.data).signed_locally = signed_locally;
            self.publish(&home);
            self.propagate(&home).await?;
            Ok(())
        }
        .await;
        reported_holding(guard, result).await
    }

    /// ResizeHome: `size` (bytes; `u64::MAX` for the record's own) becomes the home's
    /// `diskSize`, applied by the storage before the new record is saved, so a refusal leaves
    /// both as they were. As 252, the secret must open the home's record.
    pub async fn resize(
        &self,
        caller: Caller,
        name: &str,
        size: u64,
        secret: &Secret,
    ) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let guard = self.begin(&home).await?;
        let result = async {
            let current = self.record(&home);
            let kind = self.storage_type(&current)?;
            if !kind.resizable() {
                return Err(AuthError::Now(EngineError::NotSupported(format!(
                    "Resizing home directories of type '{}' is not supported by this daemon.",
                    kind.storage().as_str()
                ))));
            }
            if lock(&home.data).locked {
                return Err(AuthError::Now(EngineError::HomeLocked(format!(
                    "Home {} is currently locked.",
                    home.name
                ))));
            }
            if !self.storage_present(&current, self.is_active(&home)) {
                return Err(AuthError::Now(EngineError::HomeAbsent(format!(
                    "Home {} is currently missing or not plugged in.",
                    home.name
                ))));
            }
            let recorded = current
                .view(&self.machine)
                .get("diskSize")
                .and_then(Value::as_u64);
            let target = match (size, recorded) {
                (u64::MAX, None) => {
                    return Err(AuthError::Now(EngineError::InvalidArgs(
                        "No disk size to resize to specified.".into(),
                    )));
                }
                (u64::MAX, Some(r)) => r,
                (s, _) => s,
            };
            if !(DISK_SIZE_MIN..=DISK_SIZE_MAX).contains(&target) {
                return Err(AuthError::Now(EngineError::BadHomeSize(format!(
                    "Requested size for home {} out of acceptable range.",
                    home.name
                ))));
            }
            let mut record = current.clone();
            if Some(target) != recorded {
                if !lock(&home.data).signed_locally {
                    return Err(AuthError::Now(EngineError::RecordSigned(format!(
                        "Home {} is signed and cannot be modified locally.",
                        home.name
                    ))));
                }
                let previous = current.view(&self.machine).last_change_usec().unwrap_or(0);
                record.set_disk_size_for(&self.machine.machine_id, target);
                record
                    .json_mut()
                    .insert("lastChangeUSec".into(), json!(now_usec().max(previous + 1)));
                self.sign_locally(&mut record)?;
            }
            self.authenticate_locked(&home, secret).await?;
            self.work(
                &home.name,
                WorkRequest::Resize(ResizeArgs {
                    spec: self.spec(&record),
                    disk_size: target,
                }),
                None,
            )
            .await?;
            if Some(target) != recorded {
                self.install_record(&home, record).await?;
            }
            Ok(())
        }
        .await;
        reported_holding(guard, result).await
    }

    pub async fn rebalance(&self, caller: Caller) -> EngineResult<()> {
        Self::require_root(caller)?;
        Err(EngineError::RebalanceNotNeeded(
            "No home needs rebalancing.".into(),
        ))
    }
}
