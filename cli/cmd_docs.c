/* cmd_docs.c — `zhiku docs list|show|rm`, `zhiku stats` and `zhiku check`:
 * the administrator's view of what is in the knowledge base. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "retrieval/acl.h"

static const char *col(sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    return v ? v : "";
}

static int docs_list(cli_ctx *c, const ret_caller *who, int64_t kb, int json, int failed_only)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *db = ret_store_db(c->store);
    const char *sql = "SELECT id, ext_id, title, format, nchunks, bytes, status, error, version, "
                      "datetime(updated_at, 'unixepoch') FROM documents d WHERE kb_id = :kb "
                      "AND (:failed = 0 OR status = 'failed') AND" RET_ACL_PREDICATE "ORDER BY id";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return fprintf(stderr, "zhiku: %s\n", sqlite3_errmsg(db)), 1;
    sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":kb"), kb);
    sqlite3_bind_int(st, sqlite3_bind_parameter_index(st, ":failed"), failed_only);
    ret__acl_bind(st, who);
    json_t *arr = json ? json_array() : NULL;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (json) {
            json_t *o = json_object();
            json_object_set_new(o, "doc", json_integer(sqlite3_column_int64(st, 0)));
            json_object_set_new(o, "id", json_string(col(st, 1)));
            json_object_set_new(o, "title", json_string(col(st, 2)));
            json_object_set_new(o, "format", json_string(col(st, 3)));
            json_object_set_new(o, "chunks", json_integer(sqlite3_column_int64(st, 4)));
            json_object_set_new(o, "bytes", json_integer(sqlite3_column_int64(st, 5)));
            json_object_set_new(o, "status", json_string(col(st, 6)));
            if (sqlite3_column_type(st, 7) != SQLITE_NULL) json_object_set_new(o, "error", json_string(col(st, 7)));
            json_object_set_new(o, "version", json_integer(sqlite3_column_int64(st, 8)));
            json_object_set_new(o, "updated", json_string(col(st, 9)));
            json_array_append_new(arr, o);
        } else {
            printf("%6lld  %-8s %5lld chunks  %s  %s\n", (long long)sqlite3_column_int64(st, 0), col(st, 6),
                   (long long)sqlite3_column_int64(st, 4), col(st, 1), col(st, 2));
        }
    }
    sqlite3_finalize(st);
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "documents", arr);
        cli_print_json(o);
    }
    return 0;
}

static int docs_show(cli_ctx *c, const ret_caller *who, int64_t kb, const char *ref, int json)
{
    int64_t id;
    int readable = 0;
    zk_rc rc = ret_doc_find(c->store, kb, ref, &id, c->err);
    if (rc == ZK_OK && (rc = ret_acl_can_read(c->store, who, id, &readable, c->err)) == ZK_OK && !readable)
        rc = zk_fail(c->err, ZK_NOTFOUND, "no document '%s'", ref);   /* same answer as absent */
    if (rc != ZK_OK) return cli_fail(c, rc);
    sqlite3 *db = ret_store_db(c->store);
    sqlite3_stmt *st = NULL, *cs = NULL;
    sqlite3_prepare_v2(db, "SELECT ext_id, source, title, format, charset, sha256, bytes, version, status, "
                           "error, metadata, nchunks, datetime(created_at,'unixepoch'), "
                           "datetime(updated_at,'unixepoch') FROM documents WHERE id = ?", -1, &st, NULL);
    sqlite3_prepare_v2(db, "SELECT id, ordinal, heading, page, start_char, end_char, text FROM chunks "
                           "WHERE doc_id = ? ORDER BY ordinal", -1, &cs, NULL);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(cs, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        sqlite3_finalize(cs);
        return fprintf(stderr, "zhiku: document vanished\n"), 3;
    }
    json_t *o = json_object(), *chunks = json_array();
    static const char *const keys[] = {"id", "source", "title", "format", "charset", "sha256"};
    json_object_set_new(o, "doc", json_integer(id));
    for (int i = 0; i < 6; i++) json_object_set_new(o, keys[i], json_string(col(st, i)));
    json_object_set_new(o, "bytes", json_integer(sqlite3_column_int64(st, 6)));
    json_object_set_new(o, "version", json_integer(sqlite3_column_int64(st, 7)));
    json_object_set_new(o, "status", json_string(col(st, 8)));
    if (sqlite3_column_type(st, 9) != SQLITE_NULL) json_object_set_new(o, "error", json_string(col(st, 9)));
    json_t *meta = sqlite3_column_type(st, 10) != SQLITE_NULL ? json_loads(col(st, 10), 0, NULL) : NULL;
    json_object_set_new(o, "metadata", meta ? meta : json_object());
    json_object_set_new(o, "created", json_string(col(st, 12)));
    json_object_set_new(o, "updated", json_string(col(st, 13)));
    while (sqlite3_step(cs) == SQLITE_ROW) {
        json_t *ch = json_object();
        json_object_set_new(ch, "chunk", json_integer(sqlite3_column_int64(cs, 0)));
        json_object_set_new(ch, "ordinal", json_integer(sqlite3_column_int64(cs, 1)));
        json_object_set_new(ch, "heading", json_string(col(cs, 2)));
        if (sqlite3_column_int(cs, 3) > 0) json_object_set_new(ch, "page", json_integer(sqlite3_column_int(cs, 3)));
        json_object_set_new(ch, "start", json_integer(sqlite3_column_int64(cs, 4)));
        json_object_set_new(ch, "end", json_integer(sqlite3_column_int64(cs, 5)));
        json_object_set_new(ch, "text", json_string(col(cs, 6)));
        json_array_append_new(chunks, ch);
    }
    json_object_set_new(o, "chunks", chunks);
    sqlite3_finalize(st);
    sqlite3_finalize(cs);
    if (json) {
        cli_print_json(o);
        return 0;
    }
    printf("document %lld\n  id:      %s\n  title:   %s\n  source:  %s\n  format:  %s (%s)\n"
           "  sha256:  %s\n  status:  %s, version %lld, %zu chunks\n",
           (long long)id, json_string_value(json_object_get(o, "id")), json_string_value(json_object_get(o, "title")),
           json_string_value(json_object_get(o, "source")), json_string_value(json_object_get(o, "format")),
           json_string_value(json_object_get(o, "charset")), json_string_value(json_object_get(o, "sha256")),
           json_string_value(json_object_get(o, "status")),
           (long long)json_integer_value(json_object_get(o, "version")), json_array_size(chunks));
    size_t i;
    json_t *ch;
    json_array_foreach(chunks, i, ch) {
        const char *text = json_string_value(json_object_get(ch, "text"));
        printf("  chunk %lld #%lld [%lld–%lld] %s: %.80s%s\n", (long long)json_integer_value(json_object_get(ch, "chunk")),
               (long long)json_integer_value(json_object_get(ch, "ordinal")),
               (long long)json_integer_value(json_object_get(ch, "start")),
               (long long)json_integer_value(json_object_get(ch, "end")),
               json_string_value(json_object_get(ch, "heading")), text, strlen(text) > 80 ? "…" : "");
    }
    json_decref(o);
    return 0;
}

