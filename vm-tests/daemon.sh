#!/bin/sh
# The daemon in the guest: our homed on a private system bus, our homectl, pam_homed through
# pamtester, nss_homed for the user lookups; LUKS homes on real dm-crypt.
#
#   daemon.sh setup            start dbus-daemon and homed (once per boot)
#   daemon.sh login            scenario daemon-luks-login
#   daemon.sh suspend          scenario daemon-luks-suspend
#   daemon.sh sleep            scenario daemon-luks-sleep (restarts homed with --sleep=inhibitor)
#
# Each scenario prints "  - " lines for what it checked and exits non-zero on the first failure.

USER_PW=Vm-daemon-pw-1

say() { echo "  - $*"; }
fail() {
    echo "  - FAILED: $*"
    if [ -f /run/homed.log ]; then
        echo "  - homed log (last lines):"
        tail -n 15 /run/homed.log | sed 's/^/  |   /'
    fi
    exit 1
}

# Polls a shell condition every 0.1 s until it holds or $1 seconds pass.
wait_for() {
    limit=$1
    shift
    n=0
    while ! eval "$@" >/dev/null 2>&1; do
        n=$((n + 1))
        [ $n -ge $((limit * 10)) ] && return 1
        sleep 0.1
    done
    return 0
}

state_of() {
    timeout 20 homectl list 2>/dev/null | awk -v u="$1" '$1 == u { print $4 }'
}

# The device-mapper devices whose name is home-$1.
dm_of() {
    for d in /sys/block/dm-*; do
        [ -e "$d/dm/name" ] || continue
        [ "$(cat "$d/dm/name")" = "home-$1" ] && echo "$d"
    done
}

# Loop devices whose backing file is the user's image.
loops_of() {
    for l in /sys/block/loop*; do
        [ -e "$l/loop/backing_file" ] || continue
        grep -q "/$1.home" "$l/loop/backing_file" && echo "$l"
    done
}

nothing_left() {
    [ -z "$(dm_of "$1")" ] && [ -z "$(loops_of "$1")" ] && ! grep -q " /home/$1 " /proc/self/mountinfo
}

# Mount options of the home directory from mountinfo (per-mount and super block).
mount_options() {
    awk -v m="/home/$1" '$5 == m { print $6 }' /proc/self/mountinfo | tail -n 1
}

setup() {
    mkdir -p /var && [ -e /var/run ] || ln -s /run /var/run
    mkdir -p /etc/dbus-1/system.d /run/dbus /var/lib/systemd/home /run/systemd/home /vm/home /home
    mount --bind /vm/home /home
    cat > /etc/passwd <<'EOF'
root:x:0:0:root:/root:/bin/sh
messagebus:x:100:101::/nonexistent:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat > /etc/group <<'EOF'
root:x:0:
messagebus:x:101:
nogroup:x:65534:
EOF
    printf 'root:*:19000:0:99999:7:::\n' > /etc/shadow
    chmod 600 /etc/shadow
    # A machine-id the boot brought along (the power-cut disk's) is kept.
    [ -s /etc/machine-id ] || echo 3b54d2b8a4a04c2f9b1e6a3c5d7e9f01 > /etc/machine-id
    printf 'passwd: files homed\ngroup: files homed\nshadow: files homed\n' > /etc/nsswitch.conf
    echo vmguest > /proc/sys/kernel/hostname
    dbus-daemon --config-file=/etc/dbus-1/system.conf --nofork --nopidfile > /run/dbus.log 2>&1 &
    wait_for 20 test -S /run/dbus/system_bus_socket || fail "the system bus did not come up"
    start_homed
    say "dbus-daemon and homed are up"
}

# Starts our daemon (arguments passed on) and waits until it owns its name. The size of a core
# dump is not limited, but homed makes itself non-dumpable unless HOMED_TEST_KEEP_DUMPABLE=1.
start_homed() {
    (ulimit -c unlimited && exec homed "$@") >> /run/homed.log 2>&1 &
    wait_for 30 'dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.GetNameOwner string:org.freedesktop.home1' ||
        fail "homed did not take org.freedesktop.home1"
}

