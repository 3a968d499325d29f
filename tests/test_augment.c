/* test_augment.c - training's augmentation (src/augment.h): the generator
 * that host and device share, the fixed-point geometry against exact
 * pictures (a quarter turn is a transpose, scaling by 2 spreads the grid,
 * a 45-degree shear slides each row by its distance from the centre) and
 * against a double-precision reference, the ranges the draws keep to,
 * random erasing, determinism, the host's augmentation against the
 * backend's twin, and test-time augmentation with mirrors. */
#include "augment.h"
#include "harness.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846

/* Angle in degrees as augment.h takes it: radians * 2^16, rounded. */
static int64_t q16_degrees(double deg) { return (int64_t)lround(deg * PI / 180.0 * 65536.0); }

/* n pixels of random bytes. */
static uint8_t *random_pixels(size_t n, uint64_t seed)
{
    cn_rng rng;
    cn_rng_seed(&rng, seed);
    uint8_t *p = malloc(n);
    for (size_t i = 0; p && i < n; i++)
        p[i] = (uint8_t)cn_rng_below(&rng, 256);
    return p;
}

/* An affine draw (no shift, mirror or erasing) from angle, factor - 1 and
 * shear (augment.h's units). */
static cn_aug_draw affine(int64_t theta, int64_t k, int64_t phi)
{
    cn_aug_draw d;
    memset(&d, 0, sizeof d);
    d.affine = 1;
    cn_aug_matrix(theta, k, phi, &d);
    return d;
}

/* The generator is xoshiro256** seeded through splitmix64: its first
 * outputs for three seeds, from a separate implementation of the published
 * algorithm (so that host and device, which both run the header's code,
 * are also the generator the files were trained with). */
static void generator_is_xoshiro(void)
{
    static const uint64_t want[3][3] = {
        {0x99ec5f36cb75f2b4ULL, 0xbf6e1f784956452aULL, 0x1a5f849d4933e6e0ULL},
        {0xb3f2af6d0fc710c5ULL, 0x853b559647364ceaULL, 0x92f89756082a4514ULL},
        {0xbe6a36374160d49bULL, 0x214aaa0637a688c6ULL, 0xf69d16de9954d388ULL}};
    static const uint64_t seeds[3] = {0, 1, 12345};
    for (int s = 0; s < 3; s++) {
        cn_rng rng;
        cn_rng_seed(&rng, seeds[s]);
        for (int i = 0; i < 3; i++)
            CHECK_MSG(cn_rng_next(&rng) == want[s][i], "seed %llu, draw %d",
                      (unsigned long long)seeds[s], i);
    }
}

/* Sine and cosine in 30-bit fixed point, over the whole range of angles. */
static void sine_and_cosine_are_accurate(void)
{
    double worst = 0;
    for (int64_t a = -205887; a <= 205887; a += 97) { /* -pi .. pi, * 2^16 */
        int64_t s, c;
        cn_sincos_q30(a, &s, &c);
        double x = (double)a / 65536.0;
        double e =
            fmax(fabs((double)s - sin(x) * 1073741824.0), fabs((double)c - cos(x) * 1073741824.0));
        worst = e > worst ? e : worst;
    }
    CHECK_MSG(worst <= 64, "largest error %.0f * 2^-30", worst);
}

/* The inverse map against its formula in double precision. */
static void matrix_follows_its_formula(void)
{
    cn_rng rng;
    cn_rng_seed(&rng, 5);
    for (int t = 0; t < 2000; t++) {
        int64_t theta = (int64_t)cn_rng_below(&rng, 2 * 205887 + 1) - 205887;
        int64_t k = (int64_t)cn_rng_below(&rng, 65537) - 32768;
        int64_t phi = (int64_t)cn_rng_below(&rng, 2 * 68629 + 1) - 68629; /* 60 degrees */
        cn_aug_draw d = affine(theta, k, phi);
        double th = (double)theta / 65536, s = 1 + (double)k / 65536;
        double tn = tan((double)phi / 65536);
        double want[4] = {(cos(th) + tn * sin(th)) / s, (sin(th) - tn * cos(th)) / s, -sin(th) / s,
                          cos(th) / s};
        int64_t got[4] = {d.m00, d.m01, d.m10, d.m11};
        for (int i = 0; i < 4; i++)
            CHECK_MSG(fabs((double)got[i] - want[i] * 65536) <= 8,
                      "theta %lld, k %lld, phi %lld: m[%d] = %lld, want %.2f", (long long)theta,
                      (long long)k, (long long)phi, i, (long long)got[i], want[i] * 65536);
    }
}

/* Nothing asked, nothing changes; an affine map of angle 0, factor 1 and
 * no shear reads every pixel where it was. */
static void zero_is_the_identity(void)
{
    const cn_shape s = {3, 9, 12};
    size_t size = 3 * 9 * 12;
    uint8_t *orig = random_pixels(4 * size, 1), *pix = malloc(4 * size), *tmp = malloc(size);
    CHECK(orig && pix && tmp);
    memcpy(pix, orig, 4 * size);
    const cn_aug none = {0, 0, 0, 0, 0, 0, 0};
    cn_augment(pix, 4, s, &none, 7, 0, tmp);
    CHECK(memcmp(pix, orig, 4 * size) == 0);
    cn_aug_draw d = affine(0, 0, 0);
    CHECK(d.m00 == 65536 && d.m01 == 0 && d.m10 == 0 && d.m11 == 65536);
    cn_aug_sample(orig, pix, 3, 9, 12, &d);
    CHECK(memcmp(pix, orig, size) == 0);
    free(orig);
    free(pix);
    free(tmp);
}

/* A quarter turn about the centre of a square image moves every pixel to
 * another pixel: out(y, x) = in(h - 1 - x, y) for +90 degrees (clockwise on
 * the screen), in(x, w - 1 - y) for -90; half a turn of any rectangle is
 * in(h - 1 - y, w - 1 - x). */
