#!/usr/bin/env bash
# A broken checkpoint chain is detected: -l inc refuses with a message saying what is wrong and
# what to run, -l auto falls back to a full and says so.  A flipped byte in a point fails verify
# with the point and disk named, and restore refuses it instead of writing a wrong disk.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq
start_libvirtd

dom=vmbk-test-broken
create_guest "$dom"
repo=$TMPDIR_TEST/repo
MiB=$((1024 * 1024))

"$VMBK" backup "$dom" -r "$repo" --no-catalog -l full >/dev/null
guest_write "$dom" vda 0x77 $((20 * MiB)) $((1 * MiB))
"$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc >/dev/null

# -l inc on a repository with no point of the domain.
expect_fail 1 "no earlier point of domain" "$VMBK" backup "$dom" -r "$TMPDIR_TEST/empty" --no-catalog -l inc

# Remove the checkpoint behind point 2: -l inc must refuse, -l auto take a full.
cp=$("$VMBK" list -r "$repo" "$dom" --json | jq -r '.[1].checkpoint')
virsh checkpoint-delete "$dom" "$cp" >/dev/null
expect_fail 1 "has no checkpoint '$cp'.*run a full backup or pass -l auto" \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc
[ "$("$VMBK" list -r "$repo" "$dom" --json | jq length)" = 2 ] || fail "a failed inc left a point"
guest_reference "$dom" vda "$TMPDIR_TEST/ref3.qcow2"
"$VMBK" backup "$dom" -r "$repo" --no-catalog -l auto >"$TMPDIR_TEST/id" 2>"$TMPDIR_TEST/err"
grep -q "taking a full backup" "$TMPDIR_TEST/err" || fail "auto did not say it fell back"
[ "$("$VMBK" list -r "$repo" "$dom" --json | jq -r '.[2].level')" = full ] ||
    fail "auto did not fall back to a full"
"$VMBK" restore -r "$repo" "$dom" -o "$TMPDIR_TEST/p3.raw"
assert_same_image "$TMPDIR_TEST/p3.raw" "$TMPDIR_TEST/ref3.qcow2"
rm -f "$TMPDIR_TEST/p3.raw"
# A bitmap that vanished from the image (checkpoint metadata intact) is caught as well.
guest_write "$dom" vda 0x78 $((21 * MiB)) 4096
qdev=$(guest_qdev "$dom" vda)
node=$(virsh qemu-monitor-command "$dom" '{"execute":"query-named-block-nodes"}' |
    jq -r '.return[] | select(."dirty-bitmaps" != null and (."dirty-bitmaps" | length) > 0
           and .drv == "qcow2") | ."node-name"' | head -n 1)
cp3=$("$VMBK" list -r "$repo" "$dom" --json | jq -r '.[2].checkpoint')
virsh qemu-monitor-command "$dom" "{\"execute\":\"block-dirty-bitmap-remove\",
    \"arguments\":{\"node\":\"$node\",\"name\":\"$cp3\"}}" >/dev/null
expect_fail 1 "checkpoint .$cp3. (point 0003).*not usable.*run a full backup or pass -l auto" "$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc
"$VMBK" backup "$dom" -r "$repo" --no-catalog -l auto >/dev/null 2>"$TMPDIR_TEST/err"
grep -q "taking a full backup" "$TMPDIR_TEST/err" || fail "auto did not fall back: $(cat "$TMPDIR_TEST/err")"
: "$qdev"

# A flipped byte in point 2's data: verify names it, restore refuses, other points are fine.
img=$repo/$dom/points/0002/vda.qcow2
off=$(qemu-img map --output=json "$img" | jq '[.[] | select(.data and .depth == 0)][0].offset')
[ "$off" != null ] || fail "no data in point 2's image"
orig=$(dd if="$img" bs=1 skip="$off" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
printf "\\$(printf %03o $(((orig + 1) % 256)))" | dd of="$img" bs=1 seek="$off" conv=notrunc 2>/dev/null
expect_fail 1 "point 0002 of domain '$dom'.*does not match its digest: the 64 KiB block at offset [0-9]* differs" \
    "$VMBK" verify -r "$repo" "$dom" --point 0002
expect_fail 1 "does not match its digest" "$VMBK" verify -r "$repo" "$dom"
expect_fail 1 "does not match its digest" \
    "$VMBK" restore -r "$repo" "$dom" --point 2 -o "$TMPDIR_TEST/bad.raw"
[ ! -e "$TMPDIR_TEST/bad.raw" ] || fail "restore left a wrong disk behind"
"$VMBK" verify -r "$repo" "$dom" --point 0001 >/dev/null || fail "point 1 should verify"
"$VMBK" verify -r "$repo" "$dom" --point latest >/dev/null || fail "the latest point should verify"

# A missing parent is named too.
mv "$repo/$dom/points/0001/vda.qcow2" "$TMPDIR_TEST/"
expect_fail 1 "point 0002 of domain '$dom', disk 'vda'" "$VMBK" verify -r "$repo" "$dom" --point 2
mv "$TMPDIR_TEST/vda.qcow2" "$repo/$dom/points/0001/"

expect_fail 1 "domain '$dom' has no point '42'" "$VMBK" restore -r "$repo" "$dom" --point 42 -o x
assert_nothing_left "$dom"
assert_running "$dom"
exit 0
