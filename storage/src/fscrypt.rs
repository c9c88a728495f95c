//! fscrypt homes (homed-spec §3.4), in systemd-homed's format so either daemon opens the
//! other's: a folder with a v1 encryption policy whose 64-byte volume key is kept wrapped,
//! once per password, in `trusted.fscrypt_slotN` xattrs on the folder itself. The kernel finds
//! the key by its descriptor in the keyrings of the process that touches the files: the worker's
//! own process keyring while it works, the user's keyring while the home is active.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd};

use aes::cipher::{KeyIvInit as _, StreamCipher as _};
use base64::Engine as _;
use sha2::{Digest as _, Sha512};
use zeroize::{Zeroize as _, Zeroizing};

use super::{StorageError, directory, sys};

/// The size of a volume key (FS_MAX_KEY_SIZE; AES-256-XTS takes all of it).
pub const KEY_SIZE: usize = 64;
const SALT_SIZE: usize = 64;
/// The PBKDF2 rounds of a key slot, as homework uses.
const SLOT_ROUNDS: u32 = 0xFFFF;
/// The name of a key slot xattr is this and a decimal number.
pub const SLOT_PREFIX: &str = "trusted.fscrypt_slot";
/// A slot's value is two base64 texts with a colon; anything longer is not one.
const SLOT_VALUE_LIMIT: usize = 1024;

const MODE_AES_256_XTS: u8 = 1;
const MODE_AES_256_CTS: u8 = 4;
const POLICY_FLAGS_PAD_32: u8 = 0x03;

/// `struct fscrypt_policy_v1`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct PolicyV1 {
    version: u8,
    contents_mode: u8,
    filenames_mode: u8,
    flags: u8,
    descriptor: [u8; 8],
}

// FS_IOC_SET_ENCRYPTION_POLICY is _IOR('f', 19, policy) and the GET one _IOW('f', 21, policy):
// the kernel's directions are the other way round, the numbers are what count.
const SET_POLICY: libc::c_ulong = ioc(2, 19);
const GET_POLICY: libc::c_ulong = ioc(1, 21);

/// `_IOC(direction, 'f', number, sizeof(struct fscrypt_policy_v1))`.
const fn ioc(direction: libc::c_ulong, number: libc::c_ulong) -> libc::c_ulong {
    (direction << 30)
        | ((std::mem::size_of::<PolicyV1>() as libc::c_ulong) << 16)
        | ((b'f' as libc::c_ulong) << 8)
        | number
}

/// A home's volume key, wiped when dropped.
pub struct VolumeKey(Zeroizing<[u8; KEY_SIZE]>);

impl VolumeKey {
    pub fn generate() -> Result<Self, StorageError> {
        let mut key = Zeroizing::new([0u8; KEY_SIZE]);
        getrandom::fill(key.as_mut()).map_err(|e| {
            StorageError::new(libc::EIO, format!("no random bytes for a volume key: {e}"))
        })?;
        Ok(VolumeKey(key))
    }

    /// The key's descriptor: the first 8 bytes of SHA-512 of SHA-512 of the key (as e4crypt).
    pub fn descriptor(&self) -> [u8; 8] {
        let once = Zeroizing::new(Sha512::digest(self.0.as_ref()));
        let twice = Sha512::digest(once.as_slice());
        let mut out = [0u8; 8];
        out.copy_from_slice(&twice[..8]);
        out
    }
}

/// The key that wraps the volume key in one slot: the first half of
/// PBKDF2-HMAC-SHA512(password, salt, 65535 rounds, 64 bytes).
fn slot_cipher(password: &[u8], salt: &[u8]) -> ctr::Ctr128BE<aes::Aes256> {
    let mut derived = Zeroizing::new([0u8; 64]);
    pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, SLOT_ROUNDS, derived.as_mut());
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&derived[..32]);
    ctr::Ctr128BE::<aes::Aes256>::new(&(*key).into(), &[0u8; 16].into())
}

