# shellcheck shell=bash source-path=SCRIPTDIR
# vmbk tests: helpers sourced by every tests/test-*.sh.
#
#   source "${abs_top_srcdir:-..}/tests/functions.sh"   (or ./functions.sh from srcdir)
#
# Sourcing turns on `set -euo pipefail` (and inherit_errexit, so a failure
# inside $(...) fails the test too).  Tests are run by automake's parallel
# harness from the tests/ build directory; exit 0 = PASS, 77 = SKIP,
# anything else = FAIL.
#
# Environment (from tests/Makefile.am, with defaults for running by hand):
#   VMBK              absolute path of the vmbk binary
#   abs_top_srcdir    top of the source tree
#   abs_top_builddir  top of the build tree
#   VMBK_TEST_CACHE   where built-once fixtures live (default
#                     $abs_top_builddir/tests/.cache)
#
# API (one line each; details above each function):
#   fail MSG...                         print to stderr, exit 1
#   skip MSG...                         print "SKIP: MSG", exit 77
#   requires CMD...                     skip unless every CMD is on $PATH
#   requires_root                       skip unless running as root
#   cleanup_fn CMD [ARGS...]            run CMD at exit (LIFO, always, status kept)
#   wait_for SECS DESC CMD...           poll CMD until it succeeds or fail naming DESC
#   use_test_appliance                  the build tree's appliance, image cached; sets $appliance
#   start_libvirtd                      start virtlogd + libvirtd if needed, wait for them
#   debian_tree                         build/cache a debootstrap minbase tarball; print its path
#   make_guest_image EXTRA_DIR OUT      build a 1 GiB qcow2 (MBR, ext4: tree + EXTRA_DIR, idle boot code)
#   build_base_image                    build/cache the tests' base image (with /srv/data); print its path
#   build_twofs_image                   build/cache a 1 GiB image: ext4 root + xfs /data; print its path
#   guest_domain_xml NAME TYPE DISK...  print a small domain's XML
#   create_guest NAME [--disks N] [--format qcow2|raw] [--base IMAGE]
#                                       define + start a TCG guest on an overlay of the base
#   guest_dir NAME                      the directory holding NAME's disks
#   remove_guest NAME                   destroy + undefine NAME, delete its disks (quiet if absent)
#   guest_disk_path DOM TARGET          current source file of disk TARGET (e.g. vda)
#   guest_qdev DOM TARGET               qdev path of disk TARGET, for the monitor's qemu-io
#   guest_io DOM TARGET CMD             run one qemu-io CMD on the live disk; fail on error
#   guest_write DOM TARGET BYTE OFF LEN write the pattern BYTE as guest I/O would, then flush
#   guest_zero DOM TARGET OFF LEN       write zeroes as guest I/O would, then flush
#   guest_flush DOM TARGET              flush the disk's caches to its image file
#   guest_reference DOM TARGET OUT      write OUT (qcow2) = the disk's current content
#   assert_running DOM                  fail unless DOM is running
#   assert_disk_source DOM TARGET PATH  fail unless DOM's TARGET still runs on PATH
#   assert_same_image A B               fail (showing the mismatch) unless A and B have equal content
#   assert_image_pattern IMG BYTE OFF LEN  fail unless IMG holds BYTE over OFF..OFF+LEN
#   expect_fail CODE PATTERN CMD...     CMD must exit CODE with PATTERN on stderr
#   assert_nothing_left DOM             no job, export, extra disk/image/file/NBD server/socket on DOM
#   tree_digest FILE                    sha256-tree-64k digest of FILE (python3, not vmbk)
#   $TMPDIR_TEST                        per-test temporary directory (qemu-readable), removed at exit

set -euo pipefail
shopt -s inherit_errexit

# --- environment ------------------------------------------------------------

_vmbk_functions_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${abs_top_srcdir:=$(dirname "$_vmbk_functions_dir")}"
: "${abs_top_builddir:=$abs_top_srcdir}"
: "${VMBK:=$abs_top_builddir/hostctl/vmbk}"
: "${VMBK_TEST_CACHE:=$abs_top_builddir/tests/.cache}"
export abs_top_srcdir abs_top_builddir VMBK VMBK_TEST_CACHE

# libguestfs: no libvirt in between, and TCG (nested KVM hangs on our hosts).
export LIBGUESTFS_BACKEND=direct
export LIBGUESTFS_BACKEND_SETTINGS=force_tcg
export LIBVIRT_DEFAULT_URI=qemu:///system

# Where guest disks may live when $VMBK_TEST_CACHE is not reachable by qemu.
VMBK_TEST_SHARED_DIR=${VMBK_TEST_SHARED_DIR:-/var/lib/libvirt/images/vmbk-tests}

# The user libvirt runs qemu as (Debian: libvirt-qemu:kvm).
VMBK_QEMU_USER=${VMBK_QEMU_USER:-libvirt-qemu}

# Bump when the base image recipe changes, so old caches are not reused.
_vmbk_base_version=3

# --- failing and skipping ---------------------------------------------------

# fail MSG...: print "FAIL: MSG" to stderr and exit 1 (from a $(...) too,
# thanks to inherit_errexit in the caller).
fail ()
{
    echo "FAIL: $*" >&2
    exit 1
}

# skip MSG...: print "SKIP: MSG" and exit 77, which automake counts as SKIP.
skip ()
{
    echo "SKIP: $*" >&2
    exit 77
}

# requires CMD...: skip the test unless every CMD is an available command.
requires ()
{
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip "$c not found"
    done
}

