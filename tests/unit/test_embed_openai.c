/* test_embed_openai.c — the OpenAI-compatible remote embedder against the
 * fake server (tests/fake_openai/server.py, started here with python3):
 * vectors, batching, the concurrency bound, retries on 429/500/timeouts/
 * malformed answers/dropped connections, immediate failure on 401, the
 * dimension check and index-ordered results. Skips when python3 is absent. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "llm/embed.h"

#define DIM 64

#include "fake_openai.h"

static long stat_int(const char *key)
{
    json_t *j = srv_call("/_stats", NULL);
    assert_non_null(j);
    long v = (long)json_integer_value(json_object_get(j, key));
    json_decref(j);
    return v;
}

static int group_setup(void **state)
{
    (void)state;
    fake_setup("embed_openai");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    fake_teardown();
    return 0;
}

static int reset(void **state)
{
    (void)state;
    if (!srv_port) return 0;
    control("{\"mode\":\"ok\",\"count\":0,\"latency_ms\":0,\"hang_ms\":3000,\"shuffle\":false,"
            "\"dim\":64,\"retry_after\":null,\"reset_stats\":true}");
    return 0;
}

/* ---- helpers -------------------------------------------------------------- */

static llm_embedder *make(int dim, int batch, int conc, long timeout_ms, int retries)
{
    char url[64], err[ZK_ERRLEN];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/", srv_port);
    llm_openai_opts o = {.base_url = url, .model = "fake-embed", .api_key = "sk-test-secret",
                         .dim = dim, .batch_size = batch, .concurrency = conc,
                         .timeout_ms = timeout_ms, .max_retries = retries,
                         .backoff_ms = 20, .retry_cap_ms = 400};
    llm_embedder *e = NULL;
    zk_rc rc = llm_embedder_openai_new(&o, &e, err);
    if (rc != ZK_OK) fail_msg("openai_new: %s", err);
    return e;
}

static const char *texts10[] = {"alpha beta", "gamma", "delta epsilon zeta", "eta", "theta iota",
                                "kappa", "lambda mu", "nu xi", "omicron", "pi rho sigma"};

#define NEED_SERVER() do { if (!srv_port) skip(); } while (0)

/* ---- tests ------------------------------------------------------------------- */

static void test_ok_normalised(void **state)
{
    (void)state;
    NEED_SERVER();
    llm_embedder *e = make(DIM, 8, 2, 5000, 2);
    const char *t[] = {"hello world", "", "hello world", "something else"};
    float v[4 * DIM];
    char err[ZK_ERRLEN] = "";
    assert_int_equal(llm_embed(e, 4, t, NULL, v, err), ZK_OK);
    for (int r = 0; r < 4; r++) {
        double s = 0;
        for (int d = 0; d < DIM; d++) s += (double)v[r * DIM + d] * v[r * DIM + d];
        if (r == 1) assert_true(s == 0);               /* empty text → zero vector, not sent */
        else assert_true(fabs(s - 1.0) < 1e-4);
    }
    assert_memory_equal(v, v + 2 * DIM, DIM * sizeof *v);
    assert_string_equal(llm_embedder_model(e), "openai:fake-embed");
    assert_int_equal(llm_embedder_dim(e), DIM);
    assert_int_equal(stat_int("inputs"), 3);
    json_t *st = srv_call("/_stats", NULL);
    assert_string_equal(json_string_value(json_object_get(st, "last_auth")), "Bearer sk-test-secret");
    json_decref(st);
    llm_embedder_free(e);
}

static void test_batching(void **state)
{
    (void)state;
    NEED_SERVER();
    llm_embedder *e = make(DIM, 3, 2, 5000, 2);
    float v[10 * DIM];
    char err[ZK_ERRLEN];
    assert_int_equal(llm_embed(e, 10, texts10, NULL, v, err), ZK_OK);
    assert_int_equal(stat_int("embeddings"), 4);   /* 3 + 3 + 3 + 1 */
    assert_int_equal(stat_int("inputs"), 10);
    llm_embedder_free(e);
}

