/* rank.h — BM25 that stays fast on long posting lists. FTS5's bm25() walks
 * every query term's whole posting list once per query to count its
 * documents (the IDF), and reads each matched row's size with an SQL probe,
 * so an OR query whose terms are common costs microseconds per matched row:
 * 100 ms at 100k chunks. zhiku instead
 *   - keeps each term's document frequency in a process-wide cache
 *     (ret_termstats, refreshed when the corpus grows by a tenth),
 *   - matches only on the rarest terms, within a candidate budget, while the
 *     common terms still score the rows that match (search.c builds the
 *     expression "(rare...) AND (all terms...)", which FTS5 evaluates by
 *     skipping through the common terms' lists), and
 *   - ranks with zk_bm25(chunks_fts, heading_weight, weights), FTS5's own
 *     BM25 formula (k1 = 1.2, b = 0.75, column weights) with the IDF of
 *     each phrase passed in (a blob of doubles, one per phrase; 0 for the
 *     matching-only copies). Smaller is better, as with bm25(). */
#ifndef RET_RANK_H
#define RET_RANK_H

#include <stdint.h>
#include <sqlite3.h>
#include "zk.h"

zk_rc ret_rank_register(sqlite3 *db, char *err);

/* IDF as FTS5 computes it: log((N - df + 0.5) / (df + 0.5)), at least
 * RET_RANK_IDF_FLOOR (a term in half the rows or more gets the floor). */
#define RET_RANK_IDF_FLOOR 1e-6
double ret_rank_idf(int64_t nrows, int64_t df);
/* A BM25 plan leaves out a term past its row budget whose IDF is below
 * this (a term in more than ~38% of the rows): it adds at most
 * IDF * (k1 + 1) = 1.1 to a row's score, against ~8 for a term in 3% of
 * them, yet FTS5 walks its long list for every candidate. At 1.25M chunks:
 * BM25 p50 and p99 ~1.6x lower, recall@10 against the exhaustive ranking
 * 0.828 -> 0.826 (0.988 -> 0.984 at 125k); docs/PERFORMANCE.md. */
#define RET_RANK_IDF_DROP 0.5

typedef struct ret_termstats ret_termstats;
ret_termstats *ret_termstats_new(void);
void ret_termstats_free(ret_termstats *ts);
/* Cached document frequency of term (an FTS5 phrase, quoted) measured when
 * the corpus had at least nrows / 1.1 rows: 1 and *df, or 0. */
int ret_termstats_get(ret_termstats *ts, const char *term, int64_t nrows, int64_t *df);
void ret_termstats_put(ret_termstats *ts, const char *term, int64_t nrows, int64_t df);

#endif
