//! The hooks' logic against a scripted PAM handle and a scripted daemon: every prompt, message,
//! daemon call and return code of homed-spec §5.2–5.4.

mod common;

use common::{Call, Conv, FakeHome, FakePam, err, record};
use pam_homed_core::code::Code;
use pam_homed_core::flow::{PAM_PRELIM_CHECK, PAM_UPDATE_AUTHTOK};
use pam_homed_core::home::names;
use pam_homed_core::ops::CachedRecord;
use pam_homed_core::options::Options;
use pam_homed_core::{Entry, run_entry};

fn run(pam: &mut FakePam, home: &FakeHome, entry: Entry) -> Code {
    run_with(pam, home, entry, Options::default())
}

fn run_with(pam: &mut FakePam, home: &FakeHome, entry: Entry, options: Options) -> Code {
    zbus::block_on(run_entry(pam, home, options, entry))
}

const PW: &str = r#"{"password":["pw"]}"#;
/// A record field that names a FIDO2 token.
const TOKEN: &str = r#","fido2HmacCredential":["AAAA"]"#;

#[test]
fn with_a_token_the_first_attempt_goes_without_a_password() {
    let home = FakeHome::new([
        Call::UserRecord("tuser", Ok(record("tuser", TOKEN))),
        Call::Acquire("tuser", "{}", Err(err(names::BAD_PASSWORD))),
        Call::Acquire("tuser", PW, Ok(())),
    ]);
    let mut pam = FakePam::new("tuser", [Conv::Prompt("Password: ", Some("pw"))]);
    assert_eq!(run(&mut pam, &home, Entry::Authenticate), Code::PAM_SUCCESS);
}

#[test]
fn without_a_token_homed_is_not_asked_before_there_is_a_password() {
    // The prompt comes first; the one call carries the password.
    let home = FakeHome::new([
        Call::UserRecord("tuser", Ok(record("tuser", ""))),
        Call::Acquire("tuser", PW, Ok(())),
    ]);
    let mut pam = FakePam::new("tuser", [Conv::Prompt("Password: ", Some("pw"))]);
    assert_eq!(run(&mut pam, &home, Entry::Authenticate), Code::PAM_SUCCESS);
}

#[test]
fn right_password_after_a_prompt() {
    let home = FakeHome::new([
        Call::UserRecord("tuser", Ok(record("tuser", ""))),
        Call::Acquire("tuser", PW, Ok(())),
    ]);
    let mut pam = FakePam::new("tuser", [Conv::Prompt("Password: ", Some("pw"))]);
    assert_eq!(run(&mut pam, &home, Entry::Authenticate), Code::PAM_SUCCESS);
    // Later modules get the password; the reference is kept; the record is fetched again.
    assert_eq!(pam.authtok.as_deref().map(String::as_str), Some("pw"));
    assert!(pam.fds.contains_key("tuser"));
    assert_eq!(pam.cached_record_state("tuser"), CachedRecord::Missing);
    assert!(pam.logged("Home for user tuser successfully acquired."));

    // The session reuses the reference: no second AcquireHome, only the record lookup.
    home.expect([Call::UserRecord("tuser", Ok(record("tuser", "")))]);
    assert_eq!(run(&mut pam, &home, Entry::Account), Code::PAM_SUCCESS);
    assert_eq!(run(&mut pam, &home, Entry::OpenSession), Code::PAM_SUCCESS);
    assert_eq!(pam.env.get("SYSTEMD_HOME").map(String::as_str), Some("1"));
    assert_eq!(
        pam.env.get("SYSTEMD_HOME_SUSPEND").map(String::as_str),
        Some("0")
    );
    // pam_systemd's copy of the record is there.
    assert!(pam.shared_records.contains_key("tuser"));

    home.expect([Call::Release("tuser", Ok(()))]);
    assert_eq!(run(&mut pam, &home, Entry::CloseSession), Code::PAM_SUCCESS);
    assert!(pam.fds.is_empty());
}

trait CacheState {
    fn cached_record_state(&self, user: &str) -> CachedRecord;
}

