/* test_audit.c — the audit log (retrieval/audit.c): one row per record with
 * its results as JSON, export as JSON lines and as a table (--since, --limit,
 * newest rows oldest first), retention pruning with its once-a-minute rate
 * limit, and its own database file: a record leaves zhiku.db untouched, and
 * the rows of a data directory from before audit.db are moved on open. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "retrieval/audit.h"

/* internal to audit.c: forget the last prune time */
void ret__audit_prune_reset(void);

typedef struct {
    char dir[64];
    ret_store *s;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char err[ZK_ERRLEN];
    strcpy(f->dir, "/tmp/zk-audit-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    if (ret_store_open(f->dir, 0, &f->s, err) != ZK_OK) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    ret_store_close(f->s);
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

static sqlite3 *audit_db(fixture *f)
{
    zk_rc rc;
    char err[ZK_ERRLEN];
    sqlite3 *db = ret_audit_db(f->s, &rc, err);
    assert_non_null(db);
    return db;
}

static void exec_sql(fixture *f, const char *sql)
{
    assert_int_equal(sqlite3_exec(audit_db(f), sql, NULL, NULL, NULL), SQLITE_OK);
}

static int64_t db_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int64_t query_int(fixture *f, const char *sql)
{
    return db_int(audit_db(f), sql);
}

/* Export into a malloc'd string. */
static char *export(fixture *f, int json, int64_t since, int limit)
{
    char err[ZK_ERRLEN], *out = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&out, &len);
    assert_int_equal(ret_audit_export(f->s, mf, json, since, limit, err), ZK_OK);
    fclose(mf);
    return out;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void test_record_export(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    ret_audit_ref refs[] = {{12, 340}, {13, 351}};
    char *out = export(f, 1, 0, 0);
    assert_string_equal(out, "");   /* empty log: nothing at all */
    free(out);
    out = export(f, 0, 0, 0);
    assert_string_equal(out, "");
    free(out);

    assert_int_equal(ret_audit_record(f->s, "user:alice", "search", 1, "备份 \"quoted\"", refs, 2, 0, err), ZK_OK);
    assert_int_equal(ret_audit_record(f->s, "admin", "ask", 0, NULL, NULL, 0, 0, err), ZK_OK);
    assert_int_equal(ret_audit_record(f->s, NULL, "ask", 0, NULL, NULL, 0, 0, err), ZK_INVALID);
    assert_int_equal(ret_audit_record(f->s, "admin", "", 0, NULL, NULL, 0, 0, err), ZK_INVALID);
    assert_int_equal(query_int(f, "SELECT count(*) FROM audit_log"), 2);

    out = export(f, 1, 0, 0);
    assert_int_equal(count_lines(out), 2);
    char *nl = strchr(out, '\n');
    *nl = '\0';
    json_t *a = json_loads(out, 0, NULL), *b = json_loads(nl + 1, 0, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(a, "principal")), "user:alice");
    assert_string_equal(json_string_value(json_object_get(a, "action")), "search");
    assert_string_equal(json_string_value(json_object_get(a, "query")), "备份 \"quoted\"");
    assert_int_equal(json_integer_value(json_object_get(a, "kb")), 1);
    assert_true(llabs((long long)json_integer_value(json_object_get(a, "at")) - (long long)time(NULL)) < 5);
    json_t *res = json_object_get(a, "results");
    assert_int_equal(json_array_size(res), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(res, 1), "doc")), 13);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(res, 1), "chunk")), 351);
    assert_true(json_integer_value(json_object_get(a, "id")) < json_integer_value(json_object_get(b, "id")));
    assert_true(json_is_null(json_object_get(b, "kb")));
    assert_true(json_is_null(json_object_get(b, "query")));
    assert_int_equal(json_array_size(json_object_get(b, "results")), 0);
    json_decref(a);
    json_decref(b);
    free(out);
    /* the stored results column is the documented JSON */
    assert_int_equal(query_int(f, "SELECT results = '[{\"doc\":12,\"chunk\":340},{\"doc\":13,\"chunk\":351}]' "
                                  "FROM audit_log WHERE principal = 'user:alice'"), 1);

    /* table: a header and one line per row; a newline in a query cannot forge a row */
    assert_int_equal(ret_audit_record(f->s, "user:eve", "search", 1, "x\nforged row", NULL, 0, 0, err), ZK_OK);
    out = export(f, 0, 0, 0);
    assert_int_equal(count_lines(out), 4);
    assert_non_null(strstr(out, "user:alice"));
    assert_non_null(strstr(out, "x forged row"));
    free(out);
}