# Whether an flock is held on the file $1: /proc/locks names it as major:minor:inode (the PID
# it shows is the locker's, which may have passed the descriptor on).
flocked() {
    dev=$((0x$(stat -c %D "$1")))
    id=$(printf '%02x:%02x:%s' $(((dev >> 8) & 0xfff)) $(((dev & 0xff) | ((dev >> 12) & 0xfff00))) "$(stat -c %i "$1")")
    awk -v id="$id" '$2 == "FLOCK" && $6 == id { found = 1 } END { exit !found }' /proc/locks
}
# The locks, and the processes that have the file $1 open, when a lock check failed.
show_locks() {
    echo "  |   image $1: dev $(stat -c %D "$1") inode $(stat -c %i "$1")"
    sed 's/^/  |   \/proc\/locks: /' /proc/locks
    for fd in /proc/[0-9]*/fd/*; do
        [ "$(readlink "$fd" 2>/dev/null)" = "$1" ] || continue
        p=${fd#/proc/}
        p=${p%%/*}
        echo "  |   open in $p ($(tr '\0' ' ' < /proc/$p/cmdline)) as ${fd##*/}"
    done
}

# Logs in through pamtester: service $1 (a pam.d-examples stack), user $2, the password on
# its standard input; authenticate, open_session, close_session. The "-hold" variant of the
# service appends one session line, pam_exec of /run/hold, which waits until /run/release
# exists: the session stays open (pam_homed's reference held by pamtester) meanwhile.
start_session() {
    rm -f /run/release
    printf '%s\n' "$3" | pamtester "$1-hold" "$2" authenticate open_session close_session \
        > /run/pam.out 2>&1 &
    PAMTESTER=$!
}

end_session() {
    touch /run/release
    wait "$PAMTESTER"
    rc=$?
    sed 's/^/  |   pamtester: /' /run/pam.out
    return $rc
}

hold_services() {
    printf '#!/bin/sh\nwhile [ ! -e /run/release ]; do sleep 0.1; done\n' > /run/hold
    chmod 755 /run/hold
    for svc in "$@"; do
        { cat /etc/pam.d/$svc; echo "session optional pam_exec.so quiet type=open_session /run/hold"; } \
            > /etc/pam.d/$svc-hold
    done
}

# A login stack whose pam_homed lines ask for suspend=true (login-suspend, login-suspend-hold).
suspend_stack() {
    for f in common-auth common-account common-session common-password; do
        sed 's/pam_homed\.so/pam_homed.so suspend=true/' /etc/pam.d/$f > /etc/pam.d/$f-suspend
    done
    sed 's/^@include \(common-[a-z]*\)$/@include \1-suspend/' /etc/pam.d/login > /etc/pam.d/login-suspend
    hold_services login-suspend
}

# Creates a LUKS home for user $1 with our homectl; $2 is the file system (default ext4).
create_home() {
    user=$1
    fstype=${2:-ext4}
    NEWPASSWORD=$USER_PW timeout 120 homectl create "$user" --storage=luks --fs-type="$fstype" \
        --disk-size=256M --luks-pbkdf-type=pbkdf2 --luks-pbkdf-time-cost=1ms \
        --enforce-password-policy=no > /run/create.out 2>&1 ||
        { sed 's/^/  |   /' /run/create.out; fail "homectl create --storage=luks $user"; }
    [ -f "/home/$user.home" ] || fail "no image /home/$user.home"
    rec=/var/lib/systemd/home/$user.identity
    for field in imagePath luksUuid fileSystemUuid partitionUuid luksCipher luksCipherMode \
        luksVolumeKeySize fileSystemType storage; do
        grep -q "\"$field\"" "$rec" || fail "the host record's binding lacks $field"
    done
    grep -q "\"fileSystemType\" : \"$fstype\"" "$rec" || fail "the host record's fileSystemType is not $fstype"
    say "homectl create --storage=luks ($fstype): image and host record with the LUKS binding"
}

