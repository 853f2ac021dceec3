/* search_inproc.c — the in-process baseline of the HTTP load test: the same
 * queries through ret_search() as the server runs them (a user caller,
 * default options), for SECONDS seconds on one thread; prints queries/s and
 * p50/p99 latency. Pin it to the core the server gets (taskset) so the two
 * are comparable. A warm-up of WARMUP seconds (default 0) runs the same
 * queries first, as the HTTP test warms the server.
 * SEARCH_MODE=bm25|vector|hybrid in the environment picks the mode (default:
 * the configured default, hybrid).
 * Usage: search_inproc DATA_DIR QUERIES.txt SECONDS USER [WARMUP] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retrieval/search.h"
#include "retrieval/store.h"
#include "llm/embed.h"

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: search_inproc DATA_DIR QUERIES.txt SECONDS USER [WARMUP]\n");
        return 2;
    }
    char err[ZK_ERRLEN];
    ret_store *s;
    llm_embedder *e;
    zk_config *cfg = NULL;
    if (zk_config_load(NULL, 0, &cfg, err) != ZK_OK || ret_store_open(argv[1], 0, &s, err) != ZK_OK ||
        llm_embedder_from_config(cfg, &e, err) != ZK_OK) {
        fprintf(stderr, "search_inproc: %s\n", err);
        return 1;
    }
    ret_caller who;
    if (ret_caller_user(s, argv[4], &who, err) != ZK_OK) {
        fprintf(stderr, "search_inproc: %s\n", err);
        return 1;
    }
    /* the same options for every query, as the server builds them */
    ret_search_opts o;
    ret_search_opts_init(&o, cfg);
    o.caller = &who;
    const char *m = getenv("SEARCH_MODE");
    if (m && *m && ret_mode_parse(m, &o.mode) != ZK_OK) {
        fprintf(stderr, "search_inproc: SEARCH_MODE must be bm25, vector or hybrid\n");
        return 2;
    }
    char (*qs)[256] = malloc(sizeof *qs * 10000);
    int nq = 0;
    FILE *f = fopen(argv[2], "r");
    while (f && nq < 10000 && fgets(qs[nq], sizeof qs[0], f)) {
        qs[nq][strcspn(qs[nq], "\n")] = '\0';
        if (qs[nq][0]) nq++;
    }
    if (f) fclose(f);
    /* warm up: load and replay the vector index, as the server did before
     * /readyz, move the column index out of its snapshot as the server
     * does once ready, then WARMUP seconds of the queries */
    double warm = argc == 6 ? atof(argv[5]) : 0, w0 = zk_now();
    for (int i = 0; nq && (i == 0 || zk_now() - w0 < warm); i++) {
        ret_hit *h;
        size_t nh;
        if (ret_search(s, e, qs[i % nq], &o, &h, &nh, err) == ZK_OK) ret_hits_free(h, nh);
        if (i == 0) ret_store_promote_indexes(s, NULL);
    }
    double secs = atof(argv[3]), t0 = zk_now();
    size_t cap = 1 << 20, n = 0;
    double *lat = malloc(sizeof(double) * cap);
    while (zk_now() - t0 < secs && n < cap) {
        ret_hit *h;
        size_t nh;
        double a = zk_now();
        if (ret_search(s, e, qs[n % (size_t)nq], &o, &h, &nh, err) != ZK_OK) {
            fprintf(stderr, "search_inproc: %s\n", err);
            return 1;
        }
        lat[n++] = zk_now() - a;
        ret_hits_free(h, nh);
    }
    double total = zk_now() - t0;
    qsort(lat, n, sizeof *lat, cmpd);
    printf("inproc: %zu queries in %.1f s = %.1f q/s, p50 %.2f ms, p99 %.2f ms\n", n, total, (double)n / total,
           lat[n / 2] * 1e3, lat[(size_t)((double)n * 0.99)] * 1e3);
    return 0;
}
