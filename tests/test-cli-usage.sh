#!/usr/bin/env bash
# The command line: help and version, usage errors exit 2 with a message, failures exit 1 with a
# message naming the problem.
source "${abs_top_srcdir:-..}/tests/functions.sh"

expect_exit() {
    local want=$1 pattern=$2 rc
    shift 2
    set +e
    "$@" >"$TMPDIR_TEST/out" 2>"$TMPDIR_TEST/err"
    rc=$?
    set -e
    [ "$rc" = "$want" ] || fail "'$*' exited $rc, want $want; stderr: $(cat "$TMPDIR_TEST/err")"
    [ -z "$pattern" ] || grep -q -- "$pattern" "$TMPDIR_TEST/err" ||
        fail "'$*': stderr does not say '$pattern': $(cat "$TMPDIR_TEST/err")"
    [ "$want" = 0 ] || [ "$(wc -l <"$TMPDIR_TEST/err")" -ge 1 ] || fail "'$*': no message"
}

"$VMBK" --version | grep -Eq '^vmbk [0-9]+\.[0-9]+\.[0-9]+$' || fail "bad --version"
"$VMBK" --help | grep -q '^Usage: vmbk' || fail "bad --help"
for cmd in $("$VMBK" --help | awk '/^Commands:/{c=1; next} c && /^  [a-z]/{print $1}'); do
    "$VMBK" "$cmd" --help | grep -q "vmbk $cmd" || fail "'vmbk $cmd --help' does not describe it"
done

expect_exit 2 'no command given' "$VMBK"
expect_exit 2 "unknown command 'frobnicate'" "$VMBK" frobnicate
expect_exit 2 "unknown option '--frob'" "$VMBK" --frob disks x
expect_exit 2 "needs a libvirt URI" "$VMBK" -c
expect_exit 2 'missing argument' "$VMBK" disks
expect_exit 2 "unexpected argument 'b'" "$VMBK" disks a b
expect_exit 2 'Unknown option --bogus' "$VMBK" disks --bogus dom

start_libvirtd
expect_exit 1 "domain 'no-such-domain-\$(x)' not found" "$VMBK" disks 'no-such-domain-$(x)'
expect_exit 1 "cannot connect to libvirt at 'qemu:///nowhere'" "$VMBK" -c qemu:///nowhere disks x
exit 0
