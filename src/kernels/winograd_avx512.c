/* winograd_avx512.c - 3x3 convolutions with stride 1 by Winograd's minimal
 * filtering F(4x4, 3x3) (Lavin and Gray, "Fast algorithms for convolutional
 * neural networks", 2016).  Each 4x4 block of outputs (a tile) comes from
 * the 6x6 block of padded input under it:
 *
 *   Y = A^T [ sum_c (G g_c G^T) .* (B^T d_c B) ] A
 *
 * so that the sum over the input channels costs 36 multiply-adds per tile
 * and filter, against 144 for the direct sum.  The sums are 36 products,
 * one per element e of the 6x6 transformed tile, of the filters' transforms
 * U[e] (c x m) by the input tiles' transforms V[e] (c x tiles).
 *
 * Vectors run along tiles, 16 tiles to a vector, whatever the channel
 * counts.  To load an element of 16 neighbouring tiles with one vector load,
 * each padded plane is first split into phase planes (wg_split): rows and
 * columns by their index mod 4, so that element (i, j) of tile (ti, tj)
 * sits at (ti + i/4, tj + j/4) of phase plane (i mod 4, j mod 4).  Phase
 * rows hold tw values (one per tile column); the tile's columns 4 and 5 come
 * from copies of column phases 0 and 1 shifted by one column, so that 16
 * tiles in a row of the flattened tile grid are 16 consecutive floats of
 * every plane.  Planes of 4 x 4 tiles or fewer (13 to 16 wide) skip the
 * phase planes: their tiles fill one vector, built from the padded rows
 * by permutes (wg_input4, wg_grad4).  The outputs come back in 16 phase
 * planes and are interleaved into rows (wg_place).
 *
 * Work is done a unit of samples at a time (their tiles side by side, as
 * many as keep V in the L2 cache), filters eight at a time: for a block of
 * up to 48 tiles, 36 small products of 8 filters by 48 tiles in registers,
 * then the output transform with the bias, a folded batch normalisation and
 * the relu.  Every tile is computed by the same instructions in whichever
 * lane and unit it lands, so the result does not depend on the batch size or
 * the thread count.
 *
 * Rounding: the transforms' constants (1/6, 1/12, 1/24) are not exact in
 * floats and the transformed values are larger than the inputs, so the
 * outputs are off the exact sums by about 4e-6 of their scale, against 5e-7
 * for the direct sum (tests/test_kernels.c, conv_winograd_against_direct).
 * The gradient checks ask for the direct sum (cn_backend.exact).
 *
 * Training uses the same transforms twice more (kernels/conv.c): the input
 * gradient is the convolution of the output gradient with the filters
 * flipped, and the weight gradient is at the end of this file. */
#define HAVE_WINOGRAD 1

/* The shape of one sample's tiles: th x tw tiles of 4x4 outputs (vecs
 * vectors of 16) and the floats of a phase plane (q: th + 1 rows of tw, and
 * what the last vector's loads read beyond, zero). */
typedef struct wg_shape {
    size_t th, tw, tiles, vecs, q;
} wg_shape;

static wg_shape wg_shape_of(const cn_win *g)
{
    wg_shape s;
    s.th = (g->oh + 3) / 4, s.tw = (g->ow + 3) / 4;
    /* 25 to 28 wide (7 tile columns): one more column of tiles, so that
     * wg_input8 builds the vectors two tile rows at a time. */
    if (s.tw == 7)
        s.tw = 8;
    s.tiles = s.th * s.tw;
    s.vecs = (s.tiles + 15) / 16;
    s.q = (16 * s.vecs + s.tw + 16 + 15) / 16 * 16;
    return s;
}

/* Phase planes per channel: 16 (row and column phases), and the column
 * phases 0 and 1 again one column on (for the tile's columns 4 and 5). */
#define WG_PLANES 24

/* Transformed input of a unit: at most this many floats, so that it stays
 * in a 1-2 MB L2 cache while every filter group reads it. */
#define WG_V_FLOATS (128 * 1024)
#define WG_MAX_UNIT 64
/* The most floats of V a thread may hold for one sample (8 MB). */
#define WG_MAX_V (2 * 1024 * 1024)
/* Tiles per block of the products: 3 vectors. */
#define WG_TB 48
/* Filters per group: 8 x 3 accumulators. */
#define WG_NF 8

static size_t wg_unit(const cn_win *g, const wg_shape *s)
{
    size_t u = WG_V_FLOATS / (36 * g->c * s->tiles);
    return u < 1 ? 1 : u > WG_MAX_UNIT ? WG_MAX_UNIT : u;
}

/* Floats of a row of V (and of the output phase planes) for a unit of
 * samples: their tiles, room for the 16 lanes of the last vector stored,
 * up to whole blocks. */
static size_t wg_row(size_t tiles) { return (tiles + 16 + WG_TB - 1) / WG_TB * WG_TB; }

/* A thread's area: phase planes of one channel (WG_PLANES q), V (36 c rows),
 * the products of a block (36 x WG_NF x WG_TB) and the output phase planes
 * of a filter group (WG_NF x 16 rows). */
static size_t wg_thread_floats(const cn_win *g)
{
    wg_shape s = wg_shape_of(g);
    size_t row = wg_row(wg_unit(g, &s) * s.tiles);
    return WG_PLANES * s.q + 36 * g->c * row + 36 * WG_NF * WG_TB + WG_NF * 16 * row;
}

/* Worth it: the multiply-adds per tile (36 per channel and filter, plus the
 * transforms' work per channel and per filter, weighed as measured: cifar10's
 * first layer, 3 channels to 32 filters, ran 1.3x slower with Winograd) well
 * below the direct sum's 9 per output, counting the outputs a partial tile
 * wastes. */
static int use_winograd(const cn_win *g, size_t m)
{
    if (g->kh != 3 || g->kw != 3 || g->stride != 1 || g->pad > 2)
        return 0;
    wg_shape s = wg_shape_of(g);
    /* One sample's transformed input is the least a thread holds: a large
     * image (224 x 224 x 64: 29 MB a thread) keeps the direct sum. */
    if (36 * g->c * wg_row(s.tiles) > WG_MAX_V)
        return 0;
    double direct = 9.0 * (double)g->c * (double)m * (double)(g->oh * g->ow);
    double wino =
        (double)s.tiles * (36.0 * (double)(g->c * m) + 500.0 * (double)g->c + 300.0 * (double)m);
    return wino < 0.75 * direct;
}

/* ----------------------------------------------------------- transforms */

/* r = B^T d along one direction: 4d0-5d2+d4, -4d1-4d2+d3+d4, 4d1-4d2-d3+d4,
 * -2d1-d2+2d3+d4, 2d1-d2-2d3+d4, 4d1-5d3+d5. */
static inline __attribute__((always_inline)) void wg_bt(const __m512 *d, __m512 *r)
{
    const __m512 two = _mm512_set1_ps(2.0f), four = _mm512_set1_ps(4.0f),
                 five = _mm512_set1_ps(5.0f);
    __m512 t1 = _mm512_fnmadd_ps(four, d[2], d[4]), t2 = _mm512_fnmadd_ps(four, d[1], d[3]);
    __m512 t3 = _mm512_sub_ps(d[4], d[2]), t4 = _mm512_sub_ps(d[3], d[1]);
    r[0] = _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4]));
    r[1] = _mm512_add_ps(t1, t2);
    r[2] = _mm512_sub_ps(t1, t2);
    r[3] = _mm512_fmadd_ps(two, t4, t3);
    r[4] = _mm512_fnmadd_ps(two, t4, t3);
    r[5] = _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5]));
}

/* o = A^T m along one direction: m0+m1+m2+m3+m4, m1-m2+2(m3-m4),
 * m1+m2+4(m3+m4), m1-m2+8(m3-m4)+m5. */
static inline __attribute__((always_inline)) void wg_at(const __m512 *m, __m512 *o)
{
    __m512 s12 = _mm512_add_ps(m[1], m[2]), d12 = _mm512_sub_ps(m[1], m[2]);
    __m512 s34 = _mm512_add_ps(m[3], m[4]), d34 = _mm512_sub_ps(m[3], m[4]);
    o[0] = _mm512_add_ps(_mm512_add_ps(m[0], s12), s34);
    o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d34, d12);
    o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), s34, s12);
    o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d34, d12), m[5]);
}

/* r = G g along one direction: g0/4, -(g0+g1+g2)/6, -(g0-g1+g2)/6,
 * g0/24+g1/12+g2/6, g0/24-g1/12+g2/6, g2. */
