/* parse.c — format detection, the parsed-document container and dispatch
 * to the per-format parsers in this folder (see parse.h).
 *
 * Called by the ingestion pipeline once per document (inside the sandboxed
 * parser child). Detection looks at a bounded prefix of the content, so it
 * costs O(64 KiB) whatever the file size; conversion and parsing are linear. */
#include "indexer/parse/parse.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "indexer/charset.h"
#include "indexer/parse/zipread.h"
#include "utf8.h"

#define SAMPLE_LEN ((size_t)64 << 10)
#define TITLE_MAX_CP 200

/* ---- the parsed-document container ------------------------------------ */

idx_parsed *idx__parsed_new(void)
{
    idx_parsed *doc = zk_calloc(1, sizeof *doc);
    if (doc) doc->format = "txt";
    return doc;
}

void idx_parsed_free(idx_parsed *doc)
{
    if (!doc) return;
    for (size_t i = 0; i < doc->nblocks; i++) {
        zk_free(doc->blocks[i].text);
        zk_free(doc->blocks[i].heading);
    }
    zk_free(doc->blocks);
    zk_free(doc->title);
    zk_free(doc);
}

static int all_space(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        i += utf8_decode((const unsigned char *)s + i, len - i, &cp);
        if (!utf8_is_space(cp)) return 0;
    }
    return 1;
}

/* Whitespace-only text adds no block. Text is stored as valid UTF-8 without
 * NULs (invalid bytes become U+FFFD) so the chunker can trust it. */
zk_rc idx__add_block(idx_parsed *doc, const char *text, size_t len, const char *heading, int page)
{
    zk_rc rc = ZK_OK;
    zk_buf b;
    buf_init(&b, 0);
    if (!doc || (!text && len)) return ZK_INVALID;
    if (len == 0 || all_space(text, len)) return ZK_OK;
    if (doc->nblocks == doc->cap) {
        size_t ncap = doc->cap ? doc->cap * 2 : 8;
        idx_block *nb = zk_realloc(doc->blocks, ncap * sizeof *nb);
        if (!nb) return ZK_NOMEM;
        doc->blocks = nb;
        doc->cap = ncap;
    }
    if (utf8_valid(text, len) && !memchr(text, 0, len)) {
        if ((rc = buf_append(&b, text, len)) != ZK_OK) goto out;
    } else {
        size_t i = 0;
        while (i < len) {
            uint32_t cp;
            size_t n = utf8_decode((const unsigned char *)text + i, len - i, &cp);
            if (cp != 0) {
                char enc[4];
                size_t k = (n == 1 && cp == UTF8_REPLACEMENT) ? utf8_encode(cp, enc) : 0;
                rc = k ? buf_append(&b, enc, k) : buf_append(&b, text + i, n);
                if (rc != ZK_OK) goto out;
            }
            i += n;
        }
    }
    idx_block *blk = &doc->blocks[doc->nblocks];
    blk->heading = NULL;
    if (heading && *heading && !(blk->heading = zk_strdup(heading))) { rc = ZK_NOMEM; goto out; }
    blk->len = b.len;
    blk->text = buf_steal(&b, NULL);
    if (!blk->text) { zk_free(blk->heading); rc = ZK_NOMEM; goto out; }
    blk->page = page;
    doc->nblocks++;
out:
    buf_free(&b);
    return rc;
}

/* ---- format detection -------------------------------------------------- */

static const char *name_ext(const char *name)
{
    if (!name) return "";
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strrchr(base, '.');
    return dot ? dot + 1 : "";
}

static int has_prefix_ci(const char *s, size_t len, const char *pre)
{
    size_t n = strlen(pre);
    return len >= n && strncasecmp(s, pre, n) == 0;
}

static const char *skip_ws(const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n' || *s == '\f'))
        s++;
    return s;
}

/* Binary: known magic numbers, or too many NULs / control bytes. */
static int looks_binary(const unsigned char *p, size_t len)
{
    static const struct { const char *magic; size_t n; } magics[] = {
        {"%PDF-", 5}, {"PK\x03\x04", 4}, {"\x89PNG", 4}, {"GIF8", 4}, {"\xFF\xD8\xFF", 3},
        {"\x7F" "ELF", 4}, {"\xD0\xCF\x11\xE0", 4}, {"\x1F\x8B", 2}, {"BZh", 3},
        {"7z\xBC\xAF", 4}, {"Rar!", 4}, {"OggS", 4}, {"ID3", 3}, {"RIFF", 4},
        {"SQLite format 3", 15}, {"\x00\x00\x01\x00", 4}, {"wOFF", 4},
    };
    for (size_t i = 0; i < ZK_ARRAY_LEN(magics); i++)
        if (len >= magics[i].n && memcmp(p, magics[i].magic, magics[i].n) == 0) return 1;
    size_t n = ZK_MIN(len, SAMPLE_LEN), nul = 0, ctl = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == 0) nul++;
        else if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r' &&
                 p[i] != '\f' && p[i] != '\v' && p[i] != 0x1B)
            ctl++;
    }
    if (n == 0) return 0;
    /* text has (almost) no NULs or C0 controls; random bytes have ~0.4% NULs
     * and ~10% controls */
    return nul * 1000 > n || (nul + ctl) * 20 > n;
}

