//! `homed-vm-check`: runs inside the qemu guest, where the kernel has device-mapper, and drives
//! homed_shared's LUKS code through real dm-crypt. Each scenario exits 0 on success and prints
//! what it checked; the guest's /init turns exit codes into one PASS/FAIL line per scenario.
//!
//!     homed-vm-check dmcrypt-lifecycle WORKDIR
//!     homed-vm-check home ext4|btrfs|xfs WORKDIR
//!     homed-vm-check fixture-252 FIXTUREDIR WORKDIR
//!     homed-vm-check secrets-after-lock WORKDIR
//!     homed-vm-check bad-images WORKDIR
//!     homed-vm-check bench WORKDIR                     (timings of our engine, one line)
//!     homed-vm-check powercut-write DISK MOUNTPOINT   (never returns: the host kills qemu)
//!     homed-vm-check powercut-verify DISK MOUNTPOINT
//!     homed-vm-check records-agree USER IMAGE IDENTITY  (helper: host record, header token and
//!                                          ~/.identity agree; $CHECK_PASSWORD opens the header)
//!     homed-vm-check newer-record FILE KEY REAL-NAME  (helper: FILE's embedded record made
//!                                          newer, with that real name, signed by KEY)
//!     homed-vm-check direct-read FILE      (helper: one O_DIRECT read, prints the bytes)
//!     homed-vm-check as-user UID GID CMD...  (helper: CMD as that user, no other groups)
//!     homed-vm-check search-memory PID     (helper: is $SEARCH_SECRET in that process's memory?)
//!     homed-vm-check search-core CORE USER IMAGE  (helper: neither $SEARCH_SECRET nor the volume
//!                                          key it opens is in CORE; $SEARCH_PRESENT is)
//!     homed-vm-check write-synced DIR UID GID   (helper: writes and syncs files until killed)
//!     homed-vm-check check-synced DIR N    (helper: the files write-synced reported up to N)
//!     homed-vm-check dirty IMAGE           (helper: prints dirty or clean)
//!     homed-vm-check verify-records PUBLIC USER HOST-RECORD IDENTITY IMAGE
//!                                          (helper: the three record copies; $CHECK_PASSWORD)

#![forbid(unsafe_code)]

use std::error::Error;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use homed_shared::password::hash_password;
use homed_shared::signing::{PublicKey, SigningKey, TrustedKeys, sign_record};
use homed_shared::{MachineContext, RecordOrigin, UserRecord};
use homed_storage::luks::{
    FsType, ImageLayout, LuksError, LuksImage, LuksSettings, Pbkdf, dm_name, home,
};
use nix::mount::{MsFlags, mount, umount};
use secrecy::SecretString;

type Outcome = Result<(), Box<dyn Error>>;

const MIB: u64 = 1024 * 1024;
const USER: &str = "alice";
const PASSWORD: &str = "Alice-vm-pw-1";
const CONTENT: &[u8] = b"written before the lock\n";

fn fail(msg: impl Into<String>) -> Box<dyn Error> {
    msg.into().into()
}

fn step(text: &str) {
    println!("  - {text}");
}

/// Polls `cond` until it holds or `secs` pass.
fn wait_until(secs: u64, what: &str, cond: impl FnMut() -> bool) -> Outcome {
    if !homed_shared::wait::wait_until(Duration::from_secs(secs), cond) {
        return Err(fail(format!("timed out waiting for {what}")));
    }
    Ok(())
}

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

fn settings() -> LuksSettings {
    LuksSettings {
        pbkdf: Pbkdf::minimal(),
        ..LuksSettings::default()
    }
}

fn record(key: &SigningKey) -> Result<UserRecord, Box<dyn Error>> {
    record_for(USER, key)
}

fn record_for(user: &str, key: &SigningKey) -> Result<UserRecord, Box<dyn Error>> {
    let hash = hash_password(&secret(PASSWORD))?;
    let text = format!(
        r#"{{"userName":"{user}","uid":60100,"gid":60100,"storage":"luks","disposition":"regular",
            "privileged":{{"hashedPassword":["{hash}"]}}}}"#
    );
    let mut record = UserRecord::parse(text.as_bytes(), RecordOrigin::Request)?;
    sign_record(&mut record, key);
    Ok(record)
}

/// The `/sys/block/dm-N` folder of the device-mapper device `name`.
fn dm_sysfs(name: &str) -> Option<PathBuf> {
    fs::read_dir("/sys/block").ok()?.flatten().find_map(|e| {
        let dir = e.path();
        let dm = fs::read_to_string(dir.join("dm/name")).ok()?;
        (dm.trim() == name).then_some(dir)
    })
}

fn dm_suspended(name: &str) -> Result<bool, Box<dyn Error>> {
    let dir = dm_sysfs(name).ok_or_else(|| fail(format!("no dm device {name}")))?;
    Ok(fs::read_to_string(dir.join("dm/suspended"))?.trim() == "1")
}

fn loop_attached(loop_path: &Path) -> bool {
    let name = loop_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    name.is_some_and(|n| Path::new(&format!("/sys/block/{n}/loop/backing_file")).exists())
}

fn mkfs_ext4(device: &Path) -> Outcome {
    let status = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", USER])
        .arg(device)
        .status()?;
    if !status.success() {
        return Err(fail(format!("mkfs.ext4 failed: {status}")));
    }
    Ok(())
}

