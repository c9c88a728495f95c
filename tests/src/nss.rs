//! Helpers for the NSS tests: running a test body inside a private world, pointing glibc at
//! `libnss_homed.so.2` and at one of the shipped nsswitch.conf files, and publishing records
//! the way the daemon does.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use homed_shared::publish::{self, PUBLISH_DIR};
use homed_shared::record::MachineContext;
use homed_shared::signing::SigningKey;
use homed_shared::varlink::{HOME_SOCKET, UserDatabase};

use crate::world::{WorldRun, repo_root, run_in_world};

/// Set in the environment of a test binary re-run inside a world.
pub const IN_WORLD: &str = "HOMED_NSS_TEST_IN_WORLD";

pub fn in_world() -> bool {
    std::env::var_os(IN_WORLD).is_some()
}

/// Runs the test named `test` of the current binary again, alone, inside a world set up with
/// `options`, and fails if it fails there.
pub fn rerun_in_world(test: &str, options: &[&str], timeout_secs: u32) -> WorldRun {
    // Build the module out here: inside, the test only finds it.
    module_path();
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let script = format!(
        "{IN_WORLD}=1 exec '{}' --include-ignored --exact '{test}' --nocapture --test-threads=1",
        exe.display()
    );
    let run = run_in_world(options, &script, timeout_secs);
    println!("--- inside the world\n{}\n{}", run.stdout, run.stderr);
    run.assert_success();
    assert!(
        run.stdout.contains("1 passed"),
        "the test did not run inside the world\n{}",
        run.stdout
    );
    run
}

/// The module under test. `cargo test` builds the crate's rlib but not its cdylib, so outside a
/// world the module is built here, once per test binary, with `cargo build -p nss_homed`: a
/// debug build into the same target folder (`target/debug/libnss_homed.so`, which has the test
/// panic hook), a release build with the `test-hooks` feature into a folder of its own
/// (`target/test-hooks/release/`), so that the release module that gets installed stays
/// without the hook.
pub fn module_path() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let profile = exe
            .parent()
            .and_then(Path::parent)
            .ok_or("the test binary is not in a target folder")?;
        let release = profile.ends_with("release");
        let target = profile.parent().unwrap_or(profile);
        let target = if release {
            target.join("test-hooks")
        } else {
            target.to_path_buf()
        };
        let so = target
            .join(if release { "release" } else { "debug" })
            .join("libnss_homed.so");
        if in_world() {
            return Ok(so);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "-p", "nss_homed", "--target-dir"])
            .arg(&target)
            .current_dir(repo_root());
        if release {
            build.args(["--release", "--features", "test-hooks"]);
        }
        let out = build
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() || !so.is_file() {
            return Err(format!(
                "cargo build -p nss_homed failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(so)
    });
    built.clone().unwrap_or_else(|why| panic!("{why}"))
}

