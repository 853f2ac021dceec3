/* half.h — IEEE 754 binary16 conversion for compact vector storage.
 *
 * zhiku stores embedding vectors in SQLite as float16 (2 bytes per
 * dimension): L2-normalised components lose < 0.05% relative precision,
 * which leaves inner-product rankings unchanged in practice (measured in
 * tests/unit/test_half.c), and halves the `vectors` table and the write
 * volume of ingestion. Round-to-nearest-even; NaN/Inf preserved; pure and
 * thread-safe. */
#ifndef ZK_HALF_H
#define ZK_HALF_H

#include <stddef.h>
#include <stdint.h>

uint16_t zk_float_to_half(float f);
float zk_half_to_float(uint16_t h);

/* Convert n values. */
void zk_floats_to_halves(const float *in, uint16_t *out, size_t n);
void zk_halves_to_floats(const uint16_t *in, float *out, size_t n);

/* 1 when the CPU and OS support AVX2, FMA and F16C (for SIMD kernels
 * compiled with target attributes, e.g. retrieval/colidx.c). */
int zk_cpu_avx2_fma_f16c(void);

#endif
