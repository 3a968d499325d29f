/* idx.c - IDX files (the MNIST format), raw or gzip-compressed.
 *
 * Layout: two zero bytes, a type byte (0x08: unsigned byte, the only type
 * read here), a byte with the number of dimensions, the dimensions as
 * big-endian 32-bit integers, then the data in row-major order.  Sizes in the
 * header are checked against the file before anything large is allocated. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* Larger data sets are refused: 4 GiB of pixels. */
#define MAX_IDX_BYTES ((size_t)1 << 32)

typedef struct idx {
    int ndim;
    size_t dims[4];
    size_t count; /* product of dims */
    uint8_t *data;
} idx;

static int read_exact(gzFile f, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        unsigned chunk = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
        int r = gzread(f, (char *)buf + got, chunk);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static cn_status read_idx(const char *path, int min_dim, int max_dim, idx *out)
{
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return cn_fail(CN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return cn_fail(CN_ERR_IO, "%s: not a regular file", path);
    gzFile f = gzopen(path, "rb");
    if (!f)
        return cn_fail(CN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    cn_status st = CN_OK;
    unsigned char head[4], be[4];
    if (read_exact(f, head, 4) != 0) {
        st = cn_fail(CN_ERR_FORMAT, "%s: too short for an IDX header", path);
        goto done;
    }
    if (head[0] != 0 || head[1] != 0) {
        st = cn_fail(CN_ERR_FORMAT, "%s: not an IDX file (it starts with %02x %02x, not 00 00)",
                     path, head[0], head[1]);
        goto done;
    }
    if (head[2] != 0x08) {
        st = cn_fail(CN_ERR_FORMAT,
                     "%s: IDX data type 0x%02x is not supported (only 0x08, "
                     "unsigned bytes)",
                     path, head[2]);
        goto done;
    }
    out->ndim = head[3];
    if (out->ndim < min_dim || out->ndim > max_dim) {
        st = cn_fail(CN_ERR_FORMAT, "%s: %d dimensions; expected %d to %d", path, out->ndim,
                     min_dim, max_dim);
        goto done;
    }
    out->count = 1;
    for (int d = 0; d < out->ndim; d++) {
        if (read_exact(f, be, 4) != 0) {
            st = cn_fail(CN_ERR_FORMAT, "%s: the header ends before dimension %d", path, d + 1);
            goto done;
        }
        out->dims[d] = (size_t)be[0] << 24 | (size_t)be[1] << 16 | (size_t)be[2] << 8 | be[3];
        if (out->dims[d] == 0) {
            st = cn_fail(CN_ERR_FORMAT, "%s: dimension %d is 0", path, d + 1);
            goto done;
        }
        out->count = cn_mul(out->count, out->dims[d]);
    }
    if (out->count > MAX_IDX_BYTES) {
        char dims[64];
        cn_join_sizes(out->dims, out->ndim, " x ", dims, sizeof dims);
        st = cn_fail(CN_ERR_FORMAT,
                     "%s: the header claims %s bytes of data, more than the 4 GiB convnet "
                     "accepts (not an IDX file, or a damaged one)",
                     path, dims);
        goto done;
    }
    size_t header = 4 + 4 * (size_t)out->ndim;
    if (gzdirect(f) && (size_t)sb.st_size != header + out->count) {
        st = cn_fail(CN_ERR_FORMAT, "%s: the header claims %zu bytes of data but the file has %lld",
                     path, out->count, (long long)sb.st_size - (long long)header);
        goto done;
    }
    /* Compressed: grow the buffer as data arrives, so that a lying header
     * cannot make us allocate more than the file really holds. */
    size_t cap = out->count < (1u << 20) ? out->count : (1u << 20), got = 0;
    if (gzdirect(f))
        cap = out->count;
    out->data = malloc(cap);
    if (!out->data) {
        st = cn_fail(CN_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    while (got < out->count) {
        if (got == cap) {
            size_t ncap = cap * 2 < out->count ? cap * 2 : out->count;
            uint8_t *nd = realloc(out->data, ncap);
            if (!nd) {
                st = cn_fail(CN_ERR_NOMEM, "%s: out of memory", path);
                goto done;
            }
            out->data = nd;
            cap = ncap;
        }
        unsigned want = cap - got > (1u << 30) ? (1u << 30) : (unsigned)(cap - got);
        int r = gzread(f, out->data + got, want);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            st = cn_fail(CN_ERR_FORMAT, "%s: corrupt compressed data: %s", path, msg);
            goto done;
        }
        if (r == 0) {
            st = cn_fail(CN_ERR_FORMAT,
                         "%s: truncated: the header claims %zu bytes of data but "
                         "only %zu are there",
                         path, out->count, got);
            goto done;
        }
        got += (size_t)r;
    }
    char extra;
    int r = gzread(f, &extra, 1);
    if (r != 0) {
        st = cn_fail(CN_ERR_FORMAT,
                     r > 0 ? "%s: data continues after the %zu bytes the header "
                             "claims"
                           : "%s: corrupt compressed data after %zu bytes",
                     path, out->count);
        goto done;
    }
done:
    gzclose(f);
    if (st) {
        free(out->data);
        out->data = NULL;
    }
    return st;
}

cn_status cn_data_load_idx(const char *images, const char *labels, cn_data *out)
{
    memset(out, 0, sizeof *out);
    idx im, lb;
    cn_status st = read_idx(images, 3, 4, &im);
    if (st)
        return st;
    if ((st = read_idx(labels, 1, 1, &lb))) {
        free(im.data);
        return st;
    }
    if (lb.dims[0] != im.dims[0]) {
        st = cn_fail(CN_ERR_FORMAT, "%s has %zu labels but %s has %zu images", labels, lb.dims[0],
                     images, im.dims[0]);
        goto fail;
    }
    out->n = im.dims[0];
    out->shape = im.ndim == 3 ? (cn_shape){1, im.dims[1], im.dims[2]}
                              : (cn_shape){im.dims[1], im.dims[2], im.dims[3]};
    out->pixels = im.data;
    out->labels = malloc(out->n * sizeof *out->labels);
    if (!out->labels) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto fail;
    }
    size_t classes = 0;
    for (size_t i = 0; i < out->n; i++) {
        out->labels[i] = lb.data[i];
        classes = lb.data[i] + 1u > classes ? lb.data[i] + 1u : classes;
    }
    out->classes = classes;
    out->owned = 1;
    free(lb.data);
    return CN_OK;
fail:
    free(im.data);
    free(lb.data);
    free(out->labels);
    memset(out, 0, sizeof *out);
    return st;
}

/* The first of the usual MNIST file names that exists in dir. */
static int find_file(const char *dir, const char *which, const char *kind, char *path, size_t size)
{
    static const char *const forms[] = {"%s/%s-%s-idx%s-ubyte", "%s/%s-%s.idx%s-ubyte",
                                        "%s/%s-%s-idx%s-ubyte.gz", "%s/%s-%s.idx%s-ubyte.gz"};
    const char *dims = strcmp(kind, "images") == 0 ? "3" : "1";
    struct stat sb;
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        snprintf(path, size, forms[i], dir, which, kind, dims);
        if (stat(path, &sb) == 0)
            return 1;
    }
    snprintf(path, size, forms[0], dir, which, kind, dims);
    return 0;
}

cn_status cn_data_load_mnist(const char *dir, const char *which, cn_data *out)
{
    memset(out, 0, sizeof *out);
    char images[4096], labels[4096];
    int a = find_file(dir, which, "images", images, sizeof images);
    int b = find_file(dir, which, "labels", labels, sizeof labels);
    if (!a || !b)
        return cn_fail(CN_ERR_IO,
                       "%s not found (nor .gz, nor the dotted form): fetch the data with "
                       "'scripts/fetch-data.sh mnist' or give the directory with --data",
                       !a ? images : labels);
    cn_status st = cn_data_load_idx(images, labels, out);
    char names[4096];
    if (!st && snprintf(names, sizeof names, "%s/classes.txt", dir) < (int)sizeof names &&
        (st = cn_data_read_names(out, names)))
        cn_data_free(out);
    return st;
}
