//! A blocking varlink client for code that may not start threads or runtimes (the NSS and PAM
//! modules): one connection, one call at a time, every wait bounded by a deadline.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
use serde_json::{Map, Value};

use super::frame::{FrameDecoder, FrameError, encode_frame};

/// How long one call may take in all, connecting included: one second. A peer that accepts
/// and never answers costs a lookup at most this much.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a call did not produce a reply.
#[derive(Debug, thiserror::Error)]
pub enum VarlinkError {
    /// Nobody listens on the socket, or it does not exist.
    #[error("cannot connect to {path}: {errno}")]
    Connect { path: String, errno: Errno },
    /// The deadline passed before the reply was complete.
    #[error("the service did not answer in time")]
    Timeout,
    /// The connection failed or was closed early.
    #[error("the connection to the service broke: {0}")]
    Io(Errno),
    #[error("the service closed the connection before replying")]
    Closed,
    /// The peer sent something that is not varlink.
    #[error("the service sent an invalid message: {0}")]
    Protocol(String),
    /// The service answered with an error.
    #[error("the service answered {name}")]
    Remote {
        name: String,
        parameters: Map<String, Value>,
    },
}

impl From<FrameError> for VarlinkError {
    fn from(e: FrameError) -> Self {
        VarlinkError::Protocol(e.to_string())
    }
}

/// One reply of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub parameters: Map<String, Value>,
    /// More replies follow (only for calls made with `more`).
    pub continues: bool,
}

/// A connection to one varlink service.
pub struct Client {
    fd: OwnedFd,
    decoder: FrameDecoder,
    timeout: Duration,
}

fn wait(fd: &OwnedFd, events: libc::c_short, deadline: Instant) -> Result<(), VarlinkError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(VarlinkError::Timeout);
        }
        // Round up so that a wait never spins on a zero timeout.
        let ms = i32::try_from(left.as_millis().saturating_add(1)).unwrap_or(i32::MAX);
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd that lives across the call; nfds is 1.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n > 0 {
            return Ok(());
        }
        if n < 0 {
            let errno = Errno::last();
            if errno != Errno::EINTR {
                return Err(VarlinkError::Io(errno));
            }
        }
    }
}

impl Client {
    /// Connects to the socket at `path` with [`DEFAULT_TIMEOUT`] for each call.
    pub fn connect(path: &Path) -> Result<Client, VarlinkError> {
        Self::connect_with_timeout(path, DEFAULT_TIMEOUT)
    }

    /// Connects to the socket at `path`; `timeout` bounds the connect and then each call.
    pub fn connect_with_timeout(path: &Path, timeout: Duration) -> Result<Client, VarlinkError> {
        let deadline = Instant::now() + timeout;
        let describe = |errno| VarlinkError::Connect {
            path: path.display().to_string(),
            errno,
        };
        let addr = UnixAddr::new(path).map_err(describe)?;
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(describe)?;
        match socket::connect(fd.as_raw_fd(), &addr) {
            Ok(()) => {}
            Err(Errno::EINPROGRESS | Errno::EINTR) => {
                wait(&fd, libc::POLLOUT, deadline)?;
                let err =
                    socket::getsockopt(&fd, socket::sockopt::SocketError).map_err(describe)?;
                if err != 0 {
                    return Err(describe(Errno::from_raw(err)));
                }
            }
            // A full listen backlog: the service is alive but swamped; give up at once.
            Err(errno) => return Err(describe(errno)),
        }
        Ok(Client {
            fd,
            decoder: FrameDecoder::new(),
            timeout,
        })
    }

    fn send_all(&mut self, mut bytes: &[u8], deadline: Instant) -> Result<(), VarlinkError> {
        while !bytes.is_empty() {
            // MSG_NOSIGNAL: a closed peer gives EPIPE, never SIGPIPE in the host process.
            match socket::send(
                self.fd.as_raw_fd(),
                bytes,
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(n) => bytes = &bytes[n..],
                Err(Errno::EAGAIN | Errno::EINTR) => wait(&self.fd, libc::POLLOUT, deadline)?,
                Err(errno) => return Err(VarlinkError::Io(errno)),
            }
        }
        Ok(())
    }

    fn receive(&mut self, deadline: Instant) -> Result<Map<String, Value>, VarlinkError> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(message) = self.decoder.next_message()? {
                return Ok(message);
            }
            match socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => return Err(VarlinkError::Closed),
                Ok(n) => self.decoder.push(&buf[..n])?,
                Err(Errno::EAGAIN | Errno::EINTR) => wait(&self.fd, libc::POLLIN, deadline)?,
                Err(errno) => return Err(VarlinkError::Io(errno)),
            }
        }
    }

    fn read_reply(&mut self, deadline: Instant) -> Result<Reply, VarlinkError> {
        let mut message = self.receive(deadline)?;
        let parameters = match message.remove("parameters") {
            Some(Value::Object(p)) => p,
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err(VarlinkError::Protocol("parameters is not an object".into())),
        };
        if let Some(error) = message.get("error") {
            let name = error
                .as_str()
                .ok_or_else(|| VarlinkError::Protocol("error is not a string".into()))?;
            return Err(VarlinkError::Remote {
                name: name.to_owned(),
                parameters,
            });
        }
        let continues = message
            .get("continues")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(Reply {
            parameters,
            continues,
        })
    }

    fn request(method: &str, parameters: Map<String, Value>, more: bool) -> Vec<u8> {
        let mut message = Map::new();
        message.insert("method".into(), Value::String(method.into()));
        message.insert("parameters".into(), Value::Object(parameters));
        if more {
            message.insert("more".into(), Value::Bool(true));
        }
        encode_frame(&message)
    }

    /// Calls `method` and returns its single reply.
    pub fn call(
        &mut self,
        method: &str,
        parameters: Map<String, Value>,
    ) -> Result<Reply, VarlinkError> {
        let deadline = Instant::now() + self.timeout;
        self.send_all(&Self::request(method, parameters, false), deadline)?;
        self.read_reply(deadline)
    }

    /// Calls `method` with `more` and hands every reply to `each` until the last one. The timeout
    /// applies to each reply, so a long listing that keeps flowing is not cut off.
    pub fn call_more(
        &mut self,
        method: &str,
        parameters: Map<String, Value>,
        mut each: impl FnMut(Reply),
    ) -> Result<(), VarlinkError> {
        let deadline = Instant::now() + self.timeout;
        self.send_all(&Self::request(method, parameters, true), deadline)?;
        loop {
            let reply = self.read_reply(Instant::now() + self.timeout)?;
            let continues = reply.continues;
            each(reply);
            if !continues {
                return Ok(());
            }
        }
    }
}
