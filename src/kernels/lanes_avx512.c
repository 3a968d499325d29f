/* lanes_avx512.c - convolutions with the batch along the vector lanes.
 *
 * A small output plane fits the other paths badly.  LeNet's second layer
 * (12 x 12 x 20 in, 50 filters of 5 x 5, 8 x 8 out) is a row of 8 outputs,
 * half a vector, for the direct sum, and im2col writes 25 floats for every
 * input it reads before a GEMM of only 64 columns.  Here 16 samples share
 * every vector instead.  A block of 16 samples is rearranged once into
 * xl[c][hp][wp][16] (lane s: sample s; the padding's borders and the lanes
 * past the batch's end zero), and outputs (f, i, j) of the 16 samples are
 *
 *   sum over k = (c, ki, kj) of w[f][k] * xl[c][i*stride + ki][j*stride + kj]
 *
 * one broadcast weight times one vector of inputs per multiply-add, every
 * lane useful whatever the plane's size.  The register block is up to 8
 * filters by up to 4 outputs of a row; the input vectors of a block of
 * outputs are at fixed offsets (off[k], one per k) from the block's corner.
 *
 * The sums run over k in order, in the slices of the path a batch smaller
 * than the lanes takes (conv.c): the GEMM's depth KC, the slices added up as
 * the GEMM adds them, or the whole window as the direct sum runs it; then
 * the bias, the affine map and the relu as that path applies them.  So every
 * output has the bits of that path, and the result does not depend on the
 * batch size or the thread count.  The block
 * of outputs, yl[f][p][16], goes back to (n, m, oh, ow) sixteen outputs of
 * a filter at a time through a 16 x 16 transpose in registers. */
#define HAVE_LANE_CONV 1

/* The most window elements (c * kh * kw) a layer may have: off[] lives on
 * the stack. */
#define LC_MAX_K 2048
/* Register block: filters by outputs of a row. */
#define LC_NF 8
#define LC_NP 4

/* Outputs of a row per block and filters per group for this layer. */
static size_t lc_np(const cn_win *g) { return g->ow < LC_NP ? g->ow : LC_NP; }
static size_t lc_nf(const cn_win *g) { return lc_np(g) == LC_NP ? 6 : LC_NF; }
static size_t lc_groups(const cn_win *g, size_t m) { return (m + lc_nf(g) - 1) / lc_nf(g); }

/* The block's inputs, padded, 16 lanes each: xl's floats. */
static size_t lc_xl_floats(const cn_win *g)
{
    return 16 * g->c * (g->h + 2 * g->pad) * (g->w + 2 * g->pad);
}

/* A thread's area: the block's inputs (xl) and outputs (yl), and for
 * backward, the outputs' gradients in yl's place and the inputs' after
 * them (dxl, laid out as xl). */
static size_t lc_thread_floats(const cn_win *g, size_t m)
{
    return 2 * lc_xl_floats(g) + 16 * m * g->oh * g->ow;
}

/* The weights group by group: group gi's filters [f0, f0 + nf) as kk rows
 * of nf, at wg + f0 * kk. */
static void lc_weights(const float *w, size_t m, size_t kk, size_t groups, float *wg)
{
    for (size_t gi = 0; gi < groups; gi++) {
        size_t f0 = m * gi / groups, nf = m * (gi + 1) / groups - f0;
        for (size_t f = 0; f < nf; f++)
            for (size_t k = 0; k < kk; k++)
                wg[f0 * kk + k * nf + f] = w[(f0 + f) * kk + k];
    }
}

