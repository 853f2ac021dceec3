/* test_extractive.c — unit tests of the extractive answerer
 * (llm/extractive.c): right sentence from the right source with the right
 * marker, renumbering, not-found in both languages, de-duplication of
 * overlapping chunks, the length budget and hostile bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "llm/extractive.h"
#include "utf8.h"

static llm_source S(const char *text)
{
    llm_source s = {text, strlen(text), NULL};
    return s;
}

static size_t count_substr(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

/* The code-point span [a,b) of src as a NUL-terminated copy. */
static void cp_slice(const char *src, size_t a, size_t b, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)src;
    size_t len = strlen(src), i = 0, cp = 0, start = 0, end = len;
    while (i < len) {
        if (cp == a) start = i;
        uint32_t c;
        i += utf8_decode(p + i, len - i, &c);
        cp++;
        if (cp == b) { end = i; break; }
    }
    size_t n = end - start < cap - 1 ? end - start : cap - 1;
    memcpy(out, src + start, n);
    out[n] = '\0';
}

static void answer(const char *q, const llm_source *src, size_t n, const llm_extractive_opts *o,
                   llm_answer *a)
{
    char err[ZK_ERRLEN];
    assert_int_equal(llm_extractive_answer(q, src, n, o, a, err), ZK_OK);
    assert_non_null(a->answer);
    assert_true(utf8_valid(a->answer, strlen(a->answer)));
    printf("  Q: %s\n  A: %s\n", q, a->answer);
}

static void test_english(void **state)
{
    (void)state;
    llm_source src[] = {
        S("Cats are small domesticated carnivores. They sleep a lot during the day."),
        S("Zhiku stores documents in SQLite. Retrieval-augmented generation combines a "
          "retriever with a\n  text generator to answer questions. It was popularised in 2020."),
    };
    llm_answer a;
    answer("What is retrieval-augmented generation?", src, 2, NULL, &a);
    assert_int_equal(a.not_found, 0);
    assert_true(a.ncited >= 1);
    assert_int_equal(a.cited[0], 1);
    assert_non_null(strstr(a.answer, "Retrieval-augmented generation combines a retriever with a "
                                     "text generator to answer questions.[1]"));
    assert_null(strstr(a.answer, "Cats"));
    char span[256];
    cp_slice(src[1].text, a.span_start[0], a.span_end[0], span, sizeof span);
    assert_int_equal(strncmp(span, "Retrieval-augmented generation combines", 39), 0);
    assert_int_equal(span[strlen(span) - 1], '.');
    llm_answer_free(&a);
    llm_answer_free(&a);   /* zeroed: second free is harmless */
}

static void test_chinese(void **state)
{
    (void)state;
    llm_source src[] = {
        S("今天天气很好。我们去公园散步吧！"),
        S("本系统支持多种文件。知识库支持PDF、Word和Markdown等文件格式的导入。导入后会自动建立索引。"),
        S("检索增强生成（RAG）是一种把检索和生成模型结合起来的技术。它能减少模型的幻觉。"),
    };
    llm_answer a;
    answer("检索增强生成是什么？", src, 3, NULL, &a);
    assert_int_equal(a.not_found, 0);
    assert_int_equal(a.cited[0], 2);
    assert_non_null(strstr(a.answer, "检索增强生成（RAG）是一种把检索和生成模型结合起来的技术。[1]"));
    assert_null(strstr(a.answer, "天气"));
    assert_null(strstr(a.answer, " "));   /* Chinese sentences are joined without spaces */
    char span[256];
    cp_slice(src[2].text, a.span_start[0], a.span_end[0], span, sizeof span);
    assert_string_equal(span, "检索增强生成（RAG）是一种把检索和生成模型结合起来的技术。");
    llm_answer_free(&a);

    answer("知识库支持哪些文件格式？", src, 3, NULL, &a);
    assert_int_equal(a.not_found, 0);
    assert_int_equal(a.cited[0], 1);
    assert_non_null(strstr(a.answer, "知识库支持PDF、Word和Markdown等文件格式的导入。[1]"));
    llm_answer_free(&a);
}

