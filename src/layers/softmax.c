/* softmax.c - the loss layer: softmax y_i = e^{x_i} / sum_j e^{x_j} over the
 * flattened input, with the mean negative log-likelihood of the true class
 * as the loss, or in training with label smoothing eps (ctx->smooth) the
 * cross-entropy against q = (1 - eps) onehot(label) + eps / classes.
 * Backward starts here: dx = (y - q) / n, plus ctx->target_delta where a
 * training step trains against another target (mixup's blend of two
 * labels: the difference of the two gradients, made by src/step.c). */
#include "internal.h"

static cn_status setup(cn_layer *l, const cn_backend *be, size_t train_batch)
{
    (void)be;
    (void)train_batch;
    l->out = (cn_shape){cn_shape_size(l->in), 1, 1};
    return CN_OK;
}

static void forward(cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n)
{
    ctx->be->softmax(ctx->be, x, y, n, l->out.c);
}

static void backward(cn_layer *l, const cn_ctx *ctx, const float *x, const float *y,
                     const float *dy, float *dx, size_t n)
{
    (void)x;
    (void)dy;
    if (!dx)
        return;
    ctx->be->softmax_nll_bwd(ctx->be, y, ctx->labels, n, l->out.c, ctx->smooth, dx);
    if (ctx->target_delta) /* another target's share (mixup: src/step.c) */
        ctx->be->add(ctx->be, dx, ctx->target_delta, dx, n * l->out.c);
}

const cn_layer_ops cn_softmax_ops = {
    .kind = "softmax",
    .is_loss = 1,
    .needs_y = 1,
    .setup = setup,
    .forward = forward,
    .backward = backward,
};
