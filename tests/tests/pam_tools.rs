//! The examples with unmodified programs: pamtester through the sshd stack (a password login),
//! and a screen locker's stack run as the locked user, who is not root.

use std::process::Command;

use homed_tests::pam::{
    PAM_SUCCESS, Session, Shown, World, home_mounted, run_with_input, wait_until,
};

const USER: &str = "tooluser";
const PASSWORD: &str = "Tool-pw-1234";

fn sshd_password_login(world: &World) {
    world.create_home(USER, PASSWORD, &[]);
    let out = world.pamtester(
        "sshd",
        USER,
        &["authenticate", "acct_mgmt", "open_session"],
        &format!("{PASSWORD}\n"),
    );
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("successfully opened a session"), "{text}");
    // pamtester ends without close_session: pam_end closes our reference, and homed
    // deactivates once nobody holds one.
    assert!(
        wait_until(30, || !home_mounted(USER)),
        "the home stayed active after the last reference went"
    );
}

fn uid_of(user: &str) -> String {
    let out = Command::new("id")
        .args(["-u", user])
        .output()
        .unwrap_or_else(|e| panic!("id: {e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn screen_locker_as_the_user(world: &World) {
    world.create_home(USER, PASSWORD, &[]);
    // A logged-in session holds the home.
    let mut session = Session::start(world, "login", USER);
    session.answer(&[PASSWORD]);
    assert_eq!(session.authenticate(), PAM_SUCCESS);
    assert_eq!(session.open_session(), PAM_SUCCESS);

    let uid = uid_of(USER);
    assert!(!uid.is_empty(), "NSS does not know {USER}");
    let locker = |password: &str| {
        run_with_input(
            Command::new("timeout").args([
                "60".to_owned(),
                "setpriv".to_owned(),
                format!("--reuid={uid}"),
                format!("--regid={uid}"),
                "--clear-groups".to_owned(),
                "pamtester".to_owned(),
                "swaylock".to_owned(),
                USER.to_owned(),
                "authenticate".to_owned(),
            ]),
            &format!("{password}\n"),
        )
    };
    let out = locker(PASSWORD);
    assert!(
        out.status.success(),
        "the user could not unlock: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let wrong = world.secret("Not-the-lock-pw");
    let out = locker(&wrong);
    assert!(
        !out.status.success(),
        "a wrong password unlocked the screen"
    );
    assert!(
        home_mounted(USER),
        "the locker's exit took the session's home away"
    );

    assert_eq!(session.close_session(), PAM_SUCCESS);
    drop(session);
    assert!(wait_until(30, || !home_mounted(USER)));
}

fn sshd_key_login_to_an_inactive_home(world: &World) {
    world.create_home(USER, PASSWORD, &[]);
    // sshd with a key: no auth hook, and no password to be had in the account hook.
    let mut s = Session::start(world, "sshd", USER);
    let code = s.acct_mgmt();
    let shown = s.take_shown();
    assert!(
        shown.contains(&Shown::Error(format!(
            "Home of user {USER} is currently not active, please log in locally first."
        ))),
        "{shown:?}"
    );
    // The module refuses (PAM_PERM_DENIED), but the account line of pam_systemd_home(8) has no
    // `perm_denied=bad`: its default=ignore lets pam_unix decide, as with systemd's module.
    assert_eq!(code, PAM_SUCCESS);
    assert!(
        !home_mounted(USER),
        "a key login activated the home without a password"
    );
}

homed_tests::pam_scenario!(sshd_password, sshd_password_login);
homed_tests::pam_scenario!(sshd_key, sshd_key_login_to_an_inactive_home);
homed_tests::pam_scenario!(screen_locker, screen_locker_as_the_user);
