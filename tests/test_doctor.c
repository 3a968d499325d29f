/* test_doctor.c - what the doctor measures: layer and block figures against
 * the host's arithmetic, NaN traced to its layer and tensor in the forward
 * and the backward pass, and a watched model's step. */
#include "convnet_vis.h"
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* conv (fused relu) -> maxpool -> fc (relu) -> fc -> softmax */
static const char small[] = "[net]\nchannels=1\nheight=6\nwidth=6\nclasses=4\n"
                            "[conv]\nfilters=3\nsize=3\n[relu]\n[maxpool]\nsize=2\n"
                            "[fc]\noutputs=5\n[relu]\n[fc]\noutputs=4\n[softmax]\n";

static cn_net *small_net(cn_spec **spec, size_t n, float *x, cn_rng *rng)
{
    *spec = th_spec(small);
    cn_net *net = NULL;
    if (!*spec || cn_net_create(*spec, n, th_dev(1), &net))
        return NULL;
    cn_net_init(net, rng);
    th_fill_normal(x, n * 36, rng);
    return net;
}

/* The figures of every layer's output equal the host's from its copy. */
static void layer_stats_match_the_host(void)
{
    enum { N = 5 };
    cn_rng rng;
    cn_rng_seed(&rng, 4);
    float x[N * 36];
    cn_spec *spec;
    cn_net *net = small_net(&spec, N, x, &rng);
    CHECK(net);
    /* channel 0 of the convolution never fires */
    cn_tensor_info ti;
    CHECK_OK(cn_net_tensor(net, cn_net_find_tensor(net, "conv1.bias"), &ti));
    th_put(net, CN_PARAMS, ti.offset, -100.0f);
    cn_stats s;
    CHECK_ERR(cn_net_layer_stats(net, 0, &s), CN_ERR_ARG); /* no forward pass yet */
    CHECK_OK(cn_net_forward(net, x, N, 1));
    for (size_t i = 0; i < cn_net_num_layers(net); i++) {
        cn_layer_info li;
        CHECK_OK(cn_net_layer(net, i, &li));
        CHECK_OK(cn_net_layer_stats(net, i, &s));
        size_t per = li.out.c * li.out.h * li.out.w, hw = li.out.h * li.out.w;
        const float *y = th_layer_output(net, i, N);
        double sum = 0, sum2 = 0, most = 0;
        size_t dead = 0;
        for (size_t k = 0; k < N * per; k++) {
            sum += y[k];
            sum2 += (double)y[k] * y[k];
            most = fabs(y[k]) > most ? fabs(y[k]) : most;
        }
        for (size_t c = 0; c < li.out.c; c++) {
            int alive = 0;
            for (size_t r = 0; r < N; r++)
                for (size_t k = 0; k < hw; k++)
                    alive |= y[r * per + c * hw + k] > 0;
            dead += !alive;
        }
        double mean = sum / (N * per);
        CHECK(s.count == N * per && s.nonfinite == 0 && s.units == li.out.c);
        CHECK_NEAR(s.mean, mean, 1e-5);
        CHECK_NEAR(s.std, sqrt(fmax(sum2 / (N * per) - mean * mean, 0)), 1e-5);
        CHECK_NEAR(s.norm, sqrt(sum2), 1e-4);
        CHECK_NEAR(s.max_abs, most, 0);
        CHECK(s.dead == dead);
    }
    /* the relu works in place over the convolution's output: conv says so */
    CHECK_OK(cn_net_layer_stats(net, 0, &s));
    CHECK(s.in_place == 1 && s.dead == 1);
    CHECK_OK(cn_net_layer_stats(net, 2, &s));
    CHECK(s.in_place == 0);
    /* a block: the weights' norm */
    CHECK_OK(cn_net_tensor(net, cn_net_find_tensor(net, "fc1.weight"), &ti));
    float *w = malloc(ti.count * sizeof *w);
    CHECK(w);
    cn_net_get(net, CN_PARAMS, ti.offset, ti.count, w);
    double n2 = 0;
    for (size_t k = 0; k < ti.count; k++)
        n2 += (double)w[k] * w[k];
    free(w);
    CHECK_OK(cn_net_block_stats(net, CN_PARAMS, ti.offset, ti.count, &s));
    CHECK_NEAR(s.norm, sqrt(n2), 1e-5);
    CHECK(s.count == ti.count && s.units == ti.count);
    CHECK_ERR(cn_net_block_stats(net, CN_PARAMS, cn_net_num_params(net), 1, &s), CN_ERR_ARG);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* A huge weight overflows a layer's output: the trace names that layer; a
 * NaN weight is named itself; a healthy pass finds nothing. */
static void forward_trace_names_the_layer(void)
{
    enum { N = 3 };
    cn_rng rng;
    cn_rng_seed(&rng, 5);
    float x[N * 36];
    cn_spec *spec;
    cn_net *net = small_net(&spec, N, x, &rng);
    CHECK(net);
    cn_trace t;
    CHECK_ERR(cn_net_trace_forward(net, &t), CN_ERR_ARG);
    CHECK_OK(cn_net_forward(net, x, N, 1));
    CHECK_OK(cn_net_trace_forward(net, &t));
    CHECK(t.found == 0);
    cn_tensor_info ti;
    CHECK_OK(cn_net_tensor(net, cn_net_find_tensor(net, "fc2.weight"), &ti));
    for (size_t k = 0; k < ti.count; k++)
        th_put(net, CN_PARAMS, ti.offset + k, 3e38f);
    CHECK_OK(cn_net_forward(net, x, N, 1));
    CHECK_OK(cn_net_trace_forward(net, &t));
    cn_layer_info li;
    CHECK_OK(cn_net_layer(net, t.layer, &li));
    CHECK(t.found && !t.backward && strcmp(li.name, "fc2") == 0);
    CHECK(strcmp(t.tensor, "fc2 output") == 0 && t.count == N * 4 && t.nonfinite > 0);
    CHECK_OK(cn_net_tensor(net, cn_net_find_tensor(net, "conv1.weight"), &ti));
    th_put(net, CN_PARAMS, ti.offset + 2, NAN);
    CHECK_OK(cn_net_forward(net, x, N, 1));
    CHECK_OK(cn_net_trace_forward(net, &t));
    CHECK(t.found && t.layer == 0 && strcmp(t.tensor, "conv1.weight") == 0 && t.nonfinite == 1);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* fc1's first unit alone fires (1), the others are silent; fc2's huge
 * weights on that unit give logits of +-3e38: finite, as are the softmax and
 * the loss (in double), but the gradient of fc2's input, and from there of
 * fc1's weights, overflows. */
static const char backward_only[] = "[net]\nchannels=1\nheight=1\nwidth=4\nclasses=4\n"
                                    "[fc]\noutputs=3\n[relu]\n[fc]\noutputs=4\n[softmax]\n";

static void plant_backward_overflow(cn_net *net)
{
    cn_tensor_info ti;
    cn_net_tensor(net, cn_net_find_tensor(net, "fc1.weight"), &ti);
    for (size_t k = 0; k < ti.count; k++)
        th_put(net, CN_PARAMS, ti.offset + k, 0.0f);
    cn_net_tensor(net, cn_net_find_tensor(net, "fc1.bias"), &ti);
    for (size_t k = 0; k < ti.count; k++)
        th_put(net, CN_PARAMS, ti.offset + k, k == 0 ? 1.0f : -1.0f);
    /* weight [out, in]: from fc1's first unit, -3e38 to output 0 (the
     * label), +3e38 to the others; nothing from the silent units */
    cn_net_tensor(net, cn_net_find_tensor(net, "fc2.weight"), &ti);
    for (size_t k = 0; k < ti.count; k++)
        th_put(net, CN_PARAMS, ti.offset + k, k % 3 ? 0.0f : k == 0 ? -3e38f : 3e38f);
}

static void backward_trace_names_the_layer(void)
{
    cn_spec *spec = th_spec(backward_only);
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 1, th_dev(1), &net));
    cn_rng rng;
    cn_rng_seed(&rng, 6);
    cn_net_init(net, &rng);
    float x[4] = {1, 2, 3, 4};
    int32_t y[1] = {0};
    cn_trace t;
    /* healthy: nothing, and the gradients are cn_net_backward's */
    CHECK_OK(cn_net_forward(net, x, 1, 1));
    CHECK_OK(cn_net_trace_backward(net, y, 1, &t));
    CHECK(t.found == 0);
    float *g1 = th_block(net, CN_GRADS);
    cn_net_zero_grads(net);
    CHECK_OK(cn_net_backward(net, y, 1, NULL));
    float *g2 = th_block(net, CN_GRADS);
    CHECK(g1 && g2 && memcmp(g1, g2, cn_net_num_params(net) * sizeof *g1) == 0);
    free(g1);
    free(g2);
    plant_backward_overflow(net);
    CHECK_OK(cn_net_forward(net, x, 1, 1));
    CHECK_OK(cn_net_trace_forward(net, &t));
    CHECK(t.found == 0);
    CHECK_OK(cn_net_trace_backward(net, y, 1, &t));
    CHECK(t.found && t.backward && t.layer == 2);
    CHECK(strcmp(t.tensor, "fc2 input gradient") == 0 && t.count == 3);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* A backward trace after a backward pass that wrote a gradient over an
 * output (a max pooling's input: the convolution's output is refused after
 * it) runs the training forward pass again first: the same gradients, and
 * the running statistics as the one forward pass left them. */
static void backward_trace_after_backward(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=6\nwidth=6\nclasses=3\n[conv]\n"
                            "filters=2\nsize=3\npad=1\n[maxpool]\nsize=2\n[batchnorm]\n[fc]\n"
                            "outputs=3\n[softmax]\n");
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 2, th_dev(1), &net));
    cn_rng rng;
    cn_rng_seed(&rng, 6);
    cn_net_init(net, &rng);
    float x[72], out[144];
    th_fill_normal(x, 72, &rng);
    int32_t y[2] = {0, 2};
    cn_trace t;
    CHECK_OK(cn_net_forward(net, x, 2, 1));
    cn_net_zero_grads(net);
    CHECK_OK(cn_net_backward(net, y, 2, NULL));
    /* The CPU's pooling writes its input's gradient over the convolution's
     * output; the GPU's keeps both (its backend works in place nowhere). */
    CHECK_ERR(cn_net_get_layer_output(net, 0, 0, 2, out),
              strcmp(th_dev(1)->backend, "cuda") == 0 ? CN_OK : CN_ERR_ARG);
    float *g1 = th_block(net, CN_GRADS), *b1 = th_block(net, CN_BUFFERS);
    CHECK_OK(cn_net_trace_backward(net, y, 2, &t));
    CHECK(t.found == 0);
    float *g2 = th_block(net, CN_GRADS), *b2 = th_block(net, CN_BUFFERS);
    CHECK(g1 && g2 && memcmp(g1, g2, cn_net_num_params(net) * sizeof *g1) == 0);
    CHECK(b1 && b2 && memcmp(b1, b2, cn_net_num_buffers(net) * sizeof *b1) == 0);
    free(g1), free(g2), free(b1), free(b2);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* A watched step that meets the overflow fails, says where, and leaves the
 * weights as they were; unwatched, the same step takes it. */
