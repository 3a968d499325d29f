/* test_train.c - the optimizer, determinism, exact resume, divergence, and
 * end-to-end training on real MNIST. */
#include "counter_rng.h"
#include "harness.h"
#include "internal.h"
#include "io/safetensors.h"

#include <stdlib.h>
#include <string.h>

/* m = mu m + (1 - mu) g;  theta -= lr (m + lambda theta), on numbers. */
static void sgd_follows_the_lecture(void)
{
    /* The CPU backend's memory is the host's: the numbers can be set here. */
    cn_backend *be;
    const cn_device cpu = {"cpu", 0, 1};
    CHECK_OK(cn_backend_create(&cpu, NULL, &be));
    cn_optim o;
    CHECK_OK(cn_optim_init(&o, CN_OPT_SGD, be, 2));
    o.state[0] = 0.5f;
    float p[2] = {1.0f, -2.0f}, g[2] = {2.0f, 0.0f};
    cn_train_opts opts;
    cn_train_opts_defaults(&opts);
    opts.epochs = opts.batch = 1;
    opts.lr = 0.1;
    opts.decay = 0.01;
    cn_optim_step(&o, be, &opts, 0.1, 1, p, g, 2);
    CHECK_NEAR(o.state[0], 0.9 * 0.5 + 0.1 * 2, 1e-7);
    CHECK_NEAR(p[0], 1 - 0.1 * (0.65 + 0.01 * 1), 1e-7);
    CHECK_NEAR(o.state[1], 0, 0);
    CHECK_NEAR(p[1], -2 - 0.1 * (0 + 0.01 * -2), 1e-7);
    cn_optim_free(&o, be);
    cn_backend_destroy(be);
}

/* He initialisation: weights ~ N(0, 2 / n_in), biases zero. */
static void he_initialisation(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=8\nheight=10\nwidth=10\nclasses=300\n"
                            "[conv]\nfilters=300\nsize=5\n[fc]\noutputs=300\n[softmax]\n");
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 1, th_dev(1), &net));
    cn_rng rng;
    cn_rng_seed(&rng, 2);
    cn_net_init(net, &rng);
    const char *names[] = {"conv1.weight", "fc1.weight", "conv1.bias"};
    const double fan[] = {8 * 25, 300 * 6 * 6, 0};
    for (int t = 0; t < 3; t++) {
        cn_tensor_info ti;
        CHECK_OK(cn_net_tensor(net, cn_net_find_tensor(net, names[t]), &ti));
        float *w = malloc(ti.count * sizeof *w);
        CHECK(w && cn_net_get(net, CN_PARAMS, ti.offset, ti.count, w) == CN_OK);
        double s = 0, s2 = 0;
        for (size_t i = 0; i < ti.count; i++) {
            s += w[i];
            s2 += (double)w[i] * w[i];
        }
        free(w);
        double mean = s / (double)ti.count, var = s2 / (double)ti.count - mean * mean;
        if (fan[t] == 0) {
            CHECK(s2 == 0);
            continue;
        }
        /* 60 000+ draws: the sample variance is within 2% of 2 / n_in. */
        CHECK_NEAR(var / (2.0 / fan[t]), 1.0, 0.02);
        CHECK_NEAR(mean, 0, 4 * sqrt(2.0 / fan[t] / (double)ti.count));
    }
    cn_net_free(net);
    cn_spec_free(spec);
}

static cn_data synthetic(size_t n, uint64_t seed) { return th_bars(n, seed, 8); }

static const char *TINY = "[net]\nchannels=1\nheight=8\nwidth=8\nclasses=2\nmean=0.3\nstd=0.3\n"
                          "[train]\nepochs=2\nbatch=16\nlr=0.05\nmomentum=0.9\ndecay=0.001\n"
                          "lr_policy=step\nlr_step=1\nlr_gamma=0.5\nseed=5\n"
                          "[conv]\nfilters=4\nsize=3\npad=1\n[relu]\n[maxpool]\n"
                          "[fc]\noutputs=8\n[tanh]\n[fc]\noutputs=2\n[softmax]\n";

/* TINY with Adam(W), augmentation and dropout: what a resumed run must
 * repeat exactly besides the shuffle. */
static const char *TINY_AUG = "[net]\nchannels=1\nheight=8\nwidth=8\nclasses=2\n"
                              "[train]\nepochs=2\nbatch=16\nlr=0.01\noptimizer=adamw\n"
                              "decay=0.01\nshift=2\nflip=1\nlr_policy=step\nseed=7\n"
                              "[conv]\nfilters=4\nsize=3\npad=1\n[relu]\n[maxpool]\n"
                              "[fc]\noutputs=8\n[dropout]\nrate=0.3\n[fc]\noutputs=2\n"
                              "[softmax]\n";

/* Batch normalisation after a convolution and after a fully connected layer
 * (running statistics, one with its own momentum) and dropout, with a
 * one-cycle schedule whose warm-up (30% of the 50 steps) is not the default. */
static const char *TINY_BN = "[net]\nchannels=1\nheight=8\nwidth=8\nclasses=2\n"
                             "[train]\nepochs=2\nbatch=16\nlr=0.1\nmomentum=0.9\ndecay=0.001\n"
                             "lr_policy=onecycle\nlr_warmup=0.3\nseed=5\n"
                             "[conv]\nfilters=4\nsize=3\npad=1\n[batchnorm]\n[relu]\n[maxpool]\n"
                             "[fc]\noutputs=8\n[batchnorm]\nmomentum=0.3\n[relu]\n"
                             "[dropout]\nrate=0.2\n[fc]\noutputs=2\n[softmax]\n";

