/* test_dingtalk.c — the DingTalk adapter (server/webhooks/dingtalk.c) without
 * a server: the reference's sign vector, fresh requests signed the way
 * DingTalk signs them (HMAC computed here with OpenSSL directly), the
 * 1-hour window, wrong/missing signatures, malformed bodies, mention
 * stripping, and the sessionWebhook allow-list (SSRF). */
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
#include <openssl/hmac.h>

#include "server/webhooks/hooks.h"

/* internals of dingtalk.c (declared there) */
zk_rc hook__dingtalk_verify(const char *app_secret, const char *timestamp, const char *sign, long long now_ms,
                            char *err);
int hook__dingtalk_url_allowed(hook_adapter *a, const char *url);
zk_rc hook__dingtalk_process(hook_adapter *a, const char *method, const char *timestamp, const char *sign,
                             const char *body, size_t len, long long now_ms, hook_http *http, hook_msg **out_msg,
                             char *err);

#define SECRET "this is secret"
#define NOW 1700000000000LL

static zk_rc adapter_from(const char *conf_text, hook_adapter **out, char *err)
{
    char path[] = "/tmp/zk-dingtalk-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, conf_text, strlen(conf_text)), (ssize_t)strlen(conf_text));
    close(fd);
    zk_config *cfg = NULL;
    assert_int_equal(zk_config_load(path, 1, &cfg, err), ZK_OK);
    unlink(path);
    zk_rc rc = hook_dingtalk_new(cfg, out, err);
    zk_config_free(cfg);
    return rc;
}

static int setup(void **state)
{
    char err[ZK_ERRLEN];
    hook_adapter *a = NULL;
    zk_log_set_level(ZK_LOG_ERROR);
    if (adapter_from("[webhook.dingtalk]\napp_key = dingkey\napp_secret = " SECRET
                     "\napi_base = http://127.0.0.1:8999/dingtalk/\n",
                     &a, err) != ZK_OK || !a)
        return -1;
    *state = a;
    return 0;
}

static int teardown(void **state)
{
    hook_adapter *a = *state;
    a->free(a);
    return 0;
}

/* sign the way DingTalk does: base64(HMAC-SHA256(secret, ts "\n" secret)) */
static void sign_for(const char *secret, const char *ts, char out[64])
{
    char msg[256];
    unsigned char mac[32];
    unsigned int ml = 0;
    snprintf(msg, sizeof msg, "%s\n%s", ts, secret);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg, strlen(msg), mac, &ml);
    EVP_EncodeBlock((unsigned char *)out, mac, 32);
}

static void http_clear(hook_http *h)
{
    zk_free(h->body);
    memset(h, 0, sizeof *h);
}

static void test_reference_vector(void **state)
{
    (void)state;
    char err[ZK_ERRLEN], s[64];
    const char *ts = "1577262236757", *want = "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM=";
    sign_for(SECRET, ts, s);
    assert_string_equal(s, want);
    assert_int_equal(hook__dingtalk_verify(SECRET, ts, want, 1577262236757LL + 1000, err), ZK_OK);
    /* URL-encoded form is for the outgoing robot only: refused here */
    assert_int_equal(hook__dingtalk_verify(SECRET, ts, "hmPWwU%2B7lVdm3ZZz0r9tSfx0L4Q26jWOZr9%2BGs6EZQM%3D",
                                           1577262236757LL, err),
                     ZK_INVALID);
}

static void test_window(void **state)
{
    (void)state;
    char err[ZK_ERRLEN], s[64], ts[32];
    snprintf(ts, sizeof ts, "%lld", NOW);
    sign_for(SECRET, ts, s);
    assert_int_equal(hook__dingtalk_verify(SECRET, ts, s, NOW, err), ZK_OK);
    assert_int_equal(hook__dingtalk_verify(SECRET, ts, s, NOW + 3600000, err), ZK_OK);   /* exactly 1 h */
    assert_int_equal(hook__dingtalk_verify(SECRET, ts, s, NOW + 3600001, err), ZK_INVALID);
    assert_non_null(strstr(err, "window"));
    assert_int_equal(hook__dingtalk_verify(SECRET, ts, s, NOW - 3600001, err), ZK_INVALID);   /* from the future */
}

