//! Code that the NSS and PAM modules bring into setuid programs reads its environment switches
//! with `secure_getenv`: a user who runs a setuid program cannot choose where homes live.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use homed_tests::world::workspace_binary;

fn probe(copy: &std::path::Path, as_nobody: bool) -> String {
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        c.arg(copy);
        c
    } else {
        Command::new(copy)
    };
    let out = cmd
        .env("SYSTEMD_HOME_ROOT", "/srv/chosen-by-the-caller")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", copy.display()));
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn a_setuid_caller_cannot_choose_the_home_root() {
    let bin = workspace_binary("HOMED_HOME_ROOT_PROBE", "examples/home_root_probe");
    let dir = tempfile::tempdir_in(bin.parent().unwrap_or(std::path::Path::new("/tmp")))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("home_root_probe");
    std::fs::copy(&bin, &copy).unwrap_or_else(|e| panic!("{e}"));
    // An ordinary program honours the variable (homed's own tools and tests use it).
    assert_eq!(probe(&copy, false), "/srv/chosen-by-the-caller");
    // A setuid-root copy run by uid 65534 does not.
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();
    assert_eq!(probe(&copy, true), "/home");
}