/* The same network with Adam and a cosine schedule. */
static const char *TINY_BN_ADAM = "[net]\nchannels=1\nheight=8\nwidth=8\nclasses=2\n"
                                  "[train]\nepochs=2\nbatch=16\nlr=0.01\noptimizer=adam\n"
                                  "decay=0.001\nlr_policy=cosine\nlr_warmup=0.1\nseed=6\n"
                                  "[conv]\nfilters=4\nsize=3\npad=1\n[batchnorm]\n[relu]\n"
                                  "[maxpool]\n[fc]\noutputs=8\n[batchnorm]\nmomentum=0.3\n"
                                  "[relu]\n[dropout]\nrate=0.2\n[fc]\noutputs=2\n[softmax]\n";

/* Batch normalisation and dropout with the recipe's additions: a moving
 * average of the weights, label smoothing, rotations, scaling, shears and
 * erasing. */
static const char *TINY_EMA = "[net]\nchannels=1\nheight=8\nwidth=8\nclasses=2\n"
                              "[train]\nepochs=2\nbatch=16\nlr=0.1\nmomentum=0.9\ndecay=0.001\n"
                              "lr_policy=onecycle\nlr_warmup=0.3\nseed=5\nema=0.9\n"
                              "label_smoothing=0.1\nrotate=10\nscale=0.1\nshear=5\nerase=0.5\n"
                              "[conv]\nfilters=4\nsize=3\npad=1\n[batchnorm]\n[relu]\n[maxpool]\n"
                              "[fc]\noutputs=8\n[batchnorm]\nmomentum=0.3\n[relu]\n"
                              "[dropout]\nrate=0.2\n[fc]\noutputs=2\n[softmax]\n";

static const char *recipe = NULL; /* the description tiny() builds; TINY if NULL */
static int stop_after = 30;       /* where check_resume stops a run */

static cn_model *tiny(int threads, int epochs)
{
    cn_spec *spec = th_spec(recipe ? recipe : TINY);
    cn_train_opts o;
    cn_spec_train_opts(spec, &o);
    o.epochs = epochs;
    cn_model *m = NULL;
    if (cn_model_create(spec, &o, th_dev(threads), &m) != CN_OK)
        th_fail(__FILE__, __LINE__, "%s", cn_last_error());
    cn_spec_free(spec);
    return m;
}

/* A host copy of the model's other copy of the weights (the trained ones
 * while the net holds the average), or NULL when it keeps no average. */
static float *other_weights(const cn_model *m)
{
    size_t n = m->net->n_params + m->net->n_buffers;
    float *h = m->ema_mem ? malloc((n ? n : 1) * sizeof *h) : NULL;
    if (h)
        m->be->download(m->be, h, m->ema_mem, n * sizeof *h);
    return h;
}

/* x and y bit for bit; under valgrind (tests/valgrind.sh), equal values:
 * there one trained weight of train/ema_follows_its_formula came back from
 * its file as +0 where it was -0 (natively, on every kernel set, the bits are
 * the same; not explained yet). */
static int same_floats(const float *x, const float *y, size_t n)
{
    if (memcmp(x, y, n * sizeof *x) == 0)
        return 1;
    const char *san = getenv("CONVNET_SANITIZER");
    if (!san || strcmp(san, "valgrind") != 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(x[i] == y[i]))
            return 0;
    return 1;
}

/* Both keep no average, or the same one, bit for bit. */
static int same_average(const cn_model *a, const cn_model *b)
{
    if (!a->ema_mem != !b->ema_mem || a->ema_live || b->ema_live)
        return 0;
    if (!a->ema_mem)
        return 1;
    float *x = other_weights(a), *y = other_weights(b);
    size_t n = a->net->n_params + a->net->n_buffers;
    int same = x && y && same_floats(x, y, n);
    free(x);
    free(y);
    return same;
}

/* Parameters, buffers, optimizer state, training state and moving average,
 * bit for bit. */
static int same_model(cn_model *a, cn_model *b)
{
    return th_same(cn_model_net(a), cn_model_net(b), CN_PARAMS) &&
           th_same(cn_model_net(a), cn_model_net(b), CN_BUFFERS) && th_same_optim(a, b) &&
           memcmp(&a->state, &b->state, sizeof a->state) == 0 && same_average(a, b);
}

static void training_learns_and_is_deterministic(void)
{
    cn_data train = synthetic(400, 1), val = synthetic(200, 2);
    cn_model *a = tiny(1, 2), *b = tiny(1, 2), *c = tiny(2, 2);
    CHECK(a && b && c);
    CHECK_OK(cn_model_train(a, &train, &val, NULL));
    CHECK_OK(cn_model_train(b, &train, &val, NULL));
    CHECK_OK(cn_model_train(c, &train, &val, NULL));
    CHECK(same_model(a, b));
    /* Kernels reduce in a fixed order: the thread count does not matter. */
    CHECK(same_model(a, c));
    cn_eval ev;
    CHECK_OK(cn_net_evaluate(cn_model_net(a), &val, &ev));
    CHECK_MSG(ev.accuracy > 0.97, "validation accuracy %.3f", ev.accuracy);
    size_t total = 0;
    for (size_t i = 0; i < 4; i++)
        total += ev.confusion[i];
    CHECK(total == 200 && ev.n == 200);
    cn_eval_free(&ev);
    CHECK(a->state.epoch == 2 && a->state.step == 0 && a->state.global_step == 2 * (400 / 16));
    cn_model_free(a);
    cn_model_free(b);
    cn_model_free(c);
    cn_data_free(&train);
    cn_data_free(&val);
}

/* Stops after `after` batches through the stop flag. */
typedef struct stopper {
    volatile int flag;
    int after, seen;
} stopper;

static cn_status count_batches(void *user, const cn_progress *p)
{
    (void)p;
    stopper *s = user;
    if (++s->seen == s->after)
        s->flag = 1;
    return CN_OK;
}

/* Training 2 epochs equals training 1, saving, loading and training the
 * second, bit for bit; likewise for a stop in the middle of an epoch.  (A
 * one-cycle or cosine schedule spans the whole run: its first epoch is
 * stopped after its last batch, not trained as a run of one epoch.) */
