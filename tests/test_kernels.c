/* test_kernels.c - every CPU kernel against a naive reference, on awkward
 * sizes (n = 1, tails that are not a multiple of any vector width, sizes
 * large enough to be cut between threads), once per kernel set:
 * kernels/NAME/avx512, kernels/NAME/avx2, kernels/NAME/portable.  A set that
 * this processor (or this build) cannot run is skipped, with the reason: it
 * is not counted as passed.
 *
 * The kernel sets (backend/cpu.c) are compiled from the same C
 * (kernels/cpu_kernels.h includes window.c, elementwise.c and conv.c into
 * each of cpu_portable.c, cpu_avx2.c and cpu_avx512.c, built with that
 * instruction set's flags), with a GEMM register kernel of its own in each
 * and, for AVX-512, its own pooling rows, im2col, im2row, col2im and direct
 * convolution.  So every one of these has a version per set:
 *   gemm (and the single-threaded and pre-packed products the convolution
 *   uses), conv_fwd and conv_bwd, maxpool_fwd and maxpool_bwd, act_fwd and
 *   act_bwd (every activation), add_bias and bias_grad, bn_fwd and bn_bwd,
 *   softmax and softmax_nll_bwd, sgd and adam, and the doctor's count_nonfinite
 *   and stats.
 * The others have one plain C version (kernels/plain.c) that every set's
 * table points at: avgpool_fwd and avgpool_bwd, dropout_fwd and dropout_bwd,
 * add, scale, input_from_pixels and nll_rows.  They are
 * tested against naive references here too, through each set's table, so
 * that a set's own version, if one is written, is tested without a change
 * here.
 *
 * Tolerances: u = 2^-24, the unit roundoff of float32.  Where a kernel does
 * the same float operations as the reference, results must be equal; where
 * it does a short formula, the bound is a few u times the magnitudes of the
 * formula's terms (each operation rounds by at most u of its result); where it
 * sums, the bound is that of any summation order, (terms) u times the sum of
 * the terms' magnitudes.  Each test prints its worst error as a fraction of
 * its bound.  A mistake (a wrong index, term, sign or channel) gives errors of
 * the size of the values themselves, far above these bounds. */
#include "counter_rng.h"
#include "harness.h"
#include "internal.h"
#include "kernels/kernels.h"
#include "kernels/plain.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#define U 0x1p-24 /* float32's unit roundoff */

/* -------------------------------------------------------------- helpers */

/* The CPU backend with threads threads and the kernel set isa.  NULL when it
 * cannot be made: the test is then skipped (a set this processor or build
 * lacks) or failed (anything else). */
static cn_backend *isa_backend(const char *isa, int threads)
{
    cn_cpu *cpu;
    int rc = cn_cpu_create(threads, isa, &cpu);
    if (rc == 0)
        return &cpu->base;
    if (rc == -1 && strcmp(isa, "portable") != 0) {
#ifdef CN_HAVE_X86_KERNELS
        if (strcmp(isa, "avx512") == 0)
            th_skip("this processor lacks AVX-512 (the avx512 kernels need avx512f, avx512vl, "
                    "avx512dq, avx512bw and fma)");
        else
            th_skip("this processor lacks AVX2 or FMA (the avx2 kernels need both)");
#else
        th_skip("this build has no %s kernels (they need x86-64 and a compiler that takes "
                "-mavx512f; 'make info' tells)",
                isa);
#endif
        return NULL;
    }
    th_fail(__FILE__, __LINE__, "the %s kernel set cannot be made (%d)", isa, rc);
    return NULL;
}

/* The kernel set isa on one thread (*one) and on three (*three), for the
 * tests that compare the two; 0 when the set is not here (skipped) or the
 * second cannot be made (failed). */
static int one_and_three(const char *isa, cn_backend **one, cn_backend **three)
{
    *one = isa_backend(isa, 1);
    if (!*one)
        return 0;
    *three = isa_backend(isa, 3);
    return *three != NULL; /* (isa_backend has failed the test) */
}

static float *floats(size_t n) { return malloc((n ? n : 1) * sizeof(float)); }
static double *doubles(size_t n) { return calloc(n ? n : 1, sizeof(double)); }

static float *normal(size_t n, double scale, double shift, cn_rng *rng)
{
    float *x = floats(n);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(shift + scale * cn_rng_normal(rng));
    return x;
}

static float *copy_of(const float *x, size_t n)
{
    float *y = floats(n);
    memcpy(y, x, n * sizeof *y);
    return y;
}

/* The worst |got - want| / bound seen by within() in this test. */
static double worst_ratio;

/* Whether |got[i] - want[i]| <= bound[i] for every i < n (NaN never is);
 * fails the test naming the first i that is not, with what. */
static int within(const float *got, const double *want, const double *bound, size_t n,
                  const char *what, const char *isa)
{
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= bound[i])) {
            th_fail(__FILE__, __LINE__, "%s, %s: [%zu] = %.9g, reference %.9g (bound %.3g)", isa,
                    what, i, got[i], want[i], bound[i]);
            return 0;
        }
        if (bound[i] > 0 && e / bound[i] > worst_ratio)
            worst_ratio = e / bound[i];
    }
    return 1;
}

static void report(const char *isa)
{
    printf("    %s: worst error %.2g of its bound\n", isa, worst_ratio);
}

/* max |a - b| / max |b| over n values: the error on the tensor's scale. */
static double max_rel(const float *a, const float *b, size_t n)
{
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        worst = e > worst ? e : worst;
        scale = fabs((double)b[i]) > scale ? fabs((double)b[i]) : scale;
    }
    return worst / (scale > 0 ? scale : 1);
}

/* The same against a reference in double. */
static double max_rel_d(const float *a, const double *b, size_t n)
{
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        worst = !(e <= worst) ? e : worst; /* NaN sticks */
        scale = fabs(b[i]) > scale ? fabs(b[i]) : scale;
    }
    return worst / (scale > 0 ? scale : 1);
}

/* One test per kernel set for a function f(const char *isa). */
#define PER_ISA(f)                                                                                 \
    static void f##_avx512(void) { f("avx512"); }                                                  \
    static void f##_avx2(void) { f("avx2"); }                                                      \
    static void f##_portable(void) { f("portable"); }
#define ISA_TESTS(name, f)                                                                         \
    {"kernels/" name "/avx512", f##_avx512}, {"kernels/" name "/avx2", f##_avx2},                  \
    {                                                                                              \
        "kernels/" name "/portable", f##_portable                                                  \
    }

/* ----------------------------------------------------------------- GEMM */

/* Relative tolerance of a float32 dot product of length k summed in a
 * different order (and with or without FMA): a few k * 2^-24 at worst, far
 * less on average; 1e-5 * sqrt(k) + 1e-6 leaves room and still catches any
 * indexing mistake (which gives O(1) errors). */
static double gemm_tol(size_t k) { return 1e-5 * sqrt((double)k) + 1e-6; }

/* Which entry point: the threaded product, the single-threaded one, or the
 * single-threaded one with A packed in advance (the convolution's). */
enum { VIA_GEMM, VIA_ST, VIA_PRE };

static int compare_gemm(const cn_backend *be, int via, int ta, int tb, size_t m, size_t n, size_t k,
                        float alpha, float beta, size_t pad, cn_rng *rng)
{
    const cn_cpu *cpu = cn_cpu_of(be);
    size_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
    size_t arows = ta ? k : m, brows = tb ? n : k;
    float *a = normal(arows * lda, 1, 0, rng), *b = normal(brows * ldb, 1, 0, rng);
    float *c0 = normal(m * ldc, 1, 0, rng), *c1 = floats(m * ldc), *pre = floats(m * k);
    /* beta = 0: C is not read, so NaN there must not show. */
    for (size_t i = 0; beta == 0.0f && i < m * ldc; i++)
        if (i % ldc < n)
            c0[i] = NAN;
    memcpy(c1, c0, m * ldc * sizeof(float));
    cn_gemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc);
    if (via == VIA_GEMM)
        be->gemm(be, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c1, ldc);
    else if (via == VIA_ST)
        cpu->gemm_st(cpu->pack, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c1, ldc);
    else {
        cpu->gemm_pack_a(ta, m, k, a, lda, pre);
        cpu->gemm_st_pre(cpu->pack, pre, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c1, ldc);
    }
    int bad = 0;
    for (size_t i = 0; i < m && !bad; i++)
        for (size_t j = 0; j < ldc && !bad; j++) {
            double x = c0[i * ldc + j], y = c1[i * ldc + j];
            /* Padding columns beyond n must be untouched. */
            double tol = j < n ? gemm_tol(k) * (1 + fabs(x)) : 0;
            if (!(fabs(x - y) <= tol)) {
                th_fail(__FILE__, __LINE__,
                        "%s gemm (entry %d) ta=%d tb=%d m=%zu n=%zu k=%zu alpha=%g beta=%g: "
                        "C[%zu][%zu] = %g, reference %g",
                        be->kernels, via, ta, tb, m, n, k, alpha, beta, i, j, y, x);
                bad = 1;
            }
        }
    free(a), free(b), free(c0), free(c1), free(pre);
    return bad;
}

static void gemm_matches_reference(const char *isa)
{
    static const size_t sizes[] = {1, 2, 3, 7, 8, 9, 15, 17, 31, 33, 64, 65, 127, 130, 257, 300};
    size_t ns = sizeof sizes / sizeof sizes[0];
    cn_backend *be = isa_backend(isa, 2);
    if (!be)
        return;
    cn_rng rng;
    cn_rng_seed(&rng, 42);
    int bad = 0;
    for (int ta = 0; ta < 2 && !bad; ta++)
        for (int tb = 0; tb < 2 && !bad; tb++)
            for (size_t t = 0; t < 60 && !bad; t++) {
                size_t m = sizes[cn_rng_below(&rng, ns)], n = sizes[cn_rng_below(&rng, ns)];
                size_t k = sizes[cn_rng_below(&rng, ns)];
                float alpha = t % 3 == 0 ? 0.5f : 1.0f, beta = (float)(t % 3);
                bad = compare_gemm(be, (int)(t % 4 == 3 ? t / 4 % 3 : VIA_GEMM), ta, tb, m, n, k,
                                   alpha, beta, t % 2 ? 3 : 0, &rng);
            }
    /* Deep products cross several KC blocks; wide ones several tiles; k = 0
     * and alpha = 0 only scale C. */
    bad = bad || compare_gemm(be, VIA_GEMM, 0, 0, 20, 4096, 600, 1, 0, 0, &rng) ||
          compare_gemm(be, VIA_GEMM, 0, 1, 50, 500, 4100, 1, 1, 0, &rng) ||
          compare_gemm(be, VIA_GEMM, 1, 0, 500, 1000, 50, 1, 0, 1, &rng) ||
          compare_gemm(be, VIA_PRE, 0, 0, 130, 300, 600, 1, 0, 2, &rng) ||
          compare_gemm(be, VIA_PRE, 1, 0, 33, 257, 300, 1, 1, 0, &rng) ||
          compare_gemm(be, VIA_ST, 0, 1, 65, 1100, 17, 1, 0, 0, &rng) ||
          compare_gemm(be, VIA_GEMM, 0, 0, 5, 7, 0, 1, 0.5f, 1, &rng) ||
          /* A few rows of A against B transposed (the fully connected
           * layer's forward pass on a few samples) take the dot-product
           * path: column edges, depths that are no multiple of the vector
           * width, row groups of 4 and a remainder, beta and padding. */
          compare_gemm(be, VIA_GEMM, 0, 1, 1, 500, 800, 1, 0, 0, &rng) ||
          compare_gemm(be, VIA_GEMM, 0, 1, 2, 3, 7, 0.5f, 1, 2, &rng) ||
          compare_gemm(be, VIA_GEMM, 0, 1, 3, 37, 19, 1, 0, 1, &rng) ||
          compare_gemm(be, VIA_GEMM, 0, 1, 5, 130, 47, 1, 1, 0, &rng) ||
          compare_gemm(be, VIA_GEMM, 0, 1, 8, 10, 500, 0.5f, 0, 3, &rng) ||
          compare_gemm(be, VIA_GEMM, 0, 1, 7, 1, 1, 1, 1, 0, &rng) ||
          compare_gemm(be, VIA_GEMM, 1, 1, 9, 3, 17, 0, 0, 0, &rng);
    cn_backend_destroy(be);
}
PER_ISA(gemm_matches_reference)

/* The result must not depend on the number of threads, bit for bit. */
static void gemm_thread_count_invariant(const char *isa)
{
    cn_backend *b1, *b2;
    if (!one_and_three(isa, &b1, &b2))
        return;
    cn_rng rng;
    cn_rng_seed(&rng, 7);
    size_t m = 70, n = 900, k = 530;
    float *a = normal(m * k, 1, 0, &rng), *b = normal(k * n, 1, 0, &rng);
    float *c1 = floats(m * n), *c2 = floats(m * n);
    b1->gemm(b1, 0, 0, m, n, k, 1, a, k, b, n, 0, c1, n);
    b2->gemm(b2, 0, 0, m, n, k, 1, a, k, b, n, 0, c2, n);
    cn_backend_destroy(b1);
    cn_backend_destroy(b2);
    CHECK_MSG(memcmp(c1, c2, m * n * 4) == 0, "%s: 1 and 3 threads differ", isa);
    free(a), free(b), free(c1), free(c2);
    /* Split by depth (a fully connected layer's input gradient): on 2
     * threads 5 slices of KC = 256 (the second thread sums 3 apart, C adds
     * them in order), two column blocks, beta 1.5; then a C too large for
     * the packing buffers, split by columns instead. */
    for (int big = 0; big < 2; big++) {
        m = big ? 120 : 70, n = big ? 3000 : 1100, k = 1100;
        a = normal(m * k, 1, 0, &rng), b = normal(k * n, 1, 0, &rng);
        c1 = normal(m * n, 1, 0, &rng), c2 = floats(m * n);
        memcpy(c2, c1, m * n * 4);
        b1 = isa_backend(isa, 1), b2 = isa_backend(isa, 2);
        CHECK(b1 && b2);
        b1->gemm(b1, 0, 0, m, n, k, 1, a, k, b, n, 1.5f, c1, n);
        b2->gemm(b2, 0, 0, m, n, k, 1, a, k, b, n, 1.5f, c2, n);
        cn_backend_destroy(b1);
        cn_backend_destroy(b2);
        CHECK_MSG(memcmp(c1, c2, m * n * 4) == 0, "%s: %zu x %zu x %zu, 1 and 2 threads differ",
                  isa, m, n, k);
        free(a), free(b), free(c1), free(c2);
    }
    /* The dot-product path (few rows of A, B transposed): its column
     * ranges follow the thread count, and each call with the same B sweeps
     * B's rows the other way from the last: the first and second calls on
     * 1 and 2 threads, and a third on 1, all the same bits. */
    m = 3, n = 1001, k = 803;
    a = normal(m * k, 1, 0, &rng), b = normal(n * k, 1, 0, &rng);
    c1 = floats(m * n), c2 = floats(m * n);
    float *c3 = floats(m * n), *c4 = floats(m * n), *c5 = floats(m * n);
    b1 = isa_backend(isa, 1), b2 = isa_backend(isa, 2);
    CHECK(b1 && b2);
    b1->gemm(b1, 0, 1, m, n, k, 1, a, k, b, k, 0, c1, n);
    b2->gemm(b2, 0, 1, m, n, k, 1, a, k, b, k, 0, c2, n);
    b1->gemm(b1, 0, 1, m, n, k, 1, a, k, b, k, 0, c3, n);
    b2->gemm(b2, 0, 1, m, n, k, 1, a, k, b, k, 0, c4, n);
    b1->gemm(b1, 0, 1, m, n, k, 1, a, k, b, k, 0, c5, n);
    cn_backend_destroy(b1);
    cn_backend_destroy(b2);
    CHECK_MSG(memcmp(c1, c2, m * n * 4) == 0, "%s: dot path, 1 and 2 threads differ", isa);
    CHECK_MSG(memcmp(c1, c3, m * n * 4) == 0 && memcmp(c1, c4, m * n * 4) == 0 &&
                  memcmp(c1, c5, m * n * 4) == 0,
              "%s: dot path, a second or third call with the same B differs", isa);
    free(a), free(b), free(c1), free(c2), free(c3), free(c4), free(c5);
    /* B transposed (packed, not read in place) under many rows of tiles:
     * one thread packs each slice of B once for all its tiles
     * (tiles_sharing_b), three threads take a tile each (tile()); columns
     * past NC (two column blocks), A transposed and not, beta 0 and 1.5. */
    m = 300, n = 1100, k = 300;
    a = normal(m * k, 1, 0, &rng), b = normal(n * k, 1, 0, &rng);
    c1 = normal(m * n, 1, 0, &rng), c2 = floats(m * n);
    b1 = isa_backend(isa, 1), b2 = isa_backend(isa, 3);
    CHECK(b1 && b2);
    for (int ta = 0; ta < 2; ta++)
        for (int beta = 0; beta < 2; beta++) {
            memcpy(c2, c1, m * n * 4);
            b1->gemm(b1, ta, 1, m, n, k, 1, a, ta ? m : k, b, k, beta * 1.5f, c1, n);
            b2->gemm(b2, ta, 1, m, n, k, 1, a, ta ? m : k, b, k, beta * 1.5f, c2, n);
            CHECK_MSG(memcmp(c1, c2, m * n * 4) == 0,
                      "%s: B transposed, ta %d, beta %d: 1 and 3 threads differ", isa, ta, beta);
        }
    cn_backend_destroy(b1);
    cn_backend_destroy(b2);
    free(a), free(b), free(c1), free(c2);
}
PER_ISA(gemm_thread_count_invariant)

