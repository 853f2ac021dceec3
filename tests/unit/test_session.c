/* test_session.c — portal sessions (server/session.c): cookie and CSRF
 * shapes, lookup, only the cookie's SHA-256 stored, tampered/malformed/
 * unknown cookies, expiry and purge, logout, and the cascade when the user
 * is removed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/session.h"
#include "retrieval/principal.h"

typedef struct {
    char dir[64];
    ret_store *s;
    int64_t alice, bob;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char err[ZK_ERRLEN];
    strcpy(f->dir, "/tmp/zk-session-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    if (ret_store_open(f->dir, 0, &f->s, err) != ZK_OK) return -1;
    if (ret_user_add(f->s, "alice", NULL, 0, &f->alice, err) != ZK_OK) return -1;
    if (ret_user_add(f->s, "bob", NULL, 0, &f->bob, err) != ZK_OK) return -1;
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

static void exec_sql(fixture *f, const char *sql)
{
    assert_int_equal(sqlite3_exec(ret_store_db(f->s), sql, NULL, NULL, NULL), SQLITE_OK);
}

static int64_t query_int(fixture *f, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(ret_store_db(f->s), sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void test_create_lookup(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], csrf[64], hex[65];
    char *cookie = NULL, *tok = NULL, *cookie2 = NULL, *tok2 = NULL;
    int64_t uid = 0;
    assert_int_equal(srv_session_create(f->s, f->alice, 3600, &cookie, &tok, err), ZK_OK);
    assert_int_equal(strlen(cookie), SRV_SESSION_COOKIE_LEN);
    assert_int_equal(strspn(cookie, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     SRV_SESSION_COOKIE_LEN);
    assert_int_equal(strlen(tok), SRV_SESSION_CSRF_LEN);
    assert_int_equal(strspn(tok, "0123456789abcdef"), SRV_SESSION_CSRF_LEN);

    assert_int_equal(srv_session_lookup(f->s, cookie, &uid, csrf, err), ZK_OK);
    assert_int_equal(uid, f->alice);
    assert_string_equal(csrf, tok);

    /* only the digest is stored; the cookie text appears nowhere */
    zk_sha256_hex(cookie, strlen(cookie), hex);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(ret_store_db(f->s), "SELECT token_sha256, expires_at - created_at FROM sessions",
                                        -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), hex);
    assert_true(sqlite3_column_int64(st, 1) >= 3599 && sqlite3_column_int64(st, 1) <= 3601);
    sqlite3_finalize(st);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM sessions WHERE token_sha256 = '%s' OR csrf = '%s'", cookie, cookie);
    assert_int_equal(query_int(f, sql), 0);

    /* a second session is independent */
    assert_int_equal(srv_session_create(f->s, f->bob, 60, &cookie2, &tok2, err), ZK_OK);
    assert_string_not_equal(cookie, cookie2);
    assert_string_not_equal(tok, tok2);
    assert_int_equal(srv_session_lookup(f->s, cookie2, &uid, csrf, err), ZK_OK);
    assert_int_equal(uid, f->bob);
    assert_string_equal(csrf, tok2);

    zk_free(cookie);
    zk_free(tok);
    zk_free(cookie2);
    zk_free(tok2);
}

