/* fit_forms.h - MNIST digits made into the pictures a new user draws or
 * crops: cropped tightly to the ink (or one pixel inside it), dark ink on
 * light paper, enlarged, or redrawn with a thin pen on a large page.  Used by
 * tests/test_vis.c and tests/tools/fit_accuracy.c; header-only (static). */
#ifndef FIT_FORMS_H
#define FIT_FORMS_H

#include "convnet_vis.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The bilinear sample of the w x h grey picture g at (x, y) (pixel centres
 * at integers; the edge is repeated). */
static float ff_sample(const uint8_t *g, int w, int h, double x, double y)
{
    x = x < 0 ? 0 : x > w - 1 ? w - 1 : x;
    y = y < 0 ? 0 : y > h - 1 ? h - 1 : y;
    int x0 = (int)x, y0 = (int)y, x1 = x0 + 1 < w ? x0 + 1 : x0, y1 = y0 + 1 < h ? y0 + 1 : y0;
    double fx = x - x0, fy = y - y0;
    return (float)((1 - fy) * ((1 - fx) * g[y0 * w + x0] + fx * g[y0 * w + x1]) +
                   fy * ((1 - fx) * g[y1 * w + x0] + fx * g[y1 * w + x1]));
}

/* The 28 x 28 digit d cropped to the bounding box of its ink (any pixel
 * above 0), shrunk by inset pixels on each side, enlarged (bilinear) so
 * that its longer side is size pixels (0: as it is), and inverted to dark
 * ink on white if invert.  Returns 0, or -1 when nothing is left. */
static int ff_crop(const uint8_t *d, int inset, int invert, int size, cn_image *out)
{
    int x0 = 28, y0 = 28, x1 = -1, y1 = -1;
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++)
            if (d[y * 28 + x]) {
                x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1;
                y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
            }
    x0 += inset, y0 += inset, x1 -= inset, y1 -= inset;
    if (x1 < x0 || y1 < y0)
        return -1;
    int bw = x1 - x0 + 1, bh = y1 - y0 + 1, lng = bw > bh ? bw : bh;
    double k = size > 0 ? (double)size / lng : 1.0;
    int w = (int)lround(bw * k), h = (int)lround(bh * k);
    if (cn_image_new(w < 1 ? 1 : w, h < 1 ? 1 : h, 1, out))
        return -1;
    for (int y = 0; y < out->h; y++)
        for (int x = 0; x < out->w; x++) {
            float v = ff_sample(d, 28, 28, x0 + (x + 0.5) / k - 0.5, y0 + (y + 0.5) / k - 0.5);
            uint8_t b = (uint8_t)(v + 0.5f);
            out->px[y * out->w + x] = invert ? (uint8_t)(255 - b) : b;
        }
    return 0;
}

/* Zhang and Suen's thinning of the w x h binary picture b (1: ink), in
 * place: a line one pixel wide along the middle of each stroke. */
static void ff_thin(uint8_t *b, int w, int h)
{
    uint8_t *del = calloc((size_t)w * (size_t)h, 1);
    if (!del)
        return;
    for (int changed = 1; changed;) {
        changed = 0;
        for (int pass = 0; pass < 2; pass++) {
            memset(del, 0, (size_t)w * (size_t)h);
            for (int y = 1; y + 1 < h; y++)
                for (int x = 1; x + 1 < w; x++) {
                    if (!b[y * w + x])
                        continue;
                    /* neighbours P2..P9 clockwise from north */
                    int p[8] = {b[(y - 1) * w + x], b[(y - 1) * w + x + 1],
                                b[y * w + x + 1],   b[(y + 1) * w + x + 1],
                                b[(y + 1) * w + x], b[(y + 1) * w + x - 1],
                                b[y * w + x - 1],   b[(y - 1) * w + x - 1]};
                    int n = 0, t = 0;
                    for (int i = 0; i < 8; i++) {
                        n += p[i];
                        t += !p[i] && p[(i + 1) % 8];
                    }
                    if (n < 2 || n > 6 || t != 1)
                        continue;
                    if (pass == 0 ? (p[0] && p[2] && p[4]) || (p[2] && p[4] && p[6])
                                  : (p[0] && p[2] && p[6]) || (p[0] && p[4] && p[6]))
                        continue;
                    del[y * w + x] = 1;
                }
            for (int i = 0; i < w * h; i++)
                if (del[i]) {
                    b[i] = 0;
                    changed = 1;
                }
        }
    }
    free(del);
}

/* Stamps a square pen of pen x pen pixels centred at (x, y) in black. */
static void ff_dot(cn_image *img, double x, double y, int pen)
{
    int x0 = (int)floor(x - pen / 2.0 + 0.5), y0 = (int)floor(y - pen / 2.0 + 0.5);
    for (int j = y0; j < y0 + pen; j++)
        for (int i = x0; i < x0 + pen; i++)
            if (i >= 0 && j >= 0 && i < img->w && j < img->h)
                img->px[j * img->w + i] = 0;
}

/* The digit d redrawn with a pen of pen pixels on a white page x page
 * picture: d enlarged 4x and thresholded, thinned to its centre lines, and
 * those lines drawn (each skeleton pixel joined to its skeleton
 * neighbours) at page / 120 times that scale, so that the digit's 20-pixel
 * box becomes about 2/3 of the page.  Returns 0, or -1 without memory. */
static int ff_thin_pen(const uint8_t *d, int pen, int page, cn_image *out)
{
    enum { S = 112 };
    uint8_t *b = malloc(S * S);
    if (!b || cn_image_new(page, page, 1, out)) {
        free(b);
        return -1;
    }
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            b[y * S + x] = ff_sample(d, 28, 28, (x + 0.5) / 4 - 0.5, (y + 0.5) / 4 - 0.5) >= 128;
    ff_thin(b, S, S);
    memset(out->px, 255, (size_t)page * (size_t)page);
    double k = page / 120.0, off = (page - S * k) / 2;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            if (!b[y * S + x])
                continue;
            ff_dot(out, off + (x + 0.5) * k, off + (y + 0.5) * k, pen);
            for (int dy = 0; dy <= 1; dy++) /* to the right, below and diagonally */
                for (int dx = -1; dx <= 1; dx++) {
                    if ((dy == 0 && dx <= 0) || x + dx < 0 || x + dx >= S || y + dy >= S ||
                        !b[(y + dy) * S + x + dx])
                        continue;
                    int steps = (int)ceil(k * 2);
                    for (int t = 1; t < steps; t++)
                        ff_dot(out, off + (x + 0.5 + dx * (double)t / steps) * k,
                               off + (y + 0.5 + dy * (double)t / steps) * k, pen);
                }
        }
    free(b);
    return 0;
}

/* Pearson's correlation of two 28 x 28 inputs (0 when either is flat). */
static double ff_corr(const uint8_t *a, const uint8_t *b, int n)
{
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
    for (int i = 0; i < n; i++) {
        sa += a[i], sb += b[i];
        saa += (double)a[i] * a[i], sbb += (double)b[i] * b[i], sab += (double)a[i] * b[i];
    }
    double va = saa - sa * sa / n, vb = sbb - sb * sb / n;
    return va > 0 && vb > 0 ? (sab - sa * sb / n) / sqrt(va * vb) : 0.0;
}

#endif
