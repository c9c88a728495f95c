//! `--storage=subvolume` on a btrfs /home, against our daemon and systemd-homed 252: the home
//! is a subvolume whose files are stored as 65534, its diskSize is the subvolume's qgroup
//! limit (enforced; quota switched on by the daemon, as 252 does), and activation shows the files as the user's. Refused clearly, with
//! nothing left, on a /home that is not btrfs and for a record whose image is a plain folder.

use homed_tests::homectl::{HomeDaemon, Steps, run_steps_with};

const BTRFS_SCRIPT: &str = r#"
export PASSWORD=Pw-sv-1111 NEWPASSWORD=Pw-sv-1111
step create timeout 60 $OURS create sv --storage=subvolume --disk-size=64M --enforce-password-policy=no
step show timeout 20 btrfs subvolume show /home/sv.homedir
step owner_disk stat -c %u:%g /home/sv.homedir /home/sv.homedir/.identity
step qgroups btrfs qgroup show -re --raw /home
step activate timeout 60 $OURS activate sv
step uid id -u sv
step owner_user stat -c %u:%g /home/sv /home/sv/.identity
step fill dd if=/dev/zero of=/home/sv/big bs=1M count=100 conv=fsync
step inspect timeout 20 $OURS inspect sv
step owner_disk_active stat -c %u /home/sv.homedir/.identity
step resize timeout 60 $OURS resize sv 128M
step qgroups_resized btrfs qgroup show -re --raw /home
step record_resized timeout 20 $OURS inspect sv -j
step fill_more dd if=/dev/zero of=/home/sv/more bs=1M count=40 conv=fsync
step owner_disk_resized stat -c %u /home/sv.homedir/.identity
step deactivate timeout 60 $OURS deactivate sv
step remove timeout 60 $OURS remove sv
step gone test ! -e /home/sv.homedir
step plain_create timeout 60 $OURS create pl --storage=directory --enforce-password-policy=no
step plain_id id -u pl
step plain_record timeout 20 $OURS inspect pl -j
step plain_resize timeout 60 $OURS resize pl 100M
step plain_after timeout 20 $OURS inspect pl -j
"#;

fn world(daemon: HomeDaemon) -> Vec<String> {
    let mut options = daemon.world_options();
    options.extend(["--home-fs".to_owned(), "btrfs".to_owned()]);
    options
}

