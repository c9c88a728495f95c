#!/bin/bash
# The unprivileged tier: every test binary of the workspace, run as an ordinary user (nobody,
# uid 65534), as `cargo test` would run it. The tests that need root are #[ignore]d with the
# reason, so here they must be reported as ignored and everything else must pass.
#
# Prints one line per binary ("unprivileged: BINARY: N passed, N ignored") and a total; the lines
# are not in cargo's "test result:" form, so that the summary of `make test` counts each test once.
set -euo pipefail
cd "$(dirname "$0")/.."

USER_ID=65534
mapfile -t binaries < <(cargo test --workspace --locked --no-run --message-format=json 2>/dev/null |
    /usr/bin/python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(os.path.dirname(m["manifest_path"]) + "\t" + m["executable"])
')
[ ${#binaries[@]} -gt 0 ] || { echo "unprivileged: no test binaries found" >&2; exit 1; }

total_passed=0 total_ignored=0 failed=0
for entry in "${binaries[@]}"; do
    dir=${entry%%$'\t'*} bin=${entry#*$'\t'}
    out=$(cd "$dir" && setpriv --reuid=$USER_ID --regid=$USER_ID --clear-groups \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent TMPDIR=/tmp \
        "$bin" --test-threads=2 2>&1) || {
        echo "$out" | tail -40
        echo "unprivileged: $(basename "$bin"): FAILED"
        failed=$((failed + 1))
        continue
    }
    line=$(echo "$out" | grep '^test result:' | tail -1)
    passed=$(echo "$line" | sed -n 's/.* \([0-9]*\) passed.*/\1/p')
    ignored=$(echo "$line" | sed -n 's/.* \([0-9]*\) ignored.*/\1/p')
    total_passed=$((total_passed + ${passed:-0}))
    total_ignored=$((total_ignored + ${ignored:-0}))
    echo "unprivileged: $(basename "$bin"): ${passed:-0} passed, ${ignored:-0} ignored"
done
echo "unprivileged tier (uid $USER_ID): $total_passed passed, $total_ignored ignored (need root), $failed binaries failed"
[ "$failed" -eq 0 ]
