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

/* A one-chunk document with a heading; returns the document's id. */
static int64_t put_doc_heading(ret_store *s, const char *id, const char *text, const char *heading,
                               const int64_t *acl, size_t nacl)
{
    char err[ZK_ERRLEN];
    float vec[DIM] = {1};
    ret_chunk_in c = {text, strlen(text), heading, 0, 0, 0, (int64_t)strlen(text)};
    ret_doc_in d = {.ext_id = id, .title = id, .sha256 = id, .format = "txt", .acl = acl, .nacl = nacl};
    ret_put_status st;
    int64_t doc = 0;
    assert_int_equal(ret_kb_check_model(s, 1, "test", DIM, err), ZK_OK);
    zk_rc rc = ret_doc_put(s, 1, &d, &c, 1, vec, DIM, &st, &doc, err);
    if (rc != ZK_OK) fail_msg("put %s: %s", id, err);
    return doc;
}

static int64_t put_doc(ret_store *s, const char *id, const char *text, const int64_t *acl, size_t nacl)
{
    return put_doc_heading(s, id, text, "", acl, nacl);
}

/* The id of a one-chunk document's chunk (0: none). */
static int64_t chunk_of(ret_store *s, int64_t doc)
{
    sqlite3_stmt *st;
    int64_t chunk = 0;
    sqlite3_prepare_v2(ret_store_db(s), "SELECT id FROM chunks WHERE doc_id = ?", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, doc);
    if (sqlite3_step(st) == SQLITE_ROW) chunk = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return chunk;
}

/* Search options for the administrator in BM25 mode, from the defaults
 * (the caller frees *cfg). */
