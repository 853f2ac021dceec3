/* fuzz_chat_stream.c — libFuzzer target: the model client's response
 * parser (SSE `data:` events, NDJSON lines, whole-JSON answers, <think>
 * splitting, error events) in llm/chat.c.
 *
 * The parser is a set of static functions driven by curl's write callback,
 * so this file #includes llm/chat.c to reach them without widening the
 * product's API (no curl handle is created: the format is chosen up front,
 * as on_body() would from the Content-Type). The Makefile links this target
 * against a library archive, whose chat.o is then never pulled in (every
 * symbol it defines is already defined here). The end-of-body handling
 * mirrors attempt_run() after the transfer.
 * First byte: format (SSE, NDJSON, JSON); the body is fed in byte-driven
 * pieces so lines and events are split at every possible place. */
#include "llm/chat.c"

#include <stdint.h>

#include "fuzz_util.h"

static int on_token(void *ctx, const char *text, size_t len)
{
    size_t *total = ctx;
    if (len && !text) abort();
    *total += len;
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    zk_log_set_level(ZK_LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int fmts[] = {FMT_SSE, FMT_NDJSON, FMT_JSON};
    provider p;
    attempt a;
    size_t streamed = 0;
    if (size < 1) return 0;
    memset(&p, 0, sizeof p);
    memset(&a, 0, sizeof a);
    snprintf(p.name, sizeof p.name, "fuzz");
    a.p = &p;
    a.fmt = fmts[data[0] % 3];
    a.on_token = on_token;
    a.ctx = &streamed;
    buf_init(&a.line, CHAT_MAX_LINE);
    buf_init(&a.event, CHAT_MAX_LINE);
    buf_init(&a.raw, CHAT_MAX_BODY);
    buf_init(&a.text, CHAT_MAX_BODY);
    buf_init(&a.reasoning, CHAT_MAX_BODY);
    buf_init(&a.think, CHAT_MAX_BODY);

    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    for (size_t off = 0; off < len && !a.failed;) {
        size_t n = fuzz_piece(data + 1, len, off);
        if (a.fmt == FMT_JSON) buf_append(&a.raw, body + off, n);
        else feed(&a, body + off, n);
        off += n;
    }
    /* end of body, as in attempt_run() */
    if (a.fmt == FMT_JSON) {
        handle_json_text(&a, a.raw.data ? a.raw.data : "", a.raw.len);
    } else {
        if (a.line.len) { handle_line(&a, a.line.data, a.line.len); buf_reset(&a.line); }
        if (a.fmt == FMT_SSE) dispatch_event(&a);
    }
    if (!a.failed && a.think.len) {
        const char *t = a.think.data;
        size_t tl = a.think.len, skip = 0;
        if (a.think_state == TH_IN) {
            const char *o = strstr(t, "<think>");
            skip = o ? (size_t)(o - t) + 7 : 0;
        }
        a.think_state = TH_OUT;
        emit(&a, t + skip, tl - skip);
    }
    if (streamed != a.text.len) abort();   /* every answer byte went to the callback */
    buf_free(&a.line);
    buf_free(&a.event);
    buf_free(&a.raw);
    buf_free(&a.text);
    buf_free(&a.reasoning);
    buf_free(&a.think);
    return 0;
}
