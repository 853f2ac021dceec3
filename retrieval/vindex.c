/* vindex.c — the FAISS vector index (retrieval/vindex.h), through the C API.
 *
 * The store calls it to replay `changes` (batches of add/remove, then save)
 * and the search path calls ret_vindex_search() or, for a principal that may
 * read only part of the corpus, ret_vindex_search_allowed() once per query.
 * Small indexes are exact (IDMap2,Flat). Past IVF_THRESHOLD vectors a
 * background thread trains an IVF index (nlist ~ IVF_LISTS_PER_SQRT sqrt(n),
 * fp16 codes) on a sample, fills it from the live index and leaves it READY;
 * the next writer call (add/remove/save/ret_vindex_upgrade) swaps it in
 * after re-applying what changed meanwhile. The IVF index is retrained the
 * same way when it has grown IVF_GROWTH times. Single-query searches scan
 * with zhiku's SIMD kernels (faiss_capi.cpp; Debian's FAISS is a scalar
 * baseline build), filtered ones with a bitmap of the allowed ids. A hash
 * set of the ids present lets add() skip removal unless an id is really
 * being replaced. The snapshot is one file, dir/index.zkv: a header (magic,
 * version, dim, applied_seq, payload length, index kind, nlist, training
 * size, CRC-32C of those and of 7 payload segments) followed by
 * faiss_write_index() output; it is mapped, checked on both cores and parsed
 * from the mapping. Figures: docs/PERFORMANCE.md. */
#include "vindex.h"
#include "vindex_int.h"
#include "colidx.h"
#include "topk.h"

#include <dirent.h>
#include <math.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>

#include <openssl/evp.h>
#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#endif

#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include "faiss_capi_ext.h"

/* Exact index for small collections. It must keep the "IDMap2," prefix:
 * loading checks the id map of an IndexIDMap2. */
#define VINDEX_FLAT "IDMap2,Flat"

/* Index choice by size, measured with bench/vindex_scale_bench.c (512-d,
 * 2 cores; docs/PERFORMANCE.md "Scaling the vector index"). With the SIMD
 * scan an exact single-query search costs ~0.1-0.2 ms per 1k vectors, so
 * 20k vectors stay exact (a few ms). Past that, IVF with fp16 codes: the
 * vectors are fp16 in SQLite already, so SQfp16 loses nothing, and it
 * halves memory, snapshot and scan bandwidth against Flat (SQ8 halves them
 * again but lost recall). nlist = 4 sqrt(n); nprobe = max(32, nlist / 32)
 * scans ~3% of the lists: recall@10 0.99 on clustered data at 200k, but
 * only ~0.8 on builtin-embedder vectors of short queries at 1M, whose top
 * 10 are near-ties (recall 0.93 needs nprobe 512, ~24 ms of CPU). */
#define IVF_THRESHOLD 20000   /* exact up to here: IVF missed short, out-of-distribution documents at a few thousand vectors */
#define IVF_CODE "SQfp16"       /* or "Flat" (2x the bytes, same recall), "SQ8" */
#define IVF_LISTS_PER_SQRT 4    /* nlist = 4 sqrt(n) at training time */
#define IVF_MIN_LISTS 64
#define IVF_MAX_LISTS 8192
#define IVF_TRAIN_PER_LIST 40   /* training sample: 40 vectors per list */
#define IVF_GROWTH 2            /* retrain when the index has grown 2x */
#define IVF_NPROBE_MIN 32
#define IVF_NPROBE_DIV 32       /* nprobe = max(32, nlist / 32) */
#define IVF_BUILD_THREADS 2     /* OpenMP threads of the build ... */
#define IVF_BUILD_NICE 10       /* ... at a lower priority than queries */
#define IVF_GATHER_CHUNK 4096   /* vectors copied per hold of vi->mu */
#define DIRECT_MAP_HASHTABLE 2  /* faiss::DirectMap::Hashtable */

enum { KIND_FLAT = 1, KIND_IVF = 2, KIND_COLS = 3 };
enum { BUILD_NONE = 0, BUILD_RUNNING, BUILD_READY, BUILD_FAILED };

/* ret_vindex_search_allowed has two strategies: (a) "exact", score each
 * allowed id from its stored vector (a hash lookup and a copy per id in
 * FAISS, ~0.6 us per id on a flat index, several us on fp16 IVF codes,
 * which FAISS decodes one component at a time); (b) "selector", zhiku's
 * SIMD scan with a bitmap (a bit test per scanned row, a SIMD inner
 * product per allowed one). With the SIMD scan (b) wins except for allowed
 * sets that are tiny next to the index: exact is used while n_allowed <=
 * ALLOWED_EXACT_FRACTION * ntotal on a flat index; on IVF never by choice
 * (bench/vindex_filter_bench.c, bench/vindex_scale_bench.c;
 * docs/PERFORMANCE.md). */
#define ALLOWED_EXACT_FRACTION (1.0 / 64)
#define COLS_EXACT_FRACTION (1.0 / 16)   /* column index: id by id below this */
/* Column index scans of a large index are pruned (ret_colidx_search_pruned):
 * a first pass on the query's COLS_PRUNE_TOP heaviest dimensions keeps
 * COLS_PRUNE_CAND_PER_K * k rows (at least COLS_PRUNE_CAND_MIN), rescored
 * exactly; below COLS_PRUNE_ROWS rows the scan is exact (it is cheap). */
#define COLS_PRUNE_ROWS 200000
#define COLS_PRUNE_TOP 24
#define COLS_PRUNE_CAND_PER_K 16
#define COLS_PRUNE_CAND_MIN 800
#define IVF_EXACT_FRACTION 0.0
/* IVF selector scans widen nprobe by (ntotal / n_allowed)^IVF_FILTER_EXP so
 * enough allowed candidates are visited (capped at nlist: exact). */
#define IVF_FILTER_EXP 0.75
/* The selector is a bitmap over external ids while it stays this small
 * (ids < 128M); larger ids use FAISS's hash-set IDSelectorBatch. */
#define ALLOWED_BITMAP_MAX_BYTES ((uint64_t)16 << 20)

#define SNAP_NAME "index.zkv"
#define SNAP_TMP_PREFIX SNAP_NAME ".tmp."
#define SNAP_MAGIC "ZKVINDEX"
#define SNAP_VERSION 3u
/* v3: magic 8, version 4, dim 4, seq 8, len 8, kind 4, nlist 4,
 * trained_n 8, then 8 CRC-32C values (little-endian u32): [0] of the 48
 * header bytes before them, [1..7] of the payload cut into 7 equal
 * segments (the last one shorter), so the check of a large snapshot runs on
 * both cores at memory speed. v2 (same layout, SHA-256 of the header bytes
 * and the payload in the last 32 bytes) and v1 (64 bytes: no kind, nlist,
 * trained_n; SHA-256 of the first 32 bytes and the payload; always flat)
 * still load. SHA-256 ran at ~0.5 GB/s, 2 s per GB of snapshot. */
#define SNAP_HDR_LEN 80
#define SNAP_HASHED_LEN 48
#define SNAP_V1_HDR_LEN 64
#define SNAP_V1_HASHED_LEN 32
#define SNAP_SEGMENTS 7
#define SNAP_PARALLEL_MIN ((uint64_t)32 << 20)  /* check smaller payloads on one thread */
#define STALE_TMP_SECS 600 /* older temp files are leftovers of a crash */
#define VINDEX_MAX_DIM 65536

/* Open-addressing set of non-negative ids (linear probing, backward-shift
 * delete, so no tombstones). EMPTY marks a free slot. */
#define IDSET_EMPTY (-1)

typedef struct {
    int64_t *slots;
    size_t cap;   /* power of two, or 0 */
    size_t count;
} idset;

/* A background IVF build. The thread reads the live index only while
 * holding vi->mu; writers hold vi->mu while they change the live index and
 * note the ids they touch in `dirty`, which the swap re-applies. */
typedef struct {
    int state;              /* BUILD_*; guarded by vi->mu */
    int cancel;             /* set by free/reset; guarded by vi->mu */
    pthread_t thread;
    int joined;             /* thread already joined (by an upgrade wait) */
    int64_t *ids;           /* ids present at launch (thread's own) */
    size_t nids;
    int nlist;
    FaissIndex *index;      /* the new index, valid once READY */
    idset dirty;            /* ids changed since launch; guarded by vi->mu */
    double secs;            /* wall time of the build */
    char err[ZK_ERRLEN];    /* reason, when FAILED */
} vbuild;

struct ret_vindex {
    char *dir;              /* snapshot directory */
    char *path;             /* dir/index.zkv */
    int dim;
    int64_t applied_seq;    /* last change sequence reflected in index */
    int kind;               /* KIND_FLAT, KIND_IVF or KIND_COLS */
    int layout;             /* RET_VINDEX_AUTO or _COLUMNS: what new (rebuilt) indexes are */
    ret_colidx *cols;       /* KIND_COLS: the whole index (index is NULL, ids unused) */
    int nlist;              /* IVF lists (0 for flat) */
    int64_t trained_n;      /* index size when the IVF index was trained */
    int64_t failed_n;       /* size at the last failed build (back-off) */
    FaissIndex *index;      /* owns everything below */
    FaissIndexIDMap2 *idmap; /* same object as index when flat, else NULL */
    FaissIndexIVF *ivf;     /* same object as index when IVF, else NULL */
    idset ids;              /* ids present in index */
    pthread_mutex_t mu;     /* live index vs the build thread, build state */
    vbuild build;
    ret__vindex_tuning tune; /* thresholds (defaults, or a test's) */
};

