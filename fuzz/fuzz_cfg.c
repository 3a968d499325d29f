/* fuzz_cfg.c - model descriptions (.cfg) through cn_spec_load, and the
 * networks they describe through cn_net_create on the guard backend, with a
 * training step on zeros when the network is small. */
#include "fuzz.h"

#include "convnet.h"

#include <string.h>

/* Networks are planned before they are allocated; larger plans are refused
 * (CN_ERR_NOMEM, the library's answer on a small machine), which keeps each
 * input fast and far below libFuzzer's 2 GB allocation limit. */
/* One training step of net on zeros: forward, loss, backward. */
static void step(cn_net *net)
{
    uint64_t macs = 0;
    for (size_t i = 0; i < cn_net_num_layers(net); i++) {
        cn_layer_info info;
        FZ_ASSERT(cn_net_layer(net, i, &info) == CN_OK);
        macs += info.macs;
    }
    cn_shape in = cn_net_input_shape(net);
    size_t n = cn_net_max_batch(net), size = in.c * in.h * in.w * n;
    if (macs > 2000000 || size > 1000000)
        return;
    float *x = calloc(size, sizeof *x);
    /* Labels the network has: a description may give it a single class. */
    int32_t labels[2] = {0, cn_net_classes(net) > 1 ? 1 : 0};
    FZ_ASSERT(x);
    cn_rng rng;
    cn_rng_seed(&rng, 1);
    cn_net_init(net, &rng);
    double loss;
    FZ_ASSERT(cn_net_forward(net, x, n, 1) == CN_OK);
    FZ_ASSERT(cn_net_loss(net, labels, n, &loss) == CN_OK);
    FZ_ASSERT(cn_net_backward(net, labels, n, x) == CN_OK);
    free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cn_set_memory_limit(FZ_MEMORY_LIMIT);
    static fz_file cfg;
    fz_write(&cfg, data, size);
    cn_spec *spec = NULL;
    if (cn_spec_load(cfg.path, &spec) != CN_OK) {
        FZ_ASSERT(spec == NULL && cn_last_error()[0] != '\0');
        return 0;
    }
    /* A parsed description reads back as itself. */
    cn_spec *again = NULL;
    FZ_ASSERT(cn_spec_parse(cn_spec_text(spec), cn_spec_source(spec), &again) == CN_OK);
    FZ_ASSERT(strcmp(cn_spec_text(again), cn_spec_text(spec)) == 0);
    cn_spec_free(again);
    cn_train_opts opts;
    cn_spec_train_opts(spec, &opts);
    FZ_ASSERT(cn_train_opts_check(&opts) == CN_OK);

    /* On the guard backend: whatever network a description makes, nothing
     * above the device seam may touch its tensor memory directly. */
    static const cn_device guard = {"guard", 0, 1};
    cn_net *net = NULL;
    cn_status st = cn_net_create(spec, 2, &guard, &net);
    if (st == CN_OK)
        step(net);
    else
        FZ_ASSERT(net == NULL && (st == CN_ERR_SPEC || st == CN_ERR_NOMEM));
    cn_net_free(net);
    cn_spec_free(spec);
    return 0;
}
