/* http.c — the HTTP server core on libmicrohttpd: start-up and graceful
 * shutdown, the request lifecycle (body accumulation with caps, multipart
 * uploads), authentication (API tokens, portal sessions with CSRF, trusted
 * reverse-proxy headers), per-principal rate limits, routing, JSON and SSE
 * responses, the embedded web portal, /healthz, /readyz and /metrics.
 * One thread per connection (MHD), so handlers may block; SQLite
 * connections come from a pool and share one vector index registry.
 * A reaper thread closes connections whose request headers are not complete
 * within [server] header_timeout_ms (slowloris: MHD's own timeout is only
 * an inactivity timeout, which a client trickling one byte a second never hits). */
#include "server/server.h"
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "retrieval/principal.h"
#include "server/auth.h"
#include "server/files.h"
#include "server/session.h"
#include "server/webhooks/hooks.h"
#include "retrieval/stmt.h"

/* latency histogram bucket bounds, seconds */
static const double SRV_BUCKETS[12] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
#define STATS_STATIC SRV_MAX_ROUTES
#define STATS_NOTFOUND (SRV_MAX_ROUTES + 1)

/* ---- store pool ------------------------------------------------------------------ */

ret_store *srv_store_get(srv_ctx *s, char *err)
{
    ret_store *st = NULL;
    pthread_mutex_lock(&s->pool_mu);
    if (s->npool > 0) st = s->pool[--s->npool];
    pthread_mutex_unlock(&s->pool_mu);
    if (st) return st;
    if (ret_store_open(s->data_dir, 0, &st, err) != ZK_OK) return NULL;
    ret_store_share_indexes(st, s->indexes);
    return st;
}

void srv_store_put(srv_ctx *s, ret_store *st)
{
    if (!st) return;
    pthread_mutex_lock(&s->pool_mu);
    if (s->npool < SRV_POOL_MAX) {
        s->pool[s->npool++] = st;
        st = NULL;
    }
    pthread_mutex_unlock(&s->pool_mu);
    ret_store_close(st);   /* pool full: drop the connection */
}

/* ---- responses --------------------------------------------------------------------- */

static void common_headers(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
}

