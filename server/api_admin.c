/* api_admin.c — /api/v1/admin/...: users, groups and memberships, API
 * tokens, knowledge bases, the audit log and the review queue (questions
 * answered "not found" or rated thumbs-down). Admin scope only; each
 * handler calls one retrieval/server operation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "server/http.h"
#include "server/auth.h"
#include "retrieval/audit.h"
#include "retrieval/convo.h"
#include "retrieval/principal.h"

static json_t *rows(srv_req *r, const char *sql, const char *const *keys, int ncols, const char *bind)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    if (sqlite3_prepare_v2(ret_store_db(r->store), sql, -1, &st, NULL) != SQLITE_OK) return arr;
    if (bind) sqlite3_bind_text(st, 1, bind, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *o = json_object();
        for (int i = 0; i < ncols; i++) {
            switch (sqlite3_column_type(st, i)) {
            case SQLITE_INTEGER: json_object_set_new(o, keys[i], json_integer(sqlite3_column_int64(st, i))); break;
            case SQLITE_NULL: json_object_set_new(o, keys[i], json_null()); break;
            default: json_object_set_new(o, keys[i], json_string((const char *)sqlite3_column_text(st, i)));
            }
        }
        json_array_append_new(arr, o);
    }
    sqlite3_finalize(st);
    return arr;
}

/* ---- users -------------------------------------------------------------------------- */

static enum MHD_Result h_users(srv_req *r)
{
    static const char *const k[] = {"name", "admin", "has_password", "groups", "created"};
    json_t *a = rows(r, "SELECT p.name, p.is_admin, p.password_hash IS NOT NULL, "
                        "coalesce((SELECT group_concat(g.name, ',') FROM memberships m JOIN principals g ON g.id = m.group_id "
                        "WHERE m.member_id = p.id), ''), datetime(p.created_at, 'unixepoch') "
                        "FROM principals p WHERE p.kind = 'user' ORDER BY p.name", k, 5, NULL);
    return srv_json(r, 200, json_pack("{s:o}", "users", a));
}

static enum MHD_Result h_user_add(srv_req *r)
{
    char err[ZK_ERRLEN];
    json_t *b = srv_body_json(r, err);
    if (!b) return srv_error(r, 400, "bad_request", "%s", err);
    const char *name = json_string_value(json_object_get(b, "name"));
    const char *pw = json_string_value(json_object_get(b, "password"));
    int admin = json_is_true(json_object_get(b, "admin"));
    int64_t id;
    zk_rc rc = name ? ret_user_add(r->store, name, pw && *pw ? pw : NULL, admin, &id, err)
                    : zk_fail(err, ZK_INVALID, "name is required");
    json_t *out = rc == ZK_OK ? json_pack("{s:s,s:b}", "name", name, "admin", admin) : NULL;
    json_decref(b);
    if (rc != ZK_OK) return srv_fail(r, rc, err);
    return srv_json(r, 201, out);
}

static enum MHD_Result h_user_rm(srv_req *r)
{
    char err[ZK_ERRLEN];
    zk_rc rc = ret_user_rm(r->store, r->params[0], err);
    return rc == ZK_OK ? srv_json(r, 200, json_pack("{s:b}", "ok", 1)) : srv_fail(r, rc, err);
}

/* ---- groups ----------------------------------------------------------------------------- */

static enum MHD_Result h_groups(srv_req *r)
{
    static const char *const k[] = {"name", "members"};
    json_t *a = rows(r, "SELECT g.name, coalesce((SELECT group_concat(p.kind || ':' || p.name, ',') FROM memberships m "
                        "JOIN principals p ON p.id = m.member_id WHERE m.group_id = g.id), '') "
                        "FROM principals g WHERE g.kind = 'group' ORDER BY g.name", k, 2, NULL);
    return srv_json(r, 200, json_pack("{s:o}", "groups", a));
}

static enum MHD_Result h_group_add(srv_req *r)
{
    char err[ZK_ERRLEN];
    json_t *b = srv_body_json(r, err);
    if (!b) return srv_error(r, 400, "bad_request", "%s", err);
    const char *name = json_string_value(json_object_get(b, "name"));
    zk_rc rc = name ? ret_group_add(r->store, name, err) : zk_fail(err, ZK_INVALID, "name is required");
    json_t *out = rc == ZK_OK ? json_pack("{s:s}", "name", name) : NULL;
    json_decref(b);
    if (rc != ZK_OK) return srv_fail(r, rc, err);
    return srv_json(r, 201, out);
}

static enum MHD_Result h_group_rm(srv_req *r)
{
    char err[ZK_ERRLEN];
    zk_rc rc = ret_group_rm(r->store, r->params[0], err);
    return rc == ZK_OK ? srv_json(r, 200, json_pack("{s:b}", "ok", 1)) : srv_fail(r, rc, err);
}

