//! PKCS#11 security tokens with SoftHSM2 (a real PKCS#11 module, registered with p11-kit):
//! enrolment by our homectl and by systemd's homectl 252, unlock with the PIN alone by our
//! daemon and by systemd-homed 252, the bus errors for a wrong PIN, a missing PIN and a missing
//! token, and the password still working while the token is away.
//!
//! The token lives in the world's state folder; both daemons are started with SOFTHSM2_CONF
//! pointing at it, and "removing" the token moves its folder aside so that SoftHSM finds none.

use base64::Engine as _;
use homed_tests::homectl::{HomeDaemon, Steps, run_steps_with};
use homed_tests::softhsm::{SETUP, SETUP_EC, SOFTHSM_CONF, SOFTHSM_DIR};
use serde_json::Value;

/// Per daemon: `$CLIENT` is the homectl that talks to it for activation (ours for ours, 252's
/// for 252), `$ENROL_OTHER` the homectl of the other side, which enrols a second home.
const SCRIPT: &str = r#"
bus() { timeout 60 dbus-send --system --print-reply --dest=org.freedesktop.home1 /org/freedesktop/home1 "org.freedesktop.home1.Manager.$1" "string:$2" "string:$3"; }
step list_ours timeout 30 $OURS --pkcs11-token-uri=list
PIN=123456 NEWPASSWORD=Pw-pk-1111 step create_a timeout 60 $OURS create pka --storage=directory --enforce-password-policy=no --pkcs11-token-uri=auto
PIN=123456 NEWPASSWORD=Pw-pk-1111 step create_b timeout 60 $THEIRS create pkb --storage=directory --enforce-password-policy=no --pkcs11-token-uri=pkcs11:token=homed-test
step json_a timeout 20 $OURS inspect pka -j
step json_b timeout 20 $OURS inspect pkb -j
for u in a b; do
    PIN=123456 step activate_${u}_pin timeout 60 $CLIENT activate pk$u
    step active_${u} mountpoint -q /home/pk$u
    step deactivate_${u} timeout 60 $CLIENT deactivate pk$u
done
NEWPASSWORD=Pw-pk-1111 step create_c timeout 60 $OURS create pkc --storage=directory --enforce-password-policy=no
NEWPASSWORD=Pw-pk-1111 step create_d timeout 60 $THEIRS create pkd --storage=directory --enforce-password-policy=no
PIN=123456 PASSWORD=Pw-pk-1111 step update_c timeout 60 $OURS update pkc --pkcs11-token-uri=auto
PIN=123456 PASSWORD=Pw-pk-1111 step update_d timeout 60 $THEIRS update pkd --pkcs11-token-uri=pkcs11:token=homed-test
for u in c d; do
    step json_$u timeout 20 $OURS inspect pk$u -j
    PIN=123456 step activate_${u}_pin timeout 60 $CLIENT activate pk$u
    step active_${u} mountpoint -q /home/pk$u
    step deactivate_${u} timeout 60 $CLIENT deactivate pk$u
done
# An EC key (P-256): our homectl enrols it by ECDH; 252's homectl takes RSA keys only.
# EC_TOKEN_HERE
PIN=123456 NEWPASSWORD=Pw-pk-1111 step create_ec timeout 60 $OURS create pke --storage=directory --enforce-password-policy=no --pkcs11-token-uri=pkcs11:token=homed-ec
PIN=123456 NEWPASSWORD=Pw-pk-1111 step create_ec_252 timeout 60 $THEIRS create pkf --storage=directory --enforce-password-policy=no --pkcs11-token-uri=pkcs11:token=homed-ec
step json_ec timeout 20 $OURS inspect pke -j
PIN=123456 step activate_ec_pin timeout 60 $CLIENT activate pke
step active_ec mountpoint -q /home/pke
step deactivate_ec timeout 60 $CLIENT deactivate pke
step bus_wrong_pin bus ActivateHome pka '{"tokenPin":["999999"]}'
step bus_no_pin bus ActivateHome pka '{}'
mv $H/tokens $H/tokens.away && mkdir $H/tokens
step bus_no_token bus ActivateHome pka '{"password":["Wrong-pw-1"]}'
PASSWORD=Pw-pk-1111 step activate_password timeout 60 $CLIENT activate pka
step active_password mountpoint -q /home/pka
step deactivate_password timeout 60 $CLIENT deactivate pka
step inactive sh -c '! mountpoint -q /home/pka'
rm -rf $H/tokens && mv $H/tokens.away $H/tokens
PIN=123456 step activate_back timeout 60 $CLIENT activate pka
step deactivate_back timeout 60 $CLIENT deactivate pka
"#;

fn run(daemon: HomeDaemon) -> Steps {
    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let options = daemon.world_options_with_env(&[("SOFTHSM2_CONF", SOFTHSM_CONF)], scratch.path());
    let client = match daemon {
        HomeDaemon::Ours => "$OURS",
        HomeDaemon::SystemdHomed => "$THEIRS",
    };
    // The EC token comes only when the RSA one has been enrolled with `auto` (which takes the
    // one token there is).
    let script =
        format!("{SETUP}\nCLIENT={client}\n{SCRIPT}").replace("# EC_TOKEN_HERE\n", SETUP_EC);
    let steps = run_steps_with(&options, &script, 500);
    assert!(
        steps.steps.contains_key("list_ours"),
        "{daemon:?}: the token was not set up in {SOFTHSM_DIR}\n--- world stdout\n{}\n--- world stderr\n{}",
        steps.world.stdout,
        steps.world.stderr
    );
    steps
}

