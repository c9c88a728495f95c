//! A login through the login stack of `pam.d-examples/` on the storage types that need their
//! own /home file system: fscrypt on ext4 (the names are readable only while logged in) and
//! subvolume on btrfs. Against our daemon and systemd-homed 252, both through pam_homed.
//!
//! What suspend means for an fscrypt home: nothing can be locked. A v1 fscrypt key cannot be
//! taken from files that are open, so `homectl lock` is refused (by 252 as by us) and the home
//! stays readable; the key goes only when the last session ends.

use std::process::{Command, Output};

use homed_tests::pam::{
    Daemon, Module, PAM_SUCCESS, Session, World, home_mounted, in_world_with, wait_until,
};

const USER: &str = "stuser";
const PASSWORD: &str = "Storage-pw-5817";
const WORDS: &str = "written-in-a-login";

fn as_user(command: &str) -> Output {
    let uid = uid_of(USER);
    Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
            "sh",
            "-c",
            command,
        ])
        .output()
        .unwrap_or_else(|e| panic!("setpriv: {e}"))
}

fn uid_of(user: &str) -> String {
    let out = Command::new("id")
        .args(["-u", user])
        .output()
        .unwrap_or_else(|e| panic!("id: {e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn names_in(folder: &str) -> Vec<String> {
    std::fs::read_dir(folder)
        .unwrap_or_else(|e| panic!("{folder}: {e}"))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn homectl(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("60")
        .arg("homectl")
        .args(args)
        .env("PASSWORD", PASSWORD)
        .output()
        .unwrap_or_else(|e| panic!("homectl: {e}"))
}

fn login_write_logout(world: &World, storage: &str) {
    world.create_home_on(storage, USER, PASSWORD, &[]);
    let folder = format!("/home/{USER}.homedir");
    let mut s = Session::start(world, "login", USER);
    s.answer(&[PASSWORD]);
    assert_eq!(s.authenticate(), PAM_SUCCESS, "shown: {:?}", s.take_shown());
    assert_eq!(s.acct_mgmt(), PAM_SUCCESS, "shown: {:?}", s.take_shown());
    assert_eq!(s.open_session(), PAM_SUCCESS, "shown: {:?}", s.take_shown());
    assert!(
        wait_until(10, || home_mounted(USER)),
        "the login did not activate the {storage} home"
    );
    let wrote = as_user(&format!(
        "echo {WORDS} > /home/{USER}/notes.txt && cat /home/{USER}/notes.txt"
    ));
    assert_eq!(
        String::from_utf8_lossy(&wrote.stdout).trim(),
        WORDS,
        "{}",
        String::from_utf8_lossy(&wrote.stderr)
    );
    assert!(names_in(&folder).contains(&"notes.txt".to_owned()));

    if storage == "fscrypt" {
        let lock = homectl(&["lock", USER]);
        assert!(
            !lock.status.success(),
            "an fscrypt home was locked: {}",
            String::from_utf8_lossy(&lock.stdout)
        );
        let read = as_user(&format!("cat /home/{USER}/notes.txt"));
        assert_eq!(String::from_utf8_lossy(&read.stdout).trim(), WORDS);
    }

    assert!(
        s.log_out(USER, 30),
        "the {storage} home stayed active after the session closed"
    );
    let after = names_in(&folder);
    match storage {
        // Without the key the kernel shows only encrypted names.
        "fscrypt" => assert!(
            !after.iter().any(|n| n == "notes.txt" || n == ".identity"),
            "names readable after logout: {after:?}"
        ),
        _ => assert!(after.contains(&"notes.txt".to_owned()), "{after:?}"),
    }
    let removed = homectl(&["remove", USER]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
}

macro_rules! login_test {
    ($name:ident, $daemon:expr, $storage:literal, $fs:literal) => {
        #[test]
        #[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
        fn $name() {
            in_world_with(
                $daemon,
                Module::PamHomed,
                stringify!($name),
                &["--home-fs", $fs],
                |world| login_write_logout(world, $storage),
            );
        }
    };
}

login_test!(fscrypt_login_ours, Daemon::Ours, "fscrypt", "ext4");
login_test!(
    fscrypt_login_systemd_homed,
    Daemon::Reference,
    "fscrypt",
    "ext4"
);
login_test!(subvolume_login_ours, Daemon::Ours, "subvolume", "btrfs");
login_test!(
    subvolume_login_systemd_homed,
    Daemon::Reference,
    "subvolume",
    "btrfs"
);
