//! Reference FIFOs (homed-spec §4.5): the daemon holds the read end of
//! `/run/systemd/home/NAME.{please,dont}-suspend`, hands out write ends, and notices when the last
//! writer closes (POLLHUP on the read end), which it reports to the engine as an event.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;

/// Which kind of reference a session holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    PleaseSuspend,
    DontSuspend,
}

impl RefKind {
    pub fn suffix(self) -> &'static str {
        match self {
            RefKind::PleaseSuspend => "please-suspend",
            RefKind::DontSuspend => "dont-suspend",
        }
    }

    pub fn fifo_path(self, run_dir: &Path, user: &str) -> PathBuf {
        run_dir.join(format!("{user}.{}", self.suffix()))
    }
}

/// An open read end; dropping it stops watching.
pub struct FifoReader {
    pub fd: AsyncFd<OwnedFd>,
}

fn open_raw(path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a NUL-terminated path valid for the call; the result is a new descriptor.
    let fd: RawFd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOCTTY) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by open and has no other owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates the FIFO if needed (0600, directory 0755) and opens its read end.
pub fn open_reader(path: &Path) -> io::Result<FifoReader> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        Ok(()) => {}
        Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let meta = std::fs::symlink_metadata(path)?;
    if !std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()) {
        return Err(io::Error::other(format!(
            "{} is not a FIFO",
            path.display()
        )));
    }
    let fd = open_raw(path, libc::O_RDONLY | libc::O_NONBLOCK)?;
    // SAFETY: the AsyncFd takes ownership of `fd`, an open descriptor that an OwnedFd always
    // reports the same way and that stays open until the AsyncFd is dropped.
    let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(io::Error::from)?;
    Ok(FifoReader { fd })
}

/// A new write end for a client.
pub fn open_writer(path: &Path) -> io::Result<OwnedFd> {
    open_raw(path, libc::O_WRONLY | libc::O_NONBLOCK)
}

/// After a restart: opening and closing a writer of our own makes the read end report a hangup
/// once no other writer is left, even if none was there when we opened it.
pub fn poke(path: &Path) {
    drop(open_writer(path));
}

/// Polls the read end once: true when every writer is gone.
fn hung_up(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd and the timeout is zero.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    if n <= 0 {
        return false;
    }
    if p.revents & libc::POLLIN != 0 {
        // Someone wrote into the FIFO: drain it so that only hangups wake us.
        let mut buf = [0u8; 256];
        // SAFETY: `buf` is writable for its length; the descriptor is non-blocking.
        while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
    p.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

impl FifoReader {
    /// Whether every writer is gone right now.
    pub fn is_hung_up(&self) -> bool {
        hung_up(self.fd.get_ref().as_raw_fd())
    }

    /// Resolves when the last writer has closed.
    pub async fn wait_hangup(&self) {
        loop {
            // Checked before every wait: a hangup that comes between a check and clearing the
            // readiness would otherwise be missed (the wakeup is an edge, the hangup a level).
            if self.is_hung_up() {
                return;
            }
            let Ok(mut guard) = self.fd.readable().await else {
                return;
            };
            if self.is_hung_up() {
                return;
            }
            guard.clear_ready();
        }
    }
}

/// The last writer of a reference FIFO closed. The engine answers on `keep_watching`: true if a
/// new reference arrived meanwhile (watch on), false when it dealt with the hangup.
pub struct LastReferenceClosed {
    pub home: String,
    pub kind: RefKind,
    /// Which watcher of this home and kind reports (a newer one may have replaced it).
    pub generation: u64,
    pub keep_watching: tokio::sync::oneshot::Sender<bool>,
}

/// Watches `reader` and reports each hangup as an event, until the engine says stop or is gone.
pub fn watch(
    reader: std::sync::Arc<FifoReader>,
    home: String,
    kind: RefKind,
    generation: u64,
    events: tokio::sync::mpsc::UnboundedSender<LastReferenceClosed>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            reader.wait_hangup().await;
            let (keep_watching, answer) = tokio::sync::oneshot::channel();
            let event = LastReferenceClosed {
                home: home.clone(),
                kind,
                generation,
                keep_watching,
            };
            if events.send(event).is_err() || answer.await != Ok(true) {
                return;
            }
        }
    })
}
