#!/usr/bin/env bash
# The stream plugin: a full and redo files of a running guest (data and zeroes written between
# points) rebuild exactly the guest's content at each point, from the repository (--from stream)
# and from the files alone, read through pipes (so without seeking); files out of order, a
# flipped byte or a cut-short file are refused naming the file, and no output is left.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq od timeout
: "${VMBK_PLUGIN_PATH:=$abs_top_builddir/plugins}"
export VMBK_PLUGIN_PATH
start_libvirtd

dom=vmbk-t-stream
create_guest "$dom"
repo=$TMPDIR_TEST/repo
pts=$repo/$dom/points
vda=$(guest_disk_path "$dom" vda)
MiB=$((1024 * 1024))
t=$TMPDIR_TEST

point() { # point N LEVEL [PLUGIN]: take a reference of vda, back up with the stream plugin
    guest_reference "$dom" vda "$t/ref$1.qcow2"
    id=$("$VMBK" backup "$dom" -r "$repo" --no-catalog -l "$2" --plugin "${3:-stream}")
    [ "$id" = "$(printf %04d "$1")" ] || fail "backup -l $2 printed '$id', not point $1"
    assert_nothing_left "$dom"
}

u64() { # u64 FILE OFFSET: the little-endian 64-bit integer at OFFSET
    od -An -t u8 --endian=little -j "$2" -N 8 "$1" | tr -d ' '
}

str() { # str FILE OFFSET LEN: the NUL-padded string field at OFFSET
    head -c $(($2 + $3)) "$1" | tail -c "$3" | tr -d '\0'
}

trailer() { # trailer FILE FIELD: a trailer field (data_records ... stream_bytes)
    local size off
    size=$(stat -c %s "$1")
    case "$2" in
        data_records) off=8 ;; zero_records) off=16 ;; data_bytes) off=24 ;;
        zero_bytes) off=32 ;; stream_bytes) off=40 ;;
    esac
    u64 "$1" $((size - 128 + off))
}

point 1 full
guest_write "$dom" vda 0xab $((100 * MiB + 12345)) 300000      # not 64 KiB aligned
guest_write "$dom" vda 0xac $((300 * MiB)) $((2 * MiB))
point 2 inc
guest_zero "$dom" vda $((300 * MiB)) $((1 * MiB))              # zeroes over data
guest_write "$dom" vda 0xef $((700 * MiB + 7)) 1000
point 3 inc

# One file per point, a full then redo files that hold what changed, zeroes as ZERO records.
for n in 1 2 3; do
    f=$pts/000$n/stream/vda.stream
    [ -f "$f" ] || fail "point $n has no stream file '$f'"
    [ "$(head -c 8 "$f")" = VMBKSTRM ] || fail "'$f' does not start with the magic"
    [ "$(str "$f" 24 64)" = vda ] || fail "'$f' is not of disk vda"
    [ "$(str "$f" 88 16)" = 000$n ] || fail "'$f' is not of point 000$n"
    [ "$(trailer "$f" stream_bytes)" = $(($(stat -c %s "$f") - 128)) ] ||
        fail "the trailer of '$f' does not count the bytes before it"
done
cp "$pts/0001/stream/vda.stream" "$t/full.stream"
cp "$pts/0002/stream/vda.stream" "$t/redo1.stream"
cp "$pts/0003/stream/vda.stream" "$t/redo2.stream"
[ -z "$(str "$t/full.stream" 104 16)" ] || fail "the full names a parent"
[ "$(str "$t/redo1.stream" 104 16)" = 0001 ] || fail "redo1's parent is not point 0001"
[ "$(str "$t/redo2.stream" 104 16)" = 0002 ] || fail "redo2's parent is not point 0002"
[ "$(u64 "$t/full.stream" 16)" = $((1024 * MiB)) ] || fail "the full does not hold the disk's size"
[ "$(($(trailer "$t/full.stream" data_bytes) + $(trailer "$t/full.stream" zero_bytes)))" = \
    $((1024 * MiB)) ] || fail "the full's records do not cover the disk"
for f in redo1 redo2; do
    [ "$(trailer "$t/$f.stream" data_bytes)" -lt $((8 * MiB)) ] ||
        fail "$f holds $(trailer "$t/$f.stream" data_bytes) bytes of data: more than what changed"
done
[ "$(trailer "$t/redo2.stream" zero_records)" -ge 1 ] ||
    fail "redo2 has no ZERO record for the zeroes the guest wrote"

# The files alone rebuild the disk at the last point.
"$VMBK" restore --stream "$t/full.stream" --stream "$t/redo1.stream" --stream "$t/redo2.stream" \
    -o "$t/out3.raw"
assert_same_image "$t/out3.raw" "$t/ref3.qcow2"
rm -f "$t/out3.raw"

# Through a pipe and fifos, which cannot seek: each file is read in order, once.
mkfifo "$t/fifo1" "$t/fifo2"
timeout 120 cat "$t/redo1.stream" >"$t/fifo1" &
timeout 120 cat "$t/redo2.stream" >"$t/fifo2" &
# shellcheck disable=SC2002 # a pipe, not a file: standard input cannot seek
cat "$t/full.stream" | "$VMBK" restore --stream - --stream "$t/fifo1" --stream "$t/fifo2" \
    -o "$t/pipe.raw"
