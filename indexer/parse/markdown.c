/* markdown.c — Markdown parser on md4c's callback API.
 *
 * Called by idx_parse() for .md documents. Each heading starts a block whose
 * heading path is the stack of enclosing headings ("Install > Debian");
 * emphasis/link markup is dropped, code and table text kept (cells joined
 * with " | ", a row per line), YAML front matter skipped. Linear in input. */
#include "indexer/parse/parse.h"

#include <md4c.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "utf8.h"

enum { BRK_NONE = 0, BRK_SPACE, BRK_LINE, BRK_PARA };

typedef struct {
    idx_parsed *doc;
    zk_buf body;          /* text of the block being built */
    zk_buf head;          /* text of the heading being read */
    char *stack[7];       /* heading text per level 1..6 */
    char *path;           /* heading path of the current block */
    size_t head_len;      /* bytes of body taken by the block's own heading */
    int in_heading;
    int pending;          /* BRK_* to insert before the next text */
    int cell;             /* cells seen in the current table row */
    int in_tag;           /* inside a raw HTML tag */
    zk_rc rc;
} md_state;

static uint32_t last_cp(const zk_buf *b)
{
    if (b->len == 0) return 0;
    size_t k = b->len - 1;
    while (k > 0 && ((unsigned char)b->data[k] & 0xC0) == 0x80 && b->len - k < 4) k--;
    uint32_t cp;
    utf8_decode((const unsigned char *)b->data + k, b->len - k, &cp);
    return cp;
}

static void rstrip(zk_buf *b)
{
    while (b->len > 0 && (b->data[b->len - 1] == ' ' || b->data[b->len - 1] == '\n' ||
                          b->data[b->len - 1] == '\t'))
        b->len--;
    if (b->data) b->data[b->len] = '\0';
}

/* Append text to the heading or the body, first inserting a pending break. */
static void put(md_state *st, const char *s, size_t n)
{
    if (st->rc != ZK_OK || n == 0) return;
    zk_buf *b = st->in_heading ? &st->head : &st->body;
    if (st->pending != BRK_NONE && b->len > 0) {
        if (st->pending == BRK_SPACE) {
            uint32_t next;
            utf8_decode((const unsigned char *)s, n, &next);
            uint32_t prev = last_cp(b);
            if (!(utf8_is_cjk(prev) && utf8_is_cjk(next)) && !utf8_is_space(prev))
                st->rc = buf_putc(b, ' ');
        } else {
            rstrip(b);
            st->rc = st->in_heading ? buf_putc(b, ' ')
                     : buf_append(b, st->pending == BRK_PARA ? "\n\n" : "\n",
                                  st->pending == BRK_PARA ? 2 : 1);
        }
    }
    st->pending = BRK_NONE;
    if (st->rc == ZK_OK) st->rc = buf_append(b, s, n);
}

static void brk(md_state *st, int kind)
{
    if (kind > st->pending) st->pending = kind;
}

static void flush_block(md_state *st)
{
    if (st->rc != ZK_OK) return;
    rstrip(&st->body);
    if (st->body.len > st->head_len)
        st->rc = idx__add_block(st->doc, st->body.data, st->body.len, st->path, 0);
    buf_reset(&st->body);
    st->head_len = 0;
    st->pending = BRK_NONE;
}

static void end_heading(md_state *st, int level)
{
    st->in_heading = 0;
    rstrip(&st->head);
    const char *h = buf_cstr(&st->head);
    while (*h == ' ') h++;
    if (level < 1 || level > 6 || st->rc != ZK_OK) return;
    for (int l = level; l <= 6; l++) { zk_free(st->stack[l]); st->stack[l] = NULL; }
    if (*h && !(st->stack[level] = zk_strdup(h))) { st->rc = ZK_NOMEM; return; }
    if (level == 1 && *h && !st->doc->title && !(st->doc->title = zk_strdup(h))) {
        st->rc = ZK_NOMEM;
        return;
    }
    zk_buf p;
    buf_init(&p, 0);
    for (int l = 1; l <= level && st->rc == ZK_OK; l++) {
        if (!st->stack[l]) continue;
        if (p.len) st->rc = buf_puts(&p, " > ");
        if (st->rc == ZK_OK) st->rc = buf_puts(&p, st->stack[l]);
    }
    zk_free(st->path);
    st->path = p.len ? buf_steal(&p, NULL) : NULL;
    buf_free(&p);
    /* the heading's own text opens its block */
    if (*h && st->rc == ZK_OK) {
        st->rc = buf_puts(&st->body, h);
        st->head_len = st->body.len;
    }
    st->pending = BRK_PARA;
}

static int enter_block(MD_BLOCKTYPE type, void *detail, void *ud)
{
    md_state *st = ud;
    (void)detail;
    switch (type) {
    case MD_BLOCK_H:
        flush_block(st);
        st->in_heading = 1;
        buf_reset(&st->head);
        break;
    case MD_BLOCK_LI: brk(st, BRK_LINE); break;
    case MD_BLOCK_THEAD:
    case MD_BLOCK_TBODY: brk(st, BRK_LINE); break;
    case MD_BLOCK_TR: brk(st, BRK_LINE); st->cell = 0; break;
    case MD_BLOCK_TH:
    case MD_BLOCK_TD:
        if (st->cell++ > 0) put(st, " | ", 3);
        break;
    case MD_BLOCK_DOC: break;
    default: brk(st, BRK_PARA); break;
    }
    return st->rc == ZK_OK ? 0 : 1;
}

