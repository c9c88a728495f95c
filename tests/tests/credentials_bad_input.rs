//! Records with malformed unlock credentials, sent to our daemon and to systemd-homed 252:
//! a `pkcs11EncryptedKey` entry without its data or with data that is not Base64, a
//! `fido2HmacSalt` entry without its salt, a `recoveryKey` entry without its type, and (ours
//! only, 252 takes it) a 1 MB FIDO2 credential id. Each CreateHome is refused, nothing is
//! written, an UpdateHome with such a record leaves the host record as it was, and the daemon
//! keeps answering. A token URI whose module does not exist is refused by our homectl before
//! anything is sent.

use homed_tests::homectl::{HomeDaemon, Steps, run_steps_with};

/// The malformed cases, by step name, as the `privileged` (or top-level) fields they add.
const CASES: &[(&str, &str, bool)] = &[
    (
        "pkcs11_no_data",
        r#""privileged":{"hashedPassword":["HASH"],"pkcs11EncryptedKey":[{"uri":"pkcs11:token=t","hashedPassword":"HASH"}]}"#,
        true,
    ),
    (
        "pkcs11_bad_data",
        r#""privileged":{"hashedPassword":["HASH"],"pkcs11EncryptedKey":[{"uri":"pkcs11:token=t","data":"*not base64*","hashedPassword":"HASH"}]}"#,
        true,
    ),
    (
        "fido2_no_salt",
        r#""privileged":{"hashedPassword":["HASH"],"fido2HmacSalt":[{"credential":"AAEC","hashedPassword":"HASH"}]}"#,
        true,
    ),
    (
        "recovery_no_type",
        r#""privileged":{"hashedPassword":["HASH"],"recoveryKey":[{"hashedPassword":"HASH"}]}"#,
        true,
    ),
    (
        "fido2_huge_id",
        r#""privileged":{"hashedPassword":["HASH"]},"fido2HmacCredential":["HUGE"]"#,
        false,
    ),
];

fn script() -> String {
    let mut s = String::from(
        r#"
export PASSWORD=Pw-bad-1111 NEWPASSWORD=Pw-bad-1111
HASH=$(openssl passwd -6 Pw-bad-1111)
head -c 786432 /dev/urandom | base64 -w0 > $D/huge.b64
bus() { timeout 60 dbus-send --system --print-reply --dest=org.freedesktop.home1 /org/freedesktop/home1 "org.freedesktop.home1.Manager.$1" "string:$2"; }
step create_good timeout 60 $OURS create goodu --storage=directory --enforce-password-policy=no
# The host record without its status (which the daemon rewrites as it pleases).
record_sum() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.pop("status",None); print(json.dumps(d,sort_keys=True))' /var/lib/systemd/home/goodu.identity | sha256sum; }
record_sum > $D/good.sum
kept() { record_sum | cmp - $D/good.sum; }
"#,
    );
    for (name, fields, _) in CASES {
        let record = format!(
            r#"{{"userName":"badu","disposition":"regular","storage":"directory",{fields},"secret":{{"password":["Pw-bad-1111"]}}}}"#
        );
        let update = record.replace("badu", "goodu");
        // The JSON goes through sed, which fills in HASH. A megabyte is
        // more than one command-line argument may be, so that one goes in a file to homectl.
        for (kind, json) in [("create", &record), ("update", &update)] {
            // HUGE is the megabyte of Base64 in $D/huge.b64, spliced in by cat.
            let (before, after) = json.split_once("HUGE").unwrap_or((json, ""));
            let splice = if json.contains("HUGE") {
                "cat $D/huge.b64; "
            } else {
                ""
            };
            s.push_str(&format!(
                "{{ printf '%s' '{before}'; {splice}printf '%s' '{after}'; }} | sed \"s|HASH|$HASH|g\" > $D/{name}.{kind}.json\n"
            ));
        }
        if *name == "fido2_huge_id" {
            s.push_str(&format!(
                "step create_{name} timeout 60 $OURS create --identity=$D/{name}.create.json\n\
                 step update_{name} timeout 60 $OURS update --identity=$D/{name}.update.json\n"
            ));
        } else {
            s.push_str(&format!(
                "step create_{name} bus CreateHome \"$(cat $D/{name}.create.json)\"\n\
                 step update_{name} bus UpdateHome \"$(cat $D/{name}.update.json)\"\n"
            ));
        }
        s.push_str(&format!(
            "step left_{name} sh -c 'ls -A /home /var/lib/systemd/home | grep badu'\n\
             step kept_{name} kept\n\
             step alive_{name} timeout 10 $OURS list\n"
        ));
    }
    s.push_str(
        "PIN=123456 step no_module timeout 60 $OURS create modu --storage=directory --enforce-password-policy=no \
         '--pkcs11-token-uri=pkcs11:token=t;module-path=/nonexistent/libnothing.so'\n\
         step no_module_left sh -c 'ls -A /home /var/lib/systemd/home | grep modu'\n",
    );
    s
}

fn check(daemon: HomeDaemon, s: &Steps) {
    s.expect_status("create_good", 0);
    for (name, _, both) in CASES {
        let create = s.get(&format!("create_{name}"));
        let ours = daemon == HomeDaemon::Ours;
        if ours || *both {
            assert_ne!(create.status, 0, "{daemon:?} {name}: CreateHome took it");
            let left = s.get(&format!("left_{name}"));
            assert_eq!(
                (left.status, left.stdout.as_str()),
                (1, ""),
                "{daemon:?} {name}: something was left"
            );
            let update = s.get(&format!("update_{name}"));
            assert_ne!(update.status, 0, "{daemon:?} {name}: UpdateHome took it");
            s.expect_status(&format!("kept_{name}"), 0);
        }
        if ours {
            // What was wrong, said in the refusal.
            let said = &create.stderr;
            let field = match *name {
                "pkcs11_no_data" | "pkcs11_bad_data" => "pkcs11EncryptedKey[0].data",
                "fido2_no_salt" => "fido2HmacSalt[0].salt",
                "recovery_no_type" => "recoveryKey[0].type",
                _ => "fido2HmacCredential[0]",
            };
            assert!(said.contains(field), "{name}: {said}");
        }
        s.expect_status(&format!("alive_{name}"), 0);
    }
    if daemon == HomeDaemon::Ours {
        s.expect_refused("no_module", "/nonexistent/libnothing.so");
        let left = s.get("no_module_left");
        assert_eq!(
            (left.status, left.stdout.as_str()),
            (1, ""),
            "something was left"
        );
    }
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn malformed_credentials_are_refused_with_nothing_written() {
    let script = script();
    for daemon in HomeDaemon::all() {
        let s = run_steps_with(&daemon.world_options(), &script, 300);
        check(daemon, &s);
    }
}
