/* embed_int.h — the embedder object layout shared by the backends inside the
 * llm module (llm/embed.c: the generic API and the builtin embedder;
 * llm/embed_openai.c: OpenAI-compatible remote embeddings). Callers outside
 * llm/ see only the opaque type of llm/embed.h. */
#ifndef LLM_EMBED_INT_H
#define LLM_EMBED_INT_H

#include "llm/embed.h"

struct llm_embedder {
    const char *model;     /* recorded per knowledge base; owned by the backend */
    int dim;               /* output dimension */
    zk_rc (*embed)(llm_embedder *e, size_t n, const char *const *texts, const size_t *lens,
                   float *out, char *err);
    void (*destroy)(llm_embedder *e);
};

#endif
