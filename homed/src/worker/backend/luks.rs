//! `storage: luks` (homed-spec §3.1–3.2): an image file with a GPT, a LUKS2 volume with one
//! keyslot per password and the record in a header token, and a file system whose `/NAME`
//! folder is bound onto the home directory. Two copies of the record (header and
//! `~/.identity`) need the volume key.

use std::path::{Path, PathBuf};

use homed_shared::UserRecord;
use homed_shared::record::{RecordView, Storage};
use homed_shared::signing::TrustedKeys;
use homed_storage::luks::home::{self, HomeMountFlags};
use homed_storage::luks::{FsType, LuksContainer, LuksError, LuksSettings, dm_name};
use homed_storage::space::DiskFigures;
use homed_storage::{StorageError, directory};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use super::{Backend, Capabilities, CopyWrites, Mounted, StorageType};
use crate::worker::crashpoint::{self, KeyChangeStep};
use crate::worker::proto::{AddKeys, CreateArgs, HomeSpec, RetireKeys, WorkReply};

/// homed's bounds for a home's size (USER_DISK_SIZE_MIN, USER_DISK_SIZE_MAX).
pub const DISK_SIZE_MIN: u64 = 5 << 20;
pub const DISK_SIZE_MAX: u64 = 5 << 40;

/// Where a LUKS home's file system is mounted before its `/NAME` folder is bound onto the home
/// directory (one folder per user, so that homes activate side by side).
const WORK_ROOT: &str = "/run/systemd/user-home-mount";
/// Where an inactive home is mounted while a password change writes its `~/.identity`.
const PASSWD_MOUNT_ROOT: &str = "/run/systemd/user-home-passwd";

pub struct Luks;

impl StorageType for Luks {
    /// The home root's file system alone: the image's own figures are not read yet.
    fn disk_figures(&self, home_root: &str, _image_path: &str, _uid: Option<u32>) -> DiskFigures {
        DiskFigures::of_file_system(home_root)
    }
    fn storage(&self) -> Storage {
        Storage::Luks
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            lockable: true,
            copies_need_key: true,
            keyed: true,
            owner_suggests_uid: false,
            holds_image_lock: true,
            mounts_with_keys: true,
        }
    }

    fn image_suffix(&self) -> &'static str {
        ".home"
    }

    fn image_is_folder(&self) -> bool {
        false
    }

    /// As homed writes it: its UUIDs (chosen here, so the worker formats with them) and its
    /// cipher and file system.
    fn new_binding(
        &self,
        view: &RecordView<'_>,
        binding: &mut Map<String, Value>,
    ) -> Result<(), StorageError> {
        let settings = LuksSettings::from_view(view);
        let fs = view
            .get("fileSystemType")
            .and_then(Value::as_str)
            .unwrap_or("btrfs")
            .to_owned();
        if FsType::parse(&fs).is_none() {
            return Err(StorageError::new(
                libc::EPROTONOSUPPORT,
                format!("File system {fs} is not supported for LUKS homes"),
            ));
        }
        let uuid = |given: Option<String>| -> Result<String, StorageError> {
            match given {
                Some(u) => Ok(u),
                None => std::fs::read_to_string("/proc/sys/kernel/random/uuid")
                    .map(|u| u.trim().to_owned())
                    .map_err(|e| StorageError::io("Failed to make a UUID", e)),
            }
        };
        binding.insert("fileSystemType".into(), json!(fs));
        binding.insert(
            "fileSystemUuid".into(),
            json!(uuid(settings.file_system_uuid)?),
        );
        binding.insert("luksCipher".into(), json!(settings.cipher));
        binding.insert("luksCipherMode".into(), json!(settings.cipher_mode));
        binding.insert("luksUuid".into(), json!(uuid(settings.luks_uuid)?));
        binding.insert("luksVolumeKeySize".into(), json!(settings.volume_key_size));
        binding.insert(
            "partitionUuid".into(),
            json!(uuid(settings.partition_uuid)?),
        );
        Ok(())
    }

    /// `diskSize`, else 85% of the free space, as homed.
    fn disk_size(&self, view: &RecordView<'_>, free: u64) -> Option<u64> {
        if let Some(size) = view.get("diskSize").and_then(Value::as_u64) {
            return Some(size.clamp(DISK_SIZE_MIN, DISK_SIZE_MAX));
        }
        Some(((free / 100 * 85) & !4095).clamp(DISK_SIZE_MIN, DISK_SIZE_MAX))
    }

    fn suspended_now(&self, user_name: &str) -> bool {
        home::is_suspended(user_name) == Some(true)
    }
}

