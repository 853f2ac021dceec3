/* session.c — portal sessions (see session.h). Creation costs two
 * RAND_bytes calls and one INSERT; lookup, on every cookie-authenticated
 * request, is a SHA-256 of the presented value plus one SELECT on the unique
 * token_sha256 index, then a constant-time compare of the stored digest.
 * Expired rows are ignored by lookup and removed by srv_session_purge_expired
 * (the server calls it periodically) or at logout. */
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "server/session.h"

#define SESSION_RAND 32
#define CSRF_RAND 16
#define SESSION_MAX_TTL (366LL * 86400)

static const char bad_session[] = "invalid or expired session";

static int cookie_well_formed(const char *v)
{
    if (!v || strlen(v) != SRV_SESSION_COOKIE_LEN) return 0;
    for (const char *p = v; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return 0;
    return 1;
}

zk_rc srv_session_create(ret_store *s, int64_t user_id, int64_t ttl_seconds, char **out_cookie_value,
                         char **out_csrf, char *err)
{
    static const char hexd[] = "0123456789abcdef";
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    unsigned char raw[SESSION_RAND], craw[CSRF_RAND], b64[4 * ((SESSION_RAND + 2) / 3) + 1];
    char *cookie = NULL, *csrf = NULL, hex[65];
    zk_rc rc = ZK_OK;
    *out_cookie_value = NULL;
    *out_csrf = NULL;
    if (ttl_seconds <= 0 || ttl_seconds > SESSION_MAX_TTL)
        return zk_fail(err, ZK_INVALID, "session lifetime must be between 1 second and 366 days");
    if (RAND_bytes(raw, sizeof raw) != 1 || RAND_bytes(craw, sizeof craw) != 1) {
        rc = zk_fail(err, ZK_ERR, "random generator failed");
        goto out;
    }
    if (!(cookie = zk_malloc(SRV_SESSION_COOKIE_LEN + 1)) || !(csrf = zk_malloc(SRV_SESSION_CSRF_LEN + 1))) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    EVP_EncodeBlock(b64, raw, sizeof raw);
    for (size_t i = 0; i < SRV_SESSION_COOKIE_LEN; i++)   /* base64 → base64url, padding dropped */
        cookie[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    cookie[SRV_SESSION_COOKIE_LEN] = '\0';
    for (size_t i = 0; i < CSRF_RAND; i++) {
        csrf[2 * i] = hexd[craw[i] >> 4];
        csrf[2 * i + 1] = hexd[craw[i] & 15];
    }
    csrf[SRV_SESSION_CSRF_LEN] = '\0';
    zk_sha256_hex(cookie, SRV_SESSION_COOKIE_LEN, hex);

    /* INSERT ... SELECT: no row when user_id is not a user */
    if (sqlite3_prepare_v2(db, "INSERT INTO sessions(token_sha256, user_id, csrf, expires_at) "
                               "SELECT ?, id, ?, unixepoch() + ? FROM principals WHERE id = ? AND kind = 'user'",
                           -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_text(st, 1, hex, 64, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, csrf, SRV_SESSION_CSRF_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, ttl_seconds);
    sqlite3_bind_int64(st, 4, user_id);
    if (sqlite3_step(st) != SQLITE_DONE) goto dberr;
    if (sqlite3_changes(db) == 0) {
        rc = zk_fail(err, ZK_NOTFOUND, "no user %lld", (long long)user_id);
        goto out;
    }
    *out_cookie_value = cookie;
    *out_csrf = csrf;
    cookie = csrf = NULL;
    goto out;
dberr:
    rc = zk_fail(err, ZK_DB, "session: %s", sqlite3_errmsg(db));
out:
    sqlite3_finalize(st);
    OPENSSL_cleanse(raw, sizeof raw);
    OPENSSL_cleanse(craw, sizeof craw);
    OPENSSL_cleanse(b64, sizeof b64);
    if (cookie) OPENSSL_cleanse(cookie, SRV_SESSION_COOKIE_LEN + 1);
    if (csrf) OPENSSL_cleanse(csrf, SRV_SESSION_CSRF_LEN + 1);
    zk_free(cookie);
    zk_free(csrf);
    return rc;
}

zk_rc srv_session_lookup(ret_store *s, const char *cookie_value, int64_t *out_user_id, char csrf_out[64],
                         char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    char hex[65];
    zk_rc rc = ZK_INVALID;
    *out_user_id = 0;
    csrf_out[0] = '\0';
    if (!cookie_well_formed(cookie_value)) return zk_fail(err, ZK_INVALID, bad_session);
    zk_sha256_hex(cookie_value, SRV_SESSION_COOKIE_LEN, hex);
    /* the join also rejects sessions whose user is gone or became a group */
    if (sqlite3_prepare_v2(db, "SELECT s.token_sha256, s.user_id, s.csrf, s.expires_at > unixepoch() "
                               "FROM sessions s JOIN principals p ON p.id = s.user_id AND p.kind = 'user' "
                               "WHERE s.token_sha256 = ?", -1, &st, NULL) != SQLITE_OK) {
        rc = zk_fail(err, ZK_DB, "session: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_text(st, 1, hex, 64, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        rc = step == SQLITE_DONE ? zk_fail(err, ZK_INVALID, bad_session)
                                 : zk_fail(err, ZK_DB, "session: %s", sqlite3_errmsg(db));
        goto out;
    }
    const char *stored = (const char *)sqlite3_column_text(st, 0);
    const char *csrf = (const char *)sqlite3_column_text(st, 2);
    if (!stored || sqlite3_column_bytes(st, 0) != 64 || CRYPTO_memcmp(stored, hex, 64) != 0 ||
        sqlite3_column_int(st, 3) != 1 || !csrf || sqlite3_column_bytes(st, 2) >= 64) {
        rc = zk_fail(err, ZK_INVALID, bad_session);
        goto out;
    }
    memcpy(csrf_out, csrf, (size_t)sqlite3_column_bytes(st, 2) + 1);
    *out_user_id = sqlite3_column_int64(st, 1);
    rc = ZK_OK;
out:
    sqlite3_finalize(st);
    return rc;
}

zk_rc srv_session_destroy(ret_store *s, const char *cookie_value, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    char hex[65];
    zk_rc rc = ZK_OK;
    if (!cookie_well_formed(cookie_value)) return ZK_OK;   /* nothing it could name */
    zk_sha256_hex(cookie_value, SRV_SESSION_COOKIE_LEN, hex);
    if (sqlite3_prepare_v2(db, "DELETE FROM sessions WHERE token_sha256 = ?", -1, &st, NULL) != SQLITE_OK) {
        rc = zk_fail(err, ZK_DB, "session: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_text(st, 1, hex, 64, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) rc = zk_fail(err, ZK_DB, "session: %s", sqlite3_errmsg(db));
out:
    sqlite3_finalize(st);
    return rc;
}

zk_rc srv_session_purge_expired(ret_store *s, int *out_n, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    if (out_n) *out_n = 0;
    if (sqlite3_prepare_v2(db, "DELETE FROM sessions WHERE expires_at <= unixepoch()", -1, &st, NULL) != SQLITE_OK) {
        rc = zk_fail(err, ZK_DB, "session purge: %s", sqlite3_errmsg(db));
        goto out;
    }
    if (sqlite3_step(st) != SQLITE_DONE) rc = zk_fail(err, ZK_DB, "session purge: %s", sqlite3_errmsg(db));
    else if (out_n) *out_n = sqlite3_changes(db);
out:
    sqlite3_finalize(st);
    return rc;
}
