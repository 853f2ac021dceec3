/* test_ingest.c — the ingestion pipeline's threads (indexer/ingest.c): with
 * two workers, a writer thread and small batches, every document is written
 * and reported exactly once; a document seen twice in one run (still in the
 * open batch, so invisible to the driving thread's read-only lookups) is
 * found by the writer — unchanged with the same text, replaced with another;
 * a re-run over committed documents reports them unchanged without work;
 * the change log holds one row per document (a run of its chunk ids) and a
 * fresh connection's vector index and access map expand the runs;
 * the WAL stays bounded though only the driving thread checkpoints while
 * the writer writes;
 * idx_below_writer lowers only the calling thread's priority; a bulk load
 * merges the text index lazily and puts the default back at its end. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "indexer/ingest.h"
#include "llm/embed.h"
#include "retrieval/acl.h"
#include "retrieval/search.h"
#include "retrieval/vindex.h"

typedef struct {
    int count[IDX__NSTATUS];
    char seen[64][32];
    int nseen;
} reports;

static void on_report(void *ctx, const char *id, idx_status st, size_t nchunks, const char *reason)
{
    (void)nchunks;
    (void)reason;
    reports *r = ctx;
    r->count[st]++;
    if (r->nseen < 64) snprintf(r->seen[r->nseen++], sizeof r->seen[0], "%s:%s", id, idx_status_name(st));
}

static zk_rc run_opts(ret_store *s, llm_embedder *e, const char *const *lines, int n, reports *r, int batch,
                     long wal_bound, char *err)
{
    idx_ingest_opts o;
    idx_ingest_opts_init(&o, NULL);
    o.workers = 2;
    o.batch_docs = batch;
    o.wal_bound = wal_bound;
    o.report = on_report;
    o.report_ctx = r;
    idx_ingester *ing = NULL;
    zk_rc rc = idx_ingester_new(s, e, &o, &ing, err);
    for (int i = 0; rc == ZK_OK && i < n; i++) rc = idx_ingest_json(ing, lines[i], strlen(lines[i]), "t.jsonl", err);
    if (rc == ZK_OK) rc = idx_ingester_finish(ing, err);
    idx_ingester_free(ing);
    return rc;
}

static zk_rc run(ret_store *s, llm_embedder *e, const char *const *lines, int n, reports *r, char *err)
{
    return run_opts(s, e, lines, n, r, 3, 0, err);
}

static int64_t query_int(ret_store *s, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(ret_store_db(s), sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* A store in a new temporary directory and a small builtin embedder. */
static void open_fresh(char *dir, ret_store **s, llm_embedder **e)
{
    char err[ZK_ERRLEN];
    assert_non_null(mkdtemp(dir));
    assert_int_equal(ret_store_open(dir, 0, s, err), ZK_OK);
    assert_int_equal(llm_embedder_builtin_new(64, e, err), ZK_OK);
}

