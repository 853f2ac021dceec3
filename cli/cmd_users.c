/* cmd_users.c — `zhiku user`, `zhiku group` and `zhiku kb`: the local
 * administrator's commands for users, groups (with nested memberships) and
 * knowledge bases. Each subcommand parses, calls one retrieval/principal.h
 * operation and prints; listings are small (hundreds of rows) and read
 * straight from SQLite. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "retrieval/principal.h"

#define PASSWORD_LINE_MAX 1024

static const char *col(sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    return v ? v : "";
}

static int db_error(cli_ctx *c)
{
    fprintf(stderr, "zhiku: %s\n", sqlite3_errmsg(ret_store_db(c->store)));
    return 1;
}

/* "alice" → "user:alice"; "user:X", "group:X" and "everyone" pass through.
 * buf holds the result when a prefix is added. */
static const char *member_spec(const char *arg, char *buf, size_t cap)
{
    if (!strncmp(arg, "user:", 5) || !strncmp(arg, "group:", 6) || !strcmp(arg, "everyone")) return arg;
    snprintf(buf, cap, "user:%s", arg);
    return buf;
}

/* One line from stdin without its line end; -1 on EOF before any byte or
 * an over-long line. */
static int read_password(char *buf, size_t cap)
{
    if (!fgets(buf, (int)cap, stdin)) return -1;
    size_t n = strlen(buf);
    if (n == cap - 1 && buf[n - 1] != '\n' && !feof(stdin)) return -1;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
    return 0;
}

/* ---- zhiku user ------------------------------------------------------------------ */

static const char user_help[] =
    "usage: zhiku user add NAME [--password-stdin] [--admin]\n"
    "       zhiku user passwd NAME --password-stdin\n"
    "       zhiku user list [--json]\n"
    "       zhiku user rm NAME\n"
    "       zhiku user link NAME PLATFORM PLATFORM_USER_ID | unlink PLATFORM PLATFORM_USER_ID\n\n"
    "Manage the users who may sign in to the server. --password-stdin reads the\n"
    "password as one line from standard input (without it the user can only use\n"
    "API tokens, see `zhiku token`). --admin users see every document.\n"
    "rm also removes the user's memberships, grants and tokens.\n"
    "Names: 1-64 letters (any script), digits and . _ - @.\n"
    "Exit status: 0 ok, 1 error (e.g. already exists), 2 usage, 3 not found.";

static int user_list(cli_ctx *c, int json)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *db = ret_store_db(c->store);
    if (sqlite3_prepare_v2(db,
            "SELECT u.name, u.is_admin, datetime(u.created_at, 'unixepoch'), u.password_hash IS NOT NULL,"
            " (SELECT json_group_array(name) FROM (SELECT g.name FROM memberships m"
            "   JOIN principals g ON g.id = m.group_id WHERE m.member_id = u.id ORDER BY g.name))"
            " FROM principals u WHERE u.kind = 'user' ORDER BY u.name", -1, &st, NULL) != SQLITE_OK)
        return db_error(c);
    json_t *arr = json_array();
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *groups = json_loads(col(st, 4), 0, NULL);
        if (!groups) groups = json_array();
        if (json) {
            json_t *o = json_object();
            json_object_set_new(o, "name", json_string(col(st, 0)));
            json_object_set_new(o, "admin", json_boolean(sqlite3_column_int(st, 1)));
            json_object_set_new(o, "password", json_boolean(sqlite3_column_int(st, 3)));
            json_object_set_new(o, "groups", groups);
            json_object_set_new(o, "created", json_string(col(st, 2)));
            json_array_append_new(arr, o);
            continue;
        }
        printf("%-24s %-5s %s  groups: ", col(st, 0), sqlite3_column_int(st, 1) ? "admin" : "-", col(st, 2));
        size_t i;
        json_t *g;
        json_array_foreach(groups, i, g) printf("%s, ", json_string_value(g));
        printf("everyone\n");
        json_decref(groups);
    }
    sqlite3_finalize(st);
    if (r != SQLITE_DONE) {
        json_decref(arr);
        return db_error(c);
    }
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "users", arr);
        cli_print_json(o);
    } else {
        json_decref(arr);
    }
    return 0;
}

/* `zhiku user link|unlink`: chat-platform identities (cli/cmd_link.c). */
int cmd_user_link(cli_ctx *c, int argc, char **argv);

