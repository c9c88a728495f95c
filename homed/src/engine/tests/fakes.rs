//! A scripted stand-in for the worker: each expected operation with its reply, in order. The
//! test fails on an operation out of script, and when the script is not used up by the end
//! (a step the engine skipped).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use homed_shared::record::Secret;
use serde_json::Value;

use crate::worker::client::{WorkFuture, WorkOutput, Worker};
use crate::worker::proto::{self, WorkError, WorkErrorKind, WorkReply, WorkRequest};

/// What the stand-in does for one operation.
pub enum Act {
    /// Replies with this wire reply (`{"ok": true, …}` or `{"ok": false, "errno": …}`).
    Reply(Value),
    /// Dies before replying, as a worker killed at that step would.
    Die,
}

pub struct FakeWorker {
    script: Mutex<VecDeque<(&'static str, Act)>>,
    seen: Mutex<Vec<Value>>,
}

impl FakeWorker {
    /// A worker that expects `script`'s operations (by wire name), in order.
    pub fn new(script: Vec<(&'static str, Act)>) -> Arc<FakeWorker> {
        Arc::new(FakeWorker {
            script: Mutex::new(script.into()),
            seen: Mutex::new(Vec::new()),
        })
    }

    /// A worker that expects no operation at all.
    pub fn idle() -> Arc<FakeWorker> {
        FakeWorker::new(Vec::new())
    }

    /// The requests received, in their wire form, secret included.
    pub fn requests(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }
}

impl Worker for FakeWorker {
    fn run<'a>(&'a self, request: WorkRequest, secret: Option<&'a Secret>) -> WorkFuture<'a> {
        let wire = proto::encode_request(&request, secret).expect("the request encodes");
        self.seen
            .lock()
            .unwrap()
            .push(serde_json::from_slice(&wire).expect("the request is JSON"));
        let step = self.script.lock().unwrap().pop_front();
        let outcome = match step {
            None => panic!("unexpected worker operation {}", request.op()),
            Some((op, _)) if op != request.op() => {
                panic!(
                    "worker operation {} where the script has {op}",
                    request.op()
                )
            }
            Some((_, Act::Die)) => Err(WorkError::new(
                WorkErrorKind::Crashed,
                "the storage worker gave no reply (signal: 9 (SIGKILL))",
            )),
            Some((_, Act::Reply(reply))) => {
                let bytes = serde_json::to_vec(&reply).unwrap();
                proto::decode_reply(&bytes)
                    .expect("a scripted reply")
                    .map(|reply: WorkReply| WorkOutput {
                        reply,
                        image_lock: None,
                    })
            }
        };
        Box::pin(async move { outcome })
    }
}

impl Drop for FakeWorker {
    fn drop(&mut self) {
        let left = self.script.get_mut().map(|s| s.len()).unwrap_or(0);
        if left > 0 && !std::thread::panicking() {
            panic!("{left} scripted worker operation(s) never came");
        }
    }
}
