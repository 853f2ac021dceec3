/* extractive.c — the answerer used when no chat model is configured. It
 * splits the retrieved chunks into sentences, scores each by IDF-weighted
 * coverage of the question's terms (shared term extractor, llm/terms.h),
 * and returns the best few with citation markers. Called once per /ask
 * request over ~5-20 chunks, so plain arrays and a sort are plenty. */
#include "llm/extractive.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "llm/terms.h"
#include "utf8.h"

#define MAX_QTERMS 64          /* question terms tracked (bit mask per sentence) */
#define MAX_SENT_CP 500        /* hard cut for run-on "sentences" (tables, lists) */
#define MAX_QRUN 256           /* CJK run length examined in the question */
#define DUP_CONTAINMENT 0.8    /* feature overlap that makes a sentence a duplicate */
#define NEXT_FRACTION 0.5      /* later sentences need this share of the best score */

#define NOT_FOUND_ZH "知识库中没有找到与该问题相关的内容。"
#define NOT_FOUND_EN "Not found in the knowledge base."

/* Hash seeds of the term kinds, shared by question and sentences. */
enum { T_WORD = 1, T_CJK1 = 2, T_CJK2 = 3 };

typedef struct {
    uint64_t h;
    double w;        /* kind weight, then kind weight * idf */
    size_t df;
} qterm;

typedef struct {
    int src;
    size_t b0, b1;          /* byte span in the source, whitespace-trimmed */
    size_t cp0, cp1;        /* the same span in code points */
    size_t ncp;             /* code points once rendered (spaces collapsed) */
    size_t ntok;            /* words + CJK characters */
    uint64_t mask;          /* question terms present */
    size_t feat_off, nfeat; /* sorted unique term hashes in ctx.pool */
    double cov, score;
} sentence;

typedef struct {
    const llm_source *src;
    qterm q[MAX_QTERMS];
    size_t nq;
    sentence *sent;
    size_t nsent, capsent;
    uint64_t *pool;
    size_t npool, cappool;
} ctx;

void llm_extractive_opts_default(llm_extractive_opts *o)
{
    o->max_sentences = 3;
    o->max_chars = 600;
    o->min_score = 0.2;
}

void llm_answer_free(llm_answer *a)
{
    if (!a) return;
    zk_free(a->answer);
    zk_free(a->cited);
    zk_free(a->span_start);
    zk_free(a->span_end);
    memset(a, 0, sizeof *a);
}

static int cjkish(uint32_t c)
{
    return utf8_is_cjk(c) || (c >= 0x3000 && c <= 0x303F) || (c >= 0xFF00 && c <= 0xFFEF);
}

static uint64_t hash1(int kind, uint32_t c) { return llm__hash_cps((uint64_t)kind, &c, 1); }

static uint64_t hash2(int kind, uint32_t a, uint32_t b)
{
    uint32_t v[2] = {a, b};
    return llm__hash_cps((uint64_t)kind, v, 2);
}

/* ---- question terms ---------------------------------------------------- */

static void add_qterm(ctx *c, uint64_t h, double w)
{
    for (size_t i = 0; i < c->nq; i++)
        if (c->q[i].h == h) return;
    if (c->nq == MAX_QTERMS) return;
    c->q[c->nq].h = h;
    c->q[c->nq].w = w;
    c->q[c->nq].df = 0;
    c->nq++;
}

/* Split a CJK run of the question at question words and particles; the
 * remaining segments give bigrams (or a weaker unigram when 1 char long). */
static void flush_qrun(ctx *c, const uint32_t *run, size_t n)
{
    char stop[MAX_QRUN] = {0};
    for (size_t i = 0; i < n;) {
        size_t k = llm__cjk_stop_len(run + i, n - i);
        if (k == 0) {
            i++;
            continue;
        }
        memset(stop + i, 1, k);
        i += k;
    }
    for (size_t i = 0; i < n;) {
        if (stop[i]) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && !stop[j]) j++;
        if (j - i == 1) add_qterm(c, hash1(T_CJK1, run[i]), 0.5);
        for (size_t k = i; k + 1 < j; k++) add_qterm(c, hash2(T_CJK2, run[k], run[k + 1]), 1.0);
        i = j;
    }
}

static int has_cjk(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += utf8_decode(p + i, len - i, &cp);
        if (utf8_is_cjk(cp)) return 1;
    }
    return 0;
}

static int cmp_qterm(const void *a, const void *b)
{
    uint64_t x = ((const qterm *)a)->h, y = ((const qterm *)b)->h;
    return x < y ? -1 : x > y;
}

