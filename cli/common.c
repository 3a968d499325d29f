/* common.c - helpers shared by the subcommands. */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "convnet %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'convnet %s --help'.\n", cmd);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_tta(const char *cmd, const char *v, cn_tta *tta)
{
    int t = cn_tta_by_name(v);
    if (t < 0)
        return cli_usage(cmd, "--tta is none, flip, shift or flip-shift, not '%s'", v);
    *tta = (cn_tta)t;
    return 0;
}

static char worker[48]; /* "worker 1 of 4: " in a data-parallel run */

void cli_set_worker(int rank, int size)
{
    worker[0] = '\0';
    if (size > 1)
        snprintf(worker, sizeof worker, "worker %d of %d: ", rank, size);
}

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "convnet: %serror: ", worker);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_lib_error(void) { return cli_error("%s", cn_last_error()); }

int cli_int(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < min || v > max)
        return 0;
    *out = v;
    return 1;
}

int cli_double(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < min || v > max)
        return 0;
    *out = v;
    return 1;
}

int cli_threads(const char *cmd, const char *v, long *threads)
{
    if (cli_int(v, 0, 1024, threads))
        return 0;
    return cli_usage(cmd, "--threads takes a whole number from 0 to 1024, not '%s'", v);
}

void cli_wrap(FILE *f, const char *text, int col, int indent, int width)
{
    int line_start = 1;
    for (const char *p = text; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        size_t n = strcspn(p, " \n");
        if (*p == '\n' || (!line_start && width > 0 && col + 1 + (int)n > width)) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
            line_start = 1;
            p += *p == '\n';
            continue;
        }
        if (!line_start) {
            fputc(' ', f);
            col++;
        }
        fwrite(p, 1, n, f);
        col += (int)n;
        p += n;
        line_start = 0;
    }
    fputc('\n', f);
}

const char *cli_data_dir(const char *opt)
{
    if (opt)
        return opt;
    const char *env = getenv("CONVNET_DATA");
    return env && *env ? env : "data/mnist";
}

const char *cli_model_data_dir(const cn_model *model, const char *opt, int *own)
{
    const char *dir = model ? cn_model_info(model, "data.dir") : NULL;
    *own = !opt && dir;
    return *own ? dir : cli_data_dir(opt);
}

cn_fit cli_model_fit(cn_model *model, cn_fit fit, const char **why)
{
    const char *kind = cn_model_info(model, "data.kind"),
               *folder = cn_model_info(model, "data.fit");
    *why = NULL;
    if (folder) { /* folder data: prepared as the folder reader read them */
        cn_fit f = CN_FIT_CROP;
        if (fit == CN_FIT_AUTO && cli_fit(folder, &f))
            fit = f;
        fit = fit == CN_FIT_AUTO ? CN_FIT_CROP : fit;
        *why = fit == CN_FIT_DIGIT  ? "digit (as the model's training pictures were read)"
               : fit == CN_FIT_CROP ? "crop, levels as they are (as the model's training "
                                      "pictures were read)"
                                    : "stretch, levels as they are (as the model's training "
                                      "pictures were read)";
        return fit;
    }
    if (fit != CN_FIT_AUTO || !kind)
        return fit;
    if (strcmp(kind, "digits") == 0)
        return CN_FIT_DIGIT;
    /* Unlike older files' default for a grey network: say so. */
    if (cn_net_input_shape(cn_model_net(model)).c == 1)
        *why = "crop (the model was trained on pictures, not digits)";
    return CN_FIT_CROP;
}

const char *cli_data_kind(const cn_data *d)
{
    /* Digits are a pen's strokes on an empty page: MNIST's images are 19%
     * ink, Fashion-MNIST's 50%, photographs nearly all. */
    if (d->shape.c != 1 || d->n == 0)
        return "pictures";
    size_t sz = d->shape.c * d->shape.h * d->shape.w, n = d->n < 1000 ? d->n : 1000, ink = 0;
    for (size_t i = 0; i < n * sz; i++)
        ink += d->pixels[i] != 0;
    return (double)ink / (double)(n * sz) < 0.3 ? "digits" : "pictures";
}

const char *cli_count(uint64_t v, char *buf, size_t size)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    size_t k = 0;
    for (int i = 0; i < n && k + 2 < size; i++) {
        if (i && (n - i) % 3 == 0)
            buf[k++] = ',';
        buf[k++] = digits[i];
    }
    buf[k] = '\0';
    return buf;
}

