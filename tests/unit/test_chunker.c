/* test_chunker.c — chunk boundaries (Chinese and English sentences, numbers,
 * paragraphs), size limits, overlap, offsets (every chunk's text must equal
 * the document text between its code-point offsets), multi-byte safety,
 * empty input, the chunk cap, and speed on 100 KB and 2 MB inputs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "indexer/chunker.h"
#include "utf8.h"

static idx_parsed *doc_of(const char *const *texts, const char *const *headings, size_t n)
{
    idx_parsed *d = idx__parsed_new();
    assert_non_null(d);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(idx__add_block(d, texts[i], strlen(texts[i]),
                                        headings ? headings[i] : NULL, 0), ZK_OK);
    return d;
}

/* Checks every invariant of the chunk list against the document text. */
static void check_chunks(const idx_parsed *d, const idx_chunk *c, size_t n, size_t target)
{
    /* document text = blocks joined with "\n\n", and a code-point index */
    size_t total = 0;
    for (size_t b = 0; b < d->nblocks; b++) total += d->blocks[b].len + 2;
    char *text = malloc(total + 1);
    size_t tl = 0;
    for (size_t b = 0; b < d->nblocks; b++) {
        if (b) { memcpy(text + tl, "\n\n", 2); tl += 2; }
        memcpy(text + tl, d->blocks[b].text, d->blocks[b].len);
        tl += d->blocks[b].len;
    }
    text[tl] = '\0';
    size_t ncp = utf8_count(text, tl);
    size_t *at = malloc((ncp + 1) * sizeof *at);
    size_t i = 0, k = 0;
    while (i < tl) {
        uint32_t cp;
        at[k++] = i;
        i += utf8_decode((const unsigned char *)text + i, tl - i, &cp);
    }
    at[k] = tl;

    for (size_t j = 0; j < n; j++) {
        assert_int_equal(c[j].ordinal, (int)j);
        assert_true(c[j].start < c[j].end);
        assert_true(c[j].end <= ncp);
        size_t b0 = at[c[j].start], b1 = at[c[j].end];
        assert_int_equal(c[j].len, b1 - b0);
        assert_int_equal(strlen(c[j].text), c[j].len);
        assert_memory_equal(c[j].text, text + b0, b1 - b0);
        assert_true(utf8_valid(c[j].text, c[j].len));
        assert_true(c[j].end - c[j].start <= target);
        assert_false(c[j].text[0] == ' ' || c[j].text[0] == '\n');
        assert_false(c[j].text[c[j].len - 1] == ' ' || c[j].text[c[j].len - 1] == '\n');
        if (j) assert_true(c[j].start > c[j - 1].start);
    }
    free(at);
    free(text);
}

static idx_chunk_opts opts(size_t target, size_t overlap)
{
    idx_chunk_opts o;
    idx_chunk_opts_default(&o);
    o.target_chars = target;
    o.overlap_chars = overlap;
    return o;
}

static int ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

static void test_defaults_and_empty(void **state)
{
    (void)state;
    idx_chunk_opts o;
    idx_chunk_opts_default(&o);
    assert_int_equal(o.target_chars, 500);
    assert_int_equal(o.overlap_chars, 80);
    assert_int_equal(o.max_chunks, 100000);

    idx_parsed *d = idx__parsed_new();
    idx_chunk *c = (idx_chunk *)1;
    size_t n = 7;
    char err[ZK_ERRLEN];
    assert_int_equal(idx_chunk_doc(d, &o, &c, &n, err), ZK_OK);
    assert_int_equal(n, 0);
    idx_chunks_free(c, n);
    /* whitespace-only blocks add nothing */
    assert_int_equal(idx__add_block(d, "  \n\n \t", 6, NULL, 0), ZK_OK);
    assert_int_equal(d->nblocks, 0);
    assert_int_equal(idx_chunk_doc(d, NULL, &c, &n, err), ZK_OK);
    assert_int_equal(n, 0);
    idx_chunks_free(c, n);
    idx_chunks_free(NULL, 0);
    idx_parsed_free(d);
}

