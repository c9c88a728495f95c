//! Helpers for the homectl tests: which home daemon the world runs, where the two homectls
//! are, and a step runner that records each command's exit status, stdout and stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::homed::our_homed;
use crate::world::{WorldRun, daemon_wrapper, exports, repo_root, run_in_world, workspace_binary};

/// The home daemon a test world starts. Every homectl test runs once per variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HomeDaemon {
    /// The real systemd-homed 252 (`/lib/systemd/systemd-homed`).
    SystemdHomed,
    /// Our `homed`, under the bus policy we ship and nothing else.
    Ours,
}

impl HomeDaemon {
    /// The daemons the tests run against.
    pub fn all() -> Vec<HomeDaemon> {
        vec![HomeDaemon::SystemdHomed, HomeDaemon::Ours]
    }

    /// The bus policy options: ours runs under the policy file we ship (`dist/dbus`, whose
    /// `.conf` is the only policy dbus-daemon reads from there).
    fn policy_options(self) -> Vec<String> {
        match self {
            HomeDaemon::SystemdHomed => Vec::new(),
            HomeDaemon::Ours => vec![
                "--dbus-policy".into(),
                repo_root().join("dist/dbus").display().to_string(),
            ],
        }
    }

    /// The `world.sh` options that start this daemon.
    pub fn world_options(self) -> Vec<String> {
        match self {
            HomeDaemon::SystemdHomed => vec!["--homed-reference".into()],
            HomeDaemon::Ours => {
                let mut options = vec!["--homed".into(), our_homed().display().to_string()];
                options.extend(self.policy_options());
                options
            }
        }
    }

    /// The daemon's executable.
    pub fn binary(self) -> PathBuf {
        match self {
            HomeDaemon::SystemdHomed => PathBuf::from("/lib/systemd/systemd-homed"),
            HomeDaemon::Ours => our_homed(),
        }
    }

    /// `world.sh` options that start this daemon with `env` added to its environment (the
    /// daemon inherits world.sh's otherwise). The wrapper that sets it is written into
    /// `scratch`.
    pub fn world_options_with_env(self, env: &[(&str, &str)], scratch: &Path) -> Vec<String> {
        let wrapper = daemon_wrapper(
            scratch,
            "start-daemon-with-env",
            &exports(env),
            &self.binary(),
        );
        let mut options = vec!["--homed".into(), wrapper.display().to_string()];
        options.extend(self.policy_options());
        options
    }

    /// `world.sh` options that start this daemon with the host records in `records` already
    /// in `/var/lib/systemd/home` (a daemon reads them when it starts) and the keys and machine
    /// id in `keys` and `machine_id`. The wrapper that installs them is written into `scratch`.
    pub fn world_options_with_records(
        self,
        records: &Path,
        keys: &Path,
        machine_id: &str,
        scratch: &Path,
    ) -> Vec<String> {
        let setup = format!(
            "set -e\ninstall -m 0600 '{}'/*.identity /var/lib/systemd/home/\n",
            records.display()
        );
        let wrapper = daemon_wrapper(scratch, "start-daemon-with-records", &setup, &self.binary());
        let mut options = vec![
            "--homed".into(),
            wrapper.display().to_string(),
            "--keys".into(),
            keys.display().to_string(),
            "--machine-id".into(),
            machine_id.trim().to_owned(),
        ];
        options.extend(self.policy_options());
        options
    }
}

/// systemd's own homectl (Debian's, v252): the behaviour ours must match.
pub const SYSTEMD_HOMECTL: &str = "/usr/bin/homectl";

/// Our `homectl` binary: `$HOMECTL_UNDER_TEST`, else the one cargo built next to this test.
pub fn our_homectl() -> PathBuf {
    workspace_binary("HOMECTL_UNDER_TEST", "homectl")
}

