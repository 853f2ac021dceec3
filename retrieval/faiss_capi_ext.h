/* faiss_capi_ext.h — upstream FAISS C API functions newer than Debian's
 * headers (1.7.3); same names and signatures as upstream 1.7.4+/1.8
 * (c_api/Index_c.h, c_api/impl/AuxIndexStructures_c.h), so this header can
 * go once the system headers declare them. Implemented in faiss_capi.cpp.
 * retrieval/vindex.c uses them for ACL-filtered vector search and its IVF
 * index (c_api/IndexIVF_c_ex.h upstream). Two are zhiku's own, marked. */
#ifndef RET_FAISS_CAPI_EXT_H
#define RET_FAISS_CAPI_EXT_H

#include <stddef.h>
#include <stdint.h>

#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Search-time parameters (upstream FAISS_DECLARE_CLASS(SearchParameters)). */
typedef struct FaissSearchParameters_H FaissSearchParameters;

/* Parameters restricting a search to the ids `sel` accepts (sel may be
 * NULL; it is not copied and must outlive the parameters). */
int faiss_SearchParameters_new(FaissSearchParameters **p_sp, FaissIDSelector *sel);
void faiss_SearchParameters_free(FaissSearchParameters *obj);

/* faiss_Index_search with parameters. As upstream since 1.7.4, on an
 * IndexIDMap/IndexIDMap2 the selector applies to the external ids. */
int faiss_Index_search_with_params(const FaissIndex *index, idx_t n, const float *x, idx_t k,
                                   const FaissSearchParameters *params, float *distances,
                                   idx_t *labels);

/* One bit per id: id i is selected iff i / 8 < n and bit i % 8 of
 * bitmap[i / 8] is set. n is the size of bitmap in BYTES; the bitmap is not
 * copied and must outlive the selector. Free with faiss_IDSelector_free. */
typedef struct FaissIDSelectorBitmap_H FaissIDSelectorBitmap;
int faiss_IDSelectorBitmap_new(FaissIDSelectorBitmap **p_sel, size_t n, const uint8_t *bitmap);

/* IVF search-time parameters: probes, code budget (0 = none), selector
 * (may be NULL, not copied). Pass as FaissSearchParameters*: it is one. */
typedef struct FaissSearchParametersIVF_H FaissSearchParametersIVF;
int faiss_SearchParametersIVF_new_with(FaissSearchParametersIVF **p_sp, FaissIDSelector *sel,
                                       size_t nprobe, size_t max_codes);
void faiss_SearchParametersIVF_free(FaissSearchParametersIVF *obj);

/* Direct map of an IVF index: 0 none, 1 array (sequential ids only),
 * 2 hash table (arbitrary ids; reconstruct and remove by id). */
int faiss_IndexIVF_set_direct_map(FaissIndexIVF *index, int direct_map_type);

/* zhiku's own: the direct map type currently set (0, 1 or 2). */
int faiss_IndexIVF_direct_map_type(const FaissIndexIVF *index);

/* zhiku's own: selector over an explicit id list (faiss::IDSelectorArray;
 * the list is not copied). Removal from an IVF index with a hash-table
 * direct map accepts only this selector. Free with faiss_IDSelector_free. */
typedef struct FaissIDSelectorArray_H FaissIDSelectorArray;
int faiss_IDSelectorArray_new(FaissIDSelectorArray **p_sel, size_t n, const idx_t *ids);

/* zhiku's own: OpenMP threads for FAISS calls made by the calling thread
 * (omp_set_num_threads, a per-thread setting); returns the previous one. */
int faiss_set_omp_threads(int n);

/* zhiku's own: top-k by inner product for ONE query, scanning with SIMD
 * kernels (faiss_capi.cpp) instead of Debian's scalar baseline build. Works
 * on an IndexIVF with a flat IP quantizer and Flat, SQfp16 or SQ8 codes
 * (probing nprobe lists), and on an IndexIDMap2 over an IndexFlat (every
 * row; nprobe ignored). bitmap (may be NULL; bitmap_len bytes) keeps only
 * the external ids whose bit is set, as faiss_IDSelectorBitmap_new. Output
 * as faiss_Index_search (best first, padded with -1). *out_done = 0 when
 * the index is of another type: nothing was written, use FAISS. */
int faiss_Index_search_one_fast(const FaissIndex *index, const float *x, idx_t k, size_t nprobe,
                                const uint8_t *bitmap, size_t bitmap_len, float *distances,
                                idx_t *labels, int *out_done);

/* zhiku's own: faiss_write_index, but an IVF index is written without its
 * direct map (id -> list slot), which FAISS is slow to read back; the
 * index's own map is untouched (swapped out and back). Not thread-safe
 * against other users of the index. */
int faiss_write_index_without_direct_map(FaissIndex *idx, FILE *f);

/* zhiku's own: faiss_read_index from memory; *out_consumed gets the number
 * of bytes the index used (the caller checks for trailing bytes). */
int faiss_read_index_buf(const uint8_t *buf, size_t len, int io_flags, FaissIndex **p_out,
                         size_t *out_consumed);

#ifdef __cplusplus
}
#endif

#endif
