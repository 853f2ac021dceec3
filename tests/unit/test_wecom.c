/* test_wecom.c — the WeCom adapter's crypto and callback core: the
 * reference's official test vectors, encrypt/decrypt round trips signed
 * exactly as WeCom signs, and hostile inputs (bad signatures, padding,
 * truncation, wrong ReceiveId, malformed XML, entity bombs, huge content).
 * handle() itself needs an MHD connection; it is a thin wrapper over
 * wecom__handle_req() tested here, and end-to-end in webhook_wecom.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libxml/parser.h>
#include <openssl/rand.h>

#include "zk.h"
#include "config.h"
#include "server/webhooks/hooks.h"

/* internal entry points of server/webhooks/wecom.c */
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
zk_rc wecom__passive_reply(hook_adapter *a, const char *to_user, const char *content, const char *timestamp,
                           const char *nonce, char **out_xml, char *err);


/* ---- set A / set B from the reference (official Tencent samples) ---- */
#define A_TOKEN "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
#define A_AES "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
#define A_CORP "ww1436e0e65a779aee"
#define A1_SIG "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb"
#define A1_TS "1476416373"
#define A1_NONCE "47744683"
#define A1_ECHO "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
#define A2_SIG "0c3914025cb4b4d68103f6bfc8db550f79dcf48e"
#define A2_TS "1476422779"
#define A2_NONCE "1597212914"
#define A2_ENC                                                                                                       \
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+" \
    "kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4" \
    "Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f4" \
    "9HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"
#define A2_MSG                                                                                                       \
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName><CreateTime>1476422779<" \
    "/CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId><AgentID>1000002</AgentID></" \
    "xml>"
#define A3_ENC                                                                                                       \
    "scEag1243Fmy/fYz4Ux8D7p4YkB7ke5ACskEmTYRW05V6snsrPMq9XMojN/L83xJtLO5rYOYMXwU+elSY+ea9ZeeKE8x1lT1k7c2zuF50ywz5EQP" \
    "fhhmQkYQZZ4uSK5D"
#define A3_SIG "c97692c43141e97e49c0b3ff04fac29bbf630643"

#define B_TOKEN "QDG6eK"
#define B_AES "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
#define B_CORP "wx5823bf96d3bd56c7"
#define B1_SIG "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
#define B1_TS "1409659589"
#define B1_NONCE "263014780"
#define B1_ECHO "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
#define B2_SIG "477715d11cdb4164915debcba66cb864d751f3e6"
#define B2_TS "1409659813"
#define B2_NONCE "1372623149"
#define B2_ENC                                                                                                       \
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3" \
    "TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gs" \
    "ijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUa" \
    "x5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIG" \
    "HBZZIs2pDBS8R07+qN+E7Q=="

/* ---- fixtures ---- */

static char tmpdir[256];
static int ncfg;

static zk_rc adapter_from(const char *ini, hook_adapter **out, char *err)
{
    char path[512];
    snprintf(path, sizeof path, "%s/c%d.conf", tmpdir, ncfg++);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(ini, f);
    fclose(f);
    zk_config *cfg = NULL;
    zk_rc rc = zk_config_load(path, 1, &cfg, err);
    assert_int_equal(rc, ZK_OK);
    rc = hook_wecom_new(cfg, out, err);
    zk_config_free(cfg);   /* the adapter must not keep pointers into cfg */
    unlink(path);
    return rc;
}

static hook_adapter *adapter_a(void)
{
    char err[ZK_ERRLEN];
    hook_adapter *a = NULL;
    assert_int_equal(adapter_from("[webhook.wecom]\ntoken = " A_TOKEN "\nencoding_aes_key = " A_AES
                                  "\ncorp_id = " A_CORP "\nagent_id = 1000002\nsecret = s3cret\n",
                                  &a, err),
                     ZK_OK);
    assert_non_null(a);
    return a;
}

static void key_of(const char *aes, unsigned char key[32])
{
    char err[ZK_ERRLEN];
    assert_int_equal(wecom__key(aes, key, err), ZK_OK);
}

typedef struct {
    hook_http http;
    hook_msg *msg;
    zk_rc rc;
} result;

