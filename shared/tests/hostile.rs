//! Hostile records give a clear error, never a panic.

use homed_shared::signing::{TrustedKeys, check_signature};
use homed_shared::{MachineContext, RecordOrigin, UserRecord};

fn refusal(bytes: &[u8], origin: RecordOrigin) -> String {
    match UserRecord::parse(bytes, origin) {
        Ok(r) => panic!("accepted hostile record {r:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn hostile_records_are_refused_with_a_reason() {
    let deep = format!(
        "{{\"userName\":\"u\",\"x\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let huge = format!(
        "{{\"userName\":\"u\",\"realName\":\"{}\"}}",
        "x".repeat(10 * 1024 * 1024)
    );
    let cases: Vec<(Vec<u8>, RecordOrigin, &str)> = vec![
        (b"[]".to_vec(), RecordOrigin::Host, "must be a JSON object"),
        (
            b"\"alice\"".to_vec(),
            RecordOrigin::Host,
            "must be a JSON object",
        ),
        (b"".to_vec(), RecordOrigin::Host, "not valid JSON"),
        (
            br#"{"userName":"a","userName":"b"}"#.to_vec(),
            RecordOrigin::Host,
            "duplicate key \"userName\"",
        ),
        (
            br#"{"userName":"a","privileged":{"x":1,"x":1}}"#.to_vec(),
            RecordOrigin::Host,
            "duplicate key \"x\"",
        ),
        (deep.into_bytes(), RecordOrigin::Host, "recursion limit"),
        (huge.into_bytes(), RecordOrigin::Host, "more than"),
        (
            b"{\"userName\":\"a\xc3\x28\"}".to_vec(),
            RecordOrigin::Host,
            "not valid JSON",
        ),
        (
            br#"{"userName":"a","secret":{"password":["x"]}}"#.to_vec(),
            RecordOrigin::Host,
            "\"secret\" section",
        ),
        (
            br#"{"userName":"a/b"}"#.to_vec(),
            RecordOrigin::Host,
            "userName",
        ),
        (
            br#"{"userName":".."}"#.to_vec(),
            RecordOrigin::Host,
            "userName",
        ),
        (
            br#"{"userName":"a\nb"}"#.to_vec(),
            RecordOrigin::Host,
            "control characters",
        ),
        (
            br#"{"userName":"a\u0000b"}"#.to_vec(),
            RecordOrigin::Host,
            "NUL",
        ),
        (
            br#"{"userName":"a","x":{"y":[18446744073709551616]}}"#.to_vec(),
            RecordOrigin::Host,
            "not an integer",
        ),
        (
            br#"{"userName":"a","perMachine":[{"matchHostname":"h","diskSize":1.5}]}"#.to_vec(),
            RecordOrigin::Host,
            "not an integer",
        ),
        (
            br#"{"userName":"a","lastChangeUSec":-1}"#.to_vec(),
            RecordOrigin::Host,
            "lastChangeUSec",
        ),
        (
            br#"{"userName":"a","uid":4294967295}"#.to_vec(),
            RecordOrigin::Host,
            "uid",
        ),
        (
            br#"{"userName":"a","memberOf":["ok","x:y"]}"#.to_vec(),
            RecordOrigin::Host,
            "memberOf",
        ),
        (
            br#"{"userName":"a","signature":[{"key":"k"}]}"#.to_vec(),
            RecordOrigin::Host,
            "signature[0].data",
        ),
        (
            br#"{"userName":"a","perMachine":{"x":1}}"#.to_vec(),
            RecordOrigin::Host,
            "perMachine",
        ),
        (
            br#"{"userName":"a","perMachine":[{"matchMachineId":"x","userName":"b"}]}"#.to_vec(),
            RecordOrigin::Host,
            "may not be set per machine",
        ),
        (
            br#"{"userName":"a","binding":{"m":{"homeDirectory":"relative"}}}"#.to_vec(),
            RecordOrigin::Host,
            "binding.m.homeDirectory",
        ),
    ];
    for (bytes, origin, expected) in cases {
        let why = refusal(&bytes, origin);
        assert!(why.contains(expected), "expected {expected:?} in {why:?}");
    }
}

#[test]
fn odd_but_valid_records_never_panic_in_accessors() {
    let m = MachineContext::new("3d1219c7c4c5404aaa1f6d2a48adfda4", None);
    for text in [
        r#"{"userName":"u","perMachine":[{"matchMachineId":5}]}"#,
        r#"{"userName":"u","perMachine":[{}],"binding":{"3d1219c7c4c5404aaa1f6d2a48adfda4":{}}}"#,
        r#"{"userName":"u","signature":[{"data":"!!!not base64"}]}"#,
        r#"{"userName":"u","signature":[{"data":""}],"privileged":{"hashedPassword":[]}}"#,
    ] {
        let Ok(record) = UserRecord::parse(text.as_bytes(), RecordOrigin::Host) else {
            continue;
        };
        let view = record.view(&m);
        let _ = (
            view.uid(),
            view.shell(),
            view.home_directory(),
            view.image_path(),
            view.gecos(),
        );
        let _ = TrustedKeys::default().verdict(&record);
        let key = homed_shared::signing::SigningKey::generate()
            .unwrap()
            .public_key();
        let _ = check_signature(&record, &key);
    }
}
