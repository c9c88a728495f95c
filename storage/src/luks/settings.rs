//! The LUKS parameters a user record asks for, with homed's defaults (homed-spec §3.2).

use libcryptsetup_rs::CryptPbkdfType;
use libcryptsetup_rs::consts::flags::CryptPbkdf;
use libcryptsetup_rs::consts::vals::CryptKdf;
use serde_json::Value;

use super::LuksError;
use homed_shared::record::RecordView;

/// Password-based key derivation for the keyslots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pbkdf {
    /// `argon2id` (default), `argon2i` or `pbkdf2`.
    pub kind: String,
    /// Hash for pbkdf2 (and the AF splitter): default `sha512`.
    pub hash: String,
    /// Target unlock time in microseconds (default 500 ms), benchmarked by libcryptsetup.
    pub time_cost_usec: u64,
    /// Argon2 memory in bytes (default 64 MiB).
    pub memory_cost: u64,
    /// Argon2 threads (default 1).
    pub parallel_threads: u64,
    /// A fixed iteration count with no benchmark (`luksPbkdfForceIterations`, newer homed).
    pub force_iterations: Option<u64>,
}

impl Default for Pbkdf {
    fn default() -> Self {
        Pbkdf {
            kind: "argon2id".into(),
            hash: "sha512".into(),
            time_cost_usec: 500_000,
            memory_cost: 64 * 1024 * 1024,
            parallel_threads: 1,
            force_iterations: None,
        }
    }
}

impl Pbkdf {
    /// The cheapest settings libcryptsetup accepts: PBKDF2 with 1000 iterations and no benchmark,
    /// as homed uses for FIDO2- and PKCS#11-derived passwords. Also what tests use.
    pub fn minimal() -> Self {
        Pbkdf {
            kind: "pbkdf2".into(),
            hash: "sha512".into(),
            time_cost_usec: 1000,
            memory_cost: 0,
            parallel_threads: 0,
            force_iterations: Some(1000),
        }
    }

    pub(super) fn to_crypt(&self) -> Result<CryptPbkdfType, LuksError> {
        let type_ = match self.kind.as_str() {
            "pbkdf2" => CryptKdf::Pbkdf2,
            "argon2i" => CryptKdf::Argon2I,
            "argon2id" => CryptKdf::Argon2Id,
            other => {
                return Err(LuksError::Refused(format!(
                    "luksPbkdfType {other:?} is not one of argon2id, argon2i, pbkdf2"
                )));
            }
        };
        let argon = type_ != CryptKdf::Pbkdf2;
        let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let (time_ms, iterations, flags) = match self.force_iterations {
            Some(n) => (0, clamp(n), CryptPbkdf::NO_BENCHMARK),
            None => (
                clamp(self.time_cost_usec.div_ceil(1000).max(1)),
                0,
                CryptPbkdf::empty(),
            ),
        };
        Ok(CryptPbkdfType {
            type_,
            hash: Some(self.hash.clone()),
            time_ms,
            iterations,
            max_memory_kb: if argon {
                clamp(self.memory_cost / 1024)
            } else {
                0
            },
            parallel_threads: if argon {
                clamp(self.parallel_threads.max(1))
            } else {
                0
            },
            flags,
        })
    }
}

/// Everything about the LUKS container that comes from the user record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuksSettings {
    /// `luksCipher`, default `aes`.
    pub cipher: String,
    /// `luksCipherMode`, default `xts-plain64`.
    pub cipher_mode: String,
    /// `luksVolumeKeySize` in bytes, default 32 (AES-128-XTS).
    pub volume_key_size: usize,
    /// Keyslot PBKDF.
    pub pbkdf: Pbkdf,
    /// `luksSectorSize`, 0 = let libcryptsetup choose.
    pub sector_size: u32,
    /// `luksUuid`, random if unset.
    pub luks_uuid: Option<String>,
    /// `partitionUuid`, random if unset.
    pub partition_uuid: Option<String>,
    /// `fileSystemUuid`, random if unset.
    pub file_system_uuid: Option<String>,
    /// `luksDiscard`.
    pub discard: bool,
}

impl Default for LuksSettings {
    fn default() -> Self {
        LuksSettings {
            cipher: "aes".into(),
            cipher_mode: "xts-plain64".into(),
            volume_key_size: 32,
            pbkdf: Pbkdf::default(),
            sector_size: 0,
            luks_uuid: None,
            partition_uuid: None,
            file_system_uuid: None,
            discard: false,
        }
    }
}

impl LuksSettings {
    /// Reads the `luks*` fields (perMachine and binding applied) of a record.
    pub fn from_view(view: &RecordView<'_>) -> Self {
        let s = |f: &str| view.get(f).and_then(Value::as_str).map(str::to_owned);
        let u = |f: &str| view.get(f).and_then(Value::as_u64);
        let d = LuksSettings::default();
        let dp = Pbkdf::default();
        LuksSettings {
            cipher: s("luksCipher").unwrap_or(d.cipher),
            cipher_mode: s("luksCipherMode").unwrap_or(d.cipher_mode),
            volume_key_size: u("luksVolumeKeySize")
                .and_then(|v| usize::try_from(v).ok())
                .unwrap_or(d.volume_key_size),
            pbkdf: Pbkdf {
                kind: s("luksPbkdfType").unwrap_or(dp.kind),
                hash: s("luksPbkdfHashAlgorithm").unwrap_or(dp.hash),
                time_cost_usec: u("luksPbkdfTimeCostUSec").unwrap_or(dp.time_cost_usec),
                memory_cost: u("luksPbkdfMemoryCost").unwrap_or(dp.memory_cost),
                parallel_threads: u("luksPbkdfParallelThreads").unwrap_or(dp.parallel_threads),
                force_iterations: u("luksPbkdfForceIterations"),
            },
            sector_size: u("luksSectorSize")
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
            luks_uuid: s("luksUuid"),
            partition_uuid: s("partitionUuid"),
            file_system_uuid: s("fileSystemUuid"),
            discard: view
                .get("luksDiscard")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use homed_shared::record::{MachineContext, RecordOrigin, UserRecord};

    #[test]
    fn defaults_and_record_fields() {
        let machine = MachineContext::new("0123456789abcdef0123456789abcdef", None);
        let r = UserRecord::parse(br#"{"userName":"a"}"#, RecordOrigin::Host).unwrap();
        assert_eq!(
            LuksSettings::from_view(&r.view(&machine)),
            LuksSettings::default()
        );
        let r = UserRecord::parse(
            br#"{"userName":"a","luksPbkdfType":"pbkdf2","luksPbkdfTimeCostUSec":1000,
                 "luksVolumeKeySize":64,
                 "binding":{"0123456789abcdef0123456789abcdef":{"luksUuid":"0b3221d1-2b87-45a0-afe8-9b51e0c2399c"}}}"#,
            RecordOrigin::Host,
        )
        .unwrap();
        let s = LuksSettings::from_view(&r.view(&machine));
        assert_eq!(s.pbkdf.kind, "pbkdf2");
        assert_eq!(s.volume_key_size, 64);
        assert_eq!(
            s.luks_uuid.as_deref(),
            Some("0b3221d1-2b87-45a0-afe8-9b51e0c2399c")
        );
        let c = s.pbkdf.to_crypt().unwrap();
        assert_eq!((c.time_ms, c.max_memory_kb), (1, 0));
        let mut bad = s.pbkdf.clone();
        bad.kind = "scrypt".into();
        assert!(bad.to_crypt().is_err());
    }
}
