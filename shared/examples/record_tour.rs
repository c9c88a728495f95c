//! A tour of the user-record core: create a record, hash a password, sign it with a fresh
//! machine key, check it the way homed decides trust, and show the passwd, shadow and group
//! lines it maps to. Writes into the key directories only when run inside the demo's private
//! world (`HOMED_WORLD=1`), where `/var/lib/systemd/home` is a throwaway tmpfs.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use homed_shared::nss::{GroupEntry, PasswdEntry, ShadowEntry};
use homed_shared::password::{hash_password, verify_password};
use homed_shared::record::check_suitable_for_homed;
use homed_shared::signing::{SigningKey, TrustVerdict, TrustedKeys, sign_record};
use homed_shared::{MachineContext, RecordOrigin, UserRecord};
use secrecy::SecretString;

fn step(title: &str) {
    println!("\n== {title}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let in_world = std::env::var_os("HOMED_WORLD").is_some();
    let scratch = std::env::temp_dir().join(format!("homed-record-tour-{}", std::process::id()));
    let key_dir: PathBuf = if in_world {
        PathBuf::from("/var/lib/systemd/home")
    } else {
        scratch.clone()
    };
    fs::create_dir_all(&key_dir)?;
    let machine = MachineContext::new("3d1219c7c4c5404aaa1f6d2a48adfda4", Some("demo-host".into()));

    step("1. a new machine key (local.private 0400, local.public 0444)");
    let key = SigningKey::generate()?;
    write_mode(
        &key_dir.join("local.private"),
        key.to_pkcs8_pem()?.as_bytes(),
        0o400,
    )?;
    write_mode(
        &key_dir.join("local.public"),
        key.public_key().to_pem().as_bytes(),
        0o444,
    )?;
    print!("{}", key.public_key().to_pem());

    step("2. a record for user 'demo' with a yescrypt password hash");
    let password = SecretString::from("Demo-pw-123".to_owned());
    let hash = hash_password(&password)?;
    let text = format!(
        r#"{{"userName":"demo","realName":"Demo Dörte","disposition":"regular","uid":60200,
            "storage":"directory","memberOf":["users"],"shell":"/bin/bash",
            "lastChangeUSec":1795000000000000,"lastPasswordChangeUSec":1795000000000000,
            "passwordChangeMaxUSec":7776000000000,
            "perMachine":[{{"matchMachineId":"{id}","storage":"directory"}}],
            "privileged":{{"hashedPassword":["{hash}"]}}}}"#,
        id = machine.machine_id
    );
    let mut record = UserRecord::parse(text.as_bytes(), RecordOrigin::Request)?;
    check_suitable_for_homed(&record.view(&machine), true)?;
    println!(
        "homed's rules accept it; the password verifies: {}",
        verify_password(&password, &hash)
    );

    step("3. signed with the machine key (what the signature covers, then the file homed writes)");
    sign_record(&mut record, &key);
    println!("{}", record.signed_text());
    print!("{}", record.to_pretty_string());

    step("4. trust decision against the key directory");
    let keys = TrustedKeys::load_from(std::slice::from_ref(&key_dir));
    println!("verdict: {:?}", keys.verdict(&record)?);
    let mut tampered = record.to_value();
    tampered["uid"] = 60201.into();
    let tampered = UserRecord::from_value(tampered, RecordOrigin::Host)?;
    println!("after changing the uid: {:?}", keys.verdict(&tampered)?);
    let mut bound = record.clone();
    let mut binding = serde_json::Map::new();
    binding.insert("homeDirectory".into(), "/home/demo".into());
    bound.set_binding(&machine.machine_id, binding);
    println!(
        "after adding a binding section (not signed): {:?}",
        keys.verdict(&bound)?
    );
    let foreign = TrustedKeys::new(None, vec![("demo.public".into(), key.public_key())]);
    println!(
        "on a host that only trusts demo.public: {:?}",
        foreign.verdict(&record)?
    );
    assert_eq!(foreign.verdict(&record)?, TrustVerdict::Foreign);

    step("5. what getent shows for it (passwd, shadow, group)");
    let view = record.view(&machine);
    if let Some(passwd) = PasswdEntry::from_view(&view) {
        println!("{}", passwd.to_line());
    }
    println!("{}", ShadowEntry::from_view(&view).to_line());
    if let Some(group) = GroupEntry::per_user_group(&view) {
        println!("{}", group.to_line());
    }

    step("6. hostile input is refused with a reason");
    for bad in [
        r#"{"userName":"a","userName":"b"}"#,
        r#"{"userName":"../etc"}"#,
        r#"{"userName":"x","diskSize":1.5}"#,
        r#"{"userName":"x","secret":{"password":["p"]}}"#,
    ] {
        match UserRecord::parse(bad.as_bytes(), RecordOrigin::Host) {
            Ok(_) => println!("{bad} -> accepted?!"),
            Err(e) => println!("{bad}\n   -> {e}"),
        }
    }
    if !in_world {
        fs::remove_dir_all(&scratch)?;
    }
    Ok(())
}

fn write_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let _ = fs::remove_file(path);
    fs::write(path, bytes)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}
