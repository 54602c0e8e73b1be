#!/usr/bin/env bash
# Full, inc, diff, inc of a running two-disk guest: each point restores to exactly the guest's
# content when it was taken (unaligned writes, a region overwritten with zeroes included), the
# chain is standard qcow2 with relative backing links, verify passes, only the checkpoints a
# later point needs are kept, and the guest runs on its original disks with nothing left behind.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq
start_libvirtd

dom=vmbk-test-chain
create_guest "$dom" --disks 2
repo=$TMPDIR_TEST/repo
vda=$(guest_disk_path "$dom" vda)
vdb=$(guest_disk_path "$dom" vdb)
MiB=$((1024 * 1024))

point() { # point N LEVEL: take references of both disks, back up, check the id
    guest_reference "$dom" vda "$TMPDIR_TEST/ref$1-vda.qcow2"
    guest_reference "$dom" vdb "$TMPDIR_TEST/ref$1-vdb.qcow2"
    id=$("$VMBK" backup "$dom" -r "$repo" --no-catalog -l "$2")
    [ "$id" = "$(printf %04d "$1")" ] || fail "backup -l $2 printed '$id', not point $1"
    assert_nothing_left "$dom"
}

point 1 full
guest_write "$dom" vda 0xab $((100 * MiB + 12345)) 300000      # not 64 KiB aligned
guest_write "$dom" vda 0xac $((300 * MiB)) $((2 * MiB))
guest_write "$dom" vdb 0xcd 4096 8192
point 2 inc
guest_zero "$dom" vda $((300 * MiB)) $((1 * MiB))              # zeroes over data
guest_write "$dom" vda 0xef $((700 * MiB + 7)) 1000
point 3 diff
guest_write "$dom" vda 0x11 $((5 * MiB + 511)) 65537
guest_zero "$dom" vdb 4096 4096
point 4 inc

# The repository as list --json shows it.
"$VMBK" list -r "$repo" "$dom" --json >"$TMPDIR_TEST/list.json"
[ "$(jq -r 'map(.level) | join(",")' "$TMPDIR_TEST/list.json")" = full,inc,diff,inc ] ||
    fail "levels: $(jq -c 'map(.level)' "$TMPDIR_TEST/list.json")"
[ "$(jq -r 'map(.parent // "null") | join(",")' "$TMPDIR_TEST/list.json")" = null,0001,0001,0003 ] ||
    fail "parents: $(jq -c 'map(.parent)' "$TMPDIR_TEST/list.json")"
jq -e 'all(.[]; .consistency == "crash" and (.time | test("^[0-9-]+T[0-9:]+Z$"))
            and (.disks | length) == 2)' "$TMPDIR_TEST/list.json" >/dev/null ||
    fail "list --json lacks consistency, time or disks"
img4=$(jq -r '.[3].disks[] | select(.target == "vda") | .image' "$TMPDIR_TEST/list.json")
[ "$(qemu-img info --output=json "$img4" | jq -r '."backing-filename"')" = ../0003/vda.qcow2 ] ||
    fail "point 4's vda is not backed by ../0003/vda.qcow2"
[ "$(qemu-img info --output=json "$repo/$dom/points/0003/vda.qcow2" | jq -r '."backing-filename"')" \
    = ../0001/vda.qcow2 ] || fail "the diff point is not backed by the full"
# An incremental stores what changed, not the disk.
full=$(jq '.[0].disks[] | select(.target == "vda") | .stored_bytes' "$TMPDIR_TEST/list.json")
inc=$(jq '.[3].disks[] | select(.target == "vda") | .stored_bytes' "$TMPDIR_TEST/list.json")
[ "$inc" -lt $((full / 10)) ] || fail "point 4 stores $inc bytes, the full $full"

# Each point restores to the references taken when it was made.
for n in 1 2 3 4; do
    id=$(printf %04d $n)
    for t in vda vdb; do
        "$VMBK" restore -r "$repo" "$dom" --point "$id" --disk "$t" -o "$TMPDIR_TEST/r$n-$t.raw"
        assert_same_image "$TMPDIR_TEST/r$n-$t.raw" "$TMPDIR_TEST/ref$n-$t.qcow2"
        rm -f "$TMPDIR_TEST/r$n-$t.raw"
    done
done
"$VMBK" restore -r "$repo" "$dom" --disk vda --format qcow2 -o "$TMPDIR_TEST/latest.qcow2"
assert_same_image "$TMPDIR_TEST/latest.qcow2" "$TMPDIR_TEST/ref4-vda.qcow2"
# The repository's images open as they are (qemu-img compare walks the chain).
assert_same_image "$repo/$dom/points/0002/vda.qcow2" "$TMPDIR_TEST/ref2-vda.qcow2"

"$VMBK" verify -r "$repo" "$dom" >"$TMPDIR_TEST/verify.out"
[ "$(grep -c intact "$TMPDIR_TEST/verify.out")" = 4 ] || fail "verify: $(cat "$TMPDIR_TEST/verify.out")"

# Checkpoints: the latest point's (for inc) and the full's (for diff), nothing else.
cps=$(virsh checkpoint-list "$dom" --name | sed '/^$/d' | sed 's/^vmbk\.[0-9a-f]*\.//' | sort | tr '\n' ' ')
[ "$cps" = "0001 0004 " ] || fail "checkpoints left: $cps"

assert_running "$dom"
assert_disk_source "$dom" vda "$vda"
assert_disk_source "$dom" vdb "$vdb"
exit 0