# Login, file, logout, second login: user $1 (default vmlogin), file system $2 (default ext4).
scenario_login() {
    user=${1:-vmlogin}
    create_home "$user" "${2:-ext4}"
    [ "$(state_of $user)" = inactive ] || fail "a new home is not inactive: $(state_of $user)"
    getent passwd $user > /dev/null || fail "getent passwd $user finds nothing (nss_homed)"

    hold_services login
    # First login: authenticate (activates), open the session, which stays open meanwhile.
    start_session login $user "$USER_PW"
    wait_for 120 '[ "$(state_of '$user')" = active ]' || fail "login did not activate the home"
    [ -n "$(dm_of $user)" ] || fail "no /dev/mapper/home-$user while active"
    opts=$(mount_options $user)
    case ",$opts," in *,nosuid,*) ;; *) fail "home mounted without nosuid: $opts" ;; esac
    case ",$opts," in *,nodev,*) ;; *) fail "home mounted without nodev: $opts" ;; esac
    fs_seen=$(awk -v m="/home/$user" '$5 == m { for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 1); break } }' /proc/self/mountinfo | tail -n 1)
    [ "$fs_seen" = "${2:-ext4}" ] || fail "the home is mounted as '$fs_seen', not ${2:-ext4}"
    say "login through pamtester activated the home ($fs_seen); mountinfo shows $opts"
    uid=$(stat -c %u /home/$user)
    [ "$uid" = "$(getent passwd $user | cut -d: -f3)" ] || fail "/home/$user is owned by $uid, not the user"
    echo "written in the first session" > /home/$user/note.txt
    chown "$uid" /home/$user/note.txt
    sync
    grep -q "\"userName\" : \"$user\"" /home/$user/.identity || fail "no ~/.identity in the home"
    say "the home is the user's ($uid); a file written in it"
    end_session || fail "pamtester failed"

    # Logout: the last reference closes, the daemon deactivates everything.
    wait_for 60 nothing_left $user || fail "after logout: dm [$(dm_of $user)] loop [$(loops_of $user)] still there"
    wait_for 20 '[ "$(state_of '$user')" = inactive ]' || fail "state after logout: $(state_of $user)"
    say "logout closed everything: no dm device, no loop device, not mounted"

    # Second login finds the file.
    start_session login $user "$USER_PW"
    wait_for 120 '[ "$(state_of '$user')" = active ]' || fail "the second login did not activate the home"
    [ "$(cat /home/$user/note.txt 2>/dev/null)" = "written in the first session" ] ||
        fail "the second login does not find the file"
    [ "$(stat -c %u /home/$user/note.txt)" = "$uid" ] || fail "the file is not the user's any more"
    say "a second login finds the file, owned by the user"
    end_session || fail "pamtester failed"
    wait_for 60 nothing_left $user || fail "after the second logout something is left"
    say "second logout closed everything"
}

# Resumes user $1's home (its dm device in sysfs is $2) if it is still suspended: through PAM,
# with a daemon started first if none is running.
# Starts an O_DIRECT read of /home/$1/big (after dropping caches) and checks that it blocks on
# the locked home; its PID is left in $reader.
start_blocked_read() {
    echo 3 > /proc/sys/vm/drop_caches
    homed-vm-check direct-read /home/$1/big > /run/read.out 2>&1 &
    reader=$!
    sleep 2
    kill -0 $reader 2>/dev/null || fail "an O_DIRECT read finished while locked"
    say "an O_DIRECT read in the home blocks"
}

# PAM authenticate with a wrong password, through another conversation: user $1's home (dm
# device $2) stays locked and the read in $reader keeps waiting.
wrong_password_keeps_locked() {
    echo wrong-password | timeout 60 pamtester login-suspend $1 authenticate > /run/wrong.out 2>&1 &&
        fail "PAM authenticate accepted a wrong password"
    [ "$(state_of $1)" = locked ] || fail "state after a wrong password: $(state_of $1)"
    [ "$(cat "$2/dm/suspended")" = 1 ] || fail "a wrong password resumed the device"
    kill -0 $reader 2>/dev/null || fail "the read completed after a wrong password"
    say "PAM authenticate with a wrong password: still locked, the read still waits"
}

# PAM authenticate with the right password, through another conversation, unlocks user $1's
# home (dm device $2) and the read in $reader completes.
right_password_unlocks() {
    printf '%s\n' "$USER_PW" | timeout 60 pamtester login-suspend $1 authenticate > /run/right.out 2>&1 ||
        { sed 's/^/  |   /' /run/right.out; fail "PAM authenticate with the right password failed"; }
    wait_for 60 '[ "$(state_of '$1')" = active ]' || fail "the right password did not unlock: $(state_of $1)"
    [ "$(cat "$2/dm/suspended")" = 0 ] || fail "dm still reports the device suspended"
    wait_for 30 '! kill -0 '$reader || fail "the blocked read did not complete after the unlock"
    wait $reader || fail "the read failed after the unlock"
    say "PAM authenticate with the right password unlocked it; the blocked read completed"
}

