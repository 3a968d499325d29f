/* bench.c - convnet bench: where a training step's time goes, layer by
 * layer, and the throughput of training and inference. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char help[] =
    "usage: convnet bench [MODEL.cfg|MODEL_FILE] [options]\n"
    "\n"
    "Times a network on random data held in memory, or on the images of --input\n"
    "(the default network when none is given).  By default it runs training steps\n"
    "(forward, loss, backward, update) and prints, for each layer, the median\n"
    "forward and backward time, its share of the step and its GFLOP/s, then the\n"
    "update, the step time and images/s.  With --infer it times forward passes as\n"
    "evaluation runs them, layer by layer too.\n"
    "A layer done by the one before it shows 0 ms: a relu after a convolution or a\n"
    "batch normalisation, and with --infer what is folded into a convolution: a\n"
    "batch normalisation right after it, a max pooling after those, and a batch\n"
    "normalisation (with its relu) right after a pooling that follows it.\n"
    "Inference over more images than a chunk (32 to 64, by the layers' sizes)\n"
    "takes them a chunk at a time through every layer, the threads each taking\n"
    "their own chunks; the table's layer times are of chunks on all threads in\n"
    "turn, so its pass time is higher than --json's.\n"
    "\n"
    "  --batch N      images per step (default: the recipe's batch)\n"
    "  --threads N    worker threads (default: one per core)\n"
    "  --device D     where to run: cpu (default), or cuda / cuda:N, a GPU (a\n"
    "                 build with make CUDA=1; convnet info --devices lists them)\n"
    "  --steps N      timed steps (the table's default: 20, after 3 untimed)\n"
    "  --seconds S    time steps for S seconds (the default of --json: 2, after a\n"
    "                 warm-up); with --steps too, whichever comes first\n"
    "  --infer        time inference (forward passes only) instead of training\n"
    "  --json         no table: one JSON object, {\"mode\", \"batch\", \"threads\",\n"
    "                 \"isa\", \"images_per_s\", \"gflops\", \"max_rss_mb\", \"steps\",\n"
    "                 \"seconds\", \"device_peak_mb\"} (the timed steps and their\n"
    "                 time; the most GPU memory held, 0 on the CPU), as bench/run.py\n"
    "                 reads it; with --infer also \"latency_ms_p50\" and\n"
    "                 \"latency_ms_p99\": the median and 99th percentile of the time\n"
    "                 of one forward call, each timed pass timed alone (with\n"
    "                 --batch 1: the latency of one image)\n"
    "  --latency N    with --infer --json: time at least N passes (going on past\n"
    "                 --steps or --seconds until there are N), so that the\n"
    "                 percentiles rest on N calls; e.g. --batch 1 --latency 10000\n"
    "  --input FILE   the inputs instead of random data: float32 values (this\n"
    "                 machine's byte order, no header), image after image as the\n"
    "                 network's input takes them (C x H x W, normalised); each\n"
    "                 step takes the next batch of them, from the first again\n"
    "                 when too few are left.  The time of a one-image pass\n"
    "                 depends on its values (a fully connected layer skips the\n"
    "                 weights of inputs that are 0): time a trained model on real\n"
    "                 images for the time it will take in use.  bench/torch_onnx.py\n"
    "                 --inputs writes such a file from a data set's test images\n";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of column j of a steps x cols table. */
static double median(const double *t, size_t steps, size_t cols, size_t j, double *tmp)
{
    for (size_t s = 0; s < steps; s++)
        tmp[s] = t[s * cols + j];
    qsort(tmp, steps, sizeof *tmp, cmp_double);
    return steps % 2 ? tmp[steps / 2] : 0.5 * (tmp[steps / 2 - 1] + tmp[steps / 2]);
}

typedef struct bench {
    cn_model *model;
    size_t batch;
    int infer;
    /* The inputs: count images of in floats each; step after step takes the
     * next batch of them, from the first again when too few are left. */
    float *x;
    size_t in, count, next;
    int32_t *labels;
    /* How long to measure: steps (0: no limit) and seconds (0: no limit),
     * whichever ends first; at least one is set. */
    long steps;
    double seconds;
    long min_steps; /* --latency: at least this many timed steps (0: no minimum) */
} bench;

