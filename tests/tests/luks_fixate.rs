//! Issue 6, acceptance 4 (fixation, host part): our worker's `inspect` — what the daemon runs to
//! fixate a LUKS home it found in /home without a record — on the image systemd-homed 252 made.
//! Without device-mapper it reads, from the image and the password alone, the header record and
//! the binding values homed 252 wrote into its own host record; a wrong password, a key this
//! machine does not trust, or an image named for another user is refused, and nothing changes.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use homed_shared::signing::{PublicKey, SignatureCheck, SigningKey, check_signature};
use homed_shared::{RecordOrigin, UserRecord};
use homed_tests::homed::our_homed;
use homed_tests::luks::{DAVE_PASSWORD, dave_image, enter_world, luks_fixture, scratch};
use serde_json::{Map, Value, json};

/// A key folder holding `pem` as `name` (root-owned, 0644, as the trust checks require).
fn key_dir(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let keys = dir.join("keys");
    fs::create_dir_all(&keys).unwrap();
    let path = keys.join(name);
    fs::write(&path, pem).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    keys
}

/// homed 252's public key, installed under a name of its own (`local.public` is this machine's).
fn homed_252_keys(dir: &Path) -> PathBuf {
    let pem = fs::read_to_string(luks_fixture().join("local.public")).unwrap();
    key_dir(dir, "homed-252.public", &pem)
}

/// Runs `homed worker` with one `inspect` request and returns its reply.
fn inspect(user: &str, image: &Path, keys: &Path, passwords: &[&str]) -> Map<String, Value> {
    let request = json!({
        "secret": {"password": passwords},
        "op": "inspect",
        "storage": "luks",
        "userName": user,
        "imagePath": image,
        "keyDirs": [keys],
    });
    let mut child = Command::new(our_homed())
        .arg("worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("homed worker");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no reply from the worker ({e}): {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn errno(reply: &Map<String, Value>) -> Option<i64> {
    reply.get("errno").and_then(Value::as_i64)
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn inspect_reads_the_record_and_binding_from_the_image_alone() {
    if !enter_world("inspect_reads_the_record_and_binding_from_the_image_alone") {
        return;
    }
    let dir = scratch("fixate-inspect");
    let image = dave_image(&dir);
    let before = fs::read(&image).unwrap();
    let keys = homed_252_keys(&dir);

    // PAM accumulates passwords: a wrong guess before the right one does not matter.
    let reply = inspect("dave", &image, &keys, &["not-it", DAVE_PASSWORD]);
    assert_eq!(reply.get("ok"), Some(&json!(true)), "{reply:?}");

    // The record is the one homed 252 signed, untouched: it verifies with its key alone and is
    // the embedded part of the host record homed kept beside the image.
    let text = reply.get("identity").and_then(Value::as_str).unwrap();
    let record = UserRecord::parse(text.as_bytes(), RecordOrigin::Embedded).unwrap();
    let public =
        PublicKey::from_pem(&fs::read_to_string(luks_fixture().join("local.public")).unwrap())
            .unwrap();
    assert_eq!(
        check_signature(&record, &public).unwrap(),
        SignatureCheck::SignedExclusive
    );
    let host = UserRecord::parse(
        &fs::read(luks_fixture().join("dave.identity")).unwrap(),
        RecordOrigin::Host,
    )
    .unwrap();
    assert_eq!(record.signed_text(), host.embedded_copy().signed_text());
    assert_eq!(record.signatures(), host.signatures());
    assert!(record.json().get("binding").is_none());

    // The binding values are those homed 252 wrote after activating the image itself,
    // including the file system's UUID, read here without device-mapper.
    let machine = fs::read_to_string(luks_fixture().join("machine-id")).unwrap();
    let theirs = host
        .json()
        .get("binding")
        .and_then(|b| b.get(machine.trim()))
        .and_then(Value::as_object)
        .unwrap()
        .clone();
    let ours = reply.get("binding").and_then(Value::as_object).unwrap();
    for field in [
        "storage",
        "partitionUuid",
        "luksUuid",
        "luksCipher",
        "luksCipherMode",
        "luksVolumeKeySize",
        "fileSystemType",
        "fileSystemUuid",
    ] {
        assert_eq!(ours.get(field), theirs.get(field), "binding field {field}");
    }

    assert!(
        fs::read(&image).unwrap() == before,
        "inspect changed the image"
    );
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn inspect_refuses_a_wrong_password_an_untrusted_key_and_another_users_image() {
    if !enter_world("inspect_refuses_a_wrong_password_an_untrusted_key_and_another_users_image") {
        return;
    }
    let dir = scratch("fixate-refused");
    let image = dave_image(&dir);
    let before = fs::read(&image).unwrap();
    let keys = homed_252_keys(&dir);

    let reply = inspect("dave", &image, &keys, &["dave-pw-789", ""]);
    assert_eq!(errno(&reply), Some(libc::ENOKEY as i64), "{reply:?}");
    assert!(reply.get("identity").is_none(), "{reply:?}");

    // The same image on a machine that trusts another key: the password opens it, but the
    // record is refused, as homed refuses it (BadSignature).
    let other = SigningKey::generate().unwrap().public_key().to_pem();
    let untrusted = key_dir(&dir.join("other"), "someone.public", &other);
    let reply = inspect("dave", &image, &untrusted, &[DAVE_PASSWORD]);
    assert_eq!(errno(&reply), Some(libc::EKEYREJECTED as i64), "{reply:?}");
    assert!(reply.get("identity").is_none(), "{reply:?}");
    let message = reply.get("message").and_then(Value::as_str).unwrap_or("");
    assert!(message.contains("not signed by a trusted key"), "{message}");

    // Found as /home/eve.home: the partition (and the record) are dave's.
    let eve = dir.join("eve.home");
    fs::rename(&image, &eve).unwrap();
    let reply = inspect("eve", &eve, &keys, &[DAVE_PASSWORD]);
    assert_eq!(reply.get("ok"), Some(&json!(false)), "{reply:?}");
    assert!(reply.get("identity").is_none(), "{reply:?}");
    let message = reply.get("message").and_then(Value::as_str).unwrap_or("");
    assert!(message.contains("\"dave\""), "{message}");

    assert!(
        fs::read(&eve).unwrap() == before,
        "a refused inspect changed the image"
    );
}
