/* raw_engines.c — zhiku's in-process search against the raw engines, on one
 * data directory (`make bench`, run by bench/scale_bench.sh after a real
 * CLI ingest). For every query of QUERIES.txt, in a pass over the queries
 * per mode and caller (no search follows the same query's other runs, whose
 * cached pages would flatter it), then a pass of the raw engines:
 *   - zhiku: ret_search() in bm25, vector and hybrid mode for the
 *     administrator (no ACL filter), a user allowed everything and a user
 *     allowed ~1% of the documents (server defaults from the config);
 *   - the raw engines: the same FTS5 MATCH expression (ret__fts_query) run
 *     straight against chunks_fts (`rank MATCH 'bm25(1, heading_weight)'
 *     ORDER BY rank LIMIT bm25_k`), and the query embedding plus a plain
 *     faiss_Index_search over zhiku's own index file (same index type,
 *     trained centroids, nlist and nprobe), k = vector_k; for zhiku's
 *     column index (exact), an exact FAISS index over the same vectors.
 * Then ANN recall@10 against exact search over the vectors loaded from
 * SQLite (float16 blobs): unfiltered (zhiku and raw FAISS) and for the 1%
 * user (exact over the allowed chunks only); and BM25 recall@10 of zhiku's
 * ranking against the raw engine's exhaustive one. Prints tables and one
 * `summary:` line of key=value pairs for scripts.
 * Usage: raw_engines DATA_DIR QUERIES.txt [FULL_USER [ONEPCT_USER]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <faiss/c_api/error_c.h>

#include "retrieval/search.h"
#include "retrieval/store.h"
#include "retrieval/acl.h"
#include "retrieval/vindex_int.h"
#include "llm/embed.h"

#define MAX_QUERIES 2000
#define RECALL_K 10

enum { C_ADMIN, C_FULL, C_ONEPCT, NCALLERS };
enum { M_BM25, M_VECTOR, M_HYBRID, NMODES };
static const ret_mode MODES[NMODES] = {RET_MODE_BM25, RET_MODE_VECTOR, RET_MODE_HYBRID};
static const char *const MODE_NAMES[NMODES] = {"bm25", "vector", "hybrid"};

typedef struct {
    ret_store *s;
    llm_embedder *emb;
    zk_config *cfg;
    ret_caller callers[NCALLERS];
    int have[NCALLERS];
    const char *caller_names[NCALLERS];
    char (*qs)[512];
    int nq;
    char **match;            /* FTS5 MATCH expression per query */
    float *qvec;             /* nq x dim query embeddings (for recall) */
    int dim;
    int64_t *ids;            /* chunk ids of the vectors, ascending */
    float *vecs;             /* n x dim, from SQLite */
    size_t n;
    FaissIndex *raw;         /* zhiku's index, read from its snapshot */
    char raw_desc[128];
    sqlite3_stmt *fts;       /* the raw FTS5 statement */
    double *lat[NCALLERS][NMODES], *raw_lat[NMODES], *embed_lat;
    int64_t *truth;          /* nq x RECALL_K exact unfiltered top ids */
    int *ntruth;             /* how many of them per query */
} bench;

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double p)
{
    double *t = malloc(sizeof *t * (size_t)n);
    memcpy(t, v, sizeof *t * (size_t)n);
    qsort(t, (size_t)n, sizeof *t, cmpd);
    int i = (int)((double)n * p);
    double r = t[i < n ? i : n - 1];
    free(t);
    return r;
}

static zk_rc read_queries(bench *b, const char *path, char *err)
{
    FILE *f = fopen(path, "r");
    if (!f) return zk_fail(err, ZK_IO, "open %s", path);
    b->qs = malloc(sizeof *b->qs * MAX_QUERIES);
    while (b->nq < MAX_QUERIES && fgets(b->qs[b->nq], sizeof b->qs[0], f)) {
        b->qs[b->nq][strcspn(b->qs[b->nq], "\n")] = '\0';
        if (b->qs[b->nq][0]) b->nq++;
    }
    fclose(f);
    return b->nq ? ZK_OK : zk_fail(err, ZK_INVALID, "%s: no queries", path);
}

