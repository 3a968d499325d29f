/* test_kernels.c - every fast kernel against its naive reference, on awkward
 * shapes, for every instruction set this machine can run. */
#include "harness.h"
#include "internal.h"
#include "kernels/kernels.h"

#include <stdlib.h>
#include <string.h>

static const char *const isas[] = {"avx512", "avx2", "portable"};

/* Relative tolerance of a float32 dot product of length k summed in a
 * different order (and with or without FMA): a few k * 2^-24 at worst, far
 * less on average; 1e-5 * sqrt(k) + 1e-6 leaves room and still catches any
 * indexing mistake (which gives O(1) errors). */
static double gemm_tol(size_t k) { return 1e-5 * sqrt((double)k) + 1e-6; }

/* The CPU backend with threads threads and the kernel set isa, or NULL when
 * this processor cannot run it. */
static cn_backend *cpu_backend(int threads, const char *isa)
{
    cn_cpu *cpu;
    return cn_cpu_create(threads, isa, &cpu) == 0 ? &cpu->base : NULL;
}

static int compare_gemm(const cn_backend *be, int ta, int tb, size_t m, size_t n, size_t k,
                        float alpha, float beta, size_t pad, cn_rng *rng)
{
    size_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
    size_t arows = ta ? k : m, brows = tb ? n : k;
    float *a = malloc(arows * lda * sizeof(float)), *b = malloc(brows * ldb * sizeof(float));
    float *c0 = malloc(m * ldc * sizeof(float)), *c1 = malloc(m * ldc * sizeof(float));
    th_fill_normal(a, arows * lda, rng);
    th_fill_normal(b, brows * ldb, rng);
    th_fill_normal(c0, m * ldc, rng);
    memcpy(c1, c0, m * ldc * sizeof(float));
    cn_gemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc);
    be->gemm(be, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c1, ldc);
    int bad = 0;
    for (size_t i = 0; i < m && !bad; i++)
        for (size_t j = 0; j < ldc && !bad; j++) {
            double x = c0[i * ldc + j], y = c1[i * ldc + j];
            /* Padding columns beyond n must be untouched. */
            double tol = j < n ? gemm_tol(k) * (1 + fabs(x)) : 0;
            if (!(fabs(x - y) <= tol)) {
                th_fail(__FILE__, __LINE__,
                        "%s gemm ta=%d tb=%d m=%zu n=%zu k=%zu alpha=%g beta=%g: C[%zu][%zu] = %g, "
                        "reference %g",
                        be->kernels, ta, tb, m, n, k, alpha, beta, i, j, y, x);
                bad = 1;
            }
        }
    free(a);
    free(b);
    free(c0);
    free(c1);
    return bad;
}

static void gemm_matches_reference(void)
{
    static const size_t sizes[] = {1, 2, 3, 7, 8, 9, 15, 17, 31, 33, 64, 65, 127, 130, 257, 300};
    size_t ns = sizeof sizes / sizeof sizes[0];
    cn_rng rng;
    cn_rng_seed(&rng, 42);
    int ran = 0;
    for (size_t q = 0; q < 3; q++) {
        cn_backend *be = cpu_backend(2, isas[q]);
        if (!be)
            continue;
        ran++;
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (size_t t = 0; t < 60; t++) {
                    size_t m = sizes[cn_rng_below(&rng, ns)], n = sizes[cn_rng_below(&rng, ns)];
                    size_t k = sizes[cn_rng_below(&rng, ns)];
                    float alpha = t % 3 == 0 ? 0.5f : 1.0f, beta = (float)(t % 3);
                    if (compare_gemm(be, ta, tb, m, n, k, alpha, beta, t % 2 ? 3 : 0, &rng)) {
                        cn_backend_destroy(be);
                        return;
                    }
                }
        /* Deep products cross several KC blocks; wide ones several tiles. */
        if (compare_gemm(be, 0, 0, 20, 4096, 600, 1, 0, 0, &rng) ||
            compare_gemm(be, 0, 1, 50, 500, 4100, 1, 1, 0, &rng) ||
            compare_gemm(be, 1, 0, 500, 1000, 50, 1, 0, 1, &rng)) {
            cn_backend_destroy(be);
            return;
        }
        cn_backend_destroy(be);
    }
    CHECK(ran >= 1);
}

