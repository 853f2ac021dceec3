/* pdf.c — PDF text-layer extraction with MuPDF (see parse.h).
 *
 * Called by idx_parse() with the raw bytes of a "%PDF-" file, inside the
 * sandboxed parser child. One MuPDF context per parse; every MuPDF call sits
 * in fz_try/fz_catch. Each page becomes one block (page number kept), split
 * further where a larger-font heading starts; two-column pages are read left
 * column then right. Pages without a text layer go to the OCR service
 * (indexer/ocr.h) when one is configured. Cost is linear in the page count. */
#include "indexer/parse/parse.h"

#include <mupdf/fitz.h>
#include <mupdf/pdf.h>
#include <string.h>

#include "buf.h"
#include "indexer/ocr.h"
#include "utf8.h"

#define PDF_MAX_PAGES 10000
#define PDF_MAX_TEXT ((size_t)256 << 20)   /* extracted UTF-8 per document */
#define PDF_STORE ((size_t)64 << 20)       /* MuPDF resource cache */
#define SCAN_MAX_CHARS 50        /* a page with fewer visible chars ... */
#define SCAN_MIN_IMAGE 0.25f     /* ... and an image covering this much of it is scanned */
#define OCR_DPI 200.0f
#define OCR_MAX_SIDE 7000.0f     /* pixels, caps the rendering of huge pages */
#define HEADING_RATIO 1.2f       /* heading font size / body font size */
#define HEADING_MAX_CHARS 150
#define HEADING_MAX_LINES 3
#define HEADING_DEPTH 6
#define SIZE_BINS 256            /* font-size histogram, 0.5 pt bins */

/* One stext text block of a page: its text lives in pdf_state.page_text. */
typedef struct {
    fz_rect bbox;
    size_t off, len;        /* in page_text */
    size_t first_line_len;  /* bytes of its first line */
    float size;             /* mean font size */
    int nchars, nlines;
} para;

typedef struct {
    fz_context *ctx;
    fz_document *fdoc;
    idx_parsed *doc;
    char *err;
    zk_buf page_text;                 /* texts of the current page's paras */
    para *paras;
    size_t nparas, cap_paras;
    zk_buf block;                     /* text of the block being built */
    char *heads[HEADING_DEPTH];       /* heading stack */
    float head_size[HEADING_DEPTH];
    int depth;
    zk_buf path;                      /* heads joined with " > " */
    size_t size_hist[SIZE_BINS];      /* visible chars per font size */
    size_t total_text;
    char *first_line;                 /* first line of page 1, title fallback */
    int scanned, ocred;               /* page counts */
} pdf_state;

/* ---- MuPDF plumbing ---------------------------------------------------- */

static void on_mupdf_message(void *user, const char *message)
{
    (void)user;
    ZK_LOG(ZK_LOG_DEBUG, "mupdf: %s", message);
}

static zk_rc open_doc(pdf_state *st, const char *data, size_t len)
{
    fz_context *ctx = st->ctx;
    fz_stream *volatile stm = NULL;
    pdf_document *volatile pdoc = NULL;
    zk_rc rc = ZK_OK;
    fz_try(ctx) {
        stm = fz_open_memory(ctx, (const unsigned char *)data, len);
        pdoc = pdf_open_document_with_stream(ctx, stm);
    }
    fz_always(ctx) fz_drop_stream(ctx, stm);
    fz_catch(ctx) rc = zk_fail(st->err, ZK_PARSE, "cannot open PDF: %s", fz_caught_message(ctx));
    if (rc == ZK_OK) st->fdoc = &pdoc->super;
    return rc;
}

static zk_rc load_page(pdf_state *st, int pno, fz_page **out_page, fz_stext_page **out_text)
{
    fz_context *ctx = st->ctx;
    fz_page *volatile page = NULL;
    fz_stext_page *volatile text = NULL;
    fz_stext_options opts = {.flags = FZ_STEXT_PRESERVE_IMAGES | FZ_STEXT_MEDIABOX_CLIP, .scale = 1};
    zk_rc rc = ZK_OK;
    fz_try(ctx) {
        page = fz_load_page(ctx, st->fdoc, pno);
        text = fz_new_stext_page_from_page(ctx, page, &opts);
    }
    fz_catch(ctx) {
        fz_drop_page(ctx, page);
        page = NULL;
        rc = zk_fail(st->err, ZK_PARSE, "page %d: %s", pno + 1, fz_caught_message(ctx));
    }
    *out_page = page;
    *out_text = text;
    return rc;
}

