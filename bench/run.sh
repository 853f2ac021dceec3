#!/bin/bash
# run.sh BUILD_DIR — `make bench`: zhiku's benchmarks, each printing its own
# report (figures go to docs/PERFORMANCE.md). BENCH_SCALE_N sizes the scale
# benchmark (default 100000 chunks; 1000000 for the million-chunk run; its
# corpus and ingested data are cached under ${BENCH_DIR:-build/bench-data}
# and shared with the HTTP benchmark). BENCH_CHUNKS and BENCH_QUERIES size
# the ACL benchmark (default 200000 chunks, 100 queries).
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(date -u +%Y-%m-%d)"
echo
echo "== ingestion: synthetic corpus vs the raw FTS5 anchor, and a real corpus"
"$ROOT/bench/ingest_bench.sh" "$BUILD"
echo
echo "== scale: ingestion, start-up, memory, search vs the raw engines and the Python pipeline, recall"
"$ROOT/bench/scale_bench.sh" "$BUILD" "${BENCH_SCALE_N:-100000}"
echo
echo "== HTTP load test and service overhead"
"$ROOT/bench/http_bench.sh" "$BUILD"
echo
echo "== ACL-filtered search and the BM25 residual channel"
"$BUILD/bench/acl_bench" "${BENCH_CHUNKS:-200000}" "${BENCH_QUERIES:-100}"
echo
echo "== vector search restricted to an allowed set (exact vs FAISS IDSelector)"
"$BUILD/bench/vindex_filter_bench" "${BENCH_CHUNKS:-200000}" 512 25 clustered
echo
echo "== vector index scaling: exact vs auto (flat -> background IVF), recall, filtered, start-up"
"$BUILD/bench/vindex_scale_bench" "${BENCH_VSCALE_N:-100000}" "${BENCH_VSCALE_QUERIES:-50}" "${BENCH_VSCALE_CODE:-default}" "${BENCH_VSCALE_OPTS:-}"
