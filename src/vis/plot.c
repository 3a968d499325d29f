/* plot.c - training curves: loss and accuracy against the epoch; the
 * learning-rate range test's loss against the rate. */
#include "canvas.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PLOT_W = 960, PLOT_H = 400, PANEL_W = PLOT_W / 2 };
static const rgb TRAIN = {31 / 255.0, 119 / 255.0, 180 / 255.0};
static const rgb VAL = {255 / 255.0, 127 / 255.0, 14 / 255.0};

/* A step of 1, 2, 2.5 or 5 times a power of ten giving about 5 ticks. */
static double nice_step(double span)
{
    double raw = span / 5.0, p = pow(10.0, floor(log10(raw))), f = raw / p;
    return p * (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 2.5 ? 2.5 : f <= 5.0 ? 5.0 : 10.0);
}

typedef struct axes {
    double x0, x1, y0, y1;           /* data range */
    double left, top, width, height; /* plot area in pixels */
} axes;

static double px(const axes *a, double x)
{
    return a->left + (x - a->x0) / (a->x1 - a->x0) * a->width;
}
static double py(const axes *a, double y)
{
    return a->top + a->height - (y - a->y0) / (a->y1 - a->y0) * a->height;
}

static void tick_label(char *buf, size_t size, double v, double step)
{
    if (fabs(v) < 1e-6 * step)
        v = 0.0; /* not "-0.0" */
    int dec = step >= 1.0 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (step < 1.0 && fabs(step * pow(10.0, dec) - round(step * pow(10.0, dec))) > 1e-9)
        dec++;
    snprintf(buf, size, "%.*f", dec, v);
}

static void draw_axes(cairo_t *cr, const axes *a, const char *title, const char *ylabel,
                      const char *xlabel)
{
    double xs = nice_step(a->x1 - a->x0), ys = nice_step(a->y1 - a->y0);
    char buf[32];
    cairo_set_line_width(cr, 1);
    for (double v = ceil(a->y0 / ys - 1e-9) * ys; v <= a->y1 + 1e-9 * ys; v += ys) {
        double y = round(py(a, v)) + 0.5;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, a->left, y);
        cairo_line_to(cr, a->left + a->width, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        tick_label(buf, sizeof buf, v, ys);
        draw_text(cr, a->left - 6, y, 12, 1.0, 0.5, buf);
    }
    for (double v = ceil(a->x0 / xs - 1e-9) * xs; v <= a->x1 + 1e-9 * xs; v += xs) {
        double x = round(px(a, v)) + 0.5;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, x, a->top);
        cairo_line_to(cr, x, a->top + a->height);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        tick_label(buf, sizeof buf, v, xs);
        draw_text(cr, x, a->top + a->height + 6, 12, 0.5, 0.0, buf);
    }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_rectangle(cr, a->left + 0.5, a->top + 0.5, a->width, a->height);
    cairo_stroke(cr);
    draw_text(cr, a->left + a->width / 2, 16, 15, 0.5, 0.5, title);
    draw_text(cr, a->left + a->width / 2, a->top + a->height + 32, 13, 0.5, 0.5, xlabel);
    cairo_save(cr);
    cairo_translate(cr, a->left - 48, a->top + a->height / 2);
    cairo_rotate(cr, -2 * atan(1.0));
    draw_text(cr, 0, 0, 13, 0.5, 0.5, ylabel);
    cairo_restore(cr);
}

/* The value at byte offset off of a point (one of its doubles). */
static double field(const cn_curve_point *pt, size_t off)
{
    return *(const double *)(const void *)((const char *)pt + off);
}

/* One series: field at offset off of each point, scaled by mul. */
static void draw_series(cairo_t *cr, const axes *a, const cn_curve_point *pts, size_t n, size_t off,
                        double mul, rgb colour, int dots)
{
    set_colour(cr, colour);
    cairo_set_line_width(cr, 2);
    cairo_save(cr);
    cairo_rectangle(cr, a->left, a->top, a->width, a->height);
    cairo_clip(cr);
    int started = 0;
    for (size_t i = 0; i < n; i++) {
        double v = field(&pts[i], off);
        if (!isfinite(v) || !isfinite(pts[i].epoch))
            continue;
        double x = px(a, pts[i].epoch), y = py(a, v * mul);
        if (started)
            cairo_line_to(cr, x, y);
        else
            cairo_move_to(cr, x, y);
        started = 1;
    }
    cairo_stroke(cr);
    if (dots)
        for (size_t i = 0; i < n; i++) {
            double v = field(&pts[i], off);
            if (!isfinite(v) || !isfinite(pts[i].epoch))
                continue;
            cairo_arc(cr, px(a, pts[i].epoch), py(a, v * mul), 3.5, 0, 8 * atan(1.0));
            cairo_fill(cr);
        }
    cairo_restore(cr);
}

