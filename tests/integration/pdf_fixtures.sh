#!/bin/bash
# pdf_fixtures.sh — PDF ingestion end to end through `zhiku ingest`: the
# shared PDF fixtures reach token-level F1 >= 0.9 against their expected
# .txt (document text rebuilt from chunk start/end offsets), the scanned PDF
# fails with "no text layer" without OCR and is indexed with a fake OCR
# service (inline python3 HTTP server on a free loopback port, ZHIKU_OCR_URL),
# and the Chinese manual's chunks carry the right page numbers.
# Needs $ZHIKU_SHARED/data (else skipped). Run: tests/run.sh build pdf_fixtures
source "${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
need python3

SHARED=${ZHIKU_SHARED:-$(cd "$(dirname "$0")/../../.." && pwd)/shared}
PDFS=$SHARED/data/fixtures/formats/pdf
ZH=$SHARED/data/fixtures/zh/maint-guide.zh-cn.pdf
[ -d "$PDFS" ] && [ -f "$ZH" ] || skip "shared fixtures not found under $SHARED/data"

D=$PWD/data
IN=$PWD/in
mkdir -p "$IN"
cp "$PDFS"/*.pdf "$ZH" "$IN/"

# doc_text FILE — the document text of FILE rebuilt from its chunks.
doc_text() {
    zk --data-dir "$D" docs show "$1" --json
    printf '%s' "$OUT" | python3 -c '
import json, sys
d = json.load(sys.stdin)
n = max([c["end"] for c in d["chunks"]] + [0])
text = [" "] * n
for c in d["chunks"]:
    t = c["text"]
    for i, ch in enumerate(t[: c["end"] - c["start"]]):
        text[c["start"] + i] = ch
sys.stdout.write("".join(text))'
}

# f1 OUR EXPECTED — token-level (NFKC, lower-cased words) F1 of two files.
f1() {
    python3 - "$1" "$2" <<'PY'
import collections, re, sys, unicodedata
def toks(p):
    s = unicodedata.normalize("NFKC", open(p, encoding="utf-8", errors="replace").read()).lower()
    return collections.Counter(re.findall(r"[^\W_]+", s))
a, b = toks(sys.argv[1]), toks(sys.argv[2])
common = sum((a & b).values())
p, r = common / max(1, sum(a.values())), common / max(1, sum(b.values()))
print("%.3f" % (2 * p * r / (p + r) if p + r else 0))
PY
}

status_line() { printf '%s\n' "$REPORT" | grep -F "$1" | head -1; }

# ------------------------------------------------------------- without OCR
note "ingest the PDF fixtures (no OCR configured)"
zk_run --data-dir "$D" ingest "$IN"
REPORT=$OUT
echo "$OUT"
[ "$RC" = 0 ] || [ "$RC" = 1 ] || fail "ingest exited $RC"

for name in raw_text two_column; do
    assert_match "$(status_line "$IN/$name.pdf")" '^indexed' "$name.pdf indexed"
    doc_text "$IN/$name.pdf" >"$PWD/$name.out"
    score=$(f1 "$PWD/$name.out" "$PDFS/$name.txt")
    note "$name.pdf token F1 = $score"
    python3 -c "import sys; sys.exit(0 if float('$score') >= 0.9 else 1)" || fail "$name.pdf F1 $score < 0.9"
    ok "$name.pdf F1 $score >= 0.9"
done

assert_match "$(status_line "$IN/ocr_text.pdf")" '^failed' "scanned ocr_text.pdf failed without OCR"
zk --data-dir "$D" docs show "$IN/ocr_text.pdf" --json
assert_contains "$OUT" '"error":"no text layer' "scanned PDF failed with 'no text layer'"

# Chinese manual: title and page numbers of known strings
zk --data-dir "$D" docs show "$IN/maint-guide.zh-cn.pdf" --json
ZHJSON=$OUT
assert_contains "$ZHJSON" '"format":"pdf"' "Chinese PDF format"
assert_contains "$ZHJSON" '"title":"Debian 新维护者手册"' "Chinese PDF title from metadata"
# string -> page, found with `mutool draw -F txt` (page 1 = title page)
printf '%s' "$ZHJSON" | python3 -c '
import json, sys
d = json.load(sys.stdin)
want = {"Josip Rodin、Osamu Aoki": 1, "本文档在撰写过程中参考了以下两篇文档": 2, "REVISION HISTORY": 3, "Debian 新维护者手册 34 / 57": 40}
bad = 0
for s, page in want.items():
    pages = sorted({c.get("page") for c in d["chunks"] if s in c["text"]})
    if pages != [page]:
        print("FAIL: %r on pages %s, expected %d" % (s, pages, page)); bad = 1
    else:
        print("ok   %r on page %d" % (s, page))
if any("page" not in c for c in d["chunks"]):
    print("FAIL: a chunk without page"); bad = 1
sys.exit(bad)' || fail "Chinese PDF page numbers"
ok "Chinese PDF chunks carry page numbers"

# ----------------------------------------------------------- with fake OCR
note "fake OCR service on loopback"
cat >"$PWD/ocr.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ok = body[:8] == b"\x89PNG\r\n\x1a\n" and self.headers.get("Content-Type") == "image/png" \
            and self.headers.get("Authorization") == "Bearer test-key"
        text = ("GARRATT'S LIMITED fake ocr page %s zebrafish" % self.headers.get("X-Zhiku-Page")).encode()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_port, flush=True)
s.serve_forever()
PY
python3 "$PWD/ocr.py" >"$PWD/ocr.port" &
OCR_PID=$!
trap 'kill $OCR_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do [ -s "$PWD/ocr.port" ] && break; sleep 0.1; done
PORT=$(head -1 "$PWD/ocr.port")
[ -n "$PORT" ] || fail "fake OCR server did not start"

D2=$PWD/data2
mkdir -p "$PWD/scan"
cp "$PDFS/ocr_text.pdf" "$PWD/scan/"
ZHIKU_OCR_URL="http://127.0.0.1:$PORT/ocr" ZHIKU_OCR_API_KEY="test-key" \
    zk_run --data-dir "$D2" ingest "$PWD/scan/ocr_text.pdf"
echo "$OUT"; [ -z "$ERR" ] || echo "$ERR" | tail -5
[ "$RC" = 0 ] || fail "ingest with OCR exited $RC (is [ocr] wired to idx_ocr_configure?)"
zk --data-dir "$D2" docs show "$PWD/scan/ocr_text.pdf" --json
assert_contains "$OUT" "fake ocr page 1 zebrafish" "OCR text indexed with its page number"
assert_contains "$OUT" '"page":1' "OCR chunk on page 1"

finish