/* Render the page as a grayscale PNG at OCR_DPI and send it to OCR. */
static zk_rc ocr_page(pdf_state *st, fz_page *page, int pno, char **out_text, size_t *out_len)
{
    fz_context *ctx = st->ctx;
    fz_pixmap *volatile pix = NULL;
    fz_buffer *volatile png = NULL;
    zk_rc rc = ZK_OK;
    fz_try(ctx) {
        fz_rect b = fz_bound_page(ctx, page);
        float zoom = OCR_DPI / 72.0f, w = b.x1 - b.x0, h = b.y1 - b.y0;
        if (w * zoom > OCR_MAX_SIDE) zoom = OCR_MAX_SIDE / w;
        if (h * zoom > OCR_MAX_SIDE) zoom = OCR_MAX_SIDE / h;
        pix = fz_new_pixmap_from_page(ctx, page, fz_scale(zoom, zoom), fz_device_gray(ctx), 0);
        png = fz_new_buffer_from_pixmap_as_png(ctx, pix, fz_default_color_params);
    }
    fz_always(ctx) fz_drop_pixmap(ctx, pix);
    fz_catch(ctx) return zk_fail(st->err, ZK_PARSE, "page %d: cannot render for OCR: %s", pno + 1,
                                 fz_caught_message(ctx));
    unsigned char *bytes = NULL;
    size_t n = fz_buffer_storage(ctx, png, &bytes);
    rc = idx_ocr_page(bytes, n, pno + 1, out_text, out_len, st->err);
    fz_drop_buffer(ctx, png);
    return rc;
}

/* ---- text of one page --------------------------------------------------- */

