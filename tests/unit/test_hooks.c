/* test_hooks.c — the webhook pipeline's pure parts: generic and Slack
 * signature checks (the reference's Slack test vector, wrong signatures,
 * stale timestamps), Slack event parsing (url_verification, mentions, bot
 * loops, malformed bodies), answer rendering and cutting on UTF-8
 * boundaries, base64 with padding, and event deduplication in a real
 * store in a temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "utf8.h"
#include "retrieval/store.h"
#include "server/webhooks/hooks_int.h"

/* ---- generic ------------------------------------------------------------------------- */

static const char GSECRET[] = "zhiku-generic-test-secret";
static const char GBODY[] = "{\"user\":\"alice\",\"question\":\"What is the leave policy?\"}";
static const char GSIG[] = "a9a050510b15db4b9c9148ed72e0a4cc490a9a1215df3d0784751a14d1f9d53f";   /* python hmac */

static void test_generic_verify(void **state)
{
    (void)state;
    char err[ZK_ERRLEN];
    size_t n = strlen(GBODY);
    assert_int_equal(hook__generic_verify(GSECRET, "1700000000", GSIG, GBODY, n, 1700000000, err), ZK_OK);
    assert_int_equal(hook__generic_verify(GSECRET, "1700000000", GSIG, GBODY, n, 1700000000 + 300, err), ZK_OK);
    /* upper-case hex is the same signature */
    char upper[65];
    for (int i = 0; i < 65; i++) upper[i] = (char)(GSIG[i] >= 'a' && GSIG[i] <= 'f' ? GSIG[i] - 32 : GSIG[i]);
    assert_int_equal(hook__generic_verify(GSECRET, "1700000000", upper, GBODY, n, 1700000000, err), ZK_OK);
    /* expired / from the future */
    assert_int_equal(hook__generic_verify(GSECRET, "1700000000", GSIG, GBODY, n, 1700000000 + 301, err), ZK_INVALID);
    assert_int_equal(hook__generic_verify(GSECRET, "1700000000", GSIG, GBODY, n, 1700000000 - 301, err), ZK_INVALID);
    /* tampered body, wrong secret, wrong/missing/short signature, bad timestamp */
    assert_int_equal(hook__generic_verify(GSECRET, "1700000000", GSIG, GBODY, n - 1, 1700000000, err), ZK_INVALID);
    assert_int_equal(hook__generic_verify("another-secret-0000", "1700000000", GSIG, GBODY, n, 1700000000, err),
                     ZK_INVALID);
    char bad[65];
    memcpy(bad, GSIG, 65);
    bad[10] = bad[10] == '0' ? '1' : '0';
    assert_int_equal(hook__generic_verify(GSECRET, "1700000000", bad, GBODY, n, 1700000000, err), ZK_INVALID);
    assert_int_equal(hook__generic_verify(GSECRET, "1700000000", NULL, GBODY, n, 1700000000, err), ZK_INVALID);
    assert_int_equal(hook__generic_verify(GSECRET, NULL, GSIG, GBODY, n, 1700000000, err), ZK_INVALID);
    assert_int_equal(hook__generic_verify(GSECRET, "1700000000", "abc", GBODY, n, 1700000000, err), ZK_INVALID);
    assert_int_equal(hook__generic_verify(GSECRET, "17000x0000", GSIG, GBODY, n, 1700000000, err), ZK_INVALID);
    assert_int_equal(hook__generic_verify(GSECRET, "", GSIG, GBODY, n, 1700000000, err), ZK_INVALID);
}

