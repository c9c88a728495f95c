//! `storage: cifs` (homed-spec §3.5): the home is a share on a CIFS server, mounted with the
//! password given at login as the share's credential, owned by the user's IDs whatever the
//! server stores, with the record's nosuid/nodev/noexec. The share holds `.identity`; it has no
//! image on this machine and no key of its own.
//!
//! The mount goes through `mount -t cifs` (mount.cifs from cifs-utils), as systemd-homed does,
//! with the credentials in a file only root can read that is removed as soon as mount returns.

use std::io::{self, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::os::fd::AsFd as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use crate::{MountFlags, StorageError, directory, is_mount_point, sys, walk};

/// The helper `mount -t cifs` runs; without it no CIFS home can be made or opened.
pub const MOUNT_HELPER: &str = "/sbin/mount.cifs";
/// The port of a CIFS server when the mount options name none.
const DEFAULT_PORT: u16 = 445;
/// How long the reachability probe waits for the server to accept a connection.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(800);
/// Where the credentials file lives while mount runs: root's, in memory.
const CREDENTIALS_DIR: &str = "/run";
/// The largest `.identity` read from a share.
const IDENTITY_LIMIT: u64 = 4 * 1024 * 1024;

/// The share a record names, with what the mount needs besides the password.
pub struct Share<'a> {
    /// `//server/share[/path]`.
    pub service: &'a str,
    pub user_name: &'a str,
    pub domain: Option<&'a str>,
    pub extra_options: Option<&'a str>,
    pub uid: u32,
    pub gid: u32,
    pub access_mode: u32,
}