static inline __attribute__((always_inline)) void wg_g(const __m512 *g, __m512 *r)
{
    __m512 a = _mm512_add_ps(g[0], g[2]);
    __m512 b = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 24), g[0],
                               _mm512_mul_ps(_mm512_set1_ps(1.0f / 6), g[2]));
    __m512 c = _mm512_mul_ps(_mm512_set1_ps(1.0f / 12), g[1]);
    r[0] = _mm512_mul_ps(_mm512_set1_ps(0.25f), g[0]);
    r[1] = _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6), _mm512_add_ps(a, g[1]));
    r[2] = _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6), _mm512_sub_ps(a, g[1]));
    r[3] = _mm512_add_ps(b, c);
    r[4] = _mm512_sub_ps(b, c);
    r[5] = g[2];
}

/* u[e][k][ch] = (G w[k][ch] G^T)[e] for filters [k0, k1) of w (m, c, 3, 3):
 * rows of c floats, 16 channels at a time: their 9 taps each, loaded one
 * channel to a vector and transposed into one vector per tap. */
static void wg_filters(const float *w, size_t m, size_t c, size_t k0, size_t k1, float *u)
{
    for (size_t k = k0; k < k1; k++)
        for (size_t c0 = 0; c0 < c; c0 += 16) {
            size_t nc = c - c0 < 16 ? c - c0 : 16;
            const float *wk = w + (k * c + c0) * 9;
            __m512 tap[16], col[3], t[6][3], row[3], r[6];
            for (size_t l = 0; l < 16; l++)
                tap[l] = l < nc ? _mm512_maskz_loadu_ps(0x1ff, wk + 9 * l) : _mm512_setzero_ps();
            transpose16(tap);
            for (int j = 0; j < 3; j++) {
                for (int i = 0; i < 3; i++)
                    col[i] = tap[3 * i + j];
                wg_g(col, r);
                for (int a = 0; a < 6; a++)
                    t[a][j] = r[a];
            }
            __mmask16 mk = tail_mask(nc);
            for (int a = 0; a < 6; a++) {
                for (int j = 0; j < 3; j++)
                    row[j] = t[a][j];
                wg_g(row, r);
                for (int b = 0; b < 6; b++)
                    _mm512_mask_storeu_ps(u + ((size_t)(a * 6 + b) * m + k) * c + c0, mk, r[b]);
            }
        }
}

/* wg_split of a plane whose phase rows need no more than 32 padded columns
 * (tw + 1 <= 8: planes up to 28 wide): one or two vectors loaded a row, and
 * each phase taken from them with one permute.  Lanes 8 to 15 then hold
 * copies where the 64-column path holds values past the row's tiles; both
 * land on the next phase row, written later, or in the plane's slack, which
 * only lanes past the last tile read. */
static void wg_split_narrow(const float *x, const float *ym, const cn_win *g, const wg_shape *s,
                            int whole, float *xs)
{
    const size_t tw = s->tw, rows = 4 * (s->th + !!whole), pad = g->pad, h = g->h, w = g->w,
                 q = s->q;
    const int two = 4 * (tw + 1) > 16;
    /* Phase j: lanes 4 i + j (mod 32) of the two vectors. */
    const __m512i lane4 = _mm512_slli_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 2);
    const __m512i m31 = _mm512_set1_epi32(31);
    const __m512i i0 = _mm512_and_si512(lane4, m31),
                  i1 = _mm512_and_si512(_mm512_add_epi32(lane4, _mm512_set1_epi32(1)), m31),
                  i2 = _mm512_and_si512(_mm512_add_epi32(lane4, _mm512_set1_epi32(2)), m31),
                  i3 = _mm512_and_si512(_mm512_add_epi32(lane4, _mm512_set1_epi32(3)), m31);
    /* The lanes inside the input, the same in every row (pad < 16). */
    size_t end = pad + w, hi0 = end < 16 ? end : 16, hi1 = end > 16 ? end - 16 : 0;
    const __mmask16 in0 = (__mmask16)(tail_mask(hi0) & ~tail_mask(pad)),
                    in1 = two ? tail_mask(hi1 < 16 ? hi1 : 16) : 0;
    const __m512i zi = _mm512_setzero_si512();
    for (size_t r = 0; r < rows; r++) {
        size_t pi = r & 3, at = (r >> 2) * tw;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        if (r >= pad && r - pad < h) {
            size_t at_x = (r - pad) * w;
            const float *src = x + at_x - (long)pad;
            __mmask16 k0 = in0, k1 = in1;
            if (ym) { /* only where a fused relu's output is positive */
                const float *ys = ym + at_x - (long)pad;
                k0 = _mm512_mask_cmp_ps_mask(k0, _mm512_maskz_loadu_ps(k0, ys), _mm512_setzero_ps(),
                                             _CMP_GT_OQ);
                k1 = _mm512_mask_cmp_ps_mask(k1, _mm512_maskz_loadu_ps(k1, ys + 16),
                                             _mm512_setzero_ps(), _CMP_GT_OQ);
            }
            a0 = _mm512_maskz_loadu_ps(k0, src);
            a1 = _mm512_maskz_loadu_ps(k1, src + 16);
        }
        __m512 p0 = _mm512_permutex2var_ps(a0, i0, a1), p1 = _mm512_permutex2var_ps(a0, i1, a1),
               p2 = _mm512_permutex2var_ps(a0, i2, a1), p3 = _mm512_permutex2var_ps(a0, i3, a1);
        float *row = xs + pi * 4 * q + at, *shifted = xs + (16 + pi * 2) * q + at;
        _mm512_storeu_ps(row, p0);
        _mm512_storeu_ps(row + q, p1);
        _mm512_storeu_ps(row + 2 * q, p2);
        _mm512_storeu_ps(row + 3 * q, p3);
        if (!whole)
            continue;
        _mm512_storeu_ps(shifted,
                         _mm512_castsi512_ps(_mm512_alignr_epi32(zi, _mm512_castps_si512(p0), 1)));
        _mm512_storeu_ps(shifted + q,
                         _mm512_castsi512_ps(_mm512_alignr_epi32(zi, _mm512_castps_si512(p1), 1)));
    }
}

/* The plane x (h x w) of one channel, padded, into phase planes of q
 * floats: plane pi * 4 + pj holds padded (4 ui + pi, 4 uj + pj) at
 * ui * tw + uj, and plane 16 + pi * 2 + pj (pj < 2) padded
 * (4 ui + pi, 4 uj + 4 + pj), zero outside the input, and zero where ym
 * (when not NULL: a fused relu's output, in x's layout) is not positive.  64
 * columns at a time: four loads, then two levels of even/odd permutes.
 * Unless whole, only what a tile's 4 x 4 block reads (wg_grad): planes 0
 * to 15, phase rows 0 to th - 1 (the weight gradient's split of dy: 0.58
 * of the stores at 28 x 28). */
