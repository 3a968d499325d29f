/* augment.h - training's augmentation of one sample in integer arithmetic,
 * which the host (train.c's cn_augment, kernels/plain.c's gather_pixels) and
 * a GPU thread (backend/cuda.cu) run alike: their pixels agree bit for bit,
 * with no floating point between the recipe's settings (made whole numbers
 * once, on the host, by cn_aug_of in train.c) and the pixels.  A leaf: plain
 * C99 that a CUDA file includes too.
 *
 * Sample i of a step draws from its own generator, seeded with
 * cn_step_seed(seed, at) (at: its place in the global batch), in this order,
 * each draw only when its setting is on: the shift down, the shift across,
 * whether it is mirrored, the rotation's angle, the scale's factor, the
 * shear's angle, then whether a rectangle is erased and which.  A recipe
 * with only shift and flip draws what it always drew.  The elastic
 * distortion draws nothing from that generator: its field comes from a
 * hash of the sample's seed, the control point and the direction.
 *
 * Output pixel (y, x) of each channel is, in this order:
 *   - 0 inside the erased rectangle;
 *   - else it reads the point (y - dy, x - dx), mirrored left-right
 *     (x' = w - 1 - x') when the sample is;
 *   - with no rotation, scale, shear or elastic distortion, the input's
 *     pixel there (0 outside);
 *   - else the input at A^-1 (p + e(p) - c) + c, where e(p) is the elastic
 *     displacement at p (0 without one), c is the image's centre
 *     ((w - 1) / 2, (h - 1) / 2) and A = R(theta) H(phi) S(s) moves the
 *     picture: scaled by s, sheared across by tan(phi) (x += tan(phi) y), then
 *     rotated by theta (clockwise on the screen for theta > 0, y pointing
 *     down), read bilinearly from the four pixels around it (0 outside) and
 *     rounded to the nearest whole value.
 * The map is held in 16-bit fixed point, positions in 17-bit; sine and
 * cosine come from Taylor series in 30-bit fixed point (within 2^-30 for
 * |angle| <= pi/2, folded there from +-pi).
 *
 * Elastic distortion (after Simard et al. 2003, with a coarse grid in place
 * of their blurred noise): a grid of CN_ELASTIC_CELLS x CN_ELASTIC_CELLS
 * cells spans the image (control points at its corners and edges, (cells +
 * 1)^2 of them); each control point moves by a uniform random amount in
 * [-a, a] pixels down and across, and the displacement e(p) of a point in
 * between is the bilinear blend of its cell's four corners (p clamped into
 * the image), in 2^-16 pixels.  A field with a = 2.5 on 28 x 28 digits moves
 * strokes by about 1.4 pixels (standard deviation), smoothly over 7 pixels,
 * as Simard's sigma 4, alpha 34 does. */
#ifndef CN_AUGMENT_H
#define CN_AUGMENT_H

#include "counter_rng.h"

#include <stddef.h>
#include <stdint.h>

/* The recipe's augmentation in whole numbers (cn_aug_of). */
typedef struct cn_aug {
    int32_t shift;   /* largest shift each way, pixels */
    int32_t flip;    /* 1: mirror half the samples */
    int32_t rotate;  /* largest |angle|, radians * 2^16 */
    int32_t scale;   /* largest |factor - 1|, * 2^16 */
    int32_t shear;   /* largest |angle|, radians * 2^16 */
    uint32_t erase;  /* probability of an erased rectangle, * 2^24 */
    int32_t elastic; /* largest move of an elastic control point, pixels * 2^16 */
} cn_aug;

/* What one sample drew. */
typedef struct cn_aug_draw {
    int64_t dy, dx;
    int mirror, affine, erase;
    int64_t m00, m01, m10, m11; /* A^-1, * 2^16 */
    int64_t ey, ex, eh, ew;     /* the erased rectangle: top, left, height, width */
    int64_t elastic;            /* a of the elastic field (* 2^16), 0: none */
    uint64_t field;             /* the key of its control points' moves */
} cn_aug_draw;

