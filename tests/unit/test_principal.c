/* test_principal.c — users, groups, memberships and knowledge bases
 * (retrieval/principal.c): name rules, duplicates, the built-in `everyone`
 * group, nested groups with a cycle, principal-set contents, acl_version
 * bumps, kb create/rm (rm deletes documents) and password checks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "retrieval/principal.h"

typedef struct {
    char dir[64];
    ret_store *s;
    char err[ZK_ERRLEN];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    strcpy(f->dir, "/tmp/zk-principal-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    if (ret_store_open(f->dir, 0, &f->s, f->err) != ZK_OK) return -1;
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

static int64_t count(fixture *f, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(ret_store_db(f->s), sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int64_t id_of(fixture *f, const char *spec)
{
    int64_t id = 0;
    assert_int_equal(ret_principal_parse(f->s, spec, &id, f->err), ZK_OK);
    return id;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The principal set of `user` must be exactly `specs` (any order given). */
static void expect_set(fixture *f, const char *user, const char *const *specs, size_t n, int admin)
{
    int64_t want[16], *got = NULL;
    size_t ngot = 0;
    int is_admin = -1;
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) want[i] = id_of(f, specs[i]);
    qsort(want, n, sizeof *want, cmp_i64);
    assert_int_equal(ret_principal_set(f->s, id_of(f, user), &got, &ngot, &is_admin, f->err), ZK_OK);
    assert_int_equal(ngot, n);
    for (size_t i = 0; i < n; i++) assert_int_equal(got[i], want[i]);
    assert_int_equal(is_admin, admin);
    zk_free(got);
}

static void test_names(void **state)
{
    fixture *f = *state;
    char long_ok[65], long_bad[66];
    memset(long_ok, 'a', 64), long_ok[64] = '\0';
    memset(long_bad, 'b', 65), long_bad[65] = '\0';
    static const char *const good[] = {"alice", "bob.smith", "c_d-e", "x@example.com", "张三", "Zoë", "ユーザー1"};
    static const char *const bad[] = {"", "a b", "a:b", "a,b", "tab\there", "张三，", "a/b", "semi;colon",
                                      "\xff\xfe", "a\xe3\x80\x80" "b" /* ideographic space */};
    for (size_t i = 0; i < ZK_ARRAY_LEN(good); i++)
        assert_int_equal(ret_user_add(f->s, good[i], NULL, 0, NULL, f->err), ZK_OK);
    for (size_t i = 0; i < ZK_ARRAY_LEN(bad); i++) {
        assert_int_equal(ret_user_add(f->s, bad[i], NULL, 0, NULL, f->err), ZK_INVALID);
        assert_int_equal(ret_group_add(f->s, bad[i], f->err), ZK_INVALID);
        assert_int_equal(ret_kb_create(f->s, bad[i], NULL, f->err), ZK_INVALID);
    }
    assert_int_equal(ret_user_add(f->s, long_ok, NULL, 0, NULL, f->err), ZK_OK);
    assert_int_equal(ret_user_add(f->s, long_bad, NULL, 0, NULL, f->err), ZK_INVALID);
    /* 64 Chinese characters are fine (the limit counts characters, not bytes) */
    char han[64 * 3 + 1];
    for (int i = 0; i < 64; i++) memcpy(han + i * 3, "\xe7\x9f\xa5", 3);   /* 知 */
    han[64 * 3] = '\0';
    assert_int_equal(ret_group_add(f->s, han, f->err), ZK_OK);
    assert_int_equal(count(f, "SELECT count(*) FROM principals WHERE kind = 'user'"),
                     (int64_t)ZK_ARRAY_LEN(good) + 1);
}

static void test_users_add_rm(void **state)
{
    fixture *f = *state;
    int64_t id = 0, id2 = 0;
    assert_int_equal(ret_user_add(f->s, "alice", NULL, 0, &id, f->err), ZK_OK);
    assert_true(id > 0);
    assert_int_equal(ret_user_add(f->s, "alice", NULL, 1, NULL, f->err), ZK_EXISTS);
    assert_non_null(strstr(f->err, "alice"));
    /* users and groups have separate namespaces */
    assert_int_equal(ret_group_add(f->s, "alice", f->err), ZK_OK);
    assert_int_equal(ret_principal_find(f->s, RET_PRINCIPAL_USER, "alice", &id2, f->err), ZK_OK);
    assert_int_equal(id2, id);
    assert_int_equal(ret_principal_find(f->s, RET_PRINCIPAL_GROUP, "alice", &id2, f->err), ZK_OK);
    assert_true(id2 != id);
    assert_int_equal(ret_group_member_add(f->s, "alice", "user:alice", f->err), ZK_OK);
    assert_int_equal(count(f, "SELECT count(*) FROM memberships"), 1);

    assert_int_equal(ret_user_rm(f->s, "alice", f->err), ZK_OK);
    assert_int_equal(ret_principal_find(f->s, RET_PRINCIPAL_USER, "alice", &id2, f->err), ZK_NOTFOUND);
    assert_int_equal(count(f, "SELECT count(*) FROM memberships"), 0);   /* cascaded */
    assert_int_equal(ret_user_rm(f->s, "alice", f->err), ZK_NOTFOUND);
    assert_int_equal(ret_group_rm(f->s, "alice", f->err), ZK_OK);
    assert_int_equal(ret_group_rm(f->s, "alice", f->err), ZK_NOTFOUND);
}

