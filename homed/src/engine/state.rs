//! A home's state (homed-spec §4.6), derived in one place, and what ListHomes and the served
//! record show of it.

use homed_shared::UserRecord;
use homed_shared::record::HOMED_SERVICE;
use homed_storage::is_mount_point;
use serde_json::{Value, json};

use crate::engine::{Caller, Engine, Home, lock};
use crate::worker::backend::{DISK_SIZE_MAX, DISK_SIZE_MIN};

/// A home's state, as homed names it on the bus and in `homectl list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeState {
    /// The storage is there and not mounted.
    Inactive,
    Active,
    /// Active with no reference left, its deactivation waiting for the home to be free.
    Lingering,
    /// Active with its volume suspended (its key out of memory).
    Locked,
    /// The storage is missing (an unplugged disk, a removed image).
    Absent,
    /// Found in the home root without a host record.
    Unfixated,
    /// An operation is running on the home.
    Busy(Operation),
}

/// An operation that shows in the state while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Activating,
    Deactivating,
    Locking,
    Unlocking,
    Fixating,
    Removing,
    Passwd,
    PasswdWhileActive,
}

impl HomeState {
    pub fn as_str(self) -> &'static str {
        match self {
            HomeState::Inactive => "inactive",
            HomeState::Active => "active",
            HomeState::Lingering => "lingering",
            HomeState::Locked => "locked",
            HomeState::Absent => "absent",
            HomeState::Unfixated => "unfixated",
            HomeState::Busy(op) => match op {
                Operation::Activating => "activating",
                Operation::Deactivating => "deactivating",
                Operation::Locking => "locking",
                Operation::Unlocking => "unlocking",
                Operation::Fixating => "fixating",
                Operation::Removing => "removing",
                Operation::Passwd => "passwd",
                Operation::PasswdWhileActive => "passwd-while-active",
            },
        }
    }
}

impl PartialEq<&str> for HomeState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for HomeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of ListHomes.
#[derive(Debug, Clone)]
pub struct HomeSummary {
    pub name: String,
    pub uid: u32,
    pub state: HomeState,
    pub gid: u32,
    pub real_name: String,
    pub home_directory: String,
    pub shell: String,
}

/// The name of the file system `path` is on, as homed reports it.
fn file_system_type(path: &str) -> Option<&'static str> {
    use nix::sys::statfs::{
        BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC, statfs,
    };
    let t = statfs(path).ok()?.filesystem_type();
    Some(match t {
        t if t == EXT4_SUPER_MAGIC => "ext4",
        t if t == BTRFS_SUPER_MAGIC => "btrfs",
        t if t == XFS_SUPER_MAGIC => "xfs",
        t if t == TMPFS_MAGIC => "tmpfs",
        _ => return None,
    })
}

impl Engine {
    pub(crate) fn is_active(&self, home: &Home) -> bool {
        let record = self.record(home);
        is_mount_point(&self.home_directory(&record))
    }

    /// The state (homed-spec §4.6): a running operation first, then what the record, the
    /// suspension and the mount table say.
    pub fn state(&self, home: &Home) -> HomeState {
        let (record, transient, lingering, unfixated, locked) = {
            let d = lock(&home.data);
            (
                d.record.clone(),
                d.transient,
                d.lingering,
                d.unfixated,
                d.locked,
            )
        };
        if let Some(op) = transient {
            return HomeState::Busy(op);
        }
        if unfixated {
            return HomeState::Unfixated;
        }
        if locked {
            return HomeState::Locked;
        }
        let mounted = is_mount_point(&self.home_directory(&record));
        if !self.storage_present(&record, mounted) {
            return HomeState::Absent;
        }
        if mounted {
            return if lingering {
                HomeState::Lingering
            } else {
                HomeState::Active
            };
        }
        HomeState::Inactive
    }

    /// Whether the storage of `record` is there (see [`crate::worker::backend::StorageType::present`]); `mounted`:
    /// the home is active.
    pub(crate) fn storage_present(&self, record: &UserRecord, mounted: bool) -> bool {
        let image_path = self.image_path(record);
        match self.storage_type(record) {
            Ok(kind) => kind.present(&record.view(&self.machine), &image_path, mounted),
            Err(_) => mounted || std::fs::symlink_metadata(image_path).is_ok(),
        }
    }

    pub fn summary(&self, home: &Home) -> HomeSummary {
        let record = self.record(home);
        let view = record.view(&self.machine);
        HomeSummary {
            name: home.name.clone(),
            uid: view.uid().unwrap_or(u32::MAX),
            state: self.state(home),
            gid: view.gid().unwrap_or(u32::MAX),
            real_name: view.gecos(),
            home_directory: self.home_directory(&record),
            shell: view.shell(),
        }
    }

    pub fn list(&self) -> Vec<HomeSummary> {
        self.homes().iter().map(|h| self.summary(h)).collect()
    }

    /// The record as served to a client: binding, the live status, and the privileged section
    /// only for root and the owner. Returns the record and whether it is incomplete.
    pub fn served_record(&self, home: &Home, caller: Caller) -> (UserRecord, bool) {
        let (mut record, signed_locally) = {
            let d = lock(&home.data);
            (d.record.clone(), d.signed_locally)
        };
        let mut status = self.status_of(&record);
        status.insert("state".into(), Value::from(self.state(home).as_str()));
        status.insert("service".into(), Value::String(HOMED_SERVICE.into()));
        status.insert("signedLocally".into(), Value::Bool(signed_locally));
        if let Ok(kind) = self.storage_type(&record) {
            let figures = kind.disk_figures(
                &self.paths.home_root,
                &self.image_path(&record),
                record.view(&self.machine).uid(),
            );
            let mut put = |key: &str, value: Option<u64>| {
                if let Some(v) = value {
                    status.insert(key.into(), json!(v));
                }
            };
            put("diskSize", figures.size);
            put("diskUsage", figures.usage);
            put("diskFree", figures.free);
            put(
                "diskCeiling",
                Some(
                    figures
                        .ceiling
                        .map_or(DISK_SIZE_MAX, |c| c.min(DISK_SIZE_MAX)),
                ),
            );
            // As homed: never below what is in use.
            put(
                "diskFloor",
                Some(
                    figures
                        .usage
                        .map_or(DISK_SIZE_MIN, |u| u.max(DISK_SIZE_MIN)),
                ),
            );
        }
        if let Some(fs) = file_system_type(&self.paths.home_root) {
            status.insert("fileSystemType".into(), json!(fs));
        }
        record.set_status(&self.machine.machine_id, status);
        if self.trusted_caller(home, caller) {
            (record, false)
        } else {
            record.without_privileged()
        }
    }

    pub(crate) fn set_transient(&self, home: &Home, state: Option<Operation>) {
        lock(&home.data).transient = state;
    }

    /// AutoLogin: homes with `autoLogin` whose storage is present.
    pub fn auto_login(&self) -> Vec<String> {
        self.homes()
            .into_iter()
            .filter(|h| {
                let r = self.record(h);
                r.view(&self.machine)
                    .get("autoLogin")
                    .and_then(Value::as_bool)
                    == Some(true)
                    && self.state(h) != HomeState::Absent
            })
            .map(|h| h.name.clone())
            .collect()
    }
}
