/* api.c — the /api/v1 handlers employees and integrators use: login,
 * search, ask (JSON or SSE), documents (list, upload, fetch, passages,
 * original files, ACLs, delete), feedback and conversations. Each handler
 * parses its input, calls one retrieval/llm/indexer operation under the
 * request's caller, and formats the result; ACL enforcement lives in
 * retrieval, so a document the caller may not read answers 404 here
 * exactly like a missing one. */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/http.h"
#include "server/shapes.h"
#include "server/auth.h"
#include "server/session.h"
#include "retrieval/audit.h"
#include "retrieval/blob.h"
#include "retrieval/convo.h"
#include "retrieval/principal.h"
#include "retrieval/search.h"
#include "indexer/ingest.h"
#include "llm/answer.h"

#define MAX_QUESTION_BYTES 8000
#define HISTORY_TURNS 3

/* ---- shared helpers ------------------------------------------------------------ */

/* The kb named in a request ("kb" field or ?kb=), default "default". */
static zk_rc request_kb(srv_req *r, const char *name, int64_t *out, char *err)
{
    if (!name || !*name) name = srv_query(r, "kb");
    return ret_kb_id(r->store, name && *name ? name : NULL, out, err);
}

/* A document the caller may read, by numeric id or external id. */
static zk_rc readable_doc(srv_req *r, const char *ref, int64_t *out_doc, char *err)
{
    int64_t kb = 0, id;
    const char *kbname = srv_query(r, "kb");
    if (kbname && *kbname) {
        zk_rc rc = ret_kb_id(r->store, kbname, &kb, err);
        if (rc != ZK_OK) return rc;
    }
    int ok = 0;
    zk_rc rc = ret_doc_find(r->store, kb, ref, &id, err);
    if (rc == ZK_OK) rc = ret_acl_can_read(r->store, &r->caller, id, &ok, err);
    if (rc == ZK_OK && !ok) rc = ZK_NOTFOUND;
    if (rc == ZK_NOTFOUND) return zk_fail(err, ZK_NOTFOUND, "no document '%s'", ref);   /* same for forbidden */
    *out_doc = id;
    return rc;
}

static void audit(srv_req *r, const char *action, int64_t kb, const char *query, const ret_audit_ref *refs, size_t n)
{
    char err[ZK_ERRLEN];
    int days = (int)zk_config_int(r->srv->cfg, "audit", "retention_days");
    if (ret_audit_record(r->store, r->caller.name, action, kb, query, refs, n, days, err) != ZK_OK)
        ZK_LOG(ZK_LOG_WARN, "audit log: %s", err);
}

/* ---- login / me ------------------------------------------------------------------ */

