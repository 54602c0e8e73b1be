#!/usr/bin/env bash
# Plugins that fail: one that returns an error, one that says nothing, one that crashes (SIGSEGV)
# in the middle of a backup, one that hangs while vmbk is interrupted or killed.  Each fails the
# backup naming the plugin; no partial point, checkpoint, job, NBD server or runner is left; the
# guest runs on its original disk; and the next backup, with the same plugin behaving, works.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq
start_libvirtd

dom=vmbk-t-plugfault
create_guest "$dom"
repo=$TMPDIR_TEST/repo
vda=$(guest_disk_path "$dom" vda)
bad=$abs_top_builddir/tests/.libs/vmbk-bad-plugin.so
export VMBK_STATE_DIR=$TMPDIR_TEST/state
cd "$TMPDIR_TEST"

# Nothing of a failed backup may remain; the points are still the n given.
nothing_left ()
{
    local n=$1 listed
    # 'list DOMAIN' refuses a domain without points: list them all.
    listed=$("$VMBK" list -r "$repo" --json | jq length)
    [ "$listed" = "$n" ] || fail "a failed backup left a point ($listed listed, $n expected)"
    ! ls -d "$repo/$dom"/points/.tmp-* >/dev/null 2>&1 || fail "a partial point was left"
    # Checkpoints: only of committed points (a later point prunes what no level needs).
    for cp in $(virsh checkpoint-list "$dom" --name); do
        [ "${cp##*.}" -le "$n" ] 2>/dev/null || fail "a checkpoint was left: $cp"
    done
    ! pgrep -f "plugin-run.*$VMBK_STATE_DIR" >/dev/null ||
        fail "a plugin runner was left: $(pgrep -af "plugin-run.*$VMBK_STATE_DIR")"
    ! pgrep -f "qemu-nbd.*$VMBK_STATE_DIR" >/dev/null || fail "a qemu-nbd was left"
    [ -z "$(ls -A "$VMBK_STATE_DIR/jobs" 2>/dev/null)" ] || fail "job directories left"
    assert_running "$dom"
    assert_disk_source "$dom" vda "$vda"
    assert_nothing_left "$dom"
}

expect_fail 1 "plugin 'bad' failed at point 0001 of domain '$dom': failing at extent, as asked" \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog --plugin "$bad:fail=extent"
nothing_left 0
expect_fail 1 "plugin 'bad' failed at point 0001 of domain '$dom': .*disk 'vda' without saying why" \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog --plugin "$bad:silent=disk_begin"
nothing_left 0
expect_fail 1 "plugin 'bad' crashed (Segmentation fault) at point 0001 of domain '$dom'" \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog --plugin raw --plugin "$bad:crash=extent"
nothing_left 0
expect_fail 1 "plugin 'bad' failed at point 0001 of domain '$dom': failing at close, as asked" \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog --plugin "$bad:fail=close"
nothing_left 0
expect_fail 2 "plugin 'bad' failed to load: failing at config_complete, as asked" \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog --plugin "$bad:fail=config_complete"
nothing_left 0

# The same plugin behaving: the backup works, and so does an incremental after a crash.
guest_reference "$dom" vda ref1.qcow2
[ "$("$VMBK" backup "$dom" -r "$repo" --no-catalog -l full --plugin raw --plugin "$bad")" = 0001 ] ||
    fail "a backup with a behaving plugin failed"
[ "$(cat "$repo/$dom/points/0001/bad/bad.out")" = x ] || fail "the plugin's output is missing"
guest_write "$dom" vda 0x77 $((9 * 1024 * 1024)) 65536
expect_fail 1 "plugin 'bad' crashed (Segmentation fault) at point 0002" \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc --plugin raw --plugin "$bad:crash=disk_end"
nothing_left 1
guest_reference "$dom" vda ref2.qcow2
[ "$("$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc --plugin raw)" = 0002 ] ||
    fail "the incremental after a crash failed"
qemu-img compare -q -f raw -F qcow2 "$repo/$dom/points/0002/raw/vda.raw" ref2.qcow2 ||
    fail "point 2's raw image differs from the guest"

# A plugin that hangs: SIGTERM to vmbk stops it and cleans up; kill -9 of vmbk takes the runner
# down with it, and the next backup clears the rest.
"$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc --plugin "$bad:hang=extent" 2>err &
pid=$!
wait_for 120 "the plugin runner to start" pgrep -f "plugin-run.*hang=extent"
sleep 1
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ $rc = 1 ] && grep -q "interrupted by signal 15\|plugin 'bad' failed" err || fail "SIGTERM: rc $rc, $(cat err)"
wait_for 30 "the runner to stop" sh -c '! pgrep -f "plugin-run.*[h]ang=extent"'
nothing_left 2

"$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc --plugin "$bad:hang=extent" 2>/dev/null &
pid=$!
wait_for 120 "the plugin runner to start" pgrep -f "plugin-run.*hang=extent"
kill -9 $pid
wait $pid 2>/dev/null || true
wait_for 30 "the runner to die with vmbk" sh -c '! pgrep -f "plugin-run.*[h]ang=extent"'
guest_reference "$dom" vda ref3.qcow2
[ "$("$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc --plugin raw 2>err)" = 0003 ] ||
    fail "the backup after kill -9 failed: $(cat err)"
grep -q "removed the partial point" err || fail "the partial point was not cleared: $(cat err)"
qemu-img compare -q -f raw -F qcow2 "$repo/$dom/points/0003/raw/vda.raw" ref3.qcow2 ||
    fail "point 3's raw image differs from the guest"
"$VMBK" verify -r "$repo" "$dom" -q
nothing_left 3
exit 0