static int is_hyphen(uint32_t cp) { return cp == '-' || cp == 0x00AD || cp == 0x2010; }
static int is_latin_letter(uint32_t cp) { return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z'; }

/* CJK text and its punctuation: lines join without a space. */
static int cjkish(uint32_t cp)
{
    return utf8_is_cjk(cp) || (cp >= 0x3000 && cp <= 0x303F) || (cp >= 0xFF00 && cp <= 0xFFEF);
}

/* Old TeX PDFs draw accents as separate spacing glyphs over a letter
 * ("prote´ge´"); map them to combining marks and compose with the letter. */
static uint32_t accent_mark(uint32_t cp)
{
    switch (cp) {
    case 0x00B4: case 0x02CA: return 0x0301;
    case '`': case 0x02CB: return 0x0300;
    case 0x00A8: return 0x0308;
    case '^': case 0x02C6: return 0x0302;
    case '~': case 0x02DC: return 0x0303;
    case 0x00B8: return 0x0327;
    case 0x02C7: return 0x030C;
    case 0x02DA: return 0x030A;
    default: return 0;
    }
}

static const struct { uint16_t base, mark, composed; } compositions[] = {
    {0x0041, 0x0300, 0x00C0}, {0x0041, 0x0301, 0x00C1}, {0x0041, 0x0302, 0x00C2},
    {0x0041, 0x0303, 0x00C3}, {0x0041, 0x0308, 0x00C4}, {0x0041, 0x030A, 0x00C5},
    {0x0041, 0x030C, 0x01CD}, {0x0043, 0x0301, 0x0106}, {0x0043, 0x0302, 0x0108},
    {0x0043, 0x030C, 0x010C}, {0x0043, 0x0327, 0x00C7}, {0x0044, 0x030C, 0x010E},
    {0x0044, 0x0327, 0x1E10}, {0x0045, 0x0300, 0x00C8}, {0x0045, 0x0301, 0x00C9},
    {0x0045, 0x0302, 0x00CA}, {0x0045, 0x0303, 0x1EBC}, {0x0045, 0x0308, 0x00CB},
    {0x0045, 0x030C, 0x011A}, {0x0045, 0x0327, 0x0228}, {0x0047, 0x0301, 0x01F4},
    {0x0047, 0x0302, 0x011C}, {0x0047, 0x030C, 0x01E6}, {0x0047, 0x0327, 0x0122},
    {0x0048, 0x0302, 0x0124}, {0x0048, 0x0308, 0x1E26}, {0x0048, 0x030C, 0x021E},
    {0x0048, 0x0327, 0x1E28}, {0x0049, 0x0300, 0x00CC}, {0x0049, 0x0301, 0x00CD},
    {0x0049, 0x0302, 0x00CE}, {0x0049, 0x0303, 0x0128}, {0x0049, 0x0308, 0x00CF},
    {0x0049, 0x030C, 0x01CF}, {0x004A, 0x0302, 0x0134}, {0x004B, 0x0301, 0x1E30},
    {0x004B, 0x030C, 0x01E8}, {0x004B, 0x0327, 0x0136}, {0x004C, 0x0301, 0x0139},
    {0x004C, 0x030C, 0x013D}, {0x004C, 0x0327, 0x013B}, {0x004D, 0x0301, 0x1E3E},
    {0x004E, 0x0300, 0x01F8}, {0x004E, 0x0301, 0x0143}, {0x004E, 0x0303, 0x00D1},
    {0x004E, 0x030C, 0x0147}, {0x004E, 0x0327, 0x0145}, {0x004F, 0x0300, 0x00D2},
    {0x004F, 0x0301, 0x00D3}, {0x004F, 0x0302, 0x00D4}, {0x004F, 0x0303, 0x00D5},
    {0x004F, 0x0308, 0x00D6}, {0x004F, 0x030C, 0x01D1}, {0x0050, 0x0301, 0x1E54},
    {0x0052, 0x0301, 0x0154}, {0x0052, 0x030C, 0x0158}, {0x0052, 0x0327, 0x0156},
    {0x0053, 0x0301, 0x015A}, {0x0053, 0x0302, 0x015C}, {0x0053, 0x030C, 0x0160},
    {0x0053, 0x0327, 0x015E}, {0x0054, 0x030C, 0x0164}, {0x0054, 0x0327, 0x0162},
    {0x0055, 0x0300, 0x00D9}, {0x0055, 0x0301, 0x00DA}, {0x0055, 0x0302, 0x00DB},
    {0x0055, 0x0303, 0x0168}, {0x0055, 0x0308, 0x00DC}, {0x0055, 0x030A, 0x016E},
    {0x0055, 0x030C, 0x01D3}, {0x0056, 0x0303, 0x1E7C}, {0x0057, 0x0300, 0x1E80},
    {0x0057, 0x0301, 0x1E82}, {0x0057, 0x0302, 0x0174}, {0x0057, 0x0308, 0x1E84},
    {0x0058, 0x0308, 0x1E8C}, {0x0059, 0x0300, 0x1EF2}, {0x0059, 0x0301, 0x00DD},
    {0x0059, 0x0302, 0x0176}, {0x0059, 0x0303, 0x1EF8}, {0x0059, 0x0308, 0x0178},
    {0x005A, 0x0301, 0x0179}, {0x005A, 0x0302, 0x1E90}, {0x005A, 0x030C, 0x017D},
    {0x0061, 0x0300, 0x00E0}, {0x0061, 0x0301, 0x00E1}, {0x0061, 0x0302, 0x00E2},
    {0x0061, 0x0303, 0x00E3}, {0x0061, 0x0308, 0x00E4}, {0x0061, 0x030A, 0x00E5},
    {0x0061, 0x030C, 0x01CE}, {0x0063, 0x0301, 0x0107}, {0x0063, 0x0302, 0x0109},
    {0x0063, 0x030C, 0x010D}, {0x0063, 0x0327, 0x00E7}, {0x0064, 0x030C, 0x010F},
    {0x0064, 0x0327, 0x1E11}, {0x0065, 0x0300, 0x00E8}, {0x0065, 0x0301, 0x00E9},
    {0x0065, 0x0302, 0x00EA}, {0x0065, 0x0303, 0x1EBD}, {0x0065, 0x0308, 0x00EB},
    {0x0065, 0x030C, 0x011B}, {0x0065, 0x0327, 0x0229}, {0x0067, 0x0301, 0x01F5},
    {0x0067, 0x0302, 0x011D}, {0x0067, 0x030C, 0x01E7}, {0x0067, 0x0327, 0x0123},
    {0x0068, 0x0302, 0x0125}, {0x0068, 0x0308, 0x1E27}, {0x0068, 0x030C, 0x021F},
    {0x0068, 0x0327, 0x1E29}, {0x0069, 0x0300, 0x00EC}, {0x0069, 0x0301, 0x00ED},
    {0x0069, 0x0302, 0x00EE}, {0x0069, 0x0303, 0x0129}, {0x0069, 0x0308, 0x00EF},
    {0x0069, 0x030C, 0x01D0}, {0x006A, 0x0302, 0x0135}, {0x006A, 0x030C, 0x01F0},
    {0x006B, 0x0301, 0x1E31}, {0x006B, 0x030C, 0x01E9}, {0x006B, 0x0327, 0x0137},
    {0x006C, 0x0301, 0x013A}, {0x006C, 0x030C, 0x013E}, {0x006C, 0x0327, 0x013C},
    {0x006D, 0x0301, 0x1E3F}, {0x006E, 0x0300, 0x01F9}, {0x006E, 0x0301, 0x0144},
    {0x006E, 0x0303, 0x00F1}, {0x006E, 0x030C, 0x0148}, {0x006E, 0x0327, 0x0146},
    {0x006F, 0x0300, 0x00F2}, {0x006F, 0x0301, 0x00F3}, {0x006F, 0x0302, 0x00F4},
    {0x006F, 0x0303, 0x00F5}, {0x006F, 0x0308, 0x00F6}, {0x006F, 0x030C, 0x01D2},
    {0x0070, 0x0301, 0x1E55}, {0x0072, 0x0301, 0x0155}, {0x0072, 0x030C, 0x0159},
    {0x0072, 0x0327, 0x0157}, {0x0073, 0x0301, 0x015B}, {0x0073, 0x0302, 0x015D},
    {0x0073, 0x030C, 0x0161}, {0x0073, 0x0327, 0x015F}, {0x0074, 0x0308, 0x1E97},
    {0x0074, 0x030C, 0x0165}, {0x0074, 0x0327, 0x0163}, {0x0075, 0x0300, 0x00F9},
    {0x0075, 0x0301, 0x00FA}, {0x0075, 0x0302, 0x00FB}, {0x0075, 0x0303, 0x0169},
    {0x0075, 0x0308, 0x00FC}, {0x0075, 0x030A, 0x016F}, {0x0075, 0x030C, 0x01D4},
    {0x0076, 0x0303, 0x1E7D}, {0x0077, 0x0300, 0x1E81}, {0x0077, 0x0301, 0x1E83},
    {0x0077, 0x0302, 0x0175}, {0x0077, 0x0308, 0x1E85}, {0x0077, 0x030A, 0x1E98},
    {0x0078, 0x0308, 0x1E8D}, {0x0079, 0x0300, 0x1EF3}, {0x0079, 0x0301, 0x00FD},
    {0x0079, 0x0302, 0x0177}, {0x0079, 0x0303, 0x1EF9}, {0x0079, 0x0308, 0x00FF},
    {0x0079, 0x030A, 0x1E99}, {0x007A, 0x0301, 0x017A}, {0x007A, 0x0302, 0x1E91},
    {0x007A, 0x030C, 0x017E}, {0x0131, 0x0300, 0x00EC}, {0x0131, 0x0301, 0x00ED},
    {0x0131, 0x0302, 0x00EE}, {0x0131, 0x0303, 0x0129}, {0x0131, 0x0308, 0x00EF},
    {0x0131, 0x030C, 0x01D0},
};

static uint32_t compose(uint32_t base, uint32_t mark)
{
    for (size_t i = 0; i < ZK_ARRAY_LEN(compositions); i++)
        if (compositions[i].base == base && compositions[i].mark == mark) return compositions[i].composed;
    return 0;
}

/* The accent glyph a sits horizontally over the letter glyph b. */
static int over(fz_quad a, fz_quad b)
{
    float cx = (a.ll.x + a.lr.x) / 2;
    return cx >= ZK_MIN(b.ll.x, b.ul.x) - 1 && cx <= ZK_MAX(b.lr.x, b.ur.x) + 1;
}

static zk_rc put_cp(zk_buf *b, uint32_t cp)
{
    char enc[4];
    return buf_append(b, enc, utf8_encode(cp, enc));
}

/* Append one text block as a para: lines joined with a space (nothing
 * between CJK characters), line-end hyphens of English words removed. */
static zk_rc add_para(pdf_state *st, fz_stext_block *blk, size_t *page_visible)
{
    zk_buf *b = &st->page_text;
    para p = {.bbox = blk->bbox, .off = b->len};
    uint32_t last = 0, before_last = 0;   /* last two visible code points */
    size_t last_at = 0;                   /* byte offset of `last` */
    double size_sum = 0;
    zk_rc rc = ZK_OK;

    for (fz_stext_line *line = blk->u.t.first_line; line; line = line->next) {
        int first_in_line = 1, pending_space = 0, horizontal = line->dir.x > 0.9f;
        uint32_t accent = 0;                  /* spacing accent waiting for its letter */
        const fz_stext_char *prev = NULL;     /* previous visible char of this line */
        for (fz_stext_char *ch = line->first_char; ch; ch = ch->next) {
            uint32_t cp = ch->c < 0 ? UTF8_REPLACEMENT : (uint32_t)ch->c, mark, c;
            if (cp == UTF8_REPLACEMENT || cp == 0 || (cp < 0x20 && cp != '\t')) continue;
            if (utf8_is_space(cp) || cp == '\t') { pending_space = !first_in_line; continue; }
            if ((mark = accent_mark(cp)) != 0) {
                if (prev && !pending_space && over(ch->quad, prev->quad) && (c = compose(last, mark))) {
                    b->len = last_at;         /* accent after its letter */
                    if ((rc = put_cp(b, c)) != ZK_OK) return rc;
                    last = c;
                    continue;
                }
                if (ch->next && ch->next->c > 0 && over(ch->quad, ch->next->quad) &&
                    compose((uint32_t)ch->next->c, mark)) {
                    accent = mark;            /* accent before its letter */
                    continue;
                }
            }
            if (accent && (c = compose(cp, accent))) cp = c;
            accent = 0;
            /* a gap wider than a thin space is a word break MuPDF missed */
            if (prev && horizontal && ch->quad.ll.x - prev->quad.lr.x > 0.1f * ch->size) pending_space = 1;
            prev = ch;
            if (first_in_line && p.nchars > 0) {         /* join with the previous line */
                if (is_hyphen(last) && is_latin_letter(before_last) && cp >= 'a' && cp <= 'z') {
                    b->len = last_at;                    /* drop the hyphen */
                } else if (!(cjkish(last) && cjkish(cp))) {
                    if ((rc = buf_putc(b, ' ')) != ZK_OK) return rc;
                }
            } else if (pending_space && !(utf8_is_cjk(last) && utf8_is_cjk(cp))) {
                if ((rc = buf_putc(b, ' ')) != ZK_OK) return rc;
            }
            if (first_in_line) p.nlines++;
            first_in_line = pending_space = 0;
            last_at = b->len;
            if ((rc = put_cp(b, cp)) != ZK_OK) return rc;
            before_last = last;
            last = cp;
            p.nchars++;
            size_sum += ch->size;
            int bin = (int)(ch->size * 2.0f + 0.5f);
            if (bin >= 0 && bin < SIZE_BINS) st->size_hist[bin]++;
        }
        if (p.nlines == 1 && p.first_line_len == 0 && p.nchars > 0) p.first_line_len = b->len - p.off;
    }
    if (p.nchars == 0) { b->len = p.off; return ZK_OK; }
    p.len = b->len - p.off;
    if (p.first_line_len == 0 || p.first_line_len > p.len) p.first_line_len = p.len;
    p.size = (float)(size_sum / p.nchars);
    *page_visible += (size_t)p.nchars;
    if (st->nparas == st->cap_paras) {
        size_t ncap = st->cap_paras ? st->cap_paras * 2 : 32;
        para *np = zk_realloc(st->paras, ncap * sizeof *np);
        if (!np) return ZK_NOMEM;
        st->paras = np;
        st->cap_paras = ncap;
    }
    st->paras[st->nparas++] = p;
    return ZK_OK;
}

static int cmp_y(const void *a, const void *b)
{
    const para *x = *(para *const *)a, *y = *(para *const *)b;
    if (x->bbox.y0 != y->bbox.y0) return x->bbox.y0 < y->bbox.y0 ? -1 : 1;
    return x < y ? -1 : x > y;   /* stable: content-stream order */
}

/* Reading order. MuPDF gives blocks in content-stream order; when the page
 * has two columns (narrow blocks left and right of an empty vertical gutter
 * near the middle, overlapping vertically) emit, between full-width blocks,
 * the left column top to bottom, then the right one. */
static void reading_order(para *p, size_t n, para **out)
{
    for (size_t i = 0; i < n; i++) out[i] = &p[i];
    if (n < 2) return;
    float minx = p[0].bbox.x0, maxx = p[0].bbox.x1;
    for (size_t i = 1; i < n; i++) {
        minx = ZK_MIN(minx, p[i].bbox.x0);
        maxx = ZK_MAX(maxx, p[i].bbox.x1);
    }
    float span = maxx - minx;
    if (span < 100) return;

    /* widest x run in the middle 60% not covered by any narrow block */
    float best_lo = 0, best_len = 0, run_lo = -1;
    for (float x = minx + 0.2f * span; x <= minx + 0.8f * span + 0.5f; x += 1.0f) {
        int covered = x > minx + 0.8f * span;
        for (size_t i = 0; i < n && !covered; i++) {
            float w = p[i].bbox.x1 - p[i].bbox.x0;
            covered = w < 0.6f * span && p[i].bbox.x0 < x && p[i].bbox.x1 > x;
        }
        if (!covered && run_lo < 0) run_lo = x;
        if (covered && run_lo >= 0) {
            if (x - run_lo > best_len) { best_len = x - run_lo; best_lo = run_lo; }
            run_lo = -1;
        }
    }
    if (best_len < 6) return;
    float g = best_lo + best_len / 2;

    size_t lchars = 0, rchars = 0, total = 0;
    float ly0 = 1e9f, ly1 = -1e9f, ry0 = 1e9f, ry1 = -1e9f;
    for (size_t i = 0; i < n; i++) {
        total += (size_t)p[i].nchars;
        if (p[i].bbox.x1 <= g) {
            lchars += (size_t)p[i].nchars;
            ly0 = ZK_MIN(ly0, p[i].bbox.y0);
            ly1 = ZK_MAX(ly1, p[i].bbox.y1);
        } else if (p[i].bbox.x0 >= g) {
            rchars += (size_t)p[i].nchars;
            ry0 = ZK_MIN(ry0, p[i].bbox.y0);
            ry1 = ZK_MAX(ry1, p[i].bbox.y1);
        }
    }
    if (lchars * 10 < total || rchars * 10 < total || ly1 <= ry0 || ry1 <= ly0) return;

    qsort(out, n, sizeof *out, cmp_y);
    /* out is now by y; regroup runs between spanning blocks */
    para **tmp = zk_malloc(n * sizeof *tmp);
    if (!tmp) return;   /* keep y order: still better than nothing */
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        int spanning = i < n && out[i]->bbox.x0 < g && out[i]->bbox.x1 > g;
        if (i < n && !spanning) continue;
        for (size_t j = start; j < i; j++) if (out[j]->bbox.x1 <= g) tmp[k++] = out[j];
        for (size_t j = start; j < i; j++) if (out[j]->bbox.x1 > g) tmp[k++] = out[j];
        if (i < n) tmp[k++] = out[i];
        start = i + 1;
    }
    memcpy(out, tmp, n * sizeof *out);
    zk_free(tmp);
}

