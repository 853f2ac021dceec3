#!/bin/bash
# selftest.sh — proves the valgrind harness can fail: a tiny C program run
# through zhiku-vg must make check.sh fail when it leaks (definitely lost),
# reads past a block or branches on uninitialised memory, and pass when it
# is clean. Called by tests/valgrind/ci.sh and run.sh before the tests.
set -u
here=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d /tmp/zhiku-vgself.XXXXXX)
trap 'rm -rf "$W"' EXIT
cat >"$W/p.c" <<'C'
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv)
{
    char *p = malloc(64);
    int r = 0;
    strcpy(p, "x");
    if (argc > 1 && !strcmp(argv[1], "leak")) { p = NULL; return 0; }
    if (argc > 1 && !strcmp(argv[1], "overread")) r = p[64];
    if (argc > 1 && !strcmp(argv[1], "uninit")) { int *q = malloc(sizeof *q); if (*q) r = 1; free(q); }
    free(p);
    return r & 0;
}
C
cc -g -O0 -o "$W/p" "$W/p.c" || { echo "valgrind selftest: cannot compile"; exit 1; }
fails=0
for mode in clean leak overread uninit; do
    mkdir -p "$W/$mode"
    ZKVG_REAL="$W/p" ZKVG_LOGDIR="$W/$mode" "$here/zhiku-vg" "$mode"
    "$here/check.sh" "$W/$mode" >/dev/null; rc=$?
    if [ $mode = clean ]; then want=0; else want=1; fi
    if [ $rc != $want ]; then echo "valgrind selftest: $mode: check.sh exit $rc, expected $want"; fails=1; fi
done
[ $fails = 0 ] && echo "valgrind selftest: the checker catches a leak, an overread and an uninitialised branch"
exit $fails
