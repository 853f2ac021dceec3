/* chunker.h — split a parsed document into retrieval chunks.
 *
 * Chunks aim at target_chars code points, never cross a block (heading or
 * page change), and are cut at paragraph boundaries first, then sentence
 * boundaries (。！？；… . ! ?), then whitespace, and only as a last resort
 * at a code-point boundary — never inside a UTF-8 character. Consecutive
 * chunks of one block overlap by about overlap_chars, re-using whole
 * sentences where possible.
 *
 * Offsets: the document's text is its blocks joined with "\n\n"; start/end
 * are code-point offsets into that text ([start, end)). Thread-safe. */
#ifndef IDX_CHUNKER_H
#define IDX_CHUNKER_H

#include <stddef.h>
#include "zk.h"
#include "indexer/parse/parse.h"

typedef struct {
    size_t target_chars;   /* default 500 */
    size_t overlap_chars;  /* default 80 */
    size_t max_chunks;     /* hard cap per document, default 100000 */
} idx_chunk_opts;

typedef struct {
    char *text;       /* UTF-8, NUL-terminated, owned */
    size_t len;       /* bytes */
    char *heading;    /* copy of the block's heading path or NULL */
    int page;
    int ordinal;      /* 0-based position in the document */
    size_t start;     /* code-point offsets in the document text */
    size_t end;
} idx_chunk;

void idx_chunk_opts_default(idx_chunk_opts *o);
zk_rc idx_chunk_doc(const idx_parsed *doc, const idx_chunk_opts *opts,
                    idx_chunk **out_chunks, size_t *out_n, char *err);
void idx_chunks_free(idx_chunk *chunks, size_t n);

#endif
