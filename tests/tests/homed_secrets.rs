//! Issue 6, acceptance 2 (the daemon's part, on the host): once the calls that carry passwords
//! have been answered, our daemon's writable memory — what a core dump of it would hold — has
//! none of the passwords it was given, right or wrong, through the bus or through PAM.

use std::process::{Command, Stdio};

use homed_tests::memory::mappings_holding;
use homed_tests::pam::{
    Daemon, Module, PAM_SUCCESS, Session, World, home_mounted, in_world, wait_until,
};

const USER: &str = "memuser";
const FIRST: &str = "Mem-first-pw-7713";
const WRONG: &str = "Mem-wrong-pw-2286";
const SECOND: &str = "Mem-second-pw-5190";
const WRONG_AT_LOGIN: &str = "Mem-login-typo-4471";
/// Kept in the record the daemon holds: the search must find it, or it finds nothing at all.
const REAL_NAME: &str = "Planted Marker Qx7Rv";

/// A Manager method through dbus-send: `ok` or the name of the error.
fn call(method: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("60")
        .arg("dbus-send")
        .args([
            "--system",
            "--print-reply",
            "--reply-timeout=60000",
            "--dest=org.freedesktop.home1",
            "/org/freedesktop/home1",
        ])
        .arg(format!("org.freedesktop.home1.Manager.{method}"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("dbus-send: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        "ok".into()
    } else {
        text.lines()
            .find_map(|l| l.strip_prefix("Error "))
            .and_then(|l| l.split(':').next())
            .unwrap_or(text.trim())
            .to_owned()
    }
}

fn secret(password: &str) -> String {
    format!(r#"string:{{"password":["{password}"]}}"#)
}

fn daemon_pid() -> u32 {
    std::env::var("HOMED_WORLD_DAEMON_PID")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the world started no daemon"))
}

/// One PAM login through `pam.d-examples/login` with `password`; returns pam_authenticate's
/// result and, when it succeeded, closes the session again.
fn login(world: &World, password: &str) -> i32 {
    let mut s = Session::start(world, "login", USER);
    s.answer(&[password]);
    let rc = s.authenticate();
    if rc == PAM_SUCCESS {
        assert_eq!(s.acct_mgmt(), PAM_SUCCESS, "{:?}", s.take_shown());
        assert_eq!(s.open_session(), PAM_SUCCESS, "{:?}", s.take_shown());
        assert!(home_mounted(USER), "the login did not activate the home");
        assert_eq!(s.close_session(), PAM_SUCCESS, "{:?}", s.take_shown());
    }
    rc
}

fn no_password_left_in_the_daemon(world: &World) {
    for p in [FIRST, WRONG, SECOND, WRONG_AT_LOGIN] {
        world.secret(p);
    }
    let pid = daemon_pid();
    // CreateHome: the record with its secret section.
    world.create_home(USER, FIRST, &[&format!("--real-name={REAL_NAME}")]);
    assert_eq!(
        call("ActivateHome", &["string:memuser", &secret(FIRST)]),
        "ok"
    );
    assert_eq!(
        call("AuthenticateHome", &["string:memuser", &secret(FIRST)]),
        "ok"
    );
    assert_eq!(
        call("AuthenticateHome", &["string:memuser", &secret(WRONG)]),
        "org.freedesktop.home1.BadPassword"
    );
    assert_eq!(
        call(
            "ChangePasswordHome",
            &["string:memuser", &secret(SECOND), &secret(FIRST)]
        ),
        "ok"
    );
    // UpdateHome: the record again, with the new password in its secret section.
    world.update_home(USER, SECOND, &["--location=Nowhere in particular"]);
    assert_eq!(call("DeactivateHome", &["string:memuser"]), "ok");
    // The PAM path: AcquireHome, once with a wrong password and once with the right one.
    assert_ne!(login(world, WRONG_AT_LOGIN), PAM_SUCCESS);
    assert_eq!(login(world, SECOND), PAM_SUCCESS);
    assert!(
        wait_until(30, || !home_mounted(USER)),
        "the home stayed active after the session closed"
    );

    // The search reads the daemon's live memory: the record it serves is there.
    assert!(
        !mappings_holding(pid, REAL_NAME.as_bytes()).is_empty(),
        "the memory search does not find the real name the daemon holds"
    );
    for (what, password) in [
        ("the first password", FIRST),
        ("the wrong password", WRONG),
        ("the new password", SECOND),
        ("the password mistyped at login", WRONG_AT_LOGIN),
    ] {
        let held = mappings_holding(pid, password.as_bytes());
        assert!(
            held.is_empty(),
            "the daemon's memory still holds {what}, in:\n{}",
            held.join("\n")
        );
    }
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn daemon_memory_holds_no_password_after_the_calls() {
    in_world(
        Daemon::Ours,
        Module::PamHomed,
        "daemon_memory_holds_no_password_after_the_calls",
        no_password_left_in_the_daemon,
    );
}
