//! The NSS module's side: serves a published record only when the directory and the file are
//! root-owned and not writable by others and the machine key's signature verifies. Verified
//! records are cached per process, keyed by the file's identity, so a repeated lookup costs a
//! few `stat` calls.
//!
//! The cache uses ordered maps and a short list of directories rather than hash maps: no
//! per-process random hash keys to fetch (a `getrandom` call in every process that loads the
//! module) and no hashing of paths on every lookup.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use zeroize::Zeroizing;

use super::format::verify_text;
use super::{INDEX_FILE, PRIVILEGED_SUFFIX, PUBLIC_KEY_FILE, USER_SUFFIX};
use crate::nss::{GroupEntry, PasswdEntry, ShadowEntry};
use crate::record::{MachineContext, names};
use crate::signing::PublicKey;

/// The largest file a reader accepts.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// What identifies one version of a file: a rename, a rewrite, a chmod or a chown changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    fn of(meta: &fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// Root-owned and writable by nobody else.
fn trusted(meta: &fs::Metadata) -> bool {
    meta.uid() == 0 && meta.mode() & 0o022 == 0
}

/// Whether every folder above `dir` is root's and lets no one else replace what is in it:
/// not writable by group or others, or sticky (as /tmp, where only an entry's owner may rename
/// it). A root-owned symlink among them is followed.
fn ancestors_trusted(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    dir.ancestors().skip(1).all(|a| {
        let Ok(meta) = fs::symlink_metadata(a) else {
            return false;
        };
        let meta = if meta.file_type().is_symlink() {
            match (meta.uid(), fs::metadata(a)) {
                (0, Ok(target)) => target,
                _ => return false,
            }
        } else {
            meta
        };
        let sticky = meta.permissions().mode() & 0o1000 != 0;
        meta.is_dir() && meta.uid() == 0 && (meta.mode() & 0o022 == 0 || sticky)
    })
}

/// One published user, as the module needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedUser {
    pub passwd: PasswdEntry,
    /// The groups the record names in `memberOf`.
    pub member_of: Vec<String>,
}

/// Why a privileged file could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowDenied {
    /// The caller may not read it (not root).
    NotPermitted,
}

#[derive(Default)]
struct Index {
    names: Vec<String>,
    by_uid: BTreeMap<u32, String>,
    by_gid: BTreeMap<u32, String>,
    members: BTreeMap<String, Vec<String>>,
}

#[derive(Default)]
struct DirCache {
    /// The directory's identity when the key file was last looked at. Writers replace files by
    /// renaming, which changes it, so while it stays the same the key file has not changed.
    dir: Option<FileId>,
    /// The identity of the key file the cached records were verified with.
    key_id: Option<FileId>,
    /// The key itself, read when a record first needs verifying.
    key: Option<PublicKey>,
    users: BTreeMap<String, (FileId, Option<Arc<PublishedUser>>)>,
    index: Option<(FileId, Arc<Index>)>,
}

/// One entry per directory ever opened: in practice one ([`super::PUBLISH_DIR`]), or a few in
/// tests.
static CACHE: Mutex<Vec<(PathBuf, DirCache)>> = Mutex::new(Vec::new());

/// The cache, even if a thread panicked while holding it: its content is only ever replaced
/// whole, so a poisoned state is still consistent.
fn cache() -> MutexGuard<'static, Vec<(PathBuf, DirCache)>> {
    CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn with_dir<R>(dir: &Path, f: impl FnOnce(&mut DirCache) -> R) -> R {
    let mut dirs = cache();
    let at = match dirs.iter().position(|(d, _)| d == dir) {
        Some(at) => at,
        None => {
            dirs.push((dir.to_path_buf(), DirCache::default()));
            dirs.len() - 1
        }
    };
    match dirs.get_mut(at) {
        Some((_, entry)) => f(entry),
        None => f(&mut DirCache::default()),
    }
}

/// `dir/NAMEsuffix`, built without the formatting machinery (this runs on every lookup).
fn file_in(dir: &Path, name: &str, suffix: &str) -> PathBuf {
    let dir = dir.as_os_str();
    let mut path = OsString::with_capacity(dir.len() + 1 + name.len() + suffix.len());
    path.push(dir);
    path.push("/");
    path.push(name);
    path.push(suffix);
    PathBuf::from(path)
}

