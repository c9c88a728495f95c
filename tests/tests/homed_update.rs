//! UpdateHome as v252 does it, call for call against systemd-homed: an older record is a
//! downgrade, an equal timestamp with other content a mismatch, binding or status refused, the
//! secret checked (v252 asks for it), a newer unsigned record accepted and re-signed.

use homed_tests::homed::{lines_starting_with, run_started, tagged};

const VARIANTS: &str = r#"
import json, sys
rec = json.loads(sys.argv[1])
for k in ("binding", "status", "signature"):
    rec.pop(k, None)
ts = rec["lastChangeUSec"]
def out(name, r):
    print(name + "\t" + json.dumps(r))
secret = {"password": ["Test-pw-123"]}
out("downgrade", dict(rec, lastChangeUSec=ts - 1000, realName="Older", secret=secret))
out("same-timestamp", dict(rec, realName="Same", secret=secret))
out("with-binding", dict(rec, lastChangeUSec=ts + 1000, binding={}, secret=secret))
out("no-secret", dict(rec, lastChangeUSec=ts + 1000, realName="No Secret"))
out("wrong-secret", dict(rec, lastChangeUSec=ts + 1000, realName="Wrong", secret={"password": ["wrong"]}))
out("unknown-user", dict(rec, userName="nosuch", lastChangeUSec=ts + 1000, secret=secret))
out("good", dict(rec, lastChangeUSec=ts + 1000, realName="Newer", secret=secret))
"#;

const SCRIPT: &str = r#"
$START || exit 1
export NEWPASSWORD=Test-pw-123
timeout 60 homectl create tuser --storage=directory --enforce-password-policy=no --rate-limit-burst=1000 </dev/null >/dev/null || exit 1
cat >"$HOMED_WORLD_STATE/variants.py" <<'PY'
@VARIANTS@
PY
rec=$(call GetUserRecordByName string:tuser | sed -n 's/^ *string "\(.*\)"$/\1/p' | head -n1 | sed 's/\\"/"/g; s/\\\\/\\/g')
/usr/bin/python3 "$HOMED_WORLD_STATE/variants.py" "$rec" >"$HOMED_WORLD_STATE/variants" || { echo "no record: $rec"; exit 1; }
while IFS="$(printf '\t')" read -r name json; do
    r=$(call UpdateHome "string:$json" | sed -n 's/^Error \([^:]*\):.*/\1/p; s/^method return.*/ok/p' | head -n1)
    echo "UPDATE $name ${r:-none}"
done <"$HOMED_WORLD_STATE/variants"
homectl inspect tuser | sed -n 's/^ *Real Name: /REALNAME /p; s/^ *Local Sig.: /LOCALSIG /p'
exit 0
"#;

fn run(start: &str) -> String {
    run_started(&SCRIPT.replace("@VARIANTS@", VARIANTS), start)
}

#[test]
#[ignore = "needs root: runs in a private world (tests/sandbox/world.sh)"]
fn update_home_answers_as_systemd_homed() {
    let ours = run("start_ours");
    let theirs = run("start_reference");
    let facts = |out: &str| lines_starting_with(out, &["UPDATE ", "REALNAME ", "LOCALSIG "]);
    assert_eq!(
        facts(&ours),
        facts(&theirs),
        "ours:\n{ours}\nsystemd-homed:\n{theirs}"
    );
    eprintln!("{}", facts(&ours).join("\n"));
    assert_eq!(tagged(&ours, "UPDATE ").len(), 7, "{ours}");
    assert!(ours.contains("UPDATE good ok"), "{ours}");
    assert!(ours.contains("REALNAME Newer"), "{ours}");
}
