/* embed.c — text embedders behind one struct of function pointers, and the
 * builtin hashed-feature embedder ("builtin-hash-v2"). The indexer embeds
 * every chunk through llm_embed() and retrieval embeds each query, so the
 * builtin path is tuned for ~10k chunks of 500 chars per second on one core:
 * features are counted in one open-addressing table allocated per call,
 * never per feature. Remote (OpenAI-compatible) embedders plug into the
 * same vtable (llm/embed_int.h, llm/embed_openai.c). */
#include "llm/embed.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "config.h"
#include "llm/embed_int.h"
#include "llm/terms.h"

/* ---- generic API --------------------------------------------------------- */

void llm_embedder_free(llm_embedder *e)
{
    if (e) e->destroy(e);
}

const char *llm_embedder_model(const llm_embedder *e) { return e->model; }

int llm_embedder_dim(const llm_embedder *e) { return e->dim; }

int llm_model_is_builtin(const char *model) { return model && strncmp(model, "builtin-", 8) == 0; }

zk_rc llm_embed(llm_embedder *e, size_t n, const char *const *texts, const size_t *lens,
                float *out, char *err)
{
    if (!e || (n > 0 && (!texts || !out)))
        return zk_fail(err, ZK_INVALID, "llm_embed: NULL argument");
    if (n == 0) return ZK_OK;
    return e->embed(e, n, texts, lens, out, err);
}

/* ---- builtin: feature classes ---------------------------------------------- */

#define BUILTIN_MODEL "builtin-hash-v2"
#define BUILTIN_MAX_DIM 65536

enum {
    F_WORD,       /* stemmed word */
    F_STOP,       /* stopword: kept, weakly */
    F_WBIGRAM,    /* adjacent content words */
    F_CHAR3,      /* character trigram of ^word$ */
    F_CHAR4,      /* character 4-gram of ^word$ */
    F_CJK1,       /* single CJK character */
    F_CJK2,       /* adjacent CJK characters (no trigrams: they only add collisions) */
    F__N
};

/* Extra factors for CJK features touching a function character (see
 * llm__cjk_is_stopchar): such characters carry almost no topic, and without
 * corpus statistics these factors stand in for IDF. */
#define CJK_STOP1 0.1f   /* unigram of a function character */
#define CJK_STOP2 0.2f   /* bigram with at least one function character */
#define F_STOPBIT 0x10u  /* or-ed into slot.cls: reduced by the factor above */

/* Per-class weight; squared weights set how much of the vector's energy a
 * class carries. Words and CJK bigrams are the main signal. Tuned on the
 * xquad-en/xquad-zh/cmrc2018 eval sets (hybrid nDCG@10, dim 512). */
static const float class_weight[F__N] = {
    [F_WORD] = 1.0f, [F_STOP] = 0.1f, [F_WBIGRAM] = 0.5f, [F_CHAR3] = 0.35f,
    [F_CHAR4] = 0.4f, [F_CJK1] = 0.8f, [F_CJK2] = 1.0f,
};

/* Seeds keep the classes' hash spaces apart (a word "ab" vs a trigram). */
static uint64_t class_seed(int cls) { return 0x9e3779b97f4a7c15ULL * (uint64_t)(cls + 1); }

/* ---- builtin: feature counting table ------------------------------------- */

typedef struct {
    uint64_t key;      /* 0 = empty slot */
    uint32_t tf;
    uint32_t cls;
} slot;

typedef struct {
    slot *slots;
    uint32_t *used;    /* indices of occupied slots, for clearing and output */
    size_t cap;        /* power of two */
    size_t nused;
    float *vec;        /* current output row */
    int dim;
} table;

#define TABLE_MIN_CAP 4096
#define TABLE_MAX_CAP ((size_t)1 << 20)   /* beyond this, flush into the vector */

static zk_rc table_alloc(table *t, size_t cap)
{
    t->slots = zk_calloc(cap, sizeof *t->slots);
    t->used = zk_malloc(cap / 2 * sizeof *t->used);
    if (!t->slots || !t->used) {
        zk_free(t->slots);
        zk_free(t->used);
        t->slots = NULL;
        t->used = NULL;
        return ZK_NOMEM;
    }
    t->cap = cap;
    t->nused = 0;
    return ZK_OK;
}

static inline size_t slot_of(uint64_t key, size_t cap) { return (size_t)(key >> 17) & (cap - 1); }

/* 1 + ln(tf), the term-frequency factor, for the small counts nearly all
 * features have (logf per feature was 1% of ingestion's CPU). */
