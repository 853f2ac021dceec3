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
# free loopback port with the given environment; sets SRV_PID, SRV_PORT,
# BASE, SRV_LOG. Waits for /healthz, then (unless --no-ready) /readyz.
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
        env "$@" "$ZHIKU_BIN" serve --data-dir "$data" --listen "127.0.0.1:$SRV_PORT" >"$SRV_LOG" 2>&1 &
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
