/* stmt.c — prepared statements kept on their connection (see stmt.h).
 *
 * Compiling SQL is a real cost on the query path: the search, the token
 * check and the caller's principal set prepare about ten statements, 9% of
 * a server's CPU at 125k chunks (docs/PERFORMANCE.md). A statement taken
 * with ret__prepare is kept, reset, on its connection after ret__release and
 * handed out again for the same SQL text.
 *
 * The connection itself is the cache: SQLite lists a connection's
 * statements (sqlite3_next_stmt), and a cached statement is one whose text
 * ends with MARK. Statements out on loan are remembered per thread — a
 * connection is used by one thread at a time, and a statement is released
 * before its connection is handed on — so one SQL text used twice at once
 * (nested) gets a second statement. The cache of a connection holds at
 * most MAX_CACHED statements; beyond that, and beyond MAX_LOANED loans on a
 * thread, ret__prepare prepares a plain statement that ret__release
 * finalizes. */
#include <stdlib.h>
#include <string.h>

#include "retrieval/stmt.h"

#define MARK " /*zk:kept*/"
#define MARK_LEN (sizeof MARK - 1)
#define MAX_CACHED 48
#define MAX_LOANED 16

static __thread sqlite3_stmt *loaned[MAX_LOANED];
static __thread int nloaned;

static int is_loaned(const sqlite3_stmt *st)
{
    for (int i = 0; i < nloaned; i++)
        if (loaned[i] == st) return 1;
    return 0;
}

static int is_kept(const char *text, size_t *len)
{
    size_t n = strlen(text);
    *len = n;
    return n >= MARK_LEN && !memcmp(text + n - MARK_LEN, MARK, MARK_LEN);
}

int ret__prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
    size_t n = strlen(sql), len;
    int kept = 0;
    *out = NULL;
    for (sqlite3_stmt *p = sqlite3_next_stmt(db, NULL); p; p = sqlite3_next_stmt(db, p)) {
        const char *t = sqlite3_sql(p);
        if (!t || !is_kept(t, &len)) continue;
        kept++;
        if (len == n + MARK_LEN && !memcmp(t, sql, n) && !is_loaned(p) && !sqlite3_stmt_busy(p)) {
            loaned[nloaned++] = p;   /* nloaned < MAX_LOANED: nothing is kept otherwise */
            *out = p;
            return SQLITE_OK;
        }
    }
    if (kept >= MAX_CACHED || nloaned == MAX_LOANED) return sqlite3_prepare_v2(db, sql, -1, out, NULL);
    char *text = malloc(n + MARK_LEN + 1);
    if (!text) return SQLITE_NOMEM;
    memcpy(text, sql, n);
    memcpy(text + n, MARK, MARK_LEN + 1);
    int rc = sqlite3_prepare_v3(db, text, (int)(n + MARK_LEN + 1), SQLITE_PREPARE_PERSISTENT, out, NULL);
    free(text);
    if (rc == SQLITE_OK && *out) loaned[nloaned++] = *out;
    return rc;
}

void ret__release(sqlite3_stmt *st)
{
    if (!st) return;
    for (int i = 0; i < nloaned; i++) {
        if (loaned[i] != st) continue;
        loaned[i] = loaned[--nloaned];
        sqlite3_reset(st);   /* ends its read transaction */
        sqlite3_clear_bindings(st);
        return;
    }
    sqlite3_finalize(st);
}

void ret__stmt_clear(sqlite3 *db)
{
    size_t len;
    sqlite3_stmt *p = sqlite3_next_stmt(db, NULL);
    while (p) {
        sqlite3_stmt *next = sqlite3_next_stmt(db, p);
        const char *t = sqlite3_sql(p);
        if (t && is_kept(t, &len) && !is_loaned(p)) sqlite3_finalize(p);
        p = next;
    }
}
