/* search.c — hybrid retrieval (see search.h). Per query: tokenize and build
 * the FTS5 OR-query, run BM25 top-K in SQL, embed the query and run FAISS
 * top-K, fuse by weighted RRF, then load the winners' text and metadata and
 * make a snippet around the first matched terms. */
#include "retrieval/search.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "utf8.h"
#include "retrieval/docmap.h"
#include "retrieval/rank.h"
#include "retrieval/tokenizer.h"
#include "retrieval/stmt.h"

zk_rc ret_mode_parse(const char *s, ret_mode *out)
{
    if (!strcmp(s, "hybrid")) *out = RET_MODE_HYBRID;
    else if (!strcmp(s, "bm25")) *out = RET_MODE_BM25;
    else if (!strcmp(s, "vector")) *out = RET_MODE_VECTOR;
    else return ZK_INVALID;
    return ZK_OK;
}

const char *ret_mode_name(ret_mode m)
{
    return m == RET_MODE_BM25 ? "bm25" : m == RET_MODE_VECTOR ? "vector" : "hybrid";
}

void ret_search_opts_init(ret_search_opts *o, const zk_config *cfg)
{
    memset(o, 0, sizeof *o);
    o->mode = RET_MODE_HYBRID;
    o->top_k = (int)zk_config_int(cfg, "search", "top_k");
    o->bm25_k = (int)zk_config_int(cfg, "search", "bm25_k");
    o->vector_k = (int)zk_config_int(cfg, "search", "vector_k");
    o->rrf_k = zk_config_double(cfg, "search", "rrf_k");
    o->w_bm25 = zk_config_double(cfg, "search", "bm25_weight");
    o->w_vector = zk_config_double(cfg, "search", "vector_weight");
    o->heading_weight = zk_config_double(cfg, "search", "heading_weight");
    o->max_query_terms = (int)zk_config_int(cfg, "search", "max_query_terms");
    o->bm25_budget = (int)zk_config_int(cfg, "search", "bm25_budget");
    o->bm25_max_rows = (int)zk_config_int(cfg, "search", "bm25_max_rows");
    o->bm25_max_matches = (int)zk_config_int(cfg, "search", "bm25_max_matches");
    o->kb = 1;
}

zk_rc ret_search_add_filter(ret_search_opts *o, char *kv, char *err)
{
    char *eq = strchr(kv, '=');
    if (!eq || eq == kv) return zk_fail(err, ZK_INVALID, "filter '%s' is not KEY=VALUE", kv);
    if (o->nfilters >= RET_MAX_FILTERS) return zk_fail(err, ZK_INVALID, "at most %d filters", RET_MAX_FILTERS);
    *eq = '\0';
    for (const char *p = kv; *p; p++)
        if (!(*p == '_' || *p == '-' || *p == '.' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z')))
            return zk_fail(err, ZK_INVALID, "filter key '%s' may only hold letters, digits, '_', '-' and '.'", kv);
    o->filter_key[o->nfilters] = kv;
    o->filter_value[o->nfilters] = eq + 1;
    o->nfilters++;
    return ZK_OK;
}

/* " AND <acl> AND json_extract(d.metadata, :fkN) = :fvN ..." for a query
 * with documents aliased d. */
static int doc_filter_sql(zk_buf *sql, const ret_search_opts *o)
{
    int bad = buf_puts(sql, " AND" RET_ACL_PREDICATE) != ZK_OK;
    for (int i = 0; i < o->nfilters; i++)
        bad |= buf_printf(sql, " AND json_extract(d.metadata, :fk%d) = :fv%d", i, i) != ZK_OK;
    return bad;
}

static void doc_filter_bind(sqlite3_stmt *st, const ret_search_opts *o)
{
    char name[16], path[160];
    ret__acl_bind(st, o->caller);
    for (int i = 0; i < o->nfilters; i++) {
        snprintf(name, sizeof name, ":fk%d", i);
        snprintf(path, sizeof path, "$.\"%s\"", o->filter_key[i]);
        sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, name), path, -1, SQLITE_TRANSIENT);
        snprintf(name, sizeof name, ":fv%d", i);
        sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, name), o->filter_value[i], -1, SQLITE_STATIC);
    }
}

/* ---- query construction ---------------------------------------------------- */

typedef struct {
    const char *text;
    zk_buf *seen;      /* "\x01tok\x01tok..." for dedup */
    char **phrases;    /* quoted FTS5 phrases, in query order */
    int nterms, max;
    int failed;
} qctx;

