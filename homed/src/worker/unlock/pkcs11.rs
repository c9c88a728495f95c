//! PKCS#11 security tokens: each `privileged.pkcs11EncryptedKey` entry holds a random secret
//! encrypted with the token's RSA key; the token decrypts it after a login with the PIN from
//! `secret.tokenPin`, and the secret's base64 form is a password like any other (it must match
//! the entry's `hashedPassword`, and it opens its own keyslot), as in systemd-homed 252.

use base64::Engine as _;
use homed_shared::UserRecord;
use homed_shared::password::verify_password;
use homed_shared::pkcs11::{self, Module, TokenError, TokenUri};
use homed_shared::record::Secret;
use homed_storage::StorageError;
use secrecy::SecretString;
use serde_json::Value;
use zeroize::Zeroizing;

use super::Unlocker;

const PROTECTED_PATH_FLAG: &str = "pkcs11ProtectedAuthenticationPathPermitted";

pub struct Pkcs11;

/// One `pkcs11EncryptedKey` entry.
struct Entry<'a> {
    uri: &'a str,
    data: Vec<u8>,
    hashed_password: &'a str,
}

fn entries(record: &UserRecord) -> Result<Vec<Entry<'_>>, StorageError> {
    let Some(list) = record
        .json()
        .get("privileged")
        .and_then(|p| p.get("pkcs11EncryptedKey"))
    else {
        return Ok(Vec::new());
    };
    let bad = |why: &str| {
        StorageError::new(
            libc::EINVAL,
            format!("Malformed pkcs11EncryptedKey entry in the user record: {why}"),
        )
    };
    let list = list.as_array().ok_or_else(|| bad("not an array"))?;
    list.iter()
        .map(|entry| {
            let field = |name: &str| {
                entry
                    .get(name)
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(&format!("{name} missing or not a string")))
            };
            let data = base64::engine::general_purpose::STANDARD
                .decode(field("data")?)
                .map_err(|_| bad("data is not base64"))?;
            Ok(Entry {
                uri: field("uri")?,
                data,
                hashed_password: field("hashedPassword")?,
            })
        })
        .collect()
}

fn storage_error(e: TokenError) -> StorageError {
    let errno = match &e {
        TokenError::NotFound => libc::EBADSLT,
        TokenError::PinNeeded => libc::ENOANO,
        TokenError::ProtectedPathNeeded => libc::ERFKILL,
        TokenError::BadPin => libc::ENOLCK,
        TokenError::BadPinFewTriesLeft => libc::ETOOMANYREFS,
        TokenError::BadPinOneTryLeft => libc::EUCLEAN,
        TokenError::PinLocked => libc::EOWNERDEAD,
        TokenError::Failed(_) => libc::EIO,
    };
    StorageError::new(errno, e.to_string())
}

/// The password one entry yields: the token decrypts `data`, its base64 form must match the
/// entry's hash (a token that decrypts to anything else is refused outright, as in 252).
fn derive(
    modules: &mut Vec<(String, Module)>,
    entry: &Entry<'_>,
    secret: &Secret,
) -> Result<SecretString, StorageError> {
    let uri = TokenUri::parse(entry.uri).map_err(storage_error)?;
    let index = match modules.iter().position(|(path, _)| path == uri.module()) {
        Some(i) => i,
        None => {
            let module = Module::load(uri.module()).map_err(storage_error)?;
            modules.push((uri.module().to_owned(), module));
            modules.len() - 1
        }
    };
    let module = &modules[index].1;
    let (slot, info) = module.find(&uri).map_err(storage_error)?;
    let session = module.open(slot).map_err(storage_error)?;
    module
        .login(
            slot,
            &session,
            &info,
            secret.token_pins(),
            secret.permitted(PROTECTED_PATH_FLAG),
        )
        .map_err(storage_error)?;
    let plain = pkcs11::decrypt(&session, &uri, &entry.data).map_err(storage_error)?;
    let encoded =
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(plain.as_slice()));
    drop(plain);
    let password = SecretString::from(encoded.as_str().to_owned());
    drop(encoded);
    if !verify_password(&password, entry.hashed_password) {
        return Err(StorageError::new(
            libc::EPERM,
            format!(
                "Security token {} does not decrypt encrypted key correctly, refusing.",
                entry.uri
            ),
        ));
    }
    Ok(password)
}

/// Every entry's password, or the errors of the entries that gave none.
fn derive_all(
    record: &UserRecord,
    secret: &Secret,
) -> Result<(Vec<SecretString>, Vec<StorageError>), StorageError> {
    let entries = entries(record)?;
    let mut modules = Vec::new();
    let mut passwords = Vec::new();
    let mut errors = Vec::new();
    for entry in &entries {
        match derive(&mut modules, entry, secret) {
            Ok(p) => passwords.push(p),
            Err(e) => errors.push(e),
        }
    }
    Ok((passwords, errors))
}

impl Unlocker for Pkcs11 {
    /// The passwords of the tokens present; a token that is absent or refuses adds none (a
    /// typed password may still open the home).
    fn passphrases(
        &self,
        record: Option<&UserRecord>,
        secret: &Secret,
    ) -> Result<Vec<SecretString>, StorageError> {
        let Some(record) = record else {
            return Ok(Vec::new());
        };
        Ok(derive_all(record, secret)?.0)
    }

    fn authenticate_device(
        &self,
        record: &UserRecord,
        secret: &Secret,
    ) -> Option<Result<(), StorageError>> {
        let (passwords, mut errors) = match derive_all(record, secret) {
            Ok(found) => found,
            Err(e) => return Some(Err(e)),
        };
        if !passwords.is_empty() {
            return Some(Ok(()));
        }
        if errors.is_empty() {
            return None;
        }
        // A token that decrypted to the wrong secret ends the check at once.
        if let Some(i) = errors.iter().position(|e| e.errno == libc::EPERM) {
            return Some(Err(errors.swap_remove(i)));
        }
        errors.sort_by_key(|e| super::rank(e.errno));
        Some(Err(errors.swap_remove(0)))
    }
}
