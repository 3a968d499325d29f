/* test_infer.c - forward-only networks (cn_model_reserve_inference): their
 * outputs share one block by when they are read, so each result must be
 * the full layout's bit for bit (an output placed over one still to be read
 * would change it); the block is what the liveness says (LeNet by hand);
 * what they do not keep is refused with a reason; training afterwards
 * rebuilds the network and trains as if nothing had happened. */
#include "backend/cpu.h"
#include "harness.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Networks whose outputs live for different spans: a chain, in-place
 * layers over fused ones, batch normalisation, a shortcut over two layers
 * and one over an in-place relu (its reader comes much later), dropout. */
static const char *NETS[] = {
    "[net]\nchannels=1\nheight=12\nwidth=12\nclasses=4\n[train]\nbatch=8\n"
    "[conv]\nfilters=6\nsize=3\n[relu]\n[maxpool]\n[conv]\nfilters=5\nsize=3\n[tanh]\n"
    "[fc]\noutputs=9\n[sigmoid]\n[fc]\noutputs=4\n[softmax]\n",
    "[net]\nchannels=3\nheight=10\nwidth=10\nclasses=5\n[train]\nbatch=8\n"
    "[conv]\nname=c1\nfilters=8\nsize=3\npad=1\n[batchnorm]\n[relu]\nname=r1\n[conv]\nfilters=8\n"
    "size=3\npad=1\n[batchnorm]\n[relu]\n[conv]\nfilters=8\nsize=3\npad=1\n[batchnorm]\n"
    "[shortcut]\nfrom=r1\n[relu]\n[shortcut]\nfrom=c1\n[maxpool]\n[conv]\nfilters=7\nsize=3\n"
    "[avgpool]\nsize=3\n[fc]\noutputs=11\n[dropout]\nrate=0.5\n[fc]\noutputs=5\n[softmax]\n",
    "[net]\nchannels=1\nheight=6\nwidth=6\nclasses=3\n[train]\nbatch=4\n"
    "[fc]\noutputs=20\n[relu]\n[fc]\noutputs=3\n[softmax]\n",
};

static float *random_input(const cn_net *net, size_t n, uint64_t seed)
{
    cn_shape s = cn_net_input_shape(net);
    float *x = malloc(n * s.c * s.h * s.w * sizeof *x);
    cn_rng rng;
    cn_rng_seed(&rng, seed);
    if (x)
        th_fill_normal(x, n * s.c * s.h * s.w, &rng);
    return x;
}

/* The probabilities and logits of a forward pass over n samples of x. */
static int forward(cn_net *net, const float *x, size_t n, float *probs, float *logits)
{
    size_t L = cn_net_num_layers(net);
    return cn_net_forward(net, x, n, 0) == CN_OK &&
           cn_net_get_layer_output(net, L - 1, 0, n, probs) == CN_OK &&
           cn_net_get_layer_output(net, L - 2, 0, n, logits) == CN_OK;
}

/* Bytes of every block of net (host arrays included). */
static size_t net_bytes(const cn_net *net)
{
    size_t bytes;
    cn_net_blocks(net, &bytes);
    return bytes;
}

static void same_results_as_the_full_layout(void)
{
    for (size_t k = 0; k < sizeof NETS / sizeof NETS[0]; k++) {
        cn_spec *spec = th_spec(NETS[k]);
        CHECK(spec);
        cn_model *m;
        CHECK_OK(cn_model_create(spec, NULL, th_dev(2), &m));
        const size_t ns[] = {1, 7, 33, 150}; /* 150: in chunks (run_chunks) */
        for (size_t j = 0; j < 4; j++) {
            size_t n = ns[j], classes = cn_net_classes(cn_model_net(m));
            float *x = random_input(cn_model_net(m), n, 10 + j);
            float *p0 = malloc(n * classes * sizeof *p0), *p1 = malloc(n * classes * sizeof *p1);
            float *z0 = malloc(n * classes * sizeof *z0), *z1 = malloc(n * classes * sizeof *z1);
            CHECK(x && p0 && p1 && z0 && z1);
            CHECK_OK(cn_model_reserve(m, n));
            size_t full = net_bytes(cn_model_net(m));
            CHECK(forward(cn_model_net(m), x, n, p0, z0));
            CHECK_OK(cn_model_reserve_inference(m, n));
            const cn_net *net = cn_model_net(m);
            CHECK(net->train_batch == 0 && net->max_batch >= n && net->arena);
            CHECK_MSG(net_bytes(net) < full, "net %zu, batch %zu: forward only %zu bytes, full %zu",
                      k, n, net_bytes(net), full);
            CHECK(forward(cn_model_net(m), x, n, p1, z1));
            CHECK_MSG(memcmp(p0, p1, n * classes * sizeof *p0) == 0 &&
                          memcmp(z0, z1, n * classes * sizeof *z0) == 0,
                      "net %zu, batch %zu: the forward-only network computes something else", k, n);
            free(x);
            free(p0);
            free(p1);
            free(z0);
            free(z1);
        }
        cn_model_free(m);
        cn_spec_free(spec);
    }
}

/* Random weights, batch normalisations' scales and shifts, and running
 * means and variances (> 0), from seed. */
static void randomize(cn_net *net, uint64_t seed)
{
    cn_rng rng;
    cn_rng_seed(&rng, seed);
    for (int b = 0; b < 2; b++) {
        size_t count = b ? cn_net_num_buffers(net) : cn_net_num_params(net);
        float *v = malloc(count * sizeof *v);
        CHECK(v);
        th_fill_normal(v, count, &rng);
        for (size_t i = 0; i < count; i++)
            v[i] = b ? 0.2f + v[i] * v[i] : 0.3f * v[i];
        CHECK_OK(cn_net_set(net, b ? CN_BUFFERS : CN_PARAMS, 0, count, v));
        free(v);
    }
}

