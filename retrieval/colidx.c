/* colidx.c — the column index (see colidx.h).
 *
 * Rows live in blocks; a block holds dim columns of `rows` float16 values
 * each (column d of the block at [d * rows]), so a search reads nnz(query)
 * runs of rows * 2 bytes per block into a block-sized accumulator. A block
 * has COLIDX_BLOCK_ROWS rows in a small index and more in a large one
 * (block_shift_for): each run is a stream the prefetchers must start
 * anew, and at a million rows 4 KB runs left the scan waiting on memory
 * (docs/PERFORMANCE.md). Rows are dense: removing one moves the last row
 * into its place, and an open-addressing map (linear probing,
 * backward-shift deletion) finds an id's row. Top k: a min-heap whose root is the bar a
 * row must pass; the accumulator is compared with it 8 rows at a time. */
#include "retrieval/colidx.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "half.h"
#include "retrieval/topk.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define COLIDX_X86 1
#endif

#define MAP_EMPTY (-1)
#define RESCORE_AHEAD 8   /* candidates whose cells are requested ahead (rescore) */
#define RESCORE_UNIT 64   /* candidates a thread claims at a time */
#define PAYLOAD_MAGIC "ZKCOLS1"   /* with its NUL: 8 bytes */

struct ret_colidx {
    int dim;
    unsigned shift;         /* rows per block: 1 << shift */
    size_t n;               /* rows in use */
    size_t nblocks, capblocks;
    uint16_t **blocks;
    int64_t *ids;           /* row -> id, capblocks << shift entries */
    int64_t *keys;          /* id -> row map */
    uint32_t *rows;
    size_t mcap, mcount;    /* mcap: power of two, or 0 */
    unsigned char *map;     /* snapshot mapping holding the first blocks, or NULL */
    size_t map_len;
};

/* Blocks live in anonymous memory on 2 MB pages when their size is a
 * multiple of 2 MB (512 dimensions: exactly one page), asked for with
 * madvise(MADV_HUGEPAGE). On 4 KB pages a scan touches a page per column
 * per block, each a TLB miss — dear under a hypervisor's nested paging:
 * at 1.25M rows pruned searches took 15-20% less time on 2 MB pages
 * (docs/PERFORMANCE.md). Other sizes get ordinary memory. */
#define HUGE_PAGE ((size_t)2 << 20)

static size_t block_rows(const ret_colidx *c) { return (size_t)1 << c->shift; }
/* row's place within its block */
static size_t row_off(const ret_colidx *c, size_t row) { return row & (block_rows(c) - 1); }
/* Entries of the block table for want blocks: a power of two, at least 4. */
static size_t block_cap(size_t want)
{
    size_t cap = 4;
    while (cap < want) cap *= 2;
    return cap;
}
static size_t block_bytes(int dim, unsigned shift) { return (size_t)dim * sizeof(uint16_t) << shift; }

/* The block size for an index of n rows: COLIDX_BLOCK_ROWS while small
 * (the last block is allocated whole, so a large block would waste memory
 * on a small knowledge base), 16384 rows from 131,072 rows, 65536 from
 * 524,288 — an index is always at least 8 blocks long. Pruned searches at
 * 1.25M rows, one thread: p50 5.1-5.5 ms with 2048-row blocks, 3.7-4.2
 * with 16384, 3.0-3.8 with 65536. */
#define SHIFT_MIN 11
#define SHIFT_MAX 16
static unsigned block_shift_for(size_t n)
{
    return n >= (size_t)8 << 16 ? 16 : n >= (size_t)8 << 14 ? 14 : SHIFT_MIN;
}

static uint16_t *block_alloc(int dim, unsigned shift, int zero)
{
    size_t len = block_bytes(dim, shift);
    if (len % HUGE_PAGE) return zero ? zk_calloc(1, len) : zk_malloc(len);
    void *p = zk_aligned_alloc(HUGE_PAGE, len);
    if (!p) return NULL;
    madvise(p, len, MADV_HUGEPAGE);
    if (zero) memset(p, 0, len);
    return p;
}

/* A search's view of block b: ret_colidx_promote may swap the pointer
 * while searches run (both copies hold the same values). */
static const uint16_t *block_at(const ret_colidx *c, size_t b)
{
    return __atomic_load_n(&c->blocks[b], __ATOMIC_RELAXED);
}

/* 1 if block b lives in the snapshot mapping (not to be freed). */
static int mapped(const ret_colidx *c, const uint16_t *b)
{
    return c->map && (const unsigned char *)b >= c->map && (const unsigned char *)b < c->map + c->map_len;
}

/* ---- id -> row map ---------------------------------------------------------- */

static size_t hash_id(int64_t id)
{
    uint64_t x = (uint64_t)id;   /* splitmix64 finaliser */
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27; x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return (size_t)x;
}

static size_t map_slot(const ret_colidx *c, int64_t id)
{
    size_t mask = c->mcap - 1, i = hash_id(id) & mask;
    while (c->keys[i] != MAP_EMPTY && c->keys[i] != id) i = (i + 1) & mask;
    return i;
}

static long map_get(const ret_colidx *c, int64_t id)
{
    if (!c->mcap) return -1;
    size_t i = map_slot(c, id);
    return c->keys[i] == MAP_EMPTY ? -1 : (long)c->rows[i];
}