enum MHD_Result srv_bytes(srv_req *r, int status, const char *content_type, const void *data, size_t len, int copy)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", content_type);
    common_headers(resp);
    r->status = status;
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result srv_json(srv_req *r, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) {
        static const char oom[] = "{\"error\":{\"code\":\"internal\"}}";
        return srv_bytes(r, 500, "application/json", oom, sizeof oom - 1, 0);
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
    common_headers(resp);
    if (status == 429) MHD_add_response_header(resp, "Retry-After", "10");
    r->status = status;
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result srv_error(srv_req *r, int status, const char *code, const char *fmt, ...)
{
    char msg[ZK_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return srv_json(r, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

enum MHD_Result srv_fail(srv_req *r, zk_rc rc, const char *err)
{
    const char *msg = err && *err ? err : zk_strerror(rc);
    switch (rc) {
    case ZK_NOTFOUND: return srv_error(r, 404, "not_found", "%s", msg);
    case ZK_INVALID: return srv_error(r, 400, "bad_request", "%s", msg);
    case ZK_EXISTS: return srv_error(r, 409, "conflict", "%s", msg);
    case ZK_TOOBIG: return srv_error(r, 413, "too_large", "%s", msg);
    case ZK_UNSUPPORTED:
    case ZK_PARSE: return srv_error(r, 422, "unprocessable", "%s", msg);
    case ZK_MISMATCH:
    case ZK_CONFIG: return srv_error(r, 503, "unavailable", "%s", msg);
    case ZK_DB:
        if (!strncmp(msg, "disk full", 9)) {   /* the store's SQLITE_FULL message */
            ZK_LOG(ZK_LOG_ERROR, "request %s %s failed: %s", r->method, r->path, msg);
            return srv_error(r, 507, "insufficient_storage", "the server's disk is full; nothing was saved");
        }
        /* fall through */
    default:
        ZK_LOG(ZK_LOG_ERROR, "request %s %s failed: %s", r->method, r->path, msg);
        return srv_error(r, 500, "internal", "internal error (%s)", zk_errname(rc));
    }
}

/* ---- request helpers --------------------------------------------------------------- */

json_t *srv_body_json(srv_req *r, char *err)
{
    json_error_t je;
    if (!r->body.len) {
        zk_fail(err, ZK_INVALID, "expected a JSON object in the request body");
        return NULL;
    }
    json_t *j = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &je);
    if (!j || !json_is_object(j)) {
        zk_fail(err, ZK_INVALID, "invalid JSON: %s", j ? "expected an object" : je.text);
        json_decref(j);
        return NULL;
    }
    return j;
}

const char *srv_query(srv_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *srv_header(srv_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

int srv_require_scope(srv_req *r, unsigned scope)
{
    if (!scope || (r->scopes & scope) == scope || (r->scopes & SRV_SCOPE_ADMIN)) return 1;
    char names[64];
    srv_scopes_format(scope, names, sizeof names);
    srv_error(r, 403, "forbidden", "this credential lacks the '%s' scope", names);
    return 0;
}

void srv_stage(srv_ctx *s, int stage, double seconds)
{
    pthread_mutex_lock(&s->metrics_mu);
    s->stage_sum[stage] += seconds;
    s->stage_count[stage]++;
    pthread_mutex_unlock(&s->metrics_mu);
}

/* ---- routing ------------------------------------------------------------------------ */

void srv_route_add(srv_ctx *s, const char *method, const char *pattern, unsigned scope, srv_handler fn,
                   const char *name)
{
    if (s->nroutes == SRV_MAX_ROUTES) abort();   /* a programming error, caught by any test */
    s->routes[s->nroutes++] = (srv_route){method, pattern, scope, fn, name};
}

/* Match path against pattern; {} segments go to r->params. 1 on match. */
static int match(srv_req *r, const char *pattern, const char *path)
{
    int np = 0;
    while (*pattern && *path) {
        if (pattern[0] == '{' && pattern[1] == '}') {
            const char *e = strchr(path, '/');
            size_t n = e ? (size_t)(e - path) : strlen(path);
            if (n == 0 || n >= sizeof r->param_buf[0] || np == 4) return 0;
            memcpy(r->param_buf[np], path, n);
            r->param_buf[np][n] = '\0';
            MHD_http_unescape(r->param_buf[np]);
            r->params[np] = r->param_buf[np];
            np++;
            path += n;
            pattern += 2;
            continue;
        }
        if (*pattern != *path) return 0;
        pattern++;
        path++;
    }
    return *pattern == '\0' && *path == '\0';
}

/* ---- authentication ----------------------------------------------------------------- */

static int addr_listed(const char *list, const struct sockaddr *sa)
{
    char ip[INET6_ADDRSTRLEN] = "";
    if (!sa) return 0;
    if (sa->sa_family == AF_INET) inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip);
    else if (sa->sa_family == AF_INET6) inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof ip);
    const char *p = list;
    size_t il = strlen(ip);
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ') e++;
        if ((size_t)(e - p) == il && !strncmp(p, ip, il)) return 1;
        p = e;
    }
    return 0;
}

static const struct sockaddr *client_addr(srv_req *r)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return ci ? ci->client_addr : NULL;
}

/* Caller for a local user id. */
static zk_rc caller_for_user(srv_req *r, int64_t uid, char *err)
{
    sqlite3_stmt *st = NULL;
    char name[128] = "";
    ret__prepare(ret_store_db(r->store), "SELECT name FROM principals WHERE id = ? AND kind = 'user'", &st);
    sqlite3_bind_int64(st, 1, uid);
    if (sqlite3_step(st) == SQLITE_ROW) snprintf(name, sizeof name, "%s", sqlite3_column_text(st, 0));
    ret__release(st);
    if (!name[0]) return zk_fail(err, ZK_NOTFOUND, "unknown user");
    zk_rc rc = ret_caller_user(r->store, name, &r->caller, err);
    if (rc == ZK_OK) r->user_id = uid;
    return rc;
}

/* X-Forwarded-User (+ groups) from a trusted proxy: the user's own grants
 * if a local account exists, plus the named groups and everyone. */
static zk_rc caller_from_proxy(srv_req *r, const char *user, const char *groups, char *err)
{
    int64_t ids[66];
    size_t n = 0;
    int64_t uid = 0, everyone = 0;
    int admin = 0;
    if (!*user || strlen(user) > 64) return zk_fail(err, ZK_INVALID, "bad proxy user header");
    /* SSO users get a local account on first sight (no password), so their
     * conversations and feedback are their own */
    if (ret_principal_find(r->store, RET_PRINCIPAL_USER, user, &uid, err) == ZK_NOTFOUND &&
        ret_user_add(r->store, user, NULL, 0, &uid, err) != ZK_OK)
        return zk_fail(err, ZK_INVALID, "bad proxy user name");
    if (uid) {
        int64_t *set = NULL;
        size_t ns = 0;
        if (ret_principal_set(r->store, uid, &set, &ns, &admin, err) == ZK_OK) {
            for (size_t i = 0; i < ns && n < 64; i++) ids[n++] = set[i];
            zk_free(set);
        }
    }
    if (!n && ret_principal_parse(r->store, "everyone", &everyone, err) == ZK_OK) ids[n++] = everyone;
    if (groups) {   /* the proxy's groups apply for this request */
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", groups);
        char *save = NULL;
        for (char *g = strtok_r(buf, ",", &save); g && n < 64; g = strtok_r(NULL, ",", &save)) {
            while (*g == ' ') g++;
            int64_t gid;
            if (*g && ret_principal_find(r->store, RET_PRINCIPAL_GROUP, g, &gid, NULL) == ZK_OK) ids[n++] = gid;
        }
    }
    char label[96];
    snprintf(label, sizeof label, "user:%s", user);
    r->user_id = uid;
    return ret_caller_from_set(label, uid, ids, n, admin, &r->caller, err);
}

/* Resolve the request's principal. 1 when authenticated (or the route is
 * public); otherwise an error response has been queued. */
static int authenticate(srv_req *r, enum MHD_Result *ret)
{
    srv_ctx *s = r->srv;
    char err[ZK_ERRLEN] = "";
    const char *auth = srv_header(r, "Authorization");
    const char *cookie = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, "zk_session");
    const char *puser = s->proxy_user_header[0] ? srv_header(r, s->proxy_user_header) : NULL;
    zk_rc rc = ZK_INVALID;

    if (auth && !strncasecmp(auth, "Bearer ", 7)) {
        int64_t uid;
        unsigned scopes;
        if ((rc = srv_token_verify(r->store, auth + 7, &uid, &scopes, err)) == ZK_OK &&
            (rc = caller_for_user(r, uid, err)) == ZK_OK) {
            r->scopes = scopes;
            if (r->caller.admin) r->scopes |= SRV_SCOPE_ADMIN;
        }
    } else if (cookie) {
        int64_t uid;
        if ((rc = srv_session_lookup(r->store, cookie, &uid, r->csrf, err)) == ZK_OK &&
            (rc = caller_for_user(r, uid, err)) == ZK_OK) {
            r->via_session = 1;
            r->scopes = SRV_SCOPE_SEARCH | SRV_SCOPE_ASK | (r->caller.admin ? SRV_SCOPE_INGEST | SRV_SCOPE_ADMIN : 0);
        }
    } else if (puser && addr_listed(s->trusted_proxies, client_addr(r))) {
        const char *pg = s->proxy_groups_header[0] ? srv_header(r, s->proxy_groups_header) : NULL;
        if ((rc = caller_from_proxy(r, puser, pg, err)) == ZK_OK)
            r->scopes = SRV_SCOPE_SEARCH | SRV_SCOPE_ASK | (r->caller.admin ? SRV_SCOPE_INGEST | SRV_SCOPE_ADMIN : 0);
    }
    if (rc != ZK_OK) {
        *ret = srv_error(r, 401, "unauthorized",
                         auth || cookie ? "invalid, expired or revoked credentials" : "authentication required");
        return 0;
    }
    r->authed = 1;
    /* CSRF: a session's state-changing requests must echo its token */
    if (r->via_session && strcmp(r->method, "GET") && strcmp(r->method, "HEAD")) {
        const char *t = srv_header(r, "X-CSRF-Token");
        if (!t || strlen(t) != strlen(r->csrf) || CRYPTO_memcmp(t, r->csrf, strlen(t)) != 0) {
            *ret = srv_error(r, 403, "forbidden", "missing or wrong X-CSRF-Token");
            return 0;
        }
    }
    return 1;
}

