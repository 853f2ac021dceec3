// faiss_capi.cpp — the subset of the FAISS C API that zhiku calls.
//
// Debian's libfaiss-dev ships <faiss/c_api/*.h> but not libfaiss_c, so this
// file implements exactly the functions retrieval/vindex.c uses, with the
// upstream signatures and semantics: C++ exceptions become negative error
// codes and the message is kept per thread for faiss_get_last_error().
// The Makefile builds it only when no system libfaiss_c is installed.
// It also implements the few newer upstream functions declared in
// faiss_capi_ext.h (search-time filtering), with upstream 1.7.4+ semantics
// on top of the 1.7.3 C++ library.

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <immintrin.h>
#include <omp.h>
#include <string>
#include <typeinfo>
#include <vector>

#include <faiss/Index.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/impl/io.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

extern "C" {
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
}
#include "retrieval/faiss_capi_ext.h"

using faiss_cxx_idx_t = faiss::Index::idx_t;
static_assert(sizeof(faiss_cxx_idx_t) == sizeof(idx_t), "FAISS id type is not 64-bit");

namespace {

// Message of the last failed call on this thread (upstream keeps an
// exception_ptr; a string is enough and cheaper to hand out).
thread_local std::string last_error;

faiss::Index *cxx(FaissIndex *p) { return reinterpret_cast<faiss::Index *>(p); }
const faiss::Index *cxx(const FaissIndex *p) { return reinterpret_cast<const faiss::Index *>(p); }

// Runs f and translates exceptions to the upstream error codes.
template <typename F>
int guarded(F f)
{
    try {
        f();
        return OK;
    } catch (const faiss::FaissException &e) {
        last_error = e.what();
        return FAISS_EXCEPT;
    } catch (const std::exception &e) {
        last_error = e.what();
        return STD_EXCEPT;
    } catch (...) {
        last_error = "Unknown error";
        return UNKNOWN_EXCEPT;
    }
}

// ---- single-query scan kernels ------------------------------------------
//
// Debian's libfaiss is built for baseline x86-64, where fvec_inner_product
// is a scalar loop with one dependent sum (~0.8 us per 512-d vector) and
// fp16/8-bit codes are decoded one component at a time. zhiku searches one
// query at a time, so the scan IS the cost: these kernels do the same inner
// products with AVX2/FMA/F16C when the CPU has them (GCC/Clang target
// attributes, chosen once at run time with __builtin_cpu_supports) and with
// eight independent partial sums otherwise. Results equal FAISS's up to
// float summation order.

// Inner product of float vectors.
float dot_f32_ref(const float *a, const float *b, size_t d)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= d; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < d; i++) s += a[i] * b[i];
    return s;
}

// IEEE half to float (what faiss::decode_fp16 computes).
float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {   // subnormal: normalise
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400));
            bits = sign | (uint32_t)(112 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp + 112) << 23 | man << 13;
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// Inner product of a float query with fp16 codes.
float dot_f16_ref(const float *q, const uint8_t *code, size_t d)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= d; i += 8)
        for (int j = 0; j < 8; j++) {
            uint16_t h;
            std::memcpy(&h, code + 2 * (i + j), 2);
            acc[j] += q[i + j] * half_to_float(h);
        }
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < d; i++) {
        uint16_t h;
        std::memcpy(&h, code + 2 * i, 2);
        s += q[i] * half_to_float(h);
    }
    return s;
}

// Inner product of float weights with 8-bit codes.
float dot_u8_ref(const float *w, const uint8_t *code, size_t d)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= d; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += w[i + j] * (float)code[i + j];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < d; i++) s += w[i] * (float)code[i];
    return s;
}

__attribute__((target("avx2,fma"))) float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) float dot_f32_avx2(const float *a, const float *b, size_t d)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(),
           s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= d; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < d; i++) s += a[i] * b[i];
    return s;
}

__attribute__((target("avx2,fma,f16c"))) float dot_f16_avx2(const float *q, const uint8_t *code, size_t d)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(),
           s3 = _mm256_setzero_ps();
    const __m128i *c = reinterpret_cast<const __m128i *>(code);
    size_t i = 0;
    for (; i + 32 <= d; i += 32, c += 4) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(_mm_loadu_si128(c)), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), _mm256_cvtph_ps(_mm_loadu_si128(c + 1)), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 16), _mm256_cvtph_ps(_mm_loadu_si128(c + 2)), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 24), _mm256_cvtph_ps(_mm_loadu_si128(c + 3)), s3);
    }
    for (; i + 8 <= d; i += 8, c++)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(_mm_loadu_si128(c)), s0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < d; i++) {
        uint16_t h;
        std::memcpy(&h, code + 2 * i, 2);
        s += q[i] * half_to_float(h);
    }
    return s;
}

