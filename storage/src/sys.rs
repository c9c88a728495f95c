//! The system calls the storage code makes, each behind a safe function that takes and returns
//! owned file descriptors.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `openat(2)`; the result is always close-on-exec and never follows a final symlink.
pub fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let flags = flags | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NOCTTY;
    // SAFETY: `dir` is an open descriptor and `name` a NUL-terminated string, both valid for the
    // call; openat returns a new descriptor (or -1) that nobody else owns.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags,
            libc::c_uint::from(mode),
        )
    })?;
    // SAFETY: `fd` was just returned by openat and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a directory by absolute path, refusing a symlink as the last component.
pub fn open_dir_path(path: &str) -> io::Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is NUL-terminated and outlives the call.
    let fd = check(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: `fd` was just returned by open and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

/// `fstatat(2)` without following a final symlink; an empty name means the descriptor itself.
pub fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    let flags = if name.is_empty() {
        libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW
    } else {
        libc::AT_SYMLINK_NOFOLLOW
    };
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `dir` is open, `name` is NUL-terminated and `st` is a writable stat buffer.
    check(unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, flags) })?;
    Ok(st)
}

/// The id of the mount `fd` lives on (statx `STATX_MNT_ID`), which tells bind mounts of the
/// same file system apart, unlike `st_dev`.
pub fn mount_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: an all-zero `statx` is a valid value of this plain C struct.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open, the empty path is NUL-terminated and `stx` is writable.
    check(unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    })?;
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(io::Error::from_raw_os_error(libc::ENOTSUP));
    }
    Ok(stx.stx_mnt_id)
}

/// The names in a directory (without `.` and `..`), read through a duplicate of `dir`.
pub fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    let dup = dir.try_clone_to_owned()?;
    let raw = dup.as_raw_fd();
    // SAFETY: `raw` is an open directory descriptor; on success fdopendir owns it, so the
    // OwnedFd is forgotten below, and closedir closes it.
    let stream = unsafe { libc::fdopendir(raw) };
    if stream.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(dup);
    // SAFETY: `stream` was just opened and is used by this thread only.
    unsafe { libc::rewinddir(stream) };
    let mut names = Vec::new();
    loop {
        // SAFETY: `stream` is a valid DIR*; readdir returns NULL at the end or a pointer valid
        // until the next readdir/closedir, and the name is copied at once.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            break;
        }
        // SAFETY: d_name of a returned entry is a NUL-terminated string inside it.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        names.push(name.to_owned());
    }
    // SAFETY: `stream` is valid and closed exactly once.
    unsafe { libc::closedir(stream) };
    Ok(names)
}

pub fn mkdir_at(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: `dir` is open and `name` NUL-terminated for the duration of the call.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(|_| ())
}

pub fn unlink_at(dir: BorrowedFd<'_>, name: &CStr, remove_dir: bool) -> io::Result<()> {
    let flags = if remove_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: `dir` is open and `name` NUL-terminated for the duration of the call.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(|_| ())
}

pub fn rename_at(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: `dir` is open and both names are NUL-terminated for the duration of the call.
    check(unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) })
        .map(|_| ())
}

/// Changes the owner of `name` in `dir` itself, never of what a symlink points to.
pub fn chown_at(dir: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    let flags = if name.is_empty() {
        libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW
    } else {
        libc::AT_SYMLINK_NOFOLLOW
    };
    // SAFETY: `dir` is open and `name` NUL-terminated for the duration of the call.
    check(unsafe { libc::fchownat(dir.as_raw_fd(), name.as_ptr(), uid, gid, flags) }).map(|_| ())
}

pub fn fchmod(fd: BorrowedFd<'_>, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: `fd` is an open descriptor.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).map(|_| ())
}

pub fn readlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<CString> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: `dir` is open, `name` NUL-terminated and `buf` writable for `buf.len()` bytes.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    CString::new(buf).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

pub fn symlink_at(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated and `dir` is open for the duration of the call.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(|_| ())
}

pub fn syncfs(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `fd` is an open descriptor.
    check(unsafe { libc::syncfs(fd.as_raw_fd()) }).map(|_| ())
}

