/* test_tokenizer.c — unit tests for retrieval/tokenizer.c: folding, stemming
 * (and its cache), CJK bigrams, the unigrams option, separators, invalid
 * UTF-8, offsets, long words, end-to-end FTS5 use of the registered "zhiku"
 * tokenizer, and pre-tokenized replay into FTS5 giving the same index. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <libstemmer.h>

#include "retrieval/tokenizer.h"

#define MAXTOK 64

typedef struct {
    int n;
    char tok[MAXTOK][80];
    int kind[MAXTOK], start[MAXTOK], end[MAXTOK];
    int stop_after; /* 0: never stop */
} collected;

static int collect(void *ctx, int kind, const char *tok, int ntok, int start, int end)
{
    collected *c = ctx;
    assert_true(ntok > 0 && ntok < 80);
    assert_true(c->n < MAXTOK);
    memcpy(c->tok[c->n], tok, (size_t)ntok);
    c->tok[c->n][ntok] = '\0';
    c->kind[c->n] = kind;
    c->start[c->n] = start;
    c->end[c->n] = end;
    c->n++;
    if (c->stop_after && c->n >= c->stop_after) return 42;
    return 0;
}

static void run_opts(collected *c, const char *text, int len, int for_query, int unigrams)
{
    ret_tokenizer *t = ret_tokenizer_new_opts(unigrams);
    assert_non_null(t);
    memset(c, 0, sizeof(*c));
    assert_int_equal(ret_tokenizer_run(t, text, len, for_query, c, collect), 0);
    for (int i = 0; i < c->n; i++) {
        assert_true(c->start[i] >= 0);
        assert_true(c->start[i] < c->end[i]);
        assert_true(c->end[i] <= len);
    }
    ret_tokenizer_free(t);
}

static void run(collected *c, const char *text, int for_query)
{
    run_opts(c, text, (int)strlen(text), for_query, 0);
}

/* Assert the token texts, given as a NULL-terminated list. */
static void expect(const collected *c, const char *const *want)
{
    int n = 0;
    while (want[n]) n++;
    for (int i = 0; i < n && i < c->n; i++) assert_string_equal(c->tok[i], want[i]);
    assert_int_equal(c->n, n);
}

#define EXPECT(c, ...) expect((c), (const char *const[]){ __VA_ARGS__, NULL })

static void test_english(void **state)
{
    (void)state;
    collected c;
    run(&c, "Running runs", 0);
    EXPECT(&c, "run", "run");
    assert_int_equal(c.kind[0], RET_TOK_WORD);
    assert_int_equal(c.start[0], 0);
    assert_int_equal(c.end[0], 7);
    assert_int_equal(c.start[1], 8);
    assert_int_equal(c.end[1], 12);

    run(&c, "The DATABASES, connected! x86 v2.0 ok", 1);
    EXPECT(&c, "the", "databas", "connect", "x86", "v2", "0", "ok");
}

static void test_chinese(void **state)
{
    (void)state;
    collected c;
    run(&c, "中华人民", 0);
    EXPECT(&c, "中华", "华人", "人民");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c.kind[i], RET_TOK_CJK);
        assert_int_equal(c.start[i], 3 * i);
        assert_int_equal(c.end[i], 3 * i + 6);
    }

    run(&c, "书", 0);
    EXPECT(&c, "书");
    assert_int_equal(c.start[0], 0);
    assert_int_equal(c.end[0], 3);

    /* punctuation splits runs: 。 and ， are not CJK letters */
    run(&c, "我爱。你好，书", 0);
    EXPECT(&c, "我爱", "你好", "书");

    /* kana are segmented like Han */
    run(&c, "ひらがな", 0);
    EXPECT(&c, "ひら", "らが", "がな");
}

static void test_mixed(void **state)
{
    (void)state;
    collected c;
    run(&c, "用SQLite数据库", 0);
    EXPECT(&c, "用", "sqlite", "数据", "据库");
    assert_int_equal(c.kind[0], RET_TOK_CJK);
    assert_int_equal(c.kind[1], RET_TOK_WORD);
    assert_int_equal(c.start[1], 3);
    assert_int_equal(c.end[1], 9);
    assert_int_equal(c.start[2], 9);
    assert_int_equal(c.end[2], 15);
    assert_int_equal(c.start[3], 12);
    assert_int_equal(c.end[3], 18);

    run(&c, "2024年发布了Python3和Tests", 0);
    EXPECT(&c, "2024", "年发", "发布", "布了", "python3", "和", "test");
}