static void wg_split(const float *x, const float *ym, const cn_win *g, const wg_shape *s, int whole,
                     float *xs)
{
    size_t tw = s->tw, rows = 4 * (s->th + !!whole), pad = g->pad, chunks = (tw + 1 + 15) / 16;
    if (4 * (tw + 1) <= 32 && pad < 16) {
        wg_split_narrow(x, ym, g, s, whole, xs);
        return;
    }
    const __m512i ev = _mm512_loadu_si512(even_idx), od = _mm512_loadu_si512(odd_idx);
    for (size_t k = 0; k < chunks; k++) {
        /* Per 16 columns, the lanes inside the input (the same in every
         * row); the lanes of tiles in the plane rows, and one column on. */
        __mmask16 in[4], mu, ms;
        for (size_t v = 0; v < 4; v++) {
            size_t c0 = 64 * k + 16 * v, end = pad + g->w;
            size_t lo = pad > c0 ? pad - c0 : 0,
                   hi = end > c0 ? (end - c0 < 16 ? end - c0 : 16) : 0;
            lo = lo > 16 ? 16 : lo;
            in[v] = hi > lo ? (__mmask16)(tail_mask(hi) & ~tail_mask(lo)) : 0;
        }
        mu = 16 * k < tw ? tail_mask(tw - 16 * k < 16 ? tw - 16 * k : 16) : 0;
        ms = tail_mask(tw + 1 - 16 * k < 16 ? tw + 1 - 16 * k : 16) & (k ? 0xffff : 0xfffe);
        for (size_t r = 0; r < rows; r++) {
            size_t pi = r & 3, at = (r >> 2) * tw + 16 * k;
            __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                           _mm512_setzero_ps()};
            if (r >= pad && r - pad < g->h) {
                /* Lanes before the row (the left padding) are masked off. */
                size_t at_x = (r - pad) * g->w + 64 * k;
                const float *src = x + at_x - (long)pad;
                for (size_t v = 0; v < 4; v++) {
                    __mmask16 mk = in[v];
                    if (ym) /* only where a fused relu's output is positive */
                        mk = _mm512_mask_cmp_ps_mask(
                            mk, _mm512_maskz_loadu_ps(mk, ym + at_x - (long)pad + 16 * v),
                            _mm512_setzero_ps(), _CMP_GT_OQ);
                    a[v] = _mm512_maskz_loadu_ps(mk, src + 16 * v);
                }
            }
            __m512 e01 = _mm512_permutex2var_ps(a[0], ev, a[1]),
                   o01 = _mm512_permutex2var_ps(a[0], od, a[1]),
                   e23 = _mm512_permutex2var_ps(a[2], ev, a[3]),
                   o23 = _mm512_permutex2var_ps(a[2], od, a[3]);
            __m512 p0 = _mm512_permutex2var_ps(e01, ev, e23),
                   p1 = _mm512_permutex2var_ps(o01, ev, o23);
            __m512 p2 = _mm512_permutex2var_ps(e01, od, e23),
                   p3 = _mm512_permutex2var_ps(o01, od, o23);
            float *row = xs + pi * 4 * s->q + at, *shifted = xs + (16 + pi * 2) * s->q + at;
            if (chunks == 1) {
                /* Whole vectors (wg_input's loads then read them straight
                 * from the store buffer, which masked stores defeat): the
                 * lanes past the row land on the next row of the plane,
                 * written later, or in the plane's slack. */
                _mm512_storeu_ps(row, p0);
                _mm512_storeu_ps(row + s->q, p1);
                _mm512_storeu_ps(row + 2 * s->q, p2);
                _mm512_storeu_ps(row + 3 * s->q, p3);
                if (!whole)
                    continue;
                _mm512_storeu_ps(shifted, _mm512_castsi512_ps(_mm512_alignr_epi32(
                                              _mm512_setzero_si512(), _mm512_castps_si512(p0), 1)));
                _mm512_storeu_ps(shifted + s->q,
                                 _mm512_castsi512_ps(_mm512_alignr_epi32(
                                     _mm512_setzero_si512(), _mm512_castps_si512(p1), 1)));
                continue;
            }
            _mm512_mask_storeu_ps(row, mu, p0);
            _mm512_mask_storeu_ps(row + s->q, mu, p1);
            _mm512_mask_storeu_ps(row + 2 * s->q, mu, p2);
            _mm512_mask_storeu_ps(row + 3 * s->q, mu, p3);
            if (!whole)
                continue;
            _mm512_mask_storeu_ps(shifted - 1, ms, p0);
            _mm512_mask_storeu_ps(shifted - 1 + s->q, ms, p1);
        }
    }
}

/* The phase planes' floats beyond their rows, read only for lanes past the
 * last tile: zero once per area (wg_split never writes them). */
static void wg_split_tails(const wg_shape *s, float *xs)
{
    size_t used = (s->th + 1) * s->tw;
    for (size_t p = 0; p < WG_PLANES; p++)
        vzero(xs + p * s->q + used, s->q - used);
}

/* V[e][0, tiles) (estride floats between elements) = B^T d B of every tile
 * of one channel's phase planes xs, 16 tiles at a time (the last vector's
 * lanes past the tiles are written too). */
static void wg_input(const float *xs, const wg_shape *s, float *v, size_t estride)
{
    size_t tw = s->tw;
    for (size_t k = 0; k < s->vecs; k++) {
        __m512 tmp[36], d[6], r[6];
        size_t base = 16 * k;
        for (int j = 0; j < 6; j++) {
            size_t plane0 = j < 4 ? (size_t)j : (size_t)(16 + j - 4);
            for (int i = 0; i < 6; i++) {
                size_t plane = j < 4 ? (size_t)(i & 3) * 4 + plane0 : plane0 + (size_t)(i & 3) * 2;
                d[i] = _mm512_loadu_ps(xs + plane * s->q + base + (size_t)(i >> 2) * tw);
            }
            wg_bt(d, r);
            for (int i = 0; i < 6; i++)
                tmp[i * 6 + j] = r[i];
        }
        for (int i = 0; i < 6; i++) {
            wg_bt(tmp + i * 6, r);
            for (int j = 0; j < 6; j++)
                _mm512_storeu_ps(v + (size_t)(i * 6 + j) * estride + base, r[j]);
        }
    }
}

/* out[f][16 NV] (f < NF) = sum over ch of u[f][ch] v[ch][16 NV]: one
 * element's product for a block of tiles, up to 8 x 3 accumulators. */
static inline __attribute__((always_inline)) void wg_product(const int NF, const int NV,
                                                             const float *v, size_t ldv, size_t c,
                                                             const float *u, float *out)
{
    __m512 acc[WG_NF][3];
#pragma GCC unroll 8
    for (int f = 0; f < NF; f++)
#pragma GCC unroll 3
        for (int k = 0; k < NV; k++)
            acc[f][k] = _mm512_setzero_ps();
    for (size_t ch = 0; ch < c; ch++) {
        const float *vr = v + ch * ldv, *ur = u + ch;
        __m512 x[3];
#pragma GCC unroll 3
        for (int k = 0; k < NV; k++)
            x[k] = _mm512_loadu_ps(vr + 16 * k);
#pragma GCC unroll 8
        for (int f = 0; f < NF; f++) {
            __m512 wv = _mm512_set1_ps(ur[(size_t)f * c]);
#pragma GCC unroll 3
            for (int k = 0; k < NV; k++)
                acc[f][k] = _mm512_fmadd_ps(wv, x[k], acc[f][k]);
        }
    }
#pragma GCC unroll 8
    for (int f = 0; f < NF; f++)
#pragma GCC unroll 3
        for (int k = 0; k < NV; k++)
            _mm512_storeu_ps(out + f * WG_TB + 16 * k, acc[f][k]);
}

#define WG_PRODUCT_CASE(n, v)                                                                      \
    case n * 4 + v:                                                                                \
        wg_product(n, v, ve, ldv, c, ue, mb + e * WG_NF * WG_TB);                                  \
        break;
#define WG_PRODUCT_CASES(n) WG_PRODUCT_CASE(n, 1) WG_PRODUCT_CASE(n, 2) WG_PRODUCT_CASE(n, 3)

/* The 36 products of a block of tiles (from lane tb, up to 3 vectors of the
 * tt lanes) for filters [f0, f0 + nf) into mb, element by element. */
static void wg_products(const float *v, size_t ldv, size_t c, const float *u, size_t m, size_t f0,
                        size_t nf, size_t tb, size_t tt, float *mb)
{
    size_t nv = (tt - tb + 15) / 16;
    nv = nv > 3 ? 3 : nv;
    for (size_t e = 0; e < 36; e++) {
        const float *ve = v + e * c * ldv + tb, *ue = u + (e * m + f0) * c;
        /* clang-format off */
        switch (nf * 4 + nv) {
            WG_PRODUCT_CASES(1) WG_PRODUCT_CASES(2) WG_PRODUCT_CASES(3)
            WG_PRODUCT_CASES(4) WG_PRODUCT_CASES(5) WG_PRODUCT_CASES(6)
            WG_PRODUCT_CASES(7) WG_PRODUCT_CASES(8)
        }
        /* clang-format on */
    }
}

/* A^T M A of one vector of products (its 36 elements from base, es floats
 * apart), then the bias, the affine map and the relu (dconv_finish, as the
 * direct sum's; vectors, one value per lane): the R x R outputs, o[R row +
 * column], with at the transform along one direction (6 values to R).
 * F(4x4, 3x3)'s is wg_tile_out; F(2x2, 5x5) takes it with its own
 * (winograd5_avx512.c); the one-image kernels with the filters in the lanes
 * call it too (winograd1_avx512.c). */
static inline __attribute__((always_inline)) void
wg_tile_out_at(const int R, void (*at)(const __m512 *, __m512 *), const float *base, size_t es,
               __m512 bias, int affine, __m512 sc, __m512 sh, int relu, __m512 *o)
{
    __m512 tmp[4][6], m[6], t[4];
    for (int j = 0; j < 6; j++) {
        for (int i = 0; i < 6; i++)
            m[i] = _mm512_loadu_ps(base + (size_t)(i * 6 + j) * es);
        at(m, t);
        for (int r = 0; r < R; r++)
            tmp[r][j] = t[r];
    }
    for (int r = 0; r < R; r++) {
        at(tmp[r], t);
        for (int q = 0; q < R; q++)
            o[r * R + q] = dconv_finish(t[q], bias, affine, sc, sh, relu);
    }
}

