/* batchnorm.c - batch normalisation, per channel (per feature after a fully
 * connected layer):
 *
 *   y = gamma (x - mean) / sqrt(var + eps) + beta
 *
 * In training passes mean and var are the batch's, over samples and
 * positions, and the running estimates move towards them by momentum (as in
 * PyTorch: var unbiased, momentum 0.1); in evaluation the running estimates
 * are used.  gamma and beta are trained ("weight" and "bias"); the running
 * mean and variance are buffers, saved under PyTorch's names. */
#include "internal.h"

enum { MOMENTUM, EPS, NKEYS };

static const cn_key keys[] = {
    {"momentum", 0, 0, 1, 0.1, 0, NULL},
    {"eps", 0, 1e-12, 1, 1e-5, 0, NULL},
};

static cn_status setup(cn_layer *l, const cn_backend *be, size_t train_batch)
{
    (void)be;
    (void)train_batch;
    size_t c = l->in.c;
    l->out = l->in;
    l->n_t = 2;
    l->t[0] = (cn_ltensor){"weight", 1, {c, 0, 0, 0}, c, 0, 1.0f, 0};
    l->t[1] = (cn_ltensor){"bias", 1, {c, 0, 0, 0}, c, 0, 0.0f, 0};
    l->n_bt = 2;
    l->bt[0] = (cn_ltensor){"running_mean", 1, {c, 0, 0, 0}, c, 0, 0.0f, 0};
    l->bt[1] = (cn_ltensor){"running_var", 1, {c, 0, 0, 0}, c, 0, 1.0f, 0};
    l->state_floats = 2 * c; /* the batch's mean and 1 / std, kept for backward */
    /* the backend's sums (doubles) during a pass */
    l->ws_floats = 2 * CN_BN_SCRATCH(c);
    return CN_OK;
}

static void forward(cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n)
{
    size_t c = l->in.c;
    ctx->be->bn_fwd(ctx->be, x, n, c, l->in.h * l->in.w, l->p[0], l->p[1], l->b[0], l->b[1],
                    (float)l->v[MOMENTUM], (float)l->v[EPS], ctx->train, l->state, l->state + c,
                    (double *)ctx->ws, y, ctx->fuse ? l->fused_act : CN_ACT_NONE);
}

static void backward(cn_layer *l, const cn_ctx *ctx, const float *x, const float *y,
                     const float *dy, float *dx, size_t n)
{
    size_t c = l->in.c;
    if (!ctx->train) {
        /* After an evaluation pass (cn_net_class_gradient) the layer is the
         * affine map gamma x / sqrt(running_var + eps) + shift, so dx is the
         * same map of dy without the shift: bn_fwd's evaluation path with a
         * zero mean and beta (the scratch's first c floats) computes it.
         * Parameter gradients are not needed there and are left out. */
        if (dx) {
            ctx->be->fill(ctx->be, ctx->ws, 0.0f, c);
            ctx->be->bn_fwd(ctx->be, dy, n, c, l->in.h * l->in.w, l->p[0], ctx->ws, ctx->ws,
                            l->b[1], (float)l->v[MOMENTUM], (float)l->v[EPS], 0, l->state,
                            l->state + c, (double *)(ctx->ws + 2 * c), dx, CN_ACT_NONE);
        }
        return;
    }
    ctx->be->bn_bwd(ctx->be, x, y, dy, n, c, l->in.h * l->in.w, l->p[0], l->state, l->state + c,
                    (double *)ctx->ws, l->g[0], l->g[1], dx,
                    ctx->fuse ? l->fused_act : CN_ACT_NONE);
}

/* Evaluation's map, for a layer before it to apply (net.c folds it into a
 * convolution in forward-only networks). */
static void affine(const cn_layer *l, const cn_ctx *ctx, float *scale, float *shift)
{
    ctx->be->bn_affine(ctx->be, l->p[0], l->p[1], l->b[0], l->b[1], (float)l->v[EPS], l->in.c,
                       scale, shift);
}

/* A training pass's output made again from x and the batch's statistics
 * that forward kept, its fused activation applied as forward applied it. */
static void replay(const cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n)
{
    size_t c = l->in.c;
    ctx->be->bn_apply(ctx->be, x, n, c, l->in.h * l->in.w, l->p[0], l->p[1], l->state, l->state + c,
                      y, l->fused_act);
}

static int can_replay(const cn_backend *be) { return be->bn_apply != NULL; }

static unsigned fusable_acts(const cn_backend *be) { return be->bn_acts; }

static unsigned dx_places(const cn_layer *l, const cn_backend *be)
{
    (void)l;
    return be->bwd_in_place & CN_BWD_BN ? CN_DX_ON_DY : 0;
}

const cn_layer_ops cn_batchnorm_ops = {
    .kind = "batchnorm",
    .keys = keys,
    .n_keys = NKEYS,
    .needs_x = 1,
    .fusable_acts = fusable_acts,
    .dx_places = dx_places,
    .setup = setup,
    .forward = forward,
    .backward = backward,
    .affine = affine,
    .replay = replay,
    .can_replay = can_replay,
};
