/* tokenizer.c — the Chinese-aware tokenizer behind FTS5's "zhiku" tokenizer
 * and the query builder. One pass over the input, decoding and folding each
 * code point: alphanumeric runs become (stemmed) words, CJK runs overlapping
 * bigrams. It runs on every byte ingested (~10 MB/s target for the whole
 * pipeline), so it never allocates per token: words are assembled in a fixed
 * buffer inside the tokenizer, the stemmer sees only ASCII-letter words and
 * a small direct-mapped cache answers for the frequent ones. Bulk ingestion
 * runs it in its worker threads and replays the tokens into FTS5 on the
 * writer thread (ret_pretok, at the end of this file). */
#include "tokenizer.h"

#include <stdint.h>
#include <string.h>
#include <libstemmer.h>

#include "utf8.h"

/* Longest word kept, in folded bytes; longer words are truncated (at a
 * character boundary) so a huge run can never overflow the buffer. Index and
 * query truncate the same way, so long words still match each other. */
#define WORD_MAX 64

/* Stem cache: entries (a power of two), indexed by a hash of the word;
 * words longer than STEM_WORD_MAX (rare) always go to the stemmer. 4096
 * entries (180 KB, allocated on the first stem) catch ~95% of the words of
 * English prose. */
#define STEM_CACHE 4096
#define STEM_WORD_MAX 22

typedef struct {
    unsigned char len, stem_len;   /* len 0: empty slot */
    char word[STEM_WORD_MAX];
    char stem[STEM_WORD_MAX];
} stem_entry;

struct ret_tokenizer {
    struct sb_stemmer *stemmer; /* Snowball "english", UTF-8 */
    int unigrams;               /* also index CJK unigrams (colocated) */
    stem_entry *cache;          /* STEM_CACHE entries, allocated on the first stem; NULL: none */
};

/* State of one ret_tokenizer_run() call. */
typedef struct {
    ret_tokenizer *t;
    int for_query;
    void *ctx;
    ret_token_cb cb;
    /* current word: folded bytes, original byte range, whether stemmable */
    char word[WORD_MAX];
    int word_len, word_start, word_end, word_ascii_alpha, in_word;
    int word_full; /* a character was dropped: append nothing more */
    /* current CJK run: previous character (folded UTF-8) and its range */
    char prev[4];
    int prev_len, prev_start, prev_end, cjk_count;
} scan;

ret_tokenizer *ret_tokenizer_new_opts(int unigrams)
{
    ret_tokenizer *t = zk_calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->stemmer = sb_stemmer_new("english", "UTF_8");
    if (!t->stemmer) {
        zk_free(t);
        return NULL;
    }
    t->unigrams = unigrams != 0;
    return t;
}

ret_tokenizer *ret_tokenizer_new(void)
{
    return ret_tokenizer_new_opts(0);
}

void ret_tokenizer_free(ret_tokenizer *t)
{
    if (!t) return;
    sb_stemmer_delete(t->stemmer);
    zk_free(t->cache);
    zk_free(t);
}

/* The stem of word[0..n) (1 <= n <= WORD_MAX) in *out and *out_n, from the
 * cache or the stemmer; valid until the next call. */
static void stem(ret_tokenizer *t, const char *word, int n, const char **out, int *out_n)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    stem_entry *e = NULL;
    for (int i = 0; i < n; i++) h = (h ^ (unsigned char)word[i]) * 16777619u;
    if (n <= STEM_WORD_MAX && (t->cache || (t->cache = zk_calloc(STEM_CACHE, sizeof *t->cache)))) {
        e = &t->cache[h & (STEM_CACHE - 1)];
        if (e->len == n && memcmp(e->word, word, (size_t)n) == 0) {
            *out = e->stem;
            *out_n = e->stem_len;
            return;
        }
    }
    *out = word;
    *out_n = n;
    const sb_symbol *st = sb_stemmer_stem(t->stemmer, (const sb_symbol *)word, n);
    /* NULL only on allocation failure: fall back to the unstemmed word */
    if (!st) return;
    *out = (const char *)st;
    *out_n = sb_stemmer_length(t->stemmer);
    if (e && *out_n > 0 && *out_n <= STEM_WORD_MAX) {
        memcpy(e->word, word, (size_t)n);
        e->len = (unsigned char)n;
        memcpy(e->stem, st, (size_t)*out_n);
        e->stem_len = (unsigned char)*out_n;
    }
}

