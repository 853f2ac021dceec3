/* slack.c — the Slack adapter, /hooks/slack (Events API over HTTP): v0
 * request signatures with a 5-minute replay window, url_verification,
 * app_mention and direct-message events (bots' own messages ignored to
 * avoid loops), and replies through chat.postMessage with the bot token,
 * in the thread of the question. Retried deliveries (X-Slack-Retry-Num)
 * are acknowledged and deduplicated on event_id by the pipeline. Requests
 * run on connection threads, replies on webhook workers; stateless. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "server/webhooks/hooks_int.h"

#define SLACK_MAX_REPLY 3900      /* chat.postMessage: keep under ~4000 characters */
#define SLACK_TIMEOUT_MS 10000

typedef struct {
    char *signing_secret, *bot_token, *api_base;
} slack_state;

zk_rc hook__slack_verify(const char *secret, const char *ts, const char *sig, const char *body, size_t len,
                         time_t now, char *err)
{
    unsigned char mac[32];
    char want[3 + 65];
    zk_rc rc = ZK_OK;
    if (!ts || !sig) return zk_fail(err, ZK_INVALID, "missing X-Slack-Request-Timestamp or X-Slack-Signature");
    size_t tl = strlen(ts);
    if (!tl || tl > 12) return zk_fail(err, ZK_INVALID, "bad X-Slack-Request-Timestamp");
    for (size_t i = 0; i < tl; i++)
        if (!isdigit((unsigned char)ts[i])) return zk_fail(err, ZK_INVALID, "bad X-Slack-Request-Timestamp");
    if (llabs((long long)now - strtoll(ts, NULL, 10)) > HOOK_REPLAY_WINDOW_S)
        return zk_fail(err, ZK_INVALID, "X-Slack-Request-Timestamp outside the %d-second window", HOOK_REPLAY_WINDOW_S);
    char *base = zk_malloc(3 + tl + 1 + len + 1);
    if (!base) return zk_fail(err, ZK_NOMEM, "out of memory");
    memcpy(base, "v0:", 3);
    memcpy(base + 3, ts, tl);
    base[3 + tl] = ':';
    if (len) memcpy(base + 4 + tl, body, len);
    if ((rc = hook_hmac_sha256(secret, strlen(secret), base, 4 + tl + len, mac)) != ZK_OK) {
        zk_fail(err, rc, "HMAC failed");
        goto out;
    }
    memcpy(want, "v0=", 3);
    hook_hex(mac, 32, want + 3);
    if (!hook_ct_equal(want, sig)) rc = zk_fail(err, ZK_INVALID, "bad signature");
out:
    zk_free(base);
    return rc;
}

/* Slack escapes &, < and > in message text as entities. */
static void unescape_entities(char *s)
{
    char *w = s;
    for (const char *p = s; *p;) {
        if (!strncmp(p, "&amp;", 5)) *w++ = '&', p += 5;
        else if (!strncmp(p, "&lt;", 4)) *w++ = '<', p += 4;
        else if (!strncmp(p, "&gt;", 4)) *w++ = '>', p += 4;
        else *w++ = *p++;
    }
    *w = '\0';
}

void hook__strip_mentions(char *text)
{
    char *w = text;
    for (const char *p = text; *p;) {
        if (p[0] == '<' && p[1] == '@') {
            const char *e = strchr(p, '>');
            if (e) {
                p = e + 1;
                continue;
            }
        }
        *w++ = *p++;
    }
    *w = '\0';
    /* trim */
    char *s = text;
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) n--;
    memmove(text, s, n);
    text[n] = '\0';
}

zk_rc hook__slack_parse(const char *body, size_t len, hook_http *http, hook_msg **out_msg, char *err)
{
    json_error_t je;
    zk_rc rc = ZK_OK;
    hook_msg *m = NULL;
    *out_msg = NULL;
    json_t *j = json_loadb(body ? body : "", len, 0, &je);
    if (!j || !json_is_object(j)) {
        hook_http_set(http, 400, "text/plain; charset=utf-8", "expected a JSON event");
        rc = zk_fail(err, ZK_PARSE, "Slack event: %s", j ? "not an object" : je.text);
        goto out;
    }
    const char *type = json_string_value(json_object_get(j, "type"));
    if (type && !strcmp(type, "url_verification")) {
        const char *ch = json_string_value(json_object_get(j, "challenge"));
        if (!ch) {
            hook_http_set(http, 400, "text/plain; charset=utf-8", "no challenge");
            rc = zk_fail(err, ZK_PARSE, "url_verification without a challenge");
            goto out;
        }
        hook_http_set(http, 200, "text/plain; charset=utf-8", ch);
        goto out;
    }
    hook_http_set(http, 200, "text/plain; charset=utf-8", NULL);   /* ack everything else */
    if (!type || strcmp(type, "event_callback")) goto out;
    json_t *ev = json_object_get(j, "event");
    const char *etype = json_string_value(json_object_get(ev, "type"));
    const char *ctype = json_string_value(json_object_get(ev, "channel_type"));
    const char *user = json_string_value(json_object_get(ev, "user"));
    const char *text = json_string_value(json_object_get(ev, "text"));
    const char *channel = json_string_value(json_object_get(ev, "channel"));
    const char *ts = json_string_value(json_object_get(ev, "ts"));
    const char *thread = json_string_value(json_object_get(ev, "thread_ts"));
    const char *event_id = json_string_value(json_object_get(j, "event_id"));
    if (!etype) goto out;
    int mention = !strcmp(etype, "app_mention");
    int dm = !strcmp(etype, "message") && ctype && !strcmp(ctype, "im");
    if (!mention && !dm) goto out;
    /* the bot's own posts and edits/joins/etc. would loop or make no sense */
    if (json_object_get(ev, "bot_id") || json_object_get(ev, "subtype") || json_object_get(ev, "bot_profile")) goto out;
    if (!user || !*user || !channel || !*channel || !text || !event_id || !*event_id) goto out;
    if (!(m = zk_calloc(1, sizeof *m)) || !(m->text = zk_strdup(text))) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    hook__strip_mentions(m->text);
    unescape_entities(m->text);
    snprintf(m->platform, sizeof m->platform, "slack");
    snprintf(m->event_id, sizeof m->event_id, "%s", event_id);
    snprintf(m->sender, sizeof m->sender, "%s", user);
    snprintf(m->chat, sizeof m->chat, "%s", channel);
    /* answer in the question's thread (a channel mention starts one; DMs stay flat) */
    snprintf(m->reply_to, sizeof m->reply_to, "%s", thread ? thread : (mention && ts ? ts : ""));
    m->is_group = !dm;
    *out_msg = m;
    m = NULL;
out:
    hook_msg_free(m);
    json_decref(j);
    return rc;
}

