/* generic.c — the generic signed webhook, POST /hooks/generic: for in-house
 * bots and scripts that want an answer in the HTTP response. The caller
 * signs the raw body: X-Zhiku-Timestamp (unix seconds, 5-minute window) and
 * X-Zhiku-Signature = lowercase hex HMAC-SHA256([webhook.generic] secret,
 * timestamp "." body). The body is {"user","question","kb"?,"id"?}; the
 * pipeline (hooks.c) answers synchronously in the /api/v1/ask shape.
 * Called on connection threads; stateless after construction. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "server/webhooks/hooks_int.h"

#define GENERIC_MAX_QUESTION 8000

typedef struct {
    char *secret;
} generic_state;

static int all_digits(const char *s)
{
    if (!s || !*s || strlen(s) > 12) return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

zk_rc hook__generic_verify(const char *secret, const char *ts, const char *sig, const char *body, size_t len,
                           time_t now, char *err)
{
    unsigned char mac[32];
    char want[65], got[65];
    zk_rc rc = ZK_OK;
    char *msg = NULL;
    if (!ts || !sig) return zk_fail(err, ZK_INVALID, "missing X-Zhiku-Timestamp or X-Zhiku-Signature");
    if (!all_digits(ts)) return zk_fail(err, ZK_INVALID, "X-Zhiku-Timestamp must be unix seconds");
    long long t = strtoll(ts, NULL, 10);
    if (llabs((long long)now - t) > HOOK_REPLAY_WINDOW_S)
        return zk_fail(err, ZK_INVALID, "X-Zhiku-Timestamp outside the %d-second window", HOOK_REPLAY_WINDOW_S);
    if (strlen(sig) != 64) return zk_fail(err, ZK_INVALID, "bad signature");
    for (int i = 0; i < 64; i++) got[i] = (char)tolower((unsigned char)sig[i]);
    got[64] = '\0';
    size_t tl = strlen(ts);
    if (!(msg = zk_malloc(tl + 1 + len + 1))) return zk_fail(err, ZK_NOMEM, "out of memory");
    memcpy(msg, ts, tl);
    msg[tl] = '.';
    if (len) memcpy(msg + tl + 1, body, len);
    if ((rc = hook_hmac_sha256(secret, strlen(secret), msg, tl + 1 + len, mac)) != ZK_OK) {
        zk_fail(err, rc, "HMAC failed");
        goto out;
    }
    hook_hex(mac, 32, want);
    if (!hook_ct_equal(want, got)) rc = zk_fail(err, ZK_INVALID, "bad signature");
out:
    zk_free(msg);
    return rc;
}

zk_rc hook__generic_parse(const char *body, size_t len, hook_msg **out_msg, char *err)
{
    json_error_t je;
    zk_rc rc = ZK_OK;
    hook_msg *m = NULL;
    *out_msg = NULL;
    json_t *j = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    if (!j || !json_is_object(j)) {
        rc = zk_fail(err, ZK_PARSE, "expected a JSON object: %s", j ? "not an object" : je.text);
        goto out;
    }
    const char *user = json_string_value(json_object_get(j, "user"));
    const char *q = json_string_value(json_object_get(j, "question"));
    json_t *kbj = json_object_get(j, "kb"), *idj = json_object_get(j, "id");
    const char *kb = json_string_value(kbj), *id = json_string_value(idj);
    if (!user || !*user || strlen(user) > 255) {
        rc = zk_fail(err, ZK_INVALID, "\"user\" must be a string of 1-255 bytes");
        goto out;
    }
    if (!q || !*q || strlen(q) > GENERIC_MAX_QUESTION) {
        rc = zk_fail(err, ZK_INVALID, "\"question\" must be a non-empty string of at most %d bytes", GENERIC_MAX_QUESTION);
        goto out;
    }
    if ((kbj && !json_is_null(kbj) && (!kb || strlen(kb) > 127)) || (idj && !json_is_null(idj) && (!id || strlen(id) > 255))) {
        rc = zk_fail(err, ZK_INVALID, "\"kb\" and \"id\" must be short strings");
        goto out;
    }
    if (!(m = zk_calloc(1, sizeof *m)) || !(m->text = zk_strdup(q))) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    snprintf(m->platform, sizeof m->platform, "generic");
    snprintf(m->sender, sizeof m->sender, "%s", user);
    snprintf(m->event_id, sizeof m->event_id, "%s", id ? id : "");
    snprintf(m->reply_to, sizeof m->reply_to, "%s", kb ? kb : "");   /* the knowledge base to ask */
    m->sync = 1;
    *out_msg = m;
    m = NULL;
out:
    hook_msg_free(m);
    json_decref(j);
    return rc;
}

static void set_error(hook_http *http, int status, const char *code, const char *msg)
{
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    hook_http_set(http, status, "application/json; charset=utf-8", text ? text : "{}");
    free(text);
    json_decref(o);
}

static zk_rc generic_handle(hook_adapter *a, srv_req *r, hook_http *http, hook_msg **out_msg, char *err)
{
    generic_state *g = a->state;
    zk_rc rc;
    *out_msg = NULL;
    if (strcmp(r->method, "POST")) {
        set_error(http, 405, "method_not_allowed", "POST a signed JSON body");
        return zk_fail(err, ZK_INVALID, "%s is not allowed", r->method);
    }
    if ((rc = hook__generic_verify(g->secret, srv_header(r, "X-Zhiku-Timestamp"), srv_header(r, "X-Zhiku-Signature"),
                                   r->body.data, r->body.len, time(NULL), err)) != ZK_OK) {
        set_error(http, 401, "unauthorized", err);
        return rc;
    }
    if ((rc = hook__generic_parse(r->body.data, r->body.len, out_msg, err)) != ZK_OK) {
        set_error(http, rc == ZK_NOMEM ? 500 : 400, rc == ZK_NOMEM ? "internal" : "bad_request", err);
        return rc;
    }
    hook_http_set(http, 200, "application/json; charset=utf-8", NULL);   /* the pipeline fills the answer */
    return ZK_OK;
}

static zk_rc generic_reply(hook_adapter *a, const hook_msg *m, const hook_reply *rep, char *err)
{
    (void)a;
    (void)m;
    (void)rep;
    return zk_fail(err, ZK_UNSUPPORTED, "the generic webhook answers in its HTTP response");
}

static void generic_free(hook_adapter *a)
{
    if (!a) return;
    generic_state *g = a->state;
    if (g) {
        if (g->secret) OPENSSL_cleanse(g->secret, strlen(g->secret));
        zk_free(g->secret);
        zk_free(g);
    }
    zk_free(a);
}

zk_rc hook_generic_new(const zk_config *cfg, hook_adapter **out, char *err)
{
    *out = NULL;
    const char *secret = zk_config_get(cfg, "webhook.generic", "secret");
    if (!secret || !*secret) return ZK_OK;   /* disabled */
    if (strlen(secret) < 16) return zk_fail(err, ZK_CONFIG, "[webhook.generic] secret must be at least 16 characters");
    hook_adapter *a = zk_calloc(1, sizeof *a);
    generic_state *g = zk_calloc(1, sizeof *g);
    if (!a || !g || !(g->secret = zk_strdup(secret))) {
        zk_free(a);
        if (g) zk_free(g->secret);
        zk_free(g);
        return zk_fail(err, ZK_NOMEM, "out of memory");
    }
    a->name = "generic";
    a->max_reply_chars = 0;
    a->markdown = HOOK_MARKDOWN;
    a->handle = generic_handle;
    a->reply = generic_reply;
    a->free = generic_free;
    a->state = g;
    *out = a;
    return ZK_OK;
}
