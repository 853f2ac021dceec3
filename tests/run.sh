#!/bin/bash
# run.sh BUILD_DIR [unit|integration|NAME] — run zhiku's tests and print one
# closing line "N passed, N failed". Unit tests are cmocka binaries in
# BUILD_DIR/tests/test_*; integration tests are tests/integration/*.sh, each
# driving the real binary ($ZHIKU_BIN) in a temporary directory.
# Set TESTS_VERBOSE=1 to see every test's output, not only failures'.
set -u
BUILD=${1:-build}
WHICH=${2:-all}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export ZHIKU_BIN="$ROOT/$BUILD/zhiku"
export ZHIKU_TEST_TOOLS="$ROOT/$BUILD/tests"
export ZHIKU_ROOT="$ROOT"
export ZHIKU_SHARED="${ZHIKU_SHARED:-$ROOT/../shared}"
# sanitizer builds: fail hard, report leaks
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
LOGDIR="$ROOT/$BUILD/test-logs"
mkdir -p "$LOGDIR"
passed=0; failed=0; skipped=0; failures=""
label="[$BUILD]"

run_unit() {
    local t=$1 name log
    name=$(basename "$t")
    log="$LOGDIR/$name.log"
    ( cd "$ROOT" && "$t" ) >"$log" 2>&1
    local rc=$?
    local p f
    p=$(grep -Eo '^\[  PASSED  \] [0-9]+' "$log" | awk '{s+=$4} END {print s+0}')
    f=$(grep -Eo '^\[  FAILED  \] [0-9]+' "$log" | awk '{s+=$4} END {print s+0}')
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" != 0 ]; then
        failures="$failures $name"
        echo "FAIL $label $name (log: $log)"; tail -40 "$log"
    else
        echo "ok   $label $name ($p tests)"
        [ "${TESTS_VERBOSE:-0}" = 1 ] && cat "$log"
    fi
}

run_integration() {
    local t=$1 name log tmp
    name=$(basename "$t" .sh)
    [ "$name" = run ] && name=browser_portal
    log="$LOGDIR/it_$name.log"
    tmp=$(mktemp -d /tmp/zhiku-it.XXXXXX)
    local start=$SECONDS
    ( cd "$tmp" && bash "$t" ) >"$log" 2>&1
    local rc=$?
    if [ $rc = 0 ]; then
        passed=$((passed + 1)); echo "ok   $label $name ($((SECONDS - start))s)"
        [ "${TESTS_VERBOSE:-0}" = 1 ] && cat "$log"
    elif [ $rc = 77 ]; then
        skipped=$((skipped + 1)); echo "skip $label $name: $(tail -1 "$log")"
    else
        failed=$((failed + 1)); failures="$failures $name"
        echo "FAIL $label $name (log: $log)"; tail -40 "$log"
    fi
    rm -rf "$tmp"
}

if [ "$WHICH" = all ] || [ "$WHICH" = unit ]; then
    for t in "$ROOT/$BUILD"/tests/test_*; do
        case "$t" in *.o|*.d) continue;; esac
        [ -x "$t" ] && run_unit "$t"
    done
fi
if [ "$WHICH" = all ] || [ "$WHICH" = integration ]; then
    for t in "$ROOT"/tests/integration/*.sh; do
        [ "$(basename "$t")" = lib.sh ] && continue   # shared helpers, not a test
        [ -f "$t" ] && run_integration "$t"
    done
fi
if [ "$WHICH" = all ] || [ "$WHICH" = integration ] || [ "$WHICH" = browser ]; then
    # the portal in headless Chromium against the real server
    [ -f "$ROOT/tests/browser/run.sh" ] && run_integration "$ROOT/tests/browser/run.sh"
fi
if [ "$WHICH" != all ] && [ "$WHICH" != unit ] && [ "$WHICH" != browser ] && [ "$WHICH" != integration ]; then
    if [ -x "$ROOT/$BUILD/tests/$WHICH" ]; then run_unit "$ROOT/$BUILD/tests/$WHICH"
    else run_integration "$ROOT/tests/integration/$WHICH.sh"; fi
fi
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
