//! A home image file: GPT, loop device over the home partition, LUKS2 container, token.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt};
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::container::{LuksContainer, VolumeKey};
use super::filesystem::FsType;
use super::gpt::{self, HomePartition};
use super::loopdev::LoopDevice;
use super::settings::LuksSettings;
use super::{LuksError, dm_name};
use homed_shared::record::UserRecord;
use homed_shared::signing::TrustedKeys;

/// The shape of a new image.
#[derive(Debug, Clone)]
pub struct ImageLayout {
    /// Total file size in bytes (`diskSize`).
    pub size: u64,
    /// Allocate the blocks now (homed does unless `luksOfflineDiscard`); otherwise sparse.
    pub preallocate: bool,
}

/// The points of a password change, in order. A change interrupted at any of them leaves a home
/// that the old passwords, the new ones, or both open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordChangeStep {
    /// Nothing is written yet.
    BeforeNewKeyslots,
    /// The new passwords have keyslots; the old ones still work.
    AfterNewKeyslots,
    /// The header token holds the new record.
    AfterTokenUpdate,
    /// Before each old keyslot is wiped (the slot number).
    BeforeRemoveKeyslot(u32),
    /// All old keyslots are gone.
    AfterOldKeyslotsRemoved,
}

/// An opened home image: its file, the home partition (absent for a bare LUKS2 image), a loop
/// device over it and the loaded LUKS2 container.
pub struct LuksImage {
    // Field order is drop order: libcryptsetup lets go of the loop device before we close it,
    // and the loop device (autoclear) before the image file.
    container: LuksContainer,
    loop_device: LoopDevice,
    file: File,
    partition: Option<HomePartition>,
    path: PathBuf,
}