/// A folder holding `libnss_homed.so.2` for `LD_LIBRARY_PATH` (inside the world's scratch space).
pub fn module_dir() -> PathBuf {
    // Under the world's /run (a tmpfs), world-readable so that lookups as other users load it.
    let dir = PathBuf::from("/run/nss-test-lib");
    assert!(in_world(), "the module is only installed inside a world");
    let link = dir.join("libnss_homed.so.2");
    if link.exists() {
        return dir;
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    symlink(module_path(), &link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
    dir
}

/// A shipped nsswitch.conf.
pub fn example(name: &str) -> PathBuf {
    repo_root().join("nsswitch-examples").join(name)
}

pub const WITHOUT_SYSTEMD: &str = "without-systemd.conf";
pub const WITH_SYSTEMD: &str = "with-systemd.conf";

/// Shows `conf` as `/etc/nsswitch.conf` (inside the world's mount namespace only).
pub fn use_nsswitch(conf: &Path) {
    let _ = Command::new("umount")
        .arg("/etc/nsswitch.conf")
        .stderr(Stdio::null())
        .status();
    let status = Command::new("mount")
        .arg("--bind")
        .arg(conf)
        .arg("/etc/nsswitch.conf")
        .status()
        .unwrap_or_else(|e| panic!("mount: {e}"));
    assert!(status.success(), "cannot bind {}", conf.display());
}

/// Writes an nsswitch.conf with `text` to the world's scratch space and shows it.
pub fn use_nsswitch_text(text: &str) {
    let state = std::env::var("HOMED_WORLD_STATE").unwrap_or_else(|_| "/run/homed-world".into());
    let path = Path::new(&state).join(format!("nsswitch-{}.conf", text.len()));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    use_nsswitch(&path);
}

/// What one command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `argv` with the module on `LD_LIBRARY_PATH`, plus `env`.
pub fn run(argv: &[&str], env: &[(&str, &str)]) -> Ran {
    let output = Command::new(argv[0])
        .args(&argv[1..])
        .env("LD_LIBRARY_PATH", module_dir())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `argv` as another user, through setpriv.
pub fn run_as(uid: u32, argv: &[&str]) -> Ran {
    let reuid = format!("--reuid={uid}");
    let regid = format!("--regid={uid}");
    let mut full = vec!["setpriv", reuid.as_str(), regid.as_str(), "--clear-groups"];
    full.extend_from_slice(argv);
    run(&full, &[])
}

/// Every lookup acceptance line 1 names, for `users` (name and UID): the text a user sees.
pub fn lookups(users: &[(&str, u32)], as_uid: Option<u32>) -> String {
    let mut out = String::new();
    for (name, uid) in users {
        let uid = uid.to_string();
        for argv in [
            vec!["getent", "passwd", name],
            vec!["getent", "passwd", uid.as_str()],
            vec!["getent", "group", name],
            vec!["getent", "group", uid.as_str()],
            vec!["getent", "shadow", name],
            vec!["getent", "gshadow", name],
            vec!["id", name],
        ] {
            let ran = match as_uid {
                Some(u) => run_as(u, &argv),
                None => run(&argv, &[]),
            };
            out.push_str(&format!(
                "$ {} -> {:?}\n{}",
                argv.join(" "),
                ran.code,
                ran.stdout
            ));
        }
    }
    out
}

/// Creates a directory home with systemd's homectl (password `Test-pw-123`).
pub fn homectl_create(name: &str, extra: &[&str]) {
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "homectl", "create", name, "--storage=directory"])
        .arg("--enforce-password-policy=no")
        .args(extra)
        .env("PASSWORD", "Test-pw-123")
        .env("NEWPASSWORD", "Test-pw-123")
        .stdin(Stdio::null());
    let output = cmd.output().unwrap_or_else(|e| panic!("homectl: {e}"));
    assert!(
        output.status.success(),
        "homectl create {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// nss-systemd, as Debian configures it: the reference every answer is compared with.
pub const NSS_SYSTEMD: &str =
    "passwd: files systemd\ngroup: files systemd\nshadow: files systemd\n";

/// Creates the users of the comparisons with systemd's homectl: a non-ASCII real name with
/// memberOf and a custom shell (`jurgen`), a locked user (`lockie`), then `others` as plain
/// users. Returns each name with its UID, as the daemon reports it.
pub fn create_reference_users(others: &[&str]) -> Vec<(String, u32)> {
    homectl_create(
        "jurgen",
        &[
            "--real-name=Jürgen Ñandú-Øster",
            "--member-of=users",
            "--shell=/bin/sh",
        ],
    );
    homectl_create("lockie", &[]);
    homectl(&["update", "lockie", "--locked=yes"]);
    for name in others {
        homectl_create(name, &[]);
    }
    let machine = MachineContext::local().unwrap_or_else(|e| panic!("machine id: {e}"));
    let mut db = UserDatabase::connect(Path::new(HOME_SOCKET))
        .unwrap_or_else(|e| panic!("connect to the daemon: {e}"));
    ["jurgen", "lockie"]
        .iter()
        .chain(others)
        .map(|name| {
            let user = db
                .user_by_name(name)
                .ok()
                .flatten()
                .unwrap_or_else(|| panic!("the daemon does not know {name}"));
            let uid = user
                .record
                .view(&machine)
                .uid()
                .unwrap_or_else(|| panic!("{name} has no UID"));
            (name.to_string(), uid)
        })
        .collect()
}

/// Runs `homectl` with a timeout and the test password.
pub fn homectl(args: &[&str]) {
    let output = Command::new("timeout")
        .arg("60")
        .arg("homectl")
        .args(args)
        .env("PASSWORD", "Test-pw-123")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("homectl: {e}"));
    assert!(
        output.status.success(),
        "homectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Publishes every user the running daemon serves, as our daemon does, signed with `key`.
pub fn publish_from_daemon(key: &SigningKey) -> Vec<String> {
    let machine = MachineContext::local().unwrap_or_else(|e| panic!("machine id: {e}"));
    let mut db = UserDatabase::connect(Path::new(HOME_SOCKET))
        .unwrap_or_else(|e| panic!("connect to the daemon: {e}"));
    let users = db.all_users().unwrap_or_else(|e| panic!("list users: {e}"));
    let mut names = Vec::new();
    for user in users {
        assert!(!user.incomplete, "published records need root's view");
        publish::publish(Path::new(PUBLISH_DIR), &user.record.view(&machine), key)
            .unwrap_or_else(|e| panic!("publish: {e}"));
        names.push(user.record.user_name().to_owned());
    }
    names
}

/// Stops the world's daemon and removes its socket, as after a crash.
pub fn stop_daemon() {
    let pid = std::env::var("HOMED_WORLD_DAEMON_PID").unwrap_or_else(|_| panic!("no daemon"));
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    wait_until(Duration::from_secs(20), "the daemon to exit", || {
        !proc_dir.exists()
            || std::fs::read_to_string(proc_dir.join("stat"))
                .is_ok_and(|s| s.split(' ').nth(2) == Some("Z"))
    });
    let _ = std::fs::remove_file(HOME_SOCKET);
}

/// Polls `cond` until it holds, failing after `limit`.
pub fn wait_until(limit: Duration, what: &str, cond: impl FnMut() -> bool) {
    assert!(
        homed_shared::wait::wait_until(limit, cond),
        "timed out waiting for {what}"
    );
}

/// How many times `getent passwd` (enumeration) lists `name`.
pub fn times_listed(name: &str) -> usize {
    let ran = run(&["getent", "passwd"], &[]);
    ran.stdout
        .lines()
        .filter(|l| l.split(':').next() == Some(name))
        .count()
}
