//! The FFI of the LUKS backend: loop-device ioctls, libcryptsetup's log hook, and the few
//! libcryptsetup calls libcryptsetup-rs does not wrap.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Once;

use libcryptsetup_rs::CryptDevice;
use libcryptsetup_rs_sys as cs;

// <linux/loop.h>
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_GET_STATUS64: libc::c_ulong = 0x4C05;
pub(super) const LO_FLAGS_READ_ONLY: u32 = 1;
pub(super) const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_NAME_SIZE: usize = 64;
const LO_KEY_SIZE: usize = 32;

/// `struct loop_info64`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct LoopInfo64 {
    pub lo_device: u64,
    pub lo_inode: u64,
    pub lo_rdevice: u64,
    pub lo_offset: u64,
    pub lo_sizelimit: u64,
    pub lo_number: u32,
    pub lo_encrypt_type: u32,
    pub lo_encrypt_key_size: u32,
    pub lo_flags: u32,
    pub lo_file_name: [u8; LO_NAME_SIZE],
    pub lo_crypt_name: [u8; LO_NAME_SIZE],
    pub lo_encrypt_key: [u8; LO_KEY_SIZE],
    pub lo_init: [u64; 2],
}

/// `struct loop_config` (Linux 5.8+).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

impl LoopInfo64 {
    pub(super) fn zeroed() -> Self {
        LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: 0,
            lo_file_name: [0; LO_NAME_SIZE],
            lo_crypt_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
        }
    }
}

fn check(rc: c_int) -> io::Result<c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `LOOP_CTL_GET_FREE` on `/dev/loop-control`: the number of a free loop device.
pub(super) fn loop_get_free(control: BorrowedFd<'_>) -> io::Result<u32> {
    // SAFETY: LOOP_CTL_GET_FREE takes no argument and only returns a number.
    let rc = check(unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) })?;
    u32::try_from(rc).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `LOOP_CONFIGURE`: binds `backing` to the loop device `dev` in one step.
pub(super) fn loop_configure(
    dev: BorrowedFd<'_>,
    backing: BorrowedFd<'_>,
    info: &LoopInfo64,
) -> io::Result<()> {
    let fd = u32::try_from(backing.as_raw_fd())
        .map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    let config = LoopConfig {
        fd,
        block_size: 0,
        info: *info,
        reserved: [0; 8],
    };
    // SAFETY: `config` is a fully initialised struct loop_config that lives across the call; the
    // kernel only reads it.
    check(unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            LOOP_CONFIGURE,
            &config as *const LoopConfig,
        )
    })?;
    Ok(())
}

/// `LOOP_GET_STATUS64`.
pub(super) fn loop_get_status(dev: BorrowedFd<'_>) -> io::Result<LoopInfo64> {
    let mut info = LoopInfo64::zeroed();
    // SAFETY: `info` is a writable struct loop_info64 the kernel fills in.
    check(unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            LOOP_GET_STATUS64,
            &mut info as *mut LoopInfo64,
        )
    })?;
    Ok(info)
}

/// `LOOP_CLR_FD`: detaches the backing file (deferred by the kernel while the device is open).
pub(super) fn loop_clear(dev: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: LOOP_CLR_FD takes no argument.
    check(unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD, 0) })?;
    Ok(())
}

thread_local! {
    /// The last error libcryptsetup logged on this thread.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

unsafe extern "C" fn log_hook(level: c_int, msg: *const c_char, _usrptr: *mut c_void) {
    if level != cs::CRYPT_LOG_ERROR as c_int || msg.is_null() {
        return;
    }
    // SAFETY: libcryptsetup passes a NUL-terminated message valid for the duration of the call.
    let text = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
    let text = text.trim_end().to_owned();
    LAST_ERROR.with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            *e = text;
        }
    });
}