/* All vectors of kb 1 from SQLite, decoded to float32, ascending chunk id. */
static zk_rc load_vectors(bench *b, char *err)
{
    sqlite3 *db = ret_store_db(b->s);
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    zk_rc rc = ZK_OK;
    if (sqlite3_prepare_v2(db, "SELECT v.chunk_id, v.vec FROM vectors v JOIN chunks c ON c.id = v.chunk_id "
                               "JOIN documents d ON d.id = c.doc_id WHERE d.kb_id = 1 ORDER BY v.chunk_id",
                           -1, &st, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "vectors: %s", sqlite3_errmsg(db));
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (b->n == cap) {
            cap = cap ? cap * 2 : 65536;
            b->ids = realloc(b->ids, sizeof *b->ids * cap);
            b->vecs = realloc(b->vecs, sizeof *b->vecs * cap * (size_t)b->dim);
            if (!b->ids || !b->vecs) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
        }
        if (!ret__vector_decode(sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1), b->dim,
                                b->vecs + b->n * (size_t)b->dim)) {
            rc = zk_fail(err, ZK_CORRUPT, "vector of chunk %lld has a bad size", (long long)sqlite3_column_int64(st, 0));
            goto out;
        }
        b->ids[b->n++] = sqlite3_column_int64(st, 0);
    }
out:
    sqlite3_finalize(st);
    return rc;
}

/* zhiku's FAISS index as plain FAISS sees it: the payload of the snapshot
 * file (a header, then faiss_write_index output; the payload length is the
 * u64 at offset 24, the header is whatever precedes it). A column index
 * (kind 3 at offset 32) has no FAISS payload: the raw side is then an
 * exact FAISS index built from the vectors in SQLite. */
static zk_rc load_raw_index(bench *b, char *err)
{
    char path[4096];
    unsigned char hdr[36];
    zk_rc rc = ZK_OK;
    snprintf(path, sizeof path, "%s/vectors/kb-1/index.zkv", ret_store_dir(b->s));
    FILE *f = fopen(path, "rb");
    if (!f) return zk_fail(err, ZK_IO, "open %s", path);
    if (fread(hdr, 1, sizeof hdr, f) != sizeof hdr || memcmp(hdr, "ZKVINDEX", 8) != 0) {
        rc = zk_fail(err, ZK_CORRUPT, "%s: not a zhiku snapshot", path);
        goto out;
    }
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--) len = len << 8 | hdr[24 + i];
    if (hdr[32] == 3) {
        /* zhiku's column index (exact): the raw engine doing the same work
         * is an exact FAISS index over the same float16-rounded vectors */
        if (faiss_index_factory(&b->raw, b->dim, "IDMap2,Flat", METRIC_INNER_PRODUCT) != 0 ||
            faiss_Index_add_with_ids(b->raw, (idx_t)b->n, b->vecs, b->ids) != 0) {
            rc = zk_fail(err, ZK_INDEX, "raw flat index: %s", faiss_get_last_error());
            goto out;
        }
        snprintf(b->raw_desc, sizeof b->raw_desc, "flat (exact, same vectors)");
        goto out;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    if (len == 0 || (uint64_t)size < len || fseek(f, size - (long)len, SEEK_SET) != 0 ||
        faiss_read_index(f, 0, &b->raw) != 0) {
        rc = zk_fail(err, ZK_CORRUPT, "%s: cannot read the FAISS payload: %s", path, faiss_get_last_error());
        goto out;
    }
    FaissIndexIVF *ivf = faiss_IndexIVF_cast(b->raw);
    if (ivf)
        snprintf(b->raw_desc, sizeof b->raw_desc, "IVF%zu nprobe %zu", faiss_IndexIVF_nlist(ivf),
                 faiss_IndexIVF_nprobe(ivf));
    else
        snprintf(b->raw_desc, sizeof b->raw_desc, "flat (exact)");
out:
    fclose(f);
    return rc;
}