# requires_root: skip the test unless running as root.
requires_root ()
{
    [ "$(id -u)" -eq 0 ] || skip "this test must run as root"
}

# --- cleanup ----------------------------------------------------------------

_vmbk_cleanups=()

# cleanup_fn CMD [ARGS...]: run CMD ARGS at exit, whether the test passes,
# fails or is interrupted.  Commands run last-registered first; each runs
# even if an earlier one failed; the test's exit status is kept.
cleanup_fn ()
{
    local quoted
    printf -v quoted '%q ' "$@"
    _vmbk_cleanups+=("$quoted")
}

_vmbk_run_cleanups ()
{
    local status=$? i
    set +e
    trap - EXIT
    for ((i = ${#_vmbk_cleanups[@]} - 1; i >= 0; i--)); do
        # A subshell, so a cleanup that calls exit or fail cannot stop the rest.
        ( eval "${_vmbk_cleanups[i]}" ) || echo "warning: cleanup failed: ${_vmbk_cleanups[i]}" >&2
    done
    _vmbk_cleanups=()
    exit "$status"
}
trap _vmbk_run_cleanups EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# --- waiting and services ---------------------------------------------------

# use_test_appliance: the build tree's appliance (recipe, agent, template), its image cached with
# the tests' other fixtures (its stamp rebuilds it when the recipe, the agent or the host's
# packages change), and this test's own state directory.  Sets $appliance, the domain's name.
use_test_appliance ()
{
    mkdir -p "$VMBK_TEST_CACHE"
    chmod 0755 "$VMBK_TEST_CACHE"
    export VMBK_APPLIANCE_DIR=$VMBK_TEST_CACHE/appliance
    export VMBK_APPLIANCE_RECIPE=$abs_top_srcdir/appliance
    export VMBK_APPLIANCE_XML=$abs_top_srcdir/appliance.xml
    export VMBK_AGENT=$abs_top_builddir/appliance/vmbk-agent
    # Short: the job directories in it hold qemu-nbd's unix sockets (at most 107 bytes).
    VMBK_STATE_DIR=$(mktemp -d /tmp/vmbk-state.XXXXXX)
    chmod 0755 "$VMBK_STATE_DIR"
    export VMBK_STATE_DIR
    cleanup_fn rm -rf "$VMBK_STATE_DIR"
    # Its own appliance: tests that run side by side do not share one.
    export VMBK_APPLIANCE_NAME=vmbk-appl-$$
    appliance=$VMBK_APPLIANCE_NAME
}

# assert_appliance_clean WHEN: only the test appliance's root disk is attached (no vmbk-* disk).
assert_appliance_clean ()
{
    local disks
    disks=$(virsh domblklist "$appliance" | awk 'NR > 2 && $1 != "" { print $1 }')
    [ "$disks" = sda ] || fail "$1: disks left in the appliance: ${disks//$'\n'/ }"
}

# wait_for SECONDS DESCRIPTION CMD...: run CMD every second until it
# succeeds; fail the test naming DESCRIPTION if it has not after SECONDS.
wait_for ()
{
    local secs=$1 desc=$2 deadline
    shift 2
    deadline=$((SECONDS + secs))
    # A subshell, so a CMD that calls fail or exit just counts as "not yet".
    until ( "$@" ) >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "timed out after ${secs}s waiting for $desc"
        sleep 1
    done
}

# start_libvirtd: start virtlogd and libvirtd unless running (the code
# scripts/setup-host.sh uses), and wait up to 60 s for libvirtd to answer.
start_libvirtd ()
{
    requires virsh libvirtd virtlogd
    # shellcheck source=../scripts/services.sh
    . "$abs_top_srcdir/scripts/services.sh"
    VMBK_LIBVIRT_URI=$LIBVIRT_DEFAULT_URI vmbk_start_services 60 ||
        fail "libvirtd is not answering on $LIBVIRT_DEFAULT_URI"
}

# --- the base image ---------------------------------------------------------

# _vmbk_qemu_can_reach DIR: true if the qemu user can traverse and read DIR.
_vmbk_qemu_can_reach ()
{
    setpriv --reuid="$VMBK_QEMU_USER" --regid="$(id -g "$VMBK_QEMU_USER")" \
            --init-groups test -x "$1" -a -r "$1" 2>/dev/null
}

# _vmbk_disk_dir: print the directory for the base image and guest disks:
# $VMBK_TEST_CACHE/disks if qemu can reach it, else $VMBK_TEST_SHARED_DIR.
_vmbk_disk_dir ()
{
    local d=$VMBK_TEST_CACHE/disks
    mkdir -p "$d"
    chmod 0755 "$VMBK_TEST_CACHE" "$d"
    if ! _vmbk_qemu_can_reach "$d"; then
        d=$VMBK_TEST_SHARED_DIR
        mkdir -p "$d"
        chmod 0755 "$d"
        _vmbk_qemu_can_reach "$d" ||
            fail "user '$VMBK_QEMU_USER' cannot reach '$VMBK_TEST_CACHE' nor '$d'"
    fi
    echo "$d"
}

# _vmbk_debian_mirror: the Debian mirror apt uses here (for debootstrap).
_vmbk_debian_mirror ()
{
    local m
    # deb822 .sources files first, then one-line .list files.
    m=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ { print $2; exit }' \
            /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    if [ -z "$m" ]; then
        m=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' \
                /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

# debian_tree: print the path of a tarball of a debootstrap minbase
# bookworm tree, building it the first time (about 30 s; under a lock, so
# concurrent callers wait for one build).
debian_tree ()
{
    local out=$VMBK_TEST_CACHE/bookworm-minbase.tar
    if [ -f "$out" ]; then
        echo "$out"
        return 0
    fi
    requires_root
    requires debootstrap flock
    mkdir -p "$VMBK_TEST_CACHE"
    (
        flock 9
        [ -f "$out" ] && exit 0     # built by another caller while we waited
        local tmp mirror log=$VMBK_TEST_CACHE/debootstrap.log
        mirror=$(_vmbk_debian_mirror)
        tmp=$(mktemp -d "$VMBK_TEST_CACHE/tree.XXXXXX")
        echo "debian_tree: debootstrap --variant=minbase bookworm from $mirror" >&2
        if ! debootstrap --variant=minbase bookworm "$tmp/root" "$mirror" >"$log" 2>&1; then
            rm -rf "$tmp"
            tail -20 "$log" >&2
            fail "debootstrap failed; see '$log'"
        fi
        # Drop what a never-booted guest does not need, to keep images small.
        rm -rf "$tmp/root/var/cache/apt/archives/"*.deb "$tmp/root/var/lib/apt/lists/"*
        tar -C "$tmp/root" --numeric-owner -cf "$out.tmp" .
        rm -rf "$tmp"
        mv "$out.tmp" "$out"
    ) 9>"$VMBK_TEST_CACHE/tree.lock"
    echo "$out"
}

# make_guest_image EXTRA_DIR OUT: build OUT, a 1 GiB qcow2 (compat 1.1)
# with an MBR and one ext4 partition holding the debian_tree plus the
# contents of EXTRA_DIR (copied to /, owned by root).  Its first 4 bytes
# are "cli; hlt; jmp $-1", so a guest started on it idles instead of
# spinning a core looking for an OS.  Takes about a minute (the libguestfs
# appliance under TCG), more the first time supermin builds the appliance.
make_guest_image ()
{
    local extra=$1 out=$2 tree work
    requires virt-make-fs qemu-img
    tree=$(debian_tree)
    work=$(mktemp -d "$(dirname "$out")/.image.XXXXXX")
    cp "$tree" "$work/root.tar"
    # An fstab and a hostname, so that libguestfs inspection (virt-inspector,
    # guestfish -i) recognises the OS; EXTRA_DIR, appended after, may
    # replace them.
    mkdir -p "$work/etc-layer/etc"
    echo '/dev/vda1 / ext4 errors=remount-ro 0 1' >"$work/etc-layer/etc/fstab"
    echo 'vmbk-guest' >"$work/etc-layer/etc/hostname"
    tar -C "$work/etc-layer" --owner=0 --group=0 -rf "$work/root.tar" ./etc/fstab ./etc/hostname
    # EXTRA_DIR's entries, not "." itself, whose mode would replace /'s.
    find "$extra" -mindepth 1 -maxdepth 1 -printf './%f\n' |
        tar -C "$extra" --owner=0 --group=0 -rf "$work/root.tar" -T -

    echo "make_guest_image: virt-make-fs for '$out' (about a minute)" >&2
    if ! virt-make-fs --partition=mbr --type=ext4 --size=1G --format=raw \
            "$work/root.tar" "$work/disk.raw"; then
        rm -rf "$work"
        fail "virt-make-fs failed building '$out'"
    fi
    # Boot code at offset 0; bytes 446..511 (partition table, signature)
    # are left alone.
    printf '\xfa\xf4\xeb\xfd' | dd of="$work/disk.raw" bs=1 count=4 conv=notrunc status=none
    qemu-img convert -f raw -O qcow2 -o compat=1.1 "$work/disk.raw" "$work/disk.qcow2"
    chmod 0644 "$work/disk.qcow2"
    mv "$work/disk.qcow2" "$out"
    rm -rf "$work"
}

# build_base_image: print the path of the tests' guest base image, built
# the first time by make_guest_image with /srv/data holding:
#   hello.txt    "hello from vmbk\n"
#   numbers.txt  seq 1 100000
#   random.bin   4 MiB of random bytes
#   SHA256SUMS   sha256sum of the three, relative to /srv/data
# Built once, under a lock; later calls (concurrent ones too) just print
# the path.
build_base_image ()
{
    local dir base
    requires_root
    dir=$(_vmbk_disk_dir)
    base=$dir/base-v$_vmbk_base_version.qcow2
    if [ -f "$base" ]; then
        echo "$base"
        return 0
    fi
    requires flock
    (
        flock 9
        [ -f "$base" ] && exit 0     # built by another test while we waited
        local data
        data=$(mktemp -d "$VMBK_TEST_CACHE/data.XXXXXX")
        mkdir -p "$data/srv/data"
        echo "hello from vmbk" >"$data/srv/data/hello.txt"
        seq 1 100000 >"$data/srv/data/numbers.txt"
        head -c 4M /dev/urandom >"$data/srv/data/random.bin"
        (cd "$data/srv/data" && sha256sum hello.txt numbers.txt random.bin >SHA256SUMS)
        make_guest_image "$data" "$base"
        rm -rf "$data"
        echo "build_base_image: built '$base'" >&2
    ) 9>"$dir/base.lock"
    echo "$base"
}

# build_twofs_image: print the path of a 1 GiB qcow2 with two filesystems,
# built once (a libguestfs launch) and cached beside the base image:
#   sda1 (200 MiB) ext4: a minimal Linux root for inspection (/etc/fstab,
#                  /etc/os-release of Debian 12, hostname "vmbk-twofs", /bin)
#                  and /root-note.txt "on the ext4 root\n"
#   sda2 (rest)    xfs, mounted at /data by that fstab: /data/docs/report.txt
#                  "xfs report\n" (mode 0640), /data/docs/sub/deep.txt "deep\n"
# Boot code at offset 0 idles a guest started on it, as in make_guest_image.
build_twofs_image ()
{
    local dir out
    requires_root
    requires guestfish qemu-img flock
    dir=$(_vmbk_disk_dir)
    out=$dir/twofs-v1.qcow2
    if [ -f "$out" ]; then
        echo "$out"
        return 0
    fi
    (
        flock 9
        [ -f "$out" ] && exit 0
        local work
        work=$(mktemp -d "$dir/.twofs.XXXXXX")
        qemu-img create -q -f raw "$work/disk.raw" 1G
        echo "build_twofs_image: guestfish for '$out' (about a minute)" >&2
        if ! guestfish -a "$work/disk.raw" >"$work/log" 2>&1 <<'EOF'
run
part-init /dev/sda mbr
part-add /dev/sda p 2048 411647
part-add /dev/sda p 411648 -2048
mkfs ext4 /dev/sda1
mkfs xfs /dev/sda2
mount /dev/sda1 /
mkdir /etc
mkdir /bin
mkdir /data
write /etc/fstab "/dev/vda1 / ext4 defaults 0 1\n/dev/vda2 /data xfs defaults 0 2\n"
write /etc/hosts "127.0.0.1 localhost\n"
write /etc/hostname "vmbk-twofs\n"
write /etc/debian_version "12.0\n"
write /etc/os-release "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n"
write /root-note.txt "on the ext4 root\n"
mount /dev/sda2 /data
mkdir-p /data/docs/sub
write /data/docs/report.txt "xfs report\n"
chmod 0640 /data/docs/report.txt
write /data/docs/sub/deep.txt "deep\n"
umount-all
EOF
        then
            cat "$work/log" >&2
            rm -rf "$work"
            fail "guestfish failed building '$out'"
        fi
        printf '\xfa\xf4\xeb\xfd' | dd of="$work/disk.raw" bs=1 count=4 conv=notrunc status=none
        qemu-img convert -f raw -O qcow2 -o compat=1.1 "$work/disk.raw" "$work/disk.qcow2"
        chmod 0644 "$work/disk.qcow2"
        mv "$work/disk.qcow2" "$out"
        rm -rf "$work"
    ) 9>"$dir/twofs.lock"
    echo "$out"
}

# --- guests -----------------------------------------------------------------

# guest_dir NAME: the directory holding guest NAME's disks.
guest_dir ()
{
    echo "$(_vmbk_disk_dir)/guests/$1"
}

# _vmbk_undefine_flags: the undefine flags this virsh has, so that leftover
# checkpoint and snapshot metadata does not block undefining.
_vmbk_undefine_flags ()
{
    local help f
    help=$(virsh undefine --help 2>/dev/null || true)
    for f in --checkpoints-metadata --snapshots-metadata --nvram; do
        case "$help" in *"$f"*) printf '%s ' "$f" ;; esac
    done
}

# remove_guest NAME: destroy and undefine domain NAME and delete its disk
# directory.  Quiet and harmless when there is nothing to remove.
remove_guest ()
{
    local name=$1 flags
    flags=$(_vmbk_undefine_flags)
    if virsh domstate "$name" >/dev/null 2>&1; then
        # Abort block jobs left by a failed backup, so destroy/undefine work.
        virsh domjobabort "$name" >/dev/null 2>&1 || true
        virsh destroy "$name" >/dev/null 2>&1 || true
        # shellcheck disable=SC2086  # flags are words
        virsh undefine $flags "$name" >/dev/null 2>&1 ||
            virsh undefine "$name" >/dev/null 2>&1 || true
    fi
    rm -rf "$(guest_dir "$name")"
    if virsh domstate "$name" >/dev/null 2>&1; then
        echo "warning: could not remove domain '$name'" >&2
        return 1
    fi
}

# _vmbk_xml_escape STRING: STRING with XML's special characters escaped.
_vmbk_xml_escape ()
{
    # Replacements quoted: bash 5.2 reads an unquoted & there as the match.
    local s=$1
    s=${s//&/"&amp;"}
    s=${s//</"&lt;"}
    s=${s//>/"&gt;"}
    s=${s//\'/"&apos;"}
    s=${s//\"/"&quot;"}
    printf '%s' "$s"
}

# guest_domain_xml NAME TYPE DISK...: print the XML of a domain NAME of
# type TYPE (qemu for TCG, kvm): 256 MiB, 1 vCPU, machine pc with ACPI
# (needed to hot-plug disks), no network, no graphics, no serial console
# (a file there would clash when vmbk defines a copy of the domain).
# DISKs become vda, vdb, ... (virtio), format from their extension (.raw
# is raw, anything else qcow2).
guest_domain_xml ()
{
    local name=$1 type=$2 letters=abcdefghijklmnop i=0 disk fmt
    shift 2
    cat <<EOF
<domain type='$type'>
  <name>$(_vmbk_xml_escape "$name")</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
EOF
    for disk in "$@"; do
        case "$disk" in *.raw) fmt=raw ;; *) fmt=qcow2 ;; esac
        cat <<EOF
    <disk type='file' device='disk'>
      <driver name='qemu' type='$fmt' cache='none' discard='unmap'/>
      <source file='$(_vmbk_xml_escape "$disk")'/>
      <target dev='vd${letters:i:1}' bus='virtio'/>
    </disk>
EOF
        i=$((i + 1))
    done
    cat <<EOF
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

# create_guest NAME [--disks N] [--format qcow2|raw]: define and start a
# persistent domain NAME (type qemu = TCG, 256 MiB, 1 vCPU, machine pc, no
# network, no graphics).  vda holds the base image (a qcow2 overlay on it,
# or with --format raw a raw copy); with --disks 2, vdb is a blank 256 MiB
# disk in that format (--format qcow2,raw: vda qcow2, vdb raw).  A domain
# NAME left by an earlier crashed run is removed first.  Registers cleanup_fn remove_guest NAME.  Prints nothing.
create_guest ()
{
    local name=$1 ndisks=1 format=qcow2 dir base= i target file disks=()
    local letters=abcdefghi
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
            --disks) ndisks=$2; shift 2 ;;
            --format) format=$2; shift 2 ;;
            --base) base=$2; shift 2 ;;
            *) fail "create_guest: unknown option '$1'" ;;
        esac
    done
    # --format F applies to every disk; --format F1,F2,... gives each disk its own.
    local formats=() fmt
    IFS=, read -r -a formats <<<"$format"
    for fmt in "${formats[@]}"; do
        case "$fmt" in qcow2|raw) ;; *) fail "create_guest: --format must be qcow2 or raw" ;; esac
    done
    case "$ndisks" in [1-9]) ;; *) fail "create_guest: --disks must be 1..9" ;; esac

    requires virsh qemu-img jq xmllint
    requires_root
    start_libvirtd
    [ -n "$base" ] || base=$(build_base_image)

    remove_guest "$name" || fail "a stale domain '$name' exists and cannot be removed"
    cleanup_fn remove_guest "$name"

    dir=$(guest_dir "$name")
    mkdir -p "$dir"
    chmod 0755 "$dir"

    for ((i = 0; i < ndisks; i++)); do
        target=vd${letters:i:1}
        format=${formats[i]:-${formats[-1]}}
        file=$dir/$target.$format
        if [ "$i" -eq 0 ] && [ "$format" = qcow2 ]; then
            qemu-img create -q -f qcow2 -o compat=1.1 -b "$base" -F qcow2 "$file"
        elif [ "$i" -eq 0 ]; then
            qemu-img convert -f qcow2 -O raw "$base" "$file"
        else
            qemu-img create -q -f "$format" "$file" 256M
        fi
        disks+=("$file")
    done

    echo "$base" >"$dir/.base"
    guest_domain_xml "$name" qemu "${disks[@]}" >"$dir/domain.xml"
    virsh define "$dir/domain.xml" >/dev/null || fail "cannot define domain '$name'"
    virsh start "$name" >/dev/null || fail "cannot start domain '$name'"
    wait_for 30 "domain '$name' to run" assert_running "$name"
    # What assert_nothing_left compares against later.
    _vmbk_guest_state "$name" >"$dir/.state"
}

