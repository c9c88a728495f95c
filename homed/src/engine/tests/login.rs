//! Logins through the scripted worker: what the engine asks of storage, how often it checks a
//! password hash, and how often it writes the host record.

use homed_shared::password::hash_password;
use homed_shared::signing::sign_record;
use homed_shared::{RecordOrigin, UserRecord};
use secrecy::SecretString;
use serde_json::json;

use super::fakes::{Act, FakeWorker};
use super::{Fixture, UID, password};
use crate::engine::{Caller, EngineError};

#[tokio::test]
async fn a_good_login_checks_one_hash_and_writes_the_host_record_once() {
    let fixture = Fixture::new();
    let worker = FakeWorker::new(vec![("activate", Act::Reply(json!({"ok": true})))]);
    let engine = fixture.engine_with(worker.clone());
    let writes = engine.store.writes();
    engine
        .activate(Caller::ROOT, "tuser", &password("Right-pw-1"))
        .await
        .unwrap();
    assert_eq!(engine.store.writes() - writes, 1);
    assert_eq!(engine.hash_checks(), 1);
    let status = fixture.host_status();
    assert_eq!(status["goodAuthenticationCounter"], 1);
    assert_eq!(status["rateLimitCount"], 1);
    // One request describes the home, and carries the secret for the reconcile.
    let request = &worker.requests()[0];
    assert_eq!(request["op"], "activate");
    assert_eq!(request["storage"], "directory");
    assert_eq!(request["uid"], UID);
    assert_eq!(request["secret"]["password"], json!(["Right-pw-1"]));
    assert!(request["record"].as_str().unwrap().contains("\"tuser\""));
}

#[tokio::test]
async fn an_activation_with_a_newer_embedded_copy_checks_each_copy_once() {
    let fixture = Fixture::new();
    // The worker's reconcile adopted a newer copy (it checked that copy's hash itself): the
    // engine checks the host record's hash, the copy's signature, and saves it.
    let hash = hash_password(&SecretString::from("Right-pw-1".to_owned())).unwrap();
    let mut newer = UserRecord::from_value(
        json!({
            "userName": "tuser",
            "disposition": "regular",
            "storage": "directory",
            "realName": "Newer Name",
            "rateLimitBurst": 3,
            "lastChangeUSec": 1_800_000_000_000_000u64,
            "privileged": {"hashedPassword": [hash]},
        }),
        RecordOrigin::Embedded,
    )
    .unwrap();
    sign_record(&mut newer, &fixture.key);
    let reply = json!({"ok": true, "identity": newer.to_pretty_string()});
    let worker = FakeWorker::new(vec![("activate", Act::Reply(reply))]);
    let engine = fixture.engine_with(worker);
    let writes = engine.store.writes();
    engine
        .activate(Caller::ROOT, "tuser", &password("Right-pw-1"))
        .await
        .unwrap();
    assert_eq!(engine.hash_checks(), 1);
    // The attempt, then the adopted record.
    assert_eq!(engine.store.writes() - writes, 2);
    let home = engine.lookup("tuser").unwrap();
    assert_eq!(engine.record(&home).json()["realName"], "Newer Name");
}

#[tokio::test]
async fn a_newer_embedded_copy_not_signed_by_a_trusted_key_is_refused() {
    let fixture = Fixture::new();
    let stranger = homed_shared::signing::SigningKey::generate().unwrap();
    let mut newer = UserRecord::from_value(
        json!({
            "userName": "tuser",
            "disposition": "regular",
            "lastChangeUSec": 1_800_000_000_000_000u64,
        }),
        RecordOrigin::Embedded,
    )
    .unwrap();
    sign_record(&mut newer, &stranger);
    let reply = json!({"ok": true, "identity": newer.to_pretty_string()});
    // Refused after the mount: the engine takes the home down again.
    let worker = FakeWorker::new(vec![
        ("activate", Act::Reply(reply)),
        ("deactivate", Act::Reply(json!({"ok": true}))),
    ]);
    let engine = fixture.engine_with(worker);
    let err = engine
        .activate(Caller::ROOT, "tuser", &password("Right-pw-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::BadSignature(_)), "{err:?}");
    let home = engine.lookup("tuser").unwrap();
    assert!(engine.record(&home).json().get("realName").is_none());
}

#[tokio::test]
async fn a_worker_killed_during_activation_leaves_the_home_inactive() {
    let fixture = Fixture::new();
    let worker = FakeWorker::new(vec![("activate", Act::Die)]);
    let engine = fixture.engine_with(worker);
    let err = engine
        .activate(Caller::ROOT, "tuser", &password("Right-pw-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Failed(_)), "{err:?}");
    assert_eq!(engine.list()[0].state, "inactive");
    // The attempt was counted all the same.
    assert_eq!(fixture.host_status()["rateLimitCount"], 1);
}

#[tokio::test]
async fn a_wrong_password_reaches_no_storage() {
    let fixture = Fixture::new();
    let engine = fixture.engine_with(FakeWorker::idle());
    let writes = engine.store.writes();
    let err = engine
        .activate(Caller::ROOT, "tuser", &password("wrong"))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::BadPassword(_)), "{err:?}");
    assert_eq!(engine.store.writes() - writes, 1);
    assert_eq!(fixture.host_status()["badAuthenticationCounter"], 1);
}
