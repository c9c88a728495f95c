//! The VM scenarios come from one table, `scenarios.txt`: the guest's /init runs the main and
//! daemon boots from it, and the host fails a run in which a listed scenario reported nothing
//! or a scenario reported that the table does not list.

use std::path::Path;
use std::process::Command;

fn here() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The table's rows: (boot, name, command).
fn table() -> Vec<(String, String, String)> {
    std::fs::read_to_string(here().join("scenarios.txt"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut words = l.split_whitespace();
            let boot = words.next().unwrap_or("").to_owned();
            let name = words.next().unwrap_or("").to_owned();
            let command = words.collect::<Vec<_>>().join(" ");
            (boot, name, command)
        })
        .collect()
}

fn check(results: &str) -> String {
    let dir = tempfile_dir();
    let file = dir.join("results.txt");
    std::fs::write(&file, results).unwrap();
    let out = Command::new("bash")
        .arg(here().join("vm.sh"))
        .arg("check-scenarios")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("homed-scenario-table-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_guest_runs_its_boots_from_the_table() {
    let rows = table();
    let names: Vec<&str> = rows.iter().map(|(_, n, _)| n.as_str()).collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "a name appears twice: {names:?}");
    for (boot, name, command) in &rows {
        if boot == "main" || boot == "daemon" {
            assert!(!command.is_empty(), "{name} has no command");
        }
    }
    let init = std::fs::read_to_string(here().join("init.sh")).unwrap();
    assert!(init.contains("run_table main") && init.contains("run_table daemon"));
    // No scenario of those boots is started outside the table.
    for (boot, name, _) in rows.iter().filter(|(b, _, _)| b == "main" || b == "daemon") {
        assert!(
            !init.contains(&format!("scenario {name} ")),
            "init.sh starts {name} ({boot}) by itself"
        );
    }
}

#[test]
fn a_missing_or_an_unlisted_scenario_fails_the_run() {
    let rows = table();
    let (missing, rest) = rows.split_first().unwrap();
    let mut results: String = rest
        .iter()
        .map(|(_, name, _)| format!("VMTEST PASS {name} (1 s)\n"))
        .collect();
    assert_eq!(
        check(&(results.clone() + &format!("VMTEST PASS {} (1 s)\n", missing.1))),
        ""
    );
    results.push_str("VMTEST PASS not-in-the-table (1 s)\n");
    let out = check(&results);
    assert!(
        out.contains(&format!(
            "VMTEST FAIL {} (no result: the scenario did not run)",
            missing.1
        )),
        "{out}"
    );
    assert!(
        out.contains("VMTEST FAIL not-in-the-table (a result for a scenario that scenarios.txt does not list)"),
        "{out}"
    );
}