/// The host and port of the server of `service` (`//host/share`), the port from a `port=`
/// among the extra mount options.
pub fn server_of(
    service: &str,
    extra_options: Option<&str>,
) -> Result<(String, u16), StorageError> {
    let rest = service.strip_prefix("//").ok_or_else(|| {
        StorageError::new(
            libc::EINVAL,
            format!("CIFS service {service} is not of the form //server/share"),
        )
    })?;
    let (host, share) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() || share.is_empty() {
        return Err(StorageError::new(
            libc::EINVAL,
            format!("CIFS service {service} is not of the form //server/share"),
        ));
    }
    let port = extra_options
        .into_iter()
        .flat_map(|o| o.split(','))
        .find_map(|o| o.strip_prefix("port="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(DEFAULT_PORT);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((host.to_owned(), port))
}

/// Whether the server of `service` accepts a connection within `timeout`. It never touches a
/// mount, so it cannot hang on one whose server went away.
pub fn reachable(service: &str, extra_options: Option<&str>, timeout: Duration) -> bool {
    let Ok((host, port)) = server_of(service, extra_options) else {
        return false;
    };
    let Ok(addresses) = (host.as_str(), port).to_socket_addrs() else {
        return false;
    };
    addresses
        .into_iter()
        .any(|a| TcpStream::connect_timeout(&a, timeout).is_ok())
}

fn unreachable(share: &Share<'_>) -> StorageError {
    StorageError::new(
        libc::EHOSTDOWN,
        format!(
            "The CIFS server of {} does not answer; nothing was changed",
            share.service
        ),
    )
}

/// The credentials file for one password, removed when dropped.
struct Credentials(std::path::PathBuf);

impl Credentials {
    fn write(share: &Share<'_>, password: &SecretString) -> Result<Self, StorageError> {
        let password = password.expose_secret();
        // One line per field: a line break would smuggle in another field.
        for (what, value) in [
            ("password", password),
            ("user name", share.user_name),
            ("domain", share.domain.unwrap_or("")),
        ] {
            if value.contains(['\n', '\r', '\0']) {
                return Err(StorageError::new(
                    libc::EINVAL,
                    format!("The CIFS {what} contains a line break, which mount.cifs cannot take"),
                ));
            }
        }
        let mut random = [0u8; 8];
        getrandom::fill(&mut random)
            .map_err(|e| StorageError::new(libc::EIO, format!("no randomness: {e}")))?;
        let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let path = Path::new(CREDENTIALS_DIR).join(format!(".homed-cifs-{name}"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| StorageError::io("creating the CIFS credentials file", e))?;
        let credentials = Credentials(path);
        let mut text = zeroize::Zeroizing::new(format!(
            "username={}\npassword={password}\n",
            share.user_name
        ));
        if let Some(domain) = share.domain {
            text.push_str(&format!("domain={domain}\n"));
        }
        file.write_all(text.as_bytes())
            .map_err(|e| StorageError::io("writing the CIFS credentials file", e))?;
        Ok(credentials)
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Why one mount attempt failed.
enum MountFailure {
    /// The server refused the credentials (mount error 13, EACCES).
    Refused,
    /// Anything else, with mount's words.
    Other(String),
}

/// The mount options: the user's IDs and mode, the record's extra options, then the record's
/// nosuid/nodev/noexec last, so that no extra option (`suid`, `dev`) can undo them — the
/// guarantee 252 gives by remounting the share with them.
fn options(share: &Share<'_>, credentials: &Path, flags: MountFlags) -> String {
    let mode = share.access_mode & 0o7777;
    let mut o = format!(
        "credentials={},uid={},forceuid,gid={},forcegid,file_mode=0{mode:o},dir_mode=0{mode:o}",
        credentials.display(),
        share.uid,
        share.gid,
    );
    if let Some(extra) = share.extra_options.filter(|e| !e.is_empty()) {
        o.push(',');
        o.push_str(extra);
    }
    for (set, name) in [
        (flags.nosuid, "nosuid"),
        (flags.nodev, "nodev"),
        (flags.noexec, "noexec"),
    ] {
        if set {
            o.push(',');
            o.push_str(name);
        }
    }
    o
}

fn mount_once(
    share: &Share<'_>,
    password: &SecretString,
    target: &str,
    flags: MountFlags,
) -> Result<Result<(), MountFailure>, StorageError> {
    let credentials = Credentials::write(share, password)?;
    let output = Command::new("mount")
        .args(["-n", "-t", "cifs", share.service, target, "-o"])
        .arg(options(share, &credentials.0, flags))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| StorageError::io("running mount -t cifs", e))?;
    drop(credentials);
    if output.status.success() {
        return Ok(Ok(()));
    }
    let words = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    // mount.cifs says "mount error(13): Permission denied" when the server turns the
    // credentials down.
    if words.contains("mount error(13)") {
        return Ok(Err(MountFailure::Refused));
    }
    Ok(Err(MountFailure::Other(words)))
}

/// Mounts the share on `target` with the first password the server accepts. Fails with
/// ENOKEY (a bad password, as systemd-homed reports every failed CIFS mount) when the server
/// refuses them all, and with EHOSTDOWN when it does not answer.
pub fn mount(
    share: &Share<'_>,
    passwords: &[SecretString],
    target: &str,
    flags: MountFlags,
) -> Result<(), StorageError> {
    if !Path::new(MOUNT_HELPER).exists() {
        return Err(StorageError::new(
            libc::ENOLINK,
            format!("{MOUNT_HELPER} is missing."),
        ));
    }
    let mut other = None;
    for password in passwords {
        match mount_once(share, password, target, flags)? {
            Ok(()) => return Ok(()),
            Err(MountFailure::Refused) => {}
            Err(MountFailure::Other(words)) => other = Some(words),
        }
    }
    if let Some(words) = other {
        if !reachable(share.service, share.extra_options, PROBE_TIMEOUT) {
            return Err(unreachable(share));
        }
        return Err(StorageError::new(
            libc::ENOKEY,
            format!("Failed to mount home directory with supplied password: {words}"),
        ));
    }
    Err(StorageError::new(
        libc::ENOKEY,
        "Failed to mount home directory with supplied password.",
    ))
}

fn make_mount_point(path: &str) -> Result<bool, StorageError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(StorageError::io(format!("creating {path}"), e)),
    }
}

/// What `create` needs besides the share.
pub struct NewShareHome<'a> {
    /// An empty folder to mount the share on while it is filled (the home directory).
    pub mount_point: &'a str,
    pub skeleton: Option<&'a str>,
    /// The embedded record, as it goes into `.identity`.
    pub identity: &'a str,
}

/// Fills an empty share: the skeleton and `.identity`. Refuses a share with files in it
/// (ENOTEMPTY), as systemd-homed does, so no one's data is mixed into a new home.
pub fn create(
    share: &Share<'_>,
    passwords: &[SecretString],
    req: &NewShareHome<'_>,
) -> Result<(), StorageError> {
    if is_mount_point(req.mount_point) {
        return Err(StorageError::new(
            libc::EALREADY,
            format!("{} is mounted already", req.mount_point),
        ));
    }
    let made = make_mount_point(req.mount_point)?;
    let flags = MountFlags {
        nosuid: true,
        nodev: true,
        noexec: true,
    };
    let result = mount(share, passwords, req.mount_point, flags).and_then(|()| {
        let filled = fill(share, req);
        let unmounted = unmount(req.mount_point, true);
        filled.and(unmounted)
    });
    if made {
        let _ = std::fs::remove_dir(req.mount_point);
    }
    result
}

fn fill(share: &Share<'_>, req: &NewShareHome<'_>) -> Result<(), StorageError> {
    let home = sys::open_dir_path(req.mount_point)
        .map_err(|e| StorageError::io(format!("opening {}", req.mount_point), e))?;
    let entries =
        sys::list_dir(home.as_fd()).map_err(|e| StorageError::io("listing the share", e))?;
    if !entries.is_empty() {
        return Err(StorageError::new(
            libc::ENOTEMPTY,
            format!(
                "Selected CIFS directory {} not empty, refusing.",
                share.service
            ),
        ));
    }
    if let Some(skel) = req.skeleton {
        directory::copy_skeleton(skel, home.as_fd(), share.uid, share.gid)?;
    }
    directory::write_identity(req.mount_point, req.identity, share.uid, share.gid)?;
    sys::syncfs(home.as_fd()).map_err(|e| StorageError::io("syncing the share", e))
}

/// Mounts the share on the home directory and returns its `.identity` (if it has one) for the
/// reconcile. Undoes the mount when reading it fails.
pub fn activate(
    share: &Share<'_>,
    passwords: &[SecretString],
    home_directory: &str,
    flags: MountFlags,
) -> Result<Option<Vec<u8>>, StorageError> {
    if is_mount_point(home_directory) {
        return Err(StorageError::new(
            libc::EALREADY,
            format!("{home_directory} is mounted already"),
        ));
    }
    let made = make_mount_point(home_directory)?;
    if let Err(e) = mount(share, passwords, home_directory, flags) {
        if made {
            let _ = std::fs::remove_dir(home_directory);
        }
        return Err(e);
    }
    let identity = sys::open_dir_path(home_directory)
        .map_err(|e| StorageError::io(format!("opening {home_directory}"), e))
        .and_then(
            |home| match walk::read_file(home.as_fd(), c".identity", IDENTITY_LIMIT) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
                Err(e) => Err(StorageError::io("reading .identity on the share", e)),
            },
        );
    if let Err(e) = &identity {
        let _ = unmount(home_directory, false);
        return Err(StorageError::new(
            e.errno,
            format!("{e}; the share was unmounted again"),
        ));
    }
    identity
}

