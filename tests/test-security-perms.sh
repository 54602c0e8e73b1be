#!/usr/bin/env bash
# Permissions and helpers.  While a backup is paused mid-copy: its job directory is 0700 and
# owned by the qemu user, no socket or file there, in the repository or in the partial point is
# writable by others, another user can reach none of them, and temporary names carry a suffix
# that changes from run to run; a jobs directory others can write is refused.  A backup with
# its catalog, traced: vmbk's helpers (qemu-img, qemu-nbd) get the repository path as one
# argument, and no shell is ever handed the domain name or the repository path.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires_root
requires qemu-img virsh jq strace setpriv timeout
start_libvirtd

dom=vmbk-t-perms
create_guest "$dom"
repo="$TMPDIR_TEST/repo, with \$(touch pwned) 'q'"
pause=$TMPDIR_TEST/pause
export VMBK_STATE_DIR=$TMPDIR_TEST/state
jobs=$VMBK_STATE_DIR/jobs
uuid=$(virsh domuuid "$dom" | sed '/^$/d')
qemu_uid=$(id -u "$VMBK_QEMU_USER")
umask 022
cd "$TMPDIR_TEST"

# as_nobody CMD...: run CMD as user nobody, without groups.
as_nobody ()
{
    setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups "$@"
}

# assert_private DIR: nothing under DIR is writable by others, and user nobody cannot list it.
assert_private ()
{
    local bad
    bad=$(find "$1" ! -type l -perm -o+w -printf '%M %p\n')
    [ -z "$bad" ] || fail "writable by others: $bad"
    ! as_nobody ls "$1" >/dev/null 2>&1 || fail "user nobody can list '$1'"
}

# paused_backup LEVEL: start a backup that pauses mid-copy; check what is on disk then; let it
# finish.  Prints "JOBDIR PARTIAL" (their names).
paused_backup ()
{
    local level=$1 pid jobdir partial sock
    VMBK_TEST_PAUSE=$pause VMBK_TEST_PAUSE_AT=copy \
        "$VMBK" backup "$dom" -r "$repo" --no-catalog -l "$level" >/dev/null 2>"$TMPDIR_TEST/paused.err" &
    pid=$!
    wait_for 60 "the backup to pause mid-copy" test -e "$pause"

    [ "$(stat -c '%a %U' "$jobs")" = "711 root" ] || fail "jobs dir: $(stat -c '%a %U' "$jobs")"
    jobdir=$(find "$jobs" -mindepth 1 -maxdepth 1)
    [[ "$(basename "$jobdir")" =~ ^$uuid-[A-Za-z0-9]{6}$ ]] || fail "job directories: $jobdir"
    [ "$(stat -c '%a %u' "$jobdir")" = "700 $qemu_uid" ] ||
        fail "job directory '$jobdir' is $(stat -c '%a %U:%G' "$jobdir")"
    for sock in nbd.sock qemu-nbd-0.sock; do
        [ -S "$jobdir/$sock" ] || fail "no socket '$sock' in the job directory: $(ls -l "$jobdir")"
    done
    assert_private "$jobdir"

    [ "$(stat -c %a "$repo")" = 700 ] || fail "the repository is $(stat -c %a "$repo")"
    partial=$(find "$repo/$dom/points" -mindepth 1 -maxdepth 1 -name '.tmp-*')
    [[ "$(basename "$partial")" =~ ^\.tmp-[0-9]{4}-[A-Za-z0-9]{6}$ ]] || fail "partial points: $partial"
    [ "$(stat -c %a "$partial")" = 700 ] || fail "the partial point is $(stat -c %a "$partial")"
    [ -f "$partial/vda.qcow2" ] || fail "nothing copied yet in '$partial'?"
    assert_private "$repo"

    rm -f "$pause"
    wait "$pid" || fail "the paused backup failed: $(cat "$TMPDIR_TEST/paused.err")"
    echo "$(basename "$jobdir") $(basename "$partial")"
}

t0=$SECONDS
out=$(paused_backup full)
read -r job1 part1 <<<"$out"
out=$(paused_backup inc)
read -r job2 part2 <<<"$out"
[ "${job1: -6}" != "${job2: -6}" ] && [ "${part1: -6}" != "${part2: -6}" ] ||
    fail "temporary names repeat: $job1 $job2, $part1 $part2"
[ -z "$(ls -A "$jobs")" ] || fail "job directories left: $(ls -A "$jobs")"
assert_private "$repo"
[ "$(find "$repo/$dom/points" -mindepth 1 -maxdepth 1 -type d -printf '%f %m\n' | sort | tr '\n' ' ')" = \
    "0001 700 0002 700 " ] || fail "points: $(ls -la "$repo/$dom/points")"
echo "two paused backups: $((SECONDS - t0)) s" >&2

# A jobs directory that others can write is refused, naming it; nothing is started.
chmod 0777 "$jobs"
expect_fail 1 "'$jobs' must be a directory of uid 0 that no one else can write (it has uid 0, mode 0777)" \
    "$VMBK" backup "$dom" -r "$repo" --no-catalog -l inc
chmod 0755 "$jobs"
[ "$("$VMBK" list -r "$repo" "$dom" --json | jq length)" = 2 ] || fail "the refused backup made a point"
assert_nothing_left "$dom"

# Every program the backup runs, its catalog's libguestfs included.
t=$SECONDS
timeout 600 strace -f -qq -s 4096 -e trace=execve -e signal=none -o strace.log \
    "$VMBK" backup "$dom" -r "$repo" -l inc >/dev/null 2>err || fail "traced backup: $(cat err)"
echo "traced backup with catalog: $((SECONDS - t)) s" >&2
grep -q ' = 0$' strace.log || fail "strace saw no execve"
execs=$(grep -E 'execve\(.* = 0$' strace.log | sed -E 's/^[0-9]+ +//')
# vmbk's own helpers, each with the repository path as one argument.
grep -F 'execve("'"$(command -v qemu-img)"'", ["'"$(command -v qemu-img)"'", "create",' <<<"$execs" |
    grep -qF "\"$repo/$dom/points/.tmp-0003-" || fail "qemu-img create: $(grep qemu-img <<<"$execs")"
grep -F 'execve("'"$(command -v qemu-nbd)"'"' <<<"$execs" | grep -qF "\"--\", \"$repo/$dom/points/.tmp-0003-" ||
    fail "qemu-nbd: $(grep qemu-nbd <<<"$execs")"
# No shell sees anything vmbk was given (libguestfs and supermin run a few of their own).
shells=$(grep -E '^execve\("[^"]*/(sh|bash|dash)"' <<<"$execs" || true)
if grep -qF -e "$dom" -e "$TMPDIR_TEST" <<<"$shells"; then
    fail "a shell was given vmbk's input: $(grep -F -e "$dom" -e "$TMPDIR_TEST" <<<"$shells")"
fi
[ -z "$(find "$TMPDIR_TEST" / -maxdepth 1 -name pwned)" ] || fail "the repository path went through a shell"
assert_private "$repo"
assert_nothing_left "$dom"
assert_running "$dom"
echo "total: $((SECONDS - t0)) s" >&2
exit 0
