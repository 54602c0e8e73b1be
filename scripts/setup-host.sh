#!/usr/bin/env bash
# Prepare this host for building and testing vmbk:
#   (a) install the Debian packages vmbk and its tests need,
#   (b) start virtlogd and libvirtd (there is no init system to do it),
#   (c) build the tree (autoreconf, configure, make).
# Idempotent: each step is skipped when already done.
#
# Usage: scripts/setup-host.sh [--no-build]

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=yes

for arg in "$@"; do
    case "$arg" in
        --no-build) build=no ;;
        -h|--help) sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "setup-host: unknown option '$arg'; try --help" >&2; exit 2 ;;
    esac
done

say () { echo "setup-host: $*"; }

# The packages, by purpose.
packages=(
    # build
    autoconf automake libtool make gcc pkg-config
    libglib2.0-dev libxml2-dev libsqlite3-dev libgnutls28-dev libarchive-dev g++
    libvirt-dev libguestfs-dev libnbd-dev libjson-glib-dev
    # run: libvirt with qemu, disk tools, NBD
    libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils
    libnbd-bin nbdkit python3-libvirt
    # libguestfs and its appliance (supermin needs a kernel in /boot)
    libguestfs-tools libguestfs-xfs guestmount supermin linux-image-amd64
    # the backup appliance's filesystem tools (appliance/packages)
    lvm2 ntfs-3g xfsprogs
    # tests: guest images, JSON, locks, timeouts, tracing
    debootstrap jq libxml2-utils util-linux coreutils e2fsprogs fdisk strace
    # tests: TLS certificates (test-backup-tls)
    gnutls-bin
)

# --- (a) packages ---------------------------------------------------------
missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "setup-host: missing packages (${missing[*]}); run as root" >&2; exit 1; }
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${missing[@]}"
else
    say "packages: all ${#packages[@]} installed"
fi

# --- (b) services ---------------------------------------------------------
# shellcheck source=scripts/services.sh
. "$top/scripts/services.sh"
vmbk_start_services 60
say "libvirtd answers on $VMBK_LIBVIRT_URI"

# --- (c) build ------------------------------------------------------------
if [ "$build" = no ]; then
    say "build skipped (--no-build)"
    exit 0
fi
cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ]; then
    say "autoreconf -fi"
    autoreconf -fi
fi
if [ ! -f Makefile ]; then
    say "./configure --enable-werror"
    ./configure --enable-werror
fi
say "make -j2"
make -j2
say "build done"
