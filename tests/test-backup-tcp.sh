#!/usr/bin/env bash
# --export tcp: the backup job serves the point on TCP (loopback here) and vmbk reads it with
# libnbd over nbd://; full and incremental points equal the guest at each point and the unix
# path's.  --remote URI reaches the domain through another libvirt connection (loopback:
# qemu:///system), with libvirt placing the scratch files; a vmbk killed during such a job leaves
# it to the next run, which ends it.  Plain TCP off loopback is refused, naming the address.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq
start_libvirtd

dom=vmbk-test-tcp
create_guest "$dom" --disks 2
vda=$(guest_disk_path "$dom" vda)
vdb=$(guest_disk_path "$dom" vdb)
tcp=$TMPDIR_TEST/tcp
unix=$TMPDIR_TEST/unix
MiB=$((1024 * 1024))

digest () { # digest REPO N TARGET
    "$VMBK" list -r "$1" "$dom" --json |
        jq -r --arg t "$3" ".[$(($2 - 1))].disks[] | select(.target == \$t) | .digest.value"
}

# point N LEVEL ARGS...: references, a backup over TCP with ARGS, one over the unix socket; the
# two points hold the same digests and restore to the references.
point () {
    local n=$1 level=$2 id t a b
    shift 2
    id=$(printf %04d "$n")
    for t in vda vdb; do guest_reference "$dom" $t "$TMPDIR_TEST/ref$n-$t.qcow2"; done
    VMBK_DEBUG=1 "$VMBK" backup "$dom" -r "$tcp" --no-catalog -l "$level" "$@" \
        >"$TMPDIR_TEST/id" 2>"$TMPDIR_TEST/err" || fail "backup $*: $(cat "$TMPDIR_TEST/err")"
    [ "$(cat "$TMPDIR_TEST/id")" = "$id" ] || fail "backup $* made point $(cat "$TMPDIR_TEST/id")"
    grep -q "export served on 127.0.0.1:[0-9]" "$TMPDIR_TEST/err" ||
        fail "backup $* did not serve on TCP: $(cat "$TMPDIR_TEST/err")"
    assert_nothing_left "$dom"
    "$VMBK" backup "$dom" -r "$unix" --no-catalog -l "$level" >/dev/null
    for t in vda vdb; do
        a=$(digest "$tcp" "$n" $t)
        b=$(digest "$unix" "$n" $t)
        [ -n "$a" ] && [ "$a" != null ] && [ "$a" = "$b" ] ||
            fail "point $id disk $t: digest '$a' over TCP, '$b' over the unix socket"
        "$VMBK" restore -r "$tcp" "$dom" --point "$id" --disk $t -o "$TMPDIR_TEST/r.raw"
        assert_same_image "$TMPDIR_TEST/r.raw" "$TMPDIR_TEST/ref$n-$t.qcow2"
        rm -f "$TMPDIR_TEST/r.raw"
    done
    assert_nothing_left "$dom"
}

point 1 full --export tcp:127.0.0.1
guest_write "$dom" vda 0xab $((100 * MiB + 12345)) 300000
guest_write "$dom" vdb 0xcd 4096 8192
point 2 inc --export tcp:127.0.0.1
guest_write "$dom" vda 0x17 $((20 * MiB)) $((2 * MiB))
guest_zero "$dom" vda $((100 * MiB)) 65536
point 3 inc --remote qemu:///system --export tcp:127.0.0.1
# An explicit port, and the default address.
guest_write "$dom" vdb 0x99 $((9 * MiB)) 4096
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
point 4 inc --export "tcp:127.0.0.1:$port"
grep -q "export served on 127.0.0.1:$port" "$TMPDIR_TEST/err" || fail "port $port not used"
[ "$("$VMBK" list -r "$tcp" "$dom" --json | jq -r 'map(.level) | join(",")')" = full,inc,inc,inc ] ||
    fail "levels: $("$VMBK" list -r "$tcp" "$dom" --json | jq -c 'map(.level)')"
"$VMBK" verify -r "$tcp" "$dom" --point all >/dev/null

# --remote: a vmbk killed with the job running leaves it (and libvirt's scratch files beside the
# disks); the next run ends it and goes on.
pause=$TMPDIR_TEST/pause
VMBK_TEST_PAUSE=$pause "$VMBK" backup "$dom" -r "$tcp" --no-catalog -l inc \
    --remote qemu:///system --export tcp:127.0.0.1 >/dev/null 2>&1 &
pid=$!
wait_for 120 "the remote backup to take its point" test -e "$pause"
job=$(virsh domjobinfo "$dom")
grep -Eq '^Job type: +Unbounded' <<<"$job" || fail "no job at the pause: $job"
job=$(virsh backup-dumpxml "$dom")
grep -q "exportname='vmbk\." <<<"$job" || fail "the remote job's exports do not name its job: $job"
kill -9 $pid
wait $pid 2>/dev/null || true
rm -f "$pause"
"$VMBK" backup "$dom" -r "$tcp" --no-catalog -l inc --remote qemu:///system \
    --export tcp:127.0.0.1 >"$TMPDIR_TEST/id" 2>"$TMPDIR_TEST/err" ||
    fail "the backup after a killed one: $(cat "$TMPDIR_TEST/err")"
grep -q "ending the backup job of domain '$dom' left by an interrupted vmbk" "$TMPDIR_TEST/err" ||
    fail "the stale remote job was not ended: $(cat "$TMPDIR_TEST/err")"
[ "$(cat "$TMPDIR_TEST/id")" = 0005 ] || fail "point $(cat "$TMPDIR_TEST/id") after the kill"
assert_nothing_left "$dom"

# Refused before anything is started: plain TCP off loopback, --remote without tcp:ADDR.
expect_fail 2 "serving the disks on '192.0.2.7' without TLS.*--insecure" \
    "$VMBK" backup "$dom" -r "$tcp" --no-catalog --export tcp:192.0.2.7
expect_fail 2 "serving the disks on 'fd00::7' without TLS" \
    "$VMBK" backup "$dom" -r "$tcp" --no-catalog --export 'tcp:[fd00::7]:10809'
expect_fail 2 "--remote 'qemu:///system' needs --export tcp:ADDR" \
    "$VMBK" backup "$dom" -r "$tcp" --no-catalog --remote qemu:///system
expect_fail 2 "unknown export 'udp'" "$VMBK" backup "$dom" -r "$tcp" --no-catalog --export udp
expect_fail 2 "'99999' is not a TCP port" \
    "$VMBK" backup "$dom" -r "$tcp" --no-catalog --export tcp:127.0.0.1:99999
assert_nothing_left "$dom"
[ "$("$VMBK" list -r "$tcp" "$dom" --json | jq length)" = 5 ] || fail "a refused backup made a point"

assert_running "$dom"
assert_disk_source "$dom" vda "$vda"
assert_disk_source "$dom" vdb "$vdb"
