/* canvas.h - what the picture files share: cairo surfaces to and from
 * cn_image, and a few drawing helpers. */
#ifndef CN_VIS_CANVAS_H
#define CN_VIS_CANVAS_H

#include "vis.h"

#include <cairo.h>

/* A w x h drawing surface painted white; NULL when out of memory. */
cairo_surface_t *canvas_new(int w, int h);
/* The surface's pixels into a new RGB image; frees the surface. */
cn_status canvas_finish(cairo_surface_t *s, cn_image *out);

/* An RGB colour, each part 0..1. */
typedef struct rgb {
    double r, g, b;
} rgb;
void set_colour(cairo_t *cr, rgb c);
/* Text in DejaVu Sans of the given size with its anchor at (x, y): ax, ay
 * are 0 (left, top), 0.5 (centre) or 1 (right, bottom). */
void draw_text(cairo_t *cr, double x, double y, double size, double ax, double ay,
               const char *text);

/* Grid layout of n tiles of tw x th pixels with gap pixels around each:
 * cols = ceil(sqrt(n)). */
typedef struct grid {
    int cols, rows, tw, th, gap, w, h;
} grid;
grid grid_for(size_t n, int tw, int th, int gap);
/* Top left corner of tile i. */
void grid_pos(const grid *g, size_t i, int *x, int *y);
/* The smallest s with s * side >= want (at least 1). */
int enlarge(size_t side, int want);

#endif
