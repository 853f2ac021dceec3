/* convo.c — conversations, messages, feedback and the review export (see
 * convo.h). Called by the HTTP server once or twice per /ask (history read,
 * then append) and for the portal's conversation list; every statement is
 * an indexed lookup on conversations(user_id, ...) or messages(conversation_id).
 * Ownership is part of every WHERE clause ("user_id IS ?", NULL for the local
 * administrator), so another user's rows are indistinguishable from missing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "buf.h"
#include "retrieval/convo.h"

#define LIST_DEFAULT 100
#define LIST_MAX 1000
#define HISTORY_MAX 50
#define REVIEW_DEFAULT 1000
#define REVIEW_MAX 100000

static zk_rc db_fail(sqlite3 *db, char *err, const char *what)
{
    return zk_fail(err, ZK_DB, "%s: %s", what, sqlite3_errmsg(db));
}

static void bind_owner(sqlite3_stmt *st, int idx, int64_t user_id)
{
    if (user_id > 0) sqlite3_bind_int64(st, idx, user_id);
    else sqlite3_bind_null(st, idx);
}

/* Copy of a nullable text column (NULL stays NULL); *oom set on failure. */
static char *col_dup(sqlite3_stmt *st, int i, int *oom)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    if (!v) return NULL;
    char *d = zk_strndup(v, (size_t)sqlite3_column_bytes(st, i));
    if (!d) *oom = 1;
    return d;
}

/* 1 when convo_id exists and belongs to user_id, else 0; -1 on error. */
static int owns_convo(sqlite3 *db, int64_t user_id, int64_t convo_id)
{
    sqlite3_stmt *st = NULL;
    int r = -1;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM conversations WHERE id = ? AND user_id IS ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_int64(st, 1, convo_id);
        bind_owner(st, 2, user_id);
        int step = sqlite3_step(st);
        r = step == SQLITE_ROW ? 1 : step == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(st);
    return r;
}

/* ---- conversations ---------------------------------------------------------- */

zk_rc ret_convo_create(ret_store *s, int64_t user_id, int64_t kb, const char *title, int64_t *out_id, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    *out_id = 0;
    if (title && strlen(title) > 4 * RET_CONVO_TITLE_MAX)
        return zk_fail(err, ZK_TOOBIG, "conversation title longer than %d bytes", 4 * RET_CONVO_TITLE_MAX);
    if (sqlite3_prepare_v2(db, "INSERT INTO conversations(user_id, kb_id, title) VALUES (?, ?, ?)", -1, &st,
                           NULL) != SQLITE_OK) {
        rc = db_fail(db, err, "conversation");
        goto out;
    }
    bind_owner(st, 1, user_id);
    sqlite3_bind_int64(st, 2, kb);
    sqlite3_bind_text(st, 3, title ? title : "", -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_CONSTRAINT_FOREIGNKEY || sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_FOREIGNKEY) {
        rc = zk_fail(err, ZK_NOTFOUND, "no such knowledge base or user");
        goto out;
    }
    if (step != SQLITE_DONE) {
        rc = db_fail(db, err, "conversation");
        goto out;
    }
    *out_id = sqlite3_last_insert_rowid(db);
out:
    sqlite3_finalize(st);
    return rc;
}

static void convo_clear(ret_convo *c)
{
    zk_free(c->title);
    for (size_t i = 0; i < c->nmessages; i++) {
        ret_message *m = &c->messages[i];
        zk_free(m->question);
        zk_free(m->standalone);
        zk_free(m->answer);
        zk_free(m->citations);
        zk_free(m->provider);
    }
    zk_free(c->messages);
}

void ret_convo_list_free(ret_convo *list, size_t n)
{
    if (!list) return;
    for (size_t i = 0; i < n; i++) convo_clear(&list[i]);
    zk_free(list);
}

void ret_convo_free(ret_convo *c)
{
    if (!c) return;
    convo_clear(c);
    zk_free(c);
}

