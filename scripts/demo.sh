#!/bin/bash
# The demo: shows homed's flow in a private world (tests/sandbox/world.sh), so the host's /home,
# /var/lib/systemd/home, system bus and processes are never touched.
#
# For now it tours user records (homed-shared's record_tour example); later steps will start our
# daemon in the world and create, activate and log into a home.
set -euo pipefail

cd "$(dirname "$0")/.."
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) PATH="$HOME/.cargo/bin:$PATH" ;; esac

if [ "$(id -u)" -ne 0 ]; then
    echo "demo: must run as root: it builds a private world with its own mounts and system bus" >&2
    exit 1
fi

example=shared/examples/record_tour.rs
if [ ! -f "$example" ] && [ ! -f shared/examples/record_tour/main.rs ]; then
    echo "demo: the record tour ($example, cargo example record_tour of homed-shared) does not exist yet" >&2
    exit 1
fi

# Build outside the world, so that a compile error reads as one and not as a sandbox failure.
cargo build -q --locked -p homed-shared --example record_tour

echo "demo: entering a private world (own mounts, PIDs and system bus; the host is untouched)"
exec tests/sandbox/world.sh -- cargo run -q --locked -p homed-shared --example record_tour
