/* bench.c - convnet bench: where a training step's time goes, layer by
 * layer, and the throughput of training and inference. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char help[] =
    "usage: convnet bench [MODEL.cfg|MODEL_FILE] [options]\n"
    "\n"
    "Times a network on random data held in memory (the default network when none\n"
    "is given).  By default it runs training steps (forward, loss, backward, update)\n"
    "and prints, for each layer, the median forward and backward time, its share of\n"
    "the step and its GFLOP/s, then the update, the step time and images/s.\n"
    "\n"
    "  --batch N      images per step (default: the recipe's batch)\n"
    "  --threads N    worker threads (default: one per core)\n"
    "  --steps N      timed steps for the table (default 20, after 3 untimed)\n"
    "  --infer        time inference (forward passes only) instead of training\n"
    "  --json         no table: run for --seconds and print one JSON object,\n"
    "                 {\"mode\", \"batch\", \"threads\", \"isa\", \"images_per_s\", \"gflops\",\n"
    "                  \"max_rss_mb\"}, as bench/run.sh reads it\n"
    "  --seconds S    how long --json measures (default 2, after a warm-up)\n";

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
    float *x;
    int32_t *labels;
} bench;

static cn_status run_step(bench *b)
{
    if (b->infer)
        return cn_net_forward(cn_model_net(b->model), b->x, b->batch, 0);
    return cn_model_step(b->model, b->x, b->labels, b->batch, 1e-4, NULL);
}

/* Steps for about seconds after a warm-up; returns images per second. */
static int throughput(bench *b, double seconds, double *ips)
{
    double warm = cli_now() + (seconds / 4 < 0.5 ? seconds / 4 : 0.5);
    do {
        if (run_step(b))
            return -1;
    } while (cli_now() < warm);
    size_t steps = 0;
    double start = cli_now(), elapsed;
    do {
        if (run_step(b))
            return -1;
        steps++;
        elapsed = cli_now() - start;
    } while (elapsed < seconds || steps < 3);
    *ips = (double)(steps * b->batch) / elapsed;
    return 0;
}

