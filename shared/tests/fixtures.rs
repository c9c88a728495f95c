//! The core against real systemd-homed 252 output: signatures, canonical text, the pretty
//! file form, password hashes and the passwd/shadow/group lines.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use homed_shared::nss::{GroupEntry, PasswdEntry, ShadowEntry};
use homed_shared::password::verify_password;
use homed_shared::signing::{
    PublicKey, SignatureCheck, SigningKey, TrustVerdict, TrustedKeys, check_signature,
};
use homed_shared::{MachineContext, RecordOrigin, UserRecord};
use secrecy::SecretString;
use serde_json::Value;

fn fixtures() -> PathBuf {
    if let Ok(dir) = std::env::var("HOMED_FIXTURES") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Fixture {
    path: PathBuf,
    origin: RecordOrigin,
    key_dir: PathBuf,
}

fn all_records() -> Vec<Fixture> {
    let base = fixtures().join("homed-252");
    let mut out = Vec::new();
    for (dir, origin) in [
        ("records", RecordOrigin::Host),
        ("embedded", RecordOrigin::Embedded),
    ] {
        for name in ["alice", "bob", "carol"] {
            out.push(Fixture {
                path: base.join(dir).join(format!("{name}.identity")),
                origin,
                key_dir: base.join("keys"),
            });
        }
    }
    let luks = fixtures().join("homed-252-luks");
    out.push(Fixture {
        path: luks.join("dave.identity"),
        origin: RecordOrigin::Host,
        key_dir: luks.clone(),
    });
    out
}

fn load(f: &Fixture) -> UserRecord {
    UserRecord::parse(read(&f.path).as_bytes(), f.origin)
        .unwrap_or_else(|e| panic!("{}: {e}", f.path.display()))
}

fn local_key(dir: &Path) -> SigningKey {
    SigningKey::from_pkcs8_pem(&read(&dir.join("local.private"))).unwrap()
}

fn public_key(dir: &Path) -> PublicKey {
    PublicKey::from_pem(&read(&dir.join("local.public"))).unwrap()
}

/// A key directory as an administrator would install it: root-owned files with safe modes.
fn install(files: &[(&str, &str, u32)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, mode) in files {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
    }
    dir
}

#[test]
#[ignore = "needs root: key files are trusted only when owned by root"]
fn fixtures_verify_exclusive_with_local_key_and_foreign_with_public_key() {
    for f in all_records() {
        let record = load(&f);
        let private_pem = read(&f.key_dir.join("local.private"));
        let public_pem = read(&f.key_dir.join("local.public"));

        let local = install(&[("local.private", &private_pem, 0o400)]);
        let keys = TrustedKeys::load_from(&[local.path().to_path_buf()]);
        assert!(keys.ignored().is_empty(), "{:?}", keys.ignored());
        assert_eq!(
            keys.verdict(&record).unwrap(),
            TrustVerdict::SignedExclusive,
            "{}",
            f.path.display()
        );

        let foreign = install(&[("x.public", &public_pem, 0o644)]);
        let keys = TrustedKeys::load_from(&[foreign.path().to_path_buf()]);
        assert_eq!(
            keys.verdict(&record).unwrap(),
            TrustVerdict::Foreign,
            "{}",
            f.path.display()
        );

        // With an unrelated local key the trusted public key still decides.
        let keys = TrustedKeys::new(
            Some(SigningKey::generate().unwrap()),
            vec![("x.public".into(), public_key(&f.key_dir))],
        );
        assert_eq!(keys.verdict(&record).unwrap(), TrustVerdict::Foreign);

        // No key trusted at all: a signed record is refused.
        let keys = TrustedKeys::new(Some(SigningKey::generate().unwrap()), vec![]);
        assert_eq!(keys.verdict(&record).unwrap(), TrustVerdict::NoKey);
        assert_eq!(
            TrustedKeys::default().verdict(&record).unwrap(),
            TrustVerdict::NoKey
        );
    }
}

#[test]
#[ignore = "needs root: the test gives key files to other owners"]
fn key_files_with_unsafe_owner_or_mode_are_not_trusted() {
    let f = &all_records()[0];
    let private_pem = read(&f.key_dir.join("local.private"));
    let public_pem = read(&f.key_dir.join("local.public"));
    let record = load(f);

    let dir = install(&[
        ("local.private", &private_pem, 0o640),
        ("x.public", &public_pem, 0o664),
    ]);
    let keys = TrustedKeys::load_from(&[dir.path().to_path_buf()]);
    assert!(keys.local().is_none());
    assert!(keys.public_keys().is_empty());
    assert_eq!(keys.ignored().len(), 2, "{:?}", keys.ignored());
    assert_eq!(keys.verdict(&record).unwrap(), TrustVerdict::NoKey);

    let dir = install(&[("x.public", &public_pem, 0o644)]);
    std::os::unix::fs::chown(dir.path().join("x.public"), Some(1000), None).unwrap();
    let keys = TrustedKeys::load_from(&[dir.path().to_path_buf()]);
    assert!(
        keys.public_keys().is_empty(),
        "a key not owned by root must be ignored"
    );

    // local.public is never a trust anchor, and /dev/null masks a later directory's key.
    let dir = install(&[("local.public", &public_pem, 0o644)]);
    assert!(
        TrustedKeys::load_from(&[dir.path().to_path_buf()])
            .public_keys()
            .is_empty()
    );
    let mask = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/null", mask.path().join("x.public")).unwrap();
    let real = install(&[("x.public", &public_pem, 0o644)]);
    let keys = TrustedKeys::load_from(&[mask.path().to_path_buf(), real.path().to_path_buf()]);
    assert!(keys.public_keys().is_empty());
}

/// Every string, number and boolean outside the unsigned sections, as JSON pointers.
fn signed_leaves(value: &Value, pointer: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if pointer.is_empty()
                    && matches!(k.as_str(), "binding" | "status" | "signature" | "secret")
                {
                    continue;
                }
                signed_leaves(
                    v,
                    format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                signed_leaves(v, format!("{pointer}/{i}"), out);
            }
        }
        _ => out.push(pointer),
    }
}