/* A fully connected layer's weights kept transposed (cn_cpu's fc_one and
 * fc_floats, the kernel of the backend's fc_fwd for one sample): outputs
 * and depths that fill no vector (1, 3, 9, 17, 70, 500 outputs; depths 1
 * to 803), inputs dense, a third 0 and mostly 0 (a relu's: -0 among them),
 * give the same bits as gemm and add_bias, on 1 and 3 threads (dense
 * inputs and a third 0: on 1 thread a third 0 skipped, on 3 left to the
 * GEMM), call after call, and come within the float
 * tolerance of a reference in double.  W^T is made
 * once: weights changed without a word are not seen (the kept form is
 * what is read), and seen once the head is cleared.  More samples than
 * one are not its (0).  The backend keeps weights past a core's L1 cache
 * and up to 64 MB, of 8 vectors of outputs or more (fc_keep), and fc_fwd
 * with them gives the same bits. */
static void fc_kept_matches_gemm(const char *isa)
{
    cn_backend *b1, *b3;
    if (!one_and_three(isa, &b1, &b3))
        return;
    const cn_cpu *c1 = cn_cpu_of(b1), *c3 = cn_cpu_of(b3);
    cn_rng rng;
    cn_rng_seed(&rng, 77);
    static const size_t ms[] = {1, 3, 9, 17, 70, 500}, ks[] = {1, 15, 16, 17, 40, 803};
    for (size_t im = 0; im < sizeof ms / sizeof *ms; im++)
        for (size_t ik = 0; ik < sizeof ks / sizeof *ks; ik++)
            for (int relu = 0; relu < 3; relu++) {
                size_t m = ms[im], k = ks[ik], kf = c1->fc_floats(m, k, 3);
                float *x = normal(2 * k, 1, 0, &rng), *w = normal(m * k, 1, 0, &rng);
                float *b = normal(m, 1, 0, &rng), *want = floats(2 * m), *got = floats(2 * m);
                float *keep1 = calloc(kf, sizeof(float)), *keep3 = calloc(kf, sizeof(float));
                /* relu 1: 3 in 4 zero, some -0; relu 2: about a third */
                float cut = relu == 2 ? -0.43f : 0.6f;
                for (size_t p = 0; relu && p < k; p++)
                    x[p] = x[p] > cut ? x[p] : p % 5 ? 0.0f : -0.0f;
                b1->gemm(b1, 0, 1, 1, m, k, 1.0f, x, k, w, k, 0.0f, want, m);
                b1->add_bias(b1, want, 1, m, 1, b);
                for (int call = 0; call < 4; call++) {
                    /* (dense inputs on more threads than one: the GEMM's) */
                    const cn_cpu *c = call % 2 ? c3 : c1;
                    int done = c->fc_one(&c->base, 1, m, k, x, w, b, got, call % 2 ? keep3 : keep1);
                    CHECK_MSG(done || (c->threads > 1 && !(relu == 1 && k > 100)),
                              "%s: %zu by %zu, relu'd %d, %d threads: not done", isa, m, k, relu,
                              c->threads);
                    CHECK_MSG(!(done && c->threads > 1 && relu == 2 && k > 100),
                              "%s: %zu by %zu, a third 0, %d threads: not left to the GEMM", isa, m,
                              k, c->threads);
                    if (!done)
                        continue;
                    CHECK_MSG(memcmp(got, want, m * sizeof(float)) == 0,
                              "%s: %zu by %zu, relu'd %d, %d thread(s), call %d: not gemm's bits",
                              isa, m, k, relu, c->threads, call);
                }
                for (size_t j = 0; j < m; j++) {
                    double ref = b[j];
                    for (size_t p = 0; p < k; p++)
                        ref += (double)x[p] * w[j * k + p];
                    CHECK_MSG(fabs(got[j] - ref) <= gemm_tol(k) * (1 + fabs(ref)),
                              "%s: %zu by %zu: [%zu] = %.9g, reference %.9g", isa, m, k, j, got[j],
                              ref);
                }
                CHECK_MSG(keep1[0] == 1.0f && keep3[0] == 1.0f, "%s: W^T was not kept", isa);
                CHECK_MSG(!c1->fc_one(b1, 2, m, k, x, w, b, got, keep1), "%s: 2 samples", isa);
                /* a weight changes (of an input that is not 0): the kept
                 * W^T still gives the old results until the head is
                 * cleared */
                x[0] = 1.0f;
                c1->fc_one(b1, 1, m, k, x, w, b, want, keep1);
                w[(m - 1) * k] += 1.0f;
                c1->fc_one(b1, 1, m, k, x, w, b, got, keep1);
                if (k % 16 == 0) /* (inputs past the last vector come from w itself) */
                    CHECK_MSG(memcmp(got, want, m * sizeof(float)) == 0,
                              "%s: %zu by %zu: W^T made again unasked", isa, m, k);
                keep1[0] = 0.0f;
                c1->fc_one(b1, 1, m, k, x, w, b, got, keep1);
                CHECK_MSG(got[m - 1] != want[m - 1], "%s: %zu by %zu: a changed weight not seen",
                          isa, m, k);
                /* the backend's own: kept past 32 KB of weights in layers of
                 * 8 vectors of outputs or more (500 x 17 and more here; on
                 * AVX2 and the portable set, 70 x 803 too), and the same
                 * bits through fc_fwd */
                size_t kb = b1->fc_keep(b1, m, k), vec = strcmp(isa, "avx512") == 0 ? 16
                                                         : strcmp(isa, "avx2") == 0 ? 8
                                                                                    : 4;
                CHECK_MSG(kb == (m * k * sizeof(float) > 32768 && m >= 8 * vec
                                     ? c1->fc_floats(m, k, 1)
                                     : 0),
                          "%s: %zu by %zu keeps %zu", isa, m, k, kb);
                b1->gemm(b1, 0, 1, 2, m, k, 1.0f, x, k, w, k, 0.0f, want, m);
                b1->add_bias(b1, want, 2, m, 1, b);
                for (size_t n = 1; n <= 2; n++) {
                    memset(keep1, 0, kf * sizeof(float));
                    b3->fc_fwd(b3, n, m, k, x, w, b, got, kb ? keep1 : NULL);
                    CHECK_MSG(memcmp(got, want, n * m * sizeof(float)) == 0,
                              "%s: fc_fwd, %zu x %zu by %zu", isa, n, m, k);
                }
                free(x), free(w), free(b), free(want), free(got), free(keep1), free(keep3);
            }
    CHECK(b1->fc_keep(b1, 4096, 4096) > 0 && b1->fc_keep(b1, 4097, 4096) == 0 &&
          b1->fc_keep(b1, (size_t)1 << 40, (size_t)1 << 40) == 0);
    cn_backend_destroy(b1);
    cn_backend_destroy(b3);
}
PER_ISA(fc_kept_matches_gemm)

/* ---------------------------------------------------------- convolution */

/* Window geometries: every stride and padding combination the layers use,
 * plus odd ones. */
static const size_t geoms[][6] = {
    /* c, h, w, k, stride, pad */
    {1, 28, 28, 5, 1, 0},
    {20, 12, 12, 5, 1, 0},
    {3, 7, 9, 3, 1, 1},
    {2, 8, 8, 3, 2, 1},
    {4, 5, 5, 5, 1, 2},
    {1, 6, 7, 2, 3, 0},
    {3, 9, 6, 4, 2, 3},
    {1, 1, 1, 1, 1, 0},
    {2, 4, 4, 2, 1, 0},
    {16, 14, 14, 5, 1, 2},
    {2, 13, 17, 3, 1, 1},
    {1, 28, 28, 5, 1, 2},
    {3, 20, 35, 7, 1, 3},
    {2, 16, 16, 1, 1, 0},
    {3, 12, 10, 3, 1, 1},
    /* 3x3, stride 1, enough channels for Winograd's F(4x4, 3x3) on AVX-512:
     * whole and partial tiles, every padding, a row of more than 16 tiles */
    {24, 28, 28, 3, 1, 1},
    {19, 14, 14, 3, 1, 1},
    {21, 9, 13, 3, 1, 0},
    {33, 7, 5, 3, 1, 2},
    {20, 70, 6, 3, 1, 1},
    {18, 3, 3, 3, 1, 1},
    /* planes of 4 tile columns and up to 4 tile rows (one vector of tiles,
     * built from the rows: wg_input4, wg_grad4): columns past 16 padded,
     * no padding, padding 2, 2 tile rows */
    {17, 16, 16, 3, 1, 1},
    {20, 18, 18, 3, 1, 0},
    {22, 12, 14, 3, 1, 2},
    {16, 8, 15, 3, 1, 1},
    /* planes of 2 x 2 tiles, four samples to a vector (wg_input2): 1, 5
     * and 70 samples (a last group of 1, 2 or 4), 7 x 7, padding 0 */
    {24, 8, 8, 3, 1, 1},
    {32, 7, 7, 3, 1, 1},
    {24, 10, 10, 3, 1, 0},
    /* planes of 8 tile columns, two tile rows to a vector (wg_input8):
     * 32 x 32, an odd number of tile rows, columns past 32 */
    {20, 32, 32, 3, 1, 1},
    {18, 11, 31, 3, 1, 1},
    {20, 9, 34, 3, 1, 0},
};

static cn_win win_of(const size_t *g)
{
    cn_win w = {g[0], g[1], g[2], g[3], g[3], g[4], g[5], 0, 0};
    w.oh = (w.h + 2 * w.pad - w.kh) / w.stride + 1;
    w.ow = (w.w + 2 * w.pad - w.kw) / w.stride + 1;
    return w;
}

/* The convolution against the direct definition, forward and backward, on
 * every geometry above, with 1 to 70 samples (more than the 16 partial sums
 * of the weight gradient, several samples to a sum) and 1 to 17 filters. */
static void conv_matches_reference(const char *isa)
{
    static const size_t ms[] = {1, 3, 17}, ns[] = {1, 5, 70};
    cn_backend *be = isa_backend(isa, 2);
    if (!be)
        return;
    cn_rng rng;
    cn_rng_seed(&rng, 3);
    for (size_t t = 0; t < sizeof geoms / sizeof geoms[0]; t++)
        for (size_t a = 0; a < 3; a++) {
            cn_win g = win_of(geoms[t]);
            size_t m = ms[a], n = ns[(t + a) % 3], kk = g.c * g.kh * g.kw;
            size_t in = n * g.c * g.h * g.w, out = n * m * g.oh * g.ow;
            float *x = normal(in, 1, 0, &rng), *w = normal(m * kk, 1, 0, &rng);
            float *b = normal(m, 1, 0, &rng), *dy = normal(out, 1, 0, &rng);
            float *y = floats(out), *yr = floats(out), *dx = floats(in), *dxr = floats(in);
            float *dw = calloc(m * kk, 4), *dwr = calloc(m * kk, 4);
            float *db = calloc(m, 4), *dbr = calloc(m, 4);
            float *ws = floats(be->conv_ws(be, &g, m, n));
            be->conv_fwd(be, &g, m, x, n, w, b, y, ws, NULL, CN_ACT_NONE);
            cn_conv_ref_fwd(&g, m, x, n, w, b, yr);
            be->conv_bwd(be, &g, m, x, y, dy, n, w, dw, db, dx, ws, CN_ACT_NONE);
            cn_conv_ref_bwd(&g, m, x, dy, n, w, dwr, dbr, dxr);
            /* Float sums of up to 11 520 products in another order than the
             * reference's double ones: about 1e-6 of the scale; 2e-5 leaves a
             * margin and catches any indexing mistake. */
            double tol = 2e-5;
            CHECK_MSG(max_rel(y, yr, out) < tol && max_rel(dx, dxr, in) < tol &&
                          max_rel(dw, dwr, m * kk) < tol && max_rel(db, dbr, m) < tol,
                      "%s conv geometry %zu, m %zu, n %zu: errors y %.2g dx %.2g dw %.2g db %.2g",
                      isa, t, m, n, max_rel(y, yr, out), max_rel(dx, dxr, in),
                      max_rel(dw, dwr, m * kk), max_rel(db, dbr, m));
            /* Without dx the weight gradients are the same (added once more). */
            be->conv_bwd(be, &g, m, x, y, dy, n, w, dw, db, NULL, ws, CN_ACT_NONE);
            for (size_t i = 0; i < m * kk; i++)
                dwr[i] *= 2;
            CHECK(max_rel(dw, dwr, m * kk) < tol);
            /* A fused relu: y = relu(conv), and backward masks dy where y = 0. */
            be->conv_fwd(be, &g, m, x, n, w, b, y, ws, NULL, CN_ACT_RELU);
            for (size_t i = 0; i < out; i++) {
                yr[i] = yr[i] > 0 ? yr[i] : 0;
                if (yr[i] == 0)
                    dy[i] = 0;
            }
            CHECK(max_rel(y, yr, out) < tol);
            for (size_t i = 0; i < out; i++) /* where ref and fast disagree on 0 */
                if ((y[i] > 0) != (yr[i] > 0))
                    dy[i] = 0;
            memset(dw, 0, m * kk * 4), memset(dwr, 0, m * kk * 4);
            memset(db, 0, m * 4), memset(dbr, 0, m * 4);
            be->conv_bwd(be, &g, m, x, y, dy, n, w, dw, db, dx, ws, CN_ACT_RELU);
            cn_conv_ref_bwd(&g, m, x, dy, n, w, dwr, dbr, dxr);
            CHECK_MSG(max_rel(dx, dxr, in) < tol && max_rel(dw, dwr, m * kk) < tol &&
                          max_rel(db, dbr, m) < tol,
                      "%s fused relu, geometry %zu", isa, t);
            free(x), free(w), free(b), free(y), free(yr), free(dy), free(dx), free(dxr);
            free(dw), free(dwr), free(db), free(dbr), free(ws);
        }
    cn_backend_destroy(be);
}
PER_ISA(conv_matches_reference)

/* Layers of 32 K weights or more, whose weight gradients are summed in
 * rounds of one chunk of samples a thread (conv.c's FOR_CHUNKS), against the
 * direct definition: a 7x7 window with stride 2 and padding 3, a 1x1 one of
 * 130 channels to 260 filters, stride 3 with padding 2, a 5x5 one with
 * padding 2, and a 3x3 one of 64 channels to 64 filters (Winograd's weight
 * gradient on AVX-512); channel counts that are not multiples of 16; one
 * sample (a single chunk) and 17 (16 chunks: rounds of 2 and of 3 with a
 * last round of 1), on 2 and 3 threads. */
static void conv_large_matches_reference(const char *isa)
{
    static const size_t lg[][6] = {
        /* c, h, w, k, stride, pad */
        {37, 9, 9, 7, 2, 3}, {130, 5, 5, 1, 1, 0}, {70, 8, 7, 3, 3, 2},
        {48, 6, 6, 5, 1, 2}, {64, 8, 8, 3, 1, 1},
    };
    static const size_t lm[] = {21, 260, 53, 30, 64};
    cn_rng rng;
    cn_rng_seed(&rng, 21);
    for (int threads = 2; threads <= 3; threads++) {
        cn_backend *be = isa_backend(isa, threads);
        if (!be)
            return;
        for (size_t t = 0; t < sizeof lg / sizeof lg[0]; t++)
            for (size_t n = 1; n <= 17; n += 16) {
                cn_win g = win_of(lg[t]);
                size_t m = lm[t], kk = g.c * g.kh * g.kw;
                size_t in = n * g.c * g.h * g.w, out = n * m * g.oh * g.ow;
                CHECK(m * kk + m >= 32 * 1024);
                float *x = normal(in, 1, 0, &rng), *w = normal(m * kk, 1, 0, &rng);
                float *dy = normal(out, 1, 0, &rng), *dx = floats(in), *dxr = floats(in);
                float *dw = calloc(m * kk, 4), *dwr = calloc(m * kk, 4);
                float *db = calloc(m, 4), *dbr = calloc(m, 4);
                float *ws = floats(be->conv_ws(be, &g, m, n));
                be->conv_bwd(be, &g, m, x, NULL, dy, n, w, dw, db, dx, ws, CN_ACT_NONE);
                cn_conv_ref_bwd(&g, m, x, dy, n, w, dwr, dbr, dxr);
                /* as conv_matches_reference: float sums in another order
                 * than the reference's double ones (Winograd's transforms
                 * add a few roundings more) */
                double tol = 2e-5;
                CHECK_MSG(max_rel(dx, dxr, in) < tol && max_rel(dw, dwr, m * kk) < tol &&
                              max_rel(db, dbr, m) < tol,
                          "%s geometry %zu, %zu samples, %d threads: errors dx %.2g dw %.2g db "
                          "%.2g",
                          isa, t, n, threads, max_rel(dx, dxr, in), max_rel(dw, dwr, m * kk),
                          max_rel(db, dbr, m));
                free(x), free(w), free(dy), free(dx), free(dxr), free(dw), free(dwr), free(db),
                    free(dbr), free(ws);
            }
        cn_backend_destroy(be);
    }
}
PER_ISA(conv_large_matches_reference)

