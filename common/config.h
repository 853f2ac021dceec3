/* config.h — zhiku.conf loader (INI: [section], key = value, ; or # comments).
 *
 * Lookup order for every key: the environment variable ZHIKU_SECTION_KEY
 * (section dots become underscores, all upper case: [llm.local] api_key →
 * ZHIKU_LLM_LOCAL_API_KEY), then the file, then the documented default from
 * the table in config.c. Values may reference the environment as ${NAME}
 * (for secrets, which are never logged). Keys not in the table are reported
 * once at load as warnings (with file and line). Read-only after load, so
 * safe to share between threads. */
#ifndef ZK_CONFIG_H
#define ZK_CONFIG_H

#include <stdio.h>
#include "zk.h"

typedef struct zk_config zk_config;

/* Load path (NULL or missing-and-optional → defaults only). A path given
 * explicitly that cannot be read is an error. `required` = 1 for an
 * explicit --config. Warnings (unknown keys) go to the log. */
zk_rc zk_config_load(const char *path, int required, zk_config **out, char *err);
void zk_config_free(zk_config *cfg);

/* Raw string value after env override and ${ENV} expansion; def when unset.
 * The returned pointer lives as long as cfg. */
const char *zk_config_get(const zk_config *cfg, const char *section, const char *key);
long zk_config_int(const zk_config *cfg, const char *section, const char *key);
double zk_config_double(const zk_config *cfg, const char *section, const char *key);
int zk_config_bool(const zk_config *cfg, const char *section, const char *key);

/* Number of unknown keys seen at load (for tests and `zhiku check`). */
int zk_config_unknown_count(const zk_config *cfg);

/* Print every known key with its effective value (secrets masked) and its
 * documentation, as an annotated INI file. */
void zk_config_dump(const zk_config *cfg, FILE *out);

#endif
