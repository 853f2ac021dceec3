/* sandbox.c — idx_parse() in a forked child with resource limits (see
 * sandbox.h). Called by the ingestion pipeline once per document; one fork
 * per document costs ~1 ms next to parsing, chunking and embedding. The
 * document's bytes are already in memory, so the child sees them through
 * copy-on-write; only the parsed result travels back, over a pipe, in the
 * length-prefixed format below, which the parent reads as hostile input.
 *
 * Result stream (native byte order; parent and child are the same binary):
 *   "ZKS1" kind:u8
 *   kind 'E': rc:u32 msglen:u32 msg
 *   kind 'O': fmtlen:u16 fmt csetlen:u16 charset titlelen:u32 title nblocks:u64
 *             { textlen:u64 text headlen:u32 (0xFFFFFFFF = none) heading page:i32 }*
 *   "END!"
 * The parent caps the whole stream at max_output_mb. */
#include "indexer/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "utf8.h"

#define MAGIC "ZKS1"
#define TRAILER "END!"
#define NO_HEADING UINT32_MAX
#define CHILD_WRITE_FAILED 3

void idx_sandbox_opts_init(idx_sandbox_opts *o, const zk_config *cfg)
{
    memset(o, 0, sizeof *o);
    o->enabled = zk_config_bool(cfg, "sandbox", "enabled");
    o->cpu_seconds = (int)zk_config_int(cfg, "sandbox", "cpu_seconds");
    o->memory_mb = zk_config_int(cfg, "sandbox", "memory_mb");
    o->wall_seconds = (int)zk_config_int(cfg, "sandbox", "wall_seconds");
    o->max_output_mb = zk_config_int(cfg, "sandbox", "max_output_mb");
}

/* ---- the child: parse, then stream the result ------------------------- */

typedef struct {
    int fd;
    size_t len;
    int failed;
    unsigned char buf[64 << 10];
} writer;

static void w_flush(writer *w)
{
    size_t off = 0;
    while (off < w->len && !w->failed) {
        ssize_t n = write(w->fd, w->buf + off, w->len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) w->failed = 1;
        else off += (size_t)n;
    }
    w->len = 0;
}

