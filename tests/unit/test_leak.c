/* test_leak.c — the randomized leak test of the access-control issue.
 *
 * 50 users, 20 groups (some nested), 2,000 single-chunk documents with
 * random read grants and a shared vocabulary, each also carrying a unique
 * marker word. 10,200 (user, query) probes through search and ask in BM25,
 * vector and hybrid modes: no hit, citation, title, snippet or answer may
 * come from a document the user may not read, and result counts must equal
 * a brute-force reference computed here from the test's own model of the
 * ACLs (never through zhiku's ACL code). Then revocations and membership
 * changes must apply to the very next query. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retrieval/store.h"
#include "retrieval/search.h"
#include "retrieval/acl.h"
#include "retrieval/principal.h"
#include "llm/embed.h"
#include "llm/answer.h"

#define NUSERS 50
#define NGROUPS 20
#define NDOCS 2000
#define NPROBES 10200
#define DIM 64
#define NVOCAB 120
#define TOPK 10
#define MAXACL 4

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* principal indexes in the model: 0..49 users, 50..69 groups, 70 everyone */
#define P_USER(i) (i)
#define P_GROUP(i) (NUSERS + (i))
#define P_EVERYONE (NUSERS + NGROUPS)
#define NP (P_EVERYONE + 1)

static char member[NP][NP];        /* member[g][x]: x is a direct member of group g */
static char reach[NUSERS][NP];     /* principal set of each user (closure) */
static int acl[NDOCS][MAXACL], nacl[NDOCS];
static int words[NDOCS][8], nwords[NDOCS];
static int64_t pid[NP];            /* database ids */
static int64_t docid[NDOCS];
static float vec[NDOCS][DIM];
static char text[NDOCS][256];
static const char *vocab[NVOCAB];
static char vocab_buf[NVOCAB][16];

static void closure(void)
{
    memset(reach, 0, sizeof reach);
    for (int u = 0; u < NUSERS; u++) {
        reach[u][P_USER(u)] = 1;
        reach[u][P_EVERYONE] = 1;
        for (int changed = 1; changed;) {
            changed = 0;
            for (int g = 0; g < NGROUPS; g++) {
                if (reach[u][P_GROUP(g)]) continue;
                for (int x = 0; x < NP; x++)
                    if (member[P_GROUP(g)][x] && reach[u][x] && (x < NUSERS ? x == u : 1)) {
                        reach[u][P_GROUP(g)] = 1;
                        changed = 1;
                        break;
                    }
            }
        }
    }
}

static int can_read(int u, int d)
{
    for (int i = 0; i < nacl[d]; i++)
        if (reach[u][acl[d][i]]) return 1;
    return 0;
}

static int doc_of(int64_t id)
{
    int lo = 0, hi = NDOCS - 1;   /* docids ascending */
    while (lo <= hi) {
        int m = (lo + hi) / 2;
        if (docid[m] == id) return m;
        if (docid[m] < id) lo = m + 1;
        else hi = m - 1;
    }
    return -1;
}

typedef struct {
    char dir[64];
    ret_store *s;
    llm_embedder *emb;
} world;