static void test_concurrency_bound(void **state)
{
    (void)state;
    NEED_SERVER();
    control("{\"latency_ms\":80}");
    llm_embedder *e = make(DIM, 1, 2, 5000, 2);
    float v[6 * DIM];
    char err[ZK_ERRLEN];
    assert_int_equal(llm_embed(e, 6, texts10, NULL, v, err), ZK_OK);
    assert_int_equal(stat_int("embeddings"), 6);
    assert_int_equal(stat_int("max_inflight"), 2);
    llm_embedder_free(e);
}

static void test_429_retry_after(void **state)
{
    (void)state;
    NEED_SERVER();
    control("{\"mode\":\"429\",\"count\":3,\"retry_after\":\"0.2\"}");
    llm_embedder *e = make(DIM, 8, 2, 5000, 5);
    float v[2 * DIM];
    char err[ZK_ERRLEN];
    double t0 = zk_now();
    assert_int_equal(llm_embed(e, 2, texts10, NULL, v, err), ZK_OK);
    double dt = zk_now() - t0;
    assert_int_equal(stat_int("embeddings"), 4);
    assert_true(dt >= 0.55);   /* three waits of 0.2 s (backoff alone: < 0.15 s) */
    llm_embedder_free(e);
}

static void test_500_then_ok(void **state)
{
    (void)state;
    NEED_SERVER();
    control("{\"mode\":\"500\",\"count\":2}");
    llm_embedder *e = make(DIM, 8, 2, 5000, 5);
    float v[2 * DIM];
    char err[ZK_ERRLEN];
    assert_int_equal(llm_embed(e, 2, texts10, NULL, v, err), ZK_OK);
    assert_int_equal(stat_int("embeddings"), 3);
    llm_embedder_free(e);
}

static void test_500_gives_up(void **state)
{
    (void)state;
    NEED_SERVER();
    control("{\"mode\":\"500\",\"count\":0}");
    llm_embedder *e = make(DIM, 8, 2, 5000, 2);
    float v[2 * DIM];
    char err[ZK_ERRLEN];
    assert_int_equal(llm_embed(e, 2, texts10, NULL, v, err), ZK_IO);
    assert_non_null(strstr(err, "after 3 attempts"));
    assert_non_null(strstr(err, "HTTP 500"));
    assert_int_equal(stat_int("embeddings"), 3);
    llm_embedder_free(e);
}

static void test_timeout_then_ok(void **state)
{
    (void)state;
    NEED_SERVER();
    control("{\"mode\":\"timeout\",\"count\":1,\"hang_ms\":1000}");
    llm_embedder *e = make(DIM, 8, 2, 250, 3);
    float v[2 * DIM];
    char err[ZK_ERRLEN];
    assert_int_equal(llm_embed(e, 2, texts10, NULL, v, err), ZK_OK);
    assert_int_equal(stat_int("embeddings"), 2);
    llm_embedder_free(e);
}

static void test_malformed(void **state)
{
    (void)state;
    NEED_SERVER();
    llm_embedder *e = make(DIM, 8, 2, 5000, 2);
    float v[2 * DIM];
    char err[ZK_ERRLEN];
    control("{\"mode\":\"malformed\",\"count\":1}");
    assert_int_equal(llm_embed(e, 2, texts10, NULL, v, err), ZK_OK);
    assert_int_equal(stat_int("embeddings"), 2);
    control("{\"mode\":\"malformed\",\"count\":0,\"reset_stats\":true}");
    assert_int_not_equal(llm_embed(e, 2, texts10, NULL, v, err), ZK_OK);
    assert_non_null(strstr(err, "malformed JSON"));
    assert_int_equal(stat_int("embeddings"), 3);
    llm_embedder_free(e);
}

static void test_drop_then_ok(void **state)
{
    (void)state;
    NEED_SERVER();
    control("{\"mode\":\"drop\",\"count\":2}");
    llm_embedder *e = make(DIM, 8, 2, 5000, 3);
    float v[2 * DIM];
    char err[ZK_ERRLEN];
    assert_int_equal(llm_embed(e, 2, texts10, NULL, v, err), ZK_OK);
    assert_int_equal(stat_int("embeddings"), 3);
    llm_embedder_free(e);
}

