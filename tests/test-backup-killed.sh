#!/usr/bin/env bash
# kill -9 of vmbk backup at each phase (point taken, copy under way, data written but not
# committed), and of a snapshot-method backup: the guest keeps running on its original disks,
# list never shows the partial point, and the next backup clears what was left (job, job
# directory, qemu-nbd, overlay, partial point, checkpoint) and makes a correct point.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq
start_libvirtd

dom=vmbk-test-killed
create_guest "$dom" --disks 2 --format qcow2,raw   # vdb raw: for the snapshot method
repo=$TMPDIR_TEST/repo
pause=$TMPDIR_TEST/pause
vda=$(guest_disk_path "$dom" vda)
vdb=$(guest_disk_path "$dom" vdb)
export VMBK_STATE_DIR=$TMPDIR_TEST/state
MiB=$((1024 * 1024))

"$VMBK" backup "$dom" -r "$repo" --no-catalog --disk vda -l full >/dev/null

n=1
for phase in point copy commit; do
    guest_write "$dom" vda 0x$((60 + n)) $((n * 10 * MiB + 3)) $((2 * MiB))
    VMBK_TEST_PAUSE=$pause VMBK_TEST_PAUSE_AT=$phase \
        "$VMBK" backup "$dom" -r "$repo" --no-catalog --disk vda -l inc >/dev/null 2>&1 &
    pid=$!
    wait_for 60 "the backup to reach phase '$phase'" test -e "$pause"
    kill -9 $pid
    wait $pid 2>/dev/null || true
    rm -f "$pause"

    assert_running "$dom"
    assert_disk_source "$dom" vda "$vda"
    [ "$("$VMBK" list -r "$repo" "$dom" --json | jq length)" = $n ] ||
        fail "$phase: list shows a partial point"
    ls -d "$repo/$dom"/points/.tmp-* >/dev/null 2>&1 || fail "$phase: no partial point to clear?"
    if [ $phase != commit ]; then
        [[ "$(virsh domjobinfo "$dom")" == *Backup* ]] || fail "$phase: no job left to clear?"
    fi

    guest_reference "$dom" vda "$TMPDIR_TEST/ref.qcow2"
    "$VMBK" backup "$dom" -r "$repo" --no-catalog --disk vda -l inc >"$TMPDIR_TEST/id" 2>"$TMPDIR_TEST/err" ||
        fail "$phase: the next backup failed: $(cat "$TMPDIR_TEST/err")"
    n=$((n + 1))
    [ "$(cat "$TMPDIR_TEST/id")" = "$(printf %04d $n)" ] || fail "$phase: point $(cat "$TMPDIR_TEST/id")"
    grep -q "removed the partial point" "$TMPDIR_TEST/err" || fail "$phase: $(cat "$TMPDIR_TEST/err")"
    if [ $phase != commit ]; then
        grep -q "ending the backup job of domain '$dom' left by an interrupted vmbk" \
            "$TMPDIR_TEST/err" || fail "$phase: $(cat "$TMPDIR_TEST/err")"
    fi
    "$VMBK" restore -r "$repo" "$dom" -o "$TMPDIR_TEST/r.raw"
    assert_same_image "$TMPDIR_TEST/r.raw" "$TMPDIR_TEST/ref.qcow2"
    rm -f "$TMPDIR_TEST/r.raw"
    # Only this repository's checkpoints of committed points: the latest and the full.
    [ "$(virsh checkpoint-list "$dom" --name | sed '/^$/d' | sed 's/^vmbk\.[0-9a-f]*\.//' |
        sort | tr '\n' ' ')" = "0001 $(printf %04d $n) " ] || fail "$phase: checkpoints left"
    pgrep -f "qemu-nbd.*$VMBK_STATE_DIR" && fail "$phase: a qemu-nbd was left running"
    [ -z "$(ls -A "$VMBK_STATE_DIR/jobs")" ] || fail "$phase: job directories left"
done

# The snapshot method killed while the guest runs on the overlay.
guest_write "$dom" vdb 0x70 $((1 * MiB)) 65536
VMBK_TEST_PAUSE=$pause "$VMBK" backup "$dom" -r "$repo" --no-catalog --disk vdb >/dev/null 2>&1 &
pid=$!
wait_for 60 "the snapshot backup to take its point" test -e "$pause"
kill -9 $pid
wait $pid 2>/dev/null || true
rm -f "$pause"
[ "$(guest_disk_path "$dom" vdb)" != "$vdb" ] || fail "the guest was not on an overlay?"
guest_write "$dom" vdb 0x71 $((2 * MiB)) 65536                 # lands in the overlay
guest_reference "$dom" vdb "$TMPDIR_TEST/ref-vdb.qcow2"
"$VMBK" backup "$dom" -r "$repo" --no-catalog --disk vdb >/dev/null 2>"$TMPDIR_TEST/err"
grep -q "still on the overlay of an interrupted backup; merging it back" "$TMPDIR_TEST/err" ||
    fail "no recovery notice: $(cat "$TMPDIR_TEST/err")"
assert_disk_source "$dom" vdb "$vdb"
assert_image_pattern "$vdb" 0x71 $((2 * MiB)) 65536              # merged into the original
"$VMBK" restore -r "$repo" "$dom" -o "$TMPDIR_TEST/vdb.raw"
assert_same_image "$TMPDIR_TEST/vdb.raw" "$TMPDIR_TEST/ref-vdb.qcow2"
[ -z "$(ls -A "$VMBK_STATE_DIR/jobs")" ] || fail "job directories left after the snapshot method"
"$VMBK" verify -r "$repo" "$dom" >/dev/null
assert_nothing_left "$dom"
assert_running "$dom"
exit 0