static void test_short_doc_one_chunk(void **state)
{
    (void)state;
    const char *t[] = {"  Hello world. 你好。  "};
    idx_parsed *d = doc_of(t, NULL, 1);
    idx_chunk_opts o = opts(500, 80);
    idx_chunk *c;
    size_t n;
    char err[ZK_ERRLEN];
    assert_int_equal(idx_chunk_doc(d, &o, &c, &n, err), ZK_OK);
    assert_int_equal(n, 1);
    assert_string_equal(c[0].text, "Hello world. 你好。");
    assert_int_equal(c[0].start, 2);
    assert_null(c[0].heading);
    check_chunks(d, c, n, 500);
    idx_chunks_free(c, n);
    idx_parsed_free(d);
}

static void test_chinese_sentences(void **state)
{
    (void)state;
    const char *sent[] = {"今天天气很好。", "我们去公园散步吧！", "你觉得怎么样？", "这个方案可行；",
                          "然后呢……", "他说：「明天再来。」", "好的（已确认）。"};
    char buf[8192] = "";
    for (int r = 0; r < 12; r++)
        for (size_t i = 0; i < sizeof sent / sizeof *sent; i++) strcat(buf, sent[i]);
    const char *t[] = {buf};
    idx_parsed *d = doc_of(t, NULL, 1);
    idx_chunk_opts o = opts(40, 10);
    idx_chunk *c;
    size_t n;
    char err[ZK_ERRLEN];
    assert_int_equal(idx_chunk_doc(d, &o, &c, &n, err), ZK_OK);
    assert_true(n > 5);
    check_chunks(d, c, n, 40);
    for (size_t j = 0; j < n; j++) {
        const char *s = c[j].text;
        size_t l = c[j].len;
        /* every chunk is whole sentences: ends on a terminator (with closer) */
        assert_true(ends_with(s, l, "。") || ends_with(s, l, "！") || ends_with(s, l, "？") ||
                    ends_with(s, l, "；") || ends_with(s, l, "…") || ends_with(s, l, "」") ||
                    ends_with(s, l, "）。"));
        /* and starts on a sentence start: never on a closer */
        assert_false(strncmp(s, "」", 3) == 0 || strncmp(s, "）", 3) == 0);
        /* overlap: each chunk after the first re-uses text of its predecessor */
        if (j) assert_true(c[j].start < c[j - 1].end);
    }
    idx_chunks_free(c, n);
    idx_parsed_free(d);
}

static void test_english_sentences_and_numbers(void **state)
{
    (void)state;
    char buf[16384] = "";
    for (int r = 0; r < 20; r++)
        strcat(buf, "Pi is about 3.14 in value. Is that right? Yes! Use tools, e.g. a "
                    "calculator, for more digits. Version 2.0.1 shipped. ");
    const char *t[] = {buf};
    idx_parsed *d = doc_of(t, NULL, 1);
    idx_chunk_opts o = opts(120, 50);
    idx_chunk *c;
    size_t n;
    char err[ZK_ERRLEN];
    assert_int_equal(idx_chunk_doc(d, &o, &c, &n, err), ZK_OK);
    assert_true(n > 10);
    check_chunks(d, c, n, 120);
    int overlapped = 0;
    for (size_t j = 0; j < n; j++) {
        const char *s = c[j].text;
        size_t l = c[j].len;
        assert_true(s[l - 1] == '.' || s[l - 1] == '!' || s[l - 1] == '?');
        assert_false(ends_with(s, l, " 3.") || ends_with(s, l, "e.g.") ||
                     ends_with(s, l, "e.") || ends_with(s, l, "2.0."));
        assert_false(strncmp(s, "14", 2) == 0 || strncmp(s, "g.", 2) == 0 ||
                     strncmp(s, "a calc", 6) == 0 || strncmp(s, "0.1", 3) == 0);
        assert_true(s[0] >= 'A' && s[0] <= 'Z');
        if (j && c[j].start < c[j - 1].end) overlapped++;
    }
    printf("# %d of %zu chunks overlap\n", overlapped, n);
    assert_true(overlapped >= (int)n / 2);
    idx_chunks_free(c, n);
    idx_parsed_free(d);
}