static void question_terms(ctx *c, const char *q, size_t len)
{
    llm__token tok;
    uint32_t run[MAX_QRUN];
    size_t nrun = 0, pos = 0;
    int prev_kind = LLM__TOK_END;
    for (;;) {
        pos = llm__next_token(q, len, pos, &tok);
        int joined = !tok.sep && tok.kind == prev_kind;
        if (tok.kind != LLM__TOK_CJK || !joined || nrun == MAX_QRUN) {
            flush_qrun(c, run, nrun);
            nrun = 0;
        }
        if (tok.kind == LLM__TOK_END) break;
        if (tok.kind == LLM__TOK_CJK) {
            run[nrun++] = tok.cp[0];
        } else if (!llm__is_stopword(tok.cp, tok.n)) {
            size_t n = llm__stem(tok.cp, tok.n);
            add_qterm(c, llm__hash_cps(T_WORD, tok.cp, n), 1.0);
        }
        prev_kind = tok.kind;
    }
    qsort(c->q, c->nq, sizeof c->q[0], cmp_qterm);
}

static int find_qterm(const ctx *c, uint64_t h)
{
    size_t lo = 0, hi = c->nq;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c->q[mid].h == h) return (int)mid;
        if (c->q[mid].h < h) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

/* ---- sentences ------------------------------------------------------------ */

/* Render s[b0,b1) with whitespace runs collapsed to one space (none between
 * two CJK characters), invalid bytes as U+FFFD, at most limit code points.
 * With out == NULL only counts. Returns code points written. */
static zk_rc render(const char *s, size_t b0, size_t b1, size_t limit, zk_buf *out,
                    size_t *out_ncp, uint32_t *out_first, uint32_t *out_last)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    int pending = 0;
    uint32_t prev = 0, first = 0;
    zk_rc rc = ZK_OK;
    for (size_t i = b0; i < b1 && n < limit;) {
        uint32_t cp;
        i += utf8_decode(p + i, b1 - i, &cp);
        if (utf8_is_space(cp)) {
            pending = 1;
            continue;
        }
        if (pending && n > 0 && !(cjkish(prev) && cjkish(cp))) {
            if (out && (rc = buf_putc(out, ' ')) != ZK_OK) goto out;
            if (++n == limit) break;
        }
        pending = 0;
        if (out) {
            char enc[4];
            if ((rc = buf_append(out, enc, utf8_encode(cp, enc))) != ZK_OK) goto out;
        }
        if (n == 0) first = cp;
        prev = cp;
        n++;
    }
out:
    *out_ncp = n;
    if (out_first) *out_first = first;
    if (out_last) *out_last = prev;
    return rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static zk_rc pool_push(ctx *c, uint64_t h)
{
    if (c->npool == c->cappool) {
        size_t ncap = c->cappool ? c->cappool * 2 : 1024;
        uint64_t *p = zk_realloc(c->pool, ncap * sizeof *p);
        if (!p) return ZK_NOMEM;
        c->pool = p;
        c->cappool = ncap;
    }
    c->pool[c->npool++] = h;
    return ZK_OK;
}

/* Record source[b0,b1) (starting at code point cp0) as a sentence if it has
 * any words: trim, collect its terms, mark the question terms it contains. */