static void check_resume(void)
{
    cn_data train = synthetic(400, 1);
    char path[600];
    snprintf(path, sizeof path, "%s/resume.safetensors", th_tmpdir());
    cn_model *full = tiny(2, 2);
    CHECK(full);
    CHECK_OK(cn_model_train(full, &train, NULL, NULL));

    cn_lr_policy policy = cn_model_opts(full)->policy;
    int spans = policy == CN_LR_ONECYCLE || policy == CN_LR_COSINE;
    cn_model *half = tiny(2, spans ? 2 : 1), *rest;
    CHECK(half);
    stopper end = {0, 25, 0};
    cn_train_hooks at_end = {&end, count_batches, NULL, &end.flag};
    if (spans)
        CHECK_ERR(cn_model_train(half, &train, NULL, &at_end), CN_ERR_STOPPED);
    else
        CHECK_OK(cn_model_train(half, &train, NULL, NULL));
    CHECK_OK(cn_model_save(half, path));
    CHECK_OK(cn_model_load(path, th_dev(2), &rest));
    CHECK(cn_model_state(rest)->epoch == 1 && cn_model_state(rest)->step == 0);
    cn_model_opts(rest)->epochs = 2;
    CHECK_OK(cn_model_train(rest, &train, NULL, NULL));
    CHECK(same_model(full, rest));
    cn_model_free(half);
    cn_model_free(rest);

    /* Stopped after stop_after batches (30: epoch 2, batch 5), saved,
     * resumed. */
    cn_model *stopped = tiny(2, 2);
    stopper s = {0, stop_after, 0};
    cn_train_hooks hooks = {&s, count_batches, NULL, &s.flag};
    CHECK_ERR(cn_model_train(stopped, &train, NULL, &hooks), CN_ERR_STOPPED);
    CHECK(cn_model_state(stopped)->epoch == stop_after / 25 &&
          cn_model_state(stopped)->step == (uint64_t)stop_after % 25);
    /* What the stopped run holds is not yet the end: the comparison below
     * has something to tell apart. */
    CHECK(!same_model(stopped, full));
    if (cn_net_num_buffers(cn_model_net(full)) > 0)
        CHECK(!th_same(cn_model_net(stopped), cn_model_net(full), CN_BUFFERS));
    CHECK_OK(cn_model_save(stopped, path));
    CHECK_OK(cn_model_load(path, th_dev(1), &rest));
    CHECK_OK(cn_model_train(rest, &train, NULL, NULL));
    CHECK(same_model(full, rest));
    cn_model_free(stopped);
    cn_model_free(rest);
    cn_model_free(full);
    cn_data_free(&train);
}

static void resume_is_exact(void) { check_resume(); }

/* With AdamW, shifts, flips and dropout too. */
static void resume_is_exact_with_adam_and_augmentation(void)
{
    recipe = TINY_AUG;
    check_resume();
    recipe = NULL;
}

/* Batch normalisation's running statistics, dropout and a one-cycle
 * schedule: stopped in the warm-up, and after it. */
static void resume_is_exact_with_batchnorm_and_onecycle(void)
{
    recipe = TINY_BN;
    stop_after = 9;
    check_resume();
    stop_after = 30;
    check_resume();
    recipe = NULL;
}

/* A moving average of the weights (kept in the file beside the trained
 * weights), label smoothing and every augmentation, with batch
 * normalisation and dropout. */
static void resume_is_exact_with_ema_smoothing_and_augmentation(void)
{
    recipe = TINY_EMA;
    stop_after = 37;
    check_resume();
    stop_after = 30;
    recipe = NULL;
}

/* The average and the trained weights change places a part at a time
 * (CN_EMA_SWAP_FLOATS floats) through room the model keeps for that, not a
 * second copy: here 73 702 parameters, two parts; each swap gives
 * the other copy back whole, bit for bit, and swapping twice changes
 * nothing. */
static void ema_swaps_in_parts(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=8\nwidth=8\nclasses=2\n"
                            "[train]\nbatch=4\nlr=0.1\nmomentum=0.9\nseed=3\nema=0.9\n"
                            "[fc]\noutputs=1100\n[relu]\n[fc]\noutputs=2\n[softmax]\n");
    CHECK(spec);
    cn_model *m = NULL;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(1), &m));
    cn_net *net = cn_model_net(m);
    size_t np = net->n_params;
    CHECK(np > CN_EMA_SWAP_FLOATS && np < 2 * CN_EMA_SWAP_FLOATS);
    cn_data d = th_bars(8, 7, 8);
    float x[8 * 64];
    cn_net_prepare(net, d.pixels, 8, x);
    double loss;
    for (int t = 0; t < 3; t++)
        CHECK_OK(cn_model_step(m, x + (t % 2) * 4 * 64, d.labels + (t % 2) * 4, 4, 0.1, &loss));
    CHECK(m->ema_mem && !m->ema_live);
    float *avg = th_block(net, CN_PARAMS), *w = other_weights(m);
    CHECK(avg && w && memcmp(avg, w, np * sizeof *w) != 0);
    CHECK_OK(cn_model_ema_use(m, 1)); /* the net: the trained weights */
    float *now = th_block(net, CN_PARAMS), *other = other_weights(m);
    CHECK(m->ema_live && now && other);
    CHECK_MSG(memcmp(now, w, np * sizeof *w) == 0, "the trained weights did not come back whole");
    CHECK_MSG(memcmp(other, avg, np * sizeof *w) == 0, "the average did not go aside whole");
    free(now);
    free(other);
    CHECK_OK(cn_model_ema_use(m, 0));
    now = th_block(net, CN_PARAMS);
    CHECK(now && !m->ema_live && memcmp(now, avg, np * sizeof *now) == 0);
    free(now);
    free(avg);
    free(w);
    cn_data_free(&d);
    cn_model_free(m);
    cn_spec_free(spec);
}

