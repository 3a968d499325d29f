/* conv.c - 2-d convolution (cross-correlation over all input channels) with
 * zero padding and stride:
 *
 *   y[s][f][i][j] = b[f] + sum_{c,ki,kj} w[f][c][ki][kj] x[s][c][i*st-pad+ki][j*st-pad+kj]
 *
 * The backend computes it (kernels/conv.c on the CPU: im2col and a GEMM per
 * sample); this file gives it its shapes, parameters and settings.  In
 * whole-network passes it also applies an activation that follows it when
 * the backend can (net.c fuses them when the activation works in place),
 * and in forward-only networks a batch normalisation and a max pooling
 * that follow. */
#include "internal.h"

enum { FILTERS, SIZE, STRIDE, PAD, NKEYS };

static const cn_key keys[] = {
    {"filters", 1, 1, 65536, 0, 1, NULL},
    {"size", 1, 1, 1024, 0, 1, NULL},
    {"stride", 1, 1, 1024, 1, 0, NULL},
    {"pad", 1, 0, 1024, 0, 0, NULL},
};

/* A folded batch normalisation's scale and shift at the start of the
 * scratch, then the kernel's part from a whole cache line on (64 bytes). */
static size_t affine_floats(size_t f) { return (2 * f + 15) / 16 * 16; }

static cn_win geometry(const cn_layer *l)
{
    size_t k = (size_t)l->v[SIZE];
    return (cn_win){l->in.c,           l->in.h,  l->in.w, k, k, (size_t)l->v[STRIDE],
                    (size_t)l->v[PAD], l->out.h, l->out.w};
}

static cn_status setup(cn_layer *l, const cn_backend *be, size_t train_batch)
{
    size_t f = (size_t)l->v[FILTERS], k = (size_t)l->v[SIZE];
    size_t st = (size_t)l->v[STRIDE], pad = (size_t)l->v[PAD];
    if (pad >= k)
        return cn_fail(CN_ERR_SPEC, "pad %zu must be smaller than the kernel size %zu", pad, k);
    if (k > l->in.h + 2 * pad || k > l->in.w + 2 * pad)
        return cn_fail(CN_ERR_SPEC, "kernel size %zu is larger than the padded input %zux%zu", k,
                       l->in.h + 2 * pad, l->in.w + 2 * pad);
    l->out = (cn_shape){f, (l->in.h + 2 * pad - k) / st + 1, (l->in.w + 2 * pad - k) / st + 1};
    size_t kk = l->in.c * k * k;
    l->n_t = 2;
    l->t[0] = (cn_ltensor){"weight", 4, {f, l->in.c, k, k}, f * kk, kk, 0, 0};
    l->t[1] = (cn_ltensor){"bias", 1, {f, 0, 0, 0}, f, 0, 0, 0};
    l->macs = (uint64_t)f * kk * l->out.h * l->out.w;
    cn_win g = geometry(l);
    /* the kernel's scratch, after a folded layer's scale and shift */
    l->ws_floats = affine_floats(f) + be->conv_ws(be, &g, f, train_batch);
    return CN_OK;
}

/* Whether every one of the f scales (backend memory) is 0 or more: the
 * map then rises with its input. */
static int rising(const cn_backend *be, const float *scale, size_t f)
{
    float part[64];
    for (size_t k0 = 0; k0 < f; k0 += 64) {
        size_t cnt = f - k0 < 64 ? f - k0 : 64;
        be->download(be, part, scale + k0, cnt * sizeof *part);
        for (size_t k = 0; k < cnt; k++)
            if (!(part[k] >= 0.0f))
                return 0;
    }
    return 1;
}

static void forward(cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n)
{
    cn_win g = geometry(l);
    size_t f = l->out.c;
    cn_act act = ctx->fuse ? l->fused_act : CN_ACT_NONE;
    /* A forward-only network's state area: the filters as the backend
     * reads them, kept between passes (keep_floats). */
    float *keep = l->state_floats ? l->state : NULL;
    float *scale = NULL, *shift = NULL;
    if (ctx->fuse && l->fused_affine) {
        /* A batch normalisation folded in (forward-only networks). */
        scale = ctx->ws, shift = ctx->ws + f;
        l->fused_affine->ops->affine(l->fused_affine, ctx, scale, shift);
    }
    if (ctx->fuse && l->fused_pool) {
        /* A max pooling folded in too (forward-only networks): y is its
         * output. */
        cn_win pool = l->fused_pool->ops->window(l->fused_pool);
        int after = l->affine_after_pool && !rising(ctx->be, scale, f);
        ctx->be->conv_fwd_pool(ctx->be, &g, f, x, n, l->p[0], l->p[1], after ? NULL : scale,
                               after ? NULL : shift, &pool, y, ctx->ws + affine_floats(f), keep,
                               after ? CN_ACT_NONE : act);
        if (after) {
            /* A negative scale: the normalisation's own pass over the
             * pooled output (in place), then the activation, as apart. */
            cn_ctx plain = *ctx;
            plain.fuse = 0;
            cn_layer *bn = (cn_layer *)l->fused_affine; /* an evaluation changes nothing */
            bn->ops->forward(bn, &plain, y, y, n);
            if (act != CN_ACT_NONE)
                ctx->be->act_fwd(ctx->be, act, 0.0f, y, y, n * cn_shape_size(bn->out));
        }
        return;
    }
    if (scale) {
        ctx->be->conv_fwd_affine(ctx->be, &g, f, x, n, l->p[0], l->p[1], scale, shift, y,
                                 ctx->ws + affine_floats(f), keep, act);
        return;
    }
    ctx->be->conv_fwd(ctx->be, &g, f, x, n, l->p[0], l->p[1], y, ctx->ws + affine_floats(f), keep,
                      act);
}

static void backward(cn_layer *l, const cn_ctx *ctx, const float *x, const float *y,
                     const float *dy, float *dx, size_t n)
{
    cn_win g = geometry(l);
    ctx->be->conv_bwd(ctx->be, &g, l->out.c, x, y, dy, n, l->p[0], l->g[0], l->g[1], dx,
                      ctx->ws + affine_floats(l->out.c), ctx->fuse ? l->fused_act : CN_ACT_NONE);
}

static unsigned fusable_acts(const cn_backend *be) { return be->conv_acts; }

static size_t keep_floats(const cn_layer *l, const cn_backend *be)
{
    cn_win g = geometry(l);
    return be->conv_keep ? be->conv_keep(be, &g, l->out.c) : 0;
}

const cn_layer_ops cn_conv_ops = {
    .kind = "conv",
    .keys = keys,
    .n_keys = NKEYS,
    .needs_x = 1,
    .fusable_acts = fusable_acts,
    .fuses_affine = 1,
    .fuses_pool = 1,
    .setup = setup,
    .forward = forward,
    .backward = backward,
    .keep_floats = keep_floats,
    .window = geometry,
};
