//! The LUKS home as homework handles it: create (image, file system, `/NAME`, `.identity`),
//! activate (lock the image, mark it dirty, unlock, fsck, mount, hand the `/NAME` folder to the
//! user, bind it onto the home directory), lock, unlock and deactivate (homed-spec §3.1–3.2, §7).
//!
//! Every function undoes what it did when a later step fails. They are meant to run in a worker
//! process inside a mount namespace whose mounts propagate to the daemon's.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use secrecy::SecretString;

use super::container::LuksContainer;
use super::filesystem::{FsType, mount_flags};
use super::image::{ImageLayout, LuksImage};
pub use super::private_mounts::PrivateMounts;
use super::settings::LuksSettings;
use super::{LuksError, dm_name, sys};
use crate::{directory, walk};
use homed_shared::record::UserRecord;
use homed_shared::signing::TrustedKeys;
use homed_shared::wait::wait_until;

/// The owner of a LUKS home's files on disk; activation maps or chowns them to the user.
pub const STORED_UID: u32 = 65534;
/// The xattr homed sets on an image while it is in use.
pub const DIRTY_XATTR: &str = "user.home-dirty";
/// How long deactivation waits for the device-mapper device to be released.
const DEACTIVATE_TIMEOUT: Duration = Duration::from_secs(30);

/// Mount options from the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HomeMountFlags {
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
}

impl Default for HomeMountFlags {
    fn default() -> Self {
        HomeMountFlags {
            nosuid: true,
            nodev: true,
            noexec: false,
        }
    }
}

/// What creating a LUKS home needs.
pub struct CreateRequest<'a> {
    pub user_name: &'a str,
    pub image_path: &'a Path,
    pub settings: &'a LuksSettings,
    pub fs_type: FsType,
    pub size: u64,
    /// The user's passwords; each gets a keyslot.
    pub passwords: &'a [SecretString],
    /// The full record; its embedded copy goes into the token and `~/.identity`.
    pub record: &'a UserRecord,
    /// An empty folder where the new file system is mounted while it is filled.
    pub work_dir: &'a Path,
}

/// What activating a LUKS home needs.
pub struct ActivateRequest<'a> {
    pub user_name: &'a str,
    pub image_path: &'a Path,
    pub home_directory: &'a Path,
    pub settings: &'a LuksSettings,
    pub passwords: &'a [SecretString],
    /// The user's UID and GID on this machine.
    pub uid: u32,
    pub gid: u32,
    pub mount_flags: HomeMountFlags,
    /// An empty folder where the file system is mounted before the bind onto the home.
    pub work_dir: &'a Path,
    /// When given, the record in the header token must be signed by one of these keys, or the
    /// activation stops before anything is mounted.
    pub trusted_keys: Option<&'a TrustedKeys>,
}

/// An activated home.
pub struct Activated {
    /// The image file, holding the exclusive lock: keep it open while the home is active or
    /// locked (homed passes it to the daemon).
    pub image_lock: File,
    /// The record from the LUKS header token (not yet checked against trusted keys).
    pub header_record: UserRecord,
    /// The raw `~/.identity` text, when there is one.
    pub identity: Option<Vec<u8>>,
    /// The file system found inside.
    pub fs_type: FsType,
}

/// Undo actions collected while a multi-step operation runs.
#[derive(Default)]
struct Rollback {
    mounts: Vec<PathBuf>,
    dm: Option<String>,
    dirty: Option<File>,
    files: Vec<PathBuf>,
}

impl Rollback {
    /// Undoes everything in reverse order and says what could not be undone.
    fn run(self, err: LuksError) -> LuksError {
        let mut left = Vec::new();
        for m in self.mounts.iter().rev() {
            if umount2(m, MntFlags::MNT_DETACH).is_err() {
                left.push(format!("mount {}", m.display()));
            }
        }
        if let Some(name) = &self.dm
            && deactivate_dm(name).is_err()
        {
            left.push(format!("device {name}"));
        }
        if let Some(file) = &self.dirty {
            let _ = sys::remove_xattr(file.as_fd(), DIRTY_XATTR);
        }
        for f in &self.files {
            if fs::remove_file(f).is_err() {
                left.push(format!("file {}", f.display()));
            }
        }
        if left.is_empty() {
            err
        } else {
            LuksError::Refused(format!(
                "{err} (and undoing it left behind: {})",
                left.join(", ")
            ))
        }
    }
}

