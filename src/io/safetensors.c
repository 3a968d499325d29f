/* safetensors.c - see safetensors.h.  JSON goes through cJSON. */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int host_is_little(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ----------------------------------------------------------------- write */

static char *build_header(const cn_st_tensor *t, size_t n, const char *const *meta, size_t n_meta,
                          size_t *data_len)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    int ok = 1;
    if (n_meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (size_t i = 0; ok && i < n_meta; i++)
            ok = cJSON_AddStringToObject(m, meta[2 * i], meta[2 * i + 1]) != NULL;
    }
    size_t off = 0;
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, t[i].name);
        cJSON *shape = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *offs = NULL;
        ok = e && shape && cJSON_AddStringToObject(e, "dtype", "F32");
        size_t count = 1;
        for (int d = 0; ok && d < t[i].ndim; d++) {
            count *= t[i].dims[d];
            ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].dims[d]));
        }
        if (ok)
            ok = (offs = cJSON_AddArrayToObject(e, "data_offsets")) != NULL;
        if (ok)
            ok = cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off)) &&
                 cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + 4 * count)));
        off += 4 * count;
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    *data_len = off;
    return text;
}

int cn_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Directory part of path ("." if none), into buf. */
static void dir_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(buf, size, ".");
    else if (slash == path)
        snprintf(buf, size, "/");
    else
        snprintf(buf, size, "%.*s", (int)(slash - path), path);
}

/* Removes the temporary files that earlier saves to path left behind when
 * their process died between writing and renaming (path.tmp-PID, PID a
 * process that no longer exists).  A live process's file is left alone. */
static void remove_stale_temps(const char *path, const char *dir)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t blen = strlen(base);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (strncmp(name, base, blen) != 0 || strncmp(name + blen, ".tmp-", 5) != 0)
            continue;
        const char *digits = name + blen + 5;
        char *end;
        errno = 0;
        long pid = strtol(digits, &end, 10);
        if (end == digits || *end || errno || pid <= 0 || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char full[4096];
        if ((size_t)snprintf(full, sizeof full, "%s/%s", dir, name) < sizeof full)
            unlink(full);
    }
    closedir(d);
}

cn_status cn_save_atomic(const char *path, int (*fill)(int fd, void *user), void *user)
{
    size_t plen = strlen(path) + 32;
    char *tmp = malloc(plen);
    if (!tmp)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    snprintf(tmp, plen, "%s.tmp-%ld", path, (long)getpid());
    cn_status st = CN_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st =
            cn_fail(CN_ERR_IO, "%s: cannot save: cannot create %s: %s", path, tmp, strerror(errno));
        goto done;
    }
    int err = fill(fd, user);
    if (!err)
        err = fsync(fd);
    int saved = errno;
    if (close(fd) != 0 && !err) {
        err = -1;
        saved = errno;
    }
    /* write, fsync and close all report a full disk or a failing device
     * (on some file systems only fsync or close does): each is checked. */
    if (err) {
        st = cn_fail(CN_ERR_IO,
                     "%s: cannot save: writing %s failed: %s (the previous file, if any, is "
                     "untouched)",
                     path, tmp, strerror(saved));
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        st = cn_fail(CN_ERR_IO,
                     "%s: cannot save: cannot rename %s to it: %s (the previous file, if any, "
                     "is untouched)",
                     path, tmp, strerror(errno));
        unlink(tmp);
        goto done;
    }
    /* The rename is durable once the directory is synced; the file is in
     * place whatever this says, so a failure here is not reported. */
    char dir[4096];
    dir_of(path, dir, sizeof dir);
    int dfd = open(dir, O_RDONLY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    remove_stale_temps(path, dir);
done:
    free(tmp);
    return st;
}

/* A safetensors file's bytes: the header, then each tensor little-endian. */
typedef struct st_body {
    const uint8_t *head;
    size_t head_len;
    const cn_st_tensor *t;
    size_t n;
} st_body;

