#!/usr/bin/env python3
"""seed.py — (re)generate the seed corpora fuzz/corpus/<target>/ from the
project's own samples and fixtures (samples/, tests/fake_openai/samples/)
plus tiny documents built here (ZIP containers, PDFs, webhook payloads).
Deterministic; run from the repository root: `python3 fuzz/seed.py`.
Inputs carry the target's selector byte first where the target has one
(see each fuzz/fuzz_*.c). Files over 64 KiB are skipped."""
import io, json, os, shutil, sys, zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")
MAX = 64 * 1024


def files(*dirs, exts=None):
    for d in dirs:
        d = os.path.join(ROOT, d)
        if not os.path.isdir(d):
            continue
        for n in sorted(os.listdir(d)):
            p = os.path.join(d, n)
            if os.path.isfile(p) and os.path.getsize(p) <= MAX and (not exts or n.lower().endswith(exts)):
                yield n, open(p, "rb").read()


corpus = {}


def add(target, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) <= MAX:
        corpus.setdefault(target, []).append((name, data))


# ---- text family: selector 0 md, 1 txt, 2 csv ----------------------------------
MD_TEXT = "# 标题\n\n## Install\n\nRun `make`.\n\n- item 一\n- item 二\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
for n, d in files("samples", exts=(".md",)):
    add("fuzz_text", "sample-" + n.encode("ascii", "replace").decode(), b"\x00" + d)
for n, d in files("samples", exts=(".txt",)):
    add("fuzz_text", "sample-" + n, b"\x01" + d)
add("fuzz_text", "md-mini", b"\x00" + MD_TEXT.encode())
add("fuzz_text", "csv-mini", b"\x02" + "name,部门,phone\n张三,IT,\"1,2\"\n李四,\"HR\"\"x\",3\n".encode())
add("fuzz_text", "txt-gbk", b"\x01" + "员工手册：请假流程。第二段。".encode("gb18030"))
add("fuzz_text", "txt-utf16", b"\x01" + "\ufeffUTF-16 text 中文".encode("utf-16-le"))

# ---- html --------------------------------------------------------------------------
for n, d in files("samples", exts=(".html", ".htm")):
    add("fuzz_html", "sample-" + str(len(d)), d)
add("fuzz_html", "gbk-meta", "<html><head><meta charset=\"gbk\"><title>中文标题</title></head><body><h1>一</h1><p>正文。</p></body></html>".encode("gb18030"))
add("fuzz_html", "broken", "<html><body><p>unclosed <b>bold <i>italic<div>div text</p></table><h2>H</h2><ul><li>x<li>y</ul>")
add("fuzz_html", "nav", "<html><body><nav>menu</nav><main><h1>T</h1><h2>S</h2><p>a</p><table><tr><td>1<td>2</table></main><script>x</script></body></html>")

# ---- chunker: byte0 target, byte1 overlap, then text --------------------------------
for n, d in files("samples", exts=(".txt", ".md")):
    add("fuzz_chunker", "sample-%d" % len(d), bytes([20, 5]) + d)
add("fuzz_chunker", "cjk", bytes([8, 3]) + "第一句。第二句！第三句？最后……\n\nEnglish. Two! Three?".encode())
add("fuzz_chunker", "longword", bytes([4, 9]) + b"x" * 300 + b" " + "字" .encode() * 100)

# ---- charset ---------------------------------------------------------------------
for n, d in files("samples", exts=(".txt",)):
    add("fuzz_charset", "utf8-" + n, d)
txt = "员工手册：年假、病假与加班规定。Employee handbook."
for enc in ("gb18030", "big5", "shift_jis", "utf-16-le", "utf-16-be", "utf-32", "latin-1"):
    try:
        add("fuzz_charset", enc, txt.encode(enc, "replace"))
    except LookupError:
        pass
add("fuzz_charset", "bom8", b"\xef\xbb\xbf" + txt.encode())
add("fuzz_charset", "bom16be", b"\xfe\xff" + txt.encode("utf-16-be"))
add("fuzz_charset", "invalid", b"ok \xff\xfe\xc3 \xe4\xb8 \x80\x80 end")

