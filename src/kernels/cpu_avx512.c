/* cpu_avx512.c - the CPU kernels for processors with AVX-512, in one
 * translation unit compiled with -mavx512f -mavx512vl -mavx512dq -mavx512bw
 * -mfma and chosen at run time.  The GEMM's register kernel is up to 14 rows
 * by 32 columns (28 accumulators in zmm registers), one kernel per row count
 * so that row panels are never padded, with masked loads and stores at the
 * column edge so that B can be read in place. */
#include <immintrin.h>

#define NR       32
#define MR_MAX   14
#define KC       256
#define MC       (MR_MAX * 9)
#define NC       1024
#define DIRECT_B 1

static inline __attribute__((always_inline)) void
kernel_rows(const int mr, size_t kc, const float *restrict a, const float *restrict b, size_t ldb,
            float *restrict c, size_t ldc, size_t nr, float alpha, float beta)
{
    __m512 c0[MR_MAX], c1[MR_MAX];
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
#pragma GCC unroll 14
    for (int i = 0; i < mr; i++)
        c0[i] = c1[i] = _mm512_setzero_ps();
    for (size_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
#pragma GCC unroll 14
        for (int i = 0; i < mr; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
        }
        a += mr;
        b += ldb;
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 14
    for (int i = 0; i < mr; i++) {
        float *row = c + (size_t)i * ldc;
        __m512 r0 = _mm512_mul_ps(va, c0[i]), r1 = _mm512_mul_ps(va, c1[i]);
        if (beta != 0.0f) {
            r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), r0);
            r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), r1);
        }
        _mm512_mask_storeu_ps(row, m0, r0);
        _mm512_mask_storeu_ps(row + 16, m1, r1);
    }
}

#define ROWS(n)                                                                                    \
    case n: kernel_rows(n, kc, a, b, ldb, c, ldc, nr, alpha, beta); break;

static void kernel(size_t mr, size_t kc, const float *a, const float *b, size_t ldb, float *c,
                   size_t ldc, size_t nr, float alpha, float beta)
{
    switch (mr) {
        ROWS(1)
        ROWS(2)
        ROWS(3)
        ROWS(4) ROWS(5) ROWS(6) ROWS(7) ROWS(8) ROWS(9) ROWS(10) ROWS(11) ROWS(12) ROWS(13) ROWS(14)
    }
}

/* 16 x 16 transpose in registers: unpacks, then shuffles of pairs, then of
 * 128-bit lanes. */
static inline void transpose16(__m512 r[16])
{
    __m512 t[16], u[16], v[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 4; i++) {
            v[8 * h + i] = _mm512_shuffle_f32x4(u[8 * h + i], u[8 * h + 4 + i], 0x88);
            v[8 * h + 4 + i] = _mm512_shuffle_f32x4(u[8 * h + i], u[8 * h + 4 + i], 0xDD);
        }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(v[i], v[8 + i], 0x88);
        r[8 + i] = _mm512_shuffle_f32x4(v[i], v[8 + i], 0xDD);
    }
}

/* A block of up to 16 x 16 floats transposed through registers: rows q < nr
 * of src (ld_src floats apart, lanes lm of each, the rest 0) become rows of
 * dst (ld_dst apart), of which the first nw are written (lanes wm). */
static inline __attribute__((always_inline)) void transpose_block(const float *src, size_t ld_src,
                                                                  size_t nr, __mmask16 lm,
                                                                  float *dst, size_t ld_dst,
                                                                  size_t nw, __mmask16 wm)
{
    __m512 r[16];
#pragma GCC unroll 16
    for (size_t q = 0; q < 16; q++)
        r[q] = q < nr ? _mm512_maskz_loadu_ps(lm, src + q * ld_src) : _mm512_setzero_ps();
    transpose16(r);
#pragma GCC unroll 16
    for (size_t q = 0; q < 16; q++)
        if (q < nw)
            _mm512_mask_storeu_ps(dst + q * ld_dst, wm, r[q]);
}

/* Packs B given transposed (rows j, row stride ldb, columns p) into NR-wide
 * panels, 16 x 16 blocks at a time through registers. */
#define HAVE_PACK_B_T 1
static void pack_b_t(const float *b, size_t ldb, size_t p0, size_t kc, size_t j0, size_t nc,
                     float *restrict pb)
{
    for (size_t jr = 0; jr < nc; jr += NR, pb += kc * NR) {
        size_t nr = nc - jr < NR ? nc - jr : NR;
        for (size_t half = 0; half < 2; half++) {
            size_t nj = nr > 16 * half ? (nr - 16 * half < 16 ? nr - 16 * half : 16) : 0;
            const float *src = b + (j0 + jr + 16 * half) * ldb + p0;
            for (size_t pp = 0; pp < kc; pp += 16) {
                size_t np = kc - pp < 16 ? kc - pp : 16;
                __mmask16 mp = (__mmask16)((1u << np) - 1);
                transpose_block(src + pp, ldb, nj, mp, pb + pp * NR + 16 * half, NR, np, 0xffff);
            }
        }
    }
}

/* The few-rows GEMM's lane sums (gemm_driver.h, dot_halve) of its four
 * 16-lane accumulators at once: each step adds lane l + w to lane l (w = 8,
 * 4, 2, 1) as the portable loop does, two or four accumulators to a shuffle. */
