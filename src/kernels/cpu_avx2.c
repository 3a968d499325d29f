/* cpu_avx2.c - the CPU kernels for processors with AVX2 and FMA, in one
 * translation unit compiled with -mavx2 -mfma and chosen at run time.  The
 * GEMM's register kernel is up to 6 rows by 16 columns (12 accumulators in ymm
 * registers), one kernel per row count, masked loads at the column edge. */
#include <immintrin.h>

#define NR       16
#define MR_MAX   6
#define KC       256
#define MC       (MR_MAX * 20)
#define NC       1024
#define DIRECT_B 1

static inline __attribute__((always_inline)) void
kernel_rows(const int mr, size_t kc, const float *restrict a, const float *restrict b, size_t ldb,
            float *restrict c, size_t ldc, size_t nr, float alpha, float beta)
{
    __m256 c0[MR_MAX], c1[MR_MAX];
    /* Column edge: lanes j < nr are loaded, the others read as zero. */
    __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nr), lane);
    __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nr - 8), lane);
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
        c0[i] = c1[i] = _mm256_setzero_ps();
    for (size_t p = 0; p < kc; p++) {
        __m256 b0, b1;
        if (nr == NR) {
            b0 = _mm256_loadu_ps(b);
            b1 = _mm256_loadu_ps(b + 8);
        } else {
            b0 = _mm256_maskload_ps(b, m0);
            b1 = _mm256_maskload_ps(b + 8, m1);
        }
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
        }
        a += mr;
        b += ldb;
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        float *row = c + (size_t)i * ldc;
        __m256 r0 = _mm256_mul_ps(va, c0[i]), r1 = _mm256_mul_ps(va, c1[i]);
        if (nr == NR) {
            if (beta != 0.0f) {
                r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row), r0);
                r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8), r1);
            }
            _mm256_storeu_ps(row, r0);
            _mm256_storeu_ps(row + 8, r1);
        } else {
            float t[NR];
            _mm256_storeu_ps(t, r0);
            _mm256_storeu_ps(t + 8, r1);
            for (size_t j = 0; j < nr; j++)
                row[j] = beta == 0.0f ? t[j] : __builtin_fmaf(beta, row[j], t[j]);
        }
    }
}

#define ROWS(n)                                                                                    \
    case n: kernel_rows(n, kc, a, b, ldb, c, ldc, nr, alpha, beta); break;

static void kernel(size_t mr, size_t kc, const float *a, const float *b, size_t ldb, float *c,
                   size_t ldc, size_t nr, float alpha, float beta)
{
    switch (mr) {
        ROWS(1) ROWS(2) ROWS(3) ROWS(4) ROWS(5) ROWS(6)
    }
}

#define GEMM_NAME cn_gemm_avx2
#include "kernels/gemm_driver.h"

/* Short moves for the window kernels: n floats, 8 at a time, the rest
 * masked. */
static inline __m256i tail_mask(size_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline void vcopy(float *restrict d, const float *restrict s, size_t n)
{
    for (; n >= 8; n -= 8, d += 8, s += 8)
        _mm256_storeu_ps(d, _mm256_loadu_ps(s));
    if (n)
        _mm256_maskstore_ps(d, tail_mask(n), _mm256_maskload_ps(s, tail_mask(n)));
}
static inline void vzero(float *d, size_t n)
{
    for (; n >= 8; n -= 8, d += 8)
        _mm256_storeu_ps(d, _mm256_setzero_ps());
    if (n)
        _mm256_maskstore_ps(d, tail_mask(n), _mm256_setzero_ps());
}
static inline void vadd(float *restrict d, const float *restrict s, size_t n)
{
    for (; n >= 8; n -= 8, d += 8, s += 8)
        _mm256_storeu_ps(d, _mm256_add_ps(_mm256_loadu_ps(d), _mm256_loadu_ps(s)));
    if (n) {
        __m256i m = tail_mask(n);
        _mm256_maskstore_ps(d, m,
                            _mm256_add_ps(_mm256_maskload_ps(d, m), _mm256_maskload_ps(s, m)));
    }
}

#define CN_ISA avx2
#include "kernels/cpu_kernels.h"
