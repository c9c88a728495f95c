//! A home carried in without its host record must not choose its own UID: its folder's owner is
//! only a suggestion, taken when it lies in the home range and no home, user or group has it
//! (as homed 252 does). A folder copied in as root does not log in as root, one owned by another
//! user does not share their UID; the walk that then gives the tree to the new UID changes only
//! what the old owner owned, and never a file with a second hard link. A registered record
//! whose home directory lies outside the home root is refused before anything is mounted, and
//! not handed to NSS.

use homed_tests::homed::{VARLINK_CLIENT, run_started, tagged};

/// Creates `moved` (and `other`) with systemd-homed 252, removes moved's host record, gives its
/// folder to `$OWNER`, and starts our daemon; then moved is fixated by a login.
const FOUND: &str = r#"
$START || exit 1
export NEWPASSWORD=Moved-pw-123
timeout 60 homectl create moved --storage=directory --enforce-password-policy=no </dev/null >/dev/null || exit 1
timeout 60 homectl create other --storage=directory --enforce-password-policy=no </dev/null >/dev/null || exit 1
other_uid=$(homectl inspect other | sed -n 's/^ *UID: \([0-9]*\).*/\1/p')
old_uid=$(homectl inspect moved | sed -n 's/^ *UID: \([0-9]*\).*/\1/p')
stop_daemon
rm /var/lib/systemd/home/moved.identity
case $OWNER in other) owner=$other_uid ;; *) owner=$OWNER ;; esac
chown -R "$owner:$owner" /home/moved.homedir
echo mine > /home/moved.homedir/mine.txt && chown "$owner:$owner" /home/moved.homedir/mine.txt
echo theirs > /home/moved.homedir/theirs.txt && chown 4242:4242 /home/moved.homedir/theirs.txt
echo outside > /home/outside.txt && chown "$owner:$owner" /home/outside.txt
ln /home/outside.txt /home/moved.homedir/link.txt
start_ours || exit 1
echo "LISTED $(homectl list | awk '$1 == "moved" {print $2, $4}')"
PASSWORD=Moved-pw-123 timeout 60 homectl activate moved </dev/null >/dev/null 2>&1 && echo "ACTIVATED"
uid=$(homectl inspect moved | sed -n 's/^ *UID: \([0-9]*\).*/\1/p')
echo "UID $uid"
echo "OWNER $owner OLD $old_uid OTHER $other_uid"
getent passwd moved | cut -d: -f3 | sed 's/^/GETENT /'
grep -o '"uid" *: *[0-9]*' /var/lib/systemd/home/moved.identity | sed 's/^/BINDING /'
for f in mine.txt theirs.txt link.txt; do echo "FILE $f $(stat -c %u /home/moved/$f)"; done
echo "FILE outside $(stat -c %u /home/outside.txt)"
echo "FILE root $(stat -c %u /home/moved)"
exit 0
"#;

/// Runs [`FOUND`]: systemd-homed 252 makes the homes, our daemon finds `moved`.
fn run_found(owner: &str) -> String {
    run_started(&FOUND.replace("$OWNER", owner), "start_reference")
}

fn value(out: &str, key: &str) -> u32 {
    tagged(out, key)
        .first()
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in\n{out}"))
}

