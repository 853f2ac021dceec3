/* test_faults.c — fault injection in the storage and core paths (issue 8).
 *
 * I/O: a wrapping sqlite3 VFS (test code only) makes xWrite/xSync/xTruncate
 * fail with SQLITE_FULL or SQLITE_IOERR after N calls, persistently (a full
 * or dead disk) or once (a transient error). For every N until the run gets
 * through untouched, documents are ingested through the real ingester and
 * store; afterwards, reopened on the normal VFS: SQLite and FTS5 integrity,
 * `zhiku check` (ret_store_check: chunks, vectors, index == vectors table),
 * every document committed before still there and searchable, every one
 * reported indexed there, a replaced one in exactly its old or new version,
 * and the store writable again.
 *
 * Memory: zk_fail_alloc_after(N) (zhiku's allocator; jansson is routed
 * through it too) and a failing SQLite allocator, looped over N for the
 * tokenizer, the parsers (text, Markdown, HTML), the chunker, JSON decoding
 * and the HIT shape, store writes, search and the ingestion pipeline: every
 * N ends in success or a clean error, never a crash; leaks show under the
 * ASan build. Each loop takes a fraction of a second. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include <sqlite3.h>

#include "retrieval/store.h"
#include "retrieval/search.h"
#include "retrieval/tokenizer.h"
#include "indexer/ingest.h"
#include "indexer/chunker.h"
#include "indexer/parse/parse.h"
#include "llm/embed.h"
#include "server/shapes.h"

#define DIM 32
#define MAX_N 4000            /* a loop that never gets through fails the test */

/* TODO(retrieval/search.c): under an allocation failure ret_search can
 * return ZK_OK with missing or no hits instead of ZK_NOMEM: the SQL and the
 * FTS MATCH expression are built in zk_bufs whose append errors are not
 * checked (an empty SQL prepares to a NULL statement that yields no rows),
 * and ret__fts_query ignores the tokenizer callback's failure. Reported to
 * that file's owner; set to 1 once fixed to make such a result fail here. */
#define SEARCH_OOM_EXACT 1

static ret_caller admin;

/* ---- the faulty VFS ------------------------------------------------------------ */

typedef struct {
    int armed;
    long countdown;            /* operations still allowed */
    int code;                  /* SQLITE_FULL or SQLITE_IOERR_* */
    int once;                  /* fail one operation, then work again */
    long hits;                 /* operations failed */
} fault_plan;

static fault_plan plan;
static sqlite3_vfs *real_vfs;
static sqlite3_vfs faulty_vfs;

typedef struct {
    sqlite3_file base;
    sqlite3_file *real;        /* follows this struct in the same allocation */
} faulty_file;

static int fault_now(void)
{
    if (!__atomic_load_n(&plan.armed, __ATOMIC_SEQ_CST)) return 0;
    if (__atomic_fetch_sub(&plan.countdown, 1, __ATOMIC_SEQ_CST) > 0) return 0;
    __atomic_add_fetch(&plan.hits, 1, __ATOMIC_SEQ_CST);
    if (plan.once) __atomic_store_n(&plan.armed, 0, __ATOMIC_SEQ_CST);
    return 1;
}

#define REAL(f) (((faulty_file *)(f))->real)
static int f_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int f_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off) { return REAL(f)->pMethods->xRead(REAL(f), p, n, off); }
static int f_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    if (fault_now()) return plan.code == SQLITE_FULL ? SQLITE_FULL : SQLITE_IOERR_WRITE;
    return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    if (fault_now()) return plan.code == SQLITE_FULL ? SQLITE_FULL : SQLITE_IOERR_TRUNCATE;
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int f_sync(sqlite3_file *f, int flags)
{
    if (fault_now()) return plan.code == SQLITE_FULL ? SQLITE_FULL : SQLITE_IOERR_FSYNC;
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int f_size(sqlite3_file *f, sqlite3_int64 *out) { return REAL(f)->pMethods->xFileSize(REAL(f), out); }
static int f_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int f_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int f_check(sqlite3_file *f, int *out) { return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out); }
static int f_fctl(sqlite3_file *f, int op, void *arg) { return REAL(f)->pMethods->xFileControl(REAL(f), op, arg); }
static int f_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int f_devchar(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int f_shmmap(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, pp);
}
static int f_shmlock(sqlite3_file *f, int off, int n, int flags) { return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags); }
static void f_shmbarrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int f_shmunmap(sqlite3_file *f, int del) { return REAL(f)->pMethods->xShmUnmap(REAL(f), del); }
static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp) { return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp); }
static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) { return REAL(f)->pMethods->xUnfetch(REAL(f), off, p); }

