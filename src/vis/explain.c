/* explain.c - why the network decided: saliency (Simonyan et al.), Grad-CAM
 * (Selvaraju et al.) and occlusion (Zeiler and Fergus) maps for one input,
 * and the picture of a map over its image with a colour scale.  The
 * gradients come from the core's cn_net_class_gradient (the class's logit,
 * after an evaluation pass); the occlusion runs its occluded copies through
 * the network in batches of up to cn_net_max_batch samples. */
#include "canvas.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cn_status check_class(const cn_net *net, int cls)
{
    size_t k = cn_net_classes(net);
    if (cls < 0 || (size_t)cls >= k)
        return cn_fail(CN_ERR_ARG, "class %d does not exist: the network has classes 0..%zu", cls,
                       k - 1);
    return CN_OK;
}

cn_status cn_explain_top_class(cn_net *net, const uint8_t *pixels, int *cls, float *prob)
{
    size_t k = cn_net_classes(net);
    float *p = malloc(k * sizeof *p);
    if (!p)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    cn_status st = cn_net_forward_pixels(net, pixels, 1, 0);
    if (!st)
        st = cn_net_get_output(net, p);
    if (!st) {
        size_t best = 0;
        for (size_t j = 1; j < k; j++)
            best = p[j] > p[best] ? j : best;
        *cls = (int)best;
        if (prob)
            *prob = p[best];
    }
    free(p);
    return st;
}

cn_status cn_explain_saliency(cn_net *net, const uint8_t *pixels, int cls, float *map)
{
    cn_status st = check_class(net, cls);
    if (st)
        return st;
    cn_shape in = cn_net_input_shape(net);
    size_t hw = in.h * in.w;
    float *dx = malloc(in.c * hw * sizeof *dx); /* (C, H, W) */
    if (!dx)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    int32_t c32 = cls;
    if (!(st = cn_net_forward_pixels(net, pixels, 1, 0)) &&
        !(st = cn_net_class_gradient(net, &c32, 1, 0, NULL, dx)))
        for (size_t j = 0; j < hw; j++) {
            float m = 0.0f;
            for (size_t c = 0; c < in.c; c++)
                m = fmaxf(m, fabsf(dx[c * hw + j]));
            map[j] = m;
        }
    free(dx);
    return st;
}

cn_status cn_explain_find_layer(const cn_net *net, const char *name, size_t *layer)
{
    size_t n = cn_net_num_layers(net);
    cn_layer_info li;
    if (!name) {
        for (size_t i = n; i-- > 0;)
            if (!cn_net_layer(net, i, &li) && !strcmp(li.kind, "conv")) {
                *layer = i;
                return CN_OK;
            }
        return cn_fail(CN_ERR_ARG, "the network has no convolution layer for Grad-CAM");
    }
    const char **names = malloc(n * sizeof *names);
    if (!names)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        names[i] = cn_net_layer(net, i, &li) ? "" : li.name;
        if (!strcmp(names[i], name)) {
            free(names);
            if (li.out.h * li.out.w < 2 || i + 1 >= n)
                return cn_fail(CN_ERR_ARG,
                               "layer %s has no feature maps (its output is %zu values): "
                               "Grad-CAM needs a layer with spatial output, a convolution say",
                               name, li.out.c * li.out.h * li.out.w);
            *layer = i;
            return CN_OK;
        }
    }
    const char *near = cn_nearest(name, names, n);
    cn_status st = cn_fail(CN_ERR_ARG, "the network has no layer named '%s'%s%s%s", name,
                           near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
    free(names);
    return st;
}

