#!/usr/bin/env bash
# Block-level plugins run inside the backup appliance (--via appliance --plugin ...): their
# outputs are the host path's (same digests), an incremental builds on its parent's outputs, a
# plugin that crashes or fails in the appliance fails the backup naming it and leaves no point and
# nothing attached, the agent survives it (and a hung one is cancelled on SIGTERM) and the next
# backup works.  (File-level plugins: test-plugin-appliance-files.sh.)
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq supermin
start_libvirtd
use_test_appliance

MiB=$((1024 * 1024))
bad=$abs_top_builddir/tests/.libs/vmbk-bad-plugin.so
via=$TMPDIR_TEST/via
host=$TMPDIR_TEST/host
elapsed () { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }'; }

# The digest of output $3 of plugin $2 at point $4 in repository $1.
output_digest ()
{
    "$VMBK" list -r "$1" "$dom" --json |
        jq -r --arg p "$2" --arg o "$3" --arg id "$4" \
           '.[] | select(.point == $id) | .plugins[] | select(.name == $p) | .outputs[] |
            select(.name == $o) | .digest.value'
}

cleanup_fn "$VMBK" appliance stop
dom=vmbk-test-plugin-appl
create_guest "$dom"
guest_write "$dom" vda 0x3c $((10 * MiB)) $((5 * MiB))
guest_zero "$dom" vda $((600 * MiB)) $((2 * MiB))

# Full, then an incremental: the same outputs as the host path's.
# vmdk (a whole disk at every point, converted by vmbk on the host) at the full only.
for level in full inc; do
    plugins=(--plugin raw --plugin stream)
    [ $level = inc ] || plugins+=(--plugin vmdk)
    t0=$(date +%s.%N)
    VMBK_DEBUG=1 "$VMBK" backup "$dom" -r "$via" --no-catalog -l $level --via appliance \
        "${plugins[@]}" >"$TMPDIR_TEST/id" 2>"$TMPDIR_TEST/err" ||
        fail "backup -l $level --via appliance: $(cat "$TMPDIR_TEST/err")"
    echo "backup -l $level --via appliance, ${plugins[*]}: $(elapsed "$t0") s"
    grep -E "appliance|in the appliance" "$TMPDIR_TEST/err" || true
    id=$(cat "$TMPDIR_TEST/id")
    "$VMBK" backup "$dom" -r "$host" --no-catalog -l $level "${plugins[@]}" \
        >/dev/null 2>"$TMPDIR_TEST/err" ||
        fail "backup -l $level on the host: $(cat "$TMPDIR_TEST/err")"
    guest_reference "$dom" vda "$TMPDIR_TEST/ref$id.qcow2"

    a=$(output_digest "$via" raw vda.raw "$id")
    b=$(output_digest "$host" raw vda.raw "$id")
    [ -n "$a" ] && [ "$a" = "$b" ] || fail "point $id: raw output '$a' in the appliance, '$b' on the host"
    assert_same_image "$via/$dom/points/$id/raw/vda.raw" "$TMPDIR_TEST/ref$id.qcow2"
    [ $level = inc ] || assert_same_image "$via/$dom/points/$id/vmdk/vda.vmdk" "$TMPDIR_TEST/ref$id.qcow2"
    "$VMBK" restore -r "$via" "$dom" --point "$id" --from stream -o "$TMPDIR_TEST/s$id.raw" \
        2>"$TMPDIR_TEST/err" || fail "restore --from stream of point $id: $(cat "$TMPDIR_TEST/err")"
    assert_same_image "$TMPDIR_TEST/s$id.raw" "$TMPDIR_TEST/ref$id.qcow2"
    "$VMBK" verify -r "$via" "$dom" --point "$id" >/dev/null
    assert_appliance_clean "after point $id"
    assert_nothing_left "$dom"
    guest_write "$dom" vda 0x3d $((300 * MiB)) $((3 * MiB))
done
# The incremental's redo file holds what changed, not the disk.
redo=$(stat -c %s "$via/$dom/points/0002/stream/vda.stream")
[ "$redo" -lt $((16 * MiB)) ] || fail "the incremental's stream is $redo bytes"
appliance_id=$(virsh domid "$appliance")

# A plugin that crashes in the appliance: the backup fails naming it, no point, nothing attached.
for how in crash=extent fail=disk_end silent=close; do
    rc=0
    "$VMBK" backup "$dom" -r "$via" --no-catalog -l inc --via appliance --plugin raw \
        --plugin "$bad:$how" >/dev/null 2>"$TMPDIR_TEST/err" || rc=$?
    [ $rc = 1 ] || fail "$how: exit $rc: $(cat "$TMPDIR_TEST/err")"
    case $how in
        crash=*) want="plugin 'bad' crashed (Segmentation fault) in the appliance, at point 0003" ;;
        fail=*) want="plugin 'bad' failed in the appliance at point 0003 .*failing at disk_end, as asked" ;;
        silent=*) want="plugin 'bad' failed in the appliance at point 0003 .*close failed without saying why" ;;
    esac
    grep -q "$want" "$TMPDIR_TEST/err" || fail "$how: $(cat "$TMPDIR_TEST/err")"
    [ "$(ls "$via/$dom/points")" = "$(printf '0001\n0002')" ] ||
        fail "$how: the points are $(ls "$via/$dom/points")"
    [ -z "$(ls -A "$via/$dom" | grep '^\.tmp')" ] || fail "$how: a temporary point is left"
    assert_appliance_clean "after $how"
    assert_nothing_left "$dom"
done

# SIGTERM while the plugin hangs in the appliance: vmbk cancels it, fails saying why and detaches;
# the agent is free for the next backup at once (the hung child was killed).
VMBK_DEBUG=1 "$VMBK" backup "$dom" -r "$via" --no-catalog -l inc --via appliance \
    --plugin "$bad:hang=extent" >/dev/null 2>"$TMPDIR_TEST/err" &
pid=$!
wait_for 120 "the plugin to run in the appliance" grep -q "running in the appliance" "$TMPDIR_TEST/err"
sleep 1
kill -TERM $pid
rc=0
wait $pid || rc=$?
[ $rc = 1 ] || fail "SIGTERM: exit $rc: $(cat "$TMPDIR_TEST/err")"
grep -q "interrupted by signal 15" "$TMPDIR_TEST/err" || fail "SIGTERM: $(cat "$TMPDIR_TEST/err")"
assert_appliance_clean "after SIGTERM"
assert_nothing_left "$dom"
[ "$(virsh domid "$appliance")" = "$appliance_id" ] || fail "the appliance was restarted"

# The agent survived: the next backup through the same appliance works and builds on 0002.
guest_write "$dom" vda 0x3e $((400 * MiB)) $((1 * MiB))
"$VMBK" backup "$dom" -r "$via" --no-catalog -l inc --via appliance --plugin raw \
    >"$TMPDIR_TEST/id" 2>"$TMPDIR_TEST/err" || fail "the next backup: $(cat "$TMPDIR_TEST/err")"
[ "$(cat "$TMPDIR_TEST/id")" = 0003 ] || fail "point $(cat "$TMPDIR_TEST/id")"
guest_reference "$dom" vda "$TMPDIR_TEST/ref3.qcow2"
assert_same_image "$via/$dom/points/0003/raw/vda.raw" "$TMPDIR_TEST/ref3.qcow2"
"$VMBK" verify -r "$via" "$dom" --point all >/dev/null
assert_appliance_clean "at the end"
assert_nothing_left "$dom"