/* Convolution gradients do not depend on the thread count, bit for bit: a
 * 5x5 layer (im2col's GEMM), and on AVX-512 3x3 layers whose gradients
 * Winograd computes, the weight gradient's products by the GEMM (64
 * channels, whose 16 chunks' sums are added up in rounds of one chunk a
 * thread: 5 rounds of 3 and one of 1 on 3 threads) and along the lanes (24
 * channels, 19 filters: partial blocks of 4), with 37 samples (chunks of 2
 * and 3). */
static void conv_thread_count_invariant(const char *isa)
{
    static const size_t tg[][6] = {
        {20, 12, 12, 5, 1, 0},
        {24, 28, 28, 3, 1, 1},
        {64, 8, 8, 3, 1, 1},
    };
    static const size_t tm[] = {8, 19, 64};
    for (size_t t = 0; t < sizeof tg / sizeof tg[0]; t++) {
        cn_backend *bes[2] = {isa_backend(isa, 1), NULL};
        if (!bes[0])
            return;
        bes[1] = isa_backend(isa, 3);
        CHECK(bes[1]);
        cn_win g = win_of(tg[t]);
        size_t m = tm[t], n = 37, kk = g.c * g.kh * g.kw, in = n * g.c * g.h * g.w,
               out = n * m * g.oh * g.ow;
        cn_rng rng;
        cn_rng_seed(&rng, 9);
        float *x = normal(in, 1, 0, &rng), *w = normal(m * kk, 1, 0, &rng);
        float *dy = normal(out, 1, 0, &rng);
        float *dx[2] = {floats(in), floats(in)}, *dw[2] = {calloc(m * kk, 4), calloc(m * kk, 4)};
        float *db[2] = {calloc(m, 4), calloc(m, 4)};
        for (int r = 0; r < 2; r++) {
            cn_backend *be = bes[r];
            float *ws = floats(be->conv_ws(be, &g, m, n));
            be->conv_bwd(be, &g, m, x, NULL, dy, n, w, dw[r], db[r], dx[r], ws, CN_ACT_NONE);
            free(ws);
            cn_backend_destroy(be);
        }
        CHECK_MSG(memcmp(dx[0], dx[1], in * 4) == 0 && memcmp(dw[0], dw[1], m * kk * 4) == 0 &&
                      memcmp(db[0], db[1], m * 4) == 0,
                  "%s geometry %zu: 1 and 3 threads differ", isa, t);
        free(x), free(w), free(dy), free(dx[0]), free(dx[1]), free(dw[0]), free(dw[1]), free(db[0]),
            free(db[1]);
    }
}
PER_ISA(conv_thread_count_invariant)

/* A large layer's weight gradient is summed in rounds of one chunk of
 * samples a thread, so the scratch a convolution asks for stops growing with
 * the batch once there are more chunks than threads: on 2 threads,
 * cifar10's last 3x3 layers (128 channels at 8 x 8) and a 5x5 layer of 64
 * channels ask as much for 128 samples as for 3.  A small layer (LeNet's
 * second, 25 K weights) keeps every chunk's sums, and asks for more. */
static void conv_scratch_bounded(const char *isa)
{
    static const size_t bg[][6] = {
        {128, 8, 8, 3, 1, 1}, {64, 12, 12, 5, 1, 2}, {20, 12, 12, 5, 1, 0}};
    static const size_t bm[] = {128, 64, 50};
    cn_backend *be = isa_backend(isa, 2);
    if (!be)
        return;
    for (size_t t = 0; t < sizeof bg / sizeof bg[0]; t++) {
        cn_win g = win_of(bg[t]);
        size_t three = be->conv_ws(be, &g, bm[t], 3), many = be->conv_ws(be, &g, bm[t], 128);
        if (t < 2)
            CHECK_MSG(many == three, "%s geometry %zu: %zu floats for 128 samples, %zu for 3", isa,
                      t, many, three);
        else
            CHECK_MSG(many > three, "%s geometry %zu: %zu floats for 128 samples, %zu for 3", isa,
                      t, many, three);
    }
    cn_backend_destroy(be);
}
PER_ISA(conv_scratch_bounded)

/* Fewer samples than threads: each sample's filters are split among the
 * threads (SPLIT_MACS and up), on the direct path and on im2col's (with a
 * stride, and a 1x1 convolution that reads x in place), into shares of
 * uneven size (17 filters), and on Winograd's (each thread transforms the
 * whole unit's inputs and makes its share of the filters' outputs; planes
 * of 4 and of 8 tile columns, of 2 x 2 tiles, and 28 x 28 planes of 40
 * channels, whose unit is one sample, so that two samples make two units):
 * the same bits as one thread and the reference's values forward, and the
 * same bits backward (the input gradient's Winograd splits the same way). */
static const size_t split_geoms[][6] = {
    /* c, h, w, k, stride, pad: direct, direct, LeNet's second layer
     * (F(2x2, 5x5) on AVX-512, else im2col or the direct sum's shifted
     * rows), strided, 1x1 in place, 7x7, then F(4x4, 3x3) (on AVX-512): 4 tile
     * columns, 7 x 7 (2 x 2 tiles), 8 tile columns, 28 x 28; then 8 x 8
     * outputs of 5x5 by the shifted rows (too few channels for F(2x2, 5x5)) */
    {16, 14, 14, 5, 1, 2}, {4, 28, 28, 3, 1, 1},  {20, 12, 12, 5, 1, 0}, {32, 15, 14, 3, 2, 1},
    {64, 16, 16, 1, 1, 0}, {3, 20, 35, 7, 1, 3},  {24, 14, 13, 3, 1, 1}, {32, 7, 7, 3, 1, 1},
    {21, 32, 32, 3, 1, 1}, {40, 28, 28, 3, 1, 1}, {8, 12, 12, 5, 1, 0},
};
/* Filters of the split tests: with every geometry above, enough work to be
 * split (conv.c's SPLIT_MACS, 512 K multiply-adds), in shares of 13-14. */
#define SPLIT_M       41
#define N_SPLIT_GEOMS (sizeof split_geoms / sizeof split_geoms[0])

static void conv_split_matches_one_thread(const char *isa)
{
    cn_backend *b1, *b3;
    if (!one_and_three(isa, &b1, &b3))
        return;
    cn_rng rng;
    cn_rng_seed(&rng, 13);
    for (size_t t = 0; t < N_SPLIT_GEOMS; t++)
        for (size_t n = 1; n <= 2; n++) {
            cn_win g = win_of(split_geoms[t]);
            size_t m = SPLIT_M, kk = g.c * g.kh * g.kw, in = n * g.c * g.h * g.w;
            size_t out = n * m * g.oh * g.ow;
            CHECK(m * g.oh * g.ow * kk >= 512 * 1024); /* conv.c's SPLIT_MACS */
            float *x = normal(in, 1, 0, &rng), *w = normal(m * kk, 1, 0, &rng);
            float *b = normal(m, 1, 0, &rng), *y1 = floats(out), *y3 = floats(out);
            float *yr = floats(out);
            float *ws1 = floats(b1->conv_ws(b1, &g, m, n)),
                  *ws3 = floats(b3->conv_ws(b3, &g, m, n));
            cn_conv_ref_fwd(&g, m, x, n, w, b, yr);
            for (int act = 0; act < 2; act++) {
                cn_act a = act ? CN_ACT_RELU : CN_ACT_NONE;
                b1->conv_fwd(b1, &g, m, x, n, w, b, y1, ws1, NULL, a);
                b3->conv_fwd(b3, &g, m, x, n, w, b, y3, ws3, NULL, a);
                CHECK_MSG(memcmp(y1, y3, out * 4) == 0,
                          "%s geometry %zu, %zu samples, act %d: 1 and 3 threads differ", isa, t, n,
                          act);
                for (size_t i = 0; act && i < out; i++)
                    yr[i] = yr[i] > 0 ? yr[i] : 0;
                CHECK_MSG(max_rel(y3, yr, out) < 2e-5, "%s geometry %zu, %zu samples: error %.2g",
                          isa, t, n, max_rel(y3, yr, out));
            }
            /* Backward (through the relu of the last pass): the same bits. */
            float *dy = normal(out, 1, 0, &rng), *dx1 = floats(in), *dx3 = floats(in);
            float *dw1 = calloc(m * kk, 4), *dw3 = calloc(m * kk, 4);
            float *db1 = calloc(m, 4), *db3 = calloc(m, 4);
            b1->conv_bwd(b1, &g, m, x, y1, dy, n, w, dw1, db1, dx1, ws1, CN_ACT_RELU);
            b3->conv_bwd(b3, &g, m, x, y3, dy, n, w, dw3, db3, dx3, ws3, CN_ACT_RELU);
            CHECK_MSG(memcmp(dx1, dx3, in * 4) == 0 && memcmp(dw1, dw3, m * kk * 4) == 0 &&
                          memcmp(db1, db3, m * 4) == 0,
                      "%s geometry %zu, %zu samples: 1 and 3 threads' gradients differ", isa, t, n);
            free(dy), free(dx1), free(dx3), free(dw1), free(dw3), free(db1), free(db3);
            free(x), free(w), free(b), free(y1), free(y3), free(yr), free(ws1), free(ws3);
        }
    cn_backend_destroy(b1);
    cn_backend_destroy(b3);
}
PER_ISA(conv_split_matches_one_thread)

/* A batch of 16 samples or more of a convolution that Winograd does not
 * take runs with the samples along the vector lanes on AVX-512
 * (kernels/lanes_avx512.c) where im2col's GEMM or, with a window of 16
 * elements or more (64 backward), the direct sum would, summing in that
 * path's order.
 * Forward, each sample's outputs are the bits it gets alone (on that
 * path), wherever it sits in the batch (whole blocks of 16 and a partial
 * one; on 3 threads 16 and 17 samples, fewer blocks than threads, take the
 * path of a smaller batch), with the bias, the relu and a folded batch
 * normalisation.  Backward, the gradients are the same bits on 1 and 3
 * threads (3 threads share one block's filters and channels) and the
 * reference's values, with and without a fused relu.  Geometries: LeNet's second layer, small's
 * second (direct), LeNet's first (lanes forward in the direct sum's order, direct backward),
 * mnist-best's third (Winograd forward and both gradients),
 * output rows of 1 to 3 (more filters to a register block), strides 2 and
 * 3, 1x1 and 7x7 windows, padding 0 to 3, channel counts that are not
 * multiples of 16, a window deeper than the GEMM's 256-deep slices. */
static void conv_lanes_match_one_sample(const char *isa)
{
    static const size_t lg[][6] = {
        /* c, h, w, k, stride, pad */
        {20, 12, 12, 5, 1, 0}, {3, 3, 7, 3, 1, 0},   {5, 9, 9, 3, 3, 1},   {7, 11, 10, 3, 2, 1},
        {33, 6, 6, 1, 1, 0},   {2, 9, 8, 7, 1, 3},   {11, 5, 6, 5, 2, 2},  {70, 6, 5, 3, 1, 1},
        {16, 14, 14, 5, 1, 2}, {9, 13, 13, 3, 1, 1}, {1, 28, 28, 5, 1, 0}, {16, 14, 14, 3, 1, 1},
    };
    static const size_t ms[] = {50, 7, 13, 1, 17, 9, 24, 10, 16, 10, 20, 32}, ns[] = {16, 17, 35};
    cn_backend *b1, *b3;
    if (!one_and_three(isa, &b1, &b3))
        return;
    cn_rng rng;
    cn_rng_seed(&rng, 41);
    for (size_t t = 0; t < sizeof lg / sizeof lg[0]; t++) {
        cn_win g = win_of(lg[t]);
        size_t m = ms[t], n = ns[t % 3], kk = g.c * g.kh * g.kw, in1 = g.c * g.h * g.w;
        size_t out1 = m * g.oh * g.ow;
        float *x = normal(n * in1, 1, 0, &rng), *w = normal(m * kk, 1, 0, &rng);
        float *b = normal(m, 1, 0, &rng), *sc = normal(2 * m, 1, 0, &rng);
        float *dy = normal(n * out1, 1, 0, &rng);
        float *y = floats(n * out1), *yr = floats(n * out1), *y1 = floats(out1);
        float *ws1 = floats(b1->conv_ws(b1, &g, m, n)), *ws3 = floats(b3->conv_ws(b3, &g, m, n));
        cn_conv_ref_fwd(&g, m, x, n, w, b, yr);
        for (int form = 0; form < 3; form++) { /* plain, relu, folded batch norm and relu */
            cn_act act = form ? CN_ACT_RELU : CN_ACT_NONE;
            float *scale = form == 2 ? sc : NULL, *shift = form == 2 ? sc + m : NULL;
            for (int r = 0; r < 2; r++) {
                cn_backend *be = r ? b3 : b1;
                /* 16 samples: one block, split among 3 threads by filter groups */
                size_t nb = r ? 16 : n;
                be->conv_fwd_affine(be, &g, m, x, nb, w, b, scale, shift, y, r ? ws3 : ws1, NULL,
                                    act);
                for (size_t s = 0; s < nb; s++) {
                    b1->conv_fwd_affine(b1, &g, m, x + s * in1, 1, w, b, scale, shift, y1, ws1,
                                        NULL, act);
                    CHECK_MSG(memcmp(y1, y + s * out1, out1 * 4) == 0,
                              "%s geometry %zu, form %d, %zu samples on %d threads: sample %zu "
                              "differs from it alone",
                              isa, t, form, nb, r ? 3 : 1, s);
                }
            }
            if (form == 0)
                CHECK_MSG(max_rel(y, yr, 16 * out1) < 2e-5, "%s geometry %zu: error %.2g", isa, t,
                          max_rel(y, yr, 16 * out1));
        }
        /* Backward on n samples and on one block (16), with a relu (y from
         * its forward pass) and without. */
        for (int relu = 0; relu < 2; relu++)
            for (int whole = 0; whole < 2; whole++) {
                size_t nb = whole ? n : 16;
                cn_act act = relu ? CN_ACT_RELU : CN_ACT_NONE;
                float *d[2][3]; /* dx, dw, db on 1 and 3 threads */
                b1->conv_fwd(b1, &g, m, x, nb, w, b, y, ws1, NULL, act);
                for (int r = 0; r < 2; r++) {
                    cn_backend *be = r ? b3 : b1;
                    d[r][0] = floats(nb * in1), d[r][1] = calloc(m * kk, 4), d[r][2] = calloc(m, 4);
                    be->conv_bwd(be, &g, m, x, y, dy, nb, w, d[r][1], d[r][2], d[r][0],
                                 r ? ws3 : ws1, act);
                }
                CHECK_MSG(memcmp(d[0][0], d[1][0], nb * in1 * 4) == 0 &&
                              memcmp(d[0][1], d[1][1], m * kk * 4) == 0 &&
                              memcmp(d[0][2], d[1][2], m * 4) == 0,
                          "%s geometry %zu, %zu samples, relu %d: 1 and 3 threads differ", isa, t,
                          nb, relu);
                float *dyr = floats(nb * out1), *dxr = floats(nb * in1);
                float *dwr = calloc(m * kk, 4), *dbr = calloc(m, 4);
                for (size_t i = 0; i < nb * out1; i++)
                    dyr[i] = relu && !(y[i] > 0) ? 0.0f : dy[i];
                cn_conv_ref_bwd(&g, m, x, dyr, nb, w, dwr, dbr, dxr);
                double ex = max_rel(d[0][0], dxr, nb * in1), ew = max_rel(d[0][1], dwr, m * kk);
                double eb = max_rel(d[0][2], dbr, m);
                CHECK_MSG(ex < 2e-5 && ew < 2e-5 && eb < 2e-5,
                          "%s geometry %zu, %zu samples, relu %d: errors dx %.2g dw %.2g db %.2g",
                          isa, t, nb, relu, ex, ew, eb);
                for (int r = 0; r < 2; r++)
                    free(d[r][0]), free(d[r][1]), free(d[r][2]);
                free(dyr), free(dxr), free(dwr), free(dbr);
            }
        free(x), free(w), free(b), free(sc), free(dy), free(y), free(yr), free(y1), free(ws1),
            free(ws3);
    }
    cn_backend_destroy(b1);
    cn_backend_destroy(b3);
}
PER_ISA(conv_lanes_match_one_sample)

/* A convolution whose output is larger than a last-level cache stores it
 * past the caches (kernels/conv.c, STREAM_BYTES: 32 MB; 36 MB here): each
 * sample is what the sample alone gives (stored as usual), with a relu and
 * a folded batch normalisation and without, on 1 and 3 threads. */
