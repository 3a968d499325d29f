/* gemm_ref.c - the reference matrix product: plain loops, no blocking. */
#include "kernels/kernels.h"

void cn_gemm_ref(int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *a,
                 size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            float sum = 0.0f;
            for (size_t p = 0; p < k; p++) {
                float av = ta ? a[p * lda + i] : a[i * lda + p];
                float bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                sum += av * bv;
            }
            float *cij = &c[i * ldc + j];
            *cij = beta == 0.0f ? alpha * sum : beta * *cij + alpha * sum;
        }
    }
}
