//! `org.freedesktop.home1.Manager` at /org/freedesktop/home1, v252's method set.

use std::sync::Arc;

use zbus::Connection;
use zbus::OwnedObjectPath;
use zbus::message::Header;

use super::methods::{self, Call};
use super::{BusError, Objects, caller, home_path, home_path_by_uid};
use crate::engine::{Caller, Engine, EngineError, Via};

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

impl Manager {
    fn call<'a>(&'a self, conn: &'a Connection, header: &'a Header<'a>) -> Call<'a> {
        Call {
            engine: &self.engine,
            conn,
            header,
        }
    }
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
        let home = self.engine.lookup_uid(uid).ok_or_else(|| {
            BusError::from(EngineError::NoSuchHome(format!(
                "No home for UID {uid} known"
            )))
        })?;
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
        let home = self.engine.lookup_uid(uid).ok_or_else(|| {
            BusError::from(EngineError::NoSuchHome(format!(
                "No home for UID {uid} known"
            )))
        })?;
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
        methods::activate(&self.call(conn, &header), user_name, secret).await
    }

    async fn deactivate_home(
        &self,
        user_name: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::deactivate(&self.call(conn, &header), user_name).await
    }

    async fn register_home(
        &self,
        user_record: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let result = methods::register(&self.call(conn, &header), user_record).await;
        self.objects.sync().await;
        result
    }

    async fn unregister_home(
        &self,
        user_name: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let result = methods::unregister(&self.call(conn, &header), user_name).await;
        self.objects.sync().await;
        result
    }

    async fn create_home(
        &self,
        user_record: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let result = methods::create(&self.call(conn, &header), user_record).await;
        self.objects.sync().await;
        result
    }

    async fn realize_home(
        &self,
        user_name: String,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::realize(&self.call(conn, &header), user_name, secret).await
    }

    async fn remove_home(
        &self,
        user_name: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        let result = methods::remove(&self.call(conn, &header), user_name).await;
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
        methods::fixate(&self.call(conn, &header), user_name, secret).await
    }

    async fn authenticate_home(
        &self,
        user_name: String,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::authenticate(&self.call(conn, &header), user_name, secret).await
    }

    async fn update_home(
        &self,
        user_record: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::update(&self.call(conn, &header), user_record, None).await
    }

    async fn resize_home(
        &self,
        user_name: String,
        size: u64,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::resize(&self.call(conn, &header), user_name, size, secret).await
    }

    async fn change_password_home(
        &self,
        user_name: String,
        new_secret: String,
        old_secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::change_password(&self.call(conn, &header), user_name, new_secret, old_secret).await
    }

    async fn lock_home(
        &self,
        user_name: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::lock(&self.call(conn, &header), user_name).await
    }

    async fn unlock_home(
        &self,
        user_name: String,
        secret: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::unlock(&self.call(conn, &header), user_name, secret).await
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
        methods::acquire(
            &self.call(conn, &header),
            user_name,
            secret,
            please_suspend,
            Via::Manager,
        )
        .await
    }

    #[zbus(out_args("send_fd"))]
    async fn ref_home(
        &self,
        user_name: String,
        please_suspend: bool,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<zbus::OwnedFd, BusError> {
        methods::reference(&self.call(conn, &header), user_name, please_suspend).await
    }

    async fn release_home(
        &self,
        user_name: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::release(&self.call(conn, &header), user_name).await
    }

    async fn lock_all_homes(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::lock_all(&self.call(conn, &header)).await
    }

    async fn deactivate_all_homes(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::deactivate_all(&self.call(conn, &header)).await
    }

    async fn rebalance(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        methods::rebalance(&self.call(conn, &header)).await
    }
}