static void watched_step_stops_and_says_where(void)
{
    cn_spec *spec = th_spec(backward_only);
    CHECK(spec);
    cn_model *m;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(1), &m));
    cn_spec_free(spec);
    plant_backward_overflow(cn_model_net(m));
    float x[4] = {1, 2, 3, 4};
    int32_t y[1] = {0};
    float *before = th_block(cn_model_net(m), CN_PARAMS);
    CHECK(before);
    cn_model_set_watch(m, 1);
    double loss;
    CHECK_ERR(cn_model_step(m, x, y, 1, 0.1, &loss), CN_ERR_NUMERIC);
    CHECK(th_contains(cn_last_error(), "backward pass, in layer fc2"));
    CHECK(th_contains(cn_last_error(), "fc2 input gradient"));
    const cn_trace *t = cn_model_trace(m);
    CHECK(t->found && t->backward && t->step == 1 && t->lr == 0.1);
    float *after = th_block(cn_model_net(m), CN_PARAMS);
    CHECK(after && memcmp(before, after, cn_net_num_params(cn_model_net(m)) * 4) == 0);
    free(after);
    cn_model_set_watch(m, 0);
    CHECK_OK(cn_model_step(m, x, y, 1, 0.1, &loss));
    after = th_block(cn_model_net(m), CN_PARAMS);
    CHECK(after && memcmp(before, after, cn_net_num_params(cn_model_net(m)) * 4) != 0);
    free(after);
    free(before);
    cn_model_free(m);
}

