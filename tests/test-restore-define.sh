#!/usr/bin/env bash
# restore --define: a new domain from a point, its disks restored (or, with --instant, a new
# overlay on the point's images), which libvirt starts; the repository is left as it was.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq
start_libvirtd

dom=vmbk-test-define
create_guest "$dom"
repo=$TMPDIR_TEST/repo
export VMBK_IMAGES_DIR=$TMPDIR_TEST/images
mkdir -p "$VMBK_IMAGES_DIR"
MiB=$((1024 * 1024))

"$VMBK" backup "$dom" -r "$repo" --no-catalog >/dev/null
guest_write "$dom" vda 0x99 $((30 * MiB)) 12345
guest_reference "$dom" vda "$TMPDIR_TEST/ref.qcow2"
"$VMBK" backup "$dom" -r "$repo" --no-catalog >/dev/null
sums_before=$(find "$repo" -type f -name '*.qcow2' -exec sha256sum {} + | sort)

for mode in copy instant; do
    new=$dom-$mode
    cleanup_fn remove_guest "$new"
    args=()
    [ $mode = instant ] && args=(--instant)
    "$VMBK" restore -r "$repo" "$dom" --define "$new" "${args[@]}" >"$TMPDIR_TEST/out"
    grep -q "domain '$new' defined" "$TMPDIR_TEST/out" || fail "$mode: $(cat "$TMPDIR_TEST/out")"
    disk=$(guest_disk_path "$new" vda)
    [ "$disk" = "$VMBK_IMAGES_DIR/$new-vda.qcow2" ] || fail "$mode: the new domain's disk is $disk"
    assert_same_image "$disk" "$TMPDIR_TEST/ref.qcow2"
    [ "$(virsh domuuid "$new")" != "$(virsh domuuid "$dom")" ] || fail "$mode: same uuid"
    virsh start "$new" >/dev/null || fail "$mode: the restored domain does not start"
    assert_running "$new"
    virsh destroy "$new" >/dev/null
done
[ "$(qemu-img info --output=json "$VMBK_IMAGES_DIR/$dom-instant-vda.qcow2" |
    jq -r '."backing-filename"')" = "$repo/$dom/points/0002/vda.qcow2" ] ||
    fail "the instant domain's overlay is not on the point's image"
[ "$(find "$repo" -type f -name '*.qcow2' -exec sha256sum {} + | sort)" = "$sums_before" ] ||
    fail "restoring changed the repository's images"

expect_fail 1 "a domain named '$dom' exists already" \
    "$VMBK" restore -r "$repo" "$dom" --define "$dom"
expect_fail 2 "give either -o FILE or --define NAME" "$VMBK" restore -r "$repo" "$dom"
assert_running "$dom"
exit 0
