/* cuda.cu - the CUDA backend: tensor memory on an NVIDIA GPU, the matrix
 * products in cuBLAS, the convolutions in cuDNN, everything else in the
 * kernels below.  Built with make CUDA=1 (nvcc); nothing above the seam
 * knows it exists.
 *
 * The same semantics as the CPU backend (backend/cpu.c and kernels/), op by
 * op; the CPU's reference kernels (kernels/plain.c, kernels/elementwise.c,
 * kernels/window.c, kernels/conv_ref.c) are what this file is checked
 * against (tests/test_cuda.c).  What matches the CPU bit for bit: dropout's
 * masks (the same counter generator, counter_rng.h), the augmentation of
 * training batches (augment.h's integer arithmetic), the input's
 * preparation, pooling, and the choices of maximum (the first in the
 * window).  What matches to rounding: the rest (sums in another order).
 *
 * Determinism: one stream; every reduction is a fixed tree (one block per
 * channel, partial sums per block then one block in order; no floating
 * point atomics); cuBLAS on one stream is deterministic; cuDNN's algorithms
 * are chosen by its heuristics (not by timing, whose winner may change from
 * run to run) among the deterministic ones only, for each geometry and
 * batch size on its own (plan_at), so that no result depends on what ran
 * before: a resumed run, or one with evaluations between its steps, gives
 * the same bits.  TF32 is off (cuBLAS
 * default math, cuDNN FMA math) unless CONVNET_TF32=1 is set.
 *
 * Errors: the operations cannot fail (backend.h), so a CUDA, cuBLAS or
 * cuDNN error is kept, the first one, and status() returns it with its
 * message; training asks after every step. */
#include "backend/cuda.h"
#include "counter_rng.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define fail(st, ...) cn_fail_at(__FILE__, __LINE__, st, __VA_ARGS__)

/* Threads per block of every kernel here; the block reductions assume it. */
#define T 256
/* Blocks of the reductions over a whole tensor (stats): partial sums. */
#define STAT_BLOCKS 256
/* Convolution plans remembered (a geometry at a batch size, and cuDNN's
 * algorithms for it); beyond this many, the oldest is made again when
 * next needed, to the same algorithms. */
#define MAX_PLANS 256
static_assert(CN_CUDA_OWN_BYTES ==
                  (5 * STAT_BLOCKS + 5) * sizeof(double) + sizeof(unsigned long long),
              "cuda.h's CN_CUDA_OWN_BYTES is what cn_cuda_create allocates");

typedef struct alloc_rec {
    void *p;
    size_t bytes;
} alloc_rec;

/* cuDNN's algorithms for one convolution geometry at one batch size, and
 * the workspace they need. */
typedef struct conv_plan {
    cn_win g;
    size_t m, batch, ws_bytes; /* cuDNN's part of the workspace */
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
} conv_plan;

typedef struct cn_cuda {
    cn_backend base; /* first: the table's functions get this struct */
    int device;
    int tf32;
    char label[300]; /* "cuda:0 (NVIDIA H100 80GB HBM3)", for messages */
    cudaStream_t stream;
    cublasHandle_t blas;
    cudnnHandle_t dnn;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    /* Reductions' results: STAT_BLOCKS * 5 partials, then 5 totals; and a
     * counter for count_nonfinite. */
    double *partials;
    unsigned long long *counter;
    /* Allocations and their sizes, for the peak. */
    alloc_rec *recs;
    size_t n_recs, cap_recs, in_use, peak;
    conv_plan plans[MAX_PLANS];
    size_t n_plans, next_plan; /* next_plan: the one to make again when full */
    /* cuDNN's workspace, the backend's own (one stream: the convolutions
     * take turns): as large as the largest plan's. */
    void *ws;
    size_t ws_bytes;
    /* The first error, kept for status(). */
    cn_status err;
    char msg[512];
} cn_cuda;

static cn_cuda *cu(const cn_backend *be) { return (cn_cuda *)be; }

/* ------------------------------------------------------------------ errors */

static void keep_error(cn_cuda *g, cn_status st, const char *fmt, ...) CN_PRINTF(3, 4);
static void keep_error(cn_cuda *g, cn_status st, const char *fmt, ...)
{
    if (g->err)
        return;
    g->err = st;
    int n = snprintf(g->msg, sizeof g->msg, "%s: ", g->label);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->msg + n, sizeof g->msg - (size_t)n, fmt, ap);
    va_end(ap);
}

/* 0, or 1 after keeping the error of what. */
static int rt_ok(cn_cuda *g, cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return 1;
    keep_error(g, e == cudaErrorMemoryAllocation ? CN_ERR_NOMEM : CN_ERR_IO, "%s failed: %s", what,
               cudaGetErrorString(e));
    return 0;
}

static int blas_ok(cn_cuda *g, cublasStatus_t s, const char *what)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return 1;
    keep_error(g, s == CUBLAS_STATUS_ALLOC_FAILED ? CN_ERR_NOMEM : CN_ERR_IO,
               "cuBLAS %s failed: %s", what, cublasGetStatusString(s));
    return 0;
}

static int dnn_ok(cn_cuda *g, cudnnStatus_t s, const char *what)
{
    if (s == CUDNN_STATUS_SUCCESS)
        return 1;
    keep_error(g, s == CUDNN_STATUS_ALLOC_FAILED ? CN_ERR_NOMEM : CN_ERR_IO, "cuDNN %s failed: %s",
               what, cudnnGetErrorString(s));
    return 0;
}

/* After each kernel launch: a bad configuration shows here. */
#define LAUNCHED(g, name) rt_ok((g), cudaGetLastError(), "the kernel " name)

static cn_status cu_status(const cn_backend *be)
{
    cn_cuda *g = cu(be);
    if (!g->err)
        rt_ok(g, cudaPeekAtLastError(), "an earlier kernel");
    return g->err ? fail(g->err, "%s", g->msg) : CN_OK;
}

/* Blocks for a grid-stride loop over n items (n > 0). */
static unsigned blocks(size_t n)
{
    size_t b = (n + T - 1) / T;
    return b > 65535 ? 65535u : (unsigned)b;
}

#define FOR_EACH(i, n)                                                                             \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                        \
         i += (size_t)gridDim.x * blockDim.x)

/* The sum over a block of T threads' values v, in a fixed tree (the result
 * is the same bits every run); valid in thread 0. */
__device__ static double block_sum(double v, double *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = T / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

__device__ static double block_max(double v, double *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = T / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            sh[threadIdx.x] = fmax(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

/* ------------------------------------------------------------------ memory */

static void *cu_alloc(cn_backend *be, size_t bytes)
{
    cn_cuda *g = cu(be);
    if (g->err)
        return NULL;
    if (g->n_recs == g->cap_recs) {
        size_t cap = g->cap_recs ? 2 * g->cap_recs : 64;
        alloc_rec *r = (alloc_rec *)realloc(g->recs, cap * sizeof *r);
        if (!r)
            return NULL;
        g->recs = r;
        g->cap_recs = cap;
    }
    void *p = NULL;
    size_t size = bytes ? bytes : 256;
    cudaError_t e = cudaMalloc(&p, size);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* not sticky: the caller says what ran out */
        return NULL;
    }
    if (!rt_ok(g, cudaMemsetAsync(p, 0, size, g->stream), "clearing new memory")) {
        cudaFree(p);
        return NULL;
    }
    g->recs[g->n_recs++] = (alloc_rec){p, size};
    g->in_use += size;
    g->peak = g->in_use > g->peak ? g->in_use : g->peak;
    return p;
}

static void cu_free(cn_backend *be, void *p)
{
    cn_cuda *g = cu(be);
    if (!p)
        return;
    for (size_t i = 0; i < g->n_recs; i++)
        if (g->recs[i].p == p) {
            g->in_use -= g->recs[i].bytes;
            g->recs[i] = g->recs[--g->n_recs];
            break;
        }
    /* cudaFree waits for the device: nothing still running uses p. */
    rt_ok(g, cudaFree(p), "cudaFree");
}

static void cu_upload(const cn_backend *be, void *dst, const void *src, size_t bytes)
{
    cn_cuda *g = cu(be);
    /* From pageable memory this returns once src has been copied out: the
     * caller may reuse it at once. */
    if (bytes)
        rt_ok(g, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g->stream), "upload");
}

static void cu_download(const cn_backend *be, void *dst, const void *src, size_t bytes)
{
    cn_cuda *g = cu(be);
    if (!bytes)
        return;
    if (!rt_ok(g, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g->stream),
               "download") ||
        !rt_ok(g, cudaStreamSynchronize(g->stream), "download (waiting for the GPU)"))
        memset(dst, 0xff, bytes); /* NaN floats: never a plausible result */
}

