/* winograd5_avx512.c - 5x5 convolutions with stride 1 on small planes by
 * Winograd's minimal filtering F(2x2, 5x5).  Each 2x2 block of outputs (a
 * tile) comes from the 6x6 block of padded input under it,
 *
 *   Y = A^T [ sum_c (G g_c G^T) .* (B^T d_c B) ] A,
 *
 * 36 multiply-adds per tile and filter for each channel, against 100 for the
 * direct sum.  The six points are those of F(4x4, 3x3) in
 * winograd_avx512.c (0, 1, -1, 2, -2 and infinity), so the input transform
 * B^T (wg_bt) and the products of the transforms (wg_product) are its own;
 * only the filters' transform G (6x5) and the output transform A^T (2x6)
 * differ:
 *
 *   G g    g0/4, -(g0+g1+g2+g3+g4)/6, -(g0-g1+g2-g3+g4)/6,
 *          (g0+2g1+4g2+8g3+16g4)/24, (g0-2g1+4g2-8g3+16g4)/24, g4
 *   A^T m  m0+m1+m2+m3+m4, m1-m2+2(m3-m4)+m5
 *
 * Planes of at most 8x8 outputs (LeNet's second layer: 20 channels to 50
 * filters on 8x8) are 4 x 4 tiles at most, one vector of 16 per sample
 * (lane 4 ti + tj, whatever the plane's width: the lanes of tile columns
 * past it are computed and dropped), built from the padded rows by permutes
 * as wg_input4 builds F(4x4, 3x3)'s.  There the direct sum spends its
 * multiply-adds on few outputs per filter, which is where this pays: LeNet's
 * second layer at batch 1 in a third of the multiply-adds.  Larger planes
 * keep the direct sum and the batch in the lanes (conv.c).
 *
 * Forward only; the gradients take the direct paths.  Rounding: as
 * F(4x4, 3x3)'s (the same points and constants), a few 1e-6 of the outputs'
 * scale off the exact sums (tests/test_kernels.c). */
#define HAVE_WINOGRAD5 1

/* Whether F(2x2, 5x5) can take the window: 5x5, stride 1, padding up to 2,
 * outputs at most 8x8 (so that a sample's tiles fill one vector and a
 * padded row one vector: pad + w = ow + 4 - pad <= 12 columns). */
static int w5_fits(const cn_win *g)
{
    return g->kh == 5 && g->kw == 5 && g->stride == 1 && g->pad <= 2 && g->oh <= 8 && g->ow <= 8 &&
           g->oh >= 1 && g->ow >= 1;
}

/* A sample's tiles: ceil(oh / 2) rows of 4 (tile columns past the plane
 * included). */
static size_t w5_tiles(const cn_win *g) { return (g->oh + 1) / 2 * 4; }

/* Worth it: as use_winograd weighs F(4x4, 3x3) (the transforms' work per
 * channel and per filter as measured there), against the direct sum's 25
 * multiply-adds per output. */
static int use_winograd5(const cn_win *g, size_t m)
{
    if (!w5_fits(g))
        return 0;
    double direct = 25.0 * (double)g->c * (double)m * (double)(g->oh * g->ow);
    double wino = (double)w5_tiles(g) *
                  (36.0 * (double)(g->c * m) + 500.0 * (double)g->c + 300.0 * (double)m);
    return wino < 0.75 * direct;
}

/* Samples per unit: as many as keep V (36 c rows of their tiles) within
 * WG_V_FLOATS. */
static size_t w5_unit(const cn_win *g)
{
    size_t u = WG_V_FLOATS / (36 * g->c * w5_tiles(g));
    return u < 1 ? 1 : u > WG_MAX_UNIT ? WG_MAX_UNIT : u;
}

/* A thread's area: V, the products of a block and the outputs of a filter
 * group (four phase rows per filter: output row parity a, column parity b,
 * row 2 a + b; pooled, the first only). */
