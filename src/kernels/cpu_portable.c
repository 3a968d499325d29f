/* cpu_portable.c - the CPU kernels in plain C for any processor, compiled
 * with the baseline flags.  The GEMM's register kernel is a loop nest over an
 * MR x NR tile of accumulators that the compiler turns into vector FMAs of
 * whatever width the baseline instruction set has. */
#include <stddef.h>

#define NR       8
#define MR_MAX   4
#define KC       256
#define MC       (MR_MAX * 32)
#define NC       1024
#define DIRECT_B 0 /* the kernel reads whole NR-wide rows: B is packed */

static inline __attribute__((always_inline)) void
kernel_rows(const int mr, size_t kc, const float *restrict a, const float *restrict b, size_t ldb,
            float *restrict c, size_t ldc, size_t nr, float alpha, float beta)
{
    float acc[MR_MAX][NR];
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < NR; j++)
            acc[i][j] = 0.0f;
    for (size_t p = 0; p < kc; p++) {
        for (int i = 0; i < mr; i++) {
            float ai = a[i];
            for (int j = 0; j < NR; j++)
                acc[i][j] += ai * b[j];
        }
        a += mr;
        b += ldb;
    }
    for (int i = 0; i < mr; i++)
        for (size_t j = 0; j < nr; j++) {
            float v = alpha * acc[i][j];
            c[(size_t)i * ldc + j] = beta == 0.0f ? v : beta * c[(size_t)i * ldc + j] + v;
        }
}

#define ROWS(n)                                                                                    \
    case n: kernel_rows(n, kc, a, b, ldb, c, ldc, nr, alpha, beta); break;

static void kernel(size_t mr, size_t kc, const float *a, const float *b, size_t ldb, float *c,
                   size_t ldc, size_t nr, float alpha, float beta)
{
    switch (mr) {
        ROWS(1) ROWS(2) ROWS(3) ROWS(4)
    }
}

#define GEMM_NAME cn_gemm_portable
#include "kernels/gemm_driver.h"

/* Short moves for the window kernels. */
static inline void vcopy(float *restrict d, const float *restrict s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = s[i];
}
static inline void vzero(float *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = 0.0f;
}
static inline void vadd(float *restrict d, const float *restrict s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] += s[i];
}

#define CN_ISA portable
#include "kernels/cpu_kernels.h"
