/* vindex_int.h — internals of retrieval/vindex.c shared with its unit test
 * and bench/vindex_filter_bench.c: forcing the allowed-set search strategy.
 * Not part of the public API. */
#ifndef RET_VINDEX_INT_H
#define RET_VINDEX_INT_H

#include "retrieval/vindex.h"

enum { VIA_AUTO = 0, VIA_EXACT = 1, VIA_SELECTOR = 2 };

zk_rc ret__vindex_search_allowed_via(const ret_vindex *vi, int strategy, const float *query, int k,
                                     const int64_t *allowed, size_t n_allowed, int64_t *out_ids,
                                     float *out_scores, int *out_n, char *err);

#endif
