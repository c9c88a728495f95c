//! The space figures `inspect` shows for a home whose files live on the home root's own file
//! system, read as systemd-homed 252 reads them: the file system's size and free space,
//! narrowed by the user's quota (directory and fscrypt homes) or by the subvolume's own btrfs
//! qgroup (subvolume homes); and `diskSize` applied to those homes the same two ways.

use std::io;
use std::os::fd::AsRawFd as _;
use std::path::Path;

use crate::subvolume::{BTRFS_QGROUP_LIMIT_MAX_RFER, IOC_READ, IOC_WRITE, btrfs_ioc};

/// What is known of a home's space; `None` for what cannot be told.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DiskFigures {
    pub size: Option<u64>,
    pub usage: Option<u64>,
    pub free: Option<u64>,
    /// The most the home could grow to.
    pub ceiling: Option<u64>,
}

impl DiskFigures {
    /// The size and free space of the file system holding `path`.
    pub fn of_file_system(path: &str) -> DiskFigures {
        match nix::sys::statfs::statfs(path) {
            Ok(st) => {
                let block = u64::try_from(st.block_size()).unwrap_or(0);
                DiskFigures {
                    size: Some(block * st.blocks()),
                    free: Some(block * st.blocks_available()),
                    ..DiskFigures::default()
                }
            }
            Err(_) => DiskFigures::default(),
        }
    }

    /// Narrowed by `uid`'s quota on the file system holding `path`: its use, its hard limit
    /// as the size, and room to grow by what is free.
    pub fn with_user_quota(mut self, path: &Path, uid: u32) -> DiskFigures {
        let Some(quota) = crate::sys::user_quota(path, uid) else {
            return self;
        };
        if let (Some(used), Some(free)) = (quota.used, self.free) {
            self.ceiling = Some(clip(used.saturating_add(free), self.size));
        }
        if let Some(limit) = quota.hard_limit {
            self.size = Some(clip(limit, self.size));
        }
        if let Some(used) = quota.used {
            self.usage = Some(used);
            if let Some(size) = self.size {
                self.free = Some(size.saturating_sub(used));
            }
        }
        self
    }

    /// Narrowed by the qgroup of the btrfs subvolume at `path`, when the file system keeps
    /// quota: what the subvolume references, its limit as the size.
    pub fn with_qgroup(mut self, path: &Path) -> DiskFigures {
        let Ok(quota) = subvolume_quota(path) else {
            return self;
        };
        self.usage = Some(quota.referenced);
        if let Some(free) = self.free {
            self.ceiling = Some(clip(quota.referenced.saturating_add(free), self.size));
        }
        if let Some(limit) = quota.referenced_max {
            self.size = Some(clip(limit, self.size));
        }
        if let Some(size) = self.size {
            self.free = Some(size.saturating_sub(quota.referenced));
        }
        self
    }
}

fn clip(value: u64, most: Option<u64>) -> u64 {
    most.map_or(value, |m| value.min(m))
}

/// A btrfs qgroup's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QgroupQuota {
    pub referenced: u64,
    /// The limit on referenced space; `None` when there is none.
    pub referenced_max: Option<u64>,
}

const BTRFS_QUOTA_TREE_OBJECTID: u64 = 8;
const BTRFS_FIRST_FREE_OBJECTID: u64 = 256;
const BTRFS_QGROUP_INFO_KEY: u32 = 242;
const BTRFS_QGROUP_LIMIT_KEY: u32 = 244;
/// Both ioctls below take a 4 KiB argument.
const ARGS_SIZE: usize = 4096;
const BTRFS_IOC_TREE_SEARCH: u64 = btrfs_ioc(IOC_READ | IOC_WRITE, 17, ARGS_SIZE);
const BTRFS_IOC_INO_LOOKUP: u64 = btrfs_ioc(IOC_READ | IOC_WRITE, 18, ARGS_SIZE);

/// `struct btrfs_ioctl_search_key`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SearchKey {
    tree_id: u64,
    min_objectid: u64,
    max_objectid: u64,
    min_offset: u64,
    max_offset: u64,
    min_transid: u64,
    max_transid: u64,
    min_type: u32,
    max_type: u32,
    nr_items: u32,
    unused: u32,
    unused1: [u64; 4],
}

/// `struct btrfs_ioctl_search_args`: the key, then the items found.
#[repr(C)]
struct SearchArgs {
    key: SearchKey,
    buf: [u8; ARGS_SIZE - size_of::<SearchKey>()],
}

/// `struct btrfs_ioctl_ino_lookup_args`.
#[repr(C)]
struct InoLookupArgs {
    treeid: u64,
    objectid: u64,
    name: [u8; ARGS_SIZE - 16],
}

/// `struct btrfs_ioctl_search_header`, as it precedes each item in the buffer.
const SEARCH_HEADER_SIZE: usize = 32;

