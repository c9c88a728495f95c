//! libnss_homed against the real systemd-homed 252 (issue 3, acceptance 1, 2 and 7): with a
//! shipped nsswitch.conf that names `homed` and not `systemd`, every lookup prints exactly what
//! nss-systemd prints for the same users, hashes stay hidden from other users, and enumeration
//! lists each user once with either shipped file.

use homed_tests::nss::*;

fn as_refs(users: &[(String, u32)]) -> Vec<(&str, u32)> {
    users.iter().map(|(n, u)| (n.as_str(), *u)).collect()
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn lookups_through_systemd_homed_match_nss_systemd() {
    if !in_world() {
        rerun_in_world(
            "lookups_through_systemd_homed_match_nss_systemd",
            &["--homed-reference"],
            300,
        );
        return;
    }
    let owned = create_reference_users(&["plain"]);
    let users = as_refs(&owned);

    use_nsswitch_text(NSS_SYSTEMD);
    let expected = lookups(&users, None);
    let expected_nobody = lookups(&users, Some(65534));
    let (jurgen_uid, lockie_uid) = (users[0].1, users[1].1);
    let expected_own = run_as(jurgen_uid, &["getent", "shadow", "jurgen"]);
    // The reference really shows what the test is about.
    assert!(
        expected.contains(":Jürgen Ñandú-Øster:/home/jurgen:/bin/sh\n"),
        "{expected}"
    );
    assert!(expected.contains(",100(users)\n"), "{expected}");
    assert!(expected.contains("\njurgen:!*::\n"), "gshadow: {expected}");
    assert!(expected.contains("lockie:$y$"), "{expected}");
    assert!(
        expected.contains(":1:\n"),
        "locked user expires on day 1: {expected}"
    );
    assert!(
        expected_own.stdout.starts_with("jurgen:$y$"),
        "{expected_own:?}"
    );

    use_nsswitch(&example(WITHOUT_SYSTEMD));
    let conf = std::fs::read_to_string("/etc/nsswitch.conf").unwrap();
    assert!(conf.contains("passwd:         files homed\n"), "{conf}");
    assert!(
        !conf
            .lines()
            .any(|l| !l.starts_with('#') && l.contains("systemd"))
    );

    // (1) Same text for every lookup, as root.
    assert_eq!(lookups(&users, None), expected);
    // (2) As nobody: the same (no shadow line at all), and no hash anywhere.
    let nobody = lookups(&users, Some(65534));
    assert_eq!(nobody, expected_nobody);
    assert!(!nobody.contains("$y$"), "{nobody}");
    for (name, _) in &users {
        let ran = run_as(65534, &["getent", "shadow", name]);
        assert_eq!((ran.code, ran.stdout.as_str()), (Some(2), ""), "{name}");
    }
    let listing = run_as(65534, &["getent", "shadow"]);
    assert!(!listing.stdout.contains("$y$"), "{listing:?}");
    // As the user: their own shadow line, as nss-systemd shows it; not someone else's.
    assert_eq!(
        run_as(jurgen_uid, &["getent", "shadow", "jurgen"]),
        expected_own
    );
    let other = run_as(lockie_uid, &["getent", "shadow", "jurgen"]);
    assert_eq!(other.code, Some(2), "{other:?}");

    // (7) Each shipped file lists every homed user exactly once.
    for file in [WITHOUT_SYSTEMD, WITH_SYSTEMD] {
        use_nsswitch(&example(file));
        for (name, _) in &users {
            assert_eq!(times_listed(name), 1, "{name} with {file}");
        }
    }
}