fn mount_home(device: &Path, target: &Path) -> Outcome {
    fs::create_dir_all(target)?;
    mount(
        Some(device),
        target,
        Some("ext4"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_RELATIME,
        None::<&str>,
    )?;
    Ok(())
}

fn spawn_direct_read(file: &Path) -> Result<Child, Box<dyn Error>> {
    Ok(Command::new(std::env::current_exe()?)
        .arg("direct-read")
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()?)
}

/// Format, activate, mkfs, mount, write, lock (syncfs + crypt_suspend), check that I/O blocks,
/// refuse a wrong password, unlock with the right one, check the blocked read completes,
/// deactivate, and find the file again after a fresh activation.
fn dmcrypt_lifecycle(workdir: &Path) -> Outcome {
    fs::create_dir_all(workdir)?;
    let image_path = workdir.join(format!("{USER}.home"));
    let mount_point = workdir.join("mnt");
    let key = SigningKey::generate()?;
    let record = record(&key)?;
    let name = dm_name(USER);
    let layout = ImageLayout {
        size: 64 * MIB,
        preallocate: true,
    };

    let (mut image, volume_key) = LuksImage::create(
        &image_path,
        USER,
        &settings(),
        &layout,
        &[secret(PASSWORD)],
        &record,
    )?;
    step("image created (GPT + LUKS2 + token)");
    let device = image.activate(USER, &volume_key, false)?;
    wait_until(10, "the dm device node", || device.exists())?;
    step(&format!("activated {}", device.display()));
    drop(volume_key);
    mkfs_ext4(&device)?;
    mount_home(&device, &mount_point)?;
    let home = mount_point.join(USER);
    fs::create_dir_all(&home)?;
    let file = home.join("note.txt");
    {
        let mut f = File::create(&file)?;
        f.write_all(CONTENT)?;
        f.sync_all()?;
    }
    step("ext4 made, mounted nosuid,nodev, file written");

    // Lock: syncfs, then suspend; the key leaves the kernel.
    nix::unistd::syncfs(File::open(&mount_point)?)?;
    image.container().suspend(&name)?;
    if !dm_suspended(&name)? {
        return Err(fail("dm-crypt does not report the device suspended"));
    }
    step("locked: dm reports suspended");

    let mut reader = spawn_direct_read(&file)?;
    // The read must still be waiting a while later (it blocks on the suspended device).
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        if let Some(status) = reader.try_wait()? {
            return Err(fail(format!(
                "an O_DIRECT read finished while locked ({status})"
            )));
        }
        #[expect(
            clippy::disallowed_methods,
            reason = "an observation window: a read that stays blocked can only be seen by waiting"
        )]
        std::thread::sleep(Duration::from_millis(50));
    }
    step("an O_DIRECT read blocks while locked");

    match image.unlock(&[secret("not-the-password")]) {
        Err(LuksError::BadPassword) => {}
        Err(e) => return Err(fail(format!("wrong password gave {e}"))),
        Ok(_) => return Err(fail("a wrong password unlocked the volume")),
    }
    if !dm_suspended(&name)? {
        return Err(fail("a wrong password resumed the device"));
    }
    step("a wrong password leaves it locked");

    let volume_key = image.unlock(&[secret(PASSWORD)])?;
    image.container().resume(&name, &volume_key)?;
    drop(volume_key);
    if dm_suspended(&name)? {
        return Err(fail("still suspended after resume"));
    }
    wait_until(20, "the blocked read to complete", || {
        matches!(reader.try_wait(), Ok(Some(_)))
    })?;
    let output = reader.wait_with_output()?;
    if !output.status.success() || !output.stdout.starts_with(CONTENT) {
        return Err(fail(format!(
            "the blocked read returned {:?} ({})",
            String::from_utf8_lossy(&output.stdout),
            output.status
        )));
    }
    step("unlocked with the password; the blocked read completed with the data");

    umount(&mount_point)?;
    image.container().deactivate(&name, false)?;
    let loop_path = image.loop_device().path().to_owned();
    drop(image);
    wait_until(10, "the dm device to go", || {
        dm_sysfs(&name).is_none() && !device.exists()
    })?;
    wait_until(10, "the loop device to detach", || {
        !loop_attached(&loop_path)
    })?;
    step("deactivated: no dm device, no loop device left");

    // A second activation from the image alone finds the file and the signed record.
    let mut image = LuksImage::open(&image_path, Some(USER), false)?;
    let volume_key = image.unlock(&[secret(PASSWORD)])?;
    let keys = TrustedKeys::new(None, vec![("vm.public".into(), key.public_key())]);
    image.trusted_record(&volume_key, &keys)?;
    let device = image.activate(USER, &volume_key, false)?;
    drop(volume_key);
    wait_until(10, "the dm device node", || device.exists())?;
    mount_home(&device, &mount_point)?;
    let mut text = Vec::new();
    File::open(&file)?.read_to_end(&mut text)?;
    umount(&mount_point)?;
    image.container().deactivate(&name, false)?;
    drop(image);
    if text != CONTENT {
        return Err(fail("the file changed across activations"));
    }
    step("second activation: record verifies, file intact");
    fs::remove_file(&image_path)?;
    Ok(())
}

fn mount_options_of(path: &Path) -> Option<String> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.to_str()?;
    text.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        (fields.len() > 5 && fields[4] == want).then(|| fields[5].to_owned())
    })
}

fn owner_of(path: &Path) -> Result<(u32, u32), Box<dyn Error>> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path)?;
    Ok((m.uid(), m.gid()))
}

/// Checks that an active home is mounted nosuid,nodev and owned by the user.
fn check_active_home(home: &Path, uid: u32) -> Outcome {
    let options = mount_options_of(home).ok_or_else(|| fail("the home is not a mount point"))?;
    // Linux 6.1 has idmapped mounts for ext4, btrfs and xfs, so the files stay 65534 on disk.
    for wanted in ["nosuid", "nodev", "idmapped"] {
        if !options.split(',').any(|o| o == wanted) {
            return Err(fail(format!(
                "the home is mounted {options}, without {wanted}"
            )));
        }
    }
    let (owner, _) = owner_of(home)?;
    if owner != uid {
        return Err(fail(format!("the home belongs to {owner}, not {uid}")));
    }
    step(&format!("active: mounted {options}, owned by {uid}"));
    Ok(())
}

