//! Who may call what (DESIGN.md contract 3, as in v252), decided from the caller's bus
//! credentials: root-only methods refuse others with AccessDenied; AuthenticateHome and
//! ChangePasswordHome are open to the home's own user; AcquireHome and the queries to anyone
//! (the secret is the authentication). The same calls go to systemd-homed, which must agree.

use homed_tests::homed::{run_started, tagged};

const SCRIPT: &str = r#"
$START || exit 1
export NEWPASSWORD=Test-pw-123
timeout 60 homectl create tuser --storage=directory --enforce-password-policy=no </dev/null >/dev/null || exit 1
uid=$(id -u tuser)
as() {
    who=$1; name=$2; shift 2
    case $who in root) run= ;; owner) run="setpriv --reuid=$uid --regid=$uid --clear-groups" ;; other) run="setpriv --reuid=65534 --regid=65534 --clear-groups" ;; esac
    r=$($run dbus-send --system --print-reply --reply-timeout=60000 --dest=org.freedesktop.home1 /org/freedesktop/home1 org.freedesktop.home1.Manager.$name "$@" 2>&1 | sed -n 's/^Error \([^:]*\):.*/\1/p; s/^method return.*/ok/p' | head -n1)
    echo "CALL $who $name ${r:-none}"
}
pw='string:{"password":["Test-pw-123"]}'
as other ListHomes
as other GetUserRecordByName string:tuser
as other AuthenticateHome string:tuser "$pw"
as owner AuthenticateHome string:tuser "$pw"
as other ActivateHome string:tuser "$pw"
as owner ActivateHome string:tuser "$pw"
as root ActivateHome string:tuser "$pw"
as other DeactivateHome string:tuser
as other RefHome string:tuser boolean:false
as other LockAllHomes
as other RemoveHome string:tuser
as other ChangePasswordHome string:tuser "$pw" "$pw"
as owner ChangePasswordHome string:tuser "$pw" "$pw"
as root DeactivateHome string:tuser
# The Home object's UserRecord property: the privileged section only for root and the owner.
for who in root owner other; do
    case $who in root) run= ;; owner) run="setpriv --reuid=$uid --regid=$uid --clear-groups" ;; other) run="setpriv --reuid=65534 --regid=65534 --clear-groups" ;; esac
    r=$($run dbus-send --system --print-reply --dest=org.freedesktop.home1 /org/freedesktop/home1/home/tuser \
        org.freedesktop.DBus.Properties.Get string:org.freedesktop.home1.Home string:UserRecord 2>&1)
    incomplete=$(echo "$r" | sed -n 's/^ *boolean //p')
    echo "$r" | grep -q hashedPassword && priv=privileged || priv=public
    echo "PROPERTY $who incomplete=$incomplete $priv"
done
exit 0
"#;

fn run(start: &str) -> String {
    run_started(SCRIPT, start)
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn access_follows_the_callers_credentials_as_in_systemd_homed() {
    let ours = run("start_ours");
    let theirs = run("start_reference");
    let calls: Vec<&str> = tagged(&ours, "CALL ");
    assert_eq!(
        calls,
        tagged(&theirs, "CALL "),
        "ours:\n{ours}\nsystemd-homed:\n{theirs}"
    );
    let property = tagged(&ours, "PROPERTY ");
    assert_eq!(
        property,
        tagged(&theirs, "PROPERTY "),
        "ours:\n{ours}\nsystemd-homed:\n{theirs}"
    );
    assert_eq!(
        property,
        [
            "root incomplete=false privileged",
            "owner incomplete=false privileged",
            "other incomplete=true public"
        ]
    );
    let denied = "org.freedesktop.DBus.Error.AccessDenied";
    for (call, want) in [
        ("other ListHomes", "ok"),
        ("other GetUserRecordByName", "ok"),
        ("owner AuthenticateHome", "ok"),
        ("owner ActivateHome", denied),
        ("other DeactivateHome", denied),
        ("other RefHome", denied),
        ("other LockAllHomes", denied),
        ("root ActivateHome", "ok"),
        ("owner ChangePasswordHome", "ok"),
        ("root DeactivateHome", "ok"),
    ] {
        assert!(
            calls.contains(&format!("{call} {want}").as_str()),
            "{call} should give {want}: {calls:?}"
        );
    }
}
