//! Fixation through the scripted worker: a home found in the home root without a host record
//! gets its own record as host record, checked once, within the rate limit.

use homed_shared::password::hash_password;
use homed_shared::signing::sign_record;
use homed_shared::{RecordOrigin, UserRecord};
use secrecy::SecretString;
use serde_json::json;

use super::fakes::{Act, FakeWorker};
use super::{Fixture, MID, password};
use crate::engine::{Caller, EngineError};

/// The record inside `fuser`'s found home, signed by the machine's key.
fn found_record(fixture: &Fixture) -> UserRecord {
    let hash = hash_password(&SecretString::from("Found-pw-1".to_owned())).unwrap();
    let mut record = UserRecord::from_value(
        json!({
            "userName": "fuser",
            "disposition": "regular",
            "storage": "directory",
            "lastChangeUSec": 1_700_000_000_000_000u64,
            "privileged": {"hashedPassword": [hash]},
        }),
        RecordOrigin::Embedded,
    )
    .unwrap();
    sign_record(&mut record, &fixture.key);
    record
}

fn found_home(fixture: &Fixture) {
    std::fs::create_dir_all(format!("{}/fuser.homedir", fixture.paths.home_root)).unwrap();
}

#[tokio::test]
async fn a_found_home_is_fixated_and_activated_with_one_hash_check_and_one_write() {
    let fixture = Fixture::new();
    found_home(&fixture);
    let inspected = json!({"ok": true, "identity": found_record(&fixture).to_pretty_string()});
    let worker = FakeWorker::new(vec![
        ("inspect", Act::Reply(inspected)),
        ("activate", Act::Reply(json!({"ok": true}))),
    ]);
    let engine = fixture.engine_with(worker.clone());
    let home = engine.lookup("fuser").unwrap();
    assert_eq!(engine.state(&home), "unfixated");
    let writes = engine.store.writes();
    engine
        .activate(Caller::ROOT, "fuser", &password("Found-pw-1"))
        .await
        .unwrap();
    assert_eq!(engine.hash_checks(), 1);
    assert_eq!(engine.store.writes() - writes, 1);
    let text = std::fs::read(fixture.paths.record_dir.join("fuser.identity")).unwrap();
    let saved = UserRecord::parse(&text, RecordOrigin::Host).unwrap();
    let status = &saved.json()["status"][MID];
    assert_eq!(status["goodAuthenticationCounter"], 1);
    assert_eq!(status["rateLimitCount"], 1);
    let requests = worker.requests();
    assert_eq!(requests[0]["op"], "inspect");
    assert_eq!(requests[0]["secret"]["password"], json!(["Found-pw-1"]));
    assert_eq!(requests[1]["op"], "activate");
}

#[tokio::test]
async fn a_wrong_password_fixates_nothing_and_counts_in_memory() {
    let fixture = Fixture::new();
    found_home(&fixture);
    let inspected = json!({"ok": true, "identity": found_record(&fixture).to_pretty_string()});
    let worker = FakeWorker::new(vec![("inspect", Act::Reply(inspected))]);
    let engine = fixture.engine_with(worker);
    let err = engine
        .fixate(Caller::ROOT, "fuser", &password("wrong"))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::BadPassword(_)), "{err:?}");
    assert!(!fixture.paths.record_dir.join("fuser.identity").exists());
    let home = engine.lookup("fuser").unwrap();
    assert_eq!(engine.state(&home), "unfixated");
    let record = engine.record(&home);
    let status = &record.json()["status"][MID];
    assert_eq!(status["rateLimitCount"], 1);
    assert_eq!(status["badAuthenticationCounter"], 1);
}
