/* test_cuda.c - the CUDA backend against the CPU backend, operation by
 * operation: the same random inputs uploaded to both, the same call, the
 * results downloaded and compared.  The error of a result is
 * max |gpu - cpu| / max |cpu| over the tensor (normwise: a sum whose terms
 * cancel is judged against its terms' scale); each must be within 1e-4 in
 * fp32 (TF32 off), and what the backends promise to compute the same way
 * (dropout's masks, the input's preparation, pooling, counts) must match
 * bit for bit.  Then a small network trained on both, and its model file
 * read across devices.
 *
 * Without a GPU, or in a build without CUDA, every test here is skipped,
 * saying why: none passes without having run. */
#include "harness.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-4

typedef struct pair {
    cn_backend *gpu, *cpu;
    cn_rng rng;
} pair;

/* The backend under test: "cuda", or $CONVNET_TEST_CUDA_STANDIN (guard: a
 * check of these tests themselves, on a machine without a GPU, where every
 * comparison must come out exact). */
static const char *gpu_name(void)
{
    const char *s = getenv("CONVNET_TEST_CUDA_STANDIN");
    return s && *s ? s : "cuda";
}

static int is_cuda(const cn_backend *be) { return strcmp(be->name, "cuda") == 0; }

static int open_pair(pair *p)
{
    memset(p, 0, sizeof *p);
    cn_rng_seed(&p->rng, 42);
    const cn_device g = {gpu_name(), 0, 1}, c = {"cpu", 0, 1};
    if (cn_backend_create(&g, NULL, &p->gpu))
        return 0;
    if (cn_backend_create(&c, NULL, &p->cpu)) {
        cn_backend_destroy(p->gpu);
        return 0;
    }
    return 1;
}

static void close_pair(pair *p)
{
    cn_backend_destroy(p->gpu);
    cn_backend_destroy(p->cpu);
}

#define OPEN(p)                                                                                    \
    pair p;                                                                                        \
    if (!open_pair(&p))                                                                            \
    SKIP("no GPU to compare with: %s", cn_last_error())

/* A tensor on both backends: bytes of the same contents. */
typedef struct twin {
    size_t bytes;
    void *g, *c;
} twin;

static twin tw_bytes(pair *p, const void *host, size_t bytes)
{
    twin t = {bytes, p->gpu->alloc(p->gpu, bytes), p->cpu->alloc(p->cpu, bytes)};
    if (t.g && t.c && host) {
        p->gpu->upload(p->gpu, t.g, host, bytes);
        p->cpu->upload(p->cpu, t.c, host, bytes);
    }
    return t;
}

/* n floats: normal (scale s), or zeros when s == 0. */
static twin tw_normal(pair *p, size_t n, float s)
{
    float *h = calloc(n ? n : 1, sizeof *h);
    for (size_t i = 0; h && i < n; i++)
        h[i] = s * (float)cn_rng_normal(&p->rng);
    twin t = tw_bytes(p, h, n * sizeof *h);
    free(h);
    return t;
}

static void tw_free(pair *p, twin *t)
{
    p->gpu->free(p->gpu, t->g);
    p->cpu->free(p->cpu, t->c);
}

/* Both results on the host (malloc'd, in *hg and *hc). */
static void tw_get(pair *p, const twin *t, void **hg, void **hc)
{
    *hg = malloc(t->bytes ? t->bytes : 1);
    *hc = malloc(t->bytes ? t->bytes : 1);
    p->gpu->download(p->gpu, *hg, t->g, t->bytes);
    p->cpu->download(p->cpu, *hc, t->c, t->bytes);
}

/* max |g - c| / max |c| over n floats (n > 0); a NaN counts as an error. */
static double rel_err_f(const float *g, const float *c, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)g[i] - c[i]);
        if (e != e)
            return INFINITY;
        d = e > d ? e : d;
        m = fabs((double)c[i]) > m ? fabs((double)c[i]) : m;
    }
    return m > 0 ? d / m : d;
}

static double rel_err_d(const double *g, const double *c, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(g[i] - c[i]);
        if (e != e)
            return INFINITY;
        d = e > d ? e : d;
        m = fabs(c[i]) > m ? fabs(c[i]) : m;
    }
    return m > 0 ? d / m : d;
}

/* The error of a float tensor; -1 when the backends' memory ran out. */
static double tw_err(pair *p, const twin *t)
{
    void *g, *c;
    if (!t->g || !t->c)
        return -1;
    tw_get(p, t, &g, &c);
    double e = rel_err_f(g, c, t->bytes / sizeof(float));
    free(g);
    free(c);
    return e;
}

static int tw_same(pair *p, const twin *t)
{
    void *g, *c;
    tw_get(p, t, &g, &c);
    int same = memcmp(g, c, t->bytes) == 0;
    free(g);
    free(c);
    return same;
}

#define CHECK_PARITY(p, t, what)                                                                   \
    do {                                                                                           \
        double e_ = tw_err(&(p), &(t));                                                            \
        CHECK_MSG(e_ >= 0 && e_ <= TOL, "%s: relative error %.3g (GPU against CPU), above %g",     \
                  what, e_, TOL);                                                                  \
    } while (0)

