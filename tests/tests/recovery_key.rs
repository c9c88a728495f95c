//! Recovery keys: `homectl create --recovery-key=yes`, ours and systemd's, against our daemon
//! and against systemd-homed 252. The key is printed once, stored as a hash with its type, and
//! opens the home at the ordinary password prompt in either case, with or without dashes.

use homed_shared::password::recovery_key::{self, MODHEX64};
use homed_tests::homectl::{HomeDaemon, Steps, run_steps};
use secrecy::SecretString;
use serde_json::Value;

const SCRIPT: &str = r#"
export PASSWORD=Pw-rk-1111 NEWPASSWORD=Pw-rk-1111
step create_ours timeout 60 $OURS create rkours --storage=directory --enforce-password-policy=no --recovery-key=yes
step create_theirs timeout 60 $THEIRS create rktheirs --storage=directory --enforce-password-policy=no --recovery-key=yes
for u in ours theirs; do
    key=$(cat "$D/create_$u.out")
    upper=$(printf %s "$key" | tr a-z A-Z)
    bare=$(printf %s "$key" | tr -d -)
    # One modhex character changed: the right shape, the wrong key.
    wrong=$(printf %s "$key" | sed 's/^c/b/;t;s/^./c/')
    for c in ours theirs; do
        homectl=$OURS; [ $c = theirs ] && homectl=$THEIRS
        PASSWORD=$key step auth_${u}_by_${c}_key timeout 60 $homectl authenticate rk$u
        PASSWORD=$upper step auth_${u}_by_${c}_upper timeout 60 $homectl authenticate rk$u
        PASSWORD=$bare step auth_${u}_by_${c}_bare timeout 60 $homectl authenticate rk$u
    done
    PASSWORD=$wrong step auth_${u}_wrong timeout 60 $OURS authenticate rk$u
    step json_$u timeout 20 $OURS inspect rk$u -j
    step inspect_$u timeout 20 $OURS inspect rk$u
done
PASSWORD=Pw-rk-1111 step update_refused timeout 20 $OURS update rkours --recovery-key=yes
"#;

fn record(steps: &Steps, name: &str) -> Value {
    let step = steps.expect_status(name, 0);
    serde_json::from_str(step.stdout.trim())
        .unwrap_or_else(|e| panic!("step {name}: not JSON ({e}): {}", step.stdout))
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn recovery_keys_open_homes_of_either_daemon_from_either_homectl() {
    for daemon in HomeDaemon::all() {
        let s = run_steps(daemon, SCRIPT, 400);
        for creator in ["ours", "theirs"] {
            let create = s.expect_status(&format!("create_{creator}"), 0);
            // The key alone on stdout, the words around it on stderr.
            let key = create.stdout.trim();
            let canonical = recovery_key::normalize(&SecretString::from(key.to_owned()));
            assert!(
                canonical.is_some() && key.len() == 71,
                "{daemon:?}/{creator}: not a modhex64 key on stdout: {key:?}"
            );
            assert!(
                create
                    .stderr
                    .contains("A secret recovery key has been generated for this account:"),
                "{daemon:?}/{creator}: {}",
                create.stderr
            );
            assert!(create.stderr.contains(
                "The recovery key may be entered in place of a password\nwhenever authentication is requested."
            ));

            let json = record(&s, &format!("json_{creator}"));
            assert_eq!(json["recoveryKeyType"], serde_json::json!([MODHEX64]));
            let entries = json["privileged"]["recoveryKey"].as_array().unwrap();
            assert_eq!(entries.len(), 1, "{json}");
            assert_eq!(entries[0]["type"], MODHEX64);
            let hash = entries[0]["hashedPassword"].as_str().unwrap();
            assert!(recovery_key::verify(
                &SecretString::from(key.to_uppercase()),
                MODHEX64,
                hash
            ));
            assert_eq!(
                json["privileged"]["hashedPassword"]
                    .as_array()
                    .unwrap()
                    .len(),
                1
            );

            for client in ["ours", "theirs"] {
                for form in ["key", "upper", "bare"] {
                    s.expect_status(&format!("auth_{creator}_by_{client}_{form}"), 0);
                }
            }
            let wrong = s.get(&format!("auth_{creator}_wrong"));
            assert_ne!(
                wrong.status, 0,
                "{daemon:?}/{creator}: a wrong key opened the home"
            );
            let shown = &s.expect_status(&format!("inspect_{creator}"), 0).stdout;
            assert!(shown.contains("Recovery Key: 1\n"), "{shown}");
        }
        let refused = s.get("update_refused");
        assert_ne!(refused.status, 0);
        assert!(
            refused
                .stderr
                .contains("--recovery-key= is only supported when creating a home.")
        );
    }
}
