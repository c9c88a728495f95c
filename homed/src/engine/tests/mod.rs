//! The engine driven directly, without a bus: a home in a temporary folder, its host record
//! signed by a key made there.

use std::sync::Arc;
use std::time::Instant;

use homed_shared::record::Secret;
use homed_shared::{MachineContext, RecordOrigin, UserRecord};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::engine::{BAD_PASSWORD_DELAY, Caller, Engine, EngineError, Paths, SleepMode};
use fakes::FakeWorker;
use host::{paths_in, save_host_record};

mod change;
mod fakes;
mod fixate;
mod host;
mod login;

const MID: &str = "0123456789abcdef0123456789abcdef";
const UID: u32 = 60100;

struct Fixture {
    _tmp: tempfile::TempDir,
    paths: Paths,
    /// The machine's signing key, which signed the host record.
    key: homed_shared::signing::SigningKey,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let paths = paths_in(tmp.path());
        std::fs::create_dir_all(tmp.path().join("home/tuser.homedir")).unwrap();
        let key = save_host_record(
            &paths,
            MID,
            json!({
                "userName": "tuser",
                "disposition": "regular",
                "storage": "directory",
                "rateLimitBurst": 3,
                "lastChangeUSec": 1_700_000_000_000_000u64,
            }),
            "Right-pw-1",
            json!({
                "uid": UID,
                "gid": UID,
                "imagePath": format!("{}/tuser.homedir", paths.home_root),
            }),
        );
        Fixture {
            _tmp: tmp,
            paths,
            key,
        }
    }

    fn engine(&self) -> Arc<Engine> {
        self.engine_with(FakeWorker::idle())
    }

    /// The engine over a worker that expects a script.
    fn engine_with(&self, worker: Arc<FakeWorker>) -> Arc<Engine> {
        Engine::load(
            MachineContext::new(MID, None),
            self.paths.clone(),
            worker,
            SleepMode::Systemd,
        )
    }

    fn host_status(&self) -> Value {
        let text = std::fs::read(self.paths.record_dir.join("tuser.identity")).unwrap();
        let record = UserRecord::parse(&text, RecordOrigin::Host).unwrap();
        record.json()["status"][MID].clone()
    }
}

fn password(p: &str) -> Secret {
    Secret::with_passwords(vec![SecretString::from(p.to_owned())])
}

#[tokio::test]
async fn rate_limit_is_counted_in_the_host_record_and_survives_a_reload() {
    let fixture = Fixture::new();
    let engine = fixture.engine();
    assert_eq!(engine.list()[0].state, "inactive");
    for _ in 0..3 {
        engine
            .authenticate(Caller::ROOT, "tuser", &password("Right-pw-1"))
            .await
            .unwrap();
    }
    let hit = engine
        .authenticate(Caller::ROOT, "tuser", &password("Right-pw-1"))
        .await;
    assert!(
        matches!(hit, Err(EngineError::AuthenticationLimitHit(_))),
        "{hit:?}"
    );
    let status = fixture.host_status();
    assert_eq!(status["rateLimitCount"], 3);
    assert_eq!(status["goodAuthenticationCounter"], 3);
    // A new engine (a restarted daemon) reads the counters back.
    let again = fixture.engine();
    let hit = again
        .authenticate(Caller::ROOT, "tuser", &password("Right-pw-1"))
        .await;
    assert!(
        matches!(hit, Err(EngineError::AuthenticationLimitHit(_))),
        "{hit:?}"
    );
}

#[tokio::test]
async fn callers_see_and_do_what_contract_3_allows() {
    let fixture = Fixture::new();
    let engine = fixture.engine();
    let owner = Caller { uid: UID };
    let other = Caller { uid: 1234 };
    engine
        .authenticate(owner, "tuser", &password("Right-pw-1"))
        .await
        .unwrap();
    let denied = engine
        .authenticate(other, "tuser", &password("Right-pw-1"))
        .await;
    assert!(
        matches!(denied, Err(EngineError::AccessDenied(_))),
        "{denied:?}"
    );
    let denied = engine
        .activate(owner, "tuser", &password("Right-pw-1"))
        .await;
    assert!(
        matches!(denied, Err(EngineError::AccessDenied(_))),
        "{denied:?}"
    );
    let home = engine.lookup("tuser").unwrap();
    let (seen, incomplete) = engine.served_record(&home, other);
    assert!(incomplete && !seen.json().contains_key("privileged"));
    let (seen, incomplete) = engine.served_record(&home, owner);
    assert!(!incomplete && seen.json().contains_key("privileged"));
    assert_eq!(seen.json()["status"][MID]["service"], "io.systemd.Home");
    // The empty name means the caller's own home.
    assert_eq!(engine.find("", owner).unwrap().name, "tuser");
    assert!(matches!(
        engine.find("", other),
        Err(EngineError::NoSuchHome(_))
    ));
}

