/* gemm_impl.c - blocked, packed matrix product written in plain C.
 *
 * This file is compiled once per instruction set with GEMM_NAME, GEMM_MR and
 * GEMM_NR set by the Makefile (and -mavx2 / -mavx512f ...): the compiler
 * turns the register-tile loop of kernel() into vector FMAs of that width.
 *
 * Layout (Goto's scheme): C is cut into tiles of up to MC x NC that threads
 * take independently; for each KC-deep slice of the product, a tile packs A
 * into MR-row panels and B into NR-column panels (zero-padded at the edges),
 * then runs the MR x NR register kernel over them.  Every element of C sums
 * its KC slices in the same order whatever the tiling, so the result does not
 * depend on the number of threads. */
#include "kernels/kernels.h"

#include <string.h>

#ifndef GEMM_NAME
#define GEMM_NAME cn_gemm_portable
#define GEMM_MR   4
#define GEMM_NR   8
#endif

#define MR GEMM_MR
#define NR GEMM_NR
#define KC 256
#define MC (MR * (128 / MR))
#define NC 512

#ifdef _OPENMP
#include <omp.h>
#endif

/* Packs rows [i0, i0+mc) x columns [p0, p0+kc) of op(A) into panels of MR
 * rows: panel r holds kc groups of MR values (one per row). */
static void pack_a(int ta, const float *a, size_t lda, size_t i0, size_t mc, size_t p0, size_t kc,
                   float *restrict pa)
{
    for (size_t ir = 0; ir < mc; ir += MR) {
        size_t mr = mc - ir < MR ? mc - ir : MR;
        for (size_t p = 0; p < kc; p++) {
            float *dst = pa + p * MR;
            for (size_t i = 0; i < mr; i++) {
                size_t row = i0 + ir + i, col = p0 + p;
                dst[i] = ta ? a[col * lda + row] : a[row * lda + col];
            }
            for (size_t i = mr; i < MR; i++)
                dst[i] = 0.0f;
        }
        pa += kc * MR;
    }
}

/* Packs rows [p0, p0+kc) x columns [j0, j0+nc) of op(B) into panels of NR
 * columns: panel r holds kc groups of NR values (one per column). */
static void pack_b(int tb, const float *b, size_t ldb, size_t p0, size_t kc, size_t j0, size_t nc,
                   float *restrict pb)
{
    for (size_t jr = 0; jr < nc; jr += NR) {
        size_t nr = nc - jr < NR ? nc - jr : NR;
        for (size_t p = 0; p < kc; p++) {
            float *dst = pb + p * NR;
            if (!tb) {
                const float *src = b + (p0 + p) * ldb + j0 + jr;
                for (size_t j = 0; j < nr; j++)
                    dst[j] = src[j];
            } else {
                for (size_t j = 0; j < nr; j++)
                    dst[j] = b[(j0 + jr + j) * ldb + p0 + p];
            }
            for (size_t j = nr; j < NR; j++)
                dst[j] = 0.0f;
        }
        pb += kc * NR;
    }
}

/* C (mr, nr) = beta * C + alpha * pa (MR, kc) * pb (kc, NR), restricted to
 * the first mr rows and nr columns.  beta == 0: C is not read. */
static void kernel(size_t kc, const float *restrict pa, const float *restrict pb, float *restrict c,
                   size_t ldc, size_t mr, size_t nr, float alpha, float beta)
{
    float acc[MR][NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            acc[i][j] = 0.0f;
    for (size_t p = 0; p < kc; p++) {
        const float *ap = pa + p * MR, *bp = pb + p * NR;
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            float ai = ap[i];
            for (int j = 0; j < NR; j++)
                acc[i][j] += ai * bp[j];
        }
    }
    if (mr == MR && nr == NR) {
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) {
                float v = alpha * acc[i][j];
                c[i * ldc + j] = beta == 0.0f ? v : beta * c[i * ldc + j] + v;
            }
    } else {
        for (size_t i = 0; i < mr; i++)
            for (size_t j = 0; j < nr; j++) {
                float v = alpha * acc[i][j];
                c[i * ldc + j] = beta == 0.0f ? v : beta * c[i * ldc + j] + v;
            }
    }
}

static void scale_c(size_t m, size_t n, float beta, float *c, size_t ldc)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

void GEMM_NAME(const cn_backend *be, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
               const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
               size_t ldc)
{
    if (m == 0 || n == 0)
        return;
    if (k == 0 || alpha == 0.0f) {
        scale_c(m, n, beta, c, ldc);
        return;
    }
    /* Tiles: MC x tn, with tn halved (in whole NR panels) until every thread
     * has work, as far as the shape allows. */
    int nt = be->threads > 0 ? be->threads : 1;
    size_t tn = NC;
    size_t tiles_m = (m + MC - 1) / MC;
    while (tiles_m * ((n + tn - 1) / tn) < (size_t)nt * 2 && tn > NR * 2)
        tn = (tn / 2 + NR - 1) / NR * NR;
    size_t tiles_n = (n + tn - 1) / tn;
    long tiles = (long)(tiles_m * tiles_n);
    if (tiles < nt)
        nt = (int)tiles;

#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (long t = 0; t < tiles; t++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *pa = be->pack + (size_t)tid * be->pack_floats;
        float *pb = pa + (size_t)MC * KC;
        size_t i0 = (size_t)t / tiles_n * MC, j0 = (size_t)t % tiles_n * tn;
        size_t mc = m - i0 < MC ? m - i0 : MC;
        size_t nc = n - j0 < tn ? n - j0 : tn;
        for (size_t p0 = 0; p0 < k; p0 += KC) {
            size_t kc = k - p0 < KC ? k - p0 : KC;
            float bt = p0 == 0 ? beta : 1.0f;
            pack_b(tb, b, ldb, p0, kc, j0, nc, pb);
            pack_a(ta, a, lda, i0, mc, p0, kc, pa);
            for (size_t jr = 0; jr < nc; jr += NR) {
                size_t nr = nc - jr < NR ? nc - jr : NR;
                for (size_t ir = 0; ir < mc; ir += MR) {
                    size_t mr = mc - ir < MR ? mc - ir : MR;
                    kernel(kc, pa + ir * kc, pb + jr * kc, c + (i0 + ir) * ldc + j0 + jr, ldc, mr,
                           nr, alpha, bt);
                }
            }
        }
    }
}