impl LuksImage {
    /// Creates a new image at `path` (which must not exist): GPT with the home partition named
    /// `user_name`, LUKS2 formatted per `settings`, one keyslot per password, and the token
    /// holding `record`. On failure the half-made file is removed. Returns the image and its
    /// volume key (needed next for activation and mkfs).
    pub fn create(
        path: &Path,
        user_name: &str,
        settings: &LuksSettings,
        layout: &ImageLayout,
        passwords: &[SecretString],
        record: &UserRecord,
    ) -> Result<(LuksImage, VolumeKey), LuksError> {
        if passwords.is_empty() {
            return Err(LuksError::Refused(
                "a LUKS home needs at least one password".into(),
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| {
                if e.kind() == ErrorKind::AlreadyExists {
                    LuksError::AlreadyExists(path.display().to_string())
                } else {
                    LuksError::io(format!("creating {}", path.display()), e)
                }
            })?;
        let made = Self::build(path, file, user_name, settings, layout, passwords, record);
        if made.is_err() {
            // Ours alone: created with create_new above.
            let _ = std::fs::remove_file(path);
        }
        made
    }

    fn build(
        path: &Path,
        file: File,
        user_name: &str,
        settings: &LuksSettings,
        layout: &ImageLayout,
        passwords: &[SecretString],
        record: &UserRecord,
    ) -> Result<(LuksImage, VolumeKey), LuksError> {
        file.set_len(layout.size)
            .map_err(|e| LuksError::io(format!("sizing {}", path.display()), e))?;
        if layout.preallocate {
            nix::fcntl::posix_fallocate(&file, 0, layout.size as libc::off_t)
                .map_err(|e| LuksError::io(format!("allocating {}", path.display()), e.into()))?;
        }
        let partition =
            gpt::write_home_partition_table(&file, user_name, settings.partition_uuid.as_deref())?;
        let loop_device = LoopDevice::attach(&file, partition.offset, partition.size, false)?;
        let volume_key = VolumeKey::generate(settings.volume_key_size)?;
        let mut container =
            LuksContainer::format(loop_device.path(), settings, user_name, &volume_key)?;
        for password in passwords {
            container.add_password(&volume_key, password, &settings.pbkdf)?;
        }
        container.set_token_record(&volume_key, record)?;
        Ok((
            LuksImage {
                container,
                loop_device,
                file,
                partition: Some(partition),
                path: path.to_owned(),
            },
            volume_key,
        ))
    }

    /// Opens an existing image. With `user_name`, a GPT home partition must carry that name (a
    /// bare LUKS2 image is accepted as homed accepts it). Nothing is written.
    pub fn open(path: &Path, user_name: Option<&str>, read_only: bool) -> Result<Self, LuksError> {
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| LuksError::io(format!("opening {}", path.display()), e))?;
        Self::open_file(file, path, user_name, read_only)
    }

    /// Like [`LuksImage::open`], on a file the caller already opened (and perhaps locked).
    pub fn open_file(
        file: File,
        path: &Path,
        user_name: Option<&str>,
        read_only: bool,
    ) -> Result<Self, LuksError> {
        let meta = file
            .metadata()
            .map_err(|e| LuksError::io(format!("reading {}", path.display()), e))?;
        if !meta.file_type().is_file() {
            return Err(LuksError::BadImage {
                path: path.display().to_string(),
                reason: "it is not a regular file".into(),
            });
        }
        let shown = path.display().to_string();
        let partition = gpt::read_home_partition(&file, &shown)?;
        if let (Some(p), Some(name)) = (&partition, user_name)
            && p.name != name
        {
            return Err(LuksError::BadImage {
                path: shown,
                reason: format!("its home partition is named {:?}, not {name:?}", p.name),
            });
        }
        let (offset, size) = match &partition {
            Some(p) => (p.offset, p.size),
            None => (0, 0),
        };
        let loop_device = LoopDevice::attach(&file, offset, size, read_only)?;
        let container = LuksContainer::load(loop_device.path()).map_err(|e| match e {
            LuksError::BadHeader { reason, .. } => LuksError::BadHeader {
                path: shown.clone(),
                reason,
            },
            other => other,
        })?;
        Ok(LuksImage {
            container,
            loop_device,
            file,
            partition,
            path: path.to_owned(),
        })
    }

    /// The image file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open image file (for flock, the dirty xattr, fallocate).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The home partition, or `None` for a bare LUKS2 image.
    pub fn partition(&self) -> Option<&HomePartition> {
        self.partition.as_ref()
    }

    /// The loop device the container sits on.
    pub fn loop_device(&self) -> &LoopDevice {
        &self.loop_device
    }

    /// The LUKS2 container.
    pub fn container(&mut self) -> &mut LuksContainer {
        &mut self.container
    }

    /// The volume key from the first password that opens a keyslot.
    pub fn unlock(&mut self, passwords: &[SecretString]) -> Result<VolumeKey, LuksError> {
        self.container.volume_key(passwords).map(|(key, _)| key)
    }

    /// The record in the header token, checked against the machine's trusted keys: a record
    /// signed by no trusted key (or not signed) is refused.
    pub fn trusted_record(
        &mut self,
        volume_key: &VolumeKey,
        keys: &TrustedKeys,
    ) -> Result<UserRecord, LuksError> {
        let record = self.container.token_record(volume_key)?;
        let verdict = keys.verdict(&record).map_err(|e| {
            LuksError::BadToken(format!("its record's signature is malformed: {e}"))
        })?;
        if !verdict.is_trusted() {
            return Err(LuksError::UntrustedRecord(format!("{verdict:?}")));
        }
        Ok(record)
    }

    /// Replaces the passwords in one go, from the same steps as the daemon's two-phase change
    /// (AddKeys, RetireKeys): keyslots for `new_passwords` are added first, then the header
    /// token gets `record`, then the keyslots that existed before are wiped. `checkpoint` runs
    /// at each [`PasswordChangeStep`]; an error from it stops the change right there (tests use
    /// it to simulate a crash).
    pub fn change_passwords(
        &mut self,
        volume_key: &VolumeKey,
        new_passwords: &[SecretString],
        settings: &LuksSettings,
        record: &UserRecord,
        mut checkpoint: impl FnMut(PasswordChangeStep) -> Result<(), LuksError>,
    ) -> Result<(), LuksError> {
        if new_passwords.is_empty() {
            return Err(LuksError::Refused(
                "a LUKS home needs at least one password".into(),
            ));
        }
        self.container.verify_volume_key(volume_key)?;
        let old_slots = self.container.active_keyslots()?;
        checkpoint(PasswordChangeStep::BeforeNewKeyslots)?;
        let new_slots = self
            .container
            .add_passwords(volume_key, new_passwords, &settings.pbkdf)?;
        checkpoint(PasswordChangeStep::AfterNewKeyslots)?;
        self.container.set_token_record(volume_key, record)?;
        checkpoint(PasswordChangeStep::AfterTokenUpdate)?;
        self.container
            .retire_keyslots(&old_slots, &new_slots, |slot| {
                checkpoint(PasswordChangeStep::BeforeRemoveKeyslot(slot))
            })?;
        checkpoint(PasswordChangeStep::AfterOldKeyslotsRemoved)
    }

    /// Activates the volume as `/dev/mapper/home-<user>`.
    pub fn activate(
        &mut self,
        user_name: &str,
        volume_key: &VolumeKey,
        discard: bool,
    ) -> Result<PathBuf, LuksError> {
        let name = dm_name(user_name);
        self.container.activate(&name, volume_key, discard)?;
        Ok(PathBuf::from(format!("/dev/mapper/{name}")))
    }
}

/// What a home image says about itself without being activated (homework's "inspect", which
/// homed runs to fixate a home it found in `/home`): the record in the header token and the
/// values homed keeps in the binding section.
pub struct Inspection {
    /// The record from the `systemd-homed` token (checked against the trusted keys when some
    /// were given).
    pub record: UserRecord,
    /// The home partition's UUID (`None` for a bare LUKS2 image).
    pub partition_uuid: Option<String>,
    /// The LUKS2 UUID.
    pub luks_uuid: String,
    /// `luksCipher`, `luksCipherMode` and `luksVolumeKeySize` as the volume has them.
    pub cipher: String,
    pub cipher_mode: String,
    pub volume_key_size: usize,
    /// The file system inside and its UUID, when its superblock could be read.
    pub file_system: Option<(FsType, String)>,
}

impl Inspection {
    /// The binding fields these values give (homed-spec §1.5): `storage`, `partitionUuid`,
    /// `luksUuid`, `luksCipher`, `luksCipherMode`, `luksVolumeKeySize`, and `fileSystemType`
    /// with `fileSystemUuid` when the file system was recognized.
    pub fn binding_fields(&self) -> Map<String, Value> {
        let mut b = Map::new();
        b.insert("storage".into(), Value::from("luks"));
        if let Some(uuid) = &self.partition_uuid {
            b.insert("partitionUuid".into(), Value::from(uuid.as_str()));
        }
        b.insert("luksUuid".into(), Value::from(self.luks_uuid.as_str()));
        b.insert("luksCipher".into(), Value::from(self.cipher.as_str()));
        b.insert(
            "luksCipherMode".into(),
            Value::from(self.cipher_mode.as_str()),
        );
        b.insert(
            "luksVolumeKeySize".into(),
            Value::from(self.volume_key_size),
        );
        if let Some((fs, uuid)) = &self.file_system {
            b.insert("fileSystemType".into(), Value::from(fs.as_str()));
            b.insert("fileSystemUuid".into(), Value::from(uuid.as_str()));
        }
        b
    }
}

/// How much of the volume's start holds the superblocks of ext4 (1 KiB in), xfs (at 0) and
/// btrfs (64 KiB in).
const SUPERBLOCK_SPAN: usize = 0x11000;

impl LuksImage {
    /// Reads what fixating a found home needs, without device-mapper and without writing: the
    /// volume key from `passwords`, the header token's record (which must be signed by one of
    /// `keys` when given, and whose user must be the one the home partition is named after),
    /// and the identity of the volume and of the file system inside.
    pub fn inspect(
        &mut self,
        passwords: &[SecretString],
        keys: Option<&TrustedKeys>,
    ) -> Result<Inspection, LuksError> {
        let volume_key = self.unlock(passwords)?;
        let record = match keys {
            Some(keys) => self.trusted_record(&volume_key, keys)?,
            None => self.container.token_record(&volume_key)?,
        };
        let owner = match record.realm() {
            Some(realm) => format!("{}@{realm}", record.user_name()),
            None => record.user_name().to_owned(),
        };
        if let Some(p) = &self.partition
            && p.name != owner
        {
            return Err(LuksError::RecordMismatch(format!(
                "the header record is for {owner}, the home partition is named {:?}",
                p.name
            )));
        }
        let (cipher, cipher_mode, volume_key_size) = self.container.cipher()?;
        let luks_uuid = self.container.uuid()?;
        let file_system = self.file_system_identity(&volume_key)?;
        Ok(Inspection {
            record,
            partition_uuid: self.partition.as_ref().map(|p| p.uuid.clone()),
            luks_uuid,
            cipher,
            cipher_mode,
            volume_key_size,
            file_system,
        })
    }

