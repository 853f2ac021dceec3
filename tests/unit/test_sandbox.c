/* test_sandbox.c — idx_sandbox_parse() and long-lived helpers
 * (idx_sandbox_run): documents round-trip through the child unchanged
 * (titles, headings, multi-byte text, 10 MB), parser errors pass through,
 * and a child that crashes, aborts, hangs, spins, allocates without end,
 * floods or garbles its result gives the right error within the limits,
 * leaves no zombie and does not hurt the parent; a helper parses document
 * after document with the limits applied to each, and is replaced after
 * any misbehaviour. Misbehaviour is triggered with the ZK_SANDBOX_TEST hook
 * documented in indexer/sandbox.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

#include "indexer/sandbox.h"

/* Under AddressSanitizer a child that hits RLIMIT_AS must see malloc
 * return NULL (as without ASan) instead of ASan's out-of-memory death,
 * which can hang in its own report. Unused in normal builds. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

static idx_sandbox_opts small_limits(void)
{
    idx_sandbox_opts o = {.enabled = 1, .cpu_seconds = 1, .memory_mb = 64, .wall_seconds = 1,
                          .max_output_mb = 64};
    return o;
}

static void assert_no_children(void)
{
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void assert_same_doc(const idx_parsed *a, const idx_parsed *b)
{
    assert_string_equal(a->title, b->title);
    assert_string_equal(a->format, b->format);
    assert_string_equal(a->charset, b->charset);
    assert_int_equal(a->nblocks, b->nblocks);
    for (size_t i = 0; i < a->nblocks; i++) {
        assert_int_equal(a->blocks[i].len, b->blocks[i].len);
        assert_memory_equal(a->blocks[i].text, b->blocks[i].text, a->blocks[i].len);
        assert_int_equal(b->blocks[i].text[b->blocks[i].len], '\0');
        if (a->blocks[i].heading) assert_string_equal(a->blocks[i].heading, b->blocks[i].heading);
        else assert_null(b->blocks[i].heading);
        assert_int_equal(a->blocks[i].page, b->blocks[i].page);
    }
}

/* Parse in-process and through the sandbox; both must agree. */
static void roundtrip(const char *name, const char *data, size_t len, size_t min_blocks)
{
    idx_sandbox_opts o = small_limits();
    o.wall_seconds = 20;
    o.cpu_seconds = 20;
    o.memory_mb = 512;
    idx_parsed *want = NULL, *got = NULL;
    char err[ZK_ERRLEN] = "";
    assert_int_equal(idx_parse(name, data, len, &want, err), ZK_OK);
    zk_rc rc = idx_sandbox_parse(&o, name, data, len, &got, err);
    if (rc != ZK_OK) fprintf(stderr, "sandbox: %s\n", err);
    assert_int_equal(rc, ZK_OK);
    assert_non_null(got);
    assert_true(got->nblocks >= min_blocks);
    assert_same_doc(want, got);
    idx_parsed_free(want);
    idx_parsed_free(got);
    assert_no_children();
}

static void test_roundtrip_markdown(void **state)
{
    (void)state;
    const char *md = "# 安装指南\n\nZhiku indexes documents — café, naïve, 日本語テキスト, emoji 🐘.\n\n"
                     "## Debian\n\nRun `make` then `make test`.\n\n### 细节\n\n大象有很长的鼻子。\n\n"
                     "## Other\n\nLast paragraph.\n";
    roundtrip("guide.md", md, strlen(md), 3);
}

static void test_roundtrip_html(void **state)
{
    (void)state;
    const char *html = "<!doctype html><html><head><title>Hedgehog Facts</title></head><body>"
                       "<h1>Hedgehogs</h1><p>They curl into spiny balls.</p><h2>Diet</h2>"
                       "<p>Insects, worms — и жуки.</p><table><tr><td>a</td><td>b</td></tr></table>"
                       "</body></html>";
    roundtrip("facts.html", html, strlen(html), 2);
}

