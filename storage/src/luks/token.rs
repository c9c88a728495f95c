//! The `systemd-homed` LUKS2 token: the embedded user record, encrypted with the volume key
//! (homed-spec §3.2).
//!
//! The cipher is the OpenSSL cipher named `<luksCipher>-<keybits>-<mode prefix>`. For XTS (the
//! default, `aes-128-xts` with a 32-byte volume key) the whole key is the XTS key pair (first half
//! for the data, second half for the tweak), the random 16-byte IV is the tweak, and the whole
//! buffer is one data unit with ciphertext stealing. CBC uses PKCS#7 padding (EVP's default).

use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit, block_padding::Pkcs7};
use aes::{Aes128, Aes192, Aes256};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};
use xts_mode::Xts128;
use zeroize::Zeroizing;

use super::LuksError;
use homed_shared::record::{RecordOrigin, UserRecord};

/// The LUKS2 token type homed stores the record under.
pub const TOKEN_TYPE: &str = "systemd-homed";

/// The smallest buffer OpenSSL's XTS accepts (one AES block).
const XTS_MIN_LEN: usize = 16;
/// IV length of every cipher we support (the AES block).
const IV_LEN: usize = 16;

/// A cipher for the token, chosen from the LUKS cipher, mode and volume key size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCipher {
    mode: Mode,
    /// AES key bits per key (half the volume key for XTS).
    bits: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Xts,
    Cbc,
}

impl TokenCipher {
    /// The cipher homed uses for a LUKS volume with `cipher` (`aes`), `cipher_mode`
    /// (`xts-plain64`) and a volume key of `key_size` bytes.
    pub fn for_volume(cipher: &str, cipher_mode: &str, key_size: usize) -> Result<Self, LuksError> {
        let prefix = cipher_mode.split('-').next().unwrap_or(cipher_mode);
        let (mode, bits) = match prefix {
            "xts" => (Mode::Xts, key_size * 8 / 2),
            "cbc" => (Mode::Cbc, key_size * 8),
            _ => return Err(LuksError::unsupported_cipher(cipher, prefix, key_size)),
        };
        if cipher != "aes" || !matches!(bits, 128 | 192 | 256) || (mode == Mode::Xts && bits == 192)
        {
            return Err(LuksError::unsupported_cipher(cipher, prefix, key_size));
        }
        Ok(TokenCipher { mode, bits })
    }

    /// OpenSSL's name for this cipher, e.g. `aes-128-xts`.
    pub fn openssl_name(&self) -> String {
        let mode = match self.mode {
            Mode::Xts => "xts",
            Mode::Cbc => "cbc",
        };
        format!("aes-{}-{mode}", self.bits)
    }

    /// The volume key length this cipher needs, in bytes.
    fn key_len(&self) -> usize {
        match self.mode {
            Mode::Xts => self.bits / 4,
            Mode::Cbc => self.bits / 8,
        }
    }

    fn check_key(&self, key: &[u8]) -> Result<(), LuksError> {
        if key.len() == self.key_len() {
            Ok(())
        } else {
            Err(LuksError::BadToken(format!(
                "{} needs a {}-byte volume key, not {} bytes",
                self.openssl_name(),
                self.key_len(),
                key.len()
            )))
        }
    }

    /// Encrypts `plain` with `key` (the volume key) and `iv`.
    pub fn encrypt(
        &self,
        key: &[u8],
        iv: &[u8; IV_LEN],
        plain: &[u8],
    ) -> Result<Vec<u8>, LuksError> {
        self.check_key(key)?;
        match self.mode {
            Mode::Xts => {
                if plain.len() < XTS_MIN_LEN {
                    return Err(LuksError::BadToken(
                        "XTS cannot encrypt less than one block".into(),
                    ));
                }
                let mut buf = plain.to_vec();
                xts_apply(key, self.bits, iv, &mut buf, true)?;
                Ok(buf)
            }
            Mode::Cbc => cbc_encrypt(key, self.bits, iv, plain),
        }
    }

