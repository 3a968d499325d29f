/* test_layers.c - each layer's forward pass against values worked out by
 * hand (the lecture's examples among them) and every backward pass against
 * central differences. */
#include "backend/cpu.h"
#include "harness.h"
#include "internal.h"
#include "kernels/kernels.h"

#include <stdlib.h>
#include <string.h>

/* Sets tensor name of net to values. */
static int set_tensor(cn_net *net, const char *name, const float *v, size_t count)
{
    size_t i = cn_net_find_tensor(net, name);
    cn_tensor_info ti;
    if (i == (size_t)-1 || cn_net_tensor(net, i, &ti) != CN_OK || ti.count != count)
        return 0;
    return cn_net_set(net, CN_PARAMS, ti.offset, count, v) == CN_OK;
}

/* The lecture's convolution: a 4x4 input with 2 channels, one 2x2 filter with
 * the same weights [1 -2; 3 1] on both channels, no bias.  Its first outputs
 * are 25 and 27; the rest were worked out the same way, e.g. the top right:
 * channel 1 patch [0 5; 1 -3] gives 0 - 10 + 3 - 3 = -10, channel 2 patch
 * [2 0; 6 5] gives 2 + 0 + 18 + 5 = 25, so y = 15. */
static void conv_lecture_example(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=2\nheight=4\nwidth=4\nclasses=9\n"
                            "[conv]\nfilters=1\nsize=2\n[softmax]\n");
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 1, th_dev(1), &net));
    const float x[32] = {1, -2, 0, 5, 7,  0, 1, -3, 2, -2, 2, -2, -5, -4, 3, 1,
                         0, -1, 2, 0, -4, 9, 6, 5,  3, 2,  1, 0,  0,  1,  3, -3};
    const float w[8] = {1, -2, 3, 1, 1, -2, 3, 1}, b = 0;
    CHECK(set_tensor(net, "conv1.weight", w, 8) && set_tensor(net, "conv1.bias", &b, 1));
    CHECK_OK(cn_net_forward(net, x, 1, 0));
    const float *y = th_layer_output(net, 0, 1);
    CHECK(y);
    const float want[9] = {25, 27, 15, 0, -2, 10, -13, -9, 23};
    for (int i = 0; i < 9; i++)
        CHECK_NEAR(y[i], want[i], 0);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* Stride 2 and padding 1 over x = 1..9 (3x3) with a 3x3 filter of ones and
 * bias 0.5: each output sums the 2x2 corner block its window covers. */
static void conv_stride_pad_example(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=3\nwidth=3\nclasses=4\n"
                            "[conv]\nfilters=1\nsize=3\nstride=2\npad=1\n[softmax]\n");
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 2, th_dev(1), &net));
    float x[18], w[9], b = 0.5f;
    for (int i = 0; i < 9; i++) {
        x[i] = (float)(i + 1);
        x[9 + i] = -(float)(i + 1);
        w[i] = 1;
    }
    CHECK(set_tensor(net, "conv1.weight", w, 9) && set_tensor(net, "conv1.bias", &b, 1));
    CHECK_OK(cn_net_forward(net, x, 2, 1));
    const float *y = th_layer_output(net, 0, 2);
    CHECK(y);
    const float want[8] = {12.5f, 16.5f, 24.5f, 28.5f, -11.5f, -15.5f, -23.5f, -27.5f};
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(y[i], want[i], 0);
    cn_net_free(net);
    cn_spec_free(spec);
}

static void maxpool_example(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=4\nwidth=5\nclasses=4\n"
                            "[maxpool]\nsize=2\n[softmax]\n");
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 1, th_dev(1), &net));
    /* The last column is dropped: (5 - 2) / 2 + 1 = 2 windows across. */
    const float x[20] = {1, 3, -1, 0, 99, 2, 0, 5, -2, 99, -1, -2, 0, 0, 99, -3, -4, 7, 1, 99};
    CHECK_OK(cn_net_forward(net, x, 1, 0));
    const float *y = th_layer_output(net, 0, 1);
    CHECK(y && y[0] == 3 && y[1] == 5 && y[2] == -1 && y[3] == 7);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* y = W x + b with W = [1 2; 3 4; 5 6], b = [0.5 -1 0], x = [1 -1]. */
static void fc_example(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=1\nwidth=2\nclasses=3\n"
                            "[fc]\noutputs=3\n[softmax]\n");
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 1, th_dev(1), &net));
    const float w[6] = {1, 2, 3, 4, 5, 6}, b[3] = {0.5f, -1, 0}, x[2] = {1, -1};
    CHECK(set_tensor(net, "fc1.weight", w, 6) && set_tensor(net, "fc1.bias", b, 3));
    CHECK_OK(cn_net_forward(net, x, 1, 0));
    const float *y = th_layer_output(net, 0, 1);
    CHECK(y && y[0] == -0.5f && y[1] == -2 && y[2] == -1);
    /* Softmax of (-0.5, -2, -1) and the loss of class 0 = log(1 + e^-1.5 + e^-0.5). */
    const float *p = th_output(net, 1);
    CHECK(p);
    double z = 1 + exp(-1.5) + exp(-0.5);
    CHECK_NEAR(p[0], 1 / z, 1e-7);
    CHECK_NEAR(p[1], exp(-1.5) / z, 1e-7);
    CHECK_NEAR(p[2], exp(-0.5) / z, 1e-7);
    int32_t label = 0;
    double loss;
    CHECK_OK(cn_net_loss(net, &label, 1, &loss));
    CHECK_NEAR(loss, log(z), 1e-7);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* The loss is computed from the logits with log-sum-exp: logits (1000, 0)
 * give probabilities (1, e^-1000) and a loss of exactly 1000 for class 1,
 * where -log(softmax) in float would be infinite. */