static int flush_word(scan *s)
{
    if (!s->in_word) return 0;
    s->in_word = 0;
    const char *tok = s->word;
    int ntok = s->word_len;
    if (s->word_ascii_alpha) stem(s->t, s->word, s->word_len, &tok, &ntok);
    if (ntok <= 0) return 0;
    return s->cb(s->ctx, RET_TOK_WORD, tok, ntok, s->word_start, s->word_end);
}

static int flush_cjk(scan *s)
{
    int rc = 0;
    if (s->cjk_count == 1)
        rc = s->cb(s->ctx, RET_TOK_CJK, s->prev, s->prev_len, s->prev_start, s->prev_end);
    else if (s->cjk_count > 1 && s->t->unigrams && !s->for_query)
        rc = s->cb(s->ctx, RET_TOK_CJK_UNI, s->prev, s->prev_len, s->prev_start, s->prev_end);
    s->cjk_count = 0;
    return rc;
}

/* Add one CJK character (folded bytes c[0..n), original range [start,end)). */
static int add_cjk(scan *s, const char *c, int n, int start, int end)
{
    int rc;
    if (s->cjk_count > 0) {
        char bi[8];
        memcpy(bi, s->prev, (size_t)s->prev_len);
        memcpy(bi + s->prev_len, c, (size_t)n);
        if ((rc = s->cb(s->ctx, RET_TOK_CJK, bi, s->prev_len + n, s->prev_start, end)) != 0)
            return rc;
        if (s->t->unigrams && !s->for_query &&
            (rc = s->cb(s->ctx, RET_TOK_CJK_UNI, s->prev, s->prev_len, s->prev_start,
                        s->prev_end)) != 0)
            return rc;
    }
    memcpy(s->prev, c, (size_t)n);
    s->prev_len = n;
    s->prev_start = start;
    s->prev_end = end;
    s->cjk_count++;
    return 0;
}

/* Add one alphanumeric character to the current word. */
static void add_alnum(scan *s, uint32_t cp, int start, int end)
{
    if (!s->in_word) {
        s->in_word = 1;
        s->word_len = 0;
        s->word_start = start;
        s->word_ascii_alpha = 1;
        s->word_full = 0;
    }
    s->word_end = end;
    if (cp >= 0x80 || (cp >= '0' && cp <= '9')) s->word_ascii_alpha = 0;
    if (s->word_full) return;
    if (cp < 0x80) {
        if (s->word_len < WORD_MAX) s->word[s->word_len++] = (char)cp;
        else s->word_full = 1;
    } else {
        /* append only whole characters: truncation stays on a boundary */
        char c[4];
        int n = (int)utf8_encode(cp, c);
        if (s->word_len + n <= WORD_MAX) {
            memcpy(s->word + s->word_len, c, (size_t)n);
            s->word_len += n;
        } else {
            s->word_full = 1;
        }
    }
}

