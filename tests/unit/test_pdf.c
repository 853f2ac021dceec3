/* test_pdf.c — the PDF parser (indexer/parse/pdf.c) through idx_parse():
 * page numbers per block, two-column reading order, de-hyphenation, titles
 * from the Info dictionary or the first line, truncated and garbage files,
 * an encrypted PDF (made with MuPDF) and a scanned page without a text layer.
 * PDFs are written by hand in memory (base-14 Helvetica, exact xref). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <mupdf/fitz.h>
#include <mupdf/pdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "indexer/ocr.h"
#include "indexer/parse/parse.h"

/* Build a PDF: one page per content stream, Helvetica as /F1, an 8x8 gray
 * image as /Im1, and an Info dictionary with /Title when title != NULL.
 * Returns malloc'd bytes. */
static char *make_pdf(const char *const *pages, int npages, const char *title, size_t *out_len)
{
    zk_buf b;
    size_t off[64];
    int nobj = 0;
    buf_init(&b, 0);
    buf_puts(&b, "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n");
    /* 1 catalog, 2 pages, 3 font, 4 image, 5 info, then page/content pairs */
    int first_page = 6;
    off[++nobj] = b.len;
    buf_puts(&b, "1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n");
    off[++nobj] = b.len;
    buf_puts(&b, "2 0 obj << /Type /Pages /Kids [");
    for (int i = 0; i < npages; i++) buf_printf(&b, " %d 0 R", first_page + 2 * i);
    buf_printf(&b, " ] /Count %d >> endobj\n", npages);
    off[++nobj] = b.len;
    buf_puts(&b, "3 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >> endobj\n");
    off[++nobj] = b.len;
    buf_puts(&b, "4 0 obj << /Type /XObject /Subtype /Image /Width 8 /Height 8 /ColorSpace /DeviceGray "
                 "/BitsPerComponent 8 /Length 64 >> stream\n");
    for (int i = 0; i < 64; i++) buf_putc(&b, (char)(i * 4));
    buf_puts(&b, "\nendstream endobj\n");
    off[++nobj] = b.len;
    buf_printf(&b, "5 0 obj << /Producer (test_pdf)%s%s%s >> endobj\n", title ? " /Title (" : "",
               title ? title : "", title ? ")" : "");
    for (int i = 0; i < npages; i++) {
        off[++nobj] = b.len;
        buf_printf(&b, "%d 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       "/Resources << /Font << /F1 3 0 R >> /XObject << /Im1 4 0 R >> >> /Contents %d 0 R >> endobj\n",
                   nobj, nobj + 1);
        off[++nobj] = b.len;
        buf_printf(&b, "%d 0 obj << /Length %zu >> stream\n%s\nendstream endobj\n", nobj, strlen(pages[i]), pages[i]);
    }
    size_t xref = b.len;
    buf_printf(&b, "xref\n0 %d\n0000000000 65535 f \n", nobj + 1);
    for (int i = 1; i <= nobj; i++) buf_printf(&b, "%010zu 00000 n \n", off[i]);
    buf_printf(&b, "trailer << /Size %d /Root 1 0 R /Info 5 0 R >>\nstartxref\n%zu\n%%%%EOF\n", nobj + 1, xref);
    assert_non_null(b.data);
    *out_len = b.len;
    char *s = malloc(b.len);
    memcpy(s, b.data, b.len);
    buf_free(&b);
    return s;
}

static zk_rc parse(const char *data, size_t len, idx_parsed **out, char *err)
{
    err[0] = 0;
    zk_rc rc = idx_parse("doc.pdf", data, len, out, err);
    if (rc != ZK_OK) assert_null(*out);
    return rc;
}

static char *all_text(const idx_parsed *d)
{
    zk_buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < d->nblocks; i++) {
        buf_append(&b, d->blocks[i].text, d->blocks[i].len);
        buf_puts(&b, "\n\n");
    }
    char *s = strdup(buf_cstr(&b));
    buf_free(&b);
    return s;
}