static int add_term(void *vctx, int kind, const char *tok, int ntok, int start, int end)
{
    qctx *c = vctx;
    (void)kind;
    if (c->nterms >= c->max) return 0;
    /* dedup on the normalised token */
    char key[80];
    if (ntok > 70) ntok = 70;
    key[0] = '\x01';
    memcpy(key + 1, tok, (size_t)ntok);
    key[ntok + 1] = '\x01';
    key[ntok + 2] = '\0';
    if (c->seen->len && memmem(c->seen->data, c->seen->len, key, (size_t)ntok + 2)) return 0;
    if (buf_append(c->seen, key, (size_t)ntok + 2) != ZK_OK) { c->failed = 1; return 1; }
    /* quote the original text of the token; FTS5 re-tokenizes it with the
     * same tokenizer, which yields this very token */
    zk_buf q;
    int bad = 0;
    buf_init(&q, 1 << 12);
    bad |= buf_putc(&q, '"') != ZK_OK;
    for (int i = start; i < end; i++) {
        if (c->text[i] == '"') bad |= buf_putc(&q, '"') != ZK_OK;
        bad |= buf_putc(&q, c->text[i]) != ZK_OK;
    }
    bad |= buf_putc(&q, '"') != ZK_OK;
    if (bad || !(c->phrases[c->nterms] = buf_steal(&q, NULL))) {
        buf_free(&q);
        c->failed = 1;
        return 1;
    }
    c->nterms++;
    return 0;
}

static void free_phrases(char **p, int n)
{
    for (int i = 0; p && i < n; i++) zk_free(p[i]);
    zk_free(p);
}

/* The query's distinct terms as quoted FTS5 phrases, at most max_terms. */
static zk_rc query_phrases(const char *query, int max_terms, char ***out, int *out_n, char *err)
{
    zk_buf seen;
    int max = max_terms > 0 ? max_terms : 32;
    *out = NULL;
    *out_n = 0;
    char **ph = zk_calloc((size_t)max, sizeof *ph);
    ret_tokenizer *t = ret_tokenizer_new();
    if (!ph || !t) {
        zk_free(ph);
        ret_tokenizer_free(t);
        return zk_fail(err, ZK_NOMEM, "out of memory");
    }
    buf_init(&seen, 1 << 20);
    qctx c = {query, &seen, ph, 0, max, 0};
    ret_tokenizer_run(t, query, (int)strlen(query), 1, &c, add_term);
    ret_tokenizer_free(t);
    buf_free(&seen);
    if (c.failed) {
        free_phrases(ph, c.nterms);
        return zk_fail(err, ZK_NOMEM, "out of memory");
    }
    *out = ph;
    *out_n = c.nterms;
    return ZK_OK;
}

static char *join_or(char **ph, const int *idx, int n, const char *op)
{
    zk_buf q;
    int bad = 0;
    buf_init(&q, 1 << 20);
    for (int i = 0; i < n; i++) {
        if (i) bad |= buf_puts(&q, op) != ZK_OK;
        bad |= buf_puts(&q, ph[idx ? idx[i] : i]) != ZK_OK;
    }
    if (bad) { buf_free(&q); return NULL; }
    return buf_steal(&q, NULL);
}

/* "(a) AND (b)", allocated; NULL when out of memory. */
static char *and_of(const char *a, const char *b)
{
    size_t len = strlen(a) + strlen(b) + 16;
    char *q = zk_malloc(len);
    if (q) snprintf(q, len, "(%s) AND (%s)", a, b);
    return q;
}

zk_rc ret__fts_query(const char *query, int max_terms, char **out, char *err)
{
    char **ph;
    int n;
    zk_rc rc = query_phrases(query, max_terms, &ph, &n, err);
    if (rc != ZK_OK) return rc;
    *out = n ? join_or(ph, NULL, n, " OR ") : zk_strdup("");
    free_phrases(ph, n);
    return *out ? ZK_OK : zk_fail(err, ZK_NOMEM, "out of memory");
}

/* Document frequency of one phrase: cached, else counted (a walk of its
 * posting list, paid once per term while the corpus grows by < 10%). */
