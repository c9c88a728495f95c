//! Homes found in the home root without a host record, and active homes picked up again after
//! a restart.

use std::sync::{Arc, Mutex};

use homed_shared::{RecordOrigin, UserRecord};
use serde_json::{Map, Value, json};

use crate::engine::refs::RefKind;
use crate::engine::{Engine, Home, HomeData, lock, refs, uid};
use crate::worker::backend;

impl Engine {
    /// Discovery (homed-spec §3.1): `/home/NAME.homedir` directories and `/home/NAME.home`
    /// images without a host record become `unfixated` homes with a synthesized, unsigned record
    /// (never published) until FixateHome, ActivateHome or AcquireHome checks their own record.
    pub(crate) fn discover(&self) {
        let Ok(entries) = std::fs::read_dir(&self.paths.home_root) else {
            return;
        };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            let Some((base, suffix)) =
                backend::all()
                    .iter()
                    .filter(|k| k.has_image())
                    .find_map(|k| {
                        file.strip_suffix(k.image_suffix())
                            .map(|b| (b, k.image_suffix()))
                    })
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
            let path = entry.path();
            let Some(kind) = backend::all()
                .iter()
                .find(|k| k.image_suffix() == suffix && k.recognises(&path, &meta))
            else {
                continue;
            };
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
}
