/* hooks_util.c — small helpers shared by the chat-platform adapters:
 * constant-time string compare, lowercase hex, HMAC-SHA256, base64 (with
 * EVP_DecodeBlock's padding caveat handled) and blocking libcurl JSON POST /
 * GET for the platforms' outgoing APIs. Called from connection threads
 * (signature checks, microseconds) and from the webhook workers (one or two
 * HTTP calls per answered question). Thread-safe: no shared state. */
#include <pthread.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "buf.h"
#include "server/webhooks/hooks.h"

#define HOOK_HTTP_MAX_RESPONSE (1u << 20)   /* platform API answers are small JSON */

int hook_ct_equal(const char *a, const char *b)
{
    if (!a || !b) return 0;
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb) return 0;
    return CRYPTO_memcmp(a, b, la) == 0;
}

void hook_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

zk_rc hook_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char out[32])
{
    unsigned int olen = 0;
    if (klen > (size_t)0x7fffffff) return ZK_INVALID;
    if (!HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &olen) || olen != 32) return ZK_ERR;
    return ZK_OK;
}

/* EVP_DecodeBlock wants a length that is a multiple of 4 with no whitespace
 * and returns 3 bytes per quad, counting '=' padding as data: subtract one
 * byte per trailing '='. Unpadded input is padded here first. */
zk_rc hook_b64decode(const char *in, unsigned char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    size_t n = strlen(in);
    if (n % 4 == 1) return ZK_INVALID;
    size_t padded = (n + 3) / 4 * 4;
    char *tmp = zk_malloc(padded + 1);
    unsigned char *dst = zk_malloc(padded / 4 * 3 + 1);
    zk_rc rc = ZK_OK;
    if (!tmp || !dst) {
        rc = ZK_NOMEM;
        goto out;
    }
    memcpy(tmp, in, n);
    memset(tmp + n, '=', padded - n);
    tmp[padded] = '\0';
    for (size_t i = 0; i < padded; i++) {   /* EVP_DecodeBlock skips some bytes silently: be strict */
        char c = tmp[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
                 (c == '=' && i >= padded - 2);
        if (!ok || (c != '=' && i > 0 && tmp[i - 1] == '=')) {
            rc = ZK_INVALID;
            goto out;
        }
    }
    int len = padded ? EVP_DecodeBlock(dst, (const unsigned char *)tmp, (int)padded) : 0;
    if (len < 0) {
        rc = ZK_INVALID;
        goto out;
    }
    if (padded && tmp[padded - 1] == '=') len--;
    if (padded && tmp[padded - 2] == '=') len--;
    dst[len] = '\0';
    *out = dst;
    *out_len = (size_t)len;
    dst = NULL;
out:
    zk_free(tmp);
    zk_free(dst);
    return rc;
}

char *hook_b64encode(const unsigned char *in, size_t n)
{
    char *out = zk_malloc((n + 2) / 3 * 4 + 1);
    if (!out) return NULL;
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    return out;
}

/* ---- outgoing HTTP ---------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    zk_buf *b = ud;
    return buf_append(b, p, sz * n) == ZK_OK ? sz * n : 0;
}

/* auth_name/auth_value: one credential header ("Authorization" with
 * "Bearer …", or a platform's own token header); NULL for none. */
static zk_rc request(const char *url, const char *auth_name, const char *auth_value, const char *json,
                     long timeout_ms, long *out_status, char **out_body, char *err)
{
    zk_rc rc = ZK_OK;
    struct curl_slist *hdrs = NULL;
    char auth[4096 + 96];
    zk_buf body;
    buf_init(&body, HOOK_HTTP_MAX_RESPONSE);
    *out_status = 0;
    if (out_body) *out_body = NULL;
    pthread_once(&curl_once, curl_init_once);
    CURL *h = curl_easy_init();
    if (!h) return zk_fail(err, ZK_NOMEM, "curl_easy_init failed");
    if (json) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json; charset=utf-8");
        hdrs = curl_slist_append(hdrs, "Expect:");
    }
    if (auth_name && auth_value && *auth_value) {
        if (strlen(auth_value) > 4096 || strlen(auth_name) > 64) {
            rc = zk_fail(err, ZK_INVALID, "credential header too long");
            goto out;
        }
        snprintf(auth, sizeof auth, "%s: %s", auth_name, auth_value);
        hdrs = curl_slist_append(hdrs, auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (hdrs) curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    if (json) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(json));
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 10000L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ZK_MIN(timeout_ms > 0 ? timeout_ms : 10000L, 5000L));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "zhiku");
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        /* the URL may carry a token in its query: name the host only */
        char *host = NULL;
        CURLU *u = curl_url();
        if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) curl_url_get(u, CURLUPART_HOST, &host, 0);
        rc = zk_fail(err, ZK_IO, "%s: %s", host ? host : "request", curl_easy_strerror(cc));
        curl_free(host);
        curl_url_cleanup(u);
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, out_status);
    if (out_body) {
        const char *s = buf_cstr(&body);
        if (!(*out_body = zk_strdup(s))) rc = zk_fail(err, ZK_NOMEM, "out of memory");
    }
out:
    buf_free(&body);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return rc;
}

zk_rc hook_http_post_json(const char *url, const char *bearer, const char *json, long timeout_ms, long *out_status,
                          char **out_body, char *err)
{
    char value[4096 + 16];
    if (bearer && *bearer) snprintf(value, sizeof value, "Bearer %.4096s", bearer);
    return request(url, "Authorization", bearer && *bearer ? value : NULL, json ? json : "{}", timeout_ms,
                   out_status, out_body, err);
}

zk_rc hook_http_post_json_header(const char *url, const char *header, const char *value, const char *json,
                                 long timeout_ms, long *out_status, char **out_body, char *err)
{
    return request(url, header, value, json ? json : "{}", timeout_ms, out_status, out_body, err);
}

zk_rc hook_http_get(const char *url, long timeout_ms, long *out_status, char **out_body, char *err)
{
    return request(url, NULL, NULL, NULL, timeout_ms, out_status, out_body, err);
}