/* wg_tile_out_at for filter f of the block's products mb (filter f's
 * element e at (e WG_NF + f) WG_TB), 16 tiles from lane offset k16, its
 * bias, affine map and relu given per filter. */
static inline __attribute__((always_inline)) void
wg_tile_out_by(const int R, void (*at)(const __m512 *, __m512 *), const float *mb, size_t f,
               size_t k16, float bias, const float *sc, const float *sh, int relu, __m512 *o)
{
    wg_tile_out_at(R, at, mb + f * WG_TB + k16, WG_NF * WG_TB, _mm512_set1_ps(bias), sc != NULL,
                   _mm512_set1_ps(sc ? *sc : 1.0f), _mm512_set1_ps(sc ? *sh : 0.0f), relu, o);
}

static inline __attribute__((always_inline)) void wg_tile_out(const float *mb, size_t f, size_t k16,
                                                              float bias, const float *sc,
                                                              const float *sh, int relu,
                                                              __m512 o[4][4])
{
    wg_tile_out_by(4, wg_at, mb, f, k16, bias, sc, sh, relu, &o[0][0]);
}

/* The maximum of a 2x2 window's outputs, top row a b, bottom row c d, as
 * pool2_fwd_row takes it: the top row's pair, the bottom row's, then the
 * two. */
static inline __m512 wg_max4(__m512 a, __m512 b, __m512 c, __m512 d)
{
    return _mm512_max_ps(_mm512_max_ps(d, c), _mm512_max_ps(b, a));
}

/* wg_tile_out into the output phase planes yd (16 rows of ldy). */
static void wg_output(const float *mb, size_t f, size_t k16, float bias, const float *sc,
                      const float *sh, int relu, float *yd, size_t ldy)
{
    __m512 o[4][4];
    wg_tile_out(mb, f, k16, bias, sc, sh, relu, o);
    for (int r = 0; r < 4; r++)
        for (int q = 0; q < 4; q++)
            _mm512_storeu_ps(yd + (size_t)(r * 4 + q) * ldy + k16, o[r][q]);
}

/* wg_tile_out followed by 2x2 max pooling with stride 2 inside each tile (a
 * forward-only network's pooling after the convolution, conv_fwd_pool;
 * wg_max4), into the pooled phase planes yd (4 rows of ldy: the tile's
 * pooled row 0 columns 0 and 1, then row 1's). */
static void wg_output_pool(const float *mb, size_t f, size_t k16, float bias, const float *sc,
                           const float *sh, int relu, float *yd, size_t ldy)
{
    __m512 o[4][4];
    wg_tile_out(mb, f, k16, bias, sc, sh, relu, o);
    for (int pr = 0; pr < 2; pr++)
        for (int pq = 0; pq < 2; pq++) {
            const __m512 *t = o[2 * pr], *u = o[2 * pr + 1];
            _mm512_storeu_ps(yd + (size_t)(pr * 2 + pq) * ldy + k16,
                             wg_max4(t[2 * pq], t[2 * pq + 1], u[2 * pq], u[2 * pq + 1]));
        }
}

/* One filter's pooled phase planes yd (4 rows of ldy, the sample's tiles
 * from t0; wg_output_pool) interleaved into rows [i0, i1) of its pooled
 * plane y (pw wide): per pooled row, the two phases of up to 16 tiles
 * become 32 columns. */
static void wg_place_pool(const float *yd, size_t ldy, size_t t0, const wg_shape *s, size_t i0,
                          size_t i1, size_t pw, float *y)
{
    const __m512i lo = _mm512_loadu_si512(lo_idx), hi = _mm512_loadu_si512(hi_idx);
    for (size_t k = 0; 16 * k < s->tw; k++) {
        __mmask16 mk = tail_mask(s->tw - 16 * k < 16 ? s->tw - 16 * k : 16), mo[2];
        for (size_t v = 0; v < 2; v++) {
            size_t col = 32 * k + 16 * v;
            mo[v] = col < pw ? tail_mask(pw - col < 16 ? pw - col : 16) : 0;
        }
        for (size_t i = i0; i < i1; i++) {
            const float *src = yd + (i & 1) * 2 * ldy + t0 + (i >> 1) * s->tw + 16 * k;
            float *dst = y + i * pw + 32 * k;
            __m512 a = _mm512_maskz_loadu_ps(mk, src), b = _mm512_maskz_loadu_ps(mk, src + ldy);
            _mm512_mask_storeu_ps(dst, mo[0], _mm512_permutex2var_ps(a, lo, b));
            if (mo[1])
                _mm512_mask_storeu_ps(dst + 16, mo[1], _mm512_permutex2var_ps(a, hi, b));
        }
    }
}

/* One filter's output phase planes yd (16 rows of ldy, the sample's tiles
 * from t0) interleaved into rows [i0, i1) of its plane y (ow wide): per
 * output row, four phases of up to 16 tiles become 64 columns with two
 * levels of permutes. */
static void wg_place(const float *yd, size_t ldy, size_t t0, const wg_shape *s, size_t i0,
                     size_t i1, size_t ow, float *y)
{
    const __m512i lo = _mm512_loadu_si512(lo_idx), hi = _mm512_loadu_si512(hi_idx);
    for (size_t k = 0; 16 * k < s->tw; k++) {
        __mmask16 mk = tail_mask(s->tw - 16 * k < 16 ? s->tw - 16 * k : 16), mo[4];
        size_t nv = 0;
        for (size_t v = 0; v < 4; v++) {
            size_t col = 64 * k + 16 * v;
            mo[v] = col < ow ? tail_mask(ow - col < 16 ? ow - col : 16) : 0;
            nv += col < ow;
        }
        for (size_t i = i0; i < i1; i++) {
            const float *src = yd + (i & 3) * 4 * ldy + t0 + (i >> 2) * s->tw + 16 * k;
            float *dst = y + i * ow + 64 * k;
            __m512 a = _mm512_maskz_loadu_ps(mk, src), b = _mm512_maskz_loadu_ps(mk, src + ldy),
                   c = _mm512_maskz_loadu_ps(mk, src + 2 * ldy),
                   d = _mm512_maskz_loadu_ps(mk, src + 3 * ldy);
            /* Columns [0, 32) from the first 8 tiles, the rest from the next. */
            __m512 ac = _mm512_permutex2var_ps(a, lo, c), bd = _mm512_permutex2var_ps(b, lo, d);
            _mm512_mask_storeu_ps(dst, mo[0], _mm512_permutex2var_ps(ac, lo, bd));
            if (nv > 1)
                _mm512_mask_storeu_ps(dst + 16, mo[1], _mm512_permutex2var_ps(ac, hi, bd));
            if (nv > 2) {
                ac = _mm512_permutex2var_ps(a, hi, c), bd = _mm512_permutex2var_ps(b, hi, d);
                _mm512_mask_storeu_ps(dst + 32, mo[2], _mm512_permutex2var_ps(ac, lo, bd));
                if (nv > 3)
                    _mm512_mask_storeu_ps(dst + 48, mo[3], _mm512_permutex2var_ps(ac, hi, bd));
            }
        }
    }
}

/* A thread's area, as wg_thread_floats counts it: phase planes, V, the
 * products of a block, the output phase planes of a filter group. */
typedef struct wg_area {
    float *xs, *v, *mb, *yd;
    size_t ldv;
} wg_area;

static wg_area wg_area_of(const cn_win *g, float *area)
{
    wg_shape s = wg_shape_of(g);
    wg_area a;
    a.ldv = wg_row(wg_unit(g, &s) * s.tiles);
    a.xs = area, a.v = a.xs + WG_PLANES * s.q, a.mb = a.v + 36 * g->c * a.ldv;
    a.yd = a.mb + 36 * WG_NF * WG_TB;
    return a;
}

/* Planes of 4 tile columns and at most 4 tile rows (outputs 13 to 16 wide
 * and at most 16 high: mnist-best's and fashion-best's 14 x 14 layers,
 * cifar10's 16 x 16): their tiles fill one vector (lane 4 ti + tj), and
 * wg_input4 builds it straight from the padded rows, without phase planes
 * (whose overlapping stores, and the loads across them, cost 2-3 times the
 * transform itself there). */
