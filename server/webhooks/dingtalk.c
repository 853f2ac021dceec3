/* dingtalk.c — the DingTalk (钉钉) enterprise-robot adapter, mounted at
 * /hooks/dingtalk: checks the `timestamp` + `sign` headers (HMAC-SHA256 of
 * "timestamp\nappSecret", 1-hour window) over nothing but the headers,
 * before the JSON body is parsed; turns the message into a hook_msg; replies
 * through the message's sessionWebhook, or the robot OpenAPI once that has
 * expired or failed. The sessionWebhook comes from the body, so only URLs on
 * https://oapi.dingtalk.com or on api_base's scheme+host+port are called
 * (SSRF guard; others fall back to the OpenAPI). Called by the hooks
 * pipeline on MHD connection threads (handle) and its worker pool (reply);
 * one request is a few hundred bytes. */
#include "server/webhooks/hooks.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <jansson.h>

#include "buf.h"

#define DT_WINDOW_MS 3600000LL          /* |now - timestamp| at most 1 hour (reference §2.1) */
#define DT_OFFICIAL_SESSION_HOST "oapi.dingtalk.com"
#define DT_TIMEOUT_MS 10000L
#define DT_TOKEN_MARGIN_S 300           /* the official SDK refreshes 5 min early */

typedef struct {
    char *app_key, *app_secret, *robot_code, *api_base;
    char api_scheme[16], api_host[256], api_port[8];   /* from api_base, for the sessionWebhook check */
    pthread_mutex_t mu;                 /* guards the cached OpenAPI token */
    char token[512];
    time_t token_expiry;
} dt_state;

zk_rc hook__dingtalk_verify(const char *app_secret, const char *timestamp, const char *sign, long long now_ms,
                            char *err);
int hook__dingtalk_url_allowed(hook_adapter *a, const char *url);
zk_rc hook__dingtalk_process(hook_adapter *a, const char *method, const char *timestamp, const char *sign,
                             const char *body, size_t len, long long now_ms, hook_http *http, hook_msg **out_msg,
                             char *err);

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- signature ------------------------------------------------------------- */

/* sign == Base64(HMAC-SHA256(appSecret, timestamp + "\n" + appSecret)) and the
 * timestamp (ms) within an hour of now. */
zk_rc hook__dingtalk_verify(const char *app_secret, const char *timestamp, const char *sign, long long now,
                            char *err)
{
    zk_rc rc = ZK_OK;
    char *msg = NULL, *want = NULL;
    if (!timestamp || !*timestamp || !sign || !*sign) return zk_fail(err, ZK_INVALID, "missing timestamp or sign header");
    size_t tl = strlen(timestamp);
    if (tl > 15) return zk_fail(err, ZK_INVALID, "bad timestamp");
    for (size_t i = 0; i < tl; i++)
        if (!isdigit((unsigned char)timestamp[i])) return zk_fail(err, ZK_INVALID, "bad timestamp");
    long long ts = strtoll(timestamp, NULL, 10);
    if (ts < now - DT_WINDOW_MS || ts > now + DT_WINDOW_MS)
        return zk_fail(err, ZK_INVALID, "timestamp outside the 1-hour window");

    size_t sl = strlen(app_secret), ml = tl + 1 + sl;
    unsigned char mac[32];
    if (!(msg = zk_malloc(ml + 1))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    memcpy(msg, timestamp, tl);
    msg[tl] = '\n';
    memcpy(msg + tl + 1, app_secret, sl);
    if ((rc = hook_hmac_sha256(app_secret, sl, msg, ml, mac)) != ZK_OK) { zk_fail(err, rc, "hmac failed"); goto out; }
    if (!(want = hook_b64encode(mac, sizeof mac))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    if (strlen(want) != strlen(sign) || !hook_ct_equal(want, sign)) rc = zk_fail(err, ZK_INVALID, "bad signature");
out:
    zk_free(msg);
    zk_free(want);
    return rc;
}

/* ---- sessionWebhook allow-list ------------------------------------------------ */

/* Split an absolute http(s) URL with curl's parser; 0 when it is not one, or
 * carries credentials. port comes back explicit ("443" for https). */
static int url_parts(const char *url, char *scheme, size_t ssz, char *host, size_t hsz, char *port, size_t psz)
{
    int ok = 0;
    CURLU *u = curl_url();
    char *s = NULL, *h = NULL, *p = NULL, *user = NULL;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) goto out;
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) goto out;   /* user@host: refuse */
    if (curl_url_get(u, CURLUPART_SCHEME, &s, 0) != CURLUE_OK || curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) != CURLUE_OK)
        goto out;
    if (strcasecmp(s, "http") && strcasecmp(s, "https")) goto out;
    if (strlen(s) >= ssz || strlen(h) >= hsz || strlen(p) >= psz) goto out;
    for (char *c = s; *c; c++) *c = (char)tolower((unsigned char)*c);
    for (char *c = h; *c; c++) *c = (char)tolower((unsigned char)*c);
    strcpy(scheme, s);
    strcpy(host, h);
    strcpy(port, p);
    ok = 1;