static inline void dot_halve_avx512(const __m512 acc[4], float sums[4])
{
    /* w = 8: the low and the high 256 bits of two accumulators side by side */
    __m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(acc[0], acc[1], 0x44),
                               _mm512_shuffle_f32x4(acc[0], acc[1], 0xEE));
    __m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(acc[2], acc[3], 0x44),
                               _mm512_shuffle_f32x4(acc[2], acc[3], 0xEE));
    /* w = 4: 128-bit quarter 0 and 1 of each; 128-bit lane q now holds acc[q] */
    __m512 s =
        _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, 0x88), _mm512_shuffle_f32x4(s01, s23, 0xDD));
    /* w = 2 and w = 1, within each 128-bit lane */
    s = _mm512_add_ps(s, _mm512_permute_ps(s, 0x4E));
    s = _mm512_add_ps(s, _mm512_permute_ps(s, 0xB1));
    __m512i firsts = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0);
    __m512 first = _mm512_permutexvar_ps(firsts, s);
    _mm_storeu_ps(sums, _mm512_castps512_ps128(first));
}
#define DOT_HALVE(acc, sums) dot_halve_avx512((const __m512 *)(acc), sums)

#define GEMM_NAME cn_gemm_avx512
#include "kernels/gemm_driver.h"
_Static_assert(DOT_J == 4 && DOT_L == 16, "dot_halve_avx512 halves four accumulators of 16 lanes");

/* Short moves for the window kernels: n floats, 16 at a time, the rest
 * masked. */
static inline __mmask16 tail_mask(size_t n) { return (__mmask16)((1u << n) - 1); }
static inline void vcopy(float *restrict d, const float *restrict s, size_t n)
{
    for (; n >= 16; n -= 16, d += 16, s += 16)
        _mm512_storeu_ps(d, _mm512_loadu_ps(s));
    if (n)
        _mm512_mask_storeu_ps(d, tail_mask(n), _mm512_maskz_loadu_ps(tail_mask(n), s));
}
static inline void vzero(float *d, size_t n)
{
    for (; n >= 16; n -= 16, d += 16)
        _mm512_storeu_ps(d, _mm512_setzero_ps());
    if (n)
        _mm512_mask_storeu_ps(d, tail_mask(n), _mm512_setzero_ps());
}
static inline void vadd(float *restrict d, const float *restrict s, size_t n)
{
    for (; n >= 16; n -= 16, d += 16, s += 16)
        _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), _mm512_loadu_ps(s)));
    if (n) {
        __mmask16 m = tail_mask(n);
        _mm512_mask_storeu_ps(
            d, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, d), _mm512_maskz_loadu_ps(m, s)));
    }
}

/* 2x2, stride-2 max pooling of one row pair, 16 outputs at a time: inputs
 * are split into even and odd columns with two-source permutes. */
#define HAVE_POOL2_ROW 1
static const int32_t even_idx[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
static const int32_t odd_idx[16] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
static const int32_t lo_idx[16] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
static const int32_t hi_idx[16] = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

static inline void load_pairs(const float *row, size_t n, __m512 *even, __m512 *odd)
{
    __mmask16 m0 = n >= 8 ? 0xffff : tail_mask(2 * n), m1 = n > 8 ? tail_mask(2 * n - 16) : 0;
    __m512 lo = _mm512_maskz_loadu_ps(m0, row), hi = _mm512_maskz_loadu_ps(m1, row + 16);
    *even = _mm512_permutex2var_ps(lo, _mm512_loadu_si512(even_idx), hi);
    *odd = _mm512_permutex2var_ps(lo, _mm512_loadu_si512(odd_idx), hi);
}

static inline void store_pairs(float *row, size_t n, __m512 even, __m512 odd)
{
    __mmask16 m0 = n >= 8 ? 0xffff : tail_mask(2 * n), m1 = n > 8 ? tail_mask(2 * n - 16) : 0;
    _mm512_mask_storeu_ps(row, m0, _mm512_permutex2var_ps(even, _mm512_loadu_si512(lo_idx), odd));
    _mm512_mask_storeu_ps(row + 16, m1,
                          _mm512_permutex2var_ps(even, _mm512_loadu_si512(hi_idx), odd));
}

static void pool2_fwd_row(const float *t, const float *u, size_t ow, float *out)
{
    for (size_t j = 0; j < ow; j += 16) {
        size_t n = ow - j < 16 ? ow - j : 16;
        __m512 a, b, c, d;
        load_pairs(t + 2 * j, n, &a, &b);
        load_pairs(u + 2 * j, n, &c, &d);
        __m512 ab = _mm512_max_ps(b, a), cd = _mm512_max_ps(d, c);
        /* max(x, y) returns y unless x > y: the same choice as the C version. */
        _mm512_mask_storeu_ps(out + j, tail_mask(n), _mm512_max_ps(cd, ab));
    }
}

static void pool2_bwd_row(const float *t, const float *u, size_t ow, const float *d, float *ot,
                          float *ou, int relu)
{
    for (size_t j = 0; j < ow; j += 16) {
        size_t n = ow - j < 16 ? ow - j : 16;
        __m512 a, b, c, e;
        load_pairs(t + 2 * j, n, &a, &b);
        load_pairs(u + 2 * j, n, &c, &e);
        __m512 g = _mm512_maskz_loadu_ps(tail_mask(n), d + j);
        __m512 ab = _mm512_max_ps(b, a), ce = _mm512_max_ps(e, c);
        if (relu) /* none from a window whose maximum is not above 0 */
            g = _mm512_maskz_mov_ps(
                _mm512_cmp_ps_mask(_mm512_max_ps(ce, ab), _mm512_setzero_ps(), _CMP_GT_OQ), g);
        __mmask16 bottom = _mm512_cmp_ps_mask(ce, ab, _CMP_GT_OQ);
        __mmask16 rt = _mm512_cmp_ps_mask(b, a, _CMP_GT_OQ),
                  ru = _mm512_cmp_ps_mask(e, c, _CMP_GT_OQ);
        __m512 gt = _mm512_maskz_mov_ps((__mmask16)~bottom, g), gu = _mm512_maskz_mov_ps(bottom, g);
        store_pairs(ot + 2 * j, n, _mm512_maskz_mov_ps((__mmask16)~rt, gt),
                    _mm512_maskz_mov_ps(rt, gt));
        store_pairs(ou + 2 * j, n, _mm512_maskz_mov_ps((__mmask16)~ru, gu),
                    _mm512_maskz_mov_ps(ru, gu));
    }
}

/* pool2_fwd_row noting each window's winner (window.c's plain version
 * says how): the same comparisons as pool2_bwd_row's, the index built from
 * their masks, narrowed to bytes. */
static void pool2_fwd_sw_row(const float *t, const float *u, size_t ow, float *out, uint8_t *sw)
{
    const __m512i one = _mm512_set1_epi32(1), two = _mm512_set1_epi32(2);
    for (size_t j = 0; j < ow; j += 16) {
        size_t n = ow - j < 16 ? ow - j : 16;
        __m512 a, b, c, d;
        load_pairs(t + 2 * j, n, &a, &b);
        load_pairs(u + 2 * j, n, &c, &d);
        __m512 ab = _mm512_max_ps(b, a), cd = _mm512_max_ps(d, c), m = _mm512_max_ps(cd, ab);
        __mmask16 bottom = _mm512_cmp_ps_mask(cd, ab, _CMP_GT_OQ);
        __mmask16 right = (__mmask16)((bottom & _mm512_cmp_ps_mask(d, c, _CMP_GT_OQ)) |
                                      (~bottom & _mm512_cmp_ps_mask(b, a, _CMP_GT_OQ)));
        __mmask16 on = _mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_GT_OQ);
        __m512i k = _mm512_or_si512(_mm512_maskz_mov_epi32(bottom, two),
                                    _mm512_maskz_mov_epi32(right, one));
        k = _mm512_mask_or_epi32(k, on, k, _mm512_set1_epi32((int)CN_SW_ON));
        _mm512_mask_storeu_ps(out + j, tail_mask(n), m);
        _mm_mask_storeu_epi8(sw + j, tail_mask(n), _mm512_cvtepi32_epi8(k));
    }
}

