/* tokenizer.h — zhiku's Chinese-aware tokenizer, used by FTS5 (registered as
 * the tokenizer "zhiku") for indexing AND by the query builder, so both sides
 * always agree.
 *
 * Rules: text is width-folded and case-folded (common/utf8.h); runs of
 * alphabetic/digit characters are words, stemmed with the Snowball English
 * stemmer (libstemmer) when they are Latin; runs of CJK characters are emitted
 * as overlapping bigrams (a lone CJK character as a unigram); everything else
 * (punctuation, emoji, invalid UTF-8) separates tokens. Words longer than 64
 * folded bytes are truncated (the token's offsets still span the whole word).
 * Offsets reported to the callback are byte offsets into the ORIGINAL input.
 *
 * A ret_tokenizer holds a stemmer (with a small cache of recent stems) and is
 * NOT thread-safe: one per thread or per FTS5 tokenizer instance. */
#ifndef RET_TOKENIZER_H
#define RET_TOKENIZER_H

#include <stddef.h>
#include <sqlite3.h>
#include "zk.h"

typedef struct ret_tokenizer ret_tokenizer;

/* Kinds of token, passed to the callback. */
#define RET_TOK_WORD 1   /* a Latin/alphabetic word or number (stemmed) */
#define RET_TOK_CJK  2   /* a CJK bigram or lone unigram */
/* "unigrams" option, document side only: one CJK character at the SAME
 * position as the previous token (FTS5_TOKEN_COLOCATED), so bigram phrases
 * keep consecutive positions. Never emitted when for_query is set. */
#define RET_TOK_CJK_UNI 3

/* Return non-zero from the callback to stop tokenizing (that value is
 * returned by ret_tokenizer_run). tok is NOT NUL-terminated. */
typedef int (*ret_token_cb)(void *ctx, int kind, const char *tok, int ntok,
                            int start, int end);

/* Returns NULL on allocation failure. ret_tokenizer_new() is
 * ret_tokenizer_new_opts(0). With unigrams != 0 every character of a CJK run
 * of 2+ characters is also emitted as a RET_TOK_CJK_UNI token when indexing
 * (FTS5: tokenize='zhiku unigrams'). */
ret_tokenizer *ret_tokenizer_new(void);
ret_tokenizer *ret_tokenizer_new_opts(int unigrams);
void ret_tokenizer_free(ret_tokenizer *t);

/* Tokenize text[0..len). for_query is 1 when tokenizing a search query. */
int ret_tokenizer_run(ret_tokenizer *t, const char *text, int len, int for_query,
                      void *ctx, ret_token_cb cb);

/* Register the FTS5 tokenizer "zhiku" on db. */
zk_rc ret_tokenizer_register(sqlite3 *db, char *err);
/* The connection's FTS5 API (version 2 or later), for registering functions. */
zk_rc ret__fts5_api(sqlite3 *db, fts5_api **out, char *err);

/* ---- pre-tokenized text: tokenizing off the writer thread ------------------
 * Bulk ingestion tokenizes chunks in its worker threads and hands the tokens
 * to the single SQLite writer. A ret_pretok holds the document-side tokens of
 * a list of texts. While the writer thread has it active, the FTS5 "zhiku"
 * tokenizer, asked to tokenize a document text byte-for-byte equal to the
 * next text of the list (or the one after), replays its tokens instead of
 * tokenizing; queries, and any other text (deletes of old rows, 'rebuild'),
 * are tokenized as usual. Tokenizing is deterministic, so the index is the
 * same either way (FTS5's integrity-check verifies it). Texts are referenced,
 * not copied: they must stay unchanged while the ret_pretok is in use.
 * A ret_pretok is used by one thread at a time. */
typedef struct ret_pretok ret_pretok;

/* Tokens are made by t (its unigrams option is recorded: a table whose
 * tokenizer has another option tokenizes itself). NULL when out of memory. */
ret_pretok *ret_pretok_new(ret_tokenizer *t);
void ret_pretok_free(ret_pretok *p);
/* Tokenize text[0..len) into p. Texts past the memory cap of p (a huge
 * document) are not added and get tokenized by the writer. */
zk_rc ret_pretok_add(ret_pretok *p, const char *text, size_t len, char *err);
/* Make p the replay source of this thread's FTS5 inserts (from its first
 * text); NULL ends replay. */
void ret_pretok_activate(ret_pretok *p);
/* How many texts of p were replayed so far (tests, statistics). */
size_t ret_pretok_replayed(const ret_pretok *p);

#endif