static int print_table(bench *b, const char *name, long steps)
{
    cn_net *net = cn_model_net(b->model);
    size_t nl = cn_net_num_layers(net);
    double *f = calloc((size_t)steps * (nl + 1), sizeof(double));
    double *bw = calloc((size_t)steps * (nl + 1), sizeof(double));
    double *tmp = calloc((size_t)steps, sizeof(double));
    double *fmed = calloc(2 * nl, sizeof(double)), *bmed = fmed + nl;
    int rc = 0;
    if (!f || !bw || !tmp || !fmed) {
        rc = cli_error("out of memory");
        goto done;
    }
    for (long r = -3; r < steps; r++) {
        size_t row = (size_t)(r < 0 ? 0 : r) * (nl + 1);
        if (cn_model_profile(b->model, b->x, b->labels, b->batch, f + row, bw + row,
                             &f[row + nl])) {
            rc = cli_lib_error();
            goto done;
        }
    }
    net = cn_model_net(b->model);
    printf("%s: batch %zu, %d thread%s, %s kernels; median of %ld steps\n\n", name, b->batch,
           cn_net_threads(net), cn_net_threads(net) == 1 ? "" : "s", cn_net_isa(net), steps);
    printf("%-12s %-9s %11s %11s %7s %9s\n", "layer", "kind", "forward ms", "backward ms", "share",
           "GFLOP/s");
    /* Medians per layer (forward, backward) and of the update, then the table. */
    double upd = median(f, (size_t)steps, nl + 1, nl, tmp), total = upd;
    for (size_t i = 0; i < nl; i++) {
        fmed[i] = median(f, (size_t)steps, nl + 1, i, tmp);
        bmed[i] = median(bw, (size_t)steps, nl + 1, i, tmp);
        total += fmed[i] + bmed[i];
    }
    size_t params;
    uint64_t macs;
    cli_totals(net, &params, &macs);
    for (size_t i = 0; i < nl; i++) {
        cn_layer_info li;
        cn_net_layer(net, i, &li);
        double fm = fmed[i], bm = bmed[i];
        char gf[16] = "";
        if (li.macs)
            snprintf(gf, sizeof gf, "%.1f",
                     6.0 * (double)li.macs * (double)b->batch / (fm + bm) / 1e9);
        printf("%-12s %-9s %11.3f %11.3f %6.1f%% %9s\n", li.name, li.kind, 1e3 * fm, 1e3 * bm,
               100 * (fm + bm) / total, gf);
    }
    printf("%-12s %-9s %11.3f %11s %6.1f%%\n", "update", "sgd", 1e3 * upd, "", 100 * upd / total);
    printf("\nstep %.3f ms: %.0f images/s, %.1f GFLOP/s (6 x %.2f M multiply-adds per image)\n",
           1e3 * total, (double)b->batch / total,
           6.0 * (double)macs * (double)b->batch / total / 1e9, (double)macs / 1e6);
done:
    free(f);
    free(bw);
    free(tmp);
    free(fmed);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    enum { O_BATCH = 1, O_THREADS, O_STEPS, O_INFER, O_JSON, O_SECONDS, O_HELP };
    static const cli_opt opts[] = {
        {"batch", 1, O_BATCH}, {"threads", 1, O_THREADS}, {"steps", 1, O_STEPS},
        {"infer", 0, O_INFER}, {"json", 0, O_JSON},       {"seconds", 1, O_SECONDS},
        {"help", 0, O_HELP},   {"h", 0, O_HELP},          {NULL, 0, 0},
    };
    long batch = 0, threads = 0, steps = 20;
    double seconds = 2;
    int infer = 0, json = 0, c;
    const char *path = NULL, *v;
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
        case O_INFER: infer = 1; break;
        case O_JSON: json = 1; break;
        case O_HELP: fputs(help, stdout); return 0;
        }
    }
    if (infer && !json)
        return cli_usage("bench", "--infer needs --json (the layer table is for training)");
    bench b = {NULL, 0, infer, NULL, NULL};
    cn_device dev = cli_device(threads);
    if (path && cli_is_model_file(path)) {
        if (cn_model_load(path, &dev, &b.model))
            return cli_lib_error();
    } else {
        cn_spec *spec;
        cn_status st = cli_load_spec(path, &spec);
        if (st)
            return cli_lib_error();
        st = cn_model_create(spec, NULL, &dev, &b.model);
        cn_spec_free(spec);
        if (st)
            return cli_lib_error();
    }
    b.batch = batch ? (size_t)batch : (size_t)cn_model_opts(b.model)->batch;
    int rc = 0;
    if (cn_model_reserve(b.model, b.batch)) {
        rc = cli_lib_error();
        goto done;
    }
    cn_net *net = cn_model_net(b.model);
    cn_shape s = cn_net_input_shape(net);
    size_t in = s.c * s.h * s.w;
    b.x = malloc(b.batch * in * sizeof(float));
    b.labels = malloc(b.batch * sizeof(int32_t));
    if (!b.x || !b.labels) {
        rc = cli_error("out of memory");
        goto done;
    }
    cn_rng rng;
    cn_rng_seed(&rng, 1);
    for (size_t i = 0; i < b.batch * in; i++)
        b.x[i] = (float)cn_rng_normal(&rng);
    for (size_t i = 0; i < b.batch; i++)
        b.labels[i] = (int32_t)cn_rng_below(&rng, cn_net_classes(net));
    if (!json) {
        rc = print_table(&b, path ? path : CLI_DEFAULT_MODEL_NAME, steps);
        goto done;
    }
    double ips;
    if (throughput(&b, seconds, &ips)) {
        rc = cli_lib_error();
        goto done;
    }
    net = cn_model_net(b.model);
    size_t params;
    uint64_t macs;
    cli_totals(net, &params, &macs);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"mode\": \"%s\", \"batch\": %zu, \"threads\": %d, \"isa\": \"%s\", "
           "\"images_per_s\": %.1f, \"gflops\": %.2f, \"max_rss_mb\": %.1f}\n",
           infer ? "infer" : "train", b.batch, cn_net_threads(net), cn_net_isa(net), ips,
           ips * (infer ? 2.0 : 6.0) * (double)macs / 1e9, (double)ru.ru_maxrss / 1024.0);
done:
    free(b.x);
    free(b.labels);
    cn_model_free(b.model);
    return rc;
}