/* ema = 0.9: after each step t (from 0) the network holds avg = d avg +
 * (1 - d) w, d = min(0.9, (1 + t) / (10 + t)), of the trained weights w,
 * the batch-normalisation statistics too, computed here in float as the
 * backend does; the model file keeps the average under the tensors' names
 * and the trained weights as optim.<name>.raw; loading gives both back;
 * an evaluation during training sees the average. */
static void ema_follows_its_formula(void)
{
    cn_data d = th_bars(32, 5, 8);
    recipe = TINY_EMA;
    cn_model *m = tiny(1, 1);
    recipe = NULL;
    CHECK(m);
    cn_net *net = cn_model_net(m);
    size_t np = net->n_params, n = np + net->n_buffers;
    float *avg = malloc(n * sizeof *avg), *x = malloc(32 * 64 * sizeof *x);
    CHECK(avg && x);
    net->be->download(net->be, avg, net->params, np * sizeof *avg);
    net->be->download(net->be, avg + np, net->buffers, net->n_buffers * sizeof *avg);
    cn_net_prepare(net, d.pixels, 32, x);
    for (uint64_t t = 0; t < 6; t++) {
        double loss;
        CHECK_OK(cn_model_step(m, x + (t % 2) * 16 * 64, d.labels + (t % 2) * 16, 16, 0.1, &loss));
        CHECK(m->ema_mem && !m->ema_live);
        float *w = other_weights(m); /* the trained weights, beside the average */
        CHECK(w);
        double warm = (1.0 + (double)t) / (10.0 + (double)t);
        float keep = (float)(warm < 0.9 ? warm : 0.9), take = 1.0f - keep;
        for (size_t i = 0; i < n; i++) {
            float a = keep * avg[i];
            float b = take * w[i];
            avg[i] = a + b;
        }
        free(w);
        float *p = th_block(net, CN_PARAMS), *b = th_block(net, CN_BUFFERS);
        CHECK(p && b);
        int same = memcmp(p, avg, np * sizeof *p) == 0 &&
                   memcmp(b, avg + np, net->n_buffers * sizeof *b) == 0;
        free(p);
        free(b);
        CHECK_MSG(same, "step %llu: the network's weights are not the average",
                  (unsigned long long)t);
    }
    /* The trained weights have moved away from the average. */
    float *w = other_weights(m);
    CHECK(w && memcmp(w, avg, n * sizeof *w) != 0);
    /* The file: the average under the names, the trained weights as raw. */
    char *path = th_path("ema.safetensors");
    CHECK_OK(cn_model_save(m, path));
    cn_model *back;
    CHECK_OK(cn_model_load(path, th_dev(1), &back));
    CHECK(same_model(m, back));
    cn_st_file f;
    CHECK_OK(cn_st_open(path, &f));
    int has = cn_st_find(&f, "conv1.weight") && cn_st_find(&f, "optim.conv1.weight.raw") &&
              cn_st_find(&f, "optim.batchnorm1.running_var.raw") &&
              cn_st_find(&f, "optim.conv1.weight.momentum");
    cn_st_close(&f);
    CHECK(has);
    /* An evaluation from a training hook sees the average. */
    cn_eval want, got;
    CHECK_OK(cn_net_evaluate(net, &d, &want));
    CHECK_OK(cn_model_ema_use(m, 1));
    CHECK(m->ema_live && !th_same(net, cn_model_net(back), CN_PARAMS));
    CHECK_OK(cn_model_evaluate(m, &d, &got));
    CHECK(got.loss == want.loss && got.accuracy == want.accuracy);
    CHECK_OK(cn_model_ema_use(m, 0));
    CHECK(same_model(m, back));
    cn_eval_free(&want);
    cn_eval_free(&got);
    /* Turned off on resume: training (which starts with this call) goes on
     * from the trained weights, and the average is dropped. */
    cn_model_opts(back)->ema = 0;
    CHECK_OK(cn_model_ema_use(back, 1));
    float *p = th_block(cn_model_net(back), CN_PARAMS);
    CHECK(p && !back->ema_mem && same_floats(p, w, np));
    free(p);
    free(w);
    cn_model_free(back);
    /* A file whose recipe asks for an average but holds no trained weights
     * (written before it kept one): they are its weights. */
    cn_model *plain = tiny(1, 1);
    CHECK(plain);
    cn_model_opts(plain)->ema = 0.9;
    CHECK(!plain->ema_mem);
    CHECK_OK(cn_model_save(plain, path));
    CHECK_OK(cn_model_load(path, th_dev(1), &back));
    float *o = other_weights(back), *q = th_block(cn_model_net(back), CN_PARAMS);
    CHECK(o && q && memcmp(o, q, cn_model_net(back)->n_params * sizeof *o) == 0);
    free(o);
    free(q);
    cn_model_free(back);
    cn_model_free(plain);
    free(avg);
    free(x);
    cn_model_free(m);
    cn_data_free(&d);
}

/* Adam's moments and bias correction, with batch normalisation and a
 * cosine schedule. */
static void resume_is_exact_with_batchnorm_adam_and_cosine(void)
{
    recipe = TINY_BN_ADAM;
    stop_after = 37;
    check_resume();
    stop_after = 30;
    recipe = NULL;
}

