/* export.c - convnet export: data set images as PNG files. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char help[] =
    "usage: convnet export --out DIR [options]\n"
    "\n"
    "Writes images of the data set as PNG files DIR/NNNNN-L.png: NNNNN the image's\n"
    "position in its file (from 0), L its label.  Useful to look at the data, and to\n"
    "try 'convnet predict' on pictures whose answer is known.\n"
    "\n"
    "  --out DIR      where to write (created if missing)\n"
    "  --set SET      test (the default) or train\n"
    "  --first N      first image (default 0)\n"
    "  --count N      number of images (default: all from --first on)\n"
    "  --data DIR     data directory (default $CONVNET_DATA or data/mnist)\n";

int cmd_export(int argc, char **argv)
{
    enum { O_OUT = 256, O_SET, O_FIRST, O_COUNT, O_DATA, O_HELP };
    static const cli_opt opts[] = {
        {"out", 1, O_OUT},   {"set", 1, O_SET},   {"first", 1, O_FIRST}, {"count", 1, O_COUNT},
        {"data", 1, O_DATA}, {"help", 0, O_HELP}, {"h", 0, O_HELP},      {NULL, 0, 0},
    };
    const char *v, *out = NULL, *set = "test", *data_opt = NULL;
    long first = 0, count = -1;
    int c;
    cli_iter it;
    cli_begin(&it, "export", argc, argv);
    while ((c = cli_next(&it, opts, &v)) != CLI_END) {
        switch (c) {
        case CLI_ERROR: return EXIT_USAGE;
        case CLI_POSITIONAL: return cli_usage("export", "takes no file names ('%s')", v);
        case O_OUT: out = v; break;
        case O_SET:
            if (strcmp(v, "test") && strcmp(v, "train"))
                return cli_usage("export", "--set is test or train, not '%s'", v);
            set = v;
            break;
        case O_FIRST:
            if (!cli_int(v, 0, 100000000, &first))
                return cli_usage("export", "--first takes a whole number, not '%s'", v);
            break;
        case O_COUNT:
            if (!cli_int(v, 0, 100000000, &count))
                return cli_usage("export", "--count takes a whole number, not '%s'", v);
            break;
        case O_DATA: data_opt = v; break;
        case O_HELP: fputs(help, stdout); return 0;
        }
    }
    if (!out)
        return cli_usage("export", "needs --out DIR");
    if (mkdir(out, 0777) != 0 && errno != EEXIST)
        return cli_error("cannot create the directory %s: %s", out, strerror(errno));
    cn_data d;
    if (cn_data_load(cli_data_dir(data_opt), set, &d))
        return cli_lib_error();
    cn_data part = cn_data_slice(&d, (size_t)first, count < 0 ? d.n : (size_t)count);
    size_t sz = d.shape.c * d.shape.h * d.shape.w;
    int rc = 0;
    for (size_t i = 0; i < part.n && !rc; i++) {
        cn_image img;
        char path[4096];
        snprintf(path, sizeof path, "%s/%05zu-%d.png", out, (size_t)first + i, (int)part.labels[i]);
        if (cn_image_from_planes(part.pixels + i * sz, d.shape, 1, &img) ||
            cn_image_write_png(&img, path))
            rc = cli_lib_error();
        cn_image_free(&img);
    }
    if (!rc)
        printf("%zu images written to %s\n", part.n, out);
    cn_data_free(&d);
    return rc;
}
