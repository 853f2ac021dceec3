/* blob.h — original uploads, content-addressed under DATA_DIR/blobs/: the
 * file of SHA-256 "abcdef..." is blobs/ab/cdef... (62 hex characters). A
 * blob is written once (temp file + fsync + rename + directory fsync) and
 * never modified, so equal uploads share one file and backups may hard-link
 * them. documents.blob_sha256 points a document at its original.
 * Called by the server on upload (sizes are capped by the caller) and when
 * serving /documents/{doc}/file (after its ACL check). Blobs no document
 * refers to are not deleted here. Any number of threads/processes may put
 * the same blob concurrently; each store is used by one thread. */
#ifndef RET_BLOB_H
#define RET_BLOB_H

#include <stddef.h>
#include <stdint.h>
#include "zk.h"
#include "retrieval/store.h"

/* Store data; its lowercase hex SHA-256 goes to sha_hex_out. Existing
 * content is not rewritten. */
zk_rc ret_blob_put(ret_store *s, const void *data, size_t len, char sha_hex_out[65], char *err);

/* The path of blob sha (64 lowercase hex) into buf; ZK_INVALID for a
 * malformed sha, ZK_TOOBIG when cap is too small. Does not check existence. */
zk_rc ret_blob_path(ret_store *s, const char *sha, char *buf, size_t cap, char *err);

/* Open a blob read-only for serving (e.g. a response from an fd): *out_fd
 * (caller closes) and *out_size. ZK_NOTFOUND when it is not there. */
zk_rc ret_blob_open(ret_store *s, const char *sha, int *out_fd, int64_t *out_size, char *err);

/* Read a whole blob into memory (at most max_len bytes, else ZK_TOOBIG) and
 * check its hash (ZK_CORRUPT on mismatch). *out_data is caller-freed with
 * zk_free (one extra NUL byte is appended, not counted in *out_len). */
zk_rc ret_blob_read(ret_store *s, const char *sha, size_t max_len, void **out_data, size_t *out_len, char *err);

/* Point document doc_id at blob sha (NULL clears it); ZK_NOTFOUND for an
 * unknown document. The caller checked the document's ACL. */
zk_rc ret_doc_set_blob(ret_store *s, int64_t doc_id, const char *sha, char *err);
/* The document's blob sha into out_sha; ZK_NOTFOUND when it has none. */
zk_rc ret_doc_blob(ret_store *s, int64_t doc_id, char out_sha[65], char *err);

#endif
