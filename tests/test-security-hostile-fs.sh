#!/usr/bin/env bash
# A hostile guest filesystem (build_hostile_image): symlink loops, symlinks out of the tree
# (../../../../etc/passwd, /etc/shadow, /, /tmp), names with a newline, "-rf", "$(touch pwned)",
# 255 bytes, non-UTF-8 bytes, a fifo and device nodes, next to an ext4 whose superblock is
# garbage and a partition with no filesystem.  The backup with its catalog succeeds and warns
# naming the filesystem it cannot read; find and ls list every name byte for byte; copy-out of
# the whole tree writes only below DEST (symlinks recreated, never followed; devices skipped with
# a message; nothing written through a symlink it made); cat of a symlink loop fails naming it.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq sqlite3 mkfs.ext4 sfdisk timeout od
start_libvirtd

dom=vmbk-t-hostile
img=$(build_hostile_image)
create_guest "$dom" --base "$img"
repo=$TMPDIR_TEST/repo
cd "$TMPDIR_TEST"
t0=$SECONDS

# What the guest's filesystem holds, built again on the host to compare with.
mkdir tree
hostile_tree "$TMPDIR_TEST/tree"
host_sums=$(sha256sum /etc/passwd /etc/shadow)

# hexlines: NUL-terminated records on stdin, printed one a line in hex, sorted (names may hold
# newlines and bytes that are not UTF-8).
hexlines ()
{
    local rec
    while IFS= read -r -d '' rec; do
        printf '%s' "$rec" | od -An -v -tx1 | tr -d ' \n'
        echo
    done | sort
}

# assert_untouched: nothing written outside the directories the test gave vmbk.
assert_untouched ()
{
    [ "$(sha256sum /etc/passwd /etc/shadow)" = "$host_sums" ] || fail "/etc/passwd or /etc/shadow changed"
    [ ! -e /tmp/vmbk-hostile-pwned ] && [ ! -e /etc/vmbk-hostile-pwned ] ||
        fail "a file was written through a guest symlink"
    [ -z "$(find "$TMPDIR_TEST" / /tmp -maxdepth 1 -name pwned)" ] || fail "a guest name went through a shell"
}

# The backup, with inspection and catalog: complete, with one warning naming sda2.
timeout 300 "$VMBK" backup "$dom" -r "$repo" >id 2>err || fail "backup: $(cat err)"
[ "$(cat id)" = 0001 ] || fail "backup printed '$(cat id)'"
grep -q "warning: the ext4 filesystem '/dev/sda2' of point 0001 of domain '$dom' cannot be mounted: mount_ro: .*; its files are not in the catalog$" err ||
    fail "no warning naming /dev/sda2: $(cat err)"
[ "$(grep -c warning err)" = 1 ] || fail "warnings: $(cat err)"
[ "$(grep -c . err)" = 3 ] || fail "the backup's messages span lines: $(cat err)"
echo "backup with catalog: $((SECONDS - t0)) s" >&2
jq -e '.[0].catalog == true' <("$VMBK" list -r "$repo" "$dom" --json) >/dev/null ||
    fail "point 0001 has no catalog"
cat=$repo/$dom/points/0001/catalog.sqlite
[ "$(sqlite3 "$cat" "SELECT device, type, indexed FROM filesystems ORDER BY device" | tr '\n' ' ')" = \
    "/dev/sda1|ext4|1 /dev/sda2|ext4|0 /dev/sda3|unknown|0 " ] ||
    fail "catalog filesystems: $(sqlite3 "$cat" "SELECT * FROM filesystems")"

# The catalog holds every name of sda1, byte for byte, with its type.
{
    find tree -mindepth 1 -printf '%y %P\0' | while IFS= read -r -d '' rec; do
        case ${rec%% *} in
            f) t=file ;; d) t=directory ;; l) t=symlink ;; p) t=fifo ;; c) t=char ;; b) t=block ;;
            *) fail "unexpected type in '$rec'" ;;
        esac
        printf '/dev/sda1:/%s %s\0' "${rec#* }" "$t"
    done
    printf '/dev/sda1:/lost+found directory\0'
} | hexlines >want.catalog
sqlite3 "$cat" "SELECT lower(hex(path || ' ' || type)) FROM files WHERE device = '/dev/sda1'" |
    sort >have.catalog
