/* winograd1_avx512.c - F(4x4, 3x3) for one image on planes of up to 7 x 7
 * tiles (fashion-best's and mnist-best's 28 x 28 and 14 x 14 layers,
 * cifar10's 16 x 16 and 8 x 8), with vectors along the filters instead of
 * the tiles.
 *
 * A 14 x 14 plane's tiles fill one vector of winograd_avx512.c's kernels,
 * so that two threads could share one image's work there only by filters:
 * each then transformed the whole input and read the half of it that the
 * other core had written (fashion-best's third layer took as long on 2
 * threads as on one); an 8 x 8 plane's 4 tiles leave 12 of the 16 lanes
 * idle, a 28 x 28 plane's 49 fill 4 vectors.  Here the tiles go in rows of
 * vectors along the filters (8 tiles by 3 vectors of 16 filters in
 * registers), so a thread takes whole rows of tiles: it transforms only the
 * input under them and writes only the outputs over them, most of both on
 * its own core.  The input transform runs along the channels, 16 at a time,
 * from the plane transposed into pixels of channels, without the permutes
 * that build vectors of tiles; the products keep every filter's transform
 * in a vector instead of broadcasting it.  fashion-best's 14 x 14 layers,
 * one image on one thread: 10.3 and 16.3 us against 13 and 21 (AMD EPYC Zen
 * 5); on 2 threads 9.8 and 13.2 us against 11.9 and 16.2; its 28 x 28 layer
 * 21 us against 23, cifar10's one image 1.8x as fast.
 *
 * Every output is the other kernels' to the bit: the same transforms (wg_bt,
 * wg_at) in the same order on each element, the sums over the channels in
 * order from 0 into one accumulator (v u + s is u v + s), then the bias, the
 * affine map, the relu and the pooling as wg_output and wg_output_pool take
 * them (tests/test_kernels.c, conv_one_image_by_filters). */

/* Tiles per block of the products, vectors of filters (8 x 3 accumulators). */
#define WG1_TB 8
#define WG1_FV 3

/* The layouts below are in groups of 16 channels, so that every offset
 * within a tile is a constant or one of 6 rows (with 36 computed offsets,
 * kept on the stack, the input transform took twice as long): the
 * floats of a tile's transforms of a group. */
#define WG1_ELT (36 * 16)

/* The most tile rows and columns: planes up to 28 x 28. */
#define WG1_MAX_TILES 7

/* A plane's tiles (th x tw) and the padded input columns they read (pw). */
typedef struct wg1_shape {
    size_t th, tw, tiles, pw;
} wg1_shape;

static wg1_shape wg1_shape_of(const cn_win *g)
{
    wg1_shape s = {(g->oh + 3) / 4, (g->ow + 3) / 4, 0, 0};
    s.tiles = s.th * s.tw, s.pw = 4 * s.tw + 2;
    return s;
}

/* Floats per pixel (channels) or per tile and element (filters): whole
 * vectors. */
static size_t wg1_round(size_t n) { return (n + 15) / 16 * 16; }

/* The filters' transforms are read once for each block of WG1_TB tiles:
 * beyond 2 blocks, only where they stay in a core's L2 cache (256 KB). */
#define WG1_U_FLOATS (64 * 1024)

/* Layers these kernels take: a Winograd layer (use_winograd) of up to 7 x 7
 * tiles (planes up to 28 x 28), padded by 2 at most, whose filters'
 * transforms are small enough for its tiles (WG1_U_FLOATS). */
static int wg1_fits(const cn_win *g, size_t m)
{
    wg1_shape s = wg1_shape_of(g);
    size_t blocks = (s.tiles + WG1_TB - 1) / WG1_TB;
    return use_winograd(g, m) && s.th <= WG1_MAX_TILES && s.tw <= WG1_MAX_TILES && g->pad <= 2 &&
           (blocks <= 2 || 36 * g->c * wg1_round(m) <= WG1_U_FLOATS);
}

/* A thread's area for up to all the plane's tile rows: the padded input
 * rows in pixels of channels, V (36 x tiles x channels), a block's products
 * (36 x WG1_TB x 48) and the outputs in pixels of filters (16 a tile). */
