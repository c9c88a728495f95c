//! Acceptance 5 of issue 4: our `io.systemd.UserDatabase` socket answers as systemd-homed's
//! does (the fixture replies of homed 252 for the same records): privileged section only for
//! root and the owner, `incomplete` otherwise, homed's errors; userdbctl and nss-systemd
//! resolve our users through it.

use homed_tests::homed::VARLINK_CLIENT;
use homed_tests::world::fixtures;
use serde_json::Value;

const MACHINE_ID: &str = "3d1219c7c4c5404aaa1f6d2a48adfda4";

const CLIENT: &str = VARLINK_CLIENT;

fn script() -> String {
    format!(
        r#"
F='{fixtures}/homed-252'
install -m 0600 "$F"/records/*.identity /var/lib/systemd/home/
for u in alice bob carol; do
    uid=$(sed -n 's/^'$u':x:\([0-9]*\):.*/\1/p' "$F/nss/getent-passwd.txt")
    install -d -m 0700 -o $uid -g $uid /home/$u.homedir
    install -m 0600 -o $uid -g $uid "$F/embedded/$u.identity" /home/$u.homedir/.identity
done
cat >"$HOMED_WORLD_STATE/client.py" <<'PY'
{client}
PY
chmod 0644 "$HOMED_WORLD_STATE/client.py"
start_ours || exit 1
q() {{ name=$1; shift; printf 'REPLY %s %s\n' "$name" "$("$@")"; }}
vl() {{ /usr/bin/python3 "$HOMED_WORLD_STATE/client.py" "$1"; }}
q bob-as-root vl '{{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{{"userName":"bob","service":"io.systemd.Home"}}}}'
q bob-as-nobody setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 "$HOMED_WORLD_STATE/client.py" '{{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{{"userName":"bob","service":"io.systemd.Home"}}}}'
q bob-as-owner setpriv --reuid=60076 --regid=60076 --clear-groups /usr/bin/python3 "$HOMED_WORLD_STATE/client.py" '{{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{{"userName":"bob","service":"io.systemd.Home"}}}}'
q uid60299 vl '{{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{{"uid":60299,"service":"io.systemd.Home"}}}}'
q enumerate vl '{{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{{"service":"io.systemd.Home"}},"more":true}}'
q nosuch vl '{{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{{"userName":"nosuch","service":"io.systemd.Home"}}}}'
q conflict vl '{{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{{"userName":"bob","uid":60299,"service":"io.systemd.Home"}}}}'
q badservice vl '{{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{{"userName":"bob","service":"io.systemd.Multiplexer"}}}}'
q filter vl '{{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{{"uidMin":1000,"service":"io.systemd.Home"}}}}'
q group-bob vl '{{"method":"io.systemd.UserDatabase.GetGroupRecord","parameters":{{"groupName":"bob","service":"io.systemd.Home"}}}}'
q memberships-bob vl '{{"method":"io.systemd.UserDatabase.GetMemberships","parameters":{{"userName":"bob","service":"io.systemd.Home"}}}}'
q memberships-all vl '{{"method":"io.systemd.UserDatabase.GetMemberships","parameters":{{"service":"io.systemd.Home"}},"more":true}}'
ls -l /run/systemd/userdb/io.systemd.Home | awk '{{print "SOCKET " $1}}'
getent passwd alice bob carol | sed 's/^/PASSWD /'
getent group alice bob carol | sed 's/^/GROUP /'
for u in alice bob carol; do id $u; done | sed 's/^/ID /'
userdbctl user bob >/dev/null 2>&1 && echo "USERDBCTL ok"
exit 0
"#,
        fixtures = fixtures().display(),
        client = CLIENT
    )
}

fn reply(out: &str, name: &str) -> Value {
    let prefix = format!("REPLY {name} ");
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no reply {name}:\n{out}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}"))
}