# ---- tokenizer -------------------------------------------------------------------
add("fuzz_tokenizer", "mixed", "Installing FAISS 的向量索引 running quickly ＡＢＣ１２３ 🙂 e-mail")
add("fuzz_tokenizer", "long", "a" * 100 + " 中" + " supercalifragilisticexpialidocious" * 3)
add("fuzz_tokenizer", "query", "\"年假 政策\" OR leave* NEAR(a b)")
for n, d in files("samples", exts=(".md",)):
    add("fuzz_tokenizer", "sample-%d" % len(d), d[:2048])

# ---- citation filter: byte0 = number of sources --------------------------------------
add("fuzz_cite", "basic", bytes([3]) + "年假为 5 天[1]。病假另计[2][3]，见手册[1, 3]。无效[9]与[0]及[x]。".encode())
add("fuzz_cite", "split", bytes([2]) + b"a [1 b [2] c [1,2] d [1][2] e [")
add("fuzz_cite", "json", b'{"question":"\xe5\xb9\xb4\xe5\x81\x87","kb":"hr","stream":true,"top_k":5}')

# ---- chat stream: byte0 0 SSE, 1 NDJSON, 2 JSON -------------------------------------
for n, d in files("tests/fake_openai/samples"):
    if n.endswith(".sse"):
        add("fuzz_chat_stream", n, b"\x00" + d)
    elif n.endswith(".json"):
        add("fuzz_chat_stream", n, b"\x02" + d)
def ev(o):
    return b"data: " + json.dumps(o, ensure_ascii=False).encode() + b"\n\n"