static void result_free(result *r)
{
    zk_free(r->http.body);
    hook_msg_free(r->msg);
    memset(r, 0, sizeof *r);
}

static result call(hook_adapter *a, const char *method, const char *sig, const char *ts, const char *nonce,
                   const char *echostr, const char *body)
{
    result r;
    char err[ZK_ERRLEN];
    memset(&r, 0, sizeof r);
    r.rc = wecom__handle_req(a, method, sig, ts, nonce, echostr, body ? body : "", body ? strlen(body) : 0, &r.http,
                             &r.msg, err);
    return r;
}

static char *envelope(const char *enc, int cdata)
{
    size_t n = strlen(enc) + 256;
    char *s = malloc(n);
    assert_non_null(s);
    if (cdata)
        snprintf(s, n, "<xml><ToUserName><![CDATA[%s]]></ToUserName><Encrypt><![CDATA[%s]]></Encrypt>"
                       "<AgentID><![CDATA[1000002]]></AgentID></xml>", A_CORP, enc);
    else
        snprintf(s, n, "<xml>\n <ToUserName>%s</ToUserName>\n <Encrypt>%s</Encrypt>\n <AgentID>1000002</AgentID>\n</xml>",
                 A_CORP, enc);
    return s;
}

/* Encrypt inner XML as WeCom would, sign it, POST it; returns the result. */
static result post_inner(hook_adapter *a, const unsigned char key[32], const char *inner, const char *corp,
                         const char *token)
{
    char err[ZK_ERRLEN], sig[41], ts[32], nonce[32];
    char *enc = NULL;
    unsigned r;
    RAND_bytes((unsigned char *)&r, sizeof r);
    snprintf(ts, sizeof ts, "%u", 1700000000u + r % 100000000u);
    snprintf(nonce, sizeof nonce, "%u", r);
    assert_int_equal(wecom__encrypt(key, NULL, inner, strlen(inner), corp, &enc, err), ZK_OK);
    assert_int_equal(wecom__sign(token, ts, nonce, enc, sig), ZK_OK);
    char *body = envelope(enc, r & 1);
    result res = call(a, "POST", sig, ts, nonce, NULL, body);
    free(body);
    zk_free(enc);
    return res;
}

/* POST an already-encrypted (possibly broken) ciphertext, correctly signed. */
static result post_raw_ct(hook_adapter *a, const unsigned char *ct, size_t n)
{
    char *b64 = hook_b64encode(ct, n), sig[41];
    assert_non_null(b64);
    assert_int_equal(wecom__sign(A_TOKEN, "1", "2", b64, sig), ZK_OK);
    char *body = envelope(b64, 1);
    result res = call(a, "POST", sig, "1", "2", NULL, body);
    free(body);
    zk_free(b64);
    return res;
}

/* ---- vectors ---- */

static void test_signature_vectors(void **state)
{
    (void)state;
    char sig[41];
    assert_int_equal(wecom__sign(A_TOKEN, A1_TS, A1_NONCE, A1_ECHO, sig), ZK_OK);
    assert_string_equal(sig, A1_SIG);
    assert_int_equal(wecom__sign(A_TOKEN, A2_TS, A2_NONCE, A2_ENC, sig), ZK_OK);
    assert_string_equal(sig, A2_SIG);
    assert_int_equal(wecom__sign(B_TOKEN, B1_TS, B1_NONCE, B1_ECHO, sig), ZK_OK);
    assert_string_equal(sig, B1_SIG);
    assert_int_equal(wecom__sign(B_TOKEN, B2_TS, B2_NONCE, B2_ENC, sig), ZK_OK);
    assert_string_equal(sig, B2_SIG);
    assert_int_equal(wecom__sign(A_TOKEN, A2_TS, A2_NONCE, A3_ENC, sig), ZK_OK);
    assert_string_equal(sig, A3_SIG);
}

