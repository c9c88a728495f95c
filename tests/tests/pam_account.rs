//! Issue 5, acceptance 3: the account checks of §5.4 through the login stack — each refusal
//! with its message and return code, after a successful authentication.

use homed_tests::pam::{
    PAM_ACCT_EXPIRED, PAM_MAXTRIES, PAM_NEW_AUTHTOK_REQD, PAM_SUCCESS, Session, Shown, World,
};

const PASSWORD: &str = "Account-pw-6240";

/// Authenticates `user` (which must succeed) and returns acct_mgmt's code and what it showed.
fn account(world: &World, user: &str) -> (i32, Vec<Shown>) {
    let mut s = Session::start(world, "login", user);
    s.answer(&[PASSWORD]);
    assert_eq!(s.authenticate(), PAM_SUCCESS, "{:?}", s.take_shown());
    s.take_shown();
    let code = s.acct_mgmt();
    (code, s.take_shown())
}

fn refused(world: &World, user: &str, options: &[&str], message: &str, code: i32) {
    world.create_home(user, PASSWORD, options);
    let (got, shown) = account(world, user);
    assert_eq!(got, code, "{user}: {shown:?}");
    // pam_unix may add its own words after ours (the stack goes on after `bad`).
    assert_eq!(shown.first(), Some(&Shown::Error(message.into())), "{user}");
}

fn account_refusals(world: &World) {
    refused(
        world,
        "ulocked",
        &["--locked=yes"],
        "User record is blocked, prohibiting access.",
        PAM_ACCT_EXPIRED,
    );
    refused(
        world,
        "unotyet",
        &["--not-before=2099-01-01"],
        "User record is not valid yet, prohibiting access.",
        PAM_ACCT_EXPIRED,
    );
    refused(
        world,
        "uexpired",
        &["--not-after=2001-01-01"],
        "User record is not valid anymore, prohibiting access.",
        PAM_ACCT_EXPIRED,
    );
    refused(
        world,
        "uchange",
        &["--password-change-now=yes"],
        "Password change required.",
        PAM_NEW_AUTHTOK_REQD,
    );
    // A plain user passes.
    world.create_home("uplain", PASSWORD, &[]);
    assert_eq!(account(world, "uplain"), (PAM_SUCCESS, vec![]));
}

fn rate_limited(world: &World) {
    let user = "urate";
    world.create_home(user, PASSWORD, &["--rate-limit-burst=2"]);
    // Log in until the account check refuses: how many logins the burst allows depends on how
    // many attempts each makes (systemd's module first tries without a password, which homed
    // counts too), but the refusal must come within the burst and say when to come back.
    let mut refused_by_account = false;
    for attempt in 1..=2 {
        let mut s = Session::start(world, "login", user);
        s.answer(&[PASSWORD]);
        assert_eq!(
            s.authenticate(),
            PAM_SUCCESS,
            "login {attempt}: {:?}",
            s.take_shown()
        );
        s.take_shown();
        let code = s.acct_mgmt();
        let shown = s.take_shown();
        if code == PAM_SUCCESS {
            continue;
        }
        assert_eq!(code, PAM_MAXTRIES, "login {attempt}: {shown:?}");
        match shown.first() {
            Some(Shown::Error(m)) => assert!(
                m.starts_with("Too many logins, try again in ") && m.ends_with('.'),
                "{m}"
            ),
            other => panic!("expected the rate limit message, got {other:?}"),
        }
        refused_by_account = true;
        break;
    }
    assert!(
        refused_by_account,
        "two logins with a burst of 2 were never refused"
    );
    // The next attempt is refused by homed itself.
    let mut s = Session::start(world, "login", user);
    s.answer(&[PASSWORD]);
    assert_eq!(s.authenticate(), PAM_MAXTRIES);
    let shown = s.take_shown();
    assert!(
        shown.contains(&Shown::Error(format!(
            "Too frequent login attempts for user {user}, try again later."
        ))),
        "{shown:?}"
    );
}

homed_tests::pam_scenario!(refusals, account_refusals);
homed_tests::pam_scenario!(rate_limit, rate_limited);
