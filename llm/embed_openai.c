/* embed_openai.c — the remote embedder for OpenAI-compatible servers: POST
 * {base_url}/embeddings in batches, several in flight on one curl multi
 * handle per llm_embed() call (so concurrent calls share nothing mutable).
 * The indexer sends every chunk through it (thousands of texts, batches of
 * ~32); retrieval sends one query at a time. Retries 429/5xx/timeouts/drops
 * with exponential backoff + jitter, honouring Retry-After. */
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "llm/embed_int.h"

#define OA_MAX_DIM 65536
#define OA_MAX_BATCH 2048          /* OpenAI's per-request input cap */
#define OA_MAX_CONCURRENCY 64
#define OA_MSGLEN 300              /* server messages quoted in errors */

typedef struct {
    llm_embedder base;
    char *model_id;      /* "openai:<model>", the recorded model */
    char *model;
    char *url;           /* base_url + "/embeddings" */
    char *auth;          /* "Authorization: Bearer ..." or NULL; never logged */
    int batch_size, concurrency, max_retries;
    long timeout_ms, backoff_ms, retry_cap_ms;
} oa_embedder;

enum { JOB_WAITING, JOB_RUNNING, JOB_DONE };
enum { R_OK, R_RETRY, R_FATAL };

/* One batch: texts idx[first .. first+count) of the call. */
typedef struct {
    size_t first, count;
    int state;
    int tries;               /* requests sent so far */
    double not_before;       /* zk_now() before which it is not resent */
    double retry_after;      /* seconds announced by the server, < 0 = none */
    int toobig;              /* response exceeded the cap */
    CURL *easy;
    struct curl_slist *hdrs;
    char *req;               /* request body (JSON) */
    zk_buf body;             /* response body */
    char last[ZK_ERRLEN];    /* why the last try failed */
} job;

typedef struct {
    oa_embedder *e;
    size_t n;
    const size_t *idx;       /* positions of the non-empty texts */
    const char *const *texts;
    const size_t *lens;
    float *out;
    unsigned seed;           /* jitter, per call */
    zk_rc fatal;             /* code of a non-retryable failure */
} call;

/* Record a non-retryable failure (err already formatted by zk_fail). */
static int fatal(call *c, zk_rc rc)
{
    c->fatal = rc;
    return R_FATAL;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- small helpers --------------------------------------------------------- */

/* The human part of an error body, whatever the envelope: OpenAI/llama.cpp/
 * vLLM {"error":{"message"}}, Ollama {"error":"..."}, TEI/old vLLM flat
 * {"message"}; else the first bytes of the text with control chars blanked. */
static void body_message(const char *body, size_t len, char *out, size_t cap)
{
    json_t *root = json_loadb(body, len, 0, NULL), *m = NULL;
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
        for (size_t i = 0; i < len && k + 1 < cap && k < OA_MSGLEN; i++)
            out[k++] = ((unsigned char)body[i] < 0x20) ? ' ' : body[i];
        out[k] = '\0';
        while (k > 0 && out[k - 1] == ' ') out[--k] = '\0';
        if (!out[0]) snprintf(out, cap, "(empty body)");
    }
    json_decref(root);
}

/* 1 when a 429 means "out of credit" (OpenAI insufficient_quota, Zhipu
 * 1113): retrying cannot help. */
static int is_quota_error(const char *body, size_t len)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    int q = 0;
    json_t *er = json_is_object(root) ? json_object_get(root, "error") : NULL;
    if (json_is_object(er)) {
        const char *code = json_string_value(json_object_get(er, "code"));
        const char *type = json_string_value(json_object_get(er, "type"));
        q = (code && (!strcmp(code, "insufficient_quota") || !strcmp(code, "1113"))) ||
            (type && !strcmp(type, "insufficient_quota"));
    }
    json_decref(root);
    return q;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    job *j = ud;
    if (buf_append(&j->body, p, sz * nm) != ZK_OK) {
        j->toobig = 1;
        return 0;
    }
    return sz * nm;
}

/* Retry-After: seconds (fractions allowed) or an HTTP date; retry-after-ms. */
static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    job *j = ud;
    size_t n = sz * nm;
    char line[256];
    if (n >= sizeof line) return n;
    memcpy(line, p, n);
    line[n] = '\0';
    char *colon = strchr(line, ':');
    if (!colon) return n;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    v[strcspn(v, "\r\n")] = '\0';
    if (!strcasecmp(line, "retry-after-ms")) {
        char *end;
        double ms = strtod(v, &end);
        if (end != v && ms >= 0) j->retry_after = ms / 1000.0;
    } else if (!strcasecmp(line, "retry-after") && j->retry_after < 0) {
        char *end;
        double s = strtod(v, &end);
        if (end != v && *end == '\0' && s >= 0) {
            j->retry_after = s;
        } else {
            time_t t = curl_getdate(v, NULL);
            if (t != -1) j->retry_after = t > time(NULL) ? (double)(t - time(NULL)) : 0;
        }
    }
    return n;
}

