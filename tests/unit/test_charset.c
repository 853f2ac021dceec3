/* test_charset.c — encoding detection and conversion (indexer/charset.c):
 * BOMs, BOM-less UTF-16, GBK produced with iconv, legacy single-byte and
 * Japanese encodings, invalid and truncated bytes, NULs, the size cap. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <iconv.h>
#include <stdlib.h>
#include <string.h>

#include "indexer/charset.h"
#include "utf8.h"

/* Encode a UTF-8 string with iconv; caller frees. */
static char *encode(const char *to, const char *utf8, size_t *out_len)
{
    iconv_t cd = iconv_open(to, "UTF-8");
    assert_true(cd != (iconv_t)-1);
    size_t inleft = strlen(utf8), cap = inleft * 4 + 16, oleft = cap;
    char *out = malloc(cap), *o = out, *in = (char *)utf8;
    assert_true(iconv(cd, &in, &inleft, &o, &oleft) != (size_t)-1);
    iconv_close(cd);
    *out_len = cap - oleft;
    return out;
}

static char *prefix(const char *pre, size_t pn, const char *s, size_t n, size_t *out_len)
{
    char *r = malloc(pn + n);
    memcpy(r, pre, pn);
    memcpy(r + pn, s, n);
    *out_len = pn + n;
    return r;
}

static void expect(const char *data, size_t len, const char *want, const char *want_cs)
{
    char *out = NULL, cs[32] = "", err[ZK_ERRLEN] = "";
    size_t olen = 0;
    assert_int_equal(idx_to_utf8(data, len, &out, &olen, cs, err), ZK_OK);
    assert_non_null(out);
    assert_string_equal(out, want);
    assert_int_equal(olen, strlen(want));
    if (want_cs) assert_string_equal(cs, want_cs);
    free(out);
}

static void test_plain_utf8(void **state)
{
    (void)state;
    expect("hello 世界", strlen("hello 世界"), "hello 世界", "UTF-8");
    expect("", 0, "", "UTF-8");
    expect("plain ascii\n", 12, "plain ascii\n", "UTF-8");
}

static void test_utf8_bom(void **state)
{
    (void)state;
    const char *s = "\xEF\xBB\xBF标题 Title";
    expect(s, strlen(s), "标题 Title", "UTF-8");
}

static void test_utf16_bom(void **state)
{
    (void)state;
    const char *text = "UTF-16 文本：你好，世界！\nsecond line";
    size_t n, m;
    char *le = encode("UTF-16LE", text, &n);
    char *d = prefix("\xFF\xFE", 2, le, n, &m);
    expect(d, m, text, "UTF-16LE");
    free(d);
    char *be = encode("UTF-16BE", text, &n);
    d = prefix("\xFE\xFF", 2, be, n, &m);
    expect(d, m, text, "UTF-16BE");
    free(d);
    free(be);
    /* BOM-less, mostly ASCII: NUL pattern */
    const char *ascii = "Hello world, this is UTF-16 without a byte order mark.";
    char *nobom = encode("UTF-16LE", ascii, &n);
    expect(nobom, n, ascii, "UTF-16LE");
    free(nobom);
    /* a lone surrogate becomes U+FFFD and the rest survives */
    char bad[] = {'a', 0, 0x00, (char)0xD8, 'b', 0};
    d = prefix("\xFF\xFE", 2, bad, sizeof bad, &m);
    expect(d, m, "a\xEF\xBF\xBD" "b", "UTF-16LE");
    free(d);
    /* odd trailing byte */
    d = prefix("\xFF\xFE", 2, le, n > 3 ? 3 : n, &m);
    char *out = NULL, err[ZK_ERRLEN];
    assert_int_equal(idx_to_utf8(d, m, &out, NULL, NULL, err), ZK_OK);
    assert_string_equal(out, "U\xEF\xBF\xBD");
    free(out);
    free(d);
    free(le);
}

static void test_utf32_bom(void **state)
{
    (void)state;
    const char *text = "UTF-32 中文";
    size_t n, m;
    char *le = encode("UTF-32LE", text, &n);
    char *d = prefix("\xFF\xFE\x00\x00", 4, le, n, &m);
    expect(d, m, text, "UTF-32LE");
    free(d);
    free(le);
}

static void test_gbk(void **state)
{
    (void)state;
    const char *samples[] = {
        "你好",
        "中文测试",
        "这是一个用GBK编码的中文文件，用于测试字符集检测。",
        "知识库检索增强生成服务。支持中文和英文文档，以及多种文件格式。\n"
        "第二段：北京是中华人民共和国的首都，也是全国的政治、文化中心。",
    };
    for (size_t i = 0; i < sizeof samples / sizeof *samples; i++) {
        size_t n;
        char *gbk = encode("GBK", samples[i], &n);
        assert_true(n > 0 && (unsigned char)gbk[0] >= 0x80);
        char *out = NULL, cs[32], err[ZK_ERRLEN];
        assert_int_equal(idx_to_utf8(gbk, n, &out, NULL, cs, err), ZK_OK);
        assert_true(strcmp(cs, "GB18030") == 0 || strcmp(cs, "GBK") == 0);
        assert_string_equal(out, samples[i]);
        free(out);
        free(gbk);
    }
}

