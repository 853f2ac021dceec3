/* fuzz_wecom.c — libFuzzer target: the WeCom adapter's callback core
 * (server/webhooks/wecom.c): envelope XML, msg_signature, AES-CBC
 * decryption with its length/padding/ReceiveId checks, and the inner
 * message XML. The signature is computed here so hostile content reaches
 * the parsers behind it. First byte selects the mode:
 *   0  inner message XML, encrypted and signed as WeCom would
 *   1  raw decrypted bytes (length field, padding, ReceiveId), encrypted
 *      with the adapter key (no padding added), signed
 *   2  raw request body with a wrong signature, and a GET echostr
 *   3  the input as an Encrypt value straight into wecom__decrypt()
 * Prototypes: the internal entry points as declared by tests/unit/test_wecom.c. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "zk.h"
#include "server/webhooks/hooks.h"
#include "fuzz_util.h"

zk_rc wecom__key(const char *encoding_aes_key, unsigned char key[32], char *err);
zk_rc wecom__sign(const char *token, const char *timestamp, const char *nonce, const char *encrypt, char out[41]);
zk_rc wecom__aes(const unsigned char key[32], int encrypt, const unsigned char *in, size_t n, unsigned char *out,
                 char *err);
zk_rc wecom__decrypt(const unsigned char key[32], const char *b64, const char *receive_id, char **out_msg,
                     size_t *out_len, char *err);
zk_rc wecom__encrypt(const unsigned char key[32], const unsigned char *random16, const char *msg, size_t len,
                     const char *receive_id, char **out_b64, char *err);
zk_rc wecom__handle_req(hook_adapter *a, const char *method, const char *sig, const char *ts, const char *nonce,
                        const char *echostr, const char *body, size_t body_len, hook_http *http,
                        hook_msg **out_msg, char *err);

#define TOKEN "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
#define AES "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
#define CORP "ww1436e0e65a779aee"

static hook_adapter *adapter;
static unsigned char key[32];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[ZK_ERRLEN];
    (void)argc; (void)argv;
    zk_log_set_level(ZK_LOG_ERROR);
    zk_config *cfg = fuzz_config("[webhook.wecom]\ntoken = " TOKEN "\nencoding_aes_key = " AES "\ncorp_id = " CORP
                                 "\nagent_id = 1000002\nsecret = s3cret\napi_base = http://127.0.0.1:9/\n");
    if (hook_wecom_new(cfg, &adapter, err) != ZK_OK || !adapter) abort();
    zk_config_free(cfg);
    if (wecom__key(AES, key, err) != ZK_OK) abort();
    return 0;
}

static void call(const char *method, const char *sig, const char *echostr, const char *body, size_t len)
{
    char err[ZK_ERRLEN];
    hook_http http;
    hook_msg *msg = NULL;
    memset(&http, 0, sizeof http);
    wecom__handle_req(adapter, method, sig, "1700000000", "12345", echostr, body, len, &http, &msg, err);
    zk_free(http.body);
    hook_msg_free(msg);
}

/* Sign enc and POST it in an envelope. */
static void post_encrypted(const char *enc)
{
    char sig[41];
    if (wecom__sign(TOKEN, "1700000000", "12345", enc, sig) != ZK_OK) return;
    size_t n = strlen(enc) + 200;
    char *body = malloc(n);
    if (!body) abort();
    snprintf(body, n, "<xml><ToUserName><![CDATA[" CORP "]]></ToUserName><Encrypt><![CDATA[%s]]></Encrypt>"
                      "<AgentID><![CDATA[1000002]]></AgentID></xml>", enc);
    call("POST", sig, NULL, body, strlen(body));
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[ZK_ERRLEN];
    if (size < 1) return 0;
    int mode = data[0] % 4;
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    char *s = fuzz_cstr(in, len);
    char *enc = NULL, *plain = NULL;
    size_t plain_len = 0;
    switch (mode) {
    case 0:
        if (wecom__encrypt(key, (const unsigned char *)"0123456789abcdef", s, len, CORP, &enc, err) == ZK_OK)
            post_encrypted(enc);
        break;
    case 1: {
        size_t n = (len + 15) / 16 * 16;
        if (!n) n = 16;
        unsigned char *pt = calloc(1, n), *ct = malloc(n);
        if (!pt || !ct) abort();
        memcpy(pt, in, len);
        if (wecom__aes(key, 1, pt, n, ct, err) == ZK_OK && (enc = hook_b64encode(ct, n))) {
            post_encrypted(enc);
            if (wecom__decrypt(key, enc, CORP, &plain, &plain_len, err) == ZK_OK) zk_free(plain);
        }
        free(pt);
        free(ct);
        break;
    }
    case 2:
        call("POST", "0000000000000000000000000000000000000000", NULL, s, len);
        call("GET", "0000000000000000000000000000000000000000", s, "", 0);
        break;
    default:
        if (wecom__decrypt(key, s, CORP, &plain, &plain_len, err) == ZK_OK) zk_free(plain);
        break;
    }
    zk_free(enc);
    free(s);
    return 0;
}