static void conv_streamed_output_is_the_same(const char *isa)
{
    static const size_t geo[6] = {1, 64, 64, 3, 1, 1};
    cn_backend *b1, *b3;
    if (!one_and_three(isa, &b1, &b3))
        return;
    cn_rng rng;
    cn_rng_seed(&rng, 43);
    cn_win g = win_of(geo);
    size_t m = 32, n = 70, kk = g.c * g.kh * g.kw, in1 = g.c * g.h * g.w, out1 = m * g.oh * g.ow;
    float *x = normal(n * in1, 1, 0, &rng), *w = normal(m * kk, 1, 0, &rng);
    float *b = normal(m, 1, 0, &rng), *sc = normal(2 * m, 1, 0, &rng);
    /* (aligned as the library's memory is: only whole aligned vectors stream) */
    float *y = aligned_alloc(64, n * out1 * 4), *y1 = floats(out1);
    float *ws1 = floats(b1->conv_ws(b1, &g, m, n)), *ws3 = floats(b3->conv_ws(b3, &g, m, n));
    CHECK(x && w && b && sc && y && y1 && ws1 && ws3);
    for (int form = 0; form < 3; form++) {
        cn_act act = form ? CN_ACT_RELU : CN_ACT_NONE;
        float *scale = form == 2 ? sc : NULL, *shift = form == 2 ? sc + m : NULL;
        for (int r = 0; r < 2; r++) {
            cn_backend *be = r ? b3 : b1;
            be->conv_fwd_affine(be, &g, m, x, n, w, b, scale, shift, y, r ? ws3 : ws1, NULL, act);
            int same = 1;
            for (size_t s = 0; s < n && same; s += 23) {
                b1->conv_fwd_affine(b1, &g, m, x + s * in1, 1, w, b, scale, shift, y1, ws1, NULL,
                                    act);
                same = memcmp(y1, y + s * out1, out1 * 4) == 0;
                CHECK_MSG(same, "%s form %d, %d threads: sample %zu differs from it alone", isa,
                          form, r ? 3 : 1, s);
            }
        }
    }
    free(x), free(w), free(b), free(sc), free(y), free(y1), free(ws1), free(ws3);
    cn_backend_destroy(b1);
    cn_backend_destroy(b3);
}
PER_ISA(conv_streamed_output_is_the_same)

/* conv_fwd_affine (a batch normalisation folded into the convolution) is
 * conv_fwd, then bn_fwd's evaluation pass with scale and shift from
 * bn_affine, then the relu, bit for bit: on every path (direct, im2col,
 * strided, 1x1 in place), one sample split among threads and several. */
static void conv_affine_is_conv_then_bn(const char *isa)
{
    cn_backend *be = isa_backend(isa, 3);
    if (!be)
        return;
    cn_rng rng;
    cn_rng_seed(&rng, 21);
    for (size_t t = 0; t < N_SPLIT_GEOMS; t++)
        for (size_t n = 1; n <= 4; n += 3) {
            cn_win g = win_of(split_geoms[t]);
            size_t m = SPLIT_M, kk = g.c * g.kh * g.kw, hw = g.oh * g.ow, in = n * g.c * g.h * g.w;
            size_t out = n * m * hw;
            float *x = normal(in, 1, 0, &rng), *w = normal(m * kk, 1, 0, &rng);
            float *b = normal(m, 1, 0, &rng), *gam = normal(m, 1, 0, &rng);
            float *bet = normal(m, 1, 0, &rng), *mean = normal(m, 1, 0, &rng);
            float *var = normal(m, 1, 0, &rng), *sc = floats(2 * m), *y0 = floats(out);
            float *y1 = floats(out), *ws = floats(be->conv_ws(be, &g, m, n));
            double *scratch = calloc(CN_BN_SCRATCH(m), sizeof *scratch);
            for (size_t i = 0; i < m; i++)
                var[i] = 0.1f + var[i] * var[i];
            be->bn_affine(be, gam, bet, mean, var, 1e-5f, m, sc, sc + m);
            for (int act = 0; act < 2; act++) {
                be->conv_fwd(be, &g, m, x, n, w, b, y0, ws, NULL, CN_ACT_NONE);
                be->bn_fwd(be, y0, n, m, hw, gam, bet, mean, var, 0.1f, 1e-5f, 0, NULL, NULL,
                           scratch, y0, CN_ACT_NONE);
                if (act)
                    be->act_fwd(be, CN_ACT_RELU, 0, y0, y0, out);
                be->conv_fwd_affine(be, &g, m, x, n, w, b, sc, sc + m, y1, ws, NULL,
                                    act ? CN_ACT_RELU : CN_ACT_NONE);
                CHECK_MSG(memcmp(y0, y1, out * 4) == 0,
                          "%s geometry %zu, %zu samples, relu %d: folded differs", isa, t, n, act);
            }
            free(x), free(w), free(b), free(gam), free(bet), free(mean), free(var), free(sc);
            free(y0), free(y1), free(ws), free(scratch);
        }
    cn_backend_destroy(be);
}
PER_ISA(conv_affine_is_conv_then_bn)

/* conv_fwd_pool (a max pooling folded into the convolution: forward-only
 * networks) is conv_fwd_affine, then maxpool_fwd, bit for bit: on every path
 * (direct, im2col, strided, 1x1 in place, 7x7, Winograd with its transforms
 * kept or not, the lanes in the direct sum's order and in the GEMM's), one
 * sample split among threads, several samples, whole blocks of 16 and a
 * partial one; plain, with a relu, with a folded batch normalisation and a
 * relu; windows of 2 (stride 2), 3 (stride 3), 3 with stride 2 (windows
 * that overlap) and 2 with stride 1, over planes whose last row or column
 * no window covers. */
static void conv_pool_is_conv_then_pool(const char *isa)
{
    /* After split_geoms: LeNet's first layer (24 x 24 outputs, whose 2x2
     * windows AVX-512's direct sum pools as it stores two rows of sums at a
     * time), 3 channels to 24 x 24 with padding 1 (the same), 32 x 32 (two
     * rows in 4 vectors), 6 x 32 (rows that 3 vectors cut: pooled after). */
    static const size_t extra[][6] = {
        {1, 28, 28, 5, 1, 0}, {3, 24, 24, 3, 1, 1}, {1, 36, 36, 5, 1, 0}, {2, 10, 36, 5, 1, 0}};
    static const size_t n_extra = sizeof extra / sizeof extra[0];
    static const size_t pools[][2] = {{2, 2}, {3, 3}, {3, 2}, {2, 1}}; /* size, stride */
    cn_backend *be = isa_backend(isa, 3);
    if (!be)
        return;
    cn_rng rng;
    cn_rng_seed(&rng, 23);
    for (size_t t = 0; t < N_SPLIT_GEOMS + n_extra; t++)
        for (size_t ni = 0; ni < 3; ni++) {
            size_t n = ni == 0 ? 1 : 15 + ni; /* 1, 16 (one block among 3 threads), 17 */
            cn_win g = win_of(t < N_SPLIT_GEOMS ? split_geoms[t] : extra[t - N_SPLIT_GEOMS]);
            size_t m = t >= N_SPLIT_GEOMS ? 20 : SPLIT_M, kk = g.c * g.kh * g.kw, p = g.oh * g.ow;
            size_t in = n * g.c * g.h * g.w, out = n * m * p;
            float *x = normal(in, 1, 0, &rng), *w = normal(m * kk, 0.3, 0, &rng);
            float *b = normal(m, 1, 0, &rng), *sc = normal(2 * m, 1, 0, &rng);
            float *y = floats(out), *yp = floats(out), *yf = floats(out);
            size_t nws = be->conv_ws(be, &g, m, n) + be->conv_pool_ws(be, &g, m);
            size_t nkeep = be->conv_keep ? be->conv_keep(be, &g, m) : 0;
            float *ws = floats(nws), *keep = nkeep ? calloc(nkeep, sizeof(float)) : NULL;
            for (int form = 0; form < 3; form++) { /* plain, relu, folded batch norm, relu */
                cn_act act = form ? CN_ACT_RELU : CN_ACT_NONE;
                float *scale = form == 2 ? sc : NULL, *shift = form == 2 ? sc + m : NULL;
                be->conv_fwd_affine(be, &g, m, x, n, w, b, scale, shift, y, ws, NULL, act);
                for (size_t q = 0; q < sizeof pools / sizeof pools[0]; q++) {
                    size_t k = pools[q][0], st = pools[q][1];
                    cn_win pw = {
                        m, g.oh, g.ow, k, k, st, 0, (g.oh - k) / st + 1, (g.ow - k) / st + 1};
                    size_t pout = n * m * pw.oh * pw.ow;
                    be->maxpool_fwd(be, &pw, y, n, yp);
                    /* the kept transforms once a form */
                    for (int kept = 0; kept < 1 + (keep != NULL && q == 0); kept++) {
                        memset(yf, 0xff, pout * sizeof *yf); /* NaNs: every output written */
                        be->conv_fwd_pool(be, &g, m, x, n, w, b, scale, shift, &pw, yf, ws,
                                          kept ? keep : NULL, act);
                        CHECK_MSG(memcmp(yp, yf, pout * sizeof *yf) == 0,
                                  "%s geometry %zu, %zu samples, pool %zu/%zu, form %d, kept %d: "
                                  "pooled in the convolution differs",
                                  isa, t, n, k, st, form, kept);
                    }
                }
            }
            free(x), free(w), free(b), free(sc), free(y), free(yp), free(yf), free(ws), free(keep);
        }
    cn_backend_destroy(be);
}
PER_ISA(conv_pool_is_conv_then_pool)

/* Winograd's F(4x4, 3x3) and F(2x2, 5x5) (AVX-512: 3x3 convolutions with
 * stride 1 and enough channels, 5x5 ones on planes up to 8 x 8) against the
 * direct sum the backend uses when asked to be exact (cn_backend.exact, as
 * the gradient checks ask): both within the reference's tolerance, the
 * direct sum closer to it, and the two not the same bits (so the fast path
 * really ran).  Then a sample's outputs are the same bits whether it is
 * worked on alone or in a batch, at any place in it: each tile takes the
 * same instructions in whichever lane and unit of samples it lands.  The 5x5
 * shapes: LeNet's second layer; 33 channels (two vectors of them, the second
 * partial) on 8 x 8 outputs with padding 2; odd outputs (5 x 7: 3 tile rows,
 * a tile column past the plane); 6 x 6 from 6 x 6. */
static void conv_winograd_against_direct(const char *isa)
{
    cn_backend *be = isa_backend(isa, 2);
    if (!be)
        return;
    static const size_t wg[][7] = {
        /* c, h, w, k, stride, pad, filters */
        {24, 28, 28, 3, 1, 1, 24}, {48, 14, 14, 3, 1, 1, 25}, {32, 11, 9, 3, 1, 0, 26},
        {16, 8, 8, 3, 1, 2, 27},   {20, 12, 12, 5, 1, 0, 50}, {33, 8, 8, 5, 1, 2, 40},
        {48, 7, 9, 5, 1, 1, 56},   {40, 6, 6, 5, 1, 2, 64},
    };
    cn_rng rng;
    cn_rng_seed(&rng, 31);
    for (size_t t = 0; t < sizeof wg / sizeof wg[0]; t++) {
        cn_win g = win_of(wg[t]);
        size_t m = wg[t][6], n = 9, kk = g.c * g.kh * g.kw, in1 = g.c * g.h * g.w,
               out1 = m * g.oh * g.ow;
        float *x = normal(n * in1, 1, 0, &rng), *w = normal(m * kk, 0.2, 0, &rng);
        float *b = normal(m, 1, 0, &rng), *yr = floats(n * out1), *yw = floats(n * out1);
        float *yd = floats(n * out1), *y1 = floats(out1), *ws = floats(be->conv_ws(be, &g, m, n));
        cn_conv_ref_fwd(&g, m, x, n, w, b, yr);
        be->conv_fwd(be, &g, m, x, n, w, b, yw, ws, NULL, CN_ACT_NONE);
        be->exact = 1;
        be->conv_fwd(be, &g, m, x, n, w, b, yd, ws, NULL, CN_ACT_NONE);
        be->exact = 0;
        double ew = max_rel(yw, yr, n * out1), ed = max_rel(yd, yr, n * out1);
        CHECK_MSG(ew < 2e-5 && ed < 2e-5, "%s geometry %zu: errors %.2g (fast), %.2g (exact)", isa,
                  t, ew, ed);
        if (strcmp(isa, "avx512") == 0)
            CHECK_MSG(memcmp(yw, yd, n * out1 * 4) != 0 && ed < ew,
                      "%s geometry %zu: Winograd did not run (errors %.2g and %.2g)", isa, t, ew,
                      ed);
        for (size_t s = 0; s < n; s += 4) {
            be->conv_fwd(be, &g, m, x + s * in1, 1, w, b, y1, ws, NULL, CN_ACT_NONE);
            CHECK_MSG(memcmp(y1, yw + s * out1, out1 * 4) == 0,
                      "%s geometry %zu: sample %zu alone differs from it in the batch", isa, t, s);
        }
        free(x), free(w), free(b), free(yr), free(yw), free(yd), free(y1), free(ws);
    }
    cn_backend_destroy(be);
}
PER_ISA(conv_winograd_against_direct)

/* One image on a plane of 7 x 7 tiles or fewer, its transforms kept (a
 * forward-only network's pass over one image: on AVX-512 with vectors
 * along the filters, winograd1_avx512.c, threads taking rows of tiles) is
 * the same bits as the image in a batch (vectors along the tiles): plain,
 * with a relu, with a folded batch normalisation and a relu, and max-pooled
 * 2x2 within the tiles; on 1 and 3 threads.  Shapes: fashion-best's layers
 * (24 channels to 24 on 28 x 28, 24 and 48 to 48 on 14 x 14), 12 channels
 * (one partial group of 16), 33 (a group of one), 37, 30 and 20 filters
 * (partial vectors), 64 (two groups of filter vectors), padding 0 and 2,
 * planes 11 x 13, 13 x 14 and 23 x 25 (6 x 7 tiles); 8 x 8 and 5 x 7 (2 x 2
 * tiles, which the batch's kernels take four images to a vector).  Where
 * those kernels run, the transforms they keep are poisoned with NaNs once
 * made: then the one image's plain outputs are NaN and the batch's are not
 * (they really ran, and the batch does not read them). */
