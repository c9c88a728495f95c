//! Issue 5, acceptance 1 and 6 with a real program: su, run by a user who is not root, activates
//! the target's home for the shell it forks, hands it SYSTEMD_HOME=1, and releases the home when
//! the shell ends.

use std::process::Command;

use homed_tests::pam::{CLASSIC_UID, World, home_mounted, run_with_input, wait_until};

const USER: &str = "suuser";
const PASSWORD: &str = "Su-pw-8080";

fn su(password: &str, script: &str) -> std::process::Output {
    run_with_input(
        Command::new("timeout").args([
            "60".to_owned(),
            "setpriv".to_owned(),
            format!("--reuid={CLASSIC_UID}"),
            format!("--regid={CLASSIC_UID}"),
            "--clear-groups".to_owned(),
            "su".to_owned(),
            USER.to_owned(),
            "-c".to_owned(),
            script.to_owned(),
        ]),
        &format!("{password}\n"),
    )
}

fn su_from_a_user(world: &World) {
    world.create_home(USER, PASSWORD, &[]);
    let out = su(
        PASSWORD,
        &format!(
            "id -un; echo SYSTEMD_HOME=$SYSTEMD_HOME; \
             awk '$5 == \"/home/{USER}\"' /proc/self/mountinfo | wc -l; \
             touch /home/{USER}/written-by-su && echo wrote"
        ),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "su failed: {stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [USER, "SYSTEMD_HOME=1", "1", "wrote"],
        "stderr: {stderr}"
    );
    // su's parent closes the session when the shell is gone: the home goes with it.
    assert!(
        wait_until(30, || !home_mounted(USER)),
        "the home stayed active after su ended"
    );
    assert!(std::path::Path::new(&format!("/home/{USER}.homedir/written-by-su")).exists());

    // A wrong password gets su nowhere.
    let wrong = world.secret("Not-su-pw");
    let out = su(&wrong, "echo should-not-run");
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("should-not-run"));
    assert!(!home_mounted(USER));
}

homed_tests::pam_scenario!(su_as_user, su_from_a_user);