static void cu_copy(const cn_backend *be, void *dst, const void *src, size_t bytes)
{
    cn_cuda *g = cu(be);
    if (bytes)
        rt_ok(g, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g->stream), "copy");
}

__global__ static void k_fill(float *x, float v, size_t n) { FOR_EACH(i, n) x[i] = v; }

static void cu_fill(const cn_backend *be, float *x, float value, size_t count)
{
    cn_cuda *g = cu(be);
    if (!count)
        return;
    if (value == 0.0f) { /* all bits zero: +0.0f */
        rt_ok(g, cudaMemsetAsync(x, 0, count * sizeof *x, g->stream), "fill");
        return;
    }
    k_fill<<<blocks(count), T, 0, g->stream>>>(x, value, count);
    LAUNCHED(g, "fill");
}

static void cu_sync(const cn_backend *be)
{
    cn_cuda *g = cu(be);
    rt_ok(g, cudaStreamSynchronize(g->stream), "waiting for the GPU");
}

static void cu_memory(const cn_backend *be, size_t *total, size_t *avail, size_t *peak)
{
    cn_cuda *g = cu(be);
    size_t fr = 0, all = 0;
    if (cudaMemGetInfo(&fr, &all) != cudaSuccess) {
        cudaGetLastError();
        fr = all = 0;
    }
    if (total)
        *total = all;
    if (avail)
        *avail = fr;
    if (peak)
        *peak = g->peak;
}

static void cu_destroy(cn_backend *be)
{
    cn_cuda *g = cu(be);
    cudaStreamSynchronize(g->stream);
    cudaFree(g->ws);
    cudaFree(g->partials);
    cudaFree(g->counter);
    if (g->cd)
        cudnnDestroyConvolutionDescriptor(g->cd);
    if (g->wd)
        cudnnDestroyFilterDescriptor(g->wd);
    if (g->xd)
        cudnnDestroyTensorDescriptor(g->xd);
    if (g->yd)
        cudnnDestroyTensorDescriptor(g->yd);
    if (g->dnn)
        cudnnDestroy(g->dnn);
    if (g->blas)
        cublasDestroy(g->blas);
    if (g->stream)
        cudaStreamDestroy(g->stream);
    free(g->recs);
    free(g);
}

/* ----------------------------------------------------------- linear algebra */

static int fits_int(size_t v) { return v <= (size_t)INT_MAX; }

/* Row-major C = alpha op(A) op(B) + beta C is column-major C^T = alpha
 * op(B)^T op(A)^T + beta C^T: the same buffers, the operands swapped. */
static void cu_gemm(const cn_backend *be, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                    const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                    size_t ldc)
{
    cn_cuda *g = cu(be);
    if (m == 0 || n == 0)
        return;
    if (!fits_int(m) || !fits_int(n) || !fits_int(k) || !fits_int(lda) || !fits_int(ldb) ||
        !fits_int(ldc)) {
        keep_error(g, CN_ERR_ARG, "a matrix product of %zu x %zu x %zu is too large for cuBLAS", m,
                   n, k);
        return;
    }
    blas_ok(g,
            cublasSgemm(g->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                        (int)n, (int)m, (int)k, &alpha, b, (int)ldb, a, (int)lda, &beta, c,
                        (int)ldc),
            "sgemm");
}

__global__ static void k_add_bias(float *y, size_t count, size_t m, size_t p, const float *bias)
{
    FOR_EACH(i, count) y[i] += bias[(i / p) % m];
}

static void cu_add_bias(const cn_backend *be, float *y, size_t n, size_t m, size_t p,
                        const float *bias)
{
    cn_cuda *g = cu(be);
    size_t count = n * m * p;
    if (!count)
        return;
    k_add_bias<<<blocks(count), T, 0, g->stream>>>(y, count, m, p, bias);
    LAUNCHED(g, "add_bias");
}

/* One block per channel c: db[c] += the sum of dy (n, m, p) over n and p,
 * in a fixed order. */
__global__ static void k_bias_grad(const float *dy, size_t n, size_t m, size_t p, float *db)
{
    __shared__ double sh[T];
    size_t c = blockIdx.x;
    double s = 0;
    for (size_t i = threadIdx.x; i < n * p; i += T)
        s += dy[((i / p) * m + c) * p + i % p];
    s = block_sum(s, sh);
    if (threadIdx.x == 0)
        db[c] += (float)s;
}

static void bias_grad_on(cn_cuda *g, const float *dy, size_t n, size_t m, size_t p, float *db)
{
    if (!m || !n || !p)
        return;
    k_bias_grad<<<(unsigned)m, T, 0, g->stream>>>(dy, n, m, p, db);
    LAUNCHED(g, "bias_grad");
}

static void cu_bias_grad(const cn_backend *be, const float *dy, size_t n, size_t m, size_t p,
                         float *db)
{
    bias_grad_on(cu(be), dy, n, m, p, db);
}

__global__ static void k_add(const float *a, const float *b, float *y, size_t n)
{
    FOR_EACH(i, n) y[i] = a[i] + b[i];
}

static void cu_add(const cn_backend *be, const float *a, const float *b, float *y, size_t count)
{
    cn_cuda *g = cu(be);
    if (!count)
        return;
    k_add<<<blocks(count), T, 0, g->stream>>>(a, b, y, count);
    LAUNCHED(g, "add");
}

__global__ static void k_scale(float *x, float alpha, size_t n) { FOR_EACH(i, n) x[i] *= alpha; }

static void cu_scale(const cn_backend *be, float *x, float alpha, size_t count)
{
    cn_cuda *g = cu(be);
    if (!count)
        return;
    k_scale<<<blocks(count), T, 0, g->stream>>>(x, alpha, count);
    LAUNCHED(g, "scale");
}

/* avg = keep avg + take x, each product and the sum rounded once (the CPU's
 * plain kernel, bit for bit). */
__global__ static void k_ema(float *avg, const float *x, size_t n, float keep, float take)
{
    FOR_EACH(i, n) avg[i] = __fadd_rn(__fmul_rn(keep, avg[i]), __fmul_rn(take, x[i]));
}

static void cu_ema(const cn_backend *be, float *avg, const float *x, size_t count, float keep)
{
    cn_cuda *g = cu(be);
    if (!count)
        return;
    k_ema<<<blocks(count), T, 0, g->stream>>>(avg, x, count, keep, 1.0f - keep);
    LAUNCHED(g, "ema");
}

/* -------------------------------------------------------------- convolution */