static int fill_body(int fd, void *user)
{
    const st_body *b = user;
    int err = cn_write_all(fd, b->head, b->head_len);
    uint8_t buf[4096];
    for (size_t i = 0; !err && i < b->n; i++) {
        const cn_st_tensor *t = &b->t[i];
        size_t count = 1;
        for (int d = 0; d < t->ndim; d++)
            count *= t->dims[d];
        if (host_is_little()) {
            err = cn_write_all(fd, t->data, count * sizeof(float));
            continue;
        }
        for (size_t j = 0; !err && j < count; j += sizeof buf / 4) {
            size_t k = count - j < sizeof buf / 4 ? count - j : sizeof buf / 4;
            for (size_t q = 0; q < k; q++) {
                uint32_t bits;
                memcpy(&bits, &t->data[j + q], 4);
                put_le32(buf + 4 * q, bits);
            }
            err = cn_write_all(fd, buf, 4 * k);
        }
    }
    return err;
}

cn_status cn_st_write(const char *path, const cn_st_tensor *t, size_t n, const char *const *meta,
                      size_t n_meta)
{
    size_t data_len;
    char *json = build_header(t, n, meta, n_meta, &data_len);
    if (!json)
        return cn_fail(CN_ERR_NOMEM, "%s: out of memory while writing the header", path);
    size_t jlen = strlen(json), hlen = (jlen + 7) / 8 * 8;
    uint8_t *head = malloc(8 + hlen);
    if (!head) {
        cJSON_free(json);
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < 8; i++)
        head[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(head + 8, json, jlen);
    memset(head + 8 + jlen, ' ', hlen - jlen);
    cJSON_free(json);
    st_body body = {head, 8 + hlen, t, n};
    cn_status st = cn_save_atomic(path, fill_body, &body);
    free(head);
    return st;
}

/* ------------------------------------------------------------------ read */

void cn_st_close(cn_st_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_entries; i++)
        free(f->entries[i].name);
    for (size_t i = 0; i < 2 * f->n_meta; i++)
        free(f->meta[i]);
    free(f->entries);
    free(f->meta);
    if (f->mapped)
        munmap(f->bytes, f->size ? f->size : 1);
    else
        free(f->bytes);
    free(f->path);
    memset(f, 0, sizeof *f);
}