#[tokio::test]
async fn a_wrong_or_wrapped_secret_costs_the_bad_password_delay() {
    let fixture = Fixture::new();
    let engine = fixture.engine();
    // The wrapped form is not the wire format: it carries no password homed would read.
    let wrapped = Engine::parse_secret(r#"{"secret":{"password":["Right-pw-1"]}}"#).unwrap();
    let result = engine.authenticate(Caller::ROOT, "tuser", &wrapped).await;
    assert!(
        matches!(result, Err(EngineError::BadPassword(_))),
        "{result:?}"
    );
    let start = Instant::now();
    let result = engine
        .authenticate(Caller::ROOT, "tuser", &password("wrong"))
        .await;
    assert!(
        matches!(result, Err(EngineError::BadPassword(_))),
        "{result:?}"
    );
    assert!(start.elapsed() >= BAD_PASSWORD_DELAY);
    assert_eq!(fixture.host_status()["badAuthenticationCounter"], 1);
}

#[tokio::test]
#[ignore = "needs root: the NSS reader trusts only root-owned publications"]
async fn published_records_follow_the_homes() {
    let fixture = Fixture::new();
    let publish = fixture.paths.publish_dir.clone();
    std::fs::create_dir_all(&publish).unwrap();
    std::fs::write(publish.join("ghost.user"), "{}\n").unwrap();
    std::fs::write(publish.join("ghost.privileged"), "{}\n").unwrap();
    let engine = fixture.engine();
    assert!(publish.join("tuser.user").is_file());
    assert!(publish.join("tuser.privileged").is_file());
    assert!(!publish.join("ghost.user").exists());
    assert!(!publish.join("ghost.privileged").exists());
    // The published record verifies with the published key and carries the bound UID.
    let published = homed_shared::publish::Published::open(&publish).unwrap();
    let user = published.user("tuser").unwrap();
    assert_eq!(user.passwd.uid, UID);
    drop(engine);
}

/// The size in the host record's entry for this machine.
fn recorded_disk_size(fixture: &Fixture) -> Option<u64> {
    let text = std::fs::read(fixture.paths.record_dir.join("tuser.identity")).unwrap();
    let record = UserRecord::parse(&text, RecordOrigin::Host).unwrap();
    let machine = MachineContext::new(MID, None);
    record
        .view(&machine)
        .get("diskSize")
        .and_then(Value::as_u64)
}

#[tokio::test]
async fn resize_saves_the_size_only_after_the_storage_took_it() {
    let fixture = Fixture::new();
    let refused = json!({"ok": false, "errno": libc::ENOTTY,
        "message": "UID quota not available on /home/tuser.homedir."});
    let worker = FakeWorker::new(vec![
        ("resize", fakes::Act::Reply(refused)),
        ("resize", fakes::Act::Reply(json!({"ok": true}))),
        ("write-identity", fakes::Act::Reply(json!({"ok": true}))),
    ]);
    let engine = fixture.engine_with(worker.clone());
    let right = password("Right-pw-1");
    let e = engine
        .resize(Caller::ROOT, "tuser", 64 << 20, &right)
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::NotSupported(_)), "{e}");
    assert!(e.message().contains("UID quota not available"), "{e}");
    assert_eq!(
        recorded_disk_size(&fixture),
        None,
        "a refused resize changed the record"
    );

    engine
        .resize(Caller::ROOT, "tuser", 64 << 20, &right)
        .await
        .unwrap();
    assert_eq!(recorded_disk_size(&fixture), Some(64 << 20));
    let sent = worker.requests();
    assert_eq!(sent[1]["diskSize"], 64 << 20, "{}", sent[1]);

    // Bad input is refused before the storage is asked: no size at all, a size out of range,
    // a wrong password.
    let idle = fixture.engine();
    for (size, secret, want) in [
        (1024, &right, "out of acceptable range"),
        (u64::MAX >> 1, &right, "out of acceptable range"),
    ] {
        let e = idle
            .resize(Caller::ROOT, "tuser", size, secret)
            .await
            .unwrap_err();
        assert!(matches!(e, EngineError::BadHomeSize(_)), "{e}");
        assert!(e.message().contains(want), "{e}");
    }
    let e = idle
        .resize(Caller::ROOT, "tuser", 128 << 20, &password("Wrong-pw-1"))
        .await
        .unwrap_err();
    assert!(e.is_bad_password(), "{e}");
    assert_eq!(recorded_disk_size(&fixture), Some(64 << 20));
}
