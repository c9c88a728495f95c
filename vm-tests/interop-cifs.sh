#!/bin/sh
# CIFS homes in the Debian guest, against smbd from Debian's samba package with shares and a
# Samba user made here: systemd-homed 252 makes one and our daemon opens it; our daemon makes
# one (create, a PAM login that writes a file, logout), bad input, the server stopped under an
# active home, and 252 opens ours. Run from interop-run.sh with both daemons stopped; $ours
# holds our homed, homectl and pam_homed.so.
ours=/xfer/ours
pw=Share-pw-1
smbuser=smbhome
result() { echo "VMTEST $1 $2"; }
say() { echo "  | cifs: $*"; }

# Port 445 listening (0x01BD, state 0A in /proc/net/tcp).
smb_listening() { grep -q ':01BD 00000000:0000 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null; }
wait_for() {
    i=0
    until "$@"; do
        i=$((i + 1))
        [ $i -gt 60 ] && return 1
        sleep 0.5
    done
}
mounted() { grep -q " /home/$1 " /proc/self/mountinfo; }
not_mounted() { ! mounted "$1"; }
state_of() { timeout 10 "$@" --no-pager inspect "$home" 2>/dev/null | sed -n 's/^ *State: *//p'; }

useradd -M -s /usr/sbin/nologin "$smbuser"
mkdir -p /srv/cifs/h252 /srv/cifs/hours /srv/cifs/full
echo "someone's data" > /srv/cifs/full/data.txt
chown -R "$smbuser:" /srv/cifs
cat > /etc/samba/smb.conf <<EOF
[global]
   server role = standalone server
   map to guest = never
   disable netbios = yes
   smb ports = 445
[h252]
   path = /srv/cifs/h252
   read only = no
   valid users = $smbuser
[hours]
   path = /srv/cifs/hours
   read only = no
   valid users = $smbuser
[full]
   path = /srv/cifs/full
   read only = no
   valid users = $smbuser
EOF
# smbd listens before it serves: ready once a share really mounts with the Samba user.
smb_serving() {
    mkdir -p /run/smb-probe
    mount -t cifs //127.0.0.1/h252 /run/smb-probe -o "username=$smbuser,password=$pw" 2>/dev/null &&
        umount /run/smb-probe
}
set_share_password() { printf '%s\n%s\n' "$1" "$1" | smbpasswd -s -a "$smbuser" > /dev/null; }
set_share_password "$pw"
systemctl restart smbd.service
wait_for smb_listening && wait_for smb_serving || say "smbd does not serve the shares"

start_ours() {
    $ours/homed >> /xfer/ours-cifs-homed.log 2>&1 &
    ours_pid=$!
    wait_for busctl --system status org.freedesktop.home1 > /dev/null 2>&1
}
stop_ours() { kill "$ours_pid" 2>/dev/null; wait "$ours_pid" 2>/dev/null; }

# --- systemd-homed 252 makes a CIFS home -------------------------------------------------------
systemctl start systemd-homed.service
wait_for busctl --system status org.freedesktop.home1 > /dev/null 2>&1
home=cifs252
if NEWPASSWORD=$pw timeout 120 homectl create $home --storage=cifs \
    --cifs-service=//127.0.0.1/h252 --cifs-user-name=$smbuser --enforce-password-policy=no \
    > /xfer/cifs-252-create.txt 2>&1 && [ -s /srv/cifs/h252/.identity ] &&
    PASSWORD=$pw timeout 60 homectl activate $home &&
    echo "written under 252" > /home/$home/by-252.txt &&
    timeout 60 homectl deactivate $home && [ -f /srv/cifs/h252/by-252.txt ]; then
    result PASS "homed252-cifs-create (its .identity and a file on the share)"
else
    result FAIL "homed252-cifs-create"
    sed 's/^/  |   /' /xfer/cifs-252-create.txt
fi
# 252's answer when the share no longer takes the password the record still does, straight
# from the bus (homectl would ask again for a password).
activate_on_bus() {
    timeout 60 busctl --system call org.freedesktop.home1 /org/freedesktop/home1 \
        org.freedesktop.home1.Manager ActivateHome ss "$1" "{\"secret\":{\"password\":[\"$pw\"]}}"
}
set_share_password Other-pw-9
activate_on_bus $home > /xfer/cifs-252-wrong.txt 2>&1
set_share_password "$pw"
systemctl stop systemd-homed.service

# --- our daemon -------------------------------------------------------------------------------
: > /xfer/ours-cifs-homed.log
start_ours
uid=$($ours/homectl inspect $home | sed -n 's/^ *UID: \([0-9]*\).*/\1/p')
if PASSWORD=$pw timeout 60 $ours/homectl activate $home &&
    grep -q "written under 252" /home/$home/by-252.txt &&
    [ -n "$uid" ] && [ "$(stat -c %u /home/$home/by-252.txt)" = "$uid" ]; then
    mounted $home && timeout 60 $ours/homectl deactivate $home && not_mounted $home &&
        result PASS "ourdaemon-opens-252-cifs-home (252's file, owned by the user)" ||
        result FAIL "ourdaemon-opens-252-cifs-home (deactivation)"
else
    result FAIL "ourdaemon-opens-252-cifs-home"
    mounted $home && timeout 60 $ours/homectl deactivate $home
fi

set_share_password Other-pw-9
activate_on_bus $home > /xfer/cifs-ours-wrong.txt 2>&1
ours_rc=$?
set_share_password "$pw"
want="Password for home $home is incorrect or not sufficient for authentication"
if [ $ours_rc -ne 0 ] && grep -q "$want" /xfer/cifs-ours-wrong.txt &&
    grep -q "$want" /xfer/cifs-252-wrong.txt && not_mounted $home; then
    result PASS "cifs-wrong-share-password (both: $want)"
else
    result FAIL "cifs-wrong-share-password"
    sed 's/^/  |   252: /' /xfer/cifs-252-wrong.txt
    sed 's/^/  |   ours: /' /xfer/cifs-ours-wrong.txt
fi

home=cifsours
# Extra options that would undo the record's nosuid,nodev if they came last.
if NEWPASSWORD=$pw timeout 120 $ours/homectl create $home --storage=cifs \
    --cifs-service=//127.0.0.1/hours --cifs-user-name=$smbuser --enforce-password-policy=no \
    --cifs-extra-mount-options=suid,dev \
    > /xfer/cifs-ours-create.txt 2>&1 && [ -s /srv/cifs/hours/.identity ] && not_mounted $home; then
    result PASS "ourdaemon-cifs-create (.identity on the share, nothing left mounted)"
else
    result FAIL "ourdaemon-cifs-create"
    sed 's/^/  |   /' /xfer/cifs-ours-create.txt
fi
storage_lines() { timeout 10 "$@" --no-pager inspect $home 2>&1 | grep -E '^ *(Storage|CIFS)'; }
storage_lines $ours/homectl > /xfer/cifs-ours-inspect.txt
sed 's/^/  |   /' /xfer/cifs-ours-inspect.txt

# A login through pam_homed: the session's step after pam_homed writes a file as the user and
# notes the mount's flags; logout (the end of the PAM session) unmounts the share.
uid=$($ours/homectl inspect $home | sed -n 's/^ *UID: \([0-9]*\).*/\1/p')
cat > /xfer/cifs-session.sh <<EOF
#!/bin/sh
# pam_exec runs this at the session's close too, after pam_homed let go of the home.
[ "\$PAM_TYPE" = open_session ] || exit 0
grep " /home/\$PAM_USER " /proc/self/mountinfo > /run/cifs-login-mount
setpriv --reuid=$uid --regid=$uid --clear-groups sh -c 'echo "written in a login" > /home/\$PAM_USER/by-login.txt'
EOF
chmod 755 /xfer/cifs-session.sh
cat > /etc/pam.d/homed-cifs <<EOF
auth     required $ours/pam_homed.so
account  required $ours/pam_homed.so
session  required $ours/pam_homed.so
session  required pam_exec.so /xfer/cifs-session.sh
EOF
if printf '%s\n' "$pw" | timeout 120 pamtester homed-cifs $home authenticate open_session close_session \
    > /xfer/cifs-login.txt 2>&1 && [ -f /srv/cifs/hours/by-login.txt ] &&
    grep -q nosuid /run/cifs-login-mount && grep -q nodev /run/cifs-login-mount &&
    wait_for not_mounted $home; then
    result PASS "ourdaemon-cifs-login (the file on the share, nosuid,nodev; unmounted at logout)"
else
    result FAIL "ourdaemon-cifs-login"
    sed 's/^/  |   /' /xfer/cifs-login.txt /run/cifs-login-mount 2>/dev/null
    mounted $home && timeout 60 $ours/homectl deactivate $home
fi

# The server stops under an active home: the home shows absent, the daemon answers, and
# deactivating takes the mount away without waiting on the server.
PASSWORD=$pw timeout 60 $ours/homectl activate $home
systemctl stop smbd.service
if wait_for sh -c "[ \"\$(timeout 10 $ours/homectl --no-pager inspect $home 2>/dev/null | sed -n 's/^ *State: *//p')\" = absent ]" &&
    kill -0 "$ours_pid" && timeout 10 $ours/homectl --no-pager list > /dev/null &&
    timeout 30 $ours/homectl deactivate $home && not_mounted $home; then
    result PASS "cifs-server-gone-absent (absent, daemon up, deactivated without waiting)"
else
    result FAIL "cifs-server-gone-absent (state '$(state_of $ours/homectl)')"
    tail -n 5 /xfer/ours-cifs-homed.log | sed 's/^/  |   homed: /'
fi

# Bad input, with nothing left behind: a server that does not answer, a share with files.
NEWPASSWORD=$pw timeout 60 $ours/homectl create cifsbad --storage=cifs \
    --cifs-service=//127.0.0.1/full --cifs-user-name=$smbuser --enforce-password-policy=no \
    > /xfer/cifs-bad-down.txt 2>&1
down_rc=$?
systemctl start smbd.service
wait_for smb_listening && wait_for smb_serving || say "smbd does not serve the shares again"
NEWPASSWORD=$pw timeout 60 $ours/homectl create cifsbad --storage=cifs \
    --cifs-service=//127.0.0.1/full --cifs-user-name=$smbuser --enforce-password-policy=no \
    > /xfer/cifs-bad-full.txt 2>&1
full_rc=$?
if [ $down_rc -ne 0 ] && grep -q "does not answer" /xfer/cifs-bad-down.txt &&
    [ $full_rc -ne 0 ] && grep -q "not empty" /xfer/cifs-bad-full.txt &&
    [ ! -e /var/lib/systemd/home/cifsbad.identity ] && [ ! -e /home/cifsbad ] &&
    [ "$(ls -A /srv/cifs/full)" = data.txt ]; then
    result PASS "cifs-bad-input-refused (server down: $(tail -n 1 /xfer/cifs-bad-down.txt))"
else
    result FAIL "cifs-bad-input-refused"
    sed 's/^/  |   /' /xfer/cifs-bad-down.txt /xfer/cifs-bad-full.txt
fi
stop_ours

# --- systemd-homed 252 opens the home our daemon made ------------------------------------------
systemctl start systemd-homed.service
wait_for busctl --system status org.freedesktop.home1 > /dev/null 2>&1
storage_lines homectl > /xfer/cifs-252-inspect.txt
if PASSWORD=$pw timeout 60 homectl activate $home &&
    grep -q "written in a login" /home/$home/by-login.txt &&
    [ -s /xfer/cifs-252-inspect.txt ] && cmp -s /xfer/cifs-252-inspect.txt /xfer/cifs-ours-inspect.txt &&
    timeout 60 homectl deactivate $home; then
    result PASS "homed252-opens-our-cifs-home (the login's file; both inspect the share alike)"
else
    result FAIL "homed252-opens-our-cifs-home"
    diff /xfer/cifs-252-inspect.txt /xfer/cifs-ours-inspect.txt | sed 's/^/  |   /'
    journalctl -u systemd-homed --no-pager -o cat 2>/dev/null | tail -n 8 | sed 's/^/  |   homed252: /'
fi
systemctl stop systemd-homed.service
