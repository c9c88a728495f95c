//! The worker's side of `storage: luks` homes (homed-spec §3.1–3.2): create, activate with the
//! three-way reconcile of host record, header token and `~/.identity`, lock, unlock, deactivate
//! and remove. Passwords arrive in the request and live only as long as this process.

use std::fs::File;
use std::path::{Path, PathBuf};

use homed_shared::luks::home::{self, HomeMountFlags};
use homed_shared::luks::{FsType, LuksContainer, LuksError, LuksSettings, dm_name};
use homed_shared::record::Secret;
use homed_shared::signing::TrustedKeys;
use homed_shared::storage::{StorageError, directory};
use homed_shared::{MachineContext, RecordOrigin, UserRecord};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use crate::worker::{b as flag, s as text, u as number};

/// Where a LUKS home's file system is mounted before its `/NAME` folder is bound onto the home
/// directory (one folder per user, so that homes activate side by side).
const WORK_ROOT: &str = "/run/systemd/user-home-mount";

fn passwords(req: &Map<String, Value>) -> Result<Vec<SecretString>, StorageError> {
    let secret = match req.get("secret") {
        Some(v) => Secret::from_value(v.clone())
            .map_err(|e| StorageError::new(libc::EINVAL, format!("bad secret: {e}")))?,
        None => Secret::default(),
    };
    if secret.passwords().is_empty() {
        return Err(StorageError::new(
            libc::ENOKEY,
            "a password is needed for a LUKS home",
        ));
    }
    Ok(secret
        .passwords()
        .iter()
        .map(|p| SecretString::from(secrecy::ExposeSecret::expose_secret(p).to_owned()))
        .collect())
}

/// The host record the daemon sent, with this machine's binding.
fn host_record(req: &Map<String, Value>) -> Result<(UserRecord, MachineContext), StorageError> {
    let record = UserRecord::parse(text(req, "record")?.as_bytes(), RecordOrigin::Host)
        .map_err(|e| StorageError::new(libc::EINVAL, format!("host record: {e}")))?;
    let machine = MachineContext::new(text(req, "machineId")?, None);
    Ok((record, machine))
}

/// The user's work folder under `root`, with `root` made root-only first (it may have been
/// created with looser permissions by an older version or by hand).
fn work_folder_in(root: &str, user: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    if std::fs::create_dir_all(root).is_ok() {
        let _ = std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700));
    }
    Path::new(root).join(user)
}

fn work_dir(user: &str) -> PathBuf {
    work_folder_in(WORK_ROOT, user)
}

fn last_change(record: &UserRecord) -> u64 {
    record
        .json()
        .get("lastChangeUSec")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// `create`: the image, LUKS2 with one keyslot per password, the token, the file system, `/NAME`
/// and `.identity`.
pub fn create(req: &Map<String, Value>) -> Result<Value, StorageError> {
    let (record, machine) = host_record(req)?;
    let view = record.view(&machine);
    let user = record.user_name().to_owned();
    let settings = LuksSettings::from_view(&view);
    let fs_name = view
        .get("fileSystemType")
        .and_then(Value::as_str)
        .unwrap_or("btrfs");
    let fs_type = FsType::parse(fs_name).ok_or_else(|| {
        StorageError::new(
            libc::EPROTONOSUPPORT,
            format!("file system {fs_name} is not supported"),
        )
    })?;
    let size = req
        .get("diskSize")
        .and_then(Value::as_u64)
        .ok_or_else(|| StorageError::new(libc::EINVAL, "request lacks diskSize"))?;
    let passwords = passwords(req)?;
    let image_path = PathBuf::from(text(req, "imagePath")?);
    let skeleton = req
        .get("skeleton")
        .and_then(Value::as_str)
        .map(PathBuf::from);
    home::create(
        &home::CreateRequest {
            user_name: &user,
            image_path: &image_path,
            settings: &settings,
            fs_type,
            size,
            passwords: &passwords,
            record: &record,
            work_dir: &work_dir(&user),
        },
        |home_dir| {
            if let Some(skel) = skeleton.as_deref() {
                copy_skeleton(skel, home_dir)?;
            }
            Ok(())
        },
    )
    .map_err(StorageError::from)?;
    Ok(json!({}))
}

/// Copies the skeleton folder's regular files, folders and symlinks into a new home, owned by
/// the stored owner (the idmap shows them as the user's).
fn copy_skeleton(from: &Path, to: &Path) -> Result<(), LuksError> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let entries = match std::fs::read_dir(from) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(LuksError::io(format!("listing {}", from.display()), e)),
    };
    let owner = |p: &Path| {
        std::os::unix::fs::lchown(p, Some(home::STORED_UID), Some(home::STORED_UID))
            .map_err(|e| LuksError::io(format!("setting the owner of {}", p.display()), e))
    };
    for entry in entries {
        let entry = entry.map_err(|e| LuksError::io("listing the skeleton", e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&src)
            .map_err(|e| LuksError::io(format!("reading {}", src.display()), e))?;
        let io = |e| LuksError::io(format!("copying {}", src.display()), e);
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&src).map_err(io)?;
            std::os::unix::fs::symlink(target, &dst).map_err(io)?;
        } else if meta.is_dir() {
            std::fs::create_dir(&dst).map_err(io)?;
            copy_skeleton(&src, &dst)?;
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(io)?;
        } else if meta.is_file() {
            std::fs::copy(&src, &dst).map_err(io)?;
        } else {
            continue;
        }
        owner(&dst)?;
    }
    Ok(())
}