static void quarter_turn_is_a_transpose(void)
{
    const int64_t n = 7, h = 5, w = 8;
    uint8_t *in = random_pixels((size_t)(n * n), 2), *out = malloc((size_t)(n * n));
    uint8_t *rect = random_pixels((size_t)(h * w), 3), *rout = malloc((size_t)(h * w));
    CHECK(in && out && rect && rout);
    cn_aug_draw d = affine(q16_degrees(90), 0, 0);
    cn_aug_sample(in, out, 1, n, n, &d);
    for (int64_t y = 0; y < n; y++)
        for (int64_t x = 0; x < n; x++)
            CHECK_MSG(out[y * n + x] == in[(n - 1 - x) * n + y], "+90: (%lld, %lld)", (long long)y,
                      (long long)x);
    d = affine(q16_degrees(-90), 0, 0);
    cn_aug_sample(in, out, 1, n, n, &d);
    for (int64_t y = 0; y < n; y++)
        for (int64_t x = 0; x < n; x++)
            CHECK_MSG(out[y * n + x] == in[x * n + (n - 1 - y)], "-90: (%lld, %lld)", (long long)y,
                      (long long)x);
    d = affine(q16_degrees(180), 0, 0);
    cn_aug_sample(rect, rout, 1, h, w, &d);
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            CHECK_MSG(rout[y * w + x] == rect[(h - 1 - y) * w + (w - 1 - x)], "180: (%lld, %lld)",
                      (long long)y, (long long)x);
    free(in);
    free(out);
    free(rect);
    free(rout);
}

/* Scaling by 2 about the centre c of a 9 x 9 image: out(c + 2i, c + 2j) =
 * in(c + i, c + j), and the pixels between are the means of their two (or
 * four) neighbours, rounded; by 1/2: out(c + i, c + j) = in(c + 2i, c + 2j),
 * and zero where that falls outside.  A 45-degree shear slides row y by
 * its distance from the centre: out(y, x) = in(y, x - (y - c)). */
static void scale_and_shear_on_the_grid(void)
{
    const int64_t n = 9, c = 4;
    uint8_t *in = random_pixels((size_t)(n * n), 4), *out = malloc((size_t)(n * n));
    CHECK(in && out);
    cn_aug_draw d = affine(0, 65536, 0); /* factor 2 */
    cn_aug_sample(in, out, 1, n, n, &d);
    for (int64_t i = -2; i <= 2; i++)
        for (int64_t j = -2; j <= 2; j++)
            CHECK(out[(c + 2 * i) * n + c + 2 * j] == in[(c + i) * n + c + j]);
    for (int64_t i = -2; i <= 2; i++) /* between two pixels of a row */
        for (int64_t j = -2; j < 2; j++) {
            int a = in[(c + i) * n + c + j], b = in[(c + i) * n + c + j + 1];
            CHECK_MSG(out[(c + 2 * i) * n + c + 2 * j + 1] == (a + b + 1) / 2, "between %d and %d",
                      a, b);
        }
    d = affine(0, -32768, 0); /* factor 1/2 */
    cn_aug_sample(in, out, 1, n, n, &d);
    for (int64_t i = -4; i <= 4; i++)
        for (int64_t j = -4; j <= 4; j++) {
            int inside = labs((long)(2 * i)) <= 4 && labs((long)(2 * j)) <= 4;
            CHECK(out[(c + i) * n + c + j] == (inside ? in[(c + 2 * i) * n + c + 2 * j] : 0));
        }
    d = affine(0, 0, q16_degrees(45));
    cn_aug_sample(in, out, 1, n, n, &d);
    for (int64_t y = 0; y < n; y++)
        for (int64_t x = 0; x < n; x++) {
            int64_t sx = x - (y - c);
            CHECK_MSG(out[y * n + x] == (sx >= 0 && sx < n ? in[y * n + sx] : 0),
                      "shear: (%lld, %lld)", (long long)y, (long long)x);
        }
    free(in);
    free(out);
}

/* Every pixel of drawn maps against bilinear interpolation in double
 * precision at the documented point (the map's own numbers): within one
 * step of 255 (the roundings of the weights). */
/* The input read in doubles where draw d's map takes the point (u, v)
 * pixels from the centre (bilinear, 0 outside), rounded. */
static int reference_pixel(const uint8_t *in, int64_t h, int64_t w, const cn_aug_draw *d, double u,
                           double v)
{
    double px = (double)(w - 1) / 2 + ((double)d->m00 * u + (double)d->m01 * v) / 65536;
    double py = (double)(h - 1) / 2 + ((double)d->m10 * u + (double)d->m11 * v) / 65536;
    double x0 = floor(px), y0 = floor(py), fx = px - x0, fy = py - y0, sum = 0;
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 2; i++) {
            double sy = y0 + j, sx = x0 + i;
            if (sy < 0 || sy >= (double)h || sx < 0 || sx >= (double)w)
                continue;
            sum += (j ? fy : 1 - fy) * (i ? fx : 1 - fx) * in[(int64_t)sy * w + (int64_t)sx];
        }
    return (int)lround(sum);
}

static void bilinear_matches_a_reference(void)
{
    const int64_t h = 11, w = 14;
    uint8_t *in = random_pixels((size_t)(h * w), 6), *out = malloc((size_t)(h * w));
    CHECK(in && out);
    const cn_aug aug = {1, 1, (int32_t)q16_degrees(30), 19661, (int32_t)q16_degrees(20), 0, 0};
    int worst = 0;
    for (uint64_t at = 0; at < 200; at++) {
        cn_aug_draw d;
        cn_aug_draw_for(&aug, h, w, 99, at, &d);
        CHECK(d.affine);
        cn_aug_sample(in, out, 1, h, w, &d);
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++) {
                double yy = (double)(y - d.dy), xx = (double)(x - d.dx);
                if (d.mirror)
                    xx = (double)w - 1 - xx;
                double u = xx - (double)(w - 1) / 2, v = yy - (double)(h - 1) / 2;
                int e = abs((int)out[y * w + x] - reference_pixel(in, h, w, &d, u, v));
                worst = e > worst ? e : worst;
            }
    }
    CHECK_MSG(worst <= 1, "a pixel %d away from the reference", worst);
    free(in);
    free(out);
}

