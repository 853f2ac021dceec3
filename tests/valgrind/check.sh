#!/bin/bash
# check.sh [--show] LOGDIR — verdict on the memcheck logs (vg.PID.log) that
# tests/valgrind/zhiku-vg wrote for one test. Fails when a log reports an
# error (invalid read/write, uninitialised value, bad free, ...) or a
# definitely/indirectly lost block that zhiku.supp does not suppress (the
# wrapper counts those leak kinds as errors), or when valgrind itself died.
# Prints one summary line: processes; how many ended without valgrind's
# exit summary (SIGKILLed: the sandbox's forked parser children, servers a
# test kills on purpose or leaves to the EXIT trap; no leak check for
# them, but their errors still count); how many logs have errors.
# --show prints the offending reports instead.
set -u
show=0
[ "${1:-}" = --show ] && { show=1; shift; }
dir=$1
procs=0; done_=0; bad=0; badlogs=()
for f in "$dir"/vg.*.log; do
    [ -e "$f" ] || continue
    procs=$((procs + 1))
    if grep -q 'ERROR SUMMARY:' "$f"; then done_=$((done_ + 1)); fi
    if grep -qE 'ERROR SUMMARY: [1-9]|VALGRIND INTERNAL ERROR|Valgrind.s memory management: out of memory|^==[0-9]+== (Invalid|Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap)' "$f"; then
        bad=$((bad + 1)); badlogs+=("$f")
    fi
done
if [ $show = 1 ]; then
    for f in "${badlogs[@]}"; do
        echo "=== $f"
        sed -n '/Command:/p; /Parent PID:/,$p' "$f" | grep -v '^==[0-9]*== *$' | grep -v 'Parent PID:' | head -200
    done
    exit 0
fi
echo "$procs processes, $((procs - done_)) without exit summary, $bad with errors"
[ $bad = 0 ]
