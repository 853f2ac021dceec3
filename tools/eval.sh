#!/bin/bash
# eval.sh ZHIKU_BIN EVAL_DIR — for each BEIR-layout set under EVAL_DIR
# (corpus.jsonl, queries_test.jsonl, qrels/test.tsv): ingest into a fresh data
# dir, run `zhiku search --batch` in bm25, vector and hybrid modes and print
# nDCG@10 / Recall@10 / Recall@100. Extra zhiku options via ZHIKU_EVAL_OPTS.
set -euo pipefail
BIN=$(realpath "$1"); DATA=${2:-../shared/data/eval}
METRICS=$(dirname "$BIN")/tests/eval_metrics
[ -d "$DATA" ] || { echo "eval: no evaluation data at $DATA (set ZHIKU_EVAL_DATA)"; exit 1; }
WORK=$(mktemp -d /tmp/zhiku-eval.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
printf "%-16s %-7s %9s %10s %11s\n" set mode nDCG@10 Recall@10 Recall@100
for set in "$DATA"/*/; do
    name=$(basename "$set")
    [ -f "$set/corpus.jsonl" ] || continue
    dd="$WORK/$name"
    "$BIN" --data-dir "$dd" ingest --quiet --jsonl "$set/corpus.jsonl" >/dev/null
    for mode in bm25 vector hybrid; do
        "$BIN" --data-dir "$dd" search ${ZHIKU_EVAL_OPTS:-} --batch "$set/queries_test.jsonl" --top 100 --mode $mode > "$WORK/run.jsonl"
        m=$("$METRICS" "$set/qrels/test.tsv" "$WORK/run.jsonl")
        eval "$(echo "$m" | sed 's/@/_/g; s/ /;/g')"
        printf "%-16s %-7s %9.4f %10.4f %11.4f\n" "$name" $mode "$ndcg_10" "$recall_10" "$recall_100"
    done
done