static zk_rc add_sentence(ctx *c, int src, size_t b0, size_t b1, size_t cp0)
{
    const char *s = c->src[src].text;
    const unsigned char *p = (const unsigned char *)s;
    zk_rc rc;
    /* trim leading whitespace */
    while (b0 < b1) {
        uint32_t cp;
        size_t k = utf8_decode(p + b0, b1 - b0, &cp);
        if (!utf8_is_space(cp)) break;
        b0 += k;
        cp0++;
    }
    /* trim trailing whitespace: only ASCII whitespace and the ideographic
     * space can end a span, so step back over those bytes */
    while (b1 > b0) {
        unsigned char ch = p[b1 - 1];
        if (ch == ' ' || (ch >= '\t' && ch <= '\r')) b1--;
        else if (b1 - b0 >= 3 && !memcmp(p + b1 - 3, "\xe3\x80\x80", 3)) b1 -= 3;
        else break;
    }
    if (b0 == b1) return ZK_OK;

    sentence st = {0};
    st.src = src;
    st.b0 = b0;
    st.b1 = b1;
    st.cp0 = cp0;
    st.cp1 = cp0 + utf8_count(s + b0, b1 - b0);
    st.feat_off = c->npool;

    llm__token tok;
    size_t pos = 0;
    int prev_kind = LLM__TOK_END;
    uint32_t prev_cjk = 0;
    for (;;) {
        pos = llm__next_token(s + b0, b1 - b0, pos, &tok);
        if (tok.kind == LLM__TOK_END) break;
        int joined = !tok.sep && tok.kind == prev_kind;
        uint64_t h[2];
        int nh = 0;
        if (tok.kind == LLM__TOK_WORD) {
            int stopw = llm__is_stopword(tok.cp, tok.n);
            size_t n = llm__stem(tok.cp, tok.n);
            h[nh++] = llm__hash_cps(T_WORD, tok.cp, n);
            if (stopw) nh = 0;   /* neither a question term nor a dedup feature */
        } else {
            uint32_t ch = tok.cp[0];
            h[nh++] = hash1(T_CJK1, ch);
            if (joined) h[nh++] = hash2(T_CJK2, prev_cjk, ch);
            prev_cjk = ch;
        }
        for (int k = 0; k < nh; k++) {
            int qi = find_qterm(c, h[k]);
            if (qi >= 0) st.mask |= (uint64_t)1 << qi;
            if ((rc = pool_push(c, h[k])) != ZK_OK) return rc;
        }
        st.ntok++;
        prev_kind = tok.kind;
    }
    if (st.ntok == 0) {
        c->npool = st.feat_off;
        return ZK_OK;
    }
    /* sort + unique this sentence's features */
    uint64_t *f = c->pool + st.feat_off;
    size_t nf = c->npool - st.feat_off, u = 0;
    qsort(f, nf, sizeof *f, cmp_u64);
    for (size_t i = 0; i < nf; i++)
        if (u == 0 || f[u - 1] != f[i]) f[u++] = f[i];
    st.nfeat = u;
    c->npool = st.feat_off + u;
    if ((rc = render(s, b0, b1, SIZE_MAX, NULL, &st.ncp, NULL, NULL)) != ZK_OK) return rc;

    if (c->nsent == c->capsent) {
        size_t ncap = c->capsent ? c->capsent * 2 : 64;
        sentence *ns = zk_realloc(c->sent, ncap * sizeof *ns);
        if (!ns) return ZK_NOMEM;
        c->sent = ns;
        c->capsent = ncap;
    }
    c->sent[c->nsent++] = st;
    return ZK_OK;
}

static int is_closer(uint32_t c)
{
    switch (c) {
    case '"': case '\'': case ')': case ']': case '}':
    case 0x201D: case 0x2019: case 0x300D: case 0x300F: case 0xFF09:
    case 0x300B: case 0x3009: case 0x3011: case 0xFF3D:
        return 1;
    default:
        return 0;
    }
}

static int is_digit(uint32_t c) { return c >= '0' && c <= '9'; }

/* Does a line starting at p[i..] begin a new block (blank line, heading,
 * list item, table row, quote)? */
static int line_starts_block(const unsigned char *p, size_t len, size_t i)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r')) i++;
    if (i >= len) return 1;
    unsigned char ch = p[i];
    if (ch == '\n' || ch == '#' || ch == '-' || ch == '*' || ch == '|' || ch == '>' || ch == '+')
        return 1;
    if (len - i >= 3 && !memcmp(p + i, "\xe2\x80\xa2", 3)) return 1;   /* • */
    return 0;
}

static zk_rc split_source(ctx *c, int src)
{
    const char *s = c->src[src].text;
    size_t len = c->src[src].len;
    const unsigned char *p = (const unsigned char *)s;
    size_t pos = 0, cpi = 0, start = 0, start_cp = 0;
    uint32_t prev = 0;
    zk_rc rc;
    while (pos < len) {
        uint32_t ch;
        size_t npos = pos + utf8_decode(p + pos, len - pos, &ch), ncpi = cpi + 1;
        int cut = 0;
        if (utf8_is_sentence_end(ch)) {
            uint32_t nc = 0;
            if (npos < len) utf8_decode(p + npos, len - npos, &nc);
            if ((ch == '.' || ch == 0xFF0E) && is_digit(prev) && is_digit(nc)) {
                cut = 0;                                  /* 3.14 */
            } else if (ch < 0x80 && nc && !utf8_is_space(nc) && !is_closer(nc) &&
                       !utf8_is_sentence_end(nc) && !utf8_is_cjk(nc)) {
                cut = 0;                                  /* e.g / example.com */
            } else {
                cut = 1;
                while (npos < len) {                      /* ?!  ……  。」 */
                    size_t k = utf8_decode(p + npos, len - npos, &nc);
                    if (!utf8_is_sentence_end(nc) && !is_closer(nc)) break;
                    npos += k;
                    ncpi++;
                }
            }
        } else if (ch == '\n') {
            cut = line_starts_block(p, len, npos);
        }
        if (!cut && ncpi - start_cp >= MAX_SENT_CP) cut = 1;
        prev = ch;
        pos = npos;
        cpi = ncpi;
        if (cut) {
            if ((rc = add_sentence(c, src, start, pos, start_cp)) != ZK_OK) return rc;
            start = pos;
            start_cp = cpi;
        }
    }
    if (start < len) return add_sentence(c, src, start, len, start_cp);
    return ZK_OK;
}

