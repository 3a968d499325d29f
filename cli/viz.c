/* viz.c - convnet viz: pictures of what a trained network has learned. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char help[] =
    "usage: convnet viz MODEL_FILE --out DIR [options]\n"
    "\n"
    "Draws what a model written by 'convnet train' has learned, as PNG files in DIR:\n"
    "  filters-LAYER.png    the first convolution layer's filters, each scaled to its\n"
    "                       own range (black: its smallest weight, white: its largest)\n"
    "  input.png            the image the feature maps are computed for, as the\n"
    "                       network sees it\n"
    "  features-LAYER.png   the feature maps of every convolution layer for that image\n"
    "  top-LAYER.png        for each channel of a layer, the 9 validation images\n"
    "                       that excite it most (largest response anywhere in the map)\n"
    "  deconv-LAYER.png     the same responses projected back to pixel space by the\n"
    "                       deconvnet of Zeiler and Fergus (unpooling through the\n"
    "                       recorded maxima, relu on the way back, transposed\n"
    "                       filters), each beside the image patch it came from:\n"
    "                       what the channel sees, not only which images excite it\n"
    "                       (grey is zero, black and white the strongest parts)\n"
    "  confusion.png        the confusion matrix on the test set, with counts\n"
    "\n"
    "The validation images are the last 10 000 of the training set, as in\n"
    "'convnet train'; the test set is MNIST's t10k files or CIFAR-10's\n"
    "test_batch.bin.\n"
    "\n"
    "  --out DIR      where to write (created if missing)\n"
    "  --image FILE   image for the feature maps (default: the first validation\n"
    "                 image); prepared as 'convnet predict' does\n"
    "  --layers LIST  layers for top- and deconv-LAYER.png: 'all' (every\n"
    "                 convolution) or names separated by commas (any layer with\n"
    "                 feature maps); default: the last convolution\n"
    "  --layer NAME   the same as --layers NAME\n"
    "  --channels N   at most N channels of each of those layers, the first N\n"
    "                 (default 16)\n"
    "  --top K        K images per channel (default 9)\n"
    "  --fit MODE     digit, crop or stretch, as in 'convnet predict'\n"
    "  --data DIR     data directory (default $CONVNET_DATA or data/mnist)\n"
    "  --threads N    worker threads (default: one per core)\n";

/* Writes img to dir/name and says so; frees img. */
static int save(cn_image *img, const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cn_status st = cn_image_write_png(img, path);
    if (!st)
        printf("%-28s %dx%d\n", path, img->w, img->h);
    cn_image_free(img);
    return st ? cli_lib_error() : 0;
}

/* Index of the layer called name, or -1 after an error listing the names. */
static long find_layer(const cn_net *net, const char *name)
{
    cn_layer_info li;
    for (size_t i = 0; i < cn_net_num_layers(net); i++)
        if (!cn_net_layer(net, i, &li) && !strcmp(li.name, name))
            return (long)i;
    fprintf(stderr, "convnet: error: the model has no layer '%s'; its layers are:", name);
    for (size_t i = 0; i < cn_net_num_layers(net); i++)
        if (!cn_net_layer(net, i, &li))
            fprintf(stderr, " %s", li.name);
    fputc('\n', stderr);
    return -1;
}

/* Marks the layers named in list (separated by commas) in chosen; 1 after an
 * error for a name that is not a layer or a layer without feature maps. */
static int choose_layers(const cn_net *net, const char *list, unsigned char *chosen)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save_ptr = NULL, *t = strtok_r(buf, ",", &save_ptr); t;
         t = strtok_r(NULL, ",", &save_ptr)) {
        long i = find_layer(net, t);
        if (i < 0)
            return 1;
        cn_layer_info li;
        cn_net_layer(net, (size_t)i, &li);
        if (li.out.h * li.out.w < 2)
            return cli_error("%s (%s) has no feature maps to show (its output is %zu values); "
                             "choose a convolution or pooling layer",
                             t, li.kind, li.out.c);
        chosen[i] = 1;
    }
    return 0;
}

