//! Acceptance 1 of issue 4: systemd's own homectl (Debian's v252) drives our daemon, and every
//! step succeeds or fails exactly as it does against systemd-homed. Every method of v252's
//! Manager is on ours with the same signature.

use homed_tests::homed::{run_homed_world, tagged};
use homed_tests::world::fixtures;

/// Each step prints `STEP name status`; refusals are checked over the bus (systemd's homectl
/// would re-prompt forever without a terminal) and print `ERR name error-name`.
const SCRIPT: &str = r#"
step() { name=$1; shift; "$@" </dev/null >"$HOMED_WORLD_STATE/$name.out" 2>&1; echo "STEP $name $?"; }
err() { name=$1; shift; e=$(call "$@" | sed -n 's/^Error \([^:]*\):.*/\1/p'); echo "ERR $name ${e:-none}"; }
export PASSWORD=Test-pw-123 NEWPASSWORD=Test-pw-123
step create timeout 60 homectl create tuser --storage=directory --enforce-password-policy=no --real-name="T User"
step list timeout 20 homectl list
grep -q '^tuser ' "$HOMED_WORLD_STATE/list.out" && echo "LISTED yes"
step inspect timeout 20 homectl inspect tuser
sed -n 's/^ *State: /STATE-INACTIVE /p' "$HOMED_WORLD_STATE/inspect.out"
step activate timeout 60 homectl activate tuser
grep ' /home/tuser ' /proc/self/mountinfo | awk '{print "MOUNT " $6}'
step inspect-active timeout 20 homectl inspect tuser
sed -n 's/^ *State: /STATE-ACTIVE /p' "$HOMED_WORLD_STATE/inspect-active.out"
step authenticate timeout 60 homectl authenticate tuser
err authenticate-wrong AuthenticateHome string:tuser 'string:{"password":["wrong"]}'
err authenticate-wrapped AuthenticateHome string:tuser 'string:{"secret":{"password":["Test-pw-123"]}}'
err activate-again ActivateHome string:tuser 'string:{"password":["Test-pw-123"]}'
step deactivate timeout 60 homectl deactivate tuser
err deactivate-again DeactivateHome string:tuser
NEWPASSWORD=New-pw-456 step passwd timeout 60 homectl passwd tuser
PASSWORD=New-pw-456 step authenticate-new timeout 60 homectl authenticate tuser
err authenticate-old AuthenticateHome string:tuser 'string:{"password":["Test-pw-123"]}'
PASSWORD=New-pw-456 step update timeout 60 homectl update tuser --real-name="Renamed User"
step inspect-updated timeout 20 homectl inspect tuser
sed -n 's/^ *Real Name: /REALNAME /p' "$HOMED_WORLD_STATE/inspect-updated.out"
err unknown AuthenticateHome string:nosuch 'string:{"password":["x"]}'
step remove timeout 60 homectl remove tuser
step list-after timeout 20 homectl list
cat "$HOMED_WORLD_STATE/list-after.out" | sed 's/^/LIST-AFTER /'
test -e /home/tuser.homedir && echo "LEFTOVER image"
test -e /var/lib/systemd/home/tuser.identity && echo "LEFTOVER record"
exit 0
"#;

fn run(reference: bool) -> String {
    let script = if reference {
        format!("start_reference || exit 1\n{SCRIPT}")
    } else {
        format!("start_ours || exit 1\n{SCRIPT}")
    };
    let run = run_homed_world(false, &script, 240);
    run.assert_success();
    run.stdout
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn systemd_homectl_drives_ours_as_it_drives_systemd_homed() {
    let ours = run(false);
    let theirs = run(true);
    let facts = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| {
                [
                    "STEP ",
                    "ERR ",
                    "LISTED ",
                    "STATE-",
                    "MOUNT ",
                    "REALNAME ",
                    "LEFTOVER ",
                    "LIST-AFTER ",
                ]
                .iter()
                .any(|p| l.starts_with(p))
            })
            // systemd-homed 252 also idmaps the mount; ours is a plain bind mount of files
            // that already belong to the user.
            .map(|l| l.replace(",idmapped", ""))
            .collect()
    };
    let (o, t) = (facts(&ours), facts(&theirs));
    assert_eq!(o, t, "ours:\n{ours}\nsystemd-homed:\n{theirs}");
    // And what both did is what a user expects.
    for step in tagged(&ours, "STEP ") {
        assert!(step.ends_with(" 0"), "step failed: {step}\n{ours}");
    }
    let errors: Vec<&str> = tagged(&ours, "ERR ");
    assert_eq!(
        errors,
        [
            "authenticate-wrong org.freedesktop.home1.BadPassword",
            "authenticate-wrapped org.freedesktop.home1.BadPassword",
            "activate-again org.freedesktop.home1.HomeAlreadyActive",
            "deactivate-again org.freedesktop.home1.HomeNotActive",
            "authenticate-old org.freedesktop.home1.BadPassword",
            "unknown org.freedesktop.home1.NoSuchHome",
        ]
    );
    assert!(ours.contains("LISTED yes"));
    assert!(ours.contains("STATE-INACTIVE inactive"));
    assert!(ours.contains("STATE-ACTIVE active"));
    assert!(ours.contains("REALNAME Renamed User"));
    assert!(ours.contains("LIST-AFTER No home areas."));
    assert!(!ours.contains("LEFTOVER"));
    // The active home is mounted nosuid,nodev (acceptance 6).
    let mount = tagged(&ours, "MOUNT ");
    assert_eq!(mount.len(), 1, "{ours}");
    let opts: Vec<&str> = mount[0].split(',').collect();
    assert!(
        opts.contains(&"nosuid") && opts.contains(&"nodev"),
        "{}",
        mount[0]
    );
}

