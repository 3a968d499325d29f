/* test_explain.c - why the network decided: the class gradient against
 * central differences (through batch normalisation in evaluation mode),
 * saliency as its largest magnitude, occlusion on a network whose class
 * depends on one quadrant, Grad-CAM against PyTorch
 * (tests/gradcam_check.py), the errors for bad classes and layers, and
 * Zeiler and Fergus's deconvnet (with guided backpropagation) by hand and
 * against PyTorch (tests/deconv_check.py). */
#include "convnet_vis.h"
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* A small net with every layer kind the gradient passes in evaluation mode. */
static const char small_net[] = "[net]\nchannels = 1\nheight = 8\nwidth = 8\nclasses = 3\n"
                                "mean = 0.2\nstd = 0.4\n"
                                "[conv]\nfilters = 4\nsize = 3\npad = 1\n[batchnorm]\n[relu]\n"
                                "[maxpool]\nsize = 2\n[dropout]\nrate = 0.3\n"
                                "[fc]\noutputs = 6\n[batchnorm]\n[tanh]\n[fc]\noutputs = 3\n"
                                "[softmax]\n";

/* Random running statistics, so that evaluation-mode batch normalisation
 * is more than the identity. */
static void random_buffers(cn_net *net, cn_rng *rng)
{
    size_t nb = cn_net_num_buffers(net);
    float *b = malloc(nb * sizeof *b);
    for (size_t i = 0; i < nb; i++)
        b[i] = 0.5f + (float)cn_rng_uniform(rng);
    CHECK_OK(cn_net_set(net, CN_BUFFERS, 0, nb, b));
    free(b);
}

/* The logit of class c for input x (C, H, W), from an evaluation pass. */
static double logit(cn_net *net, const float *x, int c)
{
    size_t nl = cn_net_num_layers(net), k = cn_net_classes(net);
    float z[16];
    if (cn_net_forward(net, x, 1, 0) || cn_net_get_layer_output(net, nl - 2, 0, 1, z))
        return NAN;
    return c < (int)k ? z[c] : NAN;
}

static void gradient_and_saliency(void)
{
    cn_spec *spec = th_spec(small_net);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 4, th_dev(1), &net));
    cn_rng rng;
    cn_rng_seed(&rng, 7);
    cn_net_init(net, &rng);
    random_buffers(net, &rng);
    uint8_t pix[64];
    for (int i = 0; i < 64; i++)
        pix[i] = (uint8_t)(cn_rng_uniform(&rng) * 255);
    float x[64], dx[64], map[64];
    cn_net_prepare(net, pix, 1, x);
    for (int c = 0; c < 3; c++) {
        CHECK_OK(cn_net_forward(net, x, 1, 0));
        int32_t c32 = c;
        CHECK_OK(cn_net_class_gradient(net, &c32, 1, 0, NULL, dx));
        double num = 0, den = 0;
        for (int j = 0; j < 64; j++) {
            float keep = x[j];
            x[j] = keep + 1e-2f;
            double up = logit(net, x, c);
            x[j] = keep - 1e-2f;
            double down = logit(net, x, c);
            x[j] = keep;
            double g = (up - down) / 2e-2;
            num += (g - dx[j]) * (g - dx[j]);
            den += g * g;
        }
        CHECK_MSG(den > 0 && sqrt(num / den) < 1e-2,
                  "class %d: d logit / dx differs from central differences by %.3g (relative)", c,
                  sqrt(num / den));
        CHECK_OK(cn_explain_saliency(net, pix, c, map));
        for (int j = 0; j < 64; j++)
            CHECK_NEAR(map[j], fabsf(dx[j]), 1e-6);
    }
    cn_net_free(net);
    cn_spec_free(spec);
}

/* Class 1 when the top-left 4 x 4 quadrant of an 8 x 8 image is bright:
 * logit1 = 10 mean(quadrant) - 5 (pixels / 255), logit0 = 0. */