diff want.catalog have.catalog >/dev/null || fail "the catalog differs from the guest's tree"

# find: from the catalog only (a backend that cannot launch proves it); a pattern that looks
# like an option after --; JSON stays valid with a newline and non-UTF-8 bytes.
nolaunch=(env LIBGUESTFS_BACKEND=vmbk-no-such-backend)
[ "$("${nolaunch[@]}" "$VMBK" find -r "$repo" -- "$dom" -rf | awk '{ print $NF }')" = /dev/sda1:/names/-rf ] ||
    fail "find -rf"
[ "$("${nolaunch[@]}" "$VMBK" find -r "$repo" "$dom" '*touch pwned*' | awk '{ print $1, $NF }')" = \
    "0001 pwned)" ] || fail "find '*touch pwned*'"
"${nolaunch[@]}" "$VMBK" find -r "$repo" "$dom" '/dev/sda1:/names/*' --json >find.json
[ "$(jq length find.json)" = 11 ] || fail "find --json: $(cat find.json)"
jq -e 'any(.[]; .path == "/dev/sda1:/names/new\nline")' find.json >/dev/null || fail "find: the newline name"
assert_untouched

# ls -l: every odd name, as it is (one launch).
t=$SECONDS
timeout 300 "$VMBK" ls -r "$repo" "$dom" -l /dev/sda1:/names >ls.out 2>err || fail "ls: $(cat err)"
echo "ls: $((SECONDS - t)) s" >&2
for n in ..foo -rf '$(touch pwned)' "$(printf 'L%.0s' {1..255})" $'latin1-\xe9-\xff\xfe' $'tab\there' ' lead'; do
    grep -qF -- " $n" ls.out || fail "ls -l does not show '$n': $(cat ls.out)"
done
grep -q ' new$' ls.out && grep -qx 'line' ls.out || fail "ls -l: the newline name"

# copy-out of the whole filesystem: exactly the guest's tree below DEST, symlinks as symlinks,
# the fifo and devices skipped with a message, nothing next to DEST.
mkdir -p box/dest
t=$SECONDS
timeout 300 "$VMBK" copy-out -r "$repo" "$dom" /dev/sda1:/ box/dest 2>err ||
    fail "copy-out of the whole tree: $(cat err)"
echo "copy-out: $((SECONDS - t)) s" >&2
grep -q "skipped 3 device file(s), fifo(s) or socket(s)" err || fail "copy-out: $(cat err)"
[ "$(ls -A box)" = dest ] || fail "copy-out wrote next to DEST: $(ls -A box)"
find tree -mindepth 1 ! -type p ! -type c ! -type b -printf '%y %m %P -> %l\0' | hexlines >want.tree
find box/dest -mindepth 1 ! -path 'box/dest/lost+found' -printf '%y %m %P -> %l\0' | hexlines >have.tree
diff want.tree have.tree >/dev/null ||
    fail "copy-out differs from the guest's tree (hex): $(diff want.tree have.tree)"
[ "$(readlink box/dest/escape/passwd)" = ../../../../etc/passwd ] && [ "$(readlink box/dest/loop/a)" = b ] ||
    fail "symlinks were not recreated as they are"
[ "$(cat box/dest/names/$'new\nline' box/dest/names/$'latin1-\xe9-\xff\xfe')" = $'odd\nodd' ] ||
    fail "copy-out: the content of odd names"
assert_untouched

# A second copy-out whose directory 'tmp' meets the symlink tmp -> /tmp the first one made:
# refused, nothing written through it.
expect_fail 1 "cannot create 'box/dest/tmp': File exists" \
    timeout 300 "$VMBK" copy-out -r "$repo" "$dom" /dev/sda1:/trap/tmp box/dest
[ "$(readlink box/dest/tmp)" = /tmp ] || fail "box/dest/tmp was replaced"
assert_untouched

