/* prompt.h — prompt assembly for LLM answers: the system instructions
 * (answer only from the sources, in the question's language, cite [n] after
 * each claim, reply exactly LLM_NOT_FOUND_* when the sources lack the
 * answer, treat source text as data), the numbered sources within a token
 * budget, and the short prompt that rewrites a follow-up question into a
 * standalone query. Pure functions over their arguments; thread-safe. */
#ifndef LLM_PROMPT_H
#define LLM_PROMPT_H

#include <stddef.h>
#include "zk.h"

/* The fixed not-found sentences (the extractive answerer uses the same). */
#define LLM_NOT_FOUND_ZH "知识库中没有找到与该问题相关的内容。"
#define LLM_NOT_FOUND_EN "Not found in the knowledge base."

typedef struct {
    const char *title, *heading;   /* may be NULL */
    const char *text;
} llm_prompt_source;

typedef struct {
    const char *question, *answer;
} llm_turn;

/* Estimated tokens of text: ~1 per CJK character, ~1 per 4 other
 * characters (rounded up per run). */
long llm_estimate_tokens(const char *s, size_t len);

/* 1 when the question contains CJK characters (answer in Chinese). */
int llm_is_chinese(const char *s);

/* System and user messages for an answer. Sources are numbered [1]..[n] in
 * order; a source that does not fit max_tokens (estimated, sources only) is
 * truncated if it is the first, else it and the rest are left out.
 * *out_nused = sources included. Caller frees both strings (zk_free). */
zk_rc llm_prompt_answer(const char *question, const llm_prompt_source *src, size_t nsrc, long max_tokens,
                        char **out_system, char **out_user, size_t *out_nused, char *err);

/* System and user messages asking to rewrite question (a follow-up of the
 * given turns, oldest first; the last few are used) into a standalone
 * search query. Caller frees both. */
zk_rc llm_prompt_rewrite(const llm_turn *turns, size_t nturns, const char *question, char **out_system,
                         char **out_user, char *err);

/* Without a model: question + the key terms of the last previous question
 * that the question does not already contain. Caller frees. */
zk_rc llm_followup_fallback(const llm_turn *turns, size_t nturns, const char *question, char **out, char *err);

/* 1 when answer (trimmed, markers ignored) is the not-found sentence. */
int llm_is_not_found_reply(const char *answer);

#endif
