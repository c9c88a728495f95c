//! Our `homectl` against the real systemd-homed 252 and against our homed, side by side with
//! systemd's own homectl (issue 4, the CLI half): the same verbs succeed or fail the same way,
//! `inspect` prints the same lines, and `create` sends the same record. Every test runs once
//! per daemon in `HomeDaemon::all()`.

use homed_shared::password::verify_password;
use homed_tests::homectl::{
    HomeDaemon, SYSTEMD_HOMECTL, Steps, assert_same_lines, mask_inspect, our_homectl, run_steps,
    run_steps_with,
};
use homed_tests::world::fixtures;
use secrecy::SecretString;
use serde_json::Value;

/// `inspect` lines that legitimately differ between two homes created a moment apart, or
/// between two calls: creation times, and free space on the shared /home file system.
const TOLERATED_BETWEEN_HOMES: &[&str] = &["Last Change", "Last Passw.", "Disk Free", "Disk Usage"];
/// Between two `inspect` calls on the same home only free space may move.
const TOLERATED_BETWEEN_CALLS: &[&str] = &["Disk Free", "Disk Usage"];

fn lines(text: &str, tolerated: &[&str]) -> Vec<String> {
    mask_inspect(text, tolerated)
}

/// Replaces the second home's name and UID by the first's.
fn as_home(text: &str, from: (&str, u32), to: (&str, u32)) -> String {
    text.replace(from.0, to.0)
        .replace(&from.1.to_string(), &to.1.to_string())
}

fn record(steps: &Steps, name: &str) -> Value {
    let step = steps.expect_status(name, 0);
    serde_json::from_str(step.stdout.trim())
        .unwrap_or_else(|e| panic!("step {name}: not JSON ({e}): {}", step.stdout))
}

/// The record as the client sent it: without what the daemon adds or what differs per home.
fn client_part(mut v: Value) -> Value {
    let o = v.as_object_mut().expect("record is an object");
    for k in [
        "signature",
        "binding",
        "status",
        "userName",
        "uid",
        "lastChangeUSec",
        "lastPasswordChangeUSec",
    ] {
        o.remove(k);
    }
    if let Some(p) = o.get_mut("privileged").and_then(Value::as_object_mut) {
        p.remove("hashedPassword");
    }
    v
}