static void test_roundtrip_large(void **state)
{
    (void)state;
    size_t cap = 10u << 20, len = 0;
    char *s = malloc(cap + 64);
    assert_non_null(s);
    for (unsigned i = 0; len < cap; i++) {
        int n = snprintf(s + len, cap + 64 - len,
                         "Paragraph %u about elephants, 大象 and ünïcödé text.%s", i,
                         i % 7 == 6 ? "\n\n" : " ");
        len += (size_t)n;
    }
    roundtrip("big.txt", s, len, 1);
    free(s);
}

static void test_empty_document(void **state)
{
    (void)state;
    roundtrip("empty.txt", "", 0, 0);
}

static void test_disabled_is_in_process(void **state)
{
    (void)state;
    idx_sandbox_opts o = small_limits();
    o.enabled = 0;
    setenv("ZK_SANDBOX_TEST", "crash", 1);   /* the hook lives in the child only */
    idx_parsed *d = NULL;
    char err[ZK_ERRLEN] = "";
    zk_rc rc = idx_sandbox_parse(&o, "a.txt", "hello world", 11, &d, err);
    unsetenv("ZK_SANDBOX_TEST");
    assert_int_equal(rc, ZK_OK);
    assert_int_equal(d->nblocks, 1);
    assert_string_equal(d->blocks[0].text, "hello world");
    idx_parsed_free(d);
}

static void test_parser_error_passes_through(void **state)
{
    (void)state;
    idx_sandbox_opts o = small_limits();
    const char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    idx_parsed *d = (idx_parsed *)&o;   /* must be reset to NULL */
    char want[ZK_ERRLEN] = "", err[ZK_ERRLEN] = "";
    assert_int_equal(idx_parse("x.png", png, sizeof png - 1, &d, want), ZK_UNSUPPORTED);
    d = (idx_parsed *)&o;
    assert_int_equal(idx_sandbox_parse(&o, "x.png", png, sizeof png - 1, &d, err), ZK_UNSUPPORTED);
    assert_null(d);
    assert_string_equal(err, want);
    assert_no_children();
}

/* Run with the hook set; return the rc, err in err, elapsed seconds. */
static zk_rc hostile(const char *hook, const idx_sandbox_opts *o, char *err, double *elapsed)
{
    idx_parsed *d = NULL;
    const char *text = "# Title\n\nSome text.\n";
    setenv("ZK_SANDBOX_TEST", hook, 1);
    double t0 = zk_now();
    zk_rc rc = idx_sandbox_parse(o, "doc.md", text, strlen(text), &d, err);
    *elapsed = zk_now() - t0;
    unsetenv("ZK_SANDBOX_TEST");
    fprintf(stderr, "   %-6s -> %s: %s (%.2f s)\n", hook, zk_errname(rc), err, *elapsed);
    assert_null(d);
    assert_no_children();
    return rc;
}

/* Crashes, not memory: a death with the helper's peak RSS within a
 * quarter of memory_mb counts as out of memory, and under ASan the
 * helper's own growth sometimes got there with 64 MB (a crash read as
 * "exceeded the memory limit" in CI runs of test_crash and test_eintr). */
static idx_sandbox_opts crash_limits(void)
{
    idx_sandbox_opts o = small_limits();
    o.memory_mb = 1024;
    return o;
}

static void test_crash(void **state)
{
    (void)state;
    idx_sandbox_opts o = crash_limits();
    char err[ZK_ERRLEN];
    double t;
    assert_int_equal(hostile("crash", &o, err, &t), ZK_PARSE);
    assert_string_equal(err, "parser crashed (signal 11: SIGSEGV)");
    assert_int_equal(hostile("abort", &o, err, &t), ZK_PARSE);
    assert_string_equal(err, "parser crashed (signal 6: SIGABRT)");
    assert_int_equal(hostile("exit", &o, err, &t), ZK_PARSE);
    assert_string_equal(err, "parser crashed (exit status 7)");
}

static void test_wall_clock_limit(void **state)
{
    (void)state;
    idx_sandbox_opts o = small_limits();
    char err[ZK_ERRLEN];
    double t;
    assert_int_equal(hostile("hang", &o, err, &t), ZK_TOOBIG);
    assert_string_equal(err, "parser exceeded the wall-clock limit (1 s)");
    assert_true(t >= 0.9 && t < 2.5);
}