/* Token bucket per principal: rate_per_minute requests, bursts of the same. */
int srv_rate_ok(srv_ctx *s, const char *key)
{
    if (s->rate_per_minute <= 0) return 1;
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = key; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    struct srv_bucket *b = &s->rate[h % ZK_ARRAY_LEN(s->rate)];
    double now = zk_now();
    int ok;
    pthread_mutex_lock(&s->rate_mu);
    if (strcmp(b->key, key)) {   /* new (or evicted) principal: full bucket */
        snprintf(b->key, sizeof b->key, "%s", key);
        b->tokens = s->rate_per_minute;
        b->at = now;
    }
    b->tokens = fmin(s->rate_per_minute, b->tokens + (now - b->at) * s->rate_per_minute / 60.0);
    b->at = now;
    ok = b->tokens >= 1.0;
    if (ok) b->tokens -= 1.0;
    pthread_mutex_unlock(&s->rate_mu);
    return ok;
}

/* ---- static files, health, metrics --------------------------------------------------- */

static enum MHD_Result serve_static(srv_req *r)
{
    const char *path = r->path;
    if (!strcmp(path, "/") || !strcmp(path, "/admin")) path = !strcmp(path, "/admin") ? "/admin.html" : "/index.html";
    if (r->srv->web_dir[0] && !strstr(path, "..")) {
        char fp[2048];
        snprintf(fp, sizeof fp, "%s%s", r->srv->web_dir, path);
        FILE *f = fopen(fp, "rb");
        if (f) {
            char *buf = NULL;
            size_t len = 0;
            FILE *m = open_memstream(&buf, &len);
            char tmp[8192];
            size_t n;
            while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) fwrite(tmp, 1, n, m);
            fclose(f);
            fclose(m);
            const char *ct = strstr(path, ".js") ? "text/javascript; charset=utf-8"
                             : strstr(path, ".css") ? "text/css; charset=utf-8" : "text/html; charset=utf-8";
            enum MHD_Result ret = srv_bytes(r, 200, ct, buf, len, 1);
            free(buf);
            return ret;
        }
    }
    for (const srv_file *f = srv_files; f->path; f++) {
        if (strcmp(f->path, path)) continue;
        struct MHD_Response *resp = MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(resp, "Content-Type", f->content_type);
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
        r->status = 200;
        enum MHD_Result ret = MHD_queue_response(r->conn, 200, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    return srv_error(r, 404, "not_found", "no route for %s %s", r->method, r->path);
}

static enum MHD_Result serve_metrics(srv_req *r)
{
    srv_ctx *s = r->srv;
    zk_buf b;
    buf_init(&b, 1 << 22);
    pthread_mutex_lock(&s->metrics_mu);
    buf_puts(&b, "# HELP zhiku_http_requests_total HTTP requests by route and status class.\n"
                 "# TYPE zhiku_http_requests_total counter\n");
    for (int i = 0; i < s->nroutes + 2; i++) {
        const char *name = i < s->nroutes ? s->routes[i].name : i == s->nroutes ? "static" : "unmatched";
        srv_route_stats *st = &s->stats[i < s->nroutes ? i : i == s->nroutes ? STATS_STATIC : STATS_NOTFOUND];
        buf_printf(&b, "zhiku_http_requests_total{route=\"%s\",outcome=\"ok\"} %llu\n", name,
                   (unsigned long long)(st->count - st->errors));
        buf_printf(&b, "zhiku_http_requests_total{route=\"%s\",outcome=\"error\"} %llu\n", name,
                   (unsigned long long)st->errors);
    }
    buf_puts(&b, "# HELP zhiku_http_request_duration_seconds HTTP request latency by route.\n"
                 "# TYPE zhiku_http_request_duration_seconds histogram\n");
    for (int i = 0; i < s->nroutes; i++) {
        srv_route_stats *st = &s->stats[i];
        uint64_t cum = 0;
        for (int k = 0; k < 12; k++) {
            cum += st->buckets[k];
            buf_printf(&b, "zhiku_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                       s->routes[i].name, SRV_BUCKETS[k], (unsigned long long)cum);
        }
        buf_printf(&b, "zhiku_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                   s->routes[i].name, (unsigned long long)st->count);
        buf_printf(&b, "zhiku_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", s->routes[i].name,
                   st->sum_seconds);
        buf_printf(&b, "zhiku_http_request_duration_seconds_count{route=\"%s\"} %llu\n", s->routes[i].name,
                   (unsigned long long)st->count);
    }
    static const char *const stage_names[4] = {"retrieval", "llm_first_token", "llm_total", "ingest"};
    buf_puts(&b, "# HELP zhiku_stage_seconds Time spent per pipeline stage.\n# TYPE zhiku_stage_seconds summary\n");
    for (int k = 0; k < 4; k++) {
        buf_printf(&b, "zhiku_stage_seconds_sum{stage=\"%s\"} %.6f\n", stage_names[k], s->stage_sum[k]);
        buf_printf(&b, "zhiku_stage_seconds_count{stage=\"%s\"} %llu\n", stage_names[k],
                   (unsigned long long)s->stage_count[k]);
    }
    buf_printf(&b, "# HELP zhiku_ingest_in_flight Uploads being ingested.\n# TYPE zhiku_ingest_in_flight gauge\n"
                   "zhiku_ingest_in_flight %ld\n", s->ingest_in_flight);
    pthread_mutex_unlock(&s->metrics_mu);
    /* index sizes and token usage, from the database */
    sqlite3_stmt *st = NULL;
    buf_puts(&b, "# HELP zhiku_documents Documents per knowledge base and status.\n# TYPE zhiku_documents gauge\n");
    if (sqlite3_prepare_v2(ret_store_db(r->store), "SELECT k.name, d.status, count(*), coalesce(sum(d.nchunks),0) "
                           "FROM documents d JOIN kb k ON k.id = d.kb_id GROUP BY 1, 2", -1, &st, NULL) == SQLITE_OK) {
        zk_buf chunks;
        buf_init(&chunks, 1 << 20);
        while (sqlite3_step(st) == SQLITE_ROW) {
            buf_printf(&b, "zhiku_documents{kb=\"%s\",status=\"%s\"} %lld\n", sqlite3_column_text(st, 0),
                       sqlite3_column_text(st, 1), (long long)sqlite3_column_int64(st, 2));
            buf_printf(&chunks, "zhiku_chunks{kb=\"%s\",status=\"%s\"} %lld\n", sqlite3_column_text(st, 0),
                       sqlite3_column_text(st, 1), (long long)sqlite3_column_int64(st, 3));
        }
        buf_puts(&b, "# HELP zhiku_chunks Chunks per knowledge base.\n# TYPE zhiku_chunks gauge\n");
        buf_append(&b, chunks.data ? chunks.data : "", chunks.len);
        buf_free(&chunks);
    }
    sqlite3_finalize(st);
    st = NULL;
    buf_puts(&b, "# HELP zhiku_llm_tokens_total Tokens reported by model providers.\n"
                 "# TYPE zhiku_llm_tokens_total counter\n");
    if (sqlite3_prepare_v2(ret_store_db(r->store), "SELECT u.provider, k.name, sum(prompt_tokens), "
                           "sum(completion_tokens) FROM usage u JOIN kb k ON k.id = u.kb_id GROUP BY 1, 2",
                           -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            buf_printf(&b, "zhiku_llm_tokens_total{provider=\"%s\",kb=\"%s\",kind=\"prompt\"} %lld\n",
                       sqlite3_column_text(st, 0), sqlite3_column_text(st, 1), (long long)sqlite3_column_int64(st, 2));
            buf_printf(&b, "zhiku_llm_tokens_total{provider=\"%s\",kb=\"%s\",kind=\"completion\"} %lld\n",
                       sqlite3_column_text(st, 0), sqlite3_column_text(st, 1), (long long)sqlite3_column_int64(st, 3));
        }
    }
    sqlite3_finalize(st);
    buf_printf(&b, "# HELP zhiku_ready 1 once the vector indexes are loaded.\n# TYPE zhiku_ready gauge\nzhiku_ready %d\n",
               s->ready ? 1 : 0);
    enum MHD_Result ret = srv_bytes(r, 200, "text/plain; version=0.0.4; charset=utf-8", buf_cstr(&b), b.len, 1);
    buf_free(&b);
    return ret;
}

/* ---- header deadline (slowloris) ---------------------------------------------------- */

/* Every open connection is tracked from MHD's STARTED notification to its
 * CLOSED one. MHD (0.9.75 and later) delivers CLOSED before it closes the
 * socket and frees the connection, and the list is only touched under mu,
 * so the reaper never shuts down a stale or reused descriptor. A request's
 * header phase starts at accept and again after each completed request (a
 * kept-alive connection waiting for its next request is cut after the same
 * deadline); it ends at the access handler's first call, which MHD makes
 * once the headers are complete. Bodies are bounded by the idle timeout
 * and the size caps, not by this deadline. */
typedef struct conn_track {
    struct MHD_Connection *conn;
    struct conn_reaper *owner;
    double since;                    /* start of the current header phase */
    int in_request;                  /* headers complete, request running */
    int cut;                         /* already shut down by the reaper */
    struct conn_track *prev, *next;
} conn_track;

typedef struct conn_reaper {
    pthread_mutex_t mu;              /* guards everything below */
    pthread_cond_t cv;
    conn_track *head;                /* open connections */
    double timeout;                  /* seconds; <= 0: no deadline */
    int stop;
    unsigned long cut_total;         /* connections closed for slow headers */
} conn_reaper;

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    conn_reaper *rp = cls;
    conn_track *t = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        if (!(t = zk_calloc(1, sizeof *t))) return;   /* untracked: only the idle timeout applies */
        t->conn = conn;
        t->owner = rp;
        t->since = zk_now();
        pthread_mutex_lock(&rp->mu);
        t->next = rp->head;
        if (rp->head) rp->head->prev = t;
        rp->head = t;
        pthread_mutex_unlock(&rp->mu);
        *socket_context = t;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && t) {
        pthread_mutex_lock(&rp->mu);
        if (t->prev) t->prev->next = t->next;
        else rp->head = t->next;
        if (t->next) t->next->prev = t->prev;
        pthread_mutex_unlock(&rp->mu);
        zk_free(t);
        *socket_context = NULL;
    }
}

/* in_request = 1: the headers of a request are complete; 0: it finished,
 * the next request's header phase starts now. */
static void conn_mark(struct MHD_Connection *conn, int in_request)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_track *t = ci ? ci->socket_context : NULL;
    if (!t) return;
    pthread_mutex_lock(&t->owner->mu);
    t->in_request = in_request;
    if (!in_request) t->since = zk_now();
    pthread_mutex_unlock(&t->owner->mu);
}

