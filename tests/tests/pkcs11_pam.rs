//! A login with the security token's PIN alone, through the login stack of `pam.d-examples/`,
//! with a SoftHSM2 token the test makes: systemd's homectl 252 enrols the token against our
//! daemon and pam_homed logs in; our homectl enrols it against systemd-homed 252 and
//! `pam_systemd_home.so` logs in. The only prompt is the PIN, the home is mounted for the
//! session and unmounted at its end.

use std::path::Path;
use std::process::{Command, Stdio};

use homed_shared::password::verify_password;
use homed_tests::homectl::our_homectl;
use homed_tests::memory::mappings_holding;
use homed_tests::pam::{
    Daemon, Module, PAM_SUCCESS, Session, Shown, World, home_mounted, in_world_with_env, wait_until,
};
use homed_tests::softhsm::{PIN, SETUP, SOFTHSM_CONF, SOFTHSM_DIR};

const USER: &str = "pinuser";
const PASSWORD: &str = "Token-pw-4471";

fn make_token(pin: &str) {
    let out = Command::new("sh")
        .args(["-c", SETUP])
        .env("TOKEN_PIN", pin)
        .output()
        .unwrap_or_else(|e| panic!("sh: {e}"));
    assert!(
        out.status.success(),
        "the SoftHSM token was not made ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn enrol(world: &World, homectl: &Path, pin: &str) {
    world.secret(PASSWORD);
    world.secret(pin);
    let out = Command::new("timeout")
        .arg("60")
        .arg(homectl)
        .args([
            "create",
            USER,
            "--storage=directory",
            "--enforce-password-policy=no",
            "--pkcs11-token-uri=auto",
        ])
        .env("NEWPASSWORD", PASSWORD)
        .env("PIN", pin)
        .env("SOFTHSM2_CONF", SOFTHSM_CONF)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("homectl: {e}"));
    assert!(
        out.status.success(),
        "{} create --pkcs11-token-uri=auto failed: {}{}",
        homectl.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn prompts(shown: &[Shown]) -> Vec<String> {
    shown
        .iter()
        .filter_map(|s| match s {
            Shown::Prompt(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn pin_login(world: &World, homectl: &Path, pin: &str) {
    make_token(pin);
    enrol(world, homectl, pin);
    let mut s = Session::start(world, "login", USER);
    s.answer(&[pin]);
    assert_eq!(s.authenticate(), PAM_SUCCESS, "shown: {:?}", s.take_shown());
    let shown = s.take_shown();
    assert_eq!(
        prompts(&shown),
        ["Security token PIN: "],
        "the PIN is the only thing asked: {shown:?}"
    );
    assert_eq!(s.acct_mgmt(), PAM_SUCCESS, "shown: {:?}", s.take_shown());
    assert_eq!(s.open_session(), PAM_SUCCESS, "shown: {:?}", s.take_shown());
    assert!(
        wait_until(10, || home_mounted(USER)),
        "the PIN login did not activate the home"
    );
    assert!(
        s.log_out(USER, 20),
        "the home stayed mounted after the session ended"
    );
}

fn softhsm_env() -> [(&'static str, &'static str); 1] {
    [("SOFTHSM2_CONF", SOFTHSM_CONF)]
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn enrolled_by_systemd_homectl_pam_homed_logs_in_with_the_pin_alone() {
    in_world_with_env(
        Daemon::Ours,
        Module::PamHomed,
        "enrolled_by_systemd_homectl_pam_homed_logs_in_with_the_pin_alone",
        &[],
        &softhsm_env(),
        |world| pin_login(world, Path::new("/usr/bin/homectl"), PIN),
    );
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn enrolled_by_our_homectl_pam_systemd_home_logs_in_with_the_pin_alone() {
    let ours = our_homectl();
    in_world_with_env(
        Daemon::Reference,
        Module::PamSystemdHome,
        "enrolled_by_our_homectl_pam_systemd_home_logs_in_with_the_pin_alone",
        &[],
        &softhsm_env(),
        |world| pin_login(world, &ours, PIN),
    );
}

/// The password the token gave for the home: the key the record's `pkcs11EncryptedKey` holds,
/// decrypted with the token's private key (its PEM is beside the token), as Base64.
fn token_password() -> String {
    let record = Command::new("homectl")
        .args(["inspect", USER, "-j"])
        .output()
        .unwrap_or_else(|e| panic!("homectl: {e}"));
    let record: serde_json::Value =
        serde_json::from_slice(&record.stdout).unwrap_or_else(|e| panic!("inspect -j: {e}"));
    let data = record["privileged"]["pkcs11EncryptedKey"][0]["data"]
        .as_str()
        .unwrap_or_else(|| panic!("no pkcs11EncryptedKey: {record}"))
        .to_owned();
    let script = format!(
        "echo '{data}' | base64 -d | openssl pkeyutl -decrypt -inkey {SOFTHSM_DIR}/key.pem \
         -pkeyopt rsa_padding_mode:pkcs1 | base64 -w0"
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap_or_else(|e| panic!("sh: {e}"));
    let password = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let hash = record["privileged"]["pkcs11EncryptedKey"][0]["hashedPassword"]
        .as_str()
        .unwrap_or_default();
    assert!(
        verify_password(&secrecy::SecretString::from(password.clone()), hash),
        "the decrypted key is not the token's password: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    password
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn after_a_pin_login_the_daemon_holds_neither_pin_nor_token_password() {
    // A PIN that no other memory holds by chance.
    const MEMORY_PIN: &str = "Pin-mem-80417";
    in_world_with_env(
        Daemon::Ours,
        Module::PamHomed,
        "after_a_pin_login_the_daemon_holds_neither_pin_nor_token_password",
        &[],
        &softhsm_env(),
        |world| {
            pin_login(world, Path::new("/usr/bin/homectl"), MEMORY_PIN);
            let password = token_password();
            world.secret(&password);
            let pid: u32 = std::env::var("HOMED_WORLD_DAEMON_PID")
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("the world started no daemon"));
            // The search reads the live memory: the user name the daemon serves is there.
            assert!(!mappings_holding(pid, USER.as_bytes()).is_empty());
            for (what, needle) in [("the PIN", MEMORY_PIN), ("the token's password", &password)] {
                let held = mappings_holding(pid, needle.as_bytes());
                assert!(
                    held.is_empty(),
                    "the daemon's memory still holds {what}, in:\n{}",
                    held.join("\n")
                );
            }
            // The workers that talked to the token are gone with their memory.
            let workers = Command::new("pgrep")
                .args(["-P", &pid.to_string()])
                .output()
                .unwrap_or_else(|e| panic!("pgrep: {e}"));
            assert!(
                workers.stdout.is_empty(),
                "worker processes outlived the login: {}",
                String::from_utf8_lossy(&workers.stdout)
            );
        },
    );
}
