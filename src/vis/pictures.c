/* pictures.c - what a network learns, drawn: filters, feature maps, the
 * images that excite a channel most, the confusion matrix. */
#include "canvas.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fills tile (x, y) of img with values v (h x w, c planes) scaled from
 * [lo, hi] to 0..255, each value a square of s pixels. */
static void put_tile(cn_image *img, int x, int y, const float *v, size_t c, size_t h, size_t w,
                     float lo, float hi, int s)
{
    float scale = hi > lo ? 255.0f / (hi - lo) : 0.0f;
    for (size_t i = 0; i < h * (size_t)s; i++) {
        uint8_t *row = img->px + ((size_t)y + i) * (size_t)img->w * 3 + (size_t)x * 3;
        for (size_t j = 0; j < w * (size_t)s; j++)
            for (size_t k = 0; k < 3; k++) {
                float f = v[(c == 3 ? k : 0) * h * w + (i / (size_t)s) * w + j / (size_t)s];
                float b = (f - lo) * scale;
                row[3 * j + k] = (uint8_t)(b <= 0.0f ? 0 : b >= 255.0f ? 255 : b + 0.5f);
            }
    }
}

static void range(const float *v, size_t n, float *lo, float *hi)
{
    *lo = *hi = v[0];
    for (size_t i = 1; i < n; i++) {
        *lo = v[i] < *lo ? v[i] : *lo;
        *hi = v[i] > *hi ? v[i] : *hi;
    }
}

static cn_status white_image(int w, int h, cn_image *out)
{
    cn_status st = cn_image_new(w, h, 3, out);
    if (st == CN_OK)
        memset(out->px, 255, (size_t)w * (size_t)h * 3);
    return st;
}

cn_status cn_vis_filters(cn_net *net, size_t i, cn_image *out)
{
    memset(out, 0, sizeof *out);
    cn_layer_info li;
    cn_status st = cn_net_layer(net, i, &li);
    if (st)
        return st;
    if (strcmp(li.kind, "conv") != 0)
        return cn_fail(CN_ERR_ARG, "%s is a %s layer: only convolution filters can be drawn",
                       li.name, li.kind);
    char name[128];
    snprintf(name, sizeof name, "%s.weight", li.name);
    cn_tensor_info ti;
    if ((st = cn_net_tensor(net, cn_net_find_tensor(net, name), &ti)))
        return st;
    size_t m = ti.dims[0], c = ti.dims[1], kh = ti.dims[2], kw = ti.dims[3];
    if (c != 1 && c != 3)
        return cn_fail(CN_ERR_ARG,
                       "%s has %zu input channels: only filters over 1 (grey) or 3 (colour) "
                       "channels can be drawn as pictures",
                       li.name, c);
    int s = enlarge(kh > kw ? kh : kw, 40);
    grid g = grid_for(m, (int)kw * s, (int)kh * s, 2);
    if ((st = white_image(g.w, g.h, out)))
        return st;
    float *w = malloc(ti.count * sizeof *w);
    if (!w || (st = cn_net_get(net, CN_PARAMS, ti.offset, ti.count, w))) {
        free(w);
        cn_image_free(out);
        return st ? st : cn_fail(CN_ERR_NOMEM, "out of memory");
    }
    for (size_t f = 0; f < m; f++) {
        const float *v = w + f * c * kh * kw;
        float lo, hi;
        range(v, c * kh * kw, &lo, &hi);
        int x, y;
        grid_pos(&g, f, &x, &y);
        put_tile(out, x, y, v, c, kh, kw, lo, hi, s);
    }
    free(w);
    return CN_OK;
}

/* Layer i's output shape, if it has a spatial one. */
static cn_status spatial(const cn_net *net, size_t i, cn_layer_info *li)
{
    cn_status st = cn_net_layer(net, i, li);
    if (st)
        return st;
    if (li->out.h * li->out.w < 2)
        return cn_fail(CN_ERR_ARG, "%s has no feature maps (its output is %zu values, not maps)",
                       li->name, li->out.c);
    return CN_OK;
}

