/* test_colidx.c — the column index (retrieval/colidx.c) against brute
 * force over the same float16 values: sparse and dense queries over more
 * than one block, with and without a bitmap filter, by id list; adds that
 * replace, removals that move the last row, blocks given back; one add of
 * many rows equal to adding them one by one; the payload
 * round trip and corrupt payloads refused; blocks moved out of a mapped
 * snapshot while searches run; larger blocks as the index grows. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "half.h"
#include "retrieval/colidx.h"

#define DIM 48
#define N (2 * COLIDX_BLOCK_ROWS + 300)   /* three blocks, the last partial */

static uint64_t rng = 88172645463325252ull;
static double rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static void random_vec(float *v, int nonzero)
{
    memset(v, 0, DIM * sizeof *v);
    for (int j = 0; j < nonzero; j++) v[(int)(rnd() * DIM)] = (float)(rnd() * 2 - 1);
}

/* Brute force over the rounded (float16) vectors, ties broken by id. */
typedef struct { int64_t id; float s; } pair;
static int by_score(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The top k of n vectors of dim values (rows with live[i] == 0 and, with a
 * bitmap, ids it does not mark left out; live may be NULL). */
static int brute_dim(int dim, const float *vecs, const int64_t *ids, const int *live, size_t n, const float *q, int k,
                     const uint8_t *bitmap, pair *out)
{
    pair *all = malloc(n * sizeof *all);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (live && !live[i]) continue;
        if (bitmap && !(bitmap[ids[i] >> 3] >> (ids[i] & 7) & 1)) continue;
        float s = 0;
        for (int d = 0; d < dim; d++) s += q[d] * zk_half_to_float(zk_float_to_half(vecs[i * (size_t)dim + d]));
        all[m++] = (pair){ids[i], s};
    }
    qsort(all, m, sizeof *all, by_score);
    int r = (int)(m < (size_t)k ? m : (size_t)k);
    memcpy(out, all, (size_t)r * sizeof *out);
    free(all);
    return r;
}

static int brute(const float *vecs, const int64_t *ids, const int *live, size_t n, const float *q, int k,
                 const uint8_t *bitmap, pair *out)
{
    return brute_dim(DIM, vecs, ids, live, n, q, k, bitmap, out);
}

/* The same scores in the same order (up to summation order) and the same
 * ids, except where a near-tie may put another id at the cut. */
static void same(const pair *want, int nwant, const int64_t *ids, const float *scores, int n)
{
    assert_int_equal(n, nwant);
    for (int i = 0; i < n; i++) {
        assert_true(fabsf(scores[i] - want[i].s) < 1e-4f);
        int found = 0;
        for (int j = 0; j < nwant; j++) found |= want[j].id == ids[i] && fabsf(want[j].s - scores[i]) < 1e-4f;
        assert_true(found || fabsf(scores[i] - want[nwant - 1].s) < 1e-4f);
    }
}

