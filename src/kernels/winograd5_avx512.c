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
