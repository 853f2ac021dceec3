/* rank.c — zk_bm25, the FTS5 ranking function with IDFs passed in, and the
 * process-wide cache of term document frequencies it is fed from (see
 * rank.h). Registered on every connection by the store; called by FTS5 once
 * per row that passes the query's WHERE clause (the candidates, after the
 * access check), so its per-row cost is one size probe and the row's hits. */
#include "retrieval/rank.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "retrieval/docmap.h"
#include "retrieval/tokenizer.h"

#define BM25_K1 1.2
#define BM25_B 0.75

double ret_rank_idf(int64_t nrows, int64_t df)
{
    double idf = log(((double)nrows - (double)df + 0.5) / ((double)df + 0.5));
    return idf > RET_RANK_IDF_FLOOR ? idf : RET_RANK_IDF_FLOOR;
}

typedef struct {
    int nphrase;
    double avgdl;
    double *w;               /* IDF per phrase; 0: matching only */
} rank_data;

static void rank_data_free(void *p)
{
    rank_data *d = p;
    if (d) zk_free(d->w);
    zk_free(d);
}

/* Per query: phrase weights from the blob, average row length from FTS5's
 * totals (no posting list is read). */
static rank_data *rank_setup(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_value *weights)
{
    rank_data *d = zk_calloc(1, sizeof *d);
    if (!d) return NULL;
    d->nphrase = api->xPhraseCount(fts);
    d->w = zk_calloc((size_t)(d->nphrase ? d->nphrase : 1), sizeof *d->w);
    if (!d->w) { zk_free(d); return NULL; }
    sqlite3_int64 nrow = 0, ntok = 0;
    if (api->xRowCount(fts, &nrow) != SQLITE_OK || api->xColumnTotalSize(fts, -1, &ntok) != SQLITE_OK) {
        rank_data_free(d);
        return NULL;
    }
    /* the blob holds document frequencies; IDF against the table's rows */
    const double *w = sqlite3_value_blob(weights);
    int nw = sqlite3_value_bytes(weights) / (int)sizeof(double);
    for (int i = 0; i < d->nphrase; i++)
        d->w[i] = i < nw && w[i] > 0 ? ret_rank_idf(nrow, (int64_t)w[i]) : 0.0;
    d->avgdl = nrow > 0 ? (double)ntok / (double)nrow : 1.0;
    if (d->avgdl <= 0) d->avgdl = 1.0;
    return d;
}

/* zk_bm25(chunks_fts, heading_weight, dfs [, view]): with an access-map
 * view (docmap.h) the row's length comes from its memory instead of a probe
 * of FTS5's %_docsize table (half of BM25's time at a million chunks). */
static void zk_bm25(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx, int nval,
                    sqlite3_value **val)
{
    if (nval != 2 && nval != 3) {
        sqlite3_result_error(ctx, "zk_bm25(fts, heading_weight, weights [, view])", -1);
        return;
    }
    rank_data *d = api->xGetAuxdata(fts, 0);
    if (!d) {
        if (!(d = rank_setup(api, fts, val[1])) || api->xSetAuxdata(fts, d, rank_data_free) != SQLITE_OK) {
            sqlite3_result_error_nomem(ctx);
            return;
        }
    }
    double hw = sqlite3_value_double(val[0]);
    double tf[64] = {0};
    int ninst = 0, np = d->nphrase < 64 ? d->nphrase : 64;
    if (api->xInstCount(fts, &ninst) != SQLITE_OK) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    for (int i = 0; i < ninst; i++) {
        int ph, col, off;
        if (api->xInst(fts, i, &ph, &col, &off) == SQLITE_OK && ph < np && d->w[ph] > 0)
            tf[ph] += col == 1 ? hw : 1.0;
    }
    const ret_view *view = nval == 3 ? sqlite3_value_pointer(val[2], RET_VIEW_PTR) : NULL;
    int ntok = view && view->m ? (int)ret_view_chunk_len(view, api->xRowid(fts)) : 0;
    if (!ntok && api->xColumnSize(fts, -1, &ntok) != SQLITE_OK) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    double norm = BM25_K1 * (1 - BM25_B + BM25_B * (double)ntok / d->avgdl), score = 0;
    for (int i = 0; i < np; i++)
        if (tf[i] > 0) score += d->w[i] * (tf[i] * (BM25_K1 + 1.0)) / (tf[i] + norm);
    sqlite3_result_double(ctx, -score);
}

zk_rc ret_rank_register(sqlite3 *db, char *err)
{
    fts5_api *api;
    zk_rc rc = ret__fts5_api(db, &api, err);
    if (rc != ZK_OK) return rc;
    if (api->xCreateFunction(api, "zk_bm25", NULL, zk_bm25, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "register zk_bm25: %s", sqlite3_errmsg(db));
    return ZK_OK;
}

/* ---- term statistics ------------------------------------------------------ */

#define TS_SLOTS 16384        /* power of two; cleared when 3/4 full */

typedef struct {
    char *term;
    int64_t nrows, df;
} ts_slot;

struct ret_termstats {
    pthread_mutex_t mu;
    ts_slot slot[TS_SLOTS];
    int used;
};

ret_termstats *ret_termstats_new(void)
{
    ret_termstats *ts = zk_calloc(1, sizeof *ts);
    if (ts && pthread_mutex_init(&ts->mu, NULL) != 0) {
        zk_free(ts);
        return NULL;
    }
    return ts;
}

static void ts_clear(ret_termstats *ts)
{
    for (int i = 0; i < TS_SLOTS; i++) {
        zk_free(ts->slot[i].term);
        ts->slot[i].term = NULL;
    }
    ts->used = 0;
}

void ret_termstats_free(ret_termstats *ts)
{
    if (!ts) return;
    ts_clear(ts);
    pthread_mutex_destroy(&ts->mu);
    zk_free(ts);
}

static uint32_t ts_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The slot holding term, or the empty one where it would go. */
static ts_slot *ts_find(ret_termstats *ts, const char *term)
{
    uint32_t i = ts_hash(term) & (TS_SLOTS - 1);
    while (ts->slot[i].term && strcmp(ts->slot[i].term, term)) i = (i + 1) & (TS_SLOTS - 1);
    return &ts->slot[i];
}

int ret_termstats_get(ret_termstats *ts, const char *term, int64_t nrows, int64_t *df)
{
    int hit = 0;
    pthread_mutex_lock(&ts->mu);
    ts_slot *s = ts_find(ts, term);
    if (s->term && (double)nrows <= (double)s->nrows * 1.1 && nrows >= s->nrows / 2) {
        *df = s->df;
        hit = 1;
    }
    pthread_mutex_unlock(&ts->mu);
    return hit;
}

void ret_termstats_put(ret_termstats *ts, const char *term, int64_t nrows, int64_t df)
{
    pthread_mutex_lock(&ts->mu);
    if (ts->used >= TS_SLOTS * 3 / 4) ts_clear(ts);
    ts_slot *s = ts_find(ts, term);
    if (!s->term) {
        s->term = zk_strdup(term);
        if (s->term) ts->used++;
    }
    if (s->term) {
        s->nrows = nrows;
        s->df = df;
    }
    pthread_mutex_unlock(&ts->mu);
}
