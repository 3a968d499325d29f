/* viz.c - convnet viz: pictures of what a trained network has learned. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char help[] =
    "usage: convnet viz MODEL_FILE --out DIR [options]\n"
    "       convnet viz MODEL_FILE --out DIR --augment [--data DIR] [augmentation options]\n"
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
    "  --threads N    worker threads (default: one per core)\n"
    "\n"
    "With --augment, only the training augmentation is drawn, into augment.png: 8\n"
    "validation images as they are, then as the model's recipe augments them, a\n"
    "row for each augmentation it uses on its own and a row for all of them\n"
    "together (the draws of the first training step).  These options change the\n"
    "recipe for the picture, to try settings before training with them:\n"
    "  --shift N  --flip 0|1  --rotate DEG  --scale F  --shear DEG  --erase P\n"
    "  --elastic PIX  --mixup P\n"
    "(as 'convnet train' takes them; 'convnet train --help' says what each does;\n"
    "mixup's partners are drawn from the 8 images shown, training's from the whole\n"
    "training set).\n";

/* The augmentation keys of the recipe, which viz --augment takes. */
static const char *const aug_keys[] = {"shift", "flip",  "rotate",  "scale",
                                       "shear", "erase", "elastic", "mixup"};
#define N_AUG (sizeof aug_keys / sizeof aug_keys[0])
/* Images in each row of augment.png. */
#define AUG_COLS 8

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

/* The value of augmentation key k (aug_keys) in o. */
static double aug_value(const cn_train_opts *o, size_t k)
{
    const double v[N_AUG] = {o->shift, o->flip,  o->rotate,  o->scale,
                             o->shear, o->erase, o->elastic, o->mixup};
    return v[k];
}

/* augment.png in dir: the first images of val as they are, then a row for
 * each augmentation the recipe o uses, alone, and one for all of them when
 * it uses more than one.  0 or the exit status. */
static int draw_augment(const cn_train_opts *o, const cn_data *val, const char *dir)
{
    size_t cols = val->n < AUG_COLS ? val->n : AUG_COLS;
    size_t sz = val->shape.c * val->shape.h * val->shape.w;
    const char *labels[N_AUG + 2];
    char text[N_AUG + 2][48];
    cn_train_opts rows[N_AUG + 2];
    size_t nr = 0, used = 0;
    rows[nr] = *o;
    for (size_t k = 0; k < N_AUG; k++) /* as they are: every augmentation off */
        cn_train_opts_set(&rows[nr], aug_keys[k], "0");
    snprintf(text[nr++], sizeof text[0], "as they are");
    for (size_t k = 0; k < N_AUG; k++) {
        double v = aug_value(o, k);
        if (v == 0)
            continue;
        rows[nr] = rows[0];
        char num[32];
        snprintf(num, sizeof num, "%.15g", v);
        cn_train_opts_set(&rows[nr], aug_keys[k], num);
        if (strcmp(aug_keys[k], "flip") == 0)
            snprintf(text[nr++], sizeof text[0], "flip");
        else
            snprintf(text[nr++], sizeof text[0], "%s %s", aug_keys[k], num);
        used++;
    }
    if (used > 1) {
        rows[nr] = *o;
        snprintf(text[nr++], sizeof text[0], "all of them");
    }
    if (!used)
        printf("the recipe has no augmentation: augment.png shows the images as they are "
               "(--shift, --flip, --rotate, --scale, --shear, --erase, --elastic and --mixup "
               "try some)\n");
    if (!cols)
        return cli_error("no validation images to draw");
    uint8_t *pix = malloc(nr * cols * sz);
    if (!pix)
        return cli_error("out of memory");
    cn_status st = CN_OK;
    for (size_t r = 0; r < nr && !st; r++) {
        labels[r] = text[r];
        memcpy(pix + r * cols * sz, val->pixels, cols * sz);
        st = cn_train_opts_augment(&rows[r], pix + r * cols * sz, cols, val->shape, 0, 0);
    }
    cn_image img = {0};
    if (!st)
        st = cn_vis_grid(pix, val->shape, nr, cols, labels, &img);
    free(pix);
    if (st)
        return cli_lib_error();
    return save(&img, dir, "augment.png");
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
    enum {
        O_OUT = 256,
        O_IMAGE,
        O_LAYER,
        O_FIT,
        O_DATA,
        O_THREADS,
        O_CHANNELS,
        O_TOP,
        O_HELP,
        O_AUGMENT,
        O_AUG_KEY /* + the key's index in aug_keys */
    };
    static const cli_opt opts[] = {
        {"out", 1, O_OUT},
        {"image", 1, O_IMAGE},
        {"layer", 1, O_LAYER},
        {"layers", 1, O_LAYER},
        {"fit", 1, O_FIT},
        {"data", 1, O_DATA},
        {"threads", 1, O_THREADS},
        {"channels", 1, O_CHANNELS},
        {"top", 1, O_TOP},
        {"help", 0, O_HELP},
        {"h", 0, O_HELP},
        {"augment", 0, O_AUGMENT},
        {"shift", 1, O_AUG_KEY + 0},
        {"flip", 1, O_AUG_KEY + 1},
        {"rotate", 1, O_AUG_KEY + 2},
        {"scale", 1, O_AUG_KEY + 3},
        {"shear", 1, O_AUG_KEY + 4},
        {"erase", 1, O_AUG_KEY + 5},
        {"elastic", 1, O_AUG_KEY + 6},
        {"mixup", 1, O_AUG_KEY + 7},
        {NULL, 0, 0},
    };
    const char *v, *path = NULL, *out = NULL, *image = NULL, *layer = NULL, *data_opt = NULL;
    const char *aug_given[N_AUG] = {NULL};
    long threads = 0, channels = 16, top = 9;
    cn_fit fit = CN_FIT_AUTO;
    int c, augment = 0, aug_options = 0;
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
        case O_AUGMENT: augment = 1; break;
        default: { /* an augmentation key: checked now, applied to the model's recipe */
            size_t k = (size_t)(c - O_AUG_KEY);
            cn_train_opts check;
            cn_train_opts_defaults(&check);
            if (cn_train_opts_set(&check, aug_keys[k], v))
                return cli_usage("viz", "--%s", cn_last_error());
            aug_given[k] = v;
            aug_options = 1;
            break;
        }
        }
    }
    if (aug_options && !augment)
        return cli_usage("viz", "--shift, --flip, --rotate, --scale, --shear, --erase, "
                                "--elastic and --mixup go with --augment");
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
    if (augment) { /* augment.png alone: the data and the recipe, not the network */
        int own_data;
        const char *adir = cli_model_data_dir(model, data_opt, &own_data);
        if (own_data)
            printf("data: %s (the model's own; --data for other data)\n", adir);
        cn_train_opts o = *cn_model_opts(model);
        for (size_t k = 0; k < N_AUG; k++)
            if (aug_given[k])
                cn_train_opts_set(&o, aug_keys[k], aug_given[k]); /* checked: cannot fail */
        if (cli_load_data(model, adir, "train", &train)) {
            rc = cli_lib_error();
            goto done;
        }
        if (mkdir(out, 0777) != 0 && errno != EEXIST) {
            rc = cli_error("cannot create the directory %s: %s", out, strerror(errno));
            goto done;
        }
        cn_data aval = cn_data_slice(&train, train.n > 10000 ? train.n - 10000 : 0, 10000);
        rc = draw_augment(&o, &aval, out);
        goto done;
    }
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