/* The probabilities and logits of n images x (33 at most, 3 classes) from
 * m's full layout, then from its forward-only one (which stays, for the
 * caller to look into): the same bits, or a failure naming what was
 * folded. */
static void same_when_folded(cn_model *m, const float *x, size_t n, const char *what)
{
    float p0[33 * 3], p1[33 * 3], z0[33 * 3], z1[33 * 3];
    CHECK(x && n <= 33);
    CHECK_OK(cn_model_reserve(m, n));
    CHECK(forward(cn_model_net(m), x, n, p0, z0));
    CHECK_OK(cn_model_reserve_inference(m, n));
    CHECK(forward(cn_model_net(m), x, n, p1, z1));
    CHECK_MSG(memcmp(p0, p1, n * 3 * sizeof *p0) == 0 && memcmp(z0, z1, n * 3 * sizeof *z0) == 0,
              "batch %zu: folding %s changed the result", n, what);
}

/* Batch normalisation folded into the convolution before it (forward-only
 * networks, net.c's folds_affine): after the direct kernel (stride 1, rows of
 * 12 and more) and im2col's (stride 2), with its relu or without one, with a
 * leaky relu the convolution cannot apply; not where the convolution's output
 * is read again (a shortcut's source) or has one position per channel (batch
 * norm's per-feature formula).  With every parameter and running statistic random,
 * the results are the full layout's bit for bit, on 2 threads at batches of
 * 1 (each convolution split among the threads) and 9. */
static void batch_norm_folded_in(void)
{
    cn_spec *spec = th_spec(
        "[net]\nchannels=2\nheight=14\nwidth=14\nclasses=3\n[train]\nbatch=8\n"
        "[conv]\nfilters=17\nsize=3\npad=1\n[batchnorm]\n[relu]\n"  /* 1: folded, relu */
        "[conv]\nname=c2\nfilters=20\nsize=3\npad=1\n[batchnorm]\n" /* read later */
        "[conv]\nfilters=20\nsize=3\npad=1\n[batchnorm]\n[leaky]\n" /* 6: folded, leaky not */
        "[shortcut]\nfrom=c2\n"
        "[conv]\nname=c3\nfilters=16\nsize=3\nstride=2\npad=1\n[batchnorm]\n[relu]\n" /* read later
                                                                                       */
        "[conv]\nfilters=16\nsize=3\npad=1\n[shortcut]\nfrom=c3\n"                    /* no bn */
        "[conv]\nfilters=16\nsize=3\npad=1\n[batchnorm]\n[shortcut]\nfrom=c3\n" /* 14: folded */
        "[conv]\nfilters=12\nsize=3\nstride=2\npad=1\n[batchnorm]\n[relu]\n"    /* 17: folded */
        "[conv]\nfilters=8\nsize=4\n[batchnorm]\n[relu]\n"                      /* 1x1 output */
        "[fc]\noutputs=3\n[softmax]\n");
    CHECK(spec);
    cn_model *m;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(2), &m));
    cn_net *net = cn_model_net(m);
    randomize(net, 77);
    const size_t ns[] = {1, 9};
    for (size_t j = 0; j < 2; j++) {
        size_t n = ns[j];
        float *x = random_input(cn_model_net(m), n, 40 + j);
        same_when_folded(m, x, n, "batch normalisation");
        net = cn_model_net(m);
        /* Which convolutions took their batch normalisation in. */
        static const size_t conv_at[] = {0, 3, 5, 9, 12, 14, 17, 20};
        static const int folded[] = {1, 0, 1, 0, 0, 1, 1, 0};
        for (size_t k = 0; k < 8; k++) {
            const cn_layer *l = &net->layers[conv_at[k]];
            CHECK_MSG(strcmp(l->ops->kind, "conv") == 0, "layer %zu is %s", conv_at[k],
                      l->ops->kind);
            int can = net->be->conv_fwd_affine != NULL; /* the CPU's; not the GPU's */
            CHECK_MSG((l->fused_affine != NULL) == (folded[k] && can), "conv at %zu: folded %d",
                      conv_at[k], l->fused_affine != NULL);
        }
        if (net->be->conv_fwd_affine) { /* the relu after a folded one goes in too */
            CHECK(net->layers[0].fused_act == CN_ACT_RELU && net->layers[2].fused_away);
            CHECK(net->layers[5].fused_act == CN_ACT_NONE && !net->layers[7].fused_away);
        }
        free(x);
    }
    cn_model_free(m);
    cn_spec_free(spec);
}

/* Max pooling folded into the convolution before it (forward-only
 * networks, net.c's folds_pool): after a folded batch normalisation and its
 * relu, alone with overlapping windows (a batch normalisation and relu
 * after it folded in too: batch_norm_after_pooling), not where the
 * convolution's output is read again (a shortcut's source) nor after an
 * activation the convolution cannot apply.  With random weights and
 * statistics, the results are the full layout's bit for bit, on 2 threads
 * at batches of 1 (each convolution split among the threads), 9 and 33
 * (blocks of 16 along the lanes). */