/// The user's work folder under `root`, with `root` made root-only first (it may have been
/// created with looser permissions by an older version or by hand).
fn work_folder_in(root: &str, user: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    if std::fs::create_dir_all(root).is_ok() {
        let _ = std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700));
    }
    Path::new(root).join(user)
}

fn work_dir(user: &str) -> PathBuf {
    work_folder_in(WORK_ROOT, user)
}

/// LUKS needs a passphrase for everything that opens the volume.
fn require_keys(keys: &[SecretString]) -> Result<(), StorageError> {
    if keys.is_empty() {
        return Err(StorageError::new(
            libc::ENOKEY,
            "a password is needed for a LUKS home",
        ));
    }
    Ok(())
}

fn mount_flags(spec: &HomeSpec) -> HomeMountFlags {
    HomeMountFlags {
        nosuid: spec.nosuid,
        nodev: spec.nodev,
        noexec: spec.noexec,
    }
}

impl Backend for Luks {
    /// The image, LUKS2 with one keyslot per password, the token, the file system, `/NAME`
    /// and `.identity`.
    fn create(&self, args: &CreateArgs, keys: &[SecretString]) -> Result<(), StorageError> {
        let (record, machine) = args.spec.host_record()?;
        let view = record.view(&machine);
        let user = record.user_name().to_owned();
        let settings = LuksSettings::from_view(&view);
        let fs_name = view
            .get("fileSystemType")
            .and_then(Value::as_str)
            .unwrap_or("btrfs");
        let fs_type = FsType::parse(fs_name).ok_or_else(|| {
            StorageError::new(
                libc::EPROTONOSUPPORT,
                format!("file system {fs_name} is not supported"),
            )
        })?;
        let size = args
            .disk_size
            .ok_or_else(|| StorageError::new(libc::EINVAL, "request lacks diskSize"))?;
        require_keys(keys)?;
        let image_path = PathBuf::from(&args.spec.image_path);
        let skeleton = args.skeleton.as_deref().map(PathBuf::from);
        home::create(
            &home::CreateRequest {
                user_name: &user,
                image_path: &image_path,
                settings: &settings,
                fs_type,
                size,
                passwords: keys,
                record: &record,
                work_dir: &work_dir(&user),
            },
            |home_dir| {
                if let Some(skel) = skeleton.as_deref() {
                    copy_skeleton(skel, home_dir)?;
                }
                Ok(())
            },
        )
        .map_err(StorageError::from)
    }

    /// Unlock, fsck, mount, idmap; the copies found go to the reconcile.
    fn activate(&self, spec: &HomeSpec, keys: &[SecretString]) -> Result<Mounted, StorageError> {
        let (record, machine) = spec.host_record()?;
        let settings = LuksSettings::from_view(&record.view(&machine));
        require_keys(keys)?;
        let (uid, gid) = spec.ids()?;
        let user = record.user_name().to_owned();
        let trusted = TrustedKeys::load_from(&spec.key_dirs);
        let activated = home::activate(&home::ActivateRequest {
            user_name: &user,
            image_path: Path::new(&spec.image_path),
            home_directory: Path::new(&spec.home_directory),
            settings: &settings,
            passwords: keys,
            uid,
            gid,
            mount_flags: mount_flags(spec),
            work_dir: &work_dir(&user),
            trusted_keys: Some(&trusted),
        })
        .map_err(StorageError::from)?;
        Ok(Mounted {
            header: Some(activated.header_record),
            identity: activated.identity,
            image_lock: Some(activated.image_lock.into()),
        })
    }

    fn write_copies(
        &self,
        spec: &HomeSpec,
        keys: &[SecretString],
        target: &UserRecord,
        which: CopyWrites,
    ) -> Result<(), StorageError> {
        if which.header {
            let mut container =
                LuksContainer::active(&dm_name(&spec.user_name)).map_err(StorageError::from)?;
            let (volume_key, _) = container.volume_key(keys).map_err(StorageError::from)?;
            container
                .set_token_record(&volume_key, target)
                .map_err(StorageError::from)?;
        }
        if which.identity {
            let (uid, gid) = spec.ids()?;
            directory::write_identity(&spec.home_directory, &target.to_pretty_string(), uid, gid)?;
        }
        Ok(())
    }

