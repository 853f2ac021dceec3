/* main.c — `zhiku` entry point: global options (--data-dir, --config,
 * accepted before or after the verb), configuration, verb dispatch and the
 * documented exit codes. Each verb lives in cli/cmd_*.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "cli/cli.h"
#include "retrieval/vindex.h"

#define ZHIKU_VERSION "0.1.0"

static const struct {
    const char *name;
    int (*fn)(cli_ctx *, int, char **);
    const char *help;
} verbs[] = {
    {"serve", cmd_serve, "run the HTTP API and the web portal"},
    {"ingest", cmd_ingest, "add files, folders or a JSONL file to a knowledge base"},
    {"search", cmd_search, "hybrid search (BM25 + vectors); --batch for evaluation"},
    {"ask", cmd_ask, "answer a question with cited sources"},
    {"docs", cmd_docs, "list, show or remove documents"},
    {"stats", cmd_stats, "counts and sizes of the knowledge base"},
    {"check", cmd_check, "verify the database and the vector index are consistent"},
    {"optimize", cmd_optimize, "merge the full-text index after a bulk load (faster BM25)"},
    {"acl", cmd_acl, "show, grant or revoke read access to documents"},
    {"user", cmd_user, "add, list or remove users"},
    {"group", cmd_group, "add or remove groups and their members"},
    {"kb", cmd_kb, "create, list or remove knowledge bases"},
    {"token", cmd_token, "create, list or revoke API tokens"},
    {"audit", cmd_audit, "list or export the audit log of searches and answers"},
    {"reindex", cmd_reindex, "re-embed a knowledge base after [embedding] changed"},
    {"usage", cmd_usage, "model token usage per day, user, knowledge base and provider"},
    {"backup", cmd_backup, "copy the database, uploads and vector snapshots while running"},
    {"config", cmd_config, "print the effective configuration (secrets masked)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: zhiku [--data-dir DIR] [--config FILE] [-v] VERB [ARGS...]\n\nverbs:\n");
    for (size_t i = 0; i < ZK_ARRAY_LEN(verbs); i++) fprintf(f, "  %-8s %s\n", verbs[i].name, verbs[i].help);
    fprintf(f, "\n`zhiku VERB --help` describes each verb.\n"
               "global options may also come after the verb; ZHIKU_DATA_DIR and ZHIKU_CONFIG\n"
               "set them from the environment.\n\n"
               "exit codes: 0 ok, 1 error, 2 usage or configuration error, 3 not found,\n"
               "            4 unsupported or malformed input, 5 embedding model mismatch\n");
}

int cli_usage_error(const char *verb, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "zhiku %s: ", verb);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see `zhiku %s --help`)\n", verb);
    return 2;
}

int cli_fail(cli_ctx *c, zk_rc rc)
{
    fprintf(stderr, "zhiku: %s\n", c->err[0] ? c->err : zk_strerror(rc));
    return zk_exit_code(rc);
}

int cli_parse(const char *verb, int argc, char **argv, const cli_opt *opts, size_t nopts,
              int *out_npos, int *help)
{
    int npos = 0, only_pos = 0;
    *help = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') { argv[npos++] = a; continue; }
        if (!strcmp(a, "--")) { only_pos = 1; continue; }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { *help = 1; continue; }
        const char *name = a + (a[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        const cli_opt *o = NULL;
        for (size_t k = 0; k < nopts; k++)
            if (strlen(opts[k].name) == nl && !strncmp(opts[k].name, name, nl)) o = &opts[k];
        if (!o) { cli_usage_error(verb, "unknown option %s", a); return -1; }
        if (o->takes_value) {
            const char *v;
            if (eq) v = eq + 1;
            else if (i + 1 < argc) v = argv[++i];
            else { cli_usage_error(verb, "option --%s needs a value", o->name); return -1; }
            if (o->count) {
                if (*o->count >= o->max) { cli_usage_error(verb, "at most %d --%s options", o->max, o->name); return -1; }
                o->value[(*o->count)++] = v;
            } else {
                *o->value = v;
            }
        } else {
            if (eq) { cli_usage_error(verb, "option --%s takes no value", o->name); return -1; }
            *o->flag = 1;
        }
    }
    *out_npos = npos;
    return 0;
}

zk_rc cli_open(cli_ctx *c)
{
    zk_rc rc;
    if (c->store) return ZK_OK;
    if ((rc = ret_store_open(c->data_dir, 0, &c->store, c->err)) != ZK_OK) return rc;
    return llm_embedder_from_config(c->cfg, &c->emb, c->err);
}

int cli_caller(cli_ctx *c, const char *as_user, ret_caller *out)
{
    if (!as_user) {
        ret_caller_admin(out);
        return 0;
    }
    zk_rc rc = ret_caller_user(c->store, as_user, out, c->err);
    return rc == ZK_OK ? 0 : cli_fail(c, rc);
}

zk_rc cli_kb(cli_ctx *c, const char *name, int64_t *out_kb)
{
    return ret_kb_id(c->store, name, out_kb, c->err);
}

void cli_print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII * 0);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    json_decref(j);
}

int cmd_config(cli_ctx *c, int argc, char **argv)
{
    int help = 0, npos = 0;
    if (cli_parse("config", argc, argv, NULL, 0, &npos, &help) < 0) return 2;
    if (help) {
        puts("usage: zhiku config\n\nPrint every configuration key with its effective value (after\n"
             "ZHIKU_SECTION_KEY environment overrides), its default and its meaning.");
        return 0;
    }
    printf("; effective configuration (config file: %s)\n", c->config_path ? c->config_path : "none");
    zk_config_dump(c->cfg, stdout);
    return 0;
}

/* Remove --data-dir/--config/-v from argv wherever they are. */
static int take_globals(int *argc, char **argv, cli_ctx *c, int *verbose)
{
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        char *a = argv[i];
        const char **dst = NULL;
        const char *val = NULL;
        if (!strcmp(a, "--")) {               /* keep the rest untouched */
            while (i < *argc) argv[out++] = argv[i++];
            break;
        }
        if (!strncmp(a, "--data-dir", 10)) dst = &c->data_dir, val = a + 10;
        else if (!strncmp(a, "--config", 8) && strcmp(a, "--config") != 0 && a[8] != '=') dst = NULL;
        else if (!strncmp(a, "--config", 8)) dst = &c->config_path, val = a + 8;
        if (dst && (*val == '=' || *val == '\0')) {
            if (*val == '=') *dst = val + 1;
            else if (i + 1 < *argc) *dst = argv[++i];
            else { fprintf(stderr, "zhiku: %s needs a value\n", a); return -1; }
            continue;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) { (*verbose)++; continue; }
        argv[out++] = a;
    }
    *argc = out;
    return 0;
}