static void test_decrypt_vectors(void **state)
{
    (void)state;
    unsigned char ka[32], kb[32];
    char err[ZK_ERRLEN], *msg = NULL;
    size_t n = 0;
    key_of(A_AES, ka);
    key_of(B_AES, kb);
    assert_int_equal(wecom__decrypt(ka, A1_ECHO, A_CORP, &msg, &n, err), ZK_OK);
    assert_string_equal(msg, "1288432023552776189");
    zk_free(msg);
    /* pad byte 0x16 = 22: proves the 32-byte PKCS#7 handling */
    assert_int_equal(wecom__decrypt(ka, A2_ENC, A_CORP, &msg, &n, err), ZK_OK);
    assert_string_equal(msg, A2_MSG);
    assert_int_equal(n, strlen(A2_MSG));
    zk_free(msg);
    assert_int_equal(wecom__decrypt(kb, B1_ECHO, B_CORP, &msg, &n, err), ZK_OK);
    assert_string_equal(msg, "1616140317555161061");
    zk_free(msg);
    assert_int_equal(wecom__decrypt(kb, B2_ENC, B_CORP, &msg, &n, err), ZK_OK);
    assert_non_null(strstr(msg, "<Content><![CDATA[hello]]></Content>"));
    assert_non_null(strstr(msg, "4561255354251345929"));
    zk_free(msg);
    /* the wrong key never yields a plaintext */
    assert_int_not_equal(wecom__decrypt(kb, A2_ENC, A_CORP, &msg, &n, err), ZK_OK);
    assert_null(msg);
}

static void test_encrypt_vector_a3(void **state)
{
    (void)state;
    unsigned char k[32];
    char err[ZK_ERRLEN], *enc = NULL, sig[41];
    const char *m = "<xml><Content><![CDATA[hello]]></Content></xml>";
    key_of(A_AES, k);
    assert_int_equal(wecom__encrypt(k, (const unsigned char *)"0123456789abcdef", m, strlen(m), A_CORP, &enc, err),
                     ZK_OK);
    assert_string_equal(enc, A3_ENC);
    assert_int_equal(wecom__sign(A_TOKEN, A2_TS, A2_NONCE, enc, sig), ZK_OK);
    assert_string_equal(sig, A3_SIG);
    zk_free(enc);
}

static void test_get_verify_official(void **state)
{
    (void)state;
    hook_adapter *a = adapter_a();
    result r = call(a, "GET", A1_SIG, A1_TS, A1_NONCE, A1_ECHO, NULL);
    assert_int_equal(r.rc, ZK_OK);
    assert_int_equal(r.http.status, 200);
    assert_string_equal(r.http.body, "1288432023552776189");   /* no quotes, no newline */
    assert_int_equal(r.http.len, 19);
    assert_non_null(strstr(r.http.content_type, "text/plain"));
    assert_null(r.msg);
    result_free(&r);
    /* MHD decodes '+' in a query value to ' ': still accepted */
    char echo[] = A1_ECHO;
    for (char *p = echo; *p; p++) if (*p == '+') *p = ' ';
    r = call(a, "GET", A1_SIG, A1_TS, A1_NONCE, echo, NULL);
    assert_int_equal(r.http.status, 200);
    result_free(&r);
    /* a different echostr under the same signature */
    r = call(a, "GET", A1_SIG, A1_TS, "47744684", A1_ECHO, NULL);
    assert_int_equal(r.http.status, 401);
    result_free(&r);
    r = call(a, "GET", A1_SIG, A1_TS, A1_NONCE, NULL, NULL);
    assert_int_equal(r.http.status, 400);
    result_free(&r);
    r = call(a, "PUT", A1_SIG, A1_TS, A1_NONCE, NULL, "x");
    assert_int_equal(r.http.status, 405);
    result_free(&r);
    a->free(a);
}

static void test_post_official(void **state)
{
    (void)state;
    hook_adapter *a = adapter_a();
    for (int cdata = 0; cdata < 2; cdata++) {
        char *body = envelope(A2_ENC, cdata);
        result r = call(a, "POST", A2_SIG, A2_TS, A2_NONCE, NULL, body);
        free(body);
        assert_int_equal(r.rc, ZK_OK);
        assert_int_equal(r.http.status, 200);
        assert_string_equal(r.http.body, "success");
        assert_non_null(r.msg);
        assert_string_equal(r.msg->platform, "wecom");
        assert_string_equal(r.msg->event_id, "1456453720");
        assert_string_equal(r.msg->sender, "ChenJiaShun");
        assert_string_equal(r.msg->chat, "ChenJiaShun");
        assert_string_equal(r.msg->text, "你好");
        assert_int_equal(r.msg->is_group, 0);
        result_free(&r);
    }
    a->free(a);
}

