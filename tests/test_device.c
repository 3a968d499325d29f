/* test_device.c - the device seam: the same results on a backend whose
 * memory the host cannot touch ("guard"), the communicator that combines
 * gradients across workers, and dropout's counter-based masks. */
#include "counter_rng.h"
#include "harness.h"
#include "internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* A small description with every kind of layer and both ways of working
 * in place (relu fused into a convolution, dropout over its input). */
static const char *ALL_KINDS =
    "[net]\nchannels=1\nheight=8\nwidth=8\nclasses=2\n"
    "[train]\nepochs=1\nbatch=16\nlr=0.05\nmomentum=0.9\ndecay=0.001\nseed=3\nshift=1\nflip=1\n"
    "rotate=10\nscale=0.1\nshear=5\nerase=0.5\nlabel_smoothing=0.1\nema=0.9\n"
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

/* Workers of a data-parallel run as threads of this process, joined by a
 * communicator that sums in rank order (so every worker gets the same bits). */
#define MAX_WORKERS 4

typedef struct group {
    int size, fail_at; /* fail_at: the allreduce (counted from 1) that fails, 0: none */
    int skew;          /* worker 1's sums of the gradient block come out different */
    int not_ready;     /* workers whose model could not be made: none trains */
    int save_fails;    /* worker 1's end-of-epoch hook fails (a save, say) */
    pthread_barrier_t bar;
    float *slot[MAX_WORKERS];
    size_t steps, step_count; /* rank 0: allreduces of the gradient block and its size */
    size_t grad_floats;
    size_t bucket;                /* the communicator's bucket (0: one allreduce) */
    size_t starts, waits, pushes; /* rank 0: buckets started, waits, progress calls */
    size_t started_floats;        /* rank 0: floats in those buckets */
    int pending;                  /* rank 0: buckets started and not yet waited for */
} group;

typedef struct member {
    group *g;
    int rank, calls;
    const char *backend;
    const char *text;
    const cn_data *train;
    cn_model *model;
    cn_status st;
    double last_loss;
    char msg[256]; /* cn_last_error() of the worker's thread */
} member;

static cn_status group_allreduce(void *user, float *data, size_t count)
{
    member *m = user;
    group *g = m->g;
    if (++m->calls == g->fail_at) /* every worker at once: the network is gone */
        return cn_fail(CN_ERR_IO, "the network between the workers went down");
    if (m->rank == 0 && count == g->grad_floats)
        g->steps++;
    float *sum = calloc(count, sizeof *sum);
    g->slot[m->rank] = data;
    pthread_barrier_wait(&g->bar);
    for (int r = 0; sum && r < g->size; r++)
        for (size_t i = 0; i < count; i++)
            sum[i] += g->slot[r][i];
    pthread_barrier_wait(&g->bar); /* everyone has read every slot */
    if (sum)
        memcpy(data, sum, count * sizeof *sum);
    if (sum && g->skew && m->rank == 1 && count == g->grad_floats)
        data[0] += 1e-3f;
    free(sum);
    return sum ? CN_OK : cn_fail(CN_ERR_NOMEM, "out of memory");
}

/* Buckets: summed at once (a sum that completes early is one a real
 * communicator may give), counted to see that they start during the
 * backward pass and cover the block once. */
static cn_status group_allreduce_start(void *user, float *data, size_t count)
{
    member *m = user;
    if (m->rank == 0) {
        m->g->starts++;
        m->g->pending++;
        m->g->started_floats += count;
    }
    return group_allreduce(user, data, count);
}

static cn_status group_allreduce_wait(void *user)
{
    member *m = user;
    if (m->rank == 0) {
        m->g->waits++;
        m->g->pending = 0;
    }
    return CN_OK;
}

static void group_progress(void *user)
{
    member *m = user;
    if (m->rank == 0 && m->g->pending)
        m->g->pushes++;
}