cn_status cn_explain_gradcam(cn_net *net, const uint8_t *pixels, int cls, size_t layer, float *map)
{
    cn_status st = check_class(net, cls);
    if (st)
        return st;
    cn_layer_info li;
    if ((st = cn_net_layer(net, layer, &li)))
        return st;
    size_t m = li.out.c, hw = li.out.h * li.out.w;
    float *a = malloc(2 * m * hw * sizeof *a); /* activations, then gradients: (M, h, w) each */
    if (!a)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    float *g = a + m * hw;
    int32_t c32 = cls;
    if (!(st = cn_net_forward_pixels(net, pixels, 1, 0)) &&
        !(st = cn_net_get_layer_output(net, layer, 0, 1, a)) &&
        !(st = cn_net_class_gradient(net, &c32, 1, layer, g, NULL))) {
        /* map = relu(sum_k alpha_k A_k), alpha_k the spatial mean of dlogit/dA_k. */
        for (size_t j = 0; j < hw; j++)
            map[j] = 0.0f;
        for (size_t k = 0; k < m; k++) {
            double alpha = 0.0;
            for (size_t j = 0; j < hw; j++)
                alpha += g[k * hw + j];
            float al = (float)(alpha / (double)hw);
            for (size_t j = 0; j < hw; j++)
                map[j] += al * a[k * hw + j];
        }
        for (size_t j = 0; j < hw; j++)
            map[j] = fmaxf(map[j], 0.0f);
    }
    free(a);
    return st;
}

cn_status cn_explain_occlusion(cn_net *net, const uint8_t *pixels, const int *classes, size_t k,
                               int patch, int stride, float *maps)
{
    cn_shape in = cn_net_input_shape(net);
    size_t hw = in.h * in.w, per = in.c * hw, nc = cn_net_classes(net);
    if (patch < 1 || stride < 1 || (size_t)patch > (in.h > in.w ? in.h : in.w) || stride > patch)
        return cn_fail(CN_ERR_ARG,
                       "occlusion patch %d with stride %d: the patch must be 1..%zu pixels and "
                       "the stride 1..patch (so that every pixel is covered)",
                       patch, stride, in.h > in.w ? in.h : in.w);
    for (size_t i = 0; i < k; i++) {
        cn_status st = check_class(net, classes[i]);
        if (st)
            return st;
    }
    /* Squares with their top left corners at -patch/2 + stride * k, k = 0, 1,
     * ... until one reaches the far edge (the first is centred on pixel 0;
     * stride <= patch leaves no pixel uncovered), clipped to the image;
     * pixel j's value is the mean probability over the squares that cover
     * it. */
    long half = patch / 2, reach = patch - half; /* the first square's extent from 0 */
    size_t gy = (size_t)((long)in.h > reach ? ((long)in.h - reach + stride - 1) / stride : 0) + 1;
    size_t gx = (size_t)((long)in.w > reach ? ((long)in.w - reach + stride - 1) / stride : 0) + 1;
    size_t npos = gy * gx, batch = cn_net_max_batch(net);
    uint8_t *x = malloc(batch * per);
    float *p = malloc(batch * nc * sizeof *p);
    float *cover = calloc(hw, sizeof *cover);
    cn_status st = CN_OK;
    if (!x || !p || !cover) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }
    memset(maps, 0, k * hw * sizeof *maps);
    for (size_t first = 0; first < npos; first += batch) {
        size_t n = npos - first < batch ? npos - first : batch;
        for (size_t s = 0; s < n; s++) {
            size_t pos = first + s;
            long y0 = (long)(pos / gx) * stride - half, x0 = (long)(pos % gx) * stride - half;
            uint8_t *xs = x + s * per;
            memcpy(xs, pixels, per);
            for (size_t c = 0; c < in.c; c++)
                for (long y = y0 < 0 ? 0 : y0; y < y0 + patch && y < (long)in.h; y++)
                    for (long xx = x0 < 0 ? 0 : x0; xx < x0 + patch && xx < (long)in.w; xx++)
                        xs[c * hw + (size_t)y * in.w + (size_t)xx] = 128; /* grey */
        }
        if ((st = cn_net_forward_pixels(net, x, n, 0)) || (st = cn_net_get_output(net, p)))
            goto done;
        for (size_t s = 0; s < n; s++) {
            size_t pos = first + s;
            long y0 = (long)(pos / gx) * stride - half, x0 = (long)(pos % gx) * stride - half;
            for (long y = y0 < 0 ? 0 : y0; y < y0 + patch && y < (long)in.h; y++)
                for (long xx = x0 < 0 ? 0 : x0; xx < x0 + patch && xx < (long)in.w; xx++) {
                    size_t j = (size_t)y * in.w + (size_t)xx;
                    cover[j] += 1.0f;
                    for (size_t i = 0; i < k; i++)
                        maps[i * hw + j] += p[s * nc + (size_t)classes[i]];
                }
        }
    }
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < hw; j++)
            maps[i * hw + j] /= cover[j];
