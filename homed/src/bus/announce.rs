//! What the bus tells those who watch it (the user panels of GNOME and KDE, accountsservice),
//! as systemd-homed 252 tells it:
//!
//! - an ObjectManager at `/org/freedesktop/home1/home` that lists each home once, by name, and
//!   announces homes as they come (`InterfacesAdded`, with UserName, UID, UnixRecord and State,
//!   never the record) and go (`InterfacesRemoved`);
//! - `PropertiesChanged` on a Home whenever its record is written (UID and UnixRecord with their
//!   values, UserRecord invalidated: the record is read per caller), and on the Manager then and
//!   whenever a home comes or goes (AutoLogin invalidated).

use std::collections::HashMap;
use std::sync::Arc;

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{Connection, ObjectPath, OwnedObjectPath, OwnedVariant, Variant};

use super::{MANAGER_PATH, caller, home_path};
use crate::engine::{Caller, Engine, Home, HomeChange};

const HOME_INTERFACE: &str = "org.freedesktop.home1.Home";
const MANAGER_INTERFACE: &str = "org.freedesktop.home1.Manager";
/// Every interface a Home object has, as InterfacesRemoved names them.
const HOME_INTERFACES: [&str; 4] = [
    "org.freedesktop.DBus.Peer",
    "org.freedesktop.DBus.Introspectable",
    "org.freedesktop.DBus.Properties",
    HOME_INTERFACE,
];

type Interfaces = HashMap<String, HashMap<String, OwnedVariant>>;

/// The Home properties every watcher may see, by value.
fn public_properties(engine: &Engine, home: &Home) -> HashMap<String, OwnedVariant> {
    let s = engine.summary(home);
    let uid = engine.uid_of(home).unwrap_or(u32::MAX);
    let mut p = HashMap::new();
    let text = |t: String| OwnedVariant::try_from(Variant::from(t)).ok();
    if let Some(v) = text(s.name.clone()) {
        p.insert("UserName".to_owned(), v);
    }
    p.insert("UID".to_owned(), OwnedVariant::from(uid));
    let record = (s.name, s.uid, s.gid, s.real_name, s.home_directory, s.shell);
    if let Ok(v) = OwnedVariant::try_from(Variant::from(record)) {
        p.insert("UnixRecord".to_owned(), v);
    }
    if let Some(v) = text(s.state.to_string()) {
        p.insert("State".to_owned(), v);
    }
    p
}

/// A home's interfaces as InterfacesAdded and GetManagedObjects give them; `record_for` adds the
/// record as that caller may read it.
fn interfaces(engine: &Engine, home: &Home, record_for: Option<Caller>) -> Interfaces {
    let mut all: Interfaces = HOME_INTERFACES
        .iter()
        .map(|i| ((*i).to_owned(), HashMap::new()))
        .collect();
    let mut home_properties = public_properties(engine, home);
    if let Some(who) = record_for {
        let (record, incomplete) = engine.served_record(home, who);
        if let Ok(v) =
            OwnedVariant::try_from(Variant::from((record.to_compact_string(), incomplete)))
        {
            home_properties.insert("UserRecord".to_owned(), v);
        }
    }
    all.insert(HOME_INTERFACE.to_owned(), home_properties);
    all
}

fn borrowed(interfaces: &Interfaces) -> HashMap<&str, HashMap<&str, Variant<'_>>> {
    interfaces
        .iter()
        .map(|(i, props)| {
            let props = props
                .iter()
                .filter_map(|(k, v)| Variant::try_from(v).ok().map(|v| (k.as_str(), v)))
                .collect();
            (i.as_str(), props)
        })
        .collect()
}

pub struct HomeObjectManager {
    engine: Arc<Engine>,
}

impl HomeObjectManager {
    pub fn new(engine: Arc<Engine>) -> Self {
        HomeObjectManager { engine }
    }
}