static void test_since_limit(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    for (int i = 0; i < 5; i++) {
        char q[16];
        snprintf(q, sizeof q, "q%d", i);
        assert_int_equal(ret_audit_record(f->s, "admin", "search", 1, q, NULL, 0, 0, err), ZK_OK);
    }
    /* q0 and q1 happened 10 and 5 days ago */
    exec_sql(f, "UPDATE audit_log SET at = unixepoch() - 10 * 86400 WHERE query = 'q0'");
    exec_sql(f, "UPDATE audit_log SET at = unixepoch() - 5 * 86400 WHERE query = 'q1'");
    int64_t now = (int64_t)time(NULL);

    char *out = export(f, 1, now - 7 * 86400, 0);
    assert_int_equal(count_lines(out), 4);
    assert_null(strstr(out, "\"q0\""));
    assert_non_null(strstr(out, "\"q1\""));
    free(out);
    out = export(f, 1, now - 60, 0);
    assert_int_equal(count_lines(out), 3);
    free(out);

    /* limit keeps the newest rows, printed oldest first */
    out = export(f, 1, 0, 2);
    assert_int_equal(count_lines(out), 2);
    char *p3 = strstr(out, "\"q3\""), *p4 = strstr(out, "\"q4\"");
    assert_non_null(p3);
    assert_non_null(p4);
    assert_true(p3 < p4);
    free(out);
    out = export(f, 1, 0, 0);   /* oldest first overall */
    assert_true(strstr(out, "\"q0\"") < strstr(out, "\"q1\""));
    assert_true(strstr(out, "\"q1\"") < strstr(out, "\"q2\""));
    free(out);
}

static void test_prune(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    assert_int_equal(ret_audit_record(f->s, "admin", "search", 1, "old", NULL, 0, 0, err), ZK_OK);
    exec_sql(f, "UPDATE audit_log SET at = unixepoch() - 10 * 86400");

    /* retention 0 keeps everything */
    ret__audit_prune_reset();
    assert_int_equal(ret_audit_record(f->s, "admin", "search", 1, "new1", NULL, 0, 0, err), ZK_OK);
    assert_int_equal(query_int(f, "SELECT count(*) FROM audit_log"), 2);
    /* retention longer than the row's age keeps it */
    assert_int_equal(ret_audit_record(f->s, "admin", "search", 1, "new2", NULL, 0, 30, err), ZK_OK);
    assert_int_equal(query_int(f, "SELECT count(*) FROM audit_log"), 3);
    /* retention 7 days drops it — on the next prune, not within the minute */
    assert_int_equal(ret_audit_record(f->s, "admin", "search", 1, "new3", NULL, 0, 7, err), ZK_OK);
    assert_int_equal(query_int(f, "SELECT count(*) FROM audit_log WHERE query = 'old'"), 1);
    ret__audit_prune_reset();
    assert_int_equal(ret_audit_record(f->s, "admin", "search", 1, "new4", NULL, 0, 7, err), ZK_OK);
    assert_int_equal(query_int(f, "SELECT count(*) FROM audit_log WHERE query = 'old'"), 0);
    assert_int_equal(query_int(f, "SELECT count(*) FROM audit_log"), 4);
}