static void test_renumbering(void **state)
{
    (void)state;
    llm_source src[] = {
        S("The weather today is sunny and warm."),
        S("Bananas are rich in potassium."),
        S("The FAISS index is rebuilt from SQLite when the vector file is missing."),
    };
    llm_answer a;
    answer("When is the FAISS index rebuilt?", src, 3, NULL, &a);
    assert_int_equal(a.not_found, 0);
    assert_int_equal(a.ncited, 1);
    assert_int_equal(a.cited[0], 2);
    assert_non_null(strstr(a.answer, "[1]"));
    assert_null(strstr(a.answer, "[3]"));
    assert_null(strstr(a.answer, "[2]"));
    llm_answer_free(&a);
}

/* Two relevant sources: answer ordered by source rank, markers by first use. */
static void test_order_and_markers(void **state)
{
    (void)state;
    llm_source src[] = {
        S("Nothing here about it."),
        S("The reranker reorders retrieved chunks by relevance. Unrelated filler text here."),
        S("A reranker model scores each retrieved chunk against the query."),
    };
    llm_answer a;
    answer("How does the reranker score retrieved chunks?", src, 3, NULL, &a);
    assert_int_equal(a.not_found, 0);
    assert_int_equal(a.ncited, 2);
    assert_int_equal(a.cited[0], 1);
    assert_int_equal(a.cited[1], 2);
    const char *p1 = strstr(a.answer, "[1]"), *p2 = strstr(a.answer, "[2]");
    assert_non_null(p1);
    assert_non_null(p2);
    assert_true(p1 < p2);
    assert_null(strstr(a.answer, "filler"));
    assert_non_null(strstr(a.answer, "relevance.[1] A reranker"));   /* English: one space */
    llm_answer_free(&a);
}

static void test_not_found(void **state)
{
    (void)state;
    llm_source src[] = {
        S("Cats are small domesticated carnivores."),
        S("今天天气很好，我们去公园散步吧。"),
    };
    llm_answer a;
    answer("How do penguins navigate underwater?", src, 2, NULL, &a);
    assert_int_equal(a.not_found, 1);
    assert_string_equal(a.answer, "Not found in the knowledge base.");
    assert_int_equal(a.ncited, 0);
    llm_answer_free(&a);

    answer("量子计算机的原理是什么？", src, 2, NULL, &a);
    assert_int_equal(a.not_found, 1);
    assert_string_equal(a.answer, "知识库中没有找到与该问题相关的内容。");
    assert_int_equal(a.ncited, 0);
    llm_answer_free(&a);

    answer("What is the answer?", NULL, 0, NULL, &a);   /* no sources */
    assert_int_equal(a.not_found, 1);
    assert_string_equal(a.answer, "Not found in the knowledge base.");
    llm_answer_free(&a);

    answer("这是什么？", src, 2, NULL, &a);   /* only question words */
    assert_int_equal(a.not_found, 1);
    llm_answer_free(&a);

    char err[ZK_ERRLEN];
    assert_int_equal(llm_extractive_answer(NULL, src, 2, NULL, &a, err), ZK_INVALID);
    assert_int_equal(llm_extractive_answer("q", src, 2, NULL, NULL, err), ZK_INVALID);
}

static void test_duplicates(void **state)
{
    (void)state;
    /* chunks overlap: the shared sentence appears in both */
    llm_source src[] = {
        S("Chunks are split at paragraph boundaries. Chunk overlap keeps context between "
          "neighbouring chunks."),
        S("Chunk overlap keeps context between neighbouring chunks. Each chunk is embedded "
          "separately."),
    };
    llm_extractive_opts o;
    llm_extractive_opts_default(&o);
    o.max_sentences = 3;
    llm_answer a;
    answer("What does chunk overlap keep between neighbouring chunks?", src, 2, &o, &a);
    assert_int_equal(a.not_found, 0);
    assert_int_equal(count_substr(a.answer, "Chunk overlap keeps context"), 1);
    llm_answer_free(&a);
}

