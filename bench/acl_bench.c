/* acl_bench.c — access-control benchmarks (`make bench`):
 *
 * 1. Filtered search speed: a synthetic corpus of N chunks (default 200k;
 *    10 chunks per document, mixed Chinese/English vocabulary), one user
 *    allowed 1% of the documents; hybrid, BM25 and vector p50/p99 for the
 *    administrator (unfiltered) and for that user, same queries, same run.
 * 2. The BM25 residual channel: FTS5's term statistics are corpus-wide, so
 *    documents a user cannot read still shift the BM25 scores of documents
 *    they can. Measures how often adding forbidden documents that contain a
 *    query's terms changes the order of the allowed top 10, and by how much
 *    the raw BM25 scores move (zhiku's responses carry only rank-based RRF
 *    scores, never raw BM25).
 * Usage: build/bench/acl_bench [N_CHUNKS] [QUERIES]  (prints a report) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retrieval/store.h"
#include "retrieval/search.h"
#include "retrieval/acl.h"
#include "retrieval/principal.h"
#include "llm/embed.h"

#define CHUNKS_PER_DOC 10
#define NVOCAB 4000

static uint64_t rng = 88172645463325252ULL;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static char vocab[NVOCAB][16];

static void make_vocab(void)
{
    static const char *const han[] = {"数", "据", "安", "全", "文", "档", "权", "限", "检", "索", "向", "量",
                                      "模", "型", "企", "业", "知", "识", "库", "问", "答", "系", "统", "管",
                                      "理", "员", "工", "报", "销", "流", "程", "审", "批", "财", "务", "部"};
    for (int i = 0; i < NVOCAB; i++) {
        if (i % 2) snprintf(vocab[i], sizeof vocab[i], "term%d", i);
        else snprintf(vocab[i], sizeof vocab[i], "%s%s", han[i % 36], han[(i / 36) % 36]);
    }
}

/* Zipf-ish word choice so some terms are common and most are rare. */
static const char *word(void)
{
    uint32_t r = rnd(1000000);
    return vocab[(uint32_t)((double)NVOCAB * (double)r * r / 1e12)];
}

static void sentence(char *out, size_t cap, int words)
{
    size_t n = 0;
    for (int i = 0; i < words && n + 20 < cap; i++) n += (size_t)snprintf(out + n, cap - n, "%s ", word());
    snprintf(out + n, cap - n, "。");
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "acl_bench: %s: %s\n", what, err);
    exit(1);
}

typedef struct { double p50, p99; } lat;

static lat measure(ret_store *s, llm_embedder *e, const ret_caller *who, ret_mode mode, char (*qs)[128], int nq)
{
    double *t = malloc(sizeof(double) * (size_t)nq);
    char err[ZK_ERRLEN];
    for (int i = 0; i < nq; i++) {
        ret_search_opts o;
        ret_search_opts_init(&o, NULL);
        o.mode = mode;
        o.caller = who;
        ret_hit *h;
        size_t n;
        double a = zk_now();
        if (ret_search(s, e, qs[i], &o, &h, &n, err) != ZK_OK) die("search", err);
        t[i] = (zk_now() - a) * 1e3;
        ret_hits_free(h, n);
    }
    qsort(t, (size_t)nq, sizeof *t, cmpd);
    lat l = {t[nq / 2], t[(int)(nq * 0.99)]};
    free(t);
    return l;
}

