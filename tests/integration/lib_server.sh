# lib_server.sh — helpers for the tests that drive `zhiku serve` over HTTP
# (server_api.sh, server_ops.sh, server_llm.sh). Source it after lib.sh.
# Gives: free_port, srv_start / srv_stop (the real binary on a loopback
# port, waiting for /healthz and /readyz; SIGTERM must end it with exit 0),
# http (one curl request → STATUS, BODY, HDRS), and an EXIT trap that kills
# every background process a test started (servers, fake model servers).

need curl
need python3

CLEANUP_PIDS=()
on_exit_kill() { CLEANUP_PIDS+=("$1"); }
_lib_server_cleanup() {
    local p
    for p in "${CLEANUP_PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}
trap _lib_server_cleanup EXIT

# Slower builds (ASan) get longer waits.
SRV_WAIT_S=${SRV_WAIT_S:-60}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# srv_start DATA_DIR [--no-ready] [VAR=VALUE ...] — start `zhiku serve` on a
# free loopback port with the given environment (and global flags from
# SRV_FLAGS, e.g. -v); sets SRV_PID, SRV_PORT, BASE, SRV_LOG. Waits for
# /healthz, then (unless --no-ready) /readyz.
SRV_N=0
srv_start() {
    local data=$1; shift
    local wait_ready=1
    if [ "${1:-}" = "--no-ready" ]; then wait_ready=0; shift; fi
    local try
    for try in 1 2 3; do
        SRV_N=$((SRV_N + 1))
        SRV_PORT=$(free_port)
        BASE="http://127.0.0.1:$SRV_PORT"
        SRV_LOG=$PWD/server.$SRV_N.log
        # shellcheck disable=SC2086  # SRV_FLAGS: global flags such as -v, word-split
        env "$@" "$ZHIKU_BIN" ${SRV_FLAGS:-} serve --data-dir "$data" --listen "127.0.0.1:$SRV_PORT" >"$SRV_LOG" 2>&1 &
        SRV_PID=$!
        on_exit_kill "$SRV_PID"
        local i
        for i in $(seq $((SRV_WAIT_S * 20))); do
            if curl -fsS -o /dev/null --max-time 2 "$BASE/healthz" 2>/dev/null; then break; fi
            if ! kill -0 "$SRV_PID" 2>/dev/null; then break; fi
            sleep 0.05
        done
        if kill -0 "$SRV_PID" 2>/dev/null; then break; fi
        # lost the port race? try another one
        grep -q "cannot listen" "$SRV_LOG" || { cat "$SRV_LOG"; fail "zhiku serve exited at start-up"; }
    done
    curl -fsS -o /dev/null --max-time 2 "$BASE/healthz" || { cat "$SRV_LOG"; fail "zhiku serve never answered /healthz"; }
    [ "$wait_ready" = 1 ] || return 0
    srv_wait_ready
}

srv_wait_ready() {
    local i
    for i in $(seq $((SRV_WAIT_S * 20))); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/readyz")" = 200 ] && return 0
        kill -0 "$SRV_PID" 2>/dev/null || { cat "$SRV_LOG"; fail "zhiku serve died before /readyz"; }
        sleep 0.05
    done
    cat "$SRV_LOG"
    fail "/readyz never turned 200"
}