static void close_fresh(const char *dir, ret_store *s, llm_embedder *e)
{
    llm_embedder_free(e);
    ret_store_close(s);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_threads_and_duplicates(void **state)
{
    (void)state;
    char dir[] = "/tmp/zk-ingest-XXXXXX", err[ZK_ERRLEN];
    ret_store *s;
    llm_embedder *e;
    open_fresh(dir, &s, &e);
    char buf[12][160];
    const char *lines[12];
    for (int i = 0; i < 10; i++) {
        snprintf(buf[i], sizeof buf[i], "{\"id\":\"d%d\",\"text\":\"document %d about rivers, mountains and zkmark%d\"}", i,
                 i, i);
        lines[i] = buf[i];
    }
    lines[10] = buf[3];   /* the same again: unchanged */
    snprintf(buf[11], sizeof buf[11], "{\"id\":\"d5\",\"text\":\"document five, rewritten: zkmarknew\"}");
    lines[11] = buf[11];  /* other text: replaced */
    reports r;
    memset(&r, 0, sizeof r);
    assert_int_equal(run(s, e, lines, 12, &r, err), ZK_OK);
    assert_int_equal(r.count[IDX_INDEXED], 10);
    assert_int_equal(r.count[IDX_UNCHANGED], 1);
    assert_int_equal(r.count[IDX_REPLACED], 1);
    assert_int_equal(r.count[IDX_FAILED], 0);
    assert_int_equal(r.nseen, 12);   /* each outcome once */
    assert_int_equal(query_int(s, "SELECT count(*) FROM documents WHERE status = 'indexed'"), 10);
    assert_int_equal(query_int(s, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id "
                                  "WHERE d.ext_id = 'd5' AND c.text LIKE '%zkmarknew%'"), 1);
    assert_int_equal(query_int(s, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id "
                                  "WHERE d.ext_id = 'd5' AND c.text LIKE '%zkmark5%'"), 0);
    assert_int_equal(query_int(s, "SELECT count(*) FROM vectors"), query_int(s, "SELECT count(*) FROM chunks"));
    /* one change row per written document: 11 adds (d5 twice), runs
     * covering every chunk ever added, the replaced ones deleted one by one */
    assert_int_equal(query_int(s, "SELECT count(*) FROM changes WHERE op = 1"), 11);
    assert_int_equal(query_int(s, "SELECT sum(n) FROM changes WHERE op = 1"),
                     query_int(s, "SELECT count(*) FROM chunks") + query_int(s, "SELECT count(*) FROM changes WHERE op = 0"));
    /* a new connection, no snapshot: the runs are replayed into the vector
     * index and the access map; every chunk is found, the replaced ones not */
    ret_store *s2;
    assert_int_equal(ret_store_open(dir, 0, &s2, err), ZK_OK);
    ret_vindex *vi;
    assert_int_equal(ret_store_vindex(s2, 1, &vi, err), ZK_OK);
    assert_int_equal(ret_vindex_count(vi), query_int(s, "SELECT count(*) FROM chunks"));
    ret_caller admin;
    ret_caller_admin(&admin);
    static const char *const modes[] = {"bm25", "vector"};
    for (int m = 0; m < 2; m++) {
        ret_search_opts so;
        ret_search_opts_init(&so, NULL);
        so.caller = &admin;
        so.mode = m == 0 ? RET_MODE_BM25 : RET_MODE_VECTOR;
        ret_hit *h;
        size_t nh;
        assert_int_equal(ret_search(s2, e, "zkmark7 rivers mountains", &so, &h, &nh, err), ZK_OK);
        assert_true(nh > 0);
        if (m == 0) assert_string_equal(h[0].ext_id, "d7");
        for (size_t k = 0; k < nh; k++) assert_null(strstr(h[k].text, "zkmark5"));   /* the replaced text */
        ret_hits_free(h, nh);
        (void)modes;
    }
    ret_store_close(s2);

    /* a second run: all committed, all unchanged */
    reports r2;
    memset(&r2, 0, sizeof r2);
    assert_int_equal(run(s, e, lines, 10, &r2, err), ZK_OK);
    assert_int_equal(r2.count[IDX_UNCHANGED], 9);   /* d5 now holds the rewritten text */
    assert_int_equal(r2.count[IDX_REPLACED], 1);
    close_fresh(dir, s, e);
}

static long file_size(const char *dir, const char *name)
{
    char path[256];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* 60 one-document batches write ~2 MB of WAL frames. The writer's own
 * connection never checkpoints automatically while the ingester lives;
 * the driving thread's passive checkpoints alone would never let the WAL
 * start over, but past the bound the writer checkpoints between batches,
 * so the WAL ends near the bound, with everything in the database file. */
static void test_wal_bounded(void **state)
{
    (void)state;
    char dir[] = "/tmp/zk-ingest-XXXXXX", err[ZK_ERRLEN];
    ret_store *s;
    llm_embedder *e;
    open_fresh(dir, &s, &e);
    enum { N = 60 };
    static char buf[N][4200];
    const char *lines[N];
    for (int i = 0; i < N; i++) {
        int w = snprintf(buf[i], sizeof buf[i], "{\"id\":\"w%d\",\"text\":\"", i);
        for (int k = 0; w < 4000; k++) w += snprintf(buf[i] + w, sizeof buf[i] - (size_t)w, "word%d_%d ", i, k);
        snprintf(buf[i] + w, sizeof buf[i] - (size_t)w, "\"}");
        lines[i] = buf[i];
    }
    reports r;
    memset(&r, 0, sizeof r);
    long bound = 128 << 10;
    assert_int_equal(run_opts(s, e, lines, N, &r, 1, bound, err), ZK_OK);
    assert_int_equal(r.count[IDX_INDEXED], N);
    long wal = file_size(dir, "zhiku.db-wal");
    assert_true(wal >= 0);
    assert_true(wal < 4 * bound);
    assert_true(file_size(dir, "zhiku.db") > 4 * bound);   /* checkpointed into the database */
    assert_int_equal(query_int(s, "SELECT count(*) FROM documents"), N);
    /* the vector index was brought up to date (partly while ingesting) */
    ret_vindex *vi;
    assert_int_equal(ret_store_vindex(s, 1, &vi, err), ZK_OK);
    assert_int_equal(ret_vindex_count(vi), query_int(s, "SELECT count(*) FROM chunks"));
    close_fresh(dir, s, e);
}

static int64_t fts_automerge(ret_store *s)
{
    return query_int(s, "SELECT coalesce((SELECT v FROM chunks_fts_config WHERE k = 'automerge'), 4)");
}

/* A bulk load (the CLI) merges the text index lazily while it runs and puts
 * FTS5's default back when it ends; any other ingester (a server upload)
 * merges eagerly, also after a bulk load that was killed before its end. */
static void test_bulk_merges_lazily(void **state)
{
    (void)state;
    char dir[] = "/tmp/zk-ingest-XXXXXX", err[ZK_ERRLEN];
    ret_store *s;
    llm_embedder *e;
    open_fresh(dir, &s, &e);
    const char *line = "{\"id\":\"b1\",\"text\":\"bulk loaded zkbulk text\"}";
    idx_ingest_opts o;
    idx_ingest_opts_init(&o, NULL);
    o.bulk = 1;
    idx_ingester *ing = NULL;
    assert_int_equal(idx_ingester_new(s, e, &o, &ing, err), ZK_OK);
    assert_int_equal(fts_automerge(s), 16);
    assert_int_equal(idx_ingest_json(ing, line, strlen(line), "t.jsonl", err), ZK_OK);
    assert_int_equal(idx_ingester_finish(ing, err), ZK_OK);
    idx_ingester_free(ing);
    assert_int_equal(fts_automerge(s), 4);
    assert_int_equal(query_int(s, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'zkbulk'"), 1);
    /* as a killed bulk load leaves it; the next upload merges eagerly */
    assert_int_equal(sqlite3_exec(ret_store_db(s), "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('automerge', 16)",
                                  NULL, NULL, NULL), SQLITE_OK);
    o.bulk = 0;
    assert_int_equal(idx_ingester_new(s, e, &o, &ing, err), ZK_OK);
    assert_int_equal(fts_automerge(s), 4);
    idx_ingester_free(ing);
    assert_int_equal(fts_automerge(s), 4);
    close_fresh(dir, s, e);
}

static void *nice_of_new_thread(void *arg)
{
    *(int *)arg = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    return NULL;
}

static void test_below_writer(void **state)
{
    (void)state;
    pid_t tid = (pid_t)syscall(SYS_gettid);
    int before = getpriority(PRIO_PROCESS, (id_t)tid);
    pthread_t t;
    int other = -100;
    idx_below_writer();
    int after = getpriority(PRIO_PROCESS, (id_t)tid);
    assert_true(after >= before && after >= 10);
    /* a thread it creates afterwards starts at the lowered priority: the
     * ingester's writer must therefore be created before the call */
    assert_int_equal(pthread_create(&t, NULL, nice_of_new_thread, &other), 0);
    pthread_join(t, NULL);
    assert_int_equal(other, after);   /* threads inherit their creator's */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_and_duplicates),
        cmocka_unit_test(test_wal_bounded),
        cmocka_unit_test(test_below_writer),
        cmocka_unit_test(test_bulk_merges_lazily),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