# guest_disk_path DOM TARGET: the current source file of disk TARGET.
guest_disk_path ()
{
    local p
    # From the XML, not domblklist's columns: paths may hold spaces.
    p=$(virsh dumpxml "$1" |
        xmllint --xpath "string(/domain/devices/disk[target/@dev='$2']/source/@file)" -)
    [ -n "$p" ] || fail "domain '$1' has no disk '$2'"
    echo "$p"
}

# _vmbk_qmp DOM JSON: run a QMP command, print its JSON answer.
_vmbk_qmp ()
{
    virsh qemu-monitor-command "$1" "$2" || fail "QMP command failed on domain '$1': $2"
}

# guest_qdev DOM TARGET: the qdev path of disk TARGET (for qemu-io -d):
# the query-block entry whose qdev belongs to the disk's device alias in the
# live XML, or failing that whose inserted image is the disk's source file.
guest_qdev ()
{
    local dom=$1 target=$2 alias file json qdev
    alias=$(virsh dumpxml "$dom" |
                xmllint --xpath "string(//devices/disk[target/@dev='$target']/alias/@name)" -)
    file=$(guest_disk_path "$dom" "$target")
    json=$(_vmbk_qmp "$dom" '{"execute":"query-block"}')
    qdev=$(jq -r --arg a "/machine/peripheral/$alias/" --arg f "$file" '
        first(.return[] | select(($a != "/machine/peripheral//" and
                                  ((.qdev // "") | startswith($a))) or
                                 (.inserted.file? == $f)) | .qdev) // empty' <<<"$json")
    [ -n "$qdev" ] || fail "no qdev found for disk '$target' of domain '$dom'"
    echo "$qdev"
}

# Where libvirt (virtlogd) keeps a domain's qemu stdout/stderr.
VMBK_QEMU_LOG_DIR=${VMBK_QEMU_LOG_DIR:-/var/log/libvirt/qemu}

# guest_io DOM TARGET CMD: run the qemu-io command CMD on DOM's disk
# TARGET through the monitor, as guest I/O; print its output; fail if it
# reports an error.
#
# HMP's qemu-io answers on the monitor only for monitor-level errors (no
# such device); what qemu-io itself prints ("wrote ...", "write failed:
# ...") goes to qemu's stdout, which is the domain's log file.  So we note
# the log's size, run CMD, then a marker read of 1 byte at a random offset,
# and take what the log gained up to the marker's line.
guest_io ()
{
    local dom=$1 target=$2 cmd=$3 qdev log start hmp marker out="" i c
    qdev=$(guest_qdev "$dom" "$target")
    log=$VMBK_QEMU_LOG_DIR/$dom.log
    [ -r "$log" ] || fail "no qemu log '$log' for domain '$dom'"
    start=$(stat -c %s "$log")

    marker=$((RANDOM * 512 + RANDOM % 512))
    for c in "$cmd" "read $marker 1"; do
        hmp=$(virsh qemu-monitor-command "$dom" --hmp "qemu-io -d $qdev \"$c\"") ||
            fail "qemu-io '$c' on '$dom' $target: monitor command failed"
        if [ -n "${hmp//[[:space:]]/}" ]; then
            fail "qemu-io '$c' on '$dom' $target: $hmp"
        fi
    done

    # virtlogd copies qemu's output to the log asynchronously: wait for it.
    for ((i = 0; i < 100; i++)); do
        out=$(tail -c +"$((start + 1))" "$log")
        grep -q "^read 1/1 bytes at offset $marker\$" <<<"$out" && break
        sleep 0.1
    done
    grep -q "^read 1/1 bytes at offset $marker\$" <<<"$out" ||
        fail "qemu-io '$cmd' on '$dom' $target: no answer in '$log' after 10s"
    out=$(sed "/^read 1\/1 bytes at offset $marker\$/,\$d" <<<"$out" |
              grep -v 'tainted: custom-monitor' || true)
    if grep -qiE 'error|fail|invalid|cannot|not found|unknown|usage' <<<"$out"; then
        fail "qemu-io '$cmd' on '$dom' $target: $out"
    fi
    printf '%s\n' "$out"
}

# guest_flush DOM TARGET: flush TARGET's caches into its image file.
guest_flush ()
{
    guest_io "$1" "$2" flush >/dev/null
}

# guest_write DOM TARGET BYTE OFFSET LENGTH: write LENGTH bytes of BYTE
# (e.g. 0xab) at OFFSET, as the guest would, then flush.
guest_write ()
{
    local out
    out=$(guest_io "$1" "$2" "write -P $3 $4 $5")
    grep -q '^wrote ' <<<"$out" || fail "qemu-io write on '$1' $2 said: $out"
    guest_flush "$1" "$2"
}

# guest_zero DOM TARGET OFFSET LENGTH: write zeroes, then flush.
guest_zero ()
{
    local out
    out=$(guest_io "$1" "$2" "write -z $3 $4")
    grep -q '^wrote ' <<<"$out" || fail "qemu-io write -z on '$1' $2 said: $out"
    guest_flush "$1" "$2"
}

# guest_reference DOM TARGET OUT: write OUT, a qcow2 whose content is the
# disk's content now (its whole backing chain, read while the guest runs).
guest_reference ()
{
    local dom=$1 target=$2 out=$3 src
    guest_flush "$dom" "$target"
    src=$(guest_disk_path "$dom" "$target")
    rm -f "$out"
    qemu-img convert -U -O qcow2 "$src" "$out" ||
        fail "cannot copy disk '$target' of '$dom' ($src) to reference '$out'"
}

# --- assertions -------------------------------------------------------------

# assert_running DOM: fail unless domain DOM is running.
assert_running ()
{
    local state
    state=$(virsh domstate "$1" 2>&1) || fail "domain '$1' does not exist: $state"
    [ "$state" = running ] || fail "domain '$1' is '$state', expected 'running'"
}

# assert_disk_source DOM TARGET PATH: fail unless DOM's disk TARGET still
# has PATH as its active image, as libvirt and qemu both see it.
assert_disk_source ()
{
    local dom=$1 target=$2 want=$3 have qdev file
    have=$(guest_disk_path "$dom" "$target")
    [ "$have" = "$want" ] ||
        fail "domain '$dom' disk $target runs on '$have', expected '$want'"
    qdev=$(guest_qdev "$dom" "$target")
    file=$(_vmbk_qmp "$dom" '{"execute":"query-block"}' |
               jq -r --arg q "$qdev" '.return[] | select(.qdev == $q) | .inserted.file')
    case "$file" in
        json:*|"") ;;   # qemu shows no plain name: libvirt's view has to do
        "$want") ;;
        *) fail "qemu runs domain '$dom' disk $target on '$file', expected '$want'" ;;
    esac
}

# assert_same_image A B: fail unless images A and B have the same content.
assert_same_image ()
{
    local out rc=0
    out=$(qemu-img compare -U "$1" "$2" 2>&1) || rc=$?
    case "$rc" in
        0) ;;
        1) fail "images differ: '$1' and '$2': $out" ;;
        *) fail "cannot compare '$1' and '$2': $out" ;;
    esac
}

