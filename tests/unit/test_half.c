/* test_half.c — float16 vector storage: exact round trips where binary16
 * is exact, bounded error elsewhere, special values, and the measured cost
 * on retrieval: top-10 by inner product over float16-rounded vectors vs
 * float32 on random unit vectors (recall@10). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"

static void test_round_trips(void **state)
{
    (void)state;
    const float exact[] = {0.0f, 1.0f, -1.0f, 0.5f, 2.0f, 65504.0f, -0.25f, 0.000061035156f, 1.5f};
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
        assert_true(zk_half_to_float(zk_float_to_half(exact[i])) == exact[i]);
    assert_true(isinf(zk_half_to_float(zk_float_to_half(1e6f))));
    assert_true(isinf(zk_half_to_float(zk_float_to_half(INFINITY))));
    assert_true(isnan(zk_half_to_float(zk_float_to_half(NAN))));
    assert_true(zk_half_to_float(zk_float_to_half(1e-9f)) == 0.0f);
    /* subnormals keep their value approximately */
    float sub = 3e-6f, back = zk_half_to_float(zk_float_to_half(sub));
    assert_true(fabsf(back - sub) < 6e-8f);
    /* every half value survives half→float→half */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF)) continue;   /* NaN payloads */
        assert_int_equal(zk_float_to_half(zk_half_to_float((uint16_t)h)), h);
    }
    /* relative error of normal values below 2^-11 */
    srand(7);
    for (int i = 0; i < 100000; i++) {
        float f = ((float)rand() / RAND_MAX - 0.5f) * 2.0f;
        if (fabsf(f) < 1e-4f) continue;
        float b = zk_half_to_float(zk_float_to_half(f));
        assert_true(fabsf(b - f) <= fabsf(f) / 2048.0f + 1e-7f);
    }
}

#define N 5000
#define DIM 512
#define Q 50
#define K 10

static void topk(const float *db, const float *q, int *out)
{
    float best[K];
    for (int k = 0; k < K; k++) best[k] = -INFINITY, out[k] = -1;
    for (int i = 0; i < N; i++) {
        float s = 0;
        for (int j = 0; j < DIM; j++) s += db[(size_t)i * DIM + j] * q[j];
        int pos = K;
        while (pos > 0 && s > best[pos - 1]) pos--;
        if (pos == K) continue;
        memmove(best + pos + 1, best + pos, sizeof *best * (size_t)(K - 1 - pos));
        memmove(out + pos + 1, out + pos, sizeof *out * (size_t)(K - 1 - pos));
        best[pos] = s;
        out[pos] = i;
    }
}

static void test_recall_cost(void **state)
{
    (void)state;
    float *db = malloc(sizeof(float) * N * DIM), *db16 = malloc(sizeof(float) * N * DIM);
    uint16_t *h = malloc(sizeof(uint16_t) * N * DIM);
    srand(42);
    for (int i = 0; i < N; i++) {   /* clustered unit vectors: near-ties are common */
        double norm = 0;
        for (int j = 0; j < DIM; j++) {
            float v = (float)rand() / RAND_MAX - 0.5f + ((i % 50) == (j % 50) ? 2.0f : 0.0f);
            db[(size_t)i * DIM + j] = v;
            norm += (double)v * v;
        }
        for (int j = 0; j < DIM; j++) db[(size_t)i * DIM + j] /= (float)sqrt(norm);
    }
    zk_floats_to_halves(db, h, (size_t)N * DIM);
    zk_halves_to_floats(h, db16, (size_t)N * DIM);
    int hit = 0;
    for (int qi = 0; qi < Q; qi++) {
        const float *q = db + (size_t)(qi * 97 % N) * DIM;
        int a[K], b[K];
        topk(db, q, a);
        topk(db16, q, b);
        for (int x = 0; x < K; x++)
            for (int y = 0; y < K; y++) hit += a[x] == b[y];
    }
    double recall = (double)hit / (Q * K);
    printf("float16 storage: recall@10 vs float32 = %.4f (%d queries, %d x %d clustered unit vectors)\n", recall, Q, N,
           DIM);
    assert_true(recall >= 0.99);
    free(db);
    free(db16);
    free(h);
}

/* The bulk conversions (F16C where the CPU has it) give exactly the scalar
 * results, for lengths that are not a multiple of 8 and unaligned buffers. */
static void test_bulk_matches_scalar(void **state)
{
    (void)state;
    enum { M = 65536 + 13 };
    unsigned char *raw_h = malloc(M * 2 + 1), *raw_f = malloc(M * 4 + 3);
    float *f = malloc(sizeof *f * M);
    uint16_t *h = malloc(sizeof *h * M);
    assert_non_null(raw_h);
    assert_non_null(raw_f);
    /* every half value, unaligned source, odd length */
    for (uint32_t i = 0; i < M; i++) {
        uint16_t v = (uint16_t)i;
        memcpy(raw_h + 1 + 2 * i, &v, 2);
    }
    zk_halves_to_floats((const uint16_t *)(const void *)(raw_h + 1), f, M);
    for (uint32_t i = 0; i < M; i++) {
        uint16_t v = (uint16_t)i;
        float want = zk_half_to_float(v);
        if (isnan(want)) assert_true(isnan(f[i]));
        else assert_memory_equal(&f[i], &want, sizeof want);
    }
    /* floats: normal, subnormal, tiny, huge, ties; unaligned destination */
    srand(11);
    for (uint32_t i = 0; i < M; i++) {
        uint32_t bits = (uint32_t)rand() << 16 ^ (uint32_t)rand();
        if (i % 3 == 0) bits = (bits & 0x807FFFFFu) | ((uint32_t)(100 + rand() % 50) << 23);   /* near half range */
        float v;
        memcpy(&v, &bits, sizeof v);
        if (isnan(v)) v = 1.0f;
        f[i] = v;
    }
    zk_floats_to_halves(f, (uint16_t *)(void *)(raw_f + 1), M);
    for (uint32_t i = 0; i < M; i++) {
        uint16_t got, want = zk_float_to_half(f[i]);
        memcpy(&got, raw_f + 1 + 2 * i, 2);
        assert_int_equal(got, want);
    }
    free(raw_h);
    free(raw_f);
    free(f);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bulk_matches_scalar),cmocka_unit_test(test_round_trips), cmocka_unit_test(test_recall_cost)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
