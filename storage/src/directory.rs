//! The `directory` backend (homed-spec §3.3): the home is `/home/NAME.homedir`, bind-mounted
//! on `/home/NAME` with the record's nosuid/nodev/noexec, files owned by the user's real UID.

use std::ffi::CString;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

use super::{MountFlags, StorageError, is_mount_point, sys, walk};

/// The embedded record inside every home.
pub const IDENTITY_FILE: &str = ".identity";
const IDENTITY_LIMIT: u64 = 4 * 1024 * 1024;

fn cname(s: &str) -> Result<CString, StorageError> {
    sys::cstring(s).map_err(|e| StorageError::io(s, e))
}

/// The parent directory (opened by path; it belongs to root) and the final name of `path`.
pub(crate) fn split(path: &str) -> Result<(std::os::fd::OwnedFd, CString), StorageError> {
    let p = Path::new(path);
    let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
        return Err(StorageError::new(
            libc::EINVAL,
            format!("{path}: not a file path"),
        ));
    };
    let parent_str = parent.to_str().unwrap_or("/");
    let dir = sys::open_dir_path(parent_str).map_err(|e| StorageError::io(parent_str, e))?;
    let name = cname(name.to_str().unwrap_or_default())?;
    Ok((dir, name))
}

/// What `create` needs.
pub struct CreateRequest<'a> {
    pub image_path: &'a str,
    pub skeleton: Option<&'a str>,
    pub uid: u32,
    pub gid: u32,
    pub access_mode: u32,
    /// The embedded record, as it goes into `.identity`.
    pub identity: &'a str,
}

/// Makes the home directory: copies the skeleton, writes `.identity`, sets owner and mode. On
/// failure the half-made directory is removed again.
pub fn create(req: &CreateRequest<'_>) -> Result<(), StorageError> {
    create_with(req, |parent, name| {
        sys::mkdir_at(parent.as_fd(), name, 0o700)
    })
}

/// [`create`], with `make` making the empty folder (a btrfs subvolume, say) in its parent.
pub(crate) fn create_with(
    req: &CreateRequest<'_>,
    make: impl FnOnce(&std::os::fd::OwnedFd, &CString) -> io::Result<()>,
) -> Result<(), StorageError> {
    let (parent, name) = split(req.image_path)?;
    match make(&parent, &name) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            return Err(StorageError::new(
                libc::EEXIST,
                format!("{} exists already", req.image_path),
            ));
        }
        Err(e) => return Err(StorageError::io(format!("creating {}", req.image_path), e)),
    }
    let result = fill(req, &parent, &name);
    if let Err(e) = result {
        let undo = sys::open_dir_at(parent.as_fd(), &name)
            .and_then(|fd| walk::remove_tree(fd.as_fd()))
            .and_then(|()| sys::unlink_at(parent.as_fd(), &name, true));
        return Err(match undo {
            Ok(()) => StorageError::new(e.errno, format!("{e}; the new home was removed again")),
            Err(u) => StorageError::new(
                e.errno,
                format!("{e}; removing the half-made home failed too: {u}"),
            ),
        });
    }
    Ok(())
}

