/* bench.c - convnet bench: where a training step's time goes, layer by
 * layer, and the throughput of training and inference. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char help[] =
    "usage: convnet bench [MODEL.cfg|MODEL_FILE] [options]\n"
    "\n"
    "Times training steps and inference of a network on random data (the default\n"
    "network when none is given) and prints, for each layer, the median forward,\n"
    "backward and share of the step, then the optimizer update, images/s and GFLOP/s.\n"
    "\n"
    "  --batch N      images per step (default: the recipe's batch)\n"
    "  --threads N    worker threads (default: one per core)\n"
    "  --steps N      timed steps (default 20, after 3 untimed)\n"
    "  --infer N      also time inference on batches of N (default 0: no)\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of column j of a steps x cols table. */
static double median(double *t, size_t steps, size_t cols, size_t j, double *tmp)
{
    for (size_t s = 0; s < steps; s++)
        tmp[s] = t[s * cols + j];
    qsort(tmp, steps, sizeof *tmp, cmp_double);
    return steps % 2 ? tmp[steps / 2] : 0.5 * (tmp[steps / 2 - 1] + tmp[steps / 2]);
}

int cmd_bench(int argc, char **argv)
{
    enum { O_BATCH = 1, O_THREADS, O_STEPS, O_INFER, O_HELP };
    static const cli_opt opts[] = {
        {"batch", 1, O_BATCH}, {"threads", 1, O_THREADS}, {"steps", 1, O_STEPS},
        {"infer", 1, O_INFER}, {"help", 0, O_HELP},       {"h", 0, O_HELP},
        {NULL, 0, 0},
    };
    long batch = 0, threads = 0, steps = 20, infer = 0;
    const char *path = NULL, *v;
    int c;
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
        case O_BATCH:
            if (!cli_int(v, 1, 65536, &batch))
                return cli_usage("bench", "--batch takes a whole number from 1 to 65536, not '%s'",
                                 v);
            break;
        case O_THREADS:
            if (!cli_int(v, 0, 1024, &threads))
                return cli_usage("bench", "--threads takes a whole number from 0 to 1024, not '%s'",
                                 v);
            break;
        case O_STEPS:
            if (!cli_int(v, 1, 100000, &steps))
                return cli_usage("bench", "--steps takes a whole number from 1 to 100000, not '%s'",
                                 v);
            break;
        case O_INFER:
            if (!cli_int(v, 0, 65536, &infer))
                return cli_usage("bench", "--infer takes a whole number from 0 to 65536, not '%s'",
                                 v);
            break;
        case O_HELP: fputs(help, stdout); return 0;
        }
    }
    cn_model *model = NULL;
    if (path && cli_is_model_file(path)) {
        if (cn_model_load(path, (int)threads, &model))
            return cli_lib_error();
    } else {
        cn_spec *spec;
        cn_status st =
            path ? cn_spec_load(path, &spec)
                 : cn_spec_parse(cn_cli_default_model, "models/mnist.cfg (built in)", &spec);
        if (st)
            return cli_lib_error();
        st = cn_model_create(spec, NULL, (int)threads, &model);
        cn_spec_free(spec);
        if (st)
            return cli_lib_error();
    }
    if (!batch)
        batch = cn_model_opts(model)->batch;
    cn_net *net = cn_model_net(model);
    size_t nl = cn_net_num_layers(net), in = 1;
    cn_shape s = cn_net_input_shape(net);
    in = s.c * s.h * s.w;
    size_t big = (size_t)(infer > batch ? infer : batch);
    float *x = malloc(big * in * sizeof(float));
    int32_t *labels = malloc(big * sizeof(int32_t));
    double *f = calloc((size_t)steps * (nl + 1), sizeof(double));
    double *b = calloc((size_t)steps * (nl + 1), sizeof(double));
    double *tmp = calloc((size_t)steps, sizeof(double));
    int rc = 0;
    if (!x || !labels || !f || !b || !tmp) {
        rc = cli_error("out of memory");
        goto done;
    }
    cn_rng rng;
    cn_rng_seed(&rng, 1);
    for (size_t i = 0; i < big * in; i++)
        x[i] = (float)cn_rng_normal(&rng);
    for (size_t i = 0; i < big; i++)
        labels[i] = (int32_t)cn_rng_below(&rng, cn_net_classes(net));
    /* A small learning rate keeps random-data training from diverging. */
    cn_model_opts(model)->lr = 1e-4;
    for (long r = -3; r < steps; r++) {
        double *fr = f + (r < 0 ? 0 : r) * (long)(nl + 1),
               *br = b + (r < 0 ? 0 : r) * (long)(nl + 1);
        if (cn_model_profile(model, x, labels, (size_t)batch, fr, br, &fr[nl])) {
            rc = cli_lib_error();
            goto done;
        }
        net = cn_model_net(model);
    }
    uint64_t macs = 0;
    double total = 0;
    for (size_t i = 0; i < nl; i++) {
        cn_layer_info li;
        cn_net_layer(net, i, &li);
        macs += li.macs;
        total +=
            median(f, (size_t)steps, nl + 1, i, tmp) + median(b, (size_t)steps, nl + 1, i, tmp);
    }
    double upd = median(f, (size_t)steps, nl + 1, nl, tmp);
    total += upd;
    printf("%s: batch %ld, %d threads, %s kernels; median of %ld steps\n\n",
           path ? path : "models/mnist.cfg (built in)", batch, cn_net_threads(net), cn_net_isa(net),
           steps);
    printf("%-12s %-8s %11s %11s %7s %9s\n", "layer", "kind", "forward ms", "backward ms", "share",
           "GFLOP/s");
    for (size_t i = 0; i < nl; i++) {
        cn_layer_info li;
        cn_net_layer(net, i, &li);
        double fm = median(f, (size_t)steps, nl + 1, i, tmp),
               bm = median(b, (size_t)steps, nl + 1, i, tmp);
        char gf[16] = "";
        if (li.macs)
            snprintf(gf, sizeof gf, "%.1f",
                     6.0 * (double)li.macs * (double)batch / (fm + bm) / 1e9);
        printf("%-12s %-8s %11.3f %11.3f %6.1f%% %9s\n", li.name, li.kind, 1e3 * fm, 1e3 * bm,
               100 * (fm + bm) / total, gf);
    }
    printf("%-12s %-8s %11.3f %11s %6.1f%%\n", "update", "sgd", 1e3 * upd, "", 100 * upd / total);
    printf("\nstep %.3f ms: %.0f images/s, %.1f GFLOP/s (6 x %.2f M multiply-adds per image)\n",
           1e3 * total, (double)batch / total, 6.0 * (double)macs * (double)batch / total / 1e9,
           (double)macs / 1e6);
    if (infer > 0) {
        double best = 1e30;
        for (int r = 0; r < 5; r++) {
            double t0 = now();
            cn_net_forward(net, x, (size_t)infer);
            double t = now() - t0;
            best = t < best ? t : best;
        }
        if (cn_net_forward(net, x, (size_t)infer)) {
            /* The net is built for the training batch: make room first. */
            rc = cli_error("--infer %ld is larger than the batches this network takes", infer);
            goto done;
        }
        printf("inference, batch %ld: %.0f images/s (best of 5)\n", infer, (double)infer / best);
    }
done:
    free(x);
    free(labels);
    free(f);
    free(b);
    free(tmp);
    cn_model_free(model);
    return rc;
}