static void pooling_folded_in(void)
{
    cn_spec *spec = th_spec(
        "[net]\nchannels=2\nheight=14\nwidth=14\nclasses=3\n[train]\nbatch=8\n"
        "[conv]\nfilters=17\nsize=3\npad=1\n[batchnorm]\n[relu]\n[maxpool]\n" /* 0: all folded */
        "[conv]\nname=c2\nfilters=9\nsize=3\npad=1\n[maxpool]\nsize=1\n"      /* 4: read later */
        "[shortcut]\nfrom=c2\n"
        "[conv]\nfilters=9\nsize=3\n[maxpool]\nsize=3\nstride=2\n[batchnorm]\n[relu]\n" /* 7 */
        "[conv]\nfilters=6\nsize=3\npad=1\n[leaky]\n[maxpool]\n" /* 11: after leaky, not */
        "[fc]\noutputs=3\n[softmax]\n");
    CHECK(spec);
    cn_model *m;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(2), &m));
    cn_net *net = cn_model_net(m);
    randomize(net, 78);
    const size_t ns[] = {1, 9, 33};
    for (size_t j = 0; j < 3; j++) {
        size_t n = ns[j];
        float *x = random_input(cn_model_net(m), n, 50 + j);
        same_when_folded(m, x, n, "max pooling");
        net = cn_model_net(m);
        if (net->be->conv_fwd_pool) { /* the CPU's; not the GPU's */
            const cn_layer *L = net->layers;
            CHECK(L[0].fused_affine == &L[1] && L[0].fused_act == CN_ACT_RELU &&
                  L[0].fused_pool == &L[3] && L[3].fused_away);
            CHECK(!L[4].fused_pool && !L[5].fused_away);
            CHECK(L[7].fused_pool == &L[8] && L[8].fused_away && L[9].fused_away &&
                  L[10].fused_away && L[7].fused_affine == &L[9] && L[7].affine_after_pool &&
                  L[7].fused_act == CN_ACT_RELU);
            CHECK(!L[11].fused_pool && !L[13].fused_away);
        }
        free(x);
    }
    cn_model_free(m);
    cn_spec_free(spec);
}

/* Batch normalisation after a max pooling that follows a convolution
 * directly, folded in with its activation (net.c's folds_affine_after_pool):
 * applied before the pooling while no scale is negative, after it
 * otherwise.  Through Winograd's pooling inside the tiles (28 x 28), the
 * pooling of whole planes (3 x 3 windows, stride 2) and the lanes (batch
 * 33), with and without a relu; not after an activation between the
 * convolution and the pooling.  The results are the full layout's bit for
 * bit, with every scale 0 or more and with some below 0, on 2 threads. */
static void batch_norm_after_pooling(void)
{
    cn_spec *spec =
        th_spec("[net]\nchannels=2\nheight=28\nwidth=28\nclasses=3\n[train]\nbatch=8\n"
                "[conv]\nfilters=24\nsize=3\npad=1\n[maxpool]\n[batchnorm]\n[relu]\n"   /* 0 */
                "[conv]\nfilters=9\nsize=3\n[maxpool]\nsize=3\nstride=2\n[batchnorm]\n" /* 4 */
                "[conv]\nfilters=7\nsize=3\npad=1\n[relu]\n[maxpool]\n[batchnorm]\n"    /* 7: not */
                "[fc]\noutputs=3\n[softmax]\n");
    CHECK(spec);
    cn_model *m;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(2), &m));
    randomize(cn_model_net(m), 79);
    static const size_t bn_at[] = {2, 6, 10};
    for (int rising = 1; rising >= 0; rising--) {
        cn_net *net = cn_model_net(m);
        for (size_t b = 0; b < 3; b++) { /* the scales' signs: gamma's */
            cn_layer *bn = &net->layers[bn_at[b]];
            float gamma[32];
            CHECK(strcmp(bn->ops->kind, "batchnorm") == 0 && bn->in.c <= 32);
            net->be->download(net->be, gamma, bn->p[0], bn->in.c * sizeof *gamma);
            for (size_t c = 0; c < bn->in.c; c++)
                gamma[c] = rising ? fabsf(gamma[c]) : c % 3 ? gamma[c] : -0.5f;
            net->be->upload(net->be, bn->p[0], gamma, bn->in.c * sizeof *gamma);
        }
        const size_t ns[] = {1, 9, 33};
        for (size_t j = 0; j < 3; j++) {
            size_t n = ns[j];
            float *x = random_input(cn_model_net(m), n, 60 + j);
            same_when_folded(m, x, n,
                             rising ? "the normalisations (scales 0 or more)"
                                    : "the normalisations (some scales below 0)");
            net = cn_model_net(m);
            if (net->be->conv_fwd_pool && net->be->conv_fwd_affine) { /* the CPU's */
                const cn_layer *L = net->layers;
                CHECK(L[0].fused_pool == &L[1] && L[0].fused_affine == &L[2] &&
                      L[0].affine_after_pool && L[0].fused_act == CN_ACT_RELU && L[1].fused_away &&
                      L[2].fused_away && L[3].fused_away);
                CHECK(L[4].fused_pool == &L[5] && L[4].fused_affine == &L[6] &&
                      L[4].affine_after_pool && L[4].fused_act == CN_ACT_NONE && L[6].fused_away);
                CHECK(L[7].fused_act == CN_ACT_RELU && L[7].fused_pool == &L[9] &&
                      !L[7].fused_affine && !L[10].fused_away);
            }
            free(x);
        }
    }
    cn_model_free(m);
    cn_spec_free(spec);
}

/* LeNet's outputs by hand.  Each max pooling is folded into the
 * convolution before it (where the backend can): conv1's output is then
 * maxpool1's (20x12x12), alive with conv2's (maxpool2's, 50x4x4); every
 * later output fits in conv1's place, read by then; fc2's logits and the
 * softmax stay to the end.  Without the folding, conv1 (20x24x24, its relu
 * fused, in place) and maxpool1 are the largest pair.  Built for 1 000
 * images on the CPU, the network goes through them in chunks of 64 (twice
 * the largest output, 20x24x24, is 90 KB a sample: 8 MB hold 91), so the
 * pair is laid out for 64, and only the logits and the softmax for 1 000,
 * after it. */
