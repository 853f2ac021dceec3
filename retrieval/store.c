/* store.c — the SQLite store (see store.h): open + migrations, atomic
 * document writes, the change log and the replay that keeps each knowledge
 * base's FAISS index equal to the `vectors` table, and the consistency
 * check. Called by the indexer (writes), retrieval (reads) and the CLI.
 * Writes are batched by the caller; per query the only cost here is one
 * `max(seq)` probe to pick up changes made by other processes. */
#include "retrieval/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "half.h"
#include "retrieval/audit.h"
#include "retrieval/docmap.h"
#include "retrieval/principal.h"
#include "retrieval/rank.h"
#include "retrieval/tokenizer.h"
#include "retrieval/vindex_int.h"
#include "schema/schema.h"
#include "retrieval/stmt.h"

#define MAX_KB_INDEXES 64

/* One knowledge base's vector index. Readers (searches) hold `lock` for
 * reading; replay, rebuild and save take it for writing. */
typedef struct {
    int64_t kb;
    ret_vindex *vi;
    int dirty;          /* changed since the snapshot was saved */
    pthread_rwlock_t lock;
} kb_index;

/* The open vector indexes: private to a store (CLI), or shared by every
 * store of a server so each index is in memory once. Entries are never
 * moved or freed before the registry itself. */
struct ret_indexes {
    pthread_mutex_t mu;                 /* guards the table, not the indexes */
    kb_index *idx[MAX_KB_INDEXES];
    int nidx;
    char *dir;                          /* data directory */
    ret_docmap *docmap;                 /* chunk -> document -> readers */
    ret_termstats *termstats;           /* term document frequencies */
};

struct ret_store {
    sqlite3 *db;
    char *dir;
    int readonly;
    int in_batch;       /* inside ret_store_begin */
    int batch_broken;   /* a write failed inside the batch: it must roll back */
    int acl_bump;       /* the batch changed grants: acl_version is bumped at its commit */
    int sp_outer;       /* the open document savepoint started the transaction */
    sqlite3_stmt *rollback;   /* "ROLLBACK", prepared at open: works when memory or disk is short */
    ret_indexes *ix;    /* vector indexes (own or shared) */
    int own_ix;
    sqlite3 *audit;     /* audit.db (retrieval/audit.h), opened on first use */
    int audit_in_main;  /* read-only store of a directory from before audit.db */
};

static zk_rc indexes_save(ret_indexes *x, int finish_builds, char *err);

ret_indexes *ret_indexes_new(const char *data_dir)
{
    ret_indexes *x = zk_calloc(1, sizeof *x);
    if (!x) return NULL;
    if (!(x->dir = zk_strdup(data_dir)) || !(x->docmap = ret_docmap_new()) ||
        !(x->termstats = ret_termstats_new())) {
        ret_docmap_free(x->docmap);
        zk_free(x->dir);
        zk_free(x);
        return NULL;
    }
    pthread_mutex_init(&x->mu, NULL);
    return x;
}

zk_rc ret_indexes_save(ret_indexes *x, char *err)
{
    return indexes_save(x, 0, err);
}

/* Save dirty snapshots; with finish_builds, first let a due ANN (IVF)
 * build complete so the snapshot on disk is already the scalable index
 * (end of a CLI ingest). */
static zk_rc indexes_save(ret_indexes *x, int finish_builds, char *err)
{
    zk_rc rc = ZK_OK;
    if (!x) return ZK_OK;
    pthread_mutex_lock(&x->mu);
    for (int i = 0; i < x->nidx && rc == ZK_OK; i++) {
        kb_index *ki = x->idx[i];
        pthread_rwlock_wrlock(&ki->lock);
        if (finish_builds && ki->vi) {
            int nl0 = 0, nl1 = 0, k0 = ret__vindex_kind(ki->vi, &nl0);
            if ((rc = ret_vindex_upgrade(ki->vi, 1, err)) == ZK_OK &&
                (ret__vindex_kind(ki->vi, &nl1) != k0 || nl1 != nl0))
                ki->dirty = 1;   /* a new index type or training: save it */
        }
        if (ki->dirty && (rc = ret_vindex_save(ki->vi, err)) == ZK_OK) ki->dirty = 0;
        pthread_rwlock_unlock(&ki->lock);
    }
    pthread_mutex_unlock(&x->mu);
    return rc;
}

void ret_indexes_free(ret_indexes *x)
{
    if (!x) return;
    for (int i = 0; i < x->nidx; i++) {
        ret_vindex_free(x->idx[i]->vi);
        pthread_rwlock_destroy(&x->idx[i]->lock);
        zk_free(x->idx[i]);
    }
    pthread_mutex_destroy(&x->mu);
    ret_docmap_free(x->docmap);
    ret_termstats_free(x->termstats);
    zk_free(x->dir);
    zk_free(x);
}

ret_docmap *ret__store_docmap(ret_store *s)
{
    return s->ix->docmap;
}

ret_termstats *ret__store_termstats(ret_store *s)
{
    return s->ix->termstats;
}

void ret_store_share_indexes(ret_store *s, ret_indexes *x)
{
    if (s->own_ix) ret_indexes_free(s->ix);
    s->ix = x;
    s->own_ix = 0;
}

ret_indexes *ret_store_indexes(ret_store *s) { return s->ix; }

/* Waiting for another connection's write lock: SQLite's default busy
 * timeout sleeps 1, 2, 5, 10 ... 100 ms between tries, so connections of
 * one server writing small rows (the audit log, usage, conversations)
 * left the core idle while they queued (4 concurrent searches: 20% fewer
 * requests/s than 1). Short sleeps first, then longer; gives up after ~10 s. */
static int busy_wait(void *arg, int tries)
{
    (void)arg;
    if (tries < 50) usleep(100);            /* 5 ms in all */
    else if (tries < 150) usleep(1000);     /* 100 ms */
    else if (tries < 1140) usleep(10000);   /* 9.9 s */
    else return 0;
    return 1;
}

void ret__busy_handler(sqlite3 *db)
{
    sqlite3_busy_handler(db, busy_wait, NULL);
}

/* SQLite's "database or disk is full" does not say where or what to do. */
static zk_rc disk_full(ret_store *s, char *err, const char *what)
{
    return zk_fail(err, ZK_DB, "disk full: no space left to write the database in %s%s%s; free some space "
                   "and run again (everything committed before is kept)", s->dir, *what ? " during " : "", what);
}

static zk_rc db_fail(ret_store *s, char *err, const char *what)
{
    if (sqlite3_errcode(s->db) == SQLITE_FULL) return disk_full(s, err, what);
    return zk_fail(err, ZK_DB, "%s: %s", what, sqlite3_errmsg(s->db));
}

static zk_rc exec(ret_store *s, const char *sql, char *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        zk_rc rc = sqlite3_errcode(s->db) == SQLITE_FULL ? disk_full(s, err, "")
                   : zk_fail(err, ZK_DB, "%s", msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return rc;
    }
    return ZK_OK;
}

/* ---- migrations ----------------------------------------------------------- */

