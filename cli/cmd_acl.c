/* cmd_acl.c — `zhiku acl show|grant|revoke DOC|--path PREFIX [PRINCIPAL]`:
 * read grants per document, or for every document whose source starts with
 * PREFIX. Changes take effect for the very next query (no caches). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "retrieval/acl.h"
#include "retrieval/principal.h"

/* Documents addressed by DOC or --path PREFIX, in kb. */
static zk_rc targets(cli_ctx *c, int64_t kb, const char *doc, const char *prefix, int64_t **out, size_t *out_n)
{
    *out = NULL;
    *out_n = 0;
    if (doc) {
        int64_t id;
        zk_rc rc = ret_doc_find(c->store, kb, doc, &id, c->err);
        if (rc != ZK_OK) return rc;
        if (!(*out = zk_malloc(sizeof **out))) return zk_fail(c->err, ZK_NOMEM, "out of memory");
        (*out)[0] = id;
        *out_n = 1;
        return ZK_OK;
    }
    sqlite3_stmt *st = NULL;
    sqlite3 *db = ret_store_db(c->store);
    /* prefix match without LIKE wildcards: substr compare */
    if (sqlite3_prepare_v2(db, "SELECT id FROM documents WHERE kb_id = ? AND substr(source, 1, length(?2)) = ?2 "
                               "ORDER BY id", -1, &st, NULL) != SQLITE_OK)
        return zk_fail(c->err, ZK_DB, "%s", sqlite3_errmsg(db));
    sqlite3_bind_int64(st, 1, kb);
    sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
    size_t cap = 0;
    zk_rc rc = ZK_OK;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (*out_n == cap) {
            cap = cap ? cap * 2 : 64;
            int64_t *p = zk_realloc(*out, cap * sizeof *p);
            if (!p) { rc = zk_fail(c->err, ZK_NOMEM, "out of memory"); break; }
            *out = p;
        }
        (*out)[(*out_n)++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc == ZK_OK && *out_n == 0) rc = zk_fail(c->err, ZK_NOTFOUND, "no document's source starts with '%s'", prefix);
    return rc;
}

static const char *doc_label(cli_ctx *c, int64_t id, char *buf, size_t cap)
{
    sqlite3_stmt *st = NULL;
    snprintf(buf, cap, "%lld", (long long)id);
    if (sqlite3_prepare_v2(ret_store_db(c->store), "SELECT ext_id FROM documents WHERE id = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) == SQLITE_ROW) snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    return buf;
}

int cmd_acl(cli_ctx *c, int argc, char **argv)
{
    const char *prefix = NULL, *kb_name = NULL;
    int json = 0, help = 0, npos = 0;
    cli_opt opts[] = {OPT_VAL("path", &prefix), OPT_VAL("kb", &kb_name), OPT_FLAG("json", &json)};
    if (cli_parse("acl", argc, argv, opts, ZK_ARRAY_LEN(opts), &npos, &help) < 0) return 2;
    if (help || npos == 0) {
        puts("usage: zhiku acl show DOC|--path PREFIX [--json]\n"
             "       zhiku acl grant DOC|--path PREFIX PRINCIPAL\n"
             "       zhiku acl revoke DOC|--path PREFIX PRINCIPAL\n\n"
             "Who may read a document. DOC is a document's numeric or external id;\n"
             "--path PREFIX addresses every document whose source starts with PREFIX.\n"
             "PRINCIPAL is user:NAME, group:NAME or everyone. Administrators read\n"
             "everything. Changes apply to the very next query.");
        return help ? 0 : 2;
    }
    const char *verb = argv[0];
    int is_show = !strcmp(verb, "show"), is_grant = !strcmp(verb, "grant"), is_revoke = !strcmp(verb, "revoke");
    if (!is_show && !is_grant && !is_revoke) return cli_usage_error("acl", "unknown subcommand '%s'", verb);
    int want = (is_show ? 1 : 2) - (prefix ? 1 : 0);
    if (npos - 1 != want)
        return cli_usage_error("acl", "%s needs %s", verb,
                               is_show ? "DOC or --path PREFIX" : "DOC (or --path PREFIX) and a PRINCIPAL");
    const char *doc = prefix ? NULL : argv[1];
    const char *principal = is_show ? NULL : argv[npos - 1];

    zk_rc rc;
    int64_t kb, *docs = NULL, pid = 0;
    size_t ndocs = 0;
    if ((rc = cli_open(c)) != ZK_OK || (rc = cli_kb(c, kb_name, &kb)) != ZK_OK) return cli_fail(c, rc);
    if (principal && (rc = ret_principal_parse(c->store, principal, &pid, c->err)) != ZK_OK) return cli_fail(c, rc);
    if ((rc = targets(c, kb, doc, prefix, &docs, &ndocs)) != ZK_OK) return cli_fail(c, rc);

    json_t *out = json ? json_array() : NULL;
    if (!is_show && (rc = ret_store_begin(c->store, c->err)) != ZK_OK) goto out;
    for (size_t i = 0; i < ndocs && rc == ZK_OK; i++) {
        char label[4096];
        doc_label(c, docs[i], label, sizeof label);
        if (is_show) {
            char **specs = NULL;
            size_t n = 0;
            if ((rc = ret_acl_list(c->store, docs[i], &specs, &n, c->err)) != ZK_OK) break;
            json_t *arr = json_array();
            if (!json) printf("%s:", label);
            for (size_t k = 0; k < n; k++) {
                if (json) json_array_append_new(arr, json_string(specs[k]));
                else printf(" %s", specs[k]);
                zk_free(specs[k]);
            }
            zk_free(specs);
            if (json) {
                json_t *o = json_object();
                json_object_set_new(o, "id", json_string(label));
                json_object_set_new(o, "read", arr);
                json_array_append_new(out, o);
            } else {
                json_decref(arr);
                printf("%s\n", n ? "" : " (administrators only)");
            }
        } else {
            rc = is_grant ? ret_acl_grant(c->store, docs[i], pid, c->err) : ret_acl_revoke(c->store, docs[i], pid, c->err);
            if (rc == ZK_OK) printf("%s %s %s %s\n", is_grant ? "granted" : "revoked", principal, is_grant ? "on" : "from", label);
        }
    }
    if (!is_show) {
        if (rc == ZK_OK) rc = ret_store_commit(c->store, c->err);
        else ret_store_rollback(c->store);
    }
out:
    zk_free(docs);
    if (json) cli_print_json(out);
    return rc == ZK_OK ? 0 : cli_fail(c, rc);
}