unlock_after_failure() {
    [ "$(cat "$2/dm/suspended" 2>/dev/null)" = 1 ] || return 0
    [ -n "$(pidof homed)" ] || start_homed
    printf '%s\n' "$USER_PW" | timeout 60 pamtester login-suspend "$1" authenticate > /dev/null 2>&1
    echo "  - after the failure: home-$1 suspended: $(cat "$2/dm/suspended")"
}

scenario_suspend() {
    user=vmsusp
    # homed makes itself non-dumpable (then the kernel writes no core at all); this scenario's
    # daemon is asked to stay dumpable, so that a real core dump of it can be searched.
    pid=$(pidof homed)
    [ -n "$pid" ] && kill $pid
    wait_for 20 '[ -z "$(pidof homed)" ]' || fail "homed did not stop"
    export HOMED_TEST_KEEP_DUMPABLE=1
    start_homed
    unset HOMED_TEST_KEEP_DUMPABLE
    create_home $user
    suspend_stack

    start_session login-suspend $user "$USER_PW"
    wait_for 120 '[ "$(state_of '$user')" = active ]' || fail "login did not activate the home"
    # Big and random, so the read really goes to the device.
    head -c 1048576 /dev/urandom > /home/$user/big
    sync
    say "session open with suspend=true, file written"

    dbus-send --system --print-reply --dest=org.freedesktop.home1 /org/freedesktop/home1 \
        org.freedesktop.home1.Manager.LockAllHomes > /run/lock.out 2>&1 ||
        { cat /run/lock.out; fail "LockAllHomes failed"; }
    [ "$(state_of $user)" = locked ] || fail "state after LockAllHomes: $(state_of $user)"
    dm=$(dm_of $user)
    [ -n "$dm" ] && [ "$(cat "$dm/dm/suspended")" = 1 ] || fail "dm does not report home-$user suspended"
    say "LockAllHomes: state locked, dm reports the device suspended"
    # Should a check below fail, the home is unlocked on the way out: the boot's final sync would
    # wait for the suspended device forever.
    trap 'unlock_after_failure $user "$dm"' EXIT

    start_blocked_read $user

    # A real core dump of the daemon while the home is locked.
    mkdir -p /run/cores
    echo /run/cores/core.%p > /proc/sys/kernel/core_pattern
    pid=$(pidof homed)
    [ -n "$pid" ] || fail "homed is not running"
    flocked /home/$user.home || { show_locks /home/$user.home; fail "the image is not locked while the home is locked"; }
    kill -ABRT $pid
    wait_for 60 '[ ! -d /proc/'$pid' ] || grep -q "^State:.*Z" /proc/'$pid'/status' ||
        fail "homed did not die of SIGABRT"
    core=/run/cores/core.$pid
    [ -s $core ] || fail "the kernel wrote no core dump of homed (a release build stays non-dumpable)"
    # A value of the record the daemon holds: the search has to find it in the core.
    uuid=$(sed -n 's/.*"luksUuid" *: *"\([^"]*\)".*/\1/p' /var/lib/systemd/home/$user.identity | head -n 1)
    [ -n "$uuid" ] || fail "no luksUuid in the host record"
    SEARCH_SECRET=$USER_PW SEARCH_PRESENT=$uuid homed-vm-check search-core $core $user /home/$user.home ||
        fail "the core dump of the daemon holds a secret"
    rm -f $core
    # The loop device was bound to the locked image descriptor: the lock outlives the daemon.
    flocked /home/$user.home || { show_locks /home/$user.home; fail "the image lock went with the daemon"; }
    [ "$(cat "$dm/dm/suspended")" = 1 ] || fail "the device was resumed when homed died"
    say "without a daemon the home stays locked and its image locked"

    # The next daemon picks the home up, locked.
    start_homed
    [ "$(state_of $user)" = locked ] || fail "state after homed restarted: $(state_of $user)"
    [ "$(cat "$dm/dm/suspended")" = 1 ] || fail "the restart resumed the device"
    flocked /home/$user.home || { show_locks /home/$user.home; fail "the image lock went with the restart"; }
    kill -0 $reader 2>/dev/null || fail "the read completed across the restart"
    say "homed restarted: the home is still locked, the read still waits"

    wrong_password_keeps_locked $user "$dm"
    right_password_unlocks $user "$dm"
    end_session || fail "pamtester failed"
    wait_for 60 nothing_left $user || fail "after logout something is left"
    say "logout closed everything"
    # The restarted daemon was given the wrong password and unlocked the home with the right
    # one (AcquireHome through PAM, then the worker's resume): neither is left in its memory.
    pid=$(pidof homed)
    for pw in "$USER_PW" wrong-password; do
        SEARCH_SECRET=$pw homed-vm-check search-memory $pid || fail "homed still holds a password it was given"
    done
}

