#!/usr/bin/env bash
# The backup appliance VM: built once per cache (supermin, stamped), booted under TCG once per
# run; backup --via appliance makes the same point as the host path (the agent's digest of each
# hotplugged image equals the host's), leaves nothing attached, and a vmbk killed while a disk is
# attached leaves it to the next command, which detaches it; an idle appliance powers itself off.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq supermin
start_libvirtd

use_test_appliance

elapsed () { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }'; }

cleanup_fn "$VMBK" appliance stop
"$VMBK" appliance stop

t0=$(date +%s.%N)
"$VMBK" appliance build
echo "appliance build: $(elapsed "$t0") s"
"$VMBK" appliance build | grep -q "is up to date" || fail "a second build was not skipped"

"$VMBK" appliance status | grep -q "appliance: stopped" || fail "status: $("$VMBK" appliance status)"
"$VMBK" appliance start --idle 900 >"$TMPDIR_TEST/start"
cat "$TMPDIR_TEST/start"
grep -q "started the appliance" "$TMPDIR_TEST/start" || fail "start: $(cat "$TMPDIR_TEST/start")"
"$VMBK" appliance start | grep -q "already running" || fail "a second start did not see it running"
"$VMBK" appliance status --json >"$TMPDIR_TEST/status"
[ "$(jq -r .running "$TMPDIR_TEST/status")" = true ] || fail "status: $(cat "$TMPDIR_TEST/status")"
[ "$(jq -r .protocol "$TMPDIR_TEST/status")" = 1 ] || fail "status: $(cat "$TMPDIR_TEST/status")"
[ "$(jq -r .agent "$TMPDIR_TEST/status")" = "$("$VMBK" --version | awk '{ print $2 }')" ] ||
    fail "status: $(cat "$TMPDIR_TEST/status")"
assert_appliance_clean "after start"

dom=vmbk-test-appliance
create_guest "$dom"
MiB=$((1024 * 1024))
guest_write "$dom" vda 0x5a $((100 * MiB)) $((3 * MiB))

# The same point through both runners: the same digest.
t0=$(date +%s.%N)
VMBK_DEBUG=1 "$VMBK" backup "$dom" -r "$TMPDIR_TEST/repo" --no-catalog -l full --via appliance \
    >"$TMPDIR_TEST/id" 2>"$TMPDIR_TEST/err" || fail "backup --via appliance: $(cat "$TMPDIR_TEST/err")"
echo "backup --via appliance (1 GiB disk): $(elapsed "$t0") s"
grep "appliance:" "$TMPDIR_TEST/err" || true
[ "$(cat "$TMPDIR_TEST/id")" = 0001 ] || fail "point $(cat "$TMPDIR_TEST/id")"
"$VMBK" backup "$dom" -r "$TMPDIR_TEST/host" --no-catalog -l full >/dev/null
via=$("$VMBK" list -r "$TMPDIR_TEST/repo" "$dom" --json | jq -r '.[0].disks[0].digest.value')
host=$("$VMBK" list -r "$TMPDIR_TEST/host" "$dom" --json | jq -r '.[0].disks[0].digest.value')
[ -n "$via" ] && [ "$via" != null ] && [ "$via" = "$host" ] ||
    fail "--via appliance made digest '$via', the host path '$host'"
"$VMBK" verify -r "$TMPDIR_TEST/repo" "$dom" >/dev/null
assert_appliance_clean "after a backup"
assert_nothing_left "$dom"

# kill -9 while the disk is attached: the next command detaches it.
pause=$TMPDIR_TEST/pause
guest_write "$dom" vda 0x5b $((200 * MiB)) $((1 * MiB))
VMBK_TEST_PAUSE=$pause VMBK_TEST_PAUSE_AT=appliance \
    "$VMBK" backup "$dom" -r "$TMPDIR_TEST/repo" --no-catalog -l inc --via appliance \
    >/dev/null 2>&1 &
pid=$!
wait_for 120 "the backup to attach its disk to the appliance" test -e "$pause"
[ "$(virsh domblklist "$appliance" | awk 'NR > 2 && $1 != ""' | wc -l)" = 2 ] ||
    fail "no disk attached at the pause: $(virsh domblklist "$appliance")"
kill -9 $pid
wait $pid 2>/dev/null || true
rm -f "$pause"
"$VMBK" appliance status 2>"$TMPDIR_TEST/err" >/dev/null
grep -q "detached disk 'vmbk-vda-" "$TMPDIR_TEST/err" || fail "status: $(cat "$TMPDIR_TEST/err")"
assert_appliance_clean "after a killed backup"
! pgrep -af "qemu-nbd.*$VMBK_STATE_DIR" || fail "the killed backup's qemu-nbd is still running"

# kill -9 while the agent reads the disk (a full: the whole disk is read): the next command
# detaches it, the agent's reads fail, and it answers again.
"$VMBK" backup "$dom" -r "$TMPDIR_TEST/repo" --no-catalog -l full --via appliance \
    >/dev/null 2>&1 &
