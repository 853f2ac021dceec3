/* test_feishu.c — the Feishu/Lark adapter (server/webhooks/feishu.c) without
 * a server: the reference's vectors (F1/F2 decryption, F3/F4 signatures),
 * fresh events encrypted and signed here the way Feishu does (OpenSSL used
 * directly), url_verification, and the failure paths: wrong signature,
 * stale timestamp, bad padding, truncated ciphertext, wrong verification
 * token, malformed JSON, unsigned events, plaintext mode. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "server/webhooks/hooks.h"

/* internals of feishu.c (declared there) */
zk_rc hook__feishu_signature(const char *timestamp, const char *nonce, const char *encrypt_key, const char *body,
                             size_t len, char out[65]);
zk_rc hook__feishu_decrypt(const char *encrypt_key, const char *b64, char **out, size_t *out_len, char *err);
zk_rc hook__feishu_process(hook_adapter *a, const char *method, const char *timestamp, const char *nonce,
                           const char *signature, const char *body, size_t len, long long now_s, hook_http *http,
                           hook_msg **out_msg, char *err);

#define EKEY "test key"
#define VTOKEN "vtok-123"
#define NOW 1700000000LL

static const char *F2_CIPHER =
    "bZ3L7yh6m3Fkuffl4g+3uGjIHnhOm5fVZbKVuyT8t7tcd5ABMYm8l28/X900ZL3knZ7n+sCREu/H2WnIzft0amC7+xWqNH8o25IU63N4BnZWfHh+"
    "4hyG76QPd19vkw2bPJCx9aqxK8Nz+xqFNbk0RdgyWhmgd30jSxHtcQXAllkI7FMpGpOCteJad3bLXPDBQIV/xkCtKICCS7Z63gakpxZCLaRZ3qCXP1"
    "fapHh+LBIupxenrU6ysc7I3nHmjmKie41IiWwS5puG4zQHhVbq6KWLcgWm/3NBZOPQy53ucMu75SXA55I7jarVLZXWUcqBGrcgE3vouWbtwgZuzmoT"
    "Ql0GSh5VYSVvpW992BuGxUWj0XjPYdICJm6Cr7xouNXwMcdb7N8caVdkdSZeEnswG19qSyDoQhklwzNGW0yiaayulBqJNjfge/G5V3401c2XaIuAeE"
    "Io+QQ4RSNpRGfnHkbu/j55FGQAGWjpuBNaIwZbaUoVP3NkGP+vM5rpEDe3sL2GN+Xsd+g9yBs7FqdMV8mXTGgLjCqjrPrke5/km76Q3Pe6KPs2YexM"
    "RG4MkSx3xUTzZnNn7zIzShPcjeSwBd2pxk6ht5N+fzueZdxl6Oo=";
static const char *F2_PLAIN =
    "{\"schema\":\"2.0\",\"header\":{\"event_id\":\"f7984f25108f8137722bb63cee927e66\",\"event_type\":\"contact.user."
    "created_v3\",\"app_id\":\"cli_xxxxxxxx\",\"tenant_key\":\"xxxxxxx\",\"create_time\":\"1603977298000000\",\"token\":"
    "\"v\"},\"event\":{\"object\":{\"open_id\":\"ou_7dab8a3d3cdcc9da365777c7ad535d62\",\"union_id\":\"on_"
    "576833b917gda3d939b9a3c2d53e72c8\",\"user_id\":\"e33ggbyz\",\"name\":\"张三\",\"employee_no\":\"employee_no\"}},"
    "\"challenge\":\"1212\",\"type\":\"url_verification\"}";

typedef struct {
    hook_adapter *enc;     /* encrypt_key set */
    hook_adapter *plain;   /* no encrypt_key */
} fixture;