/// Unmounts the share. With the server reachable, a sync first and a plain unmount (EBUSY
/// while a process uses it); with the server gone, nothing could be flushed and a plain
/// unmount could wait on it, so the mount is detached at once.
pub fn deactivate(share: &Share<'_>, home_directory: &str) -> Result<(), StorageError> {
    if !is_mount_point(home_directory) {
        return Err(StorageError::new(
            libc::ENOEXEC,
            format!("{home_directory} is not mounted"),
        ));
    }
    let server_up = reachable(share.service, share.extra_options, PROBE_TIMEOUT);
    unmount(home_directory, server_up)?;
    let _ = std::fs::remove_dir(home_directory);
    Ok(())
}

fn unmount(path: &str, server_up: bool) -> Result<(), StorageError> {
    use nix::mount::MntFlags;
    if server_up {
        if let Ok(fd) = sys::open_dir_path(path) {
            let _ = sys::syncfs(fd.as_fd());
        }
        nix::mount::umount2(path, MntFlags::UMOUNT_NOFOLLOW)
    } else {
        nix::mount::umount2(path, MntFlags::UMOUNT_NOFOLLOW | MntFlags::MNT_DETACH)
    }
    .map_err(|e| StorageError::io(format!("unmounting {path}"), io::Error::from(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_and_port_come_from_the_service_and_the_options() {
        assert_eq!(
            server_of("//files.example/homes/ann", None).unwrap(),
            ("files.example".to_owned(), 445)
        );
        assert_eq!(
            server_of("//[::1]/homes", Some("vers=3.0,port=4450")).unwrap(),
            ("::1".to_owned(), 4450)
        );
        for bad in [
            "files.example/homes",
            "//files.example",
            "///homes",
            "//host/",
        ] {
            let e = server_of(bad, None).unwrap_err();
            assert_eq!(e.errno, libc::EINVAL, "{bad}");
            assert!(e.message.contains("//server/share"), "{}", e.message);
        }
    }

    #[test]
    fn mount_options_carry_the_ids_mode_extras_and_the_records_flags_last() {
        let share = Share {
            service: "//h/s",
            user_name: "ann",
            domain: None,
            extra_options: Some("vers=3.0,suid,dev"),
            uid: 60101,
            gid: 60101,
            access_mode: 0o700,
        };
        let flags = MountFlags {
            nosuid: true,
            nodev: true,
            noexec: false,
        };
        assert_eq!(
            options(&share, Path::new("/run/c"), flags),
            "credentials=/run/c,uid=60101,forceuid,gid=60101,forcegid,file_mode=0700,dir_mode=0700,vers=3.0,suid,dev,nosuid,nodev"
        );
    }

    #[test]
    fn a_closed_port_is_unreachable_without_waiting() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let options = format!("port={port}");
        assert!(reachable("//127.0.0.1/s", Some(&options), PROBE_TIMEOUT));
        drop(listener);
        let start = std::time::Instant::now();
        assert!(!reachable("//127.0.0.1/s", Some(&options), PROBE_TIMEOUT));
        assert!(start.elapsed() < PROBE_TIMEOUT, "{:?}", start.elapsed());
    }

    #[test]
    fn credentials_refuse_line_breaks_and_leave_no_file() {
        let share = Share {
            service: "//h/s",
            user_name: "ann",
            domain: None,
            extra_options: None,
            uid: 1,
            gid: 1,
            access_mode: 0o700,
        };
        let e = Credentials::write(&share, &SecretString::from("pw\nusername=root"))
            .err()
            .unwrap();
        assert_eq!(e.errno, libc::EINVAL);
        assert!(e.message.contains("line break"), "{}", e.message);
    }
}
