//! Why a LUKS operation failed, phrased for the administrator who has to act on it.

use std::io;

/// A LUKS home could not be read, created or changed. The variants say what the caller should do
/// (ask for another password, give up on a damaged image, report a missing kernel feature…).
#[derive(Debug, thiserror::Error)]
pub enum LuksError {
    /// None of the passwords opens a keyslot (homed's `ENOKEY`, D-Bus `BadPassword`).
    #[error("none of the supplied passwords unlocks the LUKS2 volume")]
    BadPassword,
    /// The image is not a homed image: too short, no or a broken partition table, not the one
    /// home partition homed expects.
    #[error("{path} is not a usable home image: {reason}")]
    BadImage { path: String, reason: String },
    /// The LUKS2 header is missing or damaged.
    #[error("the LUKS2 header on {path} cannot be read: {reason}")]
    BadHeader { path: String, reason: String },
    /// The container does not match what the user record says (homed's `EMEDIUMTYPE`).
    #[error("the LUKS2 volume does not match the user record: {0}")]
    RecordMismatch(String),
    /// There is no `systemd-homed` token in the header.
    #[error("the LUKS2 header holds no systemd-homed token with a user record")]
    NoToken,
    /// The token exists but cannot be decrypted or parsed.
    #[error("the systemd-homed token is unusable: {0}")]
    BadToken(String),
    /// The token's record is not signed by a key this machine trusts.
    #[error("the user record in the LUKS2 header is not signed by a trusted key ({0})")]
    UntrustedRecord(String),
    /// The volume uses a cipher we cannot use for the token.
    #[error("unsupported cipher {0} for the user-record token")]
    UnsupportedCipher(String),
    /// The kernel has no device-mapper (or no dm-crypt): the volume cannot be activated here.
    #[error("device-mapper is not available, so {0} cannot be done on this machine")]
    NoDeviceMapper(String),
    /// The image is locked by another process (homed's `EADDRINUSE`, D-Bus `HomeInUse`).
    #[error("{0} is in use by another process")]
    InUse(String),
    /// Something is already where the new home would go (`EEXIST`).
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A refusal of the request itself (wrong name, a bad size…).
    #[error("{0}")]
    Refused(String),
    /// libcryptsetup refused an operation.
    #[error("{what} failed: {message}")]
    Cryptsetup {
        what: String,
        message: String,
        #[source]
        source: io::Error,
    },
    /// A system call failed.
    #[error("{what} failed")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl LuksError {
    /// A failed system call, with what was being done.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        LuksError::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn random(source: getrandom::Error) -> Self {
        let source = match source.raw_os_error() {
            Some(errno) => io::Error::from_raw_os_error(errno),
            None => io::Error::other(source.to_string()),
        };
        LuksError::io("reading random bytes", source)
    }

    pub(crate) fn unsupported_cipher(cipher: &str, mode: &str, key_size: usize) -> Self {
        LuksError::UnsupportedCipher(format!(
            "{cipher}-{mode} with a {}-bit volume key",
            key_size * 8
        ))
    }

    /// The errno behind this error, as homed's worker would report it, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            LuksError::BadPassword => Some(libc::ENOKEY),
            LuksError::RecordMismatch(_) => Some(libc::EMEDIUMTYPE),
            LuksError::NoDeviceMapper(_) => Some(libc::EOPNOTSUPP),
            LuksError::InUse(_) => Some(libc::EADDRINUSE),
            LuksError::AlreadyExists(_) => Some(libc::EEXIST),
            LuksError::UntrustedRecord(_) => Some(libc::EKEYREJECTED),
            LuksError::Cryptsetup { source, .. } | LuksError::Io { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }
}

impl From<LuksError> for crate::StorageError {
    /// For the worker's reply: homed's errno where there is one, EIO otherwise.
    fn from(e: LuksError) -> Self {
        crate::StorageError::new(e.errno().unwrap_or(libc::EIO), e.to_string())
    }
}
