#!/usr/bin/env bash
# ls, cat and copy-out --via appliance: the point's files read in the warm backup appliance (no
# libguestfs launch) are the host path's, byte for byte: ls and ls -l lines, the bytes of a text
# and a binary file, a copied-out tree with its modes, mtimes and symlinks.  Errors name the
# path; nothing stays attached after each command, nor after a SIGTERM in the middle of a cat, nor
# after its reader goes away (a closed pipe); the next command still works.  A guest with /data on
# xfs reads across both filesystems.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq supermin cmp diff mkfifo guestfish
start_libvirtd
use_test_appliance

cleanup_fn "$VMBK" appliance stop
dom=vmbk-test-files-appl
create_guest "$dom"
repo=$TMPDIR_TEST/repo
cd "$TMPDIR_TEST"
elapsed () { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }'; }
via=(--via appliance)

# A point with its inspection (the appliance mounts what it names).
"$VMBK" backup "$dom" -r "$repo" -l full >id 2>err || fail "backup: $(cat err)"
[ "$(cat id)" = 0001 ] || fail "backup printed '$(cat id)'"
p=(-r "$repo" "$dom" --point 0001)

# The host path's answers (a libguestfs launch each).
mkdir host appl
t0=$(date +%s.%N)
"$VMBK" ls "${p[@]}" /etc >host/ls 2>err || fail "ls on the host: $(cat err)"
echo "ls on the host: $(elapsed "$t0") s"
"$VMBK" ls "${p[@]}" -l /etc >host/lsl 2>err || fail "ls -l on the host: $(cat err)"
"$VMBK" ls "${p[@]}" -l /srv/data/hello.txt >host/lsf 2>err || fail "ls -l of a file: $(cat err)"
"$VMBK" cat "${p[@]}" /srv/data/random.bin >host/random.bin 2>err || fail "cat on the host: $(cat err)"
"$VMBK" copy-out "${p[@]}" /etc /srv/data host 2>err || fail "copy-out on the host: $(cat err)"

# The appliance's: the first command starts it.
t0=$(date +%s.%N)
"$VMBK" ls "${p[@]}" "${via[@]}" /etc >appl/ls 2>err || fail "ls --via appliance: $(cat err)"
echo "ls --via appliance (appliance started): $(elapsed "$t0") s"
assert_appliance_clean "after ls"
cmp host/ls appl/ls || fail "ls differs: $(diff host/ls appl/ls | head)"
t0=$(date +%s.%N)
"$VMBK" ls "${p[@]}" "${via[@]}" -l /etc >appl/lsl 2>err || fail "ls -l --via appliance: $(cat err)"
echo "ls -l --via appliance (warm): $(elapsed "$t0") s"
assert_appliance_clean "after ls -l"
cmp host/lsl appl/lsl || fail "ls -l differs: $(diff host/lsl appl/lsl | head)"
grep -q ' os-release -> ' appl/lsl || fail "ls -l shows no symlink target: $(grep os-release appl/lsl)"
"$VMBK" ls "${p[@]}" "${via[@]}" -l /srv/data/hello.txt >appl/lsf 2>err || fail "ls -l of a file: $(cat err)"
cmp host/lsf appl/lsf || fail "ls -l of a file differs: $(cat host/lsf appl/lsf)"

# cat: a text file (what the guest holds), a binary one (the host path's bytes).
t0=$(date +%s.%N)
"$VMBK" cat "${p[@]}" "${via[@]}" /srv/data/hello.txt >appl/hello.txt 2>err || fail "cat: $(cat err)"
echo "cat --via appliance (warm): $(elapsed "$t0") s"
assert_appliance_clean "after cat"
[ "$(cat appl/hello.txt)" = "hello from vmbk" ] || fail "cat hello.txt: $(cat appl/hello.txt)"
"$VMBK" cat "${p[@]}" "${via[@]}" /srv/data/numbers.txt 2>err | cmp - <(seq 1 100000) ||
    fail "cat numbers.txt: $(cat err)"
"$VMBK" cat "${p[@]}" "${via[@]}" /srv/data/random.bin >appl/random.bin 2>err || fail "cat: $(cat err)"
cmp host/random.bin appl/random.bin || fail "cat random.bin differs from the host path's"
(cd host/data && sha256sum --quiet -c SHA256SUMS) || fail "random.bin is not the guest's"
# Through a symlink, as the host path does (/etc/os-release -> ../usr/lib/os-release).
"$VMBK" cat "${p[@]}" "${via[@]}" /etc/os-release 2>err | grep -q '^ID=debian$' ||
    fail "cat through a symlink: $(cat err)"
assert_appliance_clean "after cats"

# copy-out: the same tree, modes, mtimes, owners and symlinks.
t0=$(date +%s.%N)
"$VMBK" copy-out "${p[@]}" "${via[@]}" /etc /srv/data appl 2>err || fail "copy-out: $(cat err)"
echo "copy-out /etc /srv/data --via appliance (warm): $(elapsed "$t0") s"
assert_appliance_clean "after copy-out"
rm appl/ls appl/lsl appl/lsf appl/hello.txt appl/random.bin
rm host/ls host/lsl host/lsf host/random.bin
diff -r --no-dereference host appl >/dev/null || fail "copy-out differs: $(diff -r --no-dereference host appl | head)"
tree () { (cd "$1" && find . -mindepth 1 -printf '%y %m %U %G %T@ %s %p -> %l\n' | sort); }
[ "$(tree host)" = "$(tree appl)" ] || fail "copy-out metadata differs: $(diff <(tree host) <(tree appl) | head)"