/// Create, activate, write, lock (I/O blocks), wrong password, unlock, deactivate, activate
/// again: through the `luks::home` engine with `fs` inside.
fn home_lifecycle(fs_name: &str, workdir: &Path) -> Outcome {
    let fs_type = FsType::parse(fs_name).ok_or_else(|| fail("unknown file system"))?;
    let user = format!("u{fs_name}");
    let uid = 60111;
    fs::create_dir_all(workdir)?;
    let image_path = workdir.join(format!("{user}.home"));
    let home_dir = workdir.join("home").join(&user);
    let work = workdir.join("work");
    let key = SigningKey::generate()?;
    let record = record_for(&user, &key)?;
    let passwords = [secret(PASSWORD)];
    let settings = settings();
    home::create(
        &home::CreateRequest {
            user_name: &user,
            image_path: &image_path,
            settings: &settings,
            fs_type,
            size: 320 * MIB,
            passwords: &passwords,
            record: &record,
            work_dir: &work,
        },
        |home| {
            let skel = home.join(".profile");
            fs::write(&skel, "# skeleton\n").map_err(|e| LuksError::Refused(e.to_string()))?;
            std::os::unix::fs::lchown(&skel, Some(home::STORED_UID), Some(home::STORED_UID))
                .map_err(|e| LuksError::Refused(e.to_string()))
        },
    )?;
    if home::is_dirty(&image_path)? {
        return Err(fail("a new image is marked dirty"));
    }
    let leftovers: Vec<_> = fs::read_dir(workdir)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".#"))
        .collect();
    if !leftovers.is_empty() {
        return Err(fail("temporary images left behind"));
    }
    step(&format!("created {} with {fs_name}", image_path.display()));

    let activate = |passwords: &[SecretString]| {
        home::activate(&home::ActivateRequest {
            user_name: &user,
            image_path: &image_path,
            home_directory: &home_dir,
            settings: &settings,
            passwords,
            uid,
            gid: uid,
            mount_flags: home::HomeMountFlags::default(),
            work_dir: &work,
            trusted_keys: None,
        })
    };
    match activate(&[secret("wrong")]) {
        Err(LuksError::BadPassword) => {}
        Err(e) => return Err(fail(format!("a wrong password gave: {e}"))),
        Ok(_) => return Err(fail("a wrong password activated the home")),
    }
    if home::is_suspended(&user).is_some() || home::is_dirty(&image_path)? {
        return Err(fail(
            "a refused activation left a device or the dirty marker",
        ));
    }
    step("a wrong password is refused, nothing left behind");

    let active = activate(&passwords)?;
    check_active_home(&home_dir, uid)?;
    if active.fs_type != fs_type || !home::is_dirty(&image_path)? {
        return Err(fail("wrong file system or no dirty marker while active"));
    }
    let keys = TrustedKeys::new(None, vec![("vm.public".into(), key.public_key())]);
    if !keys.verdict(&active.header_record)?.is_trusted() {
        return Err(fail("the header record does not verify"));
    }
    let identity = UserRecord::parse(
        active
            .identity
            .as_deref()
            .ok_or_else(|| fail("no ~/.identity"))?,
        RecordOrigin::Embedded,
    )?;
    if identity.json() != record.embedded_copy().json() {
        return Err(fail("~/.identity differs from the record"));
    }
    if owner_of(&home_dir.join(".profile"))?.0 != uid {
        return Err(fail("the skeleton file is not the user's"));
    }
    // Big and incompressible, so that btrfs keeps it in a regular extent (inline or compressed
    // extents are read through the page cache even with O_DIRECT).
    let note = home_dir.join("note.txt");
    let mut data = CONTENT.to_vec();
    let mut noise = vec![0u8; 256 * 1024];
    File::open("/dev/urandom")?.read_exact(&mut noise)?;
    data.extend_from_slice(&noise);
    {
        let mut f = File::create(&note)?;
        f.write_all(&data)?;
        f.sync_all()?;
    }
    step("header record and ~/.identity verify; file written");
    // Nothing of the home stays cached: the read below has to reach the device.
    fs::write("/proc/sys/vm/drop_caches", "3\n")?;

    home::lock(&user, &home_dir)?;
    if home::is_suspended(&user) != Some(true) {
        return Err(fail("not suspended after lock"));
    }
    let mut reader = spawn_direct_read(&note)?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        if reader.try_wait()?.is_some() {
            return Err(fail("a read finished while locked"));
        }
        #[expect(
            clippy::disallowed_methods,
            reason = "an observation window: a read that stays blocked can only be seen by waiting"
        )]
        std::thread::sleep(Duration::from_millis(50));
    }
    match home::unlock(&user, &[secret("wrong")]) {
        Err(LuksError::BadPassword) => {}
        other => {
            return Err(fail(format!(
                "unlock with a wrong password: {:?}",
                other.err()
            )));
        }
    }
    if home::is_suspended(&user) != Some(true) {
        return Err(fail("a wrong password resumed the home"));
    }
    step("locked: suspended, reads block, a wrong password keeps it locked");
    home::unlock(&user, &passwords)?;
    wait_until(20, "the blocked read", || {
        matches!(reader.try_wait(), Ok(Some(_)))
    })?;
    let out = reader.wait_with_output()?;
    if !out.stdout.starts_with(CONTENT) {
        return Err(fail("the blocked read returned the wrong data"));
    }
    step("unlocked: the blocked read completed");

    drop(active.image_lock);
    home::deactivate(&user, &home_dir, &image_path)?;
    if home::is_suspended(&user).is_some() || mount_options_of(&home_dir).is_some() {
        return Err(fail("still active after deactivate"));
    }
    if home::is_dirty(&image_path)? {
        return Err(fail("dirty after a clean deactivate"));
    }
    let image_name = image_path.to_string_lossy().into_owned();
    let loops = fs::read_dir("/sys/block")?
        .flatten()
        .filter(|e| {
            fs::read_to_string(e.path().join("loop/backing_file"))
                .is_ok_and(|b| b.trim() == image_name)
        })
        .count();
    if loops != 0 {
        return Err(fail(format!("{loops} loop devices left")));
    }
    step("deactivated: nothing mounted, no dm or loop device, not dirty");

    let active = activate(&passwords)?;
    if fs::read(&note)? != data {
        return Err(fail("the file is gone after reactivation"));
    }
    drop(active.image_lock);
    home::deactivate(&user, &home_dir, &image_path)?;
    step("second activation finds the file");
    fs::remove_file(&image_path)?;
    Ok(())
}

/// The image systemd-homed 252 made activates through our engine with its password.
fn fixture_252(fixture: &Path, workdir: &Path) -> Outcome {
    fs::create_dir_all(workdir)?;
    let image_path = workdir.join("dave.home");
    let status = Command::new("zstd")
        .args(["-d", "-q", "-f", "-o"])
        .arg(&image_path)
        .arg(fixture.join("dave.home.zst"))
        .status()?;
    if !status.success() {
        return Err(fail("zstd -d failed"));
    }
    let machine = MachineContext::from_machine_id_file(&fixture.join("machine-id"))?;
    let host = UserRecord::parse(
        &fs::read(fixture.join("dave.identity"))?,
        RecordOrigin::Host,
    )?;
    let view = host.view(&machine);
    let uid = view.uid().ok_or_else(|| fail("no uid"))?;
    let settings = LuksSettings::from_view(&view);
    let home_dir = workdir.join("home/dave");
    let active = home::activate(&home::ActivateRequest {
        user_name: "dave",
        image_path: &image_path,
        home_directory: &home_dir,
        settings: &settings,
        passwords: &[secret("Dave-pw-789")],
        uid,
        gid: view.gid().unwrap_or(uid),
        mount_flags: home::HomeMountFlags::default(),
        work_dir: &workdir.join("work"),
        trusted_keys: None,
    })?;
    check_active_home(&home_dir, uid)?;
    let public = PublicKey::from_pem(&fs::read_to_string(fixture.join("local.public"))?)?;
    let keys = TrustedKeys::new(None, vec![("local.public".into(), public)]);
    if !keys.verdict(&active.header_record)?.is_trusted() {
        return Err(fail("the header record does not verify"));
    }
    let identity = UserRecord::parse(
        active
            .identity
            .as_deref()
            .ok_or_else(|| fail("no ~/.identity"))?,
        RecordOrigin::Embedded,
    )?;
    if !keys.verdict(&identity)?.is_trusted() || identity.user_name() != "dave" {
        return Err(fail("~/.identity does not verify"));
    }
    fs::write(home_dir.join("from-our-engine"), "hello\n")?;
    step(&format!(
        "homed 252's image: active as uid {uid}, header record and ~/.identity verify"
    ));
    drop(active.image_lock);
    home::deactivate("dave", &home_dir, &image_path)?;
    step("deactivated");
    Ok(())
}