fn max_rfer(steps: &Steps, qgroups: &str) -> Option<u64> {
    // `btrfs qgroup show -re --raw`: qgroupid rfer excl max_rfer max_excl; 0/ID of the home.
    let id = steps
        .get("show")
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Subvolume ID:"))?
        .trim()
        .to_owned();
    steps.get(qgroups).stdout.lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        (cols.first() == Some(&format!("0/{id}").as_str()))
            .then(|| cols.get(3)?.parse().ok())
            .flatten()
    })
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn subvolume_homes_on_btrfs() {
    for daemon in HomeDaemon::all() {
        let s = run_steps_with(&world(daemon), BTRFS_SCRIPT, 500);
        s.expect_status("create", 0);
        s.expect_status("show", 0);
        assert_eq!(
            s.get("owner_disk").stdout,
            "65534:65534\n65534:65534\n",
            "{daemon:?}: files on disk are stored as nobody"
        );
        assert_eq!(
            max_rfer(&s, "qgroups"),
            Some(64 * 1024 * 1024),
            "{daemon:?}: qgroup limit\n{}\n{}",
            s.get("show").stdout,
            s.get("qgroups").stdout
        );
        s.expect_status("activate", 0);
        let uid = s.expect_status("uid", 0).stdout.trim().to_owned();
        assert_eq!(
            s.get("owner_user").stdout,
            format!("{uid}:{uid}\n{uid}:{uid}\n"),
            "{daemon:?}: the mounted home shows the user's files as theirs"
        );
        let fill = s.get("fill");
        assert_ne!(fill.status, 0, "{daemon:?}: 100M fitted in 64M");
        assert!(
            fill.stderr.contains("Disk quota exceeded"),
            "{daemon:?}: {}",
            fill.stderr
        );
        // Resizing changes the limit, and what did not fit now does.
        s.expect_status("resize", 0);
        assert_eq!(
            max_rfer(&s, "qgroups_resized"),
            Some(128 * 1024 * 1024),
            "{daemon:?}: qgroup limit after resize\n{}",
            s.get("qgroups_resized").stdout
        );
        let record: serde_json::Value =
            serde_json::from_str(&s.expect_status("record_resized", 0).stdout).unwrap();
        // As 252: in the perMachine entry of this machine.
        let sizes: Vec<&serde_json::Value> = record["perMachine"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("diskSize"))
            .collect();
        assert_eq!(
            sizes,
            [&serde_json::json!(128 * 1024 * 1024)],
            "{daemon:?}: {record}"
        );
        s.expect_status("fill_more", 0);
        assert_eq!(s.get("owner_disk_active").stdout, "65534\n");
        // 252 rewrites `.identity` through the image folder as the user's UID; ours keeps
        // every file on disk stored as 65534.
        if daemon == HomeDaemon::Ours {
            assert_eq!(s.get("owner_disk_resized").stdout, "65534\n");
        }
        let inspect = s.expect_status("inspect", 0);
        assert!(
            inspect
                .stdout
                .contains("Storage: subvolume (no encryption)"),
            "{daemon:?}: {}",
            inspect.stdout
        );
        s.expect_status("deactivate", 0);
        s.expect_status("remove", 0);
        s.expect_status("gone", 0);
        // A directory home on btrfs that is no subvolume has no quota to set: both refuse the
        // resize, and the record keeps no size.
        if daemon == HomeDaemon::Ours {
            s.expect_refused("plain_resize", "is not a subvolume, cannot apply quota");
        } else {
            assert_ne!(
                s.get("plain_resize").status,
                0,
                "{daemon:?}: resized a plain folder"
            );
        }
        let after: serde_json::Value =
            serde_json::from_str(&s.expect_status("plain_after", 0).stdout).unwrap();
        let sizes: Vec<&serde_json::Value> = std::iter::once(&after)
            .chain(after["perMachine"].as_array().into_iter().flatten())
            .filter_map(|section| section.get("diskSize"))
            .collect();
        assert!(sizes.is_empty(), "{daemon:?}: a size was kept: {after}");
    }
}

const NOT_BTRFS_SCRIPT: &str = r#"
export PASSWORD=Pw-sv-1111 NEWPASSWORD=Pw-sv-1111
step create timeout 60 $OURS create sv --storage=subvolume --enforce-password-policy=no
step left ls -A /home
step inspect timeout 20 $OURS inspect sv
"#;

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn subvolume_refused_where_home_is_not_btrfs() {
    let s = run_steps_with(&HomeDaemon::Ours.world_options(), NOT_BTRFS_SCRIPT, 200);
    let create = s.get("create");
    assert_ne!(create.status, 0, "created a subvolume home on tmpfs");
    assert!(
        create.stderr.contains("not on btrfs"),
        "unclear refusal: {}",
        create.stderr
    );
    assert!(
        !s.get("left").stdout.contains("sv"),
        "left behind: {}",
        s.get("left").stdout
    );
    assert_ne!(s.get("inspect").status, 0, "the record stayed registered");
}

