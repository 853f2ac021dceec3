/* test_rank.c — BM25 at scale and the access map: zk_bm25 scores exactly
 * like FTS5's bm25() when every term matches; the plan matches on the
 * rarest terms under a budget and still finds the rows they select; the
 * access map (docmap.c) follows grants, new documents, deletions and
 * revocations on the very next view. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retrieval/store.h"
#include "retrieval/search.h"
#include "retrieval/acl.h"
#include "retrieval/docmap.h"
#include "retrieval/principal.h"
#include "retrieval/rank.h"

#define DIM 8
#define NDOCS 300

typedef struct {
    char dir[64];
    ret_store *s;
    int64_t doc[NDOCS];
} fixture;

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static int64_t put_doc(ret_store *s, const char *id, const char *text, const int64_t *acl, size_t nacl)
{
    char err[ZK_ERRLEN];
    float vec[DIM] = {1};
    ret_chunk_in c = {text, strlen(text), "", 0, 0, 0, (int64_t)strlen(text)};
    ret_doc_in d = {.ext_id = id, .title = id, .sha256 = id, .format = "txt", .acl = acl, .nacl = nacl};
    ret_put_status st;
    int64_t doc = 0;
    assert_int_equal(ret_kb_check_model(s, 1, "test", DIM, err), ZK_OK);
    zk_rc rc = ret_doc_put(s, 1, &d, &c, 1, vec, DIM, &st, &doc, err);
    if (rc != ZK_OK) fail_msg("put %s: %s", id, err);
    return doc;
}

/* 300 one-chunk documents over a Zipf-ish vocabulary of 60 words, so some
 * words are in most rows and some in few; "rareNN" words in one row each. */
static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char err[ZK_ERRLEN], text[1024], id[32];
    strcpy(f->dir, "/tmp/zk-rank-XXXXXX");
    if (!mkdtemp(f->dir) || ret_store_open(f->dir, 0, &f->s, err) != ZK_OK) return -1;
    for (int i = 0; i < NDOCS; i++) {
        size_t n = 0;
        int words = 5 + (int)rnd(30);
        for (int w = 0; w < words; w++) {
            uint32_t r = rnd(1000);
            n += (size_t)snprintf(text + n, sizeof text - n, "word%u ", (unsigned)(r * r / 16667));
        }
        snprintf(text + n, sizeof text - n, "rare%d", i);
        snprintf(id, sizeof id, "d%d", i);
        int64_t everyone = 0;
        ret_principal_parse(f->s, "everyone", &everyone, err);
        f->doc[i] = put_doc(f->s, id, text, &everyone, 1);
    }
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

typedef struct {
    int64_t id[10];
    double score[10];
    int n;
} top;