/* Samples x[0, cnt) (c, h, w each) into xl; cnt <= 16. */
static void lc_pack(const cn_win *g, const float *x, size_t cnt, float *xl)
{
    size_t h = g->h, w = g->w, pad = g->pad, hp = h + 2 * pad, wp = w + 2 * pad, hw = h * w;
    size_t in = g->c * hw;
    __m512 zero = _mm512_setzero_ps();
    for (size_t c = 0; c < g->c; c++) {
        float *plane = xl + c * hp * wp * 16;
        if (pad) {
            for (size_t i = 0; i < hp; i++)
                for (size_t j = 0; j < wp; j++)
                    if (i < pad || i >= h + pad || j < pad || j >= w + pad)
                        _mm512_storeu_ps(plane + (i * wp + j) * 16, zero);
        }
        size_t row = 0, col = 0;
        for (size_t q0 = 0; q0 < hw; q0 += 16) {
            size_t nq = hw - q0 < 16 ? hw - q0 : 16;
            __mmask16 mq = tail_mask(nq);
            __m512 r[16];
            for (size_t s = 0; s < 16; s++)
                r[s] = s < cnt ? _mm512_maskz_loadu_ps(mq, x + s * in + c * hw + q0) : zero;
            transpose16(r);
            for (size_t t = 0; t < nq; t++) {
                _mm512_storeu_ps(plane + ((row + pad) * wp + col + pad) * 16, r[t]);
                if (++col == w)
                    col = 0, row++;
            }
        }
    }
}

/* The window offsets of xl's layout: off[k] for k = (c, ki, kj). */
static void lc_offsets(const cn_win *g, int32_t *off)
{
    size_t hp = g->h + 2 * g->pad, wp = g->w + 2 * g->pad;
    for (size_t c = 0, k = 0; c < g->c; c++)
        for (size_t ki = 0; ki < g->kh; ki++)
            for (size_t kj = 0; kj < g->kw; kj++)
                off[k++] = (int32_t)(((c * hp + ki) * wp + kj) * 16);
}

/* Sixteen positions of one filter, r[t] the lanes (samples) of position t,
 * turned into rows and stored for samples [0, cnt): the first nq (mask mq)
 * of sample s's row at y + s * ld. */
static inline void lc_store(__m512 r[16], size_t cnt, __mmask16 mq, float *y, size_t ld)
{
    transpose16(r);
    for (size_t s = 0; s < cnt; s++)
        _mm512_mask_storeu_ps(y + s * ld, mq, r[s]);
}

/* Outputs yl (m filters of p positions, 16 lanes each) of samples [0, cnt)
 * into y (cnt, m, p). */
static void lc_unpack(const float *yl, size_t m, size_t p, size_t cnt, float *y)
{
    __m512 zero = _mm512_setzero_ps();
    for (size_t f = 0; f < m; f++)
        for (size_t q0 = 0; q0 < p; q0 += 16) {
            size_t nq = p - q0 < 16 ? p - q0 : 16;
            __mmask16 mq = tail_mask(nq);
            __m512 r[16];
            for (size_t t = 0; t < 16; t++)
                r[t] = t < nq ? _mm512_loadu_ps(yl + (f * p + q0 + t) * 16) : zero;
            lc_store(r, cnt, mq, y + f * p + q0, m * p);
        }
}

/* As lc_unpack, through max pooling over pool's windows first (pool->h and
 * w are the outputs' plane): each window's maximum taken in the lanes, in
 * maxpool_fwd's order (max(x, y) is y unless x > y, as its selects), then
 * only the pooled outputs transposed and stored, into y (cnt, m, pool->oh,
 * pool->ow).  The full outputs never leave the thread's area. */
static void lc_unpack_pool(const float *yl, size_t m, const cn_win *pool, size_t cnt, float *y)
{
    size_t w = pool->w, p = pool->h * w, ow = pool->ow, pp = pool->oh * ow, st = pool->stride;
    int two = pool->kh == 2 && pool->kw == 2 && st == 2;
    __m512 zero = _mm512_setzero_ps();
    for (size_t f = 0; f < m; f++)
        for (size_t q0 = 0; q0 < pp; q0 += 16) {
            size_t nq = pp - q0 < 16 ? pp - q0 : 16;
            __mmask16 mq = tail_mask(nq);
            __m512 r[16];
            for (size_t t = 0; t < 16; t++) {
                if (t >= nq) {
                    r[t] = zero;
                    continue;
                }
                size_t i = (q0 + t) / ow, j = (q0 + t) % ow;
                const float *win = yl + (f * p + i * st * w + j * st) * 16;
                if (two) { /* pool2_fwd_row's order */
                    __m512 ab = _mm512_max_ps(_mm512_loadu_ps(win + 16), _mm512_loadu_ps(win));
                    __m512 cd = _mm512_max_ps(_mm512_loadu_ps(win + (w + 1) * 16),
                                              _mm512_loadu_ps(win + w * 16));
                    r[t] = _mm512_max_ps(cd, ab);
                    continue;
                }
                __m512 best = _mm512_loadu_ps(win);
                for (size_t ki = 0; ki < pool->kh; ki++)
                    for (size_t kj = 0; kj < pool->kw; kj++)
                        best = _mm512_max_ps(_mm512_loadu_ps(win + (ki * w + kj) * 16), best);
                r[t] = best;
            }
            lc_store(r, cnt, mq, y + f * pp + q0, m * pp);
        }
}

