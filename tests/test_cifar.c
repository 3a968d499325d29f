/* test_cifar.c - CIFAR-10's binary batches: small files in the official
 * layout read back (labels, planes, the order of the batches), damaged files
 * refused with their names, and cn_data_load choosing MNIST or CIFAR-10 by
 * what a directory holds. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECORD 3073
#define PIXELS 3072

/* Records per file of the small data set: data_batch_1..5, then test_batch;
 * different counts, so that a batch read in the wrong place shows. */
static const size_t COUNTS[6] = {3, 2, 4, 1, 2, 3};

/* Batch b (1..5; 6 is the test batch), record i: a label, and a pixel value
 * for channel c at position p = y * 32 + x that differs between the planes. */
static int label_of(int b, size_t i) { return (int)((size_t)b + 3 * i) % 10; }
static uint8_t pixel_of(int b, size_t i, size_t c, size_t p)
{
    return (uint8_t)((size_t)b * 50 + i * 13 + c * 71 + p * 7 + p / 32);
}

static const char *batch_name(int b)
{
    static char name[32];
    if (b == 6)
        snprintf(name, sizeof name, "test_batch.bin");
    else
        snprintf(name, sizeof name, "data_batch_%d.bin", b);
    return name;
}

/* Writes batch b with COUNTS[b - 1] records into the test's directory. */
static int write_batch(int b)
{
    FILE *f = fopen(th_path(batch_name(b)), "wb");
    if (!f)
        return 0;
    int ok = 1;
    unsigned char rec[RECORD];
    for (size_t i = 0; i < COUNTS[b - 1]; i++) {
        rec[0] = (unsigned char)label_of(b, i);
        for (size_t c = 0; c < 3; c++)
            for (size_t p = 0; p < 1024; p++)
                rec[1 + c * 1024 + p] = pixel_of(b, i, c, p);
        ok &= fwrite(rec, 1, RECORD, f) == RECORD;
    }
    return fclose(f) == 0 && ok;
}

static int write_all(void)
{
    for (int b = 1; b <= 6; b++)
        if (!write_batch(b))
            return 0;
    return 1;
}

/* data's samples [first, first + COUNTS[b - 1]) are batch b's records. */
static int holds_batch(const cn_data *d, size_t first, int b)
{
    for (size_t i = 0; i < COUNTS[b - 1]; i++) {
        if (d->labels[first + i] != label_of(b, i))
            return 0;
        const uint8_t *x = d->pixels + (first + i) * PIXELS;
        for (size_t c = 0; c < 3; c++)
            for (size_t p = 0; p < 1024; p++)
                if (x[c * 1024 + p] != pixel_of(b, i, c, p))
                    return 0;
    }
    return 1;
}

static void reads_training_batches(void)
{
    CHECK(write_all());
    cn_data d;
    CHECK_OK(cn_data_load_cifar10(th_tmpdir(), "train", &d));
    CHECK(d.n == 3 + 2 + 4 + 1 + 2);
    CHECK(d.shape.c == 3 && d.shape.h == 32 && d.shape.w == 32);
    CHECK(d.classes == 10 && d.owned == 1);
    /* Sample 5 is data_batch_3.bin's first record: label (3 + 0) % 10, and its
     * green plane (c = 1) at y = 7, x = 20 comes from byte 1 + 1024 + 7 * 32 + 20. */
    CHECK(d.labels[5] == 3);
    size_t p = 7 * 32 + 20;
    CHECK(d.pixels[5 * PIXELS + 1 * 1024 + p] == pixel_of(3, 0, 1, p));
    CHECK(d.pixels[5 * PIXELS + 1 * 1024 + p] == (uint8_t)(150 + 71 + p * 7 + 7));
    /* The last sample's blue plane, last pixel. */
    CHECK(d.labels[11] == (5 + 3) % 10);
    CHECK(d.pixels[11 * PIXELS + 2 * 1024 + 1023] == pixel_of(5, 1, 2, 1023));
    /* Every label and pixel. */
    size_t first = 0;
    for (int b = 1; b <= 5; b++) {
        CHECK_MSG(holds_batch(&d, first, b), "samples %zu.. are not data_batch_%d.bin", first, b);
        first += COUNTS[b - 1];
    }
    cn_data_free(&d);
    CHECK(d.pixels == NULL && d.n == 0);
}

