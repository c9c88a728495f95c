#!/bin/sh
# Runs in the Debian guest (systemd, the real systemd-homed 252), from the transfer disk mounted
# on /xfer: our daemon's public key is installed before homed starts, the image our daemon made
# (homectl create --storage=luks, a file written in a login) is copied to /home, and homed must
# activate it with the password (252 has no adopt or register).
user=crossuser
result() { echo "VMTEST $1 $2"; }
export SYSTEMD_LOG_LEVEL=info

systemctl stop systemd-homed.service 2>/dev/null
mkdir -p /var/lib/systemd/home
chmod 0700 /var/lib/systemd/home
install -m 0644 -o root -g root /xfer/ours.public /var/lib/systemd/home/ours.public
cp --sparse=always "/xfer/$user.home" "/home/$user.home"
systemctl start systemd-homed.service

# homed finds /home/NAME.home on its own (an unfixated home).
i=0
until timeout 10 homectl --no-pager list 2>/dev/null | grep -q "^$user "; do
    i=$((i + 1))
    [ $i -gt 30 ] && break
    sleep 1
done

start=$(date +%s%N)
if PASSWORD=$(cat /xfer/password) timeout 180 homectl activate "$user"; then
    result PASS "homed252-activates-our-image ($((($(date +%s%N) - start) / 1000000)) ms)"
else
    result FAIL "homed252-activates-our-image"
fi
timeout 30 homectl --no-pager inspect "$user" > /xfer/inspect.txt 2>&1
sed 's/^/  | /' /xfer/inspect.txt | grep -E 'User name|State|Storage|Signed|UID|Image Path|File System|LUKS' || true

uid=$(stat -c %u "/home/$user/made-by-our-daemon.txt" 2>/dev/null)
want=$(getent passwd "$user" | cut -d: -f3)
if [ -n "$uid" ] && [ "$uid" = "$want" ] && grep -q 'hello from our daemon' "/home/$user/made-by-our-daemon.txt"; then
    result PASS "homed252-sees-our-files (owned by $uid through its mapping)"
else
    result FAIL "homed252-sees-our-files (owner '$uid', user's uid '$want')"
fi
# homed fixates a discovered home only when its record is signed by a trusted key.
keyline=$(sed -n 2p /xfer/ours.public)
if [ -n "$keyline" ] && grep -q "$keyline" "/var/lib/systemd/home/$user.identity" 2>/dev/null; then
    result PASS "homed252-trusts-our-signature (fixated with our key's signature)"
else
    result FAIL "homed252-trusts-our-signature"
fi
grep -E " /home/$user " /proc/self/mountinfo | sed 's/^/  | /'
if timeout 60 homectl deactivate "$user"; then
    result PASS "homed252-deactivates-our-image"
else
    result FAIL "homed252-deactivates-our-image"
fi
# Not a test: the same operations timed on systemd-homed 252, for the benchmark ratios.
now_ms() { echo $(($(date +%s%N) / 1000000)); }
t=$(now_ms)
NEWPASSWORD=Bench-pw-1 timeout 300 homectl create benchuser --storage=luks --disk-size=64M \
    --fs-type=ext4 --enforce-password-policy=no --luks-pbkdf-type=pbkdf2 \
    --luks-pbkdf-time-cost=1ms > /dev/null 2>&1 && create=$(($(now_ms) - t))
t=$(now_ms)
PASSWORD=Bench-pw-1 timeout 120 homectl activate benchuser && activate=$(($(now_ms) - t))
t=$(now_ms)
timeout 60 homectl lock benchuser && lock=$(($(now_ms) - t))
t=$(now_ms)
PASSWORD=Bench-pw-1 timeout 60 homectl unlock benchuser && unlock=$(($(now_ms) - t))
t=$(now_ms)
timeout 60 homectl deactivate benchuser && deactivate=$(($(now_ms) - t))
# An activation that finds the image's embedded record newer than the host's: the host record
# from before an update is put back while the daemon is stopped.
stale=$(mktemp)
cp /var/lib/systemd/home/benchuser.identity "$stale"
PASSWORD=Bench-pw-1 timeout 120 homectl update benchuser --real-name="Bench Newer" > /dev/null 2>&1
# An activation writes the updated record into the image (ours does it only then).
PASSWORD=Bench-pw-1 timeout 120 homectl activate benchuser > /dev/null 2>&1
timeout 60 homectl deactivate benchuser > /dev/null 2>&1
systemctl stop systemd-homed.service
cp "$stale" /var/lib/systemd/home/benchuser.identity
systemctl start systemd-homed.service
t=$(now_ms)
PASSWORD=Bench-pw-1 timeout 120 homectl activate benchuser && activate_newer=$(($(now_ms) - t))
adopted=$(homectl inspect benchuser 2>/dev/null | grep -c "Real Name: Bench Newer" || true)
[ "$adopted" = 1 ] || activate_newer=x
timeout 60 homectl deactivate benchuser > /dev/null 2>&1
echo "  | bench homed252 create=${create:-x} activate=${activate:-x} lock=${lock:-x} unlock=${unlock:-x} deactivate=${deactivate:-x} activate-newer=${activate_newer:-x} adopted=${adopted:-x}"

