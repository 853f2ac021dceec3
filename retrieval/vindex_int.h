/* vindex_int.h — internals of retrieval/vindex.c shared with its unit test
 * and the benchmarks (bench/vindex_filter_bench.c, vindex_scale_bench.c):
 * forcing the allowed-set search strategy, and the size thresholds and IVF
 * parameters, which tests lower to exercise the IVF path on small data.
 * Not part of the public API. */
#ifndef RET_VINDEX_INT_H
#define RET_VINDEX_INT_H

#include "retrieval/vindex.h"

enum { VIA_AUTO = 0, VIA_EXACT = 1, VIA_SELECTOR = 2 };

zk_rc ret__vindex_search_allowed_via(const ret_vindex *vi, int strategy, const float *query, int k,
                                     const int64_t *allowed, size_t n_allowed, int64_t *out_ids,
                                     float *out_scores, int *out_n, char *err);

/* Size policy and IVF parameters; 0 in a field keeps the default. */
typedef struct {
    int64_t ivf_threshold;  /* flat below, IVF from this many vectors */
    int nlist;              /* fixed nlist instead of 4 sqrt(n) */
    int nprobe;             /* fixed nprobe instead of max(16, nlist/64) */
    int sq8;                /* 1: IVF,SQ8; 2: IVF,Flat; 3: IVF,SQfp16 (0: IVF_CODE) */
    int build_threads;      /* OpenMP threads of the build thread */
    /* column index pruning (vindex.c COLS_PRUNE_*); negative: never prune */
    int64_t cols_prune_rows;/* prune from this many rows */
    int cols_prune_top;     /* first-pass dimensions */
    int cols_prune_cand_per_k;
    int cols_prune_cand_min;
} ret__vindex_tuning;

/* Replace the tuning (call right after open, before adds); then start a
 * build at once if the new policy asks for one. */
void ret__vindex_tune(ret_vindex *vi, const ret__vindex_tuning *t);
/* Index kind now in use: 1 flat, 2 IVF, 3 columns; *out_nlist gets nlist (0 unless IVF). */
int ret__vindex_kind(const ret_vindex *vi, int *out_nlist);
/* Wall seconds of the last completed build (0 if none). */
double ret__vindex_build_secs(const ret_vindex *vi);

#endif