/* ---- scoring and selection --------------------------------------------- */

static void score_sentences(ctx *c)
{
    double n = (double)c->nsent, total = 0;
    for (size_t i = 0; i < c->nsent; i++)
        for (size_t t = 0; t < c->nq; t++)
            if (c->sent[i].mask & ((uint64_t)1 << t)) c->q[t].df++;
    for (size_t t = 0; t < c->nq; t++) {
        double df = (double)c->q[t].df;
        /* smoothed: the retrieved chunks are all on topic, so a key term
         * found in every sentence must still count */
        c->q[t].w *= 1.0 + log((n + 1.0) / (df + 1.0));
        total += c->q[t].w;
    }
    for (size_t i = 0; i < c->nsent; i++) {
        sentence *s = &c->sent[i];
        double got = 0;
        for (size_t t = 0; t < c->nq; t++)
            if (s->mask & ((uint64_t)1 << t)) got += c->q[t].w;
        s->cov = total > 0 ? got / total : 0;
        /* fragments carry little information; run-ons dilute it */
        double nt = (double)s->ntok, lf = nt >= 6 ? 1.0 : sqrt(nt / 6.0);
        if (nt > 80) lf *= sqrt(80.0 / nt);
        s->score = s->cov * lf * (1.0 + 0.1 / (1.0 + s->src));
    }
}


static int is_duplicate(const ctx *c, const sentence *a, const sentence *b)
{
    const uint64_t *x = c->pool + a->feat_off, *y = c->pool + b->feat_off;
    size_t i = 0, j = 0, common = 0;
    while (i < a->nfeat && j < b->nfeat) {
        if (x[i] == y[j]) { common++; i++; j++; }
        else if (x[i] < y[j]) i++;
        else j++;
    }
    size_t m = ZK_MIN(a->nfeat, b->nfeat);
    return m > 0 && (double)common >= DUP_CONTAINMENT * (double)m;
}

typedef struct {
    double score;
    size_t idx;
} rank_entry;

