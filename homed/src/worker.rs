//! Storage work in a process of its own (homed's "homework"): the daemon re-executes itself as
//! `homed worker`, writes one JSON request on its standard input and reads one JSON reply from its
//! standard output. A hung mount or a slow copy then blocks that process, not the daemon.

use std::io::{IoSlice, IoSliceMut, Read as _, Write as _};
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::path::Path;
use std::process::Stdio;

use homed_shared::record::Secret;
use homed_shared::storage::{MountFlags, StorageError, directory};
use homed_shared::{RecordOrigin, UserRecord};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr, recvmsg, sendmsg};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use zeroize::Zeroizing;

/// The hidden first argument that makes the binary a worker.
pub const WORKER_ARG: &str = "worker";

/// Runs one storage operation in a new worker process.
pub async fn run(exe: &Path, request: Value) -> Result<Map<String, Value>, StorageError> {
    run_with(exe, request, None).await.map(|(reply, _)| reply)
}

/// Runs one storage operation with the user's secret (sent in zeroizing memory, never kept),
/// returning the reply and the descriptor the worker handed back, if any (a LUKS home's image
/// lock, which must stay open while the home is active).
///
/// The worker's standard input is one end of a socket pair: the request goes in, then the
/// worker may pass a descriptor back over it with `SCM_RIGHTS`.
pub async fn run_with(
    exe: &Path,
    request: Value,
    secret: Option<&Secret>,
) -> Result<(Map<String, Value>, Option<OwnedFd>), StorageError> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()
        .map_err(|e| StorageError::io("making the worker's socket", e))?;
    let mut child = tokio::process::Command::new(exe)
        .arg(WORKER_ARG)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| StorageError::io("starting a storage worker", e))?;
    let body = Zeroizing::new(serde_json::to_vec(&request).unwrap_or_default());
    let body = match secret {
        Some(secret) if body.first() == Some(&b'{') && body.len() > 2 => {
            let json = secret.to_json();
            let mut with = Zeroizing::new(Vec::with_capacity(body.len() + json.len() + 16));
            with.extend_from_slice(b"{\"secret\":");
            with.extend_from_slice(json.as_bytes());
            with.push(b',');
            with.extend_from_slice(&body[1..]);
            with
        }
        _ => body,
    };
    ours.set_nonblocking(true)
        .map_err(|e| StorageError::io("making the worker's socket", e))?;
    let mut ours = tokio::net::UnixStream::from_std(ours)
        .map_err(|e| StorageError::io("making the worker's socket", e))?;
    ours.write_all(&body)
        .await
        .map_err(|e| StorageError::io("talking to the storage worker", e))?;
    drop(body);
    ours.shutdown()
        .await
        .map_err(|e| StorageError::io("talking to the storage worker", e))?;
    let mut out = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout
            .read_to_end(&mut out)
            .await
            .map_err(|e| StorageError::io("reading the storage worker's reply", e))?;
    }
    let status = child
        .wait()
        .await
        .map_err(|e| StorageError::io("waiting for the storage worker", e))?;
    let passed = receive_fd(ours.as_fd());
    let reply: Map<String, Value> = serde_json::from_slice(&out).map_err(|_| {
        StorageError::new(
            libc::EPROTO,
            format!("the storage worker gave no reply ({status})"),
        )
    })?;
    if reply.get("ok") == Some(&Value::Bool(true)) {
        return Ok((reply, passed));
    }
    let errno = reply
        .get("errno")
        .and_then(Value::as_i64)
        .and_then(|e| i32::try_from(e).ok())
        .unwrap_or(libc::EIO);
    let message = reply
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("storage worker failed")
        .to_owned();
    Err(StorageError::new(errno, message))
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

/// Hands `fd` to the daemon over the worker's standard input (a socket).
fn send_fd(fd: BorrowedFd<'_>) -> Result<(), StorageError> {
    let fds = [fd.as_raw_fd()];
    sendmsg::<UnixAddr>(
        0,
        &[IoSlice::new(b"L")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(|_| ())
    .map_err(|e| StorageError::io("passing the image lock to the daemon", e.into()))
}

pub(crate) fn s<'a>(req: &'a Map<String, Value>, key: &str) -> Result<&'a str, StorageError> {
    req.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| StorageError::new(libc::EINVAL, format!("request lacks {key}")))
}

pub(crate) fn u(req: &Map<String, Value>, key: &str) -> Result<u32, StorageError> {
    req.get(key)
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| StorageError::new(libc::EINVAL, format!("request lacks {key}")))
}

