//! libnss_homed from the records the daemon publishes (issue 3, acceptance 3, 4 and 7): the
//! answers are the ones nss-systemd gives for the same users, they keep coming with the daemon
//! stopped and its socket gone, and a record with any change, signed by another key or not
//! signed at all is not served.

use std::fs;
use std::path::Path;

use homed_shared::publish::{self, PUBLISH_DIR};
use homed_shared::record::{RecordOrigin, UserRecord};
use homed_shared::signing::SigningKey;
use homed_shared::varlink::HOME_SOCKET;
use homed_tests::nss::*;

/// Replaces a published file the way the daemon does (write, then rename).
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, path).unwrap();
}

fn served(name: &str) -> bool {
    let ran = run(&["getent", "passwd", name], &[]);
    ran.code == Some(0) && ran.stdout.starts_with(&format!("{name}:"))
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn published_records_answer_like_nss_systemd_and_survive_the_daemon() {
    if !in_world() {
        rerun_in_world(
            "published_records_answer_like_nss_systemd_and_survive_the_daemon",
            &["--homed-reference"],
            300,
        );
        return;
    }
    let owned = create_reference_users(&[]);
    let users: Vec<(&str, u32)> = owned.iter().map(|(n, u)| (n.as_str(), *u)).collect();
    use_nsswitch_text(NSS_SYSTEMD);
    let expected = lookups(&users, None);
    let expected_nobody = lookups(&users, Some(65534));
    assert!(expected.contains("jurgen:$y$"), "{expected}");

    let key = SigningKey::generate().unwrap();
    let mut names = publish_from_daemon(&key);
    names.sort();
    assert_eq!(names, ["jurgen", "lockie"]);

    // (3) With the daemon running and records published, the same answers.
    use_nsswitch(&example(WITHOUT_SYSTEMD));
    assert_eq!(lookups(&users, None), expected);
    assert_eq!(lookups(&users, Some(65534)), expected_nobody);
    // (7) Daemon running, records published: each user once with either file.
    for file in [WITHOUT_SYSTEMD, WITH_SYSTEMD] {
        use_nsswitch(&example(file));
        for (name, _) in &users {
            assert_eq!(times_listed(name), 1, "{name} with {file}, daemon running");
        }
    }

    // (4) The daemon stopped and its socket gone: the published records still answer, shadow
    // for root from the root-only part, nothing for nobody.
    stop_daemon();
    assert!(!Path::new(HOME_SOCKET).exists());
    use_nsswitch(&example(WITHOUT_SYSTEMD));
    assert_eq!(lookups(&users, None), expected);
    let nobody = lookups(&users, Some(65534));
    assert_eq!(nobody, expected_nobody);
    assert!(!nobody.contains("$y$"));
    for file in [WITHOUT_SYSTEMD, WITH_SYSTEMD] {
        use_nsswitch(&example(file));
        for (name, _) in &users {
            assert_eq!(times_listed(name), 1, "{name} with {file}, daemon stopped");
        }
    }
    use_nsswitch(&example(WITHOUT_SYSTEMD));

    // (3) Refusals. One changed byte in the UID, the GID, the home directory, or anywhere else.
    let path = Path::new(PUBLISH_DIR).join("jurgen.user");
    let good = fs::read(&path).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    let uid = users[0].1;
    let mut spots = vec![
        text.find(&format!("\"uid\":{uid}")).unwrap() + 7,
        text.find(&format!("\"gid\":{uid}")).unwrap() + 7,
        text.find("\"homeDirectory\":\"/home/jurgen\"").unwrap() + 25,
        text.find("\"shell\":\"/bin/sh\"").unwrap() + 14,
        text.find("\"data\":\"").unwrap() + 20,
    ];
    spots.extend((0..good.len()).step_by(7));
    for at in spots {
        let mut bad = good.clone();
        bad[at] = if bad[at] == b'1' {
            b'2'
        } else {
            bad[at] ^ 0x01
        };
        replace(&path, &bad);
        assert!(
            !served("jurgen"),
            "changed byte {at} ({:?}) still served",
            String::from_utf8_lossy(&bad[at.saturating_sub(10)..(at + 10).min(bad.len())])
        );
        let by_uid = run(&["getent", "passwd", &uid.to_string()], &[]);
        assert_eq!(by_uid.code, Some(2), "{by_uid:?}");
    }
    replace(&path, &good);
    assert!(served("jurgen"));

    // Signed by a key the machine does not publish.
    let body = good.strip_suffix(b"\n").unwrap();
    let record = UserRecord::parse(body, RecordOrigin::Host).unwrap();
    let other = SigningKey::generate().unwrap();
    replace(&path, publish::signed_text(&record, &other).as_bytes());
    assert!(!served("jurgen"), "signed by an untrusted key");
    // Not signed at all.
    let mut unsigned = record.clone();
    unsigned.json_mut().remove("signature");
    replace(
        &path,
        format!("{}\n", unsigned.to_compact_string()).as_bytes(),
    );
    assert!(!served("jurgen"), "unsigned");
    // Signed by the machine key again: served.
    replace(&path, publish::signed_text(&record, &key).as_bytes());
    assert!(served("jurgen"));
    // The root-only part is checked the same way: a changed hash is not shown.
    let privileged = Path::new(PUBLISH_DIR).join("jurgen.privileged");
    let good_privileged = fs::read(&privileged).unwrap();
    let text = String::from_utf8(good_privileged.clone()).unwrap();
    let at = text.find("$y$").unwrap() + 8;
    let mut bad = good_privileged.clone();
    bad[at] ^= 0x01;
    replace(&privileged, &bad);
    fs::set_permissions(
        &privileged,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let shadow = run(&["getent", "shadow", "jurgen"], &[]);
    assert_eq!(shadow.code, Some(2), "{shadow:?}");
}
