/* hooks.c — the chat-bot webhook pipeline shared by every adapter: mounts
 * /hooks/NAME for the enabled adapters, acknowledges the platform at once
 * (the adapter's immediate answer), deduplicates events (webhook_events),
 * and hands each new question to a bounded pool of worker threads that map
 * the sender to a zhiku user (user_links), answer under that user's
 * permissions, audit, render and reply through the adapter. A full queue
 * answers 503 (and forgets the event) so the platform retries later. The
 * generic webhook is answered inline, in its HTTP response. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "retrieval/audit.h"
#include "retrieval/principal.h"
#include "retrieval/search.h"
#include "llm/answer.h"
#include "server/webhooks/hooks_int.h"

#define HOOK_MAX_QUESTION 8000
#define HOOK_PRUNE_EVERY_S 600      /* prune webhook_events at most this often */
#define HOOK_EVENT_TTL_S 86400      /* a day: longer than every platform's retry schedule */
#define HOOK_MAX_WORKERS 64

typedef struct {
    hook_adapter *a;
    hook_msg *m;
} hook_job;

struct hook_pool {
    srv_ctx *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hook_job *ring;                  /* bounded queue, guarded by mu */
    size_t cap, head, count;
    int stopping;                    /* guarded by mu */
    double drain_deadline;           /* after stop: queued jobs older than this are dropped */
    pthread_t *threads;
    int nthreads;
    int everyone;                    /* [webhooks] unknown_sender = everyone */
    char portal_url[1024];           /* without a trailing slash */
    long last_prune;                 /* (atomic) unix seconds */
};

/* ---- small shared pieces ------------------------------------------------------------ */

void hook_msg_free(hook_msg *m)
{
    if (!m) return;
    zk_free(m->text);
    zk_free(m);
}

void hook_http_set(hook_http *h, int status, const char *content_type, const char *body)
{
    zk_free(h->body);
    h->body = NULL;
    h->len = 0;
    h->status = status;
    snprintf(h->content_type, sizeof h->content_type, "%s", content_type ? content_type : "text/plain; charset=utf-8");
    if (body && *body && (h->body = zk_strdup(body))) h->len = strlen(body);
}

int hook__dedup(ret_store *st, const char *platform, const char *event_id)
{
    if (!event_id || !*event_id) return 1;
    sqlite3 *db = ret_store_db(st);
    sqlite3_stmt *q = NULL;
    int out = -1;
    if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO webhook_events (platform, event_id) VALUES (?, ?)", -1, &q,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, platform, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, event_id, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_DONE) out = sqlite3_changes(db) > 0 ? 1 : 0;
    }
    if (out < 0) ZK_LOG(ZK_LOG_ERROR, "webhook dedup: %s", sqlite3_errmsg(db));
    sqlite3_finalize(q);
    return out;
}

void hook__undedup(ret_store *st, const char *platform, const char *event_id)
{
    if (!event_id || !*event_id) return;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(ret_store_db(st), "DELETE FROM webhook_events WHERE platform = ? AND event_id = ?", -1, &q,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, platform, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, event_id, -1, SQLITE_STATIC);
        sqlite3_step(q);
    }
    sqlite3_finalize(q);
}

