/* test_formats.c — the container and table parsers (docx, xlsx, pptx, odt,
 * epub, csv) and their hostile-input defences: detection by content under
 * a wrong extension, zip bombs (honest and lying sizes), billion laughs,
 * "../" entry names, truncated archives, legacy .doc/.rtf refusals.
 * Fixtures are built in memory with libzip (bombs by hand, to stay fast). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zip.h>

#include "indexer/parse/parse.h"
#include "indexer/parse/zipread.h"

/* ---- fixture helpers ---------------------------------------------------- */

/* A ZIP in memory from n (name, body) pairs. Caller frees. */
static char *make_zip(const char *const *parts, size_t n, size_t *out_len)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &ze);
    assert_non_null(src);
    zip_source_keep(src);
    zip_t *za = zip_open_from_source(src, ZIP_TRUNCATE, &ze);
    assert_non_null(za);
    for (size_t i = 0; i < n; i++) {
        zip_source_t *s = zip_source_buffer(za, parts[2 * i + 1], strlen(parts[2 * i + 1]), 0);
        assert_non_null(s);
        assert_true(zip_file_add(za, parts[2 * i], s, ZIP_FL_ENC_UTF_8) >= 0);
    }
    assert_int_equal(zip_close(za), 0);
    assert_int_equal(zip_source_open(src), 0);
    zip_stat_t st;
    zip_stat_init(&st);
    assert_int_equal(zip_source_stat(src, &st), 0);
    char *buf = malloc(st.size + 1);
    assert_non_null(buf);
    assert_int_equal(zip_source_read(src, buf, st.size), (zip_int64_t)st.size);
    zip_source_close(src);
    zip_source_free(src);
    zip_error_fini(&ze);
    *out_len = st.size;
    return buf;
}

static idx_parsed *parse_ok(const char *name, const char *data, size_t len)
{
    idx_parsed *d = NULL;
    char err[ZK_ERRLEN] = "";
    zk_rc rc = idx_parse(name, data, len, &d, err);
    if (rc != ZK_OK) fprintf(stderr, "parse: %s\n", err);
    assert_int_equal(rc, ZK_OK);
    assert_non_null(d);
    assert_non_null(d->title);
    return d;
}

/* Index of the first block whose heading equals h (NULL: no heading), or -1. */
static int block_with_heading(const idx_parsed *d, const char *h)
{
    for (size_t i = 0; i < d->nblocks; i++) {
        const char *bh = d->blocks[i].heading;
        if ((!h && !bh) || (h && bh && !strcmp(h, bh))) return (int)i;
    }
    return -1;
}

static void assert_block(const idx_parsed *d, const char *heading, const char *needle)
{
    int i = block_with_heading(d, heading);
    if (i < 0) {
        for (size_t k = 0; k < d->nblocks; k++)
            fprintf(stderr, "block %zu [%s]: %s\n", k, d->blocks[k].heading ? d->blocks[k].heading : "(null)",
                    d->blocks[k].text);
        fail_msg("no block with heading %s", heading ? heading : "(null)");
    }
    if (!strstr(d->blocks[i].text, needle))
        fail_msg("block [%s] lacks \"%s\": %s", heading ? heading : "(null)", needle, d->blocks[i].text);
}

/* ---- DOCX --------------------------------------------------------------- */

#define W_NS "xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\""
static const char CT[] = "<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"/>";

static const char DOCX_STYLES[] =
    "<?xml version=\"1.0\"?><w:styles " W_NS ">"
    "<w:style w:type=\"paragraph\" w:styleId=\"Heading1\"><w:name w:val=\"heading 1\"/></w:style>"
    "<w:style w:type=\"paragraph\" w:styleId=\"Kopf2\"><w:name w:val=\"heading 2\"/></w:style>"
    "<w:style w:type=\"paragraph\" w:styleId=\"Titel\"><w:name w:val=\"Title\"/></w:style>"
    "</w:styles>";