static zk_rc slack_handle(hook_adapter *a, srv_req *r, hook_http *http, hook_msg **out_msg, char *err)
{
    slack_state *sl = a->state;
    zk_rc rc;
    *out_msg = NULL;
    if (strcmp(r->method, "POST")) {
        hook_http_set(http, 405, "text/plain; charset=utf-8", "POST Slack events here");
        return zk_fail(err, ZK_INVALID, "%s is not allowed", r->method);
    }
    if ((rc = hook__slack_verify(sl->signing_secret, srv_header(r, "X-Slack-Request-Timestamp"),
                                 srv_header(r, "X-Slack-Signature"), r->body.data, r->body.len, time(NULL), err)) !=
        ZK_OK) {
        hook_http_set(http, 401, "text/plain; charset=utf-8", "invalid request signature");
        return rc;
    }
    return hook__slack_parse(r->body.data, r->body.len, http, out_msg, err);
}

static zk_rc slack_reply(hook_adapter *a, const hook_msg *m, const hook_reply *rep, char *err)
{
    slack_state *sl = a->state;
    zk_rc rc = ZK_OK;
    char url[2048], *payload = NULL, *resp = NULL;
    long status = 0;
    json_t *j = json_pack("{s:s,s:s,s:b,s:b}", "channel", m->chat, "text", rep->text ? rep->text : "", "unfurl_links", 0,
                          "unfurl_media", 0);
    if (j && m->reply_to[0]) json_object_set_new(j, "thread_ts", json_string(m->reply_to));
    if (!j || !(payload = json_dumps(j, JSON_COMPACT))) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    snprintf(url, sizeof url, "%s/chat.postMessage", sl->api_base);
    if ((rc = hook_http_post_json(url, sl->bot_token, payload, SLACK_TIMEOUT_MS, &status, &resp, err)) != ZK_OK) goto out;
    json_t *rj = resp ? json_loads(resp, 0, NULL) : NULL;
    if (status != 200 || !json_is_true(json_object_get(rj, "ok"))) {
        const char *e = json_string_value(json_object_get(rj, "error"));
        rc = zk_fail(err, ZK_IO, "chat.postMessage: HTTP %ld, %s", status, e ? e : "no ok:true");
    }
    json_decref(rj);
out:
    free(payload);
    zk_free(resp);
    json_decref(j);
    return rc;
}

static void slack_free(hook_adapter *a)
{
    if (!a) return;
    slack_state *sl = a->state;
    if (sl) {
        if (sl->signing_secret) OPENSSL_cleanse(sl->signing_secret, strlen(sl->signing_secret));
        if (sl->bot_token) OPENSSL_cleanse(sl->bot_token, strlen(sl->bot_token));
        zk_free(sl->signing_secret);
        zk_free(sl->bot_token);
        zk_free(sl->api_base);
        zk_free(sl);
    }
    zk_free(a);
}

zk_rc hook_slack_new(const zk_config *cfg, hook_adapter **out, char *err)
{
    *out = NULL;
    const char *secret = zk_config_get(cfg, "webhook.slack", "signing_secret");
    const char *token = zk_config_get(cfg, "webhook.slack", "bot_token");
    const char *base = zk_config_get(cfg, "webhook.slack", "api_base");
    if (!secret || !*secret) return ZK_OK;   /* disabled */
    if (!token || !*token) return zk_fail(err, ZK_CONFIG, "[webhook.slack] bot_token is required with signing_secret");
    if (!base || strncmp(base, "http", 4)) return zk_fail(err, ZK_CONFIG, "[webhook.slack] api_base must be an http(s) URL");
    hook_adapter *a = zk_calloc(1, sizeof *a);
    slack_state *sl = zk_calloc(1, sizeof *sl);
    if (!a || !sl) goto oom;
    a->state = sl;
    a->free = slack_free;
    if (!(sl->signing_secret = zk_strdup(secret)) || !(sl->bot_token = zk_strdup(token)) ||
        !(sl->api_base = zk_strdup(base)))
        goto oom;
    size_t n = strlen(sl->api_base);
    while (n && sl->api_base[n - 1] == '/') sl->api_base[--n] = '\0';
    a->name = "slack";
    a->max_reply_chars = SLACK_MAX_REPLY;
    a->markdown = HOOK_MRKDWN;
    a->handle = slack_handle;
    a->reply = slack_reply;
    *out = a;
    return ZK_OK;
oom:
    if (a) slack_free(a);
    else zk_free(sl);
    return zk_fail(err, ZK_NOMEM, "out of memory");
}
