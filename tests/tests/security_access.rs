//! What an ordinary local user cannot do, on the bus and on the varlink socket: every method
//! that changes a home is refused to uid 65534 with AccessDenied and changes nothing, property
//! writes are refused, and no reply to another user carries the record's privileged section
//! (password hashes). The positive controls (root sees the hashes; root may deactivate) show
//! that the searches and the calls reach the daemon at all.

use homed_tests::homed::{VARLINK_CLIENT, run_started, tagged};

const SCRIPT: &str = r#"
$START || exit 1
export NEWPASSWORD=Test-pw-123
timeout 60 homectl create tuser --storage=directory --enforce-password-policy=no </dev/null >/dev/null || exit 1
PASSWORD=Test-pw-123 timeout 60 homectl activate tuser </dev/null >/dev/null || exit 1
uid=$(id -u tuser)
before=$(sha256sum /var/lib/systemd/home/tuser.identity)
nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
pw='string:{"password":["Test-pw-123"]}'
record='string:{"userName":"intruder","disposition":"regular"}'
first_line() { sed -n 's/^Error \([^:]*\):.*/\1/p; s/^method return.*/ok/p' | head -n1; }
manager() {
    name=$1; shift
    r=$($nobody dbus-send --system --print-reply --reply-timeout=60000 --dest=org.freedesktop.home1 \
        /org/freedesktop/home1 org.freedesktop.home1.Manager.$name "$@" 2>&1 | first_line)
    echo "MANAGER $name ${r:-none}"
}
home() {
    name=$1; shift
    r=$($nobody dbus-send --system --print-reply --reply-timeout=60000 --dest=org.freedesktop.home1 \
        /org/freedesktop/home1/home/tuser org.freedesktop.home1.Home.$name "$@" 2>&1 | first_line)
    echo "HOME $name ${r:-none}"
}
manager ActivateHome string:tuser "$pw"
manager DeactivateHome string:tuser
manager RegisterHome "$record"
manager UnregisterHome string:tuser
manager CreateHome "$record"
manager RealizeHome string:tuser "$pw"
manager RemoveHome string:tuser
manager FixateHome string:tuser "$pw"
manager AuthenticateHome string:tuser "$pw"
manager UpdateHome "string:{\"userName\":\"tuser\",\"uid\":$uid,\"realName\":\"Changed\"}"
manager ResizeHome string:tuser uint64:1073741824 "$pw"
manager ChangePasswordHome string:tuser 'string:{"password":["Other-pw-456"]}' "$pw"
manager LockHome string:tuser
manager UnlockHome string:tuser "$pw"
manager RefHome string:tuser boolean:false
manager ReleaseHome string:tuser
manager LockAllHomes
manager DeactivateAllHomes
manager Rebalance
home Activate "$pw"
home Deactivate
home Unregister
home Realize "$pw"
home Remove
home Fixate "$pw"
home Authenticate "$pw"
home Update "string:{\"userName\":\"tuser\",\"uid\":$uid,\"realName\":\"Changed\"}"
home Resize uint64:1073741824 "$pw"
home ChangePassword 'string:{"password":["Other-pw-456"]}' "$pw"
home Lock
home Unlock "$pw"
home Acquire "$pw" boolean:false
home Ref boolean:false
home Release
r=$($nobody dbus-send --system --print-reply --dest=org.freedesktop.home1 /org/freedesktop/home1/home/tuser \
    org.freedesktop.DBus.Properties.Set string:org.freedesktop.home1.Home string:State variant:string:inactive 2>&1 | first_line)
echo "SET State ${r:-none}"
# Nothing changed: the home is still active, its record the same file, no intruder registered.
echo "STATE $(homectl inspect tuser | sed -n 's/^ *State: //p')"
[ "$(sha256sum /var/lib/systemd/home/tuser.identity)" = "$before" ] && echo "RECORD unchanged"
[ -e /var/lib/systemd/home/intruder.identity ] || echo "INTRUDER absent"

# Replies to another user: no hashes, marked incomplete; root's replies have them.
cat >"$HOMED_WORLD_STATE/vl.py" <<'PY'
@VARLINK_CLIENT@
PY
chmod 0644 "$HOMED_WORLD_STATE/vl.py"
leaks() {
    who=$1; what=$2; shift 2
    out=$("$@" 2>&1)
    [ -n "$out" ] || { echo "REPLY $who $what empty"; return; }
    if echo "$out" | grep -q hashedPassword; then h=hashes; else h=nohashes; fi
    if echo "$out" | grep -qE '"incomplete" *: *true|boolean true'; then i=incomplete; else i=complete; fi
    echo "REPLY $who $what $h $i"
}
for who in root other; do
    case $who in root) run= ;; other) run=$nobody ;; esac
    leaks $who GetUserRecordByName $run dbus-send --system --print-reply --dest=org.freedesktop.home1 \
        /org/freedesktop/home1 org.freedesktop.home1.Manager.GetUserRecordByName string:tuser
    leaks $who GetUserRecordByUID $run dbus-send --system --print-reply --dest=org.freedesktop.home1 \
        /org/freedesktop/home1 org.freedesktop.home1.Manager.GetUserRecordByUID uint32:$uid
    leaks $who UserRecord $run dbus-send --system --print-reply --dest=org.freedesktop.home1 \
        /org/freedesktop/home1/home/tuser org.freedesktop.DBus.Properties.Get \
        string:org.freedesktop.home1.Home string:UserRecord
    leaks $who GetAll $run dbus-send --system --print-reply --dest=org.freedesktop.home1 \
        /org/freedesktop/home1/home/tuser org.freedesktop.DBus.Properties.GetAll string:org.freedesktop.home1.Home
    leaks $who GetManagedObjects $run dbus-send --system --print-reply --dest=org.freedesktop.home1 \
        /org/freedesktop/home1/home org.freedesktop.DBus.ObjectManager.GetManagedObjects
    leaks $who varlink-name $run /usr/bin/python3 "$HOMED_WORLD_STATE/vl.py" \
        '{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{"userName":"tuser","service":"io.systemd.Home"}}'
    leaks $who varlink-enumerate $run /usr/bin/python3 "$HOMED_WORLD_STATE/vl.py" \
        '{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{"service":"io.systemd.Home"},"more":true}'