static const char DOCX_BODY[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><w:document " W_NS "><w:body>"
    "<w:p><w:pPr><w:pStyle w:val=\"Titel\"/></w:pPr><w:r><w:t>Handbook</w:t></w:r></w:p>"
    "<w:p><w:pPr><w:pStyle w:val=\"Heading1\"/></w:pPr><w:r><w:t>Intro</w:t></w:r></w:p>"
    "<w:p><w:r><w:t xml:space=\"preserve\">Hello </w:t></w:r><w:r><w:tab/><w:t>world</w:t><w:br/>"
    "<w:t>next line</w:t></w:r></w:p>"
    "<w:p><w:pPr><w:pStyle w:val=\"Kopf2\"/></w:pPr><w:r><w:t>Details</w:t></w:r></w:p>"
    "<w:p><w:r><w:t>Before the table.</w:t></w:r></w:p>"
    "<w:tbl><w:tblPr/><w:tr><w:tc><w:p><w:r><w:t>Name</w:t></w:r></w:p></w:tc>"
    "<w:tc><w:p><w:r><w:t>Role</w:t></w:r></w:p></w:tc></w:tr>"
    "<w:tr><w:tc><w:p><w:r><w:t>Ada</w:t></w:r></w:p></w:tc>"
    "<w:tc><w:p><w:r><w:t>Engineer</w:t></w:r></w:p></w:tc></w:tr></w:tbl>"
    "<w:p><w:pPr><w:outlineLvl w:val=\"0\"/></w:pPr><w:r><w:t>Outline Top</w:t></w:r></w:p>"
    "<w:p><w:r><w:t>Under outline.</w:t></w:r></w:p>"
    "</w:body></w:document>";

static const char DOCX_CORE[] =
    "<?xml version=\"1.0\"?><cp:coreProperties xmlns:cp=\"http://schemas.openxmlformats.org/package/2006/metadata/core-properties\" "
    "xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><dc:title>Staff Handbook 2024</dc:title></cp:coreProperties>";

static void test_docx(void **state)
{
    (void)state;
    const char *parts[] = {"[Content_Types].xml", CT, "word/document.xml", DOCX_BODY,
                           "word/styles.xml", DOCX_STYLES, "docProps/core.xml", DOCX_CORE};
    size_t len;
    char *z = make_zip(parts, 4, &len);
    idx_parsed *d = parse_ok("handbook.docx", z, len);
    assert_string_equal(d->format, "docx");
    assert_string_equal(d->title, "Staff Handbook 2024");
    assert_block(d, "Handbook > Intro", "Hello \tworld\nnext line");
    assert_block(d, "Handbook > Intro > Details", "Before the table.\n\nName | Role\nAda | Engineer");
    assert_block(d, "Handbook > Outline Top", "Under outline.");
    idx_parsed_free(d);
    free(z);

    /* no core.xml: the first heading (the Title paragraph) is the title */
    z = make_zip(parts, 3, &len);
    d = parse_ok("handbook.docx", z, len);
    assert_string_equal(d->title, "Handbook");
    idx_parsed_free(d);
    free(z);
}

/* A .docx renamed .bin is still a docx: detection reads the entries. */
static void test_detect_by_content(void **state)
{
    (void)state;
    const char *parts[] = {"[Content_Types].xml", CT, "word/document.xml", DOCX_BODY};
    size_t len;
    char *z = make_zip(parts, 2, &len);
    assert_string_equal(idx_detect_format("report.bin", z, len), "docx");
    assert_string_equal(idx_detect_format(NULL, z, len), "docx");
    idx_parsed *d = parse_ok("report.bin", z, len);
    assert_string_equal(d->format, "docx");
    assert_string_equal(d->title, "Intro");   /* no styles.xml: "Titel" is unknown */
    idx_parsed_free(d);
    free(z);

    /* a plain ZIP is not a document */
    const char *other[] = {"notes/readme.txt", "hello"};
    z = make_zip(other, 1, &len);
    assert_null(idx_detect_format("x.docx", z, len));
    idx_parsed *bad = NULL;
    char err[ZK_ERRLEN] = "";
    assert_int_equal(idx_parse("x.docx", z, len, &bad, err), ZK_UNSUPPORTED);
    assert_null(bad);
    assert_non_null(strstr(err, "ZIP"));
    free(z);
}

/* ---- XLSX --------------------------------------------------------------- */

static void test_xlsx(void **state)
{
    (void)state;
    const char *wb =
        "<?xml version=\"1.0\"?><workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" "
        "xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><sheets>"
        "<sheet name=\"People\" sheetId=\"1\" r:id=\"rId7\"/><sheet name=\"Cities\" sheetId=\"2\" r:id=\"rId8\"/>"
        "</sheets></workbook>";
    const char *rels =
        "<?xml version=\"1.0\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
        "<Relationship Id=\"rId8\" Type=\"x/worksheet\" Target=\"worksheets/sheet1.xml\"/>"
        "<Relationship Id=\"rId7\" Type=\"x/worksheet\" Target=\"/xl/worksheets/sheet2.xml\"/></Relationships>";
    const char *sst =
        "<?xml version=\"1.0\"?><sst xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">"
        "<si><t>Name</t></si><si><t>Age</t></si><si><r><t>Al</t></r><r><t>ice</t></r><rPh><t>x</t></rPh></si>"
        "<si><t>City</t></si></sst>";
    const char *people =   /* sheet2.xml: reached through rId7 */
        "<?xml version=\"1.0\"?><worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetData>"
        "<row r=\"1\"/>"
        "<row r=\"2\"><c r=\"A2\" t=\"s\"><v>0</v></c><c r=\"B2\" t=\"s\"><v>1</v></c><c r=\"C2\" t=\"inlineStr\"><is><t>Note</t></is></c></row>"
        "<row r=\"3\"><c r=\"A3\" t=\"s\"><v>2</v></c><c r=\"B3\"><v>30.5</v></c><c r=\"D3\"><v>7</v></c></row>"
        "<row r=\"4\"><c r=\"A4\" t=\"inlineStr\"><is><t>Bob</t></is></c><c r=\"C4\" t=\"b\"><v>1</v></c></row>"
        "</sheetData></worksheet>";
    const char *cities =
        "<?xml version=\"1.0\"?><worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetData>"
        "<row r=\"1\"><c r=\"A1\" t=\"s\"><v>3</v></c></row><row r=\"2\"><c r=\"A2\" t=\"inlineStr\"><is><t>Lyon</t></is></c></row>"
        "</sheetData></worksheet>";
    const char *parts[] = {"[Content_Types].xml", CT, "xl/workbook.xml", wb, "xl/_rels/workbook.xml.rels", rels,
                           "xl/sharedStrings.xml", sst, "xl/worksheets/sheet2.xml", people,
                           "xl/worksheets/sheet1.xml", cities};
    size_t len;
    char *z = make_zip(parts, 6, &len);
    assert_string_equal(idx_detect_format("data.zip", z, len), "xlsx");
    idx_parsed *d = parse_ok("budget.xlsx", z, len);
    assert_string_equal(d->format, "xlsx");
    assert_string_equal(d->title, "budget");
    assert_int_equal(d->nblocks, 2);
    assert_string_equal(d->blocks[0].heading, "People");
    assert_string_equal(d->blocks[0].text, "Name: Alice; Age: 30.5; D: 7\nName: Bob; Note: TRUE");
    assert_string_equal(d->blocks[1].heading, "Cities");
    assert_string_equal(d->blocks[1].text, "City: Lyon");
    idx_parsed_free(d);
    free(z);
}

/* ---- PPTX --------------------------------------------------------------- */

#define SLIDE(title, body)                                                                         \
    "<?xml version=\"1.0\"?><p:sld xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\" "  \
    "xmlns:p=\"http://schemas.openxmlformats.org/presentationml/2006/main\"><p:cSld><p:spTree>"    \
    "<p:sp><p:nvSpPr><p:cNvPr id=\"2\" name=\"T\"/><p:cNvSpPr/><p:nvPr><p:ph type=\"title\"/></p:nvPr></p:nvSpPr>" \
    "<p:txBody><a:p><a:r><a:t>" title "</a:t></a:r></a:p></p:txBody></p:sp>"                   \
    "<p:sp><p:nvSpPr><p:cNvPr id=\"3\" name=\"B\"/><p:cNvSpPr/><p:nvPr><p:ph idx=\"1\"/></p:nvPr></p:nvSpPr>" \
    "<p:txBody><a:p><a:r><a:t>" body "</a:t></a:r></a:p><a:p><a:r><a:t>second</a:t></a:r><a:r><a:t> point</a:t></a:r></a:p>" \
    "</p:txBody></p:sp></p:spTree></p:cSld></p:sld>"

static void test_pptx(void **state)
{
    (void)state;
    const char *pres =
        "<?xml version=\"1.0\"?><p:presentation xmlns:p=\"http://schemas.openxmlformats.org/presentationml/2006/main\" "
        "xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><p:sldIdLst>"
        "<p:sldId id=\"256\" r:id=\"rId3\"/><p:sldId id=\"257\" r:id=\"rId2\"/></p:sldIdLst></p:presentation>";
    const char *rels =
        "<?xml version=\"1.0\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
        "<Relationship Id=\"rId2\" Type=\"http://x/slide\" Target=\"slides/slide1.xml\"/>"
        "<Relationship Id=\"rId3\" Type=\"http://x/slide\" Target=\"slides/slide2.xml\"/></Relationships>";
    const char *srels =
        "<?xml version=\"1.0\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
        "<Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/notesSlide\" "
        "Target=\"../notesSlides/notesSlide9.xml\"/></Relationships>";
    const char *notes =
        "<?xml version=\"1.0\"?><p:notes xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\" "
        "xmlns:p=\"http://schemas.openxmlformats.org/presentationml/2006/main\"><p:cSld><p:spTree>"
        "<p:sp><p:nvSpPr><p:nvPr><p:ph type=\"sldImg\"/></p:nvPr></p:nvSpPr></p:sp>"
        "<p:sp><p:nvSpPr><p:nvPr><p:ph type=\"body\" idx=\"1\"/></p:nvPr></p:nvSpPr>"
        "<p:txBody><a:p><a:r><a:t>Remember the budget.</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:notes>";
    const char *parts[] = {"[Content_Types].xml", CT, "ppt/presentation.xml", pres,
                           "ppt/_rels/presentation.xml.rels", rels,
                           "ppt/slides/slide1.xml", SLIDE("Later Slide", "body of file one"),
                           "ppt/slides/slide2.xml", SLIDE("Opening", "body of file two"),
                           "ppt/slides/_rels/slide2.xml.rels", srels,
                           "ppt/notesSlides/notesSlide9.xml", notes};
    size_t len;
    char *z = make_zip(parts, 7, &len);
    idx_parsed *d = parse_ok("deck.pptx", z, len);
    assert_string_equal(d->format, "pptx");
    assert_string_equal(d->title, "Opening");
    assert_int_equal(d->nblocks, 2);
    assert_string_equal(d->blocks[0].heading, "Slide 1: Opening");
    assert_string_equal(d->blocks[0].text,
                        "Opening\n\nbody of file two\nsecond point\n\nNotes: Remember the budget.");
    assert_string_equal(d->blocks[1].heading, "Slide 2: Later Slide");
    assert_non_null(strstr(d->blocks[1].text, "body of file one"));
    idx_parsed_free(d);
    free(z);
}

/* ---- ODT ---------------------------------------------------------------- */

static void test_odt(void **state)
{
    (void)state;
    const char *content =
        "<?xml version=\"1.0\"?><office:document-content xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" "
        "xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\" xmlns:table=\"urn:oasis:names:tc:opendocument:xmlns:table:1.0\">"
        "<office:body><office:text><text:sequence-decls><text:sequence-decl text:name=\"Hidden\"/></text:sequence-decls>"
        "<text:h text:outline-level=\"1\">Chapter One</text:h>"
        "<text:p>First <text:span>para</text:span>graph<text:s/>here.<text:note><text:note-body><text:p>footnote</text:p></text:note-body></text:note></text:p>"
        "<text:h text:outline-level=\"2\">Section A</text:h>"
        "<text:list><text:list-item><text:p>apples</text:p></text:list-item><text:list-item><text:p>pears</text:p></text:list-item></text:list>"
        "<table:table><table:table-row><table:table-cell><text:p>k</text:p></table:table-cell>"
        "<table:table-cell><text:p>v</text:p></table:table-cell></table:table-row></table:table>"
        "</office:text></office:body></office:document-content>";
    const char *meta =
        "<?xml version=\"1.0\"?><office:document-meta xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" "
        "xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><office:meta><dc:title>Fruit Report</dc:title></office:meta></office:document-meta>";
    const char *parts[] = {"mimetype", "application/vnd.oasis.opendocument.text", "content.xml", content,
                           "meta.xml", meta};
    size_t len;
    char *z = make_zip(parts, 3, &len);
    idx_parsed *d = parse_ok("fruit.dat", z, len);
    assert_string_equal(d->format, "odt");
    assert_string_equal(d->title, "Fruit Report");
    assert_block(d, "Chapter One", "First paragraph here.");
    assert_null(strstr(d->blocks[block_with_heading(d, "Chapter One")].text, "footnote"));
    assert_block(d, "Chapter One > Section A", "apples\npears\n\nk | v");
    idx_parsed_free(d);
    free(z);
}

/* ---- EPUB --------------------------------------------------------------- */

static void test_epub(void **state)
{
    (void)state;
    const char *container =
        "<?xml version=\"1.0\"?><container xmlns=\"urn:oasis:names:tc:opendocument:xmlns:container\" version=\"1.0\">"
        "<rootfiles><rootfile full-path=\"OEBPS/content.opf\" media-type=\"application/oebps-package+xml\"/></rootfiles></container>";
    const char *opf =
        "<?xml version=\"1.0\"?><package xmlns=\"http://www.idpf.org/2007/opf\" version=\"3.0\">"
        "<metadata xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><dc:title>Sea Stories</dc:title></metadata>"
        "<manifest><item id=\"c1\" href=\"text/ch%201.xhtml\" media-type=\"application/xhtml+xml\"/>"
        "<item id=\"c2\" href=\"text/ch2.xhtml\" media-type=\"application/xhtml+xml\"/></manifest>"
        "<spine><itemref idref=\"c2\"/><itemref idref=\"c1\"/></spine></package>";
    const char *ch1 = "<?xml version=\"1.0\" encoding=\"utf-8\"?><html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>c1</title></head>"
                      "<body><h1>Whales</h1><p>Whales sing in the deep.</p></body></html>";
    const char *ch2 = "<?xml version=\"1.0\" encoding=\"utf-8\"?><html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>c2</title></head>"
                      "<body><h1>Tides</h1><h2>Spring</h2><p>The moon pulls the sea.</p></body></html>";
    const char *parts[] = {"mimetype", "application/epub+zip", "META-INF/container.xml", container,
                           "OEBPS/content.opf", opf, "OEBPS/text/ch 1.xhtml", ch1, "OEBPS/text/ch2.xhtml", ch2};
    size_t len;
    char *z = make_zip(parts, 5, &len);
    idx_parsed *d = parse_ok("book.epub", z, len);
    assert_string_equal(d->format, "epub");
    assert_string_equal(d->title, "Sea Stories");
    assert_int_equal(d->nblocks, 2);
    assert_string_equal(d->blocks[0].heading, "Tides > Spring");   /* spine order, not manifest order */
    assert_non_null(strstr(d->blocks[0].text, "The moon pulls the sea."));
    assert_string_equal(d->blocks[1].heading, "Whales");
    assert_non_null(strstr(d->blocks[1].text, "Whales sing in the deep."));
    idx_parsed_free(d);
    free(z);
}

/* ---- CSV ---------------------------------------------------------------- */

static void test_csv(void **state)
{
    (void)state;
    const char *csv = "\n id;name;comment\n1;\"Smith; John\";\"said \"\"hi\"\"\nthen left\"\n2;Lee;\n3;;x\n";
    assert_string_equal(idx_detect_format("export", csv, strlen(csv)), "csv");
    idx_parsed *d = parse_ok("export", csv, strlen(csv));
    assert_string_equal(d->format, "csv");
    assert_int_equal(d->nblocks, 1);
    assert_string_equal(d->blocks[0].text,
                        "id: 1; name: Smith; John; comment: said \"hi\"\nthen left\nid: 2; name: Lee\nid: 3; comment: x");
    idx_parsed_free(d);

    const char *tsv = "a\tb\n1\t2\n";
    d = parse_ok("t.tsv", tsv, strlen(tsv));
    assert_string_equal(d->format, "csv");
    assert_string_equal(d->blocks[0].text, "a: 1; b: 2");
    idx_parsed_free(d);

    /* prose with commas stays text */
    const char *prose = "Well, I think so.\nYes, we went home, and then slept.\nThe end, finally.\n";
    assert_string_equal(idx_detect_format("notes", prose, strlen(prose)), "txt");

    /* many rows are split into several blocks, each row keeps its header */
    char big[20000] = "k,v\n";
    for (int i = 0; i < 250; i++) snprintf(big + strlen(big), sizeof big - strlen(big), "%d,val%d\n", i, i);
    d = parse_ok("big.csv", big, strlen(big));
    assert_int_equal(d->nblocks, 3);
    assert_non_null(strstr(d->blocks[2].text, "k: 249; v: val249"));
    idx_parsed_free(d);
}

/* ---- hostile input ------------------------------------------------------ */

static uint32_t crc32_of(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= b[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return ~c;
}

typedef struct {
    unsigned char *p;
    size_t len;
    uint64_t acc;
    int nacc;
} bitw;

static void bits(bitw *w, uint32_t v, int n)
{
    w->acc |= (uint64_t)v << w->nacc;
    w->nacc += n;
    while (w->nacc >= 8) { w->p[w->len++] = (unsigned char)w->acc; w->acc >>= 8; w->nacc -= 8; }
}

/* A raw deflate stream inflating to 1 + 258*pairs zero bytes: one literal,
 * then <length 258, distance 1> copies, fixed Huffman codes (13 bits each). */
static unsigned char *zero_deflate(size_t pairs, size_t *out_len)
{
    bitw w = {malloc(pairs * 13 / 8 + 16), 0, 0, 0};
    assert_non_null(w.p);
    bits(&w, 1, 1);          /* BFINAL */
    bits(&w, 1, 2);          /* BTYPE = fixed */
    bits(&w, 0x0C, 8);       /* literal 0 (code 00110000, bit-reversed) */
    for (size_t i = 0; i < pairs; i++) bits(&w, 0xA3, 13);   /* len 258 (11000101 rev), dist 0 */
    bits(&w, 0, 7);          /* end of block */
    if (w.nacc) bits(&w, 0, 8 - w.nacc);
    *out_len = w.len;
    return w.p;
}

static void put16(unsigned char **q, unsigned v) { (*q)[0] = (unsigned char)v; (*q)[1] = (unsigned char)(v >> 8); *q += 2; }
static void put32(unsigned char **q, uint32_t v) { put16(q, v & 0xFFFF); put16(q, v >> 16); }

/* A hand-built ZIP: a stored [Content_Types].xml and a deflated
 * word/document.xml whose header claims `declared` uncompressed bytes. */
static char *bomb_zip(size_t pairs, uint32_t declared, size_t *out_len)
{
    size_t dlen;
    unsigned char *def = zero_deflate(pairs, &dlen);
    const char *names[2] = {"[Content_Types].xml", "word/document.xml"};
    const unsigned char *data[2] = {(const unsigned char *)CT, def};
    size_t clen[2] = {strlen(CT), dlen};
    uint32_t usize[2] = {(uint32_t)strlen(CT), declared};
    uint32_t crc[2] = {crc32_of(CT, strlen(CT)), 0};
    unsigned method[2] = {0, 8};
    unsigned char *z = malloc(dlen + 4096), *q = z;
    assert_non_null(z);
    uint32_t off[2];
    for (int i = 0; i < 2; i++) {
        off[i] = (uint32_t)(q - z);
        put32(&q, 0x04034b50); put16(&q, 20); put16(&q, 0); put16(&q, method[i]);
        put16(&q, 0); put16(&q, 0x21); put32(&q, crc[i]); put32(&q, (uint32_t)clen[i]);
        put32(&q, usize[i]); put16(&q, (unsigned)strlen(names[i])); put16(&q, 0);
        memcpy(q, names[i], strlen(names[i])); q += strlen(names[i]);
        memcpy(q, data[i], clen[i]); q += clen[i];
    }
    uint32_t cd = (uint32_t)(q - z);
    for (int i = 0; i < 2; i++) {
        put32(&q, 0x02014b50); put16(&q, 20); put16(&q, 20); put16(&q, 0); put16(&q, method[i]);
        put16(&q, 0); put16(&q, 0x21); put32(&q, crc[i]); put32(&q, (uint32_t)clen[i]);
        put32(&q, usize[i]); put16(&q, (unsigned)strlen(names[i])); put16(&q, 0); put16(&q, 0);
        put16(&q, 0); put16(&q, 0); put32(&q, 0); put32(&q, off[i]);
        memcpy(q, names[i], strlen(names[i])); q += strlen(names[i]);
    }
    uint32_t cdsize = (uint32_t)(q - z) - cd;
    put32(&q, 0x06054b50); put16(&q, 0); put16(&q, 0); put16(&q, 2); put16(&q, 2);
    put32(&q, cdsize); put32(&q, cd); put16(&q, 0);
    free(def);
    *out_len = (size_t)(q - z);
    return (char *)z;
}

static void test_zip_bomb(void **state)
{
    (void)state;
    char err[ZK_ERRLEN] = "";
    idx_parsed *d = NULL;
    size_t len;
    time_t t0 = time(NULL);

    /* honest header: 1 GiB of zeros in ~6.5 MB, refused from its size */
    size_t pairs = ((size_t)1 << 30) / 258;
    char *z = bomb_zip(pairs, (uint32_t)(1 + 258 * pairs), &len);
    assert_string_equal(idx_detect_format("a.docx", z, len), "docx");
    assert_int_equal(idx_parse("a.docx", z, len, &d, err), ZK_TOOBIG);
    assert_null(d);
    assert_non_null(strstr(err, "word/document.xml"));
    free(z);

    /* lying header (claims 100 bytes): stopped by counting inflated bytes */
    pairs = (IDX_ZIP_MAX_ENTRY + ((size_t)1 << 20)) / 258;
    z = bomb_zip(pairs, 100, &len);
    zk_rc rc = idx_parse("b.docx", z, len, &d, err);
    assert_true(rc == ZK_TOOBIG || rc == ZK_PARSE);
    assert_null(d);
    free(z);
    assert_true(time(NULL) - t0 < 30);
}

static void test_billion_laughs(void **state)
{
    (void)state;
    const char *doc =
        "<?xml version=\"1.0\"?><!DOCTYPE w:document [<!ENTITY lol \"lol\">"
        "<!ENTITY l1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
        "<!ENTITY l2 \"&l1;&l1;&l1;&l1;&l1;&l1;&l1;&l1;&l1;&l1;\"><!ENTITY l3 \"&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;\">"
        "<!ENTITY l4 \"&l3;&l3;&l3;&l3;&l3;&l3;&l3;&l3;&l3;&l3;\"><!ENTITY l5 \"&l4;&l4;&l4;&l4;&l4;&l4;&l4;&l4;&l4;&l4;\">"
        "<!ENTITY l6 \"&l5;&l5;&l5;&l5;&l5;&l5;&l5;&l5;&l5;&l5;\"><!ENTITY l7 \"&l6;&l6;&l6;&l6;&l6;&l6;&l6;&l6;&l6;&l6;\">"
        "<!ENTITY l8 \"&l7;&l7;&l7;&l7;&l7;&l7;&l7;&l7;&l7;&l7;\"><!ENTITY l9 \"&l8;&l8;&l8;&l8;&l8;&l8;&l8;&l8;&l8;&l8;\">"
        "<!ENTITY ext SYSTEM \"file:///etc/passwd\">]>"
        "<w:document " W_NS "><w:body><w:p><w:r><w:t>safe &l9; text &ext;</w:t></w:r></w:p></w:body></w:document>";
    const char *parts[] = {"[Content_Types].xml", CT, "word/document.xml", doc};
    size_t len;
    char *z = make_zip(parts, 2, &len);
    idx_parsed *d = NULL;
    char err[ZK_ERRLEN] = "";
    time_t t0 = time(NULL);
    zk_rc rc = idx_parse("laughs.docx", z, len, &d, err);
    assert_true(time(NULL) - t0 < 5);
    assert_true(rc == ZK_OK || rc == ZK_PARSE);
    if (rc == ZK_OK) {
        size_t total = 0;
        for (size_t i = 0; i < d->nblocks; i++) {
            total += d->blocks[i].len;
            assert_null(strstr(d->blocks[i].text, "root:"));
        }
        assert_true(total < 100);
    }
    idx_parsed_free(d);
    free(z);
}

/* Entry names are only looked up, never used as paths: "../evil" is inert. */
static void test_traversal_names(void **state)
{
    (void)state;
    const char *parts[] = {"[Content_Types].xml", CT, "../zhiku_evil_entry", "pwned",
                           "/tmp/zhiku_evil_abs", "pwned", "word/document.xml", DOCX_BODY};
    size_t len;
    char *z = make_zip(parts, 4, &len);
    idx_parsed *d = parse_ok("t.docx", z, len);
    assert_int_equal(access("../zhiku_evil_entry", F_OK), -1);
    assert_int_equal(access("/tmp/zhiku_evil_abs", F_OK), -1);
    idx_parsed_free(d);
    free(z);

    char *r = idx__zip_resolve("OEBPS/text/a.xhtml", "../../../../etc/passwd");
    assert_string_equal(r, "etc/passwd");
    zk_free(r);
    r = idx__zip_resolve("ppt/slides/slide1.xml", "../notesSlides/n%201.xml#x");
    assert_string_equal(r, "ppt/notesSlides/n 1.xml");
    zk_free(r);
}

static void test_truncated(void **state)
{
    (void)state;
    const char *parts[] = {"[Content_Types].xml", CT, "word/document.xml", DOCX_BODY};
    size_t len;
    char *z = make_zip(parts, 2, &len);
    for (size_t cut = 10; cut < len; cut += len / 7) {
        idx_parsed *d = NULL;
        char err[ZK_ERRLEN] = "";
        assert_int_equal(idx_parse("t.docx", z, cut, &d, err), ZK_PARSE);
        assert_null(d);
        assert_non_null(strstr(err, "ZIP"));
        assert_null(idx_detect_format("t.docx", z, cut));
    }
    free(z);
}

static void test_legacy_unsupported(void **state)
{
    (void)state;
    char err[ZK_ERRLEN] = "";
    idx_parsed *d = NULL;
    char ole[512] = "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";
    assert_int_equal(idx_parse("memo.doc", ole, sizeof ole, &d, err), ZK_UNSUPPORTED);
    assert_null(d);
    assert_non_null(strstr(err, "legacy Word .doc (convert to .docx)"));
    assert_null(idx_detect_format("memo.doc", ole, sizeof ole));
    assert_int_equal(idx_parse("sheet.xls", ole, sizeof ole, &d, err), ZK_UNSUPPORTED);
    assert_non_null(strstr(err, ".xlsx"));

    const char *rtf = "{\\rtf1\\ansi\\deff0 {\\fonttbl {\\f0 Times;}}\\f0 Hello}";
    assert_int_equal(idx_parse("letter.txt", rtf, strlen(rtf), &d, err), ZK_UNSUPPORTED);
    assert_null(d);
    assert_non_null(strstr(err, "RTF"));
    assert_null(idx_detect_format("letter.rtf", rtf, strlen(rtf)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docx),
        cmocka_unit_test(test_detect_by_content),
        cmocka_unit_test(test_xlsx),
        cmocka_unit_test(test_pptx),
        cmocka_unit_test(test_odt),
        cmocka_unit_test(test_epub),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_zip_bomb),
        cmocka_unit_test(test_billion_laughs),
        cmocka_unit_test(test_traversal_names),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_legacy_unsupported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
