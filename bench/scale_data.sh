#!/bin/bash
# scale_data.sh BUILD_DIR N — the shared data set of the scale and HTTP
# benchmarks (bench/scale_bench.sh, bench/http_bench.sh): a gen_scale.py
# corpus of about N chunks and a zhiku data directory ingested from it with
# the real CLI, cached under ${BENCH_DIR:-build/bench-data}/scaleN:
#   docs/, queries.txt       the corpus (generated once)
#   data/                    the ingested data directory (ingested once;
#                            BENCH_REINGEST=1 redoes it, BENCH_REGEN=1 also
#                            regenerates the corpus)
#   ingest.txt               the ingestion report (CLI summary + time -v)
#   optimize.txt             `zhiku optimize` after the ingest, as an admin
#                            runs it after a bulk load (its own line, timed)
#   token                    an API token of user `uall` (search, ask)
#   .ingested                when and at which commit the data was ingested
# Principals: group `all` holds every document's read grant; user `uall`
# is its member (a user allowed 100%); user `u1pct` is granted every
# document whose id is 7 mod 100 (~1%). Prints the cache directory on the
# last line of stdout; progress goes to stderr. A lock serialises
# concurrent callers on one cache.
set -euo pipefail
BUILD=${1:-build}
N=${2:-100000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/$BUILD/zhiku"
CACHE=${BENCH_DIR:-$ROOT/build/bench-data}
C="$CACHE/scale$N"
mkdir -p "$CACHE"
exec 9>"$C.lock"
flock 9
log() { echo "scale_data: $*" >&2; }

if [ "${BENCH_REGEN:-0}" = 1 ]; then rm -rf "$C"; fi
if [ ! -f "$C/.generated" ]; then
    rm -rf "$C"
    log "generating a corpus of ~$N chunks into $C (gen_scale.py; ~38 s per 100k chunks)"
    t0=$(date +%s.%N)
    python3 "$ROOT/bench/gen_scale.py" "$C" "$N" "${BENCH_SCALE_QUERIES:-200}" >&2
    log "generated in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.0f", b - a}') s"
    touch "$C/.generated"
fi

if [ "${BENCH_REINGEST:-0}" = 1 ]; then rm -rf "$C/data" "$C/.ingested" "$C/optimize.txt"; fi
# a cache this binary cannot open (e.g. written by a newer schema) is redone;
# after changes to ingestion or the index format, rerun with BENCH_REINGEST=1
if [ -f "$C/.ingested" ] && ! "$BIN" --data-dir "$C/data" stats --json >/dev/null 2>"$C/stats.err"; then
    log "cached data unusable ($(head -1 "$C/stats.err")): ingesting again"
    rm -f "$C/.ingested"
fi
rm -f "$C/stats.err"
if [ ! -f "$C/.ingested" ]; then
    rm -rf "$C/data" "$C/ingest.txt" "$C/token" "$C/optimize.txt"
    D="$C/data"
    z() { "$BIN" --data-dir "$D" "$@"; }
    z group add all >/dev/null
    z user add uall >/dev/null
    z group members all add uall >/dev/null
    z user add u1pct >/dev/null
    log "ingesting $C/docs ($(du -sh "$C/docs" | cut -f1)) with the CLI"
    # the CLI's own summary line and GNU time's report; the process is
    # measured from exec to exit (snapshot save and IVF build included)
    /usr/bin/time -v -o "$C/time.txt" "$BIN" --data-dir "$D" ingest --quiet --acl group:all "$C/docs" \
        | tail -1 > "$C/ingest.txt"
    cat "$C/time.txt" >> "$C/ingest.txt"
    rm -f "$C/time.txt"
    # ~1% of the documents readable by u1pct, through the CLI
    for id in $(sqlite3 "$D/zhiku.db" "SELECT id FROM documents WHERE id % 100 = 7"); do
        z acl grant "$id" user:u1pct >/dev/null
    done
    z token create --user uall --scopes search,ask 2>/dev/null > "$C/token"
    # when and by which code (commit, + if the tree had changes)
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    git -C "$ROOT" diff --quiet HEAD 2>/dev/null || rev="$rev+"
    echo "$(date -u +%Y-%m-%dT%H:%MZ) at $rev" > "$C/.ingested"
fi
# the bulk load is followed by a merge of the text index (OPERATIONS.md)
if [ ! -f "$C/optimize.txt" ]; then
    log "zhiku optimize"
    "$BIN" --data-dir "$C/data" optimize > "$C/optimize.txt.tmp"
    mv "$C/optimize.txt.tmp" "$C/optimize.txt"
fi
echo "$C"
