/* feishu.c — the Feishu/Lark (飞书) event-subscription adapter, mounted at
 * /hooks/feishu: checks X-Lark-Signature (SHA-256 of timestamp + nonce +
 * encrypt_key + raw body) over the raw bytes, decrypts the {"encrypt"}
 * envelope (AES-256-CBC, key SHA-256(encrypt_key), IV = first 16 bytes),
 * checks the verification token, answers url_verification, and turns
 * im.message.receive_v1 text messages into hook_msgs; replies through
 * im/v1/messages/{id}/reply with a cached tenant_access_token. Called by the
 * hooks pipeline on MHD threads (handle) and its workers (reply). */
#include "server/webhooks/hooks.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "buf.h"

#define FS_WINDOW_S 3600LL        /* signed timestamps further off are refused (reference §3.1.6: [U]) */
#define FS_TIMEOUT_MS 10000L
#define FS_MAX_CIPHER (4u << 20)  /* decoded envelope at most 4 MiB */

typedef struct {
    char *app_id, *app_secret, *verification_token, *encrypt_key, *api_base;
    pthread_mutex_t mu;           /* guards the cached tenant token */
    char token[4096];             /* JWT-style tokens can be long (reference §3.4) */
    time_t token_refresh;         /* fetch a new one from this time on */
} fs_state;

zk_rc hook__feishu_signature(const char *timestamp, const char *nonce, const char *encrypt_key, const char *body,
                             size_t len, char out[65]);
zk_rc hook__feishu_decrypt(const char *encrypt_key, const char *b64, char **out, size_t *out_len, char *err);
zk_rc hook__feishu_process(hook_adapter *a, const char *method, const char *timestamp, const char *nonce,
                           const char *signature, const char *body, size_t len, long long now_s, hook_http *http,
                           hook_msg **out_msg, char *err);

/* ---- crypto ------------------------------------------------------------------- */

/* hex(SHA-256(timestamp + nonce + encrypt_key + body)) — plain SHA-256, not HMAC. */
zk_rc hook__feishu_signature(const char *timestamp, const char *nonce, const char *encrypt_key, const char *body,
                             size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdl = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(c, timestamp, strlen(timestamp)) && EVP_DigestUpdate(c, nonce, strlen(nonce)) &&
             EVP_DigestUpdate(c, encrypt_key, strlen(encrypt_key)) && EVP_DigestUpdate(c, body, len) &&
             EVP_DigestFinal_ex(c, md, &mdl) && mdl == 32;
    EVP_MD_CTX_free(c);
    if (!ok) return ZK_ERR;
    hook_hex(md, 32, out);
    return ZK_OK;
}

/* Base64 → IV (16) + ciphertext → AES-256-CBC with PKCS#7 (16). *out is
 * NUL-terminated, caller frees with zk_free. */
zk_rc hook__feishu_decrypt(const char *encrypt_key, const char *b64, char **out, size_t *out_len, char *err)
{
    zk_rc rc = ZK_OK;
    unsigned char key[32], *raw = NULL;
    unsigned char *plain = NULL;
    size_t rawlen = 0;
    int n1 = 0, n2 = 0;
    EVP_CIPHER_CTX *c = NULL;
    *out = NULL;
    if (strlen(b64) > FS_MAX_CIPHER / 3 * 4 + 4) return zk_fail(err, ZK_TOOBIG, "encrypted body too large");
    if (!EVP_Digest(encrypt_key, strlen(encrypt_key), key, NULL, EVP_sha256(), NULL))
        return zk_fail(err, ZK_ERR, "sha256 failed");
    if (hook_b64decode(b64, &raw, &rawlen) != ZK_OK) { rc = zk_fail(err, ZK_PARSE, "encrypt is not base64"); goto out; }
    if (rawlen < 32 || rawlen % 16) {
        rc = zk_fail(err, ZK_PARSE, "ciphertext of %zu bytes (needs 16-byte IV + whole blocks)", rawlen);
        goto out;
    }
    if (!(plain = zk_malloc(rawlen + 1)) || !(c = EVP_CIPHER_CTX_new())) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    if (!EVP_DecryptInit_ex(c, EVP_aes_256_cbc(), NULL, key, raw) ||
        !EVP_DecryptUpdate(c, plain, &n1, raw + 16, (int)(rawlen - 16)) || !EVP_DecryptFinal_ex(c, plain + n1, &n2)) {
        rc = zk_fail(err, ZK_PARSE, "decryption failed (wrong encrypt_key or bad padding)");
        goto out;
    }
    plain[n1 + n2] = '\0';
    *out = (char *)plain;
    *out_len = (size_t)(n1 + n2);
    plain = NULL;
out:
    OPENSSL_cleanse(key, sizeof key);
    EVP_CIPHER_CTX_free(c);
    zk_free(plain);
    zk_free(raw);
    return rc;
}

