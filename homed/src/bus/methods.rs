//! One async fn per home1 method, shared by the Manager (whose methods name the home) and the
//! Home objects (which are the home): each parses its arguments once, asks the bus who calls,
//! and runs the engine's operation on the engine's runtime. The interfaces in `manager.rs` and
//! `home.rs` only bind the names.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use homed_shared::record::Secret;
use zbus::Connection;
use zbus::message::Header;

use super::{BusError, as_caller};
use crate::engine::{Engine, Via};

/// One call being handled: the engine, and where the call came from.
pub struct Call<'a> {
    pub engine: &'a Arc<Engine>,
    pub conn: &'a Connection,
    pub header: &'a Header<'a>,
}

/// Parses a secret argument and wipes the text it came in.
fn secret(mut text: String) -> Result<Secret, BusError> {
    let parsed = Engine::parse_secret(&text).map_err(BusError::from);
    zeroize::Zeroize::zeroize(&mut text);
    parsed
}

pub async fn activate(call: &Call<'_>, name: String, secret: String) -> Result<(), BusError> {
    let secret = self::secret(secret)?;
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.activate(who, &name, &secret).await
    })
    .await
}

pub async fn deactivate(call: &Call<'_>, name: String) -> Result<(), BusError> {
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.deactivate(who, &name).await
    })
    .await
}

pub async fn register(call: &Call<'_>, record: String) -> Result<(), BusError> {
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.register(who, &record).await.map(|_| ())
    })
    .await
}

pub async fn unregister(call: &Call<'_>, name: String) -> Result<(), BusError> {
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.unregister(who, &name).await
    })
    .await
}

pub async fn create(call: &Call<'_>, record: String) -> Result<(), BusError> {
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        let mut record = record;
        let result = e.create(who, &record).await.map(|_| ());
        // The record may carry passwords in its secret section.
        zeroize::Zeroize::zeroize(&mut record);
        result
    })
    .await
}

pub async fn realize(call: &Call<'_>, name: String, secret: String) -> Result<(), BusError> {
    let secret = self::secret(secret)?;
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.realize(who, &name, &secret).await
    })
    .await
}

pub async fn remove(call: &Call<'_>, name: String) -> Result<(), BusError> {
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.remove(who, &name).await
    })
    .await
}

pub async fn fixate(call: &Call<'_>, name: String, secret: String) -> Result<(), BusError> {
    let secret = self::secret(secret)?;
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.fixate(who, &name, &secret).await
    })
    .await
}

pub async fn authenticate(call: &Call<'_>, name: String, secret: String) -> Result<(), BusError> {
    let secret = self::secret(secret)?;
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.authenticate(who, &name, &secret).await
    })
    .await
}

/// UpdateHome; a Home object's Update names the home it was called on (`for_home`).
pub async fn update(
    call: &Call<'_>,
    record: String,
    for_home: Option<String>,
) -> Result<(), BusError> {
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        let mut record = record;
        let result = e.update(who, &record, for_home.as_deref()).await;
        // The record may carry passwords in its secret section.
        zeroize::Zeroize::zeroize(&mut record);
        result
    })
    .await
}

pub async fn resize(
    call: &Call<'_>,
    name: String,
    size: u64,
    secret: String,
) -> Result<(), BusError> {
    let secret = self::secret(secret)?;
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.resize(who, &name, size, &secret).await
    })
    .await
}

pub async fn change_password(
    call: &Call<'_>,
    name: String,
    new_secret: String,
    old_secret: String,
) -> Result<(), BusError> {
    let new_secret = self::secret(new_secret)?;
    let old_secret = self::secret(old_secret)?;
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.change_password(who, &name, &new_secret, &old_secret)
            .await
    })
    .await
}

pub async fn lock(call: &Call<'_>, name: String) -> Result<(), BusError> {
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.lock_home(who, &name).await
    })
    .await
}

pub async fn unlock(call: &Call<'_>, name: String, secret: String) -> Result<(), BusError> {
    let secret = self::secret(secret)?;
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.unlock_home(who, &name, &secret).await
    })
    .await
}

pub async fn acquire(
    call: &Call<'_>,
    name: String,
    secret: String,
    please_suspend: bool,
    via: Via,
) -> Result<zbus::OwnedFd, BusError> {
    let secret = self::secret(secret)?;
    let fd: OwnedFd = as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.acquire(who, &name, &secret, please_suspend, via).await
    })
    .await?;
    Ok(zbus::OwnedFd::from(fd))
}

pub async fn reference(
    call: &Call<'_>,
    name: String,
    please_suspend: bool,
) -> Result<zbus::OwnedFd, BusError> {
    let fd: OwnedFd = as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.ref_home(who, &name, please_suspend).await
    })
    .await?;
    Ok(zbus::OwnedFd::from(fd))
}

pub async fn release(call: &Call<'_>, name: String) -> Result<(), BusError> {
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.release(who, &name).await
    })
    .await
}

pub async fn lock_all(call: &Call<'_>) -> Result<(), BusError> {
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.lock_all(who).await
    })
    .await
}

pub async fn deactivate_all(call: &Call<'_>) -> Result<(), BusError> {
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.deactivate_all(who).await
    })
    .await
}

pub async fn rebalance(call: &Call<'_>) -> Result<(), BusError> {
    as_caller(call.engine, call.conn, call.header, |e, who| async move {
        e.rebalance(who).await
    })
    .await
}