int cmd_docs(cli_ctx *c, int argc, char **argv)
{
    const char *kb_name = NULL, *as_user = NULL;
    int json = 0, failed = 0, help = 0, npos = 0;
    cli_opt opts[] = {OPT_VAL("kb", &kb_name), OPT_FLAG("json", &json), OPT_FLAG("failed", &failed),
                      OPT_VAL("as", &as_user)};
    if (cli_parse("docs", argc, argv, opts, ZK_ARRAY_LEN(opts), &npos, &help) < 0) return 2;
    if (help || npos == 0) {
        puts("usage: zhiku docs list [--failed] [--json] [--kb NAME] [--as USER]\n"
             "       zhiku docs show DOC [--json] [--as USER]   (DOC: numeric id or external id)\n"
             "       zhiku docs rm DOC...\n\n"
             "List, inspect or remove documents. rm deletes the document's chunks, text\n"
             "index entries and vectors in one transaction.");
        return help ? 0 : 2;
    }
    zk_rc rc;
    int64_t kb;
    if ((rc = cli_open(c)) != ZK_OK || (rc = cli_kb(c, kb_name, &kb)) != ZK_OK) return cli_fail(c, rc);
    if (!strcmp(argv[0], "list") || !strcmp(argv[0], "show")) {
        ret_caller who;
        int code = cli_caller(c, as_user, &who);
        if (code) return code;
        if (!strcmp(argv[0], "list")) code = docs_list(c, &who, kb, json, failed);
        else if (npos != 2) code = cli_usage_error("docs", "show takes one DOC");
        else code = docs_show(c, &who, kb, argv[1], json);
        ret_caller_free(&who);
        return code;
    }
    if (as_user) return cli_usage_error("docs", "--as applies to list and show");
    if (!strcmp(argv[0], "rm")) {
        if (npos < 2) return cli_usage_error("docs", "rm needs at least one DOC");
        int code = 0;
        for (int i = 1; i < npos; i++) {
            int64_t id;
            if ((rc = ret_doc_find(c->store, kb, argv[i], &id, c->err)) != ZK_OK ||
                (rc = ret_doc_delete(c->store, id, c->err)) != ZK_OK) {
                code = cli_fail(c, rc);
                continue;
            }
            printf("removed %s\n", argv[i]);
        }
        if ((rc = ret_store_sync(c->store, 1, c->err)) != ZK_OK) return cli_fail(c, rc);
        return code;
    }
    return cli_usage_error("docs", "unknown subcommand '%s'", argv[0]);
}