/// Opens `path` without following a symlink and reads it if it is a trusted regular file.
fn read_trusted(path: &Path) -> std::io::Result<(FileId, Zeroizing<Vec<u8>>)> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || !trusted(&meta) || meta.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidData));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    // Through `take`, which reads without asking the file for its size again.
    (&mut file)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    Ok((FileId::of(&meta), bytes))
}

/// The published records in one directory, if it exists and can be trusted.
pub struct Published {
    dir: PathBuf,
}

fn neutral_machine() -> MachineContext {
    // Published records carry no machine-specific sections; any machine sees the same values.
    MachineContext::new("00000000000000000000000000000000", None)
}

impl Published {
    /// `None` when `dir` is missing, is not a root-owned directory that only root can write,
    /// or has no machine key: then nothing is published there. The key is read only when a
    /// record needs verifying, so a lookup of an unknown name never parses it.
    pub fn open(dir: &Path) -> Option<Published> {
        let meta = fs::symlink_metadata(dir).ok()?;
        if !meta.is_dir() || !trusted(&meta) {
            return None;
        }
        if !ancestors_trusted(dir) {
            return None;
        }
        let dir_id = FileId::of(&meta);
        if with_dir(dir, |c| c.dir == Some(dir_id)) {
            return Some(Published {
                dir: dir.to_path_buf(),
            });
        }
        let key_meta = fs::symlink_metadata(dir.join(PUBLIC_KEY_FILE)).ok()?;
        if !key_meta.is_file() || !trusted(&key_meta) {
            return None;
        }
        let key_id = FileId::of(&key_meta);
        with_dir(dir, |c| {
            if c.key_id != Some(key_id) {
                // A new key invalidates every record verified with the old one.
                *c = DirCache::default();
                c.key_id = Some(key_id);
            }
            c.dir = Some(dir_id);
        });
        Some(Published {
            dir: dir.to_path_buf(),
        })
    }

    /// The machine key, read and cached on first use.
    fn key(&self) -> Option<PublicKey> {
        if let Some(key) = with_dir(&self.dir, |c| c.key.clone()) {
            return Some(key);
        }
        let (id, text) = read_trusted(&self.dir.join(PUBLIC_KEY_FILE)).ok()?;
        let key = PublicKey::from_pem(std::str::from_utf8(&text).ok()?).ok()?;
        with_dir(&self.dir, |c| {
            if c.key_id != Some(id) {
                // Replaced since `open` looked: start over with this one.
                *c = DirCache::default();
                c.key_id = Some(id);
            }
            c.key = Some(key.clone());
        });
        Some(key)
    }

    /// The directory these records live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The published user `name`, if its record verifies.
    pub fn user(&self, name: &str) -> Option<Arc<PublishedUser>> {
        if !names::is_valid_relaxed(name) || name.starts_with('.') {
            return None;
        }
        let path = file_in(&self.dir, name, USER_SUFFIX);
        let meta = fs::symlink_metadata(&path).ok()?;
        let id = FileId::of(&meta);
        if let Some(hit) = with_dir(&self.dir, |c| {
            c.users
                .get(name)
                .filter(|(cached, _)| *cached == id)
                .map(|(_, u)| u.clone())
        }) {
            return hit;
        }
        let (id, text) = read_trusted(&path).ok()?;
        let key = self.key()?;
        let user = verify_text(&text, &key)
            .filter(|r| r.user_name() == name && !r.json().contains_key("privileged"))
            .and_then(|record| {
                let machine = neutral_machine();
                let view = record.view(&machine);
                let passwd = PasswdEntry::from_view(&view)?;
                Some(Arc::new(PublishedUser {
                    passwd,
                    member_of: view.member_of().into_iter().map(str::to_owned).collect(),
                }))
            });
        with_dir(&self.dir, |c| {
            c.users.insert(name.to_owned(), (id, user.clone()));
        });
        user
    }