/* UTF-16/32 (BOM or NUL pattern): the NULs are text, not binary. */
static int looks_wide(const unsigned char *p, size_t len)
{
    if (len >= 2 && ((p[0] == 0xFF && p[1] == 0xFE) || (p[0] == 0xFE && p[1] == 0xFF))) return 1;
    if (len >= 4 && p[0] == 0 && p[1] == 0 && p[2] == 0xFE && p[3] == 0xFF) return 1;
    size_t n = ZK_MIN(len, (size_t)8192) & ~(size_t)1, ze = 0, zo = 0;
    if (n < 4) return 0;
    for (size_t i = 0; i < n; i += 2) { ze += p[i] == 0; zo += p[i + 1] == 0; }
    return (zo * 10 >= n / 2 * 3 && ze * 20 <= n / 2) || (ze * 10 >= n / 2 * 3 && zo * 20 <= n / 2);
}

/* Counts "<tag" openings of common HTML elements in s. */
static size_t html_tag_count(const char *s, size_t len)
{
    static const char *tags[] = {"p", "div", "br", "a", "span", "table", "tr", "td", "li",
                                 "ul", "ol", "h1", "h2", "h3", "body", "title", "meta",
                                 "script", "style", "img", "section", "article", "link"};
    size_t count = 0;
    for (const char *q = s; (q = memchr(q, '<', (size_t)(s + len - q))) != NULL; q++) {
        const char *t = q + 1;
        if (t < s + len && *t == '/') t++;
        for (size_t i = 0; i < ZK_ARRAY_LEN(tags); i++) {
            size_t n = strlen(tags[i]);
            if ((size_t)(s + len - t) > n && strncasecmp(t, tags[i], n) == 0 &&
                (t[n] == '>' || t[n] == ' ' || t[n] == '/' || t[n] == '\n' || t[n] == '\t')) {
                count++;
                break;
            }
        }
        if (q + 1 >= s + len) break;
    }
    return count;
}

static int strong_html(const char *s, size_t len)
{
    const char *end = s + len, *q = skip_ws(s, end);
    if (end - q >= 3 && memcmp(q, "\xEF\xBB\xBF", 3) == 0) q = skip_ws(q + 3, end);
    while (end - q >= 4 && memcmp(q, "<!--", 4) == 0) {   /* leading comments */
        const char *c = memmem(q, (size_t)(end - q), "-->", 3);
        if (!c) break;
        q = skip_ws(c + 3, end);
    }
    if (has_prefix_ci(q, (size_t)(end - q), "<?xml")) {
        const char *c = memchr(q, '>', (size_t)(end - q));
        if (c) q = skip_ws(c + 1, end);
    }
    size_t rest = (size_t)(end - q);
    return has_prefix_ci(q, rest, "<!doctype html") || has_prefix_ci(q, rest, "<html") ||
           has_prefix_ci(q, rest, "<head");
}

/* Markdown signals: ATX headings ("# x" at line start) and ``` fences. */
static int md_score(const char *s, size_t len)
{
    int headings = 0, fences = 0, first_line_heading = 0, line_no = 0;
    const char *end = s + len;
    for (const char *line = s; line < end; line_no++) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *le = nl ? nl : end;
        const char *q = line;
        while (q < le && *q == ' ' && q - line < 3) q++;
        int hashes = 0;
        while (q < le && *q == '#' && hashes < 7) { q++; hashes++; }
        if (hashes >= 1 && hashes <= 6 && q < le && (*q == ' ' || *q == '\t')) {
            headings++;
            if (line_no == 0) first_line_heading = 1;
        }
        if (le - line >= 3 && (memcmp(line, "```", 3) == 0 || memcmp(line, "~~~", 3) == 0)) fences++;
        if (!nl) break;
        line = nl + 1;
    }
    return headings >= 2 || fences >= 2 || first_line_heading || (headings && fences);
}

/* Delimited text (CSV/TSV): the first lines (up to 20 records, quote-aware)
 * all carry the same non-zero count of one delimiter. Guards against prose:
 * 3+ records, and for "," and ";" short average fields; a leading "|" is a
 * Markdown table, not CSV. */