static enum MHD_Result h_login(srv_req *r)
{
    char err[ZK_ERRLEN];
    json_t *b = srv_body_json(r, err);
    if (!b) return srv_error(r, 400, "bad_request", "%s", err);
    const char *user = json_string_value(json_object_get(b, "username"));
    const char *pass = json_string_value(json_object_get(b, "password"));
    if (!user || !pass) {
        json_decref(b);
        return srv_error(r, 400, "bad_request", "username and password are required");
    }
    int64_t uid;
    char *cookie = NULL, *csrf = NULL, key[128];
    snprintf(key, sizeof key, "login:%.100s", user);
    if (!srv_rate_ok(r->srv, key)) {   /* password guessing */
        json_decref(b);
        return srv_error(r, 429, "rate_limited", "too many login attempts; wait a minute");
    }
    zk_rc rc = ret_user_check_password(r->store, user, pass, &uid, err);
    if (rc != ZK_OK) {
        json_decref(b);
        return srv_error(r, 401, "unauthorized", "wrong user name or password");
    }
    if ((rc = srv_session_create(r->store, uid, r->srv->session_ttl, &cookie, &csrf, err)) != ZK_OK) {
        json_decref(b);
        return srv_fail(r, rc, err);
    }
    ret_caller c;
    int admin = 0;
    if (ret_caller_user(r->store, user, &c, err) == ZK_OK) {
        admin = c.admin;
        ret_caller_free(&c);
    }
    json_t *out = json_pack("{s:s,s:b,s:s}", "user", user, "is_admin", admin, "csrf_token", csrf);
    char *text = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    json_decref(b);
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    char setc[512];
    snprintf(setc, sizeof setc, "zk_session=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s", cookie,
             r->srv->session_ttl, r->srv->tls ? "; Secure" : "");
    MHD_add_response_header(resp, "Set-Cookie", setc);
    MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    zk_free(cookie);
    zk_free(csrf);
    r->status = 200;
    enum MHD_Result ret = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result h_logout(srv_req *r)
{
    char err[ZK_ERRLEN];
    const char *cookie = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, "zk_session");
    if (cookie) srv_session_destroy(r->store, cookie, err);
    struct MHD_Response *resp = MHD_create_response_from_buffer(11, (void *)"{\"ok\":true}", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, "Set-Cookie", "zk_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
    r->status = 200;
    enum MHD_Result ret = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result h_me(srv_req *r)
{
    json_t *groups = json_array(), *scopes = json_array();
    sqlite3_stmt *st = NULL;
    if (r->caller.principals_json &&
        sqlite3_prepare_v2(ret_store_db(r->store), "SELECT name FROM principals WHERE kind = 'group' AND id IN "
                           "(SELECT value FROM json_each(?)) ORDER BY name", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, r->caller.principals_json, -1, SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW) json_array_append_new(groups, json_string((const char *)sqlite3_column_text(st, 0)));
    }
    sqlite3_finalize(st);
    static const char *const names[] = {"search", "ask", "ingest", "admin"};
    for (int i = 0; i < 4; i++)
        if (r->scopes & (1u << i)) json_array_append_new(scopes, json_string(names[i]));
    const char *user = strncmp(r->caller.name, "user:", 5) ? r->caller.name : r->caller.name + 5;
    json_t *o = json_pack("{s:s,s:o,s:b,s:o}", "user", user, "groups", groups, "is_admin", r->caller.admin, "scopes", scopes);
    if (r->via_session) json_object_set_new(o, "csrf_token", json_string(r->csrf));
    json_object_set_new(o, "llm", json_boolean(r->srv->providers != NULL));
    return srv_json(r, 200, o);
}

/* ---- search ----------------------------------------------------------------------- */

/* Fill search options from a JSON body: mode, top_k, kb, filter.
 * 1 on success, 0 on bad input, -1 for an unknown knowledge base. */
static int search_opts(srv_req *r, json_t *b, ret_search_opts *o, char *err)
{
    ret_search_opts_init(o, r->srv->cfg);
    o->caller = &r->caller;
    const char *mode = json_string_value(json_object_get(b, "mode"));
    if (mode && ret_mode_parse(mode, &o->mode) != ZK_OK)
        return zk_fail(err, ZK_INVALID, "mode must be hybrid, bm25 or vector"), 0;
    json_t *tk = json_object_get(b, "top_k");
    if (tk) {
        if (!json_is_integer(tk) || json_integer_value(tk) < 1 || json_integer_value(tk) > 100)
            return zk_fail(err, ZK_INVALID, "top_k must be an integer from 1 to 100"), 0;
        o->top_k = (int)json_integer_value(tk);
    }
    zk_rc rc = request_kb(r, json_string_value(json_object_get(b, "kb")), &o->kb, err);
    if (rc != ZK_OK) return rc == ZK_NOTFOUND ? -1 : 0;
    json_t *f = json_object_get(b, "filter");
    if (f) {
        if (!json_is_object(f)) return zk_fail(err, ZK_INVALID, "filter must be an object of strings"), 0;
        const char *k;
        json_t *v;
        static __thread char kv[RET_MAX_FILTERS][512];
        json_object_foreach(f, k, v) {
            if (!json_is_string(v) || o->nfilters >= RET_MAX_FILTERS)
                return zk_fail(err, ZK_INVALID, "filter values must be strings (at most %d)", RET_MAX_FILTERS), 0;
            snprintf(kv[o->nfilters], sizeof kv[0], "%s=%s", k, json_string_value(v));
            if (ret_search_add_filter(o, kv[o->nfilters], err) != ZK_OK) return 0;
        }
    }
    return 1;
}

static enum MHD_Result h_search(srv_req *r)
{
    char err[ZK_ERRLEN] = "";
    json_t *b = srv_body_json(r, err);
    if (!b) return srv_error(r, 400, "bad_request", "%s", err);
    const char *q = json_string_value(json_object_get(b, "query"));
    ret_search_opts o;
    if (!q || !*q || strlen(q) > MAX_QUESTION_BYTES) {
        json_decref(b);
        return srv_error(r, 400, "bad_request", "query must be a non-empty string of at most %d bytes", MAX_QUESTION_BYTES);
    }
    int ok = search_opts(r, b, &o, err);
    if (ok <= 0) {
        json_decref(b);
        return ok < 0 ? srv_error(r, 404, "not_found", "%s", err) : srv_error(r, 400, "bad_request", "%s", err);
    }
    ret_hit *hits = NULL;
    size_t n = 0;
    double t0 = zk_now();
    zk_rc rc = ret_search(r->store, r->srv->emb, q, &o, &hits, &n, err);
    srv_stage(r->srv, SRV_STAGE_RETRIEVAL, zk_now() - t0);
    if (rc != ZK_OK) {
        json_decref(b);
        return srv_fail(r, rc, err);
    }
    json_t *arr = json_array();
    ret_audit_ref refs[100];
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, srv_hit_json(&hits[i]));
        if (i < 100) refs[i] = (ret_audit_ref){hits[i].doc_id, hits[i].chunk_id};
    }
    audit(r, "search", o.kb, q, refs, n < 100 ? n : 100);
    ret_hits_free(hits, n);
    json_decref(b);
    return srv_json(r, 200, json_pack("{s:o}", "hits", arr));
}

/* ---- ask ---------------------------------------------------------------------------------- */

typedef struct {
    char *question;
    ret_search_opts sopts;
    int64_t conversation_id;
    srv_stream *stream;        /* NULL: plain JSON */
} ask_job;

static void ask_job_free(void *p)
{
    ask_job *a = p;
    if (!a) return;
    zk_free(a->question);
    zk_free(a);
}