static void test_bad_signatures(void **state)
{
    (void)state;
    char err[ZK_ERRLEN], s[64], ts[32];
    snprintf(ts, sizeof ts, "%lld", NOW);
    sign_for(SECRET, ts, s);
    assert_int_equal(hook__dingtalk_verify("other secret", ts, s, NOW, err), ZK_INVALID);
    assert_int_equal(hook__dingtalk_verify(SECRET, ts, "", NOW, err), ZK_INVALID);
    assert_int_equal(hook__dingtalk_verify(SECRET, ts, NULL, NOW, err), ZK_INVALID);
    assert_int_equal(hook__dingtalk_verify(SECRET, NULL, s, NOW, err), ZK_INVALID);
    assert_int_equal(hook__dingtalk_verify(SECRET, "17e11", s, NOW, err), ZK_INVALID);
    assert_int_equal(hook__dingtalk_verify(SECRET, "99999999999999999999", s, NOW, err), ZK_INVALID);
    s[5] ^= 1;
    assert_int_equal(hook__dingtalk_verify(SECRET, ts, s, NOW, err), ZK_INVALID);
    s[5] ^= 1;
    s[43] = '\0';   /* truncated */
    assert_int_equal(hook__dingtalk_verify(SECRET, ts, s, NOW, err), ZK_INVALID);
    /* the timestamp is part of what is signed */
    char ts2[32];
    snprintf(ts2, sizeof ts2, "%lld", NOW + 1);
    sign_for(SECRET, ts, s);
    assert_int_equal(hook__dingtalk_verify(SECRET, ts2, s, NOW, err), ZK_INVALID);
}

static const char *GROUP_BODY =
    "{\"conversationId\":\"cidABC==\",\"atUsers\":[{\"dingtalkId\":\"$:LWCP_v1:$x\",\"staffId\":\"robot\"}],"
    "\"chatbotCorpId\":\"dingcorp\",\"chatbotUserId\":\"$:LWCP_v1:$bot\",\"msgId\":\"msgABC123\","
    "\"senderNick\":\"张三\",\"isAdmin\":false,\"senderStaffId\":\"staff42\","
    "\"sessionWebhookExpiredTime\":1700005400000,\"createAt\":1700000000000,\"senderCorpId\":\"dingcorp\","
    "\"conversationType\":\"2\",\"senderId\":\"$:LWCP_v1:$s\",\"conversationTitle\":\"KB\","
    "\"isInAtList\":true,\"sessionWebhook\":\"http://127.0.0.1:8999/dingtalk/session/xyz?session=1\","
    "\"text\":{\"content\":\"  年假 有几天？ \"},\"robotCode\":\"dingrobot\",\"msgtype\":\"text\"}";

static hook_msg *process_signed(hook_adapter *a, const char *body, hook_http *http, zk_rc want_rc)
{
    char err[ZK_ERRLEN], s[64], ts[32];
    hook_msg *m = NULL;
    snprintf(ts, sizeof ts, "%lld", NOW - 2000);
    sign_for(SECRET, ts, s);
    memset(http, 0, sizeof *http);
    zk_rc rc = hook__dingtalk_process(a, "POST", ts, s, body, strlen(body), NOW, http, &m, err);
    if (rc != want_rc) fprintf(stderr, "rc %d: %s\n", rc, err);
    assert_int_equal(rc, want_rc);
    return m;
}

static void test_fresh_group_message(void **state)
{
    hook_adapter *a = *state;
    hook_http http;
    hook_msg *m = process_signed(a, GROUP_BODY, &http, ZK_OK);
    assert_int_equal(http.status, 200);
    assert_string_equal(http.body, "{}");
    assert_non_null(m);
    assert_string_equal(m->platform, "dingtalk");
    assert_string_equal(m->event_id, "msgABC123");
    assert_string_equal(m->sender, "staff42");
    assert_string_equal(m->chat, "cidABC==");
    assert_int_equal(m->is_group, 1);
    assert_string_equal(m->text, "年假 有几天？");
    assert_string_equal(m->reply_to, "1700005400000\tdingrobot\thttp://127.0.0.1:8999/dingtalk/session/xyz?session=1");
    hook_msg_free(m);
    http_clear(&http);
}