/// Routes libcryptsetup's messages into [`take_last_error`] instead of stdout/stderr (its default),
/// which must stay clean in the modules and workers that link this library.
pub(super) fn install_log_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        libcryptsetup_rs::set_log_callback::<()>(Some(log_hook), None);
    });
}

/// Clears the remembered error before an operation.
pub(super) fn clear_last_error() {
    LAST_ERROR.with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            e.clear();
        }
    });
}

/// The error libcryptsetup logged last on this thread, if any.
pub(super) fn take_last_error() -> String {
    LAST_ERROR.with(|e| {
        e.try_borrow_mut()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    })
}

/// A libcryptsetup context whose raw pointer we keep for the calls libcryptsetup-rs lacks.
pub(super) struct RawDevice {
    ptr: *mut cs::crypt_device,
}

impl RawDevice {
    /// `crypt_init(path)`; the returned [`CryptDevice`] owns the context and frees it on drop.
    pub(super) fn init(path: &Path) -> io::Result<(CryptDevice, RawDevice)> {
        let path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let mut ptr: *mut cs::crypt_device = std::ptr::null_mut();
        // SAFETY: `path` is NUL-terminated and outlives the call; crypt_init stores a new context
        // in `ptr` on success and leaves it untouched on failure.
        let rc = unsafe { cs::crypt_init(&mut ptr, path.as_ptr()) };
        if rc < 0 {
            return Err(io::Error::from_raw_os_error(-rc));
        }
        Ok((CryptDevice::from_ptr(ptr), RawDevice { ptr }))
    }

    /// `crypt_init_by_name(name)`: the context of an active device-mapper device, its header
    /// loaded from the device underneath.
    pub(super) fn init_by_name(name: &str) -> io::Result<(CryptDevice, RawDevice)> {
        let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let mut ptr: *mut cs::crypt_device = std::ptr::null_mut();
        // SAFETY: `name` is NUL-terminated and outlives the call; on success crypt_init_by_name
        // stores a new context in `ptr`.
        let rc = unsafe { cs::crypt_init_by_name(&mut ptr, name.as_ptr()) };
        if rc < 0 {
            return Err(io::Error::from_raw_os_error(-rc));
        }
        Ok((CryptDevice::from_ptr(ptr), RawDevice { ptr }))
    }

