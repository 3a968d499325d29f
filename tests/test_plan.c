/* test_plan.c - the planner (src/plan.c): its memory is what networks and
 * models allocate, byte for byte where the backend allocates and within a
 * page per block where malloc's bookkeeping comes in; the largest batch it
 * finds fits and one more does not; a tiny network's figures by hand; the
 * stand-in of a GPU that is not here; its times. */
#define _GNU_SOURCE /* mallinfo2 */
#include "harness.h"
#include "internal.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/* Networks that exercise the layout: fused and in-place layers, batch
 * normalisation's buffers and state, a residual connection (a gradient
 * from a later reader), dropout, pooling of both kinds. */
static const char *NETS[] = {
    /* LeNet-like */
    "[net]\nchannels=1\nheight=28\nwidth=28\nclasses=10\n[train]\nbatch=64\n"
    "[conv]\nfilters=8\nsize=5\n[relu]\n[maxpool]\n[conv]\nfilters=16\nsize=5\n[relu]\n"
    "[maxpool]\n[fc]\noutputs=64\n[relu]\n[fc]\noutputs=10\n[softmax]\n",
    /* batch norm, a shortcut, dropout, average pooling, Adam */
    "[net]\nchannels=3\nheight=16\nwidth=16\nclasses=5\n[train]\nbatch=32\noptimizer=adam\n"
    "[conv]\nname=c1\nfilters=8\nsize=3\npad=1\n[batchnorm]\n[relu]\n[conv]\nfilters=8\nsize=3\n"
    "pad=1\n[batchnorm]\n[shortcut]\nfrom=c1\n[gelu]\n[maxpool]\n[conv]\nfilters=12\nsize=3\n"
    "[avgpool]\nsize=2\n[fc]\noutputs=20\n[dropout]\nrate=0.3\n[fc]\noutputs=5\n[softmax]\n",
    /* fully connected only */
    "[net]\nchannels=1\nheight=8\nwidth=8\nclasses=3\n[train]\nbatch=16\n"
    "[fc]\noutputs=40\n[tanh]\n[fc]\noutputs=3\n[softmax]\n",
};

/* A backend's allocations, counted: its own alloc and free are called
 * through these. */
static void *(*real_alloc)(cn_backend *be, size_t bytes);
static void (*real_free)(cn_backend *be, void *p);
static size_t asked, calls;

static void *counting_alloc(cn_backend *be, size_t bytes)
{
    asked += bytes;
    calls++;
    return real_alloc(be, bytes);
}

static void counting_free(cn_backend *be, void *p) { real_free(be, p); }

/* The plan of spec at batch b on dev (train_n etc. as given). */
static cn_plan *plan_of(const cn_spec *spec, const cn_device *dev, int batch, size_t train_n,
                        size_t val_n, size_t data_n)
{
    cn_train_opts o;
    cn_spec_train_opts(spec, &o);
    o.batch = batch;
    cn_plan_opts po = {&o, dev, train_n, val_n, data_n, 0, 0};
    cn_plan *p = NULL;
    if (cn_plan_training(spec, &po, &p) != CN_OK)
        th_fail(__FILE__, __LINE__, "cn_plan_training: %s", cn_last_error());
    return p;
}

/* What the backend is asked for when a network is built for training
 * batches of b (as a model builds it) is the plan's model, less the
 * optimizer's state and the backend's own, to the byte; on the CPU and on
 * the guard (whose memory is not the host's), for three batches, one above
 * evaluation's 256. */
