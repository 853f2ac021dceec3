/* acl.c — callers, the read-permission predicate and document grants (see
 * acl.h). Every retrieval query embeds RET_ACL_PREDICATE; grants change
 * doc_acl in one statement each and bump acl_version. */
#include "retrieval/acl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "retrieval/principal.h"

void ret_caller_admin(ret_caller *out)
{
    memset(out, 0, sizeof *out);
    out->admin = 1;
    snprintf(out->name, sizeof out->name, "admin");
}

zk_rc ret_caller_from_set(const char *name, int64_t user_id, const int64_t *ids, size_t n, int admin,
                          ret_caller *out, char *err)
{
    memset(out, 0, sizeof *out);
    out->admin = admin;
    out->user_id = user_id;
    snprintf(out->name, sizeof out->name, "%s", name);
    out->principals = zk_malloc((n ? n : 1) * sizeof *out->principals);
    if (!out->principals) return zk_fail(err, ZK_NOMEM, "out of memory");
    memcpy(out->principals, ids, n * sizeof *ids);
    qsort(out->principals, n, sizeof *ids, zk_cmp_i64);
    out->nprincipals = n;
    zk_buf b;
    buf_init(&b, 0);
    buf_putc(&b, '[');
    for (size_t i = 0; i < n; i++) buf_printf(&b, "%s%lld", i ? "," : "", (long long)out->principals[i]);
    if (buf_putc(&b, ']') != ZK_OK) {
        buf_free(&b);
        ret_caller_free(out);
        return zk_fail(err, ZK_NOMEM, "out of memory");
    }
    out->principals_json = buf_steal(&b, NULL);
    return ZK_OK;
}

zk_rc ret_caller_user(ret_store *s, const char *name, ret_caller *out, char *err)
{
    int64_t uid, *ids = NULL;
    size_t n = 0;
    int admin = 0;
    char label[96];
    zk_rc rc = ret_principal_find(s, RET_PRINCIPAL_USER, name, &uid, err);
    if (rc != ZK_OK) return rc;
    if ((rc = ret_principal_set(s, uid, &ids, &n, &admin, err)) != ZK_OK) return rc;
    snprintf(label, sizeof label, "user:%s", name);
    rc = ret_caller_from_set(label, uid, ids, n, admin, out, err);
    zk_free(ids);
    return rc;
}

void ret_caller_free(ret_caller *c)
{
    if (!c) return;
    zk_free(c->principals);
    zk_free(c->principals_json);
    c->principals = NULL;
    c->principals_json = NULL;
    c->nprincipals = 0;
}

void ret__acl_bind(sqlite3_stmt *st, const ret_caller *c)
{
    int ia = sqlite3_bind_parameter_index(st, ":acl_admin");
    int ii = sqlite3_bind_parameter_index(st, ":acl_ids");
    /* a caller without principals reads nothing: '[]' matches no grant */
    if (ia) sqlite3_bind_int(st, ia, c && c->admin ? 1 : 0);
    if (ii) sqlite3_bind_text(st, ii, c && c->principals_json ? c->principals_json : "[]", -1, SQLITE_TRANSIENT);
}

zk_rc ret_acl_can_read(ret_store *s, const ret_caller *c, int64_t doc_id, int *out, char *err)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *db = ret_store_db(s);
    *out = 0;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM documents d WHERE d.id = :doc AND" RET_ACL_PREDICATE, -1, &st, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "acl check: %s", sqlite3_errmsg(db));
    sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":doc"), doc_id);
    ret__acl_bind(st, c);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r == SQLITE_ROW) *out = 1;
    else if (r != SQLITE_DONE) return zk_fail(err, ZK_DB, "acl check: %s", sqlite3_errmsg(db));
    return ZK_OK;
}

static zk_rc exec_i64(ret_store *s, const char *sql, int64_t a, int64_t b, char *err)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *db = ret_store_db(s);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "acl: %s", sqlite3_errmsg(db));
    sqlite3_bind_int64(st, 1, a);
    if (sqlite3_bind_parameter_count(st) >= 2) sqlite3_bind_int64(st, 2, b);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE) return zk_fail(err, r == SQLITE_CONSTRAINT ? ZK_NOTFOUND : ZK_DB, "acl: %s", sqlite3_errmsg(db));
    return ZK_OK;
}

static zk_rc doc_exists(ret_store *s, int64_t doc_id, char *err)
{
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(ret_store_db(s), "SELECT 1 FROM documents WHERE id = ?", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, doc_id);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    return r == SQLITE_ROW ? ZK_OK : zk_fail(err, ZK_NOTFOUND, "document %lld not found", (long long)doc_id);
}

