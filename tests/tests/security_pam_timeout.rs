//! The record lookup pam_homed makes for every user who logs in, homed's or not, waits 25 s at
//! most: a daemon that owns org.freedesktop.home1 but never answers delays a classic user's
//! login by that, not by the two minutes allowed for activating a home.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use homed_tests::pam::{
    CLASSIC_PASSWORD, CLASSIC_USER, Daemon, Module, Session, in_world, wait_until,
};

const WEDGED: &str = include_str!("homed_bad_input_flood.py");

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn a_hung_daemon_delays_a_login_by_the_lookup_timeout_at_most() {
    in_world(
        Daemon::Ours,
        Module::PamHomed,
        "a_hung_daemon_delays_a_login_by_the_lookup_timeout_at_most",
        |world| {
            let pid = std::env::var("HOMED_WORLD_DAEMON_PID").unwrap_or_default();
            let killed = Command::new("kill").arg(&pid).status();
            assert!(killed.is_ok_and(|s| s.success()), "kill {pid}");
            let owned = || {
                Command::new("dbus-send")
                    .args([
                        "--system",
                        "--print-reply",
                        "--dest=org.freedesktop.DBus",
                        "/org/freedesktop/DBus",
                        "org.freedesktop.DBus.NameHasOwner",
                        "string:org.freedesktop.home1",
                    ])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
            };
            assert!(wait_until(10, || !owned()), "the daemon kept its name");
            let script = std::env::temp_dir().join("wedged-home1.py");
            std::fs::write(&script, WEDGED).unwrap_or_else(|e| panic!("{e}"));
            let mut wedged = Command::new("/usr/bin/python3")
                .arg(&script)
                .args(["own", "org.freedesktop.home1"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                wait_until(10, owned),
                "the wedged service did not take the name"
            );
            let started = Instant::now();
            let mut s = Session::start(world, "login", CLASSIC_USER);
            s.answer(&[CLASSIC_PASSWORD]);
            let rc = s.authenticate();
            let took = started.elapsed();
            let _ = wedged.kill();
            let _ = wedged.wait();
            assert!(
                took < Duration::from_secs(40),
                "a classic user's login took {took:?} (pam result {rc}) against a hung daemon"
            );
            assert!(
                took >= Duration::from_secs(20),
                "the lookup did not wait for the daemon at all ({took:?}): the test shows nothing"
            );
        },
    );
}