const LIFECYCLE: &str = r#"
step create_ours env NEWPASSWORD=Pw-one-111 timeout 30 $OURS create ours1 --uid=60201 --storage=directory --enforce-password-policy=no --real-name='Alpha Tester' -G users,adm --email-address=a@example.org
step create_theirs env NEWPASSWORD=Pw-one-111 timeout 30 $THEIRS create theirs1 --uid=60202 --storage=directory --enforce-password-policy=no --real-name='Alpha Tester' -G users,adm --email-address=a@example.org
step list_ours timeout 10 $OURS list
step list_theirs timeout 10 $THEIRS list
step listjson_ours timeout 10 $OURS list --json=pretty
step listjson_theirs timeout 10 $THEIRS list --json=pretty
step inspect_ours1_by_ours timeout 10 $OURS inspect ours1
step inspect_ours1_by_theirs timeout 10 $THEIRS inspect ours1
step inspect_theirs1_by_theirs timeout 10 $THEIRS inspect theirs1
step json_ours1_by_ours timeout 10 $OURS inspect -j ours1
step json_ours1_by_theirs timeout 10 $THEIRS inspect -j ours1
step json_theirs1 timeout 10 $THEIRS inspect -j theirs1
both() { b=$1; shift; step "${b}_ours" env H=ours1 C="$OURS" sh -c "$*"; step "${b}_theirs" env H=theirs1 C="$THEIRS" sh -c "$*"; }
both activate 'PASSWORD=Pw-one-111 timeout 20 $C activate $H'
both auth_right 'PASSWORD=Pw-one-111 timeout 20 $C authenticate $H'
both auth_wrong 'PASSWORD=Wrong-pw-000 timeout 8 $C authenticate $H'
step auth_wrong_bus dbus-send --system --print-reply --dest=org.freedesktop.home1 /org/freedesktop/home1 org.freedesktop.home1.Manager.AuthenticateHome string:ours1 'string:{"password":["Wrong-pw-000"]}'
step active_ours1_by_ours timeout 10 $OURS inspect ours1
step active_ours1_by_theirs timeout 10 $THEIRS inspect ours1
both deactivate 'timeout 20 $C deactivate $H'
both passwd 'PASSWORD=Pw-one-111 NEWPASSWORD=Pw-two-222 timeout 20 $C passwd $H'
both auth_new 'PASSWORD=Pw-two-222 timeout 20 $C authenticate $H'
step auth_old_bus dbus-send --system --print-reply --dest=org.freedesktop.home1 /org/freedesktop/home1 org.freedesktop.home1.Manager.AuthenticateHome string:ours1 'string:{"password":["Pw-one-111"]}'
both update 'PASSWORD=Pw-two-222 timeout 20 $C update $H --real-name="Renamed Tester"'
both list_after 'timeout 10 $C list'
both remove 'timeout 20 $C remove $H'
both inspect_gone 'timeout 10 $C inspect $H'
both inspect_nosuch 'timeout 10 $C inspect nosuch'
both activate_nosuch 'PASSWORD=x timeout 10 $C activate nosuch'
both deactivate_nosuch 'timeout 10 $C deactivate nosuch'
"#;

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn homectl_lifecycle_matches_systemds_homectl() {
    for daemon in HomeDaemon::all() {
        let s = run_steps(daemon, LIFECYCLE, 240);
        let ours = ("ours1", 60201);
        let theirs = ("theirs1", 60202);

        // create: both succeed, and the daemon holds the same record from either client.
        s.expect_status("create_ours", 0);
        s.expect_status("create_theirs", 0);
        let ours_json = record(&s, "json_ours1_by_theirs");
        let theirs_json = record(&s, "json_theirs1");
        assert_eq!(client_part(ours_json.clone()), client_part(theirs_json));
        let hash = ours_json["privileged"]["hashedPassword"][0]
            .as_str()
            .expect("our create hashes the password into privileged.hashedPassword");
        assert!(verify_password(
            &SecretString::from("Pw-one-111".to_owned()),
            hash
        ));
        assert_eq!(
            ours_json["lastChangeUSec"], ours_json["lastPasswordChangeUSec"],
            "create sets both timestamps to the same moment"
        );
        // -j prints exactly what systemd's homectl prints, key order included.
        assert_eq!(
            s.expect_status("json_ours1_by_ours", 0).stdout,
            s.get("json_ours1_by_theirs").stdout
        );

        // list, as a table and as JSON.
        let list = s.expect_status("list_ours", 0);
        assert_eq!(list.stdout, s.expect_status("list_theirs", 0).stdout);
        assert!(
            list.stdout.contains("2 home areas listed."),
            "{}",
            list.stdout
        );
        assert_eq!(
            s.expect_status("listjson_ours", 0).stdout,
            s.expect_status("listjson_theirs", 0).stdout
        );

        // inspect: same home, both CLIs; and our home vs theirs, both shown by systemd's.
        let by_ours = &s.expect_status("inspect_ours1_by_ours", 0).stdout;
        let by_theirs = &s.expect_status("inspect_ours1_by_theirs", 0).stdout;
        assert_same_lines(
            &lines(by_ours, TOLERATED_BETWEEN_CALLS),
            &lines(by_theirs, TOLERATED_BETWEEN_CALLS),
            "inspect of one home by our homectl and by systemd's",
        );
        let theirs_shown = as_home(
            &s.expect_status("inspect_theirs1_by_theirs", 0).stdout,
            theirs,
            ours,
        );
        assert_same_lines(
            &lines(by_theirs, TOLERATED_BETWEEN_HOMES),
            &lines(&theirs_shown, TOLERATED_BETWEEN_HOMES),
            "the home our homectl created vs the one systemd's created",
        );

        // activate, authenticate right and wrong.
        for step in [
            "activate",
            "auth_right",
            "deactivate",
            "passwd",
            "auth_new",
            "update",
            "remove",
        ] {
            s.expect_status(&format!("{step}_ours"), 0);
            s.expect_status(&format!("{step}_theirs"), 0);
        }
        let wrong = s.expect_status("auth_wrong_ours", 1);
        assert!(
            wrong
                .stderr
                .contains("Password incorrect or not sufficient"),
            "{}",
            wrong.stderr
        );
        assert!(wrong.stderr.contains("not a terminal"), "{}", wrong.stderr);
        // systemd's homectl fails too: without a terminal it waits for a password agent
        // until the timeout kills it (ours refuses at once instead).
        assert_ne!(s.get("auth_wrong_theirs").status, 0);
        let bus = s.get("auth_wrong_bus");
        assert!(
            bus.stderr.contains("org.freedesktop.home1.BadPassword"),
            "{}",
            bus.stderr
        );
        let active = &s.expect_status("active_ours1_by_ours", 0).stdout;
        assert!(active.contains("       State: active\n"), "{active}");
        assert!(active.contains("   Bad Auth.: 2\n"), "{active}");
        assert!(active.contains("  Good Auth.: 2\n"), "{active}");
        assert_same_lines(
            &lines(active, TOLERATED_BETWEEN_CALLS),
            &lines(
                &s.get("active_ours1_by_theirs").stdout,
                TOLERATED_BETWEEN_CALLS,
            ),
            "inspect of an active home",
        );

        // passwd: the old password no longer works.
        assert!(
            s.get("auth_old_bus")
                .stderr
                .contains("org.freedesktop.home1.BadPassword"),
            "{}",
            s.get("auth_old_bus").stderr
        );
        // update --real-name shows in list, identically for both homectls.
        let after = &s.expect_status("list_after_ours", 0).stdout;
        assert_eq!(after, &s.expect_status("list_after_theirs", 0).stdout);
        assert_eq!(after.matches("Renamed Tester").count(), 2, "{after}");

        // Failures: same exit status and the same message.
        for step in [
            "inspect_gone",
            "inspect_nosuch",
            "activate_nosuch",
            "deactivate_nosuch",
        ] {
            let o = s.get(&format!("{step}_ours"));
            let t = s.get(&format!("{step}_theirs"));
            assert_eq!(o.status, 1, "{step}: {}", o.stderr);
            assert_eq!(t.status, 1, "{step}: {}", t.stderr);
            assert_eq!(o.stderr, as_home(&t.stderr, theirs, ours), "{step}");
        }
    }
}