/* The result must not depend on the number of threads, bit for bit. */
static void gemm_thread_count_invariant(void)
{
    cn_rng rng;
    cn_rng_seed(&rng, 7);
    size_t m = 70, n = 900, k = 530;
    float *a = malloc(m * k * 4), *b = malloc(k * n * 4), *c1 = malloc(m * n * 4),
          *c2 = malloc(m * n * 4);
    th_fill_normal(a, m * k, &rng);
    th_fill_normal(b, k * n, &rng);
    for (size_t q = 0; q < 3; q++) {
        cn_backend *b1 = cpu_backend(1, isas[q]);
        if (!b1)
            continue;
        cn_backend *b2 = cpu_backend(3, isas[q]);
        CHECK(b2);
        b1->gemm(b1, 0, 0, m, n, k, 1, a, k, b, n, 0, c1, n);
        b2->gemm(b2, 0, 0, m, n, k, 1, a, k, b, n, 0, c2, n);
        cn_backend_destroy(b1);
        cn_backend_destroy(b2);
        CHECK_MSG(memcmp(c1, c2, m * n * 4) == 0, "%s: 1 and 3 threads differ", isas[q]);
    }
    free(a);
    free(b);
    free(c1);
    free(c2);
}

/* Window geometries: every stride and padding combination the layers use,
 * plus odd ones. */
static const size_t geoms[][6] = {
    /* c, h, w, k, stride, pad */
    {1, 28, 28, 5, 1, 0}, {20, 12, 12, 5, 1, 0}, {3, 7, 9, 3, 1, 1},   {2, 8, 8, 3, 2, 1},
    {4, 5, 5, 5, 1, 2},   {1, 6, 7, 2, 3, 0},    {3, 9, 6, 4, 2, 3},   {1, 1, 1, 1, 1, 0},
    {2, 4, 4, 2, 1, 0},   {16, 14, 14, 5, 1, 2}, {2, 13, 17, 3, 1, 1}, {1, 28, 28, 5, 1, 2},
    {3, 20, 35, 7, 1, 3}, {2, 16, 16, 1, 1, 0},
};

static cn_win win_of(const size_t *g)
{
    cn_win w = {g[0], g[1], g[2], g[3], g[3], g[4], g[5], 0, 0};
    w.oh = (w.h + 2 * w.pad - w.kh) / w.stride + 1;
    w.ow = (w.w + 2 * w.pad - w.kw) / w.stride + 1;
    return w;
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

/* The convolution of every instruction set against the direct definition,
 * forward and backward, on every geometry above, with 1 to 20 samples (more
 * than the 16 partial sums of the weight gradient) and 1 to 17 filters. */
static void conv_matches_reference(void)
{
    static const size_t ms[] = {1, 3, 17}, ns[] = {1, 5, 20};
    cn_rng rng;
    cn_rng_seed(&rng, 3);
    int ran = 0;
    for (size_t q = 0; q < 3; q++) {
        cn_backend *be = cpu_backend(2, isas[q]);
        if (!be)
            continue;
        ran++;
        for (size_t t = 0; t < sizeof geoms / sizeof geoms[0]; t++)
            for (size_t a = 0; a < 3; a++) {
                cn_win g = win_of(geoms[t]);
                size_t m = ms[a], n = ns[(t + a) % 3], kk = g.c * g.kh * g.kw;
                size_t in = n * g.c * g.h * g.w, out = n * m * g.oh * g.ow;
                float *x = malloc(in * 4), *w = malloc(m * kk * 4), *b = malloc(m * 4);
                float *y = malloc(out * 4), *yr = malloc(out * 4), *dy = malloc(out * 4);
                float *dx = malloc(in * 4), *dxr = malloc(in * 4);
                float *dw = calloc(m * kk, 4), *dwr = calloc(m * kk, 4);
                float *db = calloc(m, 4), *dbr = calloc(m, 4);
                float *ws = malloc(be->conv_ws(be, &g, m, n) * 4);
                th_fill_normal(x, in, &rng);
                th_fill_normal(w, m * kk, &rng);
                th_fill_normal(b, m, &rng);
                th_fill_normal(dy, out, &rng);
                be->conv_fwd(be, &g, m, x, n, w, b, y, ws, CN_ACT_NONE);
                cn_conv_ref_fwd(&g, m, x, n, w, b, yr);
                be->conv_bwd(be, &g, m, x, y, dy, n, w, dw, db, dx, ws, CN_ACT_NONE);
                cn_conv_ref_bwd(&g, m, x, dy, n, w, dwr, dbr, dxr);
                /* Float sums of up to 11 520 products in another order than the
                 * reference's double ones: about 1e-6 of the scale; 2e-5 leaves a
                 * margin and catches any indexing mistake. */
                double tol = 2e-5;
                CHECK_MSG(
                    max_rel(y, yr, out) < tol && max_rel(dx, dxr, in) < tol &&
                        max_rel(dw, dwr, m * kk) < tol && max_rel(db, dbr, m) < tol,
                    "%s conv geometry %zu, m %zu, n %zu: errors y %.2g dx %.2g dw %.2g db %.2g",
                    be->kernels, t, m, n, max_rel(y, yr, out), max_rel(dx, dxr, in),
                    max_rel(dw, dwr, m * kk), max_rel(db, dbr, m));
                /* Without dx the weight gradients are the same (added once more). */
                be->conv_bwd(be, &g, m, x, y, dy, n, w, dw, db, NULL, ws, CN_ACT_NONE);
                for (size_t i = 0; i < m * kk; i++)
                    dwr[i] *= 2;
                CHECK(max_rel(dw, dwr, m * kk) < tol);
                /* A fused relu: y = relu(conv), and backward masks dy where y = 0. */
                be->conv_fwd(be, &g, m, x, n, w, b, y, ws, CN_ACT_RELU);
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
                          "%s fused relu, geometry %zu", be->kernels, t);
                free(x), free(w), free(b), free(y), free(yr), free(dy), free(dx), free(dxr);
                free(dw), free(dwr), free(db), free(dbr), free(ws);
            }
        cn_backend_destroy(be);
    }
    CHECK(ran >= 1);
}

