//! Which keys the machine trusts, and the verdict on a record (homed-spec §2.3).

use std::collections::BTreeSet;
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{PublicKey, SignatureCheck, SigningKey, check_signature};
use crate::record::{RecordError, UserRecord};

/// Where keys are looked for, in order; a file name found earlier hides later ones.
pub const KEY_DIRECTORIES: [&str; 5] = [
    "/etc/systemd/home",
    "/run/systemd/home",
    "/var/lib/systemd/home",
    "/usr/local/lib/systemd/home",
    "/usr/lib/systemd/home",
];

/// The outcome of checking a record against every key the machine trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustVerdict {
    /// Signed only by the local key: the record may be changed here.
    SignedExclusive,
    /// Signed by the local key and by others.
    Signed,
    /// Signed by a trusted key that is not ours: accepted, not locally modifiable.
    Foreign,
    /// No signature at all.
    Unsigned,
    /// Signed, but by no key this machine trusts (D-Bus `BadSignature`).
    NoKey,
}

impl TrustVerdict {
    /// Whether a record with this verdict may be served or activated.
    pub fn is_trusted(self) -> bool {
        matches!(
            self,
            TrustVerdict::SignedExclusive | TrustVerdict::Signed | TrustVerdict::Foreign
        )
    }
}

/// The local private key (if any) and the trusted public keys.
#[derive(Default)]
pub struct TrustedKeys {
    local: Option<SigningKey>,
    public: Vec<(String, PublicKey)>,
    ignored: Vec<String>,
}

fn read_checked(
    path: &Path,
    owner: u32,
    forbidden_mode_bits: u32,
) -> Result<Zeroizing<String>, String> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    if meta.uid() != owner {
        return Err(if owner == 0 {
            format!("{}: not owned by root", path.display())
        } else {
            format!("{}: not owned by UID {owner}", path.display())
        });
    }
    if meta.mode() & forbidden_mode_bits != 0 {
        return Err(format!(
            "{}: access mode {:04o} is too permissive",
            path.display(),
            meta.mode() & 0o7777
        ));
    }
    if meta.len() > 64 * 1024 {
        return Err(format!("{}: too large for a key file", path.display()));
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text)
}

fn is_masked(path: &Path) -> bool {
    fs::read_link(path).is_ok_and(|target| target == Path::new("/dev/null"))
}

impl TrustedKeys {
    /// Loads keys from the standard directories.
    pub fn load() -> Self {
        let dirs: Vec<PathBuf> = KEY_DIRECTORIES.iter().map(PathBuf::from).collect();
        Self::load_from(&dirs)
    }

    /// Loads keys from `dirs`, in order. Files that fail the owner (root) or mode checks are
    /// skipped and listed by [`TrustedKeys::ignored`].
    pub fn load_from(dirs: &[PathBuf]) -> Self {
        Self::load_owned_by(dirs, 0)
    }

    /// As [`TrustedKeys::load_from`], with key files owned by `owner` instead of root (tests
    /// that run as an ordinary user, with keys they made themselves).
    pub fn load_owned_by(dirs: &[PathBuf], owner: u32) -> Self {
        let mut keys = TrustedKeys::default();
        for dir in dirs {
            let path = dir.join("local.private");
            if keys.local.is_some() || !path.exists() {
                continue;
            }
            match read_checked(&path, owner, 0o077).and_then(|pem| {
                SigningKey::from_pkcs8_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
            }) {
                Ok(key) => keys.local = Some(key),
                Err(why) => keys.ignored.push(why),
            }
        }
        let mut seen = BTreeSet::new();
        for dir in dirs {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(".public") && n != "local.public" && !n.starts_with('.'))
                .collect();
            names.sort();
            for name in names {
                if !seen.insert(name.clone()) {
                    continue;
                }
                let path = dir.join(&name);
                if is_masked(&path) {
                    continue;
                }
                match read_checked(&path, owner, 0o022).and_then(|pem| {
                    PublicKey::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
                }) {
                    Ok(key) => keys.public.push((name, key)),
                    Err(why) => keys.ignored.push(why),
                }
            }
        }
        keys
    }

    /// Keys given directly (the daemon after creating its key, and tests).
    pub fn new(local: Option<SigningKey>, public: Vec<(String, PublicKey)>) -> Self {
        TrustedKeys {
            local,
            public,
            ignored: Vec::new(),
        }
    }

    pub fn local(&self) -> Option<&SigningKey> {
        self.local.as_ref()
    }

    pub fn set_local(&mut self, key: SigningKey) {
        self.local = Some(key);
    }

    pub fn public_keys(&self) -> &[(String, PublicKey)] {
        &self.public
    }

    /// Key files that were skipped, each with the reason.
    pub fn ignored(&self) -> &[String] {
        &self.ignored
    }

    /// The verdict on `record` (`manager_verify_user_record`).
    pub fn verdict(&self, record: &UserRecord) -> Result<TrustVerdict, RecordError> {
        if self.local.is_none() && self.public.is_empty() {
            return Ok(if record.is_unsigned() {
                TrustVerdict::Unsigned
            } else {
                TrustVerdict::NoKey
            });
        }
        if let Some(local) = &self.local {
            match check_signature(record, &local.public_key())? {
                SignatureCheck::SignedExclusive => return Ok(TrustVerdict::SignedExclusive),
                SignatureCheck::Signed => return Ok(TrustVerdict::Signed),
                SignatureCheck::Unsigned => return Ok(TrustVerdict::Unsigned),
                SignatureCheck::Foreign => {}
            }
        }
        for (_, key) in &self.public {
            match check_signature(record, key)? {
                SignatureCheck::SignedExclusive | SignatureCheck::Signed => {
                    return Ok(TrustVerdict::Foreign);
                }
                SignatureCheck::Unsigned => return Ok(TrustVerdict::Unsigned),
                SignatureCheck::Foreign => {}
            }
        }
        Ok(TrustVerdict::NoKey)
    }
}
