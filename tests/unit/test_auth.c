/* test_auth.c — credentials (server/auth.c): scrypt hash/verify, malformed
 * and hostile encodings, scope parsing, and the API token life cycle —
 * create, verify, scopes, expiry, revocation, unknown tokens, tokens of a
 * deleted user — plus the guarantee that the token text is never stored. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/auth.h"

typedef struct {
    char dir[64];
    ret_store *s;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char err[ZK_ERRLEN];
    strcpy(f->dir, "/tmp/zk-auth-XXXXXX");
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

static void exec_sql(fixture *f, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(ret_store_db(f->s), sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) fprintf(stderr, "sql: %s\n", msg);
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
}

static int64_t add_user(fixture *f, const char *name)
{
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO principals(kind, name) VALUES ('user', '%s')", name);
    exec_sql(f, sql);
    return sqlite3_last_insert_rowid(ret_store_db(f->s));
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

/* ---- passwords ---------------------------------------------------------- */

static void test_password_roundtrip(void **state)
{
    (void)state;
    char err[ZK_ERRLEN], *h1 = NULL, *h2 = NULL;
    assert_int_equal(srv_password_hash("correct horse 马", &h1, err), ZK_OK);
    assert_non_null(h1);
    assert_true(!strncmp(h1, "scrypt$32768$8$1$", 17));
    assert_int_equal(srv_password_verify("correct horse 马", h1), 1);
    assert_int_equal(srv_password_verify("correct horse", h1), 0);
    assert_int_equal(srv_password_verify("", h1), 0);
    /* same password, different salt → different encodings, both valid */
    assert_int_equal(srv_password_hash("correct horse 马", &h2, err), ZK_OK);
    assert_string_not_equal(h1, h2);
    assert_int_equal(srv_password_verify("correct horse 马", h2), 1);
    /* flip one character of the stored hash */
    size_t n = strlen(h2);
    h2[n - 3] = h2[n - 3] == 'A' ? 'B' : 'A';
    assert_int_equal(srv_password_verify("correct horse 马", h2), 0);
    zk_free(h1);
    zk_free(h2);
}

static void test_password_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "garbage",
        "scrypt$",
        "scrypt$$$$$",
        "bcrypt$32768$8$1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=",
        /* huge N, r, p: must be refused before any work */
        "scrypt$1073741824$8$1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=",
        "scrypt$99999999999999999999999$8$1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2g=",
        "scrypt$1048576$8$1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=",
        "scrypt$32768$100000$1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=",
        "scrypt$32768$8$1000000$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=",
        /* N not a power of two, zero, negative */
        "scrypt$30000$8$1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=",
        "scrypt$0$8$1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=",
        "scrypt$-32768$8$1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=",
        "scrypt$32768$0$1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=",
        /* bad base64, missing hash, short salt, short hash, trailing junk */
        "scrypt$32768$8$1$!!!!$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=",
        "scrypt$32768$8$1$c2FsdHNhbHRzYWx0c2FsdA==",
        "scrypt$32768$8$1$c2FsdHNhbHRzYWx0c2FsdA==$",
        "scrypt$32768$8$1$YQ==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=",
        "scrypt$32768$8$1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaA==",
        "scrypt$32768$8$1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=$x",
        "scrypt$32768$8$1$c2Fsd=HNhbHRzYWx0c2FsdA=$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=",
    };
    double t0 = zk_now();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (srv_password_verify("pw", bad[i]) != 0) fail_msg("accepted malformed hash #%zu: %s", i, bad[i]);
    }
    assert_int_equal(srv_password_verify("pw", NULL), 0);
    assert_int_equal(srv_password_verify(NULL, "scrypt$32768$8$1$a$b"), 0);
    /* a well-formed hash of another password costs one scrypt; the hostile ones none */
    assert_true(zk_now() - t0 < 2.0);
    /* a very long garbage string */
    char *big = malloc(100000);
    memset(big, '$', 99999);
    big[99999] = '\0';
    memcpy(big, "scrypt$", 7);
    assert_int_equal(srv_password_verify("pw", big), 0);
    free(big);
}

/* ---- scopes -------------------------------------------------------------- */

