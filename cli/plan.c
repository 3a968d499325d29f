/* plan.c - convnet plan: the memory and time a training run will take,
 * worked out before it starts (the library's planner, cn_plan_training). */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static const char help[] =
    "usage: convnet plan [MODEL.cfg|MODEL_FILE] [options]\n"
    "\n"
    "Says what training a network will take before anything is trained: the\n"
    "memory of each layer, the peak memory of training and of evaluation, and the\n"
    "time of a training step and of an epoch; with --memory, the largest batch that\n"
    "fits.  The memory comes from the same list of blocks the network allocates,\n"
    "built as 'convnet train' builds it (for passes of the training batch, which\n"
    "evaluation's take too), with what training holds around it: the\n"
    "optimizer's state, the training file in memory, the loop's arrays, a\n"
    "checkpoint's copy, and this program's own size.  The time comes from a\n"
    "roofline of this machine (its GEMM and memory speeds, measured in about 0.1 s;\n"
    "a bound rather than a forecast: real layers reach a fraction of the GEMM's\n"
    "speed) or, with --calibrate, from about 2 s of this network's own training\n"
    "steps and evaluation passes on the data (a forecast).  Nothing is\n"
    "trained or written (a folder of pictures is decoded into its cache, as train\n"
    "does the first time).  With no model, the default network.\n"
    "\n"
    "  --batch N       training batch (default: the recipe's)\n"
    "  --optimizer O   sgd, adam or adamw (default: the recipe's): Adam keeps two\n"
    "                  values per parameter, SGD one\n"
    "  --threads N     worker threads (default: one per core)\n"
    "  --device D      cpu (default), or cuda / cuda:N, a GPU: its memory is planned\n"
    "                  from the same layout even on a machine without one (cuDNN's\n"
    "                  workspace, chosen on the GPU, is then left out and said so);\n"
    "                  its time only with --calibrate where the GPU is\n"
    "  --data DIR      the data to train on (default: $CONVNET_DATA or data/mnist;\n"
    "                  a model file's own): its images are counted.  Without data\n"
    "                  of the network's shape, MNIST's sizes are assumed for 28x28\n"
    "                  images (60 000 training, 10 000 test) and CIFAR-10's for\n"
    "                  32x32 (50 000, 10 000), and said so; for other shapes the\n"
    "                  data and an epoch are left out\n"
    "  --val N         images of the training file kept for validation (default\n"
    "                  10000; a model file's own), as train's --val\n"
    "  --limit N       train on the first N of the others only, as train's --limit\n"
    "                  (a model file's own by default)\n"
    "  --memory SIZE   also the largest batch whose training fits in SIZE: a\n"
    "                  number of bytes with K, M, G or T after it (powers of 1024:\n"
    "                  512M, 2G, 1.5G); on a GPU, its memory\n"
    "  --calibrate     time this network's steps for about --seconds instead of the\n"
    "                  roofline, on the first training images (random ones when\n"
    "                  the sizes are assumed); the model is built: it takes its\n"
    "                  memory meanwhile\n"
    "  --seconds S     how long --calibrate runs (default 2; at least 3 steps)\n"
    "  --json          one JSON object instead of the tables: {\"model\", \"device\",\n"
    "                  \"threads\", \"batch\", \"net_batch\", \"train_images\",\n"
    "                  \"val_images\", \"test_images\", \"data\", \"steps\", \"layers\":\n"
    "                  [{\"name\", \"kind\", \"output\", \"params\", \"param_bytes\",\n"
    "                  \"act_bytes\", \"scratch_bytes\", \"flops_fwd\", \"flops_bwd\",\n"
    "                  \"fwd_s\", \"bwd_s\"}], \"memory\": {...}, \"train_peak\",\n"
    "                  \"infer_peak\", \"device_train_peak\", \"device_infer_peak\",\n"
    "                  \"exact\", \"timing\", \"step_s\", \"eval_s\", \"train_s\",\n"
    "                  \"val_s\", \"epoch_s\", \"gflops\", \"gbytes\", \"max_batch\"}; sizes\n"
    "                  in bytes, times in seconds (null when untimed)\n";