out:
    curl_free(s);
    curl_free(h);
    curl_free(p);
    curl_free(user);
    curl_url_cleanup(u);
    return ok;
}

/* SSRF guard: the sessionWebhook comes from the request body, so only
 * https://oapi.dingtalk.com (the host DingTalk issues them on) or the
 * scheme+host+port of the configured api_base (tests, proxies) are called. */
int hook__dingtalk_url_allowed(hook_adapter *a, const char *url)
{
    dt_state *st = a->state;
    char scheme[16], host[256], port[8];
    if (!url || !*url || !url_parts(url, scheme, sizeof scheme, host, sizeof host, port, sizeof port)) return 0;
    if (!strcmp(scheme, "https") && !strcmp(host, DT_OFFICIAL_SESSION_HOST) && !strcmp(port, "443")) return 1;
    return st->api_host[0] && !strcmp(scheme, st->api_scheme) && !strcmp(host, st->api_host) &&
           !strcmp(port, st->api_port);
}

/* ---- inbound ------------------------------------------------------------------- */

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Trim, and in groups drop leading "@name" tokens DingTalk left in place. */
static char *clean_text(const char *s, int group)
{
    for (;;) {
        while (*s && isspace((unsigned char)*s)) s++;
        if (!group || *s != '@') break;
        while (*s && !isspace((unsigned char)*s)) s++;
    }
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) n--;
    return zk_strndup(s, n);
}

static void set_json(hook_http *http, int status, const char *body)
{
    hook_http_set(http, status, "application/json; charset=utf-8", body);
}