int main(int argc, char **argv)
{
    cli_ctx c;
    int verbose = 0, code;
    memset(&c, 0, sizeof c);
    xmlInitParser();   /* once, before any thread: libxml2's globals are not lazily thread-safe */
    if (take_globals(&argc, argv, &c, &verbose) < 0) return 2;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("zhiku %s\n", ZHIKU_VERSION);
        return 0;
    }
    int required = c.config_path != NULL;
    if (!c.config_path && getenv("ZHIKU_CONFIG")) c.config_path = getenv("ZHIKU_CONFIG"), required = 1;
    if (!c.config_path) c.config_path = "config/zhiku.conf";
    zk_rc rc = zk_config_load(c.config_path, required, &c.cfg, c.err);
    if (rc != ZK_OK) {
        fprintf(stderr, "zhiku: %s\n", c.err);
        return zk_exit_code(rc);
    }
    const char *lvl = zk_config_get(c.cfg, "log", "level");
    zk_log_set_level(!strcmp(lvl, "debug") ? ZK_LOG_DEBUG : !strcmp(lvl, "info") ? ZK_LOG_INFO
                     : !strcmp(lvl, "error") ? ZK_LOG_ERROR : ZK_LOG_WARN);
    if (verbose) zk_log_set_level(verbose > 1 ? ZK_LOG_DEBUG : ZK_LOG_INFO);
    if (!c.data_dir) c.data_dir = getenv("ZHIKU_DATA_DIR");
    if (!c.data_dir) c.data_dir = zk_config_get(c.cfg, "store", "data_dir");

    /* only long-lived or writing verbs build ANN indexes in the background;
     * ingest builds once, at the end (ret_store_sync): a build started
     * while the pipeline runs competes for its two cores and is redone as
     * the index keeps growing (100 MB: 30 s -> 34 s) */
    ret_vindex_auto_builds(!strcmp(argv[1], "serve") || !strcmp(argv[1], "reindex"));
    int layout = ret_store_parse_layout(zk_config_get(c.cfg, "store", "vector_layout"));
    if (layout < 0) {
        fprintf(stderr, "zhiku: [store] vector_layout must be auto, faiss or columns\n");
        zk_config_free(c.cfg);
        return 2;
    }
    ret_store_vector_layout(layout);
    code = -1;
    for (size_t i = 0; i < ZK_ARRAY_LEN(verbs); i++) {
        if (!strcmp(argv[1], verbs[i].name)) {   /* verbs reorder argv: stop here */
            code = verbs[i].fn(&c, argc - 1, argv + 1);
            break;
        }
    }
    if (code < 0) {
        fprintf(stderr, "zhiku: unknown verb '%s'\n\n", argv[1]);
        usage(stderr);
        code = 2;
    }
    ret_store_close(c.store);
    llm_embedder_free(c.emb);
    zk_config_free(c.cfg);
    return code;
}
