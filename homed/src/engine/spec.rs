//! The one builder of worker requests: a home's paths, IDs, storage type and mount flags, from
//! its record and this machine's binding.

use homed_shared::UserRecord;
use homed_shared::record::Secret;
use serde_json::Value;

use crate::engine::{Engine, EngineError, EngineResult, Home};
use crate::worker::backend;
use crate::worker::backend::{Capabilities, StorageType};
use crate::worker::client::WorkOutput;
use crate::worker::proto::{HomeSpec, WorkRequest};

impl Engine {
    pub(crate) fn home_directory(&self, record: &UserRecord) -> String {
        let view = record.view(&self.machine);
        match view.get("homeDirectory").and_then(Value::as_str) {
            Some(d) => d.to_owned(),
            None => format!("{}/{}", self.paths.home_root, record.user_name()),
        }
    }

    pub(crate) fn image_path(&self, record: &UserRecord) -> String {
        let view = record.view(&self.machine);
        if let Some(p) = view.get("imagePath").and_then(Value::as_str) {
            return p.to_owned();
        }
        let base = match record.realm() {
            Some(realm) => format!("{}@{realm}", record.user_name()),
            None => record.user_name().to_owned(),
        };
        let suffix = backend::describe(view.storage().unwrap_or(backend::DEFAULT_STORAGE))
            .unwrap_or(backend::DEFAULT_TYPE)
            .image_suffix();
        format!("{}/{base}{suffix}", self.paths.home_root)
    }

    /// The storage type of `record`, when this daemon handles it.
    pub(crate) fn storage_type(
        &self,
        record: &UserRecord,
    ) -> EngineResult<&'static dyn StorageType> {
        let storage = record
            .view(&self.machine)
            .storage()
            .unwrap_or(backend::DEFAULT_STORAGE);
        backend::describe(storage).ok_or_else(|| {
            EngineError::NotSupported(format!(
                "Storage type {} is not supported by this daemon yet",
                storage.as_str()
            ))
        })
    }

    /// What the storage of `home` can do (nothing, for a type this daemon does not handle).
    pub(crate) fn capabilities(&self, home: &Home) -> Capabilities {
        self.storage_type(&self.record(home))
            .map(|k| k.capabilities())
            .unwrap_or(Capabilities {
                lockable: false,
                copies_need_key: false,
                keyed: false,
                owner_suggests_uid: false,
                holds_image_lock: false,
                mounts_with_keys: true,
            })
    }

    /// The one description of a home that every worker request carries.
    pub(crate) fn spec(&self, record: &UserRecord) -> HomeSpec {
        let view = record.view(&self.machine);
        let mut key_dirs = self.paths.key_dirs.clone();
        if !key_dirs.contains(&self.paths.record_dir) {
            key_dirs.insert(0, self.paths.record_dir.clone());
        }
        HomeSpec {
            storage: Some(view.storage().unwrap_or(backend::DEFAULT_STORAGE)),
            user_name: record.user_name().to_owned(),
            realm: record.realm().map(str::to_owned),
            image_path: self.image_path(record),
            home_directory: self.home_directory(record),
            uid: view.uid(),
            gid: view.gid(),
            nosuid: view.mount_no_suid(),
            nodev: view.mount_no_devices(),
            noexec: view.mount_no_execute(),
            record: Some(record.to_compact_string()),
            machine_id: Some(self.machine.machine_id.clone()),
            key_dirs,
            active: false,
        }
    }

    pub(crate) fn ids(&self, record: &UserRecord) -> EngineResult<(u32, u32)> {
        let view = record.view(&self.machine);
        match (view.uid(), view.gid()) {
            (Some(u), Some(g)) => Ok((u, g)),
            _ => Err(EngineError::Failed(format!(
                "Home {} has no UID",
                record.user_name()
            ))),
        }
    }

    /// Runs one storage operation, its failure named the way homed reports it.
    pub(crate) async fn work(
        &self,
        user: &str,
        request: WorkRequest,
        secret: Option<&Secret>,
    ) -> EngineResult<WorkOutput> {
        self.worker
            .run(request, secret)
            .await
            .map_err(|e| EngineError::from_work(e, user))
    }
}