static void layout_is_what_the_network_allocates(void)
{
    const size_t batches[] = {1, 64, 300};
    for (size_t k = 0; k < sizeof NETS / sizeof NETS[0]; k++) {
        cn_spec *spec = th_spec(NETS[k]);
        CHECK(spec);
        for (size_t j = 0; j < 3; j++) {
            const cn_device *dev = th_dev(1);
            cn_plan *p = plan_of(spec, dev, (int)batches[j], 1000, 100, 1100);
            CHECK(p);
            cn_backend *be;
            cn_device resolved;
            CHECK_OK(cn_backend_create(dev, &resolved, &be));
            real_alloc = be->alloc;
            real_free = be->free;
            be->alloc = counting_alloc;
            be->free = counting_free;
            asked = calls = 0;
            size_t max, train;
            cn_model_batches(batches[j], &max, &train);
            cn_net *net;
            cn_status st = cn_net_build(spec, max, train, 1, be, &resolved, &net);
            CHECK_MSG(st == CN_OK, "%s", cn_last_error());
            size_t want = p->model - p->optimizer - p->backend;
            CHECK_MSG(asked == want,
                      "net %zu, batch %zu: the network asked the backend for %zu "
                      "bytes in %zu blocks, the plan says %zu",
                      k, batches[j], asked, calls, want);
            CHECK(p->net_batch == max && p->backend == be->own_bytes);
            CHECK(p->host_memory == be->host_memory);
            if (!p->host_memory)
                CHECK(p->device_train_peak == p->model + p->device_data);
            cn_net_free(net);
            cn_backend_destroy(be);
            cn_plan_free(p);
        }
        cn_spec_free(spec);
    }
}

