/* auth.c — credentials: scrypt password hashes and API tokens (see auth.h).
 * Password hashing is called by retrieval/principal.c (user add, login) and
 * costs ~0.1 s and 32 MiB by design; token verification runs on every HTTP
 * request and is one indexed SELECT, plus a small UPDATE of last_used_at
 * when it is more than a minute old.
 * Only the SHA-256 of a token is stored; the token text leaves this file once,
 * through srv_token_create's output parameter. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "server/auth.h"
#include "retrieval/stmt.h"

/* scrypt parameters for new hashes, and the limits accepted when verifying
 * an existing hash (a hostile or corrupt hash must not cost more than a few
 * times a normal one, nor more memory than SCRYPT_MAXMEM). */
#define SCRYPT_N       32768ull
#define SCRYPT_R       8ull
#define SCRYPT_P       1ull
#define SCRYPT_MAXMEM  (64ull * 1024 * 1024)
#define SCRYPT_SALT    16
#define SCRYPT_KEY     32
#define VERIFY_MAX_N   (1ull << 20)
#define VERIFY_MAX_R   32ull
#define VERIFY_MAX_P   4ull
#define VERIFY_MAX_B64 96           /* salt or hash in base64: up to 72 bytes */

#define TOKEN_RAND     32
#define TOKEN_B64LEN   43           /* base64url of 32 bytes, no padding */
#define TOKEN_PREFIX   8
#define TOKEN_MAX_DAYS 36500

static const char *const scope_names[] = {"search", "ask", "ingest", "admin"};

/* ---- scopes ------------------------------------------------------------ */

zk_rc srv_scopes_parse(const char *list, unsigned *out_scopes, char *err)
{
    unsigned scopes = 0;
    const char *p = list;
    *out_scopes = 0;
    if (!list) return zk_fail(err, ZK_INVALID, "no scopes given (use search, ask, ingest, admin)");
    for (;;) {
        while (*p == ' ') p++;
        const char *end = p + strcspn(p, ",");
        size_t n = (size_t)(end - p);
        while (n > 0 && p[n - 1] == ' ') n--;
        size_t k;
        for (k = 0; k < ZK_ARRAY_LEN(scope_names); k++)
            if (strlen(scope_names[k]) == n && !strncmp(scope_names[k], p, n)) break;
        if (k == ZK_ARRAY_LEN(scope_names))
            return zk_fail(err, ZK_INVALID, "unknown scope '%.*s' (use search, ask, ingest, admin)",
                           (int)ZK_MIN(n, 64), p);
        scopes |= 1u << k;
        if (*end == '\0') break;
        p = end + 1;
    }
    *out_scopes = scopes;
    return ZK_OK;
}

void srv_scopes_format(unsigned scopes, char *out, size_t cap)
{
    size_t used = 0;
    if (cap == 0) return;
    out[0] = '\0';
    for (size_t k = 0; k < ZK_ARRAY_LEN(scope_names); k++) {
        if (!(scopes & (1u << k))) continue;
        int w = snprintf(out + used, cap - used, "%s%s", used ? "," : "", scope_names[k]);
        if (w < 0 || (size_t)w >= cap - used) return;   /* truncated, still terminated */
        used += (size_t)w;
    }
}

/* ---- base64 helpers ------------------------------------------------------ */

/* Standard base64 of n bytes into a malloc'd string. */
static char *b64_encode(const unsigned char *in, size_t n)
{
    char *out = zk_malloc(4 * ((n + 2) / 3) + 1);
    if (out) EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    return out;
}

/* Decode padded standard base64 (length a multiple of 4, no whitespace);
 * -1 on malformed input, else the number of bytes (out holds >= 3*len/4). */
static int b64_decode(const char *in, size_t len, unsigned char *out)
{
    if (len == 0 || len % 4 || len > VERIFY_MAX_B64) return -1;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        int okc = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/' || (c == '=' && i >= len - 2);
        if (!okc) return -1;
    }
    int pad = (in[len - 1] == '=') + (in[len - 2] == '=');
    if (in[len - 2] == '=' && in[len - 1] != '=') return -1;
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0) return -1;
    return n - pad;
}

/* ---- passwords ------------------------------------------------------------ */