# Errors name the problem, and leave nothing attached.
expect_fail 1 "'/srv/data/nope.txt' does not exist at point 0001 of domain '$dom'" \
    "$VMBK" ls "${p[@]}" "${via[@]}" /srv/data/nope.txt
assert_appliance_clean "after a missing path"
expect_fail 1 "'/srv/data' is a directory at point 0001 of domain '$dom'" \
    "$VMBK" cat "${p[@]}" "${via[@]}" /srv/data
assert_appliance_clean "after cat of a directory"
expect_fail 1 "domain '$dom' has no point '0009'" \
    "$VMBK" cat -r "$repo" "$dom" --point 0009 "${via[@]}" /etc/hostname
expect_fail 2 "--point live cannot be read --via appliance" \
    "$VMBK" cat "$dom" --point live "${via[@]}" /etc/hostname
expect_fail 2 "unknown --via 'vm'" "$VMBK" ls "${p[@]}" --via vm /
mkdir dest
expect_fail 1 "'/etc/nope' does not exist at point 0001 of domain '$dom'" \
    "$VMBK" copy-out "${p[@]}" "${via[@]}" /etc/hostname /etc/nope dest
[ -z "$(ls -A dest)" ] || fail "a failed copy-out wrote $(ls -A dest)"
assert_appliance_clean "after a failed copy-out"

# SIGTERM in the middle of a cat: the cleanup runs, nothing stays attached.
mkfifo pipe
"$VMBK" cat "${p[@]}" "${via[@]}" /srv/data/random.bin >pipe 2>err &
pid=$!
exec 3<pipe
head -c 65536 <&3 >/dev/null
sleep 1
kill -TERM $pid
rc=0
wait $pid || rc=$?
exec 3<&-
[ $rc = 1 ] || fail "SIGTERM: exit $rc: $(cat err)"
grep -q "interrupted by signal 15" err || fail "SIGTERM: $(cat err)"
assert_appliance_clean "after SIGTERM mid-cat"

# Its reader goes away: a closed pipe ends the command the same way.
rc=0
"$VMBK" cat "${p[@]}" "${via[@]}" /srv/data/random.bin 2>err | head -c 100 >/dev/null || rc=$?
assert_appliance_clean "after a closed pipe"

# kill -9 in the middle of a cat: the next command detaches the disk and stops the qemu-nbd the
# killed one left serving the point.
mkfifo pipe9
"$VMBK" cat "${p[@]}" "${via[@]}" /srv/data/random.bin >pipe9 2>err &
pid=$!
exec 3<pipe9
head -c 65536 <&3 >/dev/null
kill -KILL $pid
wait $pid || true
exec 3<&-
pgrep -f "qemu-nbd.*$VMBK_STATE_DIR" >/dev/null || fail "kill -9: no qemu-nbd was left to sweep"
"$VMBK" ls "${p[@]}" "${via[@]}" /etc/hostname >/dev/null 2>err || fail "ls after kill -9: $(cat err)"
grep -q "detached disk 'vmbk-vda-" err || fail "the disk the killed cat left was not reported: $(cat err)"
assert_appliance_clean "after kill -9 mid-cat"
! pgrep -af "qemu-nbd.*$VMBK_STATE_DIR" || fail "a qemu-nbd of the killed cat is still running"

# The agent serves the next command as if nothing happened.
"$VMBK" cat "${p[@]}" "${via[@]}" /srv/data/random.bin 2>err | cmp - host/data/random.bin ||
    fail "cat after the interruptions: $(cat err)"
assert_appliance_clean "after the interruptions"
assert_nothing_left "$dom"

# Two filesystems, /data on xfs (mounted without log recovery): the guest's tree across both,
# and DEVICE:PATH, also by the guest's own device name.
tdom=vmbk-test-files-appl2
create_guest "$tdom" --base "$(build_twofs_image)"
"$VMBK" backup "$tdom" -r "$repo" >/dev/null 2>err || fail "backup of the two-filesystem guest: $(cat err)"
q=(-r "$repo" "$tdom")
"$VMBK" ls "${q[@]}" -l /data/docs >host.twofs 2>err || fail "ls -l /data/docs on the host: $(cat err)"
"$VMBK" ls "${q[@]}" -l "${via[@]}" /data/docs >appl.twofs 2>err || fail "ls -l /data/docs: $(cat err)"
cmp host.twofs appl.twofs || fail "ls -l /data/docs differs: $(diff host.twofs appl.twofs)"
grep -Eq '^-rw-r----- +0 +0 +11 .* report.txt$' appl.twofs || fail "ls -l /data/docs: $(cat appl.twofs)"
[ "$("$VMBK" cat "${q[@]}" "${via[@]}" /data/docs/report.txt 2>err)" = "xfs report" ] ||
    fail "cat /data/docs/report.txt: $(cat err)"
[ "$("$VMBK" cat "${q[@]}" "${via[@]}" /root-note.txt 2>err)" = "on the ext4 root" ] ||
    fail "cat /root-note.txt: $(cat err)"
[ "$("$VMBK" cat "${q[@]}" "${via[@]}" /dev/vda2:/docs/sub/deep.txt 2>err)" = deep ] ||
    fail "cat /dev/vda2:/docs/sub/deep.txt: $(cat err)"
assert_appliance_clean "at the end"
assert_nothing_left "$tdom"
exit 0