static void test_fullwidth(void **state)
{
    (void)state;
    collected c;
    run(&c, "ＡＢＣ１２３", 0);
    EXPECT(&c, "abc123");
    assert_int_equal(c.start[0], 0);
    assert_int_equal(c.end[0], 18); /* 6 chars × 3 bytes in the original */

    /* full-width letters are stemmed like ASCII; ideographic space separates */
    run(&c, "Ｒｕｎｎｉｎｇ　ｒｕｎｓ", 0);
    EXPECT(&c, "run", "run");
    assert_int_equal(c.end[0], 21);
    assert_int_equal(c.start[1], 24);
}

static void test_emoji_and_accents(void **state)
{
    (void)state;
    collected c;
    run(&c, "hello😀world🎉中文👍", 0);
    EXPECT(&c, "hello", "world", "中文");
    assert_int_equal(c.start[1], 9);
    assert_int_equal(c.end[1], 14);

    /* Latin-1 letters fold but are not stemmed; a combining accent does
     * not split a word */
    run(&c, "CAFÉ cafe\xcc\x81s", 0);
    EXPECT(&c, "café", "cafes");
    assert_int_equal(c.end[1], 13);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    collected c;
    /* lone continuation byte, truncated 3-byte sequence, overlong '/' */
    const char bad[] = "abc\x80" "def\xe4\xb8" "中国\xc0\xafxyz\xff";
    run_opts(&c, bad, (int)sizeof(bad) - 1, 0, 0);
    EXPECT(&c, "abc", "def", "中国", "xyz");
    assert_int_equal(c.start[2], 9);
    assert_int_equal(c.end[2], 15);

    /* truncated sequence at the very end, and only garbage */
    run_opts(&c, "ab\xe4", 3, 0, 0);
    EXPECT(&c, "ab");
    run_opts(&c, "\xff\xfe\xfd", 3, 0, 0);
    assert_int_equal(c.n, 0);

    /* every prefix of a mixed string: no crash, offsets within bounds */
    const char *s = "用SQLite数据库 ＡＢ😀x";
    int len = (int)strlen(s);
    for (int i = 0; i <= len; i++) run_opts(&c, s, i, i & 1, i & 2);
}

static void test_long_word(void **state)
{
    (void)state;
    collected c;
    char buf[1200];
    memset(buf, 'a', 1000);
    strcpy(buf + 1000, " tail");
    run(&c, buf, 0);
    assert_int_equal(c.n, 2);
    assert_int_equal((int)strlen(c.tok[0]), 64);
    assert_int_equal(c.start[0], 0);
    assert_int_equal(c.end[0], 1000);
    assert_string_equal(c.tok[1], "tail");

    /* digits: no stemming, truncated at 64 */
    memset(buf, '7', 500);
    buf[500] = '\0';
    run(&c, buf, 0);
    assert_int_equal(c.n, 1);
    assert_int_equal((int)strlen(c.tok[0]), 64);

    /* 2-byte letters: truncation on a character boundary */
    buf[0] = '\0';
    for (int i = 0; i < 100; i++) strcat(buf, "Ж");
    run(&c, buf, 0);
    assert_int_equal(c.n, 1);
    assert_int_equal((int)strlen(c.tok[0]), 64);
    assert_int_equal(memcmp(c.tok[0], "жжжж", 8), 0);

    /* a 1-byte char after a dropped 2-byte one must not be appended */
    memset(buf, 'z', 63);
    strcpy(buf + 63, "жq");
    run(&c, buf, 0);
    assert_int_equal(c.n, 1);
    assert_int_equal((int)strlen(c.tok[0]), 63);
}