# cat of a symlink loop fails, naming the path.
t=$SECONDS
expect_fail 1 "'/dev/sda1:/loop/a' at point 0001 of domain '$dom' is a symlink that never resolves" \
    timeout 300 "$VMBK" cat -r "$repo" "$dom" /dev/sda1:/loop/a
echo "cat: $((SECONDS - t)) s" >&2

# --- The same through the warm appliance (--via appliance): the agent resolves every guest path
# below its mount (symlinks and ".." stay in the guest's tree), reads only regular files, never
# blocks on a fifo; the output is the host path's; nothing stays attached.
if ! command -v supermin >/dev/null; then
    echo "supermin not found: the --via appliance part is skipped" >&2
    assert_untouched
    assert_nothing_left "$dom"
    exit 0
fi
use_test_appliance
cleanup_fn "$VMBK" appliance stop
va=(--via appliance)
t=$SECONDS
timeout 300 "$VMBK" ls -r "$repo" "$dom" -l "${va[@]}" /dev/sda1:/names >ls.appl 2>err ||
    fail "ls --via appliance: $(cat err)"
echo "ls --via appliance (appliance started): $((SECONDS - t)) s" >&2
cmp ls.out ls.appl || fail "ls -l --via appliance differs: $(diff ls.out ls.appl)"
assert_appliance_clean "after ls"

# copy-out of the whole filesystem: the host path's tree, byte for byte.
mkdir -p abox/dest
timeout 300 "$VMBK" copy-out -r "$repo" "$dom" "${va[@]}" /dev/sda1:/ abox/dest 2>err ||
    fail "copy-out --via appliance: $(cat err)"
grep -q "skipped 3 device file(s), fifo(s) or socket(s)" err || fail "copy-out --via appliance: $(cat err)"
[ "$(ls -A abox)" = dest ] || fail "copy-out --via appliance wrote next to DEST: $(ls -A abox)"
find abox/dest -mindepth 1 ! -path 'abox/dest/lost+found' -printf '%y %m %P -> %l\0' | hexlines >appl.tree
diff want.tree appl.tree >/dev/null ||
    fail "copy-out --via appliance differs from the guest's tree (hex): $(diff want.tree appl.tree)"
diff -r --no-dereference box/dest abox/dest >/dev/null || fail "copy-out --via appliance differs from the host path's"
assert_appliance_clean "after copy-out"
expect_fail 1 "cannot create 'abox/dest/tmp': File exists" \
    timeout 300 "$VMBK" copy-out -r "$repo" "$dom" "${va[@]}" /dev/sda1:/trap/tmp abox/dest
[ "$(readlink abox/dest/tmp)" = /tmp ] || fail "abox/dest/tmp was replaced"
assert_untouched
assert_appliance_clean "after a refused copy-out"

# Symlinks out of the tree and ".." resolve in the guest's tree, never the appliance's.
[ "$(timeout 120 "$VMBK" cat -r "$repo" "$dom" "${va[@]}" /dev/sda1:/escape/passwd 2>err)" = "guest passwd" ] ||
    fail "cat escape/passwd --via appliance: $(cat err)"
[ "$(timeout 120 "$VMBK" cat -r "$repo" "$dom" "${va[@]}" /dev/sda1:/../../../etc/passwd 2>err)" = "guest passwd" ] ||
    fail "cat /../../../etc/passwd --via appliance: $(cat err)"
[ "$(timeout 120 "$VMBK" ls -r "$repo" "$dom" "${va[@]}" /dev/sda1:/escape/root/etc/ 2>err)" = passwd ] ||
    fail "ls escape/root/etc --via appliance: $(cat err)"
[ "$(timeout 120 "$VMBK" ls -r "$repo" "$dom" "${va[@]}" /dev/sda1:/loop/up/loop/up/etc 2>err)" = passwd ] ||
    fail "ls loop/up/loop/up/etc --via appliance: $(cat err)"