pid=$!
for i in $(seq 600); do
    [ "$(virsh domblklist "$appliance" | awk 'NR > 2 && $1 != ""' | wc -l)" = 2 ] && break
    sleep 0.2
done
sleep 1
kill -9 $pid
wait $pid 2>/dev/null || true
t0=$(date +%s.%N)
"$VMBK" appliance status 2>"$TMPDIR_TEST/err" >/dev/null || fail "status: $(cat "$TMPDIR_TEST/err")"
echo "status after a kill -9 mid-digest: $(elapsed "$t0") s"
grep -q "detached disk 'vmbk-vda-" "$TMPDIR_TEST/err" || fail "status: $(cat "$TMPDIR_TEST/err")"
assert_appliance_clean "after a backup killed mid-digest"

# And the next backup through the warm appliance works.
t0=$(date +%s.%N)
"$VMBK" backup "$dom" -r "$TMPDIR_TEST/repo" --no-catalog -l inc --via appliance \
    >"$TMPDIR_TEST/id" 2>"$TMPDIR_TEST/err" || fail "the next backup: $(cat "$TMPDIR_TEST/err")"
echo "backup --via appliance, warm, inc: $(elapsed "$t0") s"
[ "$(cat "$TMPDIR_TEST/id")" = 0002 ] || fail "point $(cat "$TMPDIR_TEST/id")"
assert_appliance_clean "after the next backup"
assert_nothing_left "$dom"

# SIGTERM while attached: the backup fails, saying why, and detaches before it exits.
guest_write "$dom" vda 0x5c $((300 * MiB)) $((1 * MiB))
VMBK_TEST_PAUSE=$pause VMBK_TEST_PAUSE_AT=appliance \
    "$VMBK" backup "$dom" -r "$TMPDIR_TEST/repo" --no-catalog -l inc --via appliance \
    >/dev/null 2>"$TMPDIR_TEST/err" &
pid=$!
wait_for 120 "the backup to attach its disk to the appliance" test -e "$pause"
kill -TERM $pid
rc=0
wait $pid || rc=$?
rm -f "$pause"
[ $rc = 1 ] || fail "SIGTERM: exit $rc: $(cat "$TMPDIR_TEST/err")"
grep -q "interrupted by signal 15" "$TMPDIR_TEST/err" || fail "SIGTERM: $(cat "$TMPDIR_TEST/err")"
assert_appliance_clean "after SIGTERM"
assert_nothing_left "$dom"

# The appliance dies under a backup: the backup fails cleanly, the next one boots it again.
VMBK_TEST_PAUSE=$pause VMBK_TEST_PAUSE_AT=appliance \
    "$VMBK" backup "$dom" -r "$TMPDIR_TEST/repo" --no-catalog -l inc --via appliance \
    >/dev/null 2>"$TMPDIR_TEST/err" &
pid=$!
wait_for 120 "the backup to attach its disk to the appliance" test -e "$pause"
virsh destroy "$appliance" >/dev/null
rm -f "$pause"
rc=0
wait $pid || rc=$?
[ $rc = 1 ] || fail "appliance destroyed: exit $rc: $(cat "$TMPDIR_TEST/err")"
grep -q "appliance stopped or crashed" "$TMPDIR_TEST/err" && ! grep -q warning "$TMPDIR_TEST/err" ||
    fail "appliance destroyed: $(cat "$TMPDIR_TEST/err")"
assert_nothing_left "$dom"

# Two guests one after the other through the same appliance (booted again here).
dom2=vmbk-test-appliance2
create_guest "$dom2"
for d in "$dom" "$dom2"; do
    t0=$(date +%s.%N)
    "$VMBK" backup "$d" -r "$TMPDIR_TEST/repo" --no-catalog --via appliance \
        >/dev/null 2>"$TMPDIR_TEST/err" || fail "backup of $d: $(cat "$TMPDIR_TEST/err")"
    echo "backup --via appliance of $d: $(elapsed "$t0") s"
    assert_appliance_clean "after the backup of $d"
    assert_nothing_left "$d"
done
[ "$("$VMBK" list -r "$TMPDIR_TEST/repo" "$dom2" --json | jq length)" = 1 ] || fail "no point of $dom2"
"$VMBK" verify -r "$TMPDIR_TEST/repo" "$dom" --point all >/dev/null

"$VMBK" appliance stop
wait_for 30 "the appliance to stop" sh -c "! virsh domstate $appliance >/dev/null 2>&1"
"$VMBK" appliance status | grep -q "appliance: stopped" || fail "still running after stop"

# Idle: the appliance powers itself off once nothing has asked it anything for --idle seconds.
"$VMBK" appliance start --idle 5 >/dev/null
t0=$(date +%s.%N)
wait_for 120 "the idle appliance to power itself off" sh -c "! virsh domstate $appliance >/dev/null 2>&1"
echo "idle power-off after --idle 5: $(elapsed "$t0") s"
"$VMBK" appliance status | grep -q "appliance: stopped" || fail "running after its idle time"
