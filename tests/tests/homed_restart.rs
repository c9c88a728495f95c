//! Acceptance 8 of issue 4: a restart of the daemon, and a `kill -9`, during an active session
//! keep the home mounted; the restarted daemon reports it active and deactivates it once the
//! session's reference (held across the restarts) closes.

use homed_tests::homed::run_homed_world;

const SCRIPT: &str = r#"
start_ours || exit 1
export PASSWORD=Test-pw-123 NEWPASSWORD=Test-pw-123
timeout 60 homectl create tuser --storage=directory --enforce-password-policy=no </dev/null >/dev/null || exit 1
ls /run/homed/nss | sed 's/^/PUBLISHED /'
mounted() { grep -q ' /home/tuser ' /proc/self/mountinfo; }
unmounted() { ! mounted; }
state() { homectl inspect tuser | sed -n 's/^ *State: //p'; }
homectl with tuser -- sh -c 'cd /; exec sleep 300' </dev/null >/dev/null 2>&1 & SESSION=$!
wait_for mounted && echo "SESSION active: $(state)"
stop_daemon
mounted && echo "AFTER TERM mounted"
start_ours || exit 1
echo "RESTARTED state: $(state)"
stop_daemon -KILL
mounted && echo "AFTER KILL mounted"
start_ours || exit 1
echo "RESTARTED AGAIN state: $(state)"
kill -9 $SESSION; wait $SESSION 2>/dev/null
WAIT=5 wait_for unmounted && echo "SESSION closed: $(state)"
exit 0
"#;

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn restarts_keep_the_home_and_its_references() {
    let run = run_homed_world(false, SCRIPT, 120);
    run.assert_success();
    let out = &run.stdout;
    for line in [
        "PUBLISHED tuser.user",
        "SESSION active: active",
        "AFTER TERM mounted",
        "RESTARTED state: active",
        "AFTER KILL mounted",
        "RESTARTED AGAIN state: active",
        "SESSION closed: inactive",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
}
