//! The engine: every home the daemon knows, and every operation on them. The bus and varlink
//! layers only translate; tests can drive the engine directly.

mod access;
mod auth;
mod discover;
pub mod error;
mod ops;
mod publish;
mod records;
pub mod refs;
mod registry;
mod spec;
mod state;
pub mod store;
mod trust;
pub mod uid;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use homed_shared::signing::{TrustVerdict, TrustedKeys};
use homed_shared::{MachineContext, UserRecord};

use crate::worker::client::Worker;

pub use error::{EngineError, EngineResult};
use refs::{FifoReader, LastReferenceClosed};
use store::RecordStore;

/// A failed secret costs this long (homed's BAD_PASSWORD_DELAY_USEC).
pub const BAD_PASSWORD_DELAY: Duration = Duration::from_secs(3);

/// The most passwords one ChangePasswordHome may set (clients send one; homed's records may
/// hold several).
const MAX_NEW_PASSWORDS: usize = 4;
/// A deactivation that failed because the home is busy is retried this often.
pub const RETRY_DEACTIVATE: Duration = Duration::from_secs(15);
/// At most this many operations may wait on one home.
const MAX_PENDING: usize = 100;

/// At most this many homes.
const HOME_USERS_MAX: usize = 500;

/// Fields of the status section that live in the host record file.
const PERSISTED_STATUS: [&str; 6] = [
    "goodAuthenticationCounter",
    "badAuthenticationCounter",
    "lastGoodAuthenticationUSec",
    "lastBadAuthenticationUSec",
    "rateLimitBeginUSec",
    "rateLimitCount",
];

/// Where the daemon keeps things.
#[derive(Debug, Clone)]
pub struct Paths {
    pub record_dir: PathBuf,
    pub home_root: String,
    pub run_dir: PathBuf,
    pub publish_dir: PathBuf,
    /// Where signing keys are looked for, in order (homed-spec §2.3).
    pub key_dirs: Vec<PathBuf>,
    /// Who must own the key files: root (tests that run as an ordinary user make their own).
    pub key_owner: u32,
}

impl Default for Paths {
    fn default() -> Self {
        let home_root = std::env::var("SYSTEMD_HOME_ROOT")
            .ok()
            .filter(|r| r.starts_with('/') && r.len() > 1)
            .map(|r| r.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| "/home".into());
        let record_dir = std::env::var("SYSTEMD_HOME_RECORD_DIR")
            .ok()
            .filter(|r| r.starts_with('/'))
            .unwrap_or_else(|| "/var/lib/systemd/home".into());
        Paths {
            record_dir: record_dir.into(),
            home_root,
            run_dir: "/run/systemd/home".into(),
            publish_dir: homed_shared::publish::PUBLISH_DIR.into(),
            key_dirs: homed_shared::signing::KEY_DIRECTORIES
                .iter()
                .map(PathBuf::from)
                .collect(),
            key_owner: 0,
        }
    }
}

/// Who called: the UID from the bus or socket credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
}

impl Caller {
    pub const ROOT: Caller = Caller { uid: 0 };
    fn is_root(self) -> bool {
        self.uid == 0
    }
}

struct RefSlot {
    reader: Arc<FifoReader>,
    generation: u64,
    watcher: tokio::task::JoinHandle<()>,
}

impl RefSlot {
    /// Stops watching (the read end closes when the last clone of it is dropped).
    fn cancel(self) {
        self.watcher.abort();
        drop(self.reader);
    }
}

struct HomeData {
    record: UserRecord,
    signed_locally: bool,
    transient: Option<Operation>,
    please: Option<RefSlot>,
    dont: Option<RefSlot>,
    lingering: bool,
    pending: usize,
    /// Found in /home without a host record: the record is synthesized and unsigned.
    unfixated: bool,
    /// A LUKS home's image, open with its exclusive lock while the home is active or locked.
    image_lock: Option<OwnedFd>,
    /// A LUKS home whose dm-crypt device is suspended (its key is out of memory).
    locked: bool,
}

