//! What the daemon and its worker say to each other: one [`WorkRequest`] in (with the user's
//! secret beside it, never inside a request type), one reply out, which is a [`WorkReply`] or a
//! [`WorkError`]. The JSON shape on the wire is `{"op": …, fields…, "secret": {…}}` in and
//! `{"ok": true, …}` or `{"ok": false, "errno": …, "message": …}` out, so that a request can be
//! written by hand when a home needs looking at (`homed worker < request.json`).

use std::path::PathBuf;

use homed_shared::record::{Secret, Storage};
use homed_shared::{MachineContext, RecordOrigin, UserRecord};
use homed_storage::{MountFlags, StorageError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// Everything a backend needs to know about one home: built by the engine's `spec.rs` from the
/// host record and this machine's binding, the same for every operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HomeSpec {
    #[serde(default, with = "storage_name")]
    pub storage: Option<Storage>,
    #[serde(default)]
    pub user_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    #[serde(default)]
    pub image_path: String,
    #[serde(default)]
    pub home_directory: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(default)]
    pub nosuid: bool,
    #[serde(default)]
    pub nodev: bool,
    #[serde(default)]
    pub noexec: bool,
    /// The host record (compact JSON), binding included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// The folders whose keys sign records this machine trusts (homed-spec §2.3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_dirs: Vec<PathBuf>,
    /// Whether the home is mounted now (the password change works on the live volume then).
    #[serde(default)]
    pub active: bool,
}

impl HomeSpec {
    pub fn storage(&self) -> Storage {
        self.storage.unwrap_or(Storage::Directory)
    }

    pub fn mount_flags(&self) -> MountFlags {
        MountFlags {
            nosuid: self.nosuid,
            nodev: self.nodev,
            noexec: self.noexec,
        }
    }

    pub fn ids(&self) -> Result<(u32, u32), StorageError> {
        match (self.uid, self.gid) {
            (Some(u), Some(g)) => Ok((u, g)),
            _ => Err(StorageError::new(libc::EINVAL, "request lacks uid or gid")),
        }
    }

    /// The user name with its realm, as LUKS headers and images name their owner.
    pub fn owner(&self) -> String {
        match &self.realm {
            Some(realm) => format!("{}@{realm}", self.user_name),
            None => self.user_name.clone(),
        }
    }

    /// The host record and this machine's context, for the operations that need them.
    pub fn host_record(&self) -> Result<(UserRecord, MachineContext), StorageError> {
        let text = self
            .record
            .as_deref()
            .ok_or_else(|| StorageError::new(libc::EINVAL, "request lacks record"))?;
        let record = UserRecord::parse(text.as_bytes(), RecordOrigin::Host)
            .map_err(|e| StorageError::new(libc::EINVAL, format!("host record: {e}")))?;
        let machine_id = self
            .machine_id
            .as_deref()
            .ok_or_else(|| StorageError::new(libc::EINVAL, "request lacks machineId"))?;
        Ok((record, MachineContext::new(machine_id, None)))
    }
}

/// One storage operation. The `op` names are the wire names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum WorkRequest {
    /// Makes the storage, with one key per password, the skeleton and the record's copies.
    Create(CreateArgs),
    /// Mounts the home, reconciles the record's copies (homed-spec §3.1) and, for images, hands
    /// back the image lock.
    Activate(HomeSpec),
    Deactivate(HomeSpec),
    /// Syncs and suspends the home's volume (its key leaves memory).
    Lock(HomeSpec),
    Unlock(HomeSpec),
    Remove(HomeSpec),
    /// Reads a found home's own record without activating it (fixation).
    Inspect(HomeSpec),
    /// Reads `~/.identity` of the home at `imagePath` (a folder).
    ReadIdentity(HomeSpec),
    /// Writes the host record's embedded copy where the backend keeps copies it can reach
    /// without a key; `Done` without writing where every copy needs the volume key (the next
    /// activation brings those forward).
    WriteIdentity(HomeSpec),
    /// First half of a password change: keys for the new passwords beside the old ones.
    #[serde(rename = "passwd-keyslots")]
    AddKeys(AddKeys),
    /// Second half, once the new host record is saved: the old keys go, then the copies.
    #[serde(rename = "passwd-record")]
    RetireKeys(RetireKeys),
    /// Checks the secret with the credentials that need a device (a security token): done
    /// when one of them yields a password its entry's hash accepts.
    AuthenticateDevices(HomeSpec),
    /// Gives the home the size of `diskSize` (a quota limit, for the types that have one).
    Resize(ResizeArgs),
}