#define CHECK_STATUS(p)                                                                            \
    CHECK_MSG(!(p).gpu->status || (p).gpu->status((p).gpu) == CN_OK, "the GPU reported: %s",       \
              cn_last_error())

/* Runs call (an expression using be and the twin member m) on both. */
#define BOTH(p, call)                                                                              \
    do {                                                                                           \
        {                                                                                          \
            cn_backend *be = (p).gpu;                                                              \
            int gpu_side = 1;                                                                      \
            (void)gpu_side;                                                                        \
            call;                                                                                  \
        }                                                                                          \
        {                                                                                          \
            cn_backend *be = (p).cpu;                                                              \
            int gpu_side = 0;                                                                      \
            (void)gpu_side;                                                                        \
            call;                                                                                  \
        }                                                                                          \
    } while (0)
/* A twin's memory on the side being called. */
#define M(t)        ((float *)(gpu_side ? (t).g : (t).c))
#define MV(t, type) ((type *)(gpu_side ? (t).g : (t).c))

/* ------------------------------------------------------------------ memory */

static void memory_moves(void)
{
    OPEN(p);
    twin a = tw_normal(&p, 1000, 1.0f), b = tw_normal(&p, 1000, 0.0f);
    CHECK(a.g && b.g);
    BOTH(p, be->copy(be, M(b), M(a), 1000 * sizeof(float)));
    CHECK(tw_same(&p, &b));
    BOTH(p, be->fill(be, M(b) + 100, 2.5f, 300));
    BOTH(p, be->fill(be, M(b) + 500, 0.0f, 100));
    CHECK(tw_same(&p, &b));
    float host[4] = {1, 2, 3, 4}, back[4];
    p.gpu->upload(p.gpu, (float *)b.g + 7, host, sizeof host);
    p.gpu->download(p.gpu, back, (float *)b.g + 7, sizeof back);
    CHECK(memcmp(host, back, sizeof host) == 0);
    /* alloc's memory is zeroed */
    twin z = tw_bytes(&p, NULL, 4096);
    CHECK(tw_same(&p, &z));
    size_t total = 0, avail = 0, peak = 0;
    CHECK(!p.cpu->memory && (!is_cuda(p.gpu) || p.gpu->memory));
    if (p.gpu->memory) {
        p.gpu->memory(p.gpu, &total, &avail, &peak);
        CHECK(total > 0 && avail <= total && peak >= 2 * 4000 + 4096);
    }
    CHECK_STATUS(p);
    tw_free(&p, &a);
    tw_free(&p, &b);
    tw_free(&p, &z);
    close_pair(&p);
}

/* ---------------------------------------------------------- linear algebra */

static void gemm_all_forms(void)
{
    OPEN(p);
    const size_t m = 37, n = 53, k = 71;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int beta1 = 0; beta1 < 2; beta1++) {
                size_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
                twin a = tw_normal(&p, (ta ? k : m) * lda, 1.0f);
                twin b = tw_normal(&p, (tb ? n : k) * ldb, 1.0f);
                twin c = tw_normal(&p, m * ldc, 1.0f);
                float beta = beta1 ? 1.0f : 0.0f;
                BOTH(p, be->gemm(be, ta, tb, m, n, k, 0.5f, M(a), lda, M(b), ldb, beta, M(c), ldc));
                char what[64];
                snprintf(what, sizeof what, "gemm ta=%d tb=%d beta=%g", ta, tb, beta);
                CHECK_PARITY(p, c, what);
                tw_free(&p, &a);
                tw_free(&p, &b);
                tw_free(&p, &c);
            }
    CHECK_STATUS(p);
    close_pair(&p);
}

static void bias_add_scale(void)
{
    OPEN(p);
    const size_t n = 9, m = 13, q = 49;
    twin y = tw_normal(&p, n * m * q, 1.0f), bias = tw_normal(&p, m, 1.0f);
    twin db = tw_normal(&p, m, 1.0f), z = tw_normal(&p, n * m * q, 1.0f);
    BOTH(p, be->add_bias(be, M(y), n, m, q, M(bias)));
    CHECK_PARITY(p, y, "add_bias");
    BOTH(p, be->bias_grad(be, M(y), n, m, q, M(db)));
    CHECK_PARITY(p, db, "bias_grad");
    BOTH(p, be->bias_grad(be, M(y), n * q, m, 1, M(db))); /* a fully connected layer's */
    CHECK_PARITY(p, db, "bias_grad (p = 1)");
    BOTH(p, be->add(be, M(y), M(z), M(z), n * m * q));
    CHECK_PARITY(p, z, "add");
    BOTH(p, be->scale(be, M(z), -0.37f, n * m * q));
    CHECK_PARITY(p, z, "scale");
    CHECK_STATUS(p);
    tw_free(&p, &y);
    tw_free(&p, &bias);
    tw_free(&p, &db);
    tw_free(&p, &z);
    close_pair(&p);
}

/* -------------------------------------------------------------- convolution */