    fn index(&self) -> Arc<Index> {
        let path = file_in(&self.dir, INDEX_FILE, "");
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return Arc::default();
        };
        let id = FileId::of(&meta);
        if let Some(hit) = with_dir(&self.dir, |c| {
            c.index
                .as_ref()
                .filter(|(cached, _)| *cached == id)
                .map(|(_, i)| i.clone())
        }) {
            return hit;
        }
        let Ok((id, text)) = read_trusted(&path) else {
            return Arc::default();
        };
        let index = Arc::new(parse_index(&text));
        with_dir(&self.dir, |c| c.index = Some((id, index.clone())));
        index
    }

    /// The published user with `uid`.
    pub fn user_by_uid(&self, uid: u32) -> Option<Arc<PublishedUser>> {
        let index = self.index();
        let name = index.by_uid.get(&uid)?;
        self.user(name).filter(|u| u.passwd.uid == uid)
    }

    /// Every published user whose record verifies, in name order.
    pub fn all_users(&self) -> Vec<Arc<PublishedUser>> {
        let index = self.index();
        index.names.iter().filter_map(|n| self.user(n)).collect()
    }

    fn group_of(&self, owner: &PublishedUser, index: &Index) -> GroupEntry {
        let name = &owner.passwd.name;
        let members = index
            .members
            .get(name)
            .map(|candidates| {
                candidates
                    .iter()
                    .filter(|m| {
                        self.user(m)
                            .is_some_and(|u| u.member_of.iter().any(|g| g == name))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        GroupEntry {
            name: name.clone(),
            passwd: "x".into(),
            gid: owner.passwd.gid,
            members,
        }
    }

    /// The per-user group `name` (GID = the user's GID), with the users that name it in
    /// `memberOf` as members.
    pub fn group(&self, name: &str) -> Option<GroupEntry> {
        let owner = self.user(name)?;
        Some(self.group_of(&owner, &self.index()))
    }

    pub fn group_by_gid(&self, gid: u32) -> Option<GroupEntry> {
        let index = self.index();
        let name = index.by_gid.get(&gid)?;
        let owner = self.user(name).filter(|u| u.passwd.gid == gid)?;
        Some(self.group_of(&owner, &index))
    }

    /// Every per-user group, in name order.
    pub fn all_groups(&self) -> Vec<GroupEntry> {
        let index = self.index();
        index
            .names
            .iter()
            .filter_map(|n| self.user(n))
            .map(|owner| self.group_of(&owner, &index))
            .collect()
    }

    /// Published users that name `group` in `memberOf` (for groups that are not per-user
    /// groups, such as `users` or `wheel`).
    pub fn members_of(&self, group: &str) -> Vec<String> {
        let index = self.index();
        index
            .members
            .get(group)
            .map(|candidates| {
                candidates
                    .iter()
                    .filter(|m| {
                        self.user(m)
                            .is_some_and(|u| u.member_of.iter().any(|g| g == group))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The shadow entry of `name` from its root-only file. Never cached.
    pub fn shadow(&self, name: &str) -> Result<Option<ShadowEntry>, ShadowDenied> {
        if !names::is_valid_relaxed(name) || name.starts_with('.') {
            return Ok(None);
        }
        let path = file_in(&self.dir, name, PRIVILEGED_SUFFIX);
        let text = match read_trusted(&path) {
            Ok((_, text)) => text,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(ShadowDenied::NotPermitted);
            }
            Err(_) => return Ok(None),
        };
        let Some(key) = self.key() else {
            return Ok(None);
        };
        let Some(record) = verify_text(&text, &key).filter(|r| r.user_name() == name) else {
            return Ok(None);
        };
        let machine = neutral_machine();
        Ok(Some(ShadowEntry::from_view(&record.view(&machine))))
    }
}

fn parse_index(text: &[u8]) -> Index {
    let mut index = Index::default();
    let Ok(value) = serde_json::from_slice::<Value>(text) else {
        return index;
    };
    let Some(users) = value.get("users").and_then(Value::as_array) else {
        return index;
    };
    let as_id = |v: Option<&Value>| {
        v.and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    for user in users {
        let Some(name) = user.get("userName").and_then(Value::as_str) else {
            continue;
        };
        index.names.push(name.to_owned());
        if let Some(uid) = as_id(user.get("uid")) {
            index.by_uid.entry(uid).or_insert_with(|| name.to_owned());
            let gid = as_id(user.get("gid")).unwrap_or(uid);
            index.by_gid.entry(gid).or_insert_with(|| name.to_owned());
        }
        for group in user
            .get("memberOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            index
                .members
                .entry(group.to_owned())
                .or_default()
                .push(name.to_owned());
        }
    }
    index
}