# assert_image_pattern IMG BYTE OFFSET LENGTH: fail unless IMG (any
# format, may be in use) holds BYTE in every byte of OFFSET..OFFSET+LENGTH.
assert_image_pattern ()
{
    local img=$1 byte=$2 off=$3 len=$4 out rc=0
    out=$(qemu-io -r -U -c "read -P $byte $off $len" "$img" 2>&1) || rc=$?
    if grep -q 'Pattern verification failed' <<<"$out"; then
        fail "'$img' does not hold $byte over $len bytes at offset $off: $out"
    fi
    if [ "$rc" -ne 0 ] || ! grep -q '^read ' <<<"$out"; then
        fail "qemu-io cannot read '$img': $out"
    fi
}

# expect_fail CODE PATTERN CMD...: run CMD, which must exit with CODE and
# print a line matching PATTERN (grep basic regex; "" for any) on stderr.
# Its stdout and stderr are left in $TMPDIR_TEST/expect.out and .err.
expect_fail ()
{
    local want=$1 pattern=$2 rc=0
    shift 2
    "$@" >"$TMPDIR_TEST/expect.out" 2>"$TMPDIR_TEST/expect.err" || rc=$?
    [ "$rc" = "$want" ] ||
        fail "'$*' exited $rc, expected $want; stderr: $(cat "$TMPDIR_TEST/expect.err")"
    [ -z "$pattern" ] || grep -q -- "$pattern" "$TMPDIR_TEST/expect.err" ||
        fail "'$*' did not say '$pattern'; stderr: $(cat "$TMPDIR_TEST/expect.err")"
}