/* ---- id set ------------------------------------------------------------ */

static size_t id_hash(int64_t id)
{
    uint64_t x = (uint64_t)id;   /* splitmix64 finaliser */
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27; x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return (size_t)x;
}

static void idset_free(idset *s)
{
    zk_free(s->slots);
    memset(s, 0, sizeof *s);
}

static void idset_clear(idset *s)
{
    for (size_t i = 0; i < s->cap; i++) s->slots[i] = IDSET_EMPTY;
    s->count = 0;
}

static size_t idset_slot(const idset *s, int64_t id)
{
    size_t mask = s->cap - 1, i = id_hash(id) & mask;
    while (s->slots[i] != IDSET_EMPTY && s->slots[i] != id) i = (i + 1) & mask;
    return i;
}

static int idset_has(const idset *s, int64_t id)
{
    return s->cap && s->slots[idset_slot(s, id)] == id;
}

/* Make room for `extra` more ids at load factor <= 1/2. */
static zk_rc idset_reserve(idset *s, size_t extra)
{
    size_t need = (s->count + extra) * 2, cap = s->cap ? s->cap : 64;
    if (need <= s->cap) return ZK_OK;
    while (cap < need) cap *= 2;
    int64_t *slots = zk_malloc(cap * sizeof *slots);
    if (!slots) return ZK_NOMEM;
    idset old = *s;
    s->slots = slots;
    s->cap = cap;
    idset_clear(s);
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i] != IDSET_EMPTY) s->slots[idset_slot(s, old.slots[i])] = old.slots[i], s->count++;
    zk_free(old.slots);
    return ZK_OK;
}

/* Insert (room must be reserved). Returns 1 if id was new. */
static int idset_put(idset *s, int64_t id)
{
    size_t i = idset_slot(s, id);
    if (s->slots[i] == id) return 0;
    s->slots[i] = id;
    s->count++;
    return 1;
}

static void idset_del(idset *s, int64_t id)
{
    if (!idset_has(s, id)) return;
    size_t mask = s->cap - 1, i = idset_slot(s, id), j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (s->slots[j] == IDSET_EMPTY) break;
        size_t home = id_hash(s->slots[j]) & mask;
        /* Move slots[j] into the hole at i unless its home lies in (i, j]. */
        int in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i] = IDSET_EMPTY;
    s->count--;
}

/* ---- small helpers ------------------------------------------------------ */

static zk_rc faiss_fail(char *err, const char *what, int frc)
{
    const char *msg = faiss_get_last_error();
    return zk_fail(err, ZK_INDEX, "faiss %s failed (%d): %s", what, frc, msg ? msg : "?");
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = zk_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* SHA-256 of hdr[0..hashed) followed by payload[0..len) (v1/v2
 * snapshots). Returns 0 on success, -1 on an EVP error. */
static int sha256_snapshot(const unsigned char *hdr, size_t hashed, const unsigned char *payload, uint64_t len,
                           unsigned char out[32])
{
    unsigned int outlen = 0;
    int ok = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) || !EVP_DigestUpdate(ctx, hdr, hashed))
        goto out;
    while (len > 0) {   /* EVP takes size_t; feed at most 1 GB at a time */
        size_t want = len < ((uint64_t)1 << 30) ? (size_t)len : (size_t)1 << 30;
        if (!EVP_DigestUpdate(ctx, payload, want)) goto out;
        payload += want;
        len -= want;
    }
    ok = EVP_DigestFinal_ex(ctx, out, &outlen) && outlen == 32;
out:
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* CRC-32C (Castagnoli), the checksum of v3 snapshots: the SSE4.2 crc32
 * instruction (~7 GB/s per core) when the CPU has it — a GCC/Clang target
 * attribute, chosen at run time — else a byte-wise table. */
static uint32_t crc32c_table[256];

static void crc32c_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc32c_table[i] = c;
    }
}

static uint32_t crc32c_sw(uint32_t crc, const unsigned char *p, size_t n)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc32c_table_init);
    crc = ~crc;
    while (n--) crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const unsigned char *p, size_t n)
{
    uint64_t c = ~crc & 0xffffffffu;
    for (; n && ((uintptr_t)p & 7); n--) c = _mm_crc32_u8((uint32_t)c, *p++);
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
    }
    for (; n; n--) c = _mm_crc32_u8((uint32_t)c, *p++);
    return ~(uint32_t)c;
}
#endif

/* crc32c(0, "123456789", 9) == 0xe3069283 */
static uint32_t crc32c(uint32_t crc, const void *buf, size_t n)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) return crc32c_hw(crc, buf, n);
#endif
    return crc32c_sw(crc, buf, n);
}

typedef struct {
    const unsigned char *payload;
    uint64_t len, seg;   /* payload length, segment length */
    int first, step;     /* segments first, first + step, ... */
    uint32_t *out;       /* SNAP_SEGMENTS values */
} crc_job;

static void *crc_segments(void *arg)
{
    crc_job *j = arg;
    for (int s = j->first; s < SNAP_SEGMENTS; s += j->step) {
        uint64_t from = (uint64_t)s * j->seg, to = from + j->seg;
        if (from > j->len) from = j->len;
        if (to > j->len) to = j->len;
        j->out[s] = crc32c(0, j->payload + from, (size_t)(to - from));
    }
    return NULL;
}

/* The v3 checksum block: CRC of hdr[0..SNAP_HASHED_LEN) then of each
 * payload segment, little-endian, into out[32]; large payloads on two
 * threads. */
static void crc_snapshot(const unsigned char *hdr, const unsigned char *payload, uint64_t len,
                         unsigned char out[32])
{
    uint32_t seg[SNAP_SEGMENTS];
    crc_job jobs[2] = {{payload, len, (len + SNAP_SEGMENTS - 1) / SNAP_SEGMENTS, 0, 2, seg},
                       {payload, len, (len + SNAP_SEGMENTS - 1) / SNAP_SEGMENTS, 1, 2, seg}};
    pthread_t th;
    int threaded = len >= SNAP_PARALLEL_MIN && pthread_create(&th, NULL, crc_segments, &jobs[1]) == 0;
    if (!threaded) jobs[0].step = 1;
    crc_segments(&jobs[0]);
    if (threaded) pthread_join(th, NULL);
    put_u32(out, crc32c(0, hdr, SNAP_HASHED_LEN));
    for (int s = 0; s < SNAP_SEGMENTS; s++) put_u32(out + 4 + 4 * s, seg[s]);
}

/* Map len bytes of fd from offset 0 read-only (len > 0). NULL on failure. */
static unsigned char *map_file(int fd, uint64_t len)
{
    if (len > (uint64_t)SIZE_MAX) return NULL;
    void *p = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) return NULL;
    madvise(p, (size_t)len, MADV_SEQUENTIAL);
    return p;
}

static int default_nprobe(int nlist)
{
    int p = nlist / IVF_NPROBE_DIV;
    return p < IVF_NPROBE_MIN ? (IVF_NPROBE_MIN < nlist ? IVF_NPROBE_MIN : nlist) : p;
}

static int tuned_nprobe(const ret_vindex *vi, int nlist)
{
    if (vi->tune.nprobe > 0) return vi->tune.nprobe < nlist ? vi->tune.nprobe : nlist;
    return default_nprobe(nlist);
}

/* Check index (flat IDMap2 or IVF with external ids) and make it vi's,
 * rebuilding the id set from it. Takes ownership only on success. */