static int current_version(ret_store *s)
{
    sqlite3_stmt *st = NULL;
    int v = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT max(version) FROM schema_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static zk_rc migrate(ret_store *s, char *err)
{
    zk_rc rc = exec(s, "CREATE TABLE IF NOT EXISTS schema_version ("
                       " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                       " applied_at INTEGER NOT NULL DEFAULT (unixepoch()))", err);
    if (rc != ZK_OK) return rc;
    if (current_version(s) > zk_migration_count)
        return zk_fail(err, ZK_DB, "database schema version %d is newer than this zhiku (%d)",
                       current_version(s), zk_migration_count);
    for (int i = 0; i < zk_migration_count; i++) {
        if (current_version(s) > i) continue;
        if ((rc = exec(s, "BEGIN IMMEDIATE", err)) != ZK_OK) return rc;
        if (current_version(s) > i) {    /* another process got there first */
            exec(s, "COMMIT", NULL);
            continue;
        }
        char ins[256];
        snprintf(ins, sizeof ins, "INSERT INTO schema_version(version, name) VALUES (%d, '%s')",
                 i + 1, zk_migrations[i].name);
        if ((rc = exec(s, zk_migrations[i].sql, err)) != ZK_OK ||
            (rc = exec(s, ins, err)) != ZK_OK) {
            char e2[ZK_ERRLEN];
            snprintf(e2, sizeof e2, "migration %s: %s", zk_migrations[i].name, err ? err : "");
            if (err) strcpy(err, e2);
            exec(s, "ROLLBACK", NULL);
            return rc;
        }
        if ((rc = exec(s, "COMMIT", err)) != ZK_OK) return rc;
        ZK_LOG(ZK_LOG_INFO, "applied migration %s", zk_migrations[i].name);
    }
    return ZK_OK;
}

/* ---- open / close ------------------------------------------------------- */

zk_rc ret_store_open(const char *data_dir, int flags, ret_store **out, char *err)
{
    zk_rc rc = ZK_OK;
    *out = NULL;
    ret_store *s = zk_calloc(1, sizeof *s);
    if (!s) return zk_fail(err, ZK_NOMEM, "out of memory");
    s->readonly = (flags & RET_OPEN_READONLY) != 0;
    s->dir = zk_strdup(data_dir);
    if (!s->dir) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }

    char path[4096];
    if (!s->readonly && zk_mkdir_p(data_dir) != 0) {
        rc = zk_fail(err, ZK_IO, "cannot create data directory %s: %s", data_dir, strerror(errno));
        goto out;
    }
    snprintf(path, sizeof path, "%s/zhiku.db", data_dir);
    int oflags = s->readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (sqlite3_open_v2(path, &s->db, oflags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        rc = zk_fail(err, ZK_DB, "cannot open %s: %s", path,
                     s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto out;
    }
    ret__busy_handler(s->db);
    sqlite3_extended_result_codes(s->db, 1);
    if ((rc = ret_tokenizer_register(s->db, err)) != ZK_OK) goto out;
    if ((rc = ret_docmap_register(s->db, err)) != ZK_OK) goto out;
    if ((rc = ret_rank_register(s->db, err)) != ZK_OK) goto out;
    if (!s->readonly) {
        /* WAL + synchronous=NORMAL: a committed transaction survives a
         * process crash (kill -9); only an OS crash may lose the last ones. */
        if ((rc = exec(s, "PRAGMA journal_mode=WAL", err)) != ZK_OK) goto out;
        if ((rc = exec(s, "PRAGMA synchronous=NORMAL", err)) != ZK_OK) goto out;
        if ((rc = migrate(s, err)) != ZK_OK) goto out;
        if ((rc = ret__audit_adopt(s->db, data_dir, err)) != ZK_OK) goto out;
        snprintf(path, sizeof path, "%s/vectors", data_dir);
        if (zk_mkdir_p(path) != 0) {
            rc = zk_fail(err, ZK_IO, "cannot create %s: %s", path, strerror(errno));
            goto out;
        }
    }
    if ((rc = exec(s, "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; PRAGMA cache_size=-65536", err)) != ZK_OK)
        goto out;
    if (sqlite3_prepare_v2(s->db, "ROLLBACK", -1, &s->rollback, NULL) != SQLITE_OK) {
        rc = db_fail(s, err, "prepare");
        goto out;
    }
    if (!(s->ix = ret_indexes_new(data_dir))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    s->own_ix = 1;
    *out = s;
    return ZK_OK;
out:
    ret_store_close(s);
    return rc;
}

void ret_store_close(ret_store *s)
{
    if (!s) return;
    if (s->own_ix) {   /* a shared registry is saved and freed by its owner */
        char err[ZK_ERRLEN];
        if (s->db && !s->readonly && ret_indexes_save(s->ix, err) != ZK_OK)
            ZK_LOG(ZK_LOG_WARN, "saving vector snapshot: %s", err);
        ret_indexes_free(s->ix);
    }
    sqlite3_finalize(s->rollback);
    if (s->audit) {
        ret__stmt_clear(s->audit);
        sqlite3_close_v2(s->audit);
    }
    if (s->db) {
        ret__stmt_clear(s->db);
        sqlite3_close_v2(s->db);
    }
    zk_free(s->dir);
    zk_free(s);
}

sqlite3 *ret_store_db(ret_store *s) { return s->db; }

sqlite3 *ret_audit_db(ret_store *s, zk_rc *rc, char *err)
{
    *rc = ZK_OK;
    if (s->audit_in_main) return s->db;
    if (!s->audit && (*rc = ret__audit_open(s->dir, s->readonly, &s->audit, err)) != ZK_OK) {
        sqlite3_stmt *st = NULL;
        if (*rc == ZK_NOTFOUND && sqlite3_prepare_v2(s->db, "SELECT 1 FROM sqlite_schema WHERE name = 'audit_log'",
                                                    -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
            s->audit_in_main = 1;
            *rc = ZK_OK;
        }
        sqlite3_finalize(st);
        return s->audit_in_main ? s->db : NULL;
    }
    return s->audit;
}
const char *ret_store_dir(const ret_store *s) { return s->dir; }
int ret_store_schema_version(ret_store *s) { return current_version(s); }

zk_rc ret_store_begin(ret_store *s, char *err)
{
    zk_rc rc = exec(s, "BEGIN IMMEDIATE", err);
    if (rc == ZK_OK) s->in_batch = 1;
    return rc;
}

/* End a transaction that failed. A failed COMMIT (disk full, I/O error)
 * or a failed ROLLBACK TO (out of memory) can leave it open, and a pooled
 * connection would then hold the write lock and its half-written document,
 * committing it with the next write; the ROLLBACK prepared at open needs
 * neither memory nor disk space. */
static void txn_abort(ret_store *s)
{
    if (!s->rollback || sqlite3_get_autocommit(s->db)) return;
    sqlite3_step(s->rollback);
    sqlite3_reset(s->rollback);
}

zk_rc ret_store_commit(ret_store *s, char *err)
{
    if (s->batch_broken) {
        ret_store_rollback(s);
        return zk_fail(err, ZK_DB, "a write failed inside the batch; the batch was rolled back");
    }
    s->in_batch = 0;
    zk_rc rc = s->acl_bump ? ret_acl_bump(s, err) : ZK_OK;
    s->acl_bump = 0;
    if (rc == ZK_OK) rc = exec(s, "COMMIT", err);
    if (rc != ZK_OK) txn_abort(s);
    return rc;
}

void ret_store_rollback(ret_store *s)
{
    s->in_batch = 0;
    s->acl_bump = 0;
    s->batch_broken = 0;
    if (exec(s, "ROLLBACK", NULL) != ZK_OK) txn_abort(s);
}

/* Per-document atomicity. Outside a batch a document gets its own
 * savepoint. Inside a batch it relies on the batch transaction: FTS5
 * flushes its pending index to a new segment at every savepoint, which made
 * bulk ingestion ~40% slower, so a failed write instead marks the batch
 * broken and ret_store_commit() rolls the whole batch back. */
static zk_rc doc_txn_begin(ret_store *s, const char *name, char *err)
{
    if (s->in_batch) return s->batch_broken ? zk_fail(err, ZK_DB, "batch already failed") : ZK_OK;
    return ret__tx_begin(s->db, name, &s->sp_outer, err);
}

static zk_rc doc_txn_end(ret_store *s, const char *name, zk_rc rc, char *err)
{
    if (s->in_batch) {
        if (rc != ZK_OK) s->batch_broken = 1;
        return rc;
    }
    rc = ret__tx_end(s->db, name, s->sp_outer, rc, err);
    if (s->sp_outer) txn_abort(s);     /* a failed COMMIT or ROLLBACK left it open */
    return rc;
}

/* A unit of work: BEGIN IMMEDIATE when no transaction is open, so a
 * concurrent writer waits on the busy timeout (a deferred transaction that
 * reads first fails its lock upgrade at once with SQLITE_BUSY), otherwise a
 * SAVEPOINT inside the caller's transaction. */
zk_rc ret__tx_begin(sqlite3 *db, const char *savepoint, int *out_own, char *err)
{
    char sql[96];
    *out_own = sqlite3_get_autocommit(db);
    if (*out_own) snprintf(sql, sizeof sql, "BEGIN IMMEDIATE");
    else snprintf(sql, sizeof sql, "SAVEPOINT %s", savepoint);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK) return ZK_OK;
    if (sqlite3_errcode(db) == SQLITE_FULL) return zk_fail(err, ZK_DB, "disk full: %s", sqlite3_errmsg(db));
    return zk_fail(err, ZK_DB, "begin: %s", sqlite3_errmsg(db));
}

zk_rc ret__tx_end(sqlite3 *db, const char *savepoint, int own, zk_rc rc, char *err)
{
    char sql[160];
    if (rc == ZK_OK) {
        if (own) snprintf(sql, sizeof sql, "COMMIT");
        else snprintf(sql, sizeof sql, "RELEASE %s", savepoint);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK) return ZK_OK;
        rc = sqlite3_errcode(db) == SQLITE_FULL
                 ? zk_fail(err, ZK_DB, "disk full: no space left to commit; free some space and run again")
                 : zk_fail(err, ZK_DB, "commit: %s", sqlite3_errmsg(db));
    }
    if (own) snprintf(sql, sizeof sql, "ROLLBACK");
    else snprintf(sql, sizeof sql, "ROLLBACK TO %s; RELEASE %s", savepoint, savepoint);
    sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc;
}

/* ---- knowledge bases ------------------------------------------------------- */

zk_rc ret_kb_id(ret_store *s, const char *name, int64_t *out_kb, char *err)
{
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    if (!name) name = "default";
    if (ret__prepare(s->db, "SELECT id FROM kb WHERE name = ?", &st) != SQLITE_OK)
        return db_fail(s, err, "kb lookup");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) *out_kb = sqlite3_column_int64(st, 0);
    else if (r == SQLITE_DONE) rc = zk_fail(err, ZK_NOTFOUND, "no knowledge base named '%s'", name);
    else rc = db_fail(s, err, "kb lookup");
    ret__release(st);
    return rc;
}

static zk_rc kb_model(ret_store *s, int64_t kb, char *model, size_t cap, int *dim, char *err)
{
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    model[0] = '\0';
    *dim = 0;
    if (ret__prepare(s->db, "SELECT embed_model, embed_dim FROM kb WHERE id = ?", &st) != SQLITE_OK)
        return db_fail(s, err, "kb lookup");
    sqlite3_bind_int64(st, 1, kb);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        const char *m = (const char *)sqlite3_column_text(st, 0);
        if (m) snprintf(model, cap, "%s", m);
        else if (sqlite3_column_type(st, 0) != SQLITE_NULL) rc = zk_fail(err, ZK_NOMEM, "kb lookup: out of memory");
        *dim = sqlite3_column_int(st, 1);
    } else if (r == SQLITE_DONE) {
        rc = zk_fail(err, ZK_NOTFOUND, "knowledge base %lld not found", (long long)kb);
    } else {
        rc = db_fail(s, err, "kb lookup");
    }
    ret__release(st);
    return rc;
}

