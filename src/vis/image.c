/* image.c - image files in (stb_image), and the conversion of any picture
 * into a network's input: grey or colour, polarity, size and placement. */
#include "vis.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

cn_status cn_image_new(int w, int h, int c, cn_image *out)
{
    memset(out, 0, sizeof *out);
    if ((c != 1 && c != 3) || w < 1 || h < 1 || w > 65535 || h > 65535)
        return cn_fail(CN_ERR_ARG, "cannot make a %dx%d image of %d channels", w, h, c);
    out->px = calloc((size_t)w * (size_t)h * (size_t)c, 1);
    if (!out->px)
        return cn_fail(CN_ERR_NOMEM, "out of memory for a %dx%d image", w, h);
    out->w = w;
    out->h = h;
    out->c = c;
    return CN_OK;
}

void cn_image_free(cn_image *img)
{
    if (!img)
        return;
    free(img->px);
    memset(img, 0, sizeof *img);
}

cn_status cn_image_from_planes(const uint8_t *pixels, cn_shape s, int scale, cn_image *out)
{
    int sc = scale < 1 ? 1 : scale;
    cn_status st = cn_image_new((int)s.w * sc, (int)s.h * sc, s.c == 3 ? 3 : 1, out);
    if (st)
        return st;
    size_t w = (size_t)out->w, c = (size_t)out->c;
    for (size_t y = 0; y < (size_t)out->h; y++)
        for (size_t x = 0; x < w; x++)
            for (size_t k = 0; k < c; k++)
                out->px[(y * w + x) * c + k] =
                    pixels[(k * s.h + y / (size_t)sc) * s.w + x / (size_t)sc];
    return CN_OK;
}

/* a over white, both 0..255 */
static uint8_t over_white(int v, int a) { return (uint8_t)((v * a + 255 * (255 - a) + 127) / 255); }

/* Image files larger than this are refused (a photograph is a few MB). */
#define MAX_IMAGE_BYTES ((size_t)256 << 20)
/* So are images of more pixels than this (8192 x 8192): stb allocates the
 * whole image before it reads the pixel data, and a few bytes of header can
 * claim 65535 x 65535. */
#define MAX_IMAGE_PIXELS ((size_t)1 << 26)

/* Whether a JPEG's Huffman tables (its DHT segments) define at most 256 codes
 * each.  stb_image 2.27, Debian 12's, writes past its tables when one defines
 * more (fixed upstream in 2.28), so such a file must not reach it.  The
 * segments are walked as stb walks them: by their lengths, marker to marker,
 * and through entropy-coded data byte by byte; each table is read whole even
 * where the segment's length says it ends sooner, as stb does; the start of
 * image may follow fill bytes (ff ff d8), which stb skips too (a fuzzer's
 * find).  Any other file gives 1. */
static int jpeg_tables_ok(const uint8_t *p, size_t n)
{
    /* the start of image, after any fill bytes (0xff), as stb reads it */
    size_t i = 1;
    while (i < n && p[i] == 0xff)
        i++;
    if (n < 2 || p[0] != 0xff || i >= n || p[i] != 0xd8)
        return 1;
    i++;
    while (i + 1 < n) {
        if (p[i] != 0xff || p[i + 1] == 0xff) { /* data, or a fill byte */
            i++;
            continue;
        }
        unsigned m = p[i + 1];
        if (m == 0x00 || m == 0x01 || (m >= 0xd0 && m <= 0xd8)) { /* no length */
            i += 2;
            continue;
        }
        if (m == 0xd9 || i + 3 >= n) /* end of image */
            return 1;
        size_t len = (size_t)p[i + 2] << 8 | p[i + 3];
        if (m == 0xc4) {
            size_t j = i + 4;
            long left = (long)len - 2;
            while (left > 0 && j < n) {
                size_t codes = 0;
                for (size_t k = 1; k <= 16; k++)
                    codes += j + k < n ? p[j + k] : 0;
                if (codes > 256)
                    return 0;
                j += 17 + codes;
                left -= 17 + (long)codes;
            }
        }
        i += 2 + len;
    }
    return 1;
}

