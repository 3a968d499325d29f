/* test_torch.c - convnet against PyTorch (tests/torch_check.py, with the
 * networks of scripts/torchnet.py): ten training steps on the same weights and
 * batches must give the same losses, gradients, and updates of the weights
 * and batch-norm running statistics; a trained model file must load into
 * PyTorch and classify the MNIST test set as convnet does; and the README's
 * recipe for that must work as written. */
#include "harness.h"
#include "internal.h"
#include "io/safetensors.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define STEPS 10
#define BATCH 16

/* Runs cmd (a tests/torch_check.py check, which prints what it measured);
 * 1 when it passed. */
static int run_python(const char *cmd)
{
    fflush(stdout);
    int rc = system(cmd);
    if (rc != 0)
        th_fail(__FILE__, __LINE__,
                "%s: exit status %d (the lines above say why; the checks need Debian's "
                "python3-torch: apt-get install python3-torch)",
                cmd, WIFEXITED(rc) ? WEXITSTATUS(rc) : rc);
    return rc == 0;
}

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
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/torch_check.py replay %s", path);
        ok = run_python(cmd);
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

/* ------------------------------------------------- model files in PyTorch */

/* A network with all that a model file must carry for evaluation: batch
 * normalisation after convolutions and after a fully connected layer (their
 * running statistics), the input's normalisation measured per channel
 * (input.mean, input.std), and dropout and max pooling, which evaluation
 * treats apart from training. */
static const char *MNIST_NET =
    "[net]\nchannels=1\nheight=28\nwidth=28\nclasses=10\nnormalise=channel\n"
    "[train]\nepochs=1\nbatch=50\nlr=1.0\nmomentum=0.9\ndecay=0.0005\nlr_policy=onecycle\n"
    "seed=4\n"
    "[conv]\nfilters=6\nsize=5\n[maxpool]\n[batchnorm]\n[relu]\n"
    "[conv]\nfilters=12\nsize=3\n[maxpool]\n[batchnorm]\nmomentum=0.2\n[relu]\n"
    "[dropout]\nrate=0.25\n[fc]\noutputs=32\n[batchnorm]\neps=0.001\n[relu]\n"
    "[dropout]\nrate=0.3\n[fc]\noutputs=10\n[softmax]\n";

/* The command-line tool built beside this test program. */
static const char *convnet_bin(void)
{
    static char path[PATH_MAX + 16];
    ssize_t n = readlink("/proc/self/exe", path, PATH_MAX);
    if (n <= 0)
        return NULL;
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    strcpy(slash ? slash + 1 : path, "convnet");
    return access(path, X_OK) == 0 ? path : NULL;
}

/* dir laid out as the repository for the README's recipe: scripts/ and
 * data/mnist, links to the real ones; 1 on success. */
static int repository_layout(const char *dir, const char *root)
{
    char data[2 * PATH_MAX], link[PATH_MAX + 32], target[PATH_MAX + 32];
    const char *d = th_data_dir();
    snprintf(data, sizeof data, "%s%s%s", d[0] == '/' ? "" : root, d[0] == '/' ? "" : "/", d);
    snprintf(link, sizeof link, "%s/data", dir);
    if (mkdir(link, 0755) != 0)
        return 0;
    snprintf(link, sizeof link, "%s/data/mnist", dir);
    if (symlink(data, link) != 0)
        return 0;
    snprintf(link, sizeof link, "%s/scripts", dir);
    snprintf(target, sizeof target, "%s/scripts", root);
    return symlink(target, link) == 0;
}

/* MNIST_NET trained for an epoch on the first 6 000 MNIST training images
 * and saved by cn_model_save, then, in PyTorch (tests/torch_check.py model):
 * the file loaded into the network scripts/torchnet.py builds from its
 * description, strictly (every tensor of the network from the file, none of
 * the file's left over but the optimizer's), in evaluation mode, gives the
 * same best class as convnet on all 10 000 test images and every probability
 * within 1e-5; and the README's recipe, run as written in a directory laid
 * out as the repository, prints the accuracy 'convnet eval' prints. */
