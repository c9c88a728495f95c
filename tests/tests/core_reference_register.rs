//! A record created and signed by our code is accepted by the real systemd-homed 252
//! (issue "user-record core", acceptance 3): our public key is installed as a trusted
//! `*.public` before homed starts, `RegisterHome` takes the record, and `homectl inspect` shows
//! it as signed, but not locally.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use homed_shared::password::hash_password;
use homed_shared::signing::{SignatureCheck, SigningKey, check_signature, sign_record};
use homed_shared::{RecordOrigin, UserRecord};
use homed_tests::world::run_in_world;
use secrecy::SecretString;

/// A record that exercises the canonical form where implementations could differ: non-ASCII
/// text, escapes, a slash, an unknown nested field with large integers, and a perMachine array
/// with more than four objects.
fn record_text(hash: &str) -> String {
    format!(
        r#"{{
  "userName": "sigtest",
  "realName": "Zoë Ångström \"Zed\" / 😀",
  "emailAddress": "zed@example.org",
  "disposition": "regular",
  "uid": 60321,
  "gid": 60321,
  "storage": "directory",
  "imagePath": "/home/sigtest.homedir",
  "shell": "/bin/sh",
  "memberOf": ["users"],
  "lastChangeUSec": 1795000000000001,
  "lastPasswordChangeUSec": 1795000000000001,
  "enforcePasswordPolicy": false,
  "xProjectExtension": {{"big": 18446744073709551615, "neg": -9223372036854775808, "text": "tab\tnew\nline\u0001"}},
  "perMachine": [
    {{"matchHostname": "a", "niceLevel": 1}},
    {{"matchHostname": "b", "umask": 18}},
    {{"matchHostname": "c", "timeZone": "Europe/Berlin"}},
    {{"matchHostname": "d", "preferredLanguage": "de_DE.UTF-8"}},
    {{"matchHostname": "e", "locked": false}}
  ],
  "privileged": {{"hashedPassword": ["{hash}"], "passwordHint": "the usual"}}
}}"#
    )
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn systemd_homed_252_accepts_a_record_we_signed() {
    let key = SigningKey::generate().unwrap();
    let hash = hash_password(&SecretString::from("Sig-pw-321".to_owned())).unwrap();
    let mut record =
        UserRecord::parse(record_text(&hash).as_bytes(), RecordOrigin::Request).unwrap();
    sign_record(&mut record, &key);
    assert_eq!(
        check_signature(&record, &key.public_key()).unwrap(),
        SignatureCheck::SignedExclusive
    );

    let scratch = tempfile::tempdir().unwrap();
    let keys = scratch.path().join("keys");
    fs::create_dir(&keys).unwrap();
    fs::write(keys.join("ours.public"), key.public_key().to_pem()).unwrap();
    fs::set_permissions(keys.join("ours.public"), fs::Permissions::from_mode(0o644)).unwrap();
    let record_file = scratch.path().join("sigtest.json");
    fs::write(&record_file, record.to_compact_string()).unwrap();

    let script = format!(
        r#"set -e
record=$(cat '{record}')
busctl --timeout=60 call org.freedesktop.home1 /org/freedesktop/home1 \
    org.freedesktop.home1.Manager RegisterHome s "$record"
echo '--- inspect'
timeout 30 homectl --no-pager inspect sigtest
echo '--- stored'
cat /var/lib/systemd/home/sigtest.identity
"#,
        record = record_file.display()
    );
    let keys_dir = keys.display().to_string();
    let run = run_in_world(&["--homed-reference", "--keys", &keys_dir], &script, 180);
    run.assert_success();

    let (inspect, stored) = run
        .stdout
        .split_once("--- stored\n")
        .unwrap_or_else(|| panic!("no stored record in output:\n{}", run.stdout));
    assert!(inspect.contains("User name: sigtest"), "{inspect}");
    assert!(inspect.contains("Local Sig.: no"), "{inspect}");
    assert!(inspect.contains("Real Name: Zoë Ångström"), "{inspect}");

    // homed keeps our signature untouched: its stored copy still verifies with our key.
    let stored = UserRecord::parse(stored.as_bytes(), RecordOrigin::Host).unwrap();
    assert_eq!(stored.signed_text(), record.signed_text());
    assert_eq!(
        check_signature(&stored, &key.public_key()).unwrap(),
        SignatureCheck::SignedExclusive
    );
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn systemd_homed_252_rejects_a_record_signed_by_an_untrusted_key() {
    let key = SigningKey::generate().unwrap();
    let mut record = UserRecord::parse(
        br#"{"userName":"rogue","disposition":"regular","uid":60322,"storage":"directory","lastChangeUSec":1795000000000001}"#,
        RecordOrigin::Request,
    )
    .unwrap();
    sign_record(&mut record, &key);
    let scratch = tempfile::tempdir().unwrap();
    let record_file = scratch.path().join("rogue.json");
    fs::write(&record_file, record.to_compact_string()).unwrap();
    let script = format!(
        r#"record=$(cat '{}')
busctl --timeout=60 call org.freedesktop.home1 /org/freedesktop/home1 \
    org.freedesktop.home1.Manager RegisterHome s "$record" 2>&1
echo "exit=$?"
test ! -e /var/lib/systemd/home/rogue.identity && echo not-stored"#,
        record_file.display()
    );
    let run = run_in_world(&["--homed-reference"], &script, 120);
    run.assert_success();
    assert!(run.stdout.contains("exit=1"), "{}", run.stdout);
    assert!(
        run.stdout.contains("signed by a key we don't recognize"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("not-stored"), "{}", run.stdout);
}
