/* search.h — hybrid retrieval: BM25 over the FTS5 index and k-NN over the
 * FAISS index, fused by weighted reciprocal rank fusion.
 *
 * The query is tokenized with the same tokenizer as the index and turned
 * into an OR of its distinct terms, so natural-language questions rank by
 * BM25 instead of requiring every word. Each hit reports its rank in each
 * list (0 = absent), the raw signals (BM25 score, cosine similarity) and the
 * fused score. Called by the CLI, the answerer and (later) the server; one
 * call per query, allocation proportional to the candidate count. */
#ifndef RET_SEARCH_H
#define RET_SEARCH_H

#include <stddef.h>
#include <stdint.h>
#include "zk.h"
#include "config.h"
#include "retrieval/store.h"
#include "llm/embed.h"
#include "retrieval/acl.h"

#define RET_MAX_FILTERS 8

typedef enum { RET_MODE_HYBRID = 0, RET_MODE_BM25, RET_MODE_VECTOR } ret_mode;

typedef struct {
    ret_mode mode;
    int top_k;            /* hits returned */
    int bm25_k;           /* BM25 candidates */
    int vector_k;         /* vector candidates */
    double rrf_k;         /* RRF constant (60) */
    double w_bm25, w_vector;
    double heading_weight;/* BM25 column weight of the heading path */
    int max_query_terms;
    int bm25_budget;      /* rows the BM25 matching terms may select (rank.h) */
    int bm25_max_rows;    /* rows BM25 ranks at most, newest first; <= 0: all */
    int bm25_max_matches; /* matches BM25 walks at most, newest first (at
                           * least bm25_max_rows); <= 0: all */
    int64_t kb;           /* knowledge base id */
    int ids_only;         /* skip loading text and snippets (batch evaluation) */
    const ret_caller *caller;   /* REQUIRED: whose permissions apply */
    /* metadata filters: documents whose metadata[key] == value (all must hold) */
    const char *filter_key[RET_MAX_FILTERS];
    const char *filter_value[RET_MAX_FILTERS];
    int nfilters;
} ret_search_opts;

/* Add a "key=value" metadata filter; ZK_INVALID on bad syntax or too many. */
zk_rc ret_search_add_filter(ret_search_opts *o, char *key_eq_value, char *err);

typedef struct {
    int64_t chunk_id, doc_id;
    char *ext_id;         /* external document id */
    char *source, *title, *heading, *text, *snippet;
    int page, ordinal;
    int64_t start, end;   /* code-point span of the chunk in its document */
    double score;         /* fused RRF score */
    int bm25_rank, vector_rank;  /* 1-based; 0 = not in that list */
    double bm25;          /* raw BM25 (higher is better), 0 when absent */
    double vector_sim;    /* cosine similarity, 0 when absent */
} ret_hit;

zk_rc ret_mode_parse(const char *s, ret_mode *out);
const char *ret_mode_name(ret_mode m);
/* Defaults from [search] in the config (cfg may be NULL). */
void ret_search_opts_init(ret_search_opts *o, const zk_config *cfg);

/* Search under opts->caller's permissions: the BM25 query, the vector
 * search and the loading of hits are each restricted to documents the
 * caller may read (and that pass the metadata filters). *out_hits (caller
 * frees with ret_hits_free) holds up to top_k hits, best first. embedder
 * may be NULL in BM25 mode. */
zk_rc ret_search(ret_store *s, llm_embedder *emb, const char *query, const ret_search_opts *opts,
                 ret_hit **out_hits, size_t *out_n, char *err);
void ret_hits_free(ret_hit *hits, size_t n);

/* The FTS5 MATCH expression zhiku builds for a query ("" when the query has
 * no indexable term). Caller frees. Exposed for tests and `--explain`. */
zk_rc ret__fts_query(const char *query, int max_terms, char **out, char *err);
/* The BM25 query zhiku runs (rank.h): the MATCH expression, the per-phrase
 * weights (document frequencies; 0 = matching only) for zk_bm25 and the
 * most rows the expression can match. An empty expression when no term
 * occurs anywhere. nrows: the corpus size now. */
struct ret_termstats;
zk_rc ret__bm25_plan(sqlite3 *db, struct ret_termstats *ts, int64_t nrows, const char *query, int max_terms,
                     int budget, char **out_match, double **out_w, int *out_nw, int64_t *out_bound, char *err);

#endif
