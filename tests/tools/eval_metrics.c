/* eval_metrics.c — nDCG@10, Recall@10 and Recall@100 of a `zhiku search
 * --batch` run against BEIR qrels (query-id TAB corpus-id TAB score, header
 * line first). Used by `make eval` (tools/eval.sh); prints one line:
 *   ndcg@10=0.9712 recall@10=0.9950 recall@100=1.0000 queries=1190
 * Binary or graded relevance, gain = score, as pytrec_eval does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

typedef struct { char *q, *d; int rel; } qrel;

static qrel *qrels;
static size_t nq;

static int cmp_qrel(const void *a, const void *b) { return strcmp(((const qrel *)a)->q, ((const qrel *)b)->q); }

static int rel_of(const char *q, const char *d)
{
    qrel key = {(char *)q, NULL, 0};
    qrel *r = bsearch(&key, qrels, nq, sizeof *qrels, cmp_qrel);
    if (!r) return 0;
    while (r > qrels && !strcmp(r[-1].q, q)) r--;
    for (; r < qrels + nq && !strcmp(r->q, q); r++)
        if (!strcmp(r->d, d)) return r->rel;
    return 0;
}

static int rels_of(const char *q, int *out, int max)
{
    qrel key = {(char *)q, NULL, 0};
    qrel *r = bsearch(&key, qrels, nq, sizeof *qrels, cmp_qrel);
    int n = 0;
    if (!r) return 0;
    while (r > qrels && !strcmp(r[-1].q, q)) r--;
    for (; r < qrels + nq && !strcmp(r->q, q) && n < max; r++)
        if (r->rel > 0) out[n++] = r->rel;
    return n;
}

static int cmp_desc(const void *a, const void *b) { return *(const int *)b - *(const int *)a; }

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: eval_metrics QRELS.tsv RUN.jsonl\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) { perror(argv[1]); return 1; }
    char line[4096];
    size_t cap = 0;
    int first = 1;
    while (fgets(line, sizeof line, f)) {
        if (first) { first = 0; if (strstr(line, "query-id")) continue; }
        char *q = strtok(line, "\t\r\n"), *d = strtok(NULL, "\t\r\n"), *s = strtok(NULL, "\t\r\n");
        if (!q || !d || !s) continue;
        if (nq == cap) { cap = cap ? cap * 2 : 1024; qrels = realloc(qrels, cap * sizeof *qrels); }
        qrels[nq++] = (qrel){strdup(q), strdup(d), atoi(s)};
    }
    fclose(f);
    qsort(qrels, nq, sizeof *qrels, cmp_qrel);

    f = fopen(argv[2], "r");
    if (!f) { perror(argv[2]); return 1; }
    double ndcg = 0, r10 = 0, r100 = 0;
    int queries = 0;
    char *buf = NULL;
    size_t bcap = 0;
    while (getline(&buf, &bcap, f) > 0) {
        json_t *o = json_loads(buf, 0, NULL);
        const char *q = json_string_value(json_object_get(o, "_id"));
        json_t *hits = json_object_get(o, "hits");
        int ideal[1024];
        int nrel = q ? rels_of(q, ideal, 1024) : 0;
        if (!q || nrel == 0) { json_decref(o); continue; }
        queries++;
        qsort(ideal, (size_t)nrel, sizeof *ideal, cmp_desc);
        double dcg = 0, idcg = 0;
        int found10 = 0, found100 = 0;
        for (size_t i = 0; i < json_array_size(hits) && i < 100; i++) {
            const char *d = json_string_value(json_object_get(json_array_get(hits, i), "id"));
            int rel = d ? rel_of(q, d) : 0;
            if (rel > 0) {
                if (i < 10) { dcg += rel / log2((double)i + 2); found10++; }
                found100++;
            }
        }
        for (int i = 0; i < nrel && i < 10; i++) idcg += ideal[i] / log2((double)i + 2);
        ndcg += dcg / idcg;
        r10 += (double)found10 / nrel;
        r100 += (double)found100 / nrel;
        json_decref(o);
    }
    free(buf);
    fclose(f);
    if (!queries) { fprintf(stderr, "no judged queries in the run\n"); return 1; }
    printf("ndcg@10=%.4f recall@10=%.4f recall@100=%.4f queries=%d\n", ndcg / queries, r10 / queries,
           r100 / queries, queries);
    return 0;
}
