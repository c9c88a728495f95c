//! Issue 5, acceptance 2: wrong passwords, empty answers, users homed does not know (who fall
//! through to pam_unix) and missing images, through the login stack of `pam.d-examples/`.

use homed_tests::pam::{
    CLASSIC_PASSWORD, CLASSIC_USER, PAM_AUTHTOK_ERR, PAM_MAXTRIES, PAM_PERM_DENIED, PAM_SUCCESS,
    Session, Shown, World, home_mounted,
};

const USER: &str = "tuser";
const PASSWORD: &str = "Right-pw-5133";

fn incorrect() -> Shown {
    Shown::Error(format!(
        "Password incorrect or not sufficient for authentication of user {USER}."
    ))
}

fn wrong_passwords_until_maxtries(world: &World) {
    world.create_home(USER, PASSWORD, &[]);
    let wrong: Vec<String> = (1..=5)
        .map(|i| world.secret(&format!("Wrong-pw-{i}")))
        .collect();
    let mut s = Session::start(world, "login", USER);
    s.answer(&wrong.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(s.authenticate(), PAM_MAXTRIES);
    let shown = s.take_shown();
    let mut expected = vec![Shown::Prompt("Password: ".into())];
    for _ in 0..4 {
        expected.push(incorrect());
        expected.push(Shown::Prompt("Sorry, try again: ".into()));
    }
    expected.push(Shown::Error(format!(
        "Too many unsuccessful login attempts for user {USER}, refusing."
    )));
    // Then pam_unix asks once more (the stack goes on after `maxtries=bad`), and gets nothing.
    expected.push(Shown::Prompt("Password: ".into()));
    assert_eq!(shown, expected);
    assert!(!home_mounted(USER));
}

fn an_empty_answer_is_an_authtok_error(world: &World) {
    world.create_home(USER, PASSWORD, &[]);
    let wrong = world.secret("Wrong-pw-77");
    let mut s = Session::start(world, "login", USER);
    s.answer(&[&wrong, ""]);
    assert_eq!(s.authenticate(), PAM_AUTHTOK_ERR);
    assert_eq!(
        s.take_shown()[..3],
        [
            Shown::Prompt("Password: ".into()),
            incorrect(),
            Shown::Prompt("Sorry, try again: ".into())
        ]
    );
    assert!(!home_mounted(USER));
}

fn classic_users_fall_through_to_pam_unix(world: &World) {
    // A homed user exists too, so the daemon is there and answers NoSuchHome for classic.
    world.create_home(USER, PASSWORD, &[]);
    let mut s = Session::start(world, "login", CLASSIC_USER);
    s.answer(&[CLASSIC_PASSWORD]);
    assert_eq!(s.authenticate(), PAM_SUCCESS, "{:?}", s.take_shown());
    // The only prompt is pam_unix's.
    assert_eq!(s.take_shown(), [Shown::Prompt("Password: ".into())]);
    assert_eq!(s.acct_mgmt(), PAM_SUCCESS);
    assert_eq!(s.open_session(), PAM_SUCCESS);
    assert_eq!(s.getenv("SYSTEMD_HOME"), None);
    assert_eq!(s.close_session(), PAM_SUCCESS);
    assert!(s.take_shown().is_empty());

    // A wrong password for the classic user is pam_unix's refusal.
    let mut s = Session::start(world, "login", CLASSIC_USER);
    let wrong = world.secret("Not-classic-pw");
    s.answer(&[&wrong]);
    assert_ne!(s.authenticate(), PAM_SUCCESS);
}

fn a_missing_image_is_permission_denied(world: &World) {
    world.create_home(USER, PASSWORD, &[]);
    std::fs::rename(
        format!("/home/{USER}.homedir"),
        format!("/home/{USER}.elsewhere"),
    )
    .unwrap_or_else(|e| panic!("moving the image away: {e}"));
    let mut s = Session::start(world, "login", USER);
    s.answer(&[PASSWORD]);
    assert_eq!(s.authenticate(), PAM_PERM_DENIED);
    let shown = s.take_shown();
    assert!(
        shown.contains(&Shown::Error(format!(
            "Home of user {USER} is currently absent, please plug in the necessary storage device or backing file system."
        ))),
        "{shown:?}"
    );
}

homed_tests::pam_scenario!(wrong_passwords, wrong_passwords_until_maxtries);
homed_tests::pam_scenario!(empty_answer, an_empty_answer_is_an_authtok_error);
homed_tests::pam_scenario!(classic_user, classic_users_fall_through_to_pam_unix);
homed_tests::pam_scenario!(missing_image, a_missing_image_is_permission_denied);
