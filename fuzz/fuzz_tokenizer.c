/* fuzz_tokenizer.c — libFuzzer target: the FTS5 tokenizer on arbitrary
 * bytes, document side (with and without CJK unigrams) and query side.
 * Also checks the documented invariants: offsets lie inside the input,
 * start <= end, and a token is short (words are cut at 64 folded bytes;
 * 256 leaves room for the stemmer). */
#include <limits.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>

#include "zk.h"
#include "retrieval/tokenizer.h"

static int on_token(void *ctx, int kind, const char *tok, int ntok, int start, int end)
{
    int len = *(int *)ctx;
    if (kind < RET_TOK_WORD || kind > RET_TOK_CJK_UNI) abort();
    if (!tok || ntok <= 0 || ntok > 256) abort();
    if (start < 0 || end < start || end > len) abort();
    volatile char sink = tok[ntok - 1];   /* ASan: the token bytes are readable */
    (void)sink;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ret_tokenizer *plain, *uni;
    if (!plain && !(plain = ret_tokenizer_new())) abort();
    if (!uni && !(uni = ret_tokenizer_new_opts(1))) abort();
    if (size > INT_MAX) return 0;
    int len = (int)size;
    /* a heap copy of exactly size bytes (no NUL): reads past the end trap */
    char *text = malloc(size ? size : 1);
    if (!text) abort();
    for (size_t i = 0; i < size; i++) text[i] = (char)data[i];
    ret_tokenizer_run(plain, text, len, 0, &len, on_token);
    ret_tokenizer_run(uni, text, len, 0, &len, on_token);
    ret_tokenizer_run(plain, text, len, 1, &len, on_token);
    ret_tokenizer_run(uni, text, len, 1, &len, on_token);
    free(text);
    return 0;
}