/* ---- round trips ---- */

static void test_round_trips(void **state)
{
    (void)state;
    hook_adapter *a = adapter_a();
    unsigned char k[32];
    key_of(A_AES, k);
    char err[ZK_ERRLEN];
    /* every pad value 1..32 is reached by 32 consecutive lengths */
    for (int len = 0; len < 70; len++) {
        char content[128];
        for (int i = 0; i < len; i++) content[i] = (char)('a' + i % 26);
        content[len] = 0;
        char inner[512];
        snprintf(inner, sizeof inner,
                 "<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[user%d]]></FromUserName>"
                 "<CreateTime>17000000%02d</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[q%s]]>"
                 "</Content><MsgId>%d</MsgId><AgentID>1000002</AgentID></xml>",
                 A_CORP, len, len, content, 900000 + len);
        result r = post_inner(a, k, inner, A_CORP, A_TOKEN);
        assert_int_equal(r.http.status, 200);
        assert_non_null(r.msg);
        char want[160];
        snprintf(want, sizeof want, "q%s", content);
        assert_string_equal(r.msg->text, want);
        snprintf(want, sizeof want, "user%d", len);
        assert_string_equal(r.msg->sender, want);
        snprintf(want, sizeof want, "%d", 900000 + len);
        assert_string_equal(r.msg->event_id, want);
        result_free(&r);
        /* and the raw API round-trips arbitrary bytes, NULs included */
        unsigned char raw[80];
        RAND_bytes(raw, sizeof raw);
        char *enc = NULL, *dec = NULL;
        size_t n = 0;
        assert_int_equal(wecom__encrypt(k, NULL, (const char *)raw, (size_t)len, "corp-x", &enc, err), ZK_OK);
        assert_int_equal(wecom__decrypt(k, enc, "corp-x", &dec, &n, err), ZK_OK);
        assert_int_equal(n, (size_t)len);
        assert_memory_equal(dec, raw, (size_t)len);
        zk_free(enc);
        zk_free(dec);
    }
    /* GET verification with a fresh echostr */
    char *enc = NULL, sig[41];
    assert_int_equal(wecom__encrypt(k, NULL, "7357735773577357", 16, A_CORP, &enc, err), ZK_OK);
    assert_int_equal(wecom__sign(A_TOKEN, "1731000000", "abc", enc, sig), ZK_OK);
    result r = call(a, "GET", sig, "1731000000", "abc", enc, NULL);
    assert_int_equal(r.http.status, 200);
    assert_string_equal(r.http.body, "7357735773577357");
    result_free(&r);
    zk_free(enc);
    a->free(a);
}

static void test_event_and_other_types(void **state)
{
    (void)state;
    hook_adapter *a = adapter_a();
    unsigned char k[32];
    key_of(A_AES, k);
    result r = post_inner(a, k,
                          "<xml><ToUserName>" A_CORP "</ToUserName><FromUserName>bob</FromUserName><CreateTime>1"
                          "</CreateTime><MsgType>event</MsgType><Event>enter_agent</Event></xml>",
                          A_CORP, A_TOKEN);
    assert_int_equal(r.http.status, 200);
    assert_string_equal(r.http.body, "success");
    assert_null(r.msg);
    result_free(&r);
    r = post_inner(a, k,
                   "<xml><FromUserName>bob</FromUserName><MsgType>image</MsgType><PicUrl>x</PicUrl></xml>", A_CORP,
                   A_TOKEN);
    assert_int_equal(r.http.status, 200);
    assert_null(r.msg);
    result_free(&r);
    /* no MsgId: the dedup key is FromUserName + CreateTime */
    r = post_inner(a, k,
                   "<xml><FromUserName>bob</FromUserName><CreateTime>1731234567</CreateTime><MsgType>text</MsgType>"
                   "<Content>hi &amp; bye</Content></xml>",
                   A_CORP, A_TOKEN);
    assert_int_equal(r.http.status, 200);
    assert_non_null(r.msg);
    assert_string_equal(r.msg->event_id, "bob:1731234567");
    assert_string_equal(r.msg->text, "hi & bye");
    result_free(&r);
    /* a text message without FromUserName is malformed */
    r = post_inner(a, k, "<xml><MsgType>text</MsgType><Content>x</Content></xml>", A_CORP, A_TOKEN);
    assert_int_equal(r.http.status, 400);
    assert_null(r.msg);
    result_free(&r);
    a->free(a);
}

