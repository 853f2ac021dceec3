#!/bin/bash
# ingest_bench.sh BUILD_DIR — ingestion throughput, same run, same machine:
#  1. synthetic corpus: mixed Chinese/English Markdown, ~100 KB files
#     (bench/gen_corpus.py; BENCH_SYNTH_FILES, default 100 = ~10 MB):
#     the raw FTS5 anchor (bench/fts_anchor.c) vs `zhiku ingest`, 3 runs
#     each, medians, and the ratio zhiku/anchor; also the CPU seconds each
#     used (user + system, parser helper processes included): on a shared
#     machine a busy neighbour slows zhiku's two-core pipeline more than the
#     one-core anchor, and the CPU figures show it;
#  2. a real corpus: the PostgreSQL 15 manual (1,169 HTML pages) from
#     Debian's postgresql-doc-15, fetched with `apt-get download` and
#     unpacked with `dpkg -x` into $ZHIKU_BENCH_CACHE (skipped if the
#     download fails).
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/$BUILD/zhiku"
ANCHOR="$ROOT/$BUILD/bench/fts_anchor"
W=$(mktemp -d /tmp/zhiku-ingest-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
CACHE=${ZHIKU_BENCH_CACHE:-$HOME/.cache/zhiku-bench}
RUNS=${BENCH_RUNS:-3}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# cpu FILE CMD...: run CMD (its output passes through) and append the CPU
# seconds it used (user + system, reaped children included) to FILE
cpu() {
    local f=$1 t; shift
    t=$( { TIMEFORMAT='%U %S'; time "$@" > "$W/cmd.out" 2> "$W/cmd.err"; } 2>&1 ) || { cat "$W/cmd.err" >&2; return 1; }
    cat "$W/cmd.err" >&2
    echo "$t" | awk 'END {print $1 + $2}' >> "$f"
    cat "$W/cmd.out"
}

python3 "$ROOT/bench/gen_corpus.py" "$W/synth" "${BENCH_SYNTH_FILES:-100}" 100
bytes=$(cat "$W"/synth/* | wc -c)
echo "synthetic corpus: $(ls "$W/synth" | wc -l) files, $((bytes / 1000000)) MB"
: > "$W/anchor.txt"; : > "$W/zhiku.txt"; : > "$W/chunks.txt"; : > "$W/rss.txt"
: > "$W/anchor_cpu.txt"; : > "$W/zhiku_cpu.txt"
for r in $(seq "$RUNS"); do
    rm -f "$W/anchor.db"*
    cpu "$W/anchor_cpu.txt" "$ANCHOR" "$W/anchor.db" "$W/synth" | sed -n 's/.* = \([0-9.]*\) MB\/s/\1/p' >> "$W/anchor.txt"
    rm -rf "$W/data"
    line=$(cpu "$W/zhiku_cpu.txt" "$BIN" --data-dir "$W/data" ingest --quiet "$W/synth" | tail -1)
    echo "$line" | sed -n 's/.*(\([0-9.]*\) MB\/s.*/\1/p' >> "$W/zhiku.txt"
    echo "$line" | sed -n 's/.* \([0-9]*\) chunks\/s.*/\1/p' >> "$W/chunks.txt"
    echo "$line" | sed -n 's/.*peak RSS \([0-9]*\) MB.*/\1/p' >> "$W/rss.txt"
done
a=$(median < "$W/anchor.txt"); z=$(median < "$W/zhiku.txt")
printf "| corpus | anchor MB/s | zhiku MB/s (text) | zhiku chunks/s | peak RSS MB | zhiku/anchor |\n|---|---|---|---|---|---|\n"
printf "| synthetic zh/en Markdown | %s | %s | %s | %s | %.2f |\n" "$a" "$z" "$(median < "$W/chunks.txt")" \
    "$(median < "$W/rss.txt")" "$(awk -v z="$z" -v a="$a" 'BEGIN {print z / a}')"
echo "(CPU seconds, medians: anchor $(median < "$W/anchor_cpu.txt"), zhiku $(median < "$W/zhiku_cpu.txt"))"

if [ ! -d "$CACHE/pg/usr/share/doc/postgresql-doc-15/html" ]; then
    mkdir -p "$CACHE/pg"
    ( cd "$CACHE" && apt-get download postgresql-doc-15 >/dev/null 2>&1 && dpkg -x postgresql-doc-15_*.deb pg ) ||
        { echo "(postgresql-doc-15 unavailable: real-corpus run skipped)"; exit 0; }
fi
PG="$CACHE/pg/usr/share/doc/postgresql-doc-15/html"
rm -f "$W/anchor.db"*
pa=$("$ANCHOR" "$W/anchor.db" "$PG" | sed -n 's/.* = \([0-9.]*\) MB\/s/\1/p')
rm -rf "$W/data"
line=$("$BIN" --data-dir "$W/data" ingest --quiet "$PG" | tail -1)
echo "| PostgreSQL 15 manual, $(ls "$PG" | wc -l) HTML files (anchor: raw HTML) | $pa | $(echo "$line" | sed -n 's/.*(\([0-9.]*\) MB\/s.*/\1/p') | $(echo "$line" | sed -n 's/.* \([0-9]*\) chunks\/s.*/\1/p') | $(echo "$line" | sed -n 's/.*peak RSS \([0-9]*\) MB.*/\1/p') | — |"
echo "zhiku: $line"