static void softmax_loss_is_stable(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=2\nheight=1\nwidth=1\nclasses=2\n[softmax]\n");
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 2, th_dev(1), &net));
    const float x[4] = {1000, 0, -1000, -1000};
    CHECK_OK(cn_net_forward(net, x, 2, 1));
    const float *p = th_output(net, 2);
    CHECK(p && p[0] == 1.0f && p[1] == 0.0f && p[2] == 0.5f && p[3] == 0.5f);
    int32_t labels[2] = {1, 0};
    double loss;
    CHECK_OK(cn_net_loss(net, labels, 2, &loss));
    CHECK_NEAR(loss, (1000 + log(2.0)) / 2, 1e-9);
    CHECK(isfinite(loss));
    labels[0] = 2;
    CHECK_ERR(cn_net_loss(net, labels, 2, &loss), CN_ERR_ARG);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* The lecture's backpropagation example:
 *   y1 = 2 x1 - x2,  y2 = -x1 + x2,  z1 = y1^2,  z2 = e^y2,  L = (z1 - z2)^2 / 2.
 * The linear map is a fully connected layer with A = [2 -1; -1 1], b = 0.
 * Going back as on the slides: dL/dz1 = z1 - z2, dL/dz2 = -(z1 - z2),
 * dL/dy1 = 2 y1 dL/dz1, dL/dy2 = e^y2 dL/dz2, and the layer must give
 * dL/dx1 = 2 dL/dy1 - dL/dy2, dL/dx2 = -dL/dy1 + dL/dy2, dL/dA = dL/dy x^T.
 * The "naive solution" (differentiating L((2x1 - x2)^2 - e^(-x1 + x2)) directly)
 * must agree too. */
static void lecture_backprop_example(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=1\nwidth=2\nclasses=2\n"
                            "[fc]\noutputs=2\n[softmax]\n");
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 1, th_dev(1), &net));
    const float a[4] = {2, -1, -1, 1}, b[2] = {0, 0};
    CHECK(set_tensor(net, "fc1.weight", a, 4) && set_tensor(net, "fc1.bias", b, 2));
    const double x1 = 1.0, x2 = 0.5;
    float x[2] = {(float)x1, (float)x2}, y[2], dx[2];
    th_layer_forward(net, 0, x, y, 1, 1);
    CHECK_NEAR(y[0], 1.5, 1e-7);
    CHECK_NEAR(y[1], -0.5, 1e-7);
    double z1 = y[0] * y[0], z2 = exp(y[1]);
    double dz1 = z1 - z2, dz2 = -(z1 - z2);
    float dy[2] = {(float)(2 * y[0] * dz1), (float)(exp(y[1]) * dz2)};
    cn_net_zero_grads(net);
    th_layer_backward(net, 0, x, y, dy, dx, 1);
    CHECK_NEAR(dx[0], 2.0 * dy[0] - dy[1], 1e-5);
    CHECK_NEAR(dx[1], -dy[0] + dy[1], 1e-5);
    /* The direct derivative of L(x1, x2). */
    double u = 2 * x1 - x2, v = -x1 + x2, r = u * u - exp(v);
    double dl_dx1 = r * (2 * u * 2 - exp(v) * -1), dl_dx2 = r * (2 * u * -1 - exp(v));
    CHECK_NEAR(dx[0], dl_dx1, 1e-5);
    CHECK_NEAR(dx[1], dl_dx2, 1e-5);
    float g[4];
    CHECK_OK(cn_net_get(net, CN_GRADS, 0, 4, g));
    CHECK_NEAR(g[0], dy[0] * x1, 1e-6);
    CHECK_NEAR(g[1], dy[0] * x2, 1e-6);
    CHECK_NEAR(g[2], dy[1] * x1, 1e-6);
    CHECK_NEAR(g[3], dy[1] * x2, 1e-6);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* Batch normalisation of one channel over x = (1, 3): the batch has mean 2
 * and variance 1, so y = (x - 2) / sqrt(1 + eps) = (-1, 1) (gamma 1, beta 0),
 * and the running estimates move 10% of the way: mean 0.2, variance
 * 0.9 * 1 + 0.1 * 2 = 1.1 (the unbiased variance of (1, 3) is 2).  An
 * evaluation pass then uses those. */
static void batchnorm_example(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=1\nwidth=1\nclasses=2\n"
                            "[batchnorm]\n[fc]\noutputs=2\n[softmax]\n");
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 2, th_dev(1), &net));
    cn_rng rng;
    cn_rng_seed(&rng, 1);
    cn_net_init(net, &rng);
    float x[2] = {1, 3};
    CHECK_OK(cn_net_forward(net, x, 2, 1));
    const float *y = th_layer_output(net, 0, 2);
    CHECK(y);
    double s = 1 / sqrt(1 + 1e-5);
    CHECK_NEAR(y[0], -s, 1e-6);
    CHECK_NEAR(y[1], s, 1e-6);
    cn_tensor_info mean, var, gamma;
    CHECK_OK(cn_net_tensor(net, cn_net_find_tensor(net, "batchnorm1.running_mean"), &mean));
    CHECK_OK(cn_net_tensor(net, cn_net_find_tensor(net, "batchnorm1.running_var"), &var));
    CHECK_OK(cn_net_tensor(net, cn_net_find_tensor(net, "batchnorm1.weight"), &gamma));
    CHECK(!mean.trainable && !var.trainable && gamma.trainable);
    CHECK_NEAR(th_get(net, CN_BUFFERS, mean.offset), 0.2, 1e-7);
    CHECK_NEAR(th_get(net, CN_BUFFERS, var.offset), 1.1, 1e-6);
    CHECK(th_get(net, CN_PARAMS, gamma.offset) == 1.0f);
    /* Evaluation: running statistics, and they stay where they are. */
    CHECK_OK(cn_net_forward(net, x, 1, 0));
    y = th_layer_output(net, 0, 1);
    CHECK(y);
    CHECK_NEAR(y[0], (1 - 0.2) / sqrt(1.1 + 1e-5), 1e-6);
    CHECK_NEAR(th_get(net, CN_BUFFERS, mean.offset), 0.2, 1e-7);
    /* Backward needs a training pass first. */
    int32_t labels[1] = {0};
    CHECK_ERR(cn_net_backward(net, labels, 1, NULL), CN_ERR_ARG);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* ------------------------------------------------------------ gradchecks */

