/* from_string.c - a network defined by a model description held in a C
 * string: parsed, built, its layers printed, then trained for a few steps
 * on a made-up task (is the bright bar in an 8 x 8 image on the left, in the
 * middle or on the right?) and run on one new image.
 *
 *   cc from_string.c $(pkg-config --cflags --libs convnet) -o from_string
 *   ./from_string [STEPS]
 *
 * The description's format is the one of the files in models/ (README, "Model
 * descriptions"). */
#include <convnet.h>
#include <stdio.h>
#include <stdlib.h>

/* clang-format off */
static const char description[] =
    "[net]\n"
    "channels = 1\n"
    "height = 8\n"
    "width = 8\n"
    "classes = 3\n"
    "[train]\n"
    "batch = 16\n"
    "lr = 0.1\n"
    "momentum = 0.9\n"
    "[conv]\n"
    "filters = 4\n"
    "size = 3\n"
    "pad = 1\n"
    "[relu]\n"
    "[maxpool]\n"
    "size = 2\n"
    "[fc]\n"
    "outputs = 3\n"
    "[softmax]\n";
/* clang-format on */

/* n images (n, 1, 8, 8) of noise with a bright vertical bar in the left,
 * middle or right third; labels: which third. */
static void make_batch(cn_rng *rng, size_t n, float *x, int32_t *labels)
{
    for (size_t s = 0; s < n; s++) {
        labels[s] = (int32_t)cn_rng_below(rng, 3);
        size_t col = 3 * (size_t)labels[s] + cn_rng_below(rng, 2); /* 0..7 */
        for (size_t i = 0; i < 64; i++)
            x[s * 64 + i] = 0.3f * (float)cn_rng_normal(rng) + (i % 8 == col ? 1.0f : 0.0f);
    }
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 100;
    cn_spec *spec = NULL;
    cn_model *model = NULL;
    if (cn_spec_parse(description, "description", &spec) ||
        cn_model_create(spec, NULL, NULL, &model)) {
        fprintf(stderr, "from_string: %s\n", cn_last_error());
        cn_spec_free(spec);
        return 1;
    }
    cn_net *net = cn_model_net(model);
    for (size_t i = 0; i < cn_net_num_layers(net); i++) {
        cn_layer_info l;
        cn_net_layer(net, i, &l);
        printf("%-8s %-8s (%zu, %zu, %zu) -> (%zu, %zu, %zu) %6zu parameters\n", l.name, l.kind,
               l.in.c, l.in.h, l.in.w, l.out.c, l.out.h, l.out.w, l.params);
    }

    enum { N = 16 }; /* the [train] batch */
    float x[N * 64], prob[3];
    int32_t labels[N];
    cn_rng rng;
    cn_rng_seed(&rng, 7);
    double loss = 0;
    for (int step = 1; step <= steps; step++) {
        make_batch(&rng, N, x, labels);
        if (cn_model_step(model, x, labels, N, cn_model_opts(model)->lr, &loss)) {
            fprintf(stderr, "from_string: %s\n", cn_last_error());
            break;
        }
        if (step == 1 || step % 25 == 0)
            printf("step %3d: loss %.4f\n", step, loss);
    }
    make_batch(&rng, 1, x, labels); /* a new image */
    net = cn_model_net(model);      /* training may have rebuilt it */
    if (cn_net_forward(net, x, 1, 0) == CN_OK && cn_net_get_output(net, prob) == CN_OK)
        printf("a bar in third %d: probabilities %.3f %.3f %.3f\n", (int)labels[0], prob[0],
               prob[1], prob[2]);
    cn_model_free(model);
    cn_spec_free(spec);
    return 0;
}
