//! Issue 6, acceptance 6 on the host (no device-mapper): the daemon's two worker operations of
//! a LUKS password change (`passwd-keyslots`, `passwd-record`) run as `homed worker` on a real
//! image over a loop device, killed by the debug builds' test hook `HOMED_TEST_KILL_AT` at the
//! steps that touch only the LUKS header. After each kill the image opens with the password the
//! daemon's host record then holds, and its header record is the old or the new one, whole.
//! (The steps around `~/.identity` need dm-crypt: vm-tests/daemon-passwd.sh.)

use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use homed_shared::UserRecord;
use homed_shared::signing::{SigningKey, sign_record};
use homed_storage::luks::{ImageLayout, LuksImage};
use homed_tests::homed::our_homed;
use homed_tests::luks::{enter_world, fast_settings, scratch, secret, signed_record};
use serde_json::{Map, Value, json};

const USER: &str = "carol";
const OLD: &str = "Carol-old-pw-1";
const NEW: &str = "Carol-new-pw-2";
const MACHINE: &str = "3b54d2b8a4a04c2f9b1e6a3c5d7e9f01";

/// A record for `password` with the cheapest keyslot PBKDF, changed at `change`.
fn record(password: &str, change: u64, key: &SigningKey) -> UserRecord {
    let mut r = signed_record(USER, password, key);
    let json = r.json_mut();
    json.remove("signature");
    json.insert("luksPbkdfForceIterations".into(), json!(1000));
    json.insert("lastChangeUSec".into(), json!(change));
    json.insert("lastPasswordChangeUSec".into(), json!(change));
    sign_record(&mut r, key);
    r
}

/// What the daemon sends for `op` on the image at `path`, holding `record` as host record.
fn request(op: &str, path: &Path, record: &UserRecord, passwords: &[&str]) -> Map<String, Value> {
    let mut req = Map::new();
    req.insert("secret".into(), json!({ "password": passwords }));
    req.insert("op".into(), json!(op));
    req.insert("storage".into(), json!("luks"));
    req.insert("userName".into(), json!(USER));
    req.insert("imagePath".into(), json!(path));
    req.insert("homeDirectory".into(), json!(format!("/home/{USER}")));
    req.insert("record".into(), json!(record.to_compact_string()));
    req.insert("machineId".into(), json!(MACHINE));
    req.insert("active".into(), json!(false));
    req
}

enum Outcome {
    Killed,
    Reply(Map<String, Value>),
}

/// Runs one worker operation, with the kill hook at `kill_at`.
fn worker(req: &Map<String, Value>, kill_at: Option<&str>) -> Outcome {
    let mut cmd = Command::new(our_homed());
    cmd.arg("worker")
        .env_remove("HOMED_TEST_KILL_AT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(step) = kill_at {
        cmd.env("HOMED_TEST_KILL_AT", step);
    }
    let mut child = cmd.spawn().expect("homed worker");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(req).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.signal() == Some(libc::SIGKILL) {
        assert!(out.stdout.is_empty(), "a killed worker replied");
        assert!(
            stderr.contains(&format!("killed at {}", kill_at.unwrap_or("?"))),
            "{stderr}"
        );
        return Outcome::Killed;
    }
    assert!(kill_at.is_none(), "not killed at {kill_at:?}: {stderr}");
    Outcome::Reply(serde_json::from_slice(&out.stdout).expect("a JSON reply"))
}

