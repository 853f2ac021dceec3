/* vindex.h — the FAISS vector index, a derived cache of the `vectors` table.
 *
 * Wraps a FAISS index (through the FAISS C API only) that maps chunk ids to
 * L2-normalised float vectors and is searched by inner product. The store
 * (retrieval/store.c) owns the replay of the `changes` log: it calls
 * ret_vindex_add/remove and records the last applied change sequence here;
 * ret_vindex_save() writes the snapshot and that sequence atomically
 * (temp file + fsync + rename) so a crash never leaves a torn snapshot.
 * ret_vindex_open() on a missing or corrupt snapshot returns an EMPTY index
 * with applied_seq 0 (and *out_rebuilt = 1) — never an error — so the caller
 * rebuilds from SQLite.
 *
 * Large indexes switch from exact search to an IVF index built by a
 * background thread owned by the index (see vindex.c); writer calls swap a
 * finished build in.
 *
 * Not thread-safe for writers; concurrent searches are safe only when no
 * add/remove/save/upgrade runs at the same time (caller holds a rwlock).
 * The background build synchronises with writers internally. */
#ifndef RET_VINDEX_H
#define RET_VINDEX_H

#include <stddef.h>
#include <stdint.h>
#include "zk.h"
#include "retrieval/colidx.h"

typedef struct ret_vindex ret_vindex;

/* Open (or create) the index stored under dir (created if needed) for
 * vectors of dimension dim. A snapshot of another dimension counts as
 * corrupt. */
zk_rc ret_vindex_open(const char *dir, int dim, ret_vindex **out, int *out_rebuilt, char *err);

/* Layouts. AUTO: exact (FAISS IDMap2,Flat), IVF past a size in the
 * background. COLUMNS: zhiku's column index (retrieval/colidx.h), exact at
 * any size and fast for queries with few nonzero dimensions — the builtin
 * embedder's. A snapshot of the other layout is rebuilt (out_rebuilt). */
enum { RET_VINDEX_AUTO = 0, RET_VINDEX_COLUMNS = 1 };
zk_rc ret_vindex_open_layout(const char *dir, int dim, int layout, ret_vindex **out, int *out_rebuilt, char *err);
int ret_vindex_layout(const ret_vindex *vi);
void ret_vindex_free(ret_vindex *vi);

int ret_vindex_dim(const ret_vindex *vi);
int64_t ret_vindex_count(const ret_vindex *vi);

/* Last change sequence whose effect is in the index. */
int64_t ret_vindex_applied_seq(const ret_vindex *vi);
void ret_vindex_set_applied_seq(ret_vindex *vi, int64_t seq);

/* Add n vectors (n*dim floats) with the given ids. An id already present is
 * replaced. */
zk_rc ret_vindex_add(ret_vindex *vi, size_t n, const int64_t *ids, const float *vecs, char *err);
/* Remove ids (absent ids are ignored). */
zk_rc ret_vindex_remove(ret_vindex *vi, size_t n, const int64_t *ids, char *err);
/* Drop everything (applied_seq back to 0). */
zk_rc ret_vindex_reset(ret_vindex *vi, char *err);

/* k nearest by inner product. Writes up to k results, best first; *out_n is
 * the number written (< k when the index holds fewer). */
zk_rc ret_vindex_search(const ret_vindex *vi, const float *query, int k,
                        int64_t *out_ids, float *out_scores, int *out_n, char *err);

/* k nearest among the `allowed` ids only (sorted ascending, n_allowed of
 * them). Never returns an id outside `allowed`. Scans with a bitmap of the
 * allowed ids (every row of a flat index; on IVF, nprobe widened as the
 * allowed fraction shrinks, all lists for small sets); allowed sets tiny
 * next to a flat index are scored id by id (bench/vindex_filter_bench.c).
 * Same output contract as ret_vindex_search. */
zk_rc ret_vindex_search_allowed(const ret_vindex *vi, const float *query, int k,
                                const int64_t *allowed, size_t n_allowed,
                                int64_t *out_ids, float *out_scores, int *out_n, char *err);

/* The same two searches with a team (retrieval/colidx.h, may be NULL):
 * another thread in ret_colidx_team_help() shares a column index's scans.
 * Other index types search alone. */
zk_rc ret_vindex_search_team(const ret_vindex *vi, ret_colidx_team *team, const float *query, int k,
                             int64_t *out_ids, float *out_scores, int *out_n, char *err);
zk_rc ret_vindex_search_allowed_team(const ret_vindex *vi, ret_colidx_team *team, const float *query, int k,
                                     const int64_t *allowed, size_t n_allowed, int64_t *out_ids,
                                     float *out_scores, int *out_n, char *err);

/* All ids currently in the index, sorted ascending (caller frees). For
 * consistency checks. */
zk_rc ret_vindex_ids(const ret_vindex *vi, int64_t **out_ids, size_t *out_n, char *err);

/* A column index opened from its snapshot reads its blocks in the mapped
 * file; promote copies up to max_blocks of them into memory of its own
 * (faster scans: see retrieval/colidx.h), under a read lock (writers
 * excluded, searches may run); returns the blocks moved (0 when none are
 * left, and for other kinds). drop_mapping then unmaps the file, under a
 * write lock. */
size_t ret_vindex_promote(ret_vindex *vi, size_t max_blocks);
void ret_vindex_drop_mapping(ret_vindex *vi);

/* 1 when a background build has finished and waits to be swapped in by
 * ret_vindex_upgrade() (cheap; safe under a read lock). */
int ret_vindex_upgrade_ready(const ret_vindex *vi);
/* Process-wide: start ANN builds in the background as indexes open or grow
 * (default on; the CLI turns it off except for serve, ingest and reindex,
 * whose ret_vindex_upgrade(wait = 1) at the end still builds when due). */
void ret_vindex_auto_builds(int on);
/* Writer call: swap a finished background build in. With wait != 0, first
 * start a build if the size policy asks for one and wait for it (for the
 * end of a CLI ingest, so the saved snapshot is already IVF). */
zk_rc ret_vindex_upgrade(ret_vindex *vi, int wait, char *err);

/* Persist snapshot + applied_seq atomically (swaps a finished build in
 * first). */
zk_rc ret_vindex_save(ret_vindex *vi, char *err);

#endif
