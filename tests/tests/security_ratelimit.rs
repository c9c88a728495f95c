//! Password guessing stays slow however it is attempted: failed guesses at one home take their
//! turn (each costs the 3 s delay while the home's operation is held), found homes that are not
//! yet fixated included; the rate limit holds when its count cannot be saved; a secret carries a
//! bounded number of passwords, and a password change sets a bounded number of hashes.

use homed_tests::homed::{run_started, tagged};

/// `guess NAME N METHOD`: N wrong guesses at once by uid 65534, then how long they took.
const GUESS: &str = r#"
guess() {
    name=$1; n=$2; method=$3
    s=$(date +%s%N)
    i=0; pids=
    while [ $i -lt $n ]; do
        setpriv --reuid=65534 --regid=65534 --clear-groups dbus-send --system --print-reply --reply-timeout=120000 \
            --dest=org.freedesktop.home1 /org/freedesktop/home1 org.freedesktop.home1.Manager.$method \
            string:$name "string:{\"password\":[\"wrong-$i\"]}" $4 2>&1 | sed -n 's/^Error \([^:]*\):.*/OUTCOME \1/p' &
        pids="$pids $!"
        i=$((i+1))
    done
    wait $pids
    echo "ELAPSED-MS $(( ($(date +%s%N) - s) / 1000000 ))"
}
"#;