int ret_tokenizer_run(ret_tokenizer *t, const char *text, int len, int for_query,
                      void *ctx, ret_token_cb cb)
{
    if (!t || !text || len <= 0 || !cb) return 0;
    scan s;
    s.t = t;
    s.for_query = for_query;
    s.ctx = ctx;
    s.cb = cb;
    s.in_word = 0;
    s.cjk_count = 0;
    s.word_len = s.prev_len = 0;

    const unsigned char *p = (const unsigned char *)text;
    int pos = 0, rc = 0;
    while (pos < len) {
        uint32_t cp;
        int n;
        if (p[pos] >= 0xE4 && p[pos] <= 0xE9 && pos + 2 < len && (p[pos + 1] & 0xC0) == 0x80 &&
            (p[pos + 2] & 0xC0) == 0x80 &&
            (((uint32_t)(p[pos] & 0x0F) << 12) | ((uint32_t)(p[pos + 1] & 0x3F) << 6)) >= 0x4E00) {
            /* CJK unified ideograph fast path (U+4E00..U+9FFF): it folds to
             * itself and its three bytes are its encoding */
            if (s.in_word && (rc = flush_word(&s)) != 0) return rc;
            if ((rc = add_cjk(&s, text + pos, 3, pos, pos + 3)) != 0) return rc;
            pos += 3;
            continue;
        }
        if (p[pos] < 0x80) { /* ASCII fast path */
            cp = p[pos];
            n = 1;
            if (cp >= 'A' && cp <= 'Z') cp += 32;
        } else {
            n = (int)utf8_decode(p + pos, (size_t)(len - pos), &cp);
            cp = utf8_fold(cp);
        }
        if (utf8_is_alnum(cp)) {
            if (s.cjk_count && (rc = flush_cjk(&s)) != 0) return rc;
            add_alnum(&s, cp, pos, pos + n);
        } else if (cp >= 0x300 && cp <= 0x36F && s.in_word) {
            /* combining diacritic inside a word (decomposed é): drop it,
             * the word continues */
            s.word_end = pos + n;
            s.word_ascii_alpha = 0;
        } else if (utf8_is_cjk(cp)) {
            if (s.in_word && (rc = flush_word(&s)) != 0) return rc;
            char c[4];
            int cn = (int)utf8_encode(cp, c);
            if ((rc = add_cjk(&s, c, cn, pos, pos + n)) != 0) return rc;
        } else {
            if (s.in_word && (rc = flush_word(&s)) != 0) return rc;
            if (s.cjk_count && (rc = flush_cjk(&s)) != 0) return rc;
        }
        pos += n;
    }
    if ((rc = flush_word(&s)) != 0) return rc;
    return flush_cjk(&s);
}

/* ---- FTS5 glue ---------------------------------------------------------- */

typedef struct {
    void *ctx;
    int (*xToken)(void *, int, const char *, int, int, int);
} fts5_fwd;

static int fts5_forward(void *ctx, int kind, const char *tok, int ntok, int start, int end)
{
    fts5_fwd *f = ctx;
    int tflags = kind == RET_TOK_CJK_UNI ? FTS5_TOKEN_COLOCATED : 0;
    return f->xToken(f->ctx, tflags, tok, ntok, start, end);
}

static int fts5_create(void *udata, const char **argv, int argc, Fts5Tokenizer **out)
{
    (void)udata;
    int unigrams = 0;
    *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "unigrams") == 0) unigrams = 1;
        else return SQLITE_ERROR;
    }
    ret_tokenizer *t = ret_tokenizer_new_opts(unigrams);
    if (!t) return SQLITE_NOMEM;
    *out = (Fts5Tokenizer *)t;
    return SQLITE_OK;
}

static void fts5_delete(Fts5Tokenizer *tok)
{
    ret_tokenizer_free((ret_tokenizer *)tok);
}

static int pretok_try(ret_tokenizer *t, void *ctx, int flags, const char *text, int len,
                      int (*xToken)(void *, int, const char *, int, int, int), int *out_rc);

static int fts5_tokenize(Fts5Tokenizer *tok, void *ctx, int flags, const char *text, int len,
                         int (*xToken)(void *, int, const char *, int, int, int))
{
    /* QUERY (with or without PREFIX) tokenizes as a query; DOCUMENT and AUX
     * (highlight/snippet re-tokenizing a stored value) as a document. */
    int rc;
    if (pretok_try((ret_tokenizer *)tok, ctx, flags, text, len, xToken, &rc)) return rc;
    fts5_fwd f = { ctx, xToken };
    return ret_tokenizer_run((ret_tokenizer *)tok, text, len,
                             (flags & FTS5_TOKENIZE_QUERY) != 0, &f, fts5_forward);
}

zk_rc ret__fts5_api(sqlite3 *db, fts5_api **out, char *err)
{
    fts5_api *api = NULL;
    sqlite3_stmt *stmt = NULL;
    *out = NULL;
    if (!db) return zk_fail(err, ZK_INVALID, "fts5: no database");
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &stmt, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "fts5 unavailable: %s", sqlite3_errmsg(db));
    sqlite3_bind_pointer(stmt, 1, &api, "fts5_api_ptr", NULL);
    sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    if (!api || api->iVersion < 2) return zk_fail(err, ZK_DB, "fts5 api not available");
    *out = api;
    return ZK_OK;
}

