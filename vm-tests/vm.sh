#!/bin/bash
# Builds a minimal qemu guest (Debian's kernel, busybox, our binaries and the libraries they
# need), boots it, runs the LUKS scenarios on real dm-crypt, and prints one PASS/FAIL line per
# scenario. Exit status 0 only when every scenario passed.
#
#   vm-tests/vm.sh [kernel|initramfs|run|all]      (default: all)
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
mem=${HOMED_VM_MEMORY:-1536}

# Kernel modules the scenarios need, by name; their dependencies are added from modules.dep.
# Names that are built into the kernel are skipped.
modules=(
    loop dm-mod dm-crypt xts ecb cbc af_alg algif_skcipher algif_hash
    crc16 crc32c_generic mbcache jbd2 ext4 btrfs xfs
)

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

initramfs() {
    local kdir ver moddir root out bin
    kdir=$(kernel)
    ver=$(ls "$kdir/lib/modules")
    moddir=$kdir/lib/modules/$ver
    bin=$target/$profile/homed-vm-check
    [ -x "$bin" ] || { log "missing $bin (cargo build -p homed-vm-tests first)"; exit 1; }

    root=$(mktemp -d "${TMPDIR:-/tmp}/homed-vm-root.XXXXXX")
    trap 'rm -rf "$root"' RETURN
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,mnt,lib/modules/"$ver"}
    cp /bin/busybox "$root/bin/busybox"
    copy_with_libs "$root" "$bin" /usr/bin/homed-vm-check
    strip "$root/usr/bin/homed-vm-check" 2>/dev/null || true
    copy_with_libs "$root" /sbin/mke2fs /sbin/mkfs.ext4
    copy_with_libs "$root" /sbin/e2fsck /sbin/e2fsck
    copy_with_libs "$root" /sbin/mkfs.btrfs /sbin/mkfs.btrfs
    copy_with_libs "$root" /sbin/mkfs.xfs /sbin/mkfs.xfs
    copy_with_libs "$root" /usr/bin/zstd /usr/bin/zstd
    # The image made by systemd-homed 252, when the fixtures are around (HOMED_FIXTURES).
    local fixtures=${HOMED_FIXTURES:-$repo/../shared/fixtures}
    if [ -f "$fixtures/homed-252-luks/dave.home.zst" ]; then
        mkdir -p "$root/fixtures/homed-252-luks"
        cp "$fixtures"/homed-252-luks/{dave.home.zst,dave.identity,local.public,machine-id} \
            "$root/fixtures/homed-252-luks/"
    else
        log "note: no fixtures at $fixtures; the fixture scenario will be skipped"
    fi
    [ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$root/etc/"
    # The dynamic loader, wherever ldd put it.
    mkdir -p "$root/lib64" && cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"

    module_order "$moddir" > "$root/modules.order"
    while read -r m; do
        mkdir -p "$root/lib/modules/$ver/$(dirname "$m")"
        cp "$moddir/$m" "$root/lib/modules/$ver/$m"
    done < "$root/modules.order"
    echo "$ver" > "$root/kernel-version"
    cp "$here/init.sh" "$root/init"
    chmod 755 "$root/init"

    out=$cache/initramfs.cpio
    (cd "$root" && find . | cpio -o -H newc --quiet) > "$out.tmp"
    mv "$out.tmp" "$out"
    echo "$out"
}

run() {
    local kdir ver initrd logf rc=0
    kdir=$(kernel)
    ver=$(ls "$kdir/lib/modules")
    initrd=$(initramfs)
    logf=$cache/last-run.log
    log "booting $ver (TCG, ${mem} MiB, timeout ${timeout_secs}s); console log: $logf"
    timeout --kill-after=10 "$timeout_secs" qemu-system-x86_64 \
        -m "$mem" -smp 2 -cpu max -nographic -no-reboot -nodefaults \
        -serial stdio -monitor none \
        -kernel "$kdir/boot/vmlinuz-$ver" -initrd "$initrd" \
        -append "console=ttyS0 quiet panic=-1 rdinit=/init" \
        < /dev/null > "$logf" 2>&1 || rc=$?
    tr -d '\r' < "$logf" | grep -E '^(VMTEST|  - |homed-vm-check:)' || true
    local pass fail
    pass=$(tr -d '\r' < "$logf" | grep -c '^VMTEST PASS' || true)
    fail=$(tr -d '\r' < "$logf" | grep -c '^VMTEST FAIL' || true)
    if ! tr -d '\r' < "$logf" | grep -q '^VMTEST END'; then
        log "the guest did not finish (qemu exit $rc); last lines:"
        tr -d '\r' < "$logf" | tail -20 >&2
        echo "test result: FAILED. $pass passed; $((fail + 1)) failed; 0 ignored (vm-tests)"
        return 1
    fi
    local verdict=ok.
    [ "$fail" -eq 0 ] && [ "$pass" -gt 0 ] || verdict=FAILED.
    # The same form as cargo's, so the summary of `make test` counts the scenarios.
    echo "test result: $verdict $pass passed; $fail failed; 0 ignored (vm-tests)"
    [ "$verdict" = ok. ]
}

case "${1:-all}" in
    kernel) kernel ;;
    initramfs) initramfs ;;
    run | all) run ;;
    *) echo "usage: $0 [kernel|initramfs|run|all]" >&2; exit 2 ;;
esac