static void test_scopes(void **state)
{
    (void)state;
    char err[ZK_ERRLEN], buf[64];
    unsigned sc;
    assert_int_equal(srv_scopes_parse("search,ask", &sc, err), ZK_OK);
    assert_int_equal(sc, SRV_SCOPE_SEARCH | SRV_SCOPE_ASK);
    assert_int_equal(srv_scopes_parse(" ingest , admin ", &sc, err), ZK_OK);
    assert_int_equal(sc, SRV_SCOPE_INGEST | SRV_SCOPE_ADMIN);
    srv_scopes_format(SRV_SCOPE_ASK | SRV_SCOPE_ADMIN | SRV_SCOPE_SEARCH, buf, sizeof buf);
    assert_string_equal(buf, "search,ask,admin");
    assert_int_equal(srv_scopes_parse("search,bogus", &sc, err), ZK_INVALID);
    assert_non_null(strstr(err, "bogus"));
    assert_int_equal(srv_scopes_parse("", &sc, err), ZK_INVALID);
    assert_int_equal(srv_scopes_parse("search,,ask", &sc, err), ZK_INVALID);
    assert_int_equal(srv_scopes_parse("Search", &sc, err), ZK_INVALID);
    srv_scopes_format(SRV_SCOPE_SEARCH | SRV_SCOPE_ASK, buf, 8);   /* truncation stays terminated */
    assert_true(strlen(buf) < 8);
}

/* ---- tokens ------------------------------------------------------------------ */

static void test_token_lifecycle(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], *tok = NULL, *tok2 = NULL;
    int64_t uid = add_user(f, "alice"), tid, tid2, got_uid;
    unsigned sc;

    assert_int_equal(srv_token_create(f->s, "bob", SRV_SCOPE_SEARCH, 0, &tok, &tid, err), ZK_NOTFOUND);
    assert_null(tok);
    assert_int_equal(srv_token_create(f->s, "alice", 0, 0, &tok, &tid, err), ZK_INVALID);
    assert_int_equal(srv_token_create(f->s, "alice", SRV_SCOPE_SEARCH, 100000, &tok, &tid, err), ZK_INVALID);

    assert_int_equal(srv_token_create(f->s, "alice", SRV_SCOPE_SEARCH | SRV_SCOPE_ASK, 0, &tok, &tid, err), ZK_OK);
    assert_int_equal(strlen(tok), 46);
    assert_true(!strncmp(tok, "zk_", 3));
    assert_int_equal(strspn(tok + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);

    assert_int_equal(srv_token_verify(f->s, tok, &got_uid, &sc, err), ZK_OK);
    assert_int_equal(got_uid, uid);
    assert_int_equal(sc, SRV_SCOPE_SEARCH | SRV_SCOPE_ASK);
    assert_true(query_int(f, "SELECT last_used_at IS NOT NULL FROM api_tokens") == 1);
    assert_true(query_int(f, "SELECT expires_at IS NULL FROM api_tokens") == 1);

    /* unknown, altered and malformed tokens: one message */
    char bad[64];
    strcpy(bad, tok);
    bad[20] = bad[20] == 'A' ? 'B' : 'A';
    static const char *const others[] = {"", "zk_", "zk_short", "Bearer x", NULL};
    assert_int_equal(srv_token_verify(f->s, bad, &got_uid, &sc, err), ZK_INVALID);
    assert_string_equal(err, "invalid or expired token");
    assert_int_equal(got_uid, 0);
    assert_int_equal(sc, 0);
    for (int i = 0; others[i]; i++) assert_int_equal(srv_token_verify(f->s, others[i], &got_uid, &sc, err), ZK_INVALID);
    assert_int_equal(srv_token_verify(f->s, NULL, &got_uid, &sc, err), ZK_INVALID);

    /* admin implies every scope; expiry */
    assert_int_equal(srv_token_create(f->s, "alice", SRV_SCOPE_ADMIN, 30, &tok2, &tid2, err), ZK_OK);
    assert_int_not_equal(tid, tid2);
    assert_string_not_equal(tok, tok2);
    assert_int_equal(srv_token_verify(f->s, tok2, &got_uid, &sc, err), ZK_OK);
    assert_int_equal(sc, SRV_SCOPE_SEARCH | SRV_SCOPE_ASK | SRV_SCOPE_INGEST | SRV_SCOPE_ADMIN);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT expires_at - created_at FROM api_tokens WHERE id = %lld", (long long)tid2);
    assert_true(query_int(f, sql) >= 30 * 86400 - 2 && query_int(f, sql) <= 30 * 86400 + 2);
    snprintf(sql, sizeof sql, "UPDATE api_tokens SET expires_at = unixepoch() - 1 WHERE id = %lld", (long long)tid2);
    exec_sql(f, sql);
    assert_int_equal(srv_token_verify(f->s, tok2, &got_uid, &sc, err), ZK_INVALID);
    assert_string_equal(err, "invalid or expired token");

    /* revocation takes effect on the very next call */
    assert_int_equal(srv_token_verify(f->s, tok, &got_uid, &sc, err), ZK_OK);
    assert_int_equal(srv_token_revoke(f->s, tid, err), ZK_OK);
    assert_int_equal(srv_token_verify(f->s, tok, &got_uid, &sc, err), ZK_INVALID);
    assert_string_equal(err, "invalid or expired token");
    assert_int_equal(srv_token_revoke(f->s, tid, err), ZK_OK);   /* idempotent */
    assert_int_equal(srv_token_revoke(f->s, 999999, err), ZK_NOTFOUND);

    zk_free(tok);
    zk_free(tok2);
}

