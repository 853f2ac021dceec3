/* fuzz_feishu.c — libFuzzer target: the Feishu/Lark adapter's request core
 * (server/webhooks/feishu.c): signature over the raw body, {"encrypt":…}
 * envelopes (AES-256-CBC with SHA-256(encrypt_key), IV prefix, PKCS#7),
 * url_verification challenges, verification tokens and v2.0 message events.
 * First byte selects the mode:
 *   0  the input is a plaintext body for the adapter without encrypt_key
 *   1  the input is the event JSON, encrypted (PKCS#7) and signed
 *   2  the input is raw decrypted bytes (padding checks), encrypted without
 *      padding (zero-filled to whole blocks) and signed
 *   3  the input as the `encrypt` value straight into hook__feishu_decrypt()
 * Prototypes as declared by tests/unit/test_feishu.c. */
#include <openssl/evp.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "zk.h"
#include "server/webhooks/hooks.h"
#include "fuzz_util.h"

zk_rc hook__feishu_signature(const char *timestamp, const char *nonce, const char *encrypt_key, const char *body,
                             size_t len, char out[65]);
zk_rc hook__feishu_decrypt(const char *encrypt_key, const char *b64, char **out, size_t *out_len, char *err);
zk_rc hook__feishu_process(hook_adapter *a, const char *method, const char *timestamp, const char *nonce,
                           const char *signature, const char *body, size_t len, long long now_s, hook_http *http,
                           hook_msg **out_msg, char *err);

#define EKEY "test key"
#define VTOKEN "vtok-123"
#define NOW 1700000000LL
#define TS "1700000000"

static hook_adapter *enc_adapter, *plain_adapter;
static unsigned char aes_key[32];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[ZK_ERRLEN];
    (void)argc; (void)argv;
    zk_log_set_level(ZK_LOG_ERROR);
    zk_config *cfg = fuzz_config("[webhook.feishu]\napp_id = cli_a\napp_secret = sec\nverification_token = " VTOKEN
                                 "\nencrypt_key = " EKEY "\napi_base = http://127.0.0.1:9/feishu\n");
    if (hook_feishu_new(cfg, &enc_adapter, err) != ZK_OK || !enc_adapter) abort();
    zk_config_free(cfg);
    cfg = fuzz_config("[webhook.feishu]\napp_id = cli_a\napp_secret = sec\nverification_token = " VTOKEN
                      "\napi_base = http://127.0.0.1:9/feishu\n");
    if (hook_feishu_new(cfg, &plain_adapter, err) != ZK_OK || !plain_adapter) abort();
    zk_config_free(cfg);
    EVP_Digest(EKEY, strlen(EKEY), aes_key, NULL, EVP_sha256(), NULL);
    return 0;
}

static void process(hook_adapter *a, const char *body, size_t len, int sign)
{
    char err[ZK_ERRLEN], sig[65];
    hook_http http;
    hook_msg *msg = NULL;
    memset(&http, 0, sizeof http);
    if (sign && hook__feishu_signature(TS, "nonce-1", EKEY, body, len, sig) != ZK_OK) return;
    hook__feishu_process(a, "POST", sign ? TS : NULL, sign ? "nonce-1" : NULL, sign ? sig : NULL, body, len, NOW,
                         &http, &msg, err);
    zk_free(http.body);
    hook_msg_free(msg);
}

/* base64(IV || AES-256-CBC(plain)) with a fixed IV (deterministic runs). */
static char *encrypt_b64(const uint8_t *plain, size_t n, int pad)
{
    unsigned char *raw = malloc(16 + n + 16);
    int l1 = 0, l2 = 0;
    if (!raw) abort();
    memcpy(raw, "fuzz-fixed-iv-16", 16);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c || EVP_EncryptInit_ex(c, EVP_aes_256_cbc(), NULL, aes_key, raw) != 1) abort();
    EVP_CIPHER_CTX_set_padding(c, pad);
    if (EVP_EncryptUpdate(c, raw + 16, &l1, plain, (int)n) != 1 || EVP_EncryptFinal_ex(c, raw + 16 + l1, &l2) != 1)
        abort();
    EVP_CIPHER_CTX_free(c);
    size_t rl = 16 + (size_t)(l1 + l2);
    char *b64 = malloc((rl + 2) / 3 * 4 + 1);
    if (!b64) abort();
    EVP_EncodeBlock((unsigned char *)b64, raw, (int)rl);
    free(raw);
    return b64;
}

static void post_envelope(const char *b64)
{
    size_t n = strlen(b64) + 32;
    char *body = malloc(n);
    if (!body) abort();
    snprintf(body, n, "{\"encrypt\":\"%s\"}", b64);
    process(enc_adapter, body, strlen(body), 1);
    process(enc_adapter, body, strlen(body), 0);   /* unsigned envelope: allowed, token checked inside */
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[ZK_ERRLEN];
    if (size < 1 || size > (1 << 20)) return 0;
    int mode = data[0] % 4;
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    char *s = fuzz_cstr(in, len), *b64 = NULL, *plain = NULL;
    size_t plain_len = 0;
    switch (mode) {
    case 0:
        process(plain_adapter, s, len, 0);
        break;
    case 1:
        b64 = encrypt_b64(in, len, 1);
        post_envelope(b64);
        break;
    case 2: {
        size_t n = (len + 15) / 16 * 16;
        uint8_t *blk = calloc(1, n ? n : 1);
        if (!blk) abort();
        memcpy(blk, in, len);
        b64 = encrypt_b64(blk, n, 0);
        free(blk);
        post_envelope(b64);
        break;
    }
    default:
        if (hook__feishu_decrypt(EKEY, s, &plain, &plain_len, err) == ZK_OK) zk_free(plain);
        break;
    }
    free(b64);
    free(s);
    return 0;
}
