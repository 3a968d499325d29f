/* folder.c - data sets of image files: a folder per class (with train/,
 * val/, test/ folders above them or not) or a CSV list, decoded once into a
 * data cache (convnet.h) that later runs map.
 *
 * The order of the samples: with split folders, train/'s, then val/'s, then
 * test/'s, each sorted by the file's path within its class folder and then
 * by class (so files named by their position in a set read back in that
 * order); without them, the folders' or the list's files in a shuffled order
 * (seed FOLDER_SEED): test is the first part, val the next, train the rest,
 * each a contiguous slice of the mapped file. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "vis.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <stb/stb_image_resize.h>

#define FOLDER_SEED CN_FOLDER_SEED
/* Unreadable files named in a message (the rest are counted). */
#define LIST_BAD     20
#define PATH_MAX_LEN 4096

static const char *const split_names[3] = {"train", "val", "test"};

typedef struct entry {
    char *path; /* as opened: root/[split/]class/rel, or the CSV's */
    size_t key; /* offset in path of what it is sorted by (rel) */
    int cls, split;
    long long size, mtime_ns;
} entry;

typedef struct listing {
    char *root; /* the folder, or the CSV's folder */
    entry *e;
    size_t n, cap;
    char **classes;
    size_t k;
    int split_folders;
} listing;

static void listing_free(listing *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->e[i].path);
    for (size_t i = 0; i < l->k; i++)
        free(l->classes[i]);
    free(l->e);
    free(l->classes);
    free(l->root);
    memset(l, 0, sizeof *l);
}

static int is_image_name(const char *name)
{
    static const char *const ext[] = {"png", "jpg", "jpeg", "bmp", "gif", "tga",
                                      "pgm", "ppm", "pnm",  "pbm", NULL};
    const char *dot = strrchr(name, '.');
    if (!dot)
        return 0;
    for (int i = 0; ext[i]; i++)
        if (strcasecmp(dot + 1, ext[i]) == 0)
            return 1;
    return 0;
}

static cn_status add_entry(listing *l, const char *path, size_t key, int cls, int split,
                           const struct stat *sb)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1024;
        entry *e = realloc(l->e, cap * sizeof *e);
        if (!e)
            return cn_fail(CN_ERR_NOMEM, "out of memory for a list of %zu files", cap);
        l->e = e;
        l->cap = cap;
    }
    char *p = strdup(path);
    if (!p)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    l->e[l->n++] = (entry){p,
                           key,
                           cls,
                           split,
                           (long long)sb->st_size,
                           (long long)sb->st_mtim.tv_sec * 1000000000LL + sb->st_mtim.tv_nsec};
    return CN_OK;
}

/* The image files under path (a class folder, recursively), key being the
 * length of the class folder's path + 1. */
static cn_status walk(listing *l, char *path, size_t len, size_t key, int cls, int split,
                      size_t *found)
{
    DIR *d = opendir(path);
    if (!d)
        return cn_fail(CN_ERR_IO, "%s: cannot read the folder: %s", path, strerror(errno));
    cn_status st = CN_OK;
    struct dirent *de;
    while (!st && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') /* hidden files, ., .. and .convnet-cache */
            continue;
        size_t nl = strlen(de->d_name);
        if (len + 1 + nl >= PATH_MAX_LEN) {
            st = cn_fail(CN_ERR_IO, "%s/%s: path too long", path, de->d_name);
            break;
        }
        path[len] = '/';
        memcpy(path + len + 1, de->d_name, nl + 1);
        struct stat sb;
        if (stat(path, &sb) != 0) {
            st = cn_fail(CN_ERR_IO, "%s: %s", path, strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            st = walk(l, path, len + 1 + nl, key, cls, split, found);
        } else if (S_ISREG(sb.st_mode) && is_image_name(de->d_name)) {
            st = add_entry(l, path, key, cls, split, &sb);
            ++*found;
        }
        path[len] = '\0';
    }
    closedir(d);
    return st;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names of the folders in dir (not hidden). */
static cn_status sub_folders(const char *dir, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return cn_fail(CN_ERR_IO, "%s: cannot read the folder: %s", dir, strerror(errno));
    char **names = NULL;
    size_t cap = 0;
    cn_status st = CN_OK;
    struct dirent *de;
    char path[PATH_MAX_LEN];
    while (!st && (de = readdir(d)) != NULL) {
        struct stat sb;
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **more = realloc(names, cap * sizeof *names);
            if (!more) {
                st = cn_fail(CN_ERR_NOMEM, "out of memory");
                break;
            }
            names = more;
        }
        if (!(names[*n] = strdup(de->d_name)))
            st = cn_fail(CN_ERR_NOMEM, "out of memory");
        else
            ++*n;
    }
    closedir(d);
    if (st) {
        for (size_t i = 0; i < *n; i++)
            free(names[i]);
        free(names);
        *n = 0;
        return st;
    }
    if (*n)
        qsort(names, *n, sizeof *names, cmp_str);
    *out = names;
    return CN_OK;
}

static void free_strs(char **s, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        free(s[i]);
    free(s);
}

static int find_str(char *const *s, size_t n, const char *x)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s[i], x) == 0)
            return (int)i;
    return -1;
}