/* The descriptors for n samples of geometry cg with m filters. */
static int describe(cn_cuda *g, const cn_win *cg, size_t m, size_t n)
{
    if (!fits_int(n * cg->c * cg->h * cg->w) || !fits_int(n * m * cg->oh * cg->ow)) {
        keep_error(g, CN_ERR_ARG, "a convolution over %zu samples is too large for cuDNN", n);
        return 0;
    }
    return dnn_ok(g,
                  cudnnSetTensor4dDescriptor(g->xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)n,
                                             (int)cg->c, (int)cg->h, (int)cg->w),
                  "x descriptor") &&
           dnn_ok(g,
                  cudnnSetTensor4dDescriptor(g->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)n,
                                             (int)m, (int)cg->oh, (int)cg->ow),
                  "y descriptor") &&
           dnn_ok(g,
                  cudnnSetFilter4dDescriptor(g->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, (int)m,
                                             (int)cg->c, (int)cg->kh, (int)cg->kw),
                  "filter descriptor") &&
           dnn_ok(g,
                  cudnnSetConvolution2dDescriptor(g->cd, (int)cg->pad, (int)cg->pad,
                                                  (int)cg->stride, (int)cg->stride, 1, 1,
                                                  CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                  "convolution descriptor") &&
           dnn_ok(g,
                  cudnnSetConvolutionMathType(g->cd, g->tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH),
                  "math type");
}

static int same_win(const cn_win *a, const cn_win *b)
{
    return a->c == b->c && a->h == b->h && a->w == b->w && a->kh == b->kh && a->kw == b->kw &&
           a->stride == b->stride && a->pad == b->pad && a->oh == b->oh && a->ow == b->ow;
}

static conv_plan *find_plan(cn_cuda *g, const cn_win *cg, size_t m, size_t n)
{
    for (size_t i = 0; i < g->n_plans; i++)
        if (g->plans[i].m == m && g->plans[i].batch == n && same_win(&g->plans[i].g, cg))
            return &g->plans[i];
    return NULL;
}

/* A math type that is plain fp32 unless TF32 is allowed. */
static int math_ok(const cn_cuda *g, cudnnMathType_t t)
{
    return g->tf32 || t == CUDNN_FMA_MATH || t == CUDNN_DEFAULT_MATH;
}

/* cuDNN's algorithms for the geometry at batch n (the descriptors set):
 * its heuristics' first choice among the deterministic ones, and the
 * workspace they need. */