static cn_win win(size_t c, size_t h, size_t w, size_t k, size_t stride, size_t pad)
{
    size_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
    return (cn_win){c, h, w, k, k, stride, pad, oh, ow};
}

static void conv_forward_and_backward(void)
{
    OPEN(p);
    /* 5x5 "same", 3x3 stride 2, 1x1, a valid 5x5 as LeNet's first layer */
    const cn_win geos[] = {win(3, 12, 12, 5, 1, 2), win(4, 11, 9, 3, 2, 1), win(6, 7, 7, 1, 1, 0),
                           win(1, 28, 28, 5, 1, 0)};
    const size_t ms[] = {8, 5, 16, 6};
    const size_t n = 7;
    for (size_t t = 0; t < sizeof ms / sizeof ms[0]; t++) {
        const cn_win *g = &geos[t];
        size_t m = ms[t], in = g->c * g->h * g->w, out = m * g->oh * g->ow;
        size_t wsg = p.gpu->conv_ws(p.gpu, g, m, n), wsc = p.cpu->conv_ws(p.cpu, g, m, n);
        twin x = tw_normal(&p, n * in, 1.0f), w = tw_normal(&p, m * g->c * g->kh * g->kw, 0.3f);
        twin b = tw_normal(&p, m, 0.5f), y = tw_normal(&p, n * out, 0.0f);
        twin dy = tw_normal(&p, n * out, 1.0f), dw = tw_normal(&p, m * g->c * g->kh * g->kw, 1.0f);
        twin db = tw_normal(&p, m, 1.0f), dx = tw_normal(&p, n * in, 0.0f);
        float *wg = p.gpu->alloc(p.gpu, (wsg ? wsg : 1) * sizeof(float));
        float *wc = p.cpu->alloc(p.cpu, (wsc ? wsc : 1) * sizeof(float));
        CHECK(wg && wc && x.g && dx.g);
        for (int relu = 0; relu < 2; relu++) {
            cn_act act = relu ? CN_ACT_RELU : CN_ACT_NONE;
            char what[96];
            BOTH(p,
                 be->conv_fwd(be, g, m, M(x), n, M(w), M(b), M(y), gpu_side ? wg : wc, NULL, act));
            snprintf(what, sizeof what, "conv_fwd %zu (act %d)", t, (int)act);
            CHECK_PARITY(p, y, what);
            /* Backward from the CPU's y, so that relu's mask is the same. */
            void *yg, *yc;
            tw_get(&p, &y, &yg, &yc);
            p.gpu->upload(p.gpu, y.g, yc, y.bytes);
            free(yg);
            free(yc);
            BOTH(p, be->conv_bwd(be, g, m, M(x), M(y), M(dy), n, M(w), M(dw), M(db), M(dx),
                                 gpu_side ? wg : wc, act));
            snprintf(what, sizeof what, "conv_bwd %zu (act %d) dw", t, (int)act);
            CHECK_PARITY(p, dw, what);
            snprintf(what, sizeof what, "conv_bwd %zu (act %d) db", t, (int)act);
            CHECK_PARITY(p, db, what);
            snprintf(what, sizeof what, "conv_bwd %zu (act %d) dx", t, (int)act);
            CHECK_PARITY(p, dx, what);
            /* no dx: the parameters' gradients still */
            BOTH(p, be->conv_bwd(be, g, m, M(x), M(y), M(dy), n, M(w), M(dw), M(db), NULL,
                                 gpu_side ? wg : wc, act));
            CHECK_PARITY(p, dw, "conv_bwd without dx: dw");
        }
        /* A batch larger than the planned one is done in parts. */
        twin x2 = tw_normal(&p, 3 * n * in, 1.0f), y2 = tw_normal(&p, 3 * n * out, 0.0f);
        BOTH(p, be->conv_fwd(be, g, m, M(x2), 3 * n, M(w), M(b), M(y2), gpu_side ? wg : wc, NULL,
                             CN_ACT_RELU));
        CHECK_PARITY(p, y2, "conv_fwd over three planned batches");
        tw_free(&p, &x2);
        tw_free(&p, &y2);
        p.gpu->free(p.gpu, wg);
        p.cpu->free(p.cpu, wc);
        twin all[] = {x, w, b, y, dy, dw, db, dx};
        for (size_t i = 0; i < 8; i++)
            tw_free(&p, &all[i]);
    }
    CHECK_STATUS(p);
    close_pair(&p);
}

/* ----------------------------------------------------------------- pooling */