cn_status cn_vis_feature_maps(const cn_net *net, size_t i, size_t sample, cn_image *out)
{
    memset(out, 0, sizeof *out);
    cn_layer_info li;
    cn_status st = spatial(net, i, &li);
    if (st)
        return st;
    size_t m = li.out.c, h = li.out.h, w = li.out.w;
    float *y = malloc(m * h * w * sizeof *y);
    if (!y)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    if ((st = cn_net_get_layer_output(net, i, sample, 1, y))) {
        free(y);
        cn_error_prefix("drawing feature maps: ");
        return st;
    }
    int s = enlarge(h > w ? h : w, 72);
    grid g = grid_for(m, (int)w * s, (int)h * s, 2);
    if ((st = white_image(g.w, g.h, out))) {
        free(y);
        return st;
    }
    for (size_t f = 0; f < m; f++) {
        const float *v = y + f * h * w;
        float lo, hi;
        range(v, h * w, &lo, &hi);
        int x, yy;
        grid_pos(&g, f, &x, &yy);
        put_tile(out, x, yy, v, 1, h, w, lo, hi, s);
    }
    free(y);
    return CN_OK;
}

/* ---------------------------------------------------------- top images */

cn_status cn_vis_top_units(cn_net *net, size_t i, const cn_data *data, size_t k, size_t channels,
                           cn_unit *units)
{
    cn_layer_info li;
    cn_status st = spatial(net, i, &li);
    if (st)
        return st;
    cn_shape in = cn_net_input_shape(net);
    if (data->shape.c != in.c || data->shape.h != in.h || data->shape.w != in.w)
        return cn_fail(CN_ERR_SHAPE, "the images are %zux%zux%zu; the network takes %zux%zux%zu",
                       data->shape.c, data->shape.h, data->shape.w, in.c, in.h, in.w);
    if (k < 1 || data->n < k)
        return cn_fail(CN_ERR_ARG, "need at least %zu images, have %zu", k, data->n);
    if (channels < 1 || channels > li.out.c)
        return cn_fail(CN_ERR_ARG, "%s has channels 0..%zu; asked for %zu", li.name, li.out.c - 1,
                       channels);
    size_t m = li.out.c, hw = li.out.h * li.out.w, sz = in.c * in.h * in.w;
    size_t nb = cn_net_max_batch(net);
    float *y = malloc(nb * m * hw * sizeof *y);
    if (!y)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    for (size_t j = 0; j < channels * k; j++)
        units[j] = (cn_unit){0, 0, 0, -INFINITY};
    /* Per channel, the k best so far in descending order (insertion). */
    for (size_t b0 = 0; b0 < data->n; b0 += nb) {
        size_t n = data->n - b0 < nb ? data->n - b0 : nb;
        if ((st = cn_net_forward_pixels(net, data->pixels + b0 * sz, n, 0)) ||
            (st = cn_net_get_layer_output(net, i, 0, n, y)))
            break;
        for (size_t s = 0; s < n; s++)
            for (size_t f = 0; f < channels; f++) {
                const float *v = y + (s * m + f) * hw;
                size_t at = 0;
                for (size_t p = 1; p < hw; p++)
                    at = v[p] > v[at] ? p : at;
                cn_unit *u = units + f * k;
                if (v[at] <= u[k - 1].value)
                    continue;
                size_t q = k - 1;
                for (; q > 0 && v[at] > u[q - 1].value; q--)
                    u[q] = u[q - 1];
                u[q] = (cn_unit){b0 + s, at / li.out.w, at % li.out.w, v[at]};
            }
    }
    free(y);
    return st;
}

/* A picture of rows of cells, one row per channel labelled at its left:
 * the canvas with the labels drawn, white elsewhere. */