/// Copies the skeleton folder `skel` (none there: nothing) into a new home, owned by the user.
pub(crate) fn copy_skeleton(
    skel: &str,
    home: std::os::fd::BorrowedFd<'_>,
    uid: u32,
    gid: u32,
) -> Result<(), StorageError> {
    match sys::open_dir_path(skel) {
        Ok(src) => walk::copy_tree(src.as_fd(), home, uid, gid)
            .map_err(|e| StorageError::io(format!("copying the skeleton {skel}"), e)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(StorageError::io(format!("opening the skeleton {skel}"), e)),
    }
}

fn fill(
    req: &CreateRequest<'_>,
    parent: &std::os::fd::OwnedFd,
    name: &CString,
) -> Result<(), StorageError> {
    let home = sys::open_dir_at(parent.as_fd(), name)
        .map_err(|e| StorageError::io(format!("opening {}", req.image_path), e))?;
    if let Some(skel) = req.skeleton {
        copy_skeleton(skel, home.as_fd(), req.uid, req.gid)?;
    }
    walk::write_file_atomic(
        home.as_fd(),
        c".identity",
        req.identity.as_bytes(),
        req.uid,
        req.gid,
        0o600,
    )
    .map_err(|e| StorageError::io("writing .identity", e))?;
    sys::chown_at(home.as_fd(), c"", req.uid, req.gid)
        .map_err(|e| StorageError::io("setting the owner of the home", e))?;
    sys::fchmod(home.as_fd(), req.access_mode & 0o7777)
        .map_err(|e| StorageError::io("setting the access mode of the home", e))?;
    Ok(())
}

/// What `activate` needs.
pub struct ActivateRequest<'a> {
    pub image_path: &'a str,
    pub home_directory: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub flags: MountFlags,
}

/// Bind-mounts the home on its home directory with the record's flags and returns the text of
/// its `.identity` (if it has one) for the reconcile. Undoes the mount when a later step fails.
pub fn activate(req: &ActivateRequest<'_>) -> Result<Option<Vec<u8>>, StorageError> {
    let image = sys::open_dir_path(req.image_path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOENT) {
            StorageError::new(libc::ENETUNREACH, format!("{} is missing", req.image_path))
        } else {
            StorageError::io(format!("opening {}", req.image_path), e)
        }
    })?;
    if is_mount_point(req.home_directory) {
        return Err(StorageError::new(
            libc::EALREADY,
            format!("{} is mounted already", req.home_directory),
        ));
    }
    let (parent, name) = split(req.home_directory)?;
    match sys::mkdir_at(parent.as_fd(), &name, 0o755) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            let st = sys::stat_at(parent.as_fd(), &name)
                .map_err(|e| StorageError::io(req.home_directory, e))?;
            if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                return Err(StorageError::new(
                    libc::ENOTDIR,
                    format!("{} exists and is not a directory", req.home_directory),
                ));
            }
        }
        Err(e) => {
            return Err(StorageError::io(
                format!("creating {}", req.home_directory),
                e,
            ));
        }
    }
    // Mount through /proc/self/fd, so the path the user controls is resolved only once.
    let source = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&image));
    nix::mount::mount(
        Some(source.as_str()),
        req.home_directory,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| StorageError::io(format!("bind-mounting {}", req.image_path), e.into()))?;
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
    let rest = (|| {
        nix::mount::mount(
            None::<&str>,
            req.home_directory,
            None::<&str>,
            flags,
            None::<&str>,
        )
        .map_err(|e| StorageError::io("remounting the home with its flags", e.into()))?;
        let home = sys::open_dir_path(req.home_directory)
            .map_err(|e| StorageError::io(req.home_directory, e))?;
        let st = sys::stat_at(home.as_fd(), c"").map_err(|e| StorageError::io("stat", e))?;
        if st.st_uid != req.uid || st.st_gid != req.gid {
            walk::chown_tree(home.as_fd(), req.uid, req.gid)
                .map_err(|e| StorageError::io("giving the home to its user", e))?;
        }
        match walk::read_file(home.as_fd(), c".identity", IDENTITY_LIMIT) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(StorageError::io("reading .identity", e)),
        }
    })();
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

/// Writes the embedded record into the home's `.identity`, by way of the image directory.
pub fn write_identity(
    image_path: &str,
    identity: &str,
    uid: u32,
    gid: u32,
) -> Result<(), StorageError> {
    let home = sys::open_dir_path(image_path)
        .map_err(|e| StorageError::io(format!("opening {image_path}"), e))?;
    walk::write_file_atomic(
        home.as_fd(),
        c".identity",
        identity.as_bytes(),
        uid,
        gid,
        0o600,
    )
    .map_err(|e| StorageError::io("writing .identity", e))
}

