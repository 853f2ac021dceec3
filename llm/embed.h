/* embed.h — text embedders: the builtin hashed-feature embedder and a
 * remote embedder for any OpenAI-compatible /v1/embeddings server (OpenAI,
 * Ollama, llama.cpp, vLLM, TEI, ...), behind the same API.
 *
 * builtin: deterministic, no model, no network. Features: case/width-folded
 * Latin words (and word bigrams), CJK character unigrams+bigrams(+trigrams),
 * character n-grams of Latin words; each feature hashed to a dimension with
 * a signed hash, weighted sublinearly (1 + log tf), vector L2-normalised.
 * It is lexical, not semantic.
 *
 * An embedder is thread-safe for concurrent llm_embed() calls. */
#ifndef LLM_EMBED_H
#define LLM_EMBED_H

#include <stddef.h>
#include "zk.h"
#include "config.h"

typedef struct llm_embedder llm_embedder;

zk_rc llm_embedder_builtin_new(int dim, llm_embedder **out, char *err);

/* Remote embedder (llm/embed_openai.c): POST {base_url}/embeddings with
 * {"model", "input": [...], "encoding_format": "float"} in batches of
 * batch_size, at most `concurrency` requests in flight; retries 429, 5xx,
 * timeouts, dropped connections and malformed answers with exponential
 * backoff + jitter (Retry-After honoured, capped at retry_cap_ms); 4xx
 * otherwise fail at once. The returned dimension must equal dim. Strings are
 * copied; the api_key is never logged. Model recorded: "openai:<model>". */
typedef struct {
    const char *base_url;   /* API root, e.g. http://127.0.0.1:11434/v1 (required) */
    const char *model;      /* required */
    const char *api_key;    /* NULL or "" = no Authorization header */
    int dim;                /* expected vector dimension */
    int batch_size;         /* texts per request; <= 0 → 32 */
    int concurrency;        /* requests in flight; <= 0 → 2 */
    long timeout_ms;        /* per request; <= 0 → 30000 */
    int max_retries;        /* < 0 → 5 */
    long backoff_ms;        /* first retry delay; <= 0 → 500 (doubles each retry) */
    long retry_cap_ms;      /* longest wait between tries; <= 0 → 60000 */
} llm_openai_opts;

zk_rc llm_embedder_openai_new(const llm_openai_opts *o, llm_embedder **out, char *err);

/* The embedder [embedding] provider selects (builtin | openai). ZK_CONFIG
 * with a message naming the key when the settings are unusable. */
zk_rc llm_embedder_from_config(const zk_config *cfg, llm_embedder **out, char *err);
void llm_embedder_free(llm_embedder *e);

/* Model identifier recorded per knowledge base, e.g. "builtin-hash-v1". */
const char *llm_embedder_model(const llm_embedder *e);
int llm_embedder_dim(const llm_embedder *e);

/* Embed n texts into out (n * dim floats, row-major, L2-normalised; an
 * empty text gives the zero vector). */
zk_rc llm_embed(llm_embedder *e, size_t n, const char *const *texts, const size_t *lens,
                float *out, char *err);

/* 1 if model names the builtin embedder (any version): local, and its
 * query vectors use few dimensions (retrieval's column index). */
int llm_model_is_builtin(const char *model);

#endif
