/* zk.c — error table, logging, allocation wrappers and tiny utilities shared
 * by every module. Logging is to stderr, one line per event; the level is set
 * once at start-up from the config or the CLI's --verbose. */
#include "zk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <time.h>
#include <openssl/evp.h>

static const char *const messages[] = {
#define XX(name, exitc, msg) msg,
    ZK_ERRNO_MAP(XX)
#undef XX
};
static const char *const names[] = {
#define XX(name, exitc, msg) #name,
    ZK_ERRNO_MAP(XX)
#undef XX
};
static const int exit_codes[] = {
#define XX(name, exitc, msg) exitc,
    ZK_ERRNO_MAP(XX)
#undef XX
};

const char *zk_strerror(zk_rc rc)
{
    if ((int)rc < 0 || rc >= ZK__NERR) return "unknown error";
    return messages[rc];
}

const char *zk_errname(zk_rc rc)
{
    if ((int)rc < 0 || rc >= ZK__NERR) return "UNKNOWN";
    return names[rc];
}

int zk_exit_code(zk_rc rc)
{
    if ((int)rc < 0 || rc >= ZK__NERR) return 1;
    return exit_codes[rc];
}

zk_rc zk_fail(char *err, zk_rc rc, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, ZK_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int zk_log_min_level = ZK_LOG_WARN;

void zk_log_set_level(zk_log_level lvl) { zk_log_min_level = (int)lvl; }

void zk_log_write(zk_log_level lvl, const char *file, int line, const char *fmt, ...)
{
    static const char *const lvlname[] = {"debug", "info", "warn", "error"};
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *base = strrchr(file, '/');
    fprintf(stderr, "zhiku %s: %s (%s:%d)\n", lvlname[lvl], msg, base ? base + 1 : file, line);
}

/* Fault injection for tests: ZK_FAIL_ALLOC_AFTER=N (read once, lazily) or
 * zk_fail_alloc_after(N) makes the N+1th allocation through these wrappers
 * and every later one fail. Atomic, as ingestion workers allocate too. */
static long alloc_budget = -2;

static int alloc_should_fail(void)
{
    long b = __atomic_load_n(&alloc_budget, __ATOMIC_RELAXED);
    if (b == -2) {
        const char *s = getenv("ZK_FAIL_ALLOC_AFTER");
        long want = s ? atol(s) : -1;
        __atomic_compare_exchange_n(&alloc_budget, &b, want < 0 ? -1 : want, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        b = __atomic_load_n(&alloc_budget, __ATOMIC_SEQ_CST);
    }
    while (b > 0)
        if (__atomic_compare_exchange_n(&alloc_budget, &b, b - 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return 0;
    return b == 0;
}

long zk_fail_alloc_after(long n)
{
    long left = __atomic_exchange_n(&alloc_budget, n < 0 ? -1 : n, __ATOMIC_SEQ_CST);
    return left == -2 ? -1 : left;
}

void *zk_malloc(size_t n) { return alloc_should_fail() ? NULL : malloc(n ? n : 1); }
void *zk_aligned_alloc(size_t align, size_t n)
{
    void *p = NULL;
    return alloc_should_fail() || posix_memalign(&p, align, n ? n : 1) != 0 ? NULL : p;
}
void *zk_calloc(size_t n, size_t sz) { return alloc_should_fail() ? NULL : calloc(n ? n : 1, sz ? sz : 1); }
void *zk_realloc(void *p, size_t n) { return alloc_should_fail() ? NULL : realloc(p, n ? n : 1); }
void zk_free(void *p) { free(p); }

char *zk_strndup(const char *s, size_t n)
{
    char *d = zk_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *zk_strdup(const char *s) { return s ? zk_strndup(s, strlen(s)) : NULL; }

double zk_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void zk_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

int zk_mkdir_p(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0750) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0750) != 0 && errno != EEXIST) return -1;
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int zk_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}