static void conv_one_image_by_filters(const char *isa)
{
    static const size_t shapes[][7] = {
        /* c, h, w, k, stride, pad, filters */
        {24, 14, 14, 3, 1, 1, 48},
        {48, 14, 14, 3, 1, 1, 48},
        {12, 14, 14, 3, 1, 1, 40},
        {33, 14, 13, 3, 1, 1, 20},
        {20, 13, 15, 3, 1, 0, 37},
        {40, 12, 12, 3, 1, 2, 64},
        {24, 28, 28, 3, 1, 1, 24},
        {17, 25, 27, 3, 1, 0, 30},
        {48, 8, 8, 3, 1, 1, 40},
        {40, 5, 7, 3, 1, 1, 40},
        /* F(2x2, 5x5): LeNet's second layer (3 vectors of filters and 2
         * more), 33 channels to 40 filters with padding 2 (2 and 8), odd
         * outputs 5 x 7 (3 tile rows, pooled outside the tiles), 4 vectors */
        {20, 12, 12, 5, 1, 0, 50},
        {33, 8, 8, 5, 1, 2, 40},
        {64, 7, 9, 5, 1, 1, 48},
        {32, 6, 6, 5, 1, 2, 64},
    };
    cn_backend *bes[2];
    if (!one_and_three(isa, &bes[0], &bes[1]))
        return;
    cn_rng rng;
    cn_rng_seed(&rng, 37);
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        cn_win g = win_of(shapes[t]);
        size_t m = shapes[t][6], n = 3, kk = g.c * g.kh * g.kw, in1 = g.c * g.h * g.w;
        size_t out1 = m * g.oh * g.ow;
        cn_win pw = {m, g.oh, g.ow, 2, 2, 2, 0, g.oh / 2, g.ow / 2};
        float *x = normal(n * in1, 1, 0, &rng), *w = normal(m * kk, 0.3, 0, &rng);
        float *b = normal(m, 1, 0, &rng), *sc = normal(2 * m, 1, 0, &rng);
        float *yb = floats(n * out1), *y1 = floats(out1);
        for (int bi = 0; bi < 2; bi++) {
            cn_backend *be = bes[bi];
            size_t nws = be->conv_ws(be, &g, m, n) + be->conv_pool_ws(be, &g, m);
            size_t nkeep = be->conv_keep ? be->conv_keep(be, &g, m) : 0;
            float *ws = floats(nws), *keep = nkeep ? calloc(nkeep, sizeof(float)) : NULL;
            /* the part of keep past the transforms along the tiles (16 floats
             * of head, then 36 m c): along the filters, all of them rounded
             * up to whole vectors (3x3), or those of whole vectors (5x5,
             * the rest taking the tiles' way) */
            size_t tail = nkeep > 16 + 36 * m * g.c ? nkeep - 16 - 36 * m * g.c : 0;
            size_t mf = g.kh == 5 ? m / 16 * 16 : m; /* filters along the filters */
            if (strcmp(isa, "avx512") == 0)
                CHECK_MSG(tail == 36 * g.c * (g.kh == 5 ? mf : (m + 15) / 16 * 16),
                          "%s geometry %zu: keeps %zu floats, not both transforms", isa, t, nkeep);
            for (int form = 0; form < 4; form++) { /* plain, relu, batch norm + relu, pooled */
                cn_act act = form ? CN_ACT_RELU : CN_ACT_NONE;
                float *scale = form >= 2 ? sc : NULL, *shift = form >= 2 ? sc + m : NULL;
                size_t o1 = form == 3 ? m * pw.oh * pw.ow : out1;
                if (form == 3)
                    be->conv_fwd_pool(be, &g, m, x, n, w, b, scale, shift, &pw, yb, ws, NULL, act);
                else
                    be->conv_fwd_affine(be, &g, m, x, n, w, b, scale, shift, yb, ws, NULL, act);
                if (keep)
                    keep[0] = 0.0f; /* the weights changed: made again */
                for (size_t s = 0; s < n; s++) {
                    memset(y1, 0xff, o1 * sizeof *y1); /* NaNs: every output written */
                    if (form == 3)
                        be->conv_fwd_pool(be, &g, m, x + s * in1, 1, w, b, scale, shift, &pw, y1,
                                          ws, keep, act);
                    else
                        be->conv_fwd_affine(be, &g, m, x + s * in1, 1, w, b, scale, shift, y1, ws,
                                            keep, act);
                    CHECK_MSG(memcmp(y1, yb + s * o1, o1 * sizeof *y1) == 0,
                              "%s geometry %zu, %d thread(s), form %d: image %zu alone differs "
                              "from it in the batch",
                              isa, t, bi ? 3 : 1, form, s);
                }
                /* (a relu would take the NaNs to 0; 5x5 layers go this way
                 * on one thread only) */
                if (!tail || form != 0 || (g.kh == 5 && bi))
                    continue;
                for (size_t i = nkeep - tail; i < nkeep; i++)
                    keep[i] = NAN;
                be->conv_fwd_affine(be, &g, m, x, 1, w, b, scale, shift, y1, ws, keep, act);
                size_t nan = 0, p1 = g.oh * g.ow;
                for (size_t i = 0; i < out1; i++)
                    nan += isnan(y1[i]) == (i < mf * p1); /* the filters along the filters */
                CHECK_MSG(nan == out1,
                          "%s geometry %zu: %zu of %zu outputs as expected (NaN from filters "
                          "along the filters, else not) with those transforms poisoned",
                          isa, t, nan, out1);
                be->conv_fwd_affine(be, &g, m, x, n, w, b, scale, shift, yb, ws, keep, act);
                nan = 0;
                for (size_t i = 0; i < n * out1; i++)
                    nan += isnan(yb[i]);
                CHECK_MSG(nan == 0, "%s geometry %zu: the batch read them (%zu NaN)", isa, t, nan);
            }
            free(ws), free(keep);
        }
        free(x), free(w), free(b), free(sc), free(yb), free(y1);
    }
    cn_backend_destroy(bes[0]);
    cn_backend_destroy(bes[1]);
}
PER_ISA(conv_one_image_by_filters)

/* ------------------------------------------------------------- pooling */

/* A pooling's windows from {k, stride, h, w, c, n} (no padding). */
static cn_win pool_win_of(const size_t *p)
{
    cn_win g = {p[4], p[2], p[3], p[0], p[0], p[1], 0, 0, 0};
    g.oh = (g.h - g.kh) / g.stride + 1;
    g.ow = (g.w - g.kw) / g.stride + 1;
    return g;
}

/* Max pooling: the maximum of each window exactly, and backward's gradient
 * at the window's first maximum, with ties (as after relu) and rows wide
 * enough to cross the 16 lanes of AVX-512 (ow = 12, 17, 25, 33) with a tail. */
static void maxpool_matches_naive(const char *isa)
{
    cn_backend *be = isa_backend(isa, 2);
    if (!be)
        return;
    cn_rng rng;
    cn_rng_seed(&rng, 5);
    static const size_t pg[][6] = {
        /* k, stride, h, w, c, n */
        {2, 2, 8, 8, 3, 2},  {3, 2, 7, 9, 3, 2},  {2, 1, 5, 4, 3, 2},   {3, 3, 9, 9, 3, 2},
        {1, 1, 3, 3, 3, 2},  {2, 2, 7, 9, 3, 2},  {2, 2, 5, 4, 3, 2},   {2, 2, 6, 6, 3, 2},
        {2, 2, 4, 66, 1, 1}, {2, 2, 3, 35, 2, 3}, {2, 2, 5, 67, 1, 2},  {3, 2, 7, 37, 2, 1},
        {2, 2, 2, 2, 1, 1},  {2, 2, 9, 34, 5, 3}, {2, 2, 3, 50, 2, 2},  {2, 2, 4, 24, 1, 2},
        {2, 3, 8, 9, 2, 2},  {1, 2, 5, 6, 2, 1},  {3, 4, 11, 10, 1, 2}, {3, 3, 3, 3, 1, 1},
    };
    for (size_t t = 0; t < sizeof pg / sizeof pg[0]; t++) {
        cn_win g = pool_win_of(pg[t]);
        size_t n = pg[t][5], in = n * g.c * g.h * g.w, out = n * g.c * g.oh * g.ow;
        float *x = normal(in, 1, 0, &rng), *dy = normal(out, 1, 0, &rng);
        float *y = floats(out), *dx = floats(in);
        /* Every other geometry gets ties: values rounded to 0, 1 or 2 (as
         * after relu, where whole windows are 0). */
        for (size_t i = 0; t % 2 && i < in; i++)
            x[i] = x[i] < 0 ? 0.0f : x[i] < 1 ? 1.0f : 2.0f;
        /* dx is overwritten, not added to. */
        for (size_t i = 0; i < in; i++)
            dx[i] = NAN;
        be->maxpool_fwd(be, &g, x, n, y);
        be->maxpool_bwd(be, &g, x, dy, n, dx, CN_ACT_NONE);
        double *want = doubles(in), *mag = doubles(in), *bound = doubles(in);
        size_t *cnt = calloc(in, sizeof *cnt);
        for (size_t pl = 0; pl < n * g.c; pl++)
            for (size_t i = 0; i < g.oh; i++)
                for (size_t j = 0; j < g.ow; j++) {
                    float best = -INFINITY;
                    size_t arg = 0;
                    for (size_t a = 0; a < g.kh; a++)
                        for (size_t b = 0; b < g.kw; b++) {
                            size_t idx =
                                pl * g.h * g.w + (i * g.stride + a) * g.w + j * g.stride + b;
                            if (x[idx] > best) {
                                best = x[idx];
                                arg = idx;
                            }
                        }
                    size_t o = pl * g.oh * g.ow + i * g.ow + j;
                    CHECK_MSG(y[o] == best, "%s maxpool geometry %zu: y[%zu] = %g, max %g", isa, t,
                              o, y[o], best);
                    want[arg] += dy[o];
                    mag[arg] += fabs(dy[o]);
                    cnt[arg]++;
                }
        /* Where overlapping windows share a maximum, a float sum of their
         * gradients (exact where there is one): within (terms) u of their
         * magnitudes. */
        for (size_t i = 0; i < in; i++)
            bound[i] = cnt[i] > 1 ? (double)cnt[i] * U * mag[i] : 0;
        char what[64];
        snprintf(what, sizeof what, "maxpool backward, geometry %zu", t);
        CHECK(within(dx, want, bound, in, what, isa));
        /* Windows apart (the backend's CN_BWD_POOL): written over x, the
         * same bits; the inputs between windows 0. */
        if (g.stride >= g.kh && g.stride >= g.kw && be->bwd_in_place & CN_BWD_POOL) {
            float *over = copy_of(x, in);
            be->maxpool_bwd(be, &g, over, dy, n, over, CN_ACT_NONE);
            CHECK_MSG(memcmp(over, dx, in * sizeof *dx) == 0,
                      "%s maxpool geometry %zu: backward over its input differs", isa, t);
            free(over);
        }
        /* With a relu's gradient (CN_BWD_POOL): x made a relu's output (the
         * geometries with ties already are: whole windows of 0), the
         * gradient of a window whose maximum is 0 dropped; apart and, for
         * windows apart, over x. */
        if (be->bwd_in_place & CN_BWD_POOL) {
            float *xr = copy_of(x, in), *dr = floats(in), *wr = floats(in);
            for (size_t i = 0; i < in; i++)
                xr[i] = xr[i] > 0 ? xr[i] : 0.0f;
            be->maxpool_bwd(be, &g, xr, dy, n, dr, CN_ACT_NONE);
            memcpy(wr, dr, in * sizeof *wr);
            /* the reference: no gradient where the relu's output is 0 */
            for (size_t i = 0; i < in; i++)
                wr[i] = xr[i] > 0 ? wr[i] : 0.0f;
            be->maxpool_bwd(be, &g, xr, dy, n, dr, CN_ACT_RELU);
            CHECK_MSG(memcmp(dr, wr, in * sizeof *dr) == 0,
                      "%s maxpool geometry %zu: backward with the relu's gradient differs", isa, t);
            if (g.stride >= g.kh && g.stride >= g.kw) {
                be->maxpool_bwd(be, &g, xr, dy, n, xr, CN_ACT_RELU);
                CHECK_MSG(memcmp(xr, wr, in * sizeof *xr) == 0,
                          "%s maxpool geometry %zu: with the relu, over its input, differs", isa,
                          t);
            }
            free(xr), free(dr), free(wr);
        }
        free(want), free(mag), free(bound), free(cnt), free(x), free(y), free(dy), free(dx);
    }
    cn_backend_destroy(be);
}
PER_ISA(maxpool_matches_naive)

/* Max pooling that notes each window's winner (a training pass's, windows
 * apart): the same outputs as maxpool_fwd, bit for bit, and from the
 * switches alone the same input gradient as maxpool_bwd reading x, with and
 * without a relu's gradient (x then a relu's output), every input written;
 * ties (values of 0, 1 and 2, and zeros of both signs) in every other
 * geometry; 2x2 windows across AVX-512's 16 lanes with tails, odd rows and
 * columns no window covers, gaps between windows (stride 3 and 4), 1x1,
 * 3x3 and 11x11 (121 inputs) windows, 70 planes split between threads. */
static void maxpool_switches_match(const char *isa)
{
    cn_backend *be = isa_backend(isa, 2);
    if (!be)
        return;
    CHECK(be->maxpool_fwd_sw && be->maxpool_bwd_sw);
    cn_rng rng;
    cn_rng_seed(&rng, 15);
    static const size_t pg[][6] = {
        /* k, stride, h, w, c, n */
        {2, 2, 8, 8, 3, 2},   {2, 2, 7, 9, 3, 2},  {3, 3, 9, 9, 3, 2},     {2, 2, 4, 66, 1, 1},
        {2, 2, 3, 35, 2, 3},  {2, 2, 5, 67, 1, 2}, {2, 3, 8, 9, 2, 2},     {1, 2, 5, 6, 2, 1},
        {3, 4, 11, 10, 1, 2}, {2, 2, 9, 34, 5, 3}, {11, 11, 23, 12, 2, 2}, {2, 2, 6, 6, 35, 2},
    };
    for (size_t t = 0; t < sizeof pg / sizeof pg[0]; t++) {
        cn_win g = pool_win_of(pg[t]);
        size_t n = pg[t][5], in = n * g.c * g.h * g.w, out = n * g.c * g.oh * g.ow;
        float *x = normal(in, 1, 0, &rng), *dy = normal(out, 1, 0, &rng);
        float *y = floats(out), *ys = floats(out), *dx = floats(in), *ds = floats(in);
        uint8_t *sw = malloc(out);
        for (size_t i = 0; t % 2 && i < in; i++)
            x[i] = x[i] < -1 ? -0.0f : x[i] < 0 ? 0.0f : x[i] < 1 ? 1.0f : 2.0f;
        for (int relu = 0; relu < 2; relu++) {
            for (size_t i = 0; relu && i < in; i++)
                x[i] = x[i] > 0 ? x[i] : 0.0f;
            cn_act act = relu ? CN_ACT_RELU : CN_ACT_NONE;
            for (size_t i = 0; i < in; i++)
                dx[i] = ds[i] = NAN;
            be->maxpool_fwd(be, &g, x, n, y);
            be->maxpool_bwd(be, &g, x, dy, n, dx, act);
            be->maxpool_fwd_sw(be, &g, x, n, ys, sw);
            be->maxpool_bwd_sw(be, &g, sw, dy, n, ds, act);
            CHECK_MSG(memcmp(y, ys, out * sizeof *y) == 0,
                      "%s geometry %zu, relu %d: the outputs differ", isa, t, relu);
            CHECK_MSG(memcmp(dx, ds, in * sizeof *dx) == 0,
                      "%s geometry %zu, relu %d: the input gradients differ", isa, t, relu);
            int valid = 1;
            for (size_t o = 0; o < out; o++)
                valid &= (sw[o] & (CN_SW_ON - 1u)) < g.kh * g.kw &&
                         !(sw[o] & CN_SW_ON) == !(ys[o] > 0.0f);
            CHECK_MSG(valid, "%s geometry %zu, relu %d: a switch out of its window", isa, t, relu);
        }
        free(x), free(dy), free(y), free(ys), free(dx), free(ds), free(sw);
    }
    cn_backend_destroy(be);
}
PER_ISA(maxpool_switches_match)

/* ----------------------------------------------------------- activations */

/* Value counts: one, odd tails of every vector width, and counts above the
 * thresholds where the element-wise kernels split the work between threads
 * (4 096 for the ones with exp or tanh, 32 768 for the others). */
static const size_t act_counts[] = {1, 7, 16, 17, 33, 100, 5000, 40000};

static double sigmoid_d(double x) { return 1 / (1 + exp(-x)); }
#define GELU_K 0.7978845608028654
#define GELU_A 0.044715

/* Reference f(x) of activation a, and a bound on a float32 kernel's error:
 * relu, leaky and none are exact (one float product at most); sigmoid,
 * tanh and silu are a few operations on a libm function (expf, tanhf: within
 * 2 ulp) and end within 4 u of the result, so 8 u |y| with a margin; GELU's
 * tanh argument k (x + a x^3) rounds at 4 u of |x| + a |x|^3, which the tanh
 * passes on times 1 - t^2 <= 1 and the product x (1 + t) / 2 times |x|, and
 * 1 + t loses all its relative precision as t -> -1 (t within 2 u), so
 * 16 u (|y| + |x| (1 + |x|^3 / 10)) (a / k rounded up to 1/10). */
static double act_ref(cn_act a, double param, double x, double *bound)
{
    double y = x, t;
    *bound = 0;
    switch (a) {
    case CN_ACT_RELU: y = x > 0 ? x : 0; break;
    case CN_ACT_LEAKY: y = x > 0 ? x : (double)(float)(param * x); break;
    case CN_ACT_SIGMOID:
        y = sigmoid_d(x);
        *bound = 8 * U * fabs(y) + FLT_MIN;
        break;
    case CN_ACT_TANH:
        y = tanh(x);
        *bound = 8 * U * fabs(y) + FLT_MIN;
        break;
    case CN_ACT_GELU:
        t = tanh(GELU_K * (x + GELU_A * x * x * x));
        y = 0.5 * x * (1 + t);
        *bound =
            8 * U * (fabs(y) + fabs(x) * (1 + (1 - t * t) * (fabs(x) + fabs(x * x * x) / 10))) +
            FLT_MIN * (1 + fabs(x));
        break;
    case CN_ACT_SILU:
        y = x * sigmoid_d(x);
        *bound = 8 * U * fabs(y) + FLT_MIN * (1 + fabs(x));
        break;
    case CN_ACT_NONE:
    case CN_ACT_COUNT: break;
    }
    return y;
}

/* Reference dx = dy f'(.) from the kernel's own y (or x, for GELU and SiLU),
 * and its bound: exact for relu, leaky and none (a select, or one product);
 * sigmoid's y (1 - y) and tanh's 1 - y^2 are three roundings of terms of at
 * most |dy| (1 + y^2): 8 u of that; SiLU's s (1 + x (1 - s)) has 1 - s, with s
 * within 4 u, times x: 16 u |dy| (1 + |x|); GELU's derivative has its tanh
 * argument's error (4 u (|x| + a|x|^3)) times x k (1 + 3 a x^2) (1 - t^2), and
 * 1 - t^2 near 0: 64 u |dy| (1 + x^2)^2 covers both. */
