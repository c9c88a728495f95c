//! `io.systemd.UserDatabase` at /run/systemd/userdb/io.systemd.Home (homed-spec §6.3), so that
//! nss-systemd, userdbctl, logind and pam_systemd see our users. Semantics as homed's: only
//! `uid`/`userName`/`service` (and `gid`/`groupName`) are accepted, the privileged section goes
//! only to root and the owner (`incomplete` otherwise), enumeration needs `more`.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use homed_shared::record::HOMED_SERVICE;
use homed_shared::varlink::{FrameDecoder, encode_frame};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

use crate::engine::{Caller, Engine, Home};

pub const SOCKET_PATH: &str = "/run/systemd/userdb/io.systemd.Home";
const INTERFACE: &str = "io.systemd.UserDatabase";

/// The socket is open to every local user, so what one of them can hold is bounded: a few
/// dozen connections per UID (NSS opens one per lookup and closes it), a total well below the
/// daemon's descriptor limit (logins, activations and workers need descriptors too), requests
/// of at most 64 KiB (a lookup is a few hundred bytes), a partial request finished within 5 s,
/// and an idle connection closed after 30 s.
const CONNECTIONS_PER_UID: usize = 64;
const CONNECTIONS_MAX: usize = 1024;
const REQUEST_MAX_BYTES: usize = 64 * 1024;
const PARTIAL_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Who holds how many connections.
#[derive(Default)]
struct Connections {
    per_uid: HashMap<u32, usize>,
    total: usize,
}

/// One accepted connection's place in [`Connections`], given back when it ends.
struct Slot {
    table: Arc<Mutex<Connections>>,
    uid: u32,
}

impl Slot {
    /// A place for a connection of `uid`, unless that UID or everyone together holds the most
    /// allowed.
    fn take(table: &Arc<Mutex<Connections>>, uid: u32, total_max: usize) -> Option<Slot> {
        let mut t = table.lock().unwrap_or_else(|e| e.into_inner());
        let mine = t.per_uid.get(&uid).copied().unwrap_or(0);
        if mine >= CONNECTIONS_PER_UID || t.total >= total_max {
            return None;
        }
        t.per_uid.insert(uid, mine + 1);
        t.total += 1;
        Some(Slot {
            table: table.clone(),
            uid,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.total = t.total.saturating_sub(1);
        if let Some(n) = t.per_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                t.per_uid.remove(&self.uid);
            }
        }
    }
}

/// The total connection cap for a descriptor limit: at most a quarter of it.
fn total_cap() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    CONNECTIONS_MAX.min(usize::try_from(soft / 4).unwrap_or(CONNECTIONS_MAX))
}

/// Binds the socket (0666) and serves it on the current runtime.
pub fn serve(engine: Arc<Engine>) -> std::io::Result<()> {
    serve_at(engine, Path::new(SOCKET_PATH))
}