static void build(world *w)
{
    char err[ZK_ERRLEN], name[32], spec[48];
    strcpy(w->dir, "/tmp/zk-leak-XXXXXX");
    assert_non_null(mkdtemp(w->dir));
    assert_int_equal(ret_store_open(w->dir, 0, &w->s, err), ZK_OK);
    assert_int_equal(llm_embedder_builtin_new(DIM, &w->emb, err), ZK_OK);
    assert_int_equal(ret_kb_check_model(w->s, 1, llm_embedder_model(w->emb), DIM, err), ZK_OK);

    for (int i = 0; i < NVOCAB; i++) {
        if (i < 80) snprintf(vocab_buf[i], sizeof vocab_buf[i], "w%03d", i);
        else {   /* two-character Chinese words from a small alphabet */
            static const char *const han[] = {"数", "据", "安", "全", "文", "档", "权", "限", "检", "索",
                                              "向", "量", "模", "型", "企", "业", "知", "识", "库", "问"};
            snprintf(vocab_buf[i], sizeof vocab_buf[i], "%s%s", han[(i - 80) % 20], han[(i * 7 + 3 + (i - 80) / 20) % 20]);
        }
        vocab[i] = vocab_buf[i];
    }
    assert_int_equal(ret_store_begin(w->s, err), ZK_OK);
    for (int u = 0; u < NUSERS; u++) {
        snprintf(name, sizeof name, "u%d", u);
        assert_int_equal(ret_user_add(w->s, name, NULL, 0, &pid[P_USER(u)], err), ZK_OK);
    }
    for (int g = 0; g < NGROUPS; g++) {
        snprintf(name, sizeof name, "g%d", g);
        assert_int_equal(ret_group_add(w->s, name, err), ZK_OK);
        assert_int_equal(ret_principal_find(w->s, RET_PRINCIPAL_GROUP, name, &pid[P_GROUP(g)], err), ZK_OK);
    }
    assert_int_equal(ret_principal_parse(w->s, "everyone", &pid[P_EVERYONE], err), ZK_OK);
    for (int u = 0; u < NUSERS; u++)
        for (int k = rnd(4); k > 0; k--) {
            int g = rnd(NGROUPS);
            if (member[P_GROUP(g)][P_USER(u)]) continue;
            member[P_GROUP(g)][P_USER(u)] = 1;
            snprintf(name, sizeof name, "g%d", g);
            snprintf(spec, sizeof spec, "user:u%d", u);
            assert_int_equal(ret_group_member_add(w->s, name, spec, err), ZK_OK);
        }
    for (int g = 0; g < 5; g++) {   /* nesting: g0..g4 are members of g10..g14 */
        member[P_GROUP(g + 10)][P_GROUP(g)] = 1;
        snprintf(name, sizeof name, "g%d", g + 10);
        snprintf(spec, sizeof spec, "group:g%d", g);
        assert_int_equal(ret_group_member_add(w->s, name, spec, err), ZK_OK);
    }
    closure();

    for (int d = 0; d < NDOCS; d++) {
        int n = 0;
        nwords[d] = 3 + (int)rnd(5);
        n += snprintf(text[d] + n, sizeof text[d] - (size_t)n, "marker%d", d);
        for (int k = 0; k < nwords[d]; k++) {
            words[d][k] = (int)rnd(NVOCAB);
            n += snprintf(text[d] + n, sizeof text[d] - (size_t)n, "，%s", vocab[words[d][k]]);
        }
        snprintf(text[d] + n, sizeof text[d] - (size_t)n, "。");
        nacl[d] = (int)rnd(MAXACL);   /* 0 = administrators only */
        for (int k = 0; k < nacl[d]; k++) {
            uint32_t r = rnd(100);
            acl[d][k] = r < 8 ? P_EVERYONE : r < 55 ? P_USER(rnd(NUSERS)) : P_GROUP(rnd(NGROUPS));
        }
        const char *t = text[d];
        size_t len = strlen(t);
        assert_int_equal(llm_embed(w->emb, 1, &t, &len, vec[d], err), ZK_OK);
        int64_t a[MAXACL];
        for (int k = 0; k < nacl[d]; k++) a[k] = pid[acl[d][k]];
        char ext[32], title[32], sha[32];
        snprintf(ext, sizeof ext, "doc-%d", d);
        snprintf(title, sizeof title, "title-%d", d);
        snprintf(sha, sizeof sha, "sha-%d", d);
        ret_chunk_in c = {t, len, NULL, 0, 0, 0, (int64_t)len};
        ret_doc_in din = {.ext_id = ext, .title = title, .sha256 = sha, .acl = a, .nacl = (size_t)nacl[d]};
        ret_put_status st;
        assert_int_equal(ret_doc_put(w->s, 1, &din, &c, 1, vec[d], DIM, &st, &docid[d], err), ZK_OK);
    }
    assert_int_equal(ret_store_commit(w->s, err), ZK_OK);
    assert_int_equal(ret_store_sync(w->s, 1, err), ZK_OK);
}

static void destroy(world *w)
{
    char cmd[128];
    ret_store_close(w->s);
    llm_embedder_free(w->emb);
    snprintf(cmd, sizeof cmd, "rm -rf %s", w->dir);
    assert_int_equal(system(cmd), 0);
}

/* A hit or citation from document index d, shown to user u: must be allowed,
 * and what it shows must belong to d alone. */
static void check_shown(int u, int d, const char *title, const char *shown)
{
    char want[32];
    if (d < 0 || !can_read(u, d)) fail_msg("LEAK: user u%d was shown document %d", u, d);
    snprintf(want, sizeof want, "title-%d", d);
    assert_string_equal(title, want);
    /* any marker in the shown text must be d's own */
    for (const char *p = shown; (p = strstr(p, "marker")); p += 6)
        if (atoi(p + 6) != d) fail_msg("LEAK: text of document %d shown with document %d", atoi(p + 6), d);
}