static void lenet_arena_by_hand(void)
{
    cn_spec *spec;
    CHECK_OK(cn_spec_load("models/lenet.cfg", &spec));
    cn_model *m;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(1), &m));
    CHECK_OK(cn_model_reserve_inference(m, 1000));
    const cn_net *net = cn_model_net(m);
    size_t pair = net->be->conv_fwd_pool ? 20 * 12 * 12 + 50 * 4 * 4 : 20 * 24 * 24 + 20 * 12 * 12;
    size_t chunk = net->be->each_worker ? 64 : 1000, kept = chunk < 1000 ? 2 * 10 * 1000 : 0;
    CHECK(net->chunk == (chunk < 1000 ? chunk : 0));
    CHECK_MSG(net->arena_floats == pair * chunk + kept, "LeNet at 1000: %zu floats of outputs",
              net->arena_floats);
    CHECK(!net->be->conv_fwd_pool ||
          (net->layers[0].fused_pool == &net->layers[2] && net->layers[2].fused_away &&
           net->layers[3].fused_pool == &net->layers[5] && net->layers[5].fused_away));
    /* the full layout's outputs: every layer's but the relus in place */
    CHECK_OK(cn_model_reserve(m, 1000));
    size_t outputs = 0;
    for (size_t i = 0; i < cn_net_num_layers(cn_model_net(m)); i++)
        if (!cn_model_net(m)->layers[i].shares_input)
            outputs += cn_shape_size(cn_model_net(m)->layers[i].out) * 1000;
    CHECK(outputs ==
          (20 * 24 * 24 + 20 * 12 * 12 + 50 * 8 * 8 + 50 * 4 * 4 + 500 + 10 + 10) * (size_t)1000);
    cn_model_free(m);
    cn_spec_free(spec);
}

static void what_it_does_not_keep_is_refused(void)
{
    cn_spec *spec = th_spec(NETS[1]);
    CHECK(spec);
    cn_model *m;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(1), &m));
    CHECK_OK(cn_model_reserve_inference(m, 4));
    cn_net *net = cn_model_net(m);
    float *x = random_input(net, 4, 3), y[4 * 8 * 10 * 10];
    CHECK(x);
    CHECK_ERR(cn_net_forward(net, x, 4, 1), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "evaluation only"));
    CHECK_ERR(cn_net_forward(net, x, 5, 0), CN_ERR_ARG); /* built for 4 */
    CHECK_OK(cn_net_forward(net, x, 4, 0));
    CHECK_ERR(cn_net_get_layer_output(net, 0, 0, 4, y), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "c1") && th_contains(cn_last_error(), "evaluation only"));
    int32_t classes[4] = {0, 1, 2, 3};
    CHECK_ERR(cn_net_class_gradient(net, classes, 4, 0, NULL, NULL), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "evaluation only"));
    /* a smaller batch keeps the network; cn_model_reserve gives back all */
    CHECK_OK(cn_model_reserve_inference(m, 2));
    CHECK(cn_model_net(m) == net);
    CHECK_OK(cn_model_reserve(m, 4));
    net = cn_model_net(m);
    CHECK(net->train_batch == 4 && !net->arena_at && net->train_at);
    CHECK_OK(cn_net_forward(net, x, 4, 0));
    CHECK_OK(cn_net_get_layer_output(net, 0, 0, 4, y));
    free(x);
    cn_model_free(m);
    cn_spec_free(spec);
}

/* An evaluation through a forward-only network (bigger passes) gives the
 * full network's loss, answers and probabilities. */
static void evaluation_is_the_same(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=12\nwidth=12\nclasses=2\n[train]\n"
                            "batch=8\n[conv]\nfilters=4\nsize=3\n[relu]\n[maxpool]\n[fc]\n"
                            "outputs=2\n[softmax]\n");
    CHECK(spec);
    cn_data d = th_bars(100, 7, 12);
    cn_model *m;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(2), &m));
    cn_eval a, b, c;
    CHECK_OK(cn_net_evaluate(cn_model_net(m), &d, &a));
    /* The same passes of 8 through the forward-only network: the same bits. */
    CHECK_OK(cn_model_reserve_inference(m, 8));
    CHECK(cn_net_max_batch(cn_model_net(m)) == 8);
    CHECK_OK(cn_net_evaluate(cn_model_net(m), &d, &b));
    CHECK(a.n == 100 && b.n == 100 && a.accuracy == b.accuracy && a.loss == b.loss);
    CHECK(memcmp(a.predicted, b.predicted, 100 * sizeof *a.predicted) == 0);
    CHECK(memcmp(a.probability, b.probability, 100 * sizeof *a.probability) == 0);
    /* Passes of 64 (and a last one of 36, where the 8 ended with 4, which
     * the fully connected layer sums as dot products): the same up to
     * rounding; the mean loss adds each pass's sum. */
    CHECK_OK(cn_model_reserve_inference(m, 64));
    CHECK(cn_net_max_batch(cn_model_net(m)) == 64);
    CHECK_OK(cn_net_evaluate(cn_model_net(m), &d, &c));
    CHECK(c.n == 100 && a.accuracy == c.accuracy);
    CHECK_NEAR(a.loss, c.loss, 1e-6);
    CHECK(memcmp(a.predicted, c.predicted, 100 * sizeof *a.predicted) == 0);
    for (int i = 0; i < 100; i++)
        CHECK_NEAR(a.probability[i], c.probability[i], 1e-6);
    cn_eval_free(&a);
    cn_eval_free(&b);
    cn_eval_free(&c);
    cn_data_free(&d);
    cn_model_free(m);
    cn_spec_free(spec);
}

/* A large pass through a forward-only network goes chunk by chunk
 * (run_chunks: the first on all threads, the rest cut among the workers,
 * each in its own area): every sample's logits and probabilities are the
 * full layout's bit for bit, at batches that cut into chunks evenly and
 * not, on 1 and 2 threads, in a first pass (the Winograd layers' kept
 * transforms made in it) and a second (read from them), with per-layer
 * times asked (every chunk on all threads) and without; the outputs take
 * a chunk's place, not the batch's (on backends with workers). */