# _vmbk_guest_state DOM: what assert_nothing_left compares, one item a
# line: the disks (target and source), and the files in the guest's dir.
_vmbk_guest_state ()
{
    local dom=$1 dir
    dir=$(guest_dir "$dom")
    local t
    # Tab-separated: sources may hold spaces.
    for t in $(virsh domblklist --details "$dom" | awk 'NR > 2 && NF { print $3 }'); do
        printf 'disk\t%s\t%s\n' "$t" "$(guest_disk_path "$dom" "$t")"
    done
    find "$dir" -mindepth 1 -maxdepth 1 ! -name .state ! -name .base -printf 'file %f\n' | sort
}

# assert_nothing_left DOM: fail if a backup or restore left anything
# behind on DOM (made by create_guest): a libvirt or qemu job, an NBD
# export, a disk or an open image that was not there at creation, a new
# file next to its disks, a qemu-nbd/nbdkit process or a socket naming it.
assert_nothing_left ()
{
    local dom=$1 dir json files extra
    dir=$(guest_dir "$dom")
    [ -f "$dir/.state" ] || fail "assert_nothing_left: '$dom' was not made by create_guest"

    json=$(virsh domjobinfo "$dom" 2>&1) || true
    grep -Eq '^Job type: +None' <<<"$json" || fail "domain '$dom' still has a job: $json"
    json=$(_vmbk_qmp "$dom" '{"execute":"query-block-jobs"}')
    [ "$(jq '.return | length' <<<"$json")" = 0 ] ||
        fail "domain '$dom' still has block jobs: $json"
    json=$(_vmbk_qmp "$dom" '{"execute":"query-jobs"}')
    [ "$(jq '.return | length' <<<"$json")" = 0 ] ||
        fail "domain '$dom' still has qemu jobs: $json"
    if json=$(virsh qemu-monitor-command "$dom" '{"execute":"query-block-exports"}' 2>/dev/null); then
        [ "$(jq '.return | length' <<<"$json")" = 0 ] ||
            fail "domain '$dom' still exports over NBD: $json"
    fi

    # Disks and files: as they were when create_guest made the guest.
    extra=$(_vmbk_guest_state "$dom" | sort | comm -13 <(sort "$dir/.state") -)
    [ -z "$extra" ] || fail "left behind on domain '$dom': ${extra//$'\n'/, }"

    # Every image qemu holds open is one of the guest's own (or the base).
    files=$(_vmbk_qmp "$dom" '{"execute":"query-named-block-nodes","arguments":{"flat":true}}' |
                jq -r '.return[].file' | grep -v '^json:' | sort -u)
    extra=$(comm -23 <(echo "$files") \
                <( { cat "$dir/.base" 2>/dev/null || build_base_image; awk -F '\t' '$1 == "disk" { print $3 }' "$dir/.state"; } | sort -u))
    [ -z "$extra" ] || fail "qemu still has open for domain '$dom': ${extra//$'\n'/, }"

    # A repository keeps the domain's images in REPO/DOMAIN/ (a bare "$dom" would also match
    # another test's directory, /tmp/vmbk-test-appliance-tcp.X for vmbk-test-appliance).
    extra=$(pgrep -af 'qemu-nbd|nbdkit' | grep -F -e "/$dom/" -e "$dir" || true)
    [ -z "$extra" ] || fail "NBD servers left running for domain '$dom': $extra"
    extra=$(find /tmp /var/tmp /run -maxdepth 3 -path /run/libvirt -prune -o \
                 -type s -name "*$dom*" -print 2>/dev/null || true)
    [ -z "$extra" ] || fail "sockets left behind for domain '$dom': ${extra//$'\n'/, }"
}

