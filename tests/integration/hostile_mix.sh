#!/bin/bash
# hostile_mix.sh — 200 hostile or malformed files (random bytes under text
# names, deeply nested HTML and Markdown, a 50 MB single line, truncated
# UTF-16, NULs, ZIP bombs and billion-laughs XML named .docx/.html, truncated
# PDFs, broken CSV) mixed with 200 good small .md/.txt files, ingested in one
# run with small sandbox limits. zhiku must not crash or hang, must index every
# good file, must fail (with a reason), skip, or index as text each bad one,
# leave no parser child behind, and `check` must pass.
# Run: tests/run.sh build hostile_mix
source "${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
need sqlite3
need python3

D=$PWD/data
DB=$D/zhiku.db
IN=$PWD/in
mkdir -p "$IN"

# ---------------------------------------------------------------- fixtures
note "generate 200 good and 200 hostile files"
python3 - "$IN" <<'PY'
import os, random, sys, zipfile, zlib
root = sys.argv[1]
rnd = random.Random(20240611)
def put(name, data):
    with open(os.path.join(root, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))

# 200 good files: 100 .md, 100 .txt, each with a unique token
words = "river mountain forest ocean planet energy climate history culture music garden city railway".split()
for i in range(200):
    body = " ".join(rnd.choice(words) for _ in range(40))
    if i % 2 == 0:
        put(f"good_{i:03d}.md", f"# Good document {i}\n\nGoodtoken{i:03d} {body}.\n\n## Part two\n\n知识库 文档 {i}.\n")
    else:
        put(f"good_{i:03d}.txt", f"Good document {i}\n\nGoodtoken{i:03d} {body}.\n")

bad = []
def badput(ext, data):
    name = f"bad_{len(bad):03d}.{ext}"
    bad.append(name)
    put(name, data)

# 80 random byte files under text names
for i in range(80):
    badput(["md", "html", "txt", "csv"][i % 4], rnd.randbytes(rnd.randint(1, 65536)))
# 10 deeply nested HTML
for i in range(10):
    depth = [1000, 5000, 20000, 100000, 200000][i % 5]
    tag = ["div", "span", "table", "b", "li"][i % 5]
    close = f"</{tag}>" * depth if i % 2 == 0 else ""
    badput("html", "<html><body>" + f"<{tag}>" * depth + "deep payload" + close)
# a 50 MB single line
line = ("lorem ipsum dolor sit amet " * 2_000_000)[:50 << 20]
badput("txt", line)
# 20 truncated UTF-16
for i in range(20):
    text = ("Truncated wide text 宽字符 " * rnd.randint(1, 500)).encode("utf-16-le" if i % 2 == 0 else "utf-16-be")
    bom = b"\xff\xfe" if i % 2 == 0 else b"\xfe\xff"
    cut = len(text) - 1 if i % 4 < 2 else len(text) // 2 + 1
    tail = b"\x3d\xd8" if i % 3 == 0 else b""          # a lone high surrogate
    badput(["txt", "md", "csv", "html"][i % 4], (bom if i % 5 else b"") + text[:cut] + tail)
# 20 files with NULs
for i in range(20):
    parts = ["Some text with NULs inside " + str(i)] * rnd.randint(1, 200)
    sep = "\x00" * (1 + i % 5)
    badput(["txt", "md", "html", "csv"][i % 4], sep.join(parts))
# 5 ZIP bombs named .docx: word/document.xml inflates to 1 GiB
bomb = os.path.join(root, "bad_bomb.tmp")
with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
    with z.open("word/document.xml", "w", force_zip64=True) as f:
        f.write(b'<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>')
        chunk = b"a" * (1 << 20)
        for _ in range(1024):
            f.write(chunk)
bomb_bytes = open(bomb, "rb").read()
os.remove(bomb)
for i in range(5):
    badput("docx", bomb_bytes)
# 10 billion laughs: 5 as .html, 5 inside a .docx
ents = '<!ENTITY lol "lol">' + "".join(
    f'<!ENTITY lol{k} "{("&lol%s;" % (k - 1 if k > 1 else "")) * 10}">' for k in range(1, 10))
laughs = f'<?xml version="1.0"?><!DOCTYPE lolz [{ents}]>'
for i in range(5):
    badput("html", laughs + "<html><body><p>&lol9;</p></body></html>")
