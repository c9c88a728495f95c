#!/bin/sh
# Password changes of a LUKS home through our daemon, sourced by daemon.sh (which defines
# setup, create_home, start_session, end_session, hold_services, state_of, dm_of, nothing_left,
# wait_for, say, fail).
#
#   passwd      daemon-luks-passwd: homectl passwd killed at every step (the debug builds' test
#               hook HOMED_TEST_KILL_AT), then logins with the old, the new or both passwords;
#               an uninterrupted change through PAM; a change while the user is logged in

PASSWD_USER=vmpasswd

# Restarts homed, with the kill hook set to step $1 when given.
restart_homed() {
    pid=$(pidof homed)
    [ -n "$pid" ] && kill $pid
    wait_for 20 '[ -z "$(pidof homed)" ]' || fail "homed did not stop"
    if [ -n "$1" ]; then
        HOMED_TEST_KILL_AT=$1 homed >> /run/homed.log 2>&1 &
    else
        homed >> /run/homed.log 2>&1 &
    fi
    wait_for 30 'dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.GetNameOwner string:org.freedesktop.home1' ||
        fail "homed did not take org.freedesktop.home1 again"
}

# Logs user $1 in through pamtester typing $2 first and $3 at the "Sorry, try again" prompt
# (pam_homed keeps both): $2 alone must be refused, both together must activate the home. Checks
# the three record copies while it is active ($3 opens the header; the result, in $AGREE, says
# whether $2 still opens a keyslot), logs out.
login_and_check() {
    start_session login "$1" "$(printf '%s\n%s' "$2" "$3")"
    wait_for 120 '[ "$(state_of '"$1"')" = active ]' ||
        { end_session; fail "login with '$2' then '$3' did not activate the home"; }
    AGREE=$(CHECK_PASSWORD=$3 CHECK_OTHER_PASSWORD=$2 \
        homed-vm-check records-agree "$1" "/home/$1.home" "/home/$1/.identity" 2>&1) ||
        { end_session; fail "after the login: $AGREE"; }
    [ "$(cat /home/$1/note.txt 2>/dev/null)" = kept ] || { end_session; fail "the file in the home is gone"; }
    end_session > /run/end.out || { cat /run/end.out; fail "pamtester failed"; }
    grep -q "Password incorrect or not sufficient" /run/pam.out ||
        { cat /run/end.out; fail "'$2' alone was not refused"; }
    wait_for 60 nothing_left "$1" || fail "after logout something is left"
}