/* Tolerances.  eps = 1e-2 on float32 passes: rounding moves a difference by
 * about 1e-7 / eps ~ 1e-5 of the loss, truncation (eps^2 times the third
 * derivative) is ~1e-4 for sigmoid and tanh and nothing for the linear and
 * piecewise-linear layers, whose kinks are skipped.  Measured worst errors
 * are 1e-4 to 3e-3 (layers and whole networks alike); 1e-2 leaves a margin,
 * while a wrong backward (a missing term, a transposed index, a 5% scale
 * error, a forgotten 1/n) gives 2e-2 to 1, as the tests gradcheck/broken/
 * (tests/test_broken.c) show for every layer kind.  At most a quarter of the coordinates may sit on
 * kinks. */
#define LAYER_TOL 1e-2
#define NET_TOL   1e-2

static cn_net *net_for(const char *text, size_t batch, cn_spec **spec)
{
    *spec = th_spec(text);
    cn_net *net = NULL;
    if (*spec && cn_net_create(*spec, batch, th_dev(1), &net) != CN_OK)
        th_fail(__FILE__, __LINE__, "net: %s", cn_last_error());
    return net;
}

/* Checks every layer of the net given by text on its own. */
static int check_layers(const char *text, cn_gradcheck *worst)
{
    cn_spec *spec;
    cn_net *net = net_for(text, 3, &spec);
    if (!net)
        return 0;
    cn_rng rng;
    cn_rng_seed(&rng, 11);
    memset(worst, 0, sizeof *worst);
    int ok = 1;
    for (size_t i = 0; i < cn_net_num_layers(net) && ok; i++) {
        cn_net_init(net, &rng);
        cn_gradcheck gc;
        if (cn_gradcheck_layer(net, i, 3, 0, &rng, &gc) != CN_OK) {
            th_fail(__FILE__, __LINE__, "%s", cn_last_error());
            ok = 0;
            break;
        }
        cn_layer_info li;
        cn_net_layer(net, i, &li);
        if (!(gc.input_err < LAYER_TOL && gc.param_err < LAYER_TOL) || gc.checked == 0 ||
            gc.skipped * 4 > gc.checked) {
            th_fail(__FILE__, __LINE__,
                    "layer %s: input error %.3g, parameter error %.3g, %zu checked, %zu skipped",
                    li.name, gc.input_err, gc.param_err, gc.checked, gc.skipped);
            ok = 0;
        }
        worst->input_err = fmax(worst->input_err, gc.input_err);
        worst->param_err = fmax(worst->param_err, gc.param_err);
        worst->checked += gc.checked;
    }
    printf("    layers: worst input error %.2g, parameter error %.2g, %zu checked\n",
           worst->input_err, worst->param_err, worst->checked);
    cn_net_free(net);
    cn_spec_free(spec);
    return ok;
}

static void gradcheck_conv(void)
{
    cn_gradcheck w;
    CHECK(check_layers("[net]\nchannels=3\nheight=7\nwidth=6\nclasses=48\n"
                       "[conv]\nfilters=4\nsize=3\n"                  /* 4x5x4 */
                       "[conv]\nfilters=3\nsize=2\nstride=2\npad=1\n" /* 3x3x3 */
                       "[conv]\nfilters=2\nsize=3\npad=2\n"           /* 2x5x5 */
                       "[conv]\nfilters=3\nsize=1\n"                  /* 3x5x5 */
                       "[conv]\nfilters=3\nsize=4\nstride=3\npad=3\n" /* 3x3x3 */
                       "[fc]\noutputs=48\n[softmax]\n",
                       &w));
    CHECK(w.checked > 500);
}

static void gradcheck_maxpool(void)
{
    cn_gradcheck w;
    CHECK(check_layers("[net]\nchannels=2\nheight=9\nwidth=8\nclasses=2\n"
                       "[maxpool]\nsize=2\n"           /* 2x4x4 */
                       "[maxpool]\nsize=3\nstride=1\n" /* 2x2x2, overlapping */
                       "[fc]\noutputs=2\n[softmax]\n",
                       &w));
}

static void gradcheck_batchnorm(void)
{
    cn_gradcheck w;
    CHECK(check_layers("[net]\nchannels=3\nheight=5\nwidth=4\nclasses=4\n"
                       "[batchnorm]\n[conv]\nfilters=2\nsize=3\n[batchnorm]\nmomentum=0.3\n"
                       "[fc]\noutputs=4\n[batchnorm]\neps=0.01\n[softmax]\n",
                       &w));
}

static void gradcheck_fc_and_activations(void)
{
    cn_gradcheck w;
    CHECK(check_layers("[net]\nchannels=2\nheight=3\nwidth=3\nclasses=5\n"
                       "[fc]\noutputs=7\n[relu]\n[fc]\noutputs=6\n[sigmoid]\n"
                       "[fc]\noutputs=5\n[tanh]\n[softmax]\n",
                       &w));
}