# --- the test's temporary directory ------------------------------------------

# TMPDIR_TEST: an empty directory for this test's files, removed at exit.
# Readable by qemu (mode 0755, reachable by its user), so disks that vmbk
# restores into it can be started as guests.
TMPDIR_TEST=$(mktemp -d "${TMPDIR:-/tmp}/vmbk-$(basename "$0" .sh).XXXXXX")
chmod 0755 "$TMPDIR_TEST"
if [ "$(id -u)" -eq 0 ] && ! _vmbk_qemu_can_reach "$TMPDIR_TEST"; then
    rmdir "$TMPDIR_TEST"
    TMPDIR_TEST=$(mktemp -d "$(_vmbk_disk_dir)/tmp-$(basename "$0" .sh).XXXXXX")
    chmod 0755 "$TMPDIR_TEST"
fi
export TMPDIR_TEST
cleanup_fn rm -rf "$TMPDIR_TEST"

# --- a hostile guest filesystem ---------------------------------------------

# hostile_tree DIR: fill the empty directory DIR with what a hostile guest
# may hold (no appliance; mkfs.ext4 -d copies it into a filesystem):
#   loop/a -> b, loop/b -> a, loop/up -> ..     symlink loops
#   escape/passwd -> ../../../../etc/passwd,
#   escape/shadow -> /etc/shadow, escape/root -> /      symlinks out of the tree
#   etc/passwd        "guest passwd\n" (where escape/passwd lands in the guest)
#   tmp -> /tmp       a symlink at the top, and trap/tmp/vmbk-hostile-pwned, a
#                     directory of the same name that a copy-out must not
#                     write through it
#   names/            files (content "odd\n") named with a newline, "..foo",
#                     "-rf", "$(touch pwned)", 255 bytes, non-UTF-8 bytes,
#                     "*", a backslash, a tab, a leading space, and "~"
#   special/          a fifo, a character device (1,3) and a block device (8,0)
hostile_tree ()
{
    local d=$1 n
    mkdir -p "$d/loop" "$d/escape" "$d/etc" "$d/trap/tmp" "$d/names" "$d/special"
    ln -s b "$d/loop/a"
    ln -s a "$d/loop/b"
    ln -s .. "$d/loop/up"
    ln -s ../../../../etc/passwd "$d/escape/passwd"
    ln -s /etc/shadow "$d/escape/shadow"
    ln -s / "$d/escape/root"
    echo "guest passwd" >"$d/etc/passwd"
    ln -s /tmp "$d/tmp"
    echo "written through a symlink" >"$d/trap/tmp/vmbk-hostile-pwned"
    for n in $'new\nline' ..foo -rf '$(touch pwned)' "$(printf 'L%.0s' {1..255})" \
             $'latin1-\xe9-\xff\xfe' '*' 'back\slash' $'tab\there' ' lead' '~'; do
        echo odd >"$d/names/$n"
    done
    mkfifo "$d/special/fifo"
    mknod "$d/special/null" c 1 3
    mknod "$d/special/sda" b 8 0
}

