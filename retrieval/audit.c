/* audit.c — the audit log (see audit.h): one INSERT per search or answer,
 * written by the CLI and the server after each query, and the export read by
 * `zhiku audit`. Pruning of rows past the retention is folded into writes but
 * runs at most once per PRUNE_INTERVAL seconds per process: the timestamp of
 * the last prune is a process-wide atomic (the only state here; server worker
 * threads share it, and one compare-and-swap elects the thread that prunes). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "retrieval/audit.h"
#include "retrieval/stmt.h"

#define PRUNE_INTERVAL 60

/* audit.db's schema (zhiku.db's 002_acl created the same table there) */
static const char audit_schema[] =
    "CREATE TABLE IF NOT EXISTS audit_log ("
    " id        INTEGER PRIMARY KEY,"
    " at        INTEGER NOT NULL DEFAULT (unixepoch()),"
    " principal TEXT NOT NULL,"            /* "user:NAME" or "admin" */
    " action    TEXT NOT NULL,"            /* search | ask | ... */
    " kb_id     INTEGER,"
    " query     TEXT,"
    " results   TEXT);"                    /* JSON array of {"doc": ID, "chunk": ID} */
    "CREATE INDEX IF NOT EXISTS audit_at ON audit_log(at);";

static _Atomic long long last_prune;   /* unix seconds of the last prune, 0 = never */

/* For tests: make the next ret_audit_record prune regardless of the clock. */
void ret__audit_prune_reset(void);
void ret__audit_prune_reset(void)
{
    atomic_store(&last_prune, 0);
}

zk_rc ret__audit_open(const char *dir, int readonly, sqlite3 **out, char *err)
{
    char path[4096];
    sqlite3 *db = NULL;
    char *msg = NULL;
    *out = NULL;
    if (snprintf(path, sizeof path, "%s/audit.db", dir) >= (int)sizeof path)
        return zk_fail(err, ZK_INVALID, "path too long");
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        zk_rc rc = zk_fail(err, readonly && db && sqlite3_errcode(db) == SQLITE_CANTOPEN ? ZK_NOTFOUND : ZK_DB,
                           "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return rc;
    }
    ret__busy_handler(db);
    sqlite3_extended_result_codes(db, 1);
    if (!readonly && sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, &msg) == SQLITE_OK)
        sqlite3_exec(db, audit_schema, NULL, NULL, &msg);
    if (msg) {
        zk_rc rc = zk_fail(err, ZK_DB, "%s: %s", path, msg);
        sqlite3_free(msg);
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return ZK_OK;
}

static int has_table(sqlite3 *db, const char *schema)
{
    char sql[128];
    sqlite3_stmt *st = NULL;
    snprintf(sql, sizeof sql, "SELECT 1 FROM %s.sqlite_schema WHERE type = 'table' AND name = 'audit_log'", schema);
    int yes = sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return yes;
}

static int has_rows(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int yes = sqlite3_prepare_v2(db, "SELECT 1 FROM main.audit_log LIMIT 1", -1, &st, NULL) == SQLITE_OK &&
              sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return yes;
}

/* Copy then drop in one transaction over both files; a crash between the
 * two commits leaves rows in both, and INSERT OR IGNORE (same ids) makes the
 * next open finish the move without duplicates. */
