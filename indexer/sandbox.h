/* sandbox.h — run idx_parse() in a short-lived child process with resource
 * limits, so a parser crash, hang or memory blow-up on one hostile document
 * costs that document only, never the ingesting process.
 *
 * The child gets CPU-time, address-space and no-file-write limits; the parent
 * enforces a wall-clock deadline and a cap on the size of the result, and
 * turns every abnormal end into a clear error for the document ("parser
 * exceeded the CPU-time limit (60 s)", "parser crashed (signal 11: SIGSEGV)").
 * Thread-safe: each call forks its own child and shares no state. */
#ifndef IDX_SANDBOX_H
#define IDX_SANDBOX_H

#include <stddef.h>
#include "zk.h"
#include "config.h"
#include "indexer/parse/parse.h"

typedef struct {
    int enabled;          /* 0: parse in-process (no fork, no limits) */
    int cpu_seconds;      /* RLIMIT_CPU of the child; <= 0 = none */
    long memory_mb;       /* extra address space the child may map; <= 0 = none */
    int wall_seconds;     /* wall-clock deadline; <= 0 = none */
    long max_output_mb;   /* largest serialized result accepted; <= 0 = 2 GiB */
} idx_sandbox_opts;

/* Fill from the [sandbox] section of cfg (cfg may be NULL: defaults). */
void idx_sandbox_opts_init(idx_sandbox_opts *o, const zk_config *cfg);

/* Same contract as idx_parse(): on ZK_OK *out is a new document the caller
 * frees with idx_parsed_free(); otherwise *out is NULL and err says why.
 * Limit breaches return ZK_TOOBIG, crashes and garbled results ZK_PARSE;
 * parser errors (ZK_UNSUPPORTED, ...) pass through with their message.
 * Never returns ZK_NOMEM for a child that ran out of memory (that is the
 * document's fault, not the process's). */
zk_rc idx_sandbox_parse(const idx_sandbox_opts *o, const char *name, const char *data, size_t len,
                        idx_parsed **out, char *err);

#endif
