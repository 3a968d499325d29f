/* fuzz_safetensors.c - safetensors files through the reader (cn_st_open and
 * every tensor through cn_st_read_f32), then as model files through
 * cn_model_load, with a forward pass of the loaded model. */
#include "fuzz.h"

#include "internal.h"
#include "io/safetensors.h"

#include <string.h>

/* A model's network is planned before it is allocated; larger plans are
 * refused (CN_ERR_NOMEM, the library's answer on a small machine), which keeps
 * each input fast and far below libFuzzer's 2 GB allocation limit. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cn_set_memory_limit(FZ_MEMORY_LIMIT);
    static fz_file file;
    fz_write(&file, data, size);
    cn_st_file f;
    if (cn_st_open(file.path, &f) != CN_OK) {
        FZ_ASSERT(cn_last_error()[0] != '\0' && strstr(cn_last_error(), file.path));
        FZ_ASSERT(f.bytes == NULL && f.entries == NULL);
        return 0;
    }
    /* What the reader promises: every entry inside the data, named once. */
    for (size_t i = 0; i < f.n_entries; i++) {
        const cn_st_entry *e = &f.entries[i];
        FZ_ASSERT(e->begin <= e->end && e->end <= f.data_len);
        FZ_ASSERT(cn_st_find(&f, e->name) == e);
        size_t bytes = e->end - e->begin, count = bytes / 4;
        float *dst = malloc(count ? count * sizeof *dst : 1);
        FZ_ASSERT(dst);
        if (cn_st_read_f32(&f, e, e->ndim, e->dims, dst) == CN_OK)
            FZ_ASSERT(strcmp(e->dtype, "F32") == 0 && bytes % 4 == 0);
        free(dst);
    }
    for (size_t i = 0; i < f.n_meta; i++)
        FZ_ASSERT(cn_st_meta(&f, f.meta[2 * i]) != NULL);
    cn_st_close(&f);

    static const cn_device one = {"cpu", 0, 1};
    cn_model *m = NULL;
    if (cn_model_load(file.path, &one, &m) != CN_OK) {
        FZ_ASSERT(m == NULL && cn_last_error()[0] != '\0');
        return 0;
    }
    cn_net *net = cn_model_net(m);
    cn_shape in = cn_net_input_shape(net);
    size_t n = in.c * in.h * in.w;
    if (n <= 100000) {
        float *x = calloc(n, sizeof *x);
        FZ_ASSERT(x && cn_net_forward(net, x, 1, 0) == CN_OK);
        free(x);
    }
    cn_model_free(m);
    return 0;
}
