#!/usr/bin/env bash
# The KVM probe: TCG here (no working KVM), VMBK_ACCEL honoured and checked, the probe guest really
# reports in when its vCPU runs, and a vCPU that never reports ends up as TCG with a notice.
source "${abs_top_srcdir:-..}/tests/functions.sh"
requires qemu-system-x86_64

# This machine: /dev/kvm is absent, or present but hangs under nesting.  Either way: tcg.
out=$("$VMBK" accel 2>"$TMPDIR_TEST/err") || fail "vmbk accel failed: $(cat "$TMPDIR_TEST/err")"
[ "$out" = tcg ] || fail "vmbk accel picked '$out' on a machine without working KVM"
grep -q 'using TCG' "$TMPDIR_TEST/err" || fail "no notice saying why TCG was picked"

[ "$(VMBK_ACCEL=kvm "$VMBK" accel)" = kvm ] || fail "VMBK_ACCEL=kvm not honoured"
[ "$(VMBK_ACCEL=tcg "$VMBK" accel)" = tcg ] || fail "VMBK_ACCEL=tcg not honoured"
set +e
VMBK_ACCEL=hvf "$VMBK" accel 2>"$TMPDIR_TEST/err"
rc=$?
set -e
[ $rc = 2 ] || fail "a bad VMBK_ACCEL exited $rc, not 2"
grep -q "VMBK_ACCEL='hvf'" "$TMPDIR_TEST/err" || fail "bad VMBK_ACCEL message: $(cat "$TMPDIR_TEST/err")"

# The probe guest itself, booted under TCG: it must report in, which is what KVM would get.
[ "$(VMBK_TEST_PROBE_ACCEL=tcg "$VMBK" accel)" = kvm ] ||
    fail "the probe guest did not report in under TCG"
# A vCPU that never reports (as a hanging KVM) gives TCG within the bounded wait, and says so.
start=$(date +%s)
out=$(VMBK_TEST_PROBE_ACCEL=tcg VMBK_TEST_PROBE_HANG=1 "$VMBK" accel 2>"$TMPDIR_TEST/err")
[ "$out" = tcg ] || fail "a hanging probe picked '$out'"
grep -q 'did not boot a test guest within' "$TMPDIR_TEST/err" || fail "no notice for a hanging KVM"
[ $(($(date +%s) - start)) -lt 20 ] || fail "the probe did not give up in time"
pgrep -f 'vmbk-kvm-probe' && fail "a probe qemu was left running"
ls /tmp/vmbk-kvm-probe-* 2>/dev/null && fail "a probe image was left behind"
exit 0