/* SIZE of --memory: a number (a fraction too) and K, M, G or T (powers of
 * 1024; a B or iB may follow: 2GiB); 0, or -1 for anything else. */
static int parse_size(const char *s, size_t *out)
{
    /* digits, and a fraction: nothing else strtod would take (1e3, 0x10) */
    const char *end = s;
    while (isdigit((unsigned char)*end))
        end++;
    if (end == s)
        return -1;
    if (*end == '.') {
        const char *frac = ++end;
        while (isdigit((unsigned char)*end))
            end++;
        if (end == frac)
            return -1;
    }
    double v = strtod(s, NULL);
    int shift = 0;
    switch (toupper((unsigned char)*end)) {
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    default: break;
    }
    if (shift) {
        end++;
        if (end[0] == 'i' && end[1] == 'B')
            end += 2;
        else if (end[0] == 'B')
            end++;
    } else if (*end == 'B') {
        end++;
    }
    double bytes = ldexp(v, shift);
    if (*end != '\0' || !(bytes >= 1.0) || bytes >= 0x1p63)
        return -1;
    *out = (size_t)bytes;
    return 0;
}

/* bytes in MiB (KiB below 1 MiB, GiB from 10 GiB on), into buf. */
static const char *mib(size_t bytes, char *buf, size_t size)
{
    double m = (double)bytes / (1 << 20);
    if (m < 1)
        snprintf(buf, size, "%.1f KiB", m * 1024);
    else if (m >= 10240)
        snprintf(buf, size, "%.2f GiB", m / 1024);
    else
        snprintf(buf, size, "%.1f MiB", m);
    return buf;
}

/* seconds in words: "712 ms", "6.1 s", "2.4 min", "1.9 h". */
static const char *span(double s, char *buf, size_t size)
{
    if (s < 0)
        snprintf(buf, size, "-");
    else if (s < 1)
        snprintf(buf, size, "%.3g ms", s * 1e3);
    else if (s < 120)
        snprintf(buf, size, "%.3g s", s);
    else if (s < 7200)
        snprintf(buf, size, "%.3g min", s / 60);
    else
        snprintf(buf, size, "%.3g h", s / 3600);
    return buf;
}

/* The images an epoch trains on, validates and a test reads, and those of
 * the training file in memory; where they were counted, or that they are
 * assumed. */
typedef struct counts {
    size_t train, val, test, data;
    char source[4200];
    cn_data all;        /* the training file, when it was read (owned) */
    size_t train_first; /* where its training images start */
    cn_data train_data; /* its training images (a slice of all), for --calibrate */
} counts;

/* The training file's images in dir for a network of input s: 0, or -1
 * when dir holds no data of that shape (its reason in cn_last_error). */
static int count_dir(const char *dir, const cn_model *model, cn_shape s, long val, long limit,
                     counts *c)
{
    cn_data all = {0}, test = {0};
    if (cli_is_folder_data(dir)) {
        cli_folder_opts o;
        if (model)
            cli_folder_from_model(model, &o);
        else
            cli_folder_defaults(&o);
        cli_parts parts;
        cn_folder_info info;
        if (cli_load_folder(dir, s, &o, NULL, &all, &parts, &info))
            return -1;
        c->train = parts.count[0];
        c->train_first = parts.first[0];
        c->val = parts.count[1];
        c->test = parts.count[2];
        /* a mapped cache: what an epoch reads of it */
        c->data = c->train + c->val;
    } else {
        if (cn_data_load(dir, "train", &all))
            return -1;
        if (all.shape.c != s.c || all.shape.h != s.h || all.shape.w != s.w) {
            cn_fail_at(NULL, 0, CN_ERR_SHAPE,
                       "%s holds %zux%zux%zu images, the network takes %zux%zux%zu", dir,
                       all.shape.c, all.shape.h, all.shape.w, s.c, s.h, s.w);
            cn_data_free(&all);
            return -1;
        }
        if ((size_t)val >= all.n) {
            cn_fail_at(NULL, 0, CN_ERR_ARG, "--val %ld leaves no training images (%s has %zu)", val,
                       dir, all.n);
            cn_data_free(&all);
            return -2;
        }
        c->data = all.n;
        c->val = (size_t)val;
        c->train = all.n - (size_t)val;
        c->test = cn_data_load(dir, "test", &test) == CN_OK ? test.n : 0;
    }
    if (limit > 0 && (size_t)limit < c->train)
        c->train = (size_t)limit;
    snprintf(c->source, sizeof c->source, "%s", dir);
    c->all = all;
    c->train_data = cn_data_slice(&c->all, c->train_first, c->train);
    cn_data_free(&test);
    return 0;
}