static zk_rc phrase_df(sqlite3 *db, ret_termstats *ts, int64_t nrows, const char *phrase, int64_t *df, char *err)
{
    if (ret_termstats_get(ts, phrase, nrows, df)) return ZK_OK;
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    if (ret__prepare(db, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", &st) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "term statistics: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, phrase, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *df = sqlite3_column_int64(st, 0);
        ret_termstats_put(ts, phrase, nrows, *df);
    } else {
        rc = zk_fail(err, ZK_DB, "term statistics: %s", sqlite3_errmsg(db));
    }
    ret__release(st);
    return rc;
}

typedef struct {
    int64_t df;
    int idx;             /* position in the query */
} term_df;

static int cmp_term_df(const void *a, const void *b)
{
    const term_df *x = a, *y = b;
    if (x->df != y->df) return x->df < y->df ? -1 : 1;
    return x->idx - y->idx;
}

zk_rc ret__bm25_plan(sqlite3 *db, ret_termstats *ts, int64_t nrows, const char *query, int max_terms,
                     int budget, char **out_match, double **out_w, int *out_nw, int64_t *out_bound, char *err)
{
    char **ph = NULL;
    int n = 0, nlive = 0, nmatch = 0;
    term_df *t = NULL;       /* live terms, rarest first */
    int *order = NULL;       /* their positions in the query, same order */
    double *w = NULL;
    char *matchers = NULL, *all = NULL;
    zk_rc rc = query_phrases(query, max_terms, &ph, &n, err);
    *out_match = NULL;
    *out_w = NULL;
    *out_nw = 0;
    *out_bound = 0;
    if (rc != ZK_OK) return rc;
    t = zk_calloc((size_t)n + 1, sizeof *t);
    order = zk_calloc((size_t)n + 1, sizeof *order);
    w = zk_calloc((size_t)n * 2 + 1, sizeof *w);
    if (!t || !order || !w) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    for (int i = 0; i < n; i++) {
        int64_t df;
        if ((rc = phrase_df(db, ts, nrows, ph[i], &df, err)) != ZK_OK) goto out;
        if (df > 0) t[nlive++] = (term_df){df, i};   /* terms found nowhere add nothing */
    }
    /* A term in half the rows or more has BM25's floor IDF (rank.c), one
     * in more than ~38% of them little more (RET_RANK_IDF_DROP): it adds
     * (next to) nothing to any score, yet FTS5 would walk its whole list
     * for every candidate and, as a matcher, it would only drop rows. Past
     * the budget such terms go, unless nothing else is left. */
    int nkeep = 0;
    for (int i = 0; i < nlive; i++)
        if (t[i].df <= budget || ret_rank_idf(nrows, t[i].df) >= RET_RANK_IDF_DROP) t[nkeep++] = t[i];
    if (nkeep > 0) nlive = nkeep;
    if (nlive == 0) {
        *out_match = zk_strdup("");
        if (!*out_match) rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    qsort(t, (size_t)nlive, sizeof *t, cmp_term_df);
    for (int i = 0; i < nlive; i++) order[i] = t[i].idx;
    /* match on the rarest terms while their rows fit the budget; when even
     * the rarest alone does not, require the rarest few together */
    int64_t sum = 0;
    const char *op = " OR ";
    while (nmatch < nlive && sum + t[nmatch].df <= budget) sum += t[nmatch++].df;
    if (nmatch == 0) {
        double est = (double)t[0].df;
        nmatch = 1;
        while (nmatch < nlive && est > budget) est *= (double)t[nmatch++].df / (double)(nrows > 0 ? nrows : 1);
        op = " AND ";
    }
    int nw = 0;
    if (nmatch == nlive && (op[1] == 'O' || nlive == 1)) {
        /* all terms are selective, or one term is all there is: the plain
         * OR query, every phrase scores */
        if (!(all = join_or(ph, order, nlive, " OR "))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
        for (int i = 0; i < nlive; i++) w[nw++] = (double)t[i].df;
        *out_bound = op[1] == 'O' ? sum : t[0].df;
        *out_match = all;
        all = NULL;
    } else if (op[1] == 'O') {
        /* "(r1 OR r2) AND (every term)": the rare terms select rows and the
         * second group scores them (the matchers' own phrases weigh 0) */
        if (!(matchers = join_or(ph, order, nmatch, op)) || !(all = join_or(ph, order, nlive, " OR "))) {
            rc = zk_fail(err, ZK_NOMEM, "out of memory");
            goto out;
        }
        if (!(*out_match = and_of(matchers, all))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
        for (int i = 0; i < nmatch; i++) w[nw++] = 0.0;
        for (int i = 0; i < nlive; i++) w[nw++] = (double)t[i].df;
        *out_bound = sum;
    } else {
        /* "(m1 AND m2) AND (m1 OR rest...)": every matched row holds every
         * required term, so they score from their own phrases; the second
         * group only lets the rest score and repeats the rarest term (its
         * list is the short one) so that it holds for every matched row.
         * Repeating all of them walked each long list twice: twice the
         * time of the AND alone. Nothing left over: the AND alone. */
        if (!(matchers = join_or(ph, order, nmatch, op))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
        for (int i = 0; i < nmatch; i++) w[nw++] = (double)t[i].df;
        *out_bound = t[0].df;   /* every matched row holds the rarest */
        if (nmatch == nlive) {
            *out_match = matchers;
            matchers = NULL;
        } else {
            order[nmatch - 1] = order[0];   /* the group: the rarest, then the rest */
            if (!(all = join_or(ph, order + nmatch - 1, nlive - nmatch + 1, " OR "))) {
                rc = zk_fail(err, ZK_NOMEM, "out of memory");
                goto out;
            }
            if (!(*out_match = and_of(matchers, all))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
            w[nw++] = 0.0;
            for (int i = nmatch; i < nlive; i++) w[nw++] = (double)t[i].df;
        }
    }
    *out_w = w;
    *out_nw = nw;
    w = NULL;
out:
    free_phrases(ph, n);
    zk_free(t);
    zk_free(order);
    zk_free(w);
    zk_free(matchers);
    zk_free(all);
    return rc;
}

/* ---- candidates and fusion ------------------------------------------------- */

typedef struct {
    int64_t chunk_id;
    int bm25_rank, vector_rank;
    double bm25, sim, score;
} cand;

static cand *find_cand(cand *c, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (c[i].chunk_id == id) return &c[i];
    return NULL;
}

static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return x->chunk_id < y->chunk_id ? -1 : x->chunk_id > y->chunk_id;
}

static zk_rc bm25_candidates(ret_store *s, const char *query, const ret_search_opts *o, const ret_view *view,
                             int by_view, cand *c, size_t *n, char *err)
{
    char *match = NULL;
    double *w = NULL;
    int nw = 0;
    int64_t bound;
    sqlite3 *db = ret_store_db(s);
    zk_rc rc = ret__bm25_plan(db, ret__store_termstats(s), (int64_t)view->total_chunks, query,
                              o->max_query_terms, o->bm25_budget, &match, &w, &nw, &bound, err);
    if (rc != ZK_OK) return rc;
    if (!*match) { zk_free(match); zk_free(w); return ZK_OK; }
    /* Ranked rows are capped at bm25_max_rows, the newest first (FTS5
     * walks its lists backwards for ORDER BY rowid DESC and stops at the
     * limit): only a query of very common words alone matches more, and
     * ranking every one of its matches is what made BM25's slowest queries
     * take hundreds of milliseconds at a million chunks. That cap counts
     * rows the caller may read; the walk itself stops after
     * bm25_max_matches matches, so a caller who reads few of a query's
     * matches does not walk all of them looking for readable ones (a
     * common-word query walked ~35,000 rows for a user allowed 1%). Only
     * readable rows are ranked (CASE evaluates zk_bm25 for them alone);
     * the innermost query runs as a co-routine the caps stop early. */
    /* never below the budget: a query whose rare terms fit it ranks them all */
    int64_t cap = o->bm25_max_rows > 0 ? ZK_MAX(o->bm25_max_rows, o->bm25_budget) : -1;
    int64_t walk = o->bm25_max_matches > 0 ? ZK_MAX(o->bm25_max_matches, ZK_MAX(cap, o->bm25_budget)) : -1;
    /* When no cap can bind (the plan's bound on its matches is within
     * both), every match is ranked whichever way the lists are walked, so
     * they are walked forwards: FTS5 seeks forwards through a long list
     * cheaper than backwards, where it decodes every leaf it enters whole
     * to step back through it (BM25 p50 at 1.25M chunks 3.2-3.6 -> 2.6-2.7
     * ms). Ties are broken newest first either way. The bound rests on
     * cached document frequencies (rank.h), which lag the rows added
     * since: a term that became common meanwhile may have its oldest
     * matches ranked once instead of its newest, until the cache refreshes. */
    int forwards = (cap < 0 || bound <= cap) && (walk < 0 || bound <= walk);
    sqlite3_stmt *st = NULL;
    zk_buf sql;
    int bad = 0;
    buf_init(&sql, 1 << 16);
    bad |= buf_puts(&sql, "SELECT rowid, r FROM (SELECT rowid, r FROM (SELECT f.rowid AS rowid, CASE WHEN ") != ZK_OK;
    if (by_view) {
        /* the access map decides per matched row: no joins */
        bad |= buf_puts(&sql, "zk_chunk_ok(f.rowid, :view)") != ZK_OK;
    } else {
        bad |= buf_puts(&sql, "EXISTS (SELECT 1 FROM chunks c JOIN documents d ON d.id = c.doc_id "
                              "WHERE c.id = f.rowid AND d.kb_id = :kb") != ZK_OK;
        bad |= doc_filter_sql(&sql, o);
        bad |= buf_puts(&sql, ")") != ZK_OK;
    }
    bad |= buf_puts(&sql, by_view ? " THEN zk_bm25(chunks_fts, :hw, :w, :view)" : " THEN zk_bm25(chunks_fts, :hw, :w)") != ZK_OK;
    bad |= buf_puts(&sql, " END AS r FROM chunks_fts f WHERE chunks_fts MATCH :match ORDER BY f.rowid") != ZK_OK;
    bad |= buf_puts(&sql, forwards ? " LIMIT :walk)" : " DESC LIMIT :walk)") != ZK_OK;
    bad |= buf_puts(&sql, " WHERE r IS NOT NULL LIMIT :cap) ORDER BY r, rowid DESC LIMIT :k") != ZK_OK;
    if (bad) {
        buf_free(&sql);
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    int prc = ret__prepare(db, buf_cstr(&sql), &st);
    buf_free(&sql);
    if (prc != SQLITE_OK) {
        rc = zk_fail(err, ZK_DB, "bm25 query: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, ":match"), match, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, sqlite3_bind_parameter_index(st, ":hw"), o->heading_weight);
    sqlite3_bind_int(st, sqlite3_bind_parameter_index(st, ":k"), o->bm25_k);
    sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":cap"), cap);
    sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":walk"), walk);
    sqlite3_bind_blob(st, sqlite3_bind_parameter_index(st, ":w"), w, (int)(sizeof *w * (size_t)nw), SQLITE_STATIC);
    if (by_view) {
        sqlite3_bind_pointer(st, sqlite3_bind_parameter_index(st, ":view"), (void *)view, RET_VIEW_PTR, NULL);
    } else {
        sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":kb"), o->kb);
        doc_filter_bind(st, o);
    }
    int r, rank = 0;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        cand *x = &c[(*n)++];
        memset(x, 0, sizeof *x);
        x->chunk_id = sqlite3_column_int64(st, 0);
        x->bm25 = -sqlite3_column_double(st, 1);
        x->bm25_rank = ++rank;
    }
    if (r != SQLITE_DONE) rc = zk_fail(err, ZK_DB, "bm25 query: %s", sqlite3_errmsg(db));
out:
    ret__release(st);
    zk_free(match);
    zk_free(w);
    return rc;
}

/* Chunk ids of the kb the caller may read (and that pass the filters),
 * ascending: the vector search's allowed set. */
static zk_rc allowed_chunks(ret_store *s, const ret_search_opts *o, int64_t **out, size_t *out_n, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    zk_buf sql;
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    zk_rc rc = ZK_OK;
    buf_init(&sql, 1 << 16);
    /* driven by the caller's grants (index doc_acl_principal, join order
     * forced with CROSS JOIN), so a caller allowed 1% of the corpus touches
     * 1% of it; the admin (only here with metadata filters) takes the kb */
    int bad = 0;
    if (o->caller->admin) {
        bad |= buf_puts(&sql, "SELECT c.id FROM documents d JOIN chunks c ON c.doc_id = d.id WHERE d.kb_id = :kb");
    } else {
        bad |= buf_puts(&sql, "SELECT DISTINCT c.id FROM json_each(:acl_ids) p CROSS JOIN doc_acl a "
                              "CROSS JOIN documents d CROSS JOIN chunks c WHERE a.principal_id = p.value "
                              "AND d.id = a.doc_id AND c.doc_id = d.id AND d.kb_id = :kb");
    }
    for (int i = 0; i < o->nfilters; i++)
        bad |= buf_printf(&sql, " AND json_extract(d.metadata, :fk%d) = :fv%d", i, i) != ZK_OK;
    bad |= buf_puts(&sql, " ORDER BY c.id") != ZK_OK;
    if (bad) {
        buf_free(&sql);
        return zk_fail(err, ZK_NOMEM, "out of memory");
    }
    int prc = ret__prepare(db, buf_cstr(&sql), &st);
    buf_free(&sql);
    if (prc != SQLITE_OK) return zk_fail(err, ZK_DB, "allowed set: %s", sqlite3_errmsg(db));
    sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":kb"), o->kb);
    doc_filter_bind(st, o);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            int64_t *p = zk_realloc(ids, cap * sizeof *p);
            if (!p) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); break; }
            ids = p;
        }
        ids[n++] = sqlite3_column_int64(st, 0);
    }
    if (rc == ZK_OK && r != SQLITE_DONE) rc = zk_fail(err, ZK_DB, "allowed set: %s", sqlite3_errmsg(db));
    ret__release(st);
    if (rc != ZK_OK) { zk_free(ids); return rc; }
    *out = ids;
    *out_n = n;
    return ZK_OK;
}

