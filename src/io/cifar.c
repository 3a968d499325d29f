/* cifar.c - CIFAR-10's binary batches, and cn_data_load, which reads
 * whichever data set a directory holds (MNIST's IDX files or CIFAR-10).
 *
 * Layout of a batch file: records of 3073 bytes, one after the other: a label
 * byte (0..9), then 3072 pixel bytes: the red, green and blue 32x32 planes,
 * each row-major.  That is cn_data's (C, H, W) order, so the pixels of a
 * record are copied as they are.  The official files hold 10 000 records
 * each; any positive whole number of records is accepted.  Sizes are taken
 * from the files themselves and checked before anything is allocated. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CIFAR_PIXELS  3072u /* (3, 32, 32) */
#define CIFAR_RECORD  (1u + CIFAR_PIXELS)
#define CIFAR_CLASSES 10u
#define MAX_BATCHES   5
/* Larger data sets are refused: 4 GiB of pixels, as for IDX files. */
#define MAX_CIFAR_BYTES ((size_t)1 << 32)

static const char FETCH_HINT[] =
    "fetch the data with 'scripts/fetch-data.sh cifar10' or give the directory with --data";

/* dir/name into path; 0 when it does not fit. */
static int join(char *path, size_t size, const char *dir, const char *name)
{
    int n = snprintf(path, size, "%s/%s", dir, name);
    return n >= 0 && (size_t)n < size;
}

/* The number of records in the batch file at path, from its size. */
static cn_status count_records(const char *path, size_t *records)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT)
            return cn_fail(CN_ERR_IO, "%s not found: %s", path, FETCH_HINT);
        return cn_fail(CN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    if (!S_ISREG(sb.st_mode))
        return cn_fail(CN_ERR_IO, "%s: not a regular file", path);
    if (sb.st_size == 0)
        return cn_fail(CN_ERR_FORMAT, "%s: empty file; a CIFAR-10 batch holds records of %u bytes",
                       path, CIFAR_RECORD);
    if (sb.st_size % CIFAR_RECORD != 0)
        return cn_fail(CN_ERR_FORMAT,
                       "%s: truncated: %lld bytes is not a whole number of %u-byte records "
                       "(%lld records and %lld bytes more)",
                       path, (long long)sb.st_size, CIFAR_RECORD,
                       (long long)(sb.st_size / CIFAR_RECORD),
                       (long long)(sb.st_size % CIFAR_RECORD));
    if ((unsigned long long)(sb.st_size / CIFAR_RECORD) > MAX_CIFAR_BYTES / CIFAR_PIXELS)
        return cn_fail(CN_ERR_FORMAT, "%s: %lld bytes, more than the 4 GiB convnet accepts", path,
                       (long long)sb.st_size);
    *records = (size_t)(sb.st_size / CIFAR_RECORD);
    return CN_OK;
}

/* Reads the records of one batch file: pixels (records, 3, 32, 32), labels
 * (records).  The file must still have the size count_records saw. */
static cn_status read_batch(const char *path, size_t records, uint8_t *pixels, int32_t *labels)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cn_fail(CN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    cn_status st = CN_OK;
    unsigned char rec[CIFAR_RECORD];
    for (size_t i = 0; i < records; i++) {
        if (fread(rec, 1, CIFAR_RECORD, f) != CIFAR_RECORD) {
            st = ferror(f) ? cn_fail(CN_ERR_IO, "%s: read error in record %zu", path, i)
                           : cn_fail(CN_ERR_FORMAT,
                                     "%s: the file ended after %zu of its %zu records (did it "
                                     "change while being read?)",
                                     path, i, records);
            goto done;
        }
        if (rec[0] >= CIFAR_CLASSES) {
            st = cn_fail(CN_ERR_FORMAT,
                         "%s: record %zu (counting from 0) has label %u; CIFAR-10's labels are "
                         "0 to 9",
                         path, i, rec[0]);
            goto done;
        }
        labels[i] = rec[0];
        memcpy(pixels + i * CIFAR_PIXELS, rec + 1, CIFAR_PIXELS);
    }
    if (fgetc(f) != EOF)
        st = cn_fail(CN_ERR_FORMAT,
                     "%s: data continues after %zu records (did it change while "
                     "being read?)",
                     path, records);
done:
    fclose(f);
    return st;
}