static void test_bad_cookies(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], csrf[64], bad[64];
    char *cookie = NULL, *tok = NULL;
    int64_t uid = 99;
    assert_int_equal(srv_session_create(f->s, f->alice, 3600, &cookie, &tok, err), ZK_OK);

    strcpy(bad, cookie);
    bad[5] = bad[5] == 'A' ? 'B' : 'A';   /* tampered */
    assert_int_equal(srv_session_lookup(f->s, bad, &uid, csrf, err), ZK_INVALID);
    assert_int_equal(uid, 0);
    assert_string_equal(csrf, "");
    assert_int_equal(srv_session_lookup(f->s, NULL, &uid, csrf, err), ZK_INVALID);
    assert_int_equal(srv_session_lookup(f->s, "", &uid, csrf, err), ZK_INVALID);
    snprintf(bad, sizeof bad, "%sx", cookie);   /* too long */
    assert_int_equal(srv_session_lookup(f->s, bad, &uid, csrf, err), ZK_INVALID);
    strcpy(bad, cookie);
    bad[10] = '\'';                            /* not base64url */
    assert_int_equal(srv_session_lookup(f->s, bad, &uid, csrf, err), ZK_INVALID);
    /* presenting the stored digest instead of the cookie does not work */
    char hex[65];
    zk_sha256_hex(cookie, strlen(cookie), hex);
    assert_int_equal(srv_session_lookup(f->s, hex, &uid, csrf, err), ZK_INVALID);
    /* the real one still does */
    assert_int_equal(srv_session_lookup(f->s, cookie, &uid, csrf, err), ZK_OK);

    /* creation errors */
    char *c2 = NULL, *t2 = NULL;
    assert_int_equal(srv_session_create(f->s, 424242, 60, &c2, &t2, err), ZK_NOTFOUND);
    int64_t everyone = query_int(f, "SELECT id FROM principals WHERE kind = 'group' AND name = 'everyone'");
    assert_int_equal(srv_session_create(f->s, everyone, 60, &c2, &t2, err), ZK_NOTFOUND);
    assert_int_equal(srv_session_create(f->s, f->alice, 0, &c2, &t2, err), ZK_INVALID);
    assert_int_equal(srv_session_create(f->s, f->alice, -5, &c2, &t2, err), ZK_INVALID);
    assert_null(c2);
    assert_null(t2);
    assert_int_equal(query_int(f, "SELECT count(*) FROM sessions"), 1);
    zk_free(cookie);
    zk_free(tok);
}

static void test_expiry_purge_destroy(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], csrf[64];
    char *c1 = NULL, *t1 = NULL, *c2 = NULL, *t2 = NULL;
    int64_t uid;
    int n = -1;
    assert_int_equal(srv_session_create(f->s, f->alice, 3600, &c1, &t1, err), ZK_OK);
    assert_int_equal(srv_session_create(f->s, f->alice, 3600, &c2, &t2, err), ZK_OK);
    char hex[65], sql[256];
    zk_sha256_hex(c1, strlen(c1), hex);
    snprintf(sql, sizeof sql, "UPDATE sessions SET expires_at = unixepoch() - 1 WHERE token_sha256 = '%s'", hex);
    exec_sql(f, sql);
    assert_int_equal(srv_session_lookup(f->s, c1, &uid, csrf, err), ZK_INVALID);
    assert_int_equal(srv_session_lookup(f->s, c2, &uid, csrf, err), ZK_OK);

    assert_int_equal(srv_session_purge_expired(f->s, &n, err), ZK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(query_int(f, "SELECT count(*) FROM sessions"), 1);
    assert_int_equal(srv_session_purge_expired(f->s, NULL, err), ZK_OK);

    assert_int_equal(srv_session_destroy(f->s, c2, err), ZK_OK);
    assert_int_equal(srv_session_lookup(f->s, c2, &uid, csrf, err), ZK_INVALID);
    assert_int_equal(query_int(f, "SELECT count(*) FROM sessions"), 0);
    assert_int_equal(srv_session_destroy(f->s, c2, err), ZK_OK);       /* twice is fine */
    assert_int_equal(srv_session_destroy(f->s, "garbage", err), ZK_OK);
    assert_int_equal(srv_session_destroy(f->s, NULL, err), ZK_OK);
    zk_free(c1);
    zk_free(t1);
    zk_free(c2);
    zk_free(t2);
}

static void test_cascade(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], csrf[64];
    char *ca = NULL, *ta = NULL, *cb = NULL, *tb = NULL;
    int64_t uid;
    assert_int_equal(srv_session_create(f->s, f->alice, 3600, &ca, &ta, err), ZK_OK);
    assert_int_equal(srv_session_create(f->s, f->bob, 3600, &cb, &tb, err), ZK_OK);
    assert_int_equal(ret_user_rm(f->s, "alice", err), ZK_OK);
    assert_int_equal(srv_session_lookup(f->s, ca, &uid, csrf, err), ZK_INVALID);
    assert_int_equal(query_int(f, "SELECT count(*) FROM sessions"), 1);
    assert_int_equal(srv_session_lookup(f->s, cb, &uid, csrf, err), ZK_OK);
    assert_int_equal(uid, f->bob);
    /* a new user reusing the name does not inherit the session */
    int64_t alice2;
    assert_int_equal(ret_user_add(f->s, "alice", NULL, 0, &alice2, err), ZK_OK);
    assert_int_equal(srv_session_lookup(f->s, ca, &uid, csrf, err), ZK_INVALID);
    zk_free(ca);
    zk_free(ta);
    zk_free(cb);
    zk_free(tb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_cookies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_purge_destroy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cascade, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