static void test_generic_parse(void **state)
{
    (void)state;
    char err[ZK_ERRLEN];
    hook_msg *m = NULL;
    const char *ok = "{\"user\":\"alice\",\"question\":\"年假有几天？\",\"kb\":\"hr\",\"id\":\"e1\"}";
    assert_int_equal(hook__generic_parse(ok, strlen(ok), &m, err), ZK_OK);
    assert_non_null(m);
    assert_true(m->sync);
    assert_string_equal(m->platform, "generic");
    assert_string_equal(m->sender, "alice");
    assert_string_equal(m->text, "年假有几天？");
    assert_string_equal(m->reply_to, "hr");
    assert_string_equal(m->event_id, "e1");
    hook_msg_free(m);
    static const char *const bad[] = {"", "not json", "[]", "{\"user\":\"a\"}", "{\"question\":\"q\"}",
                                      "{\"user\":\"\",\"question\":\"q\"}", "{\"user\":\"a\",\"question\":\"\"}",
                                      "{\"user\":\"a\",\"question\":3}", "{\"user\":\"a\",\"question\":\"q\",\"kb\":7}",
                                      "{\"user\":\"a\",\"question\":\"q\",\"user\":\"b\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = NULL;
        assert_int_not_equal(hook__generic_parse(bad[i], strlen(bad[i]), &m, err), ZK_OK);
        assert_null(m);
    }
}

/* ---- Slack ---------------------------------------------------------------------------- */

static const char SSECRET[] = "8f742231b10e8888abcd99yyyzzz85a5";
static const char STS[] = "1531420618";
static const char SBODY[] =
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar"
    "&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com"
    "%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."
    "803a0bc887a14d10d2c447fce8b6703c";
static const char SSIG[] = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

static void test_slack_verify(void **state)
{
    (void)state;
    char err[ZK_ERRLEN];
    size_t n = strlen(SBODY);
    assert_int_equal(hook__slack_verify(SSECRET, STS, SSIG, SBODY, n, 1531420618, err), ZK_OK);
    /* the same request with the real clock is stale */
    assert_int_equal(hook__slack_verify(SSECRET, STS, SSIG, SBODY, n, time(NULL), err), ZK_INVALID);
    assert_int_equal(hook__slack_verify(SSECRET, STS, SSIG, SBODY, n, 1531420618 + 301, err), ZK_INVALID);
    /* tampered body, timestamp, secret, signature */
    assert_int_equal(hook__slack_verify(SSECRET, STS, SSIG, SBODY, n - 1, 1531420618, err), ZK_INVALID);
    assert_int_equal(hook__slack_verify(SSECRET, "1531420619", SSIG, SBODY, n, 1531420618, err), ZK_INVALID);
    assert_int_equal(hook__slack_verify("8f742231b10e8888abcd99yyyzzz85a6", STS, SSIG, SBODY, n, 1531420618, err),
                     ZK_INVALID);
    assert_int_equal(hook__slack_verify(SSECRET, STS, SSIG + 3, SBODY, n, 1531420618, err), ZK_INVALID);   /* no v0= */
    char v1[sizeof SSIG];
    memcpy(v1, SSIG, sizeof SSIG);
    v1[1] = '1';
    assert_int_equal(hook__slack_verify(SSECRET, STS, v1, SBODY, n, 1531420618, err), ZK_INVALID);
    assert_int_equal(hook__slack_verify(SSECRET, NULL, SSIG, SBODY, n, 1531420618, err), ZK_INVALID);
    assert_int_equal(hook__slack_verify(SSECRET, STS, NULL, SBODY, n, 1531420618, err), ZK_INVALID);
    assert_int_equal(hook__slack_verify(SSECRET, "-1531420618", SSIG, SBODY, n, 1531420618, err), ZK_INVALID);
}

