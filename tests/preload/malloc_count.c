/* malloc_count.c - an LD_PRELOAD library that counts the calls to malloc,
 * calloc, realloc and the aligned allocators a program makes (through
 * glibc's own entry points, __libc_*), and writes the count to the file
 * $MALLOC_COUNT_FILE when the program exits.  tests/examples.sh runs the
 * embedded example with it: the count must not grow with the number of
 * forward passes.
 *
 *   cc -shared -fPIC malloc_count.c -o malloc_count.so */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_ulong count;

void *malloc(size_t n)
{
    atomic_fetch_add(&count, 1);
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    atomic_fetch_add(&count, 1);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    atomic_fetch_add(&count, 1);
    return __libc_realloc(p, n);
}

void *memalign(size_t align, size_t n)
{
    atomic_fetch_add(&count, 1);
    return __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n) { return memalign(align, n); }

int posix_memalign(void **p, size_t align, size_t n)
{
    void *q = memalign(align, n);
    if (!q)
        return ENOMEM;
    *p = q;
    return 0;
}

__attribute__((destructor)) static void report(void)
{
    const char *path = getenv("MALLOC_COUNT_FILE");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (f) {
        fprintf(f, "%lu\n", (unsigned long)atomic_load(&count));
        fclose(f);
    }
}
