//! The client side of `org.freedesktop.home1` (homed-spec §4): one system-bus connection and
//! one method per Manager call homectl makes.

use std::time::Duration;

use zbus::{DBusError as _, OwnedFd, OwnedObjectPath};

use homed_shared::proto::{BUS_NAME as DESTINATION, MANAGER_INTERFACE, MANAGER_PATH};
/// homed's own tools wait this long for slow operations (HOME_SLOW_BUS_CALL_TIMEOUT_USEC).
const SLOW_CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A failed call: the D-Bus error name and its message.
#[derive(Debug, Clone)]
pub struct BusError {
    pub name: String,
    pub message: String,
}

impl BusError {
    /// True if the error is `org.freedesktop.home1.<short>`.
    pub fn is(&self, short: &str) -> bool {
        homed_shared::proto::errors::home1_short(&self.name).is_some_and(|n| n == short)
    }

    fn from_zbus(e: zbus::Error) -> BusError {
        match e {
            zbus::Error::MethodError(name, detail, _) => BusError {
                name: name.to_string(),
                message: detail.unwrap_or_else(|| name.to_string()),
            },
            zbus::Error::FDO(fdo) => BusError {
                name: fdo.name().to_string(),
                message: fdo.description().unwrap_or_default().to_owned(),
            },
            zbus::Error::InputOutput(io) if io.kind() == std::io::ErrorKind::TimedOut => BusError {
                name: "org.freedesktop.DBus.Error.Timeout".into(),
                message: "Connection timed out".into(),
            },
            other => BusError {
                name: "org.freedesktop.DBus.Error.Failed".into(),
                message: other.to_string(),
            },
        }
    }
}

impl std::fmt::Display for BusError {
    /// The error's message, except that access denials always read "Access denied" (the
    /// daemon's wording is too verbose there), as systemd's tools print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name == "org.freedesktop.DBus.Error.AccessDenied" {
            return f.write_str("Access denied");
        }
        f.write_str(&self.message)
    }
}

/// The C library's text for the system error behind `e`, if there is one ("No such file or
/// directory"), as systemd's tools print it.
fn os_error_text(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(n) = io.raw_os_error()
        {
            return Some(nix::errno::Errno::from_raw(n).desc().to_owned());
        }
        if let Some(zbus::Error::InputOutput(io) | zbus::Error::Connection(io, _)) =
            err.downcast_ref::<zbus::Error>()
            && let Some(n) = io.raw_os_error()
        {
            return Some(nix::errno::Errno::from_raw(n).desc().to_owned());
        }
        current = err.source();
    }
    None
}

/// One entry of `ListHomes`.
pub struct HomeEntry {
    pub name: String,
    pub uid: u32,
    pub state: String,
    pub gid: u32,
    pub real_name: String,
    pub home: String,
    pub shell: String,
}

/// A connection to the Manager object.
pub struct Manager {
    proxy: zbus::Proxy<'static>,
    flags: zbus::proxy::MethodFlags,
}

/// Fails a call that has not been answered by `deadline` (zbus applies its method timeout
/// only to calls without flags). A helper thread sleeps until then and wakes the task.
struct Deadline<F> {
    call: std::pin::Pin<Box<F>>,
    deadline: std::time::Instant,
    expired: std::sync::Arc<std::sync::atomic::AtomicBool>,
    timer: bool,
}

impl<F: std::future::Future> std::future::Future for Deadline<F> {
    type Output = Option<F::Output>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::sync::atomic::Ordering;
        if let std::task::Poll::Ready(v) = self.call.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(v));
        }
        if self.expired.load(Ordering::SeqCst) {
            return std::task::Poll::Ready(None);
        }
        if !self.timer {
            self.timer = true;
            let (expired, waker, deadline) =
                (self.expired.clone(), cx.waker().clone(), self.deadline);
            std::thread::spawn(move || {
                #[expect(
                    clippy::disallowed_methods,
                    reason = "a timer thread: it sleeps until the call's deadline"
                )]
                std::thread::sleep(deadline.saturating_duration_since(std::time::Instant::now()));
                expired.store(true, Ordering::SeqCst);
                waker.wake();
            });
        }
        std::task::Poll::Pending
    }
}

type HomeTuple = (
    String,
    u32,
    String,
    u32,
    String,
    String,
    String,
    OwnedObjectPath,
);

impl Manager {
    /// Connects to the system bus (`$DBUS_SYSTEM_BUS_ADDRESS` or the default socket). With
    /// `interactive`, the daemon may have polkit ask the user (as without --no-ask-password).
    pub fn connect(interactive: bool) -> Result<Manager, String> {
        let proxy = zbus::block_on(async {
            let conn = zbus::connection::Builder::system().build().await?;
            zbus::proxy::Builder::<zbus::Proxy<'static>>::new(&conn)
                .destination(DESTINATION)
                .path(MANAGER_PATH)
                .interface(MANAGER_INTERFACE)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await
        })
        .map_err(|e| {
            let why = os_error_text(&e).unwrap_or_else(|| e.to_string());
            format!("Failed to connect to bus: {why}")
        })?;
        let flags = if interactive {
            zbus::proxy::MethodFlags::ALLOW_INTERACTIVE_AUTH
        } else {
            zbus::proxy::MethodFlags::empty()
        };
        Ok(Manager { proxy, flags })
    }

