/* test_device.c - the device seam: the same results on a backend whose
 * memory the host cannot touch ("guard"), the communicator that combines
 * gradients across workers, and dropout's counter-based masks. */
#include "counter_rng.h"
#include "harness.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* A small description with every kind of layer and both ways of working
 * in place (relu fused into a convolution, dropout over its input). */
static const char *ALL_KINDS =
    "[net]\nchannels=1\nheight=8\nwidth=8\nclasses=2\n"
    "[train]\nepochs=1\nbatch=16\nlr=0.05\nmomentum=0.9\ndecay=0.001\nseed=3\nshift=1\nflip=1\n"
    "[conv]\nname=c1\nfilters=4\nsize=3\npad=1\n[relu]\n[conv]\nfilters=4\nsize=3\npad=1\n"
    "[batchnorm]\n[leaky]\n[shortcut]\nfrom=c1\n[gelu]\n[maxpool]\n[conv]\nfilters=4\nsize=3\n"
    "pad=1\n[silu]\n[avgpool]\nsize=2\n[fc]\noutputs=8\n[sigmoid]\n[dropout]\nrate=0.25\n"
    "[fc]\noutputs=6\n[tanh]\n[fc]\noutputs=2\n[softmax]\n";

static cn_model *model_on(const char *backend, int threads)
{
    cn_spec *spec = th_spec(ALL_KINDS);
    cn_model *m = NULL;
    const cn_device dev = {backend, 0, threads};
    if (spec && cn_model_create(spec, NULL, &dev, &m) != CN_OK)
        th_fail(__FILE__, __LINE__, "%s: %s", backend, cn_last_error());
    cn_spec_free(spec);
    return m;
}

/* Parameters, buffers and optimizer state of a and b are the same bytes. */
static int same_weights(cn_model *a, cn_model *b)
{
    return th_same(a->net, b->net, CN_PARAMS) && th_same(a->net, b->net, CN_BUFFERS) &&
           th_same_optim(a, b);
}

/* Training, evaluation, a model file, a resumed run and the gradient checks
 * on the guard backend, whose memory is locked outside its own operations:
 * any reach past the seam would crash.  The results are the CPU's, bit for
 * bit (the guard runs the same kernels). */
static void guard_backend_matches_cpu(void)
{
    cn_data train = th_bars(160, 1, 8), val = th_bars(64, 2, 8);
    cn_model *cpu = model_on("cpu", 1), *guard = model_on("guard", 1);
    CHECK(cpu && guard);
    CHECK(strcmp(cn_net_device(guard->net).backend, "guard") == 0);
    CHECK(guard->be->host_memory == 0 && cpu->be->host_memory == 1);
    CHECK_OK(cn_model_train(cpu, &train, &val, NULL));
    CHECK_OK(cn_model_train(guard, &train, &val, NULL));
    CHECK(same_weights(cpu, guard));
    cn_eval a, b;
    CHECK_OK(cn_net_evaluate(cpu->net, &val, &a));
    CHECK_OK(cn_net_evaluate(guard->net, &val, &b));
    CHECK(a.loss == b.loss && a.accuracy == b.accuracy &&
          memcmp(a.predicted, b.predicted, 64 * sizeof *a.predicted) == 0);
    printf("    guard and cpu: validation accuracy %.3f, loss %.4f, the same bits\n", a.accuracy,
           a.loss);
    cn_eval_free(&a);
    cn_eval_free(&b);
    /* A file written from the guard loads on the CPU, and the reverse. */
    char *p1 = th_path("guard.safetensors"), *p2 = th_path("cpu.safetensors");
    CHECK_OK(cn_model_save(guard, p1));
    CHECK_OK(cn_model_save(cpu, p2));
    size_t n1, n2;
    unsigned char *f1 = th_read_file(p1, &n1), *f2 = th_read_file(p2, &n2);
    CHECK(f1 && f2 && n1 == n2 && memcmp(f1, f2, n1) == 0);
    free(f1);
    free(f2);
    cn_model *back;
    const cn_device g = {"guard", 0, 2};
    CHECK_OK(cn_model_load(p2, &g, &back));
    cn_model_opts(back)->epochs = 2;
    cn_model_opts(cpu)->epochs = 2;
    CHECK_OK(cn_model_train(back, &train, NULL, NULL));
    CHECK_OK(cn_model_train(cpu, &train, NULL, NULL));
    CHECK(same_weights(cpu, back));
    /* Whole-network and layer gradient checks pass through the seam too. */
    cn_rng rng;
    cn_rng_seed(&rng, 9);
    cn_gradcheck gc;
    CHECK_OK(cn_gradcheck_net(back->net, 4, 40, &rng, &gc));
    CHECK_MSG(gc.input_err < 1e-2 && gc.param_err < 1e-2, "errors %.3g %.3g", gc.input_err,
              gc.param_err);
    CHECK_OK(cn_gradcheck_layer(back->net, 2, 4, 40, &rng, &gc));
    CHECK_MSG(gc.input_err < 1e-2 && gc.param_err < 1e-2, "errors %.3g %.3g", gc.input_err,
              gc.param_err);
    cn_model_free(back);
    cn_model_free(cpu);
    cn_model_free(guard);
    cn_data_free(&train);
    cn_data_free(&val);
}