/* pool2_bwd_row from the switches. */
static void pool2_bwd_sw_row(const uint8_t *sw, size_t ow, const float *d, float *ot, float *ou,
                             int relu)
{
    for (size_t j = 0; j < ow; j += 16) {
        size_t n = ow - j < 16 ? ow - j : 16;
        __m512i s = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(tail_mask(n), sw + j));
        __m512 g = _mm512_maskz_loadu_ps(tail_mask(n), d + j);
        if (relu)
            g = _mm512_maskz_mov_ps(_mm512_test_epi32_mask(s, _mm512_set1_epi32((int)CN_SW_ON)), g);
        __m512i k = _mm512_and_si512(s, _mm512_set1_epi32((int)(CN_SW_ON - 1u)));
        __mmask16 k0 = _mm512_cmpeq_epi32_mask(k, _mm512_setzero_si512()),
                  k1 = _mm512_cmpeq_epi32_mask(k, _mm512_set1_epi32(1)),
                  k2 = _mm512_cmpeq_epi32_mask(k, _mm512_set1_epi32(2)),
                  k3 = _mm512_cmpeq_epi32_mask(k, _mm512_set1_epi32(3));
        store_pairs(ot + 2 * j, n, _mm512_maskz_mov_ps(k0, g), _mm512_maskz_mov_ps(k1, g));
        store_pairs(ou + 2 * j, n, _mm512_maskz_mov_ps(k2, g), _mm512_maskz_mov_ps(k3, g));
    }
}

/* im2row for stride 1: each window row of kw <= 16 values is one masked load
 * and one masked store. */
#define HAVE_IM2ROW_S1 1
static void im2row_s1(const cn_win *g, const float *x, float *row)
{
    const size_t c = g->c, kh = g->kh, kw = g->kw, oh = g->oh, ow = g->ow, h = g->h, w = g->w;
    const size_t pad = g->pad, kk = c * kh * kw;
    for (size_t i = 0; i < oh; i++)
        for (size_t ch = 0; ch < c; ch++)
            for (size_t ki = 0; ki < kh; ki++) {
                float *out = row + i * ow * kk + (ch * kh + ki) * kw;
                size_t ii = i + ki;
                if (ii < pad || ii >= h + pad) {
                    for (size_t j = 0; j < ow; j++)
                        _mm512_mask_storeu_ps(out + j * kk, tail_mask(kw), _mm512_setzero_ps());
                    continue;
                }
                const float *in = x + (ch * h + ii - pad) * w;
                /* Windows wholly inside the row: j in [pad, w + pad - kw]. */
                size_t j0 = pad < ow ? pad : ow;
                size_t j1 = w + pad + 1 > kw ? w + pad + 1 - kw : 0;
                j1 = j1 < ow ? j1 : ow;
                j1 = j1 > j0 ? j1 : j0;
                __mmask16 full = tail_mask(kw);
                for (size_t j = j0; j < j1; j++)
                    _mm512_mask_storeu_ps(out + j * kk, full,
                                          _mm512_maskz_loadu_ps(full, in + j - pad));
                /* At the edges, a mask over kj of the columns inside [0, w). */
                for (size_t j = 0; j < ow; j = j + 1 == j0 ? (j1 > j0 ? j1 : j + 1) : j + 1) {
                    if (j >= j0 && j < j1)
                        continue;
                    size_t lo = j < pad ? pad - j : 0;
                    size_t hi = j + kw <= w + pad ? kw : w + pad - j;
                    __mmask16 m = lo < hi ? (__mmask16)(tail_mask(hi) & ~tail_mask(lo)) : 0;
                    const float *src = in + (long)j - (long)pad; /* lanes < lo are masked */
                    _mm512_mask_storeu_ps(out + j * kk, full, _mm512_maskz_loadu_ps(m, src));
                }
            }
}