/* A whole network, every parameter and input coordinate. */
static void check_whole_n(const char *text, size_t n)
{
    cn_spec *spec;
    cn_net *net = net_for(text, n, &spec);
    CHECK(net);
    cn_rng rng;
    cn_rng_seed(&rng, 5);
    cn_net_init(net, &rng);
    cn_gradcheck gc;
    CHECK_OK(cn_gradcheck_net(net, n, 0, &rng, &gc));
    printf(
        "    whole net: worst input error %.2g, parameter error %.2g, %zu checked, %zu on kinks\n",
        gc.input_err, gc.param_err, gc.checked, gc.skipped);
    CHECK_MSG(gc.input_err < NET_TOL && gc.param_err < NET_TOL && gc.skipped * 4 < gc.checked,
              "input error %.3g, parameter error %.3g, %zu checked, %zu skipped", gc.input_err,
              gc.param_err, gc.checked, gc.skipped);
    cn_net_free(net);
    cn_spec_free(spec);
}

static void check_whole(const char *text) { check_whole_n(text, 2); }

static void gradcheck_whole_relu_net(void)
{
    check_whole("[net]\nchannels=1\nheight=10\nwidth=10\nclasses=4\n"
                "[conv]\nfilters=3\nsize=3\npad=1\n[relu]\n[maxpool]\nsize=2\n"
                "[conv]\nfilters=4\nsize=3\n[relu]\n[fc]\noutputs=8\n[relu]\n"
                "[fc]\noutputs=4\n[softmax]\n");
}

/* Four samples: normalising a feature over two is degenerate (always -1, 1)
 * and its derivatives are too ill-conditioned for float32 differences. */
static void gradcheck_whole_batchnorm_net(void)
{
    check_whole_n("[net]\nchannels=2\nheight=6\nwidth=6\nclasses=3\n"
                  "[conv]\nfilters=3\nsize=3\n[batchnorm]\n[relu]\n[maxpool]\n"
                  "[fc]\noutputs=5\n[batchnorm]\n[tanh]\n[fc]\noutputs=3\n[softmax]\n",
                  4);
}

static void gradcheck_whole_smooth_net(void)
{
    check_whole("[net]\nchannels=2\nheight=8\nwidth=8\nclasses=3\n"
                "[conv]\nfilters=3\nsize=3\nstride=2\npad=1\n[tanh]\n[maxpool]\nsize=2\n"
                "[fc]\noutputs=6\n[sigmoid]\n[fc]\noutputs=3\n[softmax]\n");
}

/* ------------------------------------------------ the layers of issue 5 */

static void gradcheck_pooling_leaky_dropout(void)
{
    cn_gradcheck w;
    CHECK(check_layers("[net]\nchannels=2\nheight=9\nwidth=9\nclasses=3\n"
                       "[conv]\nfilters=3\nsize=2\n[leaky]\nslope=0.1\n" /* 3x8x8 */
                       "[avgpool]\nsize=2\n"                             /* 3x4x4 */
                       "[avgpool]\nsize=3\nstride=1\n"                   /* 3x2x2, overlapping */
                       "[dropout]\nrate=0.3\n[avgpool]\nglobal=1\n"      /* 3x1x1 */
                       "[fc]\noutputs=3\n[softmax]\n",
                       &w));
}

/* GELU and SiLU on their own, after a fully connected layer, a convolution
 * and batch normalisation. */
static void gradcheck_gelu_silu(void)
{
    cn_gradcheck w;
    CHECK(check_layers("[net]\nchannels=2\nheight=5\nwidth=5\nclasses=4\n"
                       "[conv]\nfilters=3\nsize=3\n[gelu]\n[batchnorm]\n[silu]\n"
                       "[fc]\noutputs=6\n[silu]\n[fc]\noutputs=4\n[gelu]\n[softmax]\n",
                       &w));
}

/* Through a whole network, with dropout working in place over SiLU's
 * output (not its input, which SiLU's backward reads). */
static void gradcheck_whole_gelu_silu_net(void)
{
    check_whole_n("[net]\nchannels=2\nheight=6\nwidth=6\nclasses=3\n"
                  "[conv]\nfilters=3\nsize=3\npad=1\n[gelu]\n[conv]\nfilters=4\nsize=3\n"
                  "[batchnorm]\n[silu]\n[dropout]\nrate=0.2\n[fc]\noutputs=5\n[gelu]\n"
                  "[fc]\noutputs=3\n[softmax]\n",
                  4);
}

/* Two later layers read one output: their gradients meet before it. */
static void gradcheck_whole_two_readers(void)
{
    check_whole("[net]\nchannels=2\nheight=5\nwidth=5\nclasses=3\n"
                "[conv]\nname=c1\nfilters=3\nsize=3\npad=1\n[tanh]\n"
                "[shortcut]\nfrom=c1\n[conv]\nfilters=3\nsize=3\npad=1\n"
                "[shortcut]\nfrom=c1\n[fc]\noutputs=3\n[softmax]\n");
}

/* A residual block, from a convolution and from a relu, through a whole net. */
static void gradcheck_whole_residual_net(void)
{
    check_whole("[net]\nchannels=2\nheight=6\nwidth=6\nclasses=3\n"
                "[conv]\nname=c1\nfilters=3\nsize=3\npad=1\n[relu]\nname=r1\n"
                "[conv]\nfilters=3\nsize=3\npad=1\n[shortcut]\nfrom=c1\n[leaky]\n"
                "[conv]\nfilters=3\nsize=3\npad=1\n[shortcut]\nfrom=r1\n[dropout]\nrate=0.25\n"
                "[avgpool]\nglobal=1\n[fc]\noutputs=3\n[softmax]\n");
}