done:
    free(x);
    free(p);
    free(cover);
    return st;
}

/* ------------------------------------------------------------- the picture */

/* The colour scale: dark blue, blue, cyan, yellow, red for t in 0..1
 * ("jet"-like: high values hot). */
static rgb scale_colour(double t)
{
    static const rgb stops[] = {
        {0.0, 0.0, 0.5}, {0.0, 0.3, 1.0}, {0.0, 0.9, 0.9}, {1.0, 0.9, 0.0}, {0.9, 0.0, 0.0}};
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double f = t * 4.0;
    int i = f >= 4.0 ? 3 : (int)f;
    double u = f - i;
    rgb a = stops[i], b = stops[i + 1];
    return (rgb){a.r + (b.r - a.r) * u, a.g + (b.g - a.g) * u, a.b + (b.b - a.b) * u};
}

/* map (mh, mw) at (y, x) of an (h, w) picture, bilinear, pixel centres
 * aligned (as PyTorch's interpolate with align_corners = False). */
static float sample_map(const float *map, size_t mh, size_t mw, double y, double x, size_t h,
                        size_t w)
{
    double sy = (y + 0.5) * (double)mh / (double)h - 0.5,
           sx = (x + 0.5) * (double)mw / (double)w - 0.5;
    sy = sy < 0 ? 0 : sy > (double)(mh - 1) ? (double)(mh - 1) : sy;
    sx = sx < 0 ? 0 : sx > (double)(mw - 1) ? (double)(mw - 1) : sx;
    size_t y0 = (size_t)sy, x0 = (size_t)sx;
    size_t y1 = y0 + 1 < mh ? y0 + 1 : y0, x1 = x0 + 1 < mw ? x0 + 1 : x0;
    double u = sy - (double)y0, v = sx - (double)x0;
    double top = map[y0 * mw + x0] * (1 - v) + map[y0 * mw + x1] * v;
    double bot = map[y1 * mw + x0] * (1 - v) + map[y1 * mw + x1] * v;
    return (float)(top * (1 - u) + bot * u);
}

/* Row y of the map blended half and half over the image enlarged s times,
 * as 0xRRGGBB pixels. */
static void blend_row(uint32_t *row, int y, const uint8_t *pixels, cn_shape shape, const float *map,
                      size_t mh, size_t mw, float lo, float hi, int s)
{
    size_t hw = shape.h * shape.w, ih = shape.h * (size_t)s, iw = shape.w * (size_t)s;
    for (size_t x = 0; x < iw; x++) {
        size_t j = (size_t)(y / s) * shape.w + x / (size_t)s;
        float v = sample_map(map, mh, mw, y, (double)x, ih, iw);
        rgb col = scale_colour((v - lo) / (hi - lo));
        double c[3] = {col.r, col.g, col.b};
        uint32_t px = 0;
        for (int k = 0; k < 3; k++) {
            double g = pixels[(shape.c == 3 ? (size_t)k : 0) * hw + j] / 255.0;
            px = px << 8 | (uint32_t)((0.5 * g + 0.5 * c[k]) * 255 + 0.5);
        }
        row[x] = px;
    }
}

/* lo >= hi: the map's own range (a constant map: lo to lo + 1). */
static void map_range(const float *map, size_t n, float *lo, float *hi)
{
    if (*hi > *lo)
        return;
    *lo = *hi = map[0];
    for (size_t j = 1; j < n; j++) {
        *lo = fminf(*lo, map[j]);
        *hi = fmaxf(*hi, map[j]);
    }
    if (!(*hi > *lo))
        *hi = *lo + 1.0f;
}

