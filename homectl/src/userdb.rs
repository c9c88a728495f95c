//! Group lookups for `inspect`: the `io.systemd.UserDatabase` varlink services in
//! `/run/systemd/userdb` first (homed serves its users' groups and memberships there), then
//! NSS, as systemd's userdb client does.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

const USERDB_DIR: &str = "/run/systemd/userdb";
const MULTIPLEXER: &str = "io.systemd.Multiplexer";
const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REPLY: usize = 4 << 20;

/// The services to ask: the multiplexer if it runs, else every socket but NSS's own (NSS is
/// asked directly) and those listed in `$SYSTEMD_BYPASS_USERDB`.
fn services() -> Vec<(String, PathBuf)> {
    let dir = Path::new(USERDB_DIR);
    let multiplexer = dir.join(MULTIPLEXER);
    if multiplexer.exists() {
        return vec![(MULTIPLEXER.to_owned(), multiplexer)];
    }
    let bypass = std::env::var("SYSTEMD_BYPASS_USERDB").unwrap_or_default();
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if name == "io.systemd.NameServiceSwitch"
                || name == "io.systemd.DropIn"
                || bypass.split(':').any(|b| b == name)
            {
                return None;
            }
            Some((name, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// One varlink call; returns the `parameters` of every reply (several with `more`).
fn call(path: &Path, method: &str, parameters: Value, more: bool) -> Result<Vec<Value>, String> {
    let mut stream = UnixStream::connect(path).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut request = json!({"method": method, "parameters": parameters});
    if more {
        request["more"] = Value::Bool(true);
    }
    let mut bytes = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    bytes.push(0);
    stream.write_all(&bytes).map_err(|e| e.to_string())?;
    let mut replies = Vec::new();
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        while let Some(end) = buffer.iter().position(|b| *b == 0) {
            let message: Vec<u8> = buffer.drain(..=end).collect();
            let reply: Value =
                serde_json::from_slice(&message[..end]).map_err(|e| e.to_string())?;
            if let Some(error) = reply.get("error").and_then(Value::as_str) {
                if replies.is_empty() {
                    return Err(error.to_owned());
                }
                return Ok(replies);
            }
            replies.push(reply.get("parameters").cloned().unwrap_or(Value::Null));
            if reply.get("continues").and_then(Value::as_bool) != Some(true) {
                return Ok(replies);
            }
        }
        let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buffer.extend_from_slice(&chunk[..n]);
        if buffer.len() > MAX_REPLY {
            return Err("reply too long".into());
        }
    }
}

/// The name of group `gid`, or why it could not be found (shown as "unresolvable: …").
pub fn group_name(gid: u32) -> Result<String, String> {
    for (service, path) in services() {
        let params = json!({"gid": gid, "service": service});
        if let Ok(replies) = call(
            &path,
            "io.systemd.UserDatabase.GetGroupRecord",
            params,
            false,
        ) && let Some(name) = replies
            .first()
            .and_then(|p| p.get("record"))
            .and_then(|r| r.get("groupName"))
            .and_then(Value::as_str)
        {
            return Ok(name.to_owned());
        }
    }
    match nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)) {
        Ok(Some(group)) => Ok(group.name),
        Ok(None) => Err("No such process".into()),
        Err(e) => Err(e.desc().to_owned()),
    }
}

/// The groups `user` is a member of beyond its primary group.
pub fn memberships(user: &str) -> Vec<String> {
    let mut groups: Vec<String> = Vec::new();
    for (service, path) in services() {
        let params = json!({"userName": user, "service": service});
        if let Ok(replies) = call(
            &path,
            "io.systemd.UserDatabase.GetMemberships",
            params,
            true,
        ) {
            for reply in replies {
                if reply.get("userName").and_then(Value::as_str) != Some(user) {
                    continue;
                }
                if let Some(group) = reply.get("groupName").and_then(Value::as_str)
                    && !groups.iter().any(|g| g == group)
                {
                    groups.push(group.to_owned());
                }
            }
        }
    }
    for group in crate::sys::nss_groups_listing(user) {
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups
}
