//! The `subvolume` backend (homed-spec §3.3): the home is `/home/NAME.homedir` made as a btrfs
//! subvolume, its files stored as UID 65534 and shown to the user through an idmapped mount.
//! A record's `diskSize` becomes a limit on the subvolume's own qgroup, as homed sets it.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

use super::directory::{self, CreateRequest};
use super::luks::home::{STORED_UID, idmapped_tree};
use super::{StorageError, is_mount_point, sys};

const BTRFS_SUPER_MAGIC: i64 = 0x9123_683e;
/// The inode number of the root directory of every btrfs subvolume.
const SUBVOLUME_ROOT_INODE: u64 = 256;

const BTRFS_IOCTL_MAGIC: u64 = 0x94;
const BTRFS_PATH_NAME_MAX: usize = 4087;
pub(crate) const BTRFS_QGROUP_LIMIT_MAX_RFER: u64 = 1;
const BTRFS_QUOTA_CTL_ENABLE: u64 = 1;

/// `struct btrfs_ioctl_quota_ctl_args`.
#[repr(C)]
struct QuotaCtlArgs {
    cmd: u64,
    status: u64,
}

/// `struct btrfs_ioctl_vol_args`.
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; BTRFS_PATH_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_qgroup_limit_args` (with its `struct btrfs_qgroup_limit`).
#[repr(C)]
struct QgroupLimitArgs {
    qgroupid: u64,
    flags: u64,
    max_rfer: u64,
    max_excl: u64,
    rsv_rfer: u64,
    rsv_excl: u64,
}

/// Linux's `_IOC(dir, 0x94, nr, size)` for the btrfs ioctls.
pub(crate) const fn btrfs_ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (BTRFS_IOCTL_MAGIC << 8) | nr
}
pub(crate) const IOC_WRITE: u64 = 1;
pub(crate) const IOC_READ: u64 = 2;
const BTRFS_IOC_SUBVOL_CREATE: u64 = btrfs_ioc(IOC_WRITE, 14, size_of::<VolArgs>());
const BTRFS_IOC_SNAP_DESTROY: u64 = btrfs_ioc(IOC_WRITE, 15, size_of::<VolArgs>());
const BTRFS_IOC_QGROUP_LIMIT: u64 = btrfs_ioc(IOC_READ, 43, size_of::<QgroupLimitArgs>());
const BTRFS_IOC_QUOTA_CTL: u64 = btrfs_ioc(IOC_READ | IOC_WRITE, 40, size_of::<QuotaCtlArgs>());

fn vol_args(name: &CStr) -> io::Result<Box<VolArgs>> {
    let bytes = name.to_bytes();
    if bytes.len() > BTRFS_PATH_NAME_MAX {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    let mut args = Box::new(VolArgs {
        fd: 0,
        name: [0; BTRFS_PATH_NAME_MAX + 1],
    });
    args.name[..bytes.len()].copy_from_slice(bytes);
    Ok(args)
}

fn btrfs_ioctl<T>(fd: BorrowedFd<'_>, request: u64, arg: &mut T) -> io::Result<()> {
    // SAFETY: `fd` is open and `arg` points to a writable, initialised struct of the layout
    // and size that `request` encodes.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, std::ptr::from_mut(arg)) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Whether the file system holding `fd` is btrfs.
fn on_btrfs(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let st = nix::sys::statfs::fstatfs(fd)?;
    Ok(st.filesystem_type().0 as i64 == BTRFS_SUPER_MAGIC)
}

/// Whether `path` (not followed) is the root of a btrfs subvolume.
pub fn is_subvolume(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_dir() || meta.ino() != SUBVOLUME_ROOT_INODE {
        return false;
    }
    path.to_str()
        .and_then(|p| sys::open_dir_path(p).ok())
        .is_some_and(|fd| on_btrfs(fd.as_fd()).unwrap_or(false))
}

/// What `create` needs.
pub struct NewSubvolume<'a> {
    pub image_path: &'a str,
    pub skeleton: Option<&'a str>,
    pub access_mode: u32,
    pub identity: &'a str,
    /// The record's `diskSize`, set as the subvolume's qgroup limit.
    pub disk_size: Option<u64>,
}

/// Makes the home as a new subvolume, its files owned by [`STORED_UID`]; refuses where the
/// home root is not btrfs, before anything is made. A wrong medium is `EMEDIUMTYPE`, which
/// the daemon passes on with its message (`ENOTTY` would lose it).
pub fn create(req: &NewSubvolume<'_>) -> Result<(), StorageError> {
    let (parent, _) = directory::split(req.image_path)?;
    let btrfs = on_btrfs(parent.as_fd()).map_err(|e| {
        StorageError::io(format!("checking the file system of {}", req.image_path), e)
    })?;
    if !btrfs {
        return Err(StorageError::new(
            libc::EMEDIUMTYPE,
            format!(
                "{}: the home root is not on btrfs, so it cannot hold a subvolume home",
                req.image_path
            ),
        ));
    }
    drop(parent);
    directory::create_with(
        &CreateRequest {
            image_path: req.image_path,
            skeleton: req.skeleton,
            uid: STORED_UID,
            gid: STORED_UID,
            access_mode: req.access_mode,
            identity: req.identity,
        },
        |parent, name| {
            let mut args = vol_args(name)?;
            btrfs_ioctl(parent.as_fd(), BTRFS_IOC_SUBVOL_CREATE, &mut *args)
        },
    )?;
    if let Some(size) = req.disk_size {
        // As homed: quota is switched on for the file system, and a failure leaves the home
        // without a limit rather than without a home.
        if let Err(e) = enable_quota(req.image_path).and_then(|()| set_limit(req.image_path, size))
        {
            eprintln!(
                "Failed to set disk quota on {}, ignoring: {e}",
                req.image_path
            );
        }
    }
    Ok(())
}

/// Switches on qgroup accounting for the file system holding `image_path` (a no-op when on).
pub(crate) fn enable_quota(image_path: &str) -> Result<(), StorageError> {
    let fd = sys::open_dir_path(image_path)
        .map_err(|e| StorageError::io(format!("opening {image_path}"), e))?;
    let mut args = QuotaCtlArgs {
        cmd: BTRFS_QUOTA_CTL_ENABLE,
        status: 0,
    };
    btrfs_ioctl(fd.as_fd(), BTRFS_IOC_QUOTA_CTL, &mut args)
        .map_err(|e| StorageError::io(format!("enabling quota under {image_path}"), e))
}

/// Sets the referenced-space limit of the subvolume's own (level-0) qgroup.
pub fn set_limit(image_path: &str, size: u64) -> Result<(), StorageError> {
    let fd = sys::open_dir_path(image_path)
        .map_err(|e| StorageError::io(format!("opening {image_path}"), e))?;
    // qgroupid 0 names the qgroup of the subvolume `fd` is in.
    let mut args = QgroupLimitArgs {
        qgroupid: 0,
        flags: BTRFS_QGROUP_LIMIT_MAX_RFER,
        max_rfer: size,
        max_excl: 0,
        rsv_rfer: 0,
        rsv_excl: 0,
    };
    btrfs_ioctl(fd.as_fd(), BTRFS_IOC_QGROUP_LIMIT, &mut args)
        .map_err(|e| StorageError::io(format!("setting the quota of {image_path}"), e))
}

fn not_a_subvolume(image_path: &str) -> StorageError {
    StorageError::new(
        libc::EMEDIUMTYPE,
        format!("{image_path} is not a btrfs subvolume, but the record says storage subvolume"),
    )
}

/// What `activate` needs: the same as for a directory home.
pub use directory::ActivateRequest;

/// Mounts the subvolume on the home directory through an idmapped mount that shows the stored
/// owner as the user, then applies the record's flags; where idmapping is unavailable, a plain
/// bind mount with a real chown (as homed falls back). Returns `.identity`'s text.
pub fn activate(req: &ActivateRequest<'_>) -> Result<Option<Vec<u8>>, StorageError> {
    let image = Path::new(req.image_path);
    if !image.exists() {
        return Err(StorageError::new(
            libc::ENETUNREACH,
            format!("{} is missing", req.image_path),
        ));
    }
    if !is_subvolume(image) {
        return Err(not_a_subvolume(req.image_path));
    }
    let plain = || directory::activate(req);
    if (req.uid, req.gid) == (STORED_UID, STORED_UID) {
        return plain();
    }
    let Ok(tree) = idmapped_tree(image, (STORED_UID, req.uid), (STORED_UID, req.gid)) else {
        return plain();
    };
    if is_mount_point(req.home_directory) {
        return Err(StorageError::new(
            libc::EALREADY,
            format!("{} is mounted already", req.home_directory),
        ));
    }
    std::fs::create_dir_all(req.home_directory)
        .map_err(|e| StorageError::io(format!("creating {}", req.home_directory), e))?;
    super::luks::sys::move_mount_to(tree.as_fd(), Path::new(req.home_directory)).map_err(|e| {
        StorageError::io(format!("attaching the home on {}", req.home_directory), e)
    })?;
    let rest = remount_and_read(req);
    if let Err(e) = &rest {
        let undo = nix::mount::umount2(req.home_directory, MntFlags::UMOUNT_NOFOLLOW);
        return Err(StorageError::new(
            e.errno,
            match undo {
                Ok(()) => format!("{e}; the home was unmounted again"),
                Err(u) => format!("{e}; unmounting it again failed too: {u}"),
            },
        ));
    }
    rest
}

fn remount_and_read(req: &ActivateRequest<'_>) -> Result<Option<Vec<u8>>, StorageError> {
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RELATIME;
    if req.flags.nosuid {
        flags |= MsFlags::MS_NOSUID;
    }
    if req.flags.nodev {
        flags |= MsFlags::MS_NODEV;
    }
    if req.flags.noexec {
        flags |= MsFlags::MS_NOEXEC;
    }
    nix::mount::mount(
        None::<&str>,
        req.home_directory,
        None::<&str>,
        flags,
        None::<&str>,
    )
    .map_err(|e| StorageError::io("remounting the home with its flags", e.into()))?;
    match directory::read_identity(req.home_directory) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.errno == libc::ENOENT => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes the subvolume (`BTRFS_IOC_SNAP_DESTROY`), never while it is mounted.
pub fn remove(image_path: &str, home_directory: &str) -> Result<(), StorageError> {
    if is_mount_point(home_directory) {
        return Err(StorageError::new(
            libc::EBUSY,
            format!("{home_directory} is still mounted"),
        ));
    }
    let path = Path::new(image_path);
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if !is_subvolume(path) {
        return Err(not_a_subvolume(image_path));
    }
    let (parent, name) = directory::split(image_path)?;
    let mut args = vol_args(&name).map_err(|e| StorageError::io(image_path, e))?;
    btrfs_ioctl(parent.as_fd(), BTRFS_IOC_SNAP_DESTROY, &mut *args)
        .map_err(|e| StorageError::io(format!("deleting the subvolume {image_path}"), e))?;
    if let Ok((parent, name)) = directory::split(home_directory) {
        let _ = sys::unlink_at(parent.as_fd(), &name, true);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_linux() {
        // The values of linux/btrfs.h on x86_64 and aarch64.
        assert_eq!(size_of::<VolArgs>(), 4096);
        assert_eq!(BTRFS_IOC_SUBVOL_CREATE, 0x5000_940e);
        assert_eq!(BTRFS_IOC_SNAP_DESTROY, 0x5000_940f);
        assert_eq!(BTRFS_IOC_QGROUP_LIMIT, 0x8030_942b);
        assert_eq!(BTRFS_IOC_QUOTA_CTL, 0xc010_9428);
    }

    #[test]
    fn a_plain_folder_is_no_subvolume() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!is_subvolume(tmp.path()));
        assert!(!is_subvolume(&tmp.path().join("missing")));
    }
}
