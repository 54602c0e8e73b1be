#!/usr/bin/env bash
# Bad input: malformed command lines exit 2 naming the problem (unknown option, missing option
# argument, missing or extra argument, a --point that is not an id); a shut-off domain, a --disk
# it does not have and a --point it does not have exit 1 naming them, and change nothing; verify
# --point of a point whose manifest is damaged says it is damaged; cat of a dangling symlink says
# where it points; a repository path with a trailing slash or relative to the current directory
# is the same repository.  (-l inc of a raw disk: test-backup-snapshot.sh.)
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq
start_libvirtd

dom=vmbk-t-badinput
create_guest "$dom"
repo=$TMPDIR_TEST/repo
cd "$TMPDIR_TEST"
t0=$SECONDS
[ "$("$VMBK" backup "$dom" -r "$repo" --no-catalog)" = 0001 ] || fail "backup 1"
[ "$("$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc)" = 0002 ] || fail "backup 2"
nolaunch=(env LIBGUESTFS_BACKEND=vmbk-no-such-backend)

# repo_state: what a refused command must leave as it was.
repo_state ()
{
    find "$repo" -printf '%p %s %T@\n' | sort
}
repo_state >repo.before

# Malformed command lines: exit 2, naming the problem.
expect_fail 2 "backup: Unknown option --bogus" "$VMBK" backup "$dom" -r "$repo" --bogus
expect_fail 2 "verify: Unknown option -x" "$VMBK" verify -r "$repo" "$dom" -x
expect_fail 2 "backup: Missing argument for -r" "$VMBK" backup "$dom" -r
expect_fail 2 "verify: Missing argument for --point" "$VMBK" verify -r "$repo" "$dom" --point
expect_fail 2 "restore: Missing argument for -o" "$VMBK" restore -r "$repo" "$dom" -o
expect_fail 2 "backup: missing argument; usage: vmbk backup DOMAIN" "$VMBK" backup -r "$repo"
expect_fail 2 "ls: missing argument; usage: vmbk ls" "$VMBK" ls -r "$repo" "$dom"
expect_fail 2 "backup: unexpected argument 'extra'" "$VMBK" backup "$dom" extra -r "$repo"
expect_fail 2 "verify: unexpected argument 'x'" "$VMBK" verify -r "$repo" "$dom" x
expect_fail 2 "restore: give either -o FILE or --define NAME" "$VMBK" restore -r "$repo" "$dom"
expect_fail 2 "backup: no repository given; pass -r REPO" "$VMBK" backup "$dom"
for p in abc -1 '' 2x latest2; do
    expect_fail 2 "'$p' is not a point id; give --point a number from 'vmbk list', or latest" \
        "$VMBK" verify -r "$repo" "$dom" --point "$p"
done
expect_fail 2 "'abc' is not a point id" "$VMBK" restore -r "$repo" "$dom" --point abc -o r.raw
expect_fail 2 "'abc' is not a point id" "${nolaunch[@]}" "$VMBK" ls -r "$repo" "$dom" --point abc /
expect_fail 2 "'abc' is not a point id" "${nolaunch[@]}" "$VMBK" cat -r "$repo" "$dom" --point abc /etc/hostname
expect_fail 2 "'abc' is not a point id" "$VMBK" index -r "$repo" "$dom" --point abc
expect_fail 2 "'abc' is not a point id" "$VMBK" inspect -r "$repo" "$dom" --point abc

# A point the domain does not have: exit 1, naming it; no appliance started for ls.
expect_fail 1 "domain '$dom' has no point '9'; 'vmbk list' shows its points" \
    "$VMBK" verify -r "$repo" "$dom" --point 9
expect_fail 1 "domain '$dom' has no point '0009'" "$VMBK" restore -r "$repo" "$dom" --point 0009 -o r.raw
expect_fail 1 "domain '$dom' has no point '9'" "${nolaunch[@]}" "$VMBK" ls -r "$repo" "$dom" --point 9 /
[ ! -e r.raw ] || fail "a refused restore left its output"