fn elapsed_ms(out: &str) -> u64 {
    tagged(out, "ELAPSED-MS ")
        .first()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{out}"))
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn guesses_at_a_found_home_take_their_turn() {
    let script = format!(
        r#"{GUESS}
start_reference || exit 1
export NEWPASSWORD=Moved-pw-123
timeout 60 homectl create moved --storage=directory --enforce-password-policy=no </dev/null >/dev/null || exit 1
stop_daemon
rm /var/lib/systemd/home/moved.identity
$START || exit 1
echo "LISTED $(homectl list | awk '$1 == "moved" {{print $4}}')"
guess moved 5 AcquireHome boolean:false
exit 0
"#
    );
    let out = run_started(&script, "start_ours");
    assert_eq!(tagged(&out, "LISTED "), ["unfixated"], "{out}");
    assert_eq!(
        tagged(&out, "OUTCOME "),
        ["org.freedesktop.home1.BadPassword"; 5],
        "{out}"
    );
    let ms = elapsed_ms(&out);
    assert!(
        ms >= 5 * 3000 - 500,
        "5 wrong guesses at once took {ms} ms: they did not take their turn\n{out}"
    );
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn guesses_at_a_fixated_home_take_their_turn() {
    let script = format!(
        r#"{GUESS}
$START || exit 1
export NEWPASSWORD=Test-pw-123
timeout 60 homectl create tuser --storage=directory --enforce-password-policy=no </dev/null >/dev/null || exit 1
guess tuser 4 AcquireHome boolean:false
exit 0
"#
    );
    let out = run_started(&script, "start_ours");
    assert_eq!(
        tagged(&out, "OUTCOME "),
        ["org.freedesktop.home1.BadPassword"; 4],
        "{out}"
    );
    let ms = elapsed_ms(&out);
    assert!(
        ms >= 4 * 3000 - 500,
        "4 wrong guesses at once took {ms} ms\n{out}"
    );
}

/// The record folder lives on a file system with few inodes, and a 1777 folder on it lets
/// uid 65534 use them up: the host record can no longer be rewritten.
const FULL_RECORD_FS: &str = r#"
mkdir -p /srv/small && mount -t tmpfs -o nr_inodes=64,mode=0755 small /srv/small
mkdir -m 0700 /srv/small/records && mkdir -m 1777 /srv/small/spool
mount --bind /srv/small/records /var/lib/systemd/home
$START || exit 1
export NEWPASSWORD=Test-pw-123
timeout 60 homectl create tuser --storage=directory --enforce-password-policy=no \
    --rate-limit-burst=3 --rate-limit-interval=10min </dev/null >/dev/null || exit 1
setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'i=0; while touch /srv/small/spool/f$i; do i=$((i+1)); done; echo "FILLED $i"' 2>/dev/null
touch /var/lib/systemd/home/probe 2>/dev/null && echo "STILL ROOM"
for i in 1 2 3 4 5 6; do
    r=$(setpriv --reuid=65534 --regid=65534 --clear-groups dbus-send --system --print-reply --reply-timeout=60000 \
        --dest=org.freedesktop.home1 /org/freedesktop/home1 org.freedesktop.home1.Manager.AcquireHome \
        string:tuser "string:{\"password\":[\"wrong-$i\"]}" boolean:false 2>&1 | sed -n 's/^Error \([^:]*\):.*/\1/p')
    echo "GUESS $r"
done
r=$(dbus-send --system --print-reply --dest=org.freedesktop.home1 /org/freedesktop/home1 \
    org.freedesktop.home1.Manager.AuthenticateHome string:tuser 'string:{"password":["Test-pw-123"]}' 2>&1 | sed -n 's/^Error \([^:]*\):.*/\1/p; s/^method return.*/ok/p')
echo "RIGHT $r"
exit 0
"#;

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn the_rate_limit_holds_when_the_record_cannot_be_saved() {
    let out = run_started(FULL_RECORD_FS, "start_ours");
    assert!(out.contains("FILLED "), "{out}");
    assert!(!out.contains("STILL ROOM"), "{out}");
    let guesses = tagged(&out, "GUESS ");
    let wrong = guesses
        .iter()
        .filter(|g| **g == "org.freedesktop.home1.BadPassword")
        .count();
    assert!(
        wrong <= 3,
        "{wrong} guesses were checked with a burst of 3: {guesses:?}\n{out}"
    );
    assert_eq!(
        guesses.last(),
        Some(&"org.freedesktop.home1.AuthenticationLimitHit"),
        "{out}"
    );
    assert_eq!(
        tagged(&out, "RIGHT "),
        ["org.freedesktop.home1.AuthenticationLimitHit"],
        "{out}"
    );
}

const MANY: &str = r#"
$START || exit 1
export NEWPASSWORD=Test-pw-123
timeout 60 homectl create tuser --storage=directory --enforce-password-policy=no </dev/null >/dev/null || exit 1
list() { /usr/bin/python3 -c 'import json, sys; n = int(sys.argv[1]); print(json.dumps({"password": ["wrong-%d" % i for i in range(n - 1)] + [sys.argv[2]]}))' "$@"; }
call_auth() {
    s=$(date +%s%N)
    r=$(dbus-send --system --print-reply --reply-timeout=120000 --dest=org.freedesktop.home1 /org/freedesktop/home1 \
        org.freedesktop.home1.Manager.AuthenticateHome string:tuser "string:$(list $1 Test-pw-123)" 2>&1 |
        sed -n 's/^Error \([^:]*\):.*/\1/p; s/^method return.*/ok/p')
    echo "AUTH $1 $r $(( ($(date +%s%N) - s) / 1000000 ))"
}
call_auth 16
call_auth 17
call_auth 1000
r=$(dbus-send --system --print-reply --dest=org.freedesktop.home1 /org/freedesktop/home1 \
    org.freedesktop.home1.Manager.ChangePasswordHome string:tuser \
    'string:{"password":["n1-pw-123","n2-pw-123","n3-pw-123","n4-pw-123","n5-pw-123"]}' \
    'string:{"password":["Test-pw-123"]}' 2>&1 | sed -n 's/^Error \([^:]*\):.*/\1/p; s/^method return.*/ok/p')
echo "PASSWD5 $r"
r=$(dbus-send --system --print-reply --dest=org.freedesktop.home1 /org/freedesktop/home1 \
    org.freedesktop.home1.Manager.ChangePasswordHome string:tuser \
    'string:{"password":["New-pw-456"]}' 'string:{"password":["Test-pw-123"]}' 2>&1 | sed -n 's/^Error \([^:]*\):.*/\1/p; s/^method return.*/ok/p')
echo "PASSWD1 $r"
exit 0
"#;

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn a_secret_carries_a_bounded_number_of_passwords() {
    let out = run_started(MANY, "start_ours");
    let auth = tagged(&out, "AUTH ");
    let outcome = |n: &str| {
        auth.iter()
            .find_map(|l| l.strip_prefix(&format!("{n} ")))
            .unwrap_or_else(|| panic!("no AUTH {n} in\n{out}"))
    };
    assert!(outcome("16").starts_with("ok "), "{out}");
    assert!(
        outcome("17").starts_with("org.freedesktop.DBus.Error.InvalidArgs "),
        "{out}"
    );
    let thousand = outcome("1000");
    assert!(
        thousand.starts_with("org.freedesktop.DBus.Error.InvalidArgs "),
        "{out}"
    );
    let ms: u64 = thousand
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(
        ms < 2000,
        "refusing 1000 passwords took {ms} ms (were they hashed?)"
    );
    assert_eq!(
        tagged(&out, "PASSWD5 "),
        ["org.freedesktop.DBus.Error.InvalidArgs"],
        "{out}"
    );
    assert_eq!(tagged(&out, "PASSWD1 "), ["ok"], "{out}");
}