__attribute__((target("avx2,fma"))) float dot_u8_avx2(const float *w, const uint8_t *code, size_t d)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i *>(code + i));
        __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c));
        __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(c, 8)));
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), lo, s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), hi, s1);
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < d; i++) s += w[i] * (float)code[i];
    return s;
}

struct Kernels {
    float (*f32)(const float *, const float *, size_t);
    float (*f16)(const float *, const uint8_t *, size_t);
    float (*u8)(const float *, const uint8_t *, size_t);
};

const Kernels &kernels()
{
    static const Kernels k = [] {
        Kernels r = {dot_f32_ref, dot_f16_ref, dot_u8_ref};
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            r.f32 = dot_f32_avx2;
            r.u8 = dot_u8_avx2;
            // F16C has no __builtin_cpu_supports name in older GCCs; every
            // AVX2 CPU has it (Haswell and Zen onwards)
            r.f16 = dot_f16_avx2;
        }
        return r;
    }();
    return k;
}

// Top-k by score (higher is better; ties: smaller id first), a min-heap
// whose root is the worst kept hit.
struct TopK {
    std::vector<float> s;
    std::vector<faiss_cxx_idx_t> id;
    size_t k;
    explicit TopK(size_t k_) : k(k_) { s.reserve(k); id.reserve(k); }
    bool worse(size_t a, size_t b) const { return s[a] < s[b] || (s[a] == s[b] && id[a] > id[b]); }
    void sift_down(size_t i, size_t n)
    {
        for (;;) {
            size_t l = 2 * i + 1, r = l + 1, w = i;
            if (l < n && worse(l, w)) w = l;
            if (r < n && worse(r, w)) w = r;
            if (w == i) return;
            std::swap(s[i], s[w]);
            std::swap(id[i], id[w]);
            i = w;
        }
    }
    // Score below which a candidate cannot enter (when full).
    bool full() const { return s.size() == k; }
    float floor() const { return s[0]; }
    void push(float score, faiss_cxx_idx_t label)
    {
        if (s.size() < k) {
            s.push_back(score);
            id.push_back(label);
            for (size_t i = s.size() - 1; i > 0 && worse(i, (i - 1) / 2); i = (i - 1) / 2) {
                std::swap(s[i], s[(i - 1) / 2]);
                std::swap(id[i], id[(i - 1) / 2]);
            }
            return;
        }
        if (score < s[0] || (score == s[0] && label > id[0])) return;
        s[0] = score;
        id[0] = label;
        sift_down(0, s.size());
    }
    // Best first into out arrays of k, padded with -1 / -FLT_MAX like FAISS.
    void finish(float *dist, faiss_cxx_idx_t *labels)
    {
        size_t n = s.size();
        for (size_t m = n; m > 1; m--) {
            std::swap(s[0], s[m - 1]);
            std::swap(id[0], id[m - 1]);
            sift_down(0, m - 1);
        }
        for (size_t i = 0; i < k; i++) {
            dist[i] = i < n ? s[i] : -FLT_MAX;
            labels[i] = i < n ? id[i] : -1;
        }
    }
};

inline bool bitmap_has(const uint8_t *bitmap, size_t len, faiss_cxx_idx_t id)
{
    return (size_t)id / 8 < len && (bitmap[id >> 3] >> (id & 7)) & 1;
}

// Scan one inverted list into top. `base` is added to every score (the
// query-centroid product for residual codes, plus a constant for 8-bit).
template <int CODE>
void scan_list(const faiss::InvertedLists *il, size_t list, const float *q, size_t d, size_t code_size,
               float base, const uint8_t *bitmap, size_t bitmap_len, TopK &top)
{
    size_t n = il->list_size(list);
    if (n == 0) return;
    faiss::InvertedLists::ScopedCodes codes(il, list);
    faiss::InvertedLists::ScopedIds ids(il, list);
    const Kernels &kn = kernels();
    for (size_t j = 0; j < n; j++) {
        faiss_cxx_idx_t id = ids[j];
        if (bitmap && !bitmap_has(bitmap, bitmap_len, id)) continue;
        const uint8_t *c = codes.get() + j * code_size;
        float sc = base + (CODE == 0   ? kn.f32(q, reinterpret_cast<const float *>(c), d)
                           : CODE == 1 ? kn.f16(q, c, d)
                                       : kn.u8(q, c, d));
        top.push(sc, id);
    }
}

