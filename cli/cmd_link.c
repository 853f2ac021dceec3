/* cmd_link.c — `zhiku user link NAME PLATFORM PLATFORM_USER_ID` and
 * `zhiku user unlink PLATFORM PLATFORM_USER_ID`: the administrator maps a
 * chat-platform identity (WeCom UserID, DingTalk senderStaffId, Feishu
 * open_id, Slack user id, a generic-webhook id) to a zhiku user, whose
 * permissions then apply to the chat bot's answers. Dispatched from
 * cmd_user() (cli/cmd_users.c); one row of user_links per call. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "retrieval/principal.h"

static const char link_help[] =
    "usage: zhiku user link NAME PLATFORM PLATFORM_USER_ID\n"
    "       zhiku user unlink PLATFORM PLATFORM_USER_ID\n\n"
    "Map a chat-platform identity to the zhiku user NAME: the chat bot then answers\n"
    "that sender with NAME's permissions. PLATFORM is wecom, dingtalk, feishu, slack\n"
    "or generic; PLATFORM_USER_ID is the WeCom UserID, DingTalk senderStaffId, Feishu\n"
    "open_id, Slack user id (U...) or the generic webhook's \"user\" value.\n"
    "Linking an identity again moves it to the new user.\n"
    "Exit status: 0 ok, 1 error, 2 usage, 3 not found.";

static const char *const platforms[] = {"wecom", "dingtalk", "feishu", "slack", "generic"};

static int platform_known(const char *p)
{
    for (size_t i = 0; i < ZK_ARRAY_LEN(platforms); i++)
        if (!strcmp(platforms[i], p)) return 1;
    return 0;
}

static zk_rc link_user(cli_ctx *c, const char *name, const char *platform, const char *pid)
{
    int64_t uid;
    sqlite3_stmt *st = NULL;
    sqlite3 *db = ret_store_db(c->store);
    zk_rc rc = ret_principal_find(c->store, RET_PRINCIPAL_USER, name, &uid, c->err);
    if (rc == ZK_NOTFOUND) return zk_fail(c->err, ZK_NOTFOUND, "no user '%s' (add it with `zhiku user add`)", name);
    if (rc != ZK_OK) return rc;
    if (sqlite3_prepare_v2(db, "INSERT INTO user_links (platform, platform_user_id, user_id) VALUES (?, ?, ?) "
                               "ON CONFLICT (platform, platform_user_id) DO UPDATE SET user_id = excluded.user_id, "
                               "created_at = unixepoch()", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, platform, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, pid, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 3, uid) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
        rc = zk_fail(c->err, ZK_DB, "linking: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc;
}

static zk_rc unlink_user(cli_ctx *c, const char *platform, const char *pid)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *db = ret_store_db(c->store);
    zk_rc rc = ZK_OK;
    if (sqlite3_prepare_v2(db, "DELETE FROM user_links WHERE platform = ? AND platform_user_id = ?", -1, &st, NULL) !=
            SQLITE_OK ||
        sqlite3_bind_text(st, 1, platform, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, pid, -1, SQLITE_STATIC) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
        rc = zk_fail(c->err, ZK_DB, "unlinking: %s", sqlite3_errmsg(db));
    else if (sqlite3_changes(db) == 0)
        rc = zk_fail(c->err, ZK_NOTFOUND, "no %s identity '%s' is linked", platform, pid);
    sqlite3_finalize(st);
    return rc;
}

/* argv[0] is "link" or "unlink". */
int cmd_user_link(cli_ctx *c, int argc, char **argv)
{
    int help = 0, npos = 0;
    int link = !strcmp(argv[0], "link");
    if (cli_parse("user", argc, argv, NULL, 0, &npos, &help) < 0) return 2;
    if (help) {
        printf("%s\n", link_help);
        return 0;
    }
    /* positionals were compacted into argv[0..npos) */
    if (npos != (link ? 3 : 2)) {
        fprintf(stderr, "%s\n", link_help);
        return 2;
    }
    const char *platform = link ? argv[1] : argv[0], *pid = link ? argv[2] : argv[1];
    if (!platform_known(platform))
        return cli_usage_error("user", "unknown platform '%s' (wecom, dingtalk, feishu, slack or generic)", platform);
    if (!*pid || strlen(pid) > 255) return cli_usage_error("user", "PLATFORM_USER_ID must be 1-255 bytes");
    zk_rc rc = cli_open(c);
    if (rc != ZK_OK) return cli_fail(c, rc);
    rc = link ? link_user(c, argv[0], platform, pid) : unlink_user(c, platform, pid);
    if (rc != ZK_OK) return cli_fail(c, rc);
    if (link) printf("linked %s %s to user %s\n", platform, pid, argv[0]);
    else printf("unlinked %s %s\n", platform, pid);
    return 0;
}