static void pooling_is_exact(void)
{
    OPEN(p);
    const cn_win geos[] = {win(3, 12, 12, 2, 2, 0), win(2, 13, 11, 2, 2, 0), win(4, 9, 9, 3, 2, 0),
                           win(2, 8, 8, 3, 1, 0)};
    const size_t n = 5;
    for (size_t t = 0; t < 4; t++) {
        const cn_win *g = &geos[t];
        size_t in = n * g->c * g->h * g->w, out = n * g->c * g->oh * g->ow;
        twin x = tw_normal(&p, in, 1.0f), y = tw_normal(&p, out, 0.0f);
        twin dy = tw_normal(&p, out, 1.0f), dx = tw_normal(&p, in, 1.0f);
        /* After a relu: ties at zero, where the first in the window wins. */
        BOTH(p, be->act_fwd(be, CN_ACT_RELU, 0, M(x), M(x), in));
        BOTH(p, be->maxpool_fwd(be, g, M(x), n, M(y)));
        CHECK_MSG(tw_same(&p, &y), "maxpool_fwd %zu: not the same bits", t);
        BOTH(p, be->maxpool_bwd(be, g, M(x), M(dy), n, M(dx), CN_ACT_NONE));
        CHECK_MSG(tw_same(&p, &dx), "maxpool_bwd %zu: not the same bits", t);
        BOTH(p, be->avgpool_fwd(be, g, M(x), n, M(y)));
        CHECK_MSG(tw_same(&p, &y), "avgpool_fwd %zu: not the same bits", t);
        BOTH(p, be->avgpool_bwd(be, g, M(dy), n, M(dx)));
        CHECK_MSG(tw_same(&p, &dx), "avgpool_bwd %zu: not the same bits", t);
        tw_free(&p, &x);
        tw_free(&p, &y);
        tw_free(&p, &dy);
        tw_free(&p, &dx);
    }
    CHECK_STATUS(p);
    close_pair(&p);
}

/* ------------------------------------------------------------ element-wise */

static void activations(void)
{
    OPEN(p);
    const size_t n = 5000;
    for (int a = CN_ACT_NONE; a < CN_ACT_COUNT; a++) {
        twin x = tw_normal(&p, n, 2.0f), y = tw_normal(&p, n, 0.0f);
        twin dy = tw_normal(&p, n, 1.0f), dx = tw_normal(&p, n, 0.0f);
        char what[48];
        BOTH(p, be->act_fwd(be, (cn_act)a, 0.1f, M(x), M(y), n));
        snprintf(what, sizeof what, "act_fwd %d", a);
        CHECK_PARITY(p, y, what);
        BOTH(p, be->act_bwd(be, (cn_act)a, 0.1f, M(x), M(y), M(dy), M(dx), n));
        snprintf(what, sizeof what, "act_bwd %d", a);
        CHECK_PARITY(p, dx, what);
        tw_free(&p, &x);
        tw_free(&p, &y);
        tw_free(&p, &dy);
        tw_free(&p, &dx);
    }
    CHECK_STATUS(p);
    close_pair(&p);
}

static void dropout_masks_match(void)
{
    OPEN(p);
    const size_t n = 100003;
    twin x = tw_normal(&p, n, 1.0f), y = tw_normal(&p, n, 0.0f);
    BOTH(p, be->dropout_fwd(be, M(x), M(y), n, 0.3f, 0x1234567890abcdefULL, 77));
    CHECK_MSG(tw_same(&p, &y), "dropout_fwd: the masks or scales differ");
    BOTH(p, be->dropout_bwd(be, M(x), M(y), n, 0.5f, 99, 1u << 20));
    CHECK_MSG(tw_same(&p, &y), "dropout_bwd: the masks or scales differ");
    CHECK_STATUS(p);
    tw_free(&p, &x);
    tw_free(&p, &y);
    close_pair(&p);
}

static void batchnorm(void)
{
    OPEN(p);
    const size_t shapes[][3] = {{16, 6, 49}, {32, 20, 1}, {3, 4, 100}};
    for (size_t t = 0; t < 3; t++) {
        size_t n = shapes[t][0], c = shapes[t][1], hw = shapes[t][2], all = n * c * hw;
        twin x = tw_normal(&p, all, 2.0f), y = tw_normal(&p, all, 0.0f);
        twin gamma = tw_normal(&p, c, 1.0f), beta = tw_normal(&p, c, 1.0f);
        twin rm = tw_normal(&p, c, 0.5f), rv = tw_normal(&p, c, 0.0f);
        twin sm = tw_normal(&p, 2 * c, 0.0f),
             scr = tw_bytes(&p, NULL, CN_BN_SCRATCH(c) * sizeof(double));
        twin dy = tw_normal(&p, all, 1.0f), dx = tw_normal(&p, all, 0.0f);
        twin dg = tw_normal(&p, c, 1.0f), dbeta = tw_normal(&p, c, 1.0f);
        BOTH(p, be->fill(be, M(rv), 1.5f, c));
        for (int train = 1; train >= 0; train--) {
            BOTH(p, be->bn_fwd(be, M(x), n, c, hw, M(gamma), M(beta), M(rm), M(rv), 0.1f, 1e-5f,
                               train, M(sm), M(sm) + c, MV(scr, double), M(y), CN_ACT_NONE));
            char what[64];
            snprintf(what, sizeof what, "bn_fwd %zu (train %d)", t, train);
            CHECK_PARITY(p, y, what);
            CHECK_PARITY(p, rm, "bn_fwd: the running mean");
            CHECK_PARITY(p, rv, "bn_fwd: the running variance");
            if (train)
                CHECK_PARITY(p, sm, "bn_fwd: the batch's mean and 1/std");
        }
        /* backward after a training pass */
        BOTH(p, be->bn_fwd(be, M(x), n, c, hw, M(gamma), M(beta), M(rm), M(rv), 0.1f, 1e-5f, 1,
                           M(sm), M(sm) + c, MV(scr, double), M(y), CN_ACT_NONE));
        BOTH(p, be->bn_bwd(be, M(x), NULL, M(dy), n, c, hw, M(gamma), M(sm), M(sm) + c,
                           MV(scr, double), M(dg), M(dbeta), M(dx), CN_ACT_NONE));
        CHECK_PARITY(p, dg, "bn_bwd dgamma");
        CHECK_PARITY(p, dbeta, "bn_bwd dbeta");
        CHECK_PARITY(p, dx, "bn_bwd dx");
        BOTH(p, be->bn_bwd(be, M(x), NULL, M(dy), n, c, hw, M(gamma), M(sm), M(sm) + c,
                           MV(scr, double), M(dg), M(dbeta), NULL, CN_ACT_NONE));
        CHECK_PARITY(p, dg, "bn_bwd without dx: dgamma");
        twin all_t[] = {x, y, gamma, beta, rm, rv, sm, scr, dy, dx, dg, dbeta};
        for (size_t i = 0; i < 12; i++)
            tw_free(&p, &all_t[i]);
    }
    CHECK_STATUS(p);
    close_pair(&p);
}