impl CacheState for FakePam {
    fn cached_record_state(&self, user: &str) -> CachedRecord {
        self.records
            .get(user)
            .cloned()
            .unwrap_or(CachedRecord::Missing)
    }
}

#[test]
fn a_token_from_an_earlier_module_is_tried_first() {
    let home = FakeHome::new([
        Call::UserRecord("tuser", Ok(record("tuser", ""))),
        Call::Acquire("tuser", PW, Ok(())),
    ]);
    let mut pam = FakePam::new("tuser", []);
    pam.authtok = Some(zeroize::Zeroizing::new("pw".to_owned()));
    assert_eq!(run(&mut pam, &home, Entry::Authenticate), Code::PAM_SUCCESS);
}

#[test]
fn wrong_passwords_until_the_retries_run_out() {
    let user = "tuser";
    let incorrect = || {
        Conv::Error(format!(
            "Password incorrect or not sufficient for authentication of user {user}."
        ))
    };
    let home = FakeHome::new([
        Call::UserRecord("tuser", Ok(record("tuser", ""))),
        Call::Acquire(
            "tuser",
            r#"{"password":["a"]}"#,
            Err(err(names::BAD_PASSWORD)),
        ),
        Call::Acquire(
            "tuser",
            r#"{"password":["b","a"]}"#,
            Err(err(names::BAD_PASSWORD)),
        ),
    ]);
    let mut pam = FakePam::new(
        user,
        [
            Conv::Prompt("Password: ", Some("a")),
            incorrect(),
            Conv::Prompt("Sorry, try again: ", Some("b")),
            incorrect(),
            Conv::Prompt("Sorry, try again: ", Some("c")),
            Conv::Error("Too many unsuccessful login attempts for user tuser, refusing.".into()),
        ],
    );
    let options = Options {
        retries: 3,
        ..Options::default()
    };
    assert_eq!(
        run_with(&mut pam, &home, Entry::Authenticate, options),
        Code::PAM_MAXTRIES
    );
    assert!(pam.fds.is_empty());
    assert!(pam.authtok.is_none());
}

#[test]
fn the_default_is_five_attempts() {
    let mut calls = vec![Call::UserRecord("tuser", Ok(record("tuser", "")))];
    let secrets = [
        r#"{"password":["1"]}"#,
        r#"{"password":["2","1"]}"#,
        r#"{"password":["3","2","1"]}"#,
        r#"{"password":["4","3","2","1"]}"#,
    ];
    for s in secrets {
        calls.push(Call::Acquire("tuser", s, Err(err(names::BAD_PASSWORD))));
    }
    let home = FakeHome::new(calls);
    let mut script = vec![Conv::Prompt("Password: ", Some("1"))];
    for answer in ["2", "3", "4", "5"] {
        script.push(Conv::Error(
            "Password incorrect or not sufficient for authentication of user tuser.".into(),
        ));
        script.push(Conv::Prompt("Sorry, try again: ", Some(answer)));
    }
    script.push(Conv::Error(
        "Too many unsuccessful login attempts for user tuser, refusing.".into(),
    ));
    let mut pam = FakePam::new("tuser", script);
    assert_eq!(
        run(&mut pam, &home, Entry::Authenticate),
        Code::PAM_MAXTRIES
    );
}

#[test]
fn an_empty_answer_is_an_authtok_error() {
    let home = FakeHome::new([Call::UserRecord("tuser", Ok(record("tuser", "")))]);
    let mut pam = FakePam::new("tuser", [Conv::Prompt("Password: ", Some(""))]);
    assert_eq!(
        run(&mut pam, &home, Entry::Authenticate),
        Code::PAM_AUTHTOK_ERR
    );
}