done
$nobody dbus-send --system --print-reply --dest=org.freedesktop.home1 /org/freedesktop/home1/home \
    org.freedesktop.DBus.ObjectManager.GetManagedObjects 2>&1 | grep -q 'object path "/org/freedesktop/home1/home/tuser"' &&
    echo "OBJECTS other lists tuser"
stat -c 'PUBLISHED %n %a %U' /run/homed/nss/tuser.privileged 2>/dev/null
$nobody cat /run/homed/nss/tuser.privileged >/dev/null 2>&1 || echo "PUBLISHED unreadable-to-other"
r=$(dbus-send --system --print-reply --dest=org.freedesktop.home1 /org/freedesktop/home1 \
    org.freedesktop.home1.Manager.DeactivateHome string:tuser 2>&1 | first_line)
echo "ROOT DeactivateHome ${r:-none}"
exit 0
"#;

const MANAGER_METHODS: [&str; 19] = [
    "ActivateHome",
    "DeactivateHome",
    "RegisterHome",
    "UnregisterHome",
    "CreateHome",
    "RealizeHome",
    "RemoveHome",
    "FixateHome",
    "AuthenticateHome",
    "UpdateHome",
    "ResizeHome",
    "ChangePasswordHome",
    "LockHome",
    "UnlockHome",
    "RefHome",
    "ReleaseHome",
    "LockAllHomes",
    "DeactivateAllHomes",
    "Rebalance",
];

const HOME_METHODS: [&str; 15] = [
    "Activate",
    "Deactivate",
    "Unregister",
    "Realize",
    "Remove",
    "Fixate",
    "Authenticate",
    "Update",
    "Resize",
    "ChangePassword",
    "Lock",
    "Unlock",
    "Acquire",
    "Ref",
    "Release",
];

const QUERIES: [&str; 7] = [
    "GetUserRecordByName",
    "GetUserRecordByUID",
    "UserRecord",
    "GetAll",
    "GetManagedObjects",
    "varlink-name",
    "varlink-enumerate",
];

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn an_ordinary_user_changes_nothing_and_sees_no_privileged_field() {
    let out = run_started(
        &SCRIPT.replace("@VARLINK_CLIENT@", VARLINK_CLIENT),
        "start_ours",
    );
    let denied = |kind: &str, methods: &[&str]| {
        let lines = tagged(&out, kind);
        for method in methods {
            let want = format!("{method} org.freedesktop.DBus.Error.AccessDenied");
            assert!(
                lines.contains(&want.as_str()),
                "{kind}{method} as uid 65534: {lines:?}\n{out}"
            );
        }
        assert_eq!(lines.len(), methods.len(), "{lines:?}");
    };
    denied("MANAGER ", &MANAGER_METHODS);
    denied("HOME ", &HOME_METHODS);
    assert_eq!(
        tagged(&out, "SET "),
        ["State org.freedesktop.DBus.Error.AccessDenied"],
        "{out}"
    );
    assert_eq!(tagged(&out, "STATE "), ["active"], "{out}");
    assert_eq!(tagged(&out, "RECORD "), ["unchanged"], "{out}");
    assert_eq!(tagged(&out, "INTRUDER "), ["absent"], "{out}");

    let replies = tagged(&out, "REPLY ");
    for query in QUERIES {
        // The object manager reads properties without the caller's credentials, so it serves
        // root the public form too (systemd-homed 252 gives root the privileged section there).
        if query != "GetManagedObjects" {
            let root = format!("root {query} hashes complete");
            assert!(
                replies.contains(&root.as_str()),
                "root's {query} holds the hashes: {replies:?}\n{out}"
            );
        }
        let other = format!("other {query} nohashes incomplete");
        assert!(
            replies.contains(&other.as_str()),
            "uid 65534's {query}: {replies:?}\n{out}"
        );
    }
    assert_eq!(tagged(&out, "OBJECTS "), ["other lists tuser"], "{out}");
    assert_eq!(
        tagged(&out, "PUBLISHED "),
        [
            "/run/homed/nss/tuser.privileged 600 root",
            "unreadable-to-other"
        ],
        "{out}"
    );
    assert_eq!(tagged(&out, "ROOT "), ["DeactivateHome ok"], "{out}");
}
