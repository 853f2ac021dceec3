/* parse.h — turn one document's bytes into structured UTF-8 text.
 *
 * A parsed document is a title plus an ordered list of blocks; each block is
 * a run of text (paragraphs separated by "\n\n") under one heading path
 * ("Guide > Install > Debian", joined with " > ") and on one page (0 when
 * the format has no pages). The chunker (indexer/chunker.h) works on blocks.
 * One file per format under indexer/parse/; idx_parse() dispatches on the
 * format detected from the content (and the name as a hint).
 * Thread-safe (no shared state). */
#ifndef IDX_PARSE_H
#define IDX_PARSE_H

#include <stddef.h>
#include "zk.h"

typedef struct {
    char *text;      /* UTF-8, NUL-terminated, owned */
    size_t len;      /* bytes */
    char *heading;   /* heading path or NULL, owned */
    int page;        /* 1-based page number, 0 = no pages */
} idx_block;

typedef struct {
    char *title;       /* best title: <title>, first H1, first line; owned, never NULL after parse */
    const char *format;/* "txt", "md", "html", "csv", "docx", "xlsx", "pptx",
                          "odt", "epub" (static string) */
    char charset[32];  /* detected source encoding */
    idx_block *blocks;
    size_t nblocks, cap;
} idx_parsed;

/* Detect format from content and name (name may be NULL). Returns a static
 * string such as "txt", "md", "html", "csv", "docx", or NULL when
 * unsupported (binary, legacy .doc, RTF, ZIPs that are not documents).
 * ZIP containers are recognised by their entries, not their name. */
const char *idx_detect_format(const char *name, const char *data, size_t len);

/* Parse data. `name` is the file name (for format hints and the fallback
 * title). ZK_UNSUPPORTED when the format is not handled. */
zk_rc idx_parse(const char *name, const char *data, size_t len, idx_parsed **out, char *err);
void idx_parsed_free(idx_parsed *doc);

/* For parser implementations: append a block (copies text and heading). */
zk_rc idx__add_block(idx_parsed *doc, const char *text, size_t len, const char *heading, int page);
idx_parsed *idx__parsed_new(void);

/* Per-format entry points (indexer/parse/<format>.c). utf8 is already
 * converted to UTF-8 and NUL-terminated. */
zk_rc idx__parse_txt(const char *name, const char *utf8, size_t len, idx_parsed *doc, char *err);
zk_rc idx__parse_md(const char *name, const char *utf8, size_t len, idx_parsed *doc, char *err);
zk_rc idx__parse_html(const char *name, const char *utf8, size_t len, idx_parsed *doc, char *err);
zk_rc idx__parse_csv(const char *name, const char *utf8, size_t len, idx_parsed *doc, char *err);

/* Container formats (ZIP): data is the raw archive, not text. They set
 * doc->title when the document names one. */
zk_rc idx__parse_docx(const char *name, const char *data, size_t len, idx_parsed *doc, char *err);
zk_rc idx__parse_xlsx(const char *name, const char *data, size_t len, idx_parsed *doc, char *err);
zk_rc idx__parse_pptx(const char *name, const char *data, size_t len, idx_parsed *doc, char *err);
zk_rc idx__parse_odt(const char *name, const char *data, size_t len, idx_parsed *doc, char *err);
zk_rc idx__parse_epub(const char *name, const char *data, size_t len, idx_parsed *doc, char *err);
/* PDF (indexer/parse/pdf.c): raw "%PDF-" bytes; sets format "pdf" and the title. */
zk_rc idx__parse_pdf(const char *name, const char *data, size_t len, idx_parsed *doc, char *err);

#endif