static wg_area w5_area_of(const cn_win *g, float *area)
{
    wg_area a;
    a.ldv = wg_row(w5_unit(g) * w5_tiles(g));
    a.xs = area, a.v = area, a.mb = a.v + 36 * g->c * a.ldv;
    a.yd = a.mb + 36 * WG_NF * WG_TB;
    return a;
}

static size_t w5_thread_floats(const cn_win *g)
{
    size_t row = wg_row(w5_unit(g) * w5_tiles(g));
    return 36 * g->c * row + 36 * WG_NF * WG_TB + WG_NF * 4 * row;
}

/* r = G g along one direction (6 from 5). */
static inline __attribute__((always_inline)) void w5_g(const __m512 *g, __m512 *r)
{
    __m512 even = _mm512_add_ps(_mm512_add_ps(g[0], g[2]), g[4]), odd = _mm512_add_ps(g[1], g[3]);
    __m512 e4 = _mm512_fmadd_ps(_mm512_set1_ps(16.0f), g[4],
                                _mm512_fmadd_ps(_mm512_set1_ps(4.0f), g[2], g[0]));
    __m512 o4 = _mm512_fmadd_ps(_mm512_set1_ps(8.0f), g[3], _mm512_add_ps(g[1], g[1]));
    r[0] = _mm512_mul_ps(_mm512_set1_ps(0.25f), g[0]);
    r[1] = _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6), _mm512_add_ps(even, odd));
    r[2] = _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6), _mm512_sub_ps(even, odd));
    r[3] = _mm512_mul_ps(_mm512_set1_ps(1.0f / 24), _mm512_add_ps(e4, o4));
    r[4] = _mm512_mul_ps(_mm512_set1_ps(1.0f / 24), _mm512_sub_ps(e4, o4));
    r[5] = g[4];
}

/* o = A^T m along one direction (2 from 6). */
static inline __attribute__((always_inline)) void w5_at(const __m512 *m, __m512 *o)
{
    __m512 s12 = _mm512_add_ps(m[1], m[2]), d12 = _mm512_sub_ps(m[1], m[2]);
    __m512 s34 = _mm512_add_ps(m[3], m[4]), d34 = _mm512_sub_ps(m[3], m[4]);
    o[0] = _mm512_add_ps(_mm512_add_ps(m[0], s12), s34);
    o[1] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(2.0f), d34, d12), m[5]);
}

/* u[e][k][ch] = (G w[k][ch] G^T)[e] for filters [k0, k1) of w (m, c, 5, 5),
 * 16 channels at a time: their 25 taps loaded one channel to a vector (taps
 * 0-15, then 16-24) and transposed into one vector per tap. */
static void w5_filters(const float *w, size_t m, size_t c, size_t k0, size_t k1, float *u)
{
    for (size_t k = k0; k < k1; k++)
        for (size_t c0 = 0; c0 < c; c0 += 16) {
            size_t nc = c - c0 < 16 ? c - c0 : 16;
            const float *wk = w + (k * c + c0) * 25;
            __m512 lo[16], hi[16], col[5], t[6][5], r[6];
            for (size_t l = 0; l < 16; l++) {
                lo[l] = l < nc ? _mm512_loadu_ps(wk + 25 * l) : _mm512_setzero_ps();
                hi[l] =
                    l < nc ? _mm512_maskz_loadu_ps(0x1ff, wk + 25 * l + 16) : _mm512_setzero_ps();
            }
            transpose16(lo);
            transpose16(hi);
            for (int j = 0; j < 5; j++) {
                for (int i = 0; i < 5; i++)
                    col[i] = 5 * i + j < 16 ? lo[5 * i + j] : hi[5 * i + j - 16];
                w5_g(col, r);
                for (int a = 0; a < 6; a++)
                    t[a][j] = r[a];
            }
            __mmask16 mk = tail_mask(nc);
            for (int a = 0; a < 6; a++) {
                w5_g(t[a], r);
                for (int b = 0; b < 6; b++)
                    _mm512_mask_storeu_ps(u + ((size_t)(a * 6 + b) * m + k) * c + c0, mk, r[b]);
            }
        }
}

