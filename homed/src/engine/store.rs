//! The daemon's files in /var/lib/systemd/home: host records and the local signing key.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use homed_shared::signing::SigningKey;
use homed_shared::{RecordOrigin, UserRecord};

pub use homed_shared::atomic_file::write_atomic;

/// The host record directory.
pub struct RecordStore {
    pub dir: PathBuf,
    /// Host records written since start (each one an fsync'd atomic write).
    #[cfg_attr(not(test), allow(dead_code))]
    writes: AtomicUsize,
}

impl RecordStore {
    pub fn new(dir: PathBuf) -> RecordStore {
        RecordStore {
            dir,
            writes: AtomicUsize::new(0),
        }
    }

    /// How many host records this store has written.
    #[cfg(test)]
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::Relaxed)
    }

    pub fn ensure_dir(&self) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
    }

    pub fn path(&self, user: &str) -> PathBuf {
        self.dir.join(format!("{user}.identity"))
    }

    /// Writes a host record in homed's pretty form, mode 0600.
    pub fn save(&self, record: &UserRecord) -> std::io::Result<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        write_atomic(
            &self.dir,
            &format!("{}.identity", record.user_name()),
            record.to_pretty_string().as_bytes(),
            0o600,
        )
    }

    pub fn delete(&self, user: &str) -> std::io::Result<()> {
        match fs::remove_file(self.path(user)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every host record that parses, with the file's user name; empty files are deleted and
    /// records whose name does not match their file are skipped, as homed does.
    pub fn load_all(&self) -> Vec<UserRecord> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(user) = name.strip_suffix(".identity") else {
                continue;
            };
            if user.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            if meta.len() == 0 {
                let _ = fs::remove_file(&path);
                continue;
            }
            let Ok(text) = fs::read(&path) else { continue };
            match UserRecord::parse(&text, RecordOrigin::Host) {
                Ok(record) if record.user_name() == user => out.push(record),
                Ok(_) => eprintln!(
                    "{}: user name does not match the file name, ignoring",
                    path.display()
                ),
                Err(e) => eprintln!("{}: {e}, ignoring", path.display()),
            }
        }
        out
    }

    /// Creates `local.private` (0400) and `local.public` (0444), as homed does on first need.
    pub fn create_signing_key(&self) -> std::io::Result<SigningKey> {
        let key = SigningKey::generate().map_err(std::io::Error::other)?;
        let pem = key.to_pkcs8_pem().map_err(std::io::Error::other)?;
        write_atomic(
            &self.dir,
            "local.public",
            key.public_key().to_pem().as_bytes(),
            0o444,
        )?;
        write_atomic(&self.dir, "local.private", pem.as_bytes(), 0o400)?;
        Ok(key)
    }
}
