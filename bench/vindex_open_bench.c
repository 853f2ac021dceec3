/* vindex_open_bench.c — start-up cost of the vector index: times
 * ret_vindex_open() on an existing snapshot directory (page cache warm, as
 * on a service restart), then the first search. With "v2" it first rewrites
 * a copy of the snapshot in the previous format (SHA-256 over the whole
 * payload, read through stdio) to compare against in the same run. Make a
 * large snapshot with `vindex_scale_bench N Q fp16 text,once,keep`; then:
 *   build/bench/vindex_open_bench DIR [RUNS=5] [v2,resave]
 * ("resave": first open and save once, to rewrite an older snapshot). 
 * Figures go to docs/PERFORMANCE.md ("Scaling the vector index"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "retrieval/vindex.h"
#include "retrieval/vindex_int.h"

#define DIM 512
#define HDR_LEN 80
#define HASHED 48

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Copy src/index.zkv to dst/index.zkv with a v2 header (SHA-256). */
static int make_v2(const char *src, const char *dst)
{
    char in[700], out[700], hex[65];
    snprintf(in, sizeof in, "%s/index.zkv", src);
    snprintf(out, sizeof out, "%s/index.zkv", dst);
    FILE *f = fopen(in, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(size);
    if (!buf || fread(buf, 1, size, f) != size) return fclose(f), free(buf), -1;
    fclose(f);
    buf[8] = 2;
    /* SHA-256 of the 48 header bytes then the payload, in one buffer */
    memmove(buf + HASHED, buf + HDR_LEN, size - HDR_LEN);
    zk_sha256_hex(buf, size - (HDR_LEN - HASHED), hex);
    memmove(buf + HDR_LEN, buf + HASHED, size - HDR_LEN);
    for (int i = 0; i < 32; i++) {
        unsigned int byte;
        sscanf(hex + 2 * i, "%2x", &byte);
        buf[HASHED + i] = (unsigned char)byte;
    }
    mkdir(dst, 0700);
    f = fopen(out, "wb");
    int ok = f && fwrite(buf, 1, size, f) == size;
    if (f && fclose(f) != 0) ok = 0;
    free(buf);
    return ok ? 0 : -1;
}

static void time_open(const char *dir, int runs, const char *label)
{
    char err[ZK_ERRLEN];
    float q[DIM] = {0};
    q[0] = 1;
    for (int r = 0; r < runs; r++) {
        ret_vindex *vi = NULL;
        int rebuilt = 0;
        double t0 = now_ms();
        if (ret_vindex_open(dir, DIM, &vi, &rebuilt, err) != ZK_OK) {
            fprintf(stderr, "open: %s\n", err);
            exit(1);
        }
        double t1 = now_ms();
        int64_t ids[10];
        int n = 0;
        if (ret_vindex_search(vi, q, 10, ids, NULL, &n, err) != ZK_OK) {
            fprintf(stderr, "search: %s\n", err);
            exit(1);
        }
        printf("  %s: open %.0f ms (%lld vectors, kind %d%s), first search %.1f ms\n", label, t1 - t0,
               (long long)ret_vindex_count(vi), ret__vindex_kind(vi, NULL), rebuilt ? ", REBUILT" : "",
               now_ms() - t1);
        ret_vindex_free(vi);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [RUNS=5] [v2,resave]\n", argv[0]);
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    setvbuf(stdout, NULL, _IOLBF, 0);
    ret_vindex_auto_builds(0);
    zk_log_set_level(ZK_LOG_WARN);
    if (argc > 3 && strstr(argv[3], "resave")) {   /* rewrite in this build's format first */
        ret_vindex *vi = NULL;
        char err[ZK_ERRLEN];
        if (ret_vindex_open(argv[1], DIM, &vi, NULL, err) != ZK_OK || ret_vindex_save(vi, err) != ZK_OK) {
            fprintf(stderr, "resave: %s\n", err);
            return 1;
        }
        ret_vindex_free(vi);
    }
    time_open(argv[1], runs, "v3 (CRC-32C, mapped)");
    if (argc > 3 && strstr(argv[3], "v2")) {
        char dst[500];
        snprintf(dst, sizeof dst, "%s.v2", argv[1]);
        if (make_v2(argv[1], dst) != 0) {
            fprintf(stderr, "could not write %s\n", dst);
            return 1;
        }
        time_open(dst, runs, "v2 (SHA-256)");
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dst);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dst);
    }
    return 0;
}
