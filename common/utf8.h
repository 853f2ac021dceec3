/* utf8.h — UTF-8 decoding and the text normalisation shared by the tokenizer,
 * the embedder and the chunker.
 *
 * Decoding is strict: invalid sequences decode as U+FFFD consuming one byte,
 * so callers never loop forever and never split a valid character. Folding
 * is NFKC-style width folding (full-width ＡＢＣ１２３ → ABC123, ideographic
 * space → space) plus simple case folding. Pure functions; thread-safe. */
#ifndef ZK_UTF8_H
#define ZK_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_REPLACEMENT 0xFFFD

/* Decode one code point at s[0..len). Returns the number of bytes consumed
 * (1..4, always >= 1 when len > 0) and stores the code point in *out_cp. */
size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *out_cp);

/* Encode cp into out (at least 4 bytes). Returns bytes written. */
size_t utf8_encode(uint32_t cp, char *out);

/* 1 if s[0..len) is valid UTF-8. */
int utf8_valid(const char *s, size_t len);
/* Length of the longest valid UTF-8 prefix of s[0..len); the number of
 * multi-byte characters in it goes to *out_multibyte (may be NULL). */
size_t utf8_valid_prefix(const char *s, size_t len, size_t *out_multibyte);

/* Number of code points in s[0..len) (invalid bytes count one each). */
size_t utf8_count(const char *s, size_t len);

/* Width + case folding of one code point. */
uint32_t utf8_fold(uint32_t cp);

/* Character classes used by tokenization and sentence splitting. */
int utf8_is_cjk(uint32_t cp);        /* Han, kana, hangul: segment as n-grams */
int utf8_is_alnum(uint32_t cp);      /* letters/digits of alphabetic scripts */
int utf8_is_space(uint32_t cp);
int utf8_is_sentence_end(uint32_t cp); /* 。！？；… . ! ? and full-width forms */

#endif