    fn deactivate(&self, spec: &HomeSpec) -> Result<(), StorageError> {
        let home_directory = &spec.home_directory;
        if !homed_storage::is_mount_point(home_directory) {
            return Err(StorageError::new(
                libc::ENOEXEC,
                format!("{home_directory} is not mounted"),
            ));
        }
        home::deactivate(
            &spec.user_name,
            Path::new(home_directory),
            Path::new(&spec.image_path),
        )
        .map_err(StorageError::from)?;
        let _ = std::fs::remove_dir(home_directory);
        Ok(())
    }

    fn remove(&self, spec: &HomeSpec) -> Result<(), StorageError> {
        let image = &spec.image_path;
        std::fs::remove_file(image).map_err(|e| StorageError::io(format!("removing {image}"), e))
    }

    /// homework's inspect, for fixating a home found in `/home`: opens the image read only,
    /// gets the volume key from the passwords, and returns the header token's record (which
    /// must be signed by a key in `keyDirs`) with the binding values read from the image.
    /// Nothing is activated or written.
    fn inspect(&self, spec: &HomeSpec, keys: &[SecretString]) -> Result<WorkReply, StorageError> {
        require_keys(keys)?;
        let image_path = PathBuf::from(&spec.image_path);
        let trusted = TrustedKeys::load_from(&spec.key_dirs);
        let mut image =
            homed_storage::luks::LuksImage::open(&image_path, Some(&spec.owner()), true)
                .map_err(StorageError::from)?;
        let found = image
            .inspect(keys, Some(&trusted))
            .map_err(StorageError::from)?;
        if found.record.user_name() != spec.user_name
            || found.record.realm() != spec.realm.as_deref()
        {
            return Err(StorageError::new(
                libc::EUCLEAN,
                format!(
                    "the record in the LUKS header of {} belongs to another user",
                    image_path.display()
                ),
            ));
        }
        Ok(WorkReply {
            identity: Some(found.record.to_pretty_string()),
            binding: Some(found.binding_fields()),
            ..WorkReply::default()
        })
    }

    /// Both copies need the volume key: the next activation brings them up to the host record
    /// (the reconcile only moves copies forward).
    fn write_identity(&self, _spec: &HomeSpec) -> Result<(), StorageError> {
        Ok(())
    }

    fn lock(&self, spec: &HomeSpec) -> Result<(), StorageError> {
        home::lock(&spec.user_name, Path::new(&spec.home_directory)).map_err(StorageError::from)
    }

    fn unlock(&self, spec: &HomeSpec, keys: &[SecretString]) -> Result<(), StorageError> {
        require_keys(keys)?;
        home::unlock(&spec.user_name, keys).map_err(StorageError::from)
    }

    /// The first half of a password change: one new keyslot per new password, bound to the
    /// volume key that the old passwords open. The old keyslots stay, so a crash from here
    /// until the daemon has saved the new host record leaves a home the old password opens.
    /// `keys` holds the new passwords first (`newPasswords` of them), then the old ones.
    fn add_keys(&self, args: &AddKeys, keys: &[SecretString]) -> Result<WorkReply, StorageError> {
        let spec = &args.spec;
        let (record, machine) = spec.host_record()?;
        let settings = LuksSettings::from_view(&record.view(&machine));
        require_keys(keys)?;
        let count = Some(args.new_passwords)
            .filter(|n| (1..keys.len()).contains(n))
            .ok_or_else(|| {
                StorageError::new(libc::EINVAL, "the request needs new and old passwords")
            })?;
        let (new, old) = keys.split_at(count);
        crashpoint::reached(KeyChangeStep::BeforeNewKeyslot);
        let (old_slots, new_slots) = with_header(spec, |container| {
            let (volume_key, _) = container.volume_key(old)?;
            let old_slots = container.active_keyslots()?;
            let new_slots = container.add_passwords(&volume_key, new, &settings.pbkdf)?;
            Ok((old_slots, new_slots))
        })?;
        crashpoint::reached(KeyChangeStep::AfterNewKeyslot);
        Ok(WorkReply {
            old_keyslots: Some(old_slots),
            new_keyslots: Some(new_slots),
            ..WorkReply::default()
        })
    }

