/* harness.h - a small test harness: each test runs in its own process, so a
 * crash fails that test only.  Checks stop the test at the first failure.
 * A test has three outcomes: passed, failed, or skipped: it could not run
 * here (an instruction set this processor lacks, a missing tool), which it
 * says with SKIP and a reason; skipped is never counted as passed. */
#ifndef TEST_HARNESS_H
#define TEST_HARNESS_H

#include "convnet.h"

#include <math.h>
#include <stdio.h>

typedef struct th_test {
    const char *name;
    void (*fn)(void);
} th_test;

/* Records a failure (the harness reports the first one of a test). */
void th_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int th_failed(void);
/* Marks the test skipped, with the reason (one line) shown next to its name.
 * A test that also failed counts as failed. */
void th_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Skips the rest of the test. */
#define SKIP(...)                                                                                  \
    do {                                                                                           \
        th_skip(__VA_ARGS__);                                                                      \
        return;                                                                                    \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            th_fail(__FILE__, __LINE__, "%s", #cond);                                              \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            th_fail(__FILE__, __LINE__, __VA_ARGS__);                                              \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* An expression returning cn_status must give CN_OK. */
#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        cn_status st_ = (expr);                                                                    \
        if (st_ != CN_OK) {                                                                        \
            th_fail(__FILE__, __LINE__, "%s returned %s: %s", #expr, cn_status_name(st_),          \
                    cn_last_error());                                                              \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* An expression must fail with status want. */
#define CHECK_ERR(expr, want)                                                                      \
    do {                                                                                           \
        cn_status st_ = (expr);                                                                    \
        if (st_ != (want)) {                                                                       \
            th_fail(__FILE__, __LINE__, "%s returned %s, expected %s (%s)", #expr,                 \
                    cn_status_name(st_), cn_status_name(want), cn_last_error());                   \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (tol))) {                                                           \
            th_fail(__FILE__, __LINE__, "%s = %.9g, expected %s = %.9g (tolerance %g)", #a, a_,    \
                    #b, b_, (double)(tol));                                                        \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* Error message must contain text. */
int th_contains(const char *haystack, const char *needle);

/* Helpers shared by the test files (tests/util.c). */
cn_spec *th_spec(const char *text); /* parses or fails the test (NULL) */
const char *th_tmpdir(void);        /* a fresh directory for this test run */
char *th_path(const char *name);    /* name in that directory (4 rotating buffers) */
int th_write_file(const char *path, const void *b, size_t n); /* 1 when all was written */
/* The whole file (malloc'd, one spare byte) and its size in *size, or NULL. */
unsigned char *th_read_file(const char *path, size_t *size);
/* A safetensors file: claimed_len as the header's length (strlen(json) when
 * it does not lie), json, then data_len zero bytes.  1 when written. */
int th_write_safetensors(const char *path, uint64_t claimed_len, const char *json, size_t data_len);
const char *th_data_dir(void); /* MNIST: $CONVNET_DATA or data/mnist */
void th_fill_normal(float *x, size_t n, cn_rng *rng);
/* The device the tests run on: $CONVNET_TEST_BACKEND (default "cpu") with
 * threads threads; valid until the 8th call after this one. */
const cn_device *th_dev(int threads);
/* A malloc'd host copy of a block of net (cn_net_num_params() or
 * cn_net_num_buffers() floats), or NULL when out of memory. */
float *th_block(const cn_net *net, cn_block block);
/* One float of a block: read, and written. */
float th_get(const cn_net *net, cn_block block, size_t i);
void th_put(cn_net *net, cn_block block, size_t i, float v);
/* Two classes of side x side images: a bright bar, 3/8 of the width, on the
 * left or on the right, over noise (owned by the data: cn_data_free). */
cn_data th_bars(size_t n, uint64_t seed, int side);
/* Whether two models' optimizer states hold the same bytes. */
int th_same_optim(const cn_model *a, const cn_model *b);
/* Whether a block of a and b holds the same bytes. */
int th_same(const cn_net *a, const cn_net *b, cn_block block);
/* A host copy of the output of the last forward pass (n x classes), or of
 * layer i's for its first n samples (NULL when there is none); valid until
 * the 8th call after this one. */
const float *th_output(const cn_net *net, size_t n);
const float *th_layer_output(const cn_net *net, size_t i, size_t n);
/* Layer i's forward (train: a training pass) or backward pass alone on
 * host floats x, y, dy and dx (n samples; dy NULL for the loss layer),
 * copied to and from the backend's memory where it has its own (a GPU's). */
void th_layer_forward(cn_net *net, size_t i, const float *x, float *y, size_t n, int train);
void th_layer_backward(cn_net *net, size_t i, const float *x, const float *y, const float *dy,
                       float *dx, size_t n);
/* Caps this test's address space (each test runs in its own process) at what
 * it uses now plus mb MiB: a larger allocation then fails, so a reader that
 * tried one returns CN_ERR_NOMEM instead of its refusal.  0 if it cannot. */
int th_limit_memory(size_t mb);
long th_peak_rss_mb(void); /* the process's peak resident memory, MiB */

#endif