/* Convolution gradients do not depend on the thread count, bit for bit. */
static void conv_thread_count_invariant(void)
{
    cn_win g = win_of(geoms[1]);
    size_t m = 8, n = 37, kk = g.c * g.kh * g.kw, in = n * g.c * g.h * g.w,
           out = n * m * g.oh * g.ow;
    cn_rng rng;
    cn_rng_seed(&rng, 9);
    float *x = malloc(in * 4), *w = malloc(m * kk * 4), *dy = malloc(out * 4);
    float *dx[2] = {malloc(in * 4), malloc(in * 4)},
          *dw[2] = {calloc(m * kk, 4), calloc(m * kk, 4)};
    float *db[2] = {calloc(m, 4), calloc(m, 4)};
    th_fill_normal(x, in, &rng);
    th_fill_normal(w, m * kk, &rng);
    th_fill_normal(dy, out, &rng);
    for (size_t q = 0; q < 3; q++) {
        for (int r = 0; r < 2; r++) {
            cn_backend *be = cpu_backend(r ? 3 : 1, isas[q]);
            if (!be)
                break;
            float *ws = malloc(be->conv_ws(be, &g, m, n) * 4);
            memset(dw[r], 0, m * kk * 4);
            memset(db[r], 0, m * 4);
            be->conv_bwd(be, &g, m, x, NULL, dy, n, w, dw[r], db[r], dx[r], ws, CN_ACT_NONE);
            free(ws);
            cn_backend_destroy(be);
            if (r == 1)
                CHECK_MSG(memcmp(dx[0], dx[1], in * 4) == 0 &&
                              memcmp(dw[0], dw[1], m * kk * 4) == 0 &&
                              memcmp(db[0], db[1], m * 4) == 0,
                          "%s: 1 and 3 threads differ", isas[q]);
        }
    }
    free(x), free(w), free(dy), free(dx[0]), free(dx[1]), free(dw[0]), free(dw[1]), free(db[0]),
        free(db[1]);
}

static void maxpool_one(const char *isa)
{
    cn_backend *be = cpu_backend(2, isa);
    if (!be)
        return;
    cn_rng rng;
    cn_rng_seed(&rng, 5);
    static const size_t pg[][4] = {{2, 2, 8, 8}, {3, 2, 7, 9}, {2, 1, 5, 4}, {3, 3, 9, 9},
                                   {1, 1, 3, 3}, {2, 2, 7, 9}, {2, 2, 5, 4}, {2, 2, 6, 6}};
    for (size_t t = 0; t < sizeof pg / sizeof pg[0]; t++) {
        cn_win g = {3, pg[t][2], pg[t][3], pg[t][0], pg[t][0], pg[t][1], 0, 0, 0};
        g.oh = (g.h - g.kh) / g.stride + 1;
        g.ow = (g.w - g.kw) / g.stride + 1;
        size_t n = 2, in = n * g.c * g.h * g.w, out = n * g.c * g.oh * g.ow;
        float *x = malloc(in * 4), *y = malloc(out * 4), *dy = malloc(out * 4),
              *dx = malloc(in * 4);
        th_fill_normal(x, in, &rng);
        th_fill_normal(dy, out, &rng);
        /* Every other geometry gets ties: values rounded to 0, 1 or 2 (as
         * after relu, where whole windows are 0). */
        for (size_t i = 0; t % 2 && i < in; i++)
            x[i] = x[i] < 0 ? 0.0f : x[i] < 1 ? 1.0f : 2.0f;
        be->maxpool_fwd(be, &g, x, n, y);
        be->maxpool_bwd(be, &g, x, dy, n, dx);
        double *want = calloc(in, sizeof *want);
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
                    CHECK(y[o] == best);
                    want[arg] += dy[o];
                }
        for (size_t i = 0; i < in; i++)
            CHECK_NEAR(dx[i], want[i], 1e-6);
        free(want);
        free(x);
        free(y);
        free(dy);
        free(dx);
    }
    cn_backend_destroy(be);
}