pub fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// What a user's quota says, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserQuota {
    pub used: Option<u64>,
    /// The hard limit; `None` when there is none.
    pub hard_limit: Option<u64>,
}

/// `quotactl_fd(QCMD(op, USRQUOTA))` for `uid` on the file system holding `path`, through the
/// block device node on kernels without `quotactl_fd`.
fn user_quotactl(
    path: &std::path::Path,
    op: libc::c_int,
    uid: u32,
    quota: &mut libc::dqblk,
) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let id = libc::c_int::try_from(uid).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let cmd = libc::QCMD(op, libc::USRQUOTA);
    let quota: *mut libc::dqblk = quota;
    // SAFETY: the descriptor is open for the call, and `quota` points to a dqblk that is
    // ours for the call, read by Q_SETQUOTA and filled by Q_GETQUOTA.
    let r = unsafe {
        libc::syscall(
            libc::SYS_quotactl_fd,
            file.as_raw_fd(),
            cmd,
            id,
            quota.cast::<libc::c_void>(),
        )
    };
    if r >= 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() != Some(libc::ENOSYS) {
        return Err(error);
    }
    let dev = file.metadata()?.dev();
    let node = cstring(&format!(
        "/dev/block/{}:{}",
        libc::major(dev),
        libc::minor(dev)
    ))?;
    // SAFETY: `node` is NUL-terminated and `quota` is as above.
    check(unsafe { libc::quotactl(cmd, node.as_ptr(), id, quota.cast()) }).map(|_| ())
}

/// `uid`'s quota on the file system that holds `path`, as homed reads it: `quotactl_fd` on the
/// path (the block device node on kernels without it). Nothing used when quota is off (ESRCH),
/// as systemd-homed counts it; `None` where the file system keeps no user quota or the query
/// fails.
pub fn user_quota(path: &std::path::Path, uid: u32) -> Option<UserQuota> {
    // SAFETY: an all-zero `dqblk` is a valid value of this plain C struct.
    let mut quota: libc::dqblk = unsafe { std::mem::zeroed() };
    if let Err(e) = user_quotactl(path, libc::Q_GETQUOTA, uid, &mut quota) {
        return (e.raw_os_error() == Some(libc::ESRCH)).then_some(UserQuota {
            used: Some(0),
            hard_limit: None,
        });
    }
    let valid = |flag: u32| quota.dqb_valid & flag != 0;
    Some(UserQuota {
        used: valid(libc::QIF_SPACE).then_some(quota.dqb_curspace),
        // In quota blocks of 1 KiB; 0 is no limit.
        hard_limit: (valid(libc::QIF_BLIMITS) && quota.dqb_bhardlimit > 0)
            .then(|| quota.dqb_bhardlimit.saturating_mul(1024)),
    })
}

/// Sets `uid`'s hard and soft block limit on the file system holding `path` to `bytes`, as
/// systemd-homed applies a directory home's `diskSize`. ENOTTY where the file system keeps no
/// user quota or has it switched off.
pub fn set_user_block_limit(path: &std::path::Path, uid: u32, bytes: u64) -> io::Result<()> {
    // SAFETY: an all-zero `dqblk` is a valid value of this plain C struct.
    let mut quota: libc::dqblk = unsafe { std::mem::zeroed() };
    let not_kept = |e: &io::Error| {
        matches!(
            e.raw_os_error(),
            Some(libc::ENOTTY | libc::ENOSYS | libc::EOPNOTSUPP | libc::ESRCH)
        )
    };
    match user_quotactl(path, libc::Q_GETQUOTA, uid, &mut quota) {
        Ok(()) => {}
        Err(e) if not_kept(&e) => return Err(io::Error::from_raw_os_error(libc::ENOTTY)),
        Err(e) => return Err(e),
    }
    quota.dqb_valid = libc::QIF_BLIMITS;
    // In quota blocks of 1 KiB.
    quota.dqb_bhardlimit = bytes / 1024;
    quota.dqb_bsoftlimit = bytes / 1024;
    match user_quotactl(path, libc::Q_SETQUOTA, uid, &mut quota) {
        Err(e) if not_kept(&e) => Err(io::Error::from_raw_os_error(libc::ENOTTY)),
        other => other,
    }
}
