#!/bin/sh
# run.sh — the portal's browser test (part of `make test`).
# Starts a real `zhiku serve` on a fresh data dir (users alice and root, a
# small Chinese + English sample readable by everyone) with the fake
# OpenAI-compatible server (tests/fake_openai) as its chat provider, so the
# answer really streams token by token (the extractive answerer sends its
# answer in one event); waits for /readyz, runs portal.test.mjs in headless
# Chromium, stops both servers. ZK_WEB_DIR=1 serves web/ from disk instead
# of the copy compiled into the binary.
#   tests/browser/run.sh          against $ZHIKU_BIN (default build/zhiku)
#   tests/browser/run.sh --mock   against mock_server.mjs (UI only)
# Exit 77 (skip) when chromium, node or playwright-core is missing.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mode=real
[ "${1:-}" = "--mock" ] && mode=mock
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
ZHIKU_BIN=${ZHIKU_BIN:-$root/build/zhiku}
export ZK_ARTIFACTS="${ZK_ARTIFACTS:-$root/build/test-artifacts}"

skip() { echo "browser test skipped: $*"; exit 77; }

command -v node >/dev/null 2>&1 || skip "node is not installed (apt-get install nodejs npm)"
[ -x "$CHROMIUM" ] || skip "$CHROMIUM is not installed (apt-get install chromium)"
if [ ! -d "$here/node_modules/playwright-core" ]; then
    (cd "$here" && npm ci --no-audit --no-fund >/dev/null 2>&1) ||
        skip "playwright-core is not installed (cd tests/browser && npm ci)"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/zk-browser.XXXXXX")
server_pid=
fake_pid=
cleanup() {
    for pid in $server_pid $fake_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
url="http://127.0.0.1:$port"

if [ "$mode" = mock ]; then
    export ZK_USER=alice ZK_PASS=alice-pass-123 ZK_ADMIN_USER=admin ZK_ADMIN_PASS=admin-pass-123
    node "$here/mock_server.mjs" --port "$port" --web "$root/web" >"$work/server.log" 2>&1 &
    server_pid=$!
else
    [ -x "$ZHIKU_BIN" ] || skip "$ZHIKU_BIN is not built (make)"
    "$ZHIKU_BIN" serve --help >/dev/null 2>&1 || skip "$ZHIKU_BIN has no 'serve' verb yet"
    command -v python3 >/dev/null 2>&1 || skip "python3 is needed for the fake chat provider"
    export ZK_USER=alice ZK_PASS=alice-pass-123 ZK_ADMIN_USER=root ZK_ADMIN_PASS=root-pass-123
    # the chat provider: replies with a fixed cited answer, 12 bytes an event
    python3 "$root/tests/fake_openai/server.py" --port 0 --portfile "$work/fake.port" >"$work/fake.log" 2>&1 &
    fake_pid=$!
    i=0
    while [ ! -s "$work/fake.port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    [ -s "$work/fake.port" ] || { cat "$work/fake.log"; echo "0 passed, 1 failed"; exit 1; }
    fake_url="http://127.0.0.1:$(cat "$work/fake.port")"
    node -e 'fetch(process.argv[1] + "/_control", {method: "POST", body: JSON.stringify({
        chat_reply: "入职满一年的正式员工每年享有十天带薪年假。[1] 年假可以分次使用，每次至少半天。[1]",
        chat_chunk: 12})}).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$fake_url"
    {
        printf '[llm]\nproviders = fake\n[llm.fake]\nbase_url = %s/v1\nmodel = fake\n' "$fake_url"
        if [ -n "${ZK_WEB_DIR:-}" ]; then printf '[server]\nweb_dir = %s/web\n' "$root"; fi
    } >"$work/zhiku.conf"
    data="$work/data"
    mkdir -p "$data" "$work/sample"
    cp "$root/samples/员工手册.md" "$root/samples/onboarding.txt" "$root/samples/it-guide.md" "$work/sample/"
    echo "$ZK_PASS" | "$ZHIKU_BIN" --data-dir "$data" user add "$ZK_USER" --password-stdin >/dev/null
    echo "$ZK_ADMIN_PASS" | "$ZHIKU_BIN" --data-dir "$data" user add "$ZK_ADMIN_USER" --password-stdin --admin >/dev/null
    "$ZHIKU_BIN" --data-dir "$data" ingest --quiet --acl everyone "$work/sample" >"$work/ingest.log" 2>&1 ||
        { cat "$work/ingest.log"; echo "0 passed, 1 failed"; exit 1; }
    # shellcheck disable=SC2086  # ZHIKU_SERVE_ARGS is a word list on purpose
    "$ZHIKU_BIN" serve --config "$work/zhiku.conf" --data-dir "$data" --listen "127.0.0.1:$port" ${ZHIKU_SERVE_ARGS:-} >"$work/server.log" 2>&1 &
    server_pid=$!
fi

ready=0
i=0
while [ $i -lt 150 ]; do
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    if node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "$url/readyz" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.2
    i=$((i + 1))
done
if [ $ready -ne 1 ]; then
    echo "server did not become ready at $url/readyz; its log:"
    cat "$work/server.log"
    echo "0 passed, 1 failed"
    exit 1
fi

mkdir -p "$ZK_ARTIFACTS"
rc=0
ZK_URL="$url" CHROMIUM="$CHROMIUM" node "$here/portal.test.mjs" || rc=$?
if [ $rc -ne 0 ]; then
    echo "--- server log (last 40 lines) ---"
    tail -n 40 "$work/server.log"
fi
exit $rc