# A disk the domain does not have.
expect_fail 1 "domain '$dom' has no disk 'vdz'; its disks are: vda" \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog --disk vdz
expect_fail 1 "point 0002 of domain '$dom' has no disk 'vdz'" \
    "$VMBK" restore -r "$repo" "$dom" --disk vdz -o r.raw
repo_state | diff - repo.before >/dev/null || fail "bad input changed the repository"
assert_nothing_left "$dom"

# A damaged manifest: verify, restore and ls --point name the damage, not a missing point.
man=$repo/$dom/points/0002/manifest.xml
cp "$man" manifest.saved
printf '<manifest' >"$man"
expect_fail 1 "point 0002 of domain '$dom' is damaged: cannot parse" "$VMBK" verify -r "$repo" "$dom" --point 2
expect_fail 1 "point 0002 of domain '$dom' is damaged: cannot parse" "$VMBK" verify -r "$repo" "$dom" --point 0002
expect_fail 1 "point 0002 of domain '$dom' is damaged: cannot parse" \
    "$VMBK" restore -r "$repo" "$dom" --point 2 -o r.raw
[ ! -e r.raw ] || fail "restore of a damaged point wrote a file"
expect_fail 1 "point 0002 of domain '$dom' is damaged" "$VMBK" ls -r "$repo" "$dom" --point 2 /
"$VMBK" verify -r "$repo" "$dom" --point 1 >/dev/null 2>&1 || fail "point 1 should still verify"
cp manifest.saved "$man"

# The same repository through a trailing slash, a relative path, and ../.
guest_reference "$dom" vda ref.qcow2
[ "$("$VMBK" backup "$dom" -r "repo/" --no-catalog -l inc)" = 0003 ] || fail "backup -r repo/"
[ "$("$VMBK" list -r ./repo// "$dom" --json | jq -r 'map(.point) | join(" ")')" = "0001 0002 0003" ] ||
    fail "list -r ./repo//"
mkdir sub
(cd sub && "$VMBK" verify -r ../repo/ "$dom" --point latest -q) || fail "verify -r ../repo/"
(cd sub && "$VMBK" restore -r ../repo "$dom" -o ../r3.raw)
assert_same_image r3.raw ref.qcow2
[ "$(find . -maxdepth 2 -name .vmbk-repo | sort | tr '\n' ' ')" = "./repo/.vmbk-repo " ] ||
    fail "a second repository was made: $(find . -name .vmbk-repo)"

# cat of a dangling symlink (debootstrap's /dev/stdin -> /proc/self/fd/0) says where it points.
t=$SECONDS
expect_fail 1 "'/dev/stdin' is a symlink to '/proc/self/fd/0', which does not exist at point 0003 of domain '$dom'" \
    "$VMBK" cat -r "$repo" "$dom" /dev/stdin
echo "cat: $((SECONDS - t)) s" >&2

# A shut-off domain: refused, naming it; nothing is made.
virsh destroy "$dom" >/dev/null
repo_state >repo.before
checkpoints=$(virsh checkpoint-list "$dom" --name)
expect_fail 1 "domain '$dom' is not running; vmbk backs up running domains live (start it with 'virsh start $dom')" \
    "$VMBK" backup "$dom" -r "$repo"
expect_fail 1 "domain '$dom' is not running; --point live browses a running domain" \
    "${nolaunch[@]}" "$VMBK" ls "$dom" --point live /
repo_state | diff - repo.before >/dev/null || fail "backup of a shut-off domain changed the repository"
[ "$(virsh domstate "$dom")" = "shut off" ] || fail "the shut-off domain was started"
[ "$(virsh checkpoint-list "$dom" --name)" = "$checkpoints" ] || fail "checkpoints changed"
echo "total: $((SECONDS - t0)) s" >&2
exit 0