static void new_layers_by_hand(void)
{
    cn_spec *spec =
        th_spec("[net]\nchannels=1\nheight=2\nwidth=4\nclasses=2\n"
                "[leaky]\nname=l\nslope=0.5\n[avgpool]\nsize=2\n[shortcut]\nfrom=avgpool1\n"
                "[dropout]\nrate=0.5\n[fc]\noutputs=2\n[softmax]\n");
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 1, th_dev(1), &net));
    const float x[8] = {1, -2, 3, 4, -4, 6, 0, 8};
    CHECK_OK(cn_net_forward(net, x, 1, 0));
    const float *y0 = th_layer_output(net, 0, 1), *y1 = th_layer_output(net, 1, 1);
    CHECK(y0 && y1);
    CHECK(y0[1] == -1.0f && y0[4] == -2.0f && y0[7] == 8.0f); /* leaky, slope 1/2 */
    CHECK(y1[0] == (1 - 1 - 2 + 6) / 4.0f && y1[1] == (3 + 4 + 0 + 8) / 4.0f);
    const float *y2 = th_layer_output(net, 2, 1), *y3 = th_layer_output(net, 3, 1);
    CHECK(y2 && y3);
    CHECK(y2[0] == 2 * y1[0] && y2[1] == 2 * y1[1]); /* avgpool1 + itself */
    CHECK(y3[0] == y2[0] && y3[1] == y2[1]);         /* no dropout in evaluation */
    cn_net_free(net);
    cn_spec_free(spec);
    /* Mistakes in a shortcut are found when the net is built. */
    const char *bad[3][2] = {
        {"[shortcut]\n", "needs the key 'from'"},
        {"[shortcut]\nfrom=conv9\n", "no earlier layer has that name"},
        {"[maxpool]\n[shortcut]\nfrom=conv1\n", "the shapes must be equal"},
    };
    for (int b = 0; b < 3; b++) {
        char text[512];
        snprintf(text, sizeof text,
                 "[net]\nchannels=1\nheight=4\nwidth=4\nclasses=2\n[conv]\nfilters=1\nsize=1\n%s"
                 "[fc]\noutputs=2\n[softmax]\n",
                 bad[b][0]);
        spec = th_spec(text);
        CHECK(spec);
        CHECK_ERR(cn_net_create(spec, 1, th_dev(1), &net), CN_ERR_SPEC);
        CHECK_MSG(th_contains(cn_last_error(), bad[b][1]), "%s", cn_last_error());
        cn_spec_free(spec);
    }
}

/* Dropout in training: a fraction rate of zeros, the rest scaled by
 * 1 / (1 - rate); the same seed gives the same mask; backward uses it. */
static void dropout_masks(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=50\nwidth=40\nclasses=2000\n"
                            "[dropout]\nrate=0.3\n[softmax]\n");
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 2, th_dev(1), &net));
    size_t n = 4000;
    float *x = malloc(n * sizeof *x), *a = malloc(n * sizeof *a), *dx = malloc(n * sizeof *dx);
    CHECK(x && a && dx);
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0f + (float)(i % 7);
    net->seed = 42;
    th_layer_forward(net, 0, x, a, 2, 1);
    size_t zeros = 0;
    for (size_t i = 0; i < n; i++) {
        zeros += a[i] == 0.0f;
        CHECK(a[i] == 0.0f || fabsf(a[i] - x[i] / 0.7f) < 1e-5f);
    }
    CHECK_MSG(zeros > 1100 && zeros < 1300, "%zu of 4000 dropped, expected about 1200", zeros);
    float *b = malloc(n * sizeof *b);
    CHECK(b);
    th_layer_forward(net, 0, x, b, 2, 1);
    CHECK(memcmp(a, b, n * sizeof *a) == 0);
    th_layer_backward(net, 0, x, a, x, dx, 2);
    for (size_t i = 0; i < n; i++)
        CHECK((a[i] == 0.0f) == (dx[i] == 0.0f));
    net->seed = 43;
    th_layer_forward(net, 0, x, b, 2, 1);
    CHECK(memcmp(a, b, n * sizeof *a) != 0);
    th_layer_forward(net, 0, x, b, 2, 0); /* evaluation: the identity */
    CHECK(memcmp(x, b, n * sizeof *x) == 0);
    free(x);
    free(a);
    free(b);
    free(dx);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* The gradient convention: backward adds into the gradient block, so two
 * backward passes without zeroing give twice the gradient. */
/* A training pass's gradients in less memory (net.c, plan_grads and
 * place_training): batch normalisation's in place, a max pooling's over its
 * input (a relu's output too, the relu's gradient then applied by the
 * pooling), the others in the arena over outputs that backward has done
 * with.  The same gradients and input gradient, bit for bit, as on a
 * backend whose backward operations write every result apart (bwd_in_place
 * 0); every output that a gradient went over, and only those, is refused
 * until the next forward pass, and so is a second backward pass; the
 * explaining passes get their own buffers and agree too.  which 0: a
 * convolution with no activation before the pooling; 1: relus fused into a
 * convolution and into a batch normalisation before the poolings. */
