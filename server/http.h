/* http.h — internals shared by the server's files: the server context, one
 * request's state, routing, response helpers and SSE streams. Handlers
 * (server/api*.c) parse, call one retrieval/llm operation, and format.
 *
 * Threading: libmicrohttpd runs one thread per connection; a request holds
 * one store (SQLite connection) from the pool for its duration; stores
 * share one vector index registry. srv_ctx fields are read-only after
 * start-up except the ones marked (atomic) or guarded by their mutex. */
#ifndef SRV_HTTP_H
#define SRV_HTTP_H

#include <pthread.h>
#include <stdint.h>
#include <jansson.h>
#include <microhttpd.h>

#include "zk.h"
#include "buf.h"
#include "config.h"
#include "retrieval/store.h"
#include "retrieval/acl.h"
#include "llm/embed.h"
#include "llm/chat.h"
#include "llm/rerank.h"
#include "retrieval/search.h"

#define SRV_POOL_MAX 64
#define SRV_AUTH_ONLY 0x100u          /* route needs a principal but no particular scope */
#define SRV_MAX_ROUTES 96

typedef struct srv_req srv_req;
typedef enum MHD_Result (*srv_handler)(srv_req *r);

typedef struct {
    const char *method;
    const char *pattern;      /* "/api/v1/documents/{}/chunks/{}" */
    unsigned scope;           /* SRV_SCOPE_* required; 0 = public */
    srv_handler fn;
    const char *name;         /* metrics label */
} srv_route;

typedef struct {
    uint64_t count, errors;
    uint64_t buckets[12];     /* latency histogram, see SRV_BUCKETS */
    double sum_seconds;
} srv_route_stats;

typedef struct srv_ctx {
    const zk_config *cfg;
    char *data_dir;
    ret_indexes *indexes;            /* shared vector indexes */
    llm_embedder *emb;
    llm_providers *providers;        /* NULL: extractive answers */
    struct llm_reranker *reranker;   /* NULL: fused order */
    /* store pool */
    pthread_mutex_t pool_mu;
    ret_store *pool[SRV_POOL_MAX];
    int npool;
    /* limits and auth settings */
    size_t max_body, max_upload;
    int session_ttl;                 /* seconds */
    int tls;                         /* cookies get Secure */
    char proxy_user_header[64], proxy_groups_header[64];
    char trusted_proxies[1024];      /* comma-separated addresses */
    char metrics_from[1024];         /* addresses allowed to read /metrics ("" = anyone) */
    double rate_per_minute;          /* per principal; 0 = unlimited */
    char web_dir[1024];              /* serve the portal from disk when set */
    /* state */
    volatile int ready;              /* (atomic) indexes loaded and replayed */
    volatile int stopping;           /* (atomic) */
    struct MHD_Daemon *mhd;
    srv_route routes[SRV_MAX_ROUTES];
    int nroutes;
    /* metrics, guarded by metrics_mu */
    pthread_mutex_t metrics_mu;
    srv_route_stats stats[SRV_MAX_ROUTES + 2];   /* + static files, + not found */
    double stage_sum[4];             /* retrieval, llm first token, llm total, ingest */
    uint64_t stage_count[4];
    long ingest_in_flight;
    /* rate limiter, guarded by rate_mu */
    pthread_mutex_t rate_mu;
    struct srv_bucket { char key[96]; double tokens, at; } rate[1024];
    /* chat-bot webhooks (server/webhooks/hooks.c), set up by srv_hooks_start */
    struct hook_adapter *hooks[8];   /* enabled adapters, mounted at /hooks/NAME */
    int nhooks;
    struct hook_pool *hook_pool;     /* bounded queue + worker threads answering them; NULL = none */
} srv_ctx;

enum { SRV_STAGE_RETRIEVAL = 0, SRV_STAGE_LLM_FIRST, SRV_STAGE_LLM_TOTAL, SRV_STAGE_INGEST };

struct srv_req {
    srv_ctx *srv;
    struct MHD_Connection *conn;
    char method[16];
    char path[1024];                 /* URL path, without the query */
    const char *params[4];           /* {} segments of the route, decoded */
    char param_buf[4][512];
    zk_buf body;                     /* request body (capped) */
    int too_big;
    struct MHD_PostProcessor *post;  /* multipart uploads */
    struct srv_upload *upload;
    const srv_route *route;
    int route_index;
    double t0;
    /* who is asking */
    ret_store *store;                /* from the pool, for this request */
    ret_caller caller;
    int authed;
    unsigned scopes;
    int64_t user_id;                 /* 0 for proxy users without a local account */
    int via_session;
    char csrf[64];
    int status;                      /* for metrics */
    int streaming;                   /* the response is an SSE stream (owns store) */
};

/* ---- responses ------------------------------------------------------------- */
enum MHD_Result srv_json(srv_req *r, int status, json_t *body);   /* steals body */
enum MHD_Result srv_error(srv_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
enum MHD_Result srv_bytes(srv_req *r, int status, const char *content_type, const void *data, size_t len,
                          int copy);
/* A zk_rc from a retrieval/llm call as an HTTP error (message = err). */
enum MHD_Result srv_fail(srv_req *r, zk_rc rc, const char *err);

/* ---- request helpers ---------------------------------------------------------- */
json_t *srv_body_json(srv_req *r, char *err);            /* NULL + err when not a JSON object */
const char *srv_query(srv_req *r, const char *name);     /* ?name=value */
const char *srv_header(srv_req *r, const char *name);
int srv_require_scope(srv_req *r, unsigned scope);       /* 0 and an error queued when missing */
ret_store *srv_store_get(srv_ctx *s, char *err);
void srv_store_put(srv_ctx *s, ret_store *st);
void srv_stage(srv_ctx *s, int stage, double seconds);
/* Token bucket per key (principal name, "login:NAME"): 0 when exhausted. */
int srv_rate_ok(srv_ctx *s, const char *key);

/* ---- SSE streams: a producer thread writes events, MHD reads them ---------- */
typedef struct srv_stream srv_stream;
/* Queue the SSE response; fn runs in a new thread with the stream and arg;
 * the request's store moves to that thread (released when fn returns). */
enum MHD_Result srv_stream_start(srv_req *r, void (*fn)(srv_stream *st, void *arg), void *arg,
                                 void (*free_arg)(void *arg));
/* Write one event; returns non-zero once the client is gone. */
int srv_stream_event(srv_stream *st, const char *event, json_t *data);   /* steals data */
int srv_stream_cancelled(srv_stream *st);
/* The request as the producer sees it: same caller, scopes, user and
 * store (the original request object is gone once the handler returns). */
srv_req *srv_stream_req(srv_stream *st);

/* ---- handlers (server/api.c, server/api_admin.c) ----------------------------- */
void srv_register_api(srv_ctx *s);
void srv_register_admin(srv_ctx *s);
void srv_route_add(srv_ctx *s, const char *method, const char *pattern, unsigned scope, srv_handler fn,
                   const char *name);

/* ---- uploads (multipart) ----------------------------------------------------- */
typedef struct srv_upload {
    char filename[512];
    char content_type[128];
    zk_buf data;
    char acl[1024], tags[1024], kb[128], id[512];
    int too_big;
} srv_upload;

#endif
