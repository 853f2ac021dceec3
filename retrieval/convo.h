/* convo.h — conversations of the ask endpoint: their messages (question,
 * stand-alone rewrite, answer, citations), feedback on answers, and the
 * review export of questions that went unanswered or were rated down.
 *
 * Ownership: a conversation belongs to one user (user_id > 0) or to the local
 * administrator (user_id 0, stored as NULL). Every call takes the caller's
 * user id and only ever touches that owner's rows; another owner's
 * conversation or message answers ZK_NOTFOUND, exactly like a missing one.
 * Called by the HTTP server (one store per worker thread) and the CLI;
 * single-threaded like the store. Text sizes are capped by the caller,
 * except feedback comments (RET_FEEDBACK_MAX_COMMENT bytes). */
#ifndef RET_CONVO_H
#define RET_CONVO_H

#include <stddef.h>
#include <stdint.h>
#include "zk.h"
#include "retrieval/store.h"

#define RET_FEEDBACK_MAX_COMMENT 2000   /* bytes */
#define RET_CONVO_TITLE_MAX 120         /* bytes of a title taken from the first question */

typedef struct {
    int64_t id;
    char *question;
    char *standalone;   /* NULL when the question was not rewritten */
    char *answer;
    char *citations;    /* JSON array text, or NULL */
    char *provider;     /* NULL when unknown */
    int not_found;
    int64_t created_at; /* unix seconds */
} ret_message;

typedef struct {
    int64_t id;
    int64_t kb_id;
    char *title;
    int64_t created_at, updated_at;
    ret_message *messages;   /* oldest first; only filled by ret_convo_get */
    size_t nmessages;
} ret_convo;

/* Input of ret_convo_append; every string may be NULL except question. */
typedef struct {
    const char *question;
    const char *standalone;
    const char *answer;
    const char *citations;   /* JSON array text */
    const char *provider;
    int not_found;
} ret_message_in;

/* A previous turn, for rewriting a follow-up into a stand-alone query. */
typedef struct {
    char *question;
    char *answer;
} ret_turn;

/* Create a conversation in kb (title may be NULL or ""). */
zk_rc ret_convo_create(ret_store *s, int64_t user_id, int64_t kb, const char *title, int64_t *out_id, char *err);

/* The owner's conversations, most recently updated first, at most limit
 * (<= 0: 100). Messages are not loaded. Free with ret_convo_list_free. */
zk_rc ret_convo_list(ret_store *s, int64_t user_id, int limit, ret_convo **out, size_t *out_n, char *err);
void ret_convo_list_free(ret_convo *list, size_t n);

/* One conversation with all its messages; ZK_NOTFOUND when missing or not
 * the caller's. Free with ret_convo_free. */
zk_rc ret_convo_get(ret_store *s, int64_t user_id, int64_t convo_id, ret_convo **out, char *err);
void ret_convo_free(ret_convo *c);

/* Append a message to the caller's conversation; bumps updated_at and, when
 * the title is empty, sets it from the question (first line, truncated to
 * RET_CONVO_TITLE_MAX bytes on a UTF-8 boundary). */
zk_rc ret_convo_append(ret_store *s, int64_t user_id, int64_t convo_id, const ret_message_in *m,
                       int64_t *out_message_id, char *err);

/* The last n turns (oldest first) of the caller's conversation. Free with
 * ret_turns_free. */
zk_rc ret_convo_history(ret_store *s, int64_t user_id, int64_t convo_id, int n, ret_turn **out,
                        size_t *out_n, char *err);
void ret_turns_free(ret_turn *t, size_t n);

/* Rate a message (+1 / -1) with an optional comment; only on messages of
 * the caller's own conversations (else ZK_NOTFOUND). A second call by the
 * same user replaces the first. ZK_INVALID for another rating, ZK_TOOBIG for
 * a longer comment. */
zk_rc ret_feedback(ret_store *s, int64_t user_id, int64_t message_id, int rating, const char *comment, char *err);

/* Review export (administrators): messages answered "not found" or rated -1,
 * created at or after since (unix seconds; 0 = all), newest first, at most
 * limit (<= 0: 1000; capped at 100000). Each item is
 * {"message_id","at","user","question","answer","not_found","rating","comment"}
 * with "at" in unix seconds, "user" the owner's name or "admin", rating and
 * comment null without feedback. jsonl = 0: one JSON array; 1: one object a
 * line. *out_text is NUL-terminated, caller frees with zk_free. */
zk_rc ret_review_export(ret_store *s, int64_t since, int limit, int jsonl, char **out_text, size_t *out_len,
                        char *err);

#endif
