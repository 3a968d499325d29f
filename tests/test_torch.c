/* test_torch.c - convnet against PyTorch: ten training steps on the same
 * weights and batches must give the same losses, gradients, weights and
 * batch-norm running statistics (tests/torch_check.py replays them with
 * torch.nn). */
#include "harness.h"
#include "internal.h"
#include "io/safetensors.h"

#include <stdlib.h>
#include <string.h>

#define STEPS 10
#define BATCH 16

/* Runs the steps on the model `text` describes, writes everything into a
 * file and has tests/torch_check.py replay it. */
static int replay_in_pytorch(const char *name, const char *text)
{
    cn_spec *spec = th_spec(text);
    if (!spec)
        return 0;
    cn_train_opts o;
    cn_spec_train_opts(spec, &o);
    o.decay = 0.01; /* large enough to show in ten steps */
    cn_model *m;
    if (cn_model_create(spec, &o, th_dev(0), &m)) {
        th_fail(__FILE__, __LINE__, "%s", cn_last_error());
        return 0;
    }
    cn_net *net = cn_model_net(m);
    size_t nt = cn_net_num_tensors(net), np = cn_net_num_params(net), nb = cn_net_num_buffers(net);
    size_t in = cn_shape_size(cn_net_input_shape(net));
    size_t total = 3 * nt + 2 * STEPS + 1;
    cn_st_tensor *t = calloc(total, sizeof *t);
    char(*names)[64] = calloc(total, 64);
    float *init = malloc((np + nb) * 4), *grad = malloc(np * 4);
    float *xs = malloc((size_t)STEPS * BATCH * in * 4), *ys = malloc(STEPS * BATCH * 4);
    float losses[STEPS];
    int32_t labels[BATCH];
    float *p0 = th_block(net, CN_PARAMS), *b0 = th_block(net, CN_BUFFERS);
    if (p0 && b0) {
        memcpy(init, p0, np * 4);
        memcpy(init + np, b0, nb * 4);
    }
    free(p0);
    free(b0);
    cn_rng rng;
    cn_rng_seed(&rng, 99);
    th_fill_normal(xs, (size_t)STEPS * BATCH * in, &rng);
    int ok = 1;
    for (size_t s = 0; s < STEPS && ok; s++) {
        for (size_t b = 0; b < BATCH; b++) {
            labels[b] = (int32_t)cn_rng_below(&rng, 10);
            ys[s * BATCH + b] = (float)labels[b];
        }
        /* The library's one training step: forward, loss, backward, update. */
        double loss = 0;
        ok = cn_model_step(m, xs + s * BATCH * in, labels, BATCH, o.lr, &loss) == CN_OK;
        losses[s] = (float)loss;
        if (s == 0)
            ok = ok && cn_net_get(net, CN_GRADS, 0, np, grad) == CN_OK;
    }
    float *final_p = th_block(net, CN_PARAMS), *final_b = th_block(net, CN_BUFFERS);
    ok = ok && final_p && final_b;
    size_t k = 0;
    const char *prefix[3] = {"", "grad.", "final."};
    for (int p = 0; p < 3; p++)
        for (size_t i = 0; i < nt; i++) {
            cn_tensor_info ti;
            cn_net_tensor(net, i, &ti);
            if (p == 1 && !ti.trainable)
                continue;
            const float *base = p == 0   ? (ti.trainable ? init : init + np)
                                : p == 1 ? grad
                                         : (ti.trainable ? final_p : final_b);
            snprintf(names[k], 64, "%s%s", prefix[p], ti.name);
            t[k] = (cn_st_tensor){names[k],
                                  ti.ndim,
                                  {ti.dims[0], ti.dims[1], ti.dims[2], ti.dims[3]},
                                  base + ti.offset};
            k++;
        }
    for (size_t s = 0; s < STEPS; s++, k += 2) {
        snprintf(names[k], 64, "x.%zu", s);
        snprintf(names[k + 1], 64, "y.%zu", s);
        cn_shape sh = cn_net_input_shape(net);
        t[k] = (cn_st_tensor){names[k], 4, {BATCH, sh.c, sh.h, sh.w}, xs + s * BATCH * in};
        t[k + 1] = (cn_st_tensor){names[k + 1], 1, {BATCH, 0, 0, 0}, ys + s * BATCH};
    }
    t[k++] = (cn_st_tensor){"loss", 1, {STEPS, 0, 0, 0}, losses};
    char lr[32], mom[32], dec[32], steps[8], b2[32], eps[32];
    snprintf(b2, sizeof b2, "%.17g", o.beta2);
    snprintf(eps, sizeof eps, "%.17g", o.eps);
    snprintf(lr, sizeof lr, "%.17g", o.lr);
    snprintf(mom, sizeof mom, "%.17g", o.momentum);
    snprintf(dec, sizeof dec, "%.17g", o.decay);
    snprintf(steps, sizeof steps, "%d", STEPS);
    const char *meta[] = {"convnet.model",
                          cn_spec_text(spec),
                          "lr",
                          lr,
                          "momentum",
                          mom,
                          "decay",
                          dec,
                          "steps",
                          steps,
                          "name",
                          name,
                          "optimizer",
                          cn_optimizer_name(o.optimizer),
                          "beta2",
                          b2,
                          "eps",
                          eps};
    char path[600], cmd[800];
    snprintf(path, sizeof path, "%s/torch-%s.safetensors", th_tmpdir(), name);
    if (ok && cn_st_write(path, t, k, meta, sizeof meta / sizeof meta[0] / 2) == CN_OK) {
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/torch_check.py %s", path);
        fflush(stdout);
        int rc = system(cmd);
        if (rc != 0) {
            th_fail(__FILE__, __LINE__,
                    "%s failed (exit %d): see above; it needs Debian's python3-torch "
                    "(apt-get install python3-torch)",
                    cmd, rc);
            ok = 0;
        }
    } else if (ok) {
        th_fail(__FILE__, __LINE__, "%s", cn_last_error());
        ok = 0;
    }
    free(t);
    free(names);
    free(init);
    free(grad);
    free(final_p);
    free(final_b);
    free(xs);
    free(ys);
    cn_model_free(m);
    cn_spec_free(spec);
    return ok;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1 << 16, 1);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void lenet_matches_pytorch(void)
{
    char *text = read_text("models/lenet.cfg");
    CHECK(text);
    int ok = replay_in_pytorch("lenet", text);
    free(text);
    CHECK(ok);
}