/* ---------------------------------------------------------- input and loss */

static void input_from_pixels_is_exact(void)
{
    OPEN(p);
    const size_t n = 6, c = 3, hw = 1024;
    uint8_t *pix = malloc(n * c * hw);
    CHECK(pix);
    for (size_t i = 0; i < n * c * hw; i++)
        pix[i] = (uint8_t)cn_rng_below(&p.rng, 256);
    float norm[6] = {0.49f, 0.48f, 0.45f, 0.247f, 0.243f, 0.261f};
    twin tp = tw_bytes(&p, pix, n * c * hw), tn = tw_bytes(&p, norm, sizeof norm);
    twin x = tw_normal(&p, n * c * hw, 0.0f);
    BOTH(p, be->input_from_pixels(be, MV(tp, uint8_t), n, c, hw, M(tn), M(x)));
    CHECK_MSG(tw_same(&p, &x), "input_from_pixels: not the same bits");
    CHECK_STATUS(p);
    free(pix);
    tw_free(&p, &tp);
    tw_free(&p, &tn);
    tw_free(&p, &x);
    close_pair(&p);
}

/* A batch gathered from a data set on the device, moved and mirrored with
 * the host generator's draws (computed again on the GPU), then prepared:
 * the same bytes and floats. */
static void gather_pixels_is_exact(void)
{
    OPEN(p);
    const cn_shape s = {3, 13, 11};
    const size_t total = 50, n = 37, size = s.c * s.h * s.w;
    uint8_t *data = malloc(total * size);
    uint32_t idx[37];
    CHECK(data);
    for (size_t i = 0; i < total * size; i++)
        data[i] = (uint8_t)cn_rng_below(&p.rng, 256);
    for (size_t i = 0; i < n; i++)
        idx[i] = (uint32_t)cn_rng_below(&p.rng, total);
    float norm[6] = {0.5f, 0.4f, 0.3f, 0.25f, 0.2f, 0.3f};
    twin td = tw_bytes(&p, data, total * size), ti = tw_bytes(&p, idx, sizeof idx);
    twin tn = tw_bytes(&p, norm, sizeof norm), pix = tw_bytes(&p, NULL, n * size);
    twin x = tw_normal(&p, n * size, 0.0f);
    /* Moves and mirrors; then rotations, scaling and shears (bilinear, in
     * fixed point) with and without them; erasing, always or half the time,
     * alone and after the rest. */
    static const cn_aug augs[] = {{0, 0, 0, 0, 0, 0, 0},
                                  {1, 0, 0, 0, 0, 0, 0},
                                  {2, 1, 0, 0, 0, 0, 0},
                                  {0, 1, 0, 0, 0, 0, 0},
                                  {0, 0, 205887, 0, 0, 0, 0},
                                  {0, 0, 0, 32768, 0, 0, 0},
                                  {0, 0, 0, 0, 68629, 0, 0},
                                  {2, 1, 11438, 6554, 5719, 0, 0},
                                  {0, 0, 0, 0, 0, 16777216, 0},
                                  {1, 1, 0, 0, 0, 8388608, 0},
                                  {2, 1, 11438, 6554, 5719, 8388608, 0},
                                  {0, 0, 0, 0, 0, 0, 163840},
                                  {2, 1, 11438, 6554, 5719, 8388608, 131072}};
    for (size_t a = 0; a < sizeof augs / sizeof augs[0]; a++) {
        BOTH(p, be->gather_pixels(be, MV(td, uint8_t), MV(ti, uint32_t), n, s, augs[a],
                                  0xabcdefULL + (uint64_t)a, 1000, M(tn), MV(pix, uint8_t), M(x)));
        CHECK_MSG(tw_same(&p, &pix), "gather_pixels (augmentation %zu): other pixels", a);
        CHECK_MSG(tw_same(&p, &x), "gather_pixels (augmentation %zu): other inputs", a);
    }
    CHECK_STATUS(p);
    free(data);
    tw_free(&p, &td);
    tw_free(&p, &ti);
    tw_free(&p, &tn);
    tw_free(&p, &pix);
    tw_free(&p, &x);
    close_pair(&p);
}

