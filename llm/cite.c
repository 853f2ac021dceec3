/* cite.c — citation markers (see cite.h): a byte-level streaming filter
 * that holds text from '[' until the marker is known to be valid (then it
 * is renumbered) or not a marker (then it is passed through), and the
 * term-containment support score of cited sentences. One filter per
 * answer; work is linear in the answer length. */
#include "llm/cite.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "utf8.h"
#include "llm/terms.h"

#define MARKER_MAX 40        /* longest "[1, 2, 3]" held back */
#define MARKER_NUMS 16

struct llm_stream_filter {
    int nsrc;
    int *map;              /* model number (1..nsrc) → new number, 0 = unused */
    int *cited;            /* new number k+1 → source index */
    size_t ncited;
    zk_buf out;            /* checked text */
    char hold[MARKER_MAX + 1];
    size_t nhold;
    llm_text_fn on_text;
    void *ctx;
    int muted, cancelled;
    size_t sent;           /* bytes of out already passed to on_text */
};

zk_rc llm_stream_filter_new(int nsrc, llm_text_fn on_text, void *ctx, llm_stream_filter **out, char *err)
{
    *out = NULL;
    if (nsrc < 0) nsrc = 0;
    llm_stream_filter *f = zk_calloc(1, sizeof *f);
    if (!f) return zk_fail(err, ZK_NOMEM, "out of memory");
    f->nsrc = nsrc;
    f->map = zk_calloc((size_t)nsrc + 1, sizeof *f->map);
    f->cited = zk_calloc((size_t)nsrc + 1, sizeof *f->cited);
    if (!f->map || !f->cited) {
        llm_stream_filter_free(f);
        return zk_fail(err, ZK_NOMEM, "out of memory");
    }
    buf_init(&f->out, (size_t)16 << 20);
    f->on_text = on_text;
    f->ctx = ctx;
    *out = f;
    return ZK_OK;
}

void llm_stream_filter_free(llm_stream_filter *f)
{
    if (!f) return;
    zk_free(f->map);
    zk_free(f->cited);
    buf_free(&f->out);
    zk_free(f);
}

void llm_stream_filter_mute(llm_stream_filter *f) { f->muted = 1; }

const char *llm_stream_filter_text(const llm_stream_filter *f, size_t *out_len)
{
    if (out_len) *out_len = f->out.len;
    return f->out.len ? f->out.data : "";
}

size_t llm_stream_filter_cited(const llm_stream_filter *f, const int **out_src)
{
    *out_src = f->cited;
    return f->ncited;
}

/* Pass the text accumulated since the last flush to the callback. */
static void flush(llm_stream_filter *f)
{
    if (f->sent == f->out.len) return;
    if (f->on_text && !f->muted && !f->cancelled &&
        f->on_text(f->ctx, f->out.data + f->sent, f->out.len - f->sent))
        f->cancelled = 1;
    f->sent = f->out.len;
}

enum { M_PREFIX, M_DONE, M_INVALID };

/* Is s[0..n) (starting with '[') a marker prefix, a whole marker, or not a
 * marker? Grammar: '[' sp* num (sp* (',' | '，' | '、') sp* num)* sp* ']'. */
static int marker_state(const char *s, size_t n)
{
    int need_num = 1, in_num = 0, ndig = 0;
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= '0' && c <= '9') {
            if (!need_num && !in_num) return M_INVALID;
            if (++ndig > 4) return M_INVALID;
            in_num = 1;
            need_num = 0;
            continue;
        }
        in_num = 0;
        ndig = 0;
        if (c == ' ') continue;
        if (c == ',') {
            if (need_num) return M_INVALID;
            need_num = 1;
            continue;
        }
        /* '，' EF BC 8C and '、' E3 80 81, possibly still incomplete */
        if (c == 0xEF || c == 0xE3) {
            const char *fw = c == 0xEF ? "\xEF\xBC\x8C" : "\xE3\x80\x81";
            size_t k = 0;
            while (k < 3 && i + k < n && s[i + k] == fw[k]) k++;
            if (i + k == n && k < 3) return M_PREFIX;
            if (k < 3 || need_num) return M_INVALID;
            need_num = 1;
            i += 2;
            continue;
        }
        if (c == ']') return (need_num || i != n - 1) ? M_INVALID : M_DONE;
        return M_INVALID;
    }
    return M_PREFIX;
}