/* Two workers that are one: the allreduce adds a worker's gradient to an
 * identical one's (doubling it, exactly) and the step divides by two again,
 * so the run equals a solo run bit for bit.  The calls are counted. */
typedef struct twins {
    int allreduce, broadcast, fail_at;
    size_t count;
} twins;

static cn_status twin_allreduce(void *user, float *data, size_t count)
{
    twins *t = user;
    if (++t->allreduce == t->fail_at)
        return cn_fail(CN_ERR_IO, "the other worker is gone");
    t->count = count;
    for (size_t i = 0; i < count; i++)
        data[i] += data[i];
    return CN_OK;
}
static cn_status twin_broadcast(void *user, float *data, size_t count, int root)
{
    (void)data, (void)count;
    twins *t = user;
    t->broadcast += root == 0;
    return CN_OK;
}
static cn_status twin_barrier(void *user)
{
    (void)user;
    return CN_OK;
}

static void check_comm(const char *backend)
{
    cn_data train = th_bars(160, 1, 8);
    cn_model *solo = model_on(backend, 2), *pair = model_on(backend, 2);
    CHECK(solo && pair);
    twins t = {0, 0, 0, 0};
    cn_comm comm = {1, 2, &t, twin_allreduce, twin_broadcast, twin_barrier};
    CHECK_OK(cn_model_set_comm(pair, &comm));
    CHECK_OK(cn_model_train(solo, &train, NULL, NULL));
    CHECK_OK(cn_model_train(pair, &train, NULL, NULL));
    CHECK(same_weights(solo, pair));
    /* One allreduce per step, of the whole gradient block; the parameters,
     * buffers, optimizer state and normalisation broadcast once. */
    CHECK_MSG(t.allreduce == 10 && t.count == pair->net->n_params && t.broadcast == 4,
              "%d allreduces of %zu floats, %d broadcasts", t.allreduce, t.count, t.broadcast);
    /* A failing exchange stops training with its status. */
    cn_model *broken = model_on(backend, 1);
    twins u = {0, 0, 3, 0};
    comm.user = &u;
    CHECK_OK(cn_model_set_comm(broken, &comm));
    CHECK_ERR(cn_model_train(broken, &train, NULL, NULL), CN_ERR_IO);
    CHECK(th_contains(cn_last_error(), "the other worker is gone") &&
          cn_model_state(broken)->global_step == 2);
    comm.rank = 2;
    CHECK_ERR(cn_model_set_comm(broken, &comm), CN_ERR_ARG);
    CHECK_OK(cn_model_set_comm(broken, NULL));
    cn_model_free(broken);
    cn_model_free(solo);
    cn_model_free(pair);
    cn_data_free(&train);
}

static void comm_combines_gradients(void) { check_comm("cpu"); }
/* The guard's memory is not the host's: the gradients are staged. */
static void comm_stages_device_memory(void) { check_comm("guard"); }

/* Dropout's decisions are the counter-based generator's, computed here on
 * the host from (step seed, line, index) alone: any device gets these bits. */
