/* charset.h — detect a text file's encoding and convert it to UTF-8.
 *
 * Order: BOM (UTF-8, UTF-16LE/BE, UTF-32), then valid UTF-8, then uchardet,
 * with GB18030 as the fallback for undecidable CJK byte soup (GB18030 is a
 * superset of GBK and GB2312). Conversion uses iconv; bytes that cannot be
 * converted become U+FFFD instead of failing the document. Thread-safe. */
#ifndef IDX_CHARSET_H
#define IDX_CHARSET_H

#include <stddef.h>
#include "zk.h"

/* Convert data[0..len) to NUL-terminated UTF-8 in *out (caller frees with
 * zk_free). out_charset (may be NULL, >= 32 bytes) receives the name of
 * the detected encoding, e.g. "UTF-8", "UTF-16LE", "GB18030". */
zk_rc idx_to_utf8(const char *data, size_t len, char **out, size_t *out_len,
                  char *out_charset, char *err);

#endif