/// `activate`: unlock, fsck, mount, idmap; then the three record copies are reconciled: the
/// host record is written into the token and `.identity` where those are older (never the
/// other way round), and the newest embedded copy, when newer than the host record, goes back
/// to the daemon, which checks its signature and the password before adopting it. Returns the
/// reply and the image lock.
pub fn activate(req: &Map<String, Value>) -> Result<(Value, File), StorageError> {
    let (record, machine) = host_record(req)?;
    let view = record.view(&machine);
    let user = record.user_name().to_owned();
    let settings = LuksSettings::from_view(&view);
    let passwords = passwords(req)?;
    let image_path = PathBuf::from(text(req, "imagePath")?);
    let home_directory = text(req, "homeDirectory")?.to_owned();
    let (uid, gid) = (number(req, "uid")?, number(req, "gid")?);
    let keys = TrustedKeys::load_from(&key_dirs(req));
    let activated = home::activate(&home::ActivateRequest {
        user_name: &user,
        image_path: &image_path,
        home_directory: Path::new(&home_directory),
        settings: &settings,
        passwords: &passwords,
        uid,
        gid,
        mount_flags: HomeMountFlags {
            nosuid: flag(req, "nosuid"),
            nodev: flag(req, "nodev"),
            noexec: flag(req, "noexec"),
        },
        work_dir: &work_dir(&user),
        trusted_keys: Some(&keys),
    })
    .map_err(StorageError::from)?;
    let reconciled = reconcile(
        &user,
        (&record, &machine),
        &activated.header_record,
        activated.identity.as_deref(),
        (&passwords, &keys),
        &home_directory,
        (uid, gid),
    );
    match reconciled {
        Ok(reply) => Ok((reply, activated.image_lock)),
        Err(e) => {
            let _ = home::deactivate(&user, Path::new(&home_directory), &image_path);
            Err(e)
        }
    }
}