static void test_single_chat_and_mentions(void **state)
{
    hook_adapter *a = *state;
    hook_http http;
    const char *single = "{\"msgId\":\"m1\",\"senderStaffId\":\"u1\",\"conversationType\":\"1\",\"conversationId\":\"c1\","
                         "\"msgtype\":\"text\",\"text\":{\"content\":\"@notme what is X\"}}";
    hook_msg *m = process_signed(a, single, &http, ZK_OK);
    assert_non_null(m);
    assert_int_equal(m->is_group, 0);
    assert_string_equal(m->text, "@notme what is X");   /* 1:1: nothing to strip */
    assert_string_equal(m->reply_to, "0\t\t");           /* no webhook: OpenAPI with the configured robot code */
    hook_msg_free(m);
    http_clear(&http);
    const char *group = "{\"msgId\":\"m2\",\"senderStaffId\":\"u1\",\"conversationType\":\"2\",\"conversationId\":\"c1\","
                        "\"msgtype\":\"text\",\"text\":{\"content\":\" @zhiku  @bot2 what is X \"}}";
    m = process_signed(a, group, &http, ZK_OK);
    assert_non_null(m);
    assert_string_equal(m->text, "what is X");
    hook_msg_free(m);
    http_clear(&http);
}

static void test_rejections(void **state)
{
    hook_adapter *a = *state;
    hook_http http;
    hook_msg *m = NULL;
    char err[ZK_ERRLEN], s[64], ts[32];

    /* wrong signature: 401 and the body is never looked at */
    snprintf(ts, sizeof ts, "%lld", NOW);
    sign_for("wrong secret", ts, s);
    memset(&http, 0, sizeof http);
    assert_int_equal(hook__dingtalk_process(a, "POST", ts, s, GROUP_BODY, strlen(GROUP_BODY), NOW, &http, &m, err),
                     ZK_INVALID);
    assert_int_equal(http.status, 401);
    assert_null(m);
    http_clear(&http);

    /* expired: correctly signed two hours ago */
    snprintf(ts, sizeof ts, "%lld", NOW - 7200000);
    sign_for(SECRET, ts, s);
    assert_int_equal(hook__dingtalk_process(a, "POST", ts, s, GROUP_BODY, strlen(GROUP_BODY), NOW, &http, &m, err),
                     ZK_INVALID);
    assert_int_equal(http.status, 401);
    assert_null(m);
    http_clear(&http);

    /* no headers */
    assert_int_equal(hook__dingtalk_process(a, "POST", NULL, NULL, GROUP_BODY, strlen(GROUP_BODY), NOW, &http, &m, err),
                     ZK_INVALID);
    assert_int_equal(http.status, 401);
    http_clear(&http);

    /* GET */
    assert_int_equal(hook__dingtalk_process(a, "GET", ts, s, "", 0, NOW, &http, &m, err), ZK_INVALID);
    assert_int_equal(http.status, 405);
    http_clear(&http);

    /* malformed JSON, correctly signed */
    m = process_signed(a, "{\"msgId\":\"x\",", &http, ZK_PARSE);
    assert_null(m);
    assert_int_equal(http.status, 400);
    http_clear(&http);
    m = process_signed(a, "[1,2]", &http, ZK_PARSE);
    assert_int_equal(http.status, 400);
    http_clear(&http);
    /* NUL inside the body */
    memset(&http, 0, sizeof http);
    snprintf(ts, sizeof ts, "%lld", NOW);
    sign_for(SECRET, ts, s);
    assert_int_equal(hook__dingtalk_process(a, "POST", ts, s, "{\"a\":\0}", 8, NOW, &http, &m, err), ZK_PARSE);
    http_clear(&http);

    /* no msgId / sender */
    m = process_signed(a, "{\"msgtype\":\"text\",\"text\":{\"content\":\"hi\"}}", &http, ZK_PARSE);
    assert_int_equal(http.status, 400);
    http_clear(&http);

    /* a picture: acknowledged, nothing to answer */
    m = process_signed(a, "{\"msgId\":\"p\",\"senderStaffId\":\"u\",\"msgtype\":\"picture\",\"content\":{}}", &http,
                       ZK_OK);
    assert_null(m);
    assert_int_equal(http.status, 200);
    http_clear(&http);
}

