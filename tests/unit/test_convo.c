/* test_convo.c — conversations (retrieval/convo.c): ownership (a user sees
 * and touches only their own conversations; the local administrator only
 * the NULL-owned ones; others' rows answer NOT FOUND), titles from the first
 * question, history order, feedback upsert and limits, the review export
 * (JSON and JSONL, since/limit, newest first) and the cascade on user removal. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "retrieval/convo.h"
#include "retrieval/principal.h"

typedef struct {
    char dir[64];
    ret_store *s;
    int64_t kb, alice, bob;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char err[ZK_ERRLEN];
    strcpy(f->dir, "/tmp/zk-convo-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    if (ret_store_open(f->dir, 0, &f->s, err) != ZK_OK) return -1;
    if (ret_kb_id(f->s, NULL, &f->kb, err) != ZK_OK) return -1;
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
    char *msg = NULL;
    int rc = sqlite3_exec(ret_store_db(f->s), sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) fprintf(stderr, "sql: %s\n", msg);
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
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

static int64_t convo(fixture *f, int64_t user, const char *title)
{
    char err[ZK_ERRLEN];
    int64_t id = 0;
    assert_int_equal(ret_convo_create(f->s, user, f->kb, title, &id, err), ZK_OK);
    assert_true(id > 0);
    return id;
}

static int64_t say(fixture *f, int64_t user, int64_t cid, const char *q, const char *a, int not_found)
{
    char err[ZK_ERRLEN];
    int64_t mid = 0;
    ret_message_in m = {.question = q, .answer = a, .citations = "[]", .provider = "extractive",
                        .not_found = not_found};
    assert_int_equal(ret_convo_append(f->s, user, cid, &m, &mid, err), ZK_OK);
    assert_true(mid > 0);
    return mid;
}

static void test_list_only_own(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    ret_convo *list = NULL;
    size_t n = 0;
    int64_t a1 = convo(f, f->alice, "a1"), a2 = convo(f, f->alice, "a2");
    int64_t b1 = convo(f, f->bob, "b1"), adm = convo(f, 0, "admin's");
    exec_sql(f, "UPDATE conversations SET updated_at = 100 + id");

    assert_int_equal(ret_convo_list(f->s, f->alice, 0, &list, &n, err), ZK_OK);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, a2);   /* most recently updated first */
    assert_int_equal(list[1].id, a1);
    assert_string_equal(list[0].title, "a2");
    assert_int_equal(list[0].kb_id, f->kb);
    ret_convo_list_free(list, n);

    assert_int_equal(ret_convo_list(f->s, f->bob, 0, &list, &n, err), ZK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].id, b1);
    ret_convo_list_free(list, n);

    assert_int_equal(ret_convo_list(f->s, 0, 0, &list, &n, err), ZK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].id, adm);
    ret_convo_list_free(list, n);

    assert_int_equal(ret_convo_list(f->s, f->alice, 1, &list, &n, err), ZK_OK);
    assert_int_equal(n, 1);
    ret_convo_list_free(list, n);

    /* a user with none */
    int64_t carol;
    assert_int_equal(ret_user_add(f->s, "carol", NULL, 0, &carol, err), ZK_OK);
    assert_int_equal(ret_convo_list(f->s, carol, 0, &list, &n, err), ZK_OK);
    assert_int_equal(n, 0);
    assert_null(list);
    ret_convo_list_free(NULL, 0);
}