static void concatenates_in_order(void)
{
    /* Written in the reverse order, so that the directory's order (or the
     * files' ages) cannot pass for the batches' numbers. */
    for (int b = 5; b >= 1; b--)
        CHECK(write_batch(b));
    cn_data d;
    CHECK_OK(cn_data_load_cifar10(th_tmpdir(), "train", &d));
    CHECK(d.n == 12);
    /* Each batch starts where the ones before it end: 0, 3, 5, 9, 10. */
    static const size_t starts[5] = {0, 3, 5, 9, 10};
    for (int b = 1; b <= 5; b++) {
        CHECK_MSG(holds_batch(&d, starts[b - 1], b), "data_batch_%d.bin is not at sample %zu", b,
                  starts[b - 1]);
        /* The first pixel tells the batch: 50 b + 13 i. */
        CHECK(d.pixels[starts[b - 1] * PIXELS] == (uint8_t)(50 * b));
    }
    cn_data_free(&d);
}

static void reads_test_batch(void)
{
    CHECK(write_batch(6));
    cn_data d;
    CHECK_OK(cn_data_load_cifar10(th_tmpdir(), "test", &d));
    CHECK(d.n == 3 && d.classes == 10 && d.shape.c == 3);
    CHECK(holds_batch(&d, 0, 6));
    CHECK(d.labels[0] == 6 && d.labels[1] == 9 && d.labels[2] == 2);
    /* Red, green and blue of record 2 at (31, 0). */
    for (size_t c = 0; c < 3; c++)
        CHECK(d.pixels[2 * PIXELS + c * 1024 + 31 * 32] == pixel_of(6, 2, c, 31 * 32));
    cn_data_free(&d);
    CHECK_ERR(cn_data_load_cifar10(th_tmpdir(), "t10k", &d), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "t10k"));
}

static int write_text(const char *name, const char *text)
{
    FILE *f = fopen(th_path(name), "w");
    return f && fputs(text, f) >= 0 && fclose(f) == 0;
}

/* batches.meta.txt (as in the download: a name per line, blank lines at
 * the end) names CIFAR-10's classes; the names join the fingerprint. */
static void reads_class_names(void)
{
    CHECK(write_batch(6));
    cn_data d;
    CHECK_OK(cn_data_load_cifar10(th_tmpdir(), "test", &d));
    CHECK(d.names == NULL);
    uint64_t unnamed = cn_data_fingerprint(&d);
    cn_data_free(&d);
    CHECK(write_text("batches.meta.txt", "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\n"
                                         "horse\nship\ntruck\n\n\n"));
    CHECK_OK(cn_data_load_cifar10(th_tmpdir(), "test", &d));
    CHECK(d.names && strcmp(d.names[0], "airplane") == 0 && strcmp(d.names[9], "truck") == 0);
    CHECK(cn_data_fingerprint(&d) != unnamed);
    cn_data s = cn_data_slice(&d, 1, 1);
    CHECK(s.names == d.names);
    CHECK_ERR(cn_data_set_names(&s, NULL), CN_ERR_ARG);
    const char *twice[10] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "a"};
    CHECK_ERR(cn_data_set_names(&d, twice), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "same name") && strcmp(d.names[9], "truck") == 0);
    twice[9] = "j\tk";
    CHECK_ERR(cn_data_set_names(&d, twice), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "class 9") && th_contains(cn_last_error(), "control"));
    cn_data_free(&d);
    /* too few names for the labels, a damaged file: refused with its name */
    CHECK(write_text("batches.meta.txt", "airplane\nautomobile\n"));
    CHECK_ERR(cn_data_load_cifar10(th_tmpdir(), "test", &d), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "batches.meta.txt") && d.pixels == NULL);
}

/* classes.txt beside IDX files names their classes; more names than the
 * labels use make more classes. */
static void reads_idx_class_names(void)
{
    static const uint8_t images[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 7, 9};
    static const uint8_t labels[] = {0, 0, 8, 1, 0, 0, 0, 2, 1, 0};
    FILE *f = fopen(th_path("t10k-images-idx3-ubyte"), "wb");
    CHECK(f && fwrite(images, sizeof images, 1, f) == 1 && fclose(f) == 0);
    f = fopen(th_path("t10k-labels-idx1-ubyte"), "wb");
    CHECK(f && fwrite(labels, sizeof labels, 1, f) == 1 && fclose(f) == 0);
    CHECK(write_text("classes.txt", "zero\r\none\ntwo\n"));
    cn_data d;
    CHECK_OK(cn_data_load(th_tmpdir(), "test", &d));
    CHECK(d.n == 2 && d.classes == 3 && d.names && strcmp(d.names[0], "zero") == 0 &&
          strcmp(d.names[2], "two") == 0);
    cn_data_free(&d);
    CHECK(write_text("classes.txt", "zero\n"));
    CHECK_ERR(cn_data_load(th_tmpdir(), "test", &d), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "classes.txt") && th_contains(cn_last_error(), "1 class"));
}