fn reconcile(
    user: &str,
    (host, machine): (&UserRecord, &MachineContext),
    header: &UserRecord,
    identity: Option<&[u8]>,
    (passwords, keys): (&[SecretString], &TrustedKeys),
    home_directory: &str,
    (uid, gid): (u32, u32),
) -> Result<Value, StorageError> {
    let same_user = |r: &UserRecord| r.user_name() == host.user_name() && r.realm() == host.realm();
    if !same_user(header) {
        return Err(StorageError::new(
            libc::EUCLEAN,
            "the record in the LUKS header belongs to another user",
        ));
    }
    let identity = match identity {
        None => None,
        Some(bytes) => {
            let r = UserRecord::parse(bytes, RecordOrigin::Embedded).map_err(|e| {
                StorageError::new(
                    libc::EBADMSG,
                    format!("the home's .identity is not a valid embedded record: {e}"),
                )
            })?;
            if !same_user(&r) {
                return Err(StorageError::new(
                    libc::EUCLEAN,
                    "the home's .identity belongs to another user",
                ));
            }
            Some(r)
        }
    };
    let newest = [Some(header), identity.as_ref()]
        .into_iter()
        .flatten()
        .filter(|r| last_change(r) > last_change(host))
        .max_by_key(|r| last_change(r));
    // The copy every location ends up with: the newest embedded one when the daemon is going to
    // adopt it (trusted, and the password opens it: the daemon checks the same again), so that
    // the three copies agree after this one activation; otherwise the host record's. A newer copy
    // the daemon will refuse changes nothing here: it refuses the activation.
    let target = match newest {
        Some(r) if adoptable(r, machine, passwords, keys) => r.embedded_copy(),
        Some(r) => return Ok(json!({"identity": r.to_pretty_string()})),
        None => host.embedded_copy(),
    };
    let target_text = target.to_compact_string();
    if header.to_compact_string() != target_text {
        let name = dm_name(user);
        let mut container = LuksContainer::active(&name).map_err(StorageError::from)?;
        let (volume_key, _) = container
            .volume_key(passwords)
            .map_err(StorageError::from)?;
        container
            .set_token_record(&volume_key, &target)
            .map_err(StorageError::from)?;
    }
    if identity
        .as_ref()
        .is_none_or(|r| r.to_compact_string() != target_text)
    {
        directory::write_identity(home_directory, &target.to_pretty_string(), uid, gid)?;
    }
    Ok(match newest {
        Some(_) => json!({"identity": target.to_pretty_string()}),
        None => json!({}),
    })
}

/// Whether the daemon will take `record` over its host record: signed by a trusted key, and one
/// of `passwords` matches one of its password hashes.
fn adoptable(
    record: &UserRecord,
    machine: &MachineContext,
    passwords: &[SecretString],
    keys: &TrustedKeys,
) -> bool {
    if !matches!(keys.verdict(record), Ok(v) if v.is_trusted()) {
        return false;
    }
    let view = record.view(machine);
    let hashes = view.hashed_passwords();
    passwords.iter().any(|p| {
        hashes
            .iter()
            .any(|h| homed_shared::password::verify_password(p, h))
    })
}

pub fn deactivate(req: &Map<String, Value>) -> Result<Value, StorageError> {
    let home_directory = text(req, "homeDirectory")?;
    if !homed_shared::storage::is_mount_point(home_directory) {
        return Err(StorageError::new(
            libc::ENOEXEC,
            format!("{home_directory} is not mounted"),
        ));
    }
    home::deactivate(
        text(req, "userName")?,
        Path::new(home_directory),
        Path::new(text(req, "imagePath")?),
    )
    .map_err(StorageError::from)?;
    let _ = std::fs::remove_dir(home_directory);
    Ok(json!({}))
}

pub fn lock(req: &Map<String, Value>) -> Result<Value, StorageError> {
    home::lock(
        text(req, "userName")?,
        Path::new(text(req, "homeDirectory")?),
    )
    .map_err(StorageError::from)?;
    Ok(json!({}))
}

pub fn unlock(req: &Map<String, Value>) -> Result<Value, StorageError> {
    let passwords = passwords(req)?;
    home::unlock(text(req, "userName")?, &passwords).map_err(StorageError::from)?;
    Ok(json!({}))
}

pub fn remove(req: &Map<String, Value>) -> Result<Value, StorageError> {
    let image = text(req, "imagePath")?;
    std::fs::remove_file(image).map_err(|e| StorageError::io(format!("removing {image}"), e))?;
    Ok(json!({}))
}

/// `inspect` (homework's inspect, for fixating a home found in `/home`): opens the image read
/// only, gets the volume key from the passwords, and returns the header token's record (which
/// must be signed by a key in `keyDirs`) with the binding values read from the image. Nothing
/// is activated or written.
pub fn inspect(req: &Map<String, Value>) -> Result<Value, StorageError> {
    let user = text(req, "userName")?;
    let owner = match req.get("realm").and_then(Value::as_str) {
        Some(realm) => format!("{user}@{realm}"),
        None => user.to_owned(),
    };
    let passwords = passwords(req)?;
    let image_path = PathBuf::from(text(req, "imagePath")?);
    let keys = TrustedKeys::load_from(&key_dirs(req));
    let mut image = homed_shared::luks::LuksImage::open(&image_path, Some(&owner), true)
        .map_err(StorageError::from)?;
    let found = image
        .inspect(&passwords, Some(&keys))
        .map_err(StorageError::from)?;
    if found.record.user_name() != user
        || found.record.realm() != req.get("realm").and_then(Value::as_str)
    {
        return Err(StorageError::new(
            libc::EUCLEAN,
            format!(
                "the record in the LUKS header of {} belongs to another user",
                image_path.display()
            ),
        ));
    }
    Ok(json!({
        "identity": found.record.to_pretty_string(),
        "binding": found.binding_fields(),
    }))
}