static void test_parse(void **state)
{
    fixture *f = *state;
    int64_t id;
    assert_int_equal(ret_user_add(f->s, "alice", NULL, 0, NULL, f->err), ZK_OK);
    assert_int_equal(ret_group_add(f->s, "hr", f->err), ZK_OK);
    assert_int_equal(ret_principal_parse(f->s, "user:alice", &id, f->err), ZK_OK);
    assert_int_equal(ret_principal_parse(f->s, "group:hr", &id, f->err), ZK_OK);
    int64_t ev1, ev2;
    assert_int_equal(ret_principal_parse(f->s, "everyone", &ev1, f->err), ZK_OK);
    assert_int_equal(ret_principal_parse(f->s, "group:everyone", &ev2, f->err), ZK_OK);
    assert_int_equal(ev1, ev2);
    assert_int_equal(ret_principal_parse(f->s, "alice", &id, f->err), ZK_INVALID);
    assert_int_equal(ret_principal_parse(f->s, "user:", &id, f->err), ZK_INVALID);
    assert_int_equal(ret_principal_parse(f->s, "role:x", &id, f->err), ZK_INVALID);
    assert_int_equal(ret_principal_parse(f->s, "user:a,b", &id, f->err), ZK_INVALID);
    assert_int_equal(ret_principal_parse(f->s, "user:nobody", &id, f->err), ZK_NOTFOUND);
    assert_int_equal(ret_principal_parse(f->s, "group:alice", &id, f->err), ZK_NOTFOUND);
}

static void test_everyone_rules(void **state)
{
    fixture *f = *state;
    assert_int_equal(ret_user_add(f->s, "alice", NULL, 0, NULL, f->err), ZK_OK);
    assert_int_equal(ret_group_add(f->s, "hr", f->err), ZK_OK);
    int64_t v = ret_acl_version(f->s);
    assert_int_equal(ret_group_rm(f->s, "everyone", f->err), ZK_INVALID);
    assert_non_null(strstr(f->err, "everyone"));
    assert_int_equal(ret_group_add(f->s, "everyone", f->err), ZK_EXISTS);
    assert_int_equal(ret_group_member_add(f->s, "everyone", "user:alice", f->err), ZK_INVALID);
    assert_non_null(strstr(f->err, "implicit"));
    assert_int_equal(ret_group_member_rm(f->s, "everyone", "user:alice", f->err), ZK_INVALID);
    assert_int_equal(ret_group_member_add(f->s, "hr", "everyone", f->err), ZK_INVALID);
    assert_int_equal(ret_group_member_add(f->s, "hr", "group:everyone", f->err), ZK_INVALID);
    assert_int_equal(ret_group_member_add(f->s, "hr", "group:hr", f->err), ZK_INVALID);
    assert_int_equal(count(f, "SELECT count(*) FROM memberships"), 0);
    assert_int_equal(ret_acl_version(f->s), v);   /* refused changes do not bump */
    /* a user in no group still has itself and everyone */
    static const char *const set[] = {"user:alice", "everyone"};
    expect_set(f, "user:alice", set, 2, 0);
}

