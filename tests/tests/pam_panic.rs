//! A panic inside any of pam_homed's hooks (forced in test builds by the `test-panic` module
//! argument) is reported to libpam as PAM_SYSTEM_ERR, and nothing reaches the host's stderr.

use homed_tests::pam::{Daemon, Module, in_world};

const SERVICE: &str = "homed-panic";
/// pam_homed's argument that forces the panic (`pam_homed::TEST_PANIC_ARG`).
const TEST_PANIC_ARG: &str = "test-panic";

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn a_panic_in_each_hook_is_a_system_error_and_prints_nothing() {
    in_world(
        Daemon::Ours,
        Module::PamHomed,
        "a_panic_in_each_hook_is_a_system_error_and_prints_nothing",
        |world| {
            let stack = ["auth", "account", "session", "password"]
                .map(|kind| format!("{kind} required pam_homed.so {}\n", TEST_PANIC_ARG))
                .concat();
            std::fs::write(world.pam_dir.join(SERVICE), stack).unwrap();
            for op in [
                "authenticate",
                "acct_mgmt",
                "open_session",
                "close_session",
                "chauthtok",
            ] {
                let out = world.pamtester(SERVICE, "root", &[op], "");
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(!out.status.success(), "{op}: {stderr}");
                // pamtester's own lines only: "System error" is PAM_SYSTEM_ERR's text.
                assert!(
                    stderr.lines().all(|l| l.starts_with("pamtester: ")),
                    "{op} printed into stderr: {stderr}"
                );
                assert!(stderr.contains("System error"), "{op}: {stderr}");
                assert!(out.stdout.is_empty(), "{op}: {:?}", out.stdout);
            }
        },
    );
}
