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

/// The same for the storage types that need their own /home file system, and `homectl list`.
#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn systemd_homectl_inspect_and_list_agree_on_fscrypt_and_subvolume_homes() {
    use homed_tests::homed::{policy_dir, script_prelude};
    use homed_tests::world::run_in_world;
    for (storage, home_fs, extra) in [
        ("fscrypt", "ext4", ""),
        ("subvolume", "btrfs", ""),
        ("subvolume", "btrfs", " --disk-size=64M"),
    ] {
        let script = SCRIPT
            .replace(
                "--storage=directory",
                &format!("--storage={storage}{extra}"),
            )
            .replace(
                "exit 0",
                "homectl --no-pager list | sed 's/^/ACTIVE /'\nexit 0",
            );
        let run = |start: &str| {
            let policy = policy_dir();
            let policy = policy.path().display().to_string();
            let options = ["--dbus-policy", policy.as_str(), "--home-fs", home_fs];
            let full = format!("{}\n{}", script_prelude(), script.replace("$START", start));
            let r = run_in_world(&options, &full, 120);
            r.assert_success();
            r.stdout
        };
        let (ours, theirs) = (run("start_ours"), run("start_reference"));
        assert_eq!(
            shown(&ours),
            shown(&theirs),
            "{storage}: ours:\n{ours}\nsystemd-homed:\n{theirs}"
        );
        assert!(ours.contains(&format!("Storage: {storage}")), "{ours}");
        // The figures themselves, where they do not move from run to run.
        let size = |out: &str| -> Vec<String> {
            out.lines()
                .filter(|l| l.contains("Disk Size:"))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(size(&ours), size(&theirs), "{storage}{extra}");
        if !extra.is_empty() {
            assert!(ours.contains("Disk Size: 64.0M"), "{ours}");
        }
    }
}