zk_rc ret_convo_list(ret_store *s, int64_t user_id, int limit, ret_convo **out, size_t *out_n, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    ret_convo *list = NULL;
    size_t n = 0;
    int step, oom = 0;
    zk_rc rc = ZK_OK;
    *out = NULL;
    *out_n = 0;
    if (limit <= 0) limit = LIST_DEFAULT;
    if (limit > LIST_MAX) limit = LIST_MAX;
    if (!(list = zk_calloc((size_t)limit, sizeof *list))) return zk_fail(err, ZK_NOMEM, "out of memory");
    if (sqlite3_prepare_v2(db, "SELECT id, kb_id, title, created_at, updated_at FROM conversations "
                               "WHERE user_id IS ? ORDER BY updated_at DESC, id DESC LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, err, "conversation list");
        goto out;
    }
    bind_owner(st, 1, user_id);
    sqlite3_bind_int(st, 2, limit);
    while ((step = sqlite3_step(st)) == SQLITE_ROW && n < (size_t)limit) {
        ret_convo *c = &list[n++];
        c->id = sqlite3_column_int64(st, 0);
        c->kb_id = sqlite3_column_int64(st, 1);
        c->title = col_dup(st, 2, &oom);
        c->created_at = sqlite3_column_int64(st, 3);
        c->updated_at = sqlite3_column_int64(st, 4);
        if (oom) break;
    }
    if (oom) rc = zk_fail(err, ZK_NOMEM, "out of memory");
    else if (step != SQLITE_DONE && step != SQLITE_ROW) rc = db_fail(db, err, "conversation list");
out:
    sqlite3_finalize(st);
    if (rc != ZK_OK) {
        ret_convo_list_free(list, n);
        return rc;
    }
    if (n == 0) {
        zk_free(list);
        list = NULL;
    }
    *out = list;
    *out_n = n;
    return ZK_OK;
}

zk_rc ret_convo_get(ret_store *s, int64_t user_id, int64_t convo_id, ret_convo **out, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    ret_convo *c = NULL;
    size_t cap = 0;
    int step, oom = 0;
    zk_rc rc = ZK_OK;
    *out = NULL;
    if (!(c = zk_calloc(1, sizeof *c))) return zk_fail(err, ZK_NOMEM, "out of memory");
    if (sqlite3_prepare_v2(db, "SELECT id, kb_id, title, created_at, updated_at FROM conversations "
                               "WHERE id = ? AND user_id IS ?", -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, err, "conversation");
        goto out;
    }
    sqlite3_bind_int64(st, 1, convo_id);
    bind_owner(st, 2, user_id);
    step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = zk_fail(err, ZK_NOTFOUND, "no conversation %lld", (long long)convo_id);
        goto out;
    }
    if (step != SQLITE_ROW) {
        rc = db_fail(db, err, "conversation");
        goto out;
    }
    c->id = sqlite3_column_int64(st, 0);
    c->kb_id = sqlite3_column_int64(st, 1);
    c->title = col_dup(st, 2, &oom);
    c->created_at = sqlite3_column_int64(st, 3);
    c->updated_at = sqlite3_column_int64(st, 4);
    sqlite3_finalize(st);
    st = NULL;
    if (oom) goto nomem;

    if (sqlite3_prepare_v2(db, "SELECT id, question, standalone, answer, citations, provider, not_found, "
                               "created_at FROM messages WHERE conversation_id = ? ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, err, "conversation");
        goto out;
    }
    sqlite3_bind_int64(st, 1, convo_id);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (c->nmessages == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            ret_message *grown = zk_realloc(c->messages, ncap * sizeof *grown);
            if (!grown) goto nomem;
            c->messages = grown;
            cap = ncap;
        }
        ret_message *m = &c->messages[c->nmessages++];
        memset(m, 0, sizeof *m);
        m->id = sqlite3_column_int64(st, 0);
        m->question = col_dup(st, 1, &oom);
        m->standalone = col_dup(st, 2, &oom);
        m->answer = col_dup(st, 3, &oom);
        m->citations = col_dup(st, 4, &oom);
        m->provider = col_dup(st, 5, &oom);
        m->not_found = sqlite3_column_int(st, 6);
        m->created_at = sqlite3_column_int64(st, 7);
        if (oom) goto nomem;
    }
    if (step != SQLITE_DONE) rc = db_fail(db, err, "conversation");
    goto out;
nomem:
    rc = zk_fail(err, ZK_NOMEM, "out of memory");
out:
    sqlite3_finalize(st);
    if (rc != ZK_OK) ret_convo_free(c);
    else *out = c;
    return rc;
}

