#!/bin/bash
# backup_restore.sh — `zhiku backup DEST` on a live data directory: the
# backup runs WHILE another `zhiku ingest` process is writing, then is
# restored into a fresh directory where `zhiku check` passes, PRAGMA
# integrity_check says ok, search finds documents from before the backup,
# stored originals (blobs/) are present and intact, and a backup without
# vector snapshots rebuilds its index. Also: refusing a non-empty or nested
# destination. (Upgrading an older schema is covered by tests/unit/test_migrate.c.)
# Run: tests/run.sh build backup_restore
source "${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
need sqlite3
need awk
need sha256sum

D=$PWD/data
BK=$PWD/backup
R=$PWD/restored

# corpus A (before the backup) and a bigger corpus B, ingested concurrently
gen() {   # PREFIX N
    awk -v P="$1" -v N="$2" 'BEGIN {
        for (i = 0; i < N; i++) {
            t = sprintf("%smark%05d ", P, i)
            for (s = 0; s < 12; s++) t = t "river mountain 知识库 备份 forest index word" (i * 7 + s) % 97 ". "
            printf "{\"id\":\"%s%05d\",\"title\":\"%s doc %d\",\"text\":\"%s\"}\n", P, i, P, i, t
        }
    }'
}
gen a 300 >a.jsonl
gen b 5000 >b.jsonl

zk --data-dir "$D" ingest --jsonl a.jsonl
assert_eq "$(summary_count "$OUT" indexed)" 300 "corpus A indexed"

# an original upload as the server stores it: blobs/ab/cdef..., referenced by a document
printf 'original upload of a00007 \xe5\x8e\x9f\xe6\x96\x87\n' >orig.bin
SHA=$(sha256sum orig.bin | cut -c1-64)
mkdir -p "$D/blobs/${SHA:0:2}"
cp orig.bin "$D/blobs/${SHA:0:2}/${SHA:2}"
: >"$D/blobs/${SHA:0:2}/.tmp-leftover"      # a crashed upload's temp file: not copied
sql "$D/zhiku.db" "UPDATE documents SET blob_sha256 = '$SHA' WHERE ext_id = 'a00007'" >/dev/null

# ---------------------------------------------------- backup during ingest
"$ZHIKU_BIN" --data-dir "$D" ingest --jsonl b.jsonl >ingest_b.out 2>&1 &
ING=$!
# wait until B is really being written (its first batches committed)
for _ in $(seq 1 200); do
    n=$(sqlite3 "$D/zhiku.db" "SELECT count(*) FROM documents WHERE ext_id LIKE 'b%'" 2>/dev/null || echo 0)
    [ "${n:-0}" -gt 0 ] && break
    sleep 0.05
done
zk --data-dir "$D" search --json amark00042   # an audit row to carry over
zk --data-dir "$D" backup "$BK"
echo "$OUT"
if kill -0 $ING 2>/dev/null; then OVERLAP=1; else OVERLAP=0; fi
assert_contains "$OUT" "quick_check ok" "backup verified its copy"
assert_contains "$OUT" "blobs:    1 files" "one blob copied"
assert_contains "$OUT" "audit:    " "the audit log copied"
wait $ING || { cat ingest_b.out; fail "concurrent ingest failed"; }
assert_eq "$(summary_count "$(cat ingest_b.out)" indexed)" 5000 "concurrent ingest finished undisturbed"
assert_eq "$OVERLAP" 1 "backup finished while the writer was still running"
[ ! -e "$BK/blobs/${SHA:0:2}/.tmp-leftover" ] || fail "temp file copied"
ok "temp files skipped"
assert_eq "$(find "$BK" -name '*.partial' | wc -l | tr -d ' ')" 0 "no partial files left"

# destination checks
zk_expect 1 --data-dir "$D" backup "$BK"
assert_contains "$ERR" "already exists" "refuses a destination that holds a backup"
zk_expect 2 --data-dir "$D" backup "$D/inner"
assert_contains "$ERR" "outside the data directory" "refuses a destination inside the data directory"

# ------------------------------------------------------------------ restore
cp -a "$BK" "$R"
assert_eq "$(sql "$R/zhiku.db" "PRAGMA integrity_check")" ok "integrity_check of the restored database"
NB=$(sql "$R/zhiku.db" "SELECT count(*) FROM documents WHERE ext_id LIKE 'b%'")
NA=$(sql "$R/zhiku.db" "SELECT count(*) FROM documents WHERE ext_id LIKE 'a%'")
assert_eq "$NA" 300 "every document from before the backup"
note "restored snapshot holds $NB of corpus B's 5000 documents (taken mid-ingest)"
[ "$NB" -lt 5000 ] || note "(the writer committed everything before the snapshot)"
zk --data-dir "$R" check
assert_contains "$OUT" "ok" "zhiku check on the restored directory"
zk --data-dir "$R" audit --json
assert_contains "$OUT" '"query":"amark00042"' "the restored audit log holds the search from before the backup"
zk --data-dir "$R" search --json amark00042
assert_eq "$(json_first_str "$OUT" id)" a00042 "search finds a document in the restored directory"
zk --data-dir "$R" search --json --mode vector amark00123 river
assert_ge "$(json_count "$OUT" snippet)" 1 "vector search works on the restored index"
assert_eq "$(sha256sum "$R/blobs/${SHA:0:2}/${SHA:2}" | cut -c1-64)" "$SHA" "restored blob intact"
assert_eq "$(sql "$R/zhiku.db" "SELECT blob_sha256 FROM documents WHERE ext_id = 'a00007'")" "$SHA" \
    "document still points at its original"
# the source keeps working after the backup
zk --data-dir "$D" check

# ------------------------------------------ backup without vector snapshots
zk --data-dir "$D" backup --no-vectors "$PWD/bk2"
assert_contains "$OUT" "vectors:  skipped" "--no-vectors"
[ ! -e "$PWD/bk2/vectors/kb-1" ] || fail "vectors copied despite --no-vectors"
zk --data-dir "$PWD/bk2" search --json --mode vector bmark00010 river
assert_ge "$(json_count "$OUT" snippet)" 1 "vector index rebuilt from the database"
zk --data-dir "$PWD/bk2" check
ok "check after rebuild"

finish