/* ---- inbound ------------------------------------------------------------------ */

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void set_json(hook_http *http, int status, const char *body)
{
    hook_http_set(http, status, "application/json; charset=utf-8", body);
}

static int token_ok(fs_state *st, const char *token)
{
    return token && strlen(token) == strlen(st->verification_token) && hook_ct_equal(token, st->verification_token);
}

/* Drop the @_user_N / @_all placeholders Feishu puts for mentions, collapse
 * the spaces they leave, trim. */
static char *clean_text(const char *s)
{
    zk_buf b;
    buf_init(&b, strlen(s) + 1);
    int space = 1;   /* suppress leading spaces */
    while (*s) {
        if (!strncmp(s, "@_user_", 7) || !strncmp(s, "@_all", 5)) {
            s += s[2] == 'u' ? 7 : 5;
            while (isdigit((unsigned char)*s)) s++;
            continue;
        }
        if (isspace((unsigned char)*s)) {
            if (!space && buf_putc(&b, ' ') != ZK_OK) goto fail;
            space = 1;
        } else {
            if (buf_putc(&b, *s) != ZK_OK) goto fail;
            space = 0;
        }
        s++;
    }
    while (b.len && b.data[b.len - 1] == ' ') b.data[--b.len] = '\0';
    if (!b.len) {
        buf_free(&b);
        return zk_strdup("");
    }
    return buf_steal(&b, NULL);
fail:
    buf_free(&b);
    return NULL;
}

static int id_safe(const char *s)
{
    if (!s || !*s || strlen(s) > 200) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-') return 0;
    return 1;
}

