#!/bin/bash
# bad_input.sh — malformed and hostile inputs through `zhiku ingest`: empty
# and blank files, random bytes, deeply nested HTML, invalid UTF-8, a 5 MB
# line without spaces, a file over ingest.max_file_mb, a FIFO, symlinks
# (outside, inside, dangling, to a folder) and hostile JSONL lines. Each bad
# input fails or is skipped with a reason; zhiku never dies from a signal or
# hangs, the good files of the same run are indexed, and `check` stays ok.
# Run: tests/run.sh build bad_input
source "${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
need sqlite3
need awk

D=$PWD/data
DB=$D/zhiku.db
IN=$PWD/in
mkdir -p "$IN/nested" "$PWD/outside"

# ---------------------------------------------------------------- fixtures
: >"$IN/empty.txt"
: >"$IN/empty.md"
printf '   \n\n\t  \n' >"$IN/blank.txt"
# 4 KiB of deterministic pseudo-random bytes (MINSTD), named with a text extension too
LC_ALL=C awk 'BEGIN { s = 7; for (i = 0; i < 4096; i++) { s = (s * 48271) % 2147483647; printf "%c", s % 256 } }' >"$IN/random.dat"
cp "$IN/random.dat" "$IN/random-bytes.txt"
{ printf '<html><body>'; for _ in $(seq 1 20000); do printf '<div><span>'; done
  printf 'Deepnest payload about aardvarks.'
  for _ in $(seq 1 20000); do printf '</span></div>'; done; printf '</body></html>'; } >"$IN/deep.html"
{ printf '<html><body><p>Unclosed tags about okapis'; for _ in $(seq 1 5000); do printf '<b><i><table><tr><td>'; done; } >"$IN/unclosed.html"
printf 'Valid start café \xc3\x28 broken \xa0\xa1 and \xf0\x28\x8c\xbc overlong \xc0\xaf end of invalidutf text about narwhals.\n' >"$IN/invalid-utf8.txt"
head -c 5000000 /dev/zero | tr '\0' 'q' >"$IN/nested/longline.txt"
printf 'Zz%.0s' $(seq 1 10) >>"$IN/nested/longline.txt"
printf 'Good file about elephants and their long trunks.\n' >"$IN/good.txt"
printf '# 好文件\n\n大象有很长的鼻子，喜欢洗澡。\n' >"$IN/nested/good.md"
printf '<html><head><title>Good HTML</title></head><body><p>Hedgehogs curl into spiny balls.</p></body></html>' >"$IN/good.html"
printf 'File name with spaces about lemurs.\n' >"$IN/name with spaces 中文.txt"
mkfifo "$IN/pipe.txt"
printf 'secret outside text about basilisks\n' >"$PWD/outside/secret.txt"
ln -s ../outside/secret.txt "$IN/outside-link.txt"
ln -s "$PWD/outside" "$IN/outside-dir"
ln -s nowhere.txt "$IN/dangling.txt"
ln -s good.txt "$IN/inside-link.txt"
ln -s nested "$IN/inside-dir"
{ printf '\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR'; head -c 2048 /dev/zero; } >"$IN/image.png"

GOOD_IDS="$IN/good.txt $IN/nested/good.md $IN/good.html $IN/name with spaces 中文.txt"

# --------------------------------------------------------------- the folder
note "ingest a folder of hostile files"
zk_run --data-dir "$D" ingest "$IN"
REPORT=$OUT
echo "$OUT"; [ -z "$ERR" ] || { echo "stderr:"; echo "$ERR" | head -20; }
[ "$RC" = 0 ] || [ "$RC" = 1 ] || fail "ingest exited $RC (expected 0 or 1)"
ok "ingest finished with exit $RC, no signal, no hang"
assert_match "$OUT" '^[0-9]+ indexed, [0-9]+ replaced, [0-9]+ unchanged, [0-9]+ failed, [0-9]+ skipped' "summary printed"

status_of() {   # PATH — the status word of PATH's report line
    printf '%s\n' "$REPORT" | awk -v p="$1" '{ s = $1; sub(/^[a-z]+ +/, ""); if (index($0, p) == 1) { r = substr($0, length(p) + 1, 2); if (r == "" || r ~ /^[ :]/) { print s; exit } } }'
}
for f in "$IN/good.txt" "$IN/nested/good.md" "$IN/good.html" "$IN/name with spaces 中文.txt"; do
    assert_eq "$(status_of "$f")" indexed "good file $(basename "$f")"
