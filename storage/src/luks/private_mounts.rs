//! The mount namespace in which a home's raw file system is mounted. While a home is created,
//! activated or opened for a password change, its decrypted file system is mounted on a work
//! folder with the files stored as 65534; nobody but the process doing the work may see that
//! mount, or hold it open. Only the final, ID-mapped home is attached where everyone finds it.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::path::Path;

use super::{LuksError, sys};

/// This process's stay in a mount namespace of its own. Dropping it (or [`attach_outside`])
/// returns the process to the namespace it came from; the private namespace, and whatever is
/// still mounted in it, goes away with the last process in it.
///
/// [`attach_outside`]: PrivateMounts::attach_outside
pub struct PrivateMounts {
    origin: Option<OwnedFd>,
}

impl PrivateMounts {
    /// Enters a new private mount namespace. The process must be single-threaded.
    pub fn enter() -> Result<Self, LuksError> {
        let origin = sys::enter_private_mount_namespace()
            .map_err(|e| LuksError::io("entering a mount namespace of our own", e))?;
        Ok(PrivateMounts {
            origin: Some(origin),
        })
    }

    /// Returns to the namespace the process came from and attaches `tree` (a detached mount)
    /// on `target` there.
    pub fn attach_outside(mut self, tree: BorrowedFd<'_>, target: &Path) -> Result<(), LuksError> {
        self.leave()?;
        sys::move_mount_to(tree, target)
            .map_err(|e| LuksError::io(format!("attaching the home on {}", target.display()), e))
    }

    fn leave(&mut self) -> Result<(), LuksError> {
        match self.origin.take() {
            Some(origin) => sys::enter_mount_namespace(origin.as_fd())
                .map_err(|e| LuksError::io("returning to the host's mount namespace", e)),
            None => Ok(()),
        }
    }
}

impl Drop for PrivateMounts {
    fn drop(&mut self) {
        // Nothing to report to: a process that cannot go back stays where nothing of the host
        // changes, which is the safe side.
        let _ = self.leave();
    }
}