static size_t wg1_thread_floats(const cn_win *g, size_t m)
{
    wg1_shape s = wg1_shape_of(g);
    size_t cs = wg1_round(g->c), mp = wg1_round(m);
    return (4 * s.th + 2) * s.pw * cs + 36 * s.tiles * cs + 36 * WG1_TB * 16 * WG1_FV +
           16 * s.tiles * mp;
}

/* The filters' transforms along the filters: u1[e][ch][f] (rows of mp
 * floats, zero past m) from wg_filters' u[e][f][ch]. */
static void wg1_filters(const float *u, size_t m, size_t c, float *u1)
{
    size_t mp = wg1_round(m);
    for (size_t e = 0; e < 36; e++)
        for (size_t ch = 0; ch < c; ch++) {
            float *row = u1 + (e * c + ch) * mp;
            for (size_t f = 0; f < mp; f++)
                row[f] = f < m ? u[(e * m + f) * c + ch] : 0.0f;
        }
}

/* Half of wg_bt along one direction, by the same expressions: outputs 0 to
 * 2 (from d0 to d4), or with hi 3 to 5 (from d1 to d5). */
static inline __attribute__((always_inline)) void wg1_bt_half(const __m512 *d, int hi, __m512 *r)
{
    const __m512 two = _mm512_set1_ps(2.0f), four = _mm512_set1_ps(4.0f),
                 five = _mm512_set1_ps(5.0f);
    if (!hi) {
        __m512 t1 = _mm512_fnmadd_ps(four, d[2], d[4]), t2 = _mm512_fnmadd_ps(four, d[1], d[3]);
        r[0] = _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4]));
        r[1] = _mm512_add_ps(t1, t2);
        r[2] = _mm512_sub_ps(t1, t2);
    } else {
        __m512 t3 = _mm512_sub_ps(d[4], d[2]), t4 = _mm512_sub_ps(d[3], d[1]);
        r[0] = _mm512_fmadd_ps(two, t4, t3);
        r[1] = _mm512_fnmadd_ps(two, t4, t3);
        r[2] = _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5]));
    }
}

/* V[e] of one tile for 16 channels (v: WG1_ELT floats, element e at 16 e)
 * from the tile's padded input p (rows of pw pixels of 16 channels): along
 * the rows first, then along the columns, as wg_input4 takes them, in two
 * halves of the rows' outputs (each row read twice), so that 18 of them
 * wait in registers instead of 36 (which spilled). */
static inline __attribute__((always_inline)) void wg1_tile_in(const float *p, size_t pw, float *v)
{
#pragma GCC unroll 2
    for (int hi = 0; hi < 2; hi++) {
        __m512 tmp[6][3];
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            __m512 d[6];
#pragma GCC unroll 6
            for (int j = 0; j < 6; j++)
                d[j] = j == (hi ? 0 : 5) ? _mm512_setzero_ps()
                                         : _mm512_loadu_ps(p + ((size_t)i * pw + (size_t)j) * 16);
            wg1_bt_half(d, hi, tmp[i]);
        }
#pragma GCC unroll 3
        for (int k = 0; k < 3; k++) {
            __m512 col[6], r[6];
#pragma GCC unroll 6
            for (int i = 0; i < 6; i++)
                col[i] = tmp[i][k];
            wg_bt(col, r);
#pragma GCC unroll 6
            for (int i = 0; i < 6; i++)
                _mm512_storeu_ps(v + (size_t)(i * 6 + 3 * hi + k) * 16, r[i]);
        }
    }
}

/* V for tile rows [r0, r1) of the plane x (c, h, w): v[group][t][e][16]
 * (t the tile's place among those rows, tw to a row), through xh, the
 * padded rows 4 r0 to 4 r1 + 1 as xh[group][row][pw][16]. */
