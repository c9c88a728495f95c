//! libnss_homed with our own daemon, which publishes its records for it: every lookup prints
//! what nss-systemd prints through the daemon's userdb socket, the owner still sees their own
//! shadow line (through the socket, since the privileged files are root's), and with the daemon
//! stopped the published records keep answering. Each shipped nsswitch file lists every user
//! once, with the daemon running and stopped.

use std::path::Path;

use homed_shared::publish::PUBLISH_DIR;
use homed_tests::nss::*;

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn our_daemon_publishes_what_nss_homed_serves() {
    if !in_world() {
        let policy = homed_tests::homed::policy_dir();
        let daemon = homed_tests::homed::our_homed();
        rerun_in_world(
            "our_daemon_publishes_what_nss_homed_serves",
            &[
                "--dbus-policy",
                &policy.path().display().to_string(),
                "--homed",
                &daemon.display().to_string(),
            ],
            300,
        );
        return;
    }
    let owned = create_reference_users(&[]);
    let users: Vec<(&str, u32)> = owned.iter().map(|(n, u)| (n.as_str(), *u)).collect();
    for (name, _) in &users {
        assert!(
            Path::new(PUBLISH_DIR)
                .join(format!("{name}.user"))
                .is_file(),
            "the daemon did not publish {name}"
        );
    }

    use_nsswitch_text(NSS_SYSTEMD);
    let expected = lookups(&users, None);
    let expected_nobody = lookups(&users, Some(65534));
    let jurgen_uid = users[0].1;
    let expected_own = run_as(jurgen_uid, &["getent", "shadow", "jurgen"]);
    assert!(
        expected.contains(":Jürgen Ñandú-Øster:/home/jurgen:/bin/sh\n"),
        "{expected}"
    );
    assert!(
        expected_own.stdout.starts_with("jurgen:$y$"),
        "{expected_own:?}"
    );

    use_nsswitch(&example(WITHOUT_SYSTEMD));
    assert_eq!(lookups(&users, None), expected);
    let nobody = lookups(&users, Some(65534));
    assert_eq!(nobody, expected_nobody);
    assert!(!nobody.contains("$y$"), "{nobody}");
    assert_eq!(
        run_as(jurgen_uid, &["getent", "shadow", "jurgen"]),
        expected_own
    );
    for file in [WITHOUT_SYSTEMD, WITH_SYSTEMD] {
        use_nsswitch(&example(file));
        for (name, _) in &users {
            assert_eq!(times_listed(name), 1, "{name} with {file}, daemon running");
        }
    }

    stop_daemon();
    use_nsswitch(&example(WITHOUT_SYSTEMD));
    assert_eq!(lookups(&users, None), expected);
    for file in [WITHOUT_SYSTEMD, WITH_SYSTEMD] {
        use_nsswitch(&example(file));
        for (name, _) in &users {
            assert_eq!(times_listed(name), 1, "{name} with {file}, daemon stopped");
        }
    }
}
