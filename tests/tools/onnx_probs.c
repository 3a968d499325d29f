/* onnx_probs.c - convnet's class probabilities for a file of pixels, the
 * reference that tests/onnx.sh compares ONNX Runtime's with.
 *
 *   onnx_probs MODEL_FILE PIXELS N OUT
 *
 * PIXELS holds N samples of 8-bit pixels (N, C, H, W) for the model's input;
 * OUT receives the probabilities (N, classes) as float32 in the host's byte
 * order, from evaluation passes (cn_net_forward_pixels, train = 0) in
 * batches of up to 256.  Uses only the public API. */
#include "convnet.h"

#include <stdio.h>
#include <stdlib.h>

#define BATCH 256

static int fail(const char *what)
{
    fprintf(stderr, "onnx_probs: %s: %s\n", what, cn_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: onnx_probs MODEL_FILE PIXELS N OUT\n");
        return 2;
    }
    char *end;
    size_t n = strtoul(argv[3], &end, 10);
    if (*end || n == 0) {
        fprintf(stderr, "onnx_probs: N must be a positive whole number, not '%s'\n", argv[3]);
        return 2;
    }
    cn_device dev = {"cpu", 0, 1};
    cn_model *model;
    if (cn_model_load(argv[1], &dev, &model))
        return fail(argv[1]);
    if (cn_model_reserve(model, BATCH)) {
        cn_model_free(model);
        return fail("reserve");
    }
    cn_net *net = cn_model_net(model);
    cn_shape s = cn_net_input_shape(net);
    size_t per = s.c * s.h * s.w, classes = cn_net_classes(net);
    uint8_t *pix = malloc(n * per);
    float *probs = malloc(n * classes * sizeof *probs);
    FILE *in = fopen(argv[2], "rb");
    int rc = 0;
    if (!pix || !probs || !in || fread(pix, per, n, in) != n) {
        fprintf(stderr, "onnx_probs: cannot read %zu samples of %zu bytes from %s\n", n, per,
                argv[2]);
        rc = 1;
    }
    for (size_t i = 0; !rc && i < n; i += BATCH) {
        size_t b = n - i < BATCH ? n - i : BATCH;
        if (cn_net_forward_pixels(net, pix + i * per, b, 0) ||
            cn_net_get_output(net, probs + i * classes))
            rc = fail("forward");
    }
    FILE *out = rc ? NULL : fopen(argv[4], "wb");
    if (out) {
        int ok = fwrite(probs, sizeof *probs * classes, n, out) == n;
        if (fclose(out) != 0 || !ok)
            out = NULL;
    }
    if (!rc && !out) {
        fprintf(stderr, "onnx_probs: cannot write %s\n", argv[4]);
        rc = 1;
    }
    if (in)
        fclose(in);
    free(pix);
    free(probs);
    cn_model_free(model);
    return rc;
}
