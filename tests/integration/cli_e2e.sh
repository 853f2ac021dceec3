#!/bin/bash
# cli_e2e.sh — end-to-end tour of the zhiku CLI on a small mixed corpus:
# ingest (Markdown/TXT/HTML, GBK and UTF-16, JSONL), search (--json, modes,
# --batch), ask (Chinese, English, not found), re-ingest and replacement,
# docs list/show/rm, stats, check, global options, usage and config errors.
# Run: tests/run.sh build cli_e2e
source "${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
need sqlite3
need iconv

D=$PWD/data
DB=$D/zhiku.db
C=$PWD/corpus
mkdir -p "$C/sub"

# ---------------------------------------------------------------- fixtures
cat >"$C/guide.md" <<'EOF'
# 知库使用指南

知库是一个企业知识库系统。它支持中文和英文的混合检索，并给出带引用的回答。

## 安装步骤

首先安装依赖库，然后使用 make 命令编译知库的源代码。编译完成后运行自检程序。

## 数据备份

管理员应当每天备份数据目录，备份文件保存在异地机房。
EOF
cat >"$C/fox.txt" <<'EOF'
The quick brown fox jumps over the lazy dog. Photosynthesis converts sunlight into chemical energy inside chloroplasts.
EOF
cat >"$C/sub/volcano.html" <<'EOF'
<!DOCTYPE html>
<html><head><title>Volcano Facts</title>
<script>var zzscriptsecret = "should never be indexed";</script>
<style>body { color: red; } .zzstylesecret {}</style></head>
<body><nav><a href="/">zznavmenu home</a> <a href="/x">zznavmenu about</a></nav>
<h1>Volcanoes</h1><p>Volcanoes erupt molten lava and volcanic ash during an eruption.</p>
<p>The magma chamber lies deep underground.</p></body></html>
EOF
printf '长城是中国古代的军事防御工程，绵延上万里。\n秦始皇统一六国后修筑了长城。\n' | iconv -f UTF-8 -t GBK >"$C/greatwall-gbk.txt"
{ printf '\xff\xfe'; printf 'Glaciers are slow rivers of ice that carve valleys over millennia.\n' | iconv -f UTF-8 -t UTF-16LE; } >"$C/glacier-utf16.txt"
# a PNG (magic number) — random bytes alone are not reliably detected as binary
{ printf '\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR'; head -c 2048 /dev/zero; } >"$C/blob.bin"

# ------------------------------------------------------------------ ingest
note "ingest a folder of 5 supported files and 1 unsupported"
zk --data-dir "$D" ingest "$C"
echo "$OUT"
assert_eq "$(summary_count "$OUT" indexed)" 5 "indexed count"
assert_eq "$(summary_count "$OUT" failed)" 0 "failed count"
assert_eq "$(summary_count "$OUT" skipped)" 1 "skipped count"
assert_match "$OUT" "^skipped +$C/blob.bin" "binary file reported as skipped"
assert_eq "$(sql "$DB" "SELECT count(*) FROM documents WHERE status='indexed'")" 5 "documents in zhiku.db"
assert_eq "$(sql "$DB" "SELECT count(*) FROM documents WHERE ext_id LIKE '%blob.bin'")" 0 "binary file not stored"

note "format-specific extraction"
zk --data-dir "$D" docs show "$C/guide.md" --json
assert_contains "$OUT" '"heading":"知库使用指南 > 安装步骤"' "Markdown heading path kept"
assert_contains "$OUT" '"title":"知库使用指南"' "Markdown title from first heading"
zk --data-dir "$D" docs show "$C/sub/volcano.html" --json
assert_contains "$OUT" 'molten lava' "HTML body text kept"
assert_contains "$OUT" '"title":"Volcano Facts"' "HTML <title> used"
for junk in zzscriptsecret zzstylesecret zznavmenu; do
    assert_not_contains "$OUT" "$junk" "HTML drops $junk"
done
zk --data-dir "$D" docs show "$C/greatwall-gbk.txt" --json
assert_contains "$OUT" '秦始皇统一六国' "GBK file decoded"
zk --data-dir "$D" docs show "$C/glacier-utf16.txt" --json
assert_contains "$OUT" 'slow rivers of ice' "UTF-16LE file decoded"
assert_not_contains "$(json_str "$OUT" text)" $'\xef\xbb\xbf' "UTF-16 BOM not kept as U+FEFF"

