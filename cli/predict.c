/* predict.c - convnet predict: classify image files with a trained model. */
#include "cli.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static const char help[] =
    "usage: convnet predict MODEL_FILE IMAGE... [options]\n"
    "\n"
    "Classifies image files with a model written by 'convnet train' and prints the\n"
    "most likely classes (by name where the model has class names) with their\n"
    "probabilities, one line per file, in the order given.  PNG, JPEG, BMP,\n"
    "PGM/PPM, GIF and TGA files of any size, grey or colour, are read; an IMAGE that\n"
    "is a directory stands for its image files in name order.\n"
    "\n"
    "Each picture is prepared the way the training data was.  For a grey network\n"
    "(MNIST) it becomes light ink on black: a picture with light corners (dark ink\n"
    "on paper; the corners stay background even in a digit cropped to its ink) is\n"
    "inverted, the background level becomes black and the brightest ink white; then,\n"
    "as MNIST's digits were made, the ink's bounding box is scaled so that its longer\n"
    "side is 20 of 28 pixels (strokes that would come out thinner than MNIST's, as a\n"
    "thin pen on a large page, are thickened first) and placed with its centre of\n"
    "mass at the centre.  Finally the pixels are normalised with the model's mean\n"
    "and std.  A picture with no ink (uniform, or noise only) is refused as blank.\n"
    "\n"
    "  --top K        classes shown per file (default 3)\n"
    "  --json         one JSON object per file and line:\n"
    "                 {\"file\": ..., \"label\": best class, \"index\": its number,\n"
    "                  \"probability\": ..., \"top\": [{\"label\": ..., \"index\": ...,\n"
    "                  \"probability\": ...}, ...]}; the label is the class's name\n"
    "                 where the training data named its classes (folder names,\n"
    "                 classes.txt), else its number as a string\n"
    "  --fit MODE     how a picture is brought to the input size: digit (the MNIST\n"
    "                 procedure above), crop (the centred part with the input's\n"
    "                 proportions, scaled), stretch (the whole picture scaled).\n"
    "                 Default: digit for a model trained on digits, crop for one\n"
    "                 trained on other pictures (train notes which in the model\n"
    "                 file); for older files digit when grey, crop when colour\n"
    "  --tta T        test-time augmentation: none (default), flip, shift or\n"
    "                 flip-shift.  flip: the probabilities are the mean of the\n"
    "                 picture's and its mirror image's (left-right); for pictures\n"
    "                 whose mirror is as likely (clothes), not digits.  shift: the\n"
    "                 mean of the picture's and its four shifts by one pixel; for\n"
    "                 digits.  flip-shift: those five and their mirrors; clothes\n"
    "  --also FILE    an ensemble: the probabilities are the mean of MODEL_FILE's\n"
    "                 and this model's (repeat it for more models: each --also\n"
    "                 adds one; the models take the same input and have the same\n"
    "                 classes; names, --fit's default and --explain are\n"
    "                 MODEL_FILE's)\n"
    "  --threads N    worker threads (default: one per core)\n"
    "  --device D     where to run: cpu (default), or cuda / cuda:N, a GPU (a\n"
    "                 build with make CUDA=1; convnet info --devices lists them)\n"
    "  --explain DIR  also write, for each file, a picture of why the network chose\n"
    "                 its class: DIR/NAME.METHOD.png (see 'convnet explain')\n"
    "  --method M     the explanation: gradcam (default), saliency or occlusion\n"
    "\n"
    "A file that cannot be read is reported on stderr and the others are still\n"
    "classified; the exit status is then 1.\n";