/* Lanes 0-7 of a permute of padded rows a and b: element j of tile column
 * tj (padded column 2 tj + j) of a in lanes tj, of b in lanes 4 + tj; lanes
 * 8-15 the same for element j + 1.  One row of pairs for j = 0, 2, 4. */
static const int32_t w5_idx[3][16] = {
    {0, 2, 4, 6, 16, 18, 20, 22, 1, 3, 5, 7, 17, 19, 21, 23},
    {2, 4, 6, 8, 18, 20, 22, 24, 3, 5, 7, 9, 19, 21, 23, 25},
    {4, 6, 8, 10, 20, 22, 24, 26, 5, 7, 9, 11, 21, 23, 25, 27},
};

/* One plane's input transforms into V's 36 element rows (estride floats
 * apart), lane 4 ti + tj: for each row i of the 6x6 input tile, the padded
 * rows 2 ti + i of the (up to) four tile rows, their elements by wg_cols4's
 * permutes, the transform along the rows, then along the columns. */
static void w5_input(const float *x, const cn_win *g, float *v, size_t estride)
{
    const __m512i idx[3] = {_mm512_loadu_si512(w5_idx[0]), _mm512_loadu_si512(w5_idx[1]),
                            _mm512_loadu_si512(w5_idx[2])};
    size_t th = (g->oh + 1) / 2;
    const __mmask16 in = (__mmask16)(tail_mask(g->pad + g->w) & ~tail_mask(g->pad));
    __m512 tmp[6][6];
    for (size_t i = 0; i < 6; i++) {
        __m512 r[4], d[6];
        for (size_t ti = 0; ti < 4; ti++) {
            r[ti] = _mm512_setzero_ps();
            if (ti < th)
                wg_prow(x, NULL, g, 2 * ti + i, &in, 1, &r[ti]);
        }
        for (int p = 0; p < 3; p++)
            wg_cols4(r, idx[p], d + 2 * p);
        wg_bt(d, tmp[i]);
    }
    wg_bt_cols(tmp, v, estride);
}

/* V of ns samples (x: ns samples of c planes): sample k's tiles from column
 * k tiles of each row.  Its vector's lanes past its tiles (th < 4) are
 * zeros that the next sample's vector, stored after it, covers. */
static void w5_inputs(const cn_win *g, const float *x, size_t ns, float *v, size_t ldv)
{
    size_t hw = g->h * g->w, planes = ns * g->c, tiles = w5_tiles(g);
    for (size_t k = 0; k < planes; k++)
        w5_input(x + k * hw, g, v + (k % g->c) * ldv + (k / g->c) * tiles, g->c * ldv);
}

/* One filter's pooled tiles (one row of yd from lane t0, lane 4 ti + tj)
 * into its pooled plane y (poh x pw). */
static void w5_place_pool(const float *yd, size_t t0, size_t poh, size_t pw, float *y)
{
    for (size_t i = 0; i < poh; i++)
        _mm512_mask_storeu_ps(y + i * pw, tail_mask(pw),
                              _mm512_maskz_loadu_ps(tail_mask(pw), yd + t0 + 4 * i));
}

/* Filters [fa, fa + mt) of y (ns samples of m, oh, ow) from V and the
 * filters' transforms u, as wg_outputs: filter groups of up to 8, blocks of
 * 48 tiles, 36 products each (wg_products), the output transform
 * (wg_tile_out_by with A^T's 2 rows), then each filter's
 * phase rows interleaved into its plane (wg_place_pool's two phases per
 * output row).  With pool (2x2 windows, stride 2, oh and ow even), each
 * tile's four outputs are one window, pooled in pool2_fwd_row's order. */
