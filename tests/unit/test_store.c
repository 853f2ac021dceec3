/* test_store.c — the store and hybrid search: migrations, atomic document
 * writes (insert, unchanged, replace, delete), the change log and the vector
 * index replay, the access map loaded ahead, the model-mismatch guard, the
 * FTS query builder and RRF; concurrent searches. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include "retrieval/store.h"
#include "retrieval/search.h"
#include "retrieval/acl.h"
#include "retrieval/principal.h"
#include "retrieval/vindex_int.h"
#include "llm/embed.h"

#define DIM 64

static ret_caller admin_caller;   /* the local administrator sees everything */

typedef struct {
    char dir[64];
    ret_store *s;
    llm_embedder *emb;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char err[ZK_ERRLEN];
    strcpy(f->dir, "/tmp/zk-store-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    if (ret_store_open(f->dir, 0, &f->s, err) != ZK_OK) return -1;
    if (llm_embedder_builtin_new(DIM, &f->emb, err) != ZK_OK) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    ret_store_close(f->s);
    llm_embedder_free(f->emb);
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

/* Put a document whose chunks are the given texts. */
static zk_rc put(fixture *f, const char *id, const char *sha, const char **texts, size_t n,
                 ret_put_status *st)
{
    char err[ZK_ERRLEN];
    ret_chunk_in c[16];
    float vecs[16 * DIM];
    size_t lens[16];
    for (size_t i = 0; i < n; i++) {
        lens[i] = strlen(texts[i]);
        c[i] = (ret_chunk_in){texts[i], lens[i], "H", 0, (int)i, (int64_t)i * 10, (int64_t)i * 10 + 9};
    }
    assert_int_equal(llm_embed(f->emb, n, texts, lens, vecs, err), ZK_OK);
    assert_int_equal(ret_kb_check_model(f->s, 1, llm_embedder_model(f->emb), DIM, err), ZK_OK);
    ret_doc_in d = {.ext_id = id, .title = id, .sha256 = sha, .format = "txt"};
    return ret_doc_put(f->s, 1, &d, c, n, vecs, DIM, st, NULL, err);
}

static int64_t count(fixture *f, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    sqlite3_prepare_v2(ret_store_db(f->s), sql, -1, &st, NULL);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static size_t search(fixture *f, const char *q, ret_mode mode, ret_hit **hits)
{
    ret_search_opts o;
    char err[ZK_ERRLEN];
    size_t n = 0;
    ret_search_opts_init(&o, NULL);
    o.mode = mode;
    o.caller = &admin_caller;
    assert_int_equal(ret_search(f->s, f->emb, q, &o, hits, &n, err), ZK_OK);
    return n;
}

static void test_migrations_recorded(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    assert_true(ret_store_schema_version(f->s) >= 1);
    int64_t n = count(f, "SELECT count(*) FROM schema_version");
    assert_int_equal(n, ret_store_schema_version(f->s));
    /* reopening applies nothing twice */
    ret_store *s2;
    assert_int_equal(ret_store_open(f->dir, 0, &s2, err), ZK_OK);
    ret_store_close(s2);
    assert_int_equal(count(f, "SELECT count(*) FROM schema_version"), n);
    assert_int_equal(count(f, "SELECT count(*) FROM kb WHERE name = 'default'"), 1);
    char mode[16] = "";
    sqlite3_stmt *st;
    sqlite3_prepare_v2(ret_store_db(f->s), "PRAGMA journal_mode", -1, &st, NULL);
    if (sqlite3_step(st) == SQLITE_ROW) snprintf(mode, sizeof mode, "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    assert_string_equal(mode, "wal");
}

static void test_put_unchanged_replace_delete(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    ret_put_status st;
    const char *v1[] = {"the orange cat sleeps on the warm roof", "知识库保存企业文档"};
    const char *v2[] = {"the purple elephant dances in the rain"};
    assert_int_equal(put(f, "doc-a", "sha1", v1, 2, &st), ZK_OK);
    assert_int_equal(st, RET_PUT_INDEXED);
    assert_int_equal(put(f, "doc-a", "sha1", v1, 2, &st), ZK_OK);
    assert_int_equal(st, RET_PUT_UNCHANGED);
    assert_int_equal(count(f, "SELECT count(*) FROM chunks"), 2);

    ret_hit *h;
    size_t n = search(f, "orange cat", RET_MODE_BM25, &h);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].ext_id, "doc-a");
    assert_int_equal(h[0].bm25_rank, 1);
    assert_int_equal(h[0].vector_rank, 0);
    ret_hits_free(h, n);

    assert_int_equal(put(f, "doc-a", "sha2", v2, 1, &st), ZK_OK);
    assert_int_equal(st, RET_PUT_REPLACED);
    assert_int_equal(count(f, "SELECT count(*) FROM chunks"), 1);
    assert_int_equal(count(f, "SELECT version FROM documents WHERE ext_id = 'doc-a'"), 2);
    n = search(f, "orange cat", RET_MODE_BM25, &h);
    assert_int_equal(n, 0);
    ret_hits_free(h, n);
    n = search(f, "elephant", RET_MODE_HYBRID, &h);
    assert_int_equal(n, 1);
    ret_hits_free(h, n);
    /* old chunks' vectors are gone from the index too */
    n = search(f, "orange cat roof", RET_MODE_VECTOR, &h);
    for (size_t i = 0; i < n; i++) assert_string_not_equal(h[i].text, v1[0]);
    ret_hits_free(h, n);

    int64_t id;
    assert_int_equal(ret_doc_find(f->s, 1, "doc-a", &id, err), ZK_OK);
    assert_int_equal(ret_doc_delete(f->s, id, err), ZK_OK);
    assert_int_equal(ret_doc_find(f->s, 1, "doc-a", &id, err), ZK_NOTFOUND);
    assert_int_equal(count(f, "SELECT count(*) FROM chunks"), 0);
    assert_int_equal(count(f, "SELECT count(*) FROM vectors"), 0);
    assert_int_equal(ret_doc_delete(f->s, 999, err), ZK_NOTFOUND);
    int problems = -1;
    FILE *devnull = fopen("/dev/null", "w");
    assert_int_equal(ret_store_check(f->s, devnull, &problems, err), ZK_OK);
    fclose(devnull);
    assert_int_equal(problems, 0);
}

/* The access map loads before the first search asks (the server does this
 * before /readyz): with the map's load query made impossible afterwards,
 * searches still work, and changes after the load reach it by replay. */
static void test_access_map_warmed(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    ret_put_status st;
    const char *v1[] = {"the orange cat sleeps on the warm roof", "知识库保存企业文档"};
    const char *v2[] = {"an orange lantern by the door"};
    assert_int_equal(put(f, "doc-a", "sha1", v1, 2, &st), ZK_OK);
    assert_int_equal(ret_store_warm_access(f->s, err), ZK_OK);
    assert_int_equal(sqlite3_exec(ret_store_db(f->s), "DROP INDEX chunks_doc", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(put(f, "doc-b", "sha2", v2, 1, &st), ZK_OK);
    ret_hit *h;
    size_t n = search(f, "orange", RET_MODE_BM25, &h);
    assert_int_equal(n, 2);
    ret_hits_free(h, n);
}

static void test_failed_put_rolls_back(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    ret_put_status st;
    const char *v[] = {"alpha beta gamma"};
    assert_int_equal(put(f, "keep", "s1", v, 1, &st), ZK_OK);
    /* a document without a checksum is refused and changes nothing */
    ret_doc_in d = {.ext_id = "bad", .title = "bad"};
    assert_int_equal(ret_doc_put(f->s, 1, &d, NULL, 0, NULL, 0, &st, NULL, err), ZK_INVALID);
    /* a write that fails midway (unknown kb → FK error) leaves nothing behind */
    ret_doc_in d2 = {.ext_id = "orphan", .title = "o", .sha256 = "x"};
    ret_chunk_in c = {"orphan text", 11, NULL, 0, 0, 0, 11};
    assert_int_not_equal(ret_doc_put(f->s, 4242, &d2, &c, 1, NULL, 0, &st, NULL, err), ZK_OK);
    assert_int_equal(count(f, "SELECT count(*) FROM documents"), 1);
    assert_int_equal(count(f, "SELECT count(*) FROM chunks"), 1);
}

static void test_vector_index_replay_and_snapshot(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    ret_put_status st;
    const char *a[] = {"red apples grow on trees", "bananas are yellow"};
    const char *b[] = {"数据库使用预写日志", "向量索引由数据库派生"};
    assert_int_equal(put(f, "a", "1", a, 2, &st), ZK_OK);
    assert_int_equal(put(f, "b", "1", b, 2, &st), ZK_OK);
    assert_int_equal(ret_store_sync(f->s, 1, err), ZK_OK);
    ret_vindex *vi;
    assert_int_equal(ret_store_vindex(f->s, 1, &vi, err), ZK_OK);
    assert_int_equal(ret_vindex_count(vi), 4);

    /* another process (second connection) replaces b; this one replays */
    ret_store *s2;
    assert_int_equal(ret_store_open(f->dir, 0, &s2, err), ZK_OK);
    ret_chunk_in c = {"完全不同的内容", strlen("完全不同的内容"), NULL, 0, 0, 0, 7};
    float v[DIM];
    const char *t = c.text;
    size_t l = c.len;
    assert_int_equal(llm_embed(f->emb, 1, &t, &l, v, err), ZK_OK);
    ret_doc_in d = {.ext_id = "b", .title = "b", .sha256 = "2"};
    assert_int_equal(ret_doc_put(s2, 1, &d, &c, 1, v, DIM, &st, NULL, err), ZK_OK);
    assert_int_equal(st, RET_PUT_REPLACED);
    ret_store_close(s2);
    assert_int_equal(ret_store_vindex(f->s, 1, &vi, err), ZK_OK);
    assert_int_equal(ret_vindex_count(vi), 3);

    /* snapshot + reopen: same ids, nothing to replay */
    assert_int_equal(ret_store_sync(f->s, 1, err), ZK_OK);
    ret_store_close(f->s);
    assert_int_equal(ret_store_open(f->dir, 0, &f->s, err), ZK_OK);
    assert_int_equal(ret_store_vindex(f->s, 1, &vi, err), ZK_OK);
    assert_int_equal(ret_vindex_count(vi), 3);
    int problems = -1;
    FILE *devnull = fopen("/dev/null", "w");
    assert_int_equal(ret_store_check(f->s, devnull, &problems, err), ZK_OK);
    assert_int_equal(problems, 0);

    /* a lost snapshot is rebuilt from the database */
    ret_store_close(f->s);
    char path[256];
    snprintf(path, sizeof path, "%s/vectors/kb-1/index.zkv", f->dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(ret_store_open(f->dir, 0, &f->s, err), ZK_OK);
    assert_int_equal(ret_store_vindex(f->s, 1, &vi, err), ZK_OK);
    assert_int_equal(ret_vindex_count(vi), 3);
    assert_int_equal(ret_store_check(f->s, devnull, &problems, err), ZK_OK);
    assert_int_equal(problems, 0);
    fclose(devnull);
}

static void test_model_mismatch(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    assert_int_equal(ret_kb_check_model(f->s, 1, "builtin-hash-v9", 64, err), ZK_OK);
    assert_int_equal(ret_kb_check_model(f->s, 1, "builtin-hash-v9", 64, err), ZK_OK);
    assert_int_equal(ret_kb_check_model(f->s, 1, "builtin-hash-v9", 128, err), ZK_MISMATCH);
    assert_non_null(strstr(err, "zhiku reindex"));
    assert_int_equal(ret_kb_check_model(f->s, 1, "other", 64, err), ZK_MISMATCH);
    int64_t kb;
    assert_int_equal(ret_kb_id(f->s, "nope", &kb, err), ZK_NOTFOUND);
}

static void test_fts_query_builder(void **state)
{
    (void)state;
    char err[ZK_ERRLEN], *q = NULL;
    assert_int_equal(ret__fts_query("How do Foxes run?", 32, &q, err), ZK_OK);
    assert_string_equal(q, "\"How\" OR \"do\" OR \"Foxes\" OR \"run\"");
    zk_free(q);
    assert_int_equal(ret__fts_query("知识库 \"quoted\" 知识", 32, &q, err), ZK_OK);
    /* 知识 appears twice: deduplicated; quotes inside are escaped */
    assert_string_equal(q, "\"知识\" OR \"识库\" OR \"quoted\"");
    zk_free(q);
    /* a word repeated back to back, and after another (once only each) */
    assert_int_equal(ret__fts_query("exza exza tokucom lusu Exza tokucom", 32, &q, err), ZK_OK);
    assert_string_equal(q, "\"exza\" OR \"tokucom\" OR \"lusu\"");
    zk_free(q);
    assert_int_equal(ret__fts_query("!!! ...", 32, &q, err), ZK_OK);
    assert_string_equal(q, "");
    zk_free(q);
    assert_int_equal(ret__fts_query("a b c d e f", 3, &q, err), ZK_OK);
    assert_string_equal(q, "\"a\" OR \"b\" OR \"c\"");
    zk_free(q);
    assert_int_equal(ret__fts_query("say \"hi\"there", 32, &q, err), ZK_OK);
    assert_string_equal(q, "\"say\" OR \"hi\" OR \"there\"");
    zk_free(q);
}

static void test_rrf_fusion(void **state)
{
    fixture *f = *state;
    ret_put_status st;
    /* x matches the query words exactly (BM25 strong); y shares character
     * n-grams only; z matches both a little */
    const char *x[] = {"zebra migration across the savanna"};
    const char *y[] = {"zebras migrating"};
    const char *z[] = {"the migration of zebra herds"};
    assert_int_equal(put(f, "x", "1", x, 1, &st), ZK_OK);
    assert_int_equal(put(f, "y", "1", y, 1, &st), ZK_OK);
    assert_int_equal(put(f, "z", "1", z, 1, &st), ZK_OK);
    ret_hit *h;
    size_t n = search(f, "zebra migration", RET_MODE_HYBRID, &h);
    assert_true(n >= 2);
    ret_search_opts o;
    ret_search_opts_init(&o, NULL);
    o.caller = &admin_caller;
    for (size_t i = 0; i < n; i++) {
        double want = 0;
        if (h[i].bm25_rank) want += o.w_bm25 / (o.rrf_k + h[i].bm25_rank);
        if (h[i].vector_rank) want += o.w_vector / (o.rrf_k + h[i].vector_rank);
        assert_true(h[i].score > want - 1e-12 && h[i].score < want + 1e-12);
        if (i) assert_true(h[i - 1].score >= h[i].score);
        assert_true(h[i].bm25_rank || h[i].vector_rank);
        if (h[i].vector_rank) assert_true(h[i].vector_sim > 0);
        if (h[i].bm25_rank) assert_true(h[i].bm25 > 0);
    }
    ret_hits_free(h, n);
    /* weights: a zero BM25 weight ranks purely by vector rank */
    o.w_bm25 = 0;
    char err[ZK_ERRLEN];
    assert_int_equal(ret_search(f->s, f->emb, "zebra migration", &o, &h, &n, err), ZK_OK);
    for (size_t i = 1; i < n; i++)
        if (h[i].vector_rank && h[i - 1].vector_rank) assert_true(h[i - 1].vector_rank < h[i].vector_rank);
    ret_hits_free(h, n);
}

/* Searches from several threads at once, each on its own connection (and
 * each with its scan helper: more threads than this machine's cores),
 * return exactly the hits each query returns alone. */
enum { CQ = 6, CTHREADS = 6, CROUNDS = 15 };
static const char *cqueries[CQ] = {"zebra herds", "river crossing at dawn", "lions and zebra",
                                   "dry season grass", "migration", "crocodiles wait"};

typedef struct {
    const char *dir;
    llm_embedder *emb;
    ret_hit *want[CQ];
    size_t nwant[CQ];
    int bad;
} searchers_arg;

static int same_hits(const ret_hit *a, size_t na, const ret_hit *b, size_t nb)
{
    if (na != nb) return 0;
    for (size_t i = 0; i < na; i++)
        if (a[i].chunk_id != b[i].chunk_id || a[i].score != b[i].score || a[i].vector_rank != b[i].vector_rank)
            return 0;
    return 1;
}

static void *searcher(void *p)
{
    searchers_arg *a = p;
    char err[ZK_ERRLEN];
    ret_store *s;
    if (ret_store_open(a->dir, 0, &s, err) != ZK_OK) {
        __atomic_add_fetch(&a->bad, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    ret_search_opts o;
    ret_search_opts_init(&o, NULL);
    o.caller = &admin_caller;
    for (int r = 0; r < CROUNDS; r++)
        for (int q = 0; q < CQ; q++) {
            ret_hit *h;
            size_t n;
            if (ret_search(s, a->emb, cqueries[q], &o, &h, &n, err) != ZK_OK ||
                !same_hits(a->want[q], a->nwant[q], h, n))
                __atomic_add_fetch(&a->bad, 1, __ATOMIC_SEQ_CST);
            else
                ret_hits_free(h, n);
        }
    ret_store_close(s);
    return NULL;
}

static void test_concurrent_searches_agree(void **state)
{
    fixture *f = *state;
    ret_put_status st;
    const char *words[] = {"zebra", "herds", "river", "crossing", "dawn", "lions", "dry", "season",
                           "grass", "migration", "crocodiles", "wait", "savanna", "rain"};
    char id[32], text[8][128];
    const char *texts[8];
    for (int d = 0; d < 40; d++) {
        for (int c = 0; c < 8; c++) {
            snprintf(text[c], sizeof text[c], "%s %s %s the %s of %s", words[(d + c) % 14], words[(d * 3 + c) % 14],
                     words[(d * 5 + 2 * c) % 14], words[(d + 7 * c) % 14], words[(d * 11 + c) % 14]);
            texts[c] = text[c];
        }
        snprintf(id, sizeof id, "doc%d", d);
        assert_int_equal(put(f, id, id, texts, 8, &st), ZK_OK);
    }
    searchers_arg a = {.dir = f->dir, .emb = f->emb};
    for (int q = 0; q < CQ; q++) {
        a.nwant[q] = search(f, cqueries[q], RET_MODE_HYBRID, &a.want[q]);
        assert_true(a.nwant[q] > 0);
    }
    pthread_t th[CTHREADS];
    for (int i = 0; i < CTHREADS; i++) assert_int_equal(pthread_create(&th[i], NULL, searcher, &a), 0);
    for (int i = 0; i < CTHREADS; i++) pthread_join(th[i], NULL);
    assert_int_equal(a.bad, 0);
    for (int q = 0; q < CQ; q++) ret_hits_free(a.want[q], a.nwant[q]);
}

/* A user who may read every document gets the administrator's vector hits
 * exactly: the filter drops nothing, so the search asks for k, as the
 * administrator's does, not for the extra rows a partial reader needs —
 * with a pruned column index, more rows asked means more candidates, so
 * both the cost and the hits would differ. */
static void test_full_reader_vector_hits_equal_admin(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], id[32], text[256];
    int64_t everyone = 0, ann = 0;
    assert_int_equal(ret_principal_parse(f->s, "everyone", &everyone, err), ZK_OK);
    assert_int_equal(ret_user_add(f->s, "ann", NULL, 0, &ann, err), ZK_OK);
    assert_int_equal(ret_kb_check_model(f->s, 1, llm_embedder_model(f->emb), DIM, err), ZK_OK);
    const char *words[] = {"delta", "basin", "silt", "levee", "flood", "tide", "marsh", "reed", "heron", "dune"};
    for (int d = 0; d < 200; d++) {
        snprintf(text, sizeof text, "%s %s %s %s and %s", words[d % 10], words[(d * 7 + 3) % 10], words[(d / 10) % 10],
                 words[(d * 3 + 1) % 10], words[(d / 3) % 10]);
        snprintf(id, sizeof id, "r%d", d);
        const char *t = text;
        size_t len = strlen(text);
        float vec[DIM];
        assert_int_equal(llm_embed(f->emb, 1, &t, &len, vec, err), ZK_OK);
        ret_chunk_in c = {text, len, "", 0, 0, 0, (int64_t)len};
        ret_doc_in doc = {.ext_id = id, .title = id, .sha256 = id, .format = "txt", .acl = &everyone, .nacl = 1};
        ret_put_status st;
        assert_int_equal(ret_doc_put(f->s, 1, &doc, &c, 1, vec, DIM, &st, NULL, err), ZK_OK);
    }
    /* a crude pruned scan: 2 dimensions, as many candidates as rows asked */
    ret_vindex *vi;
    assert_int_equal(ret_store_vindex(f->s, 1, &vi, err), ZK_OK);
    ret__vindex_tuning t = {.cols_prune_rows = 1, .cols_prune_top = 2, .cols_prune_cand_per_k = 1,
                            .cols_prune_cand_min = 1};
    ret__vindex_tune(vi, &t);
    ret_caller user;
    assert_int_equal(ret_caller_user(f->s, "ann", &user, err), ZK_OK);
    ret_search_opts o;
    ret_search_opts_init(&o, NULL);
    o.mode = RET_MODE_VECTOR;
    o.vector_k = 12;
    o.top_k = 12;
    const char *qs[] = {"delta silt flood marsh heron", "tide reed dune basin", "levee heron delta tide silt reed"};
    for (int q = 0; q < 3; q++) {
        ret_hit *a, *b;
        size_t na, nb;
        o.caller = &admin_caller;
        assert_int_equal(ret_search(f->s, f->emb, qs[q], &o, &a, &na, err), ZK_OK);
        o.caller = &user;
        assert_int_equal(ret_search(f->s, f->emb, qs[q], &o, &b, &nb, err), ZK_OK);
        assert_true(na > 0);
        assert_true(same_hits(a, na, b, nb));
        ret_hits_free(a, na);
        ret_hits_free(b, nb);
    }
    ret_caller_free(&user);
}

/* Two writers on one database (the server's connections, a CLI ingest):
 * a delete that reads before it writes must wait for the other writer, not
 * fail with "database is locked" when the other commits in between (the
 * soak test found this; units of work now start with BEGIN IMMEDIATE). */
typedef struct {
    const char *dir;
    int done, failed;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *a = p;
    char err[ZK_ERRLEN], id[32];
    ret_store *s;
    if (ret_store_open(a->dir, 0, &s, err) != ZK_OK) { a->failed = 1; return NULL; }
    float vec[DIM] = {1};
    for (int i = 0; i < 150 && !a->failed; i++) {
        snprintf(id, sizeof id, "w%d", i);
        ret_chunk_in c = {"writer text", 11, NULL, 0, 0, 0, 11};
        ret_doc_in d = {.ext_id = id, .title = id, .sha256 = id, .format = "txt"};
        ret_put_status st;
        if (ret_doc_put(s, 1, &d, &c, 1, vec, DIM, &st, NULL, err) != ZK_OK) a->failed = 1;
    }
    ret_store_close(s);
    __atomic_store_n(&a->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_concurrent_writers_wait(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], id[32];
    const char *t[] = {"to delete"};
    ret_put_status st;
    int64_t ids[150];
    int nids = 0;
    for (int i = 0; i < 150; i++) {
        snprintf(id, sizeof id, "del%d", i);
        assert_int_equal(put(f, id, id, t, 1, &st), ZK_OK);
        assert_int_equal(ret_doc_find(f->s, 1, id, &ids[nids++], err), ZK_OK);
    }
    writer_arg a = {f->dir, 0, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer, &a), 0);
    int deleted = 0;
    for (int i = 0; i < nids; i++) {
        zk_rc rc = ret_doc_delete(f->s, ids[i], err);
        if (rc != ZK_OK) fail_msg("delete %d while another connection writes: %s", i, err);
        deleted++;
    }
    pthread_join(th, NULL);
    assert_false(a.failed);
    assert_int_equal(deleted, 150);
}

int main(void)
{
    ret_caller_admin(&admin_caller);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrations_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_unchanged_replace_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_map_warmed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_put_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vector_index_replay_and_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_mismatch, setup, teardown),
        cmocka_unit_test(test_fts_query_builder),
        cmocka_unit_test_setup_teardown(test_rrf_fusion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_searches_agree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_reader_vector_hits_equal_admin, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