static zk_rc map_reserve(ret_colidx *c, size_t extra)
{
    size_t want = c->mcount + extra, cap = c->mcap ? c->mcap : 64;
    while (want * 2 > cap) cap *= 2;
    if (cap == c->mcap) return ZK_OK;
    int64_t *keys = zk_malloc(cap * sizeof *keys);
    uint32_t *rows = zk_malloc(cap * sizeof *rows);
    if (!keys || !rows) {
        zk_free(keys);
        zk_free(rows);
        return ZK_NOMEM;
    }
    for (size_t i = 0; i < cap; i++) keys[i] = MAP_EMPTY;
    for (size_t i = 0; i < c->mcap; i++) {
        if (c->keys[i] == MAP_EMPTY) continue;
        size_t j = hash_id(c->keys[i]) & (cap - 1);
        while (keys[j] != MAP_EMPTY) j = (j + 1) & (cap - 1);
        keys[j] = c->keys[i];
        rows[j] = c->rows[i];
    }
    zk_free(c->keys);
    zk_free(c->rows);
    c->keys = keys;
    c->rows = rows;
    c->mcap = cap;
    return ZK_OK;
}

/* Set id's row (room reserved by the caller). */
static void map_put(ret_colidx *c, int64_t id, uint32_t row)
{
    size_t i = map_slot(c, id);
    if (c->keys[i] == MAP_EMPTY) {
        c->keys[i] = id;
        c->mcount++;
    }
    c->rows[i] = row;
}

static void map_del(ret_colidx *c, int64_t id)
{
    if (!c->mcap) return;
    size_t mask = c->mcap - 1, i = map_slot(c, id);
    if (c->keys[i] == MAP_EMPTY) return;
    /* backward-shift deletion: pull later members of the run into the hole */
    for (size_t j = (i + 1) & mask; c->keys[j] != MAP_EMPTY; j = (j + 1) & mask) {
        size_t home = hash_id(c->keys[j]) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            c->keys[i] = c->keys[j];
            c->rows[i] = c->rows[j];
            i = j;
        }
    }
    c->keys[i] = MAP_EMPTY;
    c->mcount--;
}

/* ---- rows ------------------------------------------------------------------- */

ret_colidx *ret_colidx_new(int dim)
{
    if (dim <= 0) return NULL;
    ret_colidx *c = zk_calloc(1, sizeof *c);
    if (c) {
        c->dim = dim;
        c->shift = SHIFT_MIN;
    }
    return c;
}

void ret_colidx_clear(ret_colidx *c)
{
    for (size_t b = 0; b < c->nblocks; b++)
        if (!mapped(c, c->blocks[b])) zk_free(c->blocks[b]);
    if (c->map) munmap(c->map, c->map_len);
    zk_free(c->blocks);
    zk_free(c->ids);
    zk_free(c->keys);
    zk_free(c->rows);
    int dim = c->dim;
    memset(c, 0, sizeof *c);
    c->dim = dim;
    c->shift = SHIFT_MIN;
}

void ret_colidx_free(ret_colidx *c)
{
    if (!c) return;
    ret_colidx_clear(c);
    zk_free(c);
}

size_t ret_colidx_count(const ret_colidx *c) { return c->n; }

int ret_colidx_has(const ret_colidx *c, int64_t id) { return map_get(c, id) >= 0; }

void ret_colidx_ids(const ret_colidx *c, int64_t *out)
{
    if (c->n) memcpy(out, c->ids, c->n * sizeof *out);
}

static uint16_t *cell(const ret_colidx *c, size_t row, int d)
{
    return c->blocks[row >> c->shift] + ((size_t)d << c->shift) + row_off(c, row);
}

/* Room for cap blocks of the current size. */
static zk_rc reserve_blocks(ret_colidx *c, size_t want)
{
    if (want <= c->capblocks) return ZK_OK;
    size_t cap = block_cap(want);
    uint16_t **blocks = zk_realloc(c->blocks, cap * sizeof *blocks);
    if (!blocks) return ZK_NOMEM;
    c->blocks = blocks;
    int64_t *ids = zk_realloc(c->ids, (cap << c->shift) * sizeof *ids);
    if (!ids) return ZK_NOMEM;
    c->ids = ids;
    c->capblocks = cap;
    return ZK_OK;
}

/* Move every row into blocks of 1 << shift rows (larger than now), with
 * room for one more row. Leaves c as it was when memory runs out. */
static zk_rc relayout(ret_colidx *c, unsigned shift)
{
    size_t rows = (size_t)1 << shift, old = block_rows(c), nb = (c->n + rows) / rows, cap = block_cap(nb);
    uint16_t **blocks = zk_calloc(cap, sizeof *blocks);
    int64_t *ids = zk_malloc((cap << shift) * sizeof *ids);
    int ok = blocks && ids;
    for (size_t b = 0; ok && b < nb; b++) ok = (blocks[b] = block_alloc(c->dim, shift, 1)) != NULL;
    if (!ok) {
        for (size_t b = 0; blocks && b < nb; b++) zk_free(blocks[b]);
        zk_free(blocks);
        zk_free(ids);
        return ZK_NOMEM;
    }
    /* an old block is a run of rows of one new block, column by column */
    for (size_t b = 0; b < c->nblocks; b++) {
        size_t first = b * old, m = ZK_MIN(old, c->n - first);
        uint16_t *dst = blocks[first >> shift] + (first & (rows - 1));
        for (size_t d = 0; d < (size_t)c->dim; d++)
            memcpy(dst + (d << shift), c->blocks[b] + d * old, m * sizeof(uint16_t));
        if (!mapped(c, c->blocks[b])) zk_free(c->blocks[b]);
    }
    if (c->n) memcpy(ids, c->ids, c->n * sizeof *ids);
    zk_free(c->blocks);
    zk_free(c->ids);
    c->blocks = blocks;
    c->ids = ids;
    c->nblocks = nb;
    c->capblocks = cap;
    c->shift = shift;
    return ZK_OK;
}

