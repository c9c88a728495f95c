//! The engine: every home the daemon knows, and every operation on them. The bus and varlink
//! layers only translate; tests can drive the engine directly.

pub mod error;
pub mod refs;
pub mod store;
pub mod uid;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use homed_shared::password::{hash_password, verify_password};
use homed_shared::record::HOMED_SERVICE;
use homed_shared::record::{Secret, check_suitable_for_homed};
use homed_shared::signing::{TrustVerdict, TrustedKeys, sign_record};
use homed_shared::storage::is_mount_point;
use homed_shared::{MachineContext, RecordOrigin, UserRecord};
use secrecy::ExposeSecret as _;
use serde_json::{Map, Value, json};

use crate::worker::backend::{self, Capabilities, StorageType};
use crate::worker::client::{WorkOutput, Worker};
use crate::worker::crashpoint::{self, KeyChangeStep};
use crate::worker::proto::{AddKeys, CreateArgs, HomeSpec, RetireKeys, WorkRequest};

pub use error::{EngineError, EngineResult};
use refs::{FifoReader, RefKind};
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
use crate::worker::backend::{DISK_SIZE_MAX, DISK_SIZE_MIN};

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

/// One line of ListHomes.
#[derive(Debug, Clone)]
pub struct HomeSummary {
    pub name: String,
    pub uid: u32,
    pub state: String,
    pub gid: u32,
    pub real_name: String,
    pub home_directory: String,
    pub shell: String,
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
    transient: Option<&'static str>,
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

/// A failure that must cost the bad-password delay before it is reported.
struct Delayed(EngineError);

enum AuthError {
    Now(EngineError),
    Delayed(Delayed),
}

impl From<EngineError> for AuthError {
    fn from(e: EngineError) -> Self {
        AuthError::Now(e)
    }
}

/// A rate-limit count not yet saved.
#[derive(Debug, Clone, Copy)]
struct RateLimitCount {
    begin: u64,
    count: u64,
}

impl RateLimitCount {
    fn apply(self, status: &mut Map<String, Value>) {
        status.insert("rateLimitBeginUSec".into(), json!(self.begin));
        status.insert("rateLimitCount".into(), json!(self.count));
    }
}

/// Counts one checked secret in a status section.
fn count_outcome(status: &mut Map<String, Value>, good: bool) {
    let (counter, last) = if good {
        ("goodAuthenticationCounter", "lastGoodAuthenticationUSec")
    } else {
        ("badAuthenticationCounter", "lastBadAuthenticationUSec")
    };
    let n = status.get(counter).and_then(Value::as_u64).unwrap_or(0);
    status.insert(counter.into(), json!(n + 1));
    status.insert(last.into(), json!(now_usec()));
}

/// Copies of a secret's passwords (still zeroizing) for work on a blocking thread.
fn owned_passwords(secret: &Secret) -> Vec<secrecy::SecretString> {
    secret
        .passwords()
        .iter()
        .map(|p| secrecy::SecretString::from(p.expose_secret().to_owned()))
        .collect()
}

/// Turns an authentication failure into the error to report, after the delay when one is due.
async fn reported<T>(result: Result<T, AuthError>) -> EngineResult<T> {
    match result {
        Ok(value) => Ok(value),
        Err(AuthError::Now(e)) => Err(e),
        Err(AuthError::Delayed(Delayed(e))) => {
            tokio::time::sleep(BAD_PASSWORD_DELAY).await;
            Err(e)
        }
    }
}

pub struct Engine {
    pub machine: MachineContext,
    pub paths: Paths,
    store: RecordStore,
    keys: Mutex<TrustedKeys>,
    homes: Mutex<BTreeMap<String, Arc<Home>>>,
    worker: Arc<dyn Worker>,
    generation: Mutex<u64>,
    /// Password hash checks run since start (yescrypt, slow on purpose).
    hash_checks: std::sync::atomic::AtomicUsize,
    pub sleep_mode: SleepMode,
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
        let keys = TrustedKeys::load_from(&dirs);
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

    fn insert_home(&self, record: UserRecord, signed_locally: bool) -> Arc<Home> {
        let home = self.insert_home_unpublished(record, signed_locally);
        self.publish(&home);
        home
    }

    fn insert_home_unpublished(&self, record: UserRecord, signed_locally: bool) -> Arc<Home> {
        let name = record.user_name().to_owned();
        let home = Arc::new(Home {
            name: name.clone(),
            op: tokio::sync::Mutex::new(()),
            data: Mutex::new(HomeData {
                record,
                signed_locally,
                transient: None,
                please: None,
                dont: None,
                lingering: false,
                pending: 0,
                unfixated: false,
                image_lock: None,
                locked: false,
            }),
        });
        lock(&self.homes).insert(name, home.clone());
        home
    }

    /// Discovery (homed-spec §3.1): `/home/NAME.homedir` directories and `/home/NAME.home`
    /// images without a host record become `unfixated` homes with a synthesized, unsigned record
    /// (never published) until FixateHome, ActivateHome or AcquireHome checks their own record.
    fn discover(&self) {
        let Ok(entries) = std::fs::read_dir(&self.paths.home_root) else {
            return;
        };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            let Some((base, kind)) = backend::all()
                .into_iter()
                .find_map(|k| file.strip_suffix(k.image_suffix()).map(|b| (b, k)))
            else {
                continue;
            };
            let (user, realm) = match base.split_once('@') {
                Some((u, r)) => (u, Some(r)),
                None => (base, None),
            };
            if !homed_shared::record::names::is_valid_strict(user) || self.lookup(user).is_some() {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            let kind_ok = if kind.image_is_folder() {
                meta.is_dir()
            } else {
                meta.is_file()
            };
            if !kind_ok {
                continue;
            }
            // As homed: a name the system's user or group database knows is not taken over.
            if uid::name_known_to_system(user) {
                eprintln!("{user}: found {file}, but the name is taken by another user or group");
                continue;
            }
            use std::os::unix::fs::MetadataExt as _;
            // A directory's owner only suggests the UID, as with homed: it is taken when it lies
            // in the home range and no home, user or group has it; otherwise the home gets one
            // the way a new home does. A folder copied in as root must not log in as root, nor
            // one owned by someone else as them.
            let suggested = kind.capabilities().owner_suggests_uid.then(|| meta.uid());
            let id = uid::allocate(user, suggested, |u| self.uid_in_use_by_home(u).is_some());
            let Some(id) = id else {
                eprintln!("{user}: found {file}, but no UID is free for it");
                continue;
            };
            let mut json = Map::new();
            json.insert("userName".into(), json!(user));
            if let Some(realm) = realm {
                json.insert("realm".into(), json!(realm));
            }
            json.insert("disposition".into(), json!("regular"));
            let Ok(mut record) = UserRecord::from_value(Value::Object(json), RecordOrigin::Host)
            else {
                continue;
            };
            let mut binding = Map::new();
            binding.insert("imagePath".into(), json!(entry.path().to_string_lossy()));
            binding.insert(
                "homeDirectory".into(),
                json!(format!("{}/{user}", self.paths.home_root)),
            );
            binding.insert("storage".into(), json!(kind.storage().as_str()));
            binding.insert("uid".into(), json!(id));
            binding.insert("gid".into(), json!(id));
            record.set_binding(&self.machine.machine_id, binding);
            let home = Arc::new(Home {
                name: user.to_owned(),
                op: tokio::sync::Mutex::new(()),
                data: Mutex::new(HomeData {
                    record,
                    signed_locally: false,
                    transient: None,
                    please: None,
                    dont: None,
                    lingering: false,
                    pending: 0,
                    unfixated: true,
                    image_lock: None,
                    locked: false,
                }),
            });
            eprintln!("{user}: found {file} without a record, unfixated");
            lock(&self.homes).insert(user.to_owned(), home);
        }
    }

    fn is_unfixated(&self, home: &Home) -> bool {
        lock(&home.data).unfixated
    }

