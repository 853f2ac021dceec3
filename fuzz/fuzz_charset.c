/* fuzz_charset.c — libFuzzer target: encoding detection and conversion
 * (idx_to_utf8: BOMs, UTF-8 validation, uchardet, iconv with U+FFFD for
 * unconvertible bytes). Checks the output is NUL-terminated at out_len and
 * the charset name is a terminated string. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "zk.h"
#include "indexer/charset.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    zk_log_set_level(ZK_LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[ZK_ERRLEN], cs[32];
    char *out = NULL;
    size_t out_len = 0;
    /* exact-size heap copy: an over-read of the input traps */
    char *in = malloc(size ? size : 1);
    if (!in) abort();
    if (size) memcpy(in, data, size);
    memset(cs, 'x', sizeof cs);
    if (idx_to_utf8(in, size, &out, &out_len, cs, err) == ZK_OK) {
        if (!out || out[out_len] != '\0') abort();
        if (!memchr(cs, '\0', sizeof cs)) abort();
        zk_free(out);
    }
    free(in);
    return 0;
}
