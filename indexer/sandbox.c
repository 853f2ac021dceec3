/* sandbox.c — idx_parse() in long-lived sandboxed helper processes (see
 * sandbox.h). Each ingestion worker keeps one helper and sends it every
 * document it parses; forking the ingesting process (~120 MB) once per
 * document used to cost ~7 ms of page-table copies and copy-on-write faults
 * per document, more than parsing a 100 KB Markdown file. A helper is
 * replaced after any abnormal end, after RECYCLE_DOCS documents, or when it
 * has grown by RECYCLE_GROWTH_MB. Requests and results travel over a
 * socketpair as length-prefixed frames; the parent reads results as hostile
 * input.
 *
 * A helper is the running binary started afresh: fork, then exec of the
 * binary (/proc/self/exe's target) with HELPER_ENV set, which a constructor here turns into
 * child_main() before main() runs. A plain fork of the threaded ingester
 * copied whatever lock another thread held at that instant (the
 * AddressSanitizer allocator's, a library's) and a helper could wait on it
 * forever — seen once in CI as a 120 s hang of a hostile-file ingest. The
 * forked image is only used when the exec fails (no /proc, the binary
 * replaced on disk by an upgrade).
 *
 * Request (parent → child; native byte order, same binary on both sides):
 *   "ZKQ1" hooklen:u16 hook namelen:u32 name datalen:u64 data
 * Reply (child → parent): len:u64, then len bytes:
 *   "ZKS1" kind:u8
 *   kind 'E': rc:u32 msglen:u32 msg
 *   kind 'O': fmtlen:u16 fmt csetlen:u16 charset titlelen:u32 title nblocks:u64
 *             { textlen:u64 text headlen:u32 (0xFFFFFFFF = none) heading page:i32 }*
 *   "END!"
 * The parent refuses a reply longer than max_output_mb. */
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
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "indexer/ocr.h"
#include "utf8.h"

#define REQ_MAGIC "ZKQ1"
#define MAGIC "ZKS1"
#define TRAILER "END!"
#define NO_HEADING UINT32_MAX
#define CHILD_WRITE_FAILED 3
#define HOOK_MAX 32
#define RECYCLE_DOCS 1000
#define RECYCLE_GROWTH_MB 256
#define HELPER_ENV "ZHIKU_SANDBOX_HELPER"   /* fd:parent:cpu:memory_mb:wall:max_output_mb:ocr_timeout_ms */
#define HELPER_OCR_URL "ZHIKU_SANDBOX_OCR_URL"   /* [ocr] as configured in the parent */
#define HELPER_OCR_KEY "ZHIKU_SANDBOX_OCR_KEY"

struct idx_sandbox {
    idx_sandbox_opts o;
    pid_t pid;            /* helper process; 0 = none running */
    int fd;               /* parent's end of the socketpair; -1 = none */
    size_t spawn_rss;     /* helper's resident bytes before its first document */
    unsigned ndocs;       /* documents the helper has parsed */
};

void idx_sandbox_opts_init(idx_sandbox_opts *o, const zk_config *cfg)
{
    memset(o, 0, sizeof *o);
    o->enabled = zk_config_bool(cfg, "sandbox", "enabled");
    o->cpu_seconds = (int)zk_config_int(cfg, "sandbox", "cpu_seconds");
    o->memory_mb = zk_config_int(cfg, "sandbox", "memory_mb");
    o->wall_seconds = (int)zk_config_int(cfg, "sandbox", "wall_seconds");
    o->max_output_mb = zk_config_int(cfg, "sandbox", "max_output_mb");
}