static void occlusion_finds_the_quadrant(void)
{
    cn_spec *spec = th_spec("[net]\nchannels = 1\nheight = 8\nwidth = 8\nclasses = 2\n"
                            "[avgpool]\nsize = 4\n[fc]\noutputs = 2\n[softmax]\n");
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 16, th_dev(1), &net));
    cn_tensor_info w, b;
    CHECK_OK(cn_net_tensor(net, cn_net_find_tensor(net, "fc1.weight"), &w));
    CHECK_OK(cn_net_tensor(net, cn_net_find_tensor(net, "fc1.bias"), &b));
    float wv[8] = {0, 0, 0, 0, 10, 0, 0, 0}, bv[2] = {0, -5}; /* (2 outputs, 4 quadrants) */
    CHECK_OK(cn_net_set(net, CN_PARAMS, w.offset, 8, wv));
    CHECK_OK(cn_net_set(net, CN_PARAMS, b.offset, 2, bv));
    uint8_t pix[64] = {0};
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            pix[y * 8 + x] = 255;
    int top;
    float p;
    CHECK_OK(cn_explain_top_class(net, pix, &top, &p));
    CHECK(top == 1 && p > 0.99f);
    int classes[2] = {1, 0};
    float maps[128];
    CHECK_OK(cn_explain_occlusion(net, pix, classes, 2, 4, 2, maps));
    double in = 0, out = 0;
    int lowest = 0;
    for (int j = 0; j < 64; j++) {
        int quadrant = j / 8 < 4 && j % 8 < 4;
        *(quadrant ? &in : &out) += maps[j] / 16.0 / (quadrant ? 1 : 3);
        lowest = maps[j] < maps[lowest] ? j : lowest;
        CHECK_NEAR(maps[j] + maps[64 + j], 1.0, 1e-5); /* two classes */
        /* far from the quadrant no square touches it: the probability stays */
        if (j / 8 >= 6 || j % 8 >= 6)
            CHECK_NEAR(maps[j], p, 1e-6);
    }
    CHECK_MSG(in < out - 0.1, "occlusion map: %.3f inside the quadrant, %.3f outside", in, out);
    CHECK(lowest / 8 < 4 && lowest % 8 < 4);
    /* squares as far apart as they are wide still cover every pixel */
    for (int patch = 1; patch <= 5; patch++) {
        CHECK_OK(cn_explain_occlusion(net, pix, classes, 1, patch, patch, maps));
        for (int j = 0; j < 64; j++)
            CHECK_MSG(maps[j] >= 0.0f && maps[j] <= 1.0f, "patch %d: pixel %d has %g", patch, j,
                      (double)maps[j]);
    }
    /* bad settings */
    CHECK_ERR(cn_explain_occlusion(net, pix, classes, 1, 4, 5, maps), CN_ERR_ARG);
    CHECK_ERR(cn_explain_occlusion(net, pix, classes, 1, 0, 1, maps), CN_ERR_ARG);
    classes[0] = 2;
    CHECK_ERR(cn_explain_occlusion(net, pix, classes, 1, 4, 2, maps), CN_ERR_ARG);
    cn_net_free(net);
    cn_spec_free(spec);
}

static void bad_class_and_layer(void)
{
    cn_spec *spec = th_spec(small_net);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 4, th_dev(1), &net));
    cn_rng rng;
    cn_rng_seed(&rng, 3);
    cn_net_init(net, &rng);
    uint8_t pix[64] = {0};
    float map[64];
    size_t layer = 99;
    CHECK_OK(cn_explain_find_layer(net, NULL, &layer));
    CHECK(layer == 0); /* the last (only) convolution */
    CHECK_ERR(cn_explain_find_layer(net, "conv", &layer), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "no layer named 'conv'") &&
          th_contains(cn_last_error(), "conv1"));
    CHECK_ERR(cn_explain_find_layer(net, "fc2", &layer), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "no feature maps"));
    CHECK_ERR(cn_explain_saliency(net, pix, 3, map), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "class 3 does not exist"));
    CHECK_ERR(cn_explain_gradcam(net, pix, -1, 0, map), CN_ERR_ARG);
    /* the class gradient wants an evaluation pass over its samples */
    float x[64] = {0};
    int32_t c = 0;
    CHECK_OK(cn_net_forward(net, x, 1, 1));
    CHECK_ERR(cn_net_class_gradient(net, &c, 1, 0, map, NULL), CN_ERR_ARG);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* Sets the tensor called name (parameters or buffers) to v. */