/* Brute force: allowed documents matching any query word / with positive similarity. */
static void reference(int u, const int *qw, int nq, int qmarker, const float *qv, int *bm25_n, int *vec_lo,
                      int *vec_hi, char *in_bm25)
{
    *bm25_n = *vec_lo = *vec_hi = 0;
    for (int d = 0; d < NDOCS; d++) {
        in_bm25[d] = 0;
        if (!can_read(u, d)) continue;
        int m = d == qmarker;
        for (int i = 0; i < nq && !m; i++)
            for (int k = 0; k < nwords[d] && !m; k++) m = words[d][k] == qw[i];
        if (m) { in_bm25[d] = 1; (*bm25_n)++; }
        float dot = 0;
        for (int j = 0; j < DIM; j++) dot += qv[j] * vec[d][j];
        if (dot > 1e-4f) (*vec_lo)++;
        if (dot > -1e-4f) (*vec_hi)++;
    }
}

static void test_no_leaks_randomized(void **state)
{
    (void)state;
    world w;
    char err[ZK_ERRLEN], q[512];
    static char in_bm25[NDOCS];
    build(&w);
    ret_caller callers[NUSERS];
    for (int u = 0; u < NUSERS; u++) {
        char name[16];
        snprintf(name, sizeof name, "u%d", u);
        assert_int_equal(ret_caller_user(w.s, name, &callers[u], err), ZK_OK);
        /* zhiku's principal set equals the model's closure */
        size_t n = 0;
        for (int p = 0; p < NP; p++) n += reach[u][p];
        assert_int_equal(callers[u].nprincipals, n);
    }
    llm_answer_opts ao;
    llm_answer_opts_init(&ao, NULL);
    size_t shown = 0, forbidden_markers_probed = 0, asks = 0;
    for (int p = 0; p < NPROBES; p++) {
        int u = (int)rnd(NUSERS), qw[4], nq = 1 + (int)rnd(3), qmarker = -1, len = 0;
        for (int i = 0; i < nq; i++) {
            qw[i] = (int)rnd(NVOCAB);
            len += snprintf(q + len, sizeof q - (size_t)len, "%s ", vocab[qw[i]]);
        }
        if (rnd(2)) {   /* probe a specific document by its marker */
            qmarker = (int)rnd(NDOCS);
            len += snprintf(q + len, sizeof q - (size_t)len, "marker%d", qmarker);
            if (!can_read(u, qmarker)) forbidden_markers_probed++;
        }
        ret_search_opts o;
        ret_search_opts_init(&o, NULL);
        o.mode = (ret_mode)(p % 3);
        o.top_k = TOPK;
        o.caller = &callers[u];
        float qv[DIM];
        const char *qt = q;
        size_t ql = strlen(q);
        assert_int_equal(llm_embed(w.emb, 1, &qt, &ql, qv, err), ZK_OK);
        int bm25_n, vec_lo, vec_hi;
        reference(u, qw, nq, qmarker, qv, &bm25_n, &vec_lo, &vec_hi, in_bm25);

        if (p % 10 == 9) {   /* ask */
            llm_result r;
            asks++;
            assert_int_equal(llm_ask(w.s, w.emb, q, &o, &ao, &r, err), ZK_OK);
            for (size_t i = 0; i < r.ncitations; i++) {
                int d = doc_of(r.citations[i].doc_id);
                check_shown(u, d, r.citations[i].title, r.citations[i].quote);
                shown++;
            }
            for (const char *m = r.answer; (m = strstr(m, "marker")); m += 6)
                if (!can_read(u, atoi(m + 6))) fail_msg("LEAK: answer quotes document %d to u%d", atoi(m + 6), u);
            llm_result_free(&r);
            continue;
        }
        ret_hit *h = NULL;
        size_t n = 0;
        assert_int_equal(ret_search(w.s, w.emb, q, &o, &h, &n, err), ZK_OK);
        for (size_t i = 0; i < n; i++) {
            int d = doc_of(h[i].doc_id);
            check_shown(u, d, h[i].title, h[i].text);
            check_shown(u, d, h[i].title, h[i].snippet);
            if (o.mode == RET_MODE_BM25) assert_true(in_bm25[d]);
            shown++;
        }
        int want_lo, want_hi;
        if (o.mode == RET_MODE_BM25) {
            want_lo = want_hi = bm25_n < TOPK ? bm25_n : TOPK;
        } else if (o.mode == RET_MODE_VECTOR) {
            want_lo = vec_lo < TOPK ? vec_lo : TOPK;
            want_hi = vec_hi < TOPK ? vec_hi : TOPK;
        } else {
            /* union of both lists (each far below its 50-candidate cap here
             * unless it alone fills top_k) */
            int lo = 0, hi = 0;
            for (int d = 0; d < NDOCS; d++) {
                if (!can_read(u, d)) continue;
                float dot = 0;
                for (int j = 0; j < DIM; j++) dot += qv[j] * vec[d][j];
                lo += in_bm25[d] || dot > 1e-4f;
                hi += in_bm25[d] || dot > -1e-4f;
            }
            want_lo = lo < TOPK ? lo : TOPK;
            want_hi = hi < TOPK ? hi : TOPK;
        }
        if ((int)n < want_lo || (int)n > want_hi)
            fail_msg("probe %d (u%d, mode %s, \"%s\"): %zu hits, brute force says %d..%d", p, u,
                     ret_mode_name(o.mode), q, n, want_lo, want_hi);
        ret_hits_free(h, n);
    }
    printf("leak test: %d probes (%zu asks), %zu results shown, %zu probes aimed at forbidden documents, 0 leaks\n",
           NPROBES, asks, shown, forbidden_markers_probed);

    /* document fetch path: the same rule */
    for (int i = 0; i < 5000; i++) {
        int u = (int)rnd(NUSERS), d = (int)rnd(NDOCS), ok = -1;
        assert_int_equal(ret_acl_can_read(w.s, &callers[u], docid[d], &ok, err), ZK_OK);
        assert_int_equal(ok, can_read(u, d));
    }

    /* revoking a grant applies to the very next query */
    int d = -1, u = -1;
    for (int x = 0; x < NDOCS && d < 0; x++)
        if (nacl[x] == 1 && acl[x][0] < NUSERS) d = x, u = acl[x][0];
    assert_true(d >= 0);
    snprintf(q, sizeof q, "marker%d", d);
    ret_search_opts o;
    ret_search_opts_init(&o, NULL);
    o.mode = RET_MODE_BM25;
    o.caller = &callers[u];
    ret_hit *h;
    size_t n;
    assert_int_equal(ret_search(w.s, w.emb, q, &o, &h, &n, err), ZK_OK);
    assert_int_equal(n, 1);
    ret_hits_free(h, n);
    assert_int_equal(ret_acl_revoke(w.s, docid[d], pid[acl[d][0]], err), ZK_OK);
    for (int m = 0; m < 3; m++) {
        o.mode = (ret_mode)m;
        assert_int_equal(ret_search(w.s, w.emb, q, &o, &h, &n, err), ZK_OK);
        for (size_t i = 0; i < n; i++) assert_int_not_equal(h[i].doc_id, docid[d]);
        ret_hits_free(h, n);
    }
    /* removing a user from a group applies to the next caller resolution */
    int g = -1, gu = -1;
    for (int x = 0; x < NGROUPS && g < 0; x++)
        for (int y = 0; y < NUSERS; y++)
            if (member[P_GROUP(x)][P_USER(y)] && !member[P_GROUP(x + 10 < NGROUPS ? x + 10 : x)][P_GROUP(x)]) {
                g = x, gu = y;
                break;
            }
    if (g >= 0) {
        char gname[16], spec[32];
        snprintf(gname, sizeof gname, "g%d", g);
        snprintf(spec, sizeof spec, "user:u%d", gu);
        assert_int_equal(ret_group_member_rm(w.s, gname, spec, err), ZK_OK);
        member[P_GROUP(g)][P_USER(gu)] = 0;
        closure();
        ret_caller fresh;
        snprintf(spec, sizeof spec, "u%d", gu);
        assert_int_equal(ret_caller_user(w.s, spec, &fresh, err), ZK_OK);
        for (int x = 0; x < NDOCS; x++) {
            int ok;
            assert_int_equal(ret_acl_can_read(w.s, &fresh, docid[x], &ok, err), ZK_OK);
            assert_int_equal(ok, can_read(gu, x));
        }
        ret_caller_free(&fresh);
    }
    /* a search without a caller is refused */
    o.caller = NULL;
    assert_int_equal(ret_search(w.s, w.emb, q, &o, &h, &n, err), ZK_INVALID);

    for (int x = 0; x < NUSERS; x++) ret_caller_free(&callers[x]);
    destroy(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_no_leaks_randomized)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