    /// Decrypts `data` with `key` and `iv`. The result is zeroized when dropped.
    pub fn decrypt(
        &self,
        key: &[u8],
        iv: &[u8],
        data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, LuksError> {
        self.check_key(key)?;
        let iv: &[u8; IV_LEN] = iv.try_into().map_err(|_| {
            LuksError::BadToken(format!("the IV is {} bytes, not {IV_LEN}", iv.len()))
        })?;
        match self.mode {
            Mode::Xts => {
                if data.len() < XTS_MIN_LEN {
                    return Err(LuksError::BadToken(
                        "the encrypted record is too short".into(),
                    ));
                }
                let mut buf = Zeroizing::new(data.to_vec());
                xts_apply(key, self.bits, iv, &mut buf, false)?;
                Ok(buf)
            }
            Mode::Cbc => cbc_decrypt(key, self.bits, iv, data),
        }
    }
}

fn xts_apply(
    key: &[u8],
    bits: usize,
    iv: &[u8; IV_LEN],
    buf: &mut [u8],
    encrypt: bool,
) -> Result<(), LuksError> {
    let (k1, k2) = key.split_at(key.len() / 2);
    let tweak = (*iv).into();
    let bad_key = |_| LuksError::BadToken("the volume key does not fit the cipher".into());
    match bits {
        128 => {
            let xts = Xts128::new(
                Aes128::new_from_slice(k1).map_err(bad_key)?,
                Aes128::new_from_slice(k2).map_err(bad_key)?,
            );
            if encrypt {
                xts.encrypt_sector(buf, tweak);
            } else {
                xts.decrypt_sector(buf, tweak);
            }
        }
        _ => {
            let xts = Xts128::new(
                Aes256::new_from_slice(k1).map_err(bad_key)?,
                Aes256::new_from_slice(k2).map_err(bad_key)?,
            );
            if encrypt {
                xts.encrypt_sector(buf, tweak);
            } else {
                xts.decrypt_sector(buf, tweak);
            }
        }
    }
    Ok(())
}

fn cbc_encrypt(
    key: &[u8],
    bits: usize,
    iv: &[u8; IV_LEN],
    plain: &[u8],
) -> Result<Vec<u8>, LuksError> {
    let bad_key = |_| LuksError::BadToken("the volume key does not fit the cipher".into());
    Ok(match bits {
        128 => cbc::Encryptor::<Aes128>::new_from_slices(key, iv)
            .map_err(bad_key)?
            .encrypt_padded_vec::<Pkcs7>(plain),
        192 => cbc::Encryptor::<Aes192>::new_from_slices(key, iv)
            .map_err(bad_key)?
            .encrypt_padded_vec::<Pkcs7>(plain),
        _ => cbc::Encryptor::<Aes256>::new_from_slices(key, iv)
            .map_err(bad_key)?
            .encrypt_padded_vec::<Pkcs7>(plain),
    })
}

fn cbc_decrypt(
    key: &[u8],
    bits: usize,
    iv: &[u8; IV_LEN],
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, LuksError> {
    let bad_key = |_| LuksError::BadToken("the volume key does not fit the cipher".into());
    let bad_pad =
        |_| LuksError::BadToken("the record does not decrypt with this volume key".into());
    let plain = match bits {
        128 => cbc::Decryptor::<Aes128>::new_from_slices(key, iv)
            .map_err(bad_key)?
            .decrypt_padded_vec::<Pkcs7>(data)
            .map_err(bad_pad)?,
        192 => cbc::Decryptor::<Aes192>::new_from_slices(key, iv)
            .map_err(bad_key)?
            .decrypt_padded_vec::<Pkcs7>(data)
            .map_err(bad_pad)?,
        _ => cbc::Decryptor::<Aes256>::new_from_slices(key, iv)
            .map_err(bad_key)?
            .decrypt_padded_vec::<Pkcs7>(data)
            .map_err(bad_pad)?,
    };
    Ok(Zeroizing::new(plain))
}

/// Builds the token JSON for `record` (its embedded copy is what gets stored), with a fresh IV.
pub fn seal_record(
    cipher: &TokenCipher,
    volume_key: &[u8],
    record: &UserRecord,
) -> Result<Value, LuksError> {
    let text = Zeroizing::new(record.embedded_copy().to_compact_string());
    let mut iv = [0u8; IV_LEN];
    getrandom::fill(&mut iv).map_err(LuksError::random)?;
    let sealed = cipher.encrypt(volume_key, &iv, text.as_bytes())?;
    let mut token = Map::new();
    token.insert("type".into(), Value::String(TOKEN_TYPE.into()));
    token.insert("keyslots".into(), Value::Array(Vec::new()));
    token.insert("record".into(), Value::String(BASE64.encode(sealed)));
    token.insert("iv".into(), Value::String(BASE64.encode(iv)));
    Ok(Value::Object(token))
}

/// Decrypts and parses the record in a `systemd-homed` token. Refuses embedded NULs, as homed
/// does, and any section an embedded record must not carry.
pub fn open_record(
    cipher: &TokenCipher,
    volume_key: &[u8],
    token: &Value,
) -> Result<UserRecord, LuksError> {
    if token.get("type").and_then(Value::as_str) != Some(TOKEN_TYPE) {
        return Err(LuksError::BadToken(format!(
            "the token is not of type {TOKEN_TYPE}"
        )));
    }
    let field = |name: &str| -> Result<Vec<u8>, LuksError> {
        let text = token
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| LuksError::BadToken(format!("the token has no \"{name}\" string")))?;
        BASE64
            .decode(text)
            .map_err(|_| LuksError::BadToken(format!("the token's \"{name}\" is not base64")))
    };
    let sealed = field("record")?;
    let iv = field("iv")?;
    let plain = cipher.decrypt(volume_key, &iv, &sealed)?;
    if plain.contains(&0) {
        return Err(LuksError::BadToken(
            "the decrypted record contains NUL bytes (wrong volume key?)".into(),
        ));
    }
    UserRecord::parse(&plain, RecordOrigin::Embedded).map_err(|e| {
        LuksError::BadToken(format!(
            "the decrypted record is not a valid user record: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> UserRecord {
        UserRecord::parse(
            br#"{"userName":"alice","realName":"Alice Example","uid":60123,"storage":"luks",
                "binding":{"0123456789abcdef0123456789abcdef":{"uid":60123}}}"#,
            RecordOrigin::Host,
        )
        .unwrap()
    }

    #[test]
    fn cipher_names_follow_homed() {
        let c = |m: &str, k: usize| TokenCipher::for_volume("aes", m, k).map(|c| c.openssl_name());
        assert_eq!(c("xts-plain64", 32).unwrap(), "aes-128-xts");
        assert_eq!(c("xts-plain64", 64).unwrap(), "aes-256-xts");
        assert_eq!(c("cbc-essiv:sha256", 32).unwrap(), "aes-256-cbc");
        assert_eq!(c("cbc-plain", 16).unwrap(), "aes-128-cbc");
        assert!(c("xts-plain64", 48).is_err());
        assert!(TokenCipher::for_volume("serpent", "xts-plain64", 32).is_err());
        assert!(c("ecb", 32).is_err());
    }

    #[test]
    fn xts_matches_ieee_1619_vector() {
        // IEEE P1619 XTS-AES-128 vector 4: key1 = 2718281828…, key2 = 3141592653…, data unit
        // sequence number 0, 512 bytes of 00..ff 00..ff; first ciphertext block 27a7479b….
        let key: Vec<u8> = [
            "27182818284590452353602874713526",
            "31415926535897932384626433832795",
        ]
        .iter()
        .flat_map(|h| (0..16).map(move |i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap()))
        .collect();
        let plain: Vec<u8> = (0..512).map(|i| i as u8).collect();
        let cipher = TokenCipher::for_volume("aes", "xts-plain64", 32).unwrap();
        let sealed = cipher.encrypt(&key, &[0; 16], &plain).unwrap();
        assert_eq!(
            &sealed[..16],
            &[
                0x27, 0xa7, 0x47, 0x9b, 0xef, 0xa1, 0xd4, 0x76, 0x48, 0x9f, 0x30, 0x8c, 0xd4, 0xcf,
                0xa6, 0xe2
            ]
        );
    }

    #[test]
    fn token_round_trips_with_ciphertext_stealing() {
        let key: Vec<u8> = (0..32u8).collect();
        for mode in ["xts-plain64", "cbc-essiv:sha256"] {
            let cipher = TokenCipher::for_volume("aes", mode, 32).unwrap();
            let token = seal_record(&cipher, &key, &record()).unwrap();
            assert_eq!(token["type"], TOKEN_TYPE);
            assert_eq!(token["keyslots"], Value::Array(vec![]));
            let back = open_record(&cipher, &key, &token).unwrap();
            assert_eq!(back.json(), record().embedded_copy().json());
            assert!(back.json().get("binding").is_none());
        }
        // A length that is not a multiple of the block size exercises ciphertext stealing.
        let cipher = TokenCipher::for_volume("aes", "xts-plain64", 32).unwrap();
        for len in [16, 17, 31, 33, 100] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let sealed = cipher.encrypt(&key, &[9; 16], &plain).unwrap();
            assert_eq!(sealed.len(), len);
            assert_ne!(sealed, plain);
            assert_eq!(*cipher.decrypt(&key, &[9; 16], &sealed).unwrap(), plain);
        }
    }

    #[test]
    fn wrong_key_or_garbage_is_a_clear_error() {
        let key: Vec<u8> = (0..32u8).collect();
        let cipher = TokenCipher::for_volume("aes", "xts-plain64", 32).unwrap();
        let token = seal_record(&cipher, &key, &record()).unwrap();
        let other: Vec<u8> = (1..33u8).collect();
        assert!(matches!(
            open_record(&cipher, &other, &token),
            Err(LuksError::BadToken(_))
        ));
        let mut bad = token.clone();
        bad["iv"] = Value::String("AAAA".into());
        assert!(matches!(
            open_record(&cipher, &key, &bad),
            Err(LuksError::BadToken(_))
        ));
        let mut bad = token;
        bad["record"] = Value::String("not base64!".into());
        assert!(matches!(
            open_record(&cipher, &key, &bad),
            Err(LuksError::BadToken(_))
        ));
    }
}
