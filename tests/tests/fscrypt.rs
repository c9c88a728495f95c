//! `--storage=fscrypt` on an ext4 /home with the encrypt feature, against our daemon and
//! systemd-homed 252: the files are encrypted on disk (names unreadable without the key), a
//! login puts the key in reach of the user's processes, logout takes it away again, a password
//! change re-wraps the key without re-encrypting, and a home made by either daemon opens with
//! the other.

use homed_tests::homectl::{HomeDaemon, run_steps_with};

const SCRIPT: &str = r#"
export PASSWORD=Pw-fs-1111 NEWPASSWORD=Pw-fs-1111
step create timeout 60 $OURS create fs --storage=fscrypt --enforce-password-policy=no
slots() { /usr/bin/python3 -c 'import os, sys; [print(x) for x in sorted(os.listxattr(sys.argv[1])) if "fscrypt_slot" in x]' /home/fs.homedir; }
step slots slots
step names_before ls -A /home/fs.homedir
u=$(id -u fs)
# Live fscrypt keys the user can see (invalidated, revoked or dead ones wait for the collector).
live_keys='awk '"'"'$2 !~ /[iDR]/ && $8 == "logon" && $9 ~ /^fscrypt:/'"'"' /proc/keys | wc -l'
step keys_before setpriv --reuid=$u --regid=$u --clear-groups sh -c "$live_keys"
step activate timeout 60 $OURS activate fs
step write setpriv --reuid=$u --regid=$u --clear-groups sh -c 'echo top-secret-words > /home/fs/notes.txt && cat /home/fs/notes.txt'
step names_active ls -A /home/fs.homedir
step keys_active setpriv --reuid=$u --regid=$u --clear-groups sh -c "$live_keys"
step deactivate timeout 60 $OURS deactivate fs
step names_after ls -A /home/fs.homedir
step keys_after setpriv --reuid=$u --regid=$u --clear-groups sh -c "$live_keys"
NEWPASSWORD=Pw-fs-2222 step passwd timeout 60 $OURS passwd fs
PASSWORD=Pw-fs-1111 step old_refused timeout 60 $OURS activate fs
PASSWORD=Pw-fs-2222 step activate_new timeout 60 $OURS activate fs
step read_new setpriv --reuid=$u --regid=$u --clear-groups cat /home/fs/notes.txt
step slots_new slots
step deactivate_new timeout 60 $OURS deactivate fs
PASSWORD=Pw-fs-2222 step remove timeout 60 $OURS remove fs
step gone test ! -e /home/fs.homedir
"#;

fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.is_empty()).collect()
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn fscrypt_homes_encrypt_names_and_contents_until_login() {
    for daemon in HomeDaemon::all() {
        let mut options = daemon.world_options();
        options.extend(["--home-fs".to_owned(), "ext4".to_owned()]);
        let s = run_steps_with(&options, SCRIPT, 500);
        s.expect_status("create", 0);
        let slots = s.expect_status("slots", 0).stdout.clone();
        assert_eq!(lines(&slots), ["trusted.fscrypt_slot0"], "{daemon:?}");
        s.expect_status("activate", 0);
        assert_eq!(
            s.expect_status("write", 0).stdout,
            "top-secret-words\n",
            "{daemon:?}"
        );
        let active = s.get("names_active").stdout.clone();
        assert!(active.contains("notes.txt"), "{daemon:?}: {active}");
        s.expect_status("deactivate", 0);
        let after = s.expect_status("names_after", 0).stdout.clone();
        assert!(
            !after.contains("notes.txt") && !after.contains(".identity"),
            "{daemon:?}: names readable after logout: {after}"
        );
        assert_eq!(lines(&after).len(), lines(&active).len(), "{daemon:?}");
        // The user's keyring outlives the world (it is the kernel's), so keys are counted.
        let count = |step: &str| -> u32 { s.get(step).stdout.trim().parse().unwrap_or(0) };
        assert!(
            count("keys_active") > count("keys_before"),
            "{daemon:?}: no key for the user's processes"
        );
        // 252 leaves the key in the user's keyring at logout; ours takes it out.
        if daemon == HomeDaemon::Ours {
            assert_eq!(
                count("keys_after"),
                count("keys_before"),
                "key left after logout"
            );
        }
        s.expect_status("passwd", 0);
        assert_ne!(s.get("old_refused").status, 0, "{daemon:?}: old password");
        s.expect_status("activate_new", 0);
        assert_eq!(
            s.expect_status("read_new", 0).stdout,
            "top-secret-words\n",
            "{daemon:?}: the files survive the re-wrap"
        );
        assert_eq!(lines(&s.get("slots_new").stdout).len(), 1, "{daemon:?}");
        s.expect_status("deactivate_new", 0);
        s.expect_status("remove", 0);
        s.expect_status("gone", 0);
    }
}