static void chunks_give_the_same_bits(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=2\nheight=12\nwidth=12\nclasses=3\n[train]\n"
                            "batch=8\n[conv]\nfilters=16\nsize=3\npad=1\n[batchnorm]\n[relu]\n"
                            "[conv]\nfilters=16\nsize=3\npad=1\n[maxpool]\n[batchnorm]\n[relu]\n"
                            "[conv]\nfilters=5\nsize=5\npad=2\n[relu]\n[fc]\noutputs=20\n"
                            "[batchnorm]\n[relu]\n[fc]\noutputs=3\n[softmax]\n");
    CHECK(spec);
    const size_t ns[] = {65, 128, 203};
    for (int threads = 1; threads <= 2; threads++)
        for (size_t j = 0; j < 3; j++) {
            size_t n = ns[j];
            cn_model *m;
            CHECK_OK(cn_model_create(spec, NULL, th_dev(threads), &m));
            randomize(cn_model_net(m), 30 + j);
            float *x = random_input(cn_model_net(m), n, 20 + j);
            float *p[4], *z[4];
            for (int k = 0; k < 4; k++) {
                p[k] = malloc(n * 3 * sizeof *p[k]);
                z[k] = malloc(n * 3 * sizeof *z[k]);
                CHECK(p[k] && z[k]);
            }
            CHECK(x);
            CHECK_OK(cn_model_reserve(m, n));
            CHECK(forward(cn_model_net(m), x, n, p[0], z[0]));
            CHECK_OK(cn_model_reserve_inference(m, n));
            cn_net *net = cn_model_net(m);
            /* (The guard backend has no workers: whole passes.) */
            CHECK_MSG(net->be->each_worker ? net->chunk >= 32 && net->chunk < n : !net->chunk,
                      "batch %zu: chunks of %zu", n, net->chunk);
            CHECK(!net->chunk || net->arena_floats < 8 * 16 * 12 * 12 * n / 2);
            CHECK(forward(net, x, n, p[1], z[1]));
            CHECK(forward(net, x, n, p[2], z[2]));
            double times[32];
            CHECK(cn_net_num_layers(net) <= 32);
            CHECK_OK(cn_net_profile_forward(net, x, n, 0, times));
            CHECK_OK(cn_net_get_layer_output(net, cn_net_num_layers(net) - 1, 0, n, p[3]));
            CHECK_OK(cn_net_get_layer_output(net, cn_net_num_layers(net) - 2, 0, n, z[3]));
            for (int k = 1; k < 4; k++)
                CHECK_MSG(memcmp(p[0], p[k], n * 3 * sizeof *p[0]) == 0 &&
                              (k == 3 || memcmp(z[0], z[k], n * 3 * sizeof *z[0]) == 0),
                          "%d threads, batch %zu, pass %d: not the full layout's results", threads,
                          n, k);
            for (int k = 0; k < 4; k++) {
                free(p[k]);
                free(z[k]);
            }
            free(x);
            cn_model_free(m);
        }
    cn_spec_free(spec);
}

/* One image on 2 threads: the network tries both ways (split among the
 * threads in a team pass, alone on one: net.c, small passes), timing each,
 * then takes one; every pass gives the bits of one thread's, whichever way
 * it ran.  The 16 x 16 layers split their filters; on AVX-512 the 28 x 28
 * ones split their tiles (F(4x4, 3x3), wg_share), with the pooling in the
 * tiles and without it; first layers too small to split by filters (below
 * SPLIT_MACS) split their rows (rows_share), then pool their bands: 2 x 2
 * windows, and 3 x 3 ones with stride 2, whose bands share a row. */
static const char *SMALL_NETS[] = {
    "[net]\nchannels=3\nheight=16\nwidth=16\nclasses=4\n[train]\n"
    "batch=8\n[conv]\nfilters=64\nsize=3\npad=1\n[batchnorm]\n[relu]\n"
    "[conv]\nfilters=64\nsize=3\npad=1\n[maxpool]\n[batchnorm]\n"
    "[relu]\n[fc]\noutputs=300\n[relu]\n[fc]\noutputs=4\n[softmax]\n",
    "[net]\nchannels=2\nheight=28\nwidth=28\nclasses=4\n[train]\nbatch=8\n"
    "[conv]\nfilters=24\nsize=3\npad=1\n[batchnorm]\n[relu]\n"
    "[conv]\nfilters=21\nsize=3\npad=1\n[relu]\n"
    "[conv]\nfilters=24\nsize=3\npad=1\n[maxpool]\n[batchnorm]\n[relu]\n"
    "[conv]\nfilters=16\nsize=3\npad=1\n[fc]\noutputs=4\n[softmax]\n",
    "[net]\nchannels=1\nheight=28\nwidth=28\nclasses=4\n[train]\nbatch=8\n"
    "[conv]\nfilters=20\nsize=5\n[relu]\n[maxpool]\n"
    "[conv]\nfilters=9\nsize=4\npad=1\n[maxpool]\nsize=3\nstride=2\n[batchnorm]\n"
    "[fc]\noutputs=4\n[softmax]\n",
};

/* Team passes with the threads' shares cut anywhere (kernels/team.c moves
 * the cuts as the threads' times say): each pass over image i of x gives
 * p1[i] and z1[i], one thread's results, whether a cut falls between tiles'
 * vectors, filters, blocks of a fully connected layer's rows or bands of
 * rows (moved to multiples of 8 rows), or leaves a thread nothing to do.
 * The two images take turns, so that no output is left from the pass
 * before. */
static void cuts_change_nothing(cn_net *net, const float *x, float p1[2][4], float z1[2][4])
{
    static const unsigned cuts[] = {CN_SHARE_ONE / 32,     CN_SHARE_ONE / 4,
                                    CN_SHARE_ONE / 3 + 5,  2 * CN_SHARE_ONE / 5,
                                    CN_SHARE_ONE / 2 + 99, 5 * CN_SHARE_ONE / 8,
                                    3 * CN_SHARE_ONE / 4,  CN_SHARE_ONE - CN_SHARE_ONE / 32};
    cn_team *tm = cn_cpu_of(net->be)->team_view->team;
    size_t in = cn_shape_size(cn_net_input_shape(net));
    float p[4], z[4];
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        cn_team_fix_cut(tm, cuts[c]);
        for (int i = 0; i < 2; i++) {
            net->small.pass = 0; /* a trial of the team's way */
            CHECK(forward(net, x + (size_t)i * in, 1, p, z));
            CHECK_MSG(memcmp(p, p1[i], sizeof p) == 0 && memcmp(z, z1[i], sizeof z) == 0,
                      "cut at %u of %u, image %d: not one thread's results", cuts[c], CN_SHARE_ONE,
                      i);
        }
    }
    cn_team_fix_cut(tm, 0);
}