/* ---- request --------------------------------------------------------------- */

static zk_rc build_request(const call *c, job *j, char *err)
{
    json_t *root = json_object(), *in = json_array();
    if (!root || !in) {
        json_decref(root);
        json_decref(in);
        return zk_fail(err, ZK_NOMEM, "embedding request: out of memory");
    }
    json_object_set_new(root, "model", json_string(c->e->model));
    json_object_set_new(root, "input", in);
    json_object_set_new(root, "encoding_format", json_string("float"));
    for (size_t i = 0; i < j->count; i++) {
        size_t t = c->idx[j->first + i];
        size_t len = c->lens ? c->lens[t] : strlen(c->texts[t]);
        json_t *s = json_stringn(c->texts[t], len);
        if (!s) {
            json_decref(root);
            return zk_fail(err, ZK_INVALID, "embedding request: text %zu is not valid UTF-8", t);
        }
        json_array_append_new(in, s);
    }
    j->req = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return j->req ? ZK_OK : zk_fail(err, ZK_NOMEM, "embedding request: out of memory");
}

static zk_rc start_job(call *c, CURLM *multi, job *j, char *err)
{
    oa_embedder *e = c->e;
    zk_rc rc;
    if (!j->req && (rc = build_request(c, j, err)) != ZK_OK) return rc;
    buf_free(&j->body);
    buf_init(&j->body, ((size_t)1 << 20) + j->count * (size_t)e->base.dim * 48);
    j->retry_after = -1;
    j->toobig = 0;
    if (!j->hdrs) {
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        if (h) h = curl_slist_append(h, "Expect:");
        if (h && e->auth) h = curl_slist_append(h, e->auth);
        if (!h) return zk_fail(err, ZK_NOMEM, "embedding request: out of memory");
        j->hdrs = h;
    }
    if (!(j->easy = curl_easy_init())) return zk_fail(err, ZK_NOMEM, "embedding request: curl_easy_init failed");
    CURL *h = j->easy;
    curl_easy_setopt(h, CURLOPT_URL, e->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, j->hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, j->req);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(j->req));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, e->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ZK_MIN(e->timeout_ms, 10000L));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "zhiku");
    curl_easy_setopt(h, CURLOPT_PRIVATE, j);
    if (curl_multi_add_handle(multi, h) != CURLM_OK) {
        curl_easy_cleanup(h);
        j->easy = NULL;
        return zk_fail(err, ZK_IO, "embedding request: curl_multi_add_handle failed");
    }
    j->tries++;
    j->state = JOB_RUNNING;
    return ZK_OK;
}

static void stop_job(CURLM *multi, job *j)
{
    if (j->easy) {
        curl_multi_remove_handle(multi, j->easy);
        curl_easy_cleanup(j->easy);
        j->easy = NULL;
    }
}

/* ---- response ---------------------------------------------------------------- */

static void normalise(float *v, int dim)
{
    double s = 0;
    for (int i = 0; i < dim; i++) s += (double)v[i] * v[i];
    if (s <= 0) return;
    float inv = (float)(1.0 / sqrt(s));
    for (int i = 0; i < dim; i++) v[i] *= inv;
}

/* Parse a 2xx body into the output rows. R_RETRY for a malformed answer
 * (j->last says why), R_FATAL for a dimension mismatch (err set). */