static void in_less_memory(int which)
{
    static const char *const text[2] = {
        "[net]\nchannels=2\nheight=8\nwidth=8\nclasses=3\n[conv]\nfilters=4\nsize=3\npad=1\n"
        "[maxpool]\nsize=2\n[batchnorm]\n[relu]\n[conv]\nfilters=3\nsize=3\npad=1\n"
        "[batchnorm]\n[relu]\n[fc]\noutputs=3\n[softmax]\n",
        "[net]\nchannels=2\nheight=8\nwidth=8\nclasses=3\n[conv]\nfilters=4\nsize=3\npad=1\n"
        "[relu]\n[maxpool]\nsize=2\n[conv]\nfilters=4\nsize=3\npad=1\n[batchnorm]\n[relu]\n"
        "[maxpool]\nsize=2\n[fc]\noutputs=3\n[softmax]\n"};
    cn_spec *spec = th_spec(text[which]);
    CHECK(spec);
    cn_cpu *cpu[2] = {NULL, NULL};
    cn_net *net[2] = {NULL, NULL};
    size_t bytes[2] = {0, 0};
    float *grads[2] = {NULL, NULL}, dx[2][4 * 128], out[2][4 * 256], cam[2][4 * 128];
    enum { N = 4 };
    for (int k = 0; spec && k < 2; k++) {
        CHECK(cn_cpu_create(1, NULL, &cpu[k]) == 0);
        if (!cpu[k])
            break;
        if (k == 1)
            cpu[k]->base.bwd_in_place = 0; /* every gradient apart */
        CHECK_OK(cn_net_build(spec, N, N, 0, &cpu[k]->base, th_dev(1), &net[k]));
        if (!net[k])
            break;
        cn_net_blocks(net[k], &bytes[k]);
        cn_rng rng;
        cn_rng_seed(&rng, 8);
        cn_net_init(net[k], &rng);
        float x[N * 128];
        th_fill_normal(x, N * 128, &rng);
        int32_t labels[N] = {0, 2, 1, 2};
        cn_net_zero_grads(net[k]);
        CHECK_OK(cn_net_forward(net[k], x, N, 1));
        CHECK_OK(cn_net_backward(net[k], labels, N, dx[k]));
        grads[k] = th_block(net[k], CN_GRADS);
        /* the convolution's output, under the pooling's gradient in the first */
        cn_status st = cn_net_get_layer_output(net[k], 0, 0, N, out[k]);
        CHECK(k == 0 ? st == CN_ERR_ARG && strstr(cn_last_error(), "conv1's output")
                     : st == (net[k]->layers[0].output_spent ? CN_ERR_ARG : CN_OK));
        for (size_t i = 0; i < cn_net_num_layers(net[k]); i++) {
            float y[4 * 256];
            st = cn_net_get_layer_output(net[k], i, 0, N, y);
            CHECK_MSG(net[k]->layers[i].output_spent
                          ? st == CN_ERR_ARG && strstr(cn_last_error(), "wrote gradients over it")
                          : st == CN_OK,
                      "net %d, layer %zu: status %d", k, i, (int)st);
        }
        /* the logits and probabilities are kept */
        CHECK(!net[k]->layers[cn_net_num_layers(net[k]) - 2].output_spent &&
              !net[k]->layers[cn_net_num_layers(net[k]) - 1].output_spent);
        int spends = 0;
        for (size_t i = 0; i < cn_net_num_layers(net[k]); i++)
            spends |= net[k]->layers[i].output_spent;
        CHECK(k == 0 ? spends : 1);
        st = cn_net_backward(net[k], labels, N, NULL);
        CHECK(spends ? st == CN_ERR_ARG && strstr(cn_last_error(), "second backward")
                     : st == CN_OK);
        CHECK_OK(cn_net_forward(net[k], x, N, 1));
        CHECK_OK(cn_net_get_layer_output(net[k], 0, 0, N, out[k]));
        int32_t classes[N] = {1, 1, 0, 2};
        CHECK_OK(cn_net_forward(net[k], x, N, 0));
        CHECK_OK(cn_net_class_gradient(net[k], classes, N, 0, NULL, cam[k]));
    }
    if (net[0] && net[1] && grads[0] && grads[1]) {
        const cn_layer *l = net[0]->layers;
        if (which == 0) {
            CHECK(l[1].grad_at == CN_GRAD_ON_X && l[1].grad_act == CN_ACT_NONE &&
                  l[0].output_spent && l[2].grad_at == CN_GRAD_ON_DY &&
                  l[5].grad_at == CN_GRAD_ON_DY);
            /* The arena, in floats for 4 samples: fc's and softmax's outputs
             * (12 each, 16 aligned) first, kept to the end, then conv1 1024,
             * maxpool1 256, batchnorm1 256 (its relu in place), conv2 192,
             * batchnorm2 192: 1952.  Backward's gradients: softmax's 16 above
             * them all (batchnorm2's output is still read), fc's 192 above
             * that (softmax's still read): to 2160; conv2's 256 over its own
             * output and batchnorm2's, which batchnorm2's step read last,
             * clear of fc's, which it reads; conv1's input gradient 512 over
             * maxpool1's and batchnorm1's outputs, which the pooling's went
             * over before.  The two gradient buffers apart took 128 + 48
             * floats a sample above the outputs: 2656. */
            CHECK(net[0]->arena_floats == 2160);
            CHECK(l[1].output_spent && l[2].output_spent && l[3].output_spent &&
                  l[4].output_spent && l[5].output_spent && l[6].output_spent &&
                  !l[7].output_spent);
        } else {
            /* the poolings apply the relus' gradients and write over their
             * outputs; the batch normalisation computes its own in place */
            CHECK(l[2].grad_at == CN_GRAD_ON_X && l[2].grad_act == CN_ACT_RELU &&
                  l[0].act_applied && l[0].output_spent && l[1].output_spent &&
                  l[6].grad_at == CN_GRAD_ON_X && l[6].grad_act == CN_ACT_RELU &&
                  l[4].act_applied && l[4].grad_at == CN_GRAD_ON_DY && !l[3].act_applied);
            /* Outputs: fc, softmax 16 each, conv1 1024 (its relu in place),
             * maxpool1 256, conv2 256, batchnorm1 256, maxpool2 64: 1888.
             * Gradients: softmax's 16 and fc's 64 above them, to 1968;
             * conv2's 256 over its own output, which batchnorm1's step read
             * last; conv1's input gradient 512 over maxpool1's and conv2's
             * outputs.  Apart: 1888 + 16 + 512 = 2416. */
            CHECK(net[0]->arena_floats == 1968);
            CHECK(l[2].output_spent && l[3].output_spent && l[4].output_spent &&
                  l[5].output_spent && !l[6].output_spent && !l[7].output_spent);
        }
        /* every gradient apart: no smaller */
        CHECK(net[0]->gbuf_floats[0] == 0 && net[1]->gbuf_floats[1] == 0 &&
              net[1]->arena_floats >= net[0]->arena_floats && bytes[1] > bytes[0]);
        size_t np = cn_net_num_params(net[0]);
        CHECK(memcmp(grads[0], grads[1], np * sizeof(float)) == 0);
        CHECK(memcmp(dx[0], dx[1], sizeof dx[0]) == 0);
        CHECK(memcmp(out[0], out[1], sizeof out[0]) == 0);
        CHECK(memcmp(cam[0], cam[1], sizeof cam[0]) == 0);
    }
    for (int k = 0; k < 2; k++) {
        free(grads[k]);
        cn_net_free(net[k]);
        if (cpu[k])
            cn_backend_destroy(&cpu[k]->base);
    }
    cn_spec_free(spec);
}

