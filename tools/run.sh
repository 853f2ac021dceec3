#!/bin/bash
# run.sh ZHIKU_BIN — `make run`: ingest the bundled sample documents
# (samples/, Chinese and English) into ./data (or $ZHIKU_DATA_DIR) and answer
# example questions with the builtin embedder and the extractive answerer.
# (The HTTP server and portal arrive in a later release and take over here.)
set -euo pipefail
BIN=$1
cd "$(dirname "$0")/.."
export ZHIKU_DATA_DIR=${ZHIKU_DATA_DIR:-./data}
echo "== ingesting samples/ into $ZHIKU_DATA_DIR"
"$BIN" ingest --acl everyone samples/   # sample documents: readable by everyone
echo
for q in "年假可以顺延到什么时候？" "How long must a password be?"; do
    echo "== zhiku ask \"$q\""
    "$BIN" ask "$q"
    echo
done
cat <<MSG
== try it yourself
  $BIN --data-dir $ZHIKU_DATA_DIR ask "报销需要谁审批？"
  $BIN --data-dir $ZHIKU_DATA_DIR search --json "VPN DNS"
  $BIN --data-dir $ZHIKU_DATA_DIR ingest PATH...      # your own documents
MSG
