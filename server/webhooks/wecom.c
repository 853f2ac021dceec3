/* wecom.c — the WeCom (企业微信) self-built app adapter: URL verification
 * (GET echostr), encrypted XML message callbacks (POST), and answers sent
 * through the active message/send API with a cached access_token.
 * Called by the webhook pipeline (hooks.c) from MHD connection threads and
 * from its reply workers; one message per request, a few per second at most.
 * The crypto/parse core (wecom__*) takes plain strings so it can be tested
 * without an HTTP connection (tests/unit/test_wecom.c, tests/tools/wecom_crypt.c).
 *
 * Protocol notes (see the chat-webhooks reference, section 1):
 * - msg_signature = sha1(sorted concat of token, timestamp, nonce, encrypt).
 * - AES-256-CBC, IV = key[0..15], PKCS#7 padding to 32 bytes (not 16: OpenSSL's
 *   own padding is disabled and the pad is added/stripped here).
 * - WeCom defines no freshness window for `timestamp`: any value is accepted;
 *   replays are harmless because the pipeline deduplicates by MsgId.
 * - Answers go through message/send, not the passive reply in the HTTP
 *   response: WeCom waits 5 s and then retries (3 times), and an LLM answer
 *   with retrieval routinely takes longer, so we acknowledge with "success"
 *   at once and send the answer when it is ready. wecom__passive_reply()
 *   builds the encrypted passive XML for completeness and tests. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "zk.h"
#include "buf.h"
#include "server/webhooks/hooks.h"

#define WECOM_DEFAULT_API "https://qyapi.weixin.qq.com"
#define WECOM_MAX_BODY (1u << 20)            /* POST envelope */
#define WECOM_MAX_B64 (1u << 20)             /* Encrypt / echostr */
#define WECOM_MAX_QUESTION 4096              /* bytes; WeCom text messages are <= 2048 */
#define WECOM_MAX_MARKDOWN 4096              /* bytes, message/send markdown.content */
#define WECOM_HTTP_TIMEOUT_MS 15000

typedef struct {
    char token[256];
    char corp_id[128];
    long agent_id;
    char *secret;
    char api_base[512];
    unsigned char key[32];
    pthread_mutex_t mu;       /* guards the access token cache */
    char access_token[768];
    double token_expires;     /* zk_now() seconds; 0 = none cached */
} wecom_state;

/* ---- crypto core -------------------------------------------------------------- */

zk_rc wecom__key(const char *encoding_aes_key, unsigned char key[32], char *err)
{
    size_t n = encoding_aes_key ? strlen(encoding_aes_key) : 0;
    if (n != 43) return zk_fail(err, ZK_CONFIG, "webhook.wecom encoding_aes_key must be 43 characters (got %zu)", n);
    char tmp[45];
    memcpy(tmp, encoding_aes_key, 43);
    tmp[43] = '=';
    tmp[44] = 0;
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    if (hook_b64decode(tmp, &raw, &rawlen) != ZK_OK || rawlen != 32) {
        zk_free(raw);
        return zk_fail(err, ZK_CONFIG, "webhook.wecom encoding_aes_key does not decode to a 32-byte AES key");
    }
    memcpy(key, raw, 32);
    OPENSSL_cleanse(raw, rawlen);
    zk_free(raw);
    return ZK_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* out = lowercase hex sha1 of the byte-sorted concatenation of the four. */
zk_rc wecom__sign(const char *token, const char *timestamp, const char *nonce, const char *encrypt, char out[41])
{
    const char *parts[4] = {token, timestamp, nonce, encrypt};
    qsort(parts, 4, sizeof parts[0], cmp_str);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL);
    for (int i = 0; ok && i < 4; i++) ok = EVP_DigestUpdate(ctx, parts[i], strlen(parts[i]));
    ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok) { out[0] = 0; return ZK_NOMEM; }
    hook_hex(md, 20, out);
    return ZK_OK;
}

