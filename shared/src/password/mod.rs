//! crypt(3) password hashes through libxcrypt, the library pam_unix and systemd use, so every
//! hash format the system knows verifies and new hashes use the distribution's preferred method.

pub mod recovery_key;
mod sys;

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// Why no hash could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("a password must not contain a NUL character")]
    NulInPassword,
    #[error("libxcrypt could not generate a salt for method prefix {0:?}")]
    Salt(String),
    #[error("libxcrypt could not hash the password")]
    Hash,
}

fn nul_terminated(password: &SecretString) -> Option<Zeroizing<Vec<u8>>> {
    let bytes = password.expose_secret().as_bytes();
    if bytes.contains(&0) {
        return None;
    }
    let mut buffer = Zeroizing::new(Vec::with_capacity(bytes.len() + 1));
    buffer.extend_from_slice(bytes);
    buffer.push(0);
    Some(buffer)
}

/// Hashes `password` with the system's preferred method (`$y$` yescrypt on Debian 12), or with
/// the prefix in `$SYSTEMD_CRYPT_PREFIX`, as homed does.
pub fn hash_password(password: &SecretString) -> Result<String, HashError> {
    let prefix = crate::env::secure_var("SYSTEMD_CRYPT_PREFIX").filter(|p| !p.is_empty());
    let setting = sys::gensalt(prefix.as_deref())
        .ok_or_else(|| HashError::Salt(prefix.unwrap_or_default()))?;
    let phrase = nul_terminated(password).ok_or(HashError::NulInPassword)?;
    let hash = sys::crypt(&phrase, &setting).ok_or(HashError::Hash)?;
    Ok(hash)
}

/// Whether `password` matches the crypt(3) `hash`. The comparison takes the same time wherever
/// the strings differ. Hashes that libxcrypt reports as invalid never match.
pub fn verify_password(password: &SecretString, hash: &str) -> bool {
    let Some(phrase) = nul_terminated(password) else {
        return false;
    };
    let Ok(setting) = std::ffi::CString::new(hash) else {
        return false;
    };
    let Some(computed) = sys::crypt(&phrase, setting.as_bytes_with_nul()) else {
        return false;
    };
    computed.len() == hash.len() && bool::from(computed.as_bytes().ct_eq(hash.as_bytes()))
}

/// Whether one of `passwords` opens a record with these `hashes` (`privileged.hashedPassword`)
/// and `recovery_keys` (`privileged.recoveryKey`, as type and hash): as systemd-homed checks,
/// the passwords against the hashes first, then each of them as a recovery key.
pub fn secret_matches<H: AsRef<str>, K: AsRef<str>>(
    passwords: &[SecretString],
    hashes: &[H],
    recovery_keys: &[(K, H)],
) -> bool {
    passwords
        .iter()
        .any(|p| hashes.iter().any(|h| verify_password(p, h.as_ref())))
        || passwords.iter().any(|p| {
            recovery_keys
                .iter()
                .any(|(kind, hash)| recovery_key::verify(p, kind.as_ref(), hash.as_ref()))
        })
}

/// The prefix of the method libxcrypt prefers on this system, e.g. `$y$`.
pub fn preferred_method() -> Option<String> {
    sys::preferred_method()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn generated_hash_verifies() {
        let hash = hash_password(&secret("correct horse")).unwrap();
        assert!(hash.starts_with(&preferred_method().unwrap()), "{hash}");
        assert!(verify_password(&secret("correct horse"), &hash));
        assert!(!verify_password(&secret("correct horsf"), &hash));
        assert!(!verify_password(&secret(""), &hash));
    }

    #[test]
    fn other_formats_and_garbage() {
        // SHA-512 crypt from glibc's test vectors.
        let sha512 = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
        assert!(verify_password(&secret("Hello world!"), sha512));
        assert!(!verify_password(&secret("Hello world"), sha512));
        for garbage in ["", "*", "!", "!*", "$y$", "x", "$6$$"] {
            assert!(!verify_password(&secret(""), garbage), "{garbage}");
            assert!(!verify_password(&secret("x"), garbage), "{garbage}");
        }
        assert!(hash_password(&secret("a\0b")).is_err());
    }
}
