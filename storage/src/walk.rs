//! Walking a tree the user controls, as root: every step goes by file descriptor, never follows
//! a symlink and never enters another mount, so a link to /etc or a bind mount placed inside a
//! home cannot make root touch anything outside it.

use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd, BorrowedFd};

use super::sys;

const S_IFMT: u32 = libc::S_IFMT;

fn kind(st: &libc::stat) -> u32 {
    st.st_mode & S_IFMT
}

/// Copies the tree under `src` into the empty directory `dst`, owned by `uid`:`gid`. Directories
/// on another mount than `src` are skipped, as are devices, sockets and FIFOs.
pub fn copy_tree(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    let mount = sys::mount_id(src)?;
    copy_level(src, dst, uid, gid, mount, 0)
}

const MAX_DEPTH: usize = 256;

fn copy_level(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    uid: u32,
    gid: u32,
    mount: u64,
    depth: usize,
) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    for name in sys::list_dir(src)? {
        let st = sys::stat_at(src, &name)?;
        let mode = st.st_mode & 0o7777 & !(libc::S_ISUID | libc::S_ISGID);
        match kind(&st) {
            libc::S_IFDIR => {
                let child = sys::open_dir_at(src, &name)?;
                if sys::mount_id(child.as_fd())? != mount {
                    continue;
                }
                sys::mkdir_at(dst, &name, 0o700)?;
                let new = sys::open_dir_at(dst, &name)?;
                copy_level(child.as_fd(), new.as_fd(), uid, gid, mount, depth + 1)?;
                sys::chown_at(new.as_fd(), c"", uid, gid)?;
                sys::fchmod(new.as_fd(), mode)?;
            }
            libc::S_IFREG => {
                let from = sys::openat(src, &name, libc::O_RDONLY, 0)?;
                let to = sys::openat(
                    dst,
                    &name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    0o600,
                )?;
                let (mut from, mut to) = (File::from(from), File::from(to));
                io::copy(&mut from, &mut to)?;
                sys::chown_at(to.as_fd(), c"", uid, gid)?;
                sys::fchmod(to.as_fd(), mode)?;
            }
            libc::S_IFLNK => {
                let target = sys::readlink_at(src, &name)?;
                sys::symlink_at(&target, dst, &name)?;
                sys::chown_at(dst, &name, uid, gid)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Removes everything under `dir`. A directory on another mount is left alone, and the walk
/// reports `EBUSY` at the end, so the caller knows the home could not be removed whole.
pub fn remove_tree(dir: BorrowedFd<'_>) -> io::Result<()> {
    let mount = sys::mount_id(dir)?;
    let mut busy = false;
    remove_level(dir, mount, 0, &mut busy)?;
    if busy {
        return Err(io::Error::from_raw_os_error(libc::EBUSY));
    }
    Ok(())
}

fn remove_level(dir: BorrowedFd<'_>, mount: u64, depth: usize, busy: &mut bool) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    for name in sys::list_dir(dir)? {
        let st = sys::stat_at(dir, &name)?;
        if kind(&st) == libc::S_IFDIR {
            let child = sys::open_dir_at(dir, &name)?;
            if sys::mount_id(child.as_fd())? != mount {
                *busy = true;
                continue;
            }
            remove_level(child.as_fd(), mount, depth + 1, busy)?;
            drop(child);
            match sys::unlink_at(dir, &name, true) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && *busy => {}
                Err(e) => return Err(e),
            }
        } else {
            sys::unlink_at(dir, &name, false)?;
        }
    }
    Ok(())
}

/// Gives the home under `dir` to `uid`:`gid`: `dir` itself and every entry below it that the
/// previous owner of `dir` owns, without following symlinks or entering other mounts. Entries
/// of other owners stay theirs, and so do files with more than one link: such a file may be a
/// hard link the user made to a file outside the home, which must not become theirs.
pub fn chown_tree(dir: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    let from = sys::stat_at(dir, c"")?.st_uid;
    chown_tree_of(dir, &[from], HardLinks::Keep, (uid, gid))
}

/// What [`chown_tree_of`] does with a file that has more than one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardLinks {
    /// Leave it: a link may lead out of the home (a home on a shared file system).
    Keep,
    /// Change it like any other: the file system holds this home alone (an image's), so every
    /// link stays inside it.
    Follow,
}

/// Gives `dir` and every entry below it owned by one of `from` to `uid`:`gid`, without following
/// symlinks or entering other mounts.
pub fn chown_tree_of(
    dir: BorrowedFd<'_>,
    from: &[u32],
    hard_links: HardLinks,
    (uid, gid): (u32, u32),
) -> io::Result<()> {
    let mount = sys::mount_id(dir)?;
    chown_level(dir, from, hard_links, (uid, gid), mount, 0)?;
    sys::chown_at(dir, c"", uid, gid)
}

fn chown_level(
    dir: BorrowedFd<'_>,
    from: &[u32],
    hard_links: HardLinks,
    (uid, gid): (u32, u32),
    mount: u64,
    depth: usize,
) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    for name in sys::list_dir(dir)? {
        let st = sys::stat_at(dir, &name)?;
        let is_dir = kind(&st) == libc::S_IFDIR;
        if is_dir {
            let child = sys::open_dir_at(dir, &name)?;
            if sys::mount_id(child.as_fd())? != mount {
                continue;
            }
            chown_level(
                child.as_fd(),
                from,
                hard_links,
                (uid, gid),
                mount,
                depth + 1,
            )?;
        }
        let single = is_dir || st.st_nlink == 1 || hard_links == HardLinks::Follow;
        let ours = from.contains(&st.st_uid) && single;
        if ours && (st.st_uid != uid || st.st_gid != gid) {
            sys::chown_at(dir, &name, uid, gid)?;
        }
    }
    Ok(())
}

/// Replaces `name` in `dir` with `content` (temporary file, fsync, rename), owned by `uid`:`gid`
/// with `mode`.
pub fn write_file_atomic(
    dir: BorrowedFd<'_>,
    name: &CStr,
    content: &[u8],
    uid: u32,
    gid: u32,
    mode: libc::mode_t,
) -> io::Result<()> {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|_| io::Error::from_raw_os_error(libc::EIO))?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let temp = sys::cstring(&format!(
        ".#{}{suffix}",
        name.to_str().unwrap_or("file").trim_start_matches('.')
    ))?;
    let fd = sys::openat(
        dir,
        &temp,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        mode,
    )?;
    let mut file = File::from(fd);
    let result = (|| {
        file.write_all(content)?;
        sys::chown_at(file.as_fd(), c"", uid, gid)?;
        sys::fchmod(file.as_fd(), mode)?;
        file.sync_all()?;
        sys::rename_at(dir, &temp, name)
    })();
    if result.is_err() {
        let _ = sys::unlink_at(dir, &temp, false);
    }
    result
}

/// Reads the regular file `name` in `dir`, refusing symlinks, other kinds of files and files
/// larger than `limit` bytes.
pub fn read_file(dir: BorrowedFd<'_>, name: &CStr, limit: u64) -> io::Result<Vec<u8>> {
    let fd = sys::openat(dir, name, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
    let st = sys::stat_at(fd.as_fd(), c"")?;
    if kind(&st) != libc::S_IFREG {
        return Err(io::Error::from_raw_os_error(libc::EBADFD));
    }
    let mut out = Vec::new();
    File::from(fd).take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    }
    Ok(out)
}