static int parse_body(call *c, job *j, char *err)
{
    oa_embedder *e = c->e;
    int dim = e->base.dim, res = R_RETRY;
    json_error_t jerr;
    unsigned char *seen = NULL;
    json_t *root = json_loadb(j->body.data ? j->body.data : "", j->body.len, 0, &jerr), *items = NULL;
    if (!root) {
        snprintf(j->last, sizeof j->last, "malformed JSON in the response (%s)", jerr.text);
        goto out;
    }
    if (json_is_array(root)) items = root;                              /* TEI /embed */
    else if (json_is_object(root)) {
        items = json_object_get(root, "data");
        if (!items) items = json_object_get(root, "embeddings");       /* Ollama /api/embed */
    }
    if (!json_is_array(items)) {
        char msg[OA_MSGLEN + 1];
        body_message(j->body.data, j->body.len, msg, sizeof msg);
        snprintf(j->last, sizeof j->last, "response has no \"data\" array: %s", msg);
        goto out;
    }
    if (json_array_size(items) != j->count) {
        snprintf(j->last, sizeof j->last, "response has %zu embeddings for %zu inputs",
                 json_array_size(items), j->count);
        goto out;
    }
    if (!(seen = zk_calloc(j->count ? j->count : 1, 1))) {
        res = fatal(c, zk_fail(err, ZK_NOMEM, "embedding response: out of memory"));
        goto out;
    }
    for (size_t k = 0; k < j->count; k++) {
        json_t *it = json_array_get(items, k), *vec = it;
        size_t pos = k;
        if (json_is_object(it)) {
            vec = json_object_get(it, "embedding");
            json_t *ix = json_object_get(it, "index");
            if (ix) {
                if (!json_is_integer(ix) || json_integer_value(ix) < 0 ||
                    (size_t)json_integer_value(ix) >= j->count) {
                    snprintf(j->last, sizeof j->last, "response item %zu has a bad \"index\"", k);
                    goto out;
                }
                pos = (size_t)json_integer_value(ix);
            }
        }
        if (seen[pos]) {
            snprintf(j->last, sizeof j->last, "response repeats index %zu", pos);
            goto out;
        }
        seen[pos] = 1;
        if (!json_is_array(vec)) {
            snprintf(j->last, sizeof j->last, "response item %zu has no \"embedding\" array", k);
            goto out;
        }
        size_t got = json_array_size(vec);
        if (got != (size_t)dim) {
            if (k > 0) {
                snprintf(j->last, sizeof j->last, "response vectors have different dimensions");
                goto out;
            }
            res = fatal(c, zk_fail(err, ZK_CONFIG,
                    "embedding model %s returns vectors of dimension %zu but [embedding] "
                    "dimensions = %d; set dimensions = %zu (a knowledge base built with another "
                    "dimension then needs `zhiku reindex`)", e->model, got, dim, got));
            goto out;
        }
        float *row = c->out + c->idx[j->first + pos] * (size_t)dim;
        for (size_t d = 0; d < got; d++) {
            json_t *x = json_array_get(vec, d);
            double v = json_number_value(x);
            if (!json_is_number(x) || !isfinite(v) || !isfinite((float)v)) {
                snprintf(j->last, sizeof j->last, "response item %zu has a non-finite or non-numeric value", k);
                goto out;
            }
            row[d] = (float)v;
        }
        normalise(row, dim);
    }
    res = R_OK;
out:
    zk_free(seen);
    json_decref(root);
    return res;
}

/* Classify a finished transfer. */
static int finish_job(call *c, job *j, CURLcode cres, char *err)
{
    oa_embedder *e = c->e;
    long status = 0;
    char msg[OA_MSGLEN + 1];
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
    if (j->toobig)
        return fatal(c, zk_fail(err, ZK_TOOBIG, "embedding server %s: response larger than %zu bytes",
                                e->url, j->body.max));
    if (cres != CURLE_OK) {
        if (cres == CURLE_URL_MALFORMAT || cres == CURLE_UNSUPPORTED_PROTOCOL)
            return fatal(c, zk_fail(err, ZK_CONFIG, "[embedding] base_url: %s", curl_easy_strerror(cres)));
        if (cres == CURLE_OPERATION_TIMEDOUT)
            snprintf(j->last, sizeof j->last, "no answer within %ld ms", e->timeout_ms);
        else
            snprintf(j->last, sizeof j->last, "%s", curl_easy_strerror(cres));
        return R_RETRY;
    }
    if (status >= 200 && status < 300) return parse_body(c, j, err);
    body_message(j->body.data ? j->body.data : "", j->body.len, msg, sizeof msg);
    if (status == 429 && is_quota_error(j->body.data ? j->body.data : "", j->body.len))
        return fatal(c, zk_fail(err, ZK_IO, "embedding server %s: quota exhausted (HTTP 429): %s", e->url, msg));
    if (status == 429 || status == 408 || status >= 500) {
        snprintf(j->last, sizeof j->last, "HTTP %ld: %s", status, msg);
        return R_RETRY;
    }
    if (status == 401 || status == 403)
        return fatal(c, zk_fail(err, ZK_CONFIG, "embedding server refused the API key (HTTP %ld): %s", status, msg));
    if (status == 404)
        return fatal(c, zk_fail(err, ZK_CONFIG, "embedding model '%s' or URL %s not found (HTTP 404): %s",
                                e->model, e->url, msg));
    return fatal(c, zk_fail(err, ZK_INVALID, "embedding server rejected the request (HTTP %ld): %s", status, msg));
}