/* One step, training or inference; with times (cn_net_num_layers() + 1
 * entries for forward and for backward), layer by layer: the update's time
 * in forward[layers], and no backward for inference. */
static cn_status run_step(bench *b, double *forward, double *backward)
{
    cn_net *net = cn_model_net(b->model);
    size_t nl = cn_net_num_layers(net);
    if (b->next + b->batch > b->count)
        b->next = 0;
    const float *x = b->x + b->next * b->in;
    b->next += b->batch;
    if (b->infer && forward) {
        forward[nl] = 0.0;
        return cn_net_profile_forward(net, x, b->batch, 0, forward);
    }
    if (b->infer)
        return cn_net_forward(net, x, b->batch, 0);
    if (forward)
        return cn_model_profile(b->model, x, b->labels, b->batch, forward, backward, &forward[nl]);
    return cn_model_step(b->model, x, b->labels, b->batch, 1e-4, NULL);
}

/* Whether measuring is over after done steps in elapsed seconds: --steps
 * reached, or --seconds spent (and at least 3 steps when only --seconds
 * counts); never before --latency's minimum. */
static int enough(const bench *b, size_t done, double elapsed)
{
    if (done < (size_t)b->min_steps)
        return 0;
    if (b->steps && done >= (size_t)b->steps)
        return 1;
    return b->seconds > 0 && elapsed >= b->seconds && done >= (b->steps ? 1u : 3u);
}

/* Untimed steps first: 3, or a quarter of --seconds (at most 0.5 s) when
 * measuring for a time. */
static cn_status warm_up(bench *b, double *forward, double *backward)
{
    double until = cli_now() + (b->seconds / 4 < 0.5 ? b->seconds / 4 : 0.5);
    for (int i = 0; b->seconds > 0 ? i < 1 || cli_now() < until : i < 3; i++) {
        cn_status st = run_step(b, forward, backward);
        if (st)
            return st;
    }
    return CN_OK;
}

/* Steps until enough(): how many, in how long, and with lat (not NULL)
 * the time of each step, one by one, in a malloc'ed array of *steps_done
 * entries that the caller frees. */
static int throughput(bench *b, size_t *steps_done, double *seconds, double **lat)
{
    if (warm_up(b, NULL, NULL))
        return cli_lib_error();
    size_t steps = 0, cap = 0;
    double *t = NULL;
    double start = cli_now(), prev = start, now, elapsed;
    do {
        if (run_step(b, NULL, NULL)) {
            free(t);
            return cli_lib_error();
        }
        now = cli_now();
        if (lat) {
            if (steps == cap) {
                cap = cap ? 2 * cap : 1024;
                double *more = realloc(t, cap * sizeof *t);
                if (!more) {
                    free(t);
                    return cli_error("out of memory");
                }
                t = more;
            }
            t[steps] = now - prev;
        }
        prev = now;
        steps++;
        elapsed = now - start;
    } while (!enough(b, steps, elapsed));
    *steps_done = steps;
    *seconds = elapsed;
    if (lat)
        *lat = t;
    return 0;
}

/* The inputs of --input: a file of float32 values (the machine's byte
 * order), images of in values one after the other; their count in *count,
 * at least batch. */
static int read_inputs(const char *path, size_t in, size_t batch, float **x, size_t *count)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cli_error("--input %s: %s", path, strerror(errno));
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    rewind(f);
    size_t image = in * sizeof(float);
    if (size <= 0 || (size_t)size % image) {
        fclose(f);
        return cli_error("--input %s: %ld bytes are not a whole number of images of the "
                         "network's input (%zu float32 values, %zu bytes each)",
                         path, size, in, image);
    }
    *count = (size_t)size / image;
    if (*count < batch) {
        fclose(f);
        return cli_error("--input %s holds %zu image%s, fewer than the batch (%zu)", path, *count,
                         *count == 1 ? "" : "s", batch);
    }
    *x = malloc((size_t)size);
    if (!*x) {
        fclose(f);
        return cli_error("out of memory");
    }
    size_t got = fread(*x, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size)
        return cli_error("--input %s: could not read it", path);
    /* Read once before timing: the first read of each page that fread
     * filled took about 5 us (a VM on the AMD EPYC), and the passes over
     * the first round of images were timed 8 us slower on fashion-best. */
    volatile float sink = 0.0f;
    for (size_t i = 0; i < (size_t)size / sizeof(float); i += 1024)
        sink += (*x)[i];
    (void)sink;
    return 0;
}

