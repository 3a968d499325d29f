/* test_explain.c - why the network decided: the class gradient against
 * central differences (through batch normalisation in evaluation mode),
 * saliency as its largest magnitude, occlusion on a network whose class
 * depends on one quadrant, Grad-CAM against PyTorch
 * (tests/gradcam_check.py), and the errors for bad classes and layers. */
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
    {NULL, NULL},
};
