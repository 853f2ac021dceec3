/* schema.h — the SQL migrations compiled into the binary (schema/NNN_*.sql,
 * embedded by tools/embed_sql.sh). retrieval/store.c applies them in order at
 * open and records each in schema_version. */
#ifndef ZK_SCHEMA_H
#define ZK_SCHEMA_H

typedef struct {
    const char *name;  /* file name without .sql, e.g. "001_init" */
    const char *sql;
} zk_migration;

extern const zk_migration zk_migrations[];
extern const int zk_migration_count;

#endif
