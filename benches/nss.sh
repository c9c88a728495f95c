#!/bin/bash
# NSS lookup benchmark (issue 3): getpwnam hit and miss, getpwuid, getgrnam and initgroups through
#   - nss_files (a user in /etc/passwd, appended at the end as a newly added user would be),
#   - nss_homed from published records (`files homed`, as shipped, and `homed` alone),
#   - nss_homed through varlink to systemd-homed 252 (no published records),
#   - nss-systemd to systemd-homed 252 (`files systemd`, as Debian ships it),
# per lookup in one long-running process and as whole fresh processes (`getent passwd NAME`,
# `getent passwd nosuch`, `id NAME`). Everything runs in one private world (tests/sandbox/world.sh)
# on the same machine, so the ratios are what matters. The module is the release build.
#
# Prints a Markdown table and writes it to benches/results/nss.md. Needs root.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" != "--inside" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "nss.sh: needs root (it runs systemd-homed in a private world)" >&2
        exit 1
    fi
    cd "$root"
    target=${CARGO_TARGET_DIR:-$root/target}
    work=$target/nss-bench
    mkdir -p "$work/lib"
    cargo build --release --locked -p nss_homed >&2
    ln -sf "$target/release/libnss_homed.so" "$work/lib/libnss_homed.so.2"
    helper=$(cargo test --locked -p homed-tests --test nss_bench --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "nss_bench" and m.get("executable"):
        print(m["executable"])')
    [ -x "$helper" ] || { echo "nss.sh: cannot build the publishing helper" >&2; exit 1; }
    cat > "$work/lookup-bench.c" <<'EOF'
/* Times NSS calls through glibc: `OP KEY N` prints nanoseconds per call, `spawn N ARGV...`
 * nanoseconds per fresh process. */
#define _GNU_SOURCE
#include <grp.h>
#include <pwd.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int one(const char *op, const char *key) {
    static char buf[16384];
    struct passwd pw, *pr = NULL;
    struct group gr, *gres = NULL;
    if (!strcmp(op, "pwnam")) {
        getpwnam_r(key, &pw, buf, sizeof buf, &pr);
        return pr != NULL;
    } else if (!strcmp(op, "pwuid")) {
        getpwuid_r((uid_t)strtoul(key, NULL, 10), &pw, buf, sizeof buf, &pr);
        return pr != NULL;
    } else if (!strcmp(op, "grnam")) {
        getgrnam_r(key, &gr, buf, sizeof buf, &gres);
        return gres != NULL;
    } else if (!strcmp(op, "initgroups")) {
        gid_t groups[64];
        int n = 64;
        getgrouplist(key, 0, groups, &n);
        return n > 1;
    }
    fprintf(stderr, "unknown op %s\n", op);
    exit(2);
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "spawn")) {
        int n = atoi(argv[2]);
        double start = now_ns();
        for (int i = 0; i < n; i++) {
            pid_t pid;
            int status;
            posix_spawn_file_actions_t fa;
            posix_spawn_file_actions_init(&fa);
            posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
            if (posix_spawnp(&pid, argv[3], &fa, NULL, argv + 3, environ) != 0) return 2;
            waitpid(pid, &status, 0);
            posix_spawn_file_actions_destroy(&fa);
        }
        printf("%.0f\n", (now_ns() - start) / n);
        return 0;
    }
    if (argc != 4) return 2;
    int n = atoi(argv[3]);
    int found = 0;
    for (int i = 0; i < 50; i++) found = one(argv[1], argv[2]);
    double start = now_ns();
    for (int i = 0; i < n; i++) one(argv[1], argv[2]);
    printf("%.0f %s\n", (now_ns() - start) / n, found ? "hit" : "miss");
    return 0;
}
EOF
    sed -i 's/#include <grp.h>/#include <fcntl.h>\n#include <grp.h>/' "$work/lookup-bench.c"
    cc -O2 -o "$work/lookup-bench" "$work/lookup-bench.c"
    out=$work/nss.md
    "$root/tests/sandbox/world.sh" --homed-reference -- \
        env NSS_BENCH_WORK="$work" NSS_BENCH_HELPER="$helper" "$0" --inside > "$out"
    mkdir -p "$root/benches/results"
    cp "$out" "$root/benches/results/nss.md"
    cat "$out"
    exit 0
fi

# ---- inside the world ----
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
work=$NSS_BENCH_WORK
bench=$work/lookup-bench
state=${HOMED_WORLD_STATE:-/run/homed-world}
export LD_LIBRARY_PATH=$work/lib
N_FAST=${NSS_BENCH_N_FAST:-20000}
N_SLOW=${NSS_BENCH_N_SLOW:-2000}
N_SPAWN=${NSS_BENCH_N_SPAWN:-300}