/* Writes batch b, then cuts its file to size bytes. */
static int cut_batch(int b, long size)
{
    return write_batch(b) && truncate(th_path(batch_name(b)), size) == 0;
}

static void refuses_truncated_batch(void)
{
    CHECK(write_all());
    CHECK(cut_batch(3, 2 * RECORD + 100));
    cn_data d;
    CHECK_ERR(cn_data_load_cifar10(th_tmpdir(), "train", &d), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "data_batch_3.bin"));
    CHECK(th_contains(cn_last_error(), "truncated"));
    CHECK(th_contains(cn_last_error(), "3073"));
    CHECK(d.n == 0 && d.pixels == NULL && d.labels == NULL);
    /* One byte short of a whole record. */
    CHECK(cut_batch(6, 3 * RECORD - 1));
    CHECK_ERR(cn_data_load_cifar10(th_tmpdir(), "test", &d), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "test_batch.bin"));
}

static void refuses_empty_batch(void)
{
    CHECK(write_all());
    CHECK(cut_batch(6, 0));
    cn_data d;
    CHECK_ERR(cn_data_load_cifar10(th_tmpdir(), "test", &d), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "test_batch.bin"));
    CHECK(th_contains(cn_last_error(), "empty"));
    CHECK(cut_batch(5, 0));
    CHECK_ERR(cn_data_load_cifar10(th_tmpdir(), "train", &d), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "data_batch_5.bin"));
}

static void refuses_label_10(void)
{
    CHECK(write_all());
    /* data_batch_4.bin's only record (record 0) gets label 10. */
    FILE *f = fopen(th_path("data_batch_4.bin"), "r+b");
    CHECK(f);
    CHECK(fputc(10, f) == 10);
    CHECK(fclose(f) == 0);
    cn_data d;
    CHECK_ERR(cn_data_load_cifar10(th_tmpdir(), "train", &d), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "data_batch_4.bin"));
    CHECK(th_contains(cn_last_error(), "record 0"));
    CHECK(th_contains(cn_last_error(), "label 10"));
    CHECK(d.n == 0 && d.pixels == NULL);
    /* In the test batch: record 2 of 3. */
    f = fopen(th_path("test_batch.bin"), "r+b");
    CHECK(f);
    CHECK(fseek(f, 2 * RECORD, SEEK_SET) == 0 && fputc(255, f) == 255);
    CHECK(fclose(f) == 0);
    CHECK_ERR(cn_data_load_cifar10(th_tmpdir(), "test", &d), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "test_batch.bin"));
    CHECK(th_contains(cn_last_error(), "record 2"));
    CHECK(th_contains(cn_last_error(), "label 255"));
}

static void refuses_missing_batch(void)
{
    CHECK(write_all());
    CHECK(unlink(th_path("data_batch_4.bin")) == 0);
    cn_data d;
    CHECK_ERR(cn_data_load_cifar10(th_tmpdir(), "train", &d), CN_ERR_IO);
    CHECK(th_contains(cn_last_error(), "data_batch_4.bin"));
    CHECK(th_contains(cn_last_error(), "fetch-data.sh cifar10"));
    CHECK(d.n == 0 && d.pixels == NULL);
    /* The test set is still there. */
    CHECK_OK(cn_data_load_cifar10(th_tmpdir(), "test", &d));
    cn_data_free(&d);
    CHECK(unlink(th_path("test_batch.bin")) == 0);
    CHECK_ERR(cn_data_load_cifar10(th_tmpdir(), "test", &d), CN_ERR_IO);
    CHECK(th_contains(cn_last_error(), "test_batch.bin"));
}

static void load_finds_cifar(void)
{
    CHECK(write_all());
    cn_data train, test;
    CHECK_OK(cn_data_load(th_tmpdir(), "train", &train));
    CHECK(train.n == 12 && train.shape.c == 3 && train.classes == 10);
    CHECK(holds_batch(&train, 9, 4));
    cn_data_free(&train);
    CHECK_OK(cn_data_load(th_tmpdir(), "test", &test));
    CHECK(test.n == 3 && holds_batch(&test, 0, 6));
    cn_data_free(&test);
    CHECK_ERR(cn_data_load(th_tmpdir(), "t10k", &test), CN_ERR_ARG);
    CHECK_ERR(cn_data_load(th_tmpdir(), "val", &test), CN_ERR_ARG);
    /* A damaged batch gives the reader's own error. */
    CHECK(cut_batch(2, 5));
    CHECK_ERR(cn_data_load(th_tmpdir(), "train", &train), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "data_batch_2.bin"));
}