/* Mapped and resident bytes of a process (0 = this one), from statm. */
static void proc_memory(pid_t pid, size_t *out_vm, size_t *out_rss)
{
    char s[128];
    unsigned long vm = 0, rss = 0;
    *out_vm = *out_rss = 0;
    if (pid) snprintf(s, sizeof s, "/proc/%d/statm", (int)pid);
    else snprintf(s, sizeof s, "/proc/self/statm");
    int fd = open(s, O_RDONLY | O_CLOEXEC);
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

/* ---- the child: read a request, parse, reply; again -------------------- */

typedef struct {
    int fd;
    int count_only;       /* measure the reply instead of writing it */
    uint64_t total;       /* bytes measured */
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
    if (w->count_only) {
        w->total += n;
        return;
    }
    if (w->failed) return;
    if (n > sizeof w->buf - w->len) {
        w_flush(w);
        if (n > sizeof w->buf) {          /* large text: straight to the socket */
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

static void write_payload(writer *w, zk_rc rc, const idx_parsed *doc, const char *err)
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
}

/* One reply frame: its length (measured by a dry run), then the payload. */
static void write_result(writer *w, zk_rc rc, const idx_parsed *doc, const char *err)
{
    static writer count;   /* static: no allocation when out of memory */
    count.count_only = 1;
    count.total = 0;
    write_payload(&count, rc, doc, err);
    w_u64(w, count.total);
    write_payload(w, rc, doc, err);
    w_flush(w);
}

/* TEST HOOK — only for tests/unit/test_sandbox.c. When the parent's
 * environment has ZK_SANDBOX_TEST set, its value travels with the request
 * and the child misbehaves on purpose before parsing: crash (SIGSEGV),
 * abort, hang (sleeps), spin (burns CPU), alloc (allocates until malloc
 * fails, then returns ZK_NOMEM as a parser would), garble (replies a
 * malformed result), flood (replies without end), exit (exits 7 without a
 * result), busy (burns 0.4 s of CPU, then parses), pid (replies an error
 * naming the helper's pid instead of parsing; returns 1). Unset in
 * production: one getenv() per document. */
static int test_hook(int fd, const idx_sandbox_opts *o, writer *w, const char *t)
{
    if (!*t) return 0;
    if (!strcmp(t, "crash")) raise(SIGSEGV);
    if (!strcmp(t, "abort")) abort();
    if (!strcmp(t, "hang")) for (;;) pause();
    if (!strcmp(t, "spin")) {
        volatile unsigned long x = 0;
        for (;;) x++;
    }
    if (!strcmp(t, "busy")) {
        volatile unsigned long x = 0;
        struct timespec t0, t1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
        do {
            for (int i = 0; i < 100000; i++) x++;
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
        } while ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 < 0.4);
        return 0;
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
        uint64_t n = sizeof junk - 1;
        int ok = write(fd, &n, sizeof n) == (ssize_t)sizeof n && write(fd, junk, n) == (ssize_t)n;
        _exit(!ok);
    }
    if (!strcmp(t, "flood")) {
        static char junk[1 << 16];
        uint64_t n = (uint64_t)1 << 40;
        memcpy(junk, &n, sizeof n);
        for (;;)
            if (write(fd, junk, sizeof junk) < 0 && errno != EINTR) _exit(CHILD_WRITE_FAILED);
    }
    if (!strcmp(t, "exit")) _exit(7);
    if (!strcmp(t, "pid")) {
        char msg[64];
        snprintf(msg, sizeof msg, "helper %d", (int)getpid());
        write_result(w, ZK_INVALID, NULL, msg);
        return 1;
    }
    return 0;
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

/* 1 when all n bytes were read, 0 on EOF or error. */
static int read_full(int fd, void *p, size_t n)
{
    unsigned char *s = p;
    while (n) {
        ssize_t k = read(fd, s, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return 0;
        s += k;
        n -= (size_t)k;
    }
    return 1;
}

/* Per-document limits: memory_mb of address space above what the helper
 * maps now (the document included), cpu_seconds of CPU time from now
 * (ITIMER_PROF: SIGPROF ends the child). Between documents the address
 * space is unlimited again, up to the hard limit, so the next request fits. */
static void doc_limits(const idx_sandbox_opts *o, int on)
{
    struct rlimit rl;
    if (o->memory_mb > 0 && getrlimit(RLIMIT_AS, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        if (on) {
            size_t vm, rss;
            proc_memory(0, &vm, &rss);
            rlim_t want = (rlim_t)vm + ((rlim_t)o->memory_mb << 20);
            if (rl.rlim_max == RLIM_INFINITY || want < rl.rlim_max) rl.rlim_cur = want;
        }
        (void)setrlimit(RLIMIT_AS, &rl);
    }
    if (o->cpu_seconds > 0) {
        struct itimerval it = {{0, 0}, {on ? o->cpu_seconds : 0, 0}};
        (void)setitimer(ITIMER_PROF, &it, NULL);
    }
}

/* Reset this process's peak RSS, so the parent's ru_maxrss after a crash
 * describes the last document, not the helper's whole life. */
static void reset_peak_rss(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    if (write(fd, "5", 1) < 0) { /* best effort */ }
    close(fd);
}

/* Read one request; 0 at EOF (the parent is done with this helper). */
static int read_request(int fd, char *hook, char **out_name, char **out_data, size_t *out_len)
{
    char magic[4];
    uint16_t hl;
    uint32_t nl;
    uint64_t dl;
    *out_name = *out_data = NULL;
    if (!read_full(fd, magic, 4) || memcmp(magic, REQ_MAGIC, 4) != 0) return 0;
    if (!read_full(fd, &hl, sizeof hl) || hl >= HOOK_MAX || !read_full(fd, hook, hl)) return 0;
    hook[hl] = '\0';
    if (!read_full(fd, &nl, sizeof nl) || nl > (1u << 20) || !(*out_name = malloc((size_t)nl + 1)) ||
        !read_full(fd, *out_name, nl))
        return 0;
    (*out_name)[nl] = '\0';
    if (!read_full(fd, &dl, sizeof dl) || dl >= SIZE_MAX || !(*out_data = malloc((size_t)dl + 1)) ||
        !read_full(fd, *out_data, (size_t)dl))
        return 0;
    (*out_data)[dl] = '\0';
    *out_len = (size_t)dl;
    return 1;
}

/* After fork() in a possibly multi-threaded parent only this thread exists.
 * Strictly, only async-signal-safe calls are allowed until exec; we call
 * idx_parse() (malloc, libxml2, iconv) anyway: glibc's fork() takes and
 * resets the malloc arena locks around the fork (atfork), so malloc is
 * usable in the child. Libraries with their own lazy-init locks (libxml2's
 * xmlInitParser) should be initialised in the parent before threads start. */
static void child_main(int fd, pid_t parent, const idx_sandbox_opts *o)
{
    static const int dfl[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGXCPU, SIGSYS, SIGPROF,
                              SIGTRAP, SIGPIPE, SIGTERM, SIGINT, SIGHUP};
    static writer w;
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

    for (;;) {
        char hook[HOOK_MAX], *name, *data;
        size_t len = 0;
        if (!read_request(fd, hook, &name, &data, &len)) _exit(0);
        memset(&w, 0, offsetof(writer, buf));
        w.fd = fd;
        reset_peak_rss();
        doc_limits(o, 1);
        if (!test_hook(fd, o, &w, hook)) {
            idx_parsed *doc = NULL;
            char err[ZK_ERRLEN] = "";
            zk_rc rc = idx_parse(name, data, len, &doc, err);
            write_result(&w, rc, doc, err[0] ? err : zk_strerror(rc));
            idx_parsed_free(doc);
        }
        free(data);
        free(name);
        doc_limits(o, 0);
        if (w.failed) _exit(CHILD_WRITE_FAILED);
    }
}

/* ---- the parent: send, read, classify, decode ---------------------------- */

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

/* Decode the child's reply. *malformed set (and ZK_CORRUPT returned) when
 * it is not a valid reply; ZK_NOMEM = the parent ran out of memory. A child
 * error comes back as its code with err filled and *child_nomem set for
 * ZK_NOMEM. */
static zk_rc decode(const unsigned char *p, size_t len, idx_parsed **out, int *child_nomem, int *malformed,
                    char *err)
{
    reader r = {p, len, 0};
    const unsigned char *s;
    idx_parsed *doc = NULL;
    char *heading = NULL;
    zk_rc rc = ZK_CORRUPT;
    int child_error = 0;   /* rc is the parser's own error */

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
        child_error = 1;
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
        if (brc == ZK_NOMEM) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
        if (brc != ZK_OK) goto out;
    }
    if (!(s = r_take(&r, 4)) || memcmp(s, TRAILER, 4) != 0 || r.pos != r.len) goto out;
    *out = doc;
    doc = NULL;
    rc = ZK_OK;
out:
    if (rc == ZK_CORRUPT && !child_error) *malformed = 1;
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

/* Kill and reap the helper (if any) and forget it. */
static void helper_stop(idx_sandbox *sb)
{
    if (sb->fd >= 0) close(sb->fd);
    sb->fd = -1;
    if (sb->pid > 0) {
        int status;
        kill(sb->pid, SIGKILL);
        while (waitpid(sb->pid, &status, 0) < 0 && errno == EINTR) {}
    }
    sb->pid = 0;
}

static int env_is(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(entry, name, n) && entry[n] == '=';
}

/* The helper's environment: this process's, with HELPER_ENV, the [ocr]
 * settings (the parser calls the OCR service; the api_key goes no further
 * than a child of the same user) and one thread for the BLAS/OpenMP
 * libraries the binary also links (the parser needs none). Built before
 * fork: after it only exec is called. One malloc'd block; NULL on failure. */
static char **helper_env(int fd, pid_t parent, const idx_sandbox_opts *o)
{
    extern char **environ;
    static const char *const ours[] = {HELPER_ENV, HELPER_OCR_URL, HELPER_OCR_KEY, "OPENBLAS_NUM_THREADS",
                                       "OMP_NUM_THREADS"};
    const char *url, *key;
    long ocr_ms;
    idx_ocr_get(&url, &key, &ocr_ms);
    size_t n = 0;
    while (environ && environ[n]) n++;
    zk_buf vars;
    buf_init(&vars, 1 << 16);
    int bad = buf_printf(&vars, HELPER_ENV "=%d:%ld:%d:%ld:%d:%ld:%ld", fd, (long)parent, o->cpu_seconds,
                         o->memory_mb, o->wall_seconds, o->max_output_mb, ocr_ms) != ZK_OK;
    bad |= buf_putc(&vars, '\0') != ZK_OK;
    bad |= buf_printf(&vars, "OPENBLAS_NUM_THREADS=1%cOMP_NUM_THREADS=1%c", 0, 0) != ZK_OK;
    if (url) bad |= buf_printf(&vars, HELPER_OCR_URL "=%s%c", url, 0) != ZK_OK;
    if (key) bad |= buf_printf(&vars, HELPER_OCR_KEY "=%s%c", key, 0) != ZK_OK;
    size_t nvars = 3 + (url != NULL) + (key != NULL);
    char **env = bad ? NULL : malloc((n + nvars + 1) * sizeof *env + vars.len);
    if (env) {
        char *p = (char *)(env + n + nvars + 1);
        memcpy(p, vars.data, vars.len);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            int mine = 0;
            for (size_t j = 0; j < ZK_ARRAY_LEN(ours); j++) mine |= env_is(environ[i], ours[j]);
            if (!mine) env[k++] = environ[i];
        }
        for (size_t j = 0; j < nvars; j++, p += strlen(p) + 1) env[k++] = p;
        env[k] = NULL;
    }
    buf_free(&vars);
    return env;
}

/* A process started with HELPER_ENV is a helper from its first instruction
 * of ours: it never reaches main(). */
__attribute__((constructor)) static void helper_entry(void)
{
    const char *v = getenv(HELPER_ENV);
    if (!v) return;
    int fd, cpu, wall;
    long parent, mem, out, ocr_ms;
    if (sscanf(v, "%d:%ld:%d:%ld:%d:%ld:%ld", &fd, &parent, &cpu, &mem, &wall, &out, &ocr_ms) != 7)
        _exit(CHILD_WRITE_FAILED);
    if (getenv(HELPER_OCR_URL) && idx_ocr_configure(getenv(HELPER_OCR_URL), getenv(HELPER_OCR_KEY), ocr_ms) != ZK_OK)
        _exit(CHILD_WRITE_FAILED);
    idx_sandbox_opts o = {.enabled = 1, .cpu_seconds = cpu, .memory_mb = mem, .wall_seconds = wall,
                          .max_output_mb = out};
    child_main(fd, (pid_t)parent, &o);
    _exit(CHILD_WRITE_FAILED);   /* not reached */
}

static zk_rc helper_start(idx_sandbox *sb, char *err)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return zk_fail(err, ZK_IO, "sandbox socketpair: %s", strerror(errno));
    int bufsize = 1 << 20;   /* capped by net.core.[rw]mem_max; fewer wake-ups */
    for (int i = 0; i < 2; i++) {
        (void)setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
        (void)setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
    }
    pid_t parent = getpid();
    /* the binary's path, not /proc/self/exe itself: under valgrind the
     * process image is the tool, and only readlink is virtualised */
    char exe[4096];
    ssize_t exelen = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char **env = exelen > 0 ? helper_env(sv[1], parent, &sb->o) : NULL;
    if (exelen > 0) exe[exelen] = '\0';
    char *const argv[] = {"zhiku-parser", NULL};
    pid_t pid = fork();
    if (pid < 0) {
        zk_rc rc = zk_fail(err, ZK_IO, "sandbox fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        free(env);
        return rc;
    }
    if (pid == 0) {
        close(sv[0]);
        if (env && fcntl(sv[1], F_SETFD, 0) == 0) execve(exe, argv, env);
        child_main(sv[1], parent, &sb->o);   /* no exec: this (forked) image */
        _exit(CHILD_WRITE_FAILED);   /* not reached */
    }
    free(env);
    close(sv[1]);
    (void)fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    sb->pid = pid;
    sb->fd = sv[0];
    sb->ndocs = 0;
    sb->spawn_rss = 0;
    return ZK_OK;
}

/* Wait until fd is ready for ev or the deadline (0 = none) passes:
 * 1 ready, 0 timed out, -1 poll failed (errno). */
static int wait_fd(int fd, short ev, double deadline)
{
    for (;;) {
        int timeout_ms = -1;
        if (deadline > 0) {
            double left = deadline - zk_now();
            if (left <= 0) return 0;
            timeout_ms = (int)(left * 1000) + 1;
        }
        struct pollfd pfd = {.fd = fd, .events = ev};
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr < 0 && errno == EINTR) continue;
        if (pr < 0) return -1;
        if (pr > 0) return 1;
    }
}

/* Transfer results: the whole buffer moved, the deadline passed, the child
 * went away (EOF, reset), or a local failure (err filled): I/O, or out of
 * memory (XFER_NOMEM). */
typedef enum { XFER_OK, XFER_TIMEOUT, XFER_GONE, XFER_FAILED, XFER_NOMEM } xfer;

static xfer send_all(int fd, const void *p, size_t n, double deadline, char *err)
{
    const char *s = p;
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k > 0) {
            s += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int w = wait_fd(fd, POLLOUT, deadline);
            if (w == 0) return XFER_TIMEOUT;
            if (w < 0) { zk_fail(err, ZK_IO, "sandbox poll: %s", strerror(errno)); return XFER_FAILED; }
            continue;
        }
        return XFER_GONE;   /* EPIPE, ECONNRESET: the helper died */
    }
    return XFER_OK;
}

static xfer recv_all(int fd, void *p, size_t n, double deadline, char *err)
{
    char *s = p;
    while (n) {
        ssize_t k = recv(fd, s, n, 0);
        if (k > 0) {
            s += k;
            n -= (size_t)k;
            continue;
        }
        if (k == 0) return XFER_GONE;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = wait_fd(fd, POLLIN, deadline);
            if (w == 0) return XFER_TIMEOUT;
            if (w < 0) { zk_fail(err, ZK_IO, "sandbox poll: %s", strerror(errno)); return XFER_FAILED; }
            continue;
        }
        if (errno == ECONNRESET) return XFER_GONE;
        zk_fail(err, ZK_IO, "sandbox read: %s", strerror(errno));
        return XFER_FAILED;
    }
    return XFER_OK;
}