/* The draws keep to the recipe's ranges and reach across them: rotate =
 * 10 gives angles within 10 degrees of both signs, beyond 9; scale = 0.2,
 * factors in [0.8, 1.2]; shear = 15, angles within 15 degrees. */
static void draws_keep_to_their_ranges(void)
{
    const cn_aug rot = {0, 0, (int32_t)q16_degrees(10), 0, 0, 0, 0};
    const cn_aug sc = {0, 0, 0, 13107, 0, 0, 0};
    const cn_aug sh = {0, 0, 0, 0, (int32_t)q16_degrees(15), 0, 0};
    double lo[3] = {1e9, 1e9, 1e9}, hi[3] = {-1e9, -1e9, -1e9};
    for (uint64_t at = 0; at < 2000; at++) {
        cn_aug_draw d;
        cn_aug_draw_for(&rot, 28, 28, 3, at, &d);
        double angle = asin(-(double)d.m10 / 65536) * 180 / PI;
        cn_aug_draw_for(&sc, 28, 28, 3, at, &d);
        double factor = 65536.0 / (double)d.m11;
        CHECK(d.m01 == 0 && d.m10 == 0 && d.m00 == d.m11);
        cn_aug_draw_for(&sh, 28, 28, 3, at, &d);
        double shear = atan(-(double)d.m01 / 65536) * 180 / PI;
        CHECK(d.m00 == 65536 && d.m10 == 0 && d.m11 == 65536);
        double v[3] = {angle, factor, shear};
        for (int i = 0; i < 3; i++) {
            lo[i] = v[i] < lo[i] ? v[i] : lo[i];
            hi[i] = v[i] > hi[i] ? v[i] : hi[i];
        }
    }
    CHECK_MSG(lo[0] >= -10.001 && hi[0] <= 10.001 && lo[0] < -9 && hi[0] > 9, "angles %g..%g",
              lo[0], hi[0]);
    CHECK_MSG(lo[1] >= 0.7999 && hi[1] <= 1.2001 && lo[1] < 0.82 && hi[1] > 1.18, "factors %g..%g",
              lo[1], hi[1]);
    CHECK_MSG(lo[2] >= -15.001 && hi[2] <= 15.001 && lo[2] < -14 && hi[2] > 14, "shears %g..%g",
              lo[2], hi[2]);
}

/* Random erasing: the output is the input but for one rectangle of zeros
 * in every channel, the one the draw names, with an area of 2% to 40% of
 * the image and sides in a ratio of at most 3.3 (give or take the rounding
 * of its sides); upright and lying ones both come, and reach every edge. */
static void erase_fills_a_rectangle(void)
{
    const int64_t c = 2, h = 20, w = 24, size = c * h * w;
    uint8_t *in = random_pixels((size_t)size, 10), *out = malloc((size_t)size);
    CHECK(in && out);
    for (int64_t i = 0; i < size; i++)
        in[i] = (uint8_t)(in[i] | 1); /* no zeros of its own */
    const cn_aug always = {0, 0, 0, 0, 0, 1u << 24, 0};
    int upright = 0, lying = 0, top = 0, bottom = 0, left = 0, right = 0;
    for (uint64_t at = 0; at < 500; at++) {
        cn_aug_draw d;
        cn_aug_draw_for(&always, h, w, 11, at, &d);
        CHECK_MSG(d.erase, "sample %llu: no rectangle", (unsigned long long)at);
        cn_aug_sample(in, out, c, h, w, &d);
        for (int64_t k = 0; k < c; k++)
            for (int64_t y = 0; y < h; y++)
                for (int64_t x = 0; x < w; x++) {
                    int inside = y >= d.ey && y < d.ey + d.eh && x >= d.ex && x < d.ex + d.ew;
                    int64_t i = (k * h + y) * w + x;
                    CHECK(out[i] == (inside ? 0 : in[i]));
                }
        /* Sides rounded to whole pixels: each within half a pixel. */
        double area = (double)(d.eh * d.ew), slack = (double)(d.eh + d.ew) / 2 + 0.25;
        double lng = (double)(d.eh > d.ew ? d.eh : d.ew),
               shrt = (double)(d.eh < d.ew ? d.eh : d.ew);
        CHECK_MSG(area >= 0.02 * (double)(h * w) - slack && area <= 0.4 * (double)(h * w) + slack &&
                      (lng - 0.5) / (shrt + 0.5) <= 3.3,
                  "%lldx%lld", (long long)d.eh, (long long)d.ew);
        upright += d.eh > d.ew;
        lying += d.ew > d.eh;
        top |= d.ey == 0;
        bottom |= d.ey + d.eh == h;
        left |= d.ex == 0;
        right |= d.ex + d.ew == w;
    }
    CHECK(upright > 100 && lying > 100 && top && bottom && left && right);
    free(in);
    free(out);
}

/* erase = P erases about P of the samples, each as it says; 0 none. */
static void erase_follows_its_probability(void)
{
    const cn_aug half = {0, 0, 0, 0, 0, 1u << 23, 0}, none = {1, 1, 0, 0, 0, 0, 0};
    int erased = 0;
    for (uint64_t at = 0; at < 4000; at++) {
        cn_aug_draw d;
        cn_aug_draw_for(&half, 28, 28, 12, at, &d);
        erased += d.erase;
        cn_aug_draw_for(&none, 28, 28, 12, at, &d);
        CHECK(!d.erase);
    }
    CHECK_MSG(erased > 2000 - 130 && erased < 2000 + 130, "%d of 4000 erased", erased);
}

/* The same seed gives the same batch; a sample's augmentation depends on
 * its place in the global batch only (a worker that has samples 3.. of it
 * draws what one worker would); another seed gives another batch. */
