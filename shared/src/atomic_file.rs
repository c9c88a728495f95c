//! Replacing a file so that a reader, or the next boot after a crash, finds the old content or
//! the new, never a part: the one way the workspace writes its records, keys and publications.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Writes `content` to `dir/name` with exactly `mode`: a temporary file beside it, fsync,
/// rename over the old one, fsync of the folder. A crash at any point leaves either file.
pub fn write_atomic(dir: &Path, name: &str, content: &[u8], mode: u32) -> io::Result<()> {
    let mut random = [0u8; 6];
    getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let temp = dir.join(format!(".#{name}{suffix}"));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)?;
        // The umask may have removed bits: set exactly what readers check.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(content)?;
        f.sync_all()?;
        fs::rename(&temp, dir.join(name))?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// As [`write_atomic`], but leaves a file that already has this content and mode alone (its
/// identity stays, and so do readers' caches of it).
pub fn write_atomic_if_changed(
    dir: &Path,
    name: &str,
    content: &[u8],
    mode: u32,
) -> io::Result<()> {
    let path = dir.join(name);
    if fs::read(&path).is_ok_and(|old| old == content)
        && fs::symlink_metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o7777 == mode)
    {
        return Ok(());
    }
    write_atomic(dir, name, content, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_replaced_whole_with_its_mode_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "f", b"old", 0o600).unwrap();
        write_atomic(dir.path(), "f", b"new", 0o644).unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"new");
        let mode = fs::metadata(dir.path().join("f"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o644);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let before = fs::metadata(dir.path().join("f")).unwrap();
        write_atomic_if_changed(dir.path(), "f", b"new", 0o644).unwrap();
        let after = fs::metadata(dir.path().join("f")).unwrap();
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!(before.ino(), after.ino());
    }
}
