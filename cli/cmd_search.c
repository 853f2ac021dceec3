/* cmd_search.c — `zhiku search` (interactive, --json, --batch for
 * evaluation tools) and `zhiku ask`, plus the JSON shapes they print (the
 * HIT object is the one every surface uses). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli/cli.h"
#include "server/shapes.h"
#include "retrieval/audit.h"

/* Record who asked what and which chunks they were shown. */
static void audit(cli_ctx *c, const ret_caller *who, const char *action, int64_t kb, const char *query,
                  const ret_audit_ref *refs, size_t n)
{
    char err[ZK_ERRLEN];
    int days = (int)zk_config_int(c->cfg, "audit", "retention_days");
    if (ret_audit_record(c->store, who->name, action, kb, query, refs, n, days, err) != ZK_OK)
        fprintf(stderr, "zhiku: warning: audit log: %s\n", err);
}

static void audit_hits(cli_ctx *c, const ret_caller *who, const char *action, int64_t kb, const char *query,
                       const ret_hit *hits, size_t n)
{
    ret_audit_ref refs[256];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 256; i++) refs[k++] = (ret_audit_ref){hits[i].doc_id, hits[i].chunk_id};
    audit(c, who, action, kb, query, refs, k);
}

static char *join_args(int n, char **v)
{
    zk_buf b;
    buf_init(&b, 1 << 20);
    for (int i = 0; i < n; i++) {
        if (i) buf_putc(&b, ' ');
        buf_puts(&b, v[i]);
    }
    return buf_steal(&b, NULL);
}

/* --batch FILE: one {"_id","text"} per line in, one
 * {"_id", "hits": [{"id","chunk","score"}]} per line out, documents ranked
 * by their best chunk. */
static int batch(cli_ctx *c, const char *path, ret_search_opts *o, int top)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) return cli_usage_error("search", "cannot open %s", path);
    int want = top;
    if (o->bm25_k < 2 * want) o->bm25_k = 2 * want;
    if (o->vector_k < 2 * want) o->vector_k = 2 * want;
    o->top_k = o->bm25_k + o->vector_k;
    o->ids_only = 1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int code = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        json_error_t je;
        json_t *q = json_loadb(line, (size_t)len, 0, &je);
        const char *qid = json_string_value(json_object_get(q, "_id"));
        const char *text = json_string_value(json_object_get(q, "text"));
        if (!q || !qid || !text) {
            if (len > 1) fprintf(stderr, "zhiku search: %s:%ld: needs {\"_id\", \"text\"}\n", path, lineno), code = 4;
            json_decref(q);
            continue;
        }
        ret_hit *hits = NULL;
        size_t n = 0;
        zk_rc rc = ret_search(c->store, c->emb, text, o, &hits, &n, c->err);
        if (rc != ZK_OK) {
            json_decref(q);
            free(line);
            if (f != stdin) fclose(f);
            return cli_fail(c, rc);
        }
        json_t *out = json_object(), *arr = json_array();
        json_object_set_new(out, "_id", json_string(qid));
        int ndocs = 0;
        for (size_t i = 0; i < n && ndocs < want; i++) {
            int seen = 0;
            for (size_t k = 0; k < i && !seen; k++) seen = hits[k].doc_id == hits[i].doc_id;
            if (seen) continue;
            json_t *h = json_object();
            json_object_set_new(h, "id", json_string(hits[i].ext_id));
            json_object_set_new(h, "chunk", json_integer(hits[i].chunk_id));
            json_object_set_new(h, "score", json_real(hits[i].score));
            json_array_append_new(arr, h);
            ndocs++;
        }
        json_object_set_new(out, "hits", arr);
        cli_print_json(out);
        audit_hits(c, o->caller, "search", o->kb, text, hits, n < 100 ? n : 100);
        ret_hits_free(hits, n);
        json_decref(q);
    }
    free(line);
    if (f != stdin) fclose(f);
    return code;
}

