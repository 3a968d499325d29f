/* guard.c - the "guard" backend: the CPU backend with its tensor memory out
 * of the host's reach, as a GPU's memory is.  Every block it allocates is
 * mapped with no access, and only its own operations open it, for as long
 * as they run.  Anything above the backend that reads or writes tensor
 * memory directly (instead of through upload, download and the operations)
 * then crashes at once with SIGSEGV, which is how the tests show that the
 * device seam holds without a GPU.  Slower than the CPU backend (two
 * system calls per operation): for tests. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "backend/cpu.h"
#include "internal.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* The guard's memory: one reserved range of address space, inaccessible
 * but while an operation runs, handed out in whole pages (first fit among
 * freed blocks, else at the top).  Opening and closing it is one mprotect
 * of the range in use. */
#define ARENA_BYTES ((size_t)4 << 30)

typedef struct block {
    size_t at, bytes; /* offset into the arena, whole pages */
    int used;
    struct block *next; /* in address order */
} block;

typedef struct cn_guard_region {
    char *base;
    size_t top, page; /* bytes in use from base; the page size */
    block *blocks;
} cn_guard_region;

static void protect(const cn_backend *be, int prot)
{
    const cn_guard_region *g = cn_cpu_of(be)->regions;
    if (g->top && mprotect(g->base, g->top, prot) != 0)
        abort(); /* only a range this file mapped can get here */
}
static void open_all(const cn_backend *be) { protect(be, PROT_READ | PROT_WRITE); }
static void close_all(const cn_backend *be) { protect(be, PROT_NONE); }

static void *g_alloc(cn_backend *be, size_t bytes)
{
    cn_guard_region *g = ((cn_cpu *)be)->regions;
    if (bytes > ARENA_BYTES)
        return NULL;
    size_t len = bytes ? (bytes + g->page - 1) / g->page * g->page : g->page;
    for (block *b = g->blocks; b; b = b->next)
        if (!b->used && b->bytes >= len) {
            if (b->bytes > len) { /* split: the rest stays free */
                block *rest = malloc(sizeof *rest);
                if (!rest)
                    return NULL;
                *rest = (block){b->at + len, b->bytes - len, 0, b->next};
                b->bytes = len;
                b->next = rest;
            }
            b->used = 1;
            return g->base + b->at;
        }
    block *b = malloc(sizeof *b);
    if (!b || g->top + len > ARENA_BYTES) {
        free(b);
        return NULL;
    }
    *b = (block){g->top, len, 1, NULL};
    block **end = &g->blocks;
    while (*end)
        end = &(*end)->next;
    *end = b;
    g->top += len;
    return g->base + b->at;
}

/* Freed pages go back to zero (alloc's memory is zeroed) and merge with
 * free neighbours. */
static void g_free(cn_backend *be, void *p)
{
    cn_guard_region *g = ((cn_cpu *)be)->regions;
    block *prev = NULL;
    for (block *b = g->blocks; p && b; prev = b, b = b->next) {
        if (g->base + b->at != (char *)p)
            continue;
        madvise(g->base + b->at, b->bytes, MADV_DONTNEED);
        b->used = 0;
        if (b->next && !b->next->used) {
            block *n = b->next;
            b->bytes += n->bytes;
            b->next = n->next;
            free(n);
        }
        if (prev && !prev->used) {
            prev->bytes += b->bytes;
            prev->next = b->next;
            free(b);
        }
        return;
    }
}

static void g_destroy(cn_backend *be)
{
    cn_cpu *cpu = (cn_cpu *)be;
    cn_guard_region *g = cpu->regions;
    while (g->blocks) {
        block *b = g->blocks;
        g->blocks = b->next;
        free(b);
    }
    munmap(g->base, ARENA_BYTES);
    free(g);
    cpu->inner.destroy(be);
}

/* An operation of the kernels' own table, between opening and closing. */
#define GUARD(name, params, args)                                                                  \
    static void g_##name params                                                                    \
    {                                                                                              \
        open_all(be);                                                                              \
        cn_cpu_of(be)->inner.name args;                                                            \
        close_all(be);                                                                             \
    }

GUARD(upload, (const cn_backend *be, void *dst, const void *src, size_t bytes),
      (be, dst, src, bytes))
GUARD(download, (const cn_backend *be, void *dst, const void *src, size_t bytes),
      (be, dst, src, bytes))
GUARD(copy, (const cn_backend *be, void *dst, const void *src, size_t bytes), (be, dst, src, bytes))
GUARD(fill, (const cn_backend *be, float *x, float value, size_t count), (be, x, value, count))
GUARD(gemm,
      (const cn_backend *be, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
       const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc),
      (be, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc))
GUARD(fc_fwd,
      (const cn_backend *be, size_t n, size_t m, size_t k, const float *x, const float *w,
       const float *b, float *y, float *keep),
      (be, n, m, k, x, w, b, y, keep))
GUARD(add_bias, (const cn_backend *be, float *y, size_t n, size_t m, size_t p, const float *bias),
      (be, y, n, m, p, bias))