/* ---- hostile input ---- */

static void test_wrong_signature(void **state)
{
    (void)state;
    hook_adapter *a = adapter_a();
    char *body = envelope(A2_ENC, 1);
    const char *bad[] = {"0c3914025cb4b4d68103f6bfc8db550f79dcf48f", "0C3914025CB4B4D68103F6BFC8DB550F79DCF48E",
                         "0c3914025cb4b4d68103f6bfc8db550f79dcf48", "", A1_SIG};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        result r = call(a, "POST", bad[i], A2_TS, A2_NONCE, NULL, body);
        assert_int_equal(r.http.status, 401);
        assert_null(r.msg);
        result_free(&r);
    }
    result r = call(a, "POST", NULL, A2_TS, A2_NONCE, NULL, body);
    assert_int_equal(r.http.status, 401);
    result_free(&r);
    r = call(a, "POST", A2_SIG, "1476422780", A2_NONCE, NULL, body);   /* another timestamp */
    assert_int_equal(r.http.status, 401);
    result_free(&r);
    free(body);
    /* right ciphertext, signed with another token */
    unsigned char k[32];
    key_of(A_AES, k);
    r = post_inner(a, k, A2_MSG, A_CORP, "not-the-token");
    assert_int_equal(r.http.status, 401);
    result_free(&r);
    a->free(a);
}

static void test_bad_padding(void **state)
{
    (void)state;
    hook_adapter *a = adapter_a();
    unsigned char k[32], pt[64], ct[64];
    char err[ZK_ERRLEN];
    key_of(A_AES, k);
    const char *m = "<xml/>";
    int pads[] = {0, 33, 255};
    for (size_t i = 0; i < 3; i++) {
        memset(pt, 0, sizeof pt);
        memcpy(pt, "0123456789abcdef", 16);
        pt[19] = (unsigned char)strlen(m);
        memcpy(pt + 20, m, strlen(m));
        memcpy(pt + 20 + strlen(m), A_CORP, strlen(A_CORP));
        memset(pt + 20 + strlen(m) + strlen(A_CORP), pads[i], 64 - (20 + strlen(m) + strlen(A_CORP)));
        pt[63] = (unsigned char)pads[i];
        assert_int_equal(wecom__aes(k, 1, pt, 64, ct, err), ZK_OK);
        result r = post_raw_ct(a, ct, 64);
        assert_int_equal(r.http.status, 400);
        assert_null(r.msg);
        result_free(&r);
    }
    /* the correct pad length (20) but inconsistent pad bytes */
    size_t used = 20 + strlen(m) + strlen(A_CORP);
    memset(pt + used, 64 - (int)used, 64 - used);
    pt[used] = 1;
    assert_int_equal(wecom__aes(k, 1, pt, 64, ct, err), ZK_OK);
    result r = post_raw_ct(a, ct, 64);
    assert_int_equal(r.http.status, 400);
    result_free(&r);
    /* msg_len larger than the payload */
    memset(pt + used, 64 - (int)used, 64 - used);
    pt[16] = 0x7f;
    assert_int_equal(wecom__aes(k, 1, pt, 64, ct, err), ZK_OK);
    r = post_raw_ct(a, ct, 64);
    assert_int_equal(r.http.status, 400);
    result_free(&r);
    /* a full 32-byte pad block leaving less than the 20-byte header */
    memset(pt, 32, 64);
    assert_int_equal(wecom__aes(k, 1, pt, 32, ct, err), ZK_OK);
    r = post_raw_ct(a, ct, 32);
    assert_int_equal(r.http.status, 400);
    result_free(&r);
    a->free(a);
}

