/* tokenizer.c — the Chinese-aware tokenizer behind FTS5's "zhiku" tokenizer
 * and the query builder. One pass over the input, decoding and folding each
 * code point: alphanumeric runs become (stemmed) words, CJK runs overlapping
 * bigrams. It runs on every byte ingested (~10 MB/s target for the whole
 * pipeline), so it never allocates per token: words are assembled in a fixed
 * buffer inside the tokenizer and the stemmer sees only ASCII-letter words. */
#include "tokenizer.h"

#include <string.h>
#include <libstemmer.h>

#include "utf8.h"

/* Longest word kept, in folded bytes; longer words are truncated (at a
 * character boundary) so a huge run can never overflow the buffer. Index and
 * query truncate the same way, so long words still match each other. */
#define WORD_MAX 64

struct ret_tokenizer {
    struct sb_stemmer *stemmer; /* Snowball "english", UTF-8 */
    int unigrams;               /* also index CJK unigrams (colocated) */
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
    zk_free(t);
}

static int flush_word(scan *s)
{
    if (!s->in_word) return 0;
    s->in_word = 0;
    const char *tok = s->word;
    int ntok = s->word_len;
    if (s->word_ascii_alpha) {
        const sb_symbol *st = sb_stemmer_stem(s->t->stemmer, (const sb_symbol *)s->word,
                                              s->word_len);
        /* NULL only on allocation failure: fall back to the unstemmed word */
        if (st) {
            tok = (const char *)st;
            ntok = sb_stemmer_length(s->t->stemmer);
        }
    }
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

static int fts5_tokenize(Fts5Tokenizer *tok, void *ctx, int flags, const char *text, int len,
                         int (*xToken)(void *, int, const char *, int, int, int))
{
    /* QUERY (with or without PREFIX) tokenizes as a query; DOCUMENT and AUX
     * (highlight/snippet re-tokenizing a stored value) as a document. */
    fts5_fwd f = { ctx, xToken };
    return ret_tokenizer_run((ret_tokenizer *)tok, text, len,
                             (flags & FTS5_TOKENIZE_QUERY) != 0, &f, fts5_forward);
}

zk_rc ret_tokenizer_register(sqlite3 *db, char *err)
{
    fts5_api *api = NULL;
    sqlite3_stmt *stmt = NULL;
    zk_rc rc = ZK_OK;
    static fts5_tokenizer tokenizer = { fts5_create, fts5_delete, fts5_tokenize };

    if (!db) return zk_fail(err, ZK_INVALID, "register tokenizer: no database");
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &stmt, NULL) != SQLITE_OK) {
        rc = zk_fail(err, ZK_DB, "fts5 unavailable: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_pointer(stmt, 1, &api, "fts5_api_ptr", NULL);
    sqlite3_step(stmt);
    if (!api || api->iVersion < 2) {
        rc = zk_fail(err, ZK_DB, "fts5 api not available");
        goto out;
    }
    if (api->xCreateTokenizer(api, "zhiku", NULL, &tokenizer, NULL) != SQLITE_OK) {
        rc = zk_fail(err, ZK_DB, "register tokenizer zhiku: %s", sqlite3_errmsg(db));
        goto out;
    }
out:
    sqlite3_finalize(stmt);
    return rc;
}