/// The text of a new slot for `password`: base64(salt) ":" base64(wrapped key).
pub fn wrap(key: &VolumeKey, password: &[u8]) -> Result<String, StorageError> {
    let mut salt = [0u8; SALT_SIZE];
    getrandom::fill(&mut salt)
        .map_err(|e| StorageError::new(libc::EIO, format!("no random bytes for a salt: {e}")))?;
    let mut wrapped = *key.0;
    slot_cipher(password, &salt).apply_keystream(&mut wrapped);
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = format!("{}:{}", b64.encode(salt), b64.encode(wrapped));
    wrapped.zeroize();
    Ok(text)
}

/// A slot's salt and wrapped key, or why the text is not a slot.
fn parse_slot(value: &[u8]) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), String> {
    if value.len() > SLOT_VALUE_LIMIT {
        return Err(format!("{} bytes, too long for a key slot", value.len()));
    }
    let colon = value
        .iter()
        .position(|&b| b == b':')
        .ok_or("no ':' between salt and key")?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = b64
        .decode(&value[..colon])
        .map_err(|e| format!("the salt is not base64 ({e})"))?;
    let wrapped = Zeroizing::new(
        b64.decode(&value[colon + 1..])
            .map_err(|e| format!("the key is not base64 ({e})"))?,
    );
    if salt.is_empty() || wrapped.len() != KEY_SIZE {
        return Err(format!(
            "a {}-byte salt and a {}-byte key, where a salt and a {KEY_SIZE}-byte key belong",
            salt.len(),
            wrapped.len()
        ));
    }
    Ok((salt, wrapped))
}

/// The volume key in slot text `value` if `password` opens it and its descriptor is `want`.
pub fn unwrap(value: &[u8], password: &[u8], want: &[u8; 8]) -> Result<Option<VolumeKey>, String> {
    let (salt, wrapped) = parse_slot(value)?;
    let mut key = Zeroizing::new([0u8; KEY_SIZE]);
    key.copy_from_slice(&wrapped);
    slot_cipher(password, &salt).apply_keystream(key.as_mut());
    let key = VolumeKey(key);
    Ok((key.descriptor() == *want).then_some(key))
}

/// The folder's v1 policy descriptor; `None` when the folder is not encrypted.
pub fn descriptor_of(dir: BorrowedFd<'_>) -> Result<Option<[u8; 8]>, StorageError> {
    let mut policy = PolicyV1::default();
    // SAFETY: `policy` is a live, writable struct of the size encoded in GET_POLICY.
    let rc = unsafe { libc::ioctl(dir.as_raw_fd(), GET_POLICY, &mut policy as *mut PolicyV1) };
    if rc == 0 {
        return Ok(Some(policy.descriptor));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENODATA) => Ok(None),
        Some(libc::ENOTTY | libc::EOPNOTSUPP) => Err(StorageError::new(
            libc::ENOLINK,
            "the file system of the home does not support fscrypt (ext4 needs the encrypt feature)",
        )),
        Some(libc::EINVAL) => Err(StorageError::new(
            libc::EMEDIUMTYPE,
            "the folder is encrypted with an fscrypt policy other than v1, which homed does not use",
        )),
        _ => Err(StorageError::io(
            "reading the folder's encryption policy",
            e,
        )),
    }
}

