//! New homes: create (record and storage), register (record only), realize (storage for a
//! registered record).

use std::sync::Arc;

use homed_shared::record::{Secret, check_suitable_for_homed};
use homed_shared::{RecordOrigin, UserRecord};
use serde_json::{Map, json};

use crate::engine::{
    Caller, Engine, EngineError, EngineResult, HOME_USERS_MAX, Home, lock, reported, uid,
};
use crate::worker::proto::{CreateArgs, WorkRequest};

impl Engine {
    pub(crate) fn parse_request(text: &str) -> EngineResult<(UserRecord, Secret)> {
        let mut record = UserRecord::parse(text.as_bytes(), RecordOrigin::Request)
            .map_err(|e| EngineError::InvalidArgs(format!("Failed to parse user record: {e}")))?;
        let secret = record
            .take_secret()
            .map_err(|e| EngineError::InvalidArgs(format!("Failed to parse user record: {e}")))?
            .unwrap_or_default();
        Ok((record, secret))
    }

    /// Parses the secret argument: the inner object of the `secret` section (homed-spec §4.4).
    pub fn parse_secret(text: &str) -> EngineResult<Secret> {
        Secret::parse(text.as_bytes())
            .map_err(|e| EngineError::InvalidArgs(format!("Failed to parse secret: {e}")))
    }

    pub(crate) fn check_name_free(&self, record: &UserRecord) -> EngineResult<()> {
        let name = record.user_name();
        if self.lookup(name).is_some() {
            return Err(EngineError::UserNameExists(format!(
                "Specified user name {name} exists already, refusing."
            )));
        }
        if uid::name_known_to_system(name) {
            return Err(EngineError::UserNameExists(format!(
                "Specified user name {name} exists in the NSS user database, refusing."
            )));
        }
        if let Some(realm) = record.realm()
            && uid::name_known_to_system(&format!("{name}@{realm}"))
        {
            return Err(EngineError::UserNameExists(format!(
                "Specified user name {name}@{realm} exists in the NSS user database, refusing."
            )));
        }
        Ok(())
    }

    /// CreateHome: checks, allocates a UID, hashes and signs, makes the storage, writes the
    /// host record.
    pub async fn create(&self, caller: Caller, text: &str) -> EngineResult<Arc<Home>> {
        Self::require_root(caller)?;
        let (mut record, secret) = Self::parse_request(text)?;
        self.prepare_new(&mut record)?;
        let name = record.user_name().to_owned();
        // As homed: the client hashes the password; the secret must open one of the hashes.
        if secret.passwords().is_empty() {
            return Err(EngineError::BadPassword(format!(
                "No password given for home {name}: required key not available."
            )));
        }
        if record.view(&self.machine).hashed_passwords().is_empty() {
            return Err(EngineError::InvalidArgs(
                "Failed to execute operation: Invalid argument".into(),
            ));
        }
        reported(self.verify(&record, &secret).await).await?;
        let signed_locally = self.sign_or_check(&mut record)?;
        // The secret was checked off the engine's threads: another create of the same name may
        // have finished meanwhile.
        if self.lookup(&name).is_some() {
            return Err(EngineError::UserNameExists(format!(
                "Specified user name {name} exists already, refusing."
            )));
        }
        self.create_storage(&record, &secret).await?;
        if let Err(e) = self.store.save(&record) {
            return Err(EngineError::Failed(format!(
                "Failed to write the record of {name}: {e}"
            )));
        }
        Ok(self.insert_home(record, signed_locally))
    }

    /// Makes the storage of a new home (create, realize).
    pub(crate) async fn create_storage(
        &self,
        record: &UserRecord,
        secret: &Secret,
    ) -> EngineResult<()> {
        let name = record.user_name();
        let kind = self.storage_type(record)?;
        self.ids(record)?;
        let view = record.view(&self.machine);
        let free = nix::sys::statvfs::statvfs(self.paths.home_root.as_str())
            .map(|st| st.blocks_available() * st.fragment_size())
            .unwrap_or(0);
        let request = WorkRequest::Create(CreateArgs {
            spec: self.spec(record),
            disk_size: kind.disk_size(&view, free),
            skeleton: Some(view.skeleton_directory()),
            access_mode: Some(view.access_mode()),
        });
        self.work(name, request, Some(secret)).await.map(|_| ())
    }

    /// The checks and fields every new record goes through (create, register).
    pub(crate) fn prepare_new(&self, record: &mut UserRecord) -> EngineResult<()> {
        check_suitable_for_homed(&record.view(&self.machine), false).map_err(|e| {
            EngineError::InvalidArgs(format!("Refusing to manage this user record: {e}"))
        })?;
        if lock(&self.homes).len() >= HOME_USERS_MAX {
            return Err(EngineError::Failed("Too many homes".into()));
        }
        self.storage_type(record)?;
        self.check_name_free(record)?;
        let name = record.user_name().to_owned();
        let view = record.view(&self.machine);
        let uid = match view.uid() {
            Some(uid) => {
                if let Some(other) = self.uid_in_use_by_home(uid) {
                    return Err(EngineError::UidInUse(format!(
                        "Specified UID {uid} already in use by home {other}, refusing."
                    )));
                }
                if uid::known_to_system(uid) {
                    return Err(EngineError::UidInUse(format!(
                        "Specified UID {uid} already in use by an NSS user or group, refusing."
                    )));
                }
                uid
            }
            None => uid::allocate(&name, None, |u| self.uid_in_use_by_home(u).is_some())
                .ok_or_else(|| {
                    EngineError::Failed("Failed to acquire a UID for the home".into())
                })?,
        };
        let kind = self.storage_type(record)?;
        let mut binding = Map::new();
        binding.insert("gid".into(), json!(uid));
        if kind.has_image() {
            binding.insert("imagePath".into(), json!(self.image_path(record)));
        }
        binding.insert("homeDirectory".into(), json!(self.home_directory(record)));
        binding.insert("storage".into(), json!(kind.storage().as_str()));
        binding.insert("uid".into(), json!(uid));
        kind.new_binding(&view, &mut binding)
            .map_err(|e| EngineError::NotSupported(e.message))?;
        record.set_binding(&self.machine.machine_id, binding);
        Ok(())
    }

    /// RegisterHome: stores a record without making storage.
    pub async fn register(&self, caller: Caller, text: &str) -> EngineResult<Arc<Home>> {
        Self::require_root(caller)?;
        let record = UserRecord::parse(text.as_bytes(), RecordOrigin::Host)
            .map_err(|e| EngineError::InvalidArgs(format!("Failed to parse user record: {e}")))?;
        if record.json().contains_key("binding") || record.json().contains_key("status") {
            return Err(EngineError::InvalidArgs(
                "User record carries binding or status data, refusing.".into(),
            ));
        }
        let mut record = record.embedded_copy();
        self.prepare_new(&mut record)?;
        let signed_locally = self.sign_or_check(&mut record)?;
        self.store
            .save(&record)
            .map_err(|e| EngineError::Failed(format!("Failed to write the record: {e}")))?;
        Ok(self.insert_home(record, signed_locally))
    }

    /// RealizeHome: makes the storage of a registered home.
    pub async fn realize(&self, caller: Caller, name: &str, secret: &Secret) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let _guard = self.begin(&home).await?;
        let record = self.record(&home);
        self.create_storage(&record, secret).await
    }
}