/* Another connection to zhiku.db (a pooled server connection) sees no
 * change from a record, so it keeps its page cache. */
static void test_own_file(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], path[128];
    sqlite3 *other = NULL;
    snprintf(path, sizeof path, "%s/zhiku.db", f->dir);
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(db_int(other, "SELECT count(*) FROM sqlite_schema WHERE name = 'audit_log'"), 0);
    int64_t v0 = db_int(other, "PRAGMA data_version");
    assert_int_equal(ret_audit_record(f->s, "user:alice", "search", 1, "q", NULL, 0, 0, err), ZK_OK);
    assert_int_equal(db_int(other, "PRAGMA data_version"), v0);
    exec_sql(f, "SELECT 1");
    /* a write to zhiku.db from the store does change it (the probe works) */
    assert_int_equal(sqlite3_exec(ret_store_db(f->s), "INSERT INTO kb(name) VALUES ('probe')", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_true(db_int(other, "PRAGMA data_version") != v0);
    sqlite3_close(other);
    snprintf(path, sizeof path, "%s/audit.db", f->dir);
    assert_int_equal(access(path, F_OK), 0);
}

/* A new data directory has no audit table in zhiku.db and no audit.db
 * until the first row; exporting an empty log creates nothing either way. */
static void test_fresh_dir(void **state)
{
    fixture *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/audit.db", f->dir);
    assert_int_equal(db_int(ret_store_db(f->s), "SELECT count(*) FROM sqlite_schema WHERE name = 'audit_log'"), 0);
    assert_int_not_equal(access(path, F_OK), 0);
    char *out = export(f, 1, 0, 0);
    assert_string_equal(out, "");
    free(out);
}

/* A data directory from before audit.db: its rows are readable read-only in
 * place, and moved (ids kept, table dropped) by the next read-write open. */
static void test_adopt_old_rows(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], path[128];
    ret_store_close(f->s);
    f->s = NULL;
    snprintf(path, sizeof path, "%s/audit.db", f->dir);
    (void)unlink(path);   /* created on first use: may not exist */
    sqlite3 *db = NULL;
    snprintf(path, sizeof path, "%s/zhiku.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE audit_log (id INTEGER PRIMARY KEY, at INTEGER NOT NULL DEFAULT "
                                      "(unixepoch()), principal TEXT NOT NULL, action TEXT NOT NULL, kb_id INTEGER, "
                                      "query TEXT, results TEXT);"
                                      "INSERT INTO audit_log VALUES (7, 1700000000, 'user:bob', 'search', 1, 'old one', '[]');"
                                      "INSERT INTO audit_log VALUES (9, 1700000100, 'admin', 'ask', NULL, 'old two', '[]');",
                                  NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    assert_int_equal(ret_store_open(f->dir, RET_OPEN_READONLY, &f->s, err), ZK_OK);
    char *out = export(f, 1, 0, 0);
    assert_int_equal(count_lines(out), 2);
    assert_non_null(strstr(out, "\"old two\""));
    free(out);
    ret_store_close(f->s);

    assert_int_equal(ret_store_open(f->dir, 0, &f->s, err), ZK_OK);
    assert_int_equal(db_int(ret_store_db(f->s), "SELECT count(*) FROM sqlite_schema WHERE name = 'audit_log'"), 0);
    assert_int_equal(query_int(f, "SELECT count(*) FROM audit_log WHERE id IN (7, 9)"), 2);
    assert_int_equal(ret_audit_record(f->s, "admin", "search", 1, "new", NULL, 0, 0, err), ZK_OK);
    assert_true(query_int(f, "SELECT max(id) FROM audit_log") > 9);
    out = export(f, 1, 0, 0);
    assert_int_equal(count_lines(out), 3);
    assert_true(strstr(out, "\"old one\"") < strstr(out, "\"new\""));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_record_export, setup, teardown),
        cmocka_unit_test_setup_teardown(test_since_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fresh_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_old_rows, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
