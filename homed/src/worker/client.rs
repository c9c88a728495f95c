//! The daemon's side of the worker: [`Worker`] is the engine's only view of storage, and
//! [`ProcessWorker`] runs each request in a new `homed worker` process.

use std::future::Future;
use std::io::IoSliceMut;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;

use homed_shared::record::Secret;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::proto::{self, WorkError, WorkErrorKind, WorkReply, WorkRequest};

/// What came back from a successful operation: the reply, and the descriptor the worker
/// handed over, if any (a LUKS home's image lock, which must stay open while it is active).
#[derive(Debug, Default)]
pub struct WorkOutput {
    pub reply: WorkReply,
    pub image_lock: Option<OwnedFd>,
}

pub type WorkFuture<'a> = Pin<Box<dyn Future<Output = Result<WorkOutput, WorkError>> + Send + 'a>>;

/// Runs storage operations for the engine.
pub trait Worker: Send + Sync {
    /// Runs `request`, with the user's secret when the operation needs one.
    fn run<'a>(&'a self, request: WorkRequest, secret: Option<&'a Secret>) -> WorkFuture<'a>;
}

/// The hidden first argument that makes the binary a worker.
pub const WORKER_ARG: &str = "worker";

/// Storage work in a process of its own (homed's "homework"): a hung mount or a slow copy
/// blocks that process, not the daemon. Its standard input is one end of a socket pair: the
/// request goes in, and the worker may pass a descriptor back over it with `SCM_RIGHTS`.
pub struct ProcessWorker {
    pub exe: PathBuf,
}

impl Worker for ProcessWorker {
    fn run<'a>(&'a self, request: WorkRequest, secret: Option<&'a Secret>) -> WorkFuture<'a> {
        Box::pin(async move { self.run_process(&request, secret).await })
    }
}

fn io_error(what: &str) -> impl Fn(std::io::Error) -> WorkError + '_ {
    move |e| WorkError::from(homed_storage::StorageError::io(what, e))
}

impl ProcessWorker {
    async fn run_process(
        &self,
        request: &WorkRequest,
        secret: Option<&Secret>,
    ) -> Result<WorkOutput, WorkError> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(io_error("making the worker's socket"))?;
        let mut child = tokio::process::Command::new(&self.exe)
            .arg(WORKER_ARG)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(io_error("starting a storage worker"))?;
        let body = proto::encode_request(request, secret)?;
        ours.set_nonblocking(true)
            .map_err(io_error("making the worker's socket"))?;
        let mut ours = tokio::net::UnixStream::from_std(ours)
            .map_err(io_error("making the worker's socket"))?;
        ours.write_all(&body)
            .await
            .map_err(io_error("talking to the storage worker"))?;
        drop(body);
        ours.shutdown()
            .await
            .map_err(io_error("talking to the storage worker"))?;
        let mut out = Vec::new();
        if let Some(mut stdout) = child.stdout.take() {
            stdout
                .read_to_end(&mut out)
                .await
                .map_err(io_error("reading the storage worker's reply"))?;
        }
        let status = child
            .wait()
            .await
            .map_err(io_error("waiting for the storage worker"))?;
        let image_lock = receive_fd(ours.as_fd());
        match proto::decode_reply(&out) {
            Some(Ok(reply)) => Ok(WorkOutput { reply, image_lock }),
            Some(Err(e)) => Err(e),
            None => Err(WorkError::new(
                WorkErrorKind::Crashed,
                format!("the storage worker gave no reply ({status})"),
            )),
        }
    }
}

/// Takes a descriptor the worker queued on the socket, if it sent one.
fn receive_fd(socket: BorrowedFd<'_>) -> Option<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<UnixAddr>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ok()?;
    let mut found = None;
    for cmsg in msg.cmsgs().ok()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel just installed this descriptor in our table for us; nothing
                // else owns it.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                found.get_or_insert(owned);
            }
        }
    }
    found
}