    /// Makes an unfixated home's own record the host record (homed's fixation), once its
    /// signature is trusted and the secret opens it: a directory home's `.identity`, or a LUKS
    /// image's header record, which the worker reads without activating the image, together
    /// with the binding values the image holds. Nothing is written unless every check passes.
    /// The caller holds the operation lock.
    async fn fixate_locked(&self, home: &Home, secret: &Secret) -> Result<(), AuthError> {
        // A found home is guarded like any other: its own record's password is checked only
        // within the rate limit (counted in memory until the home has a host record). The
        // check is the authentication of the call that fixates: it is not repeated.
        let pending = self.ratelimit(home)?;
        let result = self.fixate_checked(home, secret, pending).await;
        if let Err(e) = &result {
            let outcome = matches!(e, AuthError::Delayed(_)).then_some(false);
            self.record_attempt(home, pending, outcome);
        }
        result
    }

    /// Fixation within the rate limit; on success the new host record carries the attempt.
    async fn fixate_checked(
        &self,
        home: &Home,
        secret: &Secret,
        pending: RateLimitCount,
    ) -> Result<(), AuthError> {
        let synthesized = self.record(home);
        self.storage_type(&synthesized)?;
        self.set_transient(home, Some("fixating"));
        let request = WorkRequest::Inspect(self.spec(&synthesized));
        let reply = self.work(&home.name, request, Some(secret)).await;
        self.set_transient(home, None);
        let reply = match reply {
            Ok(output) => output.reply,
            Err(e @ EngineError::BadPassword(_)) => return Err(AuthError::Delayed(Delayed(e))),
            Err(e) => return Err(e.into()),
        };
        let text = reply.identity.as_deref().unwrap_or("");
        let embedded = UserRecord::parse(text.as_bytes(), RecordOrigin::Embedded).map_err(|e| {
            EngineError::BadSignature(format!(
                "The record inside home {} is unusable: {e}",
                home.name
            ))
        })?;
        if embedded.user_name() != home.name || embedded.realm() != synthesized.realm() {
            return Err(EngineError::RecordMismatch(format!(
                "The record inside home {} is for another user.",
                home.name
            ))
            .into());
        }
        let verdict = lock(&self.keys).verdict(&embedded);
        let signed_locally = match verdict {
            Ok(TrustVerdict::SignedExclusive) => true,
            Ok(TrustVerdict::Signed | TrustVerdict::Foreign) => false,
            _ => {
                return Err(EngineError::BadSignature(format!(
                    "The record inside home {} is not signed by a trusted key.",
                    home.name
                ))
                .into());
            }
        };
        self.verify(&embedded, secret).await?;
        let mut record = embedded;
        let mut binding = synthesized
            .json()
            .get("binding")
            .and_then(|b| b.get(&self.machine.machine_id))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(found) = &reply.binding {
            for (k, v) in found {
                binding.insert(k.clone(), v.clone());
            }
        }
        record.set_binding(&self.machine.machine_id, binding);
        self.check_resolved(&record)?;
        let mut status = self.status_of(&synthesized);
        status.retain(|k, _| PERSISTED_STATUS.contains(&k.as_str()));
        pending.apply(&mut status);
        count_outcome(&mut status, true);
        record.set_status(&self.machine.machine_id, status);
        {
            let mut d = lock(&home.data);
            d.unfixated = false;
            d.signed_locally = signed_locally;
        }
        if let Err(e) = self.save_record(home, record) {
            let mut d = lock(&home.data);
            d.unfixated = true;
            d.record = synthesized;
            return Err(e.into());
        }
        eprintln!("{}: fixated", home.name);
        self.publish(home);
        Ok(())
    }

    /// After a restart: watch the reference FIFOs of homes that are still mounted.
    pub fn adopt_active_homes(self: &Arc<Self>) {
        for home in self.homes() {
            if !self.is_active(&home) {
                continue;
            }
            if self
                .storage_type(&self.record(&home))
                .is_ok_and(|k| k.suspended_now(&home.name))
            {
                lock(&home.data).locked = true;
            }
            for kind in [RefKind::PleaseSuspend, RefKind::DontSuspend] {
                let path = kind.fifo_path(&self.paths.run_dir, &home.name);
                if !path.exists() {
                    continue;
                }
                match self.watch_fifo(&home, kind) {
                    Ok(()) => refs::poke(&path),
                    Err(e) => eprintln!("{}: {e}", path.display()),
                }
            }
            eprintln!("{}: home is active, picked up again", home.name);
        }
    }