static void test_other_legacy(void **state)
{
    (void)state;
    size_t n;
    const char *latin = "café résumé naïve façade, déjà vu — encore une fois";
    char *l1 = encode("ISO-8859-1//TRANSLIT", latin, &n);
    char *out = NULL, cs[32], err[ZK_ERRLEN];
    assert_int_equal(idx_to_utf8(l1, n, &out, NULL, cs, err), ZK_OK);
    /* whichever Latin code page uchardet names, the letters survive */
    assert_non_null(strstr(out, "café résumé naïve"));
    free(out);
    free(l1);

    const char *ja = "日本語のテキストです。これはテストです。";
    char *sj = encode("SHIFT_JIS", ja, &n);
    assert_int_equal(idx_to_utf8(sj, n, &out, NULL, cs, err), ZK_OK);
    assert_string_equal(cs, "SHIFT_JIS");
    assert_string_equal(out, ja);
    free(out);
    free(sj);
}

static void test_invalid_bytes(void **state)
{
    (void)state;
    const char *s = "你好\xFF世界，一切正常。";
    expect(s, strlen(s), "你好\xEF\xBF\xBD世界，一切正常。", "UTF-8");
    /* cut off in the middle of a character */
    const char *t = "世界\xE7\x95";
    expect(t, strlen(t), "世界\xEF\xBF\xBD", "UTF-8");
    /* NULs are stripped */
    const char z[] = "hello\0 world\0! \xE4\xB8\xAD\0";
    expect(z, sizeof z - 1, "hello world! \xE4\xB8\xAD", "UTF-8");
}

/* utf8_valid_prefix (the fast scanner of the copy and of the checks) and
 * utf8_decode (the decoder) agree on where valid UTF-8 ends and on how many
 * multi-byte characters come before: every 1- and 2-byte string, 3- and
 * 4-byte ones over the edges of the continuation ranges, each at offsets
 * around an 8-byte ASCII word. */
static size_t ref_prefix(const unsigned char *p, size_t len, size_t *mb)
{
    size_t i = 0;
    *mb = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (cp == UTF8_REPLACEMENT && n == 1 && p[i] >= 0x80) break;
        if (n > 1) (*mb)++;
        i += n;
    }
    return i;
}

static void check_prefix(const unsigned char *seq, size_t n)
{
    unsigned char buf[32];
    for (size_t lead = 0; lead < 10; lead += 3) {
        memset(buf, 'a', lead);
        memcpy(buf + lead, seq, n);
        memset(buf + lead + n, 'z', 9);
        for (size_t len = lead + n; len <= lead + n + 9; len += 9) {
            size_t mb_ref, mb;
            size_t want = ref_prefix(buf, len, &mb_ref);
            size_t got = utf8_valid_prefix((const char *)buf, len, &mb);
            if (got != want || mb != mb_ref) {
                fail_msg("prefix of %02x %02x %02x %02x (n %zu, lead %zu, len %zu): %zu/%zu, want %zu/%zu",
                         seq[0], n > 1 ? seq[1] : 0, n > 2 ? seq[2] : 0, n > 3 ? seq[3] : 0, n, lead, len, got, mb,
                         want, mb_ref);
            }
        }
    }
}

static void test_valid_prefix_matches_decoder(void **state)
{
    (void)state;
    /* every boundary of table 3-7's continuation ranges */
    static const unsigned char edge[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xF4, 0xFF};
    unsigned char s[4];
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (unsigned char)a;
        check_prefix(s, 1);
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (unsigned char)b;
            check_prefix(s, 2);
        }
        if (a < 0xC0) continue;   /* 3- and 4-byte forms: lead bytes only */
        for (size_t b = 0; b < sizeof edge; b++)
            for (size_t c = 0; c < sizeof edge; c++) {
                s[1] = edge[b];
                s[2] = edge[c];
                check_prefix(s, 3);
                for (size_t d = 0; d < sizeof edge; d++) {
                    s[3] = edge[d];
                    check_prefix(s, 4);
                }
            }
    }
    assert_true(utf8_valid("\xe7\x9f\xa5\xe5\xba\x93 ok \xef\xbf\xbd", 13));   /* a literal U+FFFD is valid */
    assert_false(utf8_valid("ok \xe7\x9f", 5));
}

static void test_too_big(void **state)
{
    (void)state;
    char small[4] = "abc", *out = (char *)1, err[ZK_ERRLEN] = "";
    /* the size check happens before any byte is read */
    assert_int_equal(idx_to_utf8(small, ((size_t)512 << 20) + 1, &out, NULL, NULL, err),
                     ZK_TOOBIG);
    assert_null(out);
    assert_true(strlen(err) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_utf8),  cmocka_unit_test(test_utf8_bom),
        cmocka_unit_test(test_utf16_bom),   cmocka_unit_test(test_utf32_bom),
        cmocka_unit_test(test_gbk),         cmocka_unit_test(test_other_legacy),
        cmocka_unit_test(test_invalid_bytes), cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_valid_prefix_matches_decoder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
