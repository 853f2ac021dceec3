/* test_chat.c — chat providers, the reranker and the LLM ask pipeline
 * against the fake server (tests/fake_openai/server.py, started here):
 * replayed transcripts of OpenAI, Ollama (/v1 SSE and native NDJSON),
 * llama.cpp, vLLM and DeepSeek (reasoning kept out of the answer), SSE
 * framing quirks, fallback on refused connections, first-token timeouts,
 * 429, 500 and malformed answers, 401, a mid-stream disconnect, cancel
 * from the callback, local_only; rerank success, TEI shape and timeout;
 * llm_ask with streaming, renumbered citations, weak support, the not-found
 * gate on both sides, local_only → extractive and usage accounting.
 * Skips when python3 is absent. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "llm/answer.h"
#include "llm/chat.h"
#include "llm/rerank.h"
#include "retrieval/acl.h"

#include "fake_openai.h"

static long chat_count(void)
{
    json_t *j = srv_call("/_stats", NULL);
    assert_non_null(j);
    long v = (long)json_integer_value(json_object_get(j, "chat"));
    json_decref(j);
    return v;
}

static int group_setup(void **state)
{
    (void)state;
    fake_setup("chat");
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
    control("{\"mode\":\"ok\",\"count\":0,\"latency_ms\":0,\"hang_ms\":3000,\"chat_reply\":null,"
            "\"chat_raw\":null,\"nostream\":false,\"flavor\":\"openai\",\"rerank_shape\":\"jina\","
            "\"chat_chunk\":4,\"reset_stats\":true}");
    return 0;
}

#define SKIP_WITHOUT_SERVER() do { if (!srv_port) { skip(); } } while (0)

/* Providers from an INI text where PORT is replaced by the server's port. */
static llm_providers *providers(const char *ini_tmpl, zk_config **cfg_out)
{
    char path[300], err[ZK_ERRLEN];
    zk_buf b;
    buf_init(&b, 1 << 16);
    for (const char *p = ini_tmpl; *p; p++) {
        if (!strncmp(p, "PORT", 4)) { buf_printf(&b, "%d", srv_port); p += 3; }
        else buf_putc(&b, *p);
    }
    snprintf(path, sizeof path, "%s/zhiku.conf", srv_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(buf_cstr(&b), f);
    fclose(f);
    buf_free(&b);
    zk_config *cfg;
    assert_int_equal(zk_config_load(path, 1, &cfg, err), ZK_OK);
    llm_providers *p = NULL;
    assert_int_equal(llm_providers_from_config(cfg, &p, err), ZK_OK);
    assert_non_null(p);
    if (cfg_out) *cfg_out = cfg;
    else zk_config_free(cfg);
    return p;
}

static const char ONE[] = "[llm]\nproviders = local\n[llm.local]\nbase_url = http://127.0.0.1:PORT/v1\nmodel = m\n";
static const char TWO[] = "[llm]\nproviders = a, b\n"
                          "[llm.a]\nbase_url = http://127.0.0.1:PORT/v1\nfirst_token_timeout_ms = 400\n"
                          "[llm.b]\nbase_url = http://127.0.0.1:PORT/v1\n";

typedef struct {
    zk_buf b;
    int calls, cancel_at;
} sink;

static int on_token(void *ctx, const char *t, size_t n)
{
    sink *s = ctx;
    s->calls++;
    buf_append(&s->b, t, n);
    return s->cancel_at && s->calls >= s->cancel_at;
}

static const llm_message MSG[] = {{"system", "be brief"}, {"user", "hello"}};

static zk_rc ask(llm_providers *p, int local_only, sink *s, llm_chat_result *r, char *err)
{
    if (s) buf_init(&s->b, 1 << 20);
    return llm_chat(p, MSG, 2, local_only, s ? on_token : NULL, s, r, err);
}

/* ---- chat --------------------------------------------------------------------- */

static void test_replay_flavors(void **state)
{
    (void)state;
    SKIP_WITHOUT_SERVER();
    char err[ZK_ERRLEN];
    llm_providers *p = providers(ONE, NULL);
    struct { const char *flavor, *text, *reasoning; long pt, ct; } cases[] = {
        {"openai", "Olá!", NULL, 20, 2},
        {"ollama", "Hello there", NULL, 26, 2},
        {"llamacpp", "Olá!", "The user.", 84, 57},
        {"vllm", NULL, NULL, 0, 0},
        {"deepseek", "", NULL, 6, 82},
    };
    for (size_t i = 0; i < ZK_ARRAY_LEN(cases); i++) {
        char ctl[128];
        snprintf(ctl, sizeof ctl, "{\"flavor\":\"%s\"}", cases[i].flavor);
        control(ctl);
        sink s = {0};
        llm_chat_result r;
        assert_int_equal(ask(p, 0, &s, &r, err), ZK_OK);
        assert_string_equal(r.provider, "local");
        assert_string_equal(buf_cstr(&s.b), r.text);   /* streamed == final */
        if (cases[i].text) assert_string_equal(r.text, cases[i].text);
        if (cases[i].reasoning) assert_string_equal(r.reasoning, cases[i].reasoning);
        if (cases[i].pt) {
            assert_int_equal(r.prompt_tokens, cases[i].pt);
            assert_int_equal(r.completion_tokens, cases[i].ct);
        }
        if (!strcmp(cases[i].flavor, "vllm")) {        /* inline <think> never closed */
            assert_non_null(strstr(r.text, "😊"));
            assert_null(strstr(r.text, "<think>"));
        }
        llm_chat_result_free(&r);
        buf_free(&s.b);
    }
    /* DeepSeek answering JSON to a stream request: reasoning kept apart */
    control("{\"flavor\":\"deepseek\",\"nostream\":true}");
    llm_chat_result r;
    assert_int_equal(ask(p, 0, NULL, &r, err), ZK_OK);
    assert_string_equal(r.text, "Hello! How can I assist you today?");
    assert_non_null(r.reasoning);
    assert_true(!strncmp(r.reasoning, "Okay, the user", 14));
    assert_int_equal(r.completion_tokens, 92);
    llm_chat_result_free(&r);
    llm_providers_free(p);
}

static void test_sse_framing(void **state)
{
    (void)state;
    SKIP_WITHOUT_SERVER();
    char err[ZK_ERRLEN];
    llm_providers *p = providers(ONE, NULL);
    /* comments, \r\n, data without a space, event/id fields, multi-line data */
    control("{\"chat_raw\":\": ping\\r\\n\\r\\ndata:{\\\"choices\\\":[{\\\"delta\\\":{\\\"content\\\":\\\"A\\\"}}]}\\r\\n\\r\\n"
            "event: chunk\\nid: 3\\ndata: {\\\"choices\\\":[{\\\"delta\\\":\\ndata: {\\\"content\\\":\\\"B\\\"}}]}\\n\\n"
            "data: {\\\"choices\\\":[],\\\"usage\\\":{\\\"prompt_tokens\\\":5,\\\"completion_tokens\\\":2}}\\n\\n"
            "data: [DONE]\\n\\n\"}");
    llm_chat_result r;
    assert_int_equal(ask(p, 0, NULL, &r, err), ZK_OK);
    assert_string_equal(r.text, "AB");
    assert_int_equal(r.prompt_tokens, 5);
    llm_chat_result_free(&r);
    /* truncated stream: neither [DONE] nor finish_reason */
    control("{\"chat_raw\":\"data: {\\\"choices\\\":[{\\\"delta\\\":{\\\"content\\\":\\\"A\\\"}}]}\\n\\n\"}");
    assert_int_not_equal(ask(p, 0, NULL, &r, err), ZK_OK);
    assert_non_null(strstr(err, "ended before"));
    /* an error event after HTTP 200 */
    control("{\"chat_raw\":\"data: {\\\"error\\\":{\\\"message\\\":\\\"boom\\\"}}\\n\\n\"}");
    assert_int_not_equal(ask(p, 0, NULL, &r, err), ZK_OK);
    assert_non_null(strstr(err, "boom"));
    llm_providers_free(p);
}

static void test_ollama_native(void **state)
{
    (void)state;
    SKIP_WITHOUT_SERVER();
    char err[ZK_ERRLEN];
    llm_providers *p = providers("[llm]\nproviders = o\n[llm.o]\nbase_url = http://127.0.0.1:PORT/api\n", NULL);
    sink s = {0};
    llm_chat_result r;
    assert_int_equal(ask(p, 0, &s, &r, err), ZK_OK);
    assert_string_equal(r.text, "Hello from Ollama.");
    assert_string_equal(buf_cstr(&s.b), "Hello from Ollama.");
    assert_int_equal(r.prompt_tokens, 26);
    llm_chat_result_free(&r);
    buf_free(&s.b);
    llm_providers_free(p);
}

static void test_fallback_connect_refused(void **state)
{
    (void)state;
    SKIP_WITHOUT_SERVER();
    char err[ZK_ERRLEN];
    llm_providers *p = providers("[llm]\nproviders = dead, live\n[llm.dead]\nbase_url = http://127.0.0.1:1/v1\n"
                                 "[llm.live]\nbase_url = http://127.0.0.1:PORT/v1\n", NULL);
    assert_int_equal(llm_providers_count(p), 2);
    assert_true(llm_providers_have_local(p));
    llm_chat_result r;
    assert_int_equal(ask(p, 0, NULL, &r, err), ZK_OK);
    assert_string_equal(r.provider, "live");
    llm_chat_result_free(&r);
    llm_providers_free(p);
}

static void test_first_token_timeout(void **state)
{
    (void)state;
    SKIP_WITHOUT_SERVER();
    char err[ZK_ERRLEN];
    llm_providers *p = providers(TWO, NULL);
    control("{\"mode\":\"timeout\",\"count\":1,\"hang_ms\":2500}");
    double t0 = zk_now();
    llm_chat_result r;
    assert_int_equal(ask(p, 0, NULL, &r, err), ZK_OK);
    assert_string_equal(r.provider, "b");
    assert_true(zk_now() - t0 < 2.0);
    llm_chat_result_free(&r);
    llm_providers_free(p);
}

static void test_faults_next_provider(void **state)
{
    (void)state;
    SKIP_WITHOUT_SERVER();
    char err[ZK_ERRLEN];
    llm_providers *p = providers(TWO, NULL);
    const char *modes[] = {"429", "500", "malformed", "drop"};
    for (size_t i = 0; i < ZK_ARRAY_LEN(modes); i++) {
        char ctl[128];
        snprintf(ctl, sizeof ctl, "{\"mode\":\"%s\",\"count\":1,\"reset_stats\":true}", modes[i]);
        control(ctl);
        llm_chat_result r;
        assert_int_equal(ask(p, 0, NULL, &r, err), ZK_OK);
        assert_string_equal(r.provider, "b");
        assert_string_equal(r.text, "Olá!");
        assert_int_equal(chat_count(), 2);
        llm_chat_result_free(&r);
    }
    /* every provider failing: one error naming both */
    control("{\"mode\":\"500\",\"count\":0}");
    llm_chat_result r;
    assert_int_equal(ask(p, 0, NULL, &r, err), ZK_IO);
    assert_non_null(strstr(err, "a: HTTP 500"));
    assert_non_null(strstr(err, "b: HTTP 500"));
    assert_null(r.text);
    llm_providers_free(p);
}

static void test_unauthorized(void **state)
{
    (void)state;
    SKIP_WITHOUT_SERVER();
    char err[ZK_ERRLEN];
    llm_providers *p = providers(ONE, NULL);
    control("{\"mode\":\"401\",\"count\":1}");
    llm_chat_result r;
    assert_int_equal(ask(p, 0, NULL, &r, err), ZK_CONFIG);
    assert_non_null(strstr(err, "API key"));
    assert_non_null(strstr(err, "[llm.local] api_key"));
    llm_providers_free(p);
}

static void test_midstream_disconnect(void **state)
{
    (void)state;
    SKIP_WITHOUT_SERVER();
    char err[ZK_ERRLEN];
    llm_providers *p = providers(TWO, NULL);
    control("{\"mode\":\"midstream\",\"count\":1,\"chat_chunk\":3,"
            "\"chat_reply\":\"Employees get fifteen days of annual leave per year [1].\"}");
    sink s = {0};
    llm_chat_result r;
    assert_int_equal(ask(p, 0, &s, &r, err), ZK_IO);
    assert_true(s.b.len > 0);                  /* some tokens had been streamed */
    assert_non_null(strstr(err, "mid-answer"));
    assert_null(r.text);                        /* no partial answer as a result */
    assert_int_equal(chat_count(), 1);         /* no fallback after tokens */
    buf_free(&s.b);
    llm_providers_free(p);
}

static void test_cancel(void **state)
{
    (void)state;
    SKIP_WITHOUT_SERVER();
    char err[ZK_ERRLEN];
    llm_providers *p = providers(TWO, NULL);
    control("{\"chat_chunk\":1,\"chat_reply\":\"a long answer that the client will not wait for\"}");
    sink s = {0};
    s.cancel_at = 1;
    llm_chat_result r;
    assert_int_equal(ask(p, 0, &s, &r, err), ZK_ERR);
    assert_non_null(strstr(err, "cancelled"));
    assert_int_equal(s.calls, 1);
    assert_int_equal(chat_count(), 1);
    buf_free(&s.b);
    llm_providers_free(p);
}

static void test_local_only(void **state)
{
    (void)state;
    SKIP_WITHOUT_SERVER();
    char err[ZK_ERRLEN];
    llm_providers *p = providers("[llm]\nproviders = cloud\n[llm.cloud]\nbase_url = http://127.0.0.1:PORT/v1\n"
                                 "remote = true\n", NULL);
    assert_false(llm_providers_have_local(p));
    llm_chat_result r;
    assert_int_equal(ask(p, 1, NULL, &r, err), ZK_CONFIG);
    assert_int_equal(chat_count(), 0);         /* nothing was sent */
    assert_int_equal(ask(p, 0, NULL, &r, err), ZK_OK);
    llm_chat_result_free(&r);
    llm_providers_free(p);
}

/* ---- rerank ------------------------------------------------------------------------ */

static void test_rerank(void **state)
{
    (void)state;
    SKIP_WITHOUT_SERVER();
    char err[ZK_ERRLEN], base[128];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/v1", srv_port);
    llm_reranker *r;
    assert_int_equal(llm_reranker_new(base, "rr", NULL, 1000, 20, &r, err), ZK_OK);
    const char *docs[3] = {"cats purr softly", "annual leave policy gives fifteen days", "bananas are yellow"};
    size_t order[3], n;
    for (int shape = 0; shape < 2; shape++) {
        control(shape ? "{\"rerank_shape\":\"tei\"}" : "{\"rerank_shape\":\"jina\"}");
        assert_int_equal(llm_rerank(r, "annual leave policy days", docs, 3, order, &n, err), ZK_OK);
        assert_int_equal(n, 3);
        assert_int_equal(order[0], 1);
    }
    control("{\"latency_ms\":1500}");
    llm_reranker_free(r);
    assert_int_equal(llm_reranker_new(base, "rr", NULL, 200, 20, &r, err), ZK_OK);
    double t0 = zk_now();
    assert_int_not_equal(llm_rerank(r, "annual leave", docs, 3, order, &n, err), ZK_OK);
    assert_true(zk_now() - t0 < 1.0);
    assert_int_equal(n, 0);
    llm_reranker_free(r);
}

/* ---- the ask pipeline ------------------------------------------------------------------ */

typedef struct {
    ret_store *s;
    llm_embedder *emb;
    ret_caller caller;
    ret_search_opts so;
    char dir[300];
} kb_fixture;

static void kb_open(kb_fixture *k)
{
    char err[ZK_ERRLEN];
    static const char *docs[][2] = {
        {"Leave policy", "Employees get fifteen days of annual leave per year. Unused leave expires at the end of March."},
        {"Expenses", "Travel expenses must be filed within thirty days together with the receipts."},
        {"Security", "Laptops must use full disk encryption and screens must be locked when away."},
    };
    snprintf(k->dir, sizeof k->dir, "%s/kb", srv_dir);
    assert_int_equal(ret_store_open(k->dir, 0, &k->s, err), ZK_OK);
    assert_int_equal(llm_embedder_builtin_new(512, &k->emb, err), ZK_OK);
    assert_int_equal(ret_kb_check_model(k->s, 1, llm_embedder_model(k->emb), 512, err), ZK_OK);
    for (size_t i = 0; i < ZK_ARRAY_LEN(docs); i++) {
        const char *t = docs[i][1];
        size_t len = strlen(t);
        float vec[512];
        assert_int_equal(llm_embed(k->emb, 1, &t, &len, vec, err), ZK_OK);
        char id[16], sha[65];
        snprintf(id, sizeof id, "doc%zu", i + 1);
        zk_sha256_hex(t, len, sha);
        ret_chunk_in c = {t, len, docs[i][0], 0, 0, 0, (int64_t)len};
        ret_doc_in d = {.ext_id = id, .title = docs[i][0], .sha256 = sha};
        ret_put_status st;
        int64_t docid;
        assert_int_equal(ret_doc_put(k->s, 1, &d, &c, 1, vec, 512, &st, &docid, err), ZK_OK);
    }
    ret_caller_admin(&k->caller);
    ret_search_opts_init(&k->so, NULL);
    k->so.caller = &k->caller;
    k->so.kb = 1;
}

static void kb_close(kb_fixture *k)
{
    ret_store_close(k->s);
    llm_embedder_free(k->emb);
    ret_caller_free(&k->caller);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", k->dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
}

static int text_sink(void *ctx, const char *t, size_t n)
{
    return buf_append(ctx, t, n) != ZK_OK;
}

static void test_ask_pipeline(void **state)
{
    (void)state;
    SKIP_WITHOUT_SERVER();
    char err[ZK_ERRLEN];
    kb_fixture k;
    kb_open(&k);
    llm_providers *p = providers(ONE, NULL);
    llm_answer_opts ao;
    llm_answer_opts_init(&ao, NULL);
    ao.providers = p;
    zk_buf streamed;
    buf_init(&streamed, 1 << 20);
    ao.on_text = text_sink;
    ao.ctx = &streamed;
    /* the model cites the prompt's sources by their prompt numbers; we do
     * not know the retrieval order, so ask with a reply citing [2] then [1] */
    control("{\"chat_chunk\":1,\"chat_reply\":\"Annual leave is fifteen days per year [1]. "
            "Bananas are purple and fly [2]. Bogus [9].\"}");
    llm_result r;
    assert_int_equal(llm_ask(k.s, k.emb, "How many days of annual leave per year?", &k.so, &ao, &r, err), ZK_OK);
    assert_string_equal(r.provider, "local");
    assert_string_equal(buf_cstr(&streamed), r.answer);   /* streamed == final */
    assert_null(strstr(r.answer, "[9]"));
    assert_int_equal(r.ncitations, 2);
    assert_int_equal(r.citations[0].n, 1);
    assert_string_equal(r.citations[0].ext_id, "doc1");    /* best hit = prompt source 1 */
    assert_false(r.citations[0].weak);
    assert_true(r.citations[0].support > 0.8);
    assert_true(r.citations[1].weak);                      /* the banana claim */
    assert_true(r.prompt_tokens > 0);
    assert_string_equal(r.standalone, "How many days of annual leave per year?");
    llm_result_free(&r);

    /* usage recorded for the caller */
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(ret_store_db(k.s), "SELECT requests, prompt_tokens FROM usage "
                                        "WHERE user_name = 'admin' AND provider = 'local'", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    assert_int_equal(sqlite3_column_int(st, 1), 100);
    sqlite3_finalize(st);

    /* gate: nothing relevant → not found, no model call */
    control("{\"reset_stats\":true}");
    buf_reset(&streamed);
    assert_int_equal(llm_ask(k.s, k.emb, "What is the capital of Mongolia?", &k.so, &ao, &r, err), ZK_OK);
    assert_true(r.not_found);
    assert_string_equal(r.answer, LLM_NOT_FOUND_EN);
    assert_string_equal(buf_cstr(&streamed), LLM_NOT_FOUND_EN);
    assert_int_equal(chat_count(), 0);
    llm_result_free(&r);
    /* the same question with the gate lowered reaches the model */
    ao.min_bm25 = 0;
    assert_int_equal(llm_ask(k.s, k.emb, "What is the capital of Mongolia?", &k.so, &ao, &r, err), ZK_OK);
    assert_int_equal(chat_count(), 1);
    llm_result_free(&r);
    ao.min_bm25 = 6;

    /* the model's own not-found reply */
    control("{\"chat_reply\":\"Not found in the knowledge base.\"}");
    assert_int_equal(llm_ask(k.s, k.emb, "How many days of annual leave per year?", &k.so, &ao, &r, err), ZK_OK);
    assert_true(r.not_found);
    assert_int_equal(r.ncitations, 0);
    llm_result_free(&r);

    /* follow-up rewritten by the model */
    control("{\"chat_reply\":\"How must travel expenses be filed?\"}");
    llm_turn hist[1] = {{"How many days of annual leave?", "Fifteen [1]."}};
    ao.history = hist;
    ao.nhistory = 1;
    ao.rewrite_followups = 1;
    assert_int_equal(llm_ask(k.s, k.emb, "and for travel?", &k.so, &ao, &r, err), ZK_OK);
    assert_string_equal(r.standalone, "How must travel expenses be filed?");
    llm_result_free(&r);
    ao.history = NULL;
    ao.nhistory = 0;

    /* rerank failing (closed port): fused order kept, answer still given */
    llm_reranker *rr;
    assert_int_equal(llm_reranker_new("http://127.0.0.1:1", NULL, NULL, 300, 10, &rr, err), ZK_OK);
    ao.reranker = rr;
    control("{\"chat_reply\":\"Fifteen days [1].\"}");
    assert_int_equal(llm_ask(k.s, k.emb, "How many days of annual leave per year?", &k.so, &ao, &r, err), ZK_OK);
    assert_string_equal(r.citations[0].ext_id, "doc1");
    llm_result_free(&r);
    ao.reranker = NULL;
    llm_reranker_free(rr);

    buf_free(&streamed);
    llm_providers_free(p);
    kb_close(&k);
}

static void test_ask_local_only(void **state)
{
    (void)state;
    SKIP_WITHOUT_SERVER();
    char err[ZK_ERRLEN];
    kb_fixture k;
    kb_open(&k);
    llm_providers *p = providers("[llm]\nproviders = cloud\n[llm.cloud]\nbase_url = http://127.0.0.1:PORT/v1\n"
                                 "remote = true\n", NULL);
    llm_answer_opts ao;
    llm_answer_opts_init(&ao, NULL);
    ao.providers = p;
    assert_int_equal(sqlite3_exec(ret_store_db(k.s), "UPDATE kb SET local_only = 1", NULL, NULL, NULL), SQLITE_OK);
    control("{\"chat_reply\":\"should never be used [1].\"}");
    llm_result r;
    assert_int_equal(llm_ask(k.s, k.emb, "How many days of annual leave per year?", &k.so, &ao, &r, err), ZK_OK);
    assert_string_equal(r.provider, "extractive");
    assert_non_null(strstr(r.answer, "fifteen days"));
    assert_int_equal(chat_count(), 0);
    llm_result_free(&r);
    llm_providers_free(p);
    kb_close(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_replay_flavors, reset),
        cmocka_unit_test_setup(test_sse_framing, reset),
        cmocka_unit_test_setup(test_ollama_native, reset),
        cmocka_unit_test_setup(test_fallback_connect_refused, reset),
        cmocka_unit_test_setup(test_first_token_timeout, reset),
        cmocka_unit_test_setup(test_faults_next_provider, reset),
        cmocka_unit_test_setup(test_unauthorized, reset),
        cmocka_unit_test_setup(test_midstream_disconnect, reset),
        cmocka_unit_test_setup(test_cancel, reset),
        cmocka_unit_test_setup(test_local_only, reset),
        cmocka_unit_test_setup(test_rerank, reset),
        cmocka_unit_test_setup(test_ask_pipeline, reset),
        cmocka_unit_test_setup(test_ask_local_only, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
