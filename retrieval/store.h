/* store.h — the SQLite store: the single source of truth for knowledge
 * bases, documents, chunks (with their FTS5 rows), vectors and the change
 * log; plus the per-knowledge-base FAISS index derived from it.
 *
 * Opening applies the compiled-in migrations (schema/), sets WAL mode and
 * registers the "zhiku" FTS5 tokenizer. A document is written in one
 * transaction (a SAVEPOINT, so callers may batch several documents in an
 * outer ret_store_begin/commit): document row, chunks, FTS rows, vectors and
 * change-log entries — kill -9 at any moment leaves the old version or the
 * new one. The vector index is brought up to date by replaying `changes`.
 *
 * A ret_store (one SQLite connection) is used by one thread at a time; a
 * server gives each request a store from a pool, all sharing one
 * ret_indexes registry whose indexes are reader/writer locked. */
#ifndef RET_STORE_H
#define RET_STORE_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sqlite3.h>
#include "zk.h"
#include "retrieval/vindex.h"
#include "llm/embed.h"

typedef struct ret_store ret_store;

#define RET_OPEN_READONLY 1   /* no migrations; fails if the db is missing */

zk_rc ret_store_open(const char *data_dir, int flags, ret_store **out, char *err);
void ret_store_close(ret_store *s);   /* saves dirty vector snapshots */

sqlite3 *ret_store_db(ret_store *s);
/* Most chunk ids one change-log row may cover (schema/005): a sanity bound
 * for readers of the `changes` table. */
#define RET_MAX_RUN (1 << 24)
/* zhiku's busy handler (short sleeps first, gives up after ~10 s) on db. */
void ret__busy_handler(sqlite3 *db);
/* The process-wide access map of this data directory (retrieval/docmap.h). */
struct ret_docmap *ret__store_docmap(ret_store *s);
/* A unit of work on db: BEGIN IMMEDIATE when no transaction is open (*own
 * = 1), else SAVEPOINT savepoint; end it with COMMIT/RELEASE when rc is
 * ZK_OK (returning a commit failure), else roll it back. */
zk_rc ret__tx_begin(sqlite3 *db, const char *savepoint, int *own, char *err);
zk_rc ret__tx_end(sqlite3 *db, const char *savepoint, int own, zk_rc rc, char *err);
/* ... and its term statistics (retrieval/rank.h). */
struct ret_termstats *ret__store_termstats(ret_store *s);
const char *ret_store_dir(const ret_store *s);
int ret_store_schema_version(ret_store *s);

/* Explicit outer transaction for batching many documents. */
zk_rc ret_store_begin(ret_store *s, char *err);
zk_rc ret_store_commit(ret_store *s, char *err);
void ret_store_rollback(ret_store *s);

/* ---- knowledge bases --------------------------------------------------- */

/* Id of knowledge base `name` (NULL = "default"); ZK_NOTFOUND if absent. */
zk_rc ret_kb_id(ret_store *s, const char *name, int64_t *out_kb, char *err);
/* Check (and on first use record) the embedding model and dimension of a
 * knowledge base. ZK_MISMATCH, pointing to `zhiku reindex`, when they differ
 * from what the knowledge base was built with. */
zk_rc ret_kb_check_model(ret_store *s, int64_t kb, const char *model, int dim, char *err);

/* ---- documents ----------------------------------------------------------- */

typedef struct {
    const char *ext_id;     /* external id: jsonl id or path; required */
    const char *source;     /* path or URI; defaults to ext_id */
    const char *title;      /* required */
    const char *format, *charset;
    const char *sha256;     /* hex of the original bytes; required */
    int64_t bytes;
    const char *metadata;   /* JSON object text or NULL */
    /* read grants (principal ids): a new document gets exactly these; an
     * existing one keeps its grants unless acl_replace is set */
    const int64_t *acl;
    size_t nacl;
    int acl_replace;
    /* the chunks' vectors already as float16 (zk_floats_to_halves), n * dim,
     * when the caller converted them off the writer thread; vecs unused then */
    const uint16_t *vec_halves;
} ret_doc_in;

typedef struct {
    const char *text;
    size_t len;
    const char *heading;    /* NULL = none */
    int page;
    int ordinal;
    int64_t start, end;     /* code-point span in the document text */
} ret_chunk_in;

typedef enum { RET_PUT_INDEXED = 0, RET_PUT_UNCHANGED, RET_PUT_REPLACED } ret_put_status;
const char *ret_put_status_name(ret_put_status st);

/* 1 in *out_same when ext_id exists in kb with this sha256 and is indexed
 * — or failed, unless retry_failed (a file that failed stays failed until
 * it changes or the caller asks to retry). */
zk_rc ret_doc_is_unchanged(ret_store *s, int64_t kb, const char *ext_id, const char *sha256,
                           int retry_failed, int *out_same, char *err);

/* Record a document that could not be ingested: a new one gets a row with
 * status 'failed' and the reason (no chunks, readable by doc->acl); an
 * existing one keeps its indexed content and gets the reason noted in
 * `error` (so `docs list --failed` shows it). */
zk_rc ret_doc_put_failed(ret_store *s, int64_t kb, const ret_doc_in *doc, const char *reason, char *err);

