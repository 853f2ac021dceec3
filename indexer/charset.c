/* charset.c — encoding detection and conversion to UTF-8 (see charset.h).
 *
 * Called once per ingested text document by idx_parse(), before format
 * dispatch; inputs are up to 512 MiB, so every step is one linear pass:
 * BOM, a UTF-16 NUL-pattern sniff, a UTF-8 validity count, then uchardet on
 * a prefix, and iconv with U+FFFD substitution for undecodable bytes. */
#include "indexer/charset.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <uchardet.h>

#include "buf.h"
#include "utf8.h"

#define MAX_INPUT ((size_t)512 << 20)
#define SNIFF_LEN ((size_t)4 << 20)   /* bytes handed to uchardet */

static const char REPL[3] = {(char)0xEF, (char)0xBF, (char)0xBD};  /* U+FFFD */

/* Heuristic for BOM-less UTF-16 of mostly-ASCII text: one byte of each pair
 * is NUL. Returns "UTF-16LE", "UTF-16BE" or NULL. */
static const char *sniff_utf16(const unsigned char *p, size_t len)
{
    size_t n = ZK_MIN(len, (size_t)8192) & ~(size_t)1;
    if (n < 8) return NULL;
    size_t z_even = 0, z_odd = 0, pairs = n / 2;
    for (size_t i = 0; i < n; i += 2) {
        z_even += p[i] == 0;
        z_odd += p[i + 1] == 0;
    }
    if (z_odd * 10 >= pairs * 3 && z_even * 20 <= pairs) return "UTF-16LE";
    if (z_even * 10 >= pairs * 3 && z_odd * 20 <= pairs) return "UTF-16BE";
    return NULL;
}

/* 1 when p[0..len) is the start of a multi-byte character cut off by the
 * end of the data. */
static int truncated_tail(const unsigned char *p, size_t len)
{
    size_t want = p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC2 ? 2 : 0;
    if (!want || p[0] > 0xF4 || len >= want) return 0;
    for (size_t k = 1; k < len; k++)
        if ((p[k] & 0xC0) != 0x80) return 0;
    return 1;
}

/* Counts well-formed multi-byte UTF-8 sequences and stray bytes. */
static void utf8_stats(const unsigned char *p, size_t len, size_t *out_mb, size_t *out_bad)
{
    size_t i = 0, mb = 0, bad = 0;
    for (;;) {
        size_t m;
        i += utf8_valid_prefix((const char *)p + i, len - i, &m);
        mb += m;
        /* a sequence cut off by the end of the data is truncation, not a
         * sign of another encoding */
        if (i == len || truncated_tail(p + i, len - i)) break;
        bad++;
        i++;
    }
    *out_mb = mb;
    *out_bad = bad;
}

/* 1 when the high bytes of p parse as GB18030 and most 2-byte pairs fall in
 * the GB2312 hanzi/punctuation rows — i.e. "this is probably Chinese". */
static int plausible_gb(const unsigned char *p, size_t len)
{
    size_t i = 0, pairs = 0, common = 0, bad = 0;
    len = ZK_MIN(len, SNIFF_LEN);
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x80) { i++; continue; }
        if (c == 0x80 || c == 0xFF || i + 1 >= len) { bad++; i++; continue; }
        unsigned d = p[i + 1];
        if (d >= 0x30 && d <= 0x39) {                 /* 4-byte form */
            if (i + 3 < len && p[i + 2] >= 0x81 && p[i + 2] <= 0xFE &&
                p[i + 3] >= 0x30 && p[i + 3] <= 0x39) { pairs++; i += 4; continue; }
            bad++; i++; continue;
        }
        if (d < 0x40 || d == 0x7F || d == 0xFF) { bad++; i++; continue; }
        pairs++;
        if (((c >= 0xB0 && c <= 0xF7) || (c >= 0xA1 && c <= 0xA3)) && d >= 0xA1) common++;
        i += 2;
    }
    return pairs >= 2 && bad * 20 <= pairs && common * 10 >= pairs * 6;
}

static int is_cjk_multibyte(const char *cs)
{
    static const char *names[] = {"BIG5", "EUC-JP", "SHIFT_JIS", "EUC-KR", "EUC-TW",
                                  "ISO-2022-JP", "ISO-2022-KR", "ISO-2022-CN", "HZ-GB-2312",
                                  "UHC", "CP949", "CP932", "GB18030"};
    for (size_t i = 0; i < ZK_ARRAY_LEN(names); i++)
        if (strcasecmp(cs, names[i]) == 0) return 1;
    return 0;
}

/* uchardet, with GB* mapped to GB18030 and undecided/single-byte guesses on
 * Chinese-looking bytes mapped to GB18030 too. Writes the name into cs. */
static void detect_legacy(const unsigned char *p, size_t len, char cs[32])
{
    const char *got = NULL;
    uchardet_t ud = uchardet_new();
    if (ud) {
        uchardet_handle_data(ud, (const char *)p, ZK_MIN(len, SNIFF_LEN));
        uchardet_data_end(ud);
        got = uchardet_get_charset(ud);
    }
    if (got && (strncasecmp(got, "GB", 2) == 0 && strcasecmp(got, "GB18030") != 0))
        got = "GB18030";  /* GB2312 / GBK are subsets */
    if (!got || !*got || strcasecmp(got, "ASCII") == 0 ||
        (!is_cjk_multibyte(got) && strncasecmp(got, "UTF", 3) != 0)) {
        if (plausible_gb(p, len)) got = "GB18030";
        else if (!got || !*got || strcasecmp(got, "ASCII") == 0) got = "WINDOWS-1252";
    }
    snprintf(cs, 32, "%s", got);
    if (ud) uchardet_delete(ud);
}

