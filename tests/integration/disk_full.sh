#!/bin/bash
# disk_full.sh — the data directory on a small tmpfs that fills up.
# CLI: a bulk ingest that runs out of space exits nonzero (no signal) with
# a "disk full" message; after the filesystem is enlarged `zhiku check`
# passes (SQLite integrity, FTS, chunks, vectors, index == vectors) and every
# document reported indexed before the failure is there and searchable; the
# resumed ingest completes. Server: on a full disk an upload gets a 507 JSON
# error, searches keep working, and once space is freed uploads work again.
# Needs root (mount -t tmpfs); skipped (77) otherwise.
# Run: tests/run.sh build disk_full
ROOT="${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
source "$ROOT/tests/integration/lib.sh"
source "$ROOT/tests/integration/lib_server.sh"
need sqlite3

MNT=$PWD/mnt
mkdir -p "$MNT"
mount -t tmpfs -o size=1m,mode=0755 tmpfs "$MNT" 2>/dev/null || skip "cannot mount a tmpfs (needs root)"
unmount() { _lib_server_cleanup; umount -l "$MNT" 2>/dev/null || true; }
trap unmount EXIT
D=$MNT/data

note "a corpus much larger than the filesystem"
python3 - >corpus.jsonl <<'PY'
import random
r = random.Random(1)
w = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma "
     "tau upsilon phi chi psi omega").split()
for i in range(1500):
    print('{"id":"d%04d","title":"Doc %d","text":"zkmark%04d %s"}' % (i, i, i, " ".join(r.choice(w) for _ in range(150))))
PY

note "ingest until the disk is full"
zk_run --data-dir "$D" ingest --acl everyone --jsonl corpus.jsonl
echo "$ERR" | tail -3
[ "$RC" != 0 ] || fail "ingest into a 1 MB filesystem succeeded?"
ok "ingest on a full disk exits $RC (no crash)"
assert_contains "$ERR" "disk full" "the error says the disk is full"
assert_contains "$ERR" "$D" "the error names the data directory"
INDEXED=$(printf '%s\n' "$OUT" | awk '$1 == "indexed" {print $2}')
n_indexed=$(printf '%s\n' "$INDEXED" | grep -c . || true)
assert_ge "$n_indexed" 1 "documents reported indexed before the disk filled"
df -k "$MNT" | tail -1

note "enlarge the filesystem"
mount -o remount,size=64m "$MNT" || fail "cannot enlarge the tmpfs"
zk --data-dir "$D" check
assert_eq "$(tail -1 <<<"$OUT")" ok "zhiku check after the disk-full failure"
assert_eq "$(sqlite3 "$D/zhiku.db" 'PRAGMA integrity_check')" ok "PRAGMA integrity_check"
present=$(sql "$D/zhiku.db" "SELECT count(*) FROM documents WHERE status = 'indexed' AND ext_id IN ($(printf "'%s'," $INDEXED | sed 's/,$//'))")
assert_eq "$present" "$n_indexed" "every document reported indexed is in the database"
missing=0
for id in $INDEXED; do
    zk --data-dir "$D" search --json --mode bm25 --top 1 "zkmark${id#d}"
    [ "$(json_first_str "$OUT" id)" = "$id" ] || { echo "$OUT"; missing=$((missing + 1)); }
done
assert_eq "$missing" 0 "all $n_indexed documents reported indexed are found by their marker"
zk --data-dir "$D" search --json --mode vector --top 1 zkmark0001 alpha beta
[ "$(json_count "$OUT" snippet)" = 1 ] || fail "vector search after the failure: $OUT"
ok "vector search works"

note "the resumed ingest completes"
zk --data-dir "$D" ingest --acl everyone --jsonl corpus.jsonl
assert_eq "$(summary_count "$OUT" unchanged)" "$n_indexed" "documents indexed before are unchanged"
assert_eq "$(sql "$D/zhiku.db" "SELECT count(*) FROM documents WHERE status = 'indexed'")" 1500 "all 1500 documents indexed"
zk --data-dir "$D" check
assert_eq "$(tail -1 <<<"$OUT")" ok "zhiku check after the resumed ingest"

note "the server on a full disk"
umount -l "$MNT"
mount -t tmpfs -o size=16m,mode=0755 tmpfs "$MNT" || fail "cannot mount the second tmpfs"
head -20 corpus.jsonl >small.jsonl
zk --data-dir "$D" ingest --acl everyone --jsonl small.jsonl
zk --data-dir "$D" user add alice
zk --data-dir "$D" token create --user alice --scopes search,ingest
H=(-H "$(bearer "$OUT")")
srv_start "$D"
python3 - >big.txt <<'PY'
import random
r = random.Random(2)
w = "wombat burrow inspection river mountain forest shard replica backup policy".split()
print("zkbigupload " + " ".join(r.choice(w) for _ in range(20000)))
PY
# fill the filesystem (the server holds the database open)
dd if=/dev/zero of="$MNT/filler" bs=4k 2>/dev/null || true
sync
df -k "$MNT" | tail -1
http POST /api/v1/documents "${H[@]}" -F "file=@big.txt;filename=big.txt"
echo "HTTP $STATUS $BODY"
assert_eq "$STATUS" 507 "an upload on a full disk answers 507"
assert_eq "$(err_code)" insufficient_storage "with a JSON error code"
assert_contains "$BODY" "disk is full" "and a message saying why"
kill -0 "$SRV_PID" || fail "the server died"
for i in 1 2 3; do
    expect 200 POST /api/v1/search "${H[@]}" -H 'Content-Type: application/json' -d '{"query":"zkmark0003","mode":"bm25"}'
    assert_eq "$(json_first_str "$BODY" id)" d0003 "search $i on a full disk finds its document"
done
grep -q "disk full" "$SRV_LOG" || fail "the server log does not mention the full disk"
ok "the server log names the cause"

note "space freed: uploads work again"
rm -f "$MNT/filler"
expect 201 POST /api/v1/documents "${H[@]}" -F "file=@big.txt;filename=big.txt"
expect 200 POST /api/v1/search "${H[@]}" -H 'Content-Type: application/json' -d '{"query":"zkbigupload","mode":"bm25"}'
assert_eq "$(json_first_str "$BODY" id | sed 's|.*/||')" big.txt "the new upload is searchable"
srv_stop
zk --data-dir "$D" check
assert_eq "$(tail -1 <<<"$OUT")" ok "zhiku check after the server run"
finish