const char *cli_augmentation(const cn_train_opts *o, const char *sep, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
#define PART(...)                                                                                  \
    if (n < size)                                                                                  \
        n += (size_t)snprintf(buf + n, size - n, "%s", n ? ", " : sep);                            \
    if (n < size)                                                                                  \
        n += (size_t)snprintf(buf + n, size - n, __VA_ARGS__);
    if (o->shift) {
        PART("shifts of up to %d pixel%s", o->shift, o->shift == 1 ? "" : "s");
    }
    if (o->flip) {
        PART("flips");
    }
    if (o->rotate > 0) {
        PART("rotations of up to %g degrees", o->rotate);
    }
    if (o->scale > 0) {
        PART("scaling by up to %g%%", 100 * o->scale);
    }
    if (o->shear > 0) {
        PART("shears of up to %g degrees", o->shear);
    }
    if (o->erase > 0) {
        PART("erasing in %g%% of the images", 100 * o->erase);
    }
    if (o->elastic > 0) {
        PART("elastic distortion of up to %g pixels", o->elastic);
    }
    if (o->mixup > 0) {
        PART("mixup of %g%% of the images", 100 * o->mixup);
    }
#undef PART
    return buf;
}

const char *cli_recipe_extras(const cn_train_opts *o, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    if (o->label_smoothing > 0 && n < size)
        n += (size_t)snprintf(buf + n, size - n, ", label smoothing %g", o->label_smoothing);
    if (o->ema > 0 && n < size)
        n +=
            (size_t)snprintf(buf + n, size - n, ", moving average of the weights (ema %g)", o->ema);
    return buf;
}

int cli_is_model_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    unsigned char head[9];
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    return n == sizeof head && head[8] == '{';
}

void cli_begin(cli_iter *it, const char *cmd, int argc, char **argv)
{
    *it = (cli_iter){argc, 1, 0, argv, cmd};
}

int cli_next(cli_iter *it, const cli_opt *opts, const char **value)
{
    if (it->i >= it->argc)
        return CLI_END;
    const char *arg = it->argv[it->i++];
    *value = arg;
    if (it->no_more_options || arg[0] != '-' || arg[1] == '\0')
        return CLI_POSITIONAL;
    if (strcmp(arg, "--") == 0) {
        it->no_more_options = 1;
        return cli_next(it, opts, value);
    }
    int is_long = arg[1] == '-';
    const char *name = arg + (is_long ? 2 : 1);
    size_t len = strcspn(name, "=");
    if (!is_long && len != 1)
        len = 1; /* -o FILE or -oFILE */
    for (const cli_opt *o = opts; o->name; o++) {
        if (strlen(o->name) != len || strncmp(o->name, name, len) != 0 || (len == 1) == is_long)
            continue;
        const char *rest = name + len;
        if (!o->has_value) {
            if (*rest) {
                cli_usage(it->cmd, "%.*s takes no value", (int)(rest - arg), arg);
                return CLI_ERROR;
            }
            return o->id;
        }
        if (*rest == '=' || (!is_long && *rest)) {
            *value = rest + (*rest == '=');
            return o->id;
        }
        if (it->i >= it->argc) {
            cli_usage(it->cmd, "%s needs a value", arg);
            return CLI_ERROR;
        }
        *value = it->argv[it->i++];
        return o->id;
    }
    /* The nearest option, by the word as written (up to '='), whatever its
     * dashes: "--epoch" -> "--epochs", "-epochs" -> "--epochs", "--o" -> "-o". */
    size_t wlen = strcspn(name, "=");
    char word[64], hint[96] = "";
    if (wlen < sizeof word) {
        memcpy(word, name, wlen);
        word[wlen] = '\0';
        const char *names[128];
        size_t n = 0;
        for (const cli_opt *o = opts; o->name && n < 128; o++)
            names[n++] = o->name;
        const char *pick = cn_nearest(word, names, n);
        if (pick)
            snprintf(hint, sizeof hint, " (did you mean '%s%s'?)", pick[1] ? "--" : "-", pick);
    }
    cli_usage(it->cmd, "unknown option '%.*s'%s", (int)(name + wlen - arg), arg, hint);
    return CLI_ERROR;
}

const char *cli_models_dir = "";

const char *cli_find_model(const char *path, char *buf, size_t size)
{
    struct stat st;
    if (!cli_models_dir[0] || strchr(path, '/') || stat(path, &st) == 0)
        return path;
    for (int cfg = 0; cfg < 2; cfg++) {
        int n = snprintf(buf, size, "%s/%s%s", cli_models_dir, path, cfg ? ".cfg" : "");
        if (n > 0 && (size_t)n < size && stat(buf, &st) == 0 && S_ISREG(st.st_mode))
            return buf;
    }
    return path;
}

