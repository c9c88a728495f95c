//! Issue 6 on the host (no device-mapper needed): images we create have homed's layout and
//! open with the password alone; a password change interrupted at any step leaves a home the
//! old or the new password opens (acceptance 6, header part); bad input is refused with a clear
//! error and nothing is written (acceptance 7, host part).

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use homed_shared::signing::{SignatureCheck, SigningKey, TrustedKeys, check_signature};
use homed_storage::luks::{
    ImageLayout, LuksError, LuksImage, PasswordChangeStep, read_home_partition,
};
use homed_tests::luks::{enter_world, fast_settings, luks_dump, scratch, secret, signed_record};

const MIB: u64 = 1024 * 1024;

fn layout() -> ImageLayout {
    ImageLayout {
        size: 32 * MIB,
        preallocate: false,
    }
}

fn trusting(key: &SigningKey) -> TrustedKeys {
    TrustedKeys::new(None, vec![("test.public".into(), key.public_key())])
}

/// Waits until the loop device has let go of its backing file (autoclear).
fn wait_detached(loop_path: &Path) {
    let name = loop_path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let backing = PathBuf::from(format!("/sys/block/{name}/loop/backing_file"));
    assert!(
        homed_shared::wait::wait_until(Duration::from_secs(10), || !backing.exists()),
        "{} still attached",
        loop_path.display()
    );
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn created_image_has_homeds_layout_and_opens_with_the_password() {
    if !enter_world("created_image_has_homeds_layout_and_opens_with_the_password") {
        return;
    }
    let dir = scratch("create");
    let path = dir.join("alice.home");
    let key = SigningKey::generate().unwrap();
    let record = signed_record("alice", "Alice-pw-1", &key);
    let (mut image, volume_key) = LuksImage::create(
        &path,
        "alice",
        &fast_settings(),
        &layout(),
        &[secret("Alice-pw-1")],
        &record,
    )
    .unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), 32 * MIB);

    // What an administrator sees with cryptsetup on the partition.
    let dump = luks_dump(image.loop_device().path());
    for line in [
        "Version:       \t2",
        "Label:         \talice",
        "Subsystem:     \tsystemd-home",
        "Metadata area: \t4194304 [bytes]",
        "cipher: aes-xts-plain64",
        "  0: systemd-homed",
        "PBKDF:      pbkdf2",
    ] {
        assert!(dump.contains(line), "luksDump lacks {line:?}:\n{dump}");
    }
    assert!(dump.contains("offset: 16777216 [bytes]"), "{dump}");
    // cryptsetup itself accepts the password.
    let mut check = Command::new("cryptsetup")
        .args(["open", "--test-passphrase", "--key-file=-"])
        .arg(image.loop_device().path())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(b"Alice-pw-1")
        .unwrap();
    assert!(check.wait().unwrap().success());
    let loop_path = image.loop_device().path().to_owned();
    let (offset, size) = image.loop_device().mapping().unwrap();
    assert_eq!(offset, MIB);
    let table = read_home_partition(image.file(), "alice.home")
        .unwrap()
        .unwrap();
    assert_eq!((table.offset, table.size), (offset, size));
    assert_eq!(table.name, "alice");
    assert!(
        image
            .container()
            .token_record(&volume_key)
            .unwrap()
            .json()
            .get("binding")
            .is_none()
    );
    drop(volume_key);
    drop(image);
    wait_detached(&loop_path);

    // Later, from the file alone: the password gives the key, the key gives the record.
    let mut image = LuksImage::open(&path, Some("alice"), false).unwrap();
    assert!(matches!(
        image.unlock(&[secret("alice-pw-1")]),
        Err(LuksError::BadPassword)
    ));
    let volume_key = image.unlock(&[secret("Alice-pw-1")]).unwrap();
    let stored = image.trusted_record(&volume_key, &trusting(&key)).unwrap();
    assert_eq!(stored.json(), record.embedded_copy().json());
    assert_eq!(
        check_signature(&stored, &key.public_key()).unwrap(),
        SignatureCheck::SignedExclusive
    );
    assert_eq!(image.container().active_keyslots().unwrap(), vec![0]);

    // Creating over an existing image is refused and leaves it alone.
    let before = fs::read(&path).unwrap();
    drop(image);
    let err = LuksImage::create(
        &path,
        "alice",
        &fast_settings(),
        &layout(),
        &[secret("x")],
        &record,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(fs::read(&path).unwrap() == before);
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn interrupted_password_change_leaves_a_home_one_password_set_opens() {
    if !enter_world("interrupted_password_change_leaves_a_home_one_password_set_opens") {
        return;
    }
    let dir = scratch("passwd");
    let key = SigningKey::generate().unwrap();
    let old_record = signed_record("bob", "Old-pw-1", &key);
    let new_record = signed_record("bob", "New-pw-2", &key);
    let (old, new) = (secret("Old-pw-1"), secret("New-pw-2"));

    let make = |name: &str| {
        let path = dir.join(name);
        let (image, _) = LuksImage::create(
            &path,
            "bob",
            &fast_settings(),
            &layout(),
            std::slice::from_ref(&old),
            &old_record,
        )
        .unwrap();
        drop(image);
        path
    };

    // A complete change, recording every step it passes.
    let path = make("full.home");
    let mut steps = Vec::new();
    {
        let mut image = LuksImage::open(&path, Some("bob"), false).unwrap();
        let vk = image.unlock(std::slice::from_ref(&old)).unwrap();
        image
            .change_passwords(
                &vk,
                std::slice::from_ref(&new),
                &fast_settings(),
                &new_record,
                |step| {
                    steps.push(step);
                    Ok(())
                },
            )
            .unwrap();
        assert!(matches!(
            image.unlock(std::slice::from_ref(&old)),
            Err(LuksError::BadPassword)
        ));
        let vk = image.unlock(std::slice::from_ref(&new)).unwrap();
        let token = image.container().token_record(&vk).unwrap();
        assert_eq!(token.json(), new_record.embedded_copy().json());
    }
    assert_eq!(steps.first(), Some(&PasswordChangeStep::BeforeNewKeyslots));
    assert_eq!(
        steps.last(),
        Some(&PasswordChangeStep::AfterOldKeyslotsRemoved)
    );
    assert!(steps.contains(&PasswordChangeStep::BeforeRemoveKeyslot(0)));

    // Killed at each step: reopen from the file as the next activation would.
    for (i, stop) in steps.iter().enumerate() {
        let path = make(&format!("step{i}.home"));
        {
            let mut image = LuksImage::open(&path, Some("bob"), false).unwrap();
            let vk = image.unlock(std::slice::from_ref(&old)).unwrap();
            let err = image
                .change_passwords(
                    &vk,
                    std::slice::from_ref(&new),
                    &fast_settings(),
                    &new_record,
                    |step| {
                        if step == *stop {
                            Err(LuksError::Refused("killed".into()))
                        } else {
                            Ok(())
                        }
                    },
                )
                .err()
                .unwrap();
            assert!(err.to_string().contains("killed"));
        }
        let mut image = LuksImage::open(&path, Some("bob"), false).unwrap();
        let opens_old = image.unlock(std::slice::from_ref(&old)).is_ok();
        let opens_new = image.unlock(std::slice::from_ref(&new)).is_ok();
        assert!(opens_old || opens_new, "after {stop:?} nothing opens");
        // PAM hands over every password it collected: that always works.
        let vk = image.unlock(&[old.clone(), new.clone()]).unwrap();
        let token = image.container().token_record(&vk).unwrap();
        let token_is_new = token.json() == new_record.embedded_copy().json();
        assert!(token_is_new || token.json() == old_record.embedded_copy().json());
        match stop {
            PasswordChangeStep::BeforeNewKeyslots => {
                assert!(opens_old && !opens_new && !token_is_new)
            }
            PasswordChangeStep::AfterNewKeyslots => assert!(opens_old && opens_new),
            PasswordChangeStep::AfterTokenUpdate | PasswordChangeStep::BeforeRemoveKeyslot(_) => {
                assert!(opens_old && opens_new && token_is_new)
            }
            PasswordChangeStep::AfterOldKeyslotsRemoved => {
                assert!(!opens_old && opens_new && token_is_new)
            }
        }
        // Repeating the change from there completes it.
        image
            .change_passwords(
                &vk,
                std::slice::from_ref(&new),
                &fast_settings(),
                &new_record,
                |_| Ok(()),
            )
            .unwrap();
        assert!(image.unlock(std::slice::from_ref(&old)).is_err());
        assert!(image.unlock(std::slice::from_ref(&new)).is_ok());
        assert_eq!(image.container().active_keyslots().unwrap().len(), 1);
    }
}

/// CRC-32 (IEEE), for forging a partition table in the test.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Adds a second home partition to the primary GPT of `path`, with valid checksums.
fn add_second_home_partition(path: &Path) {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut header = [0u8; 512];
    file.read_exact_at(&mut header, 512).unwrap();
    let mut entries = vec![0u8; 128 * 128];
    file.read_exact_at(&mut entries, 1024).unwrap();
    let first = entries[..128].to_vec();
    entries[128..256].copy_from_slice(&first);
    entries[144] ^= 0xff; // another unique GUID
    entries[128 + 56..128 + 58].copy_from_slice(&u16::from(b'x').to_le_bytes());
    file.write_all_at(&entries, 1024).unwrap();
    header[88..92].copy_from_slice(&crc32(&entries).to_le_bytes());
    header[16..20].fill(0);
    let crc = crc32(&header[..92]);
    header[16..20].copy_from_slice(&crc.to_le_bytes());
    file.write_all_at(&header, 512).unwrap();
}

/// Opens `path` for `user` expecting a failure; checks the image is unchanged.
fn refused(path: &Path, user: &str) -> LuksError {
    let before = fs::read(path).unwrap();
    let err = LuksImage::open(path, Some(user), false).err().unwrap();
    eprintln!("refused as expected: {err}");
    assert!(
        fs::read(path).unwrap() == before,
        "a refused open changed {}",
        path.display()
    );
    err
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn bad_images_are_refused_with_a_clear_error_and_left_untouched() {
    if !enter_world("bad_images_are_refused_with_a_clear_error_and_left_untouched") {
        return;
    }
    let dir = scratch("bad");
    let key = SigningKey::generate().unwrap();
    let record = signed_record("carol", "Carol-pw-3", &key);
    let create = |name: &str| {
        let path = dir.join(name);
        drop(
            LuksImage::create(
                &path,
                "carol",
                &fast_settings(),
                &layout(),
                &[secret("Carol-pw-3")],
                &record,
            )
            .unwrap(),
        );
        path
    };

    // Truncated (a copy cut short, e.g. a full disk while copying).
    let path = create("truncated.home");
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(12 * MIB)
        .unwrap();
    let err = refused(&path, "carol");
    assert!(matches!(err, LuksError::BadImage { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");

    // Both LUKS2 header copies overwritten.
    let path = create("header.home");
    {
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[0x55; 4096], MIB).unwrap();
        f.write_all_at(&[0x55; 4096], MIB + 4 * MIB).unwrap();
    }
    let err = refused(&path, "carol");
    assert!(matches!(err, LuksError::BadHeader { .. }), "{err}");
    assert!(err.to_string().contains("LUKS2 header"), "{err}");

    // Two home partitions: homed images have exactly one.
    let path = create("two.home");
    add_second_home_partition(&path);
    let err = refused(&path, "carol");
    assert!(err.to_string().contains("2 home partitions"), "{err}");

    // A token whose record is signed by a key this machine does not trust.
    let path = create("foreign.home");
    let before = fs::read(&path).unwrap();
    {
        let mut image = LuksImage::open(&path, Some("carol"), false).unwrap();
        let vk = image.unlock(&[secret("Carol-pw-3")]).unwrap();
        let stranger = SigningKey::generate().unwrap();
        let err = image
            .trusted_record(&vk, &trusting(&stranger))
            .err()
            .unwrap();
        assert!(matches!(err, LuksError::UntrustedRecord(_)), "{err}");
        assert!(
            err.to_string().contains("not signed by a trusted key"),
            "{err}"
        );
        // The right key accepts it.
        assert!(image.trusted_record(&vk, &trusting(&key)).is_ok());
    }
    assert!(fs::read(&path).unwrap() == before);
}