static void test_get_and_append(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    ret_convo *c = NULL;
    int64_t cid = convo(f, f->alice, NULL);
    exec_sql(f, "UPDATE conversations SET updated_at = 5");
    int64_t m1 = say(f, f->alice, cid, "  What is the leave policy?\nsecond line", "Ten days [1].", 0);
    int64_t m2 = say(f, f->alice, cid, "And for contractors?", "", 1);
    assert_true(query_int(f, "SELECT updated_at FROM conversations") > 5);

    assert_int_equal(ret_convo_get(f->s, f->alice, cid, &c, err), ZK_OK);
    assert_string_equal(c->title, "What is the leave policy?");   /* first line of the first question */
    assert_int_equal(c->nmessages, 2);
    assert_int_equal(c->messages[0].id, m1);
    assert_int_equal(c->messages[1].id, m2);
    assert_string_equal(c->messages[0].answer, "Ten days [1].");
    assert_string_equal(c->messages[0].citations, "[]");
    assert_string_equal(c->messages[0].provider, "extractive");
    assert_null(c->messages[0].standalone);
    assert_int_equal(c->messages[0].not_found, 0);
    assert_int_equal(c->messages[1].not_found, 1);
    ret_convo_free(c);
    c = NULL;

    /* no trace of another user's conversation */
    assert_int_equal(ret_convo_get(f->s, f->bob, cid, &c, err), ZK_NOTFOUND);
    assert_null(c);
    assert_int_equal(ret_convo_get(f->s, 0, cid, &c, err), ZK_NOTFOUND);
    assert_int_equal(ret_convo_get(f->s, f->alice, cid + 1000, &c, err), ZK_NOTFOUND);
    char e1[ZK_ERRLEN], e2[ZK_ERRLEN];
    ret_convo_get(f->s, f->bob, cid, &c, e1);
    ret_convo_get(f->s, f->bob, cid + 1000, &c, e2);
    assert_non_null(strstr(e1, "no conversation"));
    assert_non_null(strstr(e2, "no conversation"));

    ret_message_in m = {.question = "sneaky"};
    int64_t mid = 7;
    assert_int_equal(ret_convo_append(f->s, f->bob, cid, &m, &mid, err), ZK_NOTFOUND);
    assert_int_equal(mid, 0);
    assert_int_equal(ret_convo_append(f->s, 0, cid, &m, NULL, err), ZK_NOTFOUND);
    assert_int_equal(query_int(f, "SELECT count(*) FROM messages"), 2);
    ret_message_in none = {0};
    assert_int_equal(ret_convo_append(f->s, f->alice, cid, &none, NULL, err), ZK_INVALID);

    /* an existing title is kept */
    int64_t c2 = convo(f, f->bob, "Bob's title");
    say(f, f->bob, c2, "question", "answer", 0);
    assert_int_equal(ret_convo_get(f->s, f->bob, c2, &c, err), ZK_OK);
    assert_string_equal(c->title, "Bob's title");
    ret_convo_free(c);
    ret_convo_free(NULL);

    /* missing kb */
    int64_t id;
    assert_int_equal(ret_convo_create(f->s, f->alice, 999, "x", &id, err), ZK_NOTFOUND);
}

static void test_long_title_utf8(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], q[400] = "ab";
    ret_convo *c = NULL;
    for (int i = 0; i < 100; i++) strcat(q, "假");   /* 3 bytes each: byte 120 falls inside one */
    strcat(q, "?");
    int64_t cid = convo(f, 0, "");
    say(f, 0, cid, q, "a", 0);
    assert_int_equal(ret_convo_get(f->s, 0, cid, &c, err), ZK_OK);
    assert_int_equal(strlen(c->title), 2 + 3 * ((RET_CONVO_TITLE_MAX - 2) / 3));   /* whole characters only */
    ret_convo_free(c);

    /* 4-byte characters */
    char q2[600] = "x";
    for (int i = 0; i < 40; i++) strcat(q2, "\xF0\x9F\x98\x80");
    cid = convo(f, 0, "");
    say(f, 0, cid, q2, "a", 0);
    assert_int_equal(ret_convo_get(f->s, 0, cid, &c, err), ZK_OK);
    assert_int_equal(strlen(c->title), 1 + 4 * ((RET_CONVO_TITLE_MAX - 1) / 4));
    ret_convo_free(c);
}

