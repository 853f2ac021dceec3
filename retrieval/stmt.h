/* stmt.h — prepared statements kept on their connection for reuse
 * (retrieval/stmt.c). ret__prepare is sqlite3_prepare_v2 for hot, fixed
 * SQL texts; the statement must be given back with ret__release (never
 * finalized by the caller, never kept past the connection's hand-over to
 * another thread). ret__release resets it and clears its bindings, so
 * SQLITE_STATIC bindings may be freed right after. ret__stmt_clear
 * finalizes a connection's kept statements before it is closed. */
#ifndef RET_STMT_H
#define RET_STMT_H

#include <sqlite3.h>

int ret__prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out);
void ret__release(sqlite3_stmt *st);
void ret__stmt_clear(sqlite3 *db);

#endif
