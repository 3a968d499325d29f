/* fuzz.h - what the fuzz targets share.  The library's readers take paths, so
 * each input is written to an in-memory file (memfd_create) that the readers
 * open as /proc/self/fd/N: no disk, nothing left behind, and the readers'
 * own checks of the file (stat, size, open) run as they do on real files.
 *
 * Each target is one file with LLVMFuzzerTestOneInput; make fuzz builds them
 * with clang -fsanitize=fuzzer,address,undefined into build-fuzz/. */
#ifndef CN_FUZZ_H
#define CN_FUZZ_H

#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* The most memory a network built from fuzzed input may plan: a description
 * within the limits of its keys can still ask for gigabytes, which is not a
 * bug, only slow; past this it is refused as too large. */
#define FZ_MEMORY_LIMIT ((size_t)64 << 20)

typedef struct fz_file {
    int fd;
    char path[64]; /* /proc/self/fd/N */
} fz_file;

/* Replaces the contents of f with data (creating the file on first use); its
 * path is f->path.  Aborts on failure: the harness, not the library, broke. */
static inline void fz_write(fz_file *f, const void *data, size_t size)
{
    if (f->path[0] == '\0') {
        f->fd = memfd_create("cn-fuzz", 0);
        if (f->fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
    }
    if (ftruncate(f->fd, 0) != 0 || (size && pwrite(f->fd, data, size, 0) != (ssize_t)size)) {
        perror("fuzz input file");
        abort();
    }
}

/* A finding of the harness's own checks: the library returned CN_OK with
 * something that is not what it promises. */
#define FZ_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond);             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