GUARD(bias_grad, (const cn_backend *be, const float *dy, size_t n, size_t m, size_t p, float *db),
      (be, dy, n, m, p, db))
GUARD(add, (const cn_backend *be, const float *a, const float *b, float *y, size_t count),
      (be, a, b, y, count))
GUARD(scale, (const cn_backend *be, float *x, float alpha, size_t count), (be, x, alpha, count))
GUARD(conv_fwd,
      (const cn_backend *be, const cn_win *g, size_t m, const float *x, size_t n, const float *w,
       const float *b, float *y, float *ws, float *keep, cn_act act),
      (be, g, m, x, n, w, b, y, ws, keep, act))
GUARD(conv_fwd_affine,
      (const cn_backend *be, const cn_win *g, size_t m, const float *x, size_t n, const float *w,
       const float *b, const float *scale, const float *shift, float *y, float *ws, float *keep,
       cn_act act),
      (be, g, m, x, n, w, b, scale, shift, y, ws, keep, act))
GUARD(conv_fwd_pool,
      (const cn_backend *be, const cn_win *g, size_t m, const float *x, size_t n, const float *w,
       const float *b, const float *scale, const float *shift, const cn_win *pool, float *y,
       float *ws, float *keep, cn_act act),
      (be, g, m, x, n, w, b, scale, shift, pool, y, ws, keep, act))
GUARD(bn_affine,
      (const cn_backend *be, const float *gamma, const float *beta, const float *run_mean,
       const float *run_var, float eps, size_t c, float *scale, float *shift),
      (be, gamma, beta, run_mean, run_var, eps, c, scale, shift))
GUARD(conv_bwd,
      (const cn_backend *be, const cn_win *g, size_t m, const float *x, const float *y,
       const float *dy, size_t n, const float *w, float *dw, float *db, float *dx, float *ws,
       cn_act act),
      (be, g, m, x, y, dy, n, w, dw, db, dx, ws, act))
GUARD(maxpool_fwd, (const cn_backend *be, const cn_win *g, const float *x, size_t n, float *y),
      (be, g, x, n, y))
GUARD(maxpool_bwd,
      (const cn_backend *be, const cn_win *g, const float *x, const float *dy, size_t n, float *dx,
       cn_act act),
      (be, g, x, dy, n, dx, act))
GUARD(maxpool_fwd_sw,
      (const cn_backend *be, const cn_win *g, const float *x, size_t n, float *y, uint8_t *sw),
      (be, g, x, n, y, sw))
GUARD(maxpool_bwd_sw,
      (const cn_backend *be, const cn_win *g, const uint8_t *sw, const float *dy, size_t n,
       float *dx, cn_act act),
      (be, g, sw, dy, n, dx, act))
GUARD(avgpool_fwd, (const cn_backend *be, const cn_win *g, const float *x, size_t n, float *y),
      (be, g, x, n, y))
GUARD(avgpool_bwd, (const cn_backend *be, const cn_win *g, const float *dy, size_t n, float *dx),
      (be, g, dy, n, dx))
GUARD(act_fwd,
      (const cn_backend *be, cn_act a, float param, const float *x, float *y, size_t count),
      (be, a, param, x, y, count))
GUARD(act_bwd,
      (const cn_backend *be, cn_act a, float param, const float *x, const float *y, const float *dy,
       float *dx, size_t count),
      (be, a, param, x, y, dy, dx, count))
GUARD(dropout_fwd,
      (const cn_backend *be, const float *x, float *y, size_t count, float rate, uint64_t key,
       uint64_t first),
      (be, x, y, count, rate, key, first))
GUARD(dropout_bwd,
      (const cn_backend *be, const float *dy, float *dx, size_t count, float rate, uint64_t key,
       uint64_t first),
      (be, dy, dx, count, rate, key, first))
GUARD(bn_fwd,
      (const cn_backend *be, const float *x, size_t n, size_t c, size_t hw, const float *gamma,
       const float *beta, float *run_mean, float *run_var, float momentum, float eps, int train,
       float *save_mean, float *save_invstd, double *scratch, float *y, cn_act act),
      (be, x, n, c, hw, gamma, beta, run_mean, run_var, momentum, eps, train, save_mean,
       save_invstd, scratch, y, act))
GUARD(bn_apply,
      (const cn_backend *be, const float *x, size_t n, size_t c, size_t hw, const float *gamma,
       const float *beta, const float *save_mean, const float *save_invstd, float *y, cn_act act),
      (be, x, n, c, hw, gamma, beta, save_mean, save_invstd, y, act))
GUARD(bn_bwd,
      (const cn_backend *be, const float *x, const float *y, const float *dy, size_t n, size_t c,
       size_t hw, const float *gamma, const float *save_mean, const float *save_invstd,
       double *scratch, float *dgamma, float *dbeta, float *dx, cn_act act),
      (be, x, y, dy, n, c, hw, gamma, save_mean, save_invstd, scratch, dgamma, dbeta, dx, act))