#define TF_TABLE 256
static float tf_factor[TF_TABLE];
static pthread_once_t tf_once = PTHREAD_ONCE_INIT;

static void tf_init(void)
{
    for (int i = 1; i < TF_TABLE; i++) tf_factor[i] = 1.0f + logf((float)i);
}

/* Add every counted feature into the vector and empty the table. */
static void table_flush(table *t)
{
    pthread_once(&tf_once, tf_init);
    float *v = t->vec;
    uint64_t dim = (uint64_t)t->dim;
    for (size_t i = 0; i < t->nused; i++) {
        slot *s = &t->slots[t->used[i]];
        float w = class_weight[s->cls & (F_STOPBIT - 1)];
        if (s->cls & F_STOPBIT) w *= s->cls == (F_CJK1 | F_STOPBIT) ? CJK_STOP1 : CJK_STOP2;
        if (s->tf > 1) w *= s->tf < TF_TABLE ? tf_factor[s->tf] : 1.0f + logf((float)s->tf);
        size_t idx = (size_t)(((s->key & 0xffffffffu) * dim) >> 32);
        v[idx] += (s->key >> 63) ? -w : w;
        s->key = 0;
    }
    t->nused = 0;
}

static zk_rc table_grow(table *t)
{
    if (t->cap >= TABLE_MAX_CAP) {
        table_flush(t);
        return ZK_OK;
    }
    table old = *t;
    zk_rc rc = table_alloc(t, old.cap * 2);
    if (rc != ZK_OK) {
        *t = old;
        table_flush(t);   /* degrade gracefully: counts restart, vector stays right */
        return ZK_OK;
    }
    for (size_t i = 0; i < old.nused; i++) {
        slot *s = &old.slots[old.used[i]];
        size_t j = slot_of(s->key, t->cap);
        while (t->slots[j].key) j = (j + 1) & (t->cap - 1);
        t->slots[j] = *s;
        t->used[t->nused++] = (uint32_t)j;
    }
    zk_free(old.slots);
    zk_free(old.used);
    return ZK_OK;
}

static inline void add_feature(table *t, unsigned cls, uint64_t key)
{
    key |= 1;   /* never 0 (the empty marker); costs one bit of the index hash */
    size_t mask = t->cap - 1, j = slot_of(key, t->cap);
    for (;;) {
        slot *s = &t->slots[j];
        if (s->key == key) {
            s->tf++;
            return;
        }
        if (!s->key) break;
        j = (j + 1) & mask;
    }
    if (t->nused + 1 > t->cap / 2) {
        table_grow(t);
        add_feature(t, cls, key);
        return;
    }
    t->slots[j].key = key;
    t->slots[j].tf = 1;
    t->slots[j].cls = cls;
    t->used[t->nused++] = (uint32_t)j;
}

/* ---- builtin: feature extraction --------------------------------------------- */

static void add_char_ngrams(table *t, const uint32_t *w, size_t n)
{
    uint32_t b[LLM__WORD_MAX + 2];
    b[0] = '^';
    memcpy(b + 1, w, n * sizeof *w);
    b[n + 1] = '$';
    size_t m = n + 2;
    for (size_t i = 0; i + 3 <= m; i++)
        add_feature(t, F_CHAR3, llm__hash_cps(class_seed(F_CHAR3), b + i, 3));
    for (size_t i = 0; i + 4 <= m; i++)
        add_feature(t, F_CHAR4, llm__hash_cps(class_seed(F_CHAR4), b + i, 4));
}

static void extract(table *t, const char *s, size_t len)
{
    llm__token tok;
    size_t pos = 0;
    int prev_kind = LLM__TOK_END;
    uint64_t prev_word = 0;       /* hash of previous content word, 0 = none */
    uint32_t prev = 0;            /* previous CJK char of the current run */
    int prev_stop = 0;            /* ... and whether it is a function character */
    int run = 0;                  /* 1 while inside a CJK run */

    for (;;) {
        pos = llm__next_token(s, len, pos, &tok);
        if (tok.kind == LLM__TOK_END) break;
        int joined = !tok.sep && tok.kind == prev_kind;
        if (tok.kind == LLM__TOK_WORD) {
            run = 0;
            if (llm__is_stopword(tok.cp, tok.n)) {
                add_feature(t, F_STOP, llm__hash_cps(class_seed(F_STOP), tok.cp, tok.n));
                prev_word = 0;
            } else {
                if (tok.n >= 3) add_char_ngrams(t, tok.cp, tok.n);
                size_t n = llm__stem(tok.cp, tok.n);
                uint64_t h = llm__hash_cps(class_seed(F_WORD), tok.cp, n);
                add_feature(t, F_WORD, h);
                if (joined && prev_word)
                    add_feature(t, F_WBIGRAM,
                                llm__mix64(prev_word * 31 + h + class_seed(F_WBIGRAM)));
                prev_word = h;
            }
        } else {
            prev_word = 0;
            uint32_t c = tok.cp[0];
            if (!joined) run = 0;
            int stop = llm__cjk_is_stopchar(c);
            add_feature(t, F_CJK1 | (stop ? F_STOPBIT : 0u),
                        llm__hash_cps(class_seed(F_CJK1), &c, 1));
            if (run) {
                uint32_t bg[2] = {prev, c};
                add_feature(t, F_CJK2 | (stop || prev_stop ? F_STOPBIT : 0u),
                            llm__hash_cps(class_seed(F_CJK2), bg, 2));
            }
            prev = c;
            prev_stop = stop;
            run = 1;
        }
        prev_kind = tok.kind;
    }
}

