/* test_migrate.c — opening an older data directory upgrades it: a database
 * built by hand with only migration 001 (as an early zhiku left it) and one
 * document is opened with ret_store_open, which applies every later
 * migration; the old document stays readable by everyone (002's rule), the
 * service tables of 003 work, and a second open changes nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "schema/schema.h"
#include "retrieval/acl.h"
#include "retrieval/convo.h"
#include "retrieval/principal.h"
#include "retrieval/tokenizer.h"

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) fprintf(stderr, "sql: %s\n", msg);
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
}

static void test_v1_upgrades(void **state)
{
    (void)state;
    char dir[64] = "/tmp/zk-migrate-XXXXXX", path[128], err[ZK_ERRLEN], cmd[128];
    sqlite3 *db = NULL;
    ret_store *s = NULL;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/zhiku.db", dir);

    /* a version-1 database, as migrate() in store.c would have built it */
    assert_true(zk_migration_count >= 3);
    assert_string_equal(zk_migrations[0].name, "001_init");
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(ret_tokenizer_register(db, err), ZK_OK);
    exec_ok(db, "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at INTEGER NOT NULL DEFAULT (unixepoch()))");
    exec_ok(db, zk_migrations[0].sql);
    exec_ok(db, "INSERT INTO schema_version(version, name) VALUES (1, '001_init')");
    exec_ok(db, "INSERT INTO documents(kb_id, ext_id, source, title, sha256, nchunks) "
                "VALUES (1, 'old.txt', 'old.txt', 'Old document', 'abc', 0)");
    sqlite3_close(db);

    assert_int_equal(ret_store_open(dir, 0, &s, err), ZK_OK);
    assert_int_equal(ret_store_schema_version(s), zk_migration_count);
    int64_t doc = 0, bob = 0, kb = 0, cid = 0;
    assert_int_equal(ret_doc_find(s, 0, "old.txt", &doc, err), ZK_OK);
    assert_int_equal(ret_user_add(s, "bob", NULL, 0, &bob, err), ZK_OK);
    ret_caller c;
    int can = 0;
    assert_int_equal(ret_caller_user(s, "bob", &c, err), ZK_OK);
    assert_int_equal(ret_acl_can_read(s, &c, doc, &can, err), ZK_OK);
    assert_int_equal(can, 1);
    ret_caller_free(&c);
    /* 003's tables and columns */
    assert_int_equal(ret_kb_id(s, NULL, &kb, err), ZK_OK);
    assert_int_equal(ret_convo_create(s, bob, kb, "after upgrade", &cid, err), ZK_OK);
    exec_ok(ret_store_db(s), "SELECT local_only FROM kb; SELECT blob_sha256 FROM documents");
    ret_store_close(s);

    /* reopening is a no-op */
    assert_int_equal(ret_store_open(dir, 0, &s, err), ZK_OK);
    assert_int_equal(ret_store_schema_version(s), zk_migration_count);
    ret_store_close(s);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_upgrades),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