static void wg1_input(const float *x, const cn_win *g, const wg1_shape *s, size_t r0, size_t r1,
                      float *xh, float *v)
{
    size_t c = g->c, groups = (c + 15) / 16, rows = 4 * (r1 - r0) + 2, tiles = (r1 - r0) * s->tw;
    size_t pw = s->pw, rs = pw * 16;
    for (size_t gi = 0; gi < groups; gi++) {
        size_t c0 = 16 * gi, nc = c - c0 < 16 ? c - c0 : 16;
        float *xg = xh + gi * rows * rs;
        for (size_t rr = 0; rr < rows; rr++) {
            size_t pr = 4 * r0 + rr;
            float *row = xg + rr * rs;
            if (pr < g->pad || pr - g->pad >= g->h) { /* a padding row */
                for (size_t k = 0; k < pw; k++)
                    _mm512_storeu_ps(row + 16 * k, _mm512_setzero_ps());
                continue;
            }
            for (size_t k = 0; k < g->pad; k++)
                _mm512_storeu_ps(row + 16 * k, _mm512_setzero_ps());
            for (size_t k = g->pad + g->w; k < pw; k++)
                _mm512_storeu_ps(row + 16 * k, _mm512_setzero_ps());
            size_t r = pr - g->pad, hw = g->h * g->w;
            for (size_t x0 = 0; x0 < g->w; x0 += 16) {
                size_t nx = g->w - x0 < 16 ? g->w - x0 : 16;
                transpose_block(x + (c0 * g->h + r) * g->w + x0, hw, nc, tail_mask(nx),
                                row + 16 * (g->pad + x0), 16, nx, 0xffff);
            }
        }
        float *vg = v + gi * tiles * WG1_ELT;
        for (size_t ti = 0; ti < r1 - r0; ti++)
            for (size_t tj = 0; tj < s->tw; tj++)
                wg1_tile_in(xg + (4 * ti * pw + 4 * tj) * 16, pw, vg + (ti * s->tw + tj) * WG1_ELT);
    }
}

/* out[t][16 k] (t < NT, k < NV; rows of 48) = sum over ch of V[e][t][ch]
 * u[ch][16 k]: one element's product for a block of tiles and up to 48
 * filters; v: the block's first tile's element e in group 0 (groups of 16
 * channels gs floats apart, channels in a group ls, tiles TS: WG1_ELT and 1
 * here, 1 and ldv for F(2x2, 5x5)'s V below), u: rows of mp floats. */
