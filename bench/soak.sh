#!/bin/bash
# soak.sh [BUILD_DIR] — the load and soak test of `make soak` (issue 8):
# the real `zhiku serve` on loopback over a generated corpus, with a fake
# OpenAI-compatible chat model (tests/fake_openai/server.py), driven for
# SOAK_SECONDS (default 600) by, at the same time:
#   * wrk POSTing /api/v1/search with rotating queries (SOAK_CONNS
#     connections, default 4), run as back-to-back SOAK_INTERVAL-second
#     (default 10) slices so that each slice reports its own percentiles;
#   * bench/soak_client.py: /api/v1/ask streamed and not streamed through
#     the fake model, uploads (JSON and multipart POST /api/v1/documents)
#     and deletes that keep a window of SOAK_LIVE_DOCS uploaded documents;
#   * a sample of the server's VmRSS after every slice.
# The server log's error and warning lines count as failures too (a
# request that failed inside the server, an answer not saved to its
# conversation); SOAK_ALLOW_WARN=1 tolerates the warnings.
# Prints one line per slice (search rps/p50/p90/p99/errors, ask and upload
# counts, p50/p99 and errors, RSS), then a verdict. Exits 1 when anything
# failed (a non-2xx answer, a socket error, a wrk error, an ask stream that
# did not end with `done`) or when RSS is not flat: over the second half of
# the run (the first half is warm-up) RSS may grow by at most
# SOAK_RSS_MAX_PCT percent (default 10) and SOAK_RSS_MAX_MB MB (default 20).
# The per-slice table is kept in SOAK_OUT (default build/soak/soak.tsv).
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/$BUILD/zhiku"
SECS=${SOAK_SECONDS:-600}
SLICE=${SOAK_INTERVAL:-10}
CONNS=${SOAK_CONNS:-4}
NFILES=${SOAK_FILES:-300}
KB=${SOAK_FILE_KB:-16}
MAX_PCT=${SOAK_RSS_MAX_PCT:-10}
MAX_MB=${SOAK_RSS_MAX_MB:-20}
OUTDIR="$ROOT/$BUILD/soak"
OUT=${SOAK_OUT:-$OUTDIR/soak.tsv}
[ -x "$BIN" ] || { echo "soak: no binary at $BIN (run make first)"; exit 1; }
command -v wrk >/dev/null || "$ROOT/tools/deps.sh" wrk >/dev/null || true
for c in wrk curl python3; do
    command -v "$c" >/dev/null || { echo "soak: needs $c"; exit 1; }
done
mkdir -p "$OUTDIR" "$(dirname "$OUT")"
W=$(mktemp -d /tmp/zhiku-soak.XXXXXX)
FAKE='' SRV='' CLIENT=''
cleanup() {
    local p
    for p in $CLIENT $SRV $FAKE; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    [ "${SOAK_KEEP:-0}" = 1 ] && echo "soak: work dir kept: $W" || rm -rf "$W"
}
trap cleanup EXIT
. "$ROOT/bench/lib.sh"

echo "soak: ${SECS}s in ${SLICE}s slices, wrk -c$CONNS, corpus $NFILES x ${KB} KB, build $BUILD"
python3 "$ROOT/bench/gen_corpus.py" "$W/corpus" "$NFILES" "$KB"
python3 - "$W/queries.txt" <<'PY'
import random, sys
rng = random.Random(11)
zh = "知识 管理 系统 文档 检索 企业 员工 数据 安全 权限 审批 流程 报销 财务 部门 会议 项目 客户 合同 服务器 数据库 网络 配置 部署 版本".split()
en = "system document search index query vector database server cluster backup policy employee access permission report budget".split()
with open(sys.argv[1], "w") as f:
    for _ in range(500):
        f.write(" ".join(rng.choice(zh + en) for _ in range(rng.randint(1, 4))) + "\n")
PY
D="$W/data"
"$BIN" --data-dir "$D" ingest --quiet --acl everyone "$W/corpus" | tail -1
"$BIN" --data-dir "$D" user add soak >/dev/null
TOKEN=$("$BIN" --data-dir "$D" token create --user soak --scopes search,ask,ingest 2>/dev/null)