zk_rc ret_tokenizer_register(sqlite3 *db, char *err)
{
    static fts5_tokenizer tokenizer = { fts5_create, fts5_delete, fts5_tokenize };
    fts5_api *api;
    zk_rc rc = ret__fts5_api(db, &api, err);
    if (rc != ZK_OK) return rc;
    if (api->xCreateTokenizer(api, "zhiku", NULL, &tokenizer, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "register tokenizer zhiku: %s", sqlite3_errmsg(db));
    return ZK_OK;
}

/* ---- pre-tokenized text ----------------------------------------------------
 * Tokens are stored back to back, each as
 *   flags:u8  varint(start - previous start)  varint(end - start)
 *   [varint(len) bytes]   unless SAME: the token is text[start..end)
 * flags: FTS5_TOKEN_COLOCATED (0x01) and SAME (0x80). CJK bigrams and
 * lowercase words the stemmer keeps are SAME, so a text's tokens take about
 * its own size (1.5x for English). A ret_pretok is capped at PRETOK_MAX
 * bytes; texts past the cap are left to the writer. */

#define PRETOK_MAX ((size_t)64 << 20)
#define TOKEN_MAX_HEAD 16   /* flags + three 5-byte varints */
#define SAME 0x80

typedef struct {
    const char *text;   /* not owned */
    size_t len;
    size_t off, end;    /* its tokens: buf[off..end) */
} pretok_text;

struct ret_pretok {
    ret_tokenizer *t;   /* tokenizes for ret_pretok_add(); not owned */
    int unigrams;
    pretok_text *texts;
    size_t ntexts, cap;
    unsigned char *buf;
    size_t len, buf_cap;
    int full;           /* PRETOK_MAX reached: later texts are not added */
    int failed;         /* ret_pretok_add: out of memory */
    const char *adding; /* ret_pretok_add: the text being tokenized */
    int32_t prev_start; /* ret_pretok_add: start of the previous token */
    size_t next;        /* replay: the text expected next */
    size_t replayed;    /* texts replayed */
};

/* The writer thread's active ret_pretok (C11 thread storage). */
static _Thread_local ret_pretok *active_pretok;

ret_pretok *ret_pretok_new(ret_tokenizer *t)
{
    if (!t) return NULL;
    ret_pretok *p = zk_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->t = t;
    p->unigrams = t->unigrams;
    return p;
}

void ret_pretok_free(ret_pretok *p)
{
    if (!p) return;
    if (active_pretok == p) active_pretok = NULL;
    zk_free(p->texts);
    zk_free(p->buf);
    zk_free(p);
}

static unsigned char *put_varint(unsigned char *q, uint32_t v)
{
    while (v >= 0x80) {
        *q++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *q++ = (unsigned char)v;
    return q;
}

static const unsigned char *get_varint(const unsigned char *q, const unsigned char *end, uint32_t *v)
{
    uint32_t x = 0;
    for (int shift = 0; q < end && shift < 35; shift += 7) {
        unsigned char b = *q++;
        x |= (uint32_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return q;
        }
    }
    return NULL;
}

static int pretok_collect(void *ctx, int kind, const char *tok, int ntok, int start, int end)
{
    ret_pretok *p = ctx;
    /* offsets only grow (a colocated unigram repeats its bigram's start) */
    if (start < p->prev_start || end < start || ntok < 0) {
        p->full = 1;   /* never happens; leave the text to the writer */
        return 1;
    }
    int same = ntok == end - start && memcmp(tok, p->adding + start, (size_t)ntok) == 0;
    size_t need = TOKEN_MAX_HEAD + (same ? 0 : (size_t)ntok);
    if (p->len + need > PRETOK_MAX) {
        p->full = 1;
        return 1;
    }
    if (p->len + need > p->buf_cap) {
        size_t cap = p->buf_cap ? p->buf_cap * 2 : (size_t)16 << 10;
        while (cap < p->len + need) cap *= 2;
        unsigned char *b = zk_realloc(p->buf, cap);
        if (!b) {
            p->failed = 1;
            return 1;
        }
        p->buf = b;
        p->buf_cap = cap;
    }
    unsigned char *q = p->buf + p->len;
    *q++ = (unsigned char)((kind == RET_TOK_CJK_UNI ? FTS5_TOKEN_COLOCATED : 0) | (same ? SAME : 0));
    q = put_varint(q, (uint32_t)(start - p->prev_start));
    q = put_varint(q, (uint32_t)(end - start));
    if (!same) {
        q = put_varint(q, (uint32_t)ntok);
        memcpy(q, tok, (size_t)ntok);
        q += ntok;
    }
    p->prev_start = start;
    p->len = (size_t)(q - p->buf);
    return 0;
}

zk_rc ret_pretok_add(ret_pretok *p, const char *text, size_t len, char *err)
{
    if (p->full || len == 0 || len > INT32_MAX) return ZK_OK;   /* the writer tokenizes it */
    if (p->ntexts == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        pretok_text *t = zk_realloc(p->texts, cap * sizeof *t);
        if (!t) return zk_fail(err, ZK_NOMEM, "out of memory");
        p->texts = t;
        p->cap = cap;
    }
    size_t off = p->len;
    p->failed = 0;
    p->adding = text;
    p->prev_start = 0;
    ret_tokenizer_run(p->t, text, (int)len, 0, p, pretok_collect);
    p->adding = NULL;
    if (p->failed) {
        p->len = off;
        return zk_fail(err, ZK_NOMEM, "out of memory");
    }
    if (p->full) {
        p->len = off;
        return ZK_OK;
    }
    p->texts[p->ntexts++] = (pretok_text){text, len, off, p->len};
    return ZK_OK;
}

size_t ret_pretok_replayed(const ret_pretok *p) { return p ? p->replayed : 0; }

void ret_pretok_activate(ret_pretok *p)
{
    if (p) p->next = 0;
    active_pretok = p;
}

/* Feed the stored tokens of e (whose text equals text[0..len)) to xToken. */
static int replay(const ret_pretok *p, const pretok_text *e, const char *text, int len, void *ctx,
                  int (*xToken)(void *, int, const char *, int, int, int))
{
    const unsigned char *q = p->buf + e->off, *end = p->buf + e->end;
    uint32_t start = 0;
    while (q < end) {
        uint32_t delta, span, n;
        unsigned char flags = *q++;
        if (!(q = get_varint(q, end, &delta)) || !(q = get_varint(q, end, &span))) return SQLITE_CORRUPT;
        start += delta;
        if (start > (uint32_t)len || span > (uint32_t)len - start) return SQLITE_CORRUPT;
        const char *tok = text + start;
        n = span;
        if (!(flags & SAME)) {
            if (!(q = get_varint(q, end, &n)) || n > (size_t)(end - q)) return SQLITE_CORRUPT;
            tok = (const char *)q;
            q += n;
        }
        int rc = xToken(ctx, flags & FTS5_TOKEN_COLOCATED, tok, (int)n, (int)start, (int)(start + span));
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

/* Replay the tokens of a document text equal to the next text (or the one
 * after) of the active ret_pretok: returns 1 with FTS5's code in *out_rc.
 * Returns 0 (tokenize as usual) for anything else. */
static int pretok_try(ret_tokenizer *t, void *ctx, int flags, const char *text, int len,
                      int (*xToken)(void *, int, const char *, int, int, int), int *out_rc)
{
    ret_pretok *p = active_pretok;
    if (!p || !(flags & FTS5_TOKENIZE_DOCUMENT) || (flags & FTS5_TOKENIZE_QUERY) || len <= 0 ||
        p->unigrams != t->unigrams)
        return 0;
    for (size_t i = p->next; i < p->ntexts && i < p->next + 2; i++) {
        const pretok_text *e = &p->texts[i];
        /* the same buffer when the writer bound it SQLITE_STATIC (FTS5 sees it uncopied) */
        if (e->len != (size_t)len || (e->text != text && memcmp(e->text, text, (size_t)len) != 0)) continue;
        p->next = i + 1;
        p->replayed++;
        *out_rc = replay(p, e, text, len, ctx, xToken);
        return 1;
    }
    return 0;
}