/* Delay before the next try: Retry-After when given, else backoff * 2^k,
 * both capped; jittered to [50%, 100%] so parallel callers spread out. */
static double retry_delay(call *c, const job *j)
{
    oa_embedder *e = c->e;
    double cap = (double)e->retry_cap_ms / 1000.0;
    if (j->retry_after >= 0) return j->retry_after < cap ? j->retry_after : cap;
    double d = (double)e->backoff_ms / 1000.0;
    for (int k = 1; k < j->tries && d < cap; k++) d *= 2;
    if (d > cap) d = cap;
    return d * (0.5 + 0.5 * ((double)rand_r(&c->seed) / RAND_MAX));
}

/* ---- the embed call -------------------------------------------------------------- */

static zk_rc oa_embed(llm_embedder *base, size_t n, const char *const *texts, const size_t *lens,
                      float *out, char *err)
{
    oa_embedder *e = (oa_embedder *)base;
    zk_rc rc = ZK_OK;
    size_t *idx = NULL, nidx = 0, njobs = 0, ndone = 0;
    job *jobs = NULL;
    CURLM *multi = NULL;
    call c = {.e = e, .n = n, .texts = texts, .lens = lens, .out = out};
    c.seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&c;

    memset(out, 0, n * (size_t)base->dim * sizeof *out);
    if (!(idx = zk_malloc(n * sizeof *idx))) { rc = zk_fail(err, ZK_NOMEM, "embed: out of memory"); goto out; }
    for (size_t i = 0; i < n; i++) {
        if (!texts[i]) { rc = zk_fail(err, ZK_INVALID, "embed: text %zu is NULL", i); goto out; }
        if ((lens ? lens[i] : strlen(texts[i])) > 0) idx[nidx++] = i;   /* empty → zero vector */
    }
    if (nidx == 0) goto out;
    njobs = (nidx + (size_t)e->batch_size - 1) / (size_t)e->batch_size;
    if (!(jobs = zk_calloc(njobs, sizeof *jobs))) { rc = zk_fail(err, ZK_NOMEM, "embed: out of memory"); goto out; }
    for (size_t k = 0; k < njobs; k++) {
        jobs[k].first = k * (size_t)e->batch_size;
        jobs[k].count = ZK_MIN((size_t)e->batch_size, nidx - jobs[k].first);
        buf_init(&jobs[k].body, 1);
    }
    c.idx = idx;
    if (!(multi = curl_multi_init())) { rc = zk_fail(err, ZK_IO, "embed: curl_multi_init failed"); goto out; }

    size_t next = 0;   /* jobs before this one have been started at least once */
    while (ndone < njobs) {
        double now = zk_now(), wake = now + 0.1;
        int running = 0;
        for (size_t k = 0; k < njobs; k++) running += jobs[k].state == JOB_RUNNING;
        /* retries first (they are older), then new batches in order */
        for (size_t k = 0; k < njobs && running < e->concurrency; k++) {
            job *j = &jobs[k];
            if (j->state != JOB_WAITING || j->tries == 0) continue;
            if (j->not_before > now) { if (j->not_before < wake) wake = j->not_before; continue; }
            if ((rc = start_job(&c, multi, j, err)) != ZK_OK) goto out;
            running++;
        }
        while (next < njobs && running < e->concurrency) {
            if ((rc = start_job(&c, multi, &jobs[next++], err)) != ZK_OK) goto out;
            running++;
        }
        int still = 0, nmsg = 0;
        if (curl_multi_perform(multi, &still) != CURLM_OK) { rc = zk_fail(err, ZK_IO, "embed: curl_multi_perform failed"); goto out; }
        CURLMsg *m;
        while ((m = curl_multi_info_read(multi, &nmsg))) {
            if (m->msg != CURLMSG_DONE) continue;
            job *j = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            int r = finish_job(&c, j, m->data.result, err);
            stop_job(multi, j);
            if (r == R_FATAL) { rc = c.fatal; goto out; }
            if (r == R_OK) {
                j->state = JOB_DONE;
                ndone++;
                free(j->req);
                j->req = NULL;
                buf_free(&j->body);
                continue;
            }
            if (j->tries > e->max_retries) {
                rc = zk_fail(err, ZK_IO, "embedding server %s failed after %d attempts: %s", e->url,
                             j->tries, j->last);
                goto out;
            }
            double d = retry_delay(&c, j);
            ZK_LOG(ZK_LOG_INFO, "embedding request failed (%s); retry %d/%d in %.2f s", j->last, j->tries,
                   e->max_retries, d);
            j->state = JOB_WAITING;
            j->not_before = zk_now() + d;
            if (j->not_before < wake) wake = j->not_before;
        }
        if (ndone == njobs) break;
        int ms = (int)((wake - zk_now()) * 1000.0);
        if (ms < 1) ms = 1;
        if (ms > 100) ms = 100;
        curl_multi_poll(multi, NULL, 0, ms, NULL);
    }
out:
    if (rc != ZK_OK) memset(out, 0, n * (size_t)base->dim * sizeof *out);
    for (size_t k = 0; k < njobs; k++) {
        stop_job(multi, &jobs[k]);
        curl_slist_free_all(jobs[k].hdrs);
        free(jobs[k].req);
        buf_free(&jobs[k].body);
    }
    if (multi) curl_multi_cleanup(multi);
    zk_free(jobs);
    zk_free(idx);
    return rc;
}