/* col2im for stride 1 and input rows of at most 16: each input row sums its
 * kh * kw shifted contributions in a register and is stored once. */
#define HAVE_COL2IM_S1 1
static int col2im_s1_fits(const cn_win *g) { return g->w <= 16 && g->kw <= 16; }
static void col2im_s1(const cn_win *g, const float *col, size_t ldcol, float *dx)
{
    const size_t c = g->c, kh = g->kh, kw = g->kw, oh = g->oh, ow = g->ow, h = g->h, w = g->w;
    const size_t pad = g->pad, kk = kh * kw;
    for (size_t ch = 0; ch < c; ch++)
        for (size_t ii = 0; ii < h; ii++) {
            __m512 acc = _mm512_setzero_ps();
            for (size_t ki = 0; ki < kh; ki++) {
                /* Output row i = ii + pad - ki covers this input row. */
                if (ii + pad < ki || ii + pad - ki >= oh)
                    continue;
                const float *rows = col + (ch * kk + ki * kw) * ldcol + (ii + pad - ki) * ow;
                for (size_t kj = 0; kj < kw; kj++, rows += ldcol) {
                    /* Lane jj takes output column jj + pad - kj, if in [0, ow). */
                    long off = (long)pad - (long)kj;
                    size_t lo = off < 0 ? (size_t)-off : 0;
                    size_t hi = (long)ow - off < (long)w ? (size_t)((long)ow - off) : w;
                    if (lo >= hi)
                        continue;
                    __mmask16 m = (__mmask16)(tail_mask(hi) & ~tail_mask(lo));
                    acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, rows + off));
                }
            }
            _mm512_mask_storeu_ps(dx + (ch * h + ii) * w, tail_mask(w), acc);
        }
}

/* im2col of one channel plane for stride 1: every output row of a col row is
 * masked loads (zero where the window hangs over the padding) and stores. */
#define HAVE_IM2COL_S1 1
static void im2col_plane_s1(const cn_win *g, const float *x, float *col, size_t ldcol)
{
    const size_t kh = g->kh, kw = g->kw, oh = g->oh, ow = g->ow, h = g->h, w = g->w;
    const size_t pad = g->pad;
    for (size_t ki = 0; ki < kh; ki++)
        for (size_t kj = 0; kj < kw; kj++) {
            float *out = col + (ki * kw + kj) * ldcol;
            /* Output columns j with j + kj - pad in [0, w): [lo, hi). */
            size_t lo = kj < pad ? pad - kj : 0;
            size_t hi = w + pad - kj < ow ? w + pad - kj : ow;
            if (ow <= 16) {
                /* One load and one store per output row; the mask is fixed. */
                __mmask16 m = lo < hi ? (__mmask16)(tail_mask(hi) & ~tail_mask(lo)) : 0;
                __mmask16 all = tail_mask(ow);
                const float *in = x + (long)kj - (long)pad;
                for (size_t i = 0; i < oh; i++, out += ow) {
                    size_t ii = i + ki;
                    if (ii < pad || ii >= h + pad)
                        _mm512_mask_storeu_ps(out, all, _mm512_setzero_ps());
                    else
                        _mm512_mask_storeu_ps(out, all,
                                              _mm512_maskz_loadu_ps(m, in + (ii - pad) * w));
                }
                continue;
            }
            for (size_t i = 0; i < oh; i++, out += ow) {
                size_t ii = i + ki;
                int inside = ii >= pad && ii < h + pad;
                const float *in = x + (inside ? (ii - pad) * w : 0) + (long)kj - (long)pad;
                for (size_t j0 = 0; j0 < ow; j0 += 16) {
                    size_t n = ow - j0 < 16 ? ow - j0 : 16;
                    size_t a = lo > j0 ? lo - j0 : 0, b = hi > j0 ? hi - j0 : 0;
                    b = b < n ? b : n;
                    __mmask16 m = inside && a < b ? (__mmask16)(tail_mask(b) & ~tail_mask(a)) : 0;
                    _mm512_mask_storeu_ps(out + j0, tail_mask(n),
                                          _mm512_maskz_loadu_ps(m, in + j0));
                }
            }
        }
}

/* ------------------------------------------------------ direct convolution
 *
 * For stride-1 convolutions whose output rows are at least 12 wide, without
 * im2col.  The input is a zero-bordered copy of the sample, xp (c, hp, wp),
 * and the kernels see each plane as one flat row: output (i, j) at
 * q = i * wp + j takes tap (ki, kj) from xp[ch][q + ki * wp + kj].  Outputs
 * are computed at every q in [0, (oh - 1) * wp + ow), the kw - 1 positions
 * between two rows included (they are dropped, or their gradient is zero), so
 * that the loops run over long unmasked vectors with no edge cases. */
#define HAVE_DIRECT_CONV 1

/* Flat outputs of a plane: rows of wp, the last one ow long. */
static size_t flat_len(size_t oh, size_t ow, size_t wp) { return (oh - 1) * wp + ow; }

/* x (c, h, w), rows sw floats apart, into xp (c, h + 2 pad, w + 2 pad) with
 * zero borders. */