/* Send the request. The hook comes from the parent's environment (tests). */
static xfer send_request(idx_sandbox *sb, const char *name, const char *data, size_t len, double deadline,
                         char *err)
{
    const char *hook = getenv("ZK_SANDBOX_TEST");
    uint16_t hl = (uint16_t)(hook ? strnlen(hook, HOOK_MAX - 1) : 0);
    uint32_t nl = (uint32_t)strnlen(name, 1u << 20);
    uint64_t dl = len;
    size_t hlen = 4 + sizeof hl + hl + sizeof nl + nl + sizeof dl;
    char *h = zk_malloc(hlen), *p = h;
    if (!h) { zk_fail(err, ZK_NOMEM, "out of memory"); return XFER_NOMEM; }
    memcpy(p, REQ_MAGIC, 4);
    p += 4;
    memcpy(p, &hl, sizeof hl);
    p += sizeof hl;
    if (hl) memcpy(p, hook, hl);
    p += hl;
    memcpy(p, &nl, sizeof nl);
    p += sizeof nl;
    memcpy(p, name, nl);
    p += nl;
    memcpy(p, &dl, sizeof dl);
    xfer x = send_all(sb->fd, h, hlen, deadline, err);
    zk_free(h);
    if (x == XFER_OK) x = send_all(sb->fd, data, len, deadline, err);
    return x;
}