static void test_token_deleted_user(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], *tok = NULL;
    int64_t uid = add_user(f, "carol"), tid, got;
    unsigned sc;
    assert_int_equal(srv_token_create(f->s, "carol", SRV_SCOPE_INGEST, 0, &tok, &tid, err), ZK_OK);
    assert_int_equal(srv_token_verify(f->s, tok, &got, &sc, err), ZK_OK);
    assert_int_equal(got, uid);
    char sql[96];
    snprintf(sql, sizeof sql, "DELETE FROM principals WHERE id = %lld", (long long)uid);
    exec_sql(f, sql);
    assert_int_equal(query_int(f, "SELECT count(*) FROM api_tokens"), 0);   /* cascaded */
    assert_int_equal(srv_token_verify(f->s, tok, &got, &sc, err), ZK_INVALID);
    assert_string_equal(err, "invalid or expired token");
    /* a group of the same name cannot hold tokens */
    exec_sql(f, "INSERT INTO principals(kind, name) VALUES ('group', 'carol')");
    zk_free(tok);
    tok = NULL;
    assert_int_equal(srv_token_create(f->s, "carol", SRV_SCOPE_SEARCH, 0, &tok, &tid, err), ZK_NOTFOUND);
    assert_null(tok);
}

static int contains(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(hay + i, needle, k)) return 1;
    return 0;
}

static void scan_file(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return;   /* e.g. no -wal file */
    char *buf = malloc(1 << 22);
    size_t n = fread(buf, 1, 1 << 22, fp);
    fclose(fp);
    assert_false(contains(buf, n, needle));
    free(buf);
}

static void test_token_never_stored(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], *tok = NULL, hex[65], path[128];
    int64_t tid;
    add_user(f, "dave");
    assert_int_equal(srv_token_create(f->s, "dave", SRV_SCOPE_SEARCH, 7, &tok, &tid, err), ZK_OK);
    zk_sha256_hex(tok, strlen(tok), hex);

    /* every column of the row, as text */
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(ret_store_db(f->s), "SELECT * FROM api_tokens", -1, &st, NULL), SQLITE_OK);
    int rows = 0, saw_hash = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        rows++;
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            const char *v = (const char *)sqlite3_column_text(st, i);
            if (!v) continue;
            assert_null(strstr(v, tok + 3));        /* not even without the zk_ */
            assert_null(strstr(v, tok + 3 + 8));    /* nor the part after the prefix */
            if (!strcmp(v, hex)) saw_hash = 1;
        }
    }
    sqlite3_finalize(st);
    assert_int_equal(rows, 1);
    assert_true(saw_hash);
    /* nor anywhere in the database files */
    snprintf(path, sizeof path, "%s/zhiku.db", f->dir);
    scan_file(path, tok + 3 + 8);
    snprintf(path, sizeof path, "%s/zhiku.db-wal", f->dir);
    scan_file(path, tok + 3 + 8);

    /* listings: prefix yes, token and hash no */
    char *out = NULL;
    size_t len = 0;
    for (int json = 0; json <= 1; json++) {
        FILE *mf = open_memstream(&out, &len);
        assert_int_equal(srv_token_list(f->s, mf, json, err), ZK_OK);
        fclose(mf);
        assert_non_null(strstr(out, "dave"));
        char prefix[9];
        memcpy(prefix, tok + 3, 8);
        prefix[8] = '\0';
        assert_non_null(strstr(out, prefix));
        assert_null(strstr(out, tok + 3 + 8));
        assert_null(strstr(out, hex));
        assert_non_null(strstr(out, json ? "\"scopes\":\"search\"" : "search"));
        free(out);
        out = NULL;
    }
    zk_free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_roundtrip),
        cmocka_unit_test(test_password_malformed),
        cmocka_unit_test(test_scopes),
        cmocka_unit_test_setup_teardown(test_token_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_deleted_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_never_stored, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