static void test_search_matches_brute_force(void **state)
{
    (void)state;
    float *vecs = malloc((size_t)N * DIM * sizeof *vecs);
    int64_t *ids = malloc(N * sizeof *ids);
    int *live = malloc(N * sizeof *live);
    for (size_t i = 0; i < N; i++) {
        random_vec(vecs + i * DIM, DIM);
        ids[i] = (int64_t)(i * 3 + 1);
        live[i] = 1;
    }
    char err[ZK_ERRLEN];
    ret_colidx *c = ret_colidx_new(DIM);
    assert_non_null(c);
    assert_int_equal(ret_colidx_add(c, N, ids, vecs, err), ZK_OK);
    assert_int_equal(ret_colidx_count(c), N);

    /* replace one, remove a spread of rows (the last row moves in) */
    random_vec(vecs + 5 * DIM, DIM);
    assert_int_equal(ret_colidx_add(c, 1, ids + 5, vecs + 5 * DIM, err), ZK_OK);
    int64_t gone[40];
    for (int i = 0; i < 40; i++) {
        size_t r = (size_t)(i * 97 + 11) % N;
        gone[i] = ids[r];
        live[r] = 0;
    }
    ret_colidx_remove(c, 40, gone);
    ret_colidx_remove(c, 40, gone);   /* absent now: ignored */
    size_t nlive = 0;
    for (size_t i = 0; i < N; i++) nlive += (size_t)live[i];
    assert_int_equal(ret_colidx_count(c), nlive);
    assert_false(ret_colidx_has(c, gone[0]));
    assert_true(ret_colidx_has(c, ids[5]));

    uint8_t bitmap[(N * 3 + 8) / 8 + 1];
    memset(bitmap, 0, sizeof bitmap);
    int64_t list[200];
    for (int i = 0; i < 200; i++) {
        list[i] = ids[(i * 37) % N];
        bitmap[list[i] >> 3] |= (uint8_t)(1u << (list[i] & 7));
    }
    for (int t = 0; t < 20; t++) {
        float q[DIM];
        random_vec(q, t % 2 ? 4 : DIM);   /* sparse and dense queries */
        pair want[50];
        int64_t got[50];
        float sc[50];
        int n, nw = brute(vecs, ids, live, N, q, 50, NULL, want);
        assert_int_equal(ret_colidx_search(c, q, 50, NULL, 0, got, sc, &n, err), ZK_OK);
        same(want, nw, got, sc, n);
        nw = brute(vecs, ids, live, N, q, 10, bitmap, want);
        assert_int_equal(ret_colidx_search(c, q, 10, bitmap, sizeof bitmap, got, sc, &n, err), ZK_OK);
        same(want, nw, got, sc, n);
        assert_int_equal(ret_colidx_search_ids(c, q, 10, list, 200, NULL, got, sc, &n, err), ZK_OK);
        same(want, nw, got, sc, n);
    }
    /* runs of consecutive rows (a caller's whole documents), of odd lengths,
     * across a block boundary, given out of order with duplicates and ids
     * that were removed or never added */
    uint8_t runmap[sizeof bitmap];
    memset(runmap, 0, sizeof runmap);
    int64_t runs[700];
    int nrun = 0;
    const size_t starts[] = {COLIDX_BLOCK_ROWS - 13, 3, 700, 2 * COLIDX_BLOCK_ROWS + 290, 1500};
    const size_t lens[] = {29, 1, 170, 10, 9};
    for (int r = 4; r >= 0; r--)
        for (size_t i = starts[r]; i < starts[r] + lens[r]; i++) {
            runs[nrun++] = ids[i];
            if (live[i]) runmap[ids[i] >> 3] |= (uint8_t)(1u << (ids[i] & 7));
        }
    runs[nrun++] = ids[710];
    runs[nrun++] = 2;   /* never added */
    /* and the pruned scan: exact when the query has no more nonzero
     * dimensions than the first pass uses; with a first pass over the
     * heaviest half and most rows kept, the same top 10, filter included */
    for (int t = 0; t < 10; t++) {
        float q[DIM];
        random_vec(q, t % 2 ? 4 : DIM);
        pair want[10];
        int64_t got[10];
        float sc[10];
        int n, nw = brute(vecs, ids, live, N, q, 10, runmap, want);
        assert_int_equal(ret_colidx_search_ids(c, q, 10, runs, (size_t)nrun, NULL, got, sc, &n, err), ZK_OK);
        same(want, nw, got, sc, n);
        int nz = 0;
        nw = brute(vecs, ids, live, N, q, 10, NULL, want);
        for (int d = 0; d < DIM; d++) nz += q[d] != 0;
        assert_int_equal(ret_colidx_search_pruned(c, q, 10, nz, 50, NULL, 0, NULL, got, sc, &n, err), ZK_OK);
        same(want, nw, got, sc, n);
        assert_int_equal(ret_colidx_search_pruned(c, q, 10, nz / 2 + 1, (int)nlive - 2, NULL, 0, NULL, got, sc, &n, err),
                         ZK_OK);
        same(want, nw, got, sc, n);
        nw = brute(vecs, ids, live, N, q, 10, bitmap, want);
        assert_int_equal(ret_colidx_search_pruned(c, q, 10, nz / 2 + 1, 190, bitmap, sizeof bitmap, NULL, got, sc, &n, err),
                         ZK_OK);
        same(want, nw, got, sc, n);
    }

    /* a bitmap shorter than the ids excludes the rest */
    float q[DIM];
    random_vec(q, DIM);
    int64_t got[5];
    float sc[5];
    int n;
    assert_int_equal(ret_colidx_search(c, q, 5, bitmap, 1, got, sc, &n, err), ZK_OK);
    for (int i = 0; i < n; i++) assert_true(got[i] < 8);

    /* removing everything gives the blocks back; the index still works */
    ret_colidx_remove(c, N, ids);
    assert_int_equal(ret_colidx_count(c), 0);
    int64_t none[1] = {-7};
    ret_colidx_ids(c, none);   /* nothing written, nothing read */
    assert_int_equal(none[0], -7);
    ret_colidx *empty = ret_colidx_new(DIM);
    ret_colidx_ids(empty, none);
    ret_colidx_free(empty);
    assert_int_equal(ret_colidx_search(c, q, 5, NULL, 0, got, sc, &n, err), ZK_OK);
    assert_int_equal(n, 0);
    assert_int_equal(ret_colidx_add(c, 3, ids, vecs, err), ZK_OK);
    assert_int_equal(ret_colidx_search(c, q, 5, NULL, 0, got, sc, &n, err), ZK_OK);
    assert_int_equal(n, 3);
    int64_t neg = -4;
    assert_int_equal(ret_colidx_add(c, 1, &neg, vecs, err), ZK_INVALID);
    ret_colidx_free(c);
    free(vecs);
    free(ids);
    free(live);
}