    /// The second half, after the daemon saved the new host record: the old keyslots are
    /// wiped, then the header token and `~/.identity` get the record's embedded copy. `keys`
    /// holds the new passwords. An inactive home is activated for the `~/.identity` write
    /// under a private home directory and deactivated again, as homework does.
    fn retire_keys(&self, args: &RetireKeys, keys: &[SecretString]) -> Result<(), StorageError> {
        let spec = &args.spec;
        let (record, machine) = spec.host_record()?;
        let settings = LuksSettings::from_view(&record.view(&machine));
        require_keys(keys)?;
        let (uid, gid) = spec.ids()?;
        let embedded = record.embedded_copy();
        let identity = embedded.to_pretty_string();

        // The host record asks for the new password now: the old keyslots go first, so that a
        // crash from here on leaves no keyslot of the old password behind; the older copies of
        // the record in the header and ~/.identity are brought forward by the next activation.
        let volume_key = with_header(spec, |container| {
            let (volume_key, _) = container.volume_key(keys)?;
            container.retire_keyslots(&args.old_keyslots, &args.new_keyslots, |_| Ok(()))?;
            Ok(volume_key)
        })?;
        crashpoint::reached(KeyChangeStep::AfterOldKeyslotRemoved);

        with_header(spec, |container| {
            container.set_token_record(&volume_key, &embedded)
        })?;
        drop(volume_key);
        crashpoint::reached(KeyChangeStep::AfterHeaderRecord);

        if spec.active {
            directory::write_identity(&spec.home_directory, &identity, uid, gid)?;
        } else {
            write_identity_inactive(spec, &settings, keys, &identity, (uid, gid))?;
        }
        crashpoint::reached(KeyChangeStep::AfterIdentity);
        Ok(())
    }
}

/// Copies the skeleton folder into a new home, owned by the stored owner (the idmap shows the
/// files as the user's), by descriptor, as every tree walk goes (`storage::walk`).
fn copy_skeleton(from: &Path, to: &Path) -> Result<(), LuksError> {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(p)
    };
    let src = match open(from) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(LuksError::io(format!("opening {}", from.display()), e)),
    };
    let dst = open(to).map_err(|e| LuksError::io(format!("opening {}", to.display()), e))?;
    homed_storage::walk::copy_tree(src.as_fd(), dst.as_fd(), home::STORED_UID, home::STORED_UID)
        .map_err(|e| LuksError::io(format!("copying {}", from.display()), e))
}

/// Runs `work` on the home's LUKS2 header: through the active device-mapper device when the
/// home is active (the daemon holds the image lock then), else on the image file, locked like
/// an activation would lock it, over a loop device.
fn with_header<T>(
    spec: &HomeSpec,
    work: impl FnOnce(&mut LuksContainer) -> Result<T, LuksError>,
) -> Result<T, StorageError> {
    if spec.active {
        let mut container =
            LuksContainer::active(&dm_name(&spec.user_name)).map_err(StorageError::from)?;
        return work(&mut container).map_err(StorageError::from);
    }
    use std::os::unix::fs::OpenOptionsExt as _;
    let image_path = PathBuf::from(&spec.image_path);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&image_path)
        .map_err(|e| StorageError::io(format!("opening {}", image_path.display()), e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(StorageError::from(LuksError::InUse(
                image_path.display().to_string(),
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(StorageError::io("locking the image", e));
        }
    }
    let mut image =
        homed_storage::luks::LuksImage::open_file(file, &image_path, Some(&spec.user_name), false)
            .map_err(StorageError::from)?;
    work(image.container()).map_err(StorageError::from)
}

fn write_identity_inactive(
    spec: &HomeSpec,
    settings: &LuksSettings,
    passwords: &[SecretString],
    identity: &str,
    (uid, gid): (u32, u32),
) -> Result<(), StorageError> {
    let user = spec.user_name.as_str();
    let image_path = PathBuf::from(&spec.image_path);
    let mount_point = work_folder_in(PASSWD_MOUNT_ROOT, user);
    // The whole visit happens in a mount namespace of its own: the home, mounted only to
    // rewrite `~/.identity`, is never seen (or held open) by anyone else.
    let private = home::PrivateMounts::enter().map_err(StorageError::from)?;
    let activated = home::activate(&home::ActivateRequest {
        user_name: user,
        image_path: &image_path,
        home_directory: &mount_point,
        settings,
        passwords,
        uid,
        gid,
        mount_flags: HomeMountFlags::default(),
        work_dir: &work_dir(user),
        trusted_keys: None,
    })
    .map_err(StorageError::from)?;
    let written = directory::write_identity(&mount_point.to_string_lossy(), identity, uid, gid);
    let closed = home::deactivate(user, &mount_point, &image_path).map_err(StorageError::from);
    drop(activated);
    drop(private);
    let _ = std::fs::remove_dir(&mount_point);
    written.and(closed)
}
