/* test_torch.c - convnet against PyTorch: ten training steps of LeNet on the
 * same weights and batches must give the same losses, gradients and weights
 * (tests/torch_check.py replays them with torch.nn). */
#include "harness.h"
#include "internal.h"
#include "io/safetensors.h"

#include <stdlib.h>
#include <string.h>

#define STEPS 10
#define BATCH 16

static void matches_pytorch(void)
{
    cn_spec *spec;
    CHECK_OK(cn_spec_load("models/lenet.cfg", &spec));
    cn_train_opts o;
    cn_spec_train_opts(spec, &o);
    o.decay = 0.01; /* large enough to show in ten steps */
    cn_model *m;
    CHECK_OK(cn_model_create(spec, &o, 0, &m));
    cn_net *net = cn_model_net(m);
    size_t nt = cn_net_num_tensors(net), np = cn_net_num_params(net);
    size_t in = cn_shape_size(cn_net_input_shape(net));
    size_t total = 3 * nt + 2 * STEPS + 1;
    cn_st_tensor *t = calloc(total, sizeof *t);
    char(*names)[64] = calloc(total, 64);
    float *init = malloc(np * 4), *grad = malloc(np * 4);
    float *xs = malloc((size_t)STEPS * BATCH * in * 4), *ys = malloc(STEPS * BATCH * 4);
    float losses[STEPS];
    int32_t labels[BATCH];
    memcpy(init, cn_net_params(net), np * 4);
    cn_rng rng;
    cn_rng_seed(&rng, 99);
    th_fill_normal(xs, (size_t)STEPS * BATCH * in, &rng);
    for (size_t s = 0; s < STEPS; s++) {
        for (size_t b = 0; b < BATCH; b++) {
            labels[b] = (int32_t)cn_rng_below(&rng, 10);
            ys[s * BATCH + b] = (float)labels[b];
        }
        CHECK_OK(cn_net_forward(net, xs + s * BATCH * in, BATCH));
        double loss;
        CHECK_OK(cn_net_loss(net, labels, BATCH, &loss));
        losses[s] = (float)loss;
        cn_net_zero_grads(net);
        CHECK_OK(cn_net_backward(net, labels, BATCH, NULL));
        if (s == 0)
            memcpy(grad, cn_net_grads(net), np * 4);
        cn_optim_step(&m->optim, &net->be, &o, o.lr, cn_net_params(net), cn_net_grads(net), np);
    }
    size_t k = 0;
    const char *prefix[3] = {"", "grad.", "final."};
    const float *base[3] = {init, grad, cn_net_params(net)};
    for (int p = 0; p < 3; p++)
        for (size_t i = 0; i < nt; i++, k++) {
            cn_tensor_info ti;
            cn_net_tensor(net, i, &ti);
            snprintf(names[k], 64, "%s%s", prefix[p], ti.name);
            t[k] = (cn_st_tensor){names[k],
                                  ti.ndim,
                                  {ti.dims[0], ti.dims[1], ti.dims[2], ti.dims[3]},
                                  base[p] + ti.offset};
        }
    for (size_t s = 0; s < STEPS; s++, k += 2) {
        snprintf(names[k], 64, "x.%zu", s);
        snprintf(names[k + 1], 64, "y.%zu", s);
        t[k] = (cn_st_tensor){names[k], 4, {BATCH, 1, 28, 28}, xs + s * BATCH * in};
        t[k + 1] = (cn_st_tensor){names[k + 1], 1, {BATCH, 0, 0, 0}, ys + s * BATCH};
    }
    t[k++] = (cn_st_tensor){"loss", 1, {STEPS, 0, 0, 0}, losses};
    char lr[32], mom[32], dec[32], steps[8];
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
                          steps};
    char path[600], cmd[800];
    snprintf(path, sizeof path, "%s/torch.safetensors", th_tmpdir());
    CHECK_OK(cn_st_write(path, t, k, meta, 5));
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/torch_check.py %s", path);
    fflush(stdout);
    int rc = system(cmd);
    CHECK_MSG(rc == 0,
              "%s failed (exit %d); it needs Debian's python3-torch "
              "(apt-get install python3-torch)",
              cmd, rc);
    free(t);
    free(names);
    free(init);
    free(grad);
    free(xs);
    free(ys);
    cn_model_free(m);
    cn_spec_free(spec);
}

const th_test th_torch[] = {
    {"torch/matches_pytorch", matches_pytorch},
    {NULL, NULL},
};