/// Gives the empty folder `dir` the policy homed uses, for the key with `descriptor`.
pub fn set_policy(dir: BorrowedFd<'_>, descriptor: [u8; 8]) -> Result<(), StorageError> {
    let policy = PolicyV1 {
        version: 0,
        contents_mode: MODE_AES_256_XTS,
        filenames_mode: MODE_AES_256_CTS,
        flags: POLICY_FLAGS_PAD_32,
        descriptor,
    };
    // SAFETY: the kernel only reads `policy`, a live struct of the size encoded in SET_POLICY.
    let rc = unsafe { libc::ioctl(dir.as_raw_fd(), SET_POLICY, &policy as *const PolicyV1) };
    if rc != 0 {
        return Err(StorageError::io(
            "setting the encryption policy",
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn key_description(descriptor: &[u8; 8]) -> CString {
    let hex: String = descriptor.iter().map(|b| format!("{b:02x}")).collect();
    CString::new(format!("fscrypt:{hex}")).unwrap_or_default()
}

/// `struct fscrypt_key`, the payload of a `logon` key for a v1 policy.
#[repr(C)]
struct KeyPayload {
    mode: u32,
    raw: [u8; KEY_SIZE],
    size: u32,
}

impl Drop for KeyPayload {
    fn drop(&mut self) {
        self.raw.zeroize();
    }
}

fn payload(key: &VolumeKey) -> KeyPayload {
    KeyPayload {
        mode: 0,
        raw: *key.0,
        size: KEY_SIZE as u32,
    }
}

/// add_key(2) of the prepared key into `keyring`; only a system call, so a forked child may
/// make it.
fn add_key_raw(description: &CStr, payload: &KeyPayload, keyring: i32) -> libc::c_long {
    // SAFETY: every pointer is live for the call and the length is the payload's own size.
    unsafe {
        libc::syscall(
            libc::SYS_add_key,
            c"logon".as_ptr(),
            description.as_ptr(),
            payload as *const KeyPayload,
            std::mem::size_of::<KeyPayload>(),
            keyring,
        )
    }
}

/// Puts the key into this process's keyring, where the worker's own file access finds it; it
/// goes with the process.
pub fn add_to_process(key: &VolumeKey) -> Result<(), StorageError> {
    let description = key_description(&key.descriptor());
    let payload = payload(key);
    if add_key_raw(&description, &payload, libc::KEY_SPEC_PROCESS_KEYRING) < 0 {
        return Err(StorageError::io(
            "adding the home's key to the worker's keyring",
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Runs `act` (system calls only: it runs in a forked child) as `uid`/`gid` with no
/// supplementary groups; true when it returned true.
fn as_user(uid: u32, gid: u32, act: impl Fn() -> bool) -> Result<bool, StorageError> {
    // SAFETY: the child makes only system calls (no allocation, no locks) and leaves by _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(StorageError::io("fork", io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: plain system calls on values owned by this child; _exit never returns.
        unsafe {
            let ok = libc::setgroups(0, std::ptr::null()) == 0
                && libc::setresgid(gid, gid, gid) == 0
                && libc::setresuid(uid, uid, uid) == 0
                && act();
            libc::_exit(if ok { 0 } else { 1 });
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: waits for the child made above; `status` is a live int.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(StorageError::io("waiting for the keyring child", e));
        }
    }
    Ok(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
}

/// Puts the key into the user's keyring, where the user's processes find it (as homework does,
/// from a child that became the user).
pub fn add_to_user(key: &VolumeKey, uid: u32, gid: u32) -> Result<(), StorageError> {
    let description = key_description(&key.descriptor());
    let payload = payload(key);
    let added = as_user(uid, gid, || {
        add_key_raw(&description, &payload, libc::KEY_SPEC_USER_KEYRING) >= 0
    })?;
    if !added {
        return Err(StorageError::new(
            libc::EKEYREJECTED,
            "adding the home's key to the user's keyring failed",
        ));
    }
    Ok(())
}

/// Takes the key with `descriptor` out of the user's keyring (nothing when it is not there).
pub fn remove_from_user(descriptor: &[u8; 8], uid: u32, gid: u32) -> Result<(), StorageError> {
    let description = key_description(descriptor);
    as_user(uid, gid, || {
        // SAFETY: keyctl(2) with live C strings; KEYCTL_SEARCH returns the key's id or -1.
        let id = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                libc::KEYCTL_SEARCH,
                libc::KEY_SPEC_USER_KEYRING,
                c"logon".as_ptr(),
                description.as_ptr(),
                0,
            )
        };
        if id < 0 {
            return true;
        }
        // SAFETY: keyctl(2) on the id just found; invalidating removes it from every keyring.
        unsafe { libc::syscall(libc::SYS_keyctl, libc::KEYCTL_INVALIDATE, id) == 0 }
    })
    .and_then(|removed| {
        removed.then_some(()).ok_or_else(|| {
            StorageError::new(
                libc::EKEYREJECTED,
                "removing the home's key from the user's keyring failed",
            )
        })
    })
}

/// The folder's key slots, by number, in number order.
pub fn slots(dir: BorrowedFd<'_>) -> Result<Vec<(u32, Vec<u8>)>, StorageError> {
    let names = nix_xattr::list(dir).map_err(|e| StorageError::io("listing the key slots", e))?;
    let mut out = Vec::new();
    for name in names {
        let Some(number) = name
            .to_str()
            .ok()
            .and_then(|n| n.strip_prefix(SLOT_PREFIX))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        match nix_xattr::get(dir, &name, SLOT_VALUE_LIMIT + 1) {
            Ok(value) => out.push((number, value)),
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(StorageError::io(format!("reading key slot {number}"), e)),
        }
    }
    out.sort_by_key(|(n, _)| *n);
    Ok(out)
}

/// The volume key that one of `passwords` opens in one of the folder's slots.
/// ENOKEY when none does; EMEDIUMTYPE when there is no slot; EBADMSG for a slot that is not one.
pub fn open(
    dir: BorrowedFd<'_>,
    passwords: &[&[u8]],
) -> Result<(VolumeKey, [u8; 8]), StorageError> {
    let descriptor = descriptor_of(dir)?.ok_or_else(|| {
        StorageError::new(libc::EMEDIUMTYPE, "the home's folder is not encrypted")
    })?;
    let slots = slots(dir)?;
    if slots.is_empty() {
        // Not a wrong password: no password could open it, and the user must be told so.
        return Err(StorageError::new(
            libc::EMEDIUMTYPE,
            "the encrypted folder has no homed key slot (its encryption was set up elsewhere)",
        ));
    }
    for (number, value) in &slots {
        for password in passwords {
            match unwrap(value, password, &descriptor) {
                Ok(Some(key)) => return Ok((key, descriptor)),
                Ok(None) => {}
                Err(why) => {
                    return Err(StorageError::new(
                        libc::EBADMSG,
                        format!("key slot {number} is malformed: {why}"),
                    ));
                }
            }
        }
    }
    Err(StorageError::new(
        libc::ENOKEY,
        "none of the passwords opens a key slot of the home",
    ))
}

/// Writes a slot for each password at the first free numbers; returns the numbers.
pub fn add_slots(
    dir: BorrowedFd<'_>,
    key: &VolumeKey,
    passwords: &[&[u8]],
) -> Result<Vec<u32>, StorageError> {
    let first = slots(dir)?.last().map_or(0, |(n, _)| n + 1);
    let mut added = Vec::new();
    for (next, password) in (first..).zip(passwords) {
        let name = slot_name(next);
        let value = wrap(key, password)?;
        if let Err(e) = nix_xattr::set(dir, &name, value.as_bytes()) {
            // Nothing half-added stays: the slots written so far go again.
            for n in &added {
                let _ = nix_xattr::remove(dir, &slot_name(*n));
            }
            return Err(StorageError::io(format!("writing key slot {next}"), e));
        }
        added.push(next);
    }
    Ok(added)
}

/// Removes the slots `numbers`; refuses when that would leave none.
pub fn remove_slots(dir: BorrowedFd<'_>, numbers: &[u32]) -> Result<(), StorageError> {
    let present: Vec<u32> = slots(dir)?.into_iter().map(|(n, _)| n).collect();
    if present.iter().all(|n| numbers.contains(n)) {
        return Err(StorageError::new(
            libc::EINVAL,
            "refusing to remove the last key slots of the home",
        ));
    }
    for n in numbers.iter().filter(|n| present.contains(n)) {
        nix_xattr::remove(dir, &slot_name(*n))
            .map_err(|e| StorageError::io(format!("removing key slot {n}"), e))?;
    }
    Ok(())
}

fn slot_name(number: u32) -> CString {
    CString::new(format!("{SLOT_PREFIX}{number}")).unwrap_or_default()
}

/// Tells the kernel to drop cached dentries and inodes, so the names and contents of a home
/// whose key left the keyring are no longer readable from the cache (homework writes "2").
pub fn drop_caches() {
    // Dirty inodes are not dropped: write them out first.
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "2\n");
}

fn open_home(image_path: &str) -> Result<std::os::fd::OwnedFd, StorageError> {
    sys::open_dir_path(image_path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOENT) {
            StorageError::new(libc::ENETUNREACH, format!("{image_path} is missing"))
        } else {
            StorageError::io(format!("opening {image_path}"), e)
        }
    })
}

/// Makes a new fscrypt home: a fresh volume key (in the worker's keyring while the folder is
/// filled), the policy on the empty folder, one slot per password, then the skeleton and
/// `.identity` as for a directory home. On failure the half-made folder is removed again.
pub fn create(req: &directory::CreateRequest<'_>, passwords: &[&[u8]]) -> Result<(), StorageError> {
    if passwords.is_empty() {
        return Err(StorageError::new(
            libc::ENOKEY,
            "a password is needed for an fscrypt home",
        ));
    }
    let key = VolumeKey::generate()?;
    add_to_process(&key)?;
    directory::create_with(req, |parent, name| {
        sys::mkdir_at(parent.as_fd(), name, 0o700)?;
        let sealed = (|| {
            let dir = sys::open_dir_at(parent.as_fd(), name)
                .map_err(|e| StorageError::io("opening the new home", e))?;
            if descriptor_of(dir.as_fd())?.is_some() {
                return Err(StorageError::new(
                    libc::EBUSY,
                    "the home root is encrypted already; refusing to nest an fscrypt home in it",
                ));
            }
            set_policy(dir.as_fd(), key.descriptor())?;
            add_slots(dir.as_fd(), &key, passwords).map(|_| ())
        })();
        sealed.map_err(|e| {
            let _ = sys::unlink_at(parent.as_fd(), name, true);
            io::Error::other(e.to_string())
        })
    })
}

/// Finds the key one of `passwords` opens and puts it into the worker's keyring, so the
/// worker can read and write the home's files; returns the key.
pub fn load_key(image_path: &str, passwords: &[&[u8]]) -> Result<VolumeKey, StorageError> {
    let dir = open_home(image_path)?;
    let (key, _) = open(dir.as_fd(), passwords)?;
    add_to_process(&key)?;
    Ok(key)
}

/// Activation: the key into the worker's and the user's keyrings, then the bind mount of a
/// directory home. Returns `.identity`'s text. A failed mount takes the key out again.
pub fn activate(
    req: &directory::ActivateRequest<'_>,
    passwords: &[&[u8]],
) -> Result<Option<Vec<u8>>, StorageError> {
    let key = load_key(req.image_path, passwords)?;
    add_to_user(&key, req.uid, req.gid)?;
    directory::activate(req).inspect_err(|_| {
        let _ = remove_from_user(&key.descriptor(), req.uid, req.gid);
    })
}

/// Deactivation: the unmount, then the key out of the user's keyring and, with `drop`, the
/// caches dropped, so the files read as ciphertext again.
pub fn deactivate(
    image_path: &str,
    home_directory: &str,
    uid: u32,
    gid: u32,
    drop: bool,
) -> Result<(), StorageError> {
    directory::deactivate(home_directory)?;
    // The folder is closed before the caches go: an open inode is not dropped.
    let descriptor = descriptor_of(open_home(image_path)?.as_fd())?;
    if let Some(descriptor) = descriptor {
        remove_from_user(&descriptor, uid, gid)?;
    }
    if drop {
        drop_caches();
    }
    Ok(())
}

/// The first half of a password change: slots for `new`, with the key `old` opens. Returns
/// the slot numbers there were and the ones added.
pub fn add_passwords(
    image_path: &str,
    old: &[&[u8]],
    new: &[&[u8]],
) -> Result<(Vec<u32>, Vec<u32>), StorageError> {
    let dir = open_home(image_path)?;
    let (key, _) = open(dir.as_fd(), old)?;
    let before = slots(dir.as_fd())?.into_iter().map(|(n, _)| n).collect();
    let added = add_slots(dir.as_fd(), &key, new)?;
    Ok((before, added))
}

/// The second half: the old slots go, once one of `keep` is there.
pub fn retire_passwords(
    image_path: &str,
    retire: &[u32],
    keep: &[u32],
) -> Result<(), StorageError> {
    let dir = open_home(image_path)?;
    let present: Vec<u32> = slots(dir.as_fd())?.into_iter().map(|(n, _)| n).collect();
    if keep.iter().any(|n| retire.contains(n)) || !keep.iter().all(|n| present.contains(n)) {
        return Err(StorageError::new(
            libc::EINVAL,
            "the slots to keep are missing or among those to retire",
        ));
    }
    remove_slots(dir.as_fd(), retire)
}

/// The xattr calls on a descriptor.
mod nix_xattr {
    use std::ffi::{CStr, CString};
    use std::io;
    use std::os::fd::{AsRawFd as _, BorrowedFd};

    pub fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
        let mut buf = vec![0u8; 64 * 1024];
        // SAFETY: `buf` is live and writable for its length.
        let n = unsafe { libc::flistxattr(dir.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(buf
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .filter_map(|s| CString::new(s).ok())
            .collect())
    }

    pub fn get(dir: BorrowedFd<'_>, name: &CStr, limit: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; limit];
        // SAFETY: `name` is a C string and `buf` is live and writable for its length.
        let n = unsafe {
            libc::fgetxattr(
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
        Ok(buf)
    }

    pub fn set(dir: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> io::Result<()> {
        // SAFETY: `name` is a C string and `value` is live for its length.
        let rc = unsafe {
            libc::fsetxattr(
                dir.as_raw_fd(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn remove(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
        // SAFETY: `name` is a C string.
        let rc = unsafe { libc::fremovexattr(dir.as_raw_fd(), name.as_ptr()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_opens_with_its_password_only() {
        let key = VolumeKey::generate().unwrap();
        let slot = wrap(&key, b"Pw-1").unwrap();
        let (salt, wrapped) = slot.split_once(':').unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(b64.decode(salt).unwrap().len(), SALT_SIZE);
        assert_eq!(b64.decode(wrapped).unwrap().len(), KEY_SIZE);
        let want = key.descriptor();
        let opened = unwrap(slot.as_bytes(), b"Pw-1", &want).unwrap().unwrap();
        assert_eq!(*opened.0, *key.0);
        assert!(unwrap(slot.as_bytes(), b"Pw-2", &want).unwrap().is_none());
    }

    #[test]
    fn the_descriptor_is_e4crypts() {
        // SHA512(SHA512(64 zero bytes)), first 8 bytes.
        let key = VolumeKey(Zeroizing::new([0u8; KEY_SIZE]));
        let once = Sha512::digest([0u8; KEY_SIZE]);
        let twice = Sha512::digest(once);
        assert_eq!(key.descriptor(), twice[..8]);
        assert_eq!(
            key_description(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3])
                .to_str()
                .unwrap(),
            "fscrypt:deadbeef00010203"
        );
    }

    #[test]
    fn malformed_slots_are_named() {
        let want = [0u8; 8];
        for bad in [
            &b"no-colon"[..],
            b"!!!:AAAA",
            b"AAAA:not base64!",
            b"AAAA:AAAA",
            &[b'A'; 2000][..],
        ] {
            assert!(unwrap(bad, b"x", &want).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_ioctl_numbers_are_linuxs() {
        assert_eq!(std::mem::size_of::<PolicyV1>(), 12);
        assert_eq!(std::mem::size_of::<KeyPayload>(), 72);
        assert_eq!(SET_POLICY, 0x800c_6613);
        assert_eq!(GET_POLICY, 0x400c_6615);
    }
}
