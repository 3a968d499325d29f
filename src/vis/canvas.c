/* canvas.c - cairo surfaces to and from cn_image, PNG files, text and
 * grid layout for the pictures. */
#include "canvas.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cairo_surface_t *canvas_new(int w, int h)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return NULL;
    }
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_destroy(cr);
    return s;
}

cn_status canvas_finish(cairo_surface_t *s, cn_image *out)
{
    cairo_surface_flush(s);
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    int stride = cairo_image_surface_get_stride(s);
    const unsigned char *data = cairo_image_surface_get_data(s);
    cn_status st = cn_image_new(w, h, 3, out);
    if (st == CN_OK)
        for (int y = 0; y < h; y++) {
            const uint32_t *row =
                (const uint32_t *)(const void *)(data + (size_t)y * (size_t)stride);
            uint8_t *o = out->px + (size_t)y * (size_t)w * 3;
            for (int x = 0; x < w; x++) {
                o[3 * x] = (uint8_t)(row[x] >> 16);
                o[3 * x + 1] = (uint8_t)(row[x] >> 8);
                o[3 * x + 2] = (uint8_t)row[x];
            }
        }
    cairo_surface_destroy(s);
    return st;
}

/* img as an RGB24 surface (for cairo's PNG writer). */
static cairo_surface_t *surface_of(const cn_image *img)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, img->w, img->h);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return NULL;
    }
    cairo_surface_flush(s);
    int stride = cairo_image_surface_get_stride(s);
    unsigned char *data = cairo_image_surface_get_data(s);
    for (int y = 0; y < img->h; y++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)y * (size_t)stride);
        const uint8_t *p = img->px + (size_t)y * (size_t)img->w * (size_t)img->c;
        for (int x = 0; x < img->w; x++) {
            const uint8_t *q = p + (size_t)x * (size_t)img->c;
            uint32_t r = q[0], g = img->c == 3 ? q[1] : q[0], b = img->c == 3 ? q[2] : q[0];
            row[x] = 0xff000000u | r << 16 | g << 8 | b;
        }
    }
    cairo_surface_mark_dirty(s);
    return s;
}

cn_status cn_image_write_png(const cn_image *img, const char *path)
{
    uint8_t *png;
    size_t n;
    cn_status st = cn_image_encode_png(img, &png, &n);
    if (st)
        return st;
    /* The reason comes from the write that failed: fopen's, fwrite's, the
     * last buffer's (fflush), or the file system's at close. */
    FILE *f = fopen(path, "wb");
    int e = f ? 0 : errno;
    if (f) {
        errno = 0;
        e = fwrite(png, 1, n, f) == n ? 0 : errno ? errno : EIO;
        if (!e && fflush(f) != 0)
            e = errno ? errno : EIO;
        if (fclose(f) != 0 && !e)
            e = errno ? errno : EIO;
    }
    free(png);
    if (e)
        return cn_fail(CN_ERR_IO, "cannot write %s: %s", path, strerror(e));
    return CN_OK;
}

typedef struct membuf {
    uint8_t *data;
    size_t size, cap;
} membuf;

static cairo_status_t append(void *closure, const unsigned char *data, unsigned int length)
{
    membuf *m = closure;
    if (m->size + length > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->size + length)
            cap *= 2;
        uint8_t *d = realloc(m->data, cap);
        if (!d)
            return CAIRO_STATUS_NO_MEMORY;
        m->data = d;
        m->cap = cap;
    }
    memcpy(m->data + m->size, data, length);
    m->size += length;
    return CAIRO_STATUS_SUCCESS;
}

cn_status cn_image_encode_png(const cn_image *img, uint8_t **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    cairo_surface_t *s = surface_of(img);
    if (!s)
        return cn_fail(CN_ERR_NOMEM, "out of memory for a %dx%d picture", img->w, img->h);
    membuf m = {0};
    cairo_status_t cs = cairo_surface_write_to_png_stream(s, append, &m);
    cairo_surface_destroy(s);
    if (cs != CAIRO_STATUS_SUCCESS) {
        free(m.data);
        return cn_fail(CN_ERR_NOMEM, "cannot encode the picture: %s", cairo_status_to_string(cs));
    }
    *data = m.data;
    *size = m.size;
    return CN_OK;
}

void set_colour(cairo_t *cr, rgb c) { cairo_set_source_rgb(cr, c.r, c.g, c.b); }

void draw_text(cairo_t *cr, double x, double y, double size, double ax, double ay, const char *text)
{
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t te;
    cairo_text_extents(cr, text, &te);
    cairo_font_extents_t fe;
    cairo_font_extents(cr, &fe);
    /* Vertical anchoring by the font's ascent, so that rows of labels line up. */
    double h = fe.ascent * 0.75;
    cairo_move_to(cr, x - ax * te.x_advance, y + (1.0 - ay) * h);
    cairo_show_text(cr, text);
}

grid grid_for(size_t n, int tw, int th, int gap)
{
    grid g;
    g.cols = (int)ceil(sqrt((double)n));
    g.cols = g.cols < 1 ? 1 : g.cols;
    g.rows = (int)((n + (size_t)g.cols - 1) / (size_t)g.cols);
    g.rows = g.rows < 1 ? 1 : g.rows;
    g.tw = tw;
    g.th = th;
    g.gap = gap;
    g.w = g.cols * (tw + gap) + gap;
    g.h = g.rows * (th + gap) + gap;
    return g;
}

void grid_pos(const grid *g, size_t i, int *x, int *y)
{
    *x = g->gap + (int)(i % (size_t)g->cols) * (g->tw + g->gap);
    *y = g->gap + (int)(i / (size_t)g->cols) * (g->th + g->gap);
}

int enlarge(size_t side, int want)
{
    int s = (int)(((size_t)want + side - 1) / side);
    return s < 1 ? 1 : s;
}