#[test]
fn unknown_users_are_cached_and_fall_through() {
    let home = FakeHome::new([Call::UserRecord("classic", Err(err(names::NO_SUCH_HOME)))]);
    let mut pam = FakePam::new("classic", []);
    assert_eq!(
        run(&mut pam, &home, Entry::Authenticate),
        Code::PAM_USER_UNKNOWN
    );
    assert_eq!(pam.cached_record_state("classic"), CachedRecord::NotHomed);
    // Answered from the negative cache: no further calls.
    assert_eq!(run(&mut pam, &home, Entry::Account), Code::PAM_USER_UNKNOWN);
    assert_eq!(run(&mut pam, &home, Entry::OpenSession), Code::PAM_SUCCESS);
    assert_eq!(run(&mut pam, &home, Entry::CloseSession), Code::PAM_SUCCESS);
    assert!(!pam.env.contains_key("SYSTEMD_HOME"));
}

#[test]
fn no_daemon_on_the_bus_means_not_ours() {
    let home = FakeHome::new([Call::UserRecord("tuser", Err(err(names::SERVICE_UNKNOWN)))]);
    let mut pam = FakePam::new("tuser", []);
    assert_eq!(
        run(&mut pam, &home, Entry::Authenticate),
        Code::PAM_USER_UNKNOWN
    );
}

#[test]
fn root_nobody_and_bad_names_never_reach_the_daemon() {
    let home = FakeHome::new([]);
    for user in ["root", "nobody", "-x", "a b"] {
        let mut pam = FakePam::new(user, []);
        assert_eq!(
            run(&mut pam, &home, Entry::Authenticate),
            Code::PAM_USER_UNKNOWN
        );
    }
}

#[test]
fn other_lookup_errors_are_service_errors() {
    let home = FakeHome::new([Call::UserRecord(
        "tuser",
        Err(err("org.freedesktop.DBus.Error.AccessDenied")),
    )]);
    let mut pam = FakePam::new("tuser", []);
    assert_eq!(
        run(&mut pam, &home, Entry::Authenticate),
        Code::PAM_SERVICE_ERR
    );
    assert!(pam.logged("Failed to query user record"));
}

#[test]
fn a_record_for_another_user_is_refused() {
    let home = FakeHome::new([Call::UserRecord("tuser", Ok(record("other", "")))]);
    let mut pam = FakePam::new("tuser", []);
    assert_eq!(
        run(&mut pam, &home, Entry::Authenticate),
        Code::PAM_SERVICE_ERR
    );
}

#[test]
fn an_absent_home() {
    let home = FakeHome::new([
        Call::UserRecord("tuser", Ok(record("tuser", ""))),
        Call::Acquire("tuser", PW, Err(err(names::HOME_ABSENT))),
    ]);
    let mut pam = FakePam::new("tuser", [Conv::Error(
        "Home of user tuser is currently absent, please plug in the necessary storage device or backing file system.".into(),
    )]);
    pam.authtok = Some(zeroize::Zeroizing::new("pw".to_owned()));
    assert_eq!(
        run(&mut pam, &home, Entry::Authenticate),
        Code::PAM_PERM_DENIED
    );
}

#[test]
fn rate_limited_by_the_daemon() {
    let home = FakeHome::new([
        Call::UserRecord("tuser", Ok(record("tuser", ""))),
        Call::Acquire("tuser", PW, Err(err(names::AUTHENTICATION_LIMIT_HIT))),
    ]);
    let mut pam = FakePam::new(
        "tuser",
        [Conv::Error(
            "Too frequent login attempts for user tuser, try again later.".into(),
        )],
    );
    pam.authtok = Some(zeroize::Zeroizing::new("pw".to_owned()));
    assert_eq!(
        run(&mut pam, &home, Entry::Authenticate),
        Code::PAM_MAXTRIES
    );
}

#[test]
fn a_session_without_a_conversation_on_an_inactive_home() {
    // sshd with a key: no auth hook, and nobody to ask for a password.
    let home = FakeHome::new([
        Call::UserRecord("tuser", Ok(record("tuser", ""))),
        Call::Ref("tuser", Err(err(names::HOME_NOT_ACTIVE))),
    ]);
    let mut pam = FakePam::new(
        "tuser",
        [
            Conv::Prompt("Password: ", None),
            Conv::Error(
                "Home of user tuser is currently not active, please log in locally first.".into(),
            ),
        ],
    );
    assert_eq!(
        run(&mut pam, &home, Entry::OpenSession),
        Code::PAM_PERM_DENIED
    );
}

