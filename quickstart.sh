#!/usr/bin/env bash
# vmbk quickstart: prepare this host (packages, libvirtd, build), start a
# small demo guest, vmbk-demo, back it up live, list its points and restore
# a file from the latest one (VMBK_DEMO_REPO, default
# /var/lib/vmbk/demo-repo; the file goes to /tmp/vmbk-demo-restore).
#
# Usage: ./quickstart.sh [--no-build]
#
# The demo guest runs a debootstrapped Debian tree (it never really boots:
# 4 bytes of boot code keep it idle) with some files under /srv/demo, on
# /var/lib/libvirt/images/vmbk-demo.qcow2.  Running this again reuses the
# guest (and starts it if it is stopped).  To remove it:
#   virsh destroy vmbk-demo; virsh undefine vmbk-demo
#   rm /var/lib/libvirt/images/vmbk-demo.qcow2

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$top"

scripts/setup-host.sh "$@"

# The image recipe and domain XML are the test suite's (debian_tree,
# make_guest_image, guest_domain_xml, wait_for...).
# shellcheck source=tests/functions.sh
. "$top/tests/functions.sh"

name="vmbk-demo"
image=/var/lib/libvirt/images/vmbk-demo.qcow2
vmbk=$top/hostctl/vmbk

say () { echo "quickstart: $*"; }

# Domain type: 'vmbk accel' says kvm or tcg (TCG is <domain type='qemu'>).
type=qemu
if [ -x "$vmbk" ] && accel=$("$vmbk" accel 2>/dev/null); then
    case "$accel" in
        kvm) type=kvm ;;
        tcg) type=qemu ;;
        *) say "'vmbk accel' said '$accel'; using TCG" ;;
    esac
else
    say "'hostctl/vmbk accel' is not available; using TCG"
fi

if virsh dominfo "$name" >/dev/null 2>&1; then
    say "reusing domain '$name'"
else
    if [ -f "$image" ]; then
        say "reusing image $image"
    else
        say "building $image (debootstrap + virt-make-fs: a few minutes the first time)"
        data=$(mktemp -d)
        cleanup_fn rm -rf "$data"
        mkdir -p "$data/srv/demo" "$data/etc"
        echo "$name" >"$data/etc/hostname"
        echo "Hello from the vmbk demo guest." >"$data/srv/demo/hello.txt"
        date -u '+created %Y-%m-%d %H:%M:%S UTC by vmbk quickstart.sh' >"$data/srv/demo/created.txt"
        seq 1 50000 >"$data/srv/demo/numbers.txt"
        head -c 2M /dev/urandom >"$data/srv/demo/random.bin"
        (cd "$data/srv/demo" && sha256sum ./*.txt random.bin >SHA256SUMS)
        mkdir -p "$(dirname "$image")"
        make_guest_image "$data" "$image"
    fi
    xml=$(mktemp)
    cleanup_fn rm -f "$xml"
    guest_domain_xml "$name" "$type" "$image" >"$xml"
    virsh define "$xml" >/dev/null
    say "defined domain '$name' (type $type)"
fi

if [ "$(virsh domstate "$name")" != running ]; then
    virsh start "$name" >/dev/null
    say "started '$name'"
fi
wait_for 30 "domain '$name' to run" assert_running "$name"

echo
virsh list --all | awk -v n="$name" 'NR <= 2 || $2 == n'
if [ ! -x "$vmbk" ]; then
    say "hostctl/vmbk is not built (run without --no-build)"
    exit 0
fi
"$vmbk" --version

# Back the running demo up (a full the first time, an incremental after), list its points, and
# restore one file from the latest point without restoring the disk.
repo=${VMBK_DEMO_REPO:-/var/lib/vmbk/demo-repo}
restored=${VMBK_DEMO_RESTORE:-/tmp/vmbk-demo-restore}
echo
say "\$ vmbk backup $name -r $repo"
"$vmbk" backup "$name" -r "$repo"
say "\$ vmbk list -r $repo $name"
"$vmbk" list -r "$repo" "$name"
rm -rf "$restored"
mkdir -p "$restored"
say "\$ vmbk copy-out -r $repo $name /srv/demo/hello.txt $restored"
"$vmbk" copy-out -r "$repo" "$name" /srv/demo/hello.txt "$restored"
say "restored $restored/hello.txt:"
cat "$restored/hello.txt"
