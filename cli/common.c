/* common.c - helpers shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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
    const char *kind = cn_model_info(model, "data.kind");
    *why = NULL;
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

const char *cli_augmentation(int shift, int flip, const char *sep, char *buf, size_t size)
{
    if (!shift && !flip)
        snprintf(buf, size, "%s", "");
    else if (!shift)
        snprintf(buf, size, "%sflips", sep);
    else
        snprintf(buf, size, "%sshifts of up to %d pixel%s%s", sep, shift, shift == 1 ? "" : "s",
                 flip ? ", flips" : "");
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

cn_device cli_device(long threads) { return (cn_device){"cpu", 0, (int)threads}; }

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

const char *cli_class_name(const cn_model *model, size_t k, char *buf, size_t size)
{
    const char *const *names = cn_model_class_names(model);
    if (names)
        return names[k];
    snprintf(buf, size, "%zu", k);
    return buf;
}