static void legend(cairo_t *cr, const axes *a, int has_val)
{
    double x = a->left + a->width - 110, y = a->top + 14;
    const char *names[2] = {"training", "validation"};
    rgb colours[2] = {TRAIN, VAL};
    for (int i = 0; i < 1 + has_val; i++) {
        set_colour(cr, colours[i]);
        cairo_set_line_width(cr, 2);
        cairo_move_to(cr, x, y + 18 * i);
        cairo_line_to(cr, x + 22, y + 18 * i);
        cairo_stroke(cr);
        if (i == 1) { /* validation points are dots */
            cairo_arc(cr, x + 11, y + 18 * i, 3.5, 0, 8 * atan(1.0));
            cairo_fill(cr);
        }
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        draw_text(cr, x + 28, y + 18 * i, 12, 0.0, 0.5, names[i]);
    }
}

/* Range of a field over the points (scaled by mul); 0 if none. */
static int field_range(const cn_curve_point *pts, size_t n, size_t off, double mul, double *lo,
                       double *hi)
{
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        double v = field(&pts[i], off) * mul;
        if (!isfinite(v))
            continue;
        *lo = any && *lo < v ? *lo : v;
        *hi = any && *hi > v ? *hi : v;
        any = 1;
    }
    return any;
}

cn_status cn_vis_curves(const cn_curve_point *pts, size_t n, cn_image *out)
{
    memset(out, 0, sizeof *out);
    size_t tl = offsetof(cn_curve_point, train_loss), ta = offsetof(cn_curve_point, train_accuracy);
    size_t vl = offsetof(cn_curve_point, val_loss), va = offsetof(cn_curve_point, val_accuracy);
    double llo = 0, lhi = 0, alo = 0, ahi = 0, tlo = 0, thi = 0, xhi = 0;
    int any = 0;
    for (size_t off = tl; off <= va; off += sizeof(double))
        if (field_range(pts, n, off, 1.0, &tlo, &thi)) {
            int acc = off == ta || off == va;
            double *lo = acc ? &alo : &llo, *hi = acc ? &ahi : &lhi;
            *lo = any & (1 << acc) ? fmin(*lo, tlo) : tlo;
            *hi = any & (1 << acc) ? fmax(*hi, thi) : thi;
            any |= 1 << acc;
        }
    if (!any)
        return cn_fail(CN_ERR_ARG, "the log has no loss or accuracy to plot");
    for (size_t i = 0; i < n; i++)
        xhi = isfinite(pts[i].epoch) && pts[i].epoch > xhi ? pts[i].epoch : xhi;
    int has_val = 0;
    for (size_t i = 0; i < n; i++)
        has_val |= isfinite(pts[i].val_loss) || isfinite(pts[i].val_accuracy);

    cairo_surface_t *cs = canvas_new(PLOT_W, PLOT_H);
    if (!cs)
        return cn_fail(CN_ERR_NOMEM, "out of memory for the plot");
    cairo_t *cr = cairo_create(cs);
    /* Loss from 0; accuracy from a round value below its lowest point to 100%. */
    double lstep = nice_step(lhi > 0 ? lhi : 1.0);
    axes loss = {0,  xhi > 0 ? xhi : 1, 0,          ceil(lhi * 1.05 / lstep) * lstep, 72,
                 36, PANEL_W - 96,      PLOT_H - 92};
    if (loss.y1 <= 0)
        loss.y1 = 1;
    double amin = 100 * alo, astep = nice_step(100 - amin > 1 ? 100 - amin : 1);
    axes acc = loss;
    acc.left += PANEL_W;
    acc.y0 = fmax(0.0, floor(amin / astep) * astep -
                           (amin - floor(amin / astep) * astep < astep / 4 ? astep : 0.0));
    acc.y1 = 100;
    if (any & 1) {
        draw_axes(cr, &loss, "loss", "mean negative log-likelihood", "epoch");
        draw_series(cr, &loss, pts, n, tl, 1.0, TRAIN, 0);
        draw_series(cr, &loss, pts, n, vl, 1.0, VAL, 1);
        legend(cr, &loss, has_val);
    }
    if (any & 2) {
        draw_axes(cr, &acc, "accuracy", "accuracy (%)", "epoch");
        draw_series(cr, &acc, pts, n, ta, 100.0, TRAIN, 0);
        draw_series(cr, &acc, pts, n, va, 100.0, VAL, 1);
        double save = acc.top;
        acc.top += acc.height - 50; /* legend at the bottom right: the curves rise */
        legend(cr, &acc, has_val);
        acc.top = save;
    }
    cairo_destroy(cr);
    return canvas_finish(cs, out);
}

