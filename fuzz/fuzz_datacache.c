/* fuzz_datacache.c - data caches (convnet.h) through cn_data_cache_open,
 * which maps the file: every pixel is read and every label checked. */
#include "fuzz.h"

#include "convnet.h"

#include <string.h>

static fz_file file;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_write(&file, data, size);
    cn_data d;
    if (cn_data_cache_open(file.path, &d) != CN_OK) {
        FZ_ASSERT(cn_last_error()[0] != '\0' && d.pixels == NULL && d.n == 0);
        return 0;
    }
    FZ_ASSERT(d.owned && d.classes >= 1 && d.names != NULL);
    size_t sz = d.shape.c * d.shape.h * d.shape.w;
    FZ_ASSERT(sz > 0 && d.n * sz < size);
    unsigned sum = 0;
    for (size_t i = 0; i < d.n * sz; i++)
        sum += d.pixels[i];
    for (size_t i = 0; i < d.n; i++)
        FZ_ASSERT(d.labels[i] >= 0 && (size_t)d.labels[i] < d.classes);
    for (size_t k = 0; k < d.classes; k++)
        FZ_ASSERT(d.names[k] && d.names[k][0]);
    (void)sum;
    cn_data_free(&d);
    return 0;
}
