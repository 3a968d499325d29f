/* fit_accuracy.c - how well the digit fit (cn_image_to_input) prepares MNIST
 * test digits made into tight crops, dark-on-light pictures, enlargements
 * and thin-pen drawings (tests/fit_forms.h): per form, how many are refused
 * as blank, the mean correlation of the 28 x 28 result with the original
 * digit's, and with a model, the accuracy.  A measuring tool, run by hand
 * (README, "Pictures and the report"):
 *
 *   make && cc -O2 -fopenmp -Iinclude -Itests tests/tools/fit_accuracy.c \
 *      build/libconvnet_vis.a build/libconvnet.a -lcairo -lstb -lcjson -lz -lm \
 *      -o /tmp/fit_accuracy
 *   /tmp/fit_accuracy [MODEL.safetensors|-] [N]    # N test digits (1000)
 *
 * FIT_DEBUG=K writes /tmp/crop-dbg-I.png, 4x, for each result of form K
 * (0 = "box") correlated under 0.5 with the original's. */
#include "convnet_vis.h"
#include "fit_forms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CROP, THIN };
static const struct {
    const char *name;
    int kind, inset, invert, size; /* THIN: size = pen, inset = page */
} forms[] = {
    {"box", CROP, 0, 0, 0},         {"box, inverted", CROP, 0, 1, 0},
    {"box - 1", CROP, 1, 0, 0},     {"box - 1, inverted", CROP, 1, 1, 0},
    {"box to 56", CROP, 0, 1, 56},  {"box to 140", CROP, 0, 0, 140},
    {"box to 400", CROP, 0, 1, 400}, {"box - 1 to 140", CROP, 1, 1, 140},
    {"pen 1 on 600", THIN, 600, 0, 1}, {"pen 2 on 600", THIN, 600, 0, 2},
    {"pen 3 on 600", THIN, 600, 0, 3}, {"pen 3 on 300", THIN, 300, 0, 3},
};

int main(int argc, char **argv)
{
    const char *mpath = argc > 1 && strcmp(argv[1], "-") ? argv[1] : NULL;
    size_t n = argc > 2 ? (size_t)atol(argv[2]) : 1000;
    const char *dir = getenv("CONVNET_DATA") ? getenv("CONVNET_DATA") : "data/mnist";
    cn_data d;
    cn_model *model = NULL;
    if (cn_data_load_mnist(dir, "t10k", &d) || (mpath && cn_model_load(mpath, NULL, &model))) {
        fprintf(stderr, "fit_accuracy: %s\n", cn_last_error());
        return 1;
    }
    n = n < d.n ? n : d.n;
    cn_shape s = {1, 28, 28};
    uint8_t *ref = malloc(n * 784), *in = malloc(n * 784);
    float *prob = malloc(n * 10 * sizeof *prob);
    int nf = (int)(sizeof forms / sizeof *forms);
    for (int f = -1; f < nf; f++) {
        size_t blank = 0, right = 0;
        double corr = 0, worst = 1;
        for (size_t i = 0; i < n; i++) {
            const uint8_t *dg = d.pixels + i * 784;
            cn_image img = {28, 28, 1, (uint8_t *)dg}, made = {0};
            uint8_t *o = f < 0 ? ref + i * 784 : in + i * 784;
            if (f >= 0 &&
                (forms[f].kind == CROP
                     ? ff_crop(dg, forms[f].inset, forms[f].invert, forms[f].size, &made)
                     : ff_thin_pen(dg, forms[f].size, forms[f].inset, &made))) {
                fprintf(stderr, "fit_accuracy: cannot make form %d of digit %zu\n", f, i);
                return 1;
            }
            if (cn_image_to_input(f < 0 ? &img : &made, s, CN_FIT_DIGIT, o)) {
                blank++;
                memset(o, 0, 784);
            }
            cn_image_free(&made);
            double c = ff_corr(o, ref + i * 784, 784);
            corr += c;
            if (getenv("FIT_DEBUG") && f == atoi(getenv("FIT_DEBUG")) && c < 0.5) {
                cn_image big;
                char name[64];
                snprintf(name, sizeof name, "/tmp/crop-dbg-%zu.png", i);
                if (!cn_image_from_planes(o, s, 4, &big)) {
                    cn_image_write_png(&big, name);
                    cn_image_free(&big);
                }
                printf("digit %zu corr %.3f\n", i, c);
            }
            worst = c < worst ? c : worst;
        }
        if (model) {
            cn_net *net = cn_model_net(model);
            for (size_t i = 0; i < n; i += 100) {
                size_t k = n - i < 100 ? n - i : 100;
                if (cn_net_forward_pixels(net, (f < 0 ? ref : in) + i * 784, k, 0) ||
                    cn_net_get_output(net, prob + i * 10)) {
                    fprintf(stderr, "fit_accuracy: %s\n", cn_last_error());
                    return 1;
                }
            }
            for (size_t i = 0; i < n; i++) {
                int best = 0;
                for (int c = 1; c < 10; c++)
                    best = prob[i * 10 + c] > prob[i * 10 + best] ? c : best;
                right += best == d.labels[i];
            }
        }
        printf("%-20s blank %4zu  corr mean %.3f worst %.3f", f < 0 ? "original" : forms[f].name,
               blank, corr / n, worst);
        if (model)
            printf("  accuracy %.1f%%", 100.0 * right / n);
        printf("\n");
        fflush(stdout);
    }
    free(ref);
    free(in);
    free(prob);
    cn_model_free(model);
    cn_data_free(&d);
    return 0;
}