# ------------------------------------------------------------------ search
HIT_FIELDS="id source title heading chunk snippet score bm25_rank vector_rank"
check_hits() {   # JSON WHAT — every hit carries every HIT field
    local n f c
    n=$(json_count "$1" snippet)
    [ "$n" -ge 1 ] || fail "$2: no hits in $1"
    for f in $HIT_FIELDS; do
        c=$(json_count "$1" "$f")
        # "id" also appears nowhere else; "chunk" only in hits
        [ "$c" = "$n" ] || fail "$2: $n hits but field \"$f\" appears $c times: $1"
    done
    ok "$2: $n hits, each with $HIT_FIELDS"
}

note "search --json"
zk --data-dir "$D" search --json 长城 修筑
check_hits "$OUT" "search 长城"
assert_eq "$(json_first_str "$OUT" id)" "$C/greatwall-gbk.txt" "top hit for 长城 (GBK doc)"
zk --data-dir "$D" search --json photosynthesis chloroplasts
check_hits "$OUT" "search photosynthesis"
assert_eq "$(json_first_str "$OUT" id)" "$C/fox.txt" "top hit for photosynthesis"
zk --data-dir "$D" search --json 编译
assert_eq "$(json_first_str "$OUT" heading)" "知库使用指南 > 安装步骤" "top hit heading for 编译"

note "search --mode"
zk --data-dir "$D" search --json --mode bm25 volcanic lava
check_hits "$OUT" "bm25 mode"
assert_eq "$(json_num "$OUT" vector_rank | sort -u)" null "bm25 mode: vector_rank always null"
assert_eq "$(json_num "$OUT" bm25_rank | head -1)" 1 "bm25 mode: first bm25_rank"
assert_eq "$(json_first_str "$OUT" id)" "$C/sub/volcano.html" "bm25 top hit for lava"
zk --data-dir "$D" search --json --mode vector glaciers valleys ice
check_hits "$OUT" "vector mode"
assert_eq "$(json_num "$OUT" bm25_rank | sort -u)" null "vector mode: bm25_rank always null"
assert_eq "$(json_first_str "$OUT" id)" "$C/glacier-utf16.txt" "vector top hit for glaciers"
zk --data-dir "$D" search --json --mode hybrid glaciers valleys ice
check_hits "$OUT" "hybrid mode"
assert_match "$OUT" '"bm25_rank":1,"vector_rank":1' "hybrid: top hit ranked by both lists"
zk --data-dir "$D" search --json --mode bm25 zzscriptsecret
assert_eq "$(json_count "$OUT" snippet)" 0 "script text not searchable"
zk --data-dir "$D" search --json --top 2 知库
assert_ge 2 "$(json_count "$OUT" snippet)" "--top 2 caps hits"
zk_expect 2 --data-dir "$D" search --mode fuzzy x
ok "unknown --mode is a usage error"

# --------------------------------------------------------------------- ask
check_citations() {   # JSON WHAT
    local n f
    n=$(json_count "$1" start)
    [ "$n" -ge 1 ] || fail "$2: no citations: $1"
    for f in n id source title heading chunk start end; do
        [ "$(json_count "$1" "$f")" = "$n" ] || fail "$2: citation field \"$f\" missing: $1"
    done
    ok "$2: $n citations with n/id/source/title/heading/chunk/start/end"
    local chunk start end
    chunk=$(json_num "$1" chunk | head -1); start=$(json_num "$1" start | head -1); end=$(json_num "$1" end | head -1)
    assert_eq "$(sql "$DB" "SELECT count(*) FROM chunks WHERE id=$chunk")" 1 "$2: cited chunk $chunk exists"
    assert_eq "$(sql "$DB" "SELECT start_char <= $start AND $start < $end AND $end <= end_char FROM chunks WHERE id=$chunk")" 1 \
        "$2: cited span [$start,$end) inside chunk $chunk"
}
note "ask"
zk --data-dir "$D" ask --json 如何编译知库
echo "$OUT"
assert_contains "$OUT" '[1]' "Chinese answer cites [1]"
assert_contains "$(json_first_str "$OUT" answer)" 'make' "Chinese answer uses the install passage"
assert_not_contains "$OUT" '"not_found":true' "Chinese answer found"
check_citations "$OUT" "ask zh"
assert_eq "$(json_first_str "$OUT" id)" "$C/guide.md" "zh citation document"
zk --data-dir "$D" ask --json "What do volcanoes erupt?"
echo "$OUT"
assert_contains "$OUT" '[1]' "English answer cites [1]"
assert_contains "$OUT" 'lava' "English answer mentions lava"
check_citations "$OUT" "ask en"
zk --data-dir "$D" ask --json "quantum chromodynamics gluon confinement"
assert_contains "$OUT" '"not_found":true' "unrelated English question: not_found"
assert_eq "$(json_count "$OUT" start)" 0 "not_found has no citations"
zk --data-dir "$D" ask --json 量子色动力学的夸克禁闭
assert_contains "$OUT" '"not_found":true' "unrelated Chinese question: not_found"
zk --data-dir "$D" ask 如何编译知库
assert_contains "$OUT" '[1]' "plain-text ask"