static inline __attribute__((always_inline)) void wg1_product(const int NT, const int NV,
                                                              const size_t TS, const float *v,
                                                              size_t ls, size_t gs, size_t c,
                                                              const float *u, size_t mp, float *out)
{
    __m512 acc[WG1_TB][WG1_FV];
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 3
        for (int k = 0; k < NV; k++)
            acc[t][k] = _mm512_setzero_ps();
    for (size_t c0 = 0; c0 < c; c0 += 16, v += gs) {
        size_t nc = c - c0 < 16 ? c - c0 : 16;
        const float *vl = v;
        for (size_t l = 0; l < nc; l++, u += mp, vl += ls) {
            __m512 w[WG1_FV];
#pragma GCC unroll 3
            for (int k = 0; k < NV; k++)
                w[k] = _mm512_loadu_ps(u + 16 * k);
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) {
                __m512 xv = _mm512_set1_ps(vl[t * TS]);
#pragma GCC unroll 3
                for (int k = 0; k < NV; k++)
                    acc[t][k] = _mm512_fmadd_ps(xv, w[k], acc[t][k]);
            }
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 3
        for (int k = 0; k < NV; k++)
            _mm512_storeu_ps(out + t * 16 * WG1_FV + 16 * k, acc[t][k]);
}

#define WG1_PRODUCT_CASE(n, k)                                                                     \
    case n * 4 + k:                                                                                \
        wg1_product(n, k, WG1_ELT, ve, 1, gs, c, ue, mp, mb + e * WG1_TB * 16 * WG1_FV);           \
        break;
#define WG1_PRODUCT_CASES(n) WG1_PRODUCT_CASE(n, 1) WG1_PRODUCT_CASE(n, 2) WG1_PRODUCT_CASE(n, 3)

/* The 36 products of nt tiles (from v's tile t0) by nv vectors of filters
 * (from f0) into mb[e][t][48]. */
static void wg1_products(const float *v, size_t gs, size_t c, size_t t0, size_t nt, const float *u1,
                         size_t mp, size_t f0, size_t nv, float *mb)
{
    for (size_t e = 0; e < 36; e++) {
        const float *ve = v + t0 * WG1_ELT + 16 * e, *ue = u1 + e * c * mp + f0;
        /* clang-format off */
        switch (nt * 4 + nv) {
            WG1_PRODUCT_CASES(1) WG1_PRODUCT_CASES(2) WG1_PRODUCT_CASES(3)
            WG1_PRODUCT_CASES(4) WG1_PRODUCT_CASES(5) WG1_PRODUCT_CASES(6)
            WG1_PRODUCT_CASES(7) WG1_PRODUCT_CASES(8)
        }
        /* clang-format on */
    }
}

/* What follows the products for one vector of filters, as dconv_finish
 * takes it: the bias, the affine map (scale and shift, or none), the relu. */
typedef struct wg1_finish {
    __m512 bias, scale, shift;
    int affine, relu;
} wg1_finish;

/* A^T M A of block tile t, filter vector k of mb (filters from f), then
 * fin (wg_tile_out_at), into yh (pixels of mp filters, yw to a
 * row): the tile's 4 x 4 outputs at (4 ti, 4 tj), or with pool their 2x2
 * maxima (wg_max4) at (2 ti, 2 tj). */
static void wg1_tile_out(const float *mb, size_t t, size_t k, const wg1_finish *fin, int pool,
                         float *yh, size_t yw, size_t mp, size_t f, size_t ti, size_t tj)
{
    __m512 o[4][4];
    wg_tile_out_at(4, wg_at, mb + t * 16 * WG1_FV + 16 * k, WG1_TB * 16 * WG1_FV, fin->bias,
                   fin->affine, fin->scale, fin->shift, fin->relu, &o[0][0]);
    if (pool) {
        for (size_t pr = 0; pr < 2; pr++)
            for (size_t pq = 0; pq < 2; pq++) {
                const __m512 *a = o[2 * pr], *u = o[2 * pr + 1];
                _mm512_storeu_ps(yh + ((2 * ti + pr) * yw + 2 * tj + pq) * mp + f,
                                 wg_max4(a[2 * pq], a[2 * pq + 1], u[2 * pq], u[2 * pq + 1]));
            }
        return;
    }
    for (size_t q = 0; q < 4; q++)
        for (size_t p = 0; p < 4; p++)
            _mm512_storeu_ps(yh + ((4 * ti + q) * yw + 4 * tj + p) * mp + f, o[q][p]);
}

/* Rows [i0, i1) of every filter's plane in y (m planes of ow wide, plane
 * floats apart) from yh, the rows from i0 in pixels of mp filters (yw
 * pixels a row): 16 pixels of 16 filters transposed at a time. */
static void wg1_place(const float *yh, size_t yw, size_t mp, size_t m, size_t i0, size_t i1,
                      size_t ow, size_t plane, float *y)
{
    for (size_t i = i0; i < i1; i++)
        for (size_t f0 = 0; f0 < m; f0 += 16)
            for (size_t x0 = 0; x0 < ow; x0 += 16) {
                size_t nf = m - f0 < 16 ? m - f0 : 16, nx = ow - x0 < 16 ? ow - x0 : 16;
                transpose_block(yh + ((i - i0) * yw + x0) * mp + f0, mp, nx, 0xffff,
                                y + f0 * plane + i * ow + x0, plane, nf, tail_mask(nx));
            }
}

/* The layer's outputs over tile rows [r0, r1) of one image x into y (m
 * planes of oh x ow, or with pool max-pooled over 2x2 windows within the
 * tiles: oh / 2 x ow / 2), from the filters' transforms u1 (wg1_filters),
 * in a thread's area (wg1_thread_floats). */
static void wg1_rows(const cn_win *g, size_t m, const float *x, const float *u1, const float *b,
                     const float *scale, const float *shift, int relu, int pool, float *y,
                     float *area, size_t r0, size_t r1)
{
    wg1_shape s = wg1_shape_of(g);
    size_t c = g->c, cs = wg1_round(c), mp = wg1_round(m), tiles = (r1 - r0) * s.tw;
    float *xh = area, *v = xh + (4 * s.th + 2) * s.pw * cs, *mb = v + 36 * s.tiles * cs;
    float *yh = mb + 36 * WG1_TB * 16 * WG1_FV;
    size_t yw = pool ? 2 * s.tw : 4 * s.tw;
    wg1_input(x, g, &s, r0, r1, xh, v);
    for (size_t t0 = 0; t0 < tiles; t0 += WG1_TB) {
        size_t nt = tiles - t0 < WG1_TB ? tiles - t0 : WG1_TB;
        for (size_t f0 = 0; f0 < mp; f0 += 16 * WG1_FV) {
            size_t nv = (mp - f0) / 16 < WG1_FV ? (mp - f0) / 16 : WG1_FV;
            wg1_products(v, tiles * WG1_ELT, c, t0, nt, u1, mp, f0, nv, mb);
            wg1_finish fin[WG1_FV];
            for (size_t k = 0; k < nv; k++) {
                size_t f = f0 + 16 * k;
                __mmask16 mk = tail_mask(m - f < 16 ? m - f : 16);
                fin[k].bias = b ? _mm512_maskz_loadu_ps(mk, b + f) : _mm512_setzero_ps();
                fin[k].scale = scale ? _mm512_maskz_loadu_ps(mk, scale + f) : _mm512_set1_ps(1.0f);
                fin[k].shift = scale ? _mm512_maskz_loadu_ps(mk, shift + f) : _mm512_setzero_ps();
                fin[k].affine = scale != NULL, fin[k].relu = relu;
            }
            for (size_t t = 0; t < nt; t++)
                for (size_t k = 0; k < nv; k++)
                    wg1_tile_out(mb, t, k, &fin[k], pool, yh, yw, mp, f0 + 16 * k, (t0 + t) / s.tw,
                                 (t0 + t) % s.tw);
        }
    }
    size_t oh = pool ? g->oh / 2 : g->oh, ow = pool ? g->ow / 2 : g->ow, per = pool ? 2 : 4;
    size_t i0 = per * r0, i1 = per * r1 < oh ? per * r1 : oh;
    if (i0 < i1)
        wg1_place(yh, yw, mp, m, i0, i1, ow, oh * ow, y);
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
 * of every filter's 4 x 4 pooled plane, one cache line).  The products
 * are wg1_product's, over V with the tiles in the lanes.
 *
 * The same bits as the products above: the sums over the channels in order
 * from 0 into one accumulator (v u + s is u v + s), then A^T in the same
 * order, the bias, the affine map, the relu and the pooling as there
 * (tests/test_kernels.c, conv_one_image_by_filters). */

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

#define W5F_PRODUCT_CASE(n, k)                                                                     \
    case n * 4 + k:                                                                                \
        wg1_product(n, k, 1, ve, ldv, 16 * ldv, c, ue, mf, mb + e * WG1_TB * 16 * WG1_FV);         \
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
    for (size_t t0 = 0; t0 < tiles; t0 += WG1_TB) {
        size_t nt = tiles - t0 < WG1_TB ? tiles - t0 : WG1_TB;
        for (size_t f0 = 0; f0 < mf; f0 += 16 * WG1_FV) {
            size_t nv = (mf - f0) / 16 < WG1_FV ? (mf - f0) / 16 : WG1_FV;
            w5f_products(a.v, a.ldv, c, t0, nt, u1, mf, f0, nv, a.mb);
            for (size_t k = 0; k < nv; k++) {
                size_t f = f0 + 16 * k;
                __m512 bias = b ? _mm512_loadu_ps(b + f) : _mm512_setzero_ps();
                __m512 sc = scale ? _mm512_loadu_ps(scale + f) : _mm512_set1_ps(1.0f);
                __m512 sh = scale ? _mm512_loadu_ps(shift + f) : _mm512_setzero_ps();
                for (size_t t = 0; t < nt; t++) {
                    size_t ti = (t0 + t) / 4, tj = (t0 + t) % 4; /* lane 4 ti + tj */
                    __m512 o[2][2];
                    wg_tile_out_at(2, w5_at, a.mb + t * 16 * WG1_FV + 16 * k, WG1_TB * 16 * WG1_FV,
                                   bias, scale != NULL, sc, sh, relu, &o[0][0]);
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