    /// How many password hash checks the engine ran since start.
    #[cfg(test)]
    pub fn hash_checks(&self) -> usize {
        self.hash_checks.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn homes(&self) -> Vec<Arc<Home>> {
        lock(&self.homes).values().cloned().collect()
    }

    pub fn lookup(&self, name: &str) -> Option<Arc<Home>> {
        lock(&self.homes).get(name).cloned()
    }

    pub fn lookup_uid(&self, uid: u32) -> Option<Arc<Home>> {
        self.homes()
            .into_iter()
            .find(|h| self.uid_of(h) == Some(uid))
    }

    /// Looks a home up by name, or by the caller's UID when the name is empty.
    pub fn find(&self, name: &str, caller: Caller) -> EngineResult<Arc<Home>> {
        if name.is_empty() {
            return self.lookup_uid(caller.uid).ok_or_else(|| {
                EngineError::NoSuchHome(format!("Client's UID {} not managed.", caller.uid))
            });
        }
        self.lookup(name)
            .ok_or_else(|| EngineError::NoSuchHome(format!("No home for user {name} known")))
    }

    pub fn record(&self, home: &Home) -> UserRecord {
        lock(&home.data).record.clone()
    }

    pub fn uid_of(&self, home: &Home) -> Option<u32> {
        let data = lock(&home.data);
        data.record.view(&self.machine).uid()
    }

    /// The rules every record must pass once this machine's binding is applied, wherever it
    /// came from (a client, a found home's own record, a newer embedded copy): homed's rules for
    /// the name, disposition and IDs (no system or special UID), and a home directory directly
    /// in the home root, so that no signer decides where root mounts a user's tree.
    fn check_resolved(&self, record: &UserRecord) -> EngineResult<()> {
        let view = record.view(&self.machine);
        check_suitable_for_homed(&view, true).map_err(|e| {
            EngineError::InvalidArgs(format!(
                "Refusing to manage the record of {}: {e}",
                record.user_name()
            ))
        })?;
        let dir = self.home_directory(record);
        let expected = format!("{}/{}", self.paths.home_root, record.user_name());
        if dir != expected {
            return Err(EngineError::InvalidArgs(format!(
                "Refusing to manage the record of {}: its home directory is {dir}, not {expected}",
                record.user_name()
            )));
        }
        Ok(())
    }

    /// Whether `home`'s record may be handed out to NSS and userdb clients.
    pub fn servable(&self, home: &Home) -> bool {
        self.check_resolved(&self.record(home)).is_ok()
    }

    fn home_directory(&self, record: &UserRecord) -> String {
        let view = record.view(&self.machine);
        match view.get("homeDirectory").and_then(Value::as_str) {
            Some(d) => d.to_owned(),
            None => format!("{}/{}", self.paths.home_root, record.user_name()),
        }
    }

    fn image_path(&self, record: &UserRecord) -> String {
        let view = record.view(&self.machine);
        if let Some(p) = view.get("imagePath").and_then(Value::as_str) {
            return p.to_owned();
        }
        let base = match record.realm() {
            Some(realm) => format!("{}@{realm}", record.user_name()),
            None => record.user_name().to_owned(),
        };
        let suffix = backend::describe(view.storage().unwrap_or(backend::DEFAULT_STORAGE))
            .unwrap_or(backend::DEFAULT_TYPE)
            .image_suffix();
        format!("{}/{base}{suffix}", self.paths.home_root)
    }

    fn is_active(&self, home: &Home) -> bool {
        let record = self.record(home);
        is_mount_point(&self.home_directory(&record))
    }

    /// The state string (homed-spec §4.6).
    pub fn state(&self, home: &Home) -> String {
        let (record, transient, lingering, unfixated) = {
            let d = lock(&home.data);
            (d.record.clone(), d.transient, d.lingering, d.unfixated)
        };
        if let Some(t) = transient {
            return t.to_owned();
        }
        if unfixated {
            return "unfixated".to_owned();
        }
        if lock(&home.data).locked {
            return "locked".to_owned();
        }
        if is_mount_point(&self.home_directory(&record)) {
            return if lingering { "lingering" } else { "active" }.to_owned();
        }
        if std::fs::symlink_metadata(self.image_path(&record)).is_err() {
            return "absent".to_owned();
        }
        "inactive".to_owned()
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

    /// Whether `caller` may see the privileged section of `home`.
    pub fn trusted_caller(&self, home: &Home, caller: Caller) -> bool {
        caller.is_root() || self.uid_of(home) == Some(caller.uid)
    }

    /// The record as served to a client: binding, the live status, and the privileged section
    /// only for root and the owner. Returns the record and whether it is incomplete.
    pub fn served_record(&self, home: &Home, caller: Caller) -> (UserRecord, bool) {
        let (mut record, signed_locally) = {
            let d = lock(&home.data);
            (d.record.clone(), d.signed_locally)
        };
        let mut status = self.status_of(&record);
        status.insert("state".into(), Value::String(self.state(home)));
        status.insert("service".into(), Value::String(HOMED_SERVICE.into()));
        status.insert("signedLocally".into(), Value::Bool(signed_locally));
        if let Ok(st) = nix::sys::statvfs::statvfs(self.paths.home_root.as_str()) {
            let frsize = st.fragment_size();
            status.insert("diskSize".into(), json!(st.blocks() * frsize));
            status.insert("diskFree".into(), json!(st.blocks_available() * frsize));
            // The user quota's figure, as homed reads it; none without a quota.
            if let Some(uid) = record.view(&self.machine).uid()
                && let Some(used) =
                    homed_shared::storage::disk_usage(&self.image_path(&record), uid)
            {
                status.insert("diskUsage".into(), json!(used));
            }
            status.insert("diskCeiling".into(), json!(DISK_SIZE_MAX));
            status.insert("diskFloor".into(), json!(DISK_SIZE_MIN));
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

    fn next_generation(&self) -> u64 {
        let mut g = lock(&self.generation);
        *g += 1;
        *g
    }

    /// This machine's entry of the record's status section.
    fn status_of(&self, record: &UserRecord) -> Map<String, Value> {
        record
            .json()
            .get("status")
            .and_then(|s| s.get(&self.machine.machine_id))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    /// Takes the operation lock of a home, refusing when too many operations wait.
    async fn begin<'a>(&self, home: &'a Home) -> EngineResult<tokio::sync::MutexGuard<'a, ()>> {
        {
            let mut d = lock(&home.data);
            if d.pending >= MAX_PENDING {
                return Err(EngineError::TooManyOperations(
                    "Too many client operations requested".into(),
                ));
            }
            d.pending += 1;
        }
        let guard = home.op.lock().await;
        lock(&home.data).pending -= 1;
        Ok(guard)
    }

    fn set_transient(&self, home: &Home, state: Option<&'static str>) {
        lock(&home.data).transient = state;
    }

    fn save_record(&self, home: &Home, record: UserRecord) -> EngineResult<()> {
        // An unfixated home has no host record yet: its synthesized one stays in memory.
        if self.is_unfixated(home) {
            lock(&home.data).record = record;
            return Ok(());
        }
        self.store.save(&record).map_err(|e| {
            EngineError::Failed(format!("Failed to write the record of {}: {e}", home.name))
        })?;
        lock(&home.data).record = record;
        Ok(())
    }

    /// Changes persisted status fields of a home and writes its host record.
    /// The change takes effect in memory first, whatever happens to the file: a full or
    /// read-only file system must not undo a count the rate limit relies on. Says whether the
    /// change also reached the host record.
    fn update_status(&self, home: &Home, change: impl FnOnce(&mut Map<String, Value>)) -> bool {
        let mut record = self.record(home);
        let mut status = self.status_of(&record);
        status.retain(|k, _| PERSISTED_STATUS.contains(&k.as_str()));
        change(&mut status);
        record.set_status(&self.machine.machine_id, status);
        if self.is_unfixated(home) {
            lock(&home.data).record = record;
            return true;
        }
        let saved = self.store.save(&record);
        lock(&home.data).record = record;
        match saved {
            Ok(()) => true,
            Err(e) => {
                eprintln!("{}: the status could not be saved: {e}", home.name);
                false
            }
        }
    }

    /// homed's rate limit: `rateLimitBurst` attempts per `rateLimitIntervalUSec`, counted in the
    /// host record so that a restart does not reset it. Returns the new count, to be saved
    /// with the attempt's outcome in one write; the attempt that uses up the burst is saved
    /// before it is allowed (a restart must not forget it), and refused when that fails.
    fn ratelimit(&self, home: &Home) -> EngineResult<RateLimitCount> {
        let record = self.record(home);
        let view = record.view(&self.machine);
        let interval = view.rate_limit_interval_usec();
        let burst = view.rate_limit_burst();
        let status = self.status_of(&record);
        let begin = status.get("rateLimitBeginUSec").and_then(Value::as_u64);
        let count = status
            .get("rateLimitCount")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let now = now_usec();
        let (begin, count) = match begin {
            Some(b) if b > now => (now, 1),
            None => (now, 1),
            Some(b) if b.saturating_add(interval) <= now => (now, 1),
            Some(b) if count < burst => (b, count + 1),
            Some(b) => {
                let left = b.saturating_add(interval).saturating_sub(now);
                return Err(EngineError::AuthenticationLimitHit(format!(
                    "Too many login attempts, please try again in {}s!",
                    left.div_ceil(1_000_000)
                )));
            }
        };
        let pending = RateLimitCount { begin, count };
        if count >= burst {
            let saved = self.update_status(home, |s| pending.apply(s));
            if !saved {
                return Err(EngineError::AuthenticationLimitHit(
                    "Too many login attempts, and the attempt could not be recorded; please try again later.".into(),
                ));
            }
        }
        Ok(pending)
    }

    /// Saves an attempt: its rate-limit count and, when it checked a secret, its outcome.
    fn record_attempt(&self, home: &Home, pending: RateLimitCount, outcome: Option<bool>) {
        let _ = self.update_status(home, |s| {
            pending.apply(s);
            if let Some(good) = outcome {
                count_outcome(s, good);
            }
        });
    }

    /// Checks `secret` against `record`'s hashes, off the async threads (yescrypt is slow on
    /// purpose).
    async fn verify(&self, record: &UserRecord, secret: &Secret) -> Result<(), AuthError> {
        let user = record.user_name();
        let view = record.view(&self.machine);
        let hashes: Vec<String> = view
            .hashed_passwords()
            .into_iter()
            .map(str::to_owned)
            .collect();
        if hashes.is_empty() {
            return Err(AuthError::Now(EngineError::HomeCantAuthenticate(format!(
                "Home {user} has no password or other authentication mechanism defined."
            ))));
        }
        let bad = EngineError::BadPassword(format!(
            "Password for home {user} is incorrect or not sufficient for authentication."
        ));
        if secret.passwords().is_empty() {
            return Err(AuthError::Now(bad));
        }
        let passwords = owned_passwords(secret);
        self.hash_checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ok = tokio::task::spawn_blocking(move || {
            passwords
                .iter()
                .any(|p| hashes.iter().any(|h| verify_password(p, h)))
        })
        .await
        .unwrap_or(false);
        if ok {
            Ok(())
        } else {
            Err(AuthError::Delayed(Delayed(bad)))
        }
    }

    /// Rate limit, then the secret against the host record; saves the count and the outcome
    /// in one write of the host record.
    async fn authenticate_locked(&self, home: &Home, secret: &Secret) -> Result<(), AuthError> {
        let pending = self.ratelimit(home)?;
        let record = self.record(home);
        let result = self.verify(&record, secret).await;
        let outcome = match &result {
            Ok(()) => Some(true),
            Err(e) if matches!(e, AuthError::Delayed(_)) || !secret.passwords().is_empty() => {
                Some(false)
            }
            Err(_) => None,
        };
        self.record_attempt(home, pending, outcome);
        result
    }

    fn require_root(caller: Caller) -> EngineResult<()> {
        if caller.is_root() {
            Ok(())
        } else {
            Err(EngineError::AccessDenied("Access denied".into()))
        }
    }

    fn require_root_or_owner(&self, home: &Home, caller: Caller) -> EngineResult<()> {
        if self.trusted_caller(home, caller) {
            Ok(())
        } else {
            Err(EngineError::AccessDenied("Access denied".into()))
        }
    }

    /// The storage type of `record`, when this daemon handles it.
    fn storage_type(&self, record: &UserRecord) -> EngineResult<&'static dyn StorageType> {
        let storage = record
            .view(&self.machine)
            .storage()
            .unwrap_or(backend::DEFAULT_STORAGE);
        backend::describe(storage).ok_or_else(|| {
            EngineError::NotSupported(format!(
                "Storage type {} is not supported by this daemon yet",
                storage.as_str()
            ))
        })
    }

    /// What the storage of `home` can do (nothing, for a type this daemon does not handle).
    fn capabilities(&self, home: &Home) -> Capabilities {
        self.storage_type(&self.record(home))
            .map(|k| k.capabilities())
            .unwrap_or(Capabilities {
                lockable: false,
                copies_need_key: false,
                keyed: false,
                owner_suggests_uid: false,
                holds_image_lock: false,
            })
    }

    /// The one description of a home that every worker request carries.
    fn spec(&self, record: &UserRecord) -> HomeSpec {
        let view = record.view(&self.machine);
        let mut key_dirs = self.paths.key_dirs.clone();
        if !key_dirs.contains(&self.paths.record_dir) {
            key_dirs.insert(0, self.paths.record_dir.clone());
        }
        HomeSpec {
            storage: Some(view.storage().unwrap_or(backend::DEFAULT_STORAGE)),
            user_name: record.user_name().to_owned(),
            realm: record.realm().map(str::to_owned),
            image_path: self.image_path(record),
            home_directory: self.home_directory(record),
            uid: view.uid(),
            gid: view.gid(),
            nosuid: view.mount_no_suid(),
            nodev: view.mount_no_devices(),
            noexec: view.mount_no_execute(),
            record: Some(record.to_compact_string()),
            machine_id: Some(self.machine.machine_id.clone()),
            key_dirs,
            active: false,
        }
    }

    fn ids(&self, record: &UserRecord) -> EngineResult<(u32, u32)> {
        let view = record.view(&self.machine);
        match (view.uid(), view.gid()) {
            (Some(u), Some(g)) => Ok((u, g)),
            _ => Err(EngineError::Failed(format!(
                "Home {} has no UID",
                record.user_name()
            ))),
        }
    }

    /// Runs one storage operation, its failure named the way homed reports it.
    async fn work(
        &self,
        user: &str,
        request: WorkRequest,
        secret: Option<&Secret>,
    ) -> EngineResult<WorkOutput> {
        self.worker
            .run(request, secret)
            .await
            .map_err(|e| EngineError::from_work(e, user))
    }

    /// Publishes the resolved record of `home` for nss_homed (DESIGN.md contract 5), signed with
    /// the machine's key (created on first need, like the signing key it is).
    pub fn publish(&self, home: &Home) {
        let record = self.record(home);
        if let Err(e) = self.check_resolved(&record) {
            eprintln!("{}: not published: {e}", home.name);
            return;
        }
        if let Err(e) = self.ensure_local_key() {
            eprintln!("{}: not published: {e}", home.name);
            return;
        }
        let keys = lock(&self.keys);
        let Some(key) = keys.local() else { return };
        let view = record.view(&self.machine);
        if let Err(e) = homed_shared::publish::publish(&self.paths.publish_dir, &view, key) {
            eprintln!("{}: not published: {e}", home.name);
        }
    }

    /// At start: publishes every home with a record and withdraws what an earlier run published
    /// for homes that are gone, so that NSS answers for exactly these users.
    fn publish_everything(&self) {
        let records: Vec<UserRecord> = self
            .homes()
            .iter()
            .filter(|h| !self.is_unfixated(h))
            .map(|h| self.record(h))
            .filter(|r| match self.check_resolved(r) {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("{}: not published: {e}", r.user_name());
                    false
                }
            })
            .collect();
        if records.is_empty() {
            self.withdraw_stale_publications();
            return;
        }
        if let Err(e) = self.ensure_local_key() {
            eprintln!("nothing published: {e}");
            return;
        }
        let keys = lock(&self.keys);
        let Some(key) = keys.local() else { return };
        let views: Vec<_> = records.iter().map(|r| r.view(&self.machine)).collect();
        if let Err(e) = homed_shared::publish::publish_all(&self.paths.publish_dir, &views, key) {
            eprintln!("publishing the records failed: {e}");
        }
    }

    /// Removes what an earlier run published, when no home is left to publish.
    fn withdraw_stale_publications(&self) {
        let Ok(entries) = std::fs::read_dir(&self.paths.publish_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(name) = file
                .to_str()
                .and_then(|f| f.strip_suffix(homed_shared::publish::USER_SUFFIX))
            else {
                continue;
            };
            let current = self.lookup(name).is_some_and(|h| {
                !self.is_unfixated(&h) && self.check_resolved(&self.record(&h)).is_ok()
            });
            if !current {
                self.unpublish(name);
            }
        }
    }

    fn unpublish(&self, name: &str) {
        if let Err(e) = homed_shared::publish::unpublish(&self.paths.publish_dir, name) {
            eprintln!("{name}: could not withdraw the published record: {e}");
        }
    }

    fn ensure_local_key(&self) -> EngineResult<()> {
        let mut keys = lock(&self.keys);
        if keys.local().is_none() {
            let key = self.store.create_signing_key().map_err(|e| {
                EngineError::NoPrivateKey(format!("Can't create the local signing key: {e}"))
            })?;
            keys.set_local(key);
        }
        Ok(())
    }

    /// Signs `record` with the local key, creating the key on first need.
    fn sign_locally(&self, record: &mut UserRecord) -> EngineResult<()> {
        self.ensure_local_key()?;
        let keys = lock(&self.keys);
        let Some(key) = keys.local() else {
            return Err(EngineError::NoPrivateKey("No private key".into()));
        };
        sign_record(record, key);
        Ok(())
    }

    /// Signs an unsigned record, or checks the signature of a signed one; returns whether the
    /// result is signed by the local key alone.
    fn sign_or_check(&self, record: &mut UserRecord) -> EngineResult<bool> {
        let verdict = lock(&self.keys)
            .verdict(record)
            .map_err(|e| EngineError::BadSignature(e.to_string()))?;
        match verdict {
            TrustVerdict::Unsigned => {
                self.sign_locally(record)?;
                Ok(true)
            }
            TrustVerdict::SignedExclusive => Ok(true),
            TrustVerdict::Signed | TrustVerdict::Foreign => Ok(false),
            TrustVerdict::NoKey => Err(EngineError::BadSignature(format!(
                "User record of {} is not signed by any known key, refusing.",
                record.user_name()
            ))),
        }
    }

    fn parse_request(text: &str) -> EngineResult<(UserRecord, Secret)> {
        let mut record = UserRecord::parse(text.as_bytes(), RecordOrigin::Request)
            .map_err(|e| EngineError::InvalidArgs(format!("Failed to parse user record: {e}")))?;
        let secret = record
            .take_secret()
            .map_err(|e| EngineError::InvalidArgs(format!("Failed to parse user record: {e}")))?
            .unwrap_or_default();
        Ok((record, secret))
    }

    /// Parses the secret argument: the inner object of the `secret` section (homed-spec §4.4).
    pub fn parse_secret(text: &str) -> EngineResult<Secret> {
        Secret::parse(text.as_bytes())
            .map_err(|e| EngineError::InvalidArgs(format!("Failed to parse secret: {e}")))
    }

    fn check_name_free(&self, record: &UserRecord) -> EngineResult<()> {
        let name = record.user_name();
        if self.lookup(name).is_some() {
            return Err(EngineError::UserNameExists(format!(
                "Specified user name {name} exists already, refusing."
            )));
        }
        if uid::name_known_to_system(name) {
            return Err(EngineError::UserNameExists(format!(
                "Specified user name {name} exists in the NSS user database, refusing."
            )));
        }
        if let Some(realm) = record.realm()
            && uid::name_known_to_system(&format!("{name}@{realm}"))
        {
            return Err(EngineError::UserNameExists(format!(
                "Specified user name {name}@{realm} exists in the NSS user database, refusing."
            )));
        }
        Ok(())
    }

    fn uid_in_use_by_home(&self, uid: u32) -> Option<String> {
        self.homes()
            .into_iter()
            .find(|h| self.uid_of(h) == Some(uid))
            .map(|h| h.name.clone())
    }

    /// CreateHome: checks, allocates a UID, hashes and signs, makes the storage, writes the
    /// host record.
    pub async fn create(&self, caller: Caller, text: &str) -> EngineResult<Arc<Home>> {
        Self::require_root(caller)?;
        let (mut record, secret) = Self::parse_request(text)?;
        self.prepare_new(&mut record)?;
        let name = record.user_name().to_owned();
        // As homed: the client hashes the password; the secret must open one of the hashes.
        if secret.passwords().is_empty() {
            return Err(EngineError::BadPassword(format!(
                "No password given for home {name}: required key not available."
            )));
        }
        if record.view(&self.machine).hashed_passwords().is_empty() {
            return Err(EngineError::InvalidArgs(
                "Failed to execute operation: Invalid argument".into(),
            ));
        }
        reported(self.verify(&record, &secret).await).await?;
        let signed_locally = self.sign_or_check(&mut record)?;
        // The secret was checked off the engine's threads: another create of the same name may
        // have finished meanwhile.
        if self.lookup(&name).is_some() {
            return Err(EngineError::UserNameExists(format!(
                "Specified user name {name} exists already, refusing."
            )));
        }
        self.create_storage(&record, &secret).await?;
        if let Err(e) = self.store.save(&record) {
            return Err(EngineError::Failed(format!(
                "Failed to write the record of {name}: {e}"
            )));
        }
        Ok(self.insert_home(record, signed_locally))
    }

    /// Makes the storage of a new home (create, realize).
    async fn create_storage(&self, record: &UserRecord, secret: &Secret) -> EngineResult<()> {
        let name = record.user_name();
        let kind = self.storage_type(record)?;
        self.ids(record)?;
        let view = record.view(&self.machine);
        let free = nix::sys::statvfs::statvfs(self.paths.home_root.as_str())
            .map(|st| st.blocks_available() * st.fragment_size())
            .unwrap_or(0);
        let request = WorkRequest::Create(CreateArgs {
            spec: self.spec(record),
            disk_size: kind.disk_size(&view, free),
            skeleton: Some(view.skeleton_directory()),
            access_mode: Some(view.access_mode()),
        });
        self.work(name, request, Some(secret)).await.map(|_| ())
    }

    /// The checks and fields every new record goes through (create, register).
    fn prepare_new(&self, record: &mut UserRecord) -> EngineResult<()> {
        check_suitable_for_homed(&record.view(&self.machine), false).map_err(|e| {
            EngineError::InvalidArgs(format!("Refusing to manage this user record: {e}"))
        })?;
        if lock(&self.homes).len() >= HOME_USERS_MAX {
            return Err(EngineError::Failed("Too many homes".into()));
        }
        self.storage_type(record)?;
        self.check_name_free(record)?;
        let name = record.user_name().to_owned();
        let view = record.view(&self.machine);
        let uid = match view.uid() {
            Some(uid) => {
                if let Some(other) = self.uid_in_use_by_home(uid) {
                    return Err(EngineError::UidInUse(format!(
                        "Specified UID {uid} already in use by home {other}, refusing."
                    )));
                }
                if uid::known_to_system(uid) {
                    return Err(EngineError::UidInUse(format!(
                        "Specified UID {uid} already in use by an NSS user or group, refusing."
                    )));
                }
                uid
            }
            None => uid::allocate(&name, None, |u| self.uid_in_use_by_home(u).is_some())
                .ok_or_else(|| {
                    EngineError::Failed("Failed to acquire a UID for the home".into())
                })?,
        };
        let kind = self.storage_type(record)?;
        let mut binding = Map::new();
        binding.insert("gid".into(), json!(uid));
        binding.insert("imagePath".into(), json!(self.image_path(record)));
        binding.insert("homeDirectory".into(), json!(self.home_directory(record)));
        binding.insert("storage".into(), json!(kind.storage().as_str()));
        binding.insert("uid".into(), json!(uid));
        kind.new_binding(&view, &mut binding)
            .map_err(|e| EngineError::NotSupported(e.message))?;
        record.set_binding(&self.machine.machine_id, binding);
        Ok(())
    }

    /// AuthenticateHome.
    pub async fn authenticate(
        &self,
        caller: Caller,
        name: &str,
        secret: &Secret,
    ) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        self.require_root_or_owner(&home, caller)?;
        if self.is_unfixated(&home) {
            return Err(EngineError::HomeUnfixated(format!(
                "Home {} has not been fixated yet.",
                home.name
            )));
        }
        // As homed: an authentication does not queue behind another operation on the home
        // (which may be a failed guess serving its delay); it is refused as busy at once.
        let guard = home.op.try_lock().map_err(|_| {
            EngineError::HomeBusy(format!(
                "Home {0} is currently being used, or an operation on home {0} is currently being executed.",
                home.name
            ))
        })?;
        let result = self.authenticate_locked(&home, secret).await;
        // The bad-password delay runs while the home's operation is still held: failed
        // guesses at one home take their turn, however many callers send them at once.
        let result = reported(result).await;
        drop(guard);
        result
    }