/* A classes.txt in root (one name per line, blank lines skipped) names the
 * class folders, in their sorted order: what 'convnet export --folders'
 * writes beside numbered folders when the names would not sort in the
 * classes' order.  Without one the folders' names are the classes'. */
static cn_status folder_names(const char *root, listing *l)
{
    char path[PATH_MAX_LEN], line[300];
    snprintf(path, sizeof path, "%s/classes.txt", root);
    FILE *f = fopen(path, "r");
    if (!f)
        return CN_OK;
    char **names = calloc(l->k, sizeof *names);
    size_t n = 0, lineno = 0;
    cn_status st = names ? CN_OK : cn_fail(CN_ERR_NOMEM, "out of memory");
    while (!st && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            st = cn_fail(CN_ERR_FORMAT, "%s:%zu: a class name longer than 255 bytes", path, lineno);
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = '\0';
        if (len == 0)
            continue;
        if (n == l->k) {
            st = cn_fail(CN_ERR_FORMAT, "%s names more classes than the %zu class folders", path,
                         l->k);
            break;
        }
        if (!(names[n++] = strdup(line)))
            st = cn_fail(CN_ERR_NOMEM, "out of memory");
    }
    fclose(f);
    if (!st && n < l->k)
        st = cn_fail(CN_ERR_FORMAT, "%s names %zu classes, but there are %zu class folders", path,
                     n, l->k);
    for (size_t i = 0; !st && i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                st = cn_fail(CN_ERR_FORMAT, "%s: the name \"%s\" is there twice", path, names[i]);
    if (st) {
        free_strs(names, n);
        return st;
    }
    free_strs(l->classes, l->k);
    l->classes = names;
    return CN_OK;
}

/* Reads the folder layout of root into l. */
static cn_status scan_folder(const char *root, listing *l)
{
    char **top;
    size_t n_top;
    cn_status st = sub_folders(root, &top, &n_top);
    if (st)
        return st;
    l->split_folders = n_top > 0 && find_str(top, n_top, "train") >= 0;
    for (size_t i = 0; l->split_folders && i < n_top; i++)
        if (find_str((char *const *)split_names, 3, top[i]) < 0)
            l->split_folders = 0; /* a class called "train" among others */
    char path[PATH_MAX_LEN];
    if (l->split_folders) {
        free_strs(top, n_top);
        snprintf(path, sizeof path, "%s/train", root);
        if ((st = sub_folders(path, &top, &n_top)))
            return st;
    }
    l->classes = top;
    l->k = n_top;
    if (l->k == 0)
        return cn_fail(CN_ERR_FORMAT,
                       "%s%s has no class folders: put each class's images in a folder of its "
                       "own (%s/CLASS/IMAGE.png)",
                       root, l->split_folders ? "/train" : "", root);
    for (size_t i = 0; i < l->k; i++)
        if (strlen(l->classes[i]) > 255)
            return cn_fail(CN_ERR_FORMAT, "%s: a class folder's name is longer than 255 bytes",
                           root);
    for (int s = 0; s < (l->split_folders ? 3 : 1); s++) {
        const char *sp = l->split_folders ? split_names[s] : NULL;
        if (sp && s > 0) { /* val/ and test/ hold some of train/'s classes */
            snprintf(path, sizeof path, "%s/%s", root, sp);
            struct stat sb;
            if (stat(path, &sb) != 0)
                continue;
            char **sub;
            size_t n_sub;
            if ((st = sub_folders(path, &sub, &n_sub)))
                return st;
            for (size_t i = 0; !st && i < n_sub; i++)
                if (find_str(l->classes, l->k, sub[i]) < 0)
                    st = cn_fail(CN_ERR_FORMAT,
                                 "%s/%s: a class that %s/train does not have (its classes "
                                 "decide)",
                                 path, sub[i], root);
            free_strs(sub, n_sub);
            if (st)
                return st;
        }
        for (size_t c = 0; c < l->k; c++) {
            int len = sp ? snprintf(path, sizeof path, "%s/%s/%s", root, sp, l->classes[c])
                         : snprintf(path, sizeof path, "%s/%s", root, l->classes[c]);
            if (len < 0 || (size_t)len >= sizeof path)
                return cn_fail(CN_ERR_IO, "%s: path too long", root);
            struct stat sb;
            if (s > 0 && stat(path, &sb) != 0)
                continue;
            size_t found = 0;
            if ((st = walk(l, path, (size_t)len, (size_t)len + 1, (int)c, s, &found)))
                return st;
            if (found == 0 && s == 0)
                return cn_fail(CN_ERR_FORMAT,
                               "class folder %s holds no images (PNG, JPEG, BMP, GIF, TGA, "
                               "PGM/PPM)",
                               path);
        }
    }
    return folder_names(root, l);
}

/* ------------------------------------------------------------------ CSV */

static void csv_free(cn_csv_list *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->file[i]);
        free(c->label[i]);
    }
    free(c->file);
    free(c->label);
    free(c->line);
    memset(c, 0, sizeof *c);
}