fn fixture(name: &str) -> Value {
    let path = fixtures().join("homed-252/varlink").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replaces the live status of each record (disk figures, timestamps) by what must agree with
/// systemd-homed's: which fields it has, and the state, service and signedLocally values.
fn without_status(mut replies: Value) -> Value {
    for r in replies.as_array_mut().into_iter().flatten() {
        if let Some(record) = r
            .pointer_mut("/parameters/record")
            .and_then(Value::as_object_mut)
            && let Some(status) = record.remove("status")
        {
            let mine = status[MACHINE_ID].as_object().cloned().unwrap_or_default();
            // diskUsage comes from a user quota: the fixtures' machine had one on /home, a
            // world's tmpfs has none.
            let mut keys: Vec<&String> = mine.keys().filter(|k| *k != "diskUsage").collect();
            keys.sort_unstable();
            let summary = serde_json::json!({
                "fields": keys,
                "state": mine.get("state"),
                "service": mine.get("service"),
                "signedLocally": mine.get("signedLocally"),
            });
            record.insert("status".into(), summary);
        }
    }
    replies
}

fn sorted_by_name(mut v: Value) -> Value {
    if let Some(a) = v.as_array_mut() {
        for r in a.iter_mut() {
            if let Some(o) = r.as_object_mut() {
                o.remove("continues");
            }
        }
        a.sort_by_key(|r| {
            r.pointer("/parameters/record/userName")
                .map(|n| n.to_string())
        });
    }
    v
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn userdb_socket_answers_as_systemd_homed() {
    let policy = homed_tests::homed::policy_dir();
    let run = {
        let script = script();
        homed_tests::world::run_in_world(
            &[
                "--dbus-policy",
                policy.path().to_str().unwrap_or_default(),
                "--keys",
                fixtures()
                    .join("homed-252/keys")
                    .to_str()
                    .unwrap_or_default(),
                "--machine-id",
                MACHINE_ID,
            ],
            &format!("{}\n{script}", homed_tests::homed::script_prelude()),
            120,
        )
    };
    run.assert_success();
    let out = &run.stdout;
    for (ours, theirs) in [
        ("bob-as-root", "GetUserRecord-bob-as-root.json"),
        ("bob-as-nobody", "GetUserRecord-bob-as-nobody.json"),
        ("uid60299", "GetUserRecord-uid60299-as-root.json"),
        ("nosuch", "GetUserRecord-nosuch.json"),
        ("group-bob", "GetGroupRecord-bob.json"),
        ("memberships-bob", "GetMemberships-bob.json"),
        ("memberships-all", "GetMemberships-enumerate.json"),
    ] {
        assert_eq!(
            without_status(reply(out, ours)),
            without_status(fixture(theirs)),
            "{ours} differs from {theirs}"
        );
    }
    assert_eq!(
        sorted_by_name(without_status(reply(out, "enumerate"))),
        sorted_by_name(without_status(fixture(
            "GetUserRecord-enumerate-as-root.json"
        )))
    );
    let enumerated = reply(out, "enumerate");
    let flags: Vec<bool> = enumerated
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r.get("continues") == Some(&Value::Bool(true)))
        .collect();
    assert_eq!(flags, [true, true, false], "{enumerated}");
    // The owner sees the privileged section too.
    assert_eq!(
        reply(out, "bob-as-owner")[0]["parameters"]["incomplete"],
        false
    );
    assert!(reply(out, "bob-as-owner")[0]["parameters"]["record"]["privileged"].is_object());
    for (name, error) in [
        ("conflict", "io.systemd.UserDatabase.ConflictingRecordFound"),
        ("badservice", "io.systemd.UserDatabase.BadService"),
        ("filter", "org.varlink.service.InvalidParameter"),
    ] {
        assert_eq!(reply(out, name)[0]["error"], error, "{name}");
    }
    assert!(out.contains("SOCKET srw-rw-rw-"), "{out}");
    let nss = |file: &str, tag: &str| {
        let want = std::fs::read_to_string(fixtures().join("homed-252/nss").join(file))
            .unwrap_or_default();
        let got: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix(tag)).collect();
        assert_eq!(got, want.lines().collect::<Vec<_>>(), "{file}");
    };
    nss("getent-passwd.txt", "PASSWD ");
    nss("getent-group.txt", "GROUP ");
    nss("id.txt", "ID ");
    assert!(out.contains("USERDBCTL ok"), "{out}");
}
