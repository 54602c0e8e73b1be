#!/usr/bin/env bash
# The tar plugin: a backup leaves one pax archive of the guest's filesystem whose /etc and /srv
# list the same entries as libguestfs's own tar-out of the disk and extract (tar --xattrs --acls
# -p) to the same trees: types, modes, owners, times, hard and symbolic links, devices, FIFOs,
# names with a newline or not in UTF-8, file digests, extended attributes, access and default
# ACLs.  It is recorded with its digest in the manifest.  An unknown compression or key fails
# before any point is taken, naming the plugin and the key.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq guestfish tar sha256sum getfattr getfacl
start_libvirtd

dom=vmbk-t-tar
create_guest "$dom"
repo=$TMPDIR_TEST/repo
vda=$(guest_disk_path "$dom" vda)
t0=$SECONDS

# Give the guest's filesystem what a tar must carry beyond the base image, with the guest
# stopped, and take the reference in the same libguestfs session: the guest (which idles
# without an OS) does not write to its disk, so this is its content at the point.
virsh destroy "$dom" >/dev/null || fail "cannot stop domain '$dom'"
guestfish --format=qcow2 -a "$vda" -m /dev/sda1 >"$TMPDIR_TEST/guestfish.log" 2>&1 <<GUESTFISH ||
setxattr user.vmbk.note "kept by tar" 11 /srv/data/hello.txt
acl-set-file /srv/data/hello.txt access "u::rw-,u:1234:r--,g::r--,m::r--,o::r--"
acl-set-file /srv/data default "u::rwx,g::r-x,g:555:rwx,m::rwx,o::r-x"
ln /srv/data/hello.txt /srv/data/hello.hard
ln-s hello.txt /srv/data/hello.sym
mkfifo 0640 /srv/data/fifo
mknod-c 0600 1 3 /srv/data/null
write "/srv/data/caf\\xe9.txt" "latin-1 name\\n"
write "/srv/data/two\\nlines" "a newline in the name\\n"
mkdir /srv/data/owned
chown 1234 555 /srv/data/owned
utimens /srv/data/numbers.txt 1700000000 111111111 1700000000 123456789
tar-out /etc "$TMPDIR_TEST/ref-etc.tar" xattrs:true acls:true numericowner:true
tar-out /srv "$TMPDIR_TEST/ref-srv.tar" xattrs:true acls:true numericowner:true
GUESTFISH
    fail "guestfish failed: $(cat "$TMPDIR_TEST/guestfish.log")"
virsh start "$dom" >/dev/null || fail "cannot start domain '$dom'"
wait_for 30 "domain '$dom' to run" assert_running "$dom"
echo "guest prepared, reference taken: $((SECONDS - t0)) s" >&2

id=$("$VMBK" backup "$dom" -r "$repo" --no-catalog --plugin tar 2>"$TMPDIR_TEST/err") ||
    fail "backup --plugin tar: $(cat "$TMPDIR_TEST/err")"
[ "$id" = 0001 ] || fail "backup printed '$id', not 0001"
assert_nothing_left "$dom"
echo "backup: $((SECONDS - t0)) s" >&2

# One archive, for the one filesystem, listed with its size and digest; verify agrees.
dir=$repo/$dom/points/0001
archives=$(ls -A "$dir/tar")
[ "$archives" = sda1.tar ] || fail "points/0001/tar holds '$archives', not sda1.tar"
tarfile=$dir/tar/sda1.tar
sum=$(tree_digest "$tarfile")
size=$(stat -c %s "$tarfile")
"$VMBK" list -r "$repo" "$dom" --json >"$TMPDIR_TEST/list.json"
jq -e --arg sum "$sum" --argjson size "$size" '
    [.[0].plugins[] | select(.name == "tar") | .outputs[] | [.name, .size, .digest.value]]
    == [["sda1.tar", $size, $sum]]' "$TMPDIR_TEST/list.json" >/dev/null ||
    fail "list --json does not show sda1.tar ($size bytes, $sum): \
$(jq -c '.[0].plugins' "$TMPDIR_TEST/list.json")"
"$VMBK" verify -r "$repo" "$dom" -q || fail "verify failed"

# tar lists the whole filesystem, /etc and /srv as the reference does (which names them
# ./PATH, relative to /etc and /srv).
tar -tf "$tarfile" >"$TMPDIR_TEST/list.raw" 2>"$TMPDIR_TEST/tar.err" ||
    fail "tar -tf failed: $(cat "$TMPDIR_TEST/tar.err")"
for f in ./ etc/hostname srv/data/random.bin srv/data/hello.hard usr/bin/ usr/bin/perl; do
    grep -qx "$f" "$TMPDIR_TEST/list.raw" ||
        fail "tar -tf does not list $f: $(head "$TMPDIR_TEST/list.raw")"
done
[ "$(wc -l <"$TMPDIR_TEST/list.raw")" -gt 5000 ] ||
    fail "tar -tf lists only $(wc -l <"$TMPDIR_TEST/list.raw") entries"
grep -E '^(etc|srv)/' "$TMPDIR_TEST/list.raw" | sort >"$TMPDIR_TEST/list.got"
for d in etc srv; do
    tar -tf "$TMPDIR_TEST/ref-$d.tar" 2>/dev/null | sed "s|^\./|$d/|"
done | sort >"$TMPDIR_TEST/list.ref"
diff "$TMPDIR_TEST/list.ref" "$TMPDIR_TEST/list.got" >"$TMPDIR_TEST/list.diff" ||
    fail "the archive's entries differ from the guest's: $(head -20 "$TMPDIR_TEST/list.diff")"
grep -aq 'SCHILY.xattr.user.vmbk.note=kept by tar' "$tarfile" ||
    fail "the archive has no SCHILY.xattr record for user.vmbk.note"
