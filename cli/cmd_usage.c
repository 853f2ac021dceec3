/* cmd_usage.c — `zhiku usage [--json] [--since YYYY-MM-DD]`: the model token
 * usage per day, user, knowledge base and provider, from the `usage` table
 * that every LLM answer adds to (retrieval/usage.c). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "retrieval/usage.h"

int cmd_usage(cli_ctx *c, int argc, char **argv)
{
    const char *since = NULL;
    int json = 0, help = 0, npos = 0;
    cli_opt opts[] = {OPT_VAL("since", &since), OPT_FLAG("json", &json)};
    if (cli_parse("usage", argc, argv, opts, ZK_ARRAY_LEN(opts), &npos, &help) < 0) return 2;
    if (help) {
        puts("usage: zhiku usage [--json] [--since YYYY-MM-DD]\n\n"
             "Model calls and tokens per day (UTC), user, knowledge base and provider.\n"
             "--json prints {\"usage\": [{\"day\", \"user\", \"kb\", \"provider\", \"requests\",\n"
             "\"prompt_tokens\", \"completion_tokens\"}]}.");
        return 0;
    }
    if (npos) return cli_usage_error("usage", "unexpected argument '%s'", argv[0]);
    zk_rc rc = cli_open(c);
    if (rc != ZK_OK) return cli_fail(c, rc);
    ret_usage_row *rows = NULL;
    size_t n = 0;
    if ((rc = ret_usage_export(c->store, since, &rows, &n, c->err)) != ZK_OK) {
        if (rc == ZK_INVALID) return cli_usage_error("usage", "%s", c->err);
        return cli_fail(c, rc);
    }
    if (json) {
        json_t *out = json_object(), *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *o = json_object();
            json_object_set_new(o, "day", json_string(rows[i].day));
            json_object_set_new(o, "user", json_string(rows[i].user));
            json_object_set_new(o, "kb", json_string(rows[i].kb_name));
            json_object_set_new(o, "provider", json_string(rows[i].provider));
            json_object_set_new(o, "requests", json_integer(rows[i].requests));
            json_object_set_new(o, "prompt_tokens", json_integer(rows[i].prompt_tokens));
            json_object_set_new(o, "completion_tokens", json_integer(rows[i].completion_tokens));
            json_array_append_new(arr, o);
        }
        json_object_set_new(out, "usage", arr);
        cli_print_json(out);
    } else if (n == 0) {
        printf("no model usage recorded\n");
    } else {
        printf("%-10s  %-20s  %-12s  %-12s  %8s  %10s  %10s\n", "day", "user", "kb", "provider", "requests",
               "prompt", "completion");
        for (size_t i = 0; i < n; i++)
            printf("%-10s  %-20s  %-12s  %-12s  %8ld  %10ld  %10ld\n", rows[i].day, rows[i].user, rows[i].kb_name,
                   rows[i].provider, rows[i].requests, rows[i].prompt_tokens, rows[i].completion_tokens);
    }
    ret_usage_free(rows, n);
    return 0;
}