/// What one step printed.
#[derive(Debug, Clone)]
pub struct Step {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The results of a world script made of `step NAME COMMAND…` lines.
pub struct Steps {
    pub world: WorldRun,
    pub steps: BTreeMap<String, Step>,
}

impl Steps {
    /// The step called `name`; panics with the world's output if it did not run.
    pub fn get(&self, name: &str) -> &Step {
        self.steps.get(name).unwrap_or_else(|| {
            panic!(
                "step {name} did not run\n--- world stdout\n{}\n--- world stderr\n{}",
                self.world.stdout, self.world.stderr
            )
        })
    }

    /// Asserts that step `name` failed and said `words` on stderr.
    pub fn expect_refused(&self, name: &str, words: &str) -> &Step {
        let step = self.get(name);
        assert_ne!(step.status, 0, "step {name} succeeded: {}", step.stdout);
        assert!(
            step.stderr.contains(words),
            "step {name} did not say {words:?}: {}",
            step.stderr
        );
        step
    }

    /// Asserts that step `name` exited with `status`.
    pub fn expect_status(&self, name: &str, status: i32) -> &Step {
        let step = self.get(name);
        assert_eq!(
            step.status, status,
            "step {name}: exit status\n--- stdout\n{}\n--- stderr\n{}",
            step.stdout, step.stderr
        );
        step
    }
}

/// Runs `body` in a world with `daemon`. The script sees `$OURS` and `$THEIRS` (the two
/// homectls) and a shell function `step NAME COMMAND…` that runs the command with standard
/// input closed and records its exit status, stdout and stderr under NAME.
pub fn run_steps(daemon: HomeDaemon, body: &str, timeout_secs: u32) -> Steps {
    run_steps_with(&daemon.world_options(), body, timeout_secs)
}

/// [`run_steps`] in a world started with `options`.
pub fn run_steps_with(options: &[String], body: &str, timeout_secs: u32) -> Steps {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let script = format!(
        "OURS='{ours}'\nTHEIRS='{theirs}'\nD='{dir}'\n\
         step() {{ n=$1; shift; \"$@\" >\"$D/$n.out\" 2>\"$D/$n.err\" </dev/null; echo $? >\"$D/$n.rc\"; }}\n\
         {body}\n",
        ours = our_homectl().display(),
        theirs = SYSTEMD_HOMECTL,
        dir = dir.path().display(),
    );
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let world = run_in_world(&options, &script, timeout_secs);
    let mut steps = BTreeMap::new();
    for entry in std::fs::read_dir(dir.path())
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("rc") {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let read =
            |ext: &str| std::fs::read_to_string(path.with_extension(ext)).unwrap_or_default();
        let status = read("rc").trim().parse().unwrap_or(-1);
        steps.insert(
            name.to_owned(),
            Step {
                status,
                stdout: read("out"),
                stderr: read("err"),
            },
        );
    }
    Steps { world, steps }
}

/// The lines of `homectl inspect` output whose label is in `tolerated` replaced by
/// `LABEL: <tolerated>`, so two outputs can be compared line by line.
pub fn mask_inspect(text: &str, tolerated: &[&str]) -> Vec<String> {
    text.lines()
        .map(|line| match line.split_once(':') {
            Some((label, _)) if tolerated.contains(&label.trim()) => {
                format!("{}: <tolerated>", label)
            }
            _ => line.to_owned(),
        })
        .collect()
}

/// Asserts two inspect outputs agree line by line, showing both on failure.
pub fn assert_same_lines(ours: &[String], theirs: &[String], what: &str) {
    if ours != theirs {
        let mut report = String::new();
        for i in 0..ours.len().max(theirs.len()) {
            let a = ours.get(i).map(String::as_str).unwrap_or("<missing>");
            let b = theirs.get(i).map(String::as_str).unwrap_or("<missing>");
            let mark = if a == b { "  " } else { "!!" };
            report.push_str(&format!("{mark} ours:   {a}\n{mark} theirs: {b}\n"));
        }
        panic!("{what}: outputs differ\n{report}");
    }
}
