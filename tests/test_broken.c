/* test_broken.c - the gradient check catches a broken backward pass of every
 * layer kind.
 *
 * Each case builds a small network on the CPU backend, checks that the
 * gradient check passes on it, then swaps a broken function into the
 * backend's kernel table (below the device seam, where a real mistake in a
 * kernel would sit) and checks that the same gradient check now fails.  The
 * broken functions are the mistakes one makes writing a backward pass: a
 * missing term, a derivative of the wrong variable, a forgotten scale, a
 * lost channel or sample, "=" for "+=".  Each breaks the backward kernel
 * only; forward passes are untouched, so the numerical derivatives stay
 * right and the analytic ones go wrong.
 *
 * Layers are checked on their own (cn_gradcheck_layer, coordinate by
 * coordinate) except [shortcut]: its backward pass sends most of its work to
 * the earlier layer it reads (l->dextra), which the check of the layer alone
 * does not see, so its case runs the whole-network check.
 *
 * gradcheck/broken/every_kind fails when a kind of layers/kinds.h has no
 * case here: a new kind comes with a proof that its gradient is checked.
 *
 * These tests patch the CPU backend's table and read its memory on the host:
 * they always run on the CPU backend, whatever CONVNET_TEST_BACKEND says
 * (tests/run.sh leaves them out of its run on the guard backend, where they
 * would only repeat). */
#include "harness.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* The tolerances of the gradient checks in test_layers.c: measured errors of
 * correct layers are 1e-6 to 3e-3, broken ones give 2e-2 to 1 (printed by
 * each case below). */
#define LAYER_TOL 1e-2
#define NET_TOL   1e-2

/* -------------------------------------------------------- broken kernels */

/* The real kernels that the broken ones call, saved by the patch. */
static cn_backend real;

/* Convolution: 0 one wrong input gradient, 1 one wrong weight gradient, 2
 * the last channel's bias gradient lost. */
static int conv_fault;
static void bad_conv_bwd(const cn_backend *be, const cn_win *g, size_t m, const float *x,
                         const float *y, const float *dy, size_t n, const float *w, float *dw,
                         float *db, float *dx, float *ws, cn_act act)
{
    real.conv_bwd(be, g, m, x, y, dy, n, w, dw, db, dx, ws, act);
    if (conv_fault == 0 && dx)
        dx[1] *= 1.5f;
    if (conv_fault == 1)
        dw[2] *= 0.9f;
    if (conv_fault == 2)
        db[m - 1] = 0;
}

/* Bias gradient that misses the last channel. */
static void bad_bias_grad(const cn_backend *be, const float *dy, size_t n, size_t m, size_t p,
                          float *db)
{
    real.bias_grad(be, dy, n, m > 1 ? m - 1 : m, p, db);
}

/* The fully connected layer's backward products (its forward product is
 * x W^T: ta = 0, tb = 1, left alone).  1: dW = dy^T x (ta = 1) misses the
 * batch's last sample; 2: dx = dy W (ta = tb = 0) misses the last output. */