/* NF filters (weights wg, rows of NF) by NP outputs (input corner xb, the
 * next output pst floats on) over the slice [k0, k1) of the window, into yb
 * (filter f at f * ldf, output e at e * 16): the slice's sums, added to
 * what yb holds from the slices before, then after the last slice the
 * bias, the affine map and the relu. */
static inline __attribute__((always_inline)) void
lc_product(const int NF, const int NP, const float *xb, size_t pst, const int32_t *off, size_t k0,
           size_t k1, size_t kk, const float *wg, float *yb, size_t ldf, const float *bias,
           const float *sc, const float *sh, int relu)
{
    __m512 acc[LC_NF][LC_NP];
    for (int f = 0; f < NF; f++)
        for (int e = 0; e < NP; e++)
            acc[f][e] = _mm512_setzero_ps();
    for (size_t k = k0; k < k1; k++) {
        const float *xk = xb + off[k], *wk = wg + k * (size_t)NF;
        __m512 xv[LC_NP];
        for (int e = 0; e < NP; e++)
            xv[e] = _mm512_loadu_ps(xk + (size_t)e * pst);
        for (int f = 0; f < NF; f++) {
            __m512 wv = _mm512_set1_ps(wk[f]);
            for (int e = 0; e < NP; e++)
                acc[f][e] = _mm512_fmadd_ps(wv, xv[e], acc[f][e]);
        }
    }
    for (int f = 0; f < NF; f++)
        for (int e = 0; e < NP; e++) {
            float *o = yb + (size_t)f * ldf + (size_t)e * 16;
            __m512 v = k0 ? _mm512_add_ps(_mm512_loadu_ps(o), acc[f][e]) : acc[f][e];
            if (k1 == kk) {
                if (bias)
                    v = _mm512_add_ps(v, _mm512_set1_ps(bias[f]));
                if (sc) /* bias_act's v * sc + sh, contracted */
                    v = _mm512_fmadd_ps(v, _mm512_set1_ps(sc[f]), _mm512_set1_ps(sh[f]));
                if (relu)
                    v = _mm512_max_ps(v, _mm512_setzero_ps()); /* 0 for NaN and -0 */
            }
            _mm512_storeu_ps(o, v);
        }
}

#define LC_CASE(nf, np)                                                                            \
    case nf * 8 + np:                                                                              \
        lc_product(nf, np, xb, pst, off, k0, k1, kk, wgg, yb, ldf, bg, scg, shg, relu);            \
        break;
#define LC_CASES(nf) LC_CASE(nf, 1) LC_CASE(nf, 2) LC_CASE(nf, 3) LC_CASE(nf, 4)

/* The block packed in xl into yl, and from there into y (cnt samples),
 * through max pooling over pool's windows unless pool is NULL. */
