/* classify.c - classifies an image file with a trained model: prints the
 * most likely class and its probability, as 'convnet predict' does.
 *
 *   cc classify.c $(pkg-config --cflags --libs convnet_vis) -o classify
 *   ./classify MODEL.safetensors IMAGE
 *
 * IMAGE: PNG, JPEG, BMP, PGM/PPM, GIF or TGA of any size, grey or colour.
 * A grey network (MNIST) sees the picture as MNIST's digits were made:
 * light ink on black, the ink's box scaled into the middle 20 x 20 pixels. */
/* pkg-config: convnet_vis */
#include <convnet_vis.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: classify MODEL.safetensors IMAGE\n");
        return 2;
    }
    cn_model *model = NULL;
    cn_image img = {0};
    uint8_t *pixels = NULL;
    float *prob = NULL;
    int rc = 1;

    if (cn_model_load(argv[1], NULL, &model) || cn_image_load(argv[2], &img))
        goto fail;
    cn_net *net = cn_model_net(model);
    cn_shape in = cn_net_input_shape(net);
    size_t classes = cn_net_classes(net);
    pixels = malloc(in.c * in.h * in.w); /* one sample, (C, H, W) */
    prob = malloc(classes * sizeof *prob);
    if (!pixels || !prob) {
        fprintf(stderr, "classify: out of memory\n");
        goto done;
    }
    /* The picture brought to the input's size and form, then normalised
     * with the model's mean and std inside the forward pass. */
    if (cn_image_to_input(&img, in, CN_FIT_AUTO, pixels) ||
        cn_net_forward_pixels(net, pixels, 1, 0) || cn_net_get_output(net, prob))
        goto fail;
    size_t best = 0;
    for (size_t k = 1; k < classes; k++)
        if (prob[k] > prob[best])
            best = k;
    printf("%s: class %zu, probability %.2f%%\n", argv[2], best, 100.0 * prob[best]);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "classify: %s\n", cn_last_error());
done:
    free(prob);
    free(pixels);
    cn_image_free(&img);
    cn_model_free(model);
    return rc;
}
