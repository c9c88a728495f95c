//! `org.freedesktop.home1.Home`: one object per home, the Manager's methods without the name.

use std::sync::Arc;

use zbus::Connection;
use zbus::message::Header;

use super::{BusError, as_caller, caller, on_engine};
use crate::engine::{Caller, Engine, EngineError};

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
}

/// Parses a secret argument and wipes the text it came in.
fn secret(mut text: String) -> Result<homed_shared::record::Secret, BusError> {
    let parsed = Engine::parse_secret(&text).map_err(BusError::from);
    zeroize::Zeroize::zeroize(&mut text);
    parsed
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
        let secret = self::secret(secret)?;
        let name = self.name.clone();
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.activate(who, &name, &secret).await
        })
        .await
    }

    async fn deactivate(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let name = self.name.clone();
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.deactivate(who, &name).await
        })
        .await
    }

    async fn unregister(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let name = self.name.clone();
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.unregister(who, &name).await
        })
        .await
    }

    async fn realize(
        &self,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let secret = self::secret(secret)?;
        let name = self.name.clone();
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.realize(who, &name, &secret).await
        })
        .await
    }

    async fn remove(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let name = self.name.clone();
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.remove(who, &name).await
        })
        .await
    }

    async fn fixate(
        &self,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let secret = self::secret(secret)?;
        let name = self.name.clone();
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.fixate(who, &name, &secret).await
        })
        .await
    }

    async fn authenticate(
        &self,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let secret = self::secret(secret)?;
        let name = self.name.clone();
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.authenticate(who, &name, &secret).await
        })
        .await
    }

    async fn update(
        &self,
        user_record: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let parsed: serde_json::Value = serde_json::from_str(&user_record)
            .map_err(|e| BusError::InvalidArgs(format!("Failed to parse user record: {e}")))?;
        if parsed.get("userName").and_then(|v| v.as_str()) != Some(self.name.as_str()) {
            return Err(EngineError::RecordMismatch(
                "User record to update is for a different user, refusing.".into(),
            )
            .into());
        }
        as_caller(&self.engine, conn, &header, |e, who| async move {
            let mut user_record = user_record;
            let result = e.update(who, &user_record).await;
            // The record may carry passwords in its secret section.
            zeroize::Zeroize::zeroize(&mut user_record);
            result
        })
        .await
    }

    async fn resize(
        &self,
        size: u64,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let secret = self::secret(secret)?;
        let name = self.name.clone();
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.resize(who, &name, size, &secret).await
        })
        .await
    }

    async fn change_password(
        &self,
        new_secret: String,
        old_secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let new_secret = self::secret(new_secret)?;
        let old_secret = self::secret(old_secret)?;
        let name = self.name.clone();
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.change_password(who, &name, &new_secret, &old_secret)
                .await
        })
        .await
    }

    async fn lock(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let name = self.name.clone();
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.lock_home(who, &name).await
        })
        .await
    }

    async fn unlock(
        &self,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let secret = self::secret(secret)?;
        let name = self.name.clone();
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.unlock_home(who, &name, &secret).await
        })
        .await
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
        let who = caller(conn, &header).await?;
        if who.uid != 0 {
            return Err(BusError::AccessDenied("Access denied".into()));
        }
        let secret = self::secret(secret)?;
        let name = self.name.clone();
        let e = self.engine.clone();
        let fd =
            on_engine(async move { e.acquire(who, &name, &secret, please_suspend).await }).await?;
        Ok(zbus::OwnedFd::from(fd))
    }

    #[zbus(name = "Ref", out_args("send_fd"))]
    async fn reference(
        &self,
        please_suspend: bool,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<zbus::OwnedFd, BusError> {
        let name = self.name.clone();
        let fd = as_caller(&self.engine, conn, &header, |e, who| async move {
            e.ref_home(who, &name, please_suspend).await
        })
        .await?;
        Ok(zbus::OwnedFd::from(fd))
    }

    async fn release(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let name = self.name.clone();
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.release(who, &name).await
        })
        .await
    }
}
