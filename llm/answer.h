/* answer.h — "ask": retrieve, answer, cite. Optionally rewrites a follow-up
 * into a standalone query, runs the hybrid search (optionally reranked),
 * applies the not-found gate on the raw signals, then answers with an LLM
 * provider (streamed, markers validated and renumbered as they arrive) or,
 * with no provider or for a local_only knowledge base with only remote
 * providers, with the extractive answerer; maps [n] markers back to chunks,
 * documents and character spans (溯源) with a support score per citation.
 * Shared by the CLI and the server; one call per question; the result owns
 * all its strings. */
#ifndef LLM_ANSWER_H
#define LLM_ANSWER_H

#include <stddef.h>
#include <stdint.h>
#include "zk.h"
#include "config.h"
#include "retrieval/search.h"
#include "llm/embed.h"
#include "llm/extractive.h"
#include "llm/chat.h"
#include "llm/cite.h"
#include "llm/prompt.h"
#include "llm/rerank.h"

typedef struct {
    int n;                 /* marker number [n], 1..ncitations in order of first use */
    int64_t chunk_id, doc_id;   /* doc_id: numeric database id */
    char *ext_id, *source, *title, *heading;   /* ext_id: the document id ("id" in JSON) */
    int page;
    int64_t start, end;    /* code-point span of the cited passage in the document */
    char *quote;           /* the cited passage (chunk text) */
    double support;        /* 0..1: share of the citing sentences' content terms found in the chunk */
    int weak;              /* support < [answer] weak_support */
} llm_citation;

typedef struct {
    char *answer;
    int not_found;
    llm_citation *citations;
    size_t ncitations;
    char provider[64];     /* the [llm] provider that answered, else "extractive" (also for the
                              not-found gate, which calls no model) */
    char *standalone;      /* the query used for retrieval (rewritten follow-up, or the question) */
    long prompt_tokens, completion_tokens;   /* summed over model calls; 0 when not reported */
} llm_result;

typedef struct {
    int top_sources;               /* hits given to the answerer */
    llm_extractive_opts extractive;
    const llm_providers *providers;  /* NULL: extractive answers (borrowed) */
    const llm_reranker *reranker;    /* NULL: fused order (borrowed) */
    int local_only;                /* never use remote providers (the kb's own flag is read too) */
    double min_bm25, min_similarity;   /* not-found gate on raw signals */
    long max_prompt_tokens;
    double weak_support;
    int rewrite_followups;
    const llm_turn *history;       /* previous turns, oldest first (borrowed) */
    size_t nhistory;
    /* streaming: called with checked text only (markers validated and
     * renumbered), in order; the concatenation equals result.answer. Return
     * non-zero to cancel (llm_ask then fails). NULL = no streaming. */
    llm_text_fn on_text;
    void *ctx;
} llm_answer_opts;

/* Defaults from [answer], [llm] rewrite_followups (providers and reranker
 * stay NULL: the caller creates and owns them). */
void llm_answer_opts_init(llm_answer_opts *o, const zk_config *cfg);

/* sopts->caller is required; its name is used for usage accounting. */
zk_rc llm_ask(ret_store *s, llm_embedder *emb, const char *question, const ret_search_opts *sopts,
              const llm_answer_opts *aopts, llm_result *out, char *err);
void llm_result_free(llm_result *r);

#endif