void cn_csv_list_free(cn_csv_list *c)
{
    if (c)
        csv_free(c);
}

/* One field starting at *p (up to end): its text in a malloc'd string, *p
 * past it (at the comma, the line's end or end).  NULL with *why set. */
static char *csv_field(const char **p, const char *end, const char **why)
{
    const char *s = *p;
    size_t cap = 64, n = 0;
    char *out = malloc(cap);
    if (!out) {
        *why = "out of memory";
        return NULL;
    }
    int quoted = s < end && *s == '"';
    if (quoted)
        s++;
    for (;;) {
        if (s >= end) {
            if (quoted) {
                *why = "a quoted field is not closed";
                free(out);
                return NULL;
            }
            break;
        }
        char ch = *s;
        if (quoted && ch == '"') {
            if (s + 1 < end && s[1] == '"') {
                s += 2;
                ch = '"';
            } else {
                s++;
                if (s < end && *s != ',' && *s != '\n' && *s != '\r') {
                    *why = "text after a closing quote";
                    free(out);
                    return NULL;
                }
                break;
            }
        } else if (!quoted && (ch == ',' || ch == '\n' || ch == '\r')) {
            break;
        } else if (!quoted && ch == '"') {
            *why = "a quote inside an unquoted field";
            free(out);
            return NULL;
        } else {
            s++;
        }
        if (ch == '\0') {
            *why = "a NUL byte";
            free(out);
            return NULL;
        }
        if (n + 2 > cap) {
            char *more = realloc(out, cap *= 2);
            if (!more) {
                *why = "out of memory";
                free(out);
                return NULL;
            }
            out = more;
        }
        out[n++] = ch;
    }
    out[n] = '\0';
    *p = s;
    return out;
}

