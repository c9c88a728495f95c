//! The userdb socket is open to every local user, and none of them may starve the daemon: a
//! user who opens hundreds of connections keeps at most a few dozen (the rest are closed at
//! once), half-sent requests are dropped after a few seconds, a request may not grow past
//! 64 KiB, and meanwhile logins, activations, creations and other users' lookups go on.

use homed_tests::homed::{run_started, tagged};

const FLOOD: &str = r#"
import socket, sys, time
path = "/run/systemd/userdb/io.systemd.Home"
n = int(sys.argv[1])
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    socks.append(s)
time.sleep(0.5)

def closed_by_peer(s):
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True

open_ones = [s for s in socks if not closed_by_peer(s)]
print("KEPT", len(open_ones), flush=True)
for s in open_ones:
    try:
        s.send(b'{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{')
    except OSError:
        pass
print("HOLDING", flush=True)
time.sleep(8)
print("KEPT-AFTER-PARTIAL", sum(1 for s in open_ones if not closed_by_peer(s)), flush=True)
"#;

const LOOKUP: &str = r#"
import socket, json, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect("/run/systemd/userdb/io.systemd.Home")
if sys.argv[1] == "huge":
    try:
        s.sendall(b'{"method":"' + b"x" * (100 * 1024))
        print("HUGE", "closed" if s.recv(1) == b"" else "answered")
    except (BrokenPipeError, ConnectionResetError):
        print("HUGE closed")
    sys.exit(0)
s.sendall(json.dumps({"method": "io.systemd.UserDatabase.GetUserRecord",
                      "parameters": {"userName": sys.argv[1], "service": "io.systemd.Home"}}).encode() + b"\0")
buf = b""
while not buf.endswith(b"\0"):
    d = s.recv(65536)
    if not d:
        break
    buf += d
reply = json.loads(buf.rstrip(b"\0"))
print("LOOKUP", reply.get("parameters", {}).get("record", {}).get("userName", reply.get("error")))
"#;

const SCRIPT: &str = r#"
cat >"$HOMED_WORLD_STATE/flood.py" <<'PY'
@FLOOD@
PY
cat >"$HOMED_WORLD_STATE/lookup.py" <<'PY'
@LOOKUP@
PY
chmod 0644 "$HOMED_WORLD_STATE/flood.py" "$HOMED_WORLD_STATE/lookup.py"
$START || exit 1
export NEWPASSWORD=Test-pw-123
timeout 60 homectl create tuser --storage=directory --enforce-password-policy=no </dev/null >/dev/null || exit 1
fds() { ls /proc/$DAEMON/fd | wc -l; }
echo "FDS-BEFORE $(fds)"
setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 "$HOMED_WORLD_STATE/flood.py" 1100 > "$HOMED_WORLD_STATE/flood.out" 2>&1 &
FLOOD_PID=$!
WAIT=30 wait_for grep -q HOLDING "$HOMED_WORLD_STATE/flood.out" || { cat "$HOMED_WORLD_STATE/flood.out"; exit 1; }
echo "FDS-DURING $(fds)"
r=$(call ActivateHome string:tuser 'string:{"password":["Test-pw-123"]}' | sed -n 's/^Error \([^:]*\):.*/\1/p; s/^method return.*/ok/p' | head -n1)
echo "ACTIVATE ${r:-none}"
timeout 60 homectl create newbie --storage=directory --enforce-password-policy=no </dev/null >/dev/null 2>&1 && echo "CREATE ok"
setpriv --reuid=1234 --regid=1234 --clear-groups /usr/bin/python3 "$HOMED_WORLD_STATE/lookup.py" tuser
setpriv --reuid=1234 --regid=1234 --clear-groups /usr/bin/python3 "$HOMED_WORLD_STATE/lookup.py" huge
wait $FLOOD_PID
cat "$HOMED_WORLD_STATE/flood.out"
echo "FDS-AFTER $(fds)"
exit 0
"#;

fn number(out: &str, key: &str) -> usize {
    tagged(out, key)
        .first()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in\n{out}"))
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn one_user_cannot_hold_the_userdb_socket() {
    let script = SCRIPT.replace("@FLOOD@", FLOOD).replace("@LOOKUP@", LOOKUP);
    let out = run_started(&script, "start_ours");
    let kept = number(&out, "KEPT ");
    assert!(
        kept <= 64,
        "uid 65534 kept {kept} of 1100 connections\n{out}"
    );
    assert!(kept > 0, "{out}");
    assert_eq!(number(&out, "KEPT-AFTER-PARTIAL "), 0, "{out}");
    let before = number(&out, "FDS-BEFORE ");
    let during = number(&out, "FDS-DURING ");
    assert!(
        during <= before + 64 + 8,
        "the daemon held {during} descriptors (before: {before})\n{out}"
    );
    assert!(number(&out, "FDS-AFTER ") <= before + 8, "{out}");
    assert_eq!(tagged(&out, "ACTIVATE "), ["ok"], "{out}");
    assert!(out.lines().any(|l| l == "CREATE ok"), "{out}");
    assert_eq!(tagged(&out, "LOOKUP "), ["tuser"], "{out}");
    assert_eq!(tagged(&out, "HUGE "), ["closed"], "{out}");
}