static int wg_four(const cn_win *g, const wg_shape *s)
{
    return s->tw == 4 && s->th <= 4 && g->pad <= 2 && g->pad + g->w <= 32;
}

/* Padded row r of the plane x in n vectors (columns 0 to 16 n - 1; in[v]:
 * the lanes of vector v inside the input), zero outside it and where ym (a
 * fused relu's output, as wg_split) is not positive. */
static inline __attribute__((always_inline)) void wg_prow(const float *x, const float *ym,
                                                          const cn_win *g, size_t r,
                                                          const __mmask16 *in, int n, __m512 *out)
{
    for (int v = 0; v < n; v++)
        out[v] = _mm512_setzero_ps();
    if (r < g->pad || r - g->pad >= g->h)
        return;
    const float *row = x + (r - g->pad) * g->w - (long)g->pad;
    for (int v = 0; v < n; v++) {
        __mmask16 k = in[v];
        if (ym) {
            const float *ys = ym + (r - g->pad) * g->w - (long)g->pad + 16 * v;
            k = _mm512_mask_cmp_ps_mask(k, _mm512_maskz_loadu_ps(k, ys), _mm512_setzero_ps(),
                                        _CMP_GT_OQ);
        }
        out[v] = _mm512_maskz_loadu_ps(k, row + 16 * v);
    }
}

/* Lanes 0-7 of a permute of rows a and b: element j of tile column tj
 * (padded column 4 tj + j) of a in lanes tj, of b in lanes 4 + tj; lanes
 * 8-15 the same for element j + 1. */
static const int32_t wg4_idx[2][16] = {
    {0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29},
    {2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31},
};

/* The second half of an input transform: B^T along the columns of the
 * rows' transforms tmp (tmp[i][j]: row i, column j), into V's 36 element
 * rows (estride floats apart). */
static inline __attribute__((always_inline)) void wg_bt_cols(__m512 tmp[6][6], float *v,
                                                             size_t estride)
{
    for (int j = 0; j < 6; j++) {
        __m512 col[6], r[6];
        for (int i = 0; i < 6; i++)
            col[i] = tmp[i][j];
        wg_bt(col, r);
        for (int i = 0; i < 6; i++)
            _mm512_storeu_ps(v + (size_t)(i * 6 + j) * estride, r[i]);
    }
}

/* Two columns (elements j and j + 1, as idx picks them) of the 16 tiles of
 * a vector, lane 4 ti + tj, from the padded rows r[ti] under the 4 tile
 * rows: two permutes, then two 128-bit shuffles. */
static inline __attribute__((always_inline)) void wg_cols4(const __m512 *r, __m512i idx,
                                                           __m512 *out)
{
    __m512 ab = _mm512_permutex2var_ps(r[0], idx, r[1]),
           cd = _mm512_permutex2var_ps(r[2], idx, r[3]);
    out[0] = _mm512_shuffle_f32x4(ab, cd, 0x44);
    out[1] = _mm512_shuffle_f32x4(ab, cd, 0xee);
}

/* wg_split and wg_input in one for a plane that wg_four accepts: for each
 * row i of the 6x6 input tile, the four padded rows 4 ti + i, their
 * elements by two permutes and two 128-bit shuffles per pair of columns;
 * the transform along the rows first, then along the columns. */