cn_status cli_load_spec(const char *path, cn_spec **spec)
{
    char buf[4096];
    return path ? cn_spec_load(cli_find_model(path, buf, sizeof buf), spec)
                : cn_spec_parse(cn_cli_default_model, CLI_DEFAULT_MODEL_NAME, spec);
}

void cli_totals(const cn_net *net, size_t *params, uint64_t *macs)
{
    *params = 0;
    *macs = 0;
    for (size_t i = 0; i < cn_net_num_layers(net); i++) {
        cn_layer_info li;
        cn_net_layer(net, i, &li);
        *params += li.params;
        *macs += li.macs;
    }
}

/* The device --device chose; the command's one network runs there. */
static cn_device chosen = {"cpu", 0, 0};

int cli_set_device(const char *cmd, const char *v)
{
    long index = 0;
    if (strcmp(v, "cpu") == 0 || strcmp(v, "guard") == 0) {
        chosen = (cn_device){strcmp(v, "cpu") == 0 ? "cpu" : "guard", 0, 0};
        return 0;
    }
    if (strncmp(v, "cuda", 4) == 0 &&
        (v[4] == '\0' || (v[4] == ':' && cli_int(v + 5, 0, 255, &index)))) {
        chosen = (cn_device){"cuda", (int)index, 0};
        return 0;
    }
    return cli_usage(cmd,
                     "--device takes cpu, cuda or cuda:N (N a GPU's number from 0, as 'convnet "
                     "info --devices' lists them), not '%s'",
                     v);
}

cn_device cli_device(long threads)
{
    cn_device d = chosen;
    d.threads = (int)threads;
    return d;
}

int cli_load_model(const char *cmd, const char *path, long threads, cn_model **model)
{
    *model = NULL;
    if (!cli_is_model_file(path) && strstr(path, ".cfg"))
        return cli_usage(cmd,
                         "%s is a model description; %s takes a trained model file "
                         "(convnet train writes one)",
                         path, cmd);
    cn_device dev = cli_device(threads);
    return cn_model_load(path, &dev, model) ? cli_lib_error() : 0;
}

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

int cli_fit(const char *s, cn_fit *fit)
{
    static const char *names[] = {"digit", "crop", "stretch"};
    static const cn_fit fits[] = {CN_FIT_DIGIT, CN_FIT_CROP, CN_FIT_STRETCH};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *fit = fits[i];
            return 1;
        }
    return 0;
}

/* "x.safetensors" -> "x.csv"; other names get ".csv" appended. */
char *cli_log_name(const char *out)
{
    size_t n = strlen(out);
    const char *suffix = ".safetensors";
    size_t s = strlen(suffix);
    if (n > s && strcmp(out + n - s, suffix) == 0)
        n -= s;
    char *p = malloc(n + 5);
    if (p) {
        memcpy(p, out, n);
        strcpy(p + n, ".csv");
    }
    return p;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_write_to(FILE *f, const char *path, const void *data, size_t n)
{
    /* The reason comes from the write that failed: fwrite's, or the last
     * buffer's (fflush), or the file system's at close (a full NFS disk). */
    errno = 0;
    int e = fwrite(data, 1, n, f) == n ? 0 : errno ? errno : EIO;
    if (!e && fflush(f) != 0)
        e = errno ? errno : EIO;
    if (fclose(f) != 0 && !e)
        e = errno ? errno : EIO;
    if (e)
        return cli_error("cannot write %s: %s", path, strerror(e));
    return 0;
}

/* ------------------------------------------------------------ folder data */

void cli_folder_defaults(cli_folder_opts *o)
{
    *o = (cli_folder_opts){CN_FIT_CROP, NULL, 0.1, 0.1, -1, 0};
}

void cli_folder_from_model(const cn_model *model, cli_folder_opts *o)
{
    cli_folder_defaults(o);
    const char *v;
    if ((v = cn_model_info(model, "data.fit")))
        cli_fit(v, &o->fit);
    if ((v = cn_model_info(model, "data.cache")) && *v)
        o->cache = v;
    if ((v = cn_model_info(model, "data.val_split")))
        o->val_split = atof(v);
    if ((v = cn_model_info(model, "data.test_split")))
        o->test_split = atof(v);
    if ((v = cn_model_info(model, "data.val")))
        o->val = atol(v);
    if ((v = cn_model_info(model, "data.skip_unreadable")))
        o->skip_unreadable = atoi(v);
}

int cli_is_folder_data(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return 0;
    size_t n = strlen(path);
    if (S_ISREG(sb.st_mode)) /* a list, or a data cache */
        return (n >= 4 && strcmp(path + n - 4, ".csv") == 0) ||
               (n >= 12 && strcmp(path + n - 12, ".safetensors") == 0);
    static const char *const known[] = {"train-images-idx3-ubyte",
                                        "train-images-idx3-ubyte.gz",
                                        "train-images.idx3-ubyte",
                                        "t10k-images-idx3-ubyte",
                                        "t10k-images-idx3-ubyte.gz",
                                        "data_batch_1.bin",
                                        "test_batch.bin",
                                        NULL};
    char p[4096];
    for (int i = 0; known[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", path, known[i]);
        if (access(p, F_OK) == 0)
            return 0;
    }
    if (!S_ISDIR(sb.st_mode))
        return 0;
    /* Pictures: a sub-folder or a picture in it (an empty directory is
     * neither, and gets the message of the IDX and CIFAR-10 readers). */
    DIR *d = opendir(path);
    struct dirent *e;
    int pictures = 0;
    while (d && !pictures && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        const char *dot = strrchr(e->d_name, '.');
        pictures = (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) ||
                   (dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") ||
                            !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".bmp")));
    }
    if (d)
        closedir(d);
    return pictures;
}

