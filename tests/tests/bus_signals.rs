//! The signals a watcher of the bus sees (GNOME's and KDE's user panels, accountsservice), from
//! our daemon and from systemd-homed 252, for the same steps on a directory home: the
//! ObjectManager's InterfacesAdded when the home is made (the same interfaces and properties,
//! no record in it, one object; 252 sends it as the creation begins, we once the home is made),
//! and for activate, deactivate and remove the same sequence of signals with the same
//! properties changed and invalidated.

use homed_tests::homectl::{HomeDaemon, Steps, run_steps_with};

/// One dbus-monitor per phase, so that each phase's signals can be compared on their own.
const SCRIPT: &str = r#"
export PASSWORD=Pw-sig-1111 NEWPASSWORD=Pw-sig-1111
watch() {
    dbus-monitor --system "type='signal',sender='org.freedesktop.home1'" > $D/$1.signals 2>&1 &
    m=$!
    sleep 0.5
    shift
    "$@"
    r=$?
    sleep 1
    kill $m
    wait $m 2>/dev/null
    return $r
}
step create watch create timeout 60 homectl create sigu --storage=directory --enforce-password-policy=no
step activate watch activate timeout 60 homectl activate sigu
step deactivate watch deactivate timeout 60 homectl deactivate sigu
step remove watch remove timeout 60 homectl remove sigu
step managed dbus-send --system --print-reply --dest=org.freedesktop.home1 /org/freedesktop/home1/home org.freedesktop.DBus.ObjectManager.GetManagedObjects
for p in create activate deactivate remove; do
    step signals_$p cat $D/$p.signals
done
"#;

/// The signals of one phase, each as `path interface member` and the names in it (property
/// names and string values, which are the same for the same user on both daemons), without
/// the bus's own signals and the serials, times and senders that differ.
fn normalized(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut ours = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("signal ") {
            ours = !rest.contains("interface=org.freedesktop.DBus;");
            if ours {
                let field = |name: &str| {
                    rest.split(['=', ';', ' '])
                        .skip_while(|f| *f != name)
                        .nth(1)
                        .unwrap_or("")
                        .to_owned()
                };
                out.push(format!(
                    "{} {} {}",
                    field("path"),
                    field("interface"),
                    field("member")
                ));
            }
        } else if ours
            && let Some((_, s)) = line.split_once("string ")
            && let Some(last) = out.last_mut()
        {
            last.push(' ');
            last.push_str(s);
        }
    }
    out
}

fn phase(s: &Steps, name: &str) -> Vec<String> {
    normalized(&s.expect_status(&format!("signals_{name}"), 0).stdout)
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn watchers_see_the_signals_systemd_homed_sends() {
    let runs: Vec<(HomeDaemon, Steps)> = HomeDaemon::all()
        .into_iter()
        .map(|d| (d, run_steps_with(&d.world_options(), SCRIPT, 300)))
        .collect();
    for (daemon, s) in &runs {
        for step in ["create", "activate", "deactivate", "remove", "managed"] {
            s.expect_status(step, 0);
        }
        let added: Vec<String> = phase(s, "create")
            .into_iter()
            .filter(|l| l.contains("InterfacesAdded"))
            .collect();
        assert_eq!(
            added.len(),
            1,
            "{daemon:?}: one object announced: {added:?}"
        );
        assert!(
            [
                "\"UserName\" \"sigu\"",
                "\"UID\"",
                "\"UnixRecord\"",
                "\"State\""
            ]
            .iter()
            .all(|p| added[0].contains(p))
                && !added[0].contains("UserRecord"),
            "{daemon:?}: {}",
            added[0]
        );
        let home_pc =
            "/org/freedesktop/home1/home/sigu org.freedesktop.DBus.Properties PropertiesChanged";
        assert!(
            phase(s, "activate").iter().any(|l| l.starts_with(home_pc)
                && l.contains(r#""UID""#)
                && l.contains(r#""UserRecord""#)),
            "{daemon:?}: no PropertiesChanged on the Home: {:?}",
            phase(s, "activate")
        );
    }
    let (theirs, ours) = (&runs[0].1, &runs[1].1);
    let sorted_interfaces = |l: &str| {
        let mut words: Vec<&str> = l.split(' ').collect();
        words.sort_unstable();
        words.join(" ")
    };
    // The announcement carries the same interfaces and properties (in any order). Its State
    // differs: 252 announces the home as its creation begins ("creating"), ours once it is
    // made ("inactive").
    let added = |s: &Steps| {
        phase(s, "create")
            .into_iter()
            .filter(|l| l.contains("InterfacesAdded"))
            .map(|l| sorted_interfaces(&l.replace("\"creating\"", "\"inactive\"")))
            .collect::<Vec<_>>()
    };
    assert_eq!(added(ours), added(theirs));
    // Within one signal, a dictionary's order is the sender's own.
    let sequence = |s: &Steps, p: &str| {
        phase(s, p)
            .iter()
            .map(|l| sorted_interfaces(l))
            .collect::<Vec<_>>()
    };
    for p in ["activate", "deactivate", "remove"] {
        assert_eq!(
            sequence(ours, p),
            sequence(theirs, p),
            "{p}: ours differ from systemd-homed 252's"
        );
    }
    // Listed once, by name.
    for (daemon, s) in &runs {
        let managed = &s.get("managed").stdout;
        assert!(!managed.contains("object path"), "{daemon:?}: {managed}");
    }
}
