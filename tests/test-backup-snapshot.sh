#!/usr/bin/env bash
# Disks that cannot hold a checkpoint (raw): a full backup through an external disk-only
# snapshot, committed back afterwards; the guest ends on its original images.  --disk picks disks;
# -l inc on a raw disk is refused with a message naming it.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq
start_libvirtd

dom=vmbk-test-snap
create_guest "$dom" --disks 2 --format raw
repo=$TMPDIR_TEST/repo
vda=$(guest_disk_path "$dom" vda)
vdb=$(guest_disk_path "$dom" vdb)
MiB=$((1024 * 1024))

guest_write "$dom" vdb 0x42 $((3 * MiB + 1)) 70000
guest_reference "$dom" vdb "$TMPDIR_TEST/ref-vdb.qcow2"
guest_reference "$dom" vda "$TMPDIR_TEST/ref-vda.qcow2"

expect_fail 1 "disk 'vdb' of domain '$dom' is raw.*--method snapshot" \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc --disk vdb
expect_fail 1 "domain '$dom' has no disk 'vdz'; its disks are: vda, vdb" \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog --disk vdz
expect_fail 2 "--method snapshot takes full backups only" \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog --method snapshot -l inc

"$VMBK" backup "$dom" -r "$repo" --no-catalog --disk vdb --json >"$TMPDIR_TEST/p1.json" 2>"$TMPDIR_TEST/err"
grep -q "external snapshot" "$TMPDIR_TEST/err" || fail "no notice of the snapshot method"
jq -e '.method == "snapshot" and .checkpoint == null and (.disks | map(.target)) == ["vdb"]' \
    "$TMPDIR_TEST/p1.json" >/dev/null || fail "unexpected point: $(cat "$TMPDIR_TEST/p1.json")"
assert_disk_source "$dom" vda "$vda"
assert_disk_source "$dom" vdb "$vdb"
"$VMBK" restore -r "$repo" "$dom" -o "$TMPDIR_TEST/vdb.raw"
assert_same_image "$TMPDIR_TEST/vdb.raw" "$TMPDIR_TEST/ref-vdb.qcow2"

# Both disks with --method snapshot given explicitly, while the guest writes on afterwards.
"$VMBK" backup "$dom" -r "$repo" --no-catalog --method snapshot >/dev/null
guest_write "$dom" vda 0x43 $((9 * MiB)) 4096
"$VMBK" restore -r "$repo" "$dom" --disk vda -o "$TMPDIR_TEST/vda.raw"
assert_same_image "$TMPDIR_TEST/vda.raw" "$TMPDIR_TEST/ref-vda.qcow2"
"$VMBK" verify -r "$repo" "$dom" >/dev/null
# The guest's write after the point landed in its original image, not in a leftover overlay.
assert_disk_source "$dom" vda "$vda"
assert_image_pattern "$vda" 0x43 $((9 * MiB)) 4096
assert_nothing_left "$dom"
assert_running "$dom"
exit 0
