/* fuzz_html.c — libFuzzer target: the HTML parser through idx_parse() with
 * an .html name hint (libxml2's HTML parser plus our block/heading walk).
 * Seeds: the HTML sample in samples/ and small generated pages (fuzz/seed.sh). */
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
    char err[ZK_ERRLEN];
    idx_parsed *doc = NULL;
    if (idx_parse("fuzz.html", (const char *)data, size, &doc, err) == ZK_OK) idx_parsed_free(doc);
    return 0;
}
