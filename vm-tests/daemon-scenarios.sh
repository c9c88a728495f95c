#!/bin/sh
# More daemon scenarios, sourced by daemon.sh (which defines setup, create_home, start_session,
# end_session, hold_services, state_of, dm_of, loops_of, nothing_left, wait_for, say, fail).
#
#   login_btrfs          daemon-luks-login on btrfs
#   powercut_write       first boot of daemon-powercut-recover (never returns: qemu is killed)
#   powercut_verify      second boot of daemon-powercut-recover
#   interop_make         our daemon makes the home the real systemd-homed 252 activates

# The login scenario of daemon.sh with a btrfs home.
scenario_login_btrfs() {
    scenario_login vmbtrfs btrfs
}

# daemon-powercut-recover, first boot (init.sh has put /home, /var/lib/systemd/home and the
# machine-id on the virtio disk): our homectl creates a LUKS home, a login through pamtester
# keeps the session open, and the user writes files, each synced before "VMTEST SYNCED n" is
# printed, until the host kills qemu.
PCUT_USER=pcut
scenario_powercut_write() {
    user=$PCUT_USER
    create_home $user
    hold_services login
    start_session login $user "$USER_PW"
    wait_for 120 '[ "$(state_of '$user')" = active ]' || fail "login did not activate the home"
    [ "$(homed-vm-check dirty /home/$user.home)" = dirty ] || fail "the active home's image is not marked dirty"
    uid=$(getent passwd $user | cut -d: -f3)
    gid=$(getent passwd $user | cut -d: -f4)
    # What the daemon wrote so far (host record, key, image header) is on the disk, as it
    # would be on a machine that has been up for a while.
    sync
    say "login through pamtester activated the home on the disk; the session stays open"
    say "the user ($uid) writes, syncing each file, until the power is cut"
    homed-vm-check write-synced /home/$user "$uid" "$gid"
    ls -ldn /home /home/$user | sed 's/^/  |   /'
    fail "the writer stopped before the power cut"
}

# daemon-powercut-recover, second boot: the daemon starts from the disk's state, a login
# activates the home (fsck, the dirty marker), the files reported synced ($HOMED_SYNCED is the
# last number the host saw) are intact, and the three record copies verify.
scenario_powercut_verify() {
    user=$PCUT_USER
    last=${HOMED_SYNCED:?the host did not say what was synced}
    [ -f /home/$user.home ] || fail "no image /home/$user.home on the disk"
    [ -f /var/lib/systemd/home/$user.identity ] || fail "no host record on the disk"
    [ -f /var/lib/systemd/home/local.public ] || fail "no machine key on the disk"
    state=$(state_of $user)
    case $state in
    inactive | dirty) ;;
    *) fail "after the power cut our daemon calls the home '$state'" ;;
    esac
    [ -z "$(dm_of $user)" ] && ! grep -q " /home/$user " /proc/self/mountinfo ||
        fail "something of the home is active before the login"
    marker=$(homed-vm-check dirty /home/$user.home) || fail "cannot read the image's xattrs"
    [ "$marker" = dirty ] || fail "the image cut while active is not marked dirty"
    say "our daemon started from the disk's state: the home is $state, the image marked dirty"

    hold_services login
    start_session login $user "$USER_PW"
    wait_for 180 '[ "$(state_of '$user')" = active ]' || fail "the login after the power cut did not activate the home"
    [ "$(stat -c %u /home/$user)" = "$(getent passwd $user | cut -d: -f3)" ] ||
        fail "/home/$user is not the user's after the power cut"
    say "a login through pamtester activated it (fsck before the mount)"
    homed-vm-check check-synced /home/$user "$last" > /run/synced.out 2>&1 ||
        { sed 's/^/  |   /' /run/synced.out; fail "files synced before the cut are missing or damaged"; }
    cat /run/synced.out
    cp /home/$user/.identity /run/pcut.identity || fail "no ~/.identity in the home"
    end_session || fail "pamtester failed"
    wait_for 60 nothing_left $user || fail "after logout: dm [$(dm_of $user)] loop [$(loops_of $user)] still there"
    [ "$(homed-vm-check dirty /home/$user.home)" = clean ] || fail "the image is still marked dirty after logout"
    say "logout closed everything and cleared the dirty marker"

    CHECK_PASSWORD=$USER_PW homed-vm-check verify-records /var/lib/systemd/home/local.public $user \
        /var/lib/systemd/home/$user.identity /run/pcut.identity /home/$user.home > /run/verify.out 2>&1 ||
        { sed 's/^/  |   /' /run/verify.out; fail "the records after the power cut"; }
    cat /run/verify.out
    wait_for 20 nothing_left $user || fail "the record check left a loop device"
}

# interop-create: our daemon makes the home the real systemd-homed 252 activates in the Debian
# guest. homectl create --storage=luks, a login writes a file, logout; then the image, our
# daemon's public key and the password go to the transfer disk ($INTEROP_XFER) for
# interop-run.sh.
scenario_interop_make() {
    user=crossuser
    xfer=${INTEROP_XFER:?no transfer disk}
    USER_PW=Cross-pw-252
    create_home $user
    hold_services login
    start_session login $user "$USER_PW"
    wait_for 120 '[ "$(state_of '$user')" = active ]' || fail "login did not activate the home"
    uid=$(getent passwd $user | cut -d: -f3)
    echo "hello from our daemon" > /home/$user/made-by-our-daemon.txt
    chown "$uid:$uid" /home/$user/made-by-our-daemon.txt
    sync
    end_session || fail "pamtester failed"
    wait_for 60 nothing_left $user || fail "after logout: dm [$(dm_of $user)] loop [$(loops_of $user)] still there"
    say "our daemon made $user.home (uid $uid); a login wrote a file in it; logout closed everything"
    cp /home/$user.home "$xfer/$user.home" &&
        cp /var/lib/systemd/home/local.public "$xfer/ours.public" &&
        printf '%s' "$USER_PW" > "$xfer/password" || fail "copying to the transfer disk"
    say "the image, our daemon's local.public and the password are on the transfer disk"
}