add("fuzz_chat_stream", "sse-think", b"\x00: keep-alive\n" + ev({"choices": [{"delta": {"content": "<think>hm"}}]})
    + ev({"choices": [{"delta": {"content": "</think>\nAnswer [1]."}}]})
    + ev({"choices": [{"delta": {"reasoning_content": "r"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3}})
    + b"data: [DONE]\r\n\r\n")
add("fuzz_chat_stream", "sse-error", b"\x00event: error\ndata: {\"error\":{\"message\":\"overloaded\"}}\n\nerror: {\"error\":\"x\"}\n")
add("fuzz_chat_stream", "ndjson", b"\x01" + json.dumps({"model": "qwen", "message": {"role": "assistant", "content": "你好"}, "done": False}).encode()
    + b"\n" + json.dumps({"done": True, "prompt_eval_count": 5, "eval_count": 2}).encode() + b"\n")

# ---- ZIP containers: byte0 = name hint (0 docx, 1 xlsx, 2 pptx, 3 odt, 4 epub) ---------
def zipdoc(entries, stored_first=None):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
        if stored_first:
            z.writestr(zipfile.ZipInfo(stored_first[0]), stored_first[1], compress_type=zipfile.ZIP_STORED)
        for n, d in entries:
            z.writestr(zipfile.ZipInfo(n), d)
    return b.getvalue()

CT = '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/%s" ContentType="%s"/></Types>'
RELS = '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="%s"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/></Relationships>'
CORE = '<?xml version="1.0"?><cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>标题</dc:title></cp:coreProperties>'
W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
docx = zipdoc([
    ("[Content_Types].xml", CT % ("word/document.xml", "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml")),
    ("_rels/.rels", RELS % "word/document.xml"),
    ("docProps/core.xml", CORE),
    ("word/document.xml", '<?xml version="1.0"?><w:document %s><w:body><w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>第一章</w:t></w:r></w:p><w:p><w:r><w:t xml:space="preserve">正文 text </w:t></w:r><w:r><w:tab/><w:t>more</w:t></w:r></w:p><w:tbl><w:tr><w:tc><w:p><w:r><w:t>a</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>b</w:t></w:r></w:p></w:tc></w:tr></w:tbl></w:body></w:document>' % W),
])
add("fuzz_zip", "docx", b"\x00" + docx)
S = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
xlsx = zipdoc([
    ("[Content_Types].xml", CT % ("xl/workbook.xml", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml")),
    ("_rels/.rels", RELS % "xl/workbook.xml"),
    ("xl/workbook.xml", '<?xml version="1.0"?><workbook %s><sheets><sheet name="表1" sheetId="1" r:id="rId1"/></sheets></workbook>' % S),
    ("xl/_rels/workbook.xml.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>'),
    ("xl/sharedStrings.xml", '<?xml version="1.0"?><sst %s><si><t>姓名</t></si><si><t>部门</t></si></sst>' % S),
    ("xl/worksheets/sheet1.xml", '<?xml version="1.0"?><worksheet %s><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>张三</t></is></c><c r="B2"><v>42</v></c></row></sheetData></worksheet>' % S),
])
add("fuzz_zip", "xlsx", b"\x01" + xlsx)
P = 'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
pptx = zipdoc([
    ("[Content_Types].xml", CT % ("ppt/presentation.xml", "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml")),
    ("_rels/.rels", RELS % "ppt/presentation.xml"),
    ("ppt/presentation.xml", '<?xml version="1.0"?><p:presentation %s><p:sldIdLst><p:sldId id="256" r:id="rId1"/></p:sldIdLst></p:presentation>' % P),
    ("ppt/_rels/presentation.xml.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide" Target="slides/slide1.xml"/></Relationships>'),
    ("ppt/slides/slide1.xml", '<?xml version="1.0"?><p:sld %s><p:cSld><p:spTree><p:sp><p:nvSpPr><p:nvPr><p:ph type="title"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:r><a:t>幻灯片标题</a:t></a:r></a:p></p:txBody></p:sp><p:sp><p:txBody><a:p><a:r><a:t>要点一</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>' % P),
])
add("fuzz_zip", "pptx", b"\x02" + pptx)
odt = zipdoc([
    ("META-INF/manifest.xml", '<?xml version="1.0"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.text"/></manifest:manifest>'),
    ("meta.xml", '<?xml version="1.0"?><office:document-meta xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><office:meta><dc:title>ODT 标题</dc:title></office:meta></office:document-meta>'),
    ("content.xml", '<?xml version="1.0"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text><text:h text:outline-level="1">章</text:h><text:p>段落<text:s/>文字<text:tab/>x</text:p><text:list><text:list-item><text:p>项</text:p></text:list-item></text:list></office:text></office:body></office:document-content>'),
], stored_first=("mimetype", "application/vnd.oasis.opendocument.text"))
add("fuzz_zip", "odt", b"\x03" + odt)
epub = zipdoc([
    ("META-INF/container.xml", '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>'),
    ("OEBPS/content.opf", '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>书名</dc:title></metadata><manifest><item id="c1" href="ch%201.xhtml" media-type="application/xhtml+xml"/></manifest><spine><itemref idref="c1"/></spine></package>'),
    ("OEBPS/ch 1.xhtml", '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>第一章</title></head><body><h1>第一章</h1><p>正文。</p></body></html>'),
], stored_first=("mimetype", "application/epub+zip"))
add("fuzz_zip", "epub", b"\x04" + epub)
add("fuzz_zip", "notdoc", b"\x05" + zipdoc([("a.txt", "hello"), ("../evil", "x")]))

# ---- PDF: hand-written, xref offsets computed ------------------------------------------
def pdf(objs, trailer_extra=""):
    out = b"%PDF-1.4\n"
    offs = []
    for i, o in enumerate(objs, 1):
        offs.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    x = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for o in offs:
        out += b"%010d 00000 n \n" % o
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, trailer_extra.encode(), x)
    return out

def content(s):
    return b"<< /Length %d >>\nstream\n" % len(s) + s + b"\nendstream"

page_text = b"BT /F1 24 Tf 72 720 Td (Heading Title) Tj ET BT /F1 11 Tf 72 690 Td (Body text line one.) Tj 0 -14 Td (Second line.) Tj ET"
add("fuzz_pdf", "text", pdf([
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
    content(page_text),
    b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    b"<< /Title (PDF title) >>",
], "/Info 6 0 R "))
add("fuzz_pdf", "twopages", pdf([
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R 5 0 R] /Count 2 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 7 0 R >> >> >>",
    content(b"BT /F1 11 Tf 50 700 Td (Left column) Tj ET BT /F1 11 Tf 320 700 Td (Right column) Tj ET"),
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 6 0 R /Resources << /Font << /F1 7 0 R >> >> >>",
    content(b"BT /F1 11 Tf 72 700 Td <48656c6c6f> Tj ET"),
    b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>",
]))
add("fuzz_pdf", "empty-page", pdf([
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 100 100] >>",
]))

# ---- webhooks ----------------------------------------------------------------------
WECOM_INNER = "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName><FromUserName><![CDATA[ChenJiaShun]]></FromUserName><CreateTime>1476422779</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好 年假多少天]]></Content><MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
add("fuzz_wecom", "inner-text", b"\x00" + WECOM_INNER.encode())
add("fuzz_wecom", "inner-event", b"\x00<xml><MsgType>event</MsgType><Event>enter_agent</Event><FromUserName>u</FromUserName></xml>")
raw = b"0123456789abcdef" + len(WECOM_INNER.encode()).to_bytes(4, "big") + WECOM_INNER.encode() + b"ww1436e0e65a779aee"
padn = 32 - len(raw) % 32
add("fuzz_wecom", "raw-plain", b"\x01" + raw + bytes([padn]) * padn)
add("fuzz_wecom", "envelope", b"\x02<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName><Encrypt><![CDATA[AAAA]]></Encrypt><AgentID>1</AgentID></xml>")
add("fuzz_wecom", "echostr", b"\x03fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==")

DT = {"conversationId": "cidABC==", "atUsers": [{"dingtalkId": "$:LWCP_v1:$x", "staffId": "robot"}],
      "chatbotCorpId": "dingcorp", "chatbotUserId": "$:LWCP_v1:$bot", "msgId": "msgABC123", "senderNick": "张三",
      "isAdmin": False, "senderStaffId": "staff42", "sessionWebhookExpiredTime": 1700005400000,
      "createAt": 1700000000000, "senderCorpId": "dingcorp", "conversationType": "2", "senderId": "$:LWCP_v1:$s",
      "conversationTitle": "KB", "isInAtList": True,
      "sessionWebhook": "http://127.0.0.1:9/dingtalk/session/xyz?session=1",
      "text": {"content": " @bot 年假有几天？ "}, "msgtype": "text"}
add("fuzz_dingtalk", "group", b"\x00" + json.dumps(DT, ensure_ascii=False).encode())
dm = dict(DT, conversationType="1", msgtype="richText", text=None)
add("fuzz_dingtalk", "dm", b"\x01" + json.dumps(dm, ensure_ascii=False).encode())

FS = {"schema": "2.0", "header": {"event_id": "ev_0001", "event_type": "im.message.receive_v1",
      "create_time": "1700000000000", "token": "vtok-123", "app_id": "cli_a", "tenant_key": "t"},
      "event": {"sender": {"sender_id": {"union_id": "on_1", "user_id": "u1", "open_id": "ou_alice"}, "sender_type": "user"},
                "message": {"message_id": "om_1", "chat_id": "oc_1", "chat_type": "group", "message_type": "text",
                            "content": json.dumps({"text": "@_user_1 年假？"}, ensure_ascii=False),
                            "mentions": [{"key": "@_user_1", "name": "bot"}]}}}
fs = json.dumps(FS, ensure_ascii=False).encode()
add("fuzz_feishu", "plain-msg", b"\x00" + fs)
add("fuzz_feishu", "plain-challenge", b'\x00{"challenge":"ajls384kdjx98XX","token":"vtok-123","type":"url_verification"}')
add("fuzz_feishu", "enc-msg", b"\x01" + fs)
add("fuzz_feishu", "enc-raw", b"\x02" + b'{"challenge":"c","token":"vtok-123","type":"url_verification"}' + b"\x03\x03\x03")
add("fuzz_feishu", "decrypt", b"\x03P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pSzNxYmCmjoWWnDEMgtyE7OAdTWfMp+SoSBtAzl/e/qA+7ugSI==")

add("fuzz_hooks", "generic", b'\x00{"user":"alice","question":"\xe5\xb9\xb4\xe5\x81\x87?","kb":"hr","id":"e1"}')
add("fuzz_hooks", "slack-mention", b'\x01' + json.dumps({"type": "event_callback", "event_id": "Ev1", "event": {"type": "app_mention", "user": "U1", "text": "<@U0BOT> leave policy?", "channel": "C1", "ts": "1.2"}}).encode())
add("fuzz_hooks", "slack-challenge", b'\x01{"type":"url_verification","challenge":"abc","token":"t"}')
add("fuzz_hooks", "strip", b"\x02<@U123> hello <@U456|bob>  ")
add("fuzz_hooks", "verify", b"\x031700000000\nv0=0123abcd")


def main():
    targets = sys.argv[1:] or sorted(corpus)
    total = 0
    for t in targets:
        d = os.path.join(OUT, t)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, data in corpus.get(t, []):
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            with open(os.path.join(d, safe), "wb") as f:
                f.write(data)
            total += len(data)
    print("seed corpora: %d targets, %d bytes" % (len(targets), total))


if __name__ == "__main__":
    main()