static zk_rc zhiku_search(bench *b, int caller, int mode, int q, int top_k, int64_t *out_ids, int *out_n,
                          double *out_secs, char *err)
{
    ret_search_opts o;
    ret_search_opts_init(&o, b->cfg);
    o.mode = MODES[mode];
    o.caller = &b->callers[caller];
    if (top_k > 0) { o.top_k = top_k; o.ids_only = 1; }
    ret_hit *h;
    size_t nh;
    double t0 = zk_now();
    zk_rc rc = ret_search(b->s, b->emb, b->qs[q], &o, &h, &nh, err);
    if (out_secs) *out_secs = zk_now() - t0;
    if (rc != ZK_OK) return rc;
    if (out_ids) {
        for (size_t i = 0; i < nh && (int)i < top_k; i++) out_ids[i] = h[i].chunk_id;
        *out_n = (int)nh;
    }
    ret_hits_free(h, nh);
    return ZK_OK;
}

/* The raw FTS5 query: every candidate row read, as zhiku reads its list;
 * with top, its first RECALL_K rowids (the exhaustive ranking). */
static zk_rc raw_fts(bench *b, int q, int k, int64_t *top, int *ntop, char *err)
{
    if (ntop) *ntop = 0;
    if (!b->match[q][0]) return ZK_OK;
    sqlite3_stmt *st = b->fts;
    sqlite3_bind_text(st, 1, b->match[q], -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, k);
    int r;
    volatile double sink = 0;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        sink += (double)sqlite3_column_int64(st, 0) + sqlite3_column_double(st, 1);
        if (top && *ntop < RECALL_K) top[(*ntop)++] = sqlite3_column_int64(st, 0);
    }
    (void)sink;
    sqlite3_reset(st);
    return r == SQLITE_DONE ? ZK_OK : zk_fail(err, ZK_DB, "raw fts: %s", sqlite3_errmsg(ret_store_db(b->s)));
}

static zk_rc raw_vector(bench *b, int q, int k, float *qv, float *dist, idx_t *labels, double *out_embed, char *err)
{
    double t0 = zk_now();
    size_t len = strlen(b->qs[q]);
    const char *text = b->qs[q];
    zk_rc rc = llm_embed(b->emb, 1, &text, &len, qv, err);
    if (rc != ZK_OK) return rc;
    *out_embed = zk_now() - t0;
    if (faiss_Index_search(b->raw, 1, qv, k, dist, labels) != 0)
        return zk_fail(err, ZK_INDEX, "faiss search: %s", faiss_get_last_error());
    return ZK_OK;
}

static void print_row(const char *label, const double *v, int n)
{
    printf(" %-7s %8.2f / %-8.2f", label, pct(v, n, 0.5), pct(v, n, 0.99));
}

