#!/bin/bash
# PAM login benchmark (issue 5): authenticate + open_session + close_session of the login stack
# of pam.d-examples/, for pam_homed.so with our homed against systemd's pam_systemd_home.so (the
# same files with the module name replaced) with systemd-homed 252, plus the two crossed pairs;
# same user, same machine, each pair in a private world of its own (tests/sandbox/world.sh),
# the pairs taking turns in rounds. Each cycle starts from an inactive home, so it includes the
# activation and the deactivation request; the wait for the deactivation to end is not timed.
#
# Prints a Markdown table and writes it to benches/results/pam.md. Needs root.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cycles=${PAM_BENCH_CYCLES:-40}
rounds=4

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
    cargo build --release --locked -p homed >&2
    mkdir -p "$work/policy"
    cp "$root/dist/dbus/org.freedesktop.home1.conf" "$work/policy/"
    # For the PIN logins the daemons see the SoftHSM token the world makes.
    for daemon in ours reference; do
        bin=$target/release/homed
        [ "$daemon" = ours ] || bin=/lib/systemd/systemd-homed
        printf '#!/bin/sh\nexport SOFTHSM2_CONF=/run/homed-world/softhsm/softhsm2.conf\nexec %s\n' \
            "$bin" > "$work/start-$daemon-softhsm"
        chmod 755 "$work/start-$daemon-softhsm"
    done
    rm -f "$work"/times-*
    per_round=$(((cycles + rounds - 1) / rounds))
    for ((round = 0; round < rounds; round++)); do
        for cred in password pin recovery; do
            pairs=(ours:pam_homed reference:pam_systemd_home)
            [ "$cred" = password ] && pairs+=(reference:pam_homed ours:pam_systemd_home)
            for pair in "${pairs[@]}"; do
                daemon=${pair%%:*}
                module=${pair#*:}
                if [ "$cred" = pin ]; then
                    world=(--homed "$work/start-$daemon-softhsm")
                elif [ "$daemon" = ours ]; then
                    world=(--homed "$target/release/homed")
                else
                    world=(--homed-reference)
                fi
                [ "$daemon" = ours ] && world+=(--dbus-policy "$work/policy")
                PAM_BENCH_WORK=$work PAM_BENCH_SO=$target/release/libpam_homed.so \
                    timeout 600 "$root/tests/sandbox/world.sh" "${world[@]}" -- \
                    "$root/benches/pam.sh" --inside "$module" "$per_round" \
                    "$work/times-$cred-$daemon-$module" "$cred"
            done
        done
    done
    stats() { sort -n "$1" | awk '{ a[NR] = $1 } END {
        printf "%.2f %.2f %.2f %d", a[int((NR + 1) / 2)] / 1e6, a[int(NR * 0.1) + 1] / 1e6, a[int(NR * 0.9)] / 1e6, NR }'; }
    read -r om olo ohi on <<<"$(stats "$work/times-password-ours-pam_homed")"
    read -r tm tlo thi tn <<<"$(stats "$work/times-password-reference-pam_systemd_home")"
    read -r xm xlo xhi xn <<<"$(stats "$work/times-password-reference-pam_homed")"
    read -r ym ylo yhi yn <<<"$(stats "$work/times-password-ours-pam_systemd_home")"
    ratio() { awk -v a="$1" -v b="${2:-$tm}" 'BEGIN { printf "%.2f", a / b }'; }
    read -r pom polo pohi pon <<<"$(stats "$work/times-pin-ours-pam_homed")"
    read -r ptm ptlo pthi ptn <<<"$(stats "$work/times-pin-reference-pam_systemd_home")"
    read -r rom rolo rohi ron <<<"$(stats "$work/times-recovery-ours-pam_homed")"
    read -r rtm rtlo rthi rtn <<<"$(stats "$work/times-recovery-reference-pam_systemd_home")"
    result=$(cat <<EOF
# PAM benchmark

$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r); release builds of pam_homed.so and
homed; directory storage; $rounds rounds of $per_round login cycles per pair, each pair in a world
of its own. One cycle is pam_start_confdir, pam_authenticate (the password is asked for through
the conversation), pam_open_session, pam_close_session and pam_end through the login stack of
pam.d-examples/, from an inactive home; waiting for the deactivation is not timed.

| module + daemon | cycles | median ms | p10 ms | p90 ms | ratio to pam_systemd_home + systemd-homed |
|---|---|---|---|---|---|
| **pam_homed + homed (ours)** | $on | $om | $olo | $ohi | **$(ratio "$om")×** |
| pam_systemd_home + systemd-homed 252 | $tn | $tm | $tlo | $thi | 1.00× |
| pam_homed + systemd-homed 252 | $xn | $xm | $xlo | $xhi | $(ratio "$xm")× |
| pam_systemd_home + homed (ours) | $yn | $ym | $ylo | $yhi | $(ratio "$ym")× |

The same cycle with the other credentials, the only prompt answered with a security token's PIN
(a SoftHSM2 token with an RSA-2048 key, enrolled by systemd's homectl) or with a recovery key
typed at the password prompt; each row's ratio is to systemd's pair with the same credential.

| credential, module + daemon | cycles | median ms | p10 ms | p90 ms | ratio |
|---|---|---|---|---|---|
| **PIN: pam_homed + homed (ours)** | $pon | $pom | $polo | $pohi | **$(ratio "$pom" "$ptm")×** |
| PIN: pam_systemd_home + systemd-homed 252 | $ptn | $ptm | $ptlo | $pthi | 1.00× |
| **recovery key: pam_homed + homed (ours)** | $ron | $rom | $rolo | $rohi | **$(ratio "$rom" "$rtm")×** |
| recovery key: pam_systemd_home + systemd-homed 252 | $rtn | $rtm | $rtlo | $rthi | 1.00× |

Below 1.00× is faster than systemd's pair. The daemon does nearly all of the work (activation
runs a worker process that mounts the home); the module's own part is the difference between
rows that share a daemon.
EOF
)
    echo "$result"
    echo "$result" > "$root/benches/results/pam.md"
    exit