static enum MHD_Result h_group_members(srv_req *r)
{
    char err[ZK_ERRLEN], spec[160];
    json_t *b = srv_body_json(r, err);
    if (!b) return srv_error(r, 400, "bad_request", "%s", err);
    zk_rc rc = ZK_OK;
    static const char *const ops[] = {"add", "remove"};
    for (int op = 0; op < 2 && rc == ZK_OK; op++) {
        json_t *list = json_object_get(b, ops[op]), *v;
        size_t i;
        if (list && !json_is_array(list)) rc = zk_fail(err, ZK_INVALID, "'%s' must be an array", ops[op]);
        json_array_foreach(list, i, v) {
            if (rc != ZK_OK) break;
            const char *m = json_string_value(v);
            if (!m) { rc = zk_fail(err, ZK_INVALID, "members must be strings"); break; }
            snprintf(spec, sizeof spec, "%s%s", strchr(m, ':') ? "" : "user:", m);
            rc = op ? ret_group_member_rm(r->store, r->params[0], spec, err)
                    : ret_group_member_add(r->store, r->params[0], spec, err);
        }
    }
    json_decref(b);
    if (rc != ZK_OK) return srv_fail(r, rc, err);
    return srv_json(r, 200, json_pack("{s:b}", "ok", 1));
}

/* ---- tokens ---------------------------------------------------------------------------------- */

static enum MHD_Result h_tokens(srv_req *r)
{
    static const char *const k[] = {"id", "user", "prefix", "scopes", "created", "expires", "revoked", "last_used"};
    json_t *a = rows(r, "SELECT t.id, p.name, 'zk_' || t.prefix, t.scopes, datetime(t.created_at,'unixepoch'), "
                        "datetime(t.expires_at,'unixepoch'), datetime(t.revoked_at,'unixepoch'), "
                        "datetime(t.last_used_at,'unixepoch') FROM api_tokens t JOIN principals p ON p.id = t.user_id "
                        "ORDER BY t.id", k, 8, NULL);
    return srv_json(r, 200, json_pack("{s:o}", "tokens", a));
}

static enum MHD_Result h_token_create(srv_req *r)
{
    char err[ZK_ERRLEN], list[128] = "";
    json_t *b = srv_body_json(r, err);
    if (!b) return srv_error(r, 400, "bad_request", "%s", err);
    const char *user = json_string_value(json_object_get(b, "user"));
    json_t *scopes = json_object_get(b, "scopes"), *v;
    json_t *exp = json_object_get(b, "expires_days");
    size_t i;
    json_array_foreach(scopes, i, v) if (json_is_string(v)) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", l ? "," : "", json_string_value(v));
    }
    unsigned mask = 0;
    char *token = NULL;
    int64_t tid = 0;
    zk_rc rc = !user ? zk_fail(err, ZK_INVALID, "user is required") : srv_scopes_parse(list, &mask, err);
    if (rc == ZK_OK && !mask) rc = zk_fail(err, ZK_INVALID, "scopes must list at least one of search, ask, ingest, admin");
    if (rc == ZK_OK)
        rc = srv_token_create(r->store, user, mask, json_is_integer(exp) ? (int)json_integer_value(exp) : 0, &token, &tid, err);
    json_decref(b);
    if (rc != ZK_OK) return srv_fail(r, rc, err);
    json_t *o = json_pack("{s:I,s:s}", "id", (json_int_t)tid, "token", token);
    OPENSSL_cleanse(token, strlen(token));   /* shown once, kept nowhere */
    zk_free(token);
    return srv_json(r, 201, o);
}

static enum MHD_Result h_token_revoke(srv_req *r)
{
    char err[ZK_ERRLEN];
    zk_rc rc = srv_token_revoke(r->store, strtoll(r->params[0], NULL, 10), err);
    return rc == ZK_OK ? srv_json(r, 200, json_pack("{s:b}", "ok", 1)) : srv_fail(r, rc, err);
}

/* ---- knowledge bases -------------------------------------------------------------------------- */

static enum MHD_Result h_kbs(srv_req *r)
{
    static const char *const k[] = {"name", "documents", "chunks", "embedding_model", "embedding_dim", "local_only"};
    json_t *a = rows(r, "SELECT k.name, (SELECT count(*) FROM documents d WHERE d.kb_id = k.id), "
                        "(SELECT coalesce(sum(nchunks),0) FROM documents d WHERE d.kb_id = k.id), k.embed_model, "
                        "k.embed_dim, k.local_only FROM kb k ORDER BY k.name", k, 6, NULL);
    return srv_json(r, 200, json_pack("{s:o}", "kbs", a));
}

static enum MHD_Result h_kb_create(srv_req *r)
{
    char err[ZK_ERRLEN];
    json_t *b = srv_body_json(r, err);
    if (!b) return srv_error(r, 400, "bad_request", "%s", err);
    const char *name = json_string_value(json_object_get(b, "name"));
    int64_t id;
    zk_rc rc = name ? ret_kb_create(r->store, name, &id, err) : zk_fail(err, ZK_INVALID, "name is required");
    if (rc == ZK_OK && json_is_true(json_object_get(b, "local_only"))) {
        sqlite3_stmt *st = NULL;
        sqlite3_prepare_v2(ret_store_db(r->store), "UPDATE kb SET local_only = 1 WHERE id = ?", -1, &st, NULL);
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) != SQLITE_DONE) rc = zk_fail(err, ZK_DB, "setting local_only failed");
        sqlite3_finalize(st);
    }
    json_t *out = rc == ZK_OK ? json_pack("{s:s}", "name", name) : NULL;
    json_decref(b);
    if (rc != ZK_OK) return srv_fail(r, rc, err);
    return srv_json(r, 201, out);
}