static void test_truncated_ciphertext(void **state)
{
    (void)state;
    hook_adapter *a = adapter_a();
    unsigned char *ct = NULL;
    size_t n = 0;
    assert_int_equal(hook_b64decode(A2_ENC, &ct, &n), ZK_OK);
    assert_int_equal(n % 32, 0);
    size_t cuts[] = {n - 16, n - 32, n - 1, 15, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        if (cuts[i] == 0) {
            char sig[41];
            assert_int_equal(wecom__sign(A_TOKEN, "1", "2", "", sig), ZK_OK);
            result r = call(a, "POST", sig, "1", "2", NULL, "<xml><Encrypt></Encrypt></xml>");
            assert_int_equal(r.http.status, 400);
            result_free(&r);
            continue;
        }
        result r = post_raw_ct(a, ct, cuts[i]);
        assert_int_equal(r.http.status, 400);
        assert_null(r.msg);
        result_free(&r);
    }
    zk_free(ct);
    /* not base64 at all (signed, so it reaches the decoder) */
    char sig[41];
    assert_int_equal(wecom__sign(A_TOKEN, "1", "2", "!!!notbase64", sig), ZK_OK);
    result r = call(a, "POST", sig, "1", "2", NULL, "<xml><Encrypt>!!!notbase64</Encrypt></xml>");
    assert_int_equal(r.http.status, 400);
    result_free(&r);
    a->free(a);
}

static void test_wrong_receive_id(void **state)
{
    (void)state;
    hook_adapter *a = adapter_a();
    unsigned char k[32];
    key_of(A_AES, k);
    const char *others[] = {"ww1436e0e65a779aef", "ww1436e0e65a779ae", "ww1436e0e65a779aeex", ""};
    for (size_t i = 0; i < 4; i++) {
        result r = post_inner(a, k, A2_MSG, others[i], A_TOKEN);
        assert_int_equal(r.http.status, 400);
        assert_null(r.msg);
        result_free(&r);
    }
    /* GET: a valid echostr for another corp */
    char err[ZK_ERRLEN], *enc = NULL, sig[41];
    assert_int_equal(wecom__encrypt(k, NULL, "123", 3, "wwother", &enc, err), ZK_OK);
    assert_int_equal(wecom__sign(A_TOKEN, "1", "2", enc, sig), ZK_OK);
    result r = call(a, "GET", sig, "1", "2", enc, NULL);
    assert_int_equal(r.http.status, 400);
    result_free(&r);
    zk_free(enc);
    a->free(a);
}

static void test_config(void **state)
{
    (void)state;
    char err[ZK_ERRLEN];
    hook_adapter *a = (hook_adapter *)1;
    /* absent section: disabled */
    assert_int_equal(adapter_from("[server]\n", &a, err), ZK_OK);
    assert_null(a);
    const char *bad[] = {
        /* 42 and 44 characters */
        "[webhook.wecom]\ntoken=t\nencoding_aes_key=6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhU\ncorp_id=c\nagent_id=1\nsecret=s\n",
        "[webhook.wecom]\ntoken=t\nencoding_aes_key=6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUtt\ncorp_id=c\nagent_id=1\nsecret=s\n",
        /* not base64 */
        "[webhook.wecom]\ntoken=t\nencoding_aes_key=6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhU!\ncorp_id=c\nagent_id=1\nsecret=s\n",
        "[webhook.wecom]\ntoken=t\ncorp_id=c\nagent_id=1\nsecret=s\n",
        "[webhook.wecom]\ntoken=t\nencoding_aes_key=" A_AES "\nagent_id=1\nsecret=s\n",
        "[webhook.wecom]\ntoken=t\nencoding_aes_key=" A_AES "\ncorp_id=c\nagent_id=abc\nsecret=s\n",
        "[webhook.wecom]\ntoken=t\nencoding_aes_key=" A_AES "\ncorp_id=c\nagent_id=1\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        a = NULL;
        err[0] = 0;
        assert_int_equal(adapter_from(bad[i], &a, err), ZK_CONFIG);
        assert_null(a);
        assert_non_null(strstr(err, "wecom"));
    }
    unsigned char k[32];
    assert_int_equal(wecom__key("short", k, err), ZK_CONFIG);
    assert_int_equal(wecom__key(NULL, k, err), ZK_CONFIG);
    /* the full section works, api_base defaults */
    a = adapter_a();
    assert_string_equal(a->name, "wecom");
    assert_int_equal(a->markdown, HOOK_MARKDOWN);
    assert_true(a->max_reply_chars > 0 && a->max_reply_chars <= 4096);
    a->free(a);
}