GUARD(input_from_pixels,
      (const cn_backend *be, const uint8_t *pix, size_t n, size_t c, size_t hw, const float *norm,
       float *x),
      (be, pix, n, c, hw, norm, x))
GUARD(gather_pixels,
      (const cn_backend *be, const uint8_t *data, const uint32_t *idx, size_t n, cn_shape s,
       cn_aug aug, uint64_t seed, uint64_t first, const float *norm, uint8_t *pix, float *x),
      (be, data, idx, n, s, aug, seed, first, norm, pix, x))
GUARD(softmax, (const cn_backend *be, const float *x, float *y, size_t rows, size_t cols),
      (be, x, y, rows, cols))
GUARD(softmax_nll_bwd,
      (const cn_backend *be, const float *y, const int32_t *labels, size_t rows, size_t cols,
       float smooth, float *dx),
      (be, y, labels, rows, cols, smooth, dx))
GUARD(nll_rows,
      (const cn_backend *be, const float *z, const float *y, const int32_t *labels, size_t rows,
       size_t cols, float smooth, double *loss, int32_t *best, float *best_p),
      (be, z, y, labels, rows, cols, smooth, loss, best, best_p))
GUARD(sgd,
      (const cn_backend *be, size_t n, float *theta, const float *g, float *m, float lr, float mu,
       float lambda),
      (be, n, theta, g, m, lr, mu, lambda))
GUARD(adam,
      (const cn_backend *be, size_t n, float *theta, const float *g, float *m, float *v,
       const float hyper[8]),
      (be, n, theta, g, m, v, hyper))

GUARD(ema, (const cn_backend *be, float *avg, const float *x, size_t count, float keep),
      (be, avg, x, count, keep))

static size_t g_count_nonfinite(const cn_backend *be, const float *x, size_t count)
{
    open_all(be);
    size_t bad = cn_cpu_of(be)->inner.count_nonfinite(be, x, count);
    close_all(be);
    return bad;
}

static void g_stats(const cn_backend *be, const float *x, size_t rows, size_t units, size_t size,
                    double out[5])
{
    open_all(be);
    cn_cpu_of(be)->inner.stats(be, x, rows, units, size, out);
    close_all(be);
}

int cn_guard_wrap(cn_cpu *cpu)
{
    cn_guard_region *g = calloc(1, sizeof *g);
    void *base =
        g ? mmap(NULL, ARENA_BYTES, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
          : MAP_FAILED;
    if (base == MAP_FAILED) {
        free(g);
        return -1;
    }
    long page = sysconf(_SC_PAGESIZE);
    g->base = base;
    g->page = page > 0 ? (size_t)page : 4096;
    cpu->regions = g;
    cn_backend *be = &cpu->base;
    cpu->inner = *be;
    be->name = "guard";
    be->host_memory = 0;
    be->workers = 1;
    be->each_worker = NULL; /* its memory opens for one operation at a time */
    be->alone = NULL;
    be->team = NULL;
    be->alloc = g_alloc;
    be->free = g_free;
    be->destroy = g_destroy;
    be->upload = g_upload;
    be->download = g_download;
    be->copy = g_copy;
    be->fill = g_fill;
    be->gemm = g_gemm;
    be->fc_fwd = be->fc_fwd ? g_fc_fwd : NULL;
    be->add_bias = g_add_bias;
    be->bias_grad = g_bias_grad;
    be->add = g_add;
    be->scale = g_scale;
    be->conv_fwd = g_conv_fwd;
    be->conv_fwd_affine = g_conv_fwd_affine;
    be->conv_fwd_pool = g_conv_fwd_pool;
    be->bn_affine = g_bn_affine;
    be->conv_bwd = g_conv_bwd;
    be->maxpool_fwd = g_maxpool_fwd;
    be->maxpool_bwd = g_maxpool_bwd;
    be->maxpool_fwd_sw = g_maxpool_fwd_sw;
    be->maxpool_bwd_sw = g_maxpool_bwd_sw;
    be->avgpool_fwd = g_avgpool_fwd;
    be->avgpool_bwd = g_avgpool_bwd;
    be->act_fwd = g_act_fwd;
    be->act_bwd = g_act_bwd;
    be->dropout_fwd = g_dropout_fwd;
    be->dropout_bwd = g_dropout_bwd;
    be->bn_fwd = g_bn_fwd;
    be->bn_bwd = g_bn_bwd;
    be->bn_apply = g_bn_apply;
    be->input_from_pixels = g_input_from_pixels;
    be->gather_pixels = g_gather_pixels;
    be->softmax = g_softmax;
    be->softmax_nll_bwd = g_softmax_nll_bwd;
    be->nll_rows = g_nll_rows;
    be->sgd = g_sgd;
    be->adam = g_adam;
    be->ema = g_ema;
    be->count_nonfinite = g_count_nonfinite;
    be->stats = g_stats;
    return 0;
}
