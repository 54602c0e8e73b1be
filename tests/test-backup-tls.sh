#!/usr/bin/env bash
# --export tcp with TLS: libvirt serves the point with the certificates of qemu.conf's
# backup_tls_x509_cert_dir (vmbk turns TLS on by itself when it is set, or with --tls), vmbk
# reads it over nbds:// checking the server against the CA of $VMBK_TLS_DIR; the points equal
# the guest.  The export refuses a plain client; a client trusting another CA fails, saying which
# CA it checked against, and leaves nothing behind.
#
# libvirtd reads /etc/libvirt/qemu.conf only: this test changes it and restarts libvirtd, and puts
# both back at exit.  It runs alone (SERIAL_TESTS).
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq certtool nbdinfo
start_libvirtd

conf=/etc/libvirt/qemu.conf
pki=$TMPDIR_TEST/pki
mkdir -p "$pki/server" "$pki/client" "$pki/other" "$pki/noca"

# cert DIR NAME CA_DIR TEMPLATE-LINES...: a key and a certificate signed by CA_DIR's CA.
cert () {
    local dir=$1 name=$2 ca=$3
    shift 3
    printf '%s\n' "$@" >"$dir/$name.info"
    certtool --generate-privkey --outfile "$dir/$name-key.pem" 2>/dev/null
    certtool --generate-certificate --load-privkey "$dir/$name-key.pem" \
        --load-ca-certificate "$ca/ca-cert.pem" --load-ca-privkey "$ca/ca-key.pem" \
        --template "$dir/$name.info" --outfile "$dir/$name-cert.pem" 2>/dev/null ||
        fail "certtool cannot make $dir/$name-cert.pem"
}
ca () {
    printf 'cn = %s\nca\ncert_signing_key\nexpiration_days = 2\n' "$2" >"$1/ca.info"
    certtool --generate-privkey --outfile "$1/ca-key.pem" 2>/dev/null
    certtool --generate-self-signed --load-privkey "$1/ca-key.pem" --template "$1/ca.info" \
        --outfile "$1/ca-cert.pem" 2>/dev/null || fail "certtool cannot make a CA in $1"
}
ca "$pki/server" "vmbk test CA"
cert "$pki/server" server "$pki/server" "cn = localhost" "dns_name = localhost" \
    "ip_address = 127.0.0.1" tls_www_server encryption_key signing_key "expiration_days = 2"
cp "$pki/server/ca-cert.pem" "$pki/client/"
cert "$pki/client" client "$pki/server" "cn = vmbk client" tls_www_client encryption_key \
    signing_key "expiration_days = 2"
ca "$pki/other" "another CA"
cert "$pki/other" client "$pki/other" "cn = vmbk client" tls_www_client encryption_key \
    signing_key "expiration_days = 2"
cp "$pki/client/client-cert.pem" "$pki/client/client-key.pem" "$pki/noca/"
rm -f "$pki"/*/ca-key.pem
chown -R "$VMBK_QEMU_USER" "$pki/server"   # qemu reads the server's key

# libvirtd with backup TLS, and as it was at exit.
restart_libvirtd () {
    local pid
    pid=$(cat /run/libvirtd.pid 2>/dev/null) || pid=
    if [ -n "$pid" ]; then
        kill "$pid"
        wait_for 30 "libvirtd ($pid) to stop" sh -c "! kill -0 $pid 2>/dev/null"
    fi
    start_libvirtd
}
cp -p "$conf" "$TMPDIR_TEST/qemu.conf.orig"
cleanup_fn restart_libvirtd
cleanup_fn cp -p "$TMPDIR_TEST/qemu.conf.orig" "$conf"
printf '\n# test-backup-tls.sh (removed at its exit)\nbackup_tls_x509_cert_dir = "%s"\n' \
    "$pki/server" >>"$conf"
restart_libvirtd

dom=vmbk-test-tls
create_guest "$dom"
vda=$(guest_disk_path "$dom" vda)
repo=$TMPDIR_TEST/repo
MiB=$((1024 * 1024))
export VMBK_TLS_DIR=$pki/client

elapsed () { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }'; }

# backup N LEVEL ARGS...: over TLS, equal to the guest at the point.
backup () {
    local n=$1 level=$2 t0
    shift 2
    guest_reference "$dom" vda "$TMPDIR_TEST/ref$n.qcow2"
    t0=$(date +%s.%N)
    VMBK_DEBUG=1 "$VMBK" backup "$dom" -r "$repo" --no-catalog -l "$level" "$@" \
        >"$TMPDIR_TEST/id" 2>"$TMPDIR_TEST/err" || fail "backup $*: $(cat "$TMPDIR_TEST/err")"
    echo "backup -l $level $* over TLS: $(elapsed "$t0") s"
    grep -q "export served on 127.0.0.1:[0-9]* with TLS" "$TMPDIR_TEST/err" ||
        fail "backup $* did not serve with TLS: $(cat "$TMPDIR_TEST/err")"
    [ "$(cat "$TMPDIR_TEST/id")" = "$(printf %04d "$n")" ] || fail "point $(cat "$TMPDIR_TEST/id")"
    "$VMBK" restore -r "$repo" "$dom" --point "$(printf %04d "$n")" -o "$TMPDIR_TEST/r.raw"
    assert_same_image "$TMPDIR_TEST/r.raw" "$TMPDIR_TEST/ref$n.qcow2"
    rm -f "$TMPDIR_TEST/r.raw"
    assert_nothing_left "$dom"
}

# TLS because qemu.conf sets backup_tls_x509_cert_dir.
guest_write "$dom" vda 0x3c $((50 * MiB + 3)) 100000
backup 1 full --export tcp:127.0.0.1
guest_write "$dom" vda 0x3d $((60 * MiB)) 70000
# --tls with a qemu.conf vmbk reads elsewhere ($VMBK_QEMU_CONF): the same.
VMBK_QEMU_CONF=/dev/null backup 2 inc --export tcp:127.0.0.1 --tls
# Without TLS on loopback, when asked so (the libvirt here would serve without it).
VMBK_QEMU_CONF=/dev/null VMBK_DEBUG=1 "$VMBK" backup "$dom" -r "$TMPDIR_TEST/plain" --no-catalog \
    --export tcp:127.0.0.1 >/dev/null 2>"$TMPDIR_TEST/err" || fail "plain: $(cat "$TMPDIR_TEST/err")"
grep -q "export served on 127.0.0.1:[0-9]*$" "$TMPDIR_TEST/err" || fail "plain: $(cat "$TMPDIR_TEST/err")"
assert_nothing_left "$dom"

# While the job runs: a plain client is refused, one with the CA and a certificate reads it.
pause=$TMPDIR_TEST/pause
VMBK_DEBUG=1 VMBK_TEST_PAUSE=$pause "$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc \
    --export tcp:127.0.0.1 >/dev/null 2>"$TMPDIR_TEST/err" &
pid=$!
wait_for 120 "the backup to take its point" test -e "$pause"
port=$(sed -n 's/.*export served on 127.0.0.1:\([0-9]*\) with TLS.*/\1/p' "$TMPDIR_TEST/err")
[ -n "$port" ] || fail "no port: $(cat "$TMPDIR_TEST/err")"
! nbdinfo "nbd://127.0.0.1:$port/vda" >"$TMPDIR_TEST/nbdinfo" 2>&1 ||
    fail "a plain client read the TLS export: $(cat "$TMPDIR_TEST/nbdinfo")"