/* Vector top-k the view's caller may read. A caller reading most of the kb
 * searches the whole index and drops what it may not read, asking for more
 * while too few survive; a minority reader has its readable chunks scored
 * (ret_vindex_search_allowed). */
static zk_rc view_vector_search(ret_vindex *vi, ret_colidx_team *team, const ret_view *view, const float *q, int k,
                                int64_t *ids, float *scores, int *got, char *err)
{
    if (view->chunks || view->allowed_chunks == 0)
        return ret_vindex_search_allowed_team(vi, team, q, k, view->chunks, view->nchunks, ids, scores, got, err);
    zk_rc rc = ZK_OK;
    /* a caller who may read every chunk of the kb loses none to the
     * filter: k is enough (asking more costs a pruned scan more rescoring) */
    int want = view->admin || view->allowed_chunks >= view->kb_chunks ? k : k + k / 2 + 8;
    int64_t *wi = NULL;
    float *ws = NULL;
    *got = 0;
    for (;;) {
        int n = 0;
        int64_t *pi = zk_realloc(wi, sizeof *wi * (size_t)want);
        if (!pi) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); break; }
        wi = pi;
        float *ps = zk_realloc(ws, sizeof *ws * (size_t)want);
        if (!ps) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); break; }
        ws = ps;
        if ((rc = ret_vindex_search_team(vi, team, q, want, wi, ws, &n, err)) != ZK_OK) break;
        *got = 0;
        for (int i = 0; i < n && *got < k; i++)
            if (ret_view_chunk_ok(view, wi[i])) {
                ids[*got] = wi[i];
                scores[*got] = ws[i];
                (*got)++;
            }
        if (*got >= k || n < want || (size_t)want >= view->kb_chunks) break;
        want *= 4;
    }
    zk_free(wi);
    zk_free(ws);
    return rc;
}