static void test_max_chars(void **state)
{
    (void)state;
    llm_source src[] = {
        S("The builtin embedder hashes words, word bigrams and character n-grams into a "
          "fixed number of dimensions with signed hashing. The builtin embedder weights "
          "every hashed feature sublinearly and normalises the vector to unit length. "
          "The builtin embedder needs no model download and no network access at all."),
    };
    llm_extractive_opts o;
    llm_extractive_opts_default(&o);
    o.max_chars = 150;
    llm_answer a;
    answer("How does the builtin embedder work?", src, 1, &o, &a);
    assert_int_equal(a.not_found, 0);
    assert_true(utf8_count(a.answer, strlen(a.answer)) <= 150);
    assert_true(count_substr(a.answer, "[1]") >= 1);
    llm_answer_free(&a);

    /* a budget smaller than the best sentence: cut with an ellipsis */
    o.max_chars = 40;
    answer("How does the builtin embedder work?", src, 1, &o, &a);
    assert_true(utf8_count(a.answer, strlen(a.answer)) <= 40);
    assert_non_null(strstr(a.answer, "…[1]"));
    llm_answer_free(&a);

    o.max_chars = 30;
    answer("知识库支持哪些文件格式？", (llm_source[]){S("知识库支持PDF、Word和Markdown等文件格式的导入，"
                                               "也支持网页和纯文本文件格式。")}, 1, &o, &a);
    assert_true(utf8_count(a.answer, strlen(a.answer)) <= 30);
    llm_answer_free(&a);
}

static void test_sentence_splitting(void **state)
{
    (void)state;
    llm_source src[] = {
        S("Intro line.\nPi is approximately 3.14 and it is\n\t irrational. See example.com "
          "for more. He said \"the quoted sentence ends here.\" Next one."),
        S("他说：「这是被引用的句子。」然后继续。"),
    };
    llm_answer a;
    answer("What is pi approximately?", src, 1, NULL, &a);
    assert_int_equal(a.not_found, 0);
    assert_non_null(strstr(a.answer, "Pi is approximately 3.14 and it is irrational.[1]"));
    llm_answer_free(&a);

    answer("Which sentence is quoted?", src, 1, NULL, &a);
    assert_non_null(strstr(a.answer, "He said \"the quoted sentence ends here.\"[1]"));
    llm_answer_free(&a);

    answer("被引用的句子是什么？", src, 2, NULL, &a);
    assert_int_equal(a.cited[0], 1);
    assert_non_null(strstr(a.answer, "他说：「这是被引用的句子。」[1]"));
    llm_answer_free(&a);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    static const char bad[] = "\xff\xfe garbage \xc3( bytes. The vector index uses FAISS "
                              "\xe4\xb8 for \xed\xa0\x80 search.\xf0\x9f";
    llm_source src[] = {{bad, sizeof bad - 1, NULL}, S("Unrelated text.")};
    llm_answer a;
    answer("Which library does the vector index use?", src, 2, NULL, &a);
    assert_int_equal(a.not_found, 0);
    assert_int_equal(a.cited[0], 0);
    assert_non_null(strstr(a.answer, "FAISS"));
    llm_answer_free(&a);

    /* random bytes must not crash */
    unsigned char rnd[3000];
    uint32_t x = 4242;
    for (int round = 0; round < 30; round++) {
        for (size_t i = 0; i < sizeof rnd; i++) {
            x = x * 1103515245u + 12345u;
            rnd[i] = (unsigned char)(x >> 16);
        }
        llm_source r = {(const char *)rnd, sizeof rnd, NULL};
        char err[ZK_ERRLEN];
        assert_int_equal(llm_extractive_answer("random bytes a b c 中文", &r, 1, NULL, &a, err),
                         ZK_OK);
        assert_true(utf8_valid(a.answer, strlen(a.answer)));
        llm_answer_free(&a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_english),
        cmocka_unit_test(test_chinese),
        cmocka_unit_test(test_renumbering),
        cmocka_unit_test(test_order_and_markers),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_max_chars),
        cmocka_unit_test(test_sentence_splitting),
        cmocka_unit_test(test_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
