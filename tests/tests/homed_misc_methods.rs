//! The rest of v252's Manager on a directory home, call for call against systemd-homed:
//! LockHome, UnlockHome, LockAllHomes, DeactivateAllHomes, Rebalance, FixateHome, ResizeHome,
//! ReleaseHome, RefHome on an inactive home, GetHomeByUID, GetUserRecordByUID, the Home
//! object's own Authenticate, CreateHome whose secret does not open its hash or that has no hash,
//! and the same calls on an unknown user.

use homed_tests::homed::{run_started, tagged};

const SCRIPT: &str = r#"
$START || exit 1
export NEWPASSWORD=Test-pw-123
timeout 60 homectl create tuser --storage=directory --enforce-password-policy=no </dev/null >/dev/null || exit 1
uid=$(id -u tuser)
pw='string:{"password":["Test-pw-123"]}'
c() { name=$1; shift; r=$(call "$@" | sed -n 's/^Error \([^:]*\):.*/\1/p; s/^method return.*/ok/p' | head -n1); echo "CALL $name ${r:-none}"; }
c ref-inactive RefHome string:tuser boolean:false
c release-inactive ReleaseHome string:tuser
c lock-inactive LockHome string:tuser
c fixate FixateHome string:tuser "$pw"
c by-uid GetHomeByUID uint32:$uid
c record-by-uid GetUserRecordByUID uint32:$uid
c by-uid-unknown GetHomeByUID uint32:60999
r=$(dbus-send --system --print-reply --dest=org.freedesktop.home1 /org/freedesktop/home1/home/tuser org.freedesktop.home1.Home.Authenticate "$pw" 2>&1 | sed -n 's/^Error \([^:]*\):.*/\1/p; s/^method return.*/ok/p' | head -n1)
echo "CALL home-object-authenticate ${r:-none}"
c activate ActivateHome string:tuser "$pw"
c lock-active LockHome string:tuser
c unlock-active UnlockHome string:tuser "$pw"
c lock-all LockAllHomes
c rebalance Rebalance
c release-active ReleaseHome string:tuser
grep -q ' /home/tuser ' /proc/self/mountinfo && echo "MOUNTED after release" || echo "UNMOUNTED after release"
c activate-again ActivateHome string:tuser "$pw"
c deactivate-all DeactivateAllHomes
grep -q ' /home/tuser ' /proc/self/mountinfo && echo "MOUNTED after deactivate-all" || echo "UNMOUNTED after deactivate-all"
h=$(openssl passwd -6 right)
c create-secret-mismatch CreateHome "string:{\"userName\":\"mism\",\"storage\":\"directory\",\"privileged\":{\"hashedPassword\":[\"$h\"]},\"secret\":{\"password\":[\"wrong\"]}}"
c create-no-hash CreateHome 'string:{"userName":"nohash","storage":"directory","secret":{"password":["x"]}}'
c create-good CreateHome "string:{\"userName\":\"good\",\"storage\":\"directory\",\"privileged\":{\"hashedPassword\":[\"$h\"]},\"secret\":{\"password\":[\"right\"]}}"
c unknown-activate ActivateHome string:nosuch "$pw"
c unknown-remove RemoveHome string:nosuch
c unknown-record GetUserRecordByName string:nosuch
exit 0
"#;

fn run(start: &str) -> String {
    run_started(SCRIPT, start)
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn other_manager_methods_answer_as_systemd_homed() {
    let ours = run("start_ours");
    let theirs = run("start_reference");
    let facts = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.starts_with("CALL ") || l.contains("after"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        facts(&ours),
        facts(&theirs),
        "ours:\n{ours}\nsystemd-homed:\n{theirs}"
    );
    assert_eq!(tagged(&ours, "CALL ").len(), 22, "{ours}");
}