static size_t part_of(double f, size_t n) { return (size_t)(f * (double)n + 0.5); }

cn_status cli_load_folder(const char *path, cn_shape shape, const cli_folder_opts *o, FILE *say,
                          cn_data *all, cli_parts *parts, cn_folder_info *info)
{
    cn_folder_opts fo = {o->fit, o->cache, 0};
    memset(parts, 0, sizeof *parts);
    cn_status st = cn_data_load_folder(path, shape, &fo, all, info);
    if (st)
        return st;
    char a[32], b[32], c[32];
    double mb = (double)all->n * (double)(all->shape.c * all->shape.h * all->shape.w) / 1e6;
    if (say && info->built)
        fprintf(say,
                "cache: %s (%s in %.1f s: %s images decoded, %.0f images/s, %.1f MB; %s files "
                "listed in %.2f s)\n",
                info->cache, info->stale ? "the data changed: built again" : "built",
                info->build_seconds, cli_count(all->n, a, sizeof a),
                info->build_seconds > 0 ? (double)info->files / info->build_seconds : 0.0, mb,
                cli_count(info->files, b, sizeof b), info->scan_seconds);
    else if (say)
        fprintf(say, "cache: %s (up to date: %s images, %.1f MB; %s files checked in %.2f s)\n",
                info->cache, cli_count(all->n, a, sizeof a), mb,
                cli_count(info->files, b, sizeof b), info->scan_seconds);
    if (info->unreadable && !o->skip_unreadable) {
        /* The list is longer than a message: it goes first, on stderr. */
        fprintf(stderr, "convnet: %zu file%s in %s cannot be read as images%s:\n", info->unreadable,
                info->unreadable == 1 ? "" : "s", path,
                info->unreadable > 20 ? " (the first 20)" : "");
        for (const char *p = info->unreadable_list; *p;) {
            size_t len = strcspn(p, "\n");
            fprintf(stderr, "  %.*s\n", (int)len, p);
            p += len + (p[len] == '\n');
        }
        st = cn_fail_at(NULL, 0, CN_ERR_FORMAT,
                        "%zu file%s in %s cannot be read as images (listed above): give "
                        "--skip-unreadable to train without them",
                        info->unreadable, info->unreadable == 1 ? "" : "s", path);
        cn_data_free(all);
        return st;
    }
    if (say && info->unreadable)
        fprintf(say, "skipped %zu unreadable file%s (--skip-unreadable)\n", info->unreadable,
                info->unreadable == 1 ? "" : "s");
    size_t n = all->n;
    if (info->split_folders) {
        size_t t = info->count[0], v = info->count[1];
        parts->first[1] = t;
        parts->count[1] = v;
        parts->first[2] = t + v;
        parts->count[2] = info->count[2];
        parts->count[0] = t;
        if (v == 0) { /* no val/: the last part of train/, as for IDX files */
            v = o->val >= 0 ? (size_t)o->val : part_of(o->val_split, t);
            if (v >= t)
                goto none_left;
            parts->count[0] = t - v;
            parts->first[1] = t - v;
            parts->count[1] = v;
        }
        if (say)
            fprintf(say, "split: %s train, %s val%s, %s test (the train/%s folders of %s)\n",
                    cli_count(parts->count[0], a, sizeof a),
                    cli_count(parts->count[1], b, sizeof b),
                    info->count[1] ? "" : " (the last of train/: no val/ folder)",
                    cli_count(parts->count[2], c, sizeof c),
                    info->count[1] && info->count[2] ? ", val/, test/"
                    : info->count[2]                 ? ", test/"
                    : info->count[1]                 ? ", val/"
                                                     : "",
                    path);
        return CN_OK;
    }
    size_t nt = part_of(o->test_split, n);
    size_t nv = o->val >= 0 ? (size_t)o->val : part_of(o->val_split, n);
    if (nt + nv >= n)
        goto none_left;
    parts->count[2] = nt;
    parts->first[1] = nt;
    parts->count[1] = nv;
    parts->first[0] = nt + nv;
    parts->count[0] = n - nt - nv;
    if (say) {
        char vs[48];
        if (o->val >= 0)
            snprintf(vs, sizeof vs, "--val %ld", o->val);
        else
            snprintf(vs, sizeof vs, "--val-split %g", o->val_split);
        fprintf(say,
                "split: %s train, %s val, %s test (seeded: %s --test-split %g of the %s "
                "pictures of %s; no train/val/test folders)\n",
                cli_count(parts->count[0], a, sizeof a), cli_count(nv, b, sizeof b),
                cli_count(nt, c, sizeof c), vs, o->test_split, cli_count(n, c + 16, 16), path);
    }
    return CN_OK;
none_left:
    cn_data_free(all);
    return cn_fail_at(NULL, 0, CN_ERR_FORMAT,
                      "the validation and test parts leave no training images in %s (%zu "
                      "images): smaller --val-split, --test-split or --val",
                      path, n);
}

