/* export.c - convnet export: data set images as PNG files, one flat folder
 * to look at, or a folder tree of train/, val/ and test/ with one folder
 * per class that 'convnet train --data' reads back. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char help[] =
    "usage: convnet export --out DIR [options]\n"
    "\n"
    "Writes images of the data set (IDX files or CIFAR-10 batches) as PNG files.\n"
    "\n"
    "Without --folders: DIR/NNNNN-L.png, NNNNN the image's position in its file\n"
    "(from 0), L its label.  Useful to look at the data, and to try 'convnet\n"
    "predict' on pictures whose answer is known.\n"
    "\n"
    "With --folders: the whole data set as the folder tree that 'convnet train\n"
    "--data DIR' (and torchvision's ImageFolder) reads: DIR/train/CLASS/NNNNN.png,\n"
    "DIR/val/CLASS/NNNNN.png (the last --val images of the training file, as\n"
    "train takes them) and DIR/test/CLASS/NNNNN.png.  CLASS is the class's name\n"
    "where the data name their classes (classes.txt, batches.meta.txt; '/' becomes\n"
    "'-'), else its number; NNNNN the position in the file, so that the tree reads\n"
    "back in the files' order.  Training on the tree gives the same model, bit for\n"
    "bit, as training on the files with the same seed and --val.\n"
    "\n"
    "  --out DIR      where to write (created if missing)\n"
    "  --folders      the folder tree above\n"
    "  --val N        with --folders: images of the training file kept for\n"
    "                 validation (default 10000, as train's --val; 0 for none)\n"
    "  --set SET      without --folders: test (the default) or train\n"
    "  --first N      without --folders: first image (default 0)\n"
    "  --count N      without --folders: number of images (default: all from\n"
    "                 --first on)\n"
    "  --data DIR     data directory (default $CONVNET_DATA or data/mnist)\n";

static int make_dir(const char *path)
{
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return cli_error("cannot create the directory %s: %s", path, strerror(errno));
    return 0;
}

/* Writes sample i of d as path (PNG): 0 or the exit status. */
static int write_sample(const cn_data *d, size_t i, const char *path)
{
    cn_image img;
    int rc = 0;
    if (cn_image_from_planes(d->pixels + i * d->shape.c * d->shape.h * d->shape.w, d->shape, 1,
                             &img) ||
        cn_image_write_png(&img, path))
        rc = cli_lib_error();
    cn_image_free(&img);
    return rc;
}

/* The folder of class k: its name made safe for a file system, or its
 * number with as many digits as the largest (so that the folders sort in
 * the classes' order). */
static void class_folder(const cn_data *d, size_t k, char *out, size_t size)
{
    if (!d->names) {
        int digits = 1;
        for (size_t c = d->classes - 1; c >= 10; c /= 10)
            digits++;
        snprintf(out, size, "%0*zu", digits, k);
        return;
    }
    snprintf(out, size, "%s", d->names[k]);
    for (char *c = out; *c; c++)
        if (*c == '/' || *c == '\\')
            *c = '-';
    if (out[0] == '.')
        out[0] = '_';
}

/* Class names as folders must stay distinct and sort in the classes' order,
 * or the tree would read back with other class numbers: 0 if they do. */
static int folders_keep_order(const cn_data *d)
{
    char a[300], b[300];
    for (size_t k = 1; k < d->classes; k++) {
        class_folder(d, k - 1, a, sizeof a);
        class_folder(d, k, b, sizeof b);
        if (strcmp(a, b) >= 0)
            return 0;
    }
    return 1;
}

/* part of d (its images numbered from first) under out/split/CLASS/, the
 * classes' folders named after those of naming (the training set). */
static int write_split(const cn_data *d, const cn_data *naming, size_t first, size_t n,
                       const char *out, const char *split, int numbered)
{
    char path[4096], folder[300];
    snprintf(path, sizeof path, "%s/%s", out, split);
    int rc = make_dir(path);
    cn_data plain = *naming;
    if (numbered)
        plain.names = NULL;
    for (size_t k = 0; k < plain.classes && !rc; k++) {
        class_folder(&plain, k, folder, sizeof folder);
        snprintf(path, sizeof path, "%s/%s/%s", out, split, folder);
        rc = make_dir(path);
    }
    int digits = 5;
    for (size_t m = first + n; m >= 100000; m /= 10)
        digits++;
    for (size_t i = first; i < first + n && !rc; i++) {
        class_folder(&plain, (size_t)d->labels[i], folder, sizeof folder);
        if (snprintf(path, sizeof path, "%s/%s/%s/%0*zu.png", out, split, folder, digits, i) >=
            (int)sizeof path)
            return cli_error("the path %s/%s/... is too long", out, split);
        rc = write_sample(d, i, path);
    }
    return rc;
}