done
assert_eq "$(status_of "$IN/pipe.txt")" skipped "FIFO skipped"
assert_match "$OUT" "^skipped +$IN/pipe.txt: .*(fifo|regular)" "FIFO skipped with a note"
assert_eq "$(status_of "$IN/outside-link.txt")" skipped "symlink to a file outside skipped"
assert_match "$OUT" "^skipped +$IN/outside-link.txt: .*outside" "outside symlink skipped with a note"
assert_eq "$(status_of "$IN/outside-dir")" skipped "symlink to a folder outside skipped"
assert_match "$(status_of "$IN/dangling.txt")" '^(skipped|failed)$' "dangling symlink skipped or failed"
assert_match "$(status_of "$IN/inside-dir")" '^(skipped|)$' "symlink to a folder inside not walked twice"
assert_eq "$(status_of "$IN/image.png")" skipped "PNG skipped"
assert_eq "$(sql "$DB" "SELECT count(*) FROM documents WHERE ext_id LIKE '%secret%' OR ext_id LIKE '$PWD/outside%'")" 0 \
    "nothing from outside the folder stored"
zk --data-dir "$D" search --json --mode bm25 basilisks
assert_eq "$(json_count "$OUT" snippet)" 0 "outside text not searchable"

note "each hostile file: failed or skipped with a reason, or indexed as text"
for f in empty.txt empty.md blank.txt random.dat random-bytes.txt deep.html unclosed.html invalid-utf8.txt nested/longline.txt; do
    st=$(sql "$DB" "SELECT coalesce((SELECT status || ' ' || nchunks FROM documents WHERE ext_id = '$IN/$f'), 'absent')")
    echo "   $f: $st"
done
# the report names every entry of the folder exactly once
for f in empty.txt empty.md blank.txt random.dat random-bytes.txt deep.html unclosed.html invalid-utf8.txt \
         nested/longline.txt pipe.txt outside-link.txt outside-dir dangling.txt image.png; do
    n=$(printf '%s\n' "$REPORT" | grep -cE "^[a-z]+ +$IN/$f( \(|:|\$)" || true)
    [ "$n" = 1 ] || fail "$f reported $n times"
done
ok "every hostile entry reported exactly once"
assert_eq "$(sql "$DB" "SELECT count(*) FROM documents WHERE status = 'failed' AND coalesce(error, '') = ''")" 0 \
    "every failed document carries an error message"

note "content checks"
zk --data-dir "$D" search --json --mode bm25 aardvarks
assert_eq "$(json_first_str "$OUT" id)" "$IN/deep.html" "deeply nested HTML: text kept"
zk --data-dir "$D" search --json --mode bm25 narwhals
assert_eq "$(json_first_str "$OUT" id)" "$IN/invalid-utf8.txt" "invalid UTF-8: the valid text is searchable"
zk --data-dir "$D" docs show "$IN/invalid-utf8.txt" --json
assert_contains "$OUT" 'café' "invalid UTF-8: valid characters kept"
assert_contains "$OUT" '�' "invalid bytes become U+FFFD"
bad=$(sqlite3 "$DB" "SELECT count(*) FROM chunks WHERE text != CAST(CAST(text AS BLOB) AS TEXT) OR instr(text, char(0)) > 0")
assert_eq "$bad" 0 "no NULs in chunk text"
zk --data-dir "$D" search --json --mode bm25 okapis
assert_eq "$(json_first_str "$OUT" id)" "$IN/unclosed.html" "unclosed HTML: text kept"
n=$(sql "$DB" "SELECT nchunks FROM documents WHERE ext_id = '$IN/nested/longline.txt'")
assert_ge "$n" 1000 "5 MB line without spaces split into many chunks"
maxlen=$(sql "$DB" "SELECT max(length(c.text)) FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.ext_id = '$IN/nested/longline.txt'")
[ "$maxlen" -le 2000 ] || fail "long-line chunks up to $maxlen characters"
ok "long-line chunks at most $maxlen characters"
for f in random.dat image.png; do
    [ "$(sql "$DB" "SELECT count(*) FROM documents WHERE ext_id = '$IN/$f' AND status = 'indexed'")" = 0 ] ||
        fail "$f (binary) was indexed as text"
    ok "$f not indexed as text"
done
# a link to a file inside the folder is indexed once, under its target's path
[ "$(status_of "$IN/inside-link.txt")" != failed ] || fail "symlink to a file inside the folder failed"
[ "$(sql "$DB" "SELECT count(*) FROM documents WHERE ext_id = '$IN/inside-link.txt'")" = 0 ] ||
    fail "symlink stored under the link's own path (duplicate document)"
ok "symlink to a file inside the folder read through its target"

note "consistency after the hostile run"
zk --data-dir "$D" check
assert_eq "$(tail -1 <<<"$OUT")" ok "check ok"
assert_eq "$(sqlite3 "$DB" 'PRAGMA integrity_check')" ok "sqlite integrity"
zk --data-dir "$D" search --json 大象 鼻子
assert_eq "$(json_first_str "$OUT" id)" "$IN/nested/good.md" "search still works"
zk --data-dir "$D" ask --json 大象的鼻子怎么样
assert_contains "$OUT" '[1]' "ask still works"