/* The pruned scan is approximate by design: a row that wins only on the
 * query's light dimensions can miss the first pass. */
static void test_pruned_is_approximate(void **state)
{
    (void)state;
    char err[ZK_ERRLEN];
    ret_colidx *c = ret_colidx_new(DIM);
    float v[3 * DIM] = {0}, q[DIM] = {0};
    int64_t ids[3] = {1, 2, 3}, got[1];
    float sc[1];
    int n;
    v[0] = 0.5f;                                  /* row 1: heavy dimension only, 0.5 */
    v[DIM] = 0.375f, v[DIM + 1] = 1.0f;           /* row 2: 0.375 + 0.25 = 0.625, the best */
    v[2 * DIM] = 0.125f;                          /* row 3: 0.125 */
    q[0] = 1.0f, q[1] = 0.25f;
    assert_int_equal(ret_colidx_add(c, 3, ids, v, err), ZK_OK);
    assert_int_equal(ret_colidx_search(c, q, 1, NULL, 0, got, sc, &n, err), ZK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(got[0], 2);
    assert_int_equal(ret_colidx_search_pruned(c, q, 1, 1, 1, NULL, 0, NULL, got, sc, &n, err), ZK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(got[0], 1);                  /* missed: row 2 lost the first pass */
    assert_true(fabsf(sc[0] - 0.5f) < 1e-6f);     /* the kept row's score is exact */
    assert_int_equal(ret_colidx_search_pruned(c, q, 1, 1, 2, NULL, 0, NULL, got, sc, &n, err), ZK_OK);
    assert_int_equal(got[0], 2);                  /* two candidates: found */
    ret_colidx_free(c);
}

/* A team's helper shares the scans: the same ids and the same scores, bit
 * for bit, as the scan alone (ties by id included), for exact, pruned and
 * filtered scans and for id lists scored run by run; the helper scores
 * some of the units, waits between offers, and returns when the team is
 * closed. */
typedef struct {
    ret_colidx_team *team;
    size_t units;   /* what the helper scored */
} helper_arg;

static void *helper(void *arg)
{
    helper_arg *a = arg;
    a->units = ret_colidx_team_help(a->team);
    return NULL;
}

static void test_team_shares_scans(void **state)
{
    (void)state;
    char err[ZK_ERRLEN];
    enum { M = 40 * COLIDX_BLOCK_ROWS + 77, K = 30, SEARCHES = 60 };
    ret_colidx *c = ret_colidx_new(DIM);
    float *vecs = malloc((size_t)M * DIM * sizeof *vecs);
    int64_t *ids = malloc((size_t)M * sizeof *ids);
    for (size_t i = 0; i < M; i++) {
        random_vec(vecs + i * DIM, 12);
        if (i % 97 == 5) memcpy(vecs + i * DIM, vecs, DIM * sizeof *vecs);   /* ties with row 0 */
        ids[i] = (int64_t)(i * 3 + 1);
    }
    assert_int_equal(ret_colidx_add(c, M, ids, vecs, err), ZK_OK);
    uint8_t *bitmap = calloc((size_t)M * 3 / 8 + 1, 1);
    for (size_t i = 0; i < M; i += 2) bitmap[ids[i] >> 3] |= (uint8_t)(1u << (ids[i] & 7));
    /* an allowed list in runs (whole documents), some across blocks, and
     * single rows */
    int64_t *list = malloc((size_t)M * sizeof *list);
    size_t nlist = 0;
    for (size_t i = 0; i + 300 < M; i += 1000) {
        for (size_t r = i; r < i + 300; r++) list[nlist++] = ids[r];
        list[nlist++] = ids[i + 650];
    }

    ret_colidx_team *team = ret_colidx_team_new();
    assert_non_null(team);
    helper_arg arg = {team, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, helper, &arg), 0);
    for (int t = 0; t < SEARCHES; t++) {
        float q[DIM];
        if (t % 5 == 0) memcpy(q, vecs, sizeof q);
        else random_vec(q, t % 2 ? 6 : DIM);
        int top = t % 3 == 0 ? 0 : 4, ncand = 16 * K;
        const uint8_t *bm = t % 4 == 1 ? bitmap : NULL;
        size_t blen = bm ? (size_t)M * 3 / 8 + 1 : 0;
        int64_t alone[K], shared[K];
        float sa[K], ss[K];
        int na, ns;
        assert_int_equal(ret_colidx_search_pruned(c, q, K, top, ncand, bm, blen, NULL, alone, sa, &na, err), ZK_OK);
        assert_int_equal(ret_colidx_search_pruned(c, q, K, top, ncand, bm, blen, team, shared, ss, &ns, err), ZK_OK);
        assert_int_equal(ns, na);
        assert_int_equal(na, K);
        for (int i = 0; i < na; i++) {
            assert_int_equal(shared[i], alone[i]);
            assert_memory_equal(&ss[i], &sa[i], sizeof sa[i]);
        }
        assert_int_equal(ret_colidx_search_ids(c, q, K, list, nlist, NULL, alone, sa, &na, err), ZK_OK);
        assert_int_equal(ret_colidx_search_ids(c, q, K, list, nlist, team, shared, ss, &ns, err), ZK_OK);
        assert_int_equal(ns, na);
        assert_int_equal(na, K);
        for (int i = 0; i < na; i++) {
            assert_int_equal(shared[i], alone[i]);
            assert_memory_equal(&ss[i], &sa[i], sizeof sa[i]);
        }
    }
    ret_colidx_team_close(team);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(arg.units > 0);   /* it did help */
    assert_int_equal(ret_colidx_team_help(team), 0);   /* closed: returns at once */
    ret_colidx_team_free(team);
    ret_colidx_free(c);
    free(bitmap);
    free(list);
    free(vecs);
    free(ids);
}

static char *snapshot(const ret_colidx *c, size_t *len)
{
    char err[ZK_ERRLEN], *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    assert_int_equal(ret_colidx_write(c, f, err), ZK_OK);
    fclose(f);
    return buf;
}

/* One add of many rows (written a tile at a time, column by column) holds
 * exactly what adding them one by one holds: new ids across block
 * boundaries, ids added before (updated in place) and repeated ids. */
static void test_batch_add_equals_row_by_row(void **state)
{
    (void)state;
    char err[ZK_ERRLEN];
    enum { M = 2 * COLIDX_BLOCK_ROWS + 700 };
    float *vecs = malloc((size_t)M * DIM * sizeof *vecs);
    int64_t *ids = malloc(M * sizeof *ids);
    for (size_t i = 0; i < M; i++) {
        random_vec(vecs + i * DIM, 8);
        ids[i] = (int64_t)(50 + i);
    }
    for (size_t i = 300; i < M; i += 97) ids[i] = ids[i - 250];   /* updates of rows added earlier in the batch */
    ids[M - 1] = 7;                                              /* and of a row added before */
    ret_colidx *one = ret_colidx_new(DIM), *batch = ret_colidx_new(DIM);
    float first[DIM];
    random_vec(first, 8);
    int64_t seven = 7;
    assert_int_equal(ret_colidx_add(one, 1, &seven, first, err), ZK_OK);
    assert_int_equal(ret_colidx_add(batch, 1, &seven, first, err), ZK_OK);
    for (size_t i = 0; i < M; i++) assert_int_equal(ret_colidx_add(one, 1, ids + i, vecs + i * DIM, err), ZK_OK);
    assert_int_equal(ret_colidx_add(batch, M, ids, vecs, err), ZK_OK);
    assert_true(ret_colidx_count(batch) > 2 * COLIDX_BLOCK_ROWS);
    assert_int_equal(ret_colidx_count(one), ret_colidx_count(batch));
    size_t la, lb;
    char *a = snapshot(one, &la), *b = snapshot(batch, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
    /* a bad id part-way: the rows before it are in, complete */
    ret_colidx *part = ret_colidx_new(DIM);
    ids[5] = -1;
    assert_int_equal(ret_colidx_add(part, 10, ids, vecs, err), ZK_INVALID);
    assert_int_equal(ret_colidx_count(part), 5);
    ret_colidx *ref = ret_colidx_new(DIM);
    assert_int_equal(ret_colidx_add(ref, 5, ids, vecs, err), ZK_OK);
    a = snapshot(part, &la);
    b = snapshot(ref, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
    ret_colidx_free(part);
    ret_colidx_free(ref);
    ret_colidx_free(one);
    ret_colidx_free(batch);
    free(vecs);
    free(ids);
}

static void test_payload_round_trip(void **state)
{
    (void)state;
    char err[ZK_ERRLEN];
    ret_colidx *c = ret_colidx_new(DIM);
    enum { M = COLIDX_BLOCK_ROWS + 10 };
    float *vecs = malloc((size_t)M * DIM * sizeof *vecs);
    int64_t *ids = malloc(M * sizeof *ids);
    for (size_t i = 0; i < M; i++) {
        random_vec(vecs + i * DIM, 8);
        ids[i] = (int64_t)(1000 + i);
    }
    assert_int_equal(ret_colidx_add(c, M, ids, vecs, err), ZK_OK);
    ret_colidx_remove(c, 1, ids + 3);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(ret_colidx_write(c, f, err), ZK_OK);
    fclose(f);
    ret_colidx *d;
    assert_int_equal(ret_colidx_read((const unsigned char *)buf, len, DIM, &d, err), ZK_OK);
    assert_int_equal(ret_colidx_count(d), M - 1);
    float q[DIM];
    random_vec(q, 6);
    int64_t a[20], b[20];
    float sa[20], sb[20];
    int na, nb;
    assert_int_equal(ret_colidx_search(c, q, 20, NULL, 0, a, sa, &na, err), ZK_OK);
    assert_int_equal(ret_colidx_search(d, q, 20, NULL, 0, b, sb, &nb, err), ZK_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, (size_t)na * sizeof *a);
    assert_memory_equal(sa, sb, (size_t)na * sizeof *sa);
    ret_colidx_free(d);

    ret_colidx *x = NULL;
    assert_int_equal(ret_colidx_read((const unsigned char *)buf, len - 1, DIM, &x, err), ZK_CORRUPT);
    assert_int_equal(ret_colidx_read((const unsigned char *)buf, len, DIM + 1, &x, err), ZK_CORRUPT);
    memcpy(buf + 24 + 8, buf + 24, 8);   /* the second id repeats the first */
    assert_int_equal(ret_colidx_read((const unsigned char *)buf, len, DIM, &x, err), ZK_CORRUPT);
    assert_non_null(strstr(err, "duplicate"));
    buf[0] = 'X';
    assert_int_equal(ret_colidx_read((const unsigned char *)buf, len, DIM, &x, err), ZK_CORRUPT);
    assert_null(x);
    free(buf);
    ret_colidx_free(c);
    free(vecs);
    free(ids);
}

/* An index that grows past 131,072 and 524,288 rows moves its rows into
 * larger blocks (16384 and 65536 rows): after each batch of adds, exact,
 * pruned, team and id-list searches match brute force; removals work in
 * the new layout; its snapshot reads back (and searches the same), while
 * a snapshot whose blocks are too small for its rows is refused, so the
 * index is rebuilt in the faster layout once. */
enum { GDIM = 4, GROWS = 540000, GBATCH = 45000, GK = 10 };

static void search_small(const ret_colidx *c, ret_colidx_team *team, const float *vecs, const int64_t *ids,
                         size_t n)
{
    char err[ZK_ERRLEN];
    for (int t = 0; t < 4; t++) {
        float q[GDIM];
        for (int d = 0; d < GDIM; d++) q[d] = (float)(rnd() * 2 - 1);
        pair want[GK];
        int64_t got[GK];
        float sc[GK];
        int ng, nw = brute_dim(GDIM, vecs, ids, NULL, n, q, GK, NULL, want);
        assert_int_equal(ret_colidx_search(c, q, GK, NULL, 0, got, sc, &ng, err), ZK_OK);
        same(want, nw, got, sc, ng);
        assert_int_equal(ret_colidx_search_pruned(c, q, GK, 0, 0, NULL, 0, team, got, sc, &ng, err), ZK_OK);
        same(want, nw, got, sc, ng);
        /* pruned on 2 of 4 dimensions: approximate, yet it finds some */
        assert_int_equal(ret_colidx_search_pruned(c, q, GK, 2, 16 * GK, NULL, 0, team, got, sc, &ng, err), ZK_OK);
        assert_int_equal(ng, GK);
    }
    /* an id list spanning the whole index, in runs */
    size_t nl = 0;
    int64_t *list = malloc(n * sizeof *list);
    float *sv = malloc(n * GDIM * sizeof *sv);
    for (size_t i = 0; i < n; i += 3000)
        for (size_t r = i; r < ZK_MIN(n, i + 700); r++) {
            memcpy(sv + nl * GDIM, vecs + r * GDIM, GDIM * sizeof *sv);
            list[nl++] = ids[r];
        }
    float q[GDIM] = {0.5f, -0.25f, 1.0f, 0.125f};
    pair want[GK];
    int64_t got[GK];
    float sc[GK];
    int ng, nw = brute_dim(GDIM, sv, list, NULL, nl, q, GK, NULL, want);
    assert_int_equal(ret_colidx_search_ids(c, q, GK, list, nl, team, got, sc, &ng, err), ZK_OK);
    same(want, nw, got, sc, ng);
    free(list);
    free(sv);
}

static void test_blocks_grow_with_the_index(void **state)
{
    (void)state;
    char err[ZK_ERRLEN];
    float *vecs = malloc((size_t)GROWS * GDIM * sizeof *vecs);
    int64_t *ids = malloc((size_t)GROWS * sizeof *ids);
    for (size_t i = 0; i < GROWS; i++) {
        for (int d = 0; d < GDIM; d++) vecs[i * GDIM + d] = (float)(rnd() * 2 - 1);
        ids[i] = (int64_t)(i * 2 + 7);
    }
    ret_colidx *c = ret_colidx_new(GDIM);
    ret_colidx_team *team = ret_colidx_team_new();
    helper_arg arg = {team, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, helper, &arg), 0);
    size_t n = 0;
    for (; n < GROWS; n += GBATCH) {
        assert_int_equal(ret_colidx_add(c, GBATCH, ids + n, vecs + n * GDIM, err), ZK_OK);
        assert_int_equal(ret_colidx_count(c), n + GBATCH);
        if ((n / GBATCH) % 3 == 2) search_small(c, team, vecs, ids, n + GBATCH);
    }
    search_small(c, team, vecs, ids, GROWS);
    /* removals in the large layout: the last rows move into the holes */
    int64_t gone[3] = {ids[0], ids[70000], ids[GROWS - 2]};
    ret_colidx_remove(c, 3, gone);
    assert_int_equal(ret_colidx_count(c), GROWS - 3);
    assert_false(ret_colidx_has(c, ids[70000]));
    assert_true(ret_colidx_has(c, ids[GROWS - 1]));
    memcpy(vecs, vecs + (GROWS - 1) * GDIM, GDIM * sizeof *vecs);   /* mirror: the last row fills the holes */
    ids[0] = ids[GROWS - 1];
    memcpy(vecs + 70000 * GDIM, vecs + (GROWS - 3) * GDIM, GDIM * sizeof *vecs);
    ids[70000] = ids[GROWS - 3];
    search_small(c, team, vecs, ids, GROWS - 3);

    size_t len;
    char *buf = snapshot(c, &len);
    assert_int_equal(buf[12] | buf[13] << 8 | buf[14] << 16, 65536);   /* block rows in the header */
    ret_colidx *d = NULL;
    assert_int_equal(ret_colidx_read((const unsigned char *)buf, len, GDIM, &d, err), ZK_OK);
    search_small(d, team, vecs, ids, GROWS - 3);
    ret_colidx_free(d);
    d = NULL;
    buf[12] = 0;   /* claims 2048-row blocks: too small for its rows */
    buf[13] = 8;
    buf[14] = 0;
    assert_int_equal(ret_colidx_read((const unsigned char *)buf, len, GDIM, &d, err), ZK_CORRUPT);
    assert_null(d);
    assert_non_null(strstr(err, "2048-row blocks"));
    free(buf);

    ret_colidx_team_close(team);
    assert_int_equal(pthread_join(th, NULL), 0);
    ret_colidx_team_free(team);
    ret_colidx_free(c);
    free(vecs);
    free(ids);
}

/* An index read in place from its mapped snapshot moves its blocks into
 * memory of its own (512 dimensions: 2 MB blocks, the huge-page case)
 * while another thread keeps searching — every search returns the same ids
 * and score bits throughout — then unmaps the file; it stays searchable and
 * writable. */
enum { PDIM = 512, PROWS = 2 * COLIDX_BLOCK_ROWS + 100, PK = 10 };

typedef struct {
    const ret_colidx *c;
    const float *q;
    const int64_t *want_ids;
    const float *want_sc;
    volatile int stop;
    int runs, bad;
} searcher;

static void *search_loop(void *arg)
{
    searcher *a = arg;
    char err[ZK_ERRLEN];
    while (!a->stop || a->runs < 3) {
        int64_t ids[PK];
        float sc[PK];
        int n = 0;
        if (ret_colidx_search(a->c, a->q, PK, NULL, 0, ids, sc, &n, err) != ZK_OK || n != PK ||
            memcmp(ids, a->want_ids, sizeof ids) != 0 || memcmp(sc, a->want_sc, sizeof sc) != 0)
            a->bad++;
        a->runs++;
    }
    return NULL;
}

static void test_promote_from_mapping(void **state)
{
    (void)state;
    char err[ZK_ERRLEN];
    float *vecs = calloc((size_t)PROWS * PDIM, sizeof *vecs);
    int64_t *ids = malloc(PROWS * sizeof *ids);
    for (size_t i = 0; i < PROWS; i++) {
        for (int j = 0; j < 40; j++) vecs[i * PDIM + (size_t)(rnd() * PDIM)] = (float)(rnd() * 2 - 1);
        ids[i] = (int64_t)i + 1;
    }
    ret_colidx *c = ret_colidx_new(PDIM);
    assert_int_equal(ret_colidx_add(c, PROWS, ids, vecs, err), ZK_OK);
    assert_int_equal(ret_colidx_promote(c, 100), 0);   /* nothing mapped */
    char path[] = "/tmp/zk-colidx-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w+");
    assert_int_equal(ret_colidx_write(c, f, err), ZK_OK);
    fflush(f);
    size_t len = (size_t)ftell(f);
    unsigned char *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    assert_true(map != MAP_FAILED);
    fclose(f);
    unlink(path);
    ret_colidx *d;
    assert_int_equal(ret_colidx_read_mapped(map, len, PDIM, map, len, &d, err), ZK_OK);
    assert_int_equal(ret_colidx_drop_mapping(d), 0);   /* still in use */

    float q[PDIM] = {0};
    for (int j = 0; j < 30; j++) q[(int)(rnd() * PDIM)] = (float)(rnd() * 2 - 1);
    int64_t want[PK];
    float wsc[PK];
    int n;
    assert_int_equal(ret_colidx_search(c, q, PK, NULL, 0, want, wsc, &n, err), ZK_OK);
    assert_int_equal(n, PK);
    searcher a = {.c = d, .q = q, .want_ids = want, .want_sc = wsc};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, search_loop, &a), 0);
    assert_int_equal(ret_colidx_promote(d, 2), 2);   /* in steps */
    assert_int_equal(ret_colidx_drop_mapping(d), 0);
    assert_int_equal(ret_colidx_promote(d, 2), 1);
    a.stop = 1;
    pthread_join(th, NULL);
    assert_int_equal(a.bad, 0);
    assert_true(a.runs >= 3);
    assert_int_equal(ret_colidx_promote(d, 2), 0);   /* all moved */
    assert_int_equal(ret_colidx_drop_mapping(d), 1);
    assert_int_equal(ret_colidx_drop_mapping(d), 1);

    int64_t got[PK];
    float sc[PK];
    assert_int_equal(ret_colidx_search(d, q, PK, NULL, 0, got, sc, &n, err), ZK_OK);
    assert_memory_equal(got, want, sizeof got);
    assert_memory_equal(sc, wsc, sizeof sc);
    /* writable: a removal moves the last row into the first block, an add
     * fills the third block's tail */
    ret_colidx_remove(d, 1, ids + 2);
    int64_t extra = PROWS + 1;
    assert_int_equal(ret_colidx_add(d, 1, &extra, q, err), ZK_OK);
    assert_int_equal(ret_colidx_search(d, q, 1, NULL, 0, got, sc, &n, err), ZK_OK);
    assert_int_equal(got[0], extra);
    assert_int_equal(ret_colidx_count(d), PROWS);
    ret_colidx_free(d);
    ret_colidx_free(c);
    free(vecs);
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_search_matches_brute_force),
        cmocka_unit_test(test_pruned_is_approximate),
        cmocka_unit_test(test_team_shares_scans),
        cmocka_unit_test(test_batch_add_equals_row_by_row),
        cmocka_unit_test(test_payload_round_trip),
        cmocka_unit_test(test_promote_from_mapping),
        cmocka_unit_test(test_blocks_grow_with_the_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