/// Times our engine the way the issue's benchmark times systemd-homed 252 (64 MiB ext4 home,
/// PBKDF2 at its cheapest): create, activate, lock, unlock, deactivate. Prints one line.
fn bench(workdir: &Path) -> Outcome {
    fs::create_dir_all(workdir)?;
    let user = "benchuser";
    let image_path = workdir.join(format!("{user}.home"));
    let home_dir = workdir.join("home").join(user);
    let work = workdir.join("work");
    let key = SigningKey::generate()?;
    let record = record_for(user, &key)?;
    let passwords = [secret(PASSWORD)];
    let settings = settings();
    let ms = |t: Instant| t.elapsed().as_millis();
    let t = Instant::now();
    home::create(
        &home::CreateRequest {
            user_name: user,
            image_path: &image_path,
            settings: &settings,
            fs_type: FsType::Ext4,
            size: 64 * MIB,
            passwords: &passwords,
            record: &record,
            work_dir: &work,
        },
        |_| Ok(()),
    )?;
    let create = ms(t);
    let t = Instant::now();
    let active = home::activate(&home::ActivateRequest {
        user_name: user,
        image_path: &image_path,
        home_directory: &home_dir,
        settings: &settings,
        passwords: &passwords,
        uid: 60444,
        gid: 60444,
        mount_flags: home::HomeMountFlags::default(),
        work_dir: &work,
        trusted_keys: None,
    })?;
    let activate = ms(t);
    let t = Instant::now();
    home::lock(user, &home_dir)?;
    let lock = ms(t);
    let t = Instant::now();
    home::unlock(user, &passwords)?;
    let unlock = ms(t);
    drop(active.image_lock);
    let t = Instant::now();
    home::deactivate(user, &home_dir, &image_path)?;
    let deactivate = ms(t);
    println!(
        "  | bench ours create={create} activate={activate} lock={lock} unlock={unlock} deactivate={deactivate}"
    );
    fs::remove_file(&image_path)?;
    Ok(())
}

/// Bad input on real dm-crypt (acceptance 7): a truncated image, destroyed LUKS headers and a
/// header record signed by a key we do not trust are refused with a clear error, and nothing is
/// left active, mounted or marked, and nothing in the image is overwritten.
fn bad_images(workdir: &Path) -> Outcome {
    use std::os::unix::fs::FileExt;
    fs::create_dir_all(workdir)?;
    let user = "baduser";
    let good = workdir.join("good.home");
    let home_dir = workdir.join("home").join(user);
    let work = workdir.join("work");
    let key = SigningKey::generate()?;
    let stranger = SigningKey::generate()?;
    let record = record_for(user, &key)?;
    let settings = settings();
    home::create(
        &home::CreateRequest {
            user_name: user,
            image_path: &good,
            settings: &settings,
            fs_type: FsType::Ext4,
            size: 64 * MIB,
            passwords: &[secret(PASSWORD)],
            record: &record,
            work_dir: &work,
        },
        |_| Ok(()),
    )?;
    let ours = TrustedKeys::new(None, vec![("ours.public".into(), key.public_key())]);
    let theirs = TrustedKeys::new(None, vec![("other.public".into(), stranger.public_key())]);
    type Mutation = fn(&File) -> std::io::Result<()>;
    let cases: [(&str, Mutation, &TrustedKeys); 3] = [
        ("truncated", |f| f.set_len(12 * MIB), &ours),
        (
            "headers destroyed",
            |f| {
                f.write_all_at(&[0x55; 4096], MIB)?;
                f.write_all_at(&[0x55; 4096], 5 * MIB)
            },
            &ours,
        ),
        ("untrusted signer", |_| Ok(()), &theirs),
    ];
    for (name, mutate, keys) in cases {
        let path = workdir.join(format!("{user}.home"));
        fs::copy(&good, &path)?;
        mutate(&OpenOptions::new().write(true).open(&path)?)?;
        let before = fs::read(&path)?;
        let outcome = home::activate(&home::ActivateRequest {
            user_name: user,
            image_path: &path,
            home_directory: &home_dir,
            settings: &settings,
            passwords: &[secret(PASSWORD)],
            uid: 60666,
            gid: 60666,
            mount_flags: home::HomeMountFlags::default(),
            work_dir: &work,
            trusted_keys: Some(keys),
        });
        let err = match outcome {
            Ok(_) => return Err(fail(format!("{name}: the image was activated"))),
            Err(e) => e,
        };
        if home::is_suspended(user).is_some()
            || mount_options_of(&home_dir).is_some()
            || mount_options_of(&work).is_some()
        {
            return Err(fail(format!("{name}: something stayed active or mounted")));
        }
        if home::is_dirty(&path)? || fs::read(&path)? != before {
            return Err(fail(format!("{name}: the image was changed or left dirty")));
        }
        step(&format!(
            "{name}: refused ({err}); nothing active, mounted or written"
        ));
        fs::remove_file(&path)?;
    }
    fs::remove_file(&good)?;
    Ok(())
}

/// A secret kept only XOR-masked, so this process holds no plain copy while it searches
/// its own memory for one.
struct Masked {
    masked: Vec<u8>,
    mask: Vec<u8>,
}

impl Masked {
    fn new(plain: &[u8]) -> Result<Self, Box<dyn Error>> {
        let mut mask = vec![0u8; plain.len()];
        File::open("/dev/urandom")?.read_exact(&mut mask)?;
        let masked = plain.iter().zip(&mask).map(|(p, m)| p ^ m).collect();
        Ok(Masked { masked, mask })
    }

    /// The plain secret, built in place (no reallocation leaves copies behind).
    fn reveal(&self) -> SecretString {
        let mut text = String::with_capacity(self.masked.len());
        for (c, m) in self.masked.iter().zip(&self.mask) {
            text.push(char::from(c ^ m));
        }
        SecretString::from(text)
    }