static void small_passes_of(const char *text)
{
    cn_spec *spec = th_spec(text);
    CHECK(spec);
    float p1[2][4], z1[2][4], p[4], z[4];
    float *x = NULL;
    for (int threads = 1; threads <= 2; threads++) {
        cn_model *m;
        CHECK_OK(cn_model_create(spec, NULL, th_dev(threads), &m));
        randomize(cn_model_net(m), 7);
        CHECK_OK(cn_model_reserve_inference(m, 1));
        cn_net *net = cn_model_net(m);
        size_t in = cn_shape_size(cn_net_input_shape(net));
        if (!x)
            x = random_input(net, 2, 8);
        CHECK(x);
        if (threads == 1) {
            for (int i = 0; i < 2; i++)
                CHECK(forward(net, x + (size_t)i * in, 1, p1[i], z1[i]));
            cn_model_free(m);
            continue;
        }
        int differ = 0;
        for (int k = 0; k < 40; k++) {
            CHECK(forward(net, x, 1, p, z));
            differ |= memcmp(p, p1[0], sizeof p) != 0 || memcmp(z, z1[0], sizeof z) != 0;
        }
        CHECK_MSG(!differ, "a pass on 2 threads differs from one thread's");
        if (net->be->alone) { /* both ways timed, the choice made */
            CHECK(net->small.pass == 40);
            for (int w = 0; w < 2; w++)
                for (int t = 0; t < CN_SMALL_TIMED; t++)
                    CHECK(net->small.times[w][t] > 0.0);
        }
        if (net->be->team) /* not the guard's */
            cuts_change_nothing(net, x, p1, z1);
        cn_model_free(m);
    }
    free(x);
    cn_spec_free(spec);
}

static void small_passes_try_both_ways(void)
{
    for (size_t k = 0; k < sizeof SMALL_NETS / sizeof SMALL_NETS[0]; k++)
        small_passes_of(SMALL_NETS[k]);
}

/* Passes on all threads that take longer, on average, than SMALL_SLOWER
 * (1.25) times the median pass alone, in SMALL_STRIKES (2) windows of
 * CN_SMALL_WINDOW passes in a row (net.c: a worker taken off its core by a
 * busy machine), send the rest of the epoch alone, and the next epoch
 * without trials; one slow window between quick ones does not.  The pass
 * alone's median is set here to what each window needs: 1e-12 s, which no
 * pass beats (slow), or 1 s, which every pass does (quick). */
static int window_of(cn_net *net, const float *x, int slow)
{
    float p[4], z[4];
    for (int t = 0; t < CN_SMALL_TIMED; t++)
        net->small.times[1][t] = slow ? 1e-12 : 1.0;
    int ok = 1;
    for (int k = 0; k < CN_SMALL_WINDOW; k++)
        ok &= forward(net, x, 1, p, z);
    return ok && net->small.in_window == 0;
}

static void small_passes_leave_slow_threads(void)
{
    cn_spec *spec = th_spec(SMALL_NETS[0]);
    CHECK(spec);
    cn_model *m;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(2), &m));
    randomize(cn_model_net(m), 7);
    CHECK_OK(cn_model_reserve_inference(m, 1));
    cn_net *net = cn_model_net(m);
    float *x = random_input(net, 1, 8), p[4], z[4];
    CHECK(x);
    unsigned trials = 2 * (4 + CN_SMALL_TIMED); /* 4 warm and the timed, each way */
    if (net->be->team) {                        /* (the guard's backend runs no team) */
        for (unsigned k = 0; k < trials; k++)
            CHECK(forward(net, x, 1, p, z));
        net->small.alone = 0;
        static const int slow[] = {0, 1, 0, 1, 0, 0, 1, 1};
        static const int alone[] = {0, 0, 0, 0, 0, 0, 0, 1};
        for (size_t w = 0; w < sizeof slow / sizeof slow[0]; w++) {
            CHECK(window_of(net, x, slow[w]));
            CHECK_MSG(net->small.alone == alone[w], "window %zu (%s): alone %d, not %d", w,
                      slow[w] ? "slow" : "quick", net->small.alone, alone[w]);
        }
        /* Alone, no window is counted. */
        unsigned at = net->small.pass;
        CHECK(forward(net, x, 1, p, z));
        CHECK(net->small.pass == at + 1 && net->small.in_window == 0 && net->small.window == 0.0);
        /* The next epoch alone too, without trials; the one after it tries
         * both ways again. */
        for (int epoch = 0; epoch < 2; epoch++) {
            for (int k = 0; k < 10000 && net->small.pass >= at; k++) {
                at = net->small.pass;
                CHECK(forward(net, x, 1, p, z));
            }
            CHECK_MSG(net->small.pass == (epoch ? 0 : trials) && net->small.alone == 1 &&
                          net->small.backoff == 1 && net->small.rest == 0,
                      "epoch %d: pass %u, alone %d, backoff %u", epoch + 1, net->small.pass,
                      net->small.alone, net->small.backoff);
            at = net->small.pass;
        }
    }
    free(x);
    cn_model_free(m);
    cn_spec_free(spec);
}

/* A team's workers are threads of its own (kernels/team.c): started at its
 * first pass, asleep after a while without one, woken by the next; and in a
 * child of fork(), which has none of its parent's threads, started again.
 * Each pass, most of it the worker's (a cut at 1/32), gives one thread's
 * results; a worker never woken would hang the pass (the alarm ends it). */