/* The images to plan for: --data's, else the model's own or the default
 * directory's when it holds data of the network's shape, else MNIST's or
 * CIFAR-10's sizes by the shape.  0, or the exit status after a message. */
static int count_images(const char *data, const cn_model *model, cn_shape s, long val, long limit,
                        counts *c)
{
    int own;
    const char *dir = model ? cli_model_data_dir(model, data, &own) : cli_data_dir(data);
    struct stat sb;
    if (data || stat(dir, &sb) == 0) {
        int r = count_dir(dir, model, s, val, limit, c);
        if (r == 0)
            return 0;
        if (data || r == -2)
            return cli_lib_error();
    }
    size_t file;
    if (s.c == 1 && s.h == 28 && s.w == 28)
        file = 60000, snprintf(c->source, sizeof c->source, "assumed: MNIST's sizes");
    else if (s.c == 3 && s.h == 32 && s.w == 32)
        file = 50000, snprintf(c->source, sizeof c->source, "assumed: CIFAR-10's sizes");
    else { /* the network's memory still; no data, no epoch */
        snprintf(c->source, sizeof c->source,
                 "none of %zux%zux%zu images in %s: the data and an epoch are not counted (give "
                 "--data DIR)",
                 s.c, s.h, s.w, dir);
        c->train = c->val = c->test = c->data = 0;
        return 0;
    }
    if ((size_t)val >= file)
        return cli_error("--val %ld leaves no training images (of the %zu assumed)", val, file);
    c->data = file;
    c->val = (size_t)val;
    c->train = file - (size_t)val;
    if (limit > 0 && (size_t)limit < c->train)
        c->train = (size_t)limit;
    c->test = 10000;
    return 0;
}

/* "the CPU, 2 threads (avx512 kernels)" or "cuda:0". */
static const char *where(const cn_plan *p, char *buf, size_t size)
{
    if (p->host_memory)
        snprintf(buf, size, "the CPU, %d thread%s", p->device.threads,
                 p->device.threads == 1 ? "" : "s");
    else
        snprintf(buf, size, "%s:%d", p->device.backend, p->device.index);
    return buf;
}

static const char *timing_name(cn_plan_timing t)
{
    return t == CN_PLAN_ROOFLINE ? "roofline" : t == CN_PLAN_CALIBRATED ? "calibrated" : "none";
}

/* A time for JSON: seconds, or null when untimed. */
static void json_time(const char *key, double s, int comma)
{
    if (s < 0)
        printf("\"%s\": null%s", key, comma ? ", " : "");
    else
        printf("\"%s\": %.6g%s", key, s, comma ? ", " : "");
}

