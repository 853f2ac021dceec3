/* usage.c — token usage rows (see usage.h): an UPSERT per model call and a
 * date-filtered export. */
#include "retrieval/usage.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

zk_rc ret_usage_record(ret_store *s, const char *user_label, int64_t kb, const char *provider,
                       long prompt_tokens, long completion_tokens, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    const char *sql =
        "INSERT INTO usage(day, user_name, kb_id, provider, requests, prompt_tokens, completion_tokens) "
        "VALUES (strftime('%Y-%m-%d', 'now'), ?1, ?2, ?3, 1, ?4, ?5) "
        "ON CONFLICT(day, user_name, kb_id, provider) DO UPDATE SET requests = requests + 1, "
        "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
        "completion_tokens = completion_tokens + excluded.completion_tokens";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "usage: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, user_label && *user_label ? user_label : "admin", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, kb);
    sqlite3_bind_text(st, 3, provider ? provider : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, prompt_tokens > 0 ? prompt_tokens : 0);
    sqlite3_bind_int64(st, 5, completion_tokens > 0 ? completion_tokens : 0);
    zk_rc rc = sqlite3_step(st) == SQLITE_DONE ? ZK_OK : zk_fail(err, ZK_DB, "usage: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc;
}

void ret_usage_free(ret_usage_row *rows, size_t n)
{
    for (size_t i = 0; rows && i < n; i++) {
        zk_free(rows[i].user);
        zk_free(rows[i].kb_name);
        zk_free(rows[i].provider);
    }
    zk_free(rows);
}

static int is_date(const char *s)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i])) return 0;
    return 1;
}

zk_rc ret_usage_export(ret_store *s, const char *since, ret_usage_row **out_rows, size_t *out_n, char *err)
{
    *out_rows = NULL;
    *out_n = 0;
    if (since && !is_date(since)) return zk_fail(err, ZK_INVALID, "--since: expected YYYY-MM-DD, got '%s'", since);
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    const char *sql = "SELECT u.day, u.user_name, u.kb_id, coalesce(k.name, ''), u.provider, u.requests, "
                      "u.prompt_tokens, u.completion_tokens FROM usage u LEFT JOIN kb k ON k.id = u.kb_id "
                      "WHERE ?1 IS NULL OR u.day >= ?1 ORDER BY u.day, u.user_name, u.kb_id, u.provider";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "usage: %s", sqlite3_errmsg(db));
    if (since) sqlite3_bind_text(st, 1, since, -1, SQLITE_TRANSIENT);
    zk_rc rc = ZK_OK;
    ret_usage_row *rows = NULL;
    size_t n = 0, cap = 0;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            ret_usage_row *p = zk_realloc(rows, nc * sizeof *p);
            if (!p) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
            rows = p;
            cap = nc;
        }
        ret_usage_row *u = &rows[n++];
        memset(u, 0, sizeof *u);
        const char *day = (const char *)sqlite3_column_text(st, 0);
        snprintf(u->day, sizeof u->day, "%s", day ? day : "");
        u->user = zk_strdup((const char *)sqlite3_column_text(st, 1));
        u->kb = sqlite3_column_int64(st, 2);
        u->kb_name = zk_strdup((const char *)sqlite3_column_text(st, 3));
        u->provider = zk_strdup((const char *)sqlite3_column_text(st, 4));
        u->requests = (long)sqlite3_column_int64(st, 5);
        u->prompt_tokens = (long)sqlite3_column_int64(st, 6);
        u->completion_tokens = (long)sqlite3_column_int64(st, 7);
        if (!u->user || !u->kb_name || !u->provider) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    }
    if (r != SQLITE_DONE) rc = zk_fail(err, ZK_DB, "usage: %s", sqlite3_errmsg(db));
out:
    sqlite3_finalize(st);
    if (rc != ZK_OK) {
        ret_usage_free(rows, n);
        return rc;
    }
    *out_rows = rows;
    *out_n = n;
    return ZK_OK;
}