/* Whether each chunk of a PNG file, up to its end chunk (IEND), has its data
 * within the file.  stb grows its buffer for the compressed data (IDAT) to a
 * chunk's claimed length before it reads the chunk, so a file of 150 bytes
 * claiming a chunk of 1 GB had it allocate 2 GB (a fuzzer's find).  stb
 * fails on every such file anyway (the data is missing), so no file it could
 * read is refused.  Any file that is not a PNG gives 1. */
static int png_chunks_ok(const uint8_t *p, size_t n)
{
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 8 || memcmp(p, signature, 8) != 0)
        return 1;
    size_t i = 8;
    while (n - i >= 8) { /* a chunk: length, type, data, CRC */
        size_t len = (size_t)p[i] << 24 | (size_t)p[i + 1] << 16 | (size_t)p[i + 2] << 8 | p[i + 3];
        if (memcmp(p + i + 4, "IEND", 4) == 0)
            return 1;
        if (len > n - i - 8)
            return 0;
        if (n - i - 8 - len < 4)
            return 1;
        i += 8 + len + 4;
    }
    return 1;
}

/* Whether a PGM/PPM header's three numbers (width, height, maximum value)
 * have at most 9 digits each.  stb_image 2.27 reads them into an int without
 * a bound (signed overflow, undefined behaviour), so a longer one must not
 * reach it.  Whitespace and comments are skipped as stb skips them.  Any
 * other file gives 1. */
static int pnm_header_ok(const uint8_t *p, size_t n)
{
    if (n < 2 || p[0] != 'P' || (p[1] != '5' && p[1] != '6'))
        return 1;
    size_t i = 2;
    for (int field = 0; field < 3; field++) {
        for (;;) {
            while (i < n && (p[i] == ' ' || (p[i] >= '\t' && p[i] <= '\r')))
                i++;
            if (i >= n || p[i] != '#')
                break;
            while (i < n && p[i] != '\n' && p[i] != '\r')
                i++;
        }
        size_t digits = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++, digits++;
        if (digits > 9)
            return 0;
    }
    return 1;
}

/* What stb could not read, with its reason. */
static cn_status not_an_image(const char *name)
{
    return cn_fail(CN_ERR_FORMAT,
                   "%s: not an image that can be read (%s); the formats read are PNG, JPEG, BMP, "
                   "PGM/PPM, GIF and TGA",
                   name, stbi_failure_reason());
}

/* The decoded image of the n bytes at data (n <= MAX_IMAGE_BYTES, which fits
 * stb's int); name is the file's, for messages. */
static cn_status decode(const uint8_t *data, size_t n, const char *name, cn_image *out)
{
    int w, h, c;
    if (!jpeg_tables_ok(data, n))
        return cn_fail(CN_ERR_FORMAT,
                       "%s: a damaged JPEG file: a Huffman table defines more than 256 codes",
                       name);
    if (!png_chunks_ok(data, n))
        return cn_fail(CN_ERR_FORMAT,
                       "%s: a damaged PNG file: a chunk claims more bytes than the file holds",
                       name);
    if (!pnm_header_ok(data, n))
        return cn_fail(CN_ERR_FORMAT,
                       "%s: a damaged PGM/PPM header: a size or maximum value of more than 9 "
                       "digits",
                       name);
    if (!stbi_info_from_memory(data, (int)n, &w, &h, &c))
        return not_an_image(name);
    if ((size_t)w * (size_t)h > MAX_IMAGE_PIXELS)
        return cn_fail(CN_ERR_FORMAT,
                       "%s: the image is %d x %d pixels; convnet reads images of up to %zu "
                       "million pixels (8192 x 8192)",
                       name, w, h, MAX_IMAGE_PIXELS / 1000000);
    unsigned char *d = stbi_load_from_memory(data, (int)n, &w, &h, &c, 0);
    if (!d)
        return not_an_image(name);
    cn_status st = cn_image_new(w, h, c <= 2 ? 1 : 3, out);
    if (st) {
        stbi_image_free(d);
        return st;
    }
    size_t np = (size_t)w * (size_t)h;
    for (size_t i = 0; i < np; i++) {
        const unsigned char *p = d + i * (size_t)c;
        switch (c) {
        case 1: out->px[i] = p[0]; break;
        case 2: out->px[i] = over_white(p[0], p[1]); break;
        case 3: memcpy(out->px + 3 * i, p, 3); break;
        default:
            for (int k = 0; k < 3; k++)
                out->px[3 * i + (size_t)k] = over_white(p[k], p[3]);
        }
    }
    stbi_image_free(d);
    return CN_OK;
}

