//! PKCS#11 security tokens as systemd-homed 252 uses them: a token named by an RFC 7512 URI,
//! a login with the user's PIN, an RSA private key that decrypts a secret (unlock), and an
//! X.509 certificate whose public key encrypts one (enrolment, in homectl).
//!
//! The module loaded is the one the URI names in `module-path`, otherwise p11-kit's proxy
//! module, which offers every module registered with p11-kit (`/usr/share/p11-kit/modules`,
//! `/etc/pkcs11/modules`) as slots of one module — the same set of tokens systemd reaches
//! through `p11_kit_modules_load_and_initialize`.

use std::fmt;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, CertificateType, KeyType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;
use zeroize::Zeroizing;

pub use cryptoki::slot::TokenInfo;

/// p11-kit's proxy module, found by the dynamic loader.
pub const P11_KIT_PROXY: &str = "p11-kit-proxy.so";

/// Why a token could not be used, named as homed's errors are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// No token matching the URI is present.
    NotFound,
    /// The token needs a PIN and none was given.
    PinNeeded,
    /// The token has a PIN pad and the caller did not allow using it.
    ProtectedPathNeeded,
    BadPin,
    BadPinFewTriesLeft,
    BadPinOneTryLeft,
    PinLocked,
    Failed(String),
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::NotFound => f.write_str("Security token not found"),
            TokenError::PinNeeded => f.write_str("Security token requires PIN"),
            TokenError::ProtectedPathNeeded => {
                f.write_str("Security token requires protected authentication path")
            }
            TokenError::BadPin => f.write_str("Security token PIN incorrect"),
            TokenError::BadPinFewTriesLeft => {
                f.write_str("Security token PIN incorrect (only a few tries left)")
            }
            TokenError::BadPinOneTryLeft => {
                f.write_str("Security token PIN incorrect (only one try left)")
            }
            TokenError::PinLocked => f.write_str("Security token PIN is locked"),
            TokenError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for TokenError {}

fn failed(what: &str) -> impl Fn(CkError) -> TokenError + '_ {
    move |e| TokenError::Failed(format!("{what}: {e}"))
}

/// The parts of a `pkcs11:` URI that homed uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUri {
    /// Path attributes, values percent-decoded.
    attributes: Vec<(String, Vec<u8>)>,
    module_path: Option<String>,
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl TokenUri {
    /// Parses `uri`; it must pass systemd's check (a `pkcs11:` prefix and only the characters
    /// `A-Za-z0-9.~/-_?;&%=`).
    pub fn parse(uri: &str) -> Result<TokenUri, TokenError> {
        let bad = || TokenError::Failed(format!("Not a valid PKCS#11 URI: {uri}"));
        let rest = uri.strip_prefix("pkcs11:").ok_or_else(bad)?;
        if !uri
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".~/-_?;&%=:".contains(&b))
        {
            return Err(bad());
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut attributes = Vec::new();
        for part in path.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(bad)?;
            attributes.push((k.to_owned(), percent_decode(v).ok_or_else(bad)?));
        }
        let mut module_path = None;
        for part in query.split('&').filter(|p| !p.is_empty()) {
            if let Some(v) = part.strip_prefix("module-path=") {
                let v = percent_decode(v).ok_or_else(bad)?;
                module_path = Some(String::from_utf8(v).map_err(|_| bad())?);
            }
        }
        Ok(TokenUri {
            attributes,
            module_path,
        })
    }

    /// The URI of a token, as homectl writes it for `auto` and `list`.
    pub fn for_token(info: &TokenInfo) -> String {
        format!(
            "pkcs11:model={};manufacturer={};serial={};token={}",
            percent_encode(info.model().trim_end()),
            percent_encode(info.manufacturer_id().trim_end()),
            percent_encode(info.serial_number().trim_end()),
            percent_encode(info.label().trim_end()),
        )
    }

    fn attribute(&self, name: &str) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Whether the token attributes of the URI all match `info`.
    pub fn matches(&self, info: &TokenInfo) -> bool {
        let fields: [(&str, &str); 4] = [
            ("token", info.label()),
            ("manufacturer", info.manufacturer_id()),
            ("serial", info.serial_number()),
            ("model", info.model()),
        ];
        fields.iter().all(|(name, value)| {
            self.attribute(name)
                .is_none_or(|want| want == value.trim_end().as_bytes())
        })
    }

    /// The object attributes of the URI (`id`, `object`), as a search template.
    fn object_template(&self) -> Vec<Attribute> {
        let mut template = Vec::new();
        if let Some(id) = self.attribute("id") {
            template.push(Attribute::Id(id.to_vec()));
        }
        if let Some(label) = self.attribute("object") {
            template.push(Attribute::Label(label.to_vec()));
        }
        template
    }

    /// The module to load: the URI's `module-path`, else p11-kit's proxy.
    pub fn module(&self) -> &str {
        self.module_path.as_deref().unwrap_or(P11_KIT_PROXY)
    }
}