/* The vector half of a search. Its SQLite work (the index's catch-up and
 * read lock, the model check, an allowed list for metadata filters) runs
 * on the calling thread, which owns the connection; embedding and scanning
 * touch no connection, so they run on a second thread while the calling
 * thread does BM25, and the calling thread then helps with what is left of
 * a column index scan (ret_colidx_team; in vector mode it helps from the
 * start). A hybrid query then takes about BM25's time plus what is left
 * of the scan when BM25 ends, shared by two threads (at a million chunks
 * BM25 runs ~1.5x slower beside a scan, which evicts its pages from the
 * shared cache: docs/PERFORMANCE.md). A remote embedder is called before
 * the index is read-locked (a slow provider must not hold back a writer). */
typedef struct {
    ret_store *s;
    llm_embedder *emb;
    const char *query;
    const ret_search_opts *o;
    const ret_view *view;
    ret_vindex *vi;          /* read-locked; NULL: no vectors yet */
    int64_t *allowed;        /* metadata filters: the allowed chunks */
    size_t nallowed;
    float *q;
    int64_t *ids;
    float *scores;
    int got, embedded;
    pthread_t thread;
    int threaded;
    ret_colidx_team *team;   /* NULL: the scan runs alone */
    zk_rc rc;
    char err[ZK_ERRLEN];
} vsearch;

