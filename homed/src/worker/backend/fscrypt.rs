//! `storage: fscrypt` (homed-spec §3.4): `/home/NAME.homedir` is a folder encrypted with a v1
//! fscrypt policy, its volume key wrapped once per password in the folder's
//! `trusted.fscrypt_slotN` xattrs; activation puts the key into the user's keyring and
//! bind-mounts the folder as for a directory home. Files are stored with the user's real UID.
//! There is no lock: a v1 key cannot be taken from files already open.

use homed_shared::UserRecord;
use homed_shared::record::Storage;
use homed_storage::{StorageError, directory, fscrypt};
use secrecy::{ExposeSecret as _, SecretString};

use super::{
    Backend, Capabilities, CopyWrites, Mounted, StorageType, embedded_identity, identity_in_folder,
};
use crate::worker::proto::{AddKeys, CreateArgs, HomeSpec, ResizeArgs, RetireKeys, WorkReply};

pub struct Fscrypt;

impl StorageType for Fscrypt {
    fn resizable(&self) -> bool {
        true
    }

    fn storage(&self) -> Storage {
        Storage::Fscrypt
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            lockable: false,
            copies_need_key: true,
            keyed: true,
            owner_suggests_uid: true,
            holds_image_lock: false,
            mounts_with_keys: true,
        }
    }

    fn image_suffix(&self) -> &'static str {
        ".homedir"
    }

    fn image_is_folder(&self) -> bool {
        true
    }

    fn recognises(&self, path: &std::path::Path, meta: &std::fs::Metadata) -> bool {
        use std::os::fd::AsFd as _;
        meta.is_dir()
            && std::fs::File::open(path)
                .ok()
                .and_then(|dir| fscrypt::descriptor_of(dir.as_fd()).ok().flatten())
                .is_some()
    }
}

fn passwords(keys: &[SecretString]) -> Vec<&[u8]> {
    keys.iter().map(|k| k.expose_secret().as_bytes()).collect()
}

/// Whether deactivation drops the caches: the record's `dropCaches`, on by default for fscrypt.
fn drops_caches(spec: &HomeSpec) -> bool {
    spec.host_record()
        .ok()
        .and_then(|(record, machine)| record.view(&machine).get("dropCaches").cloned())
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
}

impl Backend for Fscrypt {
    fn resize(&self, args: &ResizeArgs) -> Result<(), StorageError> {
        super::resize_by_quota(args)
    }

    fn create(&self, args: &CreateArgs, keys: &[SecretString]) -> Result<(), StorageError> {
        let spec = &args.spec;
        let (uid, gid) = spec.ids()?;
        fscrypt::create(
            &directory::CreateRequest {
                image_path: &spec.image_path,
                skeleton: args.skeleton.as_deref(),
                uid,
                gid,
                access_mode: args.access_mode.unwrap_or(0o700),
                identity: &embedded_identity(spec)?,
            },
            &passwords(keys),
        )
    }

    fn activate(&self, spec: &HomeSpec, keys: &[SecretString]) -> Result<Mounted, StorageError> {
        let (uid, gid) = spec.ids()?;
        let identity = fscrypt::activate(
            &directory::ActivateRequest {
                image_path: &spec.image_path,
                home_directory: &spec.home_directory,
                uid,
                gid,
                flags: spec.mount_flags(),
            },
            &passwords(keys),
        )?;
        Ok(Mounted::folder(identity))
    }

    fn write_copies(
        &self,
        spec: &HomeSpec,
        keys: &[SecretString],
        target: &UserRecord,
        which: CopyWrites,
    ) -> Result<(), StorageError> {
        if !which.identity {
            return Ok(());
        }
        fscrypt::load_key(&spec.image_path, &passwords(keys))?;
        let (uid, gid) = spec.ids()?;
        directory::write_identity(&spec.image_path, &target.to_pretty_string(), uid, gid)
    }

    fn deactivate(&self, spec: &HomeSpec) -> Result<(), StorageError> {
        let (uid, gid) = spec.ids()?;
        fscrypt::deactivate(
            &spec.image_path,
            &spec.home_directory,
            uid,
            gid,
            drops_caches(spec),
        )
    }

    fn remove(&self, spec: &HomeSpec) -> Result<(), StorageError> {
        directory::remove(&spec.image_path, &spec.home_directory)
    }

    fn inspect(&self, spec: &HomeSpec, keys: &[SecretString]) -> Result<WorkReply, StorageError> {
        fscrypt::load_key(&spec.image_path, &passwords(keys))?;
        identity_in_folder(spec)
    }

    fn write_identity(&self, _spec: &HomeSpec) -> Result<(), StorageError> {
        // `.identity` lies under the home's key: the next activation brings it forward.
        Ok(())
    }

    fn add_keys(&self, args: &AddKeys, keys: &[SecretString]) -> Result<WorkReply, StorageError> {
        let count = Some(args.new_passwords)
            .filter(|n| (1..keys.len()).contains(n))
            .ok_or_else(|| {
                StorageError::new(libc::EINVAL, "the request needs new and old passwords")
            })?;
        let all = passwords(keys);
        let (new, old) = all.split_at(count);
        let (before, added) = fscrypt::add_passwords(&args.spec.image_path, old, new)?;
        Ok(WorkReply {
            old_keyslots: Some(before),
            new_keyslots: Some(added),
            ..WorkReply::default()
        })
    }

    /// After the daemon saved the new host record: the old slots go, then `.identity` gets the
    /// record's embedded copy, written with the key the new passwords open.
    fn retire_keys(&self, args: &RetireKeys, keys: &[SecretString]) -> Result<(), StorageError> {
        let spec = &args.spec;
        fscrypt::retire_passwords(&spec.image_path, &args.old_keyslots, &args.new_keyslots)?;
        fscrypt::load_key(&spec.image_path, &passwords(keys))?;
        let (uid, gid) = spec.ids()?;
        directory::write_identity(&spec.image_path, &embedded_identity(spec)?, uid, gid)
    }
}