/* Room for one more row. */
static zk_rc grow(ret_colidx *c)
{
    if (c->n < c->nblocks << c->shift) return ZK_OK;
    if (c->n + 1 > UINT32_MAX) return ZK_TOOBIG;
    unsigned shift = block_shift_for(c->n + 1);
    if (shift > c->shift) return relayout(c, shift);
    if (reserve_blocks(c, c->nblocks + 1) != ZK_OK) return ZK_NOMEM;
    /* zeroed: the unused tail of the last block is written to snapshots */
    if (!(c->blocks[c->nblocks] = block_alloc(c->dim, c->shift, 1))) return ZK_NOMEM;
    c->nblocks++;
    return ZK_OK;
}

/* Rows are written ADD_TILE at a time, column by column. A row's values lie
 * in dim columns a block's rows * 2 bytes apart, a page or more each:
 * written row by row, an add touched dim pages per row, and at a million
 * rows it took a third of the CPU of the thread that replays a bulk load
 * into the index. A tile writes each column's run of consecutive rows in
 * one go. */
#define ADD_TILE 256

zk_rc ret_colidx_add(ret_colidx *c, size_t n, const int64_t *ids, const float *vecs, char *err)
{
    size_t dim = (size_t)c->dim;
    uint16_t *half = zk_malloc(ADD_TILE * dim * sizeof *half);
    size_t *row = zk_malloc(ADD_TILE * sizeof *row);
    zk_rc rc = half && row ? map_reserve(c, n) : ZK_NOMEM;
    for (size_t t = 0; t < n && rc == ZK_OK; t += ADD_TILE) {
        size_t m = 0, want = ZK_MIN(ADD_TILE, n - t);
        for (; m < want; m++) {
            int64_t id = ids[t + m];
            if (id < 0) {
                rc = zk_fail(err, ZK_INVALID, "column index: negative id %lld", (long long)id);
                break;
            }
            long r = map_get(c, id);
            if (r < 0) {
                if ((rc = grow(c)) != ZK_OK) break;
                r = (long)c->n++;
                c->ids[r] = id;
                map_put(c, id, (uint32_t)r);
            }
            row[m] = (size_t)r;
        }
        /* the rows placed so far get their values, even if the next failed */
        zk_floats_to_halves(vecs + t * dim, half, m * dim);
        for (size_t a = 0, b; a < m; a = b) {
            for (b = a + 1; b < m && row[b] == row[b - 1] + 1 && row_off(c, row[b]); b++) {}
            for (size_t d = 0; d < dim; d++) {
                uint16_t *dst = cell(c, row[a], (int)d);
                const uint16_t *src = half + a * dim + d;
                for (size_t i = 0; i < b - a; i++) dst[i] = src[i * dim];
            }
        }
    }
    zk_free(half);
    zk_free(row);
    if (rc == ZK_NOMEM || rc == ZK_TOOBIG) zk_fail(err, rc, "column index: out of memory");
    return rc;
}

void ret_colidx_remove(ret_colidx *c, size_t n, const int64_t *ids)
{
    for (size_t i = 0; i < n; i++) {
        long row = map_get(c, ids[i]);
        if (row < 0) continue;
        size_t last = c->n - 1;
        map_del(c, ids[i]);
        if ((size_t)row != last) {   /* the last row fills the hole */
            for (int d = 0; d < c->dim; d++) *cell(c, (size_t)row, d) = *cell(c, last, d);
            c->ids[row] = c->ids[last];
            map_put(c, c->ids[row], (uint32_t)row);
        }
        c->n--;
        if (c->nblocks && c->n <= (c->nblocks - 1) << c->shift) {
            uint16_t *b = c->blocks[--c->nblocks];
            if (!mapped(c, b)) zk_free(b);
        }
    }
}

/* ---- search ----------------------------------------------------------------- */

/* Does ids[i] pass the bitmap? ids[] is read only when there is one: the
 * first pass of a pruned scan keeps row numbers, and a cache miss on the
 * id of every row passing the bar was a fifth of the collecting step. */
static int allowed(const uint8_t *bitmap, size_t len, const int64_t *ids, size_t i)
{
    if (!bitmap) return 1;
    int64_t id = ids[i];
    return (uint64_t)id >> 3 < len && (bitmap[id >> 3] >> (id & 7) & 1);
}

/* acc[0..m) = sum over j of w[j] * column dims[j] of block blk */
static void accumulate_scalar(const uint16_t *blk, size_t stride, const int *dims, const float *w, int nnz, size_t m,
                              float *acc)
{
    memset(acc, 0, m * sizeof *acc);
    for (int j = 0; j < nnz; j++) {
        const uint16_t *col = blk + (size_t)dims[j] * stride;
        for (size_t i = 0; i < m; i++) acc[i] += w[j] * zk_half_to_float(col[i]);
    }
}