zk_rc srv_password_hash(const char *password, char **out_encoded, char *err)
{
    unsigned char salt[SCRYPT_SALT], key[SCRYPT_KEY];
    char *salt64 = NULL, *key64 = NULL, *enc = NULL;
    zk_rc rc = ZK_OK;
    *out_encoded = NULL;
    if (!password) return zk_fail(err, ZK_INVALID, "no password");
    if (RAND_bytes(salt, sizeof salt) != 1) return zk_fail(err, ZK_ERR, "random generator failed");
    if (EVP_PBE_scrypt(password, strlen(password), salt, sizeof salt, SCRYPT_N, SCRYPT_R, SCRYPT_P,
                       SCRYPT_MAXMEM, key, sizeof key) != 1) {
        rc = zk_fail(err, ZK_ERR, "scrypt failed");
        goto out;
    }
    salt64 = b64_encode(salt, sizeof salt);
    key64 = b64_encode(key, sizeof key);
    size_t cap = 64 + (salt64 ? strlen(salt64) : 0) + (key64 ? strlen(key64) : 0);
    if (!salt64 || !key64 || !(enc = zk_malloc(cap))) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    snprintf(enc, cap, "scrypt$%llu$%llu$%llu$%s$%s", SCRYPT_N, SCRYPT_R, SCRYPT_P, salt64, key64);
    *out_encoded = enc;
out:
    OPENSSL_cleanse(key, sizeof key);
    zk_free(salt64);
    zk_free(key64);
    return rc;
}

/* Parse a decimal field ending at '$'; advances *p past the '$'. */
static int parse_num(const char **p, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    const char *s = *p;
    if (*s < '0' || *s > '9') return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max) return -1;
    }
    if (*s != '$') return -1;
    *p = s + 1;
    *out = v;
    return 0;
}

int srv_password_verify(const char *password, const char *encoded)
{
    uint64_t n, r, p;
    unsigned char salt[VERIFY_MAX_B64], want[VERIFY_MAX_B64], got[VERIFY_MAX_B64];
    int ok = 0;
    if (!password || !encoded || strncmp(encoded, "scrypt$", 7) != 0) return 0;
    const char *s = encoded + 7;
    if (parse_num(&s, VERIFY_MAX_N, &n) < 0 || parse_num(&s, VERIFY_MAX_R, &r) < 0 ||
        parse_num(&s, VERIFY_MAX_P, &p) < 0)
        return 0;
    /* N a power of two >= 2^10; memory 128*r*N within the cap */
    if (n < 1024 || (n & (n - 1)) || r < 1 || p < 1 || 128 * r * n > SCRYPT_MAXMEM / 2) return 0;
    const char *dollar = strchr(s, '$');
    if (!dollar) return 0;
    int salt_len = b64_decode(s, (size_t)(dollar - s), salt);
    int key_len = b64_decode(dollar + 1, strlen(dollar + 1), want);
    if (salt_len < 8 || key_len < 16 || key_len > 64) return 0;
    if (EVP_PBE_scrypt(password, strlen(password), salt, (size_t)salt_len, n, r, p, SCRYPT_MAXMEM, got,
                       (size_t)key_len) == 1)
        ok = CRYPTO_memcmp(got, want, (size_t)key_len) == 0;
    OPENSSL_cleanse(got, sizeof got);
    return ok;
}

/* ---- tokens ------------------------------------------------------------------- */