static cn_status labelled_rows(size_t rows, size_t channels, int w, int th, int gap, int label,
                               cn_image *out)
{
    int h = (int)rows * (th + gap) + gap;
    cairo_surface_t *cs = canvas_new(w, h);
    if (!cs)
        return cn_fail(CN_ERR_NOMEM, "out of memory for a %dx%d picture", w, h);
    cairo_t *cr = cairo_create(cs);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    for (size_t f = 0; f < rows; f++) {
        char text[32];
        snprintf(text, sizeof text, "%s %zu", channels > 99 ? "ch" : "channel", f);
        draw_text(cr, label - 6, gap + (double)f * (th + gap) + th / 2.0, 12, 1.0, 0.5, text);
    }
    cairo_destroy(cr);
    return canvas_finish(cs, out);
}

/* The image p (in.c planes of in.h x in.w bytes, 1 or 3) into the RGB
 * canvas img at (x, y), each pixel a block of s x s. */
static void put_pixels(cn_image *img, int x, int y, const uint8_t *p, cn_shape in, int s)
{
    for (int yy = 0; yy < s * (int)in.h; yy++)
        for (int xx = 0; xx < s * (int)in.w; xx++)
            for (int c = 0; c < 3; c++) {
                size_t plane = in.c == 3 ? (size_t)c : 0;
                img->px[((size_t)(y + yy) * (size_t)img->w + (size_t)(x + xx)) * 3 + (size_t)c] =
                    p[plane * in.h * in.w + (size_t)(yy / s) * in.w + (size_t)(xx / s)];
            }
}

cn_status cn_vis_grid(const uint8_t *pixels, cn_shape in, size_t rows, size_t cols,
                      const char *const *labels, cn_image *out)
{
    memset(out, 0, sizeof *out);
    if (rows == 0 || cols == 0 || rows > 4096 || cols > 4096 || (in.c != 1 && in.c != 3))
        return cn_fail(CN_ERR_ARG,
                       "a grid of %zu x %zu images of %zu channels: 1 to 4096 rows and "
                       "columns of 1 or 3 channels",
                       rows, cols, in.c);
    size_t sz = in.c * in.h * in.w;
    int s = enlarge(in.h > in.w ? in.h : in.w, 56);
    int tw = s * (int)in.w, th = s * (int)in.h, gap = 3, label = labels ? 110 : 0;
    int w = label + (int)cols * (tw + gap) + gap, h = (int)rows * (th + gap) + gap;
    cairo_surface_t *cs = canvas_new(w, h);
    if (!cs)
        return cn_fail(CN_ERR_NOMEM, "out of memory for a %dx%d picture", w, h);
    cairo_t *cr = cairo_create(cs);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    for (size_t r = 0; labels && r < rows; r++)
        if (labels[r])
            draw_text(cr, label - 6, gap + (double)r * (th + gap) + th / 2.0, 12, 1.0, 0.5,
                      labels[r]);
    cairo_destroy(cr);
    cn_image canvas;
    cn_status st = canvas_finish(cs, &canvas);
    if (st)
        return st;
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++) {
            const uint8_t *p = pixels + (r * cols + j) * sz;
            put_pixels(&canvas, label + gap + (int)j * (tw + gap), gap + (int)r * (th + gap), p, in,
                       s);
        }
    *out = canvas;
    return CN_OK;
}

cn_status cn_vis_units(const cn_data *data, const cn_unit *units, size_t channels, size_t k,
                       cn_image *out)
{
    memset(out, 0, sizeof *out);
    cn_shape in = data->shape;
    size_t sz = in.c * in.h * in.w;
    for (size_t j = 0; j < channels * k; j++)
        if (units[j].sample >= data->n)
            return cn_fail(CN_ERR_ARG, "unit %zu: sample %zu of %zu", j, units[j].sample, data->n);
    /* Rows: a label column, then k images enlarged twice. */
    int tw = 2 * (int)in.w, th = 2 * (int)in.h, gap = 2, label = 76;
    int w = label + (int)k * (tw + gap) + gap;
    cn_image canvas;
    cn_status st = labelled_rows(channels, channels, w, th, gap, label, &canvas);
    if (st)
        return st;
    for (size_t f = 0; f < channels; f++)
        for (size_t j = 0; j < k; j++) {
            const uint8_t *p = data->pixels + units[f * k + j].sample * sz;
            put_pixels(&canvas, label + gap + (int)j * (tw + gap), gap + (int)f * (th + gap), p, in,
                       2);
        }
    *out = canvas;
    return CN_OK;
}