static void pad_sample(const float *x, size_t c, size_t h, size_t w, size_t sw, size_t pad,
                       float *xp)
{
    size_t wp = w + 2 * pad, hp = h + 2 * pad;
    for (size_t ch = 0; ch < c; ch++) {
        float *plane = xp + ch * hp * wp;
        vzero(plane, pad * wp);
        for (size_t i = 0; i < h; i++) {
            float *row = plane + (pad + i) * wp;
            vzero(row, pad);
            vcopy(row + pad, x + (ch * h + i) * sw, w);
            vzero(row + pad + w, pad);
        }
        vzero(plane + (pad + h) * wp, pad * wp);
    }
}

/* What the forward kernel adds to its sums before it stores them in the
 * output itself (where the output's rows are the kernel's: the shifted
 * layout), for a group's filters: the bias, the affine map, the relu, and
 * whether whole aligned vectors go past the caches. */
typedef struct dconv_end {
    const float *bias, *scale, *shift;
    int relu, stream;
    float *pool; /* else NULL: the group's first pooled plane (dconv_pools) */
    size_t ldp, ow;
} dconv_end;

/* One vector of a filter's sums as stored: plus the bias b, times sc plus
 * sh (affine: a folded batch normalisation, one FMA as bn_fwd's), relu'd. */
static inline __m512 dconv_finish(__m512 v, __m512 b, int affine, __m512 sc, __m512 sh, int relu)
{
    v = _mm512_add_ps(v, b);
    if (affine)
        v = _mm512_fmadd_ps(v, sc, sh);
    return relu ? _mm512_max_ps(v, _mm512_setzero_ps()) : v;
}

/* The 2x2 windows (stride 2) over two output rows of ow, held in r (ow / 8
 * vectors, the rows one after the other): their maxima, ow / 2 lanes, in
 * pool2_fwd_row's order (the same bits as the plane pooled after). */
static inline __m512 dconv_pool2(const __m512 *r, size_t ow)
{
    __m512i ev = _mm512_loadu_si512(even_idx), od = _mm512_loadu_si512(odd_idx);
    __m512i sh = _mm512_set1_epi32((int)(ow % 16)); /* the lower row's first lane */
    const __m512 *u = r + ow / 16;
    __m512 a = _mm512_permutex2var_ps(r[0], ev, r[1]), b = _mm512_permutex2var_ps(r[0], od, r[1]);
    __m512 c = _mm512_permutex2var_ps(u[0], _mm512_add_epi32(ev, sh), u[1]);
    __m512 d = _mm512_permutex2var_ps(u[0], _mm512_add_epi32(od, sh), u[1]);
    return _mm512_max_ps(_mm512_max_ps(d, c), _mm512_max_ps(b, a));
}

/* Vectors of 16 outputs per filter that the forward kernel keeps in
 * registers: 8 filters x 3 vectors = 24 accumulators, and per tap 3 loads and
 * 8 broadcasts for 24 FMAs; or 6 filters x 4 vectors, for planes of 64
 * outputs (LeNet's second layer: 8 x 8). */
#define FWD_NF 8
#define FWD_V  3

/* Flat outputs [q0, q0 + 16 V) (masks mk[v]) of filters [f0, f0 + NF) into
 * out (NF rows of ldo): the sum over taps of wt[tap w_t + f w_f] xp[q +
 * offset(tap)], the offset of tap (ch, ki, kj) ch s_ch + ki s_ki + kj s_kj. */
static inline __attribute__((always_inline)) void
dconv_block(const int NF, const int V, const float *xp, size_t c, size_t kh, size_t kw, size_t s_ch,
            size_t s_ki, size_t s_kj, const float *wt, size_t w_t, size_t w_f, size_t f0, size_t q0,
            const __mmask16 *mk, const dconv_end *end, float *out, size_t ldo)
{
    __m512 acc[FWD_NF][4];
#pragma GCC unroll 8
    for (int f = 0; f < NF; f++)
#pragma GCC unroll 4
        for (int v = 0; v < V; v++)
            acc[f][v] = _mm512_setzero_ps();
    for (size_t ch = 0; ch < c; ch++)
        for (size_t ki = 0; ki < kh; ki++) {
            const float *row = xp + ch * s_ch + ki * s_ki + q0;
            const float *wk = wt + ((ch * kh + ki) * kw) * w_t + f0 * w_f;
            for (size_t kj = 0; kj < kw; kj++, wk += w_t) {
                __m512 xv[4];
#pragma GCC unroll 4
                for (int v = 0; v < V; v++)
                    xv[v] = _mm512_maskz_loadu_ps(mk[v], row + kj * s_kj + 16 * v);
#pragma GCC unroll 8
                for (int f = 0; f < NF; f++) {
                    __m512 wv = _mm512_set1_ps(wk[(size_t)f * w_f]);
#pragma GCC unroll 4
                    for (int v = 0; v < V; v++)
                        acc[f][v] = _mm512_fmadd_ps(wv, xv[v], acc[f][v]);
                }
            }
        }
    if (!end) {
#pragma GCC unroll 8
        for (int f = 0; f < NF; f++)
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                _mm512_mask_storeu_ps(out + f * ldo + q0 + 16 * v, mk[v], acc[f][v]);
        return;
    }
#pragma GCC unroll 8
    for (int f = 0; f < NF; f++) {
        __m512 b = _mm512_set1_ps(end->bias ? end->bias[f] : 0.0f);
        __m512 sc = _mm512_set1_ps(end->scale ? end->scale[f] : 1.0f);
        __m512 sh = _mm512_set1_ps(end->scale ? end->shift[f] : 0.0f);
        if (end->pool) { /* the block is two whole rows: one pooled row */
            __m512 r[4];
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                r[v] = dconv_finish(acc[f][v], b, end->scale != NULL, sc, sh, end->relu);
            size_t half = end->ow / 2;
            _mm512_mask_storeu_ps(end->pool + f * end->ldp + q0 / (2 * end->ow) * half,
                                  tail_mask(half), dconv_pool2(r, end->ow));
            continue;
        }
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            __m512 r = dconv_finish(acc[f][v], b, end->scale != NULL, sc, sh, end->relu);
            float *o = out + f * ldo + q0 + 16 * v;
            if (end->stream && mk[v] == 0xffff && ((uintptr_t)o & 63) == 0)
                _mm512_stream_ps(o, r);
            else
                _mm512_mask_storeu_ps(o, mk[v], r);
        }
    }
}