    fn found_in(&self, hay: &[u8]) -> bool {
        let n = self.masked.len();
        hay.windows(n).any(|w| {
            w[0] ^ self.mask[0] == self.masked[0]
                && w.iter()
                    .zip(&self.mask)
                    .zip(&self.masked)
                    .all(|((b, m), x)| b ^ m == *x)
        })
    }
}

/// Which of `secrets` occur anywhere in this process's writable memory.
fn search_own_memory(secrets: &[(&str, &Masked)]) -> Result<Vec<String>, Box<dyn Error>> {
    search_memory("self", secrets)
}

/// Which of `secrets` occur anywhere in the writable memory of process `pid` (what a core dump
/// of it would hold).
fn search_memory(pid: &str, secrets: &[(&str, &Masked)]) -> Result<Vec<String>, Box<dyn Error>> {
    use std::io::{Seek, SeekFrom};
    let maps = fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let mut mem = File::open(format!("/proc/{pid}/mem"))?;
    let mut found = Vec::new();
    let mut buf = vec![0u8; MIB as usize + 64];
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !perms.starts_with("rw") {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (start, end) = (
            u64::from_str_radix(start, 16)?,
            u64::from_str_radix(end, 16)?,
        );
        let mut at = start;
        while at < end {
            let len = (end - at).min(buf.len() as u64) as usize;
            mem.seek(SeekFrom::Start(at))?;
            let Ok(n) = mem.read(&mut buf[..len]) else {
                break;
            };
            for (name, secret) in secrets {
                if secret.found_in(&buf[..n]) {
                    if !found.contains(&name.to_string()) {
                        found.push(name.to_string());
                    }
                    if pid != "self" {
                        println!("  |   {name} in {line}");
                    }
                }
            }
            // Overlap the chunks so a secret across a boundary is not missed.
            at += (n.max(65) - 64) as u64;
        }
    }
    buf.fill(0);
    Ok(found)
}

/// Fails when the secret in `$SEARCH_SECRET` occurs in the writable memory of process `pid`.
/// The variable is removed from this process's environment first; the search keeps only a
/// masked copy.
fn search_process(pid: &str) -> Outcome {
    let plain = std::env::var("SEARCH_SECRET").map_err(|_| fail("SEARCH_SECRET is not set"))?;
    let masked = Masked::new(plain.as_bytes())?;
    drop(plain);
    let found = search_memory(pid, &[("the password", &masked)])?;
    if found.is_empty() {
        step(&format!(
            "process {pid}: the password is nowhere in its writable memory"
        ));
        Ok(())
    } else {
        Err(fail(format!("process {pid} holds {}", found.join(", "))))
    }
}

/// The volume key of `user`'s image, opened with `password`, masked as bytes and as the hex
/// text of a dm-crypt table line.
fn masked_volume_key(
    image: &Path,
    user: &str,
    password: &Masked,
) -> Result<(Masked, Masked), Box<dyn Error>> {
    let mut opened = LuksImage::open(image, Some(user), true)?;
    let key = opened.unlock(&[password.reveal()])?;
    let mut hex = Vec::with_capacity(2 * key.as_bytes().len());
    for b in key.as_bytes() {
        hex.push(b"0123456789abcdef"[usize::from(b >> 4)]);
        hex.push(b"0123456789abcdef"[usize::from(b & 15)]);
    }
    let masked = (Masked::new(key.as_bytes())?, Masked::new(&hex)?);
    hex.fill(0);
    Ok(masked)
}

/// Which of `secrets` occur anywhere in the file at `path`, read in overlapping chunks.
fn search_file(path: &Path, secrets: &[(&str, &Masked)]) -> Result<Vec<String>, Box<dyn Error>> {
    let overlap = secrets
        .iter()
        .map(|(_, s)| s.masked.len())
        .max()
        .unwrap_or(1);
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; MIB as usize + overlap];
    let mut kept = 0;
    let mut found = Vec::new();
    loop {
        let n = file.read(&mut buf[kept..])?;
        if n == 0 {
            break;
        }
        let filled = kept + n;
        for (name, secret) in secrets {
            if !found.contains(&name.to_string()) && secret.found_in(&buf[..filled]) {
                found.push(name.to_string());
            }
        }
        // Keep the tail, so that a copy across two reads is seen too.
        kept = filled.min(overlap - 1);
        buf.copy_within(filled - kept..filled, 0);
    }
    buf.fill(0);
    Ok(found)
}

/// Fails when the core dump `core` of the daemon holds the password in `$SEARCH_SECRET` or the
/// volume key of `user`'s image (which that password opens), raw or as hex; and when it does not
/// hold `$SEARCH_PRESENT`, a string the daemon keeps (so the search is shown to find what is
/// there).
fn search_core(core: &Path, user: &str, image: &Path) -> Outcome {
    let take =
        |name: &str| std::env::var(name).map_err(|_| fail(format!("search-core needs ${name}")));
    let password = Masked::new(take("SEARCH_SECRET")?.as_bytes())?;
    let present = Masked::new(take("SEARCH_PRESENT")?.as_bytes())?;
    let mut head = [0u8; 18];
    File::open(core)?.read_exact(&mut head)?;
    // An ELF file (\x7fELF) of type ET_CORE (4), little-endian.
    if &head[..4] != b"\x7fELF" || u16::from_le_bytes([head[16], head[17]]) != 4 {
        return Err(fail(format!("{} is not an ELF core file", core.display())));
    }
    let (volume_key, volume_key_hex) = masked_volume_key(image, user, &password)?;
    let found = search_file(
        core,
        &[
            ("the daemon's record", &present),
            ("the password", &password),
            ("the volume key", &volume_key),
            ("the volume key in hex", &volume_key_hex),
        ],
    )?;
    let size = fs::metadata(core)?.len();
    if !found.iter().any(|f| f == "the daemon's record") {
        return Err(fail(
            "the search does not find what the daemon surely holds in its core",
        ));
    }
    let secrets: Vec<&str> = found
        .iter()
        .map(String::as_str)
        .filter(|f| *f != "the daemon's record")
        .collect();
    if !secrets.is_empty() {
        return Err(fail(format!(
            "the core dump ({} KiB) holds {}",
            size / 1024,
            secrets.join(" and ")
        )));
    }
    step(&format!(
        "core dump of {} KiB: holds the daemon's record, but neither the password nor the volume key (raw or hex)",
        size / 1024
    ));
    Ok(())
}