fn mutated(value: &Value) -> Value {
    match value {
        Value::String(s) => {
            let mut bytes = s.clone().into_bytes();
            // Change the last byte, staying ASCII so that the text changes by one byte and
            // values such as paths keep their shape.
            match bytes.last_mut() {
                Some(b) => *b = if *b == b'a' { b'b' } else { b'a' },
                None => bytes.push(b'a'),
            }
            Value::String(String::from_utf8(bytes).unwrap_or_else(|_| "x".into()))
        }
        Value::Number(n) => Value::from(n.as_u64().map_or(1, |v| v ^ 1)),
        Value::Bool(b) => Value::Bool(!b),
        other => other.clone(),
    }
}

#[test]
fn any_changed_signed_byte_breaks_the_signature_and_unsigned_sections_do_not() {
    for f in all_records() {
        let record = load(&f);
        let key = public_key(&f.key_dir);
        assert_eq!(
            check_signature(&record, &key).unwrap(),
            SignatureCheck::SignedExclusive
        );

        let mut leaves = Vec::new();
        signed_leaves(&record.to_value(), String::new(), &mut leaves);
        assert!(leaves.len() >= 6, "{}: {leaves:?}", f.path.display());
        for leaf in &leaves {
            let mut value = record.to_value();
            let slot = value.pointer_mut(leaf).unwrap();
            *slot = mutated(slot);
            let changed = UserRecord::from_value(value, RecordOrigin::Host).unwrap();
            assert_eq!(
                check_signature(&changed, &key).unwrap(),
                SignatureCheck::Foreign,
                "{} {leaf}",
                f.path.display()
            );
        }
        // A new unknown field is signed too.
        let mut value = record.to_value();
        value["x-extra"] = Value::from(1);
        let changed = UserRecord::from_value(value, RecordOrigin::Host).unwrap();
        assert_eq!(
            check_signature(&changed, &key).unwrap(),
            SignatureCheck::Foreign
        );

        // binding, status and secret are outside the signature, whatever they hold.
        let mut changed = record.clone();
        let json = changed.json_mut();
        json.insert(
            "binding".into(),
            serde_json::json!({"00000000000000000000000000000001": {"uid": 60999}}),
        );
        json.insert(
            "status".into(),
            serde_json::json!({"00000000000000000000000000000001": {"state": "active"}}),
        );
        json.insert(
            "secret".into(),
            serde_json::json!({"password": ["whatever"]}),
        );
        assert_eq!(changed.signed_text(), record.signed_text());
        assert_eq!(
            check_signature(&changed, &key).unwrap(),
            SignatureCheck::SignedExclusive
        );
    }
}