/* ---- blocks and headings ----------------------------------------------- */

static float body_size(const pdf_state *st)
{
    size_t best = 0;
    int bin = 0;
    for (int i = 1; i < SIZE_BINS; i++)
        if (st->size_hist[i] > best) { best = st->size_hist[i]; bin = i; }
    return bin / 2.0f;
}

static zk_rc flush_block(pdf_state *st, int page)
{
    zk_rc rc = ZK_OK;
    if (st->block.len) {
        st->total_text += st->block.len;
        if (st->total_text > PDF_MAX_TEXT)
            return zk_fail(st->err, ZK_TOOBIG, "PDF text exceeds %zu bytes", PDF_MAX_TEXT);
        rc = idx__add_block(st->doc, st->block.data, st->block.len,
                            st->path.len ? buf_cstr(&st->path) : NULL, page);
        if (rc != ZK_OK) zk_fail(st->err, rc, "cannot add block: %s", zk_strerror(rc));
    }
    buf_reset(&st->block);
    return rc;
}

static zk_rc push_heading(pdf_state *st, const char *text, size_t len, float size)
{
    while (st->depth > 0 && st->head_size[st->depth - 1] <= size + 0.25f) zk_free(st->heads[--st->depth]);
    if (st->depth == HEADING_DEPTH) zk_free(st->heads[--st->depth]);
    if (!(st->heads[st->depth] = zk_strndup(text, len))) return ZK_NOMEM;
    st->head_size[st->depth++] = size;
    buf_reset(&st->path);
    for (int i = 0; i < st->depth; i++) {
        zk_rc rc = buf_puts(&st->path, i ? " > " : "");
        if (rc == ZK_OK) rc = buf_puts(&st->path, st->heads[i]);
        if (rc != ZK_OK) return rc;
    }
    return ZK_OK;
}