/* A whole marker: keep its valid numbers, renumbered, as [a][b]. */
static void marker_emit(llm_stream_filter *f, const char *s, size_t n)
{
    int seen[MARKER_NUMS], nseen = 0;
    for (size_t i = 1; i < n && nseen < MARKER_NUMS;) {
        if (s[i] < '0' || s[i] > '9') { i++; continue; }
        int v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0');
        if (v < 1 || v > f->nsrc) continue;          /* points to no source: dropped */
        int dup = 0;
        for (int k = 0; k < nseen; k++) dup |= seen[k] == v;
        if (dup) continue;
        seen[nseen++] = v;
        if (!f->map[v]) {
            f->cited[f->ncited++] = v - 1;
            f->map[v] = (int)f->ncited;
        }
        buf_printf(&f->out, "[%d]", f->map[v]);
    }
}

static void feed_byte(llm_stream_filter *f, char c)
{
    if (!f->nhold) {
        if (c == '[') f->hold[f->nhold++] = c;
        else buf_putc(&f->out, c);
        return;
    }
    f->hold[f->nhold++] = c;
    int st = marker_state(f->hold, f->nhold);
    if (st == M_DONE) {
        marker_emit(f, f->hold, f->nhold);
        f->nhold = 0;
    } else if (st == M_INVALID || f->nhold >= MARKER_MAX) {
        /* not a marker: the '[' is text; the rest may start another one */
        char rest[MARKER_MAX + 1];
        size_t nr = f->nhold - 1;
        memcpy(rest, f->hold + 1, nr);
        f->nhold = 0;
        buf_putc(&f->out, '[');
        for (size_t i = 0; i < nr; i++) feed_byte(f, rest[i]);
    }
}

int llm_stream_filter_feed(llm_stream_filter *f, const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) feed_byte(f, text[i]);
    flush(f);
    return f->cancelled;
}

int llm_stream_filter_finish(llm_stream_filter *f)
{
    if (f->nhold) {
        /* a dangling marker prefix ("[1" at the end) is dropped; "[" followed
         * by nothing but spaces too; anything else was text */
        if (marker_state(f->hold, f->nhold) != M_PREFIX) buf_append(&f->out, f->hold, f->nhold);
        f->nhold = 0;
    }
    flush(f);
    return f->cancelled;
}

zk_rc llm_cite_renumber(const char *text, size_t len, int nsrc, char **out_text, int **out_src,
                        size_t *out_n, char *err)
{
    llm_stream_filter *f = NULL;
    *out_text = NULL;
    *out_src = NULL;
    *out_n = 0;
    zk_rc rc = llm_stream_filter_new(nsrc, NULL, NULL, &f, err);
    if (rc != ZK_OK) return rc;
    llm_stream_filter_feed(f, text, len);
    llm_stream_filter_finish(f);
    *out_text = zk_strndup(llm_stream_filter_text(f, NULL), f->out.len);
    *out_src = zk_calloc(f->ncited ? f->ncited : 1, sizeof **out_src);
    if (!*out_text || !*out_src) {
        zk_free(*out_text);
        zk_free(*out_src);
        *out_text = NULL;
        *out_src = NULL;
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
    } else {
        memcpy(*out_src, f->cited, f->ncited * sizeof **out_src);
        *out_n = f->ncited;
    }
    llm_stream_filter_free(f);
    return rc;
}

/* ---- support ------------------------------------------------------------------ */

typedef struct {
    uint64_t *h;
    size_t n, cap;
} term_set;

static int add_term(term_set *t, uint64_t h)
{
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 64;
        uint64_t *p = zk_realloc(t->h, nc * sizeof *p);
        if (!p) return -1;
        t->h = p;
        t->cap = nc;
    }
    t->h[t->n++] = h;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Content terms of text: stemmed non-stop words, and CJK bigrams of
 * adjacent characters (single CJK characters standing alone). Sorted,
 * distinct. */