static void backward_in_less_memory(void) { in_less_memory(0); }
static void backward_in_less_memory_relu(void) { in_less_memory(1); }

/* A lean training net (cn_net_build's lean; a model's, cn_model_create)
 * does not keep a batch normalisation's output with its relu fused, nor a
 * residual block's (batch normalisation, shortcut, relu): the forward
 * pass's place of it is taken by later outputs, and backward makes it again
 * from the convolution's output (bn_apply; the shortcut's input first, for
 * that moment) where the layer after reads it.  The same gradients and
 * input gradient, bit for bit, as the net that keeps every output, over two
 * steps, in less memory, whether it makes again every output it may (lean
 * 2) or only those that lower its peak (lean 1); every output read after a
 * forward pass the same (those not kept made again), and after backward
 * refused where a gradient went over it or over the input it is made from;
 * the same explanation.  The max pooling after the residual block notes its
 * windows' winners in a training pass (its switches), so backward does not
 * make the block's output again for it: a fourth net, lean 2 on a backend
 * without the switches' kernels (the pooling then reads its input, made
 * again), gives the same bits too. */
static void backward_makes_outputs_again(void)
{
    cn_spec *spec = th_spec(
        "[net]\nchannels=3\nheight=8\nwidth=8\nclasses=4\n[conv]\nfilters=5\nsize=3\npad=1\n"
        "[batchnorm]\n[relu]\nname=stage\n[conv]\nfilters=5\nsize=3\npad=1\n[batchnorm]\n"
        "[relu]\n[conv]\nfilters=5\nsize=3\npad=1\n[batchnorm]\n[shortcut]\nfrom=stage\n"
        "[relu]\n[maxpool]\nsize=2\n[conv]\nfilters=7\nsize=1\n[batchnorm]\n[relu]\n"
        "[fc]\noutputs=4\n[softmax]\n");
    CHECK(spec);
    enum { N = 3, IN = 3 * 64, L = 16, OUT = 5 * 64, K = 4 };
    /* every one it may, none, the greedy choice; every one, no switches */
    static const int lean[K] = {2, 0, 1, 2};
    cn_cpu *cpu[K] = {NULL};
    cn_net *net[K] = {NULL};
    size_t bytes[K] = {0};
    float *grads[K][2] = {{NULL}}, dx[K][2][N * IN], cam[K][N * IN];
    static float out[K][2][L][N * OUT]; /* after forward, after backward */
    cn_status after[K][L];
    for (int k = 0; spec && k < K; k++) {
        CHECK(cn_cpu_create(2, NULL, &cpu[k]) == 0);
        if (!cpu[k])
            break;
        if (k == 3)
            cpu[k]->base.maxpool_fwd_sw = NULL, cpu[k]->base.maxpool_bwd_sw = NULL;
        CHECK_OK(cn_net_build(spec, N, N, lean[k], &cpu[k]->base, th_dev(2), &net[k]));
        CHECK(!net[k] || cn_net_num_layers(net[k]) == L);
        if (!net[k] || cn_net_num_layers(net[k]) != L)
            break;
        cn_net_blocks(net[k], &bytes[k]);
        cn_rng rng;
        cn_rng_seed(&rng, 12);
        cn_net_init(net[k], &rng);
        int32_t labels[N] = {0, 3, 1};
        float x[N * IN];
        for (int step = 0; step < 2; step++) {
            th_fill_normal(x, N * IN, &rng);
            cn_net_zero_grads(net[k]);
            CHECK_OK(cn_net_forward(net[k], x, N, 1));
            CHECK(net[k]->layers[10].switched == (k != 3));
            for (size_t i = 0; step == 1 && i < L; i++)
                CHECK_OK(cn_net_get_layer_output(net[k], i, 0, N, out[k][0][i]));
            CHECK_OK(cn_net_backward(net[k], labels, N, dx[k][step]));
            grads[k][step] = th_block(net[k], CN_GRADS);
        }
        for (size_t i = 0; i < L; i++)
            after[k][i] = cn_net_get_layer_output(net[k], i, 0, N, out[k][1][i]);
        int32_t classes[N] = {1, 1, 0};
        CHECK_OK(cn_net_forward(net[k], x, N, 0));
        CHECK_OK(cn_net_class_gradient(net[k], classes, N, 0, NULL, cam[k]));
    }
    if (net[0] && net[1] && net[2] && net[3]) {
        const cn_layer *l = net[0]->layers, *g = net[2]->layers;
        /* made again, every one it may: each batch normalisation with what
         * is in place over it (its relu fused; the shortcut and the relu
         * after it, with the shortcut's input made again first) */
        CHECK(net[0]->replays == 4 && net[1]->replays == 0);
        CHECK(l[1].replayed && l[2].replayed && l[4].replayed && l[5].replayed && l[7].replayed &&
              l[8].replayed && l[9].replayed && l[12].replayed && l[13].replayed &&
              !l[0].replayed && !l[3].replayed && !l[6].replayed && !l[10].replayed &&
              !l[11].replayed && !l[14].replayed);
        CHECK_MSG(net[0]->arena_floats < net[1]->arena_floats && bytes[0] < bytes[1],
                  "arena %zu against %zu floats", net[0]->arena_floats, net[1]->arena_floats);
        /* the greedy choice: no more memory than either, fewer made again
         * (here the first two: keeping the residual block's and the last
         * one's does not make the arena larger) */
        CHECK_MSG(net[2]->arena_floats <= net[0]->arena_floats && net[2]->replays == 2 &&
                      g[1].replayed && g[4].replayed && !g[7].replayed && !g[12].replayed,
                  "greedy: arena %zu floats, %zu made again", net[2]->arena_floats,
                  net[2]->replays);
        CHECK(net[3]->replays == 4 && net[3]->layers[10].state_floats == 0 &&
              l[10].state_floats > 0);
        size_t np = cn_net_num_params(net[0]);
        for (int k = 0; k < K; k += 1 + (k == 0))
            for (int step = 0; step < 2; step++) {
                CHECK(grads[k][step] && grads[1][step] &&
                      memcmp(grads[k][step], grads[1][step], np * sizeof(float)) == 0);
                CHECK(memcmp(dx[k][step], dx[1][step], sizeof dx[k][step]) == 0);
            }
        for (int k = 0; k < K; k += 1 + (k == 0)) {
            CHECK(memcmp(out[k][0], out[1][0], sizeof out[k][0]) == 0);
            CHECK(memcmp(cam[k], cam[1], sizeof cam[k]) == 0);
            const cn_layer *lk = net[k]->layers;
            for (size_t i = 0; i < L; i++) {
                /* after backward: as after forward, or refused where a
                 * gradient went over it or over the input it is made from */
                size_t o = i;
                while (o > 0 && lk[o].shares_input)
                    o--;
                int input_spent = lk[i].replayed && lk[o - 1].output_spent;
                CHECK_MSG(after[k][i] == CN_OK ? !input_spent && memcmp(out[k][1][i], out[k][0][i],
                                                                        sizeof out[k][1][i]) == 0
                                               : lk[i].output_spent || input_spent,
                          "net %d, layer %zu: status %d", k, i, (int)after[k][i]);
            }
        }
    }
    for (int k = 0; k < K; k++) {
        for (int step = 0; step < 2; step++)
            free(grads[k][step]);
        cn_net_free(net[k]);
        if (cpu[k])
            cn_backend_destroy(&cpu[k]->base);
    }
    cn_spec_free(spec);
}