/* Random erasing (Zhong et al. 2017): the rectangle covers a fraction of the
 * image uniform in [0.02, 0.4] (* 2^16 here) with a ratio of its long side
 * to its short one uniform in [1, 3.3] (its sides rounded to whole pixels),
 * upright or lying with equal chance, placed uniformly; ten tries to fit it
 * in, then none.  It is set to 0 in every channel. */
#define CN_ERASE_AREA_MIN  1311   /* 0.02 * 2^16 */
#define CN_ERASE_AREA_MAX  26214  /* 0.4 * 2^16 */
#define CN_ERASE_RATIO_MAX 216269 /* 3.3 * 2^16 */
#define CN_ERASE_TRIES     10

#define CN_ELASTIC_CELLS  4
#define CN_ELASTIC_POINTS ((CN_ELASTIC_CELLS + 1) * (CN_ELASTIC_CELLS + 1))

#define CN_Q30    1073741824LL /* 2^30 */
#define CN_PI_Q30 3373259426LL /* pi * 2^30 */

CN_HD static inline int cn_aug_any(const cn_aug *a)
{
    return a->shift || a->flip || a->rotate || a->scale || a->shear || a->erase || a->elastic;
}

/* floor(a / d) for d > 0 (C's division truncates towards zero). */
CN_HD static inline int64_t cn_floor_div(int64_t a, int64_t d)
{
    return a >= 0 ? a / d : -((-a + d - 1) / d);
}

/* v * 2^-14 rounded half away from zero: 2^30 scale to 2^16. */
CN_HD static inline int64_t cn_q30_to_q16(int64_t v)
{
    return v >= 0 ? (v + 8192) / 16384 : -((-v + 8192) / 16384);
}

/* The sine and cosine of a16 * 2^-16 radians (|a16| <= pi * 2^16), * 2^30. */
CN_HD static inline void cn_sincos_q30(int64_t a16, int64_t *s30, int64_t *c30)
{
    int64_t x = a16 * 16384, t;
    int back = 0; /* folded from beyond pi/2: the cosine changes sign */
    if (x > CN_PI_Q30 / 2) {
        x = CN_PI_Q30 - x;
        back = 1;
    } else if (x < -CN_PI_Q30 / 2) {
        x = -CN_PI_Q30 - x;
        back = 1;
    }
    int64_t x2 = x * x / CN_Q30;
    /* sin x = x (1 - x^2/(2 3) (1 - x^2/(4 5) (... (1 - x^2/(12 13))))) */
    t = CN_Q30;
    for (int64_t k = 13; k >= 3; k -= 2)
        t = CN_Q30 - x2 * t / CN_Q30 / (k * (k - 1));
    *s30 = x * t / CN_Q30;
    /* cos x = 1 - x^2/(1 2) (1 - x^2/(3 4) (... (1 - x^2/(13 14)))) */
    t = CN_Q30;
    for (int64_t k = 14; k >= 2; k -= 2)
        t = CN_Q30 - x2 * t / CN_Q30 / (k * (k - 1));
    *c30 = back ? -t : t;
}

