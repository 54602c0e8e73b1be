#!/usr/bin/env bash
# Plugins on real points: raw writes each disk whole at every point (full, inc on top of its
# parent's copy, diff on top of the full's) and each equals the guest at that point; the example
# plugin sees exactly the extents a point changed, or the whole disk when its parent has no
# output of it; outputs are recorded with their digests, listed, and checked by verify, which
# names a damaged one; plugins never leave anything on the guest.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq
start_libvirtd

dom=vmbk-t-plugabi
create_guest "$dom"
repo=$TMPDIR_TEST/repo
vda=$(guest_disk_path "$dom" vda)
pts=$repo/$dom/points
MiB=$((1024 * 1024))
cd "$TMPDIR_TEST"

guest_reference "$dom" vda ref1.qcow2
[ "$("$VMBK" backup "$dom" -r "$repo" -l full --no-catalog --plugin raw \
        --plugin example:zeroes=no)" = 0001 ] || fail "full backup with plugins"
qemu-img compare -q -f raw -F qcow2 "$pts/0001/raw/vda.raw" ref1.qcow2 ||
    fail "point 1's raw image differs from the guest"
# Sparse: the raw image stores what the guest has, not its size.
[ $(($(stat -c %b "$pts/0001/raw/vda.raw") * 512)) -lt $((600 * MiB)) ] ||
    fail "the raw image is not sparse"
[ "$("$VMBK" list -r "$repo" "$dom" --json | jq -r '.[0].plugins[0].outputs[0].digest.value')" = \
    "$(tree_digest "$pts/0001/raw/vda.raw")" ] || fail "the manifest's digest of vda.raw is wrong"
head -1 "$pts/0001/example/vda.map" | grep -q "whole" || fail "a full is not whole to a plugin"
! grep -q "^zero" "$pts/0001/example/vda.map" || fail "example:zeroes=no listed zeroes"
[ "$(jq -r '.[0].plugins | map(.name) | join(",")' <<<"$("$VMBK" list -r "$repo" "$dom" --json)")" \
    = raw,example ] || fail "list does not show the plugins"
[ "$("$VMBK" list -r "$repo" "$dom" --json | jq -r '.[0].plugins[1].config[] | select(.key == "zeroes") | .value')" = no ] ||
    fail "the manifest lost the plugin's configuration"

# An incremental: the plugin sees exactly what changed, data and zeroes.
guest_write "$dom" vda 0x5a $((20 * MiB)) $((3 * MiB))
guest_zero "$dom" vda $((100 * MiB)) $((2 * MiB))
guest_reference "$dom" vda ref2.qcow2
[ "$("$VMBK" backup "$dom" -r "$repo" -l inc --no-catalog --plugin raw \
        --plugin example)" = 0002 ] || fail "inc backup with plugins"
qemu-img compare -q -f raw -F qcow2 "$pts/0002/raw/vda.raw" ref2.qcow2 ||
    fail "point 2's raw image differs from the guest"
cat >want.map <<MAP
# disk vda, 1073741824 bytes, changes since its parent
data $((20 * MiB)) $((3 * MiB)) X
zero $((100 * MiB)) $((2 * MiB))
MAP
sed 's/^\(data [0-9]* [0-9]*\) .*/\1 X/' "$pts/0002/example/vda.map" | diff -u want.map - ||
    fail "the plugin did not see exactly the extents point 2 changed"
cmp -s "$pts/0001/raw/vda.raw" "$pts/0002/raw/vda.raw" && fail "point 2's raw is point 1's"

# A differential builds on the full's output, not on point 2's; a plugin whose parent has no
# output of it (example, absent from point 3) sees the whole disk.
guest_write "$dom" vda 0x6b $((40 * MiB)) $((1 * MiB))
guest_reference "$dom" vda ref3.qcow2
[ "$("$VMBK" backup "$dom" -r "$repo" -l diff --no-catalog --plugin raw)" = 0003 ] ||
    fail "diff backup with a plugin"
qemu-img compare -q -f raw -F qcow2 "$pts/0003/raw/vda.raw" ref3.qcow2 ||
    fail "point 3's raw image differs from the guest"
[ ! -e "$pts/0003/example" ] || fail "a plugin not asked for ran"
[ "$("$VMBK" backup "$dom" -r "$repo" -l inc --no-catalog --plugin example)" = 0004 ] ||
    fail "inc backup with a new plugin"
head -1 "$pts/0004/example/vda.map" | grep -q "whole" ||
    fail "a plugin new to the chain did not see the whole disk: $(head -1 "$pts/0004/example/vda.map")"

# The qcow2 chain is untouched by plugins, and everything verifies.
"$VMBK" restore -r "$repo" "$dom" --point 3 -o r3.raw
assert_same_image r3.raw ref3.qcow2
"$VMBK" verify -r "$repo" "$dom" -q || fail "verify failed on intact points"
printf '\x01' | dd of="$pts/0002/raw/vda.raw" bs=1 seek=$((20 * MiB + 5)) conv=notrunc status=none
expect_fail 1 "point 0002 of domain '$dom', output 'vda.raw' of plugin 'raw' does not match its digest" \
    "$VMBK" verify -r "$repo" "$dom"
"$VMBK" verify -r "$repo" "$dom" --point 3 -q || fail "one damaged output failed another point"

assert_running "$dom"
assert_disk_source "$dom" vda "$vda"
assert_nothing_left "$dom"
exit 0
