//! Key files as homed and OpenSSL write them: PKCS#8 PEM for the private key, SPKI PEM for the
//! public one.

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, Verifier as _};
use zeroize::Zeroizing;

/// A key file or key text could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not an Ed25519 private key in PEM PKCS#8 form")]
    BadPrivateKey,
    #[error("not an Ed25519 public key in PEM SubjectPublicKeyInfo form")]
    BadPublicKey,
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

/// The machine's private signing key. Deliberately without `Debug` and `Clone`; the key
/// material is wiped when it is dropped.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A new random key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map(SigningKey)
            .map_err(|_| KeyError::BadPrivateKey)
    }

    /// `-----BEGIN PRIVATE KEY-----` text, in zeroizing memory: PKCS#8 version 1 (the seed
    /// only), the form OpenSSL writes and the only one OpenSSL 3.0 (and so systemd-homed on
    /// Debian 12) reads back.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        let keypair = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        };
        keypair
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| Zeroizing::new(pem.to_string()))
            .map_err(|_| KeyError::BadPrivateKey)
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

/// A public key that may be trusted to sign records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
            .map(PublicKey)
            .map_err(|_| KeyError::BadPublicKey)
    }

    /// The text OpenSSL's `PEM_write_PUBKEY` produces, which homed embeds in signatures.
    pub fn to_pem(&self) -> String {
        self.0.to_public_key_pem(LineEnding::LF).unwrap_or_default()
    }

    /// Pure Ed25519 verification (no prehash, no context), as OpenSSL performs it.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&bytes);
        self.0.verify(message, &signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_key_pem_is_pkcs8_v1_as_openssl_writes() {
        let key = SigningKey::generate().unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        // 48 bytes of DER: 30 2e 02 01 00 (version 1) ... the 32-byte seed, no public key.
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(body.starts_with("MC4CAQAwBQYDK2VwBCIEI"), "{body}");
        assert_eq!(body.len(), 64);
        let back = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.public_key(), key.public_key());
    }
}
