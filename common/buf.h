/* buf.h — a growable byte buffer with a hard size cap (curl's dynbuf idea).
 *
 * Used everywhere text is assembled: parsers, JSON output, SQL. Appends fail
 * with ZK_TOOBIG once the cap is reached so hostile input cannot grow a
 * buffer without bound. Not thread-safe; one owner at a time. */
#ifndef ZK_BUF_H
#define ZK_BUF_H

#include <stddef.h>
#include "zk.h"

typedef struct {
    char *data;     /* NUL-terminated when len > 0 or after buf_cstr() */
    size_t len;
    size_t cap;     /* allocated bytes */
    size_t max;     /* hard cap on len; 0 = ZK_BUF_DEFAULT_MAX */
} zk_buf;

#define ZK_BUF_DEFAULT_MAX ((size_t)1 << 31)

void buf_init(zk_buf *b, size_t max);
void buf_free(zk_buf *b);              /* releases memory, buffer reusable */
void buf_reset(zk_buf *b);             /* len = 0, keeps memory */
zk_rc buf_append(zk_buf *b, const void *p, size_t n);
zk_rc buf_puts(zk_buf *b, const char *s);
zk_rc buf_putc(zk_buf *b, char c);
zk_rc buf_printf(zk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *buf_cstr(zk_buf *b);       /* never NULL; "" when empty */
char *buf_steal(zk_buf *b, size_t *out_len); /* caller frees with zk_free */

#endif
