/* audit.h — the audit log: who searched or asked what, when, and which
 * documents and chunks were returned to them. Written by retrieval callers
 * (CLI search/ask, the server) after each query; read by `zhiku audit`.
 * Retention: rows older than [audit] retention_days are pruned on write
 * (at most once a minute per process). Single-threaded like the store. */
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
zk_rc ret_audit_export(ret_store *s, FILE *out, int json, int64_t since, int limit, char *err);

#endif