static void test_paragraphs_preferred(void **state)
{
    (void)state;
    /* paragraph 1 ~ 70 chars, paragraph 2 ~ 70 chars: with target 100 the cut
     * must fall between the paragraphs, not after a sentence inside one */
    const char *t[] = {"First paragraph one. It has two sentences, roughly seventy.\n\n"
                       "Second paragraph here. Also two sentences in this one, okay.\n\n"
                       "Third."};
    idx_parsed *d = doc_of(t, NULL, 1);
    idx_chunk_opts o = opts(100, 0);
    idx_chunk *c;
    size_t n;
    char err[ZK_ERRLEN];
    assert_int_equal(idx_chunk_doc(d, &o, &c, &n, err), ZK_OK);
    check_chunks(d, c, n, 100);
    assert_int_equal(n, 2);
    assert_string_equal(c[0].text, "First paragraph one. It has two sentences, roughly seventy.");
    assert_string_equal(c[1].text,
                        "Second paragraph here. Also two sentences in this one, okay.\n\nThird.");
    idx_chunks_free(c, n);
    idx_parsed_free(d);
}

static void test_blocks_offsets_headings(void **state)
{
    (void)state;
    const char *t[] = {"第一节的内容。很短。", "Second block text. More text here.", "第三块"};
    const char *h[] = {"指南 > 安装", NULL, "Guide > Use"};
    idx_parsed *d = doc_of(t, h, 3);
    idx_chunk_opts o = opts(500, 80);
    idx_chunk *c;
    size_t n;
    char err[ZK_ERRLEN];
    assert_int_equal(idx_chunk_doc(d, &o, &c, &n, err), ZK_OK);
    assert_int_equal(n, 3);   /* chunks never cross blocks */
    check_chunks(d, c, n, 500);
    assert_string_equal(c[0].heading, "指南 > 安装");
    assert_null(c[1].heading);
    assert_string_equal(c[2].heading, "Guide > Use");
    assert_int_equal(c[0].start, 0);
    assert_int_equal(c[0].end, 10);
    assert_int_equal(c[1].start, 12);
    assert_int_equal(c[2].start, 12 + 34 + 2);
    idx_chunks_free(c, n);
    idx_parsed_free(d);
}

static void test_oversized_multibyte_hard_cut(void **state)
{
    (void)state;
    /* 3000 CJK characters, no punctuation or spaces: hard cuts only */
    size_t nch = 3000;
    char *buf = malloc(nch * 4 + 1), *p = buf;
    for (size_t i = 0; i < nch; i++) {
        uint32_t cp = 0x4E00 + (uint32_t)(i % 500);
        if (i % 7 == 0) cp = 0x20000 + (uint32_t)i;  /* 4-byte characters too */
        p += utf8_encode(cp, p);
    }
    *p = '\0';
    const char *t[] = {buf};
    idx_parsed *d = doc_of(t, NULL, 1);
    idx_chunk_opts o = opts(100, 20);
    idx_chunk *c;
    size_t n;
    char err[ZK_ERRLEN];
    assert_int_equal(idx_chunk_doc(d, &o, &c, &n, err), ZK_OK);
    check_chunks(d, c, n, 100);
    assert_true(n >= 30);
    /* full coverage, with overlap */
    assert_int_equal(c[0].start, 0);
    assert_int_equal(c[n - 1].end, nch);
    for (size_t j = 1; j < n; j++) assert_true(c[j].start < c[j - 1].end);
    idx_chunks_free(c, n);
    idx_parsed_free(d);
    free(buf);
}

static void test_long_sentence_cut_at_space(void **state)
{
    (void)state;
    char buf[8192] = "";
    for (int i = 0; i < 300; i++) strcat(buf, "word ");
    const char *t[] = {buf};
    idx_parsed *d = doc_of(t, NULL, 1);
    idx_chunk_opts o = opts(64, 12);
    idx_chunk *c;
    size_t n;
    char err[ZK_ERRLEN];
    assert_int_equal(idx_chunk_doc(d, &o, &c, &n, err), ZK_OK);
    check_chunks(d, c, n, 64);
    for (size_t j = 0; j < n; j++) {
        assert_true(strncmp(c[j].text, "word", 4) == 0);
        assert_true(ends_with(c[j].text, c[j].len, "word"));
    }
    idx_chunks_free(c, n);
    idx_parsed_free(d);
}

