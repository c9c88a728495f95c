//! `org.freedesktop.home1.Home`: one object per home, the Manager's methods without the name.

use std::sync::Arc;

use zbus::Connection;
use zbus::message::Header;

use super::methods::{self, Call};
use super::{BusError, caller};
use crate::engine::{Caller, Engine, Via};

#[derive(Clone)]
pub struct HomeObject {
    engine: Arc<Engine>,
    name: String,
}

impl HomeObject {
    pub fn new(engine: Arc<Engine>, name: String) -> Self {
        HomeObject { engine, name }
    }

    fn home(&self) -> Result<Arc<crate::engine::Home>, BusError> {
        Ok(self.engine.find(&self.name, Caller::ROOT)?)
    }

    fn call<'a>(&'a self, conn: &'a Connection, header: &'a Header<'a>) -> Call<'a> {
        Call {
            engine: &self.engine,
            conn,
            header,
        }
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

#[zbus::interface(name = "org.freedesktop.home1.Home")]
impl HomeObject {
    #[zbus(property(emits_changed_signal = "const"))]
    fn user_name(&self) -> String {
        self.name.clone()
    }

    #[zbus(property, name = "UID")]
    fn uid(&self) -> u32 {
        self.home()
            .ok()
            .and_then(|h| self.engine.uid_of(&h))
            .unwrap_or(u32::MAX)
    }

    #[zbus(property)]
    fn unix_record(&self) -> (String, u32, u32, String, String, String) {
        match self.home() {
            Ok(h) => {
                let s = self.engine.summary(&h);
                (s.name, s.uid, s.gid, s.real_name, s.home_directory, s.shell)
            }
            Err(_) => (
                self.name.clone(),
                u32::MAX,
                u32::MAX,
                String::new(),
                String::new(),
                String::new(),
            ),
        }
    }

    #[zbus(property(emits_changed_signal = "false"))]
    fn state(&self) -> String {
        self.home()
            .map(|h| self.engine.state(&h).to_string())
            .unwrap_or_else(|_| crate::engine::HomeState::Absent.to_string())
    }

    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn user_record(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Option<Header<'_>>,
    ) -> (String, bool) {
        let who = match header {
            Some(h) => caller(conn, &h).await.unwrap_or(Caller { uid: u32::MAX }),
            None => Caller { uid: u32::MAX },
        };
        match self.home() {
            Ok(h) => {
                let (record, incomplete) = self.engine.served_record(&h, who);
                (record.to_compact_string(), incomplete)
            }
            Err(_) => (String::new(), true),
        }
    }

    async fn activate(
        &self,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::activate(&self.call(conn, &header), self.name(), secret).await
    }

    async fn deactivate(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::deactivate(&self.call(conn, &header), self.name()).await
    }

    async fn unregister(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::unregister(&self.call(conn, &header), self.name()).await
    }

    async fn realize(
        &self,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::realize(&self.call(conn, &header), self.name(), secret).await
    }

    async fn remove(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::remove(&self.call(conn, &header), self.name()).await
    }

    async fn fixate(
        &self,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::fixate(&self.call(conn, &header), self.name(), secret).await
    }

    async fn authenticate(
        &self,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::authenticate(&self.call(conn, &header), self.name(), secret).await
    }

    async fn update(
        &self,
        user_record: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::update(&self.call(conn, &header), user_record, Some(self.name())).await
    }

    async fn resize(
        &self,
        size: u64,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::resize(&self.call(conn, &header), self.name(), size, secret).await
    }

    async fn change_password(
        &self,
        new_secret: String,
        old_secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::change_password(
            &self.call(conn, &header),
            self.name(),
            new_secret,
            old_secret,
        )
        .await
    }

    async fn lock(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::lock(&self.call(conn, &header), self.name()).await
    }

    async fn unlock(
        &self,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::unlock(&self.call(conn, &header), self.name(), secret).await
    }

    /// Unlike Manager.AcquireHome, privileged (root only), as in v252.
    #[zbus(out_args("send_fd"))]
    async fn acquire(
        &self,
        secret: String,
        please_suspend: bool,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<zbus::OwnedFd, BusError> {
        methods::acquire(
            &self.call(conn, &header),
            self.name(),
            secret,
            please_suspend,
            Via::HomeObject,
        )
        .await
    }

    #[zbus(name = "Ref", out_args("send_fd"))]
    async fn reference(
        &self,
        please_suspend: bool,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<zbus::OwnedFd, BusError> {
        methods::reference(&self.call(conn, &header), self.name(), please_suspend).await
    }

    async fn release(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::release(&self.call(conn, &header), self.name()).await
    }
}