    /// Mounts the home and reconciles its `.identity`; the caller holds the operation lock and
    /// has authenticated.
    async fn activate_locked(&self, home: &Home, secret: &Secret) -> Result<(), AuthError> {
        let record = self.record(home);
        self.check_resolved(&record)?;
        self.storage_type(&record)?;
        self.ids(&record)?;
        self.set_transient(home, Some("activating"));
        let reply = self
            .work(
                &home.name,
                WorkRequest::Activate(self.spec(&record)),
                Some(secret),
            )
            .await
            .map(|output| {
                let mut d = lock(&home.data);
                d.image_lock = output.image_lock;
                d.locked = false;
                output.reply
            });
        self.set_transient(home, None);
        let reply = match reply {
            Ok(reply) => reply,
            Err(e @ EngineError::BadPassword(_)) => return Err(AuthError::Delayed(Delayed(e))),
            Err(e) => return Err(e.into()),
        };
        let Some(text) = reply.identity else {
            lock(&home.data).lingering = false;
            return Ok(());
        };
        // The worker adopted a newer embedded copy (trusted, and the secret opens it; every
        // copy in the home is it now): it becomes the host record once its signature checks
        // out here too.
        let adopted = async {
            let embedded = UserRecord::parse(text.as_bytes(), RecordOrigin::Embedded)
                .map_err(|e| AuthError::Now(EngineError::BadSignature(e.to_string())))?;
            let verdict = lock(&self.keys).verdict(&embedded);
            if !matches!(verdict, Ok(v) if v.is_trusted()) {
                return Err(AuthError::Now(EngineError::BadSignature(format!(
                    "The record embedded in home {} is not signed by a trusted key.",
                    home.name
                ))));
            }
            let mut merged = embedded.clone();
            for section in ["binding", "status"] {
                if let Some(v) = record.json().get(section) {
                    merged.json_mut().insert(section.into(), v.clone());
                }
            }
            let signed_locally = matches!(verdict, Ok(TrustVerdict::SignedExclusive));
            self.check_resolved(&merged)?;
            self.save_record(home, merged)?;
            lock(&home.data).signed_locally = signed_locally;
            self.publish(home);
            Ok(())
        }
        .await;
        if adopted.is_err() {
            let _ = self.deactivate_locked(home).await;
        }
        adopted
    }