static void w_put(writer *w, const void *p, size_t n)
{
    const unsigned char *s = p;
    if (w->failed) return;
    if (n > sizeof w->buf - w->len) {
        w_flush(w);
        if (n > sizeof w->buf) {          /* large text: straight to the pipe */
            while (n && !w->failed) {
                ssize_t k = write(w->fd, s, n);
                if (k < 0 && errno == EINTR) continue;
                if (k <= 0) { w->failed = 1; break; }
                s += k;
                n -= (size_t)k;
            }
            return;
        }
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void w_u16(writer *w, uint16_t v) { w_put(w, &v, sizeof v); }
static void w_u32(writer *w, uint32_t v) { w_put(w, &v, sizeof v); }
static void w_u64(writer *w, uint64_t v) { w_put(w, &v, sizeof v); }

static void write_result(writer *w, zk_rc rc, const idx_parsed *doc, const char *err)
{
    w_put(w, MAGIC, 4);
    if (rc != ZK_OK || !doc) {
        size_t n = strnlen(err, ZK_ERRLEN - 1);
        w_put(w, "E", 1);
        w_u32(w, (uint32_t)(rc != ZK_OK ? rc : ZK_ERR));
        w_u32(w, (uint32_t)n);
        w_put(w, err, n);
    } else {
        size_t fl = strlen(doc->format), cl = strnlen(doc->charset, sizeof doc->charset - 1);
        size_t tl = strlen(doc->title);
        w_put(w, "O", 1);
        w_u16(w, (uint16_t)fl);
        w_put(w, doc->format, fl);
        w_u16(w, (uint16_t)cl);
        w_put(w, doc->charset, cl);
        w_u32(w, (uint32_t)ZK_MIN(tl, (size_t)UINT32_MAX));
        w_put(w, doc->title, ZK_MIN(tl, (size_t)UINT32_MAX));
        w_u64(w, doc->nblocks);
        for (size_t i = 0; i < doc->nblocks && !w->failed; i++) {
            const idx_block *b = &doc->blocks[i];
            w_u64(w, b->len);
            w_put(w, b->text, b->len);
            if (b->heading) {
                size_t hl = ZK_MIN(strlen(b->heading), (size_t)UINT32_MAX - 1);
                w_u32(w, (uint32_t)hl);
                w_put(w, b->heading, hl);
            } else {
                w_u32(w, NO_HEADING);
            }
            int32_t page = b->page;
            w_put(w, &page, sizeof page);
        }
    }
    w_put(w, TRAILER, 4);
    w_flush(w);
}

/* TEST HOOK — only for tests/unit/test_sandbox.c. When the environment
 * variable ZK_SANDBOX_TEST is set, the child misbehaves on purpose before
 * parsing: crash (SIGSEGV), abort, hang (sleeps), spin (burns CPU), alloc
 * (allocates until malloc fails, then returns ZK_NOMEM as a parser would),
 * garble (writes a malformed result), flood (writes without end), exit
 * (exits 7 without a result). Unset in production: one getenv() per child. */
static void test_hook(int fd, const idx_sandbox_opts *o, writer *w)
{
    const char *t = getenv("ZK_SANDBOX_TEST");
    if (!t || !*t) return;
    if (!strcmp(t, "crash")) raise(SIGSEGV);
    if (!strcmp(t, "abort")) abort();
    if (!strcmp(t, "hang")) for (;;) pause();
    if (!strcmp(t, "spin")) {
        volatile unsigned long x = 0;
        for (;;) x++;
    }
    if (!strcmp(t, "alloc")) {
        /* bounded so a limit that does not work fails the test instead of
         * eating the machine */
        long max_mb = o->memory_mb > 0 ? o->memory_mb * 4 : 256;
        void *head = NULL;
        for (long i = 0; i < max_mb; i++) {
            void **p = zk_malloc((size_t)1 << 20);
            if (!p) {
                write_result(w, ZK_NOMEM, NULL, "out of memory");
                _exit(w->failed ? CHILD_WRITE_FAILED : 0);
            }
            memset(p, 0xA5, (size_t)1 << 20);
            *p = head;
            head = p;
        }
        _exit(42);
    }
    if (!strcmp(t, "garble")) {
        static const char junk[] = MAGIC "O\x03\x00" "txt\x00\x00\x05\x00\x00\x00" "ab";
        ssize_t n = write(fd, junk, sizeof junk - 1);
        _exit(n < 0);
    }
    if (!strcmp(t, "flood")) {
        static char junk[1 << 16];
        for (;;)
            if (write(fd, junk, sizeof junk) < 0 && errno != EINTR) _exit(CHILD_WRITE_FAILED);
    }
    if (!strcmp(t, "exit")) _exit(7);
}

static void set_limit(int resource, rlim_t soft, rlim_t hard)
{
    struct rlimit rl = {soft, hard};
    (void)setrlimit(resource, &rl);
}

static void close_other_fds(int keep)
{
    if (keep > 3 && close_range(3, (unsigned)keep - 1, 0) != 0)
        for (int fd = 3; fd < keep; fd++) close(fd);
    if (close_range((unsigned)keep + 1, ~0U, 0) != 0) {
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = keep + 1; fd < ZK_MIN(max, 65536L); fd++) close((int)fd);
    }
}

/* After fork() in a possibly multi-threaded parent only this thread exists.
 * Strictly, only async-signal-safe calls are allowed until exec; we call
 * idx_parse() (malloc, libxml2, iconv) anyway: glibc's fork() takes and
 * resets the malloc arena locks around the fork (atfork), so malloc is
 * usable in the child. Libraries with their own lazy-init locks (libxml2's
 * xmlInitParser) should be initialised in the parent before threads start. */
static void child_main(int fd, pid_t parent, rlim_t as_limit, const idx_sandbox_opts *o,
                       const char *name, const char *data, size_t len)
{
    static const int dfl[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGXCPU, SIGSYS,
                              SIGTRAP, SIGPIPE, SIGTERM, SIGINT, SIGHUP};
    writer w = {.fd = fd};
    sigset_t none;

    /* the parent's handlers and blocked signals must not keep a limit or a
     * crash from ending the child */
    for (size_t i = 0; i < ZK_ARRAY_LEN(dfl); i++) signal(dfl[i], SIG_DFL);
    signal(SIGXFSZ, SIG_IGN);           /* a log write to a file fails, no kill */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(CHILD_WRITE_FAILED);
    close_other_fds(fd);

    set_limit(RLIMIT_CORE, 0, 0);
    set_limit(RLIMIT_FSIZE, 0, 0);
    if (o->cpu_seconds > 0) set_limit(RLIMIT_CPU, (rlim_t)o->cpu_seconds, (rlim_t)o->cpu_seconds + 1);
    if (as_limit) set_limit(RLIMIT_AS, as_limit, as_limit);

    test_hook(fd, o, &w);

    idx_parsed *doc = NULL;
    char err[ZK_ERRLEN] = "";
    zk_rc rc = idx_parse(name, data, len, &doc, err);
    write_result(&w, rc, doc, err[0] ? err : zk_strerror(rc));
    /* no idx_parsed_free: the process ends; _exit skips atexit handlers and
     * stdio buffers that belong to the parent */
    _exit(w.failed ? CHILD_WRITE_FAILED : 0);
}

/* ---- the parent: read, reap, classify, decode ------------------------- */

/* Mapped and resident bytes of this process, from /proc/self/statm. */
static void self_memory(size_t *out_vm, size_t *out_rss)
{
    char s[128];
    unsigned long vm = 0, rss = 0;
    *out_vm = *out_rss = 0;
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, s, sizeof s - 1);
    close(fd);
    if (n <= 0) return;
    s[n] = '\0';
    if (sscanf(s, "%lu %lu", &vm, &rss) != 2) return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    *out_vm = vm * page;
    *out_rss = rss * page;
}