static void *reaper_main(void *arg)
{
    conn_reaper *rp = arg;
    /* check a few times per deadline, at most every 200 ms */
    double tick = rp->timeout / 8 < 0.2 ? (rp->timeout / 8 > 0.01 ? rp->timeout / 8 : 0.01) : 0.2;
    pthread_mutex_lock(&rp->mu);
    while (!rp->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long ns = ts.tv_nsec + (long)(tick * 1e9);
        ts.tv_sec += ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&rp->cv, &rp->mu, &ts);
        double now = zk_now();
        for (conn_track *t = rp->head; t && !rp->stop; t = t->next) {
            if (t->in_request || t->cut || now - t->since < rp->timeout) continue;
            const union MHD_ConnectionInfo *ci = MHD_get_connection_info(t->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
            if (!ci || ci->connect_fd < 0) continue;
            /* the connection thread sees end-of-stream and closes it */
            shutdown(ci->connect_fd, SHUT_RDWR);
            t->cut = 1;
            rp->cut_total++;
            ZK_LOG(ZK_LOG_INFO, "closed a connection that sent no complete request headers in %.0f ms",
                   rp->timeout * 1e3);
        }
    }
    pthread_mutex_unlock(&rp->mu);
    return NULL;
}

/* ---- request lifecycle ------------------------------------------------------------ */

