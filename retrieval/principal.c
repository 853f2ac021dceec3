/* principal.c — users, groups, memberships and knowledge bases (see
 * principal.h), and the transitive resolution of a user to its principal
 * set with one recursive CTE. Called by the CLI (`zhiku user|group|kb`), by
 * retrieval/acl.c when it builds a caller, and by the server at login.
 * Mutations are rare (administration); ret_principal_set runs once per
 * request and touches only the memberships index. */
#include "retrieval/principal.h"

#include <string.h>

#include "server/auth.h"
#include "utf8.h"
#include "retrieval/stmt.h"

#define NAME_MAX_CHARS 64
#define PASSWORD_MAX   1024

/* ---- helpers --------------------------------------------------------------- */

static zk_rc db_fail(sqlite3 *db, char *err, const char *what)
{
    return zk_fail(err, ZK_DB, "%s: %s", what, sqlite3_errmsg(db));
}

static zk_rc tx_begin(sqlite3 *db, int *out_own, char *err)
{
    return ret__tx_begin(db, "principal", out_own, err);
}

static zk_rc tx_end(sqlite3 *db, int own, zk_rc rc, char *err)
{
    return ret__tx_end(db, "principal", own, rc, err);
}

/* Run one statement with text/int64 parameters ("t" / "i" in types). */
static zk_rc run(sqlite3 *db, const char *sql, const char *types, const void *const *args, int *out_changes,
                 char *err)
{
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return db_fail(db, err, "prepare");
    for (int i = 0; types && types[i]; i++) {
        if (types[i] == 't') sqlite3_bind_text(st, i + 1, (const char *)args[i], -1, SQLITE_STATIC);
        else sqlite3_bind_int64(st, i + 1, *(const int64_t *)args[i]);
    }
    if (sqlite3_step(st) != SQLITE_DONE) rc = db_fail(db, err, "write");
    else if (out_changes) *out_changes = sqlite3_changes(db);
    sqlite3_finalize(st);
    return rc;
}

/* Is cp acceptable in a name? ASCII letters, digits and ._-@; non-ASCII
 * letters (any script); no controls, spaces, punctuation or symbols. */
static int name_char_ok(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
               cp == '.' || cp == '_' || cp == '-' || cp == '@';
    if (cp == UTF8_REPLACEMENT || utf8_is_space(cp)) return 0;
    if (utf8_is_alnum(cp) || utf8_is_cjk(cp)) return 1;
    if (cp <= 0xBF || cp == 0xD7 || cp == 0xF7) return 0;      /* C1 controls, Latin-1 punctuation */
    if (cp >= 0x2000 && cp <= 0x2BFF) return 0;                /* punctuation, symbols, arrows */
    if (cp >= 0x3000 && cp <= 0x303F) return 0;                /* CJK punctuation (、。「」) */
    if (cp >= 0xD800 && cp <= 0xF8FF) return 0;                /* surrogates, private use */
    if (cp >= 0xFE10 && cp <= 0xFE6F) return 0;                /* vertical/small forms */
    if (cp >= 0xFF00 && cp <= 0xFF0F) return 0;                /* full-width punctuation */
    if ((cp >= 0xFF1A && cp <= 0xFF20) || (cp >= 0xFF3B && cp <= 0xFF40) || (cp >= 0xFF5B && cp <= 0xFF65))
        return 0;
    if (cp >= 0xFFF0) return 0;                                /* specials, noncharacters */
    return 1;
}

static zk_rc check_name(const char *what, const char *name, char *err)
{
    size_t len = name ? strlen(name) : 0, n = 0;
    if (len == 0) return zk_fail(err, ZK_INVALID, "%s name must not be empty", what);
    if (len > NAME_MAX_CHARS * 4 || !utf8_valid(name, len))
        return zk_fail(err, ZK_INVALID, "invalid %s name (at most %d characters, UTF-8)", what, NAME_MAX_CHARS);
    for (size_t i = 0; i < len; n++) {
        uint32_t cp;
        i += utf8_decode((const unsigned char *)name + i, len - i, &cp);
        if (!name_char_ok(cp))
            return zk_fail(err, ZK_INVALID,
                           "invalid %s name '%s': use letters, digits and . _ - @ (no spaces, ':' or ',')", what,
                           name);
    }
    if (n > NAME_MAX_CHARS)
        return zk_fail(err, ZK_INVALID, "%s name '%s' is longer than %d characters", what, name, NAME_MAX_CHARS);
    return ZK_OK;
}