#[test]
fn appendix_a_test_vector_verifies() {
    let record = r#"{"userName":"grobie","disposition":"regular","autoLogin":true,"memberOf":["wheel"],
        "enforcePasswordPolicy":false,"lastChangeUSec":1565950024279735,
        "privileged":{"hashedPassword":["$6$WHBKvAFFT9jKPA4k$OPY4D4TczKN/jOnJzy54DDuOOagCcvxxybrwMbe1SVdm.Bbr.zOmBdATp.QrwZmvqyr8/SafbbQu.QZ2rRvDs/"]},
        "signature":[{"data":"LU/HeVrPZSzi3MJ0PVHwD5m/xf51XDYCrSpbDRNBdtF4fDVhrN0t2I2OqH/1yXiBidXlV0ptMuQVq8KVICdEDw==",
                      "key":"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA/QT6kQWOAMhDJf56jBmszEQQpJHqDsGDMZOdiptBgRk=\n-----END PUBLIC KEY-----\n"}],
        "binding":{"15e19cf24e004b949ddaac60c74aa165":{"uid":1000}}}"#;
    let record = UserRecord::parse(record.as_bytes(), RecordOrigin::Host).unwrap();
    assert_eq!(
        record.signed_text(),
        r#"{"autoLogin":true,"disposition":"regular","enforcePasswordPolicy":false,"lastChangeUSec":1565950024279735,"memberOf":["wheel"],"privileged":{"hashedPassword":["$6$WHBKvAFFT9jKPA4k$OPY4D4TczKN/jOnJzy54DDuOOagCcvxxybrwMbe1SVdm.Bbr.zOmBdATp.QrwZmvqyr8/SafbbQu.QZ2rRvDs/"]},"userName":"grobie"}"#
    );
    let key = PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA/QT6kQWOAMhDJf56jBmszEQQpJHqDsGDMZOdiptBgRk=\n-----END PUBLIC KEY-----\n").unwrap();
    assert_eq!(
        check_signature(&record, &key).unwrap(),
        SignatureCheck::SignedExclusive
    );
    let mut value = record.to_value();
    value["memberOf"][0] = Value::from("wheem");
    let flipped = UserRecord::from_value(value, RecordOrigin::Host).unwrap();
    assert_eq!(
        check_signature(&flipped, &key).unwrap(),
        SignatureCheck::Foreign
    );
}

#[test]
fn round_trips_keep_canonical_bytes_files_and_unknown_fields() {
    for f in all_records() {
        let text = read(&f.path);
        let record = load(&f);
        // homed writes its files in exactly our pretty form.
        assert_eq!(record.to_pretty_string(), text, "{}", f.path.display());
        let again = UserRecord::parse(record.to_compact_string().as_bytes(), f.origin).unwrap();
        assert_eq!(again.signed_text(), record.signed_text());
        assert_eq!(again.to_compact_string(), record.to_compact_string());
        assert_eq!(again, record);

        let mut value = record.to_value();
        value["zUnknownField"] =
            serde_json::json!({"nested": [1, {"b": "é", "a": null}], "n": u64::MAX});
        value["privileged"]["someFutureSecretThing"] = Value::from("kept");
        let extended = UserRecord::from_value(value, f.origin).unwrap();
        let back = UserRecord::parse(extended.to_pretty_string().as_bytes(), f.origin).unwrap();
        assert_eq!(back, extended);
        assert_eq!(back.json()["zUnknownField"]["n"].as_u64(), Some(u64::MAX));
        assert_eq!(back.json()["privileged"]["someFutureSecretThing"], "kept");
    }
}

