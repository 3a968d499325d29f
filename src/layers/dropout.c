/* dropout.c - inverted dropout: in training passes each value is kept with
 * probability 1 - rate and scaled by 1 / (1 - rate), or set to 0; in
 * evaluation the layer passes its input through.  The mask is drawn from the
 * training step's seed (cn_ctx.seed) and the layer's line, so a resumed run
 * draws the same masks, and kept for backward: dx = dy * mask. */
#include "internal.h"
#include "kernels/plain.h"

#include <string.h>

enum { RATE, NKEYS };

static const cn_key keys[] = {{"rate", 0, 0, 0.99, 0.5, 0, NULL}};

static cn_status setup(cn_layer *l, const cn_backend *be, size_t train_batch)
{
    (void)be;
    l->out = l->in;
    l->state_floats = cn_mul(train_batch, cn_shape_size(l->in)); /* the mask */
    return CN_OK;
}

static void forward(cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n)
{
    size_t count = n * cn_shape_size(l->in);
    if (!ctx->train || l->v[RATE] == 0.0) {
        if (x != y)
            memcpy(y, x, count * sizeof *y);
        return;
    }
    cn_rng rng;
    cn_rng_seed(&rng, cn_step_seed(ctx->seed, (uint64_t)l->line));
    cn_dropout_mask(&rng, count, (float)l->v[RATE], l->state);
    cn_vmul(x, l->state, count, y);
}

static void backward(cn_layer *l, const cn_ctx *ctx, const float *x, const float *y,
                     const float *dy, float *dx, size_t n)
{
    (void)ctx;
    (void)x;
    (void)y;
    if (!dx)
        return;
    size_t count = n * cn_shape_size(l->in);
    if (l->v[RATE] == 0.0)
        memcpy(dx, dy, count * sizeof *dx);
    else
        cn_vmul(dy, l->state, count, dx);
}

const cn_layer_ops cn_dropout_ops = {"dropout", keys,  NKEYS,   0,        1,
                                     0,         setup, forward, backward, NULL};
