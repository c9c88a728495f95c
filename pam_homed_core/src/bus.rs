//! The D-Bus client: `org.freedesktop.home1.Manager` on the system bus, through zbus 6.
//!
//! zbus's own runtime runs a connection's work on the thread inside `zbus::block_on`, and only
//! hands it to a helper thread if the connection outlives that call. The hooks therefore create
//! a `SystemBus` inside their one `block_on`, and it (with its connection) is dropped before
//! `block_on` returns: no thread outlives a PAM call. The connection is made lazily, so a hook
//! answered from the caches never touches the bus.
//!
//! The bus address comes from `DBUS_SYSTEM_BUS_ADDRESS` read with `secure_getenv`, as sd-bus
//! does: in su or another setuid program a user must not point the module at a bus of their own
//! (a fake "homed" there would accept any password).

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use homed_shared::env::secure_var;
use zbus::Connection;

use crate::home::{HomeError, HomeService};

use homed_shared::proto::{
    BUS_NAME as DESTINATION, MANAGER_INTERFACE as INTERFACE, MANAGER_PATH as PATH,
};
const DEFAULT_SYSTEM_BUS: &str = "unix:path=/run/dbus/system_bus_socket";
/// homed's own clients wait this long for slow operations (activation, fsck).
const SLOW_CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// The record lookup runs for every user who logs in, homed's or not: a daemon that hangs may
/// cost each login this long at most (sd-bus's default, which pam_systemd_home uses for it).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(25);

/// Lazily opened connections to the system bus, one per call timeout. Create and drop it
/// inside one `block_on`.
#[derive(Default)]
pub struct SystemBus {
    connection: RefCell<Option<Connection>>,
    lookup_connection: RefCell<Option<Connection>>,
}

fn unix_path(address: &str) -> Option<&str> {
    let rest = address.strip_prefix("unix:")?;
    rest.split(',').find_map(|kv| kv.strip_prefix("path="))
}

fn from_zbus(e: zbus::Error) -> HomeError {
    match e {
        zbus::Error::MethodError(name, detail, _) => HomeError::Named {
            name: name.as_str().to_owned(),
            message: detail.unwrap_or_default(),
        },
        zbus::Error::InputOutput(io) => HomeError::NoBus(io.to_string()),
        other => HomeError::Other(other.to_string()),
    }
}

impl SystemBus {
    pub fn new() -> SystemBus {
        SystemBus::default()
    }

    async fn connection(&self) -> Result<Connection, HomeError> {
        Self::open(&self.connection, SLOW_CALL_TIMEOUT).await
    }

    async fn lookup_connection(&self) -> Result<Connection, HomeError> {
        Self::open(&self.lookup_connection, LOOKUP_TIMEOUT).await
    }

    async fn open(
        slot: &RefCell<Option<Connection>>,
        timeout: Duration,
    ) -> Result<Connection, HomeError> {
        if let Some(c) = slot.borrow().as_ref() {
            return Ok(c.clone());
        }
        let address = secure_var("DBUS_SYSTEM_BUS_ADDRESS")
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| DEFAULT_SYSTEM_BUS.to_owned());
        // The usual case, a Unix socket path, is connected right here on the calling thread.
        let builder = match unix_path(&address) {
            Some(path) => {
                let stream = UnixStream::connect(path)
                    .map_err(|e| HomeError::NoBus(format!("{path}: {e}")))?;
                zbus::connection::Builder::unix_stream(stream)
            }
            None => zbus::connection::Builder::address(address.as_str()),
        };
        let connection = builder
            .method_timeout(timeout)
            .build()
            .await
            .map_err(|e| match e {
                zbus::Error::InputOutput(io) => HomeError::NoBus(io.to_string()),
                other => HomeError::NoBus(other.to_string()),
            })?;
        *slot.borrow_mut() = Some(connection.clone());
        Ok(connection)
    }

    async fn call<B>(&self, method: &str, body: &B) -> Result<zbus::Message, HomeError>
    where
        B: serde::ser::Serialize + zbus::wire::DynamicType,
    {
        let connection = self.connection().await?;
        connection
            .call_method(Some(DESTINATION), PATH, Some(INTERFACE), method, body)
            .await
            .map_err(from_zbus)
    }

    fn take_fd(reply: &zbus::Message) -> Result<OwnedFd, HomeError> {
        let fd: zbus::OwnedFd = reply.body().deserialize().map_err(from_zbus)?;
        Ok(OwnedFd::from(fd))
    }
}

impl HomeService for SystemBus {
    async fn user_record(&self, user: &str) -> Result<String, HomeError> {
        let reply = self
            .lookup_connection()
            .await?
            .call_method(
                Some(DESTINATION),
                PATH,
                Some(INTERFACE),
                "GetUserRecordByName",
                &(user,),
            )
            .await
            .map_err(from_zbus)?;
        let (json, _incomplete, _path): (String, bool, zbus::wire::OwnedObjectPath) =
            reply.body().deserialize().map_err(from_zbus)?;
        Ok(json)
    }

    async fn acquire(&self, user: &str, secret: &str, suspend: bool) -> Result<OwnedFd, HomeError> {
        let reply = self.call("AcquireHome", &(user, secret, suspend)).await?;
        SystemBus::take_fd(&reply)
    }

    async fn reference(&self, user: &str, suspend: bool) -> Result<OwnedFd, HomeError> {
        let reply = self.call("RefHome", &(user, suspend)).await?;
        SystemBus::take_fd(&reply)
    }

    async fn release(&self, user: &str) -> Result<(), HomeError> {
        self.call("ReleaseHome", &(user,)).await.map(drop)
    }

    async fn change_password(
        &self,
        user: &str,
        new_secret: &str,
        old_secret: &str,
    ) -> Result<(), HomeError> {
        self.call("ChangePasswordHome", &(user, new_secret, old_secret))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_paths_of_bus_addresses() {
        assert_eq!(
            unix_path("unix:path=/run/dbus/system_bus_socket"),
            Some("/run/dbus/system_bus_socket")
        );
        assert_eq!(unix_path("unix:guid=abc,path=/x"), Some("/x"));
        assert_eq!(unix_path("unix:abstract=/tmp/x"), None);
        assert_eq!(unix_path("tcp:host=localhost,port=1"), None);
    }
}