static void set_tensor(cn_net *net, const char *name, const float *v)
{
    cn_tensor_info ti;
    CHECK_OK(cn_net_tensor(net, cn_net_find_tensor(net, name), &ti));
    CHECK_OK(cn_net_set(net, ti.trainable ? CN_PARAMS : CN_BUFFERS, ti.offset, ti.count, v));
}

/* The deconvnet, worked by hand on two tiny networks.
 *
 * Rules: conv1 (1x1, weights 2 and -1) -> relu -> conv2 (1x1, weights -1
 * and 3), input 1 everywhere.  relu's inputs are 2 (on) and -1 (off).  A
 * signal of 1 at one position of conv2's output reaches relu's output as
 * (-1, 3), so at that input position
 *   gradient: 2 * (-1) * [on] + (-1) * 3 * [off]         = -2
 *   deconvnet: 2 * relu(-1) + (-1) * relu(3)              = -3
 *   guided:    2 * relu(-1) * [on] + (-1) * relu(3) * [off] = 0
 * and 0 elsewhere.
 *
 * Unpooling: conv1 (3x3, pad 1, weights 0.1 .. 0.9 row by row) -> relu ->
 * maxpool 2x2 on a 4x4 input that is 1 at (1, 0) only.  conv1's output
 * there is w[2 - r][1 - c] at (r, c), so the first pooling window's maximum
 * is 0.8 at (0, 0).  That response alone, carried back: unpooled to (0, 0),
 * passed by relu, spread by the filter as the transposed convolution does:
 * dx[r][c] = 0.8 w[r + 1][c + 1], that is 0.4 0.48 / 0.64 0.72 in the top
 * left corner, 0 elsewhere.  The pooled unit (0, 0) sees input rows and
 * columns -1..2, unit (1, 1) rows and columns 1..4, and the fully connected
 * layer after them everything from -1 to 4. */
