//! Helpers for the daemon tests: our `homed` binary, the bus policy it ships with, and worlds
//! that run it (or systemd-homed, or one after the other).

use std::path::PathBuf;

use crate::world::{WorldRun, repo_root, run_in_world, workspace_binary};

/// A varlink client for `/run/systemd/userdb/io.systemd.Home` in Python: sends the call given
/// as its argument and prints every reply, as one JSON array, once the last one has come.
pub const VARLINK_CLIENT: &str = r#"
import socket, json, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect("/run/systemd/userdb/io.systemd.Home")
s.sendall(sys.argv[1].encode() + b"\0")
buf, out = b"", []
while True:
    d = s.recv(65536)
    if not d:
        break
    buf += d
    while b"\0" in buf:
        m, buf = buf.split(b"\0", 1)
        out.append(json.loads(m))
        if not out[-1].get("continues"):
            print(json.dumps(out)); sys.exit(0)
"#;

/// Our daemon: `$HOMED_UNDER_TEST`, else the one cargo built next to this test.
pub fn our_homed() -> PathBuf {
    workspace_binary("HOMED_UNDER_TEST", "homed")
}

/// A folder holding only the bus policy we ship (dist/dbus/org.freedesktop.home1.conf), for
/// `world.sh --dbus-policy`: the private bus then loads no other policy for the name.
pub fn policy_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    std::fs::copy(
        repo_root().join("dist/dbus/org.freedesktop.home1.conf"),
        dir.path().join("org.freedesktop.home1.conf"),
    )
    .unwrap_or_else(|e| panic!("copying the bus policy: {e}"));
    dir
}

/// Shell functions every daemon test script can use:
/// - `start_ours [ARGS]` / `start_reference`: start a daemon and wait (10 s at most) until it owns
///   org.freedesktop.home1; its PID is then in `$DAEMON`;
/// - `stop_daemon [-9]`: stop `$DAEMON` and wait until the name is free;
/// - `call METHOD ARGS...`: a Manager method through dbus-send, printing the reply or the error
///   name;
/// - `wait_for CMD...`: poll a command for `$WAIT` seconds at most (default 20).
pub fn script_prelude() -> String {
    format!(
        r#"
HOMED_BIN='{bin}'
wait_for() {{
    i=0
    while ! "$@" >/dev/null 2>&1; do
        i=$((i+1)); [ $i -lt $((${{WAIT:-20}} * 20)) ] || {{ echo "timed out waiting for: $*"; return 1; }}
        sleep 0.05
    done
}}
name_owned() {{
    dbus-send --system --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner \
        string:org.freedesktop.home1 2>/dev/null | grep -q 'boolean true'
}}
name_free() {{ ! name_owned; }}
start_ours() {{
    SYSTEMD_LOG_TARGET=console "$HOMED_BIN" "$@" >>"$HOMED_WORLD_STATE/ours.log" 2>&1 </dev/null &
    DAEMON=$!
    wait_for name_owned
}}
start_reference() {{
    SYSTEMD_LOG_TARGET=console /lib/systemd/systemd-homed >>"$HOMED_WORLD_STATE/reference.log" 2>&1 </dev/null &
    DAEMON=$!
    wait_for name_owned
}}
stop_daemon() {{
    kill ${{1:--TERM}} "$DAEMON"
    wait "$DAEMON" 2>/dev/null
    wait_for name_free
}}
call() {{
    m=$1; shift
    dbus-send --system --print-reply --reply-timeout=120000 --dest=org.freedesktop.home1 \
        /org/freedesktop/home1 org.freedesktop.home1.Manager.$m "$@" 2>&1
}}
"#,
        bin = our_homed().display()
    )
}

/// Runs `script` (after [`script_prelude`]) in a world whose bus loads only our policy, with
/// our daemon started by world.sh when `with_ours` is set.
pub fn run_homed_world(with_ours: bool, script: &str, timeout_secs: u32) -> WorldRun {
    let policy = policy_dir();
    let bin = our_homed();
    let policy_arg = policy.path().display().to_string();
    let bin_arg = bin.display().to_string();
    let mut options = vec!["--dbus-policy", policy_arg.as_str()];
    if with_ours {
        options.push("--homed");
        options.push(bin_arg.as_str());
    }
    let full = format!("{}\n{script}", script_prelude());
    run_in_world(&options, &full, timeout_secs)
}

/// The lines of `text` that start with `prefix`, without it.
pub fn tagged<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .collect()
}

/// The value printed as `KEY=value` on a line of its own.
pub fn value_of<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("{key}=");
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
}

/// Runs `script` with `$START` replaced by `start` (`start_ours` or `start_reference`) in a world
/// without a daemon of its own, and returns what it printed; panics if it failed.
pub fn run_started(script: &str, start: &str) -> String {
    let run = run_homed_world(false, &script.replace("$START", start), 180);
    run.assert_success();
    run.stdout
}

/// The lines of `text` that start with any of `prefixes`, whole: the facts two daemons' runs of
/// one script must agree on.
pub fn lines_starting_with(text: &str, prefixes: &[&str]) -> Vec<String> {
    text.lines()
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
        .map(str::to_owned)
        .collect()
}