# srv_stop — SIGTERM, wait, require exit code 0.
srv_stop() {
    local pid=$SRV_PID rc i
    kill -TERM "$pid" 2>/dev/null || fail "server $pid already gone"
    for i in $(seq $((SRV_WAIT_S * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        tail -20 "$SRV_LOG"
        fail "zhiku serve still running ${SRV_WAIT_S}s after SIGTERM"
    fi
    set +e
    wait "$pid"
    rc=$?
    set -e
    if [ "$rc" != 0 ]; then tail -40 "$SRV_LOG"; fi
    assert_eq "$rc" 0 "zhiku serve exit code after SIGTERM"
    if grep -q "ERROR: \(Leak\|Address\)Sanitizer\|runtime error:" "$SRV_LOG"; then
        grep -A30 "Sanitizer\|runtime error" "$SRV_LOG" | head -60
        fail "sanitizer report in the server log"
    fi
}

# http METHOD PATH [CURL ARGS...] — one request to $BASE; sets STATUS, BODY
# and HDRS (response headers, CR stripped). Never fails by itself.
http() {
    local method=$1 path=$2; shift 2
    local b h
    b=$(mktemp) h=$(mktemp)
    STATUS=$(curl -s -X "$method" -o "$b" -D "$h" -w '%{http_code}' --max-time 30 "$@" "$BASE$path" || true)
    BODY=$(cat "$b")
    HDRS=$(tr -d '\r' <"$h")
    rm -f "$b" "$h"
}

# expect STATUS METHOD PATH [CURL ARGS...] — http, then require the status.
expect() {
    local want=$1; shift
    http "$@"
    if [ "$STATUS" != "$want" ]; then
        echo "--- body: $(printf '%s' "$BODY" | head -c 2000)"
        fail "$1 $2: HTTP $STATUS, expected $want"
    fi
    ok "$1 $2 → $want"
}

# Header value (case-insensitive name) from $HDRS.
hdr() { printf '%s\n' "$HDRS" | grep -i "^$1:" | head -1 | sed 's/^[^:]*: *//'; }

# The error code of {"error":{"code":...}}.
err_code() { printf '%s' "$BODY" | grep -o '"code":"[a-z_]*"' | head -1 | sed 's/"code":"//; s/"$//'; }

bearer() { printf 'Authorization: Bearer %s' "$1"; }

# fake_start NAME [ARGS...] — tests/fake_openai/server.py on a free port;
# sets FAKE_PORT (and NAME_PORT via printf -v).
fake_start() {
    local name=$1; shift
    local pf=$PWD/fake_$name.port
    rm -f "$pf"
    python3 "$ROOT/tests/fake_openai/server.py" --port 0 --portfile "$pf" "$@" >"fake_$name.log" 2>&1 &
    on_exit_kill $!
    local i
    for i in $(seq 200); do [ -s "$pf" ] && break; sleep 0.05; done
    [ -s "$pf" ] || fail "fake server $name did not start: $(cat "fake_$name.log")"
    FAKE_PORT=$(cat "$pf")
    printf -v "${name}_PORT" '%s' "$FAKE_PORT"
}
fake_ctl() { curl -fsS -X POST "http://127.0.0.1:$1/_control" -d "$2" >/dev/null || fail "fake control $2"; }
fake_stats() { curl -fsS "http://127.0.0.1:$1/_stats"; }

# slow_llm_start — an OpenAI-compatible chat endpoint that streams "word N "
# every SLOW_MS (default 100) ms for SLOW_N (default 100) chunks and writes
# to slow_llm.events: "start", then "closed N" when the client went away
# after N chunks, or "complete". Sets SLOW_PORT.
slow_llm_start() {
    cat >slow_llm.py <<'PY'
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
MS = int(os.environ.get("SLOW_MS", "100")); N = int(os.environ.get("SLOW_N", "100"))
def log(s):
    with open("slow_llm.events", "a") as f: f.write(s + "\n")
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        log("start")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for i in range(N):
                ev = {"id": "s", "object": "chat.completion.chunk", "created": 1, "model": "slow",
                      "choices": [{"index": 0, "delta": {"content": "word%d " % i}, "finish_reason": None}]}
                self.wfile.write(b"data: " + json.dumps(ev).encode() + b"\n\n"); self.wfile.flush()
                time.sleep(MS / 1000.0)
            ev = {"id": "s", "object": "chat.completion.chunk", "created": 1, "model": "slow",
                  "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            self.wfile.write(b"data: " + json.dumps(ev).encode() + b"\n\ndata: [DONE]\n\n"); self.wfile.flush()
            log("complete")
        except OSError:
            log("closed %d" % i)
        self.close_connection = True
s = ThreadingHTTPServer(("127.0.0.1", 0), H); s.daemon_threads = True
with open("slow_llm.port.tmp", "w") as f: f.write(str(s.server_address[1]))
os.replace("slow_llm.port.tmp", "slow_llm.port")
s.serve_forever(poll_interval=0.1)
PY
    rm -f slow_llm.port slow_llm.events
    python3 slow_llm.py >slow_llm.log 2>&1 &
    on_exit_kill $!
    local i
    for i in $(seq 200); do [ -s slow_llm.port ] && break; sleep 0.05; done
    [ -s slow_llm.port ] || fail "slow LLM did not start: $(cat slow_llm.log)"
    SLOW_PORT=$(cat slow_llm.port)
}

# sse_check FILE — parse a text/event-stream answer; prints key=value lines:
# order_ok (all token events, then exactly one done|error, nothing after),
# ntokens, terminal (done|error|none), concat_eq (tokens == done answer),
# bad_token (a token with a partial or dangling [n] marker), bad_marker
# (an [n] in the answer without citation n), ncitations, provider,
# not_found, answer (JSON-encoded), cites (doc:chunk list), error_code.
sse_check() {
    python3 - "$1" <<'PY'
import json, re, sys
raw = open(sys.argv[1], encoding="utf-8", errors="replace").read()
events = []
for block in re.split(r"\r?\n\r?\n", raw):
    ev, data = "message", []
    for line in block.splitlines():
        if line.startswith(":"): continue
        k, _, v = line.partition(":")
        v = v[1:] if v.startswith(" ") else v
        if k == "event": ev = v
        elif k == "data": data.append(v)
    if data: events.append((ev, "\n".join(data)))
names = [e for e, _ in events]
term = [i for i, e in enumerate(names) if e in ("done", "error")]
order_ok = len(term) == 1 and term[0] == len(names) - 1 and all(n == "token" for n in names[:-1])
tokens = [json.loads(d)["text"] for e, d in events if e == "token"]
out = {"order_ok": int(order_ok), "ntokens": len(tokens), "terminal": names[-1] if term else "none",
       "bad_token": 0, "bad_marker": 0, "concat_eq": 0, "ncitations": 0, "provider": "", "not_found": 0,
       "answer": "", "cites": "", "error_code": ""}
for t in tokens:
    if "[" in re.sub(r"\[\d+\]", "", t) or "]" in re.sub(r"\[\d+\]", "", t): out["bad_token"] = 1
if term:
    last = json.loads(events[-1][1])
    if names[-1] == "done":
        ans = last.get("answer", "")
        out["answer"] = json.dumps(ans, ensure_ascii=False)
        out["concat_eq"] = int("".join(tokens) == ans)
        cits = last.get("citations", [])
        out["ncitations"] = len(cits)
        ns = {c.get("n") for c in cits}
        out["bad_marker"] = int(any(int(m) not in ns for m in re.findall(r"\[(\d+)\]", ans)))
        out["cites"] = " ".join("%s:%s" % (c.get("doc"), c.get("chunk")) for c in cits)
        out["provider"] = last.get("provider", "")
        out["not_found"] = int(bool(last.get("not_found")))
    else:
        out["error_code"] = (last.get("error") or {}).get("code", "")
for k, v in out.items(): print("%s=%s" % (k, v))
PY
}
# sse_get KEY (from the last sse_check output in $SSE)
sse_get() { printf '%s\n' "$SSE" | grep "^$1=" | head -1 | sed "s/^$1=//"; }

# ask_stream TOKEN QUESTION [OUTFILE] — POST /api/v1/ask with stream:true
# through curl -N; the raw event stream in OUTFILE (default stream.txt),
# the parsed summary in $SSE, the elapsed seconds in $ELAPSED.
ask_stream() {
    local out=${3:-stream.txt} t0
    t0=$(date +%s%N)
    curl -sN --max-time 60 -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
        -d "{\"question\":\"$2\",\"stream\":true}" "$BASE/api/v1/ask" >"$out" || true
    ELAPSED=$(( ($(date +%s%N) - t0) / 1000000 ))
    SSE=$(sse_check "$out")
}