note "re-running over the same folder is stable"
zk_run --data-dir "$D" ingest "$IN"
[ "$RC" = 0 ] || [ "$RC" = 1 ] || fail "second ingest exited $RC"
assert_eq "$(summary_count "$OUT" indexed)" 0 "second run indexes nothing new"
assert_eq "$(summary_count "$OUT" replaced)" 0 "second run replaces nothing"

# -------------------------------------------------------------- size limit
note "file over ingest.max_file_mb"
mkdir -p "$PWD/big"
head -c 2100000 /dev/zero | tr '\0' 'b' >"$PWD/big/big.txt"
printf 'Small file next to a big one, about wombats.\n' >"$PWD/big/small.txt"
OUT=$(ZHIKU_INGEST_MAX_FILE_MB=1 "${ZK_WRAP[@]}" "$ZHIKU_BIN" --data-dir "$D" ingest "$PWD/big") && RC=0 || RC=$?
echo "$OUT"
assert_eq "$RC" 1 "exit 1 when a file is too big"
assert_match "$OUT" "^failed +$PWD/big/big.txt: .*(limit|max_file_mb|too (big|large))" "too-big file failed with a clear reason"
assert_match "$OUT" "^indexed +$PWD/big/small.txt" "the small file of the same run is indexed"
OUT=$(ZHIKU_INGEST_MAX_FILE_MB=1 "${ZK_WRAP[@]}" "$ZHIKU_BIN" --data-dir "$D" ingest "$PWD/big/big.txt") && RC=0 || RC=$?
assert_eq "$RC" 1 "explicit too-big file exits 1"
zk --data-dir "$D" ingest "$PWD/big/big.txt"
assert_match "$OUT" "^indexed +$PWD/big/big.txt" "the same file is fine under the default limit"

# ------------------------------------------------------ explicit bad paths
note "explicit bad paths"
zk_expect 1 --data-dir "$D" ingest "$PWD/does-not-exist.txt" "$IN/good.txt"
assert_match "$OUT" "^failed +.*does-not-exist.txt" "missing path fails"
assert_match "$OUT" "^unchanged +$IN/good.txt" "next path still processed"
zk_run --data-dir "$D" ingest "$IN/pipe.txt"
[ "$RC" -lt 128 ] || fail "FIFO given explicitly: exit $RC"
assert_match "$OUT" "^skipped +.*pipe.txt" "explicit FIFO skipped, no hang"
zk_expect 1 --data-dir "$D" ingest "$IN/image.png"
assert_match "$OUT" "^failed +.*image.png: .+" "explicit binary file fails with a reason"
zk_run --data-dir "$D" ingest /dev/null
[ "$RC" -lt 128 ] || fail "/dev/null: exit $RC"
ok "/dev/null handled (exit $RC)"

# ---------------------------------------------------------- hostile JSONL
note "hostile JSONL"
{
    printf '{"id":"deep","text":"x","metadata":'; for _ in $(seq 1 5000); do printf '{"a":'; done
    printf '1'; for _ in $(seq 1 5000); do printf '}'; done; printf '}\n'
    printf '\n'
    printf '{"id":"num","text":42}\n'
    printf '{"id":"nul","text":"before\\u0000after"}\n'
    printf '{"id":"badutf","text":"bad \xff\xfe bytes"}\n'
    printf '{"id":"ok1","text":"Hostile JSONL survivor about zebras."}\n'
    printf '{"id":"dup","id":"dup2","text":"duplicate keys"}\n'
    printf '[1,2,3]\n'
    printf '{"id":"","text":"empty id"}\n'
    printf '{"id":"meta","text":"metadata must be an object","metadata":[1,2]}\n'
    printf '{"id":"huge","text":"'; head -c 3000000 /dev/zero | tr '\0' 'h'; printf ' quokkas"}\n'
    printf '{"id":"ok2","text":"Another survivor about giraffes."}'   # no final newline
} >"$PWD/hostile.jsonl"
zk_run --data-dir "$D" ingest --jsonl "$PWD/hostile.jsonl"
echo "$OUT" | cut -c1-200
assert_eq "$RC" 1 "hostile JSONL exits 1"
assert_match "$OUT" '^indexed +ok1 ' "good line indexed"
assert_match "$OUT" '^indexed +ok2 ' "last line without newline indexed"
assert_match "$OUT" '^indexed +huge ' "3 MB JSONL text indexed"
nfail=$(summary_count "$OUT" failed)
assert_ge "$nfail" 7 "hostile lines failed"
[ "$(printf '%s\n' "$OUT" | grep -c '^failed ')" = "$nfail" ] || fail "every failure has its own line"
assert_eq "$(printf '%s\n' "$OUT" | grep '^failed ' | grep -cvE ':[0-9]+: .+')" 0 "every failed line names its line number and reason"
zk --data-dir "$D" search --json --mode bm25 zebras
assert_eq "$(json_first_str "$OUT" id)" ok1 "survivor searchable"
zk --data-dir "$D" check
assert_eq "$(tail -1 <<<"$OUT")" ok "check ok at the end"

finish