/// One home.
pub struct Home {
    pub name: String,
    op: tokio::sync::Mutex<()>,
    data: Mutex<HomeData>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn now_usec() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The sleep-time policy: who calls LockAllHomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SleepMode {
    Systemd,
    Elogind,
    Inhibitor,
}

pub use access::Via;
pub(crate) use auth::{
    AuthError, Delayed, RateLimitCount, count_outcome, owned_passwords, reported, reported_holding,
};
pub use state::{HomeState, Operation};

/// What changed, for the bus to announce as systemd-homed announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeChange {
    /// The record of the home of this name was written (its UID, UnixRecord and UserRecord).
    Record(String),
    /// The home of this name is being removed (it no longer logs in automatically).
    Removing(String),
}

pub struct Engine {
    pub machine: MachineContext,
    pub paths: Paths,
    store: RecordStore,
    keys: Mutex<TrustedKeys>,
    homes: Mutex<BTreeMap<String, Arc<Home>>>,
    worker: Arc<dyn Worker>,
    /// Hangups of reference FIFOs come back up here (see `ops/login.rs`).
    ref_events: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<LastReferenceClosed>>,
    /// Changes go up to whoever took [`Engine::changes`] (the bus).
    changes: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<HomeChange>>,
    generation: Mutex<u64>,
    /// Password hash checks run since start (yescrypt, slow on purpose).
    hash_checks: std::sync::atomic::AtomicUsize,
    pub sleep_mode: SleepMode,
}

impl Engine {
    /// The changes to announce, from now on; `None` when someone took them already.
    pub fn changes(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<HomeChange>> {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        self.changes.set(sender).ok().map(|()| receiver)
    }

    pub(crate) fn announce(&self, change: HomeChange) {
        if let Some(sender) = self.changes.get() {
            let _ = sender.send(change);
        }
    }
}

impl Engine {
    /// Loads the host records and the keys.
    pub fn load(
        machine: MachineContext,
        paths: Paths,
        worker: Arc<dyn Worker>,
        sleep_mode: SleepMode,
    ) -> Arc<Engine> {
        let store = RecordStore::new(paths.record_dir.clone());
        if let Err(e) = store.ensure_dir() {
            eprintln!("{}: {e}", store.dir.display());
        }
        let mut dirs = paths.key_dirs.clone();
        if !dirs.contains(&paths.record_dir) {
            dirs.insert(0, paths.record_dir.clone());
        }
        let keys = TrustedKeys::load_owned_by(&dirs, paths.key_owner);
        for why in keys.ignored() {
            eprintln!("ignoring key: {why}");
        }
        let engine = Engine {
            machine,
            paths,
            store,
            keys: Mutex::new(keys),
            homes: Mutex::new(BTreeMap::new()),
            worker,
            ref_events: std::sync::OnceLock::new(),
            changes: std::sync::OnceLock::new(),
            generation: Mutex::new(0),
            hash_checks: std::sync::atomic::AtomicUsize::new(0),
            sleep_mode,
        };
        for record in engine.store.load_all() {
            let verdict = lock(&engine.keys).verdict(&record);
            let signed_locally = match verdict {
                Ok(TrustVerdict::SignedExclusive) => true,
                Ok(TrustVerdict::Signed | TrustVerdict::Foreign) => false,
                Ok(TrustVerdict::Unsigned) => {
                    eprintln!(
                        "{}: record is not signed at all, ignoring",
                        record.user_name()
                    );
                    continue;
                }
                Ok(TrustVerdict::NoKey) | Err(_) => {
                    eprintln!(
                        "{}: record is not signed by a trusted key, ignoring",
                        record.user_name()
                    );
                    continue;
                }
            };
            engine.insert_home_unpublished(record, signed_locally);
        }
        engine.discover();
        engine.publish_everything();
        Arc::new(engine)
    }
}

#[cfg(test)]
mod tests;
