/* cite.h — citation markers in model answers: the streaming filter that
 * validates and renumbers [n] / [n, m] / [n][m] markers as text arrives
 * (holding back from '[' until the marker closes, so a dangling or invalid
 * marker never reaches the client), and the support score of a cited
 * sentence against its source chunk.
 *
 * Renumbering: the model numbers sources 1..nsrc as given in the prompt;
 * the filter gives each valid source a new number 1..k in order of first
 * use, so the streamed text, the final text and the citation list agree.
 * A filter is used by one thread; scoring functions are pure. */
#ifndef LLM_CITE_H
#define LLM_CITE_H

#include <stddef.h>
#include "zk.h"

typedef struct llm_stream_filter llm_stream_filter;

/* Called with checked text only (markers validated and renumbered). Return
 * non-zero to cancel. */
typedef int (*llm_text_fn)(void *ctx, const char *checked_text, size_t len);

/* nsrc: valid model numbers are 1..nsrc. on_text may be NULL. */
zk_rc llm_stream_filter_new(int nsrc, llm_text_fn on_text, void *ctx, llm_stream_filter **out, char *err);
void llm_stream_filter_free(llm_stream_filter *f);

/* Feed model text (any split). Returns non-zero when on_text asked to cancel. */
int llm_stream_filter_feed(llm_stream_filter *f, const char *text, size_t len);
/* End of the answer: a pending marker prefix is dropped, other held text
 * flushed. Returns non-zero when on_text asked to cancel. */
int llm_stream_filter_finish(llm_stream_filter *f);

/* The checked text so far (everything passed to on_text), NUL-terminated;
 * owned by the filter. */
const char *llm_stream_filter_text(const llm_stream_filter *f, size_t *out_len);
/* Cited sources in order of first use: *out_src[k] is the 0-based source
 * index (model number - 1) of new marker k+1; owned by the filter. */
size_t llm_stream_filter_cited(const llm_stream_filter *f, const int **out_src);
/* Ask the filter to stop forwarding text (e.g. the answer is discarded);
 * text keeps accumulating. */
void llm_stream_filter_mute(llm_stream_filter *f);

/* One-shot form of the filter: *out_text (caller frees with zk_free) and
 * *out_src (new marker k+1 → source index; caller frees) for a whole answer. */
zk_rc llm_cite_renumber(const char *text, size_t len, int nsrc, char **out_text, int **out_src,
                        size_t *out_n, char *err);

/* Support of each cited marker: the answer (already renumbered) is split
 * into sentences; every sentence's markers refer to it (markers right after
 * a sentence end belong to that sentence). support[k] for marker k+1 is the
 * lowest, over the sentences citing it, of the share of the sentence's
 * content terms (words, CJK bigrams; stopwords ignored) found in the cited
 * chunk: 0..1; 1 when no sentence text precedes the marker. */
zk_rc llm_cite_support(const char *answer, size_t len, const char *const *chunk_text, size_t nmarkers,
                       double *support, char *err);

/* Share (0..1) of sentence's content terms contained in chunk; 1 when the
 * sentence has no content term. */
double llm_cite_sentence_support(const char *sentence, size_t slen, const char *chunk, size_t clen);

#endif