/* The pct-th percentile (1 to 100) of n > 0 values, sorted in place: the
 * nearest-rank one, the smallest value with at least pct% of the values at
 * or below it (bench/ort_bench.js takes the same), except that the median of
 * an even count is the mean of the middle two. */
static double percentile(double *v, size_t n, unsigned pct)
{
    qsort(v, n, sizeof *v, cmp_double);
    if (pct == 50 && n % 2 == 0)
        return 0.5 * (v[n / 2 - 1] + v[n / 2]);
    size_t rank = (pct * n + 99) / 100;
    return v[(rank ? rank : 1) - 1];
}

/* The times of each step, a row of cols forward and cols backward times per
 * step, grown as steps come. */
typedef struct times {
    double *f, *bw;
    size_t rows, cap, cols;
} times;

static int add_row(times *t)
{
    if (t->rows == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        double *f = realloc(t->f, cap * t->cols * sizeof *f);
        if (f)
            t->f = f;
        double *bw = realloc(t->bw, cap * t->cols * sizeof *bw);
        if (bw)
            t->bw = bw;
        if (!f || !bw)
            return -1;
        t->cap = cap;
    }
    t->rows++;
    return 0;
}

static int print_table(bench *b, const char *name)
{
    cn_net *net = cn_model_net(b->model);
    size_t nl = cn_net_num_layers(net);
    times t = {NULL, NULL, 0, 0, nl + 1};
    double *tmp = NULL, *fmed = calloc(2 * nl + 1, sizeof(double));
    double *fw = calloc(2 * (nl + 1), sizeof(double));
    int rc = 0;
    if (!fmed || !fw) {
        rc = cli_error("out of memory");
        goto done;
    }
    double *bmed = fmed + nl, *bw = fw + nl + 1;
    if (warm_up(b, fw, bw)) {
        rc = cli_lib_error();
        goto done;
    }
    double start = cli_now();
    do {
        if (add_row(&t)) {
            rc = cli_error("out of memory");
            goto done;
        }
        double *f = t.f + (t.rows - 1) * t.cols, *bk = t.bw + (t.rows - 1) * t.cols;
        memset(bk, 0, t.cols * sizeof *bk);
        if (run_step(b, f, bk)) {
            rc = cli_lib_error();
            goto done;
        }
    } while (!enough(b, t.rows, cli_now() - start));
    size_t steps = t.rows;
    if (!(tmp = calloc(steps, sizeof(double)))) {
        rc = cli_error("out of memory");
        goto done;
    }
    net = cn_model_net(b->model);
    printf("%s: batch %zu, %d thread%s, %s kernels; %smedian of %zu %s\n\n", name, b->batch,
           cn_net_threads(net), cn_net_threads(net) == 1 ? "" : "s", cn_net_isa(net),
           b->infer ? "inference, " : "", steps,
           b->infer ? (steps == 1 ? "pass" : "passes") : (steps == 1 ? "step" : "steps"));
    if (b->infer)
        printf("%-12s %-9s %11s %7s %9s\n", "layer", "kind", "forward ms", "share", "GFLOP/s");
    else
        printf("%-12s %-9s %11s %11s %7s %9s\n", "layer", "kind", "forward ms", "backward ms",
               "share", "GFLOP/s");
    /* Medians per layer (forward, backward) and of the update, then the table. */
    double upd = b->infer ? 0.0 : median(t.f, steps, t.cols, nl, tmp), total = upd;
    for (size_t i = 0; i < nl; i++) {
        fmed[i] = median(t.f, steps, t.cols, i, tmp);
        bmed[i] = median(t.bw, steps, t.cols, i, tmp);
        total += fmed[i] + bmed[i];
    }
    size_t params;
    uint64_t macs;
    cli_totals(net, &params, &macs);
    /* Floating-point operations per multiply-add of the forward pass: 2 for
     * the pass alone, 6 for a training step (the backward pass twice it). */
    double flops = b->infer ? 2.0 : 6.0;
    for (size_t i = 0; i < nl; i++) {
        cn_layer_info li;
        cn_net_layer(net, i, &li);
        double fm = fmed[i], bm = bmed[i];
        char gf[16] = "";
        if (li.macs && fm + bm > 0)
            snprintf(gf, sizeof gf, "%.1f",
                     flops * (double)li.macs * (double)b->batch / (fm + bm) / 1e9);
        if (b->infer)
            printf("%-12s %-9s %11.3f %6.1f%% %9s\n", li.name, li.kind, 1e3 * fm, 100 * fm / total,
                   gf);
        else
            printf("%-12s %-9s %11.3f %11.3f %6.1f%% %9s\n", li.name, li.kind, 1e3 * fm, 1e3 * bm,
                   100 * (fm + bm) / total, gf);
    }
    if (!b->infer)
        printf("%-12s %-9s %11.3f %11s %6.1f%%\n", "update",
               cn_optimizer_name(cn_model_opts(b->model)->optimizer), 1e3 * upd, "",
               100 * upd / total);
    printf("\n%s %.3f ms: %.0f images/s, %.1f GFLOP/s (%.0f x %.2f M multiply-adds per image)\n",
           b->infer ? "pass" : "step", 1e3 * total, (double)b->batch / total,
           flops * (double)macs * (double)b->batch / total / 1e9, flops, (double)macs / 1e6);
    if (cn_net_device_peak(net))
        printf("peak device memory: %.1f MiB\n", (double)cn_net_device_peak(net) / (1 << 20));
done:
    free(t.f);
    free(t.bw);
    free(tmp);
    free(fmed);
    free(fw);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    enum {
        O_BATCH = 1,
        O_THREADS,
        O_STEPS,
        O_INFER,
        O_JSON,
        O_SECONDS,
        O_DEVICE,
        O_LATENCY,
        O_INPUT,
        O_HELP
    };
    static const cli_opt opts[] = {
        {"batch", 1, O_BATCH},   {"threads", 1, O_THREADS}, {"steps", 1, O_STEPS},
        {"infer", 0, O_INFER},   {"json", 0, O_JSON},       {"seconds", 1, O_SECONDS},
        {"device", 1, O_DEVICE}, {"latency", 1, O_LATENCY}, {"input", 1, O_INPUT},
        {"help", 0, O_HELP},     {"h", 0, O_HELP},          {NULL, 0, 0},
    };
    long batch = 0, threads = 0, steps = 0, latency = 0;
    double seconds = 0;
    int infer = 0, json = 0, c;
    const char *path = NULL, *input = NULL, *v;
    cli_iter it;
    cli_begin(&it, "bench", argc, argv);
    while ((c = cli_next(&it, opts, &v)) != CLI_END) {
        switch (c) {
        case CLI_ERROR: return EXIT_USAGE;
        case CLI_POSITIONAL:
            if (path)
                return cli_usage("bench", "takes one model, got '%s' and '%s'", path, v);
            path = v;
            break;
        case O_BATCH: { /* as the recipe's batch: the same range and words */
            cn_train_opts o;
            cn_train_opts_defaults(&o);
            if (cn_train_opts_set(&o, "batch", v))
                return cli_usage("bench", "--%s", cn_last_error());
            batch = o.batch;
            break;
        }
        case O_THREADS:
            if (cli_threads("bench", v, &threads))
                return EXIT_USAGE;
            break;
        case O_DEVICE:
            if (cli_set_device("bench", v))
                return EXIT_USAGE;
            break;
        case O_STEPS:
            if (!cli_int(v, 1, 100000, &steps))
                return cli_usage("bench", "--steps takes a whole number from 1 to 100000, not '%s'",
                                 v);
            break;
        case O_SECONDS:
            if (!cli_double(v, 0.01, 3600, &seconds))
                return cli_usage("bench", "--seconds takes a number from 0.01 to 3600, not '%s'",
                                 v);
            break;
        case O_LATENCY:
            if (!cli_int(v, 1, 10000000, &latency))
                return cli_usage("bench",
                                 "--latency takes a whole number from 1 to 10000000, not '%s'", v);
            break;
        case O_INPUT: input = v; break;
        case O_INFER: infer = 1; break;
        case O_JSON: json = 1; break;
        case O_HELP: fputs(help, stdout); return 0;
        }
    }
    if (latency && !(infer && json))
        return cli_usage("bench", "--latency times forward calls: it needs --infer and --json");
    /* Neither --steps nor --seconds: the table's 20 steps, --json's 2 s. */
    if (!steps && !seconds) {
        if (json)
            seconds = 2;
        else
            steps = 20;
    }
    bench b = {.infer = infer, .steps = steps, .seconds = seconds, .min_steps = latency};
    cn_device dev = cli_device(threads);
    if (path && cli_is_model_file(path)) {
        if (cn_model_load(path, &dev, &b.model))
            return cli_lib_error();
    } else {
        cn_spec *spec;
        cn_status st = cli_load_spec(path, &spec);
        if (st)
            return cli_lib_error();
        /* For inference the training network it starts with is the
         * smallest (one sample): the forward-only one replaces it below. */
        cn_train_opts o;
        cn_spec_train_opts(spec, &o);
        batch = batch ? batch : (long)o.batch;
        o.batch = infer ? 1 : o.batch;
        st = cn_model_create(spec, &o, &dev, &b.model);
        cn_spec_free(spec);
        if (st)
            return cli_lib_error();
    }
    b.batch = batch ? (size_t)batch : (size_t)cn_model_opts(b.model)->batch;
    int rc = 0;
    /* Inference as a deployed model runs: outputs kept only while read;
     * training as convnet train runs. */
    if (infer ? cn_model_reserve_inference(b.model, b.batch)
              : cn_model_reserve_training(b.model, b.batch)) {
        rc = cli_lib_error();
        goto done;
    }
    cn_net *net = cn_model_net(b.model);
    cn_shape s = cn_net_input_shape(net);
    b.in = s.c * s.h * s.w;
    if (input && (rc = read_inputs(input, b.in, b.batch, &b.x, &b.count)))
        goto done;
    if (!input) {
        b.count = b.batch;
        b.x = malloc(b.batch * b.in * sizeof(float));
    }
    b.labels = malloc(b.batch * sizeof(int32_t));
    if (!b.x || !b.labels) {
        rc = cli_error("out of memory");
        goto done;
    }
    cn_rng rng;
    cn_rng_seed(&rng, 1);
    for (size_t i = 0; !input && i < b.batch * b.in; i++)
        b.x[i] = (float)cn_rng_normal(&rng);
    for (size_t i = 0; i < b.batch; i++)
        b.labels[i] = (int32_t)cn_rng_below(&rng, cn_net_classes(net));
    if (!json) {
        rc = print_table(&b, path ? path : CLI_DEFAULT_MODEL_NAME);
        goto done;
    }
    size_t done = 0;
    double elapsed = 0, *lat = NULL;
    if ((rc = throughput(&b, &done, &elapsed, infer ? &lat : NULL)))
        goto done;
    net = cn_model_net(b.model);
    size_t params;
    uint64_t macs;
    cli_totals(net, &params, &macs);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double ips = (double)(done * b.batch) / elapsed;
    printf("{\"mode\": \"%s\", \"batch\": %zu, \"threads\": %d, \"isa\": \"%s\", "
           "\"images_per_s\": %.1f, \"gflops\": %.2f, \"max_rss_mb\": %.1f, \"steps\": %zu, "
           "\"seconds\": %.6f, \"device_peak_mb\": %.1f",
           infer ? "infer" : "train", b.batch, cn_net_threads(net), cn_net_isa(net), ips,
           ips * (infer ? 2.0 : 6.0) * (double)macs / 1e9, (double)ru.ru_maxrss / 1024.0, done,
           elapsed, (double)cn_net_device_peak(net) / (1 << 20));
    if (lat)
        printf(", \"latency_ms_p50\": %.4f, \"latency_ms_p99\": %.4f",
               1e3 * percentile(lat, done, 50), 1e3 * percentile(lat, done, 99));
    printf("}\n");
    free(lat);
done:
    free(b.x);
    free(b.labels);
    cn_model_free(b.model);
    return rc;
}