/// After a lock, neither the password nor the volume key is left in the memory of the process
/// that activated and locked the home (acceptance 2, for the engine).
fn secrets_after_lock(workdir: &Path) -> Outcome {
    fs::create_dir_all(workdir)?;
    let user = "secretuser";
    let image_path = workdir.join(format!("{user}.home"));
    let home_dir = workdir.join("home").join(user);
    let work = workdir.join("work");
    let mut raw = [0u8; 24];
    File::open("/dev/urandom")?.read_exact(&mut raw)?;
    let mut text = [0u8; 24];
    for (t, r) in text.iter_mut().zip(raw) {
        *t = b'a' + r % 26;
    }
    let password = Masked::new(&text)?;
    text.fill(0);
    let key = SigningKey::generate()?;
    let record = record_for(user, &key)?;
    let settings = settings();
    home::create(
        &home::CreateRequest {
            user_name: user,
            image_path: &image_path,
            settings: &settings,
            fs_type: FsType::Ext4,
            size: 64 * MIB,
            passwords: &[password.reveal()],
            record: &record,
            work_dir: &work,
        },
        |_| Ok(()),
    )?;
    let (volume_key, volume_key_hex) = masked_volume_key(&image_path, user, &password)?;
    let active = home::activate(&home::ActivateRequest {
        user_name: user,
        image_path: &image_path,
        home_directory: &home_dir,
        settings: &settings,
        passwords: &[password.reveal()],
        uid: 60555,
        gid: 60555,
        mount_flags: home::HomeMountFlags::default(),
        work_dir: &work,
        trusted_keys: None,
    })?;
    // Prove the search works: a plain copy of the password planted in memory must be found.
    let planted = password.reveal();
    let seen = {
        use secrecy::ExposeSecret;
        search_own_memory(&[("password", &password)])?.len() == 1
            && !planted.expose_secret().is_empty()
    };
    drop(planted);
    if !seen {
        return Err(fail("the memory search does not find a planted password"));
    }
    home::lock(user, &home_dir)?;
    let found = search_own_memory(&[
        ("password", &password),
        ("volume key", &volume_key),
        ("volume key in hex", &volume_key_hex),
    ])?;
    if !found.is_empty() {
        return Err(fail(format!(
            "after the lock, memory still holds the {}",
            found.join(" and ")
        )));
    }
    step("after lock: neither the password nor the volume key is in this process's memory");
    home::unlock(user, &[password.reveal()])?;
    drop(active.image_lock);
    home::deactivate(user, &home_dir, &image_path)?;
    fs::remove_file(&image_path)?;
    Ok(())
}

/// Deterministic content, so the second boot can check what the first one synced.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 9) as u8))
        .collect()
}

const POWERCUT_USER: &str = "pcut";

fn powercut_paths(mnt: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        mnt.join(format!("{POWERCUT_USER}.home")),
        mnt.join("home").join(POWERCUT_USER),
        mnt.join("work"),
    )
}

fn powercut_activate(mnt: &Path) -> Result<home::Activated, Box<dyn Error>> {
    let (image_path, home_dir, work) = powercut_paths(mnt);
    Ok(home::activate(&home::ActivateRequest {
        user_name: POWERCUT_USER,
        image_path: &image_path,
        home_directory: &home_dir,
        settings: &settings(),
        passwords: &[secret(PASSWORD)],
        uid: 60222,
        gid: 60222,
        mount_flags: home::HomeMountFlags::default(),
        work_dir: &work,
        trusted_keys: None,
    })?)
}

/// First boot: a home on the virtio disk, a file synced, then writes that never stop; the host
/// kills qemu in the middle of them.
fn powercut_write(disk: &Path, mnt: &Path) -> Outcome {
    mkfs_plain(disk)?;
    fs::create_dir_all(mnt)?;
    mount(
        Some(disk),
        mnt,
        Some("ext4"),
        MsFlags::empty(),
        None::<&str>,
    )?;
    let (image_path, home_dir, work) = powercut_paths(mnt);
    let key = SigningKey::generate()?;
    fs::write(mnt.join("key.public"), key.public_key().to_pem())?;
    let record = record_for(POWERCUT_USER, &key)?;
    home::create(
        &home::CreateRequest {
            user_name: POWERCUT_USER,
            image_path: &image_path,
            settings: &settings(),
            fs_type: FsType::Ext4,
            size: 256 * MIB,
            passwords: &[secret(PASSWORD)],
            record: &record,
            work_dir: &work,
        },
        |_| Ok(()),
    )?;
    let _active = powercut_activate(mnt)?;
    {
        let mut f = File::create(home_dir.join("synced.bin"))?;
        f.write_all(&pattern(4 * MIB as usize, 7))?;
        f.sync_all()?;
    }
    nix::unistd::syncfs(File::open(&home_dir)?)?;
    nix::unistd::syncfs(File::open(mnt)?)?;
    println!("VMTEST SYNCED");
    std::io::stdout().flush()?;
    for n in 0u64.. {
        let mut f = File::create(home_dir.join(format!("unsynced-{}", n % 64)))?;
        f.write_all(&pattern(MIB as usize, n as u8))?;
        if n % 16 == 0 {
            println!("  - writing ({n} MiB)");
        }
    }
    Ok(())
}

/// Second boot: the home activates (fsck repairs what the cut left), the synced file is
/// intact, and the records still verify.
fn powercut_verify(disk: &Path, mnt: &Path) -> Outcome {
    fs::create_dir_all(mnt)?;
    mount(
        Some(disk),
        mnt,
        Some("ext4"),
        MsFlags::empty(),
        None::<&str>,
    )?;
    let (image_path, home_dir, _) = powercut_paths(mnt);
    if home::is_dirty(&image_path)? {
        step("the image is marked dirty (it was active at the cut)");
    }
    let active = powercut_activate(mnt)?;
    step("activated after the power cut (fsck ran)");
    if fs::read(home_dir.join("synced.bin"))? != pattern(4 * MIB as usize, 7) {
        return Err(fail("the synced file is damaged"));
    }
    step("everything synced before the cut is intact");
    let public = PublicKey::from_pem(&fs::read_to_string(mnt.join("key.public"))?)?;
    let keys = TrustedKeys::new(None, vec![("vm.public".into(), public)]);
    let identity = UserRecord::parse(
        active
            .identity
            .as_deref()
            .ok_or_else(|| fail("no ~/.identity"))?,
        RecordOrigin::Embedded,
    )?;
    if !keys.verdict(&active.header_record)?.is_trusted() || !keys.verdict(&identity)?.is_trusted()
    {
        return Err(fail("a record no longer verifies"));
    }
    step("the header record and ~/.identity still verify");
    drop(active.image_lock);
    home::deactivate(POWERCUT_USER, &home_dir, &image_path)?;
    if home::is_dirty(&image_path)? {
        return Err(fail("still dirty after a clean deactivate"));
    }
    umount(mnt)?;
    Ok(())
}