// The IVF single-query search; returns false when the index type is not one
// these kernels handle (caller falls back to FAISS).
bool ivf_search_one(const faiss::IndexIVF *ivf, const float *x, size_t k, size_t nprobe,
                    const uint8_t *bitmap, size_t bitmap_len, float *dist, faiss_cxx_idx_t *labels)
{
    auto *coarse = dynamic_cast<const faiss::IndexFlat *>(ivf->quantizer);
    if (!coarse || coarse->metric_type != faiss::METRIC_INNER_PRODUCT ||
        ivf->metric_type != faiss::METRIC_INNER_PRODUCT)
        return false;
    int code = -1;
    bool residual = false;
    const float *vmin = nullptr, *vdiff = nullptr;
    size_t d = (size_t)ivf->d;
    if (dynamic_cast<const faiss::IndexIVFFlat *>(ivf)) {
        code = 0;
    } else if (auto *sq = dynamic_cast<const faiss::IndexIVFScalarQuantizer *>(ivf)) {
        residual = sq->by_residual;
        if (sq->sq.qtype == faiss::ScalarQuantizer::QT_fp16) {
            code = 1;
        } else if (sq->sq.qtype == faiss::ScalarQuantizer::QT_8bit && sq->sq.trained.size() == 2 * d) {
            code = 2;
            vmin = sq->sq.trained.data();
            vdiff = vmin + d;
        }
    }
    if (code < 0) return false;
    const Kernels &kn = kernels();
    size_t nlist = ivf->nlist;
    if (nprobe > nlist) nprobe = nlist;
    if (nprobe == 0) nprobe = 1;
    // coarse step: all centroid scores, then the nprobe best
    std::vector<float> cs(nlist);
    const float *xb = coarse->get_xb();
    for (size_t l = 0; l < nlist; l++) cs[l] = kn.f32(x, xb + l * d, d);
    std::vector<uint32_t> order(nlist);
    for (size_t l = 0; l < nlist; l++) order[l] = (uint32_t)l;
    std::partial_sort(order.begin(), order.begin() + (long)nprobe, order.end(),
                      [&](uint32_t a, uint32_t b) { return cs[a] > cs[b] || (cs[a] == cs[b] && a < b); });
    // 8-bit codes: <x, vmin + (c + 0.5) / 255 * vdiff> = const + <w, c>
    std::vector<float> w;
    float const8 = 0;
    if (code == 2) {
        w.resize(d);
        for (size_t i = 0; i < d; i++) {
            w[i] = x[i] * vdiff[i] / 255.0f;
            const8 += x[i] * vmin[i] + 0.5f * w[i];
        }
    }
    const float *qv = code == 2 ? w.data() : x;
    TopK top(k);
    for (size_t p = 0; p < nprobe; p++) {
        size_t l = order[p];
        float base = (residual ? cs[l] : 0.0f) + const8;
        if (code == 0) scan_list<0>(ivf->invlists, l, qv, d, ivf->code_size, base, bitmap, bitmap_len, top);
        else if (code == 1) scan_list<1>(ivf->invlists, l, qv, d, ivf->code_size, base, bitmap, bitmap_len, top);
        else scan_list<2>(ivf->invlists, l, qv, d, ivf->code_size, base, bitmap, bitmap_len, top);
    }
    top.finish(dist, labels);
    return true;
}

// Exhaustive single-query search of an IndexIDMap2 over an IndexFlat (IP).
bool flat_search_one(const faiss::IndexIDMap2 *m, const float *x, size_t k, const uint8_t *bitmap,
                     size_t bitmap_len, float *dist, faiss_cxx_idx_t *labels)
{
    auto *flat = dynamic_cast<const faiss::IndexFlat *>(m->index);
    if (!flat || flat->metric_type != faiss::METRIC_INNER_PRODUCT) return false;
    size_t d = (size_t)flat->d, n = (size_t)flat->ntotal;
    const float *xb = flat->get_xb();
    const Kernels &kn = kernels();
    TopK top(k);
    for (size_t i = 0; i < n; i++) {
        faiss_cxx_idx_t id = m->id_map[i];
        if (bitmap && !bitmap_has(bitmap, bitmap_len, id)) continue;
        top.push(kn.f32(x, xb + i * d, d), id);
    }
    top.finish(dist, labels);
    return true;
}