/* Rows whose score reaches the heap's bar and whose id passes the bitmap
 * go in as their id, or with rowbase >= 0 as their row number (rowbase + i:
 * the first pass of a pruned search). */
static void collect_scalar(const float *acc, size_t m, const int64_t *ids, const uint8_t *bitmap, size_t blen,
                           int64_t rowbase, ret_topk *h)
{
    for (size_t i = 0; i < m; i++)
        if (acc[i] >= ret_topk_bar(h) && allowed(bitmap, blen, ids, i))
            ret_topk_push(h, rowbase >= 0 ? rowbase + (int64_t)i : ids[i], acc[i]);
}

#ifdef COLIDX_X86
#define F16X8(col, i) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((col) + (i))))

/* Rows i..i+7 of four columns times their weights, added to acc's (or, in
 * the first pass, to nothing). */
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline __m256
four_columns(const uint16_t *const *c, const __m256 *q, const float *acc, size_t i, int first)
{
    __m256 a = first ? _mm256_mul_ps(q[0], F16X8(c[0], i)) : _mm256_fmadd_ps(q[0], F16X8(c[0], i), _mm256_loadu_ps(acc + i));
    a = _mm256_fmadd_ps(q[1], F16X8(c[1], i), a);
    a = _mm256_fmadd_ps(q[2], F16X8(c[2], i), a);
    return _mm256_fmadd_ps(q[3], F16X8(c[3], i), a);
}

/* Scores m rows a block apart from their columns and offers those that
 * reach the heap's bar to it, in one go: the columns come four per pass
 * over acc (the accumulator is loaded and stored once for four products
 * instead of once each: 1.6x faster at 1.25M rows), the first pass only
 * stores and the last one only loads — it compares the finished scores
 * with the bar while they are in registers, so neither a clearing pass
 * nor a collecting pass reads acc again. A last pass short of four
 * columns repeats the first column of its group with weight 0 (a cell
 * already in L1). */
__attribute__((target("avx2,fma,f16c"))) static void score_avx2(const uint16_t *blk, size_t stride, const int *dims,
                                                                const float *w, int nnz, size_t m, float *acc,
                                                                const int64_t *ids, const uint8_t *bitmap,
                                                                size_t blen, int64_t rowbase, ret_topk *h)
{
    size_t m8 = m & ~(size_t)7;
    for (int j = 0; j < nnz; j += 4) {
        const uint16_t *c[4];
        __m256 q[4];
        for (int t = 0; t < 4; t++) {
            int d = j + t < nnz ? j + t : j;
            c[t] = blk + (size_t)dims[d] * stride;
            q[t] = _mm256_set1_ps(j + t < nnz ? w[d] : 0.0f);
        }
        int first = j == 0, last = j + 4 >= nnz;
        if (!last) {
            for (size_t i = 0; i < m8; i += 8) _mm256_storeu_ps(acc + i, four_columns(c, q, acc, i, first));
            continue;
        }
        __m256 bar = _mm256_set1_ps(ret_topk_bar(h));
        for (size_t i = 0; i < m8; i += 8) {
            __m256 a = four_columns(c, q, acc, i, first);
            int mask = _mm256_movemask_ps(_mm256_cmp_ps(a, bar, _CMP_GE_OQ));
            if (!mask) continue;
            float s[8];
            _mm256_storeu_ps(s, a);
            while (mask) {
                int b = __builtin_ctz((unsigned)mask);
                mask &= mask - 1;
                if (s[b] >= ret_topk_bar(h) && allowed(bitmap, blen, ids, i + (size_t)b))
                    ret_topk_push(h, rowbase >= 0 ? rowbase + (int64_t)i + b : ids[i + (size_t)b], s[b]);
            }
            bar = _mm256_set1_ps(ret_topk_bar(h));
        }
    }
    /* the last rows of a run short of eight, one at a time */
    for (size_t i = m8; i < m; i++) {
        float s = 0;
        for (int j = 0; j < nnz; j++) s += w[j] * zk_half_to_float(blk[(size_t)dims[j] * stride + i]);
        acc[i] = s;
    }
    collect_scalar(acc + m8, m - m8, ids + m8, bitmap, blen, rowbase >= 0 ? rowbase + (int64_t)m8 : -1, h);
}

#endif

/* The query's nonzero dimensions and weights; returns how many. */
static int nonzero(const float *q, int dim, int *dims, float *w)
{
    int nnz = 0;
    for (int d = 0; d < dim; d++) {
        if (q[d] == 0.0f || q[d] != q[d]) continue;
        dims[nnz] = d;
        w[nnz++] = q[d];
    }
    return nnz;
}

/* Score m consecutive rows starting at column offset blk (a block plus a
 * row offset) and offer those that pass the bitmap to the heap. */
