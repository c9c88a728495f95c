//! Varlink: the wire format (NUL-terminated JSON messages over `AF_UNIX` stream sockets), a
//! blocking client that starts no thread, and the `io.systemd.UserDatabase` calls.
//!
//! Every call is bounded by [`DEFAULT_TIMEOUT`] (one second, connect included), so a service that
//! accepts and never answers cannot hang the process that asked.

mod client;
mod frame;
mod userdb;

pub use client::{Client, DEFAULT_TIMEOUT, Reply, VarlinkError};
pub use frame::{FrameDecoder, FrameError, MAX_FRAME_BYTES, encode_frame};
pub use userdb::{GroupReply, HOME_SOCKET, Membership, UserDatabase, UserReply};

#[cfg(test)]
mod tests;
