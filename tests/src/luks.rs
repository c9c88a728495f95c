//! Helpers for the LUKS host tests: run a test body inside the private world (loop devices and
//! libcryptsetup's lock directory stay out of the host's way), fixture images, fast settings.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use homed_shared::password::hash_password;
use homed_shared::signing::{SigningKey, sign_record};
use homed_shared::{RecordOrigin, UserRecord};
use homed_storage::luks::{LuksSettings, Pbkdf};
use secrecy::SecretString;

use crate::world::{fixtures, repo_root};

/// The password of the fixture image made by systemd-homed 252.
pub const DAVE_PASSWORD: &str = "Dave-pw-789";

/// Runs the test named `test` again inside `world.sh` and returns `false`, or returns `true`
/// when already inside (the caller then runs the body). Panics with the inner output when the
/// inner run fails.
pub fn enter_world(test: &str) -> bool {
    if std::env::var_os("HOMED_WORLD").is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let output = Command::new("timeout")
        .args(["--kill-after=10", "240"])
        .arg(repo_root().join("tests/sandbox/world.sh"))
        .arg("--")
        .arg(exe)
        .args([
            "--include-ignored",
            "--exact",
            test,
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("cannot run world.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test} failed inside the world ({:?})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    false
}

/// A fresh scratch folder on the world's tmpfs.
pub fn scratch(test: &str) -> PathBuf {
    let base = std::env::var_os("HOMED_WORLD_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("luks-{test}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// The fixture folder of the LUKS home made by systemd-homed 252.
pub fn luks_fixture() -> PathBuf {
    fixtures().join("homed-252-luks")
}

/// Decompresses the fixture image `dave.home` into `dir`.
pub fn dave_image(dir: &Path) -> PathBuf {
    let out = dir.join("dave.home");
    let status = Command::new("zstd")
        .args(["-d", "-q", "-f", "-o"])
        .arg(&out)
        .arg(luks_fixture().join("dave.home.zst"))
        .status()
        .expect("zstd");
    assert!(status.success(), "zstd -d failed");
    out
}

/// homed's defaults with the cheapest PBKDF, so tests do not spend seconds per keyslot.
pub fn fast_settings() -> LuksSettings {
    LuksSettings {
        pbkdf: Pbkdf::minimal(),
        ..LuksSettings::default()
    }
}

/// A password as the library takes it.
pub fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

/// A LUKS user record for `name` with `password` hashed in, signed by `key`.
pub fn signed_record(name: &str, password: &str, key: &SigningKey) -> UserRecord {
    let hash = hash_password(&secret(password)).expect("hash");
    let text = format!(
        r#"{{"userName":"{name}","realName":"LUKS Test","uid":60200,"gid":60200,
            "disposition":"regular","storage":"luks","imagePath":"/home/{name}.home",
            "luksPbkdfType":"pbkdf2","lastChangeUSec":1795000000000000,
            "privileged":{{"hashedPassword":["{hash}"]}}}}"#
    );
    let mut record = UserRecord::parse(text.as_bytes(), RecordOrigin::Request).expect("record");
    sign_record(&mut record, key);
    record
}

/// `cryptsetup luksDump` of a device or image, as the administrator would read it.
pub fn luks_dump(device: &Path) -> String {
    let out = Command::new("cryptsetup")
        .arg("luksDump")
        .arg(device)
        .output()
        .expect("cryptsetup");
    assert!(
        out.status.success(),
        "luksDump {}: {}",
        device.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
