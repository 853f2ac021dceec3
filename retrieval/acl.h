/* acl.h — who may read what. A ret_caller is the principal set a retrieval
 * operation runs under; every search, answer, document fetch and listing in
 * retrieval takes one, and there is no way to search without it. Documents
 * carry read grants (doc_acl rows) for users and groups; a caller may read a
 * document iff one of its principals is granted, or it is an administrator.
 *
 * SQL enforcement goes through ret__acl_sql(): a predicate on `d.id` with
 * the principal set bound as a JSON array, so the same rule is used by the
 * FTS query, the vector allowed-set query, hit loading and listings.
 * Grants bump acl_version; nothing caches across it. Single-threaded. */
#ifndef RET_ACL_H
#define RET_ACL_H

#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>
#include "zk.h"
#include "retrieval/store.h"

typedef struct {
    int admin;             /* sees everything (local CLI administrator, admin users) */
    int64_t user_id;       /* 0 for the local administrator */
    char name[96];         /* "admin" or "user:NAME", for the audit log */
    char *principals_json; /* JSON array of principal ids: "[3,7,1]"; owned */
    int64_t *principals;   /* sorted ids (user, its groups, everyone); owned */
    size_t nprincipals;
} ret_caller;

/* The local administrator (CLI without --as). */
void ret_caller_admin(ret_caller *out);
/* A user by name (ZK_NOTFOUND if unknown); admin users get admin = 1. */
zk_rc ret_caller_user(ret_store *s, const char *name, ret_caller *out, char *err);
/* A caller from an already-resolved principal set (copied); for the server's
 * proxy-header groups and for tests. */
zk_rc ret_caller_from_set(const char *name, int64_t user_id, const int64_t *ids, size_t n, int admin,
                          ret_caller *out, char *err);
void ret_caller_free(ret_caller *c);

/* The SQL predicate "may the caller read document d.id": AND it into a
 * query that has documents aliased `d`, then bind the caller with
 * ret__acl_bind() (named parameters :acl_admin and :acl_ids). Per row it
 * costs one primary-key probe of doc_acl per principal of the caller, so it
 * scales with the rows examined, not with the corpus (measured: an IN-list
 * over json_each inside the correlated subquery was re-materialised per row
 * and made the leak test 6x slower; a non-correlated IN-list costs
 * O(allowed documents) per statement). */
#define RET_ACL_PREDICATE \
    " (:acl_admin = 1 OR EXISTS (SELECT 1 FROM json_each(:acl_ids) p CROSS JOIN doc_acl a " \
    "WHERE a.doc_id = d.id AND a.principal_id = p.value)) "
void ret__acl_bind(sqlite3_stmt *st, const ret_caller *c);

/* 1 in *out when the caller may read doc_id (0 also when it does not exist). */
zk_rc ret_acl_can_read(ret_store *s, const ret_caller *c, int64_t doc_id, int *out, char *err);

/* Grants. principal ids come from ret_principal_parse(). */
zk_rc ret_acl_grant(ret_store *s, int64_t doc_id, int64_t principal, char *err);
zk_rc ret_acl_revoke(ret_store *s, int64_t doc_id, int64_t principal, char *err);
/* Replace a document's grants with exactly these. */
zk_rc ret_acl_set(ret_store *s, int64_t doc_id, const int64_t *principals, size_t n, char *err);
/* Print "user:NAME" / "group:NAME" / "everyone" lines (or a JSON array). */
zk_rc ret_acl_list(ret_store *s, int64_t doc_id, char ***out_specs, size_t *out_n, char *err);

/* Parse "group:hr,user:alice,everyone" into principal ids (caller frees). */
zk_rc ret_acl_parse_list(ret_store *s, const char *list, int64_t **out_ids, size_t *out_n, char *err);

#endif