zk_rc ret_kb_check_model(ret_store *s, int64_t kb, const char *model, int dim, char *err)
{
    char cur[256];
    int curdim;
    zk_rc rc = kb_model(s, kb, cur, sizeof cur, &curdim, err);
    if (rc != ZK_OK) return rc;
    if (!cur[0]) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(s->db, "UPDATE kb SET embed_model = ?, embed_dim = ? WHERE id = ? AND embed_model IS NULL",
                               -1, &st, NULL) != SQLITE_OK)
            return db_fail(s, err, "kb update");
        sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, dim);
        sqlite3_bind_int64(st, 3, kb);
        int r = sqlite3_step(st);
        sqlite3_finalize(st);
        if (r != SQLITE_DONE) return db_fail(s, err, "kb update");
        /* a concurrent writer may have recorded another model first */
        if ((rc = kb_model(s, kb, cur, sizeof cur, &curdim, err)) != ZK_OK) return rc;
    }
    if (strcmp(cur, model) != 0 || curdim != dim)
        return zk_fail(err, ZK_MISMATCH,
                       "knowledge base was indexed with embedding model %s (dimension %d) but "
                       "the configured embedder is %s (dimension %d); run `zhiku reindex` to "
                       "re-embed it, or restore the previous [embedding] settings",
                       cur, curdim, model, dim);
    return ZK_OK;
}

/* ---- documents ------------------------------------------------------------------ */

const char *ret_put_status_name(ret_put_status st)
{
    switch (st) {
    case RET_PUT_INDEXED: return "indexed";
    case RET_PUT_UNCHANGED: return "unchanged";
    case RET_PUT_REPLACED: return "replaced";
    }
    return "?";
}

zk_rc ret_doc_is_unchanged(ret_store *s, int64_t kb, const char *ext_id, const char *sha256,
                           int retry_failed, int *out_same, char *err)
{
    sqlite3_stmt *st = NULL;
    *out_same = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM documents WHERE kb_id = ? AND ext_id = ? AND sha256 = ? "
                                  "AND (status = 'indexed' AND error IS NULL OR (?4 = 0 AND status = 'failed'))",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, err, "document lookup");
    sqlite3_bind_int64(st, 1, kb);
    sqlite3_bind_text(st, 2, ext_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, retry_failed);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r == SQLITE_ROW) *out_same = 1;
    else if (r != SQLITE_DONE) return db_fail(s, err, "document lookup");
    return ZK_OK;
}

/* Run a one-shot statement with int64 parameters. */
static zk_rc run_i64(ret_store *s, const char *sql, int nargs, const int64_t *args, char *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) return db_fail(s, err, sql);
    for (int i = 0; i < nargs; i++) sqlite3_bind_int64(st, i + 1, args[i]);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE && r != SQLITE_ROW) return db_fail(s, err, sql);
    return ZK_OK;
}

/* Remove a document's chunks, FTS rows and vectors, logging the deletes. */
static zk_rc drop_chunks(ret_store *s, int64_t kb, int64_t doc_id, char *err)
{
    zk_rc rc;
    int64_t a2[2] = {kb, doc_id};
    if ((rc = run_i64(s, "INSERT INTO changes(kb_id, chunk_id, op) "
                         "SELECT ?1, id, 0 FROM chunks WHERE doc_id = ?2", 2, a2, err)) != ZK_OK)
        return rc;
    if ((rc = run_i64(s, "INSERT INTO chunks_fts(chunks_fts, rowid, text, heading) "
                         "SELECT 'delete', id, text, heading FROM chunks WHERE doc_id = ?1", 1, &doc_id, err)) != ZK_OK)
        return rc;
    if ((rc = run_i64(s, "DELETE FROM vectors WHERE chunk_id IN (SELECT id FROM chunks WHERE doc_id = ?1)",
                      1, &doc_id, err)) != ZK_OK)
        return rc;
    return run_i64(s, "DELETE FROM chunks WHERE doc_id = ?1", 1, &doc_id, err);
}

/* One change-log row for the n chunk ids from first on (chg prepared by
 * insert_chunks). */
