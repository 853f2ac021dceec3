#!/bin/bash
# run.sh ZHIKU_BIN — `make run`: ingest the bundled sample documents
# (samples/, Chinese and English, readable by everyone) into ./data (or
# $ZHIKU_DATA_DIR), create an `admin` account with a random password on the
# first run, print the portal URL and those credentials, and serve the
# portal and the API on 127.0.0.1 (ZHIKU_LISTEN, default 127.0.0.1:8080)
# with the builtin embedder and the extractive answerer. Ctrl-C stops it.
set -euo pipefail
BIN=$(realpath "$1")
cd "$(dirname "$0")/.."
export ZHIKU_DATA_DIR=${ZHIKU_DATA_DIR:-./data}
LISTEN=${ZHIKU_LISTEN:-127.0.0.1:8080}
echo "== ingesting samples/ into $ZHIKU_DATA_DIR (readable by everyone)"
"$BIN" ingest --acl everyone samples/
PWFILE="$ZHIKU_DATA_DIR/admin-password.txt"
if ! "$BIN" user list --json | grep -q '"name":"admin"'; then
    umask 077
    head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$PWFILE"
    "$BIN" user add admin --admin --password-stdin < "$PWFILE" >/dev/null
fi
echo
echo "== example: zhiku ask \"年假可以顺延到什么时候？\""
"$BIN" ask "年假可以顺延到什么时候？"
echo
echo "== portal: http://$LISTEN/"
if [ -f "$PWFILE" ]; then
    echo "   sign in as: admin / $(cat "$PWFILE")   (saved in $PWFILE)"
else
    echo "   sign in as: admin (password set earlier; not stored here)"
fi
echo "   API: curl -s http://$LISTEN/healthz ; docs/API.md describes every route"
echo "   Ctrl-C stops the server."
echo
exec "$BIN" serve --listen "$LISTEN"
