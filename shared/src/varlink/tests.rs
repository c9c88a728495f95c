//! The client against a scripted server on a socket of its own.

use std::io::{Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::record::MachineContext;

/// Reads one NUL-terminated request; `None` when the client hung up.
fn read_request(stream: &mut UnixStream) -> Option<Value> {
    let mut bytes = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        stream.read_exact(&mut byte).ok()?;
        if byte[0] == 0 {
            return Some(serde_json::from_slice(&bytes).unwrap());
        }
        bytes.push(byte[0]);
    }
}

fn send(stream: &mut UnixStream, message: Value) {
    let mut bytes = serde_json::to_vec(&message).unwrap();
    bytes.push(0);
    stream.write_all(&bytes).unwrap();
}

/// A server that answers each request with the replies `answer` returns for it.
fn serve(
    dir: &Path,
    answer: impl Fn(&Value) -> Vec<Value> + Send + 'static,
) -> (PathBuf, thread::JoinHandle<Vec<Value>>) {
    let path = dir.join("io.systemd.Home");
    let listener = UnixListener::bind(&path).unwrap();
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut seen = Vec::new();
        while let Some(request) = read_request(&mut stream) {
            for reply in answer(&request) {
                send(&mut stream, reply);
            }
            seen.push(request);
        }
        seen
    });
    (path, handle)
}

#[test]
fn user_lookups_and_enumeration() {
    let dir = tempfile::tempdir().unwrap();
    let (path, server) = serve(dir.path(), |req| {
        let params = &req["parameters"];
        let record = |name: &str, uid: u64| {
            json!({"record": {"userName": name, "uid": uid, "status": {"m": {"service": "io.systemd.Home"}}},
                   "incomplete": true})
        };
        match (req["method"].as_str().unwrap(), params["userName"].as_str()) {
            ("io.systemd.UserDatabase.GetUserRecord", Some("bob")) => {
                vec![json!({"parameters": record("bob", 60076)})]
            }
            ("io.systemd.UserDatabase.GetUserRecord", Some(_)) => {
                vec![json!({"error": "io.systemd.UserDatabase.NoRecordFound", "parameters": {}})]
            }
            ("io.systemd.UserDatabase.GetUserRecord", None) => vec![
                json!({"parameters": record("alice", 60456), "continues": true}),
                json!({"parameters": record("bob", 60076)}),
            ],
            ("io.systemd.UserDatabase.GetMemberships", _) => vec![
                json!({"parameters": {"userName": "bob", "groupName": "users"}, "continues": true}),
                json!({"parameters": {"userName": "bob", "groupName": "wheel"}}),
            ],
            ("io.systemd.UserDatabase.GetGroupRecord", _) => vec![json!({"parameters": {"record":
                {"groupName": "bob", "binding": {"00000000000000000000000000000001": {"gid": 60076}}}}})],
            _ => vec![json!({"error": "org.varlink.service.MethodNotFound"})],
        }
    });
    let mut db = UserDatabase::connect(&path).unwrap();
    let bob = db.user_by_name("bob").unwrap().unwrap();
    assert_eq!(bob.record.user_name(), "bob");
    assert!(bob.incomplete);
    assert!(db.user_by_name("nosuch").unwrap().is_none());
    let all: Vec<String> = db
        .all_users()
        .unwrap()
        .iter()
        .map(|u| u.record.user_name().to_owned())
        .collect();
    assert_eq!(all, ["alice", "bob"]);
    let groups: Vec<String> = db
        .memberships(Some("bob"), None)
        .unwrap()
        .into_iter()
        .map(|m| m.group_name)
        .collect();
    assert_eq!(groups, ["users", "wheel"]);
    let machine = MachineContext::new("00000000000000000000000000000001", None);
    let group = db.group_by_name("bob", &machine).unwrap().unwrap();
    assert_eq!((group.name.as_str(), group.gid), ("bob", 60076));
    drop(db);
    let requests = server.join().unwrap();
    // Every request names the service the socket is for; enumeration asks for `more`.
    assert!(
        requests
            .iter()
            .all(|r| r["parameters"]["service"] == "io.systemd.Home")
    );
    assert_eq!(requests[2]["more"], true);
    assert!(requests[0].get("more").is_none());
}

#[test]
fn a_silent_service_costs_the_timeout_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("io.systemd.Home");
    let listener = UnixListener::bind(&path).unwrap();
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let mut db = UserDatabase::connect_with_timeout(&path, timeout).unwrap();
    let err = db.user_by_name("bob").unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, VarlinkError::Timeout), "{err}");
    assert!(took >= timeout && took < timeout * 3, "{took:?}");
    drop(listener);
}

#[test]
fn missing_and_refusing_services_fail_at_connect() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("io.systemd.Home");
    assert!(matches!(
        UserDatabase::connect(&path),
        Err(VarlinkError::Connect { .. })
    ));
    drop(UnixListener::bind(&path).unwrap());
    // The socket file is left behind without a listener: connection refused.
    assert!(matches!(
        UserDatabase::connect(&path),
        Err(VarlinkError::Connect { .. })
    ));
}

#[test]
fn a_service_that_hangs_up_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("io.systemd.Home");
    let listener = UnixListener::bind(&path).unwrap();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        read_request(&mut stream);
        // Half a reply, then the connection closes.
        stream.write_all(b"{\"parameters\":").unwrap();
    });
    let mut db = UserDatabase::connect(&path).unwrap();
    let started = Instant::now();
    let err = db.user_by_uid(1).unwrap_err();
    assert!(matches!(err, VarlinkError::Closed), "{err}");
    assert!(started.elapsed() < DEFAULT_TIMEOUT, "{err}");
    server.join().unwrap();
}