/* Copy UTF-8, replacing each invalid byte with U+FFFD. */
static zk_rc repair_utf8(const unsigned char *p, size_t len, zk_buf *b)
{
    size_t i = 0;
    zk_rc rc;
    for (;;) {
        size_t n = utf8_valid_prefix((const char *)p + i, len - i, NULL);
        if ((rc = buf_append(b, p + i, n)) != ZK_OK || (i += n) == len) return rc;
        if ((rc = buf_append(b, REPL, 3)) != ZK_OK) return rc;
        if (truncated_tail(p + i, len - i)) return ZK_OK;
        i++;
    }
}

static zk_rc convert_iconv(const char *cs, const unsigned char *p, size_t len, zk_buf *b,
                           char *err)
{
    iconv_t cd = iconv_open("UTF-8", cs);
    if (cd == (iconv_t)-1)
        return zk_fail(err, ZK_UNSUPPORTED, "no converter for charset %s", cs);
    size_t unit = 1;
    if (strncasecmp(cs, "UTF-16", 6) == 0) unit = 2;
    else if (strncasecmp(cs, "UTF-32", 6) == 0) unit = 4;

    zk_rc rc = ZK_OK;
    char *in = (char *)p;
    size_t inleft = len;
    char tmp[16384];
    while (inleft > 0) {
        char *o = tmp;
        size_t oleft = sizeof tmp;
        size_t r = iconv(cd, &in, &inleft, &o, &oleft);
        int e = errno;
        if ((rc = buf_append(b, tmp, sizeof tmp - oleft)) != ZK_OK) goto out;
        if (r != (size_t)-1) break;
        if (e == E2BIG) continue;
        /* EILSEQ: skip one code unit; EINVAL: truncated sequence at the end */
        if ((rc = buf_append(b, REPL, 3)) != ZK_OK) goto out;
        size_t skip = e == EINVAL ? inleft : ZK_MIN(unit, inleft);
        in += skip;
        inleft -= skip;
        iconv(cd, NULL, NULL, NULL, NULL);
    }
    {   /* flush shift state */
        char *o = tmp;
        size_t oleft = sizeof tmp;
        iconv(cd, NULL, NULL, &o, &oleft);
        rc = buf_append(b, tmp, sizeof tmp - oleft);
    }
out:
    iconv_close(cd);
    if (rc != ZK_OK) zk_fail(err, rc, "converting from %s", cs);
    return rc;
}

zk_rc idx_to_utf8(const char *data, size_t len, char **out, size_t *out_len,
                  char *out_charset, char *err)
{
    const unsigned char *p = (const unsigned char *)data;
    char cs[32] = "UTF-8";
    zk_buf b;
    zk_rc rc = ZK_OK;

    *out = NULL;
    if (out_len) *out_len = 0;
    if (len > MAX_INPUT)
        return zk_fail(err, ZK_TOOBIG, "document is %zu bytes, limit is %zu", len, MAX_INPUT);
    if (!data && len) return zk_fail(err, ZK_INVALID, "NULL data");
    buf_init(&b, MAX_INPUT * 4 + 16);

    if (len >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) {
        p += 3; len -= 3;
    } else if (len >= 4 && p[0] == 0xFF && p[1] == 0xFE && p[2] == 0 && p[3] == 0) {
        strcpy(cs, "UTF-32LE"); p += 4; len -= 4;
    } else if (len >= 4 && p[0] == 0 && p[1] == 0 && p[2] == 0xFE && p[3] == 0xFF) {
        strcpy(cs, "UTF-32BE"); p += 4; len -= 4;
    } else if (len >= 2 && p[0] == 0xFF && p[1] == 0xFE) {
        strcpy(cs, "UTF-16LE"); p += 2; len -= 2;
    } else if (len >= 2 && p[0] == 0xFE && p[1] == 0xFF) {
        strcpy(cs, "UTF-16BE"); p += 2; len -= 2;
    } else {
        const char *u16 = sniff_utf16(p, len);
        if (u16) {
            strcpy(cs, u16);
        } else {
            size_t mb, bad;
            utf8_stats(p, len, &mb, &bad);
            /* a few stray bytes in real UTF-8 text stay UTF-8 (repaired) */
            if (bad != 0 && bad * 2 > mb) detect_legacy(p, len, cs);
        }
    }

    if (strcasecmp(cs, "UTF-8") == 0) {
        rc = repair_utf8(p, len, &b);
        if (rc != ZK_OK) zk_fail(err, rc, "converting UTF-8");
    } else {
        rc = convert_iconv(cs, p, len, &b, err);
        if (rc == ZK_UNSUPPORTED) {      /* unknown name from uchardet */
            strcpy(cs, "UTF-8");
            buf_reset(&b);
            rc = repair_utf8(p, len, &b);
        }
    }
    if (rc != ZK_OK) goto out;

    size_t n = 0;
    char *s = b.data;
    if (s) {  /* strip NULs in place */
        char *w = memchr(s, 0, b.len);
        if (w) {
            for (char *r = w; r < s + b.len; r++)
                if (*r) *w++ = *r;
            b.len = (size_t)(w - s);
            s[b.len] = '\0';
        }
    }
    n = b.len;
    *out = buf_steal(&b, NULL);
    if (!*out) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    if (out_len) *out_len = n;
    if (out_charset) snprintf(out_charset, 32, "%s", cs);
out:
    buf_free(&b);
    return rc;
}