static zk_rc check_password(const char *password, char *err)
{
    if (!password || !password[0]) return zk_fail(err, ZK_INVALID, "password must not be empty");
    if (strlen(password) > PASSWORD_MAX)
        return zk_fail(err, ZK_INVALID, "password longer than %d bytes", PASSWORD_MAX);
    return ZK_OK;
}

static const char *kind_name(ret_principal_kind kind)
{
    return kind == RET_PRINCIPAL_USER ? "user" : "group";
}

static int64_t everyone_id(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int64_t id = 0;
    if (ret__prepare(db, "SELECT id FROM principals WHERE kind = 'group' AND name = 'everyone'", &st) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        id = sqlite3_column_int64(st, 0);
    ret__release(st);
    return id;
}

/* ---- lookup ---------------------------------------------------------------- */

zk_rc ret_principal_find(ret_store *s, ret_principal_kind kind, const char *name, int64_t *out_id, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    if (!name || !name[0]) return zk_fail(err, ZK_INVALID, "empty %s name", kind_name(kind));
    if (ret__prepare(db, "SELECT id FROM principals WHERE kind = ? AND name = ?", &st) != SQLITE_OK)
        return db_fail(db, err, "principal lookup");
    sqlite3_bind_text(st, 1, kind_name(kind), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) *out_id = sqlite3_column_int64(st, 0);
    else if (r == SQLITE_DONE) rc = zk_fail(err, ZK_NOTFOUND, "no %s named '%s'", kind_name(kind), name);
    else rc = db_fail(db, err, "principal lookup");
    ret__release(st);
    return rc;
}

/* Split a spec into kind and name (name points into spec). */
static zk_rc parse_spec(const char *spec, ret_principal_kind *out_kind, const char **out_name, char *err)
{
    if (!spec) return zk_fail(err, ZK_INVALID, "empty principal");
    if (!strcmp(spec, "everyone")) {
        *out_kind = RET_PRINCIPAL_GROUP;
        *out_name = spec;
        return ZK_OK;
    }
    if (!strncmp(spec, "user:", 5)) *out_kind = RET_PRINCIPAL_USER, *out_name = spec + 5;
    else if (!strncmp(spec, "group:", 6)) *out_kind = RET_PRINCIPAL_GROUP, *out_name = spec + 6;
    else
        return zk_fail(err, ZK_INVALID, "invalid principal '%s' (use user:NAME, group:NAME or everyone)", spec);
    return check_name(kind_name(*out_kind), *out_name, err);
}

zk_rc ret_principal_parse(ret_store *s, const char *spec, int64_t *out_id, char *err)
{
    ret_principal_kind kind;
    const char *name;
    zk_rc rc = parse_spec(spec, &kind, &name, err);
    if (rc != ZK_OK) return rc;
    return ret_principal_find(s, kind, name, out_id, err);
}

/* ---- acl_version ------------------------------------------------------------- */

zk_rc ret_acl_bump(ret_store *s, char *err)
{
    return run(ret_store_db(s), "UPDATE acl_version SET seq = seq + 1 WHERE id = 1", NULL, NULL, NULL, err);
}

int64_t ret_acl_version(ret_store *s)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(ret_store_db(s), "SELECT seq FROM acl_version WHERE id = 1", -1, &st, NULL) ==
            SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* ---- users ---------------------------------------------------------------- */

zk_rc ret_user_add(ret_store *s, const char *name, const char *password, int is_admin, int64_t *out_id, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    char *hash = NULL;
    int own = 0;
    int64_t id;
    zk_rc rc;
    if ((rc = check_name("user", name, err)) != ZK_OK) return rc;
    if (password) {
        if ((rc = check_password(password, err)) != ZK_OK) return rc;
        if ((rc = srv_password_hash(password, &hash, err)) != ZK_OK) return rc;   /* slow: outside the lock */
    }
    if ((rc = tx_begin(db, &own, err)) != ZK_OK) goto done;
    if (ret_principal_find(s, RET_PRINCIPAL_USER, name, &id, NULL) == ZK_OK) {
        rc = zk_fail(err, ZK_EXISTS, "user '%s' already exists", name);
        goto out;
    }
    if (sqlite3_prepare_v2(db, "INSERT INTO principals(kind, name, password_hash, is_admin) VALUES ('user', ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, err, "add user");
        goto out;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (hash) sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 2);
    sqlite3_bind_int(st, 3, is_admin ? 1 : 0);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = db_fail(db, err, "add user");
        goto out;
    }
    id = sqlite3_last_insert_rowid(db);
    if ((rc = ret_acl_bump(s, err)) != ZK_OK) goto out;
    if (out_id) *out_id = id;
out:
    sqlite3_finalize(st);
    rc = tx_end(db, own, rc, err);
done:
    zk_free(hash);
    return rc;
}

/* Delete a principal of `kind` by name: ZK_NOTFOUND when absent. Its
 * memberships, grants and tokens go with it (ON DELETE CASCADE). */
static zk_rc principal_rm(ret_store *s, ret_principal_kind kind, const char *name, char *err)
{
    sqlite3 *db = ret_store_db(s);
    int own = 0, changes = 0;
    zk_rc rc;
    if ((rc = tx_begin(db, &own, err)) != ZK_OK) return rc;
    const void *args[] = {kind_name(kind), name};
    if ((rc = run(db, "DELETE FROM principals WHERE kind = ? AND name = ?", "tt", args, &changes, err)) != ZK_OK)
        goto out;
    if (changes == 0) {
        rc = zk_fail(err, ZK_NOTFOUND, "no %s named '%s'", kind_name(kind), name);
        goto out;
    }
    rc = ret_acl_bump(s, err);
out:
    return tx_end(db, own, rc, err);
}

zk_rc ret_user_rm(ret_store *s, const char *name, char *err)
{
    if (!name || !name[0]) return zk_fail(err, ZK_INVALID, "empty user name");
    return principal_rm(s, RET_PRINCIPAL_USER, name, err);
}

zk_rc ret_user_set_password(ret_store *s, const char *name, const char *password, char *err)
{
    sqlite3 *db = ret_store_db(s);
    char *hash = NULL;
    int own = 0, changes = 0;
    zk_rc rc;
    if (!name || !name[0]) return zk_fail(err, ZK_INVALID, "empty user name");
    if ((rc = check_password(password, err)) != ZK_OK) return rc;
    if ((rc = srv_password_hash(password, &hash, err)) != ZK_OK) return rc;
    const void *args[] = {hash, name};
    if ((rc = tx_begin(db, &own, err)) != ZK_OK) goto done;
    rc = run(db, "UPDATE principals SET password_hash = ? WHERE kind = 'user' AND name = ?", "tt", args, &changes,
             err);
    if (rc == ZK_OK && changes == 0) rc = zk_fail(err, ZK_NOTFOUND, "no user named '%s'", name);
    if (rc == ZK_OK) rc = ret_acl_bump(s, err);
    rc = tx_end(db, own, rc, err);
done:
    zk_free(hash);
    return rc;
}

zk_rc ret_user_check_password(ret_store *s, const char *name, const char *password, int64_t *out_id, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    int64_t id = 0;
    int ok = 0;
    if (!name || !password || strlen(password) > PASSWORD_MAX)
        return zk_fail(err, ZK_INVALID, "invalid user name or password");
    if (sqlite3_prepare_v2(db, "SELECT id, password_hash FROM principals WHERE kind = 'user' AND name = ?", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(db, err, "user lookup");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW && sqlite3_column_type(st, 1) != SQLITE_NULL) {
        id = sqlite3_column_int64(st, 0);
        ok = srv_password_verify(password, (const char *)sqlite3_column_text(st, 1));
    } else if (r == SQLITE_ROW || r == SQLITE_DONE) {
        /* unknown user or token-only user: spend the same scrypt work so the
         * answer time does not tell which names exist */
        char *dummy = NULL;
        if (srv_password_hash(password[0] ? password : "-", &dummy, NULL) == ZK_OK) zk_free(dummy);
    } else {
        sqlite3_finalize(st);
        return db_fail(db, err, "user lookup");
    }
    sqlite3_finalize(st);
    if (!ok) return zk_fail(err, ZK_INVALID, "invalid user name or password");
    if (out_id) *out_id = id;
    return ZK_OK;
}

/* ---- groups ----------------------------------------------------------------- */

zk_rc ret_group_add(ret_store *s, const char *name, char *err)
{
    sqlite3 *db = ret_store_db(s);
    int own = 0;
    int64_t id;
    const void *args[] = {name};
    zk_rc rc;
    if ((rc = check_name("group", name, err)) != ZK_OK) return rc;
    if ((rc = tx_begin(db, &own, err)) != ZK_OK) return rc;
    if (ret_principal_find(s, RET_PRINCIPAL_GROUP, name, &id, NULL) == ZK_OK) {
        rc = zk_fail(err, ZK_EXISTS, "group '%s' already exists", name);
        goto out;
    }
    if ((rc = run(db, "INSERT INTO principals(kind, name) VALUES ('group', ?)", "t", args, NULL, err)) != ZK_OK)
        goto out;
    rc = ret_acl_bump(s, err);
out:
    return tx_end(db, own, rc, err);
}

zk_rc ret_group_rm(ret_store *s, const char *name, char *err)
{
    if (!name || !name[0]) return zk_fail(err, ZK_INVALID, "empty group name");
    if (!strcmp(name, "everyone")) return zk_fail(err, ZK_INVALID, "the built-in group 'everyone' cannot be removed");
    return principal_rm(s, RET_PRINCIPAL_GROUP, name, err);
}

/* Resolve the group and the member of a membership change. */
static zk_rc membership_ids(ret_store *s, const char *group, const char *member_spec, int64_t *out_group,
                            int64_t *out_member, char *err)
{
    ret_principal_kind kind;
    const char *mname;
    zk_rc rc;
    if (!group || !group[0]) return zk_fail(err, ZK_INVALID, "empty group name");
    if (!strcmp(group, "everyone"))
        return zk_fail(err, ZK_INVALID, "membership in 'everyone' is implicit: every user belongs to it; "
                                        "grant to 'everyone' directly instead of adding members");
    if ((rc = parse_spec(member_spec, &kind, &mname, err)) != ZK_OK) return rc;
    if (kind == RET_PRINCIPAL_GROUP && !strcmp(mname, "everyone"))
        return zk_fail(err, ZK_INVALID, "'everyone' cannot be a member of a group; grant to 'everyone' directly");
    if (kind == RET_PRINCIPAL_GROUP && !strcmp(mname, group))
        return zk_fail(err, ZK_INVALID, "group '%s' cannot be a member of itself", group);
    if ((rc = ret_principal_find(s, RET_PRINCIPAL_GROUP, group, out_group, err)) != ZK_OK) return rc;
    return ret_principal_find(s, kind, mname, out_member, err);
}

zk_rc ret_group_member_add(ret_store *s, const char *group, const char *member_spec, char *err)
{
    sqlite3 *db = ret_store_db(s);
    int own = 0, changes = 0;
    int64_t gid, mid;
    const void *args[] = {&gid, &mid};
    zk_rc rc;
    if ((rc = tx_begin(db, &own, err)) != ZK_OK) return rc;
    if ((rc = membership_ids(s, group, member_spec, &gid, &mid, err)) != ZK_OK) goto out;
    if ((rc = run(db, "INSERT OR IGNORE INTO memberships(group_id, member_id) VALUES (?, ?)", "ii", args, &changes,
                  err)) != ZK_OK)
        goto out;
    if (changes) rc = ret_acl_bump(s, err);   /* already a member: nothing changed */
out:
    return tx_end(db, own, rc, err);
}

zk_rc ret_group_member_rm(ret_store *s, const char *group, const char *member_spec, char *err)
{
    sqlite3 *db = ret_store_db(s);
    int own = 0, changes = 0;
    int64_t gid, mid;
    const void *args[] = {&gid, &mid};
    zk_rc rc;
    if ((rc = tx_begin(db, &own, err)) != ZK_OK) return rc;
    if ((rc = membership_ids(s, group, member_spec, &gid, &mid, err)) != ZK_OK) goto out;
    if ((rc = run(db, "DELETE FROM memberships WHERE group_id = ? AND member_id = ?", "ii", args, &changes, err)) !=
        ZK_OK)
        goto out;
    if (changes == 0) {
        rc = zk_fail(err, ZK_NOTFOUND, "%s is not a member of group '%s'", member_spec, group);
        goto out;
    }
    rc = ret_acl_bump(s, err);
out:
    return tx_end(db, own, rc, err);
}

/* ---- knowledge bases -------------------------------------------------------- */

zk_rc ret_kb_create(ret_store *s, const char *name, int64_t *out_kb, char *err)
{
    sqlite3 *db = ret_store_db(s);
    int own = 0;
    int64_t id;
    const void *args[] = {name};
    zk_rc rc;
    if ((rc = check_name("knowledge base", name, err)) != ZK_OK) return rc;
    if ((rc = tx_begin(db, &own, err)) != ZK_OK) return rc;
    if (ret_kb_id(s, name, &id, NULL) == ZK_OK) {
        rc = zk_fail(err, ZK_EXISTS, "knowledge base '%s' already exists", name);
        goto out;
    }
    /* Never reuse the id of a removed kb: its change log and vector snapshot
     * (vectors/kb-ID) may still be around and must not be mistaken for ours. */
    if ((rc = run(db, "INSERT INTO kb(id, name) VALUES (max(coalesce((SELECT max(id) FROM kb), 0),"
                      " coalesce((SELECT max(kb_id) FROM changes), 0)) + 1, ?)", "t", args, NULL, err)) != ZK_OK)
        goto out;
    id = sqlite3_last_insert_rowid(db);
    if ((rc = ret_acl_bump(s, err)) != ZK_OK) goto out;
    if (out_kb) *out_kb = id;
out:
    return tx_end(db, own, rc, err);
}

zk_rc ret_kb_rm(ret_store *s, const char *name, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    int64_t kb = 0, *docs = NULL;
    const void *args[] = {&kb};
    size_t n = 0, cap = 0;
    int own = 0, r;
    zk_rc rc;
    if (!name || !name[0]) return zk_fail(err, ZK_INVALID, "empty knowledge base name");
    if (!strcmp(name, "default")) return zk_fail(err, ZK_INVALID, "the knowledge base 'default' cannot be removed");
    if ((rc = tx_begin(db, &own, err)) != ZK_OK) return rc;
    if ((rc = ret_kb_id(s, name, &kb, err)) != ZK_OK) goto out;
    /* collect first: ret_doc_delete writes to the table we would be reading */
    if (sqlite3_prepare_v2(db, "SELECT id FROM documents WHERE kb_id = ?", -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, err, "list documents");
        goto out;
    }
    sqlite3_bind_int64(st, 1, kb);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            int64_t *p = zk_realloc(docs, cap * sizeof *p);
            if (!p) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
            docs = p;
        }
        docs[n++] = sqlite3_column_int64(st, 0);
    }
    if (r != SQLITE_DONE) { rc = db_fail(db, err, "list documents"); goto out; }
    sqlite3_finalize(st);
    st = NULL;
    for (size_t i = 0; i < n; i++)
        if ((rc = ret_doc_delete(s, docs[i], err)) != ZK_OK) goto out;
    if ((rc = run(db, "DELETE FROM kb WHERE id = ?", "i", args, NULL, err)) != ZK_OK) goto out;
    rc = ret_acl_bump(s, err);
out:
    sqlite3_finalize(st);
    zk_free(docs);
    return tx_end(db, own, rc, err);
}

