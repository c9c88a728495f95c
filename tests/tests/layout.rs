//! The layout rules ARCHITECTURE.md states, checked: the PAM and NSS modules (and homectl) link no
//! storage code, and the engine neither matches on a storage type nor builds worker requests by
//! hand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Each package of Cargo.lock with the names of the packages it depends on.
fn lock_graph() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(repo().join("Cargo.lock")).expect("Cargo.lock");
    let mut graph = BTreeMap::new();
    for package in text.split("[[package]]").skip(1) {
        let mut name = None;
        let mut deps = Vec::new();
        let mut in_deps = false;
        for line in package.lines().map(str::trim) {
            if let Some(n) = line.strip_prefix("name = ") {
                name = Some(n.trim_matches('"').to_owned());
            } else if line.starts_with("dependencies = [") {
                in_deps = true;
            } else if in_deps && line == "]" {
                in_deps = false;
            } else if in_deps {
                // `"name"` or `"name version"`.
                let dep = line.trim_matches(|c| c == '"' || c == ',');
                deps.push(dep.split(' ').next().unwrap_or_default().to_owned());
            }
        }
        graph.insert(name.expect("a package without a name"), deps);
    }
    graph
}

fn reachable(graph: &BTreeMap<String, Vec<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_owned()];
    while let Some(p) = todo.pop() {
        if seen.insert(p.clone()) {
            todo.extend(graph.get(&p).into_iter().flatten().cloned());
        }
    }
    seen
}

#[test]
fn modules_and_cli_link_no_storage_code() {
    let graph = lock_graph();
    assert!(
        reachable(&graph, "homed").contains("homed-storage"),
        "the daemon is what links the storage crate; Cargo.lock was not read right"
    );
    for package in ["pam_homed", "pam_homed_core", "nss_homed", "homectl"] {
        assert!(
            graph.contains_key(package),
            "{package} is not in Cargo.lock"
        );
        let deps = reachable(&graph, package);
        for storage in ["homed-storage", "libcryptsetup-rs", "libcryptsetup-rs-sys"] {
            assert!(!deps.contains(storage), "{package} depends on {storage}");
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_engine_knows_no_storage_type_and_builds_no_worker_json() {
    let mut files = Vec::new();
    rust_files(&repo().join("homed/src/engine"), &mut files);
    assert!(files.len() > 10, "homed/src/engine was not found");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        for (n, line) in text.lines().enumerate() {
            let at = format!("{}:{}", file.display(), n + 1);
            assert!(
                !line.contains("Storage::"),
                "{at}: the engine names a storage type: {line}"
            );
            assert!(
                !(line.contains("json!") && line.contains("\"op\"")),
                "{at}: a worker request built by hand: {line}"
            );
            assert!(
                !line.contains("homed_storage::luks"),
                "{at}: the engine reaches into a backend: {line}"
            );
        }
    }
}
