//! The records the daemon publishes for the NSS module (DESIGN.md contract 5).
//!
//! A record's own signature does not cover `binding`, where a registered home's UID, GID and home
//! directory live. So the daemon publishes, in a root-owned world-readable directory
//! ([`PUBLISH_DIR`]), each home's *resolved* record and signs it as a whole with the machine key:
//!
//! | file | mode | content |
//! |---|---|---|
//! | `machine.public` | 0644 | the machine key's public half (PEM) |
//! | `NAME.user` | 0644 | the resolved public record: perMachine and binding folded into the top level (so `uid`, `gid` and `homeDirectory` are signed), `service` set, no `privileged`, `binding`, `status` or `perMachine` |
//! | `NAME.privileged` | 0600 | the same with the privileged section (for shadow; root only) |
//! | `index` | 0644 | `{"users":[{"userName","uid","gid","memberOf"}…]}`, a hint for lookups by UID and by group |
//! | `.lock` | 0600 | serializes writers |
//!
//! Record files are one line of canonical compact JSON (sorted keys, as the signature's text) and
//! a newline; the signature array holds one entry with only `data`, the Ed25519 signature of the
//! record's canonical text. A reader refuses a file that is not in exactly that form, so a change
//! of any byte is refused. Files are replaced by writing a temporary file and renaming it.
//! A reader serves a record only if the directory and the file are root-owned and not group- or
//! world-writable and the signature verifies with `machine.public`; index entries are checked
//! against the records they point to.
//!
//! Readers cache verified records per process, keyed by each file's identity (device, inode,
//! size, mtime, ctime), and look at the key file again only when the directory's identity
//! changes, which every rename in it does. So files must be replaced by renaming, as [`publish`] does: a file
//! rewritten in place within one clock tick may go unnoticed by a process that cached it.

mod format;
mod reader;
mod writer;

pub use format::{PublishError, public_part, resolve, signed_text, verify_text};
pub use reader::{Published, PublishedUser, ShadowDenied};
pub use writer::{publish, publish_all, publish_resolved, unpublish};

/// Where the daemon publishes.
pub const PUBLISH_DIR: &str = "/run/homed/nss";
pub const PUBLIC_KEY_FILE: &str = "machine.public";
pub const INDEX_FILE: &str = "index";
pub const USER_SUFFIX: &str = ".user";
pub const PRIVILEGED_SUFFIX: &str = ".privileged";
const LOCK_FILE: &str = ".lock";

#[cfg(test)]
mod tests;
