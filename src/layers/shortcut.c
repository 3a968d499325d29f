/* shortcut.c - a residual connection: y = x + the output of an earlier layer,
 * named by the key 'from' (the shapes must be equal).  Backward passes dy on
 * to x unchanged and keeps it, so that the network adds it to the gradient
 * of the earlier layer's output when its backward pass gets there
 * (cn_net_run_backward).  The network keeps the earlier output intact until
 * this layer has read it (no layer works in place over it). */
#include "internal.h"
#include "kernels/plain.h"

#include <string.h>

enum { FROM, NKEYS };

/* Not required here: net.c resolves it and says what is missing. */
static const cn_key keys[] = {{"from", CN_KEY_NAME, 0, 0, 0, 0, NULL}};

static cn_status setup(cn_layer *l, const cn_backend *be, size_t train_batch)
{
    (void)be;
    l->out = l->in;
    l->state_floats = cn_mul(train_batch, cn_shape_size(l->in)); /* dy, for the earlier layer */
    return CN_OK;
}

static void forward(cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n)
{
    (void)ctx;
    cn_add_to(x, l->skip, n * cn_shape_size(l->in), y);
}

static void backward(cn_layer *l, const cn_ctx *ctx, const float *x, const float *y,
                     const float *dy, float *dx, size_t n)
{
    (void)ctx;
    (void)x;
    (void)y;
    size_t count = n * cn_shape_size(l->in);
    memcpy(l->state, dy, count * sizeof *dy);
    if (dx)
        memcpy(dx, dy, count * sizeof *dx);
}

const cn_layer_ops cn_shortcut_ops = {"shortcut", keys,  NKEYS,   0,        1,
                                      0,          setup, forward, backward, NULL};
