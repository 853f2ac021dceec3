/* vindex_scale_bench.c — measures how the vector index (retrieval/vindex.c)
 * scales: N clustered unit vectors are added to an exact index and to the
 * auto-sized one (flat, then IVF built in the background), and it reports
 * add rate, build time, search p50/p99 and recall@10 against brute force per
 * nprobe, ACL-filtered search (1% and 10% allowed), memory (RSS delta) and
 * snapshot save/open time. Figures go to docs/PERFORMANCE.md. Run by
 * `make bench` (bench/run.sh); by hand:
 *   build/bench/vindex_scale_bench [N=100000] [QUERIES=50] [sq8|flat|default] [OPTS]
 * OPTS may contain "noflat" (skip the exact baseline) and "nocold" (skip
 * the cold build at N). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "retrieval/vindex.h"
#include "retrieval/vindex_int.h"

#define K 10
#define DIM 512
#define BATCH 10000

static uint64_t rng = 0x243f6a8885a308d3ULL;
static char errbuf[ZK_ERRLEN];

static double rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (double)((rng * 0x2545f4914f6cdd1dULL) >> 11) / 9007199254740992.0;
}

/* Cheap approximately normal noise (sum of 4 uniforms), fast enough for 1M
 * x 512 draws. */
static float noise(void)
{
    return (float)((rnd() + rnd() + rnd() + rnd() - 2.0) * 1.7320508);
}

