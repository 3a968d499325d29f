/* explain.c - convnet explain: why the network decided, as a map over the
 * image (saliency, Grad-CAM or occlusion), written as a PNG file. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char help[] =
    "usage: convnet explain MODEL_FILE IMAGE... [options]\n"
    "\n"
    "Shows why the network classified each image as it did: a map of how much each\n"
    "part of the image counts for a class, blended over the image with a colour scale\n"
    "(dark blue low, red high), written as a PNG file.  The image is prepared as\n"
    "'convnet predict' prepares it.  One line per image says the class explained,\n"
    "its probability and the file written.\n"
    "\n"
    "  --method M     saliency: |d logit / d pixel|, the pixels whose change moves\n"
    "                 the class's score most (one backward pass);\n"
    "                 gradcam: Grad-CAM, the layer's feature maps weighted by the\n"
    "                 mean gradient of the class's logit over each map, then relu\n"
    "                 (coarse: the layer's resolution; one backward pass);\n"
    "                 occlusion: a grey square slid over the image, the map the\n"
    "                 class's probability with the square over each place (low:\n"
    "                 the place matters).  Default gradcam\n"
    "  --occlusion    the same as --method occlusion\n"
    "  --class K      explain class K, a number or the class's name as 'convnet\n"
    "                 info' lists it (default: the most probable class)\n"
    "  --true K       the image's true class (number or name): its map is drawn\n"
    "                 beside the first when it is another class\n"
    "  --layer NAME   Grad-CAM's layer (default: the last convolution; the names\n"
    "                 are those 'convnet info' lists)\n"
    "  --patch P      occlusion: the square's side in pixels (default 7)\n"
    "  --stride S     occlusion: pixels between its positions (default 2)\n"
    "  -o FILE.png    where the picture goes (one image only)\n"
    "  --out DIR      the directory for the pictures, each named after its image:\n"
    "                 NAME.METHOD.png (default: the current directory)\n"
    "  --fit MODE     digit, crop or stretch, as for 'convnet predict'\n"
    "  --threads N    worker threads (default: one per core)\n"
    "\n"
    "An image that cannot be read, a class out of range or a layer that does not\n"
    "exist is reported on stderr and the other images are still explained; the exit\n"
    "status is then 1.\n";

int cli_explain_method(const char *s, cli_method *m)
{
    static const char *names[] = {"saliency", "gradcam", "occlusion"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *m = (cli_method)i;
            return 1;
        }
    return 0;
}

const char *cli_method_name(cli_method m)
{
    return m == CLI_SALIENCY ? "saliency" : m == CLI_GRADCAM ? "gradcam" : "occlusion";
}

/* One map (mh, mw) of class cls into *map (malloc'd), with its range. */
static cn_status one_map(cn_net *net, const uint8_t *pix, int cls, const cli_explain_opts *o,
                         float **map, size_t *mh, size_t *mw, float *lo, float *hi)
{
    cn_shape s = cn_net_input_shape(net);
    size_t layer = 0;
    cn_layer_info li;
    cn_status st;
    *mh = s.h, *mw = s.w;
    if (o->method == CLI_GRADCAM) {
        if ((st = cn_explain_find_layer(net, o->layer, &layer)) ||
            (st = cn_net_layer(net, layer, &li)))
            return st;
        *mh = li.out.h, *mw = li.out.w;
    }
    *map = malloc(*mh * *mw * sizeof **map);
    if (!*map)
        return cn_fail_at(__FILE__, __LINE__, CN_ERR_NOMEM, "out of memory");
    *lo = *hi = 0.0f; /* the map's own range */
    if (o->method == CLI_SALIENCY)
        st = cn_explain_saliency(net, pix, cls, *map);
    else if (o->method == CLI_GRADCAM)
        st = cn_explain_gradcam(net, pix, cls, layer, *map);
    else
        st = cn_explain_occlusion(net, pix, &cls, 1, o->patch, o->stride, *map);
    if (st) {
        free(*map);
        *map = NULL;
    }
    return st;
}

/* a and b side by side on white, 8 pixels apart; frees both. */
static cn_status side_by_side(cn_image *a, cn_image *b, cn_image *out)
{
    int h = a->h > b->h ? a->h : b->h, w = a->w + 8 + b->w;
    cn_status st = cn_image_new(w, h, 3, out);
    if (!st) {
        memset(out->px, 255, (size_t)w * (size_t)h * 3);
        for (int y = 0; y < h; y++) {
            if (y < a->h)
                memcpy(out->px + (size_t)y * (size_t)w * 3, a->px + (size_t)y * (size_t)a->w * 3,
                       (size_t)a->w * 3);
            if (y < b->h)
                memcpy(out->px + ((size_t)y * (size_t)w + (size_t)a->w + 8) * 3,
                       b->px + (size_t)y * (size_t)b->w * 3, (size_t)b->w * 3);
        }
    }
    cn_image_free(a);
    cn_image_free(b);
    return st;
}

