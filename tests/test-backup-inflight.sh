#!/usr/bin/env bash
# Point in time: what the guest writes while a backup copies is not in the point (it is in the
# next one), and the guest's writes still reach its own disk.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh
start_libvirtd

dom=vmbk-test-inflight
create_guest "$dom"
repo=$TMPDIR_TEST/repo
pause=$TMPDIR_TEST/pause
MiB=$((1024 * 1024))

guest_write "$dom" vda 0x5a $((50 * MiB)) $((4 * MiB))
guest_reference "$dom" vda "$TMPDIR_TEST/before.qcow2"

# Full backup, held after the point is taken; the guest overwrites data the copy has not read.
VMBK_TEST_PAUSE=$pause "$VMBK" backup "$dom" -r "$repo" --no-catalog -l full >"$TMPDIR_TEST/id" &
backup=$!
cleanup_fn kill $backup
wait_for 60 "the backup to take its point" test -e "$pause"
guest_write "$dom" vda 0xa5 $((50 * MiB)) $((4 * MiB))
guest_zero "$dom" vda $((51 * MiB)) 4096
guest_reference "$dom" vda "$TMPDIR_TEST/after.qcow2"
rm -f "$pause"
wait $backup || fail "the paused backup failed"
[ "$(cat "$TMPDIR_TEST/id")" = 0001 ] || fail "unexpected point id $(cat "$TMPDIR_TEST/id")"

"$VMBK" restore -r "$repo" "$dom" -o "$TMPDIR_TEST/p1.raw"
assert_same_image "$TMPDIR_TEST/p1.raw" "$TMPDIR_TEST/before.qcow2"
# The guest's own disk has the writes.
assert_image_pattern "$(guest_disk_path "$dom" vda)" 0xa5 $((50 * MiB)) 4096

# And the next incremental has them too.
[ "$("$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc)" = 0002 ] || fail "the incremental failed"
"$VMBK" restore -r "$repo" "$dom" -o "$TMPDIR_TEST/p2.raw"
assert_same_image "$TMPDIR_TEST/p2.raw" "$TMPDIR_TEST/after.qcow2"
assert_nothing_left "$dom"
assert_running "$dom"
exit 0
