/* leaky.c - leaky relu: y = x for x > 0, slope * x otherwise.  Backward
 * works from the output (for slope > 0, y > 0 exactly when x > 0). */
#include "internal.h"
#include "kernels/plain.h"

enum { SLOPE, NKEYS };

static const cn_key keys[] = {{"slope", 0, 1e-6, 1, 0.01, 0, NULL}};

static cn_status setup(cn_layer *l, const cn_backend *be, size_t train_batch)
{
    (void)be;
    (void)train_batch;
    l->out = l->in;
    return CN_OK;
}

static void forward(cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n)
{
    (void)ctx;
    cn_leaky_fwd(x, n * cn_shape_size(l->in), (float)l->v[SLOPE], y);
}

static void backward(cn_layer *l, const cn_ctx *ctx, const float *x, const float *y,
                     const float *dy, float *dx, size_t n)
{
    (void)ctx;
    (void)x;
    if (dx)
        cn_leaky_bwd(y, dy, n * cn_shape_size(l->in), (float)l->v[SLOPE], dx);
}

const cn_layer_ops cn_leaky_ops = {"leaky", keys,  NKEYS,   0,        1,
                                   1,       setup, forward, backward, cn_positive_region};