// Reads an index from memory (faiss::VectorIOReader wants a std::vector).
struct BufReader : faiss::IOReader {
    const uint8_t *buf;
    size_t len, pos = 0;
    BufReader(const uint8_t *b, size_t l) : buf(b), len(l) {}
    size_t operator()(void *ptr, size_t size, size_t nitems) override
    {
        if (size == 0 || nitems == 0) return 0;
        size_t avail = (len - pos) / size, n = nitems < avail ? nitems : avail;
        std::memcpy(ptr, buf + pos, n * size);
        pos += n * size;
        return n;
    }
};

// Applies a selector on external ids to an IDMap's internal row numbers,
// like upstream's IDSelectorTranslated (1.7.4+); 1.7.3's IndexIDMap refuses
// search parameters outright.
struct SelectorTranslated : faiss::IDSelector {
    const std::vector<faiss_cxx_idx_t> &id_map;
    const faiss::IDSelector *sel;
    SelectorTranslated(const std::vector<faiss_cxx_idx_t> &m, const faiss::IDSelector *s)
        : id_map(m), sel(s) {}
    bool is_member(faiss_cxx_idx_t id) const final { return sel->is_member(id_map[id]); }
};

// Searches an IndexIDMap(2) with params whose selector names external ids:
// the inner index sees a translated selector (on a copy of the base
// parameters, so the caller's object is never modified), then labels are
// mapped back. Subclassed parameters (IVF, HNSW) are swapped in place and
// restored, as upstream does.
void idmap_search_with_params(const faiss::IndexIDMap *m, faiss_cxx_idx_t n, const float *x,
                              faiss_cxx_idx_t k, const faiss::SearchParameters *params,
                              float *distances, faiss_cxx_idx_t *labels)
{
    if (!params || !params->sel) {
        m->index->search(n, x, k, distances, labels, params);
    } else {
        SelectorTranslated tsel(m->id_map, params->sel);
        if (typeid(*params) == typeid(faiss::SearchParameters)) {
            faiss::SearchParameters local;
            local.sel = &tsel;
            m->index->search(n, x, k, distances, labels, &local);
        } else {
            auto *p = const_cast<faiss::SearchParameters *>(params);
            faiss::IDSelector *saved = p->sel;
            p->sel = &tsel;
            try {
                m->index->search(n, x, k, distances, labels, p);
            } catch (...) {
                p->sel = saved;
                throw;
            }
            p->sel = saved;
        }
    }
    for (faiss_cxx_idx_t i = 0; i < n * k; i++)
        labels[i] = labels[i] < 0 ? labels[i] : m->id_map[labels[i]];
}

} // namespace