static zk_rc adapter_from(const char *conf_text, hook_adapter **out, char *err)
{
    char path[] = "/tmp/zk-feishu-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, conf_text, strlen(conf_text)), (ssize_t)strlen(conf_text));
    close(fd);
    zk_config *cfg = NULL;
    assert_int_equal(zk_config_load(path, 1, &cfg, err), ZK_OK);
    unlink(path);
    zk_rc rc = hook_feishu_new(cfg, out, err);
    zk_config_free(cfg);
    return rc;
}

static int setup(void **state)
{
    char err[ZK_ERRLEN];
    fixture *f = calloc(1, sizeof *f);
    zk_log_set_level(ZK_LOG_ERROR);
    if (adapter_from("[webhook.feishu]\napp_id = cli_a\napp_secret = sec\nverification_token = " VTOKEN
                     "\nencrypt_key = " EKEY "\napi_base = http://127.0.0.1:8999/feishu\n",
                     &f->enc, err) != ZK_OK || !f->enc)
        return -1;
    if (adapter_from("[webhook.feishu]\napp_id = cli_a\napp_secret = sec\nverification_token = " VTOKEN "\n", &f->plain,
                     err) != ZK_OK || !f->plain)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    f->enc->free(f->enc);
    f->plain->free(f->plain);
    free(f);
    return 0;
}

static void http_clear(hook_http *h)
{
    zk_free(h->body);
    memset(h, 0, sizeof *h);
}

/* Encrypt as Feishu does: base64(IV || AES-256-CBC(SHA256(key), IV, PKCS#7(plain))).
 * pad = 0 encrypts without padding (plain must then be whole blocks). */
static char *feishu_encrypt(const char *key, const void *plain, size_t n, int pad)
{
    unsigned char k[32], *raw = malloc(16 + n + 16);
    int l1 = 0, l2 = 0;
    EVP_Digest(key, strlen(key), k, NULL, EVP_sha256(), NULL);
    assert_int_equal(RAND_bytes(raw, 16), 1);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_256_cbc(), NULL, k, raw), 1);
    EVP_CIPHER_CTX_set_padding(c, pad);
    assert_int_equal(EVP_EncryptUpdate(c, raw + 16, &l1, plain, (int)n), 1);
    assert_int_equal(EVP_EncryptFinal_ex(c, raw + 16 + l1, &l2), 1);
    EVP_CIPHER_CTX_free(c);
    size_t rl = 16 + (size_t)(l1 + l2);
    char *b64 = malloc((rl + 2) / 3 * 4 + 1);
    EVP_EncodeBlock((unsigned char *)b64, raw, (int)rl);
    free(raw);
    return b64;
}

static char *envelope(const char *b64)
{
    char *s = malloc(strlen(b64) + 32);
    sprintf(s, "{\"encrypt\":\"%s\"}", b64);
    return s;
}

/* POST an envelope signed like Feishu (ts, nonce) through the encrypted adapter. */
static zk_rc post_signed(hook_adapter *a, const char *body, long long ts, hook_http *http, hook_msg **m, char *err)
{
    char tsbuf[32], sig[65];
    snprintf(tsbuf, sizeof tsbuf, "%lld", ts);
    assert_int_equal(hook__feishu_signature(tsbuf, "nonce-1", EKEY, body, strlen(body), sig), ZK_OK);
    memset(http, 0, sizeof *http);
    *m = NULL;
    return hook__feishu_process(a, "POST", tsbuf, "nonce-1", sig, body, strlen(body), NOW, http, m, err);
}