static void test_pages_and_title(void **state)
{
    (void)state;
    const char *pages[] = {
        "BT /F1 12 Tf 72 700 Td (Alpha page one talks about aardvarks.) Tj ET",
        "BT /F1 12 Tf 72 700 Td (Beta page two talks about badgers.) Tj ET",
        "BT /F1 12 Tf 72 700 Td (Gamma page three talks about camels.) Tj ET",
    };
    size_t len;
    char *pdf = make_pdf(pages, 3, "Animal Handbook", &len), err[ZK_ERRLEN];
    idx_parsed *d = NULL;
    assert_int_equal(idx_detect_format("x.bin", pdf, len) != NULL, 1);
    assert_string_equal(idx_detect_format("x.bin", pdf, len), "pdf");
    assert_int_equal(parse(pdf, len, &d, err), ZK_OK);
    assert_string_equal(d->format, "pdf");
    assert_string_equal(d->title, "Animal Handbook");
    assert_int_equal(d->nblocks, 3);
    const char *want[] = {"aardvarks", "badgers", "camels"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(d->blocks[i].page, i + 1);
        assert_non_null(strstr(d->blocks[i].text, want[i]));
    }
    idx_parsed_free(d);
    free(pdf);
}

static void test_title_first_line(void **state)
{
    (void)state;
    const char *pages[] = {"BT /F1 12 Tf 72 700 Td (Quarterly Report) Tj 0 -14 Td (Body text follows here.) Tj ET"};
    size_t len;
    char *pdf = make_pdf(pages, 1, NULL, &len), err[ZK_ERRLEN];
    idx_parsed *d = NULL;
    assert_int_equal(parse(pdf, len, &d, err), ZK_OK);
    assert_string_equal(d->title, "Quarterly Report");
    idx_parsed_free(d);
    free(pdf);
}

/* Right column drawn first in the content stream; reading order must be
 * left column, then right; a full-width title stays on top. */
static void test_two_columns(void **state)
{
    (void)state;
    const char *pages[] = {
        "BT /F1 12 Tf 320 600 Td (Right one rhinoceros line.) Tj 0 -14 Td (Right two rhinoceros line.) Tj "
        "0 -14 Td (Right three rhinoceros.) Tj ET "
        "BT /F1 12 Tf 50 600 Td (Left one lemur line here.) Tj 0 -14 Td (Left two lemur line here.) Tj "
        "0 -14 Td (Left three lemur here.) Tj ET "
        "BT /F1 12 Tf 50 700 Td (Full width title line spanning both of the two page columns here) Tj ET",
    };
    size_t len;
    char *pdf = make_pdf(pages, 1, "Columns", &len), err[ZK_ERRLEN];
    idx_parsed *d = NULL;
    assert_int_equal(parse(pdf, len, &d, err), ZK_OK);
    char *t = all_text(d);
    const char *title = strstr(t, "Full width"), *l1 = strstr(t, "Left one"), *l3 = strstr(t, "Left three"),
               *r1 = strstr(t, "Right one"), *r3 = strstr(t, "Right three");
    assert_true(title && l1 && l3 && r1 && r3);
    assert_true(title < l1);
    assert_true(l1 < l3);
    assert_true(l3 < r1);
    assert_true(r1 < r3);
    free(t);
    idx_parsed_free(d);
    free(pdf);
}

static void test_dehyphenate(void **state)
{
    (void)state;
    const char *pages[] = {"BT /F1 12 Tf 72 700 Td (An unusually long exam-) Tj 0 -14 Td (ple of hyphenation.) Tj ET"};
    size_t len;
    char *pdf = make_pdf(pages, 1, NULL, &len), err[ZK_ERRLEN];
    idx_parsed *d = NULL;
    assert_int_equal(parse(pdf, len, &d, err), ZK_OK);
    assert_int_equal(d->nblocks, 1);
    assert_string_equal(d->blocks[0].text, "An unusually long example of hyphenation.");
    idx_parsed_free(d);
    free(pdf);
}

static void test_truncated_and_garbage(void **state)
{
    (void)state;
    const char *pages[] = {
        "BT /F1 12 Tf 72 700 Td (First page about ferrets.) Tj ET",
        "BT /F1 12 Tf 72 700 Td (Second page about geckos.) Tj ET",
    };
    size_t len;
    char *pdf = make_pdf(pages, 2, NULL, &len), err[ZK_ERRLEN];
    idx_parsed *d = NULL;
    /* every truncation point: parse fails cleanly or repairs, never crashes */
    for (size_t cut = 5; cut < len; cut += 37) {
        zk_rc rc = parse(pdf, cut, &d, err);
        assert_true(rc == ZK_OK || rc == ZK_PARSE || rc == ZK_UNSUPPORTED);
        if (rc != ZK_OK) assert_true(err[0] != 0);
        idx_parsed_free(d);
        d = NULL;
    }
    const char garbage[] = "%PDF-1.7\n\x01\x02 this is not a pdf at all \xff\xfe\x00 trailer <<>>";
    assert_int_equal(parse(garbage, sizeof garbage - 1, &d, err), ZK_PARSE);
    assert_true(err[0] != 0);
    assert_int_equal(parse("%PDF-", 5, &d, err), ZK_PARSE);
    free(pdf);
}