/// Runs `command` as `uid`:`gid` with no supplementary groups (the guest's busybox has no
/// setpriv that changes IDs): the attacker of the security scenarios.
fn as_user(uid: u32, gid: u32, command: &[String]) -> Outcome {
    use std::os::unix::process::CommandExt as _;
    nix::unistd::setgroups(&[])?;
    nix::unistd::setgid(nix::unistd::Gid::from_raw(gid))?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))?;
    let err = std::process::Command::new(&command[0])
        .args(&command[1..])
        .exec();
    Err(fail(format!("running {}: {err}", command[0])))
}

/// The name of the `n`th file `write-synced` writes and syncs.
fn synced_name(n: u64) -> String {
    format!("synced-{n}.bin")
}

/// The user's writes for the daemon's power cut: as `uid`:`gid`, one 1 MiB file after the
/// other in `dir`, each synced (file and folder) before `VMTEST SYNCED n` is printed, with an
/// unsynced file written between them; never returns (the host kills qemu).
fn write_synced(dir: &Path, uid: u32, gid: u32) -> Outcome {
    nix::unistd::setgroups(&[])?;
    nix::unistd::setgid(nix::unistd::Gid::from_raw(gid))?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))?;
    let folder =
        File::open(dir).map_err(|e| fail(format!("opening {} as {uid}: {e}", dir.display())))?;
    for n in 0u64.. {
        let path = dir.join(synced_name(n));
        let mut f = File::create(&path)
            .map_err(|e| fail(format!("creating {} as {uid}: {e}", path.display())))?;
        for chunk in pattern(MIB as usize, n as u8).chunks(64 * 1024) {
            f.write_all(chunk)?;
        }
        f.sync_all()?;
        folder.sync_all()?;
        println!("VMTEST SYNCED {n} ({} MiB synced)", n + 1);
        std::io::stdout().flush()?;
        let mut u = File::create(dir.join(format!("unsynced-{}.bin", n % 8)))?;
        u.write_all(&pattern(MIB as usize, !(n as u8)))?;
    }
    Ok(())
}