/// Which of the two passwords open the image, its header record, and its keyslots.
fn state(path: &Path) -> (bool, bool, Value, Vec<u32>) {
    let mut image = LuksImage::open(path, Some(USER), true).unwrap();
    let opens_old = image.unlock(&[secret(OLD)]).is_ok();
    let opens_new = image.unlock(&[secret(NEW)]).is_ok();
    let key = image.unlock(&[secret(OLD), secret(NEW)]).unwrap();
    let header = image.container().token_record(&key).unwrap();
    let slots = image.container().active_keyslots().unwrap();
    (
        opens_old,
        opens_new,
        Value::Object(header.json().clone()),
        slots,
    )
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn password_change_worker_killed_at_header_steps_leaves_an_image_that_opens() {
    if !cfg!(debug_assertions) {
        // The kill hook exists in debug builds only.
        return;
    }
    if !enter_world("password_change_worker_killed_at_header_steps_leaves_an_image_that_opens") {
        return;
    }
    let dir = scratch("passwd-worker");
    let key = SigningKey::generate().unwrap();
    let old_record = record(OLD, 1_795_000_000_000_000, &key);
    let new_record = record(NEW, 1_795_000_000_000_001, &key);
    let old_header = Value::Object(old_record.embedded_copy().json().clone());
    let new_header = Value::Object(new_record.embedded_copy().json().clone());
    let make = |name: &str| {
        let path = dir.join(name);
        let layout = ImageLayout {
            size: 32 * 1024 * 1024,
            preallocate: false,
        };
        let (image, _) = LuksImage::create(
            &path,
            USER,
            &fast_settings(),
            &layout,
            &[secret(OLD)],
            &old_record,
        )
        .unwrap();
        drop(image);
        path
    };
    let keyslots = |path: &Path| {
        let mut req = request("passwd-keyslots", path, &old_record, &[NEW, OLD]);
        req.insert("newPasswords".into(), json!(1));
        req
    };

    // Killed before anything is written: only the old password, the old record.
    let path = make("before.home");
    assert!(matches!(
        worker(&keyslots(&path), Some("before-new-keyslot")),
        Outcome::Killed
    ));
    assert_eq!(state(&path), (true, false, old_header.clone(), vec![0]));

    // Killed after the new keyslot: both open, the record is still the old one (the daemon
    // never saved the new host record, so it asks for the old password).
    let path = make("after-keyslot.home");
    assert!(matches!(
        worker(&keyslots(&path), Some("after-new-keyslot")),
        Outcome::Killed
    ));
    assert_eq!(state(&path), (true, true, old_header.clone(), vec![0, 1]));

    // A wrong old password: refused as a bad password, nothing added.
    let path = make("wrong.home");
    let mut req = request(
        "passwd-keyslots",
        &path,
        &old_record,
        &[NEW, "not-the-password"],
    );
    req.insert("newPasswords".into(), json!(1));
    let Outcome::Reply(reply) = worker(&req, None) else {
        unreachable!()
    };
    assert_eq!(reply["ok"], json!(false), "{reply:?}");
    assert_eq!(reply["errno"], json!(libc::ENOKEY), "{reply:?}");
    assert_eq!(state(&path), (true, false, old_header.clone(), vec![0]));

    // The first half done; the daemon has saved the new host record, which asks for the new
    // password from now on. The second half wipes the old keyslot first, then writes the new
    // record into the header: killed after either, the new password opens the image, the old
    // one no more, and the header's record is whole (an older one is brought forward to the
    // host record by the next activation).
    let second_half = |path: &Path| {
        let Outcome::Reply(slots) = worker(&keyslots(path), None) else {
            unreachable!()
        };
        assert_eq!(slots["ok"], json!(true), "{slots:?}");
        assert_eq!(slots["oldKeyslots"], json!([0]));
        assert_eq!(slots["newKeyslots"], json!([1]));
        let mut req = request("passwd-record", path, &new_record, &[NEW]);
        for k in ["oldKeyslots", "newKeyslots"] {
            req.insert(k.into(), slots[k].clone());
        }
        req.insert("uid".into(), json!(60200));
        req.insert("gid".into(), json!(60200));
        req
    };

    let path = make("after-removal.home");
    let second = second_half(&path);
    // Keyslots to remove that include one to keep are refused before anything is written.
    let mut overlapping = second.clone();
    overlapping.insert("oldKeyslots".into(), json!([0, 1]));
    let Outcome::Reply(reply) = worker(&overlapping, None) else {
        unreachable!()
    };
    assert_eq!(reply["ok"], json!(false), "{reply:?}");
    assert_eq!(state(&path), (true, true, old_header.clone(), vec![0, 1]));
    assert!(matches!(
        worker(&second, Some("after-old-keyslot-removed")),
        Outcome::Killed
    ));
    assert_eq!(state(&path), (false, true, old_header.clone(), vec![1]));

    let path = make("after-header.home");
    let second = second_half(&path);
    assert!(matches!(
        worker(&second, Some("after-header-record")),
        Outcome::Killed
    ));
    assert_eq!(state(&path), (false, true, new_header.clone(), vec![1]));
}