int cmd_user(cli_ctx *c, int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "link") || !strcmp(argv[1], "unlink")))
        return cmd_user_link(c, argc - 1, argv + 1);
    int json = 0, admin = 0, pw_stdin = 0, help = 0, npos = 0;
    cli_opt opts[] = {OPT_FLAG("json", &json), OPT_FLAG("admin", &admin), OPT_FLAG("password-stdin", &pw_stdin)};
    if (cli_parse("user", argc, argv, opts, ZK_ARRAY_LEN(opts), &npos, &help) < 0) return 2;
    if (help || npos == 0) {
        fprintf(help ? stdout : stderr, "%s\n", user_help);
        return help ? 0 : 2;
    }
    const char *sub = argv[0];
    char pw[PASSWORD_LINE_MAX + 2];
    zk_rc rc;
    pw[0] = '\0';
    if (!strcmp(sub, "add") || !strcmp(sub, "passwd")) {
        if (npos != 2) return cli_usage_error("user", "%s takes one NAME", sub);
        if (!strcmp(sub, "passwd") && !pw_stdin) return cli_usage_error("user", "passwd needs --password-stdin");
        if (pw_stdin) {
            if (read_password(pw, sizeof pw) < 0) return cli_usage_error("user", "no password on standard input "
                                                                        "(or longer than %d bytes)",
                                                                        PASSWORD_LINE_MAX);
            if (!pw[0]) return cli_usage_error("user", "the password must not be empty");
        }
    } else if (!strcmp(sub, "rm")) {
        if (npos != 2) return cli_usage_error("user", "rm takes one NAME");
    } else if (!strcmp(sub, "list")) {
        if (npos != 1) return cli_usage_error("user", "list takes no arguments");
    } else {
        return cli_usage_error("user", "unknown subcommand '%s'", sub);
    }
    if ((rc = cli_open(c)) != ZK_OK) goto fail;
    if (!strcmp(sub, "list")) return user_list(c, json);
    if (!strcmp(sub, "add")) {
        rc = ret_user_add(c->store, argv[1], pw_stdin ? pw : NULL, admin, NULL, c->err);
        if (rc == ZK_OK) printf("added user %s%s\n", argv[1], admin ? " (admin)" : "");
    } else if (!strcmp(sub, "passwd")) {
        rc = ret_user_set_password(c->store, argv[1], pw, c->err);
        if (rc == ZK_OK) printf("password of %s changed\n", argv[1]);
    } else {
        rc = ret_user_rm(c->store, argv[1], c->err);
        if (rc == ZK_OK) printf("removed user %s\n", argv[1]);
    }
fail:
    memset(pw, 0, sizeof pw);
    return rc == ZK_OK ? 0 : cli_fail(c, rc);
}

/* ---- zhiku group ------------------------------------------------------------------ */

static const char group_help[] =
    "usage: zhiku group add NAME\n"
    "       zhiku group rm NAME\n"
    "       zhiku group list [--json]\n"
    "       zhiku group members NAME [list] [--json]\n"
    "       zhiku group members NAME add MEMBER...\n"
    "       zhiku group members NAME rm MEMBER...\n\n"
    "Groups collect users; documents are granted to users and groups (`zhiku acl`).\n"
    "MEMBER is a user (\"alice\" or \"user:alice\") or a nested group (\"group:eng\");\n"
    "members of a nested group are members of every group containing it.\n"
    "The built-in group `everyone` contains every user implicitly: it cannot be\n"
    "removed and takes no members.\n"
    "Exit status: 0 ok, 1 error (e.g. already exists), 2 usage, 3 not found.";

static int group_list(cli_ctx *c, int json)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *db = ret_store_db(c->store);
    if (sqlite3_prepare_v2(db,
            "SELECT g.name, datetime(g.created_at, 'unixepoch'),"
            " CASE WHEN g.name = 'everyone' THEN (SELECT count(*) FROM principals WHERE kind = 'user')"
            "  ELSE (SELECT count(*) FROM memberships m WHERE m.group_id = g.id) END"
            " FROM principals g WHERE g.kind = 'group' ORDER BY g.name = 'everyone' DESC, g.name", -1, &st,
            NULL) != SQLITE_OK)
        return db_error(c);
    json_t *arr = json ? json_array() : NULL;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        int builtin = !strcmp(col(st, 0), "everyone");
        if (json) {
            json_t *o = json_object();
            json_object_set_new(o, "name", json_string(col(st, 0)));
            json_object_set_new(o, "members", json_integer(sqlite3_column_int64(st, 2)));
            json_object_set_new(o, "builtin", json_boolean(builtin));
            json_object_set_new(o, "created", json_string(col(st, 1)));
            json_array_append_new(arr, o);
        } else {
            printf("%-24s %5lld members  %s%s\n", col(st, 0), (long long)sqlite3_column_int64(st, 2), col(st, 1),
                   builtin ? "  (built in: every user)" : "");
        }
    }
    sqlite3_finalize(st);
    if (r != SQLITE_DONE) {
        json_decref(arr);
        return db_error(c);
    }
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "groups", arr);
        cli_print_json(o);
    }
    return 0;
}

