//! The worker: storage work in a process of its own (homed's "homework"). The daemon starts
//! `homed worker`, writes one [`proto::WorkRequest`] (with the secret beside it) on its
//! standard input, and reads one reply from its standard output. To the engine this whole
//! folder is the [`client::Worker`] trait.
//!
//! Inside, a request goes: the secret → passphrases ([`unlock`]) → the storage type's
//! [`backend::Backend`] → for an activation, the one [`reconcile`] of the record's copies.

pub mod backend;
pub mod client;
pub mod crashpoint;
pub mod proto;
pub mod reconcile;
mod unlock;

use std::io::{IoSlice, Read as _, Write as _};
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd};

use homed_shared::record::Secret;
use homed_shared::signing::TrustedKeys;
use homed_storage::{StorageError, directory};
use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
use zeroize::Zeroizing;

use backend::Backend;
pub use client::WORKER_ARG;
use proto::{HomeSpec, WorkError, WorkReply, WorkRequest};

/// The worker's address-space ceiling: libcryptsetup's largest Argon2 memory cost (4 GiB) plus
/// 2 GiB for the program, its libraries, thread stacks and buffers. Every read of what a user
/// controls is bounded by itself; this keeps a mistake there from taking the machine's memory.
const ADDRESS_SPACE_LIMIT: u64 = 6 << 30;
/// The largest request the worker reads.
const MAX_REQUEST: u64 = 64 << 20;

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

/// Activation: the backend mounts, the reconcile decides, the backend writes the copies that
/// are behind; the image lock goes to the daemon last. Any failure after the mount unmounts.
fn activate(
    backend: &dyn Backend,
    spec: &HomeSpec,
    credentials: impl Fn() -> Result<Vec<secrecy::SecretString>, StorageError>,
) -> Result<WorkReply, StorageError> {
    let (host, machine) = spec.host_record()?;
    // A folder home mounts without keys: its credentials (a token, say) are asked again only
    // if a newer copy of the record inside must be checked against them.
    let with_keys =
        backend::describe(spec.storage()).is_none_or(|k| k.capabilities().mounts_with_keys);
    let keys = if with_keys {
        credentials()?
    } else {
        Vec::new()
    };
    let keys = keys.as_slice();
    let mounted = backend.activate(spec, keys)?;
    let trusted = TrustedKeys::load_from(&spec.key_dirs);
    let done = (|| {
        let found = reconcile::Found {
            header: mounted.header.as_ref(),
            identity: mounted.identity.as_deref(),
        };
        let plan = reconcile::plan(
            (&host, &machine),
            found,
            || {
                if with_keys {
                    Ok(keys.to_vec())
                } else {
                    credentials()
                }
            },
            &trusted,
        )?;
        backend.write_copies(spec, keys, &plan.target, plan.writes)?;
        if let Some(lock) = &mounted.image_lock {
            send_fd(lock.as_fd())?;
        }
        Ok(WorkReply {
            identity: plan.adopted.then(|| plan.target.to_pretty_string()),
            ..WorkReply::default()
        })
    })();
    if done.is_err() {
        let _ = backend.deactivate(spec);
    }
    done
}

fn dispatch(request: &WorkRequest, secret: &Secret) -> Result<WorkReply, StorageError> {
    let spec = request.spec();
    if let WorkRequest::ReadIdentity(spec) = request {
        let text = directory::read_identity(&spec.image_path)?;
        return Ok(WorkReply {
            identity: Some(String::from_utf8_lossy(&text).into_owned()),
            ..WorkReply::default()
        });
    }
    let record = spec.host_record().ok().map(|(r, _)| r);
    if let WorkRequest::AuthenticateDevices(_) = request {
        let record =
            record.ok_or_else(|| StorageError::new(libc::EINVAL, "request lacks record"))?;
        return unlock::authenticate_devices(&record, secret).map(|()| WorkReply::default());
    }
    let backend = backend::for_storage(spec.storage())?;
    // Only the operations that open a home's keys ask the credentials (and so the tokens).
    let keys = || unlock::passphrases(record.as_ref(), secret);
    let done = WorkReply::default();
    match request {
        WorkRequest::Create(args) => backend.create(args, &keys()?).map(|()| done),
        WorkRequest::Activate(spec) => activate(backend, spec, keys),
        WorkRequest::Deactivate(spec) => backend.deactivate(spec).map(|()| done),
        WorkRequest::Lock(spec) => backend.lock(spec).map(|()| done),
        WorkRequest::Unlock(spec) => backend.unlock(spec, &keys()?).map(|()| done),
        WorkRequest::Remove(spec) => backend.remove(spec).map(|()| done),
        WorkRequest::Inspect(spec) => backend.inspect(spec, &keys()?),
        WorkRequest::WriteIdentity(spec) => backend.write_identity(spec).map(|()| done),
        WorkRequest::AddKeys(args) => backend.add_keys(args, &keys()?),
        WorkRequest::RetireKeys(args) => backend.retire_keys(args, &keys()?).map(|()| done),
        WorkRequest::Resize(args) => backend.resize(args).map(|()| done),
        WorkRequest::ReadIdentity(_) | WorkRequest::AuthenticateDevices(_) => {
            unreachable!("answered above")
        }
    }
}

/// The worker's `main`: one request in, one reply out.
pub fn main() -> i32 {
    if let Err(e) = nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_AS,
        ADDRESS_SPACE_LIMIT,
        ADDRESS_SPACE_LIMIT,
    ) {
        eprintln!("homed worker: cannot limit the address space: {e}");
    }
    let mut input = Zeroizing::new(Vec::new());
    let reply: Result<WorkReply, WorkError> =
        match std::io::stdin().take(MAX_REQUEST).read_to_end(&mut input) {
            Err(e) => Err(StorageError::io("reading the request", e).into()),
            Ok(_) => proto::decode_request(&input).and_then(|(request, secret)| {
                drop(input);
                dispatch(&request, &secret).map_err(WorkError::from)
            }),
        };
    let code = i32::from(reply.is_err());
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&proto::encode_reply(&reply));
    let _ = stdout.flush();
    code
}
