#!/usr/bin/env bash
# Bad days: the repository's filesystem fills up mid-copy, a second backup of the same domain
# starts while one runs, the guest is destroyed mid-backup, libvirtd restarts mid-backup.  Each
# fails (or succeeds) with a clear message, earlier points stay intact and verifiable, nothing is
# left behind, and the next backup works.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq mount
start_libvirtd

dom=vmbk-test-faults
create_guest "$dom"
vda=$(guest_disk_path "$dom" vda)
pause=$TMPDIR_TEST/pause
export VMBK_STATE_DIR=$TMPDIR_TEST/state
MiB=$((1024 * 1024))

# --- ENOSPC: a 64 MiB repository, and an incremental of 100 MiB of new data.
repo=$TMPDIR_TEST/small
mkdir -p "$repo"
mount -t tmpfs -o size=400M vmbk-test "$repo"
cleanup_fn umount -l "$repo"
"$VMBK" backup "$dom" -r "$repo" --no-catalog >/dev/null               # the full fits (~300 MB)
used=$(df -B1 --output=used "$repo" | tail -1)
mount -o remount,size=$((used + 64 * MiB)) "$repo"
for i in $(seq 0 9); do
    guest_io "$dom" vda "write -P 0x$((20 + i)) $(((200 + i * 10) * MiB)) $((10 * MiB))"
done
guest_flush "$dom" vda
expect_fail 1 "No space left on device" "$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc
[ "$("$VMBK" list -r "$repo" "$dom" --json | jq length)" = 1 ] || fail "ENOSPC left a point"
ls -d "$repo/$dom"/points/.tmp-* 2>/dev/null && fail "ENOSPC left a partial point"
"$VMBK" verify -r "$repo" "$dom" >/dev/null || fail "the earlier point does not verify"
assert_nothing_left "$dom"
mount -o remount,size=600M "$repo"
guest_reference "$dom" vda "$TMPDIR_TEST/ref.qcow2"
[ "$("$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc)" = 0002 ] || fail "the backup after ENOSPC failed"
"$VMBK" restore -r "$repo" "$dom" -o "$TMPDIR_TEST/r.raw"
assert_same_image "$TMPDIR_TEST/r.raw" "$TMPDIR_TEST/ref.qcow2"
rm -f "$TMPDIR_TEST/r.raw"

# --- Two backups of one domain into one repository: the second is refused, not interleaved.
repo=$TMPDIR_TEST/repo
"$VMBK" backup "$dom" -r "$repo" --no-catalog >/dev/null
VMBK_TEST_PAUSE=$pause "$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc >"$TMPDIR_TEST/first" 2>&1 &
first=$!
wait_for 60 "the first backup to take its point" test -e "$pause"
expect_fail 1 "another vmbk is backing up domain '$dom'" "$VMBK" backup "$dom" -r "$repo" --no-catalog
rm -f "$pause"
wait $first || fail "the first backup failed: $(cat "$TMPDIR_TEST/first")"
[ "$("$VMBK" list -r "$repo" "$dom" --json | jq -r 'map(.point) | join(",")')" = 0001,0002 ] ||
    fail "unexpected points after the refused backup"

# --- The guest destroyed mid-backup: a clear failure, and the next run (guest restarted) works.
VMBK_TEST_PAUSE=$pause "$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc >/dev/null 2>"$TMPDIR_TEST/err" &
pid=$!
wait_for 60 "the backup to take its point" test -e "$pause"
virsh destroy "$dom" >/dev/null
rm -f "$pause"
if wait $pid; then fail "a backup of a destroyed guest succeeded"; fi
grep -q "domain '$dom'" "$TMPDIR_TEST/err" || fail "unclear message: $(cat "$TMPDIR_TEST/err")"
[ "$(grep -c . "$TMPDIR_TEST/err")" -le 3 ] || fail "too many messages: $(cat "$TMPDIR_TEST/err")"
expect_fail 1 "domain '$dom' is not running" "$VMBK" backup "$dom" -r "$repo" --no-catalog
virsh start "$dom" >/dev/null
guest_reference "$dom" vda "$TMPDIR_TEST/ref.qcow2"
"$VMBK" backup "$dom" -r "$repo" --no-catalog >/dev/null 2>"$TMPDIR_TEST/err" ||
    fail "the backup after the destroyed guest failed: $(cat "$TMPDIR_TEST/err")"
"$VMBK" restore -r "$repo" "$dom" -o "$TMPDIR_TEST/r.raw"
assert_same_image "$TMPDIR_TEST/r.raw" "$TMPDIR_TEST/ref.qcow2"
rm -f "$TMPDIR_TEST/r.raw"
"$VMBK" verify -r "$repo" "$dom" >/dev/null

# --- libvirtd restarted mid-backup: the point is still right or the run fails clearly, and
# the next run works and leaves nothing behind.
guest_write "$dom" vda 0x66 $((40 * MiB)) $((1 * MiB))
guest_reference "$dom" vda "$TMPDIR_TEST/ref.qcow2"
VMBK_TEST_PAUSE=$pause "$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc >"$TMPDIR_TEST/out" 2>"$TMPDIR_TEST/err" &
pid=$!
wait_for 60 "the backup to take its point" test -e "$pause"
pkill -x libvirtd
wait_for 30 "libvirtd to stop" sh -c '! pgrep -x libvirtd >/dev/null'
start_libvirtd
rm -f "$pause"
if wait $pid; then
    # The export is qemu's, so the copy is sound; then the point must be the guest's.
    id=$(cat "$TMPDIR_TEST/out")
    echo "libvirtd restart: the backup went on and made point $id: $(cat "$TMPDIR_TEST/err")"
    "$VMBK" restore -r "$repo" "$dom" --point "$id" -o "$TMPDIR_TEST/r.raw"
    assert_same_image "$TMPDIR_TEST/r.raw" "$TMPDIR_TEST/ref.qcow2"
    rm -f "$TMPDIR_TEST/r.raw"
else
    echo "libvirtd restart: the backup failed: $(cat "$TMPDIR_TEST/err")"
    grep -q "libvirt\|domain '$dom'" "$TMPDIR_TEST/err" || fail "unclear: $(cat "$TMPDIR_TEST/err")"
fi
guest_write "$dom" vda 0x67 $((41 * MiB)) $((1 * MiB))
guest_reference "$dom" vda "$TMPDIR_TEST/ref.qcow2"
"$VMBK" backup "$dom" -r "$repo" --no-catalog >"$TMPDIR_TEST/id" 2>"$TMPDIR_TEST/err" ||
    fail "the backup after the libvirtd restart failed: $(cat "$TMPDIR_TEST/err")"
"$VMBK" restore -r "$repo" "$dom" -o "$TMPDIR_TEST/r.raw"
assert_same_image "$TMPDIR_TEST/r.raw" "$TMPDIR_TEST/ref.qcow2"
"$VMBK" verify -r "$repo" "$dom" >/dev/null
[ -z "$(ls -A "$VMBK_STATE_DIR/jobs")" ] || fail "job directories left: $(ls "$VMBK_STATE_DIR/jobs")"
assert_nothing_left "$dom"
assert_running "$dom"
exit 0