static zk_rc vsearch_embed(vsearch *v)
{
    size_t qlen = strlen(v->query);
    v->embedded = 1;
    return llm_embed(v->emb, 1, &v->query, &qlen, v->q, v->err);
}

static void *vsearch_run(void *arg)
{
    vsearch *v = arg;
    if (v->embedded || (v->rc = vsearch_embed(v)) == ZK_OK) {
        if (v->view)
            v->rc = view_vector_search(v->vi, v->team, v->view, v->q, v->o->vector_k, v->ids, v->scores, &v->got,
                                       v->err);
        else
            v->rc = ret_vindex_search_allowed_team(v->vi, v->team, v->q, v->o->vector_k, v->allowed, v->nallowed,
                                                   v->ids, v->scores, &v->got, v->err);
    }
    if (v->team) ret_colidx_team_close(v->team);
    return NULL;
}

/* Everything up to the scan; the scan (and a local embedding) starts on
 * its own thread. Call vector_finish in any case. */
static zk_rc vector_start(vsearch *v, char *err)
{
    zk_rc rc;
    if (!v->emb) return zk_fail(err, ZK_INVALID, "vector search needs an embedder");
    int dim = llm_embedder_dim(v->emb);
    int local = llm_model_is_builtin(llm_embedder_model(v->emb));
    v->q = zk_malloc(sizeof(float) * (size_t)dim);
    v->ids = zk_malloc(sizeof(int64_t) * (size_t)v->o->vector_k);
    v->scores = zk_malloc(sizeof(float) * (size_t)v->o->vector_k);
    if (!v->q || !v->ids || !v->scores) return zk_fail(err, ZK_NOMEM, "out of memory");
    if (!local && (rc = vsearch_embed(v)) != ZK_OK) return zk_fail(err, rc, "%s", v->err);
    rc = ret_store_vindex_read(v->s, v->o->kb, &v->vi, err);   /* read-locked until vector_finish */
    if (rc == ZK_NOTFOUND) return ZK_OK;                         /* no vectors yet: empty list */
    if (rc != ZK_OK) return rc;
    /* the kb has vectors, so its model is recorded: this only compares */
    if ((rc = ret_kb_check_model(v->s, v->o->kb, llm_embedder_model(v->emb), dim, err)) != ZK_OK) return rc;
    if (!v->view && (rc = allowed_chunks(v->s, v->o, &v->allowed, &v->nallowed, err)) != ZK_OK) return rc;
    v->team = ret_colidx_team_new();   /* none: the scan runs alone */
    if (pthread_create(&v->thread, NULL, vsearch_run, v) == 0) {
        v->threaded = 1;
    } else {
        ret_colidx_team_free(v->team);
        v->team = NULL;
        vsearch_run(v);
    }
    return ZK_OK;
}

/* Help with the scan, wait for it, add its hits to the candidates, release
 * the index. */
static zk_rc vector_finish(vsearch *v, cand *c, size_t *n, zk_rc rc, char *err)
{
    if (v->threaded) {
        if (v->team) ret_colidx_team_help(v->team);
        pthread_join(v->thread, NULL);
    }
    ret_colidx_team_free(v->team);
    if (rc == ZK_OK && v->vi && v->rc != ZK_OK) rc = zk_fail(err, v->rc, "%s", v->err);
    for (int i = 0; rc == ZK_OK && v->vi && i < v->got; i++) {
        if (v->scores[i] <= 0.0f) break;              /* orthogonal: no shared feature */
        cand *x = find_cand(c, *n, v->ids[i]);
        if (!x) {
            x = &c[(*n)++];
            memset(x, 0, sizeof *x);
            x->chunk_id = v->ids[i];
        }
        x->vector_rank = i + 1;
        x->sim = v->scores[i];
    }
    ret_store_vindex_done(v->s, v->vi);
    zk_free(v->q);
    zk_free(v->ids);
    zk_free(v->scores);
    zk_free(v->allowed);
    return rc;
}