static zk_rc attach_index(ret_vindex *vi, FaissIndex *index, char *err)
{
    FaissIndexIDMap2 *idmap = faiss_IndexIDMap2_cast(index);
    FaissIndexIVF *ivf = idmap ? NULL : faiss_IndexIVF_cast(index);
    idx_t *ids = NULL, *fetched = NULL;
    size_t n = 0;
    zk_rc rc = ZK_OK;
    if (!idmap && !ivf) return zk_fail(err, ZK_CORRUPT, "index is neither IDMap2 nor IVF");
    if (faiss_Index_d(index) != vi->dim)
        return zk_fail(err, ZK_CORRUPT, "index dimension %d, expected %d", faiss_Index_d(index), vi->dim);
    if (faiss_Index_metric_type(index) != METRIC_INNER_PRODUCT)
        return zk_fail(err, ZK_CORRUPT, "index metric is not inner product");
    if (idmap) {
        faiss_IndexIDMap2_id_map(idmap, &ids, &n);
        if ((int64_t)n != faiss_Index_ntotal(index))
            return zk_fail(err, ZK_CORRUPT, "id map holds %zu ids for %lld vectors", n,
                           (long long)faiss_Index_ntotal(index));
    } else {
        /* external ids live in the inverted lists */
        size_t nlist = faiss_IndexIVF_nlist(ivf), w = 0;
        if (!faiss_Index_is_trained(index)) return zk_fail(err, ZK_CORRUPT, "IVF index is not trained");
        n = (size_t)faiss_Index_ntotal(index);
        if (!(fetched = zk_malloc((n ? n : 1) * sizeof *fetched))) return zk_fail(err, ZK_NOMEM, "out of memory");
        for (size_t l = 0; l < nlist; l++) {
            size_t ln = faiss_IndexIVF_get_list_size(ivf, l);
            if (ln > n - w) { rc = zk_fail(err, ZK_CORRUPT, "inverted lists hold more than ntotal"); goto out; }
            faiss_IndexIVF_invlists_get_ids(ivf, l, fetched + w);
            w += ln;
        }
        if (w != n) { rc = zk_fail(err, ZK_CORRUPT, "inverted lists hold %zu of %zu vectors", w, n); goto out; }
        ids = fetched;
        /* the id -> slot map is built when a writer first needs it
         * (need_direct_map): not at start-up */
    }
    idset_clear(&vi->ids);
    if ((rc = idset_reserve(&vi->ids, n)) != ZK_OK) { rc = zk_fail(err, rc, "out of memory"); goto out; }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || !idset_put(&vi->ids, ids[i])) {
            idset_clear(&vi->ids);
            rc = zk_fail(err, ZK_CORRUPT, "invalid or duplicate id %lld", (long long)ids[i]);
            goto out;
        }
    }
    vi->index = index;
    vi->idmap = idmap;
    vi->ivf = ivf;
    vi->kind = ivf ? KIND_IVF : KIND_FLAT;
    vi->nlist = ivf ? (int)faiss_IndexIVF_nlist(ivf) : 0;
    if (ivf) faiss_IndexIVF_set_nprobe(ivf, (size_t)tuned_nprobe(vi, vi->nlist));
out:
    zk_free(fetched);
    return rc;
}

/* Writer context: give an IVF index its id -> (list, offset) hash map
 * (FAISS's DirectMap), which removal and reconstruction by id need.
 * Snapshots are written without it (faiss_write_index_without_direct_map)
 * and it is rebuilt here on first need, not at start-up: parsing FAISS's
 * serialised map cost 1.6 s at 1M vectors, building it ~0.3 s. */
static zk_rc need_direct_map(ret_vindex *vi, char *err)
{
    if (!vi->ivf || faiss_IndexIVF_direct_map_type(vi->ivf) == DIRECT_MAP_HASHTABLE) return ZK_OK;
    pthread_mutex_lock(&vi->mu);   /* the build thread reconstructs under it */
    int frc = faiss_IndexIVF_set_direct_map(vi->ivf, DIRECT_MAP_HASHTABLE);
    pthread_mutex_unlock(&vi->mu);
    return frc != 0 ? faiss_fail(err, "set_direct_map", frc) : ZK_OK;
}

static zk_rc new_empty_index(ret_vindex *vi, char *err)
{
    if (vi->layout == RET_VINDEX_COLUMNS) {
        if (!(vi->cols = ret_colidx_new(vi->dim))) return zk_fail(err, ZK_NOMEM, "out of memory");
        vi->kind = KIND_COLS;
        vi->nlist = 0;
        vi->trained_n = 0;
        return ZK_OK;
    }
    FaissIndex *index = NULL;
    int frc = faiss_index_factory(&index, vi->dim, VINDEX_FLAT, METRIC_INNER_PRODUCT);
    if (frc != 0) return faiss_fail(err, "index_factory(" VINDEX_FLAT ")", frc);
    zk_rc rc = attach_index(vi, index, err);
    if (rc != ZK_OK) faiss_Index_free(index);
    else vi->trained_n = 0;
    return rc;
}

/* Load vi->path. ZK_NOTFOUND when missing; ZK_CORRUPT (with reason) when
 * unusable. On success vi->index and applied_seq are set. The file is
 * mapped, its checksum verified, and only then parsed by FAISS (from the
 * mapping: one copy, no read buffer). */
static zk_rc load_snapshot(ret_vindex *vi, char *err)
{
    unsigned char hdr[SNAP_HDR_LEN], sum[32], *map = NULL;
    FaissIndex *index = NULL;
    struct stat st;
    zk_rc rc = ZK_OK;
    size_t hdr_len = SNAP_HDR_LEN, hashed = SNAP_HASHED_LEN, consumed = 0;
    uint32_t kind = KIND_FLAT, nlist = 0;
    int64_t trained_n = 0;
    int fd = open(vi->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return zk_fail(err, ZK_NOTFOUND, "no snapshot");
        return zk_fail(err, ZK_CORRUPT, "open: %s", strerror(errno));
    }
    if (fstat(fd, &st) != 0) {
        rc = zk_fail(err, ZK_CORRUPT, "stat: %s", strerror(errno));
        goto out;
    }
    if (st.st_size < SNAP_V1_HDR_LEN || pread(fd, hdr, SNAP_V1_HDR_LEN, 0) != SNAP_V1_HDR_LEN) {
        rc = zk_fail(err, ZK_CORRUPT, "truncated header (%lld bytes)", (long long)st.st_size);
        goto out;
    }
    if (memcmp(hdr, SNAP_MAGIC, 8) != 0) {
        rc = zk_fail(err, ZK_CORRUPT, "bad magic");
        goto out;
    }
    uint32_t version = get_u32(hdr + 8), dim = get_u32(hdr + 12);
    int64_t seq = (int64_t)get_u64(hdr + 16);
    uint64_t len = get_u64(hdr + 24);
    if (version == 1) {
        hdr_len = SNAP_V1_HDR_LEN;
        hashed = SNAP_V1_HASHED_LEN;
    } else if (version == 2 || version == SNAP_VERSION) {
        if (st.st_size < SNAP_HDR_LEN || pread(fd, hdr, SNAP_HDR_LEN, 0) != SNAP_HDR_LEN) {
            rc = zk_fail(err, ZK_CORRUPT, "truncated header (%lld bytes)", (long long)st.st_size);
            goto out;
        }
        kind = get_u32(hdr + 32);
        nlist = get_u32(hdr + 36);
        trained_n = (int64_t)get_u64(hdr + 40);
    } else {
        rc = zk_fail(err, ZK_CORRUPT, "unknown format version %u", version);
        goto out;
    }
    if (dim != (uint32_t)vi->dim) {
        rc = zk_fail(err, ZK_CORRUPT, "dimension %u, expected %d", dim, vi->dim);
        goto out;
    }
    if (len == 0 || len != (uint64_t)st.st_size - hdr_len || seq < 0 || trained_n < 0) {
        rc = zk_fail(err, ZK_CORRUPT, "payload length %llu does not match file size %lld",
                     (unsigned long long)len, (long long)st.st_size);
        goto out;
    }
    if (!(map = map_file(fd, (uint64_t)st.st_size))) {
        rc = zk_fail(err, ZK_CORRUPT, "mmap: %s", strerror(errno));
        goto out;
    }
    if (version == SNAP_VERSION) crc_snapshot(hdr, map + hdr_len, len, sum);
    else if (sha256_snapshot(hdr, hashed, map + hdr_len, len, sum) != 0) memset(sum, 0, sizeof sum);
    if (memcmp(sum, hdr + hashed, 32) != 0) {
        rc = zk_fail(err, ZK_CORRUPT, "checksum mismatch");
        goto out;
    }
    if (kind == KIND_COLS) {
        /* the column blocks are used where they lie: no copy of a GB at
         * start-up; a private writable mapping copies only pages updated */
        if (mprotect(map, (size_t)st.st_size, PROT_READ | PROT_WRITE) != 0) {
            rc = zk_fail(err, ZK_CORRUPT, "mprotect: %s", strerror(errno));
            goto out;
        }
        madvise(map, (size_t)st.st_size, MADV_NORMAL);
        rc = ret_colidx_read_mapped(map + hdr_len, (size_t)len, vi->dim, map, (size_t)st.st_size, &vi->cols, err);
        map = NULL;   /* the index's now, or unmapped */
        if (rc != ZK_OK) {
            if (rc != ZK_NOMEM) rc = ZK_CORRUPT;
            goto out;
        }
        vi->kind = KIND_COLS;
        vi->applied_seq = seq;
        goto out;
    }
    int frc = faiss_read_index_buf(map + hdr_len, (size_t)len, 0, &index, &consumed);
    if (frc != 0) {
        faiss_fail(err, "read_index", frc);
        rc = ZK_CORRUPT;
        goto out;
    }
    if (consumed != len) {
        rc = zk_fail(err, ZK_CORRUPT, "payload has trailing bytes");
        goto out;
    }
    munmap(map, (size_t)st.st_size);   /* before attaching: the page cache is not ours to hold */
    map = NULL;
    if ((rc = attach_index(vi, index, err)) != ZK_OK) {
        if (rc != ZK_NOMEM) rc = ZK_CORRUPT;
        goto out;
    }
    index = NULL;   /* owned by vi now */
    if ((uint32_t)vi->kind != kind || (uint32_t)vi->nlist != nlist) {
        /* header and payload disagree: treat as corrupt, start over */
        rc = zk_fail(err, ZK_CORRUPT, "header says kind %u nlist %u, payload kind %d nlist %d",
                     kind, nlist, vi->kind, vi->nlist);
        faiss_Index_free(vi->index);
        vi->index = NULL;
        vi->idmap = NULL;
        vi->ivf = NULL;
        goto out;
    }
    vi->trained_n = trained_n;
    vi->applied_seq = seq;
out:
    if (index) faiss_Index_free(index);
    if (map) munmap(map, (size_t)st.st_size);
    close(fd);
    return rc;
}