static void test_slack_parse(void **state)
{
    (void)state;
    char err[ZK_ERRLEN];
    hook_http h;
    hook_msg *m = NULL;
    memset(&h, 0, sizeof h);

    const char *uv = "{\"token\":\"t\",\"challenge\":\"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P\","
                     "\"type\":\"url_verification\"}";
    assert_int_equal(hook__slack_parse(uv, strlen(uv), &h, &m, err), ZK_OK);
    assert_null(m);
    assert_int_equal(h.status, 200);
    assert_string_equal(h.body, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");

    const char *mention =
        "{\"type\":\"event_callback\",\"team_id\":\"T1\",\"event_id\":\"Ev01\",\"event\":{\"type\":\"app_mention\","
        "\"user\":\"U061F7AUR\",\"text\":\"<@U0LAN0Z89> is it  &lt;everything&gt; a river should be? \","
        "\"ts\":\"1515449522.000016\",\"channel\":\"C0LAN2Q65\",\"event_ts\":\"1515449522000016\"}}";
    assert_int_equal(hook__slack_parse(mention, strlen(mention), &h, &m, err), ZK_OK);
    assert_non_null(m);
    assert_int_equal(h.status, 200);
    assert_string_equal(m->text, "is it  <everything> a river should be?");
    assert_string_equal(m->event_id, "Ev01");
    assert_string_equal(m->sender, "U061F7AUR");
    assert_string_equal(m->chat, "C0LAN2Q65");
    assert_string_equal(m->reply_to, "1515449522.000016");   /* answered in a thread */
    assert_true(m->is_group);
    assert_false(m->sync);
    hook_msg_free(m);
    m = NULL;

    const char *dm = "{\"type\":\"event_callback\",\"event_id\":\"Ev02\",\"event\":{\"type\":\"message\","
                     "\"channel_type\":\"im\",\"user\":\"U1\",\"text\":\"年假？\",\"ts\":\"1.2\",\"channel\":\"D1\"}}";
    assert_int_equal(hook__slack_parse(dm, strlen(dm), &h, &m, err), ZK_OK);
    assert_non_null(m);
    assert_false(m->is_group);
    assert_string_equal(m->reply_to, "");
    assert_string_equal(m->text, "年假？");
    hook_msg_free(m);
    m = NULL;

    /* no answer: the bot's own message, an edit, a channel message without a mention, other types */
    static const char *const ignored[] = {
        "{\"type\":\"event_callback\",\"event_id\":\"Ev03\",\"event\":{\"type\":\"message\",\"channel_type\":\"im\","
        "\"user\":\"U1\",\"bot_id\":\"B1\",\"text\":\"answer\",\"channel\":\"D1\"}}",
        "{\"type\":\"event_callback\",\"event_id\":\"Ev04\",\"event\":{\"type\":\"message\",\"channel_type\":\"im\","
        "\"subtype\":\"message_changed\",\"user\":\"U1\",\"text\":\"x\",\"channel\":\"D1\"}}",
        "{\"type\":\"event_callback\",\"event_id\":\"Ev05\",\"event\":{\"type\":\"message\",\"channel_type\":\"channel\","
        "\"user\":\"U1\",\"text\":\"x\",\"channel\":\"C1\"}}",
        "{\"type\":\"event_callback\",\"event_id\":\"Ev06\",\"event\":{\"type\":\"reaction_added\",\"user\":\"U1\"}}",
        "{\"type\":\"app_rate_limited\"}",
        "{\"type\":\"event_callback\",\"event\":{\"type\":\"app_mention\",\"user\":\"U1\",\"text\":\"x\",\"channel\":\"C\"}}",
    };
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) {
        assert_int_equal(hook__slack_parse(ignored[i], strlen(ignored[i]), &h, &m, err), ZK_OK);
        assert_null(m);
        assert_int_equal(h.status, 200);
    }
    /* malformed */
    static const char *const bad[] = {"", "{", "[1,2]", "{\"type\":\"url_verification\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_not_equal(hook__slack_parse(bad[i], strlen(bad[i]), &h, &m, err), ZK_OK);
        assert_null(m);
        assert_int_equal(h.status, 400);
    }
    zk_free(h.body);
}

static void test_strip_mentions(void **state)
{
    (void)state;
    char a[] = "  <@U1> <@U2|bob>hello <@U3>  ";
    hook__strip_mentions(a);
    assert_string_equal(a, "hello");
    char b[] = "<@U1";
    hook__strip_mentions(b);
    assert_string_equal(b, "<@U1");
    char c[] = "";
    hook__strip_mentions(c);
    assert_string_equal(c, "");
}