static size_t dtype_size(const char *d)
{
    static const struct {
        const char *name;
        size_t size;
    } types[] = {{"F64", 8}, {"F32", 4}, {"F16", 2},  {"BF16", 2},    {"I64", 8},
                 {"I32", 4}, {"I16", 2}, {"I8", 1},   {"U8", 1},      {"U16", 2},
                 {"U32", 4}, {"U64", 8}, {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(types[i].name, d) == 0)
            return types[i].size;
    return 0;
}

/* A JSON number that is a whole number in [0, 2^53]. */
static int get_size(const cJSON *item, size_t *out)
{
    if (!cJSON_IsNumber(item))
        return 0;
    double v = item->valuedouble;
    if (!(v >= 0 && v <= 9007199254740992.0) || v != floor(v))
        return 0;
    *out = (size_t)v;
    return 1;
}

static int cmp_begin(const void *a, const void *b)
{
    const cn_st_entry *x = *(cn_st_entry *const *)a, *y = *(cn_st_entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(cn_st_entry *const *)a)->name, (*(cn_st_entry *const *)b)->name);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static cn_status parse_header(cn_st_file *f, const char *json, size_t len)
{
    const char *path = f->path;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    while (root && end && end < json + len && (*end == ' ' || *end == '\0'))
        end++;
    if (!root || !cJSON_IsObject(root) || end != json + len) {
        cJSON_Delete(root);
        return cn_fail(CN_ERR_FORMAT, "%s: the header is not a JSON object", path);
    }
    cn_status st = CN_OK;
    size_t n = (size_t)cJSON_GetArraySize(root);
    f->entries = calloc(n ? n : 1, sizeof *f->entries);
    cn_st_entry **order = calloc(n ? n : 1, sizeof *order);
    if (!f->entries || !order) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        const char *name = item->string;
        if (strcmp(name, "__metadata__") == 0) {
            if (!cJSON_IsObject(item) || f->meta) {
                st = cn_fail(CN_ERR_FORMAT, "%s: __metadata__ must be one object of strings", path);
                goto done;
            }
            size_t m = (size_t)cJSON_GetArraySize(item);
            f->meta = calloc(2 * m + 1, sizeof *f->meta);
            if (!f->meta) {
                st = cn_fail(CN_ERR_NOMEM, "out of memory");
                goto done;
            }
            const cJSON *kv;
            cJSON_ArrayForEach(kv, item)
            {
                if (!cJSON_IsString(kv)) {
                    st = cn_fail(CN_ERR_FORMAT, "%s: metadata '%s' is not a string", path,
                                 kv->string);
                    goto done;
                }
                f->meta[2 * f->n_meta] = dup_str(kv->string);
                f->meta[2 * f->n_meta + 1] = dup_str(kv->valuestring);
                f->n_meta++;
                if (!f->meta[2 * f->n_meta - 2] || !f->meta[2 * f->n_meta - 1]) {
                    st = cn_fail(CN_ERR_NOMEM, "out of memory");
                    goto done;
                }
            }
            continue;
        }
        cn_st_entry *e = &f->entries[f->n_entries];
        e->name = dup_str(name);
        if (!e->name) {
            st = cn_fail(CN_ERR_NOMEM, "out of memory");
            goto done;
        }
        f->n_entries++;
        const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
        const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
        if (!cJSON_IsObject(item) || !cJSON_IsString(dtype) || !cJSON_IsArray(shape) ||
            !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2) {
            st = cn_fail(CN_ERR_FORMAT,
                         "%s: tensor '%s' needs dtype, shape and data_offsets [begin, end]", path,
                         name);
            goto done;
        }
        size_t esize = dtype_size(dtype->valuestring);
        if (!esize || strlen(dtype->valuestring) >= sizeof e->dtype) {
            st = cn_fail(CN_ERR_FORMAT, "%s: tensor '%s' has unknown dtype '%s'", path, name,
                         dtype->valuestring);
            goto done;
        }
        strcpy(e->dtype, dtype->valuestring);
        int nd = cJSON_GetArraySize(shape);
        if (nd > 8) {
            st = cn_fail(CN_ERR_FORMAT, "%s: tensor '%s' has %d dimensions (at most 8)", path, name,
                         nd);
            goto done;
        }
        e->ndim = nd;
        size_t bytes = esize;
        for (int d = 0; d < nd; d++) {
            if (!get_size(cJSON_GetArrayItem(shape, d), &e->dims[d])) {
                st = cn_fail(CN_ERR_FORMAT, "%s: tensor '%s' has a bad shape", path, name);
                goto done;
            }
            bytes = cn_mul(bytes, e->dims[d]);
        }
        if (!get_size(cJSON_GetArrayItem(offs, 0), &e->begin) ||
            !get_size(cJSON_GetArrayItem(offs, 1), &e->end) || e->begin > e->end ||
            e->end > f->data_len) {
            st = cn_fail(CN_ERR_FORMAT,
                         "%s: tensor '%s' has data_offsets outside the %zu bytes "
                         "of data the file holds",
                         path, name, f->data_len);
            goto done;
        }
        if (e->end - e->begin != bytes) {
            char dims[8 * 21 + 1], need[32] = "more than 2^64";
            cn_join_sizes(e->dims, nd, ",", dims, sizeof dims);
            if (bytes != SIZE_MAX)
                snprintf(need, sizeof need, "%zu", bytes);
            st = cn_fail(CN_ERR_FORMAT,
                         "%s: tensor '%s': %s of shape [%s] needs %s bytes but its data_offsets "
                         "span %zu",
                         path, name, e->dtype, dims, need, e->end - e->begin);
            goto done;
        }
        order[f->n_entries - 1] = e;
    }
    /* Each name once: sorted, so that a header of a million tensors takes
     * n log n comparisons, not n^2. */
    qsort(order, f->n_entries, sizeof *order, cmp_name);
    for (size_t i = 1; i < f->n_entries; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            st = cn_fail(CN_ERR_FORMAT, "%s: tensor '%s' appears twice", path, order[i]->name);
            goto done;
        }
    /* The tensors must cover the data exactly, without holes or overlaps. */
    qsort(order, f->n_entries, sizeof *order, cmp_begin);
    size_t pos = 0;
    for (size_t i = 0; i < f->n_entries; i++) {
        if (order[i]->begin != pos) {
            st = cn_fail(CN_ERR_FORMAT, "%s: tensor '%s' %s at byte %zu", path, order[i]->name,
                         order[i]->begin < pos ? "overlaps the one before it" : "leaves a hole",
                         order[i]->begin);
            goto done;
        }
        pos = order[i]->end;
    }
    if (pos != f->data_len)
        st = cn_fail(CN_ERR_FORMAT, "%s: %zu bytes after the last tensor belong to none", path,
                     f->data_len - pos);
done:
    free(order);
    cJSON_Delete(root);
    return st;
}

