#!/bin/bash
# scale_bench.sh [BUILD_DIR] [N] — the scale benchmark of `make bench`
# (issue #7) on a gen_scale.py corpus of about N chunks (default
# BENCH_SCALE_N or 100000; BENCH_SCALE_N=1000000 for the million-chunk run).
# Data is generated and ingested once and cached (bench/scale_data.sh,
# ${BENCH_DIR:-build/bench-data}/scaleN). Reports, same run:
#   1. ingestion through the CLI: chunks/s, MB/s, peak RSS (GNU time);
#   2. start-up: exec of `zhiku serve` to the first /readyz 200 (median of
#      3), idle RSS, and RSS under an HTTP search load (wrk, 4 connections);
#   3. in-process search p50/p99, bm25/vector/hybrid, administrator, a user
#      allowed 100% and a user allowed 1%, against the raw engines (FTS5 +
#      FAISS called directly) on the same queries, and ANN recall@10 vs
#      exact (build/bench/raw_engines);
#   4. the reference Python pipeline (../shared/bench/py_rag.py, or
#      PY_RAG=path; BENCH_PY_RAG=0 skips it) on the same docs and queries,
#      side by side with zhiku's ingestion and hybrid search.
# The bars of issue #7 are printed next to the figures (they are set for
# 1M chunks on 2 cores).
set -euo pipefail
BUILD=build
N=${BENCH_SCALE_N:-100000}
for a in "$@"; do
    if [[ $a =~ ^[0-9]+$ ]]; then N=$a; else BUILD=$a; fi
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN="$ROOT/$BUILD/zhiku"
PY_RAG=${PY_RAG:-$ROOT/../shared/bench/py_rag.py}
LOAD_SECS=${BENCH_LOAD_SECONDS:-10}
command -v wrk >/dev/null || "$ROOT/tools/deps.sh" wrk >/dev/null
W=$(mktemp -d /tmp/zhiku-scale-bench.XXXXXX)
. "$ROOT/bench/lib.sh"
cleanup() { bench_cleanup; rm -rf "$W"; }
trap cleanup EXIT
now() { date +%s.%N; }
rss_mb() { awk -v k="$2" '$1 == k":" {printf "%.0f", $2 / 1024}' "/proc/$1/status" 2>/dev/null; }

C=$("$ROOT/bench/scale_data.sh" "$BUILD" "$N" | tail -1)
D="$C/data"
TOKEN=$(cat "$C/token")
STATS=$("$BIN" --data-dir "$D" stats --json)
CHUNKS=$(echo "$STATS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["chunks"])')
DOCS_BYTES=$(du -sb "$C/docs" | cut -f1)
echo "corpus: $C ($(ls "$C/docs" | wc -l) files, $(awk -v b="$DOCS_BYTES" 'BEGIN {printf "%.1f", b / 1e6}') MB), ingested $(cat "$C/.ingested")"
echo "data:   $STATS"

# ---- 1. ingestion -----------------------------------------------------------
WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$C/ingest.txt")
PEAK=$(awk -F': ' '/Maximum resident/ {printf "%.0f", $2 / 1024}' "$C/ingest.txt")
CPU=$(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "%.1f", u + s}' "$C/ingest.txt")
ZK_MBS=$(awk -v b="$DOCS_BYTES" -v w="$WALL" 'BEGIN {printf "%.2f", b / 1e6 / w}')
ZK_CPS=$(awk -v c="$CHUNKS" -v w="$WALL" 'BEGIN {printf "%.0f", c / w}')
echo
echo "== 1. ingestion (zhiku ingest --acl group:all DIR; wall time of the whole CLI run)"
echo "   $(head -1 "$C/ingest.txt")"
printf "   %-14s %10s %10s %10s %12s %10s\n" chunks "wall s" "CPU s" "MB/s" "chunks/s" "peak RSS"
printf "   %-14s %10.1f %10s %10s %12s %7s MB   (bar at 1M: >= 10000 chunks/s)\n" "$CHUNKS" "$WALL" "$CPU" "$ZK_MBS" "$ZK_CPS" "$PEAK"
OPT_S=$(sed -n 's/.* in \([0-9.]*\) s$/\1/p' "$C/optimize.txt")
echo "   then zhiku optimize: $(cat "$C/optimize.txt"); ingest + optimize:" \
    "$(awk -v c="$CHUNKS" -v w="$WALL" -v o="${OPT_S:-0}" 'BEGIN {printf "%.0f chunks/s", c / (w + o)}')"

# ---- 2. start-up and memory ------------------------------------------------
PORT=$(free_port)
STARTS=()
for i in 1 2 3; do
    t0=$(now)
    ZHIKU_SERVER_RATE_LIMIT_PER_MINUTE=0 "$BIN" --data-dir "$D" serve --listen 127.0.0.1:$PORT 2>"$W/serve$i.log" &
    SP=$!
    PIDS=("$SP")
    until curl -sf -o /dev/null "127.0.0.1:$PORT/readyz"; do
        kill -0 "$SP" 2>/dev/null || { echo "scale_bench: serve exited:"; tail -5 "$W/serve$i.log"; exit 1; }
        sleep 0.01
    done
    STARTS+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}')")
    [ $i = 3 ] && break
    kill -TERM "$SP"; wait "$SP" 2>/dev/null || true
