/* fuzz_idx.c - IDX image and label files, raw and gzip-compressed, through
 * cn_data_load_idx.
 *
 * Input: a flags byte, a 16-bit little-endian length L, then L bytes of the
 * image file and the rest as the label file.  Flags bit 0: the harness
 * gzip-compresses both files first, so that the fuzzer explores the IDX
 * structure behind the gzip path too; without it the bytes are written as
 * they are (and may themselves be gzip, as the .gz seeds are). */
#include "fuzz.h"

#include "convnet.h"

#include <string.h>
#include <zlib.h>

/* data as a gzip stream in *out (malloc'd); its length, or 0 on failure. */
static size_t gzip_bytes(const uint8_t *data, size_t size, uint8_t **out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    size_t cap = deflateBound(&z, (uLong)size) + 32;
    *out = malloc(cap);
    if (!*out) {
        deflateEnd(&z);
        return 0;
    }
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)size;
    z.next_out = *out;
    z.avail_out = (uInt)cap;
    int r = deflate(&z, Z_FINISH);
    size_t n = r == Z_STREAM_END ? cap - z.avail_out : 0;
    deflateEnd(&z);
    return n;
}

static void put(fz_file *f, const uint8_t *data, size_t size, int gz)
{
    if (!gz) {
        fz_write(f, data, size);
        return;
    }
    uint8_t *z = NULL;
    size_t n = gzip_bytes(data, size, &z);
    if (!n)
        abort();
    fz_write(f, z, n);
    free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fz_file images, labels;
    if (size < 3)
        return 0;
    int gz = data[0] & 1;
    size_t split = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (split > size)
        split = size;
    put(&images, data, split, gz);
    put(&labels, data + split, size - split, gz);

    cn_data d;
    if (cn_data_load_idx(images.path, labels.path, &d) != CN_OK) {
        FZ_ASSERT(cn_last_error()[0] != '\0');
        return 0;
    }
    /* What the loader promises: n samples of the shape, labels below classes. */
    size_t per = d.shape.c * d.shape.h * d.shape.w;
    FZ_ASSERT(d.n > 0 && per > 0 && d.owned && d.classes >= 1 && d.classes <= 256);
    unsigned sum = 0;
    for (size_t i = 0; i < d.n * per; i++)
        sum += d.pixels[i];
    for (size_t i = 0; i < d.n; i++)
        FZ_ASSERT(d.labels[i] >= 0 && (size_t)d.labels[i] < d.classes);
    cn_data s = cn_data_slice(&d, d.n / 2, d.n);
    FZ_ASSERT(s.n == d.n - d.n / 2 && !s.owned);
    cn_data_free(&d);
    return (int)(sum & 0);
}