login1() {
    dbus-send --system --print-reply --dest=org.freedesktop.login1 /org/freedesktop/login1 \
        org.freedesktop.login1.StandIn.Sleep "boolean:$1" > /dev/null
}

# homed --sleep=inhibitor next to a login1 stand-in: PrepareForSleep(true) locks the home.
scenario_sleep() {
    user=vmsleep
    pid=$(pidof homed)
    [ -n "$pid" ] && kill $pid
    wait_for 20 '[ -z "$(pidof homed)" ]' || fail "homed did not stop"
    login1_stand_in > /run/stand-in.log 2>&1 &
    wait_for 20 grep -q READY /run/stand-in.log || fail "the login1 stand-in did not start"
    homed --sleep=inhibitor >> /run/homed.log 2>&1 &
    wait_for 30 grep -q INHIBIT /run/stand-in.log || fail "homed took no delay inhibitor"
    say "homed --sleep=inhibitor holds a delay inhibitor on the login1 stand-in"
    create_home $user
    suspend_stack
    start_session login-suspend $user "$USER_PW"
    wait_for 120 '[ "$(state_of '$user')" = active ]' || fail "login did not activate the home"
    head -c 1048576 /dev/urandom > /home/$user/big
    sync
    login1 true || fail "the stand-in did not emit PrepareForSleep"
    wait_for 30 grep -q RELEASED /run/stand-in.log || fail "homed did not release its inhibitor"
    [ "$(state_of $user)" = locked ] || fail "state after PrepareForSleep(true): $(state_of $user)"
    dm=$(dm_of $user)
    [ -n "$dm" ] && [ "$(cat "$dm/dm/suspended")" = 1 ] || fail "dm does not report home-$user suspended"
    say "PrepareForSleep(true): state locked, dm reports the device suspended, inhibitor released"
    trap 'unlock_after_failure $user "$dm"' EXIT
    # What a core dump would hold: every writable mapping of the daemon. The user's name must be
    # found there (the search sees the daemon's memory); the password must not.
    pid=$(pidof homed)
    SEARCH_SECRET=$user homed-vm-check search-memory $pid > /run/search.out 2>&1 &&
        fail "the memory search does not see homed's memory (no user name found)"
    SEARCH_SECRET=$USER_PW homed-vm-check search-memory $pid > /run/search.out 2>&1 ||
        { sed 's/^/  |   /' /run/search.out; fail "after PrepareForSleep(true) homed's memory holds the password"; }
    say "homed's writable memory holds the user's name but not the password"
    start_blocked_read $user
    login1 false || fail "the stand-in did not emit PrepareForSleep(false)"
    wait_for 30 '[ "$(grep -c INHIBIT /run/stand-in.log)" -ge 2 ]' || fail "no new inhibitor after resume"
    say "after resume: a new inhibitor"
    wrong_password_keeps_locked $user "$dm"
    right_password_unlocks $user "$dm"
    end_session || fail "pamtester failed"
    wait_for 60 nothing_left $user || fail "after logout something is left"
    say "logout closed everything"
}

# More scenarios live in daemon-<topic>.sh files beside this one; each defines scenario_<name>
# functions and may use everything above.
for more in "$(dirname "$0")"/daemon-*.sh; do
    [ -f "$more" ] && . "$more"
done

case $1 in
setup) setup ;;
*)
    if [ -n "$1" ] && command -v "scenario_$1" > /dev/null 2>&1; then
        "scenario_$1"
    else
        echo "usage: $0 setup|SCENARIO (login, suspend, sleep, or one from daemon-*.sh)" >&2
        exit 2
    fi
    ;;
esac