const SWAP_SCRIPT: &str = r#"
step() { name=$1; shift; "$@" </dev/null >"$HOMED_WORLD_STATE/$name.out" 2>&1; echo "STEP $name $?"; }
read_as() { u=$(id -u $1); setpriv --reuid=$u --regid=$u --clear-groups cat /home/$1/made-by.txt; }
# systemd-homed 252 makes a home and writes a file in it; ours opens it.
start_reference || exit 1
NEWPASSWORD=Ref-pw-456 step ref-create timeout 60 homectl create reffs --storage=fscrypt --enforce-password-policy=no
PASSWORD=Ref-pw-456 step ref-activate timeout 60 homectl activate reffs
u=$(id -u reffs); setpriv --reuid=$u --regid=$u --clear-groups sh -c 'echo by-252 > /home/reffs/made-by.txt'
step ref-deactivate timeout 60 homectl deactivate reffs
stop_daemon
start_ours || exit 1
PASSWORD=Ref-pw-456 step ours-activate-ref timeout 60 homectl activate reffs
echo "READ reffs $(read_as reffs)"
step ours-deactivate-ref timeout 60 homectl deactivate reffs
# And back: ours makes one; systemd-homed 252 opens it.
NEWPASSWORD=Our-pw-123 step ours-create timeout 60 homectl create oursfs --storage=fscrypt --enforce-password-policy=no
PASSWORD=Our-pw-123 step ours-activate timeout 60 homectl activate oursfs
u=$(id -u oursfs); setpriv --reuid=$u --regid=$u --clear-groups sh -c 'echo by-ours > /home/oursfs/made-by.txt'
step ours-deactivate timeout 60 homectl deactivate oursfs
stop_daemon
start_reference || exit 1
PASSWORD=Our-pw-123 step ref-activate-ours timeout 60 homectl activate oursfs
echo "READ oursfs $(read_as oursfs)"
step ref-deactivate-ours timeout 60 homectl deactivate oursfs
stop_daemon
# Without its record, ours finds the folder and calls it fscrypt.
rm /var/lib/systemd/home/oursfs.identity
start_ours || exit 1
echo "FOUND $(homectl inspect -j oursfs | tr -d '\n')"
stop_daemon
exit 0
"#;

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn fscrypt_homes_move_between_systemd_homed_and_ours() {
    use homed_tests::homed::{policy_dir, script_prelude, tagged};
    let policy = policy_dir();
    let policy = policy.path().display().to_string();
    let options = ["--dbus-policy", policy.as_str(), "--home-fs", "ext4"];
    let script = format!("{}\n{SWAP_SCRIPT}", script_prelude());
    let run = homed_tests::world::run_in_world(&options, &script, 400);
    run.assert_success();
    let out = &run.stdout;
    let steps = tagged(out, "STEP ");
    assert_eq!(steps.len(), 10, "{out}\n{}", run.stderr);
    for step in steps {
        assert!(step.ends_with(" 0"), "step failed: {step}\n{out}");
    }
    assert_eq!(tagged(out, "READ reffs "), ["by-252"], "{out}");
    assert_eq!(tagged(out, "READ oursfs "), ["by-ours"], "{out}");
    let found = tagged(out, "FOUND ");
    let found: serde_json::Value = serde_json::from_str(found.first().copied().unwrap_or(""))
        .unwrap_or_else(|e| panic!("discovered record: {e}\n{out}"));
    let storages: Vec<&serde_json::Value> = found["binding"]
        .as_object()
        .map(|b| b.values().map(|m| &m["storage"]).collect())
        .unwrap_or_default();
    assert_eq!(storages, [&serde_json::json!("fscrypt")], "{found}");
}

