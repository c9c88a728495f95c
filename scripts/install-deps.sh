#!/bin/bash
# Installs, as root and only when missing, the Debian packages that building and testing homed
# need, and checks the cargo components that `make lint` uses. Safe to run again and again: when
# everything is present it touches nothing and does not reach the network.
#
# Note: installing systemd-homed runs pam-auth-update, which adds pam_systemd_home.so to the host's
# /etc/pam.d/common-*. Our test PAM stacks are self-contained, so that does not affect them.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# Build: libcryptsetup and libclang for bindgen, PAM and libxcrypt headers.
# Host integration tests: a private system bus, the reference systemd-homed and userdbd, nss-systemd
# and pam_systemd, pamtester, file systems and their tools.
# VM tests: kmod (depmod), busybox-static and cpio for the initramfs, qemu.
# Token tests: softhsm2, opensc (pkcs11-tool), p11-kit and gnutls-bin (p11tool). Test helpers: python3 with cryptography (signing a
# record by hand).
packages=(
    libcryptsetup-dev clang libclang-dev pkg-config libpam0g-dev libcrypt-dev
    dbus dbus-daemon pamtester systemd-homed systemd-userdbd libnss-systemd libpam-systemd
    cryptsetup-bin e2fsprogs btrfs-progs xfsprogs zstd util-linux
    kmod busybox-static cpio debootstrap
    softhsm2 opensc p11-kit gnutls-bin
    python3 python3-cryptography
    strace bsdutils less valgrind
)
# qemu's recommends pull in a graphical stack we never use.
packages_no_recommends=(qemu-system-x86)

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for p in "${packages[@]}"; do is_installed "$p" || missing+=("$p"); done
missing_nr=()
for p in "${packages_no_recommends[@]}"; do is_installed "$p" || missing_nr+=("$p"); done

if [ ${#missing[@]} -gt 0 ] || [ ${#missing_nr[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing packages: ${missing[*]} ${missing_nr[*]}" >&2
        echo "install-deps: run this script as root to install them" >&2
        exit 1
    fi
    echo "install-deps: installing: ${missing[*]} ${missing_nr[*]}"
    apt-get update -q
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get install -y -q "${missing[@]}"
    fi
    if [ ${#missing_nr[@]} -gt 0 ]; then
        apt-get install -y -q --no-install-recommends "${missing_nr[@]}"
    fi
else
    echo "install-deps: all Debian packages present"
fi

# cargo and rustup live in ~/.cargo/bin on these machines, which a non-login shell may not have.
if [ -d "$HOME/.cargo/bin" ]; then
    case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) PATH="$HOME/.cargo/bin:$PATH" ;; esac
fi
if ! command -v cargo >/dev/null; then
    echo "install-deps: cargo not found (expected in ~/.cargo/bin or on PATH)" >&2
    exit 1
fi

# No toolchain downloads are possible here: add a component only if rustup can, otherwise say
# clearly what is missing.
for comp in rustfmt clippy; do
    case "$comp" in rustfmt) probe=(cargo fmt --version) ;; clippy) probe=(cargo clippy --version) ;; esac
    if "${probe[@]}" >/dev/null 2>&1; then
        continue
    fi
    echo "install-deps: cargo component $comp is missing; trying rustup component add $comp"
    if ! command -v rustup >/dev/null || ! rustup component add "$comp"; then
        echo "install-deps: could not add the $comp component (no network for rustup?)." >&2
        echo "install-deps: install it with 'rustup component add $comp' where the toolchain server is reachable." >&2
        exit 1
    fi
done
echo "install-deps: cargo fmt and cargo clippy present"