#[test]
fn a_locked_home_is_unlocked_with_a_password() {
    let home = FakeHome::new([
        Call::UserRecord("tuser", Ok(record("tuser", ""))),
        Call::Ref("tuser", Err(err(names::HOME_LOCKED))),
        Call::Acquire("tuser", PW, Ok(())),
    ]);
    let mut pam = FakePam::new("tuser", [Conv::Prompt("Password: ", Some("pw"))]);
    assert_eq!(run(&mut pam, &home, Entry::OpenSession), Code::PAM_SUCCESS);
    // Outside authentication the password is not handed on.
    assert!(pam.authtok.is_none());
}

#[test]
fn token_prompts() {
    let home = FakeHome::new([
        Call::UserRecord("tuser", Ok(record("tuser", TOKEN))),
        Call::Acquire("tuser", "{}", Err(err(names::TOKEN_PIN_NEEDED))),
        Call::Acquire(
            "tuser",
            r#"{"tokenPin":["1234"]}"#,
            Err(err(names::TOKEN_USER_PRESENCE_NEEDED)),
        ),
        Call::Acquire(
            "tuser",
            r#"{"tokenPin":["1234"],"fido2UserPresencePermitted":true}"#,
            Err(err(names::BAD_PIN_ONE_TRY_LEFT)),
        ),
        Call::Acquire(
            "tuser",
            r#"{"tokenPin":["5678"],"fido2UserPresencePermitted":true}"#,
            Ok(()),
        ),
    ]);
    let mut pam = FakePam::new(
        "tuser",
        [
            Conv::Prompt("Security token PIN: ", Some("1234")),
            Conv::Info("Please confirm presence on security token of user tuser.".into()),
            Conv::Error("Security token PIN incorrect for user tuser. (Only one try left!)".into()),
            Conv::Prompt("Sorry, retry security token PIN: ", Some("5678")),
        ],
    );
    assert_eq!(run(&mut pam, &home, Entry::Authenticate), Code::PAM_SUCCESS);
}

#[test]
fn account_refusals() {
    let cases: [(&str, &str, Code); 4] = [
        (
            r#","locked":true"#,
            "User record is blocked, prohibiting access.",
            Code::PAM_ACCT_EXPIRED,
        ),
        (
            r#","notBeforeUSec":4000000000000000"#,
            "User record is not valid yet, prohibiting access.",
            Code::PAM_ACCT_EXPIRED,
        ),
        (
            r#","notAfterUSec":1000000000000000"#,
            "User record is not valid anymore, prohibiting access.",
            Code::PAM_ACCT_EXPIRED,
        ),
        (
            r#","passwordChangeNow":true"#,
            "Password change required.",
            Code::PAM_NEW_AUTHTOK_REQD,
        ),
    ];
    for (extra, message, code) in cases {
        let home = FakeHome::new([
            Call::UserRecord("tuser", Ok(record("tuser", extra))),
            Call::Ref("tuser", Ok(())),
        ]);
        let mut pam = FakePam::new("tuser", [Conv::Error(message.into())]);
        assert_eq!(run(&mut pam, &home, Entry::Account), code, "{extra}");
    }
}

#[test]
fn closing_a_session_releases_the_home() {
    let home = FakeHome::new([
        Call::UserRecord("tuser", Ok(record("tuser", ""))),
        Call::Ref("tuser", Ok(())),
        Call::Release("tuser", Err(err(names::HOME_BUSY))),
    ]);
    let mut pam = FakePam::new("tuser", []);
    assert_eq!(run(&mut pam, &home, Entry::OpenSession), Code::PAM_SUCCESS);
    // The daemon sees our reference go before ReleaseHome: the pipe has no writer left.
    assert_eq!(run(&mut pam, &home, Entry::CloseSession), Code::PAM_SUCCESS);
    assert!(pam.logged("as it is still used"));
    let mut reader = home.readers.borrow_mut().pop().unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(std::io::Read::read(&mut reader, &mut buf).unwrap(), 0);

    // Nothing held: nothing to release, no call.
    assert_eq!(run(&mut pam, &home, Entry::CloseSession), Code::PAM_SUCCESS);
}

