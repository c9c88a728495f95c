#!/bin/busybox sh
# /init of the test guest: mount the basics, load the modules, run the scenarios of this boot
# from /scenarios.txt (the one table of scenarios, which the host checks the results against),
# print one "VMTEST PASS|FAIL <name>" line per scenario on the serial console, power off.

/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o mode=0755 run /run
mount -t tmpfs tmp /tmp
echo 1 > /proc/sys/kernel/printk 2>/dev/null

ver=$(cat /kernel-version)
while read -r m; do
    insmod "/lib/modules/$ver/$m" 2>/dev/null || echo "init: could not load $m"
done < /modules.order

scenario() {
    name=$1
    shift
    echo "VMTEST RUN $name"
    start=$(date +%s)
    if "$@"; then
        echo "VMTEST PASS $name ($(($(date +%s) - start)) s)"
    else
        echo "VMTEST FAIL $name ($(($(date +%s) - start)) s)"
    fi
}

stage=main
only=
for word in $(cat /proc/cmdline); do
    case $word in
    homed_vmtest=*) stage=${word#homed_vmtest=} ;;
    homed_only=*) only=${word#homed_only=} ;;
    homed_synced=*) synced=${word#homed_synced=} ;;
    esac
done

# Images live on ext4 (as /home usually is), so the dirty xattr works: a sparse file system
# on a loop device over the RAM-backed /run, mounted on /vm.
ram_disk() {
    truncate -s 4G /run/disk.img
    mkfs.ext4 -q -F /run/disk.img
    mkdir -p /vm
    mount -o loop /run/disk.img /vm
}

# The daemon's power cut keeps its state on the virtio disk /dev/vda: /home (daemon.sh setup
# binds /vm/home there), /var/lib/systemd/home (host records, local.private, local.public) and
# the machine-id. $1 = fresh: make the file system first.
daemon_disk() {
    mkdir -p /vm /var/lib/systemd/home /etc
    if [ "$1" = fresh ]; then
        mkfs.ext4 -q -F /dev/vda || return 1
    fi
    mount /dev/vda /vm || return 1
    mkdir -p /vm/home /vm/state
    chmod 0700 /vm/state
    mount --bind /vm/state /var/lib/systemd/home || return 1
    [ -s /vm/machine-id ] || tr -d - < /proc/sys/kernel/random/uuid > /vm/machine-id
    : > /etc/machine-id
    mount --bind /vm/machine-id /etc/machine-id
    echo "  - /home, /var/lib/systemd/home and the machine-id ($(cat /vm/machine-id)) on the virtio disk"
}

case $stage in
daemon-powercut-1)
    echo "VMTEST BEGIN daemon power cut, first boot"
    if daemon_disk fresh && sh /daemon.sh setup; then
        sync
        sh /daemon.sh powercut_write < /dev/null
    fi
    echo "VMTEST FAIL daemon-powercut-write"
    # Not reached when all goes well: the host kills qemu during the writes.
    poweroff -f
    ;;
daemon-powercut-2)
    echo "VMTEST BEGIN daemon power cut, second boot"
    if daemon_disk && sh /daemon.sh setup; then
        scenario daemon-powercut-recover env HOMED_SYNCED="$synced" sh /daemon.sh powercut_verify < /dev/null
    else
        echo "VMTEST FAIL daemon-powercut-recover (the disk or the daemon did not come up)"
    fi
    echo "VMTEST END"
    sync
    poweroff -f
    ;;
powercut-1)
    echo "VMTEST BEGIN power cut, first boot"
    homed-vm-check powercut-write /dev/vda /vm || echo "VMTEST FAIL powercut-write"
    # Not reached when all goes well: the host kills qemu during the writes.
    poweroff -f
    ;;
interop-create)
    echo "VMTEST BEGIN interop, our daemon makes the image"
    ram_disk
    mkdir -p /xfer
    if mkfs.ext4 -q -F /dev/vda && mount /dev/vda /xfer && sh /daemon.sh setup; then
        scenario interop-create env INTEROP_XFER=/xfer sh /daemon.sh interop_make < /dev/null
    else
        echo "VMTEST FAIL interop-create (the transfer disk or the daemon did not come up)"
    fi
    # Our daemon and homectl go along: the Debian guest times them next to systemd-homed 252.
    cp /interop-run.sh /xfer/run.sh && cp /interop-cifs.sh /xfer/cifs.sh &&
        mkdir -p /xfer/ours && cp /usr/bin/homed /usr/bin/homectl /xfer/ours/ &&
        cp /lib/x86_64-linux-gnu/security/pam_homed.so /xfer/ours/ && umount /xfer
    echo "VMTEST END"
    sync
    poweroff -f
    ;;
debian)
    # Boot the Debian guest on /dev/vda with systemd.
    mkdir -p /newroot
    mount -o rw /dev/vda /newroot || { echo "VMTEST FAIL debian-boot (no root)"; poweroff -f; }
    umount /tmp /run 2>/dev/null
    mount --move /dev /newroot/dev
    umount /proc /sys
    exec switch_root /newroot /sbin/init
    ;;
powercut-2)
    echo "VMTEST BEGIN power cut, second boot"
    scenario powercut-recover homed-vm-check powercut-verify /dev/vda /vm
    echo "VMTEST END"
    sync
    poweroff -f
    ;;
esac

ram_disk

# Runs the scenarios of boot $1 from the table. homed_only=a,b on the kernel command line
# (vm.sh daemon a b) runs only those, named by scenario or by daemon.sh's name for it (the
# command's last word).
run_table() {
    while read -r boot name command; do
        case $boot in '' | '#'*) continue ;; esac
        [ "$boot" = "$1" ] && [ -n "$command" ] || continue
        case ",$only," in ,,) ;; *",$name,"* | *",${command##* },"*) ;; *) continue ;; esac
        scenario "$name" sh -c "$command" < /dev/null
    done < /scenarios.txt
}

# Our daemon driving LUKS homes: homed, homectl, pam_homed (pamtester), nss_homed, dbus-daemon.
daemon_scenarios() {
    if sh /daemon.sh setup; then
        run_table daemon
    else
        echo "VMTEST FAIL daemon-setup"
    fi
}

if [ "$stage" = daemon ]; then
    echo "VMTEST BEGIN daemon, kernel $ver"
    daemon_scenarios
    echo "VMTEST END"
    sync
    poweroff -f
fi

echo "VMTEST BEGIN kernel $ver"
run_table main
# Not a test: timings for the comparison with systemd-homed 252 (printed as "  | bench ...").
homed-vm-check bench /vm/bench || echo "  | bench ours failed"
echo "VMTEST END"
sync
poweroff -f