static int parse_common(cli_ctx *c, const char *verb, const char *mode, const char *top, const char *kb,
                        const char *as_user, const char **filters, int nfilters, ret_caller *caller,
                        ret_search_opts *o)
{
    ret_search_opts_init(o, c->cfg);
    for (int i = 0; i < nfilters; i++) {
        char *kv = (char *)filters[i];   /* argv storage: writable */
        if (ret_search_add_filter(o, kv, c->err) != ZK_OK) return cli_usage_error(verb, "%s", c->err);
    }
    if (mode && ret_mode_parse(mode, &o->mode) != ZK_OK)
        return cli_usage_error(verb, "--mode must be bm25, vector or hybrid, not '%s'", mode);
    if (top) {
        char *end;
        long v = strtol(top, &end, 10);
        if (*end || v <= 0 || v > 10000) return cli_usage_error(verb, "--top must be a number from 1 to 10000");
        o->top_k = (int)v;
    }
    zk_rc rc = cli_open(c);
    if (rc == ZK_OK) rc = cli_kb(c, kb, &o->kb);
    if (rc != ZK_OK) return cli_fail(c, rc);
    int code = cli_caller(c, as_user, caller);
    o->caller = caller;
    return code;
}

int cmd_search(cli_ctx *c, int argc, char **argv)
{
    const char *top = NULL, *mode = NULL, *batch_file = NULL, *kb = NULL, *as_user = NULL;
    const char *filters[RET_MAX_FILTERS];
    int json = 0, help = 0, npos = 0, nfilters = 0, code;
    cli_opt opts[] = {
        OPT_VAL("top", &top), OPT_VAL("mode", &mode), OPT_VAL("batch", &batch_file),
        OPT_VAL("kb", &kb), OPT_FLAG("json", &json), OPT_VAL("as", &as_user),
        OPT_MULTI("filter", filters, &nfilters, RET_MAX_FILTERS),
    };
    if (cli_parse("search", argc, argv, opts, ZK_ARRAY_LEN(opts), &npos, &help) < 0) return 2;
    if (help) {
        puts("usage: zhiku search [--top N] [--mode hybrid|bm25|vector] [--kb NAME] [--json]\n"
             "                    [--as USER] [--filter KEY=VALUE]... QUERY...\n"
             "       zhiku search --batch FILE.jsonl [--top N] [--mode M]\n\n"
             "--as USER searches with that user's permissions (default: the local\n"
             "administrator, who sees everything); --filter keeps documents whose\n"
             "metadata KEY equals VALUE (repeatable; all must hold).\n"
             "Hybrid search: BM25 (FTS5, zhiku tokenizer) and vector k-NN (FAISS) fused by\n"
             "reciprocal rank fusion. --json prints {\"hits\": [HIT...]} where HIT is\n"
             "  {\"id\", \"source\", \"title\", \"heading\", \"chunk\", \"page\"?, \"snippet\",\n"
             "   \"score\", \"bm25_rank\", \"vector_rank\"}   (ranks are null when absent).\n"
             "--batch reads {\"_id\",\"text\"} lines and writes one line per query:\n"
             "  {\"_id\": QID, \"hits\": [{\"id\": DOC_ID, \"chunk\": N, \"score\": S}, ...]}\n"
             "with documents ranked by their best chunk (top N documents, default 10).\n"
             "Exit status 0 (also when nothing matched), 2 on usage errors.");
        return 0;
    }
    ret_search_opts o;
    ret_caller caller;
    memset(&caller, 0, sizeof caller);
    if ((code = parse_common(c, "search", mode, top, kb, as_user, filters, nfilters, &caller, &o)) != 0) {
        ret_caller_free(&caller);
        return code;
    }
    if (batch_file) {
        code = batch(c, batch_file, &o, top ? o.top_k : 10);
        ret_caller_free(&caller);
        return code;
    }
    if (npos == 0) {
        ret_caller_free(&caller);
        return cli_usage_error("search", "missing QUERY");
    }
    char *query = join_args(npos, argv);
    ret_hit *hits = NULL;
    size_t n = 0;
    zk_rc rc = ret_search(c->store, c->emb, query, &o, &hits, &n, c->err);
    if (rc == ZK_OK) audit_hits(c, &caller, "search", o.kb, query, hits, n);
    zk_free(query);
    ret_caller_free(&caller);
    if (rc != ZK_OK) return cli_fail(c, rc);
    if (json) {
        json_t *out = json_object(), *arr = json_array();
        for (size_t i = 0; i < n; i++) json_array_append_new(arr, srv_hit_json(&hits[i]));
        json_object_set_new(out, "hits", arr);
        cli_print_json(out);
    } else {
        if (n == 0) printf("no matches\n");
        for (size_t i = 0; i < n; i++) {
            const ret_hit *h = &hits[i];
            printf("%2zu. %s%s%s  [%s, chunk %lld%s]\n    %s\n", i + 1, h->title, *h->heading ? " — " : "",
                   h->heading, h->ext_id, (long long)h->chunk_id, "", h->snippet);
            printf("    score %.4f  bm25 #%d  vector #%d\n", h->score, h->bm25_rank, h->vector_rank);
        }
    }
    ret_hits_free(hits, n);
    return 0;
}