static void test_ssrf_allow_list(void **state)
{
    hook_adapter *a = *state;
    assert_true(hook__dingtalk_url_allowed(a, "https://oapi.dingtalk.com/robot/sendBySession?session=abc"));
    assert_true(hook__dingtalk_url_allowed(a, "https://OAPI.dingtalk.com:443/robot/sendBySession?session=abc"));
    assert_true(hook__dingtalk_url_allowed(a, "http://127.0.0.1:8999/dingtalk/session/xyz"));
    assert_false(hook__dingtalk_url_allowed(a, "http://oapi.dingtalk.com/robot/sendBySession"));        /* not TLS */
    assert_false(hook__dingtalk_url_allowed(a, "https://oapi.dingtalk.com:8443/robot/sendBySession"));  /* port */
    assert_false(hook__dingtalk_url_allowed(a, "https://oapi.dingtalk.com.evil.example/x"));
    assert_false(hook__dingtalk_url_allowed(a, "https://evil.example/oapi.dingtalk.com"));
    assert_false(hook__dingtalk_url_allowed(a, "https://oapi.dingtalk.com@evil.example/x"));
    assert_false(hook__dingtalk_url_allowed(a, "https://user@oapi.dingtalk.com/x"));
    assert_false(hook__dingtalk_url_allowed(a, "http://169.254.169.254/latest/meta-data/"));
    assert_false(hook__dingtalk_url_allowed(a, "http://127.0.0.1:6379/"));                              /* other port */
    assert_false(hook__dingtalk_url_allowed(a, "https://127.0.0.1:8999/dingtalk/session/xyz"));         /* scheme */
    assert_false(hook__dingtalk_url_allowed(a, "file:///etc/passwd"));
    assert_false(hook__dingtalk_url_allowed(a, "gopher://127.0.0.1:8999/"));
    assert_false(hook__dingtalk_url_allowed(a, "/session/xyz"));
    assert_false(hook__dingtalk_url_allowed(a, ""));
    assert_false(hook__dingtalk_url_allowed(a, NULL));

    /* a signed message with a hostile sessionWebhook: the URL is dropped
     * (the answer goes through the robot OpenAPI instead) */
    hook_http http;
    const char *body = "{\"msgId\":\"m9\",\"senderStaffId\":\"u1\",\"conversationType\":\"2\",\"conversationId\":\"c1\","
                       "\"msgtype\":\"text\",\"text\":{\"content\":\"q\"},\"robotCode\":\"r\","
                       "\"sessionWebhook\":\"http://169.254.169.254/latest/meta-data/\"}";
    hook_msg *m = process_signed(a, body, &http, ZK_OK);
    assert_non_null(m);
    assert_string_equal(m->reply_to, "0\tr\t");
    assert_null(strstr(m->reply_to, "169.254"));
    hook_msg_free(m);
    http_clear(&http);
}

static void test_config(void **state)
{
    (void)state;
    char err[ZK_ERRLEN];
    hook_adapter *a = (hook_adapter *)1;
    assert_int_equal(adapter_from("[server]\nlisten = 127.0.0.1:1\n", &a, err), ZK_OK);
    assert_null(a);   /* disabled */
    assert_int_equal(adapter_from("[webhook.dingtalk]\napp_key = k\n", &a, err), ZK_CONFIG);
    assert_null(a);
    assert_int_equal(adapter_from("[webhook.dingtalk]\napp_key = k\napp_secret = s\napi_base = ftp://x/\n", &a, err),
                     ZK_CONFIG);
    assert_int_equal(adapter_from("[webhook.dingtalk]\napp_key = k\napp_secret = s\n", &a, err), ZK_OK);
    assert_non_null(a);
    assert_string_equal(a->name, "dingtalk");
    assert_non_null(a->handle);
    assert_non_null(a->reply);
    /* default api_base: only the official session host is allowed */
    assert_true(hook__dingtalk_url_allowed(a, "https://oapi.dingtalk.com/robot/sendBySession?session=1"));
    assert_true(hook__dingtalk_url_allowed(a, "https://api.dingtalk.com/x"));
    assert_false(hook__dingtalk_url_allowed(a, "http://127.0.0.1:8999/dingtalk/session/xyz"));
    a->free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_vector),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_bad_signatures),
        cmocka_unit_test(test_fresh_group_message),
        cmocka_unit_test(test_single_chat_and_mentions),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_ssrf_allow_list),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