static void lc_block(const cn_win *g, size_t m, const float *xl, size_t cnt, const float *wgs,
                     const float *b, const float *scale, const float *shift, int relu, size_t slice,
                     const cn_win *pool, float *yl, float *y)
{
    size_t wp = g->w + 2 * g->pad, kk = g->c * g->kh * g->kw;
    size_t p = g->oh * g->ow, groups = lc_groups(g, m), npmax = lc_np(g);
    size_t pblocks = (g->ow + npmax - 1) / npmax, pst = g->stride * 16, ldf = p * 16;
    int32_t off[LC_MAX_K];
    lc_offsets(g, off);
    /* Slice by slice, so that a block of outputs' inputs stay in the L1
     * cache while every filter group reads them. */
    for (size_t k0 = 0; k0 < kk; k0 += slice) {
        size_t k1 = kk - k0 < slice ? kk : k0 + slice;
        for (size_t i = 0; i < g->oh; i++)
            for (size_t pb = 0; pb < pblocks; pb++) {
                size_t j0 = g->ow * pb / pblocks, np = g->ow * (pb + 1) / pblocks - j0;
                const float *xb = xl + (i * g->stride * wp + j0 * g->stride) * 16;
                for (size_t gi = 0; gi < groups; gi++) {
                    size_t f0 = m * gi / groups, nf = m * (gi + 1) / groups - f0;
                    const float *wgg = wgs + f0 * kk, *bg = b ? b + f0 : NULL;
                    const float *scg = scale ? scale + f0 : NULL, *shg = scale ? shift + f0 : NULL;
                    float *yb = yl + (f0 * p + i * g->ow + j0) * 16;
                    /* clang-format off */
                switch (nf * 8 + np) {
                    LC_CASES(1) LC_CASES(2) LC_CASES(3) LC_CASES(4)
                    LC_CASES(5) LC_CASES(6) LC_CASES(7) LC_CASES(8)
                }
                    /* clang-format on */
                }
            }
    }
    if (pool)
        lc_unpack_pool(yl, m, pool, cnt, y);
    else
        lc_unpack(yl, m, p, cnt, y);
}

/* ------------------------------------------------------------ backward
 *
 * With the block's inputs in xl and its output gradients (masked where a
 * fused relu's output is 0) in dyl[p][f][16] (position-major: a filter-major
 * layout put LeNet's filters 4 KB apart, the L1 cache's aliasing stride),
 * the weight gradient of the
 * block is, for filter f and window element k,
 *
 *   dw[f][k] = sum over the lanes of sum over positions q of
 *              dyl[f][q] * xl[corner(q) + off[k]]
 *
 * the lanes added up in a fixed order at the end of the block, and the
 * input gradient is col2im's scatter of dcol[k][q] = sum_f w[f][k] dyl[f][q]
 * into dxl (laid out as xl), the products' sums in registers and each
 * added to dxl once. */

/* Output gradients dy of samples [0, cnt) into dyl, where y > 0 if y is
 * given (relu_bwd's mask). */
static void lc_pack_dy(const float *dy, const float *y, size_t m, size_t p, size_t cnt, float *dyl)
{
    __m512 zero = _mm512_setzero_ps();
    for (size_t f = 0; f < m; f++)
        for (size_t q0 = 0; q0 < p; q0 += 16) {
            size_t nq = p - q0 < 16 ? p - q0 : 16;
            __mmask16 mq = tail_mask(nq);
            __m512 r[16];
            for (size_t s = 0; s < 16; s++) {
                size_t at = (s * m + f) * p + q0;
                r[s] = s < cnt ? _mm512_maskz_loadu_ps(mq, dy + at) : zero;
                if (y && s < cnt)
                    r[s] = _mm512_maskz_mov_ps(
                        _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(mq, y + at), zero, _CMP_GT_OQ),
                        r[s]);
            }
            transpose16(r);
            for (size_t t = 0; t < nq; t++)
                _mm512_storeu_ps(dyl + ((q0 + t) * m + f) * 16, r[t]);
        }
}

/* dxl's planes [ca, cb), without their padding, into dx (cnt samples of
 * c, h, w). */
static void lc_unpack_dx(const cn_win *g, const float *dxl, size_t ca, size_t cb, size_t cnt,
                         float *dx)
{
    size_t h = g->h, w = g->w, pad = g->pad, hp = h + 2 * pad, wp = w + 2 * pad, hw = h * w;
    size_t in = g->c * hw;
    __m512 zero = _mm512_setzero_ps();
    for (size_t c = ca; c < cb; c++) {
        const float *plane = dxl + c * hp * wp * 16;
        size_t row = 0, col = 0;
        for (size_t q0 = 0; q0 < hw; q0 += 16) {
            size_t nq = hw - q0 < 16 ? hw - q0 : 16;
            __mmask16 mq = tail_mask(nq);
            __m512 r[16];
            for (size_t t = 0; t < 16; t++) {
                r[t] = t < nq ? _mm512_loadu_ps(plane + ((row + pad) * wp + col + pad) * 16) : zero;
                if (t < nq && ++col == w)
                    col = 0, row++;
            }
            transpose16(r);
            for (size_t s = 0; s < cnt; s++)
                _mm512_mask_storeu_ps(dx + s * in + c * hw + q0, mq, r[s]);
        }
    }
}

