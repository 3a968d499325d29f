/* datacache.c - data caches (convnet.h): a data set's decoded pixels in a
 * safetensors file, written as a stream and read back mapped.
 *
 * Layout: the 8-byte header length, the JSON header (padded with spaces to
 * a multiple of 8 bytes), then pixels U8 (n, C, H, W) and labels I32 (n).
 * The writer does not know n until its source ends (unreadable files may be
 * skipped), so it reserves the header of max_n samples, writes the pixels
 * after it as they come, and writes the header of the n it got last: that
 * header has no more digits than the reserved one, and the spaces fill the
 * rest.  Labels come last so that the pixels start right after the header;
 * they are copied when the file is opened (4 bytes a sample, and the copy
 * checks them once). */
#include "internal.h"
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CACHE_FORMAT "convnet-data-cache 1"
/* Samples asked of the source at a time (and at most 64 MB of them). */
#define CHUNK       1024
#define CHUNK_BYTES ((size_t)64 << 20)

/* The header of a cache of n samples, padded with spaces to at least pad
 * bytes and to a multiple of 8: NULL when out of memory. */
static char *cache_header(size_t n, cn_shape s, const char *classes_json, const char *const *meta,
                          size_t n_meta, size_t pad, size_t *len)
{
    size_t sz = cn_shape_size(s);
    cJSON *root = cJSON_CreateObject();
    cJSON *m = root ? cJSON_AddObjectToObject(root, "__metadata__") : NULL;
    int ok = m && cJSON_AddStringToObject(m, "convnet.format", CACHE_FORMAT) &&
             cJSON_AddStringToObject(m, "convnet.classes", classes_json);
    for (size_t i = 0; ok && i < n_meta; i++)
        ok = cJSON_AddStringToObject(m, meta[2 * i], meta[2 * i + 1]) != NULL;
    const double pdims[] = {(double)n, (double)s.c, (double)s.h, (double)s.w};
    const double ldims[] = {(double)n};
    const double poffs[] = {0, (double)(n * sz)};
    const double loffs[] = {(double)(n * sz), (double)(n * sz + 4 * n)};
    cJSON *p = ok ? cJSON_AddObjectToObject(root, "pixels") : NULL;
    ok = p && cJSON_AddStringToObject(p, "dtype", "U8") &&
         cJSON_AddItemToObject(p, "shape", cJSON_CreateDoubleArray(pdims, 4)) &&
         cJSON_AddItemToObject(p, "data_offsets", cJSON_CreateDoubleArray(poffs, 2));
    cJSON *l = ok ? cJSON_AddObjectToObject(root, "labels") : NULL;
    ok = l && cJSON_AddStringToObject(l, "dtype", "I32") &&
         cJSON_AddItemToObject(l, "shape", cJSON_CreateDoubleArray(ldims, 1)) &&
         cJSON_AddItemToObject(l, "data_offsets", cJSON_CreateDoubleArray(loffs, 2));
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json)
        return NULL;
    size_t jlen = strlen(json), hlen = jlen > pad ? jlen : pad;
    hlen = (hlen + 7) / 8 * 8;
    char *head = malloc(8 + hlen);
    if (head) {
        for (int i = 0; i < 8; i++)
            head[i] = (char)(uint8_t)((uint64_t)hlen >> (8 * i));
        memcpy(head + 8, json, jlen);
        memset(head + 8 + jlen, ' ', hlen - jlen);
        *len = 8 + hlen;
    }
    cJSON_free(json);
    return head;
}

typedef struct writer {
    cn_shape shape;
    size_t sz, max_n, classes, n;
    const char *classes_json;
    const char *const *meta;
    size_t n_meta;
    size_t head_len; /* reserved: 8 + the header of max_n samples */
    uint8_t *buf;    /* chunk samples */
    size_t chunk;
    int32_t *labels; /* max_n */
    cn_data_source next;
    void *user;
    cn_status st; /* a failure of the source or of the data, with msg */
    char msg[1024];
} writer;

static int writer_fail(writer *w, cn_status st)
{
    w->st = st;
    snprintf(w->msg, sizeof w->msg, "%s", cn_last_error());
    errno = ECANCELED;
    return -1;
}