/* ---- resolution ----------------------------------------------------------------- */

zk_rc ret_principal_set(ret_store *s, int64_t user_id, int64_t **out_ids, size_t *out_n, int *out_admin, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    int admin = 0;
    zk_rc rc = ZK_OK;
    *out_ids = NULL;
    *out_n = 0;
    if (out_admin) *out_admin = 0;
    if (ret__prepare(db, "SELECT is_admin FROM principals WHERE id = ? AND kind = 'user'", &st) !=
        SQLITE_OK)
        return db_fail(db, err, "user lookup");
    sqlite3_bind_int64(st, 1, user_id);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) admin = sqlite3_column_int(st, 0) != 0;
    ret__release(st);
    st = NULL;
    if (r == SQLITE_DONE) return zk_fail(err, ZK_NOTFOUND, "no user with id %lld", (long long)user_id);
    if (r != SQLITE_ROW) return db_fail(db, err, "user lookup");

    /* UNION (not UNION ALL) drops rows already seen, so cycles end */
    const char *sql =
        "WITH RECURSIVE up(id) AS ("
        "  SELECT group_id FROM memberships WHERE member_id = ?1"
        "  UNION SELECT m.group_id FROM memberships m JOIN up ON m.member_id = up.id)"
        " SELECT ?1 UNION SELECT id FROM up"
        " UNION SELECT ?2 WHERE ?2 > 0 ORDER BY 1";
    if (ret__prepare(db, sql, &st) != SQLITE_OK) return db_fail(db, err, "principal set");
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, everyone_id(db));
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            int64_t *p = zk_realloc(ids, cap * sizeof *p);
            if (!p) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
            ids = p;
        }
        ids[n++] = sqlite3_column_int64(st, 0);
    }
    if (r != SQLITE_DONE) { rc = db_fail(db, err, "principal set"); goto out; }
    *out_ids = ids;
    *out_n = n;
    ids = NULL;
    if (out_admin) *out_admin = admin;
out:
    ret__release(st);
    zk_free(ids);
    return rc;
}