const PLAIN_IMAGE_SCRIPT: &str = r#"
export PASSWORD=Pw-sv-1111 NEWPASSWORD=Pw-sv-1111
step create timeout 60 $OURS create sv --storage=subvolume --enforce-password-policy=no
cp -a /home/sv.homedir/.identity "$D/identity"
step delete btrfs subvolume delete /home/sv.homedir
mkdir -m 0700 /home/sv.homedir && cp -a "$D/identity" /home/sv.homedir/.identity
step activate timeout 60 $OURS activate sv
step mounted mountpoint -q /home/sv
step still_plain stat -c %i /home/sv.homedir
"#;

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn subvolume_record_with_a_plain_folder_is_refused() {
    let s = run_steps_with(&world(HomeDaemon::Ours), PLAIN_IMAGE_SCRIPT, 200);
    s.expect_status("create", 0);
    s.expect_status("delete", 0);
    let activate = s.get("activate");
    assert_ne!(
        activate.status, 0,
        "activated a plain folder as a subvolume"
    );
    assert!(
        activate.stderr.contains("is not a btrfs subvolume"),
        "unclear refusal: {}",
        activate.stderr
    );
    assert_ne!(s.get("mounted").status, 0, "something got mounted");
    assert_ne!(s.get("still_plain").stdout.trim(), "256");
}

const SWAP_SCRIPT: &str = r#"
step() { name=$1; shift; "$@" </dev/null >"$HOMED_WORLD_STATE/$name.out" 2>&1; echo "STEP $name $?"; }
# systemd-homed 252 makes a home; ours serves it.
start_reference || exit 1
NEWPASSWORD=Ref-pw-456 step ref-create timeout 60 homectl create refsv --storage=subvolume --disk-size=64M --enforce-password-policy=no
echo "ID refsv $(id -u refsv)"
stop_daemon
start_ours || exit 1
PASSWORD=Ref-pw-456 step ours-activate-ref timeout 60 homectl activate refsv
echo "OWNER refsv $(stat -c %u /home/refsv/.identity)"
step ours-deactivate-ref timeout 60 homectl deactivate refsv
# And back: ours makes one; systemd-homed 252 serves it.
NEWPASSWORD=Our-pw-123 step ours-create timeout 60 homectl create oursv --storage=subvolume --disk-size=64M --enforce-password-policy=no
echo "ID oursv $(id -u oursv)"
stop_daemon
start_reference || exit 1
PASSWORD=Our-pw-123 step ref-activate-ours timeout 60 homectl activate oursv
echo "OWNER oursv $(stat -c %u /home/oursv/.identity)"
step ref-deactivate-ours timeout 60 homectl deactivate oursv
stop_daemon
# Without its record, ours finds the subvolume and calls it one.
rm /var/lib/systemd/home/oursv.identity
start_ours || exit 1
echo "FOUND $(homectl inspect -j oursv | tr -d '\n')"
stop_daemon
exit 0
"#;

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn subvolume_homes_move_between_systemd_homed_and_ours() {
    use homed_tests::homed::{policy_dir, script_prelude, tagged};
    let policy = policy_dir();
    let policy = policy.path().display().to_string();
    let options = ["--dbus-policy", policy.as_str(), "--home-fs", "btrfs"];
    let script = format!("{}\n{SWAP_SCRIPT}", script_prelude());
    let run = homed_tests::world::run_in_world(&options, &script, 400);
    run.assert_success();
    let out = &run.stdout;
    let steps = tagged(out, "STEP ");
    assert_eq!(steps.len(), 6, "{out}\n{}", run.stderr);
    for step in steps {
        assert!(step.ends_with(" 0"), "step failed: {step}\n{out}");
    }
    let found = tagged(out, "FOUND ");
    let found: serde_json::Value = serde_json::from_str(found.first().copied().unwrap_or(""))
        .unwrap_or_else(|e| panic!("discovered record: {e}\n{out}"));
    let storages: Vec<&serde_json::Value> = found["binding"]
        .as_object()
        .map(|b| b.values().map(|m| &m["storage"]).collect())
        .unwrap_or_default();
    assert_eq!(storages, [&serde_json::json!("subvolume")], "{found}");
    for user in ["refsv", "oursv"] {
        let id = tagged(out, &format!("ID {user} "));
        let owner = tagged(out, &format!("OWNER {user} "));
        assert_eq!(id.len(), 1, "{out}");
        assert_eq!(
            owner, id,
            "{user}: the other daemon's mount shows the files as the user's"
        );
    }
}
