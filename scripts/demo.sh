#!/bin/bash
# The demo: homed's whole flow in a private world (tests/sandbox/world.sh), so the host's /home,
# /var/lib/systemd/home, /etc, system bus and processes are never touched.
#
#   1. the user-record core (homed-shared's record_tour example);
#   2. our daemon on a private system bus, driven by our homectl: create, list, inspect;
#   3. getent and id answering through libnss_homed.so.2 from the daemon's signed records;
#   4. a login through PAM (pam.d-examples/login with pam_homed.so): the home is mounted for the
#      session and unmounted after it; a wrong password is refused;
#   5. a password change with homectl, and the end of the home.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) PATH="$HOME/.cargo/bin:$PATH" ;; esac

if [ "$(id -u)" -ne 0 ]; then
    echo "demo: must run as root: it builds a private world with its own mounts and system bus" >&2
    exit 1
fi

# Build outside the world, so that a compile error reads as one and not as a sandbox failure.
cargo build -q --locked --workspace
cargo build -q --locked -p homed-shared --example record_tour
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin=$target/debug

echo "demo: part 1, the user-record core, in a private world"
tests/sandbox/world.sh -- "$bin/examples/record_tour"

scratch=$(mktemp -d /tmp/homed-demo.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/lib"
ln -s "$bin/libnss_homed.so" "$scratch/lib/libnss_homed.so.2"

cat >"$scratch/flow.sh" <<SCRIPT
set -eu
export PATH="$bin:\$PATH"
say() { printf '\n== %s\n' "\$*"; }
run() { printf '\$ %s\n' "\$*"; "\$@"; }

say "2. our homed owns org.freedesktop.home1 on a private bus; our homectl creates a home"
run env NEWPASSWORD=Demo-pw-123 homectl create alice --storage=directory \\
    --real-name="Alice Demo" --member-of=users --enforce-password-policy=no
run homectl list
run homectl inspect alice

say "3. NSS: nsswitch.conf says 'passwd: files homed'; libnss_homed.so.2 serves the signed record"
run grep -E '^(passwd|group|shadow):' /etc/nsswitch.conf
run env LD_LIBRARY_PATH=$scratch/lib getent passwd alice
run env LD_LIBRARY_PATH=$scratch/lib getent group alice
run env LD_LIBRARY_PATH=$scratch/lib id alice
echo "(as uid 65534, shadow shows nothing:)"
env LD_LIBRARY_PATH=$scratch/lib setpriv --reuid=65534 --regid=65534 --clear-groups \\
    getent shadow alice || echo "getent shadow alice: exit \$?"
run ls -l /run/homed/nss

say "4. PAM: pam.d-examples/login with pam_homed.so"
sec=\$(readlink -f /lib/x86_64-linux-gnu/security)
mkdir -p "\$HOMED_WORLD_STATE/security" && cp -a "\$sec"/. "\$HOMED_WORLD_STATE/security/"
cp "$bin/libpam_homed.so" "\$HOMED_WORLD_STATE/security/pam_homed.so"
mount --bind "\$HOMED_WORLD_STATE/security" "\$sec"
echo "wrong password:"
echo wrong | pamtester login alice authenticate 2>&1 | head -3 || true
echo "right password: authenticate, account and session succeed (the session holds a reference to the home until pamtester ends):"
( echo Demo-pw-123 | pamtester -v login alice authenticate acct_mgmt open_session 2>&1 & wait ) | sed 's/^/  /'
echo "after the session ended:"
for i in \$(seq 100); do homectl inspect alice | grep -q 'State: inactive' && break; sleep 0.1; done
run homectl inspect alice | grep -E 'State|Good Auth|Bad Auth'
echo "activated directly, it is a nosuid,nodev mount:"
run env PASSWORD=Demo-pw-123 homectl activate alice
run findmnt -no TARGET,OPTIONS /home/alice
run env PASSWORD=Demo-pw-123 homectl deactivate alice

say "5. a password change, then the home goes away"
run env PASSWORD=Demo-pw-123 NEWPASSWORD=Demo-pw-456 homectl passwd alice
run env PASSWORD=Demo-pw-456 homectl authenticate alice && echo "the new password works"
run homectl remove alice
run env LD_LIBRARY_PATH=$scratch/lib getent passwd alice || echo "getent passwd alice: exit \$?"
SCRIPT

echo
echo "demo: parts 2-5, our daemon, homectl, NSS and PAM, in a private world"
tests/sandbox/world.sh --homed "$bin/homed" --dbus-policy "$root/dist/dbus" \
    --nsswitch "$root/nsswitch-examples/without-systemd.conf" \
    --pam-dir "$root/pam.d-examples" -- bash "$scratch/flow.sh"
