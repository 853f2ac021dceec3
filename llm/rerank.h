/* rerank.h — the optional rerank stage: POST {base_url}/rerank with
 * {"model","query","documents":[...],"top_n"} (Jina/Cohere shape, accepted
 * by llama.cpp, vLLM and TEI) and read either `results[].relevance_score`
 * or TEI's bare array [{index, score}]. The answer pipeline calls it once
 * per question; on any error or timeout the caller keeps the fused order.
 * Immutable after creation; safe to share between threads.
 *
 * Configuration: [rerank] base_url, model, api_key, timeout_ms, top_n. */
#ifndef LLM_RERANK_H
#define LLM_RERANK_H

#include <stddef.h>
#include "zk.h"
#include "config.h"

typedef struct llm_reranker llm_reranker;

/* NULL *out (and ZK_OK) when [rerank] base_url is empty. */
zk_rc llm_reranker_from_config(const zk_config *cfg, llm_reranker **out, char *err);
/* Direct construction (tests); model and api_key may be NULL. */
zk_rc llm_reranker_new(const char *base_url, const char *model, const char *api_key, long timeout_ms,
                       int top_n, llm_reranker **out, char *err);
void llm_reranker_free(llm_reranker *r);
/* How many fused candidates to send ([rerank] top_n). */
int llm_reranker_candidates(const llm_reranker *r);

/* Rank docs[0..n) for query: order[0..*out_n) receives document indices,
 * best first (every index at most once; indices the server did not score
 * are appended in their original order so *out_n == n). order has n slots. */
zk_rc llm_rerank(const llm_reranker *r, const char *query, const char *const *docs, size_t n, size_t *order,
                 size_t *out_n, char *err);

#endif