static void normalize(float *v, int dim)
{
    double n = 0;
    for (int i = 0; i < dim; i++) n += (double)v[i] * v[i];
    n = sqrt(n) + 1e-30;
    for (int i = 0; i < dim; i++) v[i] = (float)(v[i] / n);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long rss_mb(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    fclose(f);
    return rss * sysconf(_SC_PAGESIZE) / (1 << 20);
}

static float dot(const float *a, const float *b)
{
    float acc[8] = {0};
    for (int i = 0; i < DIM; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* Brute-force top K ids of q among rows whose id is allowed (mask NULL: all). */
static void brute(const float *data, size_t n, const float *q, const unsigned char *mask, int64_t *out)
{
    float best[K];
    int64_t id[K];
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        float s = dot(data + i * DIM, q);
        if (m == K && s <= best[K - 1]) continue;
        int j = m < K ? m++ : K - 1;
        while (j > 0 && best[j - 1] < s) best[j] = best[j - 1], id[j] = id[j - 1], j--;
        best[j] = s, id[j] = (int64_t)i;
    }
    for (int i = 0; i < K; i++) out[i] = i < m ? id[i] : -1;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double recall(const int64_t *truth, const int64_t *got, int ngot)
{
    int hit = 0, want = 0;
    for (int i = 0; i < K; i++) {
        if (truth[i] < 0) continue;
        want++;
        for (int j = 0; j < ngot; j++) hit += got[j] == truth[i];
    }
    return want ? (double)hit / want : 1.0;
}

/* p50/p99 latency and mean recall of nq searches (allowed NULL: unfiltered). */
static void run_queries(const ret_vindex *vi, const float *qs, int nq, const int64_t *truth,
                        const int64_t *allowed, size_t nallowed, int via, const char *label)
{
    double *t = malloc((size_t)nq * sizeof *t), rsum = 0;
    for (int q = 0; q < nq; q++) {
        int64_t ids[K];
        int n = 0;
        double t0 = now_ms();
        zk_rc rc = allowed ? ret__vindex_search_allowed_via(vi, via, qs + (size_t)q * DIM, K, allowed, nallowed,
                                                            ids, NULL, &n, errbuf)
                           : ret_vindex_search(vi, qs + (size_t)q * DIM, K, ids, NULL, &n, errbuf);
        t[q] = now_ms() - t0;
        if (rc != ZK_OK) { fprintf(stderr, "search: %s\n", errbuf); exit(1); }
        rsum += recall(truth + (size_t)q * K, ids, n);
    }
    qsort(t, (size_t)nq, sizeof *t, cmp_d);
    printf("  %-34s p50 %8.3f ms  p99 %8.3f ms  recall@10 %.3f\n", label, t[nq / 2],
           t[(nq * 99) / 100 < nq ? (nq * 99) / 100 : nq - 1], rsum / nq);
    free(t);
}

static ret_vindex *open_or_die(const char *dir)
{
    ret_vindex *vi = NULL;
    if (ret_vindex_open(dir, DIM, &vi, NULL, errbuf) != ZK_OK) { fprintf(stderr, "open: %s\n", errbuf); exit(1); }
    return vi;
}

/* Add rows [from, to) in batches; returns wall ms. */
static double add_all(ret_vindex *vi, const float *data, const int64_t *ids, size_t from, size_t to)
{
    double t0 = now_ms();
    for (size_t i = from; i < to; i += BATCH) {
        size_t m = to - i < BATCH ? to - i : BATCH;
        if (ret_vindex_add(vi, m, ids + i, data + i * DIM, errbuf) != ZK_OK) {
            fprintf(stderr, "add: %s\n", errbuf);
            exit(1);
        }
    }
    return now_ms() - t0;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 100000;
    int nq = argc > 2 ? atoi(argv[2]) : 50;
    /* IVF code: "sq8", "flat", or anything else for vindex.c's default */
    int code = argc > 3 && strcmp(argv[3], "sq8") == 0 ? 1 : argc > 3 && strcmp(argv[3], "flat") == 0 ? 2 : 0;
    int flatbase = !(argc > 4 && strstr(argv[4], "noflat"));
    int coldbuild = !(argc > 4 && strstr(argv[4], "nocold"));
    size_t nclusters = n / 100 > 100 ? n / 100 : 100;
    char dir[] = "/tmp/zk_vscale_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("vector index scale: N=%zu dim=%d queries=%d clusters=%zu IVF code=%s\n", n, DIM, nq, nclusters,
           code == 1 ? "SQ8" : code == 2 ? "Flat" : "default");

    /* clustered data: unit centres plus noise of comparable norm, so a
     * point's neighbours are mostly, not only, in its own cluster */
    double t0 = now_ms();
    float *centres = malloc(nclusters * DIM * sizeof *centres);
    float *data = malloc(n * DIM * sizeof *data), *qs = malloc((size_t)nq * DIM * sizeof *qs);
    int64_t *ids = malloc((n + BATCH) * sizeof *ids);
    for (size_t c = 0; c < nclusters; c++) {
        for (int j = 0; j < DIM; j++) centres[c * DIM + j] = noise();
        normalize(centres + c * DIM, DIM);
    }
    for (size_t i = 0; i < n; i++) {
        const float *c = centres + (size_t)(rnd() * nclusters) * DIM;
        for (int j = 0; j < DIM; j++) data[i * DIM + j] = c[j] + 0.045f * noise();
        normalize(data + i * DIM, DIM);
        ids[i] = (int64_t)i;
    }
    for (int q = 0; q < nq; q++) {
        const float *c = centres + (size_t)(rnd() * nclusters) * DIM;
        for (int j = 0; j < DIM; j++) qs[q * DIM + j] = c[j] + 0.045f * noise();
        normalize(qs + q * DIM, DIM);
    }
    /* ground truth: unfiltered, 1% and 10% allowed */
    unsigned char *mask1 = calloc(n, 1), *mask10 = calloc(n, 1);
    int64_t *allow1 = malloc(n * sizeof *allow1), *allow10 = malloc(n * sizeof *allow10);
    size_t na1 = 0, na10 = 0;
    for (size_t i = 0; i < n; i++) {
        double r = rnd();
        if (r < 0.01) mask1[i] = 1, allow1[na1++] = (int64_t)i;
        if (r < 0.10) mask10[i] = 1, allow10[na10++] = (int64_t)i;
    }
    int64_t *truth = malloc((size_t)nq * K * sizeof *truth), *truth1 = malloc((size_t)nq * K * sizeof *truth1),
            *truth10 = malloc((size_t)nq * K * sizeof *truth10);
    for (int q = 0; q < nq; q++) {
        brute(data, n, qs + (size_t)q * DIM, NULL, truth + (size_t)q * K);
        brute(data, n, qs + (size_t)q * DIM, mask1, truth1 + (size_t)q * K);
        brute(data, n, qs + (size_t)q * DIM, mask10, truth10 + (size_t)q * K);
    }
    printf("  data + ground truth                 %.1f s\n", (now_ms() - t0) / 1e3);
    ret__vindex_tuning tune = {0};
    tune.sq8 = code;

    if (flatbase) {
        /* exact baseline */
        long r0 = rss_mb();
        char fdir[512];
        snprintf(fdir, sizeof fdir, "%s/flat", dir);
        ret_vindex *flat = open_or_die(fdir);
        ret__vindex_tuning ft = tune;
        ft.ivf_threshold = INT64_MAX;
        ret__vindex_tune(flat, &ft);
        double ms = add_all(flat, data, ids, 0, n);
        printf("exact (IDMap2,Flat): add %.0f vectors/s, RSS +%ld MB\n", n / (ms / 1e3), rss_mb() - r0);
        int fq = nq < 10 ? nq : 10;
        run_queries(flat, qs, fq, truth, NULL, 0, 0, "search");
        run_queries(flat, qs, fq, truth1, allow1, na1, VIA_AUTO, "search, 1% allowed (exact)");
        ret_vindex_free(flat);
    }

    /* auto-sized index: flat, background IVF builds as it grows */
    long r0 = rss_mb();
    char adir[512];
    snprintf(adir, sizeof adir, "%s/auto", dir);
    ret_vindex *vi = open_or_die(adir);
    ret__vindex_tune(vi, &tune);
    double add_ms = add_all(vi, data, ids, 0, n);
    t0 = now_ms();
    if (ret_vindex_upgrade(vi, 1, errbuf) != ZK_OK) { fprintf(stderr, "upgrade: %s\n", errbuf); return 1; }
    double wait_ms = now_ms() - t0;
    int nlist = 0, kind = ret__vindex_kind(vi, &nlist);
    printf("auto: %s nlist %d; ingest %.0f vectors/s (background builds running), final build wait %.1f s, "
           "last build %.1f s, RSS +%ld MB\n", kind == 2 ? "IVF" : "flat", nlist, n / (add_ms / 1e3),
           wait_ms / 1e3, ret__vindex_build_secs(vi), rss_mb() - r0);
    /* a cold build at this size (what open does with a large flat snapshot) */
    if (coldbuild) {
        char cdir[512];
        snprintf(cdir, sizeof cdir, "%s/cold", dir);
        ret_vindex *cold = open_or_die(cdir);
        ret__vindex_tuning ct = tune;
        ct.ivf_threshold = INT64_MAX;
        ret__vindex_tune(cold, &ct);
        add_all(cold, data, ids, 0, n);
        ct.ivf_threshold = 0;
        ct.build_threads = 2;
        t0 = now_ms();
        ret__vindex_tune(cold, &ct);
        ret_vindex_upgrade(cold, 1, errbuf);
        printf("  cold build of IVF at N (train + fill, 2 threads): %.1f s\n", (now_ms() - t0) / 1e3);
        ret_vindex_free(cold);
    }

    if (kind == 2) {
        int probes[] = {8, 16, 32, 64, 128};
        for (size_t p = 0; p < sizeof probes / sizeof *probes; p++) {
            if (probes[p] > nlist) break;
            tune.nprobe = probes[p];
            ret__vindex_tune(vi, &tune);
            char label[64];
            snprintf(label, sizeof label, "search nprobe %d", probes[p]);
            run_queries(vi, qs, nq, truth, NULL, 0, 0, label);
        }
        tune.nprobe = 0;
        ret__vindex_tune(vi, &tune);
    }
    run_queries(vi, qs, nq, truth, NULL, 0, 0, "search (default nprobe)");
    run_queries(vi, qs, nq, truth1, allow1, na1, VIA_AUTO, "1% allowed, auto");
    run_queries(vi, qs, nq, truth1, allow1, na1, VIA_EXACT, "1% allowed, exact");
    run_queries(vi, qs, nq, truth1, allow1, na1, VIA_SELECTOR, "1% allowed, selector");
    run_queries(vi, qs, nq, truth10, allow10, na10, VIA_AUTO, "10% allowed, auto");

    /* incremental adds into the built index, then remove them again */
    int64_t *more = malloc(BATCH * sizeof *more);
    for (size_t i = 0; i < BATCH; i++) more[i] = (int64_t)(n + i);
    t0 = now_ms();
    add_all(vi, data, more, 0, BATCH);
    double inc_ms = now_ms() - t0;
    t0 = now_ms();
    if (ret_vindex_remove(vi, BATCH, more, errbuf) != ZK_OK) { fprintf(stderr, "remove: %s\n", errbuf); return 1; }
    printf("  incremental: add %.0f vectors/s, remove %.0f ids/s\n", BATCH / (inc_ms / 1e3),
           BATCH / ((now_ms() - t0) / 1e3));

    /* start-up: save, reopen */
    t0 = now_ms();
    if (ret_vindex_save(vi, errbuf) != ZK_OK) { fprintf(stderr, "save: %s\n", errbuf); return 1; }
    double save_ms = now_ms() - t0;
    ret_vindex_free(vi);
    t0 = now_ms();
    vi = open_or_die(adir);
    double open_ms = now_ms() - t0;
    char path[600];
    snprintf(path, sizeof path, "%s/index.zkv", adir);
    FILE *f = fopen(path, "rb");
    long size = 0;
    if (f) fseek(f, 0, SEEK_END), size = ftell(f), fclose(f);
    printf("  snapshot %ld MB: save %.2f s, open %.2f s (kind %d)\n", size >> 20, save_ms / 1e3, open_ms / 1e3,
           ret__vindex_kind(vi, NULL));
    run_queries(vi, qs, nq, truth, NULL, 0, 0, "search after reopen");
    ret_vindex_free(vi);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    free(centres), free(data), free(qs), free(ids), free(more);
    free(mask1), free(mask10), free(allow1), free(allow10), free(truth), free(truth1), free(truth10);
    return 0;
}
