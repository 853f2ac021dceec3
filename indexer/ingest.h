/* ingest.h — the ingestion pipeline: read → (sandboxed helper process)
 * detect charset and format → parse → chunk → embed → tokenize → write. The
 * calling thread walks the inputs, skips unchanged documents (SHA-256) and
 * writes results (batch_docs documents per transaction, each document
 * atomic); `workers` threads parse, chunk, embed and tokenize in parallel,
 * so both cores stay busy. Handles single files, folder trees and JSONL bulk
 * imports; a changed document replaces its chunks atomically; a failed one
 * is recorded with its reason. Each outcome is reported through a callback
 * (the CLI prints it). An ingester is driven by one thread; one ingester
 * per store. */
#ifndef IDX_INGEST_H
#define IDX_INGEST_H

#include <stddef.h>
#include <stdint.h>
#include "zk.h"
#include "config.h"
#include "retrieval/store.h"
#include "llm/embed.h"
#include "indexer/chunker.h"
#include "indexer/sandbox.h"

typedef enum { IDX_INDEXED = 0, IDX_UNCHANGED, IDX_REPLACED, IDX_FAILED, IDX_SKIPPED, IDX_PRUNED, IDX__NSTATUS } idx_status;
const char *idx_status_name(idx_status st);

typedef void (*idx_report_cb)(void *ctx, const char *ext_id, idx_status st, size_t nchunks,
                              const char *reason);

typedef struct {
    idx_chunk_opts chunk;
    size_t max_file_bytes;
    int batch_docs;            /* documents per write transaction */
    int64_t kb;
    /* read grants for the documents: new documents get acl[] (the caller
     * passes [acl] default_read when no --acl was given); with acl_replace
     * (an explicit --acl) existing and unchanged documents get them too */
    const int64_t *acl;
    size_t nacl;
    int acl_replace;
    const char *tags;          /* JSON object of metadata tags merged into every document, or NULL */
    int workers;               /* parse+embed threads (>= 1) */
    int retry_failed;          /* re-parse unchanged documents that failed before */
    int prune;                 /* after a folder walk, remove documents whose file is gone */
    int no_save;               /* finish without saving the vector snapshot (the server saves at exit) */
    int bulk;                  /* a bulk load (the CLI): merge the text index lazily while it runs */
    long wal_bound;            /* WAL bytes past which the writer checkpoints (0: 64 MB; tests set less) */
    idx_sandbox_opts sandbox;
    idx_report_cb report;      /* may be NULL */
    void *report_ctx;
} idx_ingest_opts;

typedef struct {
    size_t count[IDX__NSTATUS];
    size_t chunks;             /* chunks written */
    size_t bytes;              /* source bytes read */
    size_t text_bytes;         /* UTF-8 text extracted from the documents written */
} idx_ingest_stats;

typedef struct idx_ingester idx_ingester;

void idx_ingest_opts_init(idx_ingest_opts *o, const zk_config *cfg);
zk_rc idx_ingester_new(ret_store *s, llm_embedder *emb, const idx_ingest_opts *o,
                       idx_ingester **out, char *err);
/* Commit pending writes, bring the vector index up to date and save it. */
zk_rc idx_ingester_finish(idx_ingester *ing, char *err);

/* Lower the calling thread's CPU priority (Linux per-thread nice 10) below
 * the ingester's writer thread, the pipeline's bottleneck: the workers do
 * it, and so does a caller whose thread only feeds the ingester (the CLI).
 * Best effort. */
void idx_below_writer(void);
void idx_ingester_free(idx_ingester *ing);   /* rolls back unfinished work */
const idx_ingest_stats *idx_ingester_stats(const idx_ingester *ing);

/* A file or a folder (recursive; hidden entries, symlinks leaving the folder
 * and non-regular files are skipped). Per-document failures are reported
 * and counted, not returned; the return value is for fatal errors (I/O on
 * the database, model mismatch). */
zk_rc idx_ingest_path(idx_ingester *ing, const char *path, char *err);
/* JSONL: {"id"|"_id", "title", "text", "metadata"?} per line. */
zk_rc idx_ingest_jsonl(idx_ingester *ing, const char *path, char *err);
/* One JSONL-shaped document {"id"|"_id","title","text","metadata"?} from
 * memory; where labels it in reports. */
zk_rc idx_ingest_json(idx_ingester *ing, const char *json, size_t len, const char *where, char *err);
/* One document from memory (any supported format; name is the file name). */
zk_rc idx_ingest_bytes(idx_ingester *ing, const char *ext_id, const char *source, const char *name,
                       const char *data, size_t len, char *err);

#endif
