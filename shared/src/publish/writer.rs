//! The daemon's side: writes the published records, atomically.

use std::fs;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use serde_json::{Map, Value};

use super::format::{PublishError, public_part, resolve, signed_text};
use super::{INDEX_FILE, LOCK_FILE, PRIVILEGED_SUFFIX, PUBLIC_KEY_FILE, USER_SUFFIX};
use crate::record::names;
use crate::record::{RecordOrigin, RecordView, UserRecord};
use crate::signing::SigningKey;

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Write {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `text` to `dir/name` so that a reader sees the old or the new file, never a part;
/// unchanged content is left alone.
fn write_atomic(dir: &Path, name: &str, text: &[u8], mode: u32) -> Result<(), PublishError> {
    crate::atomic_file::write_atomic_if_changed(dir, name, text, mode)
        .map_err(write_error(&dir.join(name)))
}

/// Holds the directory's lock file (released when the file is closed): one writer at a time
/// rebuilds the index.
struct DirLock(#[allow(dead_code)] fs::File);

impl DirLock {
    fn take(dir: &Path) -> Result<DirLock, PublishError> {
        let path = dir.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .map_err(write_error(&path))?;
        // SAFETY: flock only takes the descriptor number, which `file` keeps open for the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(write_error(&path)(std::io::Error::last_os_error()));
        }
        Ok(DirLock(file))
    }
}

/// Creates `dir` and any missing folder above it 0755, whatever the umask: readers trust the
/// publication only while every folder on its path is root's and not writable by others.
fn ensure_dir(dir: &Path) -> Result<(), PublishError> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|a| !a.exists()).collect();
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(write_error(d)(e)),
        }
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).map_err(write_error(d))?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(write_error(dir))
}

/// Rebuilds the index from the `*.user` files present. The index is a hint for lookups by UID
/// and by group; readers check every answer against the signed records.
fn rebuild_index(dir: &Path) -> Result<(), PublishError> {
    let mut users = Vec::new();
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(write_error(dir))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(USER_SUFFIX) && !n.starts_with('.'))
        .collect();
    names.sort();
    for file in names {
        let Ok(text) = fs::read(dir.join(&file)) else {
            continue;
        };
        let Some(body) = text.strip_suffix(b"\n") else {
            continue;
        };
        let Ok(record) = UserRecord::parse(body, RecordOrigin::Host) else {
            continue;
        };
        let json = record.json();
        let mut entry = Map::new();
        entry.insert("userName".into(), Value::String(record.user_name().into()));
        for key in ["uid", "gid", "memberOf"] {
            if let Some(v) = json.get(key) {
                entry.insert(key.into(), v.clone());
            }
        }
        users.push(Value::Object(entry));
    }
    let mut index = Map::new();
    index.insert("users".into(), Value::Array(users));
    let mut text = crate::json::to_canonical_string(&Value::Object(index));
    text.push('\n');
    write_atomic(dir, INDEX_FILE, text.as_bytes(), 0o644)
}

/// Publishes the record seen through `view` in `dir`, signed with the machine's `key`: the
/// public part (0644), the complete record (0600), the key's public half and the index. The
/// caller must run as root: readers serve only root-owned files.
pub fn publish(dir: &Path, view: &RecordView<'_>, key: &SigningKey) -> Result<(), PublishError> {
    let resolved = resolve(view)?;
    publish_resolved(dir, &resolved, key)
}

/// Like [`publish`], for a record already resolved with [`super::resolve`] (tests use it to
/// publish exactly the record they built).
pub fn publish_resolved(
    dir: &Path,
    resolved: &UserRecord,
    key: &SigningKey,
) -> Result<(), PublishError> {
    let name = resolved.user_name();
    if !names::is_valid_relaxed(name) || name.starts_with('.') {
        return Err(PublishError::BadName(name.to_owned()));
    }
    ensure_dir(dir)?;
    let _lock = DirLock::take(dir)?;
    write_atomic(
        dir,
        PUBLIC_KEY_FILE,
        key.public_key().to_pem().as_bytes(),
        0o644,
    )?;
    write_atomic(
        dir,
        &format!("{name}{PRIVILEGED_SUFFIX}"),
        signed_text(resolved, key).as_bytes(),
        0o600,
    )?;
    write_atomic(
        dir,
        &format!("{name}{USER_SUFFIX}"),
        signed_text(&public_part(resolved), key).as_bytes(),
        0o644,
    )?;
    rebuild_index(dir)
}

/// Removes a user's published files. Removing what is not there is not an error.
pub fn unpublish(dir: &Path, name: &str) -> Result<(), PublishError> {
    if !names::is_valid_relaxed(name) || name.starts_with('.') {
        return Err(PublishError::BadName(name.to_owned()));
    }
    if !dir.is_dir() {
        return Ok(());
    }
    let _lock = DirLock::take(dir)?;
    for suffix in [USER_SUFFIX, PRIVILEGED_SUFFIX] {
        let path = dir.join(format!("{name}{suffix}"));
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_error(&path)(e)),
        }
    }
    rebuild_index(dir)
}

/// Makes `dir` hold exactly the records seen through `views`: publishes each and removes the
/// files of users no longer among them (for the daemon's start and for key changes, after
/// which every record must be signed again).
pub fn publish_all(
    dir: &Path,
    views: &[RecordView<'_>],
    key: &SigningKey,
) -> Result<(), PublishError> {
    let mut keep = std::collections::BTreeSet::new();
    for view in views {
        publish(dir, view, key)?;
        keep.insert(view.user_name().to_owned());
    }
    let stale: Vec<String> = fs::read_dir(dir)
        .map_err(write_error(dir))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .filter_map(|n| {
            n.strip_suffix(USER_SUFFIX)
                .or_else(|| n.strip_suffix(PRIVILEGED_SUFFIX))
                .map(str::to_owned)
        })
        .filter(|n| !keep.contains(n))
        .collect();
    for name in stale {
        unpublish(dir, &name)?;
    }
    if views.is_empty() {
        // Nothing published yet still means "the daemon publishes": keep key and index.
        ensure_dir(dir)?;
        let _lock = DirLock::take(dir)?;
        write_atomic(
            dir,
            PUBLIC_KEY_FILE,
            key.public_key().to_pem().as_bytes(),
            0o644,
        )?;
        rebuild_index(dir)?;
    }
    Ok(())
}