static void normalise(float *v, int dim)
{
    double ss = 0;
    for (int i = 0; i < dim; i++) ss += (double)v[i] * v[i];
    if (ss <= 0) return;
    float inv = (float)(1.0 / sqrt(ss));
    for (int i = 0; i < dim; i++) v[i] *= inv;
}

static zk_rc builtin_embed(llm_embedder *e, size_t n, const char *const *texts,
                           const size_t *lens, float *out, char *err)
{
    table t = {0};
    zk_rc rc = table_alloc(&t, TABLE_MIN_CAP);
    if (rc != ZK_OK) return zk_fail(err, rc, "embed: out of memory");
    t.dim = e->dim;
    for (size_t i = 0; i < n; i++) {
        float *v = out + i * (size_t)e->dim;
        memset(v, 0, (size_t)e->dim * sizeof *v);
        const char *s = texts[i];
        if (!s) continue;
        size_t len = lens ? lens[i] : strlen(s);
        t.vec = v;
        extract(&t, s, len);
        table_flush(&t);
        normalise(v, e->dim);
    }
    zk_free(t.slots);
    zk_free(t.used);
    return ZK_OK;
}

static void builtin_destroy(llm_embedder *e) { zk_free(e); }

zk_rc llm_embedder_builtin_new(int dim, llm_embedder **out, char *err)
{
    if (!out) return zk_fail(err, ZK_INVALID, "embedder: NULL output");
    *out = NULL;
    if (dim < 8 || dim > BUILTIN_MAX_DIM)
        return zk_fail(err, ZK_INVALID, "builtin embedder: dimension %d not in [8, %d]", dim,
                       BUILTIN_MAX_DIM);
    llm_embedder *e = zk_calloc(1, sizeof *e);
    if (!e) return zk_fail(err, ZK_NOMEM, "embedder: out of memory");
    e->model = BUILTIN_MODEL;
    e->dim = dim;
    e->embed = builtin_embed;
    e->destroy = builtin_destroy;
    *out = e;
    return ZK_OK;
}

/* ---- choosing an embedder from [embedding] ------------------------------- */

zk_rc llm_embedder_from_config(const zk_config *cfg, llm_embedder **out, char *err)
{
    if (!cfg || !out) return zk_fail(err, ZK_INVALID, "embedder: NULL argument");
    *out = NULL;
    const char *prov = zk_config_get(cfg, "embedding", "provider");
    long dim = zk_config_int(cfg, "embedding", "dimensions");
    if (dim <= 0 || dim > BUILTIN_MAX_DIM)
        return zk_fail(err, ZK_CONFIG, "[embedding] dimensions = %ld is out of range", dim);
    if (!strcmp(prov, "builtin")) return llm_embedder_builtin_new((int)dim, out, err);
    if (strcmp(prov, "openai") != 0)
        return zk_fail(err, ZK_CONFIG, "[embedding] provider '%s' is not supported (use builtin or openai)", prov);
    llm_openai_opts o = {
        .base_url = zk_config_get(cfg, "embedding", "base_url"),
        .model = zk_config_get(cfg, "embedding", "model"),
        .api_key = zk_config_get(cfg, "embedding", "api_key"),
        .dim = (int)dim,
        .batch_size = (int)zk_config_int(cfg, "embedding", "batch_size"),
        .concurrency = (int)zk_config_int(cfg, "embedding", "concurrency"),
        .timeout_ms = zk_config_int(cfg, "embedding", "timeout_ms"),
        .max_retries = (int)zk_config_int(cfg, "embedding", "max_retries"),
    };
    return llm_embedder_openai_new(&o, out, err);
}