const ACCEPTANCE_7: &str = r#"
step create timeout 30 env NEWPASSWORD=Seven-pw-777 $OURS create seven --uid=60333 --real-name='Seven Tester' --member-of=video,audio,users --storage=directory --enforce-password-policy=no
step inspect timeout 10 $OURS inspect seven
step inspect_theirs timeout 10 $THEIRS inspect seven
step getent getent passwd seven
step auth timeout 20 env PASSWORD=Seven-pw-777 $OURS authenticate seven
"#;

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn homectl_create_with_uid_real_name_and_groups() {
    for daemon in HomeDaemon::all() {
        let s = run_steps(daemon, ACCEPTANCE_7, 120);
        s.expect_status("create", 0);
        let shown = &s.expect_status("inspect", 0).stdout;
        for line in [
            "   User name: seven\n",
            "       State: inactive\n",
            " Disposition: regular\n",
            "         UID: 60333\n",
            "         GID: 60333 (seven)\n",
            " Aux. Groups: audio\n              users\n              video\n",
            "   Real Name: Seven Tester\n",
            "   Directory: /home/seven\n",
            "     Storage: directory (no encryption)\n",
            "  Image Path: /home/seven.homedir\n",
            "       Shell: /bin/bash\n",
            "   Passwords: 1\n",
            "  Local Sig.: yes\n",
            "     Service: io.systemd.Home\n",
        ] {
            assert!(shown.contains(line), "missing {line:?} in\n{shown}");
        }
        assert!(shown.contains(" Last Change: "), "{shown}");
        assert_same_lines(
            &lines(shown, TOLERATED_BETWEEN_CALLS),
            &lines(
                &s.expect_status("inspect_theirs", 0).stdout,
                TOLERATED_BETWEEN_CALLS,
            ),
            "inspect of the new home",
        );
        assert_eq!(
            s.expect_status("getent", 0).stdout,
            "seven:x:60333:60333:Seven Tester:/home/seven:/bin/bash\n"
        );
        s.expect_status("auth", 0);
    }
}