extern "C" {

const char *faiss_get_last_error()
{
    return last_error.c_str();
}

int faiss_index_factory(FaissIndex **p_index, int d, const char *description, FaissMetricType metric)
{
    return guarded([&] {
        *p_index = reinterpret_cast<FaissIndex *>(
            faiss::index_factory(d, description, static_cast<faiss::MetricType>(metric)));
    });
}

void faiss_Index_free(FaissIndex *obj)
{
    delete cxx(obj);
}

int faiss_Index_d(const FaissIndex *index)
{
    return cxx(index)->d;
}

int faiss_Index_is_trained(const FaissIndex *index)
{
    return cxx(index)->is_trained ? 1 : 0;
}

idx_t faiss_Index_ntotal(const FaissIndex *index)
{
    return cxx(index)->ntotal;
}

FaissMetricType faiss_Index_metric_type(const FaissIndex *index)
{
    return static_cast<FaissMetricType>(cxx(index)->metric_type);
}

int faiss_Index_add_with_ids(FaissIndex *index, idx_t n, const float *x, const idx_t *xids)
{
    return guarded([&] {
        cxx(index)->add_with_ids(n, x, reinterpret_cast<const faiss_cxx_idx_t *>(xids));
    });
}

int faiss_Index_search(const FaissIndex *index, idx_t n, const float *x, idx_t k,
                       float *distances, idx_t *labels)
{
    return guarded([&] {
        cxx(index)->search(n, x, k, distances, reinterpret_cast<faiss_cxx_idx_t *>(labels));
    });
}

int faiss_Index_train(FaissIndex *index, idx_t n, const float *x)
{
    return guarded([&] { cxx(index)->train(n, x); });
}

FaissIndexIVF *faiss_IndexIVF_cast(FaissIndex *index)
{
    return reinterpret_cast<FaissIndexIVF *>(dynamic_cast<faiss::IndexIVF *>(cxx(index)));
}

size_t faiss_IndexIVF_nlist(const FaissIndexIVF *index)
{
    return reinterpret_cast<const faiss::IndexIVF *>(index)->nlist;
}

size_t faiss_IndexIVF_nprobe(const FaissIndexIVF *index)
{
    return reinterpret_cast<const faiss::IndexIVF *>(index)->nprobe;
}

void faiss_IndexIVF_set_nprobe(FaissIndexIVF *index, size_t nprobe)
{
    reinterpret_cast<faiss::IndexIVF *>(index)->nprobe = nprobe;
}

size_t faiss_IndexIVF_get_list_size(const FaissIndexIVF *index, size_t list_no)
{
    return reinterpret_cast<const faiss::IndexIVF *>(index)->get_list_size(list_no);
}

void faiss_IndexIVF_invlists_get_ids(const FaissIndexIVF *index, size_t list_no, idx_t *invlist)
{
    auto *ivf = reinterpret_cast<const faiss::IndexIVF *>(index);
    size_t n = ivf->invlists->list_size(list_no);
    faiss::InvertedLists::ScopedIds ids(ivf->invlists, list_no);
    for (size_t i = 0; i < n; i++)
        invlist[i] = ids[i];
}

int faiss_IndexIVF_set_direct_map(FaissIndexIVF *index, int direct_map_type)
{
    return guarded([&] {
        reinterpret_cast<faiss::IndexIVF *>(index)->set_direct_map_type(
            static_cast<faiss::DirectMap::Type>(direct_map_type));
    });
}

int faiss_IndexIVF_direct_map_type(const FaissIndexIVF *index)
{
    return static_cast<int>(reinterpret_cast<const faiss::IndexIVF *>(index)->direct_map.type);
}

int faiss_SearchParametersIVF_new_with(FaissSearchParametersIVF **p_sp, FaissIDSelector *sel,
                                       size_t nprobe, size_t max_codes)
{
    return guarded([&] {
        auto *sp = new faiss::SearchParametersIVF();
        sp->sel = reinterpret_cast<faiss::IDSelector *>(sel);
        sp->nprobe = nprobe;
        sp->max_codes = max_codes;
        *p_sp = reinterpret_cast<FaissSearchParametersIVF *>(sp);
    });
}

void faiss_SearchParametersIVF_free(FaissSearchParametersIVF *obj)
{
    delete reinterpret_cast<faiss::SearchParametersIVF *>(obj);
}

int faiss_IDSelectorArray_new(FaissIDSelectorArray **p_sel, size_t n, const idx_t *ids)
{
    return guarded([&] {
        *p_sel = reinterpret_cast<FaissIDSelectorArray *>(
            new faiss::IDSelectorArray(n, reinterpret_cast<const faiss_cxx_idx_t *>(ids)));
    });
}

int faiss_set_omp_threads(int n)
{
    int old = omp_get_max_threads();
    omp_set_num_threads(n);
    return old;
}

int faiss_Index_reconstruct(const FaissIndex *index, idx_t key, float *recons)
{
    return guarded([&] { cxx(index)->reconstruct(key, recons); });
}

int faiss_SearchParameters_new(FaissSearchParameters **p_sp, FaissIDSelector *sel)
{
    return guarded([&] {
        auto *sp = new faiss::SearchParameters();
        sp->sel = reinterpret_cast<faiss::IDSelector *>(sel);
        *p_sp = reinterpret_cast<FaissSearchParameters *>(sp);
    });
}

void faiss_SearchParameters_free(FaissSearchParameters *obj)
{
    delete reinterpret_cast<faiss::SearchParameters *>(obj);
}

int faiss_Index_search_with_params(const FaissIndex *index, idx_t n, const float *x, idx_t k,
                                   const FaissSearchParameters *params, float *distances,
                                   idx_t *labels)
{
    return guarded([&] {
        auto *p = reinterpret_cast<const faiss::SearchParameters *>(params);
        auto *l = reinterpret_cast<faiss_cxx_idx_t *>(labels);
        if (auto *m = dynamic_cast<const faiss::IndexIDMap *>(cxx(index)))
            idmap_search_with_params(m, n, x, k, p, distances, l);
        else
            cxx(index)->search(n, x, k, distances, l, p);
    });
}

int faiss_Index_reset(FaissIndex *index)
{
    return guarded([&] { cxx(index)->reset(); });
}

int faiss_Index_remove_ids(FaissIndex *index, const FaissIDSelector *sel, size_t *n_removed)
{
    return guarded([&] {
        size_t n = cxx(index)->remove_ids(*reinterpret_cast<const faiss::IDSelector *>(sel));
        if (n_removed)
            *n_removed = n;
    });
}

int faiss_IDSelectorBatch_new(FaissIDSelectorBatch **p_sel, size_t n, const idx_t *indices)
{
    return guarded([&] {
        *p_sel = reinterpret_cast<FaissIDSelectorBatch *>(
            new faiss::IDSelectorBatch(n, reinterpret_cast<const faiss_cxx_idx_t *>(indices)));
    });
}

int faiss_IDSelectorBitmap_new(FaissIDSelectorBitmap **p_sel, size_t n, const uint8_t *bitmap)
{
    return guarded([&] {
        *p_sel = reinterpret_cast<FaissIDSelectorBitmap *>(new faiss::IDSelectorBitmap(n, bitmap));
    });
}

void faiss_IDSelector_free(FaissIDSelector *obj)
{
    delete reinterpret_cast<faiss::IDSelector *>(obj);
}

FaissIndexIDMap2 *faiss_IndexIDMap2_cast(FaissIndex *index)
{
    return reinterpret_cast<FaissIndexIDMap2 *>(dynamic_cast<faiss::IndexIDMap2 *>(cxx(index)));
}

void faiss_IndexIDMap2_id_map(FaissIndexIDMap2 *index, idx_t **p_id_map, size_t *p_size)
{
    auto *m = reinterpret_cast<faiss::IndexIDMap2 *>(index);
    if (p_id_map)
        *p_id_map = reinterpret_cast<idx_t *>(m->id_map.data());
    if (p_size)
        *p_size = m->id_map.size();
}

int faiss_write_index(const FaissIndex *idx, FILE *f)
{
    return guarded([&] { faiss::write_index(cxx(idx), f); });
}

int faiss_Index_search_one_fast(const FaissIndex *index, const float *x, idx_t k, size_t nprobe,
                                const uint8_t *bitmap, size_t bitmap_len, float *distances,
                                idx_t *labels, int *out_done)
{
    *out_done = 0;
    return guarded([&] {
        auto *l = reinterpret_cast<faiss_cxx_idx_t *>(labels);
        const faiss::Index *ix = cxx(index);
        if (k <= 0) return;
        if (auto *ivf = dynamic_cast<const faiss::IndexIVF *>(ix))
            *out_done = ivf_search_one(ivf, x, (size_t)k, nprobe, bitmap, bitmap_len, distances, l);
        else if (auto *m = dynamic_cast<const faiss::IndexIDMap2 *>(ix))
            *out_done = flat_search_one(m, x, (size_t)k, bitmap, bitmap_len, distances, l);
    });
}

int faiss_read_index_buf(const uint8_t *buf, size_t len, int io_flags, FaissIndex **p_out,
                         size_t *out_consumed)
{
    return guarded([&] {
        BufReader r(buf, len);
        *p_out = reinterpret_cast<FaissIndex *>(faiss::read_index(&r, io_flags));
        *out_consumed = r.pos;
    });
}

int faiss_write_index_without_direct_map(FaissIndex *idx, FILE *f)
{
    return guarded([&] {
        auto *ivf = dynamic_cast<faiss::IndexIVF *>(cxx(idx));
        if (!ivf) {
            faiss::write_index(cxx(idx), f);
            return;
        }
        faiss::DirectMap none;   // swapped in and back: O(1), nothing rebuilt
        std::swap(ivf->direct_map, none);
        try {
            faiss::write_index(ivf, f);
        } catch (...) {
            std::swap(ivf->direct_map, none);
            throw;
        }
        std::swap(ivf->direct_map, none);
    });
}

int faiss_read_index(FILE *f, int io_flags, FaissIndex **p_out)
{
    return guarded([&] {
        *p_out = reinterpret_cast<FaissIndex *>(faiss::read_index(f, io_flags));
    });
}

} // extern "C"