impl WorkRequest {
    pub fn spec(&self) -> &HomeSpec {
        match self {
            WorkRequest::Create(a) => &a.spec,
            WorkRequest::AddKeys(a) => &a.spec,
            WorkRequest::RetireKeys(a) => &a.spec,
            WorkRequest::Resize(a) => &a.spec,
            WorkRequest::Activate(s)
            | WorkRequest::Deactivate(s)
            | WorkRequest::Lock(s)
            | WorkRequest::Unlock(s)
            | WorkRequest::Remove(s)
            | WorkRequest::Inspect(s)
            | WorkRequest::ReadIdentity(s)
            | WorkRequest::WriteIdentity(s)
            | WorkRequest::AuthenticateDevices(s) => s,
        }
    }

    /// The wire name of the operation.
    #[cfg(test)]
    pub fn op(&self) -> &'static str {
        match self {
            WorkRequest::Create(_) => "create",
            WorkRequest::Activate(_) => "activate",
            WorkRequest::Deactivate(_) => "deactivate",
            WorkRequest::Lock(_) => "lock",
            WorkRequest::Unlock(_) => "unlock",
            WorkRequest::Remove(_) => "remove",
            WorkRequest::Inspect(_) => "inspect",
            WorkRequest::ReadIdentity(_) => "read-identity",
            WorkRequest::WriteIdentity(_) => "write-identity",
            WorkRequest::AddKeys(_) => "passwd-keyslots",
            WorkRequest::RetireKeys(_) => "passwd-record",
            WorkRequest::AuthenticateDevices(_) => "authenticate-devices",
            WorkRequest::Resize(_) => "resize",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateArgs {
    #[serde(flatten)]
    pub spec: HomeSpec,
    /// The size of an image (bytes); the engine picks it, as homed does, when the record has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skeleton: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddKeys {
    #[serde(flatten)]
    pub spec: HomeSpec,
    /// The secret holds this many new passwords first, then the old ones.
    pub new_passwords: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResizeArgs {
    #[serde(flatten)]
    pub spec: HomeSpec,
    /// The new size, in bytes.
    pub disk_size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetireKeys {
    #[serde(flatten)]
    pub spec: HomeSpec,
    pub old_keyslots: Vec<u32>,
    pub new_keyslots: Vec<u32>,
}

/// A successful reply; which fields are set depends on the operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkReply {
    /// Activate: the newer embedded copy the reconcile adopted (trusted, and the secret opens
    /// it), now in every location of the home. Inspect, ReadIdentity: the home's own record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Inspect: binding values read from the image (UUIDs, cipher, file system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<Map<String, Value>>,
    /// AddKeys: the keyslots there were before, and the ones added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_keyslots: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_keyslots: Option<Vec<u32>>,
}

/// Why a storage operation failed, named by what the daemon reports for it (homed-spec §4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkErrorKind {
    /// None of the passwords opens the home (a bad-password attempt).
    BadPassword,
    /// The password is wrong and the record's security token is not present (counted as a
    /// bad password, as homed counts it).
    BadPasswordAndNoToken,
    TokenPinNeeded,
    TokenProtectedPathNeeded,
    TokenPinLocked,
    BadPin,
    BadPinFewTriesLeft,
    BadPinOneTryLeft,
    /// A newer record inside the home is not signed by a trusted key.
    Untrusted,
    NotActive,
    AlreadyActive,
    /// The image is missing.
    Absent,
    /// Files are open in the home, or another operation holds it.
    Busy,
    /// The image is locked by another activation.
    ImageInUse,
    Exists,
    NoSpace,
    NotSupported,
    /// The request itself is wrong (a daemon bug, or a hand-written request).
    BadRequest,
    /// The worker died or said nothing.
    Crashed,
    Failed,
}

impl WorkErrorKind {
    /// The errno homed's worker exits with for this kind, used on the wire.
    fn errno(self) -> i32 {
        match self {
            WorkErrorKind::BadPassword => libc::ENOKEY,
            WorkErrorKind::BadPasswordAndNoToken => libc::EBADSLT,
            WorkErrorKind::TokenPinNeeded => libc::ENOANO,
            WorkErrorKind::TokenProtectedPathNeeded => libc::ERFKILL,
            WorkErrorKind::TokenPinLocked => libc::EOWNERDEAD,
            WorkErrorKind::BadPin => libc::ENOLCK,
            WorkErrorKind::BadPinFewTriesLeft => libc::ETOOMANYREFS,
            WorkErrorKind::BadPinOneTryLeft => libc::EUCLEAN,
            WorkErrorKind::Untrusted => libc::EKEYREJECTED,
            WorkErrorKind::NotActive => libc::ENOEXEC,
            WorkErrorKind::AlreadyActive => libc::EALREADY,
            WorkErrorKind::Absent => libc::ENETUNREACH,
            WorkErrorKind::Busy => libc::EBUSY,
            WorkErrorKind::ImageInUse => libc::EADDRINUSE,
            WorkErrorKind::Exists => libc::EEXIST,
            WorkErrorKind::NoSpace => libc::ENOSPC,
            WorkErrorKind::NotSupported => libc::ENOTTY,
            WorkErrorKind::BadRequest => libc::EINVAL,
            WorkErrorKind::Crashed => libc::EPROTO,
            WorkErrorKind::Failed => libc::EIO,
        }
    }

    /// The one table from the errnos the storage code fails with to kinds.
    fn of_errno(errno: i32) -> WorkErrorKind {
        match errno {
            libc::ENOKEY => WorkErrorKind::BadPassword,
            libc::EBADSLT => WorkErrorKind::BadPasswordAndNoToken,
            libc::ENOANO => WorkErrorKind::TokenPinNeeded,
            libc::ERFKILL => WorkErrorKind::TokenProtectedPathNeeded,
            libc::EOWNERDEAD => WorkErrorKind::TokenPinLocked,
            libc::ENOLCK => WorkErrorKind::BadPin,
            libc::ETOOMANYREFS => WorkErrorKind::BadPinFewTriesLeft,
            libc::EUCLEAN => WorkErrorKind::BadPinOneTryLeft,
            libc::EKEYREJECTED => WorkErrorKind::Untrusted,
            libc::ENOEXEC => WorkErrorKind::NotActive,
            libc::EALREADY => WorkErrorKind::AlreadyActive,
            libc::ENETUNREACH => WorkErrorKind::Absent,
            libc::EBUSY => WorkErrorKind::Busy,
            libc::EADDRINUSE => WorkErrorKind::ImageInUse,
            libc::EEXIST => WorkErrorKind::Exists,
            libc::ENOSPC => WorkErrorKind::NoSpace,
            libc::ENOTTY | libc::ENOLINK | libc::EPROTONOSUPPORT | libc::ESOCKTNOSUPPORT => {
                WorkErrorKind::NotSupported
            }
            libc::EINVAL => WorkErrorKind::BadRequest,
            libc::EPROTO => WorkErrorKind::Crashed,
            _ => WorkErrorKind::Failed,
        }
    }
}

/// A failed storage operation: its kind, the errno it came from, and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkError {
    pub kind: WorkErrorKind,
    pub errno: i32,
    pub message: String,
}

impl WorkError {
    pub fn new(kind: WorkErrorKind, message: impl Into<String>) -> WorkError {
        WorkError {
            kind,
            errno: kind.errno(),
            message: message.into(),
        }
    }
}

impl From<StorageError> for WorkError {
    fn from(e: StorageError) -> WorkError {
        WorkError {
            kind: WorkErrorKind::of_errno(e.errno),
            errno: e.errno,
            message: e.message,
        }
    }
}

impl std::fmt::Display for WorkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The request as the worker receives it, the secret beside it in zeroizing memory.
pub fn encode_request(
    request: &WorkRequest,
    secret: Option<&Secret>,
) -> Result<Zeroizing<Vec<u8>>, WorkError> {
    let bad = |e: serde_json::Error| WorkError::new(WorkErrorKind::BadRequest, e.to_string());
    let mut map = match serde_json::to_value(request).map_err(bad)? {
        Value::Object(map) => map,
        _ => return Err(WorkError::new(WorkErrorKind::BadRequest, "not an object")),
    };
    map.remove("secret");
    let body = serde_json::to_vec(&map).map_err(bad)?;
    let Some(secret) = secret else {
        return Ok(Zeroizing::new(body));
    };
    // The secret is written straight from its zeroizing JSON into the zeroizing buffer, so no
    // plain copy of it is made on the way.
    let json = secret.to_json();
    let mut out = Zeroizing::new(Vec::with_capacity(body.len() + json.len() + 16));
    out.extend_from_slice(b"{\"secret\":");
    out.extend_from_slice(json.as_bytes());
    if body.len() > 2 {
        out.push(b',');
        out.extend_from_slice(&body[1..]);
    } else {
        out.push(b'}');
    }
    Ok(out)
}

/// Splits what arrived into the request and the secret (empty when none came).
pub fn decode_request(bytes: &[u8]) -> Result<(WorkRequest, Secret), WorkError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        WorkError::new(WorkErrorKind::BadRequest, format!("bad {what}: {e}"))
    };
    let mut map: Map<String, Value> =
        serde_json::from_slice(bytes).map_err(|e| bad("request", &e))?;
    let secret = match map.remove("secret") {
        Some(v) => Secret::from_value(v).map_err(|e| bad("secret", &e))?,
        None => Secret::default(),
    };
    let request = WorkRequest::deserialize(Value::Object(map)).map_err(|e| bad("request", &e))?;
    Ok((request, secret))
}

