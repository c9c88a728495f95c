use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use super::*;
use crate::record::{MachineContext, RecordOrigin, UserRecord};
use crate::signing::SigningKey;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/homed-252")
}

fn fixture(name: &str) -> UserRecord {
    let text = fs::read(fixtures().join(format!("records/{name}.identity"))).unwrap();
    UserRecord::parse(&text, RecordOrigin::Host).unwrap()
}

fn machine() -> MachineContext {
    let id = fs::read_to_string(fixtures().join("machine-id")).unwrap();
    MachineContext::new(id.trim(), None)
}

/// Replaces a file the way the daemon does (a new inode), so that caches keyed by file identity
/// see every change, however fast the changes come.
fn replace(path: &Path, bytes: impl AsRef<[u8]>) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// Readers trust only root-owned files: the tests that read publications need root.
fn published_fixtures(key: &SigningKey) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let m = machine();
    for name in ["alice", "bob", "carol"] {
        let record = fixture(name);
        publish(dir.path(), &record.view(&m), key).unwrap();
    }
    dir
}

#[test]
fn resolved_record_folds_binding_and_keeps_unknown_fields() {
    let record = fixture("bob");
    let m = machine();
    let resolved = resolve(&record.view(&m)).unwrap();
    let json = resolved.json();
    assert_eq!(json["uid"], 60076);
    assert_eq!(json["gid"], 60076);
    assert_eq!(json["homeDirectory"], "/home/bob");
    assert_eq!(json["storage"], "directory");
    assert_eq!(json["imagePath"], "/home/bob.homedir");
    assert_eq!(json["service"], "io.systemd.Home");
    assert_eq!(json["emailAddress"], "bob@example.org");
    for gone in ["binding", "perMachine", "status", "signature"] {
        assert!(!json.contains_key(gone), "{gone}");
    }
    assert!(json.contains_key("privileged"));
    assert!(!public_part(&resolved).json().contains_key("privileged"));
}

#[test]
#[ignore = "needs root: publications must be owned by root, and the checks read root-owned folders"]
fn lookups_match_nss_systemd_output() {
    let key = SigningKey::generate().unwrap();
    let dir = published_fixtures(&key);
    let p = Published::open(dir.path()).unwrap();
    let passwd: Vec<String> = p.all_users().iter().map(|u| u.passwd.to_line()).collect();
    let expected = fs::read_to_string(fixtures().join("nss/getent-passwd.txt")).unwrap();
    assert_eq!(passwd, expected.lines().collect::<Vec<_>>());
    let groups: Vec<String> = p.all_groups().iter().map(|g| g.to_line()).collect();
    let expected = fs::read_to_string(fixtures().join("nss/getent-group.txt")).unwrap();
    assert_eq!(groups, expected.lines().collect::<Vec<_>>());
    let shadow: Vec<String> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| p.shadow(n).unwrap().unwrap().to_line())
        .collect();
    let expected = fs::read_to_string(fixtures().join("nss/getent-shadow.txt")).unwrap();
    assert_eq!(shadow, expected.lines().collect::<Vec<_>>());
    assert_eq!(p.user_by_uid(60299).unwrap().passwd.name, "carol");
    assert_eq!(p.group_by_gid(60076).unwrap().name, "bob");
    assert_eq!(p.members_of("users"), vec!["bob".to_string()]);
    assert!(p.user("nosuch").is_none());
    assert!(p.user_by_uid(60077).is_none());
    // The public file never carries the hash.
    let public = fs::read_to_string(dir.path().join("bob.user")).unwrap();
    assert!(!public.contains("$y$"));
    let mode = fs::metadata(dir.path().join("bob.privileged"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    unpublish(dir.path(), "bob").unwrap();
    let p = Published::open(dir.path()).unwrap();
    assert!(p.user("bob").is_none());
    assert!(p.user_by_uid(60076).is_none());
    assert_eq!(p.all_users().len(), 2);
}

#[test]
#[ignore = "needs root: publications must be owned by root, and the checks read root-owned folders"]
fn any_changed_byte_is_refused() {
    let key = SigningKey::generate().unwrap();
    let dir = published_fixtures(&key);
    let path = dir.path().join("carol.user");
    let good = fs::read(&path).unwrap();
    let p = Published::open(dir.path()).unwrap();
    let carol = p.user("carol").unwrap();
    for i in 0..good.len() {
        for flip in [0x01u8, 0x20] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            replace(&path, &bad);
            if let Some(u) = p.user("carol") {
                panic!(
                    "byte {i} ({:?}) changed, still served as {:?}",
                    bad[i] as char, u.passwd
                );
            }
        }
    }
    replace(&path, &good);
    assert_eq!(p.user("carol").unwrap(), carol);
}