static int is_image_name(const char *name)
{
    static const char *ext[] = {".png", ".jpg", ".jpeg", ".bmp", ".pgm",
                                ".ppm", ".pnm", ".gif",  ".tga", NULL};
    size_t n = strlen(name);
    for (int i = 0; ext[i]; i++) {
        size_t e = strlen(ext[i]);
        if (n > e && !strcasecmp(name + n - e, ext[i]))
            return 1;
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct list {
    char **v;
    size_t n, cap;
} list;

static int push(list *l, char *s)
{
    if (!s)
        return -1;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            free(s);
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

/* The files args name, directories replaced by their image files. */
static int expand(char **args, size_t n, list *out)
{
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        if (stat(args[i], &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            if (push(out, strdup(args[i])))
                return cli_error("out of memory");
            continue;
        }
        DIR *d = opendir(args[i]);
        if (!d)
            return cli_error("%s: cannot read the directory", args[i]);
        size_t first = out->n;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.' || !is_image_name(e->d_name))
                continue;
            size_t len = strlen(args[i]) + strlen(e->d_name) + 2;
            char *p = malloc(len);
            if (p)
                snprintf(p, len, "%s%s%s", args[i], args[i][strlen(args[i]) - 1] == '/' ? "" : "/",
                         e->d_name);
            if (push(out, p)) {
                closedir(d);
                return cli_error("out of memory");
            }
        }
        closedir(d);
        qsort(out->v + first, out->n - first, sizeof *out->v, by_name);
        if (out->n == first)
            return cli_error("%s: no image files in this directory", args[i]);
    }
    return 0;
}

static void print_result(const char *file, const float *prob, size_t k, size_t top,
                         const cn_model *model, int json)
{
    size_t order[1024], m = k < 1024 ? k : 1024;
    char buf[32];
    for (size_t i = 0; i < m; i++)
        order[i] = i;
    for (size_t i = 0; i < top && i < m; i++) /* partial selection sort */
        for (size_t j = i + 1; j < m; j++)
            if (prob[order[j]] > prob[order[i]]) {
                size_t t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    top = top < m ? top : m;
    if (json) {
        printf("{\"file\": ");
        cli_json_string(stdout, file);
        for (size_t i = 0; i <= top; i++) {
            size_t c = order[i ? i - 1 : 0];
            printf(i == 0 ? ", " : i == 1 ? ", \"top\": [{" : ", {");
            printf("\"label\": ");
            cli_json_string(stdout, cli_class_name(model, c, buf, sizeof buf));
            printf(", \"index\": %zu, \"probability\": %.6f%s", c, prob[c], i ? "}" : "");
        }
        printf("]}\n");
    } else {
        printf("%s:", file);
        for (size_t i = 0; i < top; i++)
            printf("  %s (%.2f%%)", cli_class_name(model, order[i], buf, sizeof buf),
                   100.0 * prob[order[i]]);
        printf("\n");
    }
}

int cmd_predict(int argc, char **argv)
{
    enum {
        O_TOP = 256,
        O_JSON,
        O_FIT,
        O_THREADS,
        O_HELP,
        O_EXPLAIN,
        O_METHOD,
        O_DEVICE,
        O_TTA,
        O_ALSO
    };
    static const cli_opt opts[] = {
        {"top", 1, O_TOP},         {"json", 0, O_JSON},     {"fit", 1, O_FIT},
        {"threads", 1, O_THREADS}, {"help", 0, O_HELP},     {"h", 0, O_HELP},
        {"explain", 1, O_EXPLAIN}, {"method", 1, O_METHOD}, {"device", 1, O_DEVICE},
        {"tta", 1, O_TTA},         {"also", 1, O_ALSO},     {NULL, 0, 0},
    };
    const char *v, *path = NULL;
    /* The images from the front, --also's model files from the back: there
     * are fewer of both together than arguments. */
    char **files = calloc((size_t)argc + 1, sizeof *files);
    size_t nfiles = 0, nalso = 0, nothers = 0;
    long top = 3, threads = 0;
    int json = 0, c, rc = 0;
    cn_tta tta = CN_TTA_NONE;
    cn_fit fit = CN_FIT_AUTO;
    const char *explain = NULL; /* --explain DIR */
    cli_explain_opts eo = {CLI_GRADCAM, -1, -1, NULL, 7, 2};
    if (!files)
        return cli_error("out of memory");
    cli_iter it;
    cli_begin(&it, "predict", argc, argv);
    while ((c = cli_next(&it, opts, &v)) != CLI_END) {
        switch (c) {
        case CLI_ERROR: free(files); return EXIT_USAGE;
        case CLI_POSITIONAL:
            if (!path)
                path = v;
            else
                files[nfiles++] = (char *)v;
            break;
        case O_TOP:
            if (!cli_int(v, 1, 1000, &top)) {
                free(files);
                return cli_usage("predict", "--top takes a whole number from 1 to 1000, not '%s'",
                                 v);
            }
            break;
        case O_JSON: json = 1; break;
        case O_FIT:
            if (!cli_fit(v, &fit)) {
                free(files);
                return cli_usage("predict", "--fit is digit, crop or stretch, not '%s'", v);
            }
            break;
        case O_THREADS:
            if (cli_threads("predict", v, &threads)) {
                free(files);
                return EXIT_USAGE;
            }
            break;
        case O_DEVICE:
            if (cli_set_device("predict", v)) {
                free(files);
                return EXIT_USAGE;
            }
            break;
        case O_HELP:
            free(files);
            fputs(help, stdout);
            return 0;
        case O_EXPLAIN: explain = v; break;
        case O_ALSO: files[argc - 1 - (int)nalso++] = (char *)v; break;
        case O_TTA:
            if (cli_tta("predict", v, &tta)) {
                free(files);
                return EXIT_USAGE;
            }
            break;
        case O_METHOD:
            if (!cli_explain_method(v, &eo.method)) {
                free(files);
                return cli_usage("predict", "--method is gradcam, saliency or occlusion, not '%s'",
                                 v);
            }
            break;
        }
    }
    if (!path || !nfiles) {
        free(files);
        return cli_usage("predict", "takes a model file and at least one image");
    }
    list l = {0};
    cn_model *model = NULL;
    cn_model **others = NULL; /* --also's */
    cn_net **nets = NULL;
    uint8_t *pix = NULL;
    float *out = NULL;
    size_t *slot = NULL;
    if ((rc = expand(files, nfiles, &l)) || (explain && (rc = cli_explain_dir(explain))) ||
        (rc = cli_load_model("predict", path, threads, &model)))
        goto done;
    const size_t nb = 64;
    if (cn_model_reserve(model, nb)) {
        rc = cli_lib_error();
        goto done;
    }
    cn_net *net = cn_model_net(model);
    cn_shape s = cn_net_input_shape(net);
    size_t sz = s.c * s.h * s.w, k = cn_net_classes(net);
    others = calloc(nalso + 1, sizeof *others);
    nets = calloc(nalso + 1, sizeof *nets); /* the model's, then --also's */
    if (!others || !nets) {
        rc = cli_error("out of memory");
        goto done;
    }
    nets[0] = net;
    while (nothers < nalso) {
        const char *o = files[argc - 1 - (int)nothers];
        if ((rc = cli_load_model("predict", o, threads, &others[nothers])))
            goto done;
        cn_model *om = others[nothers++];
        cn_net *on = nets[nothers] = cn_model_net(om);
        cn_shape os = cn_net_input_shape(on);
        if (os.c != s.c || os.h != s.h || os.w != s.w || cn_net_classes(on) != k) {
            rc = cli_error("%s takes %zux%zux%zu images into %zu classes, %s %zux%zux%zu into %zu: "
                           "not one ensemble",
                           o, os.c, os.h, os.w, cn_net_classes(on), path, s.c, s.h, s.w, k);
            goto done;
        }
        if (cn_model_reserve(om, nb)) {
            rc = cli_lib_error();
            goto done;
        }
    }
    /* Without --fit, the fit of the pictures the model learnt from; said
     * when it is not the one for grey digits. */
    const char *why;
    fit = cli_model_fit(model, fit, &why);
    if (why && !json)
        printf("fit: %s; --fit to choose\n", why);
    pix = malloc(nb * sz);
    out = malloc(nb * k * sizeof *out);
    slot = malloc(nb * sizeof *slot);
    if (!pix || !out || !slot) {
        rc = cli_error("out of memory");
        goto done;
    }
    /* Batches of up to nb readable files; results in the order given. */
    for (size_t i = 0; i < l.n;) {
        size_t n = 0;
        for (; i < l.n && n < nb; i++) {
            cn_image img;
            fflush(stdout);
            if (cn_image_load(l.v[i], &img)) {
                rc = cli_lib_error(); /* the message names the file */
            } else if (cli_prepare(model, &img, s, fit, pix + n * sz)) {
                rc = cli_error("%s: %s", l.v[i], cn_last_error());
            } else {
                slot[n++] = i;
            }
            cn_image_free(&img);
        }
        if (!n)
            continue;
        if (cn_net_classify_ensemble(nets, nothers + 1, pix, n, tta, out)) {
            rc = cli_lib_error();
            goto done;
        }
        for (size_t j = 0; j < n; j++)
            print_result(l.v[slot[j]], out + j * k, k, (size_t)top, model, json);
        for (size_t j = 0; explain && j < n; j++) {
            cn_image pic;
            char *to = cli_explain_path(explain, l.v[slot[j]], eo.method);
            if (!to || cli_explain_picture(model, pix + j * sz, &eo, &pic, NULL, NULL)) {
                rc = to ? cli_error("%s: %s", l.v[slot[j]], cn_last_error())
                        : cli_error("out of memory");
            } else {
                if (cn_image_write_png(&pic, to))
                    rc = cli_lib_error();
                cn_image_free(&pic);
            }
            free(to);
        }
    }
done:
    for (size_t i = 0; i < l.n; i++)
        free(l.v[i]);
    free(l.v);
    free(files);
    free(pix);
    free(out);
    free(slot);
    cn_model_free(model);
    for (size_t m = 0; m < nothers; m++)
        cn_model_free(others[m]);
    free(others);
    free(nets);
    return rc;
}