expect_fail 1 "'/dev/sda1:/escape/shadow' is a symlink to '/etc/shadow', which does not exist at point 0001" \
    timeout 120 "$VMBK" cat -r "$repo" "$dom" "${va[@]}" /dev/sda1:/escape/shadow
expect_fail 1 "'/dev/sda1:/loop/a' at point 0001 of domain '$dom' is a symlink that never resolves" \
    timeout 120 "$VMBK" cat -r "$repo" "$dom" "${va[@]}" /dev/sda1:/loop/a
# A fifo and device nodes: refused at once, never opened for reading.
for f in fifo null sda; do
    expect_fail 1 "'/dev/sda1:/special/$f' is not a regular file at point 0001" \
        timeout 60 "$VMBK" cat -r "$repo" "$dom" "${va[@]}" /dev/sda1:/special/$f
done
# A filesystem that cannot be mounted is named.
expect_fail 1 "the ext4 filesystem '/dev/sda2' of point 0001 of domain '$dom' cannot be mounted" \
    timeout 120 "$VMBK" ls -r "$repo" "$dom" "${va[@]}" /dev/sda2:/
assert_untouched
assert_appliance_clean "after the hostile paths"

# A huge sparse file (64 GiB, 1 byte of data), on a point without inspection (--no-catalog):
# copy-out keeps it sparse, cat streams it until its reader stops; nothing hangs or stays.
sdom=vmbk-t-hostile-sparse
mkdir sparse
truncate -s 64G sparse/huge
printf 'X' | dd of=sparse/huge bs=1 seek=$((40 * 1024 * 1024 * 1024)) conv=notrunc status=none
mkfs.ext4 -q -F -d sparse sparse.p1 32M >/dev/null
qemu-img create -q -f raw sparse.raw 40M
printf '%s\n' 'label: dos' 'start=2048, size=65536, type=83' | sfdisk -q sparse.raw >/dev/null
dd if=sparse.p1 of=sparse.raw bs=1M seek=1 conv=notrunc status=none
printf '\xfa\xf4\xeb\xfd' | dd of=sparse.raw bs=1 count=4 conv=notrunc status=none
qemu-img convert -f raw -O qcow2 sparse.raw sparse.qcow2
chmod 0644 sparse.qcow2
create_guest "$sdom" --base "$TMPDIR_TEST/sparse.qcow2"
timeout 300 "$VMBK" backup "$sdom" -r "$repo" --no-catalog >id 2>err || fail "backup of the sparse guest: $(cat err)"
expect_fail 1 "has no saved inspection" \
    timeout 120 "$VMBK" ls -r "$repo" "$sdom" "${va[@]}" /huge
mkdir sdest
t=$SECONDS
timeout 120 "$VMBK" copy-out -r "$repo" "$sdom" "${va[@]}" /dev/sda1:/huge sdest 2>err ||
    fail "copy-out of a huge sparse file: $(cat err)"
echo "copy-out of a 64 GiB sparse file --via appliance: $((SECONDS - t)) s" >&2
[ "$(stat -c %s sdest/huge)" = $((64 * 1024 * 1024 * 1024)) ] || fail "size of the sparse copy: $(stat -c %s sdest/huge)"
[ "$(du -k sdest/huge | cut -f1)" -lt 1024 ] || fail "the sparse copy takes $(du -k sdest/huge | cut -f1) KiB"
[ "$(dd if=sdest/huge bs=1 skip=$((40 * 1024 * 1024 * 1024)) count=1 status=none)" = X ] ||
    fail "the sparse copy lost its data"
assert_appliance_clean "after copy-out of a sparse file"
timeout 120 "$VMBK" cat -r "$repo" "$sdom" "${va[@]}" /dev/sda1:/huge 2>err | head -c 1048576 >sparse.head || true
cmp sparse.head <(head -c 1048576 /dev/zero) || fail "cat of a sparse file: $(cat err)"
assert_appliance_clean "after cat of a sparse file, its reader gone"
assert_nothing_left "$sdom"

assert_untouched
assert_nothing_left "$dom"
assert_running "$dom"
echo "total: $((SECONDS - t0)) s" >&2
exit 0