static void projection_by_hand(void)
{
    cn_spec *spec = th_spec("[net]\nchannels = 1\nheight = 3\nwidth = 3\nclasses = 2\n"
                            "[conv]\nfilters = 2\nsize = 1\n[relu]\n[conv]\nfilters = 1\nsize = 1\n"
                            "[fc]\noutputs = 2\n[softmax]\n");
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 2, th_dev(1), &net));
    cn_rng rng;
    cn_rng_seed(&rng, 5);
    cn_net_init(net, &rng);
    set_tensor(net, "conv1.weight", (const float[]){2, -1});
    set_tensor(net, "conv1.bias", (const float[]){0, 0});
    set_tensor(net, "conv2.weight", (const float[]){-1, 3});
    set_tensor(net, "conv2.bias", (const float[]){0});
    float x[9], signal[9] = {0}, dx[9];
    for (int i = 0; i < 9; i++)
        x[i] = 1.0f;
    signal[4] = 1.0f; /* the centre, (1, 1) */
    const cn_backrule rules[3] = {CN_BACK_GRADIENT, CN_BACK_DECONV, CN_BACK_GUIDED};
    const float want[3] = {-2.0f, -3.0f, 0.0f};
    for (int r = 0; r < 3; r++) {
        CHECK_OK(cn_net_forward(net, x, 1, 0));
        CHECK_OK(cn_net_project(net, 2, signal, 1, rules[r], dx));
        for (int i = 0; i < 9; i++)
            CHECK_NEAR(dx[i], i == 4 ? want[r] : 0.0f, 1e-6);
    }
    /* The projection wants an evaluation pass just before it. */
    CHECK_OK(cn_net_forward(net, x, 1, 1));
    CHECK_ERR(cn_net_project(net, 2, signal, 1, CN_BACK_DECONV, dx), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "evaluation pass"));
    CHECK_OK(cn_net_forward(net, x, 1, 0));
    CHECK_ERR(cn_net_project(net, 4, signal, 1, CN_BACK_DECONV, dx), CN_ERR_ARG);
    CHECK_ERR(cn_net_project(net, 2, signal, 1, (cn_backrule)7, dx), CN_ERR_ARG);
    cn_net_free(net);
    cn_spec_free(spec);

    spec = th_spec("[net]\nchannels = 1\nheight = 4\nwidth = 4\nclasses = 2\n"
                   "[conv]\nfilters = 1\nsize = 3\npad = 1\n[relu]\n[maxpool]\nsize = 2\n"
                   "[fc]\noutputs = 2\n[softmax]\n");
    CHECK_OK(cn_net_create(spec, 2, th_dev(1), &net));
    cn_net_init(net, &rng);
    set_tensor(net, "conv1.weight", (const float[]){.1f, .2f, .3f, .4f, .5f, .6f, .7f, .8f, .9f});
    set_tensor(net, "conv1.bias", (const float[]){0});
    float x4[16] = {0}, pooled[4], seed[4] = {0}, d4[16];
    x4[4] = 1.0f; /* (1, 0) */
    CHECK_OK(cn_net_forward(net, x4, 1, 0));
    CHECK_OK(cn_net_get_layer_output(net, 2, 0, 1, pooled));
    CHECK_NEAR(pooled[0], 0.8f, 1e-6);
    seed[0] = pooled[0];
    CHECK_OK(cn_net_project(net, 2, seed, 1, CN_BACK_DECONV, d4));
    const float by_hand[16] = {0.4f, 0.48f, 0, 0, 0.64f, 0.72f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 16; i++)
        CHECK_NEAR(d4[i], by_hand[i], 1e-6);
    long box[4];
    CHECK_OK(cn_net_receptive_field(net, 2, 0, 0, box));
    CHECK(box[0] == -1 && box[1] == -1 && box[2] == 3 && box[3] == 3);
    CHECK_OK(cn_net_receptive_field(net, 2, 1, 1, box));
    CHECK(box[0] == 1 && box[1] == 1 && box[2] == 5 && box[3] == 5);
    CHECK_OK(cn_net_receptive_field(net, 3, 0, 0, box)); /* after fc: all, padding too */
    CHECK(box[0] == -1 && box[1] == -1 && box[2] == 5 && box[3] == 5);
    CHECK_ERR(cn_net_receptive_field(net, 2, 2, 0, box), CN_ERR_ARG);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* The deconvnet and guided backpropagation of a random MNIST network
 * against PyTorch's (tests/deconv_check.py, whose rectifiers pass the
 * signal by each rule), from the strongest response of one channel per
 * image, at a layer of its own (conv2) and at one a relu overwrites in
 * place (batchnorm2: the projection starts at relu2's output). */
static void deconv_matches_pytorch(void)
{
    cn_spec *spec;
    CHECK_OK(cn_spec_load("models/mnist.cfg", &spec));
    cn_model *m = NULL;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(0), &m));
    cn_net *net = cn_model_net(m);
    cn_rng rng;
    cn_rng_seed(&rng, 13);
    random_buffers(net, &rng);
    char path[512];
    snprintf(path, sizeof path, "%s", th_path("deconv.safetensors"));
    CHECK_OK(cn_model_save(m, path));
    enum { N = 3 };
    uint8_t pix[N][784];
    for (int s = 0; s < N; s++)
        for (int j = 0; j < 784; j++)
            pix[s][j] = (uint8_t)(cn_rng_uniform(&rng) < 0.3 ? cn_rng_uniform(&rng) * 255 : 0);
    CHECK(th_write_file(th_path("deconv.u8"), pix, sizeof pix));
    const char *layers[2][2] = {{"conv2", "conv2"}, {"batchnorm2", "relu2"}};
    const cn_backrule rules[2] = {CN_BACK_DECONV, CN_BACK_GUIDED};
    for (int l = 0; l < 2; l++) {
        size_t layer;
        cn_layer_info li;
        CHECK_OK(cn_explain_find_layer(net, layers[l][0], &layer));
        CHECK_OK(cn_net_layer(net, layer, &li));
        size_t osz = li.out.c * li.out.h * li.out.w, hw = li.out.h * li.out.w;
        float *y = malloc(osz * sizeof *y), *signal = calloc(osz, sizeof *signal);
        float *dx = malloc(2 * N * 784 * sizeof *dx);
        char units[256] = "", name[64], cmd[2048];
        for (int r = 0; r < 2; r++)
            for (int s = 0; s < N; s++) {
                size_t ch = (size_t)(7 * s + 3) % li.out.c, at = 0;
                CHECK_OK(cn_net_forward_pixels(net, pix[s], 1, 0));
                CHECK_OK(cn_net_get_layer_output(net, layer, 0, 1, y));
                for (size_t p = 1; p < hw; p++)
                    at = y[ch * hw + p] > y[ch * hw + at] ? p : at;
                signal[ch * hw + at] = y[ch * hw + at];
                CHECK_OK(cn_net_project(net, layer, signal, 1, rules[r], dx + (r * N + s) * 784));
                signal[ch * hw + at] = 0.0f;
                if (r == 0)
                    snprintf(units + strlen(units), sizeof units - strlen(units), "%s%zu:%zu:%zu",
                             s ? "," : "", ch, at / li.out.w, at % li.out.w);
            }
        snprintf(name, sizeof name, "proj%d.f32", l);
        CHECK(th_write_file(th_path(name), dx, 2 * N * 784 * sizeof *dx));
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/deconv_check.py %s %s %s %s %s", path,
                 th_path("deconv.u8"), th_path(name), layers[l][1], units);
        fflush(stdout);
        int rc = system(cmd);
        CHECK_MSG(rc == 0, "%s: exit status %d (needs python3-torch)", cmd,
                  WIFEXITED(rc) ? WEXITSTATUS(rc) : rc);
        free(y);
        free(signal);
        free(dx);
    }
    cn_model_free(m);
    cn_spec_free(spec);
}