cn_status cn_csv_list_parse(const char *text, size_t len, const char *source, cn_csv_list *out)
{
    memset(out, 0, sizeof *out);
    const char *p = text, *end = text + len;
    size_t line = 1, cap = 0;
    cn_status st = CN_OK;
    if (len >= 3 && (uint8_t)p[0] == 0xef && (uint8_t)p[1] == 0xbb && (uint8_t)p[2] == 0xbf)
        p += 3; /* a byte-order mark, as spreadsheets write */
    for (int row = 0; !st && p < end; row++) {
        size_t at_line = line;
        char *f[2] = {NULL, NULL};
        const char *why = NULL;
        int nf = 0;
        if (*p == '\n' || *p == '\r') { /* a blank line */
            if (*p == '\r' && p + 1 < end && p[1] == '\n')
                p++;
            p++;
            line++;
            row--;
            continue;
        }
        for (;;) {
            char *v = csv_field(&p, end, &why);
            if (!v)
                break;
            for (const char *q = v; *q; q++)
                line += *q == '\n';
            if (nf < 2)
                f[nf] = v;
            else
                free(v);
            nf++;
            if (p < end && *p == ',') {
                p++;
                continue;
            }
            break;
        }
        if (!why && p < end) { /* the line's end */
            if (*p == '\r' && p + 1 < end && p[1] == '\n')
                p++;
            p++;
            line++;
        }
        if (!why && nf != 2)
            why = nf < 2 ? "one field where two (file,label) are needed"
                         : "more than two fields (file,label)";
        if (!why && row == 0 && (strcasecmp(f[0], "file") != 0 || strcasecmp(f[1], "label") != 0))
            why = "the first line must be the header file,label";
        if (!why && row > 0 && (!f[0][0] || !f[1][0]))
            why = !f[0][0] ? "an empty file name" : "an empty label";
        if (why) {
            st = cn_fail(CN_ERR_FORMAT, "%s:%zu: %s", source, at_line, why);
            free(f[0]);
            free(f[1]);
            break;
        }
        if (row == 0) {
            free(f[0]);
            free(f[1]);
            continue;
        }
        if (out->n == cap) {
            cap = cap ? 2 * cap : 256;
            char **a = realloc(out->file, cap * sizeof *a);
            if (a)
                out->file = a;
            char **b = a ? realloc(out->label, cap * sizeof *b) : NULL;
            if (b)
                out->label = b;
            size_t *c = b ? realloc(out->line, cap * sizeof *c) : NULL;
            if (c)
                out->line = c;
            if (!c) {
                free(f[0]);
                free(f[1]);
                st = cn_fail(CN_ERR_NOMEM, "out of memory");
                break;
            }
        }
        out->file[out->n] = f[0];
        out->label[out->n] = f[1];
        out->line[out->n] = at_line;
        out->n++;
    }
    if (!st && line == 1 && out->n == 0 && p == end && len == 0)
        st = cn_fail(CN_ERR_FORMAT, "%s: empty (the first line must be the header file,label)",
                     source);
    if (st)
        csv_free(out);
    return st;
}

/* Reads the CSV list at path into l: classes are its labels, sorted. */
static cn_status scan_csv(const char *path, listing *l)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cn_fail(CN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *text = malloc(cap);
    cn_status st = text ? CN_OK : cn_fail(CN_ERR_NOMEM, "out of memory");
    while (!st) {
        if (n == cap) {
            char *more = cap < ((size_t)1 << 31) ? realloc(text, cap *= 2) : NULL;
            if (!more) {
                st = cn_fail(CN_ERR_NOMEM, "%s: too large a list", path);
                break;
            }
            text = more;
        }
        size_t got = fread(text + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                st = cn_fail(CN_ERR_IO, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    cn_csv_list c = {0};
    if (!st)
        st = cn_csv_list_parse(text, n, path, &c);
    free(text);
    if (st)
        return st;
    if (c.n == 0) {
        csv_free(&c);
        return cn_fail(CN_ERR_FORMAT, "%s: no images listed (a line file,label per image)", path);
    }
    /* The classes: the distinct labels, sorted. */
    char **sorted = malloc(c.n * sizeof *sorted);
    if (!sorted) {
        csv_free(&c);
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    }
    memcpy(sorted, c.label, c.n * sizeof *sorted);
    qsort(sorted, c.n, sizeof *sorted, cmp_str);
    l->classes = malloc(c.n * sizeof *l->classes);
    for (size_t i = 0; l->classes && i < c.n; i++)
        if (i == 0 || strcmp(sorted[i], sorted[i - 1]) != 0) {
            if (strlen(sorted[i]) > 255 || !(l->classes[l->k] = strdup(sorted[i]))) {
                st = strlen(sorted[i]) > 255
                         ? cn_fail(CN_ERR_FORMAT, "%s: a label longer than 255 bytes", path)
                         : cn_fail(CN_ERR_NOMEM, "out of memory");
                break;
            }
            l->k++;
        }
    free(sorted);
    if (!l->classes)
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
    char full[PATH_MAX_LEN];
    for (size_t i = 0; !st && i < c.n; i++) {
        int len = c.file[i][0] == '/' ? snprintf(full, sizeof full, "%s", c.file[i])
                                      : snprintf(full, sizeof full, "%s/%s", l->root, c.file[i]);
        struct stat sb;
        if (len < 0 || (size_t)len >= sizeof full)
            st = cn_fail(CN_ERR_IO, "%s:%zu: path too long", path, c.line[i]);
        else if (stat(full, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            /* listed but missing: an unreadable file, named when decoding */
            memset(&sb, 0, sizeof sb);
            sb.st_size = -1;
        }
        if (!st) {
            size_t cls = 0;
            while (strcmp(l->classes[cls], c.label[i]) != 0)
                cls++;
            st = add_entry(l, full, (size_t)(len - (int)strlen(c.file[i])), (int)cls, 0, &sb);
        }
    }
    csv_free(&c);
    return st;
}

/* ------------------------------------------------------------- ordering */

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->split != y->split)
        return x->split - y->split;
    int c = strcmp(x->path + x->key, y->path + y->key);
    return c ? c : x->cls - y->cls;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void shuffle(entry *e, size_t n, uint64_t seed)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(splitmix(&seed) % i);
        entry t = e[i - 1];
        e[i - 1] = e[j];
        e[j] = t;
    }
}

static void hash_bytes(uint64_t *h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 0x100000001b3ULL;
}

static void hash_str(uint64_t *h, const char *s) { hash_bytes(h, s, strlen(s) + 1); }

/* The key of a listing for shape and fit: any file added, removed,
 * renamed, resized or touched, or another input, changes it. */
static uint64_t listing_key(const listing *l, cn_shape s, cn_fit fit)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    const uint64_t head[] = {2,          s.c, s.h, s.w, (uint64_t)fit, (uint64_t)l->split_folders,
                             FOLDER_SEED};
    hash_bytes(&h, head, sizeof head);
    for (size_t i = 0; i < l->k; i++)
        hash_str(&h, l->classes[i]);
    for (size_t i = 0; i < l->n; i++) {
        const entry *e = &l->e[i];
        hash_str(&h, e->path + e->key);
        const long long v[] = {e->cls, e->split, e->size, e->mtime_ns};
        hash_bytes(&h, v, sizeof v);
    }
    return h;
}

