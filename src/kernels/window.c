/* window.c - kernels over sliding windows: im2col, im2row, col2im and max
 * pooling.  Part of the CPU kernels compiled once per instruction set
 * (kernels/cpu_kernels.h).
 *
 * A window (kh, kw) at output (i, j) covers input rows i*stride - pad + ki
 * and columns j*stride - pad + kj; positions outside the input read as zero
 * (convolution) and are never chosen (pooling has no padding).  Rows are
 * moved with the instruction set's vcopy, vzero and vadd. */

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

/* Output rows i whose input row i*stride - pad + ki lies in [0, h): [*lo, *hi). */
static void row_range(size_t ki, const cn_win *g, size_t *lo, size_t *hi)
{
    size_t st = g->stride, pad = g->pad;
    size_t l = ki >= pad ? 0 : (pad - ki + st - 1) / st;
    size_t h = ki >= g->h + pad ? 0 : (g->h + pad - ki + st - 1) / st;
    h = h < g->oh ? h : g->oh;
    *lo = l < h ? l : h;
    *hi = h;
}

/* One channel plane of one image: rows of col for (ki, kj) of this channel.
 * The geometry is copied into locals so that the stores into col cannot make
 * the compiler reload it. */
static void im2col_plane(const cn_win *g, const float *x, float *col, size_t ldcol)
{
#ifdef HAVE_IM2COL_S1
    if (g->stride == 1 && g->pad > 0) {
        im2col_plane_s1(g, x, col, ldcol);
        return;
    }
#endif
    const size_t kh = g->kh, kw = g->kw, oh = g->oh, ow = g->ow, w = g->w;
    const size_t st = g->stride, pad = g->pad;
    for (size_t ki = 0; ki < kh; ki++) {
        size_t i0, i1;
        row_range(ki, g, &i0, &i1);
        for (size_t kj = 0; kj < kw; kj++) {
            float *row = col + (ki * kw + kj) * ldcol;
            size_t lo, hi;
            valid_range(kj, g, &lo, &hi);
            vzero(row, i0 * ow);
            float *out = row + i0 * ow;
            const float *in = x + (i0 * st + ki - pad) * w;
            if (st == 1 && lo == 0 && hi == ow) {
                const float *src = in + kj - pad;
                for (size_t i = i0; i < i1; i++, out += ow, src += w)
                    vcopy(out, src, ow);
            } else {
                for (size_t i = i0; i < i1; i++, out += ow, in += st * w) {
                    vzero(out, lo);
                    if (st == 1)
                        vcopy(out + lo, in + lo + kj - pad, hi - lo);
                    else
                        for (size_t j = lo; j < hi; j++)
                            out[j] = in[j * st + kj - pad];
                    vzero(out + hi, ow - hi);
                }
            }
            vzero(out, (oh - i1) * ow);
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
#ifdef HAVE_IM2ROW_S1
    if (g->stride == 1 && g->kw <= 16) {
        im2row_s1(g, x, row);
        return;
    }
#endif
    const size_t c = g->c, kh = g->kh, kw = g->kw, oh = g->oh, ow = g->ow, h = g->h, w = g->w;
    const size_t st = g->stride, pad = g->pad, kk = c * kh * kw;
    for (size_t i = 0; i < oh; i++)
        for (size_t j = 0; j < ow; j++) {
            float *out = row + (i * ow + j) * kk;
            /* Window columns inside the input: [lo, hi). */
            size_t jj = j * st, lo = jj < pad ? pad - jj : 0;
            size_t hi = jj + kw <= w + pad ? kw : w + pad - jj;
            for (size_t ch = 0; ch < c; ch++) {
                const float *plane = x + ch * h * w;
                for (size_t ki = 0; ki < kh; ki++, out += kw) {
                    size_t ii = i * st + ki;
                    if (ii < pad || ii >= h + pad) {
                        vzero(out, kw);
                        continue;
                    }
                    const float *in = plane + (ii - pad) * w + jj - pad;
                    if (lo == 0 && hi == kw) {
                        vcopy(out, in, kw);
                    } else {
                        vzero(out, lo);
                        vcopy(out + lo, in + lo, hi - lo);
                        vzero(out + hi, kw - hi);
                    }
                }
            }
        }
}

/* One channel plane of one image: adds the windows of col back into x. */
static void col2im_plane(const cn_win *g, const float *col, size_t ldcol, float *x)
{
    const size_t kh = g->kh, kw = g->kw, ow = g->ow, h = g->h, w = g->w;
    const size_t st = g->stride, pad = g->pad;
    vzero(x, h * w);
    for (size_t ki = 0; ki < kh; ki++) {
        size_t i0, i1;
        row_range(ki, g, &i0, &i1);
        for (size_t kj = 0; kj < kw; kj++) {
            const float *in = col + (ki * kw + kj) * ldcol + i0 * ow;
            size_t lo, hi;
            valid_range(kj, g, &lo, &hi);
            float *out = x + (i0 * st + ki - pad) * w + kj - pad;
            for (size_t i = i0; i < i1; i++, in += ow, out += st * w) {
                if (st == 1)
                    vadd(out + lo, in + lo, hi - lo);
                else
                    for (size_t j = lo; j < hi; j++)
                        out[j * st] += in[j];
            }
        }
    }
}

static void col2im_one(const cn_win *g, const float *col, size_t ldcol, float *dx)
{
#ifdef HAVE_COL2IM_S1
    if (g->stride == 1 && col2im_s1_fits(g)) {
        col2im_s1(g, col, ldcol, dx);
        return;
    }
#endif
    size_t kk = g->kh * g->kw;
    for (size_t c = 0; c < g->c; c++)
        col2im_plane(g, col + c * kk * ldcol, ldcol, dx + c * g->h * g->w);
}

/* 2x2 windows with stride 2, the common case.  An instruction set may give
 * its own pool2_fwd_row and pool2_bwd_row (HAVE_POOL2_ROW); these are the
 * plain versions, straight-line selects the compiler can vectorise. */
#ifndef HAVE_POOL2_ROW
static void pool2_fwd_row(const float *restrict t, const float *restrict u, size_t ow,
                          float *restrict out)
{
    for (size_t j = 0; j < ow; j++) {
        float a = t[2 * j], b = t[2 * j + 1], c = u[2 * j], d = u[2 * j + 1];
        float ab = b > a ? b : a, cd = d > c ? d : c;
        out[j] = cd > ab ? cd : ab;
    }
}

/* The gradient goes to the first maximum in a, b, c, d order, as in the
 * general case (with relu, none from a window whose maximum is not above
 * 0); every input of the window is written, after the window is read (ot
 * may be t and ou u: in place). */
static void pool2_bwd_row(const float *t, const float *u, size_t ow, const float *d, float *ot,
                          float *ou, int relu)
{
    for (size_t j = 0; j < ow; j++) {
        float a = t[2 * j], b = t[2 * j + 1], c = u[2 * j], e = u[2 * j + 1], g = d[j];
        float ab = b > a ? b : a, ce = e > c ? e : c;
        g = relu && !((ce > ab ? ce : ab) > 0.0f) ? 0.0f : g;
        float gt = ce > ab ? 0.0f : g, gu = ce > ab ? g : 0.0f; /* which row wins */
        ot[2 * j] = b > a ? 0.0f : gt;
        ot[2 * j + 1] = b > a ? gt : 0.0f;
        ou[2 * j] = e > c ? 0.0f : gu;
        ou[2 * j + 1] = e > c ? gu : 0.0f;
    }
}

/* pool2_fwd_row that also notes each window's winner (maxpool_fwd_sw):
 * the index of the first maximum in a, b, c, d order, as pool2_bwd_row
 * chooses it, and CN_SW_ON when it is above 0. */
static void pool2_fwd_sw_row(const float *restrict t, const float *restrict u, size_t ow,
                             float *restrict out, uint8_t *restrict sw)
{
    for (size_t j = 0; j < ow; j++) {
        float a = t[2 * j], b = t[2 * j + 1], c = u[2 * j], d = u[2 * j + 1];
        float ab = b > a ? b : a, cd = d > c ? d : c, m = cd > ab ? cd : ab;
        unsigned k = cd > ab ? 2u + (d > c) : (unsigned)(b > a);
        out[j] = m;
        sw[j] = (uint8_t)(k | (m > 0.0f ? CN_SW_ON : 0u));
    }
}

/* pool2_bwd_row from the switches: the gradient to the input sw names, 0
 * to the other three (with relu, none where CN_SW_ON is not set). */
static void pool2_bwd_sw_row(const uint8_t *restrict sw, size_t ow, const float *restrict d,
                             float *restrict ot, float *restrict ou, int relu)
{
    for (size_t j = 0; j < ow; j++) {
        unsigned k = sw[j] & (CN_SW_ON - 1u);
        float g = relu && !(sw[j] & CN_SW_ON) ? 0.0f : d[j];
        ot[2 * j] = k == 0 ? g : 0.0f;
        ot[2 * j + 1] = k == 1 ? g : 0.0f;
        ou[2 * j] = k == 2 ? g : 0.0f;
        ou[2 * j + 1] = k == 3 ? g : 0.0f;
    }
}
#endif

static void pool2_fwd_plane(const float *in, size_t w, size_t oh, size_t ow, float *out)
{
    for (size_t i = 0; i < oh; i++, in += 2 * w, out += ow)
        pool2_fwd_row(in, in + w, ow, out);
}

/* The inputs of a plane (h x w) that no 2x2 window covers, an odd last
 * column and an odd last row, set to 0 in its gradient out. */
static void pool2_bwd_edges(float *out, size_t h, size_t w, size_t oh, size_t ow)
{
    for (size_t r = 0; r < 2 * oh; r++)
        for (size_t j = 2 * ow; j < w; j++)
            out[r * w + j] = 0.0f;
    for (size_t i = 2 * oh; i < h; i++)
        for (size_t j = 0; j < w; j++)
            out[i * w + j] = 0.0f;
}

static void pool2_bwd_plane(const float *in, size_t w, size_t oh, size_t ow, const float *d,
                            float *out, size_t h, int relu)
{
    for (size_t i = 0; i < oh; i++)
        pool2_bwd_row(in + 2 * i * w, in + (2 * i + 1) * w, ow, d + i * ow, out + 2 * i * w,
                      out + (2 * i + 1) * w, relu);
    pool2_bwd_edges(out, h, w, oh, ow);
}

static int is_pool2(const cn_win *g) { return g->kh == 2 && g->kw == 2 && g->stride == 2; }

/* One plane's max pooling, in into out (also a convolution's output pooled
 * as it is made: conv.c's conv_fwd_pool). */
static void maxpool_plane(const cn_win *g, const float *in, float *out)
{
    if (is_pool2(g)) {
        pool2_fwd_plane(in, g->w, g->oh, g->ow, out);
        return;
    }
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

static void maxpool_fwd(const cn_backend *be, const cn_win *g, const float *x, size_t n, float *y)
{
    long planes = (long)(n * g->c);
    PARALLEL_FOR(planes > 64 ? cn_cpu_of(be)->threads : 1, t, planes,
                 { maxpool_plane(g, x + (size_t)t * g->h * g->w, y + (size_t)t * g->oh * g->ow); });
}

/* Where the first maximum of the window at win is, from win. */
static size_t window_arg(const cn_win *g, const float *win)
{
    size_t arg = 0;
    for (size_t ki = 0; ki < g->kh; ki++)
        for (size_t kj = 0; kj < g->kw; kj++)
            if (win[ki * g->w + kj] > win[arg])
                arg = ki * g->w + kj;
    return arg;
}

/* One plane's gradient when no two windows overlap: each window is read
 * and then written whole, and the inputs no window covers get 0, so out may
 * be in (in place).  relu: none from a window whose maximum is not above 0. */
static void pool_bwd_apart(const cn_win *g, const float *in, const float *d, float *out, int relu)
{
    const size_t st = g->stride, w = g->w;
    for (size_t r = 0; r < g->h; r++) { /* the rows and columns between windows */
        size_t i = r / st, ki = r % st;
        for (size_t c = 0; c < w; c++)
            if (i >= g->oh || ki >= g->kh || c / st >= g->ow || c % st >= g->kw)
                out[r * w + c] = 0.0f;
    }
    for (size_t i = 0; i < g->oh; i++)
        for (size_t j = 0; j < g->ow; j++) {
            size_t base = i * st * w + j * st, arg = window_arg(g, in + base);
            float v = relu && !(in[base + arg] > 0.0f) ? 0.0f : d[i * g->ow + j];
            for (size_t ki = 0; ki < g->kh; ki++)
                for (size_t kj = 0; kj < g->kw; kj++)
                    out[base + ki * w + kj] = 0.0f;
            out[base + arg] = v;
        }
}

static void maxpool_bwd(const cn_backend *be, const cn_win *g, const float *x, const float *dy,
                        size_t n, float *dx, cn_act act)
{
    int relu = act == CN_ACT_RELU;
    long planes = (long)(n * g->c);
    PARALLEL_FOR(planes > 64 ? cn_cpu_of(be)->threads : 1, t, planes, {
        const float *in = x + (size_t)t * g->h * g->w;
        const float *d = dy + (size_t)t * g->oh * g->ow;
        float *out = dx + (size_t)t * g->h * g->w;
        if (is_pool2(g)) {
            pool2_bwd_plane(in, g->w, g->oh, g->ow, d, out, g->h, relu);
            continue;
        }
        if (g->stride >= g->kh && g->stride >= g->kw) {
            pool_bwd_apart(g, in, d, out, relu);
            continue;
        }
        memset(out, 0, g->h * g->w * sizeof(float));
        for (size_t i = 0; i < g->oh; i++)
            for (size_t j = 0; j < g->ow; j++) {
                size_t base = i * g->stride * g->w + j * g->stride;
                size_t arg = base + window_arg(g, in + base);
                out[arg] += relu && !(in[arg] > 0.0f) ? 0.0f : d[i * g->ow + j];
            }
    });
}

/* One plane of maxpool_fwd_sw (windows apart, CN_SW_MAX inputs at most). */
static void maxpool_sw_plane(const cn_win *g, const float *in, float *out, uint8_t *sw)
{
    if (is_pool2(g)) {
        for (size_t i = 0; i < g->oh; i++)
            pool2_fwd_sw_row(in + 2 * i * g->w, in + (2 * i + 1) * g->w, g->ow, out + i * g->ow,
                             sw + i * g->ow);
        return;
    }
    for (size_t i = 0; i < g->oh; i++)
        for (size_t j = 0; j < g->ow; j++) {
            const float *win = in + i * g->stride * g->w + j * g->stride;
            size_t arg = window_arg(g, win), k = arg / g->w * g->kw + arg % g->w;
            out[i * g->ow + j] = win[arg];
            sw[i * g->ow + j] = (uint8_t)(k | (win[arg] > 0.0f ? CN_SW_ON : 0u));
        }
}

static void maxpool_fwd_sw(const cn_backend *be, const cn_win *g, const float *x, size_t n,
                           float *y, uint8_t *sw)
{
    long planes = (long)(n * g->c);
    size_t p = g->oh * g->ow;
    PARALLEL_FOR(planes > 64 ? cn_cpu_of(be)->threads : 1, t, planes, {
        maxpool_sw_plane(g, x + (size_t)t * g->h * g->w, y + (size_t)t * p, sw + (size_t)t * p);
    });
}

/* One plane of maxpool_bwd_sw: every input written, the windows' winners
 * their gradient, the rest (and the rows and columns no window covers) 0. */
static void pool_bwd_sw_plane(const cn_win *g, const uint8_t *sw, const float *d, float *out,
                              int relu)
{
    const size_t st = g->stride, w = g->w;
    if (is_pool2(g)) {
        for (size_t i = 0; i < g->oh; i++)
            pool2_bwd_sw_row(sw + i * g->ow, g->ow, d + i * g->ow, out + 2 * i * w,
                             out + (2 * i + 1) * w, relu);
        pool2_bwd_edges(out, g->h, w, g->oh, g->ow);
        return;
    }
    memset(out, 0, g->h * w * sizeof(float));
    for (size_t i = 0; i < g->oh; i++)
        for (size_t j = 0; j < g->ow; j++) {
            unsigned s = sw[i * g->ow + j], k = s & (CN_SW_ON - 1u);
            if (!relu || s & CN_SW_ON)
                out[(i * st + k / g->kw) * w + j * st + k % g->kw] = d[i * g->ow + j];
        }
}

static void maxpool_bwd_sw(const cn_backend *be, const cn_win *g, const uint8_t *sw,
                           const float *dy, size_t n, float *dx, cn_act act)
{
    int relu = act == CN_ACT_RELU;
    long planes = (long)(n * g->c);
    size_t p = g->oh * g->ow;
    PARALLEL_FOR(planes > 64 ? cn_cpu_of(be)->threads : 1, t, planes, {
        pool_bwd_sw_plane(g, sw + (size_t)t * p, dy + (size_t)t * p, dx + (size_t)t * g->h * g->w,
                          relu);
    });
}