static void softmax_and_loss(void)
{
    OPEN(p);
    const size_t rows = 300, cols = 10;
    int32_t labels[300];
    for (size_t r = 0; r < rows; r++)
        labels[r] = (int32_t)cn_rng_below(&p.rng, cols);
    twin z = tw_normal(&p, rows * cols, 3.0f), y = tw_normal(&p, rows * cols, 0.0f);
    twin dx = tw_normal(&p, rows * cols, 0.0f), lab = tw_bytes(&p, labels, sizeof labels);
    twin loss = tw_bytes(&p, NULL, rows * sizeof(double));
    twin best = tw_bytes(&p, NULL, rows * sizeof(int32_t)), bp = tw_normal(&p, rows, 0.0f);
    BOTH(p, be->softmax(be, M(z), M(y), rows, cols));
    CHECK_PARITY(p, y, "softmax");
    /* The rest from the same probabilities. */
    void *yg, *yc;
    tw_get(&p, &y, &yg, &yc);
    p.gpu->upload(p.gpu, y.g, yc, y.bytes);
    free(yg);
    free(yc);
    /* The negative log-likelihood, then label smoothing. */
    for (int s = 0; s < 2; s++) {
        float smooth = s ? 0.1f : 0.0f;
        BOTH(p, be->softmax_nll_bwd(be, M(y), MV(lab, int32_t), rows, cols, smooth, M(dx)));
        CHECK_PARITY(p, dx, "softmax_nll_bwd");
        BOTH(p, be->nll_rows(be, M(z), M(y), MV(lab, int32_t), rows, cols, smooth, MV(loss, double),
                             MV(best, int32_t), M(bp)));
        void *lg, *lc;
        tw_get(&p, &loss, &lg, &lc);
        double e = rel_err_d(lg, lc, rows);
        free(lg);
        free(lc);
        CHECK_MSG(e <= TOL, "nll_rows (smoothing %g): the losses' relative error %.3g", smooth, e);
        CHECK_MSG(tw_same(&p, &best), "nll_rows: another best class");
        CHECK_MSG(tw_same(&p, &bp), "nll_rows: another best probability");
    }
    CHECK_STATUS(p);
    twin all[] = {z, y, dx, lab, loss, best, bp};
    for (size_t i = 0; i < 7; i++)
        tw_free(&p, &all[i]);
    close_pair(&p);
}

/* -------------------------------------------------------------- optimizers */

static void optimizers(void)
{
    OPEN(p);
    const size_t n = 70001;
    twin th = tw_normal(&p, n, 1.0f), g = tw_normal(&p, n, 0.1f), m = tw_normal(&p, n, 0.01f);
    twin v = tw_normal(&p, n, 0.0f);
    for (int s = 0; s < 5; s++)
        BOTH(p, be->sgd(be, n, M(th), M(g), M(m), 0.1f, 0.9f, 5e-4f));
    CHECK_PARITY(p, th, "sgd: the parameters");
    CHECK_PARITY(p, m, "sgd: the momentum");
    const float hyper[8] = {1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, 1e-2f, 10.0f, 1000.0f};
    for (int s = 0; s < 5; s++)
        BOTH(p, be->adam(be, n, M(th), M(g), M(m), M(v), hyper));
    CHECK_PARITY(p, th, "adam: the parameters");
    CHECK_PARITY(p, m, "adam: the first moment");
    CHECK_PARITY(p, v, "adam: the second moment");
    /* The moving average of the weights: the same bits (no fused
     * multiply-add on either side). */
    for (int s = 0; s < 5; s++)
        BOTH(p, be->ema(be, M(v), M(th), n, s == 0 ? 0.1f : 0.999f));
    CHECK_MSG(tw_same(&p, &v), "ema: other bits");
    CHECK_STATUS(p);
    tw_free(&p, &th);
    tw_free(&p, &g);
    tw_free(&p, &m);
    tw_free(&p, &v);
    close_pair(&p);
}