# ------------------------------------------------------------------- JSONL
note "ingest --jsonl"
cat >"$PWD/bulk.jsonl" <<'EOF'
{"id":"doc-rust","title":"Rust","text":"Rust is a systems programming language focused on memory safety and fearless concurrency.","metadata":{"lang":"en","team":"infra"}}
{"_id":"doc-panda","title":"熊猫","text":"大熊猫是中国特有的哺乳动物，主要以竹子为食，栖息在四川的山林中。"}
{this is not json
{"title":"no id here","text":"a line without an id"}
{"id":"doc-sax","text":"The saxophone is a woodwind instrument usually made of brass. 萨克斯管是木管乐器。"}
EOF
zk_expect 1 --data-dir "$D" ingest --jsonl "$PWD/bulk.jsonl"
echo "$OUT"
assert_eq "$(summary_count "$OUT" indexed)" 3 "JSONL indexed"
assert_eq "$(summary_count "$OUT" failed)" 2 "JSONL failed lines"
assert_match "$OUT" '^failed .*:3: .*JSON' "bad JSON line reported with a reason"
assert_match "$OUT" '^failed .*:4: .*id' "line without id reported with a reason"
zk --data-dir "$D" docs show doc-rust --json
assert_contains "$OUT" '"team":"infra"' "JSONL metadata kept"
assert_contains "$OUT" '"title":"Rust"' "JSONL title kept"
zk --data-dir "$D" search --json --mode bm25 竹子
assert_eq "$(json_first_str "$OUT" id)" doc-panda "JSONL _id doc searchable"
zk --data-dir "$D" search --json --mode bm25 saxophone
assert_eq "$(json_first_str "$OUT" id)" doc-sax "JSONL doc without title searchable"

# ------------------------------------------------------------------- batch
note "search --batch"
cat >"$PWD/queries.jsonl" <<'EOF'
{"_id":"q1","text":"知库 备份 编译 数据目录"}
{"_id":"q2","text":"memory safety concurrency"}
{"_id":"q3","text":"长城"}
{"_id":"q4","text":"zzzqqqxxx"}
EOF
zk --data-dir "$D" search --batch "$PWD/queries.jsonl" --top 5
echo "$OUT"
assert_eq "$(printf '%s\n' "$OUT" | grep -c '^{"_id":')" 4 "one batch line per query"
i=0
while IFS= read -r line; do
    i=$((i + 1))
    assert_eq "$(json_first_str "$line" _id)" "q$i" "batch line $i _id"
    ids=$(json_str "$line" id)
    [ -z "$(printf '%s' "$ids" | sort | uniq -d)" ] || fail "batch line $i repeats a document: $line"
    nh=$(json_count "$line" score)
    [ "$nh" -le 5 ] || fail "batch line $i: $nh hits > --top 5"
    [ "$(json_count "$line" chunk)" = "$nh" ] || fail "batch line $i: hit without chunk"
    scores=$(json_num "$line" score)
    [ "$scores" = "$(printf '%s\n' "$scores" | sort -g -r)" ] || fail "batch line $i: scores not descending: $scores"
    ok "batch line $i: $nh distinct documents, descending scores"
done <<<"$OUT"
assert_eq "$(json_first_str "$(sed -n 1p <<<"$OUT")" id)" "$C/guide.md" "q1 top document (3-chunk doc counted once)"
assert_eq "$(json_first_str "$(sed -n 2p <<<"$OUT")" id)" doc-rust "q2 top document"
assert_eq "$(json_first_str "$(sed -n 3p <<<"$OUT")" id)" "$C/greatwall-gbk.txt" "q3 top document"

# -------------------------------------------------------- re-ingest, replace
note "re-ingest unchanged"
zk --data-dir "$D" ingest "$C"
assert_eq "$(summary_count "$OUT" unchanged)" 5 "all unchanged"
assert_eq "$(summary_count "$OUT" indexed)" 0 "none indexed"
assert_eq "$(summary_count "$OUT" replaced)" 0 "none replaced"
zk_expect 1 --data-dir "$D" ingest --jsonl "$PWD/bulk.jsonl"
assert_eq "$(summary_count "$OUT" unchanged)" 3 "JSONL docs unchanged"

note "modify one file"
printf 'Penguins live in Antarctica and eat krill in the cold southern ocean.\n' >"$C/fox.txt"
zk --data-dir "$D" ingest "$C"
assert_eq "$(summary_count "$OUT" replaced)" 1 "one replaced"
assert_eq "$(summary_count "$OUT" unchanged)" 4 "others unchanged"
assert_match "$OUT" "^replaced +$C/fox.txt" "fox.txt reported replaced"
zk --data-dir "$D" search --json --mode bm25 photosynthesis chloroplasts
assert_eq "$(json_count "$OUT" snippet)" 0 "old text no longer searchable"
zk --data-dir "$D" search --json --mode bm25 penguins krill
assert_eq "$(json_first_str "$OUT" id)" "$C/fox.txt" "new text searchable"
assert_eq "$(sql "$DB" "SELECT version FROM documents WHERE ext_id='$C/fox.txt'")" 2 "document version bumped"
assert_eq "$(sql "$DB" "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.ext_id='$C/fox.txt'")" \
    "$(sql "$DB" "SELECT nchunks FROM documents WHERE ext_id='$C/fox.txt'")" "no stale chunks left"

# -------------------------------------------------------------------- docs
note "docs list / show / rm"
zk --data-dir "$D" docs list
assert_eq "$(printf '%s\n' "$OUT" | grep -c indexed)" 8 "docs list shows 8 documents"
zk --data-dir "$D" docs list --json
assert_eq "$(json_count "$OUT" doc)" 8 "docs list --json"
assert_contains "$OUT" '"id":"doc-panda"' "docs list --json has the JSONL id"
numid=$(sql "$DB" "SELECT id FROM documents WHERE ext_id='doc-panda'")
zk --data-dir "$D" docs show "$numid"
assert_contains "$OUT" 'doc-panda' "docs show by numeric id"
zk_expect 3 --data-dir "$D" docs show no-such-document
ok "docs show of a missing document exits 3"
zk --data-dir "$D" docs rm doc-panda
assert_contains "$OUT" 'removed doc-panda' "docs rm"
zk --data-dir "$D" search --json --mode bm25 竹子 大熊猫
assert_not_contains "$OUT" 'doc-panda' "removed doc not found by bm25"
zk --data-dir "$D" search --json --mode vector 大熊猫 竹子
assert_not_contains "$OUT" 'doc-panda' "removed doc not found by vector search"
assert_eq "$(sql "$DB" "SELECT count(*) FROM documents WHERE ext_id='doc-panda'")" 0 "document row gone"
zk --data-dir "$D" check
assert_eq "$(printf '%s\n' "$OUT" | tail -1)" ok "check after rm"
zk_expect 3 --data-dir "$D" docs rm doc-panda
ok "docs rm of a missing document exits 3"

# ------------------------------------------------------------ stats, check
note "stats / check"
zk --data-dir "$D" stats --json
echo "$OUT"
assert_eq "$(json_num "$OUT" documents)" 7 "stats documents"
nchunks=$(sql "$DB" "SELECT count(*) FROM chunks")
assert_eq "$(json_num "$OUT" chunks)" "$nchunks" "stats chunks = chunks table"
assert_eq "$(json_num "$OUT" vectors)" "$nchunks" "stats vectors = chunks"
assert_eq "$(json_num "$OUT" embedding_dim)" "$("$ZHIKU_BIN" config | sed -n "s/^dimensions = \([0-9]*\).*/\1/p")" "stats embedding_dim = configured dimensions"
zk --data-dir "$D" check
assert_eq "$(printf '%s\n' "$OUT" | tail -1)" ok "check ok"
assert_eq "$(sqlite3 "$DB" 'PRAGMA integrity_check')" ok "sqlite integrity_check"

# ------------------------------------------------------------------ optimize
note "optimize"
zk --data-dir "$D" search --json --mode bm25 长城 photosynthesis volcanic lava; before=$OUT
assert_contains "$before" volcano.html "hits to compare"
segs=$(sql "$DB" "SELECT count(DISTINCT segid) FROM chunks_fts_idx")
zk --data-dir "$D" optimize
assert_contains "$OUT" "full-text index: $segs segment" "optimize reports the segments it found"
assert_contains "$OUT" "-> 1 in" "optimize leaves one segment"
assert_eq "$(sql "$DB" "SELECT count(DISTINCT segid) FROM chunks_fts_idx")" 1 "one segment in the index"
zk --data-dir "$D" search --json --mode bm25 长城 photosynthesis volcanic lava
assert_eq "$(printf '%s' "$OUT" | sed 's/"took_ms": *[0-9.]*//')" "$(printf '%s' "$before" | sed 's/"took_ms": *[0-9.]*//')" "same BM25 hits after optimize"
zk --data-dir "$D" optimize
assert_contains "$OUT" "1 segment -> 1" "optimize again: nothing to merge"
zk --data-dir "$D" check
assert_eq "$(printf '%s\n' "$OUT" | tail -1)" ok "check ok after optimize"
zk_expect 2 --data-dir "$D" optimize extra
ok "optimize with an argument exits 2"

# --------------------------------------------------------- global options
note "global options"
zk --data-dir "$D" stats --json; before=$OUT
zk stats --json --data-dir "$D"
assert_eq "$OUT" "$before" "--data-dir after the verb"
zk stats --data-dir="$D" --json
assert_eq "$OUT" "$before" "--data-dir=DIR"
OUT=$(ZHIKU_DATA_DIR="$D" "$ZHIKU_BIN" stats --json) || fail "ZHIKU_DATA_DIR stats failed"
assert_eq "$OUT" "$before" "ZHIKU_DATA_DIR"
zk -v --data-dir "$D" check
ok "-v accepted"

note "help and usage errors"
zk --help
assert_contains "$OUT" usage "zhiku --help"
for v in ingest search ask docs stats check optimize config; do
    zk "$v" --help
    assert_contains "$OUT" "usage: zhiku $v" "zhiku $v --help"
done
zk_expect 2 --data-dir "$D" frobnicate
assert_contains "$ERR" "unknown verb" "unknown verb exits 2"
zk_expect 2
ok "no verb exits 2"
for v in ingest search ask docs stats check config; do
    zk_expect 2 --data-dir "$D" "$v" --no-such-option
done
ok "unknown option exits 2 for every verb"
zk_expect 2 --data-dir "$D" ingest
ok "ingest without PATH exits 2"
zk_expect 2 --data-dir "$D" stats --config "$PWD/missing.conf"
assert_contains "$ERR" "missing.conf" "missing --config file exits 2 and names it"
zk_expect 2 --data-dir "$D"
ok "--data-dir alone exits 2"

note "config file"
printf '[search]\ntop_k = 3\nno_such_key = 1\n[no_such_section]\nfoo = bar\n' >"$PWD/z.conf"
zk --config "$PWD/z.conf" --data-dir "$D" search --json 知库 数据
assert_contains "$ERR" "no_such_key" "unknown key warned on stderr"
assert_contains "$ERR" "foo" "key in unknown section warned on stderr"
[ "$(json_count "$OUT" snippet)" -le 3 ] || fail "config top_k=3 not applied"
ok "config top_k applied"
zk config --config "$PWD/z.conf"
assert_match "$OUT" '^top_k = 3' "config shows file value"
OUT=$(ZHIKU_SEARCH_TOP_K=7 "$ZHIKU_BIN" config 2>/dev/null) || fail "config with env override failed"
assert_match "$OUT" '^top_k = 7' "ZHIKU_SECTION_KEY override"

note "ZHIKU_CHUNK_SIZE changes the chunk count"
long=""
for i in $(seq 1 60); do long="$long第${i}段：知库把长文档切分成多个片段，每个片段大约数百个字符，以便检索。"; done
printf '{"id":"long","text":"%s"}\n' "$long" >"$PWD/long.jsonl"
zk --data-dir "$PWD/d500" ingest --jsonl "$PWD/long.jsonl"
n500=$(sql "$PWD/d500/zhiku.db" "SELECT nchunks FROM documents WHERE ext_id='long'")
OUT=$(ZHIKU_CHUNK_SIZE=150 ZHIKU_CHUNK_OVERLAP=20 "$ZHIKU_BIN" --data-dir "$PWD/d150" ingest --jsonl "$PWD/long.jsonl") \
    || fail "ingest with ZHIKU_CHUNK_SIZE failed"
n150=$(sql "$PWD/d150/zhiku.db" "SELECT nchunks FROM documents WHERE ext_id='long'")
note "chunks: size 500 -> $n500, size 150 -> $n150"
[ "$n500" -ge 2 ] || fail "expected several chunks at size 500, got $n500"
[ "$n150" -gt $((n500 * 2)) ] || fail "ZHIKU_CHUNK_SIZE=150 gave $n150 chunks vs $n500 at 500"
ok "ZHIKU_CHUNK_SIZE=150 gives more chunks ($n150 > 2 x $n500)"
max=$(sql "$PWD/d150/zhiku.db" "SELECT max(length(text)) FROM chunks")
[ "$max" -le 300 ] || fail "chunks at size 150 are up to $max chars"
ok "chunks at size 150 are at most $max chars"

note "folder named like a verb"
mkdir -p "$PWD/check"
printf 'Verbfolder document about tapirs.\n' >"$PWD/check/t.txt"
cd "$PWD"
zk_run --data-dir "$PWD/dv" ingest check
[ "$RC" = 0 ] && ! grep -qx ok <<<"$OUT" || fail "'zhiku ingest check' ran another verb (rc=$RC): $OUT"
ok "ingest of a folder named 'check' runs only ingest"

note "[store] vector_layout: the column index by default, FAISS on request, same results"
zk --data-dir "$PWD/d500" search "知库 长文档 切分" >/dev/null
kind=$(od -An -tu4 -j32 -N4 "$PWD/d500/vectors/kb-1/index.zkv" | tr -d ' ')
[ "$kind" = 3 ] || fail "builtin embedder's snapshot is kind $kind, expected 3 (columns)"
ok "the builtin embedder's knowledge base uses the column index"
A=$("$ZHIKU_BIN" --data-dir "$PWD/d500" search --json "知库 长文档 切分" 2>/dev/null) || fail "search (columns) failed"
B=$(ZHIKU_STORE_VECTOR_LAYOUT=faiss "$ZHIKU_BIN" --data-dir "$PWD/d500" search --json "知库 长文档 切分" 2>/dev/null) \
    || fail "search with vector_layout=faiss failed"
kind=$(od -An -tu4 -j32 -N4 "$PWD/d500/vectors/kb-1/index.zkv" | tr -d ' ')
[ "$kind" = 1 ] || fail "vector_layout=faiss left a snapshot of kind $kind, expected 1 (flat)"
ids() { python3 -c 'import json,sys; print([h["chunk"] for h in json.load(sys.stdin)["hits"]])'; }
[ "$(ids <<<"$A")" = "$(ids <<<"$B")" ] || fail "columns and FAISS disagree: $(ids <<<"$A") vs $(ids <<<"$B")"
ok "vector_layout=faiss rebuilds a FAISS snapshot; both layouts return the same hits"
OUT=$(ZHIKU_STORE_VECTOR_LAYOUT=hnsw "$ZHIKU_BIN" --data-dir "$PWD/d500" stats 2>&1) && fail "a bad vector_layout was accepted"
assert_match "$OUT" 'vector_layout must be auto, faiss or columns' "a bad vector_layout is refused with a clear message"

finish