static const char *MSG_EVENT =
    "{\"schema\":\"2.0\",\"header\":{\"event_id\":\"ev_0001\",\"event_type\":\"im.message.receive_v1\","
    "\"create_time\":\"1700000000000\",\"token\":\"" VTOKEN "\",\"app_id\":\"cli_a\",\"tenant_key\":\"t\"},"
    "\"event\":{\"sender\":{\"sender_id\":{\"union_id\":\"on_1\",\"user_id\":\"u1\",\"open_id\":\"ou_alice\"},"
    "\"sender_type\":\"user\",\"tenant_key\":\"t\"},\"message\":{\"message_id\":\"om_abc123\",\"root_id\":\"\","
    "\"parent_id\":\"\",\"create_time\":\"1700000000000\",\"chat_id\":\"oc_group1\",\"chat_type\":\"group\","
    "\"message_type\":\"text\",\"content\":\"{\\\"text\\\":\\\"@_user_1  年假有几天？ @_user_12\\\"}\","
    "\"mentions\":[{\"key\":\"@_user_1\",\"id\":{\"open_id\":\"ou_bot\"},\"name\":\"zhiku\",\"tenant_key\":\"t\"}]}}}";

/* ---- vectors -------------------------------------------------------------------- */

static void test_vectors_decrypt(void **state)
{
    (void)state;
    char err[ZK_ERRLEN], *p = NULL;
    size_t n = 0;
    assert_int_equal(hook__feishu_decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=", &p, &n, err),
                     ZK_OK);
    assert_int_equal(n, 11);
    assert_string_equal(p, "hello world");
    zk_free(p);
    assert_int_equal(hook__feishu_decrypt("1212121212", F2_CIPHER, &p, &n, err), ZK_OK);
    assert_int_equal(n, strlen(F2_PLAIN));
    assert_string_equal(p, F2_PLAIN);
    zk_free(p);
}

static void test_vectors_signature(void **state)
{
    (void)state;
    char sig[65];
    assert_int_equal(hook__feishu_signature("timestamp", "nonce", "1212121212", F2_PLAIN, strlen(F2_PLAIN), sig), ZK_OK);
    assert_string_equal(sig, "4dca085198cb3216defc5b65b0668c1328b038a22dbadf2bc6c4fdc3d32bbc45");
    const char *body = "{\"encrypt\":\"P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=\"}";
    assert_int_equal(hook__feishu_signature("1700000000", "abc123", "test key", body, strlen(body), sig), ZK_OK);
    assert_string_equal(sig, "69c61fa99760d59824d588297c0036194769fb54331682c9cbcd93e85b9a8aad");
}

static void test_vector_request(void **state)
{
    /* F4 exactly as a request: signed, decrypts to "hello world", which is not
     * JSON → 400 after the signature passed. */
    fixture *f = *state;
    char err[ZK_ERRLEN];
    hook_http http = {0};
    hook_msg *m = NULL;
    const char *body = "{\"encrypt\":\"P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=\"}";
    assert_int_equal(hook__feishu_process(f->enc, "POST", "1700000000", "abc123",
                                          "69c61fa99760d59824d588297c0036194769fb54331682c9cbcd93e85b9a8aad", body,
                                          strlen(body), NOW, &http, &m, err),
                     ZK_PARSE);
    assert_int_equal(http.status, 400);
    assert_null(m);
    http_clear(&http);
}

/* ---- fresh events ------------------------------------------------------------------ */

static void test_url_verification(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    hook_http http = {0};
    hook_msg *m = NULL;
    const char *plain = "{\"challenge\":\"ajls384kdjx98XX\",\"token\":\"" VTOKEN "\",\"type\":\"url_verification\"}";
    char *b64 = feishu_encrypt(EKEY, plain, strlen(plain), 1), *body = envelope(b64);
    /* unsigned (as the console sends it): the token inside authenticates it */
    assert_int_equal(hook__feishu_process(f->enc, "POST", NULL, NULL, NULL, body, strlen(body), NOW, &http, &m, err),
                     ZK_OK);
    assert_int_equal(http.status, 200);
    assert_string_equal(http.body, "{\"challenge\":\"ajls384kdjx98XX\"}");
    assert_null(m);
    http_clear(&http);
    /* signed works too */
    assert_int_equal(post_signed(f->enc, body, NOW, &http, &m, err), ZK_OK);
    assert_string_equal(http.body, "{\"challenge\":\"ajls384kdjx98XX\"}");
    http_clear(&http);
    free(b64);
    free(body);

    /* wrong token */
    plain = "{\"challenge\":\"c\",\"token\":\"not-the-token\",\"type\":\"url_verification\"}";
    b64 = feishu_encrypt(EKEY, plain, strlen(plain), 1);
    body = envelope(b64);
    assert_int_equal(hook__feishu_process(f->enc, "POST", NULL, NULL, NULL, body, strlen(body), NOW, &http, &m, err),
                     ZK_INVALID);
    assert_int_equal(http.status, 401);
    http_clear(&http);
    free(b64);
    free(body);

    /* plaintext mode */
    plain = "{\"challenge\":\"p1\",\"token\":\"" VTOKEN "\",\"type\":\"url_verification\"}";
    assert_int_equal(hook__feishu_process(f->plain, "POST", NULL, NULL, NULL, plain, strlen(plain), NOW, &http, &m, err),
                     ZK_OK);
    assert_string_equal(http.body, "{\"challenge\":\"p1\"}");
    http_clear(&http);
}

