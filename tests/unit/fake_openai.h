/* fake_openai.h — for unit tests that talk to tests/fake_openai/server.py:
 * start it on a free loopback port (group setup), call its endpoints, and
 * stop it (group teardown). Header-only test helper; include it once, after
 * cmocka. A missing python3 leaves srv_port at 0 and the tests skip. */
#ifndef TEST_FAKE_OPENAI_H
#define TEST_FAKE_OPENAI_H

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "buf.h"

static pid_t srv_pid;
static int srv_port;
static char srv_dir[256];

static size_t fake_collect(char *p, size_t sz, size_t nm, void *ud)
{
    return buf_append(ud, p, sz * nm) == ZK_OK ? sz * nm : 0;
}

/* POST (body != NULL) or GET path on the fake server; returns parsed JSON. */
static json_t *srv_call(const char *path, const char *body)
{
    char url[256];
    zk_buf b;
    buf_init(&b, 1 << 20);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", srv_port, path);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fake_collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    CURLcode r = curl_easy_perform(h);
    curl_easy_cleanup(h);
    json_t *j = r == CURLE_OK ? json_loadb(buf_cstr(&b), b.len, 0, NULL) : NULL;
    buf_free(&b);
    return j;
}

static void control(const char *json)
{
    json_t *j = srv_call("/_control", json);
    assert_non_null(j);
    json_decref(j);
}

/* Start the fake server; 0 on success, -1 when python3 or the script is missing. */
static int fake_start(const char *name)
{
    const char *root = getenv("ZHIKU_ROOT");
    char script[512], portfile[300];
    snprintf(script, sizeof script, "%s/tests/fake_openai/server.py", root ? root : ".");
    if (access(script, R_OK) != 0) return -1;
    if (system("python3 -c 'import http.server' >/dev/null 2>&1") != 0) return -1;
    snprintf(srv_dir, sizeof srv_dir, "/tmp/zk_%s_XXXXXX", name);
    if (!mkdtemp(srv_dir)) return -1;
    snprintf(portfile, sizeof portfile, "%s/port", srv_dir);
    srv_pid = fork();
    if (srv_pid < 0) return -1;
    if (srv_pid == 0) {
        execlp("python3", "python3", script, "--port", "0", "--portfile", portfile, "--dim", "64", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {   /* up to 5 s */
        FILE *f = fopen(portfile, "r");
        if (f) {
            int ok = fscanf(f, "%d", &srv_port) == 1;
            fclose(f);
            if (ok && srv_port > 0) return 0;
        }
        usleep(50000);
    }
    return -1;
}

/* cmocka group setup/teardown bodies. */
static void fake_setup(const char *name)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (fake_start(name) != 0) {
        fprintf(stderr, "test_%s: python3 or the fake server is unavailable; skipping\n", name);
        srv_port = 0;
    }
}

static void fake_teardown(void)
{
    if (srv_pid > 0) {
        kill(srv_pid, SIGTERM);
        waitpid(srv_pid, NULL, 0);
    }
    char cmd[300];
    if (srv_dir[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", srv_dir);
        if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", srv_dir);
    }
    curl_global_cleanup();
}

#endif