/* Remove temp files left by a save that crashed. Recent ones may belong to a
 * save running in another process right now, so they are left alone. */
static void remove_stale_temps(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d) return;
    time_t now = time(NULL);
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, SNAP_TMP_PREFIX, strlen(SNAP_TMP_PREFIX)) != 0) continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            now - st.st_mtime > STALE_TMP_SECS)
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

/* ---- background IVF build ------------------------------------------------ */

static double now_secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int choose_nlist(const ret_vindex *vi, int64_t n)
{
    if (vi->tune.nlist > 0) return vi->tune.nlist;
    double l = IVF_LISTS_PER_SQRT * sqrt((double)n);
    if (l < IVF_MIN_LISTS) l = IVF_MIN_LISTS;
    if (l > IVF_MAX_LISTS) l = IVF_MAX_LISTS;
    if (l > (double)n / IVF_TRAIN_PER_LIST) l = (double)n / IVF_TRAIN_PER_LIST;   /* a full sample */
    return l < IVF_MIN_LISTS ? IVF_MIN_LISTS : (int)l;
}

static int64_t ivf_threshold(const ret_vindex *vi)
{
    return vi->tune.ivf_threshold > 0 ? vi->tune.ivf_threshold : IVF_THRESHOLD;
}

/* Copy the vectors of ids[0], ids[stride], ... (at most `want`) that are
 * still present in the live index into out_ids/out_vecs, holding vi->mu a
 * chunk at a time. Returns the number copied, or -1 on a FAISS error or
 * cancellation. */
static long gather(ret_vindex *vi, const int64_t *ids, size_t nids, size_t stride, size_t want,
                   int64_t *out_ids, float *out_vecs)
{
    size_t dim = (size_t)vi->dim, got = 0, i = 0;
    while (i < nids && got < want) {
        pthread_mutex_lock(&vi->mu);
        if (vi->build.cancel) {
            pthread_mutex_unlock(&vi->mu);
            return -1;
        }
        for (size_t c = 0; c < IVF_GATHER_CHUNK && i < nids && got < want; c++, i += stride) {
            if (!idset_has(&vi->ids, ids[i])) continue;
            if (faiss_Index_reconstruct(vi->index, ids[i], out_vecs + got * dim) != 0) {
                pthread_mutex_unlock(&vi->mu);
                return -1;
            }
            out_ids[got++] = ids[i];
        }
        pthread_mutex_unlock(&vi->mu);
    }
    return (long)got;
}

