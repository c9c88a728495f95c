#!/bin/sh
# Sourced by daemon.sh. The image systemd-homed 252 made (user dave) arrives in /home without a
# host record, on a machine with another machine-id: our daemon finds it unfixated, and the
# first login with the right password fixates it (the header record, checked against homed
# 252's key and the password, becomes the host record with this machine's binding) and
# activates it. The records stay signed by homed 252 alone.

FIXTURE=/fixtures/homed-252-luks
DAVE_PW=Dave-pw-789

# Restarts our daemon (discovery runs when it starts).
restart_homed() {
    pid=$(pidof homed)
    [ -n "$pid" ] && kill $pid
    wait_for 20 '[ -z "$(pidof homed)" ]' || fail "homed did not stop"
    homed >> /run/homed.log 2>&1 &
    wait_for 30 'dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.GetNameOwner string:org.freedesktop.home1' ||
        fail "homed did not take org.freedesktop.home1 again"
}

# One storage request to our worker, as the daemon sends it; prints the JSON reply.
worker() {
    printf '%s' "$1" | homed worker
}

# ActivateHome of user $1 with password $2 on the bus; prints the error, if any.
activate() {
    timeout 60 dbus-send --system --print-reply --dest=org.freedesktop.home1 /org/freedesktop/home1 \
        org.freedesktop.home1.Manager.ActivateHome "string:$1" "string:{\"password\":[\"$2\"]}" 2>&1 |
        sed -n 's/^Error //p'
}

# The JSON-escaped "identity" string of a worker reply.
identity_of() {
    sed -n 's/.*"identity":"\(\([^"\\]\|\\.\)*\)".*/\1/p'
}

# inspect of dave's image with only homed 252's key trusted: ok only if the header record
# verifies with that key.
inspect_252() {
    worker "{\"secret\":{\"password\":[\"$DAVE_PW\"]},\"op\":\"inspect\",\"storage\":\"luks\",\"userName\":\"dave\",\"imagePath\":\"/home/dave.home\",\"keyDirs\":[\"/run/key-252\"]}"
}