static void backward_accumulates(void)
{
    cn_spec *spec;
    cn_net *net =
        net_for("[net]\nchannels=2\nheight=6\nwidth=6\nclasses=3\n[conv]\nfilters=2\nsize=3\n"
                "[tanh]\n[fc]\noutputs=3\n[softmax]\n",
                2, &spec);
    CHECK(net);
    cn_rng rng;
    cn_rng_seed(&rng, 4);
    cn_net_init(net, &rng);
    float x[144];
    th_fill_normal(x, 144, &rng);
    int32_t labels[2] = {0, 2};
    size_t np = cn_net_num_params(net);
    cn_net_zero_grads(net);
    CHECK_OK(cn_net_forward(net, x, 2, 1));
    CHECK_OK(cn_net_backward(net, labels, 2, NULL));
    float *once = th_block(net, CN_GRADS);
    CHECK_OK(cn_net_forward(net, x, 2, 1)); /* backward wrote over outputs it read */
    CHECK_OK(cn_net_backward(net, labels, 2, NULL));
    float *twice = th_block(net, CN_GRADS);
    int ok = once && twice;
    for (size_t i = 0; ok && i < np; i++)
        ok = fabs(twice[i] - 2 * once[i]) <= 1e-6 * (1 + fabs(once[i]));
    free(once);
    free(twice);
    CHECK(ok);
    cn_net_free(net);
    cn_spec_free(spec);
}

const th_test th_layers[] = {
    {"layers/conv_lecture_example", conv_lecture_example},
    {"layers/conv_stride_pad_example", conv_stride_pad_example},
    {"layers/maxpool_example", maxpool_example},
    {"layers/fc_and_softmax_example", fc_example},
    {"layers/softmax_loss_is_stable", softmax_loss_is_stable},
    {"layers/batchnorm_example", batchnorm_example},
    {"layers/lecture_backprop_example", lecture_backprop_example},
    {"gradcheck/conv", gradcheck_conv},
    {"gradcheck/maxpool", gradcheck_maxpool},
    {"gradcheck/fc_and_activations", gradcheck_fc_and_activations},
    {"gradcheck/batchnorm", gradcheck_batchnorm},
    {"gradcheck/whole_batchnorm_net", gradcheck_whole_batchnorm_net},
    {"gradcheck/whole_relu_net", gradcheck_whole_relu_net},
    {"gradcheck/whole_smooth_net", gradcheck_whole_smooth_net},
    {"gradcheck/pooling_leaky_dropout", gradcheck_pooling_leaky_dropout},
    {"gradcheck/whole_residual_net", gradcheck_whole_residual_net},
    {"gradcheck/gelu_silu", gradcheck_gelu_silu},
    {"gradcheck/whole_gelu_silu_net", gradcheck_whole_gelu_silu_net},
    {"gradcheck/whole_two_readers", gradcheck_whole_two_readers},
    {"layers/new_layers_by_hand", new_layers_by_hand},
    {"layers/dropout_masks", dropout_masks},
    {"layers/backward_accumulates", backward_accumulates},
    {"layers/backward_in_less_memory", backward_in_less_memory},
    {"layers/backward_in_less_memory_relu_pooled", backward_in_less_memory_relu},
    {"layers/backward_makes_outputs_again", backward_makes_outputs_again},
    {NULL, NULL},
};
