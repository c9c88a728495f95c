#!/bin/sh
# What other local users and the home's owner must not be able to do, sourced by daemon.sh.
#
#   workdir           daemon-luks-workdir-attacker: while a LUKS home is created, activated
#                     (twice) and has its password changed while inactive, uid 65534 and an
#                     unknown uid (1234) keep trying to enter the folders where its raw file
#                     system is mounted; a root observer in the host's namespace watches for
#                     that mount. Nothing is ever seen or held, every step succeeds, nothing
#                     is left behind
#   identity_zero     daemon-luks-identity-zero: the owner points ~/.identity at /dev/zero; the
#                     next login is refused cleanly, the worker's memory stays small, nothing
#                     is left behind
#   identity_watchdog daemon-luks-identity-watchdog: the owner points ~/.identity at
#                     /dev/watchdog (an i6300esb, reset action); the next login is refused, the
#                     watchdog is never opened, and the guest is still up 40 s later

ATTACK_ROOTS="/run/systemd/user-home-mount /run/systemd/user-home-passwd"

# An attacker as uid $1 (gid $1): tries, as fast as a shell can, to enter every folder under the
# work roots and to read what is there; prints what it managed.
start_attacker() {
    homed-vm-check as-user "$1" "$1" sh -c '
        while [ ! -e /run/stop-attack ]; do
            for d in /run/systemd/user-home-mount/* /run/systemd/user-home-passwd/*; do
                if cd "$d" 2>/dev/null && [ -e lost+found ]; then
                    echo "ENTERED $d"
                    for f in */secret.txt; do cat "$f" 2>/dev/null && echo "READ $d/$f"; done
                    cd /
                fi
            done
        done' > "/run/attacker-$1.log" 2>&1 &
}