static void test_message_event(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    hook_http http;
    hook_msg *m = NULL;
    char *b64 = feishu_encrypt(EKEY, MSG_EVENT, strlen(MSG_EVENT), 1), *body = envelope(b64);
    assert_int_equal(post_signed(f->enc, body, NOW - 5, &http, &m, err), ZK_OK);
    assert_int_equal(http.status, 200);
    assert_string_equal(http.body, "{\"msg\":\"success\"}");
    assert_non_null(m);
    assert_string_equal(m->platform, "feishu");
    assert_string_equal(m->event_id, "ev_0001");
    assert_string_equal(m->sender, "ou_alice");
    assert_string_equal(m->chat, "oc_group1");
    assert_string_equal(m->reply_to, "om_abc123");
    assert_int_equal(m->is_group, 1);
    assert_string_equal(m->text, "年假有几天？");
    hook_msg_free(m);
    http_clear(&http);

    /* the same event unsigned: refused (only url_verification may be unsigned) */
    memset(&http, 0, sizeof http);
    assert_int_equal(hook__feishu_process(f->enc, "POST", NULL, NULL, NULL, body, strlen(body), NOW, &http, &m, err),
                     ZK_INVALID);
    assert_int_equal(http.status, 401);
    assert_null(m);
    http_clear(&http);

    /* plaintext adapter: the token alone */
    memset(&http, 0, sizeof http);
    assert_int_equal(hook__feishu_process(f->plain, "POST", NULL, NULL, NULL, MSG_EVENT, strlen(MSG_EVENT), NOW, &http,
                                          &m, err),
                     ZK_OK);
    assert_non_null(m);
    assert_string_equal(m->text, "年假有几天？");
    hook_msg_free(m);
    http_clear(&http);
    /* ...which refuses encrypted envelopes it cannot read */
    assert_int_equal(hook__feishu_process(f->plain, "POST", NULL, NULL, NULL, body, strlen(body), NOW, &http, &m, err),
                     ZK_CONFIG);
    assert_int_equal(http.status, 400);
    http_clear(&http);
    free(b64);
    free(body);
}

