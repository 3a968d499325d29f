/* train_mnist.c - trains a network on MNIST as its model description says,
 * measures it on the test set and saves it as a model file (which classify
 * and embedded read).
 *
 *   cc train_mnist.c $(pkg-config --cflags --libs convnet) -o train_mnist
 *   ./train_mnist [DATA_DIR [MODEL.cfg [OUT.safetensors [N_TRAIN]]]]
 *
 * DATA_DIR holds MNIST's files (default data/mnist); MODEL.cfg the network
 * and its training recipe (default models/lenet.cfg: LeNet, 6 epochs, about
 * 99.1%); N_TRAIN how many training images to use (default: all 60 000). */
#include <convnet.h>
#include <stdio.h>
#include <stdlib.h>

/* Called by cn_model_train after each epoch. */
static cn_status on_epoch(void *user, cn_model *model, const cn_progress *p)
{
    (void)user, (void)model;
    printf("epoch %d/%d: loss %.4f, training accuracy %.2f%%, %.0f images/s\n", p->epoch + 1,
           p->epochs, p->loss, 100 * p->accuracy, p->images_per_s);
    return CN_OK;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "data/mnist";
    const char *cfg = argc > 2 ? argv[2] : "models/lenet.cfg";
    const char *out = argc > 3 ? argv[3] : "mnist.safetensors";
    size_t n_train = argc > 4 ? strtoul(argv[4], NULL, 10) : 60000;
    cn_spec *spec = NULL;
    cn_model *model = NULL;
    cn_data train = {0}, test = {0};
    cn_eval ev = {0};
    cn_train_hooks hooks = {.on_epoch = on_epoch};
    int rc = 1;

    if (cn_spec_load(cfg, &spec) ||
        cn_model_create(spec, NULL, NULL, &model) || /* weights drawn from [train]'s seed */
        cn_data_load_mnist(dir, "train", &train) || cn_data_load_mnist(dir, "t10k", &test))
        goto done;
    cn_data part = cn_data_slice(&train, 0, n_train); /* shares train's memory */
    if (cn_model_train(model, &part, NULL, &hooks) ||
        cn_net_evaluate(cn_model_net(model), &test, &ev) || cn_model_save(model, out))
        goto done;
    printf("test accuracy %.2f%%, loss %.4f; saved %s\n", 100 * ev.accuracy, ev.loss, out);
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "train_mnist: %s\n", cn_last_error());
    cn_eval_free(&ev);
    cn_data_free(&test);
    cn_data_free(&train);
    cn_model_free(model);
    cn_spec_free(spec);
    return rc;
}