/// Every file `write-synced` reported synced, up to number `last`, is there and intact.
fn check_synced(dir: &Path, last: u64) -> Outcome {
    for n in 0..=last {
        let path = dir.join(synced_name(n));
        let data = fs::read(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        if data != pattern(MIB as usize, n as u8) {
            return Err(fail(format!("{} is damaged", path.display())));
        }
    }
    step(&format!(
        "all {} files synced before the cut are intact ({} MiB)",
        last + 1,
        last + 1
    ));
    Ok(())
}

/// Prints `dirty` or `clean`: whether the image carries homed's dirty marker.
fn print_dirty(image: &Path) -> Outcome {
    println!(
        "{}",
        if home::is_dirty(image)? {
            "dirty"
        } else {
            "clean"
        }
    );
    Ok(())
}

/// The three copies of a LUKS home's record: the host record, `~/.identity` (a copy of it
/// taken while the home was active) and the header token's record (decrypted with the
/// password in `$CHECK_PASSWORD`) all verify against `public` and agree on the user and on
/// `lastChangeUSec`.
fn verify_records(
    public: &Path,
    user: &str,
    host: &Path,
    identity: &Path,
    image: &Path,
) -> Outcome {
    let key = PublicKey::from_pem(&fs::read_to_string(public)?)?;
    let keys = TrustedKeys::new(None, vec![("local.public".into(), key)]);
    let password = std::env::var("CHECK_PASSWORD")
        .map_err(|_| fail("verify-records needs the password in $CHECK_PASSWORD"))?;
    let header = {
        let mut opened = LuksImage::open(image, Some(user), true)?;
        let volume_key = opened.unlock(&[secret(&password)])?;
        opened.container().token_record(&volume_key)?
    };
    let copies = [
        (
            "host record",
            UserRecord::parse(&fs::read(host)?, RecordOrigin::Host)?,
        ),
        (
            "~/.identity",
            UserRecord::parse(&fs::read(identity)?, RecordOrigin::Embedded)?,
        ),
        ("LUKS header record", header),
    ];
    let mut changes = Vec::new();
    for (what, record) in &copies {
        if !keys.verdict(record)?.is_trusted() {
            return Err(fail(format!("the {what} does not verify")));
        }
        if record.user_name() != user {
            return Err(fail(format!("the {what} is {}'s", record.user_name())));
        }
        changes.push(record.json().get("lastChangeUSec").cloned());
    }
    if changes.iter().any(|c| *c != changes[0]) {
        return Err(fail(format!(
            "the copies disagree on lastChangeUSec: {changes:?}"
        )));
    }
    step("the host record, ~/.identity and the LUKS header record verify and agree");
    Ok(())
}

/// After a password change: the host record `/var/lib/systemd/home/USER.identity`, the home's
/// `~/.identity` file `identity` and the LUKS header token's record (decrypted with
/// `$CHECK_PASSWORD`) have the same canonical embedded form; prints its `lastChangeUSec`, the
/// number of keyslots, and which of `$CHECK_OTHER_PASSWORD` (when set) still opens.
/// Rewrites the embedded record in `file` as a newer one: another real name, lastChangeUSec a
/// second later, signed again with the private key at `key`. The file keeps its owner and mode.
fn newer_record(file: &Path, key: &Path, real_name: &str) -> Outcome {
    let mut record = UserRecord::parse(&fs::read(file)?, RecordOrigin::Embedded)?;
    let key = SigningKey::from_pkcs8_pem(&fs::read_to_string(key)?)?;
    let last = record
        .json()
        .get("lastChangeUSec")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let json = record.json_mut();
    json.insert("realName".into(), real_name.into());
    json.insert("lastChangeUSec".into(), (last + 1_000_000).into());
    json.remove("signature");
    sign_record(&mut record, &key);
    fs::write(file, record.to_pretty_string())?;
    println!("newer record: lastChangeUSec {}", last + 1_000_000);
    Ok(())
}

fn records_agree(user: &str, image: &Path, identity: &Path) -> Outcome {
    let password = std::env::var("CHECK_PASSWORD")
        .map_err(|_| fail("records-agree needs the password in $CHECK_PASSWORD"))?;
    let host_path = PathBuf::from(format!("/var/lib/systemd/home/{user}.identity"));
    let host = UserRecord::parse(&fs::read(&host_path)?, RecordOrigin::Host)?;
    let mut opened = LuksImage::open(image, Some(user), true)?;
    let volume_key = opened.unlock(&[secret(&password)])?;
    let header = opened.container().token_record(&volume_key)?;
    let slots = opened.container().active_keyslots()?.len();
    let other_opens = match std::env::var("CHECK_OTHER_PASSWORD") {
        Ok(other) => Some(opened.unlock(&[secret(&other)]).is_ok()),
        Err(_) => None,
    };
    drop(opened);
    let embedded = UserRecord::parse(&fs::read(identity)?, RecordOrigin::Embedded)?;
    let canonical = |r: &UserRecord| r.embedded_copy().to_compact_string();
    let want = canonical(&host);
    for (what, copy) in [("LUKS header record", &header), ("~/.identity", &embedded)] {
        if canonical(copy) != want {
            return Err(fail(format!(
                "the {what} differs from the host record's embedded copy (lastChangeUSec {:?} vs {:?})",
                copy.json().get("lastChangeUSec"),
                host.json().get("lastChangeUSec")
            )));
        }
    }
    let change = host
        .json()
        .get("lastChangeUSec")
        .cloned()
        .unwrap_or_default();
    let other = match other_opens {
        Some(true) => ", the other password opens a keyslot",
        Some(false) => ", the other password opens no keyslot",
        None => "",
    };
    println!("agree: lastChangeUSec {change}, {slots} keyslot(s){other}");
    Ok(())
}

fn mkfs_plain(device: &Path) -> Outcome {
    let status = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(device)
        .status()?;
    if !status.success() {
        return Err(fail(format!("mkfs.ext4 {} failed", device.display())));
    }
    Ok(())
}

/// One O_DIRECT read of the first block of `file`, printed to stdout.
fn direct_read(file: &Path) -> Outcome {
    const ALIGN: usize = 4096;
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(file)?;
    let mut buf = vec![0u8; 2 * ALIGN];
    let start = buf.as_ptr().align_offset(ALIGN);
    let block = &mut buf[start..start + ALIGN];
    let n = f.read(block)?;
    std::io::stdout().write_all(&block[..n])?;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let outcome = match args.get(1).map(String::as_str) {
        Some("dmcrypt-lifecycle") => {
            let dir = args.get(2).map_or("/run/vmtest", String::as_str);
            dmcrypt_lifecycle(Path::new(dir))
        }
        Some("home") => match (args.get(2), args.get(3)) {
            (Some(fs_name), Some(dir)) => home_lifecycle(fs_name, Path::new(dir)),
            _ => Err(fail("home needs a file system and a folder")),
        },
        Some("fixture-252") => match (args.get(2), args.get(3)) {
            (Some(fixture), Some(dir)) => fixture_252(Path::new(fixture), Path::new(dir)),
            _ => Err(fail("fixture-252 needs the fixture folder and a folder")),
        },
        Some("powercut-write") => match (args.get(2), args.get(3)) {
            (Some(disk), Some(mnt)) => powercut_write(Path::new(disk), Path::new(mnt)),
            _ => Err(fail("powercut-write needs a disk and a folder")),
        },
        Some("powercut-verify") => match (args.get(2), args.get(3)) {
            (Some(disk), Some(mnt)) => powercut_verify(Path::new(disk), Path::new(mnt)),
            _ => Err(fail("powercut-verify needs a disk and a folder")),
        },
        Some("bad-images") => bad_images(Path::new(args.get(2).map_or("/run/bad", String::as_str))),
        Some("secrets-after-lock") => secrets_after_lock(Path::new(
            args.get(2).map_or("/run/secrets", String::as_str),
        )),
        Some("bench") => bench(Path::new(args.get(2).map_or("/run/bench", String::as_str))),
        Some("write-synced") => match (
            args.get(2),
            args.get(3).and_then(|u| u.parse().ok()),
            args.get(4).and_then(|g| g.parse().ok()),
        ) {
            (Some(dir), Some(uid), Some(gid)) => write_synced(Path::new(dir), uid, gid),
            _ => Err(fail("write-synced needs a folder, a UID and a GID")),
        },
        Some("check-synced") => match (args.get(2), args.get(3).and_then(|n| n.parse().ok())) {
            (Some(dir), Some(last)) => check_synced(Path::new(dir), last),
            _ => Err(fail(
                "check-synced needs a folder and the last synced number",
            )),
        },
        Some("dirty") => match args.get(2) {
            Some(image) => print_dirty(Path::new(image)),
            None => Err(fail("dirty needs an image")),
        },
        Some("verify-records") => match &args[2.min(args.len())..] {
            [public, user, host, identity, image] => verify_records(
                Path::new(public),
                user,
                Path::new(host),
                Path::new(identity),
                Path::new(image),
            ),
            _ => Err(fail(
                "verify-records needs PUBLIC USER HOST-RECORD IDENTITY IMAGE",
            )),
        },
        Some("search-memory") => match args.get(2) {
            Some(pid) => search_process(pid),
            None => Err(fail("search-memory needs a process ID")),
        },
        Some("search-core") => match (args.get(2), args.get(3), args.get(4)) {
            (Some(core), Some(user), Some(image)) => {
                search_core(Path::new(core), user, Path::new(image))
            }
            _ => Err(fail("search-core needs a core file, a user and an image")),
        },
        Some("newer-record") => match (args.get(2), args.get(3), args.get(4)) {
            (Some(file), Some(key), Some(real_name)) => {
                newer_record(Path::new(file), Path::new(key), real_name)
            }
            _ => Err(fail("newer-record needs FILE KEY REAL-NAME")),
        },
        Some("records-agree") => match (args.get(2), args.get(3), args.get(4)) {
            (Some(user), Some(image), Some(identity)) => {
                records_agree(user, Path::new(image), Path::new(identity))
            }
            _ => Err(fail("records-agree needs USER IMAGE IDENTITY")),
        },
        Some("direct-read") => match args.get(2) {
            Some(file) => direct_read(Path::new(file)),
            None => Err(fail("direct-read needs a file")),
        },
        Some("as-user") => match (
            args.get(2).and_then(|u| u.parse().ok()),
            args.get(3).and_then(|g| g.parse().ok()),
            args.get(4..),
        ) {
            (Some(uid), Some(gid), Some(command)) if !command.is_empty() => {
                as_user(uid, gid, command)
            }
            _ => Err(fail("as-user needs UID GID COMMAND...")),
        },
        _ => Err(fail(
            "usage: homed-vm-check dmcrypt-lifecycle DIR | home FS DIR | fixture-252 FIXTURE DIR | direct-read FILE",
        )),
    };
    if let Err(e) = outcome {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        eprintln!("homed-vm-check: {text}");
        std::process::exit(1);
    }
}