static int export_folders(const char *dir, const char *out, long val)
{
    cn_data train, test;
    if (cn_data_load(dir, "train", &train))
        return cli_lib_error();
    if (cn_data_load(dir, "test", &test)) {
        cn_data_free(&train);
        return cli_lib_error();
    }
    int rc = 0;
    if ((size_t)val >= train.n)
        rc = cli_error("--val %ld leaves no training images (the file has %zu)", val, train.n);
    /* Named folders only where they keep the classes' order; the test set
     * is named as the training set is. */
    int numbered = train.names && !folders_keep_order(&train);
    if (!rc && numbered)
        printf("the class names do not sort in the classes' order: the folders are numbered "
               "(classes.txt there keeps the names)\n");
    size_t n_train = train.n - (size_t)val;
    if (!rc)
        rc = write_split(&train, &train, 0, n_train, out, "train", numbered);
    if (!rc && val)
        rc = write_split(&train, &train, n_train, (size_t)val, out, "val", numbered);
    if (!rc && test.classes > train.classes)
        rc = cli_error("the test set has labels up to %zu, the training set up to %zu",
                       test.classes - 1, train.classes - 1);
    if (!rc)
        rc = write_split(&test, &train, 0, test.n, out, "test", numbered);
    if (!rc && train.names) { /* the names as they were, for the record */
        char path[4096];
        snprintf(path, sizeof path, "%s/classes.txt", out);
        FILE *f = fopen(path, "w");
        int bad = !f;
        for (size_t k = 0; f && k < train.classes; k++)
            bad |= fprintf(f, "%s\n", train.names[k]) < 0;
        if (f)
            bad |= fclose(f) != 0;
        if (bad)
            rc = cli_error("cannot write %s: %s", path, strerror(errno));
    }
    if (!rc)
        printf("%zu training, %ld validation and %zu test images written to %s/{train,val,test}/ "
               "in %zu class folders\n",
               n_train, val, test.n, out, train.classes);
    cn_data_free(&train);
    cn_data_free(&test);
    return rc;
}

int cmd_export(int argc, char **argv)
{
    enum { O_OUT = 256, O_SET, O_FIRST, O_COUNT, O_DATA, O_FOLDERS, O_VAL, O_HELP };
    static const cli_opt opts[] = {
        {"out", 1, O_OUT},     {"set", 1, O_SET},   {"first", 1, O_FIRST},
        {"count", 1, O_COUNT}, {"data", 1, O_DATA}, {"folders", 0, O_FOLDERS},
        {"val", 1, O_VAL},     {"help", 0, O_HELP}, {"h", 0, O_HELP},
        {NULL, 0, 0},
    };
    const char *v, *out = NULL, *set = "test", *data_opt = NULL;
    long first = 0, count = -1, val = 10000;
    int c, folders = 0, flat_only = 0, val_given = 0;
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
            flat_only = 1;
            break;
        case O_FIRST:
            if (!cli_int(v, 0, 100000000, &first))
                return cli_usage("export", "--first takes a whole number, not '%s'", v);
            flat_only = 1;
            break;
        case O_COUNT:
            if (!cli_int(v, 0, 100000000, &count))
                return cli_usage("export", "--count takes a whole number, not '%s'", v);
            flat_only = 1;
            break;
        case O_VAL:
            if (!cli_int(v, 0, 100000000, &val))
                return cli_usage("export", "--val takes a whole number >= 0, not '%s'", v);
            val_given = 1;
            break;
        case O_FOLDERS: folders = 1; break;
        case O_DATA: data_opt = v; break;
        case O_HELP: fputs(help, stdout); return 0;
        }
    }
    if (!out)
        return cli_usage("export", "needs --out DIR");
    if (folders && flat_only)
        return cli_usage("export", "--set, --first and --count are for the flat export; "
                                   "--folders writes the whole data set");
    if (!folders && val_given)
        return cli_usage("export", "--val goes with --folders");
    int rc = make_dir(out);
    if (rc)
        return rc;
    if (folders)
        return export_folders(cli_data_dir(data_opt), out, val);
    cn_data d;
    if (cn_data_load(cli_data_dir(data_opt), set, &d))
        return cli_lib_error();
    cn_data part = cn_data_slice(&d, (size_t)first, count < 0 ? d.n : (size_t)count);
    for (size_t i = 0; i < part.n && !rc; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%05zu-%d.png", out, (size_t)first + i, (int)part.labels[i]);
        rc = write_sample(&part, i, path);
    }
    if (!rc)
        printf("%zu images written to %s\n", part.n, out);
    cn_data_free(&d);
    return rc;
}