static void test_ignored_events(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN];
    hook_http http;
    hook_msg *m = NULL;
    const char *cases[] = {
        /* an image */
        "{\"schema\":\"2.0\",\"header\":{\"event_id\":\"e2\",\"event_type\":\"im.message.receive_v1\",\"token\":\"" VTOKEN
        "\"},\"event\":{\"sender\":{\"sender_id\":{\"open_id\":\"ou_a\"},\"sender_type\":\"user\"},\"message\":{"
        "\"message_id\":\"om_1\",\"chat_type\":\"p2p\",\"message_type\":\"image\",\"content\":\"{}\"}}}",
        /* from a bot */
        "{\"schema\":\"2.0\",\"header\":{\"event_id\":\"e3\",\"event_type\":\"im.message.receive_v1\",\"token\":\"" VTOKEN
        "\"},\"event\":{\"sender\":{\"sender_id\":{\"open_id\":\"ou_b\"},\"sender_type\":\"app\"},\"message\":{"
        "\"message_id\":\"om_2\",\"chat_type\":\"p2p\",\"message_type\":\"text\",\"content\":\"{\\\"text\\\":\\\"x\\\"}\"}}}",
        /* another event type */
        "{\"schema\":\"2.0\",\"header\":{\"event_id\":\"e4\",\"event_type\":\"contact.user.created_v3\",\"token\":\"" VTOKEN
        "\"},\"event\":{}}",
        /* v1 */
        "{\"uuid\":\"u-1\",\"token\":\"" VTOKEN "\",\"ts\":\"1\",\"type\":\"event_callback\",\"event\":{\"type\":\"x\"}}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *b64 = feishu_encrypt(EKEY, cases[i], strlen(cases[i]), 1), *body = envelope(b64);
        assert_int_equal(post_signed(f->enc, body, NOW, &http, &m, err), ZK_OK);
        assert_int_equal(http.status, 200);
        assert_null(m);
        http_clear(&http);
        free(b64);
        free(body);
    }
}

/* ---- failures ----------------------------------------------------------------------- */

static void expect_reject(hook_adapter *a, const char *body, long long ts, zk_rc want, int status)
{
    char err[ZK_ERRLEN];
    hook_http http;
    hook_msg *m = NULL;
    zk_rc rc = post_signed(a, body, ts, &http, &m, err);
    if (rc != want) fprintf(stderr, "rc %d: %s\n", rc, err);
    assert_int_equal(rc, want);
    assert_int_equal(http.status, status);
    assert_null(m);
    http_clear(&http);
}

static void test_signature_failures(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], sig[65];
    hook_http http = {0};
    hook_msg *m = NULL;
    char *b64 = feishu_encrypt(EKEY, MSG_EVENT, strlen(MSG_EVENT), 1), *body = envelope(b64);

    /* stale and future timestamps */
    expect_reject(f->enc, body, NOW - 3601, ZK_INVALID, 401);
    expect_reject(f->enc, body, NOW + 3601, ZK_INVALID, 401);

    /* wrong signature: computed with another key; one flipped digit; uppercase; bad length */
    assert_int_equal(hook__feishu_signature("1700000000", "n", "other key", body, strlen(body), sig), ZK_OK);
    assert_int_equal(hook__feishu_process(f->enc, "POST", "1700000000", "n", sig, body, strlen(body), NOW, &http, &m, err),
                     ZK_INVALID);
    assert_int_equal(http.status, 401);
    http_clear(&http);
    assert_int_equal(hook__feishu_signature("1700000000", "n", EKEY, body, strlen(body), sig), ZK_OK);
    sig[10] = sig[10] == 'a' ? 'b' : 'a';
    assert_int_equal(hook__feishu_process(f->enc, "POST", "1700000000", "n", sig, body, strlen(body), NOW, &http, &m, err),
                     ZK_INVALID);
    http_clear(&http);
    assert_int_equal(hook__feishu_process(f->enc, "POST", "1700000000", "n", "abc", body, strlen(body), NOW, &http, &m,
                                          err),
                     ZK_INVALID);
    http_clear(&http);
    /* signed over the raw bytes: one extra space in the body breaks it */
    assert_int_equal(hook__feishu_signature("1700000000", "n", EKEY, body, strlen(body), sig), ZK_OK);
    char *spaced = malloc(strlen(body) + 2);
    sprintf(spaced, "%s ", body);
    assert_int_equal(hook__feishu_process(f->enc, "POST", "1700000000", "n", sig, spaced, strlen(spaced), NOW, &http, &m,
                                          err),
                     ZK_INVALID);
    http_clear(&http);
    /* signature without its timestamp */
    assert_int_equal(hook__feishu_process(f->enc, "POST", NULL, "n", sig, body, strlen(body), NOW, &http, &m, err),
                     ZK_INVALID);
    http_clear(&http);
    /* GET */
    assert_int_equal(hook__feishu_process(f->enc, "GET", NULL, NULL, NULL, "", 0, NOW, &http, &m, err), ZK_INVALID);
    assert_int_equal(http.status, 405);
    http_clear(&http);
    free(spaced);
    free(b64);
    free(body);
}