/* ------------------------------------------------------------- decoding */

static const char *fit_name(cn_fit fit)
{
    return fit == CN_FIT_DIGIT ? "digit" : fit == CN_FIT_STRETCH ? "stretch" : "crop";
}

cn_status cn_image_to_planes(const cn_image *img, cn_shape s, cn_fit fit, uint8_t *out)
{
    if (s.c != 1 && s.c != 3)
        return cn_fail(CN_ERR_ARG, "an input of %zu channels: pictures become 1 or 3", s.c);
    if (fit == CN_FIT_DIGIT)
        return cn_image_to_input(img, s, fit, out);
    int w = img->w, h = img->h, c = (int)s.c;
    size_t np = (size_t)w * (size_t)h;
    uint8_t *g = malloc(np * (size_t)c);
    uint8_t *o = malloc(s.h * s.w * s.c);
    cn_status st = CN_OK;
    if (!g || !o) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory for a %dx%d image", w, h);
        goto done;
    }
    for (size_t i = 0; i < np; i++) {
        const uint8_t *p = img->px + i * (size_t)img->c;
        if (c == 1)
            g[i] =
                img->c == 1 ? p[0] : (uint8_t)((299 * p[0] + 587 * p[1] + 114 * p[2] + 500) / 1000);
        else
            for (int k = 0; k < 3; k++)
                g[3 * i + (size_t)k] = p[img->c == 1 ? 0 : k];
    }
    int cw = w, ch = h, cx = 0, cy = 0;
    if (fit == CN_FIT_CROP) {
        if ((double)w * (double)s.h > (double)h * (double)s.w)
            cw = (int)((double)h * (double)s.w / (double)s.h + 0.5);
        else
            ch = (int)((double)w * (double)s.h / (double)s.w + 0.5);
        cw = cw < 1 ? 1 : cw;
        ch = ch < 1 ? 1 : ch;
        cx = (w - cw) / 2;
        cy = (h - ch) / 2;
    }
    if (cw == (int)s.w && ch == (int)s.h) {
        for (int y = 0; y < ch; y++)
            memcpy(o + (size_t)y * (size_t)cw * (size_t)c,
                   g + ((size_t)(cy + y) * (size_t)w + (size_t)cx) * (size_t)c,
                   (size_t)cw * (size_t)c);
    } else if (!stbir_resize_uint8_generic(
                   g + ((size_t)cy * (size_t)w + (size_t)cx) * (size_t)c, cw, ch, w * c, o,
                   (int)s.w, (int)s.h, 0, c, -1, 0, STBIR_EDGE_CLAMP,
                   cw >= (int)s.w && ch >= (int)s.h ? STBIR_FILTER_BOX : STBIR_FILTER_DEFAULT,
                   STBIR_COLORSPACE_LINEAR, NULL)) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory resizing a %dx%d image", w, h);
        goto done;
    }
    for (size_t k = 0; k < s.c; k++) /* interleaved to planes */
        for (size_t i = 0; i < s.h * s.w; i++)
            out[k * s.h * s.w + i] = o[i * s.c + k];
done:
    free(g);
    free(o);
    return st;
}