static zk_rc measure(bench *b, char *err)
{
    ret_search_opts o;
    ret_search_opts_init(&o, b->cfg);
    int nq = b->nq;
    zk_rc rc = ZK_OK;
    float *qv = malloc(sizeof *qv * (size_t)b->dim), *dist = malloc(sizeof *dist * (size_t)o.vector_k);
    idx_t *labels = malloc(sizeof *labels * (size_t)o.vector_k);
    for (int c = 0; c < NCALLERS; c++)
        for (int m = 0; m < NMODES; m++) b->lat[c][m] = calloc((size_t)nq, sizeof(double));
    for (int m = 0; m < NMODES; m++) b->raw_lat[m] = calloc((size_t)nq, sizeof(double));
    b->embed_lat = calloc((size_t)nq, sizeof(double));

    /* warm-up: every query once through zhiku hybrid and the raw engines,
     * so both sides start with the same pages cached */
    for (int q = 0; q < nq; q++) {
        double e;
        if ((rc = zhiku_search(b, C_ADMIN, M_HYBRID, q, 0, NULL, NULL, NULL, err)) != ZK_OK ||
            (rc = raw_fts(b, q, o.bm25_k, NULL, NULL, err)) != ZK_OK ||
            (rc = raw_vector(b, q, o.vector_k, qv, dist, labels, &e, err)) != ZK_OK)
            goto out;
    }
    /* zhiku: a pass over the queries per mode and caller, so that no search
     * runs right after the same query in another mode or for another
     * caller. Interleaved per query, every search but the first found that
     * query's pages in SQLite's cache and its posting lists in the CPU's:
     * the user reading everything, measured after the administrator,
     * looked 2-3x faster than the administrator in BM25 mode. */
    for (int m = 0; m < NMODES; m++)
        for (int c = 0; c < NCALLERS; c++)
            for (int q = 0; q < nq && b->have[c]; q++)
                if ((rc = zhiku_search(b, c, m, q, 0, NULL, NULL, &b->lat[c][m][q], err)) != ZK_OK) goto out;
    for (int q = 0; q < nq; q++) {
        double t0 = zk_now(), e;
        if ((rc = raw_fts(b, q, o.bm25_k, NULL, NULL, err)) != ZK_OK) goto out;
        double t1 = zk_now();
        if ((rc = raw_vector(b, q, o.vector_k, qv, dist, labels, &e, err)) != ZK_OK) goto out;
        double t2 = zk_now();
        b->raw_lat[M_BM25][q] = t1 - t0;
        b->raw_lat[M_VECTOR][q] = t2 - t1;
        b->raw_lat[M_HYBRID][q] = t2 - t0;
        b->embed_lat[q] = e;
    }
    for (int c = 0; c < NCALLERS; c++)
        for (int m = 0; m < NMODES; m++)
            for (int q = 0; q < nq; q++) b->lat[c][m][q] *= 1e3;
    for (int m = 0; m < NMODES; m++)
        for (int q = 0; q < nq; q++) b->raw_lat[m][q] *= 1e3;
    for (int q = 0; q < nq; q++) b->embed_lat[q] *= 1e3;
out:
    free(qv);
    free(dist);
    free(labels);
    return rc;
}

/* Exact top-k ids of query qv among the rows listed in `rows`; positive
 * scores only (zhiku drops the rest). Returns the count. */
static int exact_topk(const bench *b, const float *qv, const size_t *rows, size_t nrows, int k, int64_t *out)
{
    float best[RECALL_K];
    int n = 0;
    for (size_t i = 0; i < nrows; i++) {
        size_t r = rows[i];
        const float *v = b->vecs + r * (size_t)b->dim;
        float s = 0;
        for (int d = 0; d < b->dim; d++) s += v[d] * qv[d];
        if (s <= 0 || (n == k && s <= best[n - 1])) continue;
        int j = n < k ? n++ : n - 1;
        while (j > 0 && best[j - 1] < s) { best[j] = best[j - 1]; out[j] = out[j - 1]; j--; }
        best[j] = s;
        out[j] = b->ids[r];
    }
    return n;
}

static double overlap(const int64_t *a, int na, const int64_t *truth, int nt)
{
    if (nt == 0) return 1.0;
    int hit = 0;
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nt; j++)
            if (a[i] == truth[j]) { hit++; break; }
    return (double)hit / nt;
}

/* Rows (indexes into b->ids) of the chunks the 1% caller may read. */
static zk_rc allowed_rows(bench *b, size_t **out, size_t *out_n, char *err)
{
    sqlite3 *db = ret_store_db(b->s);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT DISTINCT c.id FROM json_each(?1) p JOIN doc_acl a ON a.principal_id = p.value "
                               "JOIN chunks c ON c.doc_id = a.doc_id ORDER BY c.id", -1, &st, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "allowed: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, b->callers[C_ONEPCT].principals_json, -1, SQLITE_STATIC);
    size_t *rows = malloc(sizeof *rows * (b->n ? b->n : 1)), n = 0, r = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        while (r < b->n && b->ids[r] < id) r++;
        if (r < b->n && b->ids[r] == id) rows[n++] = r;
    }
    sqlite3_finalize(st);
    *out = rows;
    *out_n = n;
    return ZK_OK;
}