/* Re-save the PDF with AES-128 and a user password via MuPDF. */
static char *encrypt_pdf(const char *pdf, size_t len, size_t *out_len)
{
    fz_context *ctx = fz_new_context(NULL, NULL, FZ_STORE_DEFAULT);
    char *res = NULL;
    assert_non_null(ctx);
    fz_stream *stm = fz_open_memory(ctx, (const unsigned char *)pdf, len);
    pdf_document *doc = pdf_open_document_with_stream(ctx, stm);
    fz_buffer *buf = fz_new_buffer(ctx, len * 2);
    fz_output *out = fz_new_output_with_buffer(ctx, buf);
    pdf_write_options opts = pdf_default_write_options;
    opts.do_encrypt = PDF_ENCRYPT_AES_128;
    strcpy(opts.upwd_utf8, "secret");
    strcpy(opts.opwd_utf8, "owner");
    opts.permissions = -1;
    pdf_write_document(ctx, doc, out, &opts);
    fz_close_output(ctx, out);
    unsigned char *data;
    *out_len = fz_buffer_storage(ctx, buf, &data);
    res = malloc(*out_len);
    memcpy(res, data, *out_len);
    fz_drop_output(ctx, out);
    fz_drop_buffer(ctx, buf);
    pdf_drop_document(ctx, doc);
    fz_drop_stream(ctx, stm);
    fz_drop_context(ctx);
    return res;
}

static void test_encrypted(void **state)
{
    (void)state;
    const char *pages[] = {"BT /F1 12 Tf 72 700 Td (Top secret text about hamsters.) Tj ET"};
    size_t len, elen;
    char *pdf = make_pdf(pages, 1, NULL, &len), err[ZK_ERRLEN];
    char *enc = encrypt_pdf(pdf, len, &elen);
    idx_parsed *d = NULL;
    assert_int_equal(parse(enc, elen, &d, err), ZK_UNSUPPORTED);
    assert_string_equal(err, "encrypted PDF (password required)");
    free(enc);
    free(pdf);
}

static void test_scanned(void **state)
{
    (void)state;
    const char *image_page = "q 612 0 0 792 0 0 cm /Im1 Do Q";
    const char *pages[] = {image_page, "BT /F1 12 Tf 72 700 Td (A real text page about ibexes.) Tj ET"};
    size_t len;
    char *pdf = make_pdf(pages, 1, NULL, &len), err[ZK_ERRLEN];
    idx_parsed *d = NULL;
    idx_ocr_configure(NULL, NULL, 0);
    assert_int_equal(parse(pdf, len, &d, err), ZK_UNSUPPORTED);
    assert_int_equal(strncmp(err, "no text layer", 13), 0);
    free(pdf);

    /* a scanned page among text pages: the text pages are indexed */
    const char *mixed[] = {image_page, pages[1]};
    pdf = make_pdf(mixed, 2, NULL, &len);
    assert_int_equal(parse(pdf, len, &d, err), ZK_OK);
    assert_int_equal(d->nblocks, 1);
    assert_int_equal(d->blocks[0].page, 2);
    assert_non_null(strstr(d->blocks[0].text, "ibexes"));
    idx_parsed_free(d);

    /* OCR configured but unreachable: the document fails with the reason */
    assert_int_equal(idx_ocr_configure("http://127.0.0.1:9/ocr", "k", 2000), ZK_OK);
    assert_true(idx_ocr_enabled());
    assert_int_equal(parse(pdf, len, &d, err), ZK_IO);
    assert_non_null(strstr(err, "OCR"));
    idx_ocr_configure(NULL, NULL, 0);
    assert_false(idx_ocr_enabled());
    free(pdf);
}

static void test_empty_pdf(void **state)
{
    (void)state;
    const char *pages[] = {"% nothing drawn"};
    size_t len;
    char *pdf = make_pdf(pages, 1, NULL, &len), err[ZK_ERRLEN];
    idx_parsed *d = NULL;
    assert_int_equal(parse(pdf, len, &d, err), ZK_UNSUPPORTED);
    assert_int_equal(strncmp(err, "no text layer", 13), 0);
    free(pdf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pages_and_title),
        cmocka_unit_test(test_title_first_line),
        cmocka_unit_test(test_two_columns),
        cmocka_unit_test(test_dehyphenate),
        cmocka_unit_test(test_truncated_and_garbage),
        cmocka_unit_test(test_encrypted),
        cmocka_unit_test(test_scanned),
        cmocka_unit_test(test_empty_pdf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
