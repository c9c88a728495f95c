//! Discovery (issue 4, spec §3.1): a `/home/NAME.homedir` without a host record shows up as an
//! `unfixated` home; activating it with the right password fixates it (its own `.identity`
//! becomes the host record, after the signature and the password are checked).

use homed_tests::homed::run_homed_world;

const SCRIPT: &str = r#"
start_reference || exit 1
export NEWPASSWORD=Moved-pw-123
timeout 60 homectl create moved --storage=directory --enforce-password-policy=no --real-name="Moved User" </dev/null >/dev/null || exit 1
stop_daemon
# The home arrives without its host record (as on a machine it was carried to).
rm /var/lib/systemd/home/moved.identity
start_ours || exit 1
homectl list | awk '$1 == "moved" {print "LISTED " $4}'
echo "AUTH-UNFIXATED $(call AuthenticateHome string:moved 'string:{"password":["Moved-pw-123"]}' | sed -n 's/^Error \([^:]*\):.*/\1/p')"
echo "ACTIVATE-WRONG $(call ActivateHome string:moved 'string:{"password":["wrong"]}' | sed -n 's/^Error \([^:]*\):.*/\1/p')"
[ -e /var/lib/systemd/home/moved.identity ] && echo "RECORD written too early"
PASSWORD=Moved-pw-123 timeout 60 homectl activate moved </dev/null && echo "ACTIVATED"
homectl inspect moved | sed -n 's/^ *State: /STATE /p; s/^ *Real Name: /REALNAME /p; s/^ *Local Sig.: /LOCALSIG /p'
[ -s /var/lib/systemd/home/moved.identity ] && echo "RECORD written"
exit 0
"#;

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn a_home_without_a_record_is_found_and_fixated_on_activation() {
    let run = run_homed_world(false, SCRIPT, 120);
    run.assert_success();
    let out = &run.stdout;
    for line in [
        "LISTED unfixated",
        "AUTH-UNFIXATED org.freedesktop.home1.HomeUnfixated",
        "ACTIVATE-WRONG org.freedesktop.home1.BadPassword",
        "ACTIVATED",
        "STATE active",
        "REALNAME Moved User",
        "LOCALSIG yes",
        "RECORD written",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
    assert!(!out.contains("RECORD written too early"), "{out}");
}