/* The whole inbound path with plain inputs (unit-testable without MHD). */
zk_rc hook__dingtalk_process(hook_adapter *a, const char *method, const char *timestamp, const char *sign,
                             const char *body, size_t len, long long now, hook_http *http, hook_msg **out_msg,
                             char *err)
{
    dt_state *st = a->state;
    json_t *root = NULL;
    hook_msg *m = NULL;
    zk_rc rc;
    *out_msg = NULL;
    if (!method || strcmp(method, "POST")) {
        set_json(http, 405, "{\"error\":\"POST only\"}");
        return zk_fail(err, ZK_INVALID, "method not allowed");
    }
    if ((rc = hook__dingtalk_verify(st->app_secret, timestamp, sign, now, err)) != ZK_OK) {
        set_json(http, 401, "{\"error\":\"bad signature\"}");
        return rc;
    }
    json_error_t je;
    root = json_loadb(body ? body : "", len, 0, &je);
    if (!json_is_object(root)) {
        set_json(http, 400, "{\"error\":\"malformed JSON\"}");
        rc = zk_fail(err, ZK_PARSE, "malformed JSON: %s", je.text);
        goto out;
    }
    const char *msgtype = jstr(root, "msgtype");
    json_t *text = json_object_get(root, "text");
    const char *content = jstr(text, "content");
    const char *msg_id = jstr(root, "msgId"), *staff = jstr(root, "senderStaffId");
    const char *conv = jstr(root, "conversationId"), *ctype = jstr(root, "conversationType");
    const char *hook_url = jstr(root, "sessionWebhook"), *robot = jstr(root, "robotCode");
    if (!msg_id || !*msg_id || !staff || !*staff) {
        set_json(http, 400, "{\"error\":\"msgId and senderStaffId required\"}");
        rc = zk_fail(err, ZK_PARSE, "msgId and senderStaffId required");
        goto out;
    }
    if ((msgtype && strcmp(msgtype, "text")) || !content) {   /* pictures, files...: acknowledged, ignored */
        set_json(http, 200, "{}");
        rc = ZK_OK;
        goto out;
    }
    if (strlen(msg_id) >= sizeof m->event_id || strlen(staff) >= sizeof m->sender ||
        (conv && strlen(conv) >= sizeof m->chat)) {
        set_json(http, 400, "{\"error\":\"field too long\"}");
        rc = zk_fail(err, ZK_PARSE, "field too long");
        goto out;
    }
    if (!(m = zk_calloc(1, sizeof *m))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    snprintf(m->platform, sizeof m->platform, "dingtalk");
    snprintf(m->event_id, sizeof m->event_id, "%s", msg_id);
    snprintf(m->sender, sizeof m->sender, "%s", staff);
    snprintf(m->chat, sizeof m->chat, "%s", conv ? conv : "");
    m->is_group = ctype && !strcmp(ctype, "2");
    if (!(m->text = clean_text(content, m->is_group))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    /* reply_to = "EXPIRY_MS\tROBOT_CODE\tSESSION_WEBHOOK"; the URL is left
     * empty when the allow-list refuses it (the OpenAPI is used instead). */
    json_t *exp = json_object_get(root, "sessionWebhookExpiredTime");
    long long expiry = json_is_integer(exp) ? (long long)json_integer_value(exp)
                       : json_is_string(exp) ? strtoll(json_string_value(exp), NULL, 10) : 0;
    if (hook_url && *hook_url && !hook__dingtalk_url_allowed(a, hook_url)) {
        ZK_LOG(ZK_LOG_WARN, "dingtalk: sessionWebhook on a host not allowed, ignored (message %s)", msg_id);
        hook_url = NULL;
    }
    if (robot && strchr(robot, '\t')) robot = NULL;
    int n = snprintf(m->reply_to, sizeof m->reply_to, "%lld\t%s\t%s", expiry, robot ? robot : "",
                     hook_url ? hook_url : "");
    if (n < 0 || (size_t)n >= sizeof m->reply_to)
        snprintf(m->reply_to, sizeof m->reply_to, "0\t%s\t", robot && strlen(robot) < 256 ? robot : "");
    set_json(http, 200, "{}");
    *out_msg = m;
    m = NULL;
    rc = ZK_OK;
out:
    if (m) hook_msg_free(m);
    json_decref(root);
    return rc;
}

/* Rejections (4xx) are answered and logged, not errors of the server
 * (the WeCom adapter's convention); anything else becomes a 500. */
static zk_rc dt_handle(hook_adapter *a, srv_req *r, hook_http *http, hook_msg **out_msg, char *err)
{
    zk_rc rc = hook__dingtalk_process(a, r->method, srv_header(r, "timestamp"), srv_header(r, "sign"), r->body.data,
                                      r->body.len, now_ms(), http, out_msg, err);
    if (rc != ZK_OK && http->status >= 400 && http->status < 500) {
        ZK_LOG(ZK_LOG_WARN, "dingtalk: rejected a callback (HTTP %d): %s", http->status, err);
        rc = ZK_OK;
    } else if (rc != ZK_OK && !http->status) {
        set_json(http, 500, "{\"error\":\"internal error\"}");
    }
    return rc;
}

/* ---- replies --------------------------------------------------------------------- */

/* Title for the markdown card: the question cut to ~60 bytes on a UTF-8 boundary. */
static void make_title(const char *q, char *out, size_t n)
{
    if (!q || !*q) q = "zhiku";
    size_t l = strlen(q);
    if (l > 60) {
        l = 60;
        while (l && ((unsigned char)q[l] & 0xC0) == 0x80) l--;
    }
    if (l >= n) l = n - 1;
    memcpy(out, q, l);
    out[l] = '\0';
}

/* Cached OpenAPI access token (copied into out under the mutex). */
static zk_rc get_token(dt_state *st, int force, char *out, size_t n, char *err)
{
    zk_rc rc = ZK_OK;
    char url[1100], *resp = NULL, *req = NULL;
    json_t *body = NULL, *j = NULL;
    long status = 0;
    pthread_mutex_lock(&st->mu);
    if (!force && st->token[0] && time(NULL) < st->token_expiry) goto done;
    snprintf(url, sizeof url, "%.1000s/v1.0/oauth2/accessToken", st->api_base);
    body = json_pack("{s:s, s:s}", "appKey", st->app_key, "appSecret", st->app_secret);
    if (!body || !(req = json_dumps(body, JSON_COMPACT))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto done; }
    if ((rc = hook_http_post_json(url, NULL, req, DT_TIMEOUT_MS, &status, &resp, err)) != ZK_OK) goto done;
    j = resp ? json_loads(resp, 0, NULL) : NULL;
    const char *tok = jstr(j, "accessToken");
    json_t *ei = json_object_get(j, "expireIn");
    if (status != 200 || !tok || strlen(tok) >= sizeof st->token) {
        rc = zk_fail(err, ZK_IO, "dingtalk accessToken: HTTP %ld", status);
        goto done;
    }
    long long life = json_is_integer(ei) ? (long long)json_integer_value(ei) : 7200;
    snprintf(st->token, sizeof st->token, "%s", tok);
    st->token_expiry = time(NULL) + (time_t)(life > 2 * DT_TOKEN_MARGIN_S ? life - DT_TOKEN_MARGIN_S : life / 2);
done:
    if (rc == ZK_OK) snprintf(out, n, "%s", st->token);
    pthread_mutex_unlock(&st->mu);
    json_decref(body);
    json_decref(j);
    free(req);
    zk_free(resp);
    return rc;
}

/* Robot OpenAPI: group → groupMessages/send (openConversationId), single
 * chat → oToMessages/batchSend (userIds). Retried once with a fresh token. */
static zk_rc send_openapi(dt_state *st, const hook_msg *m, const char *robot, const char *title, const char *text,
                          char *err)
{
    zk_rc rc;
    char url[1100], token[512], *req = NULL, *param = NULL, *resp = NULL;
    json_t *pj = json_pack("{s:s, s:s}", "title", title, "text", text), *body = NULL;
    long status = 0;
    if (!pj || !(param = json_dumps(pj, JSON_COMPACT))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    if (m->is_group) {
        snprintf(url, sizeof url, "%.1000s/v1.0/robot/groupMessages/send", st->api_base);
        body = json_pack("{s:s, s:s, s:s, s:s}", "msgKey", "sampleMarkdown", "msgParam", param,
                         "openConversationId", m->chat, "robotCode", robot);
    } else {
        snprintf(url, sizeof url, "%.1000s/v1.0/robot/oToMessages/batchSend", st->api_base);
        body = json_pack("{s:s, s:s, s:[s], s:s}", "msgKey", "sampleMarkdown", "msgParam", param, "userIds",
                         m->sender, "robotCode", robot);
    }
    if (!body || !(req = json_dumps(body, JSON_COMPACT))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    for (int attempt = 0; attempt < 2; attempt++) {
        if ((rc = get_token(st, attempt > 0, token, sizeof token, err)) != ZK_OK) goto out;
        zk_free(resp);
        resp = NULL;
        if ((rc = hook_http_post_json_header(url, "x-acs-dingtalk-access-token", token, req,
                                              DT_TIMEOUT_MS, &status, &resp, err)) != ZK_OK) goto out;
        if (status == 200) goto out;
        rc = zk_fail(err, ZK_IO, "dingtalk robot send: HTTP %ld", status);
        if (status != 401 && status != 403) goto out;
    }
out:
    json_decref(pj);
    json_decref(body);
    free(param);
    free(req);
    zk_free(resp);
    return rc;
}

static zk_rc dt_reply(hook_adapter *a, const hook_msg *m, const hook_reply *rep, char *err)
{
    dt_state *st = a->state;
    zk_rc rc = ZK_OK;
    char title[64], robot[256] = "", url[2048] = "", *req = NULL, *resp = NULL;
    json_t *body = NULL, *j = NULL;
    long long expiry = 0;
    const char *text = rep && rep->text ? rep->text : "";
    make_title(rep ? rep->question : NULL, title, sizeof title);

    /* unpack reply_to (see hook__dingtalk_process) */
    const char *t1 = strchr(m->reply_to, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
    if (t1 && t2) {
        expiry = strtoll(m->reply_to, NULL, 10);
        snprintf(robot, sizeof robot, "%.*s", (int)ZK_MIN((size_t)(t2 - t1 - 1), sizeof robot - 1), t1 + 1);
        snprintf(url, sizeof url, "%s", t2 + 1);
    }
    if (!robot[0]) snprintf(robot, sizeof robot, "%s", st->robot_code);

    int session_ok = url[0] && (!expiry || now_ms() < expiry - 5000) && hook__dingtalk_url_allowed(a, url);
    if (session_ok) {
        long status = 0;
        body = m->is_group ? json_pack("{s:s, s:{s:s, s:s}, s:{s:[s]}}", "msgtype", "markdown", "markdown", "title",
                                       title, "text", text, "at", "atUserIds", m->sender)
                           : json_pack("{s:s, s:{s:s, s:s}}", "msgtype", "markdown", "markdown", "title", title,
                                       "text", text);
        if (!body || !(req = json_dumps(body, JSON_COMPACT))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
        rc = hook_http_post_json(url, NULL, req, DT_TIMEOUT_MS, &status, &resp, err);
        if (rc == ZK_OK) {
            j = resp ? json_loads(resp, 0, NULL) : NULL;
            json_t *ec = json_object_get(j, "errcode");
            if (status == 200 && (!ec || (json_is_integer(ec) && json_integer_value(ec) == 0))) goto out;
            rc = zk_fail(err, ZK_IO, "dingtalk sessionWebhook: HTTP %ld errcode %lld", status,
                         json_is_integer(ec) ? (long long)json_integer_value(ec) : -1LL);
        }
        ZK_LOG(ZK_LOG_WARN, "%s; trying the robot OpenAPI", err);
    }
    if (!robot[0] || (m->is_group && !m->chat[0])) {
        rc = zk_fail(err, ZK_INVALID, "dingtalk: sessionWebhook expired or refused and no robotCode/conversation to "
                                      "fall back on");
        ZK_LOG(ZK_LOG_ERROR, "%s", err);
        goto out;
    }
    rc = send_openapi(st, m, robot, title, text, err);
out:
    json_decref(body);
    json_decref(j);
    free(req);
    zk_free(resp);
    return rc;
}

/* ---- construction ---------------------------------------------------------------- */

static void dt_free(hook_adapter *a)
{
    if (!a) return;
    dt_state *st = a->state;
    if (st) {
        zk_free(st->app_key);
        zk_free(st->app_secret);
        zk_free(st->robot_code);
        zk_free(st->api_base);
        pthread_mutex_destroy(&st->mu);
        zk_free(st);
    }
    zk_free(a);
}

zk_rc hook_dingtalk_new(const zk_config *cfg, hook_adapter **out, char *err)
{
    const char *sec = "webhook.dingtalk";
    const char *key = zk_config_get(cfg, sec, "app_key"), *secret = zk_config_get(cfg, sec, "app_secret");
    const char *robot = zk_config_get(cfg, sec, "robot_code"), *base = zk_config_get(cfg, sec, "api_base");
    hook_adapter *a = NULL;
    dt_state *st = NULL;
    *out = NULL;
    if ((!key || !*key) && (!secret || !*secret)) return ZK_OK;   /* section absent: disabled */
    if (!key || !*key || !secret || !*secret)
        return zk_fail(err, ZK_CONFIG, "[webhook.dingtalk] needs both app_key and app_secret");
    if (!base || !*base) base = "https://api.dingtalk.com";
    size_t bl = strlen(base);
    if (bl > 1000) return zk_fail(err, ZK_CONFIG, "[webhook.dingtalk] api_base too long");
    while (bl && base[bl - 1] == '/') bl--;
    if (!(a = zk_calloc(1, sizeof *a)) || !(st = zk_calloc(1, sizeof *st))) goto nomem;
    a->state = st;
    pthread_mutex_init(&st->mu, NULL);
    if (!(st->app_key = zk_strdup(key)) || !(st->app_secret = zk_strdup(secret)) ||
        !(st->robot_code = zk_strdup(robot && *robot ? robot : key)) || !(st->api_base = zk_strndup(base, bl)))
        goto nomem;
    if (!url_parts(st->api_base, st->api_scheme, sizeof st->api_scheme, st->api_host, sizeof st->api_host,
                   st->api_port, sizeof st->api_port)) {
        dt_free(a);
        return zk_fail(err, ZK_CONFIG, "[webhook.dingtalk] api_base is not an http(s) URL");
    }
    a->name = "dingtalk";
    a->max_reply_chars = 4000;
    a->markdown = HOOK_MARKDOWN;
    a->handle = dt_handle;
    a->reply = dt_reply;
    a->free = dt_free;
    *out = a;
    return ZK_OK;
nomem:
    if (a && !a->state) zk_free(st);
    dt_free(a);
    return zk_fail(err, ZK_NOMEM, "out of memory");
}