static void admin_bm25(ret_search_opts *o, ret_caller *admin, zk_config **cfg)
{
    char err[ZK_ERRLEN];
    ret_caller_admin(admin);
    *cfg = NULL;
    assert_int_equal(zk_config_load(NULL, 0, cfg, err), ZK_OK);
    ret_search_opts_init(o, *cfg);
    o->mode = RET_MODE_BM25;
    o->caller = admin;
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

/* The top 10 of sql: ?1 the match, ?2 the weights, ?3 an access-map view. */
static top run_view(ret_store *s, const char *sql, const char *match, const double *w, int nw, const ret_view *v)
{
    sqlite3_stmt *st;
    top t = {{0}, {0}, 0};
    assert_int_equal(sqlite3_prepare_v2(ret_store_db(s), sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
    if (w) sqlite3_bind_blob(st, 2, w, (int)(sizeof *w * (size_t)nw), SQLITE_STATIC);
    if (v) sqlite3_bind_pointer(st, 3, (void *)v, RET_VIEW_PTR, NULL);
    while (sqlite3_step(st) == SQLITE_ROW && t.n < 10) {
        t.id[t.n] = sqlite3_column_int64(st, 0);
        t.score[t.n++] = sqlite3_column_double(st, 1);
    }
    sqlite3_finalize(st);
    return t;
}

static top run(ret_store *s, const char *sql, const char *match, const double *w, int nw)
{
    return run_view(s, sql, match, w, nw, NULL);
}

/* The same ranking: equal lengths, scores equal to 1e-9, ids equal
 * except between exact ties. */
static void assert_same_top(top a, top b)
{
    assert_int_equal(a.n, b.n);
    for (int k = 0; k < a.n; k++) {
        assert_true(fabs(a.score[k] - b.score[k]) <= 1e-9 * fabs(a.score[k]) + 1e-12);
        if (a.id[k] != b.id[k]) assert_true(fabs(a.score[k] - b.score[k]) <= 1e-12);
    }
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

/* The BM25 plan of q under budget (caller frees the plan and *w); the
 * plan's bound on its matches in last_bound. */
static int64_t last_bound;

static char *plan_of(fixture *f, const char *q, int budget, double **w, int *nw)
{
    char err[ZK_ERRLEN], *plan = NULL;
    assert_int_equal(ret__bm25_plan(ret_store_db(f->s), ret__store_termstats(f->s), NDOCS, q, 32, budget, &plan, w,
                                    nw, &last_bound, err), ZK_OK);
    /* the bound holds: the expression never matches more rows */
    if (*plan) assert_true(count_rows(f, plan) <= last_bound);
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
            assert_same_top(a, b);
            compared++;
        }
        zk_free(plan);
        zk_free(plain);
        zk_free(w);
    }
    assert_true(compared > 30);
}

/* A plan that requires common terms together, "(m1 AND m2) AND (m1 OR
 * rest...)" or the AND alone, ranks its rows exactly as bm25() ranks them
 * in the full OR query: the required terms score from their own phrases,
 * the rarest one's repeat weighs nothing. */
static void test_and_plan_scores_like_bm25(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], q[128], sql[1024], word[16];
    int words[60], nwords = 0, and_plans = 0, with_rest = 0;
    for (int i = 1; i < 60; i++) {   /* low-IDF words are left out of plans: bm25() would still count them */
        snprintf(word, sizeof word, "word%d", i);
        if (ret_rank_idf(NDOCS, count_rows(f, word)) >= RET_RANK_IDF_DROP) words[nwords++] = i;
    }
    assert_true(nwords > 20);
    for (int i = 0; i < 400 && and_plans < 30; i++) {
        int n = 2 + (int)rnd(3);
        size_t len = 0;
        for (int k = 0; k < n; k++) len += (size_t)snprintf(q + len, sizeof q - len, "word%d ", words[rnd((uint32_t)nwords)]);
        double *w;
        int nw;
        char *plan = plan_of(f, q, 20, &w, &nw), *plain;
        if (!strstr(plan, "\" AND \"")) {   /* plain OR, or rare OR-matchers: test_zk_bm25_equals_fts5_bm25 */
            zk_free(plan);
            zk_free(w);
            continue;
        }
        and_plans++;
        with_rest += strstr(plan, ") AND (") != NULL;
        assert_int_equal(ret__fts_query(q, 32, &plain, err), ZK_OK);
        snprintf(sql, sizeof sql, "SELECT rowid, bm25(chunks_fts, 1.0, 0.5) r FROM chunks_fts WHERE chunks_fts MATCH ?1 "
                                  "AND rowid IN (SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH '%s') "
                                  "ORDER BY r, rowid LIMIT 10", plan);
        top a = run(f->s, sql, plain, NULL, 0);
        top b = run(f->s, "SELECT rowid, zk_bm25(chunks_fts, 0.5, ?2) r FROM chunks_fts WHERE chunks_fts MATCH ?1 "
                          "ORDER BY r, rowid LIMIT 10", plan, w, nw);
        assert_true(a.n > 0);
        assert_same_top(a, b);
        zk_free(plan);
        zk_free(plain);
        zk_free(w);
    }
    assert_true(and_plans >= 10);
    assert_true(with_rest >= 3);
}

/* With an access-map view zk_bm25 takes each row's length from the map
 * (read from FTS5's %_docsize when the map loads and as it replays new
 * chunks) instead of asking FTS5: the scores stay bm25()'s exactly, for
 * rows loaded at first use, rows added since (headings and long texts:
 * two columns, multi-byte lengths) and after a deletion. */
/* zk_bm25 through view v ranks `queries` random queries exactly as FTS5's
 * bm25() does (document frequencies counted now: the plan's cache is
 * allowed to lag a growing corpus by 10%). */
static void assert_scores_like_bm25(fixture *f, ret_view *v, int queries)
{
    char err[ZK_ERRLEN], q[128];
    for (int i = 0; i < queries; i++) {
        snprintf(q, sizeof q, "word%u word%u heading", rnd(60), rnd(60));
        char *plain, phrase[64];
        double w[8];
        int nw = 0;
        assert_int_equal(ret__fts_query(q, 32, &plain, err), ZK_OK);
        for (const char *p = plain; *p && nw < 8; nw++) {
            size_t n = strcspn(p, " ");
            snprintf(phrase, sizeof phrase, "%.*s", (int)n, p);
            w[nw] = (double)count_rows(f, phrase);
            p += n;
            if (!strncmp(p, " OR ", 4)) p += 4;
        }
        top a = run(f->s, "SELECT rowid, bm25(chunks_fts, 1.0, 0.5) r FROM chunks_fts WHERE chunks_fts MATCH ?1 "
                          "ORDER BY r, rowid LIMIT 10", plain, NULL, 0);
        top b = run_view(f->s, "SELECT rowid, zk_bm25(chunks_fts, 0.5, ?2, ?3) r FROM chunks_fts "
                               "WHERE chunks_fts MATCH ?1 ORDER BY r, rowid LIMIT 10", plain, w, nw, v);
        assert_true(a.n > 0);
        assert_same_top(a, b);
        zk_free(plain);
    }
}

static void test_zk_bm25_lengths_from_the_map(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], text[4096], id[32];
    ret_caller admin;
    ret_caller_admin(&admin);
    for (int round = 0; round < 3; round++) {
        if (round == 1) {
            ret_view v;   /* the map is loaded; these come by replay */
            assert_int_equal(ret_docmap_view(ret__store_docmap(f->s), ret_store_db(f->s), &admin, 1, 0, &v, err),
                             ZK_OK);
            ret_view_release(&v);
            for (int i = 0; i < 8; i++) {
                size_t n = 0;
                for (int w = 0; w < 40 + 60 * i; w++)
                    n += (size_t)snprintf(text + n, sizeof text - n, "word%u ", rnd(60));
                float vec[DIM] = {1};
                ret_chunk_in c = {text, n, "word1 word2 heading", 0, 0, 0, (int64_t)n};
                snprintf(id, sizeof id, "long%d", i);
                ret_doc_in d = {.ext_id = id, .title = id, .sha256 = id, .format = "txt"};
                ret_put_status st;
                int64_t doc;
                assert_int_equal(ret_doc_put(f->s, 1, &d, &c, 1, vec, DIM, &st, &doc, err), ZK_OK);
            }
        }
        if (round == 2) assert_int_equal(ret_doc_delete(f->s, f->doc[7], err), ZK_OK);
        ret_view v;
        assert_int_equal(ret_docmap_view(ret__store_docmap(f->s), ret_store_db(f->s), &admin, 1, 0, &v, err), ZK_OK);
        int known = 0;   /* every live row's length is in the map */
        for (int64_t c = 1; c < 400; c++) known += ret_view_chunk_len(&v, c) > 0;
        assert_int_equal(known, NDOCS + (round ? 8 : 0) - (round == 2));
        assert_scores_like_bm25(f, &v, 30);
        ret_view_release(&v);
    }
}