#[zbus::interface(name = "org.freedesktop.DBus.ObjectManager")]
impl HomeObjectManager {
    /// Each home once, by name, with the record as the caller may read it (as 252 serves it).
    async fn get_managed_objects(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> HashMap<OwnedObjectPath, Interfaces> {
        let who = caller(conn, &header)
            .await
            .unwrap_or(Caller { uid: u32::MAX });
        self.engine
            .homes()
            .iter()
            .map(|h| (home_path(&h.name), interfaces(&self.engine, h, Some(who))))
            .collect()
    }

    #[zbus(signal)]
    async fn interfaces_added(
        emitter: &SignalEmitter<'_>,
        object_path: ObjectPath<'_>,
        interfaces_and_properties: HashMap<&str, HashMap<&str, Variant<'_>>>,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn interfaces_removed(
        emitter: &SignalEmitter<'_>,
        object_path: ObjectPath<'_>,
        interfaces: &[&str],
    ) -> zbus::Result<()>;
}

fn emitter_at<'a>(conn: &Connection, path: &'a str) -> Option<SignalEmitter<'a>> {
    SignalEmitter::new(conn, path).ok()
}

/// InterfacesAdded for the home of `name`, just served.
pub async fn home_added(conn: &Connection, engine: &Engine, name: &str) {
    let (Some(home), Some(emitter)) = (
        engine.lookup(name),
        emitter_at(conn, super::HOME_PATH_PREFIX),
    ) else {
        return;
    };
    let all = interfaces(engine, &home, None);
    let path = home_path(name);
    let _ = HomeObjectManager::interfaces_added(&emitter, path.as_ref(), borrowed(&all)).await;
    auto_login_changed(conn).await;
}

/// InterfacesRemoved for the home of `name`, no longer served.
pub async fn home_removed(conn: &Connection, name: &str) {
    let Some(emitter) = emitter_at(conn, super::HOME_PATH_PREFIX) else {
        return;
    };
    let path = home_path(name);
    let _ = HomeObjectManager::interfaces_removed(&emitter, path.as_ref(), &HOME_INTERFACES).await;
    auto_login_changed(conn).await;
}

/// Announces one change of the engine's.
async fn announce(conn: &Connection, engine: &Engine, change: HomeChange) {
    if let HomeChange::Record(name) = &change
        && let Some(home) = engine.lookup(name)
    {
        let path = home_path(name);
        if let Some(emitter) = emitter_at(conn, path.as_str()) {
            let public = public_properties(engine, &home);
            let changed: HashMap<&str, Variant<'_>> = ["UID", "UnixRecord"]
                .iter()
                .filter_map(|k| {
                    let v = Variant::try_from(public.get(*k)?).ok()?;
                    Some((*k, v))
                })
                .collect();
            let _ = zbus::fdo::Properties::properties_changed(
                &emitter,
                zbus::names::InterfaceName::from_static_str_unchecked(HOME_INTERFACE),
                changed,
                (&["UserRecord"][..]).into(),
            )
            .await;
        }
    }
    auto_login_changed(conn).await;
}

/// Which homes log in automatically may differ whenever a home's record changes, or a home
/// comes or goes: systemd-homed invalidates the Manager's AutoLogin then.
async fn auto_login_changed(conn: &Connection) {
    if let Some(emitter) = emitter_at(conn, MANAGER_PATH) {
        let _ = zbus::fdo::Properties::properties_changed(
            &emitter,
            zbus::names::InterfaceName::from_static_str_unchecked(MANAGER_INTERFACE),
            HashMap::new(),
            (&["AutoLogin"][..]).into(),
        )
        .await;
    }
}

/// Announces the engine's changes for as long as it makes them.
pub fn spawn(conn: Connection, engine: Arc<Engine>) {
    let Some(mut changes) = engine.changes() else {
        return;
    };
    let engine = Arc::downgrade(&engine);
    tokio::spawn(async move {
        while let Some(change) = changes.recv().await {
            let Some(engine) = engine.upgrade() else {
                return;
            };
            announce(&conn, &engine, change).await;
        }
    });
}