cn_status cn_image_load(const char *path, cn_image *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return cn_fail(CN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return cn_fail(CN_ERR_IO, "%s: not a regular file", path);
    }
    if ((unsigned long long)sb.st_size > MAX_IMAGE_BYTES) {
        fclose(f);
        return cn_fail(CN_ERR_FORMAT, "%s: %lld bytes; convnet reads image files of up to %zu MB",
                       path, (long long)sb.st_size, MAX_IMAGE_BYTES >> 20);
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *data = malloc(n ? n : 1);
    if (!data) {
        fclose(f);
        return cn_fail(CN_ERR_NOMEM, "%s: out of memory for %zu bytes", path, n);
    }
    size_t got = fread(data, 1, n, f);
    int err = ferror(f);
    fclose(f);
    cn_status st = got == n ? decode(data, n, path, out)
                            : cn_fail(CN_ERR_IO, "%s: %s", path,
                                      err ? "read error" : "the file shrank while being read");
    free(data);
    return st;
}

/* ------------------------------------------------------------ conversion */

/* The level (of 255, after normalisation) from which a pixel counts as ink. */
#define INK 16.0f

/* The histogram of g's np levels rounded to 0..255. */
static void histogram(const float *g, size_t np, size_t h[256])
{
    memset(h, 0, 256 * sizeof *h);
    for (size_t i = 0; i < np; i++) {
        float v = g[i] < 0.0f ? 0.0f : g[i] > 255.0f ? 255.0f : g[i];
        h[(int)(v + 0.5f)]++;
    }
}

/* The background's level of a histogram h of light ink on a darker
 * background: its mode below the level mid (halfway between the darkest
 * and the lightest pixel: ink fills up to half of a tightly cropped bold
 * digit, so the most common level overall may be the ink's), found as the
 * level of the most pixels within +-4 so that a noisy background is found
 * as a whole; then raised by the background's noise, so that noise goes
 * too: by the larger of the distance below the mode in which the darkest
 * 20% of the pixels at or below it lie (Gaussian noise: 1.28 sigma, so the
 * level is the noise's 90th percentile) and the distance above the mode in
 * which the histogram (averaged over the next 5 levels) stays above a
 * quarter of its mean over the 9 levels from the mode up (noise only
 * upwards, as on paper clipped at white: measured on a thin pen's page with
 * noise of +-20 levels, this keeps the noise out of the thickened strokes;
 * the anti-aliased edges of ink are too sparse to count). */
static float background(const size_t h[256], int mid)
{
    size_t best = 0;
    int m = 0;
    for (int v = 0; v <= mid; v++) {
        size_t sum = 0;
        for (int k = v - 4; k <= v + 4; k++)
            sum += k >= 0 && k <= mid ? h[k] : 0;
        if (sum > best)
            best = sum, m = v;
    }
    for (int k = m - 4; k <= m + 4; k++) /* the mode within the best window */
        if (k >= 0 && k <= mid && h[k] > h[m])
            m = k;
    size_t below = 0, cum = 0;
    for (int v = 0; v <= m; v++)
        below += h[v];
    int q = 0;
    while (q < m && (cum += h[q]) < (below + 4) / 5)
        q++;
    size_t ref = 0; /* pixels in [m, m + 8]: 9 x the density next to the mode */
    for (int v = m; v <= m + 8 && v <= mid; v++)
        ref += h[v];
    int u = m;
    for (; u < mid; u++) { /* on while the density just above is a quarter of that */
        size_t near = 0;
        for (int k = u + 1; k <= u + 5; k++)
            near += k <= mid ? h[k] : 0;
        if (4 * 9 * near <= 5 * ref)
            break;
    }
    /* noise is a band that ends; an anti-aliased edge's levels go on to the
     * ink's: the band counts only when the levels above it up to mid are
     * less than a quarter as dense as it */
    size_t band = 0, above = 0;
    for (int v = m + 1; v <= mid; v++)
        *(v <= u ? &band : &above) += h[v];
    if (u > m && 4 * above * (size_t)(u - m) >= band * (size_t)(mid - u + 1))
        u = m;
    int spread = m - q > u - m ? m - q : u - m;
    return (float)(m + spread);
}

/* The mean of the k x k squares in the four corners of g (w x h). */
static float corners(const float *g, int w, int h, int k)
{
    double sum = 0.0;
    for (int y = 0; y < k; y++)
        for (int x = 0; x < k; x++)
            sum += g[(size_t)y * (size_t)w + (size_t)x] +
                   g[(size_t)y * (size_t)w + (size_t)(w - 1 - x)] +
                   g[(size_t)(h - 1 - y) * (size_t)w + (size_t)x] +
                   g[(size_t)(h - 1 - y) * (size_t)w + (size_t)(w - 1 - x)];
    return (float)(sum / (4.0 * k * k));
}

/* Light ink on black: inverts a picture whose corners are light, then maps
 * the background's level (see background) to 0 and the brightest pixel to
 * 255.  The corners decide the polarity because they are background even
 * in a digit cropped to its ink (the ink touches each side, rarely a
 * corner; measured on 2 000 MNIST test digits cropped to their bounding
 * box: no error; one pixel inside it: 6%, where the border ring's median
 * errs on 18% and the most common level on 15%).  A picture is blank when
 * no pixel stands INK above its background's level, noise included. */
static cn_status normalise_grey(float *g, int w, int h)
{
    size_t np = (size_t)w * (size_t)h, hist[256];
    histogram(g, np, hist);
    int lo = 0, hi = 255;
    while (lo < 255 && !hist[lo])
        lo++;
    while (hi > 0 && !hist[hi])
        hi--;
    int k = (w < h ? w : h) / 32;
    if (corners(g, w, h, k < 1 ? 1 : k) > (lo + hi) / 2.0f) {
        for (size_t i = 0; i < np; i++)
            g[i] = 255.0f - g[i];
        for (int v = 0; v < 128; v++) {
            size_t t = hist[v];
            hist[v] = hist[255 - v];
            hist[255 - v] = t;
        }
        int t = lo;
        lo = 255 - hi;
        hi = 255 - t;
    }
    float bg = background(hist, (lo + hi) / 2), peak = 0.0f;
    for (size_t i = 0; i < np; i++)
        peak = g[i] > peak ? g[i] : peak;
    if (peak - bg < INK)
        return cn_fail(CN_ERR_FORMAT, "the image is blank: no ink stands out from its background");
    float scale = 255.0f / (peak - bg);
    for (size_t i = 0; i < np; i++) {
        float v = (g[i] - bg) * scale;
        g[i] = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
    }
    return CN_OK;
}

/* Resizes (w, h, c) floats to (ow, oh); an equal size is copied as it is. */
static void resize(const float *in, int w, int h, int c, float *out, int ow, int oh)
{
    if (w == ow && h == oh)
        memcpy(out, in, (size_t)w * (size_t)h * (size_t)c * sizeof *in);
    else /* area averaging when shrinking, as MNIST's anti-aliasing did */
        stbir_resize_float_generic(in, w, h, 0, out, ow, oh, 0, c, -1, 0, STBIR_EDGE_CLAMP,
                                   ow <= w && oh <= h ? STBIR_FILTER_BOX : STBIR_FILTER_DEFAULT,
                                   STBIR_COLORSPACE_LINEAR, NULL);
}

static uint8_t to_byte(float v) { return (uint8_t)(v <= 0.0f ? 0 : v >= 255.0f ? 255 : v + 0.5f); }

/* The stroke width (in pixels) at which MNIST's digits are drawn in their
 * 20-pixel box: the median over the 10 000 test digits of 2 x ink / total
 * variation (see stroke_width) is 2.0; a tenth are under 1.5, a hundredth
 * under 1.2.  A picture's ink thinner than STROKE_MIN once in the box (a
 * thin pen on a large page: under MNIST's thinnest, which stay untouched)
 * is thickened to STROKE. */
#define STROKE     2.0
#define STROKE_MIN 0.8

/* The mean width of the strokes of the ink (light on 0) in the rectangle
 * [x0, x1] x [y0, y1] of g (w wide): 2 x its mass / its total variation.
 * A stroke of width s and length l has mass s l and two edges of length l
 * (anti-aliased edges count by their levels: the measure is of the ink's
 * mass, not of a threshold), so the ratio is s whatever the picture's
 * scale.  0 for no ink. */
static double stroke_width(const float *g, int w, int x0, int y0, int x1, int y1)
{
    double mass = 0.0, tv = 0.0;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            const float *p = g + (size_t)y * (size_t)w + (size_t)x;
            mass += p[0];
            if (x < x1)
                tv += fabsf(p[1] - p[0]);
            if (y < y1)
                tv += fabsf(p[w] - p[0]);
        }
    /* the rectangle's own edges: ink against the (cut off) outside */
    for (int x = x0; x <= x1; x++)
        tv += g[(size_t)y0 * (size_t)w + (size_t)x] + g[(size_t)y1 * (size_t)w + (size_t)x];
    for (int y = y0; y <= y1; y++)
        tv += g[(size_t)y * (size_t)w + (size_t)x0] + g[(size_t)y * (size_t)w + (size_t)x1];
    return tv > 0.0 ? 2.0 * mass / tv : 0.0;
}

