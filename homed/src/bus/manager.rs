//! `org.freedesktop.home1.Manager` at /org/freedesktop/home1, v252's method set.

use std::sync::Arc;

use zbus::Connection;
use zbus::OwnedObjectPath;
use zbus::message::Header;

use super::{BusError, Objects, as_caller, caller, home_path, home_path_by_uid};
use crate::engine::{Caller, Engine};

type ListEntry = (
    String,
    u32,
    String,
    u32,
    String,
    String,
    String,
    OwnedObjectPath,
);

pub struct Manager {
    engine: Arc<Engine>,
    objects: Arc<Objects>,
}

impl Manager {
    pub fn new(engine: Arc<Engine>, objects: Arc<Objects>) -> Self {
        Manager { engine, objects }
    }
}

/// Parses a secret argument and wipes the text it came in.
fn secret(mut text: String) -> Result<homed_shared::record::Secret, BusError> {
    let parsed = Engine::parse_secret(&text).map_err(BusError::from);
    zeroize::Zeroize::zeroize(&mut text);
    parsed
}

#[zbus::interface(name = "org.freedesktop.home1.Manager")]
impl Manager {
    #[zbus(property)]
    fn auto_login(&self) -> Vec<(String, String, OwnedObjectPath)> {
        self.engine
            .auto_login()
            .into_iter()
            .map(|name| {
                let path = home_path(&name);
                (name, "seat0".to_owned(), path)
            })
            .collect()
    }

