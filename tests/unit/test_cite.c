/* test_cite.c — citation markers: validation and renumbering in order of
 * first use, dropping of markers that point to no source, the streaming
 * hold-back over arbitrary splits ("[", "1", "]" in separate pieces), and
 * the support score of cited sentences. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"
#include "llm/cite.h"

typedef struct {
    zk_buf b;
    int calls, cancel_after;
} sink;

static int on_text(void *ctx, const char *t, size_t n)
{
    sink *s = ctx;
    s->calls++;
    /* every piece handed out is final: never ends inside a marker "[1" */
    assert_false(n >= 2 && t[n - 2] == '[' && t[n - 1] >= '0' && t[n - 1] <= '9');
    buf_append(&s->b, t, n);
    return s->cancel_after && s->calls >= s->cancel_after;
}

/* Feed text cut into pieces of `step` bytes; return the streamed text. */
static char *run(const char *text, int nsrc, size_t step, const int **cited, size_t *ncited, llm_stream_filter **keep)
{
    static sink s;
    char err[ZK_ERRLEN];
    llm_stream_filter *f;
    memset(&s, 0, sizeof s);
    buf_init(&s.b, 1 << 20);
    assert_int_equal(llm_stream_filter_new(nsrc, on_text, &s, &f, err), ZK_OK);
    size_t len = strlen(text);
    for (size_t i = 0; i < len; i += step) llm_stream_filter_feed(f, text + i, len - i < step ? len - i : step);
    llm_stream_filter_finish(f);
    size_t fl;
    const char *final = llm_stream_filter_text(f, &fl);
    assert_int_equal(fl, s.b.len);
    assert_memory_equal(final, buf_cstr(&s.b), fl);   /* streamed == final */
    *ncited = llm_stream_filter_cited(f, cited);
    *keep = f;
    return buf_steal(&s.b, NULL);
}

static void test_renumber_first_use(void **state)
{
    (void)state;
    for (size_t step = 1; step <= 7; step++) {
        const int *cited;
        size_t n;
        llm_stream_filter *f;
        char *out = run("Leave is 15 days [3]. Claims in 30 days [1][3]. Both [3, 1].", 3, step, &cited, &n, &f);
        assert_string_equal(out, "Leave is 15 days [1]. Claims in 30 days [2][1]. Both [1][2].");
        assert_int_equal(n, 2);
        assert_int_equal(cited[0], 2);
        assert_int_equal(cited[1], 0);
        zk_free(out);
        llm_stream_filter_free(f);
    }
}

static void test_drop_invalid_and_dangling(void **state)
{
    (void)state;
    for (size_t step = 1; step <= 5; step++) {
        const int *cited;
        size_t n;
        llm_stream_filter *f;
        char *out = run("A [9] b [0] c [2, 7] d [note] e [1", 2, step, &cited, &n, &f);
        assert_string_equal(out, "A  b  c [1] d [note] e ");
        assert_int_equal(n, 1);
        assert_int_equal(cited[0], 1);
        zk_free(out);
        llm_stream_filter_free(f);
    }
}

static void test_split_tokens(void **state)
{
    (void)state;
    sink s;
    char err[ZK_ERRLEN];
    llm_stream_filter *f;
    memset(&s, 0, sizeof s);
    buf_init(&s.b, 1 << 20);
    assert_int_equal(llm_stream_filter_new(2, on_text, &s, &f, err), ZK_OK);
    llm_stream_filter_feed(f, "年假十天", strlen("年假十天"));
    assert_string_equal(buf_cstr(&s.b), "年假十天");
    llm_stream_filter_feed(f, "[", 1);
    assert_int_equal(s.b.len, strlen("年假十天"));       /* held */
    llm_stream_filter_feed(f, "2", 1);
    assert_int_equal(s.b.len, strlen("年假十天"));
    llm_stream_filter_feed(f, "]。", strlen("]。"));
    assert_string_equal(buf_cstr(&s.b), "年假十天[1]。");
    llm_stream_filter_feed(f, "[[1]", 4);                 /* a literal '[' then a marker */
    llm_stream_filter_feed(f, "[1，2]", strlen("[1，2]"));
    llm_stream_filter_finish(f);
    assert_string_equal(buf_cstr(&s.b), "年假十天[1]。[[2][2][1]");
    buf_free(&s.b);
    llm_stream_filter_free(f);
}

static void test_cancel(void **state)
{
    (void)state;
    sink s;
    char err[ZK_ERRLEN];
    llm_stream_filter *f;
    memset(&s, 0, sizeof s);
    buf_init(&s.b, 1 << 20);
    s.cancel_after = 2;
    assert_int_equal(llm_stream_filter_new(1, on_text, &s, &f, err), ZK_OK);
    assert_int_equal(llm_stream_filter_feed(f, "a", 1), 0);
    assert_int_not_equal(llm_stream_filter_feed(f, "b", 1), 0);
    buf_free(&s.b);
    llm_stream_filter_free(f);
}

static void test_renumber_oneshot(void **state)
{
    (void)state;
    char err[ZK_ERRLEN], *t;
    int *src;
    size_t n;
    assert_int_equal(llm_cite_renumber("x [2] y [5] z [2][1]", 20, 3, &t, &src, &n, err), ZK_OK);
    assert_string_equal(t, "x [1] y  z [1][2]");
    assert_int_equal(n, 2);
    assert_int_equal(src[0], 1);
    assert_int_equal(src[1], 0);
    zk_free(t);
    zk_free(src);
}

static void test_support(void **state)
{
    (void)state;
    const char *chunk = "Employees get 15 days of annual leave per year. Unused leave expires at the end of March.";
    double s1 = llm_cite_sentence_support("Employees get 15 days of annual leave.", 38, chunk, strlen(chunk));
    double s2 = llm_cite_sentence_support("The moon orbits Jupiter every Tuesday.", 38, chunk, strlen(chunk));
    assert_true(s1 > 0.9);
    assert_true(s2 < 0.2);
    const char *zh = "入职满一年的正式员工每年享有十天带薪年假。";
    double z1 = llm_cite_sentence_support("员工每年享有十天带薪年假", strlen("员工每年享有十天带薪年假"), zh, strlen(zh));
    double z2 = llm_cite_sentence_support("火星上有大量液态水", strlen("火星上有大量液态水"), zh, strlen(zh));
    assert_true(z1 > 0.9);
    assert_true(z2 < 0.2);

    /* per marker: the lowest support over the sentences citing it; a marker
     * after the period belongs to the sentence before it */
    const char *chunks[2] = {chunk, "Travel expenses must be filed within 30 days with receipts."};
    const char *ans = "Annual leave is 15 days. [1] Travel expenses are filed within 30 days [2]. "
                      "Bananas are purple [2].";
    double sup[2];
    char err[ZK_ERRLEN];
    assert_int_equal(llm_cite_support(ans, strlen(ans), chunks, 2, sup, err), ZK_OK);
    assert_true(sup[0] > 0.9);
    assert_true(sup[1] < 0.2);   /* the banana claim is unsupported */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_renumber_first_use), cmocka_unit_test(test_drop_invalid_and_dangling),
        cmocka_unit_test(test_split_tokens),       cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_renumber_oneshot),   cmocka_unit_test(test_support),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
