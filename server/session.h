/* session.h — portal login sessions behind the `zk_session` cookie.
 *
 * A session cookie value is 32 random bytes (RAND_bytes) in base64url
 * without padding (43 characters); only its SHA-256 (hex) is stored, so a
 * copy of the database does not yield usable cookies. Each session carries a
 * CSRF token (16 random bytes, 32 hex characters) the portal must echo in
 * X-CSRF-Token on state-changing requests. Sessions expire at a fixed time
 * (no sliding renewal) and disappear with their user (ON DELETE CASCADE).
 * Called by the HTTP server on login, on every cookie-authenticated request
 * (one indexed SELECT) and on logout; single-threaded like the store. */
#ifndef SRV_SESSION_H
#define SRV_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include "zk.h"
#include "retrieval/store.h"

#define SRV_SESSION_COOKIE_LEN 43   /* characters of a cookie value */
#define SRV_SESSION_CSRF_LEN 32     /* hex characters of a CSRF token */

/* Create a session for user_id lasting ttl_seconds (> 0). The cookie value
 * and the CSRF token are returned once, NUL-terminated, caller frees both
 * with zk_free. ZK_NOTFOUND when the user does not exist. */
zk_rc srv_session_create(ret_store *s, int64_t user_id, int64_t ttl_seconds, char **out_cookie_value,
                         char **out_csrf, char *err);

/* Resolve a presented cookie value: *out_user_id and the session's CSRF
 * token into csrf_out (NUL-terminated). ZK_INVALID, with one message, for a
 * malformed, unknown or expired cookie. */
zk_rc srv_session_lookup(ret_store *s, const char *cookie_value, int64_t *out_user_id, char csrf_out[64],
                         char *err);

/* Log out: remove the session (ZK_OK also when it did not exist). */
zk_rc srv_session_destroy(ret_store *s, const char *cookie_value, char *err);

/* Delete expired sessions; *out_n (may be NULL) receives how many. */
zk_rc srv_session_purge_expired(ret_store *s, int *out_n, char *err);

#endif
