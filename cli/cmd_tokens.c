/* cmd_tokens.c — `zhiku token create|list|revoke` and `zhiku audit`: the
 * administrator's side of API credentials and of the audit log. Thin wrappers
 * over server/auth.c and retrieval/audit.c; a created token is printed alone
 * on stdout (so `TOKEN=$(zhiku token create ...)` works) and then wiped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "cli/cli.h"
#include "retrieval/audit.h"
#include "server/auth.h"

/* Strictly a positive decimal integer <= max; -1 otherwise. */
static long long parse_positive(const char *s, long long max)
{
    long long v = 0;
    if (!s || !*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        v = v * 10 + (*s - '0');
        if (v > max) return -1;
    }
    return v > 0 ? v : -1;
}

static int token_create(cli_ctx *c, const char *user, const char *scopes_arg, const char *expires)
{
    unsigned scopes;
    int days = 0;
    char *token = NULL;
    int64_t id;
    zk_rc rc;
    if (!user) return cli_usage_error("token", "create needs --user NAME");
    if (!scopes_arg) return cli_usage_error("token", "create needs --scopes LIST (search, ask, ingest, admin)");
    if (srv_scopes_parse(scopes_arg, &scopes, c->err) != ZK_OK) return cli_usage_error("token", "%s", c->err);
    if (expires && (days = (int)parse_positive(expires, 36500)) < 0)
        return cli_usage_error("token", "--expires takes a number of days between 1 and 36500");
    if ((rc = cli_open(c)) != ZK_OK) return cli_fail(c, rc);
    if ((rc = srv_token_create(c->store, user, scopes, days, &token, &id, c->err)) != ZK_OK) return cli_fail(c, rc);
    puts(token);
    fflush(stdout);
    char scopes_str[64];
    srv_scopes_format(scopes, scopes_str, sizeof scopes_str);
    char life[48] = "never expires";
    if (days) snprintf(life, sizeof life, "expires in %d days", days);
    fprintf(stderr, "zhiku: token %lld for user '%s' (scopes %s, %s): store it now, it is not shown again\n",
            (long long)id, user, scopes_str, life);
    OPENSSL_cleanse(token, strlen(token));
    zk_free(token);
    return 0;
}

int cmd_token(cli_ctx *c, int argc, char **argv)
{
    const char *user = NULL, *scopes = NULL, *expires = NULL;
    int json = 0, help = 0, npos = 0;
    cli_opt opts[] = {{.name = "user", .takes_value = 1, .value = &user},
                      {.name = "scopes", .takes_value = 1, .value = &scopes},
                      {.name = "expires", .takes_value = 1, .value = &expires},
                      {.name = "json", .flag = &json}};
    if (cli_parse("token", argc, argv, opts, ZK_ARRAY_LEN(opts), &npos, &help) < 0) return 2;
    if (help || npos == 0) {
        puts("usage: zhiku token create --user NAME --scopes LIST [--expires DAYS]\n"
             "       zhiku token list [--json]\n"
             "       zhiku token revoke ID\n\n"
             "API tokens for the HTTP server. LIST is comma-separated: search, ask,\n"
             "ingest, admin (admin implies the others). create prints the token alone on\n"
             "stdout; only its SHA-256 is stored, so it cannot be shown again. list shows\n"
             "id, user, prefix, scopes, status and dates, never the token. A revoked or\n"
             "expired token is refused on its next use.\n\n"
             "exit codes: 0 ok, 1 error, 2 usage (bad scope, bad --expires), 3 unknown\n"
             "user or token id");
        return help ? 0 : 2;
    }
    const char *sub = argv[0];
    zk_rc rc;
    if (!strcmp(sub, "create")) {
        if (npos != 1) return cli_usage_error("token", "create takes no positional arguments");
        if (json) return cli_usage_error("token", "--json applies to list only");
        return token_create(c, user, scopes, expires);
    }
    if (user || scopes || expires) return cli_usage_error("token", "--user, --scopes and --expires apply to create only");
    if (!strcmp(sub, "list")) {
        if (npos != 1) return cli_usage_error("token", "list takes no positional arguments");
        if ((rc = cli_open(c)) != ZK_OK || (rc = srv_token_list(c->store, stdout, json, c->err)) != ZK_OK)
            return cli_fail(c, rc);
        return 0;
    }
    if (!strcmp(sub, "revoke")) {
        long long id;
        if (npos != 2) return cli_usage_error("token", "revoke takes one token ID (see `zhiku token list`)");
        if (json) return cli_usage_error("token", "--json applies to list only");
        if ((id = parse_positive(argv[1], INT64_MAX / 10)) < 0)
            return cli_usage_error("token", "'%s' is not a token id", argv[1]);
        if ((rc = cli_open(c)) != ZK_OK || (rc = srv_token_revoke(c->store, id, c->err)) != ZK_OK)
            return cli_fail(c, rc);
        fprintf(stderr, "zhiku: token %lld revoked\n", id);
        return 0;
    }
    return cli_usage_error("token", "unknown subcommand '%s' (create, list, revoke)", sub);
}

/* --since: unix seconds, or YYYY-MM-DD (midnight UTC). -1 when malformed. */
static int64_t parse_since(const char *s)
{
    int y, m, d, n = 0;
    if (s[0] >= '0' && s[0] <= '9' && strlen(s) == strspn(s, "0123456789")) {
        if (strlen(s) > 12) return -1;
        return strtoll(s, NULL, 10);
    }
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 || s[n] != '\0' || y < 1970 || m < 1 ||
        m > 12 || d < 1 || d > 31)
        return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != d) return -1;   /* timegm normalises 02-31 to 03-03 */
    return (int64_t)t;
}

int cmd_audit(cli_ctx *c, int argc, char **argv)
{
    const char *since_arg = NULL, *limit_arg = NULL;
    int json = 0, help = 0, npos = 0;
    int64_t since = 0;
    long long limit = 0;
    cli_opt opts[] = {{.name = "json", .flag = &json},
                      {.name = "since", .takes_value = 1, .value = &since_arg},
                      {.name = "limit", .takes_value = 1, .value = &limit_arg}};
    if (cli_parse("audit", argc, argv, opts, ZK_ARRAY_LEN(opts), &npos, &help) < 0) return 2;
    if (help) {
        puts("usage: zhiku audit [--json] [--since DATE] [--limit N]\n\n"
             "List the audit log: who searched or asked what, when, and which documents\n"
             "and chunks were returned, oldest first. --json exports JSON lines\n"
             "{\"id\",\"at\",\"principal\",\"action\",\"kb\",\"query\",\"results\"} (at: unix\n"
             "seconds). DATE is unix seconds or YYYY-MM-DD (UTC); --limit keeps the newest\n"
             "N rows. Rows older than [audit] retention_days are pruned on write.");
        return 0;
    }
    if (npos != 0) return cli_usage_error("audit", "unexpected argument '%s'", argv[0]);
    if (since_arg && (since = parse_since(since_arg)) < 0)
        return cli_usage_error("audit", "--since takes unix seconds or YYYY-MM-DD, not '%s'", since_arg);
    if (limit_arg && (limit = parse_positive(limit_arg, 1000000000)) < 0)
        return cli_usage_error("audit", "--limit takes a positive number");
    zk_rc rc;
    if ((rc = cli_open(c)) != ZK_OK || (rc = ret_audit_export(c->store, stdout, json, since, (int)limit, c->err)) != ZK_OK)
        return cli_fail(c, rc);
    return 0;
}
