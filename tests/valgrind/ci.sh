#!/bin/sh
# ci.sh — CI's valgrind smoke run: builds the -O1 -g binary in build/vg and
# runs a few integration tests with every zhiku process under memcheck
# (tests/valgrind/run.sh). VG_CI_TESTS overrides the list; the default
# covers the HTTP server end to end (every /api/v1 route, sessions, uploads,
# ACLs), the OpenAPI route table and answers through a fake model, in
# ~4-6 minutes on 2 idle cores. The full set is `make valgrind` (~1-2 h).
# Installs Debian's valgrind when missing (tools/deps.sh, as `make bench`
# does for wrk); exits 77 (skipped) when it still is not there.
cd "$(dirname "$0")/../.." || exit 1
command -v valgrind >/dev/null 2>&1 || tools/deps.sh valgrind >/dev/null 2>&1 || true
command -v valgrind >/dev/null 2>&1 || { echo "valgrind: not installed, skipped"; exit 77; }
make --no-print-directory valgrind-build || exit 1
tests/valgrind/selftest.sh || exit 1
exec tests/valgrind/run.sh build/vg ${VG_CI_TESTS:-server_api openapi_routes ask_llm}