static int gemm_fault;
static void bad_gemm(const cn_backend *be, int ta, int tb, size_t m, size_t n, size_t k,
                     float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                     float beta, float *c, size_t ldc)
{
    if (((gemm_fault == 1 && ta && !tb) || (gemm_fault == 2 && !ta && !tb)) && k > 1)
        k--;
    real.gemm(be, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* Max pooling: the first column's gradient halved. */
static void bad_maxpool_bwd(const cn_backend *be, const cn_win *g, const float *x, const float *dy,
                            size_t n, float *dx, cn_act act)
{
    real.maxpool_bwd(be, g, x, dy, n, dx, act);
    for (size_t i = 0; i < n * g->c * g->h * g->w; i += g->w)
        dx[i] *= 0.5f;
}

/* The same from the switches a training pass noted (maxpool_bwd_sw). */
static void bad_maxpool_bwd_sw(const cn_backend *be, const cn_win *g, const uint8_t *sw,
                               const float *dy, size_t n, float *dx, cn_act act)
{
    real.maxpool_bwd_sw(be, g, sw, dy, n, dx, act);
    for (size_t i = 0; i < n * g->c * g->h * g->w; i += g->w)
        dx[i] *= 0.5f;
}

/* Average pooling whose overlapping windows overwrite each other's gradient
 * ("=" for "+="). */
static void bad_avgpool_overwrites(const cn_backend *be, const cn_win *g, const float *dy, size_t n,
                                   float *dx)
{
    (void)be;
    float inv = 1.0f / (float)(g->kh * g->kw);
    memset(dx, 0, n * g->c * g->h * g->w * sizeof *dx);
    for (size_t p = 0; p < n * g->c; p++)
        for (size_t i = 0; i < g->oh; i++)
            for (size_t j = 0; j < g->ow; j++)
                for (size_t a = 0; a < g->kh; a++)
                    for (size_t b = 0; b < g->kw; b++)
                        dx[p * g->h * g->w + (i * g->stride + a) * g->w + j * g->stride + b] =
                            dy[(p * g->oh + i) * g->ow + j] * inv;
}

/* Average pooling that divides by the window's height only. */
static void bad_avgpool_height(const cn_backend *be, const cn_win *g, const float *dy, size_t n,
                               float *dx)
{
    real.avgpool_bwd(be, g, dy, n, dx);
    for (size_t i = 0; i < n * g->c * g->h * g->w; i++)
        dx[i] *= (float)g->kw;
}

/* Batch normalisation's backward pass written out, with a mistake:
 * 1: dx misses the term xhat mean(dy xhat); 2: dgamma sums dy, not dy xhat
 * (dbeta's sum copied). */
static int bn_fault;
static void bad_bn_bwd(const cn_backend *be, const float *x, const float *y, const float *dy,
                       size_t n, size_t c, size_t hw, const float *gamma, const float *save_mean,
                       const float *save_invstd, double *scratch, float *dgamma, float *dbeta,
                       float *dx, cn_act act)
{
    (void)be;
    (void)scratch;
    double count = (double)(n * hw);
/* the gradient before a fused relu */
#define DY(at) (act == CN_ACT_RELU && !(y[at] > 0.0f) ? 0.0 : (double)dy[at])
    for (size_t ch = 0; ch < c; ch++) {
        double mean = save_mean[ch], is = save_invstd[ch], s1 = 0, s2 = 0;
        for (size_t s = 0; s < n; s++)
            for (size_t j = 0; j < hw; j++) {
                size_t at = (s * c + ch) * hw + j;
                s1 += DY(at);
                s2 += DY(at) * (x[at] - mean) * is;
            }
        dbeta[ch] += (float)s1;
        dgamma[ch] += (float)(bn_fault == 2 ? s1 : s2);
        for (size_t s = 0; dx && s < n; s++)
            for (size_t j = 0; j < hw; j++) {
                size_t at = (s * c + ch) * hw + j;
                double xhat = (x[at] - mean) * is;
                double t = DY(at) - s1 / count - (bn_fault == 1 ? 0.0 : xhat * s2 / count);
                dx[at] = (float)(gamma[ch] * is * t);
            }
    }
#undef DY
}

/* Dropout without the 1 / (1 - rate) scale of the kept values. */
static void bad_dropout_bwd(const cn_backend *be, const float *dy, float *dx, size_t count,
                            float rate, uint64_t key, uint64_t first)
{
    real.dropout_bwd(be, dy, dx, count, rate, key, first);
    for (size_t i = 0; i < count; i++)
        dx[i] *= 1.0f - rate;
}

/* One activation's derivative done wrong; the others left right. */
static cn_act broken_act;
static void bad_act_bwd(const cn_backend *be, cn_act a, float param, const float *x, const float *y,
                        const float *dy, float *dx, size_t count)
{
    if (a != broken_act) {
        real.act_bwd(be, a, param, x, y, dy, dx, count);
        return;
    }
    for (size_t i = 0; i < count; i++) {
        double d = 0, s, t;
        switch (a) {
        case CN_ACT_RELU: d = y[i] >= 0; break; /* relu' taken as 1 at y = 0, so for x < 0 */
        case CN_ACT_LEAKY: d = y[i] > 0; break; /* the slope forgotten: relu's derivative */
        case CN_ACT_SIGMOID:                    /* s(y) (1 - s(y)): y taken for x */
            s = 1 / (1 + exp(-(double)y[i]));
            d = s * (1 - s);
            break;
        case CN_ACT_TANH: d = 1 - y[i]; break; /* 1 - y for 1 - y^2 */
        case CN_ACT_GELU:                      /* the tanh's own derivative forgotten */
            t = tanh(0.7978845608028654 * (x[i] + 0.044715 * x[i] * x[i] * x[i]));
            d = 0.5 * (1 + t);
            break;
        case CN_ACT_SILU: /* s for s (1 + x (1 - s)) */ d = 1 / (1 + exp(-(double)x[i])); break;
        case CN_ACT_NONE:
        case CN_ACT_COUNT: d = 1; break;
        }
        dx[i] = (float)(dy[i] * d);
    }
}

/* The loss layer's gradient without the mean over the batch. */
static void bad_softmax_bwd(const cn_backend *be, const float *y, const int32_t *labels,
                            size_t rows, size_t cols, float smooth, float *dx)
{
    real.softmax_nll_bwd(be, y, labels, rows, cols, smooth, dx);
    for (size_t i = 0; i < rows * cols; i++)
        dx[i] *= (float)rows;
}

/* The loss layer's gradient against the one-hot target, the smoothing
 * forgotten. */
static void unsmoothed_softmax_bwd(const cn_backend *be, const float *y, const int32_t *labels,
                                   size_t rows, size_t cols, float smooth, float *dx)
{
    (void)smooth;
    real.softmax_nll_bwd(be, y, labels, rows, cols, 0.0f, dx);
}

/* A shortcut's backward pass sets the gradient of the earlier layer it
 * reads instead of adding to it ("=" for "+="): with two shortcuts from one
 * layer, one's gradient is lost.  The addition is told apart by where it
 * writes: into a gradient that a shortcut sends back (l->dextra). */
static const float *shortcut_grads[8];
static size_t n_shortcut_grads;
static void bad_add(const cn_backend *be, const float *a, const float *b, float *y, size_t count)
{
    for (size_t k = 0; k < n_shortcut_grads; k++)
        if (y == shortcut_grads[k] && a == y) {
            memcpy(y, b, count * sizeof *y);
            return;
        }
    real.add(be, a, b, y, count);
}

/* ---------------------------------------------------------------- patches */

static void patch_conv_dx(cn_net *net) { conv_fault = 0, net->be->conv_bwd = bad_conv_bwd; }
static void patch_conv_dw(cn_net *net) { conv_fault = 1, net->be->conv_bwd = bad_conv_bwd; }
static void patch_conv_db(cn_net *net) { conv_fault = 2, net->be->conv_bwd = bad_conv_bwd; }
static void patch_bias(cn_net *net) { net->be->bias_grad = bad_bias_grad; }
static void patch_fc_dw(cn_net *net) { gemm_fault = 1, net->be->gemm = bad_gemm; }
static void patch_fc_dx(cn_net *net) { gemm_fault = 2, net->be->gemm = bad_gemm; }
static void patch_maxpool(cn_net *net)
{
    net->be->maxpool_bwd = bad_maxpool_bwd;
    net->be->maxpool_bwd_sw = bad_maxpool_bwd_sw;
}
static void patch_avgpool_overwrites(cn_net *net) { net->be->avgpool_bwd = bad_avgpool_overwrites; }
static void patch_avgpool_height(cn_net *net) { net->be->avgpool_bwd = bad_avgpool_height; }
static void patch_bn_dx(cn_net *net) { bn_fault = 1, net->be->bn_bwd = bad_bn_bwd; }
static void patch_bn_dgamma(cn_net *net) { bn_fault = 2, net->be->bn_bwd = bad_bn_bwd; }
static void patch_dropout(cn_net *net) { net->be->dropout_bwd = bad_dropout_bwd; }
static void patch_softmax(cn_net *net) { net->be->softmax_nll_bwd = bad_softmax_bwd; }
#define PATCH_ACT(name, a)                                                                         \
    static void patch_##name(cn_net *net)                                                          \
    {                                                                                              \
        broken_act = a;                                                                            \
        net->be->act_bwd = bad_act_bwd;                                                            \
    }
PATCH_ACT(relu, CN_ACT_RELU)
PATCH_ACT(leaky, CN_ACT_LEAKY)
PATCH_ACT(sigmoid, CN_ACT_SIGMOID)
PATCH_ACT(tanh, CN_ACT_TANH)
PATCH_ACT(gelu, CN_ACT_GELU)
PATCH_ACT(silu, CN_ACT_SILU)
static void patch_shortcut(cn_net *net)
{
    n_shortcut_grads = 0;
    for (size_t i = 0; i < net->n_layers; i++)
        if (strcmp(net->layers[i].ops->kind, "shortcut") == 0 && n_shortcut_grads < 8)
            shortcut_grads[n_shortcut_grads++] = net->layers[i].dextra[0];
    net->be->add = bad_add;
}

/* ------------------------------------------------------------------ cases */

typedef struct bcase {
    const char *kind; /* the layer kind whose backward pass is broken */
    const char *what; /* how */
    const char *cfg;  /* the network */
    size_t batch;
    long layer; /* the layer checked on its own, or -1: the whole network */
    void (*patch)(cn_net *net);
} bcase;

#define NET(c, h, w, classes)                                                                      \
    "[net]\nchannels=" #c "\nheight=" #h "\nwidth=" #w "\nclasses=" #classes "\n"

/* Conv: 4 filters (the bias gradient of the last is lost) of 3x3 over 2x5x5. */
#define CONV_NET     NET(2, 5, 5, 36) "[conv]\nfilters=4\nsize=3\n[softmax]\n"
#define FC_NET       NET(1, 1, 4, 3) "[fc]\noutputs=3\n[softmax]\n"
#define ACT_NET(act) NET(1, 1, 8, 8) "[" act "]\n[softmax]\n"

static const bcase cases[] = {
    {"conv", "one input gradient 1.5 times too large", CONV_NET, 2, 0, patch_conv_dx},
    {"conv", "one weight gradient 10% off", CONV_NET, 2, 0, patch_conv_dw},
    {"conv", "the last channel's bias gradient lost", CONV_NET, 2, 0, patch_conv_db},
    {"fc", "the bias gradient misses the last output", FC_NET, 2, 0, patch_bias},
    {"fc", "the weight gradient misses the batch's last sample", FC_NET, 2, 0, patch_fc_dw},
    {"fc", "the input gradient misses the last output", FC_NET, 2, 0, patch_fc_dx},
    /* The same mistake seen by the whole-network check. */
    {"fc", "the bias gradient misses the last output (whole network)",
     NET(1, 6, 6, 3) "[conv]\nfilters=2\nsize=3\n[relu]\n[maxpool]\n[fc]\noutputs=3\n[softmax]\n",
     2, -1, patch_bias},
    {"maxpool", "the first column's gradient halved", NET(1, 4, 4, 4) "[maxpool]\n[softmax]\n", 2,
     0, patch_maxpool},
    {"avgpool", "overlapping windows overwrite each other's gradient",
     NET(1, 5, 5, 9) "[avgpool]\nsize=3\nstride=1\n[softmax]\n", 2, 0, patch_avgpool_overwrites},
    {"avgpool", "global pooling divides by the height only",
     NET(3, 4, 4, 3) "[avgpool]\nglobal=1\n[softmax]\n", 2, 0, patch_avgpool_height},
    {"batchnorm", "dx misses the term xhat mean(dy xhat)",
     NET(2, 3, 3, 18) "[batchnorm]\n[softmax]\n", 2, 0, patch_bn_dx},
    {"batchnorm", "dgamma sums dy, not dy xhat", NET(2, 3, 3, 18) "[batchnorm]\n[softmax]\n", 2, 0,
     patch_bn_dgamma},
    /* Features (after a fully connected layer): four samples, since
     * normalising over two is degenerate (test_layers.c says why). */
    {"batchnorm", "dx misses a term, on features", NET(5, 1, 1, 5) "[batchnorm]\n[softmax]\n", 4, 0,
     patch_bn_dx},
    {"dropout", "the kept values' gradient not scaled by 1 / (1 - rate)",
     NET(1, 1, 8, 8) "[dropout]\nrate=0.3\n[softmax]\n", 2, 0, patch_dropout},
    {"relu", "relu' taken as 1 at y = 0 (so for every x < 0)", ACT_NET("relu"), 2, 0, patch_relu},
    {"leaky", "the slope forgotten for x < 0", NET(1, 1, 8, 8) "[leaky]\nslope=0.1\n[softmax]\n", 2,
     0, patch_leaky},
    {"sigmoid", "s(y) (1 - s(y)): the derivative at y, not at x", ACT_NET("sigmoid"), 2, 0,
     patch_sigmoid},
    {"tanh", "1 - y for 1 - y^2", ACT_NET("tanh"), 2, 0, patch_tanh},
    {"gelu", "the derivative of the tanh forgotten", ACT_NET("gelu"), 2, 0, patch_gelu},
    {"silu", "s for s (1 + x (1 - s))", ACT_NET("silu"), 2, 0, patch_silu},
    {"shortcut", "'=' for '+=' into the earlier layer's gradient (whole network)",
     NET(2, 5, 5, 3) "[conv]\nname=c1\nfilters=3\nsize=3\npad=1\n[tanh]\n"
                     "[shortcut]\nfrom=c1\n[conv]\nfilters=3\nsize=3\npad=1\n"
                     "[shortcut]\nfrom=c1\n[fc]\noutputs=3\n[softmax]\n",
     2, -1, patch_shortcut},
    {"softmax", "the mean over the batch forgotten", FC_NET, 2, 1, patch_softmax},
};

/* Runs the check of case c: 1 when it passes (the errors in *gc). */
static int check(cn_net *net, const bcase *c, cn_gradcheck *gc)
{
    cn_rng rng;
    cn_rng_seed(&rng, 3);
    cn_net_init(net, &rng);
    cn_status st = c->layer < 0 ? cn_gradcheck_net(net, c->batch, 0, &rng, gc)
                                : cn_gradcheck_layer(net, (size_t)c->layer, c->batch, 0, &rng, gc);
    if (st != CN_OK) {
        th_fail(__FILE__, __LINE__, "%s: the gradient check did not run: %s", c->kind,
                cn_last_error());
        return -1;
    }
    double tol = c->layer < 0 ? NET_TOL : LAYER_TOL;
    return gc->input_err < tol && gc->param_err < tol && gc->checked > 0 &&
           gc->skipped * 4 <= gc->checked;
}

static void run_case(size_t k)
{
    const bcase *c = &cases[k];
    cn_spec *spec = th_spec(c->cfg);
    CHECK(spec);
    cn_device cpu = {"cpu", 0, 1};
    cn_net *net;
    CHECK_OK(cn_net_create(spec, c->batch, &cpu, &net));
    /* The broken layer is of the kind named (for the whole network: has
     * one). */
    int found = 0;
    for (size_t i = 0; i < net->n_layers; i++)
        found |= (c->layer < 0 || (size_t)c->layer == i) &&
                 strcmp(net->layers[i].ops->kind, c->kind) == 0;
    CHECK_MSG(found, "%s: no layer of that kind where the case checks", c->kind);
    cn_gradcheck clean, broken;
    int ok = check(net, c, &clean);
    CHECK_MSG(ok == 1,
              "[%s] unbroken: the gradient check fails (input error %.3g, parameter error %.3g, "
              "%zu checked, %zu on kinks)",
              c->kind, clean.input_err, clean.param_err, clean.checked, clean.skipped);
    real = *net->be;
    c->patch(net);
    ok = check(net, c, &broken);
    printf("    [%s] %s: errors %.2g, %.2g unbroken; %.2g, %.2g broken\n", c->kind, c->what,
           clean.input_err, clean.param_err, broken.input_err, broken.param_err);
    CHECK_MSG(ok == 0,
              "[%s] broken (%s): the gradient check passes (input error %.3g, parameter error "
              "%.3g, %zu checked)",
              c->kind, c->what, broken.input_err, broken.param_err, broken.checked);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* Label smoothing (the loss layer's target (1 - eps) onehot + eps / k):
 * the gradient checks of the loss layer alone and of a whole network pass
 * with it, and fail when its backward pass forgets it. */
static void softmax_smoothing(void)
{
    static const char *const cfgs[2] = {FC_NET,
                                        NET(1, 6, 6, 4) "[conv]\nfilters=2\nsize=3\n"
                                                        "[tanh]\n[fc]\noutputs=4\n[softmax]\n"};
    static const long layers[2] = {1, -1};
    for (int t = 0; t < 2; t++) {
        bcase c = {"softmax", "the smoothing forgotten", cfgs[t], 3, layers[t], NULL};
        cn_spec *spec = th_spec(c.cfg);
        CHECK(spec);
        cn_device cpu = {"cpu", 0, 1};
        cn_net *net;
        CHECK_OK(cn_net_create(spec, c.batch, &cpu, &net));
        net->smooth = 0.2f;
        cn_gradcheck clean, broken;
        int ok = check(net, &c, &clean);
        CHECK_MSG(ok == 1, "[softmax] smoothed, %s: the gradient check fails (errors %.3g, %.3g)",
                  t ? "whole network" : "alone", clean.input_err, clean.param_err);
        real = *net->be;
        net->be->softmax_nll_bwd = unsmoothed_softmax_bwd;
        ok = check(net, &c, &broken);
        printf("    [softmax] smoothing 0.2 forgotten (%s): errors %.2g, %.2g unbroken; %.2g, %.2g "
               "broken\n",
               t ? "whole network" : "alone", clean.input_err, clean.param_err, broken.input_err,
               broken.param_err);
        CHECK_MSG(ok == 0, "[softmax] smoothing forgotten: the gradient check passes");
        cn_net_free(net);
        cn_spec_free(spec);
    }
}

extern const th_test th_broken[];

/* Every kind of the registry has a case, and test k runs case k (its name
 * names the case's kind). */
static void every_kind(void)
{
    size_t n_cases = sizeof cases / sizeof cases[0], k = 0;
    for (; th_broken[k].fn != every_kind; k++)
        CHECK_MSG(k < n_cases && th_contains(th_broken[k].name, cases[k].kind),
                  "test %s runs case %zu, of [%s]", th_broken[k].name, k,
                  k < n_cases ? cases[k].kind : "none");
    CHECK_MSG(k == n_cases, "%zu cases, %zu tests", n_cases, k);
    size_t kinds = 0;
    for (const cn_layer_ops *ops; (ops = cn_layer_kind_at(kinds)) != NULL; kinds++) {
        int has = 0;
        for (size_t c = 0; c < n_cases; c++)
            has |= strcmp(cases[c].kind, ops->kind) == 0;
        CHECK_MSG(has,
                  "layer kind [%s] has no broken-backward case in tests/test_broken.c: add one "
                  "that breaks its backward pass and shows the gradient check fails",
                  ops->kind);
    }
    CHECK(kinds >= 14);
}

#define CASE(k)                                                                                    \
    static void case_##k(void) { run_case(k); }
CASE(0)
CASE(1)
CASE(2)
CASE(3)
CASE(4)
CASE(5)
CASE(6)
CASE(7)
CASE(8)
CASE(9)
CASE(10)
CASE(11)
CASE(12)
CASE(13)
CASE(14)
CASE(15)
CASE(16)
CASE(17)
CASE(18)
CASE(19)
CASE(20)
CASE(21)

/* The names say the kind and the mistake; case k of the table above is the
 * k-th test. */
const th_test th_broken[] = {
    {"gradcheck/broken/conv_input_grad", case_0},
    {"gradcheck/broken/conv_weight_grad", case_1},
    {"gradcheck/broken/conv_bias_grad", case_2},
    {"gradcheck/broken/fc_bias_grad", case_3},
    {"gradcheck/broken/fc_weight_grad", case_4},
    {"gradcheck/broken/fc_input_grad", case_5},
    {"gradcheck/broken/fc_bias_grad_whole_net", case_6},
    {"gradcheck/broken/maxpool", case_7},
    {"gradcheck/broken/avgpool_overlapping", case_8},
    {"gradcheck/broken/avgpool_global", case_9},
    {"gradcheck/broken/batchnorm_input_grad", case_10},
    {"gradcheck/broken/batchnorm_gamma_grad", case_11},
    {"gradcheck/broken/batchnorm_features", case_12},
    {"gradcheck/broken/dropout", case_13},
    {"gradcheck/broken/relu", case_14},
    {"gradcheck/broken/leaky", case_15},
    {"gradcheck/broken/sigmoid", case_16},
    {"gradcheck/broken/tanh", case_17},
    {"gradcheck/broken/gelu", case_18},
    {"gradcheck/broken/silu", case_19},
    {"gradcheck/broken/shortcut_whole_net", case_20},
    {"gradcheck/broken/softmax", case_21},
    {"gradcheck/broken/every_kind", every_kind},
    {"gradcheck/broken/softmax_smoothing", softmax_smoothing},
    {NULL, NULL},
};