static zk_rc log_run(ret_store *s, sqlite3_stmt *chg, int64_t kb, int64_t first, int64_t n, char *err)
{
    sqlite3_bind_int64(chg, 1, kb);
    sqlite3_bind_int64(chg, 2, first);
    sqlite3_bind_int64(chg, 3, n);
    int r = sqlite3_step(chg);
    sqlite3_reset(chg);
    return r == SQLITE_DONE ? ZK_OK : db_fail(s, err, "log change");
}

static zk_rc insert_chunks(ret_store *s, int64_t kb, int64_t doc_id, const ret_chunk_in *chunks,
                           size_t n, const float *vecs, const uint16_t *halves, int dim, char *err)
{
    zk_rc rc = ZK_OK;
    uint16_t *half = NULL;
    sqlite3_stmt *ins = NULL, *fts = NULL, *vec = NULL, *chg = NULL;
    if (sqlite3_prepare_v2(s->db, "INSERT INTO chunks(doc_id, ordinal, text, heading, page, start_char, end_char) "
                                  "VALUES (?,?,?,?,?,?,?)", -1, &ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "INSERT INTO chunks_fts(rowid, text, heading) VALUES (?,?,?)", -1, &fts, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "INSERT INTO vectors(chunk_id, vec) VALUES (?,?)", -1, &vec, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "INSERT INTO changes(kb_id, chunk_id, op, n) VALUES (?,?,1,?)", -1, &chg, NULL) != SQLITE_OK) {
        rc = db_fail(s, err, "prepare chunk insert");
        goto out;
    }
    if (vecs && dim > 0 && !(half = zk_malloc(sizeof *half * (size_t)dim))) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    /* the change log gets one row per run of consecutive chunk ids (in one
     * transaction they are consecutive: one row per document) */
    int64_t run_first = 0, run_n = 0;
    for (size_t i = 0; i < n; i++) {
        const ret_chunk_in *c = &chunks[i];
        const char *heading = c->heading ? c->heading : "";
        sqlite3_bind_int64(ins, 1, doc_id);
        sqlite3_bind_int(ins, 2, c->ordinal);
        sqlite3_bind_text(ins, 3, c->text, (int)c->len, SQLITE_STATIC);
        sqlite3_bind_text(ins, 4, heading, -1, SQLITE_STATIC);
        sqlite3_bind_int(ins, 5, c->page);
        sqlite3_bind_int64(ins, 6, c->start);
        sqlite3_bind_int64(ins, 7, c->end);
        if (sqlite3_step(ins) != SQLITE_DONE) { rc = db_fail(s, err, "insert chunk"); goto out; }
        sqlite3_reset(ins);
        int64_t id = sqlite3_last_insert_rowid(s->db);

        sqlite3_bind_int64(fts, 1, id);
        sqlite3_bind_text(fts, 2, c->text, (int)c->len, SQLITE_STATIC);
        sqlite3_bind_text(fts, 3, heading, -1, SQLITE_STATIC);
        if (sqlite3_step(fts) != SQLITE_DONE) { rc = db_fail(s, err, "index chunk text"); goto out; }
        sqlite3_reset(fts);

        if ((vecs || halves) && dim > 0) {
            sqlite3_bind_int64(vec, 1, id);
            /* stored as float16: half the bytes, rankings unchanged */
            const uint16_t *h = halves ? halves + i * (size_t)dim : half;
            if (!halves) zk_floats_to_halves(vecs + i * (size_t)dim, half, (size_t)dim);
            sqlite3_bind_blob(vec, 2, h, (int)(sizeof *h * (size_t)dim), SQLITE_STATIC);
            if (sqlite3_step(vec) != SQLITE_DONE) { rc = db_fail(s, err, "insert vector"); goto out; }
            sqlite3_reset(vec);
            if (run_n && id == run_first + run_n) {
                run_n++;
                continue;
            }
            if (run_n && (rc = log_run(s, chg, kb, run_first, run_n, err)) != ZK_OK) goto out;
            run_first = id;
            run_n = 1;
        }
    }
    if (run_n) rc = log_run(s, chg, kb, run_first, run_n, err);
out:
    zk_free(half);
    sqlite3_finalize(ins);
    sqlite3_finalize(fts);
    sqlite3_finalize(vec);
    sqlite3_finalize(chg);
    return rc;
}

/* A document's read grants, inside the caller's savepoint. */
static zk_rc write_acl(ret_store *s, int64_t doc_id, const ret_doc_in *doc, char *err)
{
    zk_rc rc = run_i64(s, "DELETE FROM doc_acl WHERE doc_id = ?1", 1, &doc_id, err);
    int had_grants = rc == ZK_OK && sqlite3_changes(s->db) > 0;
    for (size_t i = 0; rc == ZK_OK && i < doc->nacl; i++) {
        int64_t a[2] = {doc_id, doc->acl[i]};
        rc = run_i64(s, "INSERT OR IGNORE INTO doc_acl(doc_id, principal_id) VALUES (?1, ?2)", 2, a, err);
    }
    /* caches of readable sets (retrieval/docmap.c) see new documents by
     * their ids; any change to an existing document's grants bumps */
    if (rc == ZK_OK && (doc->acl_replace || had_grants)) {
        /* once per batch, at its commit: an UPDATE opens a statement
         * savepoint, and at every savepoint FTS5 writes out its pending
         * index as a new segment — one segment per document otherwise */
        if (s->in_batch) s->acl_bump = 1;
        else rc = ret_acl_bump(s, err);
    }
    return rc;
}

