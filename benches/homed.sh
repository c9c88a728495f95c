#!/bin/bash
# Daemon benchmark (issue 4): create, activate, authenticate and deactivate of a directory home,
# our homed against systemd-homed 252, driven by systemd's homectl in one private world
# (tests/sandbox/world.sh) on the same machine. The daemons take turns in rounds (each round
# starts a daemon, runs its cycles, stops it), so slow drift hits both alike. Each cycle uses a
# new user; removing it is not timed.
#
# Prints a Markdown table and writes it to benches/results/homed.md. Needs root.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cycles=${HOMED_BENCH_CYCLES:-10}
rounds=${HOMED_BENCH_ROUNDS:-3}

if [ "${1:-}" != "--inside" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "homed.sh: needs root (it runs both daemons in a private world)" >&2
        exit 1
    fi
    cd "$root"
    target=${CARGO_TARGET_DIR:-$root/target}
    cargo build --release --locked -p homed >&2
    policy=$(mktemp -d)
    trap 'rm -rf "$policy"' EXIT
    cp "$root/dist/dbus/org.freedesktop.home1.conf" "$policy/"
    out=$(mktemp)
    trap 'rm -rf "$policy" "$out"' EXIT
    HOMED_BENCH_BIN=$target/release/homed HOMED_BENCH_CYCLES=$cycles HOMED_BENCH_ROUNDS=$rounds \
        timeout 1200 "$root/tests/sandbox/world.sh" --dbus-policy "$policy" -- "$root/benches/homed.sh" --inside >"$out"
    {
        echo "# Daemon benchmark"
        echo
        echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r); release homed; systemd-homed"
        echo "$(dpkg-query -W -f='${Version}' systemd-homed 2>/dev/null || echo 252); directory storage; $rounds rounds of $cycles"
        echo "cycles per daemon, taking turns. Each step is one call of systemd's homectl (process start"
        echo "included, the same for both) with PASSWORD/NEWPASSWORD from the environment."
        echo
        echo "| step | homed median ms | systemd-homed median ms | ratio (homed / systemd-homed) |"
        echo "|---|---|---|---|"
        for step in create activate authenticate deactivate; do
            # Median in milliseconds of one daemon's timings of one step.
            median() {
                awk -v w="$1" -v s="$step" '$1 == w && $2 == s {print $3 / 1000000}' "$out" | sort -n |
                    awk '{a[NR] = $1} END {printf "%.1f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
            }
            ours=$(median ours)
            theirs=$(median reference)
            ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f×", (b > 0) ? a / b : 0 }')
            echo "| $step | $ours | $theirs | $ratio |"
        done
    } | tee "$root/benches/results/homed.md"
    exit
fi

# Inside the world.
wait_name() {
    local want=$1 i=0
    while :; do
        if dbus-send --system --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner \
            string:org.freedesktop.home1 2>/dev/null | grep -q "boolean $want"; then
            return 0
        fi
        i=$((i + 1))
        [ $i -lt 400 ] || { echo "homed.sh: daemon did not come or go" >&2; exit 1; }
        sleep 0.05
    done
}
timed() {
    local who=$1 step=$2 t0 t1
    shift 2
    t0=$(date +%s%N)
    "$@" </dev/null >/dev/null 2>&1 || { echo "homed.sh: $who: $step failed: $*" >&2; exit 1; }
    t1=$(date +%s%N)
    echo "$who $step $((t1 - t0))"
}
export PASSWORD=Bench-pw-123 NEWPASSWORD=Bench-pw-123
n=0
for round in $(seq "$rounds"); do
    for who in ours reference; do
        if [ "$who" = ours ]; then
            "$HOMED_BENCH_BIN" >>"$HOMED_WORLD_STATE/ours.log" 2>&1 </dev/null &
        else
            SYSTEMD_LOG_TARGET=console /lib/systemd/systemd-homed >>"$HOMED_WORLD_STATE/reference.log" 2>&1 </dev/null &
        fi
        pid=$!
        wait_name true
        for i in $(seq "$cycles"); do
            n=$((n + 1))
            user=bench$n
            timed $who create timeout 60 homectl create $user --storage=directory --enforce-password-policy=no
            timed $who activate timeout 60 homectl activate $user
            timed $who authenticate timeout 60 homectl authenticate $user
            timed $who deactivate timeout 60 homectl deactivate $user
            timeout 60 homectl remove $user </dev/null >/dev/null 2>&1
        done
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        wait_name false
    done
done
