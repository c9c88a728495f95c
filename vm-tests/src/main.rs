//! `homed-vm-check`: runs inside the qemu guest, where the kernel has device-mapper, and drives
//! homed_shared's LUKS code through real dm-crypt. Each scenario exits 0 on success and prints
//! what it checked; the guest's /init turns exit codes into one PASS/FAIL line per scenario.
//!
//!     homed-vm-check dmcrypt-lifecycle WORKDIR
//!     homed-vm-check direct-read FILE      (helper: one O_DIRECT read, prints the bytes)

#![forbid(unsafe_code)]

use std::error::Error;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use homed_shared::luks::{ImageLayout, LuksError, LuksImage, LuksSettings, Pbkdf, dm_name};
use homed_shared::password::hash_password;
use homed_shared::signing::{SigningKey, TrustedKeys, sign_record};
use homed_shared::{RecordOrigin, UserRecord};
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
fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        if Instant::now() > deadline {
            return Err(fail(format!("timed out waiting for {what}")));
        }
        std::thread::sleep(Duration::from_millis(20));
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
    let hash = hash_password(&secret(PASSWORD))?;
    let text = format!(
        r#"{{"userName":"{USER}","uid":60100,"gid":60100,"storage":"luks","disposition":"regular",
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
        Some("direct-read") => match args.get(2) {
            Some(file) => direct_read(Path::new(file)),
            None => Err(fail("direct-read needs a file")),
        },
        _ => Err(fail(
            "usage: homed-vm-check dmcrypt-lifecycle WORKDIR | direct-read FILE",
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