static top run(ret_store *s, const char *sql, const char *match, const double *w, int nw)
{
    sqlite3_stmt *st;
    top t = {{0}, {0}, 0};
    assert_int_equal(sqlite3_prepare_v2(ret_store_db(s), sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
    if (w) sqlite3_bind_blob(st, 2, w, (int)(sizeof *w * (size_t)nw), SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW && t.n < 10) {
        t.id[t.n] = sqlite3_column_int64(st, 0);
        t.score[t.n++] = sqlite3_column_double(st, 1);
    }
    sqlite3_finalize(st);
    return t;
}

static int64_t count_rows(fixture *f, const char *match)
{
    sqlite3_stmt *st;
    int64_t n = -1;
    assert_int_equal(sqlite3_prepare_v2(ret_store_db(f->s), "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?",
                                        -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* The BM25 plan of q under budget (caller frees the plan and *w). */
static char *plan_of(fixture *f, const char *q, int budget, double **w, int *nw)
{
    char err[ZK_ERRLEN], *plan = NULL;
    assert_int_equal(ret__bm25_plan(ret_store_db(f->s), ret__store_termstats(f->s), NDOCS, q, 32, budget, &plan, w,
                                    nw, err), ZK_OK);
    return plan;
}

static void test_zk_bm25_equals_fts5_bm25(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], q[128];
    int compared = 0;
    for (int i = 0; i < 40; i++) {
        snprintf(q, sizeof q, "word%u word%u word%u", rnd(60), rnd(60), rnd(60));
        char *plan, *plain;
        double *w;
        int nw;
        plan = plan_of(f, q, 1 << 30, &w, &nw);
        assert_int_equal(ret__fts_query(q, 32, &plain, err), ZK_OK);
        if (*plan) {
            assert_null(strstr(plan, " AND "));       /* within budget: plain OR */
            top a = run(f->s, "SELECT rowid, bm25(chunks_fts, 1.0, 0.5) r FROM chunks_fts WHERE chunks_fts MATCH ?1 "
                              "ORDER BY r, rowid LIMIT 10", plain, NULL, 0);
            top b = run(f->s, "SELECT rowid, zk_bm25(chunks_fts, 0.5, ?2) r FROM chunks_fts WHERE chunks_fts MATCH ?1 "
                              "ORDER BY r, rowid LIMIT 10", plan, w, nw);
            assert_int_equal(a.n, b.n);
            for (int k = 0; k < a.n; k++) {
                assert_true(fabs(a.score[k] - b.score[k]) <= 1e-9 * fabs(a.score[k]) + 1e-12);
                if (a.id[k] != b.id[k]) assert_true(fabs(a.score[k] - b.score[k]) <= 1e-12);
            }
            compared++;
        }
        zk_free(plan);
        zk_free(plain);
        zk_free(w);
    }
    assert_true(compared > 30);
}

static void test_plan_matches_rare_terms(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    char *plan;
    double *w;
    int nw;
    /* a word in more than the budget's rows but fewer than half, rare7 in
     * one row: with a budget of 5 rows only rare7 selects, the word still
     * scores */
    char word[16], q[64], want[160];
    int64_t df = 0;
    int wi = 0;
    for (int i = 1; i < 60 && !wi; i++) {
        snprintf(word, sizeof word, "word%d", i);
        if ((df = count_rows(f, word)) > 5 && df < NDOCS / 2) wi = i;
    }
    assert_true(wi > 0);
    snprintf(word, sizeof word, "word%d", wi);
    snprintf(q, sizeof q, "%s rare7", word);
    plan = plan_of(f, q, 5, &w, &nw);
    snprintf(want, sizeof want, "(\"rare7\") AND (\"rare7\" OR \"%s\")", word);
    assert_string_equal(plan, want);
    assert_int_equal(nw, 3);
    assert_true(w[0] == 0.0 && w[1] == 1.0 && w[2] == (double)df);
    top t = run(f->s, "SELECT rowid, zk_bm25(chunks_fts, 0.5, ?2) r FROM chunks_fts WHERE chunks_fts MATCH ?1 "
                      "ORDER BY r LIMIT 10", plan, w, nw);
    assert_int_equal(t.n, 1);
    assert_true(t.id[0] > 0);
    zk_free(plan);
    zk_free(w);
    /* word0 is in more than half the rows: BM25's floor IDF, so past the
     * budget it is left out (it would score nothing and cost a walk of its
     * list), unless nothing else is left */
    assert_true(count_rows(f, "word0") >= NDOCS / 2);
    plan = plan_of(f, "word0 rare7", 5, &w, &nw);
    assert_string_equal(plan, "\"rare7\"");
    assert_int_equal(nw, 1);
    zk_free(plan);
    zk_free(w);
    plan = plan_of(f, "word0", 5, &w, &nw);
    assert_string_equal(plan, "\"word0\"");
    zk_free(plan);
    zk_free(w);
    /* only common terms: the rarest ones are required together */
    plan = plan_of(f, "word0 word1", 5, &w, &nw);
    assert_non_null(strstr(plan, " AND "));
    zk_free(plan);
    zk_free(w);
    /* terms found nowhere: nothing to run */
    plan = plan_of(f, "zzqq nowhere", 5, &w, &nw);
    assert_string_equal(plan, "");
    zk_free(plan);
    zk_free(w);
    /* search ranks the one row that holds the rare term first */
    ret_caller admin;
    ret_caller_admin(&admin);
    ret_search_opts o;
    zk_config *cfg = NULL;
    assert_int_equal(zk_config_load(NULL, 0, &cfg, err), ZK_OK);
    ret_search_opts_init(&o, cfg);
    o.mode = RET_MODE_BM25;
    o.caller = &admin;
    o.bm25_budget = 5;
    ret_hit *h;
    size_t n;
    assert_int_equal(ret_search(f->s, NULL, "word0 word1 rare42", &o, &h, &n, err), ZK_OK);
    assert_true(n >= 1);
    assert_string_equal(h[0].ext_id, "d42");
    ret_hits_free(h, n);

    /* the row cap: a query of common words ranks only the newest
     * bm25_max_rows matches; without it, every match */
    sqlite3_stmt *st;
    int64_t cut = 0, nmatch = 0;
    assert_int_equal(sqlite3_prepare_v2(ret_store_db(f->s), "SELECT count(*), (SELECT rowid FROM chunks_fts "
                                        "WHERE chunks_fts MATCH 'word0' ORDER BY rowid DESC LIMIT 1 OFFSET 19) "
                                        "FROM chunks_fts WHERE chunks_fts MATCH 'word0'", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    nmatch = sqlite3_column_int64(st, 0);
    cut = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    assert_true(nmatch > 100 && cut > 0);
    o.bm25_budget = 5;   /* word0 is common: its matches exceed the budget */
    o.top_k = o.bm25_k = 50;
    o.bm25_max_rows = 20;
    assert_int_equal(ret_search(f->s, NULL, "word0", &o, &h, &n, err), ZK_OK);
    assert_int_equal(n, 20);
    for (size_t i = 0; i < n; i++) assert_true(h[i].chunk_id >= cut);
    ret_hits_free(h, n);
    o.bm25_max_rows = 0;
    assert_int_equal(ret_search(f->s, NULL, "word0", &o, &h, &n, err), ZK_OK);
    assert_int_equal(n, 50);
    int older = 0;
    for (size_t i = 0; i < n; i++) older |= h[i].chunk_id < cut;
    assert_true(older);
    ret_hits_free(h, n);
    zk_config_free(cfg);
}

static int view_ok(fixture *f, const ret_caller *c, int64_t doc_index)
{
    char err[ZK_ERRLEN];
    ret_view v;
    /* one chunk per document; its id is the document's only chunk */
    sqlite3_stmt *st;
    int64_t chunk = 0;
    sqlite3_prepare_v2(ret_store_db(f->s), "SELECT id FROM chunks WHERE doc_id = ?", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, doc_index);
    if (sqlite3_step(st) == SQLITE_ROW) chunk = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (ret_docmap_view(ret__store_docmap(f->s), ret_store_db(f->s), c, 1, 1, &v, err) != ZK_OK) fail_msg("%s", err);
    int ok = chunk && ret_view_chunk_ok(&v, chunk);
    ret_view_release(&v);
    return ok;
}

static void test_docmap_follows_changes(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    int64_t uid, gid;
    assert_int_equal(ret_user_add(f->s, "ann", NULL, 0, &uid, err), ZK_OK);
    assert_int_equal(ret_group_add(f->s, "team", err), ZK_OK);
    assert_int_equal(ret_principal_parse(f->s, "group:team", &gid, err), ZK_OK);
    int64_t a = put_doc(f->s, "only-ann", "secret plans", &uid, 1);
    int64_t b = put_doc(f->s, "team-doc", "team plans", &gid, 1);
    ret_caller ann, admin;
    ret_caller_admin(&admin);
    assert_int_equal(ret_caller_user(f->s, "ann", &ann, err), ZK_OK);
    assert_true(view_ok(f, &ann, a));
    assert_false(view_ok(f, &ann, b));                 /* not in the group yet */
    assert_true(view_ok(f, &ann, f->doc[0]));          /* everyone */
    assert_true(view_ok(f, &admin, b));
    ret_view v;
    assert_int_equal(ret_docmap_view(ret__store_docmap(f->s), ret_store_db(f->s), &ann, 1, 1, &v, err), ZK_OK);
    assert_int_equal(v.allowed_chunks, NDOCS + 1);
    assert_int_equal(v.kb_chunks, NDOCS + 2);
    ret_view_release(&v);

    /* membership: the caller's principal set changes, so a new caller */
    assert_int_equal(ret_group_member_add(f->s, "team", "user:ann", err), ZK_OK);
    ret_caller_free(&ann);
    assert_int_equal(ret_caller_user(f->s, "ann", &ann, err), ZK_OK);
    assert_true(view_ok(f, &ann, b));
    /* a revocation applies to the next view */
    assert_int_equal(ret_acl_revoke(f->s, a, uid, err), ZK_OK);
    assert_false(view_ok(f, &ann, a));
    /* a grant on an existing document, and a document added since */
    assert_int_equal(ret_acl_grant(f->s, a, uid, err), ZK_OK);
    assert_true(view_ok(f, &ann, a));
    int64_t c = put_doc(f->s, "new-for-ann", "fresh plans", &uid, 1);
    assert_true(view_ok(f, &ann, c));
    /* replacing a document's grants (ingest --acl on an existing one) */
    int64_t everyone;
    assert_int_equal(ret_principal_parse(f->s, "everyone", &everyone, err), ZK_OK);
    float vec[DIM] = {1};
    ret_chunk_in ch = {"fresh plans v2", 14, "", 0, 0, 0, 14};
    ret_doc_in d = {.ext_id = "new-for-ann", .title = "n", .sha256 = "v2", .format = "txt", .acl = &gid, .nacl = 1,
                    .acl_replace = 1};
    ret_put_status st;
    int64_t c2;
    assert_int_equal(ret_doc_put(f->s, 1, &d, &ch, 1, vec, DIM, &st, &c2, err), ZK_OK);
    ret_caller_free(&ann);
    assert_int_equal(ret_user_add(f->s, "bob", NULL, 0, &uid, err), ZK_OK);
    ret_caller bob;
    assert_int_equal(ret_caller_user(f->s, "bob", &bob, err), ZK_OK);
    assert_false(view_ok(f, &bob, c2));
    assert_false(view_ok(f, &bob, b));
    /* deletion: the chunk leaves the map */
    assert_true(view_ok(f, &admin, f->doc[5]));
    assert_int_equal(ret_doc_delete(f->s, f->doc[5], err), ZK_OK);
    assert_false(view_ok(f, &admin, f->doc[5]));
    assert_false(view_ok(f, &bob, f->doc[5]));
    ret_caller_free(&bob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_zk_bm25_equals_fts5_bm25, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_matches_rare_terms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_docmap_follows_changes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
