#!/bin/bash
# LUKS benchmark (issue 6): create, activate, lock, unlock and deactivate of a 64 MiB ext4 LUKS
# home with PBKDF2 at 1 ms, through homectl, on real dm-crypt in qemu. In each round one Debian
# guest boot times systemd-homed 252, then stops it and times our homed and homectl (release
# build) doing the same on the same bus, kernel and disk (vm-tests/interop-run.sh). Prints a
# Markdown table of the medians and writes it to benches/results/luks.md. Needs root and what
# vm-tests need (see vm-tests/README.md); the first run builds the guests (cached).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${HOMED_BENCH_ROUNDS:-3}
cd "$root"
cargo build --release --locked -p homed -p homectl -p pam_homed -p nss_homed -p homed-vm-tests \
    --bins --lib --examples >&2

lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
for ((r = 1; r <= rounds; r++)); do
    echo "luks.sh: round $r of $rounds" >&2
    HOMED_VM_PROFILE=release bash vm-tests/vm.sh interop 2>/dev/null | grep -E '^  \| bench (homed252|ourdaemon) ' >> "$lines" || true
done
# The raw lines, for whoever checks a figure (adopted=1: the newer embedded record was taken).
sed 's/^ *| /luks.sh: /' "$lines" >&2

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "x"; else if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
value() { grep "bench $1 " "$lines" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k && $2 ~ /^[0-9]+$/ { print $2 }' | median; }

{
    echo "# LUKS homes: our homed vs systemd-homed 252 on real dm-crypt"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, qemu TCG, Debian's kernel $(ls "${HOMED_VM_CACHE:-/var/cache/homed-vm}" 2>/dev/null | sed -n 's/^linux-image-\([0-9.]*-[0-9]*-amd64\)$/\1/p' | head -1), one Debian 12 guest per"
    echo "round with both daemons (release build of ours), $rounds rounds, medians in ms; lower ratio is better."
    echo "64 MiB ext4 home, PBKDF2 at 1 ms, driven by each daemon's own homectl. activate-newer is an"
    echo "activation that finds the image's embedded record newer than the host record (the host"
    echo "record from before an update put back while the daemon was stopped): it adopts the newer copy."
    echo
    echo "| operation | systemd-homed 252 | homed | ratio |"
    echo "|---|---:|---:|---:|"
    for op in create activate lock unlock deactivate activate-newer; do
        a=$(value ourdaemon "$op")
        b=$(value homed252 "$op")
        if [[ $a =~ ^[0-9]+$ && $b =~ ^[0-9]+$ && $b -gt 0 ]]; then
            awk -v op="$op" -v a="$a" -v b="$b" 'BEGIN { printf "| %s | %d | %d | %.2f |\n", op, b, a, a / b }'
        else
            echo "| $op | ${b} | ${a} | – |"
        fi
    done
} | tee benches/results/luks.md
