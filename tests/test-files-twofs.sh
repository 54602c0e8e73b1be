#!/usr/bin/env bash
# A guest with two filesystems, its /data on xfs: inspection lists both and the guest's
# mountpoints; the catalog covers both; paths follow the guest's mountpoints and DEVICE:PATH
# addresses one filesystem; vmbk mount serves the point read-only through FUSE until
# guestunmount; a guest filesystem that cannot be mounted is reported.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq guestfish guestmount guestunmount sqlite3
start_libvirtd

dom=vmbk-test-twofs
create_guest "$dom" --base "$(build_twofs_image)"
repo=$TMPDIR_TEST/repo
t0=$SECONDS

[ "$("$VMBK" backup "$dom" -r "$repo" 2>"$TMPDIR_TEST/err")" = 0001 ] ||
    fail "backup: $(cat "$TMPDIR_TEST/err")"
grep -q "point 0001 is complete; its catalog failed" "$TMPDIR_TEST/err" &&
    fail "the catalog failed: $(cat "$TMPDIR_TEST/err")"
assert_nothing_left "$dom"
echo "backup with catalog: $((SECONDS - t0)) s" >&2

# Inspection: both filesystems, the guest's mountpoints.
"$VMBK" inspect -r "$repo" "$dom" --json >"$TMPDIR_TEST/insp.json"
jq -e '.distro == "debian" and .hostname == "vmbk-twofs"
       and .mountpoints == {"/": "/dev/sda1", "/data": "/dev/sda2"}
       and (.filesystems | map(.device + "=" + .type) | sort) == ["/dev/sda1=ext4", "/dev/sda2=xfs"]' \
    "$TMPDIR_TEST/insp.json" >/dev/null || fail "inspect: $(cat "$TMPDIR_TEST/insp.json")"

# The catalog has the files of both, at their guest paths.
out=$("$VMBK" find -r "$repo" "$dom" '*.txt' --json | jq -r 'map(.path) | join(" ")')
[ "$out" = "/data/docs/report.txt /data/docs/sub/deep.txt /root-note.txt" ] || fail "find *.txt: $out"
db=$repo/$dom/points/0001/catalog.sqlite
[ "$(sqlite3 "$db" "SELECT mode, size FROM files WHERE path = '/data/docs/report.txt'")" = "416|11" ] ||
    fail "catalog: report.txt: $(sqlite3 "$db" "SELECT * FROM files WHERE path = '/data/docs/report.txt'")"

# Guest paths across both filesystems in one handle, and DEVICE:PATH (the guest's own name
# for it, /dev/vda2, works too).
mkdir "$TMPDIR_TEST/out"
"$VMBK" copy-out -r "$repo" "$dom" /data/docs /root-note.txt "$TMPDIR_TEST/out" 2>/dev/null
[ "$(cat "$TMPDIR_TEST/out/docs/sub/deep.txt")" = deep ] || fail "copy-out: deep.txt"
[ "$(cat "$TMPDIR_TEST/out/root-note.txt")" = "on the ext4 root" ] || fail "copy-out: root-note.txt"
[ "$(stat -c %a "$TMPDIR_TEST/out/docs/report.txt")" = 640 ] || fail "copy-out: mode of report.txt"
[ "$("$VMBK" cat -r "$repo" "$dom" /dev/vda2:/docs/report.txt 2>/dev/null)" = "xfs report" ] ||
    fail "cat DEVICE:PATH"
expect_fail 1 "point 0001 of domain '$dom' has no filesystem '/dev/sdz1'" \
    "$VMBK" cat -r "$repo" "$dom" /dev/sdz1:/x

# mount: read-only FUSE, until guestunmount.
mnt=$TMPDIR_TEST/mnt
mkdir "$mnt"
"$VMBK" mount -r "$repo" "$dom" "$mnt" 2>"$TMPDIR_TEST/err" || fail "mount: $(cat "$TMPDIR_TEST/err")"
unmount_if_mounted () { ! mountpoint -q "$1" || guestunmount "$1"; }
cleanup_fn unmount_if_mounted "$mnt"
[ "$(cat "$mnt/data/docs/report.txt")" = "xfs report" ] || fail "mount: report.txt"
[ "$(cat "$mnt/root-note.txt")" = "on the ext4 root" ] || fail "mount: root-note.txt"
touch "$mnt/data/new" 2>/dev/null && fail "mount: the point is writable"
guestunmount "$mnt" || fail "guestunmount failed"
mountpoint -q "$mnt" && fail "still mounted"

assert_running "$dom"
echo "total: $((SECONDS - t0)) s" >&2
exit 0