pub(crate) fn b(req: &Map<String, Value>, key: &str) -> bool {
    req.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn last_change(record: &UserRecord) -> Option<u64> {
    record.json().get("lastChangeUSec").and_then(Value::as_u64)
}

/// Reconcile of `.identity` with the host's copy (homed-spec §3.1): the host copy is written when
/// it is newer (or equally new but different); a newer embedded copy is handed back to the
/// daemon, which checks its signature and the password before adopting it.
fn reconcile(found: Option<Vec<u8>>, host_identity: &str) -> Result<Value, StorageError> {
    let host = UserRecord::parse(host_identity.as_bytes(), RecordOrigin::Embedded)
        .map_err(|e| StorageError::new(libc::EINVAL, format!("host copy: {e}")))?;
    let Some(found) = found else {
        return Ok(json!({"write": true}));
    };
    let embedded = match UserRecord::parse(&found, RecordOrigin::Embedded) {
        Ok(r) => r,
        Err(e) => {
            return Err(StorageError::new(
                libc::EBADMSG,
                format!("the home's .identity is not a valid embedded record: {e}"),
            ));
        }
    };
    if embedded.user_name() != host.user_name() || embedded.realm() != host.realm() {
        return Err(StorageError::new(
            libc::EUCLEAN,
            "the home's .identity belongs to another user",
        ));
    }
    let (h, e) = (last_change(&host), last_change(&embedded));
    if e > h {
        return Ok(json!({"write": false, "identity": String::from_utf8_lossy(&found)}));
    }
    let same = embedded.to_compact_string() == host.to_compact_string();
    Ok(json!({"write": !same}))
}

fn dispatch_luks(req: &Map<String, Value>) -> Result<Value, StorageError> {
    match s(req, "op")? {
        "create" => crate::luks_work::create(req),
        "activate" => {
            let (reply, image_lock) = crate::luks_work::activate(req)?;
            if let Err(e) = send_fd(image_lock.as_fd()) {
                let _ = crate::luks_work::deactivate(req);
                return Err(e);
            }
            Ok(reply)
        }
        "deactivate" => crate::luks_work::deactivate(req),
        "lock" => crate::luks_work::lock(req),
        "unlock" => crate::luks_work::unlock(req),
        "remove" => crate::luks_work::remove(req),
        "passwd-keyslots" => crate::luks_work::passwd_keyslots(req),
        "passwd-record" => crate::luks_work::passwd_record(req),
        "inspect" => crate::luks_work::inspect(req),
        other => Err(StorageError::new(
            libc::ENOTTY,
            format!("storage operation {other} is not available for LUKS homes"),
        )),
    }
}

fn dispatch(req: &Map<String, Value>) -> Result<Value, StorageError> {
    if req.get("storage").and_then(Value::as_str) == Some("luks") {
        return dispatch_luks(req);
    }
    match s(req, "op")? {
        "create" => {
            directory::create(&directory::CreateRequest {
                image_path: s(req, "imagePath")?,
                skeleton: req.get("skeleton").and_then(Value::as_str),
                uid: u(req, "uid")?,
                gid: u(req, "gid")?,
                access_mode: u(req, "accessMode")?,
                identity: s(req, "identity")?,
            })?;
            Ok(json!({}))
        }
        "activate" => {
            let (uid, gid) = (u(req, "uid")?, u(req, "gid")?);
            let found = directory::activate(&directory::ActivateRequest {
                image_path: s(req, "imagePath")?,
                home_directory: s(req, "homeDirectory")?,
                uid,
                gid,
                flags: MountFlags {
                    nosuid: b(req, "nosuid"),
                    nodev: b(req, "nodev"),
                    noexec: b(req, "noexec"),
                },
            })?;
            let identity = s(req, "identity")?;
            let verdict = reconcile(found, identity).and_then(|v| {
                if v.get("write") == Some(&Value::Bool(true)) {
                    directory::write_identity(s(req, "homeDirectory")?, identity, uid, gid)?;
                }
                Ok(v)
            });
            if verdict.is_err() {
                let _ = directory::deactivate(s(req, "homeDirectory")?);
            }
            verdict
        }
        "write-identity" => {
            directory::write_identity(
                s(req, "imagePath")?,
                s(req, "identity")?,
                u(req, "uid")?,
                u(req, "gid")?,
            )?;
            Ok(json!({}))
        }
        "read-identity" => {
            let text = directory::read_identity(s(req, "imagePath")?)?;
            Ok(json!({"identity": String::from_utf8_lossy(&text)}))
        }
        "deactivate" => {
            directory::deactivate(s(req, "homeDirectory")?)?;
            Ok(json!({}))
        }
        "remove" => {
            directory::remove(s(req, "imagePath")?, s(req, "homeDirectory")?)?;
            Ok(json!({}))
        }
        other => Err(StorageError::new(
            libc::ENOTTY,
            format!("unknown storage operation {other}"),
        )),
    }
}

/// The worker's `main`: one request in, one reply out.
/// The worker's address-space ceiling: libcryptsetup's largest Argon2 memory cost (4 GiB) plus
/// 2 GiB for the program, its libraries, thread stacks and buffers. Every read of what a user
/// controls is bounded by itself; this keeps a mistake there from taking the machine's memory.
const ADDRESS_SPACE_LIMIT: u64 = 6 << 30;

pub fn main() -> i32 {
    if let Err(e) = nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_AS,
        ADDRESS_SPACE_LIMIT,
        ADDRESS_SPACE_LIMIT,
    ) {
        eprintln!("homed worker: cannot limit the address space: {e}");
    }
    let mut input = Vec::new();
    let reply = match std::io::stdin().take(64 << 20).read_to_end(&mut input) {
        Err(e) => Err(StorageError::io("reading the request", e)),
        Ok(_) => match serde_json::from_slice::<Map<String, Value>>(&input) {
            Err(e) => Err(StorageError::new(libc::EINVAL, format!("bad request: {e}"))),
            Ok(req) => dispatch(&req),
        },
    };
    let (code, out) = match reply {
        Ok(mut v) => {
            if let Some(map) = v.as_object_mut() {
                map.insert("ok".into(), Value::Bool(true));
            }
            (0, v)
        }
        Err(e) => (
            1,
            json!({"ok": false, "errno": e.errno, "message": e.message}),
        ),
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&serde_json::to_vec(&out).unwrap_or_default());
    let _ = stdout.flush();
    code
}
