#!/usr/bin/env bash
# Files at each point, through libguestfs and the catalogs: a file changed with the guest shut
# off between two points reads back at each point with that point's content; copy-out keeps mode
# and mtime; find lists the points where a file exists from the catalogs alone (no appliance);
# inspection says linux/debian; errors name the missing path or point and change nothing.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq guestfish sqlite3
start_libvirtd

dom=vmbk-test-browse
create_guest "$dom"
repo=$TMPDIR_TEST/repo
t0=$SECONDS

# Point 1, inspected and catalogued once committed.
[ "$("$VMBK" backup "$dom" -r "$repo" -l full 2>"$TMPDIR_TEST/err1")" = 0001 ] ||
    fail "backup 1: $(cat "$TMPDIR_TEST/err1")"
grep -q "starting the libguestfs appliance to read point 0001" "$TMPDIR_TEST/err1" ||
    fail "backup 1 did not say what it waits for: $(cat "$TMPDIR_TEST/err1")"
assert_nothing_left "$dom"

# Change the guest's files with it shut off, then back up again.
virsh destroy "$dom" >/dev/null
guestfish -a "$(guest_disk_path "$dom" vda)" -i <<'GF'
write /srv/data/hello.txt "changed at point 2\n"
chmod 0604 /srv/data/hello.txt
touch /srv/data/hello.txt
write /srv/data/created-later.txt "new in point 2\n"
rm /srv/data/random.bin
GF
virsh start "$dom" >/dev/null
wait_for 30 "domain '$dom' to run" assert_running "$dom"
"$VMBK" backup "$dom" -r "$repo" -l inc --json >"$TMPDIR_TEST/p2.json" 2>"$TMPDIR_TEST/err2" ||
    fail "backup 2: $(cat "$TMPDIR_TEST/err2")"
assert_nothing_left "$dom"
echo "backups with catalogs: $((SECONDS - t0)) s" >&2

# backup --json is the list --json object, with inspection and catalog.
"$VMBK" list -r "$repo" "$dom" --json >"$TMPDIR_TEST/list.json"
[ "$(jq -c '.[1]' "$TMPDIR_TEST/list.json")" = "$(jq -c . "$TMPDIR_TEST/p2.json")" ] ||
    fail "backup --json differs from list --json"
jq -e 'all(.[]; .catalog == true and .inspection.type == "linux"
            and .inspection.distro == "debian" and .inspection.mountpoints["/"] == "/dev/sda1")' \
    "$TMPDIR_TEST/list.json" >/dev/null || fail "list --json: $(jq -c 'map(.inspection)' "$TMPDIR_TEST/list.json")"
"$VMBK" inspect -r "$repo" "$dom" --point 0001 >"$TMPDIR_TEST/inspect.out"
grep -Eq '^os: +linux$' "$TMPDIR_TEST/inspect.out" && grep -Eq '^distro: +debian$' "$TMPDIR_TEST/inspect.out" ||
    fail "inspect: $(cat "$TMPDIR_TEST/inspect.out")"

# The catalog: what changed since the parent, what was deleted.
cat2=$repo/$dom/points/0002/catalog.sqlite
[ "$(sqlite3 "$cat2" "SELECT changed FROM files WHERE path = '/srv/data/hello.txt'")" = 1 ] ||
    fail "hello.txt is not marked changed in point 2"
[ "$(sqlite3 "$cat2" "SELECT changed FROM files WHERE path = '/srv/data/SHA256SUMS'")" = 0 ] ||
    fail "SHA256SUMS is marked changed in point 2"
[ "$(sqlite3 "$cat2" "SELECT path FROM deleted")" = /srv/data/random.bin ] ||
    fail "deleted in point 2: $(sqlite3 "$cat2" "SELECT path FROM deleted")"

# find: from the catalogs only.  A backend that cannot launch proves no appliance is started.
t=$SECONDS
LIBGUESTFS_BACKEND=vmbk-no-such-backend "$VMBK" find -r "$repo" "$dom" hello.txt --json >"$TMPDIR_TEST/find.json"
[ "$(jq -r 'map(.point + ":" + .path) | join(" ")' "$TMPDIR_TEST/find.json")" = \
    "0001:/srv/data/hello.txt 0002:/srv/data/hello.txt" ] || fail "find hello.txt: $(cat "$TMPDIR_TEST/find.json")"