static void checks_and_stats(void)
{
    OPEN(p);
    const size_t rows = 17, units = 300, size = 25, n = rows * units * size;
    float *h = malloc(n * sizeof *h);
    CHECK(h);
    for (size_t i = 0; i < n; i++)
        h[i] = (float)cn_rng_normal(&p.rng);
    for (size_t u = 0; u < units; u += 7) /* dead units: nothing above 0 */
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < size; j++)
                h[(r * units + u) * size + j] = -fabsf(h[(r * units + u) * size + j]);
    h[5] = NAN;
    h[n - 1] = INFINITY;
    h[1000] = -INFINITY;
    twin x = tw_bytes(&p, h, n * sizeof *h);
    size_t bg = p.gpu->count_nonfinite(p.gpu, x.g, n), bc = p.cpu->count_nonfinite(p.cpu, x.c, n);
    CHECK_MSG(bg == bc && bc == 3, "count_nonfinite: GPU %zu, CPU %zu", bg, bc);
    double sg[5], sc[5];
    p.gpu->stats(p.gpu, x.g, rows, units, size, sg);
    p.cpu->stats(p.cpu, x.c, rows, units, size, sc);
    CHECK_MSG(fabs(sg[0] - sc[0]) <= TOL * sc[1] && rel_err_d(sg + 1, sc + 1, 1) <= TOL,
              "stats: sums %g %g against %g %g", sg[0], sg[1], sc[0], sc[1]);
    CHECK_MSG(sg[2] == sc[2] && sg[3] == sc[3] && sg[4] == sc[4],
              "stats: largest %g, non-finite %g, dead %g against %g, %g, %g", sg[2], sg[3], sg[4],
              sc[2], sc[3], sc[4]);
    CHECK_STATUS(p);
    free(h);
    tw_free(&p, &x);
    close_pair(&p);
}

/* A fault is reported, not crashed on: a product too large for cuBLAS's
 * int sizes is refused and status() says so. */
static void faults_are_reported(void)
{
    OPEN(p);
    if (!is_cuda(p.gpu)) {
        close_pair(&p);
        SKIP("the stand-in %s is not the CUDA backend", gpu_name());
    }
    CHECK(p.gpu->status && p.gpu->status(p.gpu) == CN_OK);
    p.gpu->gemm(p.gpu, 0, 0, (size_t)1 << 33, 1, 1, 1.0f, NULL, 1, NULL, 1, 0.0f, NULL, 1);
    CHECK(p.gpu->status(p.gpu) == CN_ERR_ARG);
    CHECK(strstr(cn_last_error(), "too large") != NULL);
    close_pair(&p);
}

/* ---------------------------------------------------------- whole networks */

static const char *SMALL =
    "[net]\nchannels=1\nheight=8\nwidth=8\nclasses=2\n"
    "[train]\nepochs=2\nbatch=16\nlr=0.05\nmomentum=0.9\ndecay=0.001\nseed=3\nshift=1\nflip=1\n"
    "[conv]\nname=c1\nfilters=4\nsize=3\npad=1\n[relu]\n[conv]\nfilters=4\nsize=3\npad=1\n"
    "[batchnorm]\n[leaky]\n[shortcut]\nfrom=c1\n[gelu]\n[maxpool]\n[conv]\nfilters=4\nsize=3\n"
    "pad=1\n[silu]\n[avgpool]\nsize=2\n[fc]\noutputs=8\n[sigmoid]\n[dropout]\nrate=0.25\n"
    "[fc]\noutputs=6\n[tanh]\n[fc]\noutputs=2\n[softmax]\n";

static cn_model *model_on(const char *backend)
{
    cn_spec *spec = th_spec(SMALL);
    cn_model *m = NULL;
    const cn_device dev = {backend, 0, 1};
    cn_status st = spec ? cn_model_create(spec, NULL, &dev, &m) : CN_ERR_SPEC;
    cn_spec_free(spec);
    return st ? NULL : m;
}

/* Every kind of layer trained on both from the same seed: the same losses
 * to 1e-3, the same validation accuracy but for a sample, and each model file read
 * on the other device gives its accuracy. */
static void every_layer_trains_alike(void)
{
    cn_model *gpu = model_on(gpu_name());
    if (!gpu)
        SKIP("no GPU to compare with: %s", cn_last_error());
    cn_model *cpu = model_on("cpu");
    CHECK(cpu);
    cn_data train = th_bars(320, 1, 8), val = th_bars(200, 2, 8);
    CHECK_OK(cn_model_train(gpu, &train, &val, NULL));
    CHECK_OK(cn_model_train(cpu, &train, &val, NULL));
    cn_eval eg, ec;
    CHECK_OK(cn_net_evaluate(gpu->net, &val, &eg));
    CHECK_OK(cn_net_evaluate(cpu->net, &val, &ec));
    printf("    gpu: loss %.6f, accuracy %.4f; cpu: loss %.6f, accuracy %.4f\n", eg.loss,
           eg.accuracy, ec.loss, ec.accuracy);
    CHECK_NEAR(eg.loss, ec.loss, 1e-3);
    CHECK_NEAR(eg.accuracy, ec.accuracy, 0.006); /* one sample of 200 may tip over */
    /* across devices */
    const char *path = "cuda_model.safetensors";
    CHECK_OK(cn_model_save(gpu, path));
    cn_model *back = NULL;
    CHECK_OK(cn_model_load(path, &(cn_device){"cpu", 0, 1}, &back));
    cn_eval eb;
    CHECK_OK(cn_net_evaluate(back->net, &val, &eb));
    CHECK_NEAR(eb.accuracy, eg.accuracy, 1e-9);
    CHECK_NEAR(eb.loss, eg.loss, 1e-4);
    cn_eval_free(&eb);
    cn_model_free(back);
    CHECK_OK(cn_model_save(cpu, path));
    CHECK_OK(cn_model_load(path, &(cn_device){gpu_name(), 0, 1}, &back));
    CHECK_OK(cn_net_evaluate(back->net, &val, &eb));
    CHECK_NEAR(eb.accuracy, ec.accuracy, 1e-9);
    CHECK_NEAR(eb.loss, ec.loss, 1e-4);
    remove(path);
    cn_eval_free(&eg);
    cn_eval_free(&ec);
    cn_eval_free(&eb);
    cn_model_free(back);
    cn_model_free(gpu);
    cn_model_free(cpu);
    cn_data_free(&train);
    cn_data_free(&val);
}

