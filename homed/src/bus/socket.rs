//! The system bus socket, read one message at a time into an allocation of its own.
//!
//! zbus's own unix socket reads ahead into a buffer it keeps for the life of the connection, so
//! the bytes of every call it received (passwords in AcquireHome, ActivateHome, CreateHome, …)
//! stay there until later traffic happens to overwrite them. This socket leaves the reading to
//! zbus's default `ReadHalf::receive_message`, which reads the 16-byte primary header, then the
//! rest of the message straight into the message's own buffer: once the message is dropped, the
//! daemon's wiping allocator clears it, and nothing else kept a copy.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, Shutdown};
use tokio::io::Interest;
use tokio::net::UnixStream;
use zbus::address::transport::{Transport, UnixSocket};
use zbus::connection::socket::{ReadHalf, Socket, Split, WriteHalf};
use zbus::export::async_trait::async_trait;

/// At most this many descriptors come with one read (dbus-daemon's limit per message is 16;
/// a read may carry the end of one message and the start of another).
const MAX_FDS_PER_READ: usize = 64;

/// A connected stream to the bus, split into the two halves zbus drives.
#[derive(Debug)]
pub struct ExactReadSocket(Arc<UnixStream>);

impl ExactReadSocket {
    /// Connects to the system bus at `$DBUS_SYSTEM_BUS_ADDRESS` (or the default path). Must be
    /// called inside the daemon's tokio runtime, whose reactor then drives the socket.
    pub async fn system() -> zbus::Result<Self> {
        let address = zbus::Address::system()?;
        let stream = match address.transport() {
            Transport::Unix(unix) => match unix.path() {
                UnixSocket::File(path) => UnixStream::connect(path).await?,
                UnixSocket::Abstract(name) => {
                    use std::os::linux::net::SocketAddrExt as _;
                    use std::os::unix::ffi::OsStrExt as _;
                    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                    let std_stream = std::os::unix::net::UnixStream::connect_addr(&addr)?;
                    std_stream.set_nonblocking(true)?;
                    UnixStream::from_std(std_stream)?
                }
                other => {
                    return Err(zbus::Error::Address(format!(
                        "the system bus address {other:?} is not a socket to connect to"
                    )));
                }
            },
            other => {
                return Err(zbus::Error::Address(format!(
                    "the system bus address {other:?} is not a unix socket"
                )));
            }
        };
        Ok(ExactReadSocket(Arc::new(stream)))
    }
}

impl Socket for ExactReadSocket {
    type ReadHalf = Reader;
    type WriteHalf = Writer;

    fn split(self) -> Split<Reader, Writer> {
        Split::new(Reader(self.0.clone()), Writer(self.0))
    }
}

/// The half the connection receives through: every read goes into the buffer zbus passes.
#[derive(Debug)]
pub struct Reader(Arc<UnixStream>);

/// One `recvmsg` into `buffer`, with the descriptors that came along (close-on-exec).
fn receive(fd: RawFd, buffer: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = [IoSliceMut::new(buffer)];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS_PER_READ]);
    let msg = nix::sys::socket::recvmsg::<()>(
        fd,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            for raw in raw {
                // SAFETY: the kernel installed `raw` in our descriptor table with this message;
                // nothing else owns it, so it is wrapped exactly once here.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a message came with more file descriptors than the daemon accepts",
        ));
    }
    Ok((msg.bytes, fds))
}

#[async_trait]
impl ReadHalf for Reader {
    async fn recvmsg(&mut self, buffer: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
        let fd = self.0.as_raw_fd();
        loop {
            self.0.readable().await?;
            match self.0.try_io(Interest::READABLE, || receive(fd, buffer)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }

    fn can_pass_unix_fd(&self) -> bool {
        true
    }
}

/// The half the connection sends through, straight from each message's own bytes.
#[derive(Debug)]
pub struct Writer(Arc<UnixStream>);

/// One `sendmsg` of `buffer`, with `fds` attached when there are any.
fn send(fd: RawFd, buffer: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    let iov = [IoSlice::new(buffer)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
    Ok(nix::sys::socket::sendmsg::<()>(
        fd,
        &iov,
        cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?)
}

#[async_trait]
impl WriteHalf for Writer {
    async fn sendmsg(&mut self, buffer: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        let fd = self.0.as_raw_fd();
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_fd().as_raw_fd()).collect();
        loop {
            self.0.writable().await?;
            match self.0.try_io(Interest::WRITABLE, || send(fd, buffer, &raw)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }

    async fn close(&mut self) -> io::Result<()> {
        match nix::sys::socket::shutdown(self.0.as_raw_fd(), Shutdown::Both) {
            Ok(()) | Err(nix::errno::Errno::ENOTCONN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn can_pass_unix_fd(&self) -> bool {
        true
    }
}