static void maybe_prune(struct hook_pool *p, ret_store *st)
{
    long now = (long)time(NULL), last = __atomic_load_n(&p->last_prune, __ATOMIC_RELAXED);
    if (now - last < HOOK_PRUNE_EVERY_S ||
        !__atomic_compare_exchange_n(&p->last_prune, &last, now, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
        return;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(ret_store_db(st), "DELETE FROM webhook_events WHERE seen_at < unixepoch() - ?", -1, &q,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_int(q, 1, HOOK_EVENT_TTL_S);
        sqlite3_step(q);
    }
    sqlite3_finalize(q);
}

/* ---- rendering ---------------------------------------------------------------------- */

static void put_escaped(zk_buf *b, const char *s, int style)
{
    for (; *s; s++) {
        if (style == HOOK_MRKDWN && *s == '&') buf_puts(b, "&amp;");
        else if (style == HOOK_MRKDWN && *s == '<') buf_puts(b, "&lt;");
        else if (style == HOOK_MRKDWN && *s == '>') buf_puts(b, "&gt;");
        else if (style == HOOK_MRKDWN && *s == '|') buf_putc(b, '/');   /* would end the link label */
        else if (style == HOOK_MARKDOWN && (*s == '[' || *s == ']')) buf_putc(b, *s == '[' ? '(' : ')');
        else if (*s == '\n' || *s == '\r') buf_putc(b, ' ');
        else buf_putc(b, *s);
    }
}

static void put_doc_url(zk_buf *b, const char *portal, const char *id)
{
    static const char hex[] = "0123456789ABCDEF";
    buf_printf(b, "%s/#/doc/", portal);
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
            *p == '_' || *p == '.' || *p == '~')
            buf_putc(b, (char)*p);
        else
            buf_printf(b, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
    }
}

/* The sources block: one line per source, "[n] title" or a link. */
static void render_sources(zk_buf *b, const hook_source *src, size_t nsrc, int style, const char *portal)
{
    if (!nsrc) return;
    buf_puts(b, style == HOOK_PLAIN ? "Sources / 来源:" : style == HOOK_MRKDWN ? "*Sources / 来源:*" : "**Sources / 来源:**");
    for (size_t i = 0; i < nsrc; i++) {
        const char *title = src[i].title && *src[i].title ? src[i].title : src[i].id ? src[i].id : "?";
        buf_printf(b, "\n[%d] ", src[i].n);
        int link = portal && *portal && src[i].id && *src[i].id;
        if (link && style == HOOK_MRKDWN) {
            buf_putc(b, '<');
            put_doc_url(b, portal, src[i].id);
            buf_putc(b, '|');
            put_escaped(b, title, style);
            buf_putc(b, '>');
        } else if (link && style == HOOK_MARKDOWN) {
            buf_putc(b, '[');
            put_escaped(b, title, style);
            buf_puts(b, "](");
            put_doc_url(b, portal, src[i].id);
            buf_putc(b, ')');
        } else {
            put_escaped(b, title, style);
            if (link) {
                buf_puts(b, " ");
                put_doc_url(b, portal, src[i].id);
            }
        }
    }
}

/* Largest n <= max such that s[0..n) ends on a UTF-8 character boundary. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max) return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return n;
}

char *hook_render(const char *answer, const hook_source *src, size_t nsrc, int style, size_t max_bytes,
                  const char *portal_url)
{
    zk_buf text, tail, out;
    char *result = NULL;
    const char *portal = portal_url ? portal_url : "";
    buf_init(&text, 1 << 22);
    buf_init(&tail, 1 << 20);
    buf_init(&out, 1 << 22);
    if (style == HOOK_MRKDWN) {
        for (const char *p = answer ? answer : ""; *p; p++) {
            if (*p == '&') buf_puts(&text, "&amp;");
            else if (*p == '<') buf_puts(&text, "&lt;");
            else if (*p == '>') buf_puts(&text, "&gt;");
            else buf_putc(&text, *p);
        }
    } else {
        buf_puts(&text, answer ? answer : "");
    }
    render_sources(&tail, src, nsrc, style, portal);
    size_t sep = tail.len ? 2 : 0;   /* "\n\n" between the answer and the sources */
    if (!max_bytes || text.len + sep + tail.len <= max_bytes) {
        buf_append(&out, buf_cstr(&text), text.len);
        if (tail.len) {
            buf_puts(&out, "\n\n");
            buf_append(&out, tail.data, tail.len);
        }
        goto done;
    }
    /* too long: cut the answer, say so, link the portal; keep the sources
     * if they leave at least half of the budget to the answer */
    zk_buf more;
    buf_init(&more, 4096);
    buf_puts(&more, "…");
    if (*portal) buf_printf(&more, "\n%s/", portal);
    if (tail.len + sep + more.len > max_bytes / 2) {
        buf_reset(&tail);
        sep = 0;
    }
    size_t budget = max_bytes > more.len + sep + tail.len ? max_bytes - more.len - sep - tail.len : 0;
    size_t n = utf8_cut(buf_cstr(&text), text.len, budget);
    /* an entity (&amp;) cut in half would show as garbage */
    if (style == HOOK_MRKDWN) {
        size_t k = n;
        while (k > 0 && n - k < 5 && text.data[k - 1] != ';' && text.data[k - 1] != '&') k--;
        if (k > 0 && text.data[k - 1] == '&') n = k - 1;
    }
    buf_append(&out, text.data, n);
    if (more.len <= max_bytes - n) buf_append(&out, more.data, more.len);
    if (tail.len) {
        buf_puts(&out, "\n\n");
        buf_append(&out, tail.data, tail.len);
    }
    buf_free(&more);
    if (out.len > max_bytes) {   /* tiny limits: hard cut on a character boundary */
        size_t m = utf8_cut(buf_cstr(&out), out.len, max_bytes);
        out.len = m;
        out.data[m] = '\0';
    }
done:
    result = zk_strdup(buf_cstr(&out));
    buf_free(&text);
    buf_free(&tail);
    buf_free(&out);
    return result;
}