    #[zbus(out_args(
        "uid",
        "home_state",
        "gid",
        "real_name",
        "home_directory",
        "shell",
        "bus_path"
    ))]
    async fn get_home_by_name(
        &self,
        user_name: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(u32, String, u32, String, String, String, OwnedObjectPath), BusError> {
        let who = if user_name.is_empty() {
            caller(conn, &header).await?
        } else {
            Caller::ROOT
        };
        let home = self.engine.find(&user_name, who)?;
        let s = self.engine.summary(&home);
        Ok((
            s.uid,
            s.state.to_string(),
            s.gid,
            s.real_name,
            s.home_directory,
            s.shell,
            home_path(&s.name),
        ))
    }

    #[zbus(
        name = "GetHomeByUID",
        out_args(
            "user_name",
            "home_state",
            "gid",
            "real_name",
            "home_directory",
            "shell",
            "bus_path"
        )
    )]
    async fn get_home_by_uid(
        &self,
        uid: u32,
    ) -> Result<(String, String, u32, String, String, String, OwnedObjectPath), BusError> {
        let home = self
            .engine
            .lookup_uid(uid)
            .ok_or_else(|| BusError::NoSuchHome(format!("No home for UID {uid} known")))?;
        let s = self.engine.summary(&home);
        Ok((
            s.name,
            s.state.to_string(),
            s.gid,
            s.real_name,
            s.home_directory,
            s.shell,
            home_path_by_uid(uid),
        ))
    }

    #[zbus(out_args("user_record", "incomplete", "bus_path"))]
    async fn get_user_record_by_name(
        &self,
        user_name: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(String, bool, OwnedObjectPath), BusError> {
        let who = caller(conn, &header).await?;
        let home = self.engine.find(&user_name, who)?;
        let (record, incomplete) = self.engine.served_record(&home, who);
        Ok((
            record.to_compact_string(),
            incomplete,
            home_path(&home.name),
        ))
    }

    #[zbus(
        name = "GetUserRecordByUID",
        out_args("user_record", "incomplete", "bus_path")
    )]
    async fn get_user_record_by_uid(
        &self,
        uid: u32,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(String, bool, OwnedObjectPath), BusError> {
        let who = caller(conn, &header).await?;
        let home = self
            .engine
            .lookup_uid(uid)
            .ok_or_else(|| BusError::NoSuchHome(format!("No home for UID {uid} known")))?;
        let (record, incomplete) = self.engine.served_record(&home, who);
        Ok((
            record.to_compact_string(),
            incomplete,
            home_path_by_uid(uid),
        ))
    }

    #[zbus(out_args("home_areas"))]
    async fn list_homes(&self) -> Vec<ListEntry> {
        self.engine
            .list()
            .into_iter()
            .map(|s| {
                let path = home_path(&s.name);
                (
                    s.name,
                    s.uid,
                    s.state.to_string(),
                    s.gid,
                    s.real_name,
                    s.home_directory,
                    s.shell,
                    path,
                )
            })
            .collect()
    }

    async fn activate_home(
        &self,
        user_name: String,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let secret = self::secret(secret)?;
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.activate(who, &user_name, &secret).await
        })
        .await
    }

    async fn deactivate_home(
        &self,
        user_name: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.deactivate(who, &user_name).await
        })
        .await
    }

    async fn register_home(
        &self,
        user_record: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let result = as_caller(&self.engine, conn, &header, |e, who| async move {
            e.register(who, &user_record).await
        })
        .await;
        self.objects.sync().await;
        result.map(|_| ())
    }

    async fn unregister_home(
        &self,
        user_name: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let result = as_caller(&self.engine, conn, &header, |e, who| async move {
            e.unregister(who, &user_name).await
        })
        .await;
        self.objects.sync().await;
        result
    }

    async fn create_home(
        &self,
        user_record: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let result = as_caller(&self.engine, conn, &header, |e, who| async move {
            let mut user_record = user_record;
            let result = e.create(who, &user_record).await;
            // The record may carry passwords in its secret section.
            zeroize::Zeroize::zeroize(&mut user_record);
            result
        })
        .await;
        self.objects.sync().await;
        result.map(|_| ())
    }

    async fn realize_home(
        &self,
        user_name: String,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let secret = self::secret(secret)?;
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.realize(who, &user_name, &secret).await
        })
        .await
    }

    async fn remove_home(
        &self,
        user_name: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let result = as_caller(&self.engine, conn, &header, |e, who| async move {
            e.remove(who, &user_name).await
        })
        .await;
        self.objects.sync().await;
        result
    }

    async fn fixate_home(
        &self,
        user_name: String,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let secret = self::secret(secret)?;
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.fixate(who, &user_name, &secret).await
        })
        .await
    }

    async fn authenticate_home(
        &self,
        user_name: String,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let secret = self::secret(secret)?;
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.authenticate(who, &user_name, &secret).await
        })
        .await
    }

    async fn update_home(
        &self,
        user_record: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        as_caller(&self.engine, conn, &header, |e, who| async move {
            let mut user_record = user_record;
            let result = e.update(who, &user_record).await;
            // The record may carry passwords in its secret section.
            zeroize::Zeroize::zeroize(&mut user_record);
            result
        })
        .await
    }

    async fn resize_home(
        &self,
        user_name: String,
        size: u64,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let secret = self::secret(secret)?;
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.resize(who, &user_name, size, &secret).await
        })
        .await
    }

    async fn change_password_home(
        &self,
        user_name: String,
        new_secret: String,
        old_secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let new_secret = self::secret(new_secret)?;
        let old_secret = self::secret(old_secret)?;
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.change_password(who, &user_name, &new_secret, &old_secret)
                .await
        })
        .await
    }

    async fn lock_home(
        &self,
        user_name: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.lock_home(who, &user_name).await
        })
        .await
    }

    async fn unlock_home(
        &self,
        user_name: String,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let secret = self::secret(secret)?;
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.unlock_home(who, &user_name, &secret).await
        })
        .await
    }

    #[zbus(out_args("send_fd"))]
    async fn acquire_home(
        &self,
        user_name: String,
        secret: String,
        please_suspend: bool,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<zbus::OwnedFd, BusError> {
        let secret = self::secret(secret)?;
        let fd = as_caller(&self.engine, conn, &header, |e, who| async move {
            e.acquire(who, &user_name, &secret, please_suspend).await
        })
        .await?;
        Ok(zbus::OwnedFd::from(fd))
    }

    #[zbus(out_args("send_fd"))]
    async fn ref_home(
        &self,
        user_name: String,
        please_suspend: bool,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<zbus::OwnedFd, BusError> {
        let fd = as_caller(&self.engine, conn, &header, |e, who| async move {
            e.ref_home(who, &user_name, please_suspend).await
        })
        .await?;
        Ok(zbus::OwnedFd::from(fd))
    }

    async fn release_home(
        &self,
        user_name: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.release(who, &user_name).await
        })
        .await
    }

    async fn lock_all_homes(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.lock_all(who).await
        })
        .await
    }

    async fn deactivate_all_homes(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.deactivate_all(who).await
        })
        .await
    }

    async fn rebalance(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        as_caller(&self.engine, conn, &header, |e, who| async move {
            e.rebalance(who).await
        })
        .await
    }
}