static int members_list(cli_ctx *c, const char *group, int json)
{
    int64_t gid;
    zk_rc rc = ret_principal_find(c->store, RET_PRINCIPAL_GROUP, group, &gid, c->err);
    if (rc != ZK_OK) return cli_fail(c, rc);
    sqlite3_stmt *st = NULL;
    sqlite3 *db = ret_store_db(c->store);
    const char *sql = !strcmp(group, "everyone")
        ? "SELECT kind || ':' || name FROM principals WHERE kind = 'user' AND ?1 > 0 ORDER BY name"
        : "SELECT p.kind || ':' || p.name FROM memberships m JOIN principals p ON p.id = m.member_id"
          " WHERE m.group_id = ?1 ORDER BY p.kind DESC, p.name";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return db_error(c);
    sqlite3_bind_int64(st, 1, gid);
    json_t *arr = json_array();
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (json) json_array_append_new(arr, json_string(col(st, 0)));
        else printf("%s\n", col(st, 0));
    }
    sqlite3_finalize(st);
    if (r != SQLITE_DONE) {
        json_decref(arr);
        return db_error(c);
    }
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "group", json_string(group));
        json_object_set_new(o, "members", arr);
        cli_print_json(o);
    } else {
        json_decref(arr);
    }
    return 0;
}

/* argv: "members" NAME [list | add MEMBER... | rm MEMBER...] */
static int group_members(cli_ctx *c, int npos, char **argv, int json)
{
    if (npos < 2) return cli_usage_error("group", "members needs a group NAME");
    const char *group = argv[1], *op = npos > 2 ? argv[2] : "list";
    int add = !strcmp(op, "add");
    if (!strcmp(op, "list")) {
        if (npos > 3) return cli_usage_error("group", "members NAME list takes no more arguments");
        return members_list(c, group, json);
    }
    if (!add && strcmp(op, "rm") != 0)
        return cli_usage_error("group", "members NAME: unknown action '%s' (add, rm or list)", op);
    if (npos < 4) return cli_usage_error("group", "members NAME %s needs at least one MEMBER", op);
    int code = 0;
    for (int i = 3; i < npos; i++) {
        char buf[512];
        const char *spec = member_spec(argv[i], buf, sizeof buf);
        zk_rc rc = add ? ret_group_member_add(c->store, group, spec, c->err)
                       : ret_group_member_rm(c->store, group, spec, c->err);
        if (rc != ZK_OK) {
            int e = cli_fail(c, rc);
            if (!code) code = e;
            continue;
        }
        printf("%s %s %s group %s\n", add ? "added" : "removed", spec, add ? "to" : "from", group);
    }
    return code;
}

int cmd_group(cli_ctx *c, int argc, char **argv)
{
    int json = 0, help = 0, npos = 0;
    cli_opt opts[] = {OPT_FLAG("json", &json)};
    if (cli_parse("group", argc, argv, opts, ZK_ARRAY_LEN(opts), &npos, &help) < 0) return 2;
    if (help || npos == 0) {
        fprintf(help ? stdout : stderr, "%s\n", group_help);
        return help ? 0 : 2;
    }
    const char *sub = argv[0];
    zk_rc rc;
    if (!strcmp(sub, "add") || !strcmp(sub, "rm")) {
        if (npos != 2) return cli_usage_error("group", "%s takes one NAME", sub);
    } else if (!strcmp(sub, "list")) {
        if (npos != 1) return cli_usage_error("group", "list takes no arguments");
    } else if (strcmp(sub, "members") != 0) {
        return cli_usage_error("group", "unknown subcommand '%s'", sub);
    }
    if ((rc = cli_open(c)) != ZK_OK) return cli_fail(c, rc);
    if (!strcmp(sub, "list")) return group_list(c, json);
    if (!strcmp(sub, "members")) return group_members(c, npos, argv, json);
    if (!strcmp(sub, "add")) {
        if ((rc = ret_group_add(c->store, argv[1], c->err)) != ZK_OK) return cli_fail(c, rc);
        printf("added group %s\n", argv[1]);
    } else {
        if ((rc = ret_group_rm(c->store, argv[1], c->err)) != ZK_OK) return cli_fail(c, rc);
        printf("removed group %s\n", argv[1]);
    }
    return 0;
}