/* ---- hits -------------------------------------------------------------------------- */

typedef struct {
    const char *text;
    zk_buf *terms;     /* "\x01tok\x01..." of the query */
    long first;        /* byte offset of the first matching token, -1 */
} snipctx;

static int find_match(void *vctx, int kind, const char *tok, int ntok, int start, int end)
{
    snipctx *c = vctx;
    (void)kind; (void)end;
    char key[80];
    if (ntok > 70) return 0;
    key[0] = '\x01';
    memcpy(key + 1, tok, (size_t)ntok);
    key[ntok + 1] = '\x01';
    if (c->terms->len && memmem(c->terms->data, c->terms->len, key, (size_t)ntok + 2)) {
        c->first = start;
        return 1;
    }
    return 0;
}

static int collect_terms(void *vctx, int kind, const char *tok, int ntok, int start, int end)
{
    zk_buf *b = vctx;
    (void)kind; (void)start; (void)end;
    if (ntok > 70) return 0;
    if (!b->len) buf_putc(b, '\x01');
    buf_append(b, tok, (size_t)ntok);
    buf_putc(b, '\x01');
    return 0;
}

#define SNIPPET_CHARS 200

/* A window of SNIPPET_CHARS code points starting a little before the first
 * of the query's terms (collect_terms, tokenized once per search), with
 * "…" where text was cut. */
static char *make_snippet(ret_tokenizer *t, zk_buf *terms, const char *text)
{
    zk_buf out;
    buf_init(&out, 1 << 16);
    size_t len = strlen(text);
    snipctx c = {text, terms, -1};
    ret_tokenizer_run(t, text, (int)len, 0, &c, find_match);
    const unsigned char *p = (const unsigned char *)text;
    size_t start = 0;
    if (c.first > 0) {
        /* back up ~40 code points from the match, to a character start */
        size_t s = (size_t)c.first;
        int back = 40;
        while (s > 0 && back > 0) {
            s--;
            while (s > 0 && (p[s] & 0xC0) == 0x80) s--;
            back--;
        }
        start = s;
    }
    size_t i = start, n = 0;
    while (i < len && n < SNIPPET_CHARS) {
        uint32_t cp;
        i += utf8_decode(p + i, len - i, &cp);
        n++;
    }
    if (start > 0) buf_puts(&out, "…");
    /* collapse whitespace runs into single spaces */
    int space = 0;
    for (size_t k = start; k < i; k++) {
        char ch = text[k];
        if (ch == '\n' || ch == '\r' || ch == '\t' || ch == ' ') {
            if (!space && out.len) buf_putc(&out, ' ');
            space = 1;
        } else {
            buf_putc(&out, ch);
            space = 0;
        }
    }
    if (i < len) buf_puts(&out, "…");
    return buf_steal(&out, NULL);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    return zk_strdup(v ? v : "");
}

void ret_hits_free(ret_hit *hits, size_t n)
{
    if (!hits) return;
    for (size_t i = 0; i < n; i++) {
        zk_free(hits[i].ext_id);
        zk_free(hits[i].source);
        zk_free(hits[i].title);
        zk_free(hits[i].heading);
        zk_free(hits[i].text);
        zk_free(hits[i].snippet);
    }
    zk_free(hits);
}

