#!/bin/bash
# PAM login benchmark (issue 5): authenticate + open_session + close_session of the login stack
# of pam.d-examples/, with pam_homed.so and with systemd's pam_systemd_home.so (the same files
# with the module name replaced), against systemd-homed 252 (until our daemon can take its
# place), same user, same machine, one private world (tests/sandbox/world.sh). Each cycle starts
# from an inactive home, so it includes the activation and the deactivation request; the wait
# for the deactivation to finish is not timed. The two modules alternate cycle by cycle.
#
# Prints a Markdown table and writes it to benches/results/pam.md. Needs root.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cycles=${PAM_BENCH_CYCLES:-40}

if [ "${1:-}" != "--inside" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "pam.sh: needs root (it runs systemd-homed in a private world)" >&2
        exit 1
    fi
    cd "$root"
    target=${CARGO_TARGET_DIR:-$root/target}
    work=$target/pam-bench
    mkdir -p "$work"
    cargo build --release --locked -p pam_homed >&2
    cat > "$work/login-cycle.c" <<'EOF'
/* `login-cycle CONFDIR SERVICE USER PASSWORD`: one authenticate + open_session + close_session
 * through pam_start_confdir, answering every prompt with PASSWORD. Prints the nanoseconds the
 * PAM calls took, or exits 1 with the failing step. */
#define _GNU_SOURCE
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int converse(int n, const struct pam_message **msg, struct pam_response **resp, void *data) {
    struct pam_response *r = calloc(n, sizeof *r);
    if (!r) return PAM_BUF_ERR;
    for (int i = 0; i < n; i++)
        if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON)
            r[i].resp = strdup((const char *)data);
    *resp = r;
    return PAM_SUCCESS;
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 5) return 2;
    struct pam_conv conv = { converse, argv[4] };
    pam_handle_t *h = NULL;
    double t0 = now_ns();
    int rc = pam_start_confdir(argv[2], argv[3], &conv, argv[1], &h);
    if (rc != PAM_SUCCESS) { fprintf(stderr, "pam_start: %d\n", rc); return 1; }
    if ((rc = pam_authenticate(h, 0)) != PAM_SUCCESS) { fprintf(stderr, "authenticate: %s\n", pam_strerror(h, rc)); return 1; }
    if ((rc = pam_open_session(h, 0)) != PAM_SUCCESS) { fprintf(stderr, "open_session: %s\n", pam_strerror(h, rc)); return 1; }
    if ((rc = pam_close_session(h, 0)) != PAM_SUCCESS) { fprintf(stderr, "close_session: %s\n", pam_strerror(h, rc)); return 1; }
    pam_end(h, PAM_SUCCESS);
    printf("%.0f\n", now_ns() - t0);
    return 0;
}
EOF
    cc -O2 -o "$work/login-cycle" "$work/login-cycle.c" -lpam
    PAM_BENCH_WORK=$work PAM_BENCH_SO=$target/release/libpam_homed.so PAM_BENCH_CYCLES=$cycles \
        timeout 600 "$root/tests/sandbox/world.sh" --homed-reference -- "$root/benches/pam.sh" --inside
    exit
fi

# Inside the world: our module where the examples find it, the examples and their copy.
state=$HOMED_WORLD_STATE
sec=$(readlink -f /lib/x86_64-linux-gnu/security)
mkdir -p "$state/security"
cp -a "$sec"/. "$state/security/"
install -m 0644 "$PAM_BENCH_SO" "$state/security/pam_homed.so"
mount --bind "$state/security" "$sec"
mkdir -p "$state/pam.d-systemd-home"
for f in "$root"/pam.d-examples/*; do
    sed 's/pam_homed\.so/pam_systemd_home.so/g' "$f" > "$state/pam.d-systemd-home/$(basename "$f")"
done

user=benchuser
password=Bench-pw-4711
NEWPASSWORD=$password timeout 60 homectl create "$user" --storage=directory \
    --enforce-password-policy=no >/dev/null

mounted() { awk -v m="/home/$user" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; }
wait_inactive() {
    local deadline=$((SECONDS + 30))
    while mounted; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "pam.sh: $user stayed active" >&2; exit 1; }
        sleep 0.01
    done
}

declare -a ours theirs
for ((i = 0; i < cycles; i++)); do
    wait_inactive
    ours+=("$("$PAM_BENCH_WORK/login-cycle" "$root/pam.d-examples" login "$user" "$password")")
    wait_inactive
    theirs+=("$("$PAM_BENCH_WORK/login-cycle" "$state/pam.d-systemd-home" login "$user" "$password")")
done
wait_inactive

stats() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END {
    printf "%.2f %.2f %.2f", a[int((NR + 1) / 2)] / 1e6, a[int(NR * 0.1) + 1] / 1e6, a[int(NR * 0.9)] / 1e6 }'; }
read -r om olo ohi <<<"$(stats "${ours[@]}")"
read -r tm tlo thi <<<"$(stats "${theirs[@]}")"
ratio=$(awk -v a="$om" -v b="$tm" 'BEGIN { printf "%.2f", a / b }')

result=$(cat <<EOF
# PAM benchmark

$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r); release pam_homed.so; systemd-homed 252
with directory storage; $cycles login cycles per module, alternating. One cycle is pam_start_confdir,
pam_authenticate (the first AcquireHome without a password, then with the one prompted for),
pam_open_session, pam_close_session and pam_end through the login stack of pam.d-examples/, from
an inactive home; waiting for the deactivation is not timed.

| module (daemon) | median ms | p10 ms | p90 ms | ratio to pam_systemd_home |
|---|---|---|---|---|
| pam_homed.so (systemd-homed 252) | $om | $olo | $ohi | ${ratio}× |
| pam_systemd_home.so (systemd-homed 252) | $tm | $tlo | $thi | 1.00× |

Our daemon takes systemd-homed's place in the first row once it can run in the world
(\`world.sh --homed\`); the issue's comparison is pam_homed with our daemon against this second row.
EOF
)
echo "$result"
echo "$result" > "$root/benches/results/pam.md"