/* A map loaded ahead (a server before /readyz) starts without row lengths:
 * zk_bm25 asks FTS5 for them meanwhile, with the same scores; they come a
 * step at a time, and then every live row's is known. */
static void test_lengths_after_warm(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    ret_caller admin;
    ret_caller_admin(&admin);
    ret_docmap *m = ret__store_docmap(f->s);
    assert_int_equal(ret_docmap_warm(m, ret_store_db(f->s), err), ZK_OK);
    ret_view v;
    assert_int_equal(ret_docmap_view(m, ret_store_db(f->s), &admin, 1, 0, &v, err), ZK_OK);
    int known = 0;
    for (int64_t c = 1; c < 400; c++) known += ret_view_chunk_len(&v, c) > 0;
    assert_int_equal(known, 0);
    assert_scores_like_bm25(f, &v, 10);
    ret_view_release(&v);
    int steps = 0;
    while (ret_docmap_load_lengths(m, ret_store_db(f->s), 7)) steps++;
    assert_true(steps >= NDOCS / 7 - 1);
    assert_int_equal(ret_docmap_load_lengths(m, ret_store_db(f->s), 7), 0);   /* done */
    assert_int_equal(ret_docmap_view(m, ret_store_db(f->s), &admin, 1, 0, &v, err), ZK_OK);
    for (int64_t c = 1; c < 400; c++) known += ret_view_chunk_len(&v, c) > 0;
    assert_int_equal(known, NDOCS);
    assert_scores_like_bm25(f, &v, 10);
    ret_view_release(&v);
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
        if ((df = count_rows(f, word)) > 5 && ret_rank_idf(NDOCS, df) >= RET_RANK_IDF_DROP) wi = i;
    }
    assert_true(wi > 0);
    snprintf(word, sizeof word, "word%d", wi);
    snprintf(q, sizeof q, "%s rare7", word);
    plan = plan_of(f, q, 5, &w, &nw);
    snprintf(want, sizeof want, "(\"rare7\") AND (\"rare7\" OR \"%s\")", word);
    assert_string_equal(plan, want);
    assert_int_equal(nw, 3);
    assert_true(w[0] == 0.0 && w[1] == 1.0 && w[2] == (double)df);
    assert_int_equal(last_bound, 1);   /* the rows of rare7 */
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
    /* so does a word in more than ~38% of the rows (IDF under
     * RET_RANK_IDF_DROP), which adds little to a score */
    int low = 0;
    for (int i = 1; i < 60 && !low; i++) {
        snprintf(word, sizeof word, "word%d", i);
        double idf = ret_rank_idf(NDOCS, count_rows(f, word));
        if (idf > RET_RANK_IDF_FLOOR && idf < RET_RANK_IDF_DROP) low = i;
    }
    assert_true(low > 0);
    snprintf(q, sizeof q, "word%d rare7", low);
    plan = plan_of(f, q, 5, &w, &nw);
    assert_string_equal(plan, "\"rare7\"");
    zk_free(plan);
    zk_free(w);
    /* only common terms: the rarest ones are required together */
    plan = plan_of(f, "word0 word1", 5, &w, &nw);
    assert_non_null(strstr(plan, " AND "));
    assert_int_equal(last_bound, ZK_MIN(count_rows(f, "word0"), count_rows(f, "word1")));
    zk_free(plan);
    zk_free(w);
    /* terms found nowhere: nothing to run */
    plan = plan_of(f, "zzqq nowhere", 5, &w, &nw);
    assert_string_equal(plan, "");
    zk_free(plan);
    zk_free(w);
    /* search ranks the one row that holds the rare term first */
    ret_caller admin;
    ret_search_opts o;
    zk_config *cfg;
    admin_bm25(&o, &admin, &cfg);
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

