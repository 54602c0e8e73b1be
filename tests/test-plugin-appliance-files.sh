#!/usr/bin/env bash
# File-level plugins run inside the backup appliance (--via appliance --plugin tar): the agent
# mounts the point's filesystems read-only and walks them as the host's runner does, so the tar
# plugin's archive is byte for byte the host path's for the same guest state (hard and symbolic
# links, a FIFO, device nodes, xattrs (the root's too), access and default ACLs, names with a
# newline or not in UTF-8, nanosecond mtimes), and so is every field a plugin is given (the
# badfiles plugin lists them, with a hash of each file as vmbk_read gives it); the example
# plugin, block and file level, gets both, as on the host.  A file-level plugin that fails,
# crashes or hangs (SIGTERM) in the appliance fails the backup naming it, leaves no point, nothing
# mounted in the appliance and nothing attached; the next backup works.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq guestfish tar supermin
start_libvirtd
use_test_appliance

badfiles=$abs_top_builddir/tests/.libs/vmbk-badfiles-plugin.so
via=$TMPDIR_TEST/via
host=$TMPDIR_TEST/host
elapsed () { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }'; }

# assert_nothing_mounted WHEN: the agent's console shows as many unmounts of plugin runs as mounts,
# and at least one.
_mounts_balanced ()
{
    local log=$VMBK_APPLIANCE_DIR/$appliance.console.log m u
    m=$(grep -ac "for plugin run" "$log" || true)
    u=$(grep -ac "unmounted .* of plugin run" "$log" || true)
    [ "$m" -gt 0 ] && [ "$m" = "$u" ]
}
assert_nothing_mounted ()
{
    wait_for 20 "the agent to unmount ($1)" _mounts_balanced
}

cleanup_fn "$VMBK" appliance stop
dom=vmbk-fp-tar
create_guest "$dom"
vda=$(guest_disk_path "$dom" vda)

# What a tar must carry beyond the base image (as test-plugin-tar.sh gives it), written with the
# guest stopped; the guest (which idles without an OS) does not write to its disk afterwards.
virsh destroy "$dom" >/dev/null || fail "cannot stop domain '$dom'"
guestfish --format=qcow2 -a "$vda" -m /dev/sda1 >"$TMPDIR_TEST/guestfish.log" 2>&1 <<GUESTFISH ||
setxattr user.vmbk.note "kept by tar" 11 /srv/data/hello.txt
setxattr user.vmbk.top "root" 4 /
acl-set-file /srv/data/hello.txt access "u::rw-,u:1234:r--,g::r--,m::r--,o::r--"
acl-set-file /srv/data default "u::rwx,g::r-x,g:555:rwx,m::rwx,o::r-x"
ln /srv/data/hello.txt /srv/data/hello.hard
ln-s hello.txt /srv/data/hello.sym
ln-s /etc/passwd /srv/data/abs.sym
mkfifo 0640 /srv/data/fifo
mknod-c 0600 1 3 /srv/data/null
mknod-b 0600 8 1 /srv/data/disk
write "/srv/data/caf\\xe9.txt" "latin-1 name\\n"
write "/srv/data/two\\nlines" "a newline in the name\\n"
mkdir /srv/data/owned
chown 1234 555 /srv/data/owned
chmod 04755 /srv/data/owned
utimens /srv/data/numbers.txt 1700000000 111111111 1700000000 123456789
GUESTFISH
    fail "guestfish failed: $(cat "$TMPDIR_TEST/guestfish.log")"
virsh start "$dom" >/dev/null || fail "cannot start domain '$dom'"
wait_for 30 "domain '$dom' to run" assert_running "$dom"

# The same point through both runners.
t0=$(date +%s.%N)
VMBK_DEBUG=1 "$VMBK" backup "$dom" -r "$via" --no-catalog --via appliance --plugin tar \
    --plugin "$badfiles" --plugin example >"$TMPDIR_TEST/id" 2>"$TMPDIR_TEST/err" ||
    fail "backup --via appliance --plugin tar: $(cat "$TMPDIR_TEST/err")"
echo "backup --via appliance --plugin tar --plugin badfiles --plugin example: $(elapsed "$t0") s"
grep -E "started the appliance|inspected|in the appliance in" "$TMPDIR_TEST/err" || true
[ "$(cat "$TMPDIR_TEST/id")" = 0001 ] || fail "the backup printed '$(cat "$TMPDIR_TEST/id")'"
assert_appliance_clean "after the backup --via appliance"
assert_nothing_mounted "after the backup --via appliance"
assert_nothing_left "$dom"
t0=$(date +%s.%N)
VMBK_DEBUG=1 "$VMBK" backup "$dom" -r "$host" --no-catalog --plugin tar --plugin "$badfiles" \
    --plugin example >/dev/null 2>"$TMPDIR_TEST/err" ||
    fail "backup --plugin tar on the host: $(cat "$TMPDIR_TEST/err")"
echo "backup --via host --plugin tar --plugin badfiles --plugin example: $(elapsed "$t0") s"
grep -E "plugin (tar|badfiles|example): (running|done)" "$TMPDIR_TEST/err" || true

a=$via/$dom/points/0001
b=$host/$dom/points/0001
[ "$(ls "$a/tar")" = sda1.tar ] || fail "points/0001/tar holds '$(ls "$a/tar")' in the appliance's"
# Every field a plugin is given, and what vmbk_read gives, first: a difference is easier to read.
diff "$b/badfiles/files.out" "$a/badfiles/files.out" >"$TMPDIR_TEST/files.diff" ||
    fail "the entries differ (< host, > appliance): $(head -20 "$TMPDIR_TEST/files.diff")"