#[test]
#[ignore = "needs root: publications must be owned by root, and the checks read root-owned folders"]
fn untrusted_unsigned_and_writable_files_are_refused() {
    let key = SigningKey::generate().unwrap();
    let dir = published_fixtures(&key);
    let m = machine();
    let resolved = resolve(&fixture("alice").view(&m)).unwrap();
    let path = dir.path().join("alice.user");

    let other = SigningKey::generate().unwrap();
    replace(&path, signed_text(&public_part(&resolved), &other));
    let p = Published::open(dir.path()).unwrap();
    assert!(p.user("alice").is_none(), "signed by an untrusted key");

    let mut text = crate::json::to_canonical_string(&public_part(&resolved).into_value());
    text.push('\n');
    replace(&path, text);
    assert!(p.user("alice").is_none(), "unsigned");

    replace(&path, signed_text(&public_part(&resolved), &key));
    assert!(p.user("alice").is_some());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    assert!(p.user("alice").is_none(), "world-writable");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(p.user("alice").is_some());

    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    assert!(
        Published::open(dir.path()).is_none(),
        "world-writable directory"
    );
}

#[test]
#[ignore = "needs root: publications must be owned by root, and the checks read root-owned folders"]
fn publish_all_removes_stale_users_and_resigns_with_a_new_key() {
    let old = SigningKey::generate().unwrap();
    let dir = published_fixtures(&old);
    let m = machine();
    let (alice, carol) = (fixture("alice"), fixture("carol"));
    let new = SigningKey::generate().unwrap();
    publish_all(dir.path(), &[alice.view(&m), carol.view(&m)], &new).unwrap();
    let p = Published::open(dir.path()).unwrap();
    let names: Vec<String> = p
        .all_users()
        .iter()
        .map(|u| u.passwd.name.clone())
        .collect();
    assert_eq!(names, ["alice", "carol"]);
    assert!(!dir.path().join("bob.privileged").exists());
    assert!(p.shadow("carol").unwrap().is_some());
    publish_all(dir.path(), &[], &new).unwrap();
    let p = Published::open(dir.path()).unwrap();
    assert!(p.all_users().is_empty());
    assert!(p.user("alice").is_none());
}

#[test]
#[ignore = "needs root: publications must be owned by root, and the checks read root-owned folders"]
fn a_publication_below_a_folder_others_may_write_is_refused() {
    let key = SigningKey::generate().unwrap();
    let top = tempfile::tempdir().unwrap();
    let parent = top.path().join("homed");
    let dir = parent.join("nss");
    let m = machine();
    publish(&dir, &fixture("alice").view(&m), &key).unwrap();
    assert!(
        Published::open(&dir)
            .and_then(|p| p.user("alice"))
            .is_some()
    );
    // Whoever may write to the folder above could swap in another (older, validly signed) copy.
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o777)).unwrap();
    assert!(Published::open(&dir).is_none(), "writable parent");
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&parent, Some(65534), None).unwrap();
    assert!(
        Published::open(&dir).is_none(),
        "parent owned by another user"
    );
    std::os::unix::fs::chown(&parent, Some(0), None).unwrap();
    assert!(Published::open(&dir).is_some());
}

#[test]
fn the_publish_folders_are_made_0755_whatever_the_umask() {
    let key = SigningKey::generate().unwrap();
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("homed").join("nss");
    let m = machine();
    // SAFETY: umask only swaps the process's file creation mask; it is restored right after.
    let old = unsafe { libc::umask(0o077) };
    let published = publish(&dir, &fixture("alice").view(&m), &key);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    published.unwrap();
    for d in [top.path().join("homed"), dir] {
        let mode = fs::metadata(&d).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755, "{}", d.display());
    }
}
