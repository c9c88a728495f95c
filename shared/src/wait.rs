//! Waiting for what another process or the kernel does: the one polling loop of the workspace,
//! so that no code (or test) waits by sleeping a fixed time and hoping. `clippy.toml` refuses
//! `std::thread::sleep` elsewhere; a test that must show that nothing happens for a while (an
//! observation window) says so where it sleeps.

use std::time::{Duration, Instant};

/// How often a condition is polled.
pub const POLL_TICK: Duration = Duration::from_millis(10);

/// Polls `done` until it holds (`true`) or `limit` has passed (`false`).
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        #[expect(clippy::disallowed_methods, reason = "the polling tick of wait_until")]
        std::thread::sleep(POLL_TICK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_condition_and_gives_up_at_the_limit() {
        let mut calls = 0;
        assert!(wait_until(Duration::from_secs(5), || {
            calls += 1;
            calls == 3
        }));
        assert_eq!(calls, 3);
        let started = Instant::now();
        assert!(!wait_until(Duration::from_millis(50), || false));
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