/* Paints the part of box (rows box[0]..box[2) and columns box[1]..box[3) of
 * the input) that lies inside the h x w image at (x, y), each input pixel a
 * square of s: the planes of v mapped by value to byte (lo -> 0, hi -> 255)
 * when v is not NULL, else pixels p as they are.  The rest stays as it was. */
static void put_box(cn_image *img, int x, int y, const long box[4], size_t c, size_t h, size_t w,
                    const float *v, float lo, float hi, const uint8_t *p, int s)
{
    float scale = hi > lo ? 255.0f / (hi - lo) : 0.0f;
    for (long r = box[0]; r < box[2]; r++)
        for (long q = box[1]; q < box[3]; q++) {
            if (r < 0 || q < 0 || r >= (long)h || q >= (long)w)
                continue;
            size_t at = (size_t)r * w + (size_t)q;
            uint8_t px3[3];
            for (size_t k = 0; k < 3; k++) {
                size_t plane = (c == 3 ? k : 0) * h * w;
                float b = v ? (v[plane + at] - lo) * scale : p[plane + at];
                px3[k] = (uint8_t)(b <= 0.0f ? 0 : b >= 255.0f ? 255 : b + 0.5f);
            }
            for (int i = 0; i < s; i++) {
                uint8_t *row =
                    img->px + ((size_t)y + (size_t)((r - box[0]) * s + i)) * (size_t)img->w * 3;
                for (int j = 0; j < s; j++)
                    memcpy(row + ((size_t)x + (size_t)((q - box[1]) * s + j)) * 3, px3, 3);
            }
        }
}

cn_status cn_vis_deconv(cn_net *net, size_t i, const cn_data *data, const cn_unit *units,
                        size_t channels, size_t k, cn_image *out)
{
    memset(out, 0, sizeof *out);
    cn_layer_info li;
    cn_status st = spatial(net, i, &li);
    if (st)
        return st;
    cn_shape in = cn_net_input_shape(net);
    size_t sz = in.c * in.h * in.w, osz = li.out.c * li.out.h * li.out.w;
    if (data->shape.c != in.c || data->shape.h != in.h || data->shape.w != in.w)
        return cn_fail(CN_ERR_SHAPE, "the images are %zux%zux%zu; the network takes %zux%zux%zu",
                       data->shape.c, data->shape.h, data->shape.w, in.c, in.h, in.w);
    if (channels < 1 || channels > li.out.c)
        return cn_fail(CN_ERR_ARG, "%s has channels 0..%zu; asked for %zu", li.name, li.out.c - 1,
                       channels);
    for (size_t j = 0; j < channels * k; j++)
        if (units[j].sample >= data->n || units[j].row >= li.out.h || units[j].col >= li.out.w)
            return cn_fail(CN_ERR_ARG,
                           "unit %zu (sample %zu at %zu, %zu) is outside the data or "
                           "%s's %zux%zu maps",
                           j, units[j].sample, units[j].row, units[j].col, li.name, li.out.h,
                           li.out.w);
    /* Every unit's receptive field has the same size; cells show it whole,
     * the part outside the image (the zero padding) in a pale blue. */
    long box[4];
    if ((st = cn_net_receptive_field(net, i, 0, 0, box)))
        return st;
    long bh = box[2] - box[0], bw = box[3] - box[1];
    int s = enlarge((size_t)(bh > bw ? bh : bw), 40);
    int tw = (int)bw * s, th = (int)bh * s, gap = 2, sep = 8, label = 76;
    int w = label + (int)k * (2 * tw + gap + sep) + gap;
    float *signal = calloc(osz, sizeof *signal), *dx = malloc(sz * sizeof *dx);
    if (!signal || !dx) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = labelled_rows(channels, channels, w, th, gap, label, out)))
        goto done;
    for (size_t f = 0; f < channels; f++)
        for (size_t j = 0; j < k; j++) {
            const cn_unit *u = units + f * k + j;
            int x0 = label + gap + (int)j * (2 * tw + gap + sep), y0 = gap + (int)f * (th + gap);
            for (int yy = 0; yy < th; yy++)
                for (int xx = 0; xx < 2 * tw + gap; xx++)
                    if (xx < tw || xx >= tw + gap)
                        memcpy(out->px + ((size_t)(y0 + yy) * (size_t)w + (size_t)(x0 + xx)) * 3,
                               (const uint8_t[3]){222, 230, 242}, 3);
            if (u->value == -INFINITY)
                continue; /* fewer images than k */
            size_t at = (f * li.out.h + u->row) * li.out.w + u->col;
            const uint8_t *p = data->pixels + u->sample * sz;
            if ((st = cn_net_forward_pixels(net, p, 1, 0)) ||
                (st = cn_net_get_layer_output(net, i, 0, 1, signal)))
                goto done;
            float a = signal[at];
            memset(signal, 0, osz * sizeof *signal);
            signal[at] = a;
            long b[4];
            if ((st = cn_net_project(net, i, signal, 1, CN_BACK_DECONV, dx)) ||
                (st = cn_net_receptive_field(net, i, u->row, u->col, b)))
                goto done;
            signal[at] = 0.0f;
            /* Zero is mid-grey; the projection's largest magnitude black or
             * white, the same scale for the colour planes. */
            float big = 0.0f;
            for (size_t q = 0; q < sz; q++)
                big = fabsf(dx[q]) > big ? fabsf(dx[q]) : big;
            put_box(out, x0, y0, b, in.c, in.h, in.w, dx, -big, big, NULL, s);
            put_box(out, x0 + tw + gap, y0, b, in.c, in.h, in.w, NULL, 0, 0, p, s);
        }
