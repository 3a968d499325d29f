/* activation.c - element-wise non-linearities: relu max(0, x), sigmoid
 * 1 / (1 + e^-x) and tanh.  The three kinds differ only in the kernel they
 * ask the backend for, so they share this file.  Backward works from the
 * output: relu' = (y > 0), sigmoid' = y (1 - y), tanh' = 1 - y^2. */
#include "internal.h"

static cn_status setup(cn_layer *l, const cn_backend *be, size_t train_batch)
{
    (void)be;
    (void)train_batch;
    l->out = l->in;
    return CN_OK;
}

static cn_act act_of(const cn_layer *l)
{
    return l->ops == &cn_relu_ops      ? CN_ACT_RELU
           : l->ops == &cn_sigmoid_ops ? CN_ACT_SIGMOID
                                       : CN_ACT_TANH;
}

static void forward(cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n)
{
    ctx->be->act_fwd(ctx->be, act_of(l), x, y, n * cn_shape_size(l->in));
}

static void backward(cn_layer *l, const cn_ctx *ctx, const float *x, const float *y,
                     const float *dy, float *dx, size_t n)
{
    (void)x;
    if (dx)
        ctx->be->act_bwd(ctx->be, act_of(l), y, dy, dx, n * cn_shape_size(l->in));
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

const cn_layer_ops cn_relu_ops = {"relu", NULL,  0,       0,        1,
                                  1,      setup, forward, backward, cn_positive_region};
const cn_layer_ops cn_sigmoid_ops = {"sigmoid", NULL, 0, 0, 1, 1, setup, forward, backward, NULL};
const cn_layer_ops cn_tanh_ops = {"tanh", NULL, 0, 0, 1, 1, setup, forward, backward, NULL};
