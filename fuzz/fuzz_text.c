/* fuzz_text.c — libFuzzer target: the plain-text family through idx_parse():
 * the first byte picks the name hint (.md, .txt, .csv), the rest is the
 * file (charset detection, then md4c / paragraph splitting / CSV rows). */
#include <stdint.h>
#include <stddef.h>

#include "zk.h"
#include "indexer/parse/parse.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    zk_log_set_level(ZK_LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *names[] = {"fuzz.md", "fuzz.txt", "fuzz.csv", "fuzz.markdown"};
    char err[ZK_ERRLEN];
    idx_parsed *doc = NULL;
    if (size < 1) return 0;
    const char *name = names[data[0] % 4];
    if (idx_parse(name, (const char *)data + 1, size - 1, &doc, err) == ZK_OK) idx_parsed_free(doc);
    return 0;
}