/* ---- answering ----------------------------------------------------------------------- */

typedef struct {
    int refused;                     /* unknown sender (refuse mode) */
    int empty;                       /* no question in the message */
    int have_result;
    llm_result res;
    char who[192];                   /* audit principal: "user:NAME via PLATFORM" */
} hook_answer;

static void hook_answer_free(hook_answer *h)
{
    if (h->have_result) llm_result_free(&h->res);
    h->have_result = 0;
}

/* The zhiku user linked to (platform, sender); for the generic webhook a
 * user name works too. 0 when unknown. */
static int64_t linked_user(ret_store *st, const char *platform, const char *sender, char *name, size_t cap)
{
    sqlite3_stmt *q = NULL;
    int64_t uid = 0;
    name[0] = '\0';
    if (sqlite3_prepare_v2(ret_store_db(st), "SELECT p.id, p.name FROM user_links l JOIN principals p ON p.id = l.user_id "
                           "WHERE l.platform = ? AND l.platform_user_id = ? AND p.kind = 'user'", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, platform, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, sender, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW) {
            uid = sqlite3_column_int64(q, 0);
            snprintf(name, cap, "%s", (const char *)sqlite3_column_text(q, 1));
        }
    }
    sqlite3_finalize(q);
    if (!uid && !strcmp(platform, "generic") &&
        ret_principal_find(st, RET_PRINCIPAL_USER, sender, &uid, NULL) == ZK_OK)
        snprintf(name, cap, "%s", sender);
    return uid;
}

