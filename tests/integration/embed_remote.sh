#!/bin/bash
# embed_remote.sh — the real binary with [embedding] provider = openai against
# the fake OpenAI-compatible server (tests/fake_openai/server.py): ingest and
# vector search work; injected 429/500 are survived; a permanent 401 fails
# the ingest with a clear message and leaves the knowledge base untouched;
# `zhiku reindex` switches a builtin-built knowledge base to the remote model.
# Run: tests/run.sh build embed_remote
ROOT="${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
source "$ROOT/tests/integration/lib.sh"
need sqlite3
need python3
need curl

D=$PWD/data
DB=$D/zhiku.db
C=$PWD/corpus
mkdir -p "$C"

# ---------------------------------------------------------------- fake server
PORTFILE=$PWD/port
python3 "$ROOT/tests/fake_openai/server.py" --port 0 --portfile "$PORTFILE" --dim 48 >server.log 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$PORTFILE" ] && break; sleep 0.05; done
[ -s "$PORTFILE" ] || fail "fake server did not start: $(cat server.log)"
PORT=$(cat "$PORTFILE")
ctl()   { curl -fsS -X POST "http://127.0.0.1:$PORT/_control" -d "$1" >/dev/null || fail "control $1"; }
stats() { curl -fsS "http://127.0.0.1:$PORT/_stats"; }

kb_state() {   # everything an ingest may change
    zk_run --data-dir "$D" stats --json
    printf '%s\n' "$OUT" | sed -E 's/"(db_bytes|index_bytes|bytes|size)[a-z_]*":[0-9]+//g'
    sql "$DB" "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks),
                      (SELECT count(*) FROM vectors), (SELECT count(*) FROM changes),
                      (SELECT group_concat(coalesce(embed_model,'-') || '/' || coalesce(embed_dim,0)) FROM kb)"
}

# ---------------------------------------------------------------- corpus
cat >"$C/fox.txt" <<'EOF'
The quick brown fox jumps over the lazy dog near the river bank.
EOF
cat >"$C/volcano.md" <<'EOF'
# Volcanoes

Volcanoes erupt molten lava and volcanic ash; the magma chamber lies deep underground.
EOF
cat >"$C/tea.txt" <<'EOF'
Green tea is steamed or pan fired soon after picking, which keeps the leaves green.
EOF
cat >"$C/late.txt" <<'EOF'
Glaciers carve valleys slowly as the ice moves downhill under its own weight.
EOF

# ---------------------------------------------------------------- builtin first
zk --data-dir "$D" ingest "$C/fox.txt" "$C/volcano.md" "$C/tea.txt"
assert_eq "$(sql "$DB" "SELECT embed_model FROM kb WHERE name='default'")" "builtin-hash-v2" "kb built with builtin"

# ---------------------------------------------------------------- switch to remote
export ZHIKU_EMBEDDING_PROVIDER=openai
export ZHIKU_EMBEDDING_BASE_URL="http://127.0.0.1:$PORT/v1"
export ZHIKU_EMBEDDING_MODEL=fake-embed
export ZHIKU_EMBEDDING_DIMENSIONS=48
export ZHIKU_EMBEDDING_API_KEY=sk-integration-secret
export ZHIKU_EMBEDDING_BATCH_SIZE=2
export ZHIKU_EMBEDDING_MAX_RETRIES=4

zk_expect 5 --data-dir "$D" ingest "$C/late.txt"
assert_contains "$ERR" "zhiku reindex" "mismatch points to reindex"

# reindex fails cleanly while the server refuses the key, then succeeds
ctl '{"mode":"401","count":0,"reset_stats":true}'
before=$(kb_state)
zk_run --data-dir "$D" reindex
[ "$RC" != 0 ] || fail "reindex with a refused key succeeded"
assert_contains "$ERR" "embedding server refused the API key (HTTP 401)" "reindex 401 message"
assert_eq "$(kb_state)" "$before" "reindex failure leaves the kb unchanged"

ctl '{"mode":"ok","reset_stats":true}'
zk --data-dir "$D" reindex
assert_contains "$OUT" "openai:fake-embed (dimension 48)" "reindex summary"
assert_eq "$(sql "$DB" "SELECT embed_model || '/' || embed_dim FROM kb WHERE name='default'")" "openai:fake-embed/48" "kb model recorded"
assert_eq "$(sql "$DB" "SELECT count(*) FROM vectors WHERE length(vec) != 48*2")" "0" "every vector has the new dimension (float16)"
assert_contains "$(stats)" '"last_auth": "Bearer sk-integration-secret"' "api key sent as bearer"
zk --data-dir "$D" check
zk --data-dir "$D" search --mode vector --json "volcanic lava magma"
assert_contains "$(json_first_str "$OUT" title)" "Volcanoes" "vector search after reindex"

# ---------------------------------------------------------------- ingest remote, with faults
ctl '{"mode":"429","count":2,"retry_after":"0.1","reset_stats":true}'
zk --data-dir "$D" ingest "$C/late.txt"
s=$(stats)
assert_contains "$s" '"faults": 2' "two 429s injected"
zk --data-dir "$D" search --mode vector --json "glaciers ice valleys"
assert_contains "$(json_first_str "$OUT" title)" "Glaciers" "vector search finds the new document"

echo "Sourdough bread rises slowly thanks to wild yeast and lactic bacteria." >"$C/bread.txt"
ctl '{"mode":"500","count":3,"reset_stats":true}'
zk --data-dir "$D" ingest "$C/bread.txt"
assert_contains "$(stats)" '"faults": 3' "three 500s injected"
zk --data-dir "$D" search --mode vector --json "wild yeast bread"
assert_contains "$(json_first_str "$OUT" title)" "Sourdough" "vector search after surviving 500s"

# ---------------------------------------------------------------- permanent 401
echo "Honey bees communicate the direction of flowers with a waggle dance." >"$C/bees.txt"
before=$(kb_state)
ctl '{"mode":"401","count":0,"reset_stats":true}'
zk_run --data-dir "$D" ingest "$C/bees.txt"
[ "$RC" != 0 ] || fail "ingest with a refused key succeeded"
assert_contains "$ERR" "embedding server refused the API key (HTTP 401): Incorrect API key" "ingest 401 message"
assert_not_contains "$ERR$OUT" "sk-integration-secret" "api key not printed"
assert_eq "$(stats | grep -o '"embeddings": [0-9]*')" '"embeddings": 1' "401 is not retried"
ctl '{"mode":"ok"}'
assert_eq "$(kb_state)" "$before" "failed ingest leaves the kb exactly as it was"
zk --data-dir "$D" check

finish