/* Adam and AdamW against their formulas in double precision, three steps. */
static void adam_follows_its_formula(void)
{
    for (int w = 0; w < 2; w++) {
        cn_backend *be;
        const cn_device cpu = {"cpu", 0, 1};
        CHECK_OK(cn_backend_create(&cpu, NULL, &be));
        cn_optim o;
        CHECK_OK(cn_optim_init(&o, w ? CN_OPT_ADAMW : CN_OPT_ADAM, be, 2));
        CHECK(o.n_slots == 2 && !strcmp(o.slot_names[1], "exp_avg_sq"));
        cn_train_opts opts;
        cn_train_opts_defaults(&opts);
        opts.epochs = opts.batch = 1;
        opts.lr = 0.1;
        opts.momentum = 0.8;
        opts.decay = 0.1;
        opts.optimizer = w ? CN_OPT_ADAMW : CN_OPT_ADAM;
        opts.beta2 = 0.95;
        opts.eps = 1e-3;
        float p[2] = {1.0f, -2.0f};
        double q[2] = {1.0, -2.0}, m[2] = {0}, v[2] = {0};
        const float g[3][2] = {{0.5f, -1.0f}, {0.25f, 0.0f}, {-1.0f, 2.0f}};
        for (int t = 1; t <= 3; t++) {
            cn_optim_step(&o, be, &opts, 0.1, (uint64_t)t, p, g[t - 1], 2);
            for (int i = 0; i < 2; i++) {
                double gi = g[t - 1][i] + (w ? 0.0 : 0.1 * q[i]);
                m[i] = 0.8 * m[i] + 0.2 * gi;
                v[i] = 0.95 * v[i] + 0.05 * gi * gi;
                double mh = m[i] / (1 - pow(0.8, t)), vh = v[i] / (1 - pow(0.95, t));
                q[i] -= 0.1 * (mh / (sqrt(vh) + 1e-3) + (w ? 0.1 * q[i] : 0.0));
                CHECK_NEAR(p[i], q[i], 1e-6);
                CHECK_NEAR(o.state[2 + i], v[i], 1e-7);
            }
        }
        cn_optim_free(&o, be);
        cn_backend_destroy(be);
    }
}

/* normalise = channel: each channel's mean and std measured on the training
 * set when training starts, saved, and used again after loading. */
static void channel_normalisation(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=2\nheight=2\nwidth=2\nclasses=2\nnormalise=channel\n"
                            "[train]\nepochs=1\nbatch=2\n[fc]\noutputs=2\n[softmax]\n");
    CHECK(spec);
    cn_model *m;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(1), &m));
    cn_spec_free(spec);
    /* channel 0: 0 and 255 in equal numbers; channel 1: all 51 */
    uint8_t pix[4 * 8];
    int32_t labels[4] = {0, 1, 0, 1};
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < 4; i++) {
            pix[s * 8 + i] = (uint8_t)((s + i) % 2 ? 255 : 0);
            pix[s * 8 + 4 + i] = 51;
        }
    cn_data d = {.n = 4, .shape = {2, 2, 2}, .classes = 2, .pixels = pix, .labels = labels};
    CHECK_OK(cn_model_train(m, &d, NULL, NULL));
    float x[8];
    cn_net_prepare(cn_model_net(m), pix, 1, x);
    CHECK_NEAR(x[0], (0 - 0.5) / 0.5, 1e-6); /* mean 1/2, std 1/2 */
    CHECK_NEAR(x[1], (1 - 0.5) / 0.5, 1e-6);
    CHECK_NEAR(x[4], 0.0, 1e-6); /* a constant channel: std 1 */
    char path[600];
    snprintf(path, sizeof path, "%s/norm.safetensors", th_tmpdir());
    CHECK_OK(cn_model_save(m, path));
    cn_model *l;
    CHECK_OK(cn_model_load(path, th_dev(1), &l));
    float y[8];
    cn_net_prepare(cn_model_net(l), pix, 1, y);
    CHECK(memcmp(x, y, sizeof x) == 0);
    cn_model_free(l);
    cn_model_free(m);
}

/* Shifts move the picture, zeros come in; flips mirror it. */
static void augmentation_moves_pixels(void)
{
    cn_shape s = {2, 5, 6};
    uint8_t pix[60], orig[60], tmp[60];
    for (int i = 0; i < 60; i++)
        orig[i] = (uint8_t)(i + 1);
    int seen_shift = 0, seen_flip = 0;
    const cn_aug moves = {2, 1, 0, 0, 0, 0, 0}, none = {0, 0, 0, 0, 0, 0, 0};
    for (uint64_t seed = 0; seed < 40; seed++) {
        memcpy(pix, orig, 60);
        /* Sample 3 of a batch: its own generator, seeded by the step's seed
         * and its place in the global batch. */
        cn_rng copy;
        cn_rng_seed(&copy, cn_step_seed(seed, 3));
        cn_augment(pix, 1, s, &moves, seed, 3, tmp);
        /* the same draws as cn_augment */
        long dy = (long)cn_rng_below(&copy, 5) - 2, dx = (long)cn_rng_below(&copy, 5) - 2;
        int mirror = (int)(cn_rng_next(&copy) >> 63);
        seen_shift |= dy || dx;
        seen_flip |= mirror;
        for (long c = 0; c < 2; c++)
            for (long y = 0; y < 5; y++)
                for (long x = 0; x < 6; x++) {
                    long sy = y - dy, sx = mirror ? 5 - (x - dx) : x - dx;
                    int want =
                        sy >= 0 && sy < 5 && sx >= 0 && sx < 6 ? orig[c * 30 + sy * 6 + sx] : 0;
                    CHECK_MSG(pix[c * 30 + y * 6 + x] == want, "seed %llu: (%ld, %ld, %ld)",
                              (unsigned long long)seed, c, y, x);
                }
    }
    CHECK(seen_shift && seen_flip);
    memcpy(pix, orig, 60); /* nothing asked: nothing changes */
    cn_augment(pix, 1, s, &none, 1, 0, tmp);
    CHECK(memcmp(pix, orig, 60) == 0);
}

/* Label smoothing eps: a training step's loss is the cross-entropy against
 * (1 - eps) onehot + eps / classes (computed here from the network's
 * probabilities), its update differs from the plain loss's, and evaluation
 * afterwards reports the plain negative log-likelihood. */
