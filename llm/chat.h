/* chat.h — chat-completion providers: OpenAI-compatible
 * /v1/chat/completions endpoints (OpenAI, DeepSeek, Qwen/DashScope
 * compatible mode, Zhipu GLM, Moonshot, vLLM, llama.cpp server, Ollama),
 * configured by name and tried in order with connect / first-token / total
 * timeouts. Streaming is parsed from SSE (`data:` lines, comments,
 * `[DONE]`) and, for Ollama's native API, NDJSON. `reasoning_content`
 * (DeepSeek-style thinking) is kept apart from the answer text.
 *
 * Configuration:
 *   [llm]        providers = local, cloud      ; tried in this order
 *   [llm.NAME]   base_url, model, api_key, remote (true|false),
 *                connect_timeout_ms, first_token_timeout_ms, timeout_ms,
 *                max_tokens, temperature
 * A provider set is immutable after creation and safe to share between
 * threads; each llm_chat() call uses its own curl handle. */
#ifndef LLM_CHAT_H
#define LLM_CHAT_H

#include <stddef.h>
#include "zk.h"
#include "config.h"

typedef struct llm_providers llm_providers;

typedef struct {
    const char *role;      /* "system" | "user" | "assistant" */
    const char *content;
} llm_message;

/* Streaming callback: text as it arrives (answer text only, never
 * reasoning). Return non-zero to cancel the request (client went away). */
typedef int (*llm_token_fn)(void *ctx, const char *text, size_t len);

typedef struct {
    char *text;            /* full answer text (owned) */
    char *reasoning;       /* reasoning_content if the provider sent any (owned, may be NULL) */
    char provider[64];     /* name of the provider that answered */
    char model[128];       /* model reported by the provider */
    long prompt_tokens, completion_tokens;   /* from `usage`, 0 when not reported */
    double first_token_ms, total_ms;
} llm_chat_result;

/* NULL *out (and ZK_OK) when [llm] providers is empty: no model configured. */
zk_rc llm_providers_from_config(const zk_config *cfg, llm_providers **out, char *err);
void llm_providers_free(llm_providers *p);
size_t llm_providers_count(const llm_providers *p);
/* 1 when at least one provider is local (remote = false). */
int llm_providers_have_local(const llm_providers *p);

/* Ask the providers in order; a provider that fails to connect, times out
 * before the first token, or answers 429/5xx/garbage is skipped for the
 * next (unless tokens were already streamed: then the error is returned).
 * local_only: skip providers marked remote = true. on_token may be NULL. */
zk_rc llm_chat(const llm_providers *p, const llm_message *msgs, size_t n, int local_only,
               llm_token_fn on_token, void *ctx, llm_chat_result *out, char *err);
void llm_chat_result_free(llm_chat_result *r);

#endif