# build_hostile_image: print the path of a 128 MiB qcow2 (cached beside the
# base image) whose MBR holds three partitions, built without an appliance:
#   sda1 (64 MiB) ext4 holding hostile_tree, label "hostile"
#   sda2 (16 MiB) ext4 (no metadata_csum) whose superblock's first 56 bytes
#                 (counts, block size, ...) are garbage; its magic is intact,
#                 so it is still seen as ext4, but cannot be mounted
#   sda3 (16 MiB) ext4 with its superblock magic zeroed: no filesystem at all
# and the idle boot code of make_guest_image.  No OS: address its files as
# /dev/sda1:/PATH.
build_hostile_image ()
{
    local dir out
    requires_root
    requires mkfs.ext4 sfdisk qemu-img flock
    dir=$(_vmbk_disk_dir)
    out=$dir/hostile-v1.qcow2
    if [ -f "$out" ]; then
        echo "$out"
        return 0
    fi
    (
        flock 9
        [ -f "$out" ] && exit 0
        local work
        work=$(mktemp -d "$dir/.hostile.XXXXXX")
        mkdir "$work/tree" "$work/small"
        hostile_tree "$work/tree"
        echo "not readable" >"$work/small/file"
        mkfs.ext4 -q -F -L hostile -d "$work/tree" "$work/p1" 64M >/dev/null
        mkfs.ext4 -q -F -O ^metadata_csum -d "$work/small" "$work/p2" 16M >/dev/null
        mkfs.ext4 -q -F -d "$work/small" "$work/p3" 16M >/dev/null
        head -c 56 /dev/zero | tr '\0' '\377' |
            dd of="$work/p2" bs=1 seek=1024 conv=notrunc status=none
        head -c 2 /dev/zero | dd of="$work/p3" bs=1 seek=$((1024 + 0x38)) conv=notrunc status=none

        qemu-img create -q -f raw "$work/disk.raw" 128M
        printf '%s\n' 'label: dos' 'start=2048, size=131072, type=83' \
               'start=133120, size=32768, type=83' 'start=165888, size=32768, type=83' |
            sfdisk -q "$work/disk.raw" >/dev/null
        dd if="$work/p1" of="$work/disk.raw" bs=1M seek=1 conv=notrunc status=none
        dd if="$work/p2" of="$work/disk.raw" bs=1M seek=65 conv=notrunc status=none
        dd if="$work/p3" of="$work/disk.raw" bs=1M seek=81 conv=notrunc status=none
        printf '\xfa\xf4\xeb\xfd' | dd of="$work/disk.raw" bs=1 count=4 conv=notrunc status=none
        qemu-img convert -f raw -O qcow2 -o compat=1.1 "$work/disk.raw" "$work/disk.qcow2"
        chmod 0644 "$work/disk.qcow2"
        mv "$work/disk.qcow2" "$out"
        rm -rf "$work"
    ) 9>"$dir/hostile.lock"
    echo "$out"
}

# tree_digest FILE: the sha256-tree-64k digest of FILE (vmbk(1), REPOSITORY), computed here
# independently of vmbk: SHA-256 over "vmbk-tree-v1", the size (8 bytes, little-endian) and the
# SHA-256 of each 64 KiB block in order.
tree_digest ()
{
    requires python3
    python3 - "$1" <<'PY'
import hashlib, os, struct, sys
with open(sys.argv[1], "rb") as f:
    root = hashlib.sha256(b"vmbk-tree-v1" + struct.pack("<Q", os.fstat(f.fileno()).st_size))
    while block := f.read(65536):
        root.update(hashlib.sha256(block).digest())
print(root.hexdigest())
PY
}
