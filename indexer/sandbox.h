/* sandbox.h — run idx_parse() in a sandboxed child process with resource
 * limits, so a parser crash, hang or memory blow-up on one hostile document
 * costs that document only, never the ingesting process.
 *
 * An idx_sandbox is one long-lived helper process that parses documents one
 * after another: the ingestion workers keep one each, so a folder of
 * thousands of files costs a handful of forks, not one per file. The child
 * gets per-document CPU-time and address-space limits and no-file-write
 * limits; the parent enforces a wall-clock deadline and a cap on the size of
 * the result, and turns every abnormal end into a clear error for the
 * document ("parser exceeded the CPU-time limit (60 s)", "parser crashed
 * (signal 11: SIGSEGV)"); the helper is then replaced by a fresh one on the
 * next document. */
#ifndef IDX_SANDBOX_H
#define IDX_SANDBOX_H

#include <stddef.h>
#include "zk.h"
#include "config.h"
#include "indexer/parse/parse.h"

typedef struct {
    int enabled;          /* 0: parse in-process (no child, no limits) */
    int cpu_seconds;      /* CPU time per document; <= 0 = none */
    long memory_mb;       /* extra address space a document's parse may map; <= 0 = none */
    int wall_seconds;     /* wall-clock deadline per document; <= 0 = none */
    long max_output_mb;   /* largest serialized result accepted; <= 0 = 2 GiB */
} idx_sandbox_opts;

/* Fill from the [sandbox] section of cfg (cfg may be NULL: defaults). */
void idx_sandbox_opts_init(idx_sandbox_opts *o, const zk_config *cfg);

typedef struct idx_sandbox idx_sandbox;

/* A helper for o (copied). No process starts until the first document.
 * NOT thread-safe: one thread uses an idx_sandbox; its helper process is
 * killed when that thread exits (PR_SET_PDEATHSIG) or on idx_sandbox_free(). */
zk_rc idx_sandbox_new(const idx_sandbox_opts *o, idx_sandbox **out, char *err);
/* Kills and reaps the helper, if any. NULL is a no-op. */
void idx_sandbox_free(idx_sandbox *sb);

/* Same contract as idx_parse(): on ZK_OK *out is a new document the caller
 * frees with idx_parsed_free(); otherwise *out is NULL and err says why.
 * Limit breaches return ZK_TOOBIG, crashes and garbled results ZK_PARSE;
 * parser errors (ZK_UNSUPPORTED, ...) pass through with their message.
 * Never returns ZK_NOMEM for a child that ran out of memory (that is the
 * document's fault, not the process's). */
zk_rc idx_sandbox_run(idx_sandbox *sb, const char *name, const char *data, size_t len,
                      idx_parsed **out, char *err);

/* One document in a helper of its own (started and reaped by the call).
 * Thread-safe. */
zk_rc idx_sandbox_parse(const idx_sandbox_opts *o, const char *name, const char *data, size_t len,
                        idx_parsed **out, char *err);

#endif