/* Bytes the process has taken from malloc (the heap's and mapped chunks). */
static size_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* A whole model (cn_model_create: its backend with the GEMM buffers, its
 * network, the optimizer's state) takes what the plan calls the model and
 * the host arrays, within malloc's rounding (a page per mapped block) and
 * the small things a model holds besides (its spec, the layers' table).
 * On the CPU whatever the run's backend: the guard's memory is mapped, not
 * malloc'd. */
static void model_takes_what_the_plan_says(void)
{
    /* mallinfo2 sees glibc's heap only: not a sanitizer's or valgrind's */
    size_t before_probe = heap_bytes();
    char *volatile probe = malloc((size_t)1 << 20); /* volatile: not elided */
    int seen = probe && heap_bytes() - before_probe >= ((size_t)1 << 20);
    free(probe);
    if (!seen)
        SKIP("mallinfo2 does not count this process's allocations (a sanitizer, valgrind)");
    for (size_t k = 0; k < sizeof NETS / sizeof NETS[0]; k++) {
        cn_spec *spec = th_spec(NETS[k]);
        CHECK(spec);
        const cn_device dev = {"cpu", 0, 2};
        cn_plan *p = plan_of(spec, &dev, 64, 0, 0, 0);
        CHECK(p);
        cn_train_opts o = p->recipe;
        size_t before = heap_bytes();
        cn_model *m = NULL;
        CHECK_OK(cn_model_create(spec, &o, &dev, &m));
        size_t took = heap_bytes() - before, want = p->model + p->host_arrays;
        double off = (double)took - (double)want;
        printf("    net %zu: the model took %zu bytes, the plan says %zu (%+.0f)\n", k, took, want,
               off);
        CHECK_MSG(off >= 0 && off <= 4096.0 * 64 + 0.002 * (double)want,
                  "net %zu: took %zu, planned %zu", k, took, want);
        cn_model_free(m);
        /* [train] ema: the average, made when training starts, is planned */
        o.ema = 0.999;
        cn_plan_opts po = {&o, &dev, 0, 0, 0, 0, 0};
        cn_plan *pe = NULL;
        CHECK_OK(cn_plan_training(spec, &po, &pe));
        before = heap_bytes();
        CHECK_OK(cn_model_create(spec, &o, &dev, &m));
        CHECK_OK(cn_model_ema_use(m, 1));
        took = heap_bytes() - before, want = pe->model + pe->host_arrays;
        off = (double)took - (double)want;
        printf("    net %zu with ema: the model took %zu bytes, the plan says %zu (%+.0f)\n", k,
               took, want, off);
        CHECK_MSG(off >= 0 && off <= 4096.0 * 64 + 0.002 * (double)want && pe->model > p->model,
                  "net %zu with ema: took %zu, planned %zu", k, took, want);
        cn_model_free(m);
        cn_plan_free(pe);
        cn_plan_free(p);
        cn_spec_free(spec);
    }
}

/* The largest batch within a memory: its training peak fits, one more
 * image's does not; none fits a memory smaller than the model at batch 1. */
static void max_batch_fits_and_one_more_does_not(void)
{
    cn_spec *spec = th_spec(NETS[0]);
    CHECK(spec);
    const cn_device dev = {"cpu", 0, 1};
    cn_train_opts o;
    cn_spec_train_opts(spec, &o);
    const size_t memories[] = {(size_t)120 << 20, (size_t)300 << 20, (size_t)1 << 30};
    for (size_t j = 0; j < 3; j++) {
        cn_plan_opts po = {&o, &dev, 50000, 10000, 60000, 10000, 5 << 20};
        size_t mb;
        CHECK_OK(cn_plan_max_batch(spec, &po, memories[j], &mb));
        CHECK_MSG(mb > 256 && mb < 65536, "within %zu MiB: %zu", memories[j] >> 20, mb);
        cn_plan *fit = plan_of(spec, &dev, (int)mb, 50000, 10000, 60000);
        cn_plan *over = plan_of(spec, &dev, (int)mb + 1, 50000, 10000, 60000);
        CHECK(fit && over);
        /* plan_of counts no baseline: add the one max_batch was given */
        CHECK_MSG(fit->train_peak + (5 << 20) <= memories[j] &&
                      over->train_peak + (5 << 20) > memories[j],
                  "batch %zu: %zu, %zu: %zu, memory %zu", mb, fit->train_peak, mb + 1,
                  over->train_peak, memories[j]);
        printf("    within %4zu MiB: batches up to %zu\n", memories[j] >> 20, mb);
        cn_plan_free(fit);
        cn_plan_free(over);
    }
    cn_plan_opts po = {&o, &dev, 50000, 10000, 60000, 10000, 0};
    size_t mb = 1;
    CHECK_OK(cn_plan_max_batch(spec, &po, (size_t)10 << 20, &mb));
    CHECK(mb == 0);
    cn_spec_free(spec);
}

/* A tiny network, counted by hand: input 1x4x4; a convolution of two 3x3
 * filters (2x2x2 out) with the relu after it in place; fc 3; softmax. */
static void tiny_network_by_hand(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=4\nwidth=4\nclasses=3\n[train]\nbatch=16\n"
                            "[conv]\nfilters=2\nsize=3\n[relu]\n[fc]\noutputs=3\n[softmax]\n");
    CHECK(spec);
    const cn_device dev = {"cpu", 0, 1};
    cn_train_opts o;
    cn_spec_train_opts(spec, &o);
    cn_plan_opts po = {&o, &dev, 90, 10, 100, 20, 1000};
    cn_plan *p;
    CHECK_OK(cn_plan_training(spec, &po, &p));
    CHECK(p->batch == 16 && p->net_batch == 16 && p->steps == 5 && p->n_layers == 4);
    /* tensors of 18, 2, 24 and 3 floats, each padded to 16 floats: 32 + 16 +
     * 32 + 16 = 96; no buffers (an empty block is one float) */
    CHECK(p->params == 47);
    CHECK(p->weights == 96 * 4 + 4);
    CHECK(p->gradients == (96 + 3) * 4); /* and the three floats of the exchange */
    CHECK(p->optimizer == 96 * 4);       /* SGD's momentum */
    /* outputs for a batch (16 images, as evaluation's passes): conv 8
     * floats each, relu in place, fc 3, softmax 3; backward's two buffers
     * for 16: one for softmax's gradient (3) and then the input's (16), the
     * other for fc's input gradient (8); no state (one float) */
    CHECK(p->activations == 16 * 4 * (8 + 3 + 3) + (16 + 8) * 16 * 4 + 4);
    /* the input as floats and pixels, labels, losses (double), best classes,
     * their probabilities, the normalisation (mean and std) */
    CHECK(p->io == 16 * 16 * 4 + 16 * 16 + 16 * 4 + 16 * 8 + 16 * 4 + 16 * 4 + 2 * 4);
    CHECK(p->host_arrays == 2 * 4 + 16 * 8 + 16 * 4 + 16 * 4);
    const cn_plan_layer *conv = &p->layers[0], *relu = &p->layers[1], *fc = &p->layers[2];
    CHECK(strcmp(conv->name, "conv1") == 0 && strcmp(conv->kind, "conv") == 0);
    CHECK(conv->params == 20 && fc->params == 27 && relu->params == 0);
    CHECK(conv->param_bytes == (32 + 16) * 4 * 3 && fc->param_bytes == (32 + 16) * 4 * 3);
    CHECK(conv->act_bytes == 16 * 8 * 4 && relu->act_bytes == 0 && fc->act_bytes == 16 * 3 * 4);
    CHECK(conv->out.c == 2 && conv->out.h == 2 && conv->out.w == 2);
    /* 72 multiply-adds per image; the first layer's backward computes no
     * input gradient: its weights' only */
    CHECK(conv->flops_fwd == (2 * 72 + 8) * 16 && conv->flops_bwd == (2 * 72 + 8) * 16);
    CHECK(fc->flops_fwd == (2 * 24 + 3) * 16 && fc->flops_bwd == (4 * 24 + 3) * 16);
    /* around the model: 100 images of 16 pixels and an int32 label; the
     * permutation of 90, a batch of labels, pixels and one spare image; a
     * checkpoint of the weights, their momentum and the normalisation */
    CHECK(p->data == 100 * (16 + 4));
    CHECK(p->loop == 90 * 4 + 16 * 4 + 16 * 16 + 16);
    CHECK(p->transient == (47 * 2 + 2) * 4);
    CHECK(p->train_peak == 1000 + p->model + p->host_arrays + p->data + p->loop + p->transient);
    CHECK(p->model == p->weights + p->gradients + p->optimizer + p->activations + p->scratch +
                          p->io + p->backend);
    CHECK(p->timing == CN_PLAN_UNTIMED && p->step_s < 0 && p->epoch_s < 0);
    CHECK(p->device_train_peak == 0 && p->standin == 0 && p->exact == 1);
    cn_plan_free(p);
    cn_spec_free(spec);
}

/* A GPU that is not here is planned from its backend's stand-in: the same
 * layout (every block but the scratch and the activations' arena is the
 * CPU's; the arena holds the same outputs, and backward's gradients where
 * the outputs are spent: CUDA writes each backward result into a place of
 * its own, the CPU writes some over their inputs, so it needs no more than
 * CUDA but for a copy of the running statistics kept for a replay, 256
 * bytes here), the device's peaks, cuDNN's workspace said to be missing, no
 * time. */
static void gpu_planned_without_one(void)
{
    cn_gpu g[1];
    int n = 0;
    if (cn_gpu_list(g, 1, &n) == CN_OK && n > 0)
        SKIP("a GPU is here: its real backend plans it (tests/cuda.sh)");
    cn_spec *spec = th_spec(NETS[1]);
    CHECK(spec);
    const cn_device cpu = {"cpu", 0, 1}, gpu = {"cuda", 0, 0};
    cn_plan *c = plan_of(spec, &cpu, 32, 1000, 100, 1100);
    cn_plan *d = plan_of(spec, &gpu, 32, 1000, 100, 1100);
    CHECK(c && d);
    CHECK(d->standin == 1 && d->exact == 0 && d->host_memory == 0);
    CHECK(strcmp(d->device.backend, "cuda") == 0);
    CHECK(d->weights == c->weights && d->gradients == c->gradients &&
          d->optimizer == c->optimizer && d->io == c->io);
    size_t outputs = 0;
    for (size_t i = 0; i < c->n_layers; i++)
        outputs += c->layers[i].act_bytes;
    CHECK(outputs > 0 && outputs <= c->activations && outputs <= d->activations);
    CHECK(c->activations <= d->activations + 256);
    CHECK(d->device_data == 1000 * 3 * 16 * 16 + 32 * 4);
    CHECK(d->device_train_peak == d->model + d->device_data);
    CHECK(d->device_infer_peak == d->model);
    CHECK(d->train_peak < c->train_peak); /* the model is on the device */
    CHECK_ERR(cn_plan_roofline(d), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "cannot be timed"));
    CHECK_ERR(cn_plan_calibrate(d, spec, NULL, 0.1), CN_ERR_ARG);
    CHECK(d->timing == CN_PLAN_UNTIMED);
    cn_plan_free(c);
    cn_plan_free(d);
    cn_spec_free(spec);
}

