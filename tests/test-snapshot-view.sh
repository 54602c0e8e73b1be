#!/usr/bin/env bash
# vmbk snapshot create|list|export|delete: a live point-in-time view served read-only over NBD
# (unix socket, or TCP on loopback) that a reader downloads with offset/length reads, with the map
# of what changed since a checkpoint; delete ends it and the guest never left its disk.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq nbdcopy nbdinfo
start_libvirtd

dom=vmbk-test-view
create_guest "$dom"
repo=$TMPDIR_TEST/repo
vda=$(guest_disk_path "$dom" vda)
MiB=$((1024 * 1024))
cleanup_fn "$VMBK" snapshot delete "$dom"

# A point (and its checkpoint) to ask "what changed since" against.
"$VMBK" backup "$dom" -r "$repo" --no-catalog >/dev/null
cp=$("$VMBK" list -r "$repo" "$dom" --json | jq -r '.[0].checkpoint')
guest_write "$dom" vda 0x3c $((64 * MiB)) $((1 * MiB))
guest_reference "$dom" vda "$TMPDIR_TEST/ref.qcow2"

"$VMBK" snapshot create "$dom" --json >"$TMPDIR_TEST/view.json"
uri=$(jq -r '.exports[0].uri' "$TMPDIR_TEST/view.json")
[ "$(jq -r '.exports[0].size' "$TMPDIR_TEST/view.json")" = $((1024 * MiB)) ] || fail "wrong size"
guest_write "$dom" vda 0x3d $((64 * MiB)) 4096          # after the view: not in it
"$VMBK" snapshot list --json | jq -e --arg d "$dom" 'map(.domain) | index($d) != null' >/dev/null ||
    fail "snapshot list does not show the view"
[ "$("$VMBK" snapshot export "$dom" --json | jq -r '.exports[0].uri')" = "$uri" ] ||
    fail "export does not give the view's URI"
expect_fail 1 "has a snapshot view open.*vmbk snapshot delete" "$VMBK" backup "$dom" -r "$repo" --no-catalog
expect_fail 1 "has a snapshot view open" "$VMBK" snapshot create "$dom"

# Download the whole view, and one range with an offset/length read.
truncate -s $((1024 * MiB)) "$TMPDIR_TEST/view.raw"
nbdcopy "$uri" "$TMPDIR_TEST/view.raw"
assert_same_image "$TMPDIR_TEST/view.raw" "$TMPDIR_TEST/ref.qcow2"
out=$(qemu-io -r -f raw -c "read -P 0x3c $((64 * MiB)) 4096" "$uri")
grep -q '^read 4096/4096' <<<"$out" && ! grep -q 'Pattern verification failed' <<<"$out" ||
    fail "an offset/length read did not return the view's bytes: $out"
"$VMBK" snapshot delete "$dom"
expect_fail 1 "has no snapshot view" "$VMBK" snapshot export "$dom"

# Over TCP on loopback, with the changes since the point's checkpoint.
port=$((20000 + RANDOM % 10000))
"$VMBK" snapshot create "$dom" --tcp "127.0.0.1:$port" --since "$cp" --json >"$TMPDIR_TEST/tcp.json"
bitmap=$(jq -r '.exports[0].dirty_bitmap' "$TMPDIR_TEST/tcp.json")
[ "$bitmap" != null ] || fail "no dirty bitmap exported with --since"
nbdinfo --map="$bitmap" "nbd://127.0.0.1:$port/vda" >"$TMPDIR_TEST/map"
dirty=$(awk '$3 == 1 { s += $2 } END { print s + 0 }' "$TMPDIR_TEST/map")
grep -qE "^ *$((64 * MiB)) +[0-9]+ +1 " "$TMPDIR_TEST/map" ||
    fail "the dirty map does not start a dirty extent at 64 MiB: $(cat "$TMPDIR_TEST/map")"
[ "$dirty" -ge $((1 * MiB)) ] && [ "$dirty" -le $((2 * MiB)) ] ||
    fail "the dirty map says $dirty bytes changed, want about 1 MiB"
"$VMBK" snapshot delete "$dom"

expect_fail 2 "without TLS.*--insecure" "$VMBK" snapshot create "$dom" --tcp 192.0.2.1:10809
expect_fail 1 "domain 'no-such-dom' not found" "$VMBK" snapshot create no-such-dom
assert_disk_source "$dom" vda "$vda"
assert_nothing_left "$dom"
assert_running "$dom"
exit 0