cn_status cli_explain_picture(cn_model *model, const uint8_t *pix, const cli_explain_opts *o,
                              cn_image *out, int *cls_out, float *prob_out)
{
    cn_net *net = cn_model_net(model);
    cn_shape s = cn_net_input_shape(net);
    size_t k = cn_net_classes(net);
    memset(out, 0, sizeof *out);
    int top;
    float ptop;
    cn_status st = cn_explain_top_class(net, pix, &top, &ptop);
    if (st)
        return st;
    int cls = o->cls >= 0 ? o->cls : top;
    if ((size_t)cls >= k || (o->true_cls >= 0 && (size_t)o->true_cls >= k))
        return cn_fail_at(__FILE__, __LINE__, CN_ERR_ARG,
                          "class %d does not exist: the model has classes 0..%zu",
                          (size_t)cls >= k ? cls : o->true_cls, k - 1);
    float *p = malloc(k * sizeof *p);
    if (!p)
        return cn_fail_at(__FILE__, __LINE__, CN_ERR_NOMEM, "out of memory");
    if ((st = cn_net_forward_pixels(net, pix, 1, 0)) || (st = cn_net_get_output(net, p))) {
        free(p);
        return st;
    }
    int which[2] = {cls, o->true_cls};
    int n = o->true_cls >= 0 && o->true_cls != cls ? 2 : 1;
    cn_image pic[2] = {{0}};
    for (int i = 0; i < n && !st; i++) {
        float *map, lo = 0.0f, hi = 0.0f;
        size_t mh, mw;
        if ((st = one_map(net, pix, which[i], o, &map, &mh, &mw, &lo, &hi)))
            break;
        char name[32], title[128];
        snprintf(title, sizeof title, "%s: %s, p = %.3f",
                 cli_class_name(model, (size_t)which[i], name, sizeof name),
                 i                 ? "true class"
                 : which[i] == top ? "predicted"
                                   : "chosen class",
                 (double)p[which[i]]);
        st = cn_explain_picture(pix, s, map, mh, mw, lo, hi, title, &pic[i]);
        free(map);
    }
    free(p);
    if (st) {
        cn_image_free(&pic[0]);
        cn_image_free(&pic[1]);
        return st;
    }
    if (n == 2)
        st = side_by_side(&pic[0], &pic[1], out);
    else
        *out = pic[0];
    if (cls_out)
        *cls_out = cls;
    if (prob_out)
        *prob_out = cls == top ? ptop : -1.0f;
    return st;
}

int cli_explain_dir(const char *dir)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return cli_error("cannot create the directory %s: %s", dir, strerror(errno));
    return 0;
}

/* DIR/NAME.METHOD.png for image file path (malloc'd). */
char *cli_explain_path(const char *dir, const char *path, cli_method m)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    int len = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    size_t size = strlen(dir) + strlen(base) + 32;
    char *out = malloc(size);
    if (out)
        snprintf(out, size, "%s/%.*s.%s.png", dir, len, base, cli_method_name(m));
    return out;
}