/* Answer m's question under its sender's permissions; kb NULL = default. */
static zk_rc answer_question(struct hook_pool *p, ret_store *st, const hook_msg *m, const char *kb, hook_answer *out,
                             char *err)
{
    srv_ctx *s = p->s;
    ret_caller caller;
    int have_caller = 0;
    char name[256];
    zk_rc rc = ZK_OK;
    memset(out, 0, sizeof *out);
    memset(&caller, 0, sizeof caller);
    if (!m->text || !*m->text) {
        out->empty = 1;
        return ZK_OK;
    }
    if (linked_user(st, m->platform, m->sender, name, sizeof name)) {
        if ((rc = ret_caller_user(st, name, &caller, err)) != ZK_OK) goto out;
        have_caller = 1;
        snprintf(out->who, sizeof out->who, "user:%.80s via %.15s", name, m->platform);
    } else if (p->everyone) {
        int64_t everyone;
        if ((rc = ret_principal_parse(st, "everyone", &everyone, err)) != ZK_OK ||
            (rc = ret_caller_from_set("everyone", 0, &everyone, 1, 0, &caller, err)) != ZK_OK)
            goto out;
        have_caller = 1;
        snprintf(out->who, sizeof out->who, "everyone via %s (%.64s)", m->platform, m->sender);
    } else {
        out->refused = 1;
        goto out;
    }
    ret_search_opts so;
    ret_search_opts_init(&so, s->cfg);
    so.caller = &caller;
    if ((rc = ret_kb_id(st, kb && *kb ? kb : NULL, &so.kb, err)) != ZK_OK) goto out;
    llm_answer_opts ao;
    llm_answer_opts_init(&ao, s->cfg);
    ao.providers = s->providers;
    ao.reranker = s->reranker;
    char question[HOOK_MAX_QUESTION + 4];
    size_t ql = strlen(m->text);
    if (ql > HOOK_MAX_QUESTION) {   /* chat messages can be long: keep a whole-character prefix */
        ql = HOOK_MAX_QUESTION;
        while (ql > 0 && ((unsigned char)m->text[ql] & 0xC0) == 0x80) ql--;
    }
    memcpy(question, m->text, ql);
    question[ql] = '\0';
    double t0 = zk_now();
    rc = llm_ask(st, s->emb, question, &so, &ao, &out->res, err);
    if (rc != ZK_OK) goto out;
    out->have_result = 1;
    srv_stage(s, out->res.provider[0] && strcmp(out->res.provider, "extractive") ? SRV_STAGE_LLM_TOTAL
                                                                                 : SRV_STAGE_RETRIEVAL,
              zk_now() - t0);
    ret_audit_ref refs[64];
    size_t k = 0;
    for (size_t i = 0; i < out->res.ncitations && k < 64; i++)
        refs[k++] = (ret_audit_ref){out->res.citations[i].doc_id, out->res.citations[i].chunk_id};
    char aerr[ZK_ERRLEN];
    if (ret_audit_record(st, out->who, "ask", so.kb, question, refs, k,
                         (int)zk_config_int(s->cfg, "audit", "retention_days"), aerr) != ZK_OK)
        ZK_LOG(ZK_LOG_WARN, "audit log: %s", aerr);
out:
    if (have_caller) ret_caller_free(&caller);
    return rc;
}

static char *refusal_text(const hook_msg *m)
{
    char buf[2048];
    snprintf(buf, sizeof buf,
             "Sorry, your %s account (%s) is not linked to a zhiku user yet, so I cannot answer. "
             "Please ask a zhiku administrator to run: zhiku user link YOUR_ZHIKU_NAME %s %s\n"
             "抱歉，您的 %s 账号（%s）尚未关联知库用户，暂时无法回答。请联系知库管理员运行：zhiku user link 您的用户名 %s %s",
             m->platform, m->sender, m->platform, m->sender, m->platform, m->sender, m->platform, m->sender);
    return zk_strdup(buf);
}

static const char EMPTY_TEXT[] = "Please ask a question after mentioning me. / 请在提及我之后输入您的问题。";
static const char FAILED_TEXT[] =
    "Sorry, I could not answer right now; please try again later. / 抱歉，暂时无法回答，请稍后再试。";

/* Distinct documents cited, in marker order. */
static size_t sources_of(const llm_result *res, hook_source *src, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < res->ncitations && n < cap; i++) {
        const llm_citation *c = &res->citations[i];
        char id[24];
        snprintf(id, sizeof id, "%lld", (long long)c->doc_id);
        int dup = 0;
        for (size_t k = 0; k < n && !dup; k++) dup = !strcmp(src[k].idbuf, id);
        if (dup) continue;
        src[n].n = c->n;
        src[n].title = c->title;
        memcpy(src[n].idbuf, id, sizeof id);
        src[n].id = src[n].idbuf;
        n++;
    }
    return n;
}

