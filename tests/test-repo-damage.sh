#!/usr/bin/env bash
# Repository damage: a truncated image, a corrupted manifest, damaged block digests.  verify
# names the point and disk, restore refuses a damaged point instead of writing a wrong disk, and
# the other points still list, verify and restore.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq
start_libvirtd

dom=vmbk-test-damage
create_guest "$dom"
repo=$TMPDIR_TEST/repo
MiB=$((1024 * 1024))

guest_reference "$dom" vda "$TMPDIR_TEST/ref1.qcow2"
"$VMBK" backup "$dom" -r "$repo" --no-catalog >/dev/null
for n in 2 3 4; do
    guest_write "$dom" vda 0x$((40 + n)) $((n * 16 * MiB)) $((4 * MiB))
    "$VMBK" backup "$dom" -r "$repo" --no-catalog -l diff >/dev/null     # each on the full
done
pdir=$repo/$dom/points

# A truncated image (point 2).
img=$pdir/0002/vda.qcow2
truncate -s $(($(stat -c %s "$img") / 2)) "$img"
expect_fail 1 "point 0002 of domain '$dom', disk 'vda'" "$VMBK" verify -r "$repo" "$dom" --point 2
expect_fail 1 "point 0002 of domain '$dom'" "$VMBK" restore -r "$repo" "$dom" --point 2 -o "$TMPDIR_TEST/x.raw"
[ ! -e "$TMPDIR_TEST/x.raw" ] || fail "restore of a truncated point left a file"

# A corrupted manifest (point 3): left out of list with a warning, named by verify.
printf 'garbage' >"$pdir/0003/manifest.xml"
"$VMBK" list -r "$repo" "$dom" --json >"$TMPDIR_TEST/list.json" 2>"$TMPDIR_TEST/err"
[ "$(jq -r 'map(.point) | join(",")' "$TMPDIR_TEST/list.json")" = 0001,0002,0004 ] ||
    fail "list: $(cat "$TMPDIR_TEST/list.json")"
grep -q "leaving out point 0003 of domain '$dom'" "$TMPDIR_TEST/err" || fail "no warning for 0003"
expect_fail 1 "point 0003 of domain '$dom' is damaged: cannot parse" "$VMBK" verify -r "$repo" "$dom"

# Damaged block digests (point 4): verify says so; the data itself still restores right.
printf '\xff' | dd of="$pdir/0004/vda.leaves" bs=1 seek=100 conv=notrunc 2>/dev/null
expect_fail 1 "point 0004 of domain '$dom', disk 'vda': the block digests .* do not match" \
    "$VMBK" verify -r "$repo" "$dom" --point 4

# The full is intact, and restores exactly.
"$VMBK" verify -r "$repo" "$dom" --point 1 >/dev/null || fail "point 1 should verify"
"$VMBK" restore -r "$repo" "$dom" --point 1 -o "$TMPDIR_TEST/r1.raw"
assert_same_image "$TMPDIR_TEST/r1.raw" "$TMPDIR_TEST/ref1.qcow2"

# The next backup neither reuses the damaged point's number nor builds on damaged digests.
guest_reference "$dom" vda "$TMPDIR_TEST/ref5.qcow2"
[ "$("$VMBK" backup "$dom" -r "$repo" --no-catalog -l diff)" = 0005 ] || fail "the next point is not 0005"
"$VMBK" restore -r "$repo" "$dom" -o "$TMPDIR_TEST/r5.raw"
assert_same_image "$TMPDIR_TEST/r5.raw" "$TMPDIR_TEST/ref5.qcow2"
"$VMBK" verify -r "$repo" "$dom" --point 5 >/dev/null || fail "point 5 should verify"
assert_nothing_left "$dom"
exit 0
