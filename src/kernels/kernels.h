/* kernels.h - pure math on raw float pointers with explicit sizes.
 *
 * Nothing here knows about layers.  Every fast path has a naive reference
 * that the tests compare it with.  The batch-level entry points match the
 * signatures of the kernel table in backend/backend.h. */
#ifndef CN_KERNELS_H
#define CN_KERNELS_H

#include "backend/cpu.h"

#include <stddef.h>

/* The reference GEMM: three plain loops, the oracle for every fast path. */
void cn_gemm_ref(int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *a,
                 size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc);

/* Blocked, packed GEMMs, one per instruction set: gemm_portable.c (plain C
 * the compiler vectorises), gemm_avx2.c and gemm_avx512.c (intrinsics).  The
 * threaded ones use the backend's pack buffers (backend/cpu.h), cn_gemm_pack_floats() floats per
 * thread; the _st ones run on the calling thread with the pack buffer given.  Results do not depend
 * on the number of threads. */
#define CN_GEMM_DECL(name)                                                                         \
    void name(const cn_backend *be, int ta, int tb, size_t m, size_t n, size_t k, float alpha,     \
              const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,        \
              size_t ldc);                                                                         \
    void name##_st(float *pack, int ta, int tb, size_t m, size_t n, size_t k, float alpha,         \
                   const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,   \
                   size_t ldc);                                                                    \
    void name##_pack_a(int ta, size_t m, size_t k, const float *a, size_t lda, float *pre);        \
    void name##_st_pre(float *pack, const float *pre, int ta, int tb, size_t m, size_t n,          \
                       size_t k, float alpha, const float *a, size_t lda, const float *b,          \
                       size_t ldb, float beta, float *c, size_t ldc);                              \
    size_t name##_fc_floats(size_t m, size_t k, int threads);                                      \
    int name##_fc(const cn_backend *be, size_t n, size_t m, size_t k, const float *x,              \
                  const float *w, const float *b, float *y, float *keep);
CN_GEMM_DECL(cn_gemm_portable)
CN_GEMM_DECL(cn_gemm_avx2)
CN_GEMM_DECL(cn_gemm_avx512)
size_t cn_gemm_pack_floats(void);

/* Direct convolution, the oracle of the fast paths: x (n, c, h, w), w (m, c,
 * kh, kw), y (n, m, oh, ow); backward adds into dw and db, writes dx. */
void cn_conv_ref_fwd(const cn_win *g, size_t m, const float *x, size_t n, const float *w,
                     const float *b, float *y);
void cn_conv_ref_bwd(const cn_win *g, size_t m, const float *x, const float *dy, size_t n,
                     const float *w, float *dw, float *db, float *dx);

/* Each instruction set's kernels (kernels/cpu_<isa>.c) fill the table and
 * the CPU backend's GEMM entry points. */
void cn_cpu_fill_portable(cn_cpu *cpu);
void cn_cpu_fill_avx2(cn_cpu *cpu);
void cn_cpu_fill_avx512(cn_cpu *cpu);

#endif