fn mount_at(
    source: &Path,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), LuksError> {
    mount(Some(source), target, fstype, flags, data).map_err(|e| {
        LuksError::io(
            format!("mounting {} on {}", source.display(), target.display()),
            e.into(),
        )
    })
}

fn wait_for_node(path: &Path) -> Result<(), LuksError> {
    if !wait_until(Duration::from_secs(10), || path.exists()) {
        return Err(LuksError::Refused(format!(
            "{} did not appear",
            path.display()
        )));
    }
    Ok(())
}

fn refuse_active(name: &str) -> Result<(), LuksError> {
    if Path::new(&format!("/dev/mapper/{name}")).exists() {
        return Err(LuksError::AlreadyExists(format!(
            "the device /dev/mapper/{name}"
        )));
    }
    Ok(())
}

/// Creates a new home image at `req.image_path`, which must not exist. The image is built
/// under a temporary name in the same folder and linked into place only when complete.
/// `populate` runs with the new home folder mounted (for the skeleton); files it makes must
/// be owned by [`STORED_UID`].
pub fn create(
    req: &CreateRequest<'_>,
    populate: impl FnOnce(&Path) -> Result<(), LuksError>,
) -> Result<(), LuksError> {
    let parent = req.image_path.parent().unwrap_or(Path::new("."));
    let file_name = req
        .image_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| LuksError::Refused("the image path has no file name".into()))?;
    if req.image_path.exists() {
        return Err(LuksError::AlreadyExists(
            req.image_path.display().to_string(),
        ));
    }
    let name = dm_name(req.user_name);
    refuse_active(&name)?;
    let mut tag = [0u8; 8];
    getrandom::fill(&mut tag).map_err(LuksError::random)?;
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let temporary = parent.join(format!(".#{file_name}{tag}"));

    let mut undo = Rollback::default();
    let layout = ImageLayout {
        size: req.size,
        preallocate: !req.settings.discard,
    };
    let (mut image, volume_key) = LuksImage::create(
        &temporary,
        req.user_name,
        req.settings,
        &layout,
        req.passwords,
        req.record,
    )?;
    undo.files.push(temporary.clone());
    // The new file system is mounted where only this process sees it; the guard outlives the
    // undo below, which unmounts inside the same namespace. Entering it is the first step that
    // may fail after the image exists, so a failure goes through the undo too.
    let _private = match PrivateMounts::enter() {
        Ok(ns) => ns,
        Err(e) => return Err(undo.run(e)),
    };
    let result = (|| {
        let device = image.activate(req.user_name, &volume_key, req.settings.discard)?;
        undo.dm = Some(name.clone());
        wait_for_node(&device)?;
        req.fs_type.mkfs(
            &device,
            req.user_name,
            req.settings.file_system_uuid.as_deref(),
        )?;
        make_work_dir(req.work_dir)?;
        mount_at(
            &device,
            req.work_dir,
            Some(req.fs_type.as_str()),
            mount_flags(true, true, false),
            Some(&req.fs_type.mount_options()),
        )?;
        undo.mounts.push(req.work_dir.to_owned());
        let home = req.work_dir.join(req.user_name);
        fs::create_dir(&home)
            .map_err(|e| LuksError::io(format!("creating {}", home.display()), e))?;
        let set_owner = |p: &Path, mode: u32| -> Result<(), LuksError> {
            std::os::unix::fs::lchown(p, Some(STORED_UID), Some(STORED_UID))
                .and_then(|()| fs::set_permissions(p, fs::Permissions::from_mode(mode)))
                .map_err(|e| LuksError::io(format!("setting the owner of {}", p.display()), e))
        };
        set_owner(&home, 0o700)?;
        let identity = home.join(".identity");
        fs::write(&identity, req.record.embedded_copy().to_pretty_string())
            .map_err(|e| LuksError::io(format!("writing {}", identity.display()), e))?;
        set_owner(&identity, 0o600)?;
        populate(&home)?;
        let root = File::open(req.work_dir)
            .map_err(|e| LuksError::io(format!("opening {}", req.work_dir.display()), e))?;
        nix::unistd::syncfs(&root)
            .map_err(|e| LuksError::io("syncing the new file system", e.into()))?;
        drop(root);
        umount2(req.work_dir, MntFlags::empty()).map_err(|e| {
            LuksError::io(format!("unmounting {}", req.work_dir.display()), e.into())
        })?;
        undo.mounts.clear();
        image.container().deactivate(&name, false)?;
        undo.dm = None;
        image
            .file()
            .sync_all()
            .map_err(|e| LuksError::io("syncing the image", e))?;
        // Linking fails if something appeared at the final name meanwhile: nothing is replaced.
        fs::hard_link(&temporary, req.image_path).map_err(|e| {
            if e.kind() == ErrorKind::AlreadyExists {
                LuksError::AlreadyExists(req.image_path.display().to_string())
            } else {
                LuksError::io(format!("linking {}", req.image_path.display()), e)
            }
        })?;
        let _ = fs::remove_file(&temporary);
        Ok(())
    })();
    drop(volume_key);
    drop(image);
    result.map_err(|e| undo.run(e))
}