wait
assert_same_image "$t/pipe.raw" "$t/ref3.qcow2"
rm -f "$t/pipe.raw"

# From the repository: the point's stream and its parents', back to the full.
for n in 1 2 3; do
    "$VMBK" restore -r "$repo" "$dom" --point $n --from stream -o "$t/r$n.raw"
    assert_same_image "$t/r$n.raw" "$t/ref$n.qcow2"
    rm -f "$t/r$n.raw"
done
# The qcow2 chain of the same point agrees.
"$VMBK" restore -r "$repo" "$dom" --point 2 -o "$t/img2.raw"
assert_same_image "$t/img2.raw" "$t/ref2.qcow2"
rm -f "$t/img2.raw"

# Refused, naming the file and the problem, leaving no output.
refused() { # refused PATTERN ARGS...: restore ARGS -o out.raw fails saying PATTERN
    local pattern=$1
    shift
    expect_fail 1 "$pattern" "$VMBK" restore "$@" -o "$t/out.raw"
    [ ! -e "$t/out.raw" ] || fail "a refused restore left '$t/out.raw'"
}
refused "redo2.stream' is the redo file of point 0003 on point 0002, but it follows .* 0001" \
    --stream "$t/full.stream" --stream "$t/redo2.stream" --stream "$t/redo1.stream"
refused "redo1.stream' is a redo file of point 0002 on point 0001, not a full" \
    --stream "$t/redo1.stream" --stream "$t/redo2.stream"
refused "full.stream' is a full stream of point 0001, but only the first" \
    --stream "$t/full.stream" --stream "$t/full.stream"

# A flipped byte in the data of redo1's first DATA record: the SHA-256 in its trailer says so.
cp "$t/redo1.stream" "$t/bad1.stream"
off=512
while [ "$(str "$t/bad1.stream" "$off" 4)" = ZERO ]; do off=$((off + 24)); done
[ "$(str "$t/bad1.stream" "$off" 4)" = DATA ] || fail "redo1 has no DATA record"
off=$((off + 24 + $(u64 "$t/bad1.stream" $((off + 16))) / 2))
byte=$(od -An -t u1 -j "$off" -N 1 "$t/bad1.stream" | tr -d ' ')
printf '%b' "\\x$(printf %02x $((byte ^ 0xff)))" |
    dd of="$t/bad1.stream" bs=1 seek="$off" conv=notrunc status=none
refused "bad1.stream' is damaged: its SHA-256 does not match" \
    --stream "$t/full.stream" --stream "$t/bad1.stream" --stream "$t/redo2.stream"
# shellcheck disable=SC2016 # expanded by the inner shell
expect_fail 1 "stream on standard input is damaged: its SHA-256 does not match" \
    bash -c 'cat "$1" | "$VMBK" restore --stream "$2" --stream - -o "$3"' _ \
    "$t/bad1.stream" "$t/full.stream" "$t/out.raw"
[ ! -e "$t/out.raw" ] || fail "a refused restore from a pipe left '$t/out.raw'"
# A flipped byte in a record's header is caught too, before the trailer.
cp "$t/redo2.stream" "$t/bad2.stream"
printf '\xff' | dd of="$t/bad2.stream" bs=1 seek=$((512 + 15)) conv=notrunc status=none
refused "bad2.stream' is damaged: the record at byte 512" \
    --stream "$t/full.stream" --stream "$t/redo1.stream" --stream "$t/bad2.stream"
# A file cut short (a tape read that stopped early).
head -c $(($(stat -c %s "$t/redo1.stream") - 100)) "$t/redo1.stream" >"$t/short.stream"
refused "short.stream' ends at byte .*: it is truncated" \
    --stream "$t/full.stream" --stream "$t/short.stream"
refused "ref1.qcow2' is not a vmbk stream" --stream "$t/ref1.qcow2"
# A damaged stream in the repository: --from stream names it, and leaves nothing.
cp "$t/bad1.stream" "$pts/0002/stream/vda.stream"
refused "0002/stream/vda.stream' is damaged: its SHA-256 does not match" \
    -r "$repo" "$dom" --point 3 --from stream
cp "$t/redo1.stream" "$pts/0002/stream/vda.stream"
"$VMBK" verify -r "$repo" "$dom" >/dev/null || fail "the repository is not intact once repaired"
refused "point 0003 of domain '$dom' has no disk 'vdb'" \
    -r "$repo" "$dom" --point 3 --from stream --disk vdb

# The plugin's parameters: digest=no still restores; an unknown one is refused by name.
guest_write "$dom" vda 0x5a $((900 * MiB)) 4096
point 4 inc stream:digest=no
[ "$(str "$pts/0004/stream/vda.stream" 104 16)" = 0003 ] || fail "point 4's parent is not 0003"
"$VMBK" restore -r "$repo" "$dom" --point 4 --from stream -o "$t/r4.raw"
assert_same_image "$t/r4.raw" "$t/ref4.qcow2"
rm -f "$t/r4.raw"
expect_fail 2 "unknown parameter 'colour'" \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog --plugin stream:colour=red
[ "$("$VMBK" list -r "$repo" "$dom" --json | jq length)" = 4 ] ||
    fail "a refused backup left a point"
assert_nothing_left "$dom"

assert_running "$dom"
assert_disk_source "$dom" vda "$vda"
exit 0
