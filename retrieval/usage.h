/* usage.h — token usage accounting: one row per (UTC day, user, knowledge
 * base, provider) in the `usage` table, incremented after every model call
 * (requests, prompt and completion tokens), and the export behind
 * `zhiku usage`. A handful of writes per question; single-threaded like the
 * store it uses. */
#ifndef RET_USAGE_H
#define RET_USAGE_H

#include <stddef.h>
#include <stdint.h>
#include "zk.h"
#include "retrieval/store.h"

/* Add one request and its tokens (negative counts are taken as 0) to
 * today's row (UPSERT). user_label: "admin" or "user:NAME". */
zk_rc ret_usage_record(ret_store *s, const char *user_label, int64_t kb, const char *provider,
                       long prompt_tokens, long completion_tokens, char *err);

typedef struct {
    char day[11];          /* YYYY-MM-DD */
    char *user;            /* owned */
    int64_t kb;
    char *kb_name;         /* owned; "" when the knowledge base was removed */
    char *provider;        /* owned */
    long requests, prompt_tokens, completion_tokens;
} ret_usage_row;

/* Rows with day >= since (YYYY-MM-DD; NULL = all), by day then user, kb,
 * provider. ZK_INVALID when since is not a date. Free with ret_usage_free. */
zk_rc ret_usage_export(ret_store *s, const char *since, ret_usage_row **out_rows, size_t *out_n, char *err);
void ret_usage_free(ret_usage_row *rows, size_t n);

#endif