/* Title from a question: its first non-empty line, trimmed, at most
 * RET_CONVO_TITLE_MAX bytes cut on a UTF-8 character boundary. */
static size_t title_from(const char *q, const char **out_start)
{
    while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n') q++;
    size_t n = strcspn(q, "\r\n");
    if (n > RET_CONVO_TITLE_MAX) {
        n = RET_CONVO_TITLE_MAX;
        while (n > 0 && ((unsigned char)q[n] & 0xC0) == 0x80) n--;   /* q[n] continues a character */
    }
    while (n > 0 && (q[n - 1] == ' ' || q[n - 1] == '\t')) n--;
    *out_start = q;
    return n;
}

zk_rc ret_convo_append(ret_store *s, int64_t user_id, int64_t convo_id, const ret_message_in *m,
                       int64_t *out_message_id, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    const char *tstart;
    size_t tlen;
    int in_sp = 0;
    zk_rc rc = ZK_OK;
    if (out_message_id) *out_message_id = 0;
    if (!m || !m->question) return zk_fail(err, ZK_INVALID, "message without a question");

    int own = 0;
    if ((rc = ret__tx_begin(db, "convo_append", &own, err)) != ZK_OK) return rc;
    in_sp = 1;
    int owns = owns_convo(db, user_id, convo_id);
    if (owns < 0) { rc = db_fail(db, err, "conversation"); goto out; }
    if (owns == 0) { rc = zk_fail(err, ZK_NOTFOUND, "no conversation %lld", (long long)convo_id); goto out; }

    if (sqlite3_prepare_v2(db, "INSERT INTO messages(conversation_id, question, standalone, answer, citations, "
                               "not_found, provider) VALUES (?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_int64(st, 1, convo_id);
    sqlite3_bind_text(st, 2, m->question, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, m->standalone, -1, SQLITE_STATIC);   /* NULL pointer binds NULL */
    sqlite3_bind_text(st, 4, m->answer ? m->answer : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, m->citations, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, m->not_found ? 1 : 0);
    sqlite3_bind_text(st, 7, m->provider, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) goto dberr;
    int64_t mid = sqlite3_last_insert_rowid(db);
    sqlite3_finalize(st);
    st = NULL;

    tlen = title_from(m->question, &tstart);
    if (sqlite3_prepare_v2(db, "UPDATE conversations SET updated_at = max(updated_at, unixepoch()), "
                               "title = CASE WHEN title = '' THEN ? ELSE title END WHERE id = ?",
                           -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_text(st, 1, tstart, (int)tlen, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, convo_id);
    if (sqlite3_step(st) != SQLITE_DONE) goto dberr;
    in_sp = 0;
    if ((rc = ret__tx_end(db, "convo_append", own, ZK_OK, err)) != ZK_OK) goto out;
    if (out_message_id) *out_message_id = mid;
    goto out;
dberr:
    rc = db_fail(db, err, "conversation");
out:
    sqlite3_finalize(st);
    if (in_sp) ret__tx_end(db, "convo_append", own, rc, NULL);
    return rc;
}

void ret_turns_free(ret_turn *t, size_t n)
{
    if (!t) return;
    for (size_t i = 0; i < n; i++) {
        zk_free(t[i].question);
        zk_free(t[i].answer);
    }
    zk_free(t);
}

zk_rc ret_convo_history(ret_store *s, int64_t user_id, int64_t convo_id, int n, ret_turn **out,
                        size_t *out_n, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    ret_turn *turns = NULL;
    size_t got = 0;
    int step, oom = 0;
    zk_rc rc = ZK_OK;
    *out = NULL;
    *out_n = 0;
    int owns = owns_convo(db, user_id, convo_id);
    if (owns < 0) return db_fail(db, err, "conversation");
    if (owns == 0) return zk_fail(err, ZK_NOTFOUND, "no conversation %lld", (long long)convo_id);
    if (n <= 0) return ZK_OK;
    if (n > HISTORY_MAX) n = HISTORY_MAX;
    if (!(turns = zk_calloc((size_t)n, sizeof *turns))) return zk_fail(err, ZK_NOMEM, "out of memory");
    /* newest n, then reversed below to oldest first */
    if (sqlite3_prepare_v2(db, "SELECT question, answer FROM messages WHERE conversation_id = ? "
                               "ORDER BY id DESC LIMIT ?", -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, err, "conversation history");
        goto out;
    }
    sqlite3_bind_int64(st, 1, convo_id);
    sqlite3_bind_int(st, 2, n);
    while (got < (size_t)n && (step = sqlite3_step(st)) == SQLITE_ROW) {
        ret_turn *t = &turns[got++];
        t->question = col_dup(st, 0, &oom);
        t->answer = col_dup(st, 1, &oom);
        if (oom) break;
    }
    if (oom) rc = zk_fail(err, ZK_NOMEM, "out of memory");
    else if (got < (size_t)n && step != SQLITE_DONE) rc = db_fail(db, err, "conversation history");
out:
    sqlite3_finalize(st);
    if (rc != ZK_OK) {
        ret_turns_free(turns, got);
        return rc;
    }
    for (size_t i = 0; i < got / 2; i++) {
        ret_turn tmp = turns[i];
        turns[i] = turns[got - 1 - i];
        turns[got - 1 - i] = tmp;
    }
    if (got == 0) {
        zk_free(turns);
        turns = NULL;
    }
    *out = turns;
    *out_n = got;
    return ZK_OK;
}

/* ---- feedback ------------------------------------------------------------------ */

zk_rc ret_feedback(ret_store *s, int64_t user_id, int64_t message_id, int rating, const char *comment, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    int in_sp = 0, step;
    zk_rc rc = ZK_OK;
    if (rating != 1 && rating != -1) return zk_fail(err, ZK_INVALID, "rating must be 1 or -1");
    if (comment && strlen(comment) > RET_FEEDBACK_MAX_COMMENT)
        return zk_fail(err, ZK_TOOBIG, "comment longer than %d bytes", RET_FEEDBACK_MAX_COMMENT);
    if (comment && !*comment) comment = NULL;

    int own = 0;
    if ((rc = ret__tx_begin(db, "feedback", &own, err)) != ZK_OK) return rc;
    in_sp = 1;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                               "WHERE m.id = ? AND c.user_id IS ?", -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_int64(st, 1, message_id);
    bind_owner(st, 2, user_id);
    step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = zk_fail(err, ZK_NOTFOUND, "no message %lld", (long long)message_id);
        goto out;
    }
    if (step != SQLITE_ROW) goto dberr;
    sqlite3_finalize(st);
    st = NULL;

    /* UNIQUE(message_id, user_id) does not hold for NULL users, so the upsert
     * is an UPDATE with IS, then an INSERT when nothing matched. */
    if (sqlite3_prepare_v2(db, "UPDATE feedback SET rating = ?, comment = ?, created_at = unixepoch() "
                               "WHERE message_id = ? AND user_id IS ?", -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_int(st, 1, rating);
    sqlite3_bind_text(st, 2, comment, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, message_id);
    bind_owner(st, 4, user_id);
    if (sqlite3_step(st) != SQLITE_DONE) goto dberr;
    int updated = sqlite3_changes(db);
    sqlite3_finalize(st);
    st = NULL;
    if (!updated) {
        if (sqlite3_prepare_v2(db, "INSERT INTO feedback(message_id, user_id, rating, comment) VALUES (?, ?, ?, ?)",
                               -1, &st, NULL) != SQLITE_OK)
            goto dberr;
        sqlite3_bind_int64(st, 1, message_id);
        bind_owner(st, 2, user_id);
        sqlite3_bind_int(st, 3, rating);
        sqlite3_bind_text(st, 4, comment, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) goto dberr;
    }
    in_sp = 0;
    rc = ret__tx_end(db, "feedback", own, ZK_OK, err);
    goto out;
dberr:
    rc = db_fail(db, err, "feedback");
out:
    sqlite3_finalize(st);
    if (in_sp) ret__tx_end(db, "feedback", own, rc, NULL);
    return rc;
}

/* ---- review export ------------------------------------------------------------- */

static json_t *json_text_or_null(sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    return v ? json_stringn(v, (size_t)sqlite3_column_bytes(st, i)) : json_null();
}

zk_rc ret_review_export(ret_store *s, int64_t since, int limit, int jsonl, char **out_text, size_t *out_len,
                        char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    json_t *arr = NULL;
    zk_buf b;
    int step;
    zk_rc rc = ZK_OK;
    *out_text = NULL;
    if (out_len) *out_len = 0;
    buf_init(&b, 0);
    if (limit <= 0) limit = REVIEW_DEFAULT;
    if (limit > REVIEW_MAX) limit = REVIEW_MAX;
    /* the latest feedback row of each message (one per user; owners only) */
    const char *sql =
        "SELECT m.id, m.created_at, coalesce(p.name, 'admin'), m.question, m.answer, m.not_found, "
        "       f.rating, f.comment "
        "FROM messages m JOIN conversations c ON c.id = m.conversation_id "
        "LEFT JOIN principals p ON p.id = c.user_id "
        "LEFT JOIN feedback f ON f.id = (SELECT max(id) FROM feedback WHERE message_id = m.id) "
        "WHERE (m.not_found = 1 OR f.rating = -1) AND m.created_at >= ? "
        "ORDER BY m.created_at DESC, m.id DESC LIMIT ?";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, err, "review export");
        goto out;
    }
    sqlite3_bind_int64(st, 1, since);
    sqlite3_bind_int(st, 2, limit);
    if (!jsonl && !(arr = json_array())) goto nomem;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *o = json_object();
        if (!o) goto nomem;
        json_object_set_new(o, "message_id", json_integer(sqlite3_column_int64(st, 0)));
        json_object_set_new(o, "at", json_integer(sqlite3_column_int64(st, 1)));
        json_object_set_new(o, "user", json_text_or_null(st, 2));
        json_object_set_new(o, "question", json_text_or_null(st, 3));
        json_object_set_new(o, "answer", json_text_or_null(st, 4));
        json_object_set_new(o, "not_found", json_boolean(sqlite3_column_int(st, 5)));
        json_object_set_new(o, "rating", sqlite3_column_type(st, 6) == SQLITE_NULL
                                             ? json_null() : json_integer(sqlite3_column_int(st, 6)));
        json_object_set_new(o, "comment", json_text_or_null(st, 7));
        if (jsonl) {
            char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
            json_decref(o);
            if (!line) goto nomem;
            rc = buf_puts(&b, line);
            if (rc == ZK_OK) rc = buf_putc(&b, '\n');
            free(line);
            if (rc != ZK_OK) { rc = zk_fail(err, rc, "review export too large"); goto out; }
        } else if (json_array_append_new(arr, o) != 0) {
            goto nomem;
        }
    }
    if (step != SQLITE_DONE) {
        rc = db_fail(db, err, "review export");
        goto out;
    }
    if (!jsonl) {
        char *txt = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!txt) goto nomem;
        rc = buf_puts(&b, txt);
        free(txt);
        if (rc != ZK_OK) { rc = zk_fail(err, rc, "review export too large"); goto out; }
    }
    size_t len = 0;
    *out_text = buf_steal(&b, &len);
    if (!*out_text) goto nomem;
    if (out_len) *out_len = len;
    goto out;
nomem:
    rc = zk_fail(err, ZK_NOMEM, "out of memory");
out:
    sqlite3_finalize(st);
    json_decref(arr);
    buf_free(&b);
    return rc;
}
