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

#include <cstdint>
#include <cstdio>
#include <exception>
#include <omp.h>
#include <string>
#include <typeinfo>
#include <vector>

#include <faiss/Index.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
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

int faiss_read_index(FILE *f, int io_flags, FaissIndex **p_out)
{
    return guarded([&] {
        *p_out = reinterpret_cast<FaissIndex *>(faiss::read_index(f, io_flags));
    });
}

} // extern "C"