fn le64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn ne64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn ne32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The figures of the own (level-0) qgroup of the subvolume `path` is the root of. Fails when
/// `path` is not on btrfs or the file system keeps no quota.
pub fn subvolume_quota(path: &Path) -> io::Result<QgroupQuota> {
    let dir = std::fs::File::open(path)?;
    let fd = dir.as_raw_fd();
    let mut lookup = InoLookupArgs {
        treeid: 0,
        objectid: BTRFS_FIRST_FREE_OBJECTID,
        name: [0; ARGS_SIZE - 16],
    };
    // SAFETY: `lookup` is a live, writable struct of the size encoded in INO_LOOKUP.
    if unsafe { libc::ioctl(fd, BTRFS_IOC_INO_LOOKUP as _, &raw mut lookup) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let qgroup = lookup.treeid;
    let mut key = SearchKey {
        tree_id: BTRFS_QUOTA_TREE_OBJECTID,
        min_objectid: 0,
        max_objectid: 0,
        min_offset: qgroup,
        max_offset: qgroup,
        max_transid: u64::MAX,
        min_type: BTRFS_QGROUP_INFO_KEY,
        max_type: BTRFS_QGROUP_LIMIT_KEY,
        ..SearchKey::default()
    };
    let (mut referenced, mut referenced_max) = (None, None);
    // The bounds are one range of (objectid, type, offset) keys, so other qgroups' items come
    // back too, possibly over several calls.
    while key.min_type <= BTRFS_QGROUP_LIMIT_KEY {
        key.nr_items = 256;
        let mut args = SearchArgs {
            key,
            buf: [0; ARGS_SIZE - size_of::<SearchKey>()],
        };
        // SAFETY: `args` is a live, writable struct of the size encoded in TREE_SEARCH.
        if unsafe { libc::ioctl(fd, BTRFS_IOC_TREE_SEARCH as _, &raw mut args) } < 0 {
            return Err(io::Error::last_os_error());
        }
        if args.key.nr_items == 0 {
            break;
        }
        let mut at = 0;
        let mut last = None;
        for _ in 0..args.key.nr_items {
            let header = args
                .buf
                .get(at..at + SEARCH_HEADER_SIZE)
                .unwrap_or_default();
            let (Some(objectid), Some(offset), Some(kind), Some(len)) = (
                ne64(header, 8),
                ne64(header, 16),
                ne32(header, 24),
                ne32(header, 28),
            ) else {
                break;
            };
            let item_at = at + SEARCH_HEADER_SIZE;
            let item = args
                .buf
                .get(item_at..item_at + len as usize)
                .unwrap_or_default();
            if objectid == 0 && offset == qgroup {
                match kind {
                    // generation, rfer, rfer_cmpr, excl, excl_cmpr
                    BTRFS_QGROUP_INFO_KEY => referenced = le64(item, 8),
                    // flags, max_rfer, max_excl, rsv_rfer, rsv_excl
                    BTRFS_QGROUP_LIMIT_KEY => {
                        let flags = le64(item, 0).unwrap_or(0);
                        referenced_max = (flags & BTRFS_QGROUP_LIMIT_MAX_RFER != 0)
                            .then(|| le64(item, 8))
                            .flatten();
                    }
                    _ => {}
                }
            }
            last = Some((kind, offset));
            at = item_at + len as usize;
        }
        // Go on after the last key seen.
        let Some((kind, offset)) = last else { break };
        match offset.checked_add(1) {
            Some(next) => (key.min_type, key.min_offset) = (kind, next),
            None => (key.min_type, key.min_offset) = (kind + 1, 0),
        }
    }
    let referenced = referenced.ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
    Ok(QgroupQuota {
        referenced,
        referenced_max,
    })
}

/// Applies a directory-like home's `diskSize` as systemd-homed 252 does: the user's block
/// quota on ext4 and xfs, the subvolume's qgroup limit (quota switched on first) on btrfs.
/// ENOTTY, with what is missing, where neither can be set; nothing is changed then.
pub fn apply_disk_size(image_path: &str, uid: u32, size: u64) -> Result<(), crate::StorageError> {
    use nix::sys::statfs::{BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, statfs};
    let not_here = |what: String| crate::StorageError::new(libc::ENOTTY, what);
    let kind = statfs(image_path)
        .map_err(|e| crate::StorageError::io(format!("statfs {image_path}"), io::Error::from(e)))?
        .filesystem_type();
    if kind == EXT4_SUPER_MAGIC || kind == XFS_SUPER_MAGIC {
        return crate::sys::set_user_block_limit(Path::new(image_path), uid, size).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOTTY) {
                not_here(format!("UID quota not available on {image_path}."))
            } else {
                crate::StorageError::io(format!("setting the disk quota of UID {uid}"), e)
            }
        });
    }
    if kind == BTRFS_SUPER_MAGIC {
        if !crate::subvolume::is_subvolume(Path::new(image_path)) {
            return Err(not_here(format!(
                "Directory {image_path} is not a subvolume, cannot apply quota."
            )));
        }
        crate::subvolume::enable_quota(image_path)?;
        return crate::subvolume::set_limit(image_path, size);
    }
    Err(not_here(format!(
        "Type of directory {image_path} not known, cannot apply quota."
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_and_sizes_match_linux() {
        assert_eq!(BTRFS_IOC_TREE_SEARCH, 0xd000_9411);
        assert_eq!(BTRFS_IOC_INO_LOOKUP, 0xd000_9412);
        assert_eq!(size_of::<SearchKey>(), 104);
        assert_eq!(size_of::<SearchArgs>(), ARGS_SIZE);
        assert_eq!(size_of::<InoLookupArgs>(), ARGS_SIZE);
    }

    #[test]
    fn a_folder_off_btrfs_has_no_qgroup() {
        let dir = tempfile::tempdir().unwrap();
        let figures = DiskFigures::of_file_system(dir.path().to_str().unwrap());
        assert!(figures.size.is_some() && figures.free.is_some());
        if nix::sys::statfs::statfs(dir.path()).map(|s| s.filesystem_type().0) != Ok(0x9123_683e) {
            assert!(subvolume_quota(dir.path()).is_err());
            assert_eq!(figures.with_qgroup(dir.path()), figures);
        }
    }
}