static int on_text(void *ctx, const char *text, size_t len)
{
    ask_job *a = ctx;
    return srv_stream_event(a->stream, "token", json_pack("{s:s%}", "text", text, len));
}

/* Run the ask pipeline for r's caller; the JSON answer (or an error
 * object) in *out. Returns the HTTP status. */
static int run_ask(srv_req *r, ask_job *a, json_t **out)
{
    char err[ZK_ERRLEN] = "";
    llm_answer_opts ao;
    llm_answer_opts_init(&ao, r->srv->cfg);
    ao.providers = r->srv->providers;
    ao.reranker = r->srv->reranker;
    ret_turn *turns = NULL;
    size_t nturns = 0;
    llm_turn hist[HISTORY_TURNS];
    ret_convo_history(r->store, r->user_id, a->conversation_id, HISTORY_TURNS, &turns, &nturns, err);
    for (size_t i = 0; i < nturns && i < HISTORY_TURNS; i++) hist[i] = (llm_turn){turns[i].question, turns[i].answer};
    ao.history = hist;
    ao.nhistory = nturns < HISTORY_TURNS ? nturns : HISTORY_TURNS;
    if (a->stream) {
        ao.on_text = on_text;
        ao.ctx = a;
    }
    a->sopts.caller = &r->caller;
    llm_result res;
    double t0 = zk_now();
    zk_rc rc = llm_ask(r->store, r->srv->emb, a->question, &a->sopts, &ao, &res, err);
    ret_turns_free(turns, nturns);
    srv_stage(r->srv, res.provider[0] && strcmp(res.provider, "extractive") ? SRV_STAGE_LLM_TOTAL : SRV_STAGE_RETRIEVAL,
              zk_now() - t0);
    if (rc != ZK_OK) {
        *out = json_pack("{s:{s:s,s:s}}", "error", "code", rc == ZK_INVALID ? "bad_request" : "unavailable",
                         "message", err[0] ? err : zk_strerror(rc));
        return rc == ZK_INVALID ? 400 : 503;
    }
    json_t *cits = srv_citations_json(&res);
    char *cits_text = json_dumps(cits, JSON_COMPACT);
    ret_message_in m = {.question = a->question, .standalone = res.standalone, .answer = res.answer,
                        .citations = cits_text, .provider = res.provider, .not_found = res.not_found};
    int64_t mid = 0;
    if (ret_convo_append(r->store, r->user_id, a->conversation_id, &m, &mid, err) != ZK_OK)
        ZK_LOG(ZK_LOG_WARN, "saving the answer to its conversation: %s", err);
    free(cits_text);
    ret_audit_ref refs[64];
    size_t k = 0;
    for (size_t i = 0; i < res.ncitations && k < 64; i++) refs[k++] = (ret_audit_ref){res.citations[i].doc_id, res.citations[i].chunk_id};
    audit(r, "ask", a->sopts.kb, a->question, refs, k);
    *out = json_pack("{s:s,s:o,s:I,s:I,s:s}", "answer", res.answer ? res.answer : "", "citations", cits,
                     "conversation_id", (json_int_t)a->conversation_id, "message_id", (json_int_t)mid, "provider",
                     res.provider);
    if (res.not_found) json_object_set_new(*out, "not_found", json_true());
    llm_result_free(&res);
    return 200;
}

static void ask_stream_main(srv_stream *st, void *arg)
{
    ask_job *a = arg;
    json_t *out = NULL;
    a->stream = st;
    int status = run_ask(srv_stream_req(st), a, &out);
    srv_stream_event(st, status == 200 ? "done" : "error", out);
}

static enum MHD_Result h_ask(srv_req *r)
{
    char err[ZK_ERRLEN] = "";
    json_t *b = srv_body_json(r, err);
    if (!b) return srv_error(r, 400, "bad_request", "%s", err);
    const char *q = json_string_value(json_object_get(b, "question"));
    if (!q || !*q || strlen(q) > MAX_QUESTION_BYTES) {
        json_decref(b);
        return srv_error(r, 400, "bad_request", "question must be a non-empty string of at most %d bytes",
                         MAX_QUESTION_BYTES);
    }
    ask_job *a = zk_calloc(1, sizeof *a);
    if (!a || !(a->question = zk_strdup(q))) {
        ask_job_free(a);
        json_decref(b);
        return srv_error(r, 500, "internal", "out of memory");
    }
    int ok = search_opts(r, b, &a->sopts, err);
    if (ok <= 0) {
        ask_job_free(a);
        json_decref(b);
        return ok < 0 ? srv_error(r, 404, "not_found", "%s", err) : srv_error(r, 400, "bad_request", "%s", err);
    }
    json_t *cid = json_object_get(b, "conversation_id");
    zk_rc rc;
    if (cid && !json_is_null(cid)) {
        ret_convo *c = NULL;
        int is_int = json_is_integer(cid);
        if (!is_int || (rc = ret_convo_get(r->store, r->user_id, json_integer_value(cid), &c, err)) != ZK_OK) {
            ask_job_free(a);
            json_decref(b);
            return srv_error(r, 404, "not_found", "no conversation %s", is_int ? "with that id" : "(bad id)");
        }
        a->conversation_id = c->id;
        ret_convo_free(c);
    } else if ((rc = ret_convo_create(r->store, r->user_id, a->sopts.kb, q, &a->conversation_id, err)) != ZK_OK) {
        ask_job_free(a);
        json_decref(b);
        return srv_fail(r, rc, err);
    }
    const char *accept = srv_header(r, "Accept");
    int stream = json_is_true(json_object_get(b, "stream")) || (accept && strstr(accept, "text/event-stream"));
    json_decref(b);
    if (stream) return srv_stream_start(r, ask_stream_main, a, ask_job_free);
    json_t *out = NULL;
    int status = run_ask(r, a, &out);
    ask_job_free(a);
    return srv_json(r, status, out);
}