static void test_history(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], q[32], a[32];
    ret_turn *t = NULL;
    size_t n = 0;
    int64_t cid = convo(f, f->alice, "h");
    for (int i = 1; i <= 5; i++) {
        snprintf(q, sizeof q, "q%d", i);
        snprintf(a, sizeof a, "a%d", i);
        say(f, f->alice, cid, q, a, 0);
    }
    assert_int_equal(ret_convo_history(f->s, f->alice, cid, 3, &t, &n, err), ZK_OK);
    assert_int_equal(n, 3);
    assert_string_equal(t[0].question, "q3");   /* oldest of the last three first */
    assert_string_equal(t[1].question, "q4");
    assert_string_equal(t[2].question, "q5");
    assert_string_equal(t[2].answer, "a5");
    ret_turns_free(t, n);

    assert_int_equal(ret_convo_history(f->s, f->alice, cid, 10, &t, &n, err), ZK_OK);
    assert_int_equal(n, 5);
    assert_string_equal(t[0].question, "q1");
    ret_turns_free(t, n);

    assert_int_equal(ret_convo_history(f->s, f->alice, cid, 0, &t, &n, err), ZK_OK);
    assert_int_equal(n, 0);
    assert_int_equal(ret_convo_history(f->s, f->bob, cid, 3, &t, &n, err), ZK_NOTFOUND);
    assert_null(t);
    assert_int_equal(n, 0);
    int64_t empty = convo(f, f->bob, "e");
    assert_int_equal(ret_convo_history(f->s, f->bob, empty, 3, &t, &n, err), ZK_OK);
    assert_int_equal(n, 0);
    assert_null(t);
}

static void test_feedback(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], big[RET_FEEDBACK_MAX_COMMENT + 2];
    int64_t cid = convo(f, f->alice, "f");
    int64_t mid = say(f, f->alice, cid, "q", "a", 0);

    assert_int_equal(ret_feedback(f->s, f->alice, mid, 1, "good", err), ZK_OK);
    assert_int_equal(ret_feedback(f->s, f->alice, mid, -1, "actually wrong", err), ZK_OK);   /* upsert */
    assert_int_equal(query_int(f, "SELECT count(*) FROM feedback"), 1);
    assert_int_equal(query_int(f, "SELECT rating FROM feedback"), -1);

    /* not on someone else's message, and indistinguishable from a missing one */
    assert_int_equal(ret_feedback(f->s, f->bob, mid, 1, NULL, err), ZK_NOTFOUND);
    assert_int_equal(ret_feedback(f->s, 0, mid, 1, NULL, err), ZK_NOTFOUND);
    assert_int_equal(ret_feedback(f->s, f->alice, mid + 100, 1, NULL, err), ZK_NOTFOUND);
    assert_int_equal(query_int(f, "SELECT count(*) FROM feedback"), 1);

    assert_int_equal(ret_feedback(f->s, f->alice, mid, 0, NULL, err), ZK_INVALID);
    assert_int_equal(ret_feedback(f->s, f->alice, mid, 2, NULL, err), ZK_INVALID);
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(ret_feedback(f->s, f->alice, mid, 1, big, err), ZK_TOOBIG);
    big[RET_FEEDBACK_MAX_COMMENT] = '\0';
    assert_int_equal(ret_feedback(f->s, f->alice, mid, 1, big, err), ZK_OK);
    assert_int_equal(query_int(f, "SELECT length(comment) FROM feedback"), RET_FEEDBACK_MAX_COMMENT);

    /* the administrator's (NULL user) feedback is upserted too */
    int64_t acid = convo(f, 0, "admin");
    int64_t amid = say(f, 0, acid, "q", "a", 0);
    assert_int_equal(ret_feedback(f->s, 0, amid, 1, NULL, err), ZK_OK);
    assert_int_equal(ret_feedback(f->s, 0, amid, -1, "", err), ZK_OK);
    assert_int_equal(query_int(f, "SELECT count(*) FROM feedback WHERE user_id IS NULL"), 1);
    assert_int_equal(query_int(f, "SELECT comment IS NULL FROM feedback WHERE user_id IS NULL"), 1);
}