fn assert_fresh_uid(out: &str, forbidden: u32) {
    assert!(out.lines().any(|l| l == "ACTIVATED"), "{out}");
    let uid = value(out, "UID ");
    assert!(
        (60001..=60513).contains(&uid),
        "the found home got UID {uid}\n{out}"
    );
    assert_ne!(uid, forbidden, "{out}");
    assert_eq!(value(out, "GETENT "), uid, "{out}");
    assert_eq!(
        tagged(out, "BINDING "),
        [format!("\"uid\" : {uid}")],
        "{out}"
    );
    // The tree is the user's; what another user owned, and the hard-linked file, are not.
    assert_eq!(value(out, "FILE root "), uid, "{out}");
    assert_eq!(value(out, "FILE mine.txt "), uid, "{out}");
    assert_eq!(value(out, "FILE theirs.txt "), 4242, "{out}");
    assert_eq!(value(out, "FILE link.txt "), forbidden, "{out}");
    assert_eq!(value(out, "FILE outside "), forbidden, "{out}");
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn a_found_home_owned_by_root_gets_a_home_uid() {
    let out = run_found("0");
    assert_fresh_uid(&out, 0);
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn a_found_home_owned_by_another_home_gets_its_own_uid() {
    let out = run_found("other");
    let other = tagged(&out, "OWNER ")
        .first()
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert_fresh_uid(&out, other);
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn a_found_home_keeps_a_free_uid_of_the_home_range() {
    let out = run_found("60123");
    assert!(out.lines().any(|l| l == "ACTIVATED"), "{out}");
    assert_eq!(value(&out, "UID "), 60123, "{out}");
    assert_eq!(value(&out, "FILE mine.txt "), 60123, "{out}");
}

const OUTSIDE_ROOT: &str = r#"
start_ours || exit 1
export NEWPASSWORD=Test-pw-123
timeout 60 homectl create tuser --storage=directory --enforce-password-policy=no </dev/null >/dev/null || exit 1
stop_daemon
mkdir -p /srv/elsewhere
# The record, signed again by the machine's key (as any trusted signer could), names a home
# directory outside the home root; the host binding has none, as directory homes of older
# versions had.
/usr/bin/python3 - <<'PY' || exit 1
import base64, json
from cryptography.hazmat.primitives import serialization
p = "/var/lib/systemd/home/tuser.identity"
r = json.load(open(p))
r["homeDirectory"] = "/srv/elsewhere"
for b in r.get("binding", {}).values():
    b.pop("homeDirectory", None)
key = serialization.load_pem_private_key(open("/var/lib/systemd/home/local.private", "rb").read(), None)
signed = {k: v for k, v in r.items() if k not in ("binding", "status", "signature", "secret")}
text = json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
r["signature"] = [{"data": base64.b64encode(key.sign(text)).decode(), "key": public}]
json.dump(r, open(p, "w"))
PY
start_ours || exit 1
homectl list | awk '$1 == "tuser" {print "LISTED " $4}'
echo "ACTIVATE $(call ActivateHome string:tuser 'string:{"password":["Test-pw-123"]}' | sed -n 's/^Error \([^:]*\):.*/\1/p; s/^method return.*/ok/p' | head -n1)"
grep -q ' /srv/elsewhere ' /proc/self/mountinfo && echo "MOUNTED elsewhere"
grep -q ' /home/tuser ' /proc/self/mountinfo && echo "MOUNTED home"
cat >"$HOMED_WORLD_STATE/vl.py" <<'PY'
@VARLINK_CLIENT@
PY
/usr/bin/python3 "$HOMED_WORLD_STATE/vl.py" '{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{"userName":"tuser","service":"io.systemd.Home"}}' |
    grep -o 'NoRecordFound\|"userName": "tuser"' | head -n1 | sed 's/^/USERDB /'
exit 0
"#;

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn a_home_directory_outside_the_home_root_is_refused() {
    let out = run_started(
        &OUTSIDE_ROOT.replace("@VARLINK_CLIENT@", VARLINK_CLIENT),
        "start_ours",
    );
    assert_eq!(
        tagged(&out, "ACTIVATE "),
        ["org.freedesktop.DBus.Error.InvalidArgs"],
        "{out}"
    );
    assert_eq!(tagged(&out, "LISTED "), ["inactive"], "{out}");
    assert!(!out.contains("MOUNTED"), "{out}");
    assert_eq!(tagged(&out, "USERDB "), ["NoRecordFound"], "{out}");
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn a_new_directory_home_pins_its_home_directory_in_the_binding() {
    let out = run_started(
        r#"
$START || exit 1
export NEWPASSWORD=Test-pw-123
timeout 60 homectl create tuser --storage=directory --enforce-password-policy=no </dev/null >/dev/null || exit 1
/usr/bin/python3 -c 'import json; r = json.load(open("/var/lib/systemd/home/tuser.identity")); print("BINDING", [b.get("homeDirectory") for b in r["binding"].values()])'
exit 0
"#,
        "start_ours",
    );
    assert_eq!(tagged(&out, "BINDING "), ["['/home/tuser']"], "{out}");
}

/// A registered home whose folder belongs to another UID (restored from a backup, say) is given
/// back to its user at activation: only what the folder's owner owned, and no file that has a
/// second hard link.
const RESTORED: &str = r#"
$START || exit 1
export NEWPASSWORD=Test-pw-123
timeout 60 homectl create tuser --storage=directory --enforce-password-policy=no </dev/null >/dev/null || exit 1
uid=$(id -u tuser)
chown -R 60200:60200 /home/tuser.homedir
echo mine > /home/tuser.homedir/mine.txt && chown 60200:60200 /home/tuser.homedir/mine.txt
echo theirs > /home/tuser.homedir/theirs.txt && chown 4242:4242 /home/tuser.homedir/theirs.txt
echo outside > /home/outside.txt && chown 60200:60200 /home/outside.txt
ln /home/outside.txt /home/tuser.homedir/link.txt
PASSWORD=Test-pw-123 timeout 60 homectl activate tuser </dev/null >/dev/null 2>&1 && echo "ACTIVATED"
echo "UID $uid"
for f in mine.txt theirs.txt link.txt; do echo "FILE $f $(stat -c %u /home/tuser/$f)"; done
echo "FILE outside $(stat -c %u /home/outside.txt)"
exit 0
"#;

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn the_ownership_walk_leaves_other_owners_and_hard_links_alone() {
    let out = run_started(RESTORED, "start_ours");
    assert!(out.lines().any(|l| l == "ACTIVATED"), "{out}");
    let uid = value(&out, "UID ");
    assert_eq!(value(&out, "FILE mine.txt "), uid, "{out}");
    assert_eq!(value(&out, "FILE theirs.txt "), 4242, "{out}");
    assert_eq!(value(&out, "FILE link.txt "), 60200, "{out}");
    assert_eq!(value(&out, "FILE outside "), 60200, "{out}");
}