static int leave_block(MD_BLOCKTYPE type, void *detail, void *ud)
{
    md_state *st = ud;
    switch (type) {
    case MD_BLOCK_H: end_heading(st, (int)((MD_BLOCK_H_DETAIL *)detail)->level); break;
    case MD_BLOCK_LI: brk(st, BRK_LINE); break;
    case MD_BLOCK_THEAD:
    case MD_BLOCK_TBODY:
    case MD_BLOCK_TR: brk(st, BRK_LINE); break;
    case MD_BLOCK_TH:
    case MD_BLOCK_TD:
    case MD_BLOCK_DOC: break;
    default: brk(st, BRK_PARA); break;
    }
    return st->rc == ZK_OK ? 0 : 1;
}

static int enter_span(MD_SPANTYPE type, void *detail, void *ud)
{
    (void)type; (void)detail; (void)ud;
    return 0;
}

static int leave_span(MD_SPANTYPE type, void *detail, void *ud)
{
    (void)type; (void)detail; (void)ud;
    return 0;
}

/* &amp; &lt; ... and numeric references; unknown ones stay as written. */
static void put_entity(md_state *st, const char *s, size_t n)
{
    static const struct { const char *name; const char *utf8; } ents[] = {
        {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"},
        {"&nbsp;", " "}, {"&copy;", "\xC2\xA9"}, {"&mdash;", "\xE2\x80\x94"},
        {"&ndash;", "\xE2\x80\x93"}, {"&hellip;", "\xE2\x80\xA6"},
    };
    if (n >= 4 && s[1] == '#') {
        char tmp[16];
        size_t k = ZK_MIN(n - 2, sizeof tmp - 1);
        memcpy(tmp, s + 2, k);
        tmp[k] = '\0';
        unsigned long cp = (tmp[0] == 'x' || tmp[0] == 'X') ? strtoul(tmp + 1, NULL, 16)
                                                            : strtoul(tmp, NULL, 10);
        if (cp == 0 || cp > 0x10FFFF) cp = UTF8_REPLACEMENT;
        char enc[4];
        put(st, enc, utf8_encode((uint32_t)cp, enc));
        return;
    }
    for (size_t i = 0; i < ZK_ARRAY_LEN(ents); i++)
        if (strlen(ents[i].name) == n && memcmp(ents[i].name, s, n) == 0) {
            put(st, ents[i].utf8, strlen(ents[i].utf8));
            return;
        }
    put(st, s, n);
}

/* Raw HTML inside Markdown: keep the text between tags. */
static void put_html(md_state *st, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (!st->in_tag && s[i] == '<') {
            put(st, s + run, i - run);
            st->in_tag = 1;
        } else if (st->in_tag && s[i] == '>') {
            st->in_tag = 0;
            run = i + 1;
        }
    }
    if (!st->in_tag) put(st, s + run, n - run);
}

static int on_text(MD_TEXTTYPE type, const MD_CHAR *text, MD_SIZE size, void *ud)
{
    md_state *st = ud;
    switch (type) {
    case MD_TEXT_SOFTBR: brk(st, BRK_SPACE); break;
    case MD_TEXT_BR: brk(st, BRK_LINE); break;
    case MD_TEXT_NULLCHAR: put(st, "\xEF\xBF\xBD", 3); break;
    case MD_TEXT_ENTITY: put_entity(st, text, size); break;
    case MD_TEXT_HTML: put_html(st, text, size); break;
    default: put(st, text, size); break;
    }
    return st->rc == ZK_OK ? 0 : 1;
}

/* Length of a leading "---" YAML front matter block, 0 when there is none. */
static size_t front_matter_len(const char *s, size_t len)
{
    if (len < 4 || memcmp(s, "---", 3) != 0) return 0;
    const char *end = s + len, *line = s + 3;
    while (line < end && (*line == ' ' || *line == '\t' || *line == '\r')) line++;
    if (line >= end || *line != '\n') return 0;
    for (line++; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *le = nl ? nl : end;
        size_t n = (size_t)(le - line);
        while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\r' || line[n - 1] == '\t')) n--;
        if (n == 3 && (memcmp(line, "---", 3) == 0 || memcmp(line, "...", 3) == 0))
            return (size_t)((nl ? nl + 1 : end) - s);
        if (!nl) break;
        line = nl + 1;
    }
    return 0;
}

zk_rc idx__parse_md(const char *name, const char *utf8, size_t len, idx_parsed *doc, char *err)
{
    (void)name;
    md_state st;
    memset(&st, 0, sizeof st);
    st.doc = doc;
    buf_init(&st.body, 0);
    buf_init(&st.head, 0);

    size_t skip = front_matter_len(utf8, len);
    MD_PARSER parser;
    memset(&parser, 0, sizeof parser);
    parser.abi_version = 0;
    parser.flags = MD_FLAG_TABLES | MD_FLAG_STRIKETHROUGH | MD_FLAG_TASKLISTS |
                   MD_FLAG_COLLAPSEWHITESPACE;
    parser.enter_block = enter_block;
    parser.leave_block = leave_block;
    parser.enter_span = enter_span;
    parser.leave_span = leave_span;
    parser.text = on_text;

    int r = md_parse(utf8 + skip, (MD_SIZE)(len - skip), &parser, &st);
    if (st.rc == ZK_OK && r != 0) st.rc = ZK_PARSE;
    flush_block(&st);

    zk_rc rc = st.rc;
    if (rc != ZK_OK) zk_fail(err, rc, "parsing Markdown");
    buf_free(&st.body);
    buf_free(&st.head);
    for (int l = 0; l <= 6; l++) zk_free(st.stack[l]);
    zk_free(st.path);
    return rc;
}