/* The running maximum over windows of 2r + 1 of the n values at p, p + step,
 * ... (values >= 0; outside counts as 0), in place, in O(n) (van Herk's
 * and Gil and Werman's blocks: the maximum of a window is that of the end
 * of one block and the start of the next).  buf holds 3 (n + 2r) floats. */
static void running_max(float *p, size_t step, int n, int r, float *buf)
{
    int k = 2 * r + 1, len = n + 2 * r;
    float *v = buf, *pre = buf + len, *suf = buf + 2 * len;
    for (int i = 0; i < len; i++)
        v[i] = i >= r && i < r + n ? p[(size_t)(i - r) * step] : 0.0f;
    for (int i = 0; i < len; i++)
        pre[i] = i % k == 0 ? v[i] : fmaxf(pre[i - 1], v[i]);
    for (int i = len - 1; i >= 0; i--)
        suf[i] = i % k == k - 1 || i == len - 1 ? v[i] : fmaxf(suf[i + 1], v[i]);
    for (int i = 0; i < n; i++) /* the window [i, i + 2r] of v */
        p[(size_t)i * step] = fmaxf(suf[i], pre[i + 2 * r]);
}

/* The maximum over (2r + 1) x (2r + 1) squares (a dilation) of the
 * rectangle [x0, x1] x [y0, y1] of g (w wide), in place.  Levels under INK
 * (faint noise) become 0 first: the dilation would spread them into a grey
 * haze. */