static int fill_cache(int fd, void *user)
{
    writer *w = user;
    if (lseek(fd, (off_t)w->head_len, SEEK_SET) < 0)
        return -1;
    for (;;) {
        size_t want = w->max_n - w->n < w->chunk ? w->max_n - w->n : w->chunk, got = 0;
        if (want == 0)
            break;
        cn_status st = w->next(w->user, w->buf, w->labels + w->n, want, &got);
        if (st)
            return writer_fail(w, st);
        if (got > want)
            return writer_fail(w, cn_fail(CN_ERR_ARG,
                                          "the data source gave %zu samples where "
                                          "%zu were asked for",
                                          got, want));
        if (got == 0)
            break;
        for (size_t i = 0; i < got; i++) {
            int32_t y = w->labels[w->n + i];
            if (y < 0 || (size_t)y >= w->classes)
                return writer_fail(w, cn_fail(CN_ERR_ARG, "sample %zu has label %d, outside 0..%zu",
                                              w->n + i, (int)y, w->classes - 1));
        }
        if (cn_write_all(fd, w->buf, got * w->sz) != 0)
            return -1;
        w->n += got;
    }
    uint8_t le[4 * 256];
    for (size_t i = 0; i < w->n; i += 256) {
        size_t k = w->n - i < 256 ? w->n - i : 256;
        for (size_t q = 0; q < k; q++)
            for (int b = 0; b < 4; b++)
                le[4 * q + (size_t)b] = (uint8_t)((uint32_t)w->labels[i + q] >> (8 * b));
        if (cn_write_all(fd, le, 4 * k) != 0)
            return -1;
    }
    size_t len;
    char *head =
        cache_header(w->n, w->shape, w->classes_json, w->meta, w->n_meta, w->head_len - 8, &len);
    if (!head)
        return writer_fail(w, cn_fail(CN_ERR_NOMEM, "out of memory"));
    int err = len == w->head_len && lseek(fd, 0, SEEK_SET) == 0 ? cn_write_all(fd, head, len) : -1;
    if (err && len != w->head_len)
        errno = EOVERFLOW; /* cannot happen: n <= max_n */
    free(head);
    return err;
}

static int name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 255)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return 0;
    return 1;
}

cn_status cn_data_cache_write(const char *path, cn_shape shape, size_t max_n,
                              const char *const *names, size_t classes, const char *const *meta,
                              size_t n_meta, cn_data_source next, void *user, size_t *written)
{
    if (written)
        *written = 0;
    if (!path || !next || !names || (n_meta && !meta))
        return cn_fail(CN_ERR_ARG, "cn_data_cache_write: a NULL argument");
    size_t sz = cn_shape_size(shape);
    if (!shape.c || !shape.h || !shape.w || sz > ((size_t)1 << 30) || classes < 1 ||
        max_n > ((size_t)1 << 40) / (sz ? sz : 1))
        return cn_fail(CN_ERR_ARG,
                       "%s: a data cache of %zu samples of %zux%zux%zu: not a shape "
                       "or size it holds",
                       path, max_n, shape.c, shape.h, shape.w);
    cJSON *arr = cJSON_CreateArray();
    for (size_t k = 0; arr && k < classes; k++) {
        if (!names[k] || !name_ok(names[k])) {
            cJSON_Delete(arr);
            return cn_fail(CN_ERR_ARG, "%s: class %zu has no name or a bad one", path, k);
        }
        if (!cJSON_AddItemToArray(arr, cJSON_CreateString(names[k]))) {
            cJSON_Delete(arr);
            arr = NULL;
        }
    }
    char *classes_json = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    writer w = {.shape = shape,
                .sz = sz,
                .max_n = max_n,
                .classes = classes,
                .classes_json = classes_json,
                .meta = meta,
                .n_meta = n_meta,
                .next = next,
                .user = user};
    w.chunk = CHUNK_BYTES / sz < CHUNK ? CHUNK_BYTES / sz : CHUNK;
    w.chunk = w.chunk ? w.chunk : 1;
    w.buf = malloc(w.chunk * sz);
    w.labels = malloc((max_n ? max_n : 1) * sizeof *w.labels);
    char *head = classes_json
                     ? cache_header(max_n, shape, classes_json, meta, n_meta, 0, &w.head_len)
                     : NULL;
    cn_status st = CN_OK;
    if (!w.buf || !w.labels || !head)
        st =
            cn_fail(CN_ERR_NOMEM, "%s: out of memory for a data cache of %zu samples", path, max_n);
    free(head);
    if (!st) {
        st = cn_save_atomic(path, fill_cache, &w);
        if (w.st) /* the source's or the data's failure, not the file's */
            st = cn_fail_at(NULL, 0, w.st, "%s", w.msg);
    }
    if (!st && written)
        *written = w.n;
    free(w.buf);
    free(w.labels);
    cJSON_free(classes_json);
    return st;
}

/* ------------------------------------------------------------------ read */

typedef struct cache_store {
    cn_data_store base;
    cn_st_file f;    /* the mapping */
    int32_t *labels; /* the copy */
} cache_store;

static void release_cache(cn_data_store *s)
{
    cache_store *c = (cache_store *)s;
    cn_st_close(&c->f);
    free(c->labels);
    free(c);
}