int cmd_ask(cli_ctx *c, int argc, char **argv)
{
    const char *mode = NULL, *kb = NULL, *as_user = NULL;
    const char *filters[RET_MAX_FILTERS];
    int json = 0, help = 0, npos = 0, nfilters = 0, code;
    cli_opt opts[] = {OPT_VAL("mode", &mode), OPT_VAL("kb", &kb), OPT_FLAG("json", &json), OPT_VAL("as", &as_user),
                      OPT_MULTI("filter", filters, &nfilters, RET_MAX_FILTERS)};
    if (cli_parse("ask", argc, argv, opts, ZK_ARRAY_LEN(opts), &npos, &help) < 0) return 2;
    if (help) {
        puts("usage: zhiku ask [--mode hybrid|bm25|vector] [--kb NAME] [--json] [--as USER]\n"
             "                 [--filter KEY=VALUE]... QUESTION...\n\n"
             "--as USER answers with that user's permissions (default: the local\n"
             "administrator); only documents they may read are used and cited.\n"
             "Answer from the knowledge base with cited sources. With no LLM configured the\n"
             "extractive answerer picks the best supporting sentences, each followed by\n"
             "its citation [n]. When nothing relevant is found it says so.\n"
             "--json prints {\"answer\", \"citations\": [{\"n\", \"id\", \"source\", \"title\",\n"
             "\"heading\", \"chunk\", \"start\", \"end\", \"page\"?, \"doc\", \"support\", \"weak\"?}],\n"
             "\"not_found\"?, \"provider\"} where start/end are the cited passage's character\n"
             "offsets in the document and weak marks a claim its source barely supports.\n"
             "With [llm] providers configured the answer comes from the model (see\n"
             "`zhiku config`), else from the extractive answerer.");
        return 0;
    }
    ret_search_opts o;
    ret_caller caller;
    memset(&caller, 0, sizeof caller);
    if ((code = parse_common(c, "ask", mode, NULL, kb, as_user, filters, nfilters, &caller, &o)) != 0) {
        ret_caller_free(&caller);
        return code;
    }
    if (npos == 0) {
        ret_caller_free(&caller);
        return cli_usage_error("ask", "missing QUESTION");
    }
    char *q = join_args(npos, argv);
    llm_answer_opts ao;
    llm_answer_opts_init(&ao, c->cfg);
    llm_providers *prov = NULL;
    llm_reranker *rr = NULL;
    llm_result r;
    memset(&r, 0, sizeof r);
    zk_rc rc = llm_providers_from_config(c->cfg, &prov, c->err);
    if (rc == ZK_OK) rc = llm_reranker_from_config(c->cfg, &rr, c->err);
    ao.providers = prov;
    ao.reranker = rr;
    if (rc == ZK_OK) rc = llm_ask(c->store, c->emb, q, &o, &ao, &r, c->err);
    llm_providers_free(prov);
    llm_reranker_free(rr);
    if (rc == ZK_OK) {
        ret_audit_ref refs[64];
        size_t k = 0;
        for (size_t i = 0; i < r.ncitations && k < 64; i++)
            refs[k++] = (ret_audit_ref){r.citations[i].doc_id, r.citations[i].chunk_id};
        audit(c, &caller, "ask", o.kb, q, refs, k);
    }
    zk_free(q);
    ret_caller_free(&caller);
    if (rc != ZK_OK) return cli_fail(c, rc);
    if (json) {
        cli_print_json(srv_answer_json(&r));
    } else {
        printf("%s\n", r.answer);
        if (r.ncitations) printf("\nSources:\n");
        for (size_t i = 0; i < r.ncitations; i++) {
            const llm_citation *ct = &r.citations[i];
            printf("[%d] %s%s%s\n    %s  (chunk %lld, characters %lld–%lld%s)\n", ct->n, ct->title,
                   *ct->heading ? " — " : "", ct->heading, ct->source, (long long)ct->chunk_id,
                   (long long)ct->start, (long long)ct->end, ct->weak ? ", weak support" : "");
        }
    }
    llm_result_free(&r);
    return 0;
}