/* BM25 recall@10: zhiku's ranking (rarest terms matching, the row cap)
 * against FTS5's exhaustive bm25() over every row of the OR query. */
static zk_rc bm25_recall(bench *b, double *out, char *err)
{
    double sum = 0;
    int64_t truth[RECALL_K], got[RECALL_K];
    for (int q = 0; q < b->nq; q++) {
        int nt, ng;
        zk_rc rc = raw_fts(b, q, RECALL_K, truth, &nt, err);
        if (rc == ZK_OK) rc = zhiku_search(b, C_ADMIN, M_BM25, q, RECALL_K, got, &ng, NULL, err);
        if (rc != ZK_OK) return rc;
        sum += overlap(got, ng < RECALL_K ? ng : RECALL_K, truth, nt);
    }
    *out = b->nq ? sum / b->nq : 1.0;
    return ZK_OK;
}

static zk_rc recall(bench *b, double *out_zk, double *out_raw, double *out_onepct, size_t *out_allowed, char *err)
{
    zk_rc rc = ZK_OK;
    size_t *rows = NULL, nrows = 0;
    double zk = 0, raw = 0, one = 0;
    int64_t truth[RECALL_K], got[RECALL_K];
    float dist[RECALL_K];
    idx_t labels[RECALL_K];
    FaissIndex *flat = NULL;
    float *tdist = malloc(sizeof *tdist * (size_t)b->nq * RECALL_K);
    idx_t *trow = malloc(sizeof *trow * (size_t)b->nq * RECALL_K);
    b->truth = calloc((size_t)b->nq * RECALL_K, sizeof *b->truth);
    b->ntruth = calloc((size_t)b->nq, sizeof *b->ntruth);
    if (b->have[C_ONEPCT] && (rc = allowed_rows(b, &rows, &nrows, err)) != ZK_OK) goto out;
    /* unfiltered ground truth: brute force over every vector, all queries
     * in one batch (BLAS) */
    idx_t *rowid = malloc(sizeof *rowid * (b->n ? b->n : 1));
    for (size_t i = 0; i < b->n; i++) rowid[i] = (idx_t)i;
    int frc = faiss_index_factory(&flat, b->dim, "IDMap,Flat", METRIC_INNER_PRODUCT);
    if (frc == 0) frc = faiss_Index_add_with_ids(flat, (idx_t)b->n, b->vecs, rowid);
    free(rowid);
    if (frc != 0 ||
        faiss_Index_search(flat, b->nq, b->qvec, RECALL_K, tdist, trow) != 0) {
        rc = zk_fail(err, ZK_INDEX, "exact search: %s", faiss_get_last_error());
        goto out;
    }
    faiss_Index_free(flat);
    flat = NULL;
    for (int q = 0; q < b->nq; q++) {
        float *qv = b->qvec + (size_t)q * (size_t)b->dim;
        int nt = 0, ng;
        for (int i = 0; i < RECALL_K; i++) {
            size_t at = (size_t)q * RECALL_K + (size_t)i;
            if (trow[at] >= 0 && tdist[at] > 0) truth[nt++] = b->ids[trow[at]];
        }
        memcpy(b->truth + (size_t)q * RECALL_K, truth, sizeof truth);
        b->ntruth[q] = nt;
        if ((rc = zhiku_search(b, C_ADMIN, M_VECTOR, q, RECALL_K, got, &ng, NULL, err)) != ZK_OK) goto out;
        zk += overlap(got, ng, truth, nt);
        if (faiss_Index_search(b->raw, 1, qv, RECALL_K, dist, labels) != 0) {
            rc = zk_fail(err, ZK_INDEX, "faiss: %s", faiss_get_last_error());
            goto out;
        }
        ng = 0;
        for (int i = 0; i < RECALL_K; i++)
            if (labels[i] >= 0 && dist[i] > 0) got[ng++] = labels[i];
        raw += overlap(got, ng, truth, nt);
        if (b->have[C_ONEPCT]) {
            nt = exact_topk(b, qv, rows, nrows, RECALL_K, truth);
            if ((rc = zhiku_search(b, C_ONEPCT, M_VECTOR, q, RECALL_K, got, &ng, NULL, err)) != ZK_OK) goto out;
            one += overlap(got, ng, truth, nt);
        }
    }
    *out_zk = zk / b->nq;
    *out_raw = raw / b->nq;
    *out_onepct = b->have[C_ONEPCT] ? one / b->nq : -1;
    *out_allowed = nrows;
out:
    if (flat) faiss_Index_free(flat);
    free(tdist);
    free(trow);
    free(rows);
    return rc;
}