static int is_shape(const cn_st_entry *e, const char *dtype, int ndim)
{
    return e && strcmp(e->dtype, dtype) == 0 && e->ndim == ndim;
}

/* The class names of the JSON array text into out (names, classes set). */
static cn_status read_classes(const char *path, const char *text, cn_data *out)
{
    cJSON *arr = text ? cJSON_Parse(text) : NULL;
    size_t k = cJSON_IsArray(arr) ? (size_t)cJSON_GetArraySize(arr) : 0;
    const char **names = k ? calloc(k, sizeof *names) : NULL;
    cn_status st = CN_OK;
    if (!k)
        st = cn_fail(CN_ERR_FORMAT, "%s: no class names (convnet.classes) in the data cache", path);
    else if (!names)
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < k; i++) {
        const cJSON *item = cJSON_GetArrayItem(arr, (int)i);
        if (!cJSON_IsString(item))
            st = cn_fail(CN_ERR_FORMAT, "%s: class %zu's name is not a string", path, i);
        else
            names[i] = item->valuestring;
    }
    if (!st) {
        out->classes = k;
        st = cn_data_set_names(out, names);
        if (st)
            cn_error_prefix("%s: ", path);
    }
    free(names);
    cJSON_Delete(arr);
    return st;
}

cn_status cn_data_cache_open(const char *path, cn_data *out)
{
    memset(out, 0, sizeof *out);
    if (!path)
        return cn_fail(CN_ERR_ARG, "cn_data_cache_open: path is NULL");
    cache_store *c = calloc(1, sizeof *c);
    if (!c)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    c->base.release = release_cache;
    cn_status st = cn_st_open_mapped(path, 1, &c->f);
    if (st) {
        free(c);
        return st;
    }
    const cn_st_file *f = &c->f;
    const char *format = cn_st_meta(f, "convnet.format");
    const cn_st_entry *px = cn_st_find(f, "pixels"), *lb = cn_st_find(f, "labels");
    out->owned = 1;
    if (!format || strcmp(format, CACHE_FORMAT) != 0 || !is_shape(px, "U8", 4) ||
        !is_shape(lb, "I32", 1) || lb->dims[0] != px->dims[0] || f->n_entries != 2) {
        st = cn_fail(CN_ERR_FORMAT,
                     "%s: not a convnet data cache (%s, pixels U8 (n, C, H, W) and labels I32 "
                     "(n))",
                     path, CACHE_FORMAT);
        goto fail;
    }
    out->n = px->dims[0];
    out->shape = (cn_shape){px->dims[1], px->dims[2], px->dims[3]};
    if (!out->shape.c || !out->shape.h || !out->shape.w) {
        st = cn_fail(CN_ERR_FORMAT, "%s: samples of an empty shape", path);
        goto fail;
    }
    if ((st = read_classes(path, cn_st_meta(f, "convnet.classes"), out)))
        goto fail;
    out->labels = malloc((out->n ? out->n : 1) * sizeof *out->labels);
    if (!out->labels) {
        st = cn_fail(CN_ERR_NOMEM, "%s: out of memory for %zu labels", path, out->n);
        goto fail;
    }
    const uint8_t *le = f->data + lb->begin;
    for (size_t i = 0; i < out->n; i++) {
        uint32_t v = (uint32_t)le[4 * i] | (uint32_t)le[4 * i + 1] << 8 |
                     (uint32_t)le[4 * i + 2] << 16 | (uint32_t)le[4 * i + 3] << 24;
        out->labels[i] = (int32_t)v;
        if (out->labels[i] < 0 || (size_t)out->labels[i] >= out->classes) {
            st = cn_fail(CN_ERR_FORMAT, "%s: sample %zu has label %d, outside 0..%zu", path, i,
                         (int)out->labels[i], out->classes - 1);
            goto fail;
        }
    }
    /* The pixels are the file's own pages: read-only (nothing writes a
     * loaded data set's pixels), and released by unmapping. */
    out->pixels = (uint8_t *)(uintptr_t)(f->data + px->begin);
    c->labels = out->labels; /* released with the mapping */
    out->store = c;
    return CN_OK;
fail:
    cn_st_close(&c->f);
    free(c);
    free(out->labels);
    for (size_t k = 0; out->names && k < out->classes; k++)
        free(out->names[k]);
    free(out->names);
    memset(out, 0, sizeof *out);
    return st;
}

cn_status cn_data_cache_meta(const char *path, const char *key, char **value)
{
    *value = NULL;
    cn_st_file f;
    cn_status st = cn_st_open_mapped(path, 0, &f);
    if (st)
        return st;
    const char *v = cn_st_meta(&f, key);
    if (v && !(*value = strdup(v)))
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
    cn_st_close(&f);
    return st;
}