static void label_smoothing_trains_only(void)
{
    cn_data d = th_bars(16, 4, 6);
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=6\nwidth=6\nclasses=3\n"
                            "[train]\nlabel_smoothing=0.2\nbatch=16\n"
                            "[fc]\noutputs=8\n[tanh]\n[fc]\noutputs=3\n[softmax]\n");
    CHECK(spec);
    cn_model *m, *plain;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(1), &m));
    cn_train_opts o = *cn_model_opts(m);
    o.label_smoothing = 0;
    CHECK_OK(cn_model_create(spec, &o, th_dev(1), &plain));
    cn_spec_free(spec);
    cn_net *net = cn_model_net(m);
    float x[16 * 36], y[16 * 3];
    cn_net_prepare(net, d.pixels, 16, x);
    CHECK_OK(cn_net_forward(net, x, 16, 1));
    CHECK_OK(cn_net_get_output(net, y));
    double smoothed = 0, nll = 0;
    for (size_t s = 0; s < 16; s++)
        for (size_t j = 0; j < 3; j++) {
            double hot = j == (size_t)d.labels[s], q = 0.8 * hot + 0.2 / 3;
            smoothed -= q * log((double)y[s * 3 + j]) / 16;
            nll -= hot * log((double)y[s * 3 + j]) / 16;
        }
    double loss, loss_plain;
    CHECK_OK(cn_model_step(m, x, d.labels, 16, 0.5, &loss));
    CHECK_OK(cn_model_step(plain, x, d.labels, 16, 0.5, &loss_plain));
    CHECK_NEAR(loss, smoothed, 1e-5 * smoothed);
    CHECK_NEAR(loss_plain, nll, 1e-5 * nll);
    CHECK(fabs(smoothed - nll) > 1e-3);
    CHECK(!th_same(net, cn_model_net(plain), CN_PARAMS)); /* another gradient, another step */
    /* Evaluation after it: the plain loss of the new weights. */
    CHECK_OK(cn_net_forward(net, x, 16, 0));
    CHECK_OK(cn_net_get_output(net, y));
    nll = 0;
    for (size_t s = 0; s < 16; s++)
        nll -= log((double)y[s * 3 + (size_t)d.labels[s]]) / 16;
    cn_eval ev;
    CHECK_OK(cn_net_evaluate(net, &d, &ev));
    CHECK_NEAR(ev.loss, nll, 1e-5 * nll);
    cn_eval_free(&ev);
    cn_model_free(m);
    cn_model_free(plain);
    cn_data_free(&d);
}

/* lr * decay = 50 > 2: each step multiplies the weights by about -49, so they
 * overflow within a few dozen steps whatever the gradients do. */
static void divergence_is_reported(void)
{
    cn_data train = synthetic(400, 1);
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=8\nwidth=8\nclasses=2\n"
                            "[train]\nlr=100\ndecay=0.5\nmomentum=0\nbatch=16\nepochs=3\n"
                            "[fc]\noutputs=16\n[relu]\n[fc]\noutputs=2\n[softmax]\n");
    CHECK(spec);
    cn_model *m;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(1), &m));
    cn_spec_free(spec);
    cn_status st = cn_model_train(m, &train, NULL, NULL);
    CHECK_MSG(st == CN_ERR_NUMERIC, "got %s", cn_status_name(st));
    CHECK(th_contains(cn_last_error(), "--lr"));
    cn_model_free(m);
    cn_data_free(&train);
}

static void refuses_mismatched_data(void)
{
    cn_data train = synthetic(10, 1);
    cn_model *m = tiny(1, 1);
    CHECK(m);
    CHECK_ERR(cn_model_train(m, &train, NULL, NULL), CN_ERR_SHAPE); /* 10 < one batch */
    CHECK(th_contains(cn_last_error(), "fewer than one batch"));
    cn_data_free(&train);
    train = synthetic(100, 1);
    train.shape = (cn_shape){1, 4, 16};
    CHECK_ERR(cn_model_train(m, &train, NULL, NULL), CN_ERR_SHAPE);
    /* The messages point at the description's [net] and its 'classes'. */
    CHECK(th_contains(cn_last_error(), "test.cfg:1: [net] takes images of 1x8x8") &&
          th_contains(cn_last_error(), "training images are 1x4x16"));
    train.shape = (cn_shape){1, 8, 8};
    train.classes = 3;
    CHECK_ERR(cn_model_train(m, &train, NULL, NULL), CN_ERR_SHAPE);
    CHECK(th_contains(cn_last_error(), "test.cfg:5: classes = 2, but the training data has 3"));
    cn_model_free(m);
    cn_data_free(&train);
}

/* Real MNIST: 20 000 training images, 2 epochs of a small network (8 and 16
 * filters), then the 10 000 test images must be at least 96.5% right.  It
 * reaches 97.35% here with AVX-512 kernels (PyTorch with the same network,
 * initialisation and recipe: 96.9% on 12 000 images, as convnet); other
 * kernel sets round differently and land within a few tenths. */
static void mnist_end_to_end(void)
{
    cn_data all, test;
    CHECK_OK(cn_data_load_mnist(th_data_dir(), "train", &all));
    CHECK_OK(cn_data_load_mnist(th_data_dir(), "t10k", &test));
    CHECK(all.n == 60000 && test.n == 10000 && all.classes == 10);
    cn_data train = cn_data_slice(&all, 0, 20000);
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=28\nwidth=28\nclasses=10\n"
                            "mean=0.1307\nstd=0.3081\n"
                            "[train]\nepochs=2\nbatch=32\nlr=0.05\nmomentum=0.9\nseed=1\n"
                            "[conv]\nfilters=8\nsize=5\n[relu]\n[maxpool]\n"
                            "[conv]\nfilters=16\nsize=5\n[relu]\n[maxpool]\n"
                            "[fc]\noutputs=10\n[softmax]\n");
    CHECK(spec);
    cn_model *m;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(0), &m));
    CHECK_OK(cn_model_train(m, &train, NULL, NULL));
    cn_eval ev;
    CHECK_OK(cn_net_evaluate(cn_model_net(m), &test, &ev));
    printf("    MNIST end to end: test accuracy %.2f%%, loss %.4f\n", 100 * ev.accuracy, ev.loss);
    CHECK_MSG(ev.accuracy >= 0.965, "test accuracy %.4f", ev.accuracy);
    cn_eval_free(&ev);
    cn_model_free(m);
    cn_spec_free(spec);
    cn_data_free(&all);
    cn_data_free(&test);
}