done
STARTUP=$(printf '%s\n' "${STARTS[@]}" | sort -n | sed -n 2p)
wait_idle "$SP" 900 || { tail -5 "$W/serve3.log"; exit 1; }
IDLE=$(rss_mb "$SP" VmRSS)
sed -n '1,$p' "$C/queries.txt" | python3 -c '
import json, sys
qs = [l.strip() for l in sys.stdin if l.strip()]
print("local queries = {" + ",".join(json.dumps(q, ensure_ascii=False) for q in qs) + "}")' > "$W/load.lua"
cat >> "$W/load.lua" <<LUA
local i = 0
request = function()
  i = i % #queries + 1
  return wrk.format("POST", "/api/v1/search", {["Authorization"] = "Bearer $TOKEN",
    ["Content-Type"] = "application/json"}, '{"query":"' .. queries[i]:gsub('"', '') .. '"}')
end
done = function(summary, latency, requests)
  io.write(string.format("wrk: %d requests, %d errors, %.1f req/s, p50 %.2f ms, p99 %.2f ms\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
wrk -t1 -c4 -d${LOAD_SECS}s --timeout 10s -s "$W/load.lua" "http://127.0.0.1:$PORT/" > "$W/wrk.txt" &
WP=$!
LOADED=0
while kill -0 "$WP" 2>/dev/null; do
    r=$(rss_mb "$SP" VmRSS); [ -n "$r" ] && [ "$r" -gt "$LOADED" ] && LOADED=$r
    sleep 0.2
done
wait "$WP" || true
HWM=$(rss_mb "$SP" VmHWM)
kill -TERM "$SP"; wait "$SP" 2>/dev/null || true; PIDS=()
echo
echo "== 2. start-up and memory (zhiku serve; exec to /readyz 200)"
printf "   start-up %s s (median of %s s; bar at 1M: <= 1 s); RSS idle %s MB, under load %s MB (peak %s MB)\n" \
    "$STARTUP" "${STARTS[*]}" "$IDLE" "$LOADED" "$HWM"
echo "   load: POST /api/v1/search, 4 connections, ${LOAD_SECS} s, unpinned: $(grep '^wrk:' "$W/wrk.txt" | sed 's/^wrk: //')"

# ---- 3. in-process search vs the raw engines, recall --------------------------
echo
echo "== 3. in-process search (ret_search) vs the raw engines; ANN recall"
"$ROOT/$BUILD/bench/raw_engines" "$D" "$C/queries.txt" uall u1pct | tee "$W/raw.txt" | grep -v '^summary:' | sed 's/^/   /'
SUMMARY=$(grep '^summary:' "$W/raw.txt")
val() { echo "$SUMMARY" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# ---- 4. the reference Python pipeline ----------------------------------------
echo
echo "== 4. zhiku vs the reference Python pipeline ($PY_RAG)"
ZK_P50=$(val hybrid_admin_p50); ZK_P99=$(val hybrid_admin_p99)
if [ "${BENCH_PY_RAG:-1}" = 0 ]; then
    echo "   skipped (BENCH_PY_RAG=0)"
elif [ ! -f "$PY_RAG" ]; then
    echo "   skipped: $PY_RAG not found (set PY_RAG=path)"
else
    # Debian's python3 with Debian's faiss and numpy, as the script expects
    /usr/bin/python3 -c 'import faiss, numpy' 2>/dev/null || "$ROOT/tools/deps.sh" python3-faiss python3-numpy >&2
    /usr/bin/time -v -o "$W/py.time" /usr/bin/python3 "$PY_RAG" "$C/docs" "$C/queries.txt" > "$W/py.txt"
    PY_MBS=$(sed -n 's/.* = \([0-9.]*\) MB\/s.*/\1/p' "$W/py.txt")
    PY_P50=$(sed -n 's/.* p50 \([0-9.]*\) ms.*/\1/p' "$W/py.txt")
    PY_P99=$(sed -n 's/.* p99 \([0-9.]*\) ms.*/\1/p' "$W/py.txt")
    PY_RSS=$(awk -F': ' '/Maximum resident/ {printf "%.0f", $2 / 1024}' "$W/py.time")
    sed 's/^/   /' "$W/py.txt"
    ZK_OMBS=$(awk -v b="$DOCS_BYTES" -v w="$WALL" -v o="${OPT_S:-0}" 'BEGIN {printf "%.2f", b / 1e6 / (w + o)}')
    printf "   %-30s %12s %12s %10s\n" "" zhiku "py_rag" ratio
    printf "   %-30s %12s %12s %9sx  (bar >= 5x)\n" "ingestion MB/s" "$ZK_MBS" "$PY_MBS" \
        "$(awk -v a="$ZK_MBS" -v b="$PY_MBS" 'BEGIN {printf "%.2f", a / b}')"
    printf "   %-30s %12s %12s %9sx  (bar >= 5x)\n" "ingestion + optimize MB/s" "$ZK_OMBS" "$PY_MBS" \
        "$(awk -v a="$ZK_OMBS" -v b="$PY_MBS" 'BEGIN {printf "%.2f", a / b}')"
    printf "   %-30s %12s %12s %9sx  (bar >= 10x)\n" "hybrid query p50 ms" "$ZK_P50" "$PY_P50" \
        "$(awk -v a="$ZK_P50" -v b="$PY_P50" 'BEGIN {printf "%.2f", b / a}')"
    printf "   %-30s %12s %12s %9sx\n" "hybrid query p99 ms" "$ZK_P99" "$PY_P99" \
        "$(awk -v a="$ZK_P99" -v b="$PY_P99" 'BEGIN {printf "%.2f", b / a}')"
    printf "   %-30s %12s %12s\n" "ingestion peak RSS MB" "$PEAK" "$PY_RSS"
    echo "   (zhiku: CLI ingest wall time incl. embedding, FTS5, vectors, IVF build, snapshot; hybrid for the"
    echo "    administrator with snippets; py_rag: in-memory SQLite, its own timers, no ACL)"
fi

# ---- summary ------------------------------------------------------------------
echo
echo "== summary at $CHUNKS chunks (bars of issue #7 are for 1M chunks on 2 cores)"
bar() { awk -v v="$1" -v lim="$2" -v op="$3" 'BEGIN {ok = op == "<=" ? v <= lim : v >= lim; print ok ? "met" : "NOT met"}'; }
printf "   %-44s %10s   %s\n" "hybrid, 1% ACL, p50 ms (bar <= 5)" "$(val hybrid_1pct_p50)" "$(bar "$(val hybrid_1pct_p50)" 5 '<=')"
printf "   %-44s %10s   %s\n" "hybrid, 1% ACL, p99 ms (bar <= 25)" "$(val hybrid_1pct_p99)" "$(bar "$(val hybrid_1pct_p99)" 25 '<=')"
printf "   %-44s %10s   %s\n" "hybrid, 100% ACL user, p50 ms (bar <= 5)" "$(val hybrid_all_p50)" "$(bar "$(val hybrid_all_p50)" 5 '<=')"
printf "   %-44s %10s   %s\n" "hybrid, 100% ACL user, p99 ms (bar <= 25)" "$(val hybrid_all_p99)" "$(bar "$(val hybrid_all_p99)" 25 '<=')"
printf "   %-44s %10s   %s\n" "ANN recall@10 vs exact (bar >= 0.95)" "$(val recall)" "$(bar "$(val recall)" 0.95 '>=')"
printf "   %-44s %10s   %s\n" "start-up s (bar <= 1)" "$STARTUP" "$(bar "$STARTUP" 1 '<=')"
printf "   %-44s %10s   %s\n" "ingestion chunks/s (bar >= 10000)" "$ZK_CPS" "$(bar "$ZK_CPS" 10000 '>=')"
for m in bm25 vector hybrid; do
    r=$(awk -v a="$(val ${m}_admin_p50)" -v b="$(val raw_${m}_p50)" 'BEGIN {printf "%.2f", a / b}')
    printf "   %-44s %10s   %s\n" "$m p50 zhiku/raw engines (bar <= 1.3)" "$r" "$(bar "$r" 1.3 '<=')"
done
