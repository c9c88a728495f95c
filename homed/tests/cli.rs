//! The command line. (Having an integration test also makes `cargo test` build the `homed`
//! binary itself, which the host integration tests of homed-tests run in their worlds.)

use std::process::Command;

fn homed(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_homed"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run homed: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_names_the_sleep_modes() {
    let (code, text) = homed(&["--help"]);
    assert_eq!(code, 0, "{text}");
    for mode in ["--sleep=systemd", "--sleep=elogind", "--sleep=inhibitor"] {
        assert!(text.contains(mode), "{text}");
    }
}

#[test]
fn unknown_options_are_refused_before_anything_starts() {
    let (code, text) = homed(&["--sleep=sometimes"]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("unknown argument --sleep=sometimes"),
        "{text}"
    );
}

#[test]
fn a_worker_without_a_request_says_why() {
    let out = Command::new(env!("CARGO_BIN_EXE_homed"))
        .arg("worker")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run homed worker: {e}"));
    assert_eq!(out.status.code(), Some(1));
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["errno"], libc::EINVAL, "{reply}");
}