cn_status cli_load_data(const cn_model *model, const char *dir, const char *split, cn_data *out)
{
    memset(out, 0, sizeof *out);
    if (!cli_is_folder_data(dir))
        return cn_data_load(dir, split, out);
    cli_folder_opts o;
    cli_folder_from_model(model, &o);
    cn_folder_info info;
    cli_parts parts;
    cn_status st = cli_load_folder(dir, cn_net_input_shape(cn_model_net((cn_model *)model)), &o,
                                   NULL, out, &parts, &info);
    if (st)
        return st;
    int i = strcmp(split, "train") == 0 ? 0 : strcmp(split, "val") == 0 ? 1 : 2;
    if (parts.count[i] == 0) {
        cn_data_free(out);
        return cn_fail_at(NULL, 0, CN_ERR_FORMAT, "%s has no %s images%s", dir, split,
                          i == 2 ? " (a test/ folder beside train/ holds them)" : "");
    }
    /* A part of the mapped set that still owns it: cn_data_free releases
     * the mapping through the store, whatever pixels points at. */
    size_t sz = out->shape.c * out->shape.h * out->shape.w;
    out->pixels += parts.first[i] * sz;
    out->labels += parts.first[i];
    out->n = parts.count[i];
    return CN_OK;
}

const char *cli_class_name(const cn_model *model, size_t k, char *buf, size_t size)
{
    const char *const *names = cn_model_class_names(model);
    if (names)
        return names[k];
    snprintf(buf, size, "%zu", k);
    return buf;
}

int cli_class_index(cn_model *model, const char *opt, const char *arg, int *out)
{
    long num;
    if (cli_int(arg, 0, 1000000, &num)) {
        *out = (int)num; /* checked against the model where it is used */
        return 0;
    }
    const char *const *names = cn_model_class_names(model);
    size_t k = cn_net_classes(cn_model_net(model));
    for (size_t i = 0; names && i < k; i++)
        if (!strcasecmp(names[i], arg)) {
            *out = (int)i;
            return 0;
        }
    if (!names)
        return cli_error("%s takes a class number from 0 to %zu (this model's classes have no "
                         "names), not '%s'",
                         opt, k - 1, arg);
    fprintf(stderr, "convnet: error: %s: the model has no class '%s'; its classes are:", opt, arg);
    for (size_t i = 0; i < k; i++)
        fprintf(stderr, "%s %s", i ? "," : "", names[i]);
    fputc('\n', stderr);
    return 1;
}

cn_status cli_prepare(const cn_model *model, const cn_image *img, cn_shape s, cn_fit fit,
                      uint8_t *pixels)
{
    if (cn_model_info(model, "data.fit"))
        return cn_image_to_planes(img, s, fit, pixels);
    return cn_image_to_input(img, s, fit, pixels);
}

void cli_html(FILE *f, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
}

void cli_base64(FILE *f, const uint8_t *d, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)d[i + 1] << 8;
        if (i + 2 < n)
            v |= d[i + 2];
        fputc(abc[v >> 18 & 63], f);
        fputc(abc[v >> 12 & 63], f);
        fputc(i + 1 < n ? abc[v >> 6 & 63] : '=', f);
        fputc(i + 2 < n ? abc[v & 63] : '=', f);
    }
}
