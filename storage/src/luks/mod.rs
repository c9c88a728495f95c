//! LUKS2 homes, laid out exactly as systemd-homed lays them out (homed-spec §3.2): an image file
//! holding a GPT with one partition of type [`HOME_PARTITION_TYPE`] named after the user, a LUKS2
//! container inside it (label = user name, subsystem `systemd-home`, 4 MiB of metadata), and a
//! `systemd-homed` token holding the embedded user record encrypted with the volume key.
//!
//! Header work (format, keyslots, token, volume key) needs only a loop device; activation,
//! suspend and resume need device-mapper. libcryptsetup keeps global state and is not
//! thread-safe, so callers run this code in a worker process per operation, as homed does.

mod container;
mod error;
mod filesystem;
mod gpt;
pub mod home;
mod image;
mod loopdev;
pub mod private_mounts;
mod settings;
pub(crate) mod sys;
pub mod token;

pub use container::{LuksContainer, VolumeKey};
pub use error::LuksError;
pub use filesystem::FsType;
pub use gpt::{
    HOME_PARTITION_TYPE, HomePartition, read_home_partition, write_home_partition_table,
};
pub use image::{ImageLayout, Inspection, LuksImage, PasswordChangeStep};
pub use loopdev::LoopDevice;
pub use settings::{LuksSettings, Pbkdf};
pub use token::TokenCipher;

/// The LUKS2 subsystem label homed writes.
pub const SUBSYSTEM: &str = "systemd-home";
/// The LUKS2 metadata area size homed asks for (the largest libcryptsetup allows).
pub const METADATA_SIZE: u64 = 4 * 1024 * 1024;
/// Partitions start and end on this boundary.
pub const ALIGNMENT: u64 = 1024 * 1024;

/// The device-mapper name homed gives an activated home: `home-<userName>` (no realm).
pub fn dm_name(user_name: &str) -> String {
    format!("home-{user_name}")
}
