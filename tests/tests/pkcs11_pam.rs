//! A login with the security token's PIN alone, through the login stack of `pam.d-examples/`,
//! with a SoftHSM2 token the test makes: systemd's homectl 252 enrols the token against our
//! daemon and pam_homed logs in; our homectl enrols it against systemd-homed 252 and
//! `pam_systemd_home.so` logs in. The only prompt is the PIN, the home is mounted for the
//! session and unmounted at its end.

use std::path::Path;
use std::process::{Command, Stdio};

use homed_tests::homectl::our_homectl;
use homed_tests::pam::{
    Daemon, Module, PAM_SUCCESS, Session, Shown, World, home_mounted, in_world_with_env, wait_until,
};
use homed_tests::softhsm::{PIN, SETUP, SOFTHSM_CONF};

const USER: &str = "pinuser";
const PASSWORD: &str = "Token-pw-4471";

fn make_token() {
    let out = Command::new("sh")
        .args(["-c", SETUP])
        .output()
        .unwrap_or_else(|e| panic!("sh: {e}"));
    assert!(
        out.status.success(),
        "the SoftHSM token was not made ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn enrol(world: &World, homectl: &Path) {
    world.secret(PASSWORD);
    world.secret(PIN);
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
        .env("PIN", PIN)
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

fn pin_login(world: &World, homectl: &Path) {
    make_token();
    enrol(world, homectl);
    let mut s = Session::start(world, "login", USER);
    s.answer(&[PIN]);
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
    assert_eq!(
        s.close_session(),
        PAM_SUCCESS,
        "shown: {:?}",
        s.take_shown()
    );
    drop(s);
    assert!(
        wait_until(20, || !home_mounted(USER)),
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
        |world| pin_login(world, Path::new("/usr/bin/homectl")),
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
        |world| pin_login(world, &ours),
    );
}
