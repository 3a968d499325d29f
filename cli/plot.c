/* plot.c - convnet plot: training curves from the CSV log of a run. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: convnet plot LOG.csv -o FILE.png\n"
    "\n"
    "Draws the training and validation loss and accuracy against the epoch from the\n"
    "CSV log that 'convnet train' writes beside its model file (mnist.csv for\n"
    "mnist.safetensors): two panels, 960x400 pixels.\n"
    "\n"
    "  -o FILE.png    the picture to write\n";

/* Splits a CSV line in place at commas; returns the field count. */
static size_t split(char *line, char **field, size_t max)
{
    size_t n = 0;
    line[strcspn(line, "\r\n")] = 0;
    for (char *p = line; n < max;) {
        field[n++] = p;
        p = strchr(p, ',');
        if (!p)
            break;
        *p++ = 0;
    }
    return n;
}

int cli_read_log(const char *path, cn_curve_point **pts, size_t *n)
{
    *pts = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return cli_error("%s: cannot open: %s", path, strerror(errno));
    char line[4096], *field[64];
    static const char *names[5] = {"epoch", "train_loss", "train_accuracy", "val_loss",
                                   "val_accuracy"};
    int col[5] = {-1, -1, -1, -1, -1}, rc = 0, lineno = 1;
    size_t cap = 0;
    if (!fgets(line, sizeof line, f)) {
        rc = cli_error("%s: empty file; expected the CSV log of 'convnet train'", path);
        goto done;
    }
    size_t nf = split(line, field, 64);
    for (size_t i = 0; i < nf; i++)
        for (int k = 0; k < 5; k++)
            if (!strcmp(field[i], names[k]))
                col[k] = (int)i;
    if (col[0] < 0 || col[1] < 0) {
        rc = cli_error("%s:1: not a training log: the header needs the columns epoch and "
                       "train_loss (the CSV log of 'convnet train')",
                       path);
        goto done;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        nf = split(line, field, 64);
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            cn_curve_point *p = realloc(*pts, cap * sizeof *p);
            if (!p) {
                rc = cli_error("out of memory");
                goto done;
            }
            *pts = p;
        }
        double v[5];
        for (int k = 0; k < 5; k++) {
            v[k] = NAN;
            if (col[k] < 0 || (size_t)col[k] >= nf || !*field[col[k]])
                continue;
            if (!cli_double(field[col[k]], -1e300, 1e300, &v[k])) {
                rc = cli_error("%s:%d: %s is '%s', not a number", path, lineno, names[k],
                               field[col[k]]);
                goto done;
            }
        }
        if (isnan(v[0])) {
            rc = cli_error("%s:%d: the row has no epoch", path, lineno);
            goto done;
        }
        (*pts)[(*n)++] = (cn_curve_point){v[0], v[1], v[2], v[3], v[4]};
    }
    if (!*n)
        rc = cli_error("%s: the log has a header but no rows: nothing to plot", path);
done:
    fclose(f);
    if (rc) {
        free(*pts);
        *pts = NULL;
        *n = 0;
    }
    return rc;
}

int cmd_plot(int argc, char **argv)
{
    enum { O_OUT = 256, O_HELP };
    static const cli_opt opts[] = {
        {"o", 1, O_OUT}, {"help", 0, O_HELP}, {"h", 0, O_HELP}, {NULL, 0, 0}};
    const char *v, *log = NULL, *out = NULL;
    int c;
    cli_iter it;
    cli_begin(&it, "plot", argc, argv);
    while ((c = cli_next(&it, opts, &v)) != CLI_END) {
        switch (c) {
        case CLI_ERROR: return EXIT_USAGE;
        case CLI_POSITIONAL:
            if (log)
                return cli_usage("plot", "takes one log, got '%s' and '%s'", log, v);
            log = v;
            break;
        case O_OUT: out = v; break;
        case O_HELP: fputs(help, stdout); return 0;
        }
    }
    if (!log)
        return cli_usage("plot", "takes the CSV log of a training run");
    if (!out)
        return cli_usage("plot", "needs -o FILE.png");
    cn_curve_point *pts;
    size_t n;
    int rc = cli_read_log(log, &pts, &n);
    if (rc)
        return rc;
    cn_image img;
    if (cn_vis_curves(pts, n, &img))
        rc = cli_lib_error();
    else if (!(rc = cli_write_png(&img, out)))
        printf("%s: %zu rows of %s plotted\n", out, n, log);
    cn_image_free(&img);
    free(pts);
    return rc;
}
