/* hooks_int.h — internals of the webhook pipeline and of the generic and
 * Slack adapters, shared with tests/unit/test_hooks.c: the pure parts of a
 * request (signature checks over raw bytes, payload parsing) separated from
 * the libmicrohttpd request so they can be tested without a server. */
#ifndef SRV_HOOKS_INT_H
#define SRV_HOOKS_INT_H

#include <time.h>
#include "server/webhooks/hooks.h"

#define HOOK_REPLAY_WINDOW_S 300   /* Slack and generic: |now - timestamp| at most 5 minutes */

/* Record (platform, event_id) in webhook_events: 1 when first seen, 0 when
 * already seen, -1 on a database error. An empty event_id is always new. */
int hook__dedup(ret_store *st, const char *platform, const char *event_id);
/* Forget an event again (its answer could not be queued: the retry must work). */
void hook__undedup(ret_store *st, const char *platform, const char *event_id);

/* Generic webhook: X-Zhiku-Signature = hex HMAC-SHA256(secret, ts "." body). */
zk_rc hook__generic_verify(const char *secret, const char *ts, const char *sig, const char *body, size_t len,
                           time_t now, char *err);
/* {"user","question","kb"?,"id"?} → a sync message (kb in reply_to). */
zk_rc hook__generic_parse(const char *body, size_t len, hook_msg **out_msg, char *err);

/* Slack: X-Slack-Signature = "v0=" hex HMAC-SHA256(secret, "v0:" ts ":" body). */
zk_rc hook__slack_verify(const char *secret, const char *ts, const char *sig, const char *body, size_t len,
                         time_t now, char *err);
/* A verified Events API body: url_verification → *http carries the
 * challenge; an app_mention / DM message from a human → *out_msg; anything
 * else → 200 and no message. ZK_PARSE on malformed JSON. */
zk_rc hook__slack_parse(const char *body, size_t len, hook_http *http, hook_msg **out_msg, char *err);
/* Remove "<@U…>" mentions and trim; in place. */
void hook__strip_mentions(char *text);

#endif