/* ---- documents ----------------------------------------------------------------------- */

static enum MHD_Result h_docs_list(srv_req *r)
{
    char err[ZK_ERRLEN];
    int64_t kb;
    zk_rc rc = request_kb(r, NULL, &kb, err);
    if (rc != ZK_OK) return srv_fail(r, rc, err);
    const char *failed = srv_query(r, "failed"), *lim = srv_query(r, "limit"), *off = srv_query(r, "offset");
    long limit = lim ? strtol(lim, NULL, 10) : 100, offset = off ? strtol(off, NULL, 10) : 0;
    if (limit < 1 || limit > 1000) limit = 100;
    if (offset < 0) offset = 0;
    int only_failed = failed && (!strcmp(failed, "1") || !strcmp(failed, "true"));
    sqlite3 *db = ret_store_db(r->store);
    sqlite3_stmt *st = NULL;
    const char *sql = "SELECT id, ext_id, title, format, nchunks, bytes, status, error, datetime(updated_at,'unixepoch'), "
                      "count(*) OVER () FROM documents d WHERE kb_id = :kb AND (:failed = 0 OR status = 'failed' OR "
                      "error IS NOT NULL) AND" RET_ACL_PREDICATE "ORDER BY updated_at DESC, id DESC LIMIT :lim OFFSET :off";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return srv_fail(r, ZK_DB, sqlite3_errmsg(db));
    sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":kb"), kb);
    sqlite3_bind_int(st, sqlite3_bind_parameter_index(st, ":failed"), only_failed);
    sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":lim"), limit);
    sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":off"), offset);
    ret__acl_bind(st, &r->caller);
    json_t *arr = json_array();
    long long total = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *o = json_pack("{s:I,s:s,s:s,s:s?,s:I,s:I,s:s,s:s}", "doc", (json_int_t)sqlite3_column_int64(st, 0),
                              "id", (const char *)sqlite3_column_text(st, 1), "title", (const char *)sqlite3_column_text(st, 2),
                              "format", (const char *)sqlite3_column_text(st, 3), "chunks",
                              (json_int_t)sqlite3_column_int64(st, 4), "bytes", (json_int_t)sqlite3_column_int64(st, 5),
                              "status", (const char *)sqlite3_column_text(st, 6), "updated",
                              (const char *)sqlite3_column_text(st, 8));
        if (sqlite3_column_type(st, 7) != SQLITE_NULL)
            json_object_set_new(o, "error", json_string((const char *)sqlite3_column_text(st, 7)));
        total = sqlite3_column_int64(st, 9);
        json_array_append_new(arr, o);
    }
    sqlite3_finalize(st);
    return srv_json(r, 200, json_pack("{s:o,s:I}", "documents", arr, "total", (json_int_t)total));
}

static enum MHD_Result h_doc_get(srv_req *r)
{
    char err[ZK_ERRLEN];
    int64_t id;
    zk_rc rc = readable_doc(r, r->params[0], &id, err);
    if (rc != ZK_OK) return srv_fail(r, rc, err);
    sqlite3 *db = ret_store_db(r->store);
    sqlite3_stmt *st = NULL, *cs = NULL;
    sqlite3_prepare_v2(db, "SELECT ext_id, source, title, format, charset, bytes, version, status, error, metadata, "
                           "nchunks, datetime(updated_at,'unixepoch') FROM documents WHERE id = ?", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return srv_error(r, 404, "not_found", "no document '%s'", r->params[0]);
    }
    json_t *meta = sqlite3_column_type(st, 9) != SQLITE_NULL ? json_loads((const char *)sqlite3_column_text(st, 9), 0, NULL) : NULL;
    json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:s?,s:s?,s:I,s:I,s:s,s:o,s:s}", "doc", (json_int_t)id, "id",
                          (const char *)sqlite3_column_text(st, 0), "source", (const char *)sqlite3_column_text(st, 1),
                          "title", (const char *)sqlite3_column_text(st, 2), "format",
                          (const char *)sqlite3_column_text(st, 3), "charset", (const char *)sqlite3_column_text(st, 4),
                          "bytes", (json_int_t)sqlite3_column_int64(st, 5), "version",
                          (json_int_t)sqlite3_column_int64(st, 6), "status", (const char *)sqlite3_column_text(st, 7),
                          "metadata", meta ? meta : json_object(), "updated", (const char *)sqlite3_column_text(st, 11));
    if (sqlite3_column_type(st, 8) != SQLITE_NULL) json_object_set_new(o, "error", json_string((const char *)sqlite3_column_text(st, 8)));
    sqlite3_finalize(st);
    json_t *chunks = json_array();
    sqlite3_prepare_v2(db, "SELECT id, ordinal, heading, page, start_char, end_char, length(text) FROM chunks "
                           "WHERE doc_id = ? ORDER BY ordinal", -1, &cs, NULL);
    sqlite3_bind_int64(cs, 1, id);
    while (sqlite3_step(cs) == SQLITE_ROW) {
        json_t *c = json_pack("{s:I,s:I,s:s,s:I,s:I}", "chunk", (json_int_t)sqlite3_column_int64(cs, 0), "ordinal",
                              (json_int_t)sqlite3_column_int64(cs, 1), "heading", (const char *)sqlite3_column_text(cs, 2),
                              "start", (json_int_t)sqlite3_column_int64(cs, 4), "end", (json_int_t)sqlite3_column_int64(cs, 5));
        if (sqlite3_column_int(cs, 3) > 0) json_object_set_new(c, "page", json_integer(sqlite3_column_int(cs, 3)));
        json_array_append_new(chunks, c);
    }
    sqlite3_finalize(cs);
    json_object_set_new(o, "chunks", chunks);
    return srv_json(r, 200, o);
}

