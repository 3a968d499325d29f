/* fuzz_cifar.c - CIFAR-10 binary batches through cn_data_load_cifar10 and
 * cn_data_load.
 *
 * The readers take a directory: one is made at start-up (under $TMPDIR, or
 * /dev/shm when it exists) whose test_batch.bin and data_batch_1.bin to
 * data_batch_5.bin are links to one in-memory file that holds the input.  The
 * directory is removed at exit. */
#include "fuzz.h"

#include "convnet.h"

#include <string.h>
#include <sys/stat.h>

static fz_file batch;
static char dir[256];
static const char *const names[] = {"test_batch.bin",   "data_batch_1.bin", "data_batch_2.bin",
                                    "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"};

static void remove_dir(void)
{
    char path[300];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    struct stat sb;
    const char *base = getenv("TMPDIR");
    if (stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode))
        base = "/dev/shm";
    snprintf(dir, sizeof dir, "%s/cn-fuzz-cifar-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        perror(dir);
        abort();
    }
    fz_write(&batch, "", 0);
    char path[300];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (symlink(batch.path, path) != 0) {
            perror(path);
            abort();
        }
    }
    atexit(remove_dir);
    return 0;
}

static void check(const cn_data *d)
{
    FZ_ASSERT(d->n > 0 && d->owned && d->classes == 10);
    FZ_ASSERT(d->shape.c == 3 && d->shape.h == 32 && d->shape.w == 32);
    unsigned sum = 0;
    for (size_t i = 0; i < d->n * 3072; i++)
        sum += d->pixels[i];
    for (size_t i = 0; i < d->n; i++)
        FZ_ASSERT(d->labels[i] >= 0 && d->labels[i] < 10);
    (void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_write(&batch, data, size);
    cn_data d;
    if (cn_data_load_cifar10(dir, "test", &d) != CN_OK) {
        FZ_ASSERT(cn_last_error()[0] != '\0' && strstr(cn_last_error(), dir));
        return 0;
    }
    check(&d);
    size_t n = d.n;
    cn_data_free(&d);
    /* The training set: the five batches one after the other. */
    FZ_ASSERT(cn_data_load_cifar10(dir, "train", &d) == CN_OK && d.n == 5 * n);
    check(&d);
    cn_data_free(&d);
    FZ_ASSERT(cn_data_load(dir, "test", &d) == CN_OK && d.n == n);
    cn_data_free(&d);
    return 0;
}
