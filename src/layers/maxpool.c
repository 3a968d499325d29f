/* maxpool.c - max pooling over size x size windows, each channel on its own:
 * y[c][i][j] = max over the window at (i*stride, j*stride).  The gradient
 * goes to the first maximum of each window (row-major order). */
#include "internal.h"

enum { SIZE, STRIDE, NKEYS };

static const cn_key keys[] = {
    {"size", 1, 1, 1024, 2, 0, NULL}, {"stride", 1, 0, 1024, 0, 0, NULL}, /* 0: the same as size */
};

static cn_win geometry(const cn_layer *l)
{
    size_t k = (size_t)l->v[SIZE];
    size_t st = l->v[STRIDE] > 0 ? (size_t)l->v[STRIDE] : k;
    return (cn_win){l->in.c, l->in.h, l->in.w, k, k, st, 0, l->out.h, l->out.w};
}

cn_status cn_pool_setup(cn_layer *l, size_t k, size_t st)
{
    if (k > l->in.h || k > l->in.w)
        return cn_fail(CN_ERR_SPEC, "window size %zu is larger than the input %zux%zu", k, l->in.h,
                       l->in.w);
    l->out = (cn_shape){l->in.c, (l->in.h - k) / st + 1, (l->in.w - k) / st + 1};
    return CN_OK;
}

/* Whether a training pass notes which input wins each window (a byte per
 * output, its switches) for backward, which then reads them instead of the
 * input: windows apart, of CN_SW_MAX inputs at most, on a backend with the
 * kernels.  A lean network then need not make the input again for backward
 * (net.c, remake_below): cifar10's residual blocks before each pooling. */
static int keeps_switches(const cn_layer *l, const cn_backend *be)
{
    cn_win g = geometry(l);
    return be->maxpool_fwd_sw && be->maxpool_bwd_sw && g.stride >= g.kh && g.stride >= g.kw &&
           g.kh * g.kw <= CN_SW_MAX;
}

/* The floats of the state area that hold n samples' switches. */
static size_t switch_floats(const cn_layer *l, size_t n)
{
    return (n * cn_shape_size(l->out) + sizeof(float) - 1) / sizeof(float);
}

static cn_status setup(cn_layer *l, const cn_backend *be, size_t train_batch)
{
    size_t k = (size_t)l->v[SIZE];
    cn_status st = cn_pool_setup(l, k, l->v[STRIDE] > 0 ? (size_t)l->v[STRIDE] : k);
    if (st == CN_OK && train_batch && keeps_switches(l, be))
        l->state_floats = switch_floats(l, train_batch);
    return st;
}

static void forward(cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n)
{
    cn_win g = geometry(l);
    l->switched = ctx->train && l->state_floats && switch_floats(l, n) <= l->state_floats;
    if (l->switched)
        ctx->be->maxpool_fwd_sw(ctx->be, &g, x, n, y, (uint8_t *)l->state);
    else
        ctx->be->maxpool_fwd(ctx->be, &g, x, n, y);
}

static void backward(cn_layer *l, const cn_ctx *ctx, const float *x, const float *y,
                     const float *dy, float *dx, size_t n)
{
    (void)y;
    if (!dx)
        return;
    cn_win g = geometry(l);
    /* a relu below whose gradient the network's plan moved here */
    cn_act act = ctx->fuse ? l->grad_act : CN_ACT_NONE;
    if (l->switched)
        ctx->be->maxpool_bwd_sw(ctx->be, &g, (const uint8_t *)l->state, dy, n, dx, act);
    else
        ctx->be->maxpool_bwd(ctx->be, &g, x, dy, n, dx, act);
}

/* Over its input when the backend can and no two windows overlap, a
 * relu's output too (a window whose maximum is not above 0 passes nothing). */
static unsigned dx_places(const cn_layer *l, const cn_backend *be)
{
    cn_win g = geometry(l);
    return be->bwd_in_place & CN_BWD_POOL && g.stride >= g.kh && g.stride >= g.kw
               ? CN_DX_ON_X | CN_DX_ON_RELU_X
               : 0;
}

/* The linear piece: which input wins each window (the first maximum). */
static uint64_t region(const cn_layer *l, const float *x, const float *y, size_t n)
{
    (void)y;
    cn_win g = geometry(l);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t t = 0; t < n * g.c; t++) {
        const float *in = x + t * g.h * g.w;
        for (size_t i = 0; i < g.oh; i++)
            for (size_t j = 0; j < g.ow; j++) {
                size_t base = i * g.stride * g.w + j * g.stride, arg = base;
                for (size_t ki = 0; ki < g.kh; ki++)
                    for (size_t kj = 0; kj < g.kw; kj++)
                        if (in[base + ki * g.w + kj] > in[arg])
                            arg = base + ki * g.w + kj;
                h = cn_hash(h, arg);
            }
    }
    return h;
}

const cn_layer_ops cn_maxpool_ops = {
    .kind = "maxpool",
    .keys = keys,
    .n_keys = NKEYS,
    .needs_x = 1,
    .max_pool = 1,
    .train_state = 1,
    .setup = setup,
    .forward = forward,
    .backward = backward,
    .dx_places = dx_places,
    .window = geometry,
    .region = region,
};