zk_rc ret_acl_grant(ret_store *s, int64_t doc_id, int64_t principal, char *err)
{
    zk_rc rc;
    if ((rc = doc_exists(s, doc_id, err)) != ZK_OK) return rc;
    int own;
    if ((rc = ret__tx_begin(ret_store_db(s), "acl_grant", &own, err)) != ZK_OK) return rc;
    rc = exec_i64(s, "INSERT OR IGNORE INTO doc_acl(doc_id, principal_id) VALUES (?, ?)", doc_id, principal, err);
    if (rc == ZK_OK) rc = ret_acl_bump(s, err);
    return ret__tx_end(ret_store_db(s), "acl_grant", own, rc, err);
}

zk_rc ret_acl_revoke(ret_store *s, int64_t doc_id, int64_t principal, char *err)
{
    zk_rc rc;
    if ((rc = doc_exists(s, doc_id, err)) != ZK_OK) return rc;
    int own;
    if ((rc = ret__tx_begin(ret_store_db(s), "acl_revoke", &own, err)) != ZK_OK) return rc;
    rc = exec_i64(s, "DELETE FROM doc_acl WHERE doc_id = ? AND principal_id = ?", doc_id, principal, err);
    if (rc == ZK_OK) rc = ret_acl_bump(s, err);
    return ret__tx_end(ret_store_db(s), "acl_revoke", own, rc, err);
}

zk_rc ret_acl_set(ret_store *s, int64_t doc_id, const int64_t *principals, size_t n, char *err)
{
    zk_rc rc;
    int own;
    if ((rc = ret__tx_begin(ret_store_db(s), "acl_set", &own, err)) != ZK_OK) return rc;
    rc = exec_i64(s, "DELETE FROM doc_acl WHERE doc_id = ?", doc_id, 0, err);
    for (size_t i = 0; rc == ZK_OK && i < n; i++)
        rc = exec_i64(s, "INSERT OR IGNORE INTO doc_acl(doc_id, principal_id) VALUES (?, ?)", doc_id, principals[i], err);
    if (rc == ZK_OK) rc = ret_acl_bump(s, err);
    return ret__tx_end(ret_store_db(s), "acl_set", own, rc, err);
}

zk_rc ret_acl_list(ret_store *s, int64_t doc_id, char ***out_specs, size_t *out_n, char *err)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *db = ret_store_db(s);
    char **v = NULL;
    size_t n = 0, cap = 0;
    *out_specs = NULL;
    *out_n = 0;
    zk_rc rc = doc_exists(s, doc_id, err);
    if (rc != ZK_OK) return rc;
    if (sqlite3_prepare_v2(db, "SELECT p.kind, p.name FROM doc_acl a JOIN principals p ON p.id = a.principal_id "
                               "WHERE a.doc_id = ? ORDER BY p.kind DESC, p.name", -1, &st, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "acl: %s", sqlite3_errmsg(db));
    sqlite3_bind_int64(st, 1, doc_id);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *kind = (const char *)sqlite3_column_text(st, 0), *name = (const char *)sqlite3_column_text(st, 1);
        char spec[160];
        if (!strcmp(kind, "group") && !strcmp(name, "everyone")) snprintf(spec, sizeof spec, "everyone");
        else snprintf(spec, sizeof spec, "%s:%s", kind, name);
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            char **p = zk_realloc(v, cap * sizeof *p);
            if (!p) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); break; }
            v = p;
        }
        if (!(v[n] = zk_strdup(spec))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); break; }
        n++;
    }
    sqlite3_finalize(st);
    if (rc != ZK_OK) {
        for (size_t i = 0; i < n; i++) zk_free(v[i]);
        zk_free(v);
        return rc;
    }
    *out_specs = v;
    *out_n = n;
    return ZK_OK;
}

zk_rc ret_acl_parse_list(ret_store *s, const char *list, int64_t **out_ids, size_t *out_n, char *err)
{
    zk_rc rc = ZK_OK;
    size_t n = 0, cap = 8;
    int64_t *ids = zk_malloc(cap * sizeof *ids);
    char *copy = zk_strdup(list ? list : "");
    *out_ids = NULL;
    *out_n = 0;
    if (!ids || !copy) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        char *e = tok + strlen(tok);
        while (e > tok && e[-1] == ' ') *--e = '\0';
        if (!*tok) continue;
        int64_t id;
        if ((rc = ret_principal_parse(s, tok, &id, err)) != ZK_OK) goto out;
        if (n == cap) {
            cap *= 2;
            int64_t *p = zk_realloc(ids, cap * sizeof *p);
            if (!p) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
            ids = p;
        }
        ids[n++] = id;
    }
    *out_ids = ids;
    *out_n = n;
    ids = NULL;
out:
    zk_free(ids);
    zk_free(copy);
    return rc;
}