static void model_file_in_pytorch(void)
{
    const char *bin = convnet_bin(), *dir = th_tmpdir();
    char root[PATH_MAX], path[600], cmd[4 * PATH_MAX];
    CHECK_MSG(bin, "no convnet beside the test program: make builds both");
    CHECK(getcwd(root, sizeof root) && repository_layout(dir, root));
    cn_spec *spec = th_spec(MNIST_NET);
    CHECK(spec);
    cn_data all, test;
    if (cn_data_load_mnist(th_data_dir(), "train", &all) != CN_OK ||
        cn_data_load_mnist(th_data_dir(), "t10k", &test) != CN_OK) {
        th_fail(__FILE__, __LINE__, "%s (make data fetches MNIST)", cn_last_error());
        cn_spec_free(spec);
        return;
    }
    cn_data train = cn_data_slice(&all, 0, 6000);
    cn_model *m = NULL;
    snprintf(path, sizeof path, "%s/mnist.safetensors", dir);
    CHECK_OK(cn_model_create(spec, NULL, th_dev(0), &m));
    CHECK_OK(cn_model_train(m, &train, NULL, NULL));
    CHECK_OK(cn_model_save(m, path));
    cn_data_free(&all);
    cn_spec_free(spec);

    /* convnet's probabilities, for PyTorch to compare. */
    enum { CHUNK = 500, CLASSES = 10 };
    CHECK_OK(cn_model_reserve(m, CHUNK)); /* which may build the network anew */
    cn_net *net = cn_model_net(m);
    float *probs = malloc(test.n * CLASSES * sizeof *probs);
    CHECK(probs);
    size_t right = 0, in = cn_shape_size(cn_net_input_shape(net));
    for (size_t i = 0; i < test.n; i += CHUNK) {
        size_t n = test.n - i < CHUNK ? test.n - i : CHUNK;
        CHECK_OK(cn_net_forward_pixels(net, test.pixels + i * in, n, 0));
        CHECK_OK(cn_net_get_output(net, probs + i * CLASSES));
        for (size_t s = i; s < i + n; s++) {
            size_t best = 0;
            for (size_t k = 1; k < CLASSES; k++)
                best = probs[s * CLASSES + k] > probs[s * CLASSES + best] ? k : best;
            right += best == (size_t)test.labels[s];
        }
    }
    /* Trained: a model that guesses would agree with anything. */
    CHECK_MSG(right > 9000, "convnet's accuracy %.2f%%", 100.0 * (double)right / (double)test.n);
    snprintf(path, sizeof path, "%s/probs.safetensors", dir);
    cn_st_tensor t = {"probs", 2, {test.n, CLASSES, 0, 0}, probs};
    CHECK_OK(cn_st_write(path, &t, 1, NULL, 0));
    snprintf(cmd, sizeof cmd,
             "cd %s && /usr/bin/python3 %s/tests/torch_check.py model mnist.safetensors "
             "probs.safetensors data/mnist %s/README.md %s",
             dir, root, root, bin);
    CHECK(run_python(cmd));
    free(probs);
    cn_data_free(&test);
    cn_model_free(m);
}

const th_test th_torch[] = {
    {"torch/lenet_matches_pytorch", lenet_matches_pytorch},
    {"torch/batchnorm_net_matches_pytorch", batchnorm_net_matches_pytorch},
    {"torch/adam_matches_pytorch", adam_matches_pytorch},
    {"torch/residual_net_matches_pytorch", residual_net_matches_pytorch},
    {"torch/gelu_silu_match_pytorch", gelu_silu_match_pytorch},
    {"torch/model_file_in_pytorch", model_file_in_pytorch},
    {NULL, NULL},
};