/* ---- zhiku kb ------------------------------------------------------------------------ */

static const char kb_help[] =
    "usage: zhiku kb create NAME\n"
    "       zhiku kb list [--json]\n"
    "       zhiku kb rm NAME\n\n"
    "Knowledge bases are separate collections of documents, each with its own\n"
    "embedding model and vector index; commands select one with --kb NAME\n"
    "(default: `default`, which cannot be removed). rm deletes every document of\n"
    "the knowledge base (chunks, text index entries, vectors) and then the base.\n"
    "Exit status: 0 ok, 1 error (e.g. already exists), 2 usage, 3 not found.";

static int kb_list(cli_ctx *c, int json)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *db = ret_store_db(c->store);
    if (sqlite3_prepare_v2(db,
            "SELECT k.name, (SELECT count(*) FROM documents d WHERE d.kb_id = k.id),"
            " (SELECT coalesce(sum(nchunks), 0) FROM documents d WHERE d.kb_id = k.id),"
            " k.embed_model, k.embed_dim, datetime(k.created_at, 'unixepoch')"
            " FROM kb k ORDER BY k.name = 'default' DESC, k.name", -1, &st, NULL) != SQLITE_OK)
        return db_error(c);
    json_t *arr = json ? json_array() : NULL;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        int has_model = sqlite3_column_type(st, 3) != SQLITE_NULL;
        if (json) {
            json_t *o = json_object();
            json_object_set_new(o, "name", json_string(col(st, 0)));
            json_object_set_new(o, "documents", json_integer(sqlite3_column_int64(st, 1)));
            json_object_set_new(o, "chunks", json_integer(sqlite3_column_int64(st, 2)));
            json_object_set_new(o, "embedding_model", has_model ? json_string(col(st, 3)) : json_null());
            json_object_set_new(o, "embedding_dim", json_integer(sqlite3_column_int64(st, 4)));
            json_object_set_new(o, "created", json_string(col(st, 5)));
            json_array_append_new(arr, o);
        } else {
            printf("%-24s %6lld documents %8lld chunks  %s\n", col(st, 0), (long long)sqlite3_column_int64(st, 1),
                   (long long)sqlite3_column_int64(st, 2), has_model ? col(st, 3) : "(no model yet)");
        }
    }
    sqlite3_finalize(st);
    if (r != SQLITE_DONE) {
        json_decref(arr);
        return db_error(c);
    }
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "kbs", arr);
        cli_print_json(o);
    }
    return 0;
}

int cmd_kb(cli_ctx *c, int argc, char **argv)
{
    int json = 0, help = 0, npos = 0;
    cli_opt opts[] = {OPT_FLAG("json", &json)};
    if (cli_parse("kb", argc, argv, opts, ZK_ARRAY_LEN(opts), &npos, &help) < 0) return 2;
    if (help || npos == 0) {
        fprintf(help ? stdout : stderr, "%s\n", kb_help);
        return help ? 0 : 2;
    }
    const char *sub = argv[0];
    zk_rc rc;
    if (!strcmp(sub, "create") || !strcmp(sub, "rm")) {
        if (npos != 2) return cli_usage_error("kb", "%s takes one NAME", sub);
    } else if (!strcmp(sub, "list")) {
        if (npos != 1) return cli_usage_error("kb", "list takes no arguments");
    } else {
        return cli_usage_error("kb", "unknown subcommand '%s'", sub);
    }
    if ((rc = cli_open(c)) != ZK_OK) return cli_fail(c, rc);
    if (!strcmp(sub, "list")) return kb_list(c, json);
    if (!strcmp(sub, "create")) {
        if ((rc = ret_kb_create(c->store, argv[1], NULL, c->err)) != ZK_OK) return cli_fail(c, rc);
        printf("created knowledge base %s\n", argv[1]);
    } else {
        if ((rc = ret_kb_rm(c->store, argv[1], c->err)) != ZK_OK) return cli_fail(c, rc);
        printf("removed knowledge base %s\n", argv[1]);
    }
    return 0;
}