static enum MHD_Result post_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                 const char *content_type, const char *transfer_encoding, const char *data,
                                 uint64_t off, size_t size)
{
    srv_req *r = cls;
    srv_upload *u = r->upload;
    (void)kind;
    (void)transfer_encoding;
    (void)off;
    if (!strcmp(key, "file")) {
        if (filename && !u->filename[0]) snprintf(u->filename, sizeof u->filename, "%s", filename);
        if (content_type && !u->content_type[0]) snprintf(u->content_type, sizeof u->content_type, "%s", content_type);
        if (size && buf_append(&u->data, data, size) != ZK_OK) u->too_big = 1;
        return MHD_YES;
    }
    char *dst = !strcmp(key, "acl") ? u->acl : !strcmp(key, "tags") ? u->tags : !strcmp(key, "kb") ? u->kb
                : !strcmp(key, "id") ? u->id : NULL;
    size_t cap = !strcmp(key, "acl") ? sizeof u->acl : !strcmp(key, "tags") ? sizeof u->tags
                 : !strcmp(key, "kb") ? sizeof u->kb : sizeof u->id;
    if (dst) {
        size_t have = strlen(dst);
        if (have + size >= cap) u->too_big = 1;
        else {
            memcpy(dst + have, data, size);
            dst[have + size] = '\0';
        }
    }
    return MHD_YES;
}

static void record(srv_ctx *s, srv_req *r)
{
    int i = r->route ? r->route_index : (r->status == 404 ? STATS_NOTFOUND : STATS_STATIC);
    double secs = zk_now() - r->t0;
    pthread_mutex_lock(&s->metrics_mu);
    srv_route_stats *st = &s->stats[i];
    st->count++;
    if (r->status >= 400) st->errors++;
    st->sum_seconds += secs;
    int k = 0;
    while (k < 12 && secs > SRV_BUCKETS[k]) k++;
    if (k < 12) st->buckets[k]++;
    pthread_mutex_unlock(&s->metrics_mu);
    ZK_LOG(ZK_LOG_INFO, "{\"method\":\"%s\",\"path\":\"%s\",\"route\":\"%s\",\"status\":%d,\"ms\":%.1f,\"who\":\"%s\"}",
           r->method, r->path, r->route ? r->route->name : "-", r->status, secs * 1e3,
           r->authed ? r->caller.name : "-");
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    srv_ctx *s = cls;
    srv_req *r = *con_cls;
    (void)toe;
    conn_mark(conn, 0);
    if (!r) return;
    record(s, r);
    if (r->post) MHD_destroy_post_processor(r->post);
    if (r->upload) {
        buf_free(&r->upload->data);
        zk_free(r->upload);
    }
    buf_free(&r->body);
    if (!r->streaming) {   /* a stream's producer owns the store and caller */
        ret_caller_free(&r->caller);
        /* a connection that just failed (disk full, I/O error, out of
         * memory) is not pooled: SQLite's and FTS5's per-connection state
         * after such errors is not worth trusting (tests/unit/test_faults.c) */
        if (r->status >= 500 && r->status != 503) ret_store_close(r->store);
        else srv_store_put(s, r->store);
    }
    zk_free(r);
    *con_cls = NULL;
}

static enum MHD_Result dispatch(srv_req *r)
{
    srv_ctx *s = r->srv;
    enum MHD_Result ret = MHD_YES;
    if (!strcmp(r->path, "/healthz")) return srv_bytes(r, 200, "text/plain", "ok\n", 3, 0);
    if (!strcmp(r->path, "/readyz"))
        return s->ready ? srv_bytes(r, 200, "text/plain", "ready\n", 6, 0)
                        : srv_bytes(r, 503, "text/plain", "loading\n", 8, 0);
    if (r->too_big || (r->upload && r->upload->too_big))
        return srv_error(r, 413, "too_large", "request body larger than the limit");