done:
    if (st)
        cn_image_free(out);
    free(signal);
    free(dx);
    return st;
}

cn_status cn_vis_top_images(cn_net *net, size_t i, const cn_data *data, size_t k, size_t *index,
                            cn_image *out)
{
    memset(out, 0, sizeof *out);
    cn_layer_info li;
    cn_status st = spatial(net, i, &li);
    if (st)
        return st;
    size_t m = li.out.c;
    cn_unit *units = malloc(m * k * sizeof *units);
    if (!units)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    if (!(st = cn_vis_top_units(net, i, data, k, m, units)) &&
        !(st = cn_vis_units(data, units, m, k, out)) && index)
        for (size_t j = 0; j < m * k; j++)
            index[j] = units[j].sample;
    free(units);
    return st;
}

/* ------------------------------------------------------------ confusion */

/* label, name cut to at most LABEL_BYTES bytes (at a character boundary,
 * with an ellipsis) or the number j when names is NULL. */
#define LABEL_BYTES 16
static void class_label(const char *const *names, size_t j, char *label, size_t size)
{
    if (!names) {
        snprintf(label, size, "%zu", j);
        return;
    }
    size_t len = strlen(names[j]);
    if (len <= LABEL_BYTES) {
        snprintf(label, size, "%s", names[j]);
        return;
    }
    len = LABEL_BYTES;
    while (len > 0 && ((unsigned char)names[j][len] & 0xC0) == 0x80)
        len--; /* not inside a UTF-8 sequence */
    snprintf(label, size, "%.*s\xe2\x80\xa6", (int)len, names[j]);
}

cn_status cn_vis_confusion(const size_t *confusion, size_t k, cn_image *out)
{
    return cn_vis_confusion_named(confusion, k, NULL, out);
}