/* ---- rendering ---------------------------------------------------------------------- */

static void test_render(void **state)
{
    (void)state;
    hook_source src[2] = {{.n = 1, .title = "Leave policy [2024]", .id = "hr/leave.md"}, {.n = 2, .title = "A<b>&c|d", .id = "x"}};
    char *t = hook_render("Annual leave is 15 days [1].", src, 2, HOOK_PLAIN, 0, "");
    assert_string_equal(t, "Annual leave is 15 days [1].\n\nSources / 来源:\n[1] Leave policy [2024]\n[2] A<b>&c|d");
    zk_free(t);
    t = hook_render("Annual leave is 15 days [1].", src, 1, HOOK_PLAIN, 0, "https://kb.example.com");
    assert_string_equal(t, "Annual leave is 15 days [1].\n\nSources / 来源:\n[1] Leave policy [2024] "
                           "https://kb.example.com/#/doc/hr%2Fleave.md");
    zk_free(t);
    t = hook_render("a < b & c [2]", src, 2, HOOK_MRKDWN, 0, "https://kb");
    assert_string_equal(t, "a &lt; b &amp; c [2]\n\n*Sources / 来源:*\n[1] <https://kb/#/doc/hr%2Fleave.md|Leave policy "
                           "[2024]>\n[2] <https://kb/#/doc/x|A&lt;b&gt;&amp;c/d>");
    zk_free(t);
    t = hook_render("x", src, 1, HOOK_MARKDOWN, 0, "https://kb");
    assert_string_equal(t, "x\n\n**Sources / 来源:**\n[1] [Leave policy (2024)](https://kb/#/doc/hr%2Fleave.md)");
    zk_free(t);
    t = hook_render("no sources", NULL, 0, HOOK_MARKDOWN, 0, "https://kb");
    assert_string_equal(t, "no sources");
    zk_free(t);
}

static void test_render_cut(void **state)
{
    (void)state;
    /* 3-byte CJK characters and a 4-byte emoji, so byte limits fall inside characters */
    char answer[4096] = "";
    for (int i = 0; i < 200; i++) strcat(answer, i % 7 == 3 ? "😀" : "年假");
    hook_source src[1] = {{.n = 1, .title = "员工手册", .id = "handbook"}};
    static const char *const portals[] = {"", "https://kb.example.com"};
    for (int style = HOOK_PLAIN; style <= HOOK_MRKDWN; style++)
        for (size_t p = 0; p < 2; p++) {
            char *whole = hook_render(answer, src, 1, style, 0, portals[p]);
            size_t wlen = strlen(whole);
            zk_free(whole);
            for (size_t max = 1; max < 1400; max += (max < 80 ? 1 : 37)) {
                char *t = hook_render(answer, src, 1, style, max, portals[p]);
                assert_non_null(t);
                size_t n = strlen(t);
                assert_true(n <= max);
                assert_true(utf8_valid(t, n));
                if (wlen <= max) assert_int_equal(n, wlen);
                else if (max >= 200) {   /* room for the marker and the link */
                    assert_non_null(strstr(t, "…"));
                    if (p) assert_non_null(strstr(t, "https://kb.example.com/"));
                }
                zk_free(t);
            }
        }
    /* fits exactly: unchanged */
    char *full = hook_render("年假", NULL, 0, HOOK_PLAIN, 0, "");
    char *t = hook_render("年假", NULL, 0, HOOK_PLAIN, strlen(full), "");
    assert_string_equal(t, full);
    zk_free(t);
    /* one byte short: cut before the second character */
    t = hook_render("年假年假", NULL, 0, HOOK_PLAIN, 11, "");
    assert_string_equal(t, "年假…");
    zk_free(t);
    zk_free(full);
    /* mrkdwn entities are never split */
    t = hook_render("a&&&&&&&&&&&&&&&&&&&&", NULL, 0, HOOK_MRKDWN, 12, "");
    assert_true(strlen(t) <= 12);
    const char *amp = strrchr(t, '&');
    assert_true(!amp || !strncmp(amp, "&amp;", 5));
    zk_free(t);
}