zk_rc srv_token_create(ret_store *s, const char *user_name, unsigned scopes, int expires_days,
                       char **out_token, int64_t *out_token_id, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    unsigned char raw[TOKEN_RAND];
    char *tok = NULL, *b64 = NULL, hex[65], scopes_str[64];
    int64_t user_id;
    zk_rc rc = ZK_OK;
    *out_token = NULL;
    if (out_token_id) *out_token_id = 0;
    if (!user_name || !*user_name) return zk_fail(err, ZK_INVALID, "no user name");
    if (scopes == 0 || (scopes & ~(SRV_SCOPE_SEARCH | SRV_SCOPE_ASK | SRV_SCOPE_INGEST | SRV_SCOPE_ADMIN)))
        return zk_fail(err, ZK_INVALID, "invalid scopes");
    if (expires_days > TOKEN_MAX_DAYS)
        return zk_fail(err, ZK_INVALID, "expiry of %d days is too long (at most %d)", expires_days, TOKEN_MAX_DAYS);

    if (sqlite3_prepare_v2(db, "SELECT id FROM principals WHERE kind = 'user' AND name = ?", -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_text(st, 1, user_name, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = zk_fail(err, ZK_NOTFOUND, "no user '%s'", user_name);
        goto out;
    }
    if (step != SQLITE_ROW) goto dberr;
    user_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;

    if (RAND_bytes(raw, sizeof raw) != 1) {
        rc = zk_fail(err, ZK_ERR, "random generator failed");
        goto out;
    }
    if (!(b64 = b64_encode(raw, sizeof raw)) || !(tok = zk_malloc(3 + TOKEN_B64LEN + 1))) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    memcpy(tok, "zk_", 3);
    for (size_t i = 0; i < TOKEN_B64LEN; i++)   /* base64 → base64url, padding dropped */
        tok[3 + i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    tok[3 + TOKEN_B64LEN] = '\0';
    zk_sha256_hex(tok, strlen(tok), hex);
    srv_scopes_format(scopes, scopes_str, sizeof scopes_str);

    if (sqlite3_prepare_v2(db, "INSERT INTO api_tokens(user_id, token_sha256, prefix, scopes, expires_at) "
                               "VALUES (?, ?, ?, ?, CASE WHEN ?5 > 0 THEN unixepoch() + ?5 * 86400 END)",
                           -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_text(st, 2, hex, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, tok + 3, TOKEN_PREFIX, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, scopes_str, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, expires_days);
    if (sqlite3_step(st) != SQLITE_DONE) goto dberr;
    if (out_token_id) *out_token_id = sqlite3_last_insert_rowid(db);
    *out_token = tok;
    tok = NULL;
    goto out;
dberr:
    rc = zk_fail(err, ZK_DB, "token: %s", sqlite3_errmsg(db));
out:
    sqlite3_finalize(st);
    OPENSSL_cleanse(raw, sizeof raw);
    if (b64) OPENSSL_cleanse(b64, strlen(b64));
    if (tok) OPENSSL_cleanse(tok, strlen(tok));
    zk_free(b64);
    zk_free(tok);
    return rc;
}

/* Cheap shape check before touching the database. */
static int token_well_formed(const char *t)
{
    if (!t || strncmp(t, "zk_", 3) != 0 || strlen(t) != 3 + TOKEN_B64LEN) return 0;
    for (const char *p = t + 3; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return 0;
    return 1;
}

zk_rc srv_token_verify(ret_store *s, const char *token, int64_t *out_user_id, unsigned *out_scopes, char *err)
{
    static const char bad[] = "invalid or expired token";
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    char hex[65];
    int64_t token_id = 0;
    unsigned scopes = 0;
    zk_rc rc = ZK_INVALID;
    *out_user_id = 0;
    *out_scopes = 0;
    if (!token_well_formed(token)) return zk_fail(err, ZK_INVALID, bad);
    zk_sha256_hex(token, strlen(token), hex);
    /* the join also rejects tokens whose user is gone (should cascade anyway) */
    if (ret__prepare(db, "SELECT t.id, t.user_id, t.token_sha256, t.scopes, "
                               "t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > unixepoch()), "
                               "coalesce(t.last_used_at, 0) < unixepoch() - 60 "
                               "FROM api_tokens t JOIN principals p ON p.id = t.user_id AND p.kind = 'user' "
                               "WHERE t.token_sha256 = ?", &st) != SQLITE_OK) {
        rc = zk_fail(err, ZK_DB, "token: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_text(st, 1, hex, 64, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        rc = step == SQLITE_DONE ? zk_fail(err, ZK_INVALID, bad) : zk_fail(err, ZK_DB, "token: %s", sqlite3_errmsg(db));
        goto out;
    }
    const char *stored = (const char *)sqlite3_column_text(st, 2);
    if (!stored || sqlite3_column_bytes(st, 2) != 64 || CRYPTO_memcmp(stored, hex, 64) != 0 ||
        sqlite3_column_int(st, 4) != 1 ||
        srv_scopes_parse((const char *)sqlite3_column_text(st, 3), &scopes, NULL) != ZK_OK) {
        rc = zk_fail(err, ZK_INVALID, bad);
        goto out;
    }
    token_id = sqlite3_column_int64(st, 0);
    int stale = sqlite3_column_int(st, 5);
    *out_user_id = sqlite3_column_int64(st, 1);
    if (scopes & SRV_SCOPE_ADMIN) scopes |= SRV_SCOPE_SEARCH | SRV_SCOPE_ASK | SRV_SCOPE_INGEST;
    *out_scopes = scopes;
    rc = ZK_OK;
    ret__release(st);
    st = NULL;
    /* bookkeeping only, to the minute (a write per request cost every
     * request a write transaction); a failure here (busy, read-only) does
     * not fail the request */
    if (stale && ret__prepare(db, "UPDATE api_tokens SET last_used_at = unixepoch() WHERE id = ?", &st) ==
        SQLITE_OK) {
        sqlite3_bind_int64(st, 1, token_id);
        if (sqlite3_step(st) != SQLITE_DONE)
            ZK_LOG(ZK_LOG_DEBUG, "token %lld: last_used_at not updated: %s", (long long)token_id, sqlite3_errmsg(db));
    }
out:
    ret__release(st);
    return rc;
}

zk_rc srv_token_revoke(ret_store *s, int64_t token_id, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    /* a second revoke keeps the first revocation time */
    if (sqlite3_prepare_v2(db, "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, unixepoch()) WHERE id = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = zk_fail(err, ZK_DB, "token: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_int64(st, 1, token_id);
    if (sqlite3_step(st) != SQLITE_DONE) rc = zk_fail(err, ZK_DB, "token: %s", sqlite3_errmsg(db));
    else if (sqlite3_changes(db) == 0) rc = zk_fail(err, ZK_NOTFOUND, "no token %lld", (long long)token_id);
out:
    sqlite3_finalize(st);
    return rc;
}

static const char *col(sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    return v ? v : "";
}

zk_rc srv_token_list(ret_store *s, FILE *out, int json, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    int step, rows = 0;
    /* never selects token_sha256: listings cannot leak it */
    const char *sql =
        "SELECT t.id, p.name, 'zk_' || t.prefix, t.scopes, datetime(t.created_at, 'unixepoch'), "
        "datetime(t.expires_at, 'unixepoch'), datetime(t.revoked_at, 'unixepoch'), "
        "datetime(t.last_used_at, 'unixepoch'), "
        "CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked' "
        "     WHEN t.expires_at IS NOT NULL AND t.expires_at <= unixepoch() THEN 'expired' ELSE 'active' END "
        "FROM api_tokens t JOIN principals p ON p.id = t.user_id ORDER BY t.id";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "token list: %s", sqlite3_errmsg(db));
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (json) {
            static const char *const keys[] = {"user", "prefix", "scopes", "created", "expires", "revoked",
                                               "last_used", "status"};
            json_t *o = json_object();
            json_object_set_new(o, "id", json_integer(sqlite3_column_int64(st, 0)));
            for (int i = 1; i <= 8; i++)
                json_object_set_new(o, keys[i - 1],
                                    sqlite3_column_type(st, i) == SQLITE_NULL ? json_null() : json_string(col(st, i)));
            char *txt = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (txt) fprintf(out, "%s\n", txt);
            free(txt);
            json_decref(o);
        } else {
            if (rows == 0)
                fprintf(out, "%5s  %-16s %-11s %-22s %-7s %-19s  %-19s  %-19s  %s\n", "ID", "USER", "PREFIX",
                        "SCOPES", "STATUS", "CREATED", "EXPIRES", "REVOKED", "LAST USED");
            fprintf(out, "%5lld  %-16s %-11s %-22s %-7s %-19s  %-19s  %-19s  %s\n",
                    (long long)sqlite3_column_int64(st, 0), col(st, 1), col(st, 2), col(st, 3), col(st, 8),
                    col(st, 4), sqlite3_column_type(st, 5) == SQLITE_NULL ? "never" : col(st, 5),
                    sqlite3_column_type(st, 6) == SQLITE_NULL ? "-" : col(st, 6),
                    sqlite3_column_type(st, 7) == SQLITE_NULL ? "never" : col(st, 7));
        }
        rows++;
    }
    zk_rc rc = step == SQLITE_DONE ? ZK_OK : zk_fail(err, ZK_DB, "token list: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc;
}
