#!/usr/bin/env bash
# The tar plugin's parameters: compress=zstd writes FS.tar.zst, which zstd verifies and tar reads;
# exclude= leaves out a directory by its guest path (with what is under it), names by a pattern
# anywhere, and nothing else: the archive holds every entry the plugin was given but those.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq tar zstd sha256sum
start_libvirtd

dom=vmbk-t-taropt
create_guest "$dom"
repo=$TMPDIR_TEST/repo
t0=$SECONDS

arg='tar:compress=zstd,exclude=/usr/share/doc,exclude=*.bin,exclude=var/cache/'
id=$(VMBK_DEBUG=1 "$VMBK" backup "$dom" -r "$repo" --no-catalog --plugin "$arg" \
         2>"$TMPDIR_TEST/err") || fail "backup --plugin $arg: $(cat "$TMPDIR_TEST/err")"
[ "$id" = 0001 ] || fail "backup printed '$id', not 0001"
assert_nothing_left "$dom"
echo "backup: $((SECONDS - t0)) s" >&2

dir=$repo/$dom/points/0001
[ "$(ls -A "$dir/tar")" = sda1.tar.zst ] || fail "points/0001/tar holds: $(ls -A "$dir/tar")"
archive=$dir/tar/sda1.tar.zst
zstd -q -t "$archive" || fail "zstd -t fails on sda1.tar.zst"
zstd -q -d -c "$archive" | tar -tf - >"$TMPDIR_TEST/list" 2>"$TMPDIR_TEST/tar.err" ||
    fail "tar cannot list sda1.tar.zst: $(cat "$TMPDIR_TEST/tar.err")"
"$VMBK" list -r "$repo" "$dom" --json >"$TMPDIR_TEST/list.json"
jq -e '.[0].plugins[0] | .name == "tar" and (.config | map(select(.key == "compress")) | .[0].value) == "zstd"
       and (.outputs | map(.name)) == ["sda1.tar.zst"]' "$TMPDIR_TEST/list.json" >/dev/null ||
    fail "list --json: $(jq -c '.[0].plugins' "$TMPDIR_TEST/list.json")"

# What was excluded is not there; what is beside it is.
grep -E '^usr/share/doc(/|$)|\.bin$|^var/cache(/|$)' "$TMPDIR_TEST/list" &&
    fail "excluded entries are in the archive"
for f in etc/hostname usr/share/ usr/bin/perl var/ var/lib/dpkg/status srv/data/hello.txt; do
    grep -qx "$f" "$TMPDIR_TEST/list" || fail "the archive lacks $f"
done
# And nothing else is missing: the plugin archived every entry it did not exclude.
counts=$(sed -n 's/.*tar: sda1\.tar\.zst: \([0-9]*\) entries, \([0-9]*\) excluded$/\1 \2/p' \
             "$TMPDIR_TEST/err")
read -r archived excluded <<<"$counts"
[ -n "$archived" ] ||
    fail "the plugin said nothing about what it archived: $(cat "$TMPDIR_TEST/err")"
[ "$(wc -l <"$TMPDIR_TEST/list")" = "$archived" ] ||
    fail "the archive lists $(wc -l <"$TMPDIR_TEST/list") entries; the plugin wrote $archived"
[ "$excluded" -gt 100 ] || fail "only $excluded entries were excluded"

# The data of what is kept is intact.
mkdir "$TMPDIR_TEST/x"
zstd -q -d -c "$archive" | tar -C "$TMPDIR_TEST/x" -xf - srv/data ||
    fail "cannot extract srv/data"
(cd "$TMPDIR_TEST/x/srv/data" && grep -v 'random\.bin' SHA256SUMS | sha256sum --quiet -c -) ||
    fail "srv/data fails its SHA256SUMS"
[ ! -e "$TMPDIR_TEST/x/srv/data/random.bin" ] || fail "random.bin was extracted"

assert_running "$dom"
echo "total: $((SECONDS - t0)) s" >&2
exit 0