static void w5_outputs(const cn_win *g, size_t m, size_t ns, const float *v, size_t ldv,
                       const float *u, size_t fa, size_t mt, const float *b, const float *scale,
                       const float *shift, int relu, int pool, float *y, float *mb, float *yd)
{
    size_t c = g->c, tiles = w5_tiles(g), tt = ns * tiles;
    size_t poh = g->oh / 2, pw = g->ow / 2, p = pool ? poh * pw : g->oh * g->ow;
    wg_shape s = {(g->oh + 1) / 2, 4, tiles, 1, 0}; /* wg_place_pool reads tw */
    size_t groups = (mt + WG_NF - 1) / WG_NF;
    for (size_t gi = 0; gi < groups; gi++) {
        size_t f0 = fa + mt * gi / groups, nf = fa + mt * (gi + 1) / groups - f0;
        for (size_t tb = 0; tb < tt; tb += WG_TB) {
            wg_products(v, ldv, c, u, m, f0, nf, tb, tt, mb);
            for (size_t f = 0; f < nf; f++)
                for (size_t k16 = 0; k16 < WG_TB && tb + k16 < tt; k16 += 16) {
                    __m512 o[2][2];
                    float *yf = yd + f * 4 * ldv + tb + k16;
                    wg_tile_out_by(2, w5_at, mb, f, k16, b ? b[f0 + f] : 0.0f,
                                   scale ? scale + f0 + f : NULL, scale ? shift + f0 + f : NULL,
                                   relu, &o[0][0]);
                    if (pool) {
                        _mm512_storeu_ps(yf, wg_max4(o[0][0], o[0][1], o[1][0], o[1][1]));
                        continue;
                    }
                    for (int a = 0; a < 2; a++)
                        for (int q = 0; q < 2; q++)
                            _mm512_storeu_ps(yf + (size_t)(2 * a + q) * ldv, o[a][q]);
                }
        }
        for (size_t sm = 0; sm < ns; sm++)
            for (size_t f = 0; f < nf; f++) {
                float *yf = y + (sm * m + f0 + f) * p;
                if (pool)
                    w5_place_pool(yd + f * 4 * ldv, sm * tiles, poh, pw, yf);
                else
                    wg_place_pool(yd + f * 4 * ldv, ldv, sm * tiles, &s, 0, g->oh, g->ow, yf);
            }
    }
}

/* ------------------------------------------- one image, vectors of filters
 *
 * One image's 16 tiles are one vector, and the products above then take
 * each filter's transform by a broadcast load: with the vector of tiles,
 * 8 loads for 7 multiply-adds (LeNet's 50 filters in groups of 7 or 8), and
 * two loads a cycle held them to 87% of the FMA peak.  Here, for one image
 * whose transforms a forward-only network keeps, the whole vectors of
 * filters (48 of LeNet's 50) go in the lanes instead: 8 tiles by 3 vectors
 * of filters in registers, per channel 3 vector loads and 8 broadcasts of
 * the tiles' values for 24 multiply-adds.  The filters past the last whole
 * vector take the products above.  The input transforms are the same (V
 * with the tiles in the lanes, w5_inputs); the outputs, a vector of filters
 * per tile, are transposed into the filters' planes.  LeNet's second layer
 * alone, one image on one thread: 10.3 to 9.3 us a pass; LeNet's pass 1.036x
 * (AMD EPYC Zen 5, alternating rounds).  On more threads the layer is split
 * by filters as before (split by rows of tiles, each core would write half
 * of every filter's 4 x 4 pooled plane, one cache line).
 *
 * The same bits as the products above: the sums over the channels in order
 * from 0 into one accumulator (v u + s is u v + s), then A^T in the same
 * order, the bias, the affine map, the relu and the pooling as there
 * (tests/test_kernels.c, conv_one_image_by_filters). */

/* Tiles per block, vectors of filters: 8 x 3 accumulators. */
#define W5F_TB 8
#define W5F_FV 3

/* Filters in whole vectors, taken here. */
static size_t w5f_filters_of(size_t m) { return m / 16 * 16; }

/* Layers these kernels take: F(2x2, 5x5)'s (use_winograd5) with a whole
 * vector of filters or more. */
static int w5f_fits(const cn_win *g, size_t m)
{
    return use_winograd5(g, m) && w5f_filters_of(m) > 0;
}