typedef struct source {
    const listing *l;
    cn_shape shape;
    cn_fit fit;
    size_t pos;
    size_t kept[3];
    size_t bad;
    char *bad_text; /* the first LIST_BAD: "path: reason\n" lines */
    size_t bad_len;
    uint8_t *slot; /* decoding room, a chunk of samples */
    char (*why)[256];
    int *ok;
    size_t slot_n;
    /* The cache's metadata that the samples decide (the writer writes the
     * header last, and they never grow longer than they started). */
    char *split, *bad_count;
} source;

/* A line of the list of unreadable files: at most LINE_BAD bytes that JSON
 * writes as they are (no quotes, backslashes or control characters). */
#define LINE_BAD 200
static void note_bad(source *s, const char *path, const char *why)
{
    s->bad++;
    if (s->bad > LIST_BAD)
        return;
    char line[LINE_BAD + 1];
    int n = snprintf(line, sizeof line, "%s: %s", path, why);
    if (n >= LINE_BAD)
        n = LINE_BAD - 1;
    line[n] = '\n';
    line[n + 1] = '\0';
    for (int i = 0; i < n; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == '"' || line[i] == '\\')
            line[i] = '?';
    memcpy(s->bad_text + s->bad_len, line, (size_t)n + 2);
    s->bad_len += (size_t)n + 1;
}

static cn_status next_samples(void *user, uint8_t *pixels, int32_t *labels, size_t max, size_t *got)
{
    source *s = user;
    size_t sz = s->shape.c * s->shape.h * s->shape.w;
    *got = 0;
    if (max > s->slot_n) {
        free(s->slot);
        free(s->why);
        free(s->ok);
        s->slot = malloc(max * sz);
        s->why = malloc(max * sizeof *s->why);
        s->ok = malloc(max * sizeof *s->ok);
        s->slot_n = s->slot && s->why && s->ok ? max : 0;
        if (!s->slot_n)
            return cn_fail(CN_ERR_NOMEM, "out of memory for %zu decoded images", max);
    }
    while (*got == 0 && s->pos < s->l->n) {
        size_t n = s->l->n - s->pos < max ? s->l->n - s->pos : max;
        const entry *e = s->l->e + s->pos;
#pragma omp parallel for schedule(dynamic, 4)
        for (long i = 0; i < (long)n; i++) {
            cn_image img = {0};
            cn_status st = cn_image_load(e[i].path, &img);
            if (!st)
                st = cn_image_to_planes(&img, s->shape, s->fit, s->slot + (size_t)i * sz);
            cn_image_free(&img);
            s->ok[i] = st == CN_OK;
            if (st) { /* the message without the path, which the list gives */
                const char *m = cn_last_error();
                size_t pl = strlen(e[i].path);
                if (strncmp(m, e[i].path, pl) == 0 && m[pl] == ':' && m[pl + 1] == ' ')
                    m += pl + 2;
                snprintf(s->why[i], sizeof s->why[i], "%s", m);
            }
        }
        for (size_t i = 0; i < n; i++) {
            if (!s->ok[i]) {
                note_bad(s, e[i].path, s->why[i]);
                continue;
            }
            memcpy(pixels + *got * sz, s->slot + i * sz, sz);
            labels[*got] = e[i].cls;
            s->kept[e[i].split]++;
            ++*got;
        }
        s->pos += n;
    }
    snprintf(s->split, 96, "%zu %zu %zu", s->kept[0], s->kept[1], s->kept[2]);
    snprintf(s->bad_count, 32, "%zu", s->bad);
    if (s->bad_len == 0)
        s->bad_text[0] = '\0';
    return CN_OK;
}

/* ---------------------------------------------------------------- cache */

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcasecmp(s + n - t, tail) == 0;
}

/* Where the cache of path goes: its folder's .convnet-cache (made when
 * missing), or cache_dir. */
