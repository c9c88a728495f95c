//! `io.systemd.UserDatabase` at /run/systemd/userdb/io.systemd.Home (homed-spec §6.3).

use std::sync::Arc;

use crate::engine::Engine;

pub fn serve(_engine: Arc<Engine>) -> std::io::Result<()> {
    Ok(())
}