cn_status cn_st_open(const char *path, cn_st_file *f)
{
    memset(f, 0, sizeof *f);
    f->path = dup_str(path);
    if (!f->path)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    cn_status st = CN_OK;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        st = cn_fail(CN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        st = cn_fail(CN_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    f->size = (size_t)sb.st_size;
    f->bytes = malloc(f->size ? f->size : 1);
    if (!f->bytes) {
        fclose(fp);
        st = cn_fail(CN_ERR_NOMEM, "%s: out of memory for %zu bytes", path, f->size);
        goto fail;
    }
    size_t got = fread(f->bytes, 1, f->size, fp);
    fclose(fp);
    if (got != f->size) {
        st = cn_fail(CN_ERR_IO, "%s: read error", path);
        goto fail;
    }
    if (f->size < 8) {
        st = cn_fail(CN_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file", path,
                     f->size);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)f->bytes[i] << (8 * i);
    if (hlen > CN_ST_MAX_HEADER || hlen > f->size - 8) {
        st = cn_fail(CN_ERR_FORMAT,
                     "%s: the header claims %llu bytes but the file has %zu after "
                     "the length (not a safetensors file, or truncated)",
                     path, (unsigned long long)hlen, f->size - 8);
        goto fail;
    }
    if (hlen < 2 || f->bytes[8] != '{') {
        st = cn_fail(CN_ERR_FORMAT, "%s: not a safetensors file (the header is not JSON)", path);
        goto fail;
    }
    f->data = f->bytes + 8 + hlen;
    f->data_len = f->size - 8 - (size_t)hlen;
    if ((st = parse_header(f, (const char *)f->bytes + 8, (size_t)hlen)))
        goto fail;
    return CN_OK;
fail:
    cn_st_close(f);
    return st;
}

const char *cn_st_meta(const cn_st_file *f, const char *key)
{
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[2 * i], key) == 0)
            return f->meta[2 * i + 1];
    return NULL;
}

const cn_st_entry *cn_st_find(const cn_st_file *f, const char *name)
{
    for (size_t i = 0; i < f->n_entries; i++)
        if (strcmp(f->entries[i].name, name) == 0)
            return &f->entries[i];
    return NULL;
}