zk_rc ret_search(ret_store *s, llm_embedder *emb, const char *query, const ret_search_opts *o,
                 ret_hit **out_hits, size_t *out_n, char *err)
{
    zk_rc rc = ZK_OK;
    *out_hits = NULL;
    *out_n = 0;
    if (!o->caller) return zk_fail(err, ZK_INVALID, "search without a caller");
    if (o->top_k <= 0) return ZK_OK;
    size_t cap = (size_t)ZK_MAX(o->bm25_k, 0) + (size_t)ZK_MAX(o->vector_k, 0) + 1;
    cand *c = zk_calloc(cap, sizeof *c);
    ret_hit *hits = NULL;
    size_t n = 0, nh = 0;
    sqlite3_stmt *st = NULL;
    ret_tokenizer *t = NULL;
    zk_buf terms;   /* the query's terms, for the snippets */
    ret_view view = {0};
    int by_view = o->nfilters == 0;   /* metadata filters go through SQL */
    if (!c) return zk_fail(err, ZK_NOMEM, "out of memory");
    buf_init(&terms, 1 << 16);

    if ((rc = ret_docmap_view(ret__store_docmap(s), ret_store_db(s), o->caller, o->kb,
                              by_view && o->mode != RET_MODE_BM25, &view, err)) != ZK_OK)
        goto out;
    int want_bm25 = o->mode != RET_MODE_VECTOR && o->bm25_k > 0, want_vec = o->mode != RET_MODE_BM25 && o->vector_k > 0;
    if (want_vec) {
        /* BM25's candidates come first in c (fusion is order-independent,
         * ties are broken by chunk id), the vector hits are merged after */
        vsearch v = {.s = s, .emb = emb, .query = query, .o = o, .view = by_view ? &view : NULL};
        rc = vector_start(&v, err);
        if (rc == ZK_OK && want_bm25) rc = bm25_candidates(s, query, o, &view, by_view, c, &n, err);
        if ((rc = vector_finish(&v, c, &n, rc, err)) != ZK_OK) goto out;
    } else if (want_bm25 && (rc = bm25_candidates(s, query, o, &view, by_view, c, &n, err)) != ZK_OK) {
        goto out;
    }
    ret_view_release(&view);

    for (size_t i = 0; i < n; i++) {
        double sc = 0;
        if (c[i].bm25_rank) sc += (o->mode == RET_MODE_HYBRID ? o->w_bm25 : 1.0) / (o->rrf_k + c[i].bm25_rank);
        if (c[i].vector_rank) sc += (o->mode == RET_MODE_HYBRID ? o->w_vector : 1.0) / (o->rrf_k + c[i].vector_rank);
        c[i].score = sc;
    }
    qsort(c, n, sizeof *c, cmp_cand);

    size_t want = ZK_MIN(n, (size_t)o->top_k);
    hits = zk_calloc(want ? want : 1, sizeof *hits);
    t = ret_tokenizer_new();
    if (!hits || !t) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    if (!o->ids_only) ret_tokenizer_run(t, query, (int)strlen(query), 1, &terms, collect_terms);
    sqlite3 *db = ret_store_db(s);
    {
        /* defence in depth: every candidate is re-checked against the
         * caller's permissions (and the filters) as it is loaded */
        zk_buf sql;
        buf_init(&sql, 1 << 16);
        int bad = buf_puts(&sql, "SELECT c.doc_id, c.ordinal, c.text, c.heading, c.page, c.start_char, "
                                 "c.end_char, d.ext_id, d.source, d.title FROM chunks c "
                                 "JOIN documents d ON d.id = c.doc_id WHERE c.id = :chunk AND d.kb_id = :kb") != ZK_OK;
        if (bad | doc_filter_sql(&sql, o)) {
            buf_free(&sql);
            rc = zk_fail(err, ZK_NOMEM, "out of memory");
            goto out;
        }
        int prc = ret__prepare(db, buf_cstr(&sql), &st);
        buf_free(&sql);
        if (prc != SQLITE_OK) {
            rc = zk_fail(err, ZK_DB, "load hits: %s", sqlite3_errmsg(db));
            goto out;
        }
        doc_filter_bind(st, o);
    }
    /* Candidates whose chunk vanished (a concurrent delete) are skipped. */
    for (size_t i = 0; i < n && nh < want; i++) {
        sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":chunk"), c[i].chunk_id);
        sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":kb"), o->kb);
        int r = sqlite3_step(st);
        if (r != SQLITE_ROW && r != SQLITE_DONE) {
            rc = zk_fail(err, ZK_DB, "load hits: %s", sqlite3_errmsg(db));
            goto out;
        }
        if (r == SQLITE_ROW) {
            ret_hit *h = &hits[nh++];
            h->chunk_id = c[i].chunk_id;
            h->doc_id = sqlite3_column_int64(st, 0);
            h->ordinal = sqlite3_column_int(st, 1);
            h->text = o->ids_only ? zk_strdup("") : col_dup(st, 2);
            h->heading = col_dup(st, 3);
            h->page = sqlite3_column_int(st, 4);
            h->start = sqlite3_column_int64(st, 5);
            h->end = sqlite3_column_int64(st, 6);
            h->ext_id = col_dup(st, 7);
            h->source = col_dup(st, 8);
            h->title = col_dup(st, 9);
            h->score = c[i].score;
            h->bm25_rank = c[i].bm25_rank;
            h->vector_rank = c[i].vector_rank;
            h->bm25 = c[i].bm25;
            h->vector_sim = c[i].sim;
            h->snippet = !h->text ? NULL : o->ids_only ? zk_strdup("") : make_snippet(t, &terms, h->text);
            if (!h->text || !h->heading || !h->ext_id || !h->source || !h->title || !h->snippet) {
                rc = zk_fail(err, ZK_NOMEM, "out of memory");
                goto out;
            }
        }
        sqlite3_reset(st);
    }
out:
    ret_view_release(&view);
    ret__release(st);
    ret_tokenizer_free(t);
    buf_free(&terms);
    zk_free(c);
    if (rc != ZK_OK) {
        ret_hits_free(hits, nh);
        return rc;
    }
    *out_hits = hits;
    *out_n = nh;
    return ZK_OK;
}
