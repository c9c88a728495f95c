#!/bin/bash
# world.sh — run a command in a private world: its own mount and PID namespaces, tmpfs state, a
# private system bus and, on request, a home daemon (the reference systemd-homed or ours). Nothing
# it does reaches the host: every mount lives in the namespace and goes with it, and every process
# started in it dies with its PID 1.
#
#   world.sh [options] -- command [args...]      (as root; see tests/sandbox/README.md)
#
# Exit status: the command's, or 125 if the world itself could not be set up.
#
# What the world needs, as found on Debian 12 (systemd 252.39, PID 1 not systemd, 2 cores):
# - `unshare --fork --pid --kill-child --mount-proc`: this script is PID 1 of the world, so nothing
#   it starts can outlive it, and if the caller kills the outer unshare the kernel kills the world.
# - /var/lib/systemd/home does not exist until systemd's StateDirectory= creates it, and creating a
#   mount point would touch the host's disk: an overlay (upper layer on the world's /run tmpfs) over
#   the nearest existing parent gives a place for the mount point.
# - `mount --make-rshared /` after the private mounts: homework mounts the home in a namespace of its
#   own and moves it to /home/NAME; without shared propagation the daemon never sees that mount and
#   the home reads `inactive` after a successful activation.
# - systemd's homectl refuses to use the bus unless /run/systemd/system exists.
# - systemd-homed logs to kmsg when it has no journal; SYSTEMD_LOG_TARGET=console sends it to its
#   log file instead. It creates /run/systemd/home and its varlink socket in /run/systemd/userdb,
#   generates local.{private,public} on first start, and needs nothing else: no machine-id override,
#   no SYSTEMD_HOME_DEBUG_SUFFIX (the bus is private, so the real name is free).
# - systemd's homectl re-prompts forever on a wrong password when it has no terminal: give every
#   homectl call a timeout and check refusals with a bus call (AuthenticateHome).
# - systemd-homed exits at once, with nothing useful in its log, when the bus policy does not let it
#   own org.freedesktop.home1 (e.g. an empty --dbus-policy): the world then fails in about 0.1 s.
# - busctl prints only an error's message; `dbus-send --print-reply` prints its name
#   ("Error org.freedesktop.home1.BadPassword: ...").
# - A --pam-dir must be self-contained: Linux-PAM also parses `other`, and Debian's `other`
#   @includes common-*; if those are missing, pam_start fails ("Initialization failure").
# - A wrong password costs 3 s in systemd-homed (its bad-password delay); budget test time for it.
# - Measured here (--verbose): mounts ready ≈ 35-70 ms after start; bus answering ≈ 10 ms later;
#   systemd-homed owns org.freedesktop.home1 ≈ 35-55 ms after its start; `homectl create
#   --storage=directory` ≈ 70-100 ms; `homectl activate` ≈ 75 ms; a whole world with the reference
#   daemon running `true` ≈ 0.15 s. Four worlds in parallel each creating a home: ≈ 1 s in all.
set -euo pipefail

readonly WORLD_FAIL=125
readonly STATE=/run/homed-world
readonly BUS_SOCKET=/run/dbus/system_bus_socket
readonly REFERENCE_HOMED=/lib/systemd/systemd-homed
readonly HOME1=org.freedesktop.home1

die() {
    echo "world.sh: $*" >&2
    exit "$WORLD_FAIL"
}