# Root in the host's mount namespace: does a raw file system ever show under the work roots?
start_observer() {
    sh -c '
        while [ ! -e /run/stop-attack ]; do
            for d in /run/systemd/user-home-mount/* /run/systemd/user-home-passwd/*; do
                [ -e "$d/lost+found" ] && echo "SEEN $d"
            done
        done' > /run/observer.log 2>&1 &
}

stop_watchers() {
    touch /run/stop-attack
    sleep 0.5
    for log in /run/attacker-65534.log /run/attacker-1234.log /run/observer.log; do
        if [ -s "$log" ]; then
            sort -u "$log" | head -n 5 | sed "s|^|  |   $(basename "$log" .log): |"
            fail "$(basename "$log" .log) saw the raw file system"
        fi
    done
}

scenario_workdir() {
    user=vmpin
    rm -f /run/stop-attack
    # The watchers stop however this scenario ends, so that they cannot disturb the next one.
    trap 'touch /run/stop-attack' EXIT
    start_attacker 65534
    start_attacker 1234
    start_observer
    create_home $user
    hold_services login
    start_session login $user "$USER_PW"
    wait_for 120 '[ "$(state_of '$user')" = active ]' || { stop_watchers; fail "the first login did not activate the home"; }
    uid=$(stat -c %u /home/$user)
    echo "only for $user" > /home/$user/secret.txt
    chown "$uid" /home/$user/secret.txt
    chmod 600 /home/$user/secret.txt
    end_session > /run/end.out || { cat /run/end.out; stop_watchers; fail "the first login failed"; }
    wait_for 60 nothing_left $user || { stop_watchers; fail "after the first logout something is left"; }
    start_session login $user "$USER_PW"
    wait_for 120 '[ "$(state_of '$user')" = active ]' || { stop_watchers; fail "the second login did not activate the home"; }
    end_session > /run/end.out || { cat /run/end.out; stop_watchers; fail "the second login failed"; }
    wait_for 60 nothing_left $user || { stop_watchers; fail "after the second logout something is left"; }
    PASSWORD=$USER_PW NEWPASSWORD=Vm-daemon-pw-2 timeout 120 homectl passwd $user > /run/passwd.out 2>&1 ||
        { cat /run/passwd.out; stop_watchers; fail "homectl passwd of the inactive home failed"; }
    wait_for 60 nothing_left $user || { stop_watchers; fail "after the password change something is left"; }
    stop_watchers
    say "create, two logins and an inactive password change succeeded while uid 65534 and uid 1234 tried to enter the work folders: neither got in, and root in the host's namespace never saw the raw file system there"
    for r in $ATTACK_ROOTS; do
        [ -d "$r" ] || continue
        mode=$(stat -c %a "$r")
        [ "$mode" = 700 ] || fail "$r is $mode, not 700"
    done
    grep -q -e user-home-mount -e user-home-passwd /proc/self/mountinfo && fail "a work folder is still a mount point"
    [ -z "$(dm_of $user)" ] || fail "a dm device is left"
    say "the work roots are 0700 and hold no mount; no dm or loop device is left"
    printf '%s\n' Vm-daemon-pw-2 | pamtester login $user authenticate > /run/pam.out 2>&1 ||
        { cat /run/pam.out; fail "the new password does not log in"; }
    wait_for 60 '[ "$(state_of '$user')" != active ]'
    timeout 60 homectl deactivate $user > /dev/null 2>&1
    timeout 60 homectl remove $user > /dev/null 2>&1
}

# The largest resident size of any "homed worker" process, in kB, sampled until $1 exists.
watch_worker_memory() {
    sh -c '
        peak=0
        low=$(awk "/MemAvailable/ { print \$2 }" /proc/meminfo)
        while [ ! -e "$1" ]; do
            for p in /proc/[0-9]*; do
                case "$(tr "\0" " " < "$p/cmdline" 2>/dev/null)" in *"homed worker"*) ;; *) continue ;; esac
                rss=$(awk "/VmRSS/ { print \$2 }" "$p/status" 2>/dev/null)
                case "$rss" in "" | *[!0-9]*) continue ;; esac
                [ "$rss" -gt "$peak" ] && peak=$rss
            done
            avail=$(awk "/MemAvailable/ { print \$2 }" /proc/meminfo)
            [ "$avail" -lt "$low" ] && low=$avail
        done
        echo "$peak $low"' sh "$1" > /run/worker-memory.out 2> /dev/null &
}

# Logs in once, has the owner point ~/.identity at $2, logs out; then the next login must be
# refused with nothing left behind. $1: the user.
identity_link_refused() {
    user=$1 target=$2
    create_home $user
    hold_services login
    start_session login $user "$USER_PW"
    wait_for 120 '[ "$(state_of '$user')" = active ]' || fail "the first login did not activate the home"
    uid=$(stat -c %u /home/$user)
    homed-vm-check as-user "$uid" "$uid" ln -sf "$target" /home/$user/.identity ||
        { end_session; fail "the owner could not replace ~/.identity"; }
    [ -L /home/$user/.identity ] || { end_session; fail "~/.identity is no symlink"; }
    end_session > /run/end.out || { cat /run/end.out; fail "the first login failed"; }
    wait_for 60 nothing_left $user || fail "after the first logout something is left"
    say "the owner pointed ~/.identity at $target"
    rm -f /run/memory-done
    watch_worker_memory /run/memory-done
    printf '%s\n' "$USER_PW" | timeout 120 pamtester login $user authenticate > /run/pam.out 2>&1
    rc=$?
    touch /run/memory-done
    wait_for 10 test -s /run/worker-memory.out
    sed 's/^/  |   pamtester: /' /run/pam.out
    [ $rc -ne 0 ] || fail "the login succeeded with ~/.identity pointing at $target"
    [ $rc -ne 124 ] || fail "the login hung"
    wait_for 60 nothing_left $user || fail "after the refused login something is left"
    [ "$(state_of $user)" = inactive ] || fail "the home is $(state_of $user) after the refused login"
    set -- $(cat /run/worker-memory.out)
    case "$1 $2" in *[!0-9\ ]* | " ") fail "the memory watcher printed '$*'" ;; esac
    say "the login was refused cleanly (pamtester exit $rc); the home is inactive and nothing is left; the worker's peak RSS was ${1} kB, MemAvailable never below ${2} kB"
    [ "$1" -lt 102400 ] || fail "the worker grew to $1 kB"
}

scenario_identity_zero() {
    identity_link_refused vmzero /dev/zero
    timeout 60 homectl remove vmzero > /dev/null 2>&1
}

scenario_identity_watchdog() {
    [ -c /dev/watchdog ] || fail "the guest has no /dev/watchdog (the i6300esb device or its module is missing)"
    identity_link_refused vmdog /dev/watchdog
    dmesg | grep -i "watchdog did not stop" && fail "something opened /dev/watchdog and let go"
    sleep 40
    say "40 s later the guest is still up (the watchdog was never armed)"
    timeout 60 homectl remove vmdog > /dev/null 2>&1
}