static int content_terms(const char *s, size_t len, term_set *t)
{
    size_t pos = 0;
    llm__token tok, prev;
    int have_prev = 0, prev_used = 0;
    memset(&prev, 0, sizeof prev);
    for (;;) {
        pos = llm__next_token(s, len, pos, &tok);
        if (tok.kind == LLM__TOK_END) break;
        if (tok.kind == LLM__TOK_WORD) {
            if (have_prev && !prev_used && !llm__cjk_is_stopchar(prev.cp[0]) &&
                add_term(t, llm__hash_cps(2, prev.cp, 1))) return -1;
            have_prev = 0;
            size_t n = llm__stem(tok.cp, tok.n);
            if (llm__is_stopword(tok.cp, n)) continue;
            if (add_term(t, llm__hash_cps(1, tok.cp, n))) return -1;
            continue;
        }
        /* CJK */
        if (have_prev && !tok.sep && prev.end == tok.start) {
            uint32_t bi[2] = {prev.cp[0], tok.cp[0]};
            if (!(llm__cjk_is_stopchar(bi[0]) && llm__cjk_is_stopchar(bi[1]))) {
                if (add_term(t, llm__hash_cps(3, bi, 2))) return -1;
                prev_used = 1;
            }
            prev = tok;
            prev_used = 1;
            continue;
        }
        if (have_prev && !prev_used && !llm__cjk_is_stopchar(prev.cp[0]) &&
            add_term(t, llm__hash_cps(2, prev.cp, 1))) return -1;
        prev = tok;
        have_prev = 1;
        prev_used = 0;
    }
    if (have_prev && !prev_used && !llm__cjk_is_stopchar(prev.cp[0]) &&
        add_term(t, llm__hash_cps(2, prev.cp, 1))) return -1;
    if (t->n > 1) {
        qsort(t->h, t->n, sizeof *t->h, cmp_u64);
        size_t k = 1;
        for (size_t i = 1; i < t->n; i++)
            if (t->h[i] != t->h[k - 1]) t->h[k++] = t->h[i];
        t->n = k;
    }
    return 0;
}

/* Chunks contain the sentence's CJK characters as bigrams; a lone
 * character (hash seed 2) is matched against the chunk's unigrams too. */
static int chunk_terms(const char *s, size_t len, term_set *t)
{
    if (content_terms(s, len, t)) return -1;
    size_t pos = 0;
    llm__token tok;
    for (;;) {
        pos = llm__next_token(s, len, pos, &tok);
        if (tok.kind == LLM__TOK_END) break;
        if (tok.kind == LLM__TOK_CJK && add_term(t, llm__hash_cps(2, tok.cp, 1))) return -1;
    }
    qsort(t->h, t->n, sizeof *t->h, cmp_u64);
    return 0;
}

static double containment(const term_set *sent, const term_set *chunk)
{
    if (sent->n == 0) return 1.0;
    size_t hit = 0;
    for (size_t i = 0; i < sent->n; i++)
        if (bsearch(&sent->h[i], chunk->h, chunk->n, sizeof *chunk->h, cmp_u64)) hit++;
    return (double)hit / (double)sent->n;
}

double llm_cite_sentence_support(const char *sentence, size_t slen, const char *chunk, size_t clen)
{
    term_set a = {0}, b = {0};
    double r = 0.0;
    if (content_terms(sentence, slen, &a) == 0 && chunk_terms(chunk, clen, &b) == 0) r = containment(&a, &b);
    zk_free(a.h);
    zk_free(b.h);
    return r;
}

/* 1 when s[a..b) holds a letter, digit or CJK character. */
static int has_content(const char *s, size_t a, size_t b)
{
    while (a < b) {
        uint32_t cp;
        a += utf8_decode((const unsigned char *)s + a, b - a, &cp);
        if (utf8_is_alnum(cp) || utf8_is_cjk(cp)) return 1;
    }
    return 0;
}

zk_rc llm_cite_support(const char *s, size_t len, const char *const *chunk_text, size_t nmarkers,
                       double *support, char *err)
{
    for (size_t k = 0; k < nmarkers; k++) support[k] = 1.0;
    size_t seg = 0, last_a = 0, last_b = 0, i = 0;
    while (i < len) {
        if (s[i] == '[') {
            size_t j = i + 1;
            int v = 0;
            while (j < len && s[j] >= '0' && s[j] <= '9' && v < 100000) v = v * 10 + (s[j++] - '0');
            if (j < len && s[j] == ']' && j > i + 1) {
                size_t a = seg, b = i;
                if (!has_content(s, a, b)) { a = last_a; b = last_b; }
                if (v >= 1 && (size_t)v <= nmarkers && b > a && chunk_text[v - 1]) {
                    double sc = llm_cite_sentence_support(s + a, b - a, chunk_text[v - 1], strlen(chunk_text[v - 1]));
                    if (sc < support[v - 1]) support[v - 1] = sc;
                }
                last_a = a;
                last_b = b;
                seg = i = j + 1;
                continue;
            }
        }
        uint32_t cp;
        size_t n = utf8_decode((const unsigned char *)s + i, len - i, &cp);
        i += n;
        if (utf8_is_sentence_end(cp) || cp == '\n') {
            if (has_content(s, seg, i)) {
                last_a = seg;
                last_b = i;
            }
            seg = i;
        }
    }
    (void)err;
    return ZK_OK;
}