scenario_fixate() {
    [ -f $FIXTURE/dave.home.zst ] || fail "no fixture image in the guest"
    [ "$(cat /etc/machine-id)" != "$(cat $FIXTURE/machine-id)" ] || fail "the guest has the fixture's machine-id"
    zstd -d -q -o /home/dave.home $FIXTURE/dave.home.zst || fail "zstd -d of the fixture image"
    # The same image found under another user's name.
    zstd -d -q -o /home/eve.home $FIXTURE/dave.home.zst || fail "zstd -d of the fixture image"
    sig=$(sed -n 's/.*"data" : "\([^"]*\)".*/\1/p' $FIXTURE/dave.identity)
    [ -n "$sig" ] || fail "no signature in the fixture's host record"

    # Before homed 252's key is trusted: the right password, but the record is refused.
    restart_homed
    [ "$(state_of dave)" = unfixated ] || fail "dave.home is not listed unfixated: '$(state_of dave)'"
    err=$(activate dave "$DAVE_PW")
    case $err in *org.freedesktop.home1.BadSignature*) ;; *) fail "ActivateHome without homed 252's key: $err" ;; esac
    [ "$(state_of dave)" = unfixated ] && [ ! -e /var/lib/systemd/home/dave.identity ] ||
        fail "an untrusted record was fixated"
    say "without homed 252's key trusted: $err; still unfixated, nothing written"
    err=$(activate eve "$DAVE_PW")
    case $err in *'named "dave"'*) ;; *) fail "ActivateHome of dave's image as eve: $err" ;; esac
    [ "$(state_of eve)" = unfixated ] && [ ! -e /var/lib/systemd/home/eve.identity ] ||
        fail "dave's image was fixated as eve"
    [ -z "$(dm_of eve)" ] && [ -z "$(loops_of eve)" ] || fail "a refused fixation left a device behind"
    say "dave's image found as /home/eve.home: $err; still unfixated, nothing written"
    rm /home/eve.home

    mkdir -p /etc/systemd/home /run/key-252
    cp $FIXTURE/local.public /etc/systemd/home/homed-252.public
    cp $FIXTURE/local.public /run/key-252/homed-252.public
    chmod 644 /etc/systemd/home/homed-252.public /run/key-252/homed-252.public
    restart_homed
    [ "$(state_of dave)" = unfixated ] || fail "dave.home is not listed unfixated: '$(state_of dave)'"
    [ ! -e /var/lib/systemd/home/dave.identity ] || fail "a host record exists before fixation"
    say "homed 252's image in /home (machine-id $(cat /etc/machine-id), not the fixture's) is found: unfixated"

    hold_services login
    echo wrong-password | timeout 60 pamtester login dave authenticate > /run/wrong.out 2>&1 &&
        fail "PAM authenticate accepted a wrong password"
    [ "$(state_of dave)" = unfixated ] || fail "state after a wrong password: $(state_of dave)"
    [ ! -e /var/lib/systemd/home/dave.identity ] || fail "a wrong password wrote a host record"
    [ -z "$(dm_of dave)" ] && [ -z "$(loops_of dave)" ] || fail "a wrong password left a device behind"
    say "a wrong password is refused: still unfixated, no host record, no device"

    start_session login dave "$DAVE_PW"
    wait_for 120 '[ "$(state_of dave)" = active ]' ||
        { end_session; fail "login did not fixate and activate the home: $(state_of dave)"; }
    rec=/var/lib/systemd/home/dave.identity
    [ -s $rec ] || fail "no host record after the login"
    mid=$(cat /etc/machine-id)
    grep -q "\"$mid\" : {" $rec || fail "the host record has no binding for this machine"
    for field in imagePath homeDirectory uid gid storage partitionUuid luksUuid fileSystemUuid \
        fileSystemType luksCipher luksCipherMode luksVolumeKeySize; do
        grep -q "\"$field\"" $rec || fail "the host record's binding lacks $field"
    done
    for field in luksUuid fileSystemUuid partitionUuid; do
        theirs=$(grep "\"$field\"" $FIXTURE/dave.identity)
        grep -qF "$theirs" $rec || fail "$field differs from homed 252's: $(grep "\"$field\"" $rec)"
    done
    say "login with the password fixated it: host record with this machine's binding (UUIDs as homed 252 read them)"

    pw=$(getent passwd dave) || fail "getent passwd dave finds nothing (nss_homed)"
    uid=$(echo "$pw" | cut -d: -f3)
    [ "$uid" -ge 60001 ] && [ "$uid" -le 60513 ] || fail "dave's UID $uid is not in homed's range"
    [ "$(echo "$pw" | cut -d: -f5)" = "Dave Luks" ] || fail "getent passwd dave: $pw"
    [ "$(stat -c %u:%g /home/dave)" = "$uid:$uid" ] || fail "/home/dave is owned by $(stat -c %u:%g /home/dave), not $uid"
    [ "$(stat -c %u /home/dave/.identity)" = "$uid" ] || fail "~/.identity is owned by $(stat -c %u /home/dave/.identity)"
    grep -q " /home/dave .*idmapped" /proc/self/mountinfo || fail "/home/dave is not an idmapped mount"
    mkdir -p /run/raw
    mount -t ext4 "/dev/mapper/home-dave" /run/raw || fail "cannot mount home-dave a second time"
    stored=$(stat -c %u /run/raw/dave)
    umount /run/raw
    [ "$stored" = 65534 ] || fail "on disk the home belongs to $stored, not 65534"
    say "getent passwd dave: $pw; /home/dave is $uid's through the idmap, stored as $stored"

    echo "written after fixation" > /home/dave/fixated.txt
    chown "$uid:$uid" /home/dave/fixated.txt
    end_session || fail "pamtester failed"
    wait_for 60 nothing_left dave || fail "after logout: dm [$(dm_of dave)] loop [$(loops_of dave)] still there"
    wait_for 20 '[ "$(state_of dave)" = inactive ]' || fail "state after logout: $(state_of dave)"
    say "logout closed everything"

    # Records: signed by homed 252 alone, never re-signed by us.
    [ "$(grep -c '"data" :' $rec)" = 1 ] && grep -qF "$sig" $rec || fail "the host record does not carry homed 252's signature alone"
    ours=$(sed -n 2p /var/lib/systemd/home/local.public)
    [ -n "$ours" ] && ! grep -qF "$ours" $rec || fail "the host record carries our key"
    restart_homed
    [ "$(state_of dave)" = inactive ] || fail "after a restart the host record is not taken: $(state_of dave)"
    worker '{"op":"inspect","storage":"luks","userName":"dave","imagePath":"/home/dave.home","keyDirs":["/run/key-252"],"secret":{"password":["'$DAVE_PW'"]}}' > /run/inspect.out
    grep -q '"ok":true' /run/inspect.out || fail "the header record no longer verifies with homed 252's key: $(cat /run/inspect.out)"
    say "the host record verifies (a restarted homed takes it) with homed 252's signature alone; the header record verifies with homed 252's key"

    start_session login dave "$DAVE_PW"
    wait_for 120 '[ "$(state_of dave)" = active ]' || { end_session; fail "the second login did not activate the home"; }
    [ "$(cat /home/dave/fixated.txt 2>/dev/null)" = "written after fixation" ] || fail "the second login does not find the file"
    header=$(inspect_252 | identity_of)
    home=$(worker '{"op":"read-identity","imagePath":"/home/dave"}' | identity_of)
    [ -n "$header" ] && [ "$header" = "$home" ] || fail "~/.identity is not the header record that verifies with homed 252's key"
    say "a second login finds the file; ~/.identity is byte for byte the header record that verifies with homed 252's key"
    end_session || fail "pamtester failed"
    wait_for 60 nothing_left dave || fail "after the second logout something is left"
    say "second logout closed everything"
}
