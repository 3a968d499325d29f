/* embedded.c - a model inside a control loop: loaded once, every buffer set
 * up before the loop, then one forward pass per raw input with no memory
 * allocated per call; prints each input's class, then the latency of a
 * call (median and 99th percentile).
 *
 *   cc embedded.c $(pkg-config --cflags --libs convnet) -o embedded
 *   ./embedded MODEL.safetensors INPUTS.f32 [REPEAT]
 *
 * INPUTS.f32 holds raw float32 samples (native byte order), each (C, H, W)
 * of the model's input and already normalised as the network expects (for
 * MNIST: x = (pixel / 255 - 0.1307) / 0.3081), as a sensor's driver would
 * hand them over.  REPEAT: passes over the inputs (default 1), for a
 * steadier timing; the classes are printed on the first pass only. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <convnet.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: embedded MODEL.safetensors INPUTS.f32 [REPEAT]\n");
        return 2;
    }
    long repeat = argc > 3 ? strtol(argv[3], NULL, 10) : 1;
    /* One thread, as on a small device: no thread start-up in the call and
     * a steadier latency. */
    cn_device dev = {"cpu", 0, 1};
    cn_model *model = NULL;
    float *inputs = NULL, *prob = NULL;
    double *latency = NULL;
    FILE *f = NULL;
    int rc = 1;

    /* --- set-up: everything the loop needs is allocated here ----------- */
    if (cn_model_load(argv[1], &dev, &model)) {
        fprintf(stderr, "embedded: %s\n", cn_last_error());
        goto done;
    }
    cn_net *net = cn_model_net(model);
    cn_shape in = cn_net_input_shape(net);
    size_t size = in.c * in.h * in.w, classes = cn_net_classes(net), n = 0;
    if (!(f = fopen(argv[2], "rb")) || fseek(f, 0, SEEK_END) ||
        (n = ftell(f) / (long)(sizeof(float) * size)) == 0 || fseek(f, 0, SEEK_SET)) {
        fprintf(stderr, "embedded: %s: cannot read, or smaller than one sample\n", argv[2]);
        goto done;
    }
    size_t calls = n * (repeat > 0 ? repeat : 1);
    inputs = malloc(n * size * sizeof *inputs);
    prob = malloc(classes * sizeof *prob);
    latency = malloc(calls * sizeof *latency);
    if (!inputs || !prob || !latency || fread(inputs, sizeof *inputs * size, n, f) != n) {
        fprintf(stderr, "embedded: out of memory, or %s unreadable\n", argv[2]);
        goto done;
    }

    /* --- the loop: one sample in, one class out, nothing allocated ------ */
    for (size_t call = 0; call < calls; call++) {
        const float *x = inputs + (call % n) * size; /* the raw buffer, (C, H, W) */
        double t0 = now();
        if (cn_net_forward(net, x, 1, 0) || cn_net_get_output(net, prob)) {
            fprintf(stderr, "embedded: %s\n", cn_last_error());
            goto done;
        }
        size_t best = 0;
        for (size_t k = 1; k < classes; k++)
            if (prob[k] > prob[best])
                best = k;
        latency[call] = now() - t0;
        if (call < n)
            printf("%zu %zu %.6f\n", call, best, prob[best]); /* sample, class, probability */
    }

    qsort(latency, calls, sizeof *latency, by_value);
    printf("latency over %zu calls: median %.1f us, 99th percentile %.1f us\n", calls,
           1e6 * latency[calls / 2], 1e6 * latency[calls * 99 / 100]);
    rc = 0;
done:
    if (f)
        fclose(f);
    free(latency);
    free(prob);
    free(inputs);
    cn_model_free(model);
    return rc;
}