int cmd_stats(cli_ctx *c, int argc, char **argv)
{
    const char *kb_name = NULL, *as_user = NULL;
    int json = 0, help = 0, npos = 0;
    cli_opt opts[] = {OPT_VAL("kb", &kb_name), OPT_FLAG("json", &json), OPT_VAL("as", &as_user)};
    if (cli_parse("stats", argc, argv, opts, ZK_ARRAY_LEN(opts), &npos, &help) < 0) return 2;
    if (help) {
        puts("usage: zhiku stats [--kb NAME] [--json] [--as USER]\n\nDocuments (by status), chunks, vectors, "
             "bytes, the embedding model and the schema version\n(counting only what USER may read with --as).");
        return 0;
    }
    zk_rc rc;
    int64_t kb;
    if ((rc = cli_open(c)) != ZK_OK || (rc = cli_kb(c, kb_name, &kb)) != ZK_OK) return cli_fail(c, rc);
    ret_caller who;
    int code = cli_caller(c, as_user, &who);
    if (code) return code;
    sqlite3 *db = ret_store_db(c->store);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db,
        "WITH v AS (SELECT * FROM documents d WHERE d.kb_id = :kb AND" RET_ACL_PREDICATE ")"
        "SELECT (SELECT count(*) FROM v WHERE status = 'indexed'),"
        " (SELECT count(*) FROM v WHERE status = 'failed'),"
        " (SELECT coalesce(sum(nchunks), 0) FROM v),"
        " (SELECT coalesce(sum(bytes), 0) FROM v),"
        " (SELECT count(*) FROM vectors x JOIN chunks c ON c.id = x.chunk_id JOIN v ON v.id = c.doc_id),"
        " (SELECT embed_model FROM kb WHERE id = :kb), (SELECT embed_dim FROM kb WHERE id = :kb),"
        " (SELECT name FROM kb WHERE id = :kb)", -1, &st, NULL);
    sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":kb"), kb);
    ret__acl_bind(st, &who);
    ret_caller_free(&who);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return fprintf(stderr, "zhiku: %s\n", sqlite3_errmsg(db)), 1;
    }
    json_t *o = json_object();
    json_object_set_new(o, "kb", json_string(col(st, 7)));
    json_object_set_new(o, "documents", json_integer(sqlite3_column_int64(st, 0)));
    json_object_set_new(o, "failed", json_integer(sqlite3_column_int64(st, 1)));
    json_object_set_new(o, "chunks", json_integer(sqlite3_column_int64(st, 2)));
    json_object_set_new(o, "bytes", json_integer(sqlite3_column_int64(st, 3)));
    json_object_set_new(o, "vectors", json_integer(sqlite3_column_int64(st, 4)));
    json_object_set_new(o, "embedding_model", json_string(col(st, 5)));
    json_object_set_new(o, "embedding_dim", json_integer(sqlite3_column_int64(st, 6)));
    json_object_set_new(o, "schema_version", json_integer(ret_store_schema_version(c->store)));
    sqlite3_finalize(st);
    if (json) {
        cli_print_json(o);
        return 0;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (json_is_string(v)) printf("%-16s %s\n", k, json_string_value(v));
        else printf("%-16s %lld\n", k, (long long)json_integer_value(v));
    }
    json_decref(o);
    return 0;
}

int cmd_check(cli_ctx *c, int argc, char **argv)
{
    int help = 0, npos = 0;
    if (cli_parse("check", argc, argv, NULL, 0, &npos, &help) < 0) return 2;
    if (help) {
        puts("usage: zhiku check\n\nVerify the data directory: SQLite integrity, the full-text index, every\n"
             "document complete (all chunks, text index rows and vectors), and the vector\n"
             "index (after replaying the change log) equal to the vectors table.\n"
             "Exit status 0 when consistent, 1 when problems were found (printed).");
        return 0;
    }
    zk_rc rc;
    int problems = 0;
    if ((rc = cli_open(c)) != ZK_OK) return cli_fail(c, rc);
    if ((rc = ret_store_check(c->store, stdout, &problems, c->err)) != ZK_OK) return cli_fail(c, rc);
    if ((rc = ret_store_sync(c->store, 1, c->err)) != ZK_OK) return cli_fail(c, rc);
    printf("%s\n", problems ? "problems found" : "ok");
    return problems ? 1 : 0;
}

int cmd_optimize(cli_ctx *c, int argc, char **argv)
{
    int help = 0, npos = 0;
    if (cli_parse("optimize", argc, argv, NULL, 0, &npos, &help) < 0) return 2;
    if (help) {
        puts("usage: zhiku optimize\n\nMerge the full-text index's segments into one. Run it after a bulk load (or\n"
             "many small ones): BM25 queries then read one b-tree per term instead of one\n"
             "per segment. It rewrites the whole text index (about 45 s per million\n"
             "chunks) in short steps: searches go on, and an ingest running meanwhile waits\n"
             "a step at most. Safe to interrupt; running it again finishes the merge.");
        return 0;
    }
    if (npos) return cli_usage_error("optimize", "takes no arguments");
    zk_rc rc;
    int before = 0, after = 0;
    if ((rc = cli_open(c)) != ZK_OK) return cli_fail(c, rc);
    double t0 = zk_now();
    if ((rc = ret_store_optimize(c->store, &before, &after, c->err)) != ZK_OK) return cli_fail(c, rc);
    printf("full-text index: %d segment%s -> %d in %.1f s\n", before, before == 1 ? "" : "s", after, zk_now() - t0);
    return 0;
}
