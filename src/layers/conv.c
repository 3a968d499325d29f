/* conv.c - 2-d convolution (cross-correlation over all input channels) with
 * zero padding and stride, as a matrix product over im2col columns.
 *
 * y[s][f][i][j] = b[f] + sum_{c,ki,kj} w[f][c][ki][kj] * x[s][c][i*st-pad+ki][j*st-pad+kj]
 *
 * Per chunk of samples:  col (K, S*P) = im2col(x),  t (M, S*P) = W (M, K) col,
 * y (S, M, P) = swap(t) + b,  with K = C*kh*kw, M = filters, P = oh*ow.
 * Backward:  t = swap(dy),  dW += t col^T,  db += sum(dy),  col = W^T t,
 * dx = col2im(col).  The scratch holds col and t for one chunk. */
#include "internal.h"

enum { FILTERS, SIZE, STRIDE, PAD, NKEYS };

static const cn_key keys[] = {
    {"filters", 1, 1, 65536, 0, 1, NULL},
    {"size", 1, 1, 1024, 0, 1, NULL},
    {"stride", 1, 1, 1024, 1, 0, NULL},
    {"pad", 1, 0, 1024, 0, 0, NULL},
};

/* Scratch per chunk is kept under this many floats (64 MB). */
#define COL_BUDGET ((size_t)16 << 20)

static cn_win geometry(const cn_layer *l)
{
    size_t k = (size_t)l->v[SIZE];
    return (cn_win){l->in.c,           l->in.h,  l->in.w, k, k, (size_t)l->v[STRIDE],
                    (size_t)l->v[PAD], l->out.h, l->out.w};
}

static cn_status setup(cn_layer *l, size_t max_batch)
{
    size_t f = (size_t)l->v[FILTERS], k = (size_t)l->v[SIZE];
    size_t st = (size_t)l->v[STRIDE], pad = (size_t)l->v[PAD];
    if (pad >= k)
        return cn_fail(CN_ERR_SPEC, "pad %zu must be smaller than the kernel size %zu", pad, k);
    if (k > l->in.h + 2 * pad || k > l->in.w + 2 * pad)
        return cn_fail(CN_ERR_SPEC, "kernel size %zu is larger than the padded input %zux%zu", k,
                       l->in.h + 2 * pad, l->in.w + 2 * pad);
    l->out = (cn_shape){f, (l->in.h + 2 * pad - k) / st + 1, (l->in.w + 2 * pad - k) / st + 1};
    size_t kk = l->in.c * k * k, p = l->out.h * l->out.w;
    l->n_t = 2;
    l->t[0] = (cn_ltensor){"weight", 4, {f, l->in.c, k, k}, f * kk, kk, 0};
    l->t[1] = (cn_ltensor){"bias", 1, {f, 0, 0, 0}, f, 0, 0};
    l->macs = (uint64_t)f * kk * p;
    size_t per_sample = (kk + f) * p;
    l->chunk = per_sample >= COL_BUDGET ? 1 : COL_BUDGET / per_sample;
    if (l->chunk > max_batch)
        l->chunk = max_batch;
    l->ws_floats = cn_mul(per_sample, l->chunk);
    return CN_OK;
}

static void forward(cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n)
{
    const cn_backend *be = ctx->be;
    cn_win g = geometry(l);
    size_t kk = g.c * g.kh * g.kw, m = l->out.c, p = g.oh * g.ow;
    size_t in_size = cn_shape_size(l->in), out_size = cn_shape_size(l->out);
    float *col = ctx->ws, *t = ctx->ws + kk * l->chunk * p;
    for (size_t s0 = 0; s0 < n; s0 += l->chunk) {
        size_t c = n - s0 < l->chunk ? n - s0 : l->chunk;
        be->im2col(be, &g, x + s0 * in_size, c, col);
        be->gemm(be, 0, 0, m, c * p, kk, 1.0f, l->p[0], kk, col, c * p, 0.0f, t, c * p);
        be->swap01(be, t, m, c, p, y + s0 * out_size);
        be->add_bias(be, y + s0 * out_size, c, m, p, l->p[1]);
    }
}

static void backward(cn_layer *l, const cn_ctx *ctx, const float *x, const float *y,
                     const float *dy, float *dx, size_t n)
{
    (void)y;
    const cn_backend *be = ctx->be;
    cn_win g = geometry(l);
    size_t kk = g.c * g.kh * g.kw, m = l->out.c, p = g.oh * g.ow;
    size_t in_size = cn_shape_size(l->in), out_size = cn_shape_size(l->out);
    float *col = ctx->ws, *t = ctx->ws + kk * l->chunk * p;
    for (size_t s0 = 0; s0 < n; s0 += l->chunk) {
        size_t c = n - s0 < l->chunk ? n - s0 : l->chunk;
        const float *d = dy + s0 * out_size;
        be->swap01(be, d, c, m, p, t);
        be->bias_grad(be, d, c, m, p, l->g[1]);
        be->im2col(be, &g, x + s0 * in_size, c, col);
        be->gemm(be, 0, 1, m, kk, c * p, 1.0f, t, c * p, col, c * p, 1.0f, l->g[0], kk);
        if (dx) {
            be->gemm(be, 1, 0, kk, c * p, m, 1.0f, l->p[0], kk, t, c * p, 0.0f, col, c * p);
            be->col2im(be, &g, col, c, dx + s0 * in_size);
        }
    }
}

const cn_layer_ops cn_conv_ops = {"conv", keys, NKEYS, 0, setup, forward, backward, NULL};
