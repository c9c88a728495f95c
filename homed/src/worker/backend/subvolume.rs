//! `storage: subvolume` (homed-spec §3.3): like a directory home, but `/home/NAME.homedir` is a
//! btrfs subvolume whose files are stored as UID 65534 and idmapped to the user when mounted;
//! `diskSize` is the subvolume's qgroup limit.

use homed_shared::record::{RecordView, Storage};
use homed_storage::luks::home::STORED_UID;
use homed_storage::space::DiskFigures;
use homed_storage::{StorageError, directory, subvolume};
use secrecy::SecretString;
use serde_json::Value;

use super::{Backend, Capabilities, Mounted, StorageType, embedded_identity, identity_in_folder};
use crate::worker::proto::{CreateArgs, HomeSpec, ResizeArgs, WorkReply};

pub struct Subvolume;

impl StorageType for Subvolume {
    fn resizable(&self) -> bool {
        true
    }

    /// The subvolume's own qgroup, not the user's quota, as systemd-homed reads it.
    fn disk_figures(&self, home_root: &str, image_path: &str, _uid: Option<u32>) -> DiskFigures {
        DiskFigures::of_file_system(home_root).with_qgroup(std::path::Path::new(image_path))
    }
    fn storage(&self) -> Storage {
        Storage::Subvolume
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            lockable: false,
            copies_need_key: false,
            keyed: false,
            // The folder belongs to 65534, which says nothing of the user's UID.
            owner_suggests_uid: false,
            holds_image_lock: false,
            mounts_with_keys: false,
        }
    }

    fn image_suffix(&self) -> &'static str {
        ".homedir"
    }

    fn image_is_folder(&self) -> bool {
        true
    }

    fn recognises(&self, path: &std::path::Path, meta: &std::fs::Metadata) -> bool {
        meta.is_dir() && subvolume::is_subvolume(path)
    }

    fn disk_size(&self, view: &RecordView<'_>, _free: u64) -> Option<u64> {
        view.get("diskSize").and_then(Value::as_u64)
    }
}

impl Backend for Subvolume {
    fn resize(&self, args: &ResizeArgs) -> Result<(), StorageError> {
        super::resize_by_quota(args)
    }

    fn create(&self, args: &CreateArgs, _keys: &[SecretString]) -> Result<(), StorageError> {
        let spec = &args.spec;
        subvolume::create(&subvolume::NewSubvolume {
            image_path: &spec.image_path,
            skeleton: args.skeleton.as_deref(),
            access_mode: args.access_mode.unwrap_or(0o700),
            identity: &embedded_identity(spec)?,
            disk_size: args.disk_size,
        })
    }

    fn activate(&self, spec: &HomeSpec, _keys: &[SecretString]) -> Result<Mounted, StorageError> {
        let (uid, gid) = spec.ids()?;
        let identity = subvolume::activate(&subvolume::ActivateRequest {
            image_path: &spec.image_path,
            home_directory: &spec.home_directory,
            uid,
            gid,
            flags: spec.mount_flags(),
        })?;
        Ok(Mounted::folder(identity))
    }

    fn deactivate(&self, spec: &HomeSpec) -> Result<(), StorageError> {
        directory::deactivate(&spec.home_directory)
    }

    fn remove(&self, spec: &HomeSpec) -> Result<(), StorageError> {
        subvolume::remove(&spec.image_path, &spec.home_directory)
    }

    fn inspect(&self, spec: &HomeSpec, _keys: &[SecretString]) -> Result<WorkReply, StorageError> {
        identity_in_folder(spec)
    }

    fn write_identity(&self, spec: &HomeSpec) -> Result<(), StorageError> {
        directory::write_identity(
            &spec.image_path,
            &embedded_identity(spec)?,
            STORED_UID,
            STORED_UID,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asked_before_directory_and_claims_no_plain_folder() {
        let order: Vec<Storage> = super::super::all().iter().map(|t| t.storage()).collect();
        let at = |s| order.iter().position(|&o| o == s).unwrap();
        assert!(at(Storage::Subvolume) < at(Storage::Directory), "{order:?}");
        let tmp = tempfile::tempdir().unwrap();
        let meta = std::fs::symlink_metadata(tmp.path()).unwrap();
        assert!(!Subvolume.recognises(tmp.path(), &meta));
        assert!(super::super::describe(Storage::Subvolume).is_some());
    }
}