FPF="$W/fake.port"
python3 "$ROOT/tests/fake_openai/server.py" --port 0 --portfile "$FPF" --flavor openai >"$W/fake.log" 2>&1 &
FAKE=$!
for _ in $(seq 100); do [ -s "$FPF" ] && break; sleep 0.1; done
[ -s "$FPF" ] || { cat "$W/fake.log"; echo "soak: fake model did not start"; exit 1; }
FPORT=$(cat "$FPF")

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
ZHIKU_LLM_PROVIDERS=fake ZHIKU_LLM_FAKE_BASE_URL="http://127.0.0.1:$FPORT/v1" ZHIKU_LLM_FAKE_MODEL=gpt-4o-mini \
ZHIKU_LLM_REWRITE_FOLLOWUPS=false ZHIKU_ANSWER_MIN_BM25=0 ZHIKU_ANSWER_MIN_SIMILARITY=0 \
ZHIKU_SERVER_RATE_LIMIT_PER_MINUTE=0 \
    "$BIN" --data-dir "$D" serve --listen "127.0.0.1:$PORT" >"$W/serve.log" 2>&1 &
SRV=$!
for _ in $(seq 600); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "$BASE/readyz" >/dev/null || { tail -20 "$W/serve.log"; echo "soak: server not ready"; exit 1; }
curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"query":"知识 管理"}' "$BASE/api/v1/search" >/dev/null || { echo "soak: first search failed"; exit 1; }

