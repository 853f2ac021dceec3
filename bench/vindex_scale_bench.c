/* vindex_scale_bench.c — measures how the vector index (retrieval/vindex.c)
 * scales: N unit vectors are added to an exact index and to the auto-sized
 * one (flat, then IVF built in the background), and it reports add rate,
 * build time, search p50/p99 and recall@10 against brute force per nprobe,
 * ACL-filtered search (1% and 10% allowed), memory (RSS delta) and snapshot
 * save/open time. Figures go to docs/PERFORMANCE.md. Run by `make bench`
 * (bench/run.sh); by hand:
 *   build/bench/vindex_scale_bench [N=100000] [QUERIES=50] [CODE] [OPTS]
 * CODE: default | flat | fp16 | sq8 (the IVF list codes).
 * OPTS, comma-separated: the data set — "clusters" (default: N/100 random
 * clusters, noise as large as the centres), "text" (builtin-embedder vectors
 * of synthetic topical text: a Zipfian English-like and Chinese vocabulary,
 * N/500 topics, 10-chunk documents with their own rare words, ~500-char
 * chunks; queries are 3-8 words about one document — its own words, its
 * topic's, a few common ones — as users type them) or
 * "uniform" (the same embedder over bench/gen_corpus.py's 120-word
 * vocabulary drawn uniformly: no topical structure at all, the worst case);
 * "noflat" (skip the exact baseline), "nocold" (skip the cold build),
 * "nlist=L", "probes=8/16/32" (nprobe sweep), "once" (no builds while
 * growing: flat up to N, then one build), "keep" (leave the snapshot for
 * bench/vindex_open_bench), "cache" (keep the data and
 * ground truth in /tmp/zk_vscale_*.bin for the next run). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "llm/embed.h"
#include "retrieval/vindex.h"
#include "retrieval/vindex_int.h"

#define K 10
#define DIM 512
#define BATCH 10000

static uint64_t rng = 0x243f6a8885a308d3ULL;
static char errbuf[ZK_ERRLEN];

static uint64_t next_u64(uint64_t *st)
{
    *st ^= *st >> 12;
    *st ^= *st << 25;
    *st ^= *st >> 27;
    return *st * 0x2545f4914f6cdd1dULL;
}

static double rnd_r(uint64_t *st) { return (double)(next_u64(st) >> 11) / 9007199254740992.0; }
static double rnd(void) { return rnd_r(&rng); }

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

static double loadavg(void)
{
    double l = 0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return 0;
    if (fscanf(f, "%lf", &l) != 1) l = 0;
    fclose(f);
    return l;
}

static float dot(const float *a, const float *b)
{
    float acc[8] = {0};
    for (int i = 0; i < DIM; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* ---- synthetic text --------------------------------------------------------- */

#define V_EN 20000
#define V_ZH 8000
#define TOPIC_WORDS 30
#define DOC_WORDS 6
#define DOC_CHUNKS 10

static const char *stop_en[] = {"the", "of", "and", "to", "in", "is", "that", "for", "it", "as",
                                "with", "was", "on", "be", "by", "this", "are", "from", "or", "an"};
static const char *gc_zh[] = {
    "知识", "管理", "系统", "文档", "检索", "企业", "员工", "数据", "安全", "权限", "审批", "流程",
    "报销", "财务", "部门", "会议", "项目", "客户", "合同", "服务器", "数据库", "网络", "配置", "部署",
    "版本", "更新", "用户", "密码", "账号", "培训", "考勤", "休假", "政策", "规定", "标准", "质量",
    "测试", "产品", "研发", "市场", "销售", "运营", "支持", "工单", "问题", "解决", "方案", "技术",
    "架构", "性能", "监控", "日志", "备份", "恢复", "迁移"};
static const char *gc_en[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "was", "on", "be", "by",
    "this", "are", "from", "or", "an", "which", "at", "have", "not", "system", "document", "search",
    "index", "query", "vector", "database", "server", "cluster", "backup", "policy", "employee",
    "access", "permission", "report", "budget", "project", "customer", "contract", "release",
    "version", "update", "deploy", "network", "config"};

