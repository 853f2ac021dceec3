/* hooks.h — chat-bot webhooks: one adapter per platform (WeCom, DingTalk,
 * Feishu/Lark, Slack, a generic signed webhook) over one shared pipeline:
 *   verify → decrypt → parse (adapter) → dedup → map the sender to a zhiku
 *   user → answer under that user's permissions → format → reply (adapter)
 * Adapters only know their platform's wire format and crypto; the pipeline
 * (hooks.c) owns dedup (webhook_events), identities (user_links), the
 * bounded worker pool that answers asynchronously after the platform has
 * been acknowledged, and the answer formatting helpers.
 *
 * Each adapter is enabled by its config section ([webhook.wecom], ...) and
 * mounted at /hooks/NAME. Outgoing API calls go to the section's api_base
 * (the platform's public API root by default; tests point it at a local
 * fake). Adapters are shared by all connection threads: their mutable state
 * (cached access tokens) is guarded by their own mutex. */
#ifndef SRV_HOOKS_H
#define SRV_HOOKS_H

#include <stddef.h>
#include "zk.h"
#include "config.h"
#include "server/http.h"

/* One incoming chat message with a question. */
typedef struct {
    char platform[16];
    char event_id[256];       /* dedup key: the platform's message/event id */
    char sender[256];         /* platform user id (UserID, senderStaffId, open_id, Slack user) */
    char chat[512];           /* where to answer: chat/channel/conversation id */
    char reply_to[2048];      /* adapter-specific: sessionWebhook URL, message_id, thread_ts, ... */
    int is_group;
    int sync;                 /* answer inline in the HTTP response (generic webhook), not via reply() */
    char *text;               /* the question, UTF-8, mentions stripped (owned) */
} hook_msg;

/* The immediate HTTP answer to the platform's request (challenge echo,
 * ack, passive reply, or an error). */
typedef struct {
    int status;               /* 200, 400, 401, ... */
    char content_type[64];
    char *body;               /* owned, may be NULL (empty body) */
    size_t len;
} hook_http;

/* An answer ready to be sent back, already rendered for the platform. */
typedef struct {
    const char *text;         /* the rendered reply (markdown or plain, per platform) */
    const char *question;
    int not_found;
    int refused;              /* unknown sender: a polite refusal */
} hook_reply;

typedef struct hook_adapter hook_adapter;
struct hook_adapter {
    const char *name;         /* "wecom" — also the route /hooks/wecom and the section webhook.wecom */
    size_t max_reply_chars;   /* platform text limit: longer answers are cut with a portal link */
    int markdown;             /* HOOK_PLAIN, HOOK_MARKDOWN ([t](url)) or HOOK_MRKDWN (Slack <url|t>) */
    /* Handle one request (method GET or POST, raw body, query via
     * srv_query/srv_header on r). Fill *http with the immediate response.
     * Set *out_msg (caller frees with hook_msg_free) when the request
     * carries a question to answer asynchronously. Must verify the
     * signature/token over the raw bytes before parsing anything. */
    zk_rc (*handle)(hook_adapter *a, srv_req *r, hook_http *http, hook_msg **out_msg, char *err);
    /* Send the rendered reply for m through the platform's API. */
    zk_rc (*reply)(hook_adapter *a, const hook_msg *m, const hook_reply *rep, char *err);
    void (*free)(hook_adapter *a);
    void *state;              /* adapter config and caches */
};

/* Adapter constructors: NULL *out when the config section is absent
 * (adapter disabled); ZK_CONFIG on an incomplete section. */
zk_rc hook_wecom_new(const zk_config *cfg, hook_adapter **out, char *err);
zk_rc hook_dingtalk_new(const zk_config *cfg, hook_adapter **out, char *err);
zk_rc hook_feishu_new(const zk_config *cfg, hook_adapter **out, char *err);
zk_rc hook_slack_new(const zk_config *cfg, hook_adapter **out, char *err);
zk_rc hook_generic_new(const zk_config *cfg, hook_adapter **out, char *err);

/* Pipeline (hooks.c): register /hooks/... routes for the enabled adapters
 * and start the worker pool; stop it at shutdown. */
zk_rc srv_hooks_start(srv_ctx *s, char *err);
void srv_hooks_stop(srv_ctx *s);

/* hook_msg_free(NULL) is a no-op; hook_http_set copies body (NULL = empty). */
void hook_msg_free(hook_msg *m);
void hook_http_set(hook_http *h, int status, const char *content_type, const char *body);

/* Answer rendering (hooks.c). style: hook_adapter.markdown. The answer
 * text, then the sources as "[n] title" with a portal link
 * (PORTAL/#/doc/ID) when portal_url is non-empty. A result longer than
 * max_bytes (UTF-8 bytes; 0 = no limit) is cut on a character boundary
 * and ends with "…" plus the portal link. Caller frees with zk_free. */
enum { HOOK_PLAIN = 0, HOOK_MARKDOWN = 1, HOOK_MRKDWN = 2 };
typedef struct {
    int n;                    /* the answer's [n] marker */
    const char *title;
    const char *id;           /* document id for the portal link (the numeric id: external ids may hold '/') */
    char idbuf[24];           /* storage for id when it is the numeric id */
} hook_source;
char *hook_render(const char *answer, const hook_source *src, size_t nsrc, int style, size_t max_bytes,
                  const char *portal_url);

/* ---- helpers shared by adapters (hooks_util.c) ------------------------------ */
/* Constant-time compare of two NUL-terminated strings of equal length. */
int hook_ct_equal(const char *a, const char *b);
void hook_hex(const unsigned char *in, size_t n, char *out);   /* lowercase, out >= 2n+1 */
zk_rc hook_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char out[32]);
/* Base64 decode with the EVP_DecodeBlock padding caveat handled. */
zk_rc hook_b64decode(const char *in, unsigned char **out, size_t *out_len);
char *hook_b64encode(const unsigned char *in, size_t n);
/* HTTP POST of a JSON body with optional bearer/extra headers; returns the
 * status and the response body (caller frees). timeout in ms. */
zk_rc hook_http_post_json(const char *url, const char *bearer, const char *json, long timeout_ms, long *out_status,
                          char **out_body, char *err);
/* The same with a platform's own credential header (DingTalk's
 * x-acs-dingtalk-access-token) instead of a bearer token. */
zk_rc hook_http_post_json_header(const char *url, const char *header, const char *value, const char *json,
                                 long timeout_ms, long *out_status, char **out_body, char *err);
zk_rc hook_http_get(const char *url, long timeout_ms, long *out_status, char **out_body, char *err);

#endif