static double dact_ref(cn_act a, double param, double x, double y, double dy, double *bound)
{
    double d = 1, t, s;
    *bound = 0;
    switch (a) {
    case CN_ACT_RELU: d = y > 0; break;
    case CN_ACT_LEAKY: return y > 0 ? dy : (double)(float)(param * dy);
    case CN_ACT_SIGMOID:
        d = y * (1 - y);
        *bound = 8 * U * fabs(dy) * (1 + y * y) + FLT_MIN * fabs(dy);
        break;
    case CN_ACT_TANH:
        d = 1 - y * y;
        *bound = 8 * U * fabs(dy) * (1 + y * y);
        break;
    case CN_ACT_GELU:
        t = tanh(GELU_K * (x + GELU_A * x * x * x));
        d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_K * (1 + 3 * GELU_A * x * x);
        *bound = 8 * U * fabs(dy) * (1 + fabs(x) * (1 + x * x)) *
                     (1 + (1 - t * t) * (fabs(x) + fabs(x * x * x) / 10)) +
                 FLT_MIN * fabs(dy);
        break;
    case CN_ACT_SILU:
        s = sigmoid_d(x);
        d = s * (1 + x * (1 - s));
        *bound = 16 * U * fabs(dy) * (1 + fabs(x)) + FLT_MIN * fabs(dy) * (1 + fabs(x));
        break;
    case CN_ACT_NONE:
    case CN_ACT_COUNT: break;
    }
    return dy * d;
}

static const char *const act_names[CN_ACT_COUNT] = {"none",  "relu", "sigmoid", "tanh",
                                                    "leaky", "gelu", "silu"};

/* Every activation, forward (out of place and in place) and backward. */
static void activations_match_naive(const char *isa)
{
    cn_backend *be = isa_backend(isa, 2);
    if (!be)
        return;
    cn_rng rng;
    cn_rng_seed(&rng, 13);
    /* Special values first: zeros of both signs, saturation, overflow of
     * e^-x. */
    static const float special[] = {0.0f, -0.0f, 20.0f, -20.0f, 90.0f, -90.0f, 1e-30f, -3.0f};
    size_t n_special = sizeof special / sizeof special[0];
    for (int a = 0; a < CN_ACT_COUNT; a++)
        for (size_t q = 0; q < sizeof act_counts / sizeof act_counts[0]; q++) {
            size_t n = act_counts[q];
            float param = a == CN_ACT_LEAKY ? 0.1f : 0.0f;
            float *x = normal(n, 3, 0, &rng), *dy = normal(n, 1, 0, &rng);
            for (size_t i = 0; i < n && i < n_special && n > 1; i++)
                x[i] = special[i];
            float *y = floats(n), *dx = floats(n);
            double *want = doubles(n), *bound = doubles(n);
            be->act_fwd(be, (cn_act)a, param, x, y, n);
            for (size_t i = 0; i < n; i++)
                want[i] = act_ref((cn_act)a, param, x[i], &bound[i]);
            char what[64];
            snprintf(what, sizeof what, "%s forward, %zu values", act_names[a], n);
            CHECK(within(y, want, bound, n, what, isa));
            /* In place, the same values. */
            float *z = copy_of(x, n);
            be->act_fwd(be, (cn_act)a, param, z, z, n);
            CHECK_MSG(memcmp(z, y, n * sizeof *y) == 0, "%s: %s in place differs", isa, what);
            free(z);
            be->act_bwd(be, (cn_act)a, param, cn_act_needs_input((cn_act)a) ? x : NULL, y, dy, dx,
                        n);
            for (size_t i = 0; i < n; i++)
                want[i] = dact_ref((cn_act)a, param, x[i], y[i], dy[i], &bound[i]);
            snprintf(what, sizeof what, "%s backward, %zu values", act_names[a], n);
            CHECK(within(dx, want, bound, n, what, isa));
            free(x), free(dy), free(y), free(dx), free(want), free(bound);
        }
    report(isa);
    cn_backend_destroy(be);
}
PER_ISA(activations_match_naive)

/* ------------------------------------------------------------------ bias */

/* (n, m, p) shapes: a fully connected layer's (p = 1), odd maps, one above
 * the threads' threshold of 32 768 values. */
static const size_t bias_shapes[][3] = {{1, 1, 1},   {2, 3, 5},  {3, 17, 33},
                                        {64, 10, 1}, {1, 70, 1}, {4, 20, 576}};

static void bias_matches_naive(const char *isa)
{
    cn_backend *be = isa_backend(isa, 2);
    if (!be)
        return;
    cn_rng rng;
    cn_rng_seed(&rng, 17);
    for (size_t t = 0; t < sizeof bias_shapes / sizeof bias_shapes[0]; t++) {
        size_t n = bias_shapes[t][0], m = bias_shapes[t][1], p = bias_shapes[t][2];
        size_t count = n * m * p;
        float *y = normal(count, 1, 0, &rng), *bias = normal(m, 1, 0, &rng);
        float *db = normal(m, 1, 0, &rng);
        double *want = doubles(count), *bound = doubles(count);
        /* add_bias: one float addition each, as here: equal. */
        for (size_t i = 0; i < count; i++)
            want[i] = (float)(y[i] + bias[i / p % m]);
        be->add_bias(be, y, n, m, p, bias);
        char what[64];
        snprintf(what, sizeof what, "add_bias (%zu, %zu, %zu)", n, m, p);
        CHECK(within(y, want, bound, count, what, isa));
        /* bias_grad adds n p values to db: any order of summation is within
         * (n p) u of the sum of their magnitudes. */
        double *dwant = doubles(m), *dbound = doubles(m);
        for (size_t c = 0; c < m; c++) {
            double s = db[c], mag = fabs(db[c]);
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < p; j++) {
                    s += y[(i * m + c) * p + j];
                    mag += fabs(y[(i * m + c) * p + j]);
                }
            dwant[c] = s;
            dbound[c] = (double)(n * p + 1) * U * mag;
        }
        be->bias_grad(be, y, n, m, p, db);
        snprintf(what, sizeof what, "bias_grad (%zu, %zu, %zu)", n, m, p);
        CHECK(within(db, dwant, dbound, m, what, isa));
        free(y), free(bias), free(db), free(want), free(bound), free(dwant), free(dbound);
    }
    report(isa);
    cn_backend_destroy(be);
}
PER_ISA(bias_matches_naive)

/* --------------------------------------------------- batch normalisation */

/* (n, c, hw): one sample; maps with tails of the 16 partial sums; features
 * (hw = 1, after a fully connected layer), below and above the 64 features
 * where that path splits between threads; a batch of one feature value
 * (variance 0); more samples than the 16 chunks that the sums are cut into,
 * and enough values to be split between threads. */
static const size_t bn_shapes[][3] = {{1, 3, 7},  {2, 3, 17}, {4, 3, 259}, {5, 2, 33},  {3, 5, 1},
                                      {7, 70, 1}, {1, 4, 1},  {16, 9, 1},  {37, 3, 300}};

typedef struct bn_io {
    float *x, *gamma, *beta, *rm, *rv, *mean, *invstd, *y, *dy, *dgamma, *dbeta, *dx;
    double *scratch;
} bn_io;

static void bn_alloc(bn_io *b, size_t n, size_t c, size_t hw, cn_rng *rng)
{
    size_t count = n * c * hw;
    /* Data 2 +- 1.5 (plus 0.5 per channel) around a running mean near 0: the
     * kernel's one-pass sums around the running mean must stand a shift of
     * a few standard deviations. */
    b->x = normal(count, 1.5, 2, rng);
    for (size_t i = 0; i < count; i++)
        b->x[i] += 0.5f * (float)(i / hw % c);
    b->gamma = normal(c, 0.3, 1, rng), b->beta = normal(c, 0.5, 0, rng);
    b->rm = normal(c, 0.1, 0, rng), b->rv = normal(c, 0.2, 1, rng);
    b->mean = floats(c), b->invstd = floats(c), b->y = floats(count);
    b->dy = normal(count, 1, 0, rng), b->dgamma = normal(c, 1, 0, rng);
    b->dbeta = normal(c, 1, 0, rng), b->dx = floats(count);
    b->scratch = doubles(CN_BN_SCRATCH(c));
}

static void bn_free(bn_io *b)
{
    free(b->x), free(b->gamma), free(b->beta), free(b->rm), free(b->rv), free(b->mean);
    free(b->invstd), free(b->y), free(b->dy), free(b->dgamma), free(b->dbeta), free(b->dx);
    free(b->scratch);
}

/* Tolerance of batch normalisation, on each tensor's scale.  The kernel
 * sums x - k (k the running mean, here about 2 standard deviations from the
 * mean) in float, in 16 lanes of up to 260 values, and rounds the mean and
 * 1/std to float.  The largest error is the rounding of x - mean (u |x|,
 * |x| up to 8 here) times 1/std, passed on to y, dx and dgamma: measured
 * below 1.2e-6 of the scale where 1/std is near 1.  BN_TOL leaves a margin of
 * 15 over that; a missing term or a wrong channel gives 1e-2 to 1.  The
 * tolerance grows with 1/std beyond 10: a batch of one value per channel
 * has variance 0 and 1/std = 1/sqrt(eps) = 316 (measured 1.7e-5; allowed
 * 6.3e-4). */
#define BN_TOL 2e-5

static void bn_matches_naive(const char *isa)
{
    cn_backend *be = isa_backend(isa, 2);
    if (!be)
        return;
    cn_rng rng;
    cn_rng_seed(&rng, 19);
    const float momentum = 0.1f, eps = 1e-5f;
    double worst = 0;
    for (size_t t = 0; t < sizeof bn_shapes / sizeof bn_shapes[0]; t++) {
        size_t n = bn_shapes[t][0], c = bn_shapes[t][1], hw = bn_shapes[t][2];
        size_t count = n * c * hw;
        double per = (double)(n * hw);
        bn_io b;
        bn_alloc(&b, n, c, hw, &rng);
        float *rm0 = copy_of(b.rm, c), *rv0 = copy_of(b.rv, c);
        float *dg0 = copy_of(b.dgamma, c), *db0 = copy_of(b.dbeta, c);
        double *mean = doubles(c), *invstd = doubles(c), *rm = doubles(c), *rv = doubles(c);
        double *y = doubles(count), *dx = doubles(count), *dg = doubles(c), *dbt = doubles(c);
        for (size_t ch = 0; ch < c; ch++) {
            double s = 0, ss = 0;
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < hw; j++)
                    s += b.x[(i * c + ch) * hw + j];
            mean[ch] = s / per;
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < hw; j++) {
                    double v = b.x[(i * c + ch) * hw + j] - mean[ch];
                    ss += v * v;
                }
            double var = ss / per;
            invstd[ch] = 1 / sqrt(var + eps);
            rm[ch] = (1 - momentum) * (double)rm0[ch] + momentum * mean[ch];
            rv[ch] = (1 - momentum) * (double)rv0[ch] +
                     momentum * (per > 1 ? var * per / (per - 1) : var);
            double s1 = 0, s2 = 0;
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < hw; j++) {
                    size_t at = (i * c + ch) * hw + j;
                    double xhat = (b.x[at] - mean[ch]) * invstd[ch];
                    y[at] = b.gamma[ch] * xhat + b.beta[ch];
                    s1 += b.dy[at];
                    s2 += b.dy[at] * xhat;
                }
            dbt[ch] = db0[ch] + s1;
            dg[ch] = dg0[ch] + s2;
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < hw; j++) {
                    size_t at = (i * c + ch) * hw + j;
                    double xhat = (b.x[at] - mean[ch]) * invstd[ch];
                    dx[at] = b.gamma[ch] * invstd[ch] * (b.dy[at] - s1 / per - xhat * s2 / per);
                }
        }
        be->bn_fwd(be, b.x, n, c, hw, b.gamma, b.beta, b.rm, b.rv, momentum, eps, 1, b.mean,
                   b.invstd, b.scratch, b.y, CN_ACT_NONE);
        double e[7] = {max_rel_d(b.y, y, count), max_rel_d(b.mean, mean, c),
                       max_rel_d(b.invstd, invstd, c), max_rel_d(b.rm, rm, c),
                       max_rel_d(b.rv, rv, c)};
        be->bn_bwd(be, b.x, NULL, b.dy, n, c, hw, b.gamma, b.mean, b.invstd, b.scratch, b.dgamma,
                   b.dbeta, b.dx, CN_ACT_NONE);
        e[5] = fmax(max_rel_d(b.dx, dx, count), max_rel_d(b.dgamma, dg, c));
        e[6] = max_rel_d(b.dbeta, dbt, c);
        const char *names[7] = {"y",           "mean",       "1/std", "running mean",
                                "running var", "dx, dgamma", "dbeta"};
        double tol = BN_TOL;
        for (size_t ch = 0; ch < c; ch++)
            tol = fmax(tol, BN_TOL * invstd[ch] / 10);
        for (int k = 0; k < 7; k++) {
            CHECK_MSG(e[k] < tol, "%s bn (%zu, %zu, %zu): %s error %.3g (tolerance %.3g)", isa, n,
                      c, hw, names[k], e[k], tol);
            worst = fmax(worst, e[k] / tol);
        }
        /* Without dx: the same parameter gradients (added once more). */
        float *dg1 = copy_of(b.dgamma, c), *db1 = copy_of(b.dbeta, c);
        be->bn_bwd(be, b.x, NULL, b.dy, n, c, hw, b.gamma, b.mean, b.invstd, b.scratch, b.dgamma,
                   b.dbeta, NULL, CN_ACT_NONE);
        for (size_t ch = 0; ch < c; ch++) {
            dg[ch] = dg1[ch] + (dg1[ch] - dg0[ch]);
            dbt[ch] = db1[ch] + (db1[ch] - db0[ch]);
        }
        CHECK_MSG(max_rel_d(b.dgamma, dg, c) < tol && max_rel_d(b.dbeta, dbt, c) < tol,
                  "%s bn (%zu, %zu, %zu): backward without dx differs", isa, n, c, hw);
        /* Evaluation: the running statistics, which stay as they are. */
        float *rm1 = copy_of(b.rm, c), *rv1 = copy_of(b.rv, c);
        be->bn_fwd(be, b.x, n, c, hw, b.gamma, b.beta, b.rm, b.rv, momentum, eps, 0, b.mean,
                   b.invstd, b.scratch, b.y, CN_ACT_NONE);
        for (size_t i = 0; i < count; i++) {
            size_t ch = i / hw % c;
            y[i] =
                b.gamma[ch] * (b.x[i] - (double)rm1[ch]) / sqrt((double)rv1[ch] + eps) + b.beta[ch];
        }
        CHECK_MSG(max_rel_d(b.y, y, count) < tol, "%s bn (%zu, %zu, %zu) evaluation: error %.3g",
                  isa, n, c, hw, max_rel_d(b.y, y, count));
        CHECK(memcmp(rm1, b.rm, c * 4) == 0 && memcmp(rv1, b.rv, c * 4) == 0);
        free(rm0), free(rv0), free(dg0), free(db0), free(mean), free(invstd), free(rm), free(rv);
        free(y), free(dx), free(dg), free(dbt), free(dg1), free(db1), free(rm1), free(rv1);
        bn_free(&b);
    }
    printf("    %s: worst error %.2g of its tolerance\n", isa, worst);
    cn_backend_destroy(be);
}
PER_ISA(bn_matches_naive)

/* Batch normalisation does not depend on the thread count, bit for bit. */
static void bn_thread_count_invariant(const char *isa)
{
    static const size_t shapes[][3] = {{8, 70, 1}, {6, 13, 37}, {40, 5, 211}};
    cn_backend *bes[2] = {isa_backend(isa, 1), NULL};
    if (!bes[0])
        return;
    bes[1] = isa_backend(isa, 3);
    CHECK(bes[1]);
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        size_t n = shapes[t][0], c = shapes[t][1], hw = shapes[t][2], count = n * c * hw;
        bn_io b[2];
        for (int r = 0; r < 2; r++) {
            cn_rng rng;
            cn_rng_seed(&rng, 23); /* the same data for both */
            bn_alloc(&b[r], n, c, hw, &rng);
            cn_backend *be = bes[r];
            be->bn_fwd(be, b[r].x, n, c, hw, b[r].gamma, b[r].beta, b[r].rm, b[r].rv, 0.1f, 1e-5f,
                       1, b[r].mean, b[r].invstd, b[r].scratch, b[r].y, CN_ACT_NONE);
            be->bn_bwd(be, b[r].x, NULL, b[r].dy, n, c, hw, b[r].gamma, b[r].mean, b[r].invstd,
                       b[r].scratch, b[r].dgamma, b[r].dbeta, b[r].dx, CN_ACT_NONE);
        }
        CHECK_MSG(memcmp(b[0].y, b[1].y, count * 4) == 0 &&
                      memcmp(b[0].dx, b[1].dx, count * 4) == 0 &&
                      memcmp(b[0].rv, b[1].rv, c * 4) == 0 &&
                      memcmp(b[0].dgamma, b[1].dgamma, c * 4) == 0 &&
                      memcmp(b[0].dbeta, b[1].dbeta, c * 4) == 0,
                  "%s bn (%zu, %zu, %zu): 1 and 3 threads differ", isa, n, c, hw);
        bn_free(&b[0]);
        bn_free(&b[1]);
    }
    cn_backend_destroy(bes[0]);
    cn_backend_destroy(bes[1]);
}
PER_ISA(bn_thread_count_invariant)

