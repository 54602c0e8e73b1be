#!/usr/bin/env bash
# Hostile and odd input: a domain whose name has spaces, quotes, $() and non-ASCII backs up,
# lists, verifies and restores (nothing goes through a shell or is pasted into XML); repository
# paths that are a file, a foreign directory or read-only are refused with a message naming them.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq mount
start_libvirtd

dom='vmbk t $(touch pwned) "q" é'
create_guest "$dom"
repo=$TMPDIR_TEST/repo' with $(x) and spaces'
cd "$TMPDIR_TEST"

guest_reference "$dom" vda ref.qcow2
[ "$("$VMBK" backup "$dom" -r "$repo" -l full)" = 0001 ] || fail "backup of '$dom' failed"
guest_write "$dom" vda 0x21 $((8 * 1024 * 1024)) 4096
guest_reference "$dom" vda ref2.qcow2
[ "$("$VMBK" backup "$dom" -r "$repo" -l inc)" = 0002 ] || fail "inc of '$dom' failed"
[ "$("$VMBK" list -r "$repo" --json | jq -r '.[0].domain')" = "$dom" ] || fail "list mangles the name"
"$VMBK" verify -r "$repo" "$dom" >/dev/null
"$VMBK" restore -r "$repo" "$dom" --point 1 -o "r1 \$(x).raw"
assert_same_image "r1 \$(x).raw" ref.qcow2
"$VMBK" restore -r "$repo" "$dom" -o r2.raw
assert_same_image r2.raw ref2.qcow2
[ ! -e pwned ] && [ ! -e "$repo/pwned" ] || fail "a name went through a shell"
[ "$(stat -c %a "$repo")" = 700 ] || fail "the repository is not 0700"

# Repository paths that cannot be one.
touch afile
expect_fail 1 "the repository '$TMPDIR_TEST/afile' is not a directory" \
    "$VMBK" backup "$dom" -r "$TMPDIR_TEST/afile"
mkdir -p foreign && touch foreign/data
expect_fail 1 "'foreign' is not a vmbk repository" "$VMBK" backup "$dom" -r foreign
[ "$(ls foreign)" = data ] || fail "a foreign directory was written to"
expect_fail 1 "cannot open the repository 'missing'" "$VMBK" list -r missing
mkdir ro
mount -t tmpfs -o ro,size=1M vmbk-ro "$TMPDIR_TEST/ro"
cleanup_fn umount -l "$TMPDIR_TEST/ro"
expect_fail 1 "cannot create the repository '$TMPDIR_TEST/ro/r'.*Read-only file system" \
    "$VMBK" backup "$dom" -r "$TMPDIR_TEST/ro/r"
expect_fail 2 "unknown level 'weekly'" "$VMBK" backup "$dom" -r "$repo" -l weekly
expect_fail 2 "unknown format 'vhd'" "$VMBK" restore -r "$repo" "$dom" -o x --format vhd
[ "$("$VMBK" list -r "$repo" "$dom" --json | jq length)" = 2 ] || fail "bad input changed the repository"
assert_nothing_left "$dom"
assert_running "$dom"
exit 0
