#!/usr/bin/env bash
# The vmdk plugin: a full and two incremental backups each leave a VMDK of the whole disk that
# qemu-img reads as the guest's content at that point (unaligned writes and zeroes over data in
# between included): streamOptimized by default, monolithicSparse with an LSI Logic adapter when
# asked; recorded with its digest in the manifest, no scratch file left.  An unknown subformat
# or key fails before any point is taken, naming the plugin and the key.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq sha256sum
start_libvirtd

dom=vmbk-t-vmdk
create_guest "$dom"
repo=$TMPDIR_TEST/repo
vda=$(guest_disk_path "$dom" vda)
export VMBK_STATE_DIR=$TMPDIR_TEST/state   # where the scratch raw images go
MiB=$((1024 * 1024))
t0=$SECONDS

# point N LEVEL PLUGIN-ARG: take the reference, back up with the plugin, check the point's id.
point ()
{
    local id
    guest_reference "$dom" vda "$TMPDIR_TEST/ref$1.qcow2"
    id=$("$VMBK" backup "$dom" -r "$repo" --no-catalog -l "$2" --plugin "$3" \
             2>"$TMPDIR_TEST/err") || fail "backup -l $2 --plugin $3: $(cat "$TMPDIR_TEST/err")"
    [ "$id" = "$(printf %04d "$1")" ] || fail "backup -l $2 printed '$id', not point $1"
    assert_nothing_left "$dom"
    [ -z "$(ls -A "$VMBK_STATE_DIR/jobs" 2>/dev/null)" ] ||
        fail "backup $1 left in the jobs directory: $(ls -AR "$VMBK_STATE_DIR/jobs")"
    echo "point $1 ($2, --plugin $3): $((SECONDS - t0)) s" >&2
}

# check_vmdk N CREATE-TYPE CONFIG: point N's vmdk/vda.vmdk is a VMDK of that create type, alone
# in the plugin's directory, listed with its size and digest and the plugin's CONFIG (JSON), and
# has the reference's content.
check_vmdk ()
{
    local id dir img info sum size
    id=$(printf %04d "$1")
    dir=$repo/$dom/points/$id
    img=$dir/vmdk/vda.vmdk
    [ -f "$img" ] || fail "point $1 has no vmdk/vda.vmdk: $(ls -lR "$dir")"
    [ "$(ls -A "$dir/vmdk")" = vda.vmdk ] || fail "point $1 vmdk/ holds: $(ls -A "$dir/vmdk")"
    info=$(qemu-img info --output=json "$img") || fail "qemu-img info '$img' failed"
    jq -e --arg t "$2" '.format == "vmdk" and ."virtual-size" == 1073741824 and
                        ."format-specific".data."create-type" == $t' <<<"$info" >/dev/null ||
        fail "point $1: not a $2 vmdk of 1 GiB: $info"
    sum=$(tree_digest "$img")
    size=$(stat -c %s "$img")
    "$VMBK" list -r "$repo" "$dom" --json >"$TMPDIR_TEST/list.json"
    jq -e --arg id "$id" --arg sum "$sum" --argjson size "$size" --argjson config "$3" '
        [.[] | select(.point == $id) | .plugins[] | select(.name == "vmdk")] as $p
        | ($p | length) == 1 and $p[0].config == $config
          and ($p[0].outputs | map([.name, .size, .digest.value])) == [["vda.vmdk", $size, $sum]]' \
        "$TMPDIR_TEST/list.json" >/dev/null ||
        fail "point $1: list --json does not show vda.vmdk ($size bytes, $sum) with $3: \
$(jq -c --arg id "$id" '.[] | select(.point == $id) | .plugins' "$TMPDIR_TEST/list.json")"
    assert_same_image "$img" "$TMPDIR_TEST/ref$1.qcow2"
}

point 1 full vmdk
check_vmdk 1 streamOptimized '[]'

# An unknown value or key is refused before anything happens: no point, no checkpoint.
cps=$(virsh checkpoint-list "$dom" --name | sed '/^$/d' | sort)
"$VMBK" list -r "$repo" "$dom" >"$TMPDIR_TEST/list.before"
while read -r arg says <&3; do
    expect_fail 2 "plugin 'vmdk' failed to load: $says" \
        "$VMBK" backup "$dom" -r "$repo" --no-catalog --plugin "$arg"
    "$VMBK" list -r "$repo" "$dom" | cmp -s - "$TMPDIR_TEST/list.before" ||
        fail "backup --plugin $arg changed the point list: $("$VMBK" list -r "$repo" "$dom")"
    [ "$(ls "$repo/$dom/points")" = 0001 ] ||
        fail "backup --plugin $arg left in points/: $(ls -A "$repo/$dom/points")"
    [ "$(virsh checkpoint-list "$dom" --name | sed '/^$/d' | sort)" = "$cps" ] ||
        fail "backup --plugin $arg changed the checkpoints"
done 3<<REFUSED
vmdk:subformat=bogus subformat=bogus: unknown subformat 'bogus'
vmdk:nope=1 nope=1: unknown parameter 'nope'
REFUSED
assert_nothing_left "$dom"

# An incremental point still gets the whole disk.
guest_write "$dom" vda 0xab $((100 * MiB + 12345)) 300000      # not 64 KiB aligned
guest_write "$dom" vda 0xac $((300 * MiB)) $((2 * MiB))
guest_zero "$dom" vda $((300 * MiB + 512 * 1024)) $((1 * MiB)) # zeroes over new data
guest_zero "$dom" vda $((8 * MiB)) $((4 * MiB))                # zeroes over the base's
point 2 inc vmdk
check_vmdk 2 streamOptimized '[]'
assert_image_pattern "$repo/$dom/points/0002/vmdk/vda.vmdk" 0xab $((100 * MiB + 12345)) 300000

guest_write "$dom" vda 0xef $((700 * MiB + 7)) 1000
point 3 inc vmdk:subformat=monolithicSparse,adapter_type=lsilogic
check_vmdk 3 monolithicSparse \
    '[{"key": "subformat", "value": "monolithicSparse"}, {"key": "adapter_type", "value": "lsilogic"}]'
# The descriptor, embedded at the start of a sparse extent, names the adapter.
head -c $((64 * 1024)) "$repo/$dom/points/0003/vmdk/vda.vmdk" |
    grep -aq '^ddb.adapterType = "lsilogic"' ||
    fail "point 3's vmdk descriptor: $(head -c 4096 "$repo/$dom/points/0003/vmdk/vda.vmdk" |
                                       grep -a '^ddb')"

# The earlier points' images are untouched by the later ones, and verify agrees.
assert_same_image "$repo/$dom/points/0001/vmdk/vda.vmdk" "$TMPDIR_TEST/ref1.qcow2"
"$VMBK" verify -r "$repo" "$dom" -q || fail "verify failed"

assert_running "$dom"
assert_disk_source "$dom" vda "$vda"
echo "total: $((SECONDS - t0)) s" >&2
exit 0