static void test_cpu_limit(void **state)
{
    (void)state;
    idx_sandbox_opts o = small_limits();
    o.wall_seconds = 10;
    char err[ZK_ERRLEN];
    double t;
    assert_int_equal(hostile("spin", &o, err, &t), ZK_TOOBIG);
    assert_string_equal(err, "parser exceeded the CPU-time limit (1 s)");
    assert_true(t < 3.5);
}

static void test_memory_limit(void **state)
{
    (void)state;
    idx_sandbox_opts o = small_limits();
    o.wall_seconds = 10;
    o.cpu_seconds = 10;
    char err[ZK_ERRLEN];
    double t;
    assert_int_equal(hostile("alloc", &o, err, &t), ZK_TOOBIG);
    assert_string_equal(err, "parser exceeded the memory limit (64 MB)");
}

static void test_bad_result(void **state)
{
    (void)state;
    idx_sandbox_opts o = small_limits();
    char err[ZK_ERRLEN];
    double t;
    assert_int_equal(hostile("garble", &o, err, &t), ZK_PARSE);
    assert_string_equal(err, "parser failed (bad result)");
}

static void test_output_limit(void **state)
{
    (void)state;
    idx_sandbox_opts o = small_limits();
    o.max_output_mb = 1;
    char err[ZK_ERRLEN];
    double t;
    assert_int_equal(hostile("flood", &o, err, &t), ZK_TOOBIG);
    assert_string_equal(err, "parser output exceeded the limit (1 MB)");
    assert_true(t < 1.5);
}

/* A timer interrupting the parent's poll/read/wait (no SA_RESTART). */
static volatile sig_atomic_t ticks;
static void on_alarm(int sig) { (void)sig; ticks++; }

static void test_eintr(void **state)
{
    (void)state;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, &old);
    struct itimerval it = {{0, 2000}, {0, 2000}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &it, NULL);
    size_t len = 3u << 20;
    char *s = malloc(len);
    assert_non_null(s);
    for (size_t i = 0; i < len; i++) s[i] = (i % 61 == 60) ? '\n' : (char)('a' + i % 26);
    ticks = 0;
    roundtrip("eintr.txt", s, len, 1);
    free(s);
    char err[ZK_ERRLEN];
    double t;
    idx_sandbox_opts o = crash_limits();
    zk_rc rc = hostile("crash", &o, err, &t);
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old, NULL);
    assert_int_equal(rc, ZK_PARSE);
    assert_true(ticks > 0);
}

static void test_opts_from_config(void **state)
{
    (void)state;
    idx_sandbox_opts o;
    idx_sandbox_opts_init(&o, NULL);
    assert_int_equal(o.enabled, 1);
    assert_int_equal(o.cpu_seconds, 60);
    assert_int_equal(o.memory_mb, 2048);
    assert_int_equal(o.wall_seconds, 120);
    assert_int_equal(o.max_output_mb, 256);
    setenv("ZHIKU_SANDBOX_WALL_SECONDS", "5", 1);
    setenv("ZHIKU_SANDBOX_ENABLED", "false", 1);
    idx_sandbox_opts_init(&o, NULL);
    unsetenv("ZHIKU_SANDBOX_WALL_SECONDS");
    unsetenv("ZHIKU_SANDBOX_ENABLED");
    assert_int_equal(o.wall_seconds, 5);
    assert_int_equal(o.enabled, 0);
}

/* ---- long-lived helpers -------------------------------------------------- */

/* Run one document through sb with hook set (NULL: none). */
static zk_rc run_hook(idx_sandbox *sb, const char *hook, char *err)
{
    idx_parsed *d = NULL;
    const char *text = "# Title\n\nSome text.\n";
    if (hook) setenv("ZK_SANDBOX_TEST", hook, 1);
    err[0] = '\0';
    zk_rc rc = idx_sandbox_run(sb, "doc.md", text, strlen(text), &d, err);
    unsetenv("ZK_SANDBOX_TEST");
    if (rc == ZK_OK) {
        assert_non_null(d);
        assert_int_equal(d->nblocks, 1);
        assert_non_null(strstr(d->blocks[0].text, "Some text."));
        assert_string_equal(d->title, "Title");
    } else {
        assert_null(d);
    }
    idx_parsed_free(d);
    return rc;
}