#define DCONV_CASE(n, v)                                                                           \
    case n:                                                                                        \
        dconv_block(n, v, xp, c, kh, kw, s_ch, s_ki, s_kj, wt, w_t, w_f, f0, q0, mk, end, out,     \
                    ldo);                                                                          \
        break;

/* Scratch floats dconv_sample needs for outputs of oh x ow from rows of wp. */
static size_t dconv_scratch(size_t oh, size_t ow, size_t wp)
{
    return FWD_NF * flat_len(oh, ow, wp);
}

/* The shifted layout of the forward kernel's input: kw copies of each padded
 * plane, copy kj holding columns kj .. kj + ow - 1 of its hp rows, so that
 * output q = i * ow + j takes tap (ki, kj) from copy kj at q + ki * ow.  No
 * lane then computes a position between two rows, which the flat rows of wp
 * do (wp - ow of every wp); it pays for narrow planes, whose flat rows
 * waste most: LeNet's second layer (8 x 8 outputs from rows of 12) computes
 * 64 positions in 4 vectors instead of 92 in 6.  Vectors of 16 outputs per
 * filter and tap, a plane of n positions: blocks of 3 or 4 vectors, the
 * fewer. */
static size_t dconv_vectors(size_t n, int *v)
{
    size_t v3 = (n + 47) / 48 * 3, v4 = (n + 63) / 64 * 4;
    if (v)
        *v = v4 < v3 ? 4 : 3;
    return v4 < v3 ? v4 : v3;
}

/* Whether dconv_sample can pool 2x2 windows with stride 2 as it stores its
 * oh x ow outputs: in the shifted layout (rows of ow), where each block of
 * vectors is two whole rows (16 nv = 2 ow: LeNet's first layer, 24 wide)
 * and oh is even.  The plane of outputs is then never written (LeNet's first
 * layer over one image: 46 KB, and a pass over it to pool). */
static int dconv_pools(size_t oh, size_t ow, int shifted)
{
    int nv;
    dconv_vectors(oh * ow, &nv);
    return shifted && oh % 2 == 0 && 16 * (size_t)nv == 2 * ow;
}

/* Whether the shifted layout pays for a stride-1 window: fewer vectors of
 * outputs, and its copies (hp x ow floats for each channel and kj) cheaper
 * than the multiply-adds they save (m kh a copied row's worth, counting a
 * copied vector as two FMAs). */
static int dconv_shift_pays(const cn_win *g, size_t m)
{
    size_t hp = g->h + 2 * g->pad, wp = g->w + 2 * g->pad;
    size_t flat = dconv_vectors(flat_len(g->oh, g->ow, wp), NULL);
    size_t shifted = dconv_vectors(g->oh * g->ow, NULL);
    return g->stride == 1 && shifted < flat &&
           2 * hp * ((g->ow + 15) / 16) < m * g->kh * (flat - shifted);
}

/* Floats of the shifted copies of a sample. */
static size_t dconv_shift_floats(const cn_win *g)
{
    return g->c * g->kw * (g->h + 2 * g->pad) * g->ow;
}

/* xs (the shifted layout) from xp (c planes of hp x wp). */
static void dconv_shift(const float *xp, size_t c, size_t hp, size_t wp, size_t kw, size_t ow,
                        float *xs)
{
    for (size_t ch = 0; ch < c; ch++)
        for (size_t kj = 0; kj < kw; kj++)
            for (size_t r = 0; r < hp; r++)
                vcopy(xs + ((ch * kw + kj) * hp + r) * ow, xp + (ch * hp + r) * wp + kj, ow);
}

/* y (m planes, ys floats apart, each oh x ow) = conv(xp, wt) + bias (or
 * none), then times scale plus shift per filter (when scale is not NULL: a batch normalisation
 * folded in, one FMA as bn_fwd's), relu'd if asked.  wt holds the weights filter by filter
 * ([m][c][ki][kj], as the layer keeps them: by_tap 0) or tap by tap
 * ([c][ki][kj][m], as taps_flipped lays out the input gradient's: 1).  Read in place, each filter's
 * taps are one sequential stream, and a group's filters are NF of them; rearranged tap by tap (a
 * pass over all the weights, 18% of LeNet's one-image pass when the forward pass did it), a tap's
 * filters are one row.  xp: c padded planes of hp x wp, or with shifted their shifted layout
 * (dconv_shift).  flat: dconv_scratch floats.  The sums run over the taps in order whatever the
 * layouts, so they give the same bits.  py: NULL, or where dconv_pools holds, the outputs pooled
 * (2x2 windows, stride 2) into planes pys floats apart instead of y. */