/// The folders whose keys the request says to trust.
fn key_dirs(req: &Map<String, Value>) -> Vec<PathBuf> {
    req.get("keyDirs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The environment variable of the password-change test hook (debug builds only): set to one of
/// [`PASSWD_KILL_STEPS`], the worker (or, for `after-host-record`, the daemon) kills itself with
/// SIGKILL when the change reaches that step, as a crash or a power cut there would.
pub(crate) const TEST_KILL_VAR: &str = "HOMED_TEST_KILL_AT";

/// The steps of a LUKS password change, in order, by the names [`TEST_KILL_VAR`] takes.
pub(crate) const PASSWD_KILL_STEPS: [&str; 6] = [
    "before-new-keyslot",
    "after-new-keyslot",
    "after-host-record",
    "after-old-keyslot-removed",
    "after-header-record",
    "after-identity",
];

/// Kills this process at `step` when the test hook asks for it; does nothing in release builds.
pub(crate) fn test_kill_point(step: &str) {
    debug_assert!(PASSWD_KILL_STEPS.contains(&step));
    if cfg!(debug_assertions) && std::env::var_os(TEST_KILL_VAR).is_some_and(|v| v == step) {
        eprintln!("{TEST_KILL_VAR}: killed at {step}");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

fn slot_list(req: &Map<String, Value>, key: &str) -> Result<Vec<u32>, StorageError> {
    req.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| StorageError::new(libc::EINVAL, format!("request lacks {key}")))?
        .iter()
        .map(|v| {
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| StorageError::new(libc::EINVAL, format!("bad slot in {key}")))
        })
        .collect()
}

/// Runs `work` on the home's LUKS2 header: through the active device-mapper device when the
/// home is active (the daemon holds the image lock then), else on the image file, locked like
/// an activation would lock it, over a loop device.
fn with_header<T>(
    req: &Map<String, Value>,
    user: &str,
    work: impl FnOnce(&mut LuksContainer) -> Result<T, LuksError>,
) -> Result<T, StorageError> {
    if flag(req, "active") {
        let mut container = LuksContainer::active(&dm_name(user)).map_err(StorageError::from)?;
        return work(&mut container).map_err(StorageError::from);
    }
    use std::os::unix::fs::OpenOptionsExt as _;
    let image_path = PathBuf::from(text(req, "imagePath")?);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&image_path)
        .map_err(|e| StorageError::io(format!("opening {}", image_path.display()), e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(StorageError::from(LuksError::InUse(
                image_path.display().to_string(),
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(StorageError::io("locking the image", e));
        }
    }
    let mut image = homed_shared::luks::LuksImage::open_file(file, &image_path, Some(user), false)
        .map_err(StorageError::from)?;
    work(image.container()).map_err(StorageError::from)
}

/// `passwd-keyslots`, the first half of a password change: one new keyslot per new password,
/// bound to the volume key that the old passwords open. The old keyslots stay, so a crash from
/// here until the daemon has saved the new host record leaves a home the old password opens.
/// The secret carries the new passwords first (`newPasswords` of them), then the old ones.
/// Replies with the keyslots that were there before and the ones added.
pub fn passwd_keyslots(req: &Map<String, Value>) -> Result<Value, StorageError> {
    let (record, machine) = host_record(req)?;
    let user = record.user_name().to_owned();
    let settings = LuksSettings::from_view(&record.view(&machine));
    let all = passwords(req)?;
    let count = req
        .get("newPasswords")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (1..all.len()).contains(n))
        .ok_or_else(|| {
            StorageError::new(libc::EINVAL, "the request needs new and old passwords")
        })?;
    let (new, old) = all.split_at(count);
    test_kill_point("before-new-keyslot");
    let (old_slots, new_slots) = with_header(req, &user, |container| {
        let (volume_key, _) = container.volume_key(old)?;
        let old_slots = container.active_keyslots()?;
        let mut new_slots = Vec::new();
        for password in new {
            match container.add_password(&volume_key, password, &settings.pbkdf) {
                Ok(slot) => new_slots.push(slot),
                Err(e) => {
                    // Leave no keyslot of a change that did not happen.
                    for slot in new_slots {
                        let _ = container.remove_keyslot(slot);
                    }
                    return Err(e);
                }
            }
        }
        Ok((old_slots, new_slots))
    })?;
    test_kill_point("after-new-keyslot");
    Ok(json!({"oldKeyslots": old_slots, "newKeyslots": new_slots}))
}

/// `passwd-record`, the second half of a password change, after the daemon saved the new host
/// record: the old keyslots (`oldKeyslots`) are wiped, then the header token and `~/.identity`
/// get the record's embedded copy. The secret holds the new passwords. An inactive home is
/// activated for the `~/.identity` write under a private home directory and deactivated again,
/// as homework does for a password change.
pub fn passwd_record(req: &Map<String, Value>) -> Result<Value, StorageError> {
    let (record, machine) = host_record(req)?;
    let view = record.view(&machine);
    let user = record.user_name().to_owned();
    let settings = LuksSettings::from_view(&view);
    let new = passwords(req)?;
    let retire = slot_list(req, "oldKeyslots")?;
    let keep = slot_list(req, "newKeyslots")?;
    if keep.is_empty() || keep.iter().any(|s| retire.contains(s)) {
        return Err(StorageError::new(
            libc::EINVAL,
            "the keyslots to remove and to keep overlap",
        ));
    }
    let (uid, gid) = (number(req, "uid")?, number(req, "gid")?);
    let embedded = record.embedded_copy();
    let identity = embedded.to_pretty_string();

    // The host record asks for the new password now: the old keyslots go first, so that a
    // crash from here on leaves no keyslot of the old password behind; the older copies of the
    // record in the header and ~/.identity are brought forward by the next activation.
    let volume_key = with_header(req, &user, |container| {
        let (volume_key, _) = container.volume_key(&new)?;
        let active = container.active_keyslots()?;
        if let Some(missing) = keep.iter().find(|s| !active.contains(s)) {
            return Err(LuksError::Refused(format!(
                "keyslot {missing} of the new password is gone"
            )));
        }
        for slot in retire.iter().filter(|s| active.contains(s)) {
            container.remove_keyslot(*slot)?;
        }
        Ok(volume_key)
    })?;
    test_kill_point("after-old-keyslot-removed");

    with_header(req, &user, |container| {
        container.set_token_record(&volume_key, &embedded)
    })?;
    drop(volume_key);
    test_kill_point("after-header-record");

    if flag(req, "active") {
        directory::write_identity(text(req, "homeDirectory")?, &identity, uid, gid)?;
    } else {
        write_identity_inactive(req, &user, &settings, &new, &identity, (uid, gid))?;
    }
    test_kill_point("after-identity");
    Ok(json!({}))
}

/// Where an inactive home is mounted while a password change writes its `~/.identity`.
const PASSWD_MOUNT_ROOT: &str = "/run/systemd/user-home-passwd";

fn write_identity_inactive(
    req: &Map<String, Value>,
    user: &str,
    settings: &LuksSettings,
    passwords: &[SecretString],
    identity: &str,
    (uid, gid): (u32, u32),
) -> Result<(), StorageError> {
    let image_path = PathBuf::from(text(req, "imagePath")?);
    let mount_point = work_folder_in(PASSWD_MOUNT_ROOT, user);
    // The whole visit happens in a mount namespace of its own: the home, mounted only to
    // rewrite `~/.identity`, is never seen (or held open) by anyone else.
    let private = home::PrivateMounts::enter().map_err(StorageError::from)?;
    let activated = home::activate(&home::ActivateRequest {
        user_name: user,
        image_path: &image_path,
        home_directory: &mount_point,
        settings,
        passwords,
        uid,
        gid,
        mount_flags: HomeMountFlags::default(),
        work_dir: &work_dir(user),
        trusted_keys: None,
    })
    .map_err(StorageError::from)?;
    let written = directory::write_identity(&mount_point.to_string_lossy(), identity, uid, gid);
    let closed = home::deactivate(user, &mount_point, &image_path).map_err(StorageError::from);
    drop(activated);
    drop(private);
    let _ = std::fs::remove_dir(&mount_point);
    written.and(closed)
}
