//! Acceptance 4 of issue 4: more than `rateLimitBurst` attempts within `rateLimitIntervalUSec`
//! give AuthenticationLimitHit, after which even the right password fails until the window
//! passes; a wrong password costs 3 s; the counters show in `homectl inspect` and survive a
//! restart of the daemon. The same script runs against systemd-homed, which must agree.

use homed_tests::homed::{lines_starting_with, run_started, tagged};

const SCRIPT: &str = r#"
$START || exit 1
export NEWPASSWORD=Test-pw-123
timeout 60 homectl create tuser --storage=directory --enforce-password-policy=no \
    --rate-limit-burst=3 --rate-limit-interval=10s </dev/null >/dev/null || exit 1
auth() { r=$(call AuthenticateHome string:tuser "string:{\"password\":[\"$1\"]}" | sed -n 's/^Error \([^:]*\):.*/\1/p'); echo "AUTH $1 ${r:-ok}"; }
inspect() { homectl inspect tuser | grep -E "Login OK|Good Auth|Bad Auth|Auth. Limit|Next Try" | sed "s/^ */$1 /; s/in [0-9]*s/in Ns/"; }
auth Test-pw-123
auth Test-pw-123
s=$(date +%s%N); auth wrong; echo "DELAY-MS $(( ($(date +%s%N) - s) / 1000000 ))"
auth Test-pw-123
inspect BEFORE
stop_daemon -KILL
$START || exit 1
auth Test-pw-123
inspect AFTER
# The window passes: the right password works again.
s=$(date +%s)
ok() { call AuthenticateHome string:tuser 'string:{"password":["Test-pw-123"]}' | grep -q '^method return'; }
WAIT=15 wait_for ok && echo "AUTH after window ok"
exit 0
"#;

fn run(start: &str) -> String {
    run_started(SCRIPT, start)
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn rate_limit_holds_across_restarts_as_in_systemd_homed() {
    let ours = run("start_ours");
    let theirs = run("start_reference");
    let facts = |out: &str| lines_starting_with(out, &["AUTH ", "BEFORE ", "AFTER "]);
    assert_eq!(
        facts(&ours),
        facts(&theirs),
        "ours:\n{ours}\nsystemd-homed:\n{theirs}"
    );
    assert_eq!(
        tagged(&ours, "AUTH "),
        [
            "Test-pw-123 ok",
            "Test-pw-123 ok",
            "wrong org.freedesktop.home1.BadPassword",
            "Test-pw-123 org.freedesktop.home1.AuthenticationLimitHit",
            "Test-pw-123 org.freedesktop.home1.AuthenticationLimitHit",
            "after window ok",
        ],
        "{ours}"
    );
    for when in ["BEFORE", "AFTER"] {
        let lines = tagged(&ours, &format!("{when} "));
        assert!(lines.contains(&"Good Auth.: 2"), "{when}: {lines:?}");
        assert!(lines.contains(&"Bad Auth.: 1"), "{when}: {lines:?}");
        assert!(
            lines.contains(&"Login OK: no (ratelimit)"),
            "{when}: {lines:?}"
        );
    }
    let delay: u64 = tagged(&ours, "DELAY-MS ")
        .first()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("{ours}"));
    assert!(
        (3000..6000).contains(&delay),
        "a wrong password took {delay} ms"
    );
}