/* Grad-CAM of a random MNIST network against PyTorch's, at a layer whose
 * output is its own (conv2, before pooling) and at one that a relu
 * overwrites in place (batchnorm2: Grad-CAM sees relu2's output). */
static void gradcam_matches_pytorch(void)
{
    cn_spec *spec;
    CHECK_OK(cn_spec_load("models/mnist.cfg", &spec));
    cn_model *m = NULL;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(0), &m));
    cn_net *net = cn_model_net(m);
    cn_rng rng;
    cn_rng_seed(&rng, 11);
    random_buffers(net, &rng);
    char path[512];
    snprintf(path, sizeof path, "%s", th_path("model.safetensors"));
    CHECK_OK(cn_model_save(m, path));
    enum { N = 3 };
    const char *layers[2][2] = {{"conv2", "conv2"}, {"batchnorm2", "relu2"}};
    int classes[N] = {0, 4, 9};
    uint8_t pix[N][784];
    for (int s = 0; s < N; s++)
        for (int j = 0; j < 784; j++)
            pix[s][j] = (uint8_t)(cn_rng_uniform(&rng) < 0.2 ? cn_rng_uniform(&rng) * 255 : 0);
    CHECK(th_write_file(th_path("pixels.u8"), pix, sizeof pix));
    for (int l = 0; l < 2; l++) {
        size_t layer;
        cn_layer_info li;
        CHECK_OK(cn_explain_find_layer(net, layers[l][0], &layer));
        CHECK_OK(cn_net_layer(net, layer, &li));
        size_t hw = li.out.h * li.out.w;
        float *maps = malloc(N * hw * sizeof *maps);
        for (int s = 0; s < N; s++)
            CHECK_OK(cn_explain_gradcam(net, pix[s], classes[s], layer, maps + s * hw));
        char name[64], cmd[2048];
        snprintf(name, sizeof name, "maps%d.f32", l);
        CHECK(th_write_file(th_path(name), maps, N * hw * sizeof *maps));
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 tests/gradcam_check.py %s %s %s %s %zu %zu 0,4,9", path,
                 th_path("pixels.u8"), th_path(name), layers[l][1], li.out.h, li.out.w);
        fflush(stdout);
        int rc = system(cmd);
        CHECK_MSG(rc == 0, "%s: exit status %d (needs python3-torch)", cmd,
                  WIFEXITED(rc) ? WEXITSTATUS(rc) : rc);
        free(maps);
    }
    cn_model_free(m);
    cn_spec_free(spec);
}

const th_test th_explain[] = {
    {"explain/gradient_and_saliency", gradient_and_saliency},
    {"explain/occlusion_finds_the_quadrant", occlusion_finds_the_quadrant},
    {"explain/bad_class_and_layer", bad_class_and_layer},
    {"explain/gradcam_matches_pytorch", gradcam_matches_pytorch},
    {"explain/projection_by_hand", projection_by_hand},
    {"explain/deconv_matches_pytorch", deconv_matches_pytorch},
    {NULL, NULL},
};