fn record(steps: &Steps, name: &str) -> Value {
    let step = steps.expect_status(name, 0);
    serde_json::from_str(step.stdout.trim())
        .unwrap_or_else(|e| panic!("step {name}: not JSON ({e}): {}", step.stdout))
}

/// The error line dbus-send printed for a refused call.
fn bus_error(steps: &Steps, name: &str) -> String {
    let step = steps.get(name);
    assert_ne!(step.status, 0, "step {name} succeeded: {}", step.stdout);
    step.stderr.trim().to_owned()
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn tokens_enrolled_by_either_homectl_unlock_homes_of_either_daemon_with_the_pin() {
    let mut errors = Vec::new();
    for daemon in HomeDaemon::all() {
        let s = run(daemon);
        let list = &s.expect_status("list_ours", 0).stdout;
        assert!(
            list.contains("token=homed-test") && list.starts_with("URI"),
            "{daemon:?}: list: {list}"
        );
        s.expect_status("create_a", 0);
        s.expect_status("create_b", 0);
        // Homes made without a token get one by `homectl update` (c: ours, d: 252's).
        s.expect_status("create_c", 0);
        s.expect_status("create_d", 0);
        s.expect_status("update_c", 0);
        s.expect_status("update_d", 0);
        for u in ["a", "b", "c", "d"] {
            let json = record(&s, &format!("json_{u}"));
            let uris = json["pkcs11TokenUri"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert_eq!(uris.len(), 1, "{daemon:?}/{u}: {json}");
            let entries = json["privileged"]["pkcs11EncryptedKey"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert_eq!(entries.len(), 1, "{daemon:?}/{u}: {json}");
            assert_eq!(entries[0]["uri"], uris[0]);
            let data = base64::engine::general_purpose::STANDARD
                .decode(entries[0]["data"].as_str().unwrap_or_default())
                .unwrap_or_default();
            assert_eq!(data.len(), 256, "{daemon:?}/{u}: RSA-2048 ciphertext");
            assert!(
                entries[0]["hashedPassword"]
                    .as_str()
                    .is_some_and(|h| h.starts_with('$')),
                "{json}"
            );
            // The password stays mandatory beside the token.
            assert_eq!(
                json["privileged"]["hashedPassword"]
                    .as_array()
                    .map(Vec::len),
                Some(1)
            );
            s.expect_status(&format!("activate_{u}_pin"), 0);
            s.expect_status(&format!("active_{u}"), 0);
            s.expect_status(&format!("deactivate_{u}"), 0);
        }
        // EC: our homectl enrols an ephemeral P-256 point; our daemon opens the home with the
        // PIN. 252 takes RSA keys only: its homectl refuses to enrol, its daemon to create.
        s.expect_refused(
            "create_ec_252",
            "Failed to extract RSA key size from X509 certificate",
        );
        if daemon == HomeDaemon::Ours {
            s.expect_status("create_ec", 0);
            let ec = record(&s, "json_ec");
            let point = base64::engine::general_purpose::STANDARD
                .decode(
                    ec["privileged"]["pkcs11EncryptedKey"][0]["data"]
                        .as_str()
                        .unwrap_or_default(),
                )
                .unwrap_or_default();
            assert_eq!(
                (point.len(), point.first()),
                (65, Some(&4)),
                "an uncompressed P-256 point: {ec}"
            );
            s.expect_status("activate_ec_pin", 0);
            s.expect_status("active_ec", 0);
            s.expect_status("deactivate_ec", 0);
        } else {
            assert_ne!(s.get("create_ec").status, 0, "252 created an EC-token home");
        }
        s.expect_status("activate_password", 0);
        s.expect_status("active_password", 0);
        s.expect_status("deactivate_password", 0);
        s.expect_status("inactive", 0);
        s.expect_status("activate_back", 0);
        s.expect_status("deactivate_back", 0);
        errors.push((
            daemon,
            bus_error(&s, "bus_wrong_pin"),
            bus_error(&s, "bus_no_pin"),
            bus_error(&s, "bus_no_token"),
        ));
    }
    // SoftHSM flags its user PIN "count low" after one failed login, so 252 reports the
    // few-tries-left variant of BadPin; ours must say exactly what 252 says.
    for (daemon, wrong_pin, no_pin, no_token) in &errors {
        assert_eq!(
            wrong_pin,
            "Error org.freedesktop.home1.BadPinFewTriesLeft: Bad PIN of security token, and only a few tries left.",
            "{daemon:?}"
        );
        assert_eq!(
            no_pin, "Error org.freedesktop.home1.TokenPinNeeded: PIN for security token required.",
            "{daemon:?}"
        );
        assert_eq!(
            no_token,
            "Error org.freedesktop.home1.BadPasswordAndNoToken: Password for home pka is incorrect or not sufficient, and configured security token not found either.",
            "{daemon:?}"
        );
    }
}
