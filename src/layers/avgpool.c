/* avgpool.c - average pooling over size x size windows, each channel on its
 * own: y[c][i][j] = mean of the window at (i*stride, j*stride).  With
 * global = 1 the window is the whole map (global average pooling): the
 * output is one value per channel. */
#include "internal.h"

enum { SIZE, STRIDE, GLOBAL, NKEYS };

static const cn_key keys[] = {
    {"size", 1, 1, 1024, 2, 0, NULL},
    {"stride", 1, 0, 1024, 0, 0, NULL}, /* 0: the same as size */
    {"global", 1, 0, 1, 0, 0, NULL},
};

/* Window side and stride; the global window is square maps only. */
static void window(const cn_layer *l, size_t *k, size_t *st)
{
    *k = l->v[GLOBAL] ? l->in.h : (size_t)l->v[SIZE];
    *st = l->v[GLOBAL] ? 1 : l->v[STRIDE] > 0 ? (size_t)l->v[STRIDE] : *k;
}

static cn_status setup(cn_layer *l, const cn_backend *be, size_t train_batch)
{
    (void)be;
    (void)train_batch;
    size_t k, st;
    window(l, &k, &st);
    if (l->v[GLOBAL] && l->in.h != l->in.w)
        return cn_fail(CN_ERR_SPEC, "global pooling takes square maps, not %zux%zu", l->in.h,
                       l->in.w);
    return cn_pool_setup(l, k, st);
}

static cn_win geometry(const cn_layer *l)
{
    size_t k, st;
    window(l, &k, &st);
    return (cn_win){l->in.c, l->in.h, l->in.w, k, k, st, 0, l->out.h, l->out.w};
}

static void forward(cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n)
{
    cn_win g = geometry(l);
    ctx->be->avgpool_fwd(ctx->be, &g, x, n, y);
}

static void backward(cn_layer *l, const cn_ctx *ctx, const float *x, const float *y,
                     const float *dy, float *dx, size_t n)
{
    (void)x;
    (void)y;
    if (!dx)
        return;
    cn_win g = geometry(l);
    ctx->be->avgpool_bwd(ctx->be, &g, dy, n, dx);
}

const cn_layer_ops cn_avgpool_ops = {
    .kind = "avgpool",
    .keys = keys,
    .n_keys = NKEYS,
    .setup = setup,
    .forward = forward,
    .backward = backward,
    .window = geometry,
};