int cmd_viz(int argc, char **argv)
{
    enum { O_OUT = 256, O_IMAGE, O_LAYER, O_FIT, O_DATA, O_THREADS, O_CHANNELS, O_TOP, O_HELP };
    static const cli_opt opts[] = {
        {"out", 1, O_OUT},         {"image", 1, O_IMAGE},
        {"layer", 1, O_LAYER},     {"layers", 1, O_LAYER},
        {"fit", 1, O_FIT},         {"data", 1, O_DATA},
        {"threads", 1, O_THREADS}, {"channels", 1, O_CHANNELS},
        {"top", 1, O_TOP},         {"help", 0, O_HELP},
        {"h", 0, O_HELP},          {NULL, 0, 0},
    };
    const char *v, *path = NULL, *out = NULL, *image = NULL, *layer = NULL, *data_opt = NULL;
    long threads = 0, channels = 16, top = 9;
    cn_fit fit = CN_FIT_AUTO;
    int c;
    cli_iter it;
    cli_begin(&it, "viz", argc, argv);
    while ((c = cli_next(&it, opts, &v)) != CLI_END) {
        switch (c) {
        case CLI_ERROR: return EXIT_USAGE;
        case CLI_POSITIONAL:
            if (path)
                return cli_usage("viz", "takes one model file, got '%s' and '%s'", path, v);
            path = v;
            break;
        case O_OUT: out = v; break;
        case O_IMAGE: image = v; break;
        case O_LAYER: layer = v; break;
        case O_FIT:
            if (!cli_fit(v, &fit))
                return cli_usage("viz", "--fit is digit, crop or stretch, not '%s'", v);
            break;
        case O_DATA: data_opt = v; break;
        case O_THREADS:
            if (cli_threads("viz", v, &threads))
                return EXIT_USAGE;
            break;
        case O_CHANNELS:
            if (!cli_int(v, 1, 4096, &channels))
                return cli_usage("viz", "--channels takes a whole number from 1 to 4096, not '%s'",
                                 v);
            break;
        case O_TOP:
            if (!cli_int(v, 1, 64, &top))
                return cli_usage("viz", "--top takes a whole number from 1 to 64, not '%s'", v);
            break;
        case O_HELP: fputs(help, stdout); return 0;
        }
    }
    if (!path)
        return cli_usage("viz", "takes a model file");
    if (!out)
        return cli_usage("viz", "needs --out DIR for the pictures");
    cn_model *model;
    int rc = cli_load_model("viz", path, threads, &model);
    if (rc)
        return rc;
    cn_net *net = cn_model_net(model);
    cn_data train = {0}, test = {0};
    cn_image img = {0};
    uint8_t *pix = NULL;
    float *x = NULL;
    long first_conv = -1;
    size_t nl = cn_net_num_layers(net);
    cn_unit *units = NULL;
    unsigned char *chosen = calloc(nl, 1);
    if (!chosen) {
        rc = cli_error("out of memory");
        goto done;
    }
    for (size_t i = 0; i < nl; i++) {
        cn_layer_info li;
        cn_net_layer(net, i, &li);
        if (!strcmp(li.kind, "conv")) {
            first_conv = first_conv < 0 ? (long)i : first_conv;
            if (layer && !strcmp(layer, "all"))
                chosen[i] = 1;
            else if (!layer)
                memset(chosen, 0, nl), chosen[i] = 1;
        }
    }
    if (layer && strcmp(layer, "all") && (rc = choose_layers(net, layer, chosen)))
        goto done;
    if (first_conv < 0) {
        rc = cli_error("%s has no convolution layer: there are no filters or feature maps to draw",
                       path);
        goto done;
    }
    int own;
    const char *dir = cli_model_data_dir(model, data_opt, &own), *why;
    if (own)
        printf("data: %s (the model's own; --data for other data)\n", dir);
    fit = cli_model_fit(model, fit, &why);
    if (image && why)
        printf("fit: %s; --fit to choose\n", why);
    if (cli_load_data(model, dir, "train", &train) || cli_load_data(model, dir, "test", &test) ||
        cn_model_reserve(model, 256)) {
        rc = cli_lib_error();
        goto done;
    }
    net = cn_model_net(model);
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        rc = cli_error("cannot create the directory %s: %s", out, strerror(errno));
        goto done;
    }
    cn_data val = cn_data_slice(&train, train.n > 10000 ? train.n - 10000 : 0, 10000);
    cn_shape s = cn_net_input_shape(net);
    size_t sz = s.c * s.h * s.w;
    char name[256];
    cn_layer_info li;

    /* Filters of the first convolution. */
    cn_net_layer(net, (size_t)first_conv, &li);
    snprintf(name, sizeof name, "filters-%s.png", li.name);
    if (cn_vis_filters(net, (size_t)first_conv, &img)) {
        rc = cli_lib_error();
        goto done;
    }
    if ((rc = save(&img, out, name)))
        goto done;

    /* One input and the feature maps of every convolution. */
    pix = malloc(sz);
    x = malloc(sz * sizeof *x);
    if (!pix || !x) {
        rc = cli_error("out of memory");
        goto done;
    }
    if (image) {
        if (cn_image_load(image, &img)) {
            rc = cli_lib_error();
            goto done;
        }
        cn_status st = cli_prepare(model, &img, s, fit, pix);
        cn_image_free(&img);
        if (st) {
            rc = cli_error("%s: %s", image, cn_last_error());
            goto done;
        }
    } else {
        memcpy(pix, val.pixels, sz);
    }
    if (cn_image_from_planes(pix, s, 4, &img)) {
        rc = cli_lib_error();
        goto done;
    }
    if ((rc = save(&img, out, "input.png")))
        goto done;
    cn_net_prepare(net, pix, 1, x);
    if (cn_net_forward(net, x, 1, 0)) {
        rc = cli_lib_error();
        goto done;
    }
    for (size_t i = 0; i < nl; i++) {
        cn_net_layer(net, i, &li);
        if (strcmp(li.kind, "conv"))
            continue;
        snprintf(name, sizeof name, "features-%s.png", li.name);
        if (cn_vis_feature_maps(net, i, 0, &img)) {
            rc = cli_lib_error();
            goto done;
        }
        if ((rc = save(&img, out, name)))
            goto done;
    }

    /* The strongest validation images per channel, and what each sees. */
    for (size_t i = 0; i < nl; i++) {
        if (!chosen[i])
            continue;
        cn_net_layer(net, i, &li);
        size_t m = li.out.c < (size_t)channels ? li.out.c : (size_t)channels, k = (size_t)top;
        free(units);
        if (!(units = malloc(m * k * sizeof *units))) {
            rc = cli_error("out of memory");
            goto done;
        }
        if (cn_vis_top_units(net, i, &val, k, m, units) || cn_vis_units(&val, units, m, k, &img)) {
            rc = cli_error("%s: %s", li.name, cn_last_error());
            goto done;
        }
        snprintf(name, sizeof name, "top-%s.png", li.name);
        if ((rc = save(&img, out, name)))
            goto done;
        if (cn_vis_deconv(net, i, &val, units, m, k, &img)) {
            rc = cli_error("%s: %s", li.name, cn_last_error());
            goto done;
        }
        snprintf(name, sizeof name, "deconv-%s.png", li.name);
        if ((rc = save(&img, out, name)))
            goto done;
    }

    /* The confusion matrix on the test set. */
    cn_eval ev;
    if (cn_net_evaluate(net, &test, &ev)) {
        rc = cli_lib_error();
        goto done;
    }
    cn_status st =
        cn_vis_confusion_named(ev.confusion, ev.classes, cn_model_class_names(model), &img);
    cn_eval_free(&ev);
    if (st) {
        rc = cli_lib_error();
        goto done;
    }
    rc = save(&img, out, "confusion.png");
done:
    cn_image_free(&img);
    free(chosen);
    free(units);
    free(pix);
    free(x);
    cn_data_free(&train);
    cn_data_free(&test);
    cn_model_free(model);
    return rc;
}