/// A loaded and initialised PKCS#11 module.
pub struct Module {
    context: Pkcs11,
}

impl Module {
    pub fn load(path: &str) -> Result<Module, TokenError> {
        let context = Pkcs11::new(path).map_err(|e| {
            TokenError::Failed(format!("Failed to load PKCS#11 module {path}: {e}"))
        })?;
        context
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(failed("Failed to initialize PKCS#11 module"))?;
        Ok(Module { context })
    }

    /// The initialised tokens present. Uninitialised ones (SoftHSM always keeps a spare slot)
    /// and slots that cannot be read are skipped.
    pub fn tokens(&self) -> Result<Vec<(Slot, TokenInfo)>, TokenError> {
        let slots = self
            .context
            .get_slots_with_token()
            .map_err(failed("Failed to list PKCS#11 slots"))?;
        Ok(slots
            .into_iter()
            .filter_map(|slot| {
                let info = self.context.get_token_info(slot).ok()?;
                info.token_initialized().then_some((slot, info))
            })
            .collect())
    }

    /// The one token `uri` names.
    pub fn find(&self, uri: &TokenUri) -> Result<(Slot, TokenInfo), TokenError> {
        let mut found: Vec<_> = self
            .tokens()?
            .into_iter()
            .filter(|(_, info)| uri.matches(info))
            .collect();
        match found.len() {
            0 => Err(TokenError::NotFound),
            1 => Ok(found.remove(0)),
            _ => Err(TokenError::Failed(
                "More than one suitable PKCS#11 token found.".into(),
            )),
        }
    }

    pub fn open(&self, slot: Slot) -> Result<Session, TokenError> {
        self.context
            .open_ro_session(slot)
            .map_err(failed("Failed to create session for security token"))
    }

    /// Logs in as the user, as homed 252 does: through the PIN pad when the token has one
    /// and the caller allowed it, not at all when the token needs no login, otherwise with
    /// each PIN in turn; when all are wrong, the token's PIN counters decide which error.
    pub fn login(
        &self,
        slot: Slot,
        session: &Session,
        info: &TokenInfo,
        pins: &[SecretString],
        protected_path_permitted: bool,
    ) -> Result<(), TokenError> {
        let already = |r: Result<(), CkError>| match r {
            Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            other => other,
        };
        if info.protected_authentication_path() {
            if !protected_path_permitted {
                return Err(TokenError::ProtectedPathNeeded);
            }
            return already(session.login(UserType::User, None))
                .map_err(failed("Failed to log into security token"));
        }
        if !info.login_required() {
            return Ok(());
        }
        if pins.is_empty() {
            return Err(TokenError::PinNeeded);
        }
        for pin in pins {
            match already(session.login(UserType::User, Some(pin))) {
                Ok(()) => return Ok(()),
                Err(CkError::Pkcs11(RvError::PinLocked, _)) => return Err(TokenError::PinLocked),
                Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {}
                Err(e) => {
                    return Err(TokenError::Failed(format!(
                        "Failed to log into security token: {e}"
                    )));
                }
            }
        }
        let now = self.context.get_token_info(slot).ok();
        Err(match now {
            Some(i) if i.user_pin_final_try() => TokenError::BadPinOneTryLeft,
            Some(i) if i.user_pin_count_low() => TokenError::BadPinFewTriesLeft,
            _ => TokenError::BadPin,
        })
    }
}

