//! `--pkcs11-token-uri=`: enrolment of a PKCS#11 security token, as systemd's homectl 252 does
//! it. The token's X.509 certificate gives an RSA public key; a random secret of a sixteenth of
//! the key's bits is encrypted with it (PKCS#1 v1.5); the record keeps the ciphertext, the
//! token's URI and the UNIX hash of the secret's base64 form, which is the password the token
//! yields at login.

use base64::Engine as _;
use homed_shared::password::hash_password;
use homed_shared::pkcs11::{self, Module, TokenError, TokenUri};
use p256::pkcs8::DecodePublicKey as _;
use rsa::traits::PublicKeyParts as _;
use rsa::{Pkcs1v15Encrypt, RsaPublicKey};
use secrecy::SecretString;
use x509_cert::der::{Decode as _, Encode as _};
use zeroize::Zeroizing;

use crate::ojson::OJson;

/// What one enrolment adds to the record.
pub struct Enrolment {
    uri: String,
    encrypted: Vec<u8>,
    hashed_password: String,
}

fn token_error(uri: &str) -> impl Fn(TokenError) -> String + '_ {
    move |e| match e {
        TokenError::NotFound => format!("Specified PKCS#11 token with URI {uri} not found."),
        TokenError::BadPin | TokenError::BadPinFewTriesLeft | TokenError::BadPinOneTryLeft => {
            format!("Failed to log into security token: {e}")
        }
        other => other.to_string(),
    }
}

/// The tokens present, for `auto` and `list`: only initialised tokens (SoftHSM's spare slot
/// never matters), through p11-kit's proxy module.
fn tokens() -> Result<Vec<(String, pkcs11::TokenInfo)>, String> {
    let module = Module::load(pkcs11::P11_KIT_PROXY).map_err(|e| e.to_string())?;
    Ok(module
        .tokens()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(_, info)| (TokenUri::for_token(&info), info))
        .collect())
}

/// `--pkcs11-token-uri=list`: the table homectl prints.
pub fn list() -> Result<String, String> {
    let found = tokens()?;
    if found.is_empty() {
        return Ok("No suitable PKCS#11 tokens found.\n".into());
    }
    let rows: Vec<[String; 4]> = found
        .iter()
        .map(|(uri, info)| {
            [
                uri.clone(),
                info.label().trim_end().to_owned(),
                info.manufacturer_id().trim_end().to_owned(),
                info.model().trim_end().to_owned(),
            ]
        })
        .collect();
    let header = ["URI", "LABEL", "MANUFACTURER", "MODEL"];
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 4]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 3 {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$} ", w = widths[i]));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(header);
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3]]));
    }
    Ok(out)
}

/// `--pkcs11-token-uri=auto`: the URI of the one suitable token (it needs a login and has a
/// random number generator, the test homectl 252 makes).
pub fn auto() -> Result<String, String> {
    let mut suitable: Vec<String> = tokens()?
        .into_iter()
        .filter(|(_, info)| info.login_required() && info.rng())
        .map(|(uri, _)| uri)
        .collect();
    match suitable.len() {
        0 => Err("No suitable PKCS#11 tokens found.".into()),
        1 => Ok(suitable.remove(0)),
        _ => Err("More than one suitable PKCS#11 token found.".into()),
    }
}

/// Whether `uri` is one homed accepts (systemd's `pkcs11_uri_valid`).
pub fn valid_uri(uri: &str) -> bool {
    uri.starts_with("pkcs11:")
        && uri
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".~/-_?;&%=:".contains(&b))
}