/* Check a request's msg_signature (constant time). 1 = valid. */
static int sig_ok(const wecom_state *st, const char *sig, const char *ts, const char *nonce, const char *enc)
{
    char want[41];
    if (!sig || !ts || !nonce || !enc || strlen(sig) != 40) return 0;
    if (wecom__sign(st->token, ts, nonce, enc, want) != ZK_OK) return 0;
    return hook_ct_equal(sig, want);
}

/* Raw AES-256-CBC, no padding, IV = key[0..15]; n must be a multiple of 16. */
zk_rc wecom__aes(const unsigned char key[32], int encrypt, const unsigned char *in, size_t n, unsigned char *out,
                 char *err)
{
    if (n == 0 || n % 16 || n > INT32_MAX) return zk_fail(err, ZK_PARSE, "ciphertext length %zu is not a multiple of 16", n);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0;
    int ok = ctx && EVP_CipherInit_ex(ctx, EVP_aes_256_cbc(), NULL, key, key, encrypt) &&
             EVP_CIPHER_CTX_set_padding(ctx, 0) && EVP_CipherUpdate(ctx, out, &l1, in, (int)n) &&
             EVP_CipherFinal_ex(ctx, out + l1, &l2) && (size_t)(l1 + l2) == n;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? ZK_OK : zk_fail(err, ZK_ERR, "AES-256-CBC failed");
}

/* Decrypt an Encrypt/echostr value; *out_msg (NUL-terminated, caller frees)
 * is the msg, and the trailing ReceiveId must equal receive_id. */