    fn call<B, R>(&self, method: &str, body: &B) -> Result<R, BusError>
    where
        B: serde::Serialize + zbus::DynamicType,
        R: for<'d> zbus::wire::DynamicDeserialize<'d>,
    {
        let call = Deadline {
            call: Box::pin(
                self.proxy
                    .call_with_flags::<_, B, R>(method, self.flags, body),
            ),
            deadline: std::time::Instant::now() + SLOW_CALL_TIMEOUT,
            expired: Default::default(),
            timer: false,
        };
        match zbus::block_on(call) {
            None => Err(BusError {
                name: "org.freedesktop.DBus.Error.Timeout".into(),
                message: "Connection timed out".into(),
            }),
            Some(Ok(Some(reply))) => Ok(reply),
            Some(Ok(None)) => Err(BusError {
                name: "org.freedesktop.DBus.Error.NoReply".into(),
                message: "No reply".into(),
            }),
            Some(Err(e)) => Err(BusError::from_zbus(e)),
        }
    }

    fn call_unit<B>(&self, method: &str, body: &B) -> Result<(), BusError>
    where
        B: serde::Serialize + zbus::DynamicType,
    {
        self.call::<B, ()>(method, body)
    }

    pub fn list_homes(&self) -> Result<Vec<HomeEntry>, BusError> {
        let homes: Vec<HomeTuple> = self.call("ListHomes", &())?;
        Ok(homes
            .into_iter()
            .map(
                |(name, uid, state, gid, real_name, home, shell, _)| HomeEntry {
                    name,
                    uid,
                    state,
                    gid,
                    real_name,
                    home,
                    shell,
                },
            )
            .collect())
    }

    /// `GetUserRecordByName` or, for a number, `GetUserRecordByUID`: the JSON and `incomplete`.
    pub fn user_record(&self, user: &str) -> Result<(String, bool), BusError> {
        let (json, incomplete, _path): (String, bool, OwnedObjectPath) = match user.parse::<u32>() {
            Ok(uid) => self.call("GetUserRecordByUID", &(uid,))?,
            Err(_) => self.call("GetUserRecordByName", &(user,))?,
        };
        Ok((json, incomplete))
    }

    /// `GetHomeByName`: the home directory.
    pub fn home_directory(&self, user: &str) -> Result<String, BusError> {
        let (_, _, _, _, home, _, _): (u32, String, u32, String, String, String, OwnedObjectPath) =
            self.call("GetHomeByName", &(user,))?;
        Ok(home)
    }

    pub fn activate(&self, user: &str, secret: &str) -> Result<(), BusError> {
        self.call_unit("ActivateHome", &(user, secret))
    }

    pub fn deactivate(&self, user: &str) -> Result<(), BusError> {
        self.call_unit("DeactivateHome", &(user,))
    }

    pub fn authenticate(&self, user: &str, secret: &str) -> Result<(), BusError> {
        self.call_unit("AuthenticateHome", &(user, secret))
    }

    pub fn create(&self, record: &str) -> Result<(), BusError> {
        self.call_unit("CreateHome", &(record,))
    }

    pub fn update(&self, record: &str) -> Result<(), BusError> {
        self.call_unit("UpdateHome", &(record,))
    }

    pub fn remove(&self, user: &str) -> Result<(), BusError> {
        self.call_unit("RemoveHome", &(user,))
    }

    pub fn resize(&self, user: &str, size: u64, secret: &str) -> Result<(), BusError> {
        self.call_unit("ResizeHome", &(user, size, secret))
    }

    pub fn change_password(&self, user: &str, new: &str, old: &str) -> Result<(), BusError> {
        self.call_unit("ChangePasswordHome", &(user, new, old))
    }

    pub fn lock(&self, user: &str) -> Result<(), BusError> {
        self.call_unit("LockHome", &(user,))
    }

    pub fn unlock(&self, user: &str, secret: &str) -> Result<(), BusError> {
        self.call_unit("UnlockHome", &(user, secret))
    }

    pub fn acquire(
        &self,
        user: &str,
        secret: &str,
        please_suspend: bool,
    ) -> Result<OwnedFd, BusError> {
        let (fd,): (OwnedFd,) = self.call("AcquireHome", &(user, secret, please_suspend))?;
        Ok(fd)
    }

    pub fn release(&self, user: &str) -> Result<(), BusError> {
        self.call_unit("ReleaseHome", &(user,))
    }

    pub fn lock_all(&self) -> Result<(), BusError> {
        self.call_unit("LockAllHomes", &())
    }

    pub fn deactivate_all(&self) -> Result<(), BusError> {
        self.call_unit("DeactivateAllHomes", &())
    }

    pub fn rebalance(&self) -> Result<(), BusError> {
        self.call_unit("Rebalance", &())
    }
}