static void test_unigrams(void **state)
{
    (void)state;
    collected c;
    run_opts(&c, "中华人民", 12, 0, 1);
    EXPECT(&c, "中华", "中", "华人", "华", "人民", "人", "民");
    int kinds[] = { RET_TOK_CJK, RET_TOK_CJK_UNI, RET_TOK_CJK, RET_TOK_CJK_UNI,
                    RET_TOK_CJK, RET_TOK_CJK_UNI, RET_TOK_CJK_UNI };
    for (int i = 0; i < 7; i++) assert_int_equal(c.kind[i], kinds[i]);
    assert_int_equal(c.start[6], 9);
    assert_int_equal(c.end[6], 12);

    /* queries: no extra unigrams; a lone character stays a plain unigram */
    run_opts(&c, "中华人民", 12, 1, 1);
    EXPECT(&c, "中华", "华人", "人民");
    run_opts(&c, "库", 3, 1, 1);
    EXPECT(&c, "库");
    assert_int_equal(c.kind[0], RET_TOK_CJK);
    /* document lone char: one plain unigram, not doubled */
    run_opts(&c, "a库b", 5, 0, 1);
    EXPECT(&c, "a", "库", "b");
}

static void test_stop(void **state)
{
    (void)state;
    ret_tokenizer *t = ret_tokenizer_new();
    assert_non_null(t);
    collected c;
    memset(&c, 0, sizeof(c));
    c.stop_after = 2;
    assert_int_equal(ret_tokenizer_run(t, "one two three 中文字", (int)strlen("one two three 中文字"), 0, &c, collect), 42);
    assert_int_equal(c.n, 2);
    assert_int_equal(ret_tokenizer_run(t, "", 0, 0, &c, collect), 0);
    ret_tokenizer_free(t);
    ret_tokenizer_free(NULL);
}

/* ---- end to end through FTS5 ------------------------------------------- */

static sqlite3 *open_db(const char *tokenize)
{
    sqlite3 *db = NULL;
    char err[ZK_ERRLEN];
    char sql[256];
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(ret_tokenizer_register(db, err), ZK_OK);
    snprintf(sql, sizeof(sql), "CREATE VIRTUAL TABLE t USING fts5(x, tokenize='%s')", tokenize);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    static const char *rows[] = {
        /* 1 */ "我们用SQLite数据库存储文档。",
        /* 2 */ "The runner runs every morning; running is healthy.",
        /* 3 */ "数据库索引：数据库的全文检索依赖分词。",
        /* 4 */ "中华人民共和国成立于1949年。",
        /* 5 */ "大数据时代，数据很重要，data matters.",
        /* 6 */ "图书馆有很多书",
    };
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO t(rowid, x) VALUES (?, ?)", -1, &st, NULL),
                     SQLITE_OK);
    for (int i = 0; i < (int)ZK_ARRAY_LEN(rows); i++) {
        sqlite3_bind_int(st, 1, i + 1);
        sqlite3_bind_text(st, 2, rows[i], -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return db;
}

/* Rowids matching q in bm25 order (best first), as "1,3,5". */
static void match(sqlite3 *db, const char *q, char *out, size_t outsz)
{
    sqlite3_stmt *st;
    out[0] = '\0';
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT rowid FROM t WHERE t MATCH ? ORDER BY bm25(t)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, q, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        size_t l = strlen(out);
        snprintf(out + l, outsz - l, "%s%d", l ? "," : "", sqlite3_column_int(st, 0));
    }
    assert_int_equal(rc, SQLITE_DONE);
    sqlite3_finalize(st);
}