/* The build thread: train on a sample, then copy every vector over. */
static void *build_main(void *arg)
{
    ret_vindex *vi = arg;
    vbuild *b = &vi->build;
    double t0 = now_secs();
    size_t dim = (size_t)vi->dim, n = b->nids;
    size_t want = (size_t)b->nlist * IVF_TRAIN_PER_LIST, stride = 1;
    FaissIndex *index = NULL;
    int64_t *ids = NULL;
    float *vecs = NULL;
    char spec[64];
    int ok = 0, frc;
    long got;
    /* Both cores, but behind queries: nice is per thread on Linux, and the
     * OpenMP workers this thread starts inherit it. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), IVF_BUILD_NICE) != 0)
        ZK_LOG(ZK_LOG_DEBUG, "vector index %s: build thread keeps its priority: %s", vi->dir, strerror(errno));
    faiss_set_omp_threads(vi->tune.build_threads > 0 ? vi->tune.build_threads : IVF_BUILD_THREADS);
    if (want < n) stride = n / want;
    else want = n;
    size_t bufn = want > IVF_GATHER_CHUNK ? want : IVF_GATHER_CHUNK;
    if (!(ids = zk_malloc(bufn * sizeof *ids)) || !(vecs = zk_malloc(bufn * dim * sizeof *vecs))) {
        snprintf(b->err, sizeof b->err, "out of memory");
        goto out;
    }
    if ((got = gather(vi, b->ids, n, stride, want, ids, vecs)) < 0) {
        snprintf(b->err, sizeof b->err, "reading the sample failed or was cancelled");
        goto out;
    }
    snprintf(spec, sizeof spec, "IVF%d,%s", b->nlist,
             vi->tune.sq8 == 1 ? "SQ8" : vi->tune.sq8 == 2 ? "Flat" : vi->tune.sq8 == 3 ? "SQfp16" : IVF_CODE);
    if ((frc = faiss_index_factory(&index, vi->dim, spec, METRIC_INNER_PRODUCT)) != 0 ||
        (frc = faiss_Index_train(index, (idx_t)got, vecs)) != 0 ||
        (frc = faiss_IndexIVF_set_direct_map(faiss_IndexIVF_cast(index), DIRECT_MAP_HASHTABLE)) != 0) {
        snprintf(b->err, sizeof b->err, "training %s: %s", spec, faiss_get_last_error());
        goto out;
    }
    for (size_t i = 0; i < n; i += IVF_GATHER_CHUNK) {
        size_t m = n - i < IVF_GATHER_CHUNK ? n - i : IVF_GATHER_CHUNK;
        if ((got = gather(vi, b->ids + i, m, 1, m, ids, vecs)) < 0) {
            snprintf(b->err, sizeof b->err, "copying vectors failed or was cancelled");
            goto out;
        }
        if (got && (frc = faiss_Index_add_with_ids(index, (idx_t)got, vecs, ids)) != 0) {
            snprintf(b->err, sizeof b->err, "filling %s: %s", spec, faiss_get_last_error());
            goto out;
        }
    }
    ok = 1;
out:
    zk_free(ids);
    zk_free(vecs);
    pthread_mutex_lock(&vi->mu);
    if (ok) {
        b->index = index;
        b->secs = now_secs() - t0;
        b->state = BUILD_READY;
    } else {
        if (index) faiss_Index_free(index);
        b->state = BUILD_FAILED;
    }
    pthread_mutex_unlock(&vi->mu);
    return NULL;
}

/* Writer context. Start a build when the size policy asks for one: the
 * flat index reached the threshold, or the IVF index grew IVF_GROWTH times
 * since it was trained. Failures to start only log: search still works. */
/* Background builds on open/add (off in short-lived CLI processes, which
 * would otherwise wait for a training at exit); see ret_vindex_auto_builds. */
static int auto_builds = 1;

void ret_vindex_auto_builds(int on) { auto_builds = on; }

static void start_build_if_due(ret_vindex *vi);

static void maybe_start_build(ret_vindex *vi)
{
    if (auto_builds) start_build_if_due(vi);
}

static void start_build_if_due(ret_vindex *vi)
{
    if (vi->kind == KIND_COLS) return;   /* exact at every size */
    int64_t n = (int64_t)faiss_Index_ntotal(vi->index);
    vbuild *b = &vi->build;
    if (b->state != BUILD_NONE || n < ivf_threshold(vi)) return;
    if (vi->kind == KIND_IVF && n < IVF_GROWTH * vi->trained_n) return;
    if (vi->failed_n && n < 2 * vi->failed_n) return;   /* back off after a failure */
    int nlist = choose_nlist(vi, n);
    if (vi->kind == KIND_IVF && nlist <= vi->nlist) return;
    char why[ZK_ERRLEN];
    if (need_direct_map(vi, why) != ZK_OK) goto fail;   /* the build reconstructs by id */
    if (!(b->ids = zk_malloc((size_t)n * sizeof *b->ids))) goto fail;
    size_t w = 0;
    for (size_t i = 0; i < vi->ids.cap; i++)
        if (vi->ids.slots[i] != IDSET_EMPTY) b->ids[w++] = vi->ids.slots[i];
    b->nids = w;
    b->nlist = nlist;
    b->cancel = 0;
    b->err[0] = '\0';
    b->joined = 0;
    idset_clear(&b->dirty);
    b->state = BUILD_RUNNING;   /* before the thread can see it: no lock needed yet */
    if (pthread_create(&b->thread, NULL, build_main, vi) != 0) {
        b->state = BUILD_NONE;
        zk_free(b->ids);
        b->ids = NULL;
        goto fail;
    }
    ZK_LOG(ZK_LOG_INFO, "vector index %s: building IVF%d over %lld vectors in the background",
           vi->dir, nlist, (long long)n);
    return;
fail:
    vi->failed_n = n;
    ZK_LOG(ZK_LOG_WARN, "vector index %s: cannot start the IVF build", vi->dir);
}

static void build_join(vbuild *b)
{
    if (!b->joined) pthread_join(b->thread, NULL);
    b->joined = 1;
}

/* Join a finished (or cancelled) build thread and forget it. */
static void build_reap(ret_vindex *vi)
{
    vbuild *b = &vi->build;
    build_join(b);
    if (b->index) faiss_Index_free(b->index);
    b->index = NULL;
    zk_free(b->ids);
    b->ids = NULL;
    b->nids = 0;
    idset_clear(&b->dirty);
    b->state = BUILD_NONE;
}

/* Cancel a running build and wait for its thread. */
static void build_cancel(ret_vindex *vi)
{
    if (vi->build.state == BUILD_NONE) return;
    pthread_mutex_lock(&vi->mu);
    vi->build.cancel = 1;
    pthread_mutex_unlock(&vi->mu);
    build_reap(vi);
}

/* Writer context: remember ids about to change while a build runs.
 * Call before changing the live index (it can fail). */
static zk_rc note_dirty(ret_vindex *vi, size_t n, const int64_t *ids, char *err)
{
    zk_rc rc = ZK_OK;
    if (vi->build.state == BUILD_NONE) return ZK_OK;
    pthread_mutex_lock(&vi->mu);
    if ((rc = idset_reserve(&vi->build.dirty, n)) == ZK_OK)
        for (size_t i = 0; i < n; i++) idset_put(&vi->build.dirty, ids[i]);
    pthread_mutex_unlock(&vi->mu);
    return rc == ZK_OK ? ZK_OK : zk_fail(err, rc, "vindex: out of memory");
}

static zk_rc remove_from(FaissIndex *index, int kind, size_t n, const int64_t *ids, char *err);

/* Writer context: if the build is READY, bring it up to date with the ids
 * changed since launch and make it the live index. A failed build or catch-
 * up keeps the current index (and logs); only out-of-memory is returned. */
static zk_rc build_swap(ret_vindex *vi, char *err)
{
    vbuild *b = &vi->build;
    int64_t *dirty = NULL, *add_ids = NULL;
    float *vecs = NULL;
    size_t nd = 0, na = 0, dim = (size_t)vi->dim;
    zk_rc rc = ZK_OK;
    char why[ZK_ERRLEN] = "";
    pthread_mutex_lock(&vi->mu);
    int state = b->state;
    pthread_mutex_unlock(&vi->mu);
    if (state == BUILD_NONE || state == BUILD_RUNNING) return ZK_OK;
    build_join(b);
    b->state = BUILD_NONE;   /* joined: the fields are ours alone */
    if (state == BUILD_FAILED) {
        vi->failed_n = (int64_t)faiss_Index_ntotal(vi->index);
        ZK_LOG(ZK_LOG_WARN, "vector index %s: IVF build failed: %s", vi->dir, b->err);
        goto out;
    }
    nd = b->dirty.count;
    if (nd) {
        if (!(dirty = zk_malloc(nd * sizeof *dirty)) || !(add_ids = zk_malloc(nd * sizeof *add_ids)) ||
            !(vecs = zk_malloc(nd * dim * sizeof *vecs))) {
            rc = zk_fail(err, ZK_NOMEM, "vindex: out of memory");
            goto out;
        }
        size_t w = 0;
        for (size_t i = 0; i < b->dirty.cap; i++)
            if (b->dirty.slots[i] != IDSET_EMPTY) dirty[w++] = b->dirty.slots[i];
        if (need_direct_map(vi, why) != ZK_OK) goto failed;
        for (size_t i = 0; i < nd; i++) {
            if (!idset_has(&vi->ids, dirty[i])) continue;
            if (faiss_Index_reconstruct(vi->index, dirty[i], vecs + na * dim) != 0) {
                faiss_fail(why, "reconstruct", -1);
                goto failed;
            }
            add_ids[na++] = dirty[i];
        }
        if (remove_from(b->index, KIND_IVF, nd, dirty, why) != ZK_OK) goto failed;
        if (na && faiss_Index_add_with_ids(b->index, (idx_t)na, vecs, add_ids) != 0) {
            faiss_fail(why, "add_with_ids", -1);
            goto failed;
        }
    }
    if ((int64_t)faiss_Index_ntotal(b->index) != (int64_t)vi->ids.count) {
        snprintf(why, sizeof why, "built index holds %lld vectors, live %zu",
                 (long long)faiss_Index_ntotal(b->index), vi->ids.count);
        goto failed;
    }
    faiss_Index_free(vi->index);
    vi->index = b->index;
    b->index = NULL;
    vi->idmap = NULL;
    vi->ivf = faiss_IndexIVF_cast(vi->index);
    vi->kind = KIND_IVF;
    vi->nlist = b->nlist;
    vi->trained_n = (int64_t)b->nids;
    vi->failed_n = 0;
    faiss_IndexIVF_set_nprobe(vi->ivf, (size_t)tuned_nprobe(vi, vi->nlist));
    ZK_LOG(ZK_LOG_INFO, "vector index %s: now IVF%d (built in %.1f s)", vi->dir, vi->nlist, b->secs);
    goto out;
failed:
    vi->failed_n = (int64_t)faiss_Index_ntotal(vi->index);
    ZK_LOG(ZK_LOG_WARN, "vector index %s: IVF swap failed: %s", vi->dir, why);
out:
    if (b->index) faiss_Index_free(b->index);
    b->index = NULL;
    zk_free(b->ids);
    b->ids = NULL;
    b->nids = 0;
    idset_clear(&b->dirty);
    zk_free(dirty);
    zk_free(add_ids);
    zk_free(vecs);
    return rc;
}

/* ---- public API --------------------------------------------------------- */

zk_rc ret_vindex_open(const char *dir, int dim, ret_vindex **out, int *out_rebuilt, char *err)
{
    return ret_vindex_open_layout(dir, dim, RET_VINDEX_AUTO, out, out_rebuilt, err);
}

/* Drop whatever index vi holds (no build running). */
static void drop_index(ret_vindex *vi)
{
    if (vi->index) faiss_Index_free(vi->index);
    ret_colidx_free(vi->cols);
    vi->index = NULL;
    vi->idmap = NULL;
    vi->ivf = NULL;
    vi->cols = NULL;
    idset_clear(&vi->ids);
}

zk_rc ret_vindex_open_layout(const char *dir, int dim, int layout, ret_vindex **out, int *out_rebuilt, char *err)
{
    ret_vindex *vi = NULL;
    char why[ZK_ERRLEN] = "";
    zk_rc rc;
    *out = NULL;
    if (out_rebuilt) *out_rebuilt = 0;
    if (!dir || !*dir || dim <= 0 || dim > VINDEX_MAX_DIM)
        return zk_fail(err, ZK_INVALID, "vindex: bad directory or dimension %d", dim);
    if (zk_mkdir_p(dir) != 0) return zk_fail(err, ZK_IO, "cannot create %s: %s", dir, strerror(errno));
    if (!(vi = zk_calloc(1, sizeof *vi)) || !(vi->dir = zk_strdup(dir)) ||
        !(vi->path = path_join(dir, SNAP_NAME))) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    vi->dim = dim;
    vi->layout = layout;
    pthread_mutex_init(&vi->mu, NULL);
    remove_stale_temps(dir);

    rc = load_snapshot(vi, why);
    if (rc == ZK_OK && (vi->kind == KIND_COLS) != (layout == RET_VINDEX_COLUMNS)) {
        ZK_LOG(ZK_LOG_INFO, "vector index %s: snapshot of another layout; rebuilding", dir);
        drop_index(vi);
        rc = ZK_NOTFOUND;
    }
    if (rc == ZK_NOMEM) {
        zk_fail(err, rc, "vindex: loading %s: %s", vi->path, why);
        goto out;
    }
    if (rc != ZK_OK) {
        if (rc != ZK_NOTFOUND)
            ZK_LOG(ZK_LOG_WARN, "vector index snapshot %s unusable (%s); rebuilding", vi->path, why);
        vi->applied_seq = 0;
        if ((rc = new_empty_index(vi, err)) != ZK_OK) goto out;
        if (out_rebuilt) *out_rebuilt = 1;
    }
    maybe_start_build(vi);   /* a flat snapshot past the threshold */
    *out = vi;
    vi = NULL;
out:
    ret_vindex_free(vi);
    return rc;
}

void ret_vindex_free(ret_vindex *vi)
{
    if (!vi) return;
    build_cancel(vi);
    if (vi->index) faiss_Index_free(vi->index);
    ret_colidx_free(vi->cols);
    idset_free(&vi->ids);
    idset_free(&vi->build.dirty);
    pthread_mutex_destroy(&vi->mu);
    zk_free(vi->path);
    zk_free(vi->dir);
    zk_free(vi);
}

int ret_vindex_dim(const ret_vindex *vi) { return vi->dim; }

int ret_vindex_layout(const ret_vindex *vi) { return vi->layout; }

int64_t ret_vindex_count(const ret_vindex *vi)
{
    return vi->cols ? (int64_t)ret_colidx_count(vi->cols) : (int64_t)faiss_Index_ntotal(vi->index);
}

int64_t ret_vindex_applied_seq(const ret_vindex *vi) { return vi->applied_seq; }

void ret_vindex_set_applied_seq(ret_vindex *vi, int64_t seq) { vi->applied_seq = seq; }

/* Remove ids (all present in index) from a flat or IVF index. IDMap2 tests
 * membership per row, so it gets a hash selector; an IVF index with a
 * hash-table direct map removes by lookup and accepts only an id array. */
static zk_rc remove_from(FaissIndex *index, int kind, size_t n, const int64_t *ids, char *err)
{
    FaissIDSelector *sel = NULL;
    int frc = kind == KIND_IVF ? faiss_IDSelectorArray_new((FaissIDSelectorArray **)&sel, n, ids)
                               : faiss_IDSelectorBatch_new((FaissIDSelectorBatch **)&sel, n, ids);
    if (frc != 0) return faiss_fail(err, "IDSelector_new", frc);
    frc = faiss_Index_remove_ids(index, sel, NULL);
    faiss_IDSelector_free(sel);
    return frc != 0 ? faiss_fail(err, "remove_ids", frc) : ZK_OK;
}

/* Remove the listed ids that are present (ids may repeat). */
static zk_rc remove_present(ret_vindex *vi, size_t n, const int64_t *ids, char *err)
{
    int64_t *present = NULL;
    size_t np = 0;
    zk_rc rc = ZK_OK;
    idset seen = {0};
    for (size_t i = 0; i < n; i++) np += idset_has(&vi->ids, ids[i]);
    if (np == 0) return ZK_OK;
    if (!(present = zk_malloc(np * sizeof *present)) || idset_reserve(&seen, np) != ZK_OK) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    np = 0;
    for (size_t i = 0; i < n; i++)
        if (idset_has(&vi->ids, ids[i]) && idset_put(&seen, ids[i])) present[np++] = ids[i];
    if ((rc = note_dirty(vi, np, present, err)) != ZK_OK) goto out;
    if ((rc = need_direct_map(vi, err)) != ZK_OK) goto out;
    pthread_mutex_lock(&vi->mu);
    if ((rc = remove_from(vi->index, vi->kind, np, present, err)) == ZK_OK)
        for (size_t i = 0; i < np; i++) idset_del(&vi->ids, present[i]);
    pthread_mutex_unlock(&vi->mu);
out:
    idset_free(&seen);
    zk_free(present);
    return rc;
}

zk_rc ret_vindex_add(ret_vindex *vi, size_t n, const int64_t *ids, const float *vecs, char *err)
{
    idset seen = {0};
    int64_t *uids = NULL;
    float *uvecs = NULL;
    const int64_t *add_ids = ids;
    const float *add_vecs = vecs;
    size_t nu = n, dim = (size_t)vi->dim;
    zk_rc rc = ZK_OK;
    if (n == 0) return ZK_OK;
    if (!ids || !vecs) return zk_fail(err, ZK_INVALID, "vindex add: NULL ids or vectors");
    if (n > (size_t)INT64_MAX / dim) return zk_fail(err, ZK_TOOBIG, "vindex add: batch too large");
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0) return zk_fail(err, ZK_INVALID, "vindex add: negative id %lld", (long long)ids[i]);
    if (vi->cols) return ret_colidx_add(vi->cols, n, ids, vecs, err);
    if ((rc = build_swap(vi, err)) != ZK_OK) return rc;
    if (!faiss_Index_is_trained(vi->index))
        return zk_fail(err, ZK_INDEX, "vindex add: index needs training");

    /* A batch naming one id twice keeps the last vector for it. */
    if ((rc = idset_reserve(&seen, n)) != ZK_OK) goto nomem;
    nu = 0;
    for (size_t i = n; i-- > 0;) nu += (size_t)idset_put(&seen, ids[i]);
    if (nu != n) {
        if (!(uids = zk_malloc(nu * sizeof *uids)) || !(uvecs = zk_malloc(nu * dim * sizeof *uvecs)))
            goto nomem;
        idset_clear(&seen);
        size_t w = nu;
        for (size_t i = n; i-- > 0;) {
            if (!idset_put(&seen, ids[i])) continue;
            w--;
            uids[w] = ids[i];
            memcpy(uvecs + w * dim, vecs + i * dim, dim * sizeof *uvecs);
        }
        add_ids = uids;
        add_vecs = uvecs;
    }
    /* Reserve first so nothing can fail after FAISS has been changed. */
    pthread_mutex_lock(&vi->mu);
    rc = idset_reserve(&vi->ids, nu);
    pthread_mutex_unlock(&vi->mu);
    if (rc != ZK_OK) goto nomem;
    if ((rc = note_dirty(vi, nu, add_ids, err)) != ZK_OK) goto out;
    if ((rc = remove_present(vi, nu, add_ids, err)) != ZK_OK) goto out;
    pthread_mutex_lock(&vi->mu);
    int frc = faiss_Index_add_with_ids(vi->index, (idx_t)nu, add_vecs, add_ids);
    if (frc == 0)
        for (size_t i = 0; i < nu; i++) idset_put(&vi->ids, add_ids[i]);
    pthread_mutex_unlock(&vi->mu);
    if (frc != 0) {
        rc = faiss_fail(err, "add_with_ids", frc);
        goto out;
    }
    maybe_start_build(vi);
    goto out;
nomem:
    rc = zk_fail(err, ZK_NOMEM, "vindex add: out of memory");
out:
    idset_free(&seen);
    zk_free(uids);
    zk_free(uvecs);
    return rc;
}