static void test_nested_and_cycle(void **state)
{
    fixture *f = *state;
    int64_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(ret_user_add(f->s, "alice", NULL, 0, NULL, f->err), ZK_OK);
    assert_int_equal(ret_user_add(f->s, "bob", NULL, 1, NULL, f->err), ZK_OK);
    assert_int_equal(ret_user_add(f->s, "carol", NULL, 0, NULL, f->err), ZK_OK);
    static const char *const groups[] = {"a", "b", "c", "other"};
    for (size_t i = 0; i < ZK_ARRAY_LEN(groups); i++) assert_int_equal(ret_group_add(f->s, groups[i], f->err), ZK_OK);
    /* alice ∈ a ⊂ b ⊂ c ⊂ a (cycle); bob ∈ c; carol ∈ other only */
    assert_int_equal(ret_group_member_add(f->s, "a", "user:alice", f->err), ZK_OK);
    assert_int_equal(ret_group_member_add(f->s, "b", "group:a", f->err), ZK_OK);
    assert_int_equal(ret_group_member_add(f->s, "c", "group:b", f->err), ZK_OK);
    assert_int_equal(ret_group_member_add(f->s, "a", "group:c", f->err), ZK_OK);
    assert_int_equal(ret_group_member_add(f->s, "c", "user:bob", f->err), ZK_OK);
    assert_int_equal(ret_group_member_add(f->s, "other", "user:carol", f->err), ZK_OK);
    assert_int_equal(ret_group_member_add(f->s, "a", "user:nobody", f->err), ZK_NOTFOUND);
    assert_int_equal(ret_group_member_add(f->s, "nogroup", "user:alice", f->err), ZK_NOTFOUND);

    static const char *const sa[] = {"user:alice", "group:a", "group:b", "group:c", "everyone"};
    expect_set(f, "user:alice", sa, ZK_ARRAY_LEN(sa), 0);
    static const char *const sb[] = {"user:bob", "group:a", "group:b", "group:c", "everyone"};
    expect_set(f, "user:bob", sb, ZK_ARRAY_LEN(sb), 1);
    static const char *const sc[] = {"user:carol", "group:other", "everyone"};
    expect_set(f, "user:carol", sc, ZK_ARRAY_LEN(sc), 0);

    /* sorted ascending, no duplicates */
    assert_int_equal(ret_principal_set(f->s, id_of(f, "user:alice"), &ids, &n, NULL, f->err), ZK_OK);
    for (size_t i = 1; i < n; i++) assert_true(ids[i - 1] < ids[i]);
    zk_free(ids);

    /* break the chain: alice keeps a only... then removing a removes the rest */
    assert_int_equal(ret_group_member_rm(f->s, "b", "group:a", f->err), ZK_OK);
    assert_int_equal(ret_group_member_rm(f->s, "b", "group:a", f->err), ZK_NOTFOUND);
    static const char *const sa2[] = {"user:alice", "group:a", "everyone"};
    expect_set(f, "user:alice", sa2, ZK_ARRAY_LEN(sa2), 0);
    assert_int_equal(ret_group_rm(f->s, "a", f->err), ZK_OK);
    static const char *const sa3[] = {"user:alice", "everyone"};
    expect_set(f, "user:alice", sa3, ZK_ARRAY_LEN(sa3), 0);

    /* not a user: groups and unknown ids have no principal set */
    assert_int_equal(ret_principal_set(f->s, id_of(f, "group:b"), &ids, &n, NULL, f->err), ZK_NOTFOUND);
    assert_int_equal(ret_principal_set(f->s, 999999, &ids, &n, NULL, f->err), ZK_NOTFOUND);
    assert_null(ids);
}

static void test_acl_version(void **state)
{
    fixture *f = *state;
    int64_t v = ret_acl_version(f->s);
    assert_true(v >= 0);
#define BUMPS(expr, want_rc, by)                              \
    do {                                                      \
        assert_int_equal((expr), (want_rc));                  \
        assert_int_equal(ret_acl_version(f->s), v + (by));    \
        v += (by);                                            \
    } while (0)
    BUMPS(ret_user_add(f->s, "alice", NULL, 0, NULL, f->err), ZK_OK, 1);
    BUMPS(ret_user_add(f->s, "alice", NULL, 0, NULL, f->err), ZK_EXISTS, 0);
    BUMPS(ret_group_add(f->s, "g", f->err), ZK_OK, 1);
    BUMPS(ret_group_add(f->s, "g", f->err), ZK_EXISTS, 0);
    BUMPS(ret_group_member_add(f->s, "g", "user:alice", f->err), ZK_OK, 1);
    BUMPS(ret_group_member_add(f->s, "g", "user:alice", f->err), ZK_OK, 0);   /* already a member */
    BUMPS(ret_group_member_rm(f->s, "g", "user:alice", f->err), ZK_OK, 1);
    BUMPS(ret_group_member_rm(f->s, "g", "user:alice", f->err), ZK_NOTFOUND, 0);
    BUMPS(ret_kb_create(f->s, "kb2", NULL, f->err), ZK_OK, 1);
    BUMPS(ret_kb_create(f->s, "kb2", NULL, f->err), ZK_EXISTS, 0);
    BUMPS(ret_kb_rm(f->s, "kb2", f->err), ZK_OK, 1);
    BUMPS(ret_kb_rm(f->s, "kb2", f->err), ZK_NOTFOUND, 0);
    BUMPS(ret_group_rm(f->s, "g", f->err), ZK_OK, 1);
    BUMPS(ret_user_rm(f->s, "alice", f->err), ZK_OK, 1);
    BUMPS(ret_acl_bump(f->s, f->err), ZK_OK, 1);
    /* inside a caller's transaction the change and the bump roll back together */
    assert_int_equal(ret_store_begin(f->s, f->err), ZK_OK);
    assert_int_equal(ret_group_add(f->s, "temp", f->err), ZK_OK);
    assert_int_equal(ret_acl_version(f->s), v + 1);
    ret_store_rollback(f->s);
    assert_int_equal(ret_acl_version(f->s), v);
    int64_t id;
    assert_int_equal(ret_principal_find(f->s, RET_PRINCIPAL_GROUP, "temp", &id, f->err), ZK_NOTFOUND);
#undef BUMPS
}