/* ---- construction -------------------------------------------------------------- */

static void oa_destroy(llm_embedder *base)
{
    oa_embedder *e = (oa_embedder *)base;
    zk_free(e->model_id);
    zk_free(e->model);
    zk_free(e->url);
    if (e->auth) {
        memset(e->auth, 0, strlen(e->auth));   /* do not leave the key in freed memory */
        zk_free(e->auth);
    }
    zk_free(e);
}

static char *concat(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = zk_malloc(la + lb + lc + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

zk_rc llm_embedder_openai_new(const llm_openai_opts *o, llm_embedder **out, char *err)
{
    if (!o || !out) return zk_fail(err, ZK_INVALID, "embedder: NULL argument");
    *out = NULL;
    if (!o->base_url || !*o->base_url)
        return zk_fail(err, ZK_CONFIG, "[embedding] base_url is required for provider openai (e.g. http://127.0.0.1:11434/v1)");
    if (strncmp(o->base_url, "http://", 7) != 0 && strncmp(o->base_url, "https://", 8) != 0)
        return zk_fail(err, ZK_CONFIG, "[embedding] base_url '%s' must start with http:// or https://", o->base_url);
    if (!o->model || !*o->model)
        return zk_fail(err, ZK_CONFIG, "[embedding] model is required for provider openai");
    if (o->dim < 1 || o->dim > OA_MAX_DIM)
        return zk_fail(err, ZK_CONFIG, "[embedding] dimensions = %d not in [1, %d]", o->dim, OA_MAX_DIM);
    if (o->api_key && strpbrk(o->api_key, "\r\n"))
        return zk_fail(err, ZK_CONFIG, "[embedding] api_key contains a line break");
    pthread_once(&curl_once, curl_init_once);

    oa_embedder *e = zk_calloc(1, sizeof *e);
    if (!e) return zk_fail(err, ZK_NOMEM, "embedder: out of memory");
    size_t bl = strlen(o->base_url);
    while (bl > 0 && o->base_url[bl - 1] == '/') bl--;
    char *base = zk_strndup(o->base_url, bl);
    e->url = base ? concat(base, "/embeddings", "") : NULL;
    zk_free(base);
    e->model = zk_strdup(o->model);
    e->model_id = concat("openai:", o->model, "");
    if (o->api_key && *o->api_key) e->auth = concat("Authorization: Bearer ", o->api_key, "");
    if (!e->url || !e->model || !e->model_id || (o->api_key && *o->api_key && !e->auth)) {
        oa_destroy(&e->base);
        return zk_fail(err, ZK_NOMEM, "embedder: out of memory");
    }
    e->batch_size = o->batch_size > 0 ? ZK_MIN(o->batch_size, OA_MAX_BATCH) : 32;
    e->concurrency = o->concurrency > 0 ? ZK_MIN(o->concurrency, OA_MAX_CONCURRENCY) : 2;
    e->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
    e->max_retries = o->max_retries >= 0 ? o->max_retries : 5;
    e->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 500;
    e->retry_cap_ms = o->retry_cap_ms > 0 ? o->retry_cap_ms : 60000;
    e->base.model = e->model_id;
    e->base.dim = o->dim;
    e->base.embed = oa_embed;
    e->base.destroy = oa_destroy;
    *out = &e->base;
    return ZK_OK;
}