static void load_finds_mnist(void)
{
    cn_data train, test;
    CHECK_OK(cn_data_load(th_data_dir(), "train", &train));
    CHECK(train.n == 60000 && train.shape.c == 1 && train.shape.h == 28 && train.shape.w == 28);
    CHECK(train.classes == 10);
    cn_data_free(&train);
    CHECK_OK(cn_data_load(th_data_dir(), "test", &test));
    CHECK(test.n == 10000 && test.shape.c == 1);
    cn_data_free(&test);
}

static void load_reports_damaged_mnist(void)
{
    /* An MNIST file that is not IDX, beside a CIFAR-10 batch: MNIST is chosen
     * and its reader says what is wrong. */
    CHECK(write_all());
    FILE *f = fopen(th_path("train-images-idx3-ubyte"), "wb");
    CHECK(f);
    CHECK(fputs("not an IDX file", f) >= 0 && fclose(f) == 0);
    f = fopen(th_path("train-labels-idx1-ubyte"), "wb");
    CHECK(f);
    CHECK(fputs("nor this", f) >= 0 && fclose(f) == 0);
    cn_data d;
    CHECK_ERR(cn_data_load(th_tmpdir(), "train", &d), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "train-images-idx3-ubyte"));
    CHECK(th_contains(cn_last_error(), "not an IDX file"));
    /* Only the training files: the test set is MNIST's and missing. */
    CHECK_ERR(cn_data_load(th_tmpdir(), "test", &d), CN_ERR_IO);
    CHECK(th_contains(cn_last_error(), "t10k-"));
}

static void load_sees_mnist_by_any_name(void)
{
    /* One MNIST file, in each of the names its reader accepts, is enough for
     * cn_data_load to choose MNIST, whose reader names the file missing. */
    static const char *const names[] = {"t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte",
                                        "t10k-labels-idx1-ubyte.gz", "t10k-labels.idx1-ubyte.gz"};
    for (size_t i = 0; i < 4; i++) {
        char dir[512], path[600];
        snprintf(dir, sizeof dir, "%s/m%zu", th_tmpdir(), i);
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        CHECK(mkdir(dir, 0777) == 0);
        FILE *f = fopen(path, "wb");
        CHECK(f && fclose(f) == 0);
        cn_data d;
        CHECK_ERR(cn_data_load(dir, "test", &d), CN_ERR_IO);
        CHECK_MSG(th_contains(cn_last_error(), "t10k-images-idx3-ubyte not found"),
                  "%s is not taken for MNIST: %s", names[i], cn_last_error());
    }
}

static void load_refuses_empty_directory(void)
{
    cn_data d;
    CHECK_ERR(cn_data_load(th_tmpdir(), "train", &d), CN_ERR_IO);
    const char *e = cn_last_error();
    CHECK_MSG(th_contains(e, th_tmpdir()) && th_contains(e, "MNIST") &&
                  th_contains(e, "train-images-idx3-ubyte") && th_contains(e, "CIFAR-10") &&
                  th_contains(e, "data_batch_1.bin") && th_contains(e, "test_batch.bin") &&
                  th_contains(e, "fetch-data.sh mnist"),
              "the message does not name both layouts: %s", e);
    CHECK(d.n == 0 && d.pixels == NULL);
    CHECK_ERR(cn_data_load(th_path("nowhere"), "test", &d), CN_ERR_IO);
    CHECK(th_contains(cn_last_error(), "nowhere") && th_contains(cn_last_error(), "CIFAR-10"));
}

const th_test th_cifar[] = {
    {"cifar/reads_training_batches", reads_training_batches},
    {"cifar/concatenates_in_order", concatenates_in_order},
    {"cifar/reads_test_batch", reads_test_batch},
    {"cifar/reads_class_names", reads_class_names},
    {"cifar/reads_idx_class_names", reads_idx_class_names},
    {"cifar/refuses_truncated_batch", refuses_truncated_batch},
    {"cifar/refuses_empty_batch", refuses_empty_batch},
    {"cifar/refuses_label_10", refuses_label_10},
    {"cifar/refuses_missing_batch", refuses_missing_batch},
    {"cifar/load_finds_cifar", load_finds_cifar},
    {"cifar/load_finds_mnist", load_finds_mnist},
    {"cifar/load_reports_damaged_mnist", load_reports_damaged_mnist},
    {"cifar/load_sees_mnist_by_any_name", load_sees_mnist_by_any_name},
    {"cifar/load_refuses_empty_directory", load_refuses_empty_directory},
    {NULL, NULL},
};