static void test_max_chunks(void **state)
{
    (void)state;
    char buf[4096] = "";
    for (int i = 0; i < 100; i++) strcat(buf, "Sentence number here. ");
    const char *t[] = {buf};
    idx_parsed *d = doc_of(t, NULL, 1);
    idx_chunk_opts o = opts(30, 0);
    o.max_chunks = 10;
    idx_chunk *c = (idx_chunk *)1;
    size_t n = 5;
    char err[ZK_ERRLEN] = "";
    assert_int_equal(idx_chunk_doc(d, &o, &c, &n, err), ZK_TOOBIG);
    assert_null(c);
    assert_int_equal(n, 0);
    assert_true(strlen(err) > 0);
    idx_parsed_free(d);
}

static void test_speed_100k(void **state)
{
    (void)state;
    size_t cap = 110 * 1024;
    char *buf = malloc(cap + 256);
    size_t len = 0;
    const char *s1 = "检索增强生成把文档切成小块，再按相关度取回。";
    const char *s2 = "Chunks are packed greedily up to the target size. ";
    for (int i = 0; len < 100 * 1024; i++) {
        const char *s = (i % 3) ? s1 : s2;
        memcpy(buf + len, s, strlen(s));
        len += strlen(s);
        if (i % 9 == 8) { memcpy(buf + len, "\n\n", 2); len += 2; }
    }
    buf[len] = '\0';
    const char *t[] = {buf};
    idx_parsed *d = doc_of(t, NULL, 1);
    idx_chunk_opts o;
    idx_chunk_opts_default(&o);
    idx_chunk *c;
    size_t n;
    char err[ZK_ERRLEN];
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        double t0 = zk_now();
        assert_int_equal(idx_chunk_doc(d, &o, &c, &n, err), ZK_OK);
        double dt = zk_now() - t0;
        if (dt < best) best = dt;
        if (r < 4) idx_chunks_free(c, n);
    }
    printf("# 100 KB: %zu chunks in %.3f ms\n", n, best * 1e3);
    check_chunks(d, c, n, 500);
    assert_true(best < 0.05);   /* ~0.3 ms optimised; generous for sanitizers */
    idx_chunks_free(c, n);
    idx_parsed_free(d);
    free(buf);
}

static void test_2mb_single_line(void **state)
{
    (void)state;
    size_t len = 2 * 1024 * 1024;
    char *buf = malloc(len + 1);
    for (size_t i = 0; i < len; i++) buf[i] = (char)('a' + i % 26);
    buf[len] = '\0';
    const char *t[] = {buf};
    idx_parsed *d = doc_of(t, NULL, 1);
    idx_chunk_opts o;
    idx_chunk_opts_default(&o);
    idx_chunk *c;
    size_t n;
    char err[ZK_ERRLEN];
    double t0 = zk_now();
    assert_int_equal(idx_chunk_doc(d, &o, &c, &n, err), ZK_OK);
    double dt = zk_now() - t0;
    printf("# 2 MB line: %zu chunks in %.1f ms\n", n, dt * 1e3);
    assert_true(dt < 2.0);
    check_chunks(d, c, n, 500);
    assert_int_equal(c[0].start, 0);
    assert_int_equal(c[n - 1].end, len);
    for (size_t j = 1; j < n; j++) assert_true(c[j].start <= c[j - 1].end);
    assert_true(n >= len / 500);
    idx_chunks_free(c, n);
    idx_parsed_free(d);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_empty),
        cmocka_unit_test(test_short_doc_one_chunk),
        cmocka_unit_test(test_chinese_sentences),
        cmocka_unit_test(test_english_sentences_and_numbers),
        cmocka_unit_test(test_paragraphs_preferred),
        cmocka_unit_test(test_blocks_offsets_headings),
        cmocka_unit_test(test_oversized_multibyte_hard_cut),
        cmocka_unit_test(test_long_sentence_cut_at_space),
        cmocka_unit_test(test_max_chunks),
        cmocka_unit_test(test_speed_100k),
        cmocka_unit_test(test_2mb_single_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
