/* chat.c — chat-completion providers (see chat.h): one streaming POST per
 * attempt on a private curl multi handle, so deadlines (connect, first
 * token, total) and cancellation are checked every few milliseconds and an
 * abandoned request is aborted at once. The body is parsed incrementally as
 * SSE, Ollama NDJSON, or a whole JSON answer. Called once per question by
 * the answer pipeline (plus one short call to rewrite follow-ups). */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "llm/chat.h"

#define CHAT_MAX_PROVIDERS 8
#define CHAT_MAX_BODY ((size_t)8 << 20)   /* answer text + reasoning + error bodies */
#define CHAT_MAX_LINE ((size_t)1 << 20)   /* one SSE/NDJSON line */
#define CHAT_MSGLEN 300

typedef struct {
    char name[64];
    char *url;          /* full endpoint: .../chat/completions or .../api/chat */
    char *model;
    char *auth;         /* "Authorization: Bearer ..." or NULL; never logged */
    int remote;
    int native;         /* Ollama native /api/chat (NDJSON) */
    long connect_ms, first_token_ms, total_ms, max_tokens;
    double temperature;
} provider;

struct llm_providers {
    provider p[CHAT_MAX_PROVIDERS];
    size_t n;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- configuration ------------------------------------------------------------ */

static int is_loopback(const char *url)
{
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    return !strncmp(h, "127.", 4) || !strncmp(h, "localhost", 9) || !strncmp(h, "[::1]", 5);
}

static char *concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = zk_malloc(la + lb + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

static void provider_clear(provider *p)
{
    zk_free(p->url);
    zk_free(p->model);
    if (p->auth) {
        memset(p->auth, 0, strlen(p->auth));   /* do not leave the key in freed memory */
        zk_free(p->auth);
    }
    memset(p, 0, sizeof *p);
}

static zk_rc provider_load(const zk_config *cfg, const char *name, provider *p, char *err)
{
    char sec[96];
    snprintf(sec, sizeof sec, "llm.%s", name);
    snprintf(p->name, sizeof p->name, "%s", name);
    const char *base = zk_config_get(cfg, sec, "base_url");
    const char *model = zk_config_get(cfg, sec, "model");
    const char *key = zk_config_get(cfg, sec, "api_key");
    const char *remote = zk_config_get(cfg, sec, "remote");
    if (!base || !*base)
        return zk_fail(err, ZK_CONFIG, "[%s] base_url is required (provider '%s' is listed in [llm] providers)", sec, name);
    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
        return zk_fail(err, ZK_CONFIG, "[%s] base_url '%s' must start with http:// or https://", sec, base);
    if (key && strpbrk(key, "\r\n")) return zk_fail(err, ZK_CONFIG, "[%s] api_key contains a line break", sec);
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/') bl--;
    char *root = zk_strndup(base, bl);
    if (!root) return zk_fail(err, ZK_NOMEM, "out of memory");
    p->native = bl >= 4 && !strcmp(root + bl - 4, "/api");
    p->url = concat(root, p->native ? "/chat" : "/chat/completions");
    zk_free(root);
    p->model = zk_strdup(model ? model : "");
    if (key && *key) p->auth = concat("Authorization: Bearer ", key);
    if (!p->url || !p->model || (key && *key && !p->auth)) return zk_fail(err, ZK_NOMEM, "out of memory");
    if (!remote || !*remote || !strcasecmp(remote, "auto")) p->remote = !is_loopback(base);
    else p->remote = zk_config_bool(cfg, sec, "remote");
    p->connect_ms = zk_config_int(cfg, sec, "connect_timeout_ms");
    p->first_token_ms = zk_config_int(cfg, sec, "first_token_timeout_ms");
    p->total_ms = zk_config_int(cfg, sec, "timeout_ms");
    p->max_tokens = zk_config_int(cfg, sec, "max_tokens");
    p->temperature = zk_config_double(cfg, sec, "temperature");
    if (p->connect_ms <= 0) p->connect_ms = 3000;
    if (p->total_ms <= 0) p->total_ms = 120000;
    if (p->first_token_ms <= 0 || p->first_token_ms > p->total_ms) p->first_token_ms = p->total_ms;
    return ZK_OK;
}

zk_rc llm_providers_from_config(const zk_config *cfg, llm_providers **out, char *err)
{
    *out = NULL;
    const char *list = zk_config_get(cfg, "llm", "providers");
    if (!list || !*list) return ZK_OK;
    llm_providers *ps = zk_calloc(1, sizeof *ps);
    if (!ps) return zk_fail(err, ZK_NOMEM, "out of memory");
    zk_rc rc = ZK_OK;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        size_t l = strcspn(p, ", \t");
        if (!l) break;
        char name[64];
        if (l >= sizeof name) { rc = zk_fail(err, ZK_CONFIG, "[llm] providers: name too long"); goto out; }
        memcpy(name, p, l);
        name[l] = '\0';
        p += l;
        for (char *c = name; *c; c++)
            if (!(*c == '_' || *c == '-' || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z'))) {
                rc = zk_fail(err, ZK_CONFIG, "[llm] providers: bad name '%s' (letters, digits, - and _)", name);
                goto out;
            }
        if (ps->n == CHAT_MAX_PROVIDERS) { rc = zk_fail(err, ZK_CONFIG, "[llm] providers: at most %d", CHAT_MAX_PROVIDERS); goto out; }
        if ((rc = provider_load(cfg, name, &ps->p[ps->n++], err)) != ZK_OK) goto out;
    }
    if (ps->n == 0) { zk_free(ps); return ZK_OK; }
    *out = ps;
out:
    if (rc != ZK_OK) llm_providers_free(ps);
    return rc;
}

void llm_providers_free(llm_providers *ps)
{
    if (!ps) return;
    for (size_t i = 0; i < ps->n; i++) provider_clear(&ps->p[i]);
    zk_free(ps);
}

size_t llm_providers_count(const llm_providers *ps) { return ps ? ps->n : 0; }

int llm_providers_have_local(const llm_providers *ps)
{
    for (size_t i = 0; ps && i < ps->n; i++)
        if (!ps->p[i].remote) return 1;
    return 0;
}

void llm_chat_result_free(llm_chat_result *r)
{
    if (!r) return;
    zk_free(r->text);
    zk_free(r->reasoning);
    memset(r, 0, sizeof *r);
}

/* ---- one attempt ------------------------------------------------------------------ */

enum { FMT_UNKNOWN, FMT_SSE, FMT_NDJSON, FMT_JSON };
enum { TH_START, TH_IN, TH_OUT };   /* inline <think>…</think> at the start of content */

typedef struct {
    const provider *p;
    CURL *easy;
    long status;
    int fmt;
    zk_buf line;          /* partial line */
    zk_buf event;         /* SSE data lines of the current event */
    zk_buf raw;           /* whole body (JSON answers, error bodies) */
    zk_buf text, reasoning;
    zk_buf think;         /* content held while deciding about <think> */
    int think_state;
    int done;             /* [DONE], finish_reason or Ollama done:true seen */
    int got_text;         /* answer text delivered to the callback */
    int first;            /* any content/reasoning byte arrived (first-token deadline met) */
    int cancelled, failed;
    char why[ZK_ERRLEN];  /* protocol error detail */
    char model[128];
    long prompt_tokens, completion_tokens;
    llm_token_fn on_token;
    void *ctx;
} attempt;

static void fail_attempt(attempt *a, const char *fmt, const char *detail)
{
    if (a->failed) return;
    a->failed = 1;
    snprintf(a->why, sizeof a->why, fmt, detail);
}

/* Deliver answer text: to the result and the callback. */
static void emit(attempt *a, const char *s, size_t n)
{
    if (!n || a->cancelled || a->failed) return;
    if (buf_append(&a->text, s, n) != ZK_OK) { fail_attempt(a, "%s", "answer too long"); return; }
    a->got_text = 1;
    if (a->on_token && a->on_token(a->ctx, s, n)) a->cancelled = 1;
}

/* Content goes through the <think> splitter: a leading <think>…</think>
 * block (models served without a reasoning parser) is reasoning. */
static void content(attempt *a, const char *s, size_t n)
{
    static const char open[] = "<think>", close[] = "</think>";
    if (!n) return;
    a->first = 1;
    if (a->think_state == TH_OUT) { emit(a, s, n); return; }
    if (buf_append(&a->think, s, n) != ZK_OK) { fail_attempt(a, "%s", "answer too long"); return; }
    const char *t = buf_cstr(&a->think);
    size_t tl = a->think.len, lead = 0;
    while (lead < tl && (t[lead] == ' ' || t[lead] == '\n' || t[lead] == '\r' || t[lead] == '\t')) lead++;
    if (a->think_state == TH_START) {
        size_t rest = tl - lead;
        if (rest < sizeof open - 1 && !memcmp(t + lead, open, rest)) return;   /* may still become <think> */
        if (rest >= sizeof open - 1 && !memcmp(t + lead, open, sizeof open - 1)) {
            a->think_state = TH_IN;
        } else {
            a->think_state = TH_OUT;
            emit(a, t, tl);
            buf_reset(&a->think);
            return;
        }
    }
    /* TH_IN: wait for the closing tag */
    const char *c = strstr(t, close);
    if (!c) return;
    size_t body = (size_t)(t + lead + sizeof open - 1 - t);
    buf_append(&a->reasoning, t + body, (size_t)(c - t) - body);
    const char *after = c + sizeof close - 1;
    while (*after == '\n' || *after == '\r' || *after == ' ') after++;
    a->think_state = TH_OUT;
    zk_buf tmp = a->think;
    buf_init(&a->think, 1);
    emit(a, after, tl - (size_t)(after - tmp.data));
    buf_free(&tmp);
}

static void usage_from(attempt *a, json_t *u)
{
    if (!json_is_object(u)) return;
    json_t *pt = json_object_get(u, "prompt_tokens"), *ct = json_object_get(u, "completion_tokens");
    if (json_is_integer(pt)) a->prompt_tokens = (long)json_integer_value(pt);
    if (json_is_integer(ct)) a->completion_tokens = (long)json_integer_value(ct);
}

static void error_from(attempt *a, json_t *er)
{
    char msg[CHAT_MSGLEN + 1] = "";
    json_t *m = json_is_object(er) ? json_object_get(er, "message") : er;
    snprintf(msg, sizeof msg, "%s", json_is_string(m) ? json_string_value(m) : "error event");
    fail_attempt(a, "stream error: %s", msg);
}

/* One JSON object: a chat.completion(.chunk) or an Ollama native line. */
static void handle_object(attempt *a, json_t *o)
{
    if (!json_is_object(o)) { fail_attempt(a, "%s", "malformed event (not a JSON object)"); return; }
    json_t *er = json_object_get(o, "error");
    if (er && !json_is_null(er)) { error_from(a, er); return; }
    const char *model = json_string_value(json_object_get(o, "model"));
    if (model && !a->model[0]) snprintf(a->model, sizeof a->model, "%s", model);
    usage_from(a, json_object_get(o, "usage"));
    json_t *msg = json_object_get(o, "message");              /* Ollama native */
    json_t *choices = json_object_get(o, "choices");
    if (json_is_array(choices) && json_array_size(choices) > 0) {
        json_t *c0 = json_array_get(choices, 0);
        usage_from(a, json_object_get(c0, "usage"));           /* Moonshot */
        msg = json_object_get(c0, "delta");
        if (!json_is_object(msg)) msg = json_object_get(c0, "message");
        json_t *fr = json_object_get(c0, "finish_reason");
        if (json_is_string(fr) && *json_string_value(fr)) a->done = 1;
    }
    if (json_is_object(msg)) {
        const char *keys[] = {"reasoning_content", "reasoning", "thinking"};
        for (size_t i = 0; i < ZK_ARRAY_LEN(keys); i++) {
            json_t *r = json_object_get(msg, keys[i]);
            if (json_is_string(r) && json_string_length(r)) {
                a->first = 1;
                buf_append(&a->reasoning, json_string_value(r), json_string_length(r));
            }
        }
        json_t *c = json_object_get(msg, "content");
        if (json_is_string(c)) content(a, json_string_value(c), json_string_length(c));
    }
    if (json_is_true(json_object_get(o, "done"))) {            /* Ollama native final line */
        a->done = 1;
        json_t *pe = json_object_get(o, "prompt_eval_count"), *ev = json_object_get(o, "eval_count");
        if (json_is_integer(pe)) a->prompt_tokens = (long)json_integer_value(pe);
        if (json_is_integer(ev)) a->completion_tokens = (long)json_integer_value(ev);
    }
}

static void handle_json_text(attempt *a, const char *s, size_t n)
{
    json_error_t je;
    json_t *o = json_loadb(s, n, 0, &je);
    if (!o) { fail_attempt(a, "malformed JSON in the answer (%s)", je.text); return; }
    handle_object(a, o);
    json_decref(o);
}

static void dispatch_event(attempt *a)
{
    if (!a->event.len) return;
    const char *d = buf_cstr(&a->event);
    if (!strcmp(d, "[DONE]")) a->done = 1;
    else handle_json_text(a, d, a->event.len);
    buf_reset(&a->event);
}

/* One complete line (without its terminator). */
static void handle_line(attempt *a, const char *s, size_t n)
{
    if (a->fmt == FMT_NDJSON) {
        size_t i = 0;
        while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
        if (i < n) handle_json_text(a, s + i, n - i);
        return;
    }
    if (n == 0) { dispatch_event(a); return; }
    if (s[0] == ':') return;                                  /* comment / keep-alive */
    if (n >= 5 && !memcmp(s, "data:", 5)) {
        size_t off = 5 + (n > 5 && s[5] == ' ');
        if (a->event.len) buf_putc(&a->event, '\n');          /* multi-line data */
        if (buf_append(&a->event, s + off, n - off) != ZK_OK) fail_attempt(a, "%s", "event too large");
        return;
    }
    if (n >= 6 && !memcmp(s, "error:", 6)) {                  /* llama.cpp-style error line */
        size_t off = 6 + (n > 6 && s[6] == ' ');
        json_t *o = json_loadb(s + off, n - off, 0, NULL);
        json_t *er = json_is_object(o) && json_object_get(o, "error") ? json_object_get(o, "error") : o;
        if (er) error_from(a, er);
        else fail_attempt(a, "%s", "stream error");
        json_decref(o);
        return;
    }
    /* event:, id:, retry: and unknown fields are ignored */
}

static void feed(attempt *a, const char *p, size_t n)
{
    for (size_t i = 0; i < n && !a->failed && !a->cancelled; i++) {
        char ch = p[i];
        if (ch == '\n' || ch == '\r') {
            /* \r\n counts once: skip the \n after a \r */
            if (ch == '\n' && a->line.len == 0 && i > 0 && p[i - 1] == '\r') continue;
            handle_line(a, a->line.data ? a->line.data : "", a->line.len);
            buf_reset(&a->line);
            continue;
        }
        if (buf_putc(&a->line, ch) != ZK_OK) fail_attempt(a, "%s", "line too long");
    }
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    attempt *a = ud;
    size_t n = sz * nm;
    if (!a->status) curl_easy_getinfo(a->easy, CURLINFO_RESPONSE_CODE, &a->status);
    if (a->status < 200 || a->status >= 300) {
        if (buf_append(&a->raw, p, n) != ZK_OK) return 0;
        return n;
    }
    if (a->fmt == FMT_UNKNOWN) {
        char *ct = NULL;
        curl_easy_getinfo(a->easy, CURLINFO_CONTENT_TYPE, &ct);
        size_t i = 0;
        while (i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r')) i++;
        if (ct && strstr(ct, "event-stream")) a->fmt = FMT_SSE;
        else if (ct && strstr(ct, "ndjson")) a->fmt = FMT_NDJSON;
        else if (i < n && p[i] == '{') a->fmt = a->p->native ? FMT_NDJSON : FMT_JSON;
        else if (i < n) a->fmt = FMT_SSE;
        else return n;                                       /* leading blank lines only */
    }
    if (a->fmt == FMT_JSON) {
        if (buf_append(&a->raw, p, n) != ZK_OK) return 0;
        return n;
    }
    feed(a, p, n);
    if (a->cancelled) return 0;   /* abort the transfer now */
    return n;
}

static void body_message(const zk_buf *b, char *out, size_t cap)
{
    json_t *root = json_loadb(b->data ? b->data : "", b->len, 0, NULL), *m = NULL;
    out[0] = '\0';
    if (json_is_object(root)) {
        json_t *er = json_object_get(root, "error");
        if (json_is_object(er)) m = json_object_get(er, "message");
        else if (json_is_string(er)) m = er;
        if (!json_is_string(m)) m = json_object_get(root, "message");
    }
    if (json_is_string(m)) {
        snprintf(out, cap, "%s", json_string_value(m));
    } else {
        size_t k = 0;
        for (size_t i = 0; i < b->len && k + 1 < cap && k < CHAT_MSGLEN; i++)
            out[k++] = ((unsigned char)b->data[i] < 0x20) ? ' ' : b->data[i];
        out[k] = '\0';
        if (!out[0]) snprintf(out, cap, "(empty body)");
    }
    json_decref(root);
}

static char *request_body(const provider *p, const llm_message *msgs, size_t n)
{
    json_t *root = json_object(), *arr = json_array();
    if (!root || !arr) { json_decref(root); json_decref(arr); return NULL; }
    json_object_set_new(root, "model", json_string(p->model));
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_object();
        json_object_set_new(m, "role", json_string(msgs[i].role));
        json_t *c = json_string(msgs[i].content ? msgs[i].content : "");
        json_object_set_new(m, "content", c ? c : json_string(""));
        json_array_append_new(arr, m);
    }
    json_object_set_new(root, "messages", arr);
    json_object_set_new(root, "stream", json_true());
    if (p->native) {
        json_t *opt = json_object();
        json_object_set_new(opt, "temperature", json_real(p->temperature));
        if (p->max_tokens > 0) json_object_set_new(opt, "num_predict", json_integer(p->max_tokens));
        json_object_set_new(root, "options", opt);
    } else {
        json_t *so = json_object();
        json_object_set_new(so, "include_usage", json_true());
        json_object_set_new(root, "stream_options", so);
        json_object_set_new(root, "temperature", json_real(p->temperature));
        if (p->max_tokens > 0) json_object_set_new(root, "max_tokens", json_integer(p->max_tokens));
    }
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

enum { A_OK, A_NEXT, A_FATAL, A_CANCEL };

/* One request to one provider. A_NEXT: try the next provider (why in
 * a->why); A_FATAL: stop (tokens already streamed, or bad configuration). */
static int attempt_run(attempt *a, const char *req, char *err)
{
    const provider *p = a->p;
    int res = A_NEXT;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (hdrs) hdrs = curl_slist_append(hdrs, "Accept: text/event-stream, application/x-ndjson, application/json");
    if (hdrs) hdrs = curl_slist_append(hdrs, "Expect:");
    if (hdrs && p->auth) hdrs = curl_slist_append(hdrs, p->auth);
    CURLM *multi = curl_multi_init();
    CURL *h = curl_easy_init();
    if (!hdrs || !multi || !h) {
        zk_fail(err, ZK_NOMEM, "chat: out of memory");
        res = A_FATAL;
        goto out;
    }
    a->easy = h;
    curl_easy_setopt(h, CURLOPT_URL, p->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(req));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, p->connect_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, p->total_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "zhiku");
    if (curl_multi_add_handle(multi, h) != CURLM_OK) {
        zk_fail(err, ZK_IO, "chat: curl_multi_add_handle failed");
        res = A_FATAL;
        goto out;
    }
    double t0 = zk_now();
    CURLcode cres = CURLE_OK;
    int finished = 0, timed_first = 0;
    while (!finished) {
        int still = 0, nmsg = 0;
        if (curl_multi_perform(multi, &still) != CURLM_OK) { cres = CURLE_FAILED_INIT; break; }
        CURLMsg *m;
        while ((m = curl_multi_info_read(multi, &nmsg)))
            if (m->msg == CURLMSG_DONE) { cres = m->data.result; finished = 1; }
        if (finished || a->cancelled) break;
        if (!a->first && (zk_now() - t0) * 1000.0 > (double)p->first_token_ms) { timed_first = 1; break; }
        curl_multi_poll(multi, NULL, 0, 20, NULL);
    }
    if (!a->status) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
    curl_multi_remove_handle(multi, h);   /* aborts a transfer still running */

    if (a->cancelled) { res = A_CANCEL; goto out; }
    if (timed_first) {
        snprintf(a->why, sizeof a->why, "no answer within %ld ms (first-token timeout)", p->first_token_ms);
        goto out;
    }
    if (a->status && (a->status < 200 || a->status >= 300)) {
        char msg[CHAT_MSGLEN + 1];
        body_message(&a->raw, msg, sizeof msg);
        if (a->status == 401 || a->status == 403)
            snprintf(a->why, sizeof a->why, "the provider refused the API key (HTTP %ld): %s; check [llm.%s] api_key",
                     a->status, msg, p->name);
        else if (a->status == 404)
            snprintf(a->why, sizeof a->why, "model '%s' or URL %s not found (HTTP 404): %s", p->model, p->url, msg);
        else
            snprintf(a->why, sizeof a->why, "HTTP %ld: %s", a->status, msg);
        goto out;
    }
    if (a->failed) { res = a->got_text ? A_FATAL : A_NEXT; goto out; }
    if (cres != CURLE_OK && !(cres == CURLE_PARTIAL_FILE && a->done)) {
        if (cres == CURLE_URL_MALFORMAT || cres == CURLE_UNSUPPORTED_PROTOCOL) {
            snprintf(a->why, sizeof a->why, "[llm.%s] base_url: %s", p->name, curl_easy_strerror(cres));
        } else if (cres == CURLE_OPERATION_TIMEDOUT) {
            snprintf(a->why, sizeof a->why, "%s", a->status ? "answer not complete within timeout_ms" : "connection timed out");
        } else {
            snprintf(a->why, sizeof a->why, "%s", curl_easy_strerror(cres));
        }
        res = a->got_text ? A_FATAL : A_NEXT;
        goto out;
    }
    if (a->fmt == FMT_JSON) {
        handle_json_text(a, a->raw.data ? a->raw.data : "", a->raw.len);
        if (!a->failed && !a->done && !a->text.len && !a->think.len) fail_attempt(a, "%s", "answer has no choices");
    } else {
        if (a->line.len) { handle_line(a, a->line.data, a->line.len); buf_reset(&a->line); }
        if (a->fmt == FMT_SSE) dispatch_event(a);
        if (!a->done && !a->failed) fail_attempt(a, "%s", "the stream ended before the answer was complete");
    }
    if (!a->failed && a->think.len) {   /* <think> never closed, or a lone prefix: it was answer text */
        const char *t = a->think.data;
        size_t tl = a->think.len, skip = 0;
        if (a->think_state == TH_IN) {
            const char *o = strstr(t, "<think>");
            skip = o ? (size_t)(o - t) + 7 : 0;
        }
        a->think_state = TH_OUT;
        emit(a, t + skip, tl - skip);
        if (a->cancelled) { res = A_CANCEL; goto out; }
    }
    if (a->failed) { res = a->got_text ? A_FATAL : A_NEXT; goto out; }
    res = A_OK;
out:
    if (h) curl_easy_cleanup(h);
    a->easy = NULL;
    if (multi) curl_multi_cleanup(multi);
    curl_slist_free_all(hdrs);
    return res;
}

zk_rc llm_chat(const llm_providers *ps, const llm_message *msgs, size_t n, int local_only,
               llm_token_fn on_token, void *ctx, llm_chat_result *out, char *err)
{
    memset(out, 0, sizeof *out);
    if (!ps || ps->n == 0) return zk_fail(err, ZK_CONFIG, "no chat provider configured ([llm] providers)");
    pthread_once(&curl_once, curl_init_once);
    zk_buf why;
    buf_init(&why, 4096);
    zk_rc rc = ZK_IO;
    int tried = 0;
    for (size_t i = 0; i < ps->n; i++) {
        const provider *p = &ps->p[i];
        if (local_only && p->remote) continue;
        tried++;
        char *req = request_body(p, msgs, n);
        if (!req) { rc = zk_fail(err, ZK_NOMEM, "chat: out of memory"); goto out; }
        attempt a;
        memset(&a, 0, sizeof a);
        a.p = p;
        a.on_token = on_token;
        a.ctx = ctx;
        buf_init(&a.line, CHAT_MAX_LINE);
        buf_init(&a.event, CHAT_MAX_LINE);
        buf_init(&a.raw, CHAT_MAX_BODY);
        buf_init(&a.text, CHAT_MAX_BODY);
        buf_init(&a.reasoning, CHAT_MAX_BODY);
        buf_init(&a.think, CHAT_MAX_BODY);
        double t0 = zk_now();
        int r = attempt_run(&a, req, err);
        free(req);
        if (r == A_OK) {
            out->text = buf_steal(&a.text, NULL);
            if (!out->text) out->text = zk_strdup("");
            out->reasoning = a.reasoning.len ? buf_steal(&a.reasoning, NULL) : NULL;
            snprintf(out->provider, sizeof out->provider, "%s", p->name);
            snprintf(out->model, sizeof out->model, "%s", a.model[0] ? a.model : p->model);
            out->prompt_tokens = a.prompt_tokens;
            out->completion_tokens = a.completion_tokens;
            out->total_ms = (zk_now() - t0) * 1000.0;
            rc = out->text ? ZK_OK : zk_fail(err, ZK_NOMEM, "chat: out of memory");
        } else if (r == A_CANCEL) {
            rc = zk_fail(err, ZK_ERR, "chat: cancelled by the caller");
        } else if (r == A_FATAL) {
            if (a.why[0]) rc = zk_fail(err, ZK_IO, "chat provider %s failed mid-answer: %s", p->name, a.why);
            else rc = ZK_NOMEM;
        } else {
            ZK_LOG(ZK_LOG_INFO, "chat provider %s failed (%s); trying the next", p->name, a.why);
            buf_printf(&why, "%s%s: %s", why.len ? "; " : "", p->name, a.why);
            if (a.status == 401 || a.status == 403) rc = ZK_CONFIG;
        }
        buf_free(&a.line);
        buf_free(&a.event);
        buf_free(&a.raw);
        buf_free(&a.text);
        buf_free(&a.reasoning);
        buf_free(&a.think);
        if (r != A_NEXT) goto out;
    }
    if (!tried) rc = zk_fail(err, ZK_CONFIG, "no local chat provider (the knowledge base is local_only)");
    else rc = zk_fail(err, rc == ZK_CONFIG ? ZK_CONFIG : ZK_IO, "every chat provider failed: %s", buf_cstr(&why));
out:
    buf_free(&why);
    if (rc != ZK_OK) llm_chat_result_free(out);
    return rc;
}
