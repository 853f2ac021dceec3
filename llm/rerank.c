/* rerank.c — the rerank client (see rerank.h): one blocking POST with a
 * short timeout per question, on its own curl handle. */
#include "llm/rerank.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define RERANK_MAX_BODY ((size_t)4 << 20)

struct llm_reranker {
    char *url, *model, *auth;
    long timeout_ms;
    int top_n;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

void llm_reranker_free(llm_reranker *r)
{
    if (!r) return;
    zk_free(r->url);
    zk_free(r->model);
    if (r->auth) {
        memset(r->auth, 0, strlen(r->auth));
        zk_free(r->auth);
    }
    zk_free(r);
}

zk_rc llm_reranker_new(const char *base_url, const char *model, const char *api_key, long timeout_ms,
                       int top_n, llm_reranker **out, char *err)
{
    *out = NULL;
    if (!base_url || (strncmp(base_url, "http://", 7) && strncmp(base_url, "https://", 8)))
        return zk_fail(err, ZK_CONFIG, "[rerank] base_url must start with http:// or https://");
    if (api_key && strpbrk(api_key, "\r\n")) return zk_fail(err, ZK_CONFIG, "[rerank] api_key contains a line break");
    llm_reranker *r = zk_calloc(1, sizeof *r);
    if (!r) return zk_fail(err, ZK_NOMEM, "out of memory");
    size_t bl = strlen(base_url);
    while (bl > 0 && base_url[bl - 1] == '/') bl--;
    zk_buf b;
    buf_init(&b, 8192);
    buf_append(&b, base_url, bl);
    buf_puts(&b, "/rerank");
    r->url = buf_steal(&b, NULL);
    r->model = zk_strdup(model ? model : "");
    if (api_key && *api_key) {
        buf_init(&b, 8192);
        buf_printf(&b, "Authorization: Bearer %s", api_key);
        r->auth = buf_steal(&b, NULL);
    }
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
    r->top_n = top_n > 0 ? top_n : 20;
    if (!r->url || !r->model || (api_key && *api_key && !r->auth)) {
        llm_reranker_free(r);
        return zk_fail(err, ZK_NOMEM, "out of memory");
    }
    *out = r;
    return ZK_OK;
}

zk_rc llm_reranker_from_config(const zk_config *cfg, llm_reranker **out, char *err)
{
    *out = NULL;
    const char *base = zk_config_get(cfg, "rerank", "base_url");
    if (!base || !*base) return ZK_OK;
    return llm_reranker_new(base, zk_config_get(cfg, "rerank", "model"), zk_config_get(cfg, "rerank", "api_key"),
                            zk_config_int(cfg, "rerank", "timeout_ms"), (int)zk_config_int(cfg, "rerank", "top_n"),
                            out, err);
}

int llm_reranker_candidates(const llm_reranker *r) { return r ? r->top_n : 0; }

static size_t collect(char *p, size_t sz, size_t nm, void *ud)
{
    return buf_append(ud, p, sz * nm) == ZK_OK ? sz * nm : 0;
}

typedef struct {
    size_t idx;
    double score;
} scored;

static int cmp_scored(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

zk_rc llm_rerank(const llm_reranker *r, const char *query, const char *const *docs, size_t n, size_t *order,
                 size_t *out_n, char *err)
{
    zk_rc rc = ZK_OK;
    zk_buf body;
    char *req = NULL;
    json_t *root = NULL;
    scored *sc = NULL;
    unsigned char *seen = NULL;
    struct curl_slist *hdrs = NULL;
    CURL *h = NULL;
    *out_n = 0;
    buf_init(&body, RERANK_MAX_BODY);
    if (n == 0) return ZK_OK;
    pthread_once(&curl_once, curl_init_once);

    json_t *q = json_object(), *arr = json_array();
    json_object_set_new(q, "model", json_string(r->model));
    json_object_set_new(q, "query", json_string(query));
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_string(docs[i] ? docs[i] : "");
        json_array_append_new(arr, d ? d : json_string(""));
    }
    json_object_set_new(q, "documents", arr);
    json_object_set_new(q, "top_n", json_integer((json_int_t)n));
    req = json_dumps(q, JSON_COMPACT);
    json_decref(q);
    hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (hdrs) hdrs = curl_slist_append(hdrs, "Expect:");
    if (hdrs && r->auth) hdrs = curl_slist_append(hdrs, r->auth);
    if (!req || !hdrs || !(h = curl_easy_init())) { rc = zk_fail(err, ZK_NOMEM, "rerank: out of memory"); goto out; }
    curl_easy_setopt(h, CURLOPT_URL, r->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "zhiku");
    CURLcode cres = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (cres != CURLE_OK) { rc = zk_fail(err, ZK_IO, "rerank %s: %s", r->url, curl_easy_strerror(cres)); goto out; }
    if (status < 200 || status >= 300) { rc = zk_fail(err, ZK_IO, "rerank %s: HTTP %ld", r->url, status); goto out; }
    root = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
    json_t *items = json_is_array(root) ? root : json_object_get(root, "results");
    if (!json_is_array(items)) { rc = zk_fail(err, ZK_PARSE, "rerank: response has no results"); goto out; }
    sc = zk_calloc(json_array_size(items) + 1, sizeof *sc);
    seen = zk_calloc(n, 1);
    if (!sc || !seen) { rc = zk_fail(err, ZK_NOMEM, "rerank: out of memory"); goto out; }
    size_t ns = 0;
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *it = json_array_get(items, i), *ix = json_object_get(it, "index");
        json_t *s = json_object_get(it, "relevance_score");
        if (!s) s = json_object_get(it, "score");
        if (!json_is_integer(ix) || !json_is_number(s)) { rc = zk_fail(err, ZK_PARSE, "rerank: malformed result %zu", i); goto out; }
        json_int_t k = json_integer_value(ix);
        double v = json_number_value(s);
        if (k < 0 || (size_t)k >= n || seen[k] || !isfinite(v)) { rc = zk_fail(err, ZK_PARSE, "rerank: bad index in result %zu", i); goto out; }
        seen[k] = 1;
        sc[ns++] = (scored){(size_t)k, v};
    }
    qsort(sc, ns, sizeof *sc, cmp_scored);
    for (size_t i = 0; i < ns; i++) order[(*out_n)++] = sc[i].idx;
    for (size_t i = 0; i < n; i++)
        if (!seen[i]) order[(*out_n)++] = i;
out:
    if (rc != ZK_OK) *out_n = 0;
    if (h) curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    free(req);
    json_decref(root);
    zk_free(sc);
    zk_free(seen);
    buf_free(&body);
    return rc;
}