/* The weight gradients of NF filters (from dyl's filter f0, at dyf)
 * by NT window elements from k0, summed over the block's positions and
 * lanes, added to pdw (filter f's row at f * kk). */
static inline __attribute__((always_inline)) void
lc_dw_product(const int NF, const int NT, const cn_win *g, size_t m, const float *xl,
              const float *dyf, const int32_t *off, size_t k0, size_t kk, float *pdw)
{
    size_t wp = g->w + 2 * g->pad, st = g->stride;
    __m512 acc[LC_NF][LC_NP];
    for (int f = 0; f < NF; f++)
        for (int t = 0; t < NT; t++)
            acc[f][t] = _mm512_setzero_ps();
    for (size_t i = 0, q = 0; i < g->oh; i++)
        for (size_t j = 0; j < g->ow; j++, q++) {
            const float *xq = xl + (i * st * wp + j * st) * 16;
            __m512 xv[LC_NP];
            for (int t = 0; t < NT; t++)
                xv[t] = _mm512_loadu_ps(xq + off[k0 + (size_t)t]);
            for (int f = 0; f < NF; f++) {
                __m512 d = _mm512_loadu_ps(dyf + (q * m + (size_t)f) * 16);
                for (int t = 0; t < NT; t++)
                    acc[f][t] = _mm512_fmadd_ps(d, xv[t], acc[f][t]);
            }
        }
    for (int f = 0; f < NF; f++)
        for (int t = 0; t < NT; t++)
            pdw[(size_t)f * kk + k0 + (size_t)t] += _mm512_reduce_add_ps(acc[f][t]);
}

/* dcol of NT window elements from k0 (weights wk: m rows of NT) at NP
 * positions from q0, summed over the m filters, added into dxl. */
static inline __attribute__((always_inline)) void
lc_dx_product(const int NT, const int NP, const cn_win *g, size_t m, const float *dyl,
              const float *wk, const int32_t *off, size_t k0, size_t q0, float *dxl)
{
    size_t wp = g->w + 2 * g->pad, st = g->stride;
    __m512 acc[LC_NF][LC_NP];
    for (int t = 0; t < NT; t++)
        for (int e = 0; e < NP; e++)
            acc[t][e] = _mm512_setzero_ps();
    for (size_t f = 0; f < m; f++) {
        __m512 dv[LC_NP];
        for (int e = 0; e < NP; e++)
            dv[e] = _mm512_loadu_ps(dyl + ((q0 + (size_t)e) * m + f) * 16);
        for (int t = 0; t < NT; t++) {
            __m512 wv = _mm512_set1_ps(wk[f * (size_t)NT + (size_t)t]);
            for (int e = 0; e < NP; e++)
                acc[t][e] = _mm512_fmadd_ps(wv, dv[e], acc[t][e]);
        }
    }
    for (int e = 0; e < NP; e++) {
        size_t q = q0 + (size_t)e, i = q / g->ow, j = q % g->ow;
        float *xq = dxl + (i * st * wp + j * st) * 16;
        for (int t = 0; t < NT; t++) {
            float *o = xq + off[k0 + (size_t)t];
            _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), acc[t][e]));
        }
    }
}

/* Window elements per block of the weight gradient (with 6 filters) and of
 * dcol (with 4 positions). */
#define LC_DW_NF 6
#define LC_NT    4
#define LC_DX_NT 6

/* W for dcol, by blocks of LC_DX_NT window elements: block kb's m rows of
 * nt at wk + kb * LC_DX_NT * m. */
static void lc_dx_weights(const float *w, size_t m, size_t kk, float *wk)
{
    for (size_t k0 = 0; k0 < kk; k0 += LC_DX_NT) {
        size_t nt = kk - k0 < LC_DX_NT ? kk - k0 : LC_DX_NT;
        for (size_t f = 0; f < m; f++)
            for (size_t t = 0; t < nt; t++)
                wk[k0 * m + f * nt + t] = w[f * kk + k0 + t];
    }
}