cn_status cn_vis_lr_range(const double *lr, const double *loss, const double *smooth, size_t n,
                          double suggested, cn_image *out)
{
    memset(out, 0, sizeof *out);
    /* The points as curve points: x the rate's log10, the loss and its
     * smoothed form as the two series. */
    size_t m = n < 4096 ? n : 4096;
    cn_curve_point *pts = malloc((m ? m : 1) * sizeof *pts);
    if (!pts)
        return cn_fail(CN_ERR_NOMEM, "out of memory for the plot");
    double lo = 0, hi = 0, ylo = 0, yhi = 0;
    int any = 0;
    for (size_t i = 0; i < m; i++) {
        double x = lr[i] > 0 ? log10(lr[i]) : NAN;
        pts[i] = (cn_curve_point){x, loss[i], NAN, smooth[i], NAN};
        if (!isfinite(x) || !isfinite(smooth[i]))
            continue;
        lo = any && lo < x ? lo : x;
        hi = any && hi > x ? hi : x;
        ylo = any && ylo < smooth[i] ? ylo : smooth[i];
        yhi = any && yhi > smooth[i] ? yhi : smooth[i];
        any = 1;
    }
    if (!any) {
        free(pts);
        return cn_fail(CN_ERR_ARG, "the range test has no finite loss to plot");
    }
    /* the loss from 0 to a little above the smoothed loss's highest (the raw
     * loss of the last steps, where it blows up, goes off the top) */
    double ystep = nice_step(yhi > 0 ? yhi : 1.0);
    axes a = {floor(lo),
              ceil(hi > lo ? hi : lo + 1),
              0,
              ceil(yhi * 1.05 / ystep) * ystep,
              72,
              36,
              PANEL_W - 96,
              PLOT_H - 92};
    (void)ylo;
    cairo_surface_t *cs = canvas_new(PANEL_W, PLOT_H);
    if (!cs) {
        free(pts);
        return cn_fail(CN_ERR_NOMEM, "out of memory for the plot");
    }
    cairo_t *cr = cairo_create(cs);
    draw_axes(cr, &a, "learning-rate range test", "loss", "log10 of the learning rate");
    draw_series(cr, &a, pts, m, offsetof(cn_curve_point, train_loss), 1.0, TRAIN, 0);
    draw_series(cr, &a, pts, m, offsetof(cn_curve_point, val_loss), 1.0, VAL, 0);
    if (suggested > 0 && isfinite(log10(suggested))) { /* the suggestion, dashed */
        double x = round(px(&a, log10(suggested))) + 0.5, dash[] = {5, 4};
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        cairo_set_line_width(cr, 1);
        cairo_set_dash(cr, dash, 2, 0);
        cairo_move_to(cr, x, a.top);
        cairo_line_to(cr, x, a.top + a.height);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        draw_text(cr, x + 4, a.top + 12, 12, 0.0, 0.5, "suggested");
    }
    double x = a.left + 12, y = a.top + a.height - 40;
    const char *names[2] = {"loss", "smoothed"};
    rgb colours[2] = {TRAIN, VAL};
    for (int i = 0; i < 2; i++) {
        set_colour(cr, colours[i]);
        cairo_set_line_width(cr, 2);
        cairo_move_to(cr, x, y + 18 * i);
        cairo_line_to(cr, x + 22, y + 18 * i);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        draw_text(cr, x + 28, y + 18 * i, 12, 0.0, 0.5, names[i]);
    }
    cairo_destroy(cr);
    free(pts);
    return canvas_finish(cs, out);
}