#[test]
fn we_sign_records_our_verifier_and_keys_accept() {
    let key = SigningKey::generate().unwrap();
    let pem = key.to_pkcs8_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let reloaded = SigningKey::from_pkcs8_pem(&pem).unwrap();
    let public_pem = reloaded.public_key().to_pem();
    assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"));
    assert!(public_pem.ends_with("\n-----END PUBLIC KEY-----\n"));
    assert_eq!(public_pem.lines().nth(1).map(str::len), Some(60));

    let mut record = UserRecord::parse(
        "{\"userName\":\"zed\",\"realName\":\"Zoë \\u0001/x\",\"uid\":60123,\"perMachine\":[{\"matchHostname\":\"a\",\"shell\":\"/bin/sh\"},{\"matchHostname\":\"b\"},{\"matchHostname\":\"c\"},{\"matchHostname\":\"d\"}]}".as_bytes(),
        RecordOrigin::Request,
    )
    .unwrap();
    homed_shared::signing::sign_record(&mut record, &key);
    assert_eq!(
        check_signature(&record, &reloaded.public_key()).unwrap(),
        SignatureCheck::SignedExclusive
    );
    // The fixture key, as homed generated it, signs identically to OpenSSL (deterministic Ed25519).
    let f = &all_records()[0];
    let mut copy = load(f);
    homed_shared::signing::sign_record(&mut copy, &local_key(&f.key_dir));
    assert_eq!(copy.signatures(), load(f).signatures());
}

#[test]
fn fixture_passwords_verify() {
    let cases = [
        ("homed-252/records/alice.identity", "test123"),
        ("homed-252/records/bob.identity", "Bob-pw-123"),
        ("homed-252/records/carol.identity", "Carol-pw-456"),
        ("homed-252-luks/dave.identity", "Dave-pw-789"),
    ];
    let m = MachineContext::new("00000000000000000000000000000000", None);
    for (file, password) in cases {
        let record =
            UserRecord::parse(read(&fixtures().join(file)).as_bytes(), RecordOrigin::Host).unwrap();
        let view = record.view(&m);
        let hashes = view.hashed_passwords();
        assert_eq!(hashes.len(), 1);
        assert!(
            verify_password(&SecretString::from(password.to_owned()), hashes[0]),
            "{file}"
        );
        assert!(
            !verify_password(&SecretString::from(format!("{password}x")), hashes[0]),
            "{file}"
        );
        assert!(
            !verify_password(&SecretString::from(String::new()), hashes[0]),
            "{file}"
        );
    }
}

#[test]
fn passwd_shadow_and_group_lines_match_nss_systemd() {
    let base = fixtures().join("homed-252");
    let machine = MachineContext::new(read(&base.join("machine-id")).trim(), None);
    let (mut passwd, mut shadow, mut group) = (String::new(), String::new(), String::new());
    for name in ["alice", "bob", "carol"] {
        let record = UserRecord::parse(
            read(&base.join("records").join(format!("{name}.identity"))).as_bytes(),
            RecordOrigin::Host,
        )
        .unwrap();
        let view = record.view(&machine);
        passwd += &(PasswdEntry::from_view(&view).unwrap().to_line() + "\n");
        shadow += &(ShadowEntry::from_view(&view).to_line() + "\n");
        group += &(GroupEntry::per_user_group(&view).unwrap().to_line() + "\n");
    }
    assert_eq!(passwd, read(&base.join("nss/getent-passwd.txt")));
    assert_eq!(shadow, read(&base.join("nss/getent-shadow.txt")));
    assert_eq!(group, read(&base.join("nss/getent-group.txt")));
}
