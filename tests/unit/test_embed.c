/* test_embed.c — unit tests of the builtin hashed-feature embedder
 * (llm/embed.c): determinism, unit norm, zero vectors, lexical similarity
 * in English and Chinese, dimension variants, hostile bytes, and a
 * throughput printout on synthetic 500-character chunks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/embed.h"
#include "llm/terms.h"
#include "utf8.h"
#include "utf8.h"

static llm_embedder *mk(int dim)
{
    char err[ZK_ERRLEN];
    llm_embedder *e = NULL;
    assert_int_equal(llm_embedder_builtin_new(dim, &e, err), ZK_OK);
    assert_non_null(e);
    return e;
}

static void embed1(llm_embedder *e, const char *s, float *v)
{
    char err[ZK_ERRLEN];
    size_t len = strlen(s);
    assert_int_equal(llm_embed(e, 1, &s, &len, v, err), ZK_OK);
}

static double dot(const float *a, const float *b, int dim)
{
    double d = 0;
    for (int i = 0; i < dim; i++) d += (double)a[i] * b[i];
    return d;
}

static double cosine(llm_embedder *e, const char *a, const char *b)
{
    int dim = llm_embedder_dim(e);
    float *va = calloc((size_t)dim, sizeof *va), *vb = calloc((size_t)dim, sizeof *vb);
    embed1(e, a, va);
    embed1(e, b, vb);
    double c = dot(va, vb, dim);
    free(va);
    free(vb);
    return c;
}

static void test_new_and_props(void **state)
{
    (void)state;
    char err[ZK_ERRLEN];
    llm_embedder *e = NULL;
    assert_int_equal(llm_embedder_builtin_new(7, &e, err), ZK_INVALID);
    assert_null(e);
    assert_int_equal(llm_embedder_builtin_new(0, &e, err), ZK_INVALID);
    assert_int_equal(llm_embedder_builtin_new(-5, &e, err), ZK_INVALID);
    e = mk(256);
    assert_string_equal(llm_embedder_model(e), "builtin-hash-v2");
    assert_int_equal(llm_embedder_dim(e), 256);
    llm_embedder_free(e);
    llm_embedder_free(NULL);
}

static void test_deterministic_and_norm(void **state)
{
    (void)state;
    llm_embedder *e1 = mk(256), *e2 = mk(256);
    const char *texts[] = {
        "Retrieval-augmented generation combines search with a language model.",
        "检索增强生成（RAG）把检索和生成结合起来，回答基于知识库的问题。",
        "Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ １２３ mixed 中文 and English",
        "a",
    };
    float a[256], b[256];
    for (size_t i = 0; i < 4; i++) {
        embed1(e1, texts[i], a);
        embed1(e2, texts[i], b);
        assert_memory_equal(a, b, sizeof a);
        assert_true(fabs(dot(a, a, 256) - 1.0) < 1e-4);
    }
    /* a batch gives the same rows as single calls; lens NULL means strlen */
    float batch[4 * 256];
    char err[ZK_ERRLEN];
    assert_int_equal(llm_embed(e1, 4, texts, NULL, batch, err), ZK_OK);
    for (size_t i = 0; i < 4; i++) {
        embed1(e1, texts[i], a);
        assert_memory_equal(a, batch + i * 256, sizeof a);
    }
    /* width/case folding: full-width and upper case equal their plain forms */
    assert_true(cosine(e1, "ＲＡＧ Ｓｅａｒｃｈ", "rag search") > 0.999);
    llm_embedder_free(e1);
    llm_embedder_free(e2);
}

static void test_zero_vectors(void **state)
{
    (void)state;
    llm_embedder *e = mk(64);
    const char *texts[] = {"", "   \n\t ", "!!! ,,, ... 。。。？！ —— ()", NULL};
    size_t lens[] = {0, 6, strlen(texts[2]), 0};
    float v[4 * 64];
    char err[ZK_ERRLEN];
    for (size_t i = 0; i < ZK_ARRAY_LEN(v); i++) v[i] = 42.0f;
    assert_int_equal(llm_embed(e, 4, texts, lens, v, err), ZK_OK);
    for (size_t i = 0; i < ZK_ARRAY_LEN(v); i++) assert_true(v[i] == 0.0f);
    /* n == 0 is a no-op; NULL arguments are errors, not crashes */
    assert_int_equal(llm_embed(e, 0, NULL, NULL, NULL, err), ZK_OK);
    assert_int_equal(llm_embed(e, 1, NULL, NULL, v, err), ZK_INVALID);
    assert_int_equal(llm_embed(NULL, 1, texts, lens, v, err), ZK_INVALID);
    llm_embedder_free(e);
}