for u in hbench hbench2 hbench3; do
    PASSWORD=Bench-pw-1 NEWPASSWORD=Bench-pw-1 timeout 60 homectl create "$u" \
        --storage=directory --enforce-password-policy=no --member-of=users </dev/null >/dev/null
done
huid=$(getent passwd hbench | cut -d: -f3)
HOMED_NSS_TEST_IN_WORLD=1 "$NSS_BENCH_HELPER" --ignored --exact nss_bench_publish_daemon_users >/dev/null

# A classic user appended to copies of /etc/passwd and /etc/group.
cp /etc/passwd "$state/passwd"; cp /etc/group "$state/group"
echo "fbench:x:61999:61999:File Bench:/home/fbench:/bin/bash" >> "$state/passwd"
echo "fbench:x:61999:" >> "$state/group"
sed -i 's/^\(users:x:100:.*\)$/\1,fbench/; s/^users:x:100:,fbench$/users:x:100:fbench/' "$state/group"
mount --bind "$state/passwd" /etc/passwd
mount --bind "$state/group" /etc/group

conf() {
    printf 'passwd: %s\ngroup: %s\nshadow: %s\n' "$1" "$1" "$1" > "$state/nsswitch-$2.conf"
    umount /etc/nsswitch.conf 2>/dev/null || true
    mount --bind "$state/nsswitch-$2.conf" /etc/nsswitch.conf
}

# The best of $REPEAT runs: other work on the machine only ever adds time.
REPEAT=${NSS_BENCH_REPEAT:-3}
best() {
    local b="" r
    for _ in $(seq "$REPEAT"); do
        r=$("$bench" "$@")
        if [ -z "$b" ] || [ "${r%% *}" -lt "${b%% *}" ]; then b=$r; fi
    done
    echo "$b"
}

# One row: label, nsswitch services, user name, uid, iterations.
declare -A R
row() {
    local label=$1 services=$2 name=$3 uid=$4 n=$5
    conf "$services" "$label"
    R[$label,hit]=$(best pwnam "$name" "$n")
    R[$label,miss]=$(best pwnam nosuchuser "$n")
    R[$label,uid]=$(best pwuid "$uid" "$n")
    R[$label,grnam]=$(best grnam "$name" "$n")
    R[$label,initgroups]=$(best initgroups "$name" "$n")
    R[$label,getent]=$(best spawn "$N_SPAWN" getent passwd "$name")
    R[$label,getentmiss]=$(best spawn "$N_SPAWN" getent passwd nosuchuser)
    R[$label,id]=$(best spawn "$N_SPAWN" id "$name")
    # Instructions of one fresh process, which other work on the machine does not change
    # (only for sources that do their work inside the process).
    if [ -n "${count_ir:-}" ]; then
        R[$label,ir_getent]=$(ir getent passwd "$name")
        R[$label,ir_getentmiss]=$(ir getent passwd nosuchuser)
        R[$label,ir_id]=$(ir id "$name")
    fi
}

# Instructions executed by one run of a command (valgrind's callgrind), when valgrind is there.
count_ir=""
if [ -z "${NSS_BENCH_NO_VALGRIND:-}" ] && command -v valgrind >/dev/null; then count_ir=1; fi
ir() {
    # The command's own exit status (2 for a name getent does not find) does not matter here.
    { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null || true; } |
        awk '/Collected :/ { print $NF }'
}

row files "files" fbench 61999 "$N_FAST"
row published "files homed" hbench "$huid" "$N_FAST"
row published-alone "homed" hbench "$huid" "$N_FAST"
ir_on=$count_ir; count_ir=""
row nss-systemd "files systemd" hbench "$huid" "$N_SLOW"
row nss-systemd-alone "systemd" hbench "$huid" "$N_SLOW"
mv /run/homed/nss /run/homed/nss.off
row varlink "files homed" hbench "$huid" "$N_SLOW"
mv /run/homed/nss.off /run/homed/nss
count_ir=$ir_on

us() { awk -v ns="${1%% *}" 'BEGIN { printf "%.2f", ns / 1000 }'; }
ms() { awk -v ns="${1%% *}" 'BEGIN { printf "%.2f", ns / 1000000 }'; }
ratio() { awk -v a="${1%% *}" -v b="${2%% *}" 'BEGIN { printf "%.2f", a / b }'; }
flag() { case "$1" in *miss*) echo " (not found!)" ;; esac; }