static const sqlite3_io_methods faulty_io = {
    .iVersion = 3, .xClose = f_close, .xRead = f_read, .xWrite = f_write, .xTruncate = f_truncate,
    .xSync = f_sync, .xFileSize = f_size, .xLock = f_lock, .xUnlock = f_unlock,
    .xCheckReservedLock = f_check, .xFileControl = f_fctl, .xSectorSize = f_sector,
    .xDeviceCharacteristics = f_devchar, .xShmMap = f_shmmap, .xShmLock = f_shmlock,
    .xShmBarrier = f_shmbarrier, .xShmUnmap = f_shmunmap, .xFetch = f_fetch, .xUnfetch = f_unfetch,
};

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
    (void)vfs;
    faulty_file *ff = (faulty_file *)file;
    ff->real = (sqlite3_file *)(ff + 1);
    int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out_flags);
    /* SQLite calls xClose only when pMethods is set, so mirror the real one */
    ff->base.pMethods = ff->real->pMethods ? &faulty_io : NULL;
    return rc;
}
static int v_delete(sqlite3_vfs *v, const char *n, int sync) { (void)v; return real_vfs->xDelete(real_vfs, n, sync); }
static int v_access(sqlite3_vfs *v, const char *n, int fl, int *out) { (void)v; return real_vfs->xAccess(real_vfs, n, fl, out); }
static int v_full(sqlite3_vfs *v, const char *n, int nout, char *out) { (void)v; return real_vfs->xFullPathname(real_vfs, n, nout, out); }
static void *v_dlopen(sqlite3_vfs *v, const char *n) { (void)v; return real_vfs->xDlOpen(real_vfs, n); }
static void v_dlerror(sqlite3_vfs *v, int n, char *m) { (void)v; real_vfs->xDlError(real_vfs, n, m); }
static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *s))(void) { (void)v; return real_vfs->xDlSym(real_vfs, h, s); }
static void v_dlclose(sqlite3_vfs *v, void *h) { (void)v; real_vfs->xDlClose(real_vfs, h); }
static int v_random(sqlite3_vfs *v, int n, char *out) { (void)v; return real_vfs->xRandomness(real_vfs, n, out); }
static int v_sleep(sqlite3_vfs *v, int us) { (void)v; return real_vfs->xSleep(real_vfs, us); }
static int v_time(sqlite3_vfs *v, double *out) { (void)v; return real_vfs->xCurrentTime(real_vfs, out); }
static int v_lasterr(sqlite3_vfs *v, int n, char *m) { (void)v; return real_vfs->xGetLastError(real_vfs, n, m); }
static int v_time64(sqlite3_vfs *v, sqlite3_int64 *out) { (void)v; return real_vfs->xCurrentTimeInt64(real_vfs, out); }

static void vfs_install(void)
{
    if (real_vfs) return;
    real_vfs = sqlite3_vfs_find(NULL);
    assert_non_null(real_vfs);
    faulty_vfs = (sqlite3_vfs){
        .iVersion = 2, .szOsFile = (int)sizeof(faulty_file) + real_vfs->szOsFile, .mxPathname = real_vfs->mxPathname,
        .zName = "zk-faulty", .xOpen = v_open, .xDelete = v_delete, .xAccess = v_access,
        .xFullPathname = v_full, .xDlOpen = v_dlopen, .xDlError = v_dlerror, .xDlSym = v_dlsym,
        .xDlClose = v_dlclose, .xRandomness = v_random, .xSleep = v_sleep, .xCurrentTime = v_time,
        .xGetLastError = v_lasterr, .xCurrentTimeInt64 = v_time64,
    };
    assert_int_equal(sqlite3_vfs_register(&faulty_vfs, 0), SQLITE_OK);
}

/* Make the faulty VFS (or the real one) the default: ret_store_open uses it. */
static void vfs_use(int faulty) { sqlite3_vfs_register(faulty ? &faulty_vfs : real_vfs, 1); }

/* ---- helpers ------------------------------------------------------------------- */

/* Scratch directories on tmpfs when there is one: hundreds of runs, each
 * with fsyncs (checkpoints, snapshots), would otherwise wait on the disk. */
