//! The machine the engine tests run on: the daemon's folders in a temporary directory, and a
//! host record signed by a machine key made there.

use std::path::Path;

use homed_shared::password::hash_password;
use homed_shared::signing::{SigningKey, sign_record};
use homed_shared::{RecordOrigin, UserRecord};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use crate::engine::Paths;
use crate::engine::store::RecordStore;

/// The daemon's folders below `base`, with the record and home folders made.
pub fn paths_in(base: &Path) -> Paths {
    let paths = Paths {
        record_dir: base.join("records"),
        home_root: base.join("home").to_string_lossy().into_owned(),
        run_dir: base.join("run"),
        publish_dir: base.join("publish"),
        key_dirs: vec![base.join("records")],
        key_owner: nix::unistd::geteuid().as_raw(),
    };
    std::fs::create_dir_all(&paths.record_dir).unwrap();
    std::fs::create_dir_all(&paths.home_root).unwrap();
    paths
}

/// Saves the host record `fields` + a hash of `password`, bound to machine `mid` with
/// `binding`, signed by a new machine key (returned).
pub fn save_host_record(
    paths: &Paths,
    mid: &str,
    mut fields: Value,
    password: &str,
    binding: Value,
) -> SigningKey {
    let store = RecordStore::new(paths.record_dir.clone());
    let key = store.create_signing_key().unwrap();
    let hash = hash_password(&SecretString::from(password.to_owned())).unwrap();
    fields["privileged"] = json!({"hashedPassword": [hash]});
    let mut record = UserRecord::from_value(fields, RecordOrigin::Host).unwrap();
    sign_record(&mut record, &key);
    let binding: Map<String, Value> = serde_json::from_value(binding).unwrap();
    record.set_binding(mid, binding);
    store.save(&record).unwrap();
    key
}