static void dconv_sample(const float *xp, int shifted, size_t c, size_t hp, size_t wp, size_t kh,
                         size_t kw, const float *wt, int by_tap, size_t m, const float *bias,
                         const float *scale, const float *shift, int relu, int stream, float *y,
                         size_t ys, size_t oh, size_t ow, float *flat, float *py, size_t pys)
{
    size_t w_t = by_tap ? m : 1, w_f = by_tap ? 1 : c * kh * kw;
    size_t ld = shifted ? ow : wp, n_flat = flat_len(oh, ow, ld);
    size_t s_ch = shifted ? kw * hp * ow : hp * wp, s_ki = ld, s_kj = shifted ? hp * ow : 1;
    int nv;
    dconv_vectors(n_flat, &nv);
    size_t nf_max = nv == 4 ? 6 : FWD_NF, groups = (m + nf_max - 1) / nf_max;
    for (size_t g = 0; g < groups; g++) {
        /* Even groups: 12 filters are 6 + 6, not 8 + 4. */
        size_t f0 = m * g / groups, nf = m * (g + 1) / groups - f0;
        /* Rows of ow (the shifted layout): the outputs are the flat ones, the
         * bias and the rest added on the way out.  Else rows of wp, into
         * flat, then the rows out of it below. */
        dconv_end e = {bias ? bias + f0 : NULL,
                       scale ? scale + f0 : NULL,
                       scale ? shift + f0 : NULL,
                       relu,
                       stream,
                       py ? py + f0 * pys : NULL,
                       pys,
                       ow};
        const dconv_end *end = ld == ow ? &e : NULL;
        float *out = ld == ow ? y + f0 * ys : flat;
        size_t ldo = ld == ow ? ys : n_flat;
        for (size_t q0 = 0; q0 < n_flat; q0 += 16 * (size_t)nv) {
            __mmask16 mk[4];
            for (size_t v = 0; v < (size_t)nv; v++) {
                size_t q = q0 + 16 * v;
                mk[v] = q >= n_flat ? 0 : n_flat - q >= 16 ? 0xffff : tail_mask(n_flat - q);
            }
            if (nv == 4) {
                switch (nf) {
                    DCONV_CASE(1, 4)
                    DCONV_CASE(2, 4)
                    DCONV_CASE(3, 4) DCONV_CASE(4, 4) DCONV_CASE(5, 4) DCONV_CASE(6, 4)
                }
            } else {
                switch (nf) {
                    DCONV_CASE(1, 3)
                    DCONV_CASE(2, 3)
                    DCONV_CASE(3, 3)
                    DCONV_CASE(4, 3)
                    DCONV_CASE(5, 3) DCONV_CASE(6, 3) DCONV_CASE(7, 3) DCONV_CASE(8, 3)
                }
            }
        }
        /* Rows out of the flat outputs, with the bias, the affine map and
         * the relu. */
        for (size_t f = 0; end == NULL && f < nf; f++) {
            __m512 b = _mm512_set1_ps(bias ? bias[f0 + f] : 0.0f);
            __m512 sc = _mm512_set1_ps(scale ? scale[f0 + f] : 1.0f);
            __m512 sh = _mm512_set1_ps(scale ? shift[f0 + f] : 0.0f);
            for (size_t i = 0; i < oh; i++) {
                const float *src = flat + f * n_flat + i * ld;
                float *dst = y + (f0 + f) * ys + i * ow;
                for (size_t j = 0; j < ow; j += 16) {
                    __mmask16 mj = tail_mask(ow - j < 16 ? ow - j : 16);
                    __m512 v = dconv_finish(_mm512_maskz_loadu_ps(mj, src + j), b, scale != NULL,
                                            sc, sh, relu);
                    _mm512_mask_storeu_ps(dst + j, mj, v);
                }
            }
        }
    }
}

/* dy (oh, ow planes, contiguous) into rows of wp with zeros after each row's
 * ow values, masked where y (when given: a fused relu's output) is 0. */
static void widen_grad(const float *dy, const float *y, size_t planes, size_t oh, size_t ow,
                       size_t wp, float *out)
{
    for (size_t r = 0; r < planes * oh; r++) {
        const float *d = dy + r * ow;
        float *o = out + r * wp;
        for (size_t j = 0; j < wp; j += 16) {
            size_t in = j < ow ? (ow - j < 16 ? ow - j : 16) : 0;
            size_t all = wp - j < 16 ? wp - j : 16;
            __m512 v = _mm512_maskz_loadu_ps(tail_mask(in), d + j);
            if (y) {
                __m512 yv = _mm512_maskz_loadu_ps(tail_mask(in), y + r * ow + j);
                v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(yv, _mm512_setzero_ps(), _CMP_GT_OQ), v);
            }
            _mm512_mask_storeu_ps(o + j, tail_mask(all), v);
        }
    }
}

/* Weight gradients of samples [s0, s1) for filters [f0, f0 + NF) and one
 * (c, ki), with KW known at compile time so that the NF x KW accumulators
 * stay in registers: acc[f][kj] sums dq[f][q] xp[c][q + ki * wp + kj] over
 * the samples and the flat positions q, lane by lane (dq: the output
 * gradient in rows of wp, zero between rows).  Per 16 positions: KW loads of
 * the input, then one gradient load and KW FMAs per filter (28 registers).
 * The accumulators live in va between calls (NF x KW vectors of 16 lanes), so
 * that the caller can keep the gradients of a few samples in L1 while it
 * goes over every (c, ki). */