static void elementwise_one(const char *isa)
{
    cn_backend *be = cpu_backend(2, isa);
    if (!be)
        return;
    float x[5] = {-2, -0.5f, 0, 0.5f, 3}, y[5], dy[5] = {1, 2, 3, 4, 5}, dx[5];
    be->act_fwd(be, CN_ACT_RELU, 0, x, y, 5);
    CHECK(y[0] == 0 && y[1] == 0 && y[2] == 0 && y[3] == 0.5f && y[4] == 3);
    be->act_bwd(be, CN_ACT_RELU, 0, NULL, y, dy, dx, 5);
    CHECK(dx[0] == 0 && dx[2] == 0 && dx[3] == 4 && dx[4] == 5);
    be->act_fwd(be, CN_ACT_SIGMOID, 0, x, y, 5);
    CHECK_NEAR(y[2], 0.5, 1e-7);
    CHECK_NEAR(y[4], 1 / (1 + exp(-3.0)), 1e-7);
    be->act_bwd(be, CN_ACT_SIGMOID, 0, NULL, y, dy, dx, 5);
    CHECK_NEAR(dx[2], 3 * 0.25, 1e-7);
    be->act_fwd(be, CN_ACT_TANH, 0, x, y, 5);
    CHECK_NEAR(y[0], tanh(-2.0), 1e-7);
    be->act_bwd(be, CN_ACT_TANH, 0, NULL, y, dy, dx, 5);
    CHECK_NEAR(dx[0], 1 * (1 - tanh(-2.0) * tanh(-2.0)), 1e-6);
    /* Bias on a (2, 3, 2) tensor. */
    float s[12], b3[3] = {10, 20, 30}, db[3] = {0};
    for (int i = 0; i < 12; i++)
        s[i] = (float)i;
    /* Bias gradient of s as (n=2, m=3, p=2): channel m sums s[0][m][:] and s[1][m][:]. */
    be->bias_grad(be, s, 2, 3, 2, db);
    CHECK(db[0] == 0 + 1 + 6 + 7 && db[1] == 2 + 3 + 8 + 9 && db[2] == 4 + 5 + 10 + 11);
    be->add_bias(be, s, 2, 3, 2, b3);
    CHECK(s[0] == 10 && s[2] == 22 && s[4] == 34 && s[6] == 16);
    cn_backend_destroy(be);
}

static void maxpool_matches_naive(void)
{
    for (size_t q = 0; q < 3 && !th_failed(); q++)
        maxpool_one(isas[q]);
}

static void elementwise_kernels(void)
{
    for (size_t q = 0; q < 3 && !th_failed(); q++)
        elementwise_one(isas[q]);
}

static void forced_isa_is_honoured(void)
{
    cn_backend *be = cpu_backend(1, "portable");
    CHECK(be && strcmp(be->kernels, "portable") == 0);
    cn_backend_destroy(be);
    CHECK(cpu_backend(1, "no-such-isa") == NULL);
}

const th_test th_kernels[] = {
    {"kernels/gemm_matches_reference", gemm_matches_reference},
    {"kernels/gemm_thread_count_invariant", gemm_thread_count_invariant},
    {"kernels/conv_matches_reference", conv_matches_reference},
    {"kernels/conv_thread_count_invariant", conv_thread_count_invariant},
    {"kernels/maxpool_matches_naive", maxpool_matches_naive},
    {"kernels/elementwise", elementwise_kernels},
    {"kernels/forced_isa", forced_isa_is_honoured},
    {NULL, NULL},
};