/* A thread's area: w5_area_of's, then the outputs in pixels of filters (up
 * to 8 x 8 of them). */
static size_t w5f_thread_floats(const cn_win *g, size_t m)
{
    return w5_thread_floats(g) + 64 * w5f_filters_of(m);
}

/* u1[e][ch][f] (rows of mf floats) from w5_filters' u[e][f][ch], for the mf
 * filters of whole vectors. */
static void w5f_make(const float *u, size_t m, size_t c, float *u1)
{
    size_t mf = w5f_filters_of(m);
    for (size_t e = 0; e < 36; e++)
        for (size_t ch = 0; ch < c; ch++)
            for (size_t f = 0; f < mf; f++)
                u1[(e * c + ch) * mf + f] = u[(e * m + f) * c + ch];
}

/* out[t][16 k] (t < NT, k < NV; rows of 16 W5F_FV) = sum over ch of
 * V[ch][t] u[ch][16 k]: one element's product for a block of tiles and up
 * to 48 filters; v: the element's row of channel 0 from the block's first
 * tile (channels ldv floats apart), u: rows of mf floats. */
static inline __attribute__((always_inline)) void w5f_product(const int NT, const int NV,
                                                              const float *v, size_t ldv, size_t c,
                                                              const float *u, size_t mf, float *out)
{
    __m512 acc[W5F_TB][W5F_FV];
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 3
        for (int k = 0; k < NV; k++)
            acc[t][k] = _mm512_setzero_ps();
    for (size_t ch = 0; ch < c; ch++, v += ldv, u += mf) {
        __m512 w[W5F_FV];
#pragma GCC unroll 3
        for (int k = 0; k < NV; k++)
            w[k] = _mm512_loadu_ps(u + 16 * k);
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) {
            __m512 xv = _mm512_set1_ps(v[t]);
#pragma GCC unroll 3
            for (int k = 0; k < NV; k++)
                acc[t][k] = _mm512_fmadd_ps(xv, w[k], acc[t][k]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 3
        for (int k = 0; k < NV; k++)
            _mm512_storeu_ps(out + t * 16 * W5F_FV + 16 * k, acc[t][k]);
}

#define W5F_PRODUCT_CASE(n, k)                                                                     \
    case n * 4 + k:                                                                                \
        w5f_product(n, k, ve, ldv, c, ue, mf, mb + e * W5F_TB * 16 * W5F_FV);                      \
        break;
#define W5F_PRODUCT_CASES(n) W5F_PRODUCT_CASE(n, 1) W5F_PRODUCT_CASE(n, 2) W5F_PRODUCT_CASE(n, 3)

/* The 36 products of nt tiles (from tile t0) by nv vectors of filters (from
 * f0) into mb[e][t][48]. */
static void w5f_products(const float *v, size_t ldv, size_t c, size_t t0, size_t nt,
                         const float *u1, size_t mf, size_t f0, size_t nv, float *mb)
{
    for (size_t e = 0; e < 36; e++) {
        const float *ve = v + e * c * ldv + t0, *ue = u1 + e * c * mf + f0;
        /* clang-format off */
        switch (nt * 4 + nv) {
            W5F_PRODUCT_CASES(1) W5F_PRODUCT_CASES(2) W5F_PRODUCT_CASES(3)
            W5F_PRODUCT_CASES(4) W5F_PRODUCT_CASES(5) W5F_PRODUCT_CASES(6)
            W5F_PRODUCT_CASES(7) W5F_PRODUCT_CASES(8)
        }
        /* clang-format on */
    }
}

/* A^T M A of block tile t, filter vector k of mb, in wg_tile_out_by's order,
 * then the bias, the affine map and the relu (vectors along the filters):
 * the tile's 2 x 2 outputs o[row][column]. */
static inline __attribute__((always_inline)) void w5f_tile_out(const float *mb, size_t t, size_t k,
                                                               __m512 bias, int affine, __m512 sc,
                                                               __m512 sh, int relu, __m512 o[2][2])
{
    __m512 tmp[2][6], mm[6], r[2];
    for (int j = 0; j < 6; j++) {
        for (int i = 0; i < 6; i++)
            mm[i] = _mm512_loadu_ps(mb + ((size_t)(i * 6 + j) * W5F_TB + t) * 16 * W5F_FV + 16 * k);
        w5_at(mm, r);
        tmp[0][j] = r[0], tmp[1][j] = r[1];
    }
    for (int a = 0; a < 2; a++) {
        w5_at(tmp[a], r);
        for (int q = 0; q < 2; q++)
            o[a][q] = dconv_finish(r[q], bias, affine, sc, sh, relu);
    }
}

/* One image x's outputs (or pooled, 2x2 windows within the tiles: oh and ow
 * even) into y, the first mf filters here and the rest by w5_outputs, from
 * the kept transforms u (w5_filters) and u1 (w5f_make), in a thread's area
 * (w5f_thread_floats). */
static void w5f_pass(const cn_win *g, size_t m, const float *x, const float *u, const float *u1,
                     const float *b, const float *scale, const float *shift, int relu, int pool,
                     float *y, float *area)
{
    wg_area a = w5_area_of(g, area);
    size_t c = g->c, mf = w5f_filters_of(m), tiles = w5_tiles(g);
    size_t oh = pool ? g->oh / 2 : g->oh, ow = pool ? g->ow / 2 : g->ow, plane = oh * ow;
    float *yh = area + w5_thread_floats(g); /* pixels of mf filters */
    w5_inputs(g, x, 1, a.v, a.ldv);
    for (size_t t0 = 0; t0 < tiles; t0 += W5F_TB) {
        size_t nt = tiles - t0 < W5F_TB ? tiles - t0 : W5F_TB;
        for (size_t f0 = 0; f0 < mf; f0 += 16 * W5F_FV) {
            size_t nv = (mf - f0) / 16 < W5F_FV ? (mf - f0) / 16 : W5F_FV;
            w5f_products(a.v, a.ldv, c, t0, nt, u1, mf, f0, nv, a.mb);
            for (size_t k = 0; k < nv; k++) {
                size_t f = f0 + 16 * k;
                __m512 bias = b ? _mm512_loadu_ps(b + f) : _mm512_setzero_ps();
                __m512 sc = scale ? _mm512_loadu_ps(scale + f) : _mm512_set1_ps(1.0f);
                __m512 sh = scale ? _mm512_loadu_ps(shift + f) : _mm512_setzero_ps();
                for (size_t t = 0; t < nt; t++) {
                    size_t ti = (t0 + t) / 4, tj = (t0 + t) % 4; /* lane 4 ti + tj */
                    __m512 o[2][2];
                    w5f_tile_out(a.mb, t, k, bias, scale != NULL, sc, sh, relu, o);
                    if (pool) {
                        if (ti < oh && tj < ow)
                            _mm512_storeu_ps(yh + (ti * ow + tj) * mf + f,
                                             wg_max4(o[0][0], o[0][1], o[1][0], o[1][1]));
                        continue;
                    }
                    for (size_t i = 2 * ti; i < 2 * ti + 2 && i < oh; i++)
                        for (size_t j = 2 * tj; j < 2 * tj + 2 && j < ow; j++)
                            _mm512_storeu_ps(yh + (i * ow + j) * mf + f, o[i - 2 * ti][j - 2 * tj]);
                }
            }
        }
    }
    /* the planes of the mf filters: 16 pixels of 16 filters at a time */
    for (size_t f0 = 0; f0 < mf; f0 += 16)
        for (size_t p0 = 0; p0 < plane; p0 += 16) {
            size_t np = plane - p0 < 16 ? plane - p0 : 16;
            transpose_block(yh + p0 * mf + f0, mf, np, 0xffff, y + f0 * plane + p0, plane, 16,
                            tail_mask(np));
        }
    if (mf < m)
        w5_outputs(g, m, 1, a.v, a.ldv, u, mf, m - mf, b, scale, shift, relu, pool, y, a.mb, a.yd);
}