static void same_seed_same_batch(void)
{
    const cn_shape s = {1, 28, 28};
    const size_t size = 784, n = 6;
    const cn_aug aug = {2,        1, (int32_t)q16_degrees(15), 9830, (int32_t)q16_degrees(10),
                        1u << 23, 0};
    uint8_t *orig = random_pixels(n * size, 8), *a = malloc(n * size), *b = malloc(n * size);
    uint8_t *tmp = malloc(size);
    CHECK(orig && a && b && tmp);
    memcpy(a, orig, n * size);
    memcpy(b, orig, n * size);
    cn_augment(a, n, s, &aug, 77, 0, tmp);
    cn_augment(b, n, s, &aug, 77, 0, tmp);
    CHECK(memcmp(a, b, n * size) == 0);
    CHECK(memcmp(a, orig, n * size) != 0);
    memcpy(b, orig + 3 * size, 3 * size);
    cn_augment(b, 3, s, &aug, 77, 3, tmp);
    CHECK(memcmp(a + 3 * size, b, 3 * size) == 0);
    memcpy(b, orig, n * size);
    cn_augment(b, n, s, &aug, 78, 0, tmp);
    CHECK(memcmp(a, b, n * size) != 0);
    free(orig);
    free(a);
    free(b);
    free(tmp);
}

/* The CPU backend's gather_pixels (the twin that the guard backend runs and
 * the CUDA kernel is checked against) gives the host's augmented pixels and
 * their preparation, bit for bit, for every setting. */
static void host_and_twin_agree(void)
{
    const cn_device cpu = {"cpu", 0, 1};
    cn_backend *be;
    CHECK_OK(cn_backend_create(&cpu, NULL, &be));
    const cn_shape s = {2, 10, 13};
    const size_t size = 2 * 10 * 13, total = 20, n = 9;
    uint8_t *data = random_pixels(total * size, 9), *host = malloc(n * size);
    uint8_t *pix = malloc(n * size), *tmp = malloc(size);
    float *x = malloc(n * size * sizeof *x), *want = malloc(n * size * sizeof *want);
    CHECK(data && host && pix && tmp && x && want);
    uint32_t idx[9] = {3, 19, 0, 7, 7, 12, 5, 1, 18};
    const float norm[4] = {0.2f, 0.3f, 0.5f, 0.25f};
    const cn_aug augs[] = {
        {0, 0, 0, 0, 0, 0, 0},
        {2, 1, 0, 0, 0, 0, 0},
        {0, 0, (int32_t)q16_degrees(25), 0, 0, 0, 0},
        {0, 0, 0, 26214, 0, 0, 0},
        {0, 0, 0, 0, (int32_t)q16_degrees(30), 0, 0},
        {0, 0, 0, 0, 0, 1u << 24, 0},
        {3, 1, (int32_t)q16_degrees(180), 32768, (int32_t)q16_degrees(60), 1u << 23, 0},
        {0, 0, 0, 0, 0, 0, 163840},
        {2, 1, (int32_t)q16_degrees(15), 6554, (int32_t)q16_degrees(10), 1u << 23, 524288}};
    for (size_t a = 0; a < sizeof augs / sizeof augs[0]; a++) {
        for (size_t i = 0; i < n; i++)
            memcpy(host + i * size, data + idx[i] * size, size);
        cn_augment(host, n, s, &augs[a], 1234 + a, 40, tmp);
        be->gather_pixels(be, data, idx, n, s, augs[a], 1234 + a, 40, norm, pix, x);
        CHECK_MSG(memcmp(host, pix, n * size) == 0, "augmentation %zu: other pixels", a);
        be->input_from_pixels(be, host, n, 2, 130, norm, want);
        CHECK_MSG(memcmp(x, want, n * size * sizeof *x) == 0, "augmentation %zu: other inputs", a);
    }
    free(data);
    free(host);
    free(pix);
    free(tmp);
    free(x);
    free(want);
    cn_backend_destroy(be);
}

/* The small network of the test-time augmentation tests (input 2x5x6, 3
 * classes), initialised from seed, in *net (NULL if it could not be made),
 * its spec in *spec. */
static void tta_net(uint64_t seed, cn_spec **spec, cn_net **net)
{
    *net = NULL;
    *spec = th_spec("[net]\nchannels=2\nheight=5\nwidth=6\nclasses=3\n"
                    "[conv]\nfilters=3\nsize=3\n[relu]\n[fc]\noutputs=3\n[softmax]\n");
    CHECK(*spec);
    CHECK_OK(cn_net_create(*spec, 8, th_dev(1), net));
    cn_rng rng;
    cn_rng_seed(&rng, seed);
    cn_net_init(*net, &rng);
}

/* The n two-channel 5x6 images pix moved as a test-time view, made here
 * pixel by pixel into out: plane (y, x) reads the source at (y - dy, x - dx),
 * or at (y - dy, 5 - (x - dx)) when mirrored, 0 outside. */
static void tta_moved(const uint8_t *pix, size_t n, int dy, int dx, int mirror, uint8_t *out)
{
    for (size_t q = 0; q < n * 2; q++)
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 6; x++) {
                int yy = y - dy, xx = mirror ? 5 - (x - dx) : x - dx;
                out[q * 30 + (size_t)(y * 6 + x)] = yy >= 0 && yy < 5 && xx >= 0 && xx < 6
                                                        ? pix[q * 30 + (size_t)(yy * 6 + xx)]
                                                        : 0;
            }
}

/* How many of the n images the summed probabilities sum (n, 3) classify as
 * labels says. */
static size_t tta_right(const float *sum, const int32_t *labels, size_t n)
{
    size_t right = 0;
    for (size_t s = 0; s < n; s++) {
        const float *p = sum + s * 3;
        size_t best = p[1] > p[0] ? 1 : 0;
        best = p[2] > p[best] ? 2 : best;
        right += best == (size_t)labels[s];
    }
    return right;
}