/* The times: the roofline's rates are positive and its layers add up to
 * less than its step (the update and the batch's preparation come on top);
 * a calibration runs the network and its epoch is its steps and passes. */
static void times_add_up(void)
{
    cn_spec *spec = th_spec(NETS[2]);
    CHECK(spec);
    cn_plan *p = plan_of(spec, th_dev(1), 16, 1600, 300, 1900);
    CHECK(p);
    CHECK_OK(cn_plan_roofline(p));
    CHECK(p->timing == CN_PLAN_ROOFLINE && p->gflops > 0 && p->gbytes > 0);
    double layers = 0;
    for (size_t i = 0; i < p->n_layers; i++)
        layers += p->layers[i].fwd_s + p->layers[i].bwd_s;
    CHECK(layers > 0 && layers < p->step_s);
    CHECK(p->net_batch == 16); /* evaluation's passes: the training batch */
    CHECK_NEAR(p->epoch_s, 100 * p->step_s + 300.0 / 16 * p->eval_s, 1e-12);
    double roof_step = p->step_s;
    CHECK_OK(cn_plan_calibrate(p, spec, NULL, 0.3));
    CHECK(p->timing == CN_PLAN_CALIBRATED && p->step_s > 0 && p->eval_s > 0);
    CHECK_NEAR(p->epoch_s, p->train_s + p->val_s, 1e-12);
    CHECK_NEAR(p->train_s, 100 * p->step_s, 1e-12);
    for (size_t i = 0; i < p->n_layers; i++)
        CHECK(p->layers[i].fwd_s >= 0 && p->layers[i].bwd_s >= 0);
    /* on images of its own: those of the network's shape; others refused */
    cn_data bars = th_bars(200, 1, 8), wide = th_bars(200, 1, 9);
    CHECK_OK(cn_plan_calibrate(p, spec, &bars, 0.2));
    CHECK(p->timing == CN_PLAN_CALIBRATED && p->step_s > 0);
    CHECK_ERR(cn_plan_calibrate(p, spec, &wide, 0.2), CN_ERR_SHAPE);
    CHECK(th_contains(cn_last_error(), "1x9x9"));
    cn_data_free(&bars);
    cn_data_free(&wide);
    printf("    fc 64-40-3, batch 16: a step %.3f ms calibrated (%.3f ms by the roofline), an "
           "evaluation pass %.3f ms\n",
           p->step_s * 1e3, roof_step * 1e3, p->eval_s * 1e3);
    cn_plan_free(p);
    cn_spec_free(spec);
}