cn_status cn_vis_confusion_named(const size_t *confusion, size_t k, const char *const *names,
                                 cn_image *out)
{
    memset(out, 0, sizeof *out);
    if (k < 1 || k > 100)
        return cn_fail(CN_ERR_ARG, "cannot draw a confusion matrix of %zu classes", k);
    for (size_t j = 0; names && j < k; j++)
        if (!names[j])
            return cn_fail(CN_ERR_ARG, "names[%zu] is NULL", j);
    /* Room for the longest label, measured in the font it is drawn with. */
    double widest = 0;
    cairo_surface_t *scratch = canvas_new(1, 1);
    if (!scratch)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    cairo_t *m = cairo_create(scratch);
    cairo_select_font_face(m, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(m, 13);
    for (size_t j = 0; j < k; j++) {
        char label[LABEL_BYTES + 8];
        class_label(names, j, label, sizeof label);
        cairo_text_extents_t te;
        cairo_text_extents(m, label, &te);
        widest = te.x_advance > widest ? te.x_advance : widest;
    }
    cairo_destroy(m);
    cairo_surface_destroy(scratch);
    int cell = k <= 20 ? 44 : 24, right = 12, bottom = 12;
    int left = names ? 44 + (int)ceil(widest) : 64, top = left;
    int w = left + (int)k * cell + right, h = top + (int)k * cell + bottom;
    cairo_surface_t *cs = canvas_new(w, h);
    if (!cs)
        return cn_fail(CN_ERR_NOMEM, "out of memory for a %dx%d picture", w, h);
    cairo_t *cr = cairo_create(cs);
    const rgb light = {247 / 255.0, 251 / 255.0, 1.0}, dark = {8 / 255.0, 48 / 255.0, 107 / 255.0};
    double font = cell >= 44 ? 13 : 8;
    for (size_t t = 0; t < k; t++) {
        size_t total = 0;
        for (size_t p = 0; p < k; p++)
            total += confusion[t * k + p];
        for (size_t p = 0; p < k; p++) {
            size_t n = confusion[t * k + p];
            double u = total ? sqrt((double)n / (double)total) : 0.0;
            rgb c = {light.r + u * (dark.r - light.r), light.g + u * (dark.g - light.g),
                     light.b + u * (dark.b - light.b)};
            double x = left + (double)p * cell, y = top + (double)t * cell;
            set_colour(cr, c);
            cairo_rectangle(cr, x, y, cell, cell);
            cairo_fill(cr);
            char text[24];
            snprintf(text, sizeof text, "%zu", n);
            cairo_set_source_rgb(cr, u > 0.55 ? 1 : 0.15, u > 0.55 ? 1 : 0.15, u > 0.55 ? 1 : 0.15);
            draw_text(cr, x + cell / 2.0, y + cell / 2.0, font, 0.5, 0.5, text);
        }
    }
    /* Grid lines, class labels and axis titles. */
    cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
    cairo_set_line_width(cr, 1);
    for (size_t j = 0; j <= k; j++) {
        cairo_move_to(cr, left + (double)j * cell + 0.5, top);
        cairo_line_to(cr, left + (double)j * cell + 0.5, top + (double)k * cell);
        cairo_move_to(cr, left, top + (double)j * cell + 0.5);
        cairo_line_to(cr, left + (double)k * cell, top + (double)j * cell + 0.5);
    }
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    for (size_t j = 0; j < k; j++) {
        char text[LABEL_BYTES + 8];
        class_label(names, j, text, sizeof text);
        draw_text(cr, left - 8, top + (j + 0.5) * cell, 13, 1.0, 0.5, text);
        if (!names) {
            draw_text(cr, left + (j + 0.5) * cell, top - 8, 13, 0.5, 1.0, text);
            continue;
        }
        cairo_save(cr); /* names run upwards above their columns */
        cairo_translate(cr, left + (j + 0.5) * cell, top - 8);
        cairo_rotate(cr, -2 * atan(1.0));
        draw_text(cr, 0, 0, 13, 0.0, 0.5, text);
        cairo_restore(cr);
    }
    draw_text(cr, left + k * cell / 2.0, 20, 14, 0.5, 0.5, "predicted");
    cairo_save(cr);
    cairo_translate(cr, 20, top + k * cell / 2.0);
    cairo_rotate(cr, -2 * atan(1.0)); /* a quarter turn back */
    draw_text(cr, 0, 0, 14, 0.5, 0.5, "true");
    cairo_restore(cr);
    cairo_destroy(cr);
    return canvas_finish(cs, out);
}