zk_rc ret_doc_put(ret_store *s, int64_t kb, const ret_doc_in *doc, const ret_chunk_in *chunks,
                  size_t n, const float *vecs, int dim, ret_put_status *out_status,
                  int64_t *out_doc_id, char *err)
{
    zk_rc rc = ZK_OK;
    sqlite3_stmt *st = NULL;
    int64_t doc_id = 0;
    ret_put_status status = RET_PUT_INDEXED;
    if (!doc->ext_id || !doc->title || !doc->sha256)
        return zk_fail(err, ZK_INVALID, "document needs an id, a title and a checksum");
    if ((rc = doc_txn_begin(s, "doc_put", err)) != ZK_OK) return rc;

    if (sqlite3_prepare_v2(s->db, "SELECT id, sha256, status FROM documents WHERE kb_id = ? AND ext_id = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(s, err, "document lookup");
        goto out;
    }
    sqlite3_bind_int64(st, 1, kb);
    sqlite3_bind_text(st, 2, doc->ext_id, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        doc_id = sqlite3_column_int64(st, 0);
        const char *sha = (const char *)sqlite3_column_text(st, 1);
        const char *stat = (const char *)sqlite3_column_text(st, 2);
        if (sha && !strcmp(sha, doc->sha256) && stat && !strcmp(stat, "indexed")) status = RET_PUT_UNCHANGED;
        else status = RET_PUT_REPLACED;
    } else if (r != SQLITE_DONE) {
        rc = db_fail(s, err, "document lookup");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (status == RET_PUT_UNCHANGED) goto out;

    if (status == RET_PUT_REPLACED) {
        if ((rc = drop_chunks(s, kb, doc_id, err)) != ZK_OK) goto out;
        if (sqlite3_prepare_v2(s->db, "UPDATE documents SET source=?, title=?, format=?, charset=?, sha256=?, "
                                      "bytes=?, metadata=?, nchunks=?, version=version+1, status='indexed', "
                                      "error=NULL, updated_at=unixepoch() WHERE id=?", -1, &st, NULL) != SQLITE_OK) {
            rc = db_fail(s, err, "document update");
            goto out;
        }
        sqlite3_bind_int64(st, 9, doc_id);
    } else {
        if (sqlite3_prepare_v2(s->db, "INSERT INTO documents(source, title, format, charset, sha256, bytes, "
                                      "metadata, nchunks, kb_id, ext_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
                               -1, &st, NULL) != SQLITE_OK) {
            rc = db_fail(s, err, "document insert");
            goto out;
        }
        sqlite3_bind_int64(st, 9, kb);
        sqlite3_bind_text(st, 10, doc->ext_id, -1, SQLITE_STATIC);
    }
    sqlite3_bind_text(st, 1, doc->source ? doc->source : doc->ext_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, doc->title, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, doc->format, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, doc->charset, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, doc->sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, doc->bytes);
    sqlite3_bind_text(st, 7, doc->metadata, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, (int64_t)n);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = db_fail(s, err, "document write");
        goto out;
    }
    if (status == RET_PUT_INDEXED) doc_id = sqlite3_last_insert_rowid(s->db);
    if ((rc = insert_chunks(s, kb, doc_id, chunks, n, vecs, doc->vec_halves, dim, err)) != ZK_OK) goto out;
    if (status == RET_PUT_INDEXED || doc->acl_replace) rc = write_acl(s, doc_id, doc, err);
out:
    sqlite3_finalize(st);
    rc = doc_txn_end(s, "doc_put", rc, err);
    if (rc == ZK_OK) {
        if (out_status) *out_status = status;
        if (out_doc_id) *out_doc_id = doc_id;
    }
    return rc;
}

zk_rc ret_doc_put_failed(ret_store *s, int64_t kb, const ret_doc_in *doc, const char *reason, char *err)
{
    zk_rc rc;
    sqlite3_stmt *st = NULL;
    if ((rc = doc_txn_begin(s, "doc_failed", err)) != ZK_OK) return rc;
    /* an indexed document keeps its content: only the reason is noted (its
     * sha256 stays the indexed one, so a later good version replaces it) */
    if (sqlite3_prepare_v2(s->db, "UPDATE documents SET error = ?3, updated_at = unixepoch() "
                                  "WHERE kb_id = ?1 AND ext_id = ?2 AND status = 'indexed'", -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(s, err, "document update");
        goto out;
    }
    sqlite3_bind_int64(st, 1, kb);
    sqlite3_bind_text(st, 2, doc->ext_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) { rc = db_fail(s, err, "document update"); goto out; }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_changes(s->db) > 0) goto out;
    if (sqlite3_prepare_v2(s->db, "INSERT INTO documents(kb_id, ext_id, source, title, format, sha256, bytes, "
                                  "status, error, nchunks) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'failed', ?8, 0) "
                                  "ON CONFLICT(kb_id, ext_id) DO UPDATE SET sha256 = excluded.sha256, "
                                  "bytes = excluded.bytes, error = excluded.error, updated_at = unixepoch()",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(s, err, "document insert");
        goto out;
    }
    sqlite3_bind_int64(st, 1, kb);
    sqlite3_bind_text(st, 2, doc->ext_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, doc->source ? doc->source : doc->ext_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, doc->title ? doc->title : doc->ext_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, doc->format, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, doc->sha256 ? doc->sha256 : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, doc->bytes);
    sqlite3_bind_text(st, 8, reason, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) { rc = db_fail(s, err, "document insert"); goto out; }
    if (sqlite3_changes(s->db) > 0 && doc->nacl) {
        int64_t id = 0;
        if ((rc = ret_doc_find(s, kb, doc->ext_id, &id, err)) == ZK_OK) rc = write_acl(s, id, doc, err);
    }
out:
    sqlite3_finalize(st);
    return doc_txn_end(s, "doc_failed", rc, err);
}

zk_rc ret_doc_delete(ret_store *s, int64_t doc_id, char *err)
{
    zk_rc rc;
    sqlite3_stmt *st = NULL;
    int64_t kb = 0;
    if ((rc = doc_txn_begin(s, "doc_del", err)) != ZK_OK) return rc;
    if (sqlite3_prepare_v2(s->db, "SELECT kb_id FROM documents WHERE id = ?", -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(s, err, "document lookup");
        goto out;
    }
    sqlite3_bind_int64(st, 1, doc_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = zk_fail(err, ZK_NOTFOUND, "document %lld not found", (long long)doc_id);
        goto out;
    }
    kb = sqlite3_column_int64(st, 0);
    if ((rc = drop_chunks(s, kb, doc_id, err)) != ZK_OK) goto out;
    rc = run_i64(s, "DELETE FROM documents WHERE id = ?1", 1, &doc_id, err);
out:
    sqlite3_finalize(st);
    if (rc == ZK_NOTFOUND && s->in_batch) return rc;   /* nothing was written */
    return doc_txn_end(s, "doc_del", rc, err);
}

zk_rc ret_doc_find(ret_store *s, int64_t kb, const char *ref, int64_t *out_doc_id, char *err)
{
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    const char *sql = kb > 0
        ? "SELECT id FROM documents WHERE kb_id = ?2 AND (ext_id = ?1 OR CAST(id AS TEXT) = ?1) ORDER BY ext_id = ?1 DESC LIMIT 1"
        : "SELECT id FROM documents WHERE ext_id = ?1 OR CAST(id AS TEXT) = ?1 ORDER BY ext_id = ?1 DESC LIMIT 1";
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) return db_fail(s, err, "document lookup");
    sqlite3_bind_text(st, 1, ref, -1, SQLITE_STATIC);
    if (kb > 0) sqlite3_bind_int64(st, 2, kb);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) *out_doc_id = sqlite3_column_int64(st, 0);
    else if (r == SQLITE_DONE) rc = zk_fail(err, ZK_NOTFOUND, "no document '%s'", ref);
    else rc = db_fail(s, err, "document lookup");
    sqlite3_finalize(st);
    return rc;
}

/* ---- vector index: open, rebuild, replay ------------------------------------ */

static int64_t max_seq(ret_store *s, int64_t kb)
{
    sqlite3_stmt *st = NULL;
    int64_t seq = 0;
    if (ret__prepare(s->db, "SELECT max(seq) FROM changes WHERE kb_id = ?", &st) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, kb);
        if (sqlite3_step(st) == SQLITE_ROW) seq = sqlite3_column_int64(st, 0);
    }
    ret__release(st);
    return seq;
}

int ret__vector_decode(const void *blob, int bytes, int dim, float *out)
{
    if (!blob || dim <= 0) return 0;
    if (bytes == (int)(sizeof(uint16_t) * (size_t)dim)) {   /* float16 (current) */
        zk_halves_to_floats(blob, out, (size_t)dim);
        return 1;
    }
    if (bytes == (int)(sizeof(float) * (size_t)dim)) {      /* float32 (written before float16) */
        memcpy(out, blob, sizeof(float) * (size_t)dim);
        return 1;
    }
    return 0;
}

/* Apply changes with seq > applied. Runs inside a read transaction so the
 * change list and the vectors it reads are one snapshot. The vectors table
 * is the truth: every chunk id touched since `applied` is removed from the
 * index and re-added iff it has a vector now, whatever order the ops came
 * in. */