static void put_doc(fixture *f, int64_t kb, const char *ext_id)
{
    static const float vecs[2 * 4] = {1, 0, 0, 0, 0, 1, 0, 0};
    ret_chunk_in c[2] = {{"第一段 first chunk", strlen("第一段 first chunk"), NULL, 0, 0, 0, 10},
                         {"second chunk text", strlen("second chunk text"), NULL, 0, 1, 10, 27}};
    ret_doc_in d = {.ext_id = ext_id, .title = ext_id, .sha256 = "00", .format = "txt"};
    ret_put_status st;
    assert_int_equal(ret_kb_check_model(f->s, kb, "test-model", 4, f->err), ZK_OK);
    assert_int_equal(ret_doc_put(f->s, kb, &d, c, 2, vecs, 4, &st, NULL, f->err), ZK_OK);
}

/* Document "doc<i>", one chunk, readable by principal g (grants replaced). */
static void put_granted(fixture *f, int i, int64_t g)
{
    static const float vecs[4] = {1, 0, 0, 0};
    static const char text[] = "签名 text of one chunk";
    char id[16];
    snprintf(id, sizeof id, "doc%d", i);
    ret_chunk_in c = {text, strlen(text), NULL, 0, 0, 0, 1};
    ret_doc_in d = {.ext_id = id, .title = id, .sha256 = id, .format = "txt", .acl = &g, .nacl = 1, .acl_replace = 1};
    assert_int_equal(ret_doc_put(f->s, 1, &d, &c, 1, vecs, 4, NULL, NULL, f->err), ZK_OK);
}

/* A batch of documents with grants bumps acl_version once, at its commit:
 * bumped per document, the UPDATE's statement savepoint made FTS5 write
 * its pending index out as a segment per document. */
static void test_batch_bumps_once(void **state)
{
    fixture *f = *state;
    assert_int_equal(ret_group_add(f->s, "readers", f->err), ZK_OK);
    int64_t g = id_of(f, "group:readers"), v = ret_acl_version(f->s);
    assert_int_equal(ret_kb_check_model(f->s, 1, "test-model", 4, f->err), ZK_OK);
    assert_int_equal(ret_store_begin(f->s, f->err), ZK_OK);
    for (int i = 0; i < 5; i++) put_granted(f, i, g);
    assert_int_equal(ret_acl_version(f->s), v);
    assert_int_equal(ret_store_commit(f->s, f->err), ZK_OK);
    assert_int_equal(ret_acl_version(f->s), v + 1);
    int segs = 0;
    assert_int_equal(ret_store_fts_segments(f->s, &segs, f->err), ZK_OK);
    assert_int_equal(segs, 1);   /* written once, at the commit */
    assert_int_equal(count(f, "SELECT count(*) FROM doc_acl"), 5);

    /* a rolled-back batch bumps nothing, and leaves nothing for the next one */
    assert_int_equal(ret_store_begin(f->s, f->err), ZK_OK);
    put_granted(f, 1, g);
    ret_store_rollback(f->s);
    assert_int_equal(ret_store_begin(f->s, f->err), ZK_OK);
    assert_int_equal(ret_store_commit(f->s, f->err), ZK_OK);
    assert_int_equal(ret_acl_version(f->s), v + 1);

    /* outside a batch a document's grants bump at once */
    put_granted(f, 7, g);
    assert_int_equal(ret_acl_version(f->s), v + 2);
}

