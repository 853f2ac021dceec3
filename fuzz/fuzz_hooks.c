/* fuzz_hooks.c — libFuzzer target: the generic and Slack webhook adapters'
 * pure parts (server/webhooks/hooks_int.h): payload parsing of verified
 * bodies, mention stripping, and the HMAC signature checks fed hostile
 * timestamps and signatures. First byte selects the mode (generic parse,
 * Slack parse, strip mentions, signature checks). */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zk.h"
#include "server/webhooks/hooks_int.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    zk_log_set_level(ZK_LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[ZK_ERRLEN];
    hook_msg *msg = NULL;
    hook_http http;
    if (size < 1) return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    char *s = fuzz_cstr(data + 1, len);
    memset(&http, 0, sizeof http);
    switch (data[0] % 4) {
    case 0:
        if (hook__generic_parse(body, len, &msg, err) == ZK_OK) hook_msg_free(msg);
        break;
    case 1:
        if (hook__slack_parse(body, len, &http, &msg, err) == ZK_OK) hook_msg_free(msg);
        zk_free(http.body);
        break;
    case 2:
        hook__strip_mentions(s);
        break;
    default: {
        /* input = "ts\nsig" (either part may be missing or hostile) */
        char *nl = strchr(s, '\n');
        const char *sig = nl ? nl + 1 : "";
        if (nl) *nl = '\0';
        hook__generic_verify("secret", s, sig, "{}", 2, (time_t)1700000000, err);
        hook__slack_verify("secret", s, sig, "{}", 2, (time_t)1700000000, err);
        break;
    }
    }
    free(s);
    return 0;
}