/// Many record properties, so that most `inspect` lines appear.
const RICH_FLAGS: &str = "--storage=directory --enforce-password-policy=no --real-name='Rich Person' \
    --email-address=rich@example.org --location='Berlin, Germany' --icon-name=avatar \
    --password-hint='the usual' --timezone=Europe/Berlin --language=de_DE.UTF-8 \
    --setenv=FOO=bar --setenv=ALPHA=1 --umask=0077 --nice=5 --tasks-max=100 --memory-max=1G \
    --memory-high=512M --cpu-weight=50 --io-weight=60 --access-mode=0750 --nosuid=no --noexec=yes \
    --kill-processes=yes --auto-login=no --stop-delay=10s --rate-limit-burst=10 \
    --rate-limit-interval=2min --password-change-min=1d --password-change-max=90d \
    --password-change-warn=7d --password-change-inactive=14d --not-after='2031-02-03 04:05:06 UTC' \
    --not-before='2020-01-01 UTC' --ssh-authorized-keys='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2x test' \
    --skel=/etc/skel -G users --rlimit=NOFILE=1024:4096 --rlimit=CPU=90s --rlimit=RLIMIT_AS=1G:2G";

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn homectl_inspect_shows_every_field_as_systemds_does() {
    let script = format!(
        r#"
step create_ours env NEWPASSWORD=Rich-pw-1 timeout 30 $OURS create richa --uid=60401 {RICH_FLAGS}
step create_theirs env NEWPASSWORD=Rich-pw-1 timeout 30 $THEIRS create richb --uid=60402 {RICH_FLAGS}
step create_locked env NEWPASSWORD=Lock-pw-1 timeout 30 $OURS create locky --storage=directory -P --locked=yes --password-change-now=yes
step a_ours timeout 10 $OURS inspect richa
step a_theirs timeout 10 $THEIRS inspect richa
step b_theirs timeout 10 $THEIRS inspect richb
step ja_ours timeout 10 $OURS inspect --json=pretty richa
step ja_theirs timeout 10 $THEIRS inspect --json=pretty richa
step l_ours timeout 10 $OURS inspect locky
step l_theirs timeout 10 $THEIRS inspect locky
step e_ours timeout 10 $OURS inspect -E richa
step e_theirs timeout 10 $THEIRS inspect -E richa
step ee_ours timeout 10 $OURS inspect -EE richa
step ee_theirs timeout 10 $THEIRS inspect -EE richa
"#
    );
    for daemon in HomeDaemon::all() {
        let s = run_steps(daemon, &script, 120);
        for step in ["create_ours", "create_theirs", "create_locked"] {
            s.expect_status(step, 0);
        }
        let a = &s.expect_status("a_ours", 0).stdout;
        for label in [
            "Email",
            "Location",
            "Passw. Hint",
            "Icon Name",
            "Time Zone",
            "Language",
            "Environment",
            "Not Before",
            "Not After",
            "UMask",
            "Nice",
            "Tasks Max",
            "Memory High",
            "Memory Max",
            "CPU Weight",
            "IO Weight",
            "Access Mode",
            "Mount Flags",
            "Skel. Dir.",
            "Auth. Limit",
            "Passwd Chg.",
            "SSH Pub. Key",
            "Stop Delay",
            "Autom. Login",
            "Kill Proc.",
            "Limit",
        ] {
            assert!(
                a.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{label}:"))),
                "no {label} line in\n{a}"
            );
        }
        assert_same_lines(
            &lines(a, TOLERATED_BETWEEN_CALLS),
            &lines(
                &s.expect_status("a_theirs", 0).stdout,
                TOLERATED_BETWEEN_CALLS,
            ),
            "inspect of a home with many properties",
        );
        assert_same_lines(
            &lines(&s.get("a_theirs").stdout, TOLERATED_BETWEEN_HOMES),
            &lines(
                &as_home(
                    &s.expect_status("b_theirs", 0).stdout,
                    ("richb", 60402),
                    ("richa", 60401),
                ),
                TOLERATED_BETWEEN_HOMES,
            ),
            "the rich home our homectl created vs the one systemd's created",
        );
        assert_eq!(
            s.expect_status("ja_ours", 0).stdout,
            s.expect_status("ja_theirs", 0).stdout
        );
        let locked = &s.expect_status("l_ours", 0).stdout;
        assert!(
            locked.contains("    Login OK: no (record is locked)\n"),
            "{locked}"
        );
        assert!(locked.contains(" Password OK: change now\n"), "{locked}");
        assert_same_lines(
            &lines(locked, TOLERATED_BETWEEN_CALLS),
            &lines(
                &s.expect_status("l_theirs", 0).stdout,
                TOLERATED_BETWEEN_CALLS,
            ),
            "inspect of a locked home",
        );
        for step in ["e", "ee"] {
            assert_eq!(
                s.expect_status(&format!("{step}_ours"), 0).stdout,
                s.expect_status(&format!("{step}_theirs"), 0).stdout,
                "inspect -{}",
                step.to_uppercase()
            );
        }
    }
}