pub fn serve_at(engine: Arc<Engine>, path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    let table = Arc::new(Mutex::new(Connections::default()));
    let total_max = total_cap();
    tokio::spawn(async move {
        let mut last_refusal_logged: Option<Instant> = None;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let uid = match stream.peer_cred() {
                        Ok(cred) => cred.uid(),
                        Err(_) => continue,
                    };
                    let Some(slot) = Slot::take(&table, uid, total_max) else {
                        // Closed at once: the refused peer holds none of our descriptors.
                        drop(stream);
                        if last_refusal_logged.is_none_or(|t| t.elapsed() > Duration::from_secs(10))
                        {
                            eprintln!("userdb: too many connections (uid {uid}); refusing more");
                            last_refusal_logged = Some(Instant::now());
                        }
                        continue;
                    };
                    let engine = engine.clone();
                    tokio::spawn(async move {
                        let _slot = slot;
                        if let Err(e) = connection(engine, stream).await {
                            eprintln!("userdb: connection ended: {e}");
                        }
                    });
                }
                Err(e) => {
                    eprintln!("userdb: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

/// One reply or the error that ends a call.
enum Outcome {
    Replies(Vec<Map<String, Value>>),
    Error(&'static str, Map<String, Value>),
}

fn error(name: &'static str) -> Outcome {
    Outcome::Error(name, Map::new())
}

async fn connection(engine: Arc<Engine>, mut stream: UnixStream) -> std::io::Result<()> {
    let caller = Caller {
        uid: stream.peer_cred()?.uid(),
    };
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let wait = if decoder.has_partial() {
            PARTIAL_REQUEST_TIMEOUT
        } else {
            IDLE_TIMEOUT
        };
        let n = match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(read) => read?,
            Err(_) => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        decoder
            .push(&buf[..n])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if decoder.buffered() > REQUEST_MAX_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a request is longer than 64 KiB",
            ));
        }
        while let Some(message) = decoder
            .next_message()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
        {
            let oneway = message.get("oneway").and_then(Value::as_bool) == Some(true);
            let more = message.get("more").and_then(Value::as_bool) == Some(true);
            let method = message.get("method").and_then(Value::as_str).unwrap_or("");
            let empty = Map::new();
            let parameters = message
                .get("parameters")
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            let outcome = dispatch(&engine, caller, method, parameters, more);
            if oneway {
                continue;
            }
            let mut out = Vec::new();
            match outcome {
                Outcome::Error(name, parameters) => {
                    let mut reply = Map::new();
                    reply.insert("error".into(), Value::String(name.into()));
                    reply.insert("parameters".into(), Value::Object(parameters));
                    out.extend(encode_frame(&reply));
                }
                Outcome::Replies(replies) => {
                    let last = replies.len().saturating_sub(1);
                    for (i, parameters) in replies.into_iter().enumerate() {
                        let mut reply = Map::new();
                        reply.insert("parameters".into(), Value::Object(parameters));
                        if more && i < last {
                            reply.insert("continues".into(), Value::Bool(true));
                        }
                        out.extend(encode_frame(&reply));
                    }
                }
            }
            stream.write_all(&out).await?;
        }
    }
}

/// Refuses any parameter but `allowed` (homed's dispatch tables), and a foreign service.
fn check_parameters(parameters: &Map<String, Value>, allowed: [&str; 3]) -> Result<(), Outcome> {
    for key in parameters.keys() {
        if !allowed.contains(&key.as_str()) {
            let mut p = Map::new();
            p.insert("parameter".into(), Value::String(key.clone()));
            return Err(Outcome::Error("org.varlink.service.InvalidParameter", p));
        }
    }
    if parameters.get("service").and_then(Value::as_str) != Some(HOMED_SERVICE) {
        return Err(error("io.systemd.UserDatabase.BadService"));
    }
    Ok(())
}

fn id_param(parameters: &Map<String, Value>, key: &str) -> Result<Option<u32>, Outcome> {
    match parameters.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| {
                let mut p = Map::new();
                p.insert("parameter".into(), Value::String(key.into()));
                Outcome::Error("org.varlink.service.InvalidParameter", p)
            }),
    }
}

fn name_param<'a>(
    parameters: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, Outcome> {
    match parameters.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => {
            let mut p = Map::new();
            p.insert("parameter".into(), Value::String(key.into()));
            Err(Outcome::Error("org.varlink.service.InvalidParameter", p))
        }
    }
}

/// The homes this socket answers for: those whose record, with this machine's binding, passes
/// the rules every managed home must pass (a record the daemon would refuse to activate is not
/// handed to NSS either).
fn served_homes(engine: &Engine) -> Vec<Arc<Home>> {
    engine
        .homes()
        .into_iter()
        .filter(|h| engine.servable(h))
        .collect()
}

/// Finds the one home a lookup by id and/or name means.
fn lookup(
    engine: &Engine,
    id: Option<u32>,
    name: Option<&str>,
) -> Result<Option<Arc<Home>>, Outcome> {
    let by_id = id.map(|id| engine.lookup_uid(id).filter(|h| engine.servable(h)));
    let by_name = name.map(|n| engine.lookup(n).filter(|h| engine.servable(h)));
    match (by_id, by_name) {
        (None, None) => Ok(None),
        (Some(None), _) | (_, Some(None)) => Err(error("io.systemd.UserDatabase.NoRecordFound")),
        (Some(Some(a)), Some(Some(b))) if a.name != b.name => {
            Err(error("io.systemd.UserDatabase.ConflictingRecordFound"))
        }
        (Some(Some(h)), _) | (_, Some(Some(h))) => Ok(Some(h)),
    }
}

fn user_reply(engine: &Engine, home: &Home, caller: Caller) -> Map<String, Value> {
    let (record, incomplete) = engine.served_record(home, caller);
    let mut p = Map::new();
    p.insert("record".into(), record.into_value());
    p.insert("incomplete".into(), Value::Bool(incomplete));
    p
}

