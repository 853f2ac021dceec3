#!/bin/bash
# zh_fixtures_ask.sh — the foundation's bar on real Chinese documents:
# `zhiku ingest` of ../shared/data/fixtures/zh/*.html, then `zhiku ask` with
# a Chinese question about their content returns sentences from them with
# citations that resolve to real chunks and spans. Skipped (77) without
# ../shared (a user's clone has none; CI always has it).
source "${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
need sqlite3
FIX="${ZHIKU_SHARED:-$ZHIKU_ROOT/../shared}/data/fixtures/zh"
[ -d "$FIX" ] || skip "no $FIX (needs ../shared)"
D=$PWD/data
zk --data-dir "$D" ingest "$FIX"/dreq.zh-cn.html "$FIX"/first.zh-cn.html
assert_eq "$(summary_count "$OUT" indexed)" 2 "both Chinese HTML chapters indexed"
zk --data-dir "$D" ask --json "如何设置 dh_make 使用的环境变量？"
assert_not_contains "$OUT" '"not_found":true' "the question is answered"
assert_contains "$OUT" '"n":1' "the answer cites a source"
assert_contains "$OUT" 'DEBEMAIL' "the answer quotes the passage about DEBEMAIL"
chunk=$(printf '%s' "$OUT" | grep -o '"chunk":[0-9]*' | head -1 | cut -d: -f2)
doc=$(printf '%s' "$OUT" | grep -o '"id":"[^"]*"' | head -1 | sed 's/"id":"//; s/"$//')
start=$(printf '%s' "$OUT" | grep -o '"start":[0-9]*' | head -1 | cut -d: -f2)
end=$(printf '%s' "$OUT" | grep -o '"end":[0-9]*' | head -1 | cut -d: -f2)
row=$(sqlite3 "$D/zhiku.db" "SELECT d.ext_id || '|' || c.start_char || '|' || c.end_char FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id = $chunk")
assert_eq "${row%%|*}" "$doc" "the cited chunk belongs to the cited document"
cs=$(echo "$row" | cut -d'|' -f2); ce=$(echo "$row" | cut -d'|' -f3)
[ "$start" -ge "$cs" ] && [ "$end" -le "$ce" ] && [ "$start" -lt "$end" ] || fail "span $start-$end outside chunk $cs-$ce"
ok "the cited span $start-$end lies inside its chunk ($cs-$ce)"
finish