static void wg_input4(const float *x, const float *ym, const cn_win *g, const wg_shape *s, float *v,
                      size_t estride)
{
    const __m512i i01 = _mm512_loadu_si512(wg4_idx[0]), i23 = _mm512_loadu_si512(wg4_idx[1]);
    size_t pad = g->pad, end = pad + g->w, hi0 = end < 16 ? end : 16, hi1 = end > 16 ? end - 16 : 0;
    const __mmask16 in[2] = {(__mmask16)(tail_mask(hi0) & ~tail_mask(pad)), tail_mask(hi1)};
    __m512 tmp[6][6];
    for (size_t i = 0; i < 6; i++) {
        __m512 lo[4], sh[4], d[6];
        for (size_t ti = 0; ti < 4; ti++) {
            __m512 rv[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
            if (ti < s->th)
                wg_prow(x, ym, g, 4 * ti + i, in, 2, rv);
            lo[ti] = rv[0];
            /* Padded columns 4 to 19: tile columns 4 and 5 as 0 and 1. */
            sh[ti] = _mm512_castsi512_ps(
                _mm512_alignr_epi32(_mm512_castps_si512(rv[1]), _mm512_castps_si512(lo[ti]), 4));
        }
        wg_cols4(lo, i01, d);
        wg_cols4(lo, i23, d + 2);
        wg_cols4(sh, i01, d + 4);
        wg_bt(d, tmp[i]);
    }
    wg_bt_cols(tmp, v, estride);
}

/* Planes of 8 tile columns (outputs 29 to 32 wide: cifar10's 32 x 32
 * stage): each vector of tiles is two tile rows (lane 8 (ti mod 2) + tj),
 * which wg_input8 builds from the padded rows as wg_input4 does. */
static int wg_eight(const cn_win *g, const wg_shape *s)
{
    return s->tw == 8 && g->pad <= 2 && g->pad + g->w <= 48;
}

/* The vectors of one sample's tiles that threads may share out (wg_inputs
 * and wg_outputs take a range of them), or 0 where its tiles are made
 * another way: planes that wg_eight accepts (25 to 28 wide: fashion-best's
 * and mnist-best's 28 x 28 layers, 4 vectors). */
static size_t wg_shared_vecs(const cn_win *g)
{
    wg_shape s = wg_shape_of(g);
    return wg_eight(g, &s) ? s.vecs : 0;
}

/* wg_split and wg_input in one for a plane that wg_eight accepts: its
 * vectors [k0, k1) (two tile rows each). */
static void wg_input8(const float *x, const float *ym, const cn_win *g, const wg_shape *s, float *v,
                      size_t estride, size_t k0, size_t k1)
{
    /* wg4_idx read as one row of 32 columns: 4 tj + j in lanes 0-7. */
    const __m512i i01 = _mm512_loadu_si512(wg4_idx[0]), i23 = _mm512_loadu_si512(wg4_idx[1]);
    size_t pad = g->pad, end = pad + g->w;
    __mmask16 in[3];
    for (size_t k = 0; k < 3; k++) {
        size_t c0 = 16 * k, hi = end > c0 ? (end - c0 < 16 ? end - c0 : 16) : 0;
        in[k] = (__mmask16)(tail_mask(hi) & (k ? 0xffff : ~tail_mask(pad)));
    }
    for (size_t k = k0; k < k1 && k < s->vecs; k++) {
        __m512 tmp[6][6];
        for (size_t i = 0; i < 6; i++) {
            /* Each tile row's padded row in two vectors (32 columns), as
             * wg_cols4 takes four rows; sh: columns 4 to 35 (tile columns
             * 4 and 5 as 0 and 1). */
            __m512 lo[4], sh[4], d[6];
            for (size_t h = 0; h < 2; h++) {
                __m512 row[3] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
                if (2 * k + h < s->th)
                    wg_prow(x, ym, g, 4 * (2 * k + h) + i, in, 3, row);
                for (int u = 0; u < 2; u++) {
                    lo[2 * h + u] = row[u];
                    sh[2 * h + u] = _mm512_castsi512_ps(_mm512_alignr_epi32(
                        _mm512_castps_si512(row[u + 1]), _mm512_castps_si512(row[u]), 4));
                }
            }
            wg_cols4(lo, i01, d);
            wg_cols4(lo, i23, d + 2);
            wg_cols4(sh, i01, d + 4);
            wg_bt(d, tmp[i]);
        }
        wg_bt_cols(tmp, v + 16 * k, estride);
    }
}

/* Planes of 2 x 2 tiles (outputs 5 to 8 wide and high: cifar10's 8 x 8
 * stage) whose padded rows fit 16 lanes: four tiles a plane, so four
 * samples' planes of one channel fill a vector (lane 4 q + 2 ti + tj,
 * sample q), as V holds them. */
static int wg_two(const cn_win *g, const wg_shape *s)
{
    return s->tw == 2 && s->th == 2 && g->pad <= 2 && g->pad + g->w <= 16;
}

/* From four samples' rows r[q][ti] (the padded rows under tile row ti):
 * elements j of their tiles in out[j], by one permute a sample (lane 4 j +
 * 2 ti + tj of p[q] holds element j of tile (ti, tj)), then a transpose of
 * 128-bit blocks; with idx picking elements j0 to j0 + 3 (n of them). */
static inline __attribute__((always_inline)) void wg_cols2(__m512 r[4][2], __m512i idx, int n,
                                                           __m512 *out)
{
    __m512 p[4];
    for (int q = 0; q < 4; q++)
        p[q] = _mm512_permutex2var_ps(r[q][0], idx, r[q][1]);
    __m512 lo01 = _mm512_shuffle_f32x4(p[0], p[1], 0x44),
           lo23 = _mm512_shuffle_f32x4(p[2], p[3], 0x44);
    out[0] = _mm512_shuffle_f32x4(lo01, lo23, 0x88);
    out[1] = _mm512_shuffle_f32x4(lo01, lo23, 0xdd);
    if (n < 4)
        return;
    __m512 hi01 = _mm512_shuffle_f32x4(p[0], p[1], 0xee),
           hi23 = _mm512_shuffle_f32x4(p[2], p[3], 0xee);
    out[2] = _mm512_shuffle_f32x4(hi01, hi23, 0x88);
    out[3] = _mm512_shuffle_f32x4(hi01, hi23, 0xdd);
}

/* Elements 0-3 and 4-5 of 2 x 2 tiles from rows a (ti = 0) and b (ti = 1):
 * lane 4 j + 2 ti + tj takes padded column 4 tj + j of its row. */
static const int32_t wg2_idx[2][16] = {
    {0, 4, 16, 20, 1, 5, 17, 21, 2, 6, 18, 22, 3, 7, 19, 23},
    {4, 8, 20, 24, 5, 9, 21, 25, 4, 8, 20, 24, 5, 9, 21, 25},
};

/* The padded rows 4 ti + i (ti = 0, 1) of four samples' planes x[q] (NULL:
 * no sample, zero), masked by ym[q] as wg_split: one vector each. */
static inline __attribute__((always_inline)) void wg_rows2(const float *const *x,
                                                           const float *const *ym, const cn_win *g,
                                                           size_t i, __mmask16 in0, __m512 r[4][2])
{
    for (int q = 0; q < 4; q++)
        for (size_t ti = 0; ti < 2; ti++) {
            r[q][ti] = _mm512_setzero_ps();
            if (x[q])
                wg_prow(x[q], ym ? ym[q] : NULL, g, 4 * ti + i, &in0, 1, &r[q][ti]);
        }
}

/* wg_split and wg_input in one for the planes x[q] of four samples (q < 4;
 * NULL: no sample, zero) of a channel that wg_two accepts, masked by ym[q]
 * as wg_split: their 16 tiles' transforms into V, lanes 4 q + 2 ti + tj. */
static void wg_input2(const float *const *x, const float *const *ym, const cn_win *g, float *v,
                      size_t estride)
{
    const __m512i ia = _mm512_loadu_si512(wg2_idx[0]), ib = _mm512_loadu_si512(wg2_idx[1]);
    size_t pad = g->pad;
    const __mmask16 in0 = (__mmask16)(tail_mask(pad + g->w) & ~tail_mask(pad));
    __m512 tmp[6][6];
    for (size_t i = 0; i < 6; i++) {
        __m512 r[4][2], d[6];
        wg_rows2(x, ym, g, i, in0, r);
        wg_cols2(r, ia, 4, d);
        wg_cols2(r, ib, 2, d + 4);
        wg_bt(d, tmp[i]);
    }
    wg_bt_cols(tmp, v, estride);
}

/* The input transforms of samples x[0, ns) (c, h, w each; masked by ym as
 * wg_split) into v (rows of ldv), through the phase planes xs. */
static void wg_inputs(const cn_win *g, const float *x, const float *ym, size_t ns, float *xs,
                      float *v, size_t ldv, size_t k0, size_t k1)
{
    wg_shape s = wg_shape_of(g);
    size_t hw = g->h * g->w, planes = ns * g->c;
    int four = wg_four(g, &s), eight = wg_eight(g, &s);
    if (wg_two(g, &s)) {
        /* Four samples of a channel at a time. */
        for (size_t s0 = 0; s0 < ns; s0 += 4)
            for (size_t ch = 0; ch < g->c; ch++) {
                const float *xq[4] = {NULL, NULL, NULL, NULL}, *yq[4] = {NULL, NULL, NULL, NULL};
                for (size_t q = 0; q < 4 && s0 + q < ns; q++) {
                    size_t k = (s0 + q) * g->c + ch;
                    xq[q] = x + k * hw;
                    yq[q] = ym ? ym + k * hw : NULL;
                }
                wg_input2(xq, ym ? yq : NULL, g, v + ch * ldv + s0 * s.tiles, g->c * ldv);
            }
        return;
    }
    wg_split_tails(&s, xs);
    /* The part of each plane read: all of it, or for vectors [k0, k1) of a
     * plane that wg_eight accepts their padded rows 8 k0 to 8 k1 + 1. */
    size_t lo = 0, hi = hw;
    if (eight && (k0 > 0 || k1 < s.vecs)) {
        size_t r0 = 8 * k0 > g->pad ? 8 * k0 - g->pad : 0, r1 = 8 * k1 + 2 - g->pad;
        lo = r0 * g->w, hi = r1 < g->h ? r1 * g->w : hw;
    }
    for (size_t k = 0; k < planes; k++) {
        const float *plane = x + k * hw;
        /* That part of the next plane towards the cache (a layer's input was
         * written long ago), and no more: in a team pass the rest is the
         * other core's, which its next pass would have to take back from
         * this core's cache line by line (writing lines another core holds
         * ran at 6 GB/s on the Zen 5 VM: fashion-best's first layer copied
         * its band of rows out in 6 us instead of 0.9). */
        for (size_t i = lo; k + 1 < planes && i < hi; i += 16)
            __builtin_prefetch(plane + hw + i, 0, 2);
        float *vk = v + (k % g->c) * ldv + (k / g->c) * s.tiles;
        if (four) {
            wg_input4(plane, ym ? ym + k * hw : NULL, g, &s, vk, g->c * ldv);
            continue;
        }
        if (eight) {
            wg_input8(plane, ym ? ym + k * hw : NULL, g, &s, vk, g->c * ldv, k0, k1);
            continue;
        }
        wg_split(plane, ym ? ym + k * hw : NULL, g, &s, 1, xs);
        wg_input(xs, &s, vk, g->c * ldv);
    }
}

/* Filters [fa, fa + mt) of y (ns samples of m, oh, ow) from the input
 * transforms v of the ns samples and the filters' transforms u (rows of c,
 * wg_filters), with the bias (none if NULL), the affine map and the relu: filter groups of
 * up to 8, blocks of 48 tiles, then each filter's planes interleaved.  With
 * pool, y is the outputs max-pooled over 2x2 windows with stride 2 instead
 * (ns samples of m, oh / 2, ow / 2), pooled within each tile. */
static void wg_outputs(const cn_win *g, size_t m, size_t ns, const float *v, size_t ldv,
                       const float *u, size_t fa, size_t mt, const float *b, const float *scale,
                       const float *shift, int relu, int pool, float *y, float *mb, float *yd,
                       size_t k0, size_t k1)
{
    wg_shape s = wg_shape_of(g);
    size_t c = g->c, poh = g->oh / 2, pw = g->ow / 2;
    size_t p = pool ? poh * pw : g->oh * g->ow, tt = ns * s.tiles;
    /* One sample's vectors [k0, k1) (wg_inputs): its lanes [l0, tt), tile
     * rows [r0, r1), output rows (4 a tile row, 2 pooled) from 4 r0 on. */
    size_t l0 = 0, r0 = 0, r1 = s.th;
    if (ns == 1 && (k0 > 0 || k1 < s.vecs)) {
        l0 = 16 * k0, tt = 16 * k1 < tt ? 16 * k1 : tt;
        r0 = l0 / s.tw, r1 = (tt + s.tw - 1) / s.tw;
    }
    size_t i0 = pool ? 2 * r0 : 4 * r0, i1 = pool ? 2 * r1 : 4 * r1, oh = pool ? poh : g->oh;
    i1 = i1 < oh ? i1 : oh;
    size_t groups = (mt + WG_NF - 1) / WG_NF;
    for (size_t gi = 0; gi < groups; gi++) {
        size_t f0 = fa + mt * gi / groups, nf = fa + mt * (gi + 1) / groups - f0;
        for (size_t tb = l0; tb < tt; tb += WG_TB) {
            wg_products(v, ldv, c, u, m, f0, nf, tb, tt, mb);
            for (size_t f = 0; f < nf; f++)
                for (size_t k16 = 0; k16 < WG_TB && tb + k16 < tt; k16 += 16) {
                    float bias = b ? b[f0 + f] : 0.0f;
                    const float *sc = scale ? scale + f0 + f : NULL;
                    const float *sh = scale ? shift + f0 + f : NULL;
                    if (pool)
                        wg_output_pool(mb, f, k16, bias, sc, sh, relu, yd + f * 16 * ldv + tb, ldv);
                    else
                        wg_output(mb, f, k16, bias, sc, sh, relu, yd + f * 16 * ldv + tb, ldv);
                }
        }
        for (size_t sm = 0; sm < ns; sm++)
            for (size_t f = 0; f < nf; f++) {
                float *yf = y + (sm * m + f0 + f) * p;
                if (pool)
                    wg_place_pool(yd + f * 16 * ldv, ldv, sm * s.tiles, &s, i0, i1, pw, yf);
                else
                    wg_place(yd + f * 16 * ldv, ldv, sm * s.tiles, &s, i0, i1, g->ow, yf);
            }
    }
}

/* ------------------------------------------------------ weight gradient
 *
 * Y = A^T (U .* V) A is linear in U = G g G^T, so the gradient of the loss
 * with respect to g is G^T [sum over tiles of (A dY A^T) .* V] G: the
 * output gradient's tiles transformed (D = A dY A^T, 6x6 from 4x4), then per
 * element e a product Z[e] (m x c) = D[e] (m x tiles) V[e]^T (tiles x c)
 * (the blocked GEMM, its B given transposed), then G^T Z G per filter and
 * channel. */

/* r = A d along one direction (6 from 4): d0, d0+d1+d2+d3, d0-d1+d2-d3,
 * d0+2d1+4d2+8d3, d0-2d1+4d2-8d3, d3. */
static inline __attribute__((always_inline)) void wg_a(const __m512 *d, __m512 *r)
{
    __m512 s02 = _mm512_add_ps(d[0], d[2]), s13 = _mm512_add_ps(d[1], d[3]);
    __m512 a = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), d[2], d[0]);
    __m512 b =
        _mm512_mul_ps(_mm512_set1_ps(2.0f), _mm512_fmadd_ps(_mm512_set1_ps(4.0f), d[3], d[1]));
    r[0] = d[0];
    r[1] = _mm512_add_ps(s02, s13);
    r[2] = _mm512_sub_ps(s02, s13);
    r[3] = _mm512_add_ps(a, b);
    r[4] = _mm512_sub_ps(a, b);
    r[5] = d[3];
}

