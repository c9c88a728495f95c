//! Which machine a record is being read on: `perMachine`, `binding` and `status` depend on it.

use std::fs;
use std::path::Path;

/// The identity of the local machine as user records see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineContext {
    /// 32 lowercase hex characters, as in `/etc/machine-id`.
    pub machine_id: String,
    /// The host name, if one is set.
    pub hostname: Option<String>,
}

impl MachineContext {
    pub fn new(machine_id: impl Into<String>, hostname: Option<String>) -> Self {
        MachineContext {
            machine_id: machine_id.into().trim().to_ascii_lowercase(),
            hostname,
        }
    }

    /// Reads `/etc/machine-id` and the kernel host name.
    pub fn local() -> std::io::Result<Self> {
        Self::from_machine_id_file(Path::new("/etc/machine-id"))
    }

    pub fn from_machine_id_file(path: &Path) -> std::io::Result<Self> {
        let id = fs::read_to_string(path)?;
        let id = id.trim();
        if !is_machine_id(id) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} does not hold a machine id", path.display()),
            ));
        }
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty());
        Ok(MachineContext::new(id, hostname))
    }
}

/// True for 32 hex characters (the form `SD_ID128_TO_STRING` prints).
pub fn is_machine_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