/* The walk stops after bm25_max_matches matches, the newest first, even
 * when the caller could read none of them: a user who reads one old match
 * of a word behind many newer ones finds it only when the walk reaches it.
 * Both ways of checking access: the access map, and SQL (metadata
 * filters). */
static void test_walk_stops_after_max_matches(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], id[32];
    int64_t ann, bob;
    assert_int_equal(ret_user_add(f->s, "ann", NULL, 0, &ann, err), ZK_OK);
    assert_int_equal(ret_user_add(f->s, "bob", NULL, 0, &bob, err), ZK_OK);
    float vec[DIM] = {1};
    for (int i = 0; i <= 30; i++) {   /* ann's document first, then 30 newer ones only bob reads */
        snprintf(id, sizeof id, i ? "bob%d" : "ann-old", i);
        ret_chunk_in c = {"kiwi orchard", 12, "", 0, 0, 0, 12};
        ret_doc_in d = {.ext_id = id, .title = id, .sha256 = id, .format = "txt", .acl = i ? &bob : &ann, .nacl = 1,
                        .metadata = "{\"crop\":\"kiwi\"}"};
        ret_put_status st;
        int64_t doc;
        assert_int_equal(ret_doc_put(f->s, 1, &d, &c, 1, vec, DIM, &st, &doc, err), ZK_OK);
    }
    ret_caller who;
    assert_int_equal(ret_caller_user(f->s, "ann", &who, err), ZK_OK);
    zk_config *cfg = NULL;
    assert_int_equal(zk_config_load(NULL, 0, &cfg, err), ZK_OK);
    ret_search_opts o;
    ret_search_opts_init(&o, cfg);
    assert_int_equal(o.bm25_max_matches, 8000);   /* the shipped default */
    o.mode = RET_MODE_BM25;
    o.caller = &who;
    o.bm25_budget = o.bm25_max_rows = 1;
    char kv[] = "crop=kiwi";
    for (int filtered = 0; filtered < 2; filtered++) {
        if (filtered) assert_int_equal(ret_search_add_filter(&o, kv, err), ZK_OK);
        int64_t walk[] = {10, 30, 31, 0}, found[] = {0, 0, 1, 1};
        for (int i = 0; i < 4; i++) {
            ret_hit *h;
            size_t n;
            o.bm25_max_matches = (int)walk[i];
            assert_int_equal(ret_search(f->s, NULL, "kiwi", &o, &h, &n, err), ZK_OK);
            assert_int_equal(n, found[i]);
            if (n) assert_string_equal(h[0].ext_id, "ann-old");
            ret_hits_free(h, n);
        }
    }
    ret_caller_free(&who);
    zk_config_free(cfg);
}

