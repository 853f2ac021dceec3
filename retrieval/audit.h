/* audit.h — the audit log: who searched or asked what, when, and which
 * documents and chunks were returned to them. Written by retrieval callers
 * (CLI search/ask, the server) after each query; read by `zhiku audit`.
 * Retention: rows older than [audit] retention_days are pruned on write
 * (at most once a minute per process). Single-threaded like the store.
 *
 * The log lives in its own database, audit.db beside zhiku.db: a write to a
 * SQLite file makes every other connection to that file drop its whole page
 * cache, and a row per search in zhiku.db cost a server with four pooled
 * connections a quarter of its searches per second (docs/PERFORMANCE.md).
 * Rows of a data directory from before are moved there on open. */
#ifndef RET_AUDIT_H
#define RET_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "zk.h"
#include "retrieval/store.h"

typedef struct {
    int64_t doc_id, chunk_id;
} ret_audit_ref;

/* principal: "user:NAME" or "admin". retention_days <= 0 keeps forever. */
zk_rc ret_audit_record(ret_store *s, const char *principal, const char *action, int64_t kb,
                       const char *query, const ret_audit_ref *refs, size_t nrefs,
                       int retention_days, char *err);

/* Export rows with at >= since (unix seconds, 0 = all), newest last, as JSON
 * lines {"id","at","principal","action","kb","query","results"} or as a
 * readable table. limit <= 0 = no limit (the newest `limit` rows). */
/* The audit database of s (opened, and created unless s is read-only, on
 * first use). NULL with ZK_NOTFOUND in *rc when a read-only store has no
 * audit log; the old in-zhiku.db table when a read-only store's directory
 * predates audit.db. */
sqlite3 *ret_audit_db(ret_store *s, zk_rc *rc, char *err);

/* Internal (retrieval/store.c): open DIR/audit.db, creating its schema
 * unless readonly; move the rows of an old zhiku.db audit_log table into it. */
zk_rc ret__audit_open(const char *dir, int readonly, sqlite3 **out, char *err);
zk_rc ret__audit_adopt(sqlite3 *main_db, const char *dir, char *err);

zk_rc ret_audit_export(ret_store *s, FILE *out, int json, int64_t since, int limit, char *err);

#endif
