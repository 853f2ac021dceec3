/* auth.h — credentials: API tokens and password hashing.
 *
 * Tokens: "zk_" + 43 characters of base64url (32 random bytes from
 * RAND_bytes), shown once at creation; only their SHA-256 (hex) is stored.
 * Lookup hashes the presented token and compares digests with
 * CRYPTO_memcmp. Scopes: search, ask, ingest, admin (admin implies all).
 * Tokens may expire and can be revoked; a revoked or expired token fails
 * verification on the very next call (no cache).
 *
 * Passwords: scrypt (OpenSSL EVP_PBE_scrypt, N=2^15, r=8, p=1, 16-byte
 * random salt), encoded "scrypt$N$r$p$SALT_B64$HASH_B64".
 * Used by the CLI (`zhiku token ...`, `zhiku user add --password-stdin`) and
 * by the HTTP server. Thread-safe apart from the store (one per thread). */
#ifndef SRV_AUTH_H
#define SRV_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "zk.h"
#include "retrieval/store.h"

#define SRV_SCOPE_SEARCH 1u
#define SRV_SCOPE_ASK    2u
#define SRV_SCOPE_INGEST 4u
#define SRV_SCOPE_ADMIN  8u

/* "search,ask" → bitmask; ZK_INVALID on an unknown scope. */
zk_rc srv_scopes_parse(const char *list, unsigned *out_scopes, char *err);
/* bitmask → "search,ask" into out (>= 32 bytes). */
void srv_scopes_format(unsigned scopes, char *out, size_t cap);

/* Password hashing (pure functions). out is malloc'd (zk_free). */
zk_rc srv_password_hash(const char *password, char **out_encoded, char *err);
/* 1 when password matches encoded, 0 otherwise (also for malformed input). */
int srv_password_verify(const char *password, const char *encoded);

/* Create a token for user `user_name`; expires_days <= 0 = never. The token
 * text (NUL-terminated, caller frees) is returned ONCE in *out_token. */
zk_rc srv_token_create(ret_store *s, const char *user_name, unsigned scopes, int expires_days,
                       char **out_token, int64_t *out_token_id, char *err);
/* Verify a presented token: *out_user_id and *out_scopes on success;
 * ZK_INVALID when unknown, expired or revoked (one message for all). */
zk_rc srv_token_verify(ret_store *s, const char *token, int64_t *out_user_id, unsigned *out_scopes, char *err);
zk_rc srv_token_revoke(ret_store *s, int64_t token_id, char *err);
/* Print tokens (id, user, prefix, scopes, created, expires, revoked,
 * last used) as a table or JSON lines. */
zk_rc srv_token_list(ret_store *s, FILE *out, int json, char *err);

#endif