usage() {
    cat <<'EOF'
usage: world.sh [options] -- command [args...]

Runs command as root in a private world: its own mount and PID namespaces, tmpfs on /run, /home
and /var/lib/systemd/home, a private system dbus-daemon. The host is left untouched.

options:
  --homed-reference     start the real systemd-homed (/lib/systemd/systemd-homed) and wait until
                        it owns org.freedesktop.home1
  --homed BIN           start BIN (our daemon) instead, and wait the same way
  --keys DIR            copy DIR/local.private and DIR/*.public into /var/lib/systemd/home before
                        a daemon starts (root-owned; private key 0600, public keys 0644)
  --machine-id ID       32 hex digits shown as /etc/machine-id (and /var/lib/dbus/machine-id)
  --dbus-policy DIR     the only system-bus policy files: DIR replaces
                        /usr/share/dbus-1/system.d, and /etc/dbus-1/system.d is emptied
                        (default: the host's, i.e. Debian's own policies)
  --dbus-services DIR   the only bus activation files (default: the host's)
  --nsswitch FILE       shown as /etc/nsswitch.conf
  --pam-dir DIR         shown as /etc/pam.d
  --log-dir DIR         copy the daemons' logs into DIR (a host folder) when the world ends
  --home-fs TYPE        /home is a fresh file system of TYPE on a loop device (its image in the
                        world's /run) instead of tmpfs: ext4 (made with the encrypt feature, for
                        fscrypt homes) or btrfs (for subvolume homes)
  --timeout SECS        how long to wait for the bus and the daemon (default 30)
  --verbose             print how long each step of the setup took, on stderr
  -h, --help            this text

The command sees HOMED_WORLD=1, HOMED_WORLD_STATE (a scratch folder on the world's tmpfs),
DBUS_SYSTEM_BUS_ADDRESS, and HOMED_WORLD_DAEMON_PID and HOMED_WORLD_DAEMON_LOG when a daemon runs.
EOF
}

# ---------------------------------------------------------------------------------------------
# Options (parsed on both sides of the re-exec; only the outer side validates paths).

homed_reference=0
homed_bin=
keys_dir=
machine_id=
dbus_policy=
dbus_services=
nsswitch=
pam_dir=
log_dir=
home_fs=
timeout=30
verbose=0

abs_path() { readlink -f -- "$1"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --homed-reference) homed_reference=1 ;;
        --homed) [ $# -ge 2 ] || die "--homed needs a path"; homed_bin=$2; shift ;;
        --keys) [ $# -ge 2 ] || die "--keys needs a folder"; keys_dir=$2; shift ;;
        --machine-id) [ $# -ge 2 ] || die "--machine-id needs an id"; machine_id=$2; shift ;;
        --dbus-policy) [ $# -ge 2 ] || die "--dbus-policy needs a folder"; dbus_policy=$2; shift ;;
        --dbus-services) [ $# -ge 2 ] || die "--dbus-services needs a folder"; dbus_services=$2; shift ;;
        --nsswitch) [ $# -ge 2 ] || die "--nsswitch needs a file"; nsswitch=$2; shift ;;
        --pam-dir) [ $# -ge 2 ] || die "--pam-dir needs a folder"; pam_dir=$2; shift ;;
        --log-dir) [ $# -ge 2 ] || die "--log-dir needs a folder"; log_dir=$2; shift ;;
        --home-fs) [ $# -ge 2 ] || die "--home-fs needs a type"; home_fs=$2; shift ;;
        --timeout) [ $# -ge 2 ] || die "--timeout needs seconds"; timeout=$2; shift ;;
        --verbose) verbose=1 ;;
        -h | --help) usage; exit 0 ;;
        --) shift; break ;;
        *) die "unknown option: $1 (see world.sh --help; the command goes after --)" ;;
    esac
    shift
done
[ $# -gt 0 ] || die "no command given (world.sh [options] -- command [args...])"

# ---------------------------------------------------------------------------------------------
# Outer side: check everything that can be checked on the host, then re-exec in new namespaces.

if [ "${HOMED_WORLD_STAGE:-}" != inner ]; then
    [ "$(id -u)" -eq 0 ] || die "must run as root (it mounts and starts a system bus)"
    [ "$homed_reference" -eq 0 ] || [ -z "$homed_bin" ] \
        || die "--homed-reference and --homed are exclusive: one daemon owns org.freedesktop.home1"
    [[ "$timeout" =~ ^[0-9]+$ ]] && [ "$timeout" -gt 0 ] || die "--timeout wants a positive whole number of seconds"
    for tool in unshare mount dbus-daemon dbus-send; do
        command -v "$tool" >/dev/null || die "$tool not found (run scripts/install-deps.sh)"
    done
    if [ "$homed_reference" -eq 1 ] && [ ! -x "$REFERENCE_HOMED" ]; then
        die "$REFERENCE_HOMED not found (package systemd-homed; run scripts/install-deps.sh)"
    fi
    if [ -n "$machine_id" ]; then
        [[ "$machine_id" =~ ^[0-9a-f]{32}$ ]] || die "--machine-id wants 32 lowercase hex digits, got '$machine_id'"
    fi
    # Paths are made absolute so that they mean the same inside, whatever the command does.
    args=()
    [ "$homed_reference" -eq 1 ] && args+=(--homed-reference)
    if [ -n "$homed_bin" ]; then
        [ -x "$homed_bin" ] || die "--homed: $homed_bin is not an executable file"
        args+=(--homed "$(abs_path "$homed_bin")")
    fi
    if [ -n "$keys_dir" ]; then
        [ -d "$keys_dir" ] || die "--keys: $keys_dir is not a folder"
        compgen -G "$keys_dir/*.public" >/dev/null || [ -f "$keys_dir/local.private" ] \
            || die "--keys: $keys_dir holds neither local.private nor *.public"
        args+=(--keys "$(abs_path "$keys_dir")")
    fi
    [ -z "$machine_id" ] || args+=(--machine-id "$machine_id")
    case "$home_fs" in
        '') ;;
        ext4 | btrfs)
            command -v "mkfs.$home_fs" >/dev/null || die "mkfs.$home_fs not found (run scripts/install-deps.sh)"
            args+=(--home-fs "$home_fs") ;;
        *) die "--home-fs wants ext4 or btrfs, got '$home_fs'" ;;
    esac
    if [ -n "$dbus_policy" ]; then
        [ -d "$dbus_policy" ] || die "--dbus-policy: $dbus_policy is not a folder"
        args+=(--dbus-policy "$(abs_path "$dbus_policy")")
    fi
    if [ -n "$dbus_services" ]; then
        [ -d "$dbus_services" ] || die "--dbus-services: $dbus_services is not a folder"
        args+=(--dbus-services "$(abs_path "$dbus_services")")
    fi
    if [ -n "$nsswitch" ]; then
        [ -f "$nsswitch" ] || die "--nsswitch: $nsswitch is not a file"
        args+=(--nsswitch "$(abs_path "$nsswitch")")
    fi
    if [ -n "$pam_dir" ]; then
        [ -d "$pam_dir" ] || die "--pam-dir: $pam_dir is not a folder"
        args+=(--pam-dir "$(abs_path "$pam_dir")")
    fi
    if [ -n "$log_dir" ]; then
        mkdir -p -- "$log_dir" || die "--log-dir: cannot create $log_dir"
        args+=(--log-dir "$(abs_path "$log_dir")")
    fi
    args+=(--timeout "$timeout")
    [ "$verbose" -eq 0 ] || args+=(--verbose)
    self=$(abs_path "${BASH_SOURCE[0]}")
    HOMED_WORLD_STAGE=inner exec unshare --mount --propagation private \
        --pid --fork --kill-child --mount-proc -- /bin/bash "$self" "${args[@]}" -- "$@"
fi

# ---------------------------------------------------------------------------------------------
# Inner side: PID 1 of a fresh PID namespace, in a private mount namespace.

# The marker alone must never make this script mount over the host's folders.
[ "$$" -eq 1 ] || die "internal: the inner stage must be PID 1 of a new PID namespace (HOMED_WORLD_STAGE set by hand?)"
unset HOMED_WORLD_STAGE

t0=$EPOCHREALTIME
# Milliseconds since the world began, for --verbose.
step() {
    [ "$verbose" -eq 1 ] || return 0
    local now=$EPOCHREALTIME
    local ms=$(((${now/./} - ${t0/./}) / 1000))
    echo "world.sh: +${ms} ms: $*" >&2
}

daemon_pid=
daemon_log=
dbus_pid=
world_devs=()

# Polls "$@" until it succeeds (returns 0), gives up for good (the check returned 2: returns 2), or
# the deadline passes (returns 1).
wait_until() {
    local secs=$1 r
    shift
    local deadline=$((SECONDS + secs))
    while :; do
        r=0
        "$@" || r=$?
        case "$r" in 0 | 2) return "$r" ;; esac
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.02
    done
}

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
dead() { ! alive "$1"; }

stop_pid() {
    local pid=$1 name=$2
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until 10 dead "$pid"; then
        echo "world.sh: $name (pid $pid) ignored SIGTERM for 10 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

# Loop devices are global: detach any whose backing file lives on one of the world's tmpfs mounts
# (matched by device number, so no other world's or the host's loops are touched).
detach_world_loops() {
    [ ${#world_devs[@]} -gt 0 ] && command -v losetup >/dev/null || return 0
    local name majmin
    while read -r name majmin; do
        for dev in "${world_devs[@]}"; do
            if [ "$majmin" = "$dev" ]; then
                losetup -d "$name" 2>/dev/null || echo "world.sh: could not detach $name" >&2
            fi
        done
    done < <(losetup --list --noheadings --output NAME,BACK-MAJ:MIN 2>/dev/null)
}

cleanup() {
    local rc=$?
    set +e
    stop_pid "$daemon_pid" "home daemon"
    stop_pid "$dbus_pid" "dbus-daemon"
    if [ -n "$log_dir" ]; then
        cp -f -- "$STATE"/*.log "$log_dir"/ 2>/dev/null
    fi
    detach_world_loops
    # Everything else (mounts, remaining processes) ends with this PID namespace and mount namespace.
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

must() {
    local what=$1
    shift
    "$@" || die "$what failed: $*"
}

# The id of a mounted file system as losetup prints BACK-MAJ:MIN.
record_dev() {
    local majmin
    majmin=$(findmnt -n -o MAJ:MIN --mountpoint "$1" 2>/dev/null | tail -n1 | tr -d '[:space:]') || return 0
    [ -n "$majmin" ] && world_devs+=("$majmin")
    return 0
}

# Private /run first: the scratch folder and the overlay layers live there.
must "mounting tmpfs on /run" mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
record_dev /run
mkdir -p "$STATE/empty" /run/dbus /run/user /run/systemd/system /run/systemd/userdb /run/systemd/home
install -d -m 1777 /run/lock

# A private, empty folder at PATH with MODE. If PATH does not exist, the nearest existing parent
# gets an overlay whose upper layer is on the world's /run, so the host's disk is never written.
private_dir() {
    local path=$1 mode=$2 parent
    if [ ! -d "$path" ]; then
        parent=$(dirname -- "$path")
        while [ ! -d "$parent" ]; do parent=$(dirname -- "$parent"); done
        local layer
        layer="$STATE/overlay/$(echo "$parent" | tr / _)"
        if [ ! -d "$layer" ]; then
            mkdir -p "$layer/upper" "$layer/work"
            must "overlay on $parent" mount -t overlay overlay \
                -o "lowerdir=$parent,upperdir=$layer/upper,workdir=$layer/work" "$parent"
        fi
        mkdir -p -- "$path"
    fi
    must "mounting tmpfs on $path" mount -t tmpfs -o "mode=$mode" tmpfs "$path"
    record_dev "$path"
}

private_dir /home 0755
if [ -n "$home_fs" ]; then
    # The loop device is set to clear itself: it goes when the world's mount of it goes.
    truncate -s 1G "$STATE/home.img"
    case "$home_fs" in
        ext4) must "mkfs.ext4" mkfs.ext4 -q -O encrypt -E nodiscard "$STATE/home.img" ;;
        btrfs) must "mkfs.btrfs" mkfs.btrfs -q "$STATE/home.img" >/dev/null ;;
    esac
    must "mounting $home_fs on /home" mount -o loop "$STATE/home.img" /home
    chmod 0755 /home
    record_dev /home
fi
private_dir /var/lib/systemd/home 0700
# Newer homed keeps per-user blobs there; 252 does not use it, but never let it reach the host.
[ ! -d /var/cache/systemd/home ] || private_dir /var/cache/systemd/home 0700

bind() {
    must "bind-mounting $1 on $2" mount --bind "$1" "$2"
}

if [ -n "$machine_id" ]; then
    echo "$machine_id" >"$STATE/machine-id"
    bind "$STATE/machine-id" /etc/machine-id
    # dbus answers GetMachineId from its own copy when that is a separate file.
    if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then
        bind "$STATE/machine-id" /var/lib/dbus/machine-id
    fi
fi
[ -z "$nsswitch" ] || bind "$nsswitch" /etc/nsswitch.conf
[ -z "$pam_dir" ] || bind "$pam_dir" /etc/pam.d

if [ -n "$dbus_policy" ]; then
    bind "$dbus_policy" /usr/share/dbus-1/system.d
    [ ! -d /etc/dbus-1/system.d ] || bind "$STATE/empty" /etc/dbus-1/system.d
    if [ -f /etc/dbus-1/system-local.conf ]; then
        printf '<busconfig/>\n' >"$STATE/empty.conf"
        bind "$STATE/empty.conf" /etc/dbus-1/system-local.conf
    fi
fi
if [ -n "$dbus_services" ]; then
    bind "$dbus_services" /usr/share/dbus-1/system-services
    for d in /usr/local/share/dbus-1/system-services /lib/dbus-1/system-services; do
        [ ! -d "$d" ] || bind "$STATE/empty" "$d"
    done
fi

if [ -n "$keys_dir" ]; then
    shopt -s nullglob
    for f in "$keys_dir"/*.public; do
        must "copying $f" install -o root -g root -m 0644 "$f" /var/lib/systemd/home/
    done
    shopt -u nullglob
    if [ -f "$keys_dir/local.private" ]; then
        must "copying local.private" install -o root -g root -m 0600 "$keys_dir/local.private" /var/lib/systemd/home/
    fi
fi

# After every private mount, so that they all join the world's own shared peer groups.
must "making / rshared" mount --make-rshared /
step "mounts ready"

# The system bus, with Debian's system.conf and whichever policy folders are now in place.
dbus_pid=$(dbus-daemon --system --fork --print-pid) || die "dbus-daemon --system did not start"
bus_up() {
    [ -S "$BUS_SOCKET" ] && dbus-send --system --dest=org.freedesktop.DBus --type=method_call \
        --print-reply / org.freedesktop.DBus.GetId >/dev/null 2>&1
}
wait_until "$timeout" bus_up || die "the private system bus did not answer within $timeout s"
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$BUS_SOCKET"
step "system bus answers"

name_owned() {
    dbus-send --system --dest=org.freedesktop.DBus --type=method_call --print-reply \
        / org.freedesktop.DBus.NameHasOwner "string:$HOME1" 2>/dev/null | grep -q 'boolean true'
}

daemon_up() {
    alive "$daemon_pid" || return 2
    name_owned
}

start_daemon() {
    local bin=$1 logname=$2
    daemon_log="$STATE/$logname.log"
    # Console logging: without a journal, systemd's daemons would log to kmsg.
    SYSTEMD_LOG_TARGET=console "$bin" >"$daemon_log" 2>&1 </dev/null &
    daemon_pid=$!
    local rc=0
    wait_until "$timeout" daemon_up || rc=$?
    if ! alive "$daemon_pid"; then
        echo "world.sh: $bin exited before owning $HOME1; its log:" >&2
        sed 's/^/  | /' "$daemon_log" >&2
        die "home daemon failed to start"
    fi
    if [ "$rc" -ne 0 ]; then
        echo "world.sh: $bin did not own $HOME1 within $timeout s; its log:" >&2
        sed 's/^/  | /' "$daemon_log" >&2
        die "home daemon failed to start"
    fi
    export HOMED_WORLD_DAEMON_PID=$daemon_pid HOMED_WORLD_DAEMON_LOG=$daemon_log
    step "$bin owns $HOME1"
}

if [ "$homed_reference" -eq 1 ]; then
    start_daemon "$REFERENCE_HOMED" systemd-homed
elif [ -n "$homed_bin" ]; then
    start_daemon "$homed_bin" homed
fi

export HOMED_WORLD=1 HOMED_WORLD_STATE=$STATE

# Not exec: the world must outlive the command to stop its daemons and detach its loops.
step "running: $*"
set +e
"$@"
rc=$?
set -e
step "command exited with status $rc"
exit "$rc"