static void tmp_template(char *out, size_t cap)
{
    snprintf(out, cap, "%s/zk-faults-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
}

static void rm_rf(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void cp_dir(const char *from, const char *to)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", to, from, to);
    assert_int_equal(system(cmd), 0);
}

#define NBASE 4
#define NNEW 4
#define MAX_REPORTS 64

typedef struct {
    char id[32];
    idx_status st;
} report_rec;

typedef struct {
    report_rec r[MAX_REPORTS];
    int n;
} reports;

static void on_report(void *ctx, const char *ext_id, idx_status st, size_t nchunks, const char *reason)
{
    reports *rs = ctx;
    (void)nchunks;
    (void)reason;
    if (rs->n < MAX_REPORTS) {
        snprintf(rs->r[rs->n].id, sizeof rs->r[rs->n].id, "%s", ext_id);
        rs->r[rs->n++].st = st;
    }
}

static int reported(const reports *rs, const char *id, idx_status st)
{
    for (int i = 0; i < rs->n; i++)
        if (!strcmp(rs->r[i].id, id) && rs->r[i].st == st) return 1;
    return 0;
}

static void doc_json(char *buf, size_t cap, const char *id, const char *marker)
{
    /* two chunks' worth of text, so a document spans several rows */
    snprintf(buf, cap,
             "{\"id\":\"%s\",\"title\":\"T %s\",\"text\":\"%s 知识库 检索 wombat burrow inspection happens every "
             "Tuesday. %s The replica shard backup policy is reviewed monthly by the operations team. "
             "长江 黄河 山脉 river mountain forest.\"}",
             id, id, marker, marker);
}

/* Ingest docs through the real pipeline; returns the first error. */
static zk_rc ingest_docs(ret_store *s, llm_embedder *emb, const char *const *ids, const char *const *markers, int n,
                         reports *rs, char *err)
{
    idx_ingest_opts o;
    idx_ingest_opts_init(&o, NULL);
    o.workers = 1;
    o.batch_docs = 2;
    o.chunk.target_chars = 80;
    o.chunk.overlap_chars = 0;
    o.report = on_report;
    o.report_ctx = rs;
    idx_ingester *ing = NULL;
    zk_rc rc = idx_ingester_new(s, emb, &o, &ing, err);
    char json[1024];
    for (int i = 0; rc == ZK_OK && i < n; i++) {
        doc_json(json, sizeof json, ids[i], markers[i]);
        rc = idx_ingest_json(ing, json, strlen(json), ids[i], err);
    }
    if (rc == ZK_OK) rc = idx_ingester_finish(ing, err);
    idx_ingester_free(ing);
    return rc;
}

/* Top BM25 hit's external id for a marker word ("" when none). */
static void top_hit(ret_store *s, llm_embedder *emb, const char *q, ret_mode mode, char *out, size_t cap)
{
    ret_search_opts o;
    char err[ZK_ERRLEN];
    ret_hit *hits = NULL;
    size_t n = 0;
    ret_search_opts_init(&o, NULL);
    o.mode = mode;
    o.top_k = 1;
    o.caller = &admin;
    zk_rc rc = ret_search(s, emb, q, &o, &hits, &n, err);
    if (rc != ZK_OK) fail_msg("search '%s': %s", q, err);
    snprintf(out, cap, "%s", n ? hits[0].ext_id : "");
    ret_hits_free(hits, n);
}

static const char *doc_status(ret_store *s, const char *id, char *buf, size_t cap)
{
    sqlite3_stmt *st = NULL;
    buf[0] = '\0';
    assert_int_equal(sqlite3_prepare_v2(ret_store_db(s), "SELECT status FROM documents WHERE ext_id = ?", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return buf;
}

static void expect_sql_ok(ret_store *s, const char *sql, const char *what)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(ret_store_db(s), sql, -1, &st, NULL), SQLITE_OK);
    int r = sqlite3_step(st);
    if (r != SQLITE_ROW && r != SQLITE_DONE) fail_msg("%s: %s", what, sqlite3_errmsg(ret_store_db(s)));
    if (r == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "ok"))
        fail_msg("%s: %s", what, sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

/* The whole verification after a fault, on the normal VFS. */
static void verify_after_fault(const char *dir, llm_embedder *emb, const reports *rs, long n, const char *kind)
{
    char err[ZK_ERRLEN], got[64], status[32];
    ret_store *s = NULL;
    if (ret_store_open(dir, 0, &s, err) != ZK_OK) fail_msg("%s N=%ld: reopen: %s", kind, n, err);
    expect_sql_ok(s, "PRAGMA integrity_check", "integrity_check");
    expect_sql_ok(s, "INSERT INTO chunks_fts(chunks_fts) VALUES('integrity-check')", "fts integrity-check");
    int problems = -1;
    FILE *out = fopen("/dev/null", "w");
    assert_int_equal(ret_store_check(s, out, &problems, err), ZK_OK);
    fclose(out);
    if (problems) fail_msg("%s N=%ld: zhiku check found %d problems", kind, n, problems);
    /* committed before: intact and searchable (b1 was being replaced) */
    for (int i = 0; i < NBASE; i++) {
        char id[16], q[32];
        snprintf(id, sizeof id, "b%d", i);
        snprintf(q, sizeof q, "zkbase%d", i);
        if (strcmp(doc_status(s, id, status, sizeof status), "indexed"))
            fail_msg("%s N=%ld: committed document %s is '%s'", kind, n, id, status);
        top_hit(s, emb, q, RET_MODE_BM25, got, sizeof got);
        if (i != 1 && strcmp(got, id)) fail_msg("%s N=%ld: %s not found by its marker (got '%s')", kind, n, id, got);
    }
    /* the replaced document: exactly its old or its new version */
    char old_hit[64], new_hit[64];
    top_hit(s, emb, "zkbase1", RET_MODE_BM25, old_hit, sizeof old_hit);
    top_hit(s, emb, "zkrepl1", RET_MODE_BM25, new_hit, sizeof new_hit);
    if (!strcmp(old_hit, "b1") == !strcmp(new_hit, "b1"))
        fail_msg("%s N=%ld: replaced b1 is not exactly one version (old '%s', new '%s')", kind, n, old_hit, new_hit);
    if (reported(rs, "b1", IDX_REPLACED) && strcmp(new_hit, "b1"))
        fail_msg("%s N=%ld: b1 reported replaced but the old version is there", kind, n);
    /* new documents: reported indexed => present; otherwise absent, failed or complete */
    for (int i = 0; i < NNEW; i++) {
        char id[16], q[32];
        snprintf(id, sizeof id, "n%d", i);
        snprintf(q, sizeof q, "zknew%d", i);
        doc_status(s, id, status, sizeof status);
        top_hit(s, emb, q, RET_MODE_BM25, got, sizeof got);
        if (reported(rs, id, IDX_INDEXED) && (strcmp(status, "indexed") || strcmp(got, id)))
            fail_msg("%s N=%ld: %s reported indexed but is '%s' / search '%s'", kind, n, id, status, got);
        if (!strcmp(status, "indexed") && strcmp(got, id))
            fail_msg("%s N=%ld: %s is indexed but not searchable", kind, n, id);
        if (status[0] && strcmp(status, "indexed") && strcmp(status, "failed"))
            fail_msg("%s N=%ld: %s has status '%s'", kind, n, id, status);
    }
    /* vector search agrees with SQLite too (index replayed from the truth) */
    top_hit(s, emb, "zkbase3 知识库", RET_MODE_VECTOR, got, sizeof got);
    assert_true(got[0] != '\0');
    /* and the store takes writes again: the same run now succeeds */
    static const char *const ids[] = {"n0", "n1", "n2", "n3", "b1"};
    static const char *const markers[] = {"zknew0", "zknew1", "zknew2", "zknew3", "zkrepl1"};
    reports again = {.n = 0};
    if (ingest_docs(s, emb, ids, markers, 5, &again, err) != ZK_OK)
        fail_msg("%s N=%ld: ingest after recovery: %s", kind, n, err);
    top_hit(s, emb, "zknew3", RET_MODE_BM25, got, sizeof got);
    assert_string_equal(got, "n3");
    ret_store_close(s);
}

/* One kind of I/O fault, for N = 0, 1, 2, ... until a run gets through. */
static void io_fault_loop(int code, int once, const char *kind)
{
    char base[64], dir[96], err[ZK_ERRLEN];
    llm_embedder *emb = NULL;
    vfs_install();
    assert_int_equal(llm_embedder_builtin_new(DIM, &emb, err), ZK_OK);
    tmp_template(base, sizeof base);
    assert_non_null(mkdtemp(base));
    snprintf(dir, sizeof dir, "%s/run", base);
    char tmpl[96];
    snprintf(tmpl, sizeof tmpl, "%s/template", base);
    {   /* the committed state every run starts from */
        ret_store *s = NULL;
        reports rs = {.n = 0};
        static const char *const ids[] = {"b0", "b1", "b2", "b3"};
        static const char *const markers[] = {"zkbase0", "zkbase1", "zkbase2", "zkbase3"};
        assert_int_equal(ret_store_open(tmpl, 0, &s, err), ZK_OK);
        assert_int_equal(ingest_docs(s, emb, ids, markers, NBASE, &rs, err), ZK_OK);
        ret_store_close(s);
    }
    long n, failed_runs = 0, open_failures = 0;
    for (n = 0; n < MAX_N; n++) {
        cp_dir(tmpl, dir);
        reports rs = {.n = 0};
        ret_store *s = NULL;
        zk_rc rc;
        err[0] = '\0';
        plan = (fault_plan){.armed = 1, .countdown = n, .code = code, .once = once};
        vfs_use(1);
        if ((rc = ret_store_open(dir, 0, &s, err)) == ZK_OK) {
            static const char *const ids[] = {"n0", "n1", "b1", "n2", "n3"};
            static const char *const markers[] = {"zknew0", "zknew1", "zkrepl1", "zknew2", "zknew3"};
            rc = ingest_docs(s, emb, ids, markers, 5, &rs, err);
            ret_store_close(s);
        } else {
            open_failures++;
        }
        long hits = plan.hits;
        plan.armed = 0;
        vfs_use(0);
        if (hits && rc != ZK_OK) {
            failed_runs++;
            if (!err[0]) fail_msg("%s N=%ld: failed (%s) without a message", kind, n, zk_errname(rc));
            if (code == SQLITE_FULL && !once && !strstr(err, "disk full"))
                fail_msg("%s N=%ld: the error does not say the disk is full: %s", kind, n, err);
        }
        if (!hits && rc != ZK_OK) fail_msg("%s N=%ld: failed with no fault injected: %s", kind, n, err);
        verify_after_fault(dir, emb, &rs, n, kind);
        if (!hits) break;   /* the whole run fit in N operations: done */
    }
    if (n == MAX_N) fail_msg("%s: still failing after %d operations", kind, MAX_N);
    print_message("%s: %ld fault points, %ld failed cleanly (%ld at open), all recovered\n", kind, n, failed_runs,
                  open_failures);
    assert_true(failed_runs > 0);
    llm_embedder_free(emb);
    rm_rf(base);
}

static void test_disk_full(void **state) { (void)state; io_fault_loop(SQLITE_FULL, 0, "disk full"); }
static void test_io_error(void **state) { (void)state; io_fault_loop(SQLITE_IOERR, 0, "I/O error"); }
static void test_io_error_transient(void **state) { (void)state; io_fault_loop(SQLITE_IOERR, 1, "transient I/O error"); }

/* ---- allocation failures ------------------------------------------------------------ */

/* SQLite's allocator, failing like zk's once sqlite_budget reaches 0. */
static sqlite3_mem_methods real_mem;
static long sqlite_budget = -1;

static int sq_fail(void)
{
    long b = __atomic_load_n(&sqlite_budget, __ATOMIC_SEQ_CST);
    while (b > 0)
        if (__atomic_compare_exchange_n(&sqlite_budget, &b, b - 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return 0;
    return b == 0;
}
static void *sq_malloc(int n) { return sq_fail() ? NULL : real_mem.xMalloc(n); }
static void *sq_realloc(void *p, int n) { return sq_fail() ? NULL : real_mem.xRealloc(p, n); }
static void sq_free(void *p) { real_mem.xFree(p); }
static int sq_size(void *p) { return real_mem.xSize(p); }
static int sq_roundup(int n) { return real_mem.xRoundup(n); }
static int sq_init(void *p) { return real_mem.xInit(p); }
static void sq_shutdown(void *p) { real_mem.xShutdown(p); }

/* Budgets for one step: zhiku's allocator gets n, SQLite's too when both. */
static void budget_set(long n, int sqlite_too)
{
    __atomic_store_n(&sqlite_budget, sqlite_too ? n : -1, __ATOMIC_SEQ_CST);
    zk_fail_alloc_after(n);
}

/* Off again; 1 when a failure was injected during the step. */
static int budget_clear(void)
{
    long z = zk_fail_alloc_after(-1);
    long q = __atomic_exchange_n(&sqlite_budget, -1, __ATOMIC_SEQ_CST);
    return z == 0 || q == 0;
}

static int clean_rc(zk_rc rc) { return rc == ZK_OK || rc == ZK_NOMEM || rc == ZK_DB; }

/* Run the statements for N = 0, 1, 2, ... allocations until they get
 * through without an injected failure. */
#define ALLOC_LOOP(what, sqlite_too, ...)                                                                    \
    do {                                                                                                      \
        long n_;                                                                                              \
        int hit_ = 1;                                                                                         \
        for (n_ = 0; n_ < MAX_N && hit_; n_++) {                                                              \
            budget_set(n_, sqlite_too);                                                                       \
            __VA_ARGS__                                                                                       \
            hit_ = budget_clear();                                                                            \
        }                                                                                                     \
        if (hit_) fail_msg("%s: still failing after %d allocations", what, MAX_N);                            \
        print_message("%s: %ld allocation failure points, all clean\n", what, n_ - 1);                       \
    } while (0)

static int count_tok(void *ctx, int kind, const char *tok, int ntok, int start, int end)
{
    (void)kind, (void)tok, (void)ntok, (void)start, (void)end;
    (*(int *)ctx)++;
    return 0;
}

static const char MD[] = "# 员工手册\n\n## 请假\n\n年假每年十天。Annual leave is ten days per year.\n\n"
                         "- item one\n- item two\n\n```\ncode block\n```\n\n## 报销\n\n发票需要在三十天内提交。\n";
static const char HTML[] = "<html><head><title>常见问题</title></head><body><h1>产品</h1><p>如何重置密码？"
                           "Click <b>Reset</b>.</p><h2>账户</h2><ul><li>一</li><li>二</li></ul>"
                           "<script>x()</script><table><tr><td>a</td><td>b</td></tr></table></body></html>";
static const char TXT[] = "Onboarding.\n\nWelcome to the team. 欢迎加入。第一周请完成安全培训。\n\n"
                          "The VPN guide is on the wiki; 3.14 is not a sentence end.";

static void test_alloc_tokenizer(void **state)
{
    (void)state;
    static const char text[] = "Ｚｈｉｋｕ 知识库检索 running runners 3.14 e-mail 日本語テキスト emoji 😀 end";
    ALLOC_LOOP("tokenizer", 0, {
        ret_tokenizer *t = ret_tokenizer_new_opts(n_ & 1);
        if (t) {
            int count = 0;
            ret_tokenizer_run(t, text, (int)strlen(text), 0, &count, count_tok);
            ret_tokenizer_run(t, text, (int)strlen(text), 1, &count, count_tok);
            ret_tokenizer_free(t);
        }
    });
}

static void test_alloc_parse_and_chunk(void **state)
{
    (void)state;
    static const struct { const char *name, *data; size_t len; } in[] = {
        {"handbook.md", MD, sizeof MD - 1}, {"faq.html", HTML, sizeof HTML - 1}, {"onboarding.txt", TXT, sizeof TXT - 1}};
    char err[ZK_ERRLEN];
    for (size_t k = 0; k < ZK_ARRAY_LEN(in); k++) {
        char what[64];
        snprintf(what, sizeof what, "parse %s", in[k].name);
        ALLOC_LOOP(what, 0, {
            idx_parsed *doc = NULL;
            zk_rc rc = idx_parse(in[k].name, in[k].data, in[k].len, &doc, err);
            if (rc != ZK_OK && rc != ZK_NOMEM) fail_msg("%s N=%ld: %s: %s", what, n_, zk_errname(rc), err);
            if (rc == ZK_OK) assert_true(doc->nblocks > 0);
            idx_parsed_free(doc);
        });
        idx_parsed *doc = NULL;
        assert_int_equal(idx_parse(in[k].name, in[k].data, in[k].len, &doc, err), ZK_OK);
        idx_chunk_opts co;
        idx_chunk_opts_default(&co);
        co.target_chars = 24;
        co.overlap_chars = 8;
        snprintf(what, sizeof what, "chunk %s", in[k].name);
        ALLOC_LOOP(what, 0, {
            idx_chunk *ch = NULL;
            size_t nch = 0;
            zk_rc rc = idx_chunk_doc(doc, &co, &ch, &nch, err);
            if (rc != ZK_OK && rc != ZK_NOMEM) fail_msg("%s N=%ld: %s: %s", what, n_, zk_errname(rc), err);
            if (rc == ZK_OK) assert_true(nch > 1);
            idx_chunks_free(ch, nch);
        });
        idx_parsed_free(doc);
    }
}

static void test_alloc_json(void **state)
{
    (void)state;
    static const char body[] = "{\"query\":\"年假 annual leave\",\"top_k\":5,\"mode\":\"hybrid\","
                               "\"filters\":{\"dept\":\"hr\"},\"kb\":\"default\",\"list\":[1,2,3,\"四\"]}";
    ALLOC_LOOP("JSON request decoding", 0, {
        json_error_t je;
        json_t *j = json_loadb(body, sizeof body - 1, JSON_REJECT_DUPLICATES, &je);
        if (j) assert_true(json_is_object(j));
        json_decref(j);
    });
    ret_hit h = {.chunk_id = 7, .doc_id = 3, .ext_id = "d3", .source = "/x/d3.md", .title = "标题", .heading = "A > B",
                 .text = "正文 text", .snippet = "正文", .score = 0.5, .bm25_rank = 1, .vector_rank = 2};
    ALLOC_LOOP("HIT shape", 0, {
        json_t *j = srv_hit_json(&h);
        if (j) {
            char *s = json_dumps(j, JSON_COMPACT);
            free(s);
        }
        json_decref(j);
    });
}

typedef struct {
    char dir[64];
    ret_store *s;
    llm_embedder *emb;
} world;

static void world_open(world *w)
{
    char err[ZK_ERRLEN];
    tmp_template(w->dir, sizeof w->dir);
    assert_non_null(mkdtemp(w->dir));
    assert_int_equal(ret_store_open(w->dir, 0, &w->s, err), ZK_OK);
    assert_int_equal(llm_embedder_builtin_new(DIM, &w->emb, err), ZK_OK);
    assert_int_equal(ret_kb_check_model(w->s, 1, llm_embedder_model(w->emb), DIM, err), ZK_OK);
}

static void world_check(world *w, const char *what, long n)
{
    char err[ZK_ERRLEN];
    int problems = -1;
    char *report = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&report, &len);
    zk_rc rc = ret_store_check(w->s, out, &problems, err);
    fclose(out);
    if (rc != ZK_OK || problems)
        fail_msg("%s N=%ld: store inconsistent after an allocation failure (%d problems): %s%s", what, n, problems,
                 rc != ZK_OK ? err : "", report);
    free(report);
}

static void world_close(world *w)
{
    ret_store_close(w->s);
    llm_embedder_free(w->emb);
    rm_rf(w->dir);
}

static zk_rc put_doc(world *w, const char *id, const char *text, char *err)
{
    const char *texts[2] = {text, "第二块 second chunk of the document"};
    size_t lens[2] = {strlen(texts[0]), strlen(texts[1])};
    float vecs[2 * DIM];
    ret_chunk_in c[2] = {{texts[0], lens[0], "H", 0, 0, 0, 10}, {texts[1], lens[1], NULL, 0, 1, 10, 20}};
    zk_rc rc = llm_embed(w->emb, 2, texts, lens, vecs, err);
    if (rc != ZK_OK) return rc;
    char sha[65];
    zk_sha256_hex(text, strlen(text), sha);
    ret_doc_in d = {.ext_id = id, .title = id, .sha256 = sha, .format = "txt"};
    ret_put_status st;
    return ret_doc_put(w->s, 1, &d, c, 2, vecs, DIM, &st, NULL, err);
}

static void test_alloc_store_and_search(void **state)
{
    (void)state;
    world w;
    char err[ZK_ERRLEN];
    world_open(&w);
    assert_int_equal(put_doc(&w, "base", "zkbase 年假 annual leave policy", err), ZK_OK);
    for (int sqlite_too = 0; sqlite_too <= 1; sqlite_too++) {
        const char *what = sqlite_too ? "store insert (zk + SQLite allocators)" : "store insert";
        long n;
        int hit = 1;
        for (n = 0; n < MAX_N && hit; n++) {
            char id[48], text[96];
            snprintf(id, sizeof id, "d%d-%ld", sqlite_too, n);
            snprintf(text, sizeof text, "zkdoc%d%ld 报销 expenses", sqlite_too, n);
            budget_set(n, sqlite_too);
            zk_rc rc = put_doc(&w, id, text, err);
            hit = budget_clear();
            if (!clean_rc(rc)) fail_msg("%s N=%ld: %s: %s", what, n, zk_errname(rc), err);
            if (rc != ZK_OK && !hit) fail_msg("%s N=%ld: failed with no injected failure: %s", what, n, err);
            if (rc != ZK_OK && sqlite_too) {
                /* after SQLITE_NOMEM the connection's FTS5 state may be stale
                 * (its own integrity-check reports "malformed" while the file
                 * is sound): a connection whose write failed is discarded, as
                 * the server does with one that served a 5xx */
                ret_store_close(w.s);
                assert_int_equal(ret_store_open(w.dir, 0, &w.s, err), ZK_OK);
            }
            world_check(&w, what, n);   /* the document is complete or absent */
        }
        if (hit) fail_msg("%s: still failing after %d allocations", what, MAX_N);
        print_message("%s: %ld allocation failure points, all clean\n", what, n - 1);
        const char *swhat = sqlite_too ? "search (zk + SQLite allocators)" : "search";
        long silent = 0;
        for (int m = 0; m < 3; m++) {
            ALLOC_LOOP(swhat, sqlite_too, {
                ret_search_opts o;
                ret_hit *hits = NULL;
                size_t nh = 0;
                ret_search_opts_init(&o, NULL);
                o.mode = (ret_mode)m;
                o.caller = &admin;
                zk_rc rc = ret_search(w.s, w.emb, "zkbase 年假 leave", &o, &hits, &nh, err);
                if (!clean_rc(rc)) fail_msg("%s N=%ld: %s: %s", swhat, n_, zk_errname(rc), err);
                if (rc == ZK_OK && (nh < 1 || strcmp(hits[0].ext_id, "base"))) {
                    if (SEARCH_OOM_EXACT)
                        fail_msg("%s mode %d N=%ld: success with %zu hits, top '%s'", swhat, m, n_, nh,
                                 nh ? hits[0].ext_id : "");
                    silent++;
                }
                ret_hits_free(hits, nh);
            });
        }
        if (silent)
            print_message("%s: %ld allocation failures gave a wrong result instead of an error "
                          "(known bug in retrieval/search.c, see SEARCH_OOM_EXACT)\n", swhat, silent);
    }
    world_close(&w);
}

static void test_alloc_ingest(void **state)
{
    (void)state;
    world w;
    char err[ZK_ERRLEN];
    world_open(&w);
    int k = 0;
    ALLOC_LOOP("ingest pipeline", 0, {
        char id0[32], id1[32], m0[32], m1[32];
        snprintf(id0, sizeof id0, "i%da", k);
        snprintf(id1, sizeof id1, "i%db", k);
        snprintf(m0, sizeof m0, "zki%da", k);
        snprintf(m1, sizeof m1, "zki%db", k);
        k++;
        const char *ids[2] = {id0, id1}, *markers[2] = {m0, m1};
        reports rs = {.n = 0};
        zk_rc rc = ingest_docs(w.s, w.emb, ids, markers, 2, &rs, err);
        if (!clean_rc(rc)) fail_msg("ingest N=%ld: %s: %s", n_, zk_errname(rc), err);
    });
    world_check(&w, "ingest pipeline", -1);
    world_close(&w);
}

int main(int argc, char **argv)
{
    if (argc > 1) cmocka_set_test_filter(argv[1]);   /* one test: test_faults test_disk_full */
    /* SQLite's allocator is wrapped before SQLite initializes */
    sqlite3_shutdown();
    assert_int_equal(sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem), SQLITE_OK);
    static sqlite3_mem_methods wrapped = {sq_malloc, sq_free, sq_realloc, sq_size, sq_roundup, sq_init, sq_shutdown, NULL};
    assert_int_equal(sqlite3_config(SQLITE_CONFIG_MALLOC, &wrapped), SQLITE_OK);
    assert_int_equal(sqlite3_initialize(), SQLITE_OK);
    json_set_alloc_funcs(zk_malloc, zk_free);   /* JSON decoding fails like the rest */
    ret_caller_admin(&admin);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disk_full),
        cmocka_unit_test(test_io_error),
        cmocka_unit_test(test_io_error_transient),
        cmocka_unit_test(test_alloc_tokenizer),
        cmocka_unit_test(test_alloc_parse_and_chunk),
        cmocka_unit_test(test_alloc_json),
        cmocka_unit_test(test_alloc_store_and_search),
        cmocka_unit_test(test_alloc_ingest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
