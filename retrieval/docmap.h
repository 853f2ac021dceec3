/* docmap.h — retrieval's in-memory access map: which document each live
 * chunk belongs to, each document's knowledge base, and, per caller, a bitmap
 * of the documents it may read. Search consults it for every candidate row
 * (BM25 rows in the FTS5 query through the SQL function zk_chunk_ok, vector
 * ids after FAISS) instead of joining chunks, documents and doc_acl per row,
 * which cost ~2 us of B-tree probes per matched row and made a user's search
 * 100x slower than the administrator's at 100k chunks.
 *
 * SQLite stays the truth: the map is built from the chunks table on first use
 * and kept current by replaying the change log (the one the vector index
 * replays); caller bitmaps are rebuilt when acl_version moves and extended
 * for documents added since. Hits are still re-checked in SQL as they are
 * loaded (search.c), so the map only ever decides what is considered.
 * One map per process and data directory (held by the ret_indexes registry),
 * shared by all connections; a rwlock guards it. */
#ifndef RET_DOCMAP_H
#define RET_DOCMAP_H

#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>
#include "zk.h"
#include "retrieval/acl.h"

typedef struct ret_docmap ret_docmap;
ret_docmap *ret_docmap_new(void);
void ret_docmap_free(ret_docmap *m);

/* A caller's view of one knowledge base, valid until ret_view_release(). */
typedef struct {
    ret_docmap *m;
    int admin;                  /* sees every document of the kb */
    int64_t kb;
    const uint64_t *bits;       /* readable document ids (non-admin) */
    size_t nbits;
    const int64_t *chunks;      /* readable live chunks of the kb, ascending; */
    size_t nchunks;             /* only when the caller reads a minority */
    size_t kb_chunks;           /* live chunks in the kb */
    size_t allowed_chunks;      /* of which the caller may read */
    size_t total_chunks;        /* live chunks in every kb (the FTS5 table) */
} ret_view;

/* Bring the map up to date with db and take a read view for caller on kb
 * (the list of readable chunks is built when want_list and the caller reads
 * less than half of the kb). Release with ret_view_release. */
zk_rc ret_docmap_view(ret_docmap *m, sqlite3 *db, const ret_caller *c, int64_t kb, int want_list,
                      ret_view *out, char *err);
void ret_view_release(ret_view *v);
/* Load the map now (a server before /readyz), without the row lengths:
 * ret_docmap_load_lengths() adds those afterwards, a step at a time (the
 * map is searchable meanwhile; BM25 asks FTS5 for lengths still unknown).
 * A map first loaded by a search has its lengths already. */
zk_rc ret_docmap_warm(ret_docmap *m, sqlite3 *db, char *err);
/* Load the row lengths of the next `ids` chunk ids under the write lock;
 * returns 1 while some are left. */
int ret_docmap_load_lengths(ret_docmap *m, sqlite3 *db, int64_t ids);
/* May the view's caller read chunk id (live, in the kb, granted)? */
int ret_view_chunk_ok(const ret_view *v, int64_t chunk_id);

/* Tokens in chunk id's row (all columns, as FTS5's xColumnSize(-1) counts
 * them), from FTS5's record when the map was loaded or brought up to date;
 * 0 when unknown (the caller asks FTS5). */
unsigned ret_view_chunk_len(const ret_view *v, int64_t chunk_id);

/* Registers zk_chunk_ok(rowid, view) on a connection: the view is bound with
 * sqlite3_bind_pointer(st, i, view, RET_VIEW_PTR, NULL). */
#define RET_VIEW_PTR "zhiku_view"
zk_rc ret_docmap_register(sqlite3 *db, char *err);

#endif