/* A test-time augmentation of views views (5: CN_TTA_SHIFT, 10:
 * CN_TTA_FLIP_SHIFT) against the mean of its views made here (tta_moved:
 * the image, its shifts by one pixel down, up, right and left, then the
 * mirrors of those five), on a grid that is not square, 2 channels: the
 * probabilities, the last pass's outputs (the last view's), and an
 * evaluation's accuracy and loss (-log of the label's mean probability). */
static void tta_check_views(cn_tta tta, const char *name, int views, uint64_t seed)
{
    cn_spec *spec;
    cn_net *net;
    tta_net(seed, &spec, &net);
    CHECK(net);
    const size_t n = 7, size = 60, k = 3;
    const int moves[5][2] = {{0, 0}, {1, 0}, {-1, 0}, {0, 1}, {0, -1}};
    uint8_t *pix = random_pixels(n * size, seed + 1), *moved = malloc(n * size);
    float sum[21] = {0}, one[21], plain[21], got[21];
    CHECK(pix && moved);
    for (int v = 0; v < views; v++) {
        tta_moved(pix, n, moves[v % 5][0], moves[v % 5][1], v >= 5, moved);
        CHECK_OK(cn_net_forward_pixels(net, moved, n, 0));
        CHECK_OK(cn_net_get_output(net, one));
        for (size_t i = 0; i < n * k; i++)
            sum[i] += one[i];
    }
    CHECK_OK(cn_net_classify_pixels(net, pix, n, CN_TTA_NONE, plain));
    CHECK_OK(cn_net_classify_pixels(net, pix, n, tta, got));
    int differs = 0;
    for (size_t i = 0; i < n * k; i++) {
        CHECK_NEAR(got[i], sum[i] / (float)views, 1e-6);
        differs |= fabsf(got[i] - plain[i]) > 1e-3f;
    }
    CHECK(differs);
    CHECK_OK(cn_net_get_output(net, got));
    CHECK(memcmp(got, one, sizeof one) == 0);
    int32_t labels[7] = {2, 1, 0, 0, 1, 2, 1};
    cn_data d = {.n = n, .shape = {2, 5, 6}, .classes = 3, .pixels = pix, .labels = labels};
    cn_eval ev;
    CHECK_OK(cn_net_evaluate_tta(net, &d, tta, &ev));
    double loss = 0.0;
    for (size_t s = 0; s < n; s++)
        loss -= log(sum[s * k + (size_t)labels[s]] / views);
    CHECK_NEAR(ev.accuracy, (double)tta_right(sum, labels, n) / (double)n, 0);
    CHECK_NEAR(ev.loss, loss / (double)n, 1e-5);
    CHECK(cn_tta_by_name(name) == (int)tta && strcmp(cn_tta_name(tta), name) == 0);
    cn_eval_free(&ev);
    free(pix);
    free(moved);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* CN_TTA_SHIFT: the mean over each image and its four shifts. */
static void tta_shift_averages_shifts(void) { tta_check_views(CN_TTA_SHIFT, "shift", 5, 17); }

/* CN_TTA_FLIP_SHIFT: the mean over those five views and their mirrors;
 * no augmentation past it. */
static void tta_flip_shift_averages_ten_views(void)
{
    tta_check_views(CN_TTA_FLIP_SHIFT, "flip-shift", 10, 19);
    CHECK(strcmp(cn_tta_name((cn_tta)4), "?") == 0 && cn_tta_by_name("shift-flip") == -1);
}

/* Test-time augmentation: CN_TTA_NONE gives the network's probabilities;
 * CN_TTA_FLIP their mean with those of the mirrored images (mirrored here);
 * an evaluation with it scores those probabilities (best class, -log of the
 * label's), and without it is cn_net_evaluate's. */
static void tta_flip_averages_mirrors(void)
{
    cn_spec *spec;
    cn_net *net;
    tta_net(13, &spec, &net);
    CHECK(net);
    const size_t n = 7, size = 60, k = 3;
    uint8_t *pix = random_pixels(n * size, 14), *mirror = malloc(n * size);
    float plain[21], flipped[21], tta[21];
    CHECK(pix && mirror);
    tta_moved(pix, n, 0, 0, 1, mirror);
    CHECK_OK(cn_net_forward_pixels(net, pix, n, 0));
    CHECK_OK(cn_net_get_output(net, plain));
    CHECK_OK(cn_net_forward_pixels(net, mirror, n, 0));
    CHECK_OK(cn_net_get_output(net, flipped));
    CHECK_OK(cn_net_classify_pixels(net, pix, n, CN_TTA_NONE, tta));
    CHECK(memcmp(tta, plain, sizeof plain) == 0);
    CHECK_OK(cn_net_classify_pixels(net, pix, n, CN_TTA_FLIP, tta));
    int differs = 0;
    for (size_t i = 0; i < n * k; i++) {
        CHECK_NEAR(tta[i], 0.5 * (plain[i] + flipped[i]), 1e-7);
        differs |= fabsf(tta[i] - plain[i]) > 1e-3f;
    }
    CHECK(differs);
    /* An evaluation of the same images with labels. */
    int32_t labels[7] = {0, 1, 2, 0, 1, 2, 2};
    cn_data d = {.n = n, .shape = {2, 5, 6}, .classes = 3, .pixels = pix, .labels = labels};
    cn_eval ev, plain_ev, none_ev;
    CHECK_OK(cn_net_evaluate_tta(net, &d, CN_TTA_FLIP, &ev));
    double loss = 0;
    size_t right = 0;
    for (size_t s = 0; s < n; s++) {
        const float *p = tta + s * k;
        size_t best = p[1] > p[0] ? 1 : 0;
        best = p[2] > p[best] ? 2 : best;
        loss -= log((double)p[labels[s]]) / (double)n;
        right += best == (size_t)labels[s];
        CHECK(ev.predicted[s] == best && ev.probability[s] == p[best]);
    }
    CHECK_NEAR(ev.loss, loss, 1e-9);
    CHECK_NEAR(ev.accuracy, (double)right / (double)n, 0);
    CHECK_OK(cn_net_evaluate(net, &d, &plain_ev));
    CHECK_OK(cn_net_evaluate_tta(net, &d, CN_TTA_NONE, &none_ev));
    CHECK(none_ev.loss == plain_ev.loss && none_ev.accuracy == plain_ev.accuracy);
    CHECK_ERR(cn_net_classify_pixels(net, pix, n, (cn_tta)4, tta),
              CN_ERR_ARG); /* the first past the last */
    CHECK(cn_tta_by_name("flip") == CN_TTA_FLIP && cn_tta_by_name("none") == CN_TTA_NONE &&
          cn_tta_by_name("mirror") == -1 && strcmp(cn_tta_name(CN_TTA_FLIP), "flip") == 0);
    cn_eval_free(&ev);
    cn_eval_free(&plain_ev);
    cn_eval_free(&none_ev);
    free(pix);
    free(mirror);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* The public cn_train_opts_augment is training's augmentation: the pixels
 * of step 3 at places 5.. of a run seeded with 21, and nothing for a recipe
 * without augmentation; a recipe out of range is refused. */
static void public_augment_is_trainings(void)
{
    const cn_shape s = {1, 12, 12};
    const size_t n = 4, size = 144;
    uint8_t *orig = random_pixels(n * size, 15), *a = malloc(n * size), *b = malloc(n * size);
    uint8_t tmp[144];
    CHECK(orig && a && b);
    cn_train_opts o;
    cn_train_opts_defaults(&o);
    o.seed = 21;
    memcpy(a, orig, n * size);
    CHECK_OK(cn_train_opts_augment(&o, a, n, s, 3, 5));
    CHECK(memcmp(a, orig, n * size) == 0);
    o.shift = 1;
    o.rotate = 12;
    o.scale = 0.1;
    o.shear = 6;
    o.erase = 0.5;
    const cn_aug aug = cn_aug_of(&o);
    CHECK(aug.rotate == (int32_t)lround(12 * PI / 180 * 65536) && aug.scale == 6554 &&
          aug.erase == 1u << 23);
    memcpy(a, orig, n * size);
    memcpy(b, orig, n * size);
    CHECK_OK(cn_train_opts_augment(&o, a, n, s, 3, 5));
    cn_augment(b, n, s, &aug, cn_step_seed(21, 3), 5, tmp);
    CHECK(memcmp(a, b, n * size) == 0 && memcmp(a, orig, n * size) != 0);
    o.rotate = 400;
    CHECK_ERR(cn_train_opts_augment(&o, a, n, s, 3, 5), CN_ERR_ARG);
    free(orig);
    free(a);
    free(b);
}

/* Mixup's draws: a share P of the places blended (none at P 0, all at P
 * 1), partners below the set's size, shares in [0, 1) and spread over it,
 * the same draws for the same seed and place; a recipe with mixup draws
 * the other augmentations as before (its generator is its own).  The
 * blend is the rounded integer mix, checked by hand. */
static void mixup_draws_and_blends(void)
{
    int on = 0, none = 0, all = 0;
    double keep_sum = 0.0;
    for (uint64_t at = 0; at < 4000; at++) {
        cn_mix_draw d, e;
        cn_mix_draw_for(1u << 23, 1000, 31, at, &d);
        cn_mix_draw_for(1u << 23, 1000, 31, at, &e);
        CHECK(d.on == e.on && d.partner == e.partner && d.w24 == e.w24);
        if (d.on) {
            on++;
            keep_sum += d.w24 / 16777216.0;
            CHECK(d.partner < 1000 && d.w24 < 1u << 24);
        } else {
            CHECK(d.w24 == 1u << 24);
        }
        cn_mix_draw_for(0, 1000, 31, at, &e);
        none += e.on;
        cn_mix_draw_for(1u << 24, 1000, 31, at, &e);
        all += e.on;
    }
    CHECK_MSG(on > 2000 - 130 && on < 2000 + 130, "%d of 4000 blended", on);
    CHECK_MSG(fabs(keep_sum / on - 0.5) < 0.03, "mean share %.3f", keep_sum / on);
    CHECK(none == 0 && all == 4000);
    uint8_t a[4] = {200, 0, 255, 7}, b[4] = {100, 255, 0, 7};
    cn_mix_pixels(a, b, 4, 1u << 23); /* halves: (200 + 100) / 2, 127.5 up, 127.5 up, 7 */
    CHECK(a[0] == 150 && a[1] == 128 && a[2] == 128 && a[3] == 7);
    uint8_t c[2] = {10, 250}, dd[2] = {250, 10};
    cn_mix_pixels(c, dd, 2, 1u << 22); /* a quarter of c: 10/4 + 250*3/4 = 190 */
    CHECK(c[0] == 190 && c[1] == 70);
}

/* cn_train_opts_augment with mixup: every sample is its own augmented image
 * or the blend the draws say of it and a partner among the samples given,
 * augmented with the partner's own draws (constant images: the blend of two
 * values, exactly). */
static void public_augment_mixes_pairs(void)
{
    const cn_shape s = {1, 6, 6};
    const size_t n = 16, size = 36;
    uint8_t *pix = malloc(n * size);
    CHECK(pix);
    for (size_t i = 0; i < n; i++)
        memset(pix + i * size, (int)(10 + 15 * i), size);
    cn_train_opts o;
    cn_train_opts_defaults(&o);
    o.seed = 4;
    o.mixup = 0.5;
    CHECK_OK(cn_train_opts_augment(&o, pix, n, s, 2, 3));
    uint64_t seed = cn_step_seed(4, 2);
    int blended = 0;
    for (size_t i = 0; i < n; i++) {
        cn_mix_draw d;
        cn_mix_draw_for(1u << 23, n, seed, 3 + i, &d);
        uint8_t want = (uint8_t)(10 + 15 * i), other = (uint8_t)(10 + 15 * d.partner);
        if (d.on)
            cn_mix_pixels(&want, &other, 1, d.w24);
        blended += d.on && want != 10 + 15 * i;
        for (size_t k = 0; k < size; k++)
            CHECK_MSG(pix[i * size + k] == want, "sample %zu: %d, expected %d", i,
                      pix[i * size + k], want);
    }
    CHECK(blended > 0 && blended < (int)n);
    o.mixup = 1.5;
    CHECK_ERR(cn_train_opts_augment(&o, pix, n, s, 2, 3), CN_ERR_ARG);
    free(pix);
}

/* The elastic field against its definition in doubles: the control
 * points' moves blended bilinearly over the 4 x 4 grid (within 2^-11 pixel
 * of it); bounded by a; continuous (neighbours differ by at most the
 * steepest blend, 2a over a cell); and of the size it promises (a = 2.5:
 * a mean move of about a pixel). */
static void elastic_field_follows_its_formula(void)
{
    const int64_t h = 28, w = 28, a = 163840; /* 2.5 pixels */
    const cn_aug aug = {0, 0, 0, 0, 0, 0, (int32_t)a};
    double worst = 0, step = 0, mean = 0;
    int64_t most = 0;
    for (uint64_t at = 0; at < 50; at++) {
        cn_aug_draw d;
        cn_aug_draw_for(&aug, h, w, 7, at, &d);
        CHECK(d.elastic == a && !d.affine);
        int64_t prev[2] = {0, 0};
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++) {
                int64_t e[2];
                cn_elastic_at(&d, h, w, y, x, &e[0], &e[1]);
                double gy = (double)y * 4 / (double)(h - 1), gx = (double)x * 4 / (double)(w - 1);
                int cy = gy < 4 ? (int)gy : 3, cx = gx < 4 ? (int)gx : 3;
                double ty = gy - cy, tx = gx - cx;
                for (int dir = 0; dir < 2; dir++) {
                    double want = 0;
                    for (int j = 0; j < 2; j++)
                        for (int i = 0; i < 2; i++)
                            want += (j ? ty : 1 - ty) * (i ? tx : 1 - tx) *
                                    (double)cn_elastic_move(d.field, a, (cy + j) * 5 + cx + i, dir);
                    worst = fmax(worst, fabs(want - (double)e[dir]) / 65536);
                    most = llabs(e[dir]) > most ? llabs(e[dir]) : most;
                    mean += fabs((double)e[dir]) / 65536 / (double)(50 * h * w * 2);
                    if (x > 0)
                        step = fmax(step, fabs((double)(e[dir] - prev[dir])) / 65536);
                    prev[dir] = e[dir];
                }
            }
    }
    CHECK_MSG(worst < 1.0 / 2048, "the field is %g pixels from its formula", worst);
    CHECK_MSG(most <= a, "a move of %g pixels past a = 2.5", (double)most / 65536);
    CHECK_MSG(step <= 2.0 * 2.5 * 4 / 27 + 1e-4, "neighbours %g pixels apart", step);
    CHECK_MSG(mean > 0.6 && mean < 1.4, "a mean move of %g pixels", mean);
}

/* The sampling follows the field: each output pixel is the input read
 * bilinearly at its point moved by e (a double-precision reference, within
 * one level); a field of 2^-16 pixel leaves the picture as it was; the
 * other draws are those of the same recipe without it. */
static void elastic_reads_where_the_field_says(void)
{
    const int64_t h = 12, w = 16;
    uint8_t *in = random_pixels((size_t)(h * w), 8), *out = malloc((size_t)(h * w));
    CHECK(in && out);
    const cn_aug aug = {1, 1, (int32_t)q16_degrees(20), 6554, 0, 0, 131072};
    const cn_aug plain = {1, 1, (int32_t)q16_degrees(20), 6554, 0, 0, 0};
    const cn_aug tiny = {0, 0, 0, 0, 0, 0, 1};
    int worst = 0;
    for (uint64_t at = 0; at < 100; at++) {
        cn_aug_draw d, p, t;
        cn_aug_draw_for(&aug, h, w, 5, at, &d);
        cn_aug_draw_for(&plain, h, w, 5, at, &p);
        CHECK(d.dy == p.dy && d.dx == p.dx && d.mirror == p.mirror && d.m00 == p.m00 &&
              d.m01 == p.m01 && d.m10 == p.m10 && d.m11 == p.m11);
        cn_aug_sample(in, out, 1, h, w, &d);
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++) {
                int64_t yy = y - d.dy, xx = x - d.dx, ey, ex;
                if (d.mirror)
                    xx = w - 1 - xx;
                cn_elastic_at(&d, h, w, yy, xx, &ey, &ex);
                double u = (double)xx + (double)ex / 65536 - (double)(w - 1) / 2;
                double v = (double)yy + (double)ey / 65536 - (double)(h - 1) / 2;
                int e = abs((int)out[y * w + x] - reference_pixel(in, h, w, &d, u, v));
                worst = e > worst ? e : worst;
            }
        cn_aug_draw_for(&tiny, h, w, 5, at, &t);
        cn_aug_sample(in, out, 1, h, w, &t);
        CHECK_MSG(memcmp(in, out, (size_t)(h * w)) == 0, "a 2^-16-pixel field changed sample %llu",
                  (unsigned long long)at);
    }
    CHECK_MSG(worst <= 1, "a pixel %d away from the reference", worst);
    free(in);
    free(out);
}

