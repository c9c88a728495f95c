#!/bin/bash
# Builds a minimal qemu guest (Debian's kernel, busybox, our binaries and the libraries they
# need), boots it, runs the LUKS scenarios on real dm-crypt, and prints one PASS/FAIL line per
# scenario. Exit status 0 only when every scenario passed.
#
#   vm-tests/vm.sh [kernel|initramfs|debian|run|all|main|daemon [SCENARIO...]|powercut|daemon-powercut|interop]      (default: all)
#
# Downloads and the extracted kernel are cached in $HOMED_VM_CACHE (default /var/cache/homed-vm),
# outside the clone. Needs root (apt-get download, depmod), qemu-system-x86, busybox-static, cpio,
# kmod, e2fsprogs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${HOMED_VM_CACHE:-/var/cache/homed-vm}
target=${CARGO_TARGET_DIR:-$repo/target}
profile=${HOMED_VM_PROFILE:-debug}
timeout_secs=${HOMED_VM_TIMEOUT:-300}
# The main boot runs every engine and daemon scenario in one go (about 6 minutes warm).
main_timeout=${HOMED_VM_MAIN_TIMEOUT:-900}
mem=${HOMED_VM_MEMORY:-1536}
debian_timeout=${HOMED_VM_DEBIAN_TIMEOUT:-600}

# Kernel modules the scenarios need, by name; their dependencies are added from modules.dep.
# Names that are built into the kernel are skipped.
modules=(
    loop dm-mod dm-crypt xts ecb cbc af_alg algif_skcipher algif_hash
    crc16 crc32c_generic mbcache jbd2 ext4 btrfs xfs
    virtio_pci virtio_blk
    i6300esb
)

# The daemon's boot has a watchdog that resets the guest 30 s after anyone opens it and lets
# go: daemon-luks-identity-watchdog shows that a home's owner cannot make root open it.
daemon_qemu_args=(-device i6300esb -watchdog-action reset)

log() { echo "vm-test: $*" >&2; }

# The Debian kernel package linux-image-amd64 currently points to.
kernel_package() {
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$pkg" ]; then
        log "apt has no package lists; running apt-get update"
        apt-get update -q >&2
        pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
    [ -n "$pkg" ] || { log "cannot find Debian's kernel package"; exit 1; }
    echo "$pkg"
}

# Downloads and unpacks the kernel once; prints the folder holding boot/ and lib/modules/.
kernel() {
    local pkg dir
    mkdir -p "$cache"
    # A previous run's kernel is good enough while apt cannot tell us a newer one.
    pkg=$(kernel_package)
    dir=$cache/$pkg
    if [ ! -f "$dir/.done" ]; then
        log "downloading $pkg into $cache"
        rm -rf "$dir" && mkdir -p "$dir"
        (cd "$cache" && apt-get download -q "$pkg" >&2 2>/dev/null) ||
            (cd "$cache" && apt-get download "$pkg" >&2)
        dpkg -x "$cache/${pkg}"_*.deb "$dir"
        local ver
        ver=$(ls "$dir/lib/modules")
        depmod -b "$dir" "$ver"
        touch "$dir/.done"
    fi
    echo "$dir"
}