static void print_json(const char *model, const cn_plan *p, const counts *c, size_t memory,
                       size_t max_batch)
{
    printf("{\"model\": ");
    cli_json_string(stdout, model);
    printf(", \"device\": \"%s\", \"index\": %d, \"threads\": %d, \"batch\": %zu, "
           "\"net_batch\": %zu, \"optimizer\": \"%s\", ",
           p->device.backend, p->device.index, p->device.threads, p->batch, p->net_batch,
           cn_optimizer_name(p->recipe.optimizer));
    printf("\"train_images\": %zu, \"val_images\": %zu, \"test_images\": %zu, "
           "\"data_images\": %zu, \"data\": ",
           c->train, c->val, c->test, c->data);
    cli_json_string(stdout, c->source);
    printf(", \"steps\": %zu, \"params\": %zu, \"layers\": [", p->steps, p->params);
    for (size_t i = 0; i < p->n_layers; i++) {
        const cn_plan_layer *r = &p->layers[i];
        printf("%s{\"name\": ", i ? ", " : "");
        cli_json_string(stdout, r->name);
        printf(", \"kind\": \"%s\", \"output\": [%zu, %zu, %zu], \"params\": %zu, "
               "\"param_bytes\": %zu, \"act_bytes\": %zu, \"scratch_bytes\": %zu, "
               "\"flops_fwd\": %.0f, \"flops_bwd\": %.0f, ",
               r->kind, r->out.c, r->out.h, r->out.w, r->params, r->param_bytes, r->act_bytes,
               r->scratch_bytes, r->flops_fwd, r->flops_bwd);
        json_time("fwd_s", r->fwd_s, 1);
        json_time("bwd_s", r->bwd_s, 0);
        printf("}");
    }
    printf("], \"memory\": {\"weights\": %zu, \"gradients\": %zu, \"optimizer\": %zu, "
           "\"activations\": %zu, \"scratch\": %zu, \"io\": %zu, \"backend\": %zu, "
           "\"model\": %zu, \"host_arrays\": %zu, \"data\": %zu, \"loop\": %zu, "
           "\"transient\": %zu, \"baseline\": %zu, \"device_data\": %zu}, ",
           p->weights, p->gradients, p->optimizer, p->activations, p->scratch, p->io, p->backend,
           p->model, p->host_arrays, p->data, p->loop, p->transient, p->baseline, p->device_data);
    printf("\"train_peak\": %zu, \"infer_peak\": %zu, \"device_train_peak\": %zu, "
           "\"device_infer_peak\": %zu, \"exact\": %s, \"timing\": \"%s\", ",
           p->train_peak, p->infer_peak, p->device_train_peak, p->device_infer_peak,
           p->exact ? "true" : "false", timing_name(p->timing));
    json_time("step_s", p->step_s, 1);
    json_time("eval_s", p->eval_s, 1);
    json_time("train_s", p->train_s, 1);
    json_time("val_s", p->val_s, 1);
    json_time("epoch_s", p->epoch_s, 1);
    printf("\"flops_step\": %.0f, \"gflops\": %.4g, \"gbytes\": %.4g, \"max_batch\": ",
           p->flops_step, p->gflops, p->gbytes);
    if (memory)
        printf("{\"memory\": %zu, \"batch\": %zu}}\n", memory, max_batch);
    else
        printf("null}\n");
}

static void print_layers(const cn_plan *p)
{
    int timed = p->timing != CN_PLAN_UNTIMED;
    printf("\nlayer        kind       output         params  param MiB  activ. MiB  scratch MiB"
           "  GFLOP/step%s\n",
           timed ? "   fwd ms   bwd ms" : "");
    for (size_t i = 0; i < p->n_layers; i++) {
        const cn_plan_layer *r = &p->layers[i];
        char shape[40], pc[32], w[16], a[16], s[16];
        snprintf(shape, sizeof shape, "%zux%zux%zu", r->out.c, r->out.h, r->out.w);
        snprintf(w, sizeof w, "%.2f", (double)r->param_bytes / (1 << 20));
        snprintf(a, sizeof a, "%.2f", (double)r->act_bytes / (1 << 20));
        snprintf(s, sizeof s, "%.2f", (double)r->scratch_bytes / (1 << 20));
        printf("%-12s %-10s %-12s %8s %10s %11s %12s %11.4f", r->name, r->kind, shape,
               cli_count(r->params, pc, sizeof pc), w, a, s, (r->flops_fwd + r->flops_bwd) / 1e9);
        if (timed)
            printf(" %8.3f %8.3f", r->fwd_s * 1e3, r->bwd_s * 1e3);
        printf("\n");
    }
    printf("(param: the parameters with their gradients and optimizer state; activ.: the "
           "output for %zu images\n(none when the layer works in place, or when backward makes "
           "it again instead of keeping it)\nand what it keeps for backward; a relu computed "
           "inside the convolution before it takes no\ntime of its own)\n",
           p->net_batch);
}