/* The worker's job: answer, render, reply (one retry after a second). */
static void process(struct hook_pool *p, hook_job *j)
{
    srv_ctx *s = p->s;
    char err[ZK_ERRLEN] = "";
    hook_answer ans;
    char *text = NULL;
    memset(&ans, 0, sizeof ans);
    ret_store *st = srv_store_get(s, err);
    if (!st) {
        ZK_LOG(ZK_LOG_ERROR, "webhook %s: no database connection: %s", j->a->name, err);
        return;
    }
    zk_rc rc = answer_question(p, st, j->m, NULL, &ans, err);
    maybe_prune(p, st);
    srv_store_put(s, st);
    hook_reply rep = {.question = j->m->text};
    if (rc != ZK_OK) {
        ZK_LOG(ZK_LOG_ERROR, "webhook %s: answering %s: %s", j->a->name, j->m->event_id, err);
        text = zk_strdup(FAILED_TEXT);
    } else if (ans.refused) {
        ZK_LOG(ZK_LOG_INFO, "webhook %s: sender %s is not linked; refused", j->a->name, j->m->sender);
        text = refusal_text(j->m);
        rep.refused = 1;
    } else if (ans.empty) {
        text = zk_strdup(EMPTY_TEXT);
    } else {
        hook_source src[32];
        size_t n = sources_of(&ans.res, src, 32);
        text = hook_render(ans.res.answer, src, n, j->a->markdown, j->a->max_reply_chars, p->portal_url);
        rep.not_found = ans.res.not_found;
    }
    rep.text = text ? text : "";
    err[0] = '\0';
    if (j->a->reply(j->a, j->m, &rep, err) != ZK_OK) {
        ZK_LOG(ZK_LOG_WARN, "webhook %s: reply failed (%s); retrying once", j->a->name, err);
        sleep(1);
        if (j->a->reply(j->a, j->m, &rep, err) != ZK_OK)
            ZK_LOG(ZK_LOG_ERROR, "webhook %s: reply to %s lost: %s", j->a->name, j->m->event_id, err);
    }
    zk_free(text);
    hook_answer_free(&ans);
}

static void *worker_main(void *arg)
{
    struct hook_pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->count && !p->stopping) pthread_cond_wait(&p->cv, &p->mu);
        if (!p->count) {   /* stopping and drained */
            pthread_mutex_unlock(&p->mu);
            break;
        }
        hook_job j = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->count--;
        int late = p->stopping && zk_now() > p->drain_deadline;
        pthread_mutex_unlock(&p->mu);
        if (late) ZK_LOG(ZK_LOG_WARN, "webhook %s: shutting down, question %s dropped", j.a->name, j.m->event_id);
        else process(p, &j);
        hook_msg_free(j.m);
    }
    return NULL;
}