/* Two runs on the GPU from the same seed: the same parameters, buffers and
 * optimizer state, bit for bit. */
static void gpu_runs_are_deterministic(void)
{
    cn_model *a = model_on(gpu_name());
    if (!a)
        SKIP("no GPU to compare with: %s", cn_last_error());
    cn_model *b = model_on(gpu_name());
    CHECK(b);
    cn_data train = th_bars(320, 1, 8), val = th_bars(64, 2, 8);
    CHECK_OK(cn_model_train(a, &train, &val, NULL));
    CHECK_OK(cn_model_train(b, &train, &val, NULL));
    CHECK(th_same(a->net, b->net, CN_PARAMS) && th_same(a->net, b->net, CN_BUFFERS) &&
          th_same_optim(a, b));
    cn_model_free(a);
    cn_model_free(b);
    cn_data_free(&train);
    cn_data_free(&val);
}

/* The layers' own gradient checks, on the GPU. */
static void gradients_check_on_gpu(void)
{
    cn_spec *spec = th_spec(SMALL);
    cn_net *net = NULL;
    CHECK(spec);
    if (cn_net_create(spec, 4, &(cn_device){gpu_name(), 0, 1}, &net)) {
        cn_spec_free(spec);
        SKIP("no GPU to check on: %s", cn_last_error());
    }
    cn_rng rng;
    cn_rng_seed(&rng, 5);
    cn_net_init(net, &rng);
    for (size_t i = 0; i <= cn_net_num_layers(net); i++) {
        cn_gradcheck gc;
        if (i < cn_net_num_layers(net))
            CHECK_OK(cn_gradcheck_layer(net, i, 4, 50, &rng, &gc));
        else
            CHECK_OK(cn_gradcheck_net(net, 4, 50, &rng, &gc));
        CHECK_MSG(gc.input_err < CN_GRADCHECK_TOL && gc.param_err < CN_GRADCHECK_TOL,
                  "row %zu: input error %.2g, parameter error %.2g", i, gc.input_err, gc.param_err);
    }
    cn_net_free(net);
    cn_spec_free(spec);
}

/* Too little GPU memory is refused before anything is allocated, naming
 * the line of the description that needs the most and what is free. */
static void too_little_memory_is_refused(void)
{
    cn_spec *spec = NULL;
    CHECK_OK(cn_spec_parse("[net]\nchannels=3\nheight=1024\nwidth=1024\nclasses=2\n[conv]\n"
                           "filters=4096\nsize=3\npad=1\n[fc]\noutputs=2\n[softmax]\n",
                           "big.cfg", &spec));
    cn_net *net = NULL;
    cn_backend *probe = NULL;
    if (cn_backend_create(&(cn_device){"cuda", 0, 1}, NULL, &probe)) {
        cn_spec_free(spec);
        SKIP("no GPU to fill: %s", cn_last_error());
    }
    cn_backend_destroy(probe);
    CHECK_ERR(cn_net_create(spec, 256, &(cn_device){"cuda", 0, 1}, &net), CN_ERR_NOMEM);
    CHECK_MSG(strstr(cn_last_error(), "big.cfg:") && strstr(cn_last_error(), " needs ") &&
                  strstr(cn_last_error(), "free on the GPU"),
              "%s", cn_last_error());
    cn_spec_free(spec);
}

const th_test th_cuda[] = {
    {"cuda/memory_moves", memory_moves},
    {"cuda/gemm_all_forms", gemm_all_forms},
    {"cuda/bias_add_scale", bias_add_scale},
    {"cuda/conv_forward_and_backward", conv_forward_and_backward},
    {"cuda/pooling_is_exact", pooling_is_exact},
    {"cuda/activations", activations},
    {"cuda/dropout_masks_match", dropout_masks_match},
    {"cuda/batchnorm", batchnorm},
    {"cuda/input_from_pixels_is_exact", input_from_pixels_is_exact},
    {"cuda/gather_pixels_is_exact", gather_pixels_is_exact},
    {"cuda/softmax_and_loss", softmax_and_loss},
    {"cuda/optimizers", optimizers},
    {"cuda/checks_and_stats", checks_and_stats},
    {"cuda/faults_are_reported", faults_are_reported},
    {"cuda/every_layer_trains_alike", every_layer_trains_alike},
    {"cuda/gpu_runs_are_deterministic", gpu_runs_are_deterministic},
    {"cuda/gradients_check_on_gpu", gradients_check_on_gpu},
    {"cuda/too_little_memory_is_refused", too_little_memory_is_refused},
    {NULL, NULL},
};