static int team_pass_is(cn_net *net, const float *x, const float p1[4], const float z1[4])
{
    float p[4], z[4];
    net->small.pass = 0; /* a trial of the team's way */
    return forward(net, x, 1, p, z) && memcmp(p, p1, sizeof p) == 0 && memcmp(z, z1, sizeof z) == 0;
}

static void team_workers_sleep_wake_and_fork(void)
{
    cn_spec *spec = th_spec(SMALL_NETS[0]);
    CHECK(spec);
    cn_model *m1, *m2;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(1), &m1));
    CHECK_OK(cn_model_create(spec, NULL, th_dev(2), &m2));
    randomize(cn_model_net(m1), 7);
    randomize(cn_model_net(m2), 7);
    CHECK_OK(cn_model_reserve_inference(m1, 1));
    CHECK_OK(cn_model_reserve_inference(m2, 1));
    cn_net *n1 = cn_model_net(m1), *net = cn_model_net(m2); /* rebuilt by the reserving */
    float *x = random_input(net, 1, 8), p1[4], z1[4];
    CHECK(x && forward(n1, x, 1, p1, z1));
    cn_team *tm = net->be->team ? cn_cpu_of(net->be)->team_view->team : NULL;
    if (!tm) { /* the guard's backend */
        th_skip("no team in this backend");
        goto done;
    }
    int asleep = -1;
    CHECK(cn_team_workers(tm, &asleep) == 0);
    cn_team_fix_cut(tm, CN_SHARE_ONE / 32);
    alarm(60); /* a worker never woken hangs the pass */
    CHECK_MSG(team_pass_is(net, x, p1, z1), "first team pass");
    CHECK(cn_team_workers(tm, &asleep) == 1);
    /* Asleep after TEAM_SPIN_S (2 ms) idle; waited for up to 5 s, in steps
     * of 10 ms, since a busy machine may not run the worker at once. */
    struct timespec nap = {0, 10000000};
    for (int k = 0; k < 500 && asleep != 1; k++) {
        nanosleep(&nap, NULL);
        cn_team_workers(tm, &asleep);
    }
    CHECK_MSG(asleep == 1, "idle worker not asleep after 5 s: %d", asleep);
    /* The worker makes 31/32 of this pass: it returns only if woken. */
    CHECK_MSG(team_pass_is(net, x, p1, z1), "team pass after the worker slept");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30); /* not inherited */
        int ok = cn_team_workers(tm, &asleep) == 0 && team_pass_is(net, x, p1, z1) &&
                 cn_team_workers(tm, &asleep) == 1 && team_pass_is(net, x, p1, z1);
        free(x); /* and the child's worker ended (valgrind counts what _exit leaves) */
        cn_model_free(m1);
        cn_model_free(m2);
        cn_spec_free(spec);
        _exit(ok ? 0 : 1);
    }
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "team pass in a child of fork()");
    CHECK_MSG(team_pass_is(net, x, p1, z1), "team pass after a fork");
done:
    free(x);
    cn_model_free(m1);
    cn_model_free(m2);
    cn_spec_free(spec);
}

/* Inference between training steps changes nothing of the training. */
static void training_after_inference_is_the_same(void)
{
    cn_spec *spec = th_spec(NETS[1]);
    CHECK(spec);
    cn_model *a, *b;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(2), &a));
    CHECK_OK(cn_model_create(spec, NULL, th_dev(2), &b));
    float *x = random_input(cn_model_net(a), 8, 5);
    int32_t labels[8] = {0, 1, 2, 3, 4, 0, 1, 2};
    CHECK(x);
    for (int s = 0; s < 3; s++) {
        CHECK_OK(cn_model_step(a, x, labels, 8, 0.05, NULL));
        CHECK_OK(cn_model_reserve_inference(b, 64));
        CHECK_OK(cn_net_forward(cn_model_net(b), x, 8, 0));
        CHECK_OK(cn_model_step(b, x, labels, 8, 0.05, NULL));
    }
    CHECK(th_same(cn_model_net(a), cn_model_net(b), CN_PARAMS));
    CHECK(th_same(cn_model_net(a), cn_model_net(b), CN_BUFFERS));
    CHECK(th_same_optim(a, b));
    free(x);
    cn_model_free(a);
    cn_model_free(b);
    cn_spec_free(spec);
}

/* A forward-only network's convolution keeps its filters as its kernels
 * read them (on AVX-512, the Winograd transforms: F(4x4, 3x3) of the 3x3
 * layer, F(2x2, 5x5) of the 5x5 one on 8 x 8), and a fully connected layer
 * its weights transposed for one sample (512 x 128, past 32 KB: every kernel
 * set), from one
 * pass to the next, and makes them again whenever the weights change, however they changed: set
 * (cn_net_set), or the model's moving average swapped in and out
 * (cn_model_ema_use, as an evaluation with the average does).  Every pass
 * gives the full layout's bits for the weights of the moment, on 1 and 2
 * threads and at batches of 1 (each convolution split among the threads)
 * and 5.  The networks say when their weights change
 * (cn_net_weights_changed): leaving out the call in cn_net_set or in the
 * swap fails this. */