static cn_status cache_path(const char *path, int csv, const listing *l, cn_shape s, cn_fit fit,
                            const char *cache_dir, char *out, size_t size)
{
    char dir[PATH_MAX_LEN];
    const char *base = strrchr(path, '/');
    base = base && base[1] ? base + 1 : path;
    char name[300];
    if (csv)
        snprintf(name, sizeof name, "%.*s-", (int)(strlen(base) - 4 < 200 ? strlen(base) - 4 : 200),
                 base);
    else
        snprintf(name, sizeof name, "data-");
    if (cache_dir) {
        /* Caches of several data sets side by side: named by their folder
         * and a hash of its absolute path. */
        char abs[PATH_MAX_LEN];
        uint64_t h = 0xcbf29ce484222325ULL;
        if (realpath(csv ? path : l->root, abs))
            hash_str(&h, abs);
        const char *b = strrchr(l->root, '/');
        b = b && b[1] ? b + 1 : l->root;
        snprintf(name + strlen(name), sizeof name - strlen(name), "%.60s-%08llx-", b,
                 (unsigned long long)(h & 0xffffffffULL));
        snprintf(dir, sizeof dir, "%s", cache_dir);
    } else {
        snprintf(dir, sizeof dir, "%s/.convnet-cache", l->root);
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return cn_fail(CN_ERR_IO, "cannot keep the decoded images in %s: %s%s", dir,
                       strerror(errno),
                       cache_dir ? "" : "; give --cache DIR to keep them elsewhere");
    if (access(dir, W_OK | X_OK) != 0)
        return cn_fail(CN_ERR_IO, "cannot keep the decoded images in %s: %s%s", dir,
                       strerror(errno),
                       cache_dir ? "" : "; give --cache DIR to keep them elsewhere");
    int n = snprintf(out, size, "%s/%s%zux%zux%zu-%s.safetensors", dir, name, s.c, s.h, s.w,
                     fit_name(fit));
    if (n < 0 || (size_t)n >= size)
        return cn_fail(CN_ERR_IO, "%s: path too long", dir);
    return CN_OK;
}

static long long meta_count(const char *path, const char *key)
{
    char *v = NULL;
    long long n = 0;
    if (cn_data_cache_meta(path, key, &v) == CN_OK && v)
        n = atoll(v);
    free(v);
    return n;
}

/* The cache's record of its split folders and unreadable files, into info. */
static void read_info(const char *path, cn_folder_info *info)
{
    char *v = NULL;
    if (cn_data_cache_meta(path, "convnet.split", &v) == CN_OK && v) {
        unsigned long long a = 0, b = 0, c = 0;
        sscanf(v, "%llu %llu %llu", &a, &b, &c);
        info->count[0] = a;
        info->count[1] = b;
        info->count[2] = c;
    }
    free(v);
    v = NULL;
    if (cn_data_cache_meta(path, "convnet.order", &v) == CN_OK && v)
        info->split_folders = strcmp(v, "sorted") == 0;
    free(v);
    v = NULL;
    info->unreadable = (size_t)meta_count(path, "convnet.unreadable_count");
    if (cn_data_cache_meta(path, "convnet.unreadable", &v) == CN_OK && v)
        snprintf(info->unreadable_list, sizeof info->unreadable_list, "%s", v);
    free(v);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

cn_status cn_data_load_folder(const char *path, cn_shape shape, const cn_folder_opts *opts,
                              cn_data *out, cn_folder_info *info)
{
    memset(out, 0, sizeof *out);
    memset(info, 0, sizeof *info);
    cn_folder_opts o = opts ? *opts : (cn_folder_opts){0};
    if (shape.c != 1 && shape.c != 3)
        return cn_fail(CN_ERR_ARG, "pictures make inputs of 1 or 3 channels, not %zu", shape.c);
    if (o.fit == CN_FIT_AUTO)
        o.fit = CN_FIT_CROP;
    if (o.fit == CN_FIT_DIGIT && shape.c != 1)
        return cn_fail(CN_ERR_ARG, "the digit fit is for grey networks; this one takes colour");
    struct stat sb;
    if (stat(path, &sb) != 0)
        return cn_fail(CN_ERR_IO, "%s: %s", path, strerror(errno));
    int csv = S_ISREG(sb.st_mode);
    if (csv && ends_with(path, ".safetensors")) { /* a data cache itself */
        snprintf(info->cache, sizeof info->cache, "%s", path);
        cn_status st = cn_data_cache_open(path, out);
        if (!st &&
            (out->shape.c != shape.c || out->shape.h != shape.h || out->shape.w != shape.w)) {
            st = cn_fail(CN_ERR_SHAPE,
                         "%s holds images of %zux%zux%zu; the network takes %zux%zux%zu", path,
                         out->shape.c, out->shape.h, out->shape.w, shape.c, shape.h, shape.w);
            cn_data_free(out);
        }
        if (!st) {
            char *key = NULL;
            if (cn_data_cache_meta(path, "convnet.key", &key) == CN_OK && key)
                snprintf(info->key, sizeof info->key, "%s", key);
            free(key);
            read_info(path, info);
            info->files = out->n;
        }
        return st;
    }
    if (csv && !ends_with(path, ".csv"))
        return cn_fail(CN_ERR_FORMAT,
                       "%s: a list of images is a .csv file (file,label), a data cache a "
                       ".safetensors file",
                       path);
    double t0 = now_s();
    listing l = {0};
    cn_status st = CN_OK;
    if (csv) {
        const char *slash = strrchr(path, '/');
        l.root = slash ? strndup(path, (size_t)(slash - path + (slash == path))) : strdup(".");
    } else {
        size_t n = strlen(path);
        while (n > 1 && path[n - 1] == '/')
            n--;
        l.root = strndup(path, n);
    }
    if (!l.root)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    st = csv ? scan_csv(path, &l) : scan_folder(l.root, &l);
    if (!st && l.k < 2)
        st = cn_fail(CN_ERR_FORMAT,
                     "%s has one class (%s): a classifier needs two or more (one folder per "
                     "class)",
                     path, l.classes[0]);
    if (!st && l.n == 0)
        st = cn_fail(CN_ERR_FORMAT, "%s: no images", path);
    if (st) {
        listing_free(&l);
        return st;
    }
    if (l.split_folders)
        qsort(l.e, l.n, sizeof *l.e, cmp_entry);
    else {
        if (!csv)
            qsort(l.e, l.n, sizeof *l.e, cmp_entry);
        shuffle(l.e, l.n, FOLDER_SEED);
    }
    info->files = l.n;
    info->scan_seconds = now_s() - t0;
    char key[17];
    snprintf(key, sizeof key, "%016llx", (unsigned long long)listing_key(&l, shape, o.fit));
    memcpy(info->key, key, sizeof key);
    st = cache_path(path, csv, &l, shape, o.fit, o.cache_dir, info->cache, sizeof info->cache);
    char *was = NULL;
    if (!st && access(info->cache, F_OK) == 0) {
        info->stale = 1;
        if (cn_data_cache_meta(info->cache, "convnet.key", &was) == CN_OK && was &&
            strcmp(was, key) == 0 && cn_data_cache_open(info->cache, out) == CN_OK) {
            info->stale = 0;
            if (out->shape.c != shape.c || out->shape.h != shape.h || out->shape.w != shape.w)
                cn_data_free(out), info->stale = 1;
        }
    }
    free(was);
    if (!st && !out->pixels) {
        double t1 = now_s();
        int threads = o.threads;
#ifdef _OPENMP
        int had = omp_get_max_threads();
        if (threads > 0)
            omp_set_num_threads(threads);
#endif
        char split[96], bad_count[32], seed[32];
        char *bad_text = malloc(LIST_BAD * LINE_BAD + 1);
        if (!bad_text) {
            listing_free(&l);
            return cn_fail(CN_ERR_NOMEM, "out of memory");
        }
        /* The longest these can become, for the header's room. */
        snprintf(split, sizeof split, "%zu %zu %zu", l.n, l.n, l.n);
        snprintf(bad_count, sizeof bad_count, "%zu", l.n);
        memset(bad_text, ' ', LIST_BAD * LINE_BAD);
        bad_text[LIST_BAD * LINE_BAD] = '\0';
        snprintf(seed, sizeof seed, "%d", FOLDER_SEED);
        source src = {.l = &l,
                      .shape = shape,
                      .fit = o.fit,
                      .split = split,
                      .bad_count = bad_count,
                      .bad_text = bad_text};
        const char *meta[] = {"convnet.key",
                              key,
                              "convnet.fit",
                              fit_name(o.fit),
                              "convnet.source",
                              path,
                              "convnet.order",
                              l.split_folders ? "sorted" : "shuffled",
                              "convnet.seed",
                              seed,
                              "convnet.split",
                              split,
                              "convnet.unreadable_count",
                              bad_count,
                              "convnet.unreadable",
                              bad_text};
        size_t written = 0;
        st = cn_data_cache_write(info->cache, shape, l.n, (const char *const *)l.classes, l.k, meta,
                                 sizeof meta / sizeof meta[0] / 2, next_samples, &src, &written);
        (void)threads;
#ifdef _OPENMP
        omp_set_num_threads(had);
#endif
        info->built = 1;
        info->build_seconds = now_s() - t1;
        free(src.slot);
        free(src.why);
        free(src.ok);
        free(bad_text);
        if (!st)
            st = cn_data_cache_open(info->cache, out);
    }
    if (!st)
        read_info(info->cache, info);
    listing_free(&l);
    return st;
}
