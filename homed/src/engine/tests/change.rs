//! The daemon's side of a LUKS password change, driven without a bus and without dm-crypt: the
//! scripted worker records the requests and answers or dies as told. The order under test: the
//! keyslots for the new password first (with the old one to open the volume), the host record
//! only after them, the rest of the change in the home last.

use std::sync::Arc;

use homed_shared::password::verify_password;
use homed_shared::record::Secret;
use homed_shared::{MachineContext, RecordOrigin, UserRecord};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::fakes::{Act, FakeWorker};
use super::host::{paths_in, save_host_record};
use crate::engine::{Caller, Engine, EngineError, Paths, SleepMode};

const MID: &str = "0123456789abcdef0123456789abcdef";
const UID: u32 = 60150;
const OLD: &str = "Luks-old-pw-1";
const NEW: &str = "Luks-new-pw-2";

struct Fixture {
    _tmp: tempfile::TempDir,
    paths: Paths,
    worker: Arc<FakeWorker>,
}

impl Fixture {
    fn new(keyslots: Act, record: Act) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let paths = paths_in(tmp.path());
        // The second step comes only when the first one replied.
        let mut script = vec![("passwd-keyslots", keyslots)];
        if matches!(&script[0].1, Act::Reply(r) if r["ok"] == true) {
            script.push(("passwd-record", record));
        }
        let worker = FakeWorker::new(script);
        save_host_record(
            &paths,
            MID,
            json!({
                "userName": "luser",
                "disposition": "regular",
                "storage": "luks",
                "lastChangeUSec": 1_700_000_000_000_000u64,
                "lastPasswordChangeUSec": 1_700_000_000_000_000u64,
            }),
            OLD,
            json!({
                "uid": UID,
                "gid": UID,
                "storage": "luks",
                "imagePath": format!("{}/luser.home", paths.home_root),
            }),
        );
        Fixture {
            _tmp: tmp,
            paths,
            worker,
        }
    }

    fn engine(&self) -> Arc<Engine> {
        Engine::load(
            MachineContext::new(MID, None),
            self.paths.clone(),
            self.worker.clone(),
            SleepMode::Systemd,
        )
    }

    /// A restarted daemon: it has no work to do.
    fn restarted(&self) -> Arc<Engine> {
        Engine::load(
            MachineContext::new(MID, None),
            self.paths.clone(),
            FakeWorker::idle(),
            SleepMode::Systemd,
        )
    }

    /// The requests the scripted worker got, in order.
    fn requests(&self) -> Vec<Value> {
        self.worker.requests()
    }

    /// Which of the two passwords the saved host record takes.
    fn host_takes(&self) -> (bool, bool) {
        takes(&std::fs::read_to_string(self.paths.record_dir.join("luser.identity")).unwrap())
    }
}

/// Which of the two passwords the record `text` takes.
fn takes(text: &str) -> (bool, bool) {
    let record = UserRecord::parse(text.as_bytes(), RecordOrigin::Host).unwrap();
    let hashes = record.json()["privileged"]["hashedPassword"].clone();
    let hashes: Vec<String> = serde_json::from_value(hashes).unwrap();
    let check = |p: &str| {
        let p = SecretString::from(p.to_owned());
        hashes.iter().any(|h| verify_password(&p, h))
    };
    (check(OLD), check(NEW))
}

fn password(p: &str) -> Secret {
    Secret::with_passwords(vec![SecretString::from(p.to_owned())])
}

fn slots_reply() -> Act {
    Act::Reply(json!({"ok": true, "oldKeyslots": [0], "newKeyslots": [1]}))
}

fn record_of(request: &Value) -> &str {
    request["record"].as_str().unwrap()
}

async fn change(engine: &Engine) -> Result<(), EngineError> {
    engine
        .change_password(Caller::ROOT, "luser", &password(NEW), &password(OLD))
        .await
}

#[tokio::test]
async fn keyslots_first_then_the_host_record_then_the_home() {
    let fixture = Fixture::new(slots_reply(), Act::Reply(json!({"ok": true})));
    let engine = fixture.engine();
    change(&engine).await.unwrap();
    let requests = fixture.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");

    // First: keyslots for the new password, the volume opened with the old one; the host
    // record sent along is still the old one.
    let first = &requests[0];
    assert_eq!(first["op"], "passwd-keyslots");
    assert_eq!(first["secret"]["password"], json!([NEW, OLD]));
    assert_eq!(first["newPasswords"], 1);
    assert_eq!(first["active"], false);
    assert_eq!(takes(record_of(first)), (true, false));

    // Then the rest in the home, with the new record and the new password alone, retiring the
    // keyslots the first step found and keeping the one it added.
    let second = &requests[1];
    assert_eq!(second["op"], "passwd-record");
    assert_eq!(second["secret"]["password"], json!([NEW]));
    assert_eq!(second["oldKeyslots"], json!([0]));
    assert_eq!(second["newKeyslots"], json!([1]));
    assert_eq!(
        (second["uid"].clone(), second["gid"].clone()),
        (json!(UID), json!(UID))
    );
    assert_eq!(takes(record_of(second)), (false, true));
    assert_eq!(fixture.host_takes(), (false, true));
}

#[tokio::test]
async fn a_worker_killed_while_adding_keyslots_leaves_the_old_password() {
    let fixture = Fixture::new(Act::Die, Act::Reply(json!({"ok": true})));
    let engine = fixture.engine();
    let err = change(&engine).await.unwrap_err();
    assert!(matches!(err, EngineError::Failed(_)), "{err:?}");
    assert_eq!(fixture.requests().len(), 1);
    assert_eq!(fixture.host_takes(), (true, false));
    // A restarted daemon reads the same record.
    let again = fixture.restarted();
    let record = again.record(&again.lookup("luser").unwrap());
    assert_eq!(takes(&record.to_compact_string()), (true, false));
}

#[tokio::test]
async fn a_worker_killed_after_the_host_record_leaves_the_new_password() {
    let fixture = Fixture::new(slots_reply(), Act::Die);
    let engine = fixture.engine();
    let err = change(&engine).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::Failed(m) if m.contains("is changed")),
        "{err:?}"
    );
    assert_eq!(fixture.requests().len(), 2);
    assert_eq!(fixture.host_takes(), (false, true));
}

#[tokio::test]
async fn a_refused_first_step_changes_nothing() {
    let refused = json!({"ok": false, "errno": libc::EADDRINUSE, "message": "in use"});
    let fixture = Fixture::new(Act::Reply(refused), Act::Reply(json!({"ok": true})));
    let engine = fixture.engine();
    let err = change(&engine).await.unwrap_err();
    assert!(matches!(err, EngineError::HomeBusy(_)), "{err:?}");
    assert_eq!(fixture.requests().len(), 1);
    assert_eq!(fixture.host_takes(), (true, false));
}