[ "$(wc -l <"$a/badfiles/files.out")" -gt 5000 ] ||
    fail "badfiles saw only $(wc -l <"$a/badfiles/files.out") entries"
for want in ' 1 [0-9a-f]+ acl=-/- path=srv/data/hello\.(txt|hard) link=srv/data/hello\.(hard|txt)$' \
            'acl=user::rw-,group::r--,other::r--,user:1234:r--,mask::r--/- .*x:user.vmbk.note=11' \
            ' 1,3 0 .* path=srv/data/null ' ' 8,1 0 .* path=srv/data/disk ' \
            '^10[0-7]{3} .* path=srv/data/fifo ' ' m1700000000.123456789 .* path=srv/data/numbers.txt ' \
            '^120777 .* path=srv/data/abs.sym link=/etc/passwd$' \
            '^40[0-7]{3} .* x:user.vmbk.top=4 path=\. link=$'; do
    grep -aqE -e "$want" "$a/badfiles/files.out" || fail "files.out has no line matching '$want'"
done
if cmp -s "$b/tar/sda1.tar" "$a/tar/sda1.tar"; then
    echo "sda1.tar: the same bytes ($(stat -c %s "$a/tar/sda1.tar"))"
else
    tar --full-time -tvf "$b/tar/sda1.tar" >"$TMPDIR_TEST/host.tv" 2>&1
    tar --full-time -tvf "$a/tar/sda1.tar" >"$TMPDIR_TEST/appl.tv" 2>&1
    diff "$TMPDIR_TEST/host.tv" "$TMPDIR_TEST/appl.tv" | head -20
    fail "sda1.tar differs between the appliance and the host: $(cmp "$b/tar/sda1.tar" "$a/tar/sda1.tar")"
fi
# example is block and file level: it gets both, the same as on the host.
[ "$(ls "$a/example")" = "$(printf 'sda1.list\nvda.map')" ] ||
    fail "points/0001/example holds '$(ls "$a/example")' in the appliance's"
diff -r "$b/example" "$a/example" >"$TMPDIR_TEST/example.diff" ||
    fail "example's outputs differ: $(head -20 "$TMPDIR_TEST/example.diff")"
"$VMBK" verify -r "$via" "$dom" -q || fail "verify failed"

# A file-level plugin that fails or crashes in the appliance: the backup fails naming it, no
# point, nothing attached, nothing mounted.
for how in crash=entry fail=fs_end silent=fs_begin; do
    rc=0
    "$VMBK" backup "$dom" -r "$via" --no-catalog -l inc --via appliance \
        --plugin "$badfiles:$how" >/dev/null 2>"$TMPDIR_TEST/err" || rc=$?
    [ $rc = 1 ] || fail "$how: exit $rc: $(cat "$TMPDIR_TEST/err")"
    case $how in
        crash=*) want="plugin 'badfiles' crashed (Segmentation fault) in the appliance, at point 0002" ;;
        fail=*) want="plugin 'badfiles' failed in the appliance at point 0002 .*failing at fs_end, as asked" ;;
        silent=*) want="plugin 'badfiles' failed in the appliance at point 0002 .*fs_begin failed on '/dev/sda1' without saying why" ;;
    esac
    grep -q "$want" "$TMPDIR_TEST/err" || fail "$how: $(cat "$TMPDIR_TEST/err")"
    [ "$(ls "$via/$dom/points")" = 0001 ] || fail "$how: the points are $(ls "$via/$dom/points")"
    [ -z "$(ls -A "$via/$dom" | grep '^\.tmp')" ] || fail "$how: a temporary point is left"
    assert_appliance_clean "after $how"
    assert_nothing_mounted "after $how"
    assert_nothing_left "$dom"
done
appliance_id=$(virsh domid "$appliance")

# SIGTERM while the plugin hangs in an entry: vmbk cancels it and fails saying why; the agent
# unmounts and is free for the next backup at once.
VMBK_DEBUG=1 "$VMBK" backup "$dom" -r "$via" --no-catalog -l inc --via appliance \
    --plugin "$badfiles:hang=entry" >/dev/null 2>"$TMPDIR_TEST/err" &
pid=$!
wait_for 300 "the plugin to run in the appliance" grep -q "running in the appliance" "$TMPDIR_TEST/err"
sleep 2
kill -TERM $pid
rc=0
wait $pid || rc=$?
[ $rc = 1 ] || fail "SIGTERM: exit $rc: $(cat "$TMPDIR_TEST/err")"
grep -q "interrupted by signal 15" "$TMPDIR_TEST/err" || fail "SIGTERM: $(cat "$TMPDIR_TEST/err")"
assert_appliance_clean "after SIGTERM"
assert_nothing_mounted "after SIGTERM"
assert_nothing_left "$dom"
[ "$(virsh domid "$appliance")" = "$appliance_id" ] || fail "the appliance was restarted"

# The next backup through the same appliance works, and its archive is the host's again.
"$VMBK" backup "$dom" -r "$via" --no-catalog -l inc --via appliance --plugin tar \
    >"$TMPDIR_TEST/id" 2>"$TMPDIR_TEST/err" || fail "the next backup: $(cat "$TMPDIR_TEST/err")"
[ "$(cat "$TMPDIR_TEST/id")" = 0002 ] || fail "point $(cat "$TMPDIR_TEST/id")"
cmp "$b/tar/sda1.tar" "$via/$dom/points/0002/tar/sda1.tar" ||
    fail "the next backup's archive differs from the host's"
assert_appliance_clean "at the end"
assert_nothing_mounted "at the end"
assert_nothing_left "$dom"
"$VMBK" verify -r "$via" "$dom" --point all >/dev/null || fail "verify --point all failed"