static cn_status check_picture(cn_shape shape, size_t mh, size_t mw)
{
    if (!mh || !mw || !shape.h || !shape.w || (shape.c != 1 && shape.c != 3))
        return cn_fail(CN_ERR_ARG, "a %zu x %zu map over a %zu x %zu x %zu image cannot be drawn",
                       mh, mw, shape.c, shape.h, shape.w);
    return CN_OK;
}

cn_status cn_explain_overlay(const uint8_t *pixels, cn_shape shape, const float *map, size_t mh,
                             size_t mw, float lo, float hi, int scale, cn_image *out)
{
    memset(out, 0, sizeof *out);
    cn_status st = check_picture(shape, mh, mw);
    if (st)
        return st;
    if (scale < 1 || scale > 64)
        return cn_fail(CN_ERR_ARG, "an overlay enlarged %d times: 1..64", scale);
    map_range(map, mh * mw, &lo, &hi);
    int w = (int)shape.w * scale, h = (int)shape.h * scale;
    uint32_t *row = malloc((size_t)w * sizeof *row);
    if (!row || (st = cn_image_new(w, h, 3, out))) {
        free(row);
        return st ? st : cn_fail(CN_ERR_NOMEM, "out of memory");
    }
    for (int y = 0; y < h; y++) {
        blend_row(row, y, pixels, shape, map, mh, mw, lo, hi, scale);
        for (int x = 0; x < w; x++)
            for (int k = 0; k < 3; k++)
                out->px[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)k] =
                    (uint8_t)(row[x] >> (16 - 8 * k));
    }
    free(row);
    return CN_OK;
}

cn_status cn_explain_picture(const uint8_t *pixels, cn_shape shape, const float *map, size_t mh,
                             size_t mw, float lo, float hi, const char *title, cn_image *out)
{
    memset(out, 0, sizeof *out);
    cn_status st = check_picture(shape, mh, mw);
    if (st)
        return st;
    map_range(map, mh * mw, &lo, &hi);
    /* The image enlarged to about 280 pixels, a title above, the scale to
     * its right with its two ends labelled. */
    int s = enlarge(shape.h > shape.w ? shape.h : shape.w, 280);
    int iw = (int)shape.w * s, ih = (int)shape.h * s, top = 28, pad = 8, bar = 16;
    int w = pad + iw + pad + bar + 60, h = top + ih + pad;
    cairo_surface_t *sf = canvas_new(w, h);
    if (!sf)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    cairo_surface_flush(sf);
    int stride = cairo_image_surface_get_stride(sf);
    unsigned char *data = cairo_image_surface_get_data(sf);
    for (int y = 0; y < ih; y++)
        blend_row((uint32_t *)(void *)(data + (size_t)(top + y) * (size_t)stride) + pad, y, pixels,
                  shape, map, mh, mw, lo, hi, s);
    int bx = pad + iw + pad;
    for (int y = 0; y < ih; y++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)(top + y) * (size_t)stride) + bx;
        rgb col = scale_colour(1.0 - (double)y / (ih - 1));
        for (int x = 0; x < bar; x++)
            row[x] = (uint32_t)(col.r * 255 + 0.5) << 16 | (uint32_t)(col.g * 255 + 0.5) << 8 |
                     (uint32_t)(col.b * 255 + 0.5);
    }
    cairo_surface_mark_dirty(sf);
    cairo_t *cr = cairo_create(sf);
    set_colour(cr, (rgb){0, 0, 0});
    char buf[32];
    snprintf(buf, sizeof buf, "%.3g", (double)hi);
    draw_text(cr, bx + bar + 4, top, 11, 0, 0, buf);
    snprintf(buf, sizeof buf, "%.3g", (double)lo);
    draw_text(cr, bx + bar + 4, top + ih, 11, 0, 1, buf);
    if (title)
        draw_text(cr, pad, top / 2.0, 13, 0, 0.5, title);
    cairo_destroy(cr);
    return canvas_finish(sf, out);
}
