/* ocr.h — client for an external OCR HTTP service (contract in docs/OCR.md).
 *
 * The PDF parser sends pages without a text layer here as PNG images and gets
 * their text back. The service is configured once at start-up from the
 * [ocr] section (url, api_key, timeout_ms) by whoever loads the config (CLI,
 * server) before any parsing starts; after that the settings are read-only,
 * so idx_ocr_page() is thread-safe. With no url configured OCR is disabled. */
#ifndef IDX_OCR_H
#define IDX_OCR_H

#include <stddef.h>
#include "zk.h"

/* Set (or with url NULL/"" clear) the OCR service. Copies the strings.
 * api_key may be NULL/"" (no Authorization header); timeout_ms <= 0 means
 * 60000. Call once at start-up, before parsing; not thread-safe itself. */
zk_rc idx_ocr_configure(const char *url, const char *api_key, long timeout_ms);
/* The configuration as set (url NULL = none), for the sandbox helper
 * processes, which parse and so call the service (indexer/sandbox.c). */
void idx_ocr_get(const char **url, const char **api_key, long *timeout_ms);

/* 1 when an OCR url is configured. */
int idx_ocr_enabled(void);

/* POST one page image (PNG bytes) to the service; page is the 1-based page
 * number sent as X-Zhiku-Page. On success *out_text is the page's UTF-8 text
 * (NUL-terminated, caller frees with zk_free) and *out_len its length.
 * Errors: ZK_CONFIG when OCR is not configured, ZK_IO on transport errors
 * or a non-200 answer, ZK_PARSE on an unreadable answer, ZK_TOOBIG when the
 * answer exceeds 16 MiB. */
zk_rc idx_ocr_page(const void *png, size_t png_len, int page, char **out_text, size_t *out_len,
                   char *err);

#endif