/* The helper's pid, from the "pid" hook. */
static long helper_pid(idx_sandbox *sb)
{
    char err[ZK_ERRLEN];
    assert_int_equal(run_hook(sb, "pid", err), ZK_INVALID);
    assert_memory_equal(err, "helper ", 7);
    return atol(err + 7);
}

static void test_helper_reused(void **state)
{
    (void)state;
    idx_sandbox_opts o = small_limits();
    idx_sandbox *sb = NULL;
    char err[ZK_ERRLEN];
    assert_int_equal(idx_sandbox_new(&o, &sb, err), ZK_OK);
    long pid = helper_pid(sb);
    assert_true(pid > 0);
    /* the helper is this binary exec'd afresh, not a fork of this threaded
     * process (no inherited locks; indexer/sandbox.c) */
    char path[64], cmd[64] = "";
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    FILE *cf = fopen(path, "r");
    assert_non_null(cf);
    assert_non_null(fgets(cmd, sizeof cmd, cf));
    fclose(cf);
    assert_string_equal(cmd, "zhiku-parser");
    for (int i = 0; i < 50; i++) assert_int_equal(run_hook(sb, NULL, err), ZK_OK);
    /* a parser error is the document's answer, not the helper's fault */
    const char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    idx_parsed *d = NULL;
    assert_int_equal(idx_sandbox_run(sb, "x.png", png, sizeof png - 1, &d, err), ZK_UNSUPPORTED);
    assert_null(d);
    assert_int_equal(helper_pid(sb), pid);
    /* documents of any size, one after another */
    size_t len = 2u << 20;
    char *big = malloc(len + 1);
    assert_non_null(big);
    for (size_t i = 0; i < len; i++) big[i] = (i % 80 == 79) ? '\n' : (char)('a' + i % 23);
    big[len] = '\0';
    assert_int_equal(idx_sandbox_run(sb, "big.txt", big, len, &d, err), ZK_OK);
    assert_int_equal(d->blocks[0].len + d->blocks[d->nblocks - 1].len > 0, 1);
    idx_parsed_free(d);
    free(big);
    assert_int_equal(helper_pid(sb), pid);
    idx_sandbox_free(sb);
    assert_no_children();
}

/* Each document gets the whole CPU-time limit: three documents of 0.4 s in
 * one helper pass a 1 s limit; a spinning one still fails. */
static void test_helper_cpu_limit_per_document(void **state)
{
    (void)state;
    idx_sandbox_opts o = small_limits();
    o.wall_seconds = 10;
    idx_sandbox *sb = NULL;
    char err[ZK_ERRLEN];
    assert_int_equal(idx_sandbox_new(&o, &sb, err), ZK_OK);
    long pid = helper_pid(sb);
    for (int i = 0; i < 3; i++) {
        zk_rc rc = run_hook(sb, "busy", err);
        if (rc != ZK_OK) fprintf(stderr, "busy %d: %s\n", i, err);
        assert_int_equal(rc, ZK_OK);
    }
    assert_int_equal(helper_pid(sb), pid);
    assert_int_equal(run_hook(sb, "spin", err), ZK_TOOBIG);
    assert_string_equal(err, "parser exceeded the CPU-time limit (1 s)");
    assert_int_equal(run_hook(sb, NULL, err), ZK_OK);
    idx_sandbox_free(sb);
    assert_no_children();
}