static void score_rows(int simd, const uint16_t *blk, size_t stride, const int *dims, const float *w, int nnz, size_t m,
                       float *acc, const int64_t *ids, const uint8_t *bitmap, size_t blen, int64_t rowbase,
                       ret_topk *h)
{
#ifdef COLIDX_X86
    if (simd && nnz > 0) {
        score_avx2(blk, stride, dims, w, nnz, m, acc, ids, bitmap, blen, rowbase, h);
        return;
    }
#endif
    (void)simd;
    accumulate_scalar(blk, stride, dims, w, nnz, m, acc);
    collect_scalar(acc, m, ids, bitmap, blen, rowbase, h);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Shared by both searches: scratch for the query's nonzero dimensions, the
 * accumulator and the heap's scores. */
typedef struct {
    int *dims;
    float *w, *acc, *hs;
    int nnz, simd;
} scan;

static zk_rc scan_init(scan *sc, const ret_colidx *c, const float *query, int k, char *err)
{
    sc->dims = zk_malloc((size_t)c->dim * sizeof *sc->dims);
    sc->w = zk_malloc((size_t)c->dim * sizeof *sc->w);
    sc->acc = zk_malloc(block_rows(c) * sizeof *sc->acc);
    sc->hs = zk_malloc((size_t)k * sizeof *sc->hs);
    if (!sc->dims || !sc->w || !sc->acc || !sc->hs) return zk_fail(err, ZK_NOMEM, "column index search: out of memory");
    sc->nnz = nonzero(query, c->dim, sc->dims, sc->w);
#ifdef COLIDX_X86
    sc->simd = zk_cpu_avx2_fma_f16c();
#else
    sc->simd = 0;
#endif
    return ZK_OK;
}

static void scan_finish(scan *sc, ret_topk *h, float *out_scores, int *out_n)
{
    ret_topk_finish(h);
    *out_n = h->n;
    if (out_scores) memcpy(out_scores, sc->hs, (size_t)*out_n * sizeof *sc->hs);
}

static void scan_free(scan *sc)
{
    zk_free(sc->dims);
    zk_free(sc->w);
    zk_free(sc->acc);
    zk_free(sc->hs);
}

/* One scan, open to a team: units (blocks, or runs of rows of one block)
 * are claimed from `next`; each thread keeps a top list of its own,
 * helpers merge theirs into `extra` (under the team's lock) before they
 * leave. */
typedef struct {
    const ret_colidx *c;
    const scan *sc;
    int nnz, by_row;
    const uint8_t *bitmap;
    size_t blen;
    const uint32_t *run_first, *run_len;   /* NULL: the units are the blocks */
    const int64_t *cand;    /* non-NULL: the units are RESCORE_UNIT of these rows, rescored */
    size_t ncand;
    size_t nunits;
    atomic_size_t next;
    ret_topk *extra;
} scanjob;

struct ret_colidx_team {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    scanjob *job;           /* the scan open for help, or NULL */
    unsigned long offers;   /* scans offered so far */
    int active;             /* helpers inside job */
    int closed;
};

/* Exact scores of n candidate rows into h. Rescoring reads nnz values of
 * each candidate, each in its own column's page: one cache miss apiece,
 * ~15% of a scan's time when taken one after another. The cells of a
 * candidate RESCORE_AHEAD places on are requested first, so the misses
 * overlap. */
static void rescore(const ret_colidx *c, const scan *sc, const int64_t *rows, size_t n, ret_topk *h)
{
    for (size_t i = 0; i < n; i++) {
        if (i + RESCORE_AHEAD < n) {
            size_t ahead = (size_t)rows[i + RESCORE_AHEAD];
            const uint16_t *nb = block_at(c, ahead >> c->shift) + row_off(c, ahead);
            for (int j = 0; j < sc->nnz; j++) __builtin_prefetch(nb + ((size_t)sc->dims[j] << c->shift));
        }
        size_t row = (size_t)rows[i];
        const uint16_t *blk = block_at(c, row >> c->shift) + row_off(c, row);
        float s = 0;
        for (int j = 0; j < sc->nnz; j++) s += sc->w[j] * zk_half_to_float(blk[(size_t)sc->dims[j] << c->shift]);
        ret_topk_push(h, c->ids[row], s);
    }
}

/* Claims and scores units until none are left; returns how many. */
static size_t run_units(scanjob *j, float *acc, ret_topk *h)
{
    const ret_colidx *c = j->c;
    for (size_t done = 0;; done++) {
        size_t u = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (u >= j->nunits) return done;
        if (j->cand) {
            rescore(c, j->sc, j->cand + u * RESCORE_UNIT, ZK_MIN(RESCORE_UNIT, j->ncand - u * RESCORE_UNIT), h);
            continue;
        }
        size_t rows = block_rows(c), first = j->run_first ? j->run_first[u] : u * rows;
        size_t m = j->run_first ? j->run_len[u] : ZK_MIN(c->n - first, rows);
        score_rows(j->sc->simd, block_at(c, first >> c->shift) + row_off(c, first), rows, j->sc->dims, j->sc->w,
                   j->nnz, m, acc, c->ids + first, j->bitmap, j->blen, j->by_row ? (int64_t)first : -1, h);
    }
}

ret_colidx_team *ret_colidx_team_new(void)
{
    ret_colidx_team *t = zk_calloc(1, sizeof *t);
    if (!t) return NULL;
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        zk_free(t);
        return NULL;
    }
    if (pthread_cond_init(&t->cv, NULL) != 0) {
        pthread_mutex_destroy(&t->mu);
        zk_free(t);
        return NULL;
    }
    return t;
}

void ret_colidx_team_free(ret_colidx_team *t)
{
    if (!t) return;
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    zk_free(t);
}