static cn_status group_broadcast(void *user, float *data, size_t count, int root)
{
    member *m = user;
    group *g = m->g;
    if (m->rank == root)
        g->slot[0] = data;
    pthread_barrier_wait(&g->bar);
    if (m->rank != root)
        memcpy(data, g->slot[0], count * sizeof *data);
    pthread_barrier_wait(&g->bar);
    return CN_OK;
}

static cn_status group_barrier(void *user)
{
    member *m = user;
    pthread_barrier_wait(&m->g->bar);
    return CN_OK;
}

static cn_status note_loss(void *user, const cn_progress *p)
{
    ((member *)user)->last_loss = p->loss;
    return CN_OK;
}

static cn_status failing_save(void *user, cn_model *model, const cn_progress *p)
{
    (void)model, (void)p;
    member *m = user;
    return m->g->save_fails && m->rank == 1 ? cn_fail(CN_ERR_IO, "the disk is full") : CN_OK;
}

static void *work(void *arg)
{
    member *m = arg;
    cn_spec *spec = NULL;
    const cn_device dev = {m->backend, 0, 1};
    m->st = cn_spec_parse(m->text, "worker.cfg", &spec);
    if (!m->st)
        m->st = cn_model_create(spec, NULL, &dev, &m->model);
    cn_spec_free(spec);
    cn_comm comm = {m->rank, m->g->size, m, group_allreduce, group_broadcast, group_barrier, NULL,
                    NULL,    NULL,       0};
    if (m->g->bucket)
        comm = (cn_comm){m->rank,
                         m->g->size,
                         m,
                         group_allreduce,
                         group_broadcast,
                         group_barrier,
                         group_allreduce_start,
                         group_allreduce_wait,
                         group_progress,
                         m->g->bucket};
    if (!m->st)
        m->st = cn_model_set_comm(m->model, &comm);
    /* Workers start together or not at all (one left out would leave the
     * others waiting in their first exchange). */
    if (m->st)
        __atomic_add_fetch(&m->g->not_ready, 1, __ATOMIC_SEQ_CST);
    pthread_barrier_wait(&m->g->bar);
    if (!m->st && __atomic_load_n(&m->g->not_ready, __ATOMIC_SEQ_CST))
        m->st = CN_ERR_STOPPED;
    cn_train_hooks hooks = {m, note_loss, failing_save, NULL};
    if (!m->st)
        m->st = cn_model_train(m->model, m->train, NULL, &hooks);
    snprintf(m->msg, sizeof m->msg, "%s", cn_last_error());
    return NULL;
}

/* k workers train the model text describes; their models in m[]. */
static void run_group(group *g, member *m, int k, const char *backend, const char *text,
                      const cn_data *train)
{
    pthread_t t[MAX_WORKERS];
    g->size = k;
    pthread_barrier_init(&g->bar, NULL, (unsigned)k);
    for (int r = 0; r < k; r++) {
        m[r] = (member){g, r, 0, backend, text, train, NULL, CN_OK, 0, ""};
        pthread_create(&t[r], NULL, work, &m[r]);
    }
    for (int r = 0; r < k; r++)
        pthread_join(t[r], NULL);
    pthread_barrier_destroy(&g->bar);
}

/* Relative L2 distance of two models' parameters. */
static double param_diff(const cn_model *a, const cn_model *b)
{
    float *x = th_block(a->net, CN_PARAMS), *y = th_block(b->net, CN_PARAMS);
    double d = 0, n = 0;
    for (size_t i = 0; x && y && i < a->net->n_params; i++) {
        d += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        n += (double)x[i] * x[i];
    }
    free(x);
    free(y);
    return x && y ? sqrt(d / n) : 1.0;
}

/* No batch normalisation: the workers' shares of a batch then give the
 * batch's gradient, summed in another order only.  Dropout and
 * augmentation draw by each sample's place in the global batch. */
