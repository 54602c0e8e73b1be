#!/usr/bin/env bash
# --via appliance --remote URI --export tcp: the appliance hotplugs the guest's live TCP export
# read-only (a network disk) while the host copies it into the repository; the agent's digest of
# the live export is the host's, the points (full, incremental) and the raw plugin's output equal
# the guest at each point, nothing stays attached and the guest's job is ended, also after a
# SIGTERM or with the appliance destroyed under the backup.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq supermin
start_libvirtd
use_test_appliance

MiB=$((1024 * 1024))
repo=$TMPDIR_TEST/repo
remote=(--via appliance --remote qemu:///system --export tcp:127.0.0.1)
elapsed () { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }'; }

cleanup_fn "$VMBK" appliance stop
dom=vmbk-test-appl-tcp
create_guest "$dom"
vda=$(guest_disk_path "$dom" vda)
guest_write "$dom" vda 0x61 $((30 * MiB + 5)) $((2 * MiB))

# point N LEVEL ARGS...: through the appliance on the live export; equal to the guest.
point () {
    local n=$1 level=$2 id t0 live digest
    shift 2
    id=$(printf %04d "$n")
    guest_reference "$dom" vda "$TMPDIR_TEST/ref$n.qcow2"
    t0=$(date +%s.%N)
    VMBK_DEBUG=1 "$VMBK" backup "$dom" -r "$repo" --no-catalog -l "$level" "${remote[@]}" "$@" \
        >"$TMPDIR_TEST/id" 2>"$TMPDIR_TEST/err" || fail "backup -l $level: $(cat "$TMPDIR_TEST/err")"
    echo "backup -l $level ${remote[*]} $*: $(elapsed "$t0") s"
    grep "appliance:" "$TMPDIR_TEST/err" || true
    [ "$(cat "$TMPDIR_TEST/id")" = "$id" ] || fail "point $(cat "$TMPDIR_TEST/id")"
    grep -q "appliance: export 'vmbk\.[^']*\.vda' on 127.0.0.1:[0-9]* attached as 'vmbk-vda-" \
        "$TMPDIR_TEST/err" || fail "the live export was not attached: $(cat "$TMPDIR_TEST/err")"
    if [ "$level" = full ]; then
        live=$(sed -n 's/.*appliance: vda digest \([0-9a-f]*\) in .*/\1/p' "$TMPDIR_TEST/err" | head -1)
        digest=$("$VMBK" list -r "$repo" "$dom" --json | jq -r ".[$((n - 1))].disks[0].digest.value")
        [ -n "$live" ] && [ "$live" = "$digest" ] ||
            fail "point $id: the appliance read digest '$live' on the live export, the host wrote '$digest'"
    else
        # An incremental: the appliance reads the leaves the point changed, not the disk.
        grep -q "appliance: vda digest of the [1-9][0-9]* changed leaves" "$TMPDIR_TEST/err" ||
            fail "point $id: the appliance did not check the changed leaves: $(cat "$TMPDIR_TEST/err")"
    fi
    "$VMBK" restore -r "$repo" "$dom" --point "$id" -o "$TMPDIR_TEST/r.raw"
    assert_same_image "$TMPDIR_TEST/r.raw" "$TMPDIR_TEST/ref$n.qcow2"
    rm -f "$TMPDIR_TEST/r.raw"
    assert_appliance_clean "after point $id"
    assert_nothing_left "$dom"
}

point 1 full
guest_write "$dom" vda 0x62 $((200 * MiB)) $((1 * MiB))
guest_zero "$dom" vda $((30 * MiB)) 65536
point 2 inc
guest_write "$dom" vda 0x63 $((400 * MiB + 17)) 12345
point 3 inc --plugin raw
assert_same_image "$repo/$dom/points/0003/raw/vda.raw" "$TMPDIR_TEST/ref3.qcow2"
"$VMBK" verify -r "$repo" "$dom" --point all >/dev/null

# SIGTERM with the live export attached: the backup fails saying why, detaches, ends the job.
pause=$TMPDIR_TEST/pause
guest_write "$dom" vda 0x64 $((300 * MiB)) $((1 * MiB))
VMBK_TEST_PAUSE=$pause VMBK_TEST_PAUSE_AT=appliance \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc "${remote[@]}" >/dev/null \
    2>"$TMPDIR_TEST/err" &
pid=$!
wait_for 300 "the backup to attach the live export to the appliance" test -e "$pause"
disks=$(virsh domblklist "$appliance")   # not piped into grep -q: pipefail, SIGPIPE
grep -q "vmbk\.[^ ]*\.vda" <<<"$disks" || fail "the live export is not attached at the pause: $disks"
job=$(virsh domjobinfo "$dom")
grep -Eq '^Job type: +Unbounded' <<<"$job" || fail "no job at the pause: $job"
kill -TERM $pid
rc=0
wait $pid || rc=$?
rm -f "$pause"
[ $rc = 1 ] || fail "SIGTERM: exit $rc: $(cat "$TMPDIR_TEST/err")"
grep -q "interrupted while copying disk .vda." "$TMPDIR_TEST/err" || fail "SIGTERM: $(cat "$TMPDIR_TEST/err")"
assert_appliance_clean "after SIGTERM"
assert_nothing_left "$dom"

# SIGTERM while the copy and the appliance's read run (a full): the same.
"$VMBK" backup "$dom" -r "$repo" --no-catalog -l full "${remote[@]}" >/dev/null \
    2>"$TMPDIR_TEST/err" &
pid=$!
for i in $(seq 600); do
    disks=$(virsh domblklist "$appliance" 2>/dev/null) || true
    grep -q "vmbk\.[^ ]*\.vda" <<<"$disks" && break
    sleep 0.2
done
kill -TERM $pid
rc=0
wait $pid || rc=$?
[ $rc = 1 ] || fail "SIGTERM mid-copy: exit $rc: $(cat "$TMPDIR_TEST/err")"
assert_appliance_clean "after SIGTERM mid-copy"
assert_nothing_left "$dom"

# The appliance destroyed under the backup: it fails, the guest's job is ended.
VMBK_TEST_PAUSE=$pause VMBK_TEST_PAUSE_AT=appliance \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc "${remote[@]}" >/dev/null \
    2>"$TMPDIR_TEST/err" &
pid=$!
wait_for 300 "the backup to attach the live export to the appliance" test -e "$pause"
virsh destroy "$appliance" >/dev/null
rm -f "$pause"
rc=0
wait $pid || rc=$?
[ $rc = 1 ] || fail "appliance destroyed: exit $rc: $(cat "$TMPDIR_TEST/err")"
grep -q "appliance stopped or crashed" "$TMPDIR_TEST/err" || fail "appliance destroyed: $(cat "$TMPDIR_TEST/err")"
assert_nothing_left "$dom"
[ "$("$VMBK" list -r "$repo" "$dom" --json | jq length)" = 3 ] || fail "a failed backup made a point"

# And the next one boots the appliance again and works.
point 4 inc
assert_running "$dom"
assert_disk_source "$dom" vda "$vda"