/* r = G^T z along one direction (3 from 6): z0/4 - (z1+z2)/6 + (z3+z4)/24,
 * (z2-z1)/6 + (z3-z4)/12, -(z1+z2)/6 + (z3+z4)/6 + z5. */
static inline __attribute__((always_inline)) void wg_gt(const __m512 *z, __m512 *r)
{
    __m512 s12 = _mm512_add_ps(z[1], z[2]), d21 = _mm512_sub_ps(z[2], z[1]);
    __m512 s34 = _mm512_add_ps(z[3], z[4]), d34 = _mm512_sub_ps(z[3], z[4]);
    __m512 sixth = _mm512_set1_ps(1.0f / 6);
    r[0] = _mm512_fmadd_ps(_mm512_set1_ps(0.25f), z[0],
                           _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 24), s34,
                                           _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6), s12)));
    r[1] = _mm512_fmadd_ps(sixth, d21, _mm512_mul_ps(_mm512_set1_ps(1.0f / 12), d34));
    r[2] = _mm512_add_ps(_mm512_mul_ps(sixth, _mm512_sub_ps(s34, s12)), z[5]);
}

/* D[e][0, tiles) (estride floats between elements) = A dY A^T of every tile
 * of one filter's output-gradient phase planes ys (wg_split of dy with no
 * padding: plane r * 4 + q holds (4 ti + r, 4 tj + q) at ti * tw + tj). */
static void wg_grad(const float *ys, const wg_shape *s, float *d, size_t estride)
{
    for (size_t k = 0; k < s->vecs; k++) {
        __m512 tmp[6][4], in[4], r[6];
        size_t base = 16 * k;
        for (int q = 0; q < 4; q++) {
            for (int i = 0; i < 4; i++)
                in[i] = _mm512_loadu_ps(ys + (size_t)(i * 4 + q) * s->q + base);
            wg_a(in, r);
            for (int i = 0; i < 6; i++)
                tmp[i][q] = r[i];
        }
        for (int i = 0; i < 6; i++) {
            wg_a(tmp[i], r);
            for (int j = 0; j < 6; j++)
                _mm512_storeu_ps(d + (size_t)(i * 6 + j) * estride + base, r[j]);
        }
    }
}

/* The second half of an output gradient's block transform: A along the
 * columns of the rows' transforms tmp (4 rows), into D's 36 element rows. */
static inline __attribute__((always_inline)) void wg_a_cols(__m512 tmp[4][6], float *d,
                                                            size_t estride)
{
    for (int j = 0; j < 6; j++) {
        __m512 col[4], r[6];
        for (int i = 0; i < 4; i++)
            col[i] = tmp[i][j];
        wg_a(col, r);
        for (int i = 0; i < 6; i++)
            _mm512_storeu_ps(d + (size_t)(i * 6 + j) * estride, r[i]);
    }
}

/* wg_split (not whole) and wg_grad in one for dy's planes that wg_four
 * accepts (as an unpadded input: 4 tile columns, at most 4 tile rows): the
 * rows of each tile's 4 x 4 block as wg_input4 takes them, then the
 * transform along the rows first, then along the columns. */
static void wg_grad4(const float *dy, const float *ym, const cn_win *g, const wg_shape *s, float *d,
                     size_t estride)
{
    const __m512i i01 = _mm512_loadu_si512(wg4_idx[0]), i23 = _mm512_loadu_si512(wg4_idx[1]);
    const __mmask16 in0 = tail_mask(g->w < 16 ? g->w : 16);
    __m512 tmp[4][6];
    for (size_t i = 0; i < 4; i++) {
        __m512 lo[4], e[4];
        for (size_t ti = 0; ti < 4; ti++) {
            lo[ti] = _mm512_setzero_ps();
            if (ti < s->th)
                wg_prow(dy, ym, g, 4 * ti + i, &in0, 1, &lo[ti]);
        }
        wg_cols4(lo, i01, e);
        wg_cols4(lo, i23, e + 2);
        wg_a(e, tmp[i]);
    }
    wg_a_cols(tmp, d, estride);
}

/* wg_split (not whole) and wg_grad in one for dy's planes that wg_eight
 * accepts as an unpadded input, the rows taken as wg_input8 takes them. */
static void wg_grad8(const float *dy, const float *ym, const cn_win *g, const wg_shape *s, float *d,
                     size_t estride)
{
    const __m512i i01 = _mm512_loadu_si512(wg4_idx[0]), i23 = _mm512_loadu_si512(wg4_idx[1]);
    const __mmask16 in[2] = {tail_mask(g->w < 16 ? g->w : 16),
                             tail_mask(g->w > 16 ? g->w - 16 : 0)};
    for (size_t k = 0; k < s->vecs; k++) {
        __m512 tmp[4][6];
        for (size_t i = 0; i < 4; i++) {
            __m512 row[4], e[4]; /* two tile rows' padded rows, two vectors each */
            for (size_t h = 0; h < 2; h++) {
                row[2 * h] = row[2 * h + 1] = _mm512_setzero_ps();
                if (2 * k + h < s->th)
                    wg_prow(dy, ym, g, 4 * (2 * k + h) + i, in, 2, row + 2 * h);
            }
            wg_cols4(row, i01, e);
            wg_cols4(row, i23, e + 2);
            wg_a(e, tmp[i]);
        }
        wg_a_cols(tmp, d + 16 * k, estride);
    }
}

/* wg_split (not whole) and wg_grad in one for four samples' planes dy[q]
 * of a filter (NULL: none) that wg_two accepts as an unpadded input, as
 * wg_input2 takes them. */
static void wg_grad2(const float *const *dy, const float *const *ym, const cn_win *g, float *d,
                     size_t estride)
{
    const __m512i ia = _mm512_loadu_si512(wg2_idx[0]);
    const __mmask16 in0 = tail_mask(g->w);
    __m512 tmp[4][6];
    for (size_t i = 0; i < 4; i++) {
        __m512 r[4][2], e[4];
        wg_rows2(dy, ym, g, i, in0, r);
        wg_cols2(r, ia, 4, e);
        wg_a(e, tmp[i]);
    }
    wg_a_cols(tmp, d, estride);
}