/* A relu fused into batch normalisation (bn_acts) gives the bits of the two
 * apart: forward, training and evaluation, then backward from the relu's
 * output and gradient; channels and features, threaded and not. */
static void bn_relu_is_bn_then_relu(const char *isa)
{
    static const size_t shapes[][3] = {{5, 3, 37}, {40, 5, 211}, {7, 70, 1}, {100, 400, 1}};
    cn_backend *be = isa_backend(isa, 2);
    if (!be)
        return;
    CHECK(be->bn_acts == 1u << CN_ACT_RELU);
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        size_t n = shapes[t][0], c = shapes[t][1], hw = shapes[t][2], count = n * c * hw;
        for (int train = 1; train >= 0; train--) {
            bn_io b[2];
            for (int r = 0; r < 2; r++) {
                cn_rng rng;
                cn_rng_seed(&rng, 29); /* the same data for both */
                bn_alloc(&b[r], n, c, hw, &rng);
                /* half the outputs below zero: gamma's sign mixed */
                for (size_t ch = 0; ch < c; ch++)
                    b[r].gamma[ch] *= ch % 2 ? -1.0f : 1.0f;
            }
            /* apart: bn, relu in place; relu's backward, then bn's */
            be->bn_fwd(be, b[0].x, n, c, hw, b[0].gamma, b[0].beta, b[0].rm, b[0].rv, 0.1f, 1e-5f,
                       train, b[0].mean, b[0].invstd, b[0].scratch, b[0].y, CN_ACT_NONE);
            be->act_fwd(be, CN_ACT_RELU, 0, b[0].y, b[0].y, count);
            float *dyr = floats(count);
            be->act_bwd(be, CN_ACT_RELU, 0, NULL, b[0].y, b[0].dy, dyr, count);
            /* fused */
            be->bn_fwd(be, b[1].x, n, c, hw, b[1].gamma, b[1].beta, b[1].rm, b[1].rv, 0.1f, 1e-5f,
                       train, b[1].mean, b[1].invstd, b[1].scratch, b[1].y, CN_ACT_RELU);
            CHECK_MSG(memcmp(b[0].y, b[1].y, count * 4) == 0 &&
                          memcmp(b[0].rm, b[1].rm, c * 4) == 0 &&
                          memcmp(b[0].rv, b[1].rv, c * 4) == 0,
                      "%s bn (%zu, %zu, %zu) train %d: forward with the relu differs", isa, n, c,
                      hw, train);
            size_t zeros = 0;
            for (size_t i = 0; i < count; i++)
                zeros += b[1].y[i] == 0.0f;
            CHECK(zeros > count / 8 && zeros < count - count / 8);
            if (train) {
                be->bn_bwd(be, b[0].x, NULL, dyr, n, c, hw, b[0].gamma, b[0].mean, b[0].invstd,
                           b[0].scratch, b[0].dgamma, b[0].dbeta, b[0].dx, CN_ACT_NONE);
                be->bn_bwd(be, b[1].x, b[1].y, b[1].dy, n, c, hw, b[1].gamma, b[1].mean,
                           b[1].invstd, b[1].scratch, b[1].dgamma, b[1].dbeta, b[1].dx,
                           CN_ACT_RELU);
                CHECK_MSG(memcmp(b[0].dx, b[1].dx, count * 4) == 0 &&
                              memcmp(b[0].dgamma, b[1].dgamma, c * 4) == 0 &&
                              memcmp(b[0].dbeta, b[1].dbeta, c * 4) == 0,
                          "%s bn (%zu, %zu, %zu): backward with the relu differs", isa, n, c, hw);
                /* In place (the backend's CN_BWD_BN), with the relu and
                 * without: dx written over dy, the same bits. */
                for (int relu = 0; relu < 2 && be->bwd_in_place & CN_BWD_BN; relu++) {
                    const float *dy = relu ? b[1].dy : dyr;
                    float *d = copy_of(dy, count), *dg = copy_of(b[1].dgamma, c);
                    float *db = copy_of(b[1].dbeta, c), *want = floats(count);
                    float *wg = copy_of(b[1].dgamma, c), *wb = copy_of(b[1].dbeta, c);
                    cn_act act = relu ? CN_ACT_RELU : CN_ACT_NONE;
                    be->bn_bwd(be, b[1].x, b[1].y, dy, n, c, hw, b[1].gamma, b[1].mean, b[1].invstd,
                               b[1].scratch, wg, wb, want, act);
                    be->bn_bwd(be, b[1].x, b[1].y, d, n, c, hw, b[1].gamma, b[1].mean, b[1].invstd,
                               b[1].scratch, dg, db, d, act);
                    CHECK_MSG(memcmp(d, want, count * 4) == 0 && memcmp(dg, wg, c * 4) == 0 &&
                                  memcmp(db, wb, c * 4) == 0,
                              "%s bn (%zu, %zu, %zu) relu %d: backward in place differs", isa, n, c,
                              hw, relu);
                    free(d), free(dg), free(db), free(want), free(wg), free(wb);
                }
            }
            free(dyr);
            bn_free(&b[0]);
            bn_free(&b[1]);
        }
    }
    cn_backend_destroy(be);
}
PER_ISA(bn_relu_is_bn_then_relu)

/* --------------------------------------------------------------- softmax */

/* Softmax of rows far from 0 (a shift of 100 per row: e^x alone would
 * overflow), and the loss gradient.  Each y is e^(x - max) (expf within 1
 * ulp of a rounded argument whose error u |x - max| it multiplies in), times
 * 1 / sum rounded to float (the sum in double): within (4 + |x - max|) u of
 * y; 8 + 2 |x - max| u leaves a margin of 2.  The gradient (y - onehot) / rows
 * is two roundings: 4 u (|y| + 1) / rows. */
static void softmax_matches_naive(const char *isa)
{
    cn_backend *be = isa_backend(isa, 2);
    if (!be)
        return;
    static const size_t shapes[][2] = {{1, 1},    {1, 10},  {3, 7}, {5, 17},
                                       {2, 1000}, {64, 10}, {3, 33}};
    cn_rng rng;
    cn_rng_seed(&rng, 29);
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        size_t rows = shapes[t][0], cols = shapes[t][1], count = rows * cols;
        float *x = normal(count, 3, 0, &rng), *y = floats(count), *dx = floats(count);
        int32_t *labels = malloc(rows * sizeof *labels);
        double *want = doubles(count), *bound = doubles(count);
        for (size_t r = 0; r < rows; r++) {
            labels[r] = (int32_t)(r == 0 ? cols - 1 : cn_rng_below(&rng, cols));
            float *row = x + r * cols;
            double mx = -INFINITY, sum = 0;
            for (size_t j = 0; j < cols; j++) {
                row[j] += 100.0f * (float)r;
                mx = fmax(mx, row[j]);
            }
            for (size_t j = 0; j < cols; j++)
                sum += exp(row[j] - mx);
            for (size_t j = 0; j < cols; j++) {
                want[r * cols + j] = exp(row[j] - mx) / sum;
                bound[r * cols + j] = (8 + 2 * fabs(row[j] - mx)) * U * want[r * cols + j];
            }
        }
        be->softmax(be, x, y, rows, cols);
        char what[64];
        snprintf(what, sizeof what, "softmax %zu x %zu", rows, cols);
        CHECK(within(y, want, bound, count, what, isa));
        /* The one-hot target, then a smoothed one: q = (1 - s) onehot + s / cols. */
        for (int sm = 0; sm < 2; sm++) {
            double s = sm ? 0.1 : 0.0;
            be->softmax_nll_bwd(be, y, labels, rows, cols, (float)s, dx);
            for (size_t i = 0; i < count; i++) {
                double q = ((size_t)labels[i / cols] == i % cols) * (1 - s) + s / (double)cols;
                want[i] = ((double)y[i] - q) / (double)rows;
                bound[i] = 6 * U * (fabs(y[i]) + 1) / (double)rows;
            }
            snprintf(what, sizeof what, "softmax_nll_bwd %zu x %zu, smoothing %g", rows, cols, s);
            CHECK(within(dx, want, bound, count, what, isa));
        }
        free(x), free(y), free(dx), free(labels), free(want), free(bound);
    }
    report(isa);
    cn_backend_destroy(be);
}
PER_ISA(softmax_matches_naive)

/* ------------------------------------------------------------ optimizers */

/* Parameter counts: one, the tails of every vector width, and one above
 * 32 768, where the updates split between threads. */
static const size_t opt_counts[] = {1, 7, 15, 16, 17, 31, 33, 100, 40000};

/* SGD with momentum and weight decay.  m = mu m + (1 - mu) g is two products
 * and a sum (1 - mu is exact in float for mu in [1/2, 1]): within 4 u of
 * |mu m| + |(1 - mu) g|; theta -= lr (m + lambda theta), from the kernel's own
 * m, four roundings: 4 u of |theta| + lr (|m| + lambda |theta|). */
static void sgd_matches_naive(const char *isa)
{
    cn_backend *be = isa_backend(isa, 2);
    if (!be)
        return;
    cn_rng rng;
    cn_rng_seed(&rng, 31);
    static const float settings[][3] = {
        {0.05f, 0.9f, 5e-4f}, {0.1f, 0.0f, 0.0f}, {1.0f, 0.5f, 0.1f}};
    for (size_t s = 0; s < 3; s++)
        for (size_t q = 0; q < sizeof opt_counts / sizeof opt_counts[0]; q++) {
            size_t n = opt_counts[q];
            float lr = settings[s][0], mu = settings[s][1], lambda = settings[s][2];
            float *theta = normal(n, 1, 0, &rng), *g = normal(n, 1, 0, &rng);
            float *m = normal(n, 1, 0, &rng), *t0 = copy_of(theta, n), *m0 = copy_of(m, n);
            double *want = doubles(n), *bound = doubles(n);
            be->sgd(be, n, theta, g, m, lr, mu, lambda);
            for (size_t i = 0; i < n; i++) {
                want[i] = (double)mu * m0[i] + (1.0 - mu) * g[i];
                bound[i] = 4 * U * (fabs((double)mu * m0[i]) + fabs((1.0 - mu) * g[i]));
            }
            char what[80];
            snprintf(what, sizeof what, "sgd m, %zu values, mu %g", n, mu);
            CHECK(within(m, want, bound, n, what, isa));
            for (size_t i = 0; i < n; i++) {
                want[i] = t0[i] - (double)lr * (m[i] + (double)lambda * t0[i]);
                bound[i] = 4 * U * (fabs(t0[i]) + lr * (fabs(m[i]) + lambda * fabs(t0[i])));
            }
            snprintf(what, sizeof what, "sgd theta, %zu values, lr %g", n, lr);
            CHECK(within(theta, want, bound, n, what, isa));
            free(theta), free(g), free(m), free(t0), free(m0), free(want), free(bound);
        }
    report(isa);
    cn_backend_destroy(be);
}
PER_ISA(sgd_matches_naive)

/* Adam and AdamW.  g' = g + l2 theta; m = b1 m + (1 - b1) g' within 4 u of
 * |b1 m| + (1 - b1) |g'|max (|g'|max = |g| + l2 |theta|); v = b2 v + (1 -
 * b2) g'^2 within 6 u of |b2 v| + (1 - b2) |g'|max^2; then, from the kernel's
 * own m and v, theta -= lr (c1 m / (sqrt(c2 v) + eps) + wd theta): the step
 * is within 4 u (a product, a square root, a sum, a quotient), and the rest
 * three roundings: 8 u of |theta| + lr (|step| + wd |theta|). */
static void adam_matches_naive(const char *isa)
{
    cn_backend *be = isa_backend(isa, 2);
    if (!be)
        return;
    cn_rng rng;
    cn_rng_seed(&rng, 37);
    for (int wdecay = 0; wdecay < 3; wdecay++)
        for (size_t q = 0; q < sizeof opt_counts / sizeof opt_counts[0]; q++) {
            size_t n = opt_counts[q];
            /* lr, b1, b2, eps, l2, wd, c1, c2 (step 3) */
            float h[8] = {1e-3f, 0.9f, 0.999f, 1e-8f, 0, 0, 0, 0};
            h[4] = wdecay == 1 ? 1e-4f : 0.0f;
            h[5] = wdecay == 2 ? 1e-2f : 0.0f;
            h[6] = (float)(1 / (1 - pow(h[1], 3)));
            h[7] = (float)(1 / (1 - pow(h[2], 3)));
            float *theta = normal(n, 1, 0, &rng), *g = normal(n, 1, 0, &rng);
            float *m = normal(n, 0.1, 0, &rng), *v = normal(n, 0.01, 0, &rng);
            for (size_t i = 0; i < n; i++) {
                v[i] = fabsf(v[i]);
                if (i % 5 == 4) /* no gradient yet: a zero step */
                    g[i] = m[i] = v[i] = 0.0f;
            }
            float *t0 = copy_of(theta, n), *m0 = copy_of(m, n), *v0 = copy_of(v, n);
            double *want = doubles(n), *bound = doubles(n), *wv = doubles(n), *bv = doubles(n);
            be->adam(be, n, theta, g, m, v, h);
            for (size_t i = 0; i < n; i++) {
                double gi = g[i] + (double)h[4] * t0[i], gmax = fabs(g[i]) + h[4] * fabs(t0[i]);
                want[i] = h[1] * (double)m0[i] + (1.0 - h[1]) * gi;
                bound[i] = 4 * U * (fabs(h[1] * (double)m0[i]) + (1.0 - h[1]) * gmax);
                wv[i] = h[2] * (double)v0[i] + (1.0 - h[2]) * gi * gi;
                bv[i] = 6 * U * (fabs(h[2] * (double)v0[i]) + (1.0 - h[2]) * gmax * gmax);
            }
            char what[80];
            snprintf(what, sizeof what, "adam m, %zu values, decay %d", n, wdecay);
            CHECK(within(m, want, bound, n, what, isa));
            snprintf(what, sizeof what, "adam v, %zu values, decay %d", n, wdecay);
            CHECK(within(v, wv, bv, n, what, isa));
            for (size_t i = 0; i < n; i++) {
                double step = h[6] * (double)m[i] / (sqrt(h[7] * (double)v[i]) + h[3]);
                want[i] = t0[i] - h[0] * (step + h[5] * (double)t0[i]);
                bound[i] = 8 * U * (fabs(t0[i]) + h[0] * (fabs(step) + h[5] * fabs(t0[i])));
            }
            snprintf(what, sizeof what, "adam theta, %zu values, decay %d", n, wdecay);
            CHECK(within(theta, want, bound, n, what, isa));
            free(theta), free(g), free(m), free(v), free(t0), free(m0), free(v0);
            free(want), free(bound), free(wv), free(bv);
        }
    report(isa);
    cn_backend_destroy(be);
}
PER_ISA(adam_matches_naive)

/* --------------------------------------------- the one-version kernels */

/* Average pooling (kernels/plain.c, one version), forward and backward:
 * windows that tile, overlap, leave a last row or column out, and the global
 * window.  Forward sums k^2 values and multiplies by 1 / k^2 rounded: within
 * (k^2 + 2) u of the sum of their magnitudes / k^2; backward adds at most
 * ceil(k / stride)^2 products dy (1 / k^2): within (that + 2) u likewise. */
static void avgpool_matches_naive(const cn_backend *be, const char *isa, cn_rng *rng)
{
    static const size_t pg[][6] = {
        /* c, h, w, k, stride, n */
        {3, 8, 8, 2, 2, 2}, {2, 7, 9, 2, 2, 1}, {1, 5, 5, 3, 1, 3}, {2, 9, 6, 3, 2, 2},
        {3, 4, 4, 4, 1, 2}, {1, 1, 1, 1, 1, 1}, {2, 7, 7, 7, 1, 3}, {1, 6, 35, 2, 2, 1},
    };
    for (size_t t = 0; t < sizeof pg / sizeof pg[0]; t++) {
        cn_win g = {pg[t][0], pg[t][1], pg[t][2], pg[t][3], pg[t][3], pg[t][4], 0, 0, 0};
        g.oh = (g.h - g.kh) / g.stride + 1;
        g.ow = (g.w - g.kw) / g.stride + 1;
        size_t n = pg[t][5], in = n * g.c * g.h * g.w, out = n * g.c * g.oh * g.ow;
        double kk = (double)(g.kh * g.kw);
        float *x = normal(in, 1, 0, rng), *dy = normal(out, 1, 0, rng);
        float *y = floats(out), *dx = floats(in);
        double *want = doubles(out), *bound = doubles(out), *dwant = doubles(in);
        double *dmag = doubles(in), *dcnt = doubles(in), *dbound = doubles(in);
        for (size_t i = 0; i < in; i++)
            dx[i] = NAN; /* overwritten */
        for (size_t p = 0; p < n * g.c; p++)
            for (size_t i = 0; i < g.oh; i++)
                for (size_t j = 0; j < g.ow; j++) {
                    size_t o = (p * g.oh + i) * g.ow + j;
                    double s = 0, mag = 0;
                    for (size_t a = 0; a < g.kh; a++)
                        for (size_t b = 0; b < g.kw; b++) {
                            size_t at = p * g.h * g.w + (i * g.stride + a) * g.w + j * g.stride + b;
                            s += x[at];
                            mag += fabs(x[at]);
                            dwant[at] += dy[o] / kk;
                            dmag[at] += fabs(dy[o]) / kk;
                            dcnt[at]++;
                        }
                    want[o] = s / kk;
                    bound[o] = (kk + 2) * U * mag / kk;
                }
        for (size_t i = 0; i < in; i++)
            dbound[i] = (dcnt[i] + 2) * U * dmag[i];
        be->avgpool_fwd(be, &g, x, n, y);
        be->avgpool_bwd(be, &g, dy, n, dx);
        char what[64];
        snprintf(what, sizeof what, "avgpool forward, geometry %zu", t);
        CHECK(within(y, want, bound, out, what, isa));
        snprintf(what, sizeof what, "avgpool backward, geometry %zu", t);
        CHECK(within(dx, dwant, dbound, in, what, isa));
        free(x), free(dy), free(y), free(dx), free(want), free(bound), free(dwant), free(dmag);
        free(dcnt), free(dbound);
    }
}

