//! `homectl inspect` (systemd's own) shows the same for a home served by our daemon as for one
//! served by systemd-homed, inactive and active: every field the status section feeds.

use homed_tests::homed::run_homed_world;

const SCRIPT: &str = r#"
$START || exit 1
export NEWPASSWORD=Test-pw-123 PASSWORD=Test-pw-123
timeout 60 homectl create tuser --storage=directory --enforce-password-policy=no --real-name="T U" \
    --member-of=users --email-address=t@example.org --shell=/bin/sh </dev/null >/dev/null || exit 1
homectl inspect tuser | sed 's/^/INACTIVE /'
timeout 60 homectl activate tuser </dev/null || exit 1
homectl inspect tuser | sed 's/^/ACTIVE /'
exit 0
"#;

/// The lines, with what differs from run to run (clock times, free space) masked.
fn shown(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with("INACTIVE ") || l.starts_with("ACTIVE "))
        .map(|l| match l.split_once(": ") {
            Some((key, _))
                if [
                    "Last Change",
                    "Last Good",
                    "Last Bad",
                    "Last Passwd",
                    "Disk ",
                ]
                .iter()
                .any(|k| key.contains(k)) =>
            {
                format!("{key}: …")
            }
            _ => l.to_owned(),
        })
        .collect()
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn systemd_homectl_inspect_shows_the_same_for_both_daemons() {
    let run = |start: &str| {
        let r = run_homed_world(false, &SCRIPT.replace("$START", start), 120);
        r.assert_success();
        r.stdout
    };
    let (ours, theirs) = (run("start_ours"), run("start_reference"));
    assert_eq!(
        shown(&ours),
        shown(&theirs),
        "ours:\n{ours}\nsystemd-homed:\n{theirs}"
    );
    assert!(ours.contains("ACTIVE        State: active"), "{ours}");
}
