//! One implementation per storage type (homed-spec §3). Each type has two halves in one file:
//! [`StorageType`], what the daemon may know about it without touching the storage (a pure
//! description), and [`Backend`], the operations, which run only in the worker process.
//! A new storage type is one more file here and one more line in [`for_storage`].

mod cifs;
mod directory;
mod fscrypt;
mod luks;
mod subvolume;

pub use luks::{DISK_SIZE_MAX, DISK_SIZE_MIN};

use homed_shared::record::{RecordView, Storage};
use homed_storage::StorageError;
use homed_storage::space::DiskFigures;
use secrecy::SecretString;
use serde_json::{Map, Value};

use super::proto::{AddKeys, CreateArgs, HomeSpec, ResizeArgs, RetireKeys, WorkReply};
use homed_shared::UserRecord;

/// What the daemon plans around: the answers differ by storage type, so the engine asks
/// instead of matching on the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Lock and Unlock suspend the volume, taking its key out of memory.
    pub lockable: bool,
    /// The home holds copies of the record that only the volume key reaches: the next
    /// activation brings them forward, rather than a write after an update.
    pub copies_need_key: bool,
    /// A password change adds and retires keys in the storage itself (AddKeys, RetireKeys).
    pub keyed: bool,
    /// A home found without a record takes its UID from the owner of its folder.
    pub owner_suggests_uid: bool,
    /// An image, once active, stays locked by a descriptor the daemon holds.
    pub holds_image_lock: bool,
    /// Mounting takes the keys the credentials yield (a folder home mounts without them, so
    /// its activation asks a security token nothing more once the daemon has checked it).
    pub mounts_with_keys: bool,
}

/// The daemon's side of a storage type: names, defaults and the binding of a new home.
pub trait StorageType: Sync {
    fn storage(&self) -> Storage;
    fn capabilities(&self) -> Capabilities;
    /// `NAME` + this is where homed looks for such homes in the home root.
    fn image_suffix(&self) -> &'static str;
    /// Whether the image is a folder (else a file).
    fn image_is_folder(&self) -> bool;
    /// Whether the image found at `path` (with its `meta`, not followed) is a home of this
    /// type. Discovery asks the types in the order of [`all`], so a type that a more general
    /// one would also claim (a btrfs subvolume is a folder too) comes before it.
    fn recognises(&self, _path: &std::path::Path, meta: &std::fs::Metadata) -> bool {
        if self.image_is_folder() {
            meta.is_dir()
        } else {
            meta.is_file()
        }
    }
    /// Adds the binding fields a new home of this type records on this machine.
    fn new_binding(
        &self,
        _view: &RecordView<'_>,
        _binding: &mut Map<String, Value>,
    ) -> Result<(), StorageError> {
        Ok(())
    }
    /// Whether `homectl resize` can change the home's size.
    fn resizable(&self) -> bool {
        false
    }
    /// Whether the home has an image on this machine (`imagePath` in its binding); a share on
    /// a server has none.
    fn has_image(&self) -> bool {
        true
    }
    /// Whether the home's storage is there: its image exists (`mounted`: it is active). Asked
    /// for every state, so it must answer quickly and never touch the mount.
    fn present(&self, _view: &RecordView<'_>, image_path: &str, mounted: bool) -> bool {
        mounted || std::fs::symlink_metadata(image_path).is_ok()
    }
    /// The size to create the storage with, given the free space of the home root; `None`
    /// when the type has no size.
    fn disk_size(&self, _view: &RecordView<'_>, _free: u64) -> Option<u64> {
        None
    }
    /// Whether the home of `user_name` is suspended right now (found after a restart).
    fn suspended_now(&self, _user_name: &str) -> bool {
        false
    }
    /// The space figures `inspect` shows for a home of this type with its image at
    /// `image_path` in `home_root`: the home root's file system, narrowed by the user's quota
    /// (as systemd-homed reads directory and fscrypt homes).
    fn disk_figures(&self, home_root: &str, image_path: &str, uid: Option<u32>) -> DiskFigures {
        let figures = DiskFigures::of_file_system(home_root);
        match uid {
            Some(uid) => figures.with_user_quota(std::path::Path::new(image_path), uid),
            None => figures,
        }
    }
}

/// What an activation found: the record's copies inside the home, and the image lock.
pub struct Mounted {
    /// The record in the image's header, for types that keep one there.
    pub header: Option<UserRecord>,
    /// The bytes of `~/.identity`, when it exists.
    pub identity: Option<Vec<u8>>,
    pub image_lock: Option<std::os::fd::OwnedFd>,
}

impl Mounted {
    /// A folder home's activation: only `.identity`, and no image lock.
    pub fn folder(identity: Option<Vec<u8>>) -> Mounted {
        Mounted {
            header: None,
            identity,
            image_lock: None,
        }
    }
}

/// Where the reconcile wants the target copy written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyWrites {
    pub header: bool,
    pub identity: bool,
}

fn not_supported(what: &str, spec: &HomeSpec) -> StorageError {
    StorageError::new(
        libc::ENOTTY,
        format!(
            "{what} is not available for {} homes",
            spec.storage().as_str()
        ),
    )
}