nbdinfo --size "nbds://127.0.0.1:$port/vda?tls-certificates=$pki/client" >"$TMPDIR_TEST/nbdinfo" 2>&1 ||
    fail "a client with the CA cannot read the export: $(cat "$TMPDIR_TEST/nbdinfo")"
rm -f "$pause"
wait $pid || fail "the paused backup: $(cat "$TMPDIR_TEST/err")"
assert_nothing_left "$dom"

# A client that trusts another CA: a clear error, the job ended, no point.
VMBK_TLS_DIR=$pki/other expect_fail 1 \
    "cannot connect to 'nbds://127.0.0.1:[0-9]*/vda'.*over TLS, checking the server against the CA in '$pki/other'" \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog --export tcp:127.0.0.1
cat "$TMPDIR_TEST/expect.err"
assert_nothing_left "$dom"
# No CA at all: refused before the job starts.
VMBK_TLS_DIR=$pki/noca expect_fail 1 "no CA certificate '$pki/noca/ca-cert.pem'" \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog --export tcp:127.0.0.1
# TLS makes a non-loopback address acceptable without --insecure (refused later, by libvirt
# or the bind, not by the check): only the plain one names the address.
VMBK_QEMU_CONF=/dev/null expect_fail 2 "serving the disks on '192.0.2.9' without TLS" \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog --export tcp:192.0.2.9:10809
assert_nothing_left "$dom"
[ "$("$VMBK" list -r "$repo" "$dom" --json | jq length)" = 3 ] || fail "a failed backup made a point"
"$VMBK" verify -r "$repo" "$dom" --point all >/dev/null

# Figures, not assertions: full backups of the same guest (512 MiB of data written) over the unix
# socket, plain TCP and TLS, three of each, interleaved.
guest_write "$dom" vda 0x5e $((100 * MiB)) $((512 * MiB))
for run in 1 2 3; do
    for how in unix tcp tls; do
        case $how in
            unix) args=() conf=/dev/null ;;
            tcp) args=(--export tcp:127.0.0.1) conf=/dev/null ;;
            tls) args=(--export tcp:127.0.0.1 --tls) conf=/dev/null ;;
        esac
        rm -rf "$TMPDIR_TEST/bench"
        t0=$(date +%s.%N)
        VMBK_QEMU_CONF=$conf "$VMBK" backup "$dom" -r "$TMPDIR_TEST/bench" --no-catalog --no-progress \
            -l full "${args[@]}" >/dev/null 2>"$TMPDIR_TEST/err" || fail "$how: $(cat "$TMPDIR_TEST/err")"
        echo "timing: run $run, full backup over $how: $(elapsed "$t0") s"
    done
done
assert_nothing_left "$dom"

assert_running "$dom"
assert_disk_source "$dom" vda "$vda"
