/* fuzz_chunker.c — libFuzzer target: the chunker. The input is parsed as
 * plain text (idx_parse with a .txt hint), then cut with a small target and
 * overlap taken from the first two bytes, so boundary cases (sentence ends,
 * CJK punctuation, long unbroken runs, invalid UTF-8 replaced by U+FFFD)
 * are hit with tiny inputs. Checks the chunk invariants it can cheaply:
 * ordinals in order, start <= end, offsets non-decreasing. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>

#include "zk.h"
#include "indexer/chunker.h"
#include "indexer/parse/parse.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    zk_log_set_level(ZK_LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[ZK_ERRLEN];
    idx_parsed *doc = NULL;
    idx_chunk *chunks = NULL;
    size_t n = 0;
    if (size < 2) return 0;
    idx_chunk_opts o;
    idx_chunk_opts_default(&o);
    o.target_chars = 1 + data[0] % 64;          /* 1..64 code points */
    o.overlap_chars = data[1] % (o.target_chars + 8);   /* may exceed the target on purpose */
    o.max_chunks = 5000;
    if (idx_parse("fuzz.txt", (const char *)data + 2, size - 2, &doc, err) != ZK_OK) return 0;
    if (idx_chunk_doc(doc, &o, &chunks, &n, err) == ZK_OK) {
        for (size_t i = 0; i < n; i++) {
            if (chunks[i].ordinal != (int)i) abort();
            if (chunks[i].start > chunks[i].end) abort();
            if (i && chunks[i].start < chunks[i - 1].start) abort();
            if (!chunks[i].text || chunks[i].text[chunks[i].len] != '\0') abort();
        }
        idx_chunks_free(chunks, n);
    }
    idx_parsed_free(doc);
    return 0;
}