/* im.message.receive_v1 → hook_msg (NULL in *out when there is nothing to answer). */
static zk_rc parse_message(json_t *root, hook_msg **out, char *err)
{
    json_t *hdr = json_object_get(root, "header"), *ev = json_object_get(root, "event");
    json_t *sender = json_object_get(ev, "sender"), *msg = json_object_get(ev, "message");
    const char *event_id = jstr(hdr, "event_id"), *stype = jstr(sender, "sender_type");
    const char *open_id = jstr(json_object_get(sender, "sender_id"), "open_id");
    const char *mid = jstr(msg, "message_id"), *chat = jstr(msg, "chat_id"), *ctype = jstr(msg, "chat_type");
    const char *mtype = jstr(msg, "message_type"), *content = jstr(msg, "content");
    json_t *cj = NULL;
    hook_msg *m = NULL;
    zk_rc rc = ZK_OK;
    *out = NULL;
    if (!event_id || !*event_id || strlen(event_id) >= sizeof m->event_id || !id_safe(mid))
        return zk_fail(err, ZK_PARSE, "event without a usable event_id or message_id");
    if (stype && strcmp(stype, "user")) return ZK_OK;               /* bots (ourselves included): ignore */
    if (!mtype || strcmp(mtype, "text") || !content) return ZK_OK; /* images, files...: ignore */
    if (!open_id || !*open_id || strlen(open_id) >= sizeof m->sender || (chat && strlen(chat) >= sizeof m->chat))
        return zk_fail(err, ZK_PARSE, "message without a usable sender");
    cj = json_loads(content, 0, NULL);   /* content is a JSON string holding JSON */
    const char *text = jstr(cj, "text");
    if (!text) { rc = zk_fail(err, ZK_PARSE, "text message content is not {\"text\":...}"); goto out; }
    if (!(m = zk_calloc(1, sizeof *m))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    snprintf(m->platform, sizeof m->platform, "feishu");
    snprintf(m->event_id, sizeof m->event_id, "%s", event_id);
    snprintf(m->sender, sizeof m->sender, "%s", open_id);
    snprintf(m->chat, sizeof m->chat, "%s", chat ? chat : "");
    snprintf(m->reply_to, sizeof m->reply_to, "%s", mid);
    m->is_group = ctype && !strcmp(ctype, "group");
    if (!(m->text = clean_text(text))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    *out = m;
    m = NULL;
out:
    if (m) hook_msg_free(m);
    json_decref(cj);
    return rc;
}

/* The whole inbound path with plain inputs (unit-testable without MHD).
 * Order: signature over the raw bytes → decrypt → parse → token. */
zk_rc hook__feishu_process(hook_adapter *a, const char *method, const char *timestamp, const char *nonce,
                           const char *signature, const char *body, size_t len, long long now_s, hook_http *http,
                           hook_msg **out_msg, char *err)
{
    fs_state *st = a->state;
    json_t *outer = NULL, *root = NULL, *resp = NULL;
    char *plain = NULL, *rb = NULL;
    size_t plen = 0;
    int signed_ok = 0;
    zk_rc rc = ZK_OK;
    *out_msg = NULL;
    if (!body) body = "";
    if (!method || strcmp(method, "POST")) {
        set_json(http, 405, "{\"error\":\"POST only\"}");
        return zk_fail(err, ZK_INVALID, "method not allowed");
    }
    if (st->encrypt_key && signature && *signature) {
        char want[65];
        if (!timestamp || !nonce) {
            rc = zk_fail(err, ZK_INVALID, "signature without timestamp/nonce");
            goto unauthorized;
        }
        char *end = NULL;
        long long ts = strtoll(timestamp, &end, 10);
        if (!*timestamp || *end || ts < now_s - FS_WINDOW_S || ts > now_s + FS_WINDOW_S) {
            rc = zk_fail(err, ZK_INVALID, "request timestamp outside the 1-hour window");
            goto unauthorized;
        }
        if (hook__feishu_signature(timestamp, nonce, st->encrypt_key, body, len, want) != ZK_OK) {
            rc = zk_fail(err, ZK_ERR, "sha256 failed");
            set_json(http, 500, "{\"error\":\"internal\"}");
            goto out;
        }
        if (strlen(signature) != 64 || !hook_ct_equal(want, signature)) {
            rc = zk_fail(err, ZK_INVALID, "bad X-Lark-Signature");
            goto unauthorized;
        }
        signed_ok = 1;
    }
    outer = json_loadb(body, len, 0, NULL);
    if (!json_is_object(outer)) {
        rc = zk_fail(err, ZK_PARSE, "malformed JSON");
        goto bad_request;
    }
    const char *enc = jstr(outer, "encrypt");
    if (st->encrypt_key) {
        if (!enc) {
            rc = zk_fail(err, ZK_INVALID, "encrypt_key is set but the body is not encrypted");
            goto bad_request;
        }
        if ((rc = hook__feishu_decrypt(st->encrypt_key, enc, &plain, &plen, err)) != ZK_OK) goto bad_request;
        root = json_loadb(plain, plen, 0, NULL);
        if (!json_is_object(root)) {
            rc = zk_fail(err, ZK_PARSE, "decrypted body is not a JSON object");
            goto bad_request;
        }
    } else {
        if (enc) {
            rc = zk_fail(err, ZK_CONFIG, "encrypted event but no encrypt_key configured");
            goto bad_request;
        }
        root = json_incref(outer);
    }

    const char *type = jstr(root, "type");
    if (type && !strcmp(type, "url_verification")) {
        /* The SDKs do not sign this one; the token (inside the encrypted
         * envelope when encryption is on) authenticates it. */
        const char *challenge = jstr(root, "challenge");
        if (!token_ok(st, jstr(root, "token"))) {
            rc = zk_fail(err, ZK_INVALID, "wrong verification token");
            goto unauthorized;
        }
        if (!challenge || !(resp = json_pack("{s:s}", "challenge", challenge)) ||
            !(rb = json_dumps(resp, JSON_COMPACT))) {
            rc = zk_fail(err, ZK_PARSE, "url_verification without a challenge");
            goto bad_request;
        }
        set_json(http, 200, rb);
        goto out;
    }
    if (st->encrypt_key && !signed_ok) {
        rc = zk_fail(err, ZK_INVALID, "event without X-Lark-Signature");
        goto unauthorized;
    }
    const char *schema = jstr(root, "schema");
    json_t *hdr = json_object_get(root, "header");
    const char *token = schema ? jstr(hdr, "token") : jstr(root, "token");   /* v2 : v1 */
    if (!schema && !jstr(root, "uuid")) {
        rc = zk_fail(err, ZK_PARSE, "neither a v2 (schema) nor a v1 (uuid) event");
        goto bad_request;
    }
    if (!token_ok(st, token)) {
        rc = zk_fail(err, ZK_INVALID, "wrong verification token");
        goto unauthorized;
    }
    const char *etype = schema ? jstr(hdr, "event_type") : NULL;
    if (etype && !strcmp(etype, "im.message.receive_v1")) {
        if ((rc = parse_message(root, out_msg, err)) != ZK_OK) goto bad_request;
    }
    set_json(http, 200, "{\"msg\":\"success\"}");
    goto out;

unauthorized:
    set_json(http, 401, "{\"error\":\"unauthorized\"}");
    goto out;
bad_request:
    if (rc == ZK_NOMEM) set_json(http, 500, "{\"error\":\"internal error\"}");
    else set_json(http, 400, "{\"error\":\"bad request\"}");
out:
    json_decref(outer);
    json_decref(root);
    json_decref(resp);
    free(rb);
    zk_free(plain);
    return rc;
}

/* Rejections (4xx) are answered and logged, not errors of the server
 * (the WeCom adapter's convention); anything else becomes a 500. */
static zk_rc fs_handle(hook_adapter *a, srv_req *r, hook_http *http, hook_msg **out_msg, char *err)
{
    zk_rc rc = hook__feishu_process(a, r->method, srv_header(r, "X-Lark-Request-Timestamp"),
                                    srv_header(r, "X-Lark-Request-Nonce"), srv_header(r, "X-Lark-Signature"),
                                    r->body.data, r->body.len, (long long)time(NULL), http, out_msg, err);
    if (rc != ZK_OK && http->status >= 400 && http->status < 500) {
        ZK_LOG(ZK_LOG_WARN, "feishu: rejected an event (HTTP %d): %s", http->status, err);
        rc = ZK_OK;
    } else if (rc != ZK_OK && !http->status) {
        set_json(http, 500, "{\"error\":\"internal error\"}");
    }
    return rc;
}

/* ---- replies ---------------------------------------------------------------------- */

/* Cached tenant_access_token (copied into out under the mutex). The token
 * is refreshed once less than 30 min of it remain, when Feishu would hand
 * out a new one anyway. */
static zk_rc get_token(fs_state *st, int force, char *out, size_t n, char *err)
{
    zk_rc rc = ZK_OK;
    char url[1100], *req = NULL, *resp = NULL;
    json_t *body = NULL, *j = NULL;
    long status = 0;
    pthread_mutex_lock(&st->mu);
    if (!force && st->token[0] && time(NULL) < st->token_refresh) goto done;
    snprintf(url, sizeof url, "%.1000s/open-apis/auth/v3/tenant_access_token/internal", st->api_base);
    body = json_pack("{s:s, s:s}", "app_id", st->app_id, "app_secret", st->app_secret);
    if (!body || !(req = json_dumps(body, JSON_COMPACT))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto done; }
    if ((rc = hook_http_post_json(url, NULL, req, FS_TIMEOUT_MS, &status, &resp, err)) != ZK_OK) goto done;
    j = resp ? json_loads(resp, 0, NULL) : NULL;
    json_t *code = json_object_get(j, "code"), *exp = json_object_get(j, "expire");
    const char *tok = jstr(j, "tenant_access_token");
    if (status != 200 || !json_is_integer(code) || json_integer_value(code) != 0 || !tok ||
        strlen(tok) >= sizeof st->token) {
        rc = zk_fail(err, ZK_IO, "feishu tenant_access_token: HTTP %ld code %lld", status,
                     json_is_integer(code) ? (long long)json_integer_value(code) : -1LL);
        goto done;
    }
    long long life = json_is_integer(exp) ? (long long)json_integer_value(exp) : 7200;
    snprintf(st->token, sizeof st->token, "%s", tok);
    st->token_refresh = time(NULL) + (time_t)(life > 3600 ? life - 1800 : life / 2);
done:
    if (rc == ZK_OK) snprintf(out, n, "%s", st->token);
    pthread_mutex_unlock(&st->mu);
    json_decref(body);
    json_decref(j);
    free(req);
    zk_free(resp);
    return rc;
}

static int token_error(long long code)
{
    return code == 99991661 || code == 99991663 || code == 99991668;   /* missing / invalid / expired token */
}

static zk_rc fs_reply(hook_adapter *a, const hook_msg *m, const hook_reply *rep, char *err)
{
    fs_state *st = a->state;
    zk_rc rc = ZK_OK;
    char url[1300], uuid[65], *token = NULL, *content = NULL, *req = NULL, *resp = NULL;
    json_t *cj = NULL, *body = NULL, *j = NULL;
    if (!id_safe(m->reply_to)) return zk_fail(err, ZK_INVALID, "feishu: bad message_id");
    snprintf(url, sizeof url, "%.1000s/open-apis/im/v1/messages/%.200s/reply", st->api_base, m->reply_to);
    zk_sha256_hex(m->event_id, strlen(m->event_id), uuid);
    uuid[40] = '\0';   /* idempotency key (≤ 50 chars): retries of one answer post it once */
    cj = json_pack("{s:s}", "text", rep && rep->text ? rep->text : "");
    if (!cj || !(content = json_dumps(cj, JSON_COMPACT)) ||
        !(body = json_pack("{s:s, s:s, s:b, s:s}", "msg_type", "text", "content", content, "reply_in_thread", 0,
                           "uuid", uuid)) ||
        !(req = json_dumps(body, JSON_COMPACT)) || !(token = zk_malloc(sizeof st->token))) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        long status = 0;
        if ((rc = get_token(st, attempt > 0, token, sizeof st->token, err)) != ZK_OK) goto out;
        zk_free(resp);
        resp = NULL;
        json_decref(j);
        j = NULL;
        if ((rc = hook_http_post_json(url, token, req, FS_TIMEOUT_MS, &status, &resp, err)) != ZK_OK) goto out;
        j = resp ? json_loads(resp, 0, NULL) : NULL;
        json_t *code = json_object_get(j, "code");
        long long c = json_is_integer(code) ? (long long)json_integer_value(code) : -1;
        if (status == 200 && c == 0) goto out;
        rc = zk_fail(err, ZK_IO, "feishu reply: HTTP %ld code %lld", status, c);
        if (!token_error(c)) goto out;
    }
out:
    json_decref(cj);
    json_decref(body);
    json_decref(j);
    free(content);
    free(req);
    zk_free(resp);
    zk_free(token);
    return rc;
}

/* ---- construction ------------------------------------------------------------------ */

static void fs_free(hook_adapter *a)
{
    if (!a) return;
    fs_state *st = a->state;
    if (st) {
        zk_free(st->app_id);
        zk_free(st->app_secret);
        zk_free(st->verification_token);
        zk_free(st->encrypt_key);
        zk_free(st->api_base);
        pthread_mutex_destroy(&st->mu);
        OPENSSL_cleanse(st->token, sizeof st->token);
        zk_free(st);
    }
    zk_free(a);
}

zk_rc hook_feishu_new(const zk_config *cfg, hook_adapter **out, char *err)
{
    const char *sec = "webhook.feishu";
    const char *id = zk_config_get(cfg, sec, "app_id"), *secret = zk_config_get(cfg, sec, "app_secret");
    const char *vt = zk_config_get(cfg, sec, "verification_token"), *ek = zk_config_get(cfg, sec, "encrypt_key");
    const char *base = zk_config_get(cfg, sec, "api_base");
    hook_adapter *a = NULL;
    fs_state *st = NULL;
    *out = NULL;
    if ((!id || !*id) && (!secret || !*secret) && (!vt || !*vt)) return ZK_OK;   /* section absent */
    if (!id || !*id || !secret || !*secret || !vt || !*vt)
        return zk_fail(err, ZK_CONFIG, "[webhook.feishu] needs app_id, app_secret and verification_token");
    if (!base || !*base) base = "https://open.feishu.cn";
    if (strncmp(base, "http://", 7) && strncmp(base, "https://", 8))
        return zk_fail(err, ZK_CONFIG, "[webhook.feishu] api_base is not an http(s) URL");
    size_t bl = strlen(base);
    if (bl > 1000) return zk_fail(err, ZK_CONFIG, "[webhook.feishu] api_base too long");
    while (bl && base[bl - 1] == '/') bl--;
    if (!(a = zk_calloc(1, sizeof *a)) || !(st = zk_calloc(1, sizeof *st))) goto nomem;
    a->state = st;
    pthread_mutex_init(&st->mu, NULL);
    if (!(st->app_id = zk_strdup(id)) || !(st->app_secret = zk_strdup(secret)) ||
        !(st->verification_token = zk_strdup(vt)) || !(st->api_base = zk_strndup(base, bl)) ||
        (ek && *ek && !(st->encrypt_key = zk_strdup(ek))))
        goto nomem;
    if (!st->encrypt_key)
        ZK_LOG(ZK_LOG_WARN, "[webhook.feishu] no encrypt_key: events are neither signed nor encrypted, only the "
                            "verification token authenticates them");
    a->name = "feishu";
    a->max_reply_chars = 4000;
    a->markdown = HOOK_PLAIN;
    a->handle = fs_handle;
    a->reply = fs_reply;
    a->free = fs_free;
    *out = a;
    return ZK_OK;
nomem:
    if (a && !a->state) zk_free(st);
    fs_free(a);
    return zk_fail(err, ZK_NOMEM, "out of memory");
}