static const char *SPLIT =
    "[net]\nchannels=1\nheight=8\nwidth=8\nclasses=2\n"
    "[train]\nepochs=1\nbatch=16\nlr=0.05\nmomentum=0.9\ndecay=0.001\nseed=3\nshift=1\nflip=1\n"
    "[conv]\nname=c1\nfilters=4\nsize=3\npad=1\n[relu]\n[conv]\nfilters=4\nsize=3\npad=1\n"
    "[leaky]\n[shortcut]\nfrom=c1\n[gelu]\n[maxpool]\n[fc]\noutputs=8\n[silu]\n"
    "[dropout]\nrate=0.25\n[fc]\noutputs=2\n[softmax]\n";

static void check_workers(const char *backend)
{
    cn_data train = th_bars(160, 1, 8);
    group solo_g = {0}, g2 = {0}, g4 = {0};
    member solo[1], two[2], four[4];
    run_group(&solo_g, solo, 1, backend, SPLIT, &train);
    CHECK_OK(solo[0].st);
    run_group(&g2, two, 2, backend, SPLIT, &train);
    run_group(&g4, four, 4, backend, SPLIT, &train);
    for (int r = 0; r < 4; r++) {
        CHECK_MSG(r >= 2 || two[r].st == CN_OK, "worker %d of 2: %s", r, cn_status_name(two[r].st));
        CHECK_MSG(four[r].st == CN_OK, "worker %d of 4: %s", r, cn_status_name(four[r].st));
    }
    /* Every worker takes the same step: their models are one, bit for bit. */
    CHECK(same_weights(two[0].model, two[1].model));
    for (int r = 1; r < 4; r++)
        CHECK(same_weights(four[0].model, four[r].model));
    /* And the run is the solo run, but for the order of the sums. */
    double d2 = param_diff(solo[0].model, two[0].model),
           d4 = param_diff(solo[0].model, four[0].model);
    printf("    %s: 2 and 4 workers against 1, weights after 10 steps: %.1e, %.1e; loss %.6f, "
           "%.6f, %.6f\n",
           backend, d2, d4, solo[0].last_loss, two[0].last_loss, four[0].last_loss);
    CHECK(d2 < 1e-5 && d4 < 1e-5);
    CHECK_NEAR(two[0].last_loss, solo[0].last_loss, 1e-5 * solo[0].last_loss);
    CHECK_NEAR(four[0].last_loss, solo[0].last_loss, 1e-5 * solo[0].last_loss);
    for (int r = 0; r < 4; r++) {
        cn_model_free(four[r].model);
        if (r < 2)
            cn_model_free(two[r].model);
    }
    /* One allreduce of the gradient block (and its tail) per step. */
    group g = {0};
    g.grad_floats = solo[0].model->net->n_params + CN_GRAD_TAIL;
    run_group(&g, two, 2, backend, SPLIT, &train);
    CHECK_MSG(g.steps == 10, "%zu allreduces of the gradient block for 10 steps", g.steps);
    /* In buckets started during the backward pass, the same sums: the same
     * bits.  Buckets of at least 100 floats over SPLIT's layers (4x1x3x3+4,
     * 4x4x3x3+4, 8x64+8, 2x8+2 floats, each tensor padded, and the 3 of the
     * tail): the last fc joins the first, the second conv makes one, the
     * first conv's 64 go after the pass: 3 per step, the first two started
     * while layers below still had to run. */
    group b = {0};
    b.bucket = 100;
    member bt[2];
    run_group(&b, bt, 2, backend, SPLIT, &train);
    CHECK_OK(bt[0].st);
    CHECK_OK(bt[1].st);
    CHECK(same_weights(bt[0].model, two[0].model) && same_weights(bt[1].model, two[0].model));
    printf("    %s: buckets of 100 floats: %zu started in 10 steps, %zu progress calls\n", backend,
           b.starts, b.pushes);
    CHECK_MSG(b.starts == 30 && b.waits == 10, "%zu buckets, %zu waits", b.starts, b.waits);
    CHECK(b.started_floats == 10 * g.grad_floats);
    CHECK(b.pushes > 0);
    for (int r = 0; r < 2; r++)
        cn_model_free(bt[r].model);
    cn_model_free(two[0].model);
    cn_model_free(two[1].model);
    /* An exchange that fails stops every worker with its status. */
    group bad = {0};
    bad.fail_at = 4;
    run_group(&bad, two, 2, backend, SPLIT, &train);
    for (int r = 0; r < 2; r++) {
        CHECK(two[r].st == CN_ERR_IO && cn_model_state(two[r].model)->global_step == 2);
        cn_model_free(two[r].model);
    }
    /* Workers whose exchange parts them stop at the end of the epoch. */
    group skewed = {0};
    skewed.skew = 1;
    skewed.grad_floats = g.grad_floats;
    run_group(&skewed, two, 2, backend, SPLIT, &train);
    for (int r = 0; r < 2; r++) {
        CHECK_MSG(two[r].st == CN_ERR_NUMERIC && th_contains(two[r].msg, "weights have parted"),
                  "worker %d: %s", r, two[r].msg);
        cn_model_free(two[r].model);
    }
    /* A save that fails on one worker ends every worker at the epoch's end,
     * batch-normalisation statistics averaged by all (no one left waiting). */
    group full = {0};
    full.save_fails = 1;
    run_group(&full, two, 2, backend, ALL_KINDS, &train);
    CHECK(two[0].st == CN_ERR_STOPPED && two[1].st == CN_ERR_IO);
    CHECK(th_same(two[0].model->net, two[1].model->net, CN_BUFFERS));
    cn_model_free(two[0].model);
    cn_model_free(two[1].model);
    /* A batch the workers cannot share evenly is refused by all. */
    group odd = {0};
    run_group(&odd, four, 3, backend, SPLIT, &train); /* 16 over 3 */
    for (int r = 0; r < 3; r++) {
        CHECK(four[r].st == CN_ERR_ARG && four[r].model->state.global_step == 0);
        cn_model_free(four[r].model);
    }
    /* A communicator must make sense. */
    cn_comm wrong = {.rank = 2,
                     .size = 2,
                     .allreduce = group_allreduce,
                     .broadcast = group_broadcast,
                     .barrier = group_barrier};
    CHECK_ERR(cn_model_set_comm(solo[0].model, &wrong), CN_ERR_ARG);
    wrong.rank = 0;
    wrong.allreduce_start = group_allreduce_start; /* and no wait */
    CHECK_ERR(cn_model_set_comm(solo[0].model, &wrong), CN_ERR_ARG);
    wrong.allreduce_start = NULL;
    wrong.allreduce = NULL;
    CHECK_ERR(cn_model_set_comm(solo[0].model, &wrong), CN_ERR_ARG);
    CHECK_OK(cn_model_set_comm(solo[0].model, NULL));
    cn_model_free(solo[0].model);
    cn_data_free(&train);
}