/* Bad input is refused with the library's statuses. */
static void bad_input_refused(void)
{
    cn_spec *spec = th_spec(NETS[0]);
    CHECK(spec);
    cn_train_opts o;
    cn_spec_train_opts(spec, &o);
    o.batch = 0;
    cn_plan_opts po = {&o, NULL, 0, 0, 0, 0, 0};
    cn_plan *p = NULL;
    CHECK_ERR(cn_plan_training(spec, &po, &p), CN_ERR_ARG);
    CHECK(p == NULL);
    const cn_device nowhere = {"tpu", 0, 0};
    cn_spec_train_opts(spec, &o);
    po.device = &nowhere;
    CHECK_ERR(cn_plan_training(spec, &po, &p), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "tpu"));
    cn_plan_free(NULL);
    cn_spec_free(spec);
}

const th_test th_plan[] = {
    {"plan/layout_is_what_the_network_allocates", layout_is_what_the_network_allocates},
    {"plan/model_takes_what_the_plan_says", model_takes_what_the_plan_says},
    {"plan/max_batch_fits_and_one_more_does_not", max_batch_fits_and_one_more_does_not},
    {"plan/tiny_network_by_hand", tiny_network_by_hand},
    {"plan/gpu_planned_without_one", gpu_planned_without_one},
    {"plan/times_add_up", times_add_up},
    {"plan/bad_input_refused", bad_input_refused},
    {NULL, NULL},
};