cn_status cn_st_read_f32(const cn_st_file *f, const cn_st_entry *e, int ndim, const size_t *dims,
                         float *dst)
{
    if (strcmp(e->dtype, "F32") != 0)
        return cn_fail(CN_ERR_FORMAT, "%s: tensor '%s' is %s; convnet reads F32", f->path, e->name,
                       e->dtype);
    int same = e->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = e->dims[d] == dims[d];
    if (!same) {
        char want[96], got[96];
        size_t a = 0, b = 0;
        for (int d = 0; d < ndim; d++)
            a += (size_t)snprintf(want + a, sizeof want - a, "%s%zu", d ? ", " : "", dims[d]);
        got[0] = want[a] = '\0';
        for (int d = 0; d < e->ndim && b < sizeof got; d++)
            b += (size_t)snprintf(got + b, sizeof got - b, "%s%zu", d ? ", " : "", e->dims[d]);
        return cn_fail(CN_ERR_FORMAT, "%s: tensor '%s' has shape [%s]; the model needs [%s]",
                       f->path, e->name, got, want);
    }
    size_t count = (e->end - e->begin) / 4;
    const uint8_t *src = f->data + e->begin;
    for (size_t i = 0; i < count; i++) {
        uint32_t bits = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 |
                        (uint32_t)src[4 * i + 2] << 16 | (uint32_t)src[4 * i + 3] << 24;
        memcpy(&dst[i], &bits, 4);
    }
    return CN_OK;
}

/* pread(2) until n bytes are read: 0, or -1 (errno set; EIO at the end of
 * the file). */
static int read_at(int fd, void *buf, size_t n, off_t off)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

cn_status cn_st_open_mapped(const char *path, int map, cn_st_file *f)
{
    memset(f, 0, sizeof *f);
    f->path = dup_str(path);
    if (!f->path)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    cn_status st = CN_OK;
    char *json = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0) {
        st = cn_fail(CN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = cn_fail(CN_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    f->size = (size_t)sb.st_size;
    uint8_t len8[8];
    if (f->size < 8 || read_at(fd, len8, 8, 0) != 0) {
        st = cn_fail(CN_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file", path,
                     f->size);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)len8[i] << (8 * i);
    if (hlen > CN_ST_MAX_HEADER || hlen > f->size - 8) {
        st = cn_fail(CN_ERR_FORMAT,
                     "%s: the header claims %llu bytes but the file has %zu after "
                     "the length (not a safetensors file, or truncated)",
                     path, (unsigned long long)hlen, f->size - 8);
        goto fail;
    }
    json = malloc((size_t)hlen + 1);
    if (!json) {
        st = cn_fail(CN_ERR_NOMEM, "%s: out of memory for the header", path);
        goto fail;
    }
    if (read_at(fd, json, (size_t)hlen, 8) != 0) {
        st = cn_fail(CN_ERR_IO, "%s: read error: %s", path, strerror(errno));
        goto fail;
    }
    if (hlen < 2 || json[0] != '{') {
        st = cn_fail(CN_ERR_FORMAT, "%s: not a safetensors file (the header is not JSON)", path);
        goto fail;
    }
    f->data_len = f->size - 8 - (size_t)hlen;
    if ((st = parse_header(f, json, (size_t)hlen)))
        goto fail;
    if (map) {
        void *m = mmap(NULL, f->size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            st = cn_fail(CN_ERR_IO, "%s: cannot map %zu bytes: %s", path, f->size, strerror(errno));
            goto fail;
        }
        /* Reads fault in the pages they touch and no more: training reads
         * samples in a shuffled order, where the system's read-ahead
         * (128 kB and more around each fault) would read mostly samples
         * not asked for, and thrash when the file exceeds memory. */
        posix_madvise(m, f->size, POSIX_MADV_RANDOM);
        f->bytes = m;
        f->mapped = 1;
        f->data = f->bytes + 8 + hlen;
    }
    free(json);
    close(fd);
    return CN_OK;
fail:
    free(json);
    if (fd >= 0)
        close(fd);
    cn_st_close(f);
    return st;
}
