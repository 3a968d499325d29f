/* plot.c - convnet plot: training curves from the CSV log of a run. */
#include "cli.h"

#include <stdlib.h>

static const char help[] =
    "usage: convnet plot LOG.csv -o FILE.png\n"
    "\n"
    "Draws the training and validation loss and accuracy against the epoch from the\n"
    "CSV log that 'convnet train' writes beside its model file (mnist.csv for\n"
    "mnist.safetensors): two panels, 960x400 pixels.\n"
    "\n"
    "  -o FILE.png    the picture to write\n";

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
    if (cn_vis_curves(pts, n, &img) || cn_image_write_png(&img, out))
        rc = cli_lib_error();
    else
        printf("%s: %zu rows of %s plotted\n", out, n, log);
    cn_image_free(&img);
    free(pts);
    return rc;
}
