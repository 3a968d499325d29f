/* activation.c - element-wise non-linearities, one table each:
 *   relu     max(0, x)                       y' from y: y > 0
 *   leaky    x > 0 ? x : slope x             y' from y: y > 0 ? 1 : slope
 *   sigmoid  1 / (1 + e^-x)                  y' = y (1 - y)
 *   tanh     tanh x                          y' = 1 - y^2
 *   gelu     x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   (PyTorch's
 *            approximate='tanh'; y' needs x)
 *   silu     x / (1 + e^-x)                  y' = s (1 + x (1 - s)), s the
 *            sigmoid of x (needs x)
 * They differ only in the backend function they ask for (ops->act) and in
 * what backward reads: the ones whose derivative needs x keep their input
 * (no in-place execution); the others work from their output. */
#include "internal.h"

enum { SLOPE, NKEYS };

static const cn_key leaky_keys[] = {{"slope", CN_KEY_NUMBER, 1e-6, 1, 0.01, 0, NULL}};

static cn_status setup(cn_layer *l, const cn_backend *be, size_t train_batch)
{
    (void)be;
    (void)train_batch;
    l->out = l->in;
    return CN_OK;
}

/* The function's parameter: leaky relu's slope (the only key any has). */
static float param(const cn_layer *l) { return l->ops->n_keys ? (float)l->v[SLOPE] : 0.0f; }

static void forward(cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n)
{
    ctx->be->act_fwd(ctx->be, l->ops->act, param(l), x, y, n * cn_shape_size(l->in));
}

static void backward(cn_layer *l, const cn_ctx *ctx, const float *x, const float *y,
                     const float *dy, float *dx, size_t n)
{
    if (dx)
        ctx->be->act_bwd(ctx->be, l->ops->act, param(l), x, y, dy, dx, n * cn_shape_size(l->in));
}

/* relu's linear piece: which units are on (leaky relu's too). */
uint64_t cn_positive_region(const cn_layer *l, const float *x, const float *y, size_t n)
{
    (void)x;
    uint64_t h = 0xcbf29ce484222325ULL, bits = 0;
    size_t count = n * cn_shape_size(l->in);
    for (size_t i = 0; i < count; i++) {
        bits = bits << 1 | (y[i] > 0.0f);
        if (i % 64 == 63 || i + 1 == count)
            h = cn_hash(h, bits);
    }
    return h;
}

/* The fields every activation shares: element-wise, set up, run and
 * differentiated alike; from_x for the ones whose derivative needs x. */
#define ACTIVATION(name, fn, from_x)                                                               \
    .kind = name, .elementwise = 1, .pure = 1, .needs_x = from_x, .needs_y = !(from_x), .act = fn, \
    .setup = setup, .forward = forward, .backward = backward

const cn_layer_ops cn_relu_ops = {ACTIVATION("relu", CN_ACT_RELU, 0), .region = cn_positive_region};
const cn_layer_ops cn_leaky_ops = {ACTIVATION("leaky", CN_ACT_LEAKY, 0), .keys = leaky_keys,
                                   .n_keys = NKEYS, .region = cn_positive_region};
const cn_layer_ops cn_sigmoid_ops = {ACTIVATION("sigmoid", CN_ACT_SIGMOID, 0)};
const cn_layer_ops cn_tanh_ops = {ACTIVATION("tanh", CN_ACT_TANH, 0)};
const cn_layer_ops cn_gelu_ops = {ACTIVATION("gelu", CN_ACT_GELU, 1)};
const cn_layer_ops cn_silu_ops = {ACTIVATION("silu", CN_ACT_SILU, 1)};