#define LC_DW_CASE(nf, nt)                                                                         \
    case nf * 8 + nt:                                                                              \
        lc_dw_product(nf, nt, g, m, xl, dyl + f0 * 16, off, k0, kk, pdw + f0 * kk);                \
        break;
#define LC_DW_CASES(nf) LC_DW_CASE(nf, 1) LC_DW_CASE(nf, 2) LC_DW_CASE(nf, 3) LC_DW_CASE(nf, 4)
#define LC_DX_CASE(nt, np)                                                                         \
    case nt * 8 + np:                                                                              \
        lc_dx_product(nt, np, g, m, dyl, wk + k0 * m, off, k0, q0, dxl);                           \
        break;
#define LC_DX_CASES(nt) LC_DX_CASE(nt, 1) LC_DX_CASE(nt, 2) LC_DX_CASE(nt, 3) LC_DX_CASE(nt, 4)

/* One block's share of backward, with xl and dyl packed: the weight and
 * bias gradients of filters [fa, fb) added to pdw and pdb, and, if dxl is
 * given, dx of channels [ca, cb) (cnt samples) through dxl. */
static void lc_bwd_block(const cn_win *g, size_t m, const float *xl, const float *dyl,
                         const float *wk, size_t fa, size_t fb, size_t ca, size_t cb, size_t cnt,
                         float *pdw, float *pdb, float *dxl, float *dx)
{
    size_t kk = g->c * g->kh * g->kw, p = g->oh * g->ow, kc = g->kh * g->kw;
    int32_t off[LC_MAX_K];
    lc_offsets(g, off);
    size_t groups = (fb - fa + LC_DW_NF - 1) / LC_DW_NF;
    for (size_t gi = 0; gi < groups; gi++) {
        size_t f0 = fa + (fb - fa) * gi / groups, nf = fa + (fb - fa) * (gi + 1) / groups - f0;
        for (size_t k0 = 0; k0 < kk; k0 += LC_NT) {
            size_t nt = kk - k0 < LC_NT ? kk - k0 : LC_NT;
            /* clang-format off */
            switch (nf * 8 + nt) {
                LC_DW_CASES(1) LC_DW_CASES(2) LC_DW_CASES(3)
                LC_DW_CASES(4) LC_DW_CASES(5) LC_DW_CASES(6)
            }
            /* clang-format on */
        }
    }
    for (size_t f = fa; f < fb; f++) {
        __m512 s = _mm512_setzero_ps();
        for (size_t q = 0; q < p; q++)
            s = _mm512_add_ps(s, _mm512_loadu_ps(dyl + (q * m + f) * 16));
        pdb[f] += _mm512_reduce_add_ps(s);
    }
    if (!dxl)
        return;
    /* All of dxl: blocks of window elements that straddle [ca, cb) add to
     * the planes beside it too (read by no one). */
    size_t planes = g->c * (g->h + 2 * g->pad) * (g->w + 2 * g->pad);
    __m512 zero = _mm512_setzero_ps();
    for (size_t e = 0; e < planes; e++)
        _mm512_storeu_ps(dxl + e * 16, zero);
    /* The window elements of channels [ca, cb), blocks of LC_DX_NT aligned
     * with lc_dx_weights' from 0. */
    size_t ka = ca * kc, kb = cb * kc;
    for (size_t q0 = 0; q0 < p; q0 += LC_NP) {
        size_t np = p - q0 < LC_NP ? p - q0 : LC_NP;
        for (size_t k0 = ka / LC_DX_NT * LC_DX_NT; k0 < kb; k0 += LC_DX_NT) {
            size_t nt = kk - k0 < LC_DX_NT ? kk - k0 : LC_DX_NT;
            /* clang-format off */
            switch (nt * 8 + np) {
                LC_DX_CASES(1) LC_DX_CASES(2) LC_DX_CASES(3)
                LC_DX_CASES(4) LC_DX_CASES(5) LC_DX_CASES(6)
            }
            /* clang-format on */
        }
    }
    lc_unpack_dx(g, dxl, ca, cb, cnt, dx);
}
