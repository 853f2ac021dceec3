/* txt.c — plain-text parser: normalises line endings, drops trailing
 * blanks, and turns runs of blank lines into paragraph breaks ("\n\n").
 *
 * Called by idx_parse() for text documents; one linear pass, one block
 * (plain text has no headings). Title = first non-empty line. */
#include "indexer/parse/parse.h"

#include <string.h>

#include "buf.h"
#include "utf8.h"

#define TITLE_CAP_CP 100

/* Trim ASCII and Unicode whitespace from both ends of s[0..*len). */
static const char *trim(const char *s, size_t *len)
{
    size_t b = 0, e = *len;
    while (b < e) {
        uint32_t cp;
        size_t n = utf8_decode((const unsigned char *)s + b, e - b, &cp);
        if (!utf8_is_space(cp)) break;
        b += n;
    }
    while (e > b) {
        size_t k = e - 1;
        while (k > b && ((unsigned char)s[k] & 0xC0) == 0x80 && e - k < 4) k--;
        uint32_t cp;
        size_t n = utf8_decode((const unsigned char *)s + k, e - k, &cp);
        if (k + n != e) { k = e - 1; utf8_decode((const unsigned char *)s + k, 1, &cp); }
        if (!utf8_is_space(cp)) break;
        e = k;
    }
    *len = e - b;
    return s + b;
}

static char *first_line_title(const char *s, size_t len)
{
    const char *end = s + len;
    for (const char *line = s; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = (size_t)((nl ? nl : end) - line);
        const char *t = trim(line, &n);
        if (n > 0) {
            size_t i = 0, cps = 0;
            while (i < n && cps < TITLE_CAP_CP) {
                uint32_t cp;
                i += utf8_decode((const unsigned char *)t + i, n - i, &cp);
                cps++;
            }
            return zk_strndup(t, i);
        }
        if (!nl) break;
        line = nl + 1;
    }
    return NULL;
}

zk_rc idx__parse_txt(const char *name, const char *utf8, size_t len, idx_parsed *doc, char *err)
{
    (void)name;
    zk_rc rc = ZK_OK;
    zk_buf b;
    buf_init(&b, 0);
    const char *end = utf8 + len;
    size_t blank = 0;   /* blank lines seen since the last text line */

    for (const char *line = utf8; line < end;) {
        const char *le = line;
        while (le < end && *le != '\n' && *le != '\r') le++;
        size_t n = (size_t)(le - line);
        /* keep leading indentation, drop trailing blanks */
        size_t tn = n;
        const char *t = trim(line, &tn);
        if (tn == 0) {
            blank++;
        } else {
            if (b.len > 0 && (rc = buf_append(&b, blank ? "\n\n" : "\n", blank ? 2 : 1)) != ZK_OK)
                goto out;
            size_t keep = (size_t)(t - line) + tn;
            if ((rc = buf_append(&b, line, keep)) != ZK_OK) goto out;
            blank = 0;
        }
        if (le < end && *le == '\r' && le + 1 < end && le[1] == '\n') le++;
        line = le + 1;
    }
    if (b.len > 0) {
        /* leading indentation of the very first line is noise */
        size_t tn = b.len;
        const char *t = trim(b.data, &tn);
        if ((rc = idx__add_block(doc, t, tn, NULL, 0)) != ZK_OK) goto out;
    }
    zk_free(doc->title);
    doc->title = first_line_title(utf8, len);
out:
    buf_free(&b);
    if (rc != ZK_OK) zk_fail(err, rc, "parsing text");
    return rc;
}