static int cmp_rank(const void *a, const void *b)
{
    const rank_entry *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static size_t digits(size_t v)
{
    size_t d = 1;
    while (v >= 10) { v /= 10; d++; }
    return d;
}

static zk_rc set_not_found(llm_answer *out, int zh, char *err)
{
    out->not_found = 1;
    out->answer = zk_strdup(zh ? NOT_FOUND_ZH : NOT_FOUND_EN);
    if (!out->answer) return zk_fail(err, ZK_NOMEM, "extractive: out of memory");
    return ZK_OK;
}

zk_rc llm_extractive_answer(const char *question, const llm_source *src, size_t nsrc,
                            const llm_extractive_opts *opts, llm_answer *out, char *err)
{
    ctx c;
    llm_extractive_opts o;
    rank_entry *rank = NULL;
    size_t chosen[64], nchosen = 0;
    zk_buf b;
    zk_rc rc = ZK_OK;

    memset(&c, 0, sizeof c);
    buf_init(&b, 0);
    if (!out) return zk_fail(err, ZK_INVALID, "extractive: NULL output");
    memset(out, 0, sizeof *out);
    if (!question || (nsrc > 0 && !src))
        return zk_fail(err, ZK_INVALID, "extractive: NULL question or sources");
    llm_extractive_opts_default(&o);
    if (opts) {
        if (opts->max_sentences > 0) o.max_sentences = opts->max_sentences;
        if (opts->max_chars > 0) o.max_chars = opts->max_chars;
        o.min_score = opts->min_score;
    }
    if (o.max_sentences > (int)ZK_ARRAY_LEN(chosen)) o.max_sentences = (int)ZK_ARRAY_LEN(chosen);

    size_t qlen = strlen(question);
    int zh = has_cjk(question, qlen);
    c.src = src;
    question_terms(&c, question, qlen);
    if (c.nq == 0 || nsrc == 0) {
        rc = set_not_found(out, zh, err);
        goto out;
    }
    for (size_t i = 0; i < nsrc && i <= INT32_MAX; i++) {
        if (!src[i].text) continue;
        if ((rc = split_source(&c, (int)i)) != ZK_OK) {
            zk_fail(err, rc, "extractive: out of memory");
            goto out;
        }
    }
    if (c.nsent == 0) {
        rc = set_not_found(out, zh, err);
        goto out;
    }
    score_sentences(&c);

    rank = zk_malloc(c.nsent * sizeof *rank);
    if (!rank) {
        rc = zk_fail(err, ZK_NOMEM, "extractive: out of memory");
        goto out;
    }
    for (size_t i = 0; i < c.nsent; i++) {
        rank[i].score = c.sent[i].score;
        rank[i].idx = i;
    }
    qsort(rank, c.nsent, sizeof *rank, cmp_rank);
    const sentence *best = &c.sent[rank[0].idx];
    if (best->cov <= 0 || best->cov < o.min_score) {
        rc = set_not_found(out, zh, err);
        goto out;
    }

    /* greedy pick within the budget; each sentence costs its text, a marker
     * "[k]" and a separating space (upper bounds) */
    size_t marker = 2 + digits(nsrc), used = 0, trunc = SIZE_MAX;
    for (size_t r = 0; r < c.nsent && (int)nchosen < o.max_sentences; r++) {
        const sentence *s = &c.sent[rank[r].idx];
        if (s->cov <= 0 || s->score < NEXT_FRACTION * best->score) break;
        int dup = 0;
        for (size_t k = 0; k < nchosen && !dup; k++) dup = is_duplicate(&c, &c.sent[chosen[k]], s);
        if (dup) continue;
        size_t cost = s->ncp + marker + 1;
        if (used + cost > o.max_chars) {
            if (nchosen > 0) continue;
            /* the best sentence alone is too long: cut it and add "…" */
            trunc = o.max_chars > marker + 2 ? o.max_chars - marker - 2 : 0;
            cost = o.max_chars;
        }
        chosen[nchosen++] = rank[r].idx;
        used += cost;
    }
    qsort(chosen, nchosen, sizeof chosen[0], cmp_size);   /* (source rank, position) */

    out->cited = zk_malloc(nchosen * sizeof *out->cited);
    out->span_start = zk_malloc(nchosen * sizeof *out->span_start);
    out->span_end = zk_malloc(nchosen * sizeof *out->span_end);
    if (!out->cited || !out->span_start || !out->span_end) {
        rc = zk_fail(err, ZK_NOMEM, "extractive: out of memory");
        goto out;
    }
    uint32_t last = 0;
    for (size_t k = 0; k < nchosen; k++) {
        const sentence *s = &c.sent[chosen[k]];
        size_t m = 0;
        while (m < out->ncited && out->cited[m] != s->src) m++;
        if (m == out->ncited) {
            out->cited[m] = s->src;
            out->span_start[m] = s->cp0;
            out->span_end[m] = s->cp1;
            out->ncited++;
        }
        uint32_t first;
        size_t n;
        render(src[s->src].text, s->b0, s->b1, SIZE_MAX, NULL, &n, &first, NULL);
        if (b.len > 0 && !utf8_is_cjk(first) && !cjkish(last) &&
            (rc = buf_putc(&b, ' ')) != ZK_OK)
            goto oom;
        size_t limit = chosen[k] == rank[0].idx ? trunc : SIZE_MAX;
        if ((rc = render(src[s->src].text, s->b0, s->b1, limit, &b, &n, NULL, &last)) != ZK_OK)
            goto oom;
        if (limit != SIZE_MAX && n < s->ncp) {
            if (b.len > 0 && b.data[b.len - 1] == ' ') b.data[--b.len] = '\0';
            if ((rc = buf_puts(&b, "…")) != ZK_OK) goto oom;
            last = 0x2026;
        }
        if ((rc = buf_printf(&b, "[%zu]", m + 1)) != ZK_OK) goto oom;
    }
    out->answer = buf_steal(&b, NULL);
    if (!out->answer) goto oom;
    goto out;
oom:
    rc = zk_fail(err, rc == ZK_OK ? ZK_NOMEM : rc, "extractive: building the answer failed");
out:
    if (rc != ZK_OK) llm_answer_free(out);
    buf_free(&b);
    zk_free(rank);
    zk_free(c.sent);
    zk_free(c.pool);
    return rc;
}
