#!/bin/bash
# run.sh [BUILD_DIR] [TEST...] — run integration tests (tests/integration/
# NAME.sh; default: all of them) with every zhiku process under valgrind
# memcheck, then check the logs (check.sh). `make valgrind` runs the whole
# set on a -O1 -g build in build/vg; tests/valgrind/ci.sh a smoke subset.
# A test passes when its script passes AND its valgrind logs show no error
# and no definite or indirect leak. Logs: BUILD_DIR/vg-logs/NAME/vg.PID.log.
# Memcheck runs the code 20-50x slower: the wait limits of lib.sh and
# lib_server.sh are raised (ZK_TIMEOUT per zhiku call, SRV_WAIT_S for the
# server to start, become ready and stop).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build/vg}
[ $# -gt 0 ] && shift
command -v valgrind >/dev/null 2>&1 || { echo "valgrind: not installed, skipped"; exit 77; }
[ -x "$ROOT/$BUILD/zhiku" ] || { echo "valgrind: no binary at $ROOT/$BUILD/zhiku"; exit 1; }

export ZHIKU_BIN="$ROOT/tests/valgrind/zhiku-vg"
export ZKVG_REAL="$ROOT/$BUILD/zhiku"
export ZHIKU_TEST_TOOLS="$ROOT/$BUILD/tests"
export ZHIKU_ROOT="$ROOT"
export ZHIKU_SHARED="${ZHIKU_SHARED:-$ROOT/../shared}"
export ZK_TIMEOUT="${ZK_TIMEOUT:-900}"
export SRV_WAIT_S="${SRV_WAIT_S:-300}"

if [ $# = 0 ]; then
    set --
    for t in "$ROOT"/tests/integration/*.sh; do
        case "$(basename "$t")" in lib*.sh) continue ;; esac
        set -- "$@" "$(basename "$t" .sh)"
    done
fi

LOGROOT="$ROOT/$BUILD/vg-logs"
mkdir -p "$LOGROOT"
passed=0; failed=0; skipped=0; failures=""
for name in "$@"; do
    t="$ROOT/tests/integration/$name.sh"
    [ -f "$t" ] || { echo "valgrind: no test $t"; failed=$((failed + 1)); failures="$failures $name"; continue; }
    export ZKVG_LOGDIR="$LOGROOT/$name"
    rm -rf "$ZKVG_LOGDIR"; mkdir -p "$ZKVG_LOGDIR"
    tmp=$(mktemp -d /tmp/zhiku-vg.XXXXXX)
    start=$SECONDS
    ( cd "$tmp" && bash "$t" ) >"$ZKVG_LOGDIR/test.out" 2>&1
    rc=$?
    rm -rf "$tmp"
    took=$((SECONDS - start))
    if [ $rc = 77 ]; then
        skipped=$((skipped + 1)); echo "skip [valgrind] $name: $(tail -1 "$ZKVG_LOGDIR/test.out")"; continue
    fi
    vg=$("$ROOT/tests/valgrind/check.sh" "$ZKVG_LOGDIR"); vrc=$?
    if [ $rc = 0 ] && [ $vrc = 0 ]; then
        passed=$((passed + 1)); echo "ok   [valgrind] $name (${took}s; $vg)"
    else
        failed=$((failed + 1)); failures="$failures $name"
        echo "FAIL [valgrind] $name (${took}s; test exit $rc; $vg; logs: $ZKVG_LOGDIR)"
        [ $rc != 0 ] && tail -30 "$ZKVG_LOGDIR/test.out"
        [ $vrc != 0 ] && "$ROOT/tests/valgrind/check.sh" --show "$ZKVG_LOGDIR" | head -120
    fi
done
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