# The same commands on our daemon and homectl, in this boot: systemd-homed stopped, our homed on
# the same system bus and state folder (it finds 252's homes there and leaves them be).
bench_ours() {
    ours=/xfer/ours
    [ -x $ours/homed ] || { echo "  | bench ourdaemon: no binaries on the transfer disk"; return; }
    systemctl stop systemd-homed.service
    start_ours() {
        $ours/homed >> /xfer/ours-homed.log 2>&1 &
        pid=$!
        i=0
        until busctl --system status org.freedesktop.home1 > /dev/null 2>&1; do
            i=$((i + 1))
            [ $i -gt 300 ] && { echo "  | bench ourdaemon: homed did not take the bus name"; kill $pid; return 1; }
            sleep 0.1
        done
    }
    : > /xfer/ours-homed.log
    start_ours || return
    unset create activate lock unlock deactivate activate_newer adopted
    t=$(now_ms)
    NEWPASSWORD=Bench-pw-2 timeout 300 $ours/homectl create benchours --storage=luks --disk-size=64M \
        --fs-type=ext4 --enforce-password-policy=no --luks-pbkdf-type=pbkdf2 \
        --luks-pbkdf-time-cost=1ms > /dev/null 2>&1 && create=$(($(now_ms) - t))
    t=$(now_ms)
    PASSWORD=Bench-pw-2 timeout 120 $ours/homectl activate benchours && activate=$(($(now_ms) - t))
    t=$(now_ms)
    timeout 60 $ours/homectl lock benchours && lock=$(($(now_ms) - t))
    t=$(now_ms)
    PASSWORD=Bench-pw-2 timeout 60 $ours/homectl unlock benchours && unlock=$(($(now_ms) - t))
    t=$(now_ms)
    timeout 60 $ours/homectl deactivate benchours && deactivate=$(($(now_ms) - t))
    cp /var/lib/systemd/home/benchours.identity "$stale"
    PASSWORD=Bench-pw-2 timeout 120 $ours/homectl update benchours --real-name="Bench Newer" > /dev/null 2>&1
    PASSWORD=Bench-pw-2 timeout 120 $ours/homectl activate benchours > /dev/null 2>&1
    timeout 60 $ours/homectl deactivate benchours > /dev/null 2>&1
    kill $pid; wait $pid || true
    cp "$stale" /var/lib/systemd/home/benchours.identity
    start_ours || return
    t=$(now_ms)
    PASSWORD=Bench-pw-2 timeout 120 $ours/homectl activate benchours && activate_newer=$(($(now_ms) - t))
    adopted=$($ours/homectl inspect benchours 2>/dev/null | grep -c "Real Name: Bench Newer" || true)
    [ "$adopted" = 1 ] || activate_newer=x
    timeout 60 $ours/homectl deactivate benchours > /dev/null 2>&1
    echo "  | bench ourdaemon create=${create:-x} activate=${activate:-x} lock=${lock:-x} unlock=${unlock:-x} deactivate=${deactivate:-x} activate-newer=${activate_newer:-x} adopted=${adopted:-x}"
    [ -n "$deactivate" ] || tail -n 10 /xfer/ours-homed.log | sed 's/^/  |   homed: /'
    kill $pid
}
bench_ours

journalctl -u systemd-homed --no-pager -o cat 2>/dev/null | tail -15 > /xfer/homed.log
# CIFS homes against a Samba server in this guest, both daemons.
sh /xfer/cifs.sh
echo "VMTEST END"