for i in range(5):
    name = os.path.join(root, f"bad_{len(bad):03d}.docx")
    bad.append(os.path.basename(name))
    with zipfile.ZipFile(name, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        z.writestr("word/document.xml", laughs.replace("lolz", "w:document") +
                   '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>')
# 10 truncated PDFs
objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        None, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
stream = b"BT /F1 12 Tf 72 720 Td (Truncated PDF text about pelicans) Tj ET"
out, offs = bytearray(b"%PDF-1.4\n"), []
for k, o in enumerate(objs, 1):
    offs.append(len(out))
    body = o if o else b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    out += b"%d 0 obj\n" % k + body + b"\nendobj\n"
xref = len(out)
out += b"xref\n0 6\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % x for x in offs)
out += b"trailer << /Size 6 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
for i in range(10):
    badput("pdf", bytes(out[: max(9, len(out) * (i + 1) // 11)]))
# 10 deeply nested Markdown
for i in range(10):
    n = [1000, 10000, 100000][i % 3]
    badput("md", [">" * n + " quote", "[" * n + "x" + "]" * n, "".join("  " * k + "- item\n" for k in range(min(n, 3000))),
                  "*" * n + "emph", "`" * n + "code"][i % 5])
# 10 broken CSV
for i in range(10):
    badput("csv", ['a,b,"unterminated\n1,2,3\n' * 1000, ",".join(["x"] * 200000) + "\n",
                   '"' * 100000, "\n" * 100000, 'a;b;c\n"1";"2\n' * 5000][i % 5])
# 24 odds and ends
misc = [b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff\x00", b"\xc3\x28\xa0\xa1" * 10000,
        bytes(range(1, 32)) * 1000, b"<" * 1000000, b"<!--" + b"x" * 100000,
        b"<html><body><p " + b"a=b " * 100000 + b">x</p></body></html>",
        b"<script>" + b"var x=1;" * 50000, b"\r" * 100000, b"\x1b[31m" * 20000,
        "\u202e\u200b\ufeff".encode() * 30000, ("é" * 1000000).encode("latin-1"),
        b"# " + b"#" * 100000, b"<?xml version='1.0' encoding='bogus-charset'?><html>x</html>",
        b'<meta charset="utf-32"><p>x</p>', b"\x00" * 100000, b"%PDF-1.4\n", b"PK\x03\x04" + b"\x00" * 100,
        "\ud7ff\ue000\U0010ffff".encode("utf-8", "surrogatepass") * 10000, b"\xf4\x90\x80\x80" * 10000,
        b"<table>" + b"<tr><td>x" * 100000, b"---\ntitle: [unclosed\n---\n# x\n"]
for i, data in enumerate(misc):
    badput(["txt", "md", "html", "csv"][i % 4], data)
assert len(bad) == 200, len(bad)
PY
[ "$(ls "$IN" | grep -c '^good_')" = 200 ] || fail "200 good files generated"
[ "$(ls "$IN" | grep -c '^bad_')" = 200 ] || fail "200 bad files generated"
ok "fixtures: 200 good, 200 bad ($(du -sm "$IN" | cut -f1) MB)"

# --------------------------------------------------------------- the ingest
note "ingest the mix with sandbox limits (wall 5 s, memory 512 MB)"
export ZHIKU_SANDBOX_WALL_SECONDS=5 ZHIKU_SANDBOX_MEMORY_MB=512
start=$SECONDS
ZK_TIMEOUT=900 zk_run --data-dir "$D" ingest "$IN"
elapsed=$((SECONDS - start))
unset ZHIKU_SANDBOX_WALL_SECONDS ZHIKU_SANDBOX_MEMORY_MB
REPORT=$OUT
printf '%s\n' "$OUT" | grep -E '^[0-9]+ indexed' || true
[ -z "$ERR" ] || { echo "stderr (tail):"; echo "$ERR" | tail -10; }
assert_eq "$RC" 1 "ingest exit code (some failed, no crash)"
[ "$elapsed" -le 400 ] || fail "ingest took ${elapsed}s"
ok "ingest finished in ${elapsed}s"
left=$(pgrep -f -- "$D" || true)
[ -z "$left" ] || { ps -o pid,stat,etime,args -p "$(echo $left | tr ' ' ,)" | cut -c1-150; fail "parser children left behind"; }
ok "no parser child left behind"

note "good files"
assert_eq "$(sql "$DB" "SELECT count(*) FROM documents WHERE status = 'indexed' AND ext_id LIKE '%/good\_%' ESCAPE '\\'")" 200 \
    "all 200 good files indexed"
zk --data-dir "$D" search --json --mode bm25 goodtoken137
assert_eq "$(json_first_str "$OUT" id)" "$IN/good_137.txt" "a good file is searchable"

note "bad files"
nbad_lines=0
for f in "$IN"/bad_*; do
    line=$(printf '%s\n' "$REPORT" | grep -F -- " $f" | grep -E "^[a-z]+ +$f( \(|:|\$)" || true)
    [ "$(printf '%s' "$line" | grep -c .)" = 1 ] || fail "$(basename "$f") reported $(printf '%s' "$line" | grep -c .) times"
    case "$line" in
        indexed*|replaced*) ;;
        failed*|skipped*) printf '%s\n' "$line" | grep -qE ": .+" || fail "no reason: $line" ;;
        *) fail "unexpected report line: $line" ;;
    esac
    nbad_lines=$((nbad_lines + 1))
done
assert_eq "$nbad_lines" 200 "each bad file reported once: indexed as text, or failed/skipped with a reason"
assert_eq "$(sql "$DB" "SELECT count(*) FROM documents WHERE status = 'failed' AND coalesce(error, '') = ''")" 0 \
    "every failed document stored carries an error message"
echo "   outcomes of the bad files:"
printf '%s\n' "$REPORT" | grep -E "/bad_[0-9]+\." | sed -E 's/^([a-z]+) +[^ ]*\/bad_[0-9]+\.([a-z]+)(: | \()?(.*)$/\1 .\2 \4/; s/\(?[0-9]+ chunks\)/N chunks/; s/[0-9]+/N/g' |
    sort | uniq -c | sort -rn | head -40
if grep -qE '/bad_[0-9]+\.[a-z]+: parser (crashed|exceeded|failed|output)' <<<"$REPORT"; then
    ok "sandbox reasons reach the report"
fi
[ "$(printf '%s\n' "$REPORT" | grep -cE '^failed .*out of memory$' || true)" = 0 ] || fail "a parser OOM surfaced as a fatal out-of-memory"
ok "no document failed with a bare out-of-memory"

note "sandbox limits end to end (ZK_SANDBOX_TEST is the test hook of indexer/sandbox.c)"
mkdir -p "$PWD/one"
probe() {   # NAME — a fresh 3 MB text file (a failed file whose bytes did not change is not retried)
    python3 -c 'import sys; open(sys.argv[1], "w").write("Sandbox probe %s about pelicans. " % sys.argv[2] * 100000)' "$PWD/one/$1.txt" "$1"
    P=$PWD/one/$1.txt
}
probe cap
ZHIKU_SANDBOX_MAX_OUTPUT_MB=1 zk_run --data-dir "$D" ingest "$P"
assert_eq "$RC" 1 "3 MB of text over a 1 MB result cap fails"
assert_match "$OUT" "^failed +$P: parser output exceeded the limit \\(1 MB\\)" "output cap reason"
for hook in crash hang; do
    probe "$hook"
    # the crashing parser gets a long wall clock: under valgrind the helper
    # may need more than a second to reach the crash
    wall=1
    [ "$hook" = crash ] && wall=120
    ZK_SANDBOX_TEST=$hook ZHIKU_SANDBOX_WALL_SECONDS=$wall zk_run --data-dir "$D" ingest "$P"
    assert_eq "$RC" 1 "parser $hook: zhiku exits 1"
    case $hook in
        crash) want='parser crashed \(signal 11: SIGSEGV\)' ;;
        hang) want='parser exceeded the wall-clock limit \(1 s\)' ;;
    esac
    assert_match "$OUT" "^failed +$P: $want" "parser $hook: reason recorded"
done
assert_eq "$(sql "$DB" "SELECT status || ': ' || error FROM documents WHERE ext_id = '$P'")" \
    "failed: parser exceeded the wall-clock limit (1 s)" "reason stored on the document"
probe disabled
ZK_SANDBOX_TEST=crash ZHIKU_SANDBOX_ENABLED=false zk_run --data-dir "$D" ingest "$P"
assert_eq "$RC" 0 "sandbox disabled: parsed in-process (the hook acts in the child only)"

note "consistency"
zk --data-dir "$D" check
assert_eq "$(tail -1 <<<"$OUT")" ok "check ok"
assert_eq "$(sqlite3 "$DB" 'PRAGMA integrity_check')" ok "sqlite integrity"

finish