static int is_heading(const para *p, float body)
{
    return body > 0 && p->size >= body * HEADING_RATIO && p->nchars <= HEADING_MAX_CHARS &&
           p->nlines <= HEADING_MAX_LINES;
}

static zk_rc append_text(pdf_state *st, const char *text, size_t len)
{
    zk_rc rc = ZK_OK;
    if (st->block.len) rc = buf_append(&st->block, "\n\n", 2);
    if (rc == ZK_OK) rc = buf_append(&st->block, text, len);
    if (rc != ZK_OK) zk_fail(st->err, rc, "PDF page text: %s", zk_strerror(rc));
    return rc;
}

/* Emit the current page's paras in reading order. */
static zk_rc emit_page(pdf_state *st, int page)
{
    zk_rc rc = ZK_OK;
    para **order = zk_malloc((st->nparas ? st->nparas : 1) * sizeof *order);
    if (!order) return zk_fail(st->err, ZK_NOMEM, "out of memory");
    reading_order(st->paras, st->nparas, order);
    float body = body_size(st);
    for (size_t i = 0; i < st->nparas; i++) {
        const para *p = order[i];
        const char *text = st->page_text.data + p->off;
        if (page == 1 && !st->first_line && !(st->first_line = zk_strndup(text, p->first_line_len))) {
            rc = zk_fail(st->err, ZK_NOMEM, "out of memory");
            goto out;
        }
        if (is_heading(p, body)) {
            if ((rc = flush_block(st, page)) != ZK_OK) goto out;
            if ((rc = push_heading(st, text, p->len, p->size)) != ZK_OK) {
                rc = zk_fail(st->err, rc, "heading: %s", zk_strerror(rc));
                goto out;
            }
        }
        if ((rc = append_text(st, text, p->len)) != ZK_OK) goto out;
    }
    rc = flush_block(st, page);
out:
    zk_free(order);
    return rc;
}