static void test_malformed_xml(void **state)
{
    (void)state;
    hook_adapter *a = adapter_a();
    unsigned char k[32];
    key_of(A_AES, k);
    const char *bodies[] = {"", "not xml", "<xml><Encrypt>" A2_ENC "</Encrypt>", "<xml><Other>1</Other></xml>",
                            "<xml><Encrypt>" A2_ENC "</Encrypt></xml><extra/>", "\xff\xfe<\x00x"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        result r = call(a, "POST", A2_SIG, A2_TS, A2_NONCE, NULL, bodies[i]);
        assert_int_equal(r.http.status, 400);
        assert_null(r.msg);
        result_free(&r);
    }
    /* a signed, decryptable payload that is not XML */
    const char *inners[] = {"hello", "<xml><MsgType>text</MsgType>", "<a></b>"};
    for (size_t i = 0; i < 3; i++) {
        result r = post_inner(a, k, inners[i], A_CORP, A_TOKEN);
        assert_int_equal(r.http.status, 400);
        result_free(&r);
    }
    a->free(a);
}

#define LOL_DTD                                                                                                      \
    "<!DOCTYPE xml [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">"                        \
    "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\"><!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">"                   \
    "<!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\"><!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\">"                   \
    "<!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\"><!ENTITY h \"&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;\">"                   \
    "<!ENTITY i \"&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;\"><!ENTITY x SYSTEM \"file:///etc/passwd\">]>"

static void test_entities_inert(void **state)
{
    (void)state;
    hook_adapter *a = adapter_a();
    unsigned char k[32];
    key_of(A_AES, k);
    double t0 = zk_now();
    /* in the envelope: refused before anything is expanded */
    result r = call(a, "POST", A2_SIG, A2_TS, A2_NONCE, NULL, LOL_DTD "<xml><Encrypt>&i;</Encrypt></xml>");
    assert_int_equal(r.http.status, 400);
    result_free(&r);
    /* in the decrypted message */
    r = post_inner(a, k,
                   LOL_DTD "<xml><FromUserName>bob</FromUserName><MsgType>text</MsgType><MsgId>1</MsgId>"
                           "<Content>&i;&x;</Content></xml>",
                   A_CORP, A_TOKEN);
    assert_int_equal(r.http.status, 400);
    assert_null(r.msg);
    result_free(&r);
    /* undeclared entities without a DTD are not well-formed */
    r = post_inner(a, k,
                   "<xml><FromUserName>bob</FromUserName><MsgType>text</MsgType><Content>&x;</Content></xml>",
                   A_CORP, A_TOKEN);
    assert_int_equal(r.http.status, 400);
    result_free(&r);
    assert_true(zk_now() - t0 < 2.0);
    a->free(a);
}