/* Insert or replace a document with its chunks and vectors (n * dim floats,
 * may be NULL when dim == 0) atomically. */
zk_rc ret_doc_put(ret_store *s, int64_t kb, const ret_doc_in *doc, const ret_chunk_in *chunks,
                  size_t n, const float *vecs, int dim, ret_put_status *out_status,
                  int64_t *out_doc_id, char *err);

/* Delete a document (chunks, FTS rows, vectors) atomically. */
zk_rc ret_doc_delete(ret_store *s, int64_t doc_id, char *err);

/* Find a document by numeric id or external id within kb (kb <= 0: any). */
zk_rc ret_doc_find(ret_store *s, int64_t kb, const char *ref, int64_t *out_doc_id, char *err);

/* ---- vector index ------------------------------------------------------------ */

/* The kb's vector index, opened (or rebuilt) and replayed up to the latest
 * change, returned READ-LOCKED: searches may run concurrently; release it
 * with ret_store_vindex_done(). Owned by the store's index registry. */
zk_rc ret_store_vindex_read(ret_store *s, int64_t kb, ret_vindex **out, char *err);
void ret_store_vindex_done(ret_store *s, ret_vindex *vi);
/* Same, released at once: for single-threaded use (CLI, checks, tests). */
zk_rc ret_store_vindex(ret_store *s, int64_t kb, ret_vindex **out, char *err);

/* Vector index layout policy of this process ([store] vector_layout):
 * RET_LAYOUT_AUTO picks the column index for the builtin embedder's
 * knowledge bases and FAISS for the others; the other two force one. */
enum { RET_LAYOUT_AUTO = 0, RET_LAYOUT_FAISS, RET_LAYOUT_COLUMNS };
void ret_store_vector_layout(int policy);
/* Parse "auto" | "faiss" | "columns"; -1 for anything else. */
int ret_store_parse_layout(const char *s);

/* A registry of vector indexes shared by several stores (connections) of
 * one data directory, so a server keeps each index in memory once. The
 * creator saves (ret_indexes_save) and frees it after closing the stores. */
typedef struct ret_indexes ret_indexes;
ret_indexes *ret_indexes_new(const char *data_dir);
zk_rc ret_indexes_save(ret_indexes *x, char *err);
void ret_indexes_free(ret_indexes *x);
void ret_store_share_indexes(ret_store *s, ret_indexes *x);
/* The registry s uses (its own or a shared one), to share it further. */
ret_indexes *ret_store_indexes(ret_store *s);
/* Replay changes into every open index; save snapshots when save = 1. */
zk_rc ret_store_sync(ret_store *s, int save, char *err);
/* Load the access map (every live chunk's document and kb) now rather
 * than in the first search, which would otherwise wait for it: about half
 * a second for a million chunks. The row lengths BM25 uses come after,
 * with ret_store_load_lengths (a step at a time; *stop, may be NULL, set
 * ends it early). */
zk_rc ret_store_warm_access(ret_store *s, char *err);
void ret_store_load_lengths(ret_store *s, const volatile int *stop);
/* Move the open column indexes' blocks out of their snapshot mappings
 * into memory of their own (ret_vindex_promote), one index at a time,
 * searches going on meanwhile; then unmap the files. Returns the blocks
 * moved. A server calls it once it is ready; *stop (may be NULL) set
 * ends it early (the rest stays mapped, which only scans slower). */
size_t ret_store_promote_indexes(ret_store *s, const volatile int *stop);

/* Re-embed every chunk of kb with emb (`zhiku reindex`, after [embedding]
 * changed): all new vectors, one change-log entry per chunk and the kb's
 * recorded model and dimension are written in ONE transaction, so a
 * failing embedder changes nothing. progress (may be NULL) is called after
 * each batch. The kb's vector index is reopened on next use. */
typedef void (*ret_progress_fn)(void *ctx, size_t done, size_t total);
zk_rc ret_kb_reembed(ret_store *s, int64_t kb, llm_embedder *emb, ret_progress_fn progress, void *pctx,
                     size_t *out_n, char *err);

/* Decode a stored vector (float16, or float32 from older databases) into
 * out[dim]; 0 when the blob has neither size. */
int ret__vector_decode(const void *blob, int bytes, int dim, float *out);

/* Consistency check used by `zhiku check` and the crash test: SQLite
 * integrity, every document complete (chunks = nchunks, FTS rows and
 * vectors present for each chunk), FTS integrity, and the vector index
 * after replay equal to the vectors table. Problems are printed to out. */
zk_rc ret_store_check(ret_store *s, FILE *out, int *out_problems, char *err);

/* Merge the full-text index's segments into one: after a bulk load BM25
 * reads one b-tree per term instead of one per segment (docs/PERFORMANCE.md:
 * 15-30% faster queries). Rewrites the whole index (~55 s at 1.25M
 * chunks) in steps of ~0.1 s, each its own transaction: searches go on,
 * writers wait one step at most. Segment counts before and after. */
zk_rc ret_store_optimize(ret_store *s, int *out_before, int *out_after, char *err);
/* Segments of the full-text index now. */
zk_rc ret_store_fts_segments(ret_store *s, int *out, char *err);

#endif