static void test_review_export(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], *txt = NULL;
    size_t len = 0;
    json_error_t je;
    int64_t ca = convo(f, f->alice, "a"), cb = convo(f, 0, "adm");
    int64_t good = say(f, f->alice, ca, "fine question", "fine answer", 0);
    int64_t nf = say(f, f->alice, ca, "unknown thing", "", 1);
    int64_t bad = say(f, 0, cb, "bad answer q", "wrong", 0);
    int64_t old = say(f, f->alice, ca, "old unanswered", "", 1);
    say(f, f->alice, ca, "liked", "ok", 0);
    assert_int_equal(ret_feedback(f->s, f->alice, good, 1, "thanks", err), ZK_OK);
    assert_int_equal(ret_feedback(f->s, 0, bad, -1, "wrong \"quote\"", err), ZK_OK);
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE messages SET created_at = 1000 + id WHERE id <> %lld", (long long)old);
    exec_sql(f, sql);
    snprintf(sql, sizeof sql, "UPDATE messages SET created_at = 10 WHERE id = %lld", (long long)old);
    exec_sql(f, sql);

    assert_int_equal(ret_review_export(f->s, 0, 0, 0, &txt, &len, err), ZK_OK);
    assert_int_equal(len, strlen(txt));
    json_t *arr = json_loads(txt, 0, &je);
    assert_non_null(arr);
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), 3);
    json_t *o0 = json_array_get(arr, 0), *o1 = json_array_get(arr, 1), *o2 = json_array_get(arr, 2);
    assert_int_equal(json_integer_value(json_object_get(o0, "message_id")), bad);   /* newest first */
    assert_int_equal(json_integer_value(json_object_get(o1, "message_id")), nf);
    assert_int_equal(json_integer_value(json_object_get(o2, "message_id")), old);
    assert_string_equal(json_string_value(json_object_get(o0, "user")), "admin");
    assert_int_equal(json_integer_value(json_object_get(o0, "rating")), -1);
    assert_string_equal(json_string_value(json_object_get(o0, "comment")), "wrong \"quote\"");
    assert_true(json_is_false(json_object_get(o0, "not_found")));
    assert_string_equal(json_string_value(json_object_get(o1, "user")), "alice");
    assert_string_equal(json_string_value(json_object_get(o1, "question")), "unknown thing");
    assert_true(json_is_true(json_object_get(o1, "not_found")));
    assert_true(json_is_null(json_object_get(o1, "rating")));
    assert_true(json_is_null(json_object_get(o1, "comment")));
    assert_non_null(json_object_get(o1, "at"));
    assert_non_null(json_object_get(o1, "answer"));
    json_decref(arr);
    zk_free(txt);

    /* JSONL with since and limit */
    assert_int_equal(ret_review_export(f->s, 500, 0, 1, &txt, &len, err), ZK_OK);
    int lines = 0;
    for (char *p = txt; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 2);
    char *nl = strchr(txt, '\n');
    *nl = '\0';
    json_t *first = json_loads(txt, 0, &je);
    assert_non_null(first);
    assert_int_equal(json_integer_value(json_object_get(first, "message_id")), bad);
    json_decref(first);
    zk_free(txt);

    assert_int_equal(ret_review_export(f->s, 0, 1, 1, &txt, NULL, err), ZK_OK);
    lines = 0;
    for (char *p = txt; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 1);
    zk_free(txt);

    /* nothing to review: an empty array / empty text */
    assert_int_equal(ret_review_export(f->s, 1 << 30, 0, 0, &txt, NULL, err), ZK_OK);
    assert_string_equal(txt, "[]");
    zk_free(txt);
    assert_int_equal(ret_review_export(f->s, 1 << 30, 0, 1, &txt, NULL, err), ZK_OK);
    assert_string_equal(txt, "");
    zk_free(txt);
}

static void test_cascade_user_removed(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    int64_t ca = convo(f, f->alice, "a"), cb = convo(f, f->bob, "b");
    int64_t ma = say(f, f->alice, ca, "q", "a", 1);
    say(f, f->bob, cb, "q", "a", 1);
    assert_int_equal(ret_feedback(f->s, f->alice, ma, -1, NULL, err), ZK_OK);
    assert_int_equal(ret_user_rm(f->s, "alice", err), ZK_OK);
    assert_int_equal(query_int(f, "SELECT count(*) FROM conversations"), 1);
    assert_int_equal(query_int(f, "SELECT count(*) FROM messages"), 1);
    assert_int_equal(query_int(f, "SELECT count(*) FROM feedback"), 0);
    ret_convo *c = NULL;
    assert_int_equal(ret_convo_get(f->s, f->bob, cb, &c, err), ZK_OK);
    ret_convo_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_only_own, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_and_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_title_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feedback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_review_export, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cascade_user_removed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