    /// ActivateHome (root only in v252).
    pub async fn activate(&self, caller: Caller, name: &str, secret: &Secret) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let guard = self.begin(&home).await?;
        let result = async {
            match self.state(&home).as_str() {
                "active" | "lingering" | "locked" => {
                    return Err(AuthError::Now(EngineError::HomeAlreadyActive(format!(
                        "Home {} is already active.",
                        home.name
                    ))));
                }
                "absent" => {
                    return Err(AuthError::Now(EngineError::HomeAbsent(format!(
                        "Home {} is currently missing or not plugged in.",
                        home.name
                    ))));
                }
                "unfixated" => self.fixate_locked(&home, secret).await?,
                _ => self.authenticate_locked(&home, secret).await?,
            }
            self.activate_locked(&home, secret).await
        }
        .await;
        // The bad-password delay runs while the home's operation is still held: failed
        // guesses at one home take their turn, however many callers send them at once.
        let result = reported(result).await;
        drop(guard);
        result
    }

    async fn deactivate_locked(&self, home: &Home) -> EngineResult<()> {
        let record = self.record(home);
        if lock(&home.data).locked {
            return Err(EngineError::HomeLocked(format!(
                "Home {} is currently locked.",
                home.name
            )));
        }
        self.set_transient(home, Some("deactivating"));
        let result = self
            .work(
                &home.name,
                WorkRequest::Deactivate(self.spec(&record)),
                None,
            )
            .await
            .map(|_| ());
        self.set_transient(home, None);
        if result.is_ok() {
            let mut d = lock(&home.data);
            d.lingering = false;
            d.image_lock = None;
        }
        result
    }