/* Every layer kind and convolution path (direct 5x5 "same", strided, 1x1)
 * on 16x16 images, for the kernel-set comparison. */
static const char *ALL_PATHS =
    "[net]\nchannels=1\nheight=16\nwidth=16\nclasses=2\nmean=0.3\nstd=0.3\n"
    "[train]\nepochs=2\nbatch=16\nlr=0.05\nmomentum=0.9\ndecay=0.001\nseed=7\n"
    "[conv]\nfilters=8\nsize=5\npad=2\n[relu]\n"
    "[conv]\nfilters=12\nsize=3\nstride=2\npad=1\n[batchnorm]\n[sigmoid]\n[maxpool]\n"
    "[conv]\nfilters=6\nsize=1\n[tanh]\n[fc]\noutputs=20\n[batchnorm]\n[relu]\n"
    "[fc]\noutputs=2\n[softmax]\n";

/* ||a - b|| / ||b|| */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return sqrt(d / (r > 0 ? r : 1));
}

/* What a processor without AVX-512 computes: the AVX2 and portable kernel
 * sets, forced through CONVNET_ISA (each test runs in its own process), give
 * the AVX-512 set's gradients to float rounding, and train to the same
 * model within a small tolerance (rounding differences grow over the steps). */
static void kernel_sets_agree(void)
{
    if (strcmp(th_dev(1)->backend, "cuda") == 0) {
        th_skip("the CPU's kernel sets; the GPU has kernels of its own (tests/test_cuda.c)");
        return;
    }
    static const char *const isas[] = {"avx512", "avx2", "portable"};
    cn_data train = th_bars(320, 1, 16), val = th_bars(160, 2, 16);
    cn_spec *spec = th_spec(ALL_PATHS);
    CHECK(spec);
    float *ref_g = NULL, *ref_p = NULL, *x = malloc(16 * 256 * sizeof(float));
    double ref_loss = 0;
    const char *ref = NULL;
    size_t np = 0;
    for (int q = 0; q < 3; q++) {
        setenv("CONVNET_ISA", isas[q], 1);
        cn_model *m;
        if (cn_model_create(spec, NULL, th_dev(2), &m) != CN_OK) {
            CHECK_MSG(q == 0, "%s: %s", isas[q], cn_last_error()); /* avx2 and portable: always */
            continue;
        }
        cn_net *net = cn_model_net(m);
        CHECK(strcmp(cn_net_isa(net), isas[q]) == 0);
        np = cn_net_num_params(net);
        /* One training pass from the initial weights. */
        cn_net_prepare(net, train.pixels, 16, x);
        cn_net_zero_grads(net);
        CHECK_OK(cn_net_forward(net, x, 16, 1));
        CHECK_OK(cn_net_backward(net, train.labels, 16, NULL));
        float *g = th_block(net, CN_GRADS);
        CHECK(g);
        CHECK_OK(cn_model_train(m, &train, NULL, NULL));
        cn_eval ev;
        CHECK_OK(cn_net_evaluate(net, &val, &ev));
        CHECK_MSG(ev.accuracy > 0.95, "%s: validation accuracy %.3f", isas[q], ev.accuracy);
        if (!ref) {
            ref = isas[q];
            ref_g = g;
            ref_p = th_block(net, CN_PARAMS);
            ref_loss = ev.loss;
        } else {
            float *p = th_block(net, CN_PARAMS);
            CHECK(p);
            double dg = rel_diff(g, ref_g, np), dp = rel_diff(p, ref_p, np);
            free(p);
            printf("    %s vs %s: gradients %.1e, trained weights %.1e, loss %.5f vs %.5f\n",
                   isas[q], ref, dg, dp, ev.loss, ref_loss);
            CHECK_MSG(dg < 1e-5, "%s vs %s: gradients differ by %.2e", isas[q], ref, dg);
            CHECK_MSG(dp < 1e-5, "%s vs %s: trained weights differ by %.2e", isas[q], ref, dp);
            CHECK_NEAR(ev.loss, ref_loss, 0.01 * ref_loss + 1e-4);
            free(g);
        }
        cn_eval_free(&ev);
        cn_model_free(m);
    }
    unsetenv("CONVNET_ISA");
    free(ref_g);
    free(ref_p);
    free(x);
    cn_spec_free(spec);
    cn_data_free(&train);
    cn_data_free(&val);
}

/* The mean cross-entropy of a one-layer net (z = W x + b, W k x d) on n
 * samples against mixup's targets: w[s] of (1 - eps) onehot(a[s]) + eps / k
 * and 1 - w[s] of the same for b[s], in doubles. */
static double mixed_loss(const double *p, const float *x, size_t n, size_t d, size_t k,
                         const int32_t *a, const int32_t *b, const float *w, double eps)
{
    double total = 0.0;
    for (size_t s = 0; s < n; s++) {
        double z[8], top = -INFINITY, sum = 0.0;
        for (size_t c = 0; c < k; c++) {
            z[c] = p[k * d + c];
            for (size_t j = 0; j < d; j++)
                z[c] += p[c * d + j] * x[s * d + j];
            top = z[c] > top ? z[c] : top;
        }
        for (size_t c = 0; c < k; c++)
            sum += exp(z[c] - top);
        double lse = top + log(sum);
        for (size_t c = 0; c < k; c++) {
            double q = eps / (double)k + (1.0 - eps) * (w[s] * (c == (size_t)a[s]) +
                                                        (1.0 - w[s]) * (c == (size_t)b[s]));
            total += q * (lse - z[c]);
        }
    }
    return total / (double)n;
}