zk_rc ret_vindex_remove(ret_vindex *vi, size_t n, const int64_t *ids, char *err)
{
    zk_rc rc;
    if (n == 0) return ZK_OK;
    if (!ids) return zk_fail(err, ZK_INVALID, "vindex remove: NULL ids");
    if (vi->cols) {
        ret_colidx_remove(vi->cols, n, ids);
        return ZK_OK;
    }
    if ((rc = build_swap(vi, err)) != ZK_OK) return rc;
    return remove_present(vi, n, ids, err);
}

/* Back to an empty exact index: the rebuild that follows re-adds every
 * vector, and the size policy builds IVF again in the background. */
zk_rc ret_vindex_reset(ret_vindex *vi, char *err)
{
    build_cancel(vi);
    if (vi->cols) {
        ret_colidx_clear(vi->cols);
    } else if (vi->kind == KIND_IVF) {
        FaissIndex *old = vi->index;
        zk_rc rc = new_empty_index(vi, err);
        if (rc != ZK_OK) return rc;
        faiss_Index_free(old);
    } else {
        int frc = faiss_Index_reset(vi->index);
        if (frc != 0) return faiss_fail(err, "reset", frc);
        idset_clear(&vi->ids);
    }
    vi->failed_n = 0;
    vi->applied_seq = 0;
    return ZK_OK;
}

int ret_vindex_upgrade_ready(const ret_vindex *vi)
{
    ret_vindex *m = (ret_vindex *)vi;   /* the mutex is not part of the value */
    pthread_mutex_lock(&m->mu);
    int ready = m->build.state == BUILD_READY || m->build.state == BUILD_FAILED;
    pthread_mutex_unlock(&m->mu);
    return ready;
}

zk_rc ret_vindex_upgrade(ret_vindex *vi, int wait, char *err)
{
    /* A build that finishes may already be due for a retrain at today's
     * size: with wait, swap, then build and swap once more if asked. */
    zk_rc rc = ZK_OK;
    for (int round = 0; round < 2 && rc == ZK_OK; round++) {
        if (wait) {
            if (vi->build.state == BUILD_NONE) start_build_if_due(vi);
            if (vi->build.state != BUILD_NONE) build_join(&vi->build);
        }
        rc = build_swap(vi, err);
        if (!wait) break;
    }
    return rc;
}

/* A full scan of the column index, pruned when the index is large (the
 * tuning can force either way). */
static zk_rc cols_scan(const ret_vindex *vi, ret_colidx_team *team, const float *query, int k,
                       const uint8_t *bitmap, size_t blen, int64_t *out_ids, float *out_scores, int *out_n,
                       char *err)
{
    int top = vi->tune.cols_prune_top ? vi->tune.cols_prune_top : COLS_PRUNE_TOP;
    int per_k = vi->tune.cols_prune_cand_per_k ? vi->tune.cols_prune_cand_per_k : COLS_PRUNE_CAND_PER_K;
    int64_t rows = vi->tune.cols_prune_rows ? vi->tune.cols_prune_rows : COLS_PRUNE_ROWS;
    if (top < 0 || rows < 0 || (int64_t)ret_colidx_count(vi->cols) < rows) top = 0;
    int cand_min = vi->tune.cols_prune_cand_min ? vi->tune.cols_prune_cand_min : COLS_PRUNE_CAND_MIN;
    int cand = k * per_k > cand_min ? k * per_k : cand_min;
    return ret_colidx_search_pruned(vi->cols, query, k, top, cand, bitmap, blen, team, out_ids, out_scores, out_n,
                                    err);
}

size_t ret_vindex_promote(ret_vindex *vi, size_t max_blocks)
{
    return vi->kind == KIND_COLS && vi->cols ? ret_colidx_promote(vi->cols, max_blocks) : 0;
}

void ret_vindex_drop_mapping(ret_vindex *vi)
{
    if (vi->kind == KIND_COLS && vi->cols) ret_colidx_drop_mapping(vi->cols);
}

void ret__vindex_tune(ret_vindex *vi, const ret__vindex_tuning *t)
{
    vi->tune = *t;
    if (vi->ivf) faiss_IndexIVF_set_nprobe(vi->ivf, (size_t)tuned_nprobe(vi, vi->nlist));
    maybe_start_build(vi);
}

int ret__vindex_kind(const ret_vindex *vi, int *out_nlist)
{
    if (out_nlist) *out_nlist = vi->nlist;
    return vi->kind;
}

double ret__vindex_build_secs(const ret_vindex *vi)
{
    return vi->build.secs;
}

