/* safetensors.h - reading and writing safetensors files.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON (an object
 * mapping each tensor name to {"dtype", "shape", "data_offsets": [begin,
 * end]} plus an optional "__metadata__" object of strings), then the tensor
 * bytes, little-endian, offsets relative to the end of the header. */
#ifndef CN_SAFETENSORS_H
#define CN_SAFETENSORS_H

#include "internal.h"

/* Headers larger than this are refused (the format's own limit). */
#define CN_ST_MAX_HEADER ((size_t)100 << 20)

typedef struct cn_st_tensor {
    const char *name;
    int ndim;
    size_t dims[4];
    const float *data; /* count = product of dims floats */
} cn_st_tensor;

/* Writes F32 tensors and metadata (meta: n_meta key/value pairs) to path
 * atomically: a temporary file in the same directory (path.tmp-PID), fsync,
 * rename, fsync of the directory.  A failure of write, fsync, close or rename
 * removes the temporary file and leaves path as it was.  After a save, the
 * temporary files of earlier saves to path whose process died before its
 * rename (killed, power lost) are removed.  Errors: CN_ERR_IO (naming path,
 * the step and the system's reason), CN_ERR_NOMEM. */
cn_status cn_st_write(const char *path, const cn_st_tensor *t, size_t n, const char *const *meta,
                      size_t n_meta);

/* Writes a file atomically, as cn_st_write does: fill(fd, user) writes the
 * contents into path.tmp-PID (returning 0, or -1 with errno set), which is
 * synced and renamed over path; any failure removes it and leaves path as it
 * was; stale temporary files of dead processes are removed.  Errors:
 * CN_ERR_IO (naming path, the step and the system's reason), CN_ERR_NOMEM. */
cn_status cn_save_atomic(const char *path, int (*fill)(int fd, void *user), void *user);
/* write(2) until all n bytes are written: 0, or -1 with errno set. */
int cn_write_all(int fd, const void *buf, size_t n);

typedef struct cn_st_entry {
    char *name;
    char dtype[8];
    int ndim;
    size_t dims[8];
    size_t begin, end; /* byte offsets into data */
} cn_st_entry;

typedef struct cn_st_file {
    char *path;
    uint8_t *bytes; /* the whole file */
    size_t size;
    const uint8_t *data; /* start of the tensor bytes */
    size_t data_len;
    cn_st_entry *entries;
    size_t n_entries;
    char **meta; /* key, value, key, value ... */
    size_t n_meta;
    int mapped; /* bytes is a read-only mapping of the file (or NULL) */
} cn_st_file;

/* Reads path and checks its whole structure: header bounds, JSON, dtypes,
 * shapes against offsets, offsets tiling the data without holes or overlap,
 * unique names.  Errors: CN_ERR_IO, CN_ERR_FORMAT, CN_ERR_NOMEM. */
cn_status cn_st_open(const char *path, cn_st_file *f);
/* As cn_st_open, but reads only the header; with map, the file is then
 * mapped read-only (bytes, data point into the mapping), without it bytes
 * and data are NULL.  The same checks; errors as cn_st_open. */
cn_status cn_st_open_mapped(const char *path, int map, cn_st_file *f);
void cn_st_close(cn_st_file *f);
/* The metadata value of key, or NULL. */
const char *cn_st_meta(const cn_st_file *f, const char *key);
/* The entry called name, or NULL. */
const cn_st_entry *cn_st_find(const cn_st_file *f, const char *name);
/* Copies an F32 tensor of exactly the given shape into dst.
 * Errors: CN_ERR_FORMAT naming the tensor and what differs. */
cn_status cn_st_read_f32(const cn_st_file *f, const cn_st_entry *e, int ndim, const size_t *dims,
                         float *dst);

#endif
