/* status.c - error messages, checked allocation and the clock. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char last_error[1024];

const char *cn_status_name(cn_status st)
{
    switch (st) {
    case CN_OK: return "CN_OK";
    case CN_ERR_ARG: return "CN_ERR_ARG";
    case CN_ERR_NOMEM: return "CN_ERR_NOMEM";
    case CN_ERR_IO: return "CN_ERR_IO";
    case CN_ERR_FORMAT: return "CN_ERR_FORMAT";
    case CN_ERR_SPEC: return "CN_ERR_SPEC";
    case CN_ERR_SHAPE: return "CN_ERR_SHAPE";
    case CN_ERR_NUMERIC: return "CN_ERR_NUMERIC";
    case CN_ERR_STOPPED: return "CN_ERR_STOPPED";
    }
    return "CN_ERR_UNKNOWN";
}

const char *cn_last_error(void) { return last_error; }

const char *cn_version(void) { return CN_VERSION; }

cn_status cn_fail_at(const char *file, int line, cn_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    if (len >= 0 && (size_t)len < sizeof last_error && file && getenv("CONVNET_DEBUG"))
        snprintf(last_error + len, sizeof last_error - (size_t)len, " [%s:%d]", file, line);
    return st;
}

void cn_error_prefix(const char *fmt, ...)
{
    char prefix[512], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    size_t a = strlen(prefix), b = strlen(old);
    if (a > sizeof last_error - 1)
        a = sizeof last_error - 1;
    if (b > sizeof last_error - 1 - a)
        b = sizeof last_error - 1 - a;
    memcpy(last_error, prefix, a);
    memcpy(last_error + a, old, b);
    last_error[a + b] = '\0';
}

size_t cn_mul(size_t a, size_t b)
{
    if (a != 0 && b > SIZE_MAX / a)
        return SIZE_MAX;
    return a * b;
}

size_t cn_add(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

const char *cn_join_sizes(const size_t *v, int n, const char *sep, char *buf, size_t size)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && at < size; i++) {
        int k = snprintf(buf + at, size - at, "%s%zu", i ? sep : "", v[i]);
        at += k > 0 ? (size_t)k : 0;
    }
    return buf;
}

void *cn_alloc(size_t count, size_t size)
{
    size_t bytes = cn_mul(count, size);
    if (bytes == SIZE_MAX || bytes > SIZE_MAX - 64)
        return NULL;
    bytes = (bytes + 63) / 64 * 64;
    if (bytes == 0)
        bytes = 64;
    void *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void cn_free(void *p) { free(p); }

double cn_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