static zk_rc replay(ret_store *s, kb_index *ki, char *err)
{
    zk_rc rc = ZK_OK;
    sqlite3_stmt *st = NULL, *vst = NULL;
    int64_t *ids = NULL, *add_ids = NULL;
    float *vecs = NULL;
    size_t n = 0, cap = 0, nadd = 0;
    int64_t applied = ret_vindex_applied_seq(ki->vi), last = applied;
    int dim = ret_vindex_dim(ki->vi);
    int own_txn = sqlite3_get_autocommit(s->db);

    if (max_seq(s, ki->kb) <= applied) return ZK_OK;
    if (own_txn && (rc = exec(s, "BEGIN", err)) != ZK_OK) return rc;
    if (sqlite3_prepare_v2(s->db, "SELECT seq, chunk_id, n FROM changes WHERE kb_id = ? AND seq > ? ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(s, err, "read changes");
        goto out;
    }
    sqlite3_bind_int64(st, 1, ki->kb);
    sqlite3_bind_int64(st, 2, applied);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t first = sqlite3_column_int64(st, 1), run = sqlite3_column_int64(st, 2);
        if (run < 1 || run > RET_MAX_RUN) { rc = zk_fail(err, ZK_CORRUPT, "change log: a run of %lld chunks", (long long)run); goto out; }
        while (n + (size_t)run > cap) {
            cap = cap ? cap * 2 : 1024;
            int64_t *p = zk_realloc(ids, cap * sizeof *p);
            if (!p) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
            ids = p;
        }
        last = sqlite3_column_int64(st, 0);
        for (int64_t k = 0; k < run; k++) ids[n++] = first + k;
    }
    if (r != SQLITE_DONE) { rc = db_fail(s, err, "read changes"); goto out; }
    qsort(ids, n, sizeof *ids, zk_cmp_i64);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || ids[u - 1] != ids[i]) ids[u++] = ids[i];
    n = u;
    if (n && (rc = ret_vindex_remove(ki->vi, n, ids, err)) != ZK_OK) goto out;

    add_ids = zk_malloc((n ? n : 1) * sizeof *add_ids);
    vecs = zk_malloc((n ? n : 1) * (size_t)dim * sizeof *vecs);
    if (!add_ids || !vecs) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    if (sqlite3_prepare_v2(s->db, "SELECT vec FROM vectors WHERE chunk_id = ?", -1, &vst, NULL) != SQLITE_OK) {
        rc = db_fail(s, err, "read vectors");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(vst, 1, ids[i]);
        if (sqlite3_step(vst) == SQLITE_ROW && ret__vector_decode(sqlite3_column_blob(vst, 0),
                                                                  sqlite3_column_bytes(vst, 0), dim,
                                                                  vecs + nadd * (size_t)dim))
            add_ids[nadd++] = ids[i];
        sqlite3_reset(vst);
    }
    if (nadd && (rc = ret_vindex_add(ki->vi, nadd, add_ids, vecs, err)) != ZK_OK) goto out;
    ret_vindex_set_applied_seq(ki->vi, last);
    ki->dirty = 1;
out:
    sqlite3_finalize(st);
    sqlite3_finalize(vst);
    if (own_txn) exec(s, "COMMIT", NULL);
    zk_free(ids);
    zk_free(add_ids);
    zk_free(vecs);
    return rc;
}

static int layout_policy = RET_LAYOUT_AUTO;

void ret_store_vector_layout(int policy) { __atomic_store_n(&layout_policy, policy, __ATOMIC_RELAXED); }

int ret_store_parse_layout(const char *s)
{
    if (!s || !strcmp(s, "auto")) return RET_LAYOUT_AUTO;
    if (!strcmp(s, "faiss")) return RET_LAYOUT_FAISS;
    if (!strcmp(s, "columns")) return RET_LAYOUT_COLUMNS;
    return -1;
}

/* The registry entry of kb, opened (and rebuilt from the database when the
 * snapshot is missing, corrupt, ahead of the database or of another
 * dimension) on first use. */