static void test_fts5(void **state)
{
    (void)state;
    sqlite3 *db = open_db("zhiku");
    char got[128];

    /* 数据库 appears twice in row 3, once in 1; 数据 also in row 5 (twice) */
    match(db, "\"数据库\"", got, sizeof(got));
    assert_string_equal(got, "3,1");
    match(db, "\"数据\"", got, sizeof(got));
    assert_string_equal(got, "5,3,1");
    match(db, "running", got, sizeof(got));
    assert_string_equal(got, "2");
    match(db, "RUNS", got, sizeof(got));
    assert_string_equal(got, "2");
    match(db, "sqlite", got, sizeof(got));
    assert_string_equal(got, "1");
    match(db, "\"人民共和国\"", got, sizeof(got));
    assert_string_equal(got, "4");
    match(db, "\"共和人民\"", got, sizeof(got));
    assert_string_equal(got, "");
    match(db, "１９４９", got, sizeof(got));
    assert_string_equal(got, "4");
    match(db, "数据 AND data", got, sizeof(got));
    assert_string_equal(got, "5");
    match(db, "\"SQLite数据库\"", got, sizeof(got));
    assert_string_equal(got, "1");
    /* a single character inside a longer run is not found without unigrams:
     * the document has 我们 们用, never 用 alone */
    match(db, "书", got, sizeof(got));
    assert_string_equal(got, "");
    match(db, "\"用SQLite数据库\"", got, sizeof(got));
    assert_string_equal(got, "");

    /* highlight() re-tokenizes (AUX) and uses the byte offsets */
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                         "SELECT highlight(t, 0, '[', ']') FROM t WHERE t MATCH 'sqlite'", -1,
                         &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "我们用[SQLite]数据库存储文档。");
    sqlite3_finalize(st);

    /* unknown tokenizer option is an error */
    assert_int_not_equal(sqlite3_exec(db, "CREATE VIRTUAL TABLE u USING fts5(x, tokenize='zhiku bogus')",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
    sqlite3_close(db);
}

static void test_fts5_unigrams(void **state)
{
    (void)state;
    sqlite3 *db = open_db("zhiku unigrams");
    char got[128];
    match(db, "书", got, sizeof(got));
    assert_string_equal(got, "6");
    /* phrases of bigrams still work: unigrams are colocated */
    match(db, "\"人民共和国\"", got, sizeof(got));
    assert_string_equal(got, "4");
    match(db, "\"数据库\"", got, sizeof(got));
    assert_string_equal(got, "3,1");
    match(db, "\"数据库存储\"", got, sizeof(got));
    assert_string_equal(got, "1");
    match(db, "\"用SQLite数据库\"", got, sizeof(got));
    assert_string_equal(got, "1");
    match(db, "running", got, sizeof(got));
    assert_string_equal(got, "2");
    sqlite3_close(db);
}

/* Every word's token is the stemmer's answer, whether the cache has it
 * (repeats), has another word in its slot (collisions) or not. */
static void test_stem_cache(void **state)
{
    (void)state;
    enum { NWORDS = 3000 };
    static char text[NWORDS * 12 * 2];
    static char words[NWORDS][12];
    size_t len = 0;
    unsigned seed = 7;
    for (int i = 0; i < NWORDS; i++) {
        static const char *const ends[] = {"ing", "ed", "s", "ies", "ation", "ness", ""};
        int n = 3 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 5;
        for (int k = 0; k < n; k++) words[i][k] = (char)('a' + ((seed = seed * 1103515245u + 12345u) >> 16) % 6);
        snprintf(words[i] + n, sizeof words[i] - (size_t)n, "%s", ends[i % 7]);
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < NWORDS; i++) len += (size_t)sprintf(text + len, "%s ", words[i]);
    struct sb_stemmer *sb = sb_stemmer_new("english", "UTF_8");
    assert_non_null(sb);
    ret_tokenizer *t = ret_tokenizer_new();
    assert_non_null(t);
    for (int round = 0; round < 2; round++) {
        /* one token at a time, so collected's MAXTOK is no limit */
        size_t pos = 0;
        for (int w = 0; w < 2 * NWORDS; w++) {
            const char *word = words[w % NWORDS];
            size_t wl = strlen(word);
            collected c;
            memset(&c, 0, sizeof c);
            assert_int_equal(ret_tokenizer_run(t, text + pos, (int)wl, 0, &c, collect), 0);
            const sb_symbol *want = sb_stemmer_stem(sb, (const sb_symbol *)word, (int)wl);
            assert_int_equal(c.n, 1);
            assert_int_equal((int)strlen(c.tok[0]), sb_stemmer_length(sb));
            assert_memory_equal(c.tok[0], want, (size_t)sb_stemmer_length(sb));
            pos += wl + 1;
        }
    }
    ret_tokenizer_free(t);
    sb_stemmer_delete(sb);
}

/* ---- pre-tokenized replay ---------------------------------------------- */

static const char *const pre_texts[][2] = {
    {"Running runs quickly through the databases; connected connections.", "第1节 Section 1"},
    {"大象有很长的鼻子。知识管理系统，数据库检索。", "第2节 Section 2 > 细节"},
    {"Mixed 中文 and English: café naïve ＦＵＬＬ width １９４９ 123abc 日本語テキスト 🐘", ""},
    {"a", "b"},
    {"\xff\xfe invalid \xc3 utf8 \xe4\xb8 truncated 数", "\xe6\x95"},
    {"Supercalifragilisticexpialidociousandevenlongerthansixtyfourbytesintotalforsurethistime ok", NULL},
    {"The same heading again", "第1节 Section 1"},
};
#define NPRE (sizeof pre_texts / sizeof pre_texts[0])

static sqlite3 *pre_db(const char *tokenize)
{
    sqlite3 *db = NULL;
    char err[ZK_ERRLEN], sql[512];
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(ret_tokenizer_register(db, err), ZK_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE c(id INTEGER PRIMARY KEY, text, heading)", NULL, NULL, NULL),
                     SQLITE_OK);
    for (int i = 0; i < 2; i++) {
        snprintf(sql, sizeof sql,
                 "CREATE VIRTUAL TABLE %s USING fts5(text, heading, content='c', content_rowid='id', tokenize='%s')",
                 i ? "pre" : "plain", tokenize);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    assert_int_equal(sqlite3_exec(db, "CREATE VIRTUAL TABLE vplain USING fts5vocab(plain, 'instance');"
                                      "CREATE VIRTUAL TABLE vpre USING fts5vocab(pre, 'instance')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    return db;
}

/* Insert the rows into c, and into table (plain or pre). */
static void pre_insert(sqlite3 *db, const char *table, int content)
{
    sqlite3_stmt *st;
    char sql[128];
    if (content) {
        assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO c(id, text, heading) VALUES (?,?,?)", -1, &st, NULL),
                         SQLITE_OK);
        for (size_t i = 0; i < NPRE; i++) {
            sqlite3_bind_int(st, 1, (int)i + 1);
            sqlite3_bind_text(st, 2, pre_texts[i][0], -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, pre_texts[i][1], -1, SQLITE_STATIC);
            assert_int_equal(sqlite3_step(st), SQLITE_DONE);
            sqlite3_reset(st);
        }
        sqlite3_finalize(st);
    }
    snprintf(sql, sizeof sql, "INSERT INTO %s(rowid, text, heading) VALUES (?,?,?)", table);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    for (size_t i = 0; i < NPRE; i++) {
        sqlite3_bind_int(st, 1, (int)i + 1);
        /* explicit lengths and copies: matching is by content, not pointer */
        sqlite3_bind_text(st, 2, pre_texts[i][0], (int)strlen(pre_texts[i][0]), SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, pre_texts[i][1], -1, SQLITE_TRANSIENT);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
}

static ret_pretok *pre_tokens(ret_tokenizer *t)
{
    char err[ZK_ERRLEN];
    ret_pretok *p = ret_pretok_new(t);
    assert_non_null(p);
    for (size_t i = 0; i < NPRE; i++)
        for (int k = 0; k < 2; k++)
            if (pre_texts[i][k]) assert_int_equal(ret_pretok_add(p, pre_texts[i][k], strlen(pre_texts[i][k]), err), ZK_OK);
    return p;
}

/* Every (term, row, column, offset) of one index, in order. */
static char *vocab(sqlite3 *db, const char *v)
{
    char sql[160], *out = NULL;
    sqlite3_stmt *st;
    snprintf(sql, sizeof sql, "SELECT group_concat(term || ':' || doc || ':' || col || ':' || offset, ' ') "
                              "FROM (SELECT * FROM %s ORDER BY term, doc, col, offset)", v);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const char *s = (const char *)sqlite3_column_text(st, 0);
    out = strdup(s ? s : "");
    sqlite3_finalize(st);
    return out;
}

static int integrity(sqlite3 *db, const char *table)
{
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO %s(%s, rank) VALUES ('integrity-check', 1)", table, table);
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static void test_pretok_replay(void **state)
{
    (void)state;
    sqlite3 *db = pre_db("zhiku");
    ret_tokenizer *t = ret_tokenizer_new();
    ret_pretok *p = pre_tokens(t);
    pre_insert(db, "plain", 1);
    ret_pretok_activate(p);
    pre_insert(db, "pre", 0);
    ret_pretok_activate(NULL);
    /* every text and heading came from the tokens (the empty heading
     * needs none) */
    assert_int_equal(ret_pretok_replayed(p), 2 * NPRE - 2);
    char *a = vocab(db, "vplain"), *b = vocab(db, "vpre");
    assert_true(strlen(a) > 200);
    assert_string_equal(a, b);
    free(a);
    free(b);
    assert_int_equal(integrity(db, "pre"), SQLITE_OK);
    assert_int_equal(integrity(db, "plain"), SQLITE_OK);
    /* the check is real: an index that disagrees with the content fails */
    assert_int_equal(sqlite3_exec(db, "INSERT INTO c(id, text) VALUES (99, 'beta');"
                                      "INSERT INTO pre(rowid, text) VALUES (99, 'alpha')", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_not_equal(integrity(db, "pre"), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO pre(pre, rowid, text) VALUES ('delete', 99, 'alpha');"
                                      "DELETE FROM c WHERE id = 99", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(integrity(db, "pre"), SQLITE_OK);

    /* deletes (and queries) while tokens are active tokenize for real:
     * delete the rows of pre, in reverse order, tokens active */
    ret_pretok_activate(p);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO pre(pre, rowid, text, heading) "
                                      "SELECT 'delete', id, text, heading FROM c ORDER BY id DESC",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM plain WHERE plain MATCH 'running'", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    ret_pretok_activate(NULL);
    char *c = vocab(db, "vpre");
    assert_string_equal(c, "");
    free(c);
    assert_int_equal(sqlite3_exec(db, "DELETE FROM c", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(integrity(db, "pre"), SQLITE_OK);

    ret_pretok_free(p);
    ret_tokenizer_free(t);
    sqlite3_close(db);
}

/* A table whose tokenizer has other options tokenizes itself. */
static void test_pretok_other_options(void **state)
{
    (void)state;
    sqlite3 *db = pre_db("zhiku unigrams");
    ret_tokenizer *t = ret_tokenizer_new();
    ret_pretok *p = pre_tokens(t);
    pre_insert(db, "plain", 1);
    ret_pretok_activate(p);
    pre_insert(db, "pre", 0);
    ret_pretok_activate(NULL);
    assert_int_equal(ret_pretok_replayed(p), 0);
    char *a = vocab(db, "vplain"), *b = vocab(db, "vpre");
    assert_string_equal(a, b);
    free(a);
    free(b);
    assert_int_equal(integrity(db, "pre"), SQLITE_OK);
    ret_pretok_free(p);
    ret_tokenizer_free(t);

    /* and the unigrams tokens replay into it */
    t = ret_tokenizer_new_opts(1);
    p = pre_tokens(t);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO pre(pre) VALUES ('delete-all')", NULL, NULL, NULL), SQLITE_OK);
    ret_pretok_activate(p);
    pre_insert(db, "pre", 0);
    ret_pretok_activate(NULL);
    assert_int_equal(ret_pretok_replayed(p), 2 * NPRE - 2);
    a = vocab(db, "vplain");
    b = vocab(db, "vpre");
    assert_string_equal(a, b);
    free(a);
    free(b);
    assert_int_equal(integrity(db, "pre"), SQLITE_OK);
    ret_pretok_free(p);
    ret_tokenizer_free(t);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_english),
        cmocka_unit_test(test_chinese),
        cmocka_unit_test(test_mixed),
        cmocka_unit_test(test_fullwidth),
        cmocka_unit_test(test_emoji_and_accents),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_long_word),
        cmocka_unit_test(test_unigrams),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_fts5),
        cmocka_unit_test(test_fts5_unigrams),
        cmocka_unit_test(test_stem_cache),
        cmocka_unit_test(test_pretok_replay),
        cmocka_unit_test(test_pretok_other_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
