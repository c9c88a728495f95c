//! `org.freedesktop.home1` on the system bus: a thin translation of the engine.

mod announce;
mod error;
mod home;
mod manager;
mod methods;
mod socket;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use zbus::Connection;
use zbus::OwnedObjectPath;
use zbus::fdo::{DBusProxy, RequestNameFlags, RequestNameReply};
use zbus::message::Header;

pub use error::BusError;

use crate::engine::{Caller, Engine, EngineError, EngineResult};

pub use homed_shared::proto::{BUS_NAME, HOME_PATH_PREFIX, MANAGER_PATH};

/// `sd_bus_path_encode`: every byte outside `[A-Za-z0-9]` (and a leading digit) as `_xx`.
pub fn escape_path_label(label: &str) -> String {
    if label.is_empty() {
        return "_".into();
    }
    let mut out = String::with_capacity(label.len() * 3);
    for (i, b) in label.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (b.is_ascii_digit() && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

pub fn home_path(user: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("{HOME_PATH_PREFIX}/{}", escape_path_label(user)))
        .unwrap_or_else(|_| OwnedObjectPath::try_from(HOME_PATH_PREFIX).unwrap_or_default())
}

pub fn home_path_by_uid(uid: u32) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("{HOME_PATH_PREFIX}/{uid}")).unwrap_or_default()
}

/// The runtime the engine runs on. zbus dispatches calls on its own executor, so the bus layer
/// hands each operation over to this one (worker processes, FIFOs and timers live there).
pub static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();

/// Runs an engine operation on the engine's runtime and translates its error.
pub async fn on_engine<T: Send + 'static>(
    operation: impl Future<Output = EngineResult<T>> + Send + 'static,
) -> Result<T, BusError> {
    let handle = RUNTIME.get().ok_or_else(|| {
        BusError::from(EngineError::Failed("The daemon is not running yet".into()))
    })?;
    match handle.spawn(operation).await {
        Ok(result) => result.map_err(BusError::from),
        Err(e) => Err(BusError::from(EngineError::Failed(format!(
            "The operation failed: {e}"
        )))),
    }
}

/// Runs `operation` for the caller of the call being handled (its UID from the bus) on the
/// engine's runtime.
pub async fn as_caller<T, F, Fut>(
    engine: &Arc<Engine>,
    conn: &Connection,
    header: &Header<'_>,
    operation: F,
) -> Result<T, BusError>
where
    T: Send + 'static,
    F: FnOnce(Arc<Engine>, Caller) -> Fut,
    Fut: Future<Output = EngineResult<T>> + Send + 'static,
{
    let who = caller(conn, header).await?;
    on_engine(operation(engine.clone(), who)).await
}

/// The caller's UID, from the bus (GetConnectionUnixUser), never from /proc.
pub async fn caller(conn: &Connection, header: &Header<'_>) -> Result<Caller, BusError> {
    let sender = header
        .sender()
        .ok_or_else(|| BusError::from(EngineError::AccessDenied("Message has no sender".into())))?;
    let proxy = DBusProxy::new(conn).await?;
    let uid = proxy
        .get_connection_unix_user(sender.clone().into())
        .await
        .map_err(|e| {
            BusError::from(EngineError::AccessDenied(format!(
                "Cannot identify the caller: {e}"
            )))
        })?;
    Ok(Caller { uid })
}

/// The Home objects currently served, so that they can follow the engine's homes.
pub struct Objects {
    conn: Connection,
    engine: Arc<Engine>,
    served: Mutex<BTreeSet<(String, Option<u32>)>>,
}

impl Objects {
    /// Serves a Home object for each home the engine knows (by name and by UID) and removes
    /// the objects of homes that are gone.
    pub async fn sync(&self) {
        let wanted: BTreeSet<(String, Option<u32>)> = self
            .engine
            .homes()
            .iter()
            .map(|h| (h.name.clone(), self.engine.uid_of(h)))
            .collect();
        let served = self.served.lock().map(|s| s.clone()).unwrap_or_default();
        let server = self.conn.object_server();
        let names = |set: &BTreeSet<(String, Option<u32>)>| -> BTreeSet<String> {
            set.iter().map(|(n, _)| n.clone()).collect()
        };
        let (served_names, wanted_names) = (names(&served), names(&wanted));
        for (name, uid) in served.difference(&wanted) {
            let _ = server.remove::<home::HomeObject, _>(home_path(name)).await;
            if let Some(uid) = uid {
                let _ = server
                    .remove::<home::HomeObject, _>(home_path_by_uid(*uid))
                    .await;
            }
            if !wanted_names.contains(name) {
                announce::home_removed(&self.conn, name).await;
            }
        }
        for (name, uid) in wanted.difference(&served) {
            let object = home::HomeObject::new(self.engine.clone(), name.clone());
            let _ = server.at(home_path(name), object.clone()).await;
            if let Some(uid) = uid {
                let _ = server.at(home_path_by_uid(*uid), object).await;
            }
            if !served_names.contains(name) {
                announce::home_added(&self.conn, &self.engine, name).await;
            }
        }
        if let Ok(mut s) = self.served.lock() {
            *s = wanted;
        }
    }
}

/// Why the daemon could not take the bus name.
#[derive(Debug)]
pub enum StartError {
    NameTaken,
    Bus(zbus::Error),
}

impl From<zbus::Error> for StartError {
    fn from(e: zbus::Error) -> Self {
        StartError::Bus(e)
    }
}

impl From<zbus::fdo::Error> for StartError {
    fn from(e: zbus::fdo::Error) -> Self {
        StartError::Bus(e.into())
    }
}

/// Connects to the system bus, serves every object, then claims the name. Refuses when another
/// process (systemd-homed, or a second copy of us) owns it.
pub async fn serve(engine: Arc<Engine>) -> Result<(Connection, Arc<Objects>), StartError> {
    // Our own socket: zbus's keeps a read-ahead buffer with the bytes of past calls in it.
    let socket = socket::ExactReadSocket::system().await?;
    let conn = zbus::connection::Builder::socket(socket).build().await?;
    let dbus = DBusProxy::new(&conn).await?;
    let name = zbus::names::WellKnownName::try_from(BUS_NAME)?;
    if dbus.name_has_owner(name.clone().into()).await? {
        return Err(StartError::NameTaken);
    }
    let objects = Arc::new(Objects {
        conn: conn.clone(),
        engine: engine.clone(),
        served: Mutex::new(BTreeSet::new()),
    });
    let server = conn.object_server();
    server
        .at(
            MANAGER_PATH,
            manager::Manager::new(engine.clone(), objects.clone()),
        )
        .await?;
    server
        .at(
            HOME_PATH_PREFIX,
            announce::HomeObjectManager::new(engine.clone()),
        )
        .await?;
    objects.sync().await;
    announce::spawn(conn.clone(), engine.clone());
    match dbus
        .request_name(name, RequestNameFlags::DO_NOT_QUEUE)
        .await?
    {
        RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner => {}
        _ => return Err(StartError::NameTaken),
    }
    Ok((conn, objects))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_labels_as_sd_bus() {
        assert_eq!(escape_path_label("bob"), "bob");
        assert_eq!(escape_path_label("john.doe"), "john_2edoe");
        assert_eq!(escape_path_label("1x"), "_31x");
        assert_eq!(escape_path_label("a-b_c"), "a_2db_5fc");
    }
}