/// Sets an fscrypt policy on an empty folder that homed did not make: v1 with a descriptor no
/// slot knows, or v2 with a key added to the file system for it (v2 requires one).
const FOREIGN_POLICY: &str = r#"
import fcntl, os, struct, sys
version, folder = sys.argv[1], sys.argv[2]
fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
SET_POLICY, ADD_KEY = 0x800C6613, 0xC0506617
if version == "v1":
    fcntl.ioctl(fd, SET_POLICY, struct.pack("=4B8s", 0, 1, 4, 0, os.urandom(8)))
else:
    raw = os.urandom(64)
    arg = bytearray(struct.pack("=II32sII32x", 2, 0, bytes(32), len(raw), 0) + raw)
    fcntl.ioctl(os.open(os.path.dirname(folder), os.O_RDONLY), ADD_KEY, arg)
    identifier = bytes(arg[8:24])
    fcntl.ioctl(fd, SET_POLICY, struct.pack("=4B4x16s", 2, 1, 4, 2, identifier))
"#;

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn fscrypt_folder_with_a_foreign_policy_is_refused() {
    let script = format!(
        r#"
cat > "$D/policy.py" <<'PY'
{FOREIGN_POLICY}
PY
export PASSWORD=Pw-foreign-1 NEWPASSWORD=Pw-foreign-1
step create timeout 60 $OURS create fx --storage=fscrypt --enforce-password-policy=no
mv /home/fx.homedir /home/fx.ours
for v in v1 v2; do
    mkdir /home/fx.homedir
    step set_$v python3 "$D/policy.py" $v /home/fx.homedir
    step activate_$v timeout 60 $OURS activate fx
    step state_$v sh -c "$OURS inspect fx | grep State:"
    step left_$v sh -c 'ls -A /home/fx.homedir | wc -l; getfattr -d -m - /home/fx.homedir 2>/dev/null | grep -c fscrypt_slot; grep -c " /home/fx " /proc/self/mountinfo'
    rmdir /home/fx.homedir
done
mv /home/fx.ours /home/fx.homedir
step activate_own timeout 60 $OURS activate fx
step deactivate_own timeout 60 $OURS deactivate fx
"#
    );
    let mut options = HomeDaemon::Ours.world_options();
    options.extend(["--home-fs".to_owned(), "ext4".to_owned()]);
    let s = run_steps_with(&options, &script, 300);
    s.expect_status("create", 0);
    for (version, says) in [
        ("v1", "no homed key slot"),
        ("v2", "fscrypt policy other than v1"),
    ] {
        s.expect_status(&format!("set_{version}"), 0);
        let activate = s.get(&format!("activate_{version}"));
        assert_ne!(
            activate.status, 0,
            "{version}: a foreign folder was activated"
        );
        assert!(
            activate.stderr.contains(says),
            "{version}: unclear refusal: {}",
            activate.stderr
        );
        let state = &s.get(&format!("state_{version}")).stdout;
        assert_eq!(
            state.split_whitespace().last(),
            Some("inactive"),
            "{version}: {state}"
        );
        // Nothing written into the folder and nothing mounted.
        assert_eq!(
            lines(&s.get(&format!("left_{version}")).stdout),
            ["0", "0", "0"],
            "{version}"
        );
    }
    s.expect_status("activate_own", 0);
    s.expect_status("deactivate_own", 0);
}
