/* principal.h — users, groups, memberships and knowledge bases, and the
 * resolution of a caller to its principal set (the user, every group it is
 * in — transitively — and the built-in group `everyone`).
 *
 * Names: users and groups have their own namespaces; principals are written
 * "user:NAME", "group:NAME" or "everyone" on the CLI. Every change to users,
 * groups or memberships bumps acl_version (see ret_acl_bump). A ret_store is
 * single-threaded, so are these. */
#ifndef RET_PRINCIPAL_H
#define RET_PRINCIPAL_H

#include <stddef.h>
#include <stdint.h>
#include "zk.h"
#include "retrieval/store.h"

typedef enum { RET_PRINCIPAL_USER = 0, RET_PRINCIPAL_GROUP = 1 } ret_principal_kind;

/* Parse "user:NAME" | "group:NAME" | "everyone" and look it up.
 * ZK_INVALID for bad syntax, ZK_NOTFOUND when it does not exist. */
zk_rc ret_principal_parse(ret_store *s, const char *spec, int64_t *out_id, char *err);
zk_rc ret_principal_find(ret_store *s, ret_principal_kind kind, const char *name, int64_t *out_id, char *err);

/* Users. password may be NULL (token-only user). is_admin users see everything. */
zk_rc ret_user_add(ret_store *s, const char *name, const char *password, int is_admin, int64_t *out_id, char *err);
zk_rc ret_user_rm(ret_store *s, const char *name, char *err);
zk_rc ret_user_set_password(ret_store *s, const char *name, const char *password, char *err);
/* ZK_OK and *out_id when the password matches (constant-time compare);
 * ZK_INVALID otherwise (same error for unknown user and wrong password). */
zk_rc ret_user_check_password(ret_store *s, const char *name, const char *password, int64_t *out_id, char *err);

/* Groups and memberships (member_spec: "user:NAME" or "group:NAME"). */
zk_rc ret_group_add(ret_store *s, const char *name, char *err);
zk_rc ret_group_rm(ret_store *s, const char *name, char *err);   /* `everyone` cannot be removed */
zk_rc ret_group_member_add(ret_store *s, const char *group, const char *member_spec, char *err);
zk_rc ret_group_member_rm(ret_store *s, const char *group, const char *member_spec, char *err);

/* Knowledge bases. Removing a kb removes its documents. */
zk_rc ret_kb_create(ret_store *s, const char *name, int64_t *out_kb, char *err);
zk_rc ret_kb_rm(ret_store *s, const char *name, char *err);

/* The principal set of a user: its own id, all groups containing it
 * (transitively, cycles tolerated) and `everyone`; sorted ascending.
 * *out_admin is set for admin users. Caller frees *out_ids. */
zk_rc ret_principal_set(ret_store *s, int64_t user_id, int64_t **out_ids, size_t *out_n, int *out_admin, char *err);

/* acl_version: increment on every ACL-relevant change; read to validate caches. */
zk_rc ret_acl_bump(ret_store *s, char *err);
int64_t ret_acl_version(ret_store *s);

#endif
