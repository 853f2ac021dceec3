/* fuzz_cite.c — libFuzzer target: model-answer text handling. The input is
 * one answer: the streaming citation filter gets it in byte-driven pieces
 * (markers split anywhere), the one-shot llm_cite_renumber() gets it whole,
 * and both must agree; llm_cite_support() then scores the result. The same
 * bytes also go through jansson's json_loadb (as every JSON request body and
 * model event does). First byte: number of sources (0..15). */
#include <jansson.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "zk.h"
#include "llm/cite.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    zk_log_set_level(ZK_LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[ZK_ERRLEN];
    if (size < 1) return 0;
    int nsrc = data[0] % 16;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    json_t *j = json_loadb((const char *)data, size, 0, NULL);
    json_decref(j);

    llm_stream_filter *f = NULL;
    if (llm_stream_filter_new(nsrc, NULL, NULL, &f, err) != ZK_OK) abort();
    for (size_t off = 0; off < len;) {
        size_t n = fuzz_piece(data + 1, len, off);
        llm_stream_filter_feed(f, text + off, n);
        off += n;
    }
    llm_stream_filter_finish(f);
    size_t slen = 0;
    const char *streamed = llm_stream_filter_text(f, &slen);
    const int *scited = NULL;
    size_t sn = llm_stream_filter_cited(f, &scited);

    char *whole = NULL;
    int *src = NULL;
    size_t n = 0;
    if (llm_cite_renumber(text, len, nsrc, &whole, &src, &n, err) == ZK_OK) {
        /* the split must not change the result (whole is a C string: only
         * comparable when the answer has no NUL byte) */
        if (!memchr(text, '\0', len) && (n != sn || strlen(whole) != slen || memcmp(whole, streamed, slen) != 0))
            abort();
        for (size_t k = 0; k < n; k++)
            if (src[k] < 0 || src[k] >= nsrc || src[k] != scited[k]) abort();
        const char *chunks[16];
        for (size_t k = 0; k < 16; k++) chunks[k] = "知识库 knowledge base chunk text 示例";
        double support[16];
        if (n <= 16) llm_cite_support(whole, strlen(whole), chunks, n, support, err);
        zk_free(whole);
        zk_free(src);
    }
    llm_stream_filter_free(f);
    return 0;
}
