//! A home image file: GPT, loop device over the home partition, LUKS2 container, token.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::container::{LuksContainer, VolumeKey};
use super::gpt::{self, HomePartition};
use super::loopdev::LoopDevice;
use super::settings::LuksSettings;
use super::{LuksError, dm_name};
use crate::record::UserRecord;
use crate::signing::TrustedKeys;

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

    /// Replaces the passwords: keyslots for `new_passwords` are added first, then the header
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
        for password in new_passwords {
            self.container
                .add_password(volume_key, password, &settings.pbkdf)?;
        }
        checkpoint(PasswordChangeStep::AfterNewKeyslots)?;
        self.container.set_token_record(volume_key, record)?;
        checkpoint(PasswordChangeStep::AfterTokenUpdate)?;
        for slot in old_slots {
            checkpoint(PasswordChangeStep::BeforeRemoveKeyslot(slot))?;
            self.container.remove_keyslot(slot)?;
        }
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
