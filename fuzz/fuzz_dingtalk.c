/* fuzz_dingtalk.c — libFuzzer target: the DingTalk adapter's request core
 * (server/webhooks/dingtalk.c): the input is the JSON callback body, sent
 * with a valid timestamp/sign pair (computed once here, as DingTalk signs:
 * base64(HMAC-SHA256(secret, ts "\n" secret))) so the body parser, the
 * sessionWebhook URL allow-list and the mention stripping are reached.
 * First byte odd: also try the signature check with the input as `sign`.
 * Prototypes as declared by tests/unit/test_dingtalk.c. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "zk.h"
#include "server/webhooks/hooks.h"
#include "fuzz_util.h"

zk_rc hook__dingtalk_verify(const char *app_secret, const char *timestamp, const char *sign, long long now_ms,
                            char *err);
int hook__dingtalk_url_allowed(hook_adapter *a, const char *url);
zk_rc hook__dingtalk_process(hook_adapter *a, const char *method, const char *timestamp, const char *sign,
                             const char *body, size_t len, long long now_ms, hook_http *http, hook_msg **out_msg,
                             char *err);

#define SECRET "this is secret"
#define NOW 1700000000000LL
#define TS "1700000000000"

static hook_adapter *adapter;
static char sign[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[ZK_ERRLEN], msg[128];
    unsigned char mac[32];
    unsigned int ml = 0;
    (void)argc; (void)argv;
    zk_log_set_level(ZK_LOG_ERROR);
    zk_config *cfg = fuzz_config("[webhook.dingtalk]\napp_key = dingkey\napp_secret = " SECRET
                                 "\napi_base = http://127.0.0.1:9/dingtalk/\n");
    if (hook_dingtalk_new(cfg, &adapter, err) != ZK_OK || !adapter) abort();
    zk_config_free(cfg);
    snprintf(msg, sizeof msg, "%s\n%s", TS, SECRET);
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)msg, strlen(msg), mac, &ml);
    EVP_EncodeBlock((unsigned char *)sign, mac, 32);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[ZK_ERRLEN];
    hook_http http;
    hook_msg *msg = NULL;
    if (size < 1) return 0;
    char *s = fuzz_cstr(data + 1, size - 1);
    memset(&http, 0, sizeof http);
    hook__dingtalk_process(adapter, "POST", TS, sign, s, size - 1, NOW, &http, &msg, err);
    zk_free(http.body);
    hook_msg_free(msg);
    if (data[0] & 1) {
        hook__dingtalk_verify(SECRET, TS, s, NOW, err);
        hook__dingtalk_verify(SECRET, s, sign, NOW, err);
        hook__dingtalk_url_allowed(adapter, s);
    }
    free(s);
    return 0;
}