/* One page: extract, or OCR when it has no text layer. */
static zk_rc do_page(pdf_state *st, int pno)
{
    fz_page *page = NULL;
    fz_stext_page *text = NULL;
    char *ocr_text = NULL;
    size_t ocr_len = 0, visible = 0;
    float image_area = 0;
    zk_rc rc = load_page(st, pno, &page, &text);
    if (rc != ZK_OK) goto out;

    buf_reset(&st->page_text);
    st->nparas = 0;
    for (fz_stext_block *blk = text->first_block; blk; blk = blk->next) {
        if (blk->type == FZ_STEXT_BLOCK_IMAGE) {
            fz_rect r = fz_intersect_rect(blk->bbox, text->mediabox);
            if (!fz_is_empty_rect(r)) image_area += (r.x1 - r.x0) * (r.y1 - r.y0);
        } else if (blk->type == FZ_STEXT_BLOCK_TEXT && (rc = add_para(st, blk, &visible)) != ZK_OK) {
            rc = zk_fail(st->err, rc, "page %d text: %s", pno + 1, zk_strerror(rc));
            goto out;
        }
    }
    float page_area = (text->mediabox.x1 - text->mediabox.x0) * (text->mediabox.y1 - text->mediabox.y0);
    if (visible < SCAN_MAX_CHARS && page_area > 0 && image_area >= SCAN_MIN_IMAGE * page_area) {
        st->scanned++;
        if (!idx_ocr_enabled()) {
            ZK_LOG(ZK_LOG_INFO, "PDF page %d has no text layer and OCR is not configured", pno + 1);
        } else {
            if ((rc = ocr_page(st, page, pno, &ocr_text, &ocr_len)) != ZK_OK) goto out;
            st->ocred++;
            if ((rc = append_text(st, ocr_text, ocr_len)) != ZK_OK) goto out;
            rc = flush_block(st, pno + 1);
            goto out;
        }
    }
    rc = emit_page(st, pno + 1);
out:
    zk_free(ocr_text);
    fz_drop_stext_page(st->ctx, text);
    fz_drop_page(st->ctx, page);
    return rc;
}