typedef struct {
    const unsigned char *p;
    size_t len, pos;
} reader;

static const unsigned char *r_take(reader *r, size_t n)
{
    if (n > r->len - r->pos) return NULL;
    const unsigned char *s = r->p + r->pos;
    r->pos += n;
    return s;
}

static int r_u16(reader *r, uint16_t *v)
{
    const unsigned char *s = r_take(r, sizeof *v);
    if (s) memcpy(v, s, sizeof *v);
    return s != NULL;
}

static int r_u32(reader *r, uint32_t *v)
{
    const unsigned char *s = r_take(r, sizeof *v);
    if (s) memcpy(v, s, sizeof *v);
    return s != NULL;
}

static int r_u64(reader *r, uint64_t *v)
{
    const unsigned char *s = r_take(r, sizeof *v);
    if (s) memcpy(v, s, sizeof *v);
    return s != NULL;
}

/* Format names are static strings in idx_parsed; map the child's back. */
static const char *known_format(const unsigned char *s, size_t n)
{
    static const char *const formats[] = {"txt", "md", "html", "pdf", "docx", "xlsx", "pptx",
                                          "odt", "epub", "csv", "json", "xml", "rtf", "eml"};
    for (size_t i = 0; i < ZK_ARRAY_LEN(formats); i++)
        if (strlen(formats[i]) == n && memcmp(formats[i], s, n) == 0) return formats[i];
    return NULL;
}

static int clean_text(const unsigned char *s, size_t n)
{
    return utf8_valid((const char *)s, n) && !memchr(s, 0, n);
}

/* Error codes a parser may return; anything else from the child (which
 * could claim ZK_DB and stop a whole ingest run) becomes ZK_PARSE. */
static zk_rc parser_rc(uint32_t rc)
{
    switch (rc) {
    case ZK_ERR: case ZK_IO: case ZK_INVALID: case ZK_CORRUPT: case ZK_UNSUPPORTED:
    case ZK_PARSE: case ZK_TOOBIG:
        return (zk_rc)rc;
    default:
        return ZK_PARSE;
    }
}

/* Decode the child's stream. ZK_CORRUPT = malformed (reported as a bad
 * result by the caller); ZK_NOMEM = the parent ran out of memory. A child
 * error comes back as its code with err filled and *child_nomem set for
 * ZK_NOMEM. */