/* Memory: each document gets memory_mb above what the helper maps. */
static void test_helper_memory_limit_per_document(void **state)
{
    (void)state;
    idx_sandbox_opts o = small_limits();
    o.wall_seconds = 10;
    o.cpu_seconds = 10;
    o.memory_mb = 16;
    idx_sandbox *sb = NULL;
    char err[ZK_ERRLEN];
    assert_int_equal(idx_sandbox_new(&o, &sb, err), ZK_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(run_hook(sb, "alloc", err), ZK_TOOBIG);
        assert_string_equal(err, "parser exceeded the memory limit (16 MB)");
        assert_int_equal(run_hook(sb, NULL, err), ZK_OK);
    }
    /* a document larger than the limit still gets in (the limit is on top) */
    size_t len = 24u << 20;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, 'x', len);
    for (size_t i = 99; i < len; i += 100) big[i] = ' ';
    idx_parsed *d = NULL;
    zk_rc rc = idx_sandbox_run(sb, "big.txt", big, len, &d, err);
    free(big);
    if (rc != ZK_OK) fprintf(stderr, "big: %s\n", err);
    /* the parser's own copies may need more than 16 MB: either outcome,
     * but a clear one, and the helper carries on */
    assert_true(rc == ZK_OK || (rc == ZK_TOOBIG && strstr(err, "memory limit")));
    idx_parsed_free(d);
    assert_int_equal(run_hook(sb, NULL, err), ZK_OK);
    idx_sandbox_free(sb);
    assert_no_children();
}

/* After any misbehaviour the next document gets a fresh helper. */
static void test_helper_replaced_after_failure(void **state)
{
    (void)state;
    static const char *const hooks[] = {"crash", "abort", "exit", "hang", "garble", "flood", "alloc"};
    idx_sandbox_opts o = small_limits();
    o.max_output_mb = 1;
    idx_sandbox *sb = NULL;
    char err[ZK_ERRLEN];
    assert_int_equal(idx_sandbox_new(&o, &sb, err), ZK_OK);
    long pid = helper_pid(sb);
    for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++) {
        zk_rc rc = run_hook(sb, hooks[i], err);
        fprintf(stderr, "   %-6s -> %s: %s\n", hooks[i], zk_errname(rc), err);
        assert_true(rc == ZK_PARSE || rc == ZK_TOOBIG);
        assert_int_equal(run_hook(sb, NULL, err), ZK_OK);
        long now = helper_pid(sb);
        assert_int_not_equal(now, pid);
        pid = now;
    }
    idx_sandbox_free(sb);
    assert_no_children();
}

/* A helper killed between documents (OOM killer, an admin) is replaced
 * without failing the next document. */
static void test_helper_dies_between_documents(void **state)
{
    (void)state;
    idx_sandbox_opts o = small_limits();
    idx_sandbox *sb = NULL;
    char err[ZK_ERRLEN];
    assert_int_equal(idx_sandbox_new(&o, &sb, err), ZK_OK);
    long pid = helper_pid(sb);
    assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
    for (int i = 0; i < 100 && kill((pid_t)pid, 0) == 0; i++) {
        /* a zombie until reaped: wait for it to be one */
        char path[64], st = 0;
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (f && fscanf(f, "%*d %*s %c", &st) == 1 && st == 'Z') { fclose(f); break; }
        if (f) fclose(f);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(run_hook(sb, NULL, err), ZK_OK);
    assert_int_not_equal(helper_pid(sb), pid);
    idx_sandbox_free(sb);
    assert_no_children();
}

int main(void)
{
    unsetenv("ZK_SANDBOX_TEST");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_markdown),
        cmocka_unit_test(test_roundtrip_html),
        cmocka_unit_test(test_roundtrip_large),
        cmocka_unit_test(test_empty_document),
        cmocka_unit_test(test_disabled_is_in_process),
        cmocka_unit_test(test_parser_error_passes_through),
        cmocka_unit_test(test_crash),
        cmocka_unit_test(test_wall_clock_limit),
        cmocka_unit_test(test_cpu_limit),
        cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_bad_result),
        cmocka_unit_test(test_output_limit),
        cmocka_unit_test(test_eintr),
        cmocka_unit_test(test_opts_from_config),
        cmocka_unit_test(test_helper_reused),
        cmocka_unit_test(test_helper_cpu_limit_per_document),
        cmocka_unit_test(test_helper_memory_limit_per_document),
        cmocka_unit_test(test_helper_replaced_after_failure),
        cmocka_unit_test(test_helper_dies_between_documents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