static enum MHD_Result h_kb_rm(srv_req *r)
{
    char err[ZK_ERRLEN];
    zk_rc rc = ret_kb_rm(r->store, r->params[0], err);
    return rc == ZK_OK ? srv_json(r, 200, json_pack("{s:b}", "ok", 1)) : srv_fail(r, rc, err);
}

/* ---- audit and review ---------------------------------------------------------------------------- */

static int64_t since_param(srv_req *r)
{
    const char *s = srv_query(r, "since");
    if (!s || !*s) return 0;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (strptime(s, "%Y-%m-%d", &tm)) return (int64_t)timegm(&tm);
    return strtoll(s, NULL, 10);
}

static enum MHD_Result h_audit(srv_req *r)
{
    char err[ZK_ERRLEN], *text = NULL;
    size_t len = 0;
    const char *lim = srv_query(r, "limit");
    FILE *f = open_memstream(&text, &len);
    zk_rc rc = ret_audit_export(r->store, f, 1, since_param(r), lim ? atoi(lim) : 1000, err);
    fclose(f);
    if (rc != ZK_OK) {
        free(text);
        return srv_fail(r, rc, err);
    }
    json_t *arr = json_array();
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *o = json_loads(line, 0, NULL);
        if (o) json_array_append_new(arr, o);
    }
    free(text);
    return srv_json(r, 200, json_pack("{s:o}", "entries", arr));
}

static enum MHD_Result h_review(srv_req *r)
{
    char err[ZK_ERRLEN], *text = NULL;
    size_t len = 0;
    const char *fmt = srv_query(r, "format"), *lim = srv_query(r, "limit");
    int jsonl = fmt && !strcmp(fmt, "jsonl");
    zk_rc rc = ret_review_export(r->store, since_param(r), lim ? atoi(lim) : 1000, jsonl, &text, &len, err);
    if (rc != ZK_OK) return srv_fail(r, rc, err);
    enum MHD_Result ret;
    if (jsonl) {
        ret = srv_bytes(r, 200, "application/x-ndjson; charset=utf-8", text, len, 1);
    } else {
        json_t *arr = json_loadb(text, len, 0, NULL);
        ret = srv_json(r, 200, json_pack("{s:o}", "items", arr ? arr : json_array()));
    }
    zk_free(text);
    return ret;
}

void srv_register_admin(srv_ctx *s)
{
    srv_route_add(s, "GET", "/api/v1/admin/users", SRV_SCOPE_ADMIN, h_users, "admin_users");
    srv_route_add(s, "POST", "/api/v1/admin/users", SRV_SCOPE_ADMIN, h_user_add, "admin_user_add");
    srv_route_add(s, "DELETE", "/api/v1/admin/users/{}", SRV_SCOPE_ADMIN, h_user_rm, "admin_user_rm");
    srv_route_add(s, "GET", "/api/v1/admin/groups", SRV_SCOPE_ADMIN, h_groups, "admin_groups");
    srv_route_add(s, "POST", "/api/v1/admin/groups", SRV_SCOPE_ADMIN, h_group_add, "admin_group_add");
    srv_route_add(s, "DELETE", "/api/v1/admin/groups/{}", SRV_SCOPE_ADMIN, h_group_rm, "admin_group_rm");
    srv_route_add(s, "POST", "/api/v1/admin/groups/{}/members", SRV_SCOPE_ADMIN, h_group_members, "admin_group_members");
    srv_route_add(s, "GET", "/api/v1/admin/tokens", SRV_SCOPE_ADMIN, h_tokens, "admin_tokens");
    srv_route_add(s, "POST", "/api/v1/admin/tokens", SRV_SCOPE_ADMIN, h_token_create, "admin_token_create");
    srv_route_add(s, "DELETE", "/api/v1/admin/tokens/{}", SRV_SCOPE_ADMIN, h_token_revoke, "admin_token_revoke");
    srv_route_add(s, "GET", "/api/v1/admin/kbs", SRV_SCOPE_ADMIN, h_kbs, "admin_kbs");
    srv_route_add(s, "POST", "/api/v1/admin/kbs", SRV_SCOPE_ADMIN, h_kb_create, "admin_kb_create");
    srv_route_add(s, "DELETE", "/api/v1/admin/kbs/{}", SRV_SCOPE_ADMIN, h_kb_rm, "admin_kb_rm");
    srv_route_add(s, "GET", "/api/v1/admin/audit", SRV_SCOPE_ADMIN, h_audit, "admin_audit");
    srv_route_add(s, "GET", "/api/v1/admin/review", SRV_SCOPE_ADMIN, h_review, "admin_review");
}