static int looks_csv(const char *s, size_t len, int truncated)
{
    static const char delims[] = {',', '\t', ';', '|'};
    for (size_t d = 0; d < sizeof delims; d++) {
        char c = delims[d];
        size_t records = 0, count = 0, want = 0, bytes = 0;
        int quoted = 0, ok = 1, line_start = 1;
        for (size_t i = 0; i < len && records < 20 && ok; i++) {
            char ch = s[i];
            if (line_start && c == '|' && ch == '|') { ok = 0; break; }
            line_start = 0;
            if (ch == '"') quoted = !quoted;
            else if (!quoted && ch == c) count++;
            else if (!quoted && ch == '\n') {
                size_t rec_end = i;
                line_start = 1;
                if (rec_end == 0 || s[rec_end - 1] == '\n' || (s[rec_end - 1] == '\r' && rec_end >= 2 && s[rec_end - 2] == '\n'))
                    continue;   /* blank line */
                if (records == 0) want = count;
                if (count == 0 || count != want) ok = 0;
                records++;
                count = 0;
            }
            bytes++;
        }
        if (!ok) continue;
        /* a final record without newline counts unless the sample was cut */
        if (!truncated && count > 0 && records < 20) {
            if (records == 0) want = count;
            if (count != want) continue;
            records++;
        }
        if (records < 3 || want == 0) continue;
        if ((c == ',' || c == ';') && bytes / (records * (want + 1)) > 40) continue;
        return 1;
    }
    return 0;
}

/* Detection on text that is ASCII-compatible (UTF-8 or a legacy charset). */
static const char *detect_text(const char *name, const char *s, size_t len)
{
    const char *ext = name_ext(name);
    size_t n = ZK_MIN(len, SAMPLE_LEN);
    if (strong_html(s, n)) return "html";
    if (!strcasecmp(ext, "md") || !strcasecmp(ext, "markdown") || !strcasecmp(ext, "mdown") ||
        !strcasecmp(ext, "mkd"))
        return "md";
    if (!strcasecmp(ext, "html") || !strcasecmp(ext, "htm") || !strcasecmp(ext, "xhtml"))
        return "html";
    if (!strcasecmp(ext, "txt") || !strcasecmp(ext, "text")) return "txt";
    if (!strcasecmp(ext, "csv") || !strcasecmp(ext, "tsv")) return "csv";
    size_t tags = html_tag_count(s, n);
    if (tags >= 8 && tags * 200 >= n) return "html";
    if (md_score(s, n)) return "md";
    if (looks_csv(s, n, n < len)) return "csv";
    return "txt";
}

/* Formats recognised by their bytes rather than as text: ZIP containers
 * (by their entries), and legacy binary formats we refuse with a reason.
 * Legacy Word .doc (OLE2 compound files) and RTF are not parsed: Debian has
 * no sound, maintained C library for either (antiword/catdoc/unrtf are
 * programs, not libraries), and converting to .docx keeps far more
 * structure. ZK_OK with *out_fmt NULL: not a container, treat as text. */
static zk_rc container_format(const char *name, const char *data, size_t len, const char **out_fmt,
                              char *err)
{
    const char *ext = name_ext(name);
    *out_fmt = NULL;
    if (len >= 8 && memcmp(data, "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", 8) == 0) {
        if (!strcasecmp(ext, "xls"))
            return zk_fail(err, ZK_UNSUPPORTED, "unsupported format: legacy Excel .xls (convert to .xlsx)");
        if (!strcasecmp(ext, "ppt"))
            return zk_fail(err, ZK_UNSUPPORTED, "unsupported format: legacy PowerPoint .ppt (convert to .pptx)");
        return zk_fail(err, ZK_UNSUPPORTED, "unsupported format: legacy Word .doc (convert to .docx)");
    }
    const char *q = data, *end = data + len;
    if (end - q >= 3 && memcmp(q, "\xEF\xBB\xBF", 3) == 0) q += 3;
    q = skip_ws(q, end);
    if (end - q >= 5 && memcmp(q, "{\\rtf", 5) == 0)
        return zk_fail(err, ZK_UNSUPPORTED, "unsupported format: RTF (convert to .docx)");
    if (len < 4 || memcmp(data, "PK\x03\x04", 4) != 0) return ZK_OK;
    idx__zip *z = NULL;
    zk_rc rc = idx__zip_open(data, len, &z, err);
    idx__zip_close(z);
    if (rc != ZK_OK) return rc;
    if (!(*out_fmt = idx__zip_format(data, len)))
        return zk_fail(err, ZK_UNSUPPORTED,
                       "unsupported format: ZIP archive that is not a docx, xlsx, pptx, odt or epub document");
    return ZK_OK;
}

