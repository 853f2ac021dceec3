/* extractive.h — the answerer used when no LLM is configured: picks the
 * sentences of the retrieved sources that best support the question and
 * returns them, each followed by its citation marker [n].
 *
 * Sources are numbered by the caller in rank order (index 0 = best). The
 * answer cites only the sources it used, renumbered 1..m in order of first
 * use; cited[k-1] gives the caller's source index for marker [k]. When no
 * sentence supports the question well enough, not_found is set and the
 * answer says so (in the question's language). Thread-safe. */
#ifndef LLM_EXTRACTIVE_H
#define LLM_EXTRACTIVE_H

#include <stddef.h>
#include "zk.h"

typedef struct {
    const char *text;   /* chunk text, UTF-8 */
    size_t len;
    const char *title;  /* may be NULL */
} llm_source;

typedef struct {
    int max_sentences;    /* default 3 */
    size_t max_chars;     /* default 600: answer length budget (code points) */
    double min_score;     /* default 0.2: minimum query-term coverage of the best sentence */
} llm_extractive_opts;

typedef struct {
    char *answer;         /* owned; UTF-8 */
    int not_found;        /* 1 when nothing relevant was found */
    int *cited;           /* cited[k] = source index for marker [k+1]; owned */
    size_t ncited;
    /* span of each used sentence inside its source text, per marker */
    size_t *span_start;   /* code-point offsets within source text, per cited[k] (first sentence used) */
    size_t *span_end;
} llm_answer;

void llm_extractive_opts_default(llm_extractive_opts *o);
zk_rc llm_extractive_answer(const char *question, const llm_source *src, size_t nsrc,
                            const llm_extractive_opts *opts, llm_answer *out, char *err);
void llm_answer_free(llm_answer *a);

#endif