/* 1 when queued (the pool owns m), 0 when the queue is full or stopping. */
static int enqueue(struct hook_pool *p, hook_adapter *a, hook_msg *m)
{
    int ok = 0;
    pthread_mutex_lock(&p->mu);
    if (!p->stopping && p->count < p->cap) {
        p->ring[(p->head + p->count) % p->cap] = (hook_job){a, m};
        p->count++;
        ok = 1;
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return ok;
}

/* ---- the generic webhook's inline answer ------------------------------------------- */

static json_t *sync_answer_json(struct hook_pool *p, ret_store *st, const hook_msg *m, int *out_status)
{
    char err[ZK_ERRLEN] = "";
    hook_answer ans;
    json_t *o = NULL;
    zk_rc rc = answer_question(p, st, m, m->reply_to, &ans, err);
    *out_status = 200;
    if (rc != ZK_OK) {
        *out_status = rc == ZK_NOTFOUND ? 404 : rc == ZK_INVALID ? 400 : 503;
        o = json_pack("{s:{s:s,s:s}}", "error", "code",
                      rc == ZK_NOTFOUND ? "not_found" : rc == ZK_INVALID ? "bad_request" : "unavailable", "message",
                      err[0] ? err : zk_strerror(rc));
    } else if (ans.refused) {
        char *t = refusal_text(m);
        o = json_pack("{s:s,s:[],s:b}", "answer", t ? t : "", "citations", "refused", 1);
        zk_free(t);
    } else {
        json_t *cits = json_array();
        for (size_t i = 0; i < ans.res.ncitations; i++) {
            const llm_citation *c = &ans.res.citations[i];
            json_t *jc = json_pack("{s:i,s:s,s:I,s:s,s:s,s:s,s:I,s:I,s:I,s:f}", "n", c->n, "id", c->ext_id ? c->ext_id : "",
                                   "doc", (json_int_t)c->doc_id, "source", c->source ? c->source : "", "title",
                                   c->title ? c->title : "", "heading", c->heading ? c->heading : "", "chunk",
                                   (json_int_t)c->chunk_id, "start", (json_int_t)c->start, "end", (json_int_t)c->end,
                                   "support", c->support);
            if (jc && c->page > 0) json_object_set_new(jc, "page", json_integer(c->page));
            if (jc && c->weak) json_object_set_new(jc, "weak", json_true());
            json_array_append_new(cits, jc);
        }
        o = json_pack("{s:s,s:o,s:s}", "answer", ans.res.answer ? ans.res.answer : "", "citations", cits, "provider",
                      ans.res.provider);
        if (o && ans.res.not_found) json_object_set_new(o, "not_found", json_true());
    }
    hook_answer_free(&ans);
    return o;
}

/* ---- the route -------------------------------------------------------------------------- */

static enum MHD_Result respond(srv_req *r, hook_http *h)
{
    int status = h->status ? h->status : 200;
    enum MHD_Result ret = srv_bytes(r, status, h->content_type[0] ? h->content_type : "text/plain; charset=utf-8",
                                    h->body ? h->body : "", h->len, 1);
    zk_free(h->body);
    h->body = NULL;
    return ret;
}

static enum MHD_Result h_hook(srv_req *r)
{
    srv_ctx *s = r->srv;
    struct hook_pool *p = s->hook_pool;
    hook_adapter *a = NULL;
    const char *name = r->path + strlen("/hooks/");
    for (int i = 0; i < s->nhooks && !a; i++)
        if (!strcmp(s->hooks[i]->name, name)) a = s->hooks[i];
    if (!a || !p) return srv_error(r, 404, "not_found", "no webhook %s", name);
    hook_http http;
    hook_msg *m = NULL;
    char err[ZK_ERRLEN] = "";
    memset(&http, 0, sizeof http);
    zk_rc rc = a->handle(a, r, &http, &m, err);
    if (rc != ZK_OK) {
        ZK_LOG(ZK_LOG_INFO, "webhook %s: rejected: %s", a->name, err[0] ? err : zk_strerror(rc));
        hook_msg_free(m);
        if (!http.status) hook_http_set(&http, rc == ZK_NOMEM ? 500 : rc == ZK_INVALID ? 401 : 400, NULL, "rejected");
        return respond(r, &http);
    }
    if (!m) return respond(r, &http);
    int fresh = hook__dedup(r->store, a->name, m->event_id);
    if (fresh < 0) {
        hook_msg_free(m);
        hook_http_set(&http, 503, NULL, "busy, retry later");
        return respond(r, &http);
    }
    if (!fresh) {
        ZK_LOG(ZK_LOG_INFO, "webhook %s: event %s already seen; not answered again", a->name, m->event_id);
        hook_msg_free(m);
        if (http.status == 200 && !strcmp(a->name, "generic")) {
            hook_http_set(&http, 200, "application/json; charset=utf-8", "{\"duplicate\":true}");
        }
        return respond(r, &http);
    }
    if (m->sync) {
        int status;
        json_t *o = sync_answer_json(p, r->store, m, &status);
        hook_msg_free(m);
        zk_free(http.body);
        maybe_prune(p, r->store);
        return o ? srv_json(r, status, o) : srv_error(r, 500, "internal", "out of memory");
    }
    if (!enqueue(p, a, m)) {
        ZK_LOG(ZK_LOG_WARN, "webhook %s: queue full (%zu); answered 503 so the platform retries", a->name, p->cap);
        hook__undedup(r->store, a->name, m->event_id);
        hook_msg_free(m);
        hook_http_set(&http, 503, NULL, "busy, retry later");
    }
    return respond(r, &http);
}

/* ---- start and stop ---------------------------------------------------------------------- */

typedef zk_rc (*hook_ctor)(const zk_config *, hook_adapter **, char *);

zk_rc srv_hooks_start(srv_ctx *s, char *err)
{
    static const hook_ctor ctors[] = {hook_generic_new, hook_slack_new, hook_wecom_new, hook_dingtalk_new,
                                      hook_feishu_new};
    /* route patterns and metrics names must outlive srv_ctx's route table */
    static char routes[ZK_ARRAY_LEN(ctors)][64], names[ZK_ARRAY_LEN(ctors)][2][64];
    zk_rc rc = ZK_OK;
    s->nhooks = 0;
    s->hook_pool = NULL;
    for (size_t i = 0; i < ZK_ARRAY_LEN(ctors); i++) {
        hook_adapter *a = NULL;
        if ((rc = ctors[i](s->cfg, &a, err)) != ZK_OK) goto fail;
        if (!a) continue;
        if (s->nhooks == (int)ZK_ARRAY_LEN(s->hooks)) {
            a->free(a);
            continue;
        }
        s->hooks[s->nhooks++] = a;
    }
    if (!s->nhooks) return ZK_OK;

    struct hook_pool *p = zk_calloc(1, sizeof *p);
    if (!p) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto fail;
    }
    p->s = s;
    long workers = zk_config_int(s->cfg, "webhooks", "workers");
    long queue = zk_config_int(s->cfg, "webhooks", "queue");
    const char *unknown = zk_config_get(s->cfg, "webhooks", "unknown_sender");
    if (workers < 1 || workers > HOOK_MAX_WORKERS || queue < 1 || queue > 1000000 ||
        (strcmp(unknown, "refuse") && strcmp(unknown, "everyone"))) {
        zk_free(p);
        rc = zk_fail(err, ZK_CONFIG, "[webhooks] wants workers 1-%d, queue 1-1000000, unknown_sender refuse|everyone",
                     HOOK_MAX_WORKERS);
        goto fail;
    }
    p->everyone = !strcmp(unknown, "everyone");
    snprintf(p->portal_url, sizeof p->portal_url, "%s", zk_config_get(s->cfg, "webhooks", "portal_url"));
    size_t pl = strlen(p->portal_url);
    while (pl && p->portal_url[pl - 1] == '/') p->portal_url[--pl] = '\0';
    p->cap = (size_t)queue;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (!(p->ring = zk_calloc(p->cap, sizeof *p->ring)) || !(p->threads = zk_calloc((size_t)workers, sizeof *p->threads))) {
        zk_free(p->ring);
        zk_free(p);
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto fail;
    }
    s->hook_pool = p;
    for (long i = 0; i < workers; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
            rc = zk_fail(err, ZK_ERR, "cannot start webhook workers");
            goto fail;
        }
        p->nthreads++;
    }
    for (int i = 0; i < s->nhooks; i++) {
        snprintf(routes[i], sizeof routes[i], "/hooks/%s", s->hooks[i]->name);
        snprintf(names[i][0], sizeof names[i][0], "hook_%s_get", s->hooks[i]->name);
        snprintf(names[i][1], sizeof names[i][1], "hook_%s", s->hooks[i]->name);
        srv_route_add(s, "GET", routes[i], 0, h_hook, names[i][0]);
        srv_route_add(s, "POST", routes[i], 0, h_hook, names[i][1]);
        ZK_LOG(ZK_LOG_INFO, "webhook %s mounted at %s", s->hooks[i]->name, routes[i]);
    }
    return ZK_OK;
fail:
    srv_hooks_stop(s);
    return rc;
}

void srv_hooks_stop(srv_ctx *s)
{
    struct hook_pool *p = s->hook_pool;
    if (p) {
        pthread_mutex_lock(&p->mu);
        p->stopping = 1;
        p->drain_deadline = zk_now() + (double)zk_config_int(s->cfg, "server", "shutdown_grace_s");
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
        while (p->count) {   /* never started workers: free what is left */
            hook_msg_free(p->ring[p->head].m);
            p->head = (p->head + 1) % p->cap;
            p->count--;
        }
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        zk_free(p->ring);
        zk_free(p->threads);
        zk_free(p);
        s->hook_pool = NULL;
    }
    for (int i = 0; i < s->nhooks; i++) s->hooks[i]->free(s->hooks[i]);
    s->nhooks = 0;
}
