//! Issue 5, acceptance 1 (and 6): a right password activates the home through the login stack
//! of `pam.d-examples/`, the session keeps it, and the last session's end deactivates it.

use homed_tests::pam::{
    PAM_SUCCESS, Session, Shown, World, fork_child_finishes, home_mounted, reference_fds,
    wait_until,
};

const USER: &str = "tuser";
const PASSWORD: &str = "Login-pw-9421";

fn login_activates_and_logout_deactivates(world: &World) {
    world.create_home(USER, PASSWORD, &[]);
    assert!(!home_mounted(USER), "the home is active before any login");

    let mut s = Session::start(world, "login", USER);
    s.answer(&[PASSWORD]);
    assert_eq!(s.authenticate(), PAM_SUCCESS, "shown: {:?}", s.take_shown());
    // One prompt, for the password.
    assert_eq!(s.take_shown(), [Shown::Prompt("Password: ".into())]);
    assert!(
        wait_until(10, || home_mounted(USER)),
        "authentication did not activate the home"
    );
    // Exactly one reference, kept close-on-exec above the standard descriptors, so that the
    // user's shell does not inherit it.
    let fds = reference_fds(USER);
    assert_eq!(fds.len(), 1, "references held: {fds:?}");
    assert!(fds[0].fd >= 3 && fds[0].cloexec, "reference fd {fds:?}");
    assert!(
        !fds[0].please_suspend,
        "asked for a suspend reference without suspend="
    );
    assert_eq!(s.acct_mgmt(), PAM_SUCCESS, "shown: {:?}", s.take_shown());
    assert_eq!(s.open_session(), PAM_SUCCESS, "shown: {:?}", s.take_shown());
    assert_eq!(s.getenv("SYSTEMD_HOME").as_deref(), Some("1"));
    assert_eq!(s.getenv("SYSTEMD_HOME_SUSPEND").as_deref(), Some("0"));
    assert!(home_mounted(USER));
    // login forks the user's shell after open_session: a child must not hang.
    assert!(
        fork_child_finishes(10),
        "a child forked after open_session hung"
    );
    assert!(world.wait_for_log(&world.module.acquired_log(USER)));

    assert!(
        s.log_out(USER, 30),
        "the home stayed active after the last session closed"
    );
}

fn two_sessions_share_one_activation(world: &World) {
    world.create_home(USER, PASSWORD, &[]);
    let mut first = Session::start(world, "login", USER);
    first.answer(&[PASSWORD]);
    assert_eq!(first.authenticate(), PAM_SUCCESS);
    assert_eq!(first.acct_mgmt(), PAM_SUCCESS);
    assert_eq!(first.open_session(), PAM_SUCCESS);

    let mut second = Session::start(world, "login", USER);
    second.answer(&[PASSWORD]);
    assert_eq!(
        second.authenticate(),
        PAM_SUCCESS,
        "{:?}",
        second.take_shown()
    );
    assert_eq!(second.acct_mgmt(), PAM_SUCCESS);
    assert_eq!(second.open_session(), PAM_SUCCESS);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let count = mounts
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(&format!("/home/{USER}")[..]))
        .count();
    assert_eq!(count, 1, "the second session activated the home again");

    assert_eq!(first.close_session(), PAM_SUCCESS);
    drop(first);
    // The other session still holds it: give a wrongful deactivation time to show.
    #[expect(
        clippy::disallowed_methods,
        reason = "an observation window: a deactivation that should not happen can only be seen by waiting"
    )]
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        home_mounted(USER),
        "closing one of two sessions deactivated the home"
    );

    assert_eq!(second.close_session(), PAM_SUCCESS);
    drop(second);
    assert!(
        wait_until(30, || !home_mounted(USER)),
        "the home stayed active after the last session closed"
    );
}

fn suspend_from_the_environment(world: &World) {
    world.create_home(USER, PASSWORD, &[]);
    // SAFETY: set before any PAM call, while the world's only other thread (the syslog
    // listener) never reads the environment.
    unsafe { std::env::set_var("SYSTEMD_HOME_SUSPEND", "1") };
    let mut s = Session::start(world, "login", USER);
    s.answer(&[PASSWORD]);
    assert_eq!(s.authenticate(), PAM_SUCCESS, "{:?}", s.take_shown());
    assert_eq!(s.open_session(), PAM_SUCCESS);
    let fds = reference_fds(USER);
    assert_eq!(fds.len(), 1, "references held: {fds:?}");
    assert!(
        fds[0].please_suspend,
        "$SYSTEMD_HOME_SUSPEND=1 was not honoured: {fds:?}"
    );
    assert_eq!(s.getenv("SYSTEMD_HOME_SUSPEND").as_deref(), Some("1"));
    assert_eq!(s.close_session(), PAM_SUCCESS);
}

homed_tests::pam_scenario!(login_then_logout, login_activates_and_logout_deactivates);
homed_tests::pam_scenario!(two_sessions, two_sessions_share_one_activation);
homed_tests::pam_scenario!(suspend_env, suspend_from_the_environment);
