/* cmd_reindex.c — `zhiku reindex [--kb NAME]`: re-embeds every chunk of a
 * knowledge base with the configured embedder (after [embedding] changed)
 * through ret_kb_reembed (one transaction: vectors, change log, the kb's
 * recorded model), then replays the vector index and saves its snapshot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static void show_progress(void *ctx, size_t done, size_t total)
{
    (void)ctx;
    fprintf(stderr, "\rreindex: %zu/%zu chunks", done, total);
    if (done == total) fputc('\n', stderr);
}

int cmd_reindex(cli_ctx *c, int argc, char **argv)
{
    const char *kb_name = NULL;
    int help = 0, npos = 0, json = 0, quiet = 0;
    const cli_opt opts[] = {OPT_VAL("kb", &kb_name), OPT_FLAG("json", &json), OPT_FLAG("quiet", &quiet)};
    if (cli_parse("reindex", argc, argv, opts, ZK_ARRAY_LEN(opts), &npos, &help) < 0) return 2;
    if (help) {
        puts("usage: zhiku reindex [--kb NAME] [--json] [--quiet]\n\n"
             "Re-embed every chunk of the knowledge base (default: \"default\") with the\n"
             "embedder configured in [embedding], after the provider, model or dimension\n"
             "changed. All vectors, the recorded model and the change log are replaced in\n"
             "one transaction: if the embedder fails part-way, nothing changes. The vector\n"
             "index is rebuilt afterwards. Progress goes to stderr on a terminal.");
        return 0;
    }
    if (npos > 0) return cli_usage_error("reindex", "unexpected argument '%s'", argv[0]);
    zk_rc rc;
    int64_t kb;
    size_t n = 0;
    if ((rc = cli_open(c)) != ZK_OK) return cli_fail(c, rc);
    if ((rc = cli_kb(c, kb_name, &kb)) != ZK_OK) return cli_fail(c, rc);
    int show = !quiet && isatty(2);
    if ((rc = ret_kb_reembed(c->store, kb, c->emb, show ? show_progress : NULL, NULL, &n, c->err)) != ZK_OK) {
        if (show) fputc('\n', stderr);
        return cli_fail(c, rc);
    }
    if ((rc = ret_store_sync(c->store, 1, c->err)) != ZK_OK) return cli_fail(c, rc);
    if (json) {
        cli_print_json(json_pack("{s:s, s:s, s:i, s:I}", "kb", kb_name ? kb_name : "default", "model",
                                 llm_embedder_model(c->emb), "dim", llm_embedder_dim(c->emb), "chunks",
                                 (json_int_t)n));
    } else {
        printf("reindexed %zu chunks of %s with %s (dimension %d)\n", n, kb_name ? kb_name : "default",
               llm_embedder_model(c->emb), llm_embedder_dim(c->emb));
    }
    return 0;
}
