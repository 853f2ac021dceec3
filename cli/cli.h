/* cli.h — shared context of the `zhiku` subcommands: global options,
 * configuration, the store and the embedder, opened on demand by each verb,
 * plus small output helpers. One process, one thread. */
#ifndef CLI_H
#define CLI_H

#include <stdio.h>
#include <jansson.h>
#include "zk.h"
#include "config.h"
#include "retrieval/store.h"
#include "retrieval/search.h"
#include "llm/embed.h"
#include "llm/answer.h"

typedef struct {
    const char *data_dir;      /* resolved: --data-dir, ZHIKU_DATA_DIR, [store] data_dir */
    const char *config_path;   /* resolved: --config, ZHIKU_CONFIG, config/zhiku.conf */
    zk_config *cfg;
    ret_store *store;          /* opened by cli_open() */
    llm_embedder *emb;
    char err[ZK_ERRLEN];
} cli_ctx;

/* Open the store (and the embedder) for a verb. Prints the error. */
zk_rc cli_open(cli_ctx *c);
/* Print "zhiku: <err>" to stderr and return the exit code for rc. */
int cli_fail(cli_ctx *c, zk_rc rc);
int cli_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The caller for --as USER (NULL = the local administrator). Exit code
 * on failure (error printed), 0 on success. */
int cli_caller(cli_ctx *c, const char *as_user, ret_caller *out);

/* Resolve --kb NAME (NULL = default) to an id. */
zk_rc cli_kb(cli_ctx *c, const char *name, int64_t *out_kb);

void cli_print_json(json_t *j);   /* compact, one line, steals j */

/* Verbs; argv[0] is the verb name. Return the process exit code. */
int cmd_ingest(cli_ctx *c, int argc, char **argv);
int cmd_search(cli_ctx *c, int argc, char **argv);
int cmd_ask(cli_ctx *c, int argc, char **argv);
int cmd_docs(cli_ctx *c, int argc, char **argv);
int cmd_stats(cli_ctx *c, int argc, char **argv);
int cmd_check(cli_ctx *c, int argc, char **argv);
int cmd_optimize(cli_ctx *c, int argc, char **argv);
int cmd_config(cli_ctx *c, int argc, char **argv);
int cmd_serve(cli_ctx *c, int argc, char **argv);    /* cli/cmd_serve.c */
int cmd_user(cli_ctx *c, int argc, char **argv);    /* cli/cmd_users.c */
int cmd_group(cli_ctx *c, int argc, char **argv);
int cmd_kb(cli_ctx *c, int argc, char **argv);
int cmd_token(cli_ctx *c, int argc, char **argv);   /* cli/cmd_tokens.c */
int cmd_audit(cli_ctx *c, int argc, char **argv);
int cmd_acl(cli_ctx *c, int argc, char **argv);     /* cli/cmd_acl.c */
int cmd_reindex(cli_ctx *c, int argc, char **argv); /* cli/cmd_reindex.c */
int cmd_usage(cli_ctx *c, int argc, char **argv);   /* cli/cmd_usage.c */
int cmd_backup(cli_ctx *c, int argc, char **argv);  /* cli/cmd_backup.c */

/* Tiny option parser shared by the verbs: recognises --name VALUE,
 * --name=VALUE and boolean --flag. Non-options are collected in order. */
typedef struct {
    const char *name;
    int takes_value;
    const char **value;   /* for options with a value; an array when count != NULL */
    int *flag;            /* for boolean flags */
    int *count;           /* repeatable option: values go to value[*count], up to max */
    int max;
} cli_opt;

#define OPT_VAL(n, p) {.name = (n), .takes_value = 1, .value = (p)}
#define OPT_FLAG(n, p) {.name = (n), .flag = (p)}
#define OPT_MULTI(n, arr, cnt, mx) {.name = (n), .takes_value = 1, .value = (arr), .count = (cnt), .max = (mx)}

/* Returns 0 on success, -1 on a usage error (already printed); positional
 * arguments are compacted into argv[0..*out_npos). --help sets *help. */
int cli_parse(const char *verb, int argc, char **argv, const cli_opt *opts, size_t nopts,
              int *out_npos, int *help);

#endif