/// Reads the home's `.identity` by way of the image directory (for fixating a discovered home).
pub fn read_identity(image_path: &str) -> Result<Vec<u8>, StorageError> {
    let home = sys::open_dir_path(image_path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOENT) {
            StorageError::new(libc::ENETUNREACH, format!("{image_path} is missing"))
        } else {
            StorageError::io(format!("opening {image_path}"), e)
        }
    })?;
    walk::read_file(home.as_fd(), c".identity", IDENTITY_LIMIT)
        .map_err(|e| StorageError::io(format!("reading {image_path}/.identity"), e))
}

/// Unmounts the home. `EBUSY` means a process still uses it.
pub fn deactivate(home_directory: &str) -> Result<(), StorageError> {
    if !is_mount_point(home_directory) {
        return Err(StorageError::new(
            libc::ENOEXEC,
            format!("{home_directory} is not mounted"),
        ));
    }
    if let Ok(fd) = sys::open_dir_path(home_directory) {
        let _ = sys::syncfs(fd.as_fd());
    }
    nix::mount::umount2(home_directory, MntFlags::UMOUNT_NOFOLLOW).map_err(|e| {
        StorageError::io(format!("unmounting {home_directory}"), io::Error::from(e))
    })?;
    if let Ok((parent, name)) = split(home_directory) {
        let _ = sys::unlink_at(parent.as_fd(), &name, true);
    }
    Ok(())
}

/// Deletes the home directory and everything in it, never leaving the home's own mount.
pub fn remove(image_path: &str, home_directory: &str) -> Result<(), StorageError> {
    if is_mount_point(home_directory) {
        return Err(StorageError::new(
            libc::EBUSY,
            format!("{home_directory} is still mounted"),
        ));
    }
    let (parent, name) = split(image_path)?;
    match sys::open_dir_at(parent.as_fd(), &name) {
        Ok(home) => walk::remove_tree(home.as_fd())
            .map_err(|e| StorageError::io(format!("removing {image_path}"), e))?,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(StorageError::io(format!("opening {image_path}"), e)),
    }
    sys::unlink_at(parent.as_fd(), &name, true)
        .map_err(|e| StorageError::io(format!("removing {image_path}"), e))?;
    if let Ok((parent, name)) = split(home_directory) {
        let _ = sys::unlink_at(parent.as_fd(), &name, true);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    #[test]
    fn create_copies_skeleton_without_following_links_and_remove_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let skel = tmp.path().join("skel");
        std::fs::create_dir_all(skel.join("sub")).unwrap();
        std::fs::write(skel.join(".profile"), "x").unwrap();
        std::fs::write(skel.join("sub/file"), "y").unwrap();
        std::os::unix::fs::symlink("/etc", skel.join("etc-link")).unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, "keep").unwrap();
        let image = tmp.path().join("u.homedir");
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        create(&CreateRequest {
            image_path: image.to_str().unwrap(),
            skeleton: skel.to_str(),
            uid,
            gid,
            access_mode: 0o700,
            identity: "{\"userName\":\"u\"}\n",
        })
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(image.join("sub/file")).unwrap(),
            "y"
        );
        assert_eq!(
            std::fs::read_link(image.join("etc-link")).unwrap(),
            Path::new("/etc")
        );
        let meta = std::fs::metadata(&image).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
        assert_eq!(
            std::fs::metadata(image.join(".identity")).unwrap().mode() & 0o777,
            0o600
        );
        // A link to a file outside the home is removed, not what it points to.
        std::os::unix::fs::symlink(&outside, image.join("link-out")).unwrap();
        let again = create(&CreateRequest {
            image_path: image.to_str().unwrap(),
            skeleton: None,
            uid,
            gid,
            access_mode: 0o700,
            identity: "{}",
        });
        assert_eq!(again.unwrap_err().errno, libc::EEXIST);
        remove(
            image.to_str().unwrap(),
            tmp.path().join("u").to_str().unwrap(),
        )
        .unwrap();
        assert!(!image.exists());
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
        assert!(Path::new("/etc/passwd").exists());
    }
}