const OTHER_VERBS: &str = r#"
step create timeout 30 env NEWPASSWORD=With-pw-1 $OURS create w1 --storage=directory -P
both() { b=$1; shift; step "${b}_ours" env C="$OURS" sh -c "$*"; step "${b}_theirs" env C="$THEIRS" sh -c "$*"; }
both with 'PASSWORD=With-pw-1 timeout 20 $C with w1 -- sh -c "pwd; exit 7"'
both state_after_with 'timeout 10 $C inspect w1'
step activate timeout 20 env PASSWORD=With-pw-1 $OURS activate w1
both lock 'timeout 10 $C lock w1'
both unlock 'PASSWORD=With-pw-1 timeout 10 $C unlock w1'
both lock_all 'timeout 10 $C lock-all'
both deactivate_all 'timeout 10 $C deactivate-all'
both state_after_all 'timeout 10 $C inspect w1'
both rebalance 'timeout 10 $C rebalance'
both with_fds 'PASSWORD=With-pw-1 timeout 20 $C with w1 -- sh -c "ls /proc/\$\$/fd"'
both with_signal 'PASSWORD=With-pw-1 timeout 20 $C with w1 -- sh -c "kill -TERM \$\$"'
both with_missing 'PASSWORD=With-pw-1 timeout 20 $C with w1 -- /nonexistent/command'
both nobody_inspect 'timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups $C inspect w1'
both nobody_activate 'PASSWORD=With-pw-1 timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups $C activate w1'
both nobody_authenticate 'PASSWORD=With-pw-1 timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups $C authenticate w1'
both unknown_verb 'timeout 10 $C frobnicate'
both bad_uid 'timeout 10 $C create x --uid=100'
both bad_bool 'timeout 10 $C create x --locked=maybe'
both bad_weight 'timeout 10 $C create x --rebalance-weight=0'
both bad_option 'timeout 10 $C create x --bogus'
both bad_sector 'timeout 10 $C create x --luks-sector-size=1000'
both bad_group 'timeout 10 $C create x -G wheel,gr:oup'
both bad_span 'timeout 10 $C create x --password-change-max=5x'
both bad_realname 'timeout 10 $C create x --real-name=a:b'
both no_change 'timeout 10 $C update w1'
both too_few 'timeout 10 $C activate'
both too_many 'timeout 10 $C create a b'
# create --identity=FILE
printf '%s' '{"userName":"idf","realName":"From File","shell":"/bin/sh","storage":"directory","enforcePasswordPolicy":false,"uid":60500}' >"$D/idf.json"
sed 's/idf/idg/; s/60500/60501/' "$D/idf.json" >"$D/idg.json"
step ident_ours env NEWPASSWORD=Id-pw-1 timeout 30 $OURS create --identity="$D/idf.json" -G users
step ident_theirs env NEWPASSWORD=Id-pw-1 timeout 30 $THEIRS create --identity="$D/idg.json" -G users
step ident_json_ours timeout 10 $THEIRS inspect -j idf
step ident_json_theirs timeout 10 $THEIRS inspect -j idg
printf '%s' '{"userName":"rl","storage":"directory","enforcePasswordPolicy":false,"resourceLimits":{"RLIMIT_NOFILE":{"cur":1024,"max":4096},"RLIMIT_CORE":{"cur":null,"max":null},"RLIMIT_AS":{"cur":5,"max":6}}}' >"$D/rl.json"
step rl_create env NEWPASSWORD=Rl-pw-1 timeout 30 $OURS create --identity="$D/rl.json"
both rl_inspect 'timeout 10 $C inspect rl'
step rel_ours env NEWPASSWORD=Rel-pw-1 timeout 30 $OURS create rel1 --storage=directory -P --disk-size=12.25%
step rel_theirs env NEWPASSWORD=Rel-pw-1 timeout 30 $THEIRS create rel2 --storage=directory -P --disk-size=12.25%
step rel_json_ours timeout 10 $THEIRS inspect -j rel1
step rel_json_theirs timeout 10 $THEIRS inspect -j rel2
# On a terminal both color their output the same way.
tty_both() { b=$1; shift; step "${b}_ours" env TERM=xterm-256color script -qec "$OURS --no-pager $*" /dev/null; step "${b}_theirs" env TERM=xterm-256color script -qec "$THEIRS --no-pager $*" /dev/null; }
tty_both tty_list list
tty_both tty_inspect inspect w1
tty_both tty_json -j inspect w1
tty_both tty_listjson --json=pretty list
tty_both tty_error inspect nosuch
# Without --no-pager both page through less, which shows a short listing and quits.
step tty_paged_ours env TERM=xterm-256color script -qec "$OURS list" /dev/null
step tty_paged_theirs env TERM=xterm-256color script -qec "$THEIRS list" /dev/null
# A password typed on a terminal: feed it only once the prompt shows, then check it was not
# echoed.
mkfifo "$D/in"
( script -qfec "$OURS authenticate w1" /dev/null <"$D/in" >"$D/pty.out" 2>"$D/pty.err"; echo $? >"$D/pty.rc" ) &
exec 3>"$D/in"
i=0
while ! grep -q 'Please enter password for user w1:' "$D/pty.out" 2>/dev/null && [ $i -lt 400 ]; do i=$((i+1)); sleep 0.05; done
printf 'With-pw-1\n' >&3
exec 3>&-
wait
"#;

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn homectl_other_verbs_match_systemds_and_prompt_without_echo() {
    for daemon in HomeDaemon::all() {
        let s = run_steps(daemon, OTHER_VERBS, 120);
        s.expect_status("create", 0);
        s.expect_status("activate", 0);
        let with = s.expect_status("with_ours", 7);
        assert_eq!(
            with.stdout, "/home/w1\n",
            "with runs the command in the home"
        );
        s.expect_status("with_theirs", 7);
        assert!(
            s.get("state_after_with_ours")
                .stdout
                .contains("State: inactive")
        );
        assert_eq!(s.expect_status("with_fds_ours", 0).stdout, "0\n1\n2\n");
        s.expect_status("with_missing_ours", 255);
        let nobody = &s.expect_status("nobody_inspect_ours", 0);
        assert!(
            nobody.stderr.contains("output incomplete"),
            "{}",
            nobody.stderr
        );
        assert!(!nobody.stdout.contains("Passwords: 1"), "{}", nobody.stdout);
        for step in [
            "with_fds",
            "with_missing",
            "with_signal",
            "nobody_activate",
            "nobody_authenticate",
            "lock",
            "unlock",
            "lock_all",
            "deactivate_all",
            "rebalance",
            "unknown_verb",
            "bad_uid",
            "bad_bool",
            "bad_weight",
            "bad_option",
            "bad_sector",
            "bad_group",
            "bad_span",
            "bad_realname",
            "no_change",
            "too_few",
            "too_many",
            "state_after_all",
            "nobody_inspect",
        ] {
            let o = s.get(&format!("{step}_ours"));
            let t = s.get(&format!("{step}_theirs"));
            assert_eq!(o.status, t.status, "{step}: {} / {}", o.stderr, t.stderr);
            // getopt names the program as invoked.
            let ours_path = our_homectl().display().to_string();
            assert_eq!(
                o.stderr.replace(&ours_path, "homectl"),
                t.stderr.replace(SYSTEMD_HOMECTL, "homectl"),
                "{step}"
            );
            if !step.starts_with("state_after") && step != "nobody_inspect" {
                assert_eq!(o.stdout, t.stdout, "{step}");
            }
        }
        assert_eq!(
            s.get("lock_ours").status,
            1,
            "directory homes cannot be locked"
        );
        assert!(
            s.get("state_after_all_ours")
                .stdout
                .contains("State: inactive")
        );
        for step in ["tty_list", "tty_json", "tty_listjson", "tty_paged"] {
            let o = s.expect_status(&format!("{step}_ours"), 0);
            assert!(
                o.stdout.contains("\x1B["),
                "{step}: no colors: {}",
                o.stdout
            );
            assert_eq!(
                o.stdout,
                s.expect_status(&format!("{step}_theirs"), 0).stdout,
                "{step}"
            );
        }
        // Errors are red on a terminal, the same for both.
        let o = s.expect_status("tty_error_ours", 1);
        assert!(
            o.stdout.contains("\x1B[0;1;31mFailed to inspect home"),
            "{}",
            o.stdout
        );
        assert_eq!(o.stdout, s.expect_status("tty_error_theirs", 1).stdout);
        let tty = &s.expect_status("tty_inspect_ours", 0).stdout;
        assert!(tty.contains("Login OK: \x1B[0;1;32myes\x1B[0m"), "{tty}");
        assert_same_lines(
            &lines(tty, TOLERATED_BETWEEN_CALLS),
            &lines(
                &s.expect_status("tty_inspect_theirs", 0).stdout,
                TOLERATED_BETWEEN_CALLS,
            ),
            "inspect on a terminal",
        );
        s.expect_status("ident_ours", 0);
        s.expect_status("ident_theirs", 0);
        let from_file = record(&s, "ident_json_ours");
        assert_eq!(from_file["realName"], "From File");
        assert_eq!(
            client_part(from_file),
            client_part(record(&s, "ident_json_theirs"))
        );
        s.expect_status("rl_create", 0);
        let limits = &s.expect_status("rl_inspect_ours", 0).stdout;
        assert!(
            limits.contains("       Limit: RLIMIT_NOFILE=1024:4096\n"),
            "{limits}"
        );
        assert_same_lines(
            &lines(limits, TOLERATED_BETWEEN_CALLS),
            &lines(
                &s.expect_status("rl_inspect_theirs", 0).stdout,
                TOLERATED_BETWEEN_CALLS,
            ),
            "inspect of a home with resource limits",
        );
        s.expect_status("rel_ours", 0);
        s.expect_status("rel_theirs", 0);
        let relative = record(&s, "rel_json_ours");
        assert_eq!(relative["perMachine"][0]["diskSizeRelative"], 526133494);
        assert_eq!(
            client_part(relative),
            client_part(record(&s, "rel_json_theirs"))
        );
        let pty = s.expect_status("pty", 0);
        assert!(
            pty.stdout.contains("Please enter password for user w1:"),
            "{}",
            pty.stdout
        );
        assert!(
            !pty.stdout.contains("With-pw-1"),
            "the password was echoed: {}",
            pty.stdout
        );
    }
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn homectl_shows_systemd_homeds_fixture_records_as_systemds_does() {
    let fixture = fixtures().join("homed-252");
    let machine_id = std::fs::read_to_string(fixture.join("machine-id")).expect("machine-id");
    let script = r#"
for u in alice bob carol; do
  step "inspect_${u}_ours" timeout 10 $OURS inspect $u
  step "inspect_${u}_theirs" timeout 10 $THEIRS inspect $u
  step "json_${u}_ours" timeout 10 $OURS inspect --json=pretty $u
  step "json_${u}_theirs" timeout 10 $THEIRS inspect --json=pretty $u
done
step list_ours timeout 10 $OURS list
step list_theirs timeout 10 $THEIRS list
"#;
    for daemon in HomeDaemon::all() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let options = daemon.world_options_with_records(
            &fixture.join("records"),
            &fixture.join("keys"),
            &machine_id,
            scratch.path(),
        );
        let s = run_steps_with(&options, script, 60);
        for user in ["alice", "bob", "carol"] {
            let ours = &s.expect_status(&format!("inspect_{user}_ours"), 0).stdout;
            assert!(ours.contains(&format!("   User name: {user}\n")), "{ours}");
            assert_same_lines(
                &lines(ours, &[]),
                &lines(
                    &s.expect_status(&format!("inspect_{user}_theirs"), 0).stdout,
                    &[],
                ),
                &format!("inspect {user}"),
            );
            assert_eq!(
                s.expect_status(&format!("json_{user}_ours"), 0).stdout,
                s.expect_status(&format!("json_{user}_theirs"), 0).stdout
            );
        }
        let carol = &s.get("inspect_carol_ours").stdout;
        for line in [
            "    Login OK: no (record is locked)\n",
            "      Locked: yes\n",
            " Passwd Chg.: max 2month 4w 1d 3h\n",
        ] {
            assert!(carol.contains(line), "missing {line:?} in\n{carol}");
        }
        assert_eq!(
            s.expect_status("list_ours", 0).stdout,
            s.expect_status("list_theirs", 0).stdout
        );
    }
}