/// (interface, member, signature of in-args, signature of out-args) of each method in an
/// introspection document, for one interface.
fn methods(xml: &str, interface: &str) -> Vec<(String, String, String)> {
    let start = xml
        .find(&format!("<interface name=\"{interface}\">"))
        .unwrap_or_else(|| panic!("{interface} missing in\n{xml}"));
    let body = &xml[start..];
    let body = &body[..body.find("</interface>").unwrap_or(body.len())];
    let mut out = Vec::new();
    for chunk in body.split("<method name=\"").skip(1) {
        let name = chunk[..chunk.find('"').unwrap_or(0)].to_owned();
        let end = chunk
            .find("</method>")
            .or_else(|| chunk.find("/>"))
            .unwrap_or(chunk.len());
        let (mut ins, mut outs) = (String::new(), String::new());
        for arg in chunk[..end].split("<arg ").skip(1) {
            let attr = |key: &str| {
                arg.split(&format!("{key}=\""))
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or("")
                    .to_owned()
            };
            let ty = attr("type");
            if attr("direction") == "out" {
                outs.push_str(&ty);
            } else {
                ins.push_str(&ty);
            }
        }
        out.push((name, ins, outs));
    }
    out.sort();
    out
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn manager_and_home_objects_have_v252_methods_and_properties() {
    let script = r#"
export NEWPASSWORD=Test-pw-123
timeout 60 homectl create bob --storage=directory --enforce-password-policy=no </dev/null >/dev/null 2>&1 || echo "create failed"
echo "=== manager"
dbus-send --system --print-reply=literal --dest=org.freedesktop.home1 /org/freedesktop/home1 org.freedesktop.DBus.Introspectable.Introspect
echo "=== home"
dbus-send --system --print-reply=literal --dest=org.freedesktop.home1 /org/freedesktop/home1/home/bob org.freedesktop.DBus.Introspectable.Introspect
echo "=== managed"
dbus-send --system --print-reply --dest=org.freedesktop.home1 /org/freedesktop/home1/home org.freedesktop.DBus.ObjectManager.GetManagedObjects | grep -c 'object path "/org/freedesktop/home1/home/bob"'
echo "=== end"
"#;
    let run = run_homed_world(true, script, 120);
    run.assert_success();
    let section = |name: &str| {
        let s = run
            .stdout
            .split(&format!("=== {name}\n"))
            .nth(1)
            .unwrap_or("");
        s.split("\n=== ").next().unwrap_or("").to_owned()
    };
    assert!(!run.stdout.contains("create failed"), "{}", run.stdout);
    let fixture = |f: &str| {
        std::fs::read_to_string(fixtures().join("homed-252/dbus").join(f))
            .unwrap_or_else(|e| panic!("{f}: {e}"))
    };
    assert_eq!(
        methods(&section("manager"), "org.freedesktop.home1.Manager"),
        methods(
            &fixture("introspect-manager.xml"),
            "org.freedesktop.home1.Manager"
        )
    );
    assert_eq!(
        methods(&section("home"), "org.freedesktop.home1.Home"),
        methods(
            &fixture("introspect-home-bob.xml"),
            "org.freedesktop.home1.Home"
        )
    );
    let props = |xml: &str| {
        let mut p: Vec<String> = xml
            .split("<property ")
            .skip(1)
            .map(|s| {
                s.split('>')
                    .next()
                    .unwrap_or("")
                    .replace("access=\"read\"", "")
                    .replace(" /", "")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        p.sort();
        p
    };
    let home_xml = section("home");
    let fixture_home = fixture("introspect-home-bob.xml");
    assert_eq!(props(&home_xml), props(&fixture_home), "{home_xml}");
    assert!(section("manager").contains("name=\"AutoLogin\" type=\"a(sso)\""));
    assert_eq!(section("managed").trim(), "1", "{}", run.stdout);
}