/* D of one plane of dy (an unpadded input as g) into d: from its rows
 * where wg_four or wg_eight accept it, else through the phase planes xs
 * (wg_split, not whole, then wg_grad); wg_two's planes go four at a time
 * (wg_grad2). */
static void wg_grad_plane(const float *dy, const float *ym, const cn_win *g, const wg_shape *s,
                          float *xs, float *d, size_t estride)
{
    if (wg_four(g, s))
        wg_grad4(dy, ym, g, s, d, estride);
    else if (wg_eight(g, s))
        wg_grad8(dy, ym, g, s, d, estride);
    else {
        wg_split(dy, ym, g, s, 0, xs);
        wg_grad(xs, s, d, estride);
    }
}

/* dw (m, c, 3, 3) = G^T Z G of z[e][f][ch] (rows of c), 16 channels at a
 * time, their 9 taps transposed back into place. */
static void wg_filters_back(const float *z, size_t m, size_t c, float *dw)
{
    for (size_t f = 0; f < m; f++)
        for (size_t c0 = 0; c0 < c; c0 += 16) {
            size_t nc = c - c0 < 16 ? c - c0 : 16;
            __mmask16 mk = tail_mask(nc);
            __m512 t[3][6], col[6], r[3], tap[16];
            for (int j = 0; j < 6; j++) {
                for (int i = 0; i < 6; i++)
                    col[i] = _mm512_maskz_loadu_ps(mk, z + ((size_t)(i * 6 + j) * m + f) * c + c0);
                wg_gt(col, r);
                for (int a = 0; a < 3; a++)
                    t[a][j] = r[a];
            }
            for (int a = 0; a < 3; a++) {
                wg_gt(t[a], r);
                for (int b = 0; b < 3; b++)
                    tap[a * 3 + b] = r[b];
            }
            for (int l = 9; l < 16; l++)
                tap[l] = _mm512_setzero_ps();
            transpose16(tap);
            for (size_t l = 0; l < nc; l++)
                _mm512_mask_storeu_ps(dw + (f * c + c0 + l) * 9, 0x1ff, tap[l]);
        }
}

/* Samples transformed at a time for wg_dw_products: V and D of a unit in
 * WG_DW_FLOATS (1 MB, so that an element's rows, read again for every
 * block of filters or channels, stay in the L2 cache), at most
 * WG_DW_MAX_UNIT.  Units of 2 MB were no faster, and took fashion-best's
 * scratch from 4.4 to 7.0 MiB.  Units are cut inside the chunks of
 * samples. */
#define WG_DW_FLOATS   (256 * 1024)
#define WG_DW_MAX_UNIT 16
static size_t wg_dw_lanes_unit(const cn_win *g, size_t m)
{
    wg_shape s = wg_shape_of(g);
    size_t u = WG_DW_FLOATS / (36 * (g->c + m) * s.tiles);
    return u < 1 ? 1 : u > WG_DW_MAX_UNIT ? WG_DW_MAX_UNIT : u;
}

/* Z[e] (m x c) from a unit's D[e] (m rows) and V[e] (c rows) by
 * wg_dw_products (tiles along the lanes) rather than the GEMM: when a unit
 * has 96 tiles or more, so that each dot product runs over 6 vectors or
 * more before its lanes are added up, and the layer has fewer than 64
 * channels or filters (the GEMM's register block is 14 rows by 32
 * columns, half empty with 16 channels).  The weight gradient of 16
 * channels at 28 x 28 (mnist-best's second layer) took 0.78 of the GEMM's
 * time, of 24 channels at 28 x 28 (fashion-best's) about 0.89, of 32 at 14
 * x 14 0.97; 32 at 32 x 32 were level, 64 at 16 x 16 level or slower
 * (Intel Xeon, session 41). */
static int wg_dw_by_lanes(const cn_win *g, size_t m)
{
    wg_shape s = wg_shape_of(g);
    return wg_dw_lanes_unit(g, m) * s.tiles >= 96 && (g->c < 64 || m < 64);
}

/* Samples transformed at a time for the weight gradient. */
static size_t wg_dw_unit(const cn_win *g, size_t m)
{
    wg_shape s = wg_shape_of(g);
    return wg_dw_by_lanes(g, m) ? wg_dw_lanes_unit(g, m) : wg_unit(g, &s);
}

/* A thread's area for the weight gradient: phase planes (of x, then of dy),
 * V (36 c rows), D (36 m rows) and Z (36 m c). */
static size_t wg_dw_thread_floats(const cn_win *g, size_t m)
{
    wg_shape s = wg_shape_of(g);
    size_t row = wg_row(wg_dw_unit(g, m) * s.tiles);
    return WG_PLANES * s.q + 36 * (g->c + m) * row + 36 * m * g->c;
}

/* Adds up 16 vectors' lanes: lane 4 q + j of the result is the sum of the
 * lanes of a[4 j + q], by halves of pairs of vectors, then quarters, then
 * pairs of lanes and single lanes (45 instructions for 16 sums). */
static inline __attribute__((always_inline)) __m512 wg_sum16(const __m512 *a)
{
    __m512 b[8], c[4], d[2];
    for (int i = 0; i < 8; i++)
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xee));
    for (int i = 0; i < 4; i++)
        c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xdd));
    for (int i = 0; i < 2; i++)
        d[i] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0x44),
                             _mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0xee));
    return _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], 0x88), _mm512_shuffle_ps(d[0], d[1], 0xdd));
}

/* z[e][f][ch] (rows of c; set when first, else added to) = the sum over
 * tiles [0, tt) of d[e][f][t] v[e][ch][t] (rows of ldv, element e's m rows
 * of d and c rows of v one after another, as wg_grad and wg_input write
 * them), 4 filters by 4 channels at a time:
 * 16 accumulators of 16 tiles' lanes, the last vector's lanes past tt
 * loaded as zeros, then the lanes added up by wg_sum16.  Past the edge
 * (fewer than 4 filters or channels left) the last row is used again and
 * its sums dropped.  The order of the additions is fixed by tt alone. */
static void wg_dw_products(const float *d, const float *v, size_t ldv, size_t m, size_t c,
                           size_t tt, float *z, int first)
{
    size_t full = tt / 16;
    __mmask16 tail = tail_mask(tt % 16);
    for (size_t e = 0; e < 36; e++) {
        const float *de = d + e * m * ldv, *ve = v + e * c * ldv;
        float *ze = z + e * m * c;
        for (size_t f0 = 0; f0 < m; f0 += 4)
            for (size_t c0 = 0; c0 < c; c0 += 4) {
                size_t nf = m - f0 < 4 ? m - f0 : 4, nc = c - c0 < 4 ? c - c0 : 4;
                const float *dr[4], *vr[4];
                for (size_t i = 0; i < 4; i++) {
                    dr[i] = de + (f0 + (i < nf ? i : nf - 1)) * ldv;
                    vr[i] = ve + (c0 + (i < nc ? i : nc - 1)) * ldv;
                }
                /* acc[4 ch + f]: wg_sum16 puts filter f's 4 channels in
                 * quarter f. */
                __m512 acc[16];
                for (int i = 0; i < 16; i++)
                    acc[i] = _mm512_setzero_ps();
                for (size_t k = 0; k <= full; k++) {
                    __mmask16 mk = k < full ? (__mmask16)0xffff : tail;
                    if (!mk)
                        break;
                    size_t at = 16 * k;
                    __m512 dv[4];
                    for (int f = 0; f < 4; f++)
                        dv[f] = _mm512_maskz_loadu_ps(mk, dr[f] + at);
                    for (int ch = 0; ch < 4; ch++) {
                        __m512 vv = _mm512_maskz_loadu_ps(mk, vr[ch] + at);
                        for (int f = 0; f < 4; f++)
                            acc[4 * ch + f] = _mm512_fmadd_ps(dv[f], vv, acc[4 * ch + f]);
                    }
                }
                __m512 r = wg_sum16(acc);
                __mmask16 cols = tail_mask(nc);
                for (size_t f = 0; f < nf; f++) {
                    float *zr = ze + (f0 + f) * c + c0;
                    __m512 q = _mm512_maskz_compress_ps((__mmask16)(0xf << (4 * f)), r);
                    if (!first)
                        q = _mm512_add_ps(q, _mm512_maskz_loadu_ps(cols, zr));
                    _mm512_mask_storeu_ps(zr, cols, q);
                }
            }
    }
}
