/* zk.h — the project-wide error codes and logging.
 *
 * Every module returns a zk_rc and passes a human-readable detail through a
 * caller-supplied `char *err` buffer of ZK_ERRLEN bytes (redis anet.c style).
 * The error table is one X-macro so zk_strerror() always has a message.
 * Logging goes through ZK_LOG(), which checks the level before formatting. */
#ifndef ZK_H
#define ZK_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#define ZK_ERRLEN 512

/* name, exit code (CLI), message */
#define ZK_ERRNO_MAP(XX)                                                   \
    XX(OK,          0, "success")                                          \
    XX(ERR,         1, "error")                                            \
    XX(NOMEM,       1, "out of memory")                                    \
    XX(IO,          1, "input/output error")                               \
    XX(NOTFOUND,    3, "not found")                                        \
    XX(INVALID,     2, "invalid argument")                                 \
    XX(CONFIG,      2, "configuration error")                              \
    XX(DB,          1, "database error")                                   \
    XX(CORRUPT,     1, "corrupt data")                                     \
    XX(UNSUPPORTED, 4, "unsupported format")                               \
    XX(PARSE,       4, "malformed input")                                  \
    XX(TOOBIG,      4, "input too large")                                  \
    XX(MISMATCH,    5, "embedding model mismatch")                         \
    XX(INDEX,       1, "vector index error")                               \
    XX(EXISTS,      1, "already exists")

typedef enum {
#define XX(name, exitc, msg) ZK_##name,
    ZK_ERRNO_MAP(XX)
#undef XX
    ZK__NERR
} zk_rc;

const char *zk_strerror(zk_rc rc);
const char *zk_errname(zk_rc rc);
int zk_exit_code(zk_rc rc);

/* Format into err (may be NULL) and return rc, so callers can write
 *   return zk_fail(err, ZK_IO, "open %s: %s", path, strerror(errno)); */
zk_rc zk_fail(char *err, zk_rc rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- logging ---------------------------------------------------------- */

typedef enum { ZK_LOG_DEBUG = 0, ZK_LOG_INFO, ZK_LOG_WARN, ZK_LOG_ERROR } zk_log_level;

extern int zk_log_min_level;  /* set once at start-up, read-only after */
void zk_log_set_level(zk_log_level lvl);
void zk_log_write(zk_log_level lvl, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define ZK_LOG(lvl, ...)                                                   \
    do {                                                                   \
        if ((int)(lvl) >= zk_log_min_level)                                \
            zk_log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);          \
    } while (0)

/* ---- small helpers ---------------------------------------------------- */

#define ZK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define ZK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define ZK_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Allocation that aborts on failure is NOT used; these return NULL like
 * malloc but let tests inject failures (zk_fail_alloc_after below). */
void *zk_malloc(size_t n);
void *zk_calloc(size_t n, size_t sz);
/* n bytes aligned to align (a power of two, a multiple of sizeof(void *));
 * freed with zk_free. */
void *zk_aligned_alloc(size_t align, size_t n);
void *zk_realloc(void *p, size_t n);
char *zk_strdup(const char *s);
char *zk_strndup(const char *s, size_t n);
void zk_free(void *p);
/* Tests: from now on the (n+1)th allocation and every later one fail; n < 0
 * turns injection off. Returns the allocations that were still allowed
 * before the call (0: a failure was injected; -1: injection was off). */
long zk_fail_alloc_after(long n);

/* mkdir -p with mode 0750: 0, or -1 with errno set. */
int zk_mkdir_p(const char *path);
/* qsort comparator for int64_t. */
int zk_cmp_i64(const void *a, const void *b);

/* Monotonic clock in seconds, for timing and progress. */
double zk_now(void);

/* SHA-256 of a buffer as 64 lowercase hex chars + NUL into out. */
void zk_sha256_hex(const void *data, size_t len, char out[65]);

#endif