static void test_401_no_retry(void **state)
{
    (void)state;
    NEED_SERVER();
    control("{\"mode\":\"401\",\"count\":0}");
    llm_embedder *e = make(DIM, 2, 1, 5000, 5);
    float v[10 * DIM];
    char err[ZK_ERRLEN];
    assert_int_equal(llm_embed(e, 10, texts10, NULL, v, err), ZK_CONFIG);
    assert_non_null(strstr(err, "embedding server refused the API key (HTTP 401): Incorrect API key"));
    assert_null(strstr(err, "sk-test-secret"));
    assert_int_equal(stat_int("embeddings"), 1);
    llm_embedder_free(e);
}

static void test_wrong_dimension(void **state)
{
    (void)state;
    NEED_SERVER();
    llm_embedder *e = make(32, 8, 2, 5000, 5);
    float v[2 * 32];
    char err[ZK_ERRLEN];
    assert_int_equal(llm_embed(e, 2, texts10, NULL, v, err), ZK_CONFIG);
    assert_non_null(strstr(err, "dimension 64"));
    assert_non_null(strstr(err, "dimensions = 32"));
    assert_int_equal(stat_int("embeddings"), 1);
    llm_embedder_free(e);
}

static void test_shuffled_index(void **state)
{
    (void)state;
    NEED_SERVER();
    llm_embedder *e = make(DIM, 5, 2, 5000, 2);
    static float a[10 * DIM], b[10 * DIM];
    char err[ZK_ERRLEN];
    assert_int_equal(llm_embed(e, 10, texts10, NULL, a, err), ZK_OK);
    control("{\"shuffle\":true}");
    assert_int_equal(llm_embed(e, 10, texts10, NULL, b, err), ZK_OK);
    assert_memory_equal(a, b, sizeof a);
    for (int r = 1; r < 10; r++) assert_memory_not_equal(a, a + r * DIM, DIM * sizeof *a);
    llm_embedder_free(e);
}

typedef struct { llm_embedder *e; float v[10 * DIM]; zk_rc rc; } thr_arg;

static void *thr_embed(void *p)
{
    thr_arg *t = p;
    char err[ZK_ERRLEN];
    t->rc = llm_embed(t->e, 10, texts10, NULL, t->v, err);
    return NULL;
}

static void test_concurrent_calls(void **state)
{
    (void)state;
    NEED_SERVER();
    control("{\"mode\":\"500\",\"count\":2}");
    llm_embedder *e = make(DIM, 3, 2, 5000, 5);
    static thr_arg t[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        t[i].e = e;
        assert_int_equal(pthread_create(&th[i], NULL, thr_embed, &t[i]), 0);
    }
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(t[i].rc, ZK_OK);
        assert_memory_equal(t[i].v, t[0].v, sizeof t[0].v);
    }
    llm_embedder_free(e);
}

static void test_config_errors(void **state)
{
    (void)state;
    char err[ZK_ERRLEN];
    llm_embedder *e = NULL;
    llm_openai_opts o = {.base_url = "", .model = "m", .dim = 8};
    assert_int_equal(llm_embedder_openai_new(&o, &e, err), ZK_CONFIG);
    assert_non_null(strstr(err, "base_url"));
    o.base_url = "ftp://x";
    assert_int_equal(llm_embedder_openai_new(&o, &e, err), ZK_CONFIG);
    o.base_url = "http://127.0.0.1:1/v1";
    o.model = NULL;
    assert_int_equal(llm_embedder_openai_new(&o, &e, err), ZK_CONFIG);
    assert_non_null(strstr(err, "model"));
    assert_null(e);
    llm_embedder_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test_setup(test_ok_normalised, reset),
        cmocka_unit_test_setup(test_batching, reset),
        cmocka_unit_test_setup(test_concurrency_bound, reset),
        cmocka_unit_test_setup(test_429_retry_after, reset),
        cmocka_unit_test_setup(test_500_then_ok, reset),
        cmocka_unit_test_setup(test_500_gives_up, reset),
        cmocka_unit_test_setup(test_timeout_then_ok, reset),
        cmocka_unit_test_setup(test_malformed, reset),
        cmocka_unit_test_setup(test_drop_then_ok, reset),
        cmocka_unit_test_setup(test_401_no_retry, reset),
        cmocka_unit_test_setup(test_wrong_dimension, reset),
        cmocka_unit_test_setup(test_shuffled_index, reset),
        cmocka_unit_test_setup(test_concurrent_calls, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