static void test_huge_content(void **state)
{
    (void)state;
    hook_adapter *a = adapter_a();
    unsigned char k[32];
    key_of(A_AES, k);
    size_t n = 200000;   /* 600 KB of 知 */
    char *inner = malloc(n * 3 + 256);
    assert_non_null(inner);
    char *p = inner + sprintf(inner, "<xml><FromUserName>bob</FromUserName><MsgType>text</MsgType><MsgId>7</MsgId><Content>");
    for (size_t i = 0; i < n; i++) { memcpy(p, "知", 3); p += 3; }
    strcpy(p, "</Content></xml>");
    result r = post_inner(a, k, inner, A_CORP, A_TOKEN);
    assert_int_equal(r.http.status, 200);
    assert_non_null(r.msg);
    size_t len = strlen(r.msg->text);
    assert_true(len > 0 && len <= 4096);
    assert_int_equal(len % 3, 0);   /* cut on a code point boundary */
    assert_memory_equal(r.msg->text + len - 3, "知", 3);
    result_free(&r);
    free(inner);
    /* a body beyond the 1 MiB cap of the envelope parser is refused */
    size_t big = (1u << 20) + 10;
    char *body = malloc(big + 1);
    assert_non_null(body);
    memset(body, ' ', big);
    memcpy(body, "<xml><Encrypt>", 14);
    body[big] = 0;
    r = call(a, "POST", A2_SIG, A2_TS, A2_NONCE, NULL, body);
    assert_int_equal(r.http.status, 400);
    result_free(&r);
    free(body);
    a->free(a);
}

static void test_passive_reply(void **state)
{
    (void)state;
    hook_adapter *a = adapter_a();
    unsigned char k[32];
    key_of(A_AES, k);
    char err[ZK_ERRLEN], *xml = NULL;
    assert_int_equal(wecom__passive_reply(a, "ChenJiaShun", "答案 ]]> <b>&", "1476422779", "1597212914", &xml, err),
                     ZK_OK);
    /* pull Encrypt and MsgSignature back out and check them */
    char *e0 = strstr(xml, "<Encrypt><![CDATA["), *s0 = strstr(xml, "<MsgSignature><![CDATA[");
    assert_non_null(e0);
    assert_non_null(s0);
    e0 += strlen("<Encrypt><![CDATA[");
    s0 += strlen("<MsgSignature><![CDATA[");
    char enc[4096], sig[41], want[41];
    size_t el = (size_t)(strstr(e0, "]]>") - e0);
    assert_true(el < sizeof enc);
    memcpy(enc, e0, el);
    enc[el] = 0;
    memcpy(sig, s0, 40);
    sig[40] = 0;
    assert_int_equal(wecom__sign(A_TOKEN, "1476422779", "1597212914", enc, want), ZK_OK);
    assert_string_equal(sig, want);
    assert_non_null(strstr(xml, "<TimeStamp>1476422779</TimeStamp>"));
    char *plain = NULL;
    size_t n;
    assert_int_equal(wecom__decrypt(k, enc, A_CORP, &plain, &n, err), ZK_OK);
    assert_non_null(strstr(plain, "<ToUserName><![CDATA[ChenJiaShun]]></ToUserName>"));
    /* the content survives an XML parse intact, "]]>" included */
    xmlDoc *d = xmlReadMemory(plain, (int)n, NULL, NULL, XML_PARSE_NONET | XML_PARSE_NOCDATA);
    assert_non_null(d);
    xmlChar *c = NULL;
    for (xmlNode *x = xmlDocGetRootElement(d)->children; x; x = x->next)
        if (x->type == XML_ELEMENT_NODE && !strcmp((const char *)x->name, "Content")) c = xmlNodeGetContent(x);
    assert_non_null(c);
    assert_string_equal((const char *)c, "答案 ]]> <b>&");
    xmlFree(c);
    xmlFreeDoc(d);
    zk_free(plain);
    zk_free(xml);
    a->free(a);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_wecom.XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    xmlInitParser();
    zk_log_set_level(ZK_LOG_ERROR);   /* rejections log warnings */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rmdir(tmpdir);
    xmlCleanupParser();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_vectors),   cmocka_unit_test(test_decrypt_vectors),
        cmocka_unit_test(test_encrypt_vector_a3),   cmocka_unit_test(test_get_verify_official),
        cmocka_unit_test(test_post_official),       cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_event_and_other_types), cmocka_unit_test(test_wrong_signature),
        cmocka_unit_test(test_bad_padding),         cmocka_unit_test(test_truncated_ciphertext),
        cmocka_unit_test(test_wrong_receive_id),    cmocka_unit_test(test_config),
        cmocka_unit_test(test_malformed_xml),       cmocka_unit_test(test_entities_inert),
        cmocka_unit_test(test_huge_content),        cmocka_unit_test(test_passive_reply),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