fi

# Inside the world: `--inside MODULE CYCLES OUTFILE CREDENTIAL`. Our module where the examples
# find it, the examples or their copy for systemd's module, one user, CYCLES timed logins
# answered with the password, the token's PIN or the recovery key.
module=$2
count=$3
out=$4
cred=${5:-password}
state=$HOMED_WORLD_STATE
sec=$(readlink -f /lib/x86_64-linux-gnu/security)
mkdir -p "$state/security"
cp -a "$sec"/. "$state/security/"
install -m 0644 "$PAM_BENCH_SO" "$state/security/pam_homed.so"
mount --bind "$state/security" "$sec"
confdir=$root/pam.d-examples
if [ "$module" = pam_systemd_home ]; then
    confdir=$state/pam.d-systemd-home
    mkdir -p "$confdir"
    for f in "$root"/pam.d-examples/*; do
        sed 's/pam_homed\.so/pam_systemd_home.so/g' "$f" > "$confdir/$(basename "$f")"
    done
fi

user=benchuser
password=Bench-pw-4711
answer=$password
case $cred in
password)
    NEWPASSWORD=$password timeout 60 homectl create "$user" --storage=directory \
        --enforce-password-policy=no >/dev/null
    ;;
pin)
    answer=Bench-pin-5521
    TOKEN_PIN=$answer sh "$root/tests/sandbox/softhsm-token.sh"
    SOFTHSM2_CONF=/run/homed-world/softhsm/softhsm2.conf PIN=$answer NEWPASSWORD=$password \
        timeout 60 homectl create "$user" --storage=directory --enforce-password-policy=no \
        --pkcs11-token-uri=auto >/dev/null
    ;;
recovery)
    # homectl prints the key it made: eight groups of eight modhex letters.
    answer=$(NEWPASSWORD=$password timeout 60 homectl create "$user" --storage=directory \
        --enforce-password-policy=no --recovery-key=yes 2>&1 |
        grep -oE '[cbdefghijklnrtuv]{8}(-[cbdefghijklnrtuv]{8}){7}' | head -n 1)
    [ -n "$answer" ] || { echo "pam.sh: no recovery key was printed" >&2; exit 1; }
    ;;
esac

mounted() { awk -v m="/home/$user" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; }
wait_inactive() {
    local deadline=$((SECONDS + 30))
    while mounted; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "pam.sh: $user stayed active" >&2; exit 1; }
        sleep 0.01
    done
}

for ((i = 0; i < count; i++)); do
    wait_inactive
    "$PAM_BENCH_WORK/login-cycle" "$confdir" login "$user" "$answer" >> "$out"
done
wait_inactive
