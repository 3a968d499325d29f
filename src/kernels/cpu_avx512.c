/* cpu_avx512.c - the CPU kernels for processors with AVX-512, in one
 * translation unit compiled with -mavx512f -mavx512vl -mavx512dq -mavx512bw
 * -mfma and chosen at run time.  The GEMM's register kernel is up to 14 rows
 * by 32 columns (28 accumulators in zmm registers), one kernel per row count
 * so that row panels are never padded, with masked loads and stores at the
 * column edge so that B can be read in place. */
#include <immintrin.h>

#define NR       32
#define MR_MAX   14
#define KC       256
#define MC       (MR_MAX * 9)
#define NC       1024
#define DIRECT_B 1

static inline __attribute__((always_inline)) void
kernel_rows(const int mr, size_t kc, const float *restrict a, const float *restrict b, size_t ldb,
            float *restrict c, size_t ldc, size_t nr, float alpha, float beta)
{
    __m512 c0[MR_MAX], c1[MR_MAX];
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    for (int i = 0; i < mr; i++)
        c0[i] = c1[i] = _mm512_setzero_ps();
    for (size_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
        for (int i = 0; i < mr; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
        }
        a += mr;
        b += ldb;
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int i = 0; i < mr; i++) {
        float *row = c + (size_t)i * ldc;
        __m512 r0 = _mm512_mul_ps(va, c0[i]), r1 = _mm512_mul_ps(va, c1[i]);
        if (beta != 0.0f) {
            r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), r0);
            r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), r1);
        }
        _mm512_mask_storeu_ps(row, m0, r0);
        _mm512_mask_storeu_ps(row + 16, m1, r1);
    }
}

#define ROWS(n)                                                                                    \
    case n: kernel_rows(n, kc, a, b, ldb, c, ldc, nr, alpha, beta); break;

static void kernel(size_t mr, size_t kc, const float *a, const float *b, size_t ldb, float *c,
                   size_t ldc, size_t nr, float alpha, float beta)
{
    switch (mr) {
        ROWS(1)
        ROWS(2)
        ROWS(3) ROWS(4) ROWS(5) ROWS(6) ROWS(7) ROWS(8) ROWS(9) ROWS(10) ROWS(11) ROWS(12) ROWS(13)
            ROWS(14)
    }
}

#define GEMM_NAME cn_gemm_avx512
#include "kernels/gemm_driver.h"

#define CN_ISA avx512
#include "kernels/cpu_kernels.h"