int cmd_explain(int argc, char **argv)
{
    enum {
        O_METHOD = 256,
        O_OCC,
        O_CLASS,
        O_TRUE,
        O_LAYER,
        O_PATCH,
        O_STRIDE,
        O_O,
        O_OUT,
        O_FIT,
        O_THREADS,
        O_HELP
    };
    static const cli_opt opts[] = {
        {"method", 1, O_METHOD},   {"occlusion", 0, O_OCC},
        {"class", 1, O_CLASS},     {"true", 1, O_TRUE},
        {"layer", 1, O_LAYER},     {"patch", 1, O_PATCH},
        {"stride", 1, O_STRIDE},   {"o", 1, O_O},
        {"out", 1, O_OUT},         {"fit", 1, O_FIT},
        {"threads", 1, O_THREADS}, {"help", 0, O_HELP},
        {"h", 0, O_HELP},          {NULL, 0, 0},
    };
    cli_explain_opts o = {CLI_GRADCAM, -1, -1, NULL, 7, 2};
    const char *v, *path = NULL, *file_out = NULL, *dir = ".", *cls_arg = NULL, *true_arg = NULL;
    char **files = calloc((size_t)argc + 1, sizeof *files);
    size_t nfiles = 0;
    long threads = 0, num;
    int c, rc = 0;
    cn_fit fit = CN_FIT_AUTO;
    if (!files)
        return cli_error("out of memory");
    cli_iter it;
    cli_begin(&it, "explain", argc, argv);
    while ((c = cli_next(&it, opts, &v)) != CLI_END) {
        const char *bad = NULL;
        switch (c) {
        case CLI_ERROR: free(files); return EXIT_USAGE;
        case CLI_POSITIONAL:
            if (!path)
                path = v;
            else
                files[nfiles++] = (char *)v;
            break;
        case O_METHOD:
            if (!cli_explain_method(v, &o.method))
                bad = "--method is saliency, gradcam or occlusion";
            break;
        case O_OCC: o.method = CLI_OCCLUSION; break;
        case O_CLASS: cls_arg = v; break;
        case O_TRUE: true_arg = v; break;
        case O_LAYER: o.layer = v; break;
        case O_PATCH:
        case O_STRIDE:
            if (!cli_int(v, 1, 4096, &num))
                bad = c == O_PATCH ? "--patch takes a side in pixels"
                                   : "--stride takes a number of pixels";
            else
                *(c == O_PATCH ? &o.patch : &o.stride) = (int)num;
            break;
        case O_O: file_out = v; break;
        case O_OUT: dir = v; break;
        case O_FIT:
            if (!cli_fit(v, &fit))
                bad = "--fit is digit, crop or stretch";
            break;
        case O_THREADS:
            if (cli_threads("explain", v, &threads)) {
                free(files);
                return EXIT_USAGE;
            }
            break;
        case O_HELP:
            free(files);
            fputs(help, stdout);
            return 0;
        }
        if (bad) {
            free(files);
            return cli_usage("explain", "%s, not '%s'", bad, v);
        }
    }
    if (!path || !nfiles) {
        free(files);
        return cli_usage("explain", "takes a model file and at least one image");
    }
    if (file_out && nfiles > 1) {
        free(files);
        return cli_usage("explain", "-o names one picture: give one image, or --out DIR");
    }
    cn_model *model = NULL;
    uint8_t *pix = NULL;
    if ((!file_out && (rc = cli_explain_dir(dir))) ||
        (rc = cli_load_model("explain", path, threads, &model)))
        goto done;
    if ((cls_arg && (rc = cli_class_index(model, "--class", cls_arg, &o.cls))) ||
        (true_arg && (rc = cli_class_index(model, "--true", true_arg, &o.true_cls))))
        goto done;
    if (cn_model_reserve(model, 64)) { /* occlusion's batches */
        rc = cli_lib_error();
        goto done;
    }
    cn_net *net = cn_model_net(model);
    cn_shape s = cn_net_input_shape(net);
    const char *why;
    fit = cli_model_fit(model, fit, &why);
    pix = malloc(s.c * s.h * s.w);
    if (!pix) {
        rc = cli_error("out of memory");
        goto done;
    }
    for (size_t i = 0; i < nfiles; i++)
        rc |= cli_explain_file(model, files[i], fit, pix, &o, file_out ? file_out : NULL, dir);
done:
    free(files);
    free(pix);
    cn_model_free(model);
    return rc;
}

int cli_explain_file(cn_model *model, const char *file, cn_fit fit, uint8_t *pix,
                     const cli_explain_opts *o, const char *out_file, const char *dir)
{
    cn_image img, pic;
    cn_shape s = cn_net_input_shape(cn_model_net(model));
    if (cn_image_load(file, &img))
        return cli_lib_error(); /* the message names the file */
    cn_status st = cli_prepare(model, &img, s, fit, pix);
    cn_image_free(&img);
    if (st)
        return cli_error("%s: %s", file, cn_last_error());
    int cls;
    float prob;
    double t0 = cli_now();
    if (cli_explain_picture(model, pix, o, &pic, &cls, &prob))
        return cli_error("%s: %s", file, cn_last_error());
    double ms = (cli_now() - t0) * 1e3;
    char *to = out_file ? NULL : cli_explain_path(dir, file, o->method);
    const char *where = out_file ? out_file : to;
    int rc = 0;
    if (!where)
        rc = cli_error("out of memory");
    else if (cn_image_write_png(&pic, where))
        rc = cli_lib_error();
    else {
        char name[32], pct[32] = "";
        if (prob >= 0.0f)
            snprintf(pct, sizeof pct, " (%.2f%%)", 100.0 * (double)prob);
        printf("%s: %s %s%s -> %s (%.1f ms)\n", file, cli_method_name(o->method),
               cli_class_name(model, (size_t)cls, name, sizeof name), pct, where, ms);
    }
    fflush(stdout);
    free(to);
    cn_image_free(&pic);
    return rc;
}
