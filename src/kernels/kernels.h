/* kernels.h - pure math on raw float pointers with explicit sizes.
 *
 * Nothing here knows about layers.  Every fast path has a naive reference
 * that the tests compare it with.  The batch-level entry points match the
 * signatures of the kernel table in backend/backend.h. */
#ifndef CN_KERNELS_H
#define CN_KERNELS_H

#include "backend/backend.h"

#include <stddef.h>

/* The reference GEMM: three plain loops, the oracle for every fast path. */
void cn_gemm_ref(int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *a,
                 size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc);

/* Blocked, packed GEMMs, one per instruction set (kernels/gemm_impl.c
 * compiled once for each).  They need be->pack with cn_gemm_pack_floats()
 * floats per thread.  Results do not depend on the number of threads. */
void cn_gemm_portable(const cn_backend *be, int ta, int tb, size_t m, size_t n, size_t k,
                      float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                      float beta, float *c, size_t ldc);
void cn_gemm_avx2(const cn_backend *be, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                  const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                  size_t ldc);
void cn_gemm_avx512(const cn_backend *be, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                    const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                    size_t ldc);
size_t cn_gemm_pack_floats(void);

/* Single-image references for the window kernels (used by the tests).
 * x (c, h, w) -> col (c*kh*kw, oh*ow), row stride ldcol. */
void cn_im2col_ref(const cn_win *g, const float *x, float *col, size_t ldcol);

/* Batch-level CPU kernels (kernels/window.c, kernels/elementwise.c). */
void cn_cpu_im2col(const cn_backend *be, const cn_win *g, const float *x, size_t n, float *col);
void cn_cpu_col2im(const cn_backend *be, const cn_win *g, const float *col, size_t n, float *dx);
void cn_cpu_maxpool_fwd(const cn_backend *be, const cn_win *g, const float *x, size_t n, float *y);
void cn_cpu_maxpool_bwd(const cn_backend *be, const cn_win *g, const float *x, const float *dy,
                        size_t n, float *dx);
void cn_cpu_swap01(const cn_backend *be, const float *src, size_t a, size_t b, size_t p,
                   float *dst);
void cn_cpu_add_bias(const cn_backend *be, float *y, size_t n, size_t m, size_t p,
                     const float *bias);
void cn_cpu_bias_grad(const cn_backend *be, const float *dy, size_t n, size_t m, size_t p,
                      float *db);
void cn_cpu_act_fwd(const cn_backend *be, cn_act a, const float *x, float *y, size_t count);
void cn_cpu_act_bwd(const cn_backend *be, cn_act a, const float *y, const float *dy, float *dx,
                    size_t count);
void cn_cpu_softmax(const cn_backend *be, const float *x, float *y, size_t rows, size_t cols);
void cn_cpu_softmax_nll_bwd(const cn_backend *be, const float *y, const int32_t *labels,
                            size_t rows, size_t cols, float *dx);

#endif