zk_rc ret_vindex_search(const ret_vindex *vi, const float *query, int k,
                        int64_t *out_ids, float *out_scores, int *out_n, char *err)
{
    return ret_vindex_search_team(vi, NULL, query, k, out_ids, out_scores, out_n, err);
}

zk_rc ret_vindex_search_team(const ret_vindex *vi, ret_colidx_team *team, const float *query, int k,
                             int64_t *out_ids, float *out_scores, int *out_n, char *err)
{
    float *scores = out_scores, *tmp = NULL;
    zk_rc rc = ZK_OK;
    if (out_n) *out_n = 0;
    if (!query || !out_ids || !out_n || k < 0)
        return zk_fail(err, ZK_INVALID, "vindex search: bad arguments");
    if (vi->cols) return cols_scan(vi, team, query, k, NULL, 0, out_ids, out_scores, out_n, err);
    int64_t total = (int64_t)faiss_Index_ntotal(vi->index);
    int kk = total < k ? (int)total : k;
    if (kk == 0) return ZK_OK;
    if (!scores && !(scores = tmp = zk_malloc((size_t)kk * sizeof *tmp)))
        return zk_fail(err, ZK_NOMEM, "vindex search: out of memory");
    /* idx_t is int64_t, so FAISS writes labels straight into out_ids. One
     * query gains nothing from an OpenMP team; waking one costs more. */
    int done = 0, frc = faiss_Index_search_one_fast(vi->index, query, kk, vi->ivf ? faiss_IndexIVF_nprobe(vi->ivf) : 0,
                                                    NULL, 0, scores, out_ids, &done);
    if (frc == 0 && !done) {
        int omp = faiss_set_omp_threads(1);
        frc = faiss_Index_search(vi->index, 1, query, kk, scores, out_ids);
        faiss_set_omp_threads(omp);
    }
    if (frc != 0) {
        rc = faiss_fail(err, "search", frc);
        goto out;
    }
    int w = 0;
    for (int r = 0; r < kk; r++) {
        if (out_ids[r] < 0) continue;   /* FAISS pads missing results with -1 */
        out_ids[w] = out_ids[r];
        if (out_scores) out_scores[w] = scores[r];
        w++;
    }
    *out_n = w;
out:
    zk_free(tmp);
    return rc;
}

zk_rc ret_vindex_ids(const ret_vindex *vi, int64_t **out_ids, size_t *out_n, char *err)
{
    size_t n = vi->cols ? ret_colidx_count(vi->cols) : vi->ids.count, w = 0;
    *out_ids = NULL;
    *out_n = 0;
    int64_t *ids = zk_malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return zk_fail(err, ZK_NOMEM, "vindex ids: out of memory");
    if (vi->cols) {
        ret_colidx_ids(vi->cols, ids);
        w = n;
    }
    for (size_t i = 0; !vi->cols && i < vi->ids.cap; i++)
        if (vi->ids.slots[i] != IDSET_EMPTY) ids[w++] = vi->ids.slots[i];
    qsort(ids, w, sizeof *ids, zk_cmp_i64);
    *out_ids = ids;
    *out_n = w;
    return ZK_OK;
}

/* ---- filtered search ------------------------------------------------------ */

/* Inner product with eight independent partial sums (lets the compiler use
 * SIMD without -ffast-math). */
static float dot_product(const float *a, const float *b, size_t dim)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= dim; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < dim; i++) s += a[i] * b[i];
    return s;
}

/* Strategy (a): score every allowed id present in the index from its stored
 * vector (reconstructed through the IDMap2). Cost ~ n_allowed. Writes the
 * top kk, best first, into out_ids/scores. */
static zk_rc search_exact(const ret_vindex *vi, const float *query, int kk, const int64_t *allowed,
                          size_t n_allowed, int64_t *out_ids, float *scores, int *out_n, char *err)
{
    size_t dim = (size_t)vi->dim;
    ret_topk t = {out_ids, scores, 0, kk};
    /* reader context: cannot build the map; the caller falls back */
    if (vi->ivf && faiss_IndexIVF_direct_map_type(vi->ivf) != DIRECT_MAP_HASHTABLE)
        return zk_fail(err, ZK_INDEX, "vindex search: IVF index without its id map");
    float *vec = zk_malloc(dim * sizeof *vec);
    if (!vec) return zk_fail(err, ZK_NOMEM, "vindex search: out of memory");
    for (size_t i = 0; i < n_allowed; i++) {
        int64_t id = allowed[i];
        /* skip repeats, negative ids (-1 is the set's EMPTY marker) and absent ids */
        if ((i > 0 && id == allowed[i - 1]) || id < 0 || !idset_has(&vi->ids, id)) continue;
        int frc = faiss_Index_reconstruct(vi->index, id, vec);
        if (frc != 0) {
            zk_free(vec);
            return faiss_fail(err, "reconstruct", frc);
        }
        ret_topk_push(&t, id, dot_product(query, vec, dim));
    }
    zk_free(vec);
    ret_topk_finish(&t);
    *out_n = t.n;
    return ZK_OK;
}

/* Strategy (b): a scan that skips ids outside the allowed set — zhiku's
 * SIMD scan (faiss_Index_search_one_fast) with a bitmap over external ids
 * while the largest allowed id keeps it small, else FAISS with a hash-batch
 * selector. On a flat index every row is tested (a bit test each) and only
 * allowed rows are scored; on IVF the probe count is widened by
 * (ntotal / n_allowed)^IVF_FILTER_EXP so enough allowed candidates are seen
 * (all lists when the allowed set is small: then the result is exact). */
static zk_rc search_selector(const ret_vindex *vi, const float *query, int kk, const int64_t *allowed,
                             size_t n_allowed, int64_t *out_ids, float *scores, int *out_n, char *err)
{
    FaissIDSelector *sel = NULL;
    FaissSearchParameters *params = NULL;
    FaissSearchParametersIVF *ivf_params = NULL;
    uint8_t *bitmap = NULL;
    zk_rc rc = ZK_OK;
    int frc, done = 0;
    size_t np = 0;
    int64_t max_id = allowed[n_allowed - 1];
    if (max_id < 0) return ZK_OK;   /* only negative ids: none can be present */
    if (vi->ivf) {
        /* few allowed ids per list: probe more lists to find k of them */
        double frac = (double)n_allowed / (double)faiss_Index_ntotal(vi->index);
        double p = (double)faiss_IndexIVF_nprobe(vi->ivf);
        if (frac < 1) p *= pow(1 / frac, IVF_FILTER_EXP);
        np = p > vi->nlist ? (size_t)vi->nlist : (size_t)p;
    }
    uint64_t bitmap_len = (uint64_t)max_id / 8 + 1;
    if (bitmap_len <= ALLOWED_BITMAP_MAX_BYTES) {
        if (!(bitmap = zk_calloc((size_t)bitmap_len, 1)))
            return zk_fail(err, ZK_NOMEM, "vindex search: out of memory");
        for (size_t i = 0; i < n_allowed; i++)
            if (allowed[i] >= 0) bitmap[allowed[i] >> 3] |= (uint8_t)(1u << (allowed[i] & 7));
        frc = faiss_Index_search_one_fast(vi->index, query, kk, np, bitmap, (size_t)bitmap_len, scores, out_ids,
                                          &done);
        if (frc != 0) {
            rc = faiss_fail(err, "search_one_fast", frc);
            goto out;
        }
        if (done) goto found;
        frc = faiss_IDSelectorBitmap_new((FaissIDSelectorBitmap **)&sel, (size_t)bitmap_len, bitmap);
    } else {
        frc = faiss_IDSelectorBatch_new((FaissIDSelectorBatch **)&sel, n_allowed, allowed);
    }
    if (frc != 0) {
        rc = faiss_fail(err, "IDSelector_new", frc);
        goto out;
    }
    if (vi->ivf) {
        if ((frc = faiss_SearchParametersIVF_new_with(&ivf_params, sel, np, 0)) != 0) {
            rc = faiss_fail(err, "SearchParametersIVF_new", frc);
            goto out;
        }
        params = (FaissSearchParameters *)ivf_params;
    } else if ((frc = faiss_SearchParameters_new(&params, sel)) != 0) {
        rc = faiss_fail(err, "SearchParameters_new", frc);
        goto out;
    }
    if ((frc = faiss_Index_search_with_params(vi->index, 1, query, kk, params, scores, out_ids)) != 0) {
        rc = faiss_fail(err, "search_with_params", frc);
        goto out;
    }
found:
    *out_n = kk;
out:
    if (ivf_params) faiss_SearchParametersIVF_free(ivf_params);
    else faiss_SearchParameters_free(params);
    if (sel) faiss_IDSelector_free(sel);
    zk_free(bitmap);
    return rc;
}