static void comm_combines_gradients(void) { check_workers("cpu"); }
/* The guard's memory is not the host's: the gradients are staged. */
static void comm_stages_device_memory(void) { check_workers("guard"); }

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
    /* A relu after a batch normalisation is done by it where the backend's
     * bn_acts lists it (the CPU's), even after pooling; a second relu after
     * a fused one is a layer of its own. */
    spec = th_spec("[net]\nchannels=1\nheight=6\nwidth=6\nclasses=2\n[conv]\nfilters=2\nsize=3\n"
                   "[maxpool]\n[batchnorm]\n[relu]\n[relu]\n[fc]\noutputs=2\n[softmax]\n");
    CHECK(spec);
    CHECK_OK(cn_net_create(spec, 1, th_dev(1), &net));
    if (strcmp(net->be->name, "cuda") != 0) /* the CPU's, and the guard's */
        CHECK(net->be->bn_acts == 1u << CN_ACT_RELU);
    if (net->be->bn_acts & 1u << CN_ACT_RELU)
        CHECK(net->layers[0].fused_act == CN_ACT_NONE && net->layers[2].fused_act == CN_ACT_RELU &&
              net->layers[3].fused_away && !net->layers[4].fused_away);
    else /* the GPU's batch normalisation leaves the relu to a layer of its own */
        CHECK(net->layers[2].fused_act == CN_ACT_NONE && !net->layers[3].fused_away);
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