static void dropout_masks_are_counter_based(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=10\nwidth=10\nclasses=100\n"
                            "[dropout]\nrate=0.4\n[softmax]\n");
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 2, th_dev(1), &net));
    float x[200], y[200];
    for (int i = 0; i < 200; i++)
        x[i] = 1.0f + (float)i;
    net->seed = cn_step_seed(77, 5);
    CHECK_OK(cn_net_forward(net, x, 2, 1));
    CHECK_OK(cn_net_get_layer_output(net, 0, 0, 2, y));
    uint64_t key = cn_step_seed(net->seed, 6); /* [dropout] is on line 6 */
    int dropped = 0;
    for (int i = 0; i < 200; i++) {
        int drop = cn_counter_uniform(key, (uint64_t)i) < 0.4f;
        dropped += drop;
        CHECK_MSG(y[i] == (drop ? 0.0f : x[i] * (1.0f / 0.6f)), "value %d: %g for %g", i, y[i],
                  x[i]);
    }
    CHECK_MSG(dropped > 60 && dropped < 100, "%d of 200 dropped", dropped);
    /* The generator itself: 24 bits, in [0, 1), different keys differ. */
    int same = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        float u = cn_counter_uniform(1, i);
        CHECK(u >= 0.0f && u < 1.0f && u * 16777216.0f == (float)(int)(u * 16777216.0f));
        same += u == cn_counter_uniform(2, i);
    }
    CHECK(same < 5);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* Where each layer works in place follows from what the backward passes
 * read, and fusion from what the backend can do. */
static void in_place_and_fusion_are_declared(void)
{
    cn_spec *spec = th_spec(ALL_KINDS);
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 4, th_dev(1), &net));
    /* c1 relu conv batchnorm leaky shortcut gelu maxpool conv silu avgpool
     * fc sigmoid dropout fc tanh fc softmax: relu keeps c1's output (the
     * shortcut reads it), the shortcut keeps leaky's (leaky's backward reads
     * it), gelu and silu keep their inputs, dropout keeps sigmoid's. */
    const int shares[] = {0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0};
    CHECK(net->n_layers == sizeof shares / sizeof shares[0]);
    for (size_t i = 0; i < net->n_layers; i++)
        CHECK_MSG(net->layers[i].shares_input == shares[i], "layer %zu (%s): in place %d", i,
                  net->layers[i].name, net->layers[i].shares_input);
    CHECK(net->layers[0].read_later && !net->layers[2].read_later);
    for (size_t i = 0; i < net->n_layers; i++) /* relu works apart from c1 */
        CHECK(net->layers[i].fused_act == CN_ACT_NONE && !net->layers[i].fused_away);
    cn_net_free(net);
    cn_spec_free(spec);
    /* A relu in place after a convolution is done by it (the CPU's
     * convolution can); leaky relu is not. */
    spec = th_spec("[net]\nchannels=1\nheight=6\nwidth=6\nclasses=2\n[conv]\nfilters=2\nsize=3\n"
                   "[relu]\n[conv]\nfilters=2\nsize=3\n[leaky]\n[fc]\noutputs=2\n[softmax]\n");
    CHECK(spec);
    CHECK_OK(cn_net_create(spec, 1, th_dev(1), &net));
    CHECK(net->be->conv_acts == 1u << CN_ACT_RELU);
    CHECK(net->layers[0].fused_act == CN_ACT_RELU && net->layers[1].fused_away);
    CHECK(net->layers[2].fused_act == CN_ACT_NONE && !net->layers[3].fused_away &&
          net->layers[3].shares_input);
    cn_net_free(net);
    cn_spec_free(spec);
}

const th_test th_device[] = {
    {"device/guard_backend_matches_cpu", guard_backend_matches_cpu},
    {"device/comm_combines_gradients", comm_combines_gradients},
    {"device/comm_stages_device_memory", comm_stages_device_memory},
    {"device/dropout_masks_are_counter_based", dropout_masks_are_counter_based},
    {"device/in_place_and_fusion_are_declared", in_place_and_fusion_are_declared},
    {NULL, NULL},
};