/// The per-user group homed synthesizes (homed-spec §1.10).
fn group_reply(engine: &Engine, home: &Home) -> Option<Map<String, Value>> {
    let record = engine.record(home);
    let gid = record.view(&engine.machine).gid()?;
    let mid = engine.machine.machine_id.clone();
    let mut group = Map::new();
    group.insert("groupName".into(), json!(home.name));
    if let Some(realm) = record.realm() {
        group.insert("realm".into(), json!(realm));
    }
    group.insert(
        "description".into(),
        json!(format!("Primary Group of User {}", home.name)),
    );
    group.insert("binding".into(), json!({ mid.clone(): {"gid": gid} }));
    group.insert("disposition".into(), json!("regular"));
    group.insert("status".into(), json!({ mid: {"service": HOMED_SERVICE} }));
    let mut p = Map::new();
    p.insert("record".into(), Value::Object(group));
    Some(p)
}

fn all_or_none(replies: Vec<Map<String, Value>>, more: bool) -> Outcome {
    if replies.is_empty() {
        return error("io.systemd.UserDatabase.NoRecordFound");
    }
    if replies.len() > 1 && !more {
        return error("org.varlink.service.ExpectedMore");
    }
    Outcome::Replies(replies)
}

fn dispatch(
    engine: &Engine,
    caller: Caller,
    method: &str,
    parameters: &Map<String, Value>,
    more: bool,
) -> Outcome {
    let result = (|| -> Result<Outcome, Outcome> {
        match method
            .strip_prefix(INTERFACE)
            .and_then(|m| m.strip_prefix('.'))
        {
            Some("GetUserRecord") => {
                check_parameters(parameters, ["uid", "userName", "service"])?;
                let id = id_param(parameters, "uid")?;
                let name = name_param(parameters, "userName")?;
                if id.is_some() || name.is_some() {
                    let home = lookup(engine, id, name)?
                        .ok_or_else(|| error("io.systemd.UserDatabase.NoRecordFound"))?;
                    return Ok(Outcome::Replies(vec![user_reply(engine, &home, caller)]));
                }
                let replies = served_homes(engine)
                    .iter()
                    .map(|h| user_reply(engine, h, caller))
                    .collect();
                Ok(all_or_none(replies, more))
            }
            Some("GetGroupRecord") => {
                check_parameters(parameters, ["gid", "groupName", "service"])?;
                let id = id_param(parameters, "gid")?;
                let name = name_param(parameters, "groupName")?;
                if id.is_some() || name.is_some() {
                    let home = lookup(engine, id, name)?
                        .ok_or_else(|| error("io.systemd.UserDatabase.NoRecordFound"))?;
                    let reply = group_reply(engine, &home)
                        .ok_or_else(|| error("io.systemd.UserDatabase.NoRecordFound"))?;
                    return Ok(Outcome::Replies(vec![reply]));
                }
                let replies = served_homes(engine)
                    .iter()
                    .filter_map(|h| group_reply(engine, h))
                    .collect();
                Ok(all_or_none(replies, more))
            }
            Some("GetMemberships") => {
                check_parameters(parameters, ["userName", "groupName", "service"])?;
                let user = name_param(parameters, "userName")?;
                let group = name_param(parameters, "groupName")?;
                let mut replies = Vec::new();
                for home in served_homes(engine) {
                    if user.is_some_and(|u| u != home.name) {
                        continue;
                    }
                    let record = engine.record(&home);
                    let view = record.view(&engine.machine);
                    for g in view.member_of() {
                        if group.is_some_and(|wanted| wanted != g) {
                            continue;
                        }
                        let mut p = Map::new();
                        p.insert("userName".into(), json!(home.name));
                        p.insert("groupName".into(), json!(g));
                        replies.push(p);
                    }
                }
                if user.is_some() && engine.lookup(user.unwrap_or_default()).is_none() {
                    return Err(error("io.systemd.UserDatabase.NoRecordFound"));
                }
                Ok(all_or_none(replies, more))
            }
            _ if method == "io.systemd.service.Ping" => Ok(Outcome::Replies(vec![Map::new()])),
            _ => {
                let mut p = Map::new();
                p.insert("method".into(), Value::String(method.into()));
                Err(Outcome::Error("org.varlink.service.MethodNotFound", p))
            }
        }
    })();
    result.unwrap_or_else(|e| e)
}