zk_rc wecom__decrypt(const unsigned char key[32], const char *b64, const char *receive_id, char **out_msg,
                     size_t *out_len, char *err)
{
    unsigned char *ct = NULL, *pt = NULL;
    size_t ctlen = 0;
    zk_rc rc;
    *out_msg = NULL;
    if (out_len) *out_len = 0;
    size_t blen = strlen(b64);
    if (blen == 0 || blen > WECOM_MAX_B64) { rc = zk_fail(err, ZK_PARSE, "encrypted field is empty or too large"); goto out; }
    if (hook_b64decode(b64, &ct, &ctlen) != ZK_OK) { rc = zk_fail(err, ZK_PARSE, "encrypted field is not base64"); goto out; }
    if (ctlen < 32 || ctlen % 32) {
        rc = zk_fail(err, ZK_PARSE, "ciphertext of %zu bytes is not a positive multiple of 32 (truncated?)", ctlen);
        goto out;
    }
    if (!(pt = zk_malloc(ctlen))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    if ((rc = wecom__aes(key, 0, ct, ctlen, pt, err)) != ZK_OK) goto out;
    /* PKCS#7 over 32-byte blocks: pad value 1..32, all pad bytes equal */
    unsigned pad = pt[ctlen - 1];
    if (pad < 1 || pad > 32) { rc = zk_fail(err, ZK_PARSE, "bad padding (pad byte %u)", pad); goto out; }
    for (size_t i = ctlen - pad; i < ctlen; i++)
        if (pt[i] != pad) { rc = zk_fail(err, ZK_PARSE, "bad padding (inconsistent pad bytes)"); goto out; }
    size_t n = ctlen - pad;
    if (n < 20) { rc = zk_fail(err, ZK_PARSE, "decrypted payload too short"); goto out; }
    uint32_t mlen = (uint32_t)pt[16] << 24 | (uint32_t)pt[17] << 16 | (uint32_t)pt[18] << 8 | pt[19];
    if (mlen > n - 20) { rc = zk_fail(err, ZK_PARSE, "msg_len %u exceeds the payload (%zu bytes)", mlen, n - 20); goto out; }
    const unsigned char *rid = pt + 20 + mlen;
    size_t ridlen = n - 20 - mlen;
    if (ridlen != strlen(receive_id) || CRYPTO_memcmp(rid, receive_id, ridlen) != 0) {
        rc = zk_fail(err, ZK_INVALID, "ReceiveId does not match corp_id");
        goto out;
    }
    char *msg = zk_malloc((size_t)mlen + 1);
    if (!msg) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    memcpy(msg, pt + 20, mlen);
    msg[mlen] = 0;
    *out_msg = msg;
    if (out_len) *out_len = mlen;
    rc = ZK_OK;
out:
    if (pt) { OPENSSL_cleanse(pt, ctlen); zk_free(pt); }
    zk_free(ct);
    return rc;
}

/* Encrypt msg as WeCom does: random16 || be32 len || msg || receive_id,
 * PKCS#7 to 32, AES-256-CBC, base64. random16 NULL = 16 fresh random
 * alphanumerics (the official samples use ASCII). *out_b64 caller frees. */
zk_rc wecom__encrypt(const unsigned char key[32], const unsigned char *random16, const char *msg, size_t len,
                     const char *receive_id, char **out_b64, char *err)
{
    static const char alnum[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    size_t ridlen = strlen(receive_id);
    unsigned char *pt = NULL, *ct = NULL;
    zk_rc rc;
    *out_b64 = NULL;
    if (len > WECOM_MAX_B64 || ridlen > 1024) return zk_fail(err, ZK_TOOBIG, "message too large to encrypt");
    size_t n = 20 + len + ridlen;
    size_t pad = 32 - n % 32;                       /* 1..32 */
    size_t total = n + pad;
    pt = zk_malloc(total);
    ct = zk_malloc(total);
    if (!pt || !ct) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    if (random16) {
        memcpy(pt, random16, 16);
    } else {
        unsigned char r[16];
        if (RAND_bytes(r, sizeof r) != 1) { rc = zk_fail(err, ZK_ERR, "RAND_bytes failed"); goto out; }
        for (int i = 0; i < 16; i++) pt[i] = (unsigned char)alnum[r[i] % (sizeof alnum - 1)];
    }
    pt[16] = (unsigned char)(len >> 24);
    pt[17] = (unsigned char)(len >> 16);
    pt[18] = (unsigned char)(len >> 8);
    pt[19] = (unsigned char)len;
    if (len) memcpy(pt + 20, msg, len);
    memcpy(pt + 20 + len, receive_id, ridlen);
    memset(pt + n, (int)pad, pad);
    if ((rc = wecom__aes(key, 1, pt, total, ct, err)) != ZK_OK) goto out;
    if (!(*out_b64 = hook_b64encode(ct, total))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    rc = ZK_OK;
out:
    if (pt) { OPENSSL_cleanse(pt, total); zk_free(pt); }
    zk_free(ct);
    return rc;
}

/* ---- XML ---------------------------------------------------------------------- */

/* Parse untrusted XML: no network, no entity substitution, no DTD loading,
 * CDATA merged into text. Documents with a DOCTYPE are refused outright
 * (WeCom never sends one; it is the vehicle of entity-expansion attacks). */
static xmlDoc *parse_xml(const char *s, size_t n)
{
    if (!s || n == 0 || n > WECOM_MAX_BODY) return NULL;
    xmlDoc *d = xmlReadMemory(s, (int)n, "wecom.xml", "UTF-8",
                              XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
    if (d && (d->intSubset || d->extSubset || !xmlDocGetRootElement(d))) {
        xmlFreeDoc(d);
        d = NULL;
    }
    return d;
}

/* Text of the first direct child element `name` of root: only text and
 * CDATA nodes count (entity references are never expanded). NULL when
 * absent; caller frees. */
static char *child_text(xmlNode *root, const char *name)
{
    for (xmlNode *c = root->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, name)) continue;
        zk_buf b;
        buf_init(&b, WECOM_MAX_BODY);
        for (xmlNode *t = c->children; t; t = t->next)
            if ((t->type == XML_TEXT_NODE || t->type == XML_CDATA_SECTION_NODE) && t->content &&
                buf_puts(&b, (const char *)t->content) != ZK_OK) {
                buf_free(&b);
                return NULL;
            }
        return buf_steal(&b, NULL);
    }
    return NULL;
}

/* Pull the Encrypt element out of a POST envelope; NULL when malformed. */
static char *envelope_encrypt(const char *body, size_t len)
{
    xmlDoc *d = parse_xml(body, len);
    if (!d) return NULL;
    char *enc = child_text(xmlDocGetRootElement(d), "Encrypt");
    xmlFreeDoc(d);
    return enc;
}

/* Cut s to at most max bytes without splitting a UTF-8 sequence. */
static void utf8_cut(char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max) return;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
    s[max] = 0;
}

/* ---- request handling ----------------------------------------------------------- */

static zk_rc reject(hook_http *http, int status, const char *why)
{
    ZK_LOG(ZK_LOG_WARN, "wecom: rejected a callback (HTTP %d): %s", status, why);
    hook_http_set(http, status, "text/plain; charset=utf-8", status == 401 ? "bad signature" : "bad request");
    return ZK_OK;
}

/* Build the hook_msg for a decrypted inner message; *out_msg stays NULL for
 * anything that is not a non-empty text message. 0 = ok, -1 = malformed. */
static int inner_message(const char *xml, size_t len, hook_msg **out_msg, char *why)
{
    int ret = -1;
    char *type = NULL, *from = NULL, *content = NULL, *msgid = NULL, *created = NULL;
    hook_msg *m = NULL;
    xmlDoc *d = parse_xml(xml, len);
    if (!d) { snprintf(why, ZK_ERRLEN, "decrypted message is not well-formed XML"); goto out; }
    xmlNode *root = xmlDocGetRootElement(d);
    type = child_text(root, "MsgType");
    from = child_text(root, "FromUserName");
    if (!type || !from || !from[0] || strlen(from) >= sizeof m->sender) {
        snprintf(why, ZK_ERRLEN, "decrypted message lacks MsgType or a valid FromUserName");
        goto out;
    }
    if (strcmp(type, "text") != 0) { ret = 0; goto out; }   /* events, images, ...: acknowledged, ignored */
    content = child_text(root, "Content");
    msgid = child_text(root, "MsgId");
    created = child_text(root, "CreateTime");
    if (!content || !content[0]) { ret = 0; goto out; }
    if (!(m = zk_calloc(1, sizeof *m))) { snprintf(why, ZK_ERRLEN, "out of memory"); goto out; }
    snprintf(m->platform, sizeof m->platform, "wecom");
    int w = msgid && msgid[0] ? snprintf(m->event_id, sizeof m->event_id, "%s", msgid)
                              : snprintf(m->event_id, sizeof m->event_id, "%s:%s", from, created ? created : "");
    if (w < 0 || (size_t)w >= sizeof m->event_id) { snprintf(why, ZK_ERRLEN, "MsgId too long"); goto out; }
    snprintf(m->sender, sizeof m->sender, "%s", from);
    snprintf(m->chat, sizeof m->chat, "%s", from);      /* app messages are 1:1 */
    m->is_group = 0;
    utf8_cut(content, WECOM_MAX_QUESTION);
    m->text = content;
    content = NULL;
    *out_msg = m;
    m = NULL;
    ret = 0;
out:
    if (m) { zk_free(m->text); zk_free(m); }
    zk_free(type); zk_free(from); zk_free(content); zk_free(msgid); zk_free(created);
    if (d) xmlFreeDoc(d);
    return ret;
}

/* The whole callback, from already-decoded query values and the raw body.
 * Always fills *http; rejections return ZK_OK with a 4xx response. */
zk_rc wecom__handle_req(hook_adapter *a, const char *method, const char *sig, const char *ts, const char *nonce,
                        const char *echostr, const char *body, size_t body_len, hook_http *http,
                        hook_msg **out_msg, char *err)
{
    wecom_state *st = a->state;
    char why[ZK_ERRLEN];
    char *plain = NULL, *enc = NULL, *echo = NULL;
    size_t plain_len = 0;
    zk_rc rc = ZK_OK;
    *out_msg = NULL;

    if (!strcmp(method, "GET")) {
        if (!echostr) { rc = reject(http, 400, "GET without echostr"); goto out; }
        /* the query decoder turns a literal '+' into a space; base64 has no spaces */
        if (!(echo = zk_strdup(echostr))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
        for (char *p = echo; *p; p++) if (*p == ' ') *p = '+';
        if (!sig_ok(st, sig, ts, nonce, echo)) { rc = reject(http, 401, "URL verification: bad msg_signature"); goto out; }
        if (wecom__decrypt(st->key, echo, st->corp_id, &plain, &plain_len, why) != ZK_OK) {
            rc = reject(http, 400, why);
            goto out;
        }
        hook_http_set(http, 200, "text/plain", plain);   /* the plaintext only: no quotes, no newline */
        goto out;
    }
    if (strcmp(method, "POST") != 0) {
        hook_http_set(http, 405, "text/plain; charset=utf-8", "method not allowed");
        goto out;
    }
    if (!sig || !ts || !nonce) { rc = reject(http, 401, "missing msg_signature, timestamp or nonce"); goto out; }
    if (!(enc = envelope_encrypt(body, body_len))) { rc = reject(http, 400, "envelope is not XML with an Encrypt element"); goto out; }
    if (!sig_ok(st, sig, ts, nonce, enc)) { rc = reject(http, 401, "bad msg_signature"); goto out; }
    if (wecom__decrypt(st->key, enc, st->corp_id, &plain, &plain_len, why) != ZK_OK) {
        rc = reject(http, 400, why);
        goto out;
    }
    if (inner_message(plain, plain_len, out_msg, why) != 0) { rc = reject(http, 400, why); goto out; }
    hook_http_set(http, 200, "text/plain", "success");   /* the answer follows via message/send */
out:
    if (plain) { OPENSSL_cleanse(plain, plain_len); zk_free(plain); }
    zk_free(enc);
    zk_free(echo);
    if (rc != ZK_OK) hook_http_set(http, 500, "text/plain; charset=utf-8", "internal error");
    return rc;
}

static zk_rc wecom_handle(hook_adapter *a, srv_req *r, hook_http *http, hook_msg **out_msg, char *err)
{
    if (r->body.len > WECOM_MAX_BODY) {
        *out_msg = NULL;
        return reject(http, 413, "body too large");
    }
    return wecom__handle_req(a, r->method, srv_query(r, "msg_signature"), srv_query(r, "timestamp"),
                             srv_query(r, "nonce"), srv_query(r, "echostr"), r->body.data ? r->body.data : "",
                             r->body.len, http, out_msg, err);
}

/* Append s as CDATA, splitting any "]]>" so the section cannot be closed early. */
static zk_rc put_cdata(zk_buf *b, const char *s)
{
    zk_rc rc = buf_puts(b, "<![CDATA[");
    const char *p;
    while (rc == ZK_OK && (p = strstr(s, "]]>"))) {
        rc = buf_append(b, s, (size_t)(p - s) + 2);
        if (rc == ZK_OK) rc = buf_puts(b, "]]><![CDATA[");
        s = p + 2;
    }
    if (rc == ZK_OK) rc = buf_puts(b, s);
    if (rc == ZK_OK) rc = buf_puts(b, "]]>");
    return rc;
}

/* The encrypted passive-reply XML for a text answer, exactly as the
 * official SDK builds it (reply XML → encrypt → sign). Caller frees. */
zk_rc wecom__passive_reply(hook_adapter *a, const char *to_user, const char *content, const char *timestamp,
                           const char *nonce, char **out_xml, char *err)
{
    wecom_state *st = a->state;
    zk_buf in, out;
    char *enc = NULL, sig[41];
    zk_rc rc;
    *out_xml = NULL;
    buf_init(&in, 1u << 20);
    buf_init(&out, 2u << 20);
    if ((rc = buf_puts(&in, "<xml><ToUserName>")) || (rc = put_cdata(&in, to_user)) ||
        (rc = buf_puts(&in, "</ToUserName><FromUserName>")) || (rc = put_cdata(&in, st->corp_id)) ||
        (rc = buf_printf(&in, "</FromUserName><CreateTime>%s</CreateTime><MsgType>text</MsgType><Content>", timestamp)) ||
        (rc = put_cdata(&in, content)) || (rc = buf_puts(&in, "</Content></xml>"))) {
        zk_fail(err, rc, "reply too large");
        goto out;
    }
    if ((rc = wecom__encrypt(st->key, NULL, buf_cstr(&in), in.len, st->corp_id, &enc, err)) != ZK_OK) goto out;
    if ((rc = wecom__sign(st->token, timestamp, nonce, enc, sig)) != ZK_OK) { zk_fail(err, rc, "sha1 failed"); goto out; }
    if ((rc = buf_printf(&out, "<xml>\n<Encrypt><![CDATA[%s]]></Encrypt>\n<MsgSignature><![CDATA[%s]]></MsgSignature>\n"
                               "<TimeStamp>%s</TimeStamp>\n<Nonce><![CDATA[%s]]></Nonce>\n</xml>",
                         enc, sig, timestamp, nonce)) != ZK_OK) {
        zk_fail(err, rc, "reply too large");
        goto out;
    }
    *out_xml = buf_steal(&out, NULL);
    rc = *out_xml ? ZK_OK : zk_fail(err, ZK_NOMEM, "out of memory");
out:
    buf_free(&in);
    buf_free(&out);
    zk_free(enc);
    return rc;
}

/* ---- replies through the API ------------------------------------------------------ */

/* Parse {"errcode":..,"errmsg":..} (errcode absent = 0). */
static json_t *api_json(const char *body, long status, long *errcode, char *err, const char *what)
{
    json_error_t je;
    json_t *j = body ? json_loads(body, 0, &je) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        zk_fail(err, ZK_ERR, "wecom %s: HTTP %ld, not a JSON object", what, status);
        return NULL;
    }
    *errcode = json_integer_value(json_object_get(j, "errcode"));
    return j;
}

/* Fetch or reuse the access token (copied into tok). force = ignore the cache. */
static zk_rc get_token(wecom_state *st, int force, char tok[768], char *err)
{
    zk_rc rc = ZK_OK;
    char *url = NULL, *body = NULL, *cid = NULL, *sec = NULL;
    json_t *j = NULL;
    long status = 0, code = 0;
    pthread_mutex_lock(&st->mu);
    if (!force && st->access_token[0] && zk_now() < st->token_expires) {
        memcpy(tok, st->access_token, sizeof st->access_token);
        goto out;
    }
    st->access_token[0] = 0;
    cid = curl_easy_escape(NULL, st->corp_id, 0);
    sec = curl_easy_escape(NULL, st->secret, 0);
    zk_buf u;
    buf_init(&u, 8192);
    if (!cid || !sec || buf_printf(&u, "%s/cgi-bin/gettoken?corpid=%s&corpsecret=%s", st->api_base, cid, sec) != ZK_OK) {
        buf_free(&u);
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    url = buf_steal(&u, NULL);
    if ((rc = hook_http_get(url, WECOM_HTTP_TIMEOUT_MS, &status, &body, err)) != ZK_OK) goto out;
    if (!(j = api_json(body, status, &code, err, "gettoken"))) { rc = ZK_ERR; goto out; }
    const char *t = json_string_value(json_object_get(j, "access_token"));
    if (code != 0 || !t || !t[0] || strlen(t) >= sizeof st->access_token) {
        const char *em = json_string_value(json_object_get(j, "errmsg"));
        rc = zk_fail(err, ZK_ERR, "wecom gettoken: errcode %ld: %s", code, em ? em : "no access_token");
        goto out;
    }
    long ttl = (long)json_integer_value(json_object_get(j, "expires_in"));
    if (ttl <= 0) ttl = 7200;
    /* refresh 5 minutes early (or at half-life for short tokens) */
    st->token_expires = zk_now() + (ttl > 600 ? ttl - 300 : ttl / 2);
    snprintf(st->access_token, sizeof st->access_token, "%s", t);
    memcpy(tok, st->access_token, sizeof st->access_token);
out:
    pthread_mutex_unlock(&st->mu);
    json_decref(j);
    zk_free(body);
    if (url) { OPENSSL_cleanse(url, strlen(url)); zk_free(url); }
    curl_free(cid);
    if (sec) { OPENSSL_cleanse(sec, strlen(sec)); curl_free(sec); }
    return rc;
}

static void drop_token(wecom_state *st, const char *tok)
{
    pthread_mutex_lock(&st->mu);
    if (!strcmp(st->access_token, tok)) st->access_token[0] = 0;
    pthread_mutex_unlock(&st->mu);
}

static int token_expired_code(long c) { return c == 40014 || c == 42001 || c == 42007 || c == 42009; }

static zk_rc wecom_reply(hook_adapter *a, const hook_msg *m, const hook_reply *rep, char *err)
{
    wecom_state *st = a->state;
    char tok[768];
    char *content = NULL, *json = NULL, *body = NULL;
    json_t *req = NULL, *resp = NULL;
    zk_rc rc;
    const char *text = rep->text && rep->text[0] ? rep->text
                       : rep->refused ? "Sorry, your WeCom account is not linked to a zhiku user, so I cannot answer. "
                                        "Please ask an administrator to link it."
                                      : "No answer.";
    if (!(content = zk_strdup(text))) return zk_fail(err, ZK_NOMEM, "out of memory");
    utf8_cut(content, WECOM_MAX_MARKDOWN);
    req = json_pack("{s:s, s:s, s:I, s:{s:s}, s:i}", "touser", m->sender, "msgtype", "markdown", "agentid",
                    (json_int_t)st->agent_id, "markdown", "content", content, "safe", 0);
    if (!req || !(json = json_dumps(req, JSON_COMPACT))) {
        rc = zk_fail(err, ZK_INVALID, "cannot encode the reply (invalid UTF-8?)");
        goto out;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if ((rc = get_token(st, attempt > 0, tok, err)) != ZK_OK) goto out;
        char *tesc = curl_easy_escape(NULL, tok, 0);
        zk_buf u;
        buf_init(&u, 8192);
        rc = tesc ? buf_printf(&u, "%s/cgi-bin/message/send?access_token=%s", st->api_base, tesc) : ZK_NOMEM;
        curl_free(tesc);
        long status = 0, code = 0;
        zk_free(body);
        body = NULL;
        if (rc == ZK_OK) rc = hook_http_post_json(buf_cstr(&u), NULL, json, WECOM_HTTP_TIMEOUT_MS, &status, &body, err);
        else zk_fail(err, rc, "out of memory");
        buf_free(&u);
        if (rc != ZK_OK) goto out;
        json_decref(resp);
        if (!(resp = api_json(body, status, &code, err, "message/send"))) { rc = ZK_ERR; goto out; }
        if (code == 0 && status / 100 == 2) { rc = ZK_OK; goto out; }
        if (token_expired_code(code) && attempt == 0) {
            drop_token(st, tok);
            continue;
        }
        const char *em = json_string_value(json_object_get(resp, "errmsg"));
        rc = zk_fail(err, ZK_ERR, "wecom message/send: HTTP %ld errcode %ld: %s", status, code, em ? em : "");
        goto out;
    }
    rc = ZK_ERR;   /* not reached */
out:
    OPENSSL_cleanse(tok, sizeof tok);
    json_decref(req);
    json_decref(resp);
    zk_free(json);   /* json_dumps uses jansson's allocator (malloc by default) */
    zk_free(body);
    zk_free(content);
    return rc;
}

/* ---- construction ------------------------------------------------------------------ */

static void wecom_free(hook_adapter *a)
{
    if (!a) return;
    wecom_state *st = a->state;
    if (st) {
        pthread_mutex_destroy(&st->mu);
        if (st->secret) { OPENSSL_cleanse(st->secret, strlen(st->secret)); zk_free(st->secret); }
        OPENSSL_cleanse(st, sizeof *st);
        zk_free(st);
    }
    zk_free(a);
}

static zk_rc copy_key(char *dst, size_t cap, const char *v, const char *key, char *err)
{
    if (!v || !v[0]) return zk_fail(err, ZK_CONFIG, "[webhook.wecom] is enabled (token set) but %s is missing", key);
    if (strlen(v) >= cap) return zk_fail(err, ZK_CONFIG, "[webhook.wecom] %s is too long", key);
    memcpy(dst, v, strlen(v) + 1);
    return ZK_OK;
}

zk_rc hook_wecom_new(const zk_config *cfg, hook_adapter **out, char *err)
{
    const char *S = "webhook.wecom";
    hook_adapter *a = NULL;
    wecom_state *st = NULL;
    zk_rc rc;
    *out = NULL;
    const char *token = zk_config_get(cfg, S, "token");
    if (!token || !token[0]) return ZK_OK;   /* disabled */
    if (!(a = zk_calloc(1, sizeof *a)) || !(st = zk_calloc(1, sizeof *st))) {
        zk_free(a);
        return zk_fail(err, ZK_NOMEM, "out of memory");
    }
    pthread_mutex_init(&st->mu, NULL);
    a->state = st;
    a->name = "wecom";
    /* markdown.content is capped at 4096 UTF-8 bytes (text at 2048): the
     * pipeline renders within this many bytes, links included; reply()
     * still cuts at 4096 on a character boundary as a last resort */
    a->max_reply_chars = 4000;
    a->markdown = HOOK_MARKDOWN;
    a->handle = wecom_handle;
    a->reply = wecom_reply;
    a->free = wecom_free;

    const char *aes = zk_config_get(cfg, S, "encoding_aes_key");
    const char *agent = zk_config_get(cfg, S, "agent_id");
    const char *secret = zk_config_get(cfg, S, "secret");
    const char *base = zk_config_get(cfg, S, "api_base");
    if ((rc = copy_key(st->token, sizeof st->token, token, "token", err)) != ZK_OK) goto out;
    if ((rc = copy_key(st->corp_id, sizeof st->corp_id, zk_config_get(cfg, S, "corp_id"), "corp_id", err)) != ZK_OK)
        goto out;
    if (!aes || !aes[0]) { rc = zk_fail(err, ZK_CONFIG, "[webhook.wecom] is enabled (token set) but encoding_aes_key is missing"); goto out; }
    if ((rc = wecom__key(aes, st->key, err)) != ZK_OK) goto out;
    char *end = NULL;
    st->agent_id = agent ? strtol(agent, &end, 10) : 0;
    if (!agent || !agent[0] || *end || st->agent_id <= 0) {
        rc = zk_fail(err, ZK_CONFIG, "[webhook.wecom] agent_id must be the app's numeric AgentId (needed to answer)");
        goto out;
    }
    if (!secret || !secret[0]) { rc = zk_fail(err, ZK_CONFIG, "[webhook.wecom] secret (the app's Secret) is missing (needed to answer)"); goto out; }
    if (!(st->secret = zk_strdup(secret))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    if ((rc = copy_key(st->api_base, sizeof st->api_base, base && base[0] ? base : WECOM_DEFAULT_API, "api_base", err)) != ZK_OK)
        goto out;
    size_t bl = strlen(st->api_base);
    while (bl > 0 && st->api_base[bl - 1] == '/') st->api_base[--bl] = 0;
    xmlInitParser();   /* idempotent; we are on the start-up thread */
    *out = a;
    a = NULL;
    rc = ZK_OK;
out:
    wecom_free(a);
    return rc;
}