int main(int argc, char **argv)
{
    long nchunks = argc > 1 ? atol(argv[1]) : 200000;
    int nq = argc > 2 ? atoi(argv[2]) : 200;
    char dir[] = "/tmp/zk-aclbench-XXXXXX", err[ZK_ERRLEN];
    if (!mkdtemp(dir)) return 1;
    ret_store *s;
    llm_embedder *e;
    int dim = 512;
    if (ret_store_open(dir, 0, &s, err) != ZK_OK) die("open", err);
    if (llm_embedder_builtin_new(dim, &e, err) != ZK_OK) die("embedder", err);
    if (ret_kb_check_model(s, 1, llm_embedder_model(e), dim, err) != ZK_OK) die("kb", err);
    make_vocab();
    int64_t uid, everyone;
    if (ret_user_add(s, "u1", NULL, 0, &uid, err) != ZK_OK) die("user", err);
    if (ret_principal_parse(s, "everyone", &everyone, err) != ZK_OK) die("everyone", err);

    long ndocs = nchunks / CHUNKS_PER_DOC, allowed_docs = 0;
    double t0 = zk_now();
    static char texts[CHUNKS_PER_DOC][400];
    float *vecs = malloc(sizeof(float) * (size_t)dim * CHUNKS_PER_DOC);
    ret_store_begin(s, err);
    for (long d = 0; d < ndocs; d++) {
        ret_chunk_in c[CHUNKS_PER_DOC];
        const char *tp[CHUNKS_PER_DOC];
        size_t lens[CHUNKS_PER_DOC];
        for (int k = 0; k < CHUNKS_PER_DOC; k++) {
            sentence(texts[k], sizeof texts[k], 40);
            tp[k] = texts[k];
            lens[k] = strlen(texts[k]);
            c[k] = (ret_chunk_in){texts[k], lens[k], NULL, 0, k, k * 100, k * 100 + 99};
        }
        if (llm_embed(e, CHUNKS_PER_DOC, tp, lens, vecs, err) != ZK_OK) die("embed", err);
        char ext[32], sha[32];
        snprintf(ext, sizeof ext, "d%ld", d);
        snprintf(sha, sizeof sha, "s%ld", d);
        int allowed = d % 100 == 7;      /* 1% readable by u1; the rest admins only */
        allowed_docs += allowed;
        ret_doc_in din = {.ext_id = ext, .title = ext, .sha256 = sha, .acl = &uid, .nacl = (size_t)allowed};
        if (ret_doc_put(s, 1, &din, c, CHUNKS_PER_DOC, vecs, dim, NULL, NULL, err) != ZK_OK) die("put", err);
        if (d % 500 == 499) { ret_store_commit(s, err); ret_store_begin(s, err); }
    }
    ret_store_commit(s, err);
    if (ret_store_sync(s, 1, err) != ZK_OK) die("sync", err);
    double t_ingest = zk_now() - t0;

    char (*qs)[128] = malloc(sizeof *qs * (size_t)nq);
    for (int i = 0; i < nq; i++) sentence(qs[i], sizeof qs[i], 3 + (int)rnd(4));
    ret_caller admin, user;
    ret_caller_admin(&admin);
    if (ret_caller_user(s, "u1", &user, err) != ZK_OK) die("caller", err);
    measure(s, e, &admin, RET_MODE_HYBRID, qs, nq < 10 ? nq : 10);   /* warm-up */

    printf("# ACL-filtered search, %ld chunks (%ld documents), user allowed %ld documents (%.1f%%), %d queries\n",
           ndocs * CHUNKS_PER_DOC, ndocs, allowed_docs, 100.0 * (double)allowed_docs / (double)ndocs, nq);
    printf("# corpus built in %.1f s (direct store writes, builtin embedder dim %d)\n", t_ingest, dim);
    printf("| mode | unfiltered (admin) p50 / p99 ms | 1%% allowed p50 / p99 ms | ratio p50 |\n|---|---|---|---|\n");
    ret_mode modes[] = {RET_MODE_HYBRID, RET_MODE_BM25, RET_MODE_VECTOR};
    for (int m = 0; m < 3; m++) {
        lat a = measure(s, e, &admin, modes[m], qs, nq), u = measure(s, e, &user, modes[m], qs, nq);
        printf("| %s | %.2f / %.2f | %.2f / %.2f | %.2f |\n", ret_mode_name(modes[m]), a.p50, a.p99, u.p50, u.p99,
               u.p50 / a.p50);
    }

    /* ---- BM25 residual channel ---- */
    int changed = 0, compared = 0;
    double max_shift = 0, sum_shift = 0;
    int nprobe = nq < 100 ? nq : 100;
    ret_hit **before = calloc((size_t)nprobe, sizeof *before);
    size_t *nb = calloc((size_t)nprobe, sizeof *nb);
    for (int i = 0; i < nprobe; i++) {
        ret_search_opts o;
        ret_search_opts_init(&o, NULL);
        o.mode = RET_MODE_BM25;
        o.caller = &user;
        if (ret_search(s, e, qs[i], &o, &before[i], &nb[i], err) != ZK_OK) die("search", err);
    }
    /* forbidden documents stuffed with each probe query's terms */
    ret_store_begin(s, err);
    for (int i = 0; i < nprobe; i++) {
        for (int r = 0; r < 20; r++) {
            char t[512], ext[32];
            snprintf(t, sizeof t, "%s %s %s", qs[i], qs[i], qs[i]);
            snprintf(ext, sizeof ext, "forbidden-%d-%d", i, r);
            ret_chunk_in c = {t, strlen(t), NULL, 0, 0, 0, 10};
            const char *tp = t;
            size_t l = strlen(t);
            if (llm_embed(e, 1, &tp, &l, vecs, err) != ZK_OK) die("embed", err);
            ret_doc_in din = {.ext_id = ext, .title = ext, .sha256 = ext};
            if (ret_doc_put(s, 1, &din, &c, 1, vecs, dim, NULL, NULL, err) != ZK_OK) die("put", err);
        }
    }
    ret_store_commit(s, err);
    for (int i = 0; i < nprobe; i++) {
        ret_search_opts o;
        ret_search_opts_init(&o, NULL);
        o.mode = RET_MODE_BM25;
        o.caller = &user;
        ret_hit *h;
        size_t n;
        if (ret_search(s, e, qs[i], &o, &h, &n, err) != ZK_OK) die("search", err);
        if (n != nb[i]) { fprintf(stderr, "acl_bench: result count changed: %zu -> %zu\n", nb[i], n); return 1; }
        int diff = 0;
        for (size_t k = 0; k < n; k++) {
            if (h[k].chunk_id != before[i][k].chunk_id) diff = 1;
            for (size_t j = 0; j < n; j++)
                if (h[k].chunk_id == before[i][j].chunk_id && before[i][j].bm25 > 0) {
                    double shift = (before[i][j].bm25 - h[k].bm25) / before[i][j].bm25;
                    if (shift < 0) shift = -shift;
                    if (shift > max_shift) max_shift = shift;
                    sum_shift += shift;
                    compared++;
                }
        }
        changed += diff;
        ret_hits_free(h, n);
        ret_hits_free(before[i], nb[i]);
    }
    printf("\n# BM25 residual channel: %d queries, 20 forbidden documents per query holding its terms\n", nprobe);
    printf("allowed result counts unchanged: yes; allowed top-10 order changed in %d of %d queries;\n"
           "raw BM25 of allowed hits moved by %.1f%% on average, %.1f%% at most (raw BM25 is not in responses)\n",
           changed, nprobe, compared ? 100.0 * sum_shift / compared : 0.0, 100.0 * max_shift);
    ret_caller_free(&user);
    ret_store_close(s);
    llm_embedder_free(e);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    free(qs);
    free(vecs);
    free(before);
    free(nb);
    return 0;
}