const char *idx_detect_format(const char *name, const char *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    if (!data) return NULL;
    if (len >= 5 && memcmp(data, "%PDF-", 5) == 0) return "pdf";   /* binary; pdf.c */
    const char *cf = NULL;
    char cerr[ZK_ERRLEN];
    if (container_format(name, data, len, &cf, cerr) != ZK_OK) return NULL;
    if (cf) return cf;
    if (looks_wide(p, len)) {
        char *u = NULL;
        size_t ulen = 0;
        char err[ZK_ERRLEN];
        if (idx_to_utf8(data, ZK_MIN(len, SAMPLE_LEN), &u, &ulen, NULL, err) != ZK_OK) return NULL;
        const char *f = detect_text(name, u, ulen);
        zk_free(u);
        return f;
    }
    if (looks_binary(p, len)) return NULL;
    return detect_text(name, data, len);
}

/* ---- titles and dispatch ----------------------------------------------- */

/* Collapse whitespace, trim, cap at TITLE_MAX_CP code points. */
static char *clean_title(const char *t)
{
    zk_buf b;
    buf_init(&b, 0);
    size_t len = strlen(t), i = 0, cps = 0;
    int space = 0;
    while (i < len && cps < TITLE_MAX_CP) {
        uint32_t cp;
        size_t n = utf8_decode((const unsigned char *)t + i, len - i, &cp);
        if (utf8_is_space(cp)) {
            space = b.len > 0;
        } else {
            if (space && buf_putc(&b, ' ') != ZK_OK) goto fail;
            space = 0;
            if (buf_append(&b, t + i, n) != ZK_OK) goto fail;
            cps++;
        }
        i += n;
    }
    if (b.len == 0) { buf_free(&b); return NULL; }
    return buf_steal(&b, NULL);
fail:
    buf_free(&b);
    return NULL;
}

static char *title_from_name(const char *name)
{
    if (name) {
        const char *base = strrchr(name, '/');
        base = base ? base + 1 : name;
        const char *dot = strrchr(base, '.');
        size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
        if (n > 0) {
            char *raw = zk_strndup(base, n);
            char *t = raw ? clean_title(raw) : NULL;
            zk_free(raw);
            if (t) return t;
        }
    }
    return zk_strdup("untitled");
}

zk_rc idx_parse(const char *name, const char *data, size_t len, idx_parsed **out, char *err)
{
    zk_rc rc = ZK_OK;
    idx_parsed *doc = NULL;
    char *utf8 = NULL;
    size_t ulen = 0;
    const unsigned char *p = (const unsigned char *)data;

    *out = NULL;
    if (!data && len) return zk_fail(err, ZK_INVALID, "NULL data");
    if (!data) data = "";
    if (len >= 5 && memcmp(data, "%PDF-", 5) == 0) {   /* PDF: raw bytes to pdf.c */
        if (!(doc = idx__parsed_new())) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
        if ((rc = idx__parse_pdf(name, data, len, doc, err)) != ZK_OK) goto out;
        goto titled;
    }
    const char *cf = NULL;
    if ((rc = container_format(name, data, len, &cf, err)) != ZK_OK) goto out;
    if (cf) {
        if (!(doc = idx__parsed_new())) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
        doc->format = cf;
        snprintf(doc->charset, sizeof doc->charset, "UTF-8");
        if (!strcmp(cf, "docx")) rc = idx__parse_docx(name, data, len, doc, err);
        else if (!strcmp(cf, "xlsx")) rc = idx__parse_xlsx(name, data, len, doc, err);
        else if (!strcmp(cf, "pptx")) rc = idx__parse_pptx(name, data, len, doc, err);
        else if (!strcmp(cf, "odt")) rc = idx__parse_odt(name, data, len, doc, err);
        else rc = idx__parse_epub(name, data, len, doc, err);
        if (rc != ZK_OK) goto out;
        goto titled;
    }
    if (!looks_wide(p, len) && looks_binary(p, len)) {
        rc = zk_fail(err, ZK_UNSUPPORTED, "binary content is not a supported format");
        goto out;
    }
    if (!(doc = idx__parsed_new())) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    if ((rc = idx_to_utf8(data, len, &utf8, &ulen, doc->charset, err)) != ZK_OK) goto out;
    doc->format = detect_text(name, utf8, ulen);

    if (!strcmp(doc->format, "html")) rc = idx__parse_html(name, utf8, ulen, doc, err);
    else if (!strcmp(doc->format, "md")) rc = idx__parse_md(name, utf8, ulen, doc, err);
    else if (!strcmp(doc->format, "csv")) rc = idx__parse_csv(name, utf8, ulen, doc, err);
    else rc = idx__parse_txt(name, utf8, ulen, doc, err);
    if (rc != ZK_OK) goto out;
titled:;

    char *t = doc->title ? clean_title(doc->title) : NULL;
    zk_free(doc->title);
    doc->title = t ? t : title_from_name(name);
    if (!doc->title) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    *out = doc;
    doc = NULL;
out:
    zk_free(utf8);
    idx_parsed_free(doc);
    return rc;
}
