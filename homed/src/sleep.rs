//! The `inhibitor` sleep mode: a delay inhibitor on `org.freedesktop.login1`, and LockAllHomes
//! when `PrepareForSleep(true)` arrives, then the inhibitor is released so the machine may
//! sleep; after resume (`PrepareForSleep(false)`) a new inhibitor is taken. The other modes need
//! nothing here: systemd-sleep, or the elogind hook we ship, calls LockAllHomes itself.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use std::future::Future as _;
use std::task::Poll;

use futures_core::Stream;
use zbus::{Connection, Proxy};

use crate::bus::on_engine;
use crate::engine::{Caller, Engine};

const LOGIN1: &str = "org.freedesktop.login1";
const LOGIN1_PATH: &str = "/org/freedesktop/login1";
const LOGIN1_MANAGER: &str = "org.freedesktop.login1.Manager";

async fn take_inhibitor(proxy: &Proxy<'_>) -> zbus::Result<zbus::OwnedFd> {
    proxy
        .call(
            "Inhibit",
            &(
                "sleep",
                "homed",
                "Lock home directories before the machine sleeps",
                "delay",
            ),
        )
        .await
}

/// Runs for the daemon's lifetime, on a thread of its own inside `zbus::block_on`: zbus's signal
/// streams are driven by zbus's runtime; the engine's work is handed to the engine's runtime.
pub async fn run_inhibitor(conn: Connection, engine: Arc<Engine>) {
    let proxy = match Proxy::new(&conn, LOGIN1, LOGIN1_PATH, LOGIN1_MANAGER).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sleep: cannot talk to {LOGIN1}: {e}");
            return;
        }
    };
    let mut signals = match proxy.receive_signal("PrepareForSleep").await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sleep: cannot watch PrepareForSleep: {e}");
            return;
        }
    };
    let mut inhibitor = None;
    // Between PrepareForSleep(true) and (false) the machine is going to sleep: no new inhibitor.
    let mut sleeping = false;
    loop {
        if inhibitor.is_none() && !sleeping {
            match take_inhibitor(&proxy).await {
                Ok(fd) => {
                    eprintln!("sleep: delay inhibitor taken on {LOGIN1}");
                    inhibitor = Some(fd);
                }
                Err(e) => eprintln!("sleep: no inhibitor yet: {e}"),
            }
        }
        // Wait for the next signal; without an inhibitor, try again now and then.
        // Without an inhibitor, give up waiting after a while and try to take one again.
        let mut retry = std::pin::pin!(on_engine(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        }));
        let waiting_for_inhibitor = inhibitor.is_none() && !sleeping;
        let next = std::future::poll_fn(|cx| {
            if let Poll::Ready(m) = Pin::new(&mut signals).poll_next(cx) {
                return Poll::Ready(Some(m));
            }
            if waiting_for_inhibitor && retry.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        });
        let Some(message) = next.await else { continue };
        let Some(message) = message else {
            eprintln!("sleep: the bus connection is gone");
            return;
        };
        let start = match message.body().deserialize::<bool>() {
            Ok(start) => start,
            Err(e) => {
                eprintln!("sleep: PrepareForSleep with an unexpected body: {e}");
                continue;
            }
        };
        if start {
            let e = engine.clone();
            match on_engine(async move { e.lock_all(Caller::ROOT).await }).await {
                Ok(()) => {
                    eprintln!("sleep: PrepareForSleep: all homes that asked for it are locked")
                }
                Err(e) => eprintln!("sleep: locking before sleep failed: {e}"),
            }
            // Let the machine sleep.
            inhibitor = None;
            sleeping = true;
        } else {
            eprintln!("sleep: resumed");
            sleeping = false;
        }
    }
}
