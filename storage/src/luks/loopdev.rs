//! Loop devices over a range of an image file (the home partition), set up in one
//! `LOOP_CONFIGURE` call with autoclear, so the device goes away with its last user.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use super::LuksError;
use super::sys;

/// How often we retry when another process takes the free loop device first.
const ATTACH_ATTEMPTS: usize = 16;

/// An attached loop device. Dropping it closes our handle; with autoclear the kernel detaches the
/// device once nothing else (device-mapper, libcryptsetup) holds it.
pub struct LoopDevice {
    device: File,
    path: PathBuf,
}

impl LoopDevice {
    /// Attaches `size` bytes of `backing` starting at `offset` to a free loop device.
    pub fn attach(
        backing: &File,
        offset: u64,
        size: u64,
        read_only: bool,
    ) -> Result<Self, LuksError> {
        let control = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/loop-control")
            .map_err(|e| LuksError::io("opening /dev/loop-control", e))?;
        let mut info = sys::LoopInfo64::zeroed();
        info.lo_offset = offset;
        info.lo_sizelimit = size;
        info.lo_flags = sys::LO_FLAGS_AUTOCLEAR
            | if read_only {
                sys::LO_FLAGS_READ_ONLY
            } else {
                0
            };
        let mut last_error = None;
        for _ in 0..ATTACH_ATTEMPTS {
            let number = sys::loop_get_free(control.as_fd())
                .map_err(|e| LuksError::io("finding a free loop device", e))?;
            let path = PathBuf::from(format!("/dev/loop{number}"));
            let device = OpenOptions::new()
                .read(true)
                .write(!read_only)
                .open(&path)
                .map_err(|e| LuksError::io(format!("opening {}", path.display()), e))?;
            match sys::loop_configure(device.as_fd(), backing.as_fd(), &info) {
                Ok(()) => return Ok(LoopDevice { device, path }),
                // Someone else configured it between GET_FREE and CONFIGURE: take another.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last_error = Some(e),
                Err(e) => {
                    return Err(LuksError::io(
                        format!("attaching the image to {}", path.display()),
                        e,
                    ));
                }
            }
        }
        Err(LuksError::io(
            "attaching the image to a loop device (all candidates were busy)",
            last_error.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EBUSY)),
        ))
    }

    /// The device node, e.g. `/dev/loop3`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open device.
    pub fn file(&self) -> &File {
        &self.device
    }

    /// The byte offset and size limit of the mapping, as the kernel reports them.
    pub fn mapping(&self) -> Result<(u64, u64), LuksError> {
        let info = sys::loop_get_status(self.device.as_fd()).map_err(|e| {
            LuksError::io(format!("reading the status of {}", self.path.display()), e)
        })?;
        Ok((info.lo_offset, info.lo_sizelimit))
    }

    /// Detaches now (the kernel defers it while another holder keeps the device open).
    pub fn detach(self) -> Result<(), LuksError> {
        sys::loop_clear(self.device.as_fd())
            .map_err(|e| LuksError::io(format!("detaching {}", self.path.display()), e))
    }
}
