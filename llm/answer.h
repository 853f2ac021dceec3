/* answer.h — "ask": retrieve, answer, cite. Runs the hybrid search, hands
 * the top hits to the answerer (today the extractive one; LLM providers come
 * in a later issue) and maps the answer's [n] markers back to chunks,
 * documents and character spans (溯源). Shared by the CLI and the server.
 * One call per question; the result owns all its strings. */
#ifndef LLM_ANSWER_H
#define LLM_ANSWER_H

#include <stddef.h>
#include <stdint.h>
#include "zk.h"
#include "config.h"
#include "retrieval/search.h"
#include "llm/embed.h"
#include "llm/extractive.h"

typedef struct {
    int n;                 /* marker number [n] */
    int64_t chunk_id, doc_id;
    char *ext_id, *source, *title, *heading;
    int page;
    int64_t start, end;    /* code-point span of the cited sentence in the document */
    char *quote;           /* the cited passage (chunk text) */
} llm_citation;

typedef struct {
    char *answer;
    int not_found;
    llm_citation *citations;
    size_t ncitations;
} llm_result;

typedef struct {
    int top_sources;               /* hits given to the answerer */
    llm_extractive_opts extractive;
} llm_answer_opts;

void llm_answer_opts_init(llm_answer_opts *o, const zk_config *cfg);

zk_rc llm_ask(ret_store *s, llm_embedder *emb, const char *question, const ret_search_opts *sopts,
              const llm_answer_opts *aopts, llm_result *out, char *err);
void llm_result_free(llm_result *r);

#endif
