//! A stand-in for logind, for tests only: it owns `org.freedesktop.login1` on a private bus,
//! hands out delay inhibitors (printing `INHIBIT what who mode` and, once the holder closes
//! its fd, `RELEASED`), and emits `PrepareForSleep` when a test calls its own
//! `org.freedesktop.login1.StandIn.Sleep(b)`. It is not logind and never suspends anything.

use std::io::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};

use zbus::object_server::SignalEmitter;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

struct Manager;

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl Manager {
    async fn inhibit(
        &self,
        what: String,
        who: String,
        _why: String,
        mode: String,
    ) -> zbus::fdo::Result<zbus::OwnedFd> {
        let (read, write) =
            nix::unistd::pipe().map_err(|e| zbus::fdo::Error::Failed(format!("pipe: {e}")))?;
        say(&format!("INHIBIT {what} {who} {mode}"));
        std::thread::spawn(move || wait_released(read));
        Ok(zbus::OwnedFd::from(write))
    }

    #[zbus(signal)]
    async fn prepare_for_sleep(emitter: &SignalEmitter<'_>, start: bool) -> zbus::Result<()>;
}

/// Prints `RELEASED` when every copy of the write end is closed.
fn wait_released(read: OwnedFd) {
    let mut p = libc::pollfd {
        fd: read.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    loop {
        // SAFETY: `p` is one valid pollfd whose descriptor stays open for the call.
        let n = unsafe { libc::poll(&mut p, 1, -1) };
        if n > 0 && p.revents & libc::POLLHUP != 0 {
            say("RELEASED");
            return;
        }
    }
}

struct StandIn;

#[zbus::interface(name = "org.freedesktop.login1.StandIn")]
impl StandIn {
    async fn sleep(&self, start: bool, #[zbus(signal_emitter)] emitter: SignalEmitter<'_>) {
        say(&format!("PREPARE-FOR-SLEEP {start}"));
        if let Err(e) = Manager::prepare_for_sleep(&emitter, start).await {
            say(&format!("SIGNAL-FAILED {e}"));
        }
    }
}

fn main() {
    zbus::block_on(async {
        let conn = zbus::connection::Builder::system()
            .serve_at("/org/freedesktop/login1", Manager)
            .serve_at("/org/freedesktop/login1", StandIn)
            .name("org.freedesktop.login1")
            .build()
            .await;
        match conn {
            Ok(_conn) => {
                say("READY");
                std::future::pending::<()>().await;
            }
            Err(e) => say(&format!("FAILED {e}")),
        }
    });
}