scenario_passwd() {
    user=$PASSWD_USER
    create_home $user
    hold_services login
    start_session login $user "$USER_PW"
    wait_for 120 '[ "$(state_of '$user')" = active ]' || fail "login did not activate the home"
    echo kept > /home/$user/note.txt
    end_session > /run/end.out || { cat /run/end.out; fail "pamtester failed"; }
    wait_for 60 nothing_left $user || fail "after logout something is left"
    say "a LUKS home with a file in it"

    cur=$USER_PW
    count=1
    for step in before-new-keyslot after-new-keyslot after-host-record after-old-keyslot-removed \
        after-header-record after-identity; do
        next="Vm-passwd-$count"
        count=$((count + 1))
        t0=$(date +%s)
        restart_homed $step
        PASSWORD=$cur NEWPASSWORD=$next timeout 120 homectl passwd $user > /run/passwd.out 2>&1 &&
            fail "homectl passwd succeeded although homed was to be killed at $step"
        grep -q "HOMED_TEST_KILL_AT: killed at $step" /run/homed.log ||
            { sed 's/^/  |   /' /run/passwd.out; fail "the test hook did not fire at $step"; }
        restart_homed
        wait_for 20 '[ "$(state_of '$user')" = inactive ]' || fail "state after the kill: $(state_of $user)"
        case $step in
        before-new-keyslot | after-new-keyslot) works=$cur other=$next ;;
        *) works=$next other=$cur ;;
        esac
        login_and_check $user "$other" "$works"
        say "killed at $step: the $([ "$works" = "$cur" ] && echo old || echo new) password opens the home, the other alone is refused, both together (as PAM collects them) log in; $AGREE ($(($(date +%s) - t0)) s)"
        cur=$works
    done

    # An uninterrupted change of the inactive home, through PAM as passwd(1) makes it
    # (pam.d-examples/passwd: the new password twice, then pam_homed asks for the current one):
    # only the new password opens the home.
    restart_homed
    printf '%s\n%s\n%s\n' Vm-passwd-whole Vm-passwd-whole "$cur" |
        timeout 120 pamtester passwd $user chauthtok > /run/passwd.out 2>&1 ||
        { sed 's/^/  |   /' /run/passwd.out; fail "PAM chauthtok of the inactive home failed"; }
    [ "$(state_of $user)" = inactive ] || fail "state after the change: $(state_of $user)"
    login_and_check $user "$cur" Vm-passwd-whole
    case $AGREE in *"1 keyslot(s), the other password opens no keyslot"*) ;;
    *) fail "after an uninterrupted change: $AGREE" ;; esac
    say "an uninterrupted change through PAM (pamtester passwd chauthtok): the old password is refused, the new one logs in; $AGREE"
    cur=Vm-passwd-whole

    # A change while the user is logged in: the session goes on.
    start_session login $user "$cur"
    wait_for 120 '[ "$(state_of '$user')" = active ]' || fail "login did not activate the home"
    PASSWORD=$cur NEWPASSWORD=Vm-passwd-active timeout 120 homectl passwd $user > /run/passwd.out 2>&1 ||
        { sed 's/^/  |   /' /run/passwd.out; end_session; fail "homectl passwd of the active home failed"; }
    [ "$(state_of $user)" = active ] || { end_session; fail "state after the change: $(state_of $user)"; }
    echo "written after the change" > /home/$user/after.txt && sync ||
        { end_session; fail "the home is not writable after the change"; }
    [ "$(cat /home/$user/note.txt)" = kept ] || { end_session; fail "the file is gone after the change"; }
    AGREE=$(CHECK_PASSWORD=Vm-passwd-active CHECK_OTHER_PASSWORD=$cur \
        homed-vm-check records-agree $user /home/$user.home /home/$user/.identity 2>&1) ||
        { end_session; fail "while active: $AGREE"; }
    case $AGREE in *"1 keyslot(s), the other password opens no keyslot"*) ;;
    *) end_session; fail "after the change while active: $AGREE" ;; esac
    # Locked (dm-crypt suspended), the home refuses a change with a clear error; the new
    # password unlocks it.
    timeout 60 homectl lock $user > /run/lock.out 2>&1 ||
        { sed 's/^/  |   /' /run/lock.out; end_session; fail "homectl lock failed"; }
    [ "$(state_of $user)" = locked ] || { end_session; fail "state after homectl lock: $(state_of $user)"; }
    PASSWORD=Vm-passwd-active NEWPASSWORD=Vm-passwd-locked timeout 60 homectl passwd $user > /run/passwd.out 2>&1 &&
        { end_session; fail "homectl passwd of a locked home succeeded"; }
    grep -q "currently locked" /run/passwd.out ||
        { sed 's/^/  |   /' /run/passwd.out; end_session; fail "no clear error for the locked home"; }
    PASSWORD=Vm-passwd-active timeout 60 homectl unlock $user > /run/unlock.out 2>&1 ||
        { sed 's/^/  |   /' /run/unlock.out; end_session; fail "the new password does not unlock the home"; }
    [ "$(state_of $user)" = active ] || { end_session; fail "state after the unlock: $(state_of $user)"; }
    say "locked, the home refuses a change ($(head -n 1 /run/passwd.out)); the new password unlocks it"
    PASSWORD=$cur timeout 60 homectl authenticate $user > /run/auth.out 2>&1 &&
        { end_session; fail "the old password still authenticates"; }
    PASSWORD=Vm-passwd-active timeout 60 homectl authenticate $user > /run/auth.out 2>&1 ||
        { sed 's/^/  |   /' /run/auth.out; end_session; fail "the new password does not authenticate"; }
    end_session > /run/end.out || { cat /run/end.out; fail "pamtester failed"; }
    wait_for 60 nothing_left $user || fail "after logout something is left"
    say "a change while logged in: the session goes on writing; homectl authenticate refuses the old password and takes the new one; at once $AGREE"
}