zk_rc ret__audit_adopt(sqlite3 *main_db, const char *dir, char *err)
{
    if (!has_table(main_db, "main")) return ZK_OK;
    char *msg = NULL;
    if (!has_rows(main_db)) {   /* a new directory: audit.db is created on first use */
        if (sqlite3_exec(main_db, "DROP TABLE IF EXISTS main.audit_log", NULL, NULL, &msg) == SQLITE_OK) return ZK_OK;
        zk_rc rc = zk_fail(err, ZK_DB, "audit log: %s", msg ? msg : sqlite3_errmsg(main_db));
        sqlite3_free(msg);
        return rc;
    }
    sqlite3 *adb = NULL;
    zk_rc rc = ret__audit_open(dir, 0, &adb, err);   /* creates the file and its schema */
    sqlite3_close(adb);
    if (rc != ZK_OK) return rc;
    char path[4096];
    snprintf(path, sizeof path, "%s/audit.db", dir);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(main_db, "ATTACH ? AS zk_audit", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
        rc = zk_fail(err, ZK_DB, "audit log: attaching %s: %s", path, sqlite3_errmsg(main_db));
        sqlite3_finalize(st);
        return rc;
    }
    sqlite3_finalize(st);
    if (sqlite3_exec(main_db, "BEGIN IMMEDIATE", NULL, NULL, &msg) == SQLITE_OK) {
        /* another process may have moved them while this one waited */
        if (has_table(main_db, "main") &&
            sqlite3_exec(main_db, "INSERT OR IGNORE INTO zk_audit.audit_log(id, at, principal, action, kb_id, query, results) "
                                  "SELECT id, at, principal, action, kb_id, query, results FROM main.audit_log; "
                                  "DROP TABLE main.audit_log;", NULL, NULL, &msg) != SQLITE_OK) {
            sqlite3_exec(main_db, "ROLLBACK", NULL, NULL, NULL);
        } else if (sqlite3_exec(main_db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
            sqlite3_exec(main_db, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    if (msg) rc = zk_fail(err, ZK_DB, "audit log: moving rows to %s: %s", path, msg);
    sqlite3_free(msg);
    sqlite3_exec(main_db, "DETACH zk_audit", NULL, NULL, NULL);
    return rc;
}

/* 1 when this caller should prune now (and claims the slot). */
static int prune_due(void)
{
    long long now = (long long)time(NULL), prev = atomic_load(&last_prune);
    if (prev != 0 && now - prev < PRUNE_INTERVAL) return 0;
    return atomic_compare_exchange_strong(&last_prune, &prev, now);
}

static zk_rc prune(sqlite3 *db, int retention_days, char *err)
{
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    if (sqlite3_prepare_v2(db, "DELETE FROM audit_log WHERE at < unixepoch() - ? * 86400", -1, &st, NULL) != SQLITE_OK ||
        (sqlite3_bind_int64(st, 1, retention_days), sqlite3_step(st)) != SQLITE_DONE)
        rc = zk_fail(err, ZK_DB, "audit prune: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc;
}

zk_rc ret_audit_record(ret_store *s, const char *principal, const char *action, int64_t kb,
                       const char *query, const ret_audit_ref *refs, size_t nrefs,
                       int retention_days, char *err)
{
    zk_rc orc;
    sqlite3 *db = ret_audit_db(s, &orc, err);
    sqlite3_stmt *st = NULL;
    json_t *arr = NULL;
    char *results = NULL;
    zk_rc rc = ZK_OK;
    if (!principal || !*principal || !action || !*action || (nrefs && !refs))
        return zk_fail(err, ZK_INVALID, "audit: principal and action are required");
    if (!db) return orc;
    if (!(arr = json_array())) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nrefs; i++) {
        json_t *o = json_pack("{sIsI}", "doc", (json_int_t)refs[i].doc_id, "chunk", (json_int_t)refs[i].chunk_id);
        if (!o || json_array_append_new(arr, o) < 0) {
            rc = zk_fail(err, ZK_NOMEM, "out of memory");
            goto out;
        }
    }
    if (!(results = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    if (ret__prepare(db, "INSERT INTO audit_log(principal, action, kb_id, query, results) VALUES (?, ?, ?, ?, ?)", &st) != SQLITE_OK) {
        rc = zk_fail(err, ZK_DB, "audit: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_text(st, 1, principal, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, action, -1, SQLITE_STATIC);
    if (kb > 0) sqlite3_bind_int64(st, 3, kb);
    else sqlite3_bind_null(st, 3);
    if (query) sqlite3_bind_text(st, 4, query, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 4);
    sqlite3_bind_text(st, 5, results, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = zk_fail(err, ZK_DB, "audit: %s", sqlite3_errmsg(db));
        goto out;
    }
    if (retention_days > 0 && prune_due()) rc = prune(db, retention_days, err);
out:
    ret__release(st);
    free(results);
    json_decref(arr);
    return rc;
}

/* Query text for the one-line table: control characters become spaces so a
 * crafted query cannot forge extra lines. */
static void print_clean(FILE *out, const char *q)
{
    for (; q && *q; q++) fputc((unsigned char)*q < 0x20 || *q == 0x7f ? ' ' : *q, out);
}

zk_rc ret_audit_export(ret_store *s, FILE *out, int json, int64_t since, int limit, char *err)
{
    sqlite3_stmt *st = NULL;
    int step, rows = 0;
    zk_rc rc = ZK_OK;
    sqlite3 *db = ret_audit_db(s, &rc, err);
    if (!db) return rc == ZK_NOTFOUND ? ZK_OK : rc;   /* nothing logged yet */
    /* the newest `limit` rows, printed oldest first */
    const char *sql = "SELECT id, at, principal, action, kb_id, query, results, datetime(at, 'unixepoch') FROM "
                      "(SELECT * FROM audit_log WHERE at >= ? ORDER BY at DESC, id DESC LIMIT ?) "
                      "ORDER BY at, id";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "audit: %s", sqlite3_errmsg(db));
    sqlite3_bind_int64(st, 1, since);
    sqlite3_bind_int64(st, 2, limit > 0 ? limit : -1);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *query = (const char *)sqlite3_column_text(st, 5);
        const char *res = (const char *)sqlite3_column_text(st, 6);
        json_t *results = res ? json_loads(res, JSON_REJECT_DUPLICATES, NULL) : NULL;
        if (!json_is_array(results)) {
            json_decref(results);
            results = json_array();
        }
        if (json) {
            json_t *o = json_object();
            json_object_set_new(o, "id", json_integer(sqlite3_column_int64(st, 0)));
            json_object_set_new(o, "at", json_integer(sqlite3_column_int64(st, 1)));
            json_object_set_new(o, "principal", json_string((const char *)sqlite3_column_text(st, 2)));
            json_object_set_new(o, "action", json_string((const char *)sqlite3_column_text(st, 3)));
            json_object_set_new(o, "kb", sqlite3_column_type(st, 4) == SQLITE_NULL
                                             ? json_null() : json_integer(sqlite3_column_int64(st, 4)));
            json_object_set_new(o, "query", query ? json_string(query) : json_null());
            json_object_set_new(o, "results", results);
            char *txt = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (txt) fprintf(out, "%s\n", txt);
            free(txt);
            json_decref(o);
        } else {
            if (rows == 0)
                fprintf(out, "%6s  %-19s  %-20s %-7s %4s %7s  %s\n", "ID", "TIME (UTC)", "PRINCIPAL", "ACTION", "KB",
                        "RESULTS", "QUERY");
            char kb[24] = "-";
            if (sqlite3_column_type(st, 4) != SQLITE_NULL)
                snprintf(kb, sizeof kb, "%lld", (long long)sqlite3_column_int64(st, 4));
            fprintf(out, "%6lld  %-19s  %-20s %-7s %4s %7zu  ", (long long)sqlite3_column_int64(st, 0),
                    (const char *)sqlite3_column_text(st, 7), (const char *)sqlite3_column_text(st, 2),
                    (const char *)sqlite3_column_text(st, 3), kb, json_array_size(results));
            print_clean(out, query);
            fputc('\n', out);
            json_decref(results);
        }
        rows++;
    }
    if (step != SQLITE_DONE) rc = zk_fail(err, ZK_DB, "audit: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc;
}