/// Activates a home: image lock, dirty marker, passwords, the record's LUKS parameters,
/// `/dev/mapper/home-NAME`, fsck, mount with the record's flags, the `/NAME` folder owned by
/// the user, and a bind mount of it onto the home directory.
pub fn activate(req: &ActivateRequest<'_>) -> Result<Activated, LuksError> {
    let name = dm_name(req.user_name);
    refuse_active(&name)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(req.image_path)
        .map_err(|e| LuksError::io(format!("opening {}", req.image_path.display()), e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(LuksError::InUse(req.image_path.display().to_string()));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(LuksError::io("locking the image", e));
        }
    }
    let image_lock = file
        .try_clone()
        .map_err(|e| LuksError::io("duplicating the image descriptor", e))?;
    let mut image = LuksImage::open_file(file, req.image_path, Some(req.user_name), false)?;
    let mut undo = Rollback::default();
    let marker = image_lock
        .try_clone()
        .map_err(|e| LuksError::io("duplicating the image descriptor", e))?;
    // Like homed, go on where the file system has no user xattrs (tmpfs before Linux 6.6).
    match sys::set_xattr(marker.as_fd(), DIRTY_XATTR, b"1") {
        Ok(()) => undo.dirty = Some(marker),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
        Err(e) => return Err(LuksError::io("marking the image dirty", e)),
    }

    // The raw file system is mounted where only this process sees it; `private` outlives the
    // undo below, which unmounts inside the same namespace.
    let mut private = Some(PrivateMounts::enter()?);
    let result = (|| {
        let volume_key = image.unlock(req.passwords)?;
        image.container().check_settings(req.settings)?;
        let header_record = image.container().token_record(&volume_key)?;
        if let Some(keys) = req.trusted_keys {
            let verdict = keys.verdict(&header_record).map_err(|e| {
                LuksError::BadToken(format!("its record's signature is malformed: {e}"))
            })?;
            if !verdict.is_trusted() {
                return Err(LuksError::UntrustedRecord(format!("{verdict:?}")));
            }
        }
        let device = image.activate(req.user_name, &volume_key, req.settings.discard)?;
        drop(volume_key);
        undo.dm = Some(name.clone());
        wait_for_node(&device)?;
        let fs_type = FsType::probe(&device)?.ok_or_else(|| {
            LuksError::Refused("the LUKS volume holds no ext4, btrfs or xfs file system".into())
        })?;
        fs_type.fsck(&device)?;
        make_work_dir(req.work_dir)?;
        let flags = mount_flags(
            req.mount_flags.nosuid,
            req.mount_flags.nodev,
            req.mount_flags.noexec,
        );
        mount_at(
            &device,
            req.work_dir,
            Some(fs_type.as_str()),
            flags,
            Some(&fs_type.mount_options()),
        )?;
        undo.mounts.push(req.work_dir.to_owned());
        let home = req.work_dir.join(req.user_name);
        let meta = fs::symlink_metadata(&home).map_err(|e| {
            LuksError::io(
                format!("finding the home folder /{} in the image", req.user_name),
                e,
            )
        })?;
        if !meta.is_dir() {
            return Err(LuksError::Refused(format!(
                "/{} in the image is not a folder",
                req.user_name
            )));
        }
        // The home's owner controls `~/.identity`: read it by descriptor, never through a
        // symlink, only as a regular file and only up to the size a record may have, so that a
        // link to a device or a huge file cannot make root open or swallow it.
        let identity = match directory::read_identity(&home.to_string_lossy()) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.errno == libc::ENOENT => None,
            Err(e) => {
                return Err(LuksError::Refused(format!(
                    "~/.identity is not a regular file of at most 4 MiB ({e})"
                )));
            }
        };
        fs::create_dir_all(req.home_directory)
            .map_err(|e| LuksError::io(format!("creating {}", req.home_directory.display()), e))?;
        let (stored_uid, stored_gid) = (meta.uid(), meta.gid());
        // Preferably an idmapped mount: the files keep their stored owner on disk (portable
        // images) and show up as the user's. Where that is unavailable, a real chown.
        // The home is a detached copy of `/NAME` (with the file system's mount flags), so that
        // it can be attached outside this namespace as the last step.
        let owners_differ = stored_uid != req.uid || stored_gid != req.gid;
        let idmapped = if owners_differ {
            idmapped_tree(&home, (stored_uid, req.uid), (stored_gid, req.gid)).ok()
        } else {
            None
        };
        let tree = match idmapped {
            Some(tree) => tree,
            None => {
                if owners_differ {
                    chown_tree(&home, stored_uid, req.uid, req.gid)?;
                }
                sys::clone_tree(&home).map_err(|e| LuksError::io("making the home's mount", e))?
            }
        };
        umount2(req.work_dir, MntFlags::empty()).map_err(|e| {
            LuksError::io(format!("unmounting {}", req.work_dir.display()), e.into())
        })?;
        undo.mounts.retain(|m| m != req.work_dir);
        match private.take() {
            Some(ns) => ns.attach_outside(tree.as_fd(), req.home_directory)?,
            None => sys::move_mount_to(tree.as_fd(), req.home_directory).map_err(|e| {
                LuksError::io(
                    format!("attaching the home on {}", req.home_directory.display()),
                    e,
                )
            })?,
        }
        Ok((header_record, identity, fs_type))
    })();
    drop(image);
    match result {
        Ok((header_record, identity, fs_type)) => Ok(Activated {
            image_lock,
            header_record,
            identity,
            fs_type,
        }),
        Err(e) => Err(undo.run(e)),
    }
}