/* Rows of equal score rank newest first, whichever way the lists are
 * walked: forwards when no cap can bind (the plan's bound is within
 * them), backwards when the row cap keeps the newest matches. */
static void test_ties_rank_newest_first(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], id[32];
    int64_t chunk[12];
    for (int i = 0; i < 12; i++) {   /* twelve identical chunks: equal scores */
        snprintf(id, sizeof id, "zebra%d", i);
        chunk[i] = chunk_of(f->s, put_doc(f->s, id, "zebra crossing", NULL, 0));
        assert_true(chunk[i] > 0);
    }
    ret_caller admin;
    ret_search_opts o;
    zk_config *cfg;
    admin_bm25(&o, &admin, &cfg);
    o.top_k = o.bm25_k = 5;
    int budget[] = {100, 3};   /* forwards (12 matches fit), then capped at 3 */
    for (int r = 0; r < 2; r++) {
        o.bm25_budget = o.bm25_max_rows = budget[r];
        ret_hit *h;
        size_t n;
        assert_int_equal(ret_search(f->s, NULL, "zebra", &o, &h, &n, err), ZK_OK);
        assert_int_equal(n, r ? 3 : 5);
        for (size_t i = 0; i < n; i++) assert_int_equal(h[i].chunk_id, chunk[11 - i]);
        ret_hits_free(h, n);
    }
    zk_config_free(cfg);
}

/* Each hit's snippet is a window around the first of the query's terms
 * its text holds (terms tokenized once per search, every hit matched
 * against them), or the text's start when it holds none. */
static void test_snippets_around_the_first_term(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], text[3][600];
    const char *tail[] = {"the quokka sleeps here", "a numbat digs there", "nothing of note at all"};
    for (int i = 0; i < 3; i++) {
        char *p = text[i];
        for (int j = 0; j < 60; j++) p += sprintf(p, "filler%d ", j % 7);
        sprintf(p, "%s.", tail[i]);
        char id[16];
        snprintf(id, sizeof id, "snip%d", i);
        put_doc_heading(f->s, id, text[i], i == 2 ? "wombat" : "", NULL, 0);
    }
    ret_caller admin;
    ret_search_opts o;
    zk_config *cfg;
    admin_bm25(&o, &admin, &cfg);
    ret_hit *h;
    size_t n;
    assert_int_equal(ret_search(f->s, NULL, "quokka numbat", &o, &h, &n, err), ZK_OK);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        const char *want = !strcmp(h[i].ext_id, "snip0") ? "quokka sleeps here." : "numbat digs there.";
        assert_true(!strncmp(h[i].snippet, "…", strlen("…")));   /* cut before the term */
        assert_non_null(strstr(h[i].snippet, want));
    }
    ret_hits_free(h, n);
    /* a hit by its heading alone holds no term in its text: the window
     * starts at the beginning */
    assert_int_equal(ret_search(f->s, NULL, "wombat", &o, &h, &n, err), ZK_OK);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].ext_id, "snip2");
    assert_true(!strncmp(h[0].snippet, "filler0 filler1", 15));
    ret_hits_free(h, n);
    zk_config_free(cfg);
}

static int view_ok(fixture *f, const ret_caller *c, int64_t doc_index)
{
    char err[ZK_ERRLEN];
    ret_view v;
    int64_t chunk = chunk_of(f->s, doc_index);   /* one chunk per document */
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
        cmocka_unit_test_setup_teardown(test_zk_bm25_lengths_from_the_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lengths_after_warm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_matches_rare_terms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_and_plan_scores_like_bm25, setup, teardown),
        cmocka_unit_test_setup_teardown(test_walk_stops_after_max_matches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ties_rank_newest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snippets_around_the_first_term, setup, teardown),
        cmocka_unit_test_setup_teardown(test_docmap_follows_changes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