cat >"$W/search.lua" <<LUA
local queries = {}
for line in io.lines("$W/queries.txt") do queries[#queries + 1] = line end
local i = math.random(#queries)
request = function()
  i = i % #queries + 1
  return wrk.format("POST", "/api/v1/search", {["Authorization"] = "Bearer $TOKEN",
    ["Content-Type"] = "application/json"}, '{"query":"' .. queries[i] .. '","top_k":10}')
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %.1f %.2f %.2f %.2f %.2f\n", summary.requests, e.status,
    e.connect + e.read + e.write + e.timeout, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
LUA

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$SRV/status" 2>/dev/null || echo 0; }
RSS0=$(rss_kb)
echo "soak: server pid $SRV ready, RSS $((RSS0 / 1024)) MB; $("$BIN" --data-dir "$D" stats --json 2>/dev/null | head -c 200)"

python3 "$ROOT/bench/soak_client.py" --base "$BASE" --token "$TOKEN" --queries "$W/queries.txt" \
    --seconds "$SECS" --interval "$SLICE" --live "${SOAK_LIVE_DOCS:-20}" --out "$W/client.tsv" \
    >"$W/client.log" 2>&1 &
CLIENT=$!

printf 't_s\tsearch_n\tsearch_err\tsearch_rps\tp50_ms\tp90_ms\tp99_ms\tmax_ms\trss_mb\n' >"$OUT"
printf '%6s %8s %6s %7s %7s %7s %8s %4s | %5s %7s %7s %4s | %5s %4s %7s %4s | %7s\n' \
    t_s search rps p50 p90 p99 max err asks p50 p99 err ups dels p50 err rss_mb
start=$SECONDS
wrk_err=0
while [ $((SECONDS - start)) -lt "$SECS" ]; do
    left=$((SECS - (SECONDS - start)))
    d=$((left < SLICE ? left : SLICE))
    [ "$d" -ge 1 ] || break
    line=$(wrk -t1 -c"$CONNS" -d"${d}s" --timeout 10s -s "$W/search.lua" "$BASE/" 2>&1 | grep '^WRK ' || true)
    t=$((SECONDS - start))
    if [ -z "$line" ]; then wrk_err=$((wrk_err + 1)); echo "soak: wrk produced no summary at ${t}s"; continue; fi
    read -r _ n st so rps p50 p90 p99 mx <<<"$line"
    rss=$(rss_kb)
    printf '%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%.1f\n' "$t" "$n" $((st + so)) "$rps" "$p50" "$p90" "$p99" "$mx" \
        "$(awk -v r="$rss" 'BEGIN {print r / 1024}')" >>"$OUT"
    # the client's line for the same slice, if it wrote one yet
    c=$(tail -1 "$W/client.tsv" 2>/dev/null | grep -v '^t_s' || true)
    read -r _ an aerr ap50 ap99 un uerr dn derr up50 <<<"${c:-- 0 0 0 0 0 0 0 0 0}"
    printf '%6d %8d %6.0f %7.1f %7.1f %7.1f %8.1f %4d | %5s %7s %7s %4s | %5s %4s %7s %4s | %7.1f\n' \
        "$t" "$n" "$rps" "$p50" "$p90" "$p99" "$mx" $((st + so)) "$an" "$ap50" "$ap99" "$aerr" \
        "$un" "$dn" "$up50" $((uerr + derr)) "$(awk -v r="$rss" 'BEGIN {print r / 1024}')"
    kill -0 "$SRV" 2>/dev/null || { echo "soak: the server died"; tail -30 "$W/serve.log"; exit 1; }
done
set +e
wait "$CLIENT"; crc=$?
set -e
CLIENT=
cat "$W/client.log"

kill -TERM "$SRV"
set +e
for _ in $(seq 300); do kill -0 "$SRV" 2>/dev/null || break; sleep 0.1; done
wait "$SRV"; src=$?
set -e
SRV=

# the server's own complaints: an error line is a failure (a request
# that failed server-side); warnings are listed (e.g. an answer that could
# not be saved to its conversation) and fail too unless SOAK_ALLOW_WARN=1
slog_err=$(grep -c '^zhiku error' "$W/serve.log" || true)
slog_warn=$(grep -c '^zhiku warn' "$W/serve.log" || true)
if [ "$slog_err" != 0 ] || [ "$slog_warn" != 0 ]; then
    echo "soak: server log: $slog_err error lines, $slog_warn warnings; most frequent:"
    grep -E '^zhiku (error|warn)' "$W/serve.log" | sed -E 's/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -5
fi
[ "${SOAK_ALLOW_WARN:-0}" = 1 ] && slog_warn=0
cp "$W/serve.log" "$OUTDIR/serve.log"

# verdict
python3 - "$OUT" "$W/client.tsv" "$MAX_PCT" "$MAX_MB" "$wrk_err" "$crc" "$src" "$SECS" "$slog_err" "$slog_warn" <<'PY'
import sys
out, client, max_pct, max_mb = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
wrk_err, crc, src, secs = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
slog_err, slog_warn = int(sys.argv[9]), int(sys.argv[10])
rows = [l.rstrip("\n").split("\t") for l in open(out)][1:]
rows = [[float(x) for x in r] for r in rows if r and r[0]]
crows = [l.rstrip("\n").split("\t") for l in open(client)][1:] if client else []
crows = [[float(x) for x in r] for r in crows if r and r[0]]
bad = []
n = sum(r[1] for r in rows); serr = sum(r[2] for r in rows)
asks = sum(r[1] for r in crows); aerr = sum(r[2] for r in crows)
ups = sum(r[5] for r in crows); uerr = sum(r[6] for r in crows)
dels = sum(r[7] for r in crows); derr = sum(r[8] for r in crows)
print("soak: search %d requests, %d errors; ask %d, %d errors; uploads %d, %d errors; deletes %d, %d errors; wrk failures %d"
      % (n, serr, asks, aerr, ups, uerr, dels, derr, wrk_err))
if serr or aerr or uerr or derr or wrk_err: bad.append("errors")
if crc: bad.append("client exit %d" % crc)
if slog_err or slog_warn: bad.append("server log: %d errors, %d warnings" % (slog_err, slog_warn))
if src: bad.append("server exit %d after SIGTERM" % src)
if n == 0 or asks == 0 or ups == 0 or dels == 0: bad.append("an activity did not run")
p99s = sorted(r[6] for r in rows)
if p99s:
    print("soak: search p99 per slice: min %.1f ms, median %.1f ms, max %.1f ms; p50 median %.1f ms"
          % (p99s[0], p99s[len(p99s) // 2], p99s[-1], sorted(r[4] for r in rows)[len(rows) // 2]))
# RSS: second half only (the first half is warm-up: caches, arenas,
# SQLite page cache); compare the median of its first three samples with
# the median of its last three, so one sample's noise does not decide.
half = [r for r in rows if r[0] > secs / 2]
if len(half) >= 4:
    med = lambda v: sorted(v)[len(v) // 2]
    a = med([r[8] for r in half[:3]]); b = med([r[8] for r in half[-3:]])
    g = b - a; pct = 100.0 * g / a if a else 0
    flat = g < max_mb and pct < max_pct
    print("soak: RSS start %.1f MB, peak %.1f MB, end %.1f MB; second half %.1f -> %.1f MB (%+.1f MB, %+.1f%%): %s (bar < %g%% and < %g MB)"
          % (rows[0][8], max(r[8] for r in rows), rows[-1][8], a, b, g, pct, "flat" if flat else "NOT FLAT", max_pct, max_mb))
    if not flat: bad.append("RSS not flat")
else:
    print("soak: too few samples for an RSS verdict (run longer)")
    bad.append("too short")
print("soak: %s" % ("PASS" if not bad else "FAIL: " + ", ".join(bad)))
sys.exit(1 if bad else 0)
PY
