//! Issue 5, acceptance 4: chauthtok through the `passwd` stack changes the home's password —
//! the old one stops working, the new one works.

use homed_tests::pam::{
    PAM_AUTHTOK_ERR, PAM_SUCCESS, Session, Shown, World, home_mounted, wait_until,
};

const USER: &str = "tuser";

fn password_change(world: &World) {
    let old = world.secret("Old-pw-3141");
    let new = world.secret("New-pw-2718");
    world.create_home(USER, &old, &[]);

    let mut s = Session::start(world, "passwd", USER);
    s.answer(&[&new, &new, &old]);
    assert_eq!(s.chauthtok(), PAM_SUCCESS, "{:?}", s.take_shown());
    assert_eq!(
        s.take_shown(),
        [
            Shown::Prompt("New password: ".into()),
            Shown::Prompt("Retype new password: ".into()),
            Shown::Prompt("Password: ".into()),
        ]
    );
    drop(s);

    // The old password no longer opens the home …
    let mut s = Session::start(world, "login", USER);
    s.answer(&[&old, ""]);
    assert_eq!(s.authenticate(), PAM_AUTHTOK_ERR, "{:?}", s.take_shown());
    drop(s);
    assert!(!home_mounted(USER));
    // … the new one does.
    let mut s = Session::start(world, "login", USER);
    s.answer(&[&new]);
    assert_eq!(s.authenticate(), PAM_SUCCESS, "{:?}", s.take_shown());
    assert_eq!(s.open_session(), PAM_SUCCESS);
    assert!(
        wait_until(10, || home_mounted(USER)),
        "the new password did not activate the home"
    );
    assert_eq!(s.close_session(), PAM_SUCCESS);
}

homed_tests::pam_scenario!(change, password_change);
