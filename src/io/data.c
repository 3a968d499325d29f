/* data.c - what every data set has whatever file it came from: release,
 * slices, and the names of its classes. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The longest class name, in bytes. */
#define MAX_NAME 255

void cn_free_names(char **names, size_t k)
{
    if (!names)
        return;
    for (size_t i = 0; i < k; i++)
        free(names[i]);
    free(names);
}

void cn_data_free(cn_data *data)
{
    if (!data || !data->owned)
        return;
    if (data->store) {
        cn_data_store *store = data->store;
        store->release(store);
    } else {
        free(data->pixels);
        free(data->labels);
    }
    cn_free_names(data->names, data->classes);
    memset(data, 0, sizeof *data);
}

cn_data cn_data_slice(const cn_data *data, size_t first, size_t count)
{
    cn_data s = *data;
    s.owned = 0;
    if (first > data->n)
        first = data->n;
    if (count > data->n - first)
        count = data->n - first;
    s.n = count;
    s.pixels = data->pixels + first * cn_shape_size(data->shape);
    s.labels = data->labels + first;
    return s;
}

void cn_data_read_ahead(const cn_data *data, size_t first, size_t count)
{
    if (!data->store || first >= data->n)
        return;
    count = count < data->n - first ? count : data->n - first;
    size_t size = cn_shape_size(data->shape);
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)(data->pixels + first * size), start = a & ~(page - 1);
    posix_madvise((void *)start, a + count * size - start, POSIX_MADV_WILLNEED);
}

/* NULL if name is fit to be a class name, else what is wrong with it. */
static const char *bad_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0)
        return "is empty";
    if (len > MAX_NAME)
        return "is longer than 255 bytes";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return "holds a control character";
    return NULL;
}

cn_status cn_check_class_names(const char *const *names, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        const char *why = names[i] ? bad_name(names[i]) : "is missing";
        if (why)
            return cn_fail(CN_ERR_ARG, "the name of class %zu %s", i, why);
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[j], names[i]) == 0)
                return cn_fail(CN_ERR_ARG, "classes %zu and %zu have the same name \"%s\"", j, i,
                               names[i]);
    }
    return CN_OK;
}

char **cn_copy_names(const char *const *names, size_t k)
{
    char **copy = calloc(k ? k : 1, sizeof *copy);
    for (size_t i = 0; copy && i < k; i++)
        if (!(copy[i] = strdup(names[i]))) {
            cn_free_names(copy, i);
            copy = NULL;
        }
    return copy;
}

cn_status cn_data_set_names(cn_data *data, const char *const *names)
{
    if (!data || (!data->owned && data->n))
        return cn_fail(CN_ERR_ARG, "class names go on a data set that owns its memory, "
                                   "not on a slice");
    cn_status st = names ? cn_check_class_names(names, data->classes) : CN_OK;
    if (st)
        return st;
    char **copy = NULL;
    if (names && !(copy = cn_copy_names(names, data->classes)))
        return cn_fail(CN_ERR_NOMEM, "out of memory for %zu class names", data->classes);
    cn_free_names(data->names, data->classes);
    data->names = copy;
    return CN_OK;
}

cn_status cn_data_read_names(cn_data *data, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return CN_OK;
        return cn_fail(CN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    size_t k = data->classes;
    char **names = calloc(k ? k : 1, sizeof *names);
    char line[MAX_NAME + 3];
    size_t got = 0, lineno = 0;
    cn_status st = names ? CN_OK : cn_fail(CN_ERR_NOMEM, "out of memory");
    while (!st && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            st = cn_fail(CN_ERR_FORMAT, "%s:%zu: a class name longer than %d bytes", path, lineno,
                         MAX_NAME);
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = '\0';
        if (len == 0)
            continue;   /* blank lines (CIFAR-10's batches.meta.txt ends with some) */
        if (got == k) { /* more names than labels seen: the names decide */
            char **more = realloc(names, 2 * (k ? k : 1) * sizeof *names);
            if (!more) {
                st = cn_fail(CN_ERR_NOMEM, "out of memory");
                break;
            }
            names = more;
            k = 2 * (k ? k : 1);
        }
        if (!(names[got++] = strdup(line)))
            st = cn_fail(CN_ERR_NOMEM, "out of memory");
    }
    if (!st && ferror(f))
        st = cn_fail(CN_ERR_IO, "%s: read error", path);
    fclose(f);
    if (!st && got < data->classes)
        st = cn_fail(CN_ERR_FORMAT, "%s: %zu class names, but the labels go up to %zu", path, got,
                     data->classes - 1);
    if (!st) {
        size_t had = data->classes;
        data->classes = got;
        st = cn_data_set_names(data, (const char *const *)names);
        if (st)
            data->classes = had;
    }
    cn_free_names(names, got);
    return st;
}
