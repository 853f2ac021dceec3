#!/bin/sh
# run.sh — `make fuzz` driver: for each libFuzzer binary given, replay the
# regression inputs fuzz/crashes/<target>/* (each must now run clean), then
# fuzz for SECONDS on a scratch copy of fuzz/corpus/<target>/ (the committed
# corpus never grows). A new crash/leak/timeout/OOM is copied to
# fuzz/crashes/<target>/ — it becomes a regression input from then on.
# Prints one summary line per target and "N passed, N failed"; exit 1 on any
# failure. Usage: fuzz/run.sh SECONDS BUILD/fuzz/fuzz_NAME...
set -u
secs=${1:?usage: run.sh SECONDS BINARY...}
shift
here=$(cd "$(dirname "$0")" && pwd)
pass=0 fail=0 failures=""
t_all=$(date +%s)
for bin in "$@"; do
    t=$(basename "$bin")
    work=$(dirname "$bin")/run/$t
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    [ -d "$here/corpus/$t" ] && cp "$here/corpus/$t"/* "$work/corpus/" 2>/dev/null
    log=$work/log
    t0=$(date +%s)
    status=ok detail=""
    # 1. regression inputs: each must run clean (exit 0)
    nreg=0
    if [ -d "$here/crashes/$t" ]; then
        for r in "$here/crashes/$t"/*; do
            [ -f "$r" ] || continue
            nreg=$((nreg + 1))
            if ! "$bin" -rss_limit_mb=2048 -timeout=10 "$r" >"$work/regress.log" 2>&1; then
                status=FAIL
                detail="regression input still fails: $r (log: $work/regress.log)"
                break
            fi
        done
    fi
    # 2. time-boxed fuzzing on a scratch copy of the seeds
    if [ "$status" = ok ]; then
        "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
            -artifact_prefix="$work/artifacts/" "$work/corpus" >"$log" 2>&1
        rc=$?
        art=$(ls "$work/artifacts" 2>/dev/null | head -n 1)
        if [ $rc -ne 0 ] || [ -n "$art" ]; then
            status=FAIL
            if [ -n "$art" ]; then
                mkdir -p "$here/crashes/$t"
                cp "$work/artifacts/$art" "$here/crashes/$t/$art"
                detail="reproducer: fuzz/crashes/$t/$art (log: $log)"
            else
                detail="fuzzer exited $rc without an artifact (log: $log)"
            fi
        fi
    fi
    dt=$(( $(date +%s) - t0 ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" 2>/dev/null | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" 2>/dev/null | tail -n 1 | cut -d' ' -f2)
    if [ "$status" = ok ]; then
        pass=$((pass + 1))
        printf '%-18s PASS  %3ss  %9s runs  cov %-6s regressions %s\n' "$t" "$dt" "${runs:-?}" "${cov:-?}" "$nreg"
    else
        fail=$((fail + 1))
        printf '%-18s FAIL  %3ss  %s\n' "$t" "$dt" "$detail"
        grep -h -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY:' "$log" "$work/regress.log" 2>/dev/null \
            | sed 's/^/    /'
        failures="$failures $t"
    fi
done
echo "$pass passed, $fail failed ($(( $(date +%s) - t_all ))s)"
[ "$fail" -eq 0 ] || { echo "failed:$failures"; exit 1; }
