/* test_stmt.c — statements kept on their connection (retrieval/stmt.c):
 * the same SQL text gets the same statement back, reset and with its
 * bindings cleared; a text used twice at once gets a second statement;
 * statements prepared elsewhere on the connection are never handed out;
 * past the cap statements are plain and finalized on release; a released
 * statement holds no read transaction; ret__stmt_clear leaves nothing for
 * sqlite3_close to refuse. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "retrieval/stmt.h"

static int count_stmts(sqlite3 *db)
{
    int n = 0;
    for (sqlite3_stmt *p = sqlite3_next_stmt(db, NULL); p; p = sqlite3_next_stmt(db, p)) n++;
    return n;
}

static void test_reuse(void **state)
{
    (void)state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    sqlite3_stmt *a, *b, *c;
    assert_int_equal(ret__prepare(db, "SELECT ?1 + 1", &a), SQLITE_OK);
    assert_int_equal(sqlite3_bind_int(a, 1, 41), SQLITE_OK);
    assert_int_equal(sqlite3_step(a), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(a, 0), 42);
    ret__release(a);   /* mid-result: reset */
    assert_int_equal(sqlite3_stmt_busy(a), 0);
    assert_int_equal(ret__prepare(db, "SELECT ?1 + 1", &b), SQLITE_OK);
    assert_ptr_equal(a, b);
    assert_int_equal(sqlite3_step(b), SQLITE_ROW);
    assert_int_equal(sqlite3_column_type(b, 0), SQLITE_NULL);   /* bindings were cleared */
    /* the same text while b is out: a second statement */
    assert_int_equal(ret__prepare(db, "SELECT ?1 + 1", &c), SQLITE_OK);
    assert_ptr_not_equal(b, c);
    ret__release(c);
    ret__release(b);
    /* a different text from the same buffer is a different statement */
    char buf[32];
    snprintf(buf, sizeof buf, "SELECT %d", 7);
    assert_int_equal(ret__prepare(db, buf, &a), SQLITE_OK);
    ret__release(a);
    snprintf(buf, sizeof buf, "SELECT %d", 8);
    assert_int_equal(ret__prepare(db, buf, &b), SQLITE_OK);
    assert_ptr_not_equal(a, b);
    assert_int_equal(sqlite3_step(b), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(b, 0), 8);
    ret__release(b);
    /* a statement prepared by someone else is never handed out */
    sqlite3_stmt *own;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT 9", -1, &own, NULL), SQLITE_OK);
    assert_int_equal(ret__prepare(db, "SELECT 9", &a), SQLITE_OK);
    assert_ptr_not_equal(a, own);
    ret__release(a);
    sqlite3_finalize(own);
    ret__stmt_clear(db);
    assert_int_equal(count_stmts(db), 0);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);   /* SQLITE_BUSY if anything were left */
}

static void test_cap(void **state)
{
    (void)state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    char buf[32];
    for (int i = 0; i < 100; i++) {
        sqlite3_stmt *st;
        snprintf(buf, sizeof buf, "SELECT %d", i);
        assert_int_equal(ret__prepare(db, buf, &st), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), i);
        ret__release(st);
    }
    int kept = count_stmts(db);
    assert_true(kept > 0 && kept <= 48);
    /* loans past the per-thread limit are plain statements */
    sqlite3_stmt *many[40];
    for (int i = 0; i < 40; i++) assert_int_equal(ret__prepare(db, "SELECT 1", &many[i]), SQLITE_OK);
    for (int i = 0; i < 40; i++) ret__release(many[i]);
    assert_true(count_stmts(db) <= 48);
    ret__stmt_clear(db);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* A released statement ends its read transaction: a writer on another
 * connection can commit and checkpoint the whole WAL. */
static void test_no_lingering_read(void **state)
{
    (void)state;
    char dir[] = "/tmp/zk-stmt-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.db", dir);
    sqlite3 *r, *w;
    assert_int_equal(sqlite3_open(path, &w), SQLITE_OK);
    assert_int_equal(sqlite3_exec(w, "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);",
                                  NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_open(path, &r), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(ret__prepare(r, "SELECT x FROM t", &st), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);   /* one row read, one left */
    ret__release(st);
    assert_int_equal(sqlite3_get_autocommit(r), 1);
    assert_int_equal(sqlite3_exec(w, "INSERT INTO t VALUES (3)", NULL, NULL, NULL), SQLITE_OK);
    int log = -1, ckpt = -1;
    assert_int_equal(sqlite3_wal_checkpoint_v2(w, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &ckpt), SQLITE_OK);
    assert_int_equal(ret__prepare(r, "SELECT x FROM t", &st), SQLITE_OK);
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) n++;
    assert_int_equal(n, 3);   /* sees the new row */
    ret__release(st);
    ret__stmt_clear(r);
    assert_int_equal(sqlite3_close(r), SQLITE_OK);
    sqlite3_close(w);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_no_lingering_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
