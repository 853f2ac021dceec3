/* embed.h — text embedders. Today: the builtin hashed-feature embedder;
 * later issues add OpenAI-compatible remote embedders behind the same API.
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

typedef struct llm_embedder llm_embedder;

zk_rc llm_embedder_builtin_new(int dim, llm_embedder **out, char *err);
void llm_embedder_free(llm_embedder *e);

/* Model identifier recorded per knowledge base, e.g. "builtin-hash-v1". */
const char *llm_embedder_model(const llm_embedder *e);
int llm_embedder_dim(const llm_embedder *e);

/* Embed n texts into out (n * dim floats, row-major, L2-normalised; an
 * empty text gives the zero vector). */
zk_rc llm_embed(llm_embedder *e, size_t n, const char *const *texts, const size_t *lens,
                float *out, char *err);

#endif