typedef struct {
    char (*en)[24];         /* V_EN words, rank order (Zipf) */
    char (*zh)[8];          /* V_ZH two-character words (UTF-8) */
    double *cdf_en, *cdf_zh;
    int ntopics;
    size_t ndocs;           /* documents in the corpus (queries ask about one) */
    int (*topic_en)[TOPIC_WORDS], (*topic_zh)[TOPIC_WORDS];
} vocab;

static void zipf_cdf(double *cdf, int n, double s)
{
    double t = 0;
    for (int i = 0; i < n; i++) cdf[i] = (t += 1.0 / pow(i + 1, s));
    for (int i = 0; i < n; i++) cdf[i] /= t;
}

static int draw_cdf(const double *cdf, int n, uint64_t *st)
{
    double r = rnd_r(st);
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cdf[mid] < r) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void utf8_put(char *p, unsigned cp)
{
    p[0] = (char)(0xe0 | (cp >> 12));
    p[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    p[2] = (char)(0x80 | (cp & 0x3f));
}

static void vocab_init(vocab *v, size_t n)
{
    static const char *cons[] = {"b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s",
                                 "t", "v", "z", "br", "st", "tr", "ch"};
    static const char *vow[] = {"a", "e", "i", "o", "u", "ai", "ou"};
    uint64_t st = 0x51ed270b1e3779b9ULL;
    v->en = malloc(V_EN * sizeof *v->en);
    v->zh = malloc(V_ZH * sizeof *v->zh);
    v->cdf_en = malloc(V_EN * sizeof *v->cdf_en);
    v->cdf_zh = malloc(V_ZH * sizeof *v->cdf_zh);
    for (int i = 0; i < V_EN; i++) {
        if (i < 20) { snprintf(v->en[i], sizeof v->en[i], "%s", stop_en[i]); continue; }
        int syl = 2 + (int)(rnd_r(&st) * 3), w = 0;
        for (int k = 0; k < syl; k++)
            w += snprintf(v->en[i] + w, sizeof v->en[i] - (size_t)w, "%s%s", cons[next_u64(&st) % 20],
                          vow[next_u64(&st) % 7]);
    }
    for (int i = 0; i < V_ZH; i++) {   /* 2 chars from the 3000 commonest-coded CJK block start */
        utf8_put(v->zh[i], 0x4e00 + (unsigned)(next_u64(&st) % 3000));
        utf8_put(v->zh[i] + 3, 0x4e00 + (unsigned)(next_u64(&st) % 3000));
        v->zh[i][6] = 0;
    }
    zipf_cdf(v->cdf_en, V_EN, 1.0);
    zipf_cdf(v->cdf_zh, V_ZH, 1.0);
    v->ntopics = n / 500 > 50 ? (int)(n / 500) : 50;
    v->ndocs = (n + DOC_CHUNKS - 1) / DOC_CHUNKS;
    v->topic_en = malloc((size_t)v->ntopics * sizeof *v->topic_en);
    v->topic_zh = malloc((size_t)v->ntopics * sizeof *v->topic_zh);
    for (int t = 0; t < v->ntopics; t++)
        for (int k = 0; k < TOPIC_WORDS; k++) {   /* mid-frequency and rare words */
            v->topic_en[t][k] = 100 + (int)(next_u64(&st) % (V_EN - 100));
            v->topic_zh[t][k] = 50 + (int)(next_u64(&st) % (V_ZH - 50));
        }
}

typedef struct {
    int t1, t2, zh;               /* topics, language */
    int en_w[DOC_WORDS], zh_w[DOC_WORDS];
} docinfo;

static void doc_of(const vocab *v, size_t doc, docinfo *d)
{
    uint64_t st = 0x9e3779b97f4a7c15ULL ^ (doc * 0xbf58476d1ce4e5b9ULL);
    next_u64(&st);
    d->t1 = (int)(next_u64(&st) % (uint64_t)v->ntopics);
    d->t2 = (int)(next_u64(&st) % (uint64_t)v->ntopics);
    d->zh = rnd_r(&st) < 0.5;
    for (int k = 0; k < DOC_WORDS; k++) {
        d->en_w[k] = 1000 + (int)(next_u64(&st) % (V_EN - 1000));
        d->zh_w[k] = 500 + (int)(next_u64(&st) % (V_ZH - 500));
    }
}

/* A topical word: the topic's own words, Zipf-weighted within the topic. */
static int topic_word(const int *words, uint64_t *st)
{
    double r = rnd_r(st);
    return words[(int)(r * r * TOPIC_WORDS)];
}

/* One word: the document's own (p_doc), its main topic's (up to p_t1), its
 * second topic's (up to p_t2), else the background Zipf vocabulary. */
static size_t put_word(char *buf, size_t w, size_t cap, const vocab *v, const docinfo *d, int zh, double p_doc,
                       double p_t1, double p_t2, uint64_t *st)
{
    double r = rnd_r(st);
    int idx;
    if (r < p_doc) idx = zh ? d->zh_w[next_u64(st) % DOC_WORDS] : d->en_w[next_u64(st) % DOC_WORDS];
    else if (r < p_t1) idx = topic_word(zh ? v->topic_zh[d->t1] : v->topic_en[d->t1], st);
    else if (r < p_t2) idx = topic_word(zh ? v->topic_zh[d->t2] : v->topic_en[d->t2], st);
    else idx = zh ? draw_cdf(v->cdf_zh, V_ZH, st) : draw_cdf(v->cdf_en, V_EN, st);
    const char *word = zh ? v->zh[idx] : v->en[idx];
    size_t l = strlen(word);
    if (w + l + 2 >= cap) return w;
    if (!zh && w) buf[w++] = ' ';
    memcpy(buf + w, word, l);
    return w + l;
}

/* Chunk i of the corpus (~500 code points), or query q when is_query. */
static size_t gen_text(const vocab *v, int uniform, size_t i, int is_query, char *buf, size_t cap)
{
    uint64_t st = (is_query ? 0x7f4a7c159e3779b9ULL : 0x2545f4914f6cdd1dULL) ^ ((i + 1) * 0x94d049bb133111ebULL);
    next_u64(&st);
    size_t w = 0;
    if (uniform) {
        int nw = is_query ? 3 + (int)(rnd_r(&st) * 6) : 0;
        for (int k = 0; is_query ? k < nw : w < 600; k++) {
            int zh = rnd_r(&st) < 0.5;
            const char *word = zh ? gc_zh[next_u64(&st) % (sizeof gc_zh / sizeof *gc_zh)]
                                  : gc_en[next_u64(&st) % (sizeof gc_en / sizeof *gc_en)];
            size_t l = strlen(word);
            if (w + l + 2 >= cap) break;
            if (w) buf[w++] = ' ';
            memcpy(buf + w, word, l);
            w += l;
        }
        buf[w] = 0;
        return w;
    }
    docinfo d;
    size_t doc = is_query ? (size_t)(next_u64(&st) % v->ndocs) : i / DOC_CHUNKS;
    doc_of(v, doc, &d);
    if (is_query) {
        int nw = 3 + (int)(rnd_r(&st) * 6);
        for (int k = 0; k < nw; k++) w = put_word(buf, w, cap, v, &d, d.zh, 0.35, 0.8, 0.9, &st);
    } else if (d.zh) {
        for (int k = 0; w < 700 && k < 400; k++) {   /* ~230 CJK characters */
            w = put_word(buf, w, cap, v, &d, 1, 0.08, 0.45, 0.55, &st);
            if (rnd_r(&st) < 0.08 && w + 4 < cap) memcpy(buf + w, "\xe3\x80\x82", 3), w += 3;
        }
    } else {
        for (int k = 0; k < 80; k++) w = put_word(buf, w, cap, v, &d, 0, 0.08, 0.45, 0.55, &st);
    }
    buf[w] = 0;
    return w;
}

typedef struct {
    const vocab *v;
    int uniform;
    size_t from, to, qbase;   /* rows [from, to); rows >= qbase are queries */
    float *out;
} embed_job;

static void *embed_main(void *arg)
{
    embed_job *j = arg;
    llm_embedder *e = NULL;
    char err[ZK_ERRLEN], buf[4096];
    if (llm_embedder_builtin_new(DIM, &e, err) != ZK_OK) { fprintf(stderr, "embedder: %s\n", err); exit(1); }
    for (size_t i = j->from; i < j->to; i++) {
        int q = i >= j->qbase;
        size_t len = gen_text(j->v, j->uniform, q ? i - j->qbase : i, q, buf, sizeof buf);
        const char *t = buf;
        if (llm_embed(e, 1, &t, &len, j->out + i * DIM, err) != ZK_OK) { fprintf(stderr, "embed: %s\n", err); exit(1); }
    }
    llm_embedder_free(e);
    return NULL;
}

/* n chunk vectors then nq query vectors, embedded on 2 threads. */
static void embed_all(int uniform, size_t n, int nq, float *data, float *qs)
{
    vocab v;
    vocab_init(&v, n);
    float *all = malloc((n + (size_t)nq) * DIM * sizeof *all);
    size_t tot = n + (size_t)nq;
    embed_job jobs[2] = {{&v, uniform, 0, tot / 2, n, all}, {&v, uniform, tot / 2, tot, n, all}};
    pthread_t th;
    pthread_create(&th, NULL, embed_main, &jobs[1]);
    embed_main(&jobs[0]);
    pthread_join(th, NULL);
    memcpy(data, all, n * DIM * sizeof *all);
    memcpy(qs, all + n * DIM, (size_t)nq * DIM * sizeof *all);
    free(all);
    free(v.en), free(v.zh), free(v.cdf_en), free(v.cdf_zh), free(v.topic_en), free(v.topic_zh);
    /* an empty text embeds to zero: give such rows a direction */
    for (size_t i = 0; i < n; i++)
        if (dot(data + i * DIM, data + i * DIM) == 0) data[i * DIM] = 1;
}

/* ---- ground truth ------------------------------------------------------------ */

typedef struct {
    float s[K];
    int64_t id[K];
    int m;
} heap10;

static void h_push(heap10 *h, float s, int64_t id)
{
    if (h->m == K && s <= h->s[K - 1]) return;
    int j = h->m < K ? h->m++ : K - 1;
    while (j > 0 && h->s[j - 1] < s) h->s[j] = h->s[j - 1], h->id[j] = h->id[j - 1], j--;
    h->s[j] = s, h->id[j] = id;
}

typedef struct {
    const float *data, *qs;
    size_t n;
    int q0, q1;
    const unsigned char *mask1, *mask10;
    int64_t *truth, *truth1, *truth10;
} truth_job;

/* Brute-force top K of each query, unfiltered and over the 1% / 10% masks,
 * blocked so each data block is read once for all queries. */
static void *truth_main(void *arg)
{
    truth_job *j = arg;
    int nq = j->q1 - j->q0;
    heap10 *h = calloc((size_t)nq * 3, sizeof *h);
    for (size_t b = 0; b < j->n; b += 512) {
        size_t e = b + 512 < j->n ? b + 512 : j->n;
        for (int q = 0; q < nq; q++) {
            const float *qv = j->qs + (size_t)(j->q0 + q) * DIM;
            for (size_t i = b; i < e; i++) {
                float s = dot(j->data + i * DIM, qv);
                h_push(&h[q * 3], s, (int64_t)i);
                if (j->mask1[i]) h_push(&h[q * 3 + 1], s, (int64_t)i);
                if (j->mask10[i]) h_push(&h[q * 3 + 2], s, (int64_t)i);
            }
        }
    }
    for (int q = 0; q < nq; q++)
        for (int r = 0; r < K; r++) {
            size_t o = (size_t)(j->q0 + q) * K + (size_t)r;
            j->truth[o] = r < h[q * 3].m ? h[q * 3].id[r] : -1;
            j->truth1[o] = r < h[q * 3 + 1].m ? h[q * 3 + 1].id[r] : -1;
            j->truth10[o] = r < h[q * 3 + 2].m ? h[q * 3 + 2].id[r] : -1;
        }
    free(h);
    return NULL;
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

/* Vectors of the data set, for scoring results (eps_recall). */
static const float *g_data;

/* Recall tolerant of near-ties: the share of the k results whose true score
 * is within 1% of the 10th exact neighbour's (ann-benchmarks' "epsilon
 * 0.01 recall"). Lexical vectors of short queries have many near-ties. */
static double eps_recall(const float *q, const int64_t *truth, const int64_t *got, int ngot)
{
    int want = 0, last = -1;
    for (int i = 0; i < K; i++)
        if (truth[i] >= 0) want++, last = i;
    if (!want) return 1.0;
    float floor = dot(g_data + (size_t)truth[last] * DIM, q);
    floor -= fabsf(floor) * 0.01f;
    int hit = 0;
    for (int j = 0; j < ngot && j < want; j++) hit += dot(g_data + (size_t)got[j] * DIM, q) >= floor;
    return (double)hit / want;
}

static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* p50/p99 latency (wall; and p50 of this thread's CPU time, steadier on a
 * shared machine), mean recall@10 and eps-recall of nq searches (allowed
 * NULL: unfiltered). */
static void run_queries(const ret_vindex *vi, const float *qs, int nq, const int64_t *truth,
                        const int64_t *allowed, size_t nallowed, int via, const char *label)
{
    double *t = malloc((size_t)nq * sizeof *t), *c = malloc((size_t)nq * sizeof *c), rsum = 0, esum = 0;
    for (int q = 0; q < nq; q++) {
        int64_t ids[K];
        int n = 0;
        double t0 = now_ms(), c0 = thread_cpu_ms();
        zk_rc rc = allowed ? ret__vindex_search_allowed_via(vi, via, qs + (size_t)q * DIM, K, allowed, nallowed,
                                                            ids, NULL, &n, errbuf)
                           : ret_vindex_search(vi, qs + (size_t)q * DIM, K, ids, NULL, &n, errbuf);
        t[q] = now_ms() - t0;
        c[q] = thread_cpu_ms() - c0;
        if (rc != ZK_OK) { fprintf(stderr, "search: %s\n", errbuf); exit(1); }
        rsum += recall(truth + (size_t)q * K, ids, n);
        esum += eps_recall(qs + (size_t)q * DIM, truth + (size_t)q * K, ids, n);
    }
    qsort(t, (size_t)nq, sizeof *t, cmp_d);
    qsort(c, (size_t)nq, sizeof *c, cmp_d);
    printf("  %-30s p50 %7.2f ms p99 %7.2f ms cpu p50 %7.2f ms  recall@10 %.3f eps %.3f (load %.1f)\n", label,
           t[nq / 2], t[(nq * 99) / 100 < nq ? (nq * 99) / 100 : nq - 1], c[nq / 2], rsum / nq, esum / nq, loadavg());
    free(t);
    free(c);
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

static int opt_has(const char *opts, const char *word)
{
    size_t l = strlen(word);
    for (const char *p = opts; (p = strstr(p, word)) != NULL; p += l)
        if ((p == opts || p[-1] == ',') && (p[l] == 0 || p[l] == ',' || p[l] == '=')) return 1;
    return 0;
}

static const char *opt_val(const char *opts, const char *key)
{
    size_t l = strlen(key);
    for (const char *p = opts; (p = strstr(p, key)) != NULL; p += l)
        if ((p == opts || p[-1] == ',') && p[l] == '=') return p + l + 1;
    return NULL;
}

/* Data, queries, masks and ground truth, from the cache file when asked. */
typedef struct {
    float *data, *qs;
    unsigned char *mask1, *mask10;
    int64_t *truth, *truth1, *truth10;
} dataset;

static int cache_io(const char *path, int write, dataset *d, size_t n, int nq)
{
    FILE *f = fopen(path, write ? "wb" : "rb");
    if (!f) return -1;
    struct { void *p; size_t sz; } parts[] = {
        {d->data, n * DIM * sizeof(float)}, {d->qs, (size_t)nq * DIM * sizeof(float)},
        {d->mask1, n}, {d->mask10, n}, {d->truth, (size_t)nq * K * sizeof(int64_t)},
        {d->truth1, (size_t)nq * K * sizeof(int64_t)}, {d->truth10, (size_t)nq * K * sizeof(int64_t)}};
    int ok = 1;
    for (size_t i = 0; i < sizeof parts / sizeof *parts && ok; i++)
        ok = (write ? fwrite(parts[i].p, 1, parts[i].sz, f) : fread(parts[i].p, 1, parts[i].sz, f)) == parts[i].sz;
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : -1;
}

static void make_dataset(const char *mode, size_t n, int nq, const char *cache, dataset *d)
{
    double t0 = now_ms();
    d->data = malloc(n * DIM * sizeof *d->data);
    d->qs = malloc((size_t)nq * DIM * sizeof *d->qs);
    d->mask1 = calloc(n, 1), d->mask10 = calloc(n, 1);
    d->truth = malloc((size_t)nq * K * sizeof *d->truth);
    d->truth1 = malloc((size_t)nq * K * sizeof *d->truth1);
    d->truth10 = malloc((size_t)nq * K * sizeof *d->truth10);
    if (cache && cache_io(cache, 0, d, n, nq) == 0) {
        printf("  data + ground truth from %s     %.1f s\n", cache, (now_ms() - t0) / 1e3);
        return;
    }
    if (!strcmp(mode, "clusters")) {
        /* unit centres plus noise of comparable norm, so a point's
         * neighbours are mostly, not only, in its own cluster */
        size_t nclusters = n / 100 > 100 ? n / 100 : 100;
        float *centres = malloc(nclusters * DIM * sizeof *centres);
        for (size_t c = 0; c < nclusters; c++) {
            for (int j = 0; j < DIM; j++) centres[c * DIM + j] = noise();
            normalize(centres + c * DIM, DIM);
        }
        for (size_t i = 0; i < n; i++) {
            const float *c = centres + (size_t)(rnd() * nclusters) * DIM;
            for (int j = 0; j < DIM; j++) d->data[i * DIM + j] = c[j] + 0.045f * noise();
            normalize(d->data + i * DIM, DIM);
        }
        for (int q = 0; q < nq; q++) {
            const float *c = centres + (size_t)(rnd() * nclusters) * DIM;
            for (int j = 0; j < DIM; j++) d->qs[q * DIM + j] = c[j] + 0.045f * noise();
            normalize(d->qs + q * DIM, DIM);
        }
        free(centres);
    } else {
        embed_all(!strcmp(mode, "uniform"), n, nq, d->data, d->qs);
    }
    printf("  data (%s)                          %.1f s\n", mode, (now_ms() - t0) / 1e3);
    /* 1% and 10% allowed sets: random ids, as ACL groups scatter over time */
    for (size_t i = 0; i < n; i++) {
        double r = rnd();
        d->mask1[i] = r < 0.01;
        d->mask10[i] = r < 0.10;
    }
    truth_job tj[2];
    pthread_t th;
    for (int t = 0; t < 2; t++)
        tj[t] = (truth_job){d->data, d->qs, n, t ? nq / 2 : 0, t ? nq : nq / 2, d->mask1, d->mask10,
                            d->truth, d->truth1, d->truth10};
    pthread_create(&th, NULL, truth_main, &tj[1]);
    truth_main(&tj[0]);
    pthread_join(th, NULL);
    printf("  + ground truth                      %.1f s\n", (now_ms() - t0) / 1e3);
    if (cache && cache_io(cache, 1, d, n, nq) != 0) fprintf(stderr, "could not write %s\n", cache);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 100000;
    int nq = argc > 2 ? atoi(argv[2]) : 50;
    const char *codes = argc > 3 ? argv[3] : "default";
    const char *opts = argc > 4 ? argv[4] : "";
    /* IVF code (vindex_int.h): 1 SQ8, 2 Flat, 3 SQfp16, 0 vindex.c's default */
    int code = !strcmp(codes, "sq8") ? 1 : !strcmp(codes, "flat") ? 2 : !strcmp(codes, "fp16") ? 3 : 0;
    int flatbase = !opt_has(opts, "noflat"), coldbuild = !opt_has(opts, "nocold");
    const char *mode = opt_has(opts, "text") ? "text" : opt_has(opts, "uniform") ? "uniform" : "clusters";
    const char *nl = opt_val(opts, "nlist"), *probes_opt = opt_val(opts, "probes");
    char dir[] = "/tmp/zk_vscale_XXXXXX", cache[256], *cachep = NULL;
    if (!mkdtemp(dir)) return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("vector index scale: N=%zu dim=%d queries=%d data=%s IVF code=%s load %.1f\n", n, DIM, nq, mode, codes,
           loadavg());
    if (opt_has(opts, "cache")) {
        snprintf(cache, sizeof cache, "/tmp/zk_vscale_%s2_%zu_%d.bin", mode, n, nq);
        cachep = cache;
    }
    dataset ds;
    make_dataset(mode, n, nq, cachep, &ds);
    float *data = ds.data, *qs = ds.qs;
    g_data = data;
    int64_t *ids = malloc((n + BATCH) * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)i;
    int64_t *allow1 = malloc(n * sizeof *allow1), *allow10 = malloc(n * sizeof *allow10);
    size_t na1 = 0, na10 = 0;
    for (size_t i = 0; i < n; i++) {
        if (ds.mask1[i]) allow1[na1++] = (int64_t)i;
        if (ds.mask10[i]) allow10[na10++] = (int64_t)i;
    }
    double t0;
    ret__vindex_tuning tune = {0};
    tune.sq8 = code;
    if (nl) tune.nlist = atoi(nl);
    if (opt_has(opts, "once")) tune.ivf_threshold = (int64_t)n;   /* one build, at N */

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
        int fq = nq < 20 ? nq : 20;
        run_queries(flat, qs, fq, ds.truth, NULL, 0, 0, "search");
        run_queries(flat, qs, fq, ds.truth1, allow1, na1, VIA_AUTO, "search, 1% allowed (exact)");
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
        t0 = now_ms();
        ret__vindex_tune(cold, &ct);
        ret_vindex_upgrade(cold, 1, errbuf);
        printf("  cold build of IVF at N (train + fill, default threads): %.1f s\n", (now_ms() - t0) / 1e3);
        ret_vindex_free(cold);
    }

    if (kind == 2) {
        int probes[16], np = 0;
        if (probes_opt) {
            for (const char *p = probes_opt; *p && *p != ',' && np < 16;) {
                probes[np++] = atoi(p);
                while (*p && *p != '/' && *p != ',') p++;
                if (*p == '/') p++;
            }
        } else {
            int def[] = {8, 16, 32, 64, 128};
            for (int i = 0; i < 5; i++) probes[np++] = def[i];
        }
        for (int p = 0; p < np; p++) {
            if (probes[p] > nlist) break;
            tune.nprobe = probes[p];
            ret__vindex_tune(vi, &tune);
            char label[64];
            snprintf(label, sizeof label, "search nprobe %d", probes[p]);
            run_queries(vi, qs, nq, ds.truth, NULL, 0, 0, label);
        }
        tune.nprobe = 0;
        ret__vindex_tune(vi, &tune);
    }
    run_queries(vi, qs, nq, ds.truth, NULL, 0, 0, "search (default nprobe)");
    run_queries(vi, qs, nq, ds.truth1, allow1, na1, VIA_AUTO, "1% allowed, auto");
    run_queries(vi, qs, nq, ds.truth1, allow1, na1, VIA_EXACT, "1% allowed, exact");
    run_queries(vi, qs, nq, ds.truth1, allow1, na1, VIA_SELECTOR, "1% allowed, selector");
    run_queries(vi, qs, nq, ds.truth10, allow10, na10, VIA_AUTO, "10% allowed, auto");

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

    /* start-up: save, reopen (page cache warm, as after a restart) */
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
    run_queries(vi, qs, nq, ds.truth, NULL, 0, 0, "search after reopen");
    ret_vindex_free(vi);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (opt_has(opts, "keep")) printf("  kept %s\n", adir);
    else if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    free(data), free(qs), free(ids), free(more);
    free(ds.mask1), free(ds.mask10), free(allow1), free(allow10), free(ds.truth), free(ds.truth1), free(ds.truth10);
    return 0;
}