/* The range test's plot: both curves drawn, the suggestion a dashed line
 * where its rate is (x: log10 of the rate from -4 to 2 over 384 pixels from
 * 72); nothing to plot is an error. */
static void range_test_plot(void)
{
    enum { N = 100 };
    double lr[N], loss[N], smooth[N];
    for (int i = 0; i < N; i++) {
        lr[i] = 1e-4 * pow(1e6, i / (N - 1.0));
        double u = log10(lr[i]) + 1; /* least at lr 0.1 */
        loss[i] = 0.3 + 0.4 * u * u + (i % 2 ? 0.2 : -0.2);
        smooth[i] = 0.3 + 0.4 * u * u;
    }
    cn_image img;
    CHECK_OK(cn_vis_lr_range(lr, loss, smooth, N, 0.1, &img));
    CHECK(img.w == 480 && img.h == 400 && img.c == 3);
    int blue = 0, orange = 0, dash = 0;
    for (int y = 0; y < img.h; y++)
        for (int x = 0; x < img.w; x++) {
            const uint8_t *p = img.px + ((size_t)y * img.w + x) * 3;
            blue += abs(p[0] - 31) < 20 && abs(p[1] - 119) < 20 && abs(p[2] - 180) < 20;
            orange += abs(p[0] - 255) < 20 && abs(p[1] - 127) < 20 && abs(p[2] - 14) < 30;
            dash += x == 264 && abs(p[0] - 77) < 10 && p[0] == p[1] && p[1] == p[2];
        }
    CHECK_MSG(blue > 300 && orange > 300, "%d blue, %d orange pixels", blue, orange);
    CHECK_MSG(dash > 100, "%d pixels of the dashed line at x 264", dash);
    cn_image_free(&img);
    for (int i = 0; i < N; i++)
        smooth[i] = NAN;
    CHECK_ERR(cn_vis_lr_range(lr, loss, smooth, N, 0.1, &img), CN_ERR_ARG);
}

const th_test th_doctor[] = {
    {"doctor/layer_stats_match_the_host", layer_stats_match_the_host},
    {"doctor/forward_trace_names_the_layer", forward_trace_names_the_layer},
    {"doctor/backward_trace_names_the_layer", backward_trace_names_the_layer},
    {"doctor/backward_trace_after_a_backward_pass", backward_trace_after_backward},
    {"doctor/watched_step_stops_and_says_where", watched_step_stops_and_says_where},
    {"doctor/range_test_plot", range_test_plot},
    {NULL, NULL},
};