static zk_rc index_entry(ret_store *s, int64_t kb, kb_index **out, char *err)
{
    zk_rc rc = ZK_OK;
    ret_indexes *x = s->ix;
    char model[256], dir[4096];
    int dim, rebuilt = 0;
    *out = NULL;
    if ((rc = kb_model(s, kb, model, sizeof model, &dim, err)) != ZK_OK) return rc;
    if (dim <= 0) return zk_fail(err, ZK_NOTFOUND, "knowledge base has no vectors yet");
    pthread_mutex_lock(&x->mu);
    kb_index *ki = NULL;
    for (int i = 0; i < x->nidx; i++)
        if (x->idx[i]->kb == kb) ki = x->idx[i];
    /* the builtin embedder's sparse queries read few columns: exact column
     * index; dense (remote) embeddings: FAISS, flat then IVF */
    int policy = __atomic_load_n(&layout_policy, __ATOMIC_RELAXED);
    int layout = policy == RET_LAYOUT_COLUMNS || (policy == RET_LAYOUT_AUTO && llm_model_is_builtin(model))
                     ? RET_VINDEX_COLUMNS : RET_VINDEX_AUTO;
    if (ki && ki->vi && (ret_vindex_dim(ki->vi) != dim || ret_vindex_layout(ki->vi) != layout)) {
        /* the kb was re-embedded with another dimension or model (zhiku reindex) */
        pthread_rwlock_wrlock(&ki->lock);
        ret_vindex_free(ki->vi);
        ki->vi = NULL;
        pthread_rwlock_unlock(&ki->lock);
    }
    if (!ki || !ki->vi) {
        snprintf(dir, sizeof dir, "%s/vectors/kb-%lld", x->dir, (long long)kb);
        ret_vindex *vi = NULL;
        if ((rc = ret_vindex_open_layout(dir, dim, layout, &vi, &rebuilt, err)) != ZK_OK) goto out;
        if (ret_vindex_applied_seq(vi) > max_seq(s, kb)) {
            /* snapshot from another database (restored backup?): rebuild */
            ZK_LOG(ZK_LOG_WARN, "vector snapshot of kb %lld is ahead of the database; rebuilding", (long long)kb);
            if ((rc = ret_vindex_reset(vi, err)) != ZK_OK) { ret_vindex_free(vi); goto out; }
            rebuilt = 1;
        }
        if (rebuilt) ZK_LOG(ZK_LOG_INFO, "rebuilding vector index of kb %lld from the database", (long long)kb);
        if (!ki) {
            if (x->nidx == MAX_KB_INDEXES) {
                ret_vindex_free(vi);
                rc = zk_fail(err, ZK_ERR, "too many knowledge bases open");
                goto out;
            }
            if (!(ki = zk_calloc(1, sizeof *ki))) { ret_vindex_free(vi); rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
            pthread_rwlock_init(&ki->lock, NULL);
            ki->kb = kb;
            x->idx[x->nidx++] = ki;
        }
        ki->vi = vi;
        ki->dirty = rebuilt;
    }
    *out = ki;
out:
    pthread_mutex_unlock(&x->mu);
    return rc;
}

zk_rc ret_store_vindex_read(ret_store *s, int64_t kb, ret_vindex **out, char *err)
{
    kb_index *ki;
    *out = NULL;
    zk_rc rc = index_entry(s, kb, &ki, err);
    if (rc != ZK_OK) return rc;
    /* bring it up to date under the write lock, then search under a read lock */
    if (max_seq(s, kb) > ret_vindex_applied_seq(ki->vi)) {
        pthread_rwlock_wrlock(&ki->lock);
        rc = replay(s, ki, err);
        pthread_rwlock_unlock(&ki->lock);
        if (rc != ZK_OK) return rc;
    }
    if (ret_vindex_upgrade_ready(ki->vi)) {   /* a background IVF build finished: swap it in */
        pthread_rwlock_wrlock(&ki->lock);
        int nl0 = 0, nl1 = 0, k0 = ret__vindex_kind(ki->vi, &nl0);
        if (ret_vindex_upgrade(ki->vi, 0, err) != ZK_OK) ZK_LOG(ZK_LOG_WARN, "vector index upgrade: %s", err);
        else if (ret__vindex_kind(ki->vi, &nl1) != k0 || nl1 != nl0) ki->dirty = 1;
        pthread_rwlock_unlock(&ki->lock);
    }
    pthread_rwlock_rdlock(&ki->lock);
    *out = ki->vi;
    return ZK_OK;
}

void ret_store_vindex_done(ret_store *s, ret_vindex *vi)
{
    ret_indexes *x = s->ix;
    if (!vi) return;
    pthread_mutex_lock(&x->mu);
    for (int i = 0; i < x->nidx; i++) {
        if (x->idx[i]->vi == vi) {
            pthread_rwlock_unlock(&x->idx[i]->lock);
            break;
        }
    }
    pthread_mutex_unlock(&x->mu);
}

zk_rc ret_store_vindex(ret_store *s, int64_t kb, ret_vindex **out, char *err)
{
    zk_rc rc = ret_store_vindex_read(s, kb, out, err);
    if (rc == ZK_OK) ret_store_vindex_done(s, *out);
    return rc;
}

zk_rc ret_store_sync(ret_store *s, int save, char *err)
{
    zk_rc rc = ZK_OK;
    sqlite3_stmt *st = NULL;
    /* open every kb that has vectors, so a CLI ingest leaves a fresh snapshot */
    if (sqlite3_prepare_v2(s->db, "SELECT id FROM kb WHERE embed_dim > 0", -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, err, "kb list");
    while (sqlite3_step(st) == SQLITE_ROW) {
        ret_vindex *vi;
        if ((rc = ret_store_vindex(s, sqlite3_column_int64(st, 0), &vi, err)) != ZK_OK) break;
    }
    sqlite3_finalize(st);
    if (rc != ZK_OK || !save || s->readonly) return rc;
    return indexes_save(s->ix, 1, err);
}

zk_rc ret_store_warm_access(ret_store *s, char *err)
{
    return ret_docmap_warm(s->ix->docmap, s->db, err);
}

#define LENGTHS_STEP_IDS 65536   /* ~10 ms under the map's write lock */

void ret_store_load_lengths(ret_store *s, const volatile int *stop)
{
    while (!(stop && __atomic_load_n(stop, __ATOMIC_RELAXED)) &&
           ret_docmap_load_lengths(s->ix->docmap, s->db, LENGTHS_STEP_IDS)) {
    }
}

#define PROMOTE_STEP_BLOCKS 2

size_t ret_store_promote_indexes(ret_store *s, const volatile int *stop)
{
    ret_indexes *x = s->ix;
    size_t moved = 0;
    pthread_mutex_lock(&x->mu);
    int n = x->nidx;   /* entries are never moved or freed before the registry */
    pthread_mutex_unlock(&x->mu);
    for (int i = 0; i < n; i++) {
        kb_index *ki = x->idx[i];
        size_t m, here = 0;
        /* a few blocks per hold of the read lock: a replay waiting for
         * the write lock (new chunks) waits for one step only */
        do {
            if (stop && __atomic_load_n(stop, __ATOMIC_RELAXED)) break;
            pthread_rwlock_rdlock(&ki->lock);
            m = ki->vi ? ret_vindex_promote(ki->vi, PROMOTE_STEP_BLOCKS) : 0;
            pthread_rwlock_unlock(&ki->lock);
            here += m;
        } while (m);
        if (!here) continue;
        moved += here;
        pthread_rwlock_wrlock(&ki->lock);
        if (ki->vi) ret_vindex_drop_mapping(ki->vi);
        pthread_rwlock_unlock(&ki->lock);
    }
    return moved;
}

/* ---- re-embedding (zhiku reindex) ------------------------------------------- */

#define REINDEX_BATCH 256
#define RET_MAX_DIM 8192

typedef struct {
    int64_t *ids;
    char **texts;
    size_t *lens;
    size_t n;
} batch;

static void batch_clear(batch *b)
{
    for (size_t i = 0; i < b->n; i++) zk_free(b->texts[i]);
    b->n = 0;
}

static zk_rc count_chunks(sqlite3 *db, int64_t kb, size_t *out, char *err)
{
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    *out = 0;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.kb_id = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "count chunks: %s", sqlite3_errmsg(db));
    sqlite3_bind_int64(st, 1, kb);
    if (sqlite3_step(st) == SQLITE_ROW) *out = (size_t)sqlite3_column_int64(st, 0);
    else rc = zk_fail(err, ZK_DB, "count chunks: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc;
}

/* Embed one batch and write its vectors and change-log entries. */
static zk_rc flush_batch(ret_store *s, llm_embedder *emb, int64_t kb, batch *b, float *vecs,
                         sqlite3_stmt *put_vec, sqlite3_stmt *put_change, char *err)
{
    sqlite3 *db = s->db;
    int dim = llm_embedder_dim(emb);
    zk_rc rc = llm_embed(emb, b->n, (const char *const *)b->texts, b->lens, vecs, err);
    if (rc != ZK_OK) return rc;
    uint16_t half[RET_MAX_DIM];
    if (dim > RET_MAX_DIM) return zk_fail(err, ZK_INVALID, "dimension %d is larger than %d", dim, RET_MAX_DIM);
    for (size_t i = 0; i < b->n; i++) {
        sqlite3_reset(put_vec);
        sqlite3_bind_int64(put_vec, 1, b->ids[i]);
        zk_floats_to_halves(vecs + i * (size_t)dim, half, (size_t)dim);
        sqlite3_bind_blob(put_vec, 2, half, (int)(sizeof(uint16_t) * (size_t)dim), SQLITE_TRANSIENT);
        sqlite3_reset(put_change);
        sqlite3_bind_int64(put_change, 1, kb);
        sqlite3_bind_int64(put_change, 2, b->ids[i]);
        if (sqlite3_step(put_vec) != SQLITE_DONE || sqlite3_step(put_change) != SQLITE_DONE)
            return zk_fail(err, ZK_DB, "write vectors: %s", sqlite3_errmsg(db));
    }
    batch_clear(b);
    return ZK_OK;
}

zk_rc ret_kb_reembed(ret_store *s, int64_t kb, llm_embedder *emb, ret_progress_fn progress, void *pctx,
                     size_t *out_n, char *err)
{
    sqlite3 *db = s->db;
    sqlite3_stmt *sel = NULL, *put_vec = NULL, *put_change = NULL, *put_kb = NULL;
    int dim = llm_embedder_dim(emb), in_txn = 0;
    size_t total = 0, done = 0;
    batch b = {0};
    float *vecs = NULL;
    zk_rc rc;

    *out_n = 0;
    b.ids = zk_calloc(REINDEX_BATCH, sizeof *b.ids);
    b.texts = zk_calloc(REINDEX_BATCH, sizeof *b.texts);
    b.lens = zk_calloc(REINDEX_BATCH, sizeof *b.lens);
    vecs = zk_malloc(REINDEX_BATCH * (size_t)dim * sizeof *vecs);
    if (!b.ids || !b.texts || !b.lens || !vecs) { rc = zk_fail(err, ZK_NOMEM, "reindex: out of memory"); goto out; }
    if ((rc = ret_store_begin(s, err)) != ZK_OK) goto out;
    in_txn = 1;
    if ((rc = count_chunks(db, kb, &total, err)) != ZK_OK) goto out;
    if (sqlite3_prepare_v2(db, "SELECT c.id, c.text FROM chunks c JOIN documents d ON d.id = c.doc_id "
                               "WHERE d.kb_id = ? ORDER BY c.id", -1, &sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO vectors(chunk_id, vec) VALUES (?, ?)", -1, &put_vec, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT INTO changes(kb_id, chunk_id, op) VALUES (?, ?, 1)", -1, &put_change, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "UPDATE kb SET embed_model = ?, embed_dim = ? WHERE id = ?", -1, &put_kb, NULL) != SQLITE_OK) {
        rc = zk_fail(err, ZK_DB, "reindex: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_int64(sel, 1, kb);
    int r;
    while ((r = sqlite3_step(sel)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(sel, 1);
        size_t len = (size_t)sqlite3_column_bytes(sel, 1);
        b.ids[b.n] = sqlite3_column_int64(sel, 0);
        b.lens[b.n] = len;
        if (!(b.texts[b.n] = zk_malloc(len + 1))) { rc = zk_fail(err, ZK_NOMEM, "reindex: out of memory"); goto out; }
        memcpy(b.texts[b.n], t ? t : "", len);
        b.texts[b.n][len] = '\0';
        b.n++;
        if (b.n == REINDEX_BATCH) {
            if ((rc = flush_batch(s, emb, kb, &b, vecs, put_vec, put_change, err)) != ZK_OK) goto out;
            done += REINDEX_BATCH;
            if (progress) progress(pctx, done, total);
        }
    }
    if (r != SQLITE_DONE) { rc = zk_fail(err, ZK_DB, "reindex: %s", sqlite3_errmsg(db)); goto out; }
    done += b.n;
    if (b.n && (rc = flush_batch(s, emb, kb, &b, vecs, put_vec, put_change, err)) != ZK_OK) goto out;
    sqlite3_bind_text(put_kb, 1, llm_embedder_model(emb), -1, SQLITE_STATIC);
    sqlite3_bind_int(put_kb, 2, dim);
    sqlite3_bind_int64(put_kb, 3, kb);
    if (sqlite3_step(put_kb) != SQLITE_DONE) { rc = zk_fail(err, ZK_DB, "reindex: %s", sqlite3_errmsg(db)); goto out; }
    sqlite3_finalize(sel);
    sel = NULL;
    in_txn = 0;
    if ((rc = ret_store_commit(s, err)) != ZK_OK) goto out;
    if (progress) progress(pctx, done, total);
    *out_n = done;
    /* an index of another dimension is reopened (and rebuilt) on next use;
     * one of the same dimension simply replays the re-added vectors */
out:
    sqlite3_finalize(sel);
    sqlite3_finalize(put_vec);
    sqlite3_finalize(put_change);
    sqlite3_finalize(put_kb);
    if (in_txn) ret_store_rollback(s);
    if (b.texts) batch_clear(&b);
    zk_free(b.ids);
    zk_free(b.texts);
    zk_free(b.lens);
    zk_free(vecs);
    return rc;
}


/* ---- consistency check ------------------------------------------------------ */

static int64_t count_query(ret_store *s, const char *sql, int64_t arg)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_bind_parameter_count(st) >= 1) sqlite3_bind_int64(st, 1, arg);
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

/* PRAGMA integrity_check of db: each finding printed as "label: ...";
 * returns their number (1 when the check cannot run). */
static int integrity(sqlite3 *db, const char *label, FILE *out)
{
    sqlite3_stmt *st = NULL;
    int problems = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
        fprintf(out, "%s: %s\n", label, sqlite3_errmsg(db));
        return 1;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *m = (const char *)sqlite3_column_text(st, 0);
        if (m && strcmp(m, "ok")) { fprintf(out, "%s: %s\n", label, m); problems++; }
    }
    sqlite3_finalize(st);
    return problems;
}

zk_rc ret_store_fts_segments(ret_store *s, int *out, char *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT count(DISTINCT segid) FROM chunks_fts_idx", -1, &st, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "fts segments: %s", sqlite3_errmsg(s->db));
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return r == SQLITE_ROW ? ZK_OK : zk_fail(err, ZK_DB, "fts segments: %s", sqlite3_errmsg(s->db));
}

/* Pages of merge work per step: ~0.1 s, so a writer waiting on the lock
 * waits about that long, not for the whole merge. */
#define OPTIMIZE_STEP_PAGES 500

zk_rc ret_store_optimize(ret_store *s, int *out_before, int *out_after, char *err)
{
    int before = 0, after;
    zk_rc rc = ret_store_fts_segments(s, &before, err);
    /* FTS5's incremental optimize: 'merge' with a negative page count
     * merges every segment, not only those on one level; each step is its
     * own transaction, and one that changes fewer than two rows found
     * nothing left to do (the FTS5 documentation's test) */
    char sql[96];
    snprintf(sql, sizeof sql, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('merge', -%d)", OPTIMIZE_STEP_PAGES);
    while (rc == ZK_OK && before > 1) {
        int changes = sqlite3_total_changes(s->db);
        if ((rc = exec(s, sql, err)) != ZK_OK) break;
        if (sqlite3_total_changes(s->db) - changes < 2) break;
    }
    after = before;
    if (rc == ZK_OK && before > 1) rc = ret_store_fts_segments(s, &after, err);
    if (out_before) *out_before = before;
    if (out_after) *out_after = after;
    return rc;
}

zk_rc ret_store_check(ret_store *s, FILE *out, int *out_problems, char *err)
{
    int problems = 0;
    zk_rc rc = ZK_OK;
    sqlite3_stmt *st = NULL;

    problems += integrity(s->db, "integrity", out);
    sqlite3 *adb = ret_audit_db(s, &rc, err);
    if (adb && adb != s->db) problems += integrity(adb, "audit.db integrity", out);
    else if (!adb && rc != ZK_NOTFOUND) {
        fprintf(out, "audit.db: %s\n", err);
        problems++;
    }
    rc = ZK_OK;

    char *msg = NULL;
    if (sqlite3_exec(s->db, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)",
                     NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(out, "fts: %s\n", msg ? msg : sqlite3_errmsg(s->db));
        problems++;
    }
    sqlite3_free(msg);

    static const struct { const char *what, *sql; } checks[] = {
        {"documents whose chunk count differs from the recorded one",
         "SELECT count(*) FROM documents d WHERE d.status = 'indexed' AND d.nchunks <> "
         "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.id)"},
        {"chunks without a document",
         "SELECT count(*) FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.id = c.doc_id)"},
        {"chunks without a vector (in knowledge bases that have vectors)",
         "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id JOIN kb ON kb.id = d.kb_id "
         "WHERE kb.embed_dim > 0 AND NOT EXISTS (SELECT 1 FROM vectors v WHERE v.chunk_id = c.id)"},
        {"vectors without a chunk",
         "SELECT count(*) FROM vectors v WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.id = v.chunk_id)"},
    };
    for (size_t i = 0; i < ZK_ARRAY_LEN(checks); i++) {
        int64_t c = count_query(s, checks[i].sql, 0);
        if (c != 0) { fprintf(out, "%s: %lld\n", checks[i].what, (long long)c); problems++; }
    }

    /* the vector index after replay must hold exactly the vectors table's ids */
    if (sqlite3_prepare_v2(s->db, "SELECT id FROM kb WHERE embed_dim > 0", -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, err, "kb list");
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t kb = sqlite3_column_int64(st, 0);
        ret_vindex *vi;
        int64_t *ids = NULL;
        size_t nids = 0;
        if ((rc = ret_store_vindex(s, kb, &vi, err)) != ZK_OK) break;
        if ((rc = ret_vindex_ids(vi, &ids, &nids, err)) != ZK_OK) break;
        sqlite3_stmt *vs = NULL;
        size_t i = 0, mismatches = 0;
        if (sqlite3_prepare_v2(s->db, "SELECT v.chunk_id FROM vectors v JOIN chunks c ON c.id = v.chunk_id "
                                      "JOIN documents d ON d.id = c.doc_id WHERE d.kb_id = ? ORDER BY v.chunk_id",
                               -1, &vs, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(vs, 1, kb);
            while (sqlite3_step(vs) == SQLITE_ROW) {
                int64_t id = sqlite3_column_int64(vs, 0);
                if (i >= nids || ids[i] != id) mismatches++;
                else i++;
            }
        }
        sqlite3_finalize(vs);
        if (mismatches || i != nids) {
            fprintf(out, "kb %lld: vector index (%zu ids) differs from the vectors table (%zu mismatches)\n",
                    (long long)kb, nids, mismatches + (nids - i));
            problems++;
        }
        zk_free(ids);
    }
    sqlite3_finalize(st);
    if (out_problems) *out_problems = problems;
    return rc;
}