    /// The file system inside the volume and its UUID, read by decrypting the first sectors of
    /// the data segment with `volume_key` (no device-mapper needed). `None` when the cipher is
    /// not AES-XTS with plain64 IVs or no ext4, xfs or btrfs superblock is found.
    pub fn file_system_identity(
        &mut self,
        volume_key: &VolumeKey,
    ) -> Result<Option<(FsType, String)>, LuksError> {
        let metadata = self.container.metadata()?;
        let Some(segment) = metadata.pointer("/segments/0") else {
            return Ok(None);
        };
        let number = |field: &str| match segment.get(field) {
            Some(Value::String(s)) => s.parse::<u64>().ok(),
            Some(v) => v.as_u64(),
            None => None,
        };
        let (Some(offset), Some(sector_size)) = (number("offset"), number("sector_size")) else {
            return Ok(None);
        };
        let iv_tweak = number("iv_tweak").unwrap_or(0);
        let key = volume_key.as_bytes();
        if segment.get("encryption").and_then(Value::as_str) != Some("aes-xts-plain64")
            || !matches!(key.len(), 32 | 64)
            || !matches!(sector_size, 512 | 1024 | 2048 | 4096)
        {
            return Ok(None);
        }
        let start = self.partition.as_ref().map_or(0, |p| p.offset) + offset;
        let mut raw = Zeroizing::new(vec![0u8; SUPERBLOCK_SPAN]);
        if let Err(e) = self.file.read_exact_at(&mut raw, start) {
            if e.kind() == ErrorKind::UnexpectedEof {
                return Ok(None);
            }
            return Err(LuksError::io(format!("reading {}", self.path.display()), e));
        }
        // LUKS2 counts IVs in units of the sector size; plain 512-byte units are tried too, for
        // volumes activated without `iv_large_sectors`.
        let mut units = vec![1u64];
        if sector_size > 512 {
            units.push(sector_size / 512);
        }
        for step in units {
            let mut plain = Zeroizing::new(raw.to_vec());
            decrypt_xts_plain64(key, &mut plain, sector_size as usize, iv_tweak, step);
            if let Some(found) = probe_superblock(&plain) {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// Decrypts `buf` in place as consecutive sectors of `sector_size` bytes with AES-XTS, the
/// tweak of sector `i` being `iv_tweak + i * step` (plain64: little-endian).
fn decrypt_xts_plain64(key: &[u8], buf: &mut [u8], sector_size: usize, iv_tweak: u64, step: u64) {
    let (k1, k2) = key.split_at(key.len() / 2);
    if key.len() == 32 {
        decrypt_sectors::<aes::Aes128>(k1, k2, buf, sector_size, iv_tweak, step);
    } else {
        decrypt_sectors::<aes::Aes256>(k1, k2, buf, sector_size, iv_tweak, step);
    }
}

fn decrypt_sectors<C>(
    k1: &[u8],
    k2: &[u8],
    buf: &mut [u8],
    sector_size: usize,
    iv_tweak: u64,
    step: u64,
) where
    C: aes::cipher::KeyInit
        + aes::cipher::BlockCipherEncrypt
        + aes::cipher::BlockCipherDecrypt
        + aes::cipher::BlockSizeUser<BlockSize = aes::cipher::consts::U16>,
{
    let (Ok(c1), Ok(c2)) = (C::new_from_slice(k1), C::new_from_slice(k2)) else {
        return;
    };
    let xts = xts_mode::Xts128::new(c1, c2);
    for (i, sector) in buf.chunks_exact_mut(sector_size).enumerate() {
        let tweak = xts_mode::get_tweak_default(u128::from(iv_tweak + i as u64 * step));
        xts.decrypt_sector(sector, tweak);
    }
}

/// Recognizes an ext4, xfs or btrfs superblock at the start of a volume and reads its UUID.
fn probe_superblock(volume: &[u8]) -> Option<(FsType, String)> {
    let uuid = |at: usize| -> Option<String> {
        let b: [u8; 16] = volume.get(at..at + 16)?.try_into().ok()?;
        Some(uuid::Uuid::from_bytes(b).hyphenated().to_string())
    };
    if volume.get(1024 + 0x38..1024 + 0x3a) == Some(&[0x53, 0xef][..]) {
        return Some((FsType::Ext4, uuid(1024 + 0x68)?));
    }
    if volume.get(..4) == Some(&b"XFSB"[..]) {
        return Some((FsType::Xfs, uuid(32)?));
    }
    if volume.get(0x10040..0x10048) == Some(&b"_BHRfS_M"[..]) {
        return Some((FsType::Btrfs, uuid(0x10020)?));
    }
    None
}