    /// DeactivateHome (root only).
    pub async fn deactivate(&self, caller: Caller, name: &str) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let _guard = self.begin(&home).await?;
        if !self.is_active(&home) {
            return Err(EngineError::HomeNotActive(format!(
                "Home {} not active.",
                home.name
            )));
        }
        self.deactivate_locked(&home).await
    }

    /// DeactivateAllHomes (root only).
    pub async fn deactivate_all(&self, caller: Caller) -> EngineResult<()> {
        Self::require_root(caller)?;
        let mut first_error = None;
        for home in self.homes() {
            let _guard = self.begin(&home).await?;
            if self.is_active(&home)
                && let Err(e) = self.deactivate_locked(&home).await
            {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// LockAllHomes: locks every home whose references all asked for suspend. A directory home
    /// has nothing to lock, which counts as success, as in homed.
    pub async fn lock_all(&self, caller: Caller) -> EngineResult<()> {
        Self::require_root(caller)?;
        for home in self.homes() {
            let shall_suspend = {
                let d = lock(&home.data);
                d.please.is_some() && d.dont.is_none()
            };
            if !shall_suspend || !self.is_active(&home) {
                continue;
            }
            if !self.capabilities(&home).lockable {
                eprintln!("{}: nothing to lock on this storage", home.name);
                continue;
            }
            let _guard = self.begin(&home).await?;
            if lock(&home.data).locked {
                continue;
            }
            if let Err(e) = self.lock_locked(&home).await {
                eprintln!("{}: locking failed: {e}", home.name);
            }
        }
        Ok(())
    }

    /// Syncs and suspends a LUKS home; the caller holds the operation lock.
    async fn lock_locked(&self, home: &Home) -> EngineResult<()> {
        let record = self.record(home);
        self.set_transient(home, Some("locking"));
        let result = self
            .work(&home.name, WorkRequest::Lock(self.spec(&record)), None)
            .await;
        self.set_transient(home, None);
        result?;
        lock(&home.data).locked = true;
        eprintln!("{}: home locked", home.name);
        Ok(())
    }

    /// Resumes a locked LUKS home with the passwords in `secret`; the caller holds the
    /// operation lock and has authenticated.
    async fn unlock_locked(&self, home: &Home, secret: &Secret) -> Result<(), AuthError> {
        let record = self.record(home);
        self.set_transient(home, Some("unlocking"));
        let result = self
            .work(
                &home.name,
                WorkRequest::Unlock(self.spec(&record)),
                Some(secret),
            )
            .await;
        self.set_transient(home, None);
        match result {
            Ok(_) => {
                lock(&home.data).locked = false;
                eprintln!("{}: home unlocked", home.name);
                Ok(())
            }
            Err(e @ EngineError::BadPassword(_)) => Err(AuthError::Delayed(Delayed(e))),
            Err(e) => Err(AuthError::Now(e)),
        }
    }

    /// RemoveHome.
    pub async fn remove(&self, caller: Caller, name: &str) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let _guard = self.begin(&home).await?;
        if self.is_active(&home) {
            return Err(EngineError::HomeBusy(format!(
                "Home {} is currently being used, or an operation on home {} is currently being executed.",
                home.name, home.name
            )));
        }
        let record = self.record(&home);
        if std::fs::symlink_metadata(self.image_path(&record)).is_ok() {
            self.set_transient(&home, Some("removing"));
            let r = self
                .work(&home.name, WorkRequest::Remove(self.spec(&record)), None)
                .await;
            self.set_transient(&home, None);
            r?;
        }
        self.forget(&home)
    }

    fn forget(&self, home: &Home) -> EngineResult<()> {
        self.store.delete(&home.name).map_err(|e| {
            EngineError::Failed(format!("Failed to remove the record of {}: {e}", home.name))
        })?;
        {
            let mut d = lock(&home.data);
            if let Some(s) = d.please.take() {
                s.cancel();
            }
            if let Some(s) = d.dont.take() {
                s.cancel();
            }
        }
        for kind in [RefKind::PleaseSuspend, RefKind::DontSuspend] {
            let _ = std::fs::remove_file(kind.fifo_path(&self.paths.run_dir, &home.name));
        }
        let _ = std::fs::remove_file(self.paths.run_dir.join(format!("{}.ref", home.name)));
        lock(&self.homes).remove(&home.name);
        self.unpublish(&home.name);
        Ok(())
    }

    /// RegisterHome: stores a record without making storage.
    pub async fn register(&self, caller: Caller, text: &str) -> EngineResult<Arc<Home>> {
        Self::require_root(caller)?;
        let record = UserRecord::parse(text.as_bytes(), RecordOrigin::Host)
            .map_err(|e| EngineError::InvalidArgs(format!("Failed to parse user record: {e}")))?;
        if record.json().contains_key("binding") || record.json().contains_key("status") {
            return Err(EngineError::InvalidArgs(
                "User record carries binding or status data, refusing.".into(),
            ));
        }
        let mut record = record.embedded_copy();
        self.prepare_new(&mut record)?;
        let signed_locally = self.sign_or_check(&mut record)?;
        self.store
            .save(&record)
            .map_err(|e| EngineError::Failed(format!("Failed to write the record: {e}")))?;
        Ok(self.insert_home(record, signed_locally))
    }

    /// UnregisterHome: forgets the record, leaves the storage.
    pub async fn unregister(&self, caller: Caller, name: &str) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let _guard = self.begin(&home).await?;
        if self.is_active(&home) {
            return Err(EngineError::HomeBusy(format!(
                "Home {} is currently being used.",
                home.name
            )));
        }
        self.forget(&home)
    }

    /// RealizeHome: makes the storage of a registered home.
    pub async fn realize(&self, caller: Caller, name: &str, secret: &Secret) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let _guard = self.begin(&home).await?;
        let record = self.record(&home);
        self.create_storage(&record, secret).await
    }

    /// Writes the embedded copy of the host record into the home.
    async fn propagate(&self, home: &Home) -> EngineResult<()> {
        let record = self.record(home);
        self.ids(&record)?;
        if std::fs::symlink_metadata(self.image_path(&record)).is_err() {
            return Ok(());
        }
        self.work(
            &home.name,
            WorkRequest::WriteIdentity(self.spec(&record)),
            None,
        )
        .await
        .map(|_| ())
    }

    /// ChangePasswordHome.
    pub async fn change_password(
        &self,
        caller: Caller,
        name: &str,
        new_secret: &Secret,
        old_secret: &Secret,
    ) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        self.require_root_or_owner(&home, caller)?;
        let guard = self.begin(&home).await?;
        let result = async {
            if !lock(&home.data).signed_locally {
                return Err(AuthError::Now(EngineError::RecordSigned(format!(
                    "Home {} is signed and cannot be modified locally.",
                    home.name
                ))));
            }
            if lock(&home.data).locked {
                return Err(AuthError::Now(EngineError::HomeLocked(format!(
                    "Home {} is currently locked.",
                    home.name
                ))));
            }
            let keyed = self.capabilities(&home).keyed;
            if keyed {
                self.check_keyed_passwd_possible(&home)?;
            }
            self.authenticate_locked(&home, old_secret).await?;
            if new_secret.passwords().is_empty() {
                return self.propagate(&home).await.map_err(AuthError::Now);
            }
            // Each new password becomes a hash that every later login checks: a change sets a
            // few at most, and hashing (slow on purpose) runs off the engine's threads.
            if new_secret.passwords().len() > MAX_NEW_PASSWORDS {
                return Err(AuthError::Now(EngineError::InvalidArgs(format!(
                    "At most {MAX_NEW_PASSWORDS} new passwords may be set at once."
                ))));
            }
            let mut record = self.record(&home);
            let new_passwords = owned_passwords(new_secret);
            let hashed = tokio::task::spawn_blocking(move || {
                new_passwords
                    .iter()
                    .map(|p| hash_password(p).map(Value::String))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| AuthError::Now(EngineError::Failed(format!("hashing failed: {e}"))))?;
            let hashes = hashed.map_err(|e| {
                AuthError::Now(EngineError::InvalidArgs(format!(
                    "Failed to hash password: {e}"
                )))
            })?;
            let previous = record.view(&self.machine).last_change_usec().unwrap_or(0);
            let now = now_usec().max(previous + 1);
            {
                let json = record.json_mut();
                let privileged = json
                    .entry("privileged")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(p) = privileged {
                    p.insert("hashedPassword".into(), Value::Array(hashes));
                }
                json.insert("lastChangeUSec".into(), json!(now));
                json.insert("lastPasswordChangeUSec".into(), json!(now));
            }
            self.sign_locally(&mut record)?;
            if keyed {
                return self
                    .change_keyed_passwords(&home, record, new_secret, old_secret)
                    .await;
            }
            self.save_record(&home, record)?;
            self.publish(&home);
            self.propagate(&home).await?;
            Ok(())
        }
        .await;
        // The bad-password delay runs while the home's operation is still held: failed
        // guesses at one home take their turn, however many callers send them at once.
        let result = reported(result).await;
        drop(guard);
        result
    }

    /// A password change of a keyed home rebuilds the keys from the new passwords alone:
    /// refused where the record has keys of other kinds (security tokens, recovery keys) that
    /// it would drop.
    fn check_keyed_passwd_possible(&self, home: &Home) -> EngineResult<()> {
        let record = self.record(home);
        let privileged = record.json().get("privileged");
        for field in ["pkcs11EncryptedKey", "fido2HmacSalt", "recoveryKey"] {
            let used = privileged
                .and_then(|p| p.get(field))
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            if used {
                return Err(EngineError::NotSupported(format!(
                    "Home {} has {field} keyslots, which a password change by this daemon would drop; refusing.",
                    home.name
                )));
            }
        }
        Ok(())
    }

    /// The password change of a home whose keys live in its storage (a LUKS home's keyslots),
    /// ordered so that one password opens the home at every step: keyslots for the new passwords beside the old ones (worker), the new host record
    /// (here), then the old keyslots wiped and the new record written into the header token
    /// and `~/.identity` (worker). Interrupted before the host record is saved, the old
    /// password opens the home; after it, the new one, and the next activation brings the
    /// header token and `~/.identity` up to the host record. The caller holds the operation
    /// lock, has checked `old_secret` and signed `record`.
    async fn change_keyed_passwords(
        &self,
        home: &Home,
        record: UserRecord,
        new_secret: &Secret,
        old_secret: &Secret,
    ) -> Result<(), AuthError> {
        let current = self.record(home);
        let active = self.is_active(home);
        self.ids(&record)?;
        self.set_transient(
            home,
            Some(if active {
                "passwd-while-active"
            } else {
                "passwd"
            }),
        );
        let result = async {
            let both = Secret::with_passwords(
                new_secret
                    .passwords()
                    .iter()
                    .chain(old_secret.passwords())
                    .map(|p| secrecy::SecretString::from(p.expose_secret().to_owned()))
                    .collect(),
            );
            let mut spec = self.spec(&current);
            spec.active = active;
            let request = WorkRequest::AddKeys(AddKeys {
                spec,
                new_passwords: new_secret.passwords().len(),
            });
            let slots = match self.work(&home.name, request, Some(&both)).await {
                Err(e @ EngineError::BadPassword(_)) => return Err(AuthError::Delayed(Delayed(e))),
                other => other?.reply,
            };
            drop(both);
            self.save_record(home, record)?;
            self.publish(home);
            crashpoint::reached(KeyChangeStep::AfterHostRecord);
            let saved = self.record(home);
            let mut spec = self.spec(&saved);
            spec.active = active;
            let request = WorkRequest::RetireKeys(RetireKeys {
                spec,
                old_keyslots: slots.old_keyslots.unwrap_or_default(),
                new_keyslots: slots.new_keyslots.unwrap_or_default(),
            });
            self.work(&home.name, request, Some(new_secret))
                .await
                .map_err(|e| {
                    EngineError::Failed(format!(
                        "The password of home {} is changed, but finishing the change inside the home failed (the next activation brings its copies of the record up to date): {e}",
                        home.name
                    ))
                })?;
            Ok(())
        }
        .await;
        self.set_transient(home, None);
        result
    }

    /// UpdateHome: a newer record for an existing home; v252 asks for the secret too.
    pub async fn update(&self, caller: Caller, text: &str) -> EngineResult<()> {
        let (mut incoming, secret) = Self::parse_request(text)?;
        let home = self.find(incoming.user_name(), caller)?;
        Self::require_root(caller)?;
        check_suitable_for_homed(&incoming.view(&self.machine), false).map_err(|e| {
            EngineError::InvalidArgs(format!("Refusing to manage this user record: {e}"))
        })?;
        let guard = self.begin(&home).await?;
        let result = async {
            let current = self.record(&home);
            if incoming.realm() != current.realm() {
                return Err(AuthError::Now(EngineError::RecordMismatch(
                    "Home record different from current record, refusing.".into(),
                )));
            }
            let (old_lc, new_lc) = (
                current.view(&self.machine).last_change_usec(),
                incoming.view(&self.machine).last_change_usec(),
            );
            if new_lc < old_lc {
                return Err(AuthError::Now(EngineError::RecordDowngrade(
                    "Home record older than current record, refusing.".into(),
                )));
            }
            if new_lc == old_lc && incoming.signed_text() != current.signed_text() {
                return Err(AuthError::Now(EngineError::RecordMismatch(
                    "Home record different but timestamp remained the same, refusing.".into(),
                )));
            }
            let signed_locally = if incoming.is_unsigned() {
                if !lock(&home.data).signed_locally {
                    return Err(AuthError::Now(EngineError::RecordSigned(format!(
                        "Home {} is signed and cannot be modified locally.",
                        home.name
                    ))));
                }
                self.sign_locally(&mut incoming)?;
                true
            } else {
                self.sign_or_check(&mut incoming)?
            };
            self.authenticate_locked(&home, &secret).await?;
            for section in ["binding", "status"] {
                if let Some(v) = current.json().get(section) {
                    incoming.json_mut().insert(section.into(), v.clone());
                }
            }
            self.save_record(&home, incoming)?;
            lock(&home.data).signed_locally = signed_locally;
            self.publish(&home);
            self.propagate(&home).await?;
            Ok(())
        }
        .await;
        // The bad-password delay runs while the home's operation is still held: failed
        // guesses at one home take their turn, however many callers send them at once.
        let result = reported(result).await;
        drop(guard);
        result
    }

    /// AcquireHome: authenticates (activating the home if needed) and returns a reference.
    pub async fn acquire(
        self: &Arc<Self>,
        caller: Caller,
        name: &str,
        secret: &Secret,
        please_suspend: bool,
    ) -> EngineResult<OwnedFd> {
        let home = self.find(name, caller)?;
        let guard = self.begin(&home).await?;
        let result = async {
            match self.state(&home).as_str() {
                "absent" => {
                    return Err(AuthError::Now(EngineError::HomeAbsent(format!(
                        "Home {} is currently missing or not plugged in.",
                        home.name
                    ))));
                }
                "active" | "lingering" => {
                    self.authenticate_locked(&home, secret).await?;
                }
                "locked" => {
                    self.authenticate_locked(&home, secret).await?;
                    self.unlock_locked(&home, secret).await?;
                }
                "unfixated" => {
                    self.fixate_locked(&home, secret).await?;
                    self.activate_locked(&home, secret).await?;
                }
                _ => {
                    self.authenticate_locked(&home, secret).await?;
                    self.activate_locked(&home, secret).await?;
                }
            }
            lock(&home.data).lingering = false;
            self.new_ref(&home, please_suspend).map_err(AuthError::Now)
        }
        .await;
        // The bad-password delay runs while the home's operation is still held: failed
        // guesses at one home take their turn, however many callers send them at once.
        let result = reported(result).await;
        drop(guard);
        result
    }

    /// RefHome: a reference to an active home (root only).
    pub async fn ref_home(
        self: &Arc<Self>,
        caller: Caller,
        name: &str,
        please_suspend: bool,
    ) -> EngineResult<OwnedFd> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let _guard = self.begin(&home).await?;
        match self.state(&home).as_str() {
            "absent" => Err(EngineError::HomeAbsent(format!(
                "Home {} is currently missing or not plugged in.",
                home.name
            ))),
            "active" | "lingering" => {
                lock(&home.data).lingering = false;
                self.new_ref(&home, please_suspend)
            }
            _ => Err(EngineError::HomeNotActive(format!(
                "Home {} is currently not active.",
                home.name
            ))),
        }
    }

    /// ReleaseHome: deactivates the home unless it is still referenced.
    pub async fn release(&self, caller: Caller, name: &str) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let _guard = self.begin(&home).await?;
        {
            let d = lock(&home.data);
            if d.please.is_some() || d.dont.is_some() {
                return Err(EngineError::HomeBusy(format!(
                    "Home {} is currently referenced.",
                    home.name
                )));
            }
        }
        if self.is_active(&home) {
            self.deactivate_locked(&home).await?;
        }
        Ok(())
    }

    fn watch_fifo(self: &Arc<Self>, home: &Arc<Home>, kind: RefKind) -> std::io::Result<()> {
        let path = kind.fifo_path(&self.paths.run_dir, &home.name);
        let reader = Arc::new(refs::open_reader(&path)?);
        let generation = self.next_generation();
        let engine = Arc::clone(self);
        let name = home.name.clone();
        let watched = reader.clone();
        let watcher = tokio::spawn(async move {
            loop {
                watched.wait_hangup().await;
                if engine.clone().on_hangup(&name, kind, generation).await {
                    break;
                }
            }
        });
        let slot = RefSlot {
            reader,
            generation,
            watcher,
        };
        let mut d = lock(&home.data);
        match kind {
            RefKind::PleaseSuspend => d.please = Some(slot),
            RefKind::DontSuspend => d.dont = Some(slot),
        }
        Ok(())
    }

    fn new_ref(self: &Arc<Self>, home: &Home, please_suspend: bool) -> EngineResult<OwnedFd> {
        let kind = if please_suspend {
            RefKind::PleaseSuspend
        } else {
            RefKind::DontSuspend
        };
        let home = self.lookup(&home.name).ok_or_else(|| {
            EngineError::NoSuchHome(format!("No home for user {} known", home.name))
        })?;
        let have = {
            let d = lock(&home.data);
            match kind {
                RefKind::PleaseSuspend => d.please.is_some(),
                RefKind::DontSuspend => d.dont.is_some(),
            }
        };
        let failed = |e: std::io::Error| {
            EngineError::Failed(format!("Failed to create the reference FIFO: {e}"))
        };
        if !have {
            self.watch_fifo(&home, kind).map_err(failed)?;
        }
        refs::open_writer(&kind.fifo_path(&self.paths.run_dir, &home.name)).map_err(failed)
    }

    /// The last writer of a reference FIFO closed: drop that reference, and when none is left
    /// deactivate the home, retrying every 15 s while it is busy (state `lingering`).
    async fn on_hangup(self: Arc<Self>, name: &str, kind: RefKind, generation: u64) -> bool {
        let Some(home) = self.lookup(name) else {
            return true;
        };
        let mut first = true;
        loop {
            {
                // Under the operation lock, so that an AcquireHome handing out a new write end
                // of this FIFO is either before (and the hangup is gone) or after (and finds no
                // reference, making a new FIFO).
                let Ok(_guard) = self.begin(&home).await else {
                    return true;
                };
                if first {
                    first = false;
                    let mut d = lock(&home.data);
                    let slot = match kind {
                        RefKind::PleaseSuspend => &mut d.please,
                        RefKind::DontSuspend => &mut d.dont,
                    };
                    match slot {
                        Some(s) if s.generation == generation => {
                            if !s.reader.is_hung_up() {
                                // A new reference arrived meanwhile: keep watching.
                                return false;
                            }
                        }
                        _ => return true,
                    }
                    // This task is the slot's watcher: drop the slot without aborting it.
                    drop(slot.take());
                    drop(d);
                    let _ = std::fs::remove_file(kind.fifo_path(&self.paths.run_dir, name));
                }
                {
                    let d = lock(&home.data);
                    if d.please.is_some() || d.dont.is_some() {
                        return true;
                    }
                }
                if !self.is_active(&home) {
                    lock(&home.data).lingering = false;
                    return true;
                }
                match self.deactivate_locked(&home).await {
                    Ok(()) => {
                        eprintln!("{name}: last reference closed, home deactivated");
                        return true;
                    }
                    Err(EngineError::HomeBusy(_)) => {
                        eprintln!("{name}: home busy, retrying deactivation in 15 s");
                        lock(&home.data).lingering = true;
                    }
                    Err(e) => {
                        eprintln!("{name}: deactivation failed: {e}");
                        return true;
                    }
                }
            }
            tokio::time::sleep(RETRY_DEACTIVATE).await;
            if !lock(&home.data).lingering {
                return true;
            }
        }
    }

    /// LockHome (root only): suspends an active LUKS home.
    pub async fn lock_home(&self, caller: Caller, name: &str) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let _guard = self.begin(&home).await?;
        if lock(&home.data).locked {
            return Err(EngineError::HomeLocked(format!(
                "Home {} is currently locked.",
                home.name
            )));
        }
        if !self.is_active(&home) {
            return Err(EngineError::HomeNotActive(format!(
                "Home {} is not active.",
                home.name
            )));
        }
        if !self.capabilities(&home).lockable {
            return Err(EngineError::NotSupported(format!(
                "Home {} does not support locking.",
                home.name
            )));
        }
        self.lock_locked(&home).await
    }

    /// UnlockHome: resumes a locked home with the secret.
    pub async fn unlock_home(
        &self,
        caller: Caller,
        name: &str,
        secret: &Secret,
    ) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let guard = self.begin(&home).await?;
        if !lock(&home.data).locked {
            return Err(EngineError::HomeNotLocked(format!(
                "Home {} is not locked.",
                home.name
            )));
        }
        let result = async {
            self.authenticate_locked(&home, secret).await?;
            self.unlock_locked(&home, secret).await
        }
        .await;
        // The bad-password delay runs while the home's operation is still held: failed
        // guesses at one home take their turn, however many callers send them at once.
        let result = reported(result).await;
        drop(guard);
        result
    }

    /// FixateHome (root only).
    pub async fn fixate(&self, caller: Caller, name: &str, secret: &Secret) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        let guard = self.begin(&home).await?;
        let result = async {
            if !self.is_unfixated(&home) {
                return Err(AuthError::Now(EngineError::HomeAlreadyFixated(format!(
                    "Home {} is already fixated.",
                    home.name
                ))));
            }
            self.fixate_locked(&home, secret).await
        }
        .await;
        // The bad-password delay runs while the home's operation is still held: failed
        // guesses at one home take their turn, however many callers send them at once.
        let result = reported(result).await;
        drop(guard);
        result
    }

    pub async fn resize(
        &self,
        caller: Caller,
        name: &str,
        _size: u64,
        _secret: &Secret,
    ) -> EngineResult<()> {
        let home = self.find(name, caller)?;
        Self::require_root(caller)?;
        Err(EngineError::NotSupported(format!(
            "Home {} is on directory storage, which has no size to change.",
            home.name
        )))
    }

    pub async fn rebalance(&self, caller: Caller) -> EngineResult<()> {
        Self::require_root(caller)?;
        Err(EngineError::RebalanceNotNeeded(
            "No home needs rebalancing.".into(),
        ))
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
                    && self.state(h) != "absent"
            })
            .map(|h| h.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests;
