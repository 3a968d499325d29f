/* window.c - kernels over sliding windows: im2col, im2row, col2im and max
 * pooling.  Part of the CPU kernels compiled once per instruction set
 * (kernels/cpu_kernels.h).
 *
 * A window (kh, kw) at output (i, j) covers input rows i*stride - pad + ki
 * and columns j*stride - pad + kj; positions outside the input read as zero
 * (convolution) and are never chosen (pooling has no padding). */

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
                    const float *src = in + kj - g->pad;
                    for (size_t j = lo; j < hi; j++)
                        out[j] = src[j];
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

static void im2col_one(const cn_win *g, const float *x, float *col, size_t ldcol)
{
    size_t kk = g->kh * g->kw;
    for (size_t c = 0; c < g->c; c++)
        im2col_plane(g, x + c * g->h * g->w, col + c * kk * ldcol, ldcol);
}

static void im2row_one(const cn_win *g, const float *x, float *row)
{
    size_t kk = g->c * g->kh * g->kw;
    for (size_t i = 0; i < g->oh; i++)
        for (size_t j = 0; j < g->ow; j++) {
            float *out = row + (i * g->ow + j) * kk;
            /* Window columns inside the input: [lo, hi). */
            size_t jj = j * g->stride, lo = jj < g->pad ? g->pad - jj : 0;
            size_t hi = jj + g->kw <= g->w + g->pad ? g->kw : g->w + g->pad - jj;
            for (size_t c = 0; c < g->c; c++)
                for (size_t ki = 0; ki < g->kh; ki++, out += g->kw) {
                    size_t ii = i * g->stride + ki;
                    if (ii < g->pad || ii >= g->h + g->pad) {
                        memset(out, 0, g->kw * sizeof(float));
                        continue;
                    }
                    const float *in = x + (c * g->h + ii - g->pad) * g->w + jj - g->pad;
                    for (size_t kj = 0; kj < lo; kj++)
                        out[kj] = 0.0f;
                    for (size_t kj = lo; kj < hi; kj++)
                        out[kj] = in[kj];
                    for (size_t kj = hi; kj < g->kw; kj++)
                        out[kj] = 0.0f;
                }
        }
}

/* One channel plane of one image: adds the windows of col back into x. */
static void col2im_plane(const cn_win *g, const float *col, size_t ldcol, float *x)
{
    memset(x, 0, g->h * g->w * sizeof(float));
    for (size_t ki = 0; ki < g->kh; ki++)
        for (size_t kj = 0; kj < g->kw; kj++) {
            const float *row = col + (ki * g->kw + kj) * ldcol;
            size_t lo, hi;
            valid_range(kj, g, &lo, &hi);
            for (size_t i = 0; i < g->oh; i++) {
                size_t ii = i * g->stride + ki;
                if (ii < g->pad || ii >= g->h + g->pad)
                    continue;
                float *out = x + (ii - g->pad) * g->w + kj - g->pad;
                const float *in = row + i * g->ow;
                if (g->stride == 1) {
                    for (size_t j = lo; j < hi; j++)
                        out[j] += in[j];
                } else {
                    for (size_t j = lo; j < hi; j++)
                        out[j * g->stride] += in[j];
                }
            }
        }
}

static void col2im_one(const cn_win *g, const float *col, size_t ldcol, float *dx)
{
    size_t kk = g->kh * g->kw;
    for (size_t c = 0; c < g->c; c++)
        col2im_plane(g, col + c * kk * ldcol, ldcol, dx + c * g->h * g->w);
}

static void maxpool_fwd(const cn_backend *be, const cn_win *g, const float *x, size_t n, float *y)
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

static void maxpool_bwd(const cn_backend *be, const cn_win *g, const float *x, const float *dy,
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
