#!/bin/bash
# http_bench.sh BUILD_DIR — the HTTP load test of `make bench` (issue #5):
#  * the gen_scale.py corpus of BENCH_HTTP_CHUNKS (default 100k) chunks,
#    ingested with the CLI and cached, shared with bench/scale_bench.sh
#    (bench/scale_data.sh); user `uall` (allowed every document through
#    group `all`) and its search/ask token;
#  * `zhiku serve` pinned to core 1, wrk pinned to core 0, POSTing
#    /api/v1/search with the corpus's queries, rotating, for BENCH_SECONDS
#    (default 20), once the server is idle (vector index loaded, any
#    background IVF build finished) and warmed by BENCH_WARMUP seconds
#    (default 5) of the same load: errors (must be 0), requests/s, p50/p99;
#  * the same queries through ret_search() in-process, pinned to core 1,
#    after the same warm-up: requests/s — the ratio HTTP/in-process shows
#    what HTTP, auth and JSON cost (bar: >= 0.8);
#  * the service's overhead on the model's time-to-first-token: a fake
#    model with zero latency, streamed /api/v1/ask, p50 of the time to the
#    first `event: token` (bar: <= 10 ms), on a server warmed by searching
#    the corpus's other queries (not the 60 measured ones).
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/$BUILD/zhiku"
N=${BENCH_HTTP_CHUNKS:-100000}
SECS=${BENCH_SECONDS:-20}
WARM=${BENCH_WARMUP:-5}
command -v wrk >/dev/null || "$ROOT/tools/deps.sh" wrk >/dev/null
W=$(mktemp -d /tmp/zhiku-http-bench.XXXXXX)
. "$ROOT/bench/lib.sh"
cleanup() { bench_cleanup; rm -rf "$W"; }
trap cleanup EXIT

C=$("$ROOT/bench/scale_data.sh" "$BUILD" "$N" | tail -1)
D="$C/data"
TOKEN=$(cat "$C/token")
grep -v '"' "$C/queries.txt" > "$W/queries.txt" || true
echo "corpus: $C: $("$BIN" --data-dir "$D" stats --json)"

PORT=$(free_port)
ZHIKU_SERVER_RATE_LIMIT_PER_MINUTE=0 taskset -c 1 "$BIN" --data-dir "$D" serve --listen 127.0.0.1:$PORT 2>"$W/serve.log" &
PIDS+=($!)
for _ in $(seq 600); do curl -sf 127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.1; done
wait_idle "${PIDS[0]}" 900 || { tail -5 "$W/serve.log"; exit 1; }
cat > "$W/search.lua" <<LUA
local queries = {}
for line in io.lines("$W/queries.txt") do queries[#queries + 1] = line end
local i = 0
request = function()
  i = i % #queries + 1
  local q = queries[i]:gsub('"', '')
  return wrk.format("POST", "/api/v1/search", {["Authorization"] = "Bearer $TOKEN",
    ["Content-Type"] = "application/json"}, '{"query":"' .. q .. '"}')
end
done = function(summary, latency, requests)
  io.write(string.format("wrk: %d requests, %d errors (status %d, socket %d), %.1f req/s, p50 %.2f ms, p99 %.2f ms\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
taskset -c 0 wrk -t1 -c4 -d${WARM}s --timeout 10s -s "$W/search.lua" http://127.0.0.1:$PORT/ >/dev/null
HTTP=$(taskset -c 0 wrk -t1 -c4 -d${SECS}s --timeout 10s -s "$W/search.lua" http://127.0.0.1:$PORT/ | grep '^wrk:')
echo "$HTTP"
kill -TERM "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true; PIDS=()
INPROC=$(taskset -c 1 "$ROOT/$BUILD/bench/search_inproc" "$D" "$W/queries.txt" "$SECS" uall "$WARM")
echo "$INPROC"
h=$(echo "$HTTP" | sed -n 's/.* \([0-9.]*\) req\/s.*/\1/p'); i=$(echo "$INPROC" | sed -n 's/.* = \([0-9.]*\) q\/s.*/\1/p')
echo "ratio HTTP/in-process requests/s: $(awk -v h="$h" -v i="$i" 'BEGIN {printf "%.2f", h / i}') (bar >= 0.80)"

# time to first token through the service, fake model with zero latency
FPORT=$(free_port)
python3 "$ROOT/tests/fake_openai/server.py" --port "$FPORT" --flavor openai >/dev/null 2>&1 &
PIDS+=($!)
sleep 0.5
PORT=$(free_port)
ZHIKU_LLM_PROVIDERS=fake ZHIKU_LLM_FAKE_BASE_URL=http://127.0.0.1:$FPORT/v1 ZHIKU_LLM_FAKE_MODEL=gpt-4o-mini \
ZHIKU_ANSWER_MIN_BM25=0 ZHIKU_ANSWER_MIN_SIMILARITY=0 ZHIKU_SERVER_RATE_LIMIT_PER_MINUTE=0 \
    "$BIN" --data-dir "$D" serve --listen 127.0.0.1:$PORT 2>"$W/serve2.log" &
PIDS+=($!)
for _ in $(seq 600); do curl -sf 127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.1; done
wait_idle "${PIDS[-1]}" 900 || { tail -5 "$W/serve2.log"; exit 1; }
python3 - "$PORT" "$TOKEN" "$W/queries.txt" "$FPORT" <<'PY'
import http.client, json, sys, time
port, token, qfile, fport = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
qs = [l.strip() for l in open(qfile, encoding="utf-8") if l.strip()][:60]
def ttft(host_port, path, body, headers):
    c = http.client.HTTPConnection("127.0.0.1", host_port, timeout=30)
    t0 = time.perf_counter(); c.request("POST", path, body, headers); r = c.getresponse()
    first = None
    while True:
        line = r.readline()
        if not line: break
        if first is None and (line.startswith(b"event: token") or line.startswith(b"data: {\"id\"") or line.startswith(b"data: {")):
            first = time.perf_counter() - t0
    c.close()
    return first
def search(q):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/api/v1/search", json.dumps({"query": q}).encode(), {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    c.getresponse().read()
    c.close()
for q in [l.strip() for l in open(qfile, encoding="utf-8") if l.strip()][60:]:
    search(q)   # warm-up on the queries not measured
zk, model = [], []
for q in qs:
    a = ttft(port, "/api/v1/ask", json.dumps({"question": q, "stream": True}).encode(), {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    b = ttft(fport, "/v1/chat/completions", json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": q}]}).encode(), {"Content-Type": "application/json"})
    if a is not None and b is not None: zk.append(a); model.append(b)
zk.sort(); model.sort()
if zk:
    p = len(zk) // 2
    print("time to first token: through zhiku p50 %.2f ms, model alone p50 %.2f ms, service overhead p50 %.2f ms (bar <= 10 ms), %d asks" % (zk[p]*1e3, model[p]*1e3, (zk[p]-model[p])*1e3, len(zk)))
else:
    print("time to first token: no streamed tokens (is an LLM provider configured?)")
PY
