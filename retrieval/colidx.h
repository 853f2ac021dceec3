/* colidx.h — the column index: exact inner-product search that reads only
 * the dimensions a query uses.
 *
 * The builtin embedder hashes a text's features into `dim` buckets: a
 * 500-character chunk fills most of them, a question only a few (measured
 * on the eval sets at 512 dimensions: 26-31 nonzero for Chinese questions,
 * ~70 for English ones, ~33 for the scale benchmark's queries). An exact
 * score is a sum over the query's nonzero dimensions only, so vectors are
 * stored by column (float16), in blocks of rows (COLIDX_BLOCK_ROWS in a
 * small index; 16384 from 131,072 rows and 65536 from 524,288, rows moved
 * into the larger blocks as the index grows past those sizes): a
 * search streams nnz(query) columns of each block through a block-sized
 * accumulator and keeps the top k — exact results (recall 1 by
 * construction) at nnz/dim of a full scan's memory traffic. IVF on these
 * vectors found a third of the true top 10 (docs/PERFORMANCE.md). Dense
 * queries (remote embedders) gain nothing: retrieval/vindex.c uses this
 * layout for the builtin embedder's knowledge bases only.
 *
 * Not thread-safe for writers; searches may run concurrently with each
 * other (vindex.c serialises writers against searches). */
#ifndef RET_COLIDX_H
#define RET_COLIDX_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "zk.h"

#define COLIDX_BLOCK_ROWS 2048   /* rows per block below 131,072 rows */

typedef struct ret_colidx ret_colidx;

/* A team lets other threads help with one search's scans. The thread
 * searching (with the team passed to ret_colidx_search_pruned or
 * ret_colidx_search_ids) offers each scan to the team; a thread in
 * ret_colidx_team_help claims blocks (or runs of rows) from the same
 * counter, keeps its own top k and hands it back before the scan ends.
 * Results are the same as alone (ties go by id whichever thread scored a
 * row). A hybrid search scans on a second thread while the calling thread
 * runs BM25, which then helps with the rest (retrieval/search.c). */
typedef struct ret_colidx_team ret_colidx_team;

ret_colidx_team *ret_colidx_team_new(void);
void ret_colidx_team_free(ret_colidx_team *t);
/* Help with every scan offered until ret_colidx_team_close(); waits for
 * offers in between. Returns how many blocks or runs this thread scored.
 * A helper that cannot allocate its scratch leaves the work to the
 * others. */
size_t ret_colidx_team_help(ret_colidx_team *t);
/* No more scans will be offered: helpers return. */
void ret_colidx_team_close(ret_colidx_team *t);

ret_colidx *ret_colidx_new(int dim);
void ret_colidx_free(ret_colidx *c);
size_t ret_colidx_count(const ret_colidx *c);
int ret_colidx_has(const ret_colidx *c, int64_t id);

/* Add n vectors (float[dim] each) under ids >= 0; an id already present
 * gets the new vector (the last one when a batch repeats it). */
zk_rc ret_colidx_add(ret_colidx *c, size_t n, const int64_t *ids, const float *vecs, char *err);
/* Remove ids; absent ones are ignored. Never fails. */
void ret_colidx_remove(ret_colidx *c, size_t n, const int64_t *ids);
void ret_colidx_clear(ret_colidx *c);
/* Every id present, in row order, into out[ret_colidx_count()]. */
void ret_colidx_ids(const ret_colidx *c, int64_t *out);

/* The k best rows by inner product with query, best first. With bitmap
 * (bit id of bitmap[id >> 3], ids beyond bitmap_len * 8 excluded) only
 * the ids it marks. */
zk_rc ret_colidx_search(const ret_colidx *c, const float *query, int k, const uint8_t *bitmap,
                        size_t bitmap_len, int64_t *out_ids, float *out_scores, int *out_n, char *err);
/* Approximate: every row scored on the query's `top` heaviest nonzero
 * dimensions (by |weight|), the best ncand of those rescored exactly over
 * all of them. Exact (ret_colidx_search) when the query has no more than
 * top nonzero dimensions or top <= 0. Recall measured in PERFORMANCE.md.
 * With team (may be NULL), its helpers share the block scans. */
zk_rc ret_colidx_search_pruned(const ret_colidx *c, const float *query, int k, int top, int ncand,
                               const uint8_t *bitmap, size_t bitmap_len, ret_colidx_team *team, int64_t *out_ids,
                               float *out_scores, int *out_n, char *err);
/* Exact scores of the listed ids that are present, best k first: for
 * allowed sets much smaller than the index. With team (may be NULL), its
 * helpers share the work. */
zk_rc ret_colidx_search_ids(const ret_colidx *c, const float *query, int k, const int64_t *ids, size_t n,
                            ret_colidx_team *team, int64_t *out_ids, float *out_scores, int *out_n, char *err);

/* Snapshot payload: "ZKCOLS1\0", dim, block rows, n, ids, then the blocks
 * in use (little-endian). read copies out of p, which may be a mapping. */
zk_rc ret_colidx_write(const ret_colidx *c, FILE *f, char *err);
zk_rc ret_colidx_read(const unsigned char *p, size_t len, int dim, ret_colidx **out, char *err);
/* The same without copying the blocks: they stay in the mapping
 * [map, map + map_len) (MAP_PRIVATE, writable: an update copies a page),
 * which the index owns from then on and unmaps when freed (also on
 * failure). p must lie inside the mapping. */
zk_rc ret_colidx_read_mapped(unsigned char *p, size_t len, int dim, void *map, size_t map_len, ret_colidx **out,
                             char *err);

/* Copy up to max_blocks of the blocks still in the snapshot mapping into
 * memory of the index's own, on 2 MB pages (faster scans); returns how
 * many (0: none left, out of memory, or nothing to gain: blocks not a
 * multiple of 2 MB, i.e. dim not a multiple of 512, or transparent huge
 * pages off).
 * Writers must be excluded; searches may run meanwhile (a search that took
 * a block's old address reads the same values there). */
size_t ret_colidx_promote(ret_colidx *c, size_t max_blocks);
/* Unmap the snapshot once no block lives in it (1 then, or if there was
 * none; 0 while some block still does). No search or writer may run. */
int ret_colidx_drop_mapping(ret_colidx *c);

#endif