static void print_memory(const cn_plan *p, const counts *c)
{
    char b[32], cnt[32];
    const char *dev = p->host_memory ? "" : " (device)";
    printf("\nmemory\n");
    printf("  weights and buffers    %12s%s\n", mib(p->weights, b, sizeof b), dev);
    printf("  gradients              %12s%s\n", mib(p->gradients, b, sizeof b), dev);
    printf("  optimizer state        %12s%s  (%s%s)\n", mib(p->optimizer, b, sizeof b), dev,
           cn_optimizer_name(p->recipe.optimizer),
           p->recipe.ema > 0 ? ", and the weights' moving average" : "");
    printf("  activations            %12s%s  (%zu images; backward's buffers too)\n",
           mib(p->activations, b, sizeof b), dev, p->net_batch);
    printf("  scratch                %12s%s\n", mib(p->scratch, b, sizeof b), dev);
    printf("  input and results      %12s%s\n", mib(p->io + p->host_arrays, b, sizeof b), dev);
    printf("  backend's own          %12s%s\n", mib(p->backend, b, sizeof b), dev);
    printf("  the model              %12s%s\n", mib(p->model, b, sizeof b), dev);
    printf("  training file          %12s  (%s images)\n", mib(p->data, b, sizeof b),
           cli_count(c->data, cnt, sizeof cnt));
    printf("  training loop          %12s\n", mib(p->loop, b, sizeof b));
    printf("  end of an epoch        %12s  (the larger of a checkpoint's copy and "
           "validation's answers)\n",
           mib(p->transient, b, sizeof b));
    printf("  this program           %12s\n", mib(p->baseline, b, sizeof b));
    if (!p->host_memory) {
        printf("  training set on the device %8s\n", mib(p->device_data, b, sizeof b));
        printf("peak of training:   %s of the device's memory, %s of the host's (CUDA's own "
               "libraries not counted)\n",
               mib(p->device_train_peak, b, sizeof b), mib(p->train_peak, cnt, sizeof cnt));
        printf("peak of evaluation: %s of the device's memory (convnet eval of %s test images)\n",
               mib(p->device_infer_peak, b, sizeof b), cli_count(c->test, cnt, sizeof cnt));
        if (!p->exact)
            printf("(cuDNN's workspace is not included: cuDNN chooses it on the GPU, which is "
                   "not here)\n");
    } else {
        printf("peak of training:   %s\n", mib(p->train_peak, b, sizeof b));
        printf("peak of evaluation: %s (convnet eval of %s test images)\n",
               mib(p->infer_peak, b, sizeof b), cli_count(c->test, cnt, sizeof cnt));
    }
}

static void print_time(const cn_plan *p, const char *why_untimed)
{
    char a[32], b[32], c[32], d[32];
    if (p->timing == CN_PLAN_UNTIMED) {
        printf("\ntime: not predicted: %s\n", why_untimed);
        return;
    }
    if (p->timing == CN_PLAN_ROOFLINE)
        printf("\ntime (roofline: this machine's GEMM at %.0f GFLOP/s and memory at %.1f GB/s; "
               "a bound: real layers are slower, --calibrate measures them)\n",
               p->gflops, p->gbytes);
    else
        printf("\ntime (calibrated: this network's steps timed on this machine)\n");
    printf("  a step          %s  (%zu images: %.0f images/s)\n", span(p->step_s, a, sizeof a),
           p->batch, (double)p->batch / p->step_s);
    if (p->steps == 0) {
        printf("  an epoch        not counted: no data\n");
        return;
    }
    printf("  an epoch        %s: %zu steps %s, validation %s\n", span(p->epoch_s, a, sizeof a),
           p->steps, span(p->train_s, b, sizeof b), span(p->val_s, c, sizeof c));
    if (p->recipe.epochs > 1)
        printf("  %d epochs       %s\n", p->recipe.epochs,
               span(p->epoch_s * p->recipe.epochs, d, sizeof d));
}

/* This program's resident size now, as train's is when it starts: the
 * process's baseline.  /proc's count of resident pages; elsewhere the peak
 * (which counts what the parent held when it started this process: the
 * peak of a process survives exec). */
static size_t resident_now(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages_all, pages_res;
    long page = sysconf(_SC_PAGESIZE);
    int ok = f && fscanf(f, "%lu %lu", &pages_all, &pages_res) == 2 && page > 0;
    if (f)
        fclose(f);
    if (ok)
        return (size_t)pages_res * (size_t)page;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss * 1024;
}

