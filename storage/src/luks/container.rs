//! One LUKS2 container (on a loop device or a block device): format, keyslots, the
//! `systemd-homed` token, and the device-mapper operations homed performs on it.

use std::io;
use std::path::{Path, PathBuf};

use libcryptsetup_rs::consts::flags::{CryptActivate, CryptDeactivate, CryptVolumeKey};
use libcryptsetup_rs::consts::vals::{EncryptionFormat, KeyslotInfo, KeyslotsSize, MetadataSize};
use libcryptsetup_rs::{
    CryptDevice, CryptInit, CryptParamsLuks2, CryptParamsLuks2Ref, CryptTokenInfo, Either,
    LibcryptErr, TokenInput,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use zeroize::Zeroizing;

use super::settings::{LuksSettings, Pbkdf};
use super::sys::{self, RawDevice};
use super::token::{self, TOKEN_TYPE, TokenCipher};
use super::{LuksError, METADATA_SIZE, SUBSYSTEM};
use homed_shared::record::UserRecord;

/// LUKS2 has at most 32 tokens.
const MAX_TOKENS: u32 = 32;

/// A LUKS volume key, wiped from memory when dropped. Deliberately without `Debug`.
pub struct VolumeKey(Zeroizing<Vec<u8>>);

impl VolumeKey {
    /// A fresh random key of `len` bytes (homed generates it itself, to encrypt the token).
    pub fn generate(len: usize) -> Result<Self, LuksError> {
        let mut key = Zeroizing::new(vec![0u8; len]);
        getrandom::fill(&mut key).map_err(LuksError::random)?;
        Ok(VolumeKey(key))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Turns a libcryptsetup error into ours, with the message libcryptsetup logged.
fn crypt_error(what: &str, err: LibcryptErr) -> LuksError {
    let message = sys::take_last_error();
    let source = match err {
        LibcryptErr::IOError(e) => e,
        other => io::Error::other(other.to_string()),
    };
    let message = if message.is_empty() {
        source.to_string()
    } else {
        message
    };
    LuksError::Cryptsetup {
        what: what.to_owned(),
        message,
        source,
    }
}

/// Whether an activation error means the kernel has no device-mapper or dm-crypt.
fn is_missing_dm(err: &LibcryptErr) -> bool {
    matches!(err, LibcryptErr::IOError(e)
        if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENODEV)))
}

/// A LUKS2 container opened with libcryptsetup. Not `Send`: libcryptsetup is not thread-safe.
pub struct LuksContainer {
    device: CryptDevice,
    raw: RawDevice,
    path: PathBuf,
}

impl LuksContainer {
    fn init(path: &Path) -> Result<Self, LuksError> {
        sys::install_log_hook();
        sys::clear_last_error();
        let (device, raw) = RawDevice::init(path).map_err(|e| LuksError::Cryptsetup {
            what: format!("opening {} with libcryptsetup", path.display()),
            message: sys::take_last_error(),
            source: e,
        })?;
        Ok(LuksContainer {
            device,
            raw,
            path: path.to_owned(),
        })
    }

    /// Formats `path` as LUKS2 the way homed does: label = `label` (the user name), subsystem
    /// `systemd-home`, 4 MiB of metadata, the cipher, sector size and UUID from `settings`, and
    /// `volume_key` as the volume key. No keyslot is added yet.
    pub fn format(
        path: &Path,
        settings: &LuksSettings,
        label: &str,
        volume_key: &VolumeKey,
    ) -> Result<Self, LuksError> {
        TokenCipher::for_volume(
            &settings.cipher,
            &settings.cipher_mode,
            volume_key.as_bytes().len(),
        )?;
        let uuid = match &settings.luks_uuid {
            Some(text) => Some(uuid::Uuid::parse_str(text).map_err(|_| {
                LuksError::RecordMismatch(format!("luksUuid {text:?} is not a UUID"))
            })?),
            None => None,
        };
        let mut this = Self::init(path)?;
        let pbkdf = settings.pbkdf.to_crypt()?;
        let metadata = MetadataSize::try_from(METADATA_SIZE)
            .map_err(|e| crypt_error("choosing the LUKS2 metadata size", e))?;
        let keyslots = KeyslotsSize::try_from(0)
            .map_err(|e| crypt_error("choosing the LUKS2 keyslots size", e))?;
        this.device
            .settings_handle()
            .set_metadata_size(metadata, keyslots)
            .map_err(|e| crypt_error("setting the LUKS2 metadata size", e))?;
        let params = CryptParamsLuks2 {
            pbkdf: Some(pbkdf),
            integrity: None,
            integrity_params: None,
            data_alignment: 0,
            data_device: None,
            sector_size: settings.sector_size,
            label: Some(label.to_owned()),
            subsystem: Some(SUBSYSTEM.to_owned()),
        };
        let mut params_ref: CryptParamsLuks2Ref<'_> = (&params)
            .try_into()
            .map_err(|e| crypt_error("preparing the LUKS2 parameters", e))?;
        this.device
            .context_handle()
            .format(
                EncryptionFormat::Luks2,
                (&settings.cipher, &settings.cipher_mode),
                uuid,
                Either::Left(volume_key.as_bytes()),
                Some(&mut params_ref),
            )
            .map_err(|e| crypt_error(&format!("formatting {} as LUKS2", path.display()), e))?;
        Ok(this)
    }

    /// Loads the LUKS2 header on `path`.
    pub fn load(path: &Path) -> Result<Self, LuksError> {
        let mut this = Self::init(path)?;
        this.device
            .context_handle()
            .load::<()>(Some(EncryptionFormat::Luks2), None)
            .map_err(|e| {
                let detail = sys::take_last_error();
                let reason = match &e {
                    _ if !detail.is_empty() => detail,
                    LibcryptErr::IOError(io) if io.raw_os_error() == Some(libc::EINVAL) => {
                        "there is no valid LUKS2 header (both copies are missing or damaged)"
                            .to_owned()
                    }
                    other => other.to_string(),
                };
                LuksError::BadHeader {
                    path: path.display().to_string(),
                    reason,
                }
            })?;
        Ok(this)
    }

    /// The container behind the active device-mapper device `name` (for lock and unlock).
    pub fn active(name: &str) -> Result<Self, LuksError> {
        sys::install_log_hook();
        sys::clear_last_error();
        let (device, raw) = RawDevice::init_by_name(name).map_err(|e| LuksError::Cryptsetup {
            what: format!("finding the active device {name}"),
            message: sys::take_last_error(),
            source: e,
        })?;
        Ok(LuksContainer {
            device,
            raw,
            path: PathBuf::from(format!("/dev/mapper/{name}")),
        })
    }

    /// The device this container lives on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cipher (`aes`), mode (`xts-plain64`) and volume key size of the volume.
    pub fn cipher(&mut self) -> Result<(String, String, usize), LuksError> {
        let mut status = self.device.status_handle();
        let cipher = status
            .get_cipher()
            .map_err(|e| crypt_error("reading the LUKS2 cipher", e))?;
        let mode = status
            .get_cipher_mode()
            .map_err(|e| crypt_error("reading the LUKS2 cipher mode", e))?;
        let size = usize::try_from(status.get_volume_key_size()).unwrap_or(0);
        Ok((cipher, mode, size))
    }

    /// The LUKS UUID.
    pub fn uuid(&mut self) -> Result<String, LuksError> {
        self.device
            .status_handle()
            .get_uuid()
            .map(|u| u.to_string())
            .map_err(|e| crypt_error("reading the LUKS2 UUID", e))
    }

    /// The LUKS2 metadata as JSON (`crypt_dump_json`): label, subsystem, keyslots, tokens…
    pub fn metadata(&mut self) -> Result<Value, LuksError> {
        self.device
            .status_handle()
            .dump_json()
            .map_err(|e| crypt_error("reading the LUKS2 metadata", e))
    }

    /// Checks the volume against what the record says (homed's `EMEDIUMTYPE` checks).
    pub fn check_settings(&mut self, settings: &LuksSettings) -> Result<(), LuksError> {
        if let Some(want) = &settings.luks_uuid {
            let have = self.uuid()?;
            if !have.eq_ignore_ascii_case(want) {
                return Err(LuksError::RecordMismatch(format!(
                    "the LUKS UUID is {have}, the record says {want}"
                )));
            }
        }
        let (cipher, mode, size) = self.cipher()?;
        if cipher != settings.cipher || mode != settings.cipher_mode {
            return Err(LuksError::RecordMismatch(format!(
                "the volume uses {cipher}-{mode}, the record says {}-{}",
                settings.cipher, settings.cipher_mode
            )));
        }
        if size != settings.volume_key_size {
            return Err(LuksError::RecordMismatch(format!(
                "the volume key has {size} bytes, the record says {}",
                settings.volume_key_size
            )));
        }
        Ok(())
    }

    /// The volume key, from the first password that opens a keyslot, and that keyslot.
    /// Needs no device-mapper. Wrong passwords give [`LuksError::BadPassword`].
    pub fn volume_key(
        &mut self,
        passwords: &[SecretString],
    ) -> Result<(VolumeKey, u32), LuksError> {
        let (_, _, size) = self.cipher()?;
        for password in passwords {
            let mut key = Zeroizing::new(vec![0u8; size.max(1)]);
            sys::clear_last_error();
            match self.device.volume_key_handle().get(
                None,
                &mut key,
                Some(password.expose_secret().as_bytes()),
            ) {
                Ok((slot, len)) => {
                    key.truncate(len);
                    return Ok((VolumeKey(key), u32::try_from(slot).unwrap_or(0)));
                }
                Err(LibcryptErr::IOError(e))
                    if matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOENT)) => {}
                Err(e) => return Err(crypt_error("deriving the volume key", e)),
            }
        }
        Err(LuksError::BadPassword)
    }

    /// Checks that `key` is this volume's key.
    pub fn verify_volume_key(&mut self, key: &VolumeKey) -> Result<(), LuksError> {
        self.device
            .volume_key_handle()
            .verify(key.as_bytes())
            .map_err(|_| LuksError::BadPassword)
    }

    /// The keyslots in use.
    pub fn active_keyslots(&mut self) -> Result<Vec<u32>, LuksError> {
        let max = libcryptsetup_rs::CryptKeyslotHandle::max_keyslots(EncryptionFormat::Luks2)
            .map_err(|e| crypt_error("reading the number of LUKS2 keyslots", e))?;
        let mut slots = Vec::new();
        for slot in 0..max {
            let info = self.device.keyslot_handle().status(slot);
            if matches!(info, Ok(KeyslotInfo::Active | KeyslotInfo::ActiveLast)) {
                slots.push(slot);
            }
        }
        Ok(slots)
    }

    /// Adds a keyslot for `password`, bound to `volume_key`, with `pbkdf`. Returns the slot.
    pub fn add_password(
        &mut self,
        volume_key: &VolumeKey,
        password: &SecretString,
        pbkdf: &Pbkdf,
    ) -> Result<u32, LuksError> {
        let pbkdf = pbkdf.to_crypt()?;
        self.device
            .settings_handle()
            .set_pbkdf_type(&pbkdf)
            .map_err(|e| crypt_error("setting the keyslot PBKDF", e))?;
        sys::clear_last_error();
        self.device
            .keyslot_handle()
            .add_by_key(
                None,
                Some(Either::Left(volume_key.as_bytes())),
                password.expose_secret().as_bytes(),
                CryptVolumeKey::empty(),
            )
            .map_err(|e| crypt_error("adding a LUKS2 keyslot", e))
    }

    /// Adds one keyslot per password, bound to `volume_key`. On an error the keyslots added so
    /// far are wiped again: a change that did not happen leaves no keyslot behind. Returns the
    /// new slots. The first step of every password change.
    pub fn add_passwords(
        &mut self,
        volume_key: &VolumeKey,
        passwords: &[SecretString],
        pbkdf: &Pbkdf,
    ) -> Result<Vec<u32>, LuksError> {
        let mut added = Vec::new();
        for password in passwords {
            match self.add_password(volume_key, password, pbkdf) {
                Ok(slot) => added.push(slot),
                Err(e) => {
                    for slot in added {
                        let _ = self.remove_keyslot(slot);
                    }
                    return Err(e);
                }
            }
        }
        Ok(added)
    }

    /// Wipes the keyslots of `retire` that are still there, once every keyslot of `keep` is
    /// found active (never leave a header that nothing opens). `before_each` runs before each
    /// wipe; an error from it stops there. The last step of every password change.
    pub fn retire_keyslots(
        &mut self,
        retire: &[u32],
        keep: &[u32],
        mut before_each: impl FnMut(u32) -> Result<(), LuksError>,
    ) -> Result<(), LuksError> {
        if keep.is_empty() || keep.iter().any(|s| retire.contains(s)) {
            return Err(LuksError::Refused(
                "the keyslots to remove and to keep overlap".into(),
            ));
        }
        let active = self.active_keyslots()?;
        if let Some(missing) = keep.iter().find(|s| !active.contains(s)) {
            return Err(LuksError::Refused(format!(
                "keyslot {missing} of the new password is gone"
            )));
        }
        for slot in retire.iter().filter(|s| active.contains(s)) {
            before_each(*slot)?;
            self.remove_keyslot(*slot)?;
        }
        Ok(())
    }

    /// Wipes one keyslot.
    pub fn remove_keyslot(&mut self, slot: u32) -> Result<(), LuksError> {
        sys::clear_last_error();
        self.device
            .keyslot_handle()
            .destroy(slot)
            .map_err(|e| crypt_error(&format!("removing LUKS2 keyslot {slot}"), e))
    }

    /// The numbers and JSON of all `systemd-homed` tokens.
    fn homed_tokens(&mut self) -> Result<Vec<(u32, Value)>, LuksError> {
        let mut found = Vec::new();
        for n in 0..MAX_TOKENS {
            let info = match self.device.token_handle().status(n) {
                Ok(info) => info,
                Err(_) => continue,
            };
            let is_homed = matches!(&info,
                CryptTokenInfo::External(t) | CryptTokenInfo::ExternalUnknown(t) if t == TOKEN_TYPE);
            if !is_homed {
                continue;
            }
            let json = self
                .device
                .token_handle()
                .json_get(n)
                .map_err(|e| crypt_error(&format!("reading LUKS2 token {n}"), e))?;
            found.push((n, json));
        }
        Ok(found)
    }

    /// The record in the first `systemd-homed` token that decrypts with `volume_key`.
    pub fn token_record(&mut self, volume_key: &VolumeKey) -> Result<UserRecord, LuksError> {
        let (cipher, mode, _) = self.cipher()?;
        let token_cipher = TokenCipher::for_volume(&cipher, &mode, volume_key.as_bytes().len())?;
        let mut first_error = None;
        for (_, json) in self.homed_tokens()? {
            match token::open_record(&token_cipher, volume_key.as_bytes(), &json) {
                Ok(record) => return Ok(record),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(LuksError::NoToken))
    }

    /// Stores `record` (its embedded copy) in the `systemd-homed` token: the first such token is
    /// replaced, duplicates are removed, and a token is added when there is none.
    pub fn set_token_record(
        &mut self,
        volume_key: &VolumeKey,
        record: &UserRecord,
    ) -> Result<(), LuksError> {
        let (cipher, mode, _) = self.cipher()?;
        let token_cipher = TokenCipher::for_volume(&cipher, &mode, volume_key.as_bytes().len())?;
        let json = token::seal_record(&token_cipher, volume_key.as_bytes(), record)?;
        let existing = self.homed_tokens()?;
        sys::clear_last_error();
        let mut tokens = existing.into_iter().map(|(n, _)| n);
        let input = match tokens.next() {
            Some(first) => TokenInput::ReplaceToken(first, &json),
            None => TokenInput::AddToken(&json),
        };
        self.device
            .token_handle()
            .json_set(input)
            .map_err(|e| crypt_error("writing the systemd-homed token", e))?;
        for duplicate in tokens {
            self.device
                .token_handle()
                .json_set(TokenInput::RemoveToken(duplicate))
                .map_err(|e| crypt_error("removing a duplicate systemd-homed token", e))?;
        }
        Ok(())
    }

    /// `crypt_activate_by_volume_key(name)`: `/dev/mapper/<name>`.
    pub fn activate(
        &mut self,
        name: &str,
        volume_key: &VolumeKey,
        discard: bool,
    ) -> Result<(), LuksError> {
        let flags = if discard {
            CryptActivate::ALLOW_DISCARDS
        } else {
            CryptActivate::empty()
        };
        sys::clear_last_error();
        self.device
            .activate_handle()
            .activate_by_volume_key(Some(name), Some(volume_key.as_bytes()), flags)
            .map_err(|e| {
                if is_missing_dm(&e) {
                    LuksError::NoDeviceMapper(format!("activating {name}"))
                } else {
                    crypt_error(&format!("activating {name}"), e)
                }
            })
    }

    /// `crypt_suspend(name)`: dm-crypt drops the key and I/O blocks.
    pub fn suspend(&mut self, name: &str) -> Result<(), LuksError> {
        sys::clear_last_error();
        self.device
            .context_handle()
            .suspend(name)
            .map_err(|e| crypt_error(&format!("suspending {name}"), e))
    }

    /// `crypt_resume_by_volume_key(name)`.
    pub fn resume(&mut self, name: &str, volume_key: &VolumeKey) -> Result<(), LuksError> {
        sys::clear_last_error();
        self.raw
            .resume_by_volume_key(name, volume_key.as_bytes())
            .map_err(|e| LuksError::Cryptsetup {
                what: format!("resuming {name}"),
                message: sys::take_last_error(),
                source: e,
            })
    }

    /// `crypt_deactivate(name)`, optionally deferred until the last user closes the device.
    pub fn deactivate(&mut self, name: &str, deferred: bool) -> Result<(), LuksError> {
        let flags = if deferred {
            CryptDeactivate::DEFERRED
        } else {
            CryptDeactivate::empty()
        };
        sys::clear_last_error();
        self.device
            .activate_handle()
            .deactivate(name, flags)
            .map_err(|e| crypt_error(&format!("deactivating {name}"), e))
    }

    /// Deactivates the active device `name` without knowing its backing device.
    pub fn deactivate_by_name(name: &str) -> Result<(), LuksError> {
        sys::install_log_hook();
        sys::clear_last_error();
        let mut device = CryptInit::init_by_name_and_header(name, None)
            .map_err(|e| crypt_error(&format!("finding the active device {name}"), e))?;
        device
            .activate_handle()
            .deactivate(name, CryptDeactivate::empty())
            .map_err(|e| crypt_error(&format!("deactivating {name}"), e))
    }
}