static int allowed_has(const int64_t *allowed, size_t n, int64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (allowed[mid] < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && allowed[lo] == id;
}

/* A column index scores a small allowed set id by id (a lookup and nnz
 * reads each) and otherwise scans with a bitmap of the allowed ids (a bit
 * test only for rows that beat the current k-th score). */
static zk_rc search_cols(const ret_vindex *vi, int strategy, ret_colidx_team *team, const float *query, int kk,
                         const int64_t *allowed, size_t n_allowed, int64_t *out_ids, float *scores, int *out_n,
                         char *err)
{
    int64_t max_id = allowed[n_allowed - 1];
    uint64_t bitmap_len = max_id < 0 ? 0 : (uint64_t)max_id / 8 + 1;
    if (strategy == VIA_AUTO)
        strategy = (double)n_allowed <= COLS_EXACT_FRACTION * (double)ret_colidx_count(vi->cols) ||
                           bitmap_len > ALLOWED_BITMAP_MAX_BYTES ? VIA_EXACT : VIA_SELECTOR;
    if (strategy == VIA_EXACT || bitmap_len > ALLOWED_BITMAP_MAX_BYTES)
        return ret_colidx_search_ids(vi->cols, query, kk, allowed, n_allowed, team, out_ids, scores, out_n, err);
    uint8_t *bitmap = zk_calloc((size_t)bitmap_len, 1);
    if (!bitmap) return zk_fail(err, ZK_NOMEM, "vindex search: out of memory");
    for (size_t i = 0; i < n_allowed; i++)
        if (allowed[i] >= 0) bitmap[allowed[i] >> 3] |= (uint8_t)(1u << (allowed[i] & 7));
    zk_rc rc = cols_scan(vi, team, query, kk, bitmap, (size_t)bitmap_len, out_ids, scores, out_n, err);
    zk_free(bitmap);
    return rc;
}

/* Which strategy ret_vindex_search_allowed uses: the measured choice, or one
 * forced by the unit tests and bench/vindex_filter_bench.c (declared in
 * vindex_int.h; not part of the public API). */
static zk_rc search_allowed(const ret_vindex *vi, int strategy, ret_colidx_team *team, const float *query, int k,
                            const int64_t *allowed, size_t n_allowed, int64_t *out_ids, float *out_scores,
                            int *out_n, char *err)
{
    float *scores = out_scores, *tmp = NULL;
    zk_rc rc = ZK_OK;
    int n = 0;
    if (out_n) *out_n = 0;
    if (!query || !out_ids || !out_n || k < 0 || (n_allowed && !allowed))
        return zk_fail(err, ZK_INVALID, "vindex search: bad arguments");
    for (size_t i = 1; i < n_allowed; i++)
        if (allowed[i] < allowed[i - 1])
            return zk_fail(err, ZK_INVALID, "vindex search: allowed ids not sorted");
    int64_t total = ret_vindex_count(vi);
    int kk = k;
    if (kk > total) kk = (int)total;
    if ((size_t)kk > n_allowed) kk = (int)n_allowed;
    if (kk == 0) return ZK_OK;
    if (!scores && !(scores = tmp = zk_malloc((size_t)kk * sizeof *tmp)))
        return zk_fail(err, ZK_NOMEM, "vindex search: out of memory");
    int automatic = strategy == VIA_AUTO;
    int omp = faiss_set_omp_threads(1);   /* as in ret_vindex_search */
    if (vi->cols) {
        rc = search_cols(vi, strategy, team, query, kk, allowed, n_allowed, out_ids, scores, &n, err);
        if (rc != ZK_OK) goto out;
        goto filter;
    }
    if (automatic)
        strategy = (double)n_allowed <= (vi->ivf ? IVF_EXACT_FRACTION : ALLOWED_EXACT_FRACTION) * (double)total
                       ? VIA_EXACT : VIA_SELECTOR;
    if (strategy == VIA_EXACT) {
        rc = search_exact(vi, query, kk, allowed, n_allowed, out_ids, scores, &n, err);
        /* An index type that cannot reconstruct vectors: let FAISS filter. */
        if (rc == ZK_INDEX && automatic)
            rc = search_selector(vi, query, kk, allowed, n_allowed, out_ids, scores, &n, err);
    } else {
        rc = search_selector(vi, query, kk, allowed, n_allowed, out_ids, scores, &n, err);
    }
    if (rc != ZK_OK) goto out;
filter:;
    /* Defence in depth: whatever a strategy returned, only allowed ids leave
     * (this also drops FAISS's -1 padding). */
    int w = 0;
    for (int r = 0; r < n; r++) {
        if (out_ids[r] < 0 || !allowed_has(allowed, n_allowed, out_ids[r])) continue;
        out_ids[w] = out_ids[r];
        if (out_scores) out_scores[w] = scores[r];
        w++;
    }
    *out_n = w;
out:
    faiss_set_omp_threads(omp);
    zk_free(tmp);
    return rc;
}

zk_rc ret__vindex_search_allowed_via(const ret_vindex *vi, int strategy, const float *query, int k,
                                     const int64_t *allowed, size_t n_allowed, int64_t *out_ids,
                                     float *out_scores, int *out_n, char *err)
{
    return search_allowed(vi, strategy, NULL, query, k, allowed, n_allowed, out_ids, out_scores, out_n, err);
}

zk_rc ret_vindex_search_allowed(const ret_vindex *vi, const float *query, int k,
                                const int64_t *allowed, size_t n_allowed,
                                int64_t *out_ids, float *out_scores, int *out_n, char *err)
{
    return search_allowed(vi, VIA_AUTO, NULL, query, k, allowed, n_allowed, out_ids, out_scores, out_n, err);
}

zk_rc ret_vindex_search_allowed_team(const ret_vindex *vi, ret_colidx_team *team, const float *query, int k,
                                     const int64_t *allowed, size_t n_allowed, int64_t *out_ids,
                                     float *out_scores, int *out_n, char *err)
{
    return search_allowed(vi, VIA_AUTO, team, query, k, allowed, n_allowed, out_ids, out_scores, out_n, err);
}

static zk_rc fsync_dir(const char *dir, char *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return zk_fail(err, ZK_IO, "open %s: %s", dir, strerror(errno));
    int r = fsync(fd);
    int e = errno;
    close(fd);
    if (r != 0) return zk_fail(err, ZK_IO, "fsync %s: %s", dir, strerror(e));
    return ZK_OK;
}

zk_rc ret_vindex_save(ret_vindex *vi, char *err)
{
    unsigned char hdr[SNAP_HDR_LEN] = {0};
    char *tmp = path_join(vi->dir, SNAP_TMP_PREFIX "XXXXXX");
    FILE *f = NULL;
    int fd = -1;
    zk_rc rc = ZK_OK;
    if (!tmp) return zk_fail(err, ZK_NOMEM, "out of memory");
    if ((fd = mkstemp(tmp)) < 0) {
        rc = zk_fail(err, ZK_IO, "create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (!(f = fdopen(fd, "w+b"))) {
        rc = zk_fail(err, ZK_IO, "fdopen %s: %s", tmp, strerror(errno));
        close(fd);
        goto out;
    }
    /* Header placeholder, payload, then the real header once the payload's
     * length and hash are known. */
    if (fwrite(hdr, 1, sizeof hdr, f) != sizeof hdr) goto io;
    if ((rc = build_swap(vi, err)) != ZK_OK) goto out;
    if (vi->cols) {
        if ((rc = ret_colidx_write(vi->cols, f, err)) != ZK_OK) goto out;
    } else {
        int frc = faiss_write_index_without_direct_map(vi->index, f);
        if (frc != 0) {
            rc = faiss_fail(err, "write_index", frc);
            goto out;
        }
    }
    if (fflush(f) != 0) goto io;
    long end = ftell(f);
    if (end < SNAP_HDR_LEN) goto io;
    memcpy(hdr, SNAP_MAGIC, 8);
    put_u32(hdr + 8, SNAP_VERSION);
    put_u32(hdr + 12, (uint32_t)vi->dim);
    put_u64(hdr + 16, (uint64_t)vi->applied_seq);
    put_u64(hdr + 24, (uint64_t)(end - SNAP_HDR_LEN));
    put_u32(hdr + 32, (uint32_t)vi->kind);
    put_u32(hdr + 36, (uint32_t)vi->nlist);
    put_u64(hdr + 40, (uint64_t)vi->trained_n);
    /* checksum the payload as written, through a read-only mapping */
    unsigned char *map = map_file(fileno(f), (uint64_t)end);
    if (!map) {
        rc = zk_fail(err, ZK_IO, "vindex save: mapping %s: %s", tmp, strerror(errno));
        goto out;
    }
    crc_snapshot(hdr, map + SNAP_HDR_LEN, (uint64_t)(end - SNAP_HDR_LEN), hdr + SNAP_HASHED_LEN);
    munmap(map, (size_t)end);
    if (fseek(f, 0, SEEK_SET) != 0 || fwrite(hdr, 1, sizeof hdr, f) != sizeof hdr ||
        fflush(f) != 0 || fsync(fileno(f)) != 0)
        goto io;
    int r = fclose(f);
    f = NULL;
    if (r != 0) goto io;
    if (rename(tmp, vi->path) != 0) goto io;
    zk_free(tmp);
    tmp = NULL;   /* nothing left to unlink */
    rc = fsync_dir(vi->dir, err);
    goto out;
io:
    rc = zk_fail(err, ZK_IO, "vindex save %s: %s", tmp ? tmp : vi->path, strerror(errno));
out:
    if (f) fclose(f);
    if (tmp) {
        unlink(tmp);
        zk_free(tmp);
    }
    return rc;
}