/* An ensemble's classes are the mean of its networks' probabilities (each
 * with the test-time augmentation asked for), for no more images than every
 * network takes; its evaluation scores them in batches that fit every
 * network (the second takes 4 images at a time); an ensemble of one without
 * augmentation is cn_net_evaluate; networks that differ in their classes
 * are refused. */
static void ensemble_averages_models(void)
{
    cn_spec *spec, *spec4;
    cn_net *a, *b = NULL, *c = NULL;
    tta_net(21, &spec, &a);
    CHECK(a);
    CHECK_OK(cn_net_create(spec, 4, th_dev(1), &b));
    cn_rng rng;
    cn_rng_seed(&rng, 22);
    cn_net_init(b, &rng);
    const size_t n = 7, size = 60, k = 3;
    uint8_t *pix = random_pixels(n * size, 23);
    int32_t labels[7] = {0, 1, 2, 2, 1, 0, 1};
    cn_data d = {.n = n, .shape = {2, 5, 6}, .classes = 3, .pixels = pix, .labels = labels};
    cn_net *both[2] = {a, b};
    for (int t = CN_TTA_NONE; t <= CN_TTA_FLIP; t++) {
        float pa[21], pb[21];
        CHECK_OK(cn_net_classify_pixels(a, pix, n, (cn_tta)t, pa));
        CHECK_OK(cn_net_classify_pixels(b, pix, 4, (cn_tta)t, pb));
        CHECK_OK(cn_net_classify_pixels(b, pix + 4 * size, 3, (cn_tta)t, pb + 4 * k));
        float pe[12];
        CHECK_OK(cn_net_classify_ensemble(both, 2, pix, 4, (cn_tta)t, pe));
        for (size_t i = 0; i < 4 * k; i++)
            CHECK_NEAR(pe[i], (pa[i] + pb[i]) / 2, 1e-6);
        CHECK(cn_net_classify_ensemble(both, 2, pix, 7, (cn_tta)t, pe) == CN_ERR_ARG);
        cn_eval ev;
        CHECK_OK(cn_net_evaluate_ensemble(both, 2, &d, (cn_tta)t, &ev));
        double loss = 0;
        size_t right = 0, differ = 0;
        for (size_t s = 0; s < n; s++) {
            float m[3];
            for (size_t j = 0; j < k; j++)
                m[j] = (pa[s * k + j] + pb[s * k + j]) / 2;
            size_t best = m[1] > m[0] ? 1 : 0;
            best = m[2] > m[best] ? 2 : best;
            CHECK_MSG(ev.predicted[s] == best, "image %zu: class %zu, want %zu", s, ev.predicted[s],
                      best);
            CHECK_NEAR(ev.probability[s], m[best], 1e-6);
            right += best == (size_t)labels[s];
            loss -= log(m[labels[s]]);
            size_t ba = pa[s * k + 1] > pa[s * k] ? 1 : 0;
            ba = pa[s * k + 2] > pa[s * k + ba] ? 2 : ba;
            differ += ba != best;
        }
        CHECK_NEAR(ev.accuracy, (double)right / (double)n, 0);
        CHECK_NEAR(ev.loss, loss / (double)n, 1e-5);
        CHECK_MSG(differ > 0, "the ensemble picks network 1's classes (tta %d)", t);
        cn_eval_free(&ev);
    }
    cn_eval one, plain;
    CHECK_OK(cn_net_evaluate_ensemble(both, 1, &d, CN_TTA_NONE, &one));
    CHECK_OK(cn_net_evaluate(a, &d, &plain));
    CHECK_NEAR(one.loss, plain.loss, 0);
    CHECK_NEAR(one.accuracy, plain.accuracy, 0);
    cn_eval_free(&one);
    cn_eval_free(&plain);
    spec4 = th_spec("[net]\nchannels=2\nheight=5\nwidth=6\nclasses=4\n"
                    "[conv]\nfilters=3\nsize=3\n[relu]\n[fc]\noutputs=4\n[softmax]\n");
    CHECK(spec4);
    CHECK_OK(cn_net_create(spec4, 8, th_dev(1), &c));
    cn_net *mixed[2] = {a, c};
    cn_eval ev;
    CHECK(cn_net_evaluate_ensemble(mixed, 2, &d, CN_TTA_NONE, &ev) == CN_ERR_SHAPE);
    CHECK(strstr(cn_last_error(), "network 2 takes 2x5x6 images into 4 classes") != NULL);
    CHECK(cn_net_evaluate_ensemble(both, 0, &d, CN_TTA_NONE, &ev) == CN_ERR_ARG);
    float p4[8];
    CHECK(cn_net_classify_ensemble(mixed, 2, pix, 2, CN_TTA_NONE, p4) == CN_ERR_SHAPE);
    free(pix);
    cn_net_free(a);
    cn_net_free(b);
    cn_net_free(c);
    cn_spec_free(spec);
    cn_spec_free(spec4);
}