#[test]
fn a_failed_release_is_a_session_error() {
    let home = FakeHome::new([
        Call::UserRecord("tuser", Ok(record("tuser", ""))),
        Call::Ref("tuser", Ok(())),
        Call::Release("tuser", Err(err("org.freedesktop.home1.HomeLocked"))),
    ]);
    let mut pam = FakePam::new("tuser", []);
    assert_eq!(run(&mut pam, &home, Entry::OpenSession), Code::PAM_SUCCESS);
    assert_eq!(
        run(&mut pam, &home, Entry::CloseSession),
        Code::PAM_SESSION_ERR
    );
}

#[test]
fn password_change_asks_for_the_old_password_when_needed() {
    let home = FakeHome::new([
        Call::UserRecord("tuser", Ok(record("tuser", ""))),
        Call::UserRecord("tuser", Ok(record("tuser", ""))),
    ]);
    let mut pam = FakePam::new(
        "tuser",
        [
            Conv::NewToken("New password: ", Some("new")),
            Conv::NewToken("new password: ", Some("new")),
        ],
    );
    // The records are cached after the first lookup; reset to see both passes ask.
    assert_eq!(
        run(&mut pam, &home, Entry::ChangePassword(PAM_PRELIM_CHECK)),
        Code::PAM_SUCCESS
    );
    pam.records.clear();
    home.expect([
        Call::ChangePassword(
            "tuser",
            r#"{"password":["new"]}"#,
            "{}",
            Err(err(names::BAD_PASSWORD)),
        ),
        Call::ChangePassword(
            "tuser",
            r#"{"password":["new"]}"#,
            r#"{"password":["old"]}"#,
            Ok(()),
        ),
    ]);
    pam.expect([Conv::Prompt("Password: ", Some("old"))]);
    assert_eq!(
        run(&mut pam, &home, Entry::ChangePassword(PAM_UPDATE_AUTHTOK)),
        Code::PAM_SUCCESS
    );
    assert!(pam.logged("Successfully changed password for user tuser."));
}

#[test]
fn password_change_with_an_empty_new_password() {
    let home = FakeHome::new([Call::UserRecord("tuser", Ok(record("tuser", "")))]);
    let mut pam = FakePam::new("tuser", [Conv::NewToken("New password: ", Some(""))]);
    assert_eq!(
        run(&mut pam, &home, Entry::ChangePassword(PAM_PRELIM_CHECK)),
        Code::PAM_AUTHTOK_ERR
    );
}

#[test]
fn password_change_for_a_classic_user() {
    let home = FakeHome::new([Call::UserRecord("classic", Err(err(names::NO_SUCH_HOME)))]);
    let mut pam = FakePam::new("classic", []);
    assert_eq!(
        run(&mut pam, &home, Entry::ChangePassword(PAM_PRELIM_CHECK)),
        Code::PAM_USER_UNKNOWN
    );
}

#[test]
fn suspend_option_and_environment() {
    let home = FakeHome::new([
        Call::UserRecord("tuser", Ok(record("tuser", ""))),
        Call::Ref("tuser", Ok(())),
    ]);
    let mut pam = FakePam::new("tuser", []);
    pam.env.insert("SYSTEMD_HOME_SUSPEND".into(), "1".into());
    let options = pam_homed_core::options_for(&mut pam, &[c"debug"]);
    assert!(options.please_suspend && options.debug);
    assert_eq!(
        run_with(&mut pam, &home, Entry::OpenSession, options),
        Code::PAM_SUCCESS
    );
    assert_eq!(
        pam.env.get("SYSTEMD_HOME_SUSPEND").map(String::as_str),
        Some("1")
    );
    let options = pam_homed_core::options_for(&mut pam, &[c"suspend=no", c"bogus"]);
    assert!(!options.please_suspend);
    assert!(pam.logged("Unknown parameter 'bogus', ignoring."));
}