[ "$(jq -r '.[1].size' "$TMPDIR_TEST/find.json")" = 19 ] || fail "find: size at point 2"
out=$(LIBGUESTFS_BACKEND=vmbk-no-such-backend "$VMBK" find -r "$repo" "$dom" '/srv/*/created-*')
[ "$(awk '{ print $1, $NF }' <<<"$out")" = "0002 /srv/data/created-later.txt" ] ||
    fail "find created-later: $out"
echo "find: $((SECONDS - t)) s" >&2

# cat at each point.
t=$SECONDS
[ "$("$VMBK" cat -r "$repo" "$dom" --point 0001 /srv/data/hello.txt 2>/dev/null)" = "hello from vmbk" ] ||
    fail "cat at point 1"
echo "cat: $((SECONDS - t)) s" >&2
[ "$("$VMBK" cat -r "$repo" "$dom" --point 0002 /srv/data/hello.txt 2>/dev/null)" = "changed at point 2" ] ||
    fail "cat at point 2"

# copy-out of a directory and a file, with mode and mtime.
mkdir "$TMPDIR_TEST/out"
"$VMBK" copy-out -r "$repo" "$dom" --point 0002 /srv/data /etc/hostname "$TMPDIR_TEST/out" 2>/dev/null
cmp -s "$TMPDIR_TEST/out/data/hello.txt" <(echo "changed at point 2") || fail "copy-out: hello.txt"
(cd "$TMPDIR_TEST/out/data" && grep ' numbers.txt$' SHA256SUMS | sha256sum --quiet -c) ||
    fail "copy-out: numbers.txt does not match SHA256SUMS"
[ ! -e "$TMPDIR_TEST/out/data/random.bin" ] || fail "copy-out: random.bin was deleted at point 2"
[ "$(cat "$TMPDIR_TEST/out/hostname")" = vmbk-guest ] || fail "copy-out: /etc/hostname"
[ "$(stat -c %a "$TMPDIR_TEST/out/data/hello.txt")" = 604 ] || fail "copy-out: mode of hello.txt"
mtime=$(sqlite3 "$cat2" "SELECT mtime FROM files WHERE path = '/srv/data/hello.txt'")
[ "$(stat -c %Y "$TMPDIR_TEST/out/data/hello.txt")" = "$mtime" ] || fail "copy-out: mtime of hello.txt"
mtime=$(sqlite3 "$cat2" "SELECT mtime FROM files WHERE path = '/srv/data'")
[ "$(stat -c %Y "$TMPDIR_TEST/out/data")" = "$mtime" ] || fail "copy-out: mtime of /srv/data"
# Nothing is overwritten.
expect_fail 1 "cannot create '$TMPDIR_TEST/out/hostname': File exists" \
    "$VMBK" copy-out -r "$repo" "$dom" /etc/hostname "$TMPDIR_TEST/out"

# ls -l, and errors: a missing path, a missing point (no launch), nothing changed.
find "$repo" -printf '%p %s %T@\n' | sort >"$TMPDIR_TEST/repo.before"
expect_fail 1 "'/srv/data/nope.txt' does not exist at point 0001 of domain '$dom'" \
    "$VMBK" ls -r "$repo" "$dom" --point 0001 /srv/data/nope.txt
expect_fail 1 "domain '$dom' has no point '0009'" \
    env LIBGUESTFS_BACKEND=vmbk-no-such-backend "$VMBK" cat -r "$repo" "$dom" --point 0009 /etc/hostname
"$VMBK" ls -r "$repo" "$dom" --point 0001 -l /srv/data >"$TMPDIR_TEST/ls.out" 2>/dev/null
grep -Eq '^-rw-r--r-- +0 +0 +16 .* hello.txt$' "$TMPDIR_TEST/ls.out" || fail "ls -l: $(cat "$TMPDIR_TEST/ls.out")"
[ "$(awk '{ print $NF }' "$TMPDIR_TEST/ls.out" | tr '\n' ' ')" = "SHA256SUMS hello.txt numbers.txt random.bin " ] ||
    fail "ls -l names: $(cat "$TMPDIR_TEST/ls.out")"
find "$repo" -printf '%p %s %T@\n' | sort | diff - "$TMPDIR_TEST/repo.before" >/dev/null ||
    fail "browsing changed the repository"

# index rebuilds a catalog; a point without one is still complete.
rm "$repo/$dom/points/0002/catalog.sqlite"
[ "$("$VMBK" list -r "$repo" "$dom" --json | jq '.[1].catalog')" = false ] || fail "catalog: still true"
"$VMBK" verify -r "$repo" "$dom" --point 0002 >/dev/null || fail "verify without a catalog"
assert_running "$dom"
echo "total: $((SECONDS - t0)) s" >&2
exit 0