grep -aq 'SCHILY.acl.default=' "$tarfile" || fail "the archive has no SCHILY.acl.default record"

# extract TAR DIR: as root, with owners, modes, xattrs and ACLs.
extract ()
{
    mkdir "$2"
    tar --xattrs --xattrs-include='*' --acls --numeric-owner -C "$2" -xpf "$1" 2>"$2.err" ||
        fail "cannot extract '$1': $(cat "$2.err")"
}

# describe DIR: one line per entry (type, mode, owner, links, size, mtime, path, link target),
# then every xattr and ACL, then the digest of every file, in an order that does not depend on
# the archive's.
describe ()
{
    (
        cd "$1" || exit 1
        find . ! -type d -printf '%y %m %U:%G %n %s %Ts %p -> %l\n' | sort
        find . -type d -printf '%y %m %U:%G %Ts %p\n' | sort
        getfattr -R -P -h -d -m - . 2>/dev/null |
            awk '/^# file: /{ f = $0; next } NF { print f ": " $0 }' | sort
        getfacl -R -P -p --skip-base . 2>/dev/null |
            awk '/^# file: /{ f = $0; next } NF { print f ": " $0 }' | sort
        find . -type f -print0 | sort -z | xargs -0 sha256sum
    )
}

# /etc and /srv extract to the same trees from both.
extract "$tarfile" "$TMPDIR_TEST/got"
mkdir "$TMPDIR_TEST/ref"
for d in etc srv; do
    extract "$TMPDIR_TEST/ref-$d.tar" "$TMPDIR_TEST/ref/$d"
    describe "$TMPDIR_TEST/ref/$d" >"$TMPDIR_TEST/ref-$d.desc"
    describe "$TMPDIR_TEST/got/$d" >"$TMPDIR_TEST/got-$d.desc"
    diff "$TMPDIR_TEST/ref-$d.desc" "$TMPDIR_TEST/got-$d.desc" >"$TMPDIR_TEST/desc.diff" ||
        fail "the extracted /$d differs from the guest's: $(head -30 "$TMPDIR_TEST/desc.diff")"
done
[ "$(wc -l <"$TMPDIR_TEST/got-etc.desc")" -gt 200 ] ||
    fail "only $(wc -l <"$TMPDIR_TEST/got-etc.desc") lines describe the extracted /etc"

# And what the guest was given is there (the comparison above would pass were both without).
got=$TMPDIR_TEST/got
(cd "$got/srv/data" && sha256sum --quiet -c SHA256SUMS) || fail "/srv/data fails its SHA256SUMS"
[ "$(getfattr --absolute-names -n user.vmbk.note --only-values "$got/srv/data/hello.txt")" \
    = "kept by tar" ] ||
    fail "hello.txt lost its xattr: $(getfattr -d "$got/srv/data/hello.txt" 2>&1)"
getfacl -p "$got/srv/data/hello.txt" 2>/dev/null | grep -qx 'user:1234:r--' ||
    fail "hello.txt lost its ACL: $(getfacl -p "$got/srv/data/hello.txt" 2>&1)"
getfacl -p "$got/srv/data" 2>/dev/null | grep -qx 'default:group:555:rwx' ||
    fail "/srv/data lost its default ACL: $(getfacl -p "$got/srv/data" 2>&1)"
[ "$(stat -c '%h %i' "$got/srv/data/hello.hard")" = \
  "$(stat -c '%h %i' "$got/srv/data/hello.txt")" ] ||
    fail "hello.hard is not a hard link of hello.txt"
[ "$(readlink "$got/srv/data/hello.sym")" = hello.txt ] ||
    fail "hello.sym does not point to hello.txt"
[ -p "$got/srv/data/fifo" ] || fail "fifo is not a FIFO"
[ "$(stat -c '%F %t,%T %a' "$got/srv/data/null")" = "character special file 1,3 600" ] ||
    fail "null: $(stat -c '%F %t,%T %a' "$got/srv/data/null")"
[ "$(stat -c %u:%g "$got/srv/data/owned")" = 1234:555 ] ||
    fail "owned: $(stat -c %u:%g "$got/srv/data/owned")"
[ "$(stat -c %Y "$got/srv/data/numbers.txt")" = 1700000000 ] || fail "numbers.txt lost its mtime"
[ "$(cat "$got/srv/data/caf"$'\xe9'".txt")" = "latin-1 name" ] || fail "the latin-1 name is lost"
[ "$(cat "$got/srv/data/two"$'\n'"lines")" = "a newline in the name" ] ||
    fail "the name with a newline is lost"
echo "compared: $((SECONDS - t0)) s" >&2

# An unknown value or key is refused before anything happens.
"$VMBK" list -r "$repo" "$dom" >"$TMPDIR_TEST/list.before"
while read -r arg says <&3; do
    expect_fail 2 "plugin 'tar' failed to load: $says" \
        "$VMBK" backup "$dom" -r "$repo" --no-catalog --plugin "$arg"
    "$VMBK" list -r "$repo" "$dom" | cmp -s - "$TMPDIR_TEST/list.before" ||
        fail "backup --plugin $arg changed the point list: $("$VMBK" list -r "$repo" "$dom")"
    [ "$(ls "$repo/$dom/points")" = 0001 ] ||
        fail "backup --plugin $arg left in points/: $(ls -A "$repo/$dom/points")"
done 3<<REFUSED
tar:compress=bogus compress=bogus: unknown compression 'bogus'
tar:nope=1 nope=1: unknown parameter 'nope'
REFUSED
assert_nothing_left "$dom"
assert_running "$dom"
echo "total: $((SECONDS - t0)) s" >&2
exit 0