/* Batch normalisation after convolutions and a fully connected layer, with
 * the running statistics compared too. */
static void batchnorm_net_matches_pytorch(void)
{
    CHECK(replay_in_pytorch("batchnorm",
                            "[net]\nchannels=1\nheight=12\nwidth=12\nclasses=10\n"
                            "[train]\nlr=0.1\nmomentum=0.9\n"
                            "[conv]\nfilters=6\nsize=3\npad=1\n[batchnorm]\n[relu]\n[maxpool]\n"
                            "[conv]\nfilters=8\nsize=3\n[batchnorm]\nmomentum=0.2\n[relu]\n"
                            "[fc]\noutputs=20\n[batchnorm]\neps=0.001\n[relu]\n"
                            "[fc]\noutputs=10\n[softmax]\n"));
}

/* Adam and AdamW against torch.optim's.  No bias right before a batch
 * normalisation here: its true gradient is zero, and Adam scales the rounding
 * noise that stands in for it up to full-size steps in both programs. */
static void adam_matches_pytorch(void)
{
    const char *net = "[conv]\nfilters=6\nsize=3\npad=1\n[relu]\n[maxpool]\n"
                      "[fc]\noutputs=20\n[relu]\n[fc]\noutputs=10\n[softmax]\n";
    char text[1024];
    for (int w = 0; w < 2; w++) {
        snprintf(text, sizeof text,
                 "[net]\nchannels=1\nheight=12\nwidth=12\nclasses=10\n"
                 "[train]\nlr=0.003\nmomentum=0.8\nbeta2=0.99\neps=1e-6\noptimizer=%s\n%s",
                 w ? "adamw" : "adam", net);
        CHECK(replay_in_pytorch(w ? "adamw" : "adam", text));
    }
}

/* Residual connections, leaky relu and average pooling (dropout's masks are
 * random, so it is checked by gradients only). */
static void residual_net_matches_pytorch(void)
{
    CHECK(replay_in_pytorch("residual",
                            "[net]\nchannels=2\nheight=10\nwidth=10\nclasses=10\n"
                            "[train]\nlr=0.1\nmomentum=0.9\n"
                            "[conv]\nfilters=6\nsize=3\npad=1\n[relu]\nname=block\n"
                            "[conv]\nfilters=6\nsize=3\npad=1\n[leaky]\nslope=0.1\n"
                            "[conv]\nfilters=6\nsize=3\npad=1\n[shortcut]\nfrom=block\n[relu]\n"
                            "[avgpool]\nsize=2\n[conv]\nfilters=8\nsize=3\npad=1\n[relu]\n"
                            "[avgpool]\nglobal=1\n[fc]\noutputs=10\n[softmax]\n"));
}

/* GELU (PyTorch's approximate='tanh') and SiLU, after convolutions, batch
 * normalisation and a fully connected layer: neither works in place (their
 * derivatives need their input). */
static void gelu_silu_match_pytorch(void)
{
    CHECK(replay_in_pytorch("gelu_silu",
                            "[net]\nchannels=2\nheight=10\nwidth=10\nclasses=10\n"
                            "[train]\nlr=0.1\nmomentum=0.9\n"
                            "[conv]\nfilters=6\nsize=3\npad=1\n[gelu]\n"
                            "[conv]\nfilters=6\nsize=3\n[batchnorm]\n[silu]\n[maxpool]\n"
                            "[fc]\noutputs=16\n[gelu]\n[fc]\noutputs=10\n[silu]\n[softmax]\n"));
}

const th_test th_torch[] = {
    {"torch/lenet_matches_pytorch", lenet_matches_pytorch},
    {"torch/batchnorm_net_matches_pytorch", batchnorm_net_matches_pytorch},
    {"torch/adam_matches_pytorch", adam_matches_pytorch},
    {"torch/residual_net_matches_pytorch", residual_net_matches_pytorch},
    {"torch/gelu_silu_match_pytorch", gelu_silu_match_pytorch},
    {NULL, NULL},
};
