/* fc.c - fully connected layer on the flattened input (C, H, W order):
 * y (n, out) = x (n, in) W^T + b, with W (out, in) as in PyTorch.
 * Backward: db += sum_n dy,  dW += dy^T x,  dx = dy W. */
#include "internal.h"

enum { OUTPUTS, NKEYS };

static const cn_key keys[] = {
    {"outputs", 1, 1, 1000000, 0, 1, NULL},
};

static cn_status setup(cn_layer *l, const cn_backend *be, size_t train_batch)
{
    (void)be;
    (void)train_batch;
    size_t in = cn_shape_size(l->in), out = (size_t)l->v[OUTPUTS];
    l->out = (cn_shape){out, 1, 1};
    l->n_t = 2;
    l->t[0] = (cn_ltensor){"weight", 2, {out, in, 0, 0}, cn_mul(out, in), in, 0, 0};
    l->t[1] = (cn_ltensor){"bias", 1, {out, 0, 0, 0}, out, 0, 0, 0};
    l->macs = (uint64_t)in * out;
    return CN_OK;
}

/* In a forward-only network the layer keeps its weights in the form the
 * backend's kernel for one sample reads them (fc_keep), in its state
 * (the network's decide_keep; cleared when the weights change). */
static void forward(cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n)
{
    const cn_backend *be = ctx->be;
    size_t in = cn_shape_size(l->in), out = l->out.c;
    if (be->fc_fwd) {
        be->fc_fwd(be, n, out, in, x, l->p[0], l->p[1], y, l->state_floats ? l->state : NULL);
        return;
    }
    be->gemm(be, 0, 1, n, out, in, 1.0f, x, in, l->p[0], in, 0.0f, y, out);
    be->add_bias(be, y, n, out, 1, l->p[1]);
}

static size_t keep_floats(const cn_layer *l, const cn_backend *be)
{
    return be->fc_keep ? be->fc_keep(be, l->out.c, cn_shape_size(l->in)) : 0;
}

static void backward(cn_layer *l, const cn_ctx *ctx, const float *x, const float *y,
                     const float *dy, float *dx, size_t n)
{
    (void)y;
    const cn_backend *be = ctx->be;
    size_t in = cn_shape_size(l->in), out = l->out.c;
    be->bias_grad(be, dy, n, out, 1, l->g[1]);
    be->gemm(be, 1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, l->g[0], in);
    if (dx)
        be->gemm(be, 0, 0, n, in, out, 1.0f, dy, out, l->p[0], in, 0.0f, dx, in);
}

const cn_layer_ops cn_fc_ops = {
    .kind = "fc",
    .keys = keys,
    .n_keys = NKEYS,
    .needs_x = 1,
    .setup = setup,
    .forward = forward,
    .backward = backward,
    .keep_floats = keep_floats,
};