echo "# NSS benchmark"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r); release libnss_homed.so;"
echo "systemd-homed $(/lib/systemd/systemd-homed --version 2>/dev/null | head -1 | awk '{print $2}'); $N_FAST iterations per lookup"
echo "($N_SLOW through varlink), $N_SPAWN fresh processes per command, best of $REPEAT runs. nss_files looks up a user"
echo "appended to /etc/passwd ($(wc -l < /etc/passwd) lines); the others look up a home made by systemd's homectl."
echo "Load average before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the"
echo "machine inflates every figure; compare ratios within one run)."
echo
echo "Per lookup in one process (µs; ratio to nss_files in brackets):"
echo
echo "| source (nsswitch) | getpwnam hit | getpwnam miss | getpwuid | getgrnam | initgroups |"
echo "|---|---|---|---|---|---|"
for l in files published published-alone varlink nss-systemd nss-systemd-alone; do
    case $l in
        files) d="nss_files (\`files\`)" ;;
        published) d="nss_homed, published records (\`files homed\`)" ;;
        published-alone) d="nss_homed, published records (\`homed\`)" ;;
        varlink) d="nss_homed → varlink → systemd-homed (\`files homed\`)" ;;
        nss-systemd) d="nss-systemd → systemd-homed (\`files systemd\`)" ;;
        nss-systemd-alone) d="nss-systemd → systemd-homed (\`systemd\`)" ;;
    esac
    line="| $d"
    for op in hit miss uid grnam initgroups; do
        v=${R[$l,$op]}
        extra=""
        if [ "$op" != miss ]; then extra=$(flag "$v"); fi
        line+=" | $(us "$v") [$(ratio "$v" "${R[files,$op]}")×]$extra"
    done
    echo "$line |"
done
echo
echo "nss-systemd ÷ nss_homed published (\`files homed\`), per lookup: getpwnam hit $(ratio "${R[nss-systemd,hit]}" "${R[published,hit]}")×," \
    "miss $(ratio "${R[nss-systemd,miss]}" "${R[published,miss]}")×, getpwuid $(ratio "${R[nss-systemd,uid]}" "${R[published,uid]}")×," \
    "getgrnam $(ratio "${R[nss-systemd,grnam]}" "${R[published,grnam]}")×, initgroups $(ratio "${R[nss-systemd,initgroups]}" "${R[published,initgroups]}")×."
echo
echo "The modules alone (\`systemd\` ÷ \`homed\`, no nss_files in front), per lookup: getpwnam hit $(ratio "${R[nss-systemd-alone,hit]}" "${R[published-alone,hit]}")×," \
    "miss $(ratio "${R[nss-systemd-alone,miss]}" "${R[published-alone,miss]}")×, getpwuid $(ratio "${R[nss-systemd-alone,uid]}" "${R[published-alone,uid]}")×," \
    "getgrnam $(ratio "${R[nss-systemd-alone,grnam]}" "${R[published-alone,grnam]}")×."
echo
echo "Fresh processes (ms per run; ratio to nss_files in brackets):"
echo
echo "| source | \`getent passwd NAME\` | \`getent passwd nosuch\` | \`id NAME\` |"
echo "|---|---|---|---|"
for l in files published published-alone varlink nss-systemd nss-systemd-alone; do
    line="| $l"
    for op in getent getentmiss id; do
        line+=" | $(ms "${R[$l,$op]}") [$(ratio "${R[$l,$op]}" "${R[files,$op]}")×]"
    done
    echo "$line |"
done
if [ -n "$count_ir" ]; then
    kir() { awk -v n="$1" 'BEGIN { printf "%.0f", n / 1000 }'; }
    echo
    echo "Instructions per fresh process (thousands, counted by valgrind's callgrind: the same on a"
    echo "loaded machine; ratio to nss_files in brackets). Only for sources that answer inside the"
    echo "process: the daemons' work behind varlink and nss-systemd is not counted there."
    echo
    echo "| source | \`getent passwd NAME\` | \`getent passwd nosuch\` | \`id NAME\` |"
    echo "|---|---|---|---|"
    for l in files published published-alone; do
        line="| $l"
        for op in ir_getent ir_getentmiss ir_id; do
            line+=" | $(kir "${R[$l,$op]}") [$(ratio "${R[$l,$op]}" "${R[files,$op]}")×]"
        done
        echo "$line |"
    done
fi
echo
echo "\"not found!\" marks a lookup that found nothing where the others found the user: with"
echo "\`group: homed\` alone the \`users\` group of /etc/group is not configured, so initgroups only"
echo "finds the primary group."
echo
echo "Targets: published within 2× of nss_files per lookup; ≥ 20× faster than nss-systemd;"
echo "a fresh \`getent passwd\` of a homed user within 1.2× of one for an /etc/passwd user."
