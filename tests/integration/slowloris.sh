#!/bin/bash
# slowloris.sh — the header deadline of `zhiku serve` ([server]
# header_timeout_ms): a client trickling header bytes (never idle, so MHD's
# inactivity timeout never fires) is cut within the deadline plus slack; a
# client sending its headers slowly but within the deadline is served; a
# kept-alive connection serves several requests; many trickling clients from
# one address (127.0.0.2, held to max_connections_per_ip) neither starve
# requests from another address nor survive the deadline; afterwards the
# server is healthy and exits 0 on SIGTERM.
# Run: tests/run.sh build slowloris
ROOT="${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
source "$ROOT/tests/integration/lib.sh"
source "$ROOT/tests/integration/lib_server.sh"

D=$PWD/data
DEADLINE_MS=2000
PER_IP=8
python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.2", 0))' 2>/dev/null ||
    skip "cannot bind 127.0.0.2 (needed for a second client address)"

printf '%s\n' '{"id":"w","title":"Wombats","text":"The wombat burrow inspection happens every Tuesday."}' >docs.jsonl
zk --data-dir "$D" ingest --acl everyone --jsonl docs.jsonl
zk --data-dir "$D" user add alice
zk --data-dir "$D" token create --user alice --scopes search
H=(-H "$(bearer "$OUT")" -H 'Content-Type: application/json')

# a long idle timeout, so only the header deadline can explain a cut
srv_start "$D" ZHIKU_SERVER_HEADER_TIMEOUT_MS=$DEADLINE_MS ZHIKU_SERVER_IDLE_TIMEOUT_S=60 \
    ZHIKU_SERVER_MAX_CONNECTIONS_PER_IP=$PER_IP ZHIKU_LOG_LEVEL=info

cat >slow.py <<'PY'
import socket, sys, threading, time
port, deadline = int(sys.argv[1]), float(sys.argv[2]) / 1000
mode = sys.argv[3]

def trickle(src, limit):
    """Send a request line, then one header byte every 0.25 s; seconds until
    the server closed the connection (None: still open after limit)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(src, 0))
    except OSError:
        return 0.0
    t0 = time.time()
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        s.settimeout(0.25)
        while time.time() - t0 < limit:
            s.sendall(b"a")
            try:
                if s.recv(4096) == b"":
                    return time.time() - t0
            except socket.timeout:
                pass
    except OSError:
        return time.time() - t0
    finally:
        s.close()
    return None

if mode == "one":
    r = trickle("127.0.0.1", deadline * 4)
    print("closed=%s" % ("open" if r is None else "%.2f" % r))
elif mode == "slow_ok":
    # headers over ~40% of the deadline, then complete: must be answered
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: abcdefgh\r\n\r\n"
    step = deadline * 0.4 / len(req)
    for i in range(len(req)):
        s.sendall(req[i:i + 1]); time.sleep(step)
    print("status=%s" % s.recv(4096).split(b"\r\n", 1)[0].decode())
elif mode == "keepalive":
    # three requests on one connection, 0.4 deadline apart: each is answered
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    got = 0
    for i in range(3):
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"ok\n" not in data:
            chunk = s.recv(4096)
            if not chunk: break
            data += chunk
        if data.startswith(b"HTTP/1.1 200"): got += 1
        time.sleep(deadline * 0.4)
    print("answered=%d" % got)
elif mode == "flood":
    n = int(sys.argv[4])
    res = [None] * n
    def run(i): res[i] = trickle("127.0.0.2", deadline * 4)
    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts: t.start()
    for t in ts: t.join()
    still = sum(1 for r in res if r is None)
    print("open=%d" % still)
    print("max=%.2f" % max(r for r in res if r is not None) if still < n else "max=none")
PY

note "one trickling client (a header byte every 0.25 s; deadline ${DEADLINE_MS} ms)"
r=$(python3 slow.py "$SRV_PORT" $DEADLINE_MS one)
echo "$r"
secs=${r#closed=}
[ "$secs" != open ] || fail "a trickling client was still connected after 4x the deadline"
python3 -c "import sys; t=float(sys.argv[1]); sys.exit(0 if 1.8 <= t <= 4.0 else 1)" "$secs" ||
    fail "trickling client closed after $secs s, expected within [1.8, 4.0] (deadline 2 s + slack)"
ok "a trickling client is cut after $secs s"
grep -q "no complete request headers" "$SRV_LOG" || fail "the cut is not logged"
ok "the cut is logged"

note "slow but complete headers, and keep-alive"
r=$(python3 slow.py "$SRV_PORT" $DEADLINE_MS slow_ok)
assert_eq "$r" "status=HTTP/1.1 200 OK" "headers sent over 0.8 s (under the deadline) are answered"
r=$(python3 slow.py "$SRV_PORT" $DEADLINE_MS keepalive)
assert_eq "$r" "answered=3" "a kept-alive connection serves 3 requests 0.8 s apart"

NFLOOD=24
note "$NFLOOD trickling clients from 127.0.0.2 (limit $PER_IP per address) while 127.0.0.1 searches"
python3 slow.py "$SRV_PORT" $DEADLINE_MS flood $NFLOOD >flood.txt 2>&1 &
FLOOD=$!
on_exit_kill $FLOOD
sleep 0.5
worst=0
for i in $(seq 10); do
    t0=$(date +%s%N)
    expect 200 POST /api/v1/search "${H[@]}" -d '{"query":"wombat"}'
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    [ $ms -gt $worst ] && worst=$ms
    sleep 0.2
done
ok "10 searches from another address answered during the flood (slowest ${worst} ms)"
[ $worst -lt 3000 ] || fail "a search took ${worst} ms during the flood"
wait $FLOOD || fail "flood client failed: $(cat flood.txt)"
cat flood.txt
assert_eq "$(grep '^open=' flood.txt)" "open=0" "no trickling client survived 4x the deadline"
max=$(grep '^max=' flood.txt | cut -d= -f2)
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 4.5 else 1)" "$max" ||
    fail "the slowest trickler was cut after $max s (deadline 2 s)"
ok "every trickler was cut or refused within $max s"

note "afterwards"
expect 200 GET /healthz
r=$(python3 slow.py "$SRV_PORT" $DEADLINE_MS slow_ok)
assert_eq "$r" "status=HTTP/1.1 200 OK" "the flooded address can connect again"
srv_stop
finish
