/* window.c - kernels over sliding windows: im2col/col2im and max pooling.
 *
 * A window (kh, kw) at output (i, j) covers input rows i*stride - pad + ki
 * and columns j*stride - pad + kj; positions outside the input read as zero
 * (convolution) and are never chosen (pooling has no padding). */
#include "kernels/kernels.h"

#include <string.h>

/* Output columns j whose input column j*stride - pad + kj lies in [0, w):
 * [*lo, *hi). */
static void valid_range(size_t kj, const cn_win *g, size_t *lo, size_t *hi)
{
    /* j*stride + kj >= pad  and  j*stride + kj < w + pad */
    size_t l = kj >= g->pad ? 0 : (g->pad - kj + g->stride - 1) / g->stride;
    size_t h = kj >= g->w + g->pad ? 0 : (g->w + g->pad - kj + g->stride - 1) / g->stride;
    if (h > g->ow)
        h = g->ow;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* One channel plane of one image: rows of col for (ki, kj) of this channel. */
static void im2col_plane(const cn_win *g, const float *x, float *col, size_t ldcol)
{
    for (size_t ki = 0; ki < g->kh; ki++) {
        for (size_t kj = 0; kj < g->kw; kj++) {
            float *row = col + (ki * g->kw + kj) * ldcol;
            size_t lo, hi;
            valid_range(kj, g, &lo, &hi);
            for (size_t i = 0; i < g->oh; i++) {
                float *out = row + i * g->ow;
                size_t ii = i * g->stride + ki;
                if (ii < g->pad || ii >= g->h + g->pad || lo == hi) {
                    memset(out, 0, g->ow * sizeof(float));
                    continue;
                }
                const float *in = x + (ii - g->pad) * g->w;
                for (size_t j = 0; j < lo; j++)
                    out[j] = 0.0f;
                if (g->stride == 1) {
                    memcpy(out + lo, in + lo + kj - g->pad, (hi - lo) * sizeof(float));
                } else {
                    for (size_t j = lo; j < hi; j++)
                        out[j] = in[j * g->stride + kj - g->pad];
                }
                for (size_t j = hi; j < g->ow; j++)
                    out[j] = 0.0f;
            }
        }
    }
}

void cn_im2col_ref(const cn_win *g, const float *x, float *col, size_t ldcol)
{
    for (size_t c = 0; c < g->c; c++)
        for (size_t ki = 0; ki < g->kh; ki++)
            for (size_t kj = 0; kj < g->kw; kj++) {
                size_t r = (c * g->kh + ki) * g->kw + kj;
                for (size_t i = 0; i < g->oh; i++)
                    for (size_t j = 0; j < g->ow; j++) {
                        long ii = (long)(i * g->stride + ki) - (long)g->pad;
                        long jj = (long)(j * g->stride + kj) - (long)g->pad;
                        int inside = ii >= 0 && jj >= 0 && ii < (long)g->h && jj < (long)g->w;
                        col[r * ldcol + i * g->ow + j] =
                            inside ? x[(c * g->h + (size_t)ii) * g->w + (size_t)jj] : 0.0f;
                    }
            }
}

void cn_cpu_im2col(const cn_backend *be, const cn_win *g, const float *x, size_t n, float *col)
{
    size_t ohw = g->oh * g->ow, ld = n * ohw, kk = g->kh * g->kw;
    long planes = (long)(n * g->c);
#pragma omp parallel for num_threads(be->threads) schedule(static) if (planes > 1)
    for (long t = 0; t < planes; t++) {
        size_t s = (size_t)t / g->c, c = (size_t)t % g->c;
        im2col_plane(g, x + (s * g->c + c) * g->h * g->w, col + c * kk * ld + s * ohw, ld);
    }
}

void cn_cpu_col2im(const cn_backend *be, const cn_win *g, const float *col, size_t n, float *dx)
{
    size_t ohw = g->oh * g->ow, ld = n * ohw, kk = g->kh * g->kw;
    long planes = (long)(n * g->c);
#pragma omp parallel for num_threads(be->threads) schedule(static) if (planes > 1)
    for (long t = 0; t < planes; t++) {
        size_t s = (size_t)t / g->c, c = (size_t)t % g->c;
        float *x = dx + (s * g->c + c) * g->h * g->w;
        memset(x, 0, g->h * g->w * sizeof(float));
        for (size_t ki = 0; ki < g->kh; ki++)
            for (size_t kj = 0; kj < g->kw; kj++) {
                const float *row = col + (c * kk + ki * g->kw + kj) * ld + s * ohw;
                size_t lo, hi;
                valid_range(kj, g, &lo, &hi);
                for (size_t i = 0; i < g->oh; i++) {
                    size_t ii = i * g->stride + ki;
                    if (ii < g->pad || ii >= g->h + g->pad)
                        continue;
                    float *out = x + (ii - g->pad) * g->w;
                    const float *in = row + i * g->ow;
                    for (size_t j = lo; j < hi; j++)
                        out[j * g->stride + kj - g->pad] += in[j];
                }
            }
    }
}

void cn_cpu_maxpool_fwd(const cn_backend *be, const cn_win *g, const float *x, size_t n, float *y)
{
    long planes = (long)(n * g->c);
#pragma omp parallel for num_threads(be->threads) schedule(static) if (planes > 64)
    for (long t = 0; t < planes; t++) {
        const float *in = x + (size_t)t * g->h * g->w;
        float *out = y + (size_t)t * g->oh * g->ow;
        for (size_t i = 0; i < g->oh; i++)
            for (size_t j = 0; j < g->ow; j++) {
                const float *win = in + i * g->stride * g->w + j * g->stride;
                float best = win[0];
                for (size_t ki = 0; ki < g->kh; ki++)
                    for (size_t kj = 0; kj < g->kw; kj++)
                        if (win[ki * g->w + kj] > best)
                            best = win[ki * g->w + kj];
                out[i * g->ow + j] = best;
            }
    }
}

void cn_cpu_maxpool_bwd(const cn_backend *be, const cn_win *g, const float *x, const float *dy,
                        size_t n, float *dx)
{
    long planes = (long)(n * g->c);
#pragma omp parallel for num_threads(be->threads) schedule(static) if (planes > 64)
    for (long t = 0; t < planes; t++) {
        const float *in = x + (size_t)t * g->h * g->w;
        const float *d = dy + (size_t)t * g->oh * g->ow;
        float *out = dx + (size_t)t * g->h * g->w;
        memset(out, 0, g->h * g->w * sizeof(float));
        for (size_t i = 0; i < g->oh; i++)
            for (size_t j = 0; j < g->ow; j++) {
                size_t base = i * g->stride * g->w + j * g->stride, arg = base;
                float best = in[base];
                for (size_t ki = 0; ki < g->kh; ki++)
                    for (size_t kj = 0; kj < g->kw; kj++)
                        if (in[base + ki * g->w + kj] > best) {
                            best = in[base + ki * g->w + kj];
                            arg = base + ki * g->w + kj;
                        }
                out[arg] += d[i * g->ow + j];
            }
    }
}