static cn_status dilate(float *g, int w, int x0, int y0, int x1, int y1, int r)
{
    int bw = x1 - x0 + 1, bh = y1 - y0 + 1, n = bw > bh ? bw : bh;
    float *buf = malloc(3 * ((size_t)n + 2 * (size_t)r) * sizeof *buf);
    if (!buf)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            float *p = g + (size_t)y * (size_t)w + (size_t)x;
            *p = *p < INK ? 0.0f : *p;
        }
    for (int y = y0; y <= y1; y++)
        running_max(g + (size_t)y * (size_t)w + (size_t)x0, 1, bw, r, buf);
    for (int x = x0; x <= x1; x++)
        running_max(g + (size_t)y0 * (size_t)w + (size_t)x, (size_t)w, bh, r, buf);
    free(buf);
    return CN_OK;
}

/* MNIST's procedure: the ink's bounding box scaled to fit a box of 20/28
 * of the input, then placed so that its centre of mass is at the centre.
 * The box is that of the pixels of at least INK (faint noise, such as JPEG's,
 * must not widen it; on MNIST's own digits it gives the same longer side as
 * any ink at all); a margin around it is kept so faint edges survive. */
static cn_status fit_digit(float *g, int w, int h, cn_shape s, uint8_t *pixels)
{
    int x0 = w, y0 = h, x1 = -1, y1 = -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (g[(size_t)y * (size_t)w + (size_t)x] >= INK) {
                x0 = x < x0 ? x : x0;
                x1 = x > x1 ? x : x1;
                y0 = y < y0 ? y : y0;
                y1 = y > y1 ? y : y1;
            }
    int lng = x1 - x0 > y1 - y0 ? x1 - x0 + 1 : y1 - y0 + 1;
    int box = (int)lround((double)(s.h < s.w ? s.h : s.w) * 20.0 / 28.0);
    box = box < 1 ? 1 : box;
    double f = (double)box / lng;
    /* A thin pen on a large page: strokes that would be thinner than
     * MNIST's once shrunk into the box are thickened first, by a dilation
     * of radius r, so that they come out STROKE wide of 20.  The dilation
     * widens the box by 2r too, so r solves
     *   (width + 2r) box / (lng + 2r) = STROKE box / 20. */
    double sw = stroke_width(g, w, x0, y0, x1, y1), want = STROKE * box / 20.0;
    if (sw * f < STROKE_MIN * box / 20.0 && want < box / 2.0) {
        int r = (int)lround((want * lng / box - sw) / (2.0 * (1.0 - want / box)));
        if (r >= 1) {
            x0 = x0 - r < 0 ? 0 : x0 - r;
            y0 = y0 - r < 0 ? 0 : y0 - r;
            x1 = x1 + r >= w ? w - 1 : x1 + r;
            y1 = y1 + r >= h ? h - 1 : y1 + r;
            cn_status st = dilate(g, w, x0, y0, x1, y1, r);
            if (st)
                return st;
            lng = x1 - x0 > y1 - y0 ? x1 - x0 + 1 : y1 - y0 + 1;
            f = (double)box / lng;
        }
    }
    int m = (int)ceil(2.0 / f);
    x0 = x0 - m < 0 ? 0 : x0 - m;
    y0 = y0 - m < 0 ? 0 : y0 - m;
    x1 = x1 + m >= w ? w - 1 : x1 + m;
    y1 = y1 + m >= h ? h - 1 : y1 + m;
    int bw = x1 - x0 + 1, bh = y1 - y0 + 1;
    int pw = (int)lround(bw * f), ph = (int)lround(bh * f);
    pw = pw < 1 ? 1 : pw;
    ph = ph < 1 ? 1 : ph;
    float *crop = malloc((size_t)bw * (size_t)bh * sizeof *crop);
    float *patch = malloc((size_t)pw * (size_t)ph * sizeof *patch);
    if (!crop || !patch) {
        free(crop);
        free(patch);
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    }
    for (int y = 0; y < bh; y++)
        memcpy(crop + (size_t)y * (size_t)bw, g + (size_t)(y0 + y) * (size_t)w + (size_t)x0,
               (size_t)bw * sizeof *crop);
    resize(crop, bw, bh, 1, patch, pw, ph);
    double mass = 0.0, mx = 0.0, my = 0.0;
    for (int y = 0; y < ph; y++)
        for (int x = 0; x < pw; x++) {
            double v = patch[(size_t)y * (size_t)pw + (size_t)x];
            v = v > 0.0 ? v : 0.0;
            mass += v;
            mx += v * x;
            my += v * y;
        }
    mx = mass > 0 ? mx / mass : (pw - 1) / 2.0;
    my = mass > 0 ? my / mass : (ph - 1) / 2.0;
    /* MNIST's centres of mass sit at (14, 14) of 28 x 28 (measured). */
    long ox = lround((double)s.w / 2.0 - mx), oy = lround((double)s.h / 2.0 - my);
    memset(pixels, 0, s.h * s.w);
    for (int y = 0; y < ph; y++)
        for (int x = 0; x < pw; x++) {
            long ty = oy + y, tx = ox + x;
            if (ty >= 0 && ty < (long)s.h && tx >= 0 && tx < (long)s.w)
                pixels[(size_t)ty * s.w + (size_t)tx] =
                    to_byte(patch[(size_t)y * (size_t)pw + (size_t)x]);
        }
    free(crop);
    free(patch);
    return CN_OK;
}

