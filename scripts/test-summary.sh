#!/bin/bash
# Adds up the "test result: ..." lines of cargo test (and of any tier that prints lines in the same
# form) in LOG, and prints one closing line: "tests: N passed, N failed, N skipped".
# Exits non-zero if any test failed or a tier's result line says FAILED.
set -euo pipefail

log=${1:?usage: test-summary.sh LOG}
[ -f "$log" ] || { echo "test-summary: no log at $log" >&2; exit 1; }

awk '
/^test result: / {
    for (i = 1; i <= NF; i++) {
        n = $(i - 1) + 0
        if ($i ~ /^passed/) passed += n
        else if ($i ~ /^failed/) failed += n
        else if ($i ~ /^ignored/) ignored += n
    }
    if ($3 != "ok.") bad = 1
}
END {
    printf "tests: %d passed, %d failed, %d skipped\n", passed, failed, ignored
    exit (failed > 0 || bad) ? 1 : 0
}' "$log"