static void test_kb_create_rm(void **state)
{
    fixture *f = *state;
    int64_t kb = 0, kb2 = 0, def = 0, got = 0;
    assert_int_equal(ret_kb_id(f->s, NULL, &def, f->err), ZK_OK);
    assert_int_equal(ret_kb_create(f->s, "研发", &kb, f->err), ZK_OK);
    assert_true(kb > def);
    assert_int_equal(ret_kb_id(f->s, "研发", &got, f->err), ZK_OK);
    assert_int_equal(got, kb);
    assert_int_equal(ret_kb_create(f->s, "研发", NULL, f->err), ZK_EXISTS);
    assert_int_equal(ret_kb_create(f->s, "default", NULL, f->err), ZK_EXISTS);

    put_doc(f, kb, "a.txt");
    put_doc(f, kb, "b.txt");
    put_doc(f, def, "keep.txt");
    ret_vindex *vi;
    assert_int_equal(ret_store_vindex(f->s, kb, &vi, f->err), ZK_OK);   /* index open while removing */
    assert_int_equal(count(f, "SELECT count(*) FROM documents"), 3);
    assert_int_equal(count(f, "SELECT count(*) FROM chunks"), 6);

    assert_int_equal(ret_kb_rm(f->s, "研发", f->err), ZK_OK);
    assert_int_equal(ret_kb_id(f->s, "研发", &got, f->err), ZK_NOTFOUND);
    assert_int_equal(count(f, "SELECT count(*) FROM documents"), 1);
    assert_int_equal(count(f, "SELECT count(*) FROM chunks"), 2);
    assert_int_equal(count(f, "SELECT count(*) FROM vectors"), 2);
    assert_int_equal(count(f, "SELECT count(*) FROM chunks_fts"), 2);
    assert_int_equal(count(f, "SELECT count(*) FROM doc_acl d LEFT JOIN documents x ON x.id = d.doc_id "
                              "WHERE x.id IS NULL"), 0);
    int problems = -1;
    FILE *devnull = fopen("/dev/null", "w");
    assert_non_null(devnull);
    assert_int_equal(ret_store_check(f->s, devnull, &problems, f->err), ZK_OK);
    fclose(devnull);
    assert_int_equal(problems, 0);

    /* a new kb never takes the removed one's id (its change log remains) */
    assert_int_equal(ret_kb_create(f->s, "next", &kb2, f->err), ZK_OK);
    assert_true(kb2 > kb);
    assert_int_equal(ret_kb_rm(f->s, "default", f->err), ZK_INVALID);
    assert_int_equal(ret_kb_rm(f->s, "nope", f->err), ZK_NOTFOUND);
    assert_int_equal(ret_kb_rm(f->s, "next", f->err), ZK_OK);   /* empty kb */
}

static void test_passwords(void **state)
{
    fixture *f = *state;
    int64_t id = 0, got = 0;
    char err_wrong[ZK_ERRLEN], err_unknown[ZK_ERRLEN];
    assert_int_equal(ret_user_add(f->s, "alice", "correct horse", 0, &id, f->err), ZK_OK);
    assert_int_equal(ret_user_add(f->s, "tok", NULL, 0, NULL, f->err), ZK_OK);
    assert_int_equal(ret_user_add(f->s, "empty", "", 0, NULL, f->err), ZK_INVALID);
    assert_int_equal(count(f, "SELECT count(*) FROM principals WHERE name = 'alice' "
                              "AND password_hash LIKE 'scrypt$%' AND instr(password_hash, 'horse') = 0"), 1);

    assert_int_equal(ret_user_check_password(f->s, "alice", "correct horse", &got, f->err), ZK_OK);
    assert_int_equal(got, id);
    got = -7;
    assert_int_equal(ret_user_check_password(f->s, "alice", "wrong", &got, err_wrong), ZK_INVALID);
    assert_int_equal(got, -7);
    assert_int_equal(ret_user_check_password(f->s, "nobody", "correct horse", &got, err_unknown), ZK_INVALID);
    assert_string_equal(err_wrong, err_unknown);   /* no hint which part was wrong */
    assert_int_equal(ret_user_check_password(f->s, "tok", "", &got, f->err), ZK_INVALID);
    assert_string_equal(f->err, err_unknown);

    assert_int_equal(ret_user_set_password(f->s, "alice", "new pass 新密码", f->err), ZK_OK);
    assert_int_equal(ret_user_check_password(f->s, "alice", "correct horse", &got, f->err), ZK_INVALID);
    assert_int_equal(ret_user_check_password(f->s, "alice", "new pass 新密码", &got, f->err), ZK_OK);
    assert_int_equal(ret_user_set_password(f->s, "nobody", "x", f->err), ZK_NOTFOUND);
    assert_int_equal(ret_user_set_password(f->s, "alice", "", f->err), ZK_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users_add_rm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_everyone_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested_and_cycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acl_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_bumps_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kb_create_rm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passwords, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
