/* topk.h — the k best (id, score) pairs: a min-heap whose root is the worst
 * kept hit. A hit is worse when its score is lower, or equal with a larger
 * id, so ties come out in id order whatever the scan order. Used by the
 * exact searches of vindex.c and colidx.c. */
#ifndef RET_TOPK_H
#define RET_TOPK_H

#include <math.h>
#include <stdint.h>

typedef struct {
    int64_t *ids;      /* k slots, the caller's */
    float *scores;     /* k slots, the caller's */
    int n, k;
} ret_topk;

static inline int ret_topk_worse(const ret_topk *t, int a, int b)
{
    return t->scores[a] < t->scores[b] || (t->scores[a] == t->scores[b] && t->ids[a] > t->ids[b]);
}

static inline void ret_topk_swap(ret_topk *t, int a, int b)
{
    int64_t id = t->ids[a];
    float s = t->scores[a];
    t->ids[a] = t->ids[b], t->scores[a] = t->scores[b];
    t->ids[b] = id, t->scores[b] = s;
}

static inline void ret_topk_sift_down(ret_topk *t, int i, int n)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && ret_topk_worse(t, l, w)) w = l;
        if (r < n && ret_topk_worse(t, r, w)) w = r;
        if (w == i) return;
        ret_topk_swap(t, i, w);
        i = w;
    }
}

static inline void ret_topk_push(ret_topk *t, int64_t id, float score)
{
    if (t->n < t->k) {
        int i = t->n++;
        t->ids[i] = id, t->scores[i] = score;
        while (i > 0 && ret_topk_worse(t, i, (i - 1) / 2)) {
            ret_topk_swap(t, i, (i - 1) / 2);
            i = (i - 1) / 2;
        }
        return;
    }
    if (score < t->scores[0] || (score == t->scores[0] && id > t->ids[0])) return;
    t->ids[0] = id, t->scores[0] = score;
    ret_topk_sift_down(t, 0, t->n);
}

/* The score a hit must reach to be kept: -inf until k are kept. */
static inline float ret_topk_bar(const ret_topk *t) { return t->n < t->k ? -INFINITY : t->scores[0]; }

/* Heap sort in place: afterwards best first. */
static inline void ret_topk_finish(ret_topk *t)
{
    for (int n = t->n; n > 1; n--) {
        ret_topk_swap(t, 0, n - 1);
        ret_topk_sift_down(t, 0, n - 1);
    }
}

#endif