/* Raw FAISS recall@10 and single-query p50 at a few nprobe values (IVF
 * only): where the recall/latency curve of zhiku's index lies. The full
 * scan (nprobe = nlist) is skipped above 300k vectors. */
static zk_rc nprobe_sweep(bench *b, char *err)
{
    FaissIndexIVF *ivf = faiss_IndexIVF_cast(b->raw);
    if (!ivf) return ZK_OK;
    size_t nlist = faiss_IndexIVF_nlist(ivf), keep = faiss_IndexIVF_nprobe(ivf);
    size_t probes[] = {8, 16, 32, 64, 128, 256, nlist};
    float *tdist = malloc(sizeof *tdist * (size_t)b->nq * RECALL_K), dist[RECALL_K];
    idx_t *trow = malloc(sizeof *trow * (size_t)b->nq * RECALL_K), labels[RECALL_K];
    double *lat = malloc(sizeof *lat * (size_t)b->nq);
    zk_rc rc = ZK_OK;
    printf("raw FAISS recall@%d / p50 ms by nprobe (nlist %zu):", RECALL_K, nlist);
    for (size_t p = 0; p < sizeof probes / sizeof probes[0]; p++) {
        if (probes[p] > nlist || (probes[p] == nlist && b->n > 300000)) continue;
        if (p > 0 && probes[p] == probes[p - 1]) continue;
        faiss_IndexIVF_set_nprobe(ivf, probes[p]);
        double sum = 0;
        for (int q = 0; q < b->nq; q++) {
            const float *qv = b->qvec + (size_t)q * (size_t)b->dim;
            double t0 = zk_now();
            if (faiss_Index_search(b->raw, 1, qv, RECALL_K, dist, labels) != 0) {
                rc = zk_fail(err, ZK_INDEX, "faiss: %s", faiss_get_last_error());
                goto out;
            }
            lat[q] = (zk_now() - t0) * 1e3;
            int64_t got[RECALL_K];
            int ng = 0;
            for (int i = 0; i < RECALL_K; i++)
                if (labels[i] >= 0 && dist[i] > 0) got[ng++] = labels[i];
            sum += overlap(got, ng, b->truth + (size_t)q * RECALL_K, b->ntruth[q]);
        }
        printf(" %zu: %.3f / %.2f;", probes[p], sum / b->nq, pct(lat, b->nq, 0.5));
    }
    printf("\n");
out:
    faiss_IndexIVF_set_nprobe(ivf, keep);
    free(tdist);
    free(trow);
    free(lat);
    return rc;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: raw_engines DATA_DIR QUERIES.txt [FULL_USER [ONEPCT_USER]]\n");
        return 2;
    }
    char err[ZK_ERRLEN] = "";
    bench b;
    memset(&b, 0, sizeof b);
    zk_rc rc;
    double t0 = zk_now();
    ret_vindex *vi = NULL;
    ret_vindex_auto_builds(0);   /* measure the index the ingest left, never a build in progress */
    if ((rc = zk_config_load(NULL, 0, &b.cfg, err)) != ZK_OK || (rc = ret_store_open(argv[1], 0, &b.s, err)) != ZK_OK ||
        (rc = llm_embedder_from_config(b.cfg, &b.emb, err)) != ZK_OK || (rc = ret_store_vindex(b.s, 1, &vi, err)) != ZK_OK)
        goto out;
    double t_open = zk_now() - t0;
    /* as a server does once ready: the column index leaves its snapshot */
    double t_promote = zk_now();
    size_t promoted = ret_store_promote_indexes(b.s, NULL);
    fprintf(stderr, "raw_engines: %zu vector blocks moved into memory in %.2f s\n", promoted, zk_now() - t_promote);
    int nlist = 0, kind = ret__vindex_kind(vi, &nlist);
    b.dim = llm_embedder_dim(b.emb);
    ret_caller_admin(&b.callers[C_ADMIN]);
    b.have[C_ADMIN] = 1;
    b.caller_names[C_ADMIN] = "admin";
    for (int c = C_FULL; c <= C_ONEPCT; c++) {
        if (argc <= 2 + c) continue;
        if ((rc = ret_caller_user(b.s, argv[2 + c], &b.callers[c], err)) != ZK_OK) goto out;
        b.have[c] = 1;
        b.caller_names[c] = argv[2 + c];
    }
    if ((rc = read_queries(&b, argv[2], err)) != ZK_OK || (rc = load_vectors(&b, err)) != ZK_OK ||
        (rc = load_raw_index(&b, err)) != ZK_OK)
        goto out;
    ret_search_opts o;
    ret_search_opts_init(&o, b.cfg);
    b.match = calloc((size_t)b.nq, sizeof *b.match);
    b.qvec = malloc(sizeof *b.qvec * (size_t)b.nq * (size_t)b.dim);
    for (int q = 0; q < b.nq; q++) {
        size_t len = strlen(b.qs[q]);
        const char *text = b.qs[q];
        if ((rc = ret__fts_query(b.qs[q], o.max_query_terms, &b.match[q], err)) != ZK_OK ||
            (rc = llm_embed(b.emb, 1, &text, &len, b.qvec + (size_t)q * (size_t)b.dim, err)) != ZK_OK)
            goto out;
    }
    {
        sqlite3 *db = ret_store_db(b.s);
        char rank[64];
        snprintf(rank, sizeof rank, "bm25(1.0, %.17g)", o.heading_weight);
        if (sqlite3_prepare_v2(db, "SELECT rowid, rank FROM chunks_fts WHERE chunks_fts MATCH ?1 AND rank MATCH ?2 "
                                   "ORDER BY rank LIMIT ?3", -1, &b.fts, NULL) != SQLITE_OK) {
            rc = zk_fail(err, ZK_DB, "raw fts: %s", sqlite3_errmsg(db));
            goto out;
        }
        sqlite3_bind_text(b.fts, 2, rank, -1, SQLITE_TRANSIENT);
    }
    printf("data: %zu vectors x %d (%s); zhiku index: %s", b.n, b.dim, llm_embedder_model(b.emb),
           kind == 2 ? "IVF" : kind == 3 ? "columns (exact)" : "flat (exact)");
    if (kind == 2) printf(" nlist %d", nlist);
    printf(", ntotal %lld; raw FAISS: %s; store + index open %.2f s\n",
           (long long)ret_vindex_count(vi), b.raw_desc, t_open);
    printf("queries: %d; bm25_k %d, vector_k %d, top_k %d, heading weight %g\n", b.nq, o.bm25_k, o.vector_k, o.top_k,
           o.heading_weight);
    if ((rc = measure(&b, err)) != ZK_OK) goto out;

    printf("\nsearch latency, ms p50 / p99 (same queries, a pass per mode and caller, one thread):\n");
    printf(" %-7s", "mode");
    for (int c = 0; c < NCALLERS; c++)
        if (b.have[c]) {
            char h[80];
            snprintf(h, sizeof h, "%s%s", b.caller_names[c],
                     c == C_ADMIN ? " (no filter)" : c == C_FULL ? " (100%)" : " (1%)");
            printf(" %-19.19s", h);
        }
    printf(" %-19s %s\n", "raw engines", "zhiku(admin)/raw p50");
    for (int m = 0; m < NMODES; m++) {
        printf(" %-7s", MODE_NAMES[m]);
        for (int c = 0; c < NCALLERS; c++)
            if (b.have[c]) printf(" %8.2f / %-8.2f", pct(b.lat[c][m], b.nq, 0.5), pct(b.lat[c][m], b.nq, 0.99));
        print_row("", b.raw_lat[m], b.nq);
        double r = pct(b.lat[C_ADMIN][m], b.nq, 0.5) / pct(b.raw_lat[m], b.nq, 0.5);
        printf("    %.2fx%s\n", r, r <= 1.3 ? "" : "  (bar <= 1.3x: NOT MET)");
    }
    printf(" raw engines: bm25 = FTS5 MATCH (zhiku's expression) ORDER BY rank LIMIT %d on chunks_fts; vector = "
           "query embedding (p50 %.2f ms) + faiss_Index_search k=%d; hybrid = both\n",
           o.bm25_k, pct(b.embed_lat, b.nq, 0.5), o.vector_k);

    double r_zk = 0, r_raw = 0, r_one = -1;
    size_t nallowed = 0;
    if ((rc = recall(&b, &r_zk, &r_raw, &r_one, &nallowed, err)) != ZK_OK) goto out;
    printf("\nANN recall@%d vs exact (float16 vectors from SQLite): zhiku %.3f, raw FAISS %.3f (bar >= 0.95)", RECALL_K,
           r_zk, r_raw);
    if (r_one >= 0) printf("; 1%% user %.3f over %zu allowed chunks", r_one, nallowed);
    printf("\n");
    double r_bm25 = 0;
    if ((rc = bm25_recall(&b, &r_bm25, err)) != ZK_OK) goto out;
    printf("BM25 recall@%d vs FTS5's exhaustive bm25() over the full OR query: %.3f\n", RECALL_K, r_bm25);
    if ((rc = nprobe_sweep(&b, err)) != ZK_OK) goto out;
    printf("summary:");
    for (int m = 0; m < NMODES; m++)
        for (int c = 0; c < NCALLERS; c++)
            if (b.have[c])
                printf(" %s_%s_p50=%.3f %s_%s_p99=%.3f", MODE_NAMES[m], c == C_ADMIN ? "admin" : c == C_FULL ? "all" : "1pct",
                       pct(b.lat[c][m], b.nq, 0.5), MODE_NAMES[m], c == C_ADMIN ? "admin" : c == C_FULL ? "all" : "1pct",
                       pct(b.lat[c][m], b.nq, 0.99));
    for (int m = 0; m < NMODES; m++)
        printf(" raw_%s_p50=%.3f raw_%s_p99=%.3f", MODE_NAMES[m], pct(b.raw_lat[m], b.nq, 0.5), MODE_NAMES[m],
               pct(b.raw_lat[m], b.nq, 0.99));
    printf(" recall=%.3f raw_recall=%.3f recall_1pct=%.3f bm25_recall=%.3f index=%s nlist=%d\n", r_zk, r_raw, r_one, r_bm25,
           kind == 2 ? "ivf" : kind == 3 ? "cols" : "flat", nlist);
out:
    if (rc != ZK_OK) fprintf(stderr, "raw_engines: %s\n", err);
    sqlite3_finalize(b.fts);
    if (b.raw) faiss_Index_free(b.raw);
    for (int c = C_FULL; c < NCALLERS; c++)
        if (b.have[c]) ret_caller_free(&b.callers[c]);
    for (int q = 0; b.match && q < b.nq; q++) zk_free(b.match[q]);
    for (int c = 0; c < NCALLERS; c++)
        for (int m = 0; m < NMODES; m++) free(b.lat[c][m]);
    for (int m = 0; m < NMODES; m++) free(b.raw_lat[m]);
    free(b.embed_lat);
    free(b.truth);
    free(b.ntruth);
    free(b.match);
    free(b.qvec);
    free(b.qs);
    free(b.ids);
    free(b.vecs);
    llm_embedder_free(b.emb);
    if (b.s) ret_store_close(b.s);
    zk_config_free(b.cfg);
    return rc == ZK_OK ? 0 : 1;
}