cn_status cn_image_to_input(const cn_image *img, cn_shape s, cn_fit fit, uint8_t *pixels)
{
    if (s.c != 1 && s.c != 3)
        return cn_fail(CN_ERR_ARG, "a network with %zu input channels takes no pictures (1 or 3)",
                       s.c);
    if (!img->px || (img->c != 1 && img->c != 3))
        return cn_fail(CN_ERR_ARG, "not an image");
    if (fit == CN_FIT_AUTO)
        fit = s.c == 1 ? CN_FIT_DIGIT : CN_FIT_CROP;
    if (fit == CN_FIT_DIGIT && s.c != 1)
        return cn_fail(CN_ERR_ARG, "the digit fit is for grey networks; this one takes colour");
    int w = img->w, h = img->h, c = (int)s.c;
    size_t np = (size_t)w * (size_t)h;
    float *g = malloc(np * (size_t)c * sizeof *g);
    float *o = malloc(s.h * s.w * s.c * sizeof *o);
    cn_status st = CN_OK;
    if (!g || !o) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory for a %dx%d image", w, h);
        goto done;
    }
    for (size_t i = 0; i < np; i++) {
        const uint8_t *p = img->px + i * (size_t)img->c;
        if (c == 1)
            g[i] = img->c == 1 ? p[0] : 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
        else
            for (int k = 0; k < 3; k++)
                g[3 * i + (size_t)k] = p[img->c == 1 ? 0 : k];
    }
    if (c == 1 && (st = normalise_grey(g, w, h)))
        goto done;
    if (fit == CN_FIT_DIGIT) {
        st = fit_digit(g, w, h, s, pixels);
        goto done;
    }
    /* CROP: the centred part with the input's aspect ratio; STRETCH: all. */
    int cw = w, ch = h, cx = 0, cy = 0;
    if (fit == CN_FIT_CROP) {
        if ((double)w * (double)s.h > (double)h * (double)s.w)
            cw = (int)lround((double)h * (double)s.w / (double)s.h);
        else
            ch = (int)lround((double)w * (double)s.h / (double)s.w);
        cw = cw < 1 ? 1 : cw;
        ch = ch < 1 ? 1 : ch;
        cx = (w - cw) / 2;
        cy = (h - ch) / 2;
    }
    float *part = g;
    if (cw != w || ch != h) {
        part = malloc((size_t)cw * (size_t)ch * (size_t)c * sizeof *part);
        if (!part) {
            st = cn_fail(CN_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (int y = 0; y < ch; y++)
            memcpy(part + (size_t)y * (size_t)cw * (size_t)c,
                   g + ((size_t)(cy + y) * (size_t)w + (size_t)cx) * (size_t)c,
                   (size_t)cw * (size_t)c * sizeof *part);
    }
    resize(part, cw, ch, c, o, (int)s.w, (int)s.h);
    if (part != g)
        free(part);
    for (size_t k = 0; k < s.c; k++) /* interleaved to planes */
        for (size_t i = 0; i < s.h * s.w; i++)
            pixels[k * s.h * s.w + i] = to_byte(o[i * s.c + k]);
done:
    free(g);
    free(o);
    return st;
}