static void test_crypto_failures(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], *p = NULL;
    size_t n;

    /* bad padding: 32 plaintext bytes ending in 0x00, encrypted without padding */
    unsigned char block[32];
    memset(block, 'a', sizeof block);
    block[31] = 0;
    char *b64 = feishu_encrypt(EKEY, block, sizeof block, 0), *body = envelope(b64);
    assert_int_equal(hook__feishu_decrypt(EKEY, b64, &p, &n, err), ZK_PARSE);
    assert_null(p);
    expect_reject(f->enc, body, NOW, ZK_PARSE, 400);
    free(b64);
    free(body);
    block[31] = 17;   /* larger than a block */
    b64 = feishu_encrypt(EKEY, block, sizeof block, 0);
    assert_int_equal(hook__feishu_decrypt(EKEY, b64, &p, &n, err), ZK_PARSE);
    free(b64);
    block[31] = 2;
    block[30] = 3;    /* inconsistent pad bytes */
    b64 = feishu_encrypt(EKEY, block, sizeof block, 0);
    assert_int_equal(hook__feishu_decrypt(EKEY, b64, &p, &n, err), ZK_PARSE);
    free(b64);

    /* wrong key: F1 with another key does not unpad */
    assert_int_equal(hook__feishu_decrypt("wrong key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=", &p, &n, err),
                     ZK_PARSE);

    /* truncated ciphertext: IV only; a partial block; nothing */
    b64 = feishu_encrypt(EKEY, MSG_EVENT, strlen(MSG_EVENT), 1);
    char iv_only[25];
    memcpy(iv_only, b64, 24);   /* 24 base64 chars = 18 bytes → < 32 */
    iv_only[24] = '\0';
    assert_int_equal(hook__feishu_decrypt(EKEY, iv_only, &p, &n, err), ZK_PARSE);
    size_t l = strlen(b64);
    b64[l - 8] = '\0';          /* drops 6 bytes (no longer whole blocks) */
    assert_int_equal(hook__feishu_decrypt(EKEY, b64, &p, &n, err), ZK_PARSE);
    body = envelope(b64);
    expect_reject(f->enc, body, NOW, ZK_PARSE, 400);
    free(body);
    free(b64);
    assert_int_equal(hook__feishu_decrypt(EKEY, "", &p, &n, err), ZK_PARSE);
    assert_int_equal(hook__feishu_decrypt(EKEY, "not base64 at all!", &p, &n, err), ZK_PARSE);
    assert_null(p);

    /* a body that is not the envelope */
    expect_reject(f->enc, "{\"schema\":\"2.0\"}", NOW, ZK_INVALID, 400);
    expect_reject(f->enc, "{\"encrypt\":42}", NOW, ZK_INVALID, 400);
}