/// homed's ID map for a home (homed-spec §3.1): everything below the home range and between it
/// and `nobody` keeps its ID, the stored owner becomes the user. `None` when the two IDs are
/// not a home-range ID or 65534 (then the simple map would not be one-to-one).
fn id_map(stored: u32, target: u32) -> Option<String> {
    use homed_shared::record::{HOME_UID_MAX, HOME_UID_MIN};
    let fits = |id: u32| (HOME_UID_MIN..=HOME_UID_MAX).contains(&id) || id == STORED_UID;
    if stored == target || !fits(stored) || !fits(target) {
        return None;
    }
    let above = HOME_UID_MAX + 1;
    Some(format!(
        "0 0 {HOME_UID_MIN}\n{stored} {target} 1\n{above} {above} {}\n",
        STORED_UID - above
    ))
}

/// Mounts `source` on `target` through an idmapped clone mapping the stored owner to the user.
pub(crate) fn idmapped_tree(
    source: &Path,
    uids: (u32, u32),
    gids: (u32, u32),
) -> Result<OwnedFd, LuksError> {
    let unavailable = || LuksError::Refused("no ID map fits these owners".into());
    let uid_map = id_map(uids.0, uids.1).ok_or_else(unavailable)?;
    let gid_map = id_map(gids.0, gids.1).ok_or_else(unavailable)?;
    let userns = sys::user_namespace(&uid_map, &gid_map)
        .map_err(|e| LuksError::io("creating the ID-mapping user namespace", e))?;
    sys::idmapped_clone(source, userns.as_fd())
        .map_err(|e| LuksError::io("making an idmapped mount", e))
}

/// Creates the work folder root-only: whatever is mounted there must not be reachable even
/// where the mount itself would be visible.
fn make_work_dir(path: &Path) -> Result<(), LuksError> {
    let io = |e| LuksError::io(format!("creating {}", path.display()), e);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io)?;
    }
    match fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io)
}

