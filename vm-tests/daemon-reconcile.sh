#!/bin/sh
# The three record copies after an activation, sourced by daemon.sh.
#
#   reconcile   daemon-luks-reconcile: a newer signed record found only in ~/.identity (as an
#               update interrupted on another machine leaves it) is adopted by the next login,
#               and that one activation leaves the host record, the LUKS header record and
#               ~/.identity identical

scenario_reconcile() {
    user=vmrecon
    create_home $user
    hold_services login
    start_session login $user "$USER_PW"
    wait_for 120 '[ "$(state_of '$user')" = active ]' || fail "login did not activate the home"
    homed-vm-check newer-record /home/$user/.identity /var/lib/systemd/home/local.private \
        "Newer Name" > /run/newer.out 2>&1 || { cat /run/newer.out; end_session; fail "could not write a newer record"; }
    end_session > /run/end.out || { cat /run/end.out; fail "pamtester failed"; }
    wait_for 60 nothing_left $user || fail "after logout something is left"
    getent passwd $user | grep -q "Newer Name" && fail "the host record has the newer name before any login"
    say "a newer record, signed by this machine's key, written into ~/.identity alone"

    start_session login $user "$USER_PW"
    wait_for 120 '[ "$(state_of '$user')" = active ]' || fail "the second login did not activate the home"
    # "active" shows once the image is mounted; the login's call returns after the adoption.
    wait_for 30 'getent passwd '$user' | grep -q "Newer Name"' ||
        { end_session; fail "the newer record was not adopted: $(getent passwd $user)"; }
    agree=$(CHECK_PASSWORD=$USER_PW homed-vm-check records-agree $user /home/$user.home /home/$user/.identity 2>&1) ||
        { end_session; fail "after one activation: $agree"; }
    say "the next login adopted it (getent shows the newer name); the three copies agree: $agree"
    end_session > /run/end.out || { cat /run/end.out; fail "pamtester failed"; }
    wait_for 60 nothing_left $user || fail "after logout something is left"
    timeout 60 homectl remove $user > /dev/null 2>&1
}
