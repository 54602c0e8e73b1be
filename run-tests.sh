#!/usr/bin/env bash
# Run vmbk's test suite: prepare the host (scripts/setup-host.sh: packages,
# libvirtd, build), run `make check` (keeping going past failures; two tests
# at a time, see below), print
# the logs of the tests that failed, and end with one line:
#   N passed, N failed, N skipped
# where "failed" counts FAIL, ERROR and XPASS.  Exits non-zero if anything
# failed, or if setup or `make check` failed without a test to blame (then
# counted as 1 failed).

set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$top" || { echo "0 passed, 1 failed"; exit 1; }

say () { echo "run-tests: $*"; }

if ! scripts/setup-host.sh; then
    say "scripts/setup-host.sh failed (packages, libvirtd or build); no test ran"
    echo "0 passed, 1 failed"
    exit 1
fi

# Old summaries must not stand in for this run's.
find . -name 'test-suite*.log' -not -path './tests/.cache/*' -delete

# Two tests at a time (each is mostly one TCG guest or libguestfs appliance: a core), then, alone,
# those that disturb others (tests/Makefile.am SERIAL_TESTS).  VMBK_TEST_JOBS=1: one at a time.
jobs=${VMBK_TEST_JOBS:-2}
serial=$(make -s -C tests print-serial-tests)
parallel=$(make -s -C tests print-tests | tr ' ' '\n' | grep -vxF -f <(tr ' ' '\n' <<<"$serial") |
           tr '\n' ' ')
make_rc=0
make -k check TESTS= >/dev/null || make_rc=$?     # builds what the tests need
make -C tests -k -j"$jobs" check TESTS="$parallel" || make_rc=$?
make -C tests -k check TESTS="$serial" TEST_SUITE_LOG=test-suite-serial.log || make_rc=$?

# Sum the automake summaries ("# PASS:  3") of every run.
pass=0 fail=0 skip=0 xfail=0 logs=()
mapfile -t logs < <(find . -name 'test-suite*.log' -not -path './tests/.cache/*' | sort)
count ()    # count FIELD: the sum of "# FIELD: N" over the summaries
{
    local n
    n=$(awk -v f="# $1:" 'index($0, f) == 1 { s += $NF } END { print s + 0 }' "${logs[@]}")
    echo "$n"
}
if [ "${#logs[@]}" -gt 0 ]; then
    pass=$(count PASS)
    skip=$(count SKIP)
    xfail=$(count XFAIL)
    fail=$(( $(count FAIL) + $(count ERROR) + $(count XPASS) ))
fi

# The logs of the tests that failed, from their .trs result files.
if [ "$fail" -gt 0 ]; then
    while IFS= read -r trs; do
        log=${trs%.trs}.log
        echo
        echo "======== $log ========"
        cat "$log" 2>/dev/null || echo "(no log)"
    done < <(find . -name '*.trs' -not -path './tests/.cache/*' \
                  -exec grep -lE '^:test-result: (FAIL|ERROR|XPASS)' {} + | sort)
    echo
fi

if [ "$make_rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
    if [ "${#logs[@]}" -eq 0 ]; then
        say "make check failed (exit $make_rc) without a test summary"
    else
        say "make check failed (exit $make_rc) although no test failed"
    fi
    fail=1
fi

[ "$xfail" -gt 0 ] && say "$xfail expected failures (XFAIL)"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