    /// `crypt_resume_by_volume_key(name, key)`. The context must have been loaded, and the
    /// [`CryptDevice`] returned with this handle must still be alive.
    pub(super) fn resume_by_volume_key(&self, name: &str, key: &[u8]) -> io::Result<()> {
        let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: `ptr` is the live context owned by the CryptDevice created with it (the caller
        // keeps both together); `name` and `key` outlive the call and are only read.
        let rc = unsafe {
            cs::crypt_resume_by_volume_key(self.ptr, name.as_ptr(), key.as_ptr().cast(), key.len())
        };
        if rc < 0 {
            Err(io::Error::from_raw_os_error(-rc))
        } else {
            Ok(())
        }
    }
}

/// Sets the extended attribute `name` to `value` on an open file.
pub(super) fn set_xattr(file: BorrowedFd<'_>, name: &str, value: &[u8]) -> io::Result<()> {
    let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `name` is NUL-terminated, `value` is a valid buffer of the given length, and both
    // outlive the call; the kernel only reads them.
    let rc = unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    check(rc).map(|_| ())
}

/// Removes the extended attribute `name` from an open file; a missing attribute is fine.
pub(super) fn remove_xattr(file: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `name` is NUL-terminated and outlives the call.
    let rc = unsafe { libc::fremovexattr(file.as_raw_fd(), name.as_ptr()) };
    match check(rc) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENODATA | libc::EOPNOTSUPP)) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Whether the extended attribute `name` is set on an open file (`false` where the file system
/// has no xattrs).
pub(super) fn has_xattr(file: BorrowedFd<'_>, name: &str) -> io::Result<bool> {
    let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a NULL buffer of size 0 asks only for the value's length.
    let rc = unsafe { libc::fgetxattr(file.as_raw_fd(), name.as_ptr(), std::ptr::null_mut(), 0) };
    if rc >= 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if matches!(e.raw_os_error(), Some(libc::ENODATA | libc::EOPNOTSUPP)) {
        Ok(false)
    } else {
        Err(e)
    }
}

// <linux/mount.h>
const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// `struct mount_attr` (size version 0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A user namespace with the given `uid_map` and `gid_map`, as an fd for `MOUNT_ATTR_IDMAP`.
/// A short-lived child process creates it; we write its maps from outside.
pub(super) fn user_namespace(uid_map: &str, gid_map: &str) -> io::Result<OwnedFd> {
    use nix::sys::wait::waitpid;
    use nix::unistd::{ForkResult, fork, pipe};
    let (ready_r, ready_w) = pipe()?;
    let (done_r, done_w) = pipe()?;
    // SAFETY: the child only calls async-signal-safe functions (unshare, write, read, _exit)
    // before it exits, so forking a possibly multi-threaded process is sound.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(ready_r);
            drop(done_w);
            let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_ok();
            let _ = nix::unistd::write(&ready_w, if ok { b"R" } else { b"E" });
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(&done_r, &mut b);
            // SAFETY: _exit ends the child at once, without running the parent's atexit hooks
            // or destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(done_r);
            let mut b = [0u8; 1];
            let got = nix::unistd::read(&ready_r, &mut b);
            let result = (|| {
                if got != Ok(1) || b[0] != b'R' {
                    return Err(io::Error::from_raw_os_error(libc::EPERM));
                }
                std::fs::write(format!("/proc/{child}/uid_map"), uid_map)?;
                std::fs::write(format!("/proc/{child}/gid_map"), gid_map)?;
                let ns = std::fs::File::open(format!("/proc/{child}/ns/user"))?;
                Ok(OwnedFd::from(ns))
            })();
            drop(done_w);
            let _ = waitpid(child, None);
            result
        }
    }
}

/// Clones the mount tree at `source` (`open_tree(OPEN_TREE_CLONE)`): a detached copy with the
/// source mount's flags, attached nowhere until [`move_mount_to`] attaches it.
pub(super) fn clone_tree(source: &Path) -> io::Result<OwnedFd> {
    let path = CString::new(source.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `path` is NUL-terminated and outlives the call; open_tree returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: open_tree just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Clones the mount tree at `source` and makes the clone show owners through `userns`
/// (`mount_setattr(MOUNT_ATTR_IDMAP)`). The clone is detached until [`move_mount_to`] attaches it.
pub(super) fn idmapped_clone(source: &Path, userns: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let tree = clone_tree(source)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: u64::try_from(userns.as_raw_fd())
            .map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?,
    };
    let empty = c"";
    // SAFETY: `tree` is a valid detached mount fd, `empty` is a NUL-terminated empty path used
    // with AT_EMPTY_PATH, and `attr` is a fully initialised mount_attr of the size we pass.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tree)
}

/// Moves this process into a mount namespace of its own in which every mount is private: what
/// it mounts from then on is seen by no other process, and nothing mounted elsewhere reaches
/// it. Returns the namespace it came from, for [`enter_mount_namespace`].
pub(super) fn enter_private_mount_namespace() -> io::Result<OwnedFd> {
    let origin = std::fs::File::open("/proc/self/ns/mnt")?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    Ok(OwnedFd::from(origin))
}

/// Moves this process (which must be single-threaded) into the mount namespace `ns`.
pub(super) fn enter_mount_namespace(ns: BorrowedFd<'_>) -> io::Result<()> {
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNS)?;
    Ok(())
}

/// Attaches a detached mount (from [`clone_tree`] or [`idmapped_clone`]) on `target`.
pub(crate) fn move_mount_to(tree: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
    let target = CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let empty = c"";
    // SAFETY: `tree` is a valid mount fd, both paths are NUL-terminated and outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
