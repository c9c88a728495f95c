//! The file system inside the LUKS volume: ext4, btrfs or xfs, made, checked and mounted with
//! homed's options (homed-spec §3.2).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::mount::MsFlags;

use super::LuksError;

/// A file system homed supports inside a LUKS home.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsType {
    Ext4,
    Btrfs,
    Xfs,
}

impl FsType {
    /// Parses `fileSystemType`.
    pub fn parse(name: &str) -> Option<FsType> {
        match name {
            "ext4" => Some(FsType::Ext4),
            "btrfs" => Some(FsType::Btrfs),
            "xfs" => Some(FsType::Xfs),
            _ => None,
        }
    }

    /// The name as the kernel and the record spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            FsType::Ext4 => "ext4",
            FsType::Btrfs => "btrfs",
            FsType::Xfs => "xfs",
        }
    }

    /// Recognizes the file system on `device` by its superblock magic.
    pub fn probe(device: &Path) -> Result<Option<FsType>, LuksError> {
        let file = File::open(device)
            .map_err(|e| LuksError::io(format!("opening {}", device.display()), e))?;
        let mut buf = [0u8; 8];
        let mut at = |offset: u64, len: usize| -> Option<Vec<u8>> {
            file.read_exact_at(&mut buf[..len], offset).ok()?;
            Some(buf[..len].to_vec())
        };
        if at(1024 + 56, 2).as_deref() == Some(&[0x53, 0xef]) {
            return Ok(Some(FsType::Ext4));
        }
        if at(65536 + 64, 8).as_deref() == Some(b"_BHRfS_M") {
            return Ok(Some(FsType::Btrfs));
        }
        if at(0, 4).as_deref() == Some(b"XFSB") {
            return Ok(Some(FsType::Xfs));
        }
        Ok(None)
    }

    /// homed's default mount options (`$SYSTEMD_HOME_MOUNT_OPTIONS_<FS>` overrides them).
    pub fn mount_options(self) -> String {
        let var = format!(
            "SYSTEMD_HOME_MOUNT_OPTIONS_{}",
            self.as_str().to_uppercase()
        );
        if let Some(v) = homed_shared::env::secure_var(&var) {
            return v;
        }
        match self {
            FsType::Ext4 => "noquota,user_xattr",
            FsType::Btrfs => "compress=zstd:1,noacl,user_subvol_rm_allowed",
            FsType::Xfs => "noquota",
        }
        .to_owned()
    }

    /// Makes the file system: label = user name, the record's UUID when given, plus
    /// `$SYSTEMD_HOME_MKFS_OPTIONS_<FS>`.
    pub fn mkfs(self, device: &Path, label: &str, uuid: Option<&str>) -> Result<(), LuksError> {
        let mut cmd = Command::new(format!("mkfs.{}", self.as_str()));
        match self {
            FsType::Ext4 => {
                cmd.args(["-q", "-F", "-L", label, "-m", "0", "-b", "4096"]);
                cmd.args(["-E", "lazy_itable_init=1,discard", "-T", "default"]);
                if let Some(u) = uuid {
                    cmd.args(["-U", u]);
                }
            }
            FsType::Btrfs => {
                cmd.args(["-q", "-f", "-L", label]);
                if let Some(u) = uuid {
                    cmd.args(["-U", u]);
                }
            }
            FsType::Xfs => {
                // XFS labels hold at most 12 bytes.
                let short: String = label.chars().take(12).collect();
                cmd.args(["-q", "-f", "-L", &short]);
                if let Some(u) = uuid {
                    cmd.args(["-m", &format!("uuid={u}")]);
                }
            }
        }
        let var = format!("SYSTEMD_HOME_MKFS_OPTIONS_{}", self.as_str().to_uppercase());
        if let Some(extra) = homed_shared::env::secure_var(&var) {
            cmd.args(extra.split_whitespace());
        }
        cmd.arg(device);
        run(cmd, &format!("mkfs.{}", self.as_str()), |code| code == 0)
    }

    /// Checks and repairs what can be repaired without asking (homed runs `fsck -aTl`). Only
    /// ext4 has a useful fsck; btrfs and xfs check themselves at mount.
    pub fn fsck(self, device: &Path) -> Result<(), LuksError> {
        if self != FsType::Ext4 {
            return Ok(());
        }
        let mut cmd = Command::new("e2fsck");
        cmd.arg("-p").arg(device);
        // 0: clean, 1: errors corrected, 2: corrected, reboot advised; 4 and up: not repaired.
        run(cmd, "e2fsck", |code| code < 4)
    }
}

fn run(mut cmd: Command, what: &str, ok: impl Fn(i32) -> bool) -> Result<(), LuksError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LuksError::io(format!("running {what}"), e))?;
    match out.status.code() {
        Some(code) if ok(code) => Ok(()),
        _ => Err(LuksError::Refused(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

/// The mount flags for a home: nosuid/nodev/noexec as the record says, plus relatime.
pub fn mount_flags(nosuid: bool, nodev: bool, noexec: bool) -> MsFlags {
    let mut flags = MsFlags::MS_RELATIME;
    if nosuid {
        flags |= MsFlags::MS_NOSUID;
    }
    if nodev {
        flags |= MsFlags::MS_NODEV;
    }
    if noexec {
        flags |= MsFlags::MS_NOEXEC;
    }
    flags
}
