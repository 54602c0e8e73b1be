#!/usr/bin/env bash
# The test rig itself: a guest made by create_guest runs, its disk can be
# written as guest I/O through the monitor, and references taken with
# guest_reference follow those writes.  Every other guest test builds on
# these helpers, so they are checked against real libvirt/qemu here.

# shellcheck source-path=SCRIPTDIR source=functions.sh
source "${abs_top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"

requires_root
requires virsh qemu-img qemu-io jq

work=$TMPDIR_TEST

# check_disk DOM TARGET: the write/zero/reference cycle on one disk.
check_disk ()
{
    local dom=$1 target=$2 src
    # Unaligned on purpose: not a multiple of 512 nor of a cluster.
    local off=$((3 * 1024 * 1024 + 4097)) len=12345
    local zoff=$((8 * 1024 * 1024 + 100)) zlen=70000

    src=$(guest_disk_path "$dom" "$target")

    guest_reference "$dom" "$target" "$work/$dom-$target-1.qcow2"
    assert_same_image "$work/$dom-$target-1.qcow2" "$src"

    guest_write "$dom" "$target" 0xab "$off" "$len"
    guest_reference "$dom" "$target" "$work/$dom-$target-2.qcow2"

    local rc=0
    qemu-img compare -U "$work/$dom-$target-1.qcow2" "$work/$dom-$target-2.qcow2" \
        >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 1 ] ||
        fail "$dom $target: references before and after a write compare with status $rc, expected 1"
    assert_image_pattern "$work/$dom-$target-2.qcow2" 0xab "$off" "$len"
    # The bytes just around the write were not touched.
    assert_same_image "$work/$dom-$target-2.qcow2" "$src"

    guest_write "$dom" "$target" 0xcd "$zoff" "$zlen"
    guest_zero "$dom" "$target" "$zoff" "$zlen"
    guest_reference "$dom" "$target" "$work/$dom-$target-3.qcow2"
    assert_image_pattern "$work/$dom-$target-3.qcow2" 0 "$zoff" "$zlen"
    assert_image_pattern "$work/$dom-$target-3.qcow2" 0xab "$off" "$len"
    assert_same_image "$work/$dom-$target-3.qcow2" "$src"

    assert_running "$dom"
    assert_disk_source "$dom" "$target" "$src"
}

# One qcow2 disk on an overlay of the base image.
dom=vmbk-test-rig-guest
create_guest "$dom"
assert_running "$dom"
assert_disk_source "$dom" vda "$(guest_dir "$dom")/vda.qcow2"
# The guest idles in its 4-byte boot loop: its base content is the base image's.
assert_same_image "$(build_base_image)" "$(guest_disk_path "$dom" vda)"
check_disk "$dom" vda

# assert_nothing_left sees what a careless backup could leave: a file next
# to the disks, an extra disk (also open in qemu).  The disk comes last: it
# cannot be unplugged again, as the guest runs no OS to answer ACPI.
assert_nothing_left "$dom"
scratch=$(guest_dir "$dom")/scratch.qcow2
qemu-img create -q -f qcow2 "$scratch" 16M
( assert_nothing_left "$dom" ) 2>/dev/null && fail "assert_nothing_left missed a stray file"
rm "$scratch"
assert_nothing_left "$dom"
qemu-img create -q -f qcow2 "$TMPDIR_TEST/scratch.qcow2" 16M
virsh attach-disk "$dom" "$TMPDIR_TEST/scratch.qcow2" vdc --subdriver qcow2 --live >/dev/null
( assert_nothing_left "$dom" ) 2>/dev/null && fail "assert_nothing_left missed an attached disk"

# Two raw disks: vda a raw copy of the base, vdb blank.
dom2=vmbk-test-rig-guest-raw
create_guest "$dom2" --disks 2 --format raw
assert_disk_source "$dom2" vdb "$(guest_dir "$dom2")/vdb.raw"
check_disk "$dom2" vda
check_disk "$dom2" vdb
assert_nothing_left "$dom2"

echo "test-rig-guest: OK"
