/* fuzz_cfg.c - model descriptions (.cfg) through cn_spec_load, and the
 * networks they describe through cn_net_create. */
#include "fuzz.h"

#include "convnet.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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
    cn_spec_free(spec);
    return 0;
}