/* Dropout (one version): value i is kept, times 1 / (1 - rate), exactly when
 * cn_counter_uniform(key, first + i) >= rate; the same float product here
 * gives the same bits.  Backward applies the same mask to dy. */
static void dropout_matches_naive(const cn_backend *be, const char *isa, cn_rng *rng)
{
    static const size_t counts[] = {1, 17, 10007};
    static const float rates[] = {0.3f, 0.5f, 0.9f};
    for (size_t q = 0; q < 3; q++)
        for (size_t r = 0; r < 3; r++) {
            size_t n = counts[q];
            float rate = rates[r], keep = 1.0f / (1.0f - rate);
            uint64_t key = cn_rng_below(rng, UINT64_MAX), first = r == 1 ? 12345 : 0;
            float *x = normal(n, 1, 0, rng), *y = floats(n), *dx = floats(n);
            double *want = doubles(n), *bound = doubles(n);
            size_t dropped = 0;
            for (size_t i = 0; i < n; i++) {
                int drop = cn_counter_uniform(key, first + i) < rate;
                dropped += (size_t)drop;
                want[i] = drop ? 0.0f : x[i] * keep;
            }
            be->dropout_fwd(be, x, y, n, rate, key, first);
            char what[64];
            snprintf(what, sizeof what, "dropout forward, %zu values, rate %g", n, rate);
            CHECK(within(y, want, bound, n, what, isa));
            be->dropout_bwd(be, x, dx, n, rate, key, first);
            snprintf(what, sizeof what, "dropout backward, %zu values, rate %g", n, rate);
            CHECK(within(dx, want, bound, n, what, isa));
            /* The counter stream: about rate n dropped (within 6 standard
             * deviations). */
            double sd = sqrt(n * rate * (1 - rate));
            CHECK_MSG(n < 1000 || fabs((double)dropped - n * rate) < 6 * sd,
                      "%zu of %zu dropped at rate %g", dropped, n, rate);
            free(x), free(y), free(dx), free(want), free(bound);
        }
}

/* add and scale (one version): one float operation each, the same here. */
static void add_scale_match_naive(const cn_backend *be, const char *isa, cn_rng *rng)
{
    static const size_t counts[] = {1, 17, 40000};
    for (size_t q = 0; q < 3; q++) {
        size_t n = counts[q];
        float *a = normal(n, 1, 0, rng), *b = normal(n, 1, 0, rng), *y = floats(n);
        double *want = doubles(n), *zero = doubles(n);
        for (size_t i = 0; i < n; i++)
            want[i] = a[i] + b[i];
        be->add(be, a, b, y, n);
        CHECK(within(y, want, zero, n, "add", isa));
        float *a2 = copy_of(a, n), *b2 = copy_of(b, n);
        be->add(be, a2, b, a2, n); /* into a */
        be->add(be, a, b2, b2, n); /* into b */
        CHECK(within(a2, want, zero, n, "add into a", isa));
        CHECK(within(b2, want, zero, n, "add into b", isa));
        for (size_t i = 0; i < n; i++)
            want[i] = a[i] * -0.37f;
        be->scale(be, a, -0.37f, n);
        CHECK(within(a, want, zero, n, "scale", isa));
        free(a), free(b), free(y), free(want), free(zero), free(a2), free(b2);
    }
}

/* The input's preparation (one version): (p / 255 - mean) / std, computed as
 * p s - t with s = 1 / (255 std) and t = mean / std rounded to float: within
 * 4 u of |p s| + |t|; and the same bits as the host's cn_pixels_to_input. */
static void pixels_match_naive(const cn_backend *be, const char *isa, cn_rng *rng)
{
    static const size_t shapes[][3] = {{1, 1, 1}, {3, 1, 17}, {2, 3, 784}};
    for (size_t t = 0; t < 3; t++) {
        size_t n = shapes[t][0], c = shapes[t][1], hw = shapes[t][2], count = n * c * hw;
        uint8_t *pix = malloc(count);
        float norm[6], *x = floats(count), *host = floats(count);
        for (size_t i = 0; i < count; i++)
            pix[i] = (uint8_t)(i == 0 ? 255 : i == 1 ? 0 : cn_rng_below(rng, 256));
        for (size_t k = 0; k < c; k++) {
            norm[k] = (float)(0.1 + 0.4 * cn_rng_uniform(rng));
            norm[c + k] = (float)(0.2 + 0.3 * cn_rng_uniform(rng));
        }
        double *want = doubles(count), *bound = doubles(count);
        for (size_t i = 0; i < count; i++) {
            size_t k = i / hw % c;
            want[i] = (pix[i] / 255.0 - norm[k]) / norm[c + k];
            bound[i] = 4 * U * (pix[i] / (255.0 * norm[c + k]) + norm[k] / norm[c + k]);
        }
        be->input_from_pixels(be, pix, n, c, hw, norm, x);
        CHECK(within(x, want, bound, count, "input_from_pixels", isa));
        cn_pixels_to_input(pix, n, c, hw, norm, host);
        CHECK_MSG(memcmp(x, host, count * sizeof *x) == 0,
                  "%s: input_from_pixels and cn_pixels_to_input differ", isa);
        free(pix), free(x), free(host), free(want), free(bound);
    }
}

/* The loss per row (one version): log sum e^z - z[label] in double (to
 * 1e-12 of 1 + the loss), and the first column of the largest y, with ties. */
static void nll_rows_match_naive(const cn_backend *be, const char *isa, cn_rng *rng)
{
    static const size_t shapes[][2] = {{1, 1}, {5, 10}, {64, 33}, {3, 2}};
    for (size_t t = 0; t < 4; t++) {
        size_t rows = shapes[t][0], cols = shapes[t][1], count = rows * cols;
        float *z = normal(count, 3, 0, rng), *y = floats(count), *best_p = floats(rows);
        int32_t *labels = malloc(rows * sizeof *labels), *best = malloc(rows * sizeof *best);
        double *loss = doubles(rows), *loss2 = doubles(rows);
        for (size_t i = 0; i < count; i++)
            z[i] += 50.0f * (float)(i / cols);
        for (size_t r = 0; r < rows; r++)
            labels[r] = (int32_t)cn_rng_below(rng, cols);
        be->softmax(be, z, y, rows, cols);
        if (cols > 1 && rows > 1) { /* a tie for the first place in row 1 */
            float *row = y + cols, top = row[0];
            for (size_t j = 1; j < cols; j++)
                top = fmaxf(top, row[j]);
            row[cols - 1] = row[cols / 2] = top;
        }
        be->nll_rows(be, z, y, labels, rows, cols, 0.0f, loss, best, best_p);
        be->nll_rows(be, z, y, labels, rows, cols, 0.0f, loss2, NULL, NULL);
        for (size_t r = 0; r < rows; r++) {
            const float *zr = z + r * cols, *yr = y + r * cols;
            double mx = -INFINITY, sum = 0;
            size_t arg = 0;
            for (size_t j = 0; j < cols; j++) {
                mx = fmax(mx, zr[j]);
                if (yr[j] > yr[arg])
                    arg = j;
            }
            for (size_t j = 0; j < cols; j++)
                sum += exp(zr[j] - mx);
            double want = log(sum) - (zr[labels[r]] - mx);
            CHECK_MSG(fabs(loss[r] - want) <= 1e-12 * (1 + fabs(want)) && loss2[r] == loss[r],
                      "%s nll_rows %zu x %zu: loss[%zu] = %.17g, reference %.17g", isa, rows, cols,
                      r, loss[r], want);
            /* Smoothed: sum_j q_j (log sum e^z - z_j), q = 0.9 onehot + 0.1 / cols. */
            double smoothed = 0;
            for (size_t j = 0; j < cols; j++)
                smoothed +=
                    ((j == (size_t)labels[r]) * 0.9 + 0.1 / (double)cols) * (log(sum) + mx - zr[j]);
            be->nll_rows(be, z + r * cols, y + r * cols, labels + r, 1, cols, 0.1f, loss2, NULL,
                         NULL);
            CHECK_MSG(fabs(loss2[0] - smoothed) <= 1e-6 * (1 + fabs(smoothed)),
                      "%s nll_rows %zu x %zu smoothed: loss[%zu] = %.17g, reference %.17g", isa,
                      rows, cols, r, loss2[0], smoothed);
            CHECK_MSG(best[r] == (int32_t)arg && best_p[r] == yr[arg],
                      "%s nll_rows %zu x %zu: best[%zu] = %d (%g), first largest %zu (%g)", isa,
                      rows, cols, r, best[r], best_p[r], arg, yr[arg]);
        }
        free(z), free(y), free(best_p), free(labels), free(best), free(loss), free(loss2);
    }
}

/* The finiteness count (one version). */
static void count_nonfinite_matches_naive(const cn_backend *be, const char *isa, cn_rng *rng)
{
    size_t n = 10007, want = 0;
    float *x = normal(n, 1e3, 0, rng);
    static const float odd[] = {FLT_MAX, -FLT_MAX, FLT_MIN / 4, -0.0f};
    for (size_t i = 0; i < n; i++) {
        uint64_t k = cn_rng_below(rng, 50);
        if (k < 3) {
            x[i] = k == 0 ? NAN : k == 1 ? INFINITY : -INFINITY;
            want++;
        } else if (k < 5) {
            x[i] = odd[cn_rng_below(rng, 4)];
        }
    }
    if (isfinite(x[n - 1])) { /* the last one counts */
        x[n - 1] = NAN;
        want++;
    }
    CHECK_MSG(be->count_nonfinite(be, x, n) == want &&
                  be->count_nonfinite(be, x, 1) == !isfinite(x[0]),
              "%s count_nonfinite: %zu, expected %zu", isa, be->count_nonfinite(be, x, n), want);
    free(x);
}

/* The doctor's figures of a block: sums of the finite values within the
 * bound of any summation order, the rest exact. */
static void stats_match_naive(const cn_backend *be, const char *isa, cn_rng *rng)
{
    static const size_t shapes[][3] = {{1, 1, 1},    {3, 7, 1},     {5, 3, 37},
                                       {2, 4, 5000}, {64, 20, 576}, {1, 1, 10007}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        size_t rows = shapes[t][0], units = shapes[t][1], size = shapes[t][2];
        size_t n = rows * units * size;
        float *x = normal(n, 3.0, -1.0, rng);
        for (size_t i = 0; i < n; i++) { /* some non-finite values, among them +inf */
            uint64_t k = cn_rng_below(rng, 40);
            if (k < 3)
                x[i] = k == 0 ? NAN : k == 1 ? INFINITY : -INFINITY;
        }
        if (units > 2) /* unit 1: nothing above zero but +inf, so dead */
            for (size_t r = 0; r < rows; r++)
                for (size_t j = 0; j < size; j++) {
                    float *v = x + (r * units + 1) * size + j;
                    *v = j % 5 == 0 ? INFINITY : -fabsf(*v);
                }
        double sum = 0, sum2 = 0, abs_sum = 0, most = 0, bad = 0, dead = 0;
        for (size_t u = 0; u < units; u++) {
            int alive = 0;
            for (size_t r = 0; r < rows; r++)
                for (size_t j = 0; j < size; j++) {
                    float v = x[(r * units + u) * size + j];
                    if (!isfinite(v)) {
                        bad++;
                        continue;
                    }
                    sum += v;
                    sum2 += (double)v * v;
                    abs_sum += fabs(v);
                    most = fmax(most, fabs(v));
                    alive |= v > 0;
                }
            dead += !alive;
        }
        double out[5];
        be->stats(be, x, rows, units, size, out);
        double bound = (double)(n + 1) * U * abs_sum, bound2 = (double)(n + 2) * U * sum2;
        if (bound > 0 && fabs(out[0] - sum) / bound > worst_ratio)
            worst_ratio = fabs(out[0] - sum) / bound;
        CHECK_MSG(fabs(out[0] - sum) <= bound && fabs(out[1] - sum2) <= bound2 && out[2] == most &&
                      out[3] == bad && out[4] == dead && (units <= 2 || dead >= 1),
                  "%s stats %zu x %zu x %zu: sum %.9g (%.9g), squares %.9g (%.9g), most %g (%g), "
                  "non-finite %g (%g), dead %g (%g)",
                  isa, rows, units, size, out[0], sum, out[1], sum2, out[2], most, out[3], bad,
                  out[4], dead);
        free(x);
    }
}

static void plain_kernels_match_naive(const char *isa)
{
    cn_backend *be = isa_backend(isa, 2);
    if (!be)
        return;
    cn_rng rng;
    cn_rng_seed(&rng, 41);
    avgpool_matches_naive(be, isa, &rng);
    if (!th_failed())
        dropout_matches_naive(be, isa, &rng);
    if (!th_failed())
        add_scale_match_naive(be, isa, &rng);
    if (!th_failed())
        pixels_match_naive(be, isa, &rng);
    if (!th_failed())
        nll_rows_match_naive(be, isa, &rng);
    if (!th_failed())
        count_nonfinite_matches_naive(be, isa, &rng);
    if (!th_failed())
        stats_match_naive(be, isa, &rng);
    if (!th_failed())
        report(isa);
    cn_backend_destroy(be);
}
PER_ISA(plain_kernels_match_naive)

/* ---------------------------------------------------------------- choice */

static void forced_isa_is_honoured(void)
{
    cn_cpu *cpu;
    CHECK(cn_cpu_create(1, "portable", &cpu) == 0 && strcmp(cpu->base.kernels, "portable") == 0);
    cn_backend_destroy(&cpu->base);
    CHECK(cn_cpu_create(1, "no-such-isa", &cpu) == -1);
}

const th_test th_kernels[] = {
    ISA_TESTS("gemm_matches_reference", gemm_matches_reference),
    ISA_TESTS("gemm_thread_count_invariant", gemm_thread_count_invariant),
    ISA_TESTS("fc_kept_matches_gemm", fc_kept_matches_gemm),
    ISA_TESTS("conv_matches_reference", conv_matches_reference),
    ISA_TESTS("conv_large_matches_reference", conv_large_matches_reference),
    ISA_TESTS("conv_split_matches_one_thread", conv_split_matches_one_thread),
    ISA_TESTS("conv_affine_is_conv_then_bn", conv_affine_is_conv_then_bn),
    ISA_TESTS("conv_pool_is_conv_then_pool", conv_pool_is_conv_then_pool),
    ISA_TESTS("conv_lanes_match_one_sample", conv_lanes_match_one_sample),
    ISA_TESTS("conv_streamed_output_is_the_same", conv_streamed_output_is_the_same),
    ISA_TESTS("conv_winograd_against_direct", conv_winograd_against_direct),
    ISA_TESTS("conv_one_image_by_filters", conv_one_image_by_filters),
    ISA_TESTS("conv_thread_count_invariant", conv_thread_count_invariant),
    ISA_TESTS("conv_scratch_bounded", conv_scratch_bounded),
    ISA_TESTS("maxpool_matches_naive", maxpool_matches_naive),
    ISA_TESTS("maxpool_switches_match", maxpool_switches_match),
    ISA_TESTS("activations_match_naive", activations_match_naive),
    ISA_TESTS("bias_matches_naive", bias_matches_naive),
    ISA_TESTS("batchnorm_matches_naive", bn_matches_naive),
    ISA_TESTS("batchnorm_thread_count_invariant", bn_thread_count_invariant),
    ISA_TESTS("batchnorm_relu_is_batchnorm_then_relu", bn_relu_is_bn_then_relu),
    ISA_TESTS("softmax_matches_naive", softmax_matches_naive),
    ISA_TESTS("sgd_matches_naive", sgd_matches_naive),
    ISA_TESTS("adam_matches_naive", adam_matches_naive),
    ISA_TESTS("plain_kernels_match_naive", plain_kernels_match_naive),
    {"kernels/forced_isa", forced_isa_is_honoured},
    {NULL, NULL},
};