static inline __attribute__((always_inline)) void
dconv_dw(const int NF, const int KW, const float *const *xps, const float *const *dqs, size_t s0,
         size_t s1, size_t xoff, size_t plane, size_t n_flat, size_t f0, float *va)
{
    __m512 acc[8][7];
#pragma GCC unroll 8
    for (int f = 0; f < NF; f++)
#pragma GCC unroll 7
        for (int kj = 0; kj < KW; kj++)
            acc[f][kj] = _mm512_loadu_ps(va + (f * KW + kj) * 16);
    for (size_t s = s0; s < s1; s++) {
        const float *xr = xps[s] + xoff, *dr = dqs[s] + f0 * plane;
        for (size_t q = 0; q < n_flat; q += 16) {
            __mmask16 mask = n_flat - q >= 16 ? 0xffff : tail_mask(n_flat - q);
            __m512 xv[7];
#pragma GCC unroll 7
            for (int kj = 0; kj < KW; kj++)
                xv[kj] = _mm512_maskz_loadu_ps(mask, xr + q + kj);
#pragma GCC unroll 8
            for (int f = 0; f < NF; f++) {
                __m512 d = _mm512_maskz_loadu_ps(mask, dr + f * plane + q);
#pragma GCC unroll 7
                for (int kj = 0; kj < KW; kj++)
                    acc[f][kj] = _mm512_fmadd_ps(d, xv[kj], acc[f][kj]);
            }
        }
    }
#pragma GCC unroll 8
    for (int f = 0; f < NF; f++)
#pragma GCC unroll 7
        for (int kj = 0; kj < KW; kj++)
            _mm512_storeu_ps(va + (f * KW + kj) * 16, acc[f][kj]);
}

/* Filters per group for a kernel width: NF x KW accumulators and KW inputs
 * fit 32 registers (and at most DW_VECS accumulators, the scratch conv.c
 * plans per (c, ki)). */
static size_t dw_group(size_t kw) { return kw <= 3 ? 8 : kw <= 5 ? 4 : kw <= 7 ? 3 : 0; }

/* What the direct kernels take: stride 1, rows of 12 outputs or more (a
 * narrower row wastes most of a vector), kernels up to 7 wide (dw_group). */
static int direct_conv_ok(const cn_win *g)
{
    return g->stride == 1 && g->ow >= 12 && g->kh <= 16 && dw_group(g->kw) > 0;
}

#define DW_CASE(nf, kw)                                                                            \
    case nf * 16 + kw:                                                                             \
        dconv_dw(nf, kw, xps, dqs, b0, b1, (ch * hp + ki) * wp, plane, n_flat, f0, va);            \
        break;

/* Output-gradient floats of one filter group that the kernel goes over for
 * every (c, ki): they should stay in the 48 KB L1 data cache. */
#define DW_L1_FLOATS 6400

/* dw (m, c, kh, kw) += the weight gradients of the samples (padded inputs xps,
 * output gradients dqs in rows of wp, widen_grad); kw is 1 to 7
 * (direct_conv_ok).  Filter group by filter group, a block of samples at a
 * time, every (c, ki) of the block; the lanes of each accumulator are added
 * up at the end, in a fixed order.  vacc: c * kh * DW_VECS * 16 floats. */
static void dconv_dw_samples(const float *const *xps, const float *const *dqs, size_t samples,
                             size_t c, size_t hp, size_t wp, size_t kh, size_t kw, size_t m,
                             size_t oh, size_t ow, float *dw, float *vacc)
{
    size_t group = dw_group(kw), plane = oh * wp, n_flat = flat_len(oh, ow, wp);
    for (size_t f0 = 0; f0 < m; f0 += group) {
        size_t nf = m - f0 < group ? m - f0 : group, per = nf * kw * 16;
        size_t block = DW_L1_FLOATS / (nf * plane);
        block = block < 1 ? 1 : block;
        memset(vacc, 0, c * kh * per * sizeof(float));
        for (size_t b0 = 0; b0 < samples; b0 += block) {
            size_t b1 = samples - b0 < block ? samples : b0 + block;
            for (size_t ch = 0; ch < c; ch++)
                for (size_t ki = 0; ki < kh; ki++) {
                    float *va = vacc + (ch * kh + ki) * per;
                    /* clang-format off */
                    switch (nf * 16 + kw) {
                        DW_CASE(1, 1) DW_CASE(2, 1) DW_CASE(3, 1) DW_CASE(4, 1) DW_CASE(5, 1)
                        DW_CASE(6, 1) DW_CASE(7, 1) DW_CASE(8, 1) DW_CASE(1, 2) DW_CASE(2, 2)
                        DW_CASE(3, 2) DW_CASE(4, 2) DW_CASE(5, 2) DW_CASE(6, 2) DW_CASE(7, 2)
                        DW_CASE(8, 2) DW_CASE(1, 3) DW_CASE(2, 3) DW_CASE(3, 3) DW_CASE(4, 3)
                        DW_CASE(5, 3) DW_CASE(6, 3) DW_CASE(7, 3) DW_CASE(8, 3) DW_CASE(1, 4)
                        DW_CASE(2, 4) DW_CASE(3, 4) DW_CASE(4, 4) DW_CASE(1, 5) DW_CASE(2, 5)
                        DW_CASE(3, 5) DW_CASE(4, 5) DW_CASE(1, 6) DW_CASE(2, 6) DW_CASE(3, 6)
                        DW_CASE(1, 7) DW_CASE(2, 7) DW_CASE(3, 7)
                    }
                    /* clang-format on */
                }
        }
        for (size_t ch = 0; ch < c; ch++)
            for (size_t ki = 0; ki < kh; ki++)
                for (size_t f = 0; f < nf; f++)
                    for (size_t kj = 0; kj < kw; kj++)
                        dw[(((f0 + f) * c + ch) * kh + ki) * kw + kj] += _mm512_reduce_add_ps(
                            _mm512_loadu_ps(vacc + (ch * kh + ki) * per + (f * kw + kj) * 16));
    }
}

#include "kernels/lanes_avx512.c"
#include "kernels/winograd_avx512.c"
/* after it: F(2x2, 5x5) takes F(4x4, 3x3)'s input transform and products */
#include "kernels/winograd5_avx512.c"
/* after it too: one image's tiles with vectors along the filters */
#include "kernels/winograd1_avx512.c"

#define CN_ISA avx512
#include "kernels/cpu_kernels.h"