static enum MHD_Result h_chunk_get(srv_req *r)
{
    char err[ZK_ERRLEN];
    int64_t id;
    zk_rc rc = readable_doc(r, r->params[0], &id, err);
    if (rc != ZK_OK) return srv_fail(r, rc, err);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(ret_store_db(r->store),
                       "SELECT c.id, c.text, c.heading, c.page, c.start_char, c.end_char, d.ext_id, d.title, d.source "
                       "FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id = ? AND c.doc_id = ?", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, strtoll(r->params[1], NULL, 10));
    sqlite3_bind_int64(st, 2, id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return srv_error(r, 404, "not_found", "no such passage");
    }
    json_t *o = json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "chunk", (json_int_t)sqlite3_column_int64(st, 0),
                          "doc", (json_int_t)id, "id", (const char *)sqlite3_column_text(st, 6), "title",
                          (const char *)sqlite3_column_text(st, 7), "source", (const char *)sqlite3_column_text(st, 8),
                          "heading", (const char *)sqlite3_column_text(st, 2), "text",
                          (const char *)sqlite3_column_text(st, 1), "start", (json_int_t)sqlite3_column_int64(st, 4),
                          "end", (json_int_t)sqlite3_column_int64(st, 5));
    if (sqlite3_column_int(st, 3) > 0) json_object_set_new(o, "page", json_integer(sqlite3_column_int(st, 3)));
    sqlite3_finalize(st);
    return srv_json(r, 200, o);
}