static zk_rc decode(const unsigned char *p, size_t len, idx_parsed **out, int *child_nomem, char *err)
{
    reader r = {p, len, 0};
    const unsigned char *s;
    idx_parsed *doc = NULL;
    char *heading = NULL;
    zk_rc rc = ZK_CORRUPT;

    if (!(s = r_take(&r, 5)) || memcmp(s, MAGIC, 4) != 0) goto out;
    if (s[4] == 'E') {
        uint32_t code, n;
        const unsigned char *m;
        if (!r_u32(&r, &code) || !r_u32(&r, &n) || n >= ZK_ERRLEN || !(m = r_take(&r, n))) goto out;
        if (!(s = r_take(&r, 4)) || memcmp(s, TRAILER, 4) != 0 || r.pos != r.len) goto out;
        if (code == ZK_OK) goto out;
        char msg[ZK_ERRLEN];
        for (uint32_t i = 0; i < n; i++)   /* controls (and NULs) become spaces */
            msg[i] = (m[i] < 0x20 || m[i] == 0x7F) ? ' ' : (char)m[i];
        msg[n] = '\0';
        if (!utf8_valid(msg, n)) snprintf(msg, sizeof msg, "%s", "parser error (unreadable message)");
        if (code == ZK_NOMEM) {
            *child_nomem = 1;
            rc = ZK_TOOBIG;
        } else {
            rc = zk_fail(err, parser_rc(code), "%s", n ? msg : zk_strerror(parser_rc(code)));
        }
        goto out;
    }
    if (s[4] != 'O') goto out;

    uint16_t fl, cl;
    uint32_t tl;
    uint64_t nblocks;
    const char *format;
    if (!r_u16(&r, &fl) || !(s = r_take(&r, fl)) || !(format = known_format(s, fl))) goto out;
    if (!r_u16(&r, &cl) || cl >= sizeof doc->charset || !(s = r_take(&r, cl))) goto out;
    for (uint16_t i = 0; i < cl; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7F) goto out;
    if (!(doc = idx__parsed_new())) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    doc->format = format;
    memcpy(doc->charset, s, cl);
    doc->charset[cl] = '\0';
    if (!r_u32(&r, &tl) || tl == 0 || !(s = r_take(&r, tl)) || !clean_text(s, tl)) goto out;
    if (!(doc->title = zk_strndup((const char *)s, tl))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    /* a block takes at least 16 bytes of framing */
    if (!r_u64(&r, &nblocks) || nblocks > (r.len - r.pos) / 16) goto out;
    for (uint64_t i = 0; i < nblocks; i++) {
        uint64_t n;
        uint32_t hl;
        int32_t page;
        const unsigned char *text;
        if (!r_u64(&r, &n) || n > r.len - r.pos || !(text = r_take(&r, (size_t)n))) goto out;
        if (!r_u32(&r, &hl)) goto out;
        if (hl != NO_HEADING) {
            if (!(s = r_take(&r, hl)) || !clean_text(s, hl)) goto out;
            if (!(heading = zk_strndup((const char *)s, hl))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
        }
        if (!(s = r_take(&r, sizeof page))) goto out;
        memcpy(&page, s, sizeof page);
        if (page < 0) goto out;
        /* idx__add_block re-validates: text stays valid UTF-8 without NULs
         * whatever the child sent */
        zk_rc brc = idx__add_block(doc, (const char *)text, (size_t)n, heading, page);
        zk_free(heading);
        heading = NULL;
        if (brc != ZK_OK) { rc = zk_fail(err, brc == ZK_NOMEM ? ZK_NOMEM : ZK_CORRUPT, "out of memory"); goto out; }
    }
    if (!(s = r_take(&r, 4)) || memcmp(s, TRAILER, 4) != 0 || r.pos != r.len) goto out;
    *out = doc;
    doc = NULL;
    rc = ZK_OK;
out:
    zk_free(heading);
    idx_parsed_free(doc);
    return rc;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Reap pid. Until deadline (0 = none) wait politely, then SIGKILL; the child
 * is always reaped. Returns 1 if it had to be killed for the deadline,
 * -1 if its status is lost (SIGCHLD ignored, or reaped by someone else). */
static int reap(pid_t pid, double deadline, int *status, struct rusage *ru)
{
    long nap = 1;
    int killed = 0;
    for (;;) {
        pid_t r = wait4(pid, status, deadline > 0 && !killed ? WNOHANG : 0, ru);
        if (r == pid) return killed;
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (zk_now() >= deadline) {
            kill(pid, SIGKILL);
            killed = 1;
            continue;
        }
        sleep_ms(nap);
        nap = ZK_MIN(nap * 2, 50L);
    }
}

static const char *signame(int sig, char *buf, size_t n)
{
    const char *ab = sigabbrev_np(sig);
    snprintf(buf, n, "SIG%s", ab ? ab : "?");
    return buf;
}

zk_rc idx_sandbox_parse(const idx_sandbox_opts *o, const char *name, const char *data, size_t len,
                        idx_parsed **out, char *err)
{
    zk_rc rc = ZK_OK;
    int fds[2] = {-1, -1};
    unsigned char *res = NULL;
    size_t rlen = 0, rcap = 0;
    size_t max_out = o->max_output_mb > 0 ? (size_t)o->max_output_mb << 20 : ZK_BUF_DEFAULT_MAX;
    double deadline = o->wall_seconds > 0 ? zk_now() + o->wall_seconds : 0;
    int timed_out = 0, too_big = 0, status = 0, child_nomem = 0;
    struct rusage ru;
    size_t vm = 0, rss = 0;
    rlim_t as_limit = 0;

    *out = NULL;
    if (!o->enabled) return idx_parse(name, data, len, out, err);
    if (!data && len) return zk_fail(err, ZK_INVALID, "NULL data");

    /* memory_mb is headroom above what the process has mapped already (the
     * document, libraries, other threads' arenas, sanitizer shadow) */
    self_memory(&vm, &rss);
    if (o->memory_mb > 0) as_limit = (rlim_t)vm + ((rlim_t)o->memory_mb << 20);

    if (pipe2(fds, O_CLOEXEC) != 0) return zk_fail(err, ZK_IO, "sandbox pipe: %s", strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        rc = zk_fail(err, ZK_IO, "sandbox fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return rc;
    }
    if (pid == 0) {
        close(fds[0]);
        child_main(fds[1], parent, as_limit, o, name, data, len);
        _exit(CHILD_WRITE_FAILED);   /* not reached */
    }
    close(fds[1]);

    /* read the result until EOF, the deadline or the size cap */
    for (;;) {
        int timeout_ms = -1;
        if (deadline > 0) {
            double left = deadline - zk_now();
            if (left <= 0) { timed_out = 1; break; }
            timeout_ms = (int)(left * 1000) + 1;
        }
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr < 0 && errno == EINTR) continue;
        if (pr < 0) { rc = zk_fail(err, ZK_IO, "sandbox poll: %s", strerror(errno)); break; }
        if (pr == 0) continue;
        if (rlen == rcap) {
            if (rcap >= max_out) { too_big = 1; break; }
            size_t ncap = ZK_MIN(rcap ? rcap * 2 : (size_t)64 << 10, max_out);
            unsigned char *nr = zk_realloc(res, ncap);
            if (!nr) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); break; }
            res = nr;
            rcap = ncap;
        }
        ssize_t n = read(fds[0], res + rlen, rcap - rlen);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0) { rc = zk_fail(err, ZK_IO, "sandbox read: %s", strerror(errno)); break; }
        if (n == 0) break;
        rlen += (size_t)n;
    }
    close(fds[0]);
    if (timed_out || too_big || rc != ZK_OK) kill(pid, SIGKILL);
    memset(&ru, 0, sizeof ru);
    /* a child that closed the pipe gets a moment to exit before SIGKILL */
    int reaped = reap(pid, deadline > 0 ? ZK_MAX(deadline, zk_now() + 1.0) : 0, &status, &ru);
    if (reaped == 1) timed_out = 1;
    if (rc != ZK_OK) goto out;

    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                 ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    /* ru_maxrss (KiB) counts pages shared with the parent too */
    int near_mem = o->memory_mb > 0 && reaped == 0 &&
                   ((size_t)ru.ru_maxrss << 10) >= rss + ((size_t)o->memory_mb << 20) / 4 * 3;
    char sb[32];
    if (too_big) {
        rc = zk_fail(err, ZK_TOOBIG, "parser output exceeded the limit (%ld MB)", (long)(max_out >> 20));
    } else if (timed_out) {
        rc = zk_fail(err, ZK_TOOBIG, "parser exceeded the wall-clock limit (%d s)", o->wall_seconds);
    } else if (reaped == 0 && WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        if (o->cpu_seconds > 0 && (sig == SIGXCPU || (sig == SIGKILL && cpu >= o->cpu_seconds - 0.05)))
            rc = zk_fail(err, ZK_TOOBIG, "parser exceeded the CPU-time limit (%d s)", o->cpu_seconds);
        else if (near_mem)
            rc = zk_fail(err, ZK_TOOBIG, "parser exceeded the memory limit (%ld MB)", o->memory_mb);
        else
            rc = zk_fail(err, ZK_PARSE, "parser crashed (signal %d: %s)", sig, signame(sig, sb, sizeof sb));
    } else if (reaped == 0 && WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        if (near_mem)
            rc = zk_fail(err, ZK_TOOBIG, "parser exceeded the memory limit (%ld MB)", o->memory_mb);
        else
            rc = zk_fail(err, ZK_PARSE, "parser crashed (exit status %d)", WEXITSTATUS(status));
    } else {
        /* exited 0, or status lost: the stream must be complete and valid */
        rc = decode(res, rlen, out, &child_nomem, err);
        if (child_nomem)
            rc = o->memory_mb > 0
                     ? zk_fail(err, ZK_TOOBIG, "parser exceeded the memory limit (%ld MB)", o->memory_mb)
                     : zk_fail(err, ZK_TOOBIG, "parser ran out of memory");
        else if (rc == ZK_CORRUPT)
            rc = zk_fail(err, ZK_PARSE, "parser failed (bad result)");
    }
out:
    if (rc != ZK_OK && *out) {
        idx_parsed_free(*out);
        *out = NULL;
    }
    zk_free(res);
    return rc;
}
