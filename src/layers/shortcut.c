/* shortcut.c - a residual connection: y = x + the output of an earlier
 * layer, named by the key 'from' (the shapes must be equal).  That output is
 * the layer's extra input (l->extra[0]): the network keeps it intact until
 * this layer has read it.  Backward passes dy on to x unchanged and adds it
 * to the extra input's gradient (l->dextra[0]), which the network adds to
 * the earlier layer's when its backward pass gets there. */
#include "internal.h"

enum { FROM, NKEYS };

static const cn_key keys[] = {{"from", CN_KEY_LAYER, 0, 0, 0, 1, NULL}};

static cn_status setup(cn_layer *l, const cn_backend *be, size_t train_batch)
{
    (void)be;
    (void)train_batch;
    cn_shape e = l->extra_in[FROM];
    if (e.c != l->in.c || e.h != l->in.h || e.w != l->in.w)
        return cn_fail(CN_ERR_SPEC,
                       "adds %s's output (%zux%zux%zu) to its input: the shapes must be equal",
                       l->extra_name[FROM], e.c, e.h, e.w);
    l->out = l->in;
    return CN_OK;
}

static void forward(cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n)
{
    ctx->be->add(ctx->be, x, l->extra[FROM] + ctx->area, y, n * cn_shape_size(l->in));
}

static void backward(cn_layer *l, const cn_ctx *ctx, const float *x, const float *y,
                     const float *dy, float *dx, size_t n)
{
    (void)x;
    (void)y;
    size_t count = n * cn_shape_size(l->in);
    ctx->be->add(ctx->be, l->dextra[FROM], dy, l->dextra[FROM], count);
    if (dx && dx != dy)
        ctx->be->copy(ctx->be, dx, dy, count * sizeof *dx);
}

/* dx is dy: in place it is not even copied. */
static unsigned dx_places(const cn_layer *l, const cn_backend *be)
{
    (void)l;
    (void)be;
    return CN_DX_ON_DY;
}

const cn_layer_ops cn_shortcut_ops = {
    .kind = "shortcut",
    .keys = keys,
    .n_keys = NKEYS,
    .elementwise = 1,
    .pure = 1,
    .setup = setup,
    .forward = forward,
    .backward = backward,
    .dx_places = dx_places,
};
