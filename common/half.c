/* half.c — float32 <-> float16 conversion (see half.h); called for every
 * vector written to or read from the store, so branch-light bit twiddling,
 * and the bulk conversions use the CPU's F16C instructions where it has
 * them (x86-64 since 2012; chosen at run time): 8 values per instruction,
 * the same round-to-nearest-even, bit-identical to the scalar code for
 * every non-NaN value (tests/unit/test_half.c). Pointers may be unaligned
 * (SQLite blobs). */
#include "half.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define HALF_F16C 1

__attribute__((target("avx,f16c"))) static size_t to_halves_f16c(const float *in, uint16_t *out, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(out + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return i;
}

__attribute__((target("avx,f16c"))) static size_t to_floats_f16c(const uint16_t *in, float *out, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(in + i))));
    return i;
}

/* CPUID.1:ECX bits 27-29 (OSXSAVE, AVX, F16C) and the OS saving YMM state
 * (XGETBV); by hand because clang 14 (the fuzz build) does not know
 * __builtin_cpu_supports("f16c"). */
static int have_f16c(void)
{
    static int cached = -1;   /* a benign race: every thread computes the same value */
    if (cached < 0) {
        unsigned a, b, c, d, lo = 0, hi = 0;
        int ok = __get_cpuid(1, &a, &b, &c, &d) && (c & (7u << 27)) == (7u << 27);
        if (ok) __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        (void)hi;
        cached = ok && (lo & 6u) == 6u;
    }
    return cached;
}

int zk_cpu_avx2_fma_f16c(void)
{
    static int cached = -1;   /* benign race, as above */
    if (cached < 0) {
        unsigned a, b, c = 0, d, b7 = 0;
        int ok = have_f16c() && __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 12)) &&   /* FMA */
                 __get_cpuid_count(7, 0, &a, &b7, &c, &d) && (b7 & (1u << 5));          /* AVX2 */
        cached = ok;
    }
    return cached;
}
#else
int zk_cpu_avx2_fma_f16c(void) { return 0; }
#endif

uint16_t zk_float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xFFu;
    uint32_t mant = x & 0x7FFFFFu;
    if (exp == 0xFF) return (uint16_t)(sign | 0x7C00u | (mant ? 0x200u : 0));   /* Inf / NaN */
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 0x1F) return (uint16_t)(sign | 0x7C00u);                            /* overflow → Inf */
    if (e <= 0) {                                                                /* subnormal or 0 */
        if (e < -10) return (uint16_t)sign;
        mant |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) half++;   /* may carry into the exponent: correct */
    return (uint16_t)half;
}

float zk_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t mant = h & 0x3FFu;
    uint32_t x;
    if (exp == 0) {
        if (!mant) {
            x = sign;
        } else {   /* subnormal: normalise */
            int e = -1;
            do { e++; mant <<= 1; } while (!(mant & 0x400u));
            x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3FFu) << 13);
        }
    } else if (exp == 0x1F) {
        x = sign | 0x7F800000u | (mant << 13);
    } else {
        x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

void zk_floats_to_halves(const float *in, uint16_t *out, size_t n)
{
    size_t i = 0;
#ifdef HALF_F16C
    if (have_f16c()) i = to_halves_f16c(in, out, n);
#endif
    for (; i < n; i++) {
        float f;
        memcpy(&f, in + i, sizeof f);
        uint16_t h = zk_float_to_half(f);
        memcpy(out + i, &h, sizeof h);
    }
}

void zk_halves_to_floats(const uint16_t *in, float *out, size_t n)
{
    size_t i = 0;
#ifdef HALF_F16C
    if (have_f16c()) i = to_floats_f16c(in, out, n);
#endif
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, in + i, sizeof h);
        float f = zk_half_to_float(h);
        memcpy(out + i, &f, sizeof f);
    }
}