/* Mixup's target through the loss (src/step.c): a training step against w
 * of each sample's label and 1 - w of another's, with label smoothing on
 * top, reports the mean cross-entropy against that target, and leaves the
 * gradients of that loss, checked by central differences in doubles.
 * Shares of 0 and 1 and a sample mixed with its own label included. */
static void mixup_loss_and_gradient(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=1\nwidth=3\nclasses=4\n"
                            "[train]\nbatch=5\nmomentum=0\ndecay=0\nlabel_smoothing=0.1\n"
                            "[fc]\noutputs=4\n[softmax]\n");
    CHECK(spec);
    cn_model *m;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(1), &m));
    enum { N = 5, D = 3, K = 4, P = K * D + K };
    cn_tensor_info wt, bt; /* where the weights and the biases are in the blocks */
    cn_net *net = cn_model_net(m);
    CHECK_OK(cn_net_tensor(net, cn_net_find_tensor(net, "fc1.weight"), &wt));
    CHECK_OK(cn_net_tensor(net, cn_net_find_tensor(net, "fc1.bias"), &bt));
    cn_rng rng;
    cn_rng_seed(&rng, 8);
    float x[N * D], w0[P];
    th_fill_normal(x, N * D, &rng);
    th_fill_normal(w0, P, &rng);
    CHECK_OK(cn_net_set(net, CN_PARAMS, wt.offset, K * D, w0));
    CHECK_OK(cn_net_set(net, CN_PARAMS, bt.offset, K, w0 + K * D));
    const int32_t a[N] = {0, 1, 2, 3, 1}, b[N] = {2, 1, 0, 0, 3};
    const float keep[N] = {0.3f, 0.8f, 1.0f, 0.5f, 0.0f};
    m->mix_other = b;
    m->mix_keep = keep;
    m->mix_host = malloc(N * K * sizeof *m->mix_host);
    m->mix_logits = malloc(N * K * sizeof *m->mix_logits);
    m->mix_delta = m->be->alloc(m->be, N * K * sizeof *m->mix_delta);
    CHECK(m->mix_host && m->mix_logits && m->mix_delta);
    double loss;
    CHECK_OK(cn_model_step(m, x, a, N, 0.0, &loss)); /* lr 0: the weights stay */
    double p[P];
    for (size_t i = 0; i < P; i++)
        p[i] = w0[i];
    double want = mixed_loss(p, x, N, D, K, a, b, keep, 0.1);
    CHECK_MSG(fabs(loss - want) < 1e-5 * want, "loss %.7f, expected %.7f", loss, want);
    float *g = th_block(cn_model_net(m), CN_GRADS);
    CHECK(g);
    double worst = 0.0;
    for (size_t i = 0; g && i < P; i++) {
        const double h = 1e-5;
        p[i] = w0[i] + h;
        double up = mixed_loss(p, x, N, D, K, a, b, keep, 0.1);
        p[i] = w0[i] - h;
        double down = mixed_loss(p, x, N, D, K, a, b, keep, 0.1);
        p[i] = w0[i];
        float got = i < K * D ? g[wt.offset + i] : g[bt.offset + i - K * D];
        double err = fabs(got - (up - down) / (2 * h));
        worst = err > worst ? err : worst;
    }
    CHECK_MSG(worst < 1e-5, "gradient off by %.2g from central differences", worst);
    printf("    mixup: loss %.6f (%.6f by hand), gradient within %.1e\n", loss, want, worst);
    /* Without the mixed targets the same step trains against the labels:
     * another loss. */
    free(m->mix_host);
    free(m->mix_logits);
    m->be->free(m->be, m->mix_delta);
    m->mix_other = NULL;
    m->mix_keep = NULL;
    m->mix_host = m->mix_logits = m->mix_delta = NULL;
    double plain;
    CHECK_OK(cn_model_step(m, x, a, N, 0.0, &plain));
    const float ones[N] = {1, 1, 1, 1, 1};
    double want_plain = mixed_loss(p, x, N, D, K, a, a, ones, 0.1);
    CHECK_MSG(fabs(plain - want_plain) < 1e-5 * want_plain && fabs(plain - want) > 1e-3,
              "loss %.7f, expected %.7f", plain, want_plain);
    free(g);
    cn_model_free(m);
    cn_spec_free(spec);
}

const th_test th_train[] = {
    {"train/sgd_follows_the_lecture", sgd_follows_the_lecture},
    {"train/he_initialisation", he_initialisation},
    {"train/mixup_loss_and_gradient", mixup_loss_and_gradient},
    {"train/learns_and_is_deterministic", training_learns_and_is_deterministic},
    {"train/resume_is_exact", resume_is_exact},
    {"train/resume_is_exact_with_adam_and_augmentation",
     resume_is_exact_with_adam_and_augmentation},
    {"train/resume_is_exact_with_batchnorm_and_onecycle",
     resume_is_exact_with_batchnorm_and_onecycle},
    {"train/resume_is_exact_with_batchnorm_adam_and_cosine",
     resume_is_exact_with_batchnorm_adam_and_cosine},
    {"train/resume_is_exact_with_ema_smoothing_and_augmentation",
     resume_is_exact_with_ema_smoothing_and_augmentation},
    {"train/ema_follows_its_formula", ema_follows_its_formula},
    {"train/ema_swaps_in_parts", ema_swaps_in_parts},
    {"train/adam_follows_its_formula", adam_follows_its_formula},
    {"train/augmentation_moves_pixels", augmentation_moves_pixels},
    {"train/channel_normalisation", channel_normalisation},
    {"train/label_smoothing_trains_only", label_smoothing_trains_only},
    {"train/divergence_is_reported", divergence_is_reported},
    {"train/refuses_mismatched_data", refuses_mismatched_data},
    {"train/kernel_sets_agree", kernel_sets_agree},
    {"train/mnist_end_to_end", mnist_end_to_end},
    {NULL, NULL},
};
