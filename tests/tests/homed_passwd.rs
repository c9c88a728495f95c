//! ChangePasswordHome as v252 does it, call for call against systemd-homed: the old secret is
//! checked, the new password replaces the old one in the host record and in the home's own
//! `.identity`, and an empty new secret only re-propagates the record.

use homed_tests::homed::{lines_starting_with, run_started, tagged};

const SCRIPT: &str = r#"
$START || exit 1
export NEWPASSWORD=Old-pw-123
timeout 60 homectl create tuser --storage=directory --enforce-password-policy=no --rate-limit-burst=1000 </dev/null >/dev/null || exit 1
c() { name=$1; shift; r=$(call "$@" | sed -n 's/^Error \([^:]*\):.*/\1/p; s/^method return.*/ok/p' | head -n1); echo "CALL $name ${r:-none}"; }
before=$(grep -c . /home/tuser.homedir/.identity)
c wrong-old ChangePasswordHome string:tuser 'string:{"password":["New-pw-456"]}' 'string:{"password":["nope"]}'
c no-old ChangePasswordHome string:tuser 'string:{"password":["New-pw-456"]}' 'string:{}'
c change ChangePasswordHome string:tuser 'string:{"password":["New-pw-456"]}' 'string:{"password":["Old-pw-123"]}'
c auth-new AuthenticateHome string:tuser 'string:{"password":["New-pw-456"]}'
c auth-old AuthenticateHome string:tuser 'string:{"password":["Old-pw-123"]}'
c repropagate ChangePasswordHome string:tuser 'string:{}' 'string:{"password":["New-pw-456"]}'
c activate-new ActivateHome string:tuser 'string:{"password":["New-pw-456"]}'
# The home's own copy carries the new hash too.
h=$(/usr/bin/python3 -c 'import json; print(json.load(open("/home/tuser/.identity"))["privileged"]["hashedPassword"][0])')
hh=$(/usr/bin/python3 -c 'import json; print(json.load(open("/var/lib/systemd/home/tuser.identity"))["privileged"]["hashedPassword"][0])')
[ "$h" = "$hh" ] && echo "EMBEDDED matches the host record"
homectl inspect tuser | sed -n 's/^ *Passwords: /PASSWORDS /p; s/^ *Local Sig.: /LOCALSIG /p'
exit 0
"#;

fn run(start: &str) -> String {
    run_started(SCRIPT, start)
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn change_password_answers_as_systemd_homed() {
    let ours = run("start_ours");
    let theirs = run("start_reference");
    let facts =
        |out: &str| lines_starting_with(out, &["CALL ", "EMBEDDED ", "PASSWORDS ", "LOCALSIG "]);
    eprintln!("{}", facts(&ours).join("\n"));
    assert_eq!(
        facts(&ours),
        facts(&theirs),
        "ours:\n{ours}\nsystemd-homed:\n{theirs}"
    );
    assert!(tagged(&ours, "CALL ").contains(&"change ok"), "{ours}");
    assert!(ours.contains("EMBEDDED matches the host record"), "{ours}");
}