/// The one object of `class` (and `extra`) matching the URI's object attributes.
fn find_one(
    session: &Session,
    uri: &TokenUri,
    mut template: Vec<Attribute>,
    what: &str,
) -> Result<cryptoki::object::ObjectHandle, TokenError> {
    template.extend(uri.object_template());
    let mut found = session
        .find_objects(&template)
        .map_err(failed("Failed to search security token objects"))?;
    match found.len() {
        0 => Err(TokenError::Failed(format!(
            "Failed to find {what} on the security token."
        ))),
        1 => Ok(found.remove(0)),
        _ => Err(TokenError::Failed(format!(
            "Configured URI matches multiple {what}s, refusing."
        ))),
    }
}

/// Recovers the key a record's `pkcs11EncryptedKey.data` holds, with the token's private key,
/// after [`Module::login`]: an RSA key decrypts it (PKCS#1 v1.5); an EC key takes it as the
/// public point of the ephemeral key made at enrolment and derives the shared secret with it
/// (ECDH, no KDF), which is the key — as systemd enrols EC tokens since v254.
pub fn decrypt(
    session: &Session,
    uri: &TokenUri,
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, TokenError> {
    let key = find_one(
        session,
        uri,
        vec![Attribute::Class(ObjectClass::PRIVATE_KEY)],
        "private key",
    )?;
    let kind = session
        .get_attributes(key, &[AttributeType::KeyType])
        .map_err(failed("Failed to read the private key's type"))?
        .into_iter()
        .find_map(|a| match a {
            Attribute::KeyType(k) => Some(k),
            _ => None,
        });
    match kind {
        Some(KeyType::RSA) => session
            .decrypt(&Mechanism::RsaPkcs, key, data)
            .map(Zeroizing::new)
            .map_err(failed("Failed to decrypt key on security token")),
        Some(KeyType::EC) => derive_shared_secret(session, key, data),
        other => Err(TokenError::Failed(format!(
            "Unsupported type of private key on the security token: {other:?}"
        ))),
    }
}

/// ECDH on the token between its private key and the ephemeral public `point`: the shared
/// secret, read out of a session object that is destroyed again at once.
fn derive_shared_secret(
    session: &Session,
    key: cryptoki::object::ObjectHandle,
    point: &[u8],
) -> Result<Zeroizing<Vec<u8>>, TokenError> {
    use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
    let mechanism = Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), point));
    let template = [
        Attribute::Token(false),
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    let secret = session
        .derive_key(&mechanism, key, &template)
        .map_err(failed(
            "Failed to derive the shared secret on security token",
        ))?;
    let value = session.get_attributes(secret, &[AttributeType::Value]);
    let _ = session.destroy_object(secret);
    value
        .map_err(failed(
            "Failed to read the shared secret from security token",
        ))?
        .into_iter()
        .find_map(|a| match a {
            Attribute::Value(v) => Some(Zeroizing::new(v)),
            _ => None,
        })
        .ok_or_else(|| TokenError::Failed("The shared secret has no value.".into()))
}

/// The DER form of the token's X.509 certificate.
pub fn certificate(session: &Session, uri: &TokenUri) -> Result<Vec<u8>, TokenError> {
    let cert = find_one(
        session,
        uri,
        vec![
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
        ],
        "certificate",
    )?;
    let attrs = session
        .get_attributes(cert, &[AttributeType::Value])
        .map_err(failed("Failed to read certificate from security token"))?;
    attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::Value(v) => Some(v),
            _ => None,
        })
        .ok_or_else(|| TokenError::Failed("Certificate has no value.".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_as_rfc_7512_says() {
        let uri = TokenUri::parse(
            "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=abc;token=homed-test?module-path=/usr/lib/softhsm/libsofthsm2.so",
        )
        .unwrap();
        assert_eq!(uri.attribute("model"), Some(&b"SoftHSM v2"[..]));
        assert_eq!(uri.attribute("token"), Some(&b"homed-test"[..]));
        assert_eq!(uri.module(), "/usr/lib/softhsm/libsofthsm2.so");
        assert_eq!(TokenUri::parse("pkcs11:").unwrap().module(), P11_KIT_PROXY);
        assert!(TokenUri::parse("file:x").is_err());
        assert!(TokenUri::parse("pkcs11:token=a b").is_err());
        assert!(TokenUri::parse("pkcs11:token=%zz").is_err());
        assert_eq!(percent_encode("SoftHSM v2"), "SoftHSM%20v2");
    }
}