static const char *mime_of(const char *format)
{
    static const struct { const char *f, *m; } map[] = {
        {"pdf", "application/pdf"}, {"html", "text/html; charset=utf-8"}, {"md", "text/markdown; charset=utf-8"},
        {"txt", "text/plain; charset=utf-8"}, {"csv", "text/csv; charset=utf-8"},
        {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
        {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
        {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
        {"odt", "application/vnd.oasis.opendocument.text"}, {"epub", "application/epub+zip"},
    };
    for (size_t i = 0; format && i < ZK_ARRAY_LEN(map); i++)
        if (!strcmp(map[i].f, format)) return map[i].m;
    return "application/octet-stream";
}

static enum MHD_Result h_doc_file(srv_req *r)
{
    char err[ZK_ERRLEN], sha[65] = "";
    int64_t id;
    zk_rc rc = readable_doc(r, r->params[0], &id, err);
    if (rc != ZK_OK) return srv_fail(r, rc, err);
    sqlite3_stmt *st = NULL;
    char source[4096] = "", format[32] = "", docsha[65] = "";
    sqlite3_prepare_v2(ret_store_db(r->store), "SELECT source, format, sha256 FROM documents WHERE id = ?", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(source, sizeof source, "%s", sqlite3_column_text(st, 0));
        snprintf(format, sizeof format, "%s", sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "");
        snprintf(docsha, sizeof docsha, "%s", sqlite3_column_text(st, 2));
    }
    sqlite3_finalize(st);
    void *data = NULL;
    size_t len = 0;
    if (ret_doc_blob(r->store, id, sha, err) == ZK_OK && sha[0]) {
        rc = ret_blob_read(r->store, sha, r->srv->max_upload, &data, &len, err);
    } else if (source[0] == '/') {   /* ingested from a path: serve it if it is unchanged */
        FILE *f = fopen(source, "rb");
        rc = ZK_NOTFOUND;
        if (f) {
            struct stat sb;
            if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && (size_t)sb.st_size <= r->srv->max_upload &&
                (data = zk_malloc((size_t)sb.st_size + 1)) && fread(data, 1, (size_t)sb.st_size, f) == (size_t)sb.st_size) {
                len = (size_t)sb.st_size;
                char now[65];
                zk_sha256_hex(data, len, now);
                rc = !strcmp(now, docsha) ? ZK_OK : zk_fail(err, ZK_NOTFOUND, "the source file changed since it was ingested");
            }
            fclose(f);
        }
    } else {
        rc = zk_fail(err, ZK_NOTFOUND, "the original file was not kept");
    }
    if (rc != ZK_OK) {
        zk_free(data);
        return srv_error(r, 404, "not_found", "%s", err[0] ? err : "the original file is not available");
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", mime_of(format));
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Content-Security-Policy", "sandbox");
    MHD_add_response_header(resp, "Content-Disposition", "attachment");
    r->status = 200;
    enum MHD_Result ret = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result h_doc_delete(srv_req *r)
{
    char err[ZK_ERRLEN];
    int64_t id;
    zk_rc rc = readable_doc(r, r->params[0], &id, err);
    if (rc == ZK_OK) rc = ret_doc_delete(r->store, id, err);
    if (rc != ZK_OK) return srv_fail(r, rc, err);
    return srv_json(r, 200, json_pack("{s:b}", "ok", 1));
}

static enum MHD_Result h_doc_acl(srv_req *r)
{
    char err[ZK_ERRLEN];
    int64_t id;
    zk_rc rc = readable_doc(r, r->params[0], &id, err);
    if (rc != ZK_OK) return srv_fail(r, rc, err);
    json_t *b = srv_body_json(r, err);
    json_t *read = b ? json_object_get(b, "read") : NULL;
    if (!read || !json_is_array(read) || json_array_size(read) > 256) {
        json_decref(b);
        return srv_error(r, 400, "bad_request", "expected {\"read\": [\"user:NAME\"|\"group:NAME\"|\"everyone\", ...]}");
    }
    int64_t ids[256];
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(read, i, v) {
        if (!json_is_string(v)) {
            json_decref(b);
            return srv_error(r, 400, "bad_request", "principals must be strings");
        }
        if ((rc = ret_principal_parse(r->store, json_string_value(v), &ids[n], err)) != ZK_OK) {
            json_decref(b);
            return srv_fail(r, rc, err);
        }
        n++;
    }
    json_decref(b);
    if ((rc = ret_acl_set(r->store, id, ids, n, err)) != ZK_OK) return srv_fail(r, rc, err);
    char **specs = NULL;
    size_t ns = 0;
    json_t *arr = json_array();
    if (ret_acl_list(r->store, id, &specs, &ns, err) == ZK_OK) {
        for (size_t k = 0; k < ns; k++) {
            json_array_append_new(arr, json_string(specs[k]));
            zk_free(specs[k]);
        }
        zk_free(specs);
    }
    return srv_json(r, 200, json_pack("{s:o}", "read", arr));
}

/* ---- uploads ------------------------------------------------------------------------------- */

typedef struct {
    idx_status st;
    size_t nchunks;
    char reason[ZK_ERRLEN];
    char id[600];
    int reports;
} upload_outcome;

static void on_upload_report(void *ctx, const char *id, idx_status st, size_t nchunks, const char *reason)
{
    upload_outcome *u = ctx;
    u->reports++;
    u->st = st;
    u->nchunks = nchunks;
    snprintf(u->reason, sizeof u->reason, "%s", reason ? reason : "");
    snprintf(u->id, sizeof u->id, "%s", id);
}

static int valid_upload_name(const char *s)
{
    if (!*s || strlen(s) > 255) return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == '/' || *p == '\\') return 0;
    return strcmp(s, ".") && strcmp(s, "..");
}

static enum MHD_Result h_doc_upload(srv_req *r)
{
    srv_ctx *s = r->srv;
    char err[ZK_ERRLEN] = "", extid[600], source[600];
    srv_upload *u = r->upload;
    json_t *b = NULL;
    const char *acl_text, *kbname, *tags_text = NULL;
    json_t *tags = json_object();
    if (u) {
        if (!u->data.len || !u->filename[0]) {
            json_decref(tags);
            return srv_error(r, 400, "bad_request", "multipart upload needs a 'file' part with a filename");
        }
        const char *base = strrchr(u->filename, '/');
        base = base ? base + 1 : u->filename;
        if (!valid_upload_name(base)) {
            json_decref(tags);
            return srv_error(r, 400, "bad_request", "bad file name");
        }
        snprintf(extid, sizeof extid, "%s", u->id[0] ? u->id : base);
        snprintf(source, sizeof source, "upload:%s", base);
        acl_text = u->acl;
        kbname = u->kb;
        tags_text = u->tags;
    } else {
        if (!(b = srv_body_json(r, err))) {
            json_decref(tags);
            return srv_error(r, 400, "bad_request", "%s (send multipart/form-data with a file, or JSON)", err);
        }
        const char *id = json_string_value(json_object_get(b, "id"));
        if (!id || !*id || strlen(id) > 500 || !json_is_string(json_object_get(b, "text"))) {
            json_decref(b);
            json_decref(tags);
            return srv_error(r, 400, "bad_request", "JSON documents need \"id\" and \"text\" strings");
        }
        snprintf(extid, sizeof extid, "%s", id);
        snprintf(source, sizeof source, "api:%s", id);
        json_t *acl = json_object_get(b, "acl");
        static __thread char aclbuf[1024];
        aclbuf[0] = '\0';
        if (json_is_array(acl)) {
            size_t i;
            json_t *v;
            json_array_foreach(acl, i, v) if (json_is_string(v)) {
                size_t l = strlen(aclbuf);
                snprintf(aclbuf + l, sizeof aclbuf - l, "%s%s", l ? "," : "", json_string_value(v));
            }
        } else if (json_is_string(acl)) {
            snprintf(aclbuf, sizeof aclbuf, "%s", json_string_value(acl));
        }
        acl_text = aclbuf;
        kbname = json_string_value(json_object_get(b, "kb"));
    }
    /* options: kb, acl (default_read when absent), tags */
    idx_ingest_opts o;
    idx_ingest_opts_init(&o, s->cfg);
    o.no_save = 1;
    o.workers = 1;
    upload_outcome out = {0};
    o.report = on_upload_report;
    o.report_ctx = &out;
    int64_t *acl_ids = NULL;
    size_t nacl = 0;
    zk_rc rc = request_kb(r, kbname, &o.kb, err);
    if (rc == ZK_OK) {
        o.acl_replace = acl_text && *acl_text;
        rc = ret_acl_parse_list(r->store, o.acl_replace ? acl_text : zk_config_get(s->cfg, "acl", "default_read"),
                                &acl_ids, &nacl, err);
        /* without an explicit acl the uploader can read what they uploaded */
        int64_t *grown;
        if (rc == ZK_OK && !o.acl_replace && r->user_id && (grown = zk_realloc(acl_ids, (nacl + 1) * sizeof *grown))) {
            acl_ids = grown;
            acl_ids[nacl++] = r->user_id;
        }
    }
    if (rc == ZK_OK && tags_text && *tags_text) {   /* "k=v,k=v" */
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", tags_text);
        char *save = NULL;
        for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(kv, '=');
            if (!eq || eq == kv) { rc = zk_fail(err, ZK_INVALID, "tags must be KEY=VALUE,KEY=VALUE"); break; }
            *eq = '\0';
            json_object_set_new(tags, kv, json_string(eq + 1));
        }
    }
    char *tagjson = json_object_size(tags) ? json_dumps(tags, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(tags);
    if (rc != ZK_OK) {
        json_decref(b);
        free(tagjson);
        zk_free(acl_ids);
        return srv_fail(r, rc, err);
    }
    o.acl = acl_ids;
    o.nacl = nacl;
    o.tags = tagjson;
    o.retry_failed = 1;
    idx_ingester *ing = NULL;
    __atomic_add_fetch(&s->ingest_in_flight, 1, __ATOMIC_SEQ_CST);
    double t0 = zk_now();
    if ((rc = idx_ingester_new(r->store, s->emb, &o, &ing, err)) == ZK_OK) {
        if (u) {
            rc = idx_ingest_bytes(ing, extid, source, u->filename, u->data.data, u->data.len, err);
        } else {
            char *line = json_dumps(b, JSON_COMPACT);
            rc = line ? idx_ingest_json(ing, line, strlen(line), extid, err) : zk_fail(err, ZK_NOMEM, "out of memory");
            free(line);
        }
        if (rc == ZK_OK) rc = idx_ingester_finish(ing, err);
        idx_ingester_free(ing);
    }
    __atomic_sub_fetch(&s->ingest_in_flight, 1, __ATOMIC_SEQ_CST);
    srv_stage(s, SRV_STAGE_INGEST, zk_now() - t0);
    json_decref(b);
    free(tagjson);
    zk_free(acl_ids);
    if (rc != ZK_OK) return srv_fail(r, rc, err);
    if (out.st == IDX_FAILED || out.st == IDX_SKIPPED)
        return srv_error(r, 422, "unprocessable", "%s", out.reason[0] ? out.reason : "the document could not be ingested");
    int64_t doc = 0;
    if (ret_doc_find(r->store, o.kb, extid, &doc, err) != ZK_OK)
        return srv_error(r, 500, "internal", "document vanished after ingestion");
    if (u) {   /* keep the original so it can be downloaded and re-parsed */
        char sha[65];
        if (ret_blob_put(r->store, u->data.data, u->data.len, sha, err) != ZK_OK || ret_doc_set_blob(r->store, doc, sha, err) != ZK_OK)
            ZK_LOG(ZK_LOG_WARN, "keeping the original upload: %s", err);
    }
    return srv_json(r, out.st == IDX_UNCHANGED ? 200 : 201,
                    json_pack("{s:I,s:s,s:s,s:I}", "doc", (json_int_t)doc, "id", extid, "status", idx_status_name(out.st),
                              "chunks", (json_int_t)out.nchunks));
}

/* ---- feedback and conversations ------------------------------------------------------------ */

static enum MHD_Result h_feedback(srv_req *r)
{
    char err[ZK_ERRLEN];
    json_t *b = srv_body_json(r, err);
    if (!b) return srv_error(r, 400, "bad_request", "%s", err);
    json_t *mid = json_object_get(b, "message_id"), *rating = json_object_get(b, "rating");
    const char *comment = json_string_value(json_object_get(b, "comment"));
    if (!json_is_integer(mid) || !json_is_integer(rating)) {
        json_decref(b);
        return srv_error(r, 400, "bad_request", "expected {\"message_id\": N, \"rating\": 1 or -1, \"comment\"?}");
    }
    zk_rc rc = ret_feedback(r->store, r->user_id, json_integer_value(mid), (int)json_integer_value(rating), comment, err);
    json_decref(b);
    if (rc != ZK_OK) return srv_fail(r, rc, err);
    return srv_json(r, 200, json_pack("{s:b}", "ok", 1));
}

static enum MHD_Result h_convo_list(srv_req *r)
{
    char err[ZK_ERRLEN];
    ret_convo *list = NULL;
    size_t n = 0;
    zk_rc rc = ret_convo_list(r->store, r->user_id, 100, &list, &n, err);
    if (rc != ZK_OK) return srv_fail(r, rc, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:I,s:s,s:I}", "id", (json_int_t)list[i].id, "title", list[i].title,
                                             "updated", (json_int_t)list[i].updated_at));
    ret_convo_list_free(list, n);
    return srv_json(r, 200, json_pack("{s:o}", "conversations", arr));
}

static enum MHD_Result h_convo_create(srv_req *r)
{
    char err[ZK_ERRLEN];
    json_t *b = r->body.len ? srv_body_json(r, err) : json_object();
    if (!b) return srv_error(r, 400, "bad_request", "%s", err);
    int64_t kb, id;
    zk_rc rc = request_kb(r, json_string_value(json_object_get(b, "kb")), &kb, err);
    if (rc == ZK_OK) rc = ret_convo_create(r->store, r->user_id, kb, json_string_value(json_object_get(b, "title")), &id, err);
    json_decref(b);
    if (rc != ZK_OK) return srv_fail(r, rc, err);
    return srv_json(r, 201, json_pack("{s:I}", "id", (json_int_t)id));
}

static enum MHD_Result h_convo_get(srv_req *r)
{
    char err[ZK_ERRLEN];
    ret_convo *c = NULL;
    zk_rc rc = ret_convo_get(r->store, r->user_id, strtoll(r->params[0], NULL, 10), &c, err);
    if (rc != ZK_OK) return srv_fail(r, rc, err);
    json_t *msgs = json_array();
    for (size_t i = 0; i < c->nmessages; i++) {
        const ret_message *m = &c->messages[i];
        json_t *cits = m->citations ? json_loads(m->citations, 0, NULL) : NULL;
        json_t *o = json_pack("{s:I,s:s,s:s,s:o,s:b,s:I}", "id", (json_int_t)m->id, "question", m->question, "answer",
                              m->answer ? m->answer : "", "citations", cits ? cits : json_array(), "not_found",
                              m->not_found, "created", (json_int_t)m->created_at);
        json_array_append_new(msgs, o);
    }
    json_t *o = json_pack("{s:I,s:s,s:o}", "id", (json_int_t)c->id, "title", c->title, "messages", msgs);
    ret_convo_free(c);
    return srv_json(r, 200, o);
}

void srv_register_api(srv_ctx *s)
{
    srv_route_add(s, "POST", "/api/v1/login", 0, h_login, "login");
    srv_route_add(s, "POST", "/api/v1/logout", 0, h_logout, "logout");
    srv_route_add(s, "GET", "/api/v1/me", SRV_AUTH_ONLY, h_me, "me");
    srv_route_add(s, "POST", "/api/v1/search", SRV_SCOPE_SEARCH, h_search, "search");
    srv_route_add(s, "POST", "/api/v1/ask", SRV_SCOPE_ASK, h_ask, "ask");
    srv_route_add(s, "GET", "/api/v1/documents", SRV_SCOPE_SEARCH, h_docs_list, "documents_list");
    srv_route_add(s, "POST", "/api/v1/documents", SRV_SCOPE_INGEST, h_doc_upload, "documents_upload");
    srv_route_add(s, "GET", "/api/v1/documents/{}", SRV_SCOPE_SEARCH, h_doc_get, "document");
    srv_route_add(s, "DELETE", "/api/v1/documents/{}", SRV_SCOPE_INGEST, h_doc_delete, "document_delete");
    srv_route_add(s, "GET", "/api/v1/documents/{}/file", SRV_SCOPE_SEARCH, h_doc_file, "document_file");
    srv_route_add(s, "GET", "/api/v1/documents/{}/chunks/{}", SRV_SCOPE_SEARCH, h_chunk_get, "passage");
    srv_route_add(s, "PUT", "/api/v1/documents/{}/acl", SRV_SCOPE_ADMIN, h_doc_acl, "document_acl");
    srv_route_add(s, "POST", "/api/v1/feedback", SRV_SCOPE_ASK, h_feedback, "feedback");
    srv_route_add(s, "GET", "/api/v1/conversations", SRV_SCOPE_ASK, h_convo_list, "conversations");
    srv_route_add(s, "POST", "/api/v1/conversations", SRV_SCOPE_ASK, h_convo_create, "conversation_create");
    srv_route_add(s, "GET", "/api/v1/conversations/{}", SRV_SCOPE_ASK, h_convo_get, "conversation");
}