static void test_similarity_english(void **state)
{
    (void)state;
    llm_embedder *e = mk(256);
    const char *q = "How do I configure the embedding dimension?";
    double rel = cosine(e, q, "The embedding dimension is configured in the config file.");
    double unrel = cosine(e, q, "Penguins live in the southern hemisphere and eat fish.");
    printf("  en: related %.3f unrelated %.3f\n", rel, unrel);
    assert_true(rel > unrel + 0.2);
    /* morphology via stemming and character n-grams */
    double morph = cosine(e, "indexing documents quickly", "the document indexer");
    double other = cosine(e, "indexing documents quickly", "weather forecast for tomorrow");
    assert_true(morph > other + 0.2);
    llm_embedder_free(e);
}

static void test_similarity_chinese(void **state)
{
    (void)state;
    llm_embedder *e = mk(256);
    const char *q = "知识库支持哪些文件格式？";
    double rel = cosine(e, q, "本知识库支持PDF、Word和Markdown等文件格式的导入。");
    double unrel = cosine(e, q, "今天天气很好，我们去公园散步吧。");
    printf("  zh: related %.3f unrelated %.3f\n", rel, unrel);
    assert_true(rel > unrel + 0.2);
    double mixed = cosine(e, "检索增强生成 RAG 系统", "RAG（检索增强生成）系统的原理");
    assert_true(mixed > 0.5);
    llm_embedder_free(e);
}

static void test_dims(void **state)
{
    (void)state;
    int dims[] = {8, 64, 384};
    for (size_t d = 0; d < ZK_ARRAY_LEN(dims); d++) {
        llm_embedder *e = mk(dims[d]);
        float *v = calloc((size_t)dims[d], sizeof *v), *w = calloc((size_t)dims[d], sizeof *w);
        embed1(e, "vector dimension test 向量维度测试 with several words", v);
        embed1(e, "vector dimension test 向量维度测试 with several words", w);
        assert_memory_equal(v, w, (size_t)dims[d] * sizeof *v);
        assert_true(fabs(dot(v, v, dims[d]) - 1.0) < 1e-4);
        free(v);
        free(w);
        llm_embedder_free(e);
    }
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    llm_embedder *e = mk(64);
    float v[64];
    char err[ZK_ERRLEN];
    const char bad[] = "abc\xff\xfe\xc3(\xe4\xb8 \xf0\x9f\x98 \xed\xa0\x80 \xc0\xaf 中\x80文 word";
    const char *t = bad;
    size_t len = sizeof bad - 1;
    assert_int_equal(llm_embed(e, 1, &t, &len, v, err), ZK_OK);
    assert_true(fabs(dot(v, v, 64) - 1.0) < 1e-4);
    /* random bytes, truncated multibyte sequence at the end */
    unsigned char rnd[1000];
    uint32_t x = 12345;
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < sizeof rnd; i++) {
            x = x * 1103515245u + 12345u;
            rnd[i] = (unsigned char)(x >> 16);
        }
        t = (const char *)rnd;
        len = sizeof rnd;
        assert_int_equal(llm_embed(e, 1, &t, &len, v, err), ZK_OK);
        double n = dot(v, v, 64);
        assert_true(n == 0.0 || fabs(n - 1.0) < 1e-4);
    }
    const char trunc[] = "end \xe4\xb8";
    t = trunc;
    len = sizeof trunc - 1;
    assert_int_equal(llm_embed(e, 1, &t, &len, v, err), ZK_OK);
    llm_embedder_free(e);
}

/* A long text with many distinct features forces the table to grow. */
static void test_long_text(void **state)
{
    (void)state;
    llm_embedder *e = mk(128);
    size_t n = 200000;
    char *s = malloc(n + 16);
    size_t len = 0;
    uint32_t x = 7;
    while (len < n) {
        x = x * 1103515245u + 12345u;
        len += (size_t)sprintf(s + len, "w%u ", (x >> 8) % 100000);
    }
    float v[128];
    char err[ZK_ERRLEN];
    const char *t = s;
    assert_int_equal(llm_embed(e, 1, &t, &len, v, err), ZK_OK);
    assert_true(fabs(dot(v, v, 128) - 1.0) < 1e-4);
    free(s);
    llm_embedder_free(e);
}

/* ---- throughput ---------------------------------------------------------- */

static const char *en_words[] = {
    "retrieval", "augmented", "generation", "knowledge", "base", "document", "index",
    "the", "of", "and", "search", "vector", "embedding", "chunk", "sentence", "model",
    "answer", "question", "citation", "server", "configuration", "performance", "is",
    "a", "to", "with", "quickly", "running", "stored", "files",
};
static const char zh_chars[] =
    "知识库检索增强生成文档索引向量嵌入句子模型回答问题引用服务器配置性能的是在和了有我们"
    "这个支持格式导入系统原理数据查询结果用户权限安全中文分词";