/* ---- entry point -------------------------------------------------------- */

static zk_rc count_pages(pdf_state *st, int *out_n)
{
    fz_context *ctx = st->ctx;
    volatile int locked = 0, n = 0;
    fz_try(ctx) {
        locked = fz_needs_password(ctx, st->fdoc);
        if (!locked) n = fz_count_pages(ctx, st->fdoc);
    }
    fz_catch(ctx) return zk_fail(st->err, ZK_PARSE, "cannot read PDF: %s", fz_caught_message(ctx));
    if (locked) return zk_fail(st->err, ZK_UNSUPPORTED, "encrypted PDF (password required)");
    *out_n = n;
    return ZK_OK;
}

static char *meta_title(pdf_state *st)
{
    char buf[1024] = "";
    fz_context *ctx = st->ctx;
    volatile int n = -1;
    fz_try(ctx) n = fz_lookup_metadata(ctx, st->fdoc, FZ_META_INFO_TITLE, buf, (int)sizeof buf);
    fz_catch(ctx) n = -1;
    if (n <= 0 || !buf[0]) return NULL;
    const char *t = buf;
    if (!strncmp(t, "Microsoft Word - ", 17)) t += 17;
    while (*t == ' ' || *t == '\t') t++;
    return *t ? zk_strdup(t) : NULL;
}