# The Debian guest with systemd and the real systemd-homed 252, for cross-tests (vm-recipe.md).
debian_packages=systemd,systemd-sysv,systemd-homed,systemd-userdbd,dbus,libpam-systemd,libnss-systemd,cryptsetup-bin,e2fsprogs,btrfs-progs,kmod,udev,util-linux,fdisk,pamtester,samba,cifs-utils
debian_mirror=${HOMED_VM_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# Builds (once, cached by package list) a root file system with debootstrap; prints its folder.
debian_root() {
    local key dir
    key=$(echo "bookworm $debian_packages" | sha256sum | cut -c1-12)
    dir=$cache/debian-$key
    if [ ! -f "$dir/.done" ]; then
        command -v debootstrap >/dev/null || { log "debootstrap is missing (apt-get install debootstrap)"; exit 1; }
        log "debootstrap bookworm into $dir (a few minutes, once)"
        rm -rf "$dir"
        debootstrap --variant=minbase --include="$debian_packages" bookworm "$dir" "$debian_mirror" >&2
        touch "$dir/.done"
    fi
    echo "$dir"
}

# The unit that runs the cross-test script from the transfer disk, then powers off.
crosstest_unit='[Unit]
Description=homed cross-test from the transfer disk
After=dbus.service local-fs.target systemd-userdbd.socket
Wants=dbus.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c "mkdir -p /xfer && mount /dev/vdb /xfer && sh /xfer/run.sh; sync; umount /xfer"
ExecStartPost=/bin/systemctl poweroff --force
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TimeoutStartSec=600

[Install]
WantedBy=multi-user.target'

# Turns the Debian root into a bootable disk image for our kernel (cached); prints its path.
debian_disk() {
    local droot=$1 key img
    key=$(printf '%s\n%s\n%s' "$droot" "$kernel_ver" "$crosstest_unit" | sha256sum | cut -c1-12)
    img=$cache/debian-disk-$key.img
    if [ ! -f "$img" ]; then
        log "making the Debian guest disk $img"
        rm -f "$cache"/debian-disk-*.img
        rm -rf "$droot/lib/modules" && mkdir -p "$droot/lib/modules"
        cp -a "$kernel_dir/lib/modules/$kernel_ver" "$droot/lib/modules/"
        echo crosstest > "$droot/etc/hostname"
        : > "$droot/etc/fstab"
        # agetty's vhangup on the serial console would cut off the test's output.
        ln -sf /dev/null "$droot/etc/systemd/system/serial-getty@ttyS0.service"
        printf '%s\n' "$crosstest_unit" > "$droot/etc/systemd/system/homed-crosstest.service"
        mkdir -p "$droot/etc/systemd/system/multi-user.target.wants"
        ln -sf ../homed-crosstest.service \
            "$droot/etc/systemd/system/multi-user.target.wants/homed-crosstest.service"
        mkfs.ext4 -q -F -L debroot -d "$droot" "$img.tmp" 3G >&2
        mv "$img.tmp" "$img"
    fi
    echo "$img"
}

# Prints the relative paths of the modules to load, dependencies first.
module_order() {
    local moddir=$1 seen="" name
    load() {
        local path=$1 deps d
        case " $seen " in *" $path "*) return ;; esac
        deps=$(awk -v p="$path:" '$1 == p { $1 = ""; print }' "$moddir/modules.dep")
        local -a rev=()
        for d in $deps; do rev=("$d" "${rev[@]}"); done
        for d in "${rev[@]}"; do load "$d"; done
        seen="$seen $path"
        echo "$path"
    }
    for name in "${modules[@]}"; do
        local path
        path=$(awk -F: -v w="${name//-/_}" '{
                n = $1; sub(/.*\//, "", n); sub(/\.ko.*$/, "", n); gsub(/-/, "_", n)
                if (n == w) { print $1; exit }
            }' "$moddir/modules.dep")
        if [ -z "$path" ]; then
            log "note: module $name not found (assuming it is built in)"
            continue
        fi
        load "$path"
    done
}

# Copies a program and every library ldd lists for it into the guest root.
copy_with_libs() {
    local root=$1 src=$2 dest=$3 lib
    mkdir -p "$root/$(dirname "$dest")"
    cp -L "$src" "$root/$dest"
    for lib in $(ldd "$src" 2>/dev/null | grep -oE '/[^ ]+\.so[^ ]*'); do
        [ -e "$root$lib" ] && continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}

# What the daemon scenarios need: our daemon, homectl and modules, dbus-daemon with a minimal
# system bus configuration and our policy, pamtester, the PAM modules pam.d-examples/login uses.
daemon_files() {
    local root=$1 lib=/lib/x86_64-linux-gnu m
    for m in homed homectl libpam_homed.so libnss_homed.so examples/login1_stand_in; do
        [ -e "$target/$profile/$m" ] || { log "missing $target/$profile/$m (make -C vm-tests build)"; exit 1; }
    done
    copy_with_libs "$root" "$target/$profile/homed" /usr/bin/homed
    copy_with_libs "$root" "$target/$profile/homectl" /usr/bin/homectl
    copy_with_libs "$root" "$target/$profile/examples/login1_stand_in" /usr/bin/login1_stand_in
    copy_with_libs "$root" "$target/$profile/libpam_homed.so" "$lib/security/pam_homed.so"
    copy_with_libs "$root" "$target/$profile/libnss_homed.so" "$lib/libnss_homed.so.2"
    for m in homed homectl login1_stand_in; do strip "$root/usr/bin/$m" 2>/dev/null || true; done
    strip "$root$lib/security/pam_homed.so" "$root$lib/libnss_homed.so.2" 2>/dev/null || true
    copy_with_libs "$root" /usr/bin/pamtester /usr/bin/pamtester
    copy_with_libs "$root" /usr/bin/getent /usr/bin/getent
    copy_with_libs "$root" /usr/bin/dbus-daemon /usr/bin/dbus-daemon
    copy_with_libs "$root" /usr/bin/dbus-send /usr/bin/dbus-send
    for m in pam_unix pam_deny pam_permit pam_nologin pam_loginuid pam_keyinit pam_exec; do
        copy_with_libs "$root" "$lib/security/$m.so" "$lib/security/$m.so"
    done
    mkdir -p "$root/etc/pam.d" "$root/etc/dbus-1/system.d" "$root/etc/security"
    cp "$repo"/pam.d-examples/* "$root/etc/pam.d/"
    cp "$repo/dist/dbus/org.freedesktop.home1.conf" "$root/etc/dbus-1/system.d/"
    cp "$here/system-bus.conf" "$root/etc/dbus-1/system.conf"
    cp "$here/login1-stand-in.conf" "$root/etc/dbus-1/system.d/"
    cp "$here"/daemon*.sh "$root/"
}

initramfs() {
    local kdir ver moddir root out bin
    kdir=$(kernel)
    ver=$(ls "$kdir/lib/modules")
    moddir=$kdir/lib/modules/$ver
    bin=$target/$profile/homed-vm-check
    [ -x "$bin" ] || { log "missing $bin (cargo build -p homed-vm-tests first)"; exit 1; }

    root=$(mktemp -d "${TMPDIR:-/tmp}/homed-vm-root.XXXXXX")
    trap 'rm -rf "$root"' RETURN
    # The guest's / (mktemp made it 0700): users other than root must get through it.
    chmod 0755 "$root"
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,mnt,lib/modules/"$ver"}
    cp /bin/busybox "$root/bin/busybox"
    copy_with_libs "$root" "$bin" /usr/bin/homed-vm-check
    strip "$root/usr/bin/homed-vm-check" 2>/dev/null || true
    copy_with_libs "$root" /sbin/mke2fs /sbin/mkfs.ext4
    copy_with_libs "$root" /sbin/e2fsck /sbin/e2fsck
    copy_with_libs "$root" /sbin/mkfs.btrfs /sbin/mkfs.btrfs
    copy_with_libs "$root" /sbin/mkfs.xfs /sbin/mkfs.xfs
    copy_with_libs "$root" /usr/bin/zstd /usr/bin/zstd
    # The image made by systemd-homed 252, shipped in the repo (HOMED_FIXTURES overrides the folder).
    local fixtures=${HOMED_FIXTURES:-$repo/tests/fixtures}
    [ -f "$fixtures/homed-252-luks/dave.home.zst" ] ||
        { log "no systemd-homed 252 image at $fixtures/homed-252-luks"; exit 1; }
    mkdir -p "$root/fixtures/homed-252-luks"
    cp "$fixtures"/homed-252-luks/{dave.home.zst,dave.identity,local.public,machine-id} \
        "$root/fixtures/homed-252-luks/"
    [ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$root/etc/"
    daemon_files "$root"
    # The dynamic loader, wherever ldd put it.
    mkdir -p "$root/lib64" && cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"

    module_order "$moddir" > "$root/modules.order"
    while read -r m; do
        mkdir -p "$root/lib/modules/$ver/$(dirname "$m")"
        cp "$moddir/$m" "$root/lib/modules/$ver/$m"
    done < "$root/modules.order"
    echo "$ver" > "$root/kernel-version"
    cp "$here/interop-run.sh" "$root/interop-run.sh"
    cp "$here/interop-cifs.sh" "$root/interop-cifs.sh"
    cp "$here/init.sh" "$root/init"
    chmod 755 "$root/init"
    cp "$here/scenarios.txt" "$root/scenarios.txt"

    out=$cache/initramfs.cpio
    (cd "$root" && find . | cpio -o -H newc --quiet) > "$out.tmp"
    mv "$out.tmp" "$out"
    echo "$out"
}

# Boots the guest once. $1: console log; $2: stage (kernel command line); more args go to qemu.
boot() {
    local logf=$1 stage=$2
    shift 2
    # exec: when this runs in the background, its PID is qemu's, so the caller can kill it.
    exec qemu-system-x86_64 \
        -m "$mem" -smp 2 -cpu max -nographic -no-reboot -nodefaults \
        -serial stdio -monitor none \
        -kernel "$kernel_dir/boot/vmlinuz-$kernel_ver" -initrd "$initrd" \
        -append "console=ttyS0 quiet panic=-1 rdinit=/init homed_vmtest=$stage" \
        "$@" < /dev/null > "$logf" 2>&1
}

# A console log without carriage returns and terminal escapes (the firmware clears the screen).
# A scenario line may follow firmware output that never ended its line: start it afresh.
clean() {
    tr -d '\r' < "$1" | sed -e 's/\x1bc//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/^.\+\(VMTEST \)/\1/'
}

# Prints a console log's scenario lines.
show() { clean "$1" | grep -E '^(VMTEST|  - |  \| |homed-vm-check:)' || true; }

# Boots once (within the timeout) and prints the scenario lines; when the guest did not reach
# "VMTEST END", a FAIL line for $2 and the log's tail, and status 1. $1: console log; $3: stage;
# more: qemu's arguments.
boot_finished() {
    local logf=$1 name=$2 limit=${BOOT_TIMEOUT:-$timeout_secs}
    shift 2
    timeout --kill-after=10 "$limit" \
        bash -c "$(declare -f boot); $(declare -p mem kernel_dir kernel_ver initrd); boot \"\$@\"" boot "$logf" "$@" || true
    show "$logf"
    clean "$logf" | grep -q '^VMTEST END' && return 0
    echo "VMTEST FAIL $name (the guest did not finish)"
    clean "$logf" | tail -20 | sed 's/^/    /'
    return 1
}

# Pulls the plug: kills qemu ($1) at once.
pull_plug() {
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# The power cut: the first boot makes a home on a virtio disk, syncs a file and keeps writing
# until qemu is killed; the second boot must activate it with everything synced intact.
powercut() {
    local disk log1=$cache/powercut-1.log log2=$cache/powercut-2.log pid deadline
    disk=$(mktemp "${TMPDIR:-/tmp}/homed-vm-disk.XXXXXX")
    truncate -s 1G "$disk"
    : > "$log1"
    boot "$log1" powercut-1 -drive "file=$disk,format=raw,if=virtio" &
    pid=$!
    deadline=$((SECONDS + timeout_secs))
    until clean "$log1" 2>/dev/null | grep -q '^VMTEST SYNCED'; do
        if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -gt $deadline ]; then
            pull_plug "$pid"
            show "$log1"
            echo "VMTEST FAIL powercut-recover (the first boot never synced)"
            rm -f "$disk"
            return
        fi
        sleep 0.5
    done
    # Let the unsynced writes run a little, then pull the plug.
    until [ "$(clean "$log1" | grep -c '^  - writing')" -ge 2 ] || [ $SECONDS -gt $deadline ]; do
        sleep 0.2
    done
    pull_plug "$pid"
    show "$log1"
    echo "  - qemu killed during the writes"
    boot_finished "$log2" powercut-recover powercut-2 -drive "file=$disk,format=raw,if=virtio" || true
    rm -f "$disk"
}

# The power cut through our daemon: the first boot keeps /home, the daemon's state and the
# machine-id on a virtio disk, logs in through pamtester and writes (each file synced before
# "VMTEST SYNCED n"); qemu is killed mid-write. The second boot gets the last n it printed and
# must log in again with everything up to it intact and the records verifying.
daemon_powercut() {
    local disk log1=$cache/daemon-powercut-1.log log2=$cache/daemon-powercut-2.log pid deadline last
    disk=$cache/daemon-powercut.disk
    rm -f "$disk"
    truncate -s 1G "$disk"
    : > "$log1"
    boot "$log1" daemon-powercut-1 -drive "file=$disk,format=raw,if=virtio" &
    pid=$!
    deadline=$((SECONDS + timeout_secs))
    # A few files synced, then the plug is pulled while the next one is being written.
    until [ "$(clean "$log1" 2>/dev/null | grep -c '^VMTEST SYNCED')" -ge 4 ]; do
        if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -gt $deadline ]; then
            pull_plug "$pid"
            show "$log1"
            echo "VMTEST FAIL daemon-powercut-recover (the first boot never synced enough)"
            rm -f "$disk"
            return
        fi
        sleep 0.2
    done
    sleep 0.3
    pull_plug "$pid"
    last=$(clean "$log1" | sed -n 's/^VMTEST SYNCED \([0-9]*\) .*/\1/p' | tail -n 1)
    show "$log1" | grep -v '^VMTEST SYNCED'
    echo "  - qemu killed during the writes; the last file reported synced: $last"
    boot_finished "$log2" daemon-powercut-recover "daemon-powercut-2 homed_synced=$last" \
        -drive "file=$disk,format=raw,if=virtio" || true
    rm -f "$disk"
}

# Interop: our daemon makes a home (minimal guest: homectl create, a login, logout), the real
# systemd-homed 252 activates it (Debian guest); a transfer disk carries the image, our
# daemon's public key, the password and the test script.
interop() {
    local droot dimg xfer log1=$cache/interop-1.log log2=$cache/interop-2.log
    if ! droot=$(debian_root); then
        echo "VMTEST FAIL interop (no Debian root file system)"
        return
    fi
    dimg=$(debian_disk "$droot")
    xfer=$(mktemp "${TMPDIR:-/tmp}/homed-vm-xfer.XXXXXX")
    truncate -s 1G "$xfer"
    if boot_finished "$log1" interop-create interop-create -drive "file=$xfer,format=raw,if=virtio"; then
        # The Debian guest boots systemd and runs the LUKS and the CIFS cross-tests.
        BOOT_TIMEOUT=$debian_timeout boot_finished "$log2" homed252-interop debian \
            -drive "file=$dimg,format=raw,if=virtio,snapshot=on" -drive "file=$xfer,format=raw,if=virtio" ||
            true
    fi
    rm -f "$xfer"
}

# Prints our time over systemd-homed 252's for each operation (lower is better): our daemon
# through our homectl, timed in the same Debian guest boot as systemd-homed 252, and the engine
# alone (the test guest, same kernel and qemu).
bench_ratios() {
    local theirs ours who label op a b
    theirs=$(grep -o 'bench homed252 .*' "$1" | head -1)
    [ -n "$theirs" ] || return 0
    for who in ourdaemon ours; do
        ours=$(grep -o "bench $who .*" "$1" | head -1)
        [ -n "$ours" ] || continue
        label=$([ "$who" = ours ] && echo "engine" || echo "daemon")
        for op in create activate lock unlock deactivate; do
            a=$(tr ' ' '\n' <<< "$ours" | awk -F= -v k="$op" '$1 == k { print $2 }')
            b=$(tr ' ' '\n' <<< "$theirs" | awk -F= -v k="$op" '$1 == k { print $2 }')
            if [[ $a =~ ^[0-9]+$ && $b =~ ^[0-9]+$ && $b -gt 0 ]]; then
                awk -v l="$label" -v op="$op" -v a="$a" -v b="$b" \
                    'BEGIN { printf "bench: %-6s %-10s ours %6d ms, systemd-homed 252 %6d ms, ratio %.2f\n", l, op, a, b, a / b }'
            fi
        done
    done
}

# Every scenario of scenarios.txt must have reported, and nothing else: a FAIL line for each
# scenario without a result line, and for each result line of a scenario the table lacks.
check_scenarios() {
    local expected seen name
    expected=$(grep -v '^[[:space:]]*\(#\|$\)' "$here/scenarios.txt" | awk '{ print $2 }' | sort -u)
    seen=$(grep -E '^VMTEST (PASS|FAIL) ' "$1" | awk '{ print $3 }' | sort -u)
    for name in $(comm -23 <(echo "$expected") <(echo "$seen")); do
        echo "VMTEST FAIL $name (no result: the scenario did not run)"
    done
    for name in $(comm -13 <(echo "$expected") <(echo "$seen")); do
        grep -q "^VMTEST FAIL $name " "$1" && continue
        echo "VMTEST FAIL $name (a result for a scenario that scenarios.txt does not list)"
    done
}

# Two chains of boots run side by side (the guests' work is mostly one thread each, and qemu
# emulates each guest on its own host threads): the engine's boot, the two power cuts and the
# interop boots; and the daemon's boot with every daemon scenario. Each chain's lines are
# printed together.
run() {
    local logf dlogf rc=0 drc=0 results=$cache/last-results.txt daemon_results=$cache/daemon-results.txt chain
    kernel_dir=$(kernel)
    kernel_ver=$(ls "$kernel_dir/lib/modules")
    initrd=$(initramfs)
    logf=$cache/last-run.log
    dlogf=$cache/daemon-run.log
    log "booting $kernel_ver twice side by side (TCG, ${mem} MiB each, timeout ${main_timeout}s, then ${timeout_secs}s a boot); console logs in $cache"
    {
        timeout --kill-after=10 "$main_timeout" \
            bash -c "$(declare -f boot); $(declare -p mem kernel_dir kernel_ver initrd daemon_qemu_args); boot '$dlogf' daemon \"\${daemon_qemu_args[@]}\"" || drc=$?
        show "$dlogf"
        if ! clean "$dlogf" | grep -q '^VMTEST END'; then
            echo "VMTEST FAIL daemon-boot (the guest did not finish, qemu exit $drc)"
            clean "$dlogf" | tail -20 | sed 's/^/    /'
        fi
    } > "$daemon_results" 2>&1 &
    chain=$!
    {
        timeout --kill-after=10 "$main_timeout" \
            bash -c "$(declare -f boot); $(declare -p mem kernel_dir kernel_ver initrd); boot '$logf' main" || rc=$?
        show "$logf"
        if ! clean "$logf" | grep -q '^VMTEST END'; then
            echo "VMTEST FAIL main-boot (the guest did not finish, qemu exit $rc)"
            clean "$logf" | tail -20 | sed 's/^/    /'
        fi
        powercut
        daemon_powercut
        interop
    } | tee "$results"
    wait "$chain" || true
    tee -a "$results" < "$daemon_results"
    bench_ratios "$results"
    local unlisted
    unlisted=$(check_scenarios "$results")
    [ -z "$unlisted" ] || echo "$unlisted" | tee -a "$results"
    local pass fail verdict=ok.
    pass=$(grep -c '^VMTEST PASS' "$results" || true)
    fail=$(grep -c '^VMTEST FAIL' "$results" || true)
    [ "$fail" -eq 0 ] && [ "$pass" -gt 0 ] || verdict=FAILED.
    # The same form as cargo's, so the summary of `make test` counts the scenarios.
    echo "test result: $verdict $pass passed; $fail failed; 0 ignored (vm-tests)"
    [ "$verdict" = ok. ]
}

case "${1:-all}" in
    kernel) kernel ;;
    # vm.sh check-scenarios RESULTS: the FAIL lines a run's results would get from the table.
    check-scenarios) check_scenarios "${2:?results file}" ;;
    daemon)
        # vm.sh daemon [SCENARIO...]: the daemon scenarios alone, or only the ones named.
        shift
        only=$(echo "$@" | tr ' ' ,)
        kernel_dir=$(kernel)
        kernel_ver=$(ls "$kernel_dir/lib/modules")
        initrd=$(initramfs)
        timeout --kill-after=10 "$main_timeout" \
            bash -c "$(declare -f boot); $(declare -p mem kernel_dir kernel_ver initrd daemon_qemu_args); boot '$cache/daemon-run.log' 'daemon homed_only=$only' \"\${daemon_qemu_args[@]}\"" || true
        show "$cache/daemon-run.log"
        ;;
    debian) debian_root ;;
    initramfs) initramfs ;;
    run | all) run ;;
    main)
        kernel_dir=$(kernel)
        kernel_ver=$(ls "$kernel_dir/lib/modules")
        initrd=$(initramfs)
        timeout --kill-after=10 "$main_timeout" \
            bash -c "$(declare -f boot); $(declare -p mem kernel_dir kernel_ver initrd); boot '$cache/last-run.log' main" || true
        show "$cache/last-run.log"
        ;;
    interop)
        kernel_dir=$(kernel)
        kernel_ver=$(ls "$kernel_dir/lib/modules")
        initrd=$(initramfs)
        interop
        ;;
    powercut)
        kernel_dir=$(kernel)
        kernel_ver=$(ls "$kernel_dir/lib/modules")
        initrd=$(initramfs)
        powercut
        ;;
    daemon-powercut)
        kernel_dir=$(kernel)
        kernel_ver=$(ls "$kernel_dir/lib/modules")
        initrd=$(initramfs)
        daemon_powercut
        ;;
    *) echo "usage: $0 [kernel|initramfs|debian|run|all|main|daemon|powercut|daemon-powercut|interop]" >&2; exit 2 ;;
esac