/* The largest r with r * r <= v. */
CN_HD static inline uint64_t cn_isqrt(uint64_t v)
{
    uint64_t r = 0, bit = (uint64_t)1 << 62;
    while (bit > v)
        bit >>= 2;
    while (bit) {
        if (v >= r + bit) {
            v -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
        bit >>= 2;
    }
    return r;
}

/* A^-1 * 2^16 for the angle theta, the factor 1 + k and the shear angle phi
 * (theta and phi radians * 2^16, k * 2^16): (1 / s) [[cos + t sin, sin - t
 * cos], [-sin, cos]] with t = tan(phi). */
CN_HD static inline void cn_aug_matrix(int64_t theta, int64_t k, int64_t phi, cn_aug_draw *d)
{
    int64_t s30, c30, ps30, pc30;
    cn_sincos_q30(theta, &s30, &c30);
    cn_sincos_q30(phi, &ps30, &pc30);
    int64_t sn = cn_q30_to_q16(s30), cs = cn_q30_to_q16(c30);
    int64_t t = ps30 * 65536 / pc30, s = 65536 + k;
    int64_t inv = (((int64_t)1 << 32) + s / 2) / s;
    d->m00 = (cs + t * sn / 65536) * inv / 65536;
    d->m01 = (sn - t * cs / 65536) * inv / 65536;
    d->m10 = -sn * inv / 65536;
    d->m11 = cs * inv / 65536;
}

/* A value drawn uniformly from [-r, r]. */
CN_HD static inline int64_t cn_aug_symmetric(uint64_t st[4], int64_t r)
{
    return (int64_t)cn_xo_below(st, 2 * (uint64_t)r + 1) - r;
}

/* The draws of the sample at place `at` of the step seeded with seed, for
 * an image of h x w. */
CN_HD static inline void cn_aug_draw_for(const cn_aug *a, int64_t h, int64_t w, uint64_t seed,
                                         uint64_t at, cn_aug_draw *d)
{
    uint64_t st[4];
    cn_xo_seed(st, cn_step_seed(seed, at));
    d->dy = a->shift ? cn_aug_symmetric(st, a->shift) : 0;
    d->dx = a->shift ? cn_aug_symmetric(st, a->shift) : 0;
    d->mirror = a->flip && (cn_xo_next(st) >> 63);
    int64_t theta = a->rotate ? cn_aug_symmetric(st, a->rotate) : 0;
    int64_t k = a->scale ? cn_aug_symmetric(st, a->scale) : 0;
    int64_t phi = a->shear ? cn_aug_symmetric(st, a->shear) : 0;
    d->affine = a->rotate || a->scale || a->shear;
    d->m00 = d->m11 = 65536;
    d->m01 = d->m10 = 0;
    if (d->affine)
        cn_aug_matrix(theta, k, phi, d);
    d->elastic = a->elastic;
    d->field = cn_mix64(cn_step_seed(seed, at) ^ 0x656c6173746963ULL); /* "elastic" */
    d->erase = 0;
    d->ey = d->ex = d->eh = d->ew = 0;
    if (!a->erase || (cn_xo_next(st) >> 40) >= a->erase)
        return;
    for (int tries = 0; tries < CN_ERASE_TRIES && !d->erase; tries++) {
        uint64_t frac =
            CN_ERASE_AREA_MIN + cn_xo_below(st, CN_ERASE_AREA_MAX - CN_ERASE_AREA_MIN + 1);
        uint64_t area = (uint64_t)h * (uint64_t)w * frac >> 16;
        uint64_t ratio = 65536 + cn_xo_below(st, CN_ERASE_RATIO_MAX - 65536 + 1);
        int upright = (int)(cn_xo_next(st) >> 63);
        /* The sides, sqrt(area ratio) and sqrt(area / ratio), to the nearest
         * whole pixel (the roots in 2^-8 pixels). */
        int64_t lng = (int64_t)((cn_isqrt(area * ratio) + 128) >> 8);
        int64_t shrt = (int64_t)((cn_isqrt((area << 32) / ratio) + 128) >> 8);
        int64_t eh = upright ? lng : shrt, ew = upright ? shrt : lng;
        if (eh < 1 || ew < 1 || eh > h || ew > w)
            continue;
        d->eh = eh;
        d->ew = ew;
        d->ey = (int64_t)cn_xo_below(st, (uint64_t)(h - eh + 1));
        d->ex = (int64_t)cn_xo_below(st, (uint64_t)(w - ew + 1));
        d->erase = 1;
    }
}

/* The move in [-a, a] (* 2^16) of control point k in direction dir (0:
 * down, 1: across) of the field with key field. */
CN_HD static inline int64_t cn_elastic_move(uint64_t field, int64_t a, int64_t k, int dir)
{
    /* the top 32 bits scaled to [0, 2a] (a multiply, not a division: a
     * pixel asks for eight of these) */
    uint64_t r = cn_mix64(field + (uint64_t)(2 * k + dir + 1) * CN_GOLDEN) >> 32;
    return (int64_t)(r * (2 * (uint64_t)a + 1) >> 32) - a;
}

/* Every control point's moves: moves[2 k + dir] = cn_elastic_move(k, dir). */
CN_HD static inline void cn_elastic_moves(const cn_aug_draw *d,
                                          int64_t moves[2 * CN_ELASTIC_POINTS])
{
    for (int64_t k = 0; k < CN_ELASTIC_POINTS; k++)
        for (int dir = 0; dir < 2; dir++)
            moves[2 * k + dir] = cn_elastic_move(d->field, d->elastic, k, dir);
}

/* The elastic displacement (* 2^16 pixels, down in *ey and across in *ex)
 * at the point (y, x) of an h x w image, clamped into it; from moves
 * (cn_elastic_moves) when not NULL, else hashing the four it needs (a GPU
 * thread, which has one pixel to do). */
CN_HD static inline void cn_elastic_at_with(const cn_aug_draw *d, const int64_t *moves, int64_t h,
                                            int64_t w, int64_t y, int64_t x, int64_t *ey,
                                            int64_t *ex)
{
    const int64_t G = CN_ELASTIC_CELLS;
    y = y < 0 ? 0 : y >= h ? h - 1 : y;
    x = x < 0 ? 0 : x >= w ? w - 1 : x;
    /* the point in cells, * 2^16: its cell and where in it */
    int64_t gy = h > 1 ? y * G * 65536 / (h - 1) : 0, gx = w > 1 ? x * G * 65536 / (w - 1) : 0;
    int64_t cy = gy / 65536 < G ? gy / 65536 : G - 1, cx = gx / 65536 < G ? gx / 65536 : G - 1;
    int64_t ty = gy - cy * 65536, tx = gx - cx * 65536;
    for (int dir = 0; dir < 2; dir++) {
        int64_t sum = 0;
        for (int64_t j = 0; j < 2; j++)
            for (int64_t i = 0; i < 2; i++) {
                int64_t wy = j ? ty : 65536 - ty, wx = i ? tx : 65536 - tx;
                int64_t k = (cy + j) * (G + 1) + cx + i;
                sum += wy * wx / 65536 *
                       (moves ? moves[2 * k + dir] : cn_elastic_move(d->field, d->elastic, k, dir));
            }
        *(dir ? ex : ey) = cn_floor_div(sum + 32768, 65536);
    }
}

CN_HD static inline void cn_elastic_at(const cn_aug_draw *d, int64_t h, int64_t w, int64_t y,
                                       int64_t x, int64_t *ey, int64_t *ex)
{
    cn_elastic_at_with(d, NULL, h, w, y, x, ey, ex);
}

/* Pixel (y, x) of one channel's output from that channel's input plane
 * (h x w), as the header says; moves: the elastic field's, or NULL (then
 * hashed as needed). */
CN_HD static inline uint8_t cn_aug_pixel_with(const uint8_t *plane, int64_t h, int64_t w,
                                              const cn_aug_draw *d, const int64_t *moves, int64_t y,
                                              int64_t x)
{
    if (d->erase && y >= d->ey && y < d->ey + d->eh && x >= d->ex && x < d->ex + d->ew)
        return 0;
    int64_t yy = y - d->dy, xx = x - d->dx;
    if (d->mirror)
        xx = w - 1 - xx;
    if (!d->affine && !d->elastic)
        return yy >= 0 && yy < h && xx >= 0 && xx < w ? plane[yy * w + xx] : 0;
    /* Offsets from the centre, doubled (whole numbers); the source point in
     * 2^-17 pixels. */
    int64_t u = 2 * xx - (w - 1), v = 2 * yy - (h - 1);
    int64_t px = (w - 1) * 65536 + d->m00 * u + d->m01 * v;
    int64_t py = (h - 1) * 65536 + d->m10 * u + d->m11 * v;
    if (d->elastic) { /* the offsets moved by e(p), in 2^-17 pixels */
        int64_t ey, ex;
        cn_elastic_at_with(d, moves, h, w, yy, xx, &ey, &ex);
        int64_t u17 = u * 65536 + 2 * ex, v17 = v * 65536 + 2 * ey;
        px = (w - 1) * 65536 + cn_floor_div(d->m00 * u17 + d->m01 * v17, 65536);
        py = (h - 1) * 65536 + cn_floor_div(d->m10 * u17 + d->m11 * v17, 65536);
    }
    int64_t x0 = cn_floor_div(px, 131072), y0 = cn_floor_div(py, 131072);
    if (x0 < -1 || x0 >= w || y0 < -1 || y0 >= h)
        return 0;
    uint64_t fx = (uint64_t)(px - x0 * 131072) >> 1, fy = (uint64_t)(py - y0 * 131072) >> 1;
    uint64_t sum = 0;
    for (int64_t j = 0; j < 2; j++)
        for (int64_t i = 0; i < 2; i++) {
            int64_t sy = y0 + j, sx = x0 + i;
            if (sy < 0 || sy >= h || sx < 0 || sx >= w)
                continue;
            uint64_t wy = j ? fy : 65536 - fy, wx = i ? fx : 65536 - fx;
            sum += wy * wx * plane[sy * w + sx];
        }
    return (uint8_t)((sum + ((uint64_t)1 << 31)) >> 32);
}

CN_HD static inline uint8_t cn_aug_pixel(const uint8_t *plane, int64_t h, int64_t w,
                                         const cn_aug_draw *d, int64_t y, int64_t x)
{
    return cn_aug_pixel_with(plane, h, w, d, NULL, y, x);
}

/* Sample src (c planes of h x w) augmented with draw d into dst (the
 * elastic field's moves hashed once for the sample). */
CN_HD static inline void cn_aug_sample(const uint8_t *src, uint8_t *dst, int64_t c, int64_t h,
                                       int64_t w, const cn_aug_draw *d)
{
    int64_t moves[2 * CN_ELASTIC_POINTS];
    if (d->elastic)
        cn_elastic_moves(d, moves);
    for (int64_t k = 0; k < c; k++)
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++)
                dst[(k * h + y) * w + x] =
                    cn_aug_pixel_with(src + k * h * w, h, w, d, d->elastic ? moves : NULL, y, x);
}