static void test_token_and_json_failures(void **state)
{
    fixture *f = *state;
    /* wrong verification token in a correctly signed + encrypted event */
    char *ev = strdup(MSG_EVENT);
    char *t = strstr(ev, VTOKEN);
    t[0] = 'X';
    char *b64 = feishu_encrypt(EKEY, ev, strlen(ev), 1), *body = envelope(b64);
    expect_reject(f->enc, body, NOW, ZK_INVALID, 401);
    free(b64);
    free(body);
    free(ev);

    /* malformed JSON: the outer body, the decrypted body, the content string */
    expect_reject(f->enc, "{\"encrypt\":", NOW, ZK_PARSE, 400);
    const char *bad_inner = "{\"schema\":\"2.0\",\"header\":";
    b64 = feishu_encrypt(EKEY, bad_inner, strlen(bad_inner), 1);
    body = envelope(b64);
    expect_reject(f->enc, body, NOW, ZK_PARSE, 400);
    free(b64);
    free(body);
    const char *bad_content =
        "{\"schema\":\"2.0\",\"header\":{\"event_id\":\"e9\",\"event_type\":\"im.message.receive_v1\",\"token\":\"" VTOKEN
        "\"},\"event\":{\"sender\":{\"sender_id\":{\"open_id\":\"ou_a\"},\"sender_type\":\"user\"},\"message\":{"
        "\"message_id\":\"om_1\",\"chat_type\":\"p2p\",\"message_type\":\"text\",\"content\":\"{text\"}}}";
    b64 = feishu_encrypt(EKEY, bad_content, strlen(bad_content), 1);
    body = envelope(b64);
    expect_reject(f->enc, body, NOW, ZK_PARSE, 400);
    free(b64);
    free(body);
    /* a message_id that would change the reply URL's path */
    const char *bad_id =
        "{\"schema\":\"2.0\",\"header\":{\"event_id\":\"e10\",\"event_type\":\"im.message.receive_v1\",\"token\":\"" VTOKEN
        "\"},\"event\":{\"sender\":{\"sender_id\":{\"open_id\":\"ou_a\"},\"sender_type\":\"user\"},\"message\":{"
        "\"message_id\":\"../../x\",\"chat_type\":\"p2p\",\"message_type\":\"text\",\"content\":\"{\\\"text\\\":\\\"q\\\"}\"}}}";
    b64 = feishu_encrypt(EKEY, bad_id, strlen(bad_id), 1);
    body = envelope(b64);
    expect_reject(f->enc, body, NOW, ZK_PARSE, 400);
    free(b64);
    free(body);

    /* plaintext adapter: wrong token, malformed JSON, neither v1 nor v2 */
    char err[ZK_ERRLEN];
    hook_http http = {0};
    hook_msg *m = NULL;
    const char *wrong = "{\"schema\":\"2.0\",\"header\":{\"event_id\":\"e\",\"event_type\":\"x\",\"token\":\"nope\"}}";
    assert_int_equal(hook__feishu_process(f->plain, "POST", NULL, NULL, NULL, wrong, strlen(wrong), NOW, &http, &m, err),
                     ZK_INVALID);
    assert_int_equal(http.status, 401);
    http_clear(&http);
    assert_int_equal(hook__feishu_process(f->plain, "POST", NULL, NULL, NULL, "nope", 4, NOW, &http, &m, err), ZK_PARSE);
    assert_int_equal(http.status, 400);
    http_clear(&http);
    assert_int_equal(hook__feishu_process(f->plain, "POST", NULL, NULL, NULL, "{}", 2, NOW, &http, &m, err), ZK_PARSE);
    http_clear(&http);
}

static void test_config(void **state)
{
    (void)state;
    char err[ZK_ERRLEN];
    hook_adapter *a = (hook_adapter *)1;
    assert_int_equal(adapter_from("[server]\nlisten = 127.0.0.1:1\n", &a, err), ZK_OK);
    assert_null(a);
    assert_int_equal(adapter_from("[webhook.feishu]\napp_id = x\napp_secret = y\n", &a, err), ZK_CONFIG);
    assert_null(a);
    assert_int_equal(adapter_from("[webhook.feishu]\napp_id = x\napp_secret = y\nverification_token = t\n"
                                  "api_base = file:///etc\n",
                                  &a, err),
                     ZK_CONFIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_decrypt),
        cmocka_unit_test(test_vectors_signature),
        cmocka_unit_test(test_vector_request),
        cmocka_unit_test(test_url_verification),
        cmocka_unit_test(test_message_event),
        cmocka_unit_test(test_ignored_events),
        cmocka_unit_test(test_signature_failures),
        cmocka_unit_test(test_crypto_failures),
        cmocka_unit_test(test_token_and_json_failures),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