static void kept_filters_follow_the_weights(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=16\nheight=16\nwidth=16\nclasses=3\n[train]\n"
                            "batch=5\nema=0.9\n[conv]\nfilters=16\nsize=3\npad=1\n[batchnorm]\n"
                            "[relu]\n[maxpool]\n[conv]\nfilters=32\nsize=5\npad=2\n[relu]\n"
                            "[maxpool]\n[fc]\noutputs=128\n[fc]\noutputs=3\n[softmax]\n");
    CHECK(spec);
    for (int threads = 1; threads <= 2; threads++)
        for (size_t n = 1; n <= 5; n += 4) {
            cn_model *m;
            CHECK_OK(cn_model_create(spec, NULL, th_dev(threads), &m));
            cn_net *net = cn_model_net(m);
            size_t np = cn_net_num_params(net);
            size_t at[3] = {net->layers[0].t[0].offset + 7, net->layers[4].t[0].offset + 9,
                            net->layers[7].t[0].offset + 11};
            float *w = malloc(np * sizeof *w), *x = random_input(net, n, 9);
            float p[6][5 * 3], full[5 * 3], z[5 * 3];
            CHECK(w && x);
            cn_rng rng;
            cn_rng_seed(&rng, 4);
            th_fill_normal(w, np, &rng);
            for (size_t i = 0; i < np; i++)
                w[i] *= 0.2f;
            CHECK_OK(cn_net_set(net, CN_PARAMS, 0, np, w));
            CHECK_OK(cn_model_reserve_inference(m, n));
            net = cn_model_net(m);
            const cn_layer *c1 = &net->layers[0], *c2 = &net->layers[4], *f1 = &net->layers[7];
            CHECK(c1->ops == &cn_conv_ops && c2->ops == &cn_conv_ops && f1->ops == &cn_fc_ops);
            CHECK(forward(net, x, n, p[0], z));
            CHECK(forward(net, x, n, p[1], z));
            /* a weight of each convolution and of the first fully connected
             * layer moves, then comes back */
            float was[3] = {w[at[0]], w[at[1]], w[at[2]]};
            float moved[3] = {was[0] + 0.5f, was[1] - 0.5f, was[2] + 0.5f};
            for (int k = 0; k < 3; k++)
                CHECK_OK(cn_net_set(net, CN_PARAMS, at[k], 1, &moved[k]));
            CHECK(forward(net, x, n, p[2], z));
            for (int k = 0; k < 3; k++)
                CHECK_OK(cn_net_set(net, CN_PARAMS, at[k], 1, &was[k]));
            CHECK(forward(net, x, n, p[3], z));
            /* the average (the weights of now) in, moved weights, then the
             * average swapped in and out */
            CHECK_OK(cn_model_ema_use(m, 0));
            for (int k = 0; k < 3; k++)
                CHECK_OK(cn_net_set(net, CN_PARAMS, at[k], 1, &moved[k]));
            CHECK(forward(net, x, n, p[4], z));
            CHECK_OK(cn_model_ema_use(m, 1));
            CHECK(forward(net, x, n, p[5], z));
            CHECK_OK(cn_model_ema_use(m, 0));
            CHECK(forward(net, x, n, full, z));
            size_t bytes = n * 3 * sizeof(float);
            CHECK(memcmp(p[0], p[1], bytes) == 0 && memcmp(p[0], p[3], bytes) == 0);
            CHECK_MSG(memcmp(p[0], p[2], bytes) != 0, "a changed weight changed nothing");
            CHECK_MSG(memcmp(p[2], p[4], bytes) == 0 && memcmp(p[0], p[5], bytes) == 0 &&
                          memcmp(p[2], full, bytes) == 0,
                      "%d threads, batch %zu: a kept form outlived a swap of the average", threads,
                      n);
            /* Where the backend keeps the filters' forms (cpu_avx512), they
             * are kept: the area says so after a pass. */
            for (int k = 0; k < 2; k++) {
                const cn_layer *c = k ? c2 : c1;
                cn_win g = c->ops->window(c);
                size_t keep = net->be->conv_keep ? net->be->conv_keep(net->be, &g, c->out.c) : 0;
                float made = 0.0f; /* the area's first float, from the backend's memory */
                if (keep)
                    net->be->download(net->be, &made, c->state, sizeof made);
                CHECK(c->state_floats == keep && (!keep || made == 1.0f));
                if (strcmp(cn_net_isa(net), "avx512") == 0)
                    CHECK_MSG(keep > 0, "layer %d keeps nothing on AVX-512", 4 * k);
            }
            size_t fkeep = net->be->fc_keep ? net->be->fc_keep(net->be, 128, 512) : 0;
            float fmade = 0.0f;
            if (fkeep)
                net->be->download(net->be, &fmade, f1->state, sizeof fmade);
            CHECK_MSG(f1->state_floats == fkeep && (!fkeep || n > 1 || fmade == 1.0f),
                      "fc1 keeps %zu floats (%g)", f1->state_floats, fmade);
            if (strcmp(net->be->name, "cpu") == 0 || strcmp(net->be->name, "guard") == 0)
                CHECK_MSG(fkeep > 0, "fc1 keeps nothing on the %s backend", net->be->name);
            /* The full layout (no keeping) with the changed weight. */
            CHECK_OK(cn_model_reserve(m, 5));
            net = cn_model_net(m);
            CHECK(forward(net, x, n, full, z));
            CHECK_MSG(memcmp(full, p[2], bytes) == 0,
                      "%d threads, batch %zu: a kept form outlived its weights", threads, n);
            free(w);
            free(x);
            cn_model_free(m);
        }
    cn_spec_free(spec);
}

const th_test th_infer[] = {
    {"infer/kept_filters_follow_the_weights", kept_filters_follow_the_weights},
    {"infer/same_results_as_the_full_layout", same_results_as_the_full_layout},
    {"infer/lenet_arena_by_hand", lenet_arena_by_hand},
    {"infer/chunks_give_the_same_bits", chunks_give_the_same_bits},
    {"infer/small_passes_try_both_ways", small_passes_try_both_ways},
    {"infer/small_passes_leave_slow_threads", small_passes_leave_slow_threads},
    {"infer/team_workers_sleep_wake_and_fork", team_workers_sleep_wake_and_fork},
    {"infer/what_it_does_not_keep_is_refused", what_it_does_not_keep_is_refused},
    {"infer/evaluation_is_the_same", evaluation_is_the_same},
    {"infer/batch_norm_folded_in", batch_norm_folded_in},
    {"infer/pooling_folded_in", pooling_folded_in},
    {"infer/batch_norm_after_pooling", batch_norm_after_pooling},
    {"infer/training_after_inference_is_the_same", training_after_inference_is_the_same},
    {NULL, NULL},
};
