//! Home storage (homed-spec §3): mounts, the one tree walker, directory homes and LUKS2 images.
//! Each operation here is meant to run in a worker process of its own, so a hung mount or a slow
//! copy never blocks the daemon. Only the daemon links this crate: the PAM and NSS modules carry
//! no mount code and no libcryptsetup.

pub mod cifs;
pub mod directory;
pub mod fscrypt;
pub mod luks;
pub mod space;
pub mod subvolume;
mod sys;
pub mod walk;

use std::fmt;
use std::io;

/// The mount flags a record asks for (`mountNoSuid`, `mountNoDevices`, `mountNoExecute`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountFlags {
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
}

/// A storage operation failed. `errno` is what homed's worker would exit with, which the daemon
/// maps to a bus error (homed-spec §4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageError {
    pub errno: i32,
    pub message: String,
}

impl StorageError {
    pub fn new(errno: i32, message: impl Into<String>) -> Self {
        StorageError {
            errno,
            message: message.into(),
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl fmt::Display, e: io::Error) -> Self {
        StorageError {
            errno: e.raw_os_error().unwrap_or(libc::EIO),
            message: format!("{what}: {e}"),
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StorageError {}

/// Undoes `\040`-style escapes of /proc/self/mountinfo.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount options of whatever is mounted on `path` (the last mount there), from
/// /proc/self/mountinfo, or `None` when `path` is not a mount point.
pub fn mount_options(path: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let trimmed = path.trim_end_matches('/');
    let path = if trimmed.is_empty() { "/" } else { trimmed };
    text.lines()
        .rev()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            (fields.len() > 5 && unescape_mountinfo(fields[4]) == path)
                .then(|| fields[5].to_owned())
        })
        .next()
}

/// Whether something is mounted on `path`.
pub fn is_mount_point(path: &str) -> bool {
    mount_options(path).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/home/a\\040b"), "/home/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert!(is_mount_point("/"));
        assert!(!is_mount_point("/nonexistent-mount-point"));
    }
}