const th_test th_augment[] = {
    {"augment/generator_is_xoshiro", generator_is_xoshiro},
    {"augment/sine_and_cosine_are_accurate", sine_and_cosine_are_accurate},
    {"augment/matrix_follows_its_formula", matrix_follows_its_formula},
    {"augment/zero_is_the_identity", zero_is_the_identity},
    {"augment/quarter_turn_is_a_transpose", quarter_turn_is_a_transpose},
    {"augment/scale_and_shear_on_the_grid", scale_and_shear_on_the_grid},
    {"augment/bilinear_matches_a_reference", bilinear_matches_a_reference},
    {"augment/draws_keep_to_their_ranges", draws_keep_to_their_ranges},
    {"augment/erase_fills_a_rectangle", erase_fills_a_rectangle},
    {"augment/erase_follows_its_probability", erase_follows_its_probability},
    {"augment/same_seed_same_batch", same_seed_same_batch},
    {"augment/host_and_twin_agree", host_and_twin_agree},
    {"augment/public_augment_is_trainings", public_augment_is_trainings},
    {"augment/mixup_draws_and_blends", mixup_draws_and_blends},
    {"augment/public_augment_mixes_pairs", public_augment_mixes_pairs},
    {"augment/tta_flip_averages_mirrors", tta_flip_averages_mirrors},
    {"augment/tta_shift_averages_shifts", tta_shift_averages_shifts},
    {"augment/tta_flip_shift_averages_ten_views", tta_flip_shift_averages_ten_views},
    {"augment/ensemble_averages_models", ensemble_averages_models},
    {"augment/elastic_field_follows_its_formula", elastic_field_follows_its_formula},
    {"augment/elastic_reads_where_the_field_says", elastic_reads_where_the_field_says},
    {NULL, NULL},
};