/// Changes the owner of everything under `root` that `from` (or the stored owner) owns to
/// `uid`/`gid` (the fallback where idmapped mounts are unavailable), by descriptor: no symlink
/// is followed and no other mount entered. The image's file system holds this home alone, so
/// hard links stay inside it and change owner too.
fn chown_tree(root: &Path, from: u32, uid: u32, gid: u32) -> Result<(), LuksError> {
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(root)
        .map_err(|e| LuksError::io(format!("opening {}", root.display()), e))?;
    walk::chown_tree_of(
        dir.as_fd(),
        &[from, STORED_UID],
        walk::HardLinks::Follow,
        (uid, gid),
    )
    .map_err(|e| LuksError::io(format!("changing the owners under {}", root.display()), e))
}

/// Locks an active home: syncs its file system, then suspends dm-crypt, which drops the key.
pub fn lock(user_name: &str, home_directory: &Path) -> Result<(), LuksError> {
    let root = File::open(home_directory)
        .map_err(|e| LuksError::io(format!("opening {}", home_directory.display()), e))?;
    nix::unistd::syncfs(&root).map_err(|e| LuksError::io("syncing the home", e.into()))?;
    drop(root);
    let name = dm_name(user_name);
    LuksContainer::active(&name)?.suspend(&name)
}

/// Unlocks a locked home: the volume key from the passwords (read from the header of the
/// device underneath), then resume.
pub fn unlock(user_name: &str, passwords: &[SecretString]) -> Result<(), LuksError> {
    let name = dm_name(user_name);
    let mut container = LuksContainer::active(&name)?;
    let (volume_key, _) = container.volume_key(passwords)?;
    container.resume(&name, &volume_key)
}

/// Whether dm-crypt reports the home's device suspended (`Some(false)` when active, `None` when
/// there is no such device).
pub fn is_suspended(user_name: &str) -> Option<bool> {
    let name = dm_name(user_name);
    let entries = fs::read_dir("/sys/block").ok()?;
    for entry in entries.flatten() {
        let dir = entry.path();
        if fs::read_to_string(dir.join("dm/name")).is_ok_and(|n| n.trim() == name) {
            let s = fs::read_to_string(dir.join("dm/suspended")).ok()?;
            return Some(s.trim() == "1");
        }
    }
    None
}

fn deactivate_dm(name: &str) -> Result<(), LuksError> {
    // The device stays busy for a moment after the last unmount: retried while it says so.
    let mut outcome = Ok(());
    wait_until(DEACTIVATE_TIMEOUT, || {
        outcome = LuksContainer::deactivate_by_name(name);
        !matches!(&outcome, Err(e) if e.errno() == Some(libc::EBUSY))
    });
    outcome
}

/// Deactivates a home: syncs and unmounts the home directory, removes the device-mapper device
/// (the loop device goes with it) and clears the dirty marker on the image.
pub fn deactivate(
    user_name: &str,
    home_directory: &Path,
    image_path: &Path,
) -> Result<(), LuksError> {
    if let Ok(root) = File::open(home_directory) {
        let _ = nix::unistd::syncfs(&root);
    }
    umount2(home_directory, MntFlags::empty())
        .map_err(|e| LuksError::io(format!("unmounting {}", home_directory.display()), e.into()))?;
    deactivate_dm(&dm_name(user_name))?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(image_path)
        .map_err(|e| LuksError::io(format!("opening {}", image_path.display()), e))?;
    sys::remove_xattr(file.as_fd(), DIRTY_XATTR)
        .map_err(|e| LuksError::io("clearing the dirty marker", e))
}

/// Whether the image carries the dirty marker (in use, or not cleanly deactivated).
pub fn is_dirty(image_path: &Path) -> Result<bool, LuksError> {
    let file = File::open(image_path)
        .map_err(|e| LuksError::io(format!("opening {}", image_path.display()), e))?;
    sys::has_xattr(file.as_fd(), DIRTY_XATTR).map_err(|e| LuksError::io("reading xattrs", e))
}

#[cfg(test)]
mod tests {
    use super::id_map;

    #[test]
    fn id_maps_follow_homed() {
        assert_eq!(
            id_map(65534, 60100).unwrap(),
            "0 0 60001\n65534 60100 1\n60514 60514 5020\n"
        );
        assert!(id_map(60100, 60100).is_none());
        assert!(id_map(1000, 60100).is_none());
        assert!(id_map(65534, 0).is_none());
        assert!(id_map(60200, 60100).is_some());
    }
}