/// `write_copies` for homes whose one copy is `~/.identity`, written through the mounted home
/// as the user (through an idmapped mount, the user's IDs land on disk as 65534).
fn write_identity_in_home(
    spec: &HomeSpec,
    target: &UserRecord,
    which: CopyWrites,
) -> Result<(), StorageError> {
    if !which.identity {
        return Ok(());
    }
    let (uid, gid) = spec.ids()?;
    homed_storage::directory::write_identity(
        &spec.home_directory,
        &target.to_pretty_string(),
        uid,
        gid,
    )
}

/// The host record's embedded copy, as `~/.identity` holds it.
fn embedded_identity(spec: &HomeSpec) -> Result<String, StorageError> {
    let (record, _) = spec.host_record()?;
    Ok(record.embedded_copy().to_pretty_string())
}

/// Inspect's answer for a folder home: its `.identity`, read by way of the image folder.
fn identity_in_folder(spec: &HomeSpec) -> Result<WorkReply, StorageError> {
    let text = homed_storage::directory::read_identity(&spec.image_path)?;
    Ok(WorkReply {
        identity: Some(String::from_utf8_lossy(&text).into_owned()),
        ..WorkReply::default()
    })
}

/// The worker's side of a storage type. `keys` are the passphrases the unlockers derived from
/// the secret.
pub trait Backend {
    fn create(&self, args: &CreateArgs, keys: &[SecretString]) -> Result<(), StorageError>;
    fn activate(&self, spec: &HomeSpec, keys: &[SecretString]) -> Result<Mounted, StorageError>;
    /// Writes `target` (an embedded copy) into the copies `which` names, on an active home;
    /// by default the one copy `~/.identity`, through the mounted home.
    fn write_copies(
        &self,
        spec: &HomeSpec,
        _keys: &[SecretString],
        target: &UserRecord,
        which: CopyWrites,
    ) -> Result<(), StorageError> {
        write_identity_in_home(spec, target, which)
    }
    fn deactivate(&self, spec: &HomeSpec) -> Result<(), StorageError>;
    fn remove(&self, spec: &HomeSpec) -> Result<(), StorageError>;
    /// The home's own record (and binding values the storage holds), without activating it.
    fn inspect(&self, spec: &HomeSpec, keys: &[SecretString]) -> Result<WorkReply, StorageError>;
    /// Writes the host record's embedded copy where no key is needed; nothing for types whose
    /// copies all need one.
    fn write_identity(&self, spec: &HomeSpec) -> Result<(), StorageError>;
    fn lock(&self, spec: &HomeSpec) -> Result<(), StorageError> {
        Err(not_supported("Locking", spec))
    }
    fn unlock(&self, spec: &HomeSpec, _keys: &[SecretString]) -> Result<(), StorageError> {
        Err(not_supported("Unlocking", spec))
    }
    fn add_keys(&self, args: &AddKeys, _keys: &[SecretString]) -> Result<WorkReply, StorageError> {
        Err(not_supported("Adding keys", &args.spec))
    }
    fn retire_keys(&self, args: &RetireKeys, _keys: &[SecretString]) -> Result<(), StorageError> {
        Err(not_supported("Retiring keys", &args.spec))
    }
    fn resize(&self, args: &ResizeArgs) -> Result<(), StorageError> {
        Err(not_supported("Resizing", &args.spec))
    }
}

/// Resizing a home whose size is a quota on the home root (directory, subvolume and fscrypt
/// homes, as systemd-homed 252 resizes them).
fn resize_by_quota(args: &ResizeArgs) -> Result<(), StorageError> {
    let (uid, _) = args.spec.ids()?;
    homed_storage::space::apply_disk_size(&args.spec.image_path, uid, args.disk_size)
}

/// The storage of a record that names none.
pub const DEFAULT_STORAGE: Storage = Storage::Directory;
/// The description of [`DEFAULT_STORAGE`].
pub const DEFAULT_TYPE: &dyn StorageType = &directory::Directory;

/// The description of `storage`, or `None` when this daemon does not handle it.
pub fn describe(storage: Storage) -> Option<&'static dyn StorageType> {
    match storage {
        Storage::Directory => Some(&directory::Directory),
        Storage::Luks => Some(&luks::Luks),
        Storage::Subvolume => Some(&subvolume::Subvolume),
        Storage::Fscrypt => Some(&fscrypt::Fscrypt),
        Storage::Cifs => Some(&cifs::Cifs),
        Storage::Classic => None,
    }
}

/// Every storage type this daemon handles, the more particular before the more general
/// (see [`StorageType::recognises`]).
pub fn all() -> &'static [&'static dyn StorageType] {
    &[
        &luks::Luks,
        &subvolume::Subvolume,
        &fscrypt::Fscrypt,
        &directory::Directory,
        &cifs::Cifs,
    ]
}

/// The operations of `storage`, in the worker.
pub fn for_storage(storage: Storage) -> Result<&'static dyn Backend, StorageError> {
    match storage {
        Storage::Directory => Ok(&directory::Directory),
        Storage::Luks => Ok(&luks::Luks),
        Storage::Subvolume => Ok(&subvolume::Subvolume),
        Storage::Fscrypt => Ok(&fscrypt::Fscrypt),
        Storage::Cifs => Ok(&cifs::Cifs),
        other => Err(StorageError::new(
            libc::EPROTONOSUPPORT,
            format!("storage type {} is not supported", other.as_str()),
        )),
    }
}