zk_rc idx__parse_pdf(const char *name, const char *data, size_t len, idx_parsed *doc, char *err)
{
    zk_rc rc = ZK_OK;
    pdf_state st = {.doc = doc, .err = err};
    int npages = 0, failed = 0;
    char first_err[ZK_ERRLEN] = "";
    (void)name;

    doc->format = "pdf";
    buf_init(&st.page_text, 0);
    buf_init(&st.block, 0);
    buf_init(&st.path, 0);
    if (!(st.ctx = fz_new_context(NULL, NULL, PDF_STORE)))
        return zk_fail(err, ZK_NOMEM, "cannot create MuPDF context");
    fz_set_warning_callback(st.ctx, on_mupdf_message, NULL);
    fz_set_error_callback(st.ctx, on_mupdf_message, NULL);

    if ((rc = open_doc(&st, data, len)) != ZK_OK) goto out;
    if ((rc = count_pages(&st, &npages)) != ZK_OK) goto out;
    if (npages <= 0) { rc = zk_fail(err, ZK_PARSE, "PDF has no pages"); goto out; }
    if (npages > PDF_MAX_PAGES) {
        ZK_LOG(ZK_LOG_WARN, "PDF has %d pages; indexing the first %d", npages, PDF_MAX_PAGES);
        npages = PDF_MAX_PAGES;
    }
    doc->title = meta_title(&st);

    for (int pno = 0; pno < npages; pno++) {
        if ((rc = do_page(&st, pno)) == ZK_OK) continue;
        if (rc != ZK_PARSE) goto out;           /* memory, size, OCR: the document fails */
        ZK_LOG(ZK_LOG_WARN, "PDF %s", err);     /* a broken page: skip it */
        if (!failed++) snprintf(first_err, sizeof first_err, "%s", err);
        rc = ZK_OK;
    }
    if (failed == npages) { rc = zk_fail(err, ZK_PARSE, "cannot read any PDF page: %s", first_err); goto out; }
    if (doc->nblocks == 0) {
        if (st.scanned)
            rc = zk_fail(err, ZK_UNSUPPORTED, "no text layer (scanned PDF; configure [ocr] url to OCR it)");
        else
            rc = zk_fail(err, ZK_UNSUPPORTED, "no text layer (PDF has no extractable text)");
        goto out;
    }
    if (st.scanned > st.ocred)
        ZK_LOG(ZK_LOG_INFO, "PDF: %d of %d pages have no text layer and were skipped",
               st.scanned - st.ocred, npages);
    if (!doc->title && st.first_line) {
        doc->title = st.first_line;
        st.first_line = NULL;
    }
out:
    for (int i = 0; i < st.depth; i++) zk_free(st.heads[i]);
    zk_free(st.first_line);
    zk_free(st.paras);
    buf_free(&st.page_text);
    buf_free(&st.block);
    buf_free(&st.path);
    if (st.fdoc) fz_drop_document(st.ctx, st.fdoc);
    fz_drop_context(st.ctx);
    return rc;
}
