/* fuzz_pdf.c — libFuzzer target: the PDF parser (MuPDF text layer,
 * headings, columns) through idx_parse() with a .pdf name hint. MuPDF itself
 * is not instrumented (Debian's static library): coverage guides through
 * indexer/parse/pdf.c; memory errors inside MuPDF are caught only where
 * ASan intercepts (malloc/free, mem* and str* calls). OCR is not configured,
 * so scanned pages are reported, never sent anywhere. */
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
    if (idx_parse("fuzz.pdf", (const char *)data, size, &doc, err) == ZK_OK) idx_parsed_free(doc);
    return 0;
}
