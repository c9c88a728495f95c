//! `storage: directory` (homed-spec §3.3): the home is the folder `/home/NAME.homedir`, bind
//! mounted onto `/home/NAME` with the record's flags; its one copy of the record is
//! `~/.identity`, which needs no key.

use homed_shared::record::Storage;
use homed_storage::{StorageError, directory};
use secrecy::SecretString;

use super::{Backend, Capabilities, Mounted, StorageType, embedded_identity, identity_in_folder};
use crate::worker::proto::{CreateArgs, HomeSpec, ResizeArgs, WorkReply};

pub struct Directory;

impl StorageType for Directory {
    fn resizable(&self) -> bool {
        true
    }

    fn storage(&self) -> Storage {
        Storage::Directory
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            lockable: false,
            copies_need_key: false,
            keyed: false,
            owner_suggests_uid: true,
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
}

impl Backend for Directory {
    fn resize(&self, args: &ResizeArgs) -> Result<(), StorageError> {
        super::resize_by_quota(args)
    }

    fn create(&self, args: &CreateArgs, _keys: &[SecretString]) -> Result<(), StorageError> {
        let spec = &args.spec;
        let (uid, gid) = spec.ids()?;
        directory::create(&directory::CreateRequest {
            image_path: &spec.image_path,
            skeleton: args.skeleton.as_deref(),
            uid,
            gid,
            access_mode: args.access_mode.unwrap_or(0o700),
            identity: &embedded_identity(spec)?,
        })
    }

    fn activate(&self, spec: &HomeSpec, _keys: &[SecretString]) -> Result<Mounted, StorageError> {
        let (uid, gid) = spec.ids()?;
        let identity = directory::activate(&directory::ActivateRequest {
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
        directory::remove(&spec.image_path, &spec.home_directory)
    }

    fn inspect(&self, spec: &HomeSpec, _keys: &[SecretString]) -> Result<WorkReply, StorageError> {
        identity_in_folder(spec)
    }

    fn write_identity(&self, spec: &HomeSpec) -> Result<(), StorageError> {
        let (uid, gid) = spec.ids()?;
        directory::write_identity(&spec.image_path, &embedded_identity(spec)?, uid, gid)
    }
}
