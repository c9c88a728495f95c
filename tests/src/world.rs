//! Running a script inside the private world of `tests/sandbox/world.sh`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The real systemd-homed 252 outputs the project must agree with (`tests/fixtures`).
pub fn fixtures() -> PathBuf {
    std::env::var_os("HOMED_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/fixtures"))
}

/// What a world run printed.
pub struct WorldRun {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl WorldRun {
    fn from(output: Output) -> Self {
        WorldRun {
            status: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with everything the world printed unless the script exited 0.
    pub fn assert_success(&self) -> &Self {
        assert_eq!(
            self.status,
            Some(0),
            "world failed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `script` with `sh -c` inside a world set up with `options`, bounded by `timeout_secs`
/// (the whole world, daemons included, is killed when it runs out). Standard input is closed.
pub fn run_in_world(options: &[&str], script: &str, timeout_secs: u32) -> WorldRun {
    let output = Command::new("timeout")
        .arg("--kill-after=10")
        .arg(timeout_secs.to_string())
        .arg(repo_root().join("tests/sandbox/world.sh"))
        .args(options)
        .arg("--")
        .arg("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run world.sh: {e}"));
    WorldRun::from(output)
}

/// A binary of this workspace: `$override_var` if set, else `name` in the cargo profile folder
/// of the running test (`target/<profile>/deps/<test>` → `target/<profile>/<name>`), which
/// `make test` builds before it runs the tests.
pub fn workspace_binary(override_var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(override_var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("no current exe: {e}"));
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("unexpected test binary location {}", exe.display()));
    let bin = profile_dir.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: build it first (make test does, or cargo build --workspace)",
        bin.display()
    );
    bin
}

/// Writes `scratch/NAME`, an executable start script for a world's daemon: the shell lines
/// `setup` (the daemon inherits world.sh's environment otherwise), then `exec BINARY`.
pub fn daemon_wrapper(scratch: &Path, name: &str, setup: &str, binary: &Path) -> PathBuf {
    let wrapper = scratch.join(name);
    let text = format!("#!/bin/sh\n{setup}exec '{}'\n", binary.display());
    std::fs::write(&wrapper, text).unwrap_or_else(|e| panic!("write {name}: {e}"));
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap_or_else(|e| panic!("chmod {name}: {e}"));
    wrapper
}

/// The shell lines that export `env`, for [`daemon_wrapper`].
pub fn exports(env: &[(&str, &str)]) -> String {
    env.iter()
        .map(|(name, value)| format!("export {name}='{value}'\n"))
        .collect()
}
