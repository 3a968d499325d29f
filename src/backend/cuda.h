/* cuda.h - the CUDA backend's entry point for the registry (backend/cpu.c).
 *
 * backend/cuda.cu defines it in a build with CUDA=1 (NVIDIA's runtime,
 * cuBLAS and cuDNN); backend/nocuda.c otherwise, where it fails with the
 * message that says how to get one.  Plain C: the registry and the CUDA
 * file both include it. */
#ifndef CN_BACKEND_CUDA_H
#define CN_BACKEND_CUDA_H

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The backend of GPU index (cuda:INDEX), in *out.  Errors: CN_ERR_ARG (a
 * build without CUDA, no GPU or no driver on this machine, no GPU of that
 * index), CN_ERR_NOMEM (the GPU's memory or the host's ran out while
 * starting). */
cn_status cn_cuda_create(int index, cn_backend **out);

/* What the CUDA backend holds for itself (its own_bytes): the reductions'
 * partial sums, STAT_BLOCKS (256) * 5 + 5 doubles, and a counter. */
#define CN_CUDA_OWN_BYTES ((5 * 256 + 5) * sizeof(double) + sizeof(unsigned long long))

/* The most samples the CUDA backend gives cuDNN in one convolution call
 * of geometry g with m filters: 1024, halved while cuDNN's int sizes would
 * overflow.  Larger batches are done that many samples at a time, each
 * chunk with cuDNN's algorithms for its own size. */
static inline size_t cn_cuda_conv_chunk(const cn_win *g, size_t m)
{
    size_t n = 1024, in = g->c * g->h * g->w, out = m * g->oh * g->ow;
    while (n > 1 && (n * in > 2147483647u || n * out > 2147483647u))
        n /= 2;
    return n;
}

#ifdef __cplusplus
}
#endif

#endif