/* Mixup (cn_train_opts.mixup): the sample at place `at` of a step seeded
 * seed is blended, with probability p24 / 2^24, with a partner drawn
 * uniformly from the n samples of the training set, the partner augmented
 * with the draws of place at + CN_MIX_PARTNER_AT.  w24 / 2^24 is the
 * sample's own share (uniform in [0, 1) in steps of 2^-24; 2^24 when it is
 * not blended), of its pixels and of its target alike.  The draws come from
 * a generator of their own (the step's seed for the place, hashed with
 * "mixup"), so that a recipe without mixup draws what it always drew. */
#define CN_MIX_PARTNER_AT ((uint64_t)1 << 40)

typedef struct cn_mix_draw {
    int on;           /* blended */
    uint64_t partner; /* the partner's index in the training set */
    uint32_t w24;     /* the sample's own share, in 2^-24 */
} cn_mix_draw;

CN_HD static inline void cn_mix_draw_for(uint32_t p24, uint64_t n, uint64_t seed, uint64_t at,
                                         cn_mix_draw *d)
{
    uint64_t st[4];
    cn_xo_seed(st, cn_mix64(cn_step_seed(seed, at) ^ 0x6d69787570ULL)); /* "mixup" */
    d->on = p24 && n && (cn_xo_next(st) >> 40) < p24;
    d->partner = d->on ? cn_xo_below(st, n) : 0;
    d->w24 = d->on ? (uint32_t)(cn_xo_next(st) >> 40) : (uint32_t)1 << 24;
}

/* a = w a + (1 - w) b over count bytes, w = w24 / 2^24, rounded to the
 * nearest (halves up): integers only, the same bits everywhere. */
CN_HD static inline void cn_mix_pixels(uint8_t *a, const uint8_t *b, size_t count, uint32_t w24)
{
    uint64_t keep = w24, take = ((uint64_t)1 << 24) - w24;
    for (size_t i = 0; i < count; i++)
        a[i] = (uint8_t)((keep * a[i] + take * b[i] + ((uint64_t)1 << 23)) >> 24);
}

#endif