/* Read one reply frame into *out_res (zk_malloc'd). A length above max_out
 * sets *too_big and stops; the buffer grows as bytes arrive, so a lying
 * length costs no memory up front. */
static xfer read_reply(idx_sandbox *sb, size_t max_out, double deadline, unsigned char **out_res,
                       size_t *out_len, int *too_big, char *err)
{
    uint64_t n;
    unsigned char *res = NULL;
    size_t got = 0, cap = 0;
    *out_res = NULL;
    *out_len = 0;
    xfer x = recv_all(sb->fd, &n, sizeof n, deadline, err);
    if (x != XFER_OK) return x;
    if (n > max_out) {
        *too_big = 1;
        return XFER_OK;
    }
    while (got < n) {
        if (got == cap) {
            size_t ncap = ZK_MIN(cap ? cap * 2 : (size_t)64 << 10, (size_t)n);
            unsigned char *nr = zk_realloc(res, ncap);
            if (!nr) {
                zk_free(res);
                zk_fail(err, ZK_NOMEM, "out of memory");
                return XFER_NOMEM;
            }
            res = nr;
            cap = ncap;
        }
        ssize_t k = recv(sb->fd, res + got, cap - got, 0);
        if (k > 0) {
            got += (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int w = wait_fd(sb->fd, POLLIN, deadline);
            if (w > 0) continue;
            x = w == 0 ? XFER_TIMEOUT : XFER_FAILED;
            if (w < 0) zk_fail(err, ZK_IO, "sandbox poll: %s", strerror(errno));
        } else {
            x = XFER_GONE;
        }
        zk_free(res);
        return x;
    }
    *out_res = res;
    *out_len = got;
    return XFER_OK;
}

/* Keep the helper for the next document? Not if it died between
 * documents, has parsed many or has grown (leaks, fragmentation). */
static void helper_check(idx_sandbox *sb, size_t *out_rss)
{
    size_t vm, rss;
    int status;
    *out_rss = 0;
    if (!sb->pid) return;
    pid_t r = waitpid(sb->pid, &status, WNOHANG);
    if (r != 0) sb->pid = 0;   /* it ended between documents: reaped, or gone */
    if (r != 0 || sb->ndocs >= RECYCLE_DOCS) {
        helper_stop(sb);
        return;
    }
    proc_memory(sb->pid, &vm, &rss);
    if (!sb->spawn_rss) sb->spawn_rss = rss;
    if (rss > sb->spawn_rss + ((size_t)RECYCLE_GROWTH_MB << 20)) helper_stop(sb);
    else *out_rss = rss;
}

zk_rc idx_sandbox_new(const idx_sandbox_opts *o, idx_sandbox **out, char *err)
{
    idx_sandbox *sb = zk_calloc(1, sizeof *sb);
    if (!sb) return zk_fail(err, ZK_NOMEM, "out of memory");
    sb->o = *o;
    sb->fd = -1;
    *out = sb;
    return ZK_OK;
}

void idx_sandbox_free(idx_sandbox *sb)
{
    if (!sb) return;
    helper_stop(sb);
    zk_free(sb);
}

zk_rc idx_sandbox_run(idx_sandbox *sb, const char *name, const char *data, size_t len,
                      idx_parsed **out, char *err)
{
    const idx_sandbox_opts *o = &sb->o;
    zk_rc rc = ZK_OK;
    unsigned char *res = NULL;
    size_t rlen = 0, rss = 0;
    size_t max_out = o->max_output_mb > 0 ? (size_t)o->max_output_mb << 20 : ZK_BUF_DEFAULT_MAX;
    double deadline = o->wall_seconds > 0 ? zk_now() + o->wall_seconds : 0;
    int too_big = 0, status = 0, child_nomem = 0, reaped = 0;
    struct rusage ru;
    char sigbuf[32];

    *out = NULL;
    if (!o->enabled) return idx_parse(name, data, len, out, err);
    if (!data && len) return zk_fail(err, ZK_INVALID, "NULL data");

    helper_check(sb, &rss);
    if (!sb->pid) {
        if ((rc = helper_start(sb, err)) != ZK_OK) return rc;
        helper_check(sb, &rss);
    }
    xfer x = send_request(sb, name, data ? data : "", len, deadline, err);
    if (x == XFER_OK) x = read_reply(sb, max_out, deadline, &res, &rlen, &too_big, err);
    if (x == XFER_FAILED || x == XFER_NOMEM) {
        rc = x == XFER_NOMEM ? ZK_NOMEM : ZK_IO;   /* err filled */
        helper_stop(sb);
        goto out;
    }
    if (x == XFER_OK && !too_big) {
        /* a complete reply: the helper lives on unless it is out of step */
        int malformed = 0;
        rc = decode(res, rlen, out, &child_nomem, &malformed, err);
        sb->ndocs++;
        if (rc == ZK_OK || (!malformed && !child_nomem && rc != ZK_NOMEM)) goto out;
        helper_stop(sb);
        if (child_nomem)
            rc = o->memory_mb > 0
                     ? zk_fail(err, ZK_TOOBIG, "parser exceeded the memory limit (%ld MB)", o->memory_mb)
                     : zk_fail(err, ZK_TOOBIG, "parser ran out of memory");
        else if (malformed)
            rc = zk_fail(err, ZK_PARSE, "parser failed (bad result)");
        goto out;
    }
    if (too_big) {
        helper_stop(sb);
        rc = zk_fail(err, ZK_TOOBIG, "parser output exceeded the limit (%ld MB)", (long)(max_out >> 20));
        goto out;
    }
    int timed_out = x == XFER_TIMEOUT;
    /* the helper ended (or must end) during this document: find out how */
    close(sb->fd);
    sb->fd = -1;
    if (timed_out) kill(sb->pid, SIGKILL);
    memset(&ru, 0, sizeof ru);
    /* a child that closed the socket gets a moment to exit before SIGKILL */
    reaped = reap(sb->pid, deadline > 0 ? ZK_MAX(deadline, zk_now() + 1.0) : 0, &status, &ru);
    sb->pid = 0;
    if (reaped == 1) timed_out = 1;
    /* ru_maxrss (KiB) is the peak of this document (the child resets it) */
    int near_mem = o->memory_mb > 0 && reaped == 0 &&
                   ((size_t)ru.ru_maxrss << 10) >= rss + len + ((size_t)o->memory_mb << 20) / 4 * 3;
    if (timed_out) {
        rc = zk_fail(err, ZK_TOOBIG, "parser exceeded the wall-clock limit (%d s)", o->wall_seconds);
    } else if (reaped == 0 && WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        if (o->cpu_seconds > 0 && (sig == SIGPROF || sig == SIGXCPU))
            rc = zk_fail(err, ZK_TOOBIG, "parser exceeded the CPU-time limit (%d s)", o->cpu_seconds);
        else if (near_mem)
            rc = zk_fail(err, ZK_TOOBIG, "parser exceeded the memory limit (%ld MB)", o->memory_mb);
        else
            rc = zk_fail(err, ZK_PARSE, "parser crashed (signal %d: %s)", sig, signame(sig, sigbuf, sizeof sigbuf));
    } else if (reaped == 0 && WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        if (near_mem)
            rc = zk_fail(err, ZK_TOOBIG, "parser exceeded the memory limit (%ld MB)", o->memory_mb);
        else
            rc = zk_fail(err, ZK_PARSE, "parser crashed (exit status %d)", WEXITSTATUS(status));
    } else {
        /* exited 0 or status lost, without a complete reply */
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

zk_rc idx_sandbox_parse(const idx_sandbox_opts *o, const char *name, const char *data, size_t len,
                        idx_parsed **out, char *err)
{
    idx_sandbox *sb = NULL;
    *out = NULL;
    if (!o->enabled) return idx_parse(name, data, len, out, err);
    zk_rc rc = idx_sandbox_new(o, &sb, err);
    if (rc == ZK_OK) rc = idx_sandbox_run(sb, name, data, len, out, err);
    idx_sandbox_free(sb);
    return rc;
}
