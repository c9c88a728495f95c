#!/bin/sh
# Recovery keys on LUKS homes, sourced by daemon.sh:
#
#   recovery_key   daemon-luks-recovery-key: the key homectl prints opens its own keyslot,
#                  typed in capitals and without dashes; a wrong key opens nothing

scenario_recovery_key() {
    user=vmrecovery
    NEWPASSWORD=$USER_PW timeout 120 homectl create "$user" --storage=luks --fs-type=ext4 \
        --disk-size=256M --luks-pbkdf-type=pbkdf2 --luks-pbkdf-time-cost=1ms \
        --enforce-password-policy=no --recovery-key=yes > /run/recovery.key 2> /run/recovery.err ||
        { sed 's/^/  |   /' /run/recovery.err; fail "homectl create --recovery-key=yes $user"; }
    key=$(cat /run/recovery.key)
    echo "$key" | grep -qE '^([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}$' ||
        fail "homectl printed no modhex64 key: '$key'"
    grep -q '"recoveryKeyType"' "/var/lib/systemd/home/$user.identity" ||
        fail "the host record has no recoveryKeyType"
    say "homectl create --storage=luks --recovery-key=yes printed a modhex64 key"

    hold_services login
    # Only the key, as a user who lost the password would type it.
    typed=$(printf %s "$key" | tr -d - | tr a-z A-Z)
    start_session login $user "$typed"
    wait_for 120 '[ "$(state_of '$user')" = active ]' ||
        { end_session; fail "a login with the recovery key did not activate the home"; }
    [ -n "$(dm_of $user)" ] || fail "no /dev/mapper/home-$user while active"
    say "a login with the key in capitals, without dashes, activated the home"
    end_session || fail "pamtester failed"
    wait_for 60 nothing_left $user || fail "after logout something is left"

    # The same shape, another key: refused, nothing activated.
    wrong=$(printf %s "$key" | sed 's/^c/b/;t;s/^./c/')
    printf '%s\n' "$wrong" | timeout 60 pamtester login $user authenticate > /run/pam.out 2>&1 &&
        fail "a wrong recovery key authenticated"
    [ "$(state_of $user)" = inactive ] || fail "after a wrong key the home is $(state_of $user)"
    say "a wrong key of the same shape is refused; the home stays inactive"

    # The password keeps its own keyslot.
    start_session login $user "$USER_PW"
    wait_for 120 '[ "$(state_of '$user')" = active ]' ||
        { end_session; fail "the password no longer activates the home"; }
    end_session || fail "pamtester failed"
    wait_for 60 nothing_left $user || fail "after logout something is left"
    say "the password still activates the home"
}