/* ---- helpers ------------------------------------------------------------------------- */

static void test_b64_and_compare(void **state)
{
    (void)state;
    unsigned char *out = NULL;
    size_t n = 0;
    assert_int_equal(hook_b64decode("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=", &out, &n), ZK_OK);
    assert_int_equal(n, 32);
    zk_free(out);
    /* WeCom: 43-char EncodingAESKey + "=" is a 32-byte key (EVP_DecodeBlock says 33) */
    assert_int_equal(hook_b64decode("6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt=", &out, &n), ZK_OK);
    assert_int_equal(n, 32);
    unsigned char *out2 = NULL;
    size_t n2 = 0;
    assert_int_equal(hook_b64decode("6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", &out2, &n2), ZK_OK);
    assert_int_equal(n2, 32);
    assert_memory_equal(out, out2, 32);
    zk_free(out);
    zk_free(out2);
    assert_int_equal(hook_b64decode("aGk=", &out, &n), ZK_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(out, "hi", 2);
    zk_free(out);
    assert_int_equal(hook_b64decode("", &out, &n), ZK_OK);
    assert_int_equal(n, 0);
    zk_free(out);
    assert_int_not_equal(hook_b64decode("a", &out, &n), ZK_OK);
    assert_int_not_equal(hook_b64decode("aG k", &out, &n), ZK_OK);
    assert_int_not_equal(hook_b64decode("a=Gk", &out, &n), ZK_OK);
    char *e = hook_b64encode((const unsigned char *)"hi", 2);
    assert_string_equal(e, "aGk=");
    zk_free(e);
    assert_true(hook_ct_equal("abc", "abc"));
    assert_false(hook_ct_equal("abc", "abd"));
    assert_false(hook_ct_equal("abc", "abcd"));
    assert_false(hook_ct_equal(NULL, "a"));
    hook_http h;
    memset(&h, 0, sizeof h);
    hook_http_set(&h, 200, NULL, "x");
    hook_http_set(&h, 401, "application/json", NULL);
    assert_int_equal(h.status, 401);
    assert_null(h.body);
    assert_int_equal(h.len, 0);
    hook_msg_free(NULL);
}

/* ---- dedup ------------------------------------------------------------------------------- */

static void test_dedup(void **state)
{
    (void)state;
    char dir[] = "/tmp/zk_test_hooks_XXXXXX", err[ZK_ERRLEN], cmd[256];
    assert_non_null(mkdtemp(dir));
    ret_store *st = NULL;
    assert_int_equal(ret_store_open(dir, 0, &st, err), ZK_OK);
    assert_int_equal(hook__dedup(st, "slack", "Ev1"), 1);
    assert_int_equal(hook__dedup(st, "slack", "Ev1"), 0);    /* a retry: no second answer */
    assert_int_equal(hook__dedup(st, "feishu", "Ev1"), 1);   /* ids are per platform */
    assert_int_equal(hook__dedup(st, "slack", "Ev2"), 1);
    assert_int_equal(hook__dedup(st, "slack", ""), 1);       /* no id: cannot deduplicate */
    assert_int_equal(hook__dedup(st, "slack", ""), 1);
    hook__undedup(st, "slack", "Ev1");                       /* could not be queued: the retry answers */
    assert_int_equal(hook__dedup(st, "slack", "Ev1"), 1);
    assert_int_equal(hook__dedup(st, "slack", "Ev1"), 0);
    ret_store_close(st);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generic_verify), cmocka_unit_test(test_generic_parse),
        cmocka_unit_test(test_slack_verify),   cmocka_unit_test(test_slack_parse),
        cmocka_unit_test(test_strip_mentions), cmocka_unit_test(test_render),
        cmocka_unit_test(test_render_cut),     cmocka_unit_test(test_b64_and_compare),
        cmocka_unit_test(test_dedup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