static char *gen_chunk(uint32_t *x, int chinese, size_t *out_len)
{
    char *s = malloc(2048);
    size_t len = 0, cps = 0;
    size_t nzh = utf8_count(zh_chars, sizeof zh_chars - 1);
    while (cps < 500) {
        *x = *x * 1103515245u + 12345u;
        if (chinese && (*x >> 28) != 0) {
            size_t k = (*x >> 8) % nzh;
            memcpy(s + len, zh_chars + 3 * k, 3);   /* all 3-byte characters */
            len += 3;
            cps++;
            if (((*x >> 4) & 31) == 0) { memcpy(s + len, "。", 3); len += 3; cps++; }
        } else {
            const char *w = en_words[(*x >> 8) % ZK_ARRAY_LEN(en_words)];
            size_t wl = strlen(w);
            memcpy(s + len, w, wl);
            len += wl;
            s[len++] = ((*x >> 4) & 15) == 0 ? '.' : ' ';
            cps += wl + 1;
        }
    }
    *out_len = len;
    return s;
}

static void test_throughput(void **state)
{
    (void)state;
    enum { N = 4000, DIM = 256 };
    llm_embedder *e = mk(DIM);
    char **texts = malloc(N * sizeof *texts);
    size_t *lens = malloc(N * sizeof *lens), chars = 0;
    uint32_t x = 99;
    for (int i = 0; i < N; i++) {
        texts[i] = gen_chunk(&x, i % 2, &lens[i]);
        chars += utf8_count(texts[i], lens[i]);
    }
    float *out = malloc((size_t)N * DIM * sizeof *out);
    char err[ZK_ERRLEN];
    double t0 = zk_now();
    for (int i = 0; i < N; i += 32) {
        size_t n = N - i < 32 ? (size_t)(N - i) : 32;
        assert_int_equal(llm_embed(e, n, (const char *const *)texts + i, lens + i,
                                   out + (size_t)i * DIM, err), ZK_OK);
    }
    double dt = zk_now() - t0;
    if (dt <= 0) dt = 1e-9;
    printf("  builtin embedder: %d chunks (%.0f chars avg, zh/en mix) in %.3f s = %.0f chunks/s, "
           "%.2f M chars/s (one core)\n",
           N, (double)chars / N, dt, N / dt, chars / dt / 1e6);
    for (int i = 0; i < N; i++) free(texts[i]);
    free(texts);
    free(lens);
    free(out);
    llm_embedder_free(e);
}

/* The stop lists' lookups (a hash table and a bitmap built once): every
 * listed word and character is found, near misses are not. */
static void to_cps(const char *w, uint32_t *cp, size_t *n)
{
    *n = 0;
    for (size_t i = 0; w[i];) {
        uint32_t c;
        i += utf8_decode((const unsigned char *)w + i, strlen(w) - i, &c);
        cp[(*n)++] = c;
    }
}

static void test_stop_lists(void **state)
{
    (void)state;
    static const char *const yes[] = {"a", "the", "your", "whose", "explain", "works", "about"};
    static const char *const no[] = {"", "b", "thee", "th", "yours", "whos", "explains", "river", "The", "abcdefghijkl"};
    uint32_t cp[64];
    size_t n;
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        to_cps(yes[i], cp, &n);
        assert_true(llm__is_stopword(cp, n));
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        to_cps(no[i], cp, &n);
        assert_false(llm__is_stopword(cp, n));
    }
    const char *stops = "的了是在和与及或而也就都被把对从以为于之其这那个有们我你他她它着过吗呢吧啊么什哪谁几多少何怎";
    size_t hits = 0;
    for (uint32_t c = 0x4e00; c <= 0x9fff; c++) hits += (size_t)llm__cjk_is_stopchar(c);
    to_cps(stops, cp, &n);
    assert_int_equal(n, 46);
    for (size_t i = 0; i < n; i++) assert_true(llm__cjk_is_stopchar(cp[i]));
    assert_int_equal(hits, 46);
    assert_false(llm__cjk_is_stopchar('a'));
    assert_false(llm__cjk_is_stopchar(0x4dff));
    assert_false(llm__cjk_is_stopchar(0xa000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_and_props),
        cmocka_unit_test(test_deterministic_and_norm),
        cmocka_unit_test(test_zero_vectors),
        cmocka_unit_test(test_similarity_english),
        cmocka_unit_test(test_similarity_chinese),
        cmocka_unit_test(test_dims),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_long_text),
        cmocka_unit_test(test_throughput),
        cmocka_unit_test(test_stop_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