cn_status cn_data_load_cifar10(const char *dir, const char *which, cn_data *out)
{
    memset(out, 0, sizeof *out);
    char paths[MAX_BATCHES][4096];
    size_t records[MAX_BATCHES], n_files, total = 0;
    if (which && strcmp(which, "train") == 0) {
        n_files = MAX_BATCHES;
        for (size_t b = 0; b < n_files; b++) {
            char name[32];
            snprintf(name, sizeof name, "data_batch_%zu.bin", b + 1);
            if (!join(paths[b], sizeof paths[b], dir, name))
                return cn_fail(CN_ERR_ARG, "the directory name %.60s... is too long", dir);
        }
    } else if (which && strcmp(which, "test") == 0) {
        n_files = 1;
        if (!join(paths[0], sizeof paths[0], dir, "test_batch.bin"))
            return cn_fail(CN_ERR_ARG, "the directory name %.60s... is too long", dir);
    } else {
        return cn_fail(CN_ERR_ARG, "CIFAR-10's sets are \"train\" and \"test\", not \"%s\"",
                       which ? which : "(null)");
    }
    /* Every file's size first, so that a missing or truncated last batch
     * fails before 150 MB are allocated and read. */
    for (size_t b = 0; b < n_files; b++) {
        cn_status st = count_records(paths[b], &records[b]);
        if (st)
            return st;
        total = cn_add(total, records[b]);
    }
    if (cn_mul(total, CIFAR_PIXELS) > MAX_CIFAR_BYTES)
        return cn_fail(CN_ERR_FORMAT, "%s: %zu records in all, more than the 4 GiB convnet accepts",
                       dir, total);
    out->pixels = malloc(total * CIFAR_PIXELS);
    out->labels = malloc(total * sizeof *out->labels);
    if (!out->pixels || !out->labels) {
        free(out->pixels);
        free(out->labels);
        memset(out, 0, sizeof *out);
        return cn_fail(CN_ERR_NOMEM, "%s: out of memory for %zu CIFAR-10 images", dir, total);
    }
    size_t first = 0;
    for (size_t b = 0; b < n_files; b++) {
        cn_status st = read_batch(paths[b], records[b], out->pixels + first * CIFAR_PIXELS,
                                  out->labels + first);
        if (st) {
            free(out->pixels);
            free(out->labels);
            memset(out, 0, sizeof *out);
            return st;
        }
        first += records[b];
    }
    out->n = total;
    out->shape = (cn_shape){3, 32, 32};
    out->classes = CIFAR_CLASSES;
    out->owned = 1;
    /* the class names, where the download's batches.meta.txt is kept */
    char names[4096];
    cn_status st = CN_OK;
    if (join(names, sizeof names, dir, "batches.meta.txt") && (st = cn_data_read_names(out, names)))
        cn_data_free(out);
    return st;
}

/* ------------------------------------------------------------- dispatch */

static int exists(const char *dir, const char *name)
{
    char path[4096];
    struct stat sb;
    return join(path, sizeof path, dir, name) && stat(path, &sb) == 0;
}

/* Whether dir holds any of MNIST's files, in any of the names
 * cn_data_load_mnist accepts; that loader then says which one is missing. */
static int has_mnist(const char *dir)
{
    /* train-images-idx3-ubyte, train-images.idx3-ubyte and their .gz forms,
     * for both sets and both kinds. */
    static const char *const sets[] = {"train", "t10k"}, *const kinds[] = {"images", "labels"},
                             *const seps[] = {"-", "."}, *const ends[] = {"", ".gz"};
    for (size_t s = 0; s < 2; s++)
        for (size_t k = 0; k < 2; k++)
            for (size_t f = 0; f < 4; f++) {
                char name[64];
                snprintf(name, sizeof name, "%s-%s%sidx%d-ubyte%s", sets[s], kinds[k], seps[f % 2],
                         k == 0 ? 3 : 1, ends[f / 2]);
                if (exists(dir, name))
                    return 1;
            }
    return 0;
}

cn_status cn_data_load(const char *dir, const char *split, cn_data *out)
{
    memset(out, 0, sizeof *out);
    int test;
    if (split && strcmp(split, "train") == 0)
        test = 0;
    else if (split && strcmp(split, "test") == 0)
        test = 1;
    else
        return cn_fail(CN_ERR_ARG, "the data splits are \"train\" and \"test\", not \"%s\"",
                       split ? split : "(null)");
    if (has_mnist(dir))
        return cn_data_load_mnist(dir, test ? "t10k" : "train", out);
    if (exists(dir, "data_batch_1.bin") || exists(dir, "test_batch.bin"))
        return cn_data_load_cifar10(dir, split, out);
    struct stat sb;
    char why[128] = "";
    if (stat(dir, &sb) != 0)
        snprintf(why, sizeof why, " (%s)", strerror(errno));
    else if (!S_ISDIR(sb.st_mode))
        snprintf(why, sizeof why, " (not a directory)");
    return cn_fail(CN_ERR_IO,
                   "no data in %s%s: it holds neither MNIST's IDX files "
                   "(train-images-idx3-ubyte and the others, raw, dotted or .gz) nor CIFAR-10's "
                   "binary batches (data_batch_1.bin to data_batch_5.bin, test_batch.bin); fetch "
                   "the data with 'scripts/fetch-data.sh mnist' (or cifar10) or give the "
                   "directory with --data",
                   dir, why);
}