/// Enrols the token `uri` names, logging in with the PIN `pin` gives when the token needs
/// one. Returns the enrolment and the PIN used (it goes to the secret, as in 252).
pub fn enrol(
    uri: &str,
    pin: &mut dyn FnMut() -> Result<SecretString, String>,
) -> Result<(Enrolment, Option<SecretString>), String> {
    let parsed = TokenUri::parse(uri).map_err(|e| e.to_string())?;
    let module = Module::load(parsed.module()).map_err(|e| e.to_string())?;
    let (slot, info) = module.find(&parsed).map_err(token_error(uri))?;
    let session = module.open(slot).map_err(token_error(uri))?;
    let mut used = None;
    if info.login_required() && !info.protected_authentication_path() {
        let given = pin()?;
        module
            .login(slot, &session, &info, std::slice::from_ref(&given), false)
            .map_err(token_error(uri))?;
        used = Some(given);
    } else {
        module
            .login(slot, &session, &info, &[], true)
            .map_err(token_error(uri))?;
    }
    let der = pkcs11::certificate(&session, &parsed).map_err(token_error(uri))?;
    let cert = x509_cert::Certificate::from_der(&der)
        .map_err(|e| format!("Failed to parse X.509 certificate: {e}"))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("Failed to extract public key from X.509 certificate: {e}"))?;
    let (plain, encrypted) = seal_for(&spki)?;
    let encoded =
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(plain.as_slice()));
    drop(plain);
    let password = SecretString::from(encoded.as_str().to_owned());
    drop(encoded);
    let hashed_password =
        hash_password(&password).map_err(|e| format!("Failed to UNIX hash secret key: {e}"))?;
    Ok((
        Enrolment {
            uri: uri.to_owned(),
            encrypted,
            hashed_password,
        },
        used,
    ))
}

/// A new key for the token whose public key `spki` is, and what the record keeps of it: for
/// RSA, a random key of bits/16 bytes encrypted to the public key (PKCS#1 v1.5, as 252); for EC
/// (P-256, P-384), the shared secret with a new ephemeral key, which keeps the ephemeral
/// public point (uncompressed), as systemd enrols EC tokens since v254.
fn seal_for(spki: &[u8]) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), String> {
    if let Ok(key) = RsaPublicKey::from_public_key_der(spki) {
        let size = key.n().bits() / 16;
        let mut plain = Zeroizing::new(vec![0u8; size]);
        getrandom::fill(plain.as_mut_slice())
            .map_err(|e| format!("Failed to generate random key: {e}"))?;
        let encrypted = key
            .encrypt(
                &mut rsa::rand_core::OsRng,
                Pkcs1v15Encrypt,
                plain.as_slice(),
            )
            .map_err(|e| format!("Failed to encrypt key: {e}"))?;
        return Ok((plain, encrypted));
    }
    // The same steps on each curve's own types.
    macro_rules! shared_secret_on {
        ($curve:ident) => {
            if let Ok(key) = $curve::PublicKey::from_public_key_der(spki) {
                let ephemeral = $curve::ecdh::EphemeralSecret::random(&mut rsa::rand_core::OsRng);
                let shared = ephemeral.diffie_hellman(&key);
                let point = $curve::EncodedPoint::from(ephemeral.public_key());
                return Ok((
                    Zeroizing::new(shared.raw_secret_bytes().to_vec()),
                    point.as_bytes().to_vec(),
                ));
            }
        };
    }
    shared_secret_on!(p256);
    shared_secret_on!(p384);
    Err("X.509 certificate does not refer to an RSA key or an EC key on P-256 or P-384.".into())
}

/// Puts the enrolments into the record: `pkcs11TokenUri` and `privileged.pkcs11EncryptedKey`
/// replaced by exactly these (giving `--pkcs11-token-uri=` at all replaces the old ones, as in
/// systemd's homectl).
pub fn apply(v: &mut OJson, enrolments: &[Enrolment]) {
    let mut uris: Vec<&str> = Vec::new();
    for e in enrolments {
        if !uris.contains(&e.uri.as_str()) {
            uris.push(&e.uri);
        }
    }
    let mut privileged = v.get("privileged").cloned().unwrap_or_else(OJson::object);
    privileged.remove("pkcs11EncryptedKey");
    v.remove("pkcs11TokenUri");
    if !enrolments.is_empty() {
        v.set("pkcs11TokenUri", OJson::strings(&uris));
        let entries = enrolments
            .iter()
            .map(|e| {
                let mut entry = OJson::object();
                entry.set("uri", OJson::string(&e.uri));
                entry.set(
                    "data",
                    OJson::string(base64::engine::general_purpose::STANDARD.encode(&e.encrypted)),
                );
                entry.set("hashedPassword", OJson::string(&e.hashed_password));
                entry
            })
            .collect();
        privileged.set("pkcs11EncryptedKey", OJson::Array(entries));
    }
    v.set("privileged", privileged);
}