void ret_colidx_team_close(ret_colidx_team *t)
{
    pthread_mutex_lock(&t->mu);
    t->closed = 1;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

size_t ret_colidx_team_help(ret_colidx_team *t)
{
    unsigned long seen = 0;
    size_t units = 0;
    /* scratch kept across offers, allocated with the lock released; the
     * job stays valid while this helper counts as active */
    float *acc = NULL, *hs = NULL;
    int64_t *hid = NULL;
    int hcap = 0;
    size_t acap = 0;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->closed && (!t->job || t->offers == seen)) pthread_cond_wait(&t->cv, &t->mu);
        if (t->closed) break;
        scanjob *j = t->job;
        seen = t->offers;
        t->active++;
        pthread_mutex_unlock(&t->mu);
        int cap = j->extra->k;
        if (cap > hcap) {
            zk_free(hs);
            zk_free(hid);
            hs = zk_malloc((size_t)cap * sizeof *hs);
            hid = zk_malloc((size_t)cap * sizeof *hid);
            hcap = hs && hid ? cap : 0;
        }
        if (block_rows(j->c) > acap) {
            zk_free(acc);
            acc = zk_malloc(block_rows(j->c) * sizeof *acc);
            acap = acc ? block_rows(j->c) : 0;
        }
        ret_topk mine = {hid, hs, 0, cap};
        if (hcap && acap) units += run_units(j, acc, &mine);
        pthread_mutex_lock(&t->mu);
        for (int i = 0; i < mine.n; i++) ret_topk_push(j->extra, hid[i], hs[i]);
        t->active--;
        pthread_cond_broadcast(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    zk_free(acc);
    zk_free(hs);
    zk_free(hid);
    return units;
}

/* Scores the job's units into h, with a team's helpers if there is one. */
static zk_rc run_job(scanjob *j, ret_colidx_team *team, ret_topk *h, char *err)
{
    atomic_init(&j->next, 0);
    if (!team || j->nunits < 2) {
        run_units(j, j->sc->acc, h);
        return ZK_OK;
    }
    int64_t *xid = zk_malloc((size_t)h->k * sizeof *xid);
    float *xs = zk_malloc((size_t)h->k * sizeof *xs);
    if (!xid || !xs) {
        zk_free(xid);
        zk_free(xs);
        return zk_fail(err, ZK_NOMEM, "column index search: out of memory");
    }
    ret_topk extra = {xid, xs, 0, h->k};
    j->extra = &extra;
    pthread_mutex_lock(&team->mu);
    team->job = j;
    team->offers++;
    pthread_cond_broadcast(&team->cv);
    pthread_mutex_unlock(&team->mu);
    run_units(j, j->sc->acc, h);
    pthread_mutex_lock(&team->mu);
    team->job = NULL;
    while (team->active) pthread_cond_wait(&team->cv, &team->mu);
    pthread_mutex_unlock(&team->mu);
    for (int i = 0; i < extra.n; i++) ret_topk_push(h, xid[i], xs[i]);
    zk_free(xid);
    zk_free(xs);
    return ZK_OK;
}

/* Every row of the index scored on the first nnz of the query's dimensions
 * (sc->dims, sc->w) and offered to h, as its id or, with by_row, as its row
 * number. */
static zk_rc scan_blocks(const ret_colidx *c, const scan *sc, int nnz, const uint8_t *bitmap, size_t blen,
                         int by_row, ret_colidx_team *team, ret_topk *h, char *err)
{
    scanjob j = {.c = c, .sc = sc, .nnz = nnz, .by_row = by_row, .bitmap = bitmap, .blen = blen,
                 .nunits = c->nblocks};
    return run_job(&j, team, h, err);
}

typedef struct { float w; int d; } dimw;

static int by_weight(const void *a, const void *b)
{
    const dimw *x = a, *y = b;
    float u = fabsf(x->w), v = fabsf(y->w);
    if (u != v) return u < v ? 1 : -1;
    return x->d - y->d;
}

/* The pruned scan: the query's dimensions are put heaviest first, every
 * row is scored on the first `top` of them, and the best ncand rows (kept
 * as row numbers) are rescored exactly over all of them into h. */
static zk_rc pruned_scan(const ret_colidx *c, scan *sc, int top, int ncand, const uint8_t *bitmap, size_t blen,
                         ret_colidx_team *team, ret_topk *h, char *err)
{
    dimw *dw = zk_malloc((size_t)sc->nnz * sizeof *dw);
    float *cs = zk_malloc((size_t)ncand * sizeof *cs);
    int64_t *crow = zk_malloc((size_t)ncand * sizeof *crow);
    zk_rc rc = ZK_OK;
    if (!dw || !cs || !crow) {
        rc = zk_fail(err, ZK_NOMEM, "column index search: out of memory");
        goto out;
    }
    for (int j = 0; j < sc->nnz; j++) dw[j] = (dimw){sc->w[j], sc->dims[j]};
    qsort(dw, (size_t)sc->nnz, sizeof *dw, by_weight);
    for (int j = 0; j < sc->nnz; j++) {
        sc->dims[j] = dw[j].d;
        sc->w[j] = dw[j].w;
    }
    ret_topk first = {crow, cs, 0, ncand};
    if ((rc = scan_blocks(c, sc, top, bitmap, blen, 1, team, &first, err)) != ZK_OK) goto out;
    /* the candidates, rescored exactly over all the query's dimensions,
     * shared with the team like the first pass */
    scanjob rj = {.c = c, .sc = sc, .nnz = sc->nnz, .cand = crow, .ncand = (size_t)first.n,
                  .nunits = ((size_t)first.n + RESCORE_UNIT - 1) / RESCORE_UNIT};
    rc = run_job(&rj, team, h, err);
out:
    zk_free(dw);
    zk_free(cs);
    zk_free(crow);
    return rc;
}

zk_rc ret_colidx_search_pruned(const ret_colidx *c, const float *query, int k, int top, int ncand,
                               const uint8_t *bitmap, size_t bitmap_len, ret_colidx_team *team, int64_t *out_ids,
                               float *out_scores, int *out_n, char *err)
{
    *out_n = 0;
    if (k <= 0 || c->n == 0) return ZK_OK;
    scan sc = {0};
    zk_rc rc = scan_init(&sc, c, query, k, err);
    ret_topk h = {out_ids, sc.hs, 0, k};
    if (rc == ZK_OK && top > 0 && top < sc.nnz && ncand >= k && (size_t)ncand < c->n)
        rc = pruned_scan(c, &sc, top, ncand, bitmap, bitmap_len, team, &h, err);
    else if (rc == ZK_OK)
        rc = scan_blocks(c, &sc, sc.nnz, bitmap, bitmap_len, 0, team, &h, err);
    if (rc == ZK_OK) scan_finish(&sc, &h, out_scores, out_n);
    scan_free(&sc);
    return rc;
}

zk_rc ret_colidx_search(const ret_colidx *c, const float *query, int k, const uint8_t *bitmap,
                        size_t bitmap_len, int64_t *out_ids, float *out_scores, int *out_n, char *err)
{
    return ret_colidx_search_pruned(c, query, k, 0, 0, bitmap, bitmap_len, NULL, out_ids, out_scores, out_n, err);
}

/* The allowed ids' rows, sorted, are scored run by run: a caller's chunks
 * are mostly whole documents, so their rows come in runs that the block
 * kernel scores 8 at a time with sequential reads, instead of nnz scattered
 * reads per row. A team's helpers take runs too. */
zk_rc ret_colidx_search_ids(const ret_colidx *c, const float *query, int k, const int64_t *ids, size_t n,
                            ret_colidx_team *team, int64_t *out_ids, float *out_scores, int *out_n, char *err)
{
    *out_n = 0;
    if (k <= 0 || c->n == 0 || n == 0) return ZK_OK;
    scan sc = {0};
    zk_rc rc = scan_init(&sc, c, query, k, err);
    ret_topk h = {out_ids, sc.hs, 0, k};
    uint32_t *rows = rc == ZK_OK ? zk_malloc(n * sizeof *rows) : NULL;
    uint32_t *lens = rows ? zk_malloc(n * sizeof *lens) : NULL;
    if (rc == ZK_OK && !lens) rc = zk_fail(err, ZK_NOMEM, "column index search: out of memory");
    if (rc == ZK_OK) {
        size_t nr = 0, nruns = 0;
        int sorted = 1;
        for (size_t i = 0; i < n; i++) {
            long row = map_get(c, ids[i]);
            if (row < 0) continue;
            if (nr && (uint32_t)row <= rows[nr - 1]) sorted = 0;
            rows[nr++] = (uint32_t)row;
        }
        if (!sorted) qsort(rows, nr, sizeof *rows, cmp_u32);
        /* runs of one block each, written over rows (a run starts no later
         * than the row it was read from) */
        for (size_t i = 0; i < nr;) {
            size_t j = i + 1, first = rows[i];
            while (j < nr && rows[j] <= rows[j - 1] + 1 && rows[j] >> c->shift == first >> c->shift) j++;
            lens[nruns] = rows[j - 1] + 1 - (uint32_t)first;   /* duplicates collapse into the run */
            rows[nruns++] = (uint32_t)first;
            i = j;
        }
        scanjob j = {.c = c, .sc = &sc, .nnz = sc.nnz, .run_first = rows, .run_len = lens, .nunits = nruns};
        if ((rc = run_job(&j, team, &h, err)) == ZK_OK) scan_finish(&sc, &h, out_scores, out_n);
    }
    zk_free(rows);
    zk_free(lens);
    scan_free(&sc);
    return rc;
}

/* ---- snapshot payload --------------------------------------------------------- */

static void le32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static void le64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static uint32_t rd32(const unsigned char *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static uint64_t rd64(const unsigned char *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

#define PAYLOAD_HDR 24   /* magic 8, dim 4, block rows 4, n 8 */

zk_rc ret_colidx_write(const ret_colidx *c, FILE *f, char *err)
{
    unsigned char hdr[PAYLOAD_HDR];
    memcpy(hdr, PAYLOAD_MAGIC, 8);
    le32(hdr + 8, (uint32_t)c->dim);
    le32(hdr + 12, (uint32_t)block_rows(c));
    le64(hdr + 16, (uint64_t)c->n);
    int ok = fwrite(hdr, 1, sizeof hdr, f) == sizeof hdr;
    for (size_t i = 0; ok && i < c->n; i++) {
        unsigned char b[8];
        le64(b, (uint64_t)c->ids[i]);
        ok = fwrite(b, 1, 8, f) == 8;
    }
    /* float16 cells as stored: little-endian on every machine zhiku runs on */
    size_t len = block_bytes(c->dim, c->shift);
    for (size_t b = 0; ok && b < c->nblocks; b++) ok = fwrite(c->blocks[b], 1, len, f) == len;
    return ok ? ZK_OK : zk_fail(err, ZK_IO, "column index: write failed");
}

/* Parse a payload; blocks are copied, or (map != NULL) used in place. */
static zk_rc read_payload(const unsigned char *p, size_t len, int dim, unsigned char *map, size_t map_len,
                          ret_colidx **out, int *took_map, char *err)
{
    *out = NULL;
    *took_map = 0;
    if (len < PAYLOAD_HDR || memcmp(p, PAYLOAD_MAGIC, 8) != 0)
        return zk_fail(err, ZK_CORRUPT, "column index: bad payload header");
    uint64_t n = rd64(p + 16);
    uint32_t rows = rd32(p + 12);
    unsigned shift = SHIFT_MIN;
    while (shift < SHIFT_MAX && (uint32_t)1 << shift < rows) shift++;
    if ((int)rd32(p + 8) != dim || rows != (uint32_t)1 << shift || n > UINT32_MAX)
        return zk_fail(err, ZK_CORRUPT, "column index: dimension %u, block %u, %llu rows", rd32(p + 8), rows,
                       (unsigned long long)n);
    /* blocks too small for the index's size (written before blocks grew
     * with it): rebuilt once, in the layout that scans faster */
    if (shift < block_shift_for((size_t)n))
        return zk_fail(err, ZK_CORRUPT, "column index: %u-row blocks for %llu rows, %u wanted", rows,
                       (unsigned long long)n, 1u << block_shift_for((size_t)n));
    size_t nblocks = (size_t)((n + rows - 1) >> shift), bb = block_bytes(dim, shift);
    if ((len - PAYLOAD_HDR) / 8 < n || len != PAYLOAD_HDR + n * 8 + nblocks * bb)
        return zk_fail(err, ZK_CORRUPT, "column index: payload of %zu bytes for %llu rows", len,
                       (unsigned long long)n);
    ret_colidx *c = ret_colidx_new(dim);
    if (!c) goto nomem;
    c->shift = shift;
    c->map = map;   /* from here on freeing c unmaps it */
    c->map_len = map_len;
    *took_map = map != NULL;
    if (map_reserve(c, (size_t)n) != ZK_OK) goto nomem;
    const unsigned char *q = p + PAYLOAD_HDR;
    size_t cap = block_cap(nblocks);
    if (!(c->blocks = zk_calloc(cap, sizeof *c->blocks)) || !(c->ids = zk_malloc((cap << shift) * sizeof *c->ids)))
        goto nomem;
    c->capblocks = cap;
    for (size_t i = 0; i < n; i++, q += 8) {
        int64_t id = (int64_t)rd64(q);
        if (id < 0 || map_get(c, id) >= 0) {
            ret_colidx_free(c);
            return zk_fail(err, ZK_CORRUPT, "column index: invalid or duplicate id %lld", (long long)id);
        }
        c->ids[i] = id;
        map_put(c, id, (uint32_t)i);
    }
    for (size_t b = 0; b < nblocks; b++, q += bb) {
        if (map) {
            c->blocks[b] = (uint16_t *)(map + (q - (const unsigned char *)map));
        } else {
            if (!(c->blocks[b] = block_alloc(dim, shift, 0))) goto nomem;
            memcpy(c->blocks[b], q, bb);
        }
        c->nblocks = b + 1;
    }
    c->n = (size_t)n;
    *out = c;
    return ZK_OK;
nomem:
    ret_colidx_free(c);
    return zk_fail(err, ZK_NOMEM, "column index: out of memory");
}

zk_rc ret_colidx_read(const unsigned char *p, size_t len, int dim, ret_colidx **out, char *err)
{
    int took;
    return read_payload(p, len, dim, NULL, 0, out, &took, err);
}

zk_rc ret_colidx_read_mapped(unsigned char *p, size_t len, int dim, void *map, size_t map_len, ret_colidx **out,
                             char *err)
{
    int took;
    zk_rc rc = read_payload(p, len, dim, map, map_len, out, &took, err);
    if (rc != ZK_OK && !took) munmap(map, map_len);
    return rc;
}

/* Are 2 MB pages to be had (transparent huge pages not "never")? */
static int huge_pages_on(void)
{
    static int on = -1;
    int v = __atomic_load_n(&on, __ATOMIC_RELAXED);
    if (v < 0) {
        char buf[128] = "";
        FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
        if (f) {
            if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
            fclose(f);
        }
        v = f && !strstr(buf, "[never]");
        __atomic_store_n(&on, v, __ATOMIC_RELAXED);
    }
    return v;
}

size_t ret_colidx_promote(ret_colidx *c, size_t max_blocks)
{
    size_t moved = 0, len = block_bytes(c->dim, c->shift);
    if (len % HUGE_PAGE || !huge_pages_on()) return 0;   /* the copy would gain nothing */
    for (size_t b = 0; c->map && b < c->nblocks && moved < max_blocks; b++) {
        if (!mapped(c, c->blocks[b])) continue;
        uint16_t *copy = block_alloc(c->dim, c->shift, 0);
        if (!copy) break;   /* out of memory: the rest stays mapped */
        memcpy(copy, c->blocks[b], len);
        __atomic_store_n(&c->blocks[b], copy, __ATOMIC_RELEASE);
        moved++;
    }
    return moved;
}

int ret_colidx_drop_mapping(ret_colidx *c)
{
    if (!c->map) return 1;
    for (size_t b = 0; b < c->nblocks; b++)
        if (mapped(c, c->blocks[b])) return 0;
    munmap(c->map, c->map_len);
    c->map = NULL;
    c->map_len = 0;
    return 1;
}
