/* terms.h — the term extractor shared by the builtin embedder and the
 * extractive answerer (internal to llm/). It walks UTF-8 text and yields
 * width/case-folded tokens: alphabetic-script words and single CJK
 * characters, with a flag telling whether punctuation separated a token
 * from the previous one. Also light English stemming, stopword tests and
 * the feature hash. Pure functions, no allocation; thread-safe. */
#ifndef LLM_TERMS_H
#define LLM_TERMS_H

#include <stddef.h>
#include <stdint.h>

#define LLM__WORD_MAX 32   /* longer words keep their first 32 code points */

enum { LLM__TOK_END = 0, LLM__TOK_WORD = 1, LLM__TOK_CJK = 2 };

typedef struct {
    int kind;                    /* LLM__TOK_* */
    int sep;                     /* 1 when something other than whitespace (or
                                    nothing: text start) precedes the token */
    uint32_t cp[LLM__WORD_MAX];  /* folded code points (1 for CJK) */
    size_t n;                    /* code points stored in cp[] */
    size_t start, end;           /* byte span in the text */
} llm__token;

/* Scan the next token at or after byte pos. Returns the byte position to
 * continue from; tok->kind == LLM__TOK_END when the text is exhausted. */
size_t llm__next_token(const char *s, size_t len, size_t pos, llm__token *tok);

/* Light English suffix stripping of a folded word in place (ASCII words
 * only; others untouched). Returns the new length. */
size_t llm__stem(uint32_t *cp, size_t n);

/* 1 for very common English words (function words and question words). */
int llm__is_stopword(const uint32_t *cp, size_t n);

/* Length (1..3) of a Chinese question/stop phrase starting at cp[0], or 0. */
size_t llm__cjk_stop_len(const uint32_t *cp, size_t n);

/* 1 for a Chinese function character (的 了 是 在 和 …, question words'
 * characters) that carries little topic; the embedder down-weights them. */
int llm__cjk_is_stopchar(uint32_t cp);

/* 64-bit hash of a code-point sequence (FNV-1a, then a murmur finaliser). */
uint64_t llm__hash_cps(uint64_t seed, const uint32_t *cp, size_t n);
uint64_t llm__mix64(uint64_t h);

#endif
