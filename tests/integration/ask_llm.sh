#!/bin/bash
# ask_llm.sh — `zhiku ask --json` with an LLM provider configured only from
# the environment (ZHIKU_LLM_PROVIDERS=local, ZHIKU_LLM_LOCAL_BASE_URL=...)
# against the fake OpenAI-compatible server: the model's answer with its
# [n] markers validated, renumbered and scored (weak flag), the not-found
# gate answering without a model call, a local_only knowledge base with
# only a remote provider answered extractively, fallback to the extractive
# answer when every provider fails, and `zhiku usage` (text and --json).
# Run: tests/run.sh build ask_llm
ROOT="${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
source "$ROOT/tests/integration/lib.sh"
need sqlite3
need python3
need curl

D=$PWD/data
DB=$D/zhiku.db
C=$PWD/corpus
mkdir -p "$C"

PORTFILE=$PWD/port
python3 "$ROOT/tests/fake_openai/server.py" --port 0 --portfile "$PORTFILE" >server.log 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$PORTFILE" ] && break; sleep 0.05; done
[ -s "$PORTFILE" ] || fail "fake server did not start: $(cat server.log)"
PORT=$(cat "$PORTFILE")
ctl()   { curl -fsS -X POST "http://127.0.0.1:$PORT/_control" -d "$1" >/dev/null || fail "control $1"; }
chats() { curl -fsS "http://127.0.0.1:$PORT/_stats" | grep -oE '"chat": ?[0-9]+' | grep -oE '[0-9]+$'; }

cat >"$C/leave.md" <<'EOF2'
# Leave policy

Employees get fifteen days of annual leave per year. Unused leave expires at the end of March.
EOF2
cat >"$C/expenses.md" <<'EOF2'
# Expenses

Travel expenses must be filed within thirty days together with the receipts.
EOF2
zk --data-dir "$D" ingest "$C"

export ZHIKU_LLM_PROVIDERS=local
export ZHIKU_LLM_LOCAL_BASE_URL=http://127.0.0.1:$PORT/v1
export ZHIKU_LLM_LOCAL_MODEL=fake

# ---------------------------------------------------------------- model answer
ctl '{"chat_reply":"Employees get fifteen days of annual leave [1]. The moon is made of cheese [1]. See also [7].","chat_chunk":3}'
zk --data-dir "$D" ask --json "How many days of annual leave do employees get?"
assert_eq "$(json_str "$OUT" provider)" "local" "answered by the configured provider"
assert_contains "$OUT" '"answer":"Employees get fifteen days of annual leave [1]. The moon is made of cheese [1]. See also ."' "invalid marker dropped"
assert_eq "$(json_count "$OUT" chunk)" "1" "one cited source"
assert_contains "$OUT" '"weak":true' "the cheese claim makes the citation weak"
assert_match "$OUT" '"support":0\.[0-9]+' "support score reported"
assert_contains "$OUT" "leave.md" "cited the leave policy"
assert_eq "$(chats)" "1" "one model call"

# text mode prints the weak flag
zk --data-dir "$D" ask "How many days of annual leave do employees get?"
assert_contains "$OUT" "weak support" "text output flags weak support"

# ---------------------------------------------------------------- not-found gate
zk --data-dir "$D" ask --json "What is the capital of Mongolia?"
assert_contains "$OUT" '"not_found":true' "unrelated question: not found"
assert_eq "$(chats)" "2" "gate: no model call for the unrelated question"
zk --data-dir "$D" ask --json "蒙古的首都是哪里？"
assert_contains "$OUT" "知识库中没有找到" "Chinese not-found sentence"

# ---------------------------------------------------------------- every provider failing → extractive
ctl '{"mode":"500","count":0}'
zk --data-dir "$D" ask --json "How many days of annual leave do employees get?"
assert_eq "$(json_str "$OUT" provider)" "extractive" "provider down: extractive fallback"
assert_contains "$OUT" "fifteen days" "extractive answer"
ctl '{"mode":"ok"}'

# ---------------------------------------------------------------- local_only kb, remote provider
sql "$DB" "UPDATE kb SET local_only = 1"
N=$(chats)
ZHIKU_LLM_LOCAL_REMOTE=true zk --data-dir "$D" ask --json "How many days of annual leave do employees get?"
assert_eq "$(json_str "$OUT" provider)" "extractive" "local_only + remote provider: extractive"
assert_eq "$(chats)" "$N" "local_only: nothing sent to the remote provider"
sql "$DB" "UPDATE kb SET local_only = 0"

# ---------------------------------------------------------------- usage
zk --data-dir "$D" usage --json
assert_contains "$OUT" '"provider":"local"' "usage row for the provider"
assert_contains "$OUT" '"user":"admin"' "usage row for the caller"
assert_eq "$(json_num "$OUT" requests)" "2" "both model calls counted"
assert_eq "$(json_num "$OUT" prompt_tokens)" "200" "prompt tokens from the streams usage chunks"
zk --data-dir "$D" usage
assert_contains "$OUT" "local" "text usage lists the provider"
zk --data-dir "$D" usage --since 2999-01-01 --json
assert_eq "$OUT" '{"usage":[]}' "--since filters"
zk_expect 2 --data-dir "$D" usage --since yesterday
finish
