/* vindex_filter_bench.c — measures ACL-filtered vector search
 * (ret_vindex_search_allowed) to choose ALLOWED_EXACT_FRACTION in
 * retrieval/vindex.c: per-query p50 of exact scoring vs FAISS with a selector
 * vs unfiltered search, and recall@k of each against brute force, on N
 * random (or clustered) unit vectors with allowed fractions 0.1%..100%.
 * Result on the 2-core dev VM (25 queries, p50 ms; recall 1.000 throughout):
 *   allowed   unfiltered  exact  selector
 *    0.1%       146       0.07     1.64
 *    1%         140       1.89     2.77
 *   10%         143      15.9     19.0
 *   50%         144      55.9     79.7
 *  100%         142     120      145
 * Built and run by `make bench` (bench/run.sh); by hand:
 *   make build/bench/vindex_filter_bench && build/bench/vindex_filter_bench [N=200000] [DIM=512] [QUERIES=30] [random|clustered]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "retrieval/vindex.h"

#include "retrieval/vindex_int.h"

#define K 10
#define NCLUSTERS 1000

static uint64_t rng = 0x243f6a8885a308d3ULL;

static double rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (double)((rng * 0x2545f4914f6cdd1dULL) >> 11) / 9007199254740992.0;
}

static double gauss(void)
{
    double u = rnd() + 1e-12, v = rnd();
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Brute-force top K over the allowed ids (ids are row + 1). */
static int brute(const float *vecs, int dim, const float *q, const int64_t *allowed, size_t na,
                 int64_t *out)
{
    float best[K];
    int m = 0;
    for (size_t i = 0; i < na; i++) {
        const float *v = vecs + (size_t)(allowed[i] - 1) * dim;
        float s = 0;
        for (int j = 0; j < dim; j++) s += q[j] * v[j];
        int pos = m < K ? m++ : K;
        if (pos == K && s <= best[K - 1]) continue;
        if (pos == K) pos = K - 1;
        while (pos > 0 && best[pos - 1] < s) best[pos] = best[pos - 1], out[pos] = out[pos - 1], pos--;
        best[pos] = s, out[pos] = allowed[i];
    }
    return m;
}

static int overlap(const int64_t *a, int na, const int64_t *b, int nb)
{
    int c = 0;
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++) c += a[i] == b[j];
    return c;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    int dim = argc > 2 ? atoi(argv[2]) : 512;
    int nq = argc > 3 ? atoi(argv[3]) : 30;
    int clustered = argc > 4 && strcmp(argv[4], "clustered") == 0;
    static const double fractions[] = {0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0};
    char err[ZK_ERRLEN], dir[] = "/tmp/zk_vfbench_XXXXXX", cmd[64];
    ret_vindex *vi = NULL;
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    float *vecs = malloc(n * (size_t)dim * sizeof *vecs), *queries = malloc((size_t)nq * dim * sizeof *queries);
    float *centres = malloc((size_t)NCLUSTERS * dim * sizeof *centres);
    int64_t *ids = malloc(n * sizeof *ids), *allowed = malloc(n * sizeof *allowed);
    double *t = malloc(4 * (size_t)nq * sizeof *t);
    if (!vecs || !queries || !centres || !ids || !allowed || !t) return fprintf(stderr, "oom\n"), 1;
    for (size_t i = 0; i < (size_t)NCLUSTERS * dim; i++) centres[i] = (float)gauss();
    for (size_t i = 0; i < n; i++) {
        float *v = vecs + i * dim;
        const float *c = centres + (size_t)(rnd() * NCLUSTERS) * dim;
        for (int j = 0; j < dim; j++) v[j] = (float)(clustered ? c[j] + 0.5 * gauss() : gauss());
        normalize(v, dim);
        ids[i] = (int64_t)i + 1;
    }
    for (int q = 0; q < nq; q++) {
        float *v = queries + (size_t)q * dim;
        const float *c = centres + (size_t)(rnd() * NCLUSTERS) * dim;
        for (int j = 0; j < dim; j++) v[j] = (float)(clustered ? c[j] + 0.5 * gauss() : gauss());
        normalize(v, dim);
    }
    if (ret_vindex_open(dir, dim, &vi, NULL, err) != ZK_OK) return fprintf(stderr, "%s\n", err), 1;
    double t0 = now_ms();
    for (size_t off = 0; off < n; off += 10000) {
        size_t m = n - off < 10000 ? n - off : 10000;
        if (ret_vindex_add(vi, m, ids + off, vecs + off * dim, err) != ZK_OK)
            return fprintf(stderr, "%s\n", err), 1;
    }
    printf("# %zu x %d-d %s vectors, IDMap2,Flat, k=%d, %d queries, added in %.0f ms\n", n, dim,
           clustered ? "clustered" : "random", K, nq, now_ms() - t0);

    int64_t got[K], want[K];
    float sc[K];
    int ng;
    /* Per fraction, each query runs unfiltered, exact, selector and auto
     * back to back, so load from other processes hits all columns alike. */
    printf("%8s %7s | %10s | %10s %6s | %10s %6s | %10s\n", "allowed", "n", "unfiltered",
           "exact p50", "recall", "select p50", "recall", "auto p50");
    for (size_t f = 0; f < sizeof fractions / sizeof *fractions; f++) {
        size_t na = 0;
        for (size_t i = 0; i < n; i++)
            if (fractions[f] >= 1.0 || rnd() < fractions[f]) allowed[na++] = ids[i];
        int hit[3] = {0}, tot = 0;
        for (int q = 0; q < nq; q++) {
            const float *qv = queries + (size_t)q * dim;
            int nw = brute(vecs, dim, qv, allowed, na, want);
            double a = now_ms();
            if (ret_vindex_search(vi, qv, K, got, sc, &ng, err) != ZK_OK) return fprintf(stderr, "%s\n", err), 1;
            t[3 * nq + q] = now_ms() - a;
            for (int via = VIA_AUTO; via <= VIA_SELECTOR; via++) {
                a = now_ms();
                if (ret__vindex_search_allowed_via(vi, via, qv, K, allowed, na, got, sc, &ng, err) != ZK_OK)
                    return fprintf(stderr, "%s\n", err), 1;
                t[via * nq + q] = now_ms() - a;
                hit[via] += overlap(got, ng, want, nw);
            }
            tot += nw;
        }
        double p50[4];
        for (int c = 0; c < 4; c++) p50[c] = median(t + c * nq, nq);
        printf("%7.1f%% %7zu | %7.2f ms | %7.2f ms %6.3f | %7.2f ms %6.3f | %7.2f ms\n",
               fractions[f] * 100, na, p50[3], p50[VIA_EXACT], tot ? (double)hit[VIA_EXACT] / tot : 1.0,
               p50[VIA_SELECTOR], tot ? (double)hit[VIA_SELECTOR] / tot : 1.0, p50[VIA_AUTO]);
    }
    ret_vindex_free(vi);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    free(vecs), free(queries), free(centres), free(ids), free(allowed), free(t);
    return 0;
}
