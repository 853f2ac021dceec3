/* buf.c — growable capped byte buffer; see buf.h. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void buf_init(zk_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max ? max : ZK_BUF_DEFAULT_MAX;
}

void buf_free(zk_buf *b)
{
    zk_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_reset(zk_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

static zk_rc reserve(zk_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra) return ZK_TOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return ZK_OK;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < need) ncap *= 2;
    char *p = zk_realloc(b->data, ncap);
    if (!p) return ZK_NOMEM;
    b->data = p;
    b->cap = ncap;
    return ZK_OK;
}

zk_rc buf_append(zk_buf *b, const void *p, size_t n)
{
    zk_rc rc = reserve(b, n);
    if (rc != ZK_OK) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return ZK_OK;
}

zk_rc buf_puts(zk_buf *b, const char *s) { return buf_append(b, s, strlen(s)); }
zk_rc buf_putc(zk_buf *b, char c) { return buf_append(b, &c, 1); }

zk_rc buf_printf(zk_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return ZK_ERR;
    zk_rc rc = reserve(b, (size_t)n);
    if (rc != ZK_OK) return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return ZK_OK;
}

const char *buf_cstr(zk_buf *b)
{
    if (!b->data) return "";
    return b->data;
}

char *buf_steal(zk_buf *b, size_t *out_len)
{
    char *p = b->data;
    if (!p) p = zk_strdup("");
    if (out_len) *out_len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