    int path_matched = 0;
    for (int i = 0; i < s->nroutes; i++) {
        const srv_route *rt = &s->routes[i];
        if (!match(r, rt->pattern, r->path)) continue;
        path_matched = 1;
        if (strcmp(rt->method, r->method)) continue;
        r->route = rt;
        r->route_index = i;
        break;
    }
    if (!r->route) {
        if (path_matched) return srv_error(r, 405, "method_not_allowed", "%s is not allowed on %s", r->method, r->path);
        if (!strcmp(r->path, "/metrics")) {
            if (s->metrics_from[0] && !addr_listed(s->metrics_from, client_addr(r)))
                return srv_error(r, 403, "forbidden", "metrics are not served to this address");
            char err[ZK_ERRLEN];
            if (!(r->store = srv_store_get(s, err))) return srv_error(r, 503, "unavailable", "%s", err);
            return serve_metrics(r);
        }
        if (!strncmp(r->path, "/api/", 5)) return srv_error(r, 404, "not_found", "no route for %s %s", r->method, r->path);
        if (strcmp(r->method, "GET") && strcmp(r->method, "HEAD"))
            return srv_error(r, 405, "method_not_allowed", "static files are read-only");
        return serve_static(r);
    }
    char err[ZK_ERRLEN];
    if (!(r->store = srv_store_get(s, err))) return srv_error(r, 503, "unavailable", "database unavailable: %s", err);
    if (r->route->scope) {
        if (!authenticate(r, &ret)) return ret;
        if (!srv_rate_ok(s, r->caller.name)) return srv_error(r, 429, "rate_limited", "too many requests; slow down");
        if (!srv_require_scope(r, r->route->scope & ~SRV_AUTH_ONLY)) return MHD_YES;
    }
    return r->route->fn(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    srv_ctx *s = cls;
    srv_req *r = *con_cls;
    (void)version;
    if (!r) {   /* first call: headers only */
        conn_mark(conn, 1);
        r = zk_calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->srv = s;
        r->conn = conn;
        r->t0 = zk_now();
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        buf_init(&r->body, s->max_body);
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        if (ct && !strncasecmp(ct, "multipart/form-data", 19)) {
            r->upload = zk_calloc(1, sizeof *r->upload);
            if (!r->upload) return MHD_NO;
            buf_init(&r->upload->data, s->max_upload);
            r->post = MHD_create_post_processor(conn, 64 * 1024, post_iter, r);
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > (r->upload ? s->max_upload + 65536 : s->max_body)) r->too_big = 1;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size) {   /* body data: accumulate up to the cap, then discard */
        if (!r->too_big) {
            if (r->post) {
                if (MHD_post_process(r->post, upload_data, *upload_data_size) != MHD_YES) r->upload->too_big = 1;
            } else if (buf_append(&r->body, upload_data, *upload_data_size) != ZK_OK) {
                r->too_big = 1;
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    return dispatch(r);
}

/* ---- SSE streams ------------------------------------------------------------------- */

struct srv_stream {
    srv_req req;                     /* copy: caller, store, scopes */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    zk_buf out;                      /* pending bytes for the client */
    size_t sent;
    int done, gone;
    void (*fn)(srv_stream *, void *);
    void *arg;
    void (*free_arg)(void *);
    int refs;                        /* MHD side + producer side */
};

static void stream_unref(srv_stream *st)
{
    pthread_mutex_lock(&st->mu);
    int left = --st->refs;
    pthread_mutex_unlock(&st->mu);
    if (left) return;
    buf_free(&st->out);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    zk_free(st);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    srv_stream *st = cls;
    (void)pos;
    pthread_mutex_lock(&st->mu);
    while (st->sent == st->out.len && !st->done) pthread_cond_wait(&st->cv, &st->mu);
    ssize_t n;
    if (st->sent == st->out.len) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        size_t avail = st->out.len - st->sent;
        n = (ssize_t)(avail < max ? avail : max);
        memcpy(buf, st->out.data + st->sent, (size_t)n);
        st->sent += (size_t)n;
        if (st->sent == st->out.len) {   /* everything delivered: reuse the buffer */
            st->sent = 0;
            buf_reset(&st->out);
        }
    }
    pthread_mutex_unlock(&st->mu);
    return n;
}

static void stream_closed(void *cls)
{
    srv_stream *st = cls;
    pthread_mutex_lock(&st->mu);
    st->gone = 1;   /* the client went away or the stream ended: producer stops */
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    stream_unref(st);
}

static volatile long streams_running;   /* producer threads alive, for shutdown */

static void *stream_main(void *arg)
{
    srv_stream *st = arg;
    st->fn(st, st->arg);
    if (st->free_arg) st->free_arg(st->arg);
    ret_caller_free(&st->req.caller);
    srv_store_put(st->req.srv, st->req.store);
    __atomic_sub_fetch(&streams_running, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&st->mu);
    st->done = 1;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    stream_unref(st);
    return NULL;
}

enum MHD_Result srv_stream_start(srv_req *r, void (*fn)(srv_stream *, void *), void *arg, void (*free_arg)(void *))
{
    srv_stream *st = zk_calloc(1, sizeof *st);
    if (!st) {
        if (free_arg) free_arg(arg);
        return srv_error(r, 500, "internal", "out of memory");
    }
    st->req = *r;            /* caller and store move to the stream */
    memset(&st->req.body, 0, sizeof st->req.body);
    st->req.post = NULL;
    st->req.upload = NULL;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    buf_init(&st->out, 1 << 26);
    st->fn = fn;
    st->arg = arg;
    st->free_arg = free_arg;
    st->refs = 2;
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_closed);
    if (!resp) {
        zk_free(st);
        if (free_arg) free_arg(arg);
        return srv_error(r, 500, "internal", "out of memory");
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");   /* reverse proxies: do not buffer */
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    r->streaming = 1;
    r->status = 200;
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    __atomic_add_fetch(&streams_running, 1, __ATOMIC_SEQ_CST);
    if (pthread_create(&t, &at, stream_main, st) != 0) {
        __atomic_sub_fetch(&streams_running, 1, __ATOMIC_SEQ_CST);
        pthread_attr_destroy(&at);
        r->streaming = 0;
        MHD_destroy_response(resp);
        zk_free(st);
        if (free_arg) free_arg(arg);
        return srv_error(r, 503, "unavailable", "cannot start the answer");
    }
    pthread_attr_destroy(&at);
    enum MHD_Result ret = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

int srv_stream_event(srv_stream *st, const char *event, json_t *data)
{
    char *text = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    pthread_mutex_lock(&st->mu);
    int gone = st->gone;
    if (!gone && text) {
        buf_printf(&st->out, "event: %s\ndata: %s\n\n", event, text);
        pthread_cond_broadcast(&st->cv);
    }
    pthread_mutex_unlock(&st->mu);
    free(text);
    return gone;
}

int srv_stream_cancelled(srv_stream *st)
{
    pthread_mutex_lock(&st->mu);
    int gone = st->gone;
    pthread_mutex_unlock(&st->mu);
    return gone;
}

srv_req *srv_stream_req(srv_stream *st) { return &st->req; }

/* ---- start-up and shutdown -------------------------------------------------------------- */

static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { got_signal = sig; }

/* The access map (chunk -> document -> readers) loads on a connection of
 * its own while the vector indexes load and replay: each takes a few
 * tenths of a second at a million chunks, and the first searches would
 * otherwise wait for the map. Its row lengths follow after /readyz. */
typedef struct {
    srv_ctx *s;
    zk_rc rc;
    double secs;
    char err[ZK_ERRLEN];
} warm_job;

static void *warm_access_main(void *arg)
{
    warm_job *w = arg;
    double t0 = zk_now();
    ret_store *st = srv_store_get(w->s, w->err);
    w->rc = st ? ret_store_warm_access(st, w->err) : ZK_DB;
    srv_store_put(w->s, st);
    w->secs = zk_now() - t0;
    return NULL;
}

static void *load_indexes(void *arg)
{
    srv_ctx *s = arg;
    char err[ZK_ERRLEN];
    warm_job w = {.s = s};
    pthread_t warm;
    int warming = pthread_create(&warm, NULL, warm_access_main, &w) == 0;
    ret_store *st = srv_store_get(s, err);
    double t0 = zk_now();
    zk_rc rc = st ? ret_store_sync(st, 0, err) : ZK_DB;
    double t1 = zk_now();
    if (warming) pthread_join(warm, NULL);
    else warm_access_main(&w);
    if (w.rc != ZK_OK) ZK_LOG(ZK_LOG_WARN, "loading the access map: %s", w.err);
    if (rc == ZK_OK) {
        s->ready = 1;
        ZK_LOG(ZK_LOG_INFO, "vector indexes loaded and replayed in %.2fs, access map in %.2fs; ready", t1 - t0,
               w.secs);
        /* serving already: BM25's row lengths join the access map, the
         * column indexes leave their mapped snapshots */
        double t2 = zk_now();
        ret_store_load_lengths(st, &s->stopping);
        ZK_LOG(ZK_LOG_INFO, "row lengths loaded in %.2fs", zk_now() - t2);
        t2 = zk_now();
        size_t moved = ret_store_promote_indexes(st, &s->stopping);
        if (moved)
            ZK_LOG(ZK_LOG_INFO, "%zu vector blocks moved into memory in %.2fs", moved, zk_now() - t2);
    } else {
        ZK_LOG(ZK_LOG_ERROR, "loading vector indexes: %s", err);
    }
    srv_store_put(s, st);
    return NULL;
}

static void load_settings(srv_ctx *s, const zk_config *cfg)
{
    s->max_body = (size_t)zk_config_int(cfg, "server", "max_body_kb") << 10;
    s->max_upload = (size_t)zk_config_int(cfg, "server", "max_upload_mb") << 20;
    s->session_ttl = (int)zk_config_int(cfg, "server", "session_hours") * 3600;
    s->rate_per_minute = zk_config_double(cfg, "server", "rate_limit_per_minute");
    snprintf(s->trusted_proxies, sizeof s->trusted_proxies, "%s", zk_config_get(cfg, "server", "trusted_proxies"));
    snprintf(s->proxy_user_header, sizeof s->proxy_user_header, "%s", zk_config_get(cfg, "server", "proxy_user_header"));
    snprintf(s->proxy_groups_header, sizeof s->proxy_groups_header, "%s",
             zk_config_get(cfg, "server", "proxy_groups_header"));
    snprintf(s->metrics_from, sizeof s->metrics_from, "%s", zk_config_get(cfg, "server", "metrics_from"));
    snprintf(s->web_dir, sizeof s->web_dir, "%s", zk_config_get(cfg, "server", "web_dir"));
}

static int parse_listen(const char *listen, struct sockaddr_in *sa, char *err)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host) return zk_fail(err, ZK_CONFIG, "--listen wants HOST:PORT, not '%s'", listen);
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    long port = strtol(colon + 1, NULL, 10);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (!strcmp(host, "localhost")) strcpy(host, "127.0.0.1");
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return zk_fail(err, ZK_CONFIG, "--listen wants an IPv4 HOST:PORT, not '%s'", listen);
    return ZK_OK;
}

zk_rc srv_run(const srv_opts *o, char *err)
{
    zk_rc rc = ZK_OK;
    srv_ctx *s = zk_calloc(1, sizeof *s);
    if (!s) return zk_fail(err, ZK_NOMEM, "out of memory");
    s->cfg = o->cfg;
    conn_reaper reaper = {.timeout = (double)zk_config_int(o->cfg, "server", "header_timeout_ms") / 1e3};
    pthread_t reaper_thread;
    int reaping = 0;
    pthread_mutex_init(&reaper.mu, NULL);
    pthread_cond_init(&reaper.cv, NULL);
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_mutex_init(&s->metrics_mu, NULL);
    pthread_mutex_init(&s->rate_mu, NULL);
    load_settings(s, o->cfg);
    const char *listen = o->listen ? o->listen : zk_config_get(o->cfg, "server", "listen");
    struct sockaddr_in sa;
    ret_store *first = NULL;
    char *cert = NULL, *key = NULL;
    if ((rc = parse_listen(listen, &sa, err)) != ZK_OK) goto out;
    if (!(s->data_dir = zk_strdup(o->data_dir)) || !(s->indexes = ret_indexes_new(o->data_dir))) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    /* open once up front: creates/migrates the database, fails early */
    if ((rc = ret_store_open(o->data_dir, 0, &first, err)) != ZK_OK) goto out;
    ret_store_share_indexes(first, s->indexes);
    srv_store_put(s, first);
    if ((rc = llm_embedder_from_config(o->cfg, &s->emb, err)) != ZK_OK) goto out;
    if ((rc = llm_providers_from_config(o->cfg, &s->providers, err)) != ZK_OK) goto out;
    if ((rc = llm_reranker_from_config(o->cfg, &s->reranker, err)) != ZK_OK) goto out;
    srv_register_api(s);
    srv_register_admin(s);
    if ((rc = srv_hooks_start(s, err)) != ZK_OK) goto out;

    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
    const char *cert_path = zk_config_get(o->cfg, "server", "tls_cert");
    const char *key_path = zk_config_get(o->cfg, "server", "tls_key");
    if (cert_path && *cert_path) {
        FILE *f;
        size_t n;
        if (!(f = fopen(cert_path, "r")) || !(cert = zk_calloc(1, 1 << 20)) ||
            (n = fread(cert, 1, (1 << 20) - 1, f)) == 0) {
            if (f) fclose(f);
            rc = zk_fail(err, ZK_CONFIG, "cannot read [server] tls_cert %s", cert_path);
            goto out;
        }
        fclose(f);
        if (!(f = fopen(key_path, "r")) || !(key = zk_calloc(1, 1 << 20)) || fread(key, 1, (1 << 20) - 1, f) == 0) {
            if (f) fclose(f);
            rc = zk_fail(err, ZK_CONFIG, "cannot read [server] tls_key %s", key_path);
            goto out;
        }
        fclose(f);
        flags |= MHD_USE_TLS;
        s->tls = 1;
    }
    s->mhd = cert ? MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                     MHD_OPTION_CONNECTION_LIMIT, (unsigned)zk_config_int(o->cfg, "server", "max_connections"),
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)zk_config_int(o->cfg, "server", "idle_timeout_s"),
                                     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
                                     MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)zk_config_int(o->cfg, "server", "max_connections_per_ip"),
                                     MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                                     MHD_OPTION_NOTIFY_CONNECTION, on_connection, &reaper, MHD_OPTION_HTTPS_MEM_CERT, cert,
                                     MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_END)
                  : MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                     MHD_OPTION_CONNECTION_LIMIT, (unsigned)zk_config_int(o->cfg, "server", "max_connections"),
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)zk_config_int(o->cfg, "server", "idle_timeout_s"),
                                     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
                                     MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)zk_config_int(o->cfg, "server", "max_connections_per_ip"),
                                     MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                                     MHD_OPTION_NOTIFY_CONNECTION, on_connection, &reaper, MHD_OPTION_END);
    if (!s->mhd) {
        rc = zk_fail(err, ZK_IO, "cannot listen on %s: %s", listen, strerror(errno));
        goto out;
    }
    if (reaper.timeout > 0 && pthread_create(&reaper_thread, NULL, reaper_main, &reaper) == 0) reaping = 1;
    else if (reaper.timeout > 0) ZK_LOG(ZK_LOG_WARN, "cannot start the header-deadline thread: only idle_timeout_s applies");
    fprintf(stderr, "zhiku: serving %s on http%s://%s/ (data %s)\n", s->providers ? "LLM answers" : "extractive answers",
            s->tls ? "s" : "", listen, o->data_dir);
    pthread_t loader;
    pthread_create(&loader, NULL, load_indexes, s);

    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = on_signal;
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    signal(SIGPIPE, SIG_IGN);
    while (!got_signal) pause();
    fprintf(stderr, "zhiku: %s received: finishing requests, saving the vector index\n",
            got_signal == SIGTERM ? "SIGTERM" : "SIGINT");
    s->stopping = 1;
    MHD_quiesce_daemon(s->mhd);   /* stop accepting; in-flight connections go on */
    pthread_join(loader, NULL);
    /* let in-flight requests and answer streams finish (bounded), then stop */
    double deadline = zk_now() + (double)zk_config_int(o->cfg, "server", "shutdown_grace_s");
    while (zk_now() < deadline) {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if ((!di || di->num_connections == 0) && __atomic_load_n(&streams_running, __ATOMIC_SEQ_CST) == 0) break;
        usleep(20 * 1000);
    }
    MHD_stop_daemon(s->mhd);      /* closes what is left, joins the connection threads */
    srv_hooks_stop(s);            /* webhook workers finish queued questions (bounded by the grace) */
    while (__atomic_load_n(&streams_running, __ATOMIC_SEQ_CST) > 0 && zk_now() < deadline + 5) usleep(20 * 1000);
    s->mhd = NULL;
    if (s->ready && (rc = ret_indexes_save(s->indexes, err)) != ZK_OK)
        ZK_LOG(ZK_LOG_ERROR, "saving vector snapshots: %s", err);
out:
    if (s->mhd) MHD_stop_daemon(s->mhd);
    if (reaping) {   /* every connection is closed: nothing left to reap */
        pthread_mutex_lock(&reaper.mu);
        reaper.stop = 1;
        pthread_cond_signal(&reaper.cv);
        pthread_mutex_unlock(&reaper.mu);
        pthread_join(reaper_thread, NULL);
        if (reaper.cut_total)
            ZK_LOG(ZK_LOG_INFO, "%lu connections were closed for not sending their headers in time", reaper.cut_total);
    }
    pthread_cond_destroy(&reaper.cv);
    pthread_mutex_destroy(&reaper.mu);
    srv_hooks_stop(s);            /* no request can queue a question any more */
    for (int i = 0; i < s->npool; i++) ret_store_close(s->pool[i]);
    ret_indexes_free(s->indexes);
    llm_embedder_free(s->emb);
    llm_providers_free(s->providers);
    llm_reranker_free(s->reranker);
    zk_free(cert);
    zk_free(key);
    zk_free(s->data_dir);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_mutex_destroy(&s->metrics_mu);
    pthread_mutex_destroy(&s->rate_mu);
    zk_free(s);
    return rc;
}