static int choose(cn_cuda *g, conv_plan *pl)
{
    int got = 0;
    cudnnConvolutionFwdAlgoPerf_t fw[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnnConvolutionBwdDataAlgoPerf_t bd[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnConvolutionBwdFilterAlgoPerf_t bf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    pl->fwd = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    pl->bwd_data = CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
    pl->bwd_filter = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
    if (!dnn_ok(g,
                cudnnGetConvolutionForwardAlgorithm_v7(g->dnn, g->xd, g->wd, g->cd, g->yd,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, fw),
                "forward heuristics"))
        return 0;
    for (int i = 0; i < got; i++)
        if (fw[i].status == CUDNN_STATUS_SUCCESS && fw[i].determinism == CUDNN_DETERMINISTIC &&
            math_ok(g, fw[i].mathType)) {
            pl->fwd = fw[i].algo;
            break;
        }
    if (!dnn_ok(g,
                cudnnGetConvolutionBackwardDataAlgorithm_v7(g->dnn, g->wd, g->yd, g->cd, g->xd,
                                                            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                            &got, bd),
                "backward data heuristics"))
        return 0;
    for (int i = 0; i < got; i++)
        if (bd[i].status == CUDNN_STATUS_SUCCESS && bd[i].determinism == CUDNN_DETERMINISTIC &&
            math_ok(g, bd[i].mathType)) {
            pl->bwd_data = bd[i].algo;
            break;
        }
    if (!dnn_ok(g,
                cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                    g->dnn, g->xd, g->yd, g->cd, g->wd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                    &got, bf),
                "backward filter heuristics"))
        return 0;
    for (int i = 0; i < got; i++)
        if (bf[i].status == CUDNN_STATUS_SUCCESS && bf[i].determinism == CUDNN_DETERMINISTIC &&
            math_ok(g, bf[i].mathType)) {
            pl->bwd_filter = bf[i].algo;
            break;
        }
    size_t a = 0, b = 0, c = 0;
    if (!dnn_ok(g,
                cudnnGetConvolutionForwardWorkspaceSize(g->dnn, g->xd, g->wd, g->cd, g->yd, pl->fwd,
                                                        &a),
                "forward workspace") ||
        !dnn_ok(g,
                cudnnGetConvolutionBackwardDataWorkspaceSize(g->dnn, g->wd, g->yd, g->cd, g->xd,
                                                             pl->bwd_data, &b),
                "backward data workspace") ||
        !dnn_ok(g,
                cudnnGetConvolutionBackwardFilterWorkspaceSize(g->dnn, g->xd, g->yd, g->cd, g->wd,
                                                               pl->bwd_filter, &c),
                "backward filter workspace"))
        return 0;
    size_t most = a > b ? a : b;
    most = most > c ? most : c;
    pl->ws_bytes = (most + 255) / 256 * 256;
    return 1;
}

/* The plan of geometry cg with m filters for n samples (made now if there
 * is none: the descriptors are then set for it), with the backend's
 * workspace grown to what it needs; NULL after keeping an error.  A plan
 * depends on (cg, m, n) alone, never on what ran before: so do the results,
 * to the bit. */
static conv_plan *plan_at(cn_cuda *g, const cn_win *cg, size_t m, size_t n)
{
    conv_plan *pl = find_plan(g, cg, m, n);
    if (pl)
        return pl;
    conv_plan fresh;
    memset(&fresh, 0, sizeof fresh);
    fresh.g = *cg;
    fresh.m = m;
    fresh.batch = n;
    if (!describe(g, cg, m, n) || !choose(g, &fresh))
        return NULL;
    if (fresh.ws_bytes > g->ws_bytes) {
        void *ws = NULL;
        if (g->ws) {
            cu_free(&g->base, g->ws); /* cudaFree waits for the kernels using it */
            g->ws = NULL;
            g->ws_bytes = 0;
        }
        ws = cu_alloc(&g->base, fresh.ws_bytes);
        if (!ws) {
            keep_error(g, CN_ERR_NOMEM,
                       "out of GPU memory for cuDNN's workspace (%zu bytes) of a convolution "
                       "over %zu samples",
                       fresh.ws_bytes, n);
            return NULL;
        }
        g->ws = ws;
        g->ws_bytes = fresh.ws_bytes;
        g->base.own_bytes = CN_CUDA_OWN_BYTES + g->ws_bytes; /* for the planner */
    }
    if (g->n_plans < MAX_PLANS)
        pl = &g->plans[g->n_plans++];
    else
        pl = &g->plans[g->next_plan++ % MAX_PLANS];
    *pl = fresh;
    return pl;
}

/* Scratch: room for the gradient before the fused activation (m, oh, ow
 * for each sample of a chunk, at most max_batch), in the network's memory.
 * cuDNN's workspace is the backend's own, sized here for the network's
 * batch, so that it is taken when the network is built (another batch
 * size, such as a smaller last batch, may grow it once). */
static size_t cu_conv_ws(const cn_backend *be, const cn_win *cg, size_t m, size_t max_batch)
{
    cn_cuda *g = cu(be);
    size_t n = max_batch ? max_batch : 1, chunk = cn_cuda_conv_chunk(cg, m);
    n = n < chunk ? n : chunk;
    if (!plan_at(g, cg, m, n))
        return 0;
    return n * m * cg->oh * cg->ow;
}

/* y = act(y + b[f]) over y (n, m, p). */
__global__ static void k_bias_act(float *y, size_t count, size_t m, size_t p, const float *b,
                                  int relu)
{
    FOR_EACH(i, count)
    {
        float v = y[i] + b[(i / p) % m];
        y[i] = relu ? (v > 0.0f ? v : 0.0f) : v;
    }
}

/* dz = y > 0 ? dy : 0 (relu undone from its output). */
__global__ static void k_relu_mask(const float *y, const float *dy, float *dz, size_t n)
{
    FOR_EACH(i, n) dz[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

static void cu_conv_fwd(const cn_backend *be, const cn_win *cg, size_t m, const float *x, size_t n,
                        const float *w, const float *b, float *y, float *ws, float *keep,
                        cn_act act)
{
    cn_cuda *g = cu(be);
    (void)ws, (void)keep; /* conv_keep is NULL: cuDNN keeps no filters' form */
    if (!n)
        return;
    size_t in = cg->c * cg->h * cg->w, out = m * cg->oh * cg->ow;
    size_t chunk = cn_cuda_conv_chunk(cg, m);
    const float one = 1.0f, zero = 0.0f;
    for (size_t s0 = 0; s0 < n; s0 += chunk) {
        size_t nc = n - s0 < chunk ? n - s0 : chunk;
        conv_plan *pl = plan_at(g, cg, m, nc);
        if (!pl || !describe(g, cg, m, nc) ||
            !dnn_ok(g,
                    cudnnConvolutionForward(g->dnn, &one, g->xd, x + s0 * in, g->wd, w, g->cd,
                                            pl->fwd, g->ws, pl->ws_bytes, &zero, g->yd,
                                            y + s0 * out),
                    "convolution forward"))
            return;
    }
    size_t count = n * out;
    k_bias_act<<<blocks(count), T, 0, g->stream>>>(y, count, m, cg->oh * cg->ow, b,
                                                   act == CN_ACT_RELU);
    LAUNCHED(g, "conv bias and activation");
}

static void cu_conv_bwd(const cn_backend *be, const cn_win *cg, size_t m, const float *x,
                        const float *y, const float *dy, size_t n, const float *w, float *dw,
                        float *db, float *dx, float *ws, cn_act act)
{
    cn_cuda *g = cu(be);
    if (!n)
        return;
    size_t in = cg->c * cg->h * cg->w, out = m * cg->oh * cg->ow;
    size_t chunk = cn_cuda_conv_chunk(cg, m);
    float *dz_room = ws; /* (n, m, oh, ow): conv_ws's */
    const float one = 1.0f, zero = 0.0f;
    for (size_t s0 = 0; s0 < n; s0 += chunk) {
        size_t nc = n - s0 < chunk ? n - s0 : chunk;
        conv_plan *pl = plan_at(g, cg, m, nc);
        if (!pl)
            return;
        const float *dz = dy + s0 * out;
        if (act == CN_ACT_RELU) {
            k_relu_mask<<<blocks(nc * out), T, 0, g->stream>>>(y + s0 * out, dz, dz_room, nc * out);
            if (!LAUNCHED(g, "relu mask"))
                return;
            dz = dz_room;
        }
        bias_grad_on(g, dz, nc, m, cg->oh * cg->ow, db);
        if (!describe(g, cg, m, nc) ||
            !dnn_ok(g,
                    cudnnConvolutionBackwardFilter(g->dnn, &one, g->xd, x + s0 * in, g->yd, dz,
                                                   g->cd, pl->bwd_filter, g->ws, pl->ws_bytes, &one,
                                                   g->wd, dw),
                    "convolution backward (filters)"))
            return;
        if (dx && !dnn_ok(g,
                          cudnnConvolutionBackwardData(g->dnn, &one, g->wd, w, g->yd, dz, g->cd,
                                                       pl->bwd_data, g->ws, pl->ws_bytes, &zero, g->xd,
                                                       dx + s0 * in),
                          "convolution backward (data)"))
            return;
    }
}

/* ------------------------------------------------------------------ pooling */

/* Windows (i, j) that cover input position (y0, x0) of a plane: rows
 * [*i0, *i1), columns [*j0, *j1). */
__device__ static void covering(const cn_win &g, size_t y0, size_t x0, size_t *i0, size_t *i1,
                                size_t *j0, size_t *j1)
{
    *i0 = y0 + 1 > g.kh ? (y0 + 1 - g.kh + g.stride - 1) / g.stride : 0;
    *i1 = y0 / g.stride + 1;
    *i1 = *i1 < g.oh ? *i1 : g.oh;
    *j0 = x0 + 1 > g.kw ? (x0 + 1 - g.kw + g.stride - 1) / g.stride : 0;
    *j1 = x0 / g.stride + 1;
    *j1 = *j1 < g.ow ? *j1 : g.ow;
}

__global__ static void k_maxpool_fwd(cn_win g, const float *x, size_t n, float *y)
{
    FOR_EACH(o, n * g.c * g.oh * g.ow)
    {
        size_t j = o % g.ow, i = o / g.ow % g.oh, plane = o / (g.ow * g.oh);
        const float *win = x + plane * g.h * g.w + i * g.stride * g.w + j * g.stride;
        float best = win[0];
        for (size_t a = 0; a < g.kh; a++)
            for (size_t b = 0; b < g.kw; b++)
                if (win[a * g.w + b] > best)
                    best = win[a * g.w + b];
        y[o] = best;
    }
}

/* Each input gathers dy from the windows whose first maximum it is, in the
 * windows' order (the CPU's order of adding). */
__global__ static void k_maxpool_bwd(cn_win g, const float *x, const float *dy, size_t n, float *dx)
{
    FOR_EACH(t, n * g.c * g.h * g.w)
    {
        size_t x0 = t % g.w, y0 = t / g.w % g.h, plane = t / (g.w * g.h);
        const float *in = x + plane * g.h * g.w;
        const float *d = dy + plane * g.oh * g.ow;
        size_t i0, i1, j0, j1;
        covering(g, y0, x0, &i0, &i1, &j0, &j1);
        float s = 0.0f;
        for (size_t i = i0; i < i1; i++)
            for (size_t j = j0; j < j1; j++) {
                size_t base = i * g.stride * g.w + j * g.stride, arg = base;
                float best = in[base];
                for (size_t a = 0; a < g.kh; a++)
                    for (size_t b = 0; b < g.kw; b++)
                        if (in[base + a * g.w + b] > best) {
                            best = in[base + a * g.w + b];
                            arg = base + a * g.w + b;
                        }
                if (arg == y0 * g.w + x0)
                    s += d[i * g.ow + j];
            }
        dx[t] = s;
    }
}

__global__ static void k_avgpool_fwd(cn_win g, const float *x, size_t n, float *y, float inv)
{
    FOR_EACH(o, n * g.c * g.oh * g.ow)
    {
        size_t j = o % g.ow, i = o / g.ow % g.oh, plane = o / (g.ow * g.oh);
        const float *in = x + plane * g.h * g.w;
        float s = 0.0f;
        for (size_t a = 0; a < g.kh; a++)
            for (size_t b = 0; b < g.kw; b++)
                s += in[(i * g.stride + a) * g.w + j * g.stride + b];
        y[o] = __fmul_rn(s, inv);
    }
}

__global__ static void k_avgpool_bwd(cn_win g, const float *dy, size_t n, float *dx, float inv)
{
    FOR_EACH(t, n * g.c * g.h * g.w)
    {
        size_t x0 = t % g.w, y0 = t / g.w % g.h, plane = t / (g.w * g.h);
        const float *d = dy + plane * g.oh * g.ow;
        size_t i0, i1, j0, j1;
        covering(g, y0, x0, &i0, &i1, &j0, &j1);
        float s = 0.0f;
        for (size_t i = i0; i < i1; i++)
            for (size_t j = j0; j < j1; j++)
                s = __fadd_rn(s, __fmul_rn(d[i * g.ow + j], inv));
        dx[t] = s;
    }
}

static void cu_maxpool_fwd(const cn_backend *be, const cn_win *cg, const float *x, size_t n,
                           float *y)
{
    cn_cuda *g = cu(be);
    size_t count = n * cg->c * cg->oh * cg->ow;
    if (!count)
        return;
    k_maxpool_fwd<<<blocks(count), T, 0, g->stream>>>(*cg, x, n, y);
    LAUNCHED(g, "maxpool_fwd");
}

static void cu_maxpool_bwd(const cn_backend *be, const cn_win *cg, const float *x, const float *dy,
                           size_t n, float *dx, cn_act act)
{
    (void)act; /* always CN_ACT_NONE: bwd_in_place lists no CN_BWD_POOL */
    cn_cuda *g = cu(be);
    size_t count = n * cg->c * cg->h * cg->w;
    if (!count)
        return;
    k_maxpool_bwd<<<blocks(count), T, 0, g->stream>>>(*cg, x, dy, n, dx);
    LAUNCHED(g, "maxpool_bwd");
}

static void cu_avgpool_fwd(const cn_backend *be, const cn_win *cg, const float *x, size_t n,
                           float *y)
{
    cn_cuda *g = cu(be);
    size_t count = n * cg->c * cg->oh * cg->ow;
    if (!count)
        return;
    float inv = 1.0f / (float)(cg->kh * cg->kw);
    k_avgpool_fwd<<<blocks(count), T, 0, g->stream>>>(*cg, x, n, y, inv);
    LAUNCHED(g, "avgpool_fwd");
}

static void cu_avgpool_bwd(const cn_backend *be, const cn_win *cg, const float *dy, size_t n,
                           float *dx)
{
    cn_cuda *g = cu(be);
    size_t count = n * cg->c * cg->h * cg->w;
    if (!count)
        return;
    float inv = 1.0f / (float)(cg->kh * cg->kw);
    k_avgpool_bwd<<<blocks(count), T, 0, g->stream>>>(*cg, dy, n, dx, inv);
    LAUNCHED(g, "avgpool_bwd");
}

/* ------------------------------------------------------------- element-wise */

#define GELU_K 0.7978845608028654f
#define GELU_A 0.044715f

__device__ static float d_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ static void k_act_fwd(int a, float param, const float *x, float *y, size_t n)
{
    FOR_EACH(i, n)
    {
        float v = x[i], r = v;
        switch (a) {
        case CN_ACT_RELU: r = v > 0.0f ? v : 0.0f; break;
        case CN_ACT_SIGMOID: r = 1.0f / (1.0f + expf(-v)); break;
        case CN_ACT_TANH: r = tanhf(v); break;
        case CN_ACT_LEAKY: r = v > 0.0f ? v : param * v; break;
        case CN_ACT_GELU: r = 0.5f * v * (1.0f + tanhf(GELU_K * (v + GELU_A * v * v * v))); break;
        case CN_ACT_SILU: r = v * d_sigmoid(v); break;
        default: break;
        }
        y[i] = r;
    }
}

__global__ static void k_act_bwd(int a, float param, const float *x, const float *y,
                                 const float *dy, float *dx, size_t n)
{
    FOR_EACH(i, n)
    {
        float d = dy[i], r = d;
        switch (a) {
        case CN_ACT_RELU: r = y[i] > 0.0f ? d : 0.0f; break;
        case CN_ACT_SIGMOID: r = d * y[i] * (1.0f - y[i]); break;
        case CN_ACT_TANH: r = d * (1.0f - y[i] * y[i]); break;
        case CN_ACT_LEAKY: r = y[i] > 0.0f ? d : param * d; break;
        case CN_ACT_GELU: {
            float v = x[i], t = tanhf(GELU_K * (v + GELU_A * v * v * v));
            r = d * (0.5f * (1.0f + t) +
                     0.5f * v * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_A * v * v));
            break;
        }
        case CN_ACT_SILU: {
            float v = x[i], s = d_sigmoid(v);
            r = d * (s * (1.0f + v * (1.0f - s)));
            break;
        }
        default: break;
        }
        dx[i] = r;
    }
}

static void cu_act_fwd(const cn_backend *be, cn_act a, float param, const float *x, float *y,
                       size_t count)
{
    cn_cuda *g = cu(be);
    if (!count || ((a == CN_ACT_NONE || a == CN_ACT_COUNT) && x == y))
        return;
    k_act_fwd<<<blocks(count), T, 0, g->stream>>>((int)a, param, x, y, count);
    LAUNCHED(g, "act_fwd");
}

static void cu_act_bwd(const cn_backend *be, cn_act a, float param, const float *x, const float *y,
                       const float *dy, float *dx, size_t count)
{
    cn_cuda *g = cu(be);
    if (!count || ((a == CN_ACT_NONE || a == CN_ACT_COUNT) && dx == dy))
        return;
    k_act_bwd<<<blocks(count), T, 0, g->stream>>>((int)a, param, x, y, dy, dx, count);
    LAUNCHED(g, "act_bwd");
}

/* The CPU's masks exactly: the same counter generator, the same float
 * comparison and product (keep computed on the host as the CPU does). */
__global__ static void k_dropout(const float *x, float *y, size_t n, float rate, float keep,
                                 uint64_t key, uint64_t first)
{
    FOR_EACH(i, n) y[i] = cn_counter_uniform(key, first + i) < rate ? 0.0f : __fmul_rn(x[i], keep);
}

static void cu_dropout_fwd(const cn_backend *be, const float *x, float *y, size_t count, float rate,
                           uint64_t key, uint64_t first)
{
    cn_cuda *g = cu(be);
    if (!count)
        return;
    float keep = 1.0f / (1.0f - rate);
    k_dropout<<<blocks(count), T, 0, g->stream>>>(x, y, count, rate, keep, key, first);
    LAUNCHED(g, "dropout");
}

static void cu_dropout_bwd(const cn_backend *be, const float *dy, float *dx, size_t count,
                           float rate, uint64_t key, uint64_t first)
{
    cu_dropout_fwd(be, dy, dx, count, rate, key, first); /* the same mask and scale */
}

/* ------------------------------------------------------ batch normalisation */

/* One block per channel: the batch's sums around k = the running mean, then
 * the mean, 1/std and the running statistics' update as the CPU computes
 * them (kernels/elementwise.c, bn_stats). */
__global__ static void k_bn_stats(const float *x, size_t n, size_t c, size_t hw, float *run_mean,
                                  float *run_var, float momentum, float eps, float *save_mean,
                                  float *save_invstd)
{
    __shared__ double sh[T];
    size_t ch = blockIdx.x;
    float k = run_mean[ch];
    double s1 = 0, s2 = 0;
    for (size_t t = threadIdx.x; t < n * hw; t += T) {
        float v = x[((t / hw) * c + ch) * hw + t % hw] - k;
        s1 += v;
        s2 += (double)v * v;
    }
    s1 = block_sum(s1, sh);
    s2 = block_sum(s2, sh);
    if (threadIdx.x == 0) {
        double count = (double)(n * hw);
        double d = s1 / count, var = s2 / count - d * d;
        var = var > 0 ? var : 0;
        double m = k + d;
        save_mean[ch] = (float)m;
        save_invstd[ch] = (float)(1.0 / sqrt(var + eps));
        double unbiased = count > 1 ? var * count / (count - 1) : var;
        run_mean[ch] = (float)((1 - momentum) * run_mean[ch] + momentum * m);
        run_var[ch] = (float)((1 - momentum) * run_var[ch] + momentum * unbiased);
    }
}

/* y from the batch's statistics (train) or the running ones, in the CPU's
 * two forms (per feature when hw == 1, per channel otherwise). */
__global__ static void k_bn_apply(const float *x, size_t n, size_t c, size_t hw, const float *gamma,
                                  const float *beta, const float *run_mean, const float *run_var,
                                  float eps, int train, const float *save_mean,
                                  const float *save_invstd, float *y)
{
    FOR_EACH(t, n * c * hw)
    {
        size_t ch = t / hw % c;
        float mean = train ? save_mean[ch] : run_mean[ch];
        if (hw == 1) {
            float is = train ? save_invstd[ch] : 1.0f / sqrtf(run_var[ch] + eps);
            y[t] = (x[t] - mean) * is * gamma[ch] + beta[ch];
        } else {
            float is = train ? save_invstd[ch] : (float)(1.0 / sqrt((double)run_var[ch] + eps));
            float scale = gamma[ch] * is, shift = beta[ch] - mean * scale;
            y[t] = x[t] * scale + shift;
        }
    }
}

static void cu_bn_fwd(const cn_backend *be, const float *x, size_t n, size_t c, size_t hw,
                      const float *gamma, const float *beta, float *run_mean, float *run_var,
                      float momentum, float eps, int train, float *save_mean, float *save_invstd,
                      double *scratch, float *y, cn_act act)
{
    cn_cuda *g = cu(be);
    (void)scratch;
    (void)act; /* always CN_ACT_NONE: bn_acts lists none */
    if (!n || !c || !hw)
        return;
    if (train) {
        k_bn_stats<<<(unsigned)c, T, 0, g->stream>>>(x, n, c, hw, run_mean, run_var, momentum, eps,
                                                     save_mean, save_invstd);
        if (!LAUNCHED(g, "bn statistics"))
            return;
    }
    size_t count = n * c * hw;
    k_bn_apply<<<blocks(count), T, 0, g->stream>>>(x, n, c, hw, gamma, beta, run_mean, run_var, eps,
                                                   train, save_mean, save_invstd, y);
    LAUNCHED(g, "bn_fwd");
}

/* One block per channel: s1 = sum dy and s2 = sum dy (x - mean) * invstd
 * into scratch (c doubles each), and the parameters' gradients. */
__global__ static void k_bn_bwd_sums(const float *x, const float *dy, size_t n, size_t c, size_t hw,
                                     const float *save_mean, const float *save_invstd,
                                     double *scratch, float *dgamma, float *dbeta)
{
    __shared__ double sh[T];
    size_t ch = blockIdx.x;
    float k = save_mean[ch];
    double s1 = 0, s2 = 0;
    for (size_t t = threadIdx.x; t < n * hw; t += T) {
        size_t at = ((t / hw) * c + ch) * hw + t % hw;
        s1 += dy[at];
        s2 += (double)dy[at] * (x[at] - k);
    }
    s1 = block_sum(s1, sh);
    s2 = block_sum(s2, sh);
    if (threadIdx.x == 0) {
        s2 *= save_invstd[ch];
        scratch[ch] = s1;
        scratch[c + ch] = s2;
        dbeta[ch] += (float)s1;
        dgamma[ch] += (float)s2;
    }
}

__global__ static void k_bn_bwd_dx(const float *x, const float *dy, size_t n, size_t c, size_t hw,
                                   const float *gamma, const float *save_mean,
                                   const float *save_invstd, const double *scratch, float *dx)
{
    double count = (double)(n * hw);
    FOR_EACH(t, n * c * hw)
    {
        size_t ch = t / hw % c;
        float is = save_invstd[ch], mean = save_mean[ch];
        double s1 = scratch[ch], s2 = scratch[c + ch];
        if (hw == 1) {
            dx[t] = gamma[ch] * is *
                    (dy[t] - (float)(s1 / count) - (x[t] - mean) * is * (float)(s2 / count));
        } else {
            float k = gamma[ch] * is, md = (float)(s1 / count), mdx = (float)(s2 / count) * is;
            dx[t] = k * (dy[t] - md - (x[t] - mean) * mdx);
        }
    }
}

static void cu_bn_bwd(const cn_backend *be, const float *x, const float *y, const float *dy,
                      size_t n, size_t c, size_t hw, const float *gamma, const float *save_mean,
                      const float *save_invstd, double *scratch, float *dgamma, float *dbeta,
                      float *dx, cn_act act)
{
    cn_cuda *g = cu(be);
    (void)y, (void)act; /* always CN_ACT_NONE: bn_acts lists none */
    if (!n || !c || !hw)
        return;
    k_bn_bwd_sums<<<(unsigned)c, T, 0, g->stream>>>(x, dy, n, c, hw, save_mean, save_invstd,
                                                    scratch, dgamma, dbeta);
    if (!LAUNCHED(g, "bn backward sums") || !dx)
        return;
    size_t count = n * c * hw;
    k_bn_bwd_dx<<<blocks(count), T, 0, g->stream>>>(x, dy, n, c, hw, gamma, save_mean, save_invstd,
                                                    scratch, dx);
    LAUNCHED(g, "bn backward dx");
}

/* ----------------------------------------------------------- input and loss */

/* The CPU's formula (kernels/plain.c, cn_pixels_to_input) with each
 * operation rounded on its own, as the CPU compiles it (no fused
 * multiply-add): the same bits. */
__global__ static void k_pixels(const uint8_t *pix, size_t n, size_t c, size_t hw,
                                const float *norm, float *x)
{
    FOR_EACH(t, n * c * hw)
    {
        size_t k = t / hw % c;
        float scale = 1.0f / __fmul_rn(255.0f, norm[c + k]), shift = norm[k] / norm[c + k];
        x[t] = __fsub_rn(__fmul_rn((float)pix[t], scale), shift);
    }
}

static void cu_input_from_pixels(const cn_backend *be, const uint8_t *pix, size_t n, size_t c,
                                 size_t hw, const float *norm, float *x)
{
    cn_cuda *g = cu(be);
    size_t count = n * c * hw;
    if (!count)
        return;
    k_pixels<<<blocks(count), T, 0, g->stream>>>(pix, n, c, hw, norm, x);
    LAUNCHED(g, "input_from_pixels");
}

/* One thread per pixel of the batch: its sample's draws (made again by
 * each of its threads: augment.h's integer arithmetic, the host's bits),
 * its pixel, and the prepared value (as k_pixels). */
__global__ static void k_gather(const uint8_t *data, const uint32_t *idx, size_t n, cn_shape s,
                                cn_aug aug, uint64_t seed, uint64_t first, const float *norm,
                                uint8_t *pix, float *x)
{
    size_t hw = s.h * s.w, size = s.c * hw;
    int on = cn_aug_any(&aug);
    FOR_EACH(t, n * size)
    {
        size_t i = t / size, within = t % size, c = within / hw;
        const uint8_t *plane = data + (size_t)idx[i] * size + c * hw;
        uint8_t v;
        if (on) {
            cn_aug_draw d;
            cn_aug_draw_for(&aug, (int64_t)s.h, (int64_t)s.w, seed, first + i, &d);
            v = cn_aug_pixel(plane, (int64_t)s.h, (int64_t)s.w, &d, (int64_t)(within % hw / s.w),
                             (int64_t)(within % s.w));
        } else {
            v = plane[within % hw];
        }
        pix[t] = v;
        float scale = 1.0f / __fmul_rn(255.0f, norm[s.c + c]), sh = norm[c] / norm[s.c + c];
        x[t] = __fsub_rn(__fmul_rn((float)v, scale), sh);
    }
}

static void cu_gather_pixels(const cn_backend *be, const uint8_t *data, const uint32_t *idx,
                             size_t n, cn_shape s, cn_aug aug, uint64_t seed, uint64_t first,
                             const float *norm, uint8_t *pix, float *x)
{
    cn_cuda *g = cu(be);
    size_t count = n * s.c * s.h * s.w;
    if (!count)
        return;
    k_gather<<<blocks(count), T, 0, g->stream>>>(data, idx, n, s, aug, seed, first, norm, pix, x);
    LAUNCHED(g, "gather_pixels");
}

/* One thread per row (rows are a batch, columns the classes). */
__global__ static void k_softmax(const float *x, float *y, size_t rows, size_t cols)
{
    FOR_EACH(r, rows)
    {
        const float *in = x + r * cols;
        float *out = y + r * cols;
        float mx = in[0];
        for (size_t j = 1; j < cols; j++)
            mx = in[j] > mx ? in[j] : mx;
        double sum = 0.0;
        for (size_t j = 0; j < cols; j++) {
            out[j] = expf(in[j] - mx);
            sum += out[j];
        }
        float inv = (float)(1.0 / sum);
        for (size_t j = 0; j < cols; j++)
            out[j] *= inv;
    }
}

static void cu_softmax(const cn_backend *be, const float *x, float *y, size_t rows, size_t cols)
{
    cn_cuda *g = cu(be);
    if (!rows || !cols)
        return;
    k_softmax<<<blocks(rows), T, 0, g->stream>>>(x, y, rows, cols);
    LAUNCHED(g, "softmax");
}

/* dx = y / rows - off, less on at the label (off and on from the smoothing,
 * computed once on the host as the CPU computes them). */
__global__ static void k_softmax_nll_bwd(const float *y, const int32_t *labels, size_t rows,
                                         size_t cols, float inv, float off, float on, float *dx)
{
    FOR_EACH(t, rows * cols)
    {
        float v = __fsub_rn(__fmul_rn(y[t], inv), off);
        dx[t] = (size_t)labels[t / cols] == t % cols ? __fsub_rn(v, on) : v;
    }
}

static void cu_softmax_nll_bwd(const cn_backend *be, const float *y, const int32_t *labels,
                               size_t rows, size_t cols, float smooth, float *dx)
{
    cn_cuda *g = cu(be);
    if (!rows || !cols)
        return;
    float inv = 1.0f / (float)rows;
    float off = smooth / (float)cols * inv, on = (1.0f - smooth) * inv;
    k_softmax_nll_bwd<<<blocks(rows * cols), T, 0, g->stream>>>(y, labels, rows, cols, inv, off,
                                                                on, dx);
    LAUNCHED(g, "softmax_nll_bwd");
}

__global__ static void k_nll_rows(const float *z, const float *y, const int32_t *labels,
                                  size_t rows, size_t cols, float smooth, double *loss,
                                  int32_t *best, float *best_p)
{
    FOR_EACH(r, rows)
    {
        const float *row = z + r * cols, *p = y + r * cols;
        float mx = row[0];
        for (size_t j = 1; j < cols; j++)
            mx = row[j] > mx ? row[j] : mx;
        double sum = 0.0, all = 0.0;
        for (size_t j = 0; j < cols; j++)
            sum += exp((double)row[j] - mx);
        loss[r] = log(sum) - ((double)row[labels[r]] - mx);
        if (smooth != 0.0f) {
            for (size_t j = 0; j < cols; j++)
                all += (double)row[j] - mx;
            loss[r] = log(sum) - (1.0 - (double)smooth) * ((double)row[labels[r]] - mx) -
                      (double)smooth / (double)cols * all;
        }
        size_t arg = 0;
        for (size_t j = 1; j < cols; j++)
            if (p[j] > p[arg])
                arg = j;
        if (best)
            best[r] = (int32_t)arg;
        if (best_p)
            best_p[r] = p[arg];
    }
}

static void cu_nll_rows(const cn_backend *be, const float *z, const float *y, const int32_t *labels,
                        size_t rows, size_t cols, float smooth, double *loss, int32_t *best,
                        float *best_p)
{
    cn_cuda *g = cu(be);
    if (!rows || !cols)
        return;
    k_nll_rows<<<blocks(rows), T, 0, g->stream>>>(z, y, labels, rows, cols, smooth, loss, best,
                                                  best_p);
    LAUNCHED(g, "nll_rows");
}

/* --------------------------------------------------------------- optimizers */

__global__ static void k_sgd(size_t n, float *theta, const float *gr, float *m, float lr, float mu,
                             float lambda)
{
    float one_mu = 1.0f - mu;
    FOR_EACH(i, n)
    {
        float mi = mu * m[i] + one_mu * gr[i];
        m[i] = mi;
        theta[i] -= lr * (mi + lambda * theta[i]);
    }
}

static void cu_sgd(const cn_backend *be, size_t n, float *theta, const float *gr, float *m,
                   float lr, float mu, float lambda)
{
    cn_cuda *g = cu(be);
    if (!n)
        return;
    k_sgd<<<blocks(n), T, 0, g->stream>>>(n, theta, gr, m, lr, mu, lambda);
    LAUNCHED(g, "sgd");
}

typedef struct hyper8 {
    float h[8];
} hyper8;

__global__ static void k_adam(size_t n, float *theta, const float *gr, float *m, float *v,
                              hyper8 hp)
{
    float lr = hp.h[0], b1 = hp.h[1], b2 = hp.h[2], eps = hp.h[3], l2 = hp.h[4];
    float wd = hp.h[5], c1 = hp.h[6], c2 = hp.h[7];
    FOR_EACH(i, n)
    {
        float gi = gr[i] + l2 * theta[i];
        float mi = b1 * m[i] + (1.0f - b1) * gi, vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        theta[i] -= lr * (c1 * mi / (sqrtf(c2 * vi) + eps) + wd * theta[i]);
    }
}

static void cu_adam(const cn_backend *be, size_t n, float *theta, const float *gr, float *m,
                    float *v, const float hyper[8])
{
    cn_cuda *g = cu(be);
    if (!n)
        return;
    hyper8 hp;
    memcpy(hp.h, hyper, sizeof hp.h);
    k_adam<<<blocks(n), T, 0, g->stream>>>(n, theta, gr, m, v, hp);
    LAUNCHED(g, "adam");
}

/* --------------------------------------------------------- checks and stats */

__global__ static void k_nonfinite(const float *x, size_t n, unsigned long long *counter)
{
    unsigned long long bad = 0;
    FOR_EACH(i, n) bad += !isfinite(x[i]);
    if (bad)
        atomicAdd(counter, bad); /* integers: the same total in any order */
}

static size_t cu_count_nonfinite(const cn_backend *be, const float *x, size_t count)
{
    cn_cuda *g = cu(be);
    if (!count)
        return 0;
    unsigned long long bad = 0;
    if (!rt_ok(g, cudaMemsetAsync(g->counter, 0, sizeof bad, g->stream), "clearing a counter"))
        return count;
    k_nonfinite<<<blocks(count), T, 0, g->stream>>>(x, count, g->counter);
    if (!LAUNCHED(g, "count_nonfinite"))
        return count;
    cu_download(be, &bad, g->counter, sizeof bad);
    return g->err ? count : (size_t)bad;
}

/* Per block: the sum, sum of squares, largest |x| and count of non-finite
 * values, into part[block * 4 ...]. */
__global__ static void k_stats_values(const float *x, size_t n, double *part)
{
    __shared__ double sh[T];
    double s = 0, s2 = 0, most = 0, bad = 0;
    FOR_EACH(i, n)
    {
        float v = x[i];
        if (!isfinite(v)) {
            bad += 1.0;
            continue;
        }
        s += v;
        s2 += (double)v * v;
        most = fmax(most, fabs((double)v));
    }
    s = block_sum(s, sh);
    s2 = block_sum(s2, sh);
    most = block_max(most, sh);
    bad = block_sum(bad, sh);
    if (threadIdx.x == 0) {
        double *o = part + (size_t)blockIdx.x * 4;
        o[0] = s;
        o[1] = s2;
        o[2] = most;
        o[3] = bad;
    }
}

/* Per block: how many units hold no finite value above 0 in any row. */
__global__ static void k_stats_dead(const float *x, size_t rows, size_t units, size_t size,
                                    double *part)
{
    __shared__ double sh[T];
    double dead = 0;
    FOR_EACH(u, units)
    {
        int alive = 0;
        for (size_t r = 0; r < rows && !alive; r++) {
            const float *p = x + (r * units + u) * size;
            for (size_t j = 0; j < size; j++)
                if (isfinite(p[j]) && p[j] > 0.0f) {
                    alive = 1;
                    break;
                }
        }
        dead += !alive;
    }
    dead = block_sum(dead, sh);
    if (threadIdx.x == 0)
        part[blockIdx.x] = dead;
}

/* One thread: the blocks' partials in order into out[5]. */
__global__ static void k_stats_total(const double *part, unsigned nb, unsigned nd,
                                     const double *dead, double *out)
{
    double s = 0, s2 = 0, most = 0, bad = 0, d = 0;
    for (unsigned b = 0; b < nb; b++) {
        s += part[b * 4];
        s2 += part[b * 4 + 1];
        most = fmax(most, part[b * 4 + 2]);
        bad += part[b * 4 + 3];
    }
    for (unsigned b = 0; b < nd; b++)
        d += dead[b];
    out[0] = s;
    out[1] = s2;
    out[2] = most;
    out[3] = bad;
    out[4] = d;
}

static void cu_stats(const cn_backend *be, const float *x, size_t rows, size_t units, size_t size,
                     double out[5])
{
    cn_cuda *g = cu(be);
    size_t n = rows * units * size;
    memset(out, 0, 5 * sizeof *out);
    if (!n) {
        out[4] = (double)units;
        return;
    }
    unsigned nb = blocks(n), nd = blocks(units);
    nb = nb < STAT_BLOCKS ? nb : STAT_BLOCKS;
    nd = nd < STAT_BLOCKS ? nd : STAT_BLOCKS;
    double *part = g->partials, *dead = part + 4 * STAT_BLOCKS, *tot = dead + STAT_BLOCKS;
    k_stats_values<<<nb, T, 0, g->stream>>>(x, n, part);
    k_stats_dead<<<nd, T, 0, g->stream>>>(x, rows, units, size, dead);
    k_stats_total<<<1, 1, 0, g->stream>>>(part, nb, nd, dead, tot);
    if (LAUNCHED(g, "stats"))
        cu_download(be, out, tot, 5 * sizeof *out);
}

/* ------------------------------------------------------------------- create */

static int env_on(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* Why no GPU can be used, when cudaGetDeviceCount failed with e or found
 * none. */
static const char *why_none(cudaError_t e)
{
    int driver = 0;
    if (cudaDriverGetVersion(&driver) != cudaSuccess || driver == 0) {
        cudaGetLastError();
        return "no NVIDIA driver is installed (libcuda.so.1 was not found)";
    }
    return e != cudaSuccess ? cudaGetErrorString(e) : "the driver lists none";
}

extern "C" cn_status cn_cuda_create(int index, cn_backend **out)
{
    *out = NULL;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        cudaGetLastError();
        return fail(CN_ERR_ARG, "--device cuda: no GPU that CUDA can use on this machine: %s",
                    why_none(e));
    }
    if (index < 0 || index >= count)
        return fail(CN_ERR_ARG, "there is no GPU cuda:%d: this machine has %d (cuda:0 to cuda:%d)",
                    index, count, count - 1);
    cudaDeviceProp prop;
    if ((e = cudaSetDevice(index)) != cudaSuccess ||
        (e = cudaGetDeviceProperties(&prop, index)) != cudaSuccess) {
        cudaGetLastError();
        return fail(CN_ERR_ARG, "cuda:%d cannot be used: %s", index, cudaGetErrorString(e));
    }
    cn_cuda *g = (cn_cuda *)calloc(1, sizeof *g);
    if (!g)
        return fail(CN_ERR_NOMEM, "out of memory");
    g->device = index;
    g->tf32 = env_on("CONVNET_TF32");
    snprintf(g->label, sizeof g->label, "cuda:%d (%s)", index, prop.name);
    cn_backend *be = &g->base;
    be->name = "cuda";
    be->kernels = "cuda";
    be->host_memory = 0;
    be->conv_acts = 1u << CN_ACT_RELU; /* as the CPU: the same network either way */
    be->bn_acts = 0;                   /* a relu after batch normalisation: a layer of its own */
    be->bwd_in_place = 0; /* every backward operation writes a buffer of its own */
    be->own_bytes = CN_CUDA_OWN_BYTES;
    int ok = rt_ok(g, cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking), "a stream") &&
             blas_ok(g, cublasCreate(&g->blas), "start") &&
             blas_ok(g, cublasSetStream(g->blas, g->stream), "stream") &&
             blas_ok(g,
                     cublasSetMathMode(g->blas,
                                       g->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
                     "math mode") &&
             dnn_ok(g, cudnnCreate(&g->dnn), "start") &&
             dnn_ok(g, cudnnSetStream(g->dnn, g->stream), "stream") &&
             dnn_ok(g, cudnnCreateTensorDescriptor(&g->xd), "descriptor") &&
             dnn_ok(g, cudnnCreateTensorDescriptor(&g->yd), "descriptor") &&
             dnn_ok(g, cudnnCreateFilterDescriptor(&g->wd), "descriptor") &&
             dnn_ok(g, cudnnCreateConvolutionDescriptor(&g->cd), "descriptor") &&
             rt_ok(g, cudaMalloc(&g->partials, (5 * STAT_BLOCKS + 5) * sizeof(double)),
                   "scratch memory") &&
             rt_ok(g, cudaMalloc(&g->counter, sizeof *g->counter), "scratch memory");
    if (!ok) {
        cn_status st = fail(g->err, "%s", g->msg);
        cu_destroy(be);
        return st;
    }
    be->alloc = cu_alloc;
    be->free = cu_free;
    be->upload = cu_upload;
    be->download = cu_download;
    be->copy = cu_copy;
    be->fill = cu_fill;
    be->sync = cu_sync;
    be->destroy = cu_destroy;
    be->status = cu_status;
    be->memory = cu_memory;
    be->gemm = cu_gemm;
    be->add_bias = cu_add_bias;
    be->bias_grad = cu_bias_grad;
    be->add = cu_add;
    be->scale = cu_scale;
    be->conv_ws = cu_conv_ws;
    be->conv_fwd = cu_conv_fwd;
    be->conv_bwd = cu_conv_bwd;
    be->maxpool_fwd = cu_maxpool_fwd;
    be->maxpool_bwd = cu_maxpool_bwd;
    be->avgpool_fwd = cu_avgpool_fwd;
    be->avgpool_bwd = cu_avgpool_bwd;
    be->act_fwd = cu_act_fwd;
    be->act_bwd = cu_act_bwd;
    be->dropout_fwd = cu_dropout_fwd;
    be->dropout_bwd = cu_dropout_bwd;
    be->bn_fwd = cu_bn_fwd;
    be->bn_bwd = cu_bn_bwd;
    be->input_from_pixels = cu_input_from_pixels;
    be->gather_pixels = cu_gather_pixels;
    be->softmax = cu_softmax;
    be->softmax_nll_bwd = cu_softmax_nll_bwd;
    be->nll_rows = cu_nll_rows;
    be->sgd = cu_sgd;
    be->adam = cu_adam;
    be->ema = cu_ema;
    be->count_nonfinite = cu_count_nonfinite;
    be->stats = cu_stats;
    *out = be;
    return CN_OK;
}

/* ------------------------------------------------------------------- the GPUs */

extern "C" cn_status cn_gpu_list(cn_gpu *gpus, int max, int *count)
{
    *count = 0;
    int driver = 0, runtime = 0, n = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        cudaGetLastError();
        return fail(CN_ERR_ARG,
                    "no GPU that CUDA can use on this machine: %s (CUDA driver %d.%d, runtime "
                    "%d.%d)",
                    why_none(e), driver / 1000, driver % 1000 / 10, runtime / 1000,
                    runtime % 1000 / 10);
    }
    for (int i = 0; i < n && i < max; i++) {
        cudaDeviceProp p;
        if ((e = cudaGetDeviceProperties(&p, i)) != cudaSuccess) {
            cudaGetLastError();
            return fail(CN_ERR_ARG, "cuda:%d: %s", i, cudaGetErrorString(e));
        }
        cn_gpu *o = &gpus[i];
        memset(o, 0, sizeof *o);
        o->index = i;
        snprintf(o->name, sizeof o->name, "%s", p.name);
        o->memory = p.totalGlobalMem;
        o->major = p.major;
        o->minor = p.minor;
        o->driver = driver;
        o->runtime = runtime;
    }
    *count = n;
    return CN_OK;
}