int cmd_plan(int argc, char **argv)
{
    size_t baseline = resident_now();
    enum {
        O_BATCH = 1,
        O_OPTIMIZER,
        O_THREADS,
        O_DEVICE,
        O_DATA,
        O_VAL,
        O_LIMIT,
        O_MEMORY,
        O_CALIBRATE,
        O_SECONDS,
        O_JSON,
        O_HELP
    };
    static const cli_opt opts[] = {
        {"batch", 1, O_BATCH},
        {"optimizer", 1, O_OPTIMIZER},
        {"threads", 1, O_THREADS},
        {"device", 1, O_DEVICE},
        {"data", 1, O_DATA},
        {"val", 1, O_VAL},
        {"limit", 1, O_LIMIT},
        {"memory", 1, O_MEMORY},
        {"calibrate", 0, O_CALIBRATE},
        {"seconds", 1, O_SECONDS},
        {"json", 0, O_JSON},
        {"help", 0, O_HELP},
        {"h", 0, O_HELP},
        {NULL, 0, 0},
    };
    const char *path = NULL, *data = NULL, *v, *batch_text = NULL, *opt_text = NULL;
    long threads = 0, val = 10000, limit = 0;
    int val_given = 0, limit_given = 0;
    double seconds = 2.0;
    size_t memory = 0;
    int calibrate = 0, json = 0, c;
    cli_iter it;
    cli_begin(&it, "plan", argc, argv);
    while ((c = cli_next(&it, opts, &v)) != CLI_END) {
        switch (c) {
        case CLI_ERROR: return EXIT_USAGE;
        case CLI_POSITIONAL:
            if (path)
                return cli_usage("plan", "takes one model, got '%s' and '%s'", path, v);
            path = v;
            break;
        case O_BATCH: batch_text = v; break;
        case O_OPTIMIZER: opt_text = v; break;
        case O_THREADS:
            if (cli_threads("plan", v, &threads))
                return EXIT_USAGE;
            break;
        case O_DEVICE:
            if (cli_set_device("plan", v))
                return EXIT_USAGE;
            break;
        case O_DATA: data = v; break;
        case O_VAL:
            if (!cli_int(v, 0, 100000000, &val))
                return cli_usage("plan", "--val takes a whole number >= 0, not '%s'", v);
            val_given = 1;
            break;
        case O_LIMIT:
            if (!cli_int(v, 1, 100000000, &limit))
                return cli_usage("plan", "--limit takes a whole number >= 1, not '%s'", v);
            limit_given = 1;
            break;
        case O_MEMORY:
            if (parse_size(v, &memory))
                return cli_usage("plan",
                                 "--memory takes a size such as 512M, 2G or 1.5G (K, M, G, T: "
                                 "powers of 1024; a plain number is bytes), not '%s'",
                                 v);
            break;
        case O_CALIBRATE: calibrate = 1; break;
        case O_SECONDS:
            if (!cli_double(v, 0.1, 600, &seconds))
                return cli_usage("plan", "--seconds takes a number from 0.1 to 600, not '%s'", v);
            break;
        case O_JSON: json = 1; break;
        case O_HELP: fputs(help, stdout); return 0;
        }
    }
    /* The recipe options are read as train reads them. */
    cn_train_opts check;
    cn_train_opts_defaults(&check);
    if (batch_text && cn_train_opts_set(&check, "batch", batch_text))
        return cli_usage("plan", "--%s", cn_last_error());
    if (opt_text && cn_train_opts_set(&check, "optimizer", opt_text))
        return cli_usage("plan", "--%s", cn_last_error());

    cn_model *model = NULL;
    cn_spec *spec = NULL;
    cn_train_opts recipe;
    int rc = 0;
    if (path && cli_is_model_file(path)) {
        cn_device one = {"cpu", 0, 1};
        if (cn_model_load(path, &one, &model))
            return cli_lib_error();
        recipe = *cn_model_opts(model);
        /* its data's split, as train --resume takes it */
        const char *note = cn_model_info(model, "data.val");
        long n;
        if (!val_given && note && cli_int(note, 0, 100000000, &n))
            val = n;
        note = cn_model_info(model, "data.limit");
        if (!limit_given && note && cli_int(note, 0, 100000000, &n))
            limit = n;
    } else {
        if (cli_load_spec(path, &spec))
            return cli_lib_error();
        cn_spec_train_opts(spec, &recipe);
    }
    const cn_spec *sp = model ? cn_model_spec(model) : spec;
    if (batch_text)
        recipe.batch = check.batch;
    if (opt_text)
        recipe.optimizer = check.optimizer;
    counts cnt = {0};
    cn_plan *plan = NULL;
    cn_device dev = cli_device(threads);
    cn_shape s = model ? cn_net_input_shape(cn_model_net(model)) : (cn_shape){0, 0, 0};
    if (!model) { /* the input of a description: from its layout */
        cn_plan *probe;
        cn_plan_opts po0 = {&recipe, &dev, 0, 0, 0, 0, 0};
        if (cn_plan_training(sp, &po0, &probe)) {
            rc = cli_lib_error();
            goto done;
        }
        s = probe->input;
        cn_plan_free(probe);
    }
    if ((rc = count_images(data, model, s, val, limit, &cnt)))
        goto done;
    cn_plan_opts po = {&recipe, &dev, cnt.train, cnt.val, cnt.data, cnt.test, baseline};
    if (cn_plan_training(sp, &po, &plan)) {
        rc = cli_lib_error();
        goto done;
    }
    if (cnt.data && cnt.train < plan->batch) {
        rc = cli_error("%zu training images are fewer than one batch of %zu", cnt.train,
                       plan->batch);
        goto done;
    }
    char why[512] = "";
    if (plan->standin) {
        cn_gpu gpus[1];
        int n;
        snprintf(why, sizeof why,
                 "%s:%d is not on this machine (%s): time it where it is, with "
                 "--calibrate",
                 plan->device.backend, plan->device.index,
                 cn_gpu_list(gpus, 1, &n) ? cn_last_error() : "no such GPU");
        if (calibrate) {
            rc = cli_error("--calibrate: %s", why);
            goto done;
        }
    } else if (calibrate ? cn_plan_calibrate(plan, sp, cnt.all.n ? &cnt.train_data : NULL, seconds)
                         : cn_plan_roofline(plan)) {
        rc = cli_lib_error();
        goto done;
    }
    size_t max_batch = 0;
    if (memory && cn_plan_max_batch(sp, &po, memory, &max_batch)) {
        rc = cli_lib_error();
        goto done;
    }
    const char *name = path ? path : CLI_DEFAULT_MODEL_NAME;
    if (json) {
        print_json(name, plan, &cnt, memory, max_batch);
        goto done;
    }
    char w[64], a[32], b[32], pc[32];
    printf("%s: batch %zu on %s, %s; the network built for passes of %zu images (training's and "
           "evaluation's)\n",
           name, plan->batch, where(plan, w, sizeof w), cn_optimizer_name(plan->recipe.optimizer),
           plan->net_batch);
    if (cnt.data)
        printf("data (%s): %s training images an epoch (%zu steps), %s validation, %s test\n",
               cnt.source, cli_count(cnt.train, a, sizeof a), plan->steps,
               cli_count(cnt.val, b, sizeof b), cli_count(cnt.test, pc, sizeof pc));
    else
        printf("data: %s\n", cnt.source);
    print_layers(plan);
    print_memory(plan, &cnt);
    print_time(plan, why);
    if (memory) {
        char m[32], want[32];
        mib(memory, m, sizeof m);
        if (max_batch == 0) {
            printf("\nwithin %s: not even a batch of 1 fits\n", m);
        } else {
            cn_plan *fit;
            cn_train_opts r2 = recipe;
            r2.batch = (int)max_batch;
            cn_plan_opts po2 = po;
            po2.recipe = &r2;
            if (cn_plan_training(sp, &po2, &fit)) {
                rc = cli_lib_error();
                goto done;
            }
            printf("\nwithin %s: batches of up to %zu (training peak %s)\n", m, max_batch,
                   mib(fit->host_memory ? fit->train_peak : fit->device_train_peak, want,
                       sizeof want));
            cn_plan_free(fit);
        }
    }
done:
    cn_data_free(&cnt.all);
    cn_plan_free(plan);
    cn_model_free(model);
    cn_spec_free(spec);
    return rc;
}
