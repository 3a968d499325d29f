/* dropout.c - inverted dropout: in training passes each value is kept with
 * probability 1 - rate and scaled by 1 / (1 - rate), or set to 0; in
 * evaluation the layer passes its input through.  Whether value i is kept
 * is a pure function of (the training step's seed, the layer's line, the
 * value's index in the global batch)
 * (counter_rng.h): a resumed run draws the same masks, every device draws
 * the same bits, and backward recomputes the mask instead of keeping it:
 * dx = dy * mask. */
#include "counter_rng.h"
#include "internal.h"

enum { RATE, NKEYS };

static const cn_key keys[] = {{"rate", CN_KEY_NUMBER, 0, 0.99, 0.5, 0, NULL}};

static cn_status setup(cn_layer *l, const cn_backend *be, size_t train_batch)
{
    (void)be;
    (void)train_batch;
    l->out = l->in;
    return CN_OK;
}

/* The key of this layer's masks in the current step. */
static uint64_t key(const cn_layer *l, const cn_ctx *ctx)
{
    return cn_step_seed(ctx->seed, (uint64_t)l->line);
}

static void forward(cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n)
{
    size_t count = n * cn_shape_size(l->in);
    if (!ctx->train || l->v[RATE] == 0.0) {
        if (x != y)
            ctx->be->copy(ctx->be, y, x, count * sizeof *y);
        return;
    }
    ctx->be->dropout_fwd(ctx->be, x, y, count, (float)l->v[RATE], key(l, ctx),
                         ctx->first * cn_shape_size(l->in));
}

static void backward(cn_layer *l, const cn_ctx *ctx, const float *x, const float *y,
                     const float *dy, float *dx, size_t n)
{
    (void)x;
    (void)y;
    if (!dx)
        return;
    size_t count = n * cn_shape_size(l->in);
    if (!ctx->train || l->v[RATE] == 0.0) { /* after an evaluation pass: identity */
        if (dx != dy)
            ctx->be->copy(ctx->be, dx, dy, count * sizeof *dx);
    } else {
        ctx->be->dropout_bwd(ctx->be, dy, dx, count, (float)l->v[RATE], key(l, ctx),
                             ctx->first * cn_shape_size(l->in));
    }
}

const cn_layer_ops cn_dropout_ops = {
    .kind = "dropout",
    .keys = keys,
    .n_keys = NKEYS,
    .elementwise = 1,
    .setup = setup,
    .forward = forward,
    .backward = backward,
};
