/* cmd_serve.c — `zhiku serve [--listen HOST:PORT]`: runs the HTTP API and
 * the web portal (server/) until SIGTERM or SIGINT. */
#include <stdio.h>

#include "cli/cli.h"
#include "server/server.h"

int cmd_serve(cli_ctx *c, int argc, char **argv)
{
    const char *listen = NULL;
    int help = 0, npos = 0;
    cli_opt opts[] = {OPT_VAL("listen", &listen)};
    if (cli_parse("serve", argc, argv, opts, ZK_ARRAY_LEN(opts), &npos, &help) < 0) return 2;
    if (help) {
        puts("usage: zhiku serve [--listen HOST:PORT] [--config FILE] [--data-dir DIR]\n\n"
             "Serve the JSON API under /api/v1 (docs/API.md), the web portal at /, and\n"
             "/healthz, /readyz, /metrics. Default address: [server] listen\n"
             "(127.0.0.1:8080). /readyz answers 200 once the vector indexes are loaded\n"
             "and the change log replayed. SIGTERM or SIGINT: stop accepting, finish\n"
             "in-flight requests, save the vector snapshots, exit 0.");
        return 0;
    }
    if (npos) return cli_usage_error("serve", "unexpected argument '%s'", argv[0]);
    srv_opts o = {listen, c->data_dir, c->cfg};
    zk_rc rc = srv_run(&o, c->err);
    if (rc != ZK_OK) return cli_fail(c, rc);
    return 0;
}