/// The reply's wire form.
pub fn encode_reply(reply: &Result<WorkReply, WorkError>) -> Vec<u8> {
    let mut map = match reply {
        Ok(reply) => match serde_json::to_value(reply) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        },
        Err(e) => {
            let mut map = Map::new();
            map.insert("errno".into(), Value::from(e.errno));
            map.insert("message".into(), Value::from(e.message.clone()));
            map
        }
    };
    map.insert("ok".into(), Value::Bool(reply.is_ok()));
    serde_json::to_vec(&map).unwrap_or_default()
}

/// Reads a reply; `None` when it is not one (the worker died before answering).
pub fn decode_reply(bytes: &[u8]) -> Option<Result<WorkReply, WorkError>> {
    let map: Map<String, Value> = serde_json::from_slice(bytes).ok()?;
    if map.get("ok") == Some(&Value::Bool(true)) {
        return serde_json::from_value(Value::Object(map)).ok().map(Ok);
    }
    let errno = map
        .get("errno")
        .and_then(Value::as_i64)
        .and_then(|e| i32::try_from(e).ok())
        .unwrap_or(libc::EIO);
    let message = map
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("storage worker failed")
        .to_owned();
    Some(Err(WorkError::from(StorageError::new(errno, message))))
}

mod storage_name {
    use homed_shared::record::Storage;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &Option<Storage>, ser: S) -> Result<S::Ok, S::Error> {
        match s {
            Some(s) => ser.serialize_str(s.as_str()),
            None => ser.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Storage>, D::Error> {
        match Option::<String>::deserialize(de)? {
            None => Ok(None),
            Some(s) => Storage::parse(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown storage {s}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::{ExposeSecret as _, SecretString};

    #[test]
    fn a_request_and_its_secret_cross_the_wire_unchanged() {
        let request = WorkRequest::AddKeys(AddKeys {
            spec: HomeSpec {
                storage: Some(Storage::Luks),
                user_name: "carol".into(),
                image_path: "/home/carol.home".into(),
                uid: Some(60200),
                ..HomeSpec::default()
            },
            new_passwords: 1,
        });
        let secret = Secret::with_passwords(vec![SecretString::from("pw".to_owned())]);
        let bytes = encode_request(&request, Some(&secret)).unwrap();
        let wire: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(wire["op"], "passwd-keyslots");
        assert_eq!(wire["storage"], "luks");
        assert_eq!(wire["newPasswords"], 1);
        assert_eq!(wire["secret"]["password"], serde_json::json!(["pw"]));
        let (back, secret) = decode_request(&bytes).unwrap();
        assert_eq!(back, request);
        assert_eq!(secret.passwords()[0].expose_secret(), "pw");
    }

    #[test]
    fn errors_keep_their_kind_across_the_wire() {
        let sent: Result<WorkReply, WorkError> =
            Err(WorkError::new(WorkErrorKind::BadPassword, "no"));
        let back = decode_reply(&encode_reply(&sent)).unwrap();
        assert_eq!(back.unwrap_err().kind, WorkErrorKind::BadPassword);
        assert!(decode_reply(b"").is_none());
    }
}
